//! Reproduces the paper's load-balancing claim (seed 001, section 4) with a
//! seeded simulation: with balancing, per-port utilisation is far more even
//! than with plain `hash % n_ports`, without reordering any flow.
//!
//! Model (all times virtual, nothing sleeps):
//! - 1 Gb/s ports, time advances in 1 ms ticks; each port drains one tick
//!   of line rate per tick from a tx ring of 2 ms (250 KB): a chunk that
//!   does not fit is dropped and counted as a ring overflow.
//! - 1,000 on/off flows, each `dnode`/`spipe`/`dpipe` distinct, hashed with
//!   the Toeplitz hash of their DMPD tuple. While on, a flow sends one chunk
//!   a tick at its own rate (1% to 3% of a port); an on period carries a
//!   Pareto(alpha 1.5) number of bytes (mean 1 s of sending) in trains of
//!   40 to 120 ticks separated by pauses of 3 to 4 ticks; an off period is
//!   exponential with the mean that gives about 50% mean utilisation. The
//!   flows that are on at the start come up over the first ten periods,
//!   with the residual size of an on period seen at a random instant.
//! - Every 20 ms period the controller takes each port's utilisation
//!   (bytes sent / capacity) and overflow rate, smooths and publishes, as
//!   the agent does; the balancer decides every chunk, with a 2.5 ms idle
//!   gap (the rule: above the longest ring wait plus wire time).
//! - After the 10 warm-up and 60 measured periods, 100 new flows start in
//!   the same tick; their first placements must spread over the ports.
//! - A chunk's arrival time is its send time plus the ring's backlog ahead
//!   of it plus 10 us of wire; a chunk arriving before an earlier chunk of
//!   its flow is a reorder.
//!
//! Figures: `cargo test -p dmpd-lb --release --test paper_claim -- --include-ignored --nocapture`.

use lb::balancer::{BalancerConfig, Controller, NO_PORT};
use lb::load::{LoadConfig, PortSample};
use lb::toeplitz::Toeplitz;
use lb::tuple::DmpdTuple;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Bytes a 1 Gb/s port sends in a nanosecond.
const PORT_BYTES_PER_NS: f64 = 0.125;
/// 2 ms of line rate: a chunk may wait up to two ticks, so a flow that
/// moved without waiting could overtake itself.
const RING_BYTES: f64 = 250_000.0;
/// The balancer's idle gap: above the longest ring wait plus the wire.
const IDLE_GAP_NS: u64 = 2_500_000;
const WIRE_NS: f64 = 10_000.0;
const NS_PER_BYTE: f64 = 8.0;
const FLOWS: usize = 1_000;
const BURST_FLOWS: usize = 100;
const MEAN_UTILISATION: f64 = 0.5;
const PARETO_ALPHA: f64 = 1.5;
const SEEDS: u64 = 50;

#[derive(Clone, Copy, Debug)]
struct Workload {
    mean_on_ticks: f64,
    warmup_periods: u64,
    measured_periods: u64,
    /// Per-flow rate range while on, as fractions of a port.
    rate: (f64, f64),
    /// An on period is sent as trains of `train` ticks (inclusive range)
    /// separated by pauses of `pause` ticks; `(0, 0)` sends continuously.
    train: (u64, u64),
    pause: (u64, u64),
    /// Length of a tick.
    tick_ns: u64,
    /// Ticks per load-refresh period.
    ticks_per_period: u64,
    /// Tx ring size, bytes.
    ring_bytes: f64,
    /// The balancer's idle gap.
    idle_gap_ns: u64,
}

/// The workload of the claim: on periods of 1 s on average, sent in trains
/// of 40 to 120 ms; a flow's chunks are 4 to 5 ms apart across a pause,
/// longer than the 2.5 ms idle gap, so a flow may move between trains.
const WORKLOAD: Workload = Workload {
    mean_on_ticks: 1000.0,
    warmup_periods: 10,
    measured_periods: 60,
    rate: (0.01, 0.03),
    train: (40, 120),
    pause: (3, 4),
    tick_ns: 1_000_000,
    ticks_per_period: 20,
    ring_bytes: RING_BYTES,
    idle_gap_ns: IDLE_GAP_NS,
};

/// The same flows sending each on period without a pause: a flow can move
/// only between on periods.
const CONTINUOUS: Workload = Workload {
    train: (0, 0),
    pause: (0, 0),
    ..WORKLOAD
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    PlainHash,
    Balanced { idle_gap_ns: u64 },
}

struct Flow {
    hash: u32,
    dnode: u16,
    /// Bytes per tick while on.
    rate: f64,
    /// Bytes left in the current on period.
    left: f64,
    last_arrival_ns: f64,
    port: u8,
    /// Ticks left in the current train of an on period.
    train_left: u64,
}

struct RunResult {
    /// Mean over measured periods of the population std-dev of per-port
    /// utilisation, in percent.
    spread: f64,
    reorders: u64,
    moves: u64,
    drops: u64,
    /// Per-port first placement of the burst of new flows.
    burst_ports: Vec<u32>,
    mean_utilisation: f64,
    /// Measured periods in which balancing was on.
    balancing_periods: u64,
}

fn pareto(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    let x_m = mean * (PARETO_ALPHA - 1.0) / PARETO_ALPHA;
    let u: f64 = 1.0 - rng.gen::<f64>();
    x_m / u.powf(1.0 / PARETO_ALPHA)
}

/// Residual life of a Pareto on period at a random instant: uniform below
/// `x_m` with probability `(alpha - 1) / alpha`, else Pareto of shape
/// `alpha - 1`.
fn pareto_residual(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    let x_m = mean * (PARETO_ALPHA - 1.0) / PARETO_ALPHA;
    if rng.gen::<f64>() < (PARETO_ALPHA - 1.0) / PARETO_ALPHA {
        rng.gen::<f64>() * x_m
    } else {
        let u: f64 = 1.0 - rng.gen::<f64>();
        x_m / u.powf(1.0 / (PARETO_ALPHA - 1.0))
    }
}

fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    -mean * (1.0 - rng.gen::<f64>()).ln()
}

fn run(seed: u64, n_ports: usize, mode: Mode, load: LoadConfig, w: Workload) -> RunResult {
    #[allow(non_snake_case)]
    let PORT_BYTES_PER_TICK = PORT_BYTES_PER_NS * w.tick_ns as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed * 1_000 + n_ports as u64);
    let toeplitz = Toeplitz::default();
    let capacity = PORT_BYTES_PER_TICK * n_ports as f64;
    let duty = if w.train.1 == 0 {
        1.0
    } else {
        let train = (w.train.0 + w.train.1) as f64 / 2.0;
        let pause = (w.pause.0 + w.pause.1) as f64 / 2.0 + 1.0;
        train / (train + pause)
    };
    let mean_rate = (w.rate.0 + w.rate.1) / 2.0 * PORT_BYTES_PER_TICK * duty;
    // Mean number of flows on, for the target utilisation; hence off time.
    let on_fraction = MEAN_UTILISATION * capacity / mean_rate / FLOWS as f64;
    let mean_off_ticks = w.mean_on_ticks * (1.0 - on_fraction) / on_fraction;
    // One extra, unmeasured period at the end receives the burst of new
    // flows, so that the burst does not distort the spread figures.
    let total_ticks = (w.warmup_periods + w.measured_periods + 1) * w.ticks_per_period;

    let mut flows: Vec<Flow> = (0..FLOWS + BURST_FLOWS)
        .map(|f| {
            let tuple = DmpdTuple {
                snode: 0,
                dnode: 1 + (f % 9) as u16,
                spipe: f as u16,
                dpipe: (f as u16).wrapping_mul(31),
                ptype: 1,
            };
            Flow {
                hash: toeplitz.hash_array(&tuple.to_bytes()),
                dnode: tuple.dnode,
                rate: rng.gen_range(w.rate.0..w.rate.1) * PORT_BYTES_PER_TICK,
                left: 0.0,
                last_arrival_ns: 0.0,
                port: NO_PORT,
                train_left: 0,
            }
        })
        .collect();
    // Calendar of flows switching on, by tick.
    let mut wake: Vec<Vec<u32>> = vec![Vec::new(); total_ticks as usize + 1];
    let mut active: Vec<u32> = Vec::new();
    for (f, flow) in flows.iter_mut().enumerate().take(FLOWS) {
        if rng.gen::<f64>() < on_fraction {
            // Flows that are on in steady state ramp up over the first ten
            // periods, so that the balancer places them with real loads
            // (a cold start with every port at 0 would be plain hashing).
            let t = rng.gen_range(0..10 * w.ticks_per_period) as usize;
            wake[t].push(f as u32);
            // What is left of an on period seen at a random instant (its
            // equilibrium residual), so the mix of flows starts stationary.
            flow.left = pareto_residual(&mut rng, w.mean_on_ticks) * flow.rate;
        } else {
            let t = exponential(&mut rng, mean_off_ticks) as usize;
            if t <= total_ticks as usize {
                wake[t].push(f as u32);
            }
        }
    }
    let burst_tick = total_ticks - w.ticks_per_period / 2;

    let mut controller = Controller::new(n_ports, load).unwrap();
    let idle_gap_ns = match mode {
        Mode::Balanced { idle_gap_ns } => idle_gap_ns,
        Mode::PlainHash => 0,
    };
    let mut balancer = controller
        .balancer(BalancerConfig {
            idle_gap_ns,
            ..BalancerConfig::default()
        })
        .unwrap();

    let mut backlog = vec![0.0f64; n_ports];
    let mut sent = vec![0.0f64; n_ports];
    let mut offered = vec![0u64; n_ports];
    let mut dropped = vec![0u64; n_ports];
    let mut burst_ports = vec![0u32; n_ports];
    let (mut reorders, mut moves, mut drops) = (0, 0, 0);
    let mut spread_sum = 0.0;
    let mut balancing_periods = 0;
    let mut util_sum = 0.0;

    for tick in 0..total_ticks {
        let now_ns = tick * w.tick_ns;
        for (b, s) in backlog.iter_mut().zip(sent.iter_mut()) {
            let out = b.min(PORT_BYTES_PER_TICK);
            *b -= out;
            *s += out;
        }
        active.append(&mut wake[tick as usize]);
        if tick == burst_tick {
            for (f, flow) in flows.iter_mut().enumerate().skip(FLOWS) {
                flow.left = 1e12;
                active.push(f as u32);
            }
        }
        let mut i = 0;
        while i < active.len() {
            let f = active[i] as usize;
            let flow = &mut flows[f];
            if flow.left <= 0.0 {
                // Start of an on period.
                flow.left = pareto(&mut rng, w.mean_on_ticks) * flow.rate;
            }
            let port = match mode {
                Mode::PlainHash => (flow.hash % n_ports as u32) as u8,
                Mode::Balanced { .. } => balancer.decide(now_ns, flow.hash, flow.dnode).tx_port,
            };
            if tick == burst_tick && f >= FLOWS {
                burst_ports[usize::from(port)] += 1;
            }
            if flow.port != NO_PORT && flow.port != port {
                moves += 1;
            }
            flow.port = port;
            let p = usize::from(port);
            let chunk = flow.rate.min(flow.left);
            flow.left -= chunk;
            offered[p] += 1;
            if backlog[p] + chunk > w.ring_bytes {
                dropped[p] += 1;
                drops += 1;
            } else {
                backlog[p] += chunk;
                let arrival = now_ns as f64 + backlog[p] * NS_PER_BYTE + WIRE_NS;
                if arrival < flow.last_arrival_ns {
                    reorders += 1;
                }
                flow.last_arrival_ns = arrival;
            }
            let in_trains = w.train.1 > 0 && flow.left > 0.0 && f < FLOWS;
            if in_trains && flow.train_left <= 1 {
                // End of a train: pause, then carry on with the same period.
                let resume = tick + 1 + rng.gen_range(w.pause.0..=w.pause.1);
                flow.train_left = rng.gen_range(w.train.0..=w.train.1);
                if resume <= total_ticks {
                    wake[resume as usize].push(f as u32);
                }
                active.swap_remove(i);
            } else if flow.left <= 0.0 && f < FLOWS {
                let off = exponential(&mut rng, mean_off_ticks).max(1.0) as u64;
                if tick + off <= total_ticks {
                    wake[(tick + off) as usize].push(f as u32);
                }
                active.swap_remove(i);
            } else {
                flow.train_left = flow.train_left.saturating_sub(1);
                i += 1;
            }
        }
        if (tick + 1) % w.ticks_per_period == 0 {
            let period = (tick + 1) / w.ticks_per_period;
            let period_bytes = PORT_BYTES_PER_TICK * w.ticks_per_period as f64;
            let samples: Vec<PortSample> = (0..n_ports)
                .map(|p| PortSample {
                    utilisation: sent[p] / period_bytes,
                    drop_rate: 0.0,
                    overflow_rate: if offered[p] == 0 {
                        0.0
                    } else {
                        dropped[p] as f64 / offered[p] as f64
                    },
                })
                .collect();
            if period > w.warmup_periods && period <= w.warmup_periods + w.measured_periods {
                let utils: Vec<f64> = samples.iter().map(|s| s.utilisation * 100.0).collect();
                let mean = utils.iter().sum::<f64>() / n_ports as f64;
                let var = utils.iter().map(|u| (u - mean).powi(2)).sum::<f64>() / n_ports as f64;
                spread_sum += var.sqrt();
                util_sum += mean;
                balancing_periods += u64::from(controller.snapshot().balancing());
            }
            controller.record_samples(&samples).unwrap();
            controller.publish();
            sent.iter_mut().for_each(|s| *s = 0.0);
            offered.iter_mut().for_each(|o| *o = 0);
            dropped.iter_mut().for_each(|d| *d = 0);
        }
    }
    RunResult {
        spread: spread_sum / w.measured_periods as f64,
        reorders,
        moves,
        drops,
        burst_ports,
        mean_utilisation: util_sum / w.measured_periods as f64,
        balancing_periods,
    }
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

struct Summary {
    median: f64,
    p95: f64,
}

fn summarise(mut spreads: Vec<f64>) -> Summary {
    spreads.sort_by(|a, b| a.partial_cmp(b).unwrap());
    Summary {
        median: percentile(&spreads, 0.5),
        p95: percentile(&spreads, 0.95),
    }
}

struct ClaimFigures {
    plain: Summary,
    balanced: Summary,
}

/// Runs `SEEDS` seeds of plain hashing and of balancing over `n_ports`,
/// prints the figures and checks the rules that hold for every workload:
/// no reordering, flows do move, and a burst of new flows spreads.
fn claim(n_ports: usize, load: LoadConfig, workload: Workload, label: &str) -> ClaimFigures {
    let gap = workload.idle_gap_ns;
    let mut plain = Vec::new();
    let mut balanced = Vec::new();
    let mut reorders = 0;
    let mut moves = 0;
    let mut drops = (0, 0);
    let mut util = 0.0;
    let mut balancing_periods = 0;
    let mut worst_burst = 0;
    for seed in 0..SEEDS {
        let p = run(seed, n_ports, Mode::PlainHash, load, workload);
        let b = run(
            seed,
            n_ports,
            Mode::Balanced { idle_gap_ns: gap },
            load,
            workload,
        );
        assert_eq!(p.reorders, 0, "plain hashing never moves a flow");
        reorders += b.reorders;
        moves += b.moves;
        drops.0 += p.drops;
        drops.1 += b.drops;
        util += b.mean_utilisation;
        balancing_periods += b.balancing_periods;
        // The burst of new flows must not land on one port: no port takes
        // more than twice its fair share.
        let most = *b.burst_ports.iter().max().unwrap();
        worst_burst = worst_burst.max(most);
        assert!(
            most as usize <= 2 * BURST_FLOWS / n_ports,
            "seed {seed}: burst of new flows piled up: {:?}",
            b.burst_ports
        );
        plain.push(p.spread);
        balanced.push(b.spread);
    }
    let plain = summarise(plain);
    let balanced = summarise(balanced);
    println!(
        "{label}, {n_ports} ports, {SEEDS} seeds: spread (std-dev of per-port utilisation, \
         percentage points): plain hash median {:.2} p95 {:.2}; balanced median {:.2} p95 {:.2}; \
         ratio of medians {:.3}; flow moves {moves}, reorders {reorders}, chunks dropped \
         plain {} balanced {}, mean utilisation {:.1}%, balancing on in {:.0}% of periods; \
         burst of {BURST_FLOWS} new flows: at most {worst_burst} on one port",
        plain.median,
        plain.p95,
        balanced.median,
        balanced.p95,
        balanced.median / plain.median,
        drops.0,
        drops.1,
        util / SEEDS as f64,
        100.0 * balancing_periods as f64 / (SEEDS * workload.measured_periods) as f64,
    );
    assert_eq!(reorders, 0, "balancing reordered a flow");
    assert!(moves > 0, "balancing never moved a flow");
    ClaimFigures { plain, balanced }
}

fn assert_third(figures: &ClaimFigures) {
    assert!(
        figures.balanced.median <= figures.plain.median / 3.0,
        "median spread {:.2} with balancing is above a third of {:.2}",
        figures.balanced.median,
        figures.plain.median
    );
}

#[test]
fn balancing_evens_four_ports() {
    assert_third(&claim(4, LoadConfig::default(), WORKLOAD, "default config"));
}

#[test]
fn balancing_evens_eight_ports() {
    assert_third(&claim(8, LoadConfig::default(), WORKLOAD, "default config"));
}

/// Figures for the documentation: flows that never pause inside an on
/// period (fewer chances to move) and the other reading of gamma. Only the
/// rules common to every workload are asserted, and that balancing helps.
#[test]
#[cfg_attr(debug_assertions, ignore = "figures for the docs; slow in debug")]
fn figures_for_other_workloads() {
    for n_ports in [4, 8] {
        let f = claim(
            n_ports,
            LoadConfig::default(),
            CONTINUOUS,
            "continuous sending",
        );
        assert!(f.balanced.median < f.plain.median / 2.0);
        let history = LoadConfig {
            gamma_weights_previous: true,
            ..LoadConfig::default()
        };
        let f = claim(n_ports, history, WORKLOAD, "gamma weights history");
        assert!(f.balanced.median < f.plain.median);
    }
}

/// The reorder detector works: moving flows without waiting for an idle
/// gap, with flows big enough to fill rings, does reorder them.
#[test]
fn moving_without_idle_gap_reorders() {
    let heavy = Workload {
        rate: (0.1, 0.3),
        ..CONTINUOUS
    };
    let reorders: u64 = (0..3)
        .map(|seed| {
            run(
                seed,
                4,
                Mode::Balanced { idle_gap_ns: 0 },
                LoadConfig::default(),
                heavy,
            )
            .reorders
        })
        .sum();
    println!("idle gap 0: {reorders} reorders");
    assert!(reorders > 0);
    // The same flows with the idle gap: none.
    let reorders: u64 = (0..3)
        .map(|seed| {
            run(
                seed,
                4,
                Mode::Balanced {
                    idle_gap_ns: IDLE_GAP_NS,
                },
                LoadConfig::default(),
                heavy,
            )
            .reorders
        })
        .sum();
    assert_eq!(reorders, 0);
}
