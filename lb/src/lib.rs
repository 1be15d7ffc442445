//! Multi-port load balancing (SPEC section 4).
//!
//! - [`toeplitz`]: Microsoft's RSS Toeplitz hash, bit-exact, table-driven,
//!   with a burst API and a run-time selected GFNI/AVX-512 path.
//! - [`tuple`](mod@tuple): hash inputs (the DMPD key tuple, IPv4/IPv6 with ports).
//! - [`flowcache`]: a data lcore's per-flow decision cache in front of both.
//! - [`load`]: the smoothed per-port load model, mean load and balance degree.
//! - [`balancer`]: the control side publishes immutable load snapshots; each
//!   data lcore owns a [`balancer::Balancer`] that decides tx/rx ports per
//!   packet without locks, allocation or reordering.
//!
//! The crate never reads the clock: callers pass `now` in nanoseconds.

pub mod balancer;
mod error;
pub mod flowcache;
#[cfg(all(target_arch = "x86_64", feature = "gfni"))]
mod gfni;
pub mod load;
pub mod toeplitz;
pub mod tuple;

pub use error::LbError;
