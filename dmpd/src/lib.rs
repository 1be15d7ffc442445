//! DMPD protocol (SPEC sections 1-3): wire format, cluster table and master
//! election, sans-IO.
//!
//! Nothing here reads a clock, draws OS randomness or touches a device: the
//! agent (or a test, or the simulator) passes `now` into every call, moves
//! frames in and out through [`Node::handle_frame`] and
//! [`Node::poll_transmit`], and sleeps until [`Node::poll_timeout`].
//! Randomness (election jitter) comes from `NodeConfig::rng_seed`.
//!
//! Call order each time the agent wakes up: `handle_frame` for every
//! received control frame, `handle_timeout(now)` when `poll_timeout()` has
//! passed, then drain `poll_transmit` and `poll_event`.

#![forbid(unsafe_code)]

pub mod config;
pub mod node;
pub mod table;
pub mod time;
pub mod wire;

pub use config::{ConfigError, NodeConfig};
pub use node::{Event, Node, PortMask, Role, RoundStats, Transmit};
pub use table::{ClusterTable, Entry, PeerPort};
pub use time::{Duration, Instant};
pub use wire::{
    AuthMode, KeyRing, LeaveReason, NodeMetrics, NodeRecord, NodeState, PipeRecord, PipeState,
    PortMetrics, PortRecord, PortState, Reject, RejectCounters,
};
