//! Fuzz the DMPD parsers and `Node::handle_frame`.
//!
//! `cd dmpd/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run parse -- -max_total_time=60`
//! Seed corpus: `corpus/parse/` (regenerate with
//! `cargo test -p dmpd --test fuzz_corpus -- --ignored`).
#![no_main]

use dmpd::wire::{ControlRepr, DataFrame, DataRepr, NodeRecord, TableRepr};
use dmpd::{AuthMode, Instant, KeyRing, Node, NodeConfig};
use libfuzzer_sys::fuzz_target;

const ET: u16 = 0x88b5;
const CLUSTER: u32 = 0xD3D0;

fn node(auth: AuthMode) -> Node {
    let macs = [
        dmpd::wire::EthernetAddress([2, 0, 0, 3, 0, 1]),
        dmpd::wire::EthernetAddress([2, 0, 0, 3, 1, 1]),
    ];
    let cfg = NodeConfig::new(3, CLUSTER, &macs, auth);
    Node::new(cfg, Instant::ZERO).expect("valid config")
}

fuzz_target!(|data: &[u8]| {
    let ring = AuthMode::Hmac(KeyRing::new(1, &[0x42; 32]).expect("key"));
    let _ = ControlRepr::parse(data, ET, CLUSTER, &ring);
    let _ = ControlRepr::parse(data, ET, CLUSTER, &AuthMode::None);
    if let Ok(f) = DataFrame::new_checked(data) {
        let _ = DataRepr::parse(&f, ET, CLUSTER);
        let _ = f.payload();
    }
    if data.len() > 58 {
        if let Ok(t) = TableRepr::parse(&data[58..]) {
            for r in t.records() {
                let _ = r.buffer_len();
            }
        }
        let _ = NodeRecord::parse(&data[58..]);
    }
    // drive a node unauthenticated so the fuzzer reaches the state machine
    let mut n = node(AuthMode::None);
    let mut buf = vec![0u8; 14 + 1500];
    let t = Instant::from_millis(1);
    let port = data.first().map_or(0, |b| b & 1);
    let _ = n.handle_frame(t, port, data);
    n.handle_timeout(t);
    while n.poll_transmit(t, &mut buf).is_some() {}
    while n.poll_event().is_some() {}
    // and once authenticated
    let mut h = node(ring);
    let _ = h.handle_frame(Instant::from_millis(1), 0, data);
});
