//! Newtype ids so that a port number is never passed as a queue number.

use std::fmt;

use crate::sys;

/// An ethdev port id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(u16);

impl PortId {
    pub const fn new(raw: u16) -> Self {
        PortId(raw)
    }
    pub const fn raw(self) -> u16 {
        self.0
    }
}

impl fmt::Debug for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port{}", self.0)
    }
}
impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An rx or tx queue index on a port.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(u16);

impl QueueId {
    pub const fn new(raw: u16) -> Self {
        QueueId(raw)
    }
    pub const fn raw(self) -> u16 {
        self.0
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "q{}", self.0)
    }
}

/// An EAL logical core id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(u32);

impl LcoreId {
    pub const fn new(raw: u32) -> Self {
        LcoreId(raw)
    }
    pub const fn raw(self) -> u32 {
        self.0
    }
    /// The lcore the calling thread runs on (`u32::MAX` for non-EAL threads).
    pub fn current() -> Self {
        // SAFETY: reads a thread-local through the shim.
        LcoreId(unsafe { sys::_rte_lcore_id() })
    }
    /// The main lcore.
    pub fn main() -> Self {
        // SAFETY: plain getter on EAL's config.
        LcoreId(unsafe { sys::rte_get_main_lcore() })
    }
    /// True for threads that EAL did not create or register.
    pub fn is_any(self) -> bool {
        self.0 == u32::MAX
    }
}

impl fmt::Debug for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            write!(f, "lcore(any)")
        } else {
            write!(f, "lcore{}", self.0)
        }
    }
}

/// A NUMA socket id; `SocketId::ANY` lets DPDK choose.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct SocketId(i32);

impl SocketId {
    pub const ANY: SocketId = SocketId(-1);
    pub const fn new(raw: i32) -> Self {
        SocketId(raw)
    }
    pub const fn raw(self) -> i32 {
        self.0
    }
    /// The socket of the calling lcore.
    pub fn current() -> Self {
        // SAFETY: plain getter.
        SocketId(unsafe { sys::rte_socket_id() } as i32)
    }
}
