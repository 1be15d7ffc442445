//! CPU time of the master's heartbeat round and table aggregation, and the
//! control bytes per node per period, for 100, 1,000 and 4,096 nodes.
//!
//! `cargo run --release -p dmpd-benches --bin control-cost [-- --quick]`
//!
//! The master is a real `dmpd::Node`, driven as the agent's control loop
//! drives it: timers, transmits, and every response of the round through
//! `handle_frame`. The responders are
//!
//! - up to 8 real `dmpd::Node` followers ("observers"), which hear the
//!   heartbeat on each port, answer, and apply every table segment;
//! - and encoded RESPONSE frames for every other node, emitted by the same
//!   `dmpd::wire::ControlRepr::emit` as the node uses, with each
//!   responder's own sender number, incarnation, sequence and MACs, signed
//!   with the cluster key. A responder puts its record in its first
//!   response of a round when the master's table lacks its version, as a
//!   real node does once it has learned the table. (Real nodes for all
//!   4,096 would each hold a 4,096-entry table: gigabytes.)
//!
//! Steady state with churn: every round, 1 node in 16 publishes a new
//! record version (the agent's `record_refresh_periods` is 16), so the
//! master ingests N/16 records per round, and the table carries those plus
//! the rolling-refresh slice (1/8 of the table).
//!
//! **Anchor.** HMAC-SHA256 (the `hmac`/`sha2` crates the protocol uses,
//! keyed once, cloned per frame, as `dmpd::wire::KeyRing` does) over the
//! authenticated bytes of exactly the frames the master received and sent
//! in that round, timed right after the round on the same thread. It is
//! the floor of any authenticated control plane carrying this traffic, so
//! `round / anchor` says how much the protocol logic (parsing, replay
//! window, table update, segment packing) adds to the unavoidable crypto,
//! and it stays put when the machine's load moves the absolute figures.
//!
//! Times are the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), so time
//! spent preempted by other processes is not counted.
//!
//! Exits non-zero when a sanity check fails (the master's table is not
//! complete and reachable, a frame was rejected, an observer's table differs
//! from the master's, a round had not one heartbeat).

use std::hint::black_box;
use std::process::ExitCode;

use dmpd::wire::{
    ControlRepr, EthernetAddress, HeaderRepr, Kind, Message, NodeRecord, PortRecord, PortState,
    ResponseRepr,
};
use dmpd::{AuthMode, Duration, Instant, KeyRing, Node, NodeConfig, NodeMetrics, PortMetrics};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const CLUSTER: u32 = 0xD3D0;
const KEY: [u8; 32] = [0x42; 32];
const MASTER: u16 = 1;
const OBSERVERS: usize = 8;
/// Ethernet per-frame overhead on the wire: preamble+SFD 8, FCS 4, IFG 12.
const WIRE_OVERHEAD: u64 = 24;
/// One node in CHURN publishes a new record version each round.
const CHURN: usize = 16;
const PERIOD: Duration = Duration::from_millis(100);
const TAG_LEN: usize = dmpd::wire::TAG_LEN;

type HmacSha256 = Hmac<Sha256>;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn mac(node: u16, port: usize) -> EthernetAddress {
    EthernetAddress([0x02, 0x00, (node >> 8) as u8, node as u8, port as u8, 0x01])
}

fn auth(hmac: bool) -> AuthMode {
    if hmac {
        AuthMode::Hmac(KeyRing::new(1, &KEY).expect("key"))
    } else {
        AuthMode::None
    }
}

fn config(node: u16, ports: usize, hmac: bool) -> NodeConfig {
    let macs: Vec<EthernetAddress> = (0..ports).map(|p| mac(node, p)).collect();
    let mut c = NodeConfig::new(node, CLUSTER, &macs, auth(hmac)).with_period(PERIOD);
    c.rng_seed = 0x5eed ^ u64::from(node);
    // churn is driven explicitly below, one node in CHURN per round
    c.record_refresh_periods = 0;
    c
}

fn node_metrics(cpu_bp: u16) -> NodeMetrics {
    NodeMetrics {
        cores: 8,
        cpu_util_bp: cpu_bp,
        load1_centi: 50,
        load5_centi: 40,
        load15_centi: 30,
        io_load_bp: 100,
        mem_total: 16 << 30,
        mem_util_bp: 2500,
        temperature_centi: Some(4500),
    }
}

fn port_metrics(ports: usize, round: u64) -> Vec<PortMetrics> {
    (0..ports)
        .map(|_| PortMetrics {
            link_up: true,
            speed_mbps: 1000,
            rx_packets: round * 1000,
            tx_packets: round * 1000,
            rx_bytes: round * 1_000_000,
            tx_bytes: round * 1_000_000,
            rate_bps: 80_000_000,
            util_bp: 800,
            load_bp: 800,
            ..Default::default()
        })
        .collect()
}

fn cpu_for(round: u64) -> u16 {
    if (round / CHURN as u64).is_multiple_of(2) {
        1000
    } else {
        3000
    }
}

/// A responder that exists as the frames it would send.
struct Encoded {
    num: u16,
    incarnation: u64,
    seq: u64,
    record: NodeRecord,
}

impl Encoded {
    fn new(num: u16, ports: usize) -> Encoded {
        let incarnation = 1_000 + u64::from(num);
        let mut r = NodeRecord::new(num, incarnation);
        r.version = 1;
        r.priority = 1;
        let m = node_metrics(cpu_for(0));
        r.cores = m.cores;
        r.cpu_util_bp = m.cpu_util_bp;
        r.load1_centi = m.load1_centi;
        r.load5_centi = m.load5_centi;
        r.load15_centi = m.load15_centi;
        r.io_load_bp = m.io_load_bp;
        r.mem_total = m.mem_total;
        r.mem_util_bp = m.mem_util_bp;
        r.temperature_centi = m.temperature_centi;
        for (i, p) in port_metrics(ports, 0).into_iter().enumerate() {
            let _ = r.ports.push(PortRecord {
                idx: i as u8,
                state: PortState::Up,
                reachable: false,
                mac: mac(num, i),
                speed_mbps: p.speed_mbps,
                rx_packets: p.rx_packets,
                tx_packets: p.tx_packets,
                rx_bytes: p.rx_bytes,
                tx_bytes: p.tx_bytes,
                rate_bps: p.rate_bps,
                util_bp: p.util_bp,
                drops: 0,
                errors: 0,
                overflows: 0,
                load_bp: p.load_bp,
                rtt_ns: 0,
            });
        }
        Encoded {
            num,
            incarnation,
            seq: 0,
            record: r,
        }
    }

    /// A new version with changed metrics, as `set_local_metrics` publishes
    /// after a significant change.
    fn churn(&mut self, round: u64) {
        self.record.version += 1;
        self.record.cpu_util_bp = cpu_for(round);
        for p in self.record.ports.iter_mut() {
            p.rx_packets = round * 1000;
            p.tx_packets = round * 1000;
        }
    }
}

/// One configuration: N nodes with `ports` ports each.
struct Bench {
    nodes: usize,
    ports: usize,
    hmac: bool,
    master: Node,
    observers: Vec<Node>,
    encoded: Vec<Encoded>,
    auth: AuthMode,
    anchor_key: HmacSha256,
    buf: Vec<u8>,
    rbuf: Vec<u8>,
    round: u64,
}

/// What one round cost and carried.
#[derive(Default, Clone, Copy)]
struct Round {
    /// Thread CPU ns: the timer that started the round and sent the
    /// heartbeat; ingesting every response; the timer that planned the
    /// table and emitting its segments; other timers (maintenance).
    hb_ns: u64,
    resp_ns: u64,
    table_ns: u64,
    other_ns: u64,
    anchor_ns: u64,
    heartbeats: u64,
    master_frames: u64,
    master_wire_frames: u64,
    master_wire_bytes: u64,
    hb_bytes: u64,
    segments: u64,
    segment_bytes: u64,
    responses: u64,
    response_bytes: u64,
    records_in_responses: u64,
}

impl Round {
    fn total_ns(&self) -> u64 {
        self.hb_ns + self.resp_ns + self.table_ns + self.other_ns
    }
}

impl Bench {
    fn new(nodes: usize, ports: usize, hmac: bool) -> Bench {
        let mut master = Node::new(config(MASTER, ports, hmac), Instant::ZERO).expect("config");
        let mut buf = vec![0u8; 14 + 1500];
        while !master.is_master() {
            let t = master.poll_timeout().expect("timer");
            master.handle_timeout(t);
            while master.poll_transmit(t, &mut buf).is_some() {}
        }
        let n_obs = OBSERVERS.min(nodes - 1);
        let observers = (0..n_obs)
            .map(|i| {
                let mut n = Node::new(config(MASTER + 1 + i as u16, ports, hmac), Instant::ZERO)
                    .expect("config");
                n.set_local_metrics(node_metrics(cpu_for(0)), &port_metrics(ports, 0), &[]);
                n
            })
            .collect();
        let encoded = (n_obs..nodes - 1)
            .map(|i| Encoded::new(MASTER + 1 + i as u16, ports))
            .collect();
        Bench {
            nodes,
            ports,
            hmac,
            master,
            observers,
            encoded,
            auth: auth(hmac),
            anchor_key: HmacSha256::new_from_slice(&KEY).expect("key"),
            buf,
            rbuf: vec![0u8; 14 + 1500],
            round: 0,
        }
    }

    /// One round of the master: every timer from its heartbeat to just
    /// before the next, the round's responses right after the heartbeat.
    /// Returns the costs; `timed` also runs the anchor.
    fn period(&mut self, timed: bool) -> Round {
        let mut r = Round::default();
        // what the master authenticated this round (for the anchor)
        let mut auth_frames: Vec<Vec<u8>> = Vec::new();
        self.round += 1;
        let round = self.round;
        let slot = (round % CHURN as u64) as usize;
        // this round's churn: 1 node in CHURN publishes a new version
        for (i, n) in self.observers.iter_mut().enumerate() {
            let cpu = if i % CHURN == slot {
                cpu_for(round)
            } else {
                n.local_record().cpu_util_bp
            };
            n.set_local_metrics(node_metrics(cpu), &port_metrics(self.ports, round), &[]);
        }
        // the agent feeds the master its own metrics every period too
        let cpu = self.master.local_record().cpu_util_bp;
        self.master.set_local_metrics(
            node_metrics(cpu.max(1000)),
            &port_metrics(self.ports, round),
            &[],
        );
        for (i, e) in self.encoded.iter_mut().enumerate() {
            if (i + self.observers.len()) % CHURN == slot {
                e.churn(round);
            }
        }
        // From the round's heartbeat to the next one: the heartbeat, its
        // responses, the table a quarter period later, maintenance.
        let mut hb_at: Option<Instant> = None;
        loop {
            let t = self.master.poll_timeout().expect("master timer");
            if hb_at.is_some_and(|h| t >= h + PERIOD) {
                break;
            }
            let c0 = thread_cpu_ns();
            self.master.handle_timeout(t);
            let mut sent: Vec<(Vec<u8>, u32)> = Vec::new();
            while let Some(tx) = self.master.poll_transmit(t, &mut self.buf) {
                // the copy is what the agent does too (into an mbuf)
                sent.push((self.buf[..tx.len].to_vec(), tx.ports.count()));
            }
            let c1 = thread_cpu_ns();
            let mut hb: Option<Vec<u8>> = None;
            let mut segs: Vec<Vec<u8>> = Vec::new();
            for (f, nports) in sent {
                r.master_frames += 1;
                r.master_wire_frames += u64::from(nports);
                r.master_wire_bytes += u64::from(nports) * f.len() as u64;
                if self.hmac {
                    auth_frames.push(f[12..f.len() - TAG_LEN].to_vec());
                }
                match Kind::from(f[15]) {
                    Kind::Heartbeat => {
                        r.heartbeats += 1;
                        r.hb_bytes += f.len() as u64;
                        hb = Some(f);
                    }
                    Kind::Table => {
                        r.segments += 1;
                        r.segment_bytes += f.len() as u64;
                        segs.push(f);
                    }
                    k => panic!("master sent an unexpected {k:?}"),
                }
            }
            if let Some(hb) = &hb {
                hb_at = Some(t);
                r.hb_ns += c1 - c0;
                let at = t + Duration::from_micros(50);
                let back = at + Duration::from_micros(50);
                let responses = self.responses(at, hb);
                let c2 = thread_cpu_ns();
                for (port, f) in &responses {
                    self.master
                        .handle_frame(back, *port, f)
                        .unwrap_or_else(|e| panic!("master rejected a response: {e}"));
                }
                let c3 = thread_cpu_ns();
                r.resp_ns += c3 - c2;
                for (_, f) in &responses {
                    r.responses += 1;
                    r.response_bytes += f.len() as u64;
                    if f.len() > 104 {
                        r.records_in_responses += 1;
                    }
                    if self.hmac {
                        auth_frames.push(f[12..f.len() - TAG_LEN].to_vec());
                    }
                }
            } else if !segs.is_empty() {
                r.table_ns += c1 - c0;
            } else {
                r.other_ns += c1 - c0;
            }
            let at = t + Duration::from_micros(50);
            for f in &segs {
                for o in self.observers.iter_mut() {
                    o.handle_frame(at, 0, f)
                        .unwrap_or_else(|e| panic!("observer rejected a segment: {e}"));
                }
            }
        }
        if timed {
            // The anchor, on the same thread right after the round.
            let c0 = thread_cpu_ns();
            for f in &auth_frames {
                let mut m = self.anchor_key.clone();
                m.update(black_box(f));
                black_box(m.finalize().into_bytes());
            }
            r.anchor_ns = thread_cpu_ns() - c0;
        }
        r
    }

    /// Every responder's frames for one heartbeat, as (master port, frame).
    fn responses(&mut self, at: Instant, hb: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut out = Vec::with_capacity((self.nodes - 1) * self.ports);
        for o in self.observers.iter_mut() {
            for p in 0..self.ports {
                o.handle_frame(at, p as u8, hb)
                    .unwrap_or_else(|e| panic!("observer rejected the heartbeat: {e}"));
            }
            while let Some(tx) = o.poll_transmit(at, &mut self.rbuf) {
                let port = tx.ports.first().expect("a port");
                out.push((port % self.ports as u8, self.rbuf[..tx.len].to_vec()));
            }
            while o.poll_event().is_some() {}
        }
        let view = ControlRepr::parse(hb, dmpd::wire::DEFAULT_ETHERTYPE, CLUSTER, &self.auth)
            .expect("heartbeat parses");
        let Message::Heartbeat(h) = view.message else {
            panic!("not a heartbeat")
        };
        let (echo_ts, term) = (view.header.timestamp, view.header.term);
        for e in self.encoded.iter_mut() {
            let known = self.master.table().get(e.num).is_some_and(|x| {
                (x.record.incarnation, x.record.version) == (e.record.incarnation, e.record.version)
            });
            for p in 0..self.ports {
                e.seq += 1;
                let c = ControlRepr {
                    dst: mac(MASTER, p % self.ports),
                    src: mac(e.num, p),
                    header: HeaderRepr {
                        kind: Kind::Response,
                        flags: 0,
                        key_id: 0,
                        cluster_id: CLUSTER,
                        sender: e.num,
                        incarnation: e.incarnation,
                        term,
                        seq: e.seq,
                        timestamp: at.total_nanos(),
                        body_len: 0,
                    },
                    message: Message::Response(ResponseRepr {
                        echo_ts,
                        round: h.round,
                        port: p as u8,
                        master: Some(MASTER),
                        master_term: term,
                        priority: 1,
                        record: (p == 0 && !known).then(|| e.record.clone()),
                    }),
                };
                let len = c
                    .emit(&mut self.rbuf, dmpd::wire::DEFAULT_ETHERTYPE, &self.auth)
                    .expect("response fits");
                out.push((p as u8, self.rbuf[..len].to_vec()));
            }
        }
        out
    }

    /// Sanity of the steady state; the first problem found.
    fn check(&self) -> Result<(), String> {
        let t = self.master.table();
        if t.len() != self.nodes {
            return Err(format!(
                "master table has {} of {} nodes",
                t.len(),
                self.nodes
            ));
        }
        for e in t.iter() {
            if e.record.state != dmpd::NodeState::Up {
                return Err(format!("node {} is {:?}", e.node_num(), e.record.state));
            }
            if e.usable_ports().count() != self.ports {
                return Err(format!(
                    "node {}: {} of {} ports usable",
                    e.node_num(),
                    e.usable_ports().count(),
                    self.ports
                ));
            }
        }
        let rej = self.master.rejects().total();
        if rej != 0 {
            return Err(format!("master rejected {rej} frames"));
        }
        for o in &self.observers {
            for e in t.iter() {
                let theirs = o.table().get(e.node_num()).map(|x| x.record.key());
                if e.node_num() != o.node_num() && theirs != Some(e.record.key()) {
                    return Err(format!(
                        "observer {}: node {} is {:?}, master has {:?}",
                        o.node_num(),
                        e.node_num(),
                        theirs,
                        e.record.key()
                    ));
                }
            }
            if o.master() != Some(MASTER) {
                return Err(format!(
                    "observer {} follows {:?}",
                    o.node_num(),
                    o.master()
                ));
            }
        }
        Ok(())
    }
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn medianf(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

struct Measured {
    nodes: usize,
    ports: usize,
    hmac: bool,
    rounds: Vec<Round>,
    observer_sent: (u64, u64),
}

fn run(nodes: usize, ports: usize, hmac: bool, rounds: usize) -> Result<Measured, String> {
    let mut b = Bench::new(nodes, ports, hmac);
    // warm up: the master learns every record, the observers every record,
    // and every slice of the rolling refresh has gone out twice
    let refresh = u64::from(b.master.config().refresh_rounds);
    for _ in 0..(2 * refresh as usize + CHURN) {
        b.period(false);
    }
    b.check()?;
    let obs_before: (u64, u64) = b.observers.iter().fold((0, 0), |a, o| {
        (a.0 + o.stats().frames_sent, a.1 + o.stats().wire_bytes_sent)
    });
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let r = b.period(true);
        if r.heartbeats != 1 {
            return Err(format!("a period sent {} heartbeats", r.heartbeats));
        }
        if r.responses != ((nodes - 1) * ports) as u64 {
            return Err(format!(
                "{} responses for {} nodes x {} ports",
                r.responses,
                nodes - 1,
                ports
            ));
        }
        if r.segments == 0 {
            return Err("a round without a table segment".into());
        }
        out.push(r);
    }
    b.check()?;
    let obs_after: (u64, u64) = b.observers.iter().fold((0, 0), |a, o| {
        (a.0 + o.stats().frames_sent, a.1 + o.stats().wire_bytes_sent)
    });
    Ok(Measured {
        nodes,
        ports,
        hmac,
        rounds: out,
        observer_sent: (obs_after.0 - obs_before.0, obs_after.1 - obs_before.1),
    })
}

fn main() -> ExitCode {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 9 } else { 31 };
    let configs: Vec<(usize, usize, bool)> = if quick {
        vec![(100, 2, true), (1000, 2, true), (4096, 2, true)]
    } else {
        let mut v = Vec::new();
        for ports in [2, 4] {
            for nodes in [100, 1000, 4096] {
                v.push((nodes, ports, true));
            }
        }
        for nodes in [100, 1000, 4096] {
            v.push((nodes, 2, false));
        }
        v
    };
    println!("control-cost: {rounds} measured rounds per configuration after warm-up; period P = {} ms in the protocol's clock (the CPU cost of a round does not depend on P)", PERIOD.total_nanos() / 1_000_000);
    println!("load average at start: {}\n", loadavg());

    let mut results = Vec::new();
    for (nodes, ports, hmac) in configs {
        match run(nodes, ports, hmac, rounds) {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!(
                    "control-cost: FAILED at {nodes} nodes x {ports} ports (hmac {hmac}): {e}"
                );
                return ExitCode::FAILURE;
            }
        }
    }

    println!("### CPU time of one master round (thread CPU time, median over {rounds} rounds)\n");
    println!("| nodes | ports | auth | round, us (min-max) | heartbeat | responses | table | other timers | HMAC anchor, us | round / anchor | ns per response | share of P = 10 ms / 100 ms / 1 s |");
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for res in &results {
        let mut tot: Vec<u64> = res.rounds.iter().map(Round::total_ns).collect();
        let mut hb: Vec<u64> = res.rounds.iter().map(|r| r.hb_ns).collect();
        let mut resp: Vec<u64> = res.rounds.iter().map(|r| r.resp_ns).collect();
        let mut table: Vec<u64> = res.rounds.iter().map(|r| r.table_ns).collect();
        let mut other: Vec<u64> = res.rounds.iter().map(|r| r.other_ns).collect();
        let mut anchor: Vec<u64> = res.rounds.iter().map(|r| r.anchor_ns).collect();
        let mut ratio: Vec<f64> = res
            .rounds
            .iter()
            .map(|r| r.total_ns() as f64 / r.anchor_ns.max(1) as f64)
            .collect();
        let min = *tot.iter().min().unwrap();
        let max = *tot.iter().max().unwrap();
        let t = median(&mut tot);
        let per_resp = median(&mut resp) as f64 / ((res.nodes - 1) * res.ports) as f64;
        let resp_med = median(&mut resp);
        let share = |p_ms: f64| t as f64 / (p_ms * 1e6) * 100.0;
        let (anchor_s, ratio_s) = if res.hmac {
            (
                us(median(&mut anchor)),
                format!("{:.2}", medianf(&mut ratio)),
            )
        } else {
            ("n/a".into(), "n/a".into())
        };
        println!(
            "| {} | {} | {} | {} ({}-{}) | {} | {} | {} | {} | {} | {} | {:.0} | {:.2} % / {:.3} % / {:.4} % |",
            res.nodes,
            res.ports,
            if res.hmac { "HMAC" } else { "none" },
            us(t),
            us(min),
            us(max),
            us(median(&mut hb)),
            us(resp_med),
            us(median(&mut table)),
            us(median(&mut other)),
            anchor_s,
            ratio_s,
            per_resp,
            share(10.0),
            share(100.0),
            share(1000.0),
        );
    }

    println!("\n### Control bytes per period (bytes on the wire: frame + {WIRE_OVERHEAD} B of preamble, FCS and gap per frame; means over the rounds)\n");
    println!("| nodes | ports | master sends: frames (heartbeat + segments), bytes (each copy on each port) | responses: frames, bytes | records in responses | sent per node per period, B | received by each non-master node (all its ports), B | received by the master (all its ports), B | busiest port's share of 1 Gb/s at P = 10 ms / 100 ms / 1 s |");
    println!("|---:|---:|---|---|---:|---:|---:|---:|---|");
    for res in results.iter().filter(|r| r.hmac) {
        let n = res.rounds.len() as u64;
        let avg =
            |f: &dyn Fn(&Round) -> u64| res.rounds.iter().map(f).sum::<u64>() as f64 / n as f64;
        let m_frames = avg(&|r| r.master_frames);
        let m_wire_frames = avg(&|r| r.master_wire_frames);
        let m_wire = avg(&|r| r.master_wire_bytes);
        let segs = avg(&|r| r.segments);
        let seg_bytes = avg(&|r| r.segment_bytes);
        let hb_bytes = avg(&|r| r.hb_bytes);
        let resp = avg(&|r| r.responses);
        let resp_bytes = avg(&|r| r.response_bytes);
        let recs = avg(&|r| r.records_in_responses);
        let m = res.ports as f64;
        let sent_total = m_wire
            + m_wire_frames * WIRE_OVERHEAD as f64
            + resp_bytes
            + resp * WIRE_OVERHEAD as f64;
        let per_node = sent_total / res.nodes as f64;
        // every port of a node on the one switch hears each heartbeat copy
        // (one per master port) and each segment
        let rx_node =
            m * (m * (hb_bytes + WIRE_OVERHEAD as f64) + seg_bytes + segs * WIRE_OVERHEAD as f64);
        let rx_master = resp_bytes + resp * WIRE_OVERHEAD as f64;
        // the busiest port: a master port receives 1/M of the responses
        let busiest = (rx_master / m).max(rx_node / m);
        let share = |p_s: f64| busiest * 8.0 / p_s / 1e9 * 100.0;
        println!(
            "| {} | {} | {:.0} ({:.0} + {:.1}), {:.0} | {:.0}, {:.0} | {:.1} | {:.0} | {:.0} | {:.0} | {:.2} % / {:.3} % / {:.4} % |",
            res.nodes,
            res.ports,
            m_frames,
            m_frames - segs,
            segs,
            m_wire + m_wire_frames * WIRE_OVERHEAD as f64,
            resp,
            resp_bytes + resp * WIRE_OVERHEAD as f64,
            recs,
            per_node,
            rx_node,
            rx_master,
            share(0.01),
            share(0.1),
            share(1.0),
        );
    }
    // The observers are real nodes: what they send per round should match
    // what the encoded responders send (both: 2 short responses plus a
    // record every CHURN rounds; the observers' churn is sampled over fewer
    // rounds).
    println!();
    for res in results.iter().filter(|r| r.hmac) {
        let n = res.rounds.len() as f64;
        let (of, ob) = res.observer_sent;
        let obs = OBSERVERS.min(res.nodes - 1) as f64;
        let enc: u64 = res.rounds.iter().map(|r| r.response_bytes).sum();
        println!(
            "check: {} nodes x {} ports: real observer nodes sent {:.2} frames, {:.1} B per node per round; all responders {:.1} B",
            res.nodes,
            res.ports,
            of as f64 / n / obs,
            ob as f64 / n / obs,
            enc as f64 / n / (res.nodes - 1) as f64
        );
    }
    println!("\nload average at end: {}", loadavg());
    ExitCode::SUCCESS
}
