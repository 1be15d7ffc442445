//! Microsoft's RSS verification suite and equality of every hash path.

use std::net::{Ipv4Addr, Ipv6Addr};

use lb::toeplitz::{toeplitz_hash_reference, Toeplitz, MS_RSS_KEY, SYMMETRIC_KEY};
use lb::tuple::{DmpdTuple, Ipv4Tuple, Ipv6Tuple};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// (source, destination, source port, destination port, hash of the
/// addresses only, hash with ports), from Microsoft's "Verifying the RSS
/// Hash Calculation".
const IPV4_VECTORS: [(&str, &str, u16, u16, u32, u32); 5] = [
    (
        "66.9.149.187",
        "161.142.100.80",
        2794,
        1766,
        0x323e8fc2,
        0x51ccc178,
    ),
    (
        "199.92.111.2",
        "65.69.140.83",
        14230,
        4739,
        0xd718262a,
        0xc626b0ea,
    ),
    (
        "24.19.198.95",
        "12.22.207.184",
        12898,
        38024,
        0xd2d0a5de,
        0x5c2b394a,
    ),
    (
        "38.27.205.30",
        "209.142.163.6",
        48228,
        2217,
        0x82989176,
        0xafc7327f,
    ),
    (
        "153.39.163.191",
        "202.188.127.2",
        44251,
        1303,
        0x5d1809c5,
        0x10e828a2,
    ),
];

const IPV6_VECTORS: [(&str, &str, u16, u16, u32, u32); 3] = [
    (
        "3ffe:2501:200:1fff::7",
        "3ffe:2501:200:3::1",
        2794,
        1766,
        0x2cc18cd5,
        0x40207d3d,
    ),
    (
        "3ffe:501:8::260:97ff:fe40:efab",
        "ff02::1",
        14230,
        4739,
        0x0f0c461c,
        0xdde51bbf,
    ),
    (
        "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
        "fe80::200:f8ff:fe21:67cf",
        44251,
        38024,
        0x4b61e985,
        0x02d1feef,
    ),
];

/// Every scalar way of hashing `input` must give `expected`.
fn check_all_paths(toeplitz: &Toeplitz, input: &[u8], expected: u32, what: &str) {
    assert_eq!(
        toeplitz_hash_reference(&MS_RSS_KEY, input),
        expected,
        "reference, {what}"
    );
    assert_eq!(toeplitz.hash(input), expected, "tables, {what}");
}

#[test]
fn microsoft_ipv4_vectors() {
    let toeplitz = Toeplitz::default();
    for (src, dst, sport, dport, addrs_only, with_ports) in IPV4_VECTORS {
        let t = Ipv4Tuple {
            src: src.parse::<Ipv4Addr>().unwrap(),
            dst: dst.parse::<Ipv4Addr>().unwrap(),
            sport,
            dport,
        };
        check_all_paths(&toeplitz, &t.addrs_bytes(), addrs_only, src);
        check_all_paths(&toeplitz, &t.to_bytes(), with_ports, src);
        assert_eq!(toeplitz.hash_array(&t.to_bytes()), with_ports);
        let mut out = [0u32; 1];
        toeplitz.hash_burst(&[t.to_bytes()], &mut out);
        assert_eq!(out[0], with_ports, "burst, {src}");
    }
}

#[test]
fn microsoft_ipv6_vectors() {
    let toeplitz = Toeplitz::default();
    for (src, dst, sport, dport, addrs_only, with_ports) in IPV6_VECTORS {
        let t = Ipv6Tuple {
            src: src.parse::<Ipv6Addr>().unwrap(),
            dst: dst.parse::<Ipv6Addr>().unwrap(),
            sport,
            dport,
        };
        check_all_paths(&toeplitz, &t.addrs_bytes(), addrs_only, src);
        check_all_paths(&toeplitz, &t.to_bytes(), with_ports, src);
        let mut out = [0u32; 1];
        toeplitz.hash_burst(&[t.to_bytes()], &mut out);
        assert_eq!(out[0], with_ports, "burst, {src}");
    }
}

/// Random inputs of length `N`: reference == table == array == burst
/// (portable) == burst (SIMD, when the CPU has it), for both keys.
fn paths_agree<const N: usize>(seed: u64, count: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for key in [&MS_RSS_KEY, &SYMMETRIC_KEY] {
        let simd = Toeplitz::new(key, 36).unwrap();
        let portable = simd.clone().without_simd();
        let inputs: Vec<[u8; N]> = (0..count)
            .map(|_| {
                let mut x = [0u8; N];
                rng.fill(&mut x[..]);
                x
            })
            .collect();
        let mut burst = vec![0u32; count];
        let mut burst_portable = vec![0u32; count];
        // Uneven chunk sizes exercise the remainder paths.
        let mut start = 0;
        for len in [32, 1, 7, 32, 3].iter().cycle() {
            if start >= count {
                break;
            }
            let end = (start + len).min(count);
            assert_eq!(
                simd.hash_burst(&inputs[start..end], &mut burst[start..end]),
                end - start
            );
            portable.hash_burst(&inputs[start..end], &mut burst_portable[start..end]);
            start = end;
        }
        for (i, input) in inputs.iter().enumerate() {
            let expected = toeplitz_hash_reference(key, input);
            assert_eq!(portable.hash(input), expected, "table, len {N}");
            assert_eq!(portable.hash_array(input), expected, "array, len {N}");
            assert_eq!(burst_portable[i], expected, "portable burst, len {N}");
            assert_eq!(
                burst[i],
                expected,
                "burst via {:?}, len {N}",
                simd.simd_path()
            );
        }
    }
}

#[test]
fn all_paths_agree_on_random_inputs() {
    paths_agree::<9>(1, 2_000);
    paths_agree::<12>(2, 2_000);
    paths_agree::<36>(3, 1_000);
    paths_agree::<1>(4, 100);
    paths_agree::<16>(5, 200);
    paths_agree::<33>(6, 200);
}

#[test]
fn burst_stops_at_shorter_slice() {
    let t = Toeplitz::default();
    let inputs = [[1u8; 12]; 5];
    let mut out = [0u32; 3];
    assert_eq!(t.hash_burst(&inputs, &mut out), 3);
    assert_eq!(out, [t.hash(&[1u8; 12]); 3]);
}

#[test]
fn dmpd_tuple_hashes_like_its_bytes() {
    let t = Toeplitz::default();
    let tuple = DmpdTuple {
        snode: 3,
        dnode: 7,
        spipe: 1,
        dpipe: 2,
        ptype: 1,
    };
    let bytes = tuple.to_bytes();
    assert_eq!(
        t.hash_array(&bytes),
        toeplitz_hash_reference(&MS_RSS_KEY, &bytes)
    );
}

/// The symmetric key's 16-bit period makes the hash a function of the XOR
/// of the input's 16-bit words: swapping src/dst keeps it (the point of the
/// key), but so does any change that keeps that XOR (the reason it is only
/// an option).
#[test]
fn symmetric_key_folds_to_16_bits() {
    let t = Toeplitz::new(&SYMMETRIC_KEY, 36).unwrap();
    let a = Ipv4Tuple {
        src: Ipv4Addr::new(10, 0, 0, 1),
        dst: Ipv4Addr::new(10, 0, 0, 2),
        sport: 1000,
        dport: 2000,
    };
    let swapped = Ipv4Tuple {
        src: a.dst,
        dst: a.src,
        sport: a.dport,
        dport: a.sport,
    };
    assert_eq!(t.hash(&a.to_bytes()), t.hash(&swapped.to_bytes()));
    // Different flows, same XOR of 16-bit words (0x0001 ^ 0x0002 = 0x0003
    // ^ 0x0000).
    let collider = Ipv4Tuple {
        src: Ipv4Addr::new(10, 0, 0, 3),
        dst: Ipv4Addr::new(10, 0, 0, 0),
        sport: 1000,
        dport: 2000,
    };
    assert_ne!(a, collider);
    assert_eq!(t.hash(&a.to_bytes()), t.hash(&collider.to_bytes()));
    // Hence at most 2^16 distinct values over any set of inputs.
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for _ in 0..200 {
        let x: [u8; 12] = rng.gen();
        let fold = x
            .chunks(2)
            .fold(0u16, |acc, w| acc ^ u16::from_be_bytes([w[0], w[1]]));
        let mut folded = [0u8; 12];
        folded[..2].copy_from_slice(&fold.to_be_bytes());
        assert_eq!(t.hash(&x), t.hash(&folded));
    }
}
