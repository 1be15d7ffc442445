//! Fuzz the table-segment / cluster-table path of `dmpd::Node`.
//!
//! Three real sans-IO nodes (HMAC keys, two ports each) run a cluster on an
//! in-process switch; the fuzz input is a program of operations mixing the
//! nodes' own traffic with an attacker's:
//! - authenticated forgeries (signed with the cluster key: table segments
//!   with raw or well-formed records, heartbeats, responses, announces,
//!   leaves) — these reach the segment tracking and the table merge;
//! - unauthenticated hostile frames: wrong key, garbage, replays of frames
//!   already delivered, captured frames with the term edited, truncated
//!   frames.
//!
//! Invariants checked after every operation:
//! - every `Err` from `handle_frame` adds exactly one to the reject counter
//!   of that reason, every `Ok` adds none;
//! - an unauthenticated frame is rejected and changes nothing a user sees
//!   (role, term, master, every table entry and its record key);
//! - every frame a node transmits parses and verifies with the cluster key
//!   and fits the MTU;
//! - a master names itself as master; a node's table holds its own entry.
//!
//! `cd dmpd/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run segment -- -max_total_time=60`
#![no_main]

use std::sync::OnceLock;

use dmpd::wire::{
    ethernet, AnnounceRepr, ControlFrame, ControlRepr, EthernetAddress, HeaderRepr, HeartbeatRepr,
    Kind, LeaveReason, LeaveRepr, Message, NodeRecord, NodeState, PortRecord, PortState,
    ResponseRepr, TableRepr,
};
use dmpd::{
    AuthMode, Duration, Instant, KeyRing, Node, NodeConfig, NodeMetrics, PortMetrics, Reject, Role,
};
use libfuzzer_sys::arbitrary::{Result as AResult, Unstructured};
use libfuzzer_sys::fuzz_target;

const ET: u16 = 0x88b5;
const CLUSTER: u32 = 0xD3D0;
const KEY: [u8; 32] = [0x42; 32];
const WRONG_KEY: [u8; 32] = [0x24; 32];
const NODES: usize = 3;
const PORTS: usize = 2;
const MAX_OPS: usize = 64;
const MAX_CAPTURES: usize = 24;

fn mac(node: u16, port: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0x00, (node >> 8) as u8, node as u8, port, 0x01])
}

fn auth() -> AuthMode {
    AuthMode::Hmac(KeyRing::new(1, &KEY).expect("key"))
}

fn wrong_auth() -> AuthMode {
    AuthMode::Hmac(KeyRing::new(1, &WRONG_KEY).expect("key"))
}

/// The cluster key, set up once: `flush` verifies every transmitted frame,
/// and keying HMAC per frame was a visible share of each execution.
fn cluster_auth() -> &'static AuthMode {
    static A: OnceLock<AuthMode> = OnceLock::new();
    A.get_or_init(auth)
}

fn metrics() -> (NodeMetrics, Vec<PortMetrics>) {
    let n = NodeMetrics {
        cores: 4,
        cpu_util_bp: 1000,
        load1_centi: 40,
        load5_centi: 30,
        load15_centi: 20,
        io_load_bp: 100,
        mem_total: 8 << 30,
        mem_util_bp: 2000,
        temperature_centi: None,
    };
    let p = (0..PORTS)
        .map(|_| PortMetrics {
            link_up: true,
            speed_mbps: 1000,
            util_bp: 100,
            load_bp: 100,
            ..Default::default()
        })
        .collect();
    (n, p)
}

/// A frame seen on the switch, and which (node, port) it was delivered to.
#[derive(Clone)]
struct Capture {
    frame: Vec<u8>,
    delivered: Vec<(usize, u8)>,
}

#[derive(Clone)]
struct Cluster {
    nodes: Vec<Node>,
    now: Instant,
    captures: Vec<Capture>,
    next_capture: usize,
    buf: Vec<u8>,
}

/// What a user of a node sees.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    role: Role,
    term: u64,
    master: Option<u16>,
    table: Vec<(u16, (u64, u32, u16), NodeState)>,
}

fn snapshot(n: &Node) -> Snapshot {
    Snapshot {
        role: n.role(),
        term: n.term(),
        master: n.master(),
        table: n
            .table()
            .iter()
            .map(|e| (e.node_num(), e.record.key(), e.record.state))
            .collect(),
    }
}

impl Cluster {
    fn new() -> Cluster {
        let nodes = (0..NODES)
            .map(|i| {
                let num = i as u16 + 1;
                let macs: Vec<_> = (0..PORTS).map(|p| mac(num, p as u8)).collect();
                let mut c = NodeConfig::new(num, CLUSTER, &macs, auth());
                c.priority = (NODES - i) as u8;
                c.rng_seed = 0xf022 ^ u64::from(num);
                let mut n = Node::new(c, Instant::ZERO).expect("valid config");
                let (m, p) = metrics();
                n.set_local_metrics(m, &p, &[]);
                n
            })
            .collect();
        Cluster {
            nodes,
            now: Instant::ZERO,
            captures: Vec::new(),
            next_capture: 0,
            buf: vec![0u8; 14 + 1500],
        }
    }

    fn capture(&mut self, c: Capture) {
        if self.captures.len() < MAX_CAPTURES {
            self.captures.push(c);
        } else {
            self.captures[self.next_capture % MAX_CAPTURES] = c;
            self.next_capture += 1;
        }
    }

    /// Deliver one frame and check the reject-counter invariant.
    fn deliver(&mut self, to: usize, port: u8, frame: &[u8]) -> Result<(), Reject> {
        let now = self.now;
        let n = &mut self.nodes[to];
        let before = *n.rejects();
        let r = n.handle_frame(now, port, frame);
        let after = *n.rejects();
        match r {
            Ok(()) => assert_eq!(before.total(), after.total(), "Ok frame counted"),
            Err(e) => {
                assert_eq!(before.total() + 1, after.total(), "reject not counted once");
                assert_eq!(before.get(e) + 1, after.get(e), "reject counted elsewhere");
            }
        }
        while n.poll_event().is_some() {}
        r
    }

    /// A hostile frame without the key: must be rejected and change nothing.
    fn hostile(&mut self, to: usize, port: u8, frame: &[u8]) {
        let before = snapshot(&self.nodes[to]);
        let r = self.deliver(to, port, frame);
        assert!(
            r.is_err(),
            "unauthenticated frame accepted by node {}",
            to + 1
        );
        assert_eq!(
            before,
            snapshot(&self.nodes[to]),
            "rejected frame changed state"
        );
    }

    /// Drain node `i`'s transmit queue onto the switch; `drop` bits drop
    /// deliveries.
    fn flush(&mut self, i: usize, drop: &mut u32) {
        let mut buf = std::mem::take(&mut self.buf);
        let num = self.nodes[i].node_num();
        let mtu = self.nodes[i].config().mtu;
        loop {
            let now = self.now;
            let Some(tx) = self.nodes[i].poll_transmit(now, &mut buf) else {
                break;
            };
            assert!(tx.len <= 14 + mtu, "frame of {} B over the MTU", tx.len);
            let ok = ControlRepr::parse(&buf[..tx.len], ET, CLUSTER, cluster_auth());
            assert!(
                ok.is_ok(),
                "node {num} sent a frame that does not verify: {ok:?}"
            );
            for port in tx.ports.iter() {
                let mut f = buf[..tx.len].to_vec();
                ethernet::patch_src(&mut f, mac(num, port));
                let mut cap = Capture {
                    frame: f.clone(),
                    delivered: Vec::new(),
                };
                for j in 0..NODES {
                    if j == i {
                        continue;
                    }
                    let lost = *drop & 1 == 1;
                    *drop = drop.rotate_right(1);
                    if lost {
                        continue;
                    }
                    let _ = self.deliver(j, port, &f);
                    cap.delivered.push((j, port));
                }
                self.capture(cap);
            }
        }
        self.buf = buf;
    }

    /// Run the cluster for `d`, every node's timers and traffic.
    fn step(&mut self, d: Duration, mut drop: u32) {
        let end = self.now + d;
        loop {
            let next = self
                .nodes
                .iter()
                .filter_map(|n| n.poll_timeout())
                .min()
                .filter(|t| *t <= end);
            let Some(t) = next else { break };
            if t > self.now {
                self.now = t;
            }
            for i in 0..NODES {
                if self.nodes[i].poll_timeout().is_some_and(|t| t <= self.now) {
                    self.nodes[i].handle_timeout(self.now);
                }
                self.flush(i, &mut drop);
            }
        }
        self.now = end;
        for i in 0..NODES {
            self.flush(i, &mut drop);
        }
    }

    fn check(&self) {
        for n in &self.nodes {
            if n.role() == Role::Master {
                assert_eq!(n.master(), Some(n.node_num()), "master not naming itself");
            }
            assert!(
                n.table().get(n.node_num()).is_some(),
                "node {} lost its own entry",
                n.node_num()
            );
        }
    }
}

/// The cluster after 2 s of clean running (a master elected, tables full).
fn warm() -> &'static Cluster {
    static C: OnceLock<Cluster> = OnceLock::new();
    C.get_or_init(|| {
        let mut c = Cluster::new();
        for _ in 0..20 {
            c.step(Duration::from_millis(100), 0);
        }
        c.check();
        c
    })
}

fn record(u: &mut Unstructured<'_>) -> AResult<NodeRecord> {
    let mut r = NodeRecord::new(u.int_in_range(0..=6)?, u.int_in_range(0..=3)?);
    r.version = u.int_in_range(0..=8)?;
    r.amend = u.arbitrary()?;
    r.state = NodeState::from(u.int_in_range(0..=4)?);
    r.priority = u.arbitrary()?;
    r.temperature_centi = u.arbitrary()?;
    for _ in 0..u.int_in_range(0..=3)? {
        let p = PortRecord {
            idx: u.int_in_range(0..=17)?,
            state: PortState::from(u.int_in_range(0..=2)?),
            reachable: u.arbitrary()?,
            mac: EthernetAddress(u.arbitrary()?),
            speed_mbps: u.arbitrary()?,
            rtt_ns: u.arbitrary()?,
            ..Default::default()
        };
        if r.ports.push(p).is_err() {
            break;
        }
    }
    Ok(r)
}

fn message<'e>(u: &mut Unstructured<'_>, enc: &'e mut Vec<u8>) -> AResult<Message<'e>> {
    Ok(match u.int_in_range(0..=5)? {
        0 | 1 => {
            // table segment: raw record bytes (0) or well-formed records (1)
            let raw = u.arbitrary::<bool>()?;
            enc.clear();
            let mut count = 0u16;
            if raw {
                let n = u.int_in_range(0..=600)?;
                enc.extend_from_slice(u.bytes(n.min(u.len()))?);
                count = u.arbitrary()?;
            } else {
                for _ in 0..u.int_in_range(0..=4)? {
                    let r = record(u)?;
                    let at = enc.len();
                    enc.resize(at + r.buffer_len(), 0);
                    r.emit(&mut enc[at..]);
                    count += 1;
                }
            }
            let seg_count = u.int_in_range(0..=70)?;
            let records: &'e [u8] = enc;
            Message::Table(TableRepr {
                round: u.int_in_range(0..=40)?,
                seg_idx: u.int_in_range(0..=70)?,
                seg_count,
                flags: u.int_in_range(0..=2)?,
                count,
                records,
            })
        }
        2 => Message::Heartbeat(HeartbeatRepr {
            round: u.int_in_range(0..=40)?,
            period_ns: u.int_in_range(0..=200_000_000)?,
            priority: u.arbitrary()?,
            flags: u.arbitrary()?,
            table_nodes: u.arbitrary()?,
        }),
        3 => Message::Response(ResponseRepr {
            echo_ts: u.arbitrary()?,
            round: u.int_in_range(0..=40)?,
            port: u.int_in_range(0..=17)?,
            master: if u.arbitrary()? {
                Some(u.int_in_range(0..=6)?)
            } else {
                None
            },
            master_term: u.int_in_range(0..=8)?,
            priority: u.arbitrary()?,
            record: if u.arbitrary()? {
                Some(record(u)?)
            } else {
                None
            },
        }),
        4 => Message::Announce(AnnounceRepr {
            priority: u.arbitrary()?,
            flags: u.arbitrary()?,
            last_master: if u.arbitrary()? {
                Some(u.int_in_range(0..=6)?)
            } else {
                None
            },
        }),
        _ => Message::Leave(LeaveRepr {
            reason: LeaveReason::from(u.int_in_range(1..=3)?),
        }),
    })
}

/// An attacker's control frame, signed with `auth`.
fn forge(u: &mut Unstructured<'_>, auth: &AuthMode) -> AResult<Vec<u8>> {
    let mut enc = Vec::new();
    let sender = u.int_in_range(0..=6)?;
    let header = HeaderRepr {
        kind: Kind::Heartbeat,
        flags: 0,
        key_id: 0,
        cluster_id: CLUSTER,
        sender,
        incarnation: u.int_in_range(0..=3)?,
        term: u.int_in_range(0..=8)?,
        seq: u.arbitrary()?,
        timestamp: u.arbitrary()?,
        body_len: 0,
    };
    let message = message(u, &mut enc)?;
    let c = ControlRepr {
        dst: EthernetAddress::BROADCAST,
        src: mac(sender, 0),
        header,
        message,
    };
    let mut buf = vec![0u8; c.buffer_len()];
    let n = c.emit(&mut buf, ET, auth).unwrap_or(0);
    buf.truncate(n);
    Ok(buf)
}

fn run(u: &mut Unstructured<'_>) -> AResult<()> {
    let mut c = warm().clone();
    static WRONG: OnceLock<AuthMode> = OnceLock::new();
    let wrong = WRONG.get_or_init(wrong_auth);
    let good = cluster_auth();
    for _ in 0..MAX_OPS {
        if u.is_empty() {
            break;
        }
        let to = u.int_in_range(0..=NODES - 1)?;
        let port = u.int_in_range(0..=PORTS as u8 - 1)?;
        match u.int_in_range(0..=8)? {
            0 => {
                let ms = u.int_in_range(1..=300)?;
                let drop = u.arbitrary()?;
                c.step(Duration::from_millis(ms), drop);
            }
            1 | 2 => {
                // authenticated forgery: anything may happen, but counted
                let f = forge(u, good)?;
                let _ = c.deliver(to, port, &f);
                let mut no_drop = 0;
                c.flush(to, &mut no_drop);
            }
            3 => {
                let f = forge(u, wrong)?;
                c.hostile(to, port, &f);
            }
            4 => {
                let n = u.int_in_range(0..=1600)?;
                let mut g = u.bytes(n.min(u.len()))?.to_vec();
                if g.len() >= 14 && u.arbitrary()? {
                    g[12..14].copy_from_slice(&ET.to_be_bytes());
                }
                c.hostile(to, port, &g);
            }
            5 | 6 | 7 if !c.captures.is_empty() => {
                let k = u.choose_index(c.captures.len())?;
                let cap = c.captures[k].clone();
                let op = u.int_in_range(0..=2)?;
                match op {
                    0 => {
                        // replay to a (node, port) that already had it
                        if let Some(&(j, p)) = cap.delivered.first() {
                            c.hostile(j, p, &cap.frame);
                        }
                    }
                    1 => {
                        // the same frame with a higher term, tag unchanged
                        let mut f = cap.frame.clone();
                        if let Ok(mut cf) = ControlFrame::new_checked(&mut f[..]) {
                            let t = cf.term();
                            cf.set_term(t.wrapping_add(u.int_in_range(1..=1000)?));
                            c.hostile(to, port, &f);
                        }
                    }
                    _ => {
                        // truncated (any shorter length)
                        let n = u.int_in_range(0..=cap.frame.len() - 1)?;
                        c.hostile(to, port, &cap.frame[..n]);
                    }
                }
            }
            _ => {
                let n = u.int_in_range(0..=2000)?;
                let mut g = vec![0u8; n];
                u.fill_buffer(&mut g)?;
                if g.len() >= 14 {
                    g[12..14].copy_from_slice(&ET.to_be_bytes());
                }
                c.hostile(to, port, &g);
            }
        }
        c.check();
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
});
