//! Prometheus exporter: the status snapshot in the text exposition format
//! (version 0.0.4), served over a minimal HTTP/1.1 server on the management
//! address (`metrics_addr`, a kernel interface, never a DPDK port).
//!
//! Names follow node_exporter's conventions: a `dmpd_` prefix, base units as
//! suffixes (`_seconds`, `_bytes`, `_ratio` for fractions in 0..=1), `_total`
//! on counters. Every series carries `node` (this agent's node number);
//! others carry `port`, `pipe`, `peer`, `lcore`, `reason` or `state` as fit.
//! The full list is in `docs/observability.md`.
//!
//! ```text
//! # HELP dmpd_port_rx_packets_total Frames received on the port by DMPD (all queues).
//! # TYPE dmpd_port_rx_packets_total counter
//! dmpd_port_rx_packets_total{node="1",port="0"} 42
//! ```

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

use crate::engine::status::Status;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Longest request head the server reads before giving up.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Read and write timeout of one connection.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
}

/// One metric family being written: HELP and TYPE once, then samples.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
    node: String,
    started: bool,
    help: &'static str,
    kind: Kind,
}

impl Family<'_> {
    fn header(&mut self) {
        if !self.started {
            self.started = true;
            let kind = match self.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(self.out, "# HELP {} {}", self.name, escape_help(self.help));
            let _ = writeln!(self.out, "# TYPE {} {}", self.name, kind);
        }
    }

    /// A sample with `node` plus `labels`.
    fn sample(&mut self, labels: &[(&str, &str)], value: Value) -> &mut Self {
        self.header();
        let _ = write!(self.out, "{}{{node=\"{}\"", self.name, self.node);
        for (k, v) in labels {
            let _ = write!(self.out, ",{}=\"{}\"", k, escape_label(v));
        }
        let _ = writeln!(self.out, "}} {}", value);
        self
    }

    fn one(&mut self, value: impl Into<Value>) -> &mut Self {
        self.sample(&[], value.into())
    }
}

/// A sample value: integers stay exact, floats use Prometheus' spelling of
/// the special values.
#[derive(Clone, Copy)]
enum Value {
    U(u64),
    F(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::U(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::F(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::U(u64::from(v))
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Value::U(v) => write!(f, "{v}"),
            Value::F(v) if v.is_nan() => f.write_str("NaN"),
            Value::F(v) if v == f64::INFINITY => f.write_str("+Inf"),
            Value::F(v) if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            Value::F(v) => write!(f, "{v}"),
        }
    }
}

fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A label value from a human sentence: lower case ASCII letters and digits,
/// other runs turned into one `_` ("frame for another cluster" ->
/// `frame_for_another_cluster`). Known rejection sentences map to the short
/// names of [`dmpd::Reject::name`] (`wrong_cluster`).
pub fn reason_label(reason: &str) -> String {
    if let Some(r) = dmpd::Reject::ALL
        .iter()
        .find(|r| r.to_string() == reason || r.name() == reason)
    {
        return r.name().to_owned();
    }
    snake_case(reason)
}

/// `snake_case` of arbitrary text (see [`reason_label`]); `unknown` if
/// nothing is left.
pub fn snake_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut gap = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !out.is_empty() {
                out.push('_');
            }
            gap = false;
            out.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
    }
    if out.is_empty() {
        out.push_str("unknown");
    }
    out
}

/// Renders a status snapshot in the Prometheus text exposition format.
pub fn render(st: &Status) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let node = st.node.to_string();
    macro_rules! family {
        ($name:literal, $kind:ident, $help:literal) => {
            Family {
                out: &mut out,
                name: $name,
                node: node.clone(),
                started: false,
                help: $help,
                kind: Kind::$kind,
            }
        };
    }

    // --- Agent and cluster ---------------------------------------------
    family!("dmpd_info", Gauge, "Agent identity; always 1.").sample(
        &[
            ("cluster_id", &st.cluster_id.to_string()),
            ("role", &st.role),
        ],
        Value::U(1),
    );
    family!(
        "dmpd_incarnation",
        Gauge,
        "Incarnation number of this agent run."
    )
    .one(st.incarnation);
    family!(
        "dmpd_uptime_seconds",
        Gauge,
        "Seconds since the engine started."
    )
    .one(st.uptime_ms as f64 / 1e3);
    family!(
        "dmpd_heartbeat_period_seconds",
        Gauge,
        "Configured heartbeat period."
    )
    .one(st.heartbeat_ms as f64 / 1e3);
    {
        let mut f = family!(
            "dmpd_master",
            Gauge,
            "The master this node follows (label master); absent while there is none."
        );
        if let Some(m) = st.master {
            f.sample(&[("master", &m.to_string())], Value::U(1));
        }
    }
    family!(
        "dmpd_is_master",
        Gauge,
        "1 if this node is the cluster master, else 0."
    )
    .one(st.master == Some(st.node));
    family!("dmpd_term", Gauge, "Current election term.").one(st.term);
    {
        let mut states: Vec<(&str, u64)> = Vec::new();
        for n in &st.cluster {
            match states.iter_mut().find(|(s, _)| *s == n.state) {
                Some(e) => e.1 += 1,
                None => states.push((&n.state, 1)),
            }
        }
        states.sort();
        let mut f = family!(
            "dmpd_cluster_nodes",
            Gauge,
            "Nodes in this node's cluster table, by state."
        );
        for (s, n) in states {
            f.sample(&[("state", s)], Value::U(n));
        }
    }

    // --- Peers (the cluster table) --------------------------------------
    let peers = |f: &mut Family<'_>, get: &dyn Fn(&crate::engine::status::NodeStatus) -> Value| {
        for n in &st.cluster {
            f.sample(&[("peer", &n.node.to_string())], get(n));
        }
    };
    {
        let mut f = family!(
            "dmpd_peer_state",
            Gauge,
            "State of a node of the cluster table (label state); always 1."
        );
        for n in &st.cluster {
            f.sample(
                &[("peer", &n.node.to_string()), ("state", &n.state)],
                Value::U(1),
            );
        }
    }
    peers(
        &mut family!(
            "dmpd_peer_priority",
            Gauge,
            "Election priority a node announces."
        ),
        &|n| Value::U(n.priority.into()),
    );
    peers(
        &mut family!(
            "dmpd_peer_incarnation",
            Gauge,
            "Incarnation a node announces."
        ),
        &|n| Value::U(n.incarnation),
    );
    peers(
        &mut family!(
            "dmpd_peer_last_heard_seconds",
            Gauge,
            "Seconds since a node was last heard."
        ),
        &|n| Value::F(n.last_heard_ms_ago as f64 / 1e3),
    );
    peers(
        &mut family!("dmpd_peer_cpu_cores", Gauge, "CPU cores a node announces."),
        &|n| Value::U(n.cores.into()),
    );
    peers(
        &mut family!(
            "dmpd_peer_cpu_utilisation_ratio",
            Gauge,
            "CPU utilisation a node announces (0..1)."
        ),
        &|n| Value::F(n.cpu_util),
    );
    peers(
        &mut family!(
            "dmpd_peer_load1",
            Gauge,
            "1-minute load average a node announces."
        ),
        &|n| Value::F(n.load1),
    );
    peers(
        &mut family!(
            "dmpd_peer_memory_utilisation_ratio",
            Gauge,
            "Memory utilisation a node announces (0..1)."
        ),
        &|n| Value::F(n.mem_util),
    );
    let peer_ports =
        |f: &mut Family<'_>, get: &dyn Fn(&crate::engine::status::PeerPortStatus) -> Value| {
            for n in &st.cluster {
                let peer = n.node.to_string();
                for p in &n.ports {
                    f.sample(&[("peer", &peer), ("port", &p.idx.to_string())], get(p));
                }
            }
        };
    peer_ports(
        &mut family!(
            "dmpd_peer_port_up",
            Gauge,
            "1 if a node's port is up (it hears heartbeats)."
        ),
        &|p| p.up.into(),
    );
    peer_ports(
        &mut family!(
            "dmpd_peer_port_reachable",
            Gauge,
            "1 if this node reaches the peer's port."
        ),
        &|p| p.reachable.into(),
    );
    peer_ports(
        &mut family!(
            "dmpd_peer_port_utilisation_ratio",
            Gauge,
            "Utilisation of a node's port as announced (0..1)."
        ),
        &|p| Value::F(p.utilisation),
    );
    peer_ports(
        &mut family!(
            "dmpd_peer_port_load_ratio",
            Gauge,
            "Smoothed load of a node's port as announced (0..1)."
        ),
        &|p| Value::F(p.load),
    );
    peer_ports(
        &mut family!(
            "dmpd_peer_port_rtt_seconds",
            Gauge,
            "Round-trip time to a node's port."
        ),
        &|p| Value::F(p.rtt_us / 1e6),
    );

    // --- Local ports ----------------------------------------------------
    {
        let mut f = family!(
            "dmpd_port_info",
            Gauge,
            "A local DMPD port with its DPDK name and MAC; always 1."
        );
        for p in &st.ports {
            f.sample(
                &[
                    ("port", &p.idx.to_string()),
                    ("name", &p.name),
                    ("mac", &p.mac),
                ],
                Value::U(1),
            );
        }
    }
    let ports = |f: &mut Family<'_>,
                 get: &dyn Fn(&crate::engine::status::LocalPortStatus) -> Value| {
        for p in &st.ports {
            f.sample(&[("port", &p.idx.to_string())], get(p));
        }
    };
    ports(
        &mut family!(
            "dmpd_port_rx_packets_total",
            Counter,
            "Frames received on the port by DMPD (all queues)."
        ),
        &|p| p.counters.rx_packets.into(),
    );
    ports(
        &mut family!(
            "dmpd_port_tx_packets_total",
            Counter,
            "Frames sent on the port by DMPD (all queues)."
        ),
        &|p| p.counters.tx_packets.into(),
    );
    ports(
        &mut family!(
            "dmpd_port_rx_bytes_total",
            Counter,
            "Bytes received on the port by DMPD (all queues)."
        ),
        &|p| p.counters.rx_bytes.into(),
    );
    ports(
        &mut family!(
            "dmpd_port_tx_bytes_total",
            Counter,
            "Bytes sent on the port by DMPD (all queues)."
        ),
        &|p| p.counters.tx_bytes.into(),
    );
    ports(
        &mut family!(
            "dmpd_port_drops_total",
            Counter,
            "Frames DMPD dropped on the port (any reason)."
        ),
        &|p| p.counters.drops.into(),
    );
    ports(
        &mut family!(
            "dmpd_port_errors_total",
            Counter,
            "Frames on the port that were not DMPD's or were malformed."
        ),
        &|p| p.counters.errors.into(),
    );
    ports(
        &mut family!(
            "dmpd_port_ring_full_total",
            Counter,
            "Enqueue failures on the port because a ring was full (queue overflows)."
        ),
        &|p| p.counters.ring_full.into(),
    );
    ports(
        &mut family!(
            "dmpd_port_ethdev_rx_packets_total",
            Counter,
            "Frames received as the PMD counts them (rte_eth_stats ipackets)."
        ),
        &|p| p.ethdev_rx_packets.into(),
    );
    ports(
        &mut family!(
            "dmpd_port_ethdev_tx_packets_total",
            Counter,
            "Frames sent as the PMD counts them (rte_eth_stats opackets)."
        ),
        &|p| p.ethdev_tx_packets.into(),
    );
    ports(
        &mut family!(
            "dmpd_port_ethdev_rx_bytes_total",
            Counter,
            "Bytes received as the PMD counts them (rte_eth_stats ibytes)."
        ),
        &|p| p.ethdev_rx_bytes.into(),
    );
    ports(
        &mut family!(
            "dmpd_port_ethdev_tx_bytes_total",
            Counter,
            "Bytes sent as the PMD counts them (rte_eth_stats obytes)."
        ),
        &|p| p.ethdev_tx_bytes.into(),
    );
    ports(
        &mut family!(
            "dmpd_port_ethdev_rx_missed_total",
            Counter,
            "Frames the NIC dropped for lack of descriptors (rte_eth_stats imissed)."
        ),
        &|p| p.ethdev_rx_missed.into(),
    );
    ports(
        &mut family!(
            "dmpd_port_ethdev_rx_errors_total",
            Counter,
            "Erroneous received frames (rte_eth_stats ierrors)."
        ),
        &|p| p.ethdev_rx_errors.into(),
    );
    ports(
        &mut family!(
            "dmpd_port_ethdev_tx_errors_total",
            Counter,
            "Failed transmissions (rte_eth_stats oerrors)."
        ),
        &|p| p.ethdev_tx_errors.into(),
    );
    ports(
        &mut family!(
            "dmpd_port_bandwidth_bytes_per_second",
            Gauge,
            "Configured port bandwidth (bandwidth_mbps * 125000)."
        ),
        &|p| Value::U(p.bandwidth_mbps.saturating_mul(125_000)),
    );
    ports(
        &mut family!(
            "dmpd_port_rate_bytes_per_second",
            Gauge,
            "Port flow rate (rx + tx, with Ethernet overhead) over the last period."
        ),
        &|p| Value::F(p.rate_bps / 8.0),
    );
    ports(
        &mut family!(
            "dmpd_port_utilisation_ratio",
            Gauge,
            "Port utilisation: rate over bandwidth (0..1)."
        ),
        &|p| Value::F(p.utilisation),
    );
    ports(
        &mut family!(
            "dmpd_port_load_ratio",
            Gauge,
            "Smoothed port load used by the balancer (0..1)."
        ),
        &|p| Value::F(p.load),
    );
    ports(
        &mut family!(
            "dmpd_port_loss_ratio",
            Gauge,
            "Port loss rate over the last period: dropped / (received + dropped)."
        ),
        &|p| Value::F(p.loss_rate),
    );
    ports(
        &mut family!(
            "dmpd_port_overflow_ratio",
            Gauge,
            "Port queue-overflow rate over the last period."
        ),
        &|p| Value::F(p.overflow_rate),
    );
    ports(
        &mut family!(
            "dmpd_port_up",
            Gauge,
            "1 if the port hears the cluster's heartbeats (DMPD liveness)."
        ),
        &|p| p.up.into(),
    );
    ports(
        &mut family!(
            "dmpd_port_link_up",
            Gauge,
            "1 if the PMD reports the link up."
        ),
        &|p| p.link_up.into(),
    );

    // --- Balancer -------------------------------------------------------
    family!(
        "dmpd_balancer_enabled",
        Gauge,
        "1 if multi-port balancing is enabled."
    )
    .one(st.balancer.enabled);
    family!(
        "dmpd_balancer_active",
        Gauge,
        "1 while the balancer is balancing (degree above threshold)."
    )
    .one(st.balancer.balancing);
    family!(
        "dmpd_balancer_mean_load_ratio",
        Gauge,
        "Mean load mu of the available ports (0..1)."
    )
    .one(st.balancer.mean);
    family!(
        "dmpd_balance_degree",
        Gauge,
        "Balance degree WL: standard deviation of the port loads, in percent of load."
    )
    .one(st.balancer.balance_degree);
    family!(
        "dmpd_balancer_threshold",
        Gauge,
        "Balance-degree trigger WL, in percent of load."
    )
    .one(st.balancer.threshold);

    // --- Pipes ----------------------------------------------------------
    let pipes = |f: &mut Family<'_>, get: &dyn Fn(&crate::engine::status::PipeStatus) -> Value| {
        for p in &st.pipes {
            f.sample(&[("pipe", &p.id.to_string())], get(p));
        }
    };
    {
        let mut f = family!(
            "dmpd_pipe_state",
            Gauge,
            "State of a local pipe (label state); always 1."
        );
        for p in &st.pipes {
            f.sample(
                &[("pipe", &p.id.to_string()), ("state", &p.state)],
                Value::U(1),
            );
        }
    }
    pipes(
        &mut family!(
            "dmpd_pipe_tx_messages_total",
            Counter,
            "Messages sent on the pipe."
        ),
        &|p| p.counters.tx_msgs.into(),
    );
    pipes(
        &mut family!(
            "dmpd_pipe_tx_bytes_total",
            Counter,
            "Payload bytes sent on the pipe."
        ),
        &|p| p.counters.tx_bytes.into(),
    );
    pipes(
        &mut family!(
            "dmpd_pipe_rx_messages_total",
            Counter,
            "Messages received on the pipe."
        ),
        &|p| p.counters.rx_msgs.into(),
    );
    pipes(
        &mut family!(
            "dmpd_pipe_rx_bytes_total",
            Counter,
            "Payload bytes received on the pipe."
        ),
        &|p| p.counters.rx_bytes.into(),
    );
    pipes(
        &mut family!(
            "dmpd_pipe_tx_refused_total",
            Counter,
            "Sends refused because the pipe's buffer was full."
        ),
        &|p| p.counters.tx_refused.into(),
    );
    pipes(
        &mut family!(
            "dmpd_pipe_tx_dropped_total",
            Counter,
            "Queued messages dropped before sending."
        ),
        &|p| p.counters.tx_dropped.into(),
    );
    pipes(
        &mut family!(
            "dmpd_pipe_rx_dropped_total",
            Counter,
            "Received messages dropped (receive ring full)."
        ),
        &|p| p.counters.rx_dropped.into(),
    );
    pipes(
        &mut family!(
            "dmpd_pipe_tx_deferred_total",
            Counter,
            "Sends deferred by the pipe's flow threshold or cap."
        ),
        &|p| p.counters.tx_deferred.into(),
    );
    pipes(
        &mut family!(
            "dmpd_pipe_threshold_bytes_per_second",
            Gauge,
            "Configured flow threshold of the pipe on the wire; 0 = unlimited."
        ),
        &|p| Value::F(p.params.threshold_bps as f64 / 8.0),
    );
    pipes(
        &mut family!(
            "dmpd_pipe_cap_bytes_per_second",
            Gauge,
            "Current rate cap of the pipe; 0 = none."
        ),
        &|p| Value::F(p.cap_bps as f64 / 8.0),
    );
    pipes(
        &mut family!(
            "dmpd_pipe_priority",
            Gauge,
            "Pipe priority (higher is served first)."
        ),
        &|p| Value::U(p.params.priority.into()),
    );
    pipes(
        &mut family!(
            "dmpd_pipe_buffer_messages",
            Gauge,
            "Most messages the pipe queues for sending."
        ),
        &|p| Value::U(p.params.buffer.into()),
    );
    pipes(
        &mut family!(
            "dmpd_pipe_queued_messages",
            Gauge,
            "Messages queued for sending now."
        ),
        &|p| Value::U(p.queued.into()),
    );
    pipes(
        &mut family!(
            "dmpd_pipe_tx_rate_bytes_per_second",
            Gauge,
            "Pipe send rate over the last period."
        ),
        &|p| Value::F(p.tx_rate_bps / 8.0),
    );

    // --- This machine ---------------------------------------------------
    let s = &st.system;
    family!("dmpd_node_cpu_cores", Gauge, "CPU cores of this machine.").one(u64::from(s.cores));
    family!(
        "dmpd_node_cpu_utilisation_ratio",
        Gauge,
        "CPU utilisation of this machine over the last period (0..1)."
    )
    .one(s.cpu_util);
    family!("dmpd_node_load1", Gauge, "1-minute load average.").one(s.load1);
    family!("dmpd_node_load5", Gauge, "5-minute load average.").one(s.load5);
    family!("dmpd_node_load15", Gauge, "15-minute load average.").one(s.load15);
    family!(
        "dmpd_node_io_utilisation_ratio",
        Gauge,
        "Busy fraction of the busiest block device over the last period (0..1)."
    )
    .one(s.io_load);
    family!(
        "dmpd_node_memory_bytes",
        Gauge,
        "Total memory of this machine."
    )
    .one(s.mem_total_bytes);
    family!(
        "dmpd_node_memory_utilisation_ratio",
        Gauge,
        "Memory utilisation of this machine (0..1)."
    )
    .one(s.mem_util);
    {
        let mut f = family!(
            "dmpd_node_temperature_celsius",
            Gauge,
            "CPU temperature, where readable."
        );
        if let Some(t) = s.temperature_c {
            f.one(f64::from(t));
        }
    }
    family!(
        "dmpd_node_hugepage_size_bytes",
        Gauge,
        "Hugepage size EAL uses (0 without hugepages)."
    )
    .one(s.hugepage_size_bytes);
    family!(
        "dmpd_rss_bytes",
        Gauge,
        "Resident set size of the agent process."
    )
    .one(s.rss_bytes);

    // --- Protocol -------------------------------------------------------
    {
        let mut f = family!(
            "dmpd_frames_rejected_total",
            Counter,
            "Control frames rejected, by reason."
        );
        let mut seen: Vec<(String, u64)> = Vec::new();
        for (r, c) in &st.rejects {
            let label = reason_label(r);
            match seen.iter_mut().find(|(l, _)| *l == label) {
                Some(e) => e.1 = e.1.saturating_add(*c),
                None => seen.push((label, *c)),
            }
        }
        for (l, c) in &seen {
            f.sample(&[("reason", l)], Value::U(*c));
        }
    }
    {
        let mut f = family!(
            "dmpd_datapath_dropped_frames_total",
            Counter,
            "Data-path frames not delivered, by reason."
        );
        let mut seen: Vec<(String, u64)> = Vec::new();
        for (r, c) in &st.datapath {
            let label = snake_case(r);
            match seen.iter_mut().find(|(l, _)| *l == label) {
                Some(e) => e.1 = e.1.saturating_add(*c),
                None => seen.push((label, *c)),
            }
        }
        for (l, c) in &seen {
            f.sample(&[("reason", l)], Value::U(*c));
        }
    }
    {
        let mut f = family!(
            "dmpd_datapath_echo_frames_total",
            Counter,
            "Frames echo pipes sent back, by path: direct (turned round on the polling lcore) or queued (through the pipe's tx ring)."
        );
        for (path, c) in &st.echo {
            f.sample(&[("path", &snake_case(path))], Value::U(*c));
        }
    }
    let r = &st.round;
    family!(
        "dmpd_rounds_total",
        Counter,
        "Heartbeat rounds run as master."
    )
    .one(r.rounds);
    family!(
        "dmpd_control_frames_sent_total",
        Counter,
        "Control frames sent."
    )
    .one(r.frames_sent);
    family!(
        "dmpd_control_bytes_sent_total",
        Counter,
        "Control bytes sent."
    )
    .one(r.bytes_sent);
    family!(
        "dmpd_control_frames_received_total",
        Counter,
        "Control frames received."
    )
    .one(r.frames_received);
    family!(
        "dmpd_round_bytes",
        Gauge,
        "Control bytes emitted in the last complete heartbeat round (master; once per frame)."
    )
    .one(r.last_round_bytes);
    family!(
        "dmpd_round_wire_bytes",
        Gauge,
        "Control bytes put on the wire in the last complete heartbeat round (once per port a frame went out on)."
    )
    .one(r.last_round_wire_bytes);
    family!(
        "dmpd_round_frames",
        Gauge,
        "Control frames emitted in the last complete heartbeat round (master)."
    )
    .one(r.last_round_frames);
    family!(
        "dmpd_control_loop_max_seconds",
        Gauge,
        "Longest control-loop iteration since the previous snapshot."
    )
    .one(r.control_loop_max_us as f64 / 1e6);
    family!(
        "dmpd_watchdog_stalls_total",
        Counter,
        "Control-loop stalls the watchdog detected."
    )
    .one(st.watchdog_stalls);

    // --- Polling lcores -------------------------------------------------
    let lcores = |f: &mut Family<'_>,
                  get: &dyn Fn(&crate::engine::counters::LcoreSnapshot) -> u64| {
        for (i, l) in st.lcores.iter().enumerate() {
            f.sample(&[("lcore", &i.to_string())], Value::U(get(l)));
        }
    };
    lcores(
        &mut family!(
            "dmpd_lcore_rx_packets_total",
            Counter,
            "Frames a polling lcore received."
        ),
        &|l| l.rx_packets,
    );
    lcores(
        &mut family!(
            "dmpd_lcore_tx_packets_total",
            Counter,
            "Frames a polling lcore sent."
        ),
        &|l| l.tx_packets,
    );
    lcores(
        &mut family!(
            "dmpd_lcore_polls_total",
            Counter,
            "Poll iterations of a polling lcore."
        ),
        &|l| l.polls,
    );
    lcores(
        &mut family!(
            "dmpd_lcore_idle_polls_total",
            Counter,
            "Poll iterations that found nothing to do (busy ratio = 1 - rate(idle) / rate(polls))."
        ),
        &|l| l.idle_polls,
    );
    lcores(
        &mut family!(
            "dmpd_lcore_sleeps_total",
            Counter,
            "Idle back-off sleeps of a polling lcore."
        ),
        &|l| l.sleeps,
    );
    lcores(
        &mut family!(
            "dmpd_lcore_flow_cache_hits_total",
            Counter,
            "Data frames whose ports a polling lcore took from its flow cache."
        ),
        &|l| l.flow_hits,
    );
    lcores(
        &mut family!(
            "dmpd_lcore_flow_cache_misses_total",
            Counter,
            "Data frames that needed a full balancer decision (a new flow, a new balancer snapshot, or a flow idle longer than the idle gap)."
        ),
        &|l| l.flow_misses,
    );
    out
}

/// Starts the exporter: binds `addr` now (so that a bad address is an error
/// here) and serves `GET /metrics` on one thread for the process' lifetime.
/// Anything else gets 404 (405 for other methods on `/metrics`).
pub fn serve(addr: SocketAddr, status: Arc<Mutex<Status>>) -> std::io::Result<JoinHandle<()>> {
    let listener = TcpListener::bind(addr)?;
    std::thread::Builder::new()
        .name("dmpd-metrics".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(s) => {
                        if let Err(e) = handle(s, &status) {
                            tracing::debug!("metrics: connection: {e}");
                        }
                    }
                    Err(e) => {
                        tracing::warn!("metrics: accept: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        })
}

/// Reads the request head (up to the blank line) with a timeout.
fn read_head(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Ok(head);
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(head);
        }
        if head.len() > MAX_REQUEST_HEAD {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "request head too long",
            ));
        }
    }
}

fn handle(mut s: TcpStream, status: &Mutex<Status>) -> std::io::Result<()> {
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    let head = match read_head(&mut s) {
        Ok(h) => h,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return respond(
                &mut s,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"request head too long\n",
                true,
            );
        }
        Err(e) => return Err(e),
    };
    let line = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    if method.is_empty() || target.is_empty() {
        return respond(
            &mut s,
            "400 Bad Request",
            "text/plain",
            b"bad request\n",
            true,
        );
    }
    if path != "/metrics" {
        return respond(
            &mut s,
            "404 Not Found",
            "text/plain",
            b"not found; try /metrics\n",
            method != "HEAD",
        );
    }
    if method != "GET" && method != "HEAD" {
        return respond(
            &mut s,
            "405 Method Not Allowed",
            "text/plain",
            b"method not allowed\n",
            true,
        );
    }
    // Copy under the lock, render outside it: the control loop must not wait.
    let snapshot = status.lock().clone();
    let body = render(&snapshot);
    respond(
        &mut s,
        "200 OK",
        CONTENT_TYPE,
        body.as_bytes(),
        method == "GET",
    )
}

fn respond(
    s: &mut TcpStream,
    status: &str,
    ctype: &str,
    body: &[u8],
    with_body: bool,
) -> std::io::Result<()> {
    let mut resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        resp.push_str("Allow: GET, HEAD\r\n");
    }
    resp.push_str("\r\n");
    let mut bytes = resp.into_bytes();
    if with_body {
        bytes.extend_from_slice(body);
    }
    s.write_all(&bytes)?;
    s.flush()?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    Ok(())
}
