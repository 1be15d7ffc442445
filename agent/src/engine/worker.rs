//! The polling lcore loop, after DPDK's l2fwd: read the TSC, receive a burst
//! per queue, dispatch, then send control frames first and data frames from
//! the pipes in priority order through the balancer, paced per port. It
//! never allocates, locks or makes a syscall, except the idle back-off's
//! sleep when there is nothing to do.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use dmpd::wire::data::{DataFrame, HEADER_LEN};
use dmpd::wire::Kind;
use ffi::{cycles, MbufBurst, QueueId};
use lb::balancer::{Balancer, Decision, NO_PORT};
use lb::toeplitz::Toeplitz;
use lb::tuple::DmpdTuple;

use super::counters::QueueCounters as C;
use super::pacer::{wire_bits, Pacer};
use super::pipe::{PipeShared, MAX_PIPES};
use super::shared::Shared;

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

struct PortState {
    staging: MbufBurst<STAGING>,
    pacer: Option<Pacer>,
    ctl_pending: MbufBurst<BURST>,
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
    let n_ports = shared.ports.len();
    let mut ps: Vec<PortState> = (0..n_ports)
        .map(|i| {
            let p = &shared.ports[i];
            PortState {
                staging: MbufBurst::new(),
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
    let mut idle_run: u32 = 0;
    let mut sleep_us: u32 = 16;
    let my_ports = w.ports.clone();

    while !shared.quit.load(Relaxed) {
        let now = now_ns();
        let mut work = 0usize;
        C::bump(&lc.polls, 1);

        // 1. Receive and dispatch.
        for &pi in &my_ports {
            let port = &shared.ports[pi];
            for q in 0..port.rx_queues {
                let n = port.port.rx_burst(QueueId::new(q), &mut rx);
                if n == 0 {
                    continue;
                }
                work += n;
                let qc = &port.rx_counters[q as usize];
                C::bump(&lc.rx_packets, n as u64);
                C::bump(&qc.rx_packets, n as u64);
                dispatch_burst(&shared, qc, pi as u16, &mut rx, &mut scratch);
            }
        }

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

        // 3. Data from pipes, highest priority first, while every owned
        // port can stage a full burst (back-pressure into the pipe rings).
        let room = my_ports
            .iter()
            .map(|&pi| STAGING - ps[pi].staging.len())
            .min()
            .unwrap_or(0);
        if room >= BURST {
            let pipes = shared.pipes.by_priority.load();
            let mut budget = room;
            'pipes: for pipe in pipes.iter() {
                // Bursts from this pipe until it runs dry (or its rate
                // stops it), then the next one.
                loop {
                    if budget == 0 {
                        break 'pipes;
                    }
                    let want = budget.min(BURST);
                    let sent = pull_pipe(
                        &shared,
                        &mut w,
                        &toeplitz,
                        pipe,
                        &mut pipe_pacers[pipe.id as usize],
                        now,
                        want,
                        &mut tx,
                        &mut scratch,
                        &mut ps,
                    );
                    budget -= sent;
                    work += sent;
                    if sent < want {
                        break;
                    }
                }
            }
        }

        // 4. Flush staged data, paced.
        for &pi in &my_ports {
            let port = &shared.ports[pi];
            let st = &mut ps[pi];
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
            let before: u64 = st.staging.as_slice()[..allowed]
                .iter()
                .map(|m| m.len() as u64)
                .sum();
            let sent = port
                .port
                .tx_burst_max(QueueId::new(q), &mut st.staging, allowed);
            let unsent_bytes: u64 = if sent < allowed {
                st.staging.as_slice()[..allowed - sent]
                    .iter()
                    .map(|m| m.len() as u64)
                    .sum()
            } else {
                0
            };
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
            C::bump(&tc.tx_bytes, before - unsent_bytes);
            C::bump(&lc.tx_packets, sent as u64);
            work += sent;
        }

        // 5. Idle back-off.
        if work == 0 {
            C::bump(&lc.idle_polls, 1);
            idle_run = idle_run.saturating_add(1);
            if idle_run >= w.backoff.after_polls {
                C::bump(&lc.sleeps, 1);
                std::thread::sleep(std::time::Duration::from_micros(sleep_us as u64));
                sleep_us = (sleep_us * 2).min(w.backoff.max_sleep_us.max(1));
            } else {
                cycles::pause();
            }
        } else {
            idle_run = 0;
            sleep_us = 16;
        }
    }
    0
}

/// Per-burst work space of one polling lcore (built once, reused).
struct Scratch {
    /// Control frames of the burst, for the public ring.
    ctl: MbufBurst<BURST>,
    /// A run of data frames for the same pipe.
    run: MbufBurst<BURST>,
    /// Frames of a pipe pull that passed the length check.
    good: MbufBurst<BURST>,
    keys: [[u8; DmpdTuple::LEN]; BURST],
    dnodes: [u16; BURST],
    hashes: [u32; BURST],
    decisions: [Decision; BURST],
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            ctl: MbufBurst::new(),
            run: MbufBurst::new(),
            good: MbufBurst::new(),
            keys: [[0; DmpdTuple::LEN]; BURST],
            dnodes: [0; BURST],
            hashes: [0; BURST],
            decisions: [Decision {
                tx_port: NO_PORT,
                rx_port: None,
            }; BURST],
        }
    }
}

/// Why a received frame is not delivered.
enum Verdict {
    Control,
    Data(u16),
    Foreign,
    Malformed,
    Misdelivered,
}

#[inline(always)]
fn classify(shared: &Shared, d: &[u8]) -> Verdict {
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
        Ok(f) => Verdict::Data(f.dpipe()),
    }
}

/// Sends a received burst where each frame belongs: control frames to the
/// control lcore (one enqueue per burst), data frames to their pipe (one
/// enqueue per run of frames for the same pipe). Every drop is counted and
/// freed.
#[inline]
fn dispatch_burst(shared: &Shared, qc: &C, port: u16, rx: &mut MbufBurst<BURST>, s: &mut Scratch) {
    let mut bytes = 0u64;
    let (mut foreign, mut malformed, mut misdelivered, mut no_pipe) = (0u64, 0u64, 0u64, 0u64);
    // The pipe of the current run (id, pipe), looked up once per run.
    let mut cur: Option<(u16, Option<PipeGuard>)> = None;
    for mut m in rx.drain() {
        bytes += m.len() as u64;
        m.set_port(port);
        match classify(shared, m.data()) {
            Verdict::Control => {
                let _ = s.ctl.push(m);
            }
            Verdict::Data(id) => {
                if cur.as_ref().map(|c| c.0) != Some(id) {
                    if let Some((_, Some(p))) = &cur {
                        deliver_run(qc, pipe_of(p), &mut s.run);
                    }
                    cur = Some((id, shared.pipes.load(id)));
                }
                match &cur {
                    Some((_, Some(_))) => {
                        let _ = s.run.push(m);
                    }
                    _ => no_pipe += 1,
                }
            }
            Verdict::Foreign => foreign += 1,
            Verdict::Malformed => malformed += 1,
            Verdict::Misdelivered => misdelivered += 1,
        }
    }
    if let Some((_, Some(p))) = &cur {
        deliver_run(qc, pipe_of(p), &mut s.run);
    }
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

/// A pipe borrowed from the pipe table for the length of a run.
type PipeGuard = arc_swap::Guard<Option<Arc<PipeShared>>>;

#[inline(always)]
fn pipe_of(g: &PipeGuard) -> &PipeShared {
    g.as_deref()
        .expect("PipeTable::load returns open pipes only")
}

/// Hands a run of data frames to their pipe: its rx ring, or, in echo
/// mode, turned around onto its tx ring within the pipe's buffer. Frames
/// that do not fit are freed and counted.
#[inline]
fn deliver_run(qc: &C, pipe: &PipeShared, run: &mut MbufBurst<BURST>) {
    let n = run.len();
    if n == 0 {
        return;
    }
    let bytes: u64 = run.as_slice().iter().map(|m| m.len() as u64).sum();
    let mut lost_bytes = 0u64;
    let mut over = 0usize;
    if pipe.echo.load(Relaxed) {
        for m in run.as_mut_slice() {
            turn_around(m.data_mut());
        }
        let room = pipe.buffer.load(Relaxed).saturating_sub(pipe.tx.count()) as usize;
        // Beyond the buffer: drop the tail.
        while run.len() > room {
            if let Some(m) = run.pop() {
                lost_bytes += m.len() as u64;
                over += 1;
            }
        }
        pipe.tx.enqueue_mbufs(run);
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

/// Swaps source and destination node and pipe of a data frame (whose
/// header the caller checked), so that it goes back where it came from.
#[inline(always)]
fn turn_around(d: &mut [u8]) {
    // snode 22..24 <-> dnode 24..26, spipe 26..28 <-> dpipe 28..30.
    let h: &mut [u8; 8] = (&mut d[22..30]).try_into().expect("checked header");
    let v = u64::from_be_bytes(*h);
    let swapped = (v >> 16 & 0x0000_ffff_0000_ffff) | (v << 16 & 0xffff_0000_ffff_0000);
    *h = swapped.to_be_bytes();
}

/// The hash key of a data frame (whose header the caller checked), in
/// [`DmpdTuple::to_bytes`]'s layout: snode, dnode, spipe, dpipe, ptype.
#[inline(always)]
fn key_of(d: &[u8]) -> [u8; DmpdTuple::LEN] {
    [
        d[22], d[23], d[24], d[25], d[26], d[27], d[28], d[29], d[17],
    ]
}

/// Dequeues up to `max` frames of one pipe (within its rate), balances them
/// to ports (one Toeplitz burst and one balancer burst) and stages them.
/// Returns how many were staged.
#[allow(clippy::too_many_arguments)]
#[inline]
fn pull_pipe(
    shared: &Shared,
    w: &mut Worker,
    toeplitz: &Toeplitz,
    pipe: &PipeShared,
    pacer: &mut Pacer,
    now: u64,
    max: usize,
    tx: &mut MbufBurst<BURST>,
    s: &mut Scratch,
    ps: &mut [PortState],
) -> usize {
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
    let got = pipe.tx.dequeue_mbufs_max(tx, n);
    if got == 0 {
        return 0;
    }
    // Parse: keep frames with a whole header, note their keys.
    let mut malformed = 0u64;
    for m in tx.drain() {
        let len = m.len();
        if rate > 0 {
            let _ = pacer.try_take(now, wire_bits(len));
        }
        if len < HEADER_LEN {
            malformed += 1;
            continue;
        }
        let i = s.good.len();
        let d = m.data();
        s.keys[i] = key_of(d);
        s.dnodes[i] = u16::from_be_bytes([d[24], d[25]]);
        let _ = s.good.push(m);
    }
    if malformed > 0 {
        shared.datapath.malformed.fetch_add(malformed, Relaxed);
        pipe.counters.tx_dropped.fetch_add(malformed, Relaxed);
    }
    let k = s.good.len();
    if k == 0 {
        return 0;
    }
    toeplitz.hash_burst(&s.keys[..k], &mut s.hashes[..k]);
    let routes = shared.routes.load();
    let n_ports = shared.ports.len() as u32;
    if shared.balancing.load(Relaxed) {
        w.balancer
            .decide_burst(now, &s.hashes[..k], &s.dnodes[..k], &mut s.decisions[..k]);
    } else {
        // The paper's baseline: plain hash modulo the port count, rx port
        // chosen the same way.
        for i in 0..k {
            let hash = s.hashes[i];
            s.decisions[i] = Decision {
                tx_port: (hash % n_ports) as u8,
                rx_port: routes
                    .nodes
                    .get(&s.dnodes[i])
                    .map(|macs| (hash % macs.len().max(1) as u32) as u8),
            };
        }
    }
    let (mut staged, mut bytes, mut no_port, mut no_route) = (0usize, 0u64, 0u64, 0u64);
    // Route of the last destination: bursts mostly go to one node.
    let mut last: Option<(u16, Option<&Vec<[u8; 6]>>)> = None;
    for (i, mut m) in s.good.drain().enumerate() {
        let d = s.decisions[i];
        let dnode = s.dnodes[i];
        if d.tx_port == NO_PORT || u32::from(d.tx_port) >= n_ports {
            no_port += 1;
            continue;
        }
        let macs = match last {
            Some((node, macs)) if node == dnode => macs,
            _ => {
                let macs = routes.nodes.get(&dnode);
                last = Some((dnode, macs));
                macs
            }
        };
        let Some(dst_mac) = macs.and_then(|macs| macs.get(d.rx_port.unwrap_or(0) as usize)) else {
            no_route += 1;
            continue;
        };
        let tp = d.tx_port as usize;
        bytes += m.len() as u64;
        {
            let b = m.data_mut();
            b[0..6].copy_from_slice(dst_mac);
            b[6..12].copy_from_slice(&shared.ports[tp].mac);
        }
        if let Err(m) = ps[tp].staging.push(m) {
            // Cannot happen: the caller checked room on every port. Count
            // it rather than lose it silently.
            drop(m);
            C::bump(&shared.ports[tp].tx_counters[0].drops, 1);
            continue;
        }
        staged += 1;
    }
    if no_port + no_route > 0 {
        shared.datapath.no_port.fetch_add(no_port, Relaxed);
        shared.datapath.no_route.fetch_add(no_route, Relaxed);
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

    #[test]
    fn turn_around_swaps_nodes_and_pipes_only() {
        let mut d: Vec<u8> = (0..64).collect();
        let before = d.clone();
        turn_around(&mut d);
        assert_eq!(&d[22..24], &before[24..26], "snode <- dnode");
        assert_eq!(&d[24..26], &before[22..24], "dnode <- snode");
        assert_eq!(&d[26..28], &before[28..30], "spipe <- dpipe");
        assert_eq!(&d[28..30], &before[26..28], "dpipe <- spipe");
        assert_eq!(&d[..22], &before[..22]);
        assert_eq!(&d[30..], &before[30..]);
        turn_around(&mut d);
        assert_eq!(d, before, "twice is the identity");
    }

    #[test]
    fn key_of_is_the_tuple_layout() {
        let mut d = vec![0u8; HEADER_LEN];
        let mut f = DataFrame::new_unchecked(&mut d[..]);
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
        assert_eq!(key_of(&d), t.to_bytes());
    }
}
