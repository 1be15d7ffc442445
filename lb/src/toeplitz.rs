//! Microsoft RSS Toeplitz hash.
//!
//! The hash of an input bit string `x` under a key `k` XORs, for every set
//! input bit `i` (most significant bit of byte 0 first), the 32-bit window of
//! the key that starts at key bit `i`. It is linear over GF(2), so the
//! contribution of each input byte can be tabulated: [`Toeplitz`] keeps one
//! 256-entry table per input byte position and hashes with one load and one
//! XOR per byte, with no allocation and no branch on the data.
//!
//! [`toeplitz_hash_reference`] is the bit-by-bit definition that the tests
//! hold every faster path to.

use crate::LbError;

/// Microsoft's default RSS key (the key of the RSS verification suite and of
/// most NIC drivers' defaults).
pub const MS_RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// The symmetric key: `0x6d5a` repeated. Swapping source and destination
/// gives the same hash, but the key's 16-bit period folds the whole input to
/// the XOR of its 16-bit words, so it is offered only as an option (see
/// `docs/load-balancing.md`).
pub const SYMMETRIC_KEY: [u8; 40] = {
    let mut key = [0u8; 40];
    let mut i = 0;
    while i < 40 {
        key[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    key
};

/// Longest input the default hasher accepts: IPv6 addresses plus ports.
pub const DEFAULT_MAX_INPUT_LEN: usize = 36;

/// The key bytes a hash needs beyond the input: the window of the last input
/// bit reaches 31 bits further.
const KEY_EXTRA_BYTES: usize = 4;

/// Bit-by-bit Toeplitz hash, written to be obviously correct rather than fast.
///
/// # Panics
/// If `key.len() < input.len() + 4`: the windows of the last input bits
/// would run off the key.
pub fn toeplitz_hash_reference(key: &[u8], input: &[u8]) -> u32 {
    assert!(
        key.len() >= input.len() + KEY_EXTRA_BYTES,
        "Toeplitz key of {} bytes is too short for a {}-byte input",
        key.len(),
        input.len()
    );
    let key_bit = |j: usize| u32::from((key[j / 8] >> (7 - j % 8)) & 1);
    let mut result = 0u32;
    for i in 0..input.len() * 8 {
        let input_bit = (input[i / 8] >> (7 - i % 8)) & 1;
        if input_bit == 1 {
            let mut window = 0u32;
            for k in 0..32 {
                window = (window << 1) | key_bit(i + k);
            }
            result ^= window;
        }
    }
    result
}

/// The 32-bit key window starting at key bit `bit` (`key` long enough).
fn key_window(key: &[u8], bit: usize) -> u32 {
    let byte = bit / 8;
    let shift = bit % 8;
    let wide = key[byte..byte + 5]
        .iter()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    // `wide` holds 40 key bits; the window is the 32 bits after `shift`.
    (wide >> (8 - shift)) as u32
}

/// Table-driven Toeplitz hasher for inputs up to `max_input_len` bytes.
///
/// Built once on the control side (it allocates `max_input_len` KiB);
/// hashing never allocates.
#[derive(Clone)]
pub struct Toeplitz {
    /// `tables[i][b]`: the hash contribution of byte value `b` at input
    /// position `i`.
    tables: Vec<[u32; 256]>,
    #[cfg(all(target_arch = "x86_64", feature = "gfni"))]
    gfni: Option<crate::gfni::GfniTables>,
}

impl core::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Toeplitz")
            .field("max_input_len", &self.tables.len())
            .field("simd", &self.simd_path())
            .finish()
    }
}

impl Default for Toeplitz {
    /// Microsoft's key, inputs up to 36 bytes.
    fn default() -> Self {
        Self::new(&MS_RSS_KEY, DEFAULT_MAX_INPUT_LEN).expect("the default key fits 36-byte inputs")
    }
}

impl Toeplitz {
    /// Precomputes the tables of `key` for inputs of up to `max_input_len`
    /// bytes. The key must be at least `max_input_len + 4` bytes long.
    pub fn new(key: &[u8], max_input_len: usize) -> Result<Self, LbError> {
        if key.len() < max_input_len + KEY_EXTRA_BYTES {
            return Err(LbError::KeyTooShort {
                key_len: key.len(),
                max_input_len,
            });
        }
        let mut tables = vec![[0u32; 256]; max_input_len];
        for (pos, table) in tables.iter_mut().enumerate() {
            let windows: [u32; 8] = core::array::from_fn(|bit| key_window(key, pos * 8 + bit));
            for (value, slot) in table.iter_mut().enumerate() {
                *slot = (0..8)
                    .filter(|bit| value & (0x80 >> bit) != 0)
                    .fold(0, |acc, bit| acc ^ windows[bit]);
            }
        }
        Ok(Self {
            #[cfg(all(target_arch = "x86_64", feature = "gfni"))]
            gfni: crate::gfni::GfniTables::detect(key, max_input_len),
            tables,
        })
    }

    /// Longest input this hasher accepts.
    pub fn max_input_len(&self) -> usize {
        self.tables.len()
    }

    /// Name of the SIMD path the burst API uses, if any.
    pub fn simd_path(&self) -> Option<&'static str> {
        #[cfg(all(target_arch = "x86_64", feature = "gfni"))]
        if self.gfni.is_some() {
            return Some("gfni-avx512");
        }
        None
    }

    /// Turns the SIMD path off (tests and benches compare both paths).
    pub fn without_simd(self) -> Self {
        Self {
            #[cfg(all(target_arch = "x86_64", feature = "gfni"))]
            gfni: None,
            ..self
        }
    }

    /// Hashes one input with the byte tables.
    ///
    /// # Panics
    /// If `input` is longer than [`Self::max_input_len`] (a caller bug: the
    /// tuple sizes are fixed at build time).
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        assert!(
            input.len() <= self.tables.len(),
            "input longer than the hasher's max_input_len"
        );
        self.tables
            .iter()
            .zip(input)
            .fold(0, |acc, (table, &byte)| acc ^ table[usize::from(byte)])
    }

    /// Hashes a fixed-size input; the length is a constant, so the loop
    /// unrolls.
    #[inline]
    pub fn hash_array<const N: usize>(&self, input: &[u8; N]) -> u32 {
        let tables: &[[u32; 256]; N] = self.tables[..N]
            .try_into()
            .expect("input longer than the hasher's max_input_len");
        let mut acc = 0;
        for i in 0..N {
            acc ^= tables[i][usize::from(input[i])];
        }
        acc
    }

    /// Hashes `min(inputs.len(), out.len())` fixed-size inputs into `out`;
    /// returns how many. Uses the GFNI path when the CPU has it (identical
    /// results), else the byte tables with four independent hashes in flight.
    #[inline]
    pub fn hash_burst<const N: usize>(&self, inputs: &[[u8; N]], out: &mut [u32]) -> usize {
        let count = inputs.len().min(out.len());
        let (inputs, out) = (&inputs[..count], &mut out[..count]);
        #[cfg(all(target_arch = "x86_64", feature = "gfni"))]
        if let Some(gfni) = &self.gfni {
            gfni.hash_burst(inputs, out);
            return count;
        }
        self.hash_burst_tables(inputs, out);
        count
    }

    /// The portable burst path (public so that tests and benches can compare
    /// it with the SIMD one).
    pub fn hash_burst_tables<const N: usize>(&self, inputs: &[[u8; N]], out: &mut [u32]) {
        let tables: &[[u32; 256]; N] = self.tables[..N]
            .try_into()
            .expect("input longer than the hasher's max_input_len");
        let mut in_chunks = inputs.chunks_exact(4);
        let mut out_chunks = out.chunks_exact_mut(4);
        for (ins, outs) in (&mut in_chunks).zip(&mut out_chunks) {
            // Four independent dependency chains keep the load ports busy.
            let mut acc = [0u32; 4];
            for i in 0..N {
                for lane in 0..4 {
                    acc[lane] ^= tables[i][usize::from(ins[lane][i])];
                }
            }
            outs.copy_from_slice(&acc);
        }
        for (input, slot) in in_chunks
            .remainder()
            .iter()
            .zip(out_chunks.into_remainder())
        {
            *slot = self.hash_array(input);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_window_matches_bitwise_definition() {
        for bit in 0..(36 * 8) {
            let mut expected = 0u32;
            for k in 0..32 {
                let j = bit + k;
                expected = (expected << 1) | u32::from((MS_RSS_KEY[j / 8] >> (7 - j % 8)) & 1);
            }
            assert_eq!(key_window(&MS_RSS_KEY, bit), expected, "bit {bit}");
        }
    }

    #[test]
    fn short_key_is_rejected() {
        assert_eq!(
            Toeplitz::new(&MS_RSS_KEY, 37).unwrap_err(),
            LbError::KeyTooShort {
                key_len: 40,
                max_input_len: 37
            }
        );
        assert!(Toeplitz::new(&MS_RSS_KEY, 36).is_ok());
    }

    #[test]
    fn symmetric_key_is_0x6d5a_repeated() {
        assert!(SYMMETRIC_KEY.chunks(2).all(|w| w == [0x6d, 0x5a]));
    }

    #[test]
    fn empty_input_hashes_to_zero() {
        assert_eq!(Toeplitz::default().hash(&[]), 0);
        assert_eq!(toeplitz_hash_reference(&MS_RSS_KEY, &[]), 0);
    }

    #[test]
    #[should_panic(expected = "max_input_len")]
    fn overlong_input_panics() {
        Toeplitz::new(&MS_RSS_KEY, 8).unwrap().hash(&[0u8; 9]);
    }
}
