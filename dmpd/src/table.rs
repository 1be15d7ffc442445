//! The cluster table every node holds.

use std::collections::BTreeMap;

use crate::time::Instant;
use crate::wire::{EthernetAddress, NodeRecord, PortState, MAX_PORTS};

/// One node's entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The newest record known (ordered by `(incarnation, version, amend)`).
    pub record: NodeRecord,
    /// Last time this entry was refreshed: a response (master) or a table
    /// segment carrying it (others).
    pub last_heard: Instant,
    /// Master only: last response per port of that node.
    pub(crate) port_heard: [Option<Instant>; MAX_PORTS],
    /// Master only: last RTT measured per port (ns).
    pub(crate) port_rtt: [u32; MAX_PORTS],
    /// Master only: changed since the last table broadcast.
    pub(crate) dirty: bool,
    /// When the entry left the `Up` state (tombstone age).
    pub(crate) down_since: Option<Instant>,
}

/// What the table says about one port of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerPort {
    pub idx: u8,
    pub mac: EthernetAddress,
    /// The node's own view (link up and hearing heartbeats).
    pub state: PortState,
    /// The master hears this node on this port.
    pub reachable: bool,
    pub load_bp: u16,
    pub util_bp: u16,
    pub rtt_ns: u32,
}

impl Entry {
    pub(crate) fn new(record: NodeRecord, now: Instant) -> Entry {
        Entry {
            record,
            last_heard: now,
            port_heard: [None; MAX_PORTS],
            port_rtt: [0; MAX_PORTS],
            dirty: true,
            down_since: None,
        }
    }

    pub fn node_num(&self) -> u16 {
        self.record.node_num
    }

    /// A port of this node, as published.
    pub fn port(&self, idx: u8) -> Option<PeerPort> {
        self.record.port(idx).map(|p| PeerPort {
            idx: p.idx,
            mac: p.mac,
            state: p.state,
            reachable: p.reachable,
            load_bp: p.load_bp,
            util_bp: p.util_bp,
            rtt_ns: p.rtt_ns,
        })
    }

    /// Ports usable to reach this node: up at the node and heard by the master.
    pub fn usable_ports(&self) -> impl Iterator<Item = PeerPort> + '_ {
        self.record
            .ports
            .iter()
            .filter(|p| p.state == PortState::Up && p.reachable)
            .filter_map(move |p| self.port(p.idx))
    }
}

/// All nodes known, by node number.
#[derive(Debug, Clone, Default)]
pub struct ClusterTable {
    pub(crate) entries: BTreeMap<u16, Entry>,
}

impl ClusterTable {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn get(&self, node_num: u16) -> Option<&Entry> {
        self.entries.get(&node_num)
    }
    /// Entries in node-number order (including `Left`/`Down` tombstones).
    pub fn iter(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.entries.values()
    }
    /// Entries whose state is `Up`.
    pub fn up(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.entries
            .values()
            .filter(|e| e.record.state == crate::wire::NodeState::Up)
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
