//! The paper's multi-port balancer (SPEC section 4), split in two sides.
//!
//! **Control side** ([`Controller`], one per node, on the control lcore):
//! folds port samples into smoothed loads, tracks port availability and the
//! destination nodes' rx ports, and publishes an immutable [`Snapshot`]
//! behind an `ArcSwap` plus an epoch counter.
//!
//! **Data side** ([`Balancer`], one per data lcore): checks the epoch once
//! per burst (one atomic load), re-reads the snapshot only when it changed
//! (lock-free), and decides every packet from its own state:
//!
//! 1. the key hash selects a bucket of a RETA-like table; the bucket's home
//!    port is `bucket % n_ports`, i.e. `hash % n_ports` for power-of-two
//!    port counts, the paper's default port;
//! 2. a bucket that carried a packet less than `idle_gap_ns` ago keeps its
//!    port (no reordering) unless that port went down;
//! 3. otherwise the bucket is placed: its preferred port is its home, or
//!    the port load moved it to while that port is up (so that flows do not
//!    swing back and forth at every pause); the preferred port is taken
//!    unless it is down, or balancing is on (WL above the threshold, with
//!    hysteresis) and its load is above the mean: then the least-loaded
//!    available port, the top of a min-heap, is taken;
//! 4. the heap keys are the snapshot's loads corrected by what this lcore
//!    did since: a placement adds the mean load of an active bucket to its
//!    port (one sift), a bucket that leaves a port it ran on during the
//!    measured period takes that load away; half of the correction is
//!    carried over the next refresh, because a period's sample shows a
//!    change made during it only in part. So a burst of new flows between
//!    two refreshes spreads instead of piling onto one port, and an
//!    overloaded port sheds just enough flows;
//! 5. the rx port is the destination node's least-loaded available port (a
//!    port within `rx_margin` of the minimum counts as least-loaded; ties
//!    are split by the flow hash), also kept while the bucket is active.
//!
//! Nothing here allocates, locks or reads the clock per packet.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::load::{balance_degree, mean_load, LoadConfig, PortLoad, PortSample};
use crate::LbError;

/// Most ports a node may have.
pub const MAX_PORTS: usize = 16;

/// `tx_port` of a [`Decision`] when no local port is available.
pub const NO_PORT: u8 = u8::MAX;

/// Loads travel as integer parts per million: integer compares on the data
/// path, and exact ties break deterministically by port number.
const PPM: f64 = 1_000_000.0;

fn to_ppm(load: f64) -> u32 {
    (load.clamp(0.0, 1.0) * PPM).round() as u32
}

fn check_port_count(n: usize) -> Result<(), LbError> {
    if (1..=MAX_PORTS).contains(&n) {
        Ok(())
    } else {
        Err(LbError::PortCount(n))
    }
}

/// Bitmap of the first `n` ports.
fn all_ports(n: usize) -> u16 {
    ((1u32 << n) - 1) as u16
}

#[inline]
fn is_up(bitmap: u16, port: u8) -> bool {
    port < MAX_PORTS as u8 && bitmap >> port & 1 == 1
}

/// [`is_up`] without the range check, for a port that is below
/// [`MAX_PORTS`] or is [`NO_PORT`] (a bucket's ports): `NO_PORT & 31` is
/// bit 31, beyond any 16-bit bitmap, so it is never up.
#[inline(always)]
fn is_up_or_no_port(bitmap: u16, port: u8) -> bool {
    debug_assert!(port < MAX_PORTS as u8 || port == NO_PORT);
    u32::from(bitmap) >> (port & 31) & 1 == 1
}

/// Indexed binary min-heap of up to 16 ports keyed by load.
///
/// `add_load` raises one port's key and restores the heap with a single
/// sift-down, so taking the least-loaded port and charging it is O(log n).
/// Equal keys order by port number, so decisions are deterministic.
#[derive(Clone, Debug)]
pub struct PortHeap {
    len: usize,
    heap: [u8; MAX_PORTS],
    /// Heap index of each port (meaningful only for ports in the heap).
    pos: [u8; MAX_PORTS],
    key: [u64; MAX_PORTS],
}

impl Default for PortHeap {
    fn default() -> Self {
        Self {
            len: 0,
            heap: [0; MAX_PORTS],
            pos: [0; MAX_PORTS],
            key: [0; MAX_PORTS],
        }
    }
}

impl PortHeap {
    /// Rebuilds the heap from the ports set in `available` (ports beyond
    /// `keys.len()` are ignored).
    pub fn rebuild(&mut self, keys: &[u64], available: u16) {
        self.len = 0;
        for (port, &k) in keys.iter().enumerate().take(MAX_PORTS) {
            self.key[port] = k;
            if is_up(available, port as u8) {
                self.heap[self.len] = port as u8;
                self.pos[port] = self.len as u8;
                self.len += 1;
            }
        }
        for i in (0..self.len / 2).rev() {
            self.sift_down(i);
        }
    }

    /// Number of ports in the heap.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no port is in the heap.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The least-loaded port, if any.
    #[inline]
    pub fn peek_min(&self) -> Option<u8> {
        (self.len > 0).then(|| self.heap[0])
    }

    /// The current key of `port`.
    #[inline]
    pub fn key(&self, port: u8) -> u64 {
        self.key[usize::from(port)]
    }

    /// Raises the key of `port` (which must be in the heap) by `delta`.
    #[inline]
    pub fn add_load(&mut self, port: u8, delta: u64) {
        let p = usize::from(port);
        self.key[p] = self.key[p].saturating_add(delta);
        let i = usize::from(self.pos[p]);
        if i < self.len && self.heap[i] == port {
            self.sift_down(i);
        }
    }

    /// Lowers the key of `port` (which must be in the heap) by `delta`,
    /// saturating at 0.
    #[inline]
    pub fn remove_load(&mut self, port: u8, delta: u64) {
        let p = usize::from(port);
        self.key[p] = self.key[p].saturating_sub(delta);
        let i = usize::from(self.pos[p]);
        if i < self.len && self.heap[i] == port {
            self.sift_up(i);
        }
    }

    #[inline]
    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if !self.less(self.heap[i], self.heap[parent]) {
                return;
            }
            self.heap.swap(i, parent);
            self.pos[usize::from(self.heap[i])] = i as u8;
            self.pos[usize::from(self.heap[parent])] = parent as u8;
            i = parent;
        }
    }

    #[inline]
    fn less(&self, a: u8, b: u8) -> bool {
        (self.key[usize::from(a)], a) < (self.key[usize::from(b)], b)
    }

    #[inline]
    fn sift_down(&mut self, mut i: usize) {
        loop {
            let left = 2 * i + 1;
            if left >= self.len {
                return;
            }
            let right = left + 1;
            let child = if right < self.len && self.less(self.heap[right], self.heap[left]) {
                right
            } else {
                left
            };
            if !self.less(self.heap[child], self.heap[i]) {
                return;
            }
            self.heap.swap(i, child);
            self.pos[usize::from(self.heap[i])] = i as u8;
            self.pos[usize::from(self.heap[child])] = child as u8;
            i = child;
        }
    }
}

/// A destination node's rx ports as the cluster table reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodePorts {
    n_ports: u8,
    available: u16,
    loads_ppm: [u32; MAX_PORTS],
    /// Available ports within the rx margin of the least-loaded one,
    /// least-loaded first.
    candidates: [u8; MAX_PORTS],
    n_candidates: u8,
}

impl NodePorts {
    /// `loads` (fractions, one per port, 1..=16 ports), availability bitmap
    /// (bits beyond the port count are ignored) and the margin within which
    /// a port counts as least-loaded.
    pub fn new(loads: &[f64], available: u16, rx_margin: f64) -> Result<Self, LbError> {
        check_port_count(loads.len())?;
        let available = available & all_ports(loads.len());
        let mut loads_ppm = [0u32; MAX_PORTS];
        for (slot, &l) in loads_ppm.iter_mut().zip(loads) {
            *slot = to_ppm(l);
        }
        let mut candidates = [0u8; MAX_PORTS];
        let mut n_candidates = 0usize;
        let min = (0..loads.len() as u8)
            .filter(|&p| is_up(available, p))
            .map(|p| loads_ppm[usize::from(p)])
            .min();
        if let Some(min) = min {
            let limit = u64::from(min) + u64::from(to_ppm(rx_margin));
            for p in 0..loads.len() as u8 {
                if is_up(available, p) && u64::from(loads_ppm[usize::from(p)]) <= limit {
                    candidates[n_candidates] = p;
                    n_candidates += 1;
                }
            }
            candidates[..n_candidates].sort_by_key(|&p| (loads_ppm[usize::from(p)], p));
        }
        Ok(Self {
            n_ports: loads.len() as u8,
            available,
            loads_ppm,
            candidates,
            n_candidates: n_candidates as u8,
        })
    }

    /// Number of ports of the node.
    pub fn n_ports(&self) -> usize {
        usize::from(self.n_ports)
    }

    /// Whether `port` is up.
    #[inline]
    pub fn is_available(&self, port: u8) -> bool {
        is_up(self.available, port)
    }

    /// The least-loaded available port (ties: lowest number).
    pub fn least_loaded(&self) -> Option<u8> {
        (self.n_candidates > 0).then(|| self.candidates[0])
    }

    /// The rx port for a flow: one of the least-loaded ports, chosen by the
    /// high half of the hash (the low bits already chose the tx port).
    #[inline]
    pub fn pick(&self, hash: u32) -> Option<u8> {
        let n = u32::from(self.n_candidates);
        if n == 0 {
            return None;
        }
        let index = ((hash >> 16) * n) >> 16;
        Some(self.candidates[index as usize])
    }

    /// [`Self::pick`] with [`NO_PORT`] for `None`, without branches.
    #[inline(always)]
    fn pick_or_none(&self, hash: u32) -> u8 {
        let n = u32::from(self.n_candidates);
        // index < n <= MAX_PORTS; the mask only spares the bounds check.
        let index = (((hash >> 16) * n) >> 16) as usize & (MAX_PORTS - 1);
        let port = self.candidates[index];
        if n == 0 {
            NO_PORT
        } else {
            port
        }
    }
}

/// The rx ports of every known destination node, indexed by node number.
#[derive(Clone, Debug, Default)]
pub struct RemotePorts {
    nodes: Vec<Option<NodePorts>>,
}

impl RemotePorts {
    /// Records (or replaces) a node's ports.
    pub fn set(&mut self, node: u16, ports: NodePorts) {
        let i = usize::from(node);
        if i >= self.nodes.len() {
            self.nodes.resize(i + 1, None);
        }
        self.nodes[i] = Some(ports);
    }

    /// Forgets a node (it left the cluster).
    pub fn remove(&mut self, node: u16) {
        if let Some(slot) = self.nodes.get_mut(usize::from(node)) {
            *slot = None;
        }
    }

    /// A node's ports, if known.
    #[inline]
    pub fn get(&self, node: u16) -> Option<&NodePorts> {
        self.nodes.get(usize::from(node)).and_then(Option::as_ref)
    }
}

/// One immutable view of the loads, published by the [`Controller`].
#[derive(Clone, Debug)]
pub struct Snapshot {
    epoch: u64,
    n_ports: u8,
    available: u16,
    loads_ppm: [u32; MAX_PORTS],
    mu_ppm: u32,
    balance_degree: f64,
    balancing: bool,
    remote: Arc<RemotePorts>,
}

impl Snapshot {
    /// Publication number, starting at 1.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
    /// Number of local ports.
    pub fn n_ports(&self) -> usize {
        usize::from(self.n_ports)
    }
    /// Availability bitmap of the local ports.
    pub fn available(&self) -> u16 {
        self.available
    }
    /// Smoothed load of a local port as a fraction.
    pub fn load(&self, port: usize) -> f64 {
        f64::from(self.loads_ppm[port]) / PPM
    }
    /// The mean `mu` (or the configured expected load) as a fraction.
    pub fn mean(&self) -> f64 {
        f64::from(self.mu_ppm) / PPM
    }
    /// WL in percent over the available ports.
    pub fn balance_degree(&self) -> f64 {
        self.balance_degree
    }
    /// Whether balancing is on (WL above threshold, with hysteresis).
    pub fn balancing(&self) -> bool {
        self.balancing
    }
    /// Destination nodes' rx ports.
    pub fn remote(&self) -> &RemotePorts {
        &self.remote
    }
}

struct Shared {
    epoch: AtomicU64,
    current: ArcSwap<Snapshot>,
}

/// A data lcore's read handle on the published snapshots.
#[derive(Clone)]
pub struct SnapshotReader {
    shared: Arc<Shared>,
}

impl SnapshotReader {
    /// Epoch of the latest publication (one atomic load).
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::Acquire)
    }

    /// The latest snapshot (lock-free).
    pub fn load(&self) -> Arc<Snapshot> {
        self.shared.current.load_full()
    }
}

/// Control-side owner of the load model; see the module doc.
pub struct Controller {
    config: LoadConfig,
    n_ports: usize,
    ports: [PortLoad; MAX_PORTS],
    available: u16,
    balancing: bool,
    remote: Arc<RemotePorts>,
    epoch: u64,
    shared: Arc<Shared>,
    /// Superseded snapshots that a data lcore may still hold: dropped here
    /// once only we hold them, so a data lcore never frees memory.
    retired: Vec<Arc<Snapshot>>,
}

impl Controller {
    /// A controller for `n_ports` local ports (all available, load 0) and
    /// publishes epoch 1.
    pub fn new(n_ports: usize, config: LoadConfig) -> Result<Self, LbError> {
        check_port_count(n_ports)?;
        config.validate()?;
        let mut controller = Self {
            config,
            n_ports,
            ports: [PortLoad::default(); MAX_PORTS],
            available: all_ports(n_ports),
            balancing: false,
            remote: Arc::default(),
            epoch: 0,
            shared: Arc::new(Shared {
                epoch: AtomicU64::new(0),
                current: ArcSwap::from_pointee(Snapshot {
                    epoch: 0,
                    n_ports: n_ports as u8,
                    available: all_ports(n_ports),
                    loads_ppm: [0; MAX_PORTS],
                    mu_ppm: 0,
                    balance_degree: 0.0,
                    balancing: false,
                    remote: Arc::default(),
                }),
            }),
            retired: Vec::new(),
        };
        controller.publish();
        Ok(controller)
    }

    /// The load model's configuration.
    pub fn config(&self) -> &LoadConfig {
        &self.config
    }

    /// Number of local ports.
    pub fn n_ports(&self) -> usize {
        self.n_ports
    }

    /// Folds one period's samples in, one per port (down ports included:
    /// their samples are smoothed too but they are left out of mu and WL).
    pub fn record_samples(&mut self, samples: &[PortSample]) -> Result<(), LbError> {
        if samples.len() != self.n_ports {
            return Err(LbError::SampleCount {
                got: samples.len(),
                expected: self.n_ports,
            });
        }
        for (port, sample) in self.ports.iter_mut().zip(samples) {
            port.update(&self.config, sample);
        }
        Ok(())
    }

    /// Marks a local port up or down (from the heartbeat machinery). A port
    /// coming back starts a fresh load history.
    pub fn set_port_available(&mut self, port: usize, up: bool) -> Result<(), LbError> {
        if port >= self.n_ports {
            return Err(LbError::NoSuchPort {
                port,
                count: self.n_ports,
            });
        }
        let bit = 1u16 << port;
        if up && self.available & bit == 0 {
            self.ports[port].reset();
        }
        if up {
            self.available |= bit;
        } else {
            self.available &= !bit;
        }
        Ok(())
    }

    /// Records a destination node's rx port loads and availability (from
    /// the cluster table).
    pub fn set_remote_node(
        &mut self,
        node: u16,
        loads: &[f64],
        available: u16,
    ) -> Result<(), LbError> {
        let ports = NodePorts::new(loads, available, self.config.rx_margin)?;
        Arc::make_mut(&mut self.remote).set(node, ports);
        Ok(())
    }

    /// Forgets a destination node.
    pub fn remove_remote_node(&mut self, node: u16) {
        Arc::make_mut(&mut self.remote).remove(node);
    }

    /// The mean `mu` (or the expected load) and WL in percent, over the
    /// available ports' smoothed loads.
    pub fn stats(&self) -> (f64, f64) {
        let mut loads = [0.0; MAX_PORTS];
        let mut n = 0;
        for (port, load) in self.ports[..self.n_ports].iter().enumerate() {
            if is_up(self.available, port as u8) {
                loads[n] = load.value();
                n += 1;
            }
        }
        let mu = self
            .config
            .expected_load
            .unwrap_or_else(|| mean_load(&loads[..n]));
        (mu, balance_degree(&loads[..n], mu))
    }

    /// Publishes the current state as a new snapshot; returns its epoch.
    pub fn publish(&mut self) -> u64 {
        let (mu, wl) = self.stats();
        self.balancing = self.config.balancing_active(self.balancing, wl);
        self.epoch += 1;
        let mut loads_ppm = [0u32; MAX_PORTS];
        for (slot, load) in loads_ppm.iter_mut().zip(&self.ports[..self.n_ports]) {
            *slot = to_ppm(load.value());
        }
        let snapshot = Arc::new(Snapshot {
            epoch: self.epoch,
            n_ports: self.n_ports as u8,
            available: self.available,
            loads_ppm,
            mu_ppm: to_ppm(mu),
            balance_degree: wl,
            balancing: self.balancing,
            remote: Arc::clone(&self.remote),
        });
        let previous = self.shared.current.swap(snapshot);
        self.shared.epoch.store(self.epoch, Ordering::Release);
        self.retired.push(previous);
        self.retired.retain(|s| Arc::strong_count(s) > 1);
        self.epoch
    }

    /// The latest published snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.current.load_full()
    }

    /// A read handle for a data lcore.
    pub fn reader(&self) -> SnapshotReader {
        SnapshotReader {
            shared: Arc::clone(&self.shared),
        }
    }

    /// A data-lcore balancer reading this controller's snapshots.
    pub fn balancer(&self, config: BalancerConfig) -> Result<Balancer, LbError> {
        Balancer::new(self.reader(), config)
    }
}

/// Data-side parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BalancerConfig {
    /// Buckets of the RETA-like table: a power of two in 16..=65536, and
    /// preferably a multiple of the port count so that home ports are
    /// exactly `hash % n_ports`. Default 1024.
    pub buckets: usize,
    /// A bucket idle for this long may move to another port. It must exceed
    /// the largest difference in queueing plus wire delay between two ports,
    /// so that the last packet on the old port arrives before the first on
    /// the new one. Default 1 ms.
    pub idle_gap_ns: u64,
    /// Floor of the per-flow load charged to a port when a flow is placed
    /// on it (the estimate is the mean load per active bucket). Default
    /// 0.001 (0.1% of a port).
    pub min_flow_load: f64,
    /// Ceiling of that estimate: with few active buckets (a cold start) the
    /// mean is meaningless, and charging a whole port per flow would turn
    /// placement into round robin. Default 0.05.
    pub max_flow_load: f64,
    /// Share of the load charged for placements that is still charged after
    /// the next refresh (and so on, geometrically): a period's sample shows a
    /// flow placed during it only for the part of the period it ran. In
    /// `[0, 1]`, default 0.5 (flows start on average mid-period).
    pub charge_carry: f64,
}

impl Default for BalancerConfig {
    fn default() -> Self {
        Self {
            buckets: 1024,
            idle_gap_ns: 1_000_000,
            min_flow_load: 0.001,
            max_flow_load: 0.05,
            charge_carry: 0.5,
        }
    }
}

impl BalancerConfig {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), LbError> {
        if !self.buckets.is_power_of_two() || !(16..=65536).contains(&self.buckets) {
            return Err(LbError::BucketCount(self.buckets));
        }
        if !self.min_flow_load.is_finite() || !self.max_flow_load.is_finite() {
            return Err(LbError::NotFinite { name: "flow_load" });
        }
        if !(0.0..=1.0).contains(&self.min_flow_load)
            || !(self.min_flow_load..=1.0).contains(&self.max_flow_load)
        {
            return Err(LbError::FlowLoadRange {
                min: self.min_flow_load,
                max: self.max_flow_load,
            });
        }
        if !(0.0..=1.0).contains(&self.charge_carry) {
            return Err(LbError::ChargeCarryOutOfRange(self.charge_carry));
        }
        Ok(())
    }
}

/// Where to send one packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Local tx port, or [`NO_PORT`] when every local port is down.
    pub tx_port: u8,
    /// Destination node's rx port; `None` when the node is unknown or has
    /// no available port.
    pub rx_port: Option<u8>,
}

/// Per-balancer event counts (plain integers: one lcore owns them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets decided.
    pub decisions: u64,
    /// Buckets (re)placed: new or idle flows, and failovers.
    pub placements: u64,
    /// Placements that left an available home port because of its load.
    pub rebalanced: u64,
    /// Decisions whose sticky or home port was down.
    pub failovers: u64,
    /// Decisions with no local port available.
    pub no_port: u64,
    /// Snapshots taken in.
    pub refreshes: u64,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    last_ns: u64,
    dst: u16,
    tx: u8,
    rx: u8,
    /// Load (not a failure) moved the bucket off its available home port.
    moved: bool,
}

const EMPTY_BUCKET: Bucket = Bucket {
    last_ns: 0,
    dst: 0,
    tx: NO_PORT,
    rx: NO_PORT,
    moved: false,
};

/// One data lcore's balancer; see the module doc.
pub struct Balancer {
    reader: SnapshotReader,
    snapshot: Arc<Snapshot>,
    /// The snapshot's rx ports, one indirection closer.
    remote: Arc<RemotePorts>,
    epoch: u64,
    config: BalancerConfig,
    mask: usize,
    buckets: Box<[Bucket]>,
    reta: Box<[u8]>,
    heap: PortHeap,
    available: u16,
    balancing: bool,
    mu_ppm: u64,
    n_available: u64,
    /// Load charged locally and not yet visible in the snapshot, in total
    /// and per port.
    assigned_ppm: i64,
    charged_ppm: [i64; MAX_PORTS],
    /// Times of the last two refreshes: a bucket used since the earlier one
    /// was running during the period the snapshot measured.
    refreshed_ns: [u64; 2],
    flow_load_ppm: u64,
    counters: Counters,
}

impl Balancer {
    /// A balancer reading `reader`'s snapshots.
    pub fn new(reader: SnapshotReader, config: BalancerConfig) -> Result<Self, LbError> {
        config.validate()?;
        let snapshot = reader.load();
        let n_ports = snapshot.n_ports();
        let reta = (0..config.buckets).map(|b| (b % n_ports) as u8).collect();
        let mut balancer = Self {
            epoch: snapshot.epoch,
            remote: Arc::clone(&snapshot.remote),
            snapshot,
            reader,
            config,
            mask: config.buckets - 1,
            buckets: vec![EMPTY_BUCKET; config.buckets].into_boxed_slice(),
            reta,
            heap: PortHeap::default(),
            available: 0,
            balancing: false,
            mu_ppm: 0,
            n_available: 0,
            assigned_ppm: 0,
            charged_ppm: [0; MAX_PORTS],
            refreshed_ns: [0; 2],
            flow_load_ppm: 0,
            counters: Counters::default(),
        };
        balancer.take_in(0);
        Ok(balancer)
    }

    /// Event counts so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The snapshot in use.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Epoch of the snapshot in use.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// How long a bucket stays with its port without traffic.
    #[inline]
    pub fn idle_gap_ns(&self) -> u64 {
        self.config.idle_gap_ns
    }

    /// For a packet of an active flow whose ports the caller kept from an
    /// earlier decision under the current snapshot (see
    /// [`crate::flowcache`]): refreshes its bucket's activity time, which
    /// is all that deciding it again would change. `bucket` is
    /// [`Self::bucket_of`] the flow's hash. The caller counts the packet
    /// ([`Self::count_decisions`]).
    #[inline]
    pub fn touch_bucket(&mut self, now_ns: u64, bucket: u32) {
        if let Some(slot) = self.buckets.get_mut(bucket as usize) {
            slot.last_ns = now_ns.max(slot.last_ns);
        }
    }

    /// Counts `n` packets decided without [`Self::decide`] (kept ports).
    #[inline]
    pub fn count_decisions(&mut self, n: u64) {
        self.counters.decisions += n;
    }

    /// The bucket a key hash falls in.
    #[inline]
    pub fn bucket_of(&self, key_hash: u32) -> usize {
        key_hash as usize & self.mask
    }

    /// The home port of a key hash (the paper's `hash % n_ports`).
    #[inline]
    pub fn home_port(&self, key_hash: u32) -> u8 {
        self.reta[self.bucket_of(key_hash)]
    }

    /// The port a bucket's flows currently use, if it was ever placed.
    pub fn bucket_port(&self, bucket: usize) -> Option<u8> {
        let tx = self.buckets[bucket & self.mask].tx;
        (tx != NO_PORT).then_some(tx)
    }

    /// The per-flow load (fraction) charged on placement this period.
    pub fn flow_load(&self) -> f64 {
        self.flow_load_ppm as f64 / PPM
    }

    /// Takes in a newer snapshot if one was published (one atomic load when
    /// none was). `decide` and `decide_burst` call it themselves.
    #[inline]
    pub fn refresh(&mut self, now_ns: u64) {
        if self.reader.epoch() != self.epoch {
            self.take_in(now_ns);
        }
    }

    #[cold]
    fn take_in(&mut self, now_ns: u64) {
        // The controller keeps superseded snapshots until we let go, so
        // these assignments never free memory on the data lcore. The order
        // matters: our old `remote` is also held by our old snapshot, so it
        // is released while that snapshot is still ours.
        let snapshot = self.reader.load();
        self.remote = Arc::clone(&snapshot.remote);
        self.snapshot = snapshot;
        let snap = &self.snapshot;
        self.epoch = snap.epoch;
        self.available = snap.available;
        self.balancing = snap.balancing;
        self.mu_ppm = u64::from(snap.mu_ppm);
        self.n_available = u64::from(snap.available.count_ones());
        // A flow placed during the last period shows in that period's
        // sample only for the part of the period it ran: keep charging a
        // share of it, or the next burst of placements lands there again.
        let carry = (self.config.charge_carry * 1024.0) as i64;
        let mut keys = [0u64; MAX_PORTS];
        let mut total = 0u64;
        self.assigned_ppm = 0;
        for (port, (key, &load)) in keys.iter_mut().zip(&snap.loads_ppm).enumerate() {
            let carried = self.charged_ppm[port] * carry / 1024;
            self.charged_ppm[port] = carried;
            *key = (i64::from(load) + carried).max(0) as u64;
            if is_up(snap.available, port as u8) {
                total += u64::from(load);
                self.assigned_ppm += carried;
            }
        }
        self.refreshed_ns = [self.refreshed_ns[1], now_ns];
        self.heap.rebuild(&keys[..snap.n_ports()], snap.available);
        // Mean load carried per active bucket: what one more active bucket
        // is likely to add to its port before the next refresh shows it.
        let gap = self.config.idle_gap_ns;
        // Branch-free: whether a bucket is active is data, not control flow.
        let active = self
            .buckets
            .iter()
            .map(|b| u64::from((b.tx != NO_PORT) & (now_ns.saturating_sub(b.last_ns) < gap)))
            .sum::<u64>();
        let floor = u64::from(to_ppm(self.config.min_flow_load));
        let ceiling = u64::from(to_ppm(self.config.max_flow_load));
        self.flow_load_ppm = (total / active.max(1)).clamp(floor, ceiling);
        self.counters.refreshes += 1;
    }

    /// Decides one packet: `key_hash` is the Toeplitz hash of its key tuple,
    /// `dst_node` its destination node, `now_ns` a monotonic time.
    #[inline]
    pub fn decide(&mut self, now_ns: u64, key_hash: u32, dst_node: u16) -> Decision {
        self.refresh(now_ns);
        self.counters.decisions += 1;
        self.decide_one(now_ns, key_hash, dst_node)
    }

    /// Decides `min(key_hashes.len(), dst_nodes.len(), out.len())` packets
    /// (a burst of 32, typically) with one snapshot check; returns how many.
    #[inline]
    pub fn decide_burst(
        &mut self,
        now_ns: u64,
        key_hashes: &[u32],
        dst_nodes: &[u16],
        out: &mut [Decision],
    ) -> usize {
        self.refresh(now_ns);
        let count = out.len().min(key_hashes.len()).min(dst_nodes.len());
        for ((slot, &hash), &dst) in out[..count]
            .iter_mut()
            .zip(&key_hashes[..count])
            .zip(&dst_nodes[..count])
        {
            *slot = self.decide_one(now_ns, hash, dst);
        }
        self.counters.decisions += count as u64;
        count
    }

    /// The per-packet decision (the caller counts it). An active bucket
    /// whose port is up, the common case, is decided here in a few
    /// instructions; everything else goes to [`Self::decide_slow`].
    #[inline(always)]
    fn decide_one(&mut self, now_ns: u64, key_hash: u32, dst_node: u16) -> Decision {
        let b = key_hash as usize & self.mask;
        let bucket = self.buckets[b];
        // `is_up` is false for NO_PORT, so this is "active and its port up".
        if now_ns.saturating_sub(bucket.last_ns) < self.config.idle_gap_ns
            && is_up_or_no_port(self.available, bucket.tx)
        {
            let same_flow = bucket.dst == dst_node;
            // Both candidates are computed and one is selected, so that
            // flows colliding in a bucket (a coin flip per packet) cost no
            // branch mispredictions.
            let rx = match self.remote.get(dst_node) {
                Some(n) => {
                    let picked = n.pick_or_none(key_hash);
                    if same_flow & is_up_or_no_port(n.available, bucket.rx) {
                        bucket.rx
                    } else {
                        picked
                    }
                }
                None => NO_PORT,
            };
            // The bucket keeps its owner: a colliding flow to another node
            // must not take over the owner's rx stickiness.
            let slot = &mut self.buckets[b];
            slot.last_ns = now_ns.max(bucket.last_ns);
            slot.rx = if same_flow { rx } else { bucket.rx };
            return Decision {
                tx_port: bucket.tx,
                rx_port: (rx != NO_PORT).then_some(rx),
            };
        }
        self.decide_slow(now_ns, key_hash, dst_node, b)
    }

    /// A bucket that is new, idle, or whose port is down.
    #[inline(never)]
    fn decide_slow(&mut self, now_ns: u64, key_hash: u32, dst_node: u16, b: usize) -> Decision {
        let bucket = self.buckets[b];
        let active =
            bucket.tx != NO_PORT && now_ns.saturating_sub(bucket.last_ns) < self.config.idle_gap_ns;
        let home = self.reta[b];
        // A bucket that load moved off its home keeps its new port as long
        // as that port is up: sending it home whenever it pauses would make
        // flows oscillate between home and the least-loaded port. A bucket
        // that a failure moved goes home again.
        let preferred = if bucket.moved && is_up(self.available, bucket.tx) {
            bucket.tx
        } else {
            home
        };
        if active || !is_up(self.available, preferred) {
            self.counters.failovers += 1;
        }
        if bucket.tx != NO_PORT
            && bucket.last_ns >= self.refreshed_ns[0]
            && is_up(self.available, bucket.tx)
        {
            // The bucket ran during the measured period: its load is in its
            // old port's figure and leaves with it. Without this, an
            // overloaded port would shed every flow that pauses before the
            // next refresh.
            self.discharge(bucket.tx);
        }
        let tx = self.place(preferred);
        let moved = tx != home && tx != NO_PORT && is_up(self.available, home);
        if tx == NO_PORT {
            self.counters.no_port += 1;
        }

        let node = self.remote.get(dst_node);
        let same_flow = active && bucket.dst == dst_node;
        let rx = match node {
            Some(n) if same_flow && n.is_available(bucket.rx) => Some(bucket.rx),
            Some(n) => n.pick(key_hash),
            None => None,
        };

        // A colliding flow to another node must not take over the bucket's
        // rx stickiness from the flow that owns it.
        let owner = if active && !same_flow {
            bucket.dst
        } else {
            dst_node
        };
        let rx_kept = if owner == dst_node {
            rx.unwrap_or(NO_PORT)
        } else {
            bucket.rx
        };
        self.buckets[b] = Bucket {
            last_ns: now_ns.max(bucket.last_ns),
            dst: owner,
            tx,
            rx: rx_kept,
            moved,
        };
        Decision {
            tx_port: tx,
            rx_port: rx,
        }
    }

    /// Places a bucket (new, idle, or its port died) whose preferred port
    /// is `preferred`: see the module doc.
    fn place(&mut self, preferred: u8) -> u8 {
        self.counters.placements += 1;
        let preferred_up = is_up(self.available, preferred);
        let tx = if preferred_up && !(self.balancing && self.above_mean(preferred)) {
            preferred
        } else {
            match self.heap.peek_min() {
                Some(least) => {
                    if preferred_up && least != preferred {
                        self.counters.rebalanced += 1;
                    }
                    least
                }
                None => return NO_PORT,
            }
        };
        self.heap.add_load(tx, self.flow_load_ppm);
        self.assigned_ppm += self.flow_load_ppm as i64;
        self.charged_ppm[usize::from(tx)] += self.flow_load_ppm as i64;
        tx
    }

    fn discharge(&mut self, port: u8) {
        self.heap.remove_load(port, self.flow_load_ppm);
        self.assigned_ppm -= self.flow_load_ppm as i64;
        self.charged_ppm[usize::from(port)] -= self.flow_load_ppm as i64;
    }

    /// Whether `port`'s load, with what was placed locally since the last
    /// refresh, is above the mean (which rises by the same placements).
    #[inline]
    fn above_mean(&self, port: u8) -> bool {
        (self.heap.key(port) * self.n_available) as i64
            > (self.mu_ppm * self.n_available) as i64 + self.assigned_ppm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_peeks_minimum_and_sifts_on_charge() {
        let mut heap = PortHeap::default();
        let keys = [50, 10, 40, 30, 20, 60, 70, 5];
        heap.rebuild(&keys, 0xff);
        assert_eq!(heap.peek_min(), Some(7));
        heap.add_load(7, 100);
        assert_eq!(heap.peek_min(), Some(1));
        heap.add_load(1, 15); // 25
        assert_eq!(heap.peek_min(), Some(4));
        // Without port 4 (down), the minimum is port 1 at 25.
        heap.rebuild(&[50, 25, 40, 30, 20, 60, 70, 105], 0xff & !(1 << 4));
        assert_eq!(heap.peek_min(), Some(1));
        assert_eq!(heap.len(), 7);
        heap.rebuild(&keys, 0);
        assert!(heap.is_empty());
        assert_eq!(heap.peek_min(), None);
    }

    #[test]
    fn heap_breaks_ties_by_port_number() {
        let mut heap = PortHeap::default();
        heap.rebuild(&[7, 7, 7, 7], 0b1111);
        let mut order = Vec::new();
        for _ in 0..4 {
            let p = heap.peek_min().unwrap();
            order.push(p);
            heap.add_load(p, 1);
        }
        assert_eq!(order, [0, 1, 2, 3]);
    }

    #[test]
    fn node_ports_candidates_within_margin() {
        let n = NodePorts::new(&[0.30, 0.10, 0.11, 0.50], 0b1111, 0.02).unwrap();
        assert_eq!(n.least_loaded(), Some(1));
        let picks: std::collections::BTreeSet<_> = (0..=u16::MAX as u32)
            .step_by(97)
            .map(|h| n.pick(h << 16).unwrap())
            .collect();
        assert_eq!(picks.into_iter().collect::<Vec<_>>(), [1, 2]);
        let exact = NodePorts::new(&[0.30, 0.10, 0.11, 0.50], 0b1101, 0.0).unwrap();
        assert_eq!(exact.least_loaded(), Some(2), "port 1 is down");
        assert_eq!(exact.pick(u32::MAX), Some(2));
        let none = NodePorts::new(&[0.1, 0.2], 0, 0.0).unwrap();
        assert_eq!(none.pick(7), None);
        assert_eq!(
            NodePorts::new(&[0.0; 17], 1, 0.0).unwrap_err(),
            LbError::PortCount(17)
        );
    }
}
