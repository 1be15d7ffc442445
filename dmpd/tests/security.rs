//! Replay protection, incarnations, stale table records, key rotation.

mod common;

use common::{Sim, SimParams, CLUSTER, KEY};
use dmpd::wire::{
    ControlRepr, EthernetAddress, HeaderRepr, HeartbeatRepr, Kind, Message, NodeRecord, Reject,
    TableRepr,
};
use dmpd::{AuthMode, Duration, Event, Instant, KeyRing, Node};

fn auth() -> AuthMode {
    AuthMode::Hmac(KeyRing::new(1, &KEY).unwrap())
}

fn frame(sender: u16, inc: u64, seq: u64, term: u64, ts: u64, message: Message<'_>) -> Vec<u8> {
    let c = ControlRepr {
        dst: EthernetAddress::BROADCAST,
        src: common::mac(sender, 0),
        header: HeaderRepr {
            kind: Kind::Heartbeat,
            flags: 0,
            key_id: 0,
            cluster_id: CLUSTER,
            sender,
            incarnation: inc,
            term,
            seq,
            timestamp: ts,
            body_len: 0,
        },
        message,
    };
    let mut buf = vec![0u8; c.buffer_len()];
    c.emit(&mut buf, 0x88b5, &auth()).unwrap();
    buf
}

fn heartbeat(sender: u16, inc: u64, seq: u64, round: u64) -> Vec<u8> {
    let hb = HeartbeatRepr {
        round,
        period_ns: 100_000_000,
        priority: 1,
        flags: 0,
        table_nodes: 1,
    };
    frame(sender, inc, seq, 1, 1_000, Message::Heartbeat(hb))
}

fn segment(sender: u16, inc: u64, seq: u64, records: &[NodeRecord]) -> Vec<u8> {
    let mut enc = Vec::new();
    for r in records {
        let at = enc.len();
        enc.resize(at + r.buffer_len(), 0);
        r.emit(&mut enc[at..]);
    }
    let t = TableRepr {
        round: 1,
        seg_idx: 0,
        seg_count: 1,
        flags: 1,
        count: records.len() as u16,
        records: &enc,
    };
    frame(sender, inc, seq, 1, 2_000, Message::Table(t))
}

fn follower() -> Node {
    Node::new(common::config(3, 2, auth()), Instant::ZERO).unwrap()
}

#[test]
fn replayed_frame_rejected_and_counted() {
    let mut n = follower();
    let t = Instant::from_millis(10);
    let hb = heartbeat(5, 1, 100, 1);
    assert_eq!(n.handle_frame(t, 0, &hb), Ok(()));
    assert_eq!(n.master(), Some(5));
    // the same frame again on the same port: replay
    assert_eq!(n.handle_frame(t, 0, &hb), Err(Reject::Duplicate));
    // the same frame on the other port is a legitimate multi-port copy
    assert_eq!(n.handle_frame(t, 1, &hb), Ok(()));
    // far older than the window
    assert_eq!(n.handle_frame(t, 0, &heartbeat(5, 1, 200, 2)), Ok(()));
    assert_eq!(
        n.handle_frame(t, 0, &heartbeat(5, 1, 100 + 1, 1)),
        Err(Reject::Replay)
    );
    assert_eq!(n.rejects().get(Reject::Duplicate), 1);
    assert_eq!(n.rejects().get(Reject::Replay), 1);
}

#[test]
fn restarted_node_accepted_at_once_old_incarnation_rejected() {
    let mut n = follower();
    let t = Instant::from_millis(10);
    assert_eq!(n.handle_frame(t, 0, &heartbeat(5, 1, 1000, 1)), Ok(()));
    while n.poll_event().is_some() {}
    // new incarnation, sequence restarted from 1: accepted immediately
    assert_eq!(n.handle_frame(t, 0, &heartbeat(5, 2, 1, 1)), Ok(()));
    let mut restarted = false;
    while let Some(e) = n.poll_event() {
        restarted |= e
            == Event::NodeRestarted {
                node: 5,
                incarnation: 2,
            };
    }
    assert!(restarted);
    assert_eq!(n.peer_incarnation(5), Some(2));
    // the old incarnation, even with a fresh sequence and on another port
    assert_eq!(
        n.handle_frame(t, 1, &heartbeat(5, 1, 5000, 2)),
        Err(Reject::StaleIncarnation)
    );
    assert_eq!(n.rejects().get(Reject::StaleIncarnation), 1);
}

#[test]
fn stale_record_never_overwrites_newer() {
    let mut n = follower();
    let t = Instant::from_millis(10);
    n.handle_frame(t, 0, &heartbeat(5, 1, 1, 1)).unwrap();
    let mut r = NodeRecord::new(9, 4);
    r.version = 3;
    r.cpu_util_bp = 3333;
    n.handle_frame(t, 0, &segment(5, 1, 2, &[r.clone()]))
        .unwrap();
    assert_eq!(n.table().get(9).unwrap().record.version, 3);
    // an authentic, fresh segment carrying an older version (a delayed path,
    // an old table): applied as a segment, but the record is kept
    let mut old = r.clone();
    old.version = 2;
    old.cpu_util_bp = 1111;
    n.handle_frame(t, 0, &segment(5, 1, 3, &[old])).unwrap();
    assert_eq!(n.table().get(9).unwrap().record.cpu_util_bp, 3333);
    // a master amendment of the same version is newer
    let mut am = r.clone();
    am.amend = 1;
    am.cpu_util_bp = 2222;
    n.handle_frame(t, 0, &segment(5, 1, 4, &[am])).unwrap();
    assert_eq!(n.table().get(9).unwrap().record.cpu_util_bp, 2222);
    // a new incarnation wins even with a lower version
    let mut reboot = NodeRecord::new(9, 5);
    reboot.version = 1;
    n.handle_frame(t, 0, &segment(5, 1, 5, &[reboot])).unwrap();
    assert_eq!(n.table().get(9).unwrap().record.incarnation, 5);
    // and the old incarnation's record can no longer come back
    n.handle_frame(t, 0, &segment(5, 1, 6, &[r])).unwrap();
    assert_eq!(n.table().get(9).unwrap().record.incarnation, 5);
}

#[test]
fn keys_rotate_without_a_lost_round() {
    let mut params = SimParams::new(6, 4242);
    params.auth = true;
    let mut sim = Sim::new(params);
    let p = sim.period();
    sim.start();
    sim.run_until_pred(Instant::ZERO + p * 12, p / 20, |s| {
        s.agreed_master().is_some()
    })
    .expect("master");
    sim.run_for(p * 5);
    let master = sim.agreed_master().unwrap();
    let mi = sim.index_of(master);
    let n = sim.nodes.len();
    let new_key = [0x77u8; 32];
    let check_round = |sim: &Sim| {
        // every node answered in the last round and nobody rejected anything
        let m = sim.node(mi).unwrap();
        for e in m.table().iter() {
            if e.node_num() != master {
                assert!(
                    sim.now - e.last_heard <= p + Duration::from_millis(5),
                    "node {} missed a round",
                    e.node_num()
                );
            }
        }
        for sn in &sim.nodes {
            let r = sn.node.as_ref().unwrap().rejects();
            assert_eq!(
                r.get(Reject::BadMac) + r.get(Reject::UnknownKeyId),
                0,
                "node {} rejected a frame",
                sn.num
            );
        }
        assert_eq!(sim.agreed_master(), Some(master));
    };
    // 1. add the new key everywhere, one node per period
    for i in 0..n {
        sim.node_mut(i)
            .unwrap()
            .keyring_mut()
            .unwrap()
            .add(2, &new_key)
            .unwrap();
        sim.run_for(p);
        check_round(&sim);
    }
    // 2. switch the send key, one node per period
    for i in 0..n {
        sim.node_mut(i)
            .unwrap()
            .keyring_mut()
            .unwrap()
            .set_send_key(2)
            .unwrap();
        sim.run_for(p);
        check_round(&sim);
    }
    // 3. retire the old key
    for i in 0..n {
        sim.node_mut(i)
            .unwrap()
            .keyring_mut()
            .unwrap()
            .remove(1)
            .unwrap();
        sim.run_for(p);
        check_round(&sim);
    }
    // a frame signed with the retired key is now refused
    let mut node = follower();
    node.keyring_mut().unwrap().add(2, &new_key).unwrap();
    node.keyring_mut().unwrap().set_send_key(2).unwrap();
    node.keyring_mut().unwrap().remove(1).unwrap();
    assert_eq!(
        node.handle_frame(Instant::from_millis(1), 0, &heartbeat(5, 1, 1, 1)),
        Err(Reject::UnknownKeyId)
    );
}

#[test]
fn isolated_node_reports_self_faulty() {
    let mut sim = Sim::new(SimParams::new(4, 99));
    let p = sim.period();
    sim.params.log_events = true;
    // node 4 may never be master, so isolated it cannot elect itself
    let vi = sim.index_of(4);
    sim.nodes[vi].cfg.priority = 0;
    sim.start();
    sim.run_until_pred(Instant::ZERO + p * 12, p / 20, |s| {
        s.agreed_master().is_some()
    })
    .expect("master");
    sim.run_for(p * 3);
    let master = sim.agreed_master().unwrap();
    // cut every link of node 4: it stops hearing the cluster
    sim.group[vi] = 7;
    sim.run_for(p * 12);
    let evs: Vec<Event> = sim.nodes[vi].events.iter().map(|(_, e)| *e).collect();
    assert!(
        evs.contains(&Event::PortDown { node: 4, port: 0 }),
        "{evs:?}"
    );
    assert!(
        evs.contains(&Event::PortDown { node: 4, port: 1 }),
        "{evs:?}"
    );
    assert!(evs.contains(&Event::SelfFaulty), "{evs:?}");
    // the master stopped hearing it on every port, then expired it
    let m = sim.node(sim.index_of(master)).unwrap();
    let e = m.table().get(4).unwrap();
    assert_ne!(e.record.state, dmpd::NodeState::Up);
    // healed: it hears the cluster again
    sim.group[vi] = 0;
    sim.run_for(p * 3);
    let evs: Vec<Event> = sim.nodes[vi].events.iter().map(|(_, e)| *e).collect();
    assert!(evs.contains(&Event::SelfRecovered), "{evs:?}");
    assert_eq!(sim.node(vi).unwrap().master(), Some(master));
    sim.run_for(p * 3);
    let m = sim.node(sim.index_of(master)).unwrap();
    assert_eq!(m.table().get(4).unwrap().record.state, dmpd::NodeState::Up);
}

/// Regression (found by `scripts/chaos soak`: an agent stopped for 2 s
/// with SIGSTOP left the cluster for good). The agent answers `SelfFaulty`
/// with `Node::leave`; the node must still report `SelfRecovered` when it
/// hears the cluster again, or the agent never rejoins.
#[test]
fn a_node_that_left_for_a_self_fault_reports_its_recovery() {
    let mut sim = Sim::new(SimParams::new(4, 99));
    let p = sim.period();
    sim.params.log_events = true;
    let vi = sim.index_of(4);
    sim.nodes[vi].cfg.priority = 0;
    sim.start();
    sim.run_until_pred(Instant::ZERO + p * 12, p / 20, |s| {
        s.agreed_master().is_some()
    })
    .expect("master");
    sim.run_for(p * 3);
    sim.group[vi] = 7;
    let faulty = |s: &Sim| {
        s.nodes[vi]
            .events
            .iter()
            .any(|(_, e)| *e == Event::SelfFaulty)
    };
    let t0 = sim.now;
    sim.run_until_pred(t0 + p * 12, p / 20, faulty)
        .expect("SelfFaulty");
    // What the agent does on SelfFaulty.
    let now = sim.now;
    sim.node_mut(vi)
        .unwrap()
        .leave(now, dmpd::LeaveReason::SelfFaulty);
    sim.kick(vi);
    sim.run_for(p * 2);
    assert_eq!(sim.node(vi).unwrap().role(), dmpd::Role::Left);
    sim.group[vi] = 0;
    sim.run_for(p * 3);
    let evs: Vec<Event> = sim.nodes[vi].events.iter().map(|(_, e)| *e).collect();
    let n = evs.iter().position(|e| *e == Event::SelfFaulty).unwrap();
    assert!(
        evs[n..].contains(&Event::SelfRecovered),
        "a node that left for a self fault never reports its recovery: {evs:?}"
    );
}

/// Regression (found by `cargo fuzz`): an announce with term u64::MAX made
/// the candidate term overflow.
#[test]
fn fuzz_regression_term_overflow() {
    let crash: [u8; 80] = [
        0x3c, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x02, 0x00, 0x01, 0x88, 0xb5, 0x01,
        0x04, 0x00, 0x00, 0x00, 0x00, 0xd3, 0xd0, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x1c, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x40, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x12, 0xa5, 0xff, 0xff, 0x00, 0x04, 0x00, 0xff,
        0x00, 0xa8, 0xa8, 0xa8, 0xa8, 0xa8, 0xa8, 0xa8, 0xa8, 0xa8, 0xa8, 0xa8, 0xa8, 0xa8, 0x00,
        0x00, 0x07, 0x00, 0x00, 0x00,
    ];
    let mut n = Node::new(common::config(3, 2, AuthMode::None), Instant::ZERO).unwrap();
    let _ = n.handle_frame(Instant::from_millis(1), 0, &crash);
    n.handle_timeout(Instant::from_millis(1));
    let mut buf = vec![0u8; 1514];
    while n.poll_transmit(Instant::from_millis(1), &mut buf).is_some() {}
    // the same with every term field at the maximum, through a whole election
    n.handle_timeout(Instant::from_secs(5));
    while n.poll_transmit(Instant::from_secs(5), &mut buf).is_some() {}
}

#[test]
fn per_port_liveness_and_rtt() {
    let mut sim = Sim::new(SimParams::new(5, 31));
    let p = sim.period();
    sim.params.log_events = true;
    sim.start();
    sim.run_until_pred(Instant::ZERO + p * 12, p / 20, |s| {
        s.agreed_master().is_some()
    })
    .expect("master");
    sim.run_for(p * 4);
    let master = sim.agreed_master().unwrap();
    let mi = sim.index_of(master);
    let victim = if master == 5 { 4 } else { 5 };
    let vi = sim.index_of(victim);
    // every port reachable with a measured RTT (latency 20-200 µs each way)
    let e = sim.node(mi).unwrap().table().get(victim).unwrap().clone();
    for port in e.record.ports.iter() {
        assert!(port.reachable, "{port:?}");
        assert!(
            (40_000..=400_000).contains(&port.rtt_ns),
            "rtt {}",
            port.rtt_ns
        );
    }
    // cut the victim's port 1: after K = 3 periods it is down on both sides
    sim.cut.push((vi, 1));
    sim.run_for(p * 5);
    let evs: Vec<Event> = sim.nodes[vi].events.iter().map(|(_, e)| *e).collect();
    assert!(
        evs.contains(&Event::PortDown {
            node: victim,
            port: 1
        }),
        "{evs:?}"
    );
    assert!(!sim.node(vi).unwrap().local_port_up(1));
    assert!(sim.node(vi).unwrap().local_port_up(0));
    let mevs: Vec<Event> = sim.nodes[mi].events.iter().map(|(_, e)| *e).collect();
    assert!(
        mevs.contains(&Event::PortDown {
            node: victim,
            port: 1
        }),
        "{mevs:?}"
    );
    // every node's table now says: reach the victim on port 0 only
    sim.run_for(p * 2);
    for sn in sim.nodes.iter().filter(|n| n.num != victim) {
        let e = sn.node.as_ref().unwrap().table().get(victim).unwrap();
        let usable: Vec<u8> = e.usable_ports().map(|p| p.idx).collect();
        assert_eq!(usable, vec![0], "node {} sees {usable:?}", sn.num);
    }
    // repair: back up on both sides
    sim.cut.clear();
    sim.run_for(p * 3);
    let e = sim.node(mi).unwrap().table().get(victim).unwrap();
    assert!(e.record.port(1).unwrap().reachable);
    assert!(sim.node(vi).unwrap().local_port_up(1));
}

fn response(sender: u16, inc: u64, seq: u64, port: u8) -> Vec<u8> {
    let r = dmpd::wire::ResponseRepr {
        echo_ts: 1_000,
        round: 1,
        port,
        master: Some(3),
        master_term: 1,
        priority: 1,
        record: None,
    };
    frame(sender, inc, seq, 1, 1_500, Message::Response(r))
}

/// A response goes out on one port only: the same frame arriving on another
/// receive port is a replay (an injector copying node 5's port-0 response
/// onto the master's port 1 would otherwise keep a dead port "reachable").
/// A heartbeat is sent on every port: one copy per port is accepted.
#[test]
fn response_replayed_onto_another_port_rejected() {
    let mut n = follower();
    let t = Instant::from_millis(10);
    let hb = heartbeat(5, 1, 100, 1);
    assert_eq!(n.handle_frame(t, 0, &hb), Ok(()));
    assert_eq!(
        n.handle_frame(t, 1, &hb),
        Ok(()),
        "multi-port frame on port 1"
    );
    let r = response(5, 1, 101, 0);
    assert_eq!(n.handle_frame(t, 0, &r), Ok(()));
    let before = n.rejects().get(Reject::Duplicate);
    assert_eq!(n.handle_frame(t, 1, &r), Err(Reject::Duplicate));
    assert_eq!(n.rejects().get(Reject::Duplicate), before + 1);
    // later responses of the same sender, on either port, still pass
    assert_eq!(n.handle_frame(t, 1, &response(5, 1, 102, 1)), Ok(()));
    assert_eq!(n.handle_frame(t, 0, &response(5, 1, 103, 0)), Ok(()));
    // and out-of-order ones within the window too, once
    let late = response(5, 1, 99, 1);
    assert_eq!(n.handle_frame(t, 1, &late), Ok(()));
    assert_eq!(n.handle_frame(t, 0, &late), Err(Reject::Duplicate));
}
