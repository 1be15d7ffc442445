//! Writes the fuzz seed corpus (`dmpd/fuzz/corpus/parse/`): valid frames of
//! every kind, authenticated and not. Run with
//! `cargo test -p dmpd --test fuzz_corpus -- --ignored`.

mod common;

use common::{Sim, SimParams};
use dmpd::wire::{DataFlags, DataRepr, EthernetAddress};
use dmpd::Duration;

/// Capture the frames a small cluster exchanges, one file per (kind, auth).
fn capture(auth: bool) -> Vec<Vec<u8>> {
    let mut params = SimParams::new(3, 11);
    params.auth = auth;
    let mut sim = Sim::new(params);
    sim.start();
    sim.run_for(Duration::from_millis(800));
    let now = sim.now;
    sim.node_mut(2)
        .unwrap()
        .leave(now, dmpd::LeaveReason::Shutdown);
    sim.kick(2);
    sim.captured()
}

#[test]
#[ignore]
fn write_fuzz_corpus() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/parse");
    std::fs::create_dir_all(dir).unwrap();
    let mut n = 0;
    for auth in [false, true] {
        let mut seen = std::collections::HashMap::new();
        for f in capture(auth) {
            let kind = f[15];
            let c = seen.entry(kind).or_insert(0);
            if *c < 2 {
                *c += 1;
                std::fs::write(
                    format!(
                        "{dir}/{}-kind{kind:02x}-{}",
                        if auth { "hmac" } else { "none" },
                        c
                    ),
                    &f,
                )
                .unwrap();
                n += 1;
            }
        }
    }
    let d = DataRepr {
        dst: EthernetAddress([2, 0, 0, 2, 0, 1]),
        src: EthernetAddress([2, 0, 0, 1, 0, 1]),
        flags: DataFlags(DataFlags::RELIABLE),
        cluster_id: common::CLUSTER,
        snode: 1,
        dnode: 2,
        spipe: 3,
        dpipe: 4,
        ptype: 5,
        msg_seq: 6,
        ack: 0,
        payload_len: 8,
    };
    let mut buf = vec![0u8; d.buffer_len()];
    d.emit(&mut buf, 0x88b5, b"payload!").unwrap();
    std::fs::write(format!("{dir}/data-1"), &buf).unwrap();
    println!("wrote {} files to {dir}", n + 1);
    assert!(n >= 10);
}
