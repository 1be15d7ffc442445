//! Rough timings (run in release; the criterion benches in `benches/` are
//! the reference figures):
//! `cargo test -p dmpd-lb --release --test perf_smoke -- --ignored --nocapture`

use std::hint::black_box;
use std::time::Instant;

use lb::balancer::{BalancerConfig, Controller, Decision};
use lb::load::{LoadConfig, PortSample};
use lb::toeplitz::Toeplitz;

const ROUNDS: usize = 200_000;

fn time_burst<const N: usize>(t: &Toeplitz, label: &str) {
    let inputs: Vec<[u8; N]> = (0..32u32)
        .map(|i| core::array::from_fn(|b| (i as u8).wrapping_mul(31).wrapping_add(b as u8)))
        .collect();
    let mut out = [0u32; 32];
    let start = Instant::now();
    for _ in 0..ROUNDS {
        t.hash_burst(black_box(&inputs), &mut out);
        black_box(&out);
    }
    let burst = start.elapsed().as_nanos() as f64 / (ROUNDS * 32) as f64;
    let start = Instant::now();
    let mut acc = 0;
    for _ in 0..ROUNDS {
        for input in black_box(&inputs) {
            acc ^= t.hash_array(input);
        }
    }
    black_box(acc);
    let single = start.elapsed().as_nanos() as f64 / (ROUNDS * 32) as f64;
    println!(
        "{label} ({N} bytes): {single:.2} ns/hash one by one, {burst:.2} ns/hash in bursts of 32 ({:?})",
        t.simd_path()
    );
}

#[test]
#[ignore = "timing; run in release"]
fn timings() {
    let t = Toeplitz::default();
    time_burst::<9>(&t, "DMPD tuple");
    time_burst::<12>(&t, "IPv4 + ports");
    time_burst::<36>(&t, "IPv6 + ports");

    for ports in [4usize, 8] {
        let mut c = Controller::new(ports, LoadConfig::default()).unwrap();
        let loads: Vec<PortSample> = (0..ports)
            .map(|p| PortSample {
                utilisation: 0.3 + 0.05 * p as f64,
                ..PortSample::default()
            })
            .collect();
        c.record_samples(&loads).unwrap();
        for node in 0..10 {
            c.set_remote_node(node, &[0.2, 0.3, 0.1, 0.4], 0b1111)
                .unwrap();
        }
        c.publish();
        let mut b = c.balancer(BalancerConfig::default()).unwrap();
        let hashes: Vec<u32> = (0..32u32).map(|i| i.wrapping_mul(0x9e37_79b9)).collect();
        let dsts: Vec<u16> = (0..32u16).map(|i| i % 10).collect();
        let mut out = [Decision::default(); 32];
        let start = Instant::now();
        for round in 0..ROUNDS as u64 {
            // 10 us apart: flows stay active, as in a busy data lcore.
            b.decide_burst(round * 10_000, black_box(&hashes), &dsts, &mut out);
            black_box(&out);
        }
        let ns = start.elapsed().as_nanos() as f64 / (ROUNDS * 32) as f64;
        println!("decision, {ports} ports, bursts of 32: {ns:.2} ns/decision");
    }
}
