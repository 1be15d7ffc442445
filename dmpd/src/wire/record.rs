//! Monitoring records: node (`n*`), port (`m*`) and pipe (`p*`) objects.
//!
//! A node record is variable-length: a fixed part, then `n_ports` port
//! records and `n_pipes` pipe records of fixed size. Numbers are fixed point:
//!
//! | unit | meaning |
//! |---|---|
//! | `_bp` | basis points, 1/10000 (10000 = 100 %) |
//! | `_centi` | hundredths (load averages; temperature in 0.01 °C) |
//! | `_mbps` | 10^6 bit/s |
//! | `_bps` | bit/s |
//! | `_ns` | nanoseconds (saturating at `u32::MAX`) |
//!
//! Packet and byte counters are cumulative `u64`; drops, errors and queue
//! overflows are cumulative `u32` that wrap.
//!
//! A record is ordered by `(incarnation, version, amend)`: the node bumps
//! `version` whenever it publishes a changed record; the master bumps
//! `amend` when it changes what it observes itself (port reachability, RTT).
//! A record never replaces one with a higher key.

use super::ethernet::EthernetAddress;
use super::{Reject, Result};

/// Ports per node record.
pub const MAX_PORTS: usize = 16;
/// Pipes per node record.
pub const MAX_PIPES: usize = 8;

enum_with_unknown! {
    /// Node state as published in the table.
    pub enum NodeState(u8) {
        Up = 1,
        /// Sent LEAVE (self-monitoring or shutdown).
        Left = 2,
        /// Expired by the master (silent for the configured periods).
        Down = 3,
    }
}

enum_with_unknown! {
    /// Port state.
    pub enum PortState(u8) {
        Down = 0,
        Up = 1,
    }
}

enum_with_unknown! {
    /// Pipe state.
    pub enum PipeState(u8) {
        Closed = 0,
        Open = 1,
        Throttled = 2,
    }
}

mod field {
    use core::ops::Range;
    // node record, fixed part
    pub const NODE_NUM: Range<usize> = 0..2;
    pub const INCARNATION: Range<usize> = 2..10;
    pub const VERSION: Range<usize> = 10..14;
    pub const AMEND: Range<usize> = 14..16;
    pub const STATE: usize = 16;
    pub const PRIORITY: usize = 17;
    pub const CORES: Range<usize> = 18..20;
    pub const CPU_UTIL: Range<usize> = 20..22;
    pub const LOAD1: Range<usize> = 22..24;
    pub const LOAD5: Range<usize> = 24..26;
    pub const LOAD15: Range<usize> = 26..28;
    pub const IO_LOAD: Range<usize> = 28..30;
    pub const MEM_TOTAL: Range<usize> = 30..38;
    pub const MEM_UTIL: Range<usize> = 38..40;
    pub const TEMPERATURE: Range<usize> = 40..42;
    pub const N_PORTS: usize = 42;
    pub const N_PIPES: usize = 43;
    pub const NODE_FIXED_LEN: usize = 44;

    // port record, relative
    pub const P_IDX: usize = 0;
    pub const P_STATE: usize = 1;
    pub const P_REACH: usize = 2;
    pub const P_RESERVED: usize = 3;
    pub const P_MAC: Range<usize> = 4..10;
    pub const P_SPEED: Range<usize> = 10..14;
    pub const P_RX_PKTS: Range<usize> = 14..22;
    pub const P_TX_PKTS: Range<usize> = 22..30;
    pub const P_RX_BYTES: Range<usize> = 30..38;
    pub const P_TX_BYTES: Range<usize> = 38..46;
    pub const P_RATE: Range<usize> = 46..54;
    pub const P_UTIL: Range<usize> = 54..56;
    pub const P_DROPS: Range<usize> = 56..60;
    pub const P_ERRORS: Range<usize> = 60..64;
    pub const P_OVERFLOWS: Range<usize> = 64..68;
    pub const P_LOAD: Range<usize> = 68..70;
    pub const P_RTT: Range<usize> = 70..74;
    pub const P_RESERVED2: Range<usize> = 74..76;
    pub const PORT_LEN: usize = 76;

    // pipe record, relative
    pub const Q_ID: Range<usize> = 0..2;
    pub const Q_PRIORITY: usize = 2;
    pub const Q_STATE: usize = 3;
    pub const Q_THRESHOLD: Range<usize> = 4..8;
    pub const Q_BUFFER: Range<usize> = 8..12;
    pub const Q_TX: Range<usize> = 12..20;
    pub const Q_RX: Range<usize> = 20..28;
    pub const Q_DROPS: Range<usize> = 28..32;
    pub const PIPE_LEN: usize = 32;
}

pub use field::{NODE_FIXED_LEN, PIPE_LEN, PORT_LEN};

/// Temperature value meaning "not known".
pub const TEMPERATURE_UNKNOWN: i16 = i16::MIN;

fn rd16(b: &[u8], r: core::ops::Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}
fn rd32(b: &[u8], r: core::ops::Range<usize>) -> u32 {
    let s = r.start;
    u32::from_be_bytes([b[s], b[s + 1], b[s + 2], b[s + 3]])
}
fn rd64(b: &[u8], r: core::ops::Range<usize>) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[r]);
    u64::from_be_bytes(a)
}

/// A port (`m*`) record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortRecord {
    pub idx: u8,
    /// Link state as the node sees it.
    pub state: PortState,
    /// Set by the master: it hears this node's responses on this port.
    pub reachable: bool,
    pub mac: EthernetAddress,
    pub speed_mbps: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rate_bps: u64,
    pub util_bp: u16,
    pub drops: u32,
    pub errors: u32,
    pub overflows: u32,
    /// Smoothed load (SPEC eq. 6) in basis points.
    pub load_bp: u16,
    /// Round-trip time master <-> node on this port, measured by the master.
    pub rtt_ns: u32,
}

// `PortState` comes from `enum_with_unknown!`, which cannot derive `Default`.
#[allow(clippy::derivable_impls)]
impl Default for PortState {
    fn default() -> Self {
        PortState::Down
    }
}

impl PortRecord {
    pub const fn buffer_len(&self) -> usize {
        PORT_LEN
    }

    pub fn parse(b: &[u8]) -> Result<PortRecord> {
        use field::*;
        if b.len() < PORT_LEN {
            return Err(Reject::Truncated);
        }
        let state = PortState::from(b[P_STATE]);
        if matches!(state, PortState::Unknown(_))
            || b[P_REACH] > 1
            || usize::from(b[P_IDX]) >= MAX_PORTS
        {
            return Err(Reject::BadField);
        }
        Ok(PortRecord {
            idx: b[P_IDX],
            state,
            reachable: b[P_REACH] == 1,
            mac: EthernetAddress::from_bytes(&b[P_MAC]),
            speed_mbps: rd32(b, P_SPEED),
            rx_packets: rd64(b, P_RX_PKTS),
            tx_packets: rd64(b, P_TX_PKTS),
            rx_bytes: rd64(b, P_RX_BYTES),
            tx_bytes: rd64(b, P_TX_BYTES),
            rate_bps: rd64(b, P_RATE),
            util_bp: rd16(b, P_UTIL),
            drops: rd32(b, P_DROPS),
            errors: rd32(b, P_ERRORS),
            overflows: rd32(b, P_OVERFLOWS),
            load_bp: rd16(b, P_LOAD),
            rtt_ns: rd32(b, P_RTT),
        })
    }

    /// Write every field into `b[..PORT_LEN]`.
    pub fn emit(&self, b: &mut [u8]) {
        use field::*;
        b[P_IDX] = self.idx;
        b[P_STATE] = self.state.into();
        b[P_REACH] = u8::from(self.reachable);
        b[P_RESERVED] = 0;
        b[P_MAC].copy_from_slice(&self.mac.0);
        b[P_SPEED].copy_from_slice(&self.speed_mbps.to_be_bytes());
        b[P_RX_PKTS].copy_from_slice(&self.rx_packets.to_be_bytes());
        b[P_TX_PKTS].copy_from_slice(&self.tx_packets.to_be_bytes());
        b[P_RX_BYTES].copy_from_slice(&self.rx_bytes.to_be_bytes());
        b[P_TX_BYTES].copy_from_slice(&self.tx_bytes.to_be_bytes());
        b[P_RATE].copy_from_slice(&self.rate_bps.to_be_bytes());
        b[P_UTIL].copy_from_slice(&self.util_bp.to_be_bytes());
        b[P_DROPS].copy_from_slice(&self.drops.to_be_bytes());
        b[P_ERRORS].copy_from_slice(&self.errors.to_be_bytes());
        b[P_OVERFLOWS].copy_from_slice(&self.overflows.to_be_bytes());
        b[P_LOAD].copy_from_slice(&self.load_bp.to_be_bytes());
        b[P_RTT].copy_from_slice(&self.rtt_ns.to_be_bytes());
        b[P_RESERVED2].fill(0);
    }
}

/// A pipe (`p*`) record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipeRecord {
    pub id: u16,
    pub priority: u8,
    pub state: PipeState,
    /// Flow threshold, kbit/s.
    pub flow_threshold_kbps: u32,
    /// Ring buffer size, bytes.
    pub buffer_size: u32,
    pub tx_msgs: u64,
    pub rx_msgs: u64,
    pub drops: u32,
}

impl PipeRecord {
    pub const fn buffer_len(&self) -> usize {
        PIPE_LEN
    }

    pub fn parse(b: &[u8]) -> Result<PipeRecord> {
        use field::*;
        if b.len() < PIPE_LEN {
            return Err(Reject::Truncated);
        }
        let state = PipeState::from(b[Q_STATE]);
        if matches!(state, PipeState::Unknown(_)) {
            return Err(Reject::BadField);
        }
        Ok(PipeRecord {
            id: rd16(b, Q_ID),
            priority: b[Q_PRIORITY],
            state,
            flow_threshold_kbps: rd32(b, Q_THRESHOLD),
            buffer_size: rd32(b, Q_BUFFER),
            tx_msgs: rd64(b, Q_TX),
            rx_msgs: rd64(b, Q_RX),
            drops: rd32(b, Q_DROPS),
        })
    }

    pub fn emit(&self, b: &mut [u8]) {
        use field::*;
        b[Q_ID].copy_from_slice(&self.id.to_be_bytes());
        b[Q_PRIORITY] = self.priority;
        b[Q_STATE] = self.state.into();
        b[Q_THRESHOLD].copy_from_slice(&self.flow_threshold_kbps.to_be_bytes());
        b[Q_BUFFER].copy_from_slice(&self.buffer_size.to_be_bytes());
        b[Q_TX].copy_from_slice(&self.tx_msgs.to_be_bytes());
        b[Q_RX].copy_from_slice(&self.rx_msgs.to_be_bytes());
        b[Q_DROPS].copy_from_slice(&self.drops.to_be_bytes());
    }
}

/// Node-level metrics the agent samples each period (input of
/// `Node::set_local_metrics`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeMetrics {
    pub cores: u16,
    pub cpu_util_bp: u16,
    pub load1_centi: u16,
    pub load5_centi: u16,
    pub load15_centi: u16,
    pub io_load_bp: u16,
    pub mem_total: u64,
    pub mem_util_bp: u16,
    /// CPU temperature in 0.01 °C, when readable.
    pub temperature_centi: Option<i16>,
}

/// Port metrics the agent samples each period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortMetrics {
    pub link_up: bool,
    pub speed_mbps: u32,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rate_bps: u64,
    pub util_bp: u16,
    pub drops: u32,
    pub errors: u32,
    pub overflows: u32,
    pub load_bp: u16,
}

/// A node (`n*`) record with its ports and pipes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub node_num: u16,
    pub incarnation: u64,
    pub version: u32,
    pub amend: u16,
    pub state: NodeState,
    pub priority: u8,
    pub cores: u16,
    pub cpu_util_bp: u16,
    pub load1_centi: u16,
    pub load5_centi: u16,
    pub load15_centi: u16,
    pub io_load_bp: u16,
    pub mem_total: u64,
    pub mem_util_bp: u16,
    pub temperature_centi: Option<i16>,
    pub ports: heapless::Vec<PortRecord, MAX_PORTS>,
    pub pipes: heapless::Vec<PipeRecord, MAX_PIPES>,
}

impl NodeRecord {
    /// An empty `Up` record.
    pub fn new(node_num: u16, incarnation: u64) -> NodeRecord {
        NodeRecord {
            node_num,
            incarnation,
            version: 0,
            amend: 0,
            state: NodeState::Up,
            priority: 0,
            cores: 0,
            cpu_util_bp: 0,
            load1_centi: 0,
            load5_centi: 0,
            load15_centi: 0,
            io_load_bp: 0,
            mem_total: 0,
            mem_util_bp: 0,
            temperature_centi: None,
            ports: heapless::Vec::new(),
            pipes: heapless::Vec::new(),
        }
    }

    /// Ordering key: a record replaces another only if its key is greater.
    pub fn key(&self) -> (u64, u32, u16) {
        (self.incarnation, self.version, self.amend)
    }

    pub fn is_newer_than(&self, other: &NodeRecord) -> bool {
        self.key() > other.key()
    }

    pub fn buffer_len(&self) -> usize {
        NODE_FIXED_LEN + self.ports.len() * PORT_LEN + self.pipes.len() * PIPE_LEN
    }

    /// Length of the record at the start of `b`, from its counts (checks
    /// the counts and that the bytes are there).
    pub fn peek_len(b: &[u8]) -> Result<usize> {
        if b.len() < NODE_FIXED_LEN {
            return Err(Reject::Truncated);
        }
        let np = usize::from(b[field::N_PORTS]);
        let nq = usize::from(b[field::N_PIPES]);
        if np > MAX_PORTS || nq > MAX_PIPES {
            return Err(Reject::BadField);
        }
        let len = NODE_FIXED_LEN + np * PORT_LEN + nq * PIPE_LEN;
        if b.len() < len {
            return Err(Reject::Truncated);
        }
        Ok(len)
    }

    /// Parse one record at the start of `b`; returns it and its length.
    pub fn parse(b: &[u8]) -> Result<(NodeRecord, usize)> {
        use field::*;
        let len = Self::peek_len(b)?;
        let state = NodeState::from(b[STATE]);
        if matches!(state, NodeState::Unknown(_)) {
            return Err(Reject::BadField);
        }
        let temp = rd16(b, TEMPERATURE) as i16;
        let mut r = NodeRecord {
            node_num: rd16(b, NODE_NUM),
            incarnation: rd64(b, INCARNATION),
            version: rd32(b, VERSION),
            amend: rd16(b, AMEND),
            state,
            priority: b[PRIORITY],
            cores: rd16(b, CORES),
            cpu_util_bp: rd16(b, CPU_UTIL),
            load1_centi: rd16(b, LOAD1),
            load5_centi: rd16(b, LOAD5),
            load15_centi: rd16(b, LOAD15),
            io_load_bp: rd16(b, IO_LOAD),
            mem_total: rd64(b, MEM_TOTAL),
            mem_util_bp: rd16(b, MEM_UTIL),
            temperature_centi: if temp == TEMPERATURE_UNKNOWN {
                None
            } else {
                Some(temp)
            },
            ports: heapless::Vec::new(),
            pipes: heapless::Vec::new(),
        };
        let np = usize::from(b[N_PORTS]);
        let nq = usize::from(b[N_PIPES]);
        let mut off = NODE_FIXED_LEN;
        for _ in 0..np {
            let p = PortRecord::parse(&b[off..off + PORT_LEN])?;
            r.ports.push(p).map_err(|_| Reject::BadField)?;
            off += PORT_LEN;
        }
        for _ in 0..nq {
            let q = PipeRecord::parse(&b[off..off + PIPE_LEN])?;
            r.pipes.push(q).map_err(|_| Reject::BadField)?;
            off += PIPE_LEN;
        }
        Ok((r, len))
    }

    /// Emit into `b[..buffer_len()]`; returns the length.
    pub fn emit(&self, b: &mut [u8]) -> usize {
        use field::*;
        b[NODE_NUM].copy_from_slice(&self.node_num.to_be_bytes());
        b[INCARNATION].copy_from_slice(&self.incarnation.to_be_bytes());
        b[VERSION].copy_from_slice(&self.version.to_be_bytes());
        b[AMEND].copy_from_slice(&self.amend.to_be_bytes());
        b[STATE] = self.state.into();
        b[PRIORITY] = self.priority;
        b[CORES].copy_from_slice(&self.cores.to_be_bytes());
        b[CPU_UTIL].copy_from_slice(&self.cpu_util_bp.to_be_bytes());
        b[LOAD1].copy_from_slice(&self.load1_centi.to_be_bytes());
        b[LOAD5].copy_from_slice(&self.load5_centi.to_be_bytes());
        b[LOAD15].copy_from_slice(&self.load15_centi.to_be_bytes());
        b[IO_LOAD].copy_from_slice(&self.io_load_bp.to_be_bytes());
        b[MEM_TOTAL].copy_from_slice(&self.mem_total.to_be_bytes());
        b[MEM_UTIL].copy_from_slice(&self.mem_util_bp.to_be_bytes());
        let t = self.temperature_centi.unwrap_or(TEMPERATURE_UNKNOWN);
        b[TEMPERATURE].copy_from_slice(&t.to_be_bytes());
        b[N_PORTS] = self.ports.len() as u8;
        b[N_PIPES] = self.pipes.len() as u8;
        let mut off = NODE_FIXED_LEN;
        for p in &self.ports {
            p.emit(&mut b[off..off + PORT_LEN]);
            off += PORT_LEN;
        }
        for q in &self.pipes {
            q.emit(&mut b[off..off + PIPE_LEN]);
            off += PIPE_LEN;
        }
        off
    }

    /// The port record with index `idx`.
    pub fn port(&self, idx: u8) -> Option<&PortRecord> {
        self.ports.iter().find(|p| p.idx == idx)
    }

    pub fn port_mut(&mut self, idx: u8) -> Option<&mut PortRecord> {
        self.ports.iter_mut().find(|p| p.idx == idx)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample(node: u16, ports: usize, pipes: usize) -> NodeRecord {
        let mut r = NodeRecord::new(node, 7);
        r.version = 3;
        r.amend = 1;
        r.priority = 10;
        r.cores = 8;
        r.cpu_util_bp = 2500;
        r.load1_centi = 150;
        r.load5_centi = 120;
        r.load15_centi = 100;
        r.io_load_bp = 300;
        r.mem_total = 16 << 30;
        r.mem_util_bp = 4000;
        r.temperature_centi = Some(4550);
        for i in 0..ports {
            r.ports
                .push(PortRecord {
                    idx: i as u8,
                    state: PortState::Up,
                    reachable: true,
                    mac: EthernetAddress([2, 0, 0, 0, node as u8, i as u8]),
                    speed_mbps: 1000,
                    rx_packets: 1,
                    tx_packets: 2,
                    rx_bytes: 3,
                    tx_bytes: 4,
                    rate_bps: 5,
                    util_bp: 6,
                    drops: 7,
                    errors: 8,
                    overflows: 9,
                    load_bp: 10,
                    rtt_ns: 11,
                })
                .unwrap();
        }
        for i in 0..pipes {
            r.pipes
                .push(PipeRecord {
                    id: i as u16,
                    priority: 1,
                    state: PipeState::Open,
                    flow_threshold_kbps: 1000,
                    buffer_size: 4096,
                    tx_msgs: 1,
                    rx_msgs: 2,
                    drops: 3,
                })
                .unwrap();
        }
        r
    }

    #[test]
    fn test_record_roundtrip_and_len() {
        let r = sample(5, 4, 2);
        assert_eq!(r.buffer_len(), 44 + 4 * 76 + 2 * 32);
        let mut buf = [0xa5u8; 512];
        let n = r.emit(&mut buf);
        assert_eq!(n, r.buffer_len());
        assert_eq!(&buf[0..2], &[0, 5]);
        assert_eq!(buf[42], 4);
        assert_eq!(buf[43], 2);
        let (p, len) = NodeRecord::parse(&buf[..n]).unwrap();
        assert_eq!(len, n);
        assert_eq!(p, r);
        assert_eq!(
            NodeRecord::parse(&buf[..n - 1]).unwrap_err(),
            Reject::Truncated
        );
    }

    #[test]
    fn test_record_bad_fields() {
        let r = sample(5, 1, 0);
        let mut buf = [0u8; 256];
        let n = r.emit(&mut buf);
        let mut b = buf;
        b[16] = 9; // node state
        assert_eq!(NodeRecord::parse(&b[..n]).unwrap_err(), Reject::BadField);
        let mut b = buf;
        b[42] = 17; // too many ports
        assert_eq!(NodeRecord::parse(&b[..]).unwrap_err(), Reject::BadField);
        let mut b = buf;
        b[44 + 2] = 2; // reachable must be 0/1
        assert_eq!(NodeRecord::parse(&b[..n]).unwrap_err(), Reject::BadField);
    }

    #[test]
    fn test_ordering() {
        let a = sample(1, 0, 0);
        let mut b = a.clone();
        b.amend += 1;
        assert!(b.is_newer_than(&a));
        let mut c = a.clone();
        c.version += 1;
        c.amend = 0;
        assert!(c.is_newer_than(&b));
        let mut d = a.clone();
        d.incarnation += 1;
        d.version = 0;
        assert!(d.is_newer_than(&c));
    }
}
