//! The polling lcore loop, after DPDK's l2fwd: read the TSC, receive a burst
//! per queue, dispatch, then send control frames first and data frames from
//! the pipes in priority order through the balancer, paced per port. It
//! never allocates, locks or makes a syscall, except the idle back-off's
//! sleep when there is nothing to do.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Weak};

use dmpd::wire::data::{
    addrs_wire, dpipe_wire, ptype_of, set_addrs_wire, turn_around, turned_wire, DataFrame,
    DataMatcher, HEADER_LEN,
};
use dmpd::wire::Kind;
use ffi::Mbuf;
use ffi::{cycles, MbufBurst, QueueId};
use lb::balancer::{Balancer, MAX_PORTS, NO_PORT};
use lb::flowcache::{FlowCache, Lookup, Ports};
use lb::toeplitz::Toeplitz;
use lb::tuple::DmpdTuple;

use super::counters::QueueCounters as C;
use super::pacer::{wire_bits, Pacer};
use super::pipe::{PipeShared, MAX_PIPES};
use super::shared::{PipeView, Routes, Shared, Snapshot};

const BURST: usize = 32;
/// Frames a port may hold back for pacing or a full tx ring; also the most
/// data frames one loop pulls from the pipes (four bursts, so that a loop
/// can send as much as it receives from four ports).
const STAGING: usize = 4 * BURST;

/// Idle back-off, like DPDK's power-aware l3fwd: after `after_polls` empty
/// polls, sleep, doubling from 16 us up to `max_sleep_us`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub after_polls: u32,
    pub max_sleep_us: u32,
}

pub struct Worker {
    pub index: usize,
    /// Local port indices this worker polls and transmits on.
    pub ports: Vec<usize>,
    pub balancer: Balancer,
    pub backoff: Backoff,
}

/// `repr(C)`, byte count first: kept away from the staging queue's
/// length, the two per-frame adds stay two adds (side by side, LLVM
/// merges them into six vector instructions).
#[repr(C)]
struct PortState {
    /// Bytes of the frames in `staging`: the tx byte counter needs no pass
    /// over the frames when a whole staging queue goes out.
    staged_bytes: u64,
    staging: MbufBurst<STAGING>,
    pacer: Option<Pacer>,
    ctl_pending: MbufBurst<BURST>,
}

impl PortState {
    /// Stages a frame of `len` bytes; gives it back if staging is full.
    #[inline(always)]
    fn stage(&mut self, m: Mbuf, len: usize) -> Result<(), Mbuf> {
        self.staging.push(m)?;
        self.staged_bytes += len as u64;
        Ok(())
    }
}

/// What the per-frame path reads and never changes, built once per lcore.
struct PathConsts {
    /// The one test for "a whole data frame for this node and cluster".
    matcher: DataMatcher,
    /// Per local port, header bytes 6..14 of a frame it sends: its MAC
    /// and the EtherType, as a little-endian word (one store per frame).
    /// Every `u8` indexes it (a port beyond ours finds 0 and is refused
    /// by the staging lookup after): no mask or bounds check per frame.
    src_words: [u64; 256],
    /// The same MACs as bytes, for frames whose EtherType was not checked.
    src_macs: [[u8; 6]; MAX_PORTS],
}

impl PathConsts {
    fn new(shared: &Shared) -> Self {
        let mut src_words = [0u64; 256];
        let mut src_macs = [[0u8; 6]; MAX_PORTS];
        let et = shared.ethertype.to_be_bytes();
        for (i, p) in shared.ports.iter().enumerate().take(MAX_PORTS) {
            src_words[i] = mac_word(&p.mac) | u64::from(u16::from_le_bytes(et)) << 48;
            src_macs[i] = p.mac;
        }
        PathConsts {
            matcher: DataMatcher::new(shared.ethertype, shared.cluster_id, shared.node),
            src_words,
            src_macs,
        }
    }
}

/// A MAC address as the low six bytes of a little-endian word.
#[inline(always)]
fn mac_word(m: &[u8; 6]) -> u64 {
    u64::from_le_bytes([m[0], m[1], m[2], m[3], m[4], m[5], 0, 0])
}

pub fn run(shared: Arc<Shared>, mut w: Worker) -> i32 {
    let hz = cycles::tsc_hz().max(1);
    let tsc0 = cycles::rdtsc();
    // Nanoseconds per TSC cycle in 32.32 fixed point: a multiply per loop
    // instead of a 128-bit division.
    let ns_per_cycle = ((1_000_000_000u128 << 32) / hz as u128) as u64;
    let now_ns = || (((cycles::rdtsc() - tsc0) as u128 * ns_per_cycle as u128) >> 32) as u64;
    let toeplitz = Toeplitz::default();
    let lc = &shared.lcores[w.index];
    let sync = &shared.lcore_sync[w.index];
    let n_ports = shared.ports.len();
    let mut ps: Vec<PortState> = (0..n_ports)
        .map(|i| {
            let p = &shared.ports[i];
            PortState {
                staging: MbufBurst::new(),
                staged_bytes: 0,
                pacer: p.pace.then(|| Pacer::new(p.bandwidth_bps, 0, 0)),
                ctl_pending: MbufBurst::new(),
            }
        })
        .collect();
    // Per-pipe pacers, indexed by pipe id (built once: no allocation later).
    let mut pipe_pacers: Vec<Pacer> = (0..MAX_PIPES).map(|_| Pacer::new(0, 0, 0)).collect();
    let mut rx: MbufBurst<BURST> = MbufBurst::new();
    let mut tx: MbufBurst<BURST> = MbufBurst::new();
    let mut scratch = Scratch::new();
    let mut cache = FlowCache::new();
    let consts = PathConsts::new(&shared);
    let mut memo = RouteMemo::new();
    let mut view = PipeView::new();
    let mut routes = Snapshot::new(&shared.routes);
    let mut tally = EchoTally::default();
    let mut idle_run: u32 = 0;
    let mut sleep_us: u32 = 16;
    let my_ports = w.ports.clone();
    let my_queues: Vec<(usize, u16)> = my_ports
        .iter()
        .flat_map(|&pi| (0..shared.ports[pi].rx_queues).map(move |q| (pi, q)))
        .collect();

    sync.go_online();
    while !shared.quit.load(Relaxed) {
        let now = now_ns();
        let mut work = 0usize;
        C::bump(&lc.polls, 1);
        // The pipe table and the routes, taken in again when they changed.
        view.refresh(&shared.pipes);
        sync.announce(view.version());
        if routes.refresh(&shared.routes) {
            memo.forget();
        }

        // 1. Receive and dispatch.
        {
            let mut txp = TxPath::new(
                &shared,
                &consts,
                &mut w.balancer,
                &toeplitz,
                &mut cache,
                &mut ps,
                &mut memo,
                routes.get(),
                now,
            );
            // The run of data frames for one pipe, across this step's
            // bursts.
            let mut run = Run::idle();
            let v = &view;
            // Each queue's burst is dispatched as it comes in. The mbuf
            // headers are not prefetched ahead (l2fwd does not either): on
            // net_ring, where nothing else touches them, 32 header
            // prefetches at once made the loop 6% slower (the packet data
            // is prefetched a few frames ahead as the burst is drained).
            for &(pi, q) in &my_queues {
                let port = &shared.ports[pi];
                let n = port.port.rx_burst(QueueId::new(q), &mut rx);
                if n == 0 {
                    continue;
                }
                work += n;
                C::bump(&lc.rx_packets, n as u64);
                let qc = &port.rx_counters[q as usize];
                C::bump(&qc.rx_packets, n as u64);
                let (p, b) = (pi as u16, &mut rx);
                let (s, t) = (&mut scratch, &mut tally);
                if txp.balancing {
                    dispatch_burst::<true>(&shared, v, qc, p, b, s, &mut txp, &mut run, t);
                } else {
                    dispatch_burst::<false>(&shared, v, qc, p, b, s, &mut txp, &mut run, t);
                }
            }
            run.close(&shared, &mut tally, now);
        }

        // The flow cache's counts, for status and metrics (one writer).
        let fc = cache.counters();
        lc.flow_hits.store(fc.hits, Relaxed);
        lc.flow_misses.store(fc.misses, Relaxed);

        // 2. Control frames first: they must not wait behind data.
        for &pi in &my_ports {
            let port = &shared.ports[pi];
            let st = &mut ps[pi];
            port.ctl_tx.dequeue_mbufs(&mut st.ctl_pending);
            if !st.ctl_pending.is_empty() {
                let bytes: u64 = st
                    .ctl_pending
                    .as_slice()
                    .iter()
                    .map(|m| m.len() as u64)
                    .sum();
                let len = st.ctl_pending.len();
                let q = QueueId::new((w.index % port.tx_queues as usize) as u16);
                let sent = port.port.tx_burst(q, &mut st.ctl_pending);
                work += sent;
                let sent_bytes = if sent == len {
                    bytes
                } else {
                    bytes
                        - st.ctl_pending
                            .as_slice()
                            .iter()
                            .map(|m| m.len() as u64)
                            .sum::<u64>()
                };
                C::bump(&port.ctl_counters.tx_packets, sent as u64);
                C::bump(&port.ctl_counters.tx_bytes, sent_bytes);
                if let Some(p) = st.pacer.as_mut() {
                    // Control frames are not held back, but they use the wire.
                    let _ = p.try_take(now, wire_bits(60) * sent as u64);
                }
            }
        }

        // 3. Data from pipes, highest priority first, while every port can
        // stage a full burst (back-pressure into the pipe rings). Every
        // port: the balancer may pick any of them, and each worker has a
        // tx queue of its own on each.
        let room = ps
            .iter()
            .map(|st| STAGING - st.staging.len())
            .min()
            .unwrap_or(0);
        if room >= BURST {
            let mut txp = TxPath::new(
                &shared,
                &consts,
                &mut w.balancer,
                &toeplitz,
                &mut cache,
                &mut ps,
                &mut memo,
                routes.get(),
                now,
            );
            let mut budget = room;
            'pipes: for pipe in view.by_priority() {
                // Bursts from this pipe until it runs dry (or its rate
                // stops it), then the next one.
                loop {
                    if budget == 0 {
                        break 'pipes;
                    }
                    let want = budget.min(BURST);
                    let sent = pull_pipe(
                        &mut txp,
                        pipe,
                        &mut pipe_pacers[pipe.id as usize],
                        want,
                        &mut tx,
                    );
                    budget -= sent;
                    work += sent;
                    if sent < want {
                        break;
                    }
                }
            }
        }

        // 4. Flush staged data, paced, on every port (see 3).
        for (pi, st) in ps.iter_mut().enumerate() {
            let port = &shared.ports[pi];
            if st.staging.is_empty() {
                continue;
            }
            let mut allowed = st.staging.len();
            if let Some(p) = st.pacer.as_mut() {
                allowed = 0;
                for m in st.staging.as_slice() {
                    if !p.try_take(now, wire_bits(m.len())) {
                        break;
                    }
                    allowed += 1;
                }
            }
            if allowed == 0 {
                continue;
            }
            let q = (w.index % port.tx_queues as usize) as u16;
            let sent = port
                .port
                .tx_burst_max(QueueId::new(q), &mut st.staging, allowed);
            // What is left (usually nothing) is summed; what went out is
            // the difference.
            let rest: u64 = st.staging.as_slice().iter().map(|m| m.len() as u64).sum();
            let sent_bytes = st.staged_bytes - rest;
            st.staged_bytes = rest;
            if sent < allowed {
                // Give back the tokens of frames the tx ring refused.
                if let Some(p) = st.pacer.as_mut() {
                    for m in &st.staging.as_slice()[..allowed - sent] {
                        p.refund(wire_bits(m.len()));
                    }
                }
            }
            let tc = &port.tx_counters[q as usize];
            C::bump(&tc.tx_packets, sent as u64);
            C::bump(&tc.tx_bytes, sent_bytes);
            C::bump(&lc.tx_packets, sent as u64);
            work += sent;
        }

        // The direct echo's counts reach the pipes when the lcore idles,
        // and at least every TALLY_FLUSH_NS while it is busy.
        if work == 0 || now.wrapping_sub(tally.since_ns) >= TALLY_FLUSH_NS {
            tally.flush(&shared, now);
        }

        // 5. Idle back-off.
        if work == 0 {
            C::bump(&lc.idle_polls, 1);
            idle_run = idle_run.saturating_add(1);
            if idle_run >= w.backoff.after_polls {
                C::bump(&lc.sleeps, 1);
                // A sleeping lcore holds no pipe: closing one need not
                // wait for it to wake.
                view.release();
                sync.go_offline();
                std::thread::sleep(std::time::Duration::from_micros(sleep_us as u64));
                sync.go_online();
                sleep_us = (sleep_us * 2).min(w.backoff.max_sleep_us.max(1));
            } else {
                cycles::pause();
            }
        } else {
            idle_run = 0;
            sleep_us = 16;
        }
    }
    tally.flush(&shared, now_ns());
    view.release();
    sync.go_offline();
    0
}

/// The tick of the flow clock, in nanoseconds (2^14: 16.4 us).
pub const FLOW_TICK_NS: u64 = 1 << 14;

/// The time the balancer and the flow cache see: `now_ns` rounded up to
/// the next [`FLOW_TICK_NS`]. A cached flow touches its bucket once per
/// new time, so on a ticking clock once per tick instead of once per loop
/// step (a step is 2 us at 60 Mpps): 8 times fewer writes to the bucket
/// table for a loop that sees each flow every step. Activity times are
/// rounded up, and the balancer's idle gap is one tick longer than the
/// configured one ([`balancer_idle_gap_ns`]), so that a flow that carried
/// a frame less than the configured gap ago is never moved: with `t` and
/// `n` the real times of the last frame and of the decision,
/// `ceil(n) - ceil(t) < (n - t) + tick`. A flow may stay put up to two
/// ticks longer than the gap; the gap is milliseconds.
#[inline(always)]
pub fn flow_clock(now_ns: u64) -> u64 {
    (now_ns | (FLOW_TICK_NS - 1)) + 1
}

/// The balancer's idle gap on the flow clock for a configured gap of
/// `idle_gap_ms` (see [`flow_clock`]).
pub fn balancer_idle_gap_ns(idle_gap_ms: u64) -> u64 {
    idle_gap_ms
        .saturating_mul(1_000_000)
        .saturating_add(FLOW_TICK_NS)
}

/// Per-burst work space of one polling lcore (built once, reused).
struct Scratch {
    /// Control frames of the burst, for the public ring.
    ctl: MbufBurst<BURST>,
    /// A run of data frames for the same pipe, for its ring.
    run: MbufBurst<BURST>,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            ctl: MbufBurst::new(),
            run: MbufBurst::new(),
        }
    }
}

/// Why a received frame that is not a data frame for us is not delivered.
enum Verdict {
    Control,
    Foreign,
    Malformed,
    Misdelivered,
}

/// The slow path of classification, for a frame that failed
/// [`DataMatcher::check`]: which of the other cases it is.
#[inline(never)]
fn classify_other(shared: &Shared, d: &[u8]) -> Verdict {
    if d.len() < 14 || u16::from_be_bytes([d[12], d[13]]) != shared.ethertype {
        return Verdict::Foreign;
    }
    if d.len() < 16 {
        // ours by EtherType, cut before the kind byte
        return Verdict::Malformed;
    }
    if Kind::from(d[15]) != Kind::Data {
        return Verdict::Control;
    }
    match DataFrame::new_checked(d) {
        Err(_) => Verdict::Malformed,
        Ok(f) if f.dnode() != shared.node || f.cluster_id() != shared.cluster_id => {
            Verdict::Misdelivered
        }
        // The matcher accepts exactly these (dmpd's wire_props test), so
        // this is not reached; were it, the frame is counted, not lost.
        Ok(_) => Verdict::Malformed,
    }
}

/// Why a data frame could not be staged.
enum Unsent {
    /// No local port is up.
    NoPort,
    /// No MAC for the destination's rx port.
    NoRoute,
    /// The tx port's staging queue is full.
    Full,
}

/// No node in [`RouteMemo::node_wire`].
const NO_NODE: u32 = u32::MAX;

/// The last destination's rx MACs, copied out of the routes: bursts mostly
/// go to one node, and the routes' map is looked up once per destination
/// or routes change, not per frame. Kept by the lcore across loop steps,
/// and forgotten when the lcore's snapshot of the routes changes.
struct RouteMemo {
    /// The node as [`dnode_wire`] gives it (no byte swap per frame), or
    /// [`NO_NODE`].
    node_wire: u32,
    /// How many rx ports the node has (0: not known).
    n: usize,
    /// By a decision's rx port (`NO_PORT` when it has none): the node's rx
    /// MACs ([`mac_word`] with [`MAC_VALID`]), and at `NO_PORT` its first
    /// port's. An entry without [`MAC_VALID`] is a port the node does not
    /// have. Every `u8` indexes it: no bounds check per frame.
    dst: [u64; 256],
}

/// Marks a known MAC in [`RouteMemo::dst`]: the top bits of a MAC word are
/// bytes 6 and 7 of the store, which the source MAC overwrites.
const MAC_VALID: u64 = 1 << 63;

impl RouteMemo {
    fn new() -> Self {
        RouteMemo {
            node_wire: NO_NODE,
            n: 0,
            dst: [0; 256],
        }
    }

    /// For new routes: the next frame looks its node up again.
    fn forget(&mut self) {
        self.node_wire = NO_NODE;
    }
}

/// What sending a data frame needs, for one step of the loop: the decision
/// (the flow cache in front of the balancer, or the hash-modulo baseline),
/// the route, and the ports' staging queues.
struct TxPath<'a> {
    shared: &'a Shared,
    consts: &'a PathConsts,
    balancer: &'a mut Balancer,
    toeplitz: &'a Toeplitz,
    cache: &'a mut FlowCache,
    ps: &'a mut [PortState],
    now: u64,
    /// The flow cache's view of the balancer for this step.
    lookup: Lookup,
    balancing: bool,
    memo: &'a mut RouteMemo,
    /// The routes the memo was taken from.
    routes: &'a Routes,
}

impl<'a> TxPath<'a> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        shared: &'a Shared,
        consts: &'a PathConsts,
        balancer: &'a mut Balancer,
        toeplitz: &'a Toeplitz,
        cache: &'a mut FlowCache,
        ps: &'a mut [PortState],
        memo: &'a mut RouteMemo,
        routes: &'a Routes,
        now: u64,
    ) -> Self {
        // New snapshots are taken in once per loop step; the flow cache
        // only compares epochs. The balancer runs on the flow clock.
        let flow_now = flow_clock(now);
        balancer.refresh(flow_now);
        let lookup = Lookup::new(balancer, flow_now);
        TxPath {
            lookup,
            shared,
            consts,
            balancer,
            toeplitz,
            cache,
            ps,
            now,
            balancing: shared.balancing.load(Relaxed),
            memo,
            routes,
        }
    }

    /// How many rx ports the node of [`dnode_wire`] `node` has (0:
    /// unknown node).
    #[inline(always)]
    fn route(&mut self, node: u16) -> usize {
        if self.memo.node_wire != u32::from(node) {
            self.load_route(node);
        }
        self.memo.n
    }

    #[inline(never)]
    fn load_route(&mut self, node: u16) {
        let m = &mut *self.memo;
        m.node_wire = u32::from(node);
        let dnode = node.swap_bytes();
        m.n = 0;
        m.dst = [0; 256];
        if let Some(macs) = self.routes.nodes.get(&dnode) {
            m.n = macs.len().min(MAX_PORTS);
            for (w, mac) in m.dst[..MAX_PORTS].iter_mut().zip(macs.iter()) {
                *w = mac_word(mac) | MAC_VALID;
            }
            m.dst[usize::from(NO_PORT)] = m.dst[0];
        }
    }

    /// The ports of a frame with DMPD key `wire` (header bytes 22..30:
    /// snode, dnode, spipe, dpipe, read as a little-endian word) and
    /// `ptype`: per flow through the cache with balancing on; the paper's
    /// baseline (hash modulo the port counts) with it off.
    #[inline(always)]
    fn decide(&mut self, wire: u64, ptype: u8) -> Ports {
        if self.balancing {
            self.decide_as::<true>(wire, ptype)
        } else {
            self.decide_as::<false>(wire, ptype)
        }
    }

    /// [`Self::decide`] with the balancing switch known at compile time:
    /// the received-frame loop is built once for each.
    #[inline(always)]
    fn decide_as<const BALANCING: bool>(&mut self, wire: u64, ptype: u8) -> Ports {
        if BALANCING {
            return self
                .cache
                .decide_ports(self.balancer, self.toeplitz, self.lookup, wire, ptype);
        }
        let hash = self
            .toeplitz
            .hash_array(&DmpdTuple::key_from_parts(wire.swap_bytes(), ptype));
        let n_ports = self.shared.ports.len() as u32;
        let n_rx = self.route(dnode_wire(wire));
        Ports {
            tx: (hash % n_ports) as u8,
            rx: if n_rx > 0 {
                (hash % n_rx as u32) as u8
            } else {
                NO_PORT
            },
        }
    }

    /// Where a frame decided `d`, to the node of [`dnode_wire`] `node`,
    /// goes: its tx port's state and the destination MAC ([`mac_word`]).
    #[inline(always)]
    fn place(&mut self, d: Ports, node: u16) -> Result<(&mut PortState, u64), Unsent> {
        // The memo for this node (its port count is not needed here).
        self.route(node);
        let dst = self.memo.dst[usize::from(d.rx)];
        // NO_PORT, or a port beyond ours (a balancer bug: counted).
        let st = self.ps.get_mut(usize::from(d.tx)).ok_or(Unsent::NoPort)?;
        if dst & MAC_VALID == 0 {
            return Err(Unsent::NoRoute);
        }
        Ok((st, dst))
    }

    /// Decides the ports of a frame (whose DMPD header was checked), sets
    /// its MACs and stages it on its tx port; gives it back if it cannot
    /// be.
    #[inline(always)]
    fn stage(&mut self, mut m: Mbuf) -> Result<(), (Mbuf, Unsent)> {
        let len = m.len();
        let Some(h) = m.data_mut().first_chunk_mut::<HEADER_LEN>() else {
            return Err((m, Unsent::NoPort));
        };
        let wire = addrs_wire(h);
        let d = self.decide(wire, ptype_of(h));
        let macs = &self.consts.src_macs;
        let (st, dst) = match self.place(d, dnode_wire(wire)) {
            Ok(p) => p,
            Err(why) => return Err((m, why)),
        };
        // The application's frame: its EtherType is not ours to assume.
        h[..6].copy_from_slice(&dst.to_le_bytes()[..6]);
        h[6..12].copy_from_slice(&macs[usize::from(d.tx) % MAX_PORTS]);
        st.stage(m, len).map_err(|m| (m, Unsent::Full))
    }

    /// Turns a received data frame for an echo pipe round (its header
    /// `h`, checked by the matcher), decides its ports and sets its MACs.
    /// Returns its tx port's state, to stage it; on an error the frame is
    /// turned round but its MACs are untouched.
    #[inline(always)]
    fn echo<const BALANCING: bool>(
        &mut self,
        h: &mut [u8; HEADER_LEN],
    ) -> Result<&mut PortState, Unsent> {
        let wire = turn_around(h);
        let d = self.decide_as::<BALANCING>(wire, ptype_of(h));
        let src = self.consts.src_words[usize::from(d.tx)];
        let (st, dst) = self.place(d, dnode_wire(wire))?;
        set_macs(h, dst, src);
        Ok(st)
    }

    /// The common case of a direct echo run with balancing on, in a loop
    /// of its own that keeps little state: frames of pipe `id_wire`
    /// ([`dpipe_wire`]) that the matcher accepts, whose flow is in the
    /// cache, whose destination is the memo's node with a known MAC and
    /// whose tx port has room are turned round, addressed and staged,
    /// exactly as [`Self::echo`] and a stage would. Stops at the first
    /// frame that is anything else and gives it back as it came, for the
    /// general path (which decides it, counts it or takes a new run).
    /// Returns that frame (`None`: the burst is done) and what was staged.
    #[inline(never)]
    fn echo_fast<I: Iterator<Item = Mbuf>>(
        &mut self,
        frames: &mut I,
        id_wire: u16,
    ) -> (Option<Mbuf>, Echoed) {
        let matcher = self.consts.matcher;
        let node = self.memo.node_wire;
        let mut done = Echoed::default();
        let next = loop {
            let Some(mut m) = frames.next() else {
                break None;
            };
            let len = m.len();
            let Some(h) = matcher.check_mut(m.data_mut()) else {
                break Some(m);
            };
            let wire = turned_wire(addrs_wire(h));
            if dpipe_wire(h) != id_wire || u32::from(dnode_wire(wire)) != node {
                break Some(m);
            }
            let Some(p) = self
                .cache
                .hit(self.balancer, self.lookup, wire, ptype_of(h))
            else {
                break Some(m);
            };
            let dst = self.memo.dst[usize::from(p.rx)];
            let src = self.consts.src_words[usize::from(p.tx)];
            let Some(st) = self.ps.get_mut(usize::from(p.tx)) else {
                break Some(m);
            };
            if dst & MAC_VALID == 0 {
                break Some(m);
            }
            set_addrs_wire(h, wire);
            set_macs(h, dst, src);
            match st.stage(m, len) {
                Ok(()) => {
                    done.frames += 1;
                    done.bytes += len as u64;
                }
                // Staging is full: the frame goes back to the general path
                // as it came, turned round again (it moves the run to the
                // pipe's ring, whose path sets the MACs again).
                Err(mut m) => {
                    turn_back(&mut m);
                    break Some(m);
                }
            }
        };
        self.cache.count_hits(self.balancer, done.frames);
        (next, done)
    }
}

/// Sets a data frame's MACs: `dst` and `src` as [`mac_word`]s, `src` with
/// the EtherType above (the matcher checked the frame's), in two
/// overlapping stores: the destination MAC (and two bytes the second
/// store overwrites), then the source MAC and the EtherType.
#[inline(always)]
fn set_macs(h: &mut [u8; HEADER_LEN], dst: u64, src: u64) {
    *h.first_chunk_mut::<8>().expect("in the header") = dst.to_le_bytes();
    *h[6..].first_chunk_mut::<8>().expect("in the header") = src.to_le_bytes();
}

/// Turns a frame that was turned round for the direct echo back as it
/// came, for a path that turns it itself.
#[inline(never)]
fn turn_back(m: &mut Mbuf) {
    if let Some(h) = m.data_mut().first_chunk_mut::<HEADER_LEN>() {
        turn_around(h);
    }
}

/// The destination node of a header's [`addrs_wire`] word.
#[cfg(test)]
fn dnode_of_wire(wire: u64) -> u16 {
    DmpdTuple::dnode_of_addrs(wire.swap_bytes())
}

/// The destination node's two bytes in a header's [`addrs_wire`] word,
/// as they lie in memory (`dnode_of_wire(w) == dnode_wire(w).swap_bytes()`):
/// what the route memo is keyed by, with no byte swap per frame.
#[inline(always)]
fn dnode_wire(wire: u64) -> u16 {
    (wire >> 16) as u16
}

/// How the frames of the current run (same pipe) are handled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RunMode {
    /// Before the first data frame of a burst.
    Idle,
    /// No such pipe: counted and freed.
    NoPipe,
    /// Onto the pipe's rx ring (or, for an echo pipe that cannot cut
    /// through, its tx ring).
    Ring,
    /// An echo pipe without a rate limit and with an empty tx ring: each
    /// frame is turned round and staged on its tx port right here, instead
    /// of a ring hop and a later pull.
    Direct,
}

/// The pipe of the current run of data frames, looked up once per run,
/// and what the run's direct echo did, added to the lcore's [`EchoTally`]
/// when the run ends. A run can span the bursts of one loop step: frames
/// of one pipe on several ports cost one lookup, not one per burst.
struct Run<'v> {
    /// The pipe id as [`dpipe_wire`] reads it (no byte swap per frame),
    /// or `u32::MAX` before the first data frame.
    id_wire: u32,
    pipe: Option<&'v Arc<PipeShared>>,
    mode: RunMode,
    /// Frames and bytes of the direct echo, staged or not.
    echoed: Echoed,
    /// Of which not staged (counted per cause in `datapath`).
    unsent: Echoed,
}

/// Frames and bytes of a run's direct echo (or a part of them): kept
/// apart from [`Run`] so that they live in registers.
#[derive(Clone, Copy, Default)]
struct Echoed {
    frames: u64,
    bytes: u64,
}

impl Echoed {
    #[inline(always)]
    fn add(&mut self, o: Echoed) {
        self.frames += o.frames;
        self.bytes += o.bytes;
    }
}

impl<'v> Run<'v> {
    fn idle() -> Run<'v> {
        Run {
            id_wire: u32::MAX,
            pipe: None,
            mode: RunMode::Idle,
            echoed: Echoed::default(),
            unsent: Echoed::default(),
        }
    }

    /// The run of pipe `id_wire` ([`dpipe_wire`]).
    #[inline(never)]
    fn open(view: &'v PipeView, id_wire: u16) -> Run<'v> {
        let pipe = view.get(id_wire.swap_bytes());
        let mode = match pipe {
            None => RunMode::NoPipe,
            Some(p) => {
                if p.echo.load(Relaxed) && p.effective_rate_bps() == 0 && p.tx.count() == 0 {
                    RunMode::Direct
                } else {
                    RunMode::Ring
                }
            }
        };
        Run {
            id_wire: u32::from(id_wire),
            pipe,
            mode,
            ..Run::idle()
        }
    }

    /// Hands the frames of the run queued in `ring` (this burst's, which
    /// came in on the queue counted by `qc`) to the pipe.
    #[inline]
    fn deliver(&self, shared: &Shared, qc: &C, ring: &mut MbufBurst<BURST>) {
        if let Some(p) = self.pipe {
            deliver_run(shared, qc, p, ring);
        }
    }

    /// Ends the run: its direct part goes to the tally at time `now`
    /// (its ring part was delivered).
    #[inline]
    fn close(self, shared: &Shared, tally: &mut EchoTally, now: u64) {
        if let Some(p) = self.pipe {
            if self.echoed.frames > 0 {
                tally.add(shared, p, &self, now);
            }
        }
    }
}

/// How long the direct echo's counts may wait in an [`EchoTally`] while
/// the lcore is busy (it adds them when it idles).
const TALLY_FLUSH_NS: u64 = 100_000;

/// What the direct echo did for one pipe and is not yet in the pipe's
/// shared counters. Adding runs to them is five locked adds to a line
/// the application's side reads, once per loop step (2 us at 60 Mpps):
/// 2% of the loop's time. The tally adds them up when another pipe's run
/// ends, when the lcore idles, and at least every [`TALLY_FLUSH_NS`].
/// It does not keep the pipe open: a pipe closed meanwhile takes its
/// counts with it, as it takes the rest of its counters.
#[derive(Default)]
struct EchoTally {
    pipe: Weak<PipeShared>,
    /// Frames and bytes echoed, staged or not.
    echoed: Echoed,
    /// Of which not staged (counted per cause in `datapath` already).
    unsent: Echoed,
    /// When the oldest count in here was taken.
    since_ns: u64,
}

impl EchoTally {
    #[inline]
    fn add(&mut self, shared: &Shared, pipe: &Arc<PipeShared>, run: &Run<'_>, now: u64) {
        // A `Weak` keeps the allocation: no other pipe can be at its
        // address while the tally names it.
        if !std::ptr::eq(self.pipe.as_ptr(), Arc::as_ptr(pipe)) {
            self.flush(shared, now);
            self.pipe = Arc::downgrade(pipe);
        }
        if self.echoed.frames == 0 {
            self.since_ns = now;
        }
        self.echoed.add(run.echoed);
        self.unsent.add(run.unsent);
    }

    /// Adds the counts to the pipe's counters (if it is still open) and
    /// to the data path's.
    #[inline(never)]
    fn flush(&mut self, shared: &Shared, now: u64) {
        self.since_ns = now;
        let echoed = std::mem::take(&mut self.echoed);
        if echoed.frames == 0 {
            return;
        }
        let unsent = std::mem::take(&mut self.unsent);
        shared
            .datapath
            .echo_direct
            .fetch_add(echoed.frames, Relaxed);
        let Some(pipe) = self.pipe.upgrade() else {
            return;
        };
        let c = &pipe.counters;
        c.rx_msgs.fetch_add(echoed.frames, Relaxed);
        c.rx_bytes.fetch_add(echoed.bytes, Relaxed);
        c.tx_msgs.fetch_add(echoed.frames - unsent.frames, Relaxed);
        c.tx_bytes.fetch_add(echoed.bytes - unsent.bytes, Relaxed);
        if unsent.frames > 0 {
            c.tx_dropped.fetch_add(unsent.frames, Relaxed);
        }
    }
}

/// Sends a received burst where each frame belongs: control frames to the
/// control lcore (one enqueue per burst), data frames to their pipe (one
/// enqueue per run of frames for the same pipe), or, for an echo pipe,
/// straight back out through the balancer. Every drop is counted and
/// freed. Not inlined: the per-frame loop gets the registers to itself.
///
/// `BALANCING` is the switch read for this loop step: one build of the
/// loop each, so that the per-frame path does not test it.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn dispatch_burst<'v, const BALANCING: bool>(
    shared: &Shared,
    view: &'v PipeView,
    qc: &C,
    port: u16,
    rx: &mut MbufBurst<BURST>,
    s: &mut Scratch,
    tx: &mut TxPath<'_>,
    run: &mut Run<'v>,
    tally: &mut EchoTally,
) {
    let mut bytes = 0u64;
    let (mut foreign, mut malformed, mut misdelivered, mut no_pipe) = (0u64, 0u64, 0u64, 0u64);
    // This burst's part of the run, in registers.
    let mut echoed = Echoed::default();
    let matcher = tx.consts.matcher;
    let mut frames = rx.drain_prefetched();
    loop {
        // Within a direct echo run, the common case takes the fast loop;
        // what it gives back, and everything else, is handled here.
        let next = if BALANCING && run.mode == RunMode::Direct {
            let (next, done) = tx.echo_fast(&mut frames, run.id_wire as u16);
            echoed.add(done);
            bytes += done.bytes;
            next
        } else {
            frames.next()
        };
        let Some(mut m) = next else { break };
        let len = m.len();
        bytes += len as u64;
        let Some(h) = matcher.check_mut(m.data_mut()) else {
            match classify_other(shared, m.data()) {
                Verdict::Control => {
                    // The control lcore needs the local port a frame came in on.
                    m.set_port(port);
                    let _ = s.ctl.push(m);
                }
                Verdict::Foreign => foreign += 1,
                Verdict::Malformed => malformed += 1,
                Verdict::Misdelivered => misdelivered += 1,
            }
            continue;
        };
        let id = dpipe_wire(h);
        if run.id_wire != u32::from(id) {
            run.echoed.add(std::mem::take(&mut echoed));
            run.deliver(shared, qc, &mut s.run);
            std::mem::replace(run, Run::open(view, id)).close(shared, tally, tx.now);
        }
        if run.mode != RunMode::Direct {
            if run.mode == RunMode::Ring {
                let _ = s.run.push(m);
            } else {
                no_pipe += 1;
            }
            continue;
        }
        match tx.echo::<BALANCING>(h) {
            Ok(st) => match st.stage(m, len) {
                Ok(()) => {
                    echoed.frames += 1;
                    echoed.bytes += len as u64;
                }
                Err(mut m) => {
                    // Staging is full: the rest of the run waits on the
                    // pipe's tx ring, behind this frame, so order is kept.
                    // The ring path turns frames round and sets their MACs
                    // itself.
                    turn_back(&mut m);
                    run.mode = RunMode::Ring;
                    let _ = s.run.push(m);
                }
            },
            Err(why) => {
                // Counted and freed.
                let one = Echoed {
                    frames: 1,
                    bytes: len as u64,
                };
                echoed.add(one);
                run.unsent.add(one);
                let dp = &shared.datapath;
                match why {
                    Unsent::NoRoute => dp.no_route.fetch_add(1, Relaxed),
                    _ => dp.no_port.fetch_add(1, Relaxed),
                };
            }
        }
    }
    run.echoed.add(echoed);
    run.deliver(shared, qc, &mut s.run);
    if !s.ctl.is_empty() {
        shared.public_ring.enqueue_mbufs(&mut s.ctl);
        if !s.ctl.is_empty() {
            let n = s.ctl.len() as u64;
            C::bump(&qc.ring_full, n);
            C::bump(&qc.drops, n);
            s.ctl.clear();
        }
    }
    C::bump(&qc.rx_bytes, bytes);
    let dropped = foreign + malformed + misdelivered + no_pipe;
    if dropped > 0 {
        let dp = &shared.datapath;
        C::bump(&qc.drops, dropped);
        C::bump(&qc.errors, malformed);
        dp.foreign.fetch_add(foreign, Relaxed);
        dp.malformed.fetch_add(malformed, Relaxed);
        dp.misdelivered.fetch_add(misdelivered, Relaxed);
        dp.no_pipe.fetch_add(no_pipe, Relaxed);
    }
}

/// Hands a run of data frames to their pipe: its rx ring, or, in echo
/// mode, turned around onto its tx ring within the pipe's buffer. Frames
/// that do not fit are freed and counted.
#[inline]
fn deliver_run(shared: &Shared, qc: &C, pipe: &PipeShared, run: &mut MbufBurst<BURST>) {
    let n = run.len();
    if n == 0 {
        return;
    }
    let bytes: u64 = run.as_slice().iter().map(|m| m.len() as u64).sum();
    let mut lost_bytes = 0u64;
    let mut over = 0usize;
    if pipe.echo.load(Relaxed) {
        for m in run.as_mut_slice() {
            // Frames of a run passed the matcher: the header is whole.
            if let Some(h) = m.data_mut().first_chunk_mut::<HEADER_LEN>() {
                turn_around(h);
            }
        }
        let room = pipe.buffer.load(Relaxed).saturating_sub(pipe.tx.count()) as usize;
        // Beyond the buffer: drop the tail.
        while run.len() > room {
            if let Some(m) = run.pop() {
                lost_bytes += m.len() as u64;
                over += 1;
            }
        }
        let queued = pipe.tx.enqueue_mbufs(run);
        shared
            .datapath
            .echo_queued
            .fetch_add(queued as u64, Relaxed);
    } else {
        pipe.rx.enqueue_mbufs(run);
    }
    lost_bytes += run.as_slice().iter().map(|m| m.len() as u64).sum::<u64>();
    let lost = run.len() + over;
    run.clear();
    if lost > 0 {
        pipe.counters.rx_dropped.fetch_add(lost as u64, Relaxed);
        C::bump(&qc.ring_full, lost as u64);
        C::bump(&qc.drops, lost as u64);
    }
    if lost < n {
        pipe.counters.rx_msgs.fetch_add((n - lost) as u64, Relaxed);
        pipe.counters
            .rx_bytes
            .fetch_add(bytes - lost_bytes, Relaxed);
    }
}

/// Dequeues up to `max` frames of one pipe (within its rate), decides
/// their ports (per flow) and stages them. Returns how many were staged.
#[inline]
fn pull_pipe(
    tx: &mut TxPath<'_>,
    pipe: &PipeShared,
    pacer: &mut Pacer,
    max: usize,
    burst: &mut MbufBurst<BURST>,
) -> usize {
    let now = tx.now;
    let rate = pipe.effective_rate_bps();
    let mut n = max;
    if rate > 0 {
        if pacer.rate_bps() != rate {
            pacer.set_rate(rate);
        }
        // Whole frames only: assume full-size frames when sizing the pull,
        // then charge what was really taken.
        let avail = pacer.available(now);
        n = n.min((avail / wire_bits(1514)) as usize);
        if n == 0 {
            if pipe.tx.count() > 0 {
                pipe.counters.tx_deferred.fetch_add(1, Relaxed);
            }
            return 0;
        }
    }
    // At most what the pipe's rate and the ports' staging room allow.
    let got = pipe.tx.dequeue_mbufs_max(burst, n);
    if got == 0 {
        return 0;
    }
    let (mut staged, mut bytes) = (0usize, 0u64);
    let (mut malformed, mut no_port, mut no_route, mut full) = (0u64, 0u64, 0u64, 0u64);
    for m in burst.drain() {
        let len = m.len();
        if rate > 0 {
            let _ = pacer.try_take(now, wire_bits(len));
        }
        if len < HEADER_LEN {
            malformed += 1;
            continue;
        }
        match tx.stage(m) {
            Ok(()) => {
                staged += 1;
                bytes += len as u64;
            }
            Err((_, Unsent::NoPort)) => no_port += 1,
            Err((_, Unsent::NoRoute)) => no_route += 1,
            // Cannot happen: the caller checked room on every port. Count
            // it rather than lose it silently.
            Err((_, Unsent::Full)) => full += 1,
        }
    }
    let dp = &tx.shared.datapath;
    if full > 0 {
        pipe.counters.tx_dropped.fetch_add(full, Relaxed);
    }
    if malformed > 0 {
        dp.malformed.fetch_add(malformed, Relaxed);
        pipe.counters.tx_dropped.fetch_add(malformed, Relaxed);
    }
    if no_port + no_route > 0 {
        dp.no_port.fetch_add(no_port, Relaxed);
        dp.no_route.fetch_add(no_route, Relaxed);
        pipe.counters
            .tx_dropped
            .fetch_add(no_port + no_route, Relaxed);
    }
    pipe.counters.tx_msgs.fetch_add(staged as u64, Relaxed);
    pipe.counters.tx_bytes.fetch_add(bytes, Relaxed);
    staged
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The flow clock keeps the balancer's promise with the configured
    /// gap: a flow that carried a frame less than the gap ago is never
    /// seen idle, and one idle for the gap and two ticks always is. It
    /// ticks: a whole tick reads one time.
    #[test]
    fn the_flow_clock_never_shortens_the_idle_gap() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let tick = FLOW_TICK_NS;
        for gap_ms in [0u64, 1, 50, 1000] {
            let gap = gap_ms * 1_000_000;
            let balancer_gap = balancer_idle_gap_ns(gap_ms);
            for i in 0..100_000u64 {
                // Times on and next to tick edges as well as anywhere.
                let t = match i % 3 {
                    0 => rng.gen_range(0..1u64 << 40),
                    1 => rng.gen_range(0..1u64 << 26) * tick,
                    _ => rng.gen_range(1..1u64 << 26) * tick - 1,
                };
                let d = match i % 4 {
                    0 => rng.gen_range(0..gap + 3 * tick),
                    1 => gap.saturating_sub(rng.gen_range(0..2)),
                    2 => gap + 2 * tick - rng.gen_range(0..2),
                    _ => rng.gen_range(0..3 * tick),
                };
                let n = t + d;
                let seen = flow_clock(n) - flow_clock(t);
                if d < gap {
                    assert!(seen < balancer_gap, "gap {gap_ms} ms: {t} -> {n} seen idle");
                }
                if d >= gap + 2 * tick {
                    assert!(
                        seen >= balancer_gap,
                        "gap {gap_ms} ms: {t} -> {n} seen active"
                    );
                }
                assert!(flow_clock(t) > t && flow_clock(t) <= t + tick);
                assert_eq!(flow_clock(t) % tick, 0);
                assert_eq!(flow_clock(t - t % tick), flow_clock(t | (tick - 1)));
            }
        }
    }

    /// dmpd's header word and the balancer's key tuple agree: the flow
    /// cache and the Toeplitz hash see the frame's five-tuple.
    #[test]
    fn header_word_and_ptype_are_the_tuple_layout() {
        let mut h = [0u8; HEADER_LEN];
        let mut f = DataFrame::new_unchecked(&mut h[..]);
        f.set_snode(0x0102);
        f.set_dnode(0x0304);
        f.set_spipe(0x0506);
        f.set_dpipe(0x0708);
        f.set_ptype(0x09);
        let t = DmpdTuple {
            snode: 0x0102,
            dnode: 0x0304,
            spipe: 0x0506,
            dpipe: 0x0708,
            ptype: 0x09,
        };
        let h = &mut h;
        let wire = addrs_wire(h);
        assert_eq!(
            DmpdTuple::key_from_parts(wire.swap_bytes(), ptype_of(h)),
            t.to_bytes()
        );
        assert_eq!(dnode_of_wire(wire), 0x0304);
        assert_eq!(dnode_wire(wire).swap_bytes(), 0x0304);
        assert_eq!(dpipe_wire(h).swap_bytes(), 0x0708);
        let turned = turn_around(h);
        assert_eq!(dnode_of_wire(turned), 0x0102);
        assert_eq!(dnode_wire(turned).swap_bytes(), 0x0102);
        assert_eq!(dmpd::wire::data::dpipe_of(h), 0x0506);
        assert_eq!(dpipe_wire(h).swap_bytes(), 0x0506);
    }

    #[test]
    fn src_words_hold_the_mac_then_the_ethertype() {
        let m = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
        let w = mac_word(&m);
        assert_eq!(&w.to_le_bytes()[..6], &m);
        assert_eq!(&w.to_le_bytes()[6..], &[0, 0]);
    }
}
