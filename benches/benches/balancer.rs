//! ns per balancer decision at 4 and 8 ports: `decide_burst` in bursts of
//! 32, and `decide` packet by packet on the same stream, with loads
//! published so that balancing is on and some ports are above the mean,
//! in two workloads (`dmpd_benches::SCENARIOS`: all flows sticky, and a
//! fifth of the decisions placing an idle bucket). One iteration is one
//! burst of 32 decisions; the controller publishes once per 1 ms of
//! simulated time outside the timed region, and the balancer's take-in of
//! each new snapshot is timed. After the run the per-decision figures and
//! the slow-path shares are printed.
//!
//! `cargo bench -p dmpd-benches --bench balancer -- --warm-up-time 1 --measurement-time 3`

use std::time::SystemTime;

use criterion::{Criterion, Throughput};
use dmpd_benches::{criterion_estimate_ns, DecisionBench, BURST, SCENARIOS, SEED};
use lb::balancer::Counters;

const PORTS: [usize; 2] = [4, 8];
const VARIANTS: [(&str, bool); 2] = [("decide_burst32", false), ("decide_single", true)];

fn group_name(ports: usize) -> String {
    format!("balancer_{ports}_ports")
}

fn describe(counters: &Counters) -> String {
    let share = |n: u64| 100.0 * n as f64 / counters.decisions.max(1) as f64;
    format!(
        "{:.1}% placements, {:.1}% rebalanced, {} refreshes",
        share(counters.placements),
        share(counters.rebalanced),
        counters.refreshes
    )
}

fn main() {
    let since = SystemTime::now();
    let mut c = Criterion::default().without_plots().configure_from_args();
    let mut mixes = Vec::new();
    for ports in PORTS {
        let mut g = c.benchmark_group(group_name(ports));
        g.throughput(Throughput::Elements(BURST as u64));
        for (scenario, step_ns) in SCENARIOS {
            for (variant, single) in VARIANTS {
                let name = format!("{scenario}_{variant}");
                let mut fixture = DecisionBench::new(ports, step_ns, SEED);
                assert!(fixture.balancing(), "the fixture's loads turn balancing on");
                g.bench_function(&name, |b| {
                    b.iter_custom(|bursts| fixture.run(bursts, single))
                });
                mixes.push((ports, name, describe(&fixture.counters())));
            }
        }
        g.finish();
    }
    c.final_summary();

    println!("\nns per decision (criterion slope estimate / 32)\n");
    println!("| ports | variant | ns/decision | decision mix |");
    println!("|---:|---|---:|---|");
    for (ports, name, mix) in mixes {
        let ns = criterion_estimate_ns(&group_name(ports), &name, since)
            .map_or("not measured in this run".to_string(), |ns| {
                format!("{:.2}", ns / BURST as f64)
            });
        println!("| {ports} | {name} | {ns} | {mix} |");
    }
}
