//! The flow cache decides exactly as the balancer does frame by frame.
//!
//! Two identical controller/balancer pairs see the same run: frames of
//! many flows (16 buckets, so flows collide, and several destination
//! nodes), time passing across the idle gap, new load samples, ports and
//! remote nodes going down and up. One balancer decides every frame
//! (`Toeplitz::hash_array` + `Balancer::decide`); the other goes through a
//! `FlowCache`. Every decision and the balancers' counters must agree. A
//! third pair goes through a cache as the agent's fast loop does: `hit`
//! first, hits counted in batches, `decide_ports` for the rest.

use lb::balancer::Decision;
use lb::balancer::{BalancerConfig, Controller};
use lb::flowcache::{FlowCache, Lookup};
use lb::load::{LoadConfig, PortSample};
use lb::toeplitz::Toeplitz;
use lb::tuple::DmpdTuple;
use proptest::prelude::*;

const PORTS: usize = 4;
const GAP: u64 = 1_000_000;

#[derive(Clone, Debug)]
enum Op {
    /// A frame of flow `flow` after `dt_ns`.
    Frame { flow: u8, dt_ns: u64 },
    /// New per-port utilisation samples, published.
    Samples([u8; PORTS]),
    /// A local port goes down or up, published.
    Port { port: u8, up: bool },
    /// A destination node's ports change (or it leaves), published.
    Remote { node: u16, avail: u16, gone: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        // Gaps around the idle gap too, so that a flow comes back exactly
        // at, just before and just after its bucket may move; and none, as
        // the frames of one burst share a time (the cache skips touching a
        // bucket again at the same time).
        12 => (0u8..48, prop_oneof![Just(0u64), 0u64..50_000, 0u64..3 * GAP, GAP - 2..GAP + 2])
            .prop_map(|(flow, dt_ns)| Op::Frame { flow, dt_ns }),
        2 => any::<[u8; PORTS]>().prop_map(Op::Samples),
        1 => (0u8..PORTS as u8, any::<bool>()).prop_map(|(port, up)| Op::Port { port, up }),
        1 => (1u16..=3, 0u16..16, any::<bool>())
            .prop_map(|(node, avail, gone)| Op::Remote { node, avail, gone }),
    ]
}

fn flow_key(flow: u8) -> [u8; DmpdTuple::LEN] {
    DmpdTuple {
        snode: 9,
        dnode: u16::from(flow % 3) + 1,
        spipe: u16::from(flow % 5),
        dpipe: 1,
        ptype: flow / 3,
    }
    .to_bytes()
}

fn samples(u: &[u8; PORTS]) -> Vec<PortSample> {
    u.iter()
        .map(|&x| PortSample {
            utilisation: f64::from(x) / 255.0,
            drop_rate: 0.0,
            overflow_rate: 0.0,
        })
        .collect()
}

fn controller() -> Controller {
    let mut c = Controller::new(
        PORTS,
        LoadConfig {
            weights: [1.0, 0.0, 0.0],
            ..LoadConfig::default()
        },
    )
    .unwrap();
    for node in 1..=3 {
        c.set_remote_node(node, &[0.1, 0.2, 0.3], 0b111).unwrap();
    }
    c.record_samples(&samples(&[10, 200, 30, 40])).unwrap();
    c.publish();
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn cached_decisions_equal_per_frame_decisions(ops in proptest::collection::vec(op(), 1..400)) {
        let config = BalancerConfig {
            buckets: 16,
            idle_gap_ns: GAP,
            ..BalancerConfig::default()
        };
        let (mut ca, mut cb, mut cc) = (controller(), controller(), controller());
        let (mut a, mut b) = (ca.balancer(config).unwrap(), cb.balancer(config).unwrap());
        let mut c = cc.balancer(config).unwrap();
        let toeplitz = Toeplitz::default();
        let mut cache = FlowCache::new();
        let mut fast = FlowCache::new();
        // Hits of the fast cache not counted yet (counted in batches).
        let mut pending = 0u64;
        let mut now = 1u64;
        for op in ops {
            match op {
                Op::Frame { flow, dt_ns } => {
                    now += dt_ns;
                    let key = flow_key(flow);
                    let dnode = u16::from_be_bytes([key[2], key[3]]);
                    let want = a.decide(now, toeplitz.hash_array(&key), dnode);
                    b.refresh(now);
                    let got = cache.decide(&mut b, &toeplitz, now, &key);
                    prop_assert_eq!(got, want, "flow {} at {}", flow, now);
                    c.refresh(now);
                    let l = Lookup::new(&c, now);
                    let wire = u64::from_le_bytes(key[..8].try_into().unwrap());
                    let got = match fast.hit(&mut c, l, wire, key[8]) {
                        Some(p) => {
                            pending += 1;
                            p
                        }
                        None => fast.decide_ports(&mut c, &toeplitz, l, wire, key[8]),
                    };
                    prop_assert_eq!(Decision::from(got), want, "fast, flow {} at {}", flow, now);
                    if dt_ns > 0 {
                        fast.count_hits(&mut c, std::mem::take(&mut pending));
                    }
                }
                Op::Samples(u) => {
                    for c in [&mut ca, &mut cb, &mut cc] {
                        c.record_samples(&samples(&u)).unwrap();
                        c.publish();
                    }
                }
                Op::Port { port, up } => {
                    for c in [&mut ca, &mut cb, &mut cc] {
                        c.set_port_available(usize::from(port), up).unwrap();
                        c.publish();
                    }
                }
                Op::Remote { node, avail, gone } => {
                    for c in [&mut ca, &mut cb, &mut cc] {
                        if gone {
                            c.remove_remote_node(node);
                        } else {
                            c.set_remote_node(node, &[0.3, 0.1, 0.2], avail & 0b111).unwrap();
                        }
                        c.publish();
                    }
                }
            }
        }
        prop_assert_eq!(a.counters().decisions, b.counters().decisions);
        prop_assert_eq!(a.counters().placements, b.counters().placements);
        prop_assert_eq!(a.counters().rebalanced, b.counters().rebalanced);
        fast.count_hits(&mut c, pending);
        prop_assert_eq!(a.counters().decisions, c.counters().decisions);
        prop_assert_eq!(a.counters().placements, c.counters().placements);
        prop_assert_eq!(a.counters().rebalanced, c.counters().rebalanced);
        prop_assert_eq!(cache.counters(), fast.counters());
    }
}

#[test]
fn steady_flows_hit_the_cache() {
    let mut c = controller();
    let mut b = c.balancer(BalancerConfig::default()).unwrap();
    let toeplitz = Toeplitz::default();
    let mut cache = FlowCache::new();
    // 32 flows, 100 frames each, interleaved, 1 us apart.
    let mut now = 0;
    for _ in 0..100 {
        for flow in 0..32 {
            now += 1_000;
            b.refresh(now);
            cache.decide(&mut b, &toeplitz, now, &flow_key(flow));
        }
    }
    let k = cache.counters();
    assert_eq!(k.hits + k.misses, 3_200);
    // Direct-mapped: two of 32 flows may share a slot, but most stay.
    assert!(k.misses < 3_200 / 4, "{k:?}");
    // A new snapshot makes every flow decide again once.
    c.publish();
    let before = cache.counters().misses;
    for flow in 0..32 {
        now += 1_000;
        b.refresh(now);
        cache.decide(&mut b, &toeplitz, now, &flow_key(flow));
    }
    assert!(cache.counters().misses - before >= 30);
    assert_eq!(b.counters().decisions, 3_232);
}
