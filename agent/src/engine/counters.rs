//! Per-port, per-queue and per-lcore counters: one writer (the owning lcore,
//! `Relaxed` stores), readers on the control lcore sum them. Each block is
//! cache-line aligned so writers on different lcores never share a line.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters of one (port, queue) or one port's control path.
#[repr(align(64))]
#[derive(Default, Debug)]
pub struct QueueCounters {
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Frames dropped by us (and freed), for any reason below.
    pub drops: AtomicU64,
    /// Frames that were not ours or malformed.
    pub errors: AtomicU64,
    /// Enqueue failures because a ring (public ring, pipe ring) was full.
    pub ring_full: AtomicU64,
}

/// A plain copy of [`QueueCounters`] for arithmetic.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QueueSnapshot {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub drops: u64,
    pub errors: u64,
    pub ring_full: u64,
}

impl QueueCounters {
    /// Adds to a counter that only this lcore writes. A load and a store
    /// (not an atomic RMW) is enough with one writer and avoids the lock prefix.
    #[inline]
    pub fn bump(c: &AtomicU64, by: u64) {
        c.store(c.load(Relaxed).wrapping_add(by), Relaxed);
    }

    pub fn snapshot(&self) -> QueueSnapshot {
        QueueSnapshot {
            rx_packets: self.rx_packets.load(Relaxed),
            rx_bytes: self.rx_bytes.load(Relaxed),
            tx_packets: self.tx_packets.load(Relaxed),
            tx_bytes: self.tx_bytes.load(Relaxed),
            drops: self.drops.load(Relaxed),
            errors: self.errors.load(Relaxed),
            ring_full: self.ring_full.load(Relaxed),
        }
    }
}

impl std::ops::AddAssign for QueueSnapshot {
    fn add_assign(&mut self, o: Self) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.drops += o.drops;
        self.errors += o.errors;
        self.ring_full += o.ring_full;
    }
}

/// Counters of one polling lcore.
#[repr(align(64))]
#[derive(Default, Debug)]
pub struct LcoreCounters {
    pub rx_packets: AtomicU64,
    pub tx_packets: AtomicU64,
    pub polls: AtomicU64,
    /// Polls that found nothing to receive or send.
    pub idle_polls: AtomicU64,
    /// Times the lcore slept in idle back-off.
    pub sleeps: AtomicU64,
    /// Data frames whose ports came from the lcore's flow cache, and those
    /// that needed a full balancer decision (published once per loop step).
    pub flow_hits: AtomicU64,
    pub flow_misses: AtomicU64,
}

#[derive(Default, Debug, Clone, Copy, serde::Serialize)]
pub struct LcoreSnapshot {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub polls: u64,
    pub idle_polls: u64,
    pub sleeps: u64,
    pub flow_hits: u64,
    pub flow_misses: u64,
}

impl LcoreCounters {
    pub fn snapshot(&self) -> LcoreSnapshot {
        LcoreSnapshot {
            rx_packets: self.rx_packets.load(Relaxed),
            tx_packets: self.tx_packets.load(Relaxed),
            polls: self.polls.load(Relaxed),
            idle_polls: self.idle_polls.load(Relaxed),
            sleeps: self.sleeps.load(Relaxed),
            flow_hits: self.flow_hits.load(Relaxed),
            flow_misses: self.flow_misses.load(Relaxed),
        }
    }
}

impl LcoreSnapshot {
    /// Busy ratio = 1 - idle polls / all polls (SPEC section 3).
    pub fn busy_ratio_since(&self, prev: &LcoreSnapshot) -> f64 {
        let polls = self.polls.saturating_sub(prev.polls);
        if polls == 0 {
            return 0.0;
        }
        1.0 - self.idle_polls.saturating_sub(prev.idle_polls) as f64 / polls as f64
    }
}
