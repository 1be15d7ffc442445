//! DPDK's rte_softrss through the shim returns Microsoft's documented RSS
//! verification values ("Verifying the RSS Hash Calculation"), so it can be
//! the oracle for lb's Toeplitz. No EAL needed.

use ffi::rss::{bytes_to_tuple_words, softrss, softrss_be, ConvertedKey, GfniAnchor};

const MS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// (src, dst, sport, dport, hash with ports, hash without ports)
type V4Row = ([u8; 4], [u8; 4], u16, u16, u32, u32);
const V4: [V4Row; 5] = [
    (
        [66, 9, 149, 187],
        [161, 142, 100, 80],
        2794,
        1766,
        0x51ccc178,
        0x323e8fc2,
    ),
    (
        [199, 92, 111, 2],
        [65, 69, 140, 83],
        14230,
        4739,
        0xc626b0ea,
        0xd718262a,
    ),
    (
        [24, 19, 198, 95],
        [12, 22, 207, 184],
        12898,
        38024,
        0x5c2b394a,
        0xd2d0a5de,
    ),
    (
        [38, 27, 205, 30],
        [209, 142, 163, 6],
        48228,
        2217,
        0xafc7327f,
        0x82989176,
    ),
    (
        [153, 39, 163, 191],
        [202, 188, 127, 2],
        44251,
        1303,
        0x10e828a2,
        0x5d1809c5,
    ),
];

fn v4_bytes(v: &V4Row, ports: bool) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&v.0);
    b.extend_from_slice(&v.1);
    if ports {
        b.extend_from_slice(&v.2.to_be_bytes());
        b.extend_from_slice(&v.3.to_be_bytes());
    }
    b
}

fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

#[test]
fn softrss_matches_microsoft_ipv4_vectors() {
    let conv = ConvertedKey::new(&MS_KEY);
    for v in &V4 {
        for (ports, want) in [(true, v.4), (false, v.5)] {
            let mut words = [0u32; 9];
            let n = bytes_to_tuple_words(&v4_bytes(v, ports), &mut words);
            assert_eq!(softrss(&words[..n], &MS_KEY), want, "{v:?} ports={ports}");
            assert_eq!(
                softrss_be(&words[..n], &conv),
                want,
                "be {v:?} ports={ports}"
            );
        }
    }
}

#[test]
fn softrss_matches_microsoft_ipv6_vectors() {
    let rows = [
        (
            "3ffe:2501:200:1fff::7",
            "3ffe:2501:200:3::1",
            2794u16,
            1766u16,
            0x40207d3du32,
            0x2cc18cd5u32,
        ),
        (
            "3ffe:501:8::260:97ff:fe40:efab",
            "ff02::1",
            14230,
            4739,
            0xdde51bbf,
            0x0f0c461c,
        ),
        (
            "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
            "fe80::200:f8ff:fe21:67cf",
            44251,
            38024,
            0x02d1feef,
            0x4b61e985,
        ),
    ];
    for (s, d, sp, dp, with, without) in rows {
        let mut b = Vec::new();
        b.extend_from_slice(&v6(s));
        b.extend_from_slice(&v6(d));
        let mut words = [0u32; 9];
        let n = bytes_to_tuple_words(&b, &mut words);
        assert_eq!(softrss(&words[..n], &MS_KEY), without, "{s} -> {d}");
        b.extend_from_slice(&sp.to_be_bytes());
        b.extend_from_slice(&dp.to_be_bytes());
        let n = bytes_to_tuple_words(&b, &mut words);
        assert_eq!(softrss(&words[..n], &MS_KEY), with, "{s} -> {d} ports");
    }
}

#[test]
fn gfni_anchor_is_real_or_reports_why_not() {
    match GfniAnchor::new(&MS_KEY) {
        Some(a) => {
            let v = &V4[0];
            assert_eq!(
                a.hash(&v4_bytes(v, true)),
                v.4,
                "GFNI anchor returns real hashes"
            );
        }
        None => {
            let why = GfniAnchor::unavailable_reason().expect("a reason");
            eprintln!("GFNI anchor unavailable: {why}");
        }
    }
}
