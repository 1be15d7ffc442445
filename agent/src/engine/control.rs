//! The control lcore (SPEC 5): drains the public ring into the protocol
//! state machine, runs its timers, samples ports and the system every
//! period, feeds the balancer and the protocol, adjusts pipe caps, and sends
//! control frames through each port's control ring. It owns the `Node`;
//! nothing else touches it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use dmpd::{Event, Instant, LeaveReason, Node, NodeConfig, NodeMetrics, PortMetrics};
use ffi::{Mbuf, MbufBurst, Mempool};
use lb::balancer::Controller;
use lb::load::PortSample;
use parking_lot::Mutex;
use tracing::{info, warn};

use super::counters::QueueSnapshot;

/// The control loop counts as stalled when it has not run for this many
/// heartbeat periods (the watchdog's limit, and the loop's own check).
pub const STALL_PERIODS: u32 = 3;
use super::pacer::WIRE_OVERHEAD_BYTES;
use super::pipe::PipeState;
use super::shared::{Routes, Shared};
use super::status::*;
use crate::sysinfo::{SystemMetrics, SystemSampler};

#[derive(Default, Clone, Copy)]
struct PortPrev {
    ours: QueueSnapshot,
    missed: u64,
}

/// Control frames handled per pass of the control loop (~1,024 HMAC checks,
/// a few ms), so timers run between batches under any receive rate.
pub const CONTROL_RX_BUDGET: usize = 1024;

pub struct Control {
    pub shared: Arc<Shared>,
    pub pool: Arc<Mempool>,
    pub node: Node,
    node_cfg: NodeConfig,
    pub lb: Controller,
    sampler: SystemSampler,
    start: StdInstant,
    period: StdDuration,
    next_sample: StdInstant,
    prev: Vec<PortPrev>,
    prev_at: StdInstant,
    prev_pipe_tx: Vec<(u16, u64, u64)>,
    last_sys: SystemMetrics,
    pub status: Arc<Mutex<Status>>,
    pub alive: Arc<AtomicU64>,
    pub stalled: Arc<AtomicU64>,
    stalls_seen: u64,
    /// When the previous pass of the loop started (stall detection from
    /// inside: a stopped process stops its watchdog too).
    last_pass: Option<StdInstant>,
    loop_max_us: u64,
    port_rate: Vec<f64>,
    port_util: Vec<f64>,
    port_loss: Vec<f64>,
    port_over: Vec<f64>,
    pipe_rate: Vec<(u16, f64)>,
    buf: Vec<u8>,
    faulty: bool,
    /// Where to write the status as JSON every period (`status_json`).
    pub status_json: Option<std::path::PathBuf>,
    /// The last sample's per-port data and loads, to rebuild the status
    /// right after cluster events without resampling.
    last_locals: Vec<LocalSample>,
    last_loads: Vec<f64>,
}

type LocalSample = (QueueSnapshot, ffi::PortStats, Option<ffi::LinkStatus>, bool);

impl Control {
    pub fn new(
        shared: Arc<Shared>,
        pool: Arc<Mempool>,
        node_cfg: NodeConfig,
        lb: Controller,
        period: StdDuration,
    ) -> Result<Control, dmpd::ConfigError> {
        let start = StdInstant::now();
        let node = Node::new(node_cfg.clone(), Instant::from_nanos(0))?;
        let n = shared.ports.len();
        let mut sampler = SystemSampler::new("/".into());
        let last_sys = sampler.sample();
        Ok(Control {
            shared,
            pool,
            node,
            node_cfg,
            lb,
            sampler,
            start,
            period,
            next_sample: start,
            prev: vec![PortPrev::default(); n],
            prev_at: start,
            prev_pipe_tx: Vec::new(),
            last_sys,
            status: Arc::new(Mutex::new(Status::default())),
            alive: Arc::new(AtomicU64::new(0)),
            stalled: Arc::new(AtomicU64::new(0)),
            stalls_seen: 0,
            last_pass: None,
            loop_max_us: 0,
            port_rate: vec![0.0; n],
            port_util: vec![0.0; n],
            port_loss: vec![0.0; n],
            port_over: vec![0.0; n],
            pipe_rate: Vec::new(),
            buf: vec![0u8; 9216],
            faulty: false,
            status_json: None,
            last_locals: Vec::new(),
            last_loads: Vec::new(),
        })
    }

    fn now(&self) -> Instant {
        Instant::from_nanos(self.start.elapsed().as_nanos() as u64)
    }

    /// One pass of the loop; returns how long the caller may sleep (zero
    /// when received frames are left over).
    pub fn poll(&mut self) -> StdDuration {
        let t0 = StdInstant::now();
        // A gap of STALL_PERIODS between two passes is a stall the watchdog
        // may miss: SIGSTOP, a paused VM or a starved process stop the
        // watchdog thread too, and on resume this loop may run first. Its
        // view is then just as stale (a stopped master would answer queued
        // ANNOUNCEs of its successor's candidacy and take the cluster back).
        if let Some(prev) = self.last_pass.replace(t0) {
            let s = self.stalled.load(Relaxed);
            if t0.duration_since(prev) >= self.period * STALL_PERIODS && s == self.stalls_seen {
                warn!(
                    gap_ms = t0.duration_since(prev).as_millis() as u64,
                    "control loop did not run"
                );
                self.stalled.fetch_add(1, Relaxed);
            }
        }
        self.alive.fetch_add(1, Relaxed);
        self.check_watchdog();
        let now = self.now();

        // Received control frames, at most CONTROL_RX_BUDGET per pass: a
        // flood arriving as fast as frames are checked must not keep the
        // loop from its timers (heartbeats, watchdog); the excess waits in
        // the public ring, and what does not fit is dropped and counted
        // (`ring_full`) by the polling lcore.
        let mut burst: MbufBurst<32> = MbufBurst::new();
        let mut taken = 0;
        let mut more = false;
        loop {
            let n = self.shared.public_ring.dequeue_mbufs(&mut burst);
            taken += n;
            for m in burst.drain() {
                // Rejections are counted by reason inside the node.
                let _ = self.node.handle_frame(now, m.port() as u8, m.data());
            }
            if n < 32 {
                break;
            }
            if taken >= CONTROL_RX_BUDGET {
                more = true;
                break;
            }
        }

        if self.node.poll_timeout().is_some_and(|t| t <= now) {
            self.node.handle_timeout(now);
        }
        if t0 >= self.next_sample {
            self.sample(now);
            self.next_sample += self.period;
            if self.next_sample < t0 {
                self.next_sample = t0 + self.period;
            }
        }
        self.flush_transmits(now);
        self.drain_events(now);

        let spent = t0.elapsed().as_micros() as u64;
        self.loop_max_us = self.loop_max_us.max(spent);
        if more {
            return StdDuration::ZERO;
        }
        // Sleep until the next timer, at most 1 ms: the public ring is
        // polled at least every millisecond.
        let mut wait = StdDuration::from_millis(1);
        if let Some(t) = self.node.poll_timeout() {
            let now = self.now();
            let d = StdDuration::from_nanos(t.total_nanos().saturating_sub(now.total_nanos()));
            wait = wait.min(d);
        }
        wait
    }

    fn flush_transmits(&mut self, now: Instant) {
        while let Some(tx) = self.node.poll_transmit(now, &mut self.buf) {
            let frame = &self.buf[..tx.len];
            for p in tx.ports.iter() {
                let Some(port) = self.shared.ports.get(p as usize) else {
                    continue;
                };
                let Ok(mut m) = Mbuf::from_slice(&self.pool, frame) else {
                    super::counters::QueueCounters::bump(&port.ctl_counters.drops, 1);
                    continue;
                };
                // One frame may go out on several ports: each copy carries
                // its own port's source MAC (the MAC is outside the HMAC).
                m.data_mut()[6..12].copy_from_slice(&port.mac);
                let mut one: MbufBurst<1> = MbufBurst::new();
                let _ = one.push(m);
                if port.ctl_tx.enqueue_mbufs(&mut one) == 0 {
                    super::counters::QueueCounters::bump(&port.ctl_counters.ring_full, 1);
                    super::counters::QueueCounters::bump(&port.ctl_counters.drops, 1);
                }
            }
        }
    }

    fn drain_events(&mut self, now: Instant) {
        let mut any = false;
        while let Some(ev) = self.node.poll_event() {
            any = true;
            match ev {
                Event::SelfFaulty => {
                    warn!("self-monitoring: no port hears the cluster; leaving");
                    self.faulty = true;
                    self.node.leave(now, LeaveReason::SelfFaulty);
                }
                Event::SelfRecovered if self.faulty => {
                    info!("self-monitoring: ports hear the cluster again; rejoining");
                    self.faulty = false;
                    self.restart_node(now);
                }
                ev => info!(?ev, "cluster event"),
            }
        }
        // Observers (status command, tests, exporters) see membership and
        // role changes at once, not at the next periodic sample.
        if any && !self.last_locals.is_empty() {
            let (locals, loads) = (
                std::mem::take(&mut self.last_locals),
                std::mem::take(&mut self.last_loads),
            );
            let keep = self.loop_max_us;
            self.build_status(now, &locals, &loads);
            self.loop_max_us = keep;
            self.last_locals = locals;
            self.last_loads = loads;
        }
    }

    /// Rejoins with a fresh incarnation (after a leave for a fault).
    fn restart_node(&mut self, now: Instant) {
        self.node_cfg.incarnation = wall_clock_ns();
        self.node_cfg.rng_seed = self.node_cfg.rng_seed.wrapping_add(1);
        match Node::new(self.node_cfg.clone(), now) {
            Ok(n) => self.node = n,
            Err(e) => warn!(%e, "cannot restart protocol node"),
        }
    }

    /// A watchdog outside this loop counts stalls; when the loop runs again
    /// after one, its view is stale: leave and rejoin as a new incarnation.
    fn check_watchdog(&mut self) {
        let s = self.stalled.load(Relaxed);
        if s != self.stalls_seen {
            self.stalls_seen = s;
            let now = self.now();
            warn!("control loop stalled; leaving and rejoining with a new incarnation");
            self.node.leave(now, LeaveReason::SelfFaulty);
            self.flush_transmits(now);
            self.restart_node(now);
        }
    }

    /// Leaves the cluster (shutdown) and pushes the LEAVE out.
    pub fn leave(&mut self) {
        let now = self.now();
        self.node.leave(now, LeaveReason::Shutdown);
        self.flush_transmits(now);
    }

    /// Samples ports, pipes and the system; feeds the balancer, the pipe
    /// controller and the protocol; rebuilds the status.
    fn sample(&mut self, now: Instant) {
        let t = StdInstant::now();
        let dt = t.duration_since(self.prev_at).as_secs_f64().max(1e-6);
        self.prev_at = t;
        let n = self.shared.ports.len();
        let mut samples = Vec::with_capacity(n);
        let mut metrics = Vec::with_capacity(n);
        let mut locals = Vec::with_capacity(n);
        for (i, port) in self.shared.ports.iter().enumerate() {
            let mut ours = QueueSnapshot::default();
            for c in port.rx_counters.iter().chain(&port.tx_counters) {
                ours += c.snapshot();
            }
            ours += port.ctl_counters.snapshot();
            let eth = port.port.stats().unwrap_or_default();
            let link = port.port.link().ok();
            let prev = self.prev[i];
            let d_pkts = (ours.rx_packets + ours.tx_packets)
                .saturating_sub(prev.ours.rx_packets + prev.ours.tx_packets);
            let d_bytes = (ours.rx_bytes + ours.tx_bytes)
                .saturating_sub(prev.ours.rx_bytes + prev.ours.tx_bytes);
            // Fport in bits on the wire: per-frame overhead counted, so
            // minimum frames at line rate read 100%.
            let bits = (d_bytes + d_pkts * WIRE_OVERHEAD_BYTES) * 8;
            let rate = bits as f64 / dt;
            let util = rate / port.bandwidth_bps.max(1) as f64;
            let d_rx = ours.rx_packets.saturating_sub(prev.ours.rx_packets);
            let d_drop = (ours.drops.saturating_sub(prev.ours.drops))
                + eth.rx_missed.saturating_sub(prev.missed);
            let loss = if d_rx + d_drop == 0 {
                0.0
            } else {
                d_drop as f64 / (d_rx + d_drop) as f64
            };
            let d_full = ours.ring_full.saturating_sub(prev.ours.ring_full);
            let over = if d_rx + d_full == 0 {
                0.0
            } else {
                d_full as f64 / (d_rx + d_full) as f64
            };
            self.prev[i] = PortPrev {
                ours,
                missed: eth.rx_missed,
            };
            self.port_rate[i] = rate;
            self.port_util[i] = util;
            self.port_loss[i] = loss;
            self.port_over[i] = over;
            samples.push(PortSample {
                utilisation: util.min(1.0),
                drop_rate: loss,
                overflow_rate: over,
            });
            let up = self.node.local_port_up(i as u8);
            let _ = self.lb.set_port_available(i, up);
            locals.push((ours, eth, link, up));
            metrics.push((rate, util, ours, eth, link));
        }
        let _ = self.lb.record_samples(&samples);

        // Destination nodes: their ports' MACs, loads and availability.
        let me = self.shared.node;
        let mut routes = Routes::default();
        let mut seen = Vec::new();
        for e in self.node.table().iter() {
            let r = &e.record;
            if r.node_num == me || r.state != dmpd::NodeState::Up {
                continue;
            }
            let mut loads = Vec::with_capacity(r.ports.len());
            let mut avail = 0u16;
            let mut macs = Vec::with_capacity(r.ports.len());
            for p in r.ports.iter() {
                loads.push(p.load_bp as f64 / 10_000.0);
                if p.state == dmpd::PortState::Up && p.reachable {
                    avail |= 1 << p.idx;
                }
                macs.push(p.mac.0);
            }
            if self.lb.set_remote_node(r.node_num, &loads, avail).is_ok() {
                seen.push(r.node_num);
            }
            routes.nodes.insert(r.node_num, macs);
        }
        let old: Vec<u16> = self
            .shared
            .routes
            .load()
            .nodes
            .keys()
            .copied()
            .filter(|n| !seen.contains(n))
            .collect();
        for n in old {
            self.lb.remove_remote_node(n);
        }
        self.shared.routes.store(Arc::new(routes));
        self.lb.publish();

        let snap = self.lb.snapshot();
        let loads: Vec<f64> = (0..n).map(|i| snap.load(i)).collect();
        self.adjust_pipe_caps();

        // Protocol: this node's record.
        let sys = self.sampler.sample();
        let node_metrics = NodeMetrics {
            cores: sys.cores as u16,
            cpu_util_bp: bp(sys.cpu_util),
            load1_centi: centi(sys.load1),
            load5_centi: centi(sys.load5),
            load15_centi: centi(sys.load15),
            io_load_bp: bp(sys.io_load),
            mem_total: sys.mem_total_bytes,
            mem_util_bp: bp(sys.mem_util),
            temperature_centi: sys.temperature_c.map(|c| (c * 100.0) as i16),
        };
        let port_metrics: Vec<PortMetrics> = metrics
            .iter()
            .enumerate()
            .map(|(i, (rate, util, ours, eth, link))| PortMetrics {
                link_up: link.map(|l| l.up).unwrap_or(false),
                speed_mbps: (self.shared.ports[i].bandwidth_bps / 1_000_000) as u32,
                rx_packets: ours.rx_packets,
                tx_packets: ours.tx_packets,
                rx_bytes: ours.rx_bytes,
                tx_bytes: ours.tx_bytes,
                rate_bps: *rate as u64,
                util_bp: bp(*util),
                drops: (ours.drops + eth.rx_missed) as u32,
                errors: (ours.errors + eth.rx_errors + eth.tx_errors) as u32,
                overflows: ours.ring_full as u32,
                load_bp: bp(loads[i]),
            })
            .collect();
        let pipes = self.shared.pipes.all();
        let pipe_records: Vec<dmpd::PipeRecord> = pipes
            .iter()
            .map(|p| {
                let c = p.counters.snapshot();
                let params = p.params();
                dmpd::PipeRecord {
                    id: p.id,
                    priority: params.priority,
                    state: match p.state() {
                        PipeState::Open => dmpd::PipeState::Open,
                        PipeState::Full => dmpd::PipeState::Throttled,
                        PipeState::Closed => dmpd::PipeState::Closed,
                    },
                    flow_threshold_kbps: (params.threshold_bps / 1000) as u32,
                    buffer_size: params.buffer,
                    tx_msgs: c.tx_msgs,
                    rx_msgs: c.rx_msgs,
                    drops: (c.rx_dropped + c.tx_dropped) as u32,
                }
            })
            .collect();
        self.node
            .set_local_metrics(node_metrics, &port_metrics, &pipe_records);
        self.last_sys = sys;
        self.build_status(now, &locals, &loads);
        self.last_locals = locals;
        self.last_loads = loads;
        let _ = t;
    }

    /// Feedback controller (SPEC 5). The worker already serves pipes in
    /// strict priority order; the controller keeps lower-priority pipes from
    /// holding the shared staging and port capacity while a higher-priority
    /// pipe is backlogged. Each period, per pipe:
    /// - a higher-priority pipe is backlogged (a burst or more queued, or
    ///   sends refused since the last sample): halve this pipe's cap, from
    ///   its measured rate, down to 1 Mb/s (multiplicative decrease);
    /// - otherwise a capped pipe gets 5% of the node's port capacity back
    ///   (additive increase), and its cap is lifted once it reaches its
    ///   threshold or the capacity.
    ///
    /// Every change is traced.
    fn adjust_pipe_caps(&mut self) {
        let pipes = self.shared.pipes.all();
        let dt = self.period.as_secs_f64().max(1e-6);
        let capacity: u64 = self
            .shared
            .ports
            .iter()
            .enumerate()
            .filter(|(i, _)| self.node.local_port_up(*i as u8))
            .map(|(_, p)| p.bandwidth_bps)
            .sum();
        let step = (capacity / 20).max(1_000_000);
        let mut rates = Vec::with_capacity(pipes.len());
        let mut backlogged = Vec::with_capacity(pipes.len());
        for p in &pipes {
            let c = p.counters.snapshot();
            let (prev_bytes, prev_refused) = self
                .prev_pipe_tx
                .iter()
                .find(|(id, _, _)| *id == p.id)
                .map(|x| (x.1, x.2))
                .unwrap_or((c.tx_bytes, c.tx_refused));
            rates.push((p.id, (c.tx_bytes - prev_bytes) as f64 * 8.0 / dt));
            backlogged.push(p.tx.count() >= 32 || c.tx_refused > prev_refused);
        }
        self.prev_pipe_tx = pipes
            .iter()
            .map(|p| {
                let c = p.counters.snapshot();
                (p.id, c.tx_bytes, c.tx_refused)
            })
            .collect();
        self.pipe_rate = rates.clone();
        for (i, p) in pipes.iter().enumerate() {
            let prio = p.priority.load(Relaxed);
            let pressure = pipes
                .iter()
                .zip(&backlogged)
                .any(|(q, &b)| b && q.priority.load(Relaxed) > prio);
            let cap = p.cap_bps.load(Relaxed);
            let threshold = p.threshold_bps.load(Relaxed);
            let rate = rates[i].1 as u64;
            let new = if pressure && rate > 0 {
                let base = if cap == 0 { rate } else { cap.min(rate.max(1)) };
                (base / 2).max(1_000_000)
            } else if !pressure && cap != 0 {
                let n = cap + step;
                if (threshold > 0 && n >= threshold) || n >= capacity {
                    0
                } else {
                    n
                }
            } else {
                cap
            };
            if new != cap {
                p.cap_bps.store(new, Relaxed);
                info!(
                    pipe = p.id,
                    prio,
                    rate_bps = rate,
                    old_cap_bps = cap,
                    new_cap_bps = new,
                    reason = if pressure {
                        "higher-priority pipe backlogged"
                    } else {
                        "no pressure"
                    },
                    "pipe cap changed"
                );
            }
        }
    }

    fn build_status(&mut self, now: Instant, locals: &[LocalSample], loads: &[f64]) {
        let node = &self.node;
        let snap = self.lb.snapshot();
        let mut st = Status {
            node: node.node_num(),
            cluster_id: self.shared.cluster_id,
            incarnation: self.node_cfg.incarnation,
            role: format!("{:?}", node.role()).to_lowercase(),
            master: node.master(),
            term: node.term(),
            uptime_ms: now.total_nanos() / 1_000_000,
            heartbeat_ms: self.period.as_millis() as u64,
            ..Status::default()
        };
        for e in node.table().iter() {
            let r = &e.record;
            st.cluster.push(NodeStatus {
                node: r.node_num,
                state: format!("{:?}", r.state).to_lowercase(),
                priority: r.priority,
                incarnation: r.incarnation,
                version: r.version,
                last_heard_ms_ago: now.total_nanos().saturating_sub(e.last_heard.total_nanos())
                    / 1_000_000,
                cores: r.cores,
                cpu_util: r.cpu_util_bp as f64 / 10_000.0,
                load1: r.load1_centi as f64 / 100.0,
                mem_util: r.mem_util_bp as f64 / 10_000.0,
                ports: r
                    .ports
                    .iter()
                    .map(|p| PeerPortStatus {
                        idx: p.idx,
                        mac: mac_str(&p.mac.0),
                        up: p.state == dmpd::PortState::Up,
                        reachable: p.reachable,
                        usable: p.state == dmpd::PortState::Up && p.reachable,
                        utilisation: p.util_bp as f64 / 10_000.0,
                        load: p.load_bp as f64 / 10_000.0,
                        rtt_us: p.rtt_ns as f64 / 1000.0,
                    })
                    .collect(),
                pipes: r
                    .pipes
                    .iter()
                    .map(|p| PeerPipeStatus {
                        id: p.id,
                        priority: p.priority,
                        state: format!("{:?}", p.state).to_lowercase(),
                        tx_msgs: p.tx_msgs,
                        rx_msgs: p.rx_msgs,
                        drops: p.drops,
                    })
                    .collect(),
            });
        }
        for (i, port) in self.shared.ports.iter().enumerate() {
            let (ours, eth, link, up) = &locals[i];
            st.ports.push(LocalPortStatus {
                idx: i as u8,
                name: port.name.clone(),
                mac: mac_str(&port.mac),
                link_up: link.map(|l| l.up).unwrap_or(false),
                up: *up,
                bandwidth_mbps: port.bandwidth_bps / 1_000_000,
                rate_bps: self.port_rate[i],
                utilisation: self.port_util[i],
                loss_rate: self.port_loss[i],
                overflow_rate: self.port_over[i],
                load: loads[i],
                counters: *ours,
                ethdev_rx_packets: eth.rx_packets,
                ethdev_tx_packets: eth.tx_packets,
                ethdev_rx_bytes: eth.rx_bytes,
                ethdev_tx_bytes: eth.tx_bytes,
                ethdev_rx_missed: eth.rx_missed,
                ethdev_rx_errors: eth.rx_errors,
                ethdev_tx_errors: eth.tx_errors,
            });
        }
        st.balancer = BalancerStatus {
            enabled: self.shared.balancing.load(Relaxed),
            mean: snap.mean(),
            balance_degree: snap.balance_degree(),
            threshold: self.lb.config().threshold,
            balancing: snap.balancing(),
            loads: loads.to_vec(),
        };
        for p in self.shared.pipes.all() {
            let rate = self
                .pipe_rate
                .iter()
                .find(|(id, _)| *id == p.id)
                .map(|x| x.1)
                .unwrap_or(0.0);
            st.pipes.push(PipeStatus {
                id: p.id,
                params: p.params(),
                cap_bps: p.cap_bps.load(Relaxed),
                state: format!("{:?}", p.state()).to_lowercase(),
                queued: p.tx.count(),
                tx_rate_bps: rate,
                counters: p.counters.snapshot(),
            });
        }
        st.rejects = node
            .rejects()
            .iter()
            .map(|(r, c)| (r.to_string(), c))
            .collect();
        let d = &self.shared.datapath;
        st.datapath = vec![
            ("foreign".into(), d.foreign.load(Relaxed)),
            ("misdelivered".into(), d.misdelivered.load(Relaxed)),
            ("no_pipe".into(), d.no_pipe.load(Relaxed)),
            ("malformed".into(), d.malformed.load(Relaxed)),
            ("no_route".into(), d.no_route.load(Relaxed)),
            ("no_port".into(), d.no_port.load(Relaxed)),
        ];
        st.echo = vec![
            ("direct".into(), d.echo_direct.load(Relaxed)),
            ("queued".into(), d.echo_queued.load(Relaxed)),
        ];
        st.lcores = self.shared.lcores.iter().map(|l| l.snapshot()).collect();
        let rs = node.stats();
        st.round = RoundStatus {
            rounds: rs.rounds,
            frames_sent: rs.frames_sent,
            bytes_sent: rs.bytes_sent,
            frames_received: rs.frames_received,
            last_round_bytes: rs.last_round_bytes,
            last_round_wire_bytes: rs.last_round_wire_bytes,
            last_round_frames: rs.last_round_frames,
            control_loop_max_us: std::mem::take(&mut self.loop_max_us),
        };
        let s = &self.last_sys;
        st.system = SystemStatus {
            cores: s.cores,
            cpu_util: s.cpu_util,
            load1: s.load1,
            load5: s.load5,
            load15: s.load15,
            io_load: s.io_load,
            mem_total_bytes: s.mem_total_bytes,
            mem_util: s.mem_util,
            temperature_c: s.temperature_c,
            hugepage_size_bytes: s.hugepage_size_bytes,
            rss_bytes: rss_bytes(),
        };
        st.watchdog_stalls = self.stalled.load(Relaxed);
        if let Some(path) = &self.status_json {
            // Write then rename, so readers never see half a file.
            let tmp = path.with_extension("json.tmp");
            if let Ok(bytes) = serde_json::to_vec(&st) {
                if std::fs::write(&tmp, bytes).is_ok() {
                    let _ = std::fs::rename(&tmp, path);
                }
            }
        }
        *self.status.lock() = st;
    }
}

fn bp(x: f64) -> u16 {
    (x.clamp(0.0, 6.5535) * 10_000.0).round() as u16
}

fn centi(x: f64) -> u16 {
    (x.clamp(0.0, 655.35) * 100.0).round() as u16
}

pub fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// Resident set size of this process, from /proc/self/statm.
pub fn rss_bytes() -> u64 {
    let page = 4096u64;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|p| p * page)
        .unwrap_or(0)
}
