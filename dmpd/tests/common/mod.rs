//! Deterministic simulator: N nodes with M ports on one L2 switch, driven
//! through the real `dmpd::Node`. Events sit in a heap ordered by
//! (time, seq); a seeded ChaCha RNG decides loss and latency. Nothing
//! sleeps: the clock jumps to the next event (quinn-proto `tests/util.rs`).
#![allow(dead_code)]

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use dmpd::wire::{ethernet, EthernetAddress};
use dmpd::{
    AuthMode, Duration, Event, Instant, KeyRing, Node, NodeConfig, NodeMetrics, PortMetrics,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const CLUSTER: u32 = 0xD3D0;
pub const KEY: [u8; 32] = [0x42; 32];

pub fn mac(node: u16, port: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0x00, (node >> 8) as u8, node as u8, port, 0x01])
}

pub fn macs(node: u16, ports: usize) -> Vec<EthernetAddress> {
    (0..ports).map(|p| mac(node, p as u8)).collect()
}

pub fn hmac_auth() -> AuthMode {
    AuthMode::Hmac(KeyRing::new(1, &KEY).unwrap())
}

/// A node config as the tests use it (100 ms period unless changed).
pub fn config(node: u16, ports: usize, auth: AuthMode) -> NodeConfig {
    let mut c = NodeConfig::new(node, CLUSTER, &macs(node, ports), auth);
    c.rng_seed = 0x5eed ^ u64::from(node);
    c
}

pub fn metrics(ports: usize) -> (NodeMetrics, Vec<PortMetrics>) {
    let n = NodeMetrics {
        cores: 8,
        cpu_util_bp: 1200,
        load1_centi: 50,
        load5_centi: 40,
        load15_centi: 30,
        io_load_bp: 100,
        mem_total: 16 << 30,
        mem_util_bp: 2500,
        temperature_centi: Some(4500),
    };
    let p = (0..ports)
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

enum Kind {
    Deliver { to: usize, port: u8, frame: Vec<u8> },
    Timer { node: usize, at: Instant },
}

struct Ev {
    at: Instant,
    seq: u64,
    kind: Kind,
}

impl PartialEq for Ev {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Ev {}
impl PartialOrd for Ev {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ev {
    // reversed: BinaryHeap is a max-heap, we want the earliest first
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

pub struct SimNode {
    pub node: Option<Node>,
    pub num: u16,
    pub cfg: NodeConfig,
    pub incarnation: u64,
    timer: Option<Instant>,
    next_metrics: Instant,
    pub events: Vec<(Instant, Event)>,
}

pub struct SimParams {
    pub nodes: usize,
    pub ports: usize,
    pub period: Duration,
    pub loss: f64,
    pub latency_min_ns: u64,
    pub latency_max_ns: u64,
    pub auth: bool,
    pub seed: u64,
    /// Keep per-node event logs.
    pub log_events: bool,
}

impl SimParams {
    pub fn new(nodes: usize, seed: u64) -> Self {
        SimParams {
            nodes,
            ports: 2,
            period: Duration::from_millis(100),
            loss: 0.0,
            latency_min_ns: 20_000,
            latency_max_ns: 200_000,
            auth: false,
            seed,
            log_events: false,
        }
    }
}

pub struct Sim {
    pub now: Instant,
    heap: BinaryHeap<Ev>,
    seq: u64,
    pub nodes: Vec<SimNode>,
    mac_map: HashMap<EthernetAddress, (usize, u8)>,
    pub rng: ChaCha8Rng,
    pub params: SimParams,
    /// Partition group of each node: frames cross only within a group.
    pub group: Vec<u32>,
    /// Cut links: (node index, port) pairs that neither send nor receive.
    pub cut: Vec<(usize, u8)>,
    buf: Vec<u8>,
    pub delivered: u64,
    pub dropped: u64,
    /// Keep a copy of every frame sent (fuzz corpus).
    pub capture: bool,
    captured: Vec<Vec<u8>>,
}

impl Sim {
    /// Nodes numbered 1..=n, priorities all 1 (so rank = lowest node number)
    /// unless changed with `set_priority` before `start`.
    pub fn new(params: SimParams) -> Sim {
        let mut nodes = Vec::new();
        let mut mac_map = HashMap::new();
        for i in 0..params.nodes {
            let num = (i + 1) as u16;
            let auth = if params.auth {
                hmac_auth()
            } else {
                AuthMode::None
            };
            let mut cfg = config(num, params.ports, auth).with_period(params.period);
            cfg.rng_seed = params.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(num);
            for p in 0..params.ports {
                mac_map.insert(mac(num, p as u8), (i, p as u8));
            }
            nodes.push(SimNode {
                node: None,
                num,
                cfg,
                incarnation: 1,
                timer: None,
                next_metrics: Instant::ZERO,
                events: Vec::new(),
            });
        }
        let rng = ChaCha8Rng::seed_from_u64(params.seed);
        Sim {
            now: Instant::ZERO,
            heap: BinaryHeap::new(),
            seq: 0,
            group: vec![0; params.nodes],
            cut: Vec::new(),
            nodes,
            mac_map,
            rng,
            params,
            buf: vec![0u8; 14 + 9000],
            delivered: 0,
            dropped: 0,
            capture: true,
            captured: Vec::new(),
        }
    }

    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }

    pub fn period(&self) -> Duration {
        self.params.period
    }

    /// Boot every node, at random offsets within the first period.
    pub fn start(&mut self) {
        for i in 0..self.nodes.len() {
            let off = Duration::from_nanos(self.rng.gen_range(0..self.params.period.total_nanos()));
            let at = self.now + off;
            self.boot_at(i, at);
        }
    }

    fn boot_at(&mut self, i: usize, at: Instant) {
        let n = &mut self.nodes[i];
        let mut cfg = n.cfg.clone();
        cfg.incarnation = n.incarnation;
        cfg.rng_seed ^= n.incarnation << 32;
        n.node = Some(Node::new(cfg, at).expect("valid config"));
        n.next_metrics = at;
        n.timer = Some(at);
        self.push(at, Kind::Timer { node: i, at });
    }

    pub fn crash(&mut self, i: usize) {
        self.nodes[i].node = None;
        self.nodes[i].timer = None;
    }

    /// Restart with a new incarnation.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].incarnation += 1;
        let now = self.now;
        self.boot_at(i, now);
    }

    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes[i].node.as_ref()
    }

    pub fn node_mut(&mut self, i: usize) -> Option<&mut Node> {
        self.nodes[i].node.as_mut()
    }

    pub fn index_of(&self, num: u16) -> usize {
        usize::from(num) - 1
    }

    fn push(&mut self, at: Instant, kind: Kind) {
        self.seq += 1;
        self.heap.push(Ev {
            at,
            seq: self.seq,
            kind,
        });
    }

    /// Run every event up to `t` and leave the clock at `t`.
    pub fn run_until(&mut self, t: Instant) {
        while let Some(top) = self.heap.peek() {
            if top.at > t {
                break;
            }
            let ev = self.heap.pop().unwrap();
            self.now = ev.at;
            match ev.kind {
                Kind::Timer { node, at } => {
                    if self.nodes[node].timer != Some(at) {
                        continue;
                    }
                    self.nodes[node].timer = None;
                    let now = self.now;
                    if let Some(n) = self.nodes[node].node.as_mut() {
                        n.handle_timeout(now);
                    }
                    self.flush(node);
                }
                Kind::Deliver { to, port, frame } => {
                    let now = self.now;
                    if let Some(n) = self.nodes[to].node.as_mut() {
                        let _ = n.handle_frame(now, port, &frame);
                        self.delivered += 1;
                    }
                    self.flush(to);
                }
            }
        }
        self.now = t;
    }

    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// Drain node `i`'s transmissions now (after a direct command such as `leave`).
    pub fn kick(&mut self, i: usize) {
        self.flush(i);
    }

    fn flush(&mut self, i: usize) {
        let now = self.now;
        let mut buf = std::mem::take(&mut self.buf);
        let ports = self.params.ports;
        loop {
            if self.nodes[i].node.is_none() {
                break;
            }
            if now >= self.nodes[i].next_metrics {
                let (m, p) = metrics(ports);
                self.nodes[i].next_metrics = now + self.params.period;
                if let Some(n) = self.nodes[i].node.as_mut() {
                    n.set_local_metrics(m, &p, &[]);
                }
            }
            let Some(n) = self.nodes[i].node.as_mut() else {
                break;
            };
            let Some(tx) = n.poll_transmit(now, &mut buf) else {
                break;
            };
            for port in tx.ports.iter() {
                ethernet::patch_src(&mut buf[..tx.len], mac(self.nodes[i].num, port));
                self.route(i, port, &buf[..tx.len]);
            }
        }
        self.buf = buf;
        let log = self.params.log_events;
        let sn = &mut self.nodes[i];
        let Some(n) = sn.node.as_mut() else { return };
        while let Some(e) = n.poll_event() {
            if log {
                sn.events.push((now, e));
            }
        }
        if let Some(t) = n.poll_timeout() {
            let t = t.max(now);
            if !matches!(sn.timer, Some(old) if old <= t) {
                sn.timer = Some(t);
                self.push(t, Kind::Timer { node: i, at: t });
            }
        }
    }

    fn deliver(&mut self, from: usize, to: usize, port: u8, frame: &[u8]) {
        if self.nodes[to].node.is_none()
            || self.group[from] != self.group[to]
            || self.cut.contains(&(to, port))
        {
            return;
        }
        if self.params.loss > 0.0 && self.rng.gen_bool(self.params.loss) {
            self.dropped += 1;
            return;
        }
        let lat = self
            .rng
            .gen_range(self.params.latency_min_ns..=self.params.latency_max_ns);
        let at = self.now + Duration::from_nanos(lat);
        self.push(
            at,
            Kind::Deliver {
                to,
                port,
                frame: frame.to_vec(),
            },
        );
    }

    /// Frames sent so far (first 4096 only).
    pub fn captured(&self) -> Vec<Vec<u8>> {
        self.captured.clone()
    }

    fn route(&mut self, from: usize, port: u8, frame: &[u8]) {
        if self.cut.contains(&(from, port)) {
            return;
        }
        if self.capture && self.captured.len() < 4096 {
            self.captured.push(frame.to_vec());
        }
        let dst = EthernetAddress::from_bytes(&frame[0..6]);
        if dst.is_broadcast() {
            for to in 0..self.nodes.len() {
                if to == from {
                    continue;
                }
                for p in 0..self.params.ports {
                    self.deliver(from, to, p as u8, frame);
                }
            }
        } else if let Some(&(to, p)) = self.mac_map.get(&dst) {
            self.deliver(from, to, p, frame);
        }
    }

    // ----- observation -----

    /// Node numbers of the nodes that are master now.
    pub fn masters(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter_map(|n| n.node.as_ref())
            .filter(|n| n.is_master())
            .map(|n| n.node_num())
            .collect()
    }

    /// The master, if exactly one node is master and every live node follows it.
    pub fn agreed_master(&self) -> Option<u16> {
        let m = self.masters();
        if m.len() != 1 {
            return None;
        }
        let all = self
            .nodes
            .iter()
            .filter_map(|n| n.node.as_ref())
            .all(|n| n.master() == Some(m[0]));
        all.then_some(m[0])
    }

    /// Step in `step` increments until `pred` holds or `limit` passes;
    /// returns the time it first held.
    pub fn run_until_pred(
        &mut self,
        limit: Instant,
        step: Duration,
        mut pred: impl FnMut(&Sim) -> bool,
    ) -> Option<Instant> {
        loop {
            if pred(self) {
                return Some(self.now);
            }
            if self.now >= limit {
                return None;
            }
            let t = (self.now + step).min(limit);
            self.run_until(t);
        }
    }

    /// The best-ranked live node (all priorities equal: lowest number).
    pub fn best_live(&self, group: Option<u32>) -> Option<u16> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, n)| n.node.is_some() && !matches!(group, Some(g) if self.group[*i] != g))
            .map(|(_, n)| (n.cfg.priority, std::cmp::Reverse(n.num)))
            .max()
            .map(|(_, std::cmp::Reverse(n))| n)
    }
}
