//! ns per Toeplitz hash: ours (`hash`, `hash_array`, `hash_burst` in
//! bursts of 32) against DPDK's `rte_softrss`, `rte_softrss_be` and, where
//! the CPU runs it, `rte_thash_gfni` from the GFNI anchor build, for the
//! DMPD 9-byte tuple, the 12-byte IPv4+ports tuple and the 36-byte
//! IPv6+ports tuple. Every variant hashes the same pool of tuples, 32 per
//! iteration; after the run the ratios against `rte_softrss` are printed.
//!
//! `cargo bench -p dmpd-benches --bench toeplitz -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{Criterion, Throughput};
use dmpd_benches::{
    criterion_estimate_ns, dmpd_tuples, ipv4_tuples, ipv6_tuples, to_words, SoftRss, BURST, POOL,
    SEED,
};
use ffi::rss::{softrss, GfniAnchor};
use lb::toeplitz::{Toeplitz, MS_RSS_KEY};

/// Variants, in the order of the ratio table; the anchor first.
const VARIANTS: [&str; 7] = [
    "rte_softrss",
    "rte_softrss_ffi_wrapper",
    "rte_softrss_be",
    "rte_thash_gfni",
    "ours_hash",
    "ours_hash_array",
    "ours_hash_burst32",
];

/// (criterion group, tuple description)
const FAMILIES: [(&str, &str); 3] = [
    ("toeplitz_dmpd_9B", "DMPD tuple, 9 B"),
    ("toeplitz_ipv4_12B", "IPv4+ports, 12 B"),
    ("toeplitz_ipv6_36B", "IPv6+ports, 36 B"),
];

/// Runs `f(batch)` on successive batches of 32 from the pool.
fn batches<'a, T, R>(pool: &'a [T], mut f: impl FnMut(&[T]) -> R + 'a) -> impl FnMut() -> R + 'a {
    let mut pos = 0;
    move || {
        let batch = &pool[pos..pos + BURST];
        pos = (pos + BURST) % pool.len();
        f(black_box(batch))
    }
}

fn family<const N: usize>(c: &mut Criterion, group: &str, pool: &[[u8; N]]) {
    let ours = Toeplitz::default();
    let anchor = SoftRss::new(&MS_RSS_KEY);
    let words = to_words(pool);
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(BURST as u64));

    g.bench_function("rte_softrss", |b| {
        b.iter(batches(&words, |batch| {
            batch
                .iter()
                .fold(0, |acc, w| acc ^ anchor.softrss(w.as_slice()))
        }))
    });
    g.bench_function("rte_softrss_ffi_wrapper", |b| {
        b.iter(batches(&words, |batch| {
            batch
                .iter()
                .fold(0, |acc, w| acc ^ softrss(w.as_slice(), &MS_RSS_KEY))
        }))
    });
    g.bench_function("rte_softrss_be", |b| {
        b.iter(batches(&words, |batch| {
            batch
                .iter()
                .fold(0, |acc, w| acc ^ anchor.softrss_be(w.as_slice()))
        }))
    });
    match GfniAnchor::new(&MS_RSS_KEY) {
        Some(gfni) => {
            g.bench_function("rte_thash_gfni", |b| {
                b.iter(batches(pool, |batch| {
                    batch.iter().fold(0, |acc, t| acc ^ gfni.hash(t))
                }))
            });
        }
        None => println!(
            "{group}/rte_thash_gfni: skipped, {}",
            GfniAnchor::unavailable_reason().unwrap_or("anchor unavailable")
        ),
    }
    g.bench_function("ours_hash", |b| {
        b.iter(batches(pool, |batch| {
            batch
                .iter()
                .fold(0, |acc, t| acc ^ ours.hash(black_box(&t[..])))
        }))
    });
    g.bench_function("ours_hash_array", |b| {
        b.iter(batches(pool, |batch| {
            batch.iter().fold(0, |acc, t| acc ^ ours.hash_array(t))
        }))
    });
    let mut out = [0u32; BURST];
    g.bench_function("ours_hash_burst32", |b| {
        b.iter(batches(pool, |batch| {
            ours.hash_burst(batch, &mut out);
            out
        }))
    });
    g.finish();
}

fn print_ratios(since: SystemTime) {
    let path = Toeplitz::default()
        .simd_path()
        .unwrap_or("portable tables (no GFNI on this CPU)");
    println!("\nns per hash (criterion slope estimate / 32); ratio = rte_softrss / variant; our burst path: {path}\n");
    println!("| tuple | variant | ns/hash | rte_softrss / variant |");
    println!("|---|---|---:|---:|");
    for (group, label) in FAMILIES {
        let anchor = criterion_estimate_ns(group, VARIANTS[0], since).map(|ns| ns / BURST as f64);
        for variant in VARIANTS {
            let Some(ns) = criterion_estimate_ns(group, variant, since).map(|ns| ns / BURST as f64)
            else {
                let why = match GfniAnchor::unavailable_reason() {
                    Some(why) if variant == "rte_thash_gfni" => format!("skipped: {why}"),
                    _ => "not measured in this run".to_string(),
                };
                println!("| {label} | {variant} | {why} | |");
                continue;
            };
            let ratio = anchor.map_or("no anchor".to_string(), |a| format!("{:.1}x", a / ns));
            println!("| {label} | {variant} | {ns:.2} | {ratio} |");
        }
    }
}

fn main() {
    let since = SystemTime::now();
    let mut c = Criterion::default().without_plots().configure_from_args();
    family(&mut c, FAMILIES[0].0, &dmpd_tuples(SEED, POOL));
    family(&mut c, FAMILIES[1].0, &ipv4_tuples(SEED, POOL));
    family(&mut c, FAMILIES[2].0, &ipv6_tuples(SEED, POOL));
    c.final_summary();
    print_ratios(since);
}
