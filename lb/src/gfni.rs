//! GFNI + AVX-512 Toeplitz burst path (x86_64 only, chosen at run time).
//!
//! The Toeplitz hash is linear over GF(2): output byte `q` (0 = most
//! significant) of the hash is the XOR over input positions `p` of an 8x8
//! bit matrix `M[p][q]` applied to input byte `x[p]`. `GF2P8AFFINEQB`
//! applies one 8x8 matrix per 64-bit lane to each of the lane's 8 bytes.
//!
//! Layout: hashes are computed 8 inputs at a time. `column[p]` packs byte
//! `p` of the 8 inputs into one u64 (input `k` in byte `k`). One 512-bit
//! affine operation takes `column[p]` in lanes 0-3 and `column[p + 1]` in
//! lanes 4-7, with the matrices `M[p][0..4]` and `M[p + 1][0..4]`: lane
//! `q` then holds output byte `q`'s contribution of position `p` for all 8
//! inputs. XOR-accumulating over positions and folding lanes 4-7 onto 0-3
//! leaves output byte `q` of input `k` in byte `k` of lane `q`.
//!
//! A 12-byte input costs 6 affine operations per 8 hashes. The column
//! packing is scalar. The same kernel with a software affine operation runs
//! in every test, so the matrices and the layout are checked on any CPU;
//! the instruction itself only on CPUs that have GFNI and AVX-512.

use core::arch::x86_64::{
    __m512i, _mm512_gf2p8affine_epi64_epi8, _mm512_loadu_si512, _mm512_set_epi64,
    _mm512_setzero_si512, _mm512_storeu_si512, _mm512_xor_si512,
};

/// Inputs hashed per kernel call.
const BATCH: usize = 8;

/// One affine operation's matrices: lanes 0-3 for position `2i`, lanes 4-7
/// for position `2i + 1`.
type MatrixPair = [u64; 8];

/// Precomputed affine matrices for the GFNI path.
#[derive(Clone, Debug)]
pub(crate) struct GfniTables {
    pairs: Vec<MatrixPair>,
}

/// The key window starting at key bit `bit` (key bits past the end are 0).
fn key_window(key: &[u8], bit: usize) -> u32 {
    (0..32).fold(0u32, |acc, k| {
        let j = bit + k;
        let b = key.get(j / 8).map_or(0, |byte| (byte >> (7 - j % 8)) & 1);
        (acc << 1) | u32::from(b)
    })
}

/// `M[p][q]` in GF2P8AFFINEQB's encoding: result bit `i` is the parity of
/// `matrix.byte[7 - i] & x`, so byte `7 - i` lists the input bits that feed
/// output bit `i`.
fn matrix(key: &[u8], p: usize, q: usize) -> u64 {
    let mut m = 0u64;
    for i in 0..8 {
        let hash_bit = (3 - q) * 8 + i;
        let mut row = 0u8;
        for j in 0..8 {
            // Input bit j (0 = least significant) is key bit 8p + 7 - j.
            if key_window(key, 8 * p + 7 - j) >> hash_bit & 1 == 1 {
                row |= 1 << j;
            }
        }
        m |= u64::from(row) << (8 * (7 - i));
    }
    m
}

impl GfniTables {
    /// The matrices for `key`, for inputs of up to `max_input_len` bytes.
    pub(crate) fn build(key: &[u8], max_input_len: usize) -> Self {
        let pairs = (0..max_input_len.div_ceil(2))
            .map(|pair| {
                core::array::from_fn(|lane| {
                    let p = 2 * pair + lane / 4;
                    if p < max_input_len {
                        matrix(key, p, lane % 4)
                    } else {
                        0
                    }
                })
            })
            .collect();
        Self { pairs }
    }

    /// The matrices when the CPU has GFNI and AVX-512 (F and BW), else
    /// `None`.
    pub(crate) fn detect(key: &[u8], max_input_len: usize) -> Option<Self> {
        let available = std::arch::is_x86_feature_detected!("gfni")
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw");
        available.then(|| Self::build(key, max_input_len))
    }

    /// Hashes every input (`inputs.len() == out.len()`) with the GFNI
    /// instruction. Only called when `detect` found the CPU features.
    pub(crate) fn hash_burst<const N: usize>(&self, inputs: &[[u8; N]], out: &mut [u32]) {
        // SAFETY: a `GfniTables` is only kept by `Toeplitz` when `detect`
        // saw GFNI, AVX-512F and AVX-512BW at run time.
        unsafe { self.hash_burst_gfni(inputs, out) }
    }

    #[target_feature(enable = "gfni,avx512f,avx512bw")]
    unsafe fn hash_burst_gfni<const N: usize>(&self, inputs: &[[u8; N]], out: &mut [u32]) {
        self.for_each_batch(inputs, out, |columns, pairs| {
            let mut acc = _mm512_setzero_si512();
            for (pair, matrices) in pairs.iter().enumerate() {
                let lo = columns[2 * pair] as i64;
                let hi = columns.get(2 * pair + 1).map_or(0, |&c| c as i64);
                let data = _mm512_set_epi64(hi, hi, hi, hi, lo, lo, lo, lo);
                // SAFETY: `matrices` is 64 readable bytes; unaligned load.
                let m: __m512i = unsafe { _mm512_loadu_si512(matrices.as_ptr().cast()) };
                acc = _mm512_xor_si512(acc, _mm512_gf2p8affine_epi64_epi8::<0>(data, m));
            }
            let mut lanes = [0u64; 8];
            // SAFETY: `lanes` is 64 writable bytes; unaligned store.
            unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), acc) };
            lanes
        });
    }

    /// The same kernel with a software affine operation (tests).
    #[cfg(test)]
    pub(crate) fn hash_burst_emulated<const N: usize>(&self, inputs: &[[u8; N]], out: &mut [u32]) {
        self.for_each_batch(inputs, out, |columns, pairs| {
            let mut acc = [0u64; 8];
            for (pair, matrices) in pairs.iter().enumerate() {
                let lo = columns[2 * pair];
                let hi = columns.get(2 * pair + 1).copied().unwrap_or(0);
                for lane in 0..8 {
                    let data = if lane < 4 { lo } else { hi };
                    acc[lane] ^= affine_qword(data, matrices[lane]);
                }
            }
            acc
        });
    }

    /// Packs columns for each batch of 8 inputs, runs `kernel` (which
    /// returns the 8 accumulated lanes) and unpacks the hashes.
    #[inline(always)]
    fn for_each_batch<const N: usize>(
        &self,
        inputs: &[[u8; N]],
        out: &mut [u32],
        mut kernel: impl FnMut(&[u64], &[MatrixPair]) -> [u64; 8],
    ) {
        let pairs = &self.pairs[..N.div_ceil(2)];
        let mut columns = [0u64; N];
        for (batch, hashes) in inputs.chunks(BATCH).zip(out.chunks_mut(BATCH)) {
            for (p, column) in columns.iter_mut().enumerate() {
                *column = batch
                    .iter()
                    .enumerate()
                    .fold(0u64, |acc, (k, input)| acc | u64::from(input[p]) << (8 * k));
            }
            let lanes = kernel(&columns, pairs);
            let folded: [u64; 4] = core::array::from_fn(|q| lanes[q] ^ lanes[q + 4]);
            for (k, hash) in hashes.iter_mut().enumerate() {
                *hash = folded.iter().fold(0u32, |acc, lane| {
                    (acc << 8) | ((lane >> (8 * k)) & 0xff) as u32
                });
            }
        }
    }
}

/// `GF2P8AFFINEQB` with a zero constant, on one 64-bit lane.
#[cfg(test)]
fn affine_qword(data: u64, matrix: u64) -> u64 {
    (0..8).fold(0u64, |acc, byte| {
        let x = (data >> (8 * byte)) as u8;
        let y = (0..8).fold(0u8, |y, i| {
            let row = (matrix >> (8 * (7 - i))) as u8;
            y | (((row & x).count_ones() & 1) as u8) << i
        });
        acc | u64::from(y) << (8 * byte)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toeplitz::{toeplitz_hash_reference, MS_RSS_KEY, SYMMETRIC_KEY};

    fn lcg(state: &mut u64) -> u8 {
        *state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*state >> 56) as u8
    }

    fn check<const N: usize>(key: &[u8], count: usize, seed: u64) {
        let tables = GfniTables::build(key, key.len() - 4);
        let mut state = seed;
        let inputs: Vec<[u8; N]> = (0..count)
            .map(|_| core::array::from_fn(|_| lcg(&mut state)))
            .collect();
        let mut emulated = vec![0u32; count];
        tables.hash_burst_emulated(&inputs, &mut emulated);
        let gfni = GfniTables::detect(key, key.len() - 4);
        let mut hardware = vec![0u32; count];
        if let Some(g) = &gfni {
            g.hash_burst(&inputs, &mut hardware);
        }
        for (i, input) in inputs.iter().enumerate() {
            let expected = toeplitz_hash_reference(key, input);
            assert_eq!(emulated[i], expected, "emulated kernel, len {N}, input {i}");
            if gfni.is_some() {
                assert_eq!(hardware[i], expected, "GFNI kernel, len {N}, input {i}");
            }
        }
    }

    #[test]
    fn kernel_matches_reference() {
        for key in [&MS_RSS_KEY, &SYMMETRIC_KEY] {
            check::<1>(key, 9, 1);
            check::<9>(key, 203, 2);
            check::<12>(key, 203, 3);
            check::<13>(key, 64, 4);
            check::<36>(key, 101, 5);
        }
    }

    #[test]
    fn affine_emulation_matches_the_definition() {
        // The identity matrix (byte 7 - i selects bit i) maps x to x.
        let identity = (0..8).fold(0u64, |m, i| m | (1u64 << i) << (8 * (7 - i)));
        assert_eq!(
            affine_qword(0x0123_4567_89ab_cdef, identity),
            0x0123_4567_89ab_cdef
        );
        // All-ones rows give the parity of each byte in every bit.
        assert_eq!(
            affine_qword(0x0300_0000_0000_0001, u64::MAX),
            0x0000_0000_0000_00ff
        );
    }
}
