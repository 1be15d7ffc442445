//! Packet-buffer mempools.

use std::ffi::CString;
use std::ptr::NonNull;

use crate::error::{FfiError, ToResult};
use crate::ids::SocketId;
use crate::sys;

/// A mempool of mbufs. Created pools are freed on drop; looked-up pools
/// (owned by another process or component) are not.
pub struct Mempool {
    raw: NonNull<sys::rte_mempool>,
    owned: bool,
}

// SAFETY: rte_mempool get/put are multi-producer/multi-consumer safe; the
// per-lcore caches are indexed by the calling lcore, not by this handle.
unsafe impl Send for Mempool {}
// SAFETY: as above; no method takes interior state without DPDK's own locking.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `n` mbufs with `data_room` bytes each (headroom
    /// included; use `RTE_MBUF_DEFAULT_BUF_SIZE` for standard frames).
    pub fn new_pktmbuf(
        name: &str,
        n: u32,
        cache: u32,
        data_room: u16,
        socket: SocketId,
    ) -> Result<Mempool, FfiError> {
        let cname = CString::new(name).map_err(|_| FfiError::InvalidArgument {
            call: "rte_pktmbuf_pool_create",
            reason: "name contains a NUL byte".into(),
        })?;
        if cache > sys::RTE_MEMPOOL_CACHE_MAX_SIZE {
            return Err(FfiError::InvalidArgument {
                call: "rte_pktmbuf_pool_create",
                reason: format!(
                    "cache {cache} above RTE_MEMPOOL_CACHE_MAX_SIZE {}",
                    sys::RTE_MEMPOOL_CACHE_MAX_SIZE
                ),
            });
        }
        // SAFETY: valid C string; DPDK copies the name.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket.raw())
        }
        .into_result("rte_pktmbuf_pool_create")?;
        Ok(Mempool { raw, owned: true })
    }

    /// Finds a pool created by this or the primary process.
    pub fn lookup(name: &str) -> Result<Mempool, FfiError> {
        let cname = CString::new(name).map_err(|_| FfiError::InvalidArgument {
            call: "rte_mempool_lookup",
            reason: "name contains a NUL byte".into(),
        })?;
        // SAFETY: valid C string.
        let raw =
            unsafe { sys::rte_mempool_lookup(cname.as_ptr()) }.into_result("rte_mempool_lookup")?;
        Ok(Mempool { raw, owned: false })
    }

    /// Free objects (pool ring plus per-lcore caches).
    pub fn avail_count(&self) -> u32 {
        // SAFETY: read-only walk of the pool.
        unsafe { sys::_rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Objects currently allocated.
    pub fn in_use_count(&self) -> u32 {
        // SAFETY: read-only walk of the pool.
        unsafe { sys::_rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: we created it; mbufs still out are the caller's bug but
            // rte_mempool_free does not touch them.
            unsafe { sys::rte_mempool_free(self.raw.as_ptr()) }
        }
    }
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("avail", &self.avail_count())
            .field("in_use", &self.in_use_count())
            .finish()
    }
}
