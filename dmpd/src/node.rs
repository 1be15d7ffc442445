//! The sans-IO DMPD node: heartbeat rounds, responses, cluster table,
//! election, per-port liveness, leave (quinn-proto style).
//!
//! Driving it:
//! 1. `handle_frame(now, port, frame)` for each received control frame;
//! 2. `handle_timeout(now)` once `now >= poll_timeout()`;
//! 3. drain `poll_transmit(now, buf)` (send `buf[..len]` on every port of
//!    the mask, patching the source MAC per port) and `poll_event()`.
//!
//! `set_local_metrics` is called by the agent once per period.
//! The election is described in `docs/election.md`.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::{ConfigError, NodeConfig};
use crate::table::{ClusterTable, Entry};
use crate::time::{Duration, Instant};
use crate::wire::auth::{ReplayGuard, SenderStatus};
use crate::wire::{
    self, header, AnnounceRepr, ControlRepr, EthernetAddress, HeaderRepr, HeartbeatRepr, Kind,
    LeaveReason, LeaveRepr, Message, NodeMetrics, NodeRecord, NodeState, PipeRecord, PortMetrics,
    PortRecord, PortState, Reject, RejectCounters, ResponseRepr, TableRepr, MAX_PIPES, MAX_PORTS,
    TAG_LEN,
};

/// Bitmask of port indices (bit i = port i).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PortMask(pub u16);

impl PortMask {
    pub const fn single(port: u8) -> PortMask {
        PortMask(1 << (port & 15))
    }
    /// Ports `0 .. n`.
    pub const fn all(n: usize) -> PortMask {
        if n >= 16 {
            PortMask(u16::MAX)
        } else {
            PortMask(((1u32 << n) - 1) as u16)
        }
    }
    pub const fn contains(self, port: u8) -> bool {
        port < 16 && self.0 & (1 << port) != 0
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub const fn count(self) -> u32 {
        self.0.count_ones()
    }
    /// Lowest port in the mask.
    pub fn first(self) -> Option<u8> {
        if self.0 == 0 {
            None
        } else {
            Some(self.0.trailing_zeros() as u8)
        }
    }
    pub fn iter(self) -> impl Iterator<Item = u8> {
        (0u8..16).filter(move |p| self.contains(*p))
    }
}

/// A frame to send: `buf[..len]` on every port of `ports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub ports: PortMask,
    pub len: usize,
}

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Follower,
    Candidate,
    Master,
    /// Sent LEAVE; the node does nothing more.
    Left,
}

/// What happened, for the agent (logs, load balancer, watchdog).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The master this node follows changed (`None`: master lost).
    MasterChanged {
        master: Option<u16>,
        term: u64,
    },
    RoleChanged {
        role: Role,
    },
    NodeJoined {
        node: u16,
    },
    /// A node left (LEAVE frame: with its reason; via the table: `None`).
    NodeLeft {
        node: u16,
        reason: Option<LeaveReason>,
    },
    /// The master dropped a silent node.
    NodeExpired {
        node: u16,
    },
    /// A peer came back with a new incarnation.
    NodeRestarted {
        node: u16,
        incarnation: u64,
    },
    /// A port went down: a local port (`node` = this node) that missed K
    /// heartbeats, or a peer's port that the master stopped hearing.
    PortDown {
        node: u16,
        port: u8,
    },
    PortUp {
        node: u16,
        port: u8,
    },
    /// No port of this node hears the cluster: the agent's watchdog should
    /// call [`Node::leave`].
    SelfFaulty,
    SelfRecovered,
}

/// Traffic counters, per heartbeat round of this node's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundStats {
    /// Rounds run as master.
    pub rounds: u64,
    /// Frames emitted (one per `Transmit`).
    pub frames_sent: u64,
    /// Bytes emitted, counted once per frame.
    pub bytes_sent: u64,
    /// Bytes put on the wire (once per port of each mask).
    pub wire_bytes_sent: u64,
    /// Accepted control bytes received.
    pub bytes_received: u64,
    pub frames_received: u64,
    /// Master: the last complete round.
    pub last_round_frames: u64,
    pub last_round_bytes: u64,
    pub last_round_wire_bytes: u64,
    pub last_round_bytes_received: u64,
    pub last_round_segments: u64,
    pub last_round_records: u64,
    /// Table segments received / detected missing (by index gaps).
    pub segments_received: u64,
    pub segments_missed: u64,
    /// Events dropped because the queue was full.
    pub events_dropped: u64,
}

const MAX_EVENTS: usize = 16_384;

#[derive(Debug, Clone, Copy)]
struct MasterView {
    node: u16,
    incarnation: u64,
    priority: u8,
    last_heard: Instant,
}

#[derive(Debug, Clone, Copy)]
enum Pending {
    Heartbeat,
    Response {
        port: u8,
        dst: EthernetAddress,
        echo_ts: u64,
        round: u64,
        with_record: bool,
    },
    Announce,
    Leave(LeaveReason),
}

/// Rank for the election: higher priority, then lower node number.
fn rank(priority: u8, node: u16) -> (u8, core::cmp::Reverse<u16>) {
    (priority, core::cmp::Reverse(node))
}

fn significant(old: &NodeRecord, new: &NodeRecord) -> bool {
    fn far(a: u16, b: u16, d: u16) -> bool {
        a.abs_diff(b) >= d
    }
    if old.state != new.state
        || old.priority != new.priority
        || old.ports.len() != new.ports.len()
        || old.pipes.len() != new.pipes.len()
        || old.cores != new.cores
        || old.mem_total != new.mem_total
        || far(old.cpu_util_bp, new.cpu_util_bp, 500)
        || far(old.mem_util_bp, new.mem_util_bp, 500)
        || far(old.io_load_bp, new.io_load_bp, 500)
        || far(old.load1_centi, new.load1_centi, 50)
        || old.temperature_centi.is_some() != new.temperature_centi.is_some()
    {
        return true;
    }
    if let (Some(a), Some(b)) = (old.temperature_centi, new.temperature_centi) {
        if a.abs_diff(b) >= 500 {
            return true;
        }
    }
    for (a, b) in old.ports.iter().zip(new.ports.iter()) {
        if a.state != b.state
            || a.speed_mbps != b.speed_mbps
            || far(a.util_bp, b.util_bp, 500)
            || far(a.load_bp, b.load_bp, 500)
        {
            return true;
        }
    }
    old.pipes.iter().zip(new.pipes.iter()).any(|(a, b)| {
        a.id != b.id
            || a.state != b.state
            || a.priority != b.priority
            || a.buffer_size != b.buffer_size
    })
}

/// One DMPD node. `Clone` gives an independent copy (the fuzz targets
/// start every run from one warmed-up cluster).
#[derive(Clone)]
pub struct Node {
    cfg: NodeConfig,
    nports: usize,
    rng: ChaCha8Rng,
    role: Role,
    term: u64,
    max_term_seen: u64,
    master: Option<MasterView>,
    last_master: Option<u16>,
    election_deadline: Instant,
    candidate_until: Instant,
    candidate_term: u64,
    reannounced: bool,
    better_candidate_until: Instant,
    // master round state
    round: u64,
    next_round: Instant,
    table_at: Option<Instant>,
    last_hb_sent: Option<Instant>,
    plan: Vec<u16>,
    seg_bounds: Vec<(u32, u32)>,
    seg_next: usize,
    seg_round: u64,
    scratch: Vec<u8>,
    // transmit
    queue: VecDeque<Pending>,
    seq: u64,
    // local
    local: NodeRecord,
    metrics_since_bump: u32,
    force_bump: bool,
    master_has: Option<(u64, u32)>,
    port_hb: [Option<Instant>; MAX_PORTS],
    port_rx: [Option<Instant>; MAX_PORTS],
    port_up: [bool; MAX_PORTS],
    resp_key: [(u16, u64, u64); MAX_PORTS],
    record_key: (u16, u64, u64),
    started: Instant,
    last_any_rx: Option<Instant>,
    self_faulty: bool,
    next_maint: Instant,
    // table segment receive tracking
    rx_seg_round: (u16, u64),
    rx_seg_seen: Vec<u64>,
    rx_seg_count: u16,
    table: ClusterTable,
    replay: ReplayGuard,
    rejects: RejectCounters,
    stats: RoundStats,
    round_base: RoundStats,
    events: VecDeque<Event>,
}

impl core::fmt::Debug for Node {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Node")
            .field("node_num", &self.cfg.node_num)
            .field("role", &self.role)
            .field("term", &self.term)
            .field("master", &self.master.map(|m| m.node))
            .field("table_len", &self.table.len())
            .finish()
    }
}

impl Node {
    /// A follower that listens for one election timeout before standing.
    pub fn new(cfg: NodeConfig, now: Instant) -> Result<Node, ConfigError> {
        cfg.validate()?;
        let nports = cfg.ports();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.rng_seed);
        let p = cfg.heartbeat_period;
        let jitter = Duration::from_nanos(rng.gen_range(0..=cfg.election_jitter.total_nanos()));
        let mut local = NodeRecord::new(cfg.node_num, cfg.incarnation);
        local.version = 1;
        local.priority = cfg.priority;
        for (i, mac) in cfg.port_macs.iter().enumerate() {
            let _ = local.ports.push(PortRecord {
                idx: i as u8,
                state: PortState::Down,
                mac: *mac,
                ..PortRecord::default()
            });
        }
        let mut table = ClusterTable::new();
        table
            .entries
            .insert(cfg.node_num, Entry::new(local.clone(), now));
        Ok(Node {
            nports,
            rng,
            role: Role::Follower,
            term: 0,
            max_term_seen: 0,
            master: None,
            last_master: None,
            election_deadline: now + p * u64::from(cfg.boot_listen_periods) + jitter,
            candidate_until: Instant::MAX,
            candidate_term: 0,
            reannounced: false,
            better_candidate_until: Instant::ZERO,
            round: 0,
            next_round: Instant::MAX,
            table_at: None,
            last_hb_sent: None,
            plan: Vec::new(),
            seg_bounds: Vec::new(),
            seg_next: 0,
            seg_round: 0,
            scratch: Vec::with_capacity(cfg.mtu),
            queue: VecDeque::new(),
            seq: 0,
            local,
            metrics_since_bump: 0,
            force_bump: false,
            master_has: None,
            port_hb: [None; MAX_PORTS],
            port_rx: [None; MAX_PORTS],
            port_up: [false; MAX_PORTS],
            resp_key: [(u16::MAX, 0, u64::MAX); MAX_PORTS],
            record_key: (u16::MAX, 0, u64::MAX),
            started: now,
            last_any_rx: None,
            self_faulty: false,
            next_maint: now + p / 2,
            rx_seg_round: (u16::MAX, 0),
            rx_seg_seen: Vec::new(),
            rx_seg_count: 0,
            table,
            replay: ReplayGuard::new(),
            rejects: RejectCounters::new(),
            stats: RoundStats::default(),
            round_base: RoundStats::default(),
            events: VecDeque::new(),
            cfg,
        })
    }

    // ----- getters -----

    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }
    pub fn node_num(&self) -> u16 {
        self.cfg.node_num
    }
    pub fn role(&self) -> Role {
        self.role
    }
    /// The master this node follows (itself when master).
    pub fn master(&self) -> Option<u16> {
        self.master.map(|m| m.node)
    }
    pub fn term(&self) -> u64 {
        self.term
    }
    pub fn is_master(&self) -> bool {
        self.role == Role::Master
    }
    /// Does local port `port` hear the cluster (heartbeats within K periods;
    /// for the master: responses within K periods, or no peer yet)?
    pub fn local_port_up(&self, port: u8) -> bool {
        usize::from(port) < self.nports && self.port_up[usize::from(port)]
    }
    pub fn table(&self) -> &ClusterTable {
        &self.table
    }
    pub fn rejects(&self) -> &RejectCounters {
        &self.rejects
    }
    pub fn stats(&self) -> &RoundStats {
        &self.stats
    }
    /// The record this node currently publishes.
    pub fn local_record(&self) -> &NodeRecord {
        &self.local
    }
    /// The key ring, for rotation at run time (`None` when unauthenticated).
    /// Rotate without a lost round: add the new key on every node, then
    /// switch the send key on every node, then remove the old key.
    pub fn keyring_mut(&mut self) -> Option<&mut crate::wire::KeyRing> {
        match &mut self.cfg.auth {
            crate::wire::AuthMode::Hmac(r) => Some(r),
            crate::wire::AuthMode::None => None,
        }
    }

    /// Highest incarnation seen from `node`.
    pub fn peer_incarnation(&self, node: u16) -> Option<u64> {
        self.replay.incarnation(node)
    }

    fn period(&self) -> Duration {
        self.cfg.heartbeat_period
    }
    fn eligible(&self) -> bool {
        self.cfg.priority > 0
    }
    fn my_rank(&self) -> (u8, core::cmp::Reverse<u16>) {
        rank(self.cfg.priority, self.cfg.node_num)
    }
    fn jitter(&mut self) -> Duration {
        Duration::from_nanos(
            self.rng
                .gen_range(0..=self.cfg.election_jitter.total_nanos()),
        )
    }
    fn election_timeout(&mut self) -> Duration {
        self.period() * u64::from(self.cfg.election_timeout_periods) + self.jitter()
    }
    /// Heard from the master recently enough to ignore candidates.
    fn master_live(&self, now: Instant) -> bool {
        match self.master {
            Some(m) if m.node == self.cfg.node_num => true,
            Some(m) => {
                now < m.last_heard
                    + self.period() * u64::from(self.cfg.election_timeout_periods - 1)
            }
            None => false,
        }
    }
    fn event(&mut self, e: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(e);
    }
    fn set_role(&mut self, role: Role) {
        if self.role != role {
            self.role = role;
            self.event(Event::RoleChanged { role });
        }
    }

    // ----- application commands -----

    /// Feed this period's local metrics. The published record gets a new
    /// version when something changed significantly (state, ports, >= 5 %
    /// moves) or every `record_refresh_periods` calls.
    pub fn set_local_metrics(
        &mut self,
        node: NodeMetrics,
        ports: &[PortMetrics],
        pipes: &[PipeRecord],
    ) {
        if self.role == Role::Left {
            return;
        }
        let mut r = NodeRecord::new(self.cfg.node_num, self.cfg.incarnation);
        r.version = self.local.version;
        r.priority = self.cfg.priority;
        r.cores = node.cores;
        r.cpu_util_bp = node.cpu_util_bp;
        r.load1_centi = node.load1_centi;
        r.load5_centi = node.load5_centi;
        r.load15_centi = node.load15_centi;
        r.io_load_bp = node.io_load_bp;
        r.mem_total = node.mem_total;
        r.mem_util_bp = node.mem_util_bp;
        r.temperature_centi = node
            .temperature_centi
            .filter(|t| *t != wire::record::TEMPERATURE_UNKNOWN);
        for i in 0..self.nports {
            let m = ports.get(i).copied().unwrap_or_default();
            let up = m.link_up && self.port_up[i];
            let _ = r.ports.push(PortRecord {
                idx: i as u8,
                state: if up { PortState::Up } else { PortState::Down },
                reachable: false,
                mac: self.cfg.port_macs[i],
                speed_mbps: m.speed_mbps,
                rx_packets: m.rx_packets,
                tx_packets: m.tx_packets,
                rx_bytes: m.rx_bytes,
                tx_bytes: m.tx_bytes,
                rate_bps: m.rate_bps,
                util_bp: m.util_bp,
                drops: m.drops,
                errors: m.errors,
                overflows: m.overflows,
                load_bp: m.load_bp,
                rtt_ns: 0,
            });
        }
        // whole record must fit one table segment and one response
        let room = self.cfg.mtu
            - (header::HEADER_LEN - wire::ethernet::HEADER_LEN)
            - TAG_LEN
            - wire::table::FIXED_LEN.max(wire::response::FIXED_LEN);
        let fixed = r.buffer_len();
        let max_pipes = (room.saturating_sub(fixed) / wire::record::PIPE_LEN).min(MAX_PIPES);
        for q in pipes.iter().take(max_pipes) {
            let _ = r.pipes.push(*q);
        }
        self.metrics_since_bump = self.metrics_since_bump.saturating_add(1);
        let refresh = self.cfg.record_refresh_periods > 0
            && self.metrics_since_bump >= self.cfg.record_refresh_periods;
        if self.force_bump || refresh || significant(&self.local, &r) {
            r.version = self.local.version.wrapping_add(1).max(1);
            self.force_bump = false;
            self.metrics_since_bump = 0;
            self.local = r;
            self.sync_self_entry();
        }
    }

    fn sync_self_entry(&mut self) {
        let me = self.cfg.node_num;
        let rec = self.local.clone();
        let now = self.last_any_rx.unwrap_or(self.started);
        let is_master = self.role == Role::Master;
        let e = self
            .table
            .entries
            .entry(me)
            .or_insert_with(|| Entry::new(rec.clone(), now));
        if rec.key() > e.record.key() || e.record.incarnation != rec.incarnation {
            let mut rec = rec;
            for p in rec.ports.iter_mut() {
                p.reachable = p.state == PortState::Up;
            }
            e.record = rec;
            e.dirty = is_master;
        }
    }

    /// Send LEAVE on every port and withdraw: after this the node ignores
    /// frames and only emits the LEAVE.
    pub fn leave(&mut self, now: Instant, reason: LeaveReason) {
        let _ = now;
        if self.role == Role::Left {
            return;
        }
        self.queue.clear();
        self.seg_bounds.clear();
        self.queue.push_back(Pending::Leave(reason));
        self.local.state = NodeState::Left;
        self.set_role(Role::Left);
    }

    // ----- input -----

    /// Handle one received Ethernet frame (as received, padding allowed).
    /// Rejections are counted in [`Node::rejects`] and returned.
    pub fn handle_frame(&mut self, now: Instant, port: u8, frame: &[u8]) -> Result<(), Reject> {
        let r = self.process(now, port, frame);
        if let Err(e) = r {
            self.rejects.inc(e);
        }
        r
    }

    fn process(&mut self, now: Instant, port: u8, frame: &[u8]) -> Result<(), Reject> {
        if usize::from(port) >= self.nports {
            return Err(Reject::BadPort);
        }
        let c = ControlRepr::parse(
            frame,
            self.cfg.ethertype,
            self.cfg.cluster_id,
            &self.cfg.auth,
        )?;
        let h = c.header;
        if h.sender == self.cfg.node_num {
            return Err(Reject::OwnFrame);
        }
        let status = self.replay.check(h.sender, port, h.incarnation, h.seq)?;
        if h.kind == Kind::Response {
            // sent on one port: a copy on another receive port is a replay
            self.replay
                .check_single_port(h.sender, h.incarnation, h.seq)?;
        }
        if self.role == Role::Left {
            // A node that left because it heard nothing still tells its
            // owner when it hears the cluster again: the agent answers
            // SelfFaulty with leave() and rejoins on SelfRecovered.
            if self.self_faulty {
                self.self_faulty = false;
                self.event(Event::SelfRecovered);
            }
            return Ok(());
        }
        self.stats.frames_received += 1;
        self.stats.bytes_received += frame.len() as u64;
        let p = usize::from(port);
        self.port_rx[p] = Some(now);
        self.last_any_rx = Some(now);
        if self.self_faulty {
            self.self_faulty = false;
            self.event(Event::SelfRecovered);
        }
        if let SenderStatus::Restarted { .. } = status {
            self.on_restart(now, h.sender, h.incarnation, h.kind);
        }
        match c.message {
            Message::Heartbeat(hb) => self.on_heartbeat(now, port, c.src, &h, &hb),
            Message::Response(r) => self.on_response(now, &h, r),
            Message::Table(t) => self.on_table(now, &h, &t),
            Message::Announce(a) => self.on_announce(now, &h, &a),
            Message::Leave(l) => self.on_leave(now, &h, l.reason),
        }
    }

    fn on_restart(&mut self, now: Instant, node: u16, incarnation: u64, kind: Kind) {
        self.event(Event::NodeRestarted { node, incarnation });
        if let Some(m) = self.master {
            if m.node == node && m.incarnation < incarnation && kind != Kind::Heartbeat {
                // our master rebooted and is not master any more: elect now
                self.lose_master(now);
                let j = self.jitter();
                self.election_deadline = now + j;
            }
        }
    }

    fn lose_master(&mut self, _now: Instant) {
        if let Some(m) = self.master.take() {
            self.last_master = Some(m.node);
            let term = self.term;
            self.event(Event::MasterChanged { master: None, term });
        }
    }

    fn on_heartbeat(
        &mut self,
        now: Instant,
        port: u8,
        src: EthernetAddress,
        h: &HeaderRepr,
        hb: &HeartbeatRepr,
    ) -> Result<(), Reject> {
        let p = usize::from(port);
        self.port_hb[p] = Some(now);
        if !self.port_up[p] {
            self.port_up[p] = true;
            let me = self.cfg.node_num;
            self.event(Event::PortUp { node: me, port });
        }
        self.max_term_seen = self.max_term_seen.max(h.term);
        let s = h.sender;
        if self.role == Role::Master {
            let wins = h.term > self.term
                || (h.term == self.term && rank(hb.priority, s) > self.my_rank());
            if !wins {
                // make sure the other master hears us soon
                self.heartbeat_now(now);
                return Ok(());
            }
            self.step_down(now);
        }
        let accept = match self.master {
            Some(m) if m.node == s => true,
            Some(m) => {
                let live = self.master_live(now);
                if h.term > self.term {
                    true
                } else if h.term == self.term {
                    !live || rank(hb.priority, s) > rank(m.priority, m.node)
                } else {
                    !live
                }
            }
            None => true,
        };
        if !accept {
            return Ok(());
        }
        let same = self
            .master
            .is_some_and(|m| m.node == s && m.incarnation == h.incarnation);
        let changed = !same;
        self.master = Some(MasterView {
            node: s,
            incarnation: h.incarnation,
            priority: hb.priority,
            last_heard: now,
        });
        self.term = h.term;
        if self.role == Role::Candidate {
            self.candidate_until = Instant::MAX;
        }
        self.better_candidate_until = Instant::ZERO;
        self.set_role(Role::Follower);
        if changed {
            self.last_master = Some(s);
            self.event(Event::MasterChanged {
                master: Some(s),
                term: h.term,
            });
            self.master_has = None;
        }
        let t = self.election_timeout();
        self.election_deadline = now + t;
        // respond once per (master, round) and port; the record goes on the
        // first response of a round when the master's table lacks it
        let key = (s, h.incarnation, hb.round);
        if self.resp_key[p] != key {
            self.resp_key[p] = key;
            let need = self.master_has != Some((self.local.incarnation, self.local.version));
            let with_record = need && self.record_key != key;
            if with_record {
                self.record_key = key;
            }
            // spread responses over the master's ports: port j answers to
            // the master's port j mod M (its MAC from the table), so each
            // master port receives one response per node per round
            let dst = self
                .table
                .get(s)
                .filter(|e| e.record.incarnation == h.incarnation && !e.record.ports.is_empty())
                .map_or(src, |e| e.record.ports[p % e.record.ports.len()].mac);
            self.queue.push_back(Pending::Response {
                port,
                dst,
                echo_ts: h.timestamp,
                round: hb.round,
                with_record,
            });
        }
        Ok(())
    }

    fn on_response(&mut self, now: Instant, h: &HeaderRepr, r: ResponseRepr) -> Result<(), Reject> {
        if self.role != Role::Master || r.master != Some(self.cfg.node_num) {
            return Ok(());
        }
        let s = h.sender;
        if usize::from(r.port) >= MAX_PORTS {
            return Err(Reject::BadField);
        }
        if let Some(rec) = r.record {
            if rec.node_num != s || rec.incarnation != h.incarnation {
                return Err(Reject::BadField);
            }
            self.ingest_record(now, rec);
        }
        let k = self.period() * u64::from(self.cfg.miss_limit);
        let mut ev: Option<Event> = None;
        if let Some(e) = self.table.entries.get_mut(&s) {
            // a LEAVE is final for an incarnation (late responses must not revive it)
            if e.record.incarnation != h.incarnation || e.record.state == NodeState::Left {
                return Ok(());
            }
            e.last_heard = now;
            let q = usize::from(r.port);
            e.port_heard[q] = Some(now);
            let rtt = now
                .total_nanos()
                .saturating_sub(r.echo_ts)
                .min(u64::from(u32::MAX)) as u32;
            e.port_rtt[q] = rtt;
            let mut amended = false;
            if e.record.state != NodeState::Up {
                e.record.state = NodeState::Up;
                e.down_since = None;
                amended = true;
                ev = Some(Event::NodeJoined { node: s });
            }
            if let Some(pr) = e.record.port_mut(r.port) {
                if !pr.reachable {
                    pr.reachable = true;
                    amended = true;
                    if ev.is_none() {
                        ev = Some(Event::PortUp {
                            node: s,
                            port: r.port,
                        });
                    }
                }
                let old = pr.rtt_ns;
                let d = old.abs_diff(rtt);
                if old == 0 || (d > old / 4 && d > 10_000) {
                    pr.rtt_ns = rtt.max(1);
                    amended = true;
                }
            }
            let _ = k;
            if amended {
                e.record.amend = e.record.amend.wrapping_add(1);
                e.dirty = true;
            }
        }
        if let Some(ev) = ev {
            self.event(ev);
        }
        Ok(())
    }

    /// Master: take a node's own record if newer than ours, keeping what
    /// the master observes itself (reachability, RTT).
    fn ingest_record(&mut self, now: Instant, mut rec: NodeRecord) {
        let k = self.period() * u64::from(self.cfg.miss_limit);
        rec.amend = 0;
        let node = rec.node_num;
        let joined = match self.table.entries.get_mut(&rec.node_num) {
            None => {
                for p in rec.ports.iter_mut() {
                    p.reachable = false;
                    p.rtt_ns = 0;
                }
                let up = rec.state == NodeState::Up;
                self.table.entries.insert(node, Entry::new(rec, now));
                up
            }
            Some(e) => {
                if (rec.incarnation, rec.version) <= (e.record.incarnation, e.record.version) {
                    return;
                }
                let was_up = e.record.state == NodeState::Up;
                let same_inc = rec.incarnation == e.record.incarnation;
                for p in rec.ports.iter_mut() {
                    let i = usize::from(p.idx);
                    p.reachable = same_inc && e.port_heard[i].is_some_and(|t| now < t + k);
                    p.rtt_ns = if same_inc { e.port_rtt[i] } else { 0 };
                }
                if !same_inc {
                    e.port_heard = [None; MAX_PORTS];
                    e.port_rtt = [0; MAX_PORTS];
                }
                e.record = rec;
                e.dirty = true;
                e.last_heard = now;
                if e.record.state == NodeState::Up {
                    e.down_since = None;
                }
                !was_up && e.record.state == NodeState::Up
            }
        };
        if joined {
            self.event(Event::NodeJoined { node });
        }
    }

    fn on_table(&mut self, now: Instant, h: &HeaderRepr, t: &TableRepr<'_>) -> Result<(), Reject> {
        let from_master =
            matches!(self.master, Some(m) if m.node == h.sender && m.incarnation == h.incarnation);
        if self.role == Role::Master || !from_master {
            return Ok(());
        }
        self.track_segment(h.sender, t);
        for rec in t.records() {
            self.apply_table_record(now, rec);
        }
        Ok(())
    }

    fn track_segment(&mut self, sender: u16, t: &TableRepr<'_>) {
        self.stats.segments_received += 1;
        if self.rx_seg_round != (sender, t.round) {
            if self.rx_seg_round.0 == sender && self.rx_seg_count > 0 {
                let seen: u32 = self.rx_seg_seen.iter().map(|w| w.count_ones()).sum();
                self.stats.segments_missed +=
                    u64::from(u32::from(self.rx_seg_count).saturating_sub(seen));
            }
            self.rx_seg_round = (sender, t.round);
            self.rx_seg_count = t.seg_count;
            self.rx_seg_seen.clear();
            self.rx_seg_seen
                .resize(usize::from(t.seg_count).div_ceil(64), 0);
        }
        let i = usize::from(t.seg_idx);
        if let Some(w) = self.rx_seg_seen.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    fn apply_table_record(&mut self, now: Instant, rec: NodeRecord) {
        let me = self.cfg.node_num;
        if rec.node_num == me {
            if rec.incarnation == self.local.incarnation {
                self.master_has = Some((rec.incarnation, rec.version));
                if rec.state != NodeState::Up && self.local.state == NodeState::Up {
                    // the master thinks we are gone: publish a new version
                    self.force_bump = true;
                    self.master_has = None;
                }
                // learn the master's view of our ports
                if let Some(e) = self.table.entries.get_mut(&me) {
                    for p in e.record.ports.iter_mut() {
                        if let Some(q) = rec.port(p.idx) {
                            p.reachable = q.reachable;
                            p.rtt_ns = q.rtt_ns;
                        }
                    }
                    e.last_heard = now;
                }
            }
            return;
        }
        let node = rec.node_num;
        let mut evs: heapless::Vec<Event, 34> = heapless::Vec::new();
        match self.table.entries.get_mut(&node) {
            None => {
                if rec.state == NodeState::Up {
                    let _ = evs.push(Event::NodeJoined { node });
                }
                let mut e = Entry::new(rec, now);
                e.dirty = false;
                self.table.entries.insert(node, e);
            }
            Some(e) => {
                if !rec.is_newer_than(&e.record) {
                    if rec.key() == e.record.key() {
                        e.last_heard = now;
                    }
                    return;
                }
                let old_state = e.record.state;
                if old_state != rec.state {
                    let _ = evs.push(match rec.state {
                        NodeState::Up => Event::NodeJoined { node },
                        NodeState::Down => Event::NodeExpired { node },
                        _ => Event::NodeLeft { node, reason: None },
                    });
                    e.down_since = if rec.state == NodeState::Up {
                        None
                    } else {
                        Some(now)
                    };
                } else if rec.incarnation == e.record.incarnation {
                    for p in rec.ports.iter() {
                        if let Some(o) = e.record.port(p.idx) {
                            if o.reachable && !p.reachable {
                                let _ = evs.push(Event::PortDown { node, port: p.idx });
                            } else if !o.reachable && p.reachable {
                                let _ = evs.push(Event::PortUp { node, port: p.idx });
                            }
                        }
                    }
                }
                e.record = rec;
                e.last_heard = now;
            }
        }
        for ev in evs {
            self.event(ev);
        }
    }

    fn on_announce(
        &mut self,
        now: Instant,
        h: &HeaderRepr,
        a: &AnnounceRepr,
    ) -> Result<(), Reject> {
        self.max_term_seen = self.max_term_seen.max(h.term);
        let them = rank(a.priority, h.sender);
        let better = them > self.my_rank() || !self.eligible();
        if better {
            self.better_candidate_until = now + self.cfg.announce_window + self.period();
        }
        match self.role {
            Role::Master => {
                // a healthy master absorbs the challenge: it outbids the
                // candidate's term and shows itself at once
                if h.term >= self.term {
                    self.term = h.term.saturating_add(1);
                }
                self.heartbeat_now(now);
            }
            Role::Follower => {
                if self.master_live(now) {
                    return Ok(());
                }
                if !better && now >= self.better_candidate_until {
                    // bully: a worse node stands while the master is gone
                    self.start_candidacy(now);
                } else {
                    let d = now + self.cfg.announce_window + self.period();
                    if d > self.election_deadline {
                        self.election_deadline = d;
                    }
                }
            }
            Role::Candidate => {
                if better {
                    self.candidate_until = Instant::MAX;
                    self.set_role(Role::Follower);
                    let j = self.jitter();
                    self.election_deadline = now + self.cfg.announce_window + self.period() + j;
                } else {
                    if h.term > self.candidate_term {
                        self.candidate_term = h.term;
                    }
                    if !self.reannounced {
                        self.reannounced = true;
                        self.queue.push_back(Pending::Announce);
                    }
                }
            }
            Role::Left => {}
        }
        Ok(())
    }

    fn on_leave(
        &mut self,
        now: Instant,
        h: &HeaderRepr,
        reason: LeaveReason,
    ) -> Result<(), Reject> {
        let s = h.sender;
        self.event(Event::NodeLeft {
            node: s,
            reason: Some(reason),
        });
        let is_master = self.role == Role::Master;
        if let Some(e) = self.table.entries.get_mut(&s) {
            if e.record.incarnation <= h.incarnation && e.record.state == NodeState::Up {
                e.record.state = NodeState::Left;
                e.record.amend = e.record.amend.wrapping_add(1);
                e.dirty = is_master;
                e.down_since = Some(now);
            }
        }
        if self.master.is_some_and(|m| m.node == s) && !is_master {
            self.lose_master(now);
            let j = self.jitter();
            self.election_deadline = now + j;
        }
        Ok(())
    }

    // ----- election -----

    fn start_candidacy(&mut self, now: Instant) {
        self.lose_master(now);
        self.candidate_term = self.term.max(self.max_term_seen).saturating_add(1);
        self.candidate_until = now + self.cfg.announce_window;
        self.reannounced = false;
        self.set_role(Role::Candidate);
        self.queue.push_back(Pending::Announce);
    }

    fn become_master(&mut self, now: Instant) {
        self.term = self.candidate_term.max(self.max_term_seen);
        self.max_term_seen = self.term;
        self.candidate_until = Instant::MAX;
        let me = self.cfg.node_num;
        self.master = Some(MasterView {
            node: me,
            incarnation: self.cfg.incarnation,
            priority: self.cfg.priority,
            last_heard: now,
        });
        self.set_role(Role::Master);
        let term = self.term;
        self.event(Event::MasterChanged {
            master: Some(me),
            term,
        });
        self.round = 0;
        self.next_round = now;
        self.table_at = None;
        self.seg_bounds.clear();
        // grace: every known node gets a full expiry from now
        for e in self.table.entries.values_mut() {
            e.last_heard = now;
            let reach: heapless::Vec<u8, MAX_PORTS> = e
                .record
                .ports
                .iter()
                .filter(|p| p.reachable)
                .map(|p| p.idx)
                .collect();
            for i in reach {
                e.port_heard[usize::from(i)] = Some(now);
            }
        }
        for i in 0..self.nports {
            self.port_rx[i] = Some(now);
        }
    }

    fn step_down(&mut self, now: Instant) {
        self.queue.retain(|p| !matches!(p, Pending::Heartbeat));
        self.seg_bounds.clear();
        self.table_at = None;
        self.next_round = Instant::MAX;
        self.master = None;
        self.set_role(Role::Follower);
        let t = self.election_timeout();
        self.election_deadline = now + t;
    }

    fn heartbeat_now(&mut self, now: Instant) {
        let min_gap = self.period() / 8;
        if self.last_hb_sent.is_some_and(|t| now < t + min_gap) {
            return;
        }
        if !self.queue.iter().any(|p| matches!(p, Pending::Heartbeat)) {
            self.queue.push_front(Pending::Heartbeat);
            self.last_hb_sent = Some(now);
        }
    }

    // ----- timers -----

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_maint;
        match self.role {
            Role::Left => return None,
            Role::Master => {
                t = t.min(self.next_round);
                if let Some(x) = self.table_at {
                    t = t.min(x);
                }
            }
            Role::Candidate => t = t.min(self.candidate_until),
            Role::Follower => t = t.min(self.election_deadline),
        }
        Some(t)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.role {
            Role::Left => return,
            Role::Candidate => {
                if now >= self.candidate_until {
                    self.become_master(now);
                }
            }
            Role::Follower => {
                if now >= self.election_deadline {
                    if self.eligible() {
                        self.start_candidacy(now);
                    } else {
                        self.lose_master(now);
                        let t = self.election_timeout();
                        self.election_deadline = now + t;
                    }
                }
            }
            Role::Master => {}
        }
        if self.role == Role::Master {
            if now >= self.next_round {
                self.start_round(now);
            }
            if self.table_at.is_some_and(|t| now >= t) {
                self.table_at = None;
                self.plan_table();
            }
        }
        if now >= self.next_maint {
            self.next_maint = now + self.period() / 2;
            self.maintain(now);
        }
    }

    fn start_round(&mut self, now: Instant) {
        let p = self.period();
        self.round += 1;
        self.stats.rounds += 1;
        // close the previous round's counters
        let s = self.stats;
        self.stats.last_round_frames = s.frames_sent - self.round_base.frames_sent;
        self.stats.last_round_bytes = s.bytes_sent - self.round_base.bytes_sent;
        self.stats.last_round_wire_bytes = s.wire_bytes_sent - self.round_base.wire_bytes_sent;
        self.stats.last_round_bytes_received = s.bytes_received - self.round_base.bytes_received;
        self.round_base = self.stats;
        self.queue.retain(|x| !matches!(x, Pending::Heartbeat));
        self.queue.push_front(Pending::Heartbeat);
        self.last_hb_sent = Some(now);
        self.table_at = Some(now + self.cfg.table_delay);
        self.next_round = if self.next_round + p > now {
            self.next_round + p
        } else {
            now + p
        };
        self.master_sweep(now);
    }

    /// Master: expire silent nodes, mark unheard ports, drop old tombstones.
    fn master_sweep(&mut self, now: Instant) {
        let p = self.period();
        let k = p * u64::from(self.cfg.miss_limit);
        let expiry = p * u64::from(self.cfg.node_expiry_periods);
        let tomb =
            p * (2 * u64::from(self.cfg.refresh_rounds) + u64::from(self.cfg.node_expiry_periods));
        let me = self.cfg.node_num;
        let mut evs: Vec<Event> = Vec::new();
        let mut remove: Vec<u16> = Vec::new();
        for (num, e) in self.table.entries.iter_mut() {
            if *num == me {
                continue;
            }
            if e.record.state == NodeState::Up {
                if now >= e.last_heard + expiry {
                    e.record.state = NodeState::Down;
                    e.record.amend = e.record.amend.wrapping_add(1);
                    e.dirty = true;
                    e.down_since = Some(now);
                    evs.push(Event::NodeExpired { node: *num });
                    continue;
                }
                let mut amended = false;
                for pr in e.record.ports.iter_mut() {
                    let heard = e.port_heard[usize::from(pr.idx)].is_some_and(|t| now < t + k);
                    if pr.reachable && !heard {
                        pr.reachable = false;
                        amended = true;
                        evs.push(Event::PortDown {
                            node: *num,
                            port: pr.idx,
                        });
                    }
                }
                if amended {
                    e.record.amend = e.record.amend.wrapping_add(1);
                    e.dirty = true;
                }
            } else if e.down_since.is_some_and(|t| now >= t + tomb) {
                remove.push(*num);
            }
        }
        for n in remove {
            self.table.entries.remove(&n);
        }
        for ev in evs {
            self.event(ev);
        }
    }

    /// Master: choose the records of this round (changed ones plus the
    /// rolling refresh slice) and cut them into segments of whole records.
    fn plan_table(&mut self) {
        let r = u64::from(self.cfg.refresh_rounds.max(1));
        let slot = self.round % r;
        self.plan.clear();
        for (num, e) in self.table.entries.iter_mut() {
            if e.dirty || u64::from(*num) % r == slot {
                e.dirty = false;
                self.plan.push(*num);
            }
        }
        let cap = self.segment_capacity();
        self.seg_bounds.clear();
        let mut start = 0usize;
        let mut size = 0usize;
        for (i, num) in self.plan.iter().enumerate() {
            let len = self
                .table
                .entries
                .get(num)
                .map_or(0, |e| e.record.buffer_len());
            if size + len > cap && i > start {
                self.seg_bounds.push((start as u32, i as u32));
                start = i;
                size = 0;
            }
            size += len;
        }
        if start < self.plan.len() {
            self.seg_bounds.push((start as u32, self.plan.len() as u32));
        }
        self.seg_next = 0;
        self.seg_round = self.round;
        self.stats.last_round_segments = self.seg_bounds.len() as u64;
        self.stats.last_round_records = self.plan.len() as u64;
    }

    fn segment_capacity(&self) -> usize {
        self.cfg.mtu
            - (header::HEADER_LEN - wire::ethernet::HEADER_LEN)
            - TAG_LEN
            - wire::table::FIXED_LEN
    }

    /// Periodic checks: local port liveness, self-fault, follower expiry.
    fn maintain(&mut self, now: Instant) {
        let p = self.period();
        let k = p * u64::from(self.cfg.miss_limit);
        let me = self.cfg.node_num;
        let alone = self.table.up().all(|e| e.record.node_num == me);
        for i in 0..self.nports {
            let up = if self.role == Role::Master {
                alone || self.port_rx[i].is_some_and(|t| now < t + k)
            } else {
                self.port_hb[i].is_some_and(|t| now < t + k)
            };
            if up != self.port_up[i] {
                self.port_up[i] = up;
                let port = i as u8;
                self.event(if up {
                    Event::PortUp { node: me, port }
                } else {
                    Event::PortDown { node: me, port }
                });
            }
        }
        if self.role != Role::Master && !self.self_faulty {
            let last = self.last_any_rx.unwrap_or(self.started);
            if now >= last + p * u64::from(self.cfg.self_fault_periods) {
                self.self_faulty = true;
                self.event(Event::SelfFaulty);
            }
        }
        if self.role == Role::Follower && self.master_live(now) {
            let expiry = p
                * (u64::from(self.cfg.node_expiry_periods)
                    + 2 * u64::from(self.cfg.refresh_rounds));
            let mut gone: heapless::Vec<u16, 64> = heapless::Vec::new();
            for (num, e) in self.table.entries.iter() {
                if *num != me && now >= e.last_heard + expiry && gone.push(*num).is_err() {
                    break;
                }
            }
            for n in gone {
                if let Some(e) = self.table.entries.remove(&n) {
                    if e.record.state == NodeState::Up {
                        self.event(Event::NodeExpired { node: n });
                    }
                }
            }
        }
    }

    // ----- output -----

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Emit the next frame into `buf` (which should hold `14 + mtu` bytes).
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if buf.len() < wire::ethernet::HEADER_LEN + self.cfg.mtu {
            return None;
        }
        if let Some(p) = self.queue.pop_front() {
            return self.emit_pending(now, buf, p);
        }
        if self.role == Role::Master && self.seg_next < self.seg_bounds.len() {
            let i = self.seg_next;
            self.seg_next += 1;
            return self.emit_segment(now, buf, i);
        }
        None
    }

    fn all_ports(&self) -> PortMask {
        PortMask::all(self.nports)
    }

    fn header(&mut self, now: Instant, term: u64) -> HeaderRepr {
        self.seq += 1;
        HeaderRepr {
            kind: Kind::Heartbeat,
            flags: 0,
            key_id: 0,
            cluster_id: self.cfg.cluster_id,
            sender: self.cfg.node_num,
            incarnation: self.cfg.incarnation,
            term,
            seq: self.seq,
            timestamp: now.total_nanos(),
            body_len: 0,
        }
    }

    fn send(
        &mut self,
        buf: &mut [u8],
        ports: PortMask,
        dst: EthernetAddress,
        header: HeaderRepr,
        message: Message<'_>,
    ) -> Option<Transmit> {
        let first = usize::from(ports.first()?);
        let src = self.cfg.port_macs[first];
        let c = ControlRepr {
            dst,
            src,
            header,
            message,
        };
        let len = c.emit(buf, self.cfg.ethertype, &self.cfg.auth)?;
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += len as u64;
        self.stats.wire_bytes_sent += len as u64 * u64::from(ports.count());
        Some(Transmit { ports, len })
    }

    fn emit_pending(&mut self, now: Instant, buf: &mut [u8], p: Pending) -> Option<Transmit> {
        match p {
            Pending::Heartbeat => {
                if self.role != Role::Master {
                    return self.poll_transmit(now, buf);
                }
                let h = self.header(now, self.term);
                let hb = HeartbeatRepr {
                    round: self.round,
                    period_ns: self.period().total_nanos(),
                    priority: self.cfg.priority,
                    flags: 0,
                    table_nodes: self.table.len().min(usize::from(u16::MAX)) as u16,
                };
                self.last_hb_sent = Some(now);
                let ports = self.all_ports();
                self.send(
                    buf,
                    ports,
                    EthernetAddress::BROADCAST,
                    h,
                    Message::Heartbeat(hb),
                )
            }
            Pending::Response {
                port,
                dst,
                echo_ts,
                round,
                with_record,
            } => {
                let Some(m) = self.master else {
                    return self.poll_transmit(now, buf);
                };
                if m.node == self.cfg.node_num {
                    return self.poll_transmit(now, buf);
                }
                let h = self.header(now, self.term);
                let record = if with_record {
                    Some(self.local.clone())
                } else {
                    None
                };
                let r = ResponseRepr {
                    echo_ts,
                    round,
                    port,
                    master: Some(m.node),
                    master_term: self.term,
                    priority: self.cfg.priority,
                    record,
                };
                self.send(buf, PortMask::single(port), dst, h, Message::Response(r))
            }
            Pending::Announce => {
                if self.role != Role::Candidate {
                    return self.poll_transmit(now, buf);
                }
                let h = self.header(now, self.candidate_term);
                let a = AnnounceRepr {
                    priority: self.cfg.priority,
                    flags: 0,
                    last_master: self.last_master,
                };
                let ports = self.all_ports();
                self.send(
                    buf,
                    ports,
                    EthernetAddress::BROADCAST,
                    h,
                    Message::Announce(a),
                )
            }
            Pending::Leave(reason) => {
                let h = self.header(now, self.term);
                let ports = self.all_ports();
                self.send(
                    buf,
                    ports,
                    EthernetAddress::BROADCAST,
                    h,
                    Message::Leave(LeaveRepr { reason }),
                )
            }
        }
    }

    fn emit_segment(&mut self, now: Instant, buf: &mut [u8], i: usize) -> Option<Transmit> {
        let (start, end) = self.seg_bounds[i];
        let mut scratch = core::mem::take(&mut self.scratch);
        scratch.clear();
        let mut count = 0u16;
        for num in &self.plan[start as usize..end as usize] {
            if let Some(e) = self.table.entries.get(num) {
                let len = e.record.buffer_len();
                let at = scratch.len();
                scratch.resize(at + len, 0);
                e.record.emit(&mut scratch[at..]);
                count += 1;
            }
        }
        let t = TableRepr {
            round: self.seg_round,
            seg_idx: i as u16,
            seg_count: self.seg_bounds.len() as u16,
            flags: wire::table::FLAG_REFRESH,
            count,
            records: &scratch,
        };
        let h = self.header(now, self.term);
        // one port is enough on a single L2 segment: every port of every
        // node hears it; use the lowest port that is up
        let port = (0..self.nports as u8)
            .find(|p| self.port_up[usize::from(*p)])
            .unwrap_or(0);
        let ports = PortMask::single(port);
        let first = usize::from(port);
        let c = ControlRepr {
            dst: EthernetAddress::BROADCAST,
            src: self.cfg.port_macs[first],
            header: h,
            message: Message::Table(t),
        };
        let r = c.emit(buf, self.cfg.ethertype, &self.cfg.auth);
        self.scratch = scratch;
        let len = r?;
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += len as u64;
        self.stats.wire_bytes_sent += len as u64;
        Some(Transmit { ports, len })
    }
}
