//! Node configuration.

use crate::time::Duration;
use crate::wire::{AuthMode, EthernetAddress, DEFAULT_ETHERTYPE, MAX_PORTS};

/// Configuration of one [`crate::Node`].
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// This node's number (`0xffff` is reserved for "no node").
    pub node_num: u16,
    /// Election priority; higher wins, ties go to the lower `node_num`.
    /// 0 = never master.
    pub priority: u8,
    pub cluster_id: u32,
    /// EtherType of DMPD frames (default 0x88B5).
    pub ethertype: u16,
    /// MAC address of each DMPD port, in port index order (1 to 16 ports).
    pub port_macs: Vec<EthernetAddress>,
    /// Heartbeat period `P`.
    pub heartbeat_period: Duration,
    /// `K`: a port is down after `K` periods without hearing heartbeats
    /// (for the master: without responses from that node's port).
    pub miss_limit: u32,
    /// The master expires a node silent for this many periods.
    pub node_expiry_periods: u32,
    /// A follower stands as candidate after its master was silent for this
    /// many periods (plus jitter).
    pub election_timeout_periods: u32,
    /// A node that just started listens this many periods (plus jitter) for
    /// a live master's heartbeat before it stands. A live master heartbeats
    /// every period, so one period is enough to find it; a cold cluster
    /// then elects in about one period instead of `election_timeout_periods`.
    pub boot_listen_periods: u32,
    /// Upper bound of the random extra wait before standing (seeded RNG).
    pub election_jitter: Duration,
    /// How long a candidate listens for better candidates before it becomes
    /// master.
    pub announce_window: Duration,
    /// Delay between the heartbeat and the table broadcast of a round.
    pub table_delay: Duration,
    /// The full table is re-sent over this many rounds (rolling refresh).
    pub refresh_rounds: u32,
    /// Publish a fresh local record (new version, fresh counters) at least
    /// every this many `set_local_metrics` calls; 0 = only on significant
    /// change.
    pub record_refresh_periods: u32,
    /// Report `SelfFaulty` after this many periods without hearing any
    /// valid frame on any port (when not master).
    pub self_fault_periods: u32,
    /// Largest Ethernet payload (1500 by default; jumbo up to 9000).
    pub mtu: usize,
    pub auth: AuthMode,
    /// Boot epoch: must grow at every restart (e.g. wall-clock ns at boot,
    /// or a counter persisted on disk).
    pub incarnation: u64,
    /// Seed of the node's RNG (election jitter).
    pub rng_seed: u64,
}

/// Invalid configuration.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    #[error("node number 0xffff is reserved")]
    ReservedNodeNum,
    #[error("between 1 and 16 ports are needed")]
    PortCount,
    #[error("heartbeat period must be at least 1 ms")]
    Period,
    #[error("miss limit, expiry, refresh and self-fault periods must be at least 1")]
    ZeroCount,
    #[error("election timeout must be at least 2 periods and above the miss limit's first period")]
    ElectionTimeout,
    #[error("election jitter plus announce window must stay below one period")]
    ElectionWindows,
    #[error("table delay must be below one period")]
    TableDelay,
    #[error("mtu must be between 1500 and 9000")]
    Mtu,
    #[error("duplicate or multicast port MAC")]
    PortMac,
}

impl NodeConfig {
    /// Defaults: priority 1, 100 ms period, K = 3, expiry 8 periods,
    /// election after 3 silent periods + up to P/4 jitter, P/4 announce
    /// window, table at P/4, refresh over 8 rounds, records refreshed every
    /// 16 periods, self-fault after 8 periods, MTU 1500.
    pub fn new(
        node_num: u16,
        cluster_id: u32,
        port_macs: &[EthernetAddress],
        auth: AuthMode,
    ) -> Self {
        let p = Duration::from_millis(100);
        NodeConfig {
            node_num,
            priority: 1,
            cluster_id,
            ethertype: DEFAULT_ETHERTYPE,
            port_macs: port_macs.to_vec(),
            heartbeat_period: p,
            miss_limit: 3,
            node_expiry_periods: 8,
            election_timeout_periods: 3,
            boot_listen_periods: 1,
            election_jitter: p / 4,
            announce_window: p / 4,
            table_delay: p / 4,
            refresh_rounds: 8,
            record_refresh_periods: 16,
            self_fault_periods: 8,
            mtu: 1500,
            auth,
            incarnation: 1,
            rng_seed: u64::from(node_num),
        }
    }

    /// Set the period and scale the sub-period timers (jitter, window,
    /// table delay) to P/4.
    pub fn with_period(mut self, p: Duration) -> Self {
        self.heartbeat_period = p;
        self.election_jitter = p / 4;
        self.announce_window = p / 4;
        self.table_delay = p / 4;
        self
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_num == 0xffff {
            return Err(ConfigError::ReservedNodeNum);
        }
        if self.port_macs.is_empty() || self.port_macs.len() > MAX_PORTS {
            return Err(ConfigError::PortCount);
        }
        for (i, m) in self.port_macs.iter().enumerate() {
            if m.is_multicast() || self.port_macs[..i].contains(m) {
                return Err(ConfigError::PortMac);
            }
        }
        if self.heartbeat_period < Duration::from_millis(1) {
            return Err(ConfigError::Period);
        }
        if self.miss_limit == 0
            || self.node_expiry_periods == 0
            || self.refresh_rounds == 0
            || self.self_fault_periods == 0
        {
            return Err(ConfigError::ZeroCount);
        }
        if self.boot_listen_periods == 0 {
            return Err(ConfigError::ElectionTimeout);
        }
        if self.election_timeout_periods < 2 {
            return Err(ConfigError::ElectionTimeout);
        }
        if self.election_jitter + self.announce_window >= self.heartbeat_period {
            return Err(ConfigError::ElectionWindows);
        }
        if self.table_delay >= self.heartbeat_period {
            return Err(ConfigError::TableDelay);
        }
        if !(1500..=9000).contains(&self.mtu) {
            return Err(ConfigError::Mtu);
        }
        Ok(())
    }

    /// Number of DMPD ports.
    pub fn ports(&self) -> usize {
        self.port_macs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        let macs = [
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            EthernetAddress([2, 0, 0, 0, 0, 2]),
        ];
        let c = NodeConfig::new(1, 7, &macs, AuthMode::None);
        assert_eq!(c.validate(), Ok(()));
        let mut bad = c.clone();
        bad.port_macs.clear();
        assert_eq!(bad.validate(), Err(ConfigError::PortCount));
        let mut bad = c.clone();
        bad.port_macs[1] = bad.port_macs[0];
        assert_eq!(bad.validate(), Err(ConfigError::PortMac));
        let mut bad = c.clone();
        bad.election_timeout_periods = 1;
        assert_eq!(bad.validate(), Err(ConfigError::ElectionTimeout));
        let mut bad = c.clone();
        bad.mtu = 1000;
        assert_eq!(bad.validate(), Err(ConfigError::Mtu));
        let mut bad = c;
        bad.election_jitter = bad.heartbeat_period;
        assert_eq!(bad.validate(), Err(ConfigError::ElectionWindows));
    }
}
