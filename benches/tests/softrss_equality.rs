//! Our Toeplitz hash (`hash`, `hash_array`, `hash_burst`, and the portable
//! burst path where `hash_burst` takes the SIMD one) equals DPDK's `rte_softrss` and `rte_softrss_be` on random
//! inputs of lengths 8, 9, 12, 32 and 36, with Microsoft's key and with
//! random 40-byte keys: 100,000 inputs per length with each kind of key,
//! 1,000,000 in all. Where the GFNI anchor runs, `rte_thash_gfni` is
//! compared too. No EAL needed.

use dmpd_benches::{random_dmpd, random_ipv4, random_ipv6, SoftRss, TupleWords};
use ffi::rss::{softrss, softrss_be, ConvertedKey, GfniAnchor};
use lb::toeplitz::{toeplitz_hash_reference, Toeplitz, MS_RSS_KEY};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Inputs per length with Microsoft's key, and with random keys.
const INPUTS: usize = 100_000;
/// Random keys per length; each hashes `INPUTS / RANDOM_KEYS` inputs.
const RANDOM_KEYS: usize = 100;
/// The bit-by-bit reference is slow in debug: check every 64th input.
const REFERENCE_EVERY: usize = 64;
/// The burst sizes the data path uses, and an odd one for the remainders.
const BURSTS: [usize; 2] = [32, 7];

/// One key under test, prepared for every implementation.
struct Keyed {
    key: [u8; 40],
    ours: Toeplitz,
    portable: Toeplitz,
    anchor: SoftRss,
    converted: ConvertedKey,
    gfni: Option<GfniAnchor>,
}

impl Keyed {
    fn new(key: [u8; 40]) -> Self {
        let ours = Toeplitz::new(&key, 36).expect("a 40-byte key fits 36-byte inputs");
        Self {
            portable: ours.clone().without_simd(),
            ours,
            anchor: SoftRss::new(&key),
            converted: ConvertedKey::new(&key),
            gfni: GfniAnchor::new(&key),
            key,
        }
    }
}

/// Checks `inputs` one by one against both DPDK functions (through the ffi
/// wrappers and through the benches' anchor), then in bursts.
fn check<const N: usize>(k: &Keyed, inputs: &[[u8; N]], what: &str) -> usize {
    let mut expected = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let words = TupleWords::new(input);
        let want = softrss(words.as_slice(), &k.key);
        let ctx = || format!("{what}, {N} bytes, input {input:02x?}, key {:02x?}", k.key);
        assert_eq!(k.ours.hash(input), want, "hash vs rte_softrss: {}", ctx());
        assert_eq!(k.ours.hash_array(input), want, "hash_array: {}", ctx());
        assert_eq!(
            softrss_be(words.as_slice(), &k.converted),
            want,
            "rte_softrss_be: {}",
            ctx()
        );
        assert_eq!(
            k.anchor.softrss(words.as_slice()),
            want,
            "bench anchor: {}",
            ctx()
        );
        assert_eq!(
            k.anchor.softrss_be(words.as_slice()),
            want,
            "bench anchor be: {}",
            ctx()
        );
        if i % REFERENCE_EVERY == 0 {
            assert_eq!(
                toeplitz_hash_reference(&k.key, input),
                want,
                "reference: {}",
                ctx()
            );
        }
        if let Some(gfni) = &k.gfni {
            assert_eq!(gfni.hash(input), want, "rte_thash_gfni: {}", ctx());
        }
        expected.push(want);
    }
    for burst in BURSTS {
        let mut out = vec![0u32; inputs.len()];
        for (ins, outs) in inputs.chunks(burst).zip(out.chunks_mut(burst)) {
            assert_eq!(k.ours.hash_burst(ins, outs), ins.len());
        }
        assert_eq!(out, expected, "hash_burst({burst}), {what}, {N} bytes");
    }
    if k.ours.simd_path().is_some() {
        // hash_burst took the SIMD path above: check the portable one too.
        let mut portable = vec![0u32; inputs.len()];
        for (ins, outs) in inputs.chunks(BURSTS[0]).zip(portable.chunks_mut(BURSTS[0])) {
            k.portable.hash_burst_tables(ins, outs);
        }
        assert_eq!(portable, expected, "hash_burst_tables, {what}, {N} bytes");
    }
    inputs.len()
}

/// Draws `count` inputs of each length from `rng` (through the tuple types,
/// so their byte layouts are under test too) and checks them with `k`.
fn check_all_lengths(k: &Keyed, rng: &mut ChaCha8Rng, count: usize, what: &str) -> usize {
    let dmpd: Vec<[u8; 9]> = (0..count).map(|_| random_dmpd(rng).to_bytes()).collect();
    let v4: Vec<_> = (0..count).map(|_| random_ipv4(rng)).collect();
    let v6: Vec<_> = (0..count).map(|_| random_ipv6(rng)).collect();
    let v4_ports: Vec<[u8; 12]> = v4.iter().map(|t| t.to_bytes()).collect();
    let v4_addrs: Vec<[u8; 8]> = v4.iter().map(|t| t.addrs_bytes()).collect();
    let v6_ports: Vec<[u8; 36]> = v6.iter().map(|t| t.to_bytes()).collect();
    let v6_addrs: Vec<[u8; 32]> = v6.iter().map(|t| t.addrs_bytes()).collect();
    check(k, &dmpd, what)
        + check(k, &v4_addrs, what)
        + check(k, &v4_ports, what)
        + check(k, &v6_addrs, what)
        + check(k, &v6_ports, what)
}

#[test]
fn toeplitz_equals_rte_softrss_on_random_inputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(dmpd_benches::SEED);
    let ms = Keyed::new(MS_RSS_KEY);
    let mut checked = check_all_lengths(&ms, &mut rng, INPUTS, "Microsoft key");
    for _ in 0..RANDOM_KEYS {
        let mut key = [0u8; 40];
        rng.fill_bytes(&mut key);
        let k = Keyed::new(key);
        checked += check_all_lengths(&k, &mut rng, INPUTS / RANDOM_KEYS, "random key");
    }
    assert_eq!(checked, 2 * 5 * INPUTS);
    println!(
        "{checked} inputs (lengths 8, 9, 12, 32, 36; Microsoft key and {RANDOM_KEYS} random keys): \
         hash, hash_array and hash_burst ({}) equal rte_softrss and rte_softrss_be",
        ms.ours.simd_path().unwrap_or("portable tables")
    );
    match GfniAnchor::unavailable_reason() {
        None => println!("rte_thash_gfni (anchor build) compared on every input: equal"),
        Some(why) => println!("rte_thash_gfni not compared: {why}"),
    }
}

#[test]
fn gfni_anchor_returns_real_hashes_or_says_why_not() {
    match GfniAnchor::new(&MS_RSS_KEY) {
        Some(gfni) => {
            // Microsoft's first IPv4 row, with ports.
            let input = [66, 9, 149, 187, 161, 142, 100, 80, 0x0a, 0xea, 0x06, 0xe6];
            assert_eq!(gfni.hash(&input), 0x51cc_c178);
        }
        None => {
            let why = GfniAnchor::unavailable_reason().expect("None comes with a reason");
            println!("GFNI anchor not available, not compared: {why}");
            assert!(!why.is_empty());
        }
    }
    // Our own selected burst path reports what it uses; on a CPU without
    // GFNI it must be the portable one, which the equality test covered.
    let ours = Toeplitz::default();
    println!(
        "our burst path: {}",
        ours.simd_path().unwrap_or("portable tables")
    );
}
