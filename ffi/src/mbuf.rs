//! Owned packet buffers and fixed-size bursts of them.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use crate::error::FfiError;
use crate::mempool::Mempool;
use crate::sys;

/// One owned, single-segment packet buffer. Freed back to its pool on drop;
/// TX takes ownership through [`Mbuf::into_raw`].
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<sys::rte_mbuf>,
}

// SAFETY: an mbuf is owned by exactly one holder at a time (this handle);
// moving it to another lcore is how DPDK pipelines work. Freeing from any
// thread is allowed by the mempool.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Allocates an empty mbuf.
    pub fn alloc(pool: &Mempool) -> Result<Mbuf, FfiError> {
        // SAFETY: pool is valid for the call.
        let p = unsafe { sys::_rte_pktmbuf_alloc(pool.as_ptr()) };
        NonNull::new(p)
            .map(|raw| Mbuf { raw })
            .ok_or(FfiError::from_errno("rte_pktmbuf_alloc", libc::ENOBUFS))
    }

    /// Allocates an mbuf holding a copy of `bytes`.
    pub fn from_slice(pool: &Mempool, bytes: &[u8]) -> Result<Mbuf, FfiError> {
        let mut m = Mbuf::alloc(pool)?;
        m.append(bytes.len())?.copy_from_slice(bytes);
        Ok(m)
    }

    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf that nobody else owns or frees.
    pub unsafe fn from_raw(raw: NonNull<sys::rte_mbuf>) -> Mbuf {
        Mbuf { raw }
    }

    /// Gives up ownership (for TX or a ring); the caller must free it.
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        ManuallyDrop::new(self).raw
    }

    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.raw.as_ptr()
    }

    /// Bytes in the first segment. Read from the field directly (what
    /// `rte_pktmbuf_data_len` does), so the data path makes no call per
    /// frame; `tests/eal_ports.rs` checks it against the C function.
    #[inline]
    pub fn len(&self) -> usize {
        // SAFETY: valid mbuf owned by self; plain field read.
        unsafe { (*self.raw.as_ptr()).data_len as usize }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total packet length over all segments.
    pub fn pkt_len(&self) -> usize {
        // SAFETY: valid mbuf.
        unsafe { sys::_rte_pktmbuf_pkt_len(self.raw.as_ptr()) as usize }
    }

    /// True when the whole packet is in the first segment.
    pub fn is_contiguous(&self) -> bool {
        // SAFETY: valid mbuf.
        unsafe { sys::_rte_mbuf_is_contiguous(self.raw.as_ptr()) != 0 }
    }

    /// Start of the first segment's data: `buf_addr + data_off`, as
    /// `rte_pktmbuf_mtod` computes it (inline: no call per frame).
    #[inline]
    fn mtod(&self) -> *mut u8 {
        // SAFETY: valid mbuf owned by self; plain field reads, and data_off
        // is within the buffer by the mbuf's invariants.
        unsafe {
            let m = &*self.raw.as_ptr();
            (m.buf_addr as *mut u8).add(usize::from(m.data_off))
        }
    }

    /// The first segment's data.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: mtod points at data_len initialised bytes owned by self.
        unsafe { std::slice::from_raw_parts(self.mtod(), self.len()) }
    }

    /// The first segment's data, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as data(), and &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.mtod(), self.len()) }
    }

    /// The C functions `rte_pktmbuf_mtod` and `rte_pktmbuf_data_len` (through
    /// the shim), for tests that check the inline accessors against them.
    pub fn data_raw_c(&self) -> (*const u8, usize) {
        // SAFETY: valid mbuf.
        unsafe {
            (
                sys::_rte_pktmbuf_mtod(self.raw.as_ptr()) as *const u8,
                sys::_rte_pktmbuf_data_len(self.raw.as_ptr()) as usize,
            )
        }
    }

    /// Room left after the data.
    pub fn tailroom(&self) -> usize {
        // SAFETY: valid mbuf.
        unsafe { sys::_rte_pktmbuf_tailroom(self.raw.as_ptr()) as usize }
    }

    /// Grows the data by `len` bytes and returns them (uninitialised content
    /// from the pool: callers overwrite it).
    pub fn append(&mut self, len: usize) -> Result<&mut [u8], FfiError> {
        let too_big = || FfiError::InvalidArgument {
            call: "rte_pktmbuf_append",
            reason: format!("{len} bytes do not fit the tailroom {}", self.tailroom()),
        };
        let l16 = u16::try_from(len).map_err(|_| too_big())?;
        // SAFETY: valid mbuf; append returns NULL when there is no room.
        let p = unsafe { sys::_rte_pktmbuf_append(self.raw.as_ptr(), l16) };
        if p.is_null() {
            return Err(too_big());
        }
        // SAFETY: p points at len bytes inside the buffer, owned by self.
        Ok(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, len) })
    }

    /// Removes `len` bytes from the end.
    pub fn trim(&mut self, len: usize) -> Result<(), FfiError> {
        let l16 = u16::try_from(len).unwrap_or(u16::MAX);
        // SAFETY: valid mbuf; trim checks the length.
        if len > self.len() || unsafe { sys::_rte_pktmbuf_trim(self.raw.as_ptr(), l16) } != 0 {
            return Err(FfiError::InvalidArgument {
                call: "rte_pktmbuf_trim",
                reason: format!("cannot trim {len} of {} bytes", self.len()),
            });
        }
        Ok(())
    }

    /// Empties the mbuf for reuse.
    pub fn reset(&mut self) {
        // SAFETY: valid mbuf owned by self.
        unsafe { sys::_rte_pktmbuf_reset(self.raw.as_ptr()) }
    }

    /// The mbuf's port field. PMDs set it to the receiving port id on rx;
    /// the agent overwrites it with its own port index (see `set_port`).
    #[inline]
    pub fn port(&self) -> u16 {
        // SAFETY: valid mbuf owned by self; plain field read.
        unsafe { (*self.raw.as_ptr()).port }
    }

    /// Tags the mbuf with a port number (not every PMD sets it: net_ring
    /// passes mbufs through untouched).
    #[inline]
    pub fn set_port(&mut self, port: u16) {
        // SAFETY: exclusive access; plain field write.
        unsafe { (*self.raw.as_ptr()).port = port }
    }

    /// The RSS hash the NIC wrote (0 when the PMD does not compute one).
    pub fn rss_hash(&self) -> u32 {
        // SAFETY: valid mbuf.
        unsafe { sys::_rte_mbuf_rss_hash(self.raw.as_ptr()) }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own it; free returns all segments to their pools.
        unsafe { sys::_rte_pktmbuf_free(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mbuf({} bytes)", self.len())
    }
}

/// The mbufs of a burst, moved out in order, with the packet data of the
/// frame [`PREFETCH_AHEAD`] places on prefetched ([`MbufBurst::drain_prefetched`]).
/// Two slice iterators (a pointer compare each per frame) instead of an
/// index with two bounds checks. Mbufs not taken when it is dropped are
/// freed.
pub struct DrainPrefetched<'a> {
    cur: std::slice::Iter<'a, *mut sys::rte_mbuf>,
    ahead: std::slice::Iter<'a, *mut sys::rte_mbuf>,
}

impl Iterator for DrainPrefetched<'_> {
    type Item = Mbuf;

    #[inline(always)]
    fn next(&mut self) -> Option<Mbuf> {
        let &p = self.cur.next()?;
        if let Some(&q) = self.ahead.next() {
            prefetch_data(q);
        }
        // SAFETY: as in drain: the entries were owned and non-null, the
        // burst's len is 0 now, and each is handed out once.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(p)) })
    }
}

impl Drop for DrainPrefetched<'_> {
    fn drop(&mut self) {
        for m in self.by_ref() {
            drop(m);
        }
    }
}

/// How many frames ahead [`MbufBurst::drain_prefetched`] prefetches packet
/// data (l2fwd's `PREFETCH_OFFSET`).
pub const PREFETCH_AHEAD: usize = 3;

/// A hint to bring the cache line at `p` into all cache levels; never
/// faults, whatever `p` is.
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it does not access memory architecturally.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Prefetches the start of an owned mbuf's packet data (`rte_pktmbuf_mtod`).
#[inline(always)]
fn prefetch_data(m: *mut sys::rte_mbuf) {
    // SAFETY: m is an owned, valid mbuf (a held entry of a burst); the
    // header fields are plain reads.
    let p = unsafe { ((*m).buf_addr as *const u8).wrapping_add(usize::from((*m).data_off)) };
    prefetch(p);
}

/// Up to `N` owned mbufs in a stack array, the unit of rx/tx bursts. Whatever
/// is still held on drop is freed in one bulk call.
pub struct MbufBurst<const N: usize = 32> {
    ptrs: [*mut sys::rte_mbuf; N],
    len: usize,
}

// SAFETY: holds owned mbufs only (see Mbuf).
unsafe impl<const N: usize> Send for MbufBurst<N> {}

impl<const N: usize> Default for MbufBurst<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> MbufBurst<N> {
    pub const CAPACITY: usize = N;

    pub const fn new() -> Self {
        MbufBurst {
            ptrs: [std::ptr::null_mut(); N],
            len: 0,
        }
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// Adds an mbuf; gives it back when full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        // One test for "full" and the index (len never exceeds N).
        let Some(slot) = self.ptrs.get_mut(self.len) else {
            return Err(m);
        };
        *slot = m.into_raw().as_ptr();
        self.len += 1;
        Ok(())
    }

    /// Removes the last mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: entries below len are owned, non-null mbufs.
        Some(unsafe { Mbuf::from_raw(NonNull::new_unchecked(self.ptrs[self.len])) })
    }

    /// The held mbufs.
    #[inline]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: Mbuf is repr(transparent) over NonNull<rte_mbuf>, which has
        // the layout of *mut rte_mbuf; entries below len are non-null.
        unsafe { std::slice::from_raw_parts(self.ptrs.as_ptr() as *const Mbuf, self.len) }
    }

    /// The held mbufs, writable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as as_slice, with exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptrs.as_mut_ptr() as *mut Mbuf, self.len) }
    }

    /// Moves every mbuf out, in order.
    pub fn drain(&mut self) -> impl Iterator<Item = Mbuf> + '_ {
        let n = std::mem::replace(&mut self.len, 0);
        self.ptrs[..n]
            .iter()
            // SAFETY: the first n entries were owned and non-null; len is 0
            // now, so each is handed out exactly once.
            .map(|&p| unsafe { Mbuf::from_raw(NonNull::new_unchecked(p)) })
    }

    /// Moves every mbuf out, in order, like [`Self::drain`], with DPDK's
    /// l2fwd prefetching of the packet data [`PREFETCH_AHEAD`] frames
    /// ahead of the one handed out, so that the caller's first read of
    /// each frame does not wait for memory (the data's address is read
    /// from the mbuf header of that frame, a demand load).
    pub fn drain_prefetched(&mut self) -> DrainPrefetched<'_> {
        let n = std::mem::replace(&mut self.len, 0);
        let ptrs = &self.ptrs[..n];
        for &p in &ptrs[..n.min(PREFETCH_AHEAD)] {
            prefetch_data(p);
        }
        DrainPrefetched {
            cur: ptrs.iter(),
            ahead: ptrs.get(PREFETCH_AHEAD..).unwrap_or(&[]).iter(),
        }
    }

    /// Frees everything held.
    pub fn clear(&mut self) {
        if self.len > 0 {
            // SAFETY: owned mbufs, freed once; len reset below.
            unsafe { sys::_rte_pktmbuf_free_bulk(self.ptrs.as_mut_ptr(), self.len as u32) };
            self.len = 0;
        }
    }

    /// Raw room after the held mbufs, for burst calls that fill the array.
    pub(crate) fn spare_ptr(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        // SAFETY: len <= N.
        (
            unsafe { self.ptrs.as_mut_ptr().add(self.len) },
            N - self.len,
        )
    }

    /// Records that `n` more entries were filled by a burst call.
    pub(crate) unsafe fn grow(&mut self, n: usize) {
        debug_assert!(self.len + n <= N);
        self.len += n;
    }

    /// Raw view of the held entries, for burst calls that consume them.
    pub(crate) fn held_ptr(&mut self) -> *mut *mut sys::rte_mbuf {
        self.ptrs.as_mut_ptr()
    }

    /// Forgets the first `n` entries (consumed by TX or a ring) and moves the
    /// rest to the front, keeping their order.
    pub(crate) unsafe fn consume_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        self.ptrs.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

impl<const N: usize> Drop for MbufBurst<N> {
    fn drop(&mut self) {
        self.clear();
    }
}
