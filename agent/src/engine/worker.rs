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
use lb::balancer::{Balancer, NO_PORT};
use lb::toeplitz::Toeplitz;
use lb::tuple::DmpdTuple;

use super::counters::QueueCounters as C;
use super::pacer::{wire_bits, Pacer};
use super::pipe::{PipeShared, MAX_PIPES};
use super::shared::Shared;

const BURST: usize = 32;
/// Frames a port may hold back for pacing or a full tx ring.
const STAGING: usize = 64;

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
    let now_ns = || ((cycles::rdtsc() - tsc0) as u128 * 1_000_000_000 / hz as u128) as u64;
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
                for mut m in rx.drain() {
                    C::bump(&qc.rx_bytes, m.len() as u64);
                    m.set_port(pi as u16);
                    dispatch_rx(&shared, qc, m);
                }
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
            for pipe in pipes.iter() {
                if budget == 0 {
                    break;
                }
                let sent = pull_pipe(
                    &shared,
                    &mut w,
                    &toeplitz,
                    pipe,
                    &mut pipe_pacers[pipe.id as usize],
                    now,
                    budget.min(BURST),
                    &mut tx,
                    &mut ps,
                );
                budget -= sent;
                work += sent;
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

/// Sends a received frame where it belongs: control frames to the control
/// lcore, data frames to their pipe. Every drop is counted and freed.
#[inline]
fn dispatch_rx(shared: &Shared, qc: &C, m: ffi::Mbuf) {
    let d = m.data();
    if d.len() < 16 || u16::from_be_bytes([d[12], d[13]]) != shared.ethertype {
        C::bump(&shared.datapath.foreign, 1);
        C::bump(&qc.drops, 1);
        return;
    }
    let mut one: MbufBurst<1> = MbufBurst::new();
    if Kind::from(d[15]) != Kind::Data {
        let _ = one.push(m);
        if shared.public_ring.enqueue_mbufs(&mut one) == 0 {
            C::bump(&qc.ring_full, 1);
            C::bump(&qc.drops, 1);
        }
        return;
    }
    let f = match DataFrame::new_checked(d) {
        Ok(f) => f,
        Err(_) => {
            C::bump(&shared.datapath.malformed, 1);
            C::bump(&qc.errors, 1);
            C::bump(&qc.drops, 1);
            return;
        }
    };
    if f.dnode() != shared.node || f.cluster_id() != shared.cluster_id {
        C::bump(&shared.datapath.misdelivered, 1);
        C::bump(&qc.drops, 1);
        return;
    }
    let Some(pipe) = shared.pipes.get(f.dpipe()) else {
        C::bump(&shared.datapath.no_pipe, 1);
        C::bump(&qc.drops, 1);
        return;
    };
    let len = d.len() as u64;
    let _ = one.push(m);
    if pipe.rx.enqueue_mbufs(&mut one) == 0 {
        pipe.counters.rx_dropped.fetch_add(1, Relaxed);
        C::bump(&qc.ring_full, 1);
        C::bump(&qc.drops, 1);
    } else {
        pipe.counters.rx_msgs.fetch_add(1, Relaxed);
        pipe.counters.rx_bytes.fetch_add(len, Relaxed);
    }
}

/// Dequeues up to `max` frames of one pipe (within its rate), balances each
/// to a port and stages it. Returns how many were staged.
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
    let routes = shared.routes.load();
    let balancing = shared.balancing.load(Relaxed);
    let mut staged = 0;
    let mut bytes = 0u64;
    for mut m in tx.drain() {
        let len = m.len();
        if rate > 0 {
            let _ = pacer.try_take(now, wire_bits(len));
        }
        let (snode, dnode, spipe, dpipe, ptype) = {
            let f = DataFrame::new_unchecked(m.data());
            if len < HEADER_LEN {
                C::bump(&shared.datapath.malformed, 1);
                pipe.counters.tx_dropped.fetch_add(1, Relaxed);
                continue;
            }
            f.five_tuple()
        };
        let key = DmpdTuple {
            snode,
            dnode,
            spipe,
            dpipe,
            ptype,
        };
        let hash = toeplitz.hash(&key.to_bytes());
        let d = if balancing {
            w.balancer.decide(now, hash, dnode)
        } else {
            // The paper's baseline: plain hash modulo the port count, rx port
            // chosen the same way.
            let n = shared.ports.len() as u32;
            lb::balancer::Decision {
                tx_port: (hash % n) as u8,
                rx_port: routes
                    .nodes
                    .get(&dnode)
                    .map(|macs| (hash % macs.len().max(1) as u32) as u8),
            }
        };
        if d.tx_port == NO_PORT || d.tx_port as usize >= shared.ports.len() {
            C::bump(&shared.datapath.no_port, 1);
            pipe.counters.tx_dropped.fetch_add(1, Relaxed);
            continue;
        }
        let Some(dst_mac) = routes
            .nodes
            .get(&dnode)
            .and_then(|macs| macs.get(d.rx_port.unwrap_or(0) as usize))
        else {
            C::bump(&shared.datapath.no_route, 1);
            pipe.counters.tx_dropped.fetch_add(1, Relaxed);
            continue;
        };
        let tp = d.tx_port as usize;
        {
            let b = m.data_mut();
            b[0..6].copy_from_slice(dst_mac);
            b[6..12].copy_from_slice(&shared.ports[tp].mac);
        }
        bytes += len as u64;
        if let Err(m) = ps[tp].staging.push(m) {
            // Cannot happen: the caller checked room on every port. Count
            // it rather than lose it silently.
            drop(m);
            C::bump(&shared.ports[tp].tx_counters[0].drops, 1);
            continue;
        }
        staged += 1;
    }
    pipe.counters.tx_msgs.fetch_add(staged as u64, Relaxed);
    pipe.counters.tx_bytes.fetch_add(bytes, Relaxed);
    staged
}
