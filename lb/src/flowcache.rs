//! A data lcore's per-flow decision cache, in front of the Toeplitz hash
//! and the [`Balancer`].
//!
//! A flow (a DMPD key tuple) keeps its ports for as long as it is active:
//! within one balancer snapshot, deciding the next frame of an active flow
//! gives the same ports as the last one, and only refreshes its bucket's
//! activity time. So the decision is made once per flow, as OVS's exact
//! match cache does for its flows: a frame whose key is in the cache,
//! decided under the current snapshot epoch less than the idle gap ago,
//! gets the cached ports and touches its bucket ([`Balancer::touch_bucket`]); any
//! other frame is hashed and decided as before and fills the slot.
//!
//! Why the result is the same as deciding every frame (the property test in
//! `tests/flowcache.rs` checks it against [`Balancer::decide`]): a bucket's
//! tx port and owner change only when the bucket is idle or its port is
//! down; the first is excluded because a valid slot's flow touched the
//! bucket less than the idle gap ago, the second because port availability,
//! the remote nodes' ports and the loads change only with a new snapshot
//! (a new epoch invalidates every slot). The rx port of the bucket's owner
//! is fixed after the first decision in an epoch; that of a colliding flow
//! to another node is a function of its hash and the snapshot.

use crate::balancer::{Balancer, Decision, NO_PORT};
use crate::toeplitz::Toeplitz;
use crate::tuple::DmpdTuple;

/// Sets of the cache, of [`WAYS`] slots each (32 bytes a slot): enough
/// for the active flows of a node's pipes, small enough to stay in L1.
pub const SETS: usize = 256;
/// Slots per set. Two ways: with one, 64 flows in 256 slots already put
/// about a quarter of them in shared slots that they keep taking from each
/// other (a miss costs a Toeplitz hash and a full decision).
pub const WAYS: usize = 2;

#[derive(Clone, Copy, Debug)]
struct Slot {
    /// snode, dnode, spipe, dpipe (the first 8 key bytes) as they lie in
    /// the header, read as a little-endian word.
    wire: u64,
    /// [`tag`] of the snapshot epoch the decision was made under and the
    /// packet type: one comparison for both. Empty: `u64::MAX`, which no
    /// epoch below 2^56 gives.
    tag: u64,
    /// Until when the slot may be used: when it was last used plus the
    /// balancer's idle gap, in the caller's nanoseconds (one comparison
    /// per lookup).
    until_ns: u64,
    /// The balancer bucket of the flow's hash.
    bucket: u32,
    tx: u8,
    rx: u8,
}

/// The epoch and packet type of a slot, as one word.
#[inline(always)]
fn tag(epoch: u64, ptype: u8) -> u64 {
    epoch << 8 | u64::from(ptype)
}

const EMPTY: Slot = Slot {
    wire: 0,
    tag: u64::MAX,
    until_ns: 0,
    bucket: 0,
    tx: NO_PORT,
    rx: NO_PORT,
};

/// What the lookups of one burst share, read from the balancer once: its
/// snapshot epoch (as a slot tag without the packet type), its idle gap,
/// and the time.
#[derive(Clone, Copy, Debug)]
pub struct Lookup {
    epoch_tag: u64,
    now_ns: u64,
    /// `now_ns` plus the idle gap: a slot used now is valid until then.
    until_ns: u64,
}

impl Lookup {
    /// For lookups at `now_ns` under the balancer's current snapshot: the
    /// balancer must not take in another before they are done.
    #[inline]
    pub fn new(balancer: &Balancer, now_ns: u64) -> Lookup {
        Lookup {
            epoch_tag: tag(balancer.epoch(), 0),
            now_ns,
            until_ns: now_ns.saturating_add(balancer.idle_gap_ns()),
        }
    }
}

/// A [`Decision`] as a slot keeps it: the tx port, and the rx port or
/// [`NO_PORT`] for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ports {
    pub tx: u8,
    pub rx: u8,
}

impl From<Decision> for Ports {
    #[inline(always)]
    fn from(d: Decision) -> Ports {
        Ports {
            tx: d.tx_port,
            rx: d.rx_port.unwrap_or(NO_PORT),
        }
    }
}

impl From<Ports> for Decision {
    #[inline(always)]
    fn from(p: Ports) -> Decision {
        Decision {
            tx_port: p.tx,
            rx_port: (p.rx != NO_PORT).then_some(p.rx),
        }
    }
}

/// The ways of one set, in one cache line.
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct Set([Slot; WAYS]);

/// Hit and miss counts (plain integers: one lcore owns the cache).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCacheCounters {
    pub hits: u64,
    pub misses: u64,
}

/// See the module doc.
pub struct FlowCache {
    sets: Box<[Set; SETS]>,
    counters: FlowCacheCounters,
}

impl Default for FlowCache {
    fn default() -> Self {
        Self::new()
    }
}

impl FlowCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            sets: vec![Set([EMPTY; WAYS]); SETS]
                .into_boxed_slice()
                .try_into()
                .expect("SETS sets"),
            counters: FlowCacheCounters::default(),
        }
    }

    /// Hits and misses so far.
    pub fn counters(&self) -> FlowCacheCounters {
        self.counters
    }

    /// Forgets every flow (a test hook; epochs make this unnecessary).
    pub fn clear(&mut self) {
        self.sets.fill(Set([EMPTY; WAYS]));
    }

    /// A key's set: a multiplicative hash of its bytes, much cheaper than
    /// the Toeplitz hash it stands in for.
    #[inline(always)]
    fn set_of(wire: u64, ptype: u8) -> usize {
        let x = (wire ^ u64::from(ptype) << 3).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (x >> 56) as usize & (SETS - 1)
    }

    /// The ports for a frame whose DMPD key tuple is `key` (in
    /// [`DmpdTuple::to_bytes`]'s layout), at `now_ns`: the same as
    /// `balancer.decide(now_ns, toeplitz.hash_array(key), dnode)` after
    /// the caller's `balancer.refresh(now_ns)`.
    #[inline(always)]
    pub fn decide(
        &mut self,
        balancer: &mut Balancer,
        toeplitz: &Toeplitz,
        now_ns: u64,
        key: &[u8; DmpdTuple::LEN],
    ) -> Decision {
        let addrs = u64::from_be_bytes([
            key[0], key[1], key[2], key[3], key[4], key[5], key[6], key[7],
        ]);
        self.decide_parts(balancer, toeplitz, now_ns, addrs, key[8])
    }

    /// [`Self::decide`] with the key in two parts, as a data path reads
    /// them from a DMPD header: `addrs` is snode, dnode, spipe and dpipe as
    /// one big-endian `u64` (header bytes 22..30), `ptype` the packet type.
    /// The caller takes in new snapshots (`balancer.refresh(now_ns)`, once
    /// per burst): the cache only compares epochs.
    #[inline(always)]
    pub fn decide_parts(
        &mut self,
        balancer: &mut Balancer,
        toeplitz: &Toeplitz,
        now_ns: u64,
        addrs: u64,
        ptype: u8,
    ) -> Decision {
        self.decide_wire(balancer, toeplitz, now_ns, addrs.swap_bytes(), ptype)
    }

    /// [`Self::decide_parts`] with the address bytes as they lie in the
    /// header, read as a little-endian word (`dmpd`'s `addrs_wire`): the
    /// data path needs no byte swap, except on a miss.
    #[inline(always)]
    pub fn decide_wire(
        &mut self,
        balancer: &mut Balancer,
        toeplitz: &Toeplitz,
        now_ns: u64,
        wire: u64,
        ptype: u8,
    ) -> Decision {
        let l = Lookup::new(balancer, now_ns);
        self.decide_with(balancer, toeplitz, l, wire, ptype)
    }

    /// [`Self::decide_wire`] with what a burst's lookups share read once
    /// ([`Lookup::new`], after the burst's `balancer.refresh`).
    #[inline(always)]
    pub fn decide_with(
        &mut self,
        balancer: &mut Balancer,
        toeplitz: &Toeplitz,
        l: Lookup,
        wire: u64,
        ptype: u8,
    ) -> Decision {
        self.decide_ports(balancer, toeplitz, l, wire, ptype).into()
    }

    /// [`Self::decide_with`] in the cache's own form, with no `Option` to
    /// build and take apart on a data path that indexes by port.
    #[inline(always)]
    pub fn decide_ports(
        &mut self,
        balancer: &mut Balancer,
        toeplitz: &Toeplitz,
        l: Lookup,
        wire: u64,
        ptype: u8,
    ) -> Ports {
        match self.hit(balancer, l, wire, ptype) {
            Some(p) => {
                self.count_hits(balancer, 1);
                p
            }
            None => self.miss(balancer, toeplitz, l, wire, ptype),
        }
    }

    /// The hit half of [`Self::decide_ports`], for a data path's fast
    /// loop: the cached ports of a valid slot (its bucket touched), or
    /// `None`, and then nothing changed. A hit is not counted: the caller
    /// adds its hits with [`Self::count_hits`], once per burst.
    #[inline(always)]
    pub fn hit(
        &mut self,
        balancer: &mut Balancer,
        l: Lookup,
        wire: u64,
        ptype: u8,
    ) -> Option<Ports> {
        let set = Self::set_of(wire, ptype);
        let want = l.epoch_tag | u64::from(ptype);
        for slot in self.sets[set].0.iter_mut() {
            // Within the idle gap of its last use: `now - last < gap`, as
            // the balancer tests a bucket (times do not go backwards: they
            // come from one lcore's clock).
            if slot.wire == wire && slot.tag == want && l.now_ns < slot.until_ns {
                // Used before at this very time (in this burst, most
                // likely): its bucket was touched at `now_ns` then, and a
                // bucket's time only grows. Touching it again would change
                // nothing.
                if slot.until_ns < l.until_ns {
                    balancer.touch_bucket(l.now_ns, slot.bucket);
                    slot.until_ns = l.until_ns;
                }
                return Some(Ports {
                    tx: slot.tx,
                    rx: slot.rx,
                });
            }
        }
        None
    }

    /// Counts `n` hits of [`Self::hit`] (and as many balancer decisions).
    #[inline]
    pub fn count_hits(&mut self, balancer: &mut Balancer, n: u64) {
        self.counters.hits += n;
        balancer.count_decisions(n);
    }

    #[inline(never)]
    fn miss(
        &mut self,
        balancer: &mut Balancer,
        toeplitz: &Toeplitz,
        l: Lookup,
        wire: u64,
        ptype: u8,
    ) -> Ports {
        let now_ns = l.now_ns;
        let set = Self::set_of(wire, ptype);
        self.counters.misses += 1;
        let addrs = wire.swap_bytes();
        let hash = toeplitz.hash_array(&DmpdTuple::key_from_parts(addrs, ptype));
        let dnode = DmpdTuple::dnode_of_addrs(addrs);
        let d = balancer.decide(now_ns, hash, dnode);
        let p = Ports::from(d);
        if p.tx == NO_PORT {
            // No port is up: nothing worth keeping, and the balancer counts
            // every such frame.
            return p;
        }
        // The flow's own slot if it is still there, expired or from an
        // older epoch (else a stale copy would stay in the set, and every
        // hit on the live one would test it first while it lasts), else
        // the least recently used way (an empty slot has time 0).
        let ways = &mut self.sets[set].0;
        let t = tag(balancer.epoch(), ptype);
        let i = (0..WAYS)
            .find(|&i| ways[i].wire == wire && ways[i].tag as u8 == ptype)
            .or_else(|| (0..WAYS).min_by_key(|&i| ways[i].until_ns))
            .unwrap_or(0);
        ways[i] = Slot {
            wire,
            tag: t,
            until_ns: l.until_ns,
            bucket: balancer.bucket_of(hash) as u32,
            tx: p.tx,
            rx: p.rx,
        };
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::{BalancerConfig, Controller};
    use crate::load::{LoadConfig, PortSample};

    /// Header bytes 22..30 of a flow from node 9 pipe `spipe` to node 1
    /// pipe 1, as `addrs_wire` reads them.
    fn wire(spipe: u16) -> u64 {
        let [a, b] = spipe.to_be_bytes();
        u64::from_le_bytes([0, 9, 0, 1, a, b, 0, 1])
    }

    /// A flow that comes back after its slot expired, or after a new
    /// snapshot, takes that slot again: a second copy would be tested,
    /// stale, before the live one on every hit.
    #[test]
    fn an_expired_flow_refills_its_own_slot() {
        let mut c = Controller::new(2, LoadConfig::default()).unwrap();
        c.set_remote_node(1, &[0.0, 0.0], 0b11).unwrap();
        c.record_samples(&[PortSample::default(); 2]).unwrap();
        c.publish();
        let gap = 1_000;
        let mut b = c
            .balancer(BalancerConfig {
                idle_gap_ns: gap,
                ..BalancerConfig::default()
            })
            .unwrap();
        let t = Toeplitz::default();
        let mut cache = FlowCache::new();
        let a = wire(0);
        let set = FlowCache::set_of(a, 0);
        let copies = |cache: &FlowCache| cache.sets[set].0.iter().filter(|s| s.wire == a).count();
        for (k, now) in [1, 1 + 2 * gap, 1 + 4 * gap, 2 + 4 * gap]
            .into_iter()
            .enumerate()
        {
            if k == 3 {
                // A new snapshot (epoch) while the slot is still in time.
                c.publish();
            }
            b.refresh(now);
            let l = Lookup::new(&b, now);
            assert!(cache.hit(&mut b, l, a, 0).is_none(), "expired at {now}");
            cache.decide_ports(&mut b, &t, l, a, 0);
            assert_eq!(copies(&cache), 1, "at {now}");
            assert!(cache.hit(&mut b, l, a, 0).is_some());
        }
        assert_eq!(cache.counters().misses, 4);
    }
}
