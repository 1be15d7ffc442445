//! Times every Toeplitz variant and the balancer decision in one process,
//! with `std::time::Instant`, and prints markdown tables with the ratio of
//! each hash variant against DPDK's `rte_softrss`.
//!
//! `cargo run --release -p dmpd-benches --bin hash-ratio`
//!
//! Rounds are interleaved (every variant once per round) so that a change
//! in machine load hits all variants alike; the figure is the median over
//! the rounds, and the minimum is shown too.

use std::hint::black_box;
use std::time::{Duration, Instant};

use dmpd_benches::{
    dmpd_tuples, ipv4_tuples, ipv6_tuples, to_words, DecisionBench, SoftRss, BURST, POOL,
    SCENARIOS, SEED,
};
use ffi::rss::{softrss, GfniAnchor};
use lb::toeplitz::{Toeplitz, MS_RSS_KEY};

const ROUNDS: usize = 31;
/// Each timed measurement lasts at least this long.
const MIN_MEASUREMENT: Duration = Duration::from_millis(5);

/// A variant: times `passes` passes over its pool, returns the elapsed
/// time and how many operations it did.
type Variant<'a> = (&'static str, Box<dyn FnMut(u64) -> (Duration, u64) + 'a>);

fn time_passes<T>(pool: &[T], passes: u64, mut hash: impl FnMut(&T) -> u32) -> (Duration, u64) {
    let start = Instant::now();
    let mut acc = 0u32;
    for _ in 0..passes {
        for item in black_box(pool) {
            acc ^= hash(black_box(item));
        }
    }
    black_box(acc);
    (start.elapsed(), passes * pool.len() as u64)
}

fn hash_variants<'a, const N: usize>(
    pool: &'a [[u8; N]],
    ours: &'a Toeplitz,
    anchor: &'a SoftRss,
    gfni: Option<&'a GfniAnchor>,
) -> Vec<Variant<'a>> {
    let words = to_words(pool);
    let words_ffi = words.clone();
    let words_be = words.clone();
    let mut v: Vec<Variant<'a>> = vec![
        (
            "rte_softrss",
            Box::new(move |p| time_passes(&words, p, |w| anchor.softrss(w.as_slice()))),
        ),
        (
            "rte_softrss (ffi wrapper, copies the key per call)",
            Box::new(move |p| time_passes(&words_ffi, p, |w| softrss(w.as_slice(), &MS_RSS_KEY))),
        ),
        (
            "rte_softrss_be",
            Box::new(move |p| time_passes(&words_be, p, |w| anchor.softrss_be(w.as_slice()))),
        ),
    ];
    if let Some(gfni) = gfni {
        v.push((
            "rte_thash_gfni",
            Box::new(move |p| time_passes(pool, p, |t| gfni.hash(t))),
        ));
    }
    v.push((
        "ours hash",
        Box::new(move |p| time_passes(pool, p, |t| ours.hash(black_box(&t[..])))),
    ));
    v.push((
        "ours hash_array",
        Box::new(move |p| time_passes(pool, p, |t| ours.hash_array(t))),
    ));
    v.push((
        "ours hash_burst (32)",
        Box::new(move |p| {
            let mut out = [0u32; BURST];
            let start = Instant::now();
            for _ in 0..p {
                for batch in black_box(pool).chunks_exact(BURST) {
                    ours.hash_burst(black_box(batch), &mut out);
                    black_box(&out);
                }
            }
            (start.elapsed(), p * pool.len() as u64)
        }),
    ));
    v
}

/// Runs every variant `ROUNDS` times, interleaved; returns ns per
/// operation, sorted, per variant.
fn measure(variants: &mut [Variant<'_>]) -> Vec<Vec<f64>> {
    // Calibrate: passes so that one measurement lasts MIN_MEASUREMENT.
    let passes: Vec<u64> = variants
        .iter_mut()
        .map(|(_, f)| {
            let (t, _) = f(1);
            (MIN_MEASUREMENT.as_nanos() / t.as_nanos().max(1)).max(1) as u64
        })
        .collect();
    let mut ns = vec![Vec::with_capacity(ROUNDS); variants.len()];
    for _ in 0..ROUNDS {
        for ((_, f), (&p, out)) in variants.iter_mut().zip(passes.iter().zip(&mut ns)) {
            let (t, ops) = f(p);
            out.push(t.as_nanos() as f64 / ops as f64);
        }
    }
    for v in &mut ns {
        v.sort_by(f64::total_cmp);
    }
    ns
}

fn median(sorted: &[f64]) -> f64 {
    sorted[sorted.len() / 2]
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

fn main() {
    let ours = Toeplitz::default();
    let anchor = SoftRss::new(&MS_RSS_KEY);
    let gfni = GfniAnchor::new(&MS_RSS_KEY);
    println!("CPU: {}", cpu_model());
    println!("load average at start: {}", loadavg());
    println!(
        "our burst path: {}",
        ours.simd_path().unwrap_or("portable tables")
    );
    if gfni.is_none() {
        println!(
            "rte_thash_gfni: skipped, {}",
            GfniAnchor::unavailable_reason().unwrap_or("anchor unavailable")
        );
    }
    println!(
        "{ROUNDS} interleaved rounds of >= {} ms per variant; pools of {POOL} tuples\n",
        MIN_MEASUREMENT.as_millis()
    );

    let dmpd = dmpd_tuples(SEED, POOL);
    let v4 = ipv4_tuples(SEED, POOL);
    let v6 = ipv6_tuples(SEED, POOL);
    let families: [(&str, Vec<Variant<'_>>); 3] = [
        (
            "DMPD tuple, 9 B",
            hash_variants(&dmpd, &ours, &anchor, gfni.as_ref()),
        ),
        (
            "IPv4+ports, 12 B",
            hash_variants(&v4, &ours, &anchor, gfni.as_ref()),
        ),
        (
            "IPv6+ports, 36 B",
            hash_variants(&v6, &ours, &anchor, gfni.as_ref()),
        ),
    ];
    println!(
        "| tuple | variant | ns/hash (median) | ns/hash (min) | rte_softrss / variant (medians) | (minima) |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for (label, mut variants) in families {
        let ns = measure(&mut variants);
        let (anchor_median, anchor_min) = (median(&ns[0]), ns[0][0]);
        for ((name, _), v) in variants.iter().zip(&ns) {
            println!(
                "| {label} | {name} | {:.2} | {:.2} | {:.1}x | {:.1}x |",
                median(v),
                v[0],
                anchor_median / median(v),
                anchor_min / v[0]
            );
        }
    }

    println!(
        "\n| ports | workload | variant | ns/decision (median) | ns/decision (min) | decision mix |"
    );
    println!("|---:|---|---|---:|---:|---|");
    for ports in [4, 8] {
        for ((scenario, step_ns), (name, single)) in SCENARIOS
            .into_iter()
            .flat_map(|s| [(s, ("decide_burst (32)", false)), (s, ("decide", true))])
        {
            let mut fixture = DecisionBench::new(ports, step_ns, SEED);
            // Warm up: fill the bucket table and reach a steady placement rate.
            fixture.run(2_000, single);
            let bursts = 2_000u64;
            let mut ns: Vec<f64> = (0..ROUNDS)
                .map(|_| {
                    fixture.run(bursts, single).as_nanos() as f64 / (bursts * BURST as u64) as f64
                })
                .collect();
            ns.sort_by(f64::total_cmp);
            let c = fixture.counters();
            let share = |n: u64| 100.0 * n as f64 / c.decisions.max(1) as f64;
            println!(
                "| {ports} | {scenario} | {name} | {:.2} | {:.2} | {:.1}% placements, {:.1}% rebalanced |",
                median(&ns),
                ns[0],
                share(c.placements),
                share(c.rebalanced)
            );
        }
    }
    println!("\nload average at end: {}", loadavg());
}
