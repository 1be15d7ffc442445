//! ns per frame for the data path's port decision, per frame against per
//! flow: the anchor hashes every frame's DMPD tuple (`Toeplitz::hash_array`)
//! and asks the balancer (`Balancer::decide`); the flow cache
//! (`lb::flowcache::FlowCache::decide`) does that once per flow and
//! snapshot. The stream is what the data-path bench sends: 64 flows
//! (packet types of one pipe pair) interleaved frame by frame, 100 ns
//! apart, with a new load snapshot every 100 ms of simulated time (taken
//! in inside the timed region, as on a polling lcore). One iteration is
//! one burst of 32 frames. The ratio is printed after the run.
//!
//! `cargo bench -p dmpd-benches --bench flowcache -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, Throughput};
use dmpd_benches::criterion_estimate_ns;
use lb::balancer::{Balancer, BalancerConfig, Controller};
use lb::flowcache::FlowCache;
use lb::load::{LoadConfig, PortSample};
use lb::toeplitz::Toeplitz;
use lb::tuple::DmpdTuple;

const GROUP: &str = "flow_decision";
const BURST: u64 = 32;
const FLOWS: u16 = 64;
const STEP_NS: u64 = 100;
const SNAPSHOT_NS: u64 = 100_000_000;

struct Fixture {
    controller: Controller,
    balancer: Balancer,
    toeplitz: Toeplitz,
    cache: FlowCache,
    keys: Vec<[u8; DmpdTuple::LEN]>,
    now: u64,
    next_snapshot: u64,
    frame: usize,
}

impl Fixture {
    fn new() -> Fixture {
        let mut controller = Controller::new(4, LoadConfig::default()).unwrap();
        controller
            .set_remote_node(2, &[0.1, 0.2, 0.3, 0.4], 0b1111)
            .unwrap();
        controller.publish();
        let balancer = controller
            .balancer(BalancerConfig {
                idle_gap_ns: 50_000_000,
                ..BalancerConfig::default()
            })
            .unwrap();
        let keys = (0..FLOWS)
            .map(|f| {
                DmpdTuple {
                    snode: 1,
                    dnode: 2,
                    spipe: 1,
                    dpipe: 1,
                    ptype: f as u8,
                }
                .to_bytes()
            })
            .collect();
        Fixture {
            controller,
            balancer,
            toeplitz: Toeplitz::default(),
            cache: FlowCache::new(),
            keys,
            now: 0,
            next_snapshot: SNAPSHOT_NS,
            frame: 0,
        }
    }

    fn run(&mut self, bursts: u64, cached: bool) -> Duration {
        let mut total = Duration::ZERO;
        for _ in 0..bursts {
            if self.now >= self.next_snapshot {
                // Control side, outside the timed region.
                self.controller
                    .record_samples(&[PortSample::default(); 4])
                    .unwrap();
                self.controller.publish();
                self.next_snapshot += SNAPSHOT_NS;
            }
            let t = Instant::now();
            self.balancer.refresh(self.now);
            for _ in 0..BURST {
                let key = &self.keys[self.frame % FLOWS as usize];
                let d = if cached {
                    self.cache
                        .decide(&mut self.balancer, &self.toeplitz, self.now, key)
                } else {
                    let hash = self.toeplitz.hash_array(key);
                    self.balancer.decide(self.now, hash, 2)
                };
                black_box(d);
                self.frame += 1;
                self.now += STEP_NS;
            }
            total += t.elapsed();
        }
        total
    }
}

fn main() {
    let since = SystemTime::now();
    let mut c = Criterion::default().without_plots().configure_from_args();
    let mut g = c.benchmark_group(GROUP);
    g.throughput(Throughput::Elements(BURST));
    let variants = [("per_frame_hash_decide", false), ("flow_cache", true)];
    let mut hits = None;
    for (name, cached) in variants {
        let mut f = Fixture::new();
        g.bench_function(name, |b| b.iter_custom(|n| f.run(n, cached)));
        if cached {
            hits = Some(f.cache.counters());
        }
    }
    g.finish();
    c.final_summary();
    let ns = |name: &str| criterion_estimate_ns(GROUP, name, since).map(|v| v / BURST as f64);
    println!("\nns per frame (criterion slope estimate / 32)\n");
    println!("| variant | ns/frame |");
    println!("|---|---:|");
    for (name, _) in variants {
        let v = ns(name).map_or("not measured in this run".into(), |v| format!("{v:.2}"));
        println!("| {name} | {v} |");
    }
    if let (Some(a), Some(b)) = (ns("per_frame_hash_decide"), ns("flow_cache")) {
        println!("\nflow cache / per frame: {:.2}x the time", b / a);
    }
    if let Some(k) = hits {
        println!("flow cache: {} hits, {} misses", k.hits, k.misses);
    }
}
