//! Shared fixtures for the criterion benches, the `hash-ratio` binary and
//! the `softrss_equality` test:
//!
//! - seeded random tuples ([`dmpd_tuples`], [`ipv4_tuples`], [`ipv6_tuples`]);
//! - DPDK's `rte_softrss` / `rte_softrss_be` anchors ([`SoftRss`]), called
//!   the way a DPDK application calls them: key words prepared once, tuple
//!   words prepared outside the timed loop ([`TupleWords`]);
//! - a balancer with published loads ([`DecisionBench`]);
//! - the estimate criterion measured for a bench in this run
//!   ([`criterion_estimate_ns`]), so that each bench file can print its
//!   ratios against the anchors it measured.
//!
//! Nothing here needs EAL.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use ffi::rss::{bytes_to_tuple_words, softrss_be, ConvertedKey};
use lb::balancer::{Balancer, BalancerConfig, Controller, Counters, Decision};
use lb::load::{LoadConfig, PortSample};
use lb::tuple::{DmpdTuple, Ipv4Tuple, Ipv6Tuple};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Seed of every random input set, so that runs are comparable.
pub const SEED: u64 = 0x646d_7064_6c62;

/// Tuples in a timing pool: large enough that the branch predictor cannot
/// learn `rte_softrss`'s data-dependent loop, small enough for L2.
pub const POOL: usize = 4096;

/// Packets per burst on the data path.
pub const BURST: usize = 32;

/// Most 32-bit words a tuple takes (36 bytes).
pub const MAX_WORDS: usize = 9;

/// DMPD key tuples with the value ranges of a real cluster: node numbers
/// below 64, pipe ids below 1024, packet types below 8. These have far
/// fewer set bits than random bytes, which makes `rte_softrss` (one loop
/// iteration per set bit) faster; our table hash does not depend on the
/// data.
pub fn dmpd_tuples(seed: u64, count: usize) -> Vec<[u8; DmpdTuple::LEN]> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            DmpdTuple {
                snode: rng.gen_range(0..64),
                dnode: rng.gen_range(0..64),
                spipe: rng.gen_range(0..1024),
                dpipe: rng.gen_range(0..1024),
                ptype: rng.gen_range(0..8),
            }
            .to_bytes()
        })
        .collect()
}

/// Uniformly random IPv4 + ports tuples.
pub fn ipv4_tuples(seed: u64, count: usize) -> Vec<[u8; Ipv4Tuple::LEN]> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| random_ipv4(&mut rng).to_bytes())
        .collect()
}

/// Uniformly random IPv6 + ports tuples.
pub fn ipv6_tuples(seed: u64, count: usize) -> Vec<[u8; Ipv6Tuple::LEN]> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| random_ipv6(&mut rng).to_bytes())
        .collect()
}

/// A uniformly random IPv4 + ports tuple.
pub fn random_ipv4(rng: &mut impl RngCore) -> Ipv4Tuple {
    Ipv4Tuple {
        src: rng.next_u32().into(),
        dst: rng.next_u32().into(),
        sport: rng.gen(),
        dport: rng.gen(),
    }
}

/// A uniformly random IPv6 + ports tuple.
pub fn random_ipv6(rng: &mut impl RngCore) -> Ipv6Tuple {
    Ipv6Tuple {
        src: rng.gen::<u128>().into(),
        dst: rng.gen::<u128>().into(),
        sport: rng.gen(),
        dport: rng.gen(),
    }
}

/// A uniformly random DMPD tuple (every field over its whole range).
pub fn random_dmpd(rng: &mut impl RngCore) -> DmpdTuple {
    DmpdTuple {
        snode: rng.gen(),
        dnode: rng.gen(),
        spipe: rng.gen(),
        dpipe: rng.gen(),
        ptype: rng.gen(),
    }
}

/// A tuple as the host-order 32-bit words `rte_softrss` takes (the last
/// word zero-padded, which does not change a Toeplitz hash).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TupleWords {
    words: [u32; MAX_WORDS],
    len: usize,
}

impl TupleWords {
    /// Converts network-order tuple bytes (at most 36).
    pub fn new(bytes: &[u8]) -> Self {
        let mut words = [0; MAX_WORDS];
        let len = bytes_to_tuple_words(bytes, &mut words);
        Self { words, len }
    }

    /// The words DPDK reads.
    #[inline]
    pub fn as_slice(&self) -> &[u32] {
        &self.words[..self.len]
    }
}

/// Converts a pool of tuples for the DPDK anchors.
pub fn to_words<const N: usize>(tuples: &[[u8; N]]) -> Vec<TupleWords> {
    tuples.iter().map(|t| TupleWords::new(t)).collect()
}

/// DPDK's software Toeplitz functions with the key prepared once, as a
/// DPDK application holds it.
///
/// [`SoftRss::softrss`] calls the C shim around `rte_softrss` directly
/// with a key held in aligned words. `ffi::rss::softrss` copies the key
/// into an aligned buffer on every call, which would charge DPDK for our
/// wrapper; the equality test checks that both agree.
#[derive(Clone)]
pub struct SoftRss {
    /// The key bytes reinterpreted as native-order words (DPDK casts the
    /// byte pointer to `uint32_t *`), so the pointer is aligned.
    key: [u32; 16],
    key_len: usize,
    converted: ConvertedKey,
}

impl SoftRss {
    /// Prepares a key of at most 64 bytes, a multiple of 4.
    pub fn new(key: &[u8]) -> Self {
        assert!(
            key.len() <= 64 && key.len().is_multiple_of(4),
            "bad RSS key length {}",
            key.len()
        );
        let mut words = [0u32; 16];
        for (word, bytes) in words.iter_mut().zip(key.chunks_exact(4)) {
            *word = u32::from_ne_bytes(bytes.try_into().expect("4-byte chunk"));
        }
        Self {
            key: words,
            key_len: key.len(),
            converted: ConvertedKey::new(key),
        }
    }

    /// `rte_softrss(tuple, len, key)`.
    #[inline]
    pub fn softrss(&self, tuple: &[u32]) -> u32 {
        assert!(
            self.key_len >= 4 * (tuple.len() + 1),
            "RSS key too short for the tuple"
        );
        // SAFETY: DPDK reads `tuple.len()` words of the tuple (it does not
        // write through the pointer despite its type) and `tuple.len() + 1`
        // aligned words of the key, which the assertion bounds.
        unsafe {
            ffi::sys::_rte_softrss(
                tuple.as_ptr().cast_mut(),
                tuple.len() as u32,
                self.key.as_ptr().cast(),
            )
        }
    }

    /// `rte_softrss_be(tuple, len, converted key)`.
    #[inline]
    pub fn softrss_be(&self, tuple: &[u32]) -> u32 {
        softrss_be(tuple, &self.converted)
    }
}

/// Decision workloads: (name, simulated time between two bursts of 32).
///
/// - `sticky`: 32 packets every 1 us. A bucket is revisited about every
///   32 us, far inside the 1 ms idle gap, so after the first placements
///   every decision keeps a sticky port (a busy lcore's steady state).
/// - `churn`: 32 packets every 20 us. A bucket is revisited about every
///   640 us, so about a fifth of the decisions place an idle bucket again
///   (the slow path: heap, charges, balancing) and the rest are sticky.
pub const SCENARIOS: [(&str, u64); 2] = [("sticky", 1_000), ("churn", 20_000)];

/// The load period: the controller records samples and publishes once per
/// period of simulated time, outside the timed region; the balancer's
/// take-in of the new snapshot is timed (it is data-side work).
pub const PERIOD_NS: u64 = 1_000_000;

/// Destination nodes in the decision stream.
pub const DST_NODES: u16 = 16;

/// Port utilisations, chosen so that WL is far above the threshold and
/// some ports are above the mean (balancing moves their new flows) while
/// the others are below it.
const UTILISATION: [f64; 8] = [0.70, 0.30, 0.55, 0.20, 0.65, 0.25, 0.40, 0.35];

/// A balancer with published loads and a random stream of flows.
pub struct DecisionBench {
    controller: Controller,
    balancer: Balancer,
    samples: Vec<PortSample>,
    hashes: Vec<u32>,
    dsts: Vec<u16>,
    now_ns: u64,
    step_ns: u64,
    period_bursts: u64,
    pos: usize,
    bursts: u64,
    out: [Decision; BURST],
}

impl DecisionBench {
    /// `n_ports` local ports (at most 8), `DST_NODES` destination nodes
    /// with `n_ports` rx ports each, a pool of `POOL * 4` packets drawn
    /// from 4096 flows, and `step_ns` of simulated time between bursts
    /// (see [`SCENARIOS`]).
    pub fn new(n_ports: usize, step_ns: u64, seed: u64) -> Self {
        assert!((1..=UTILISATION.len()).contains(&n_ports));
        assert!((1..=PERIOD_NS).contains(&step_ns));
        let mut controller =
            Controller::new(n_ports, LoadConfig::default()).expect("default load config");
        let samples: Vec<PortSample> = UTILISATION[..n_ports]
            .iter()
            .map(|&utilisation| PortSample {
                utilisation,
                ..PortSample::default()
            })
            .collect();
        controller.record_samples(&samples).expect("one per port");
        let all = (1u16 << n_ports) - 1;
        for node in 0..DST_NODES {
            let loads: Vec<f64> = (0..n_ports)
                .map(|p| UTILISATION[(p + usize::from(node)) % UTILISATION.len()])
                .collect();
            controller
                .set_remote_node(node, &loads, all)
                .expect("valid remote loads");
        }
        controller.publish();
        let balancer = controller
            .balancer(BalancerConfig::default())
            .expect("default balancer config");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let flows: Vec<(u32, u16)> = (0..4096)
            .map(|_| (rng.next_u32(), rng.gen_range(0..DST_NODES)))
            .collect();
        let (hashes, dsts) = (0..POOL * 4)
            .map(|_| flows[rng.gen_range(0..flows.len())])
            .unzip();
        Self {
            controller,
            balancer,
            samples,
            hashes,
            dsts,
            now_ns: 1_000_000,
            step_ns,
            period_bursts: PERIOD_NS / step_ns,
            pos: 0,
            bursts: 0,
            out: [Decision::default(); BURST],
        }
    }

    /// Whether the published snapshot has balancing on.
    pub fn balancing(&self) -> bool {
        self.controller.snapshot().balancing()
    }

    /// The balancer's counters so far.
    pub fn counters(&self) -> Counters {
        self.balancer.counters()
    }

    /// Decides `bursts` bursts of 32 with `decide_burst` (`single ==
    /// false`) or packet by packet with `decide` (`single == true`);
    /// returns the time spent deciding, publishes excluded.
    pub fn run(&mut self, bursts: u64, single: bool) -> Duration {
        let mut elapsed = Duration::ZERO;
        let mut left = bursts;
        while left > 0 {
            let chunk = left.min(self.period_bursts - self.bursts % self.period_bursts);
            let start = Instant::now();
            for _ in 0..chunk {
                let (hashes, dsts) = (
                    &self.hashes[self.pos..self.pos + BURST],
                    &self.dsts[self.pos..self.pos + BURST],
                );
                if single {
                    for ((slot, &hash), &dst) in self.out.iter_mut().zip(hashes).zip(dsts) {
                        *slot = self.balancer.decide(self.now_ns, black_box(hash), dst);
                    }
                } else {
                    self.balancer
                        .decide_burst(self.now_ns, black_box(hashes), dsts, &mut self.out);
                }
                black_box(&self.out);
                self.now_ns += self.step_ns;
                self.pos = (self.pos + BURST) % self.hashes.len();
            }
            elapsed += start.elapsed();
            left -= chunk;
            self.bursts += chunk;
            if self.bursts.is_multiple_of(self.period_bursts) {
                self.controller
                    .record_samples(&self.samples)
                    .expect("one per port");
                self.controller.publish();
            }
        }
        elapsed
    }
}

/// Where criterion writes its results: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else the target directory of the
/// running bench binary (`<target>/release/deps/<bench>`).
pub fn criterion_home() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(home.into());
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(PathBuf::from(target).join("criterion"));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.parent()?.join("criterion"))
}

/// The time per iteration, in ns, that criterion measured for
/// `group/function` in this run: its slope estimate (the middle figure of
/// the `time:` line it prints), or the mean where it has no slope. Results
/// written before `since` are ignored, so a filtered run never mixes in
/// old figures.
pub fn criterion_estimate_ns(group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_home()?
        .join(group)
        .join(function)
        .join("new")
        .join("estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["slope"]["point_estimate"]
        .as_f64()
        .or_else(|| json["mean"]["point_estimate"].as_f64())
}
