//! State shared between the control lcore and the polling lcores. Everything
//! the poll loop reads is either immutable after start, an atomic, or an
//! `ArcSwap` snapshot the control lcore republishes.

use std::collections::HashMap;
use std::sync::atomic::Ordering::{Release, SeqCst};
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

/// A value the control side republishes and the polling lcores read every
/// loop step: an `ArcSwap` with a version number, so that a reader keeps
/// its own copy ([`Snapshot`], [`PipeView`]) and checks one plain load per
/// step instead of an `ArcSwap` load (a fenced write to a debt slot).
pub struct Published<T> {
    current: ArcSwap<T>,
    /// Bumped after every store: a reader that sees a new version loads a
    /// value at least as new. SeqCst, bump and load: see
    /// [`LcoreSync::go_online`] (a load is a plain load on x86, and stores
    /// are rare).
    version: AtomicU64,
}

impl<T> Published<T> {
    pub fn new(value: T) -> Self {
        Published {
            current: ArcSwap::from_pointee(value),
            version: AtomicU64::new(0),
        }
    }

    /// Publishes `value`; returns its version.
    pub fn store(&self, value: Arc<T>) -> u64 {
        self.current.store(value);
        self.version.fetch_add(1, SeqCst) + 1
    }

    /// The current value, borrowed for a short while (see `ArcSwap::load`).
    pub fn load(&self) -> arc_swap::Guard<Arc<T>> {
        self.current.load()
    }

    pub fn version(&self) -> u64 {
        self.version.load(SeqCst)
    }
}

/// A reader's copy of a [`Published`] value.
pub struct Snapshot<T> {
    version: u64,
    value: Arc<T>,
}

impl<T> Snapshot<T> {
    pub fn new(p: &Published<T>) -> Self {
        let version = p.version();
        Snapshot {
            version,
            value: p.current.load_full(),
        }
    }

    /// Takes in the published value if it changed since; true if it did.
    #[inline]
    pub fn refresh(&mut self, p: &Published<T>) -> bool {
        let v = p.version();
        if v == self.version {
            return false;
        }
        self.take(p, v);
        true
    }

    #[inline(never)]
    fn take(&mut self, p: &Published<T>, version: u64) {
        // The store happened before the version moved (release, then
        // acquire): this is that value or a newer one.
        self.value = p.current.load_full();
        self.version = version;
    }

    #[inline]
    pub fn get(&self) -> &Arc<T> {
        &self.value
    }
}

/// Pipes by id for rx dispatch, and in priority order for tx.
pub struct PipeTable {
    by_id: Vec<ArcSwapOption<PipeShared>>,
    /// Open pipes sorted by priority, highest first, republished (with a
    /// new version) after every change of the table.
    pub by_priority: Published<Vec<Arc<PipeShared>>>,
}

impl Default for PipeTable {
    fn default() -> Self {
        PipeTable {
            by_id: (0..MAX_PIPES).map(|_| ArcSwapOption::empty()).collect(),
            by_priority: Published::new(Vec::new()),
        }
    }
}

/// A polling lcore's copy of the pipe table, taken in again when the
/// version of its priority list moves: one plain load per loop step instead of an
/// `ArcSwap` load per run and per step. It holds the pipes it shows; the
/// lcore says which version that is in its [`LcoreSync`], so that closing
/// a pipe can wait until no lcore uses it (after DPDK's `rte_rcu_qsbr`).
pub struct PipeView {
    /// `u64::MAX`: released, or never taken in.
    version: u64,
    /// By id, the open pipes ([`MAX_PIPES`] entries).
    by_id: Vec<Option<Arc<PipeShared>>>,
    /// Open pipes, highest priority first: also which `by_id` entries
    /// are set. `None` when released.
    by_priority: Option<Arc<Vec<Arc<PipeShared>>>>,
}

impl PipeView {
    pub fn new() -> Self {
        PipeView {
            version: u64::MAX,
            by_id: vec![None; MAX_PIPES],
            by_priority: None,
        }
    }

    /// Takes in the table if it changed since (or was released); true if
    /// it did.
    #[inline]
    pub fn refresh(&mut self, t: &PipeTable) -> bool {
        let version = t.by_priority.version();
        if version == self.version {
            return false;
        }
        self.take(t, version);
        true
    }

    #[inline(never)]
    fn take(&mut self, t: &PipeTable, version: u64) {
        self.release();
        // The priority list is built from `by_id` before the version
        // moves: the same set of pipes.
        let pipes = t.by_priority.current.load_full();
        for p in pipes.iter() {
            self.by_id[usize::from(p.id)] = Some(Arc::clone(p));
        }
        self.by_priority = Some(pipes);
        self.version = version;
    }

    /// Lets go of every pipe; the next [`Self::refresh`] takes the table
    /// in again.
    pub fn release(&mut self) {
        if let Some(pipes) = self.by_priority.take() {
            for p in pipes.iter() {
                self.by_id[usize::from(p.id)] = None;
            }
        }
        self.version = u64::MAX;
    }

    /// The table version this view holds (`u64::MAX`: none).
    #[inline]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The open pipe with this id.
    #[inline]
    pub fn get(&self, id: u16) -> Option<&Arc<PipeShared>> {
        self.by_id.get(usize::from(id))?.as_ref()
    }

    /// Open pipes, highest priority first.
    pub fn by_priority(&self) -> &[Arc<PipeShared>] {
        self.by_priority.as_deref().map_or(&[], |v| v)
    }
}

impl Default for PipeView {
    fn default() -> Self {
        Self::new()
    }
}

/// Which pipe table a polling lcore may still use, for a writer that
/// waits until the lcores let go of a pipe ([`Shared::wait_for_lcores`]):
/// the version of the lcore's [`PipeView`], or `u64::MAX` while it holds
/// none (asleep, stopped or not started).
pub struct LcoreSync {
    holds: AtomicU64,
}

impl Default for LcoreSync {
    fn default() -> Self {
        LcoreSync {
            holds: AtomicU64::new(u64::MAX),
        }
    }
}

impl LcoreSync {
    /// Once per loop step, after the view's refresh: the version the view
    /// holds ([`PipeView::version`]). A plain store.
    #[inline]
    pub fn announce(&self, version: u64) {
        self.holds.store(version, Release);
    }

    /// The lcore released its view (before it sleeps or stops).
    pub fn go_offline(&self) {
        self.holds.store(u64::MAX, Release);
    }

    /// Before the first refresh after [`Self::go_offline`]. This store and
    /// the refresh's load of the table version are SeqCst, as are the
    /// writer's bump and its load of `holds`: either the writer sees the
    /// lcore online (and waits for it), or the lcore sees the new version
    /// (and never holds the removed pipe).
    pub fn go_online(&self) {
        self.holds.store(0, SeqCst);
    }

    /// Waits until each of `lcores` holds pipe table `version` or a newer
    /// one, or none. False if one did not get there within `timeout`.
    pub fn wait_all(lcores: &[LcoreSync], version: u64, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        for l in lcores {
            while l.holds.load(SeqCst) < version {
                if std::time::Instant::now() >= deadline {
                    return false;
                }
                std::thread::sleep(std::time::Duration::from_micros(20));
            }
        }
        true
    }
}

impl PipeTable {
    #[inline]
    pub fn get(&self, id: u16) -> Option<Arc<PipeShared>> {
        self.by_id.get(id as usize)?.load_full()
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

    /// Takes the pipe out of the table; returns it and the table version
    /// without it (for [`Shared::wait_for_lcores`]).
    pub fn remove(&self, id: u16) -> Option<(Arc<PipeShared>, u64)> {
        let old = self.by_id.get(id as usize)?.swap(None)?;
        Some((old, self.reorder()))
    }

    /// Republishes the priority order (after open, close or a priority
    /// change); returns the new version.
    pub fn reorder(&self) -> u64 {
        let mut v: Vec<Arc<PipeShared>> = self.by_id.iter().filter_map(|s| s.load_full()).collect();
        v.sort_by_key(|p| std::cmp::Reverse(p.priority.load(std::sync::atomic::Ordering::Relaxed)));
        // Every change ends here (insert and remove reorder).
        self.by_priority.store(Arc::new(v))
    }

    pub fn all(&self) -> Vec<Arc<PipeShared>> {
        self.by_id.iter().filter_map(|s| s.load_full()).collect()
    }
}

impl Shared {
    /// Waits until every polling lcore runs on pipe table `version` or a
    /// newer one, or holds none: then none uses what that version took
    /// out. False if one did not get there within `timeout` (a stalled
    /// lcore).
    pub fn wait_for_lcores(&self, version: u64, timeout: std::time::Duration) -> bool {
        LcoreSync::wait_all(&self.lcore_sync, version, timeout)
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
    pub routes: Published<Routes>,
    pub lcores: Vec<LcoreCounters>,
    /// Per polling lcore, which pipe table it may still use.
    pub lcore_sync: Vec<LcoreSync>,
    pub datapath: DataPathCounters,
    pub quit: AtomicBool,
    /// Balancing on (the experiment compares with and without).
    pub balancing: AtomicBool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader's snapshot changes exactly when the value was published
    /// again, and then to the latest value.
    #[test]
    fn a_snapshot_takes_in_the_latest_store_once() {
        let p = Published::new(1u32);
        let mut s = Snapshot::new(&p);
        assert_eq!(**s.get(), 1);
        assert!(!s.refresh(&p), "nothing was stored");
        p.store(Arc::new(2));
        p.store(Arc::new(3));
        assert!(s.refresh(&p));
        assert_eq!(**s.get(), 3, "the latest store");
        assert!(!s.refresh(&p), "taken in already");
        // The same value stored again is still a new version (the memo
        // built on it is rebuilt).
        p.store(Arc::clone(s.get()));
        assert!(s.refresh(&p));
        assert_eq!(*p.load().as_ref(), 3);
    }

    /// A writer waits for every lcore that may hold an older pipe table,
    /// and for no other: one on a newer version, or holding none (asleep,
    /// stopped, not started), does not hold it up.
    #[test]
    fn closing_waits_for_each_lcore_on_an_older_table() {
        use std::time::{Duration, Instant};
        let short = Duration::from_millis(30);
        let lcores: Vec<LcoreSync> = (0..3).map(|_| LcoreSync::default()).collect();
        assert!(LcoreSync::wait_all(&lcores, 5, short), "none started");
        lcores[0].go_online();
        assert!(
            !LcoreSync::wait_all(&lcores, 5, short),
            "online, table unknown"
        );
        lcores[0].announce(4);
        lcores[1].announce(9);
        assert!(!LcoreSync::wait_all(&lcores, 5, short), "lcore 0 holds 4");
        assert!(LcoreSync::wait_all(&lcores, 4, short), "all at 4 or newer");
        lcores[0].go_offline();
        assert!(LcoreSync::wait_all(&lcores, 5, short), "lcore 0 asleep");
        // The wait ends when the lcore moves on, not at the timeout.
        lcores[2].announce(1);
        let t0 = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                lcores[2].announce(5);
            });
            assert!(LcoreSync::wait_all(&lcores, 5, Duration::from_secs(10)));
        });
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_millis(50) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
    }
}
