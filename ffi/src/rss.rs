//! DPDK's software Toeplitz implementations, used as oracles and bench
//! anchors for our own (`lb::toeplitz`). No EAL is needed for these.

use crate::sys;

/// `rte_softrss`: `tuple` holds 32-bit words in CPU byte order (DPDK's
/// convention: an IPv4 address as a host-order `u32`), `key` the RSS key as
/// bytes. The key must be at least `4 * (tuple.len() + 1)` bytes.
pub fn softrss(tuple: &[u32], key: &[u8]) -> u32 {
    assert!(
        key.len() >= 4 * (tuple.len() + 1),
        "RSS key of {} bytes too short for {} tuple words",
        key.len(),
        tuple.len()
    );
    // DPDK reads the key as u32 words: pass an aligned copy.
    let mut k = [0u32; 16];
    let words = key.len().div_ceil(4).min(16);
    bytemuck_copy(key, &mut k[..words]);
    // SAFETY: both arrays are valid for the lengths DPDK reads (checked above);
    // DPDK does not write through the tuple pointer.
    unsafe {
        sys::_rte_softrss(
            tuple.as_ptr() as *mut u32,
            tuple.len() as u32,
            k.as_ptr() as *const u8,
        )
    }
}

/// A key converted once with `rte_convert_rss_key`, for [`softrss_be`].
#[derive(Clone)]
pub struct ConvertedKey {
    words: [u32; 16],
    len: usize,
}

impl ConvertedKey {
    /// Converts a key of at most 64 bytes (a multiple of 4).
    pub fn new(key: &[u8]) -> ConvertedKey {
        assert!(
            key.len() <= 64 && key.len().is_multiple_of(4),
            "bad RSS key length"
        );
        let mut orig = [0u32; 16];
        bytemuck_copy(key, &mut orig[..key.len() / 4]);
        let mut words = [0u32; 16];
        // SAFETY: arrays of 16 words, len bytes used.
        unsafe { sys::_rte_convert_rss_key(orig.as_ptr(), words.as_mut_ptr(), key.len() as i32) };
        ConvertedKey {
            words,
            len: key.len(),
        }
    }
}

/// `rte_softrss_be`: the same hash with a pre-converted key.
pub fn softrss_be(tuple: &[u32], key: &ConvertedKey) -> u32 {
    assert!(key.len >= 4 * (tuple.len() + 1), "RSS key too short");
    // SAFETY: as softrss.
    unsafe {
        sys::_rte_softrss_be(
            tuple.as_ptr() as *mut u32,
            tuple.len() as u32,
            key.words.as_ptr() as *const u8,
        )
    }
}

/// Packs tuple bytes (network order, as our hash takes them) into the
/// host-order words `rte_softrss` expects, zero-padding the last word.
/// Zero padding does not change a Toeplitz hash.
pub fn bytes_to_tuple_words(bytes: &[u8], out: &mut [u32]) -> usize {
    let n = bytes.len().div_ceil(4);
    for (i, w) in out[..n].iter_mut().enumerate() {
        let mut b = [0u8; 4];
        let s = &bytes[i * 4..(i * 4 + 4).min(bytes.len())];
        b[..s.len()].copy_from_slice(s);
        *w = u32::from_be_bytes(b);
    }
    n
}

fn bytemuck_copy(src: &[u8], dst: &mut [u32]) {
    for (i, w) in dst.iter_mut().enumerate() {
        let mut b = [0u8; 4];
        let s = &src[(i * 4).min(src.len())..(i * 4 + 4).min(src.len())];
        b[..s.len()].copy_from_slice(s);
        // Native order: DPDK casts the byte key to u32 words in place.
        *w = u32::from_ne_bytes(b);
    }
}

/// DPDK's `rte_thash_gfni` from the GFNI-enabled anchor object, available
/// only when that object holds real GFNI code and this CPU runs it.
pub struct GfniAnchor {
    matrices: Vec<u64>,
    max_len: usize,
}

impl GfniAnchor {
    /// Why the anchor cannot run here, if it cannot.
    pub fn unavailable_reason() -> Option<&'static str> {
        // SAFETY: returns a compile-time constant.
        if unsafe { sys::_dmpd_gfni_anchor_built() } == 0 {
            return Some("the anchor object was built without GFNI code");
        }
        #[cfg(target_arch = "x86_64")]
        {
            let ok = std::arch::is_x86_feature_detected!("gfni")
                && std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512vbmi");
            if !ok {
                return Some("this CPU lacks GFNI or AVX-512 (F/BW/VL/VBMI)");
            }
            None
        }
        #[cfg(not(target_arch = "x86_64"))]
        Some("not x86_64")
    }

    /// Builds the matrices for `key`; `None` when the anchor cannot run here.
    pub fn new(key: &[u8]) -> Option<GfniAnchor> {
        if Self::unavailable_reason().is_some() {
            return None;
        }
        let mut matrices = vec![0u64; key.len()];
        // SAFETY: matrices has key.len() u64 entries, as DPDK documents.
        unsafe {
            sys::rte_thash_complete_matrix(matrices.as_mut_ptr(), key.as_ptr(), key.len() as i32)
        };
        Some(GfniAnchor {
            matrices,
            max_len: key.len() - 4,
        })
    }

    /// Hashes network-order bytes.
    pub fn hash(&self, tuple: &[u8]) -> u32 {
        assert!(tuple.len() <= self.max_len, "tuple longer than key - 4");
        // SAFETY: the CPU supports the instructions (checked in new) and the
        // tuple length is within the key.
        unsafe { sys::_dmpd_thash_gfni(self.matrices.as_ptr(), tuple.as_ptr(), tuple.len() as i32) }
    }
}
