//! Our own DPDK 22.11 binding: `sys` (bindgen output plus a C shim for the
//! static-inline functions) and thin safe wrappers over EAL, mempools,
//! mbufs, ethdev ports and rings.
//!
//! EAL initialises once per process ([`Eal::init`]); tests that need it run in
//! their own test binary or spawn a process.

pub mod sys;

#[cfg(not(feature = "rustdoc"))]
mod eal;
#[cfg(not(feature = "rustdoc"))]
mod error;
#[cfg(not(feature = "rustdoc"))]
mod ethdev;
#[cfg(not(feature = "rustdoc"))]
mod ids;
#[cfg(not(feature = "rustdoc"))]
mod mbuf;
#[cfg(not(feature = "rustdoc"))]
mod mempool;
#[cfg(not(feature = "rustdoc"))]
mod ring;
#[cfg(not(feature = "rustdoc"))]
pub mod rss;

#[cfg(not(feature = "rustdoc"))]
pub use eal::{cycles, Eal, ProcessType};
#[cfg(not(feature = "rustdoc"))]
pub use error::{strerror, FfiError, ToResult};
#[cfg(not(feature = "rustdoc"))]
pub use ethdev::{DevInfo, LinkStatus, Port, PortConfig, PortStats};
#[cfg(not(feature = "rustdoc"))]
pub use ids::{LcoreId, PortId, QueueId, SocketId};
#[cfg(not(feature = "rustdoc"))]
pub use mbuf::{DrainPrefetched, Mbuf, MbufBurst};
#[cfg(not(feature = "rustdoc"))]
pub use mempool::Mempool;
#[cfg(not(feature = "rustdoc"))]
pub use ring::{Ring, RingFlags};

/// `RTE_MBUF_DEFAULT_BUF_SIZE`: 2048 bytes of data plus the headroom.
pub const MBUF_DEFAULT_BUF_SIZE: u16 = 2048 + 128;
