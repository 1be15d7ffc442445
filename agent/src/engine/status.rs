//! The status snapshot: what `dmpd-agent status` prints and what the
//! metrics exporter and telemetry commands serve. Built by the control lcore.

use serde::Serialize;

use super::counters::{LcoreSnapshot, QueueSnapshot};
use super::pipe::{PipeCountersSnapshot, PipeParams};

#[derive(Debug, Clone, Serialize, Default)]
pub struct Status {
    pub node: u16,
    pub cluster_id: u32,
    pub incarnation: u64,
    pub role: String,
    pub master: Option<u16>,
    pub term: u64,
    pub uptime_ms: u64,
    pub heartbeat_ms: u64,
    pub cluster: Vec<NodeStatus>,
    pub ports: Vec<LocalPortStatus>,
    pub balancer: BalancerStatus,
    pub pipes: Vec<PipeStatus>,
    pub rejects: Vec<(String, u64)>,
    pub datapath: Vec<(String, u64)>,
    /// Frames echo pipes sent back, by path: `direct` (turned round on the
    /// polling lcore) or `queued` (through the pipe's tx ring).
    pub echo: Vec<(String, u64)>,
    pub lcores: Vec<LcoreSnapshot>,
    pub round: RoundStatus,
    pub system: SystemStatus,
    pub watchdog_stalls: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct NodeStatus {
    pub node: u16,
    pub state: String,
    pub priority: u8,
    pub incarnation: u64,
    pub version: u32,
    pub last_heard_ms_ago: u64,
    pub cores: u16,
    pub cpu_util: f64,
    pub load1: f64,
    pub mem_util: f64,
    pub ports: Vec<PeerPortStatus>,
    pub pipes: Vec<PeerPipeStatus>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct PeerPortStatus {
    pub idx: u8,
    pub mac: String,
    /// The node's own view: the port hears heartbeats.
    pub up: bool,
    /// The master's view: it hears the node's responses on this port.
    pub reachable: bool,
    /// Both: traffic may use the port (what the balancer uses).
    pub usable: bool,
    pub utilisation: f64,
    pub load: f64,
    pub rtt_us: f64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct PeerPipeStatus {
    pub id: u16,
    pub priority: u8,
    pub state: String,
    pub tx_msgs: u64,
    pub rx_msgs: u64,
    pub drops: u32,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct LocalPortStatus {
    pub idx: u8,
    pub name: String,
    pub mac: String,
    /// Link as the PMD reports it (virtual ports lie).
    pub link_up: bool,
    /// Hears the cluster's heartbeats (the liveness that counts).
    pub up: bool,
    pub bandwidth_mbps: u64,
    pub rate_bps: f64,
    pub utilisation: f64,
    pub loss_rate: f64,
    pub overflow_rate: f64,
    pub load: f64,
    /// Our own counters (all queues, data and control).
    pub counters: QueueSnapshot,
    /// The PMD's counters (`rte_eth_stats_get`).
    pub ethdev_rx_packets: u64,
    pub ethdev_tx_packets: u64,
    pub ethdev_rx_bytes: u64,
    pub ethdev_tx_bytes: u64,
    pub ethdev_rx_missed: u64,
    pub ethdev_rx_errors: u64,
    pub ethdev_tx_errors: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct BalancerStatus {
    pub enabled: bool,
    pub mean: f64,
    pub balance_degree: f64,
    pub threshold: f64,
    pub balancing: bool,
    pub loads: Vec<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PipeStatus {
    pub id: u16,
    pub params: PipeParams,
    pub cap_bps: u64,
    pub state: String,
    pub queued: u32,
    pub tx_rate_bps: f64,
    pub counters: PipeCountersSnapshot,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct RoundStatus {
    pub rounds: u64,
    pub frames_sent: u64,
    pub bytes_sent: u64,
    pub frames_received: u64,
    pub last_round_bytes: u64,
    pub last_round_wire_bytes: u64,
    pub last_round_frames: u64,
    pub control_loop_max_us: u64,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct SystemStatus {
    pub cores: u32,
    pub cpu_util: f64,
    pub load1: f64,
    pub load5: f64,
    pub load15: f64,
    pub io_load: f64,
    pub mem_total_bytes: u64,
    pub mem_util: f64,
    pub temperature_c: Option<f32>,
    pub hugepage_size_bytes: u64,
    pub rss_bytes: u64,
}

pub fn mac_str(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}
