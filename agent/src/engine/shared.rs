//! State shared between the control lcore and the polling lcores. Everything
//! the poll loop reads is either immutable after start, an atomic, or an
//! `ArcSwap` snapshot the control lcore republishes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use arc_swap::{ArcSwap, ArcSwapOption};

use super::counters::{LcoreCounters, QueueCounters};
use super::pipe::{PipeShared, MAX_PIPES};
use ffi::{Port, Ring};

/// One local DPDK port as the engine runs it.
pub struct PortRt {
    pub index: u8,
    pub port: Port,
    pub name: String,
    pub mac: [u8; 6],
    pub rx_queues: u16,
    pub tx_queues: u16,
    /// Configured bandwidth (bits/s): utilisation's denominator and pacing rate.
    pub bandwidth_bps: u64,
    pub pace: bool,
    /// Control frames from the control lcore, sent before data (priority).
    pub ctl_tx: Ring,
    /// Counters per rx queue (written by the queue's poller).
    pub rx_counters: Vec<QueueCounters>,
    /// Counters per tx queue (data) written by the queue's worker.
    pub tx_counters: Vec<QueueCounters>,
    /// Control frames sent, written by the port's owning worker.
    pub ctl_counters: QueueCounters,
}

/// Where to send a node's frames: its ports' MACs.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    pub nodes: HashMap<u16, Vec<[u8; 6]>>,
}

/// Pipes by id for rx dispatch, and in priority order for tx.
pub struct PipeTable {
    by_id: Vec<ArcSwapOption<PipeShared>>,
    /// Open pipes sorted by priority, highest first.
    pub by_priority: ArcSwap<Vec<Arc<PipeShared>>>,
}

impl Default for PipeTable {
    fn default() -> Self {
        PipeTable {
            by_id: (0..MAX_PIPES).map(|_| ArcSwapOption::empty()).collect(),
            by_priority: ArcSwap::from_pointee(Vec::new()),
        }
    }
}

impl PipeTable {
    #[inline]
    pub fn get(&self, id: u16) -> Option<Arc<PipeShared>> {
        self.by_id.get(id as usize)?.load_full()
    }

    /// The pipe with this id, borrowed without touching its reference
    /// count (the data path's lookup: no atomic write per lookup).
    #[inline]
    pub fn load(&self, id: u16) -> Option<arc_swap::Guard<Option<Arc<PipeShared>>>> {
        let g = self.by_id.get(id as usize)?.load();
        g.is_some().then_some(g)
    }

    /// True when a pipe with this id is open (cheaper than `get`).
    pub fn contains(&self, id: u16) -> bool {
        self.by_id
            .get(id as usize)
            .is_some_and(|s| s.load().is_some())
    }

    pub fn insert(&self, p: Arc<PipeShared>) {
        self.by_id[p.id as usize].store(Some(p));
        self.reorder();
    }

    pub fn remove(&self, id: u16) -> Option<Arc<PipeShared>> {
        let old = self.by_id.get(id as usize)?.swap(None);
        self.reorder();
        old
    }

    /// Republishes the priority order (after open, close or a priority change).
    pub fn reorder(&self) {
        let mut v: Vec<Arc<PipeShared>> = self.by_id.iter().filter_map(|s| s.load_full()).collect();
        v.sort_by_key(|p| std::cmp::Reverse(p.priority.load(std::sync::atomic::Ordering::Relaxed)));
        self.by_priority.store(Arc::new(v));
    }

    pub fn all(&self) -> Vec<Arc<PipeShared>> {
        self.by_id.iter().filter_map(|s| s.load_full()).collect()
    }
}

/// Counters the poll loop keeps outside ports and pipes.
#[derive(Default, Debug)]
pub struct DataPathCounters {
    /// Frames with another EtherType (kernel noise on af_packet ports).
    pub foreign: AtomicU64,
    /// Data frames for another node or cluster.
    pub misdelivered: AtomicU64,
    /// Data frames for a pipe that is not open.
    pub no_pipe: AtomicU64,
    /// Malformed data frames.
    pub malformed: AtomicU64,
    /// Outgoing frames for a node that is not in the table.
    pub no_route: AtomicU64,
    /// Outgoing frames with no local port available.
    pub no_port: AtomicU64,
    /// Not drops (status and metrics list the fields above as drop
    /// reasons; these two are for benches and tests): frames of echo pipes
    /// turned round and staged by the polling lcore that received them
    /// (the cut-through path).
    pub echo_direct: AtomicU64,
    /// Frames of echo pipes queued on the pipe's tx ring instead: the pipe
    /// has a rate limit or a backlog, or a tx port's staging was full.
    pub echo_queued: AtomicU64,
}

pub struct Shared {
    pub node: u16,
    pub cluster_id: u32,
    pub ethertype: u16,
    pub ports: Vec<PortRt>,
    /// Received control frames for the control lcore (the paper's public_ring).
    pub public_ring: Ring,
    pub pipes: PipeTable,
    pub routes: ArcSwap<Routes>,
    pub lcores: Vec<LcoreCounters>,
    pub datapath: DataPathCounters,
    pub quit: AtomicBool,
    /// Balancing on (the experiment compares with and without).
    pub balancing: AtomicBool,
}
