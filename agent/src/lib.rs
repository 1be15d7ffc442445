//! The DMPD agent engine: control lcore (election, monitoring, heartbeats)
//! plus polling lcores for the NIC queues, pipes for applications.

pub mod client;
pub mod config;
pub mod engine;
pub mod sysinfo;

pub use engine::pipe::{Message, Pipe, PipeParams, SendError};
pub use engine::{Engine, EngineError, EngineHandle};
pub mod ctl;
pub mod metrics;
pub mod record;
pub mod reliable;
pub mod render;
pub mod runner;
pub mod telemetry;
pub mod watchdog;
