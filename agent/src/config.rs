//! The agent's TOML configuration: documented defaults, checked ranges and
//! errors that name the field and the reason.
//!
//! [`AgentConfig::from_file`] reads, parses, fills the defaults that depend
//! on other fields (control socket, EAL file prefix), resolves relative paths
//! against the configuration file's directory and validates. Every field,
//! its default and its range is listed in `docs/configuration.md`; a fully
//! commented example is `examples/node.toml`.
//!
//! ```toml
//! node = 1
//! cluster_id = 7
//! key_file = "cluster.key"
//!
//! [[port]]
//! devargs = "net_af_packet0,iface=p0"
//! ```

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Most keys a key file may hold (the key ring's capacity).
pub const MAX_KEYS: usize = dmpd::wire::auth::MAX_KEYS;
/// Most ports a node may have (one bit each in the port state bitmap).
pub const MAX_PORTS: usize = 16;
/// Shortest accepted key, in bytes.
pub const MIN_KEY_LEN: usize = 32;
/// Longest accepted key, in bytes.
pub const MAX_KEY_LEN: usize = 64;
/// Most queues of one direction on a port (DPDK's `RTE_MAX_QUEUES_PER_PORT`).
pub const MAX_QUEUES: u16 = 1024;

/// Why a configuration could not be used.
#[derive(thiserror::Error, Debug)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema (unknown or
    /// missing field, wrong type). `message` is toml's, with line and column.
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// A value is out of its range or inconsistent with another.
    #[error("invalid configuration: `{field}`: {reason}")]
    Invalid { field: String, reason: String },
    /// The key file may be read by group or others.
    #[error(
        "key file {} has mode {mode:04o}: it must not be readable by group or others \
         (chmod 600 it)",
        path.display()
    )]
    KeyFilePermissions { path: PathBuf, mode: u32 },
    /// A line of the key file is malformed (`line` counts from 1; 0 means
    /// the file as a whole).
    #[error("key file {}, line {line}: {reason}", path.display())]
    KeyFormat {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// The whole configuration of one agent.
///
/// The TOML names are the field names, except `[[port]]` ([`Self::ports`])
/// and `[[pipe]]` ([`Self::pipes`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// This node's number, 1..=65534 (0 and 0xffff are reserved). Required.
    pub node: u16,
    /// Election priority: higher wins, ties go to the lower node number;
    /// 0 = never master. Default 100.
    #[serde(default = "default_priority")]
    pub priority: u8,
    /// Cluster id; frames of other clusters are ignored. Required.
    pub cluster_id: u32,
    /// EtherType of DMPD frames, at least 0x0600 (an Ethernet II type, not
    /// an 802.3 length). Default 0x88B5 (IEEE local experimental).
    #[serde(default = "default_ethertype")]
    pub ethertype: u16,
    /// Heartbeat period in milliseconds, 10..=60000. Default 1000.
    #[serde(default = "default_heartbeat_ms")]
    pub heartbeat_ms: u64,
    /// A port is down after this many missed heartbeats (K), at least 1.
    /// Default 3.
    #[serde(default = "default_miss_limit")]
    pub miss_limit: u32,
    /// A node silent for this many periods leaves the table, at least 1.
    /// Default 5.
    #[serde(default = "default_node_expiry_periods")]
    pub node_expiry_periods: u32,
    /// Largest Ethernet payload in bytes, 1500..=9000. Default 1500.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// Pre-shared cluster keys (see [`AgentConfig::load_keys`]). Relative to
    /// the configuration file's directory. Default none.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Run without authentication when there is no key file (lab use only).
    /// Default false: a missing key file is an error.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// Unix socket of the status/control command. Default
    /// `/run/dmpd/dmpd-<node>.sock` (an empty string also means the default).
    #[serde(default)]
    pub control_socket: PathBuf,
    /// Prometheus metrics listen address, e.g. `"127.0.0.1:9100"`. Default
    /// none (no exporter).
    #[serde(default)]
    pub metrics_addr: Option<SocketAddr>,
    /// If set, the agent writes its status as JSON to this file every period
    /// (written to a temporary file and renamed). Default none.
    #[serde(default)]
    pub status_json: Option<PathBuf>,
    /// EAL settings.
    #[serde(default)]
    pub eal: EalConfig,
    /// The DMPD ports, 1..=16, in port index order (`[[port]]`).
    #[serde(default, rename = "port")]
    pub ports: Vec<PortConfig>,
    /// Multi-port load balancer.
    #[serde(default)]
    pub balancer: BalancerConfig,
    /// Idle back-off of the polling lcores.
    #[serde(default)]
    pub idle: IdleConfig,
    /// Pipes opened at start-up (`[[pipe]]`); applications may open more.
    #[serde(default, rename = "pipe")]
    pub pipes: Vec<PipeConfig>,
}

/// `[eal]`: the Environment Abstraction Layer's command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EalConfig {
    /// Passed to EAL as they are. Default `["--no-huge", "-m", "256",
    /// "--no-pci"]`. Must not contain `--file-prefix` or `--lcores` (use the
    /// fields below) nor `--vdev`/`-a` for DMPD ports (they come from
    /// `[[port]]`).
    pub args: Vec<String>,
    /// EAL `--file-prefix` (runtime directory and shared memory names);
    /// must be unique per agent on a machine. Default `dmpd-<node>`.
    pub file_prefix: Option<String>,
    /// EAL `--lcores` mapping, e.g. `"(0,1)@(0-1)"`: lcores 0 and 1 both
    /// floating over CPUs 0 and 1. Default none (EAL's default: one lcore
    /// per available CPU, pinned).
    pub lcores: Option<String>,
}

impl Default for EalConfig {
    fn default() -> Self {
        EalConfig {
            args: ["--no-huge", "-m", "256", "--no-pci"]
                .map(String::from)
                .to_vec(),
            file_prefix: None,
            lcores: None,
        }
    }
}

/// One `[[port]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    /// DPDK device arguments, e.g. `"net_af_packet0,iface=p0"` (a virtual
    /// device, passed as `--vdev`) or `"0000:01:00.0"` (a PCI device, passed
    /// as `-a`). The device name is the part before the first comma; names
    /// must be unique. Required.
    pub devargs: String,
    /// Bandwidth used for utilisation and pacing, in Mb/s, at least 1.
    /// Default 1000: virtual ports report meaningless link speeds.
    #[serde(default = "default_bandwidth_mbps")]
    pub bandwidth_mbps: u32,
    /// Pace transmission to `bandwidth_mbps` with a token bucket. Default
    /// false.
    #[serde(default)]
    pub pace: bool,
    /// Receive queues, 1..=1024. Default 1.
    #[serde(default = "default_queues")]
    pub rx_queues: u16,
    /// Transmit queues, 1..=1024. Default 1.
    #[serde(default = "default_queues")]
    pub tx_queues: u16,
    /// The port's unicast MAC address, `"02:00:00:00:00:01"`. Default: the
    /// device's own. The agent sets it on the device; a device that cannot
    /// change it (`net_ring`, whose ports all report 00:00:00:00:00:00) keeps
    /// its own and the agent uses this one as the port's address (source
    /// address of its frames, the address peers send to) all the same:
    /// ports run promiscuous.
    #[serde(default)]
    pub mac: Option<String>,
}

impl PortConfig {
    /// The DPDK device name: `devargs` up to the first comma.
    pub fn name(&self) -> &str {
        self.devargs.split(',').next().unwrap_or("").trim()
    }

    /// Whether the device is a virtual device (`--vdev`), as opposed to a
    /// bus device such as a PCI address (`-a`). Virtual device names start
    /// with `net_` (or the older `eth_`).
    pub fn is_vdev(&self) -> bool {
        let name = self.name();
        name.starts_with("net_") || name.starts_with("eth_")
    }

    /// The configured bandwidth in bits per second.
    pub fn bandwidth_bps(&self) -> u64 {
        u64::from(self.bandwidth_mbps) * 1_000_000
    }

    /// The configured MAC address, if any (`None` also when malformed:
    /// `validate` rejects that).
    pub fn mac_addr(&self) -> Option<[u8; 6]> {
        self.mac.as_deref().and_then(parse_mac)
    }
}

/// Parses `aa:bb:cc:dd:ee:ff` (hexadecimal, `:` or `-` separated).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// `[balancer]`: the multi-port load balancer (SPEC section 4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BalancerConfig {
    /// Balance across ports; false sends each flow on its hashed port only
    /// (or the next available one). Default true.
    pub enabled: bool,
    /// Weights of (utilisation, drop rate, queue-overflow rate), each in
    /// [0, 1], summing to 1 (within 1e-9). Default `[0.84, 0.09, 0.07]`.
    pub weights: [f64; 3],
    /// Smoothing factor of eq. 6, in [0, 1]. Default 0.8.
    pub gamma: f64,
    /// Which term gamma weights. false (the `lb` default):
    /// `L(t) = gamma * L'(t) + (1 - gamma) * L(t-1)`, gamma weights the fresh
    /// sample; true: `L(t) = gamma * L(t-1) + (1 - gamma) * L'(t)`, a heavy
    /// low-pass filter (eq. 6 as SPEC writes it).
    pub gamma_weights_previous: bool,
    /// Balance-degree trigger WL, in percent of load, >= 0. Default 1.86.
    pub threshold: f64,
    /// Hysteresis as a fraction of `threshold`, in [0, 1]: balancing stops
    /// only below `threshold * (1 - hysteresis)`. Default: `lb`'s (0.5).
    pub hysteresis: f64,
    /// Rx ports within this load margin (fraction) of a destination's
    /// least-loaded port count as least-loaded, in [0, 1]. Default 0.02.
    pub rx_margin: f64,
    /// Expected load `mu` (fraction, in [0, 1]) replacing the measured mean
    /// of eq. 7. Default none (measured).
    pub expected_load: Option<f64>,
    /// A flow moves to another port only after it was idle this long, so
    /// that its frames stay in order. Milliseconds, default 50.
    pub idle_gap_ms: u64,
}

impl Default for BalancerConfig {
    /// The paper's values; the load model's own parameters come from
    /// `lb::load::LoadConfig::default()`, so the two crates cannot drift.
    fn default() -> Self {
        let lb = lb::load::LoadConfig::default();
        BalancerConfig {
            enabled: true,
            weights: lb.weights,
            gamma: lb.gamma,
            gamma_weights_previous: lb.gamma_weights_previous,
            threshold: lb.threshold,
            hysteresis: lb.hysteresis,
            rx_margin: lb.rx_margin,
            expected_load: lb.expected_load,
            idle_gap_ms: 50,
        }
    }
}

impl BalancerConfig {
    /// The load model's parameters for the `lb` crate.
    pub fn load_config(&self) -> lb::load::LoadConfig {
        lb::load::LoadConfig {
            weights: self.weights,
            gamma: self.gamma,
            gamma_weights_previous: self.gamma_weights_previous,
            expected_load: self.expected_load,
            threshold: self.threshold,
            hysteresis: self.hysteresis,
            rx_margin: self.rx_margin,
        }
    }
}

/// `[idle]`: back-off of the polling lcores when queues are empty, like
/// DPDK's power-aware `l3fwd-power`: after `backoff_after_polls` empty polls
/// in a row an lcore sleeps, doubling the sleep from 1 us up to
/// `max_sleep_us` while polls stay empty; one received frame resets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdleConfig {
    /// Empty polls in a row before the first sleep, at least 1. Default 256.
    pub backoff_after_polls: u32,
    /// Longest sleep in microseconds, 0..=1000000; 0 never sleeps (pure
    /// busy polling). Default 1000.
    pub max_sleep_us: u32,
}

impl Default for IdleConfig {
    fn default() -> Self {
        IdleConfig {
            backoff_after_polls: 256,
            max_sleep_us: 1000,
        }
    }
}

/// One `[[pipe]]` opened at start-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipeConfig {
    /// Pipe id, unique on the node. Required.
    pub id: u16,
    /// Send priority, 0 = lowest. Default 0.
    #[serde(default)]
    pub priority: u8,
    /// Flow threshold in Mb/s, >= 0; 0 = unlimited. Default 0.
    #[serde(default)]
    pub threshold_mbps: f64,
    /// Buffer size in messages, a power of two in 2..=8192. Default 1024.
    #[serde(default = "default_pipe_buffer")]
    pub buffer: u32,
    /// Reliable delivery (exactly once, in order) instead of best effort.
    /// Default false.
    #[serde(default)]
    pub reliable: bool,
    /// Echo mode: every data frame arriving for this pipe is sent back to
    /// its source pipe by the polling lcore (through this pipe's tx ring,
    /// rate and balancer) instead of being delivered. Default false.
    #[serde(default)]
    pub echo: bool,
}

fn default_priority() -> u8 {
    100
}
fn default_ethertype() -> u16 {
    0x88B5
}
fn default_heartbeat_ms() -> u64 {
    1000
}
fn default_miss_limit() -> u32 {
    3
}
fn default_node_expiry_periods() -> u32 {
    5
}
fn default_mtu() -> u16 {
    1500
}
fn default_bandwidth_mbps() -> u32 {
    1000
}
fn default_queues() -> u16 {
    1
}
fn default_pipe_buffer() -> u32 {
    1024
}

/// Where a string being parsed came from, for error messages.
const INLINE: &str = "<string>";

impl AgentConfig {
    /// Reads, parses and validates a configuration file. Relative paths in
    /// it (`key_file`, `control_socket`, `status_json`) are taken relative
    /// to the file's directory.
    pub fn from_file(path: impl AsRef<Path>) -> Result<AgentConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text, path)?;
        let base = path.parent().unwrap_or(Path::new(""));
        for p in [
            config.key_file.as_mut(),
            Some(&mut config.control_socket),
            config.status_json.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates a configuration from a string (relative paths
    /// stay relative to the working directory).
    pub fn from_toml_str(text: &str) -> Result<AgentConfig, ConfigError> {
        let config = Self::parse(text, Path::new(INLINE))?;
        config.validate()?;
        Ok(config)
    }

    /// Deserialises and fills the defaults that depend on `node`.
    fn parse(text: &str, path: &Path) -> Result<AgentConfig, ConfigError> {
        let mut config: AgentConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        if config.control_socket.as_os_str().is_empty() {
            config.control_socket = PathBuf::from(format!("/run/dmpd/dmpd-{}.sock", config.node));
        }
        if config.eal.file_prefix.is_none() {
            config.eal.file_prefix = Some(format!("dmpd-{}", config.node));
        }
        Ok(config)
    }

    /// Checks every rule; the first violation is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=0xfffe).contains(&self.node) {
            return Err(invalid(
                "node",
                format!("{} is out of range 1..=65534", self.node),
            ));
        }
        if self.ethertype < 0x0600 {
            return Err(invalid(
                "ethertype",
                format!(
                    "{:#06x} is below 0x0600 (it would be an 802.3 length)",
                    self.ethertype
                ),
            ));
        }
        if !(10..=60_000).contains(&self.heartbeat_ms) {
            return Err(invalid(
                "heartbeat_ms",
                format!("{} is out of range 10..=60000", self.heartbeat_ms),
            ));
        }
        if self.miss_limit == 0 {
            return Err(invalid("miss_limit", "must be at least 1"));
        }
        if self.node_expiry_periods == 0 {
            return Err(invalid("node_expiry_periods", "must be at least 1"));
        }
        if !(1500..=9000).contains(&self.mtu) {
            return Err(invalid(
                "mtu",
                format!("{} is out of range 1500..=9000", self.mtu),
            ));
        }
        match &self.key_file {
            None if !self.allow_unauthenticated => {
                return Err(invalid(
                    "key_file",
                    "no key file given; set `allow_unauthenticated = true` to run without \
                     authentication",
                ))
            }
            Some(p) if p.as_os_str().is_empty() => return Err(invalid("key_file", "empty path")),
            _ => {}
        }
        if self.control_socket.as_os_str().is_empty() {
            return Err(invalid("control_socket", "empty path"));
        }
        if let Some(p) = &self.status_json {
            if p.as_os_str().is_empty() {
                return Err(invalid("status_json", "empty path"));
            }
        }
        self.validate_eal()?;
        self.validate_ports()?;
        self.validate_balancer()?;
        if self.idle.backoff_after_polls == 0 {
            return Err(invalid("idle.backoff_after_polls", "must be at least 1"));
        }
        if self.idle.max_sleep_us > 1_000_000 {
            return Err(invalid(
                "idle.max_sleep_us",
                format!("{} is out of range 0..=1000000", self.idle.max_sleep_us),
            ));
        }
        self.validate_pipes()
    }

    fn validate_eal(&self) -> Result<(), ConfigError> {
        match self.eal.file_prefix.as_deref() {
            Some(p) if p.is_empty() || p.contains('/') || p.chars().any(char::is_whitespace) => {
                return Err(invalid(
                    "eal.file_prefix",
                    format!("{p:?} must be non-empty, without '/' or whitespace"),
                ));
            }
            _ => {}
        }
        if let Some(l) = self.eal.lcores.as_deref() {
            if l.is_empty() || l.chars().any(char::is_whitespace) {
                return Err(invalid(
                    "eal.lcores",
                    format!("{l:?} must be non-empty, without whitespace"),
                ));
            }
        }
        for arg in &self.eal.args {
            let flag = arg.split('=').next().unwrap_or("");
            let reason = match flag {
                "--file-prefix" => "use `eal.file_prefix` instead of --file-prefix",
                "--lcores" | "-l" | "-c" if self.eal.lcores.is_some() => {
                    "`eal.lcores` is set: do not also give --lcores, -l or -c"
                }
                "--lcores" => "use `eal.lcores` instead of --lcores",
                _ => continue,
            };
            return Err(invalid("eal.args", reason));
        }
        Ok(())
    }

    fn validate_ports(&self) -> Result<(), ConfigError> {
        if self.ports.is_empty() || self.ports.len() > MAX_PORTS {
            return Err(invalid(
                "port",
                format!(
                    "{} ports configured; 1 to {MAX_PORTS} [[port]] entries are needed",
                    self.ports.len()
                ),
            ));
        }
        let no_pci = self.eal.args.iter().any(|a| a == "--no-pci");
        let mut names = HashSet::new();
        for (i, port) in self.ports.iter().enumerate() {
            let field = |f: &str| format!("port[{i}].{f}");
            if port.devargs.trim().is_empty() || port.devargs.chars().any(char::is_whitespace) {
                return Err(invalid(
                    field("devargs"),
                    format!("{:?} must be non-empty, without whitespace", port.devargs),
                ));
            }
            let name = port.name();
            if name.is_empty() {
                return Err(invalid(
                    field("devargs"),
                    format!("{:?} has no device name", port.devargs),
                ));
            }
            if !names.insert(name) {
                return Err(invalid(
                    field("devargs"),
                    format!("device name {name:?} is used by another port"),
                ));
            }
            if no_pci && !port.is_vdev() {
                return Err(invalid(
                    field("devargs"),
                    format!(
                        "{name:?} is not a virtual device (net_*) but eal.args contains --no-pci"
                    ),
                ));
            }
            if port.bandwidth_mbps == 0 {
                return Err(invalid(field("bandwidth_mbps"), "must be at least 1"));
            }
            if let Some(m) = &port.mac {
                match parse_mac(m) {
                    None => {
                        return Err(invalid(
                            field("mac"),
                            format!("{m:?} is not a MAC address like \"02:00:00:00:00:01\""),
                        ))
                    }
                    Some(a) if a[0] & 1 == 1 || a == [0; 6] => {
                        return Err(invalid(
                            field("mac"),
                            format!("{m:?} must be a unicast, non-zero address"),
                        ))
                    }
                    Some(_) => {}
                }
            }
            for (f, q) in [("rx_queues", port.rx_queues), ("tx_queues", port.tx_queues)] {
                if !(1..=MAX_QUEUES).contains(&q) {
                    return Err(invalid(
                        field(f),
                        format!("{q} is out of range 1..={MAX_QUEUES}"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_balancer(&self) -> Result<(), ConfigError> {
        let b = &self.balancer;
        let unit = |field: &str, v: f64| {
            if v.is_finite() && (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(invalid(field, format!("{v} is outside [0, 1]")))
            }
        };
        for (i, &w) in b.weights.iter().enumerate() {
            unit(&format!("balancer.weights[{i}]"), w)?;
        }
        let sum: f64 = b.weights.iter().sum();
        if (sum - 1.0).abs() > 1e-9 {
            return Err(invalid(
                "balancer.weights",
                format!("the weights sum to {sum}, not 1"),
            ));
        }
        unit("balancer.gamma", b.gamma)?;
        if !b.threshold.is_finite() || b.threshold < 0.0 {
            return Err(invalid(
                "balancer.threshold",
                format!("{} must be finite and >= 0", b.threshold),
            ));
        }
        unit("balancer.hysteresis", b.hysteresis)?;
        unit("balancer.rx_margin", b.rx_margin)?;
        if let Some(mu) = b.expected_load {
            unit("balancer.expected_load", mu)?;
        }
        Ok(())
    }

    fn validate_pipes(&self) -> Result<(), ConfigError> {
        let mut ids = HashSet::new();
        for (i, pipe) in self.pipes.iter().enumerate() {
            let field = |f: &str| format!("pipe[{i}].{f}");
            if !ids.insert(pipe.id) {
                return Err(invalid(
                    field("id"),
                    format!("pipe id {} is used by another pipe", pipe.id),
                ));
            }
            if !pipe.threshold_mbps.is_finite() || pipe.threshold_mbps < 0.0 {
                return Err(invalid(
                    field("threshold_mbps"),
                    format!(
                        "{} must be finite and >= 0 (0 = unlimited)",
                        pipe.threshold_mbps
                    ),
                ));
            }
            if !pipe.buffer.is_power_of_two() || !(2..=8192).contains(&pipe.buffer) {
                return Err(invalid(
                    field("buffer"),
                    format!("{} must be a power of two in 2..=8192", pipe.buffer),
                ));
            }
        }
        Ok(())
    }

    /// The heartbeat period.
    pub fn heartbeat_period(&self) -> Duration {
        Duration::from_millis(self.heartbeat_ms)
    }

    /// The EAL file prefix (after parsing, always set).
    pub fn file_prefix(&self) -> String {
        self.eal
            .file_prefix
            .clone()
            .unwrap_or_else(|| format!("dmpd-{}", self.node))
    }

    /// The full EAL argument list, without the program name (as
    /// `ffi::eal::Eal::init` takes it): `eal.args`, then
    /// `--file-prefix=<prefix>`, `--lcores=<lcores>` if set, and one
    /// `--vdev=<devargs>` (virtual devices) or `-a <devargs>` (others) per
    /// port in port order.
    pub fn eal_args(&self) -> Vec<String> {
        let mut args = self.eal.args.clone();
        args.push(format!("--file-prefix={}", self.file_prefix()));
        if let Some(l) = &self.eal.lcores {
            args.push(format!("--lcores={l}"));
        }
        for port in &self.ports {
            if port.is_vdev() {
                args.push(format!("--vdev={}", port.devargs));
            } else {
                args.push("-a".to_owned());
                args.push(port.devargs.clone());
            }
        }
        args
    }

    /// Reads the key file: `(key id, key bytes)` in file order; the **last**
    /// key is the send key, every key is accepted on receipt. Returns an
    /// empty list when there is no key file (only valid with
    /// `allow_unauthenticated`).
    ///
    /// Format: one key per line, `KEYID:HEX`, where `KEYID` is 1..=255 (0
    /// is reserved for unauthenticated frames) and `HEX` is 32 to 64 bytes
    /// in hexadecimal; blank lines and `#` comments are ignored; 1 to 8
    /// keys, ids unique. The file must not be readable by group or others
    /// (`mode & 0o077 == 0`).
    ///
    /// Rotating a key without losing a round: add the new key as the
    /// *first* line everywhere (accepted, not used), then move it to the
    /// last line everywhere (used), then delete the old one.
    pub fn load_keys(&self) -> Result<Vec<(u8, Vec<u8>)>, ConfigError> {
        match &self.key_file {
            None => Ok(Vec::new()),
            Some(path) => load_key_file(path),
        }
    }
}

/// Reads and checks a key file; see [`AgentConfig::load_keys`].
pub fn load_key_file(path: &Path) -> Result<Vec<(u8, Vec<u8>)>, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(read_err)?;
    // Check the mode of the file we opened, not of whatever the path names
    // by the time we would look again.
    let meta = file.metadata().map_err(read_err)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::KeyFilePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    if !meta.is_file() {
        return Err(ConfigError::KeyFormat {
            path: path.to_path_buf(),
            line: 0,
            reason: "not a regular file".into(),
        });
    }
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(read_err)?;
    parse_keys(&text).map_err(|(line, reason)| ConfigError::KeyFormat {
        path: path.to_path_buf(),
        line,
        reason,
    })
}

/// `(key id, key)` in file order.
type KeyList = Vec<(u8, Vec<u8>)>;

/// Parses key file text; errors carry the line number (1-based, 0 for the
/// file as a whole) and the reason.
fn parse_keys(text: &str) -> Result<KeyList, (usize, String)> {
    let mut keys: Vec<(u8, Vec<u8>)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let err = |reason: String| (line_no, reason);
        let (id, hex) = line
            .split_once(':')
            .ok_or_else(|| err("expected KEYID:HEX".into()))?;
        let id: u8 = id
            .trim()
            .parse()
            .map_err(|_| err(format!("key id {:?} is not a number in 1..=255", id.trim())))?;
        if id == 0 {
            return Err(err("key id 0 is reserved for unauthenticated frames".into()));
        }
        let key = decode_hex(hex.trim()).map_err(err)?;
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
            return Err(err(format!(
                "key {id} is {} bytes; {MIN_KEY_LEN} to {MAX_KEY_LEN} bytes ({} to {} hex digits) are needed",
                key.len(),
                MIN_KEY_LEN * 2,
                MAX_KEY_LEN * 2
            )));
        }
        if keys.iter().any(|(i, _)| *i == id) {
            return Err(err(format!("key id {id} appears twice")));
        }
        if keys.len() == MAX_KEYS {
            return Err(err(format!("more than {MAX_KEYS} keys")));
        }
        keys.push((id, key));
    }
    if keys.is_empty() {
        return Err((0, "no key found (expected lines KEYID:HEX)".into()));
    }
    Ok(keys)
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, String> {
    if hex.len() & 1 != 0 {
        return Err(format!("odd number of hex digits ({})", hex.len()));
    }
    let digit = |c: u8| -> Result<u8, String> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!("{:?} is not a hex digit", char::from(c))),
        }
    };
    hex.as_bytes()
        .chunks_exact(2)
        .map(|pair| Ok(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

impl fmt::Display for AgentConfig {
    /// One line: node, cluster, period and ports, for the start-up log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "node {} (priority {}) cluster {} period {} ms, {} port(s):",
            self.node,
            self.priority,
            self.cluster_id,
            self.heartbeat_ms,
            self.ports.len()
        )?;
        for p in &self.ports {
            write!(f, " {}", p.name())?;
        }
        Ok(())
    }
}
