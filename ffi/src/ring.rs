//! Named lock-free rings (shared between processes in hugepage memory).

use std::ffi::{c_void, CString};
use std::ptr::NonNull;

use crate::error::{FfiError, ToResult};
use crate::ids::SocketId;
use crate::mbuf::MbufBurst;
use crate::sys;

/// Producer/consumer modes of a ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingFlags {
    /// Exactly one thread enqueues (cheaper).
    pub single_producer: bool,
    /// Exactly one thread dequeues (cheaper).
    pub single_consumer: bool,
}

/// An `rte_ring` of pointers. Created rings are freed on drop; looked-up
/// rings are not.
pub struct Ring {
    raw: NonNull<sys::rte_ring>,
    owned: bool,
}

// SAFETY: rte_ring is designed for concurrent use; the SP/SC flags are a
// contract the creator states, documented on RingFlags.
unsafe impl Send for Ring {}
// SAFETY: as above.
unsafe impl Sync for Ring {}

impl Ring {
    /// Creates a ring with `count` slots (a power of two; one slot is kept
    /// empty, so it holds `count - 1` objects).
    pub fn create(
        name: &str,
        count: u32,
        socket: SocketId,
        flags: RingFlags,
    ) -> Result<Ring, FfiError> {
        if !count.is_power_of_two() {
            return Err(FfiError::InvalidArgument {
                call: "rte_ring_create",
                reason: format!("count {count} is not a power of two"),
            });
        }
        let cname = cstr(name, "rte_ring_create")?;
        let mut f = 0;
        if flags.single_producer {
            f |= sys::RING_F_SP_ENQ;
        }
        if flags.single_consumer {
            f |= sys::RING_F_SC_DEQ;
        }
        // SAFETY: valid C string; DPDK copies it.
        let raw = unsafe { sys::rte_ring_create(cname.as_ptr(), count, socket.raw(), f) }
            .into_result("rte_ring_create")?;
        Ok(Ring { raw, owned: true })
    }

    /// Finds a ring by name (in a secondary process: the primary's ring).
    pub fn lookup(name: &str) -> Result<Ring, FfiError> {
        let cname = cstr(name, "rte_ring_lookup")?;
        // SAFETY: valid C string.
        let raw = unsafe { sys::rte_ring_lookup(cname.as_ptr()) }.into_result("rte_ring_lookup")?;
        Ok(Ring { raw, owned: false })
    }

    /// Enqueues as many pointers as fit; returns how many.
    #[inline]
    pub fn enqueue_burst(&self, objs: &[*mut c_void]) -> usize {
        // SAFETY: objs is a valid array; the ring stores the values only.
        unsafe {
            sys::_rte_ring_enqueue_burst(
                self.raw.as_ptr(),
                objs.as_ptr(),
                objs.len() as u32,
                std::ptr::null_mut(),
            ) as usize
        }
    }

    /// Dequeues up to `out.len()` pointers; returns how many.
    #[inline]
    pub fn dequeue_burst(&self, out: &mut [*mut c_void]) -> usize {
        // SAFETY: out has room for out.len() entries.
        unsafe {
            sys::_rte_ring_dequeue_burst(
                self.raw.as_ptr(),
                out.as_mut_ptr(),
                out.len() as u32,
                std::ptr::null_mut(),
            ) as usize
        }
    }

    /// Moves mbufs from the front of `burst` into the ring; what did not fit
    /// stays in the burst. Returns how many moved.
    #[inline]
    pub fn enqueue_mbufs<const N: usize>(&self, burst: &mut MbufBurst<N>) -> usize {
        let len = burst.len();
        if len == 0 {
            return 0;
        }
        // SAFETY: the first len entries are owned mbufs; ownership of the
        // first n passes to the ring's consumer.
        let n = unsafe {
            sys::_rte_ring_enqueue_burst(
                self.raw.as_ptr(),
                burst.held_ptr() as *const *mut c_void,
                len as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: n entries were handed over.
        unsafe { burst.consume_front(n) };
        n
    }

    /// Dequeues mbufs into the burst's free room. The ring must carry only
    /// mbufs enqueued with [`Ring::enqueue_mbufs`].
    #[inline]
    pub fn dequeue_mbufs<const N: usize>(&self, burst: &mut MbufBurst<N>) -> usize {
        self.dequeue_mbufs_max(burst, N)
    }

    /// Like [`Ring::dequeue_mbufs`], taking at most `max` mbufs (for callers
    /// that budget by rate or by room downstream).
    #[inline]
    pub fn dequeue_mbufs_max<const N: usize>(&self, burst: &mut MbufBurst<N>, max: usize) -> usize {
        let (ptr, room) = burst.spare_ptr();
        let room = room.min(max);
        if room == 0 {
            return 0;
        }
        // SAFETY: room entries of space; the ring yields owned mbufs.
        let n = unsafe {
            sys::_rte_ring_dequeue_burst(
                self.raw.as_ptr(),
                ptr as *mut *mut c_void,
                room as u32,
                std::ptr::null_mut(),
            )
        } as usize;
        // SAFETY: n entries filled.
        unsafe { burst.grow(n) };
        n
    }

    /// Objects in the ring.
    pub fn count(&self) -> u32 {
        // SAFETY: read of the ring's indices.
        unsafe { sys::_rte_ring_count(self.raw.as_ptr()) }
    }

    /// Free slots.
    pub fn free_count(&self) -> u32 {
        // SAFETY: read of the ring's indices.
        unsafe { sys::_rte_ring_free_count(self.raw.as_ptr()) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: created by us; objects left inside are the owner's concern.
            unsafe { sys::rte_ring_free(self.raw.as_ptr()) }
        }
    }
}

fn cstr(s: &str, call: &'static str) -> Result<CString, FfiError> {
    CString::new(s).map_err(|_| FfiError::InvalidArgument {
        call,
        reason: "name contains a NUL byte".into(),
    })
}
