//! Balancing quality: the same IPv4/UDP traffic sent over the same member
//! ports by DPDK's Link Bonding PMD (`net_bonding`, mode 2 with
//! `xmit_policy=l34`, or mode 5, adaptive transmit load balancing) or by our
//! balancer (`lb`: Toeplitz hash of the IPv4 addresses and UDP ports, then
//! the balancer's decision; or the hash alone, modulo the port count).
//!
//! Members are `net_af_packet` ports on veths (they count bytes, which mode
//! 5 needs); each veth's peer is read by another `net_af_packet` port, which
//! stands for the far end of a link of `--rate-mbps`: it takes at most that
//! many bytes per tick off its queue, so a port given more than its share
//! builds a backlog, and a flow that moves to an emptier port overtakes its
//! own earlier frames (counted as reordered). Traffic: `--active` flows at a
//! time with Pareto-distributed sizes (heavy tail: alpha 1.2), round robin
//! one frame per flow, flow id and sequence number in the payload; a
//! finished flow is replaced by a new one. The generator is seeded: every
//! mode sends the same frames.
//!
//! Prints one JSON line; `benches/bond-compare.sh` runs every mode on the
//! same veths and prints the table.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use clap::Parser;
use ffi::{Eal, Mbuf, MbufBurst, Mempool, Port, PortConfig, QueueId, SocketId};
use lb::balancer::{BalancerConfig, Controller, Decision, NO_PORT};
use lb::load::{LoadConfig, PortSample};
use lb::toeplitz::Toeplitz;
use lb::tuple::Ipv4Tuple;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Parser, Debug)]
#[command(about = "net_bonding against the dmpd balancer on the same member ports")]
struct Args {
    /// bond2 (mode 2, l34), bond5 (mode 5, TLB), dmpd (our balancer),
    /// hash (Toeplitz hash modulo the port count).
    #[arg(long)]
    mode: String,
    /// Member interfaces (veth ends), comma separated.
    #[arg(long)]
    members: String,
    /// Their peers, read as the far ends, in the same order.
    #[arg(long)]
    peers: String,
    /// Ticks of traffic.
    #[arg(long, default_value_t = 20_000)]
    ticks: u64,
    /// Tick length in microseconds.
    #[arg(long, default_value_t = 100)]
    tick_us: u64,
    /// Emulated link rate of each member, Mb/s.
    #[arg(long, default_value_t = 100)]
    rate_mbps: u64,
    /// Offered load, fraction of all members' capacity.
    #[arg(long, default_value_t = 0.8)]
    load: f64,
    /// Flows active at a time.
    #[arg(long, default_value_t = 64)]
    active: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Balancer sample period, ms (mode 5 reorders its members every 10 ms).
    #[arg(long, default_value_t = 10)]
    period_ms: u64,
    #[arg(long, default_value = "dmpd-bond")]
    file_prefix: String,
}

const MAGIC: u32 = 0x444d_5044;
const ALPHA: f64 = 1.2;
const MIN_FLOW_BYTES: f64 = 1500.0;
const MAX_FLOW_BYTES: f64 = 20e6;
/// Ethernet + IPv4 + UDP headers.
const HDRS: usize = 14 + 20 + 8;
const MAX_FRAME: usize = 1514;
const WIRE_EXTRA: u64 = 24;

struct Flow {
    id: u32,
    tuple: Ipv4Tuple,
    remaining: u64,
    seq: u32,
}

struct Traffic {
    rng: ChaCha8Rng,
    flows: Vec<Flow>,
    next_id: u32,
    cursor: usize,
}

impl Traffic {
    fn new(seed: u64, active: usize) -> Traffic {
        let mut t = Traffic {
            rng: ChaCha8Rng::seed_from_u64(seed),
            flows: Vec::with_capacity(active),
            next_id: 0,
            cursor: 0,
        };
        for _ in 0..active {
            let f = t.new_flow();
            t.flows.push(f);
        }
        t
    }

    fn new_flow(&mut self) -> Flow {
        let u: f64 = self.rng.gen_range(0.0..1.0);
        let size = (MIN_FLOW_BYTES * (1.0 - u).powf(-1.0 / ALPHA)).min(MAX_FLOW_BYTES);
        let id = self.next_id;
        self.next_id += 1;
        Flow {
            id,
            tuple: Ipv4Tuple {
                src: Ipv4Addr::from(0x0a00_0000 | self.rng.gen_range(0..1u32 << 16)),
                dst: Ipv4Addr::from(0x0a01_0000 | self.rng.gen_range(0..1u32 << 16)),
                sport: self.rng.gen_range(1024..65535),
                dport: self.rng.gen_range(1..1024),
            },
            remaining: size as u64,
            seq: 0,
        }
    }

    /// The next frame: (flow id, seq, tuple, frame length).
    fn next(&mut self) -> (u32, u32, Ipv4Tuple, usize) {
        let i = self.cursor % self.flows.len();
        self.cursor = self.cursor.wrapping_add(1);
        let f = &mut self.flows[i];
        let payload = (f.remaining as usize).clamp(18, MAX_FRAME - HDRS);
        let out = (f.id, f.seq, f.tuple, HDRS + payload);
        f.seq += 1;
        f.remaining = f.remaining.saturating_sub(payload as u64);
        if f.remaining == 0 {
            self.flows[i] = self.new_flow();
        }
        out
    }
}

fn build_frame(pool: &Mempool, flow: u32, seq: u32, t: &Ipv4Tuple, len: usize) -> Mbuf {
    let mut m = Mbuf::alloc(pool).expect("mbuf pool large enough");
    let b = m.append(len).expect("fits");
    b.fill(0);
    b[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xbb]);
    b[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0xaa]);
    b[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut b[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((len - 14) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&t.src.octets());
    ip[16..20].copy_from_slice(&t.dst.octets());
    let mut sum: u32 = ip
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    ip[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    let udp = &mut b[34..42];
    udp[0..2].copy_from_slice(&t.sport.to_be_bytes());
    udp[2..4].copy_from_slice(&t.dport.to_be_bytes());
    udp[4..6].copy_from_slice(&((len - 34) as u16).to_be_bytes());
    b[42..46].copy_from_slice(&MAGIC.to_be_bytes());
    b[46..50].copy_from_slice(&flow.to_be_bytes());
    b[50..54].copy_from_slice(&seq.to_be_bytes());
    m
}

enum Sender {
    Bond(Port),
    Ours {
        members: Vec<Port>,
        toeplitz: Toeplitz,
        lb: Option<Box<(Controller, lb::balancer::Balancer)>>,
    },
}

fn main() {
    let a = Args::parse();
    if let Err(e) = run(&a) {
        eprintln!("bond-compare: {e}");
        std::process::exit(1);
    }
}

fn run(a: &Args) -> Result<(), Box<dyn std::error::Error>> {
    let members: Vec<&str> = a.members.split(',').collect();
    let peers: Vec<&str> = a.peers.split(',').collect();
    let n = members.len();
    if !(2..=16).contains(&n) || peers.len() != n {
        return Err("--members and --peers: the same number (2..=16) of interfaces".into());
    }
    let mut eal_args: Vec<String> = [
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-shconf",
        "-l",
        "0",
        "--log-level=lib.eal:error",
    ]
    .map(String::from)
    .to_vec();
    eal_args.push(format!("--file-prefix={}", a.file_prefix));
    for (i, m) in members.iter().enumerate() {
        eal_args.push(format!("--vdev=net_af_packet{i},iface={m}"));
    }
    for (i, p) in peers.iter().enumerate() {
        eal_args.push(format!("--vdev=net_af_packet{},iface={p}", n + i));
    }
    let slaves: String = (0..n).map(|i| format!(",slave=net_af_packet{i}")).collect();
    let bond_args = match a.mode.as_str() {
        "bond2" => Some(format!("net_bonding0,mode=2,xmit_policy=l34{slaves}")),
        "bond5" => Some(format!("net_bonding0,mode=5{slaves}")),
        "dmpd" | "hash" => None,
        m => return Err(format!("--mode {m}: bond2, bond5, dmpd or hash").into()),
    };
    if let Some(b) = &bond_args {
        eal_args.push(format!("--vdev={b}"));
    }
    let _eal = Eal::init(eal_args)?;
    let pool = Mempool::new_pktmbuf("bc_pool", 32767, 256, 2176, SocketId::ANY)?;
    let pcfg = PortConfig {
        rss: false,
        ..PortConfig::default()
    };
    let rx_ports: Vec<Port> = (0..n)
        .map(|i| Port::by_name(&format!("net_af_packet{}", n + i)))
        .collect::<Result<_, _>>()?;
    for p in &rx_ports {
        p.configure(&pcfg, &pool)?;
        p.start()?;
    }
    let member_ports: Vec<Port> = (0..n)
        .map(|i| Port::by_name(&format!("net_af_packet{i}")))
        .collect::<Result<_, _>>()?;
    let mut sender = if bond_args.is_some() {
        let bond = Port::by_name("net_bonding0")?;
        bond.configure(&pcfg, &pool)?;
        bond.start()?;
        // The bond activates members as it sees their links up.
        let t = Instant::now();
        while !bond.link().map(|l| l.up).unwrap_or(false) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(500));
        Sender::Bond(bond)
    } else {
        for p in &member_ports {
            p.configure(&pcfg, &pool)?;
            p.start()?;
        }
        let lb = if a.mode == "dmpd" {
            let mut c = Controller::new(n, LoadConfig::default())?;
            c.set_remote_node(1, &vec![0.0; n], ((1u32 << n) - 1) as u16)?;
            c.publish();
            // The agent's default idle gap (`balancer.idle_gap_ms = 50`).
            let b = c.balancer(BalancerConfig {
                idle_gap_ns: 50_000_000,
                ..BalancerConfig::default()
            })?;
            Some(Box::new((c, b)))
        } else {
            None
        };
        std::thread::sleep(Duration::from_millis(200));
        Sender::Ours {
            members: member_ports
                .iter()
                .map(|p| Port::from_id(p.id()))
                .collect::<Result<_, _>>()?,
            toeplitz: Toeplitz::default(),
            lb,
        }
    };
    for p in member_ports.iter().chain(&rx_ports) {
        p.reset_stats()?;
    }

    let tick = Duration::from_micros(a.tick_us);
    let link_bytes = (a.rate_mbps as f64 * 1e6 / 8.0 * a.tick_us as f64 / 1e6).max(1.0);
    let offered = link_bytes * n as f64 * a.load;
    let mut traffic = Traffic::new(a.seed, a.active);
    let mut rx_budget = vec![0f64; n];
    let mut max_seq: Vec<i64> = Vec::new();
    let (mut sent, mut refused, mut received, mut reordered) = (0u64, 0u64, 0u64, 0u64);
    let mut rx_bytes = vec![0u64; n];
    let mut period_bytes = vec![0u64; n];
    // Per sample period: the spread of the ports' received bytes.
    let mut period_rx = vec![0u64; n];
    let mut period_spreads: Vec<f64> = Vec::new();
    let period = Duration::from_millis(a.period_ms);
    let mut budget = 0f64;
    let start = Instant::now();
    let mut next_period = start + period;
    let mut idle_ticks = 0u64;
    let mut t = 0u64;
    loop {
        let deadline = start + tick * (t as u32 + 1);
        let sending = t < a.ticks;
        if sending {
            budget += offered;
            let mut burst: MbufBurst<32> = MbufBurst::new();
            let mut tuples: [[u8; Ipv4Tuple::LEN]; 32] = [[0; Ipv4Tuple::LEN]; 32];
            while budget > 0.0 {
                let (flow, seq, tuple, len) = traffic.next();
                tuples[burst.len()] = tuple.to_bytes();
                let _ = burst.push(build_frame(&pool, flow, seq, &tuple, len));
                budget -= (len as u64 + WIRE_EXTRA) as f64;
                sent += 1;
                if burst.is_full() || budget <= 0.0 {
                    refused += send(&mut sender, &mut burst, &tuples, &mut period_bytes, n);
                }
            }
        }
        // The far ends: each takes at most a link's worth per tick.
        let mut got_any = false;
        for (i, p) in rx_ports.iter().enumerate() {
            rx_budget[i] = (rx_budget[i] + link_bytes).min(4.0 * link_bytes);
            let mut one: MbufBurst<1> = MbufBurst::new();
            while rx_budget[i] > 0.0 && p.rx_burst(QueueId::new(0), &mut one) == 1 {
                let m = one.pop().expect("one frame");
                let d = m.data();
                rx_budget[i] -= (d.len() as u64 + WIRE_EXTRA) as f64;
                if d.len() < 54 || u32::from_be_bytes([d[42], d[43], d[44], d[45]]) != MAGIC {
                    continue;
                }
                got_any = true;
                let flow = u32::from_be_bytes([d[46], d[47], d[48], d[49]]) as usize;
                let seq = i64::from(u32::from_be_bytes([d[50], d[51], d[52], d[53]]));
                if flow >= max_seq.len() {
                    max_seq.resize(flow + 1, -1);
                }
                if seq < max_seq[flow] {
                    reordered += 1;
                } else {
                    max_seq[flow] = seq;
                }
                received += 1;
                rx_bytes[i] += d.len() as u64;
                period_rx[i] += d.len() as u64;
            }
        }
        let now = Instant::now();
        if now >= next_period {
            next_period += period;
            let total: u64 = period_rx.iter().sum();
            if sending && total > 0 {
                period_spreads.push(std_dev_pp(&period_rx));
            }
            period_rx.iter_mut().for_each(|b| *b = 0);
            if let Sender::Ours { lb: Some(l), .. } = &mut sender {
                let c = &mut l.0;
                // What the agent's control lcore does each period: each
                // port's utilisation from its counters.
                let cap = a.rate_mbps as f64 * 1e6 * a.period_ms as f64 / 1e3;
                let samples: Vec<PortSample> = period_bytes
                    .iter()
                    .map(|&b| PortSample {
                        utilisation: (b as f64 * 8.0 / cap).min(1.0),
                        drop_rate: 0.0,
                        overflow_rate: 0.0,
                    })
                    .collect();
                c.record_samples(&samples)?;
                c.publish();
            }
            period_bytes.iter_mut().for_each(|b| *b = 0);
        }
        t += 1;
        if !sending {
            idle_ticks = if got_any { 0 } else { idle_ticks + 1 };
            if idle_ticks > 2000 || received + refused >= sent {
                break;
            }
        }
        let now = Instant::now();
        if now < deadline {
            // Spin: sleeping overshoots a 100 us tick by far.
            while Instant::now() < deadline {
                std::hint::spin_loop();
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let mut tx_bytes = Vec::with_capacity(n);
    let mut tx_frames = Vec::with_capacity(n);
    for p in &member_ports {
        let s = p.stats()?;
        tx_bytes.push(s.tx_bytes);
        tx_frames.push(s.tx_packets);
    }
    let total: u64 = tx_bytes.iter().sum();
    let share: Vec<f64> = tx_bytes
        .iter()
        .map(|&b| 100.0 * b as f64 / total.max(1) as f64)
        .collect();
    let mean_period_spread = if period_spreads.is_empty() {
        0.0
    } else {
        period_spreads.iter().sum::<f64>() / period_spreads.len() as f64
    };
    let out = serde_json::json!({
        "mode": a.mode,
        "seed": a.seed,
        "members": n,
        "flows": traffic.next_id,
        "sent": sent,
        "refused": refused,
        "received": received,
        "lost": sent.saturating_sub(received + refused),
        "reordered": reordered,
        "tx_bytes": tx_bytes,
        "tx_frames": tx_frames,
        "rx_bytes": rx_bytes,
        "share_pct": share,
        "spread_pp": std_dev_pp(&tx_bytes),
        "period_spread_pp": mean_period_spread,
        "seconds": elapsed,
        "ticks": a.ticks,
        "tick_us": a.tick_us,
        "rate_mbps": a.rate_mbps,
        "load": a.load,
    });
    println!("{out}");
    if let Sender::Bond(b) = &sender {
        let _ = b.stop();
    }
    Ok(())
}

/// Standard deviation of the ports' shares, in percentage points.
fn std_dev_pp(bytes: &[u64]) -> f64 {
    let total: u64 = bytes.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let n = bytes.len() as f64;
    let shares: Vec<f64> = bytes
        .iter()
        .map(|&b| 100.0 * b as f64 / total as f64)
        .collect();
    let mean = 100.0 / n;
    (shares.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// Sends a burst; returns how many frames were refused (freed).
fn send(
    sender: &mut Sender,
    burst: &mut MbufBurst<32>,
    tuples: &[[u8; Ipv4Tuple::LEN]; 32],
    period_bytes: &mut [u64],
    n: usize,
) -> u64 {
    let len = burst.len();
    match sender {
        Sender::Bond(bond) => {
            let sent = bond.tx_burst(QueueId::new(0), burst);
            let refused = (len - sent) as u64;
            burst.clear();
            refused
        }
        Sender::Ours {
            members,
            toeplitz,
            lb,
        } => {
            let mut hashes = [0u32; 32];
            toeplitz.hash_burst(&tuples[..len], &mut hashes[..len]);
            let mut d = [Decision::default(); 32];
            match lb {
                Some(l) => {
                    let b = &mut l.1;
                    let now = monotonic_ns();
                    b.decide_burst(now, &hashes[..len], &[1u16; 32][..len], &mut d[..len]);
                }
                None => {
                    for i in 0..len {
                        d[i].tx_port = (hashes[i] % n as u32) as u8;
                    }
                }
            }
            let mut per: Vec<MbufBurst<32>> = (0..n).map(|_| MbufBurst::new()).collect();
            let mut refused = 0u64;
            for (i, m) in burst.drain().enumerate() {
                let p = d[i].tx_port;
                if p == NO_PORT || p as usize >= n {
                    refused += 1;
                    continue;
                }
                period_bytes[p as usize] += m.len() as u64 + WIRE_EXTRA;
                let _ = per[p as usize].push(m);
            }
            for (i, b) in per.iter_mut().enumerate() {
                let l = b.len();
                let s = members[i].tx_burst(QueueId::new(0), b);
                refused += (l - s) as u64;
                b.clear();
            }
            refused
        }
    }
}

fn monotonic_ns() -> u64 {
    use std::sync::OnceLock;
    static T0: OnceLock<Instant> = OnceLock::new();
    T0.get_or_init(Instant::now).elapsed().as_nanos() as u64
}
