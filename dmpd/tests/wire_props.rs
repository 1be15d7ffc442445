//! Property tests: parse(emit(x)) == x for every message; truncated and
//! bit-flipped authenticated frames are rejected without panic.

mod common;

use dmpd::wire::{
    AnnounceRepr, ControlRepr, DataFlags, DataFrame, DataRepr, EthernetAddress, HeaderRepr,
    HeartbeatRepr, Kind, LeaveReason, LeaveRepr, Message, NodeRecord, NodeState, PipeRecord,
    PipeState, PortRecord, PortState, Reject, ResponseRepr, TableRepr,
};
use dmpd::{AuthMode, Instant, KeyRing, Node};
use proptest::prelude::*;

const ET: u16 = 0x88b5;
const CL: u32 = 0xD3D0;

fn auth() -> AuthMode {
    AuthMode::Hmac(KeyRing::new(1, &common::KEY).unwrap())
}

fn port_record() -> impl Strategy<Value = PortRecord> {
    (
        (
            0u8..16,
            any::<bool>(),
            any::<bool>(),
            any::<[u8; 6]>(),
            any::<u32>(),
        ),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        ),
        (
            any::<u16>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
            any::<u16>(),
            any::<u32>(),
        ),
    )
        .prop_map(
            |((idx, up, reach, mac, speed), (rp, tp, rb, tb, rate), (u, d, e, o, l, rtt))| {
                PortRecord {
                    idx,
                    state: if up { PortState::Up } else { PortState::Down },
                    reachable: reach,
                    mac: EthernetAddress(mac),
                    speed_mbps: speed,
                    rx_packets: rp,
                    tx_packets: tp,
                    rx_bytes: rb,
                    tx_bytes: tb,
                    rate_bps: rate,
                    util_bp: u,
                    drops: d,
                    errors: e,
                    overflows: o,
                    load_bp: l,
                    rtt_ns: rtt,
                }
            },
        )
}

fn pipe_record() -> impl Strategy<Value = PipeRecord> {
    (
        any::<u16>(),
        any::<u8>(),
        0u8..3,
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(|(id, pr, st, th, bs, tx, rx, dr)| PipeRecord {
            id,
            priority: pr,
            state: PipeState::from(st),
            flow_threshold_kbps: th,
            buffer_size: bs,
            tx_msgs: tx,
            rx_msgs: rx,
            drops: dr,
        })
}

pub fn node_record() -> impl Strategy<Value = NodeRecord> {
    node_record_sized(16, 8)
}

fn node_record_sized(max_ports: usize, max_pipes: usize) -> impl Strategy<Value = NodeRecord> {
    (
        (
            0u16..0xffff,
            any::<u64>(),
            any::<u32>(),
            any::<u16>(),
            1u8..4,
            any::<u8>(),
        ),
        (
            any::<u16>(),
            any::<u16>(),
            any::<u16>(),
            any::<u16>(),
            any::<u16>(),
            any::<u16>(),
        ),
        (
            any::<u64>(),
            any::<u16>(),
            proptest::option::of(-20000i16..20000),
        ),
        proptest::collection::vec(port_record(), 0..=max_ports),
        proptest::collection::vec(pipe_record(), 0..=max_pipes),
    )
        .prop_map(
            |((n, inc, v, a, st, pr), (c, cu, l1, l5, l15, io), (mt, mu, t), ports, pipes)| {
                let mut r = NodeRecord::new(n, inc);
                r.version = v;
                r.amend = a;
                r.state = NodeState::from(st);
                r.priority = pr;
                r.cores = c;
                r.cpu_util_bp = cu;
                r.load1_centi = l1;
                r.load5_centi = l5;
                r.load15_centi = l15;
                r.io_load_bp = io;
                r.mem_total = mt;
                r.mem_util_bp = mu;
                r.temperature_centi = t;
                for p in ports {
                    r.ports.push(p).unwrap();
                }
                for q in pipes {
                    r.pipes.push(q).unwrap();
                }
                r
            },
        )
}

fn header() -> impl Strategy<Value = HeaderRepr> {
    (
        any::<u16>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
        .prop_map(|(s, inc, term, seq, ts)| HeaderRepr {
            kind: Kind::Heartbeat,
            flags: 0,
            key_id: 1,
            cluster_id: CL,
            sender: s,
            incarnation: inc,
            term,
            seq,
            timestamp: ts,
            body_len: 0,
        })
}

/// A message plus, for tables, the encoded records it borrows.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Msg {
    Heartbeat(HeartbeatRepr),
    Response(ResponseRepr),
    Table {
        round: u64,
        seg_idx: u16,
        seg_count: u16,
        records: Vec<NodeRecord>,
    },
    Announce(AnnounceRepr),
    Leave(LeaveRepr),
}

fn msg() -> impl Strategy<Value = Msg> {
    msg_sized(16, 8, 4)
}

/// Smaller messages for the (quadratic) every-bit-flip property.
fn small_msg() -> impl Strategy<Value = Msg> {
    msg_sized(4, 2, 3)
}

fn msg_sized(mp: usize, mq: usize, mr: usize) -> impl Strategy<Value = Msg> {
    prop_oneof![
        (
            any::<u64>(),
            any::<u64>(),
            any::<u8>(),
            any::<u8>(),
            any::<u16>()
        )
            .prop_map(|(round, p, pr, f, n)| {
                Msg::Heartbeat(HeartbeatRepr {
                    round,
                    period_ns: p,
                    priority: pr,
                    flags: f,
                    table_nodes: n,
                })
            }),
        (
            any::<u64>(),
            any::<u64>(),
            0u8..16,
            proptest::option::of(0u16..0xffff),
            any::<u64>(),
            any::<u8>(),
            proptest::option::of(node_record_sized(mp, mq))
        )
            .prop_map(|(e, r, port, m, mt, pr, rec)| Msg::Response(ResponseRepr {
                echo_ts: e,
                round: r,
                port,
                master: m,
                master_term: mt,
                priority: pr,
                record: rec
            })),
        (
            any::<u64>(),
            1u16..100,
            proptest::collection::vec(node_record_sized(mp, mq), 0..mr)
        )
            .prop_map(|(round, cnt, records)| {
                Msg::Table {
                    round,
                    seg_idx: cnt - 1,
                    seg_count: cnt,
                    records,
                }
            }),
        (any::<u8>(), any::<u8>(), proptest::option::of(0u16..0xffff)).prop_map(|(p, f, lm)| {
            Msg::Announce(AnnounceRepr {
                priority: p,
                flags: f,
                last_master: lm,
            })
        }),
        (1u8..4).prop_map(|r| Msg::Leave(LeaveRepr {
            reason: LeaveReason::from(r)
        })),
    ]
}

fn encode_records(records: &[NodeRecord]) -> Vec<u8> {
    let mut v = Vec::new();
    for r in records {
        let at = v.len();
        v.resize(at + r.buffer_len(), 0);
        r.emit(&mut v[at..]);
    }
    v
}

fn with_message<R>(m: &Msg, f: impl FnOnce(Message<'_>) -> R) -> R {
    match m {
        Msg::Heartbeat(x) => f(Message::Heartbeat(*x)),
        Msg::Response(x) => f(Message::Response(x.clone())),
        Msg::Table {
            round,
            seg_idx,
            seg_count,
            records,
        } => {
            let enc = encode_records(records);
            f(Message::Table(TableRepr {
                round: *round,
                seg_idx: *seg_idx,
                seg_count: *seg_count,
                flags: 1,
                count: records.len() as u16,
                records: &enc,
            }))
        }
        Msg::Announce(x) => f(Message::Announce(*x)),
        Msg::Leave(x) => f(Message::Leave(*x)),
    }
}

fn emit(h: HeaderRepr, m: &Msg, a: &AuthMode) -> Vec<u8> {
    with_message(m, |message| {
        let c = ControlRepr {
            dst: EthernetAddress::BROADCAST,
            src: EthernetAddress([2, 0, 0, 0, 0, 9]),
            header: h,
            message,
        };
        let mut buf = vec![0u8; c.buffer_len()];
        let n = c.emit(&mut buf, ET, a).expect("fits");
        assert_eq!(n, buf.len());
        buf
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, .. ProptestConfig::default() })]

    #[test]
    fn record_roundtrip(r in node_record()) {
        let mut buf = vec![0u8; r.buffer_len()];
        let n = r.emit(&mut buf);
        prop_assert_eq!(n, buf.len());
        let (p, len) = NodeRecord::parse(&buf).unwrap();
        prop_assert_eq!(len, n);
        prop_assert_eq!(p, r);
    }

    #[test]
    fn control_roundtrip(h in header(), m in msg()) {
        let a = auth();
        let frame = emit(h, &m, &a);
        let c = ControlRepr::parse(&frame, ET, CL, &a).unwrap();
        prop_assert_eq!(c.header.sender, h.sender);
        prop_assert_eq!(c.header.incarnation, h.incarnation);
        prop_assert_eq!(c.header.term, h.term);
        prop_assert_eq!(c.header.seq, h.seq);
        prop_assert_eq!(c.header.timestamp, h.timestamp);
        match (&m, &c.message) {
            (Msg::Heartbeat(x), Message::Heartbeat(y)) => prop_assert_eq!(x, y),
            (Msg::Response(x), Message::Response(y)) => prop_assert_eq!(x, y),
            (Msg::Announce(x), Message::Announce(y)) => prop_assert_eq!(x, y),
            (Msg::Leave(x), Message::Leave(y)) => prop_assert_eq!(x, y),
            (Msg::Table { round, seg_idx, seg_count, records }, Message::Table(t)) => {
                prop_assert_eq!(t.round, *round);
                prop_assert_eq!(t.seg_idx, *seg_idx);
                prop_assert_eq!(t.seg_count, *seg_count);
                prop_assert_eq!(&t.records().collect::<Vec<_>>(), records);
            }
            _ => prop_assert!(false, "kind changed"),
        }
        // re-emitting the parsed repr gives the same bytes
        let again = {
            let c2 = ControlRepr { dst: c.dst, src: c.src, header: c.header, message: c.message.clone() };
            let mut b = vec![0u8; c2.buffer_len()];
            c2.emit(&mut b, ET, &a).unwrap();
            b
        };
        prop_assert_eq!(again, frame.clone());
        // Ethernet padding after the tag is accepted
        let mut padded = frame.clone();
        padded.resize(frame.len().max(60) + 7, 0);
        prop_assert!(ControlRepr::parse(&padded, ET, CL, &a).is_ok());
    }

    #[test]
    fn node_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..1600), port in 0u8..4) {
        let cfg = common::config(3, 2, auth());
        let mut n = Node::new(cfg, Instant::ZERO).unwrap();
        let r = n.handle_frame(Instant::from_millis(1), port, &bytes);
        prop_assert!(r.is_err());
        prop_assert_eq!(n.rejects().total(), 1);
    }

    #[test]
    fn data_roundtrip(flags in 0u8..8, cl in any::<u32>(), s in any::<u16>(), d in any::<u16>(), sp in any::<u16>(),
                      dp in any::<u16>(), pt in any::<u8>(), seq in any::<u32>(), ack in any::<u32>(),
                      payload in proptest::collection::vec(any::<u8>(), 0..256)) {
        let r = DataRepr {
            dst: EthernetAddress([2, 0, 0, 0, 1, 1]),
            src: EthernetAddress([2, 0, 0, 0, 2, 2]),
            flags: DataFlags(flags),
            cluster_id: cl,
            snode: s, dnode: d, spipe: sp, dpipe: dp, ptype: pt,
            msg_seq: seq, ack,
            payload_len: payload.len() as u16,
        };
        let mut buf = vec![0u8; r.buffer_len()];
        prop_assert_eq!(r.emit(&mut buf, ET, &payload), Some(buf.len()));
        let f = DataFrame::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(DataRepr::parse(&f, ET, cl).unwrap(), r);
        prop_assert_eq!(f.payload(), &payload[..]);
        for n in 0..buf.len() {
            let f = DataFrame::new_unchecked(&buf[..n]);
            prop_assert!(DataRepr::parse(&f, ET, cl).is_err());
        }
    }
}

proptest! {
    // every truncation and every bit: quadratic, so fewer and smaller cases
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    #[test]
    fn truncations_and_bit_flips_rejected(h in header(), m in small_msg()) {
        let a = auth();
        let frame = emit(h, &m, &a);
        for n in 0..frame.len() {
            prop_assert!(ControlRepr::parse(&frame[..n], ET, CL, &a).is_err(), "truncated to {} accepted", n);
        }
        // every bit from the EtherType on (the MAC addresses are not
        // covered by design: the agent rewrites the source MAC per port)
        let mut f = frame.clone();
        for byte in 12..frame.len() {
            for bit in 0..8 {
                f[byte] ^= 1 << bit;
                prop_assert!(ControlRepr::parse(&f, ET, CL, &a).is_err(), "flip {}:{} accepted", byte, bit);
                f[byte] ^= 1 << bit;
            }
        }
    }
}

#[test]
fn forged_frame_rejected_and_counted() {
    let a = auth();
    let forger = AuthMode::Hmac(KeyRing::new(1, &[0x13; 32]).unwrap());
    let h = HeaderRepr {
        kind: Kind::Heartbeat,
        flags: 0,
        key_id: 1,
        cluster_id: CL,
        sender: 9,
        incarnation: 1,
        term: 1,
        seq: 1,
        timestamp: 5,
        body_len: 0,
    };
    let m = Msg::Heartbeat(HeartbeatRepr {
        round: 1,
        period_ns: 100_000_000,
        priority: 1,
        flags: 0,
        table_nodes: 1,
    });
    let forged = emit(h, &m, &forger);
    let mut n = Node::new(common::config(3, 2, a.clone()), Instant::ZERO).unwrap();
    assert_eq!(
        n.handle_frame(Instant::from_millis(1), 0, &forged),
        Err(Reject::BadMac)
    );
    assert_eq!(n.rejects().get(Reject::BadMac), 1);
    // unknown key id
    let other = AuthMode::Hmac(KeyRing::new(7, &common::KEY).unwrap());
    let f = emit(h, &m, &other);
    assert_eq!(
        n.handle_frame(Instant::from_millis(1), 0, &f),
        Err(Reject::UnknownKeyId)
    );
    // unauthenticated frame to an authenticated node
    let f = emit(h, &m, &AuthMode::None);
    assert_eq!(
        n.handle_frame(Instant::from_millis(1), 0, &f),
        Err(Reject::UnknownKeyId)
    );
    assert_eq!(n.rejects().get(Reject::UnknownKeyId), 2);
    // wrong cluster
    let mut h2 = h;
    h2.cluster_id = 1;
    let f = emit(h2, &m, &a);
    assert_eq!(
        n.handle_frame(Instant::from_millis(1), 0, &f),
        Err(Reject::WrongCluster)
    );
    // nothing was accepted
    assert_eq!(n.master(), None);
    assert_eq!(n.stats().frames_received, 0);
}

/// What `DataMatcher::check` must agree with: the checks spelt out through
/// the frame view.
fn data_for_us(d: &[u8], et: u16, cl: u32, node: u16) -> bool {
    match DataFrame::new_checked(d) {
        Ok(f) => {
            f.ethertype() == et
                && f.kind() == Kind::Data
                && f.cluster_id() == cl
                && f.dnode() == node
        }
        Err(_) => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, .. ProptestConfig::default() })]

    /// The receive fast path's single test accepts exactly the frames the
    /// field-by-field checks accept: valid frames, and the same frames with
    /// a header byte changed, cut short or padded, for another node or
    /// cluster, or with a payload length that does not fit.
    #[test]
    fn data_matcher_is_the_field_checks(
        cl in prop_oneof![Just(CL), any::<u32>()],
        node in prop_oneof![Just(2u16), any::<u16>()],
        dnode in prop_oneof![Just(2u16), any::<u16>()],
        pt in any::<u8>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64),
        flip in proptest::option::of((0usize..48, any::<u8>())),
        cut in proptest::option::of(0usize..120),
        pad in 0usize..8,
        claimed in proptest::option::of(any::<u16>()),
    ) {
        let r = DataRepr {
            dst: EthernetAddress([2, 0, 0, 0, 1, 1]),
            src: EthernetAddress([2, 0, 0, 0, 2, 2]),
            flags: DataFlags(0),
            cluster_id: CL,
            snode: 1, dnode, spipe: 3, dpipe: 4, ptype: pt,
            msg_seq: 5, ack: 0,
            payload_len: payload.len() as u16,
        };
        let mut buf = vec![0u8; r.buffer_len() + pad];
        prop_assert!(r.emit(&mut buf, ET, &payload).is_some());
        if let Some((at, v)) = flip {
            if at < buf.len() {
                buf[at] = v;
            }
        }
        if let Some(n) = claimed {
            buf[38..40].copy_from_slice(&n.to_be_bytes());
        }
        if let Some(n) = cut {
            buf.truncate(n);
        }
        let m = dmpd::wire::data::DataMatcher::new(ET, cl, node);
        let want = data_for_us(&buf, ET, cl, node);
        prop_assert_eq!(m.check(&buf).is_some(), want);
        let mut copy = buf.clone();
        prop_assert_eq!(m.check_mut(&mut copy).is_some(), want);
        if let Some(h) = m.check(&buf) {
            let f = DataFrame::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(dmpd::wire::data::dpipe_of(h), f.dpipe());
            prop_assert_eq!(dmpd::wire::data::dpipe_wire(h).swap_bytes(), f.dpipe());
            prop_assert_eq!(dmpd::wire::data::ptype_of(h), f.ptype());
            let (s, d, sp, dp, _) = f.five_tuple();
            let word = dmpd::wire::data::addrs_word(h);
            prop_assert_eq!(word, u64::from(s) << 48 | u64::from(d) << 32 | u64::from(sp) << 16 | u64::from(dp));
            let mut t = buf.clone();
            let th = m.check_mut(&mut t).unwrap();
            prop_assert_eq!(dmpd::wire::data::addrs_wire(th).swap_bytes(), word);
            let before = dmpd::wire::data::addrs_wire(th);
            let turned = dmpd::wire::data::turn_around(th);
            prop_assert_eq!(turned, dmpd::wire::data::addrs_wire(th));
            prop_assert_eq!(turned, dmpd::wire::data::turned_wire(before));
            let g = DataFrame::new_checked(&t[..]).unwrap();
            prop_assert_eq!(g.five_tuple(), (d, s, dp, sp, f.ptype()));
            prop_assert_eq!(&t[..22], &buf[..22]);
            prop_assert_eq!(&t[30..], &buf[30..]);
        }
    }
}
