//! Token-bucket pacing of a port to its configured bandwidth, counted in
//! bits on the wire, so an emulated port behaves like the paper's gigabit
//! ports. Also the wire-size arithmetic shared with utilisation.

/// Per-frame bytes on the wire that the frame buffer does not hold:
/// preamble + start delimiter (8), FCS (4), inter-frame gap (12). With it a
/// 60-byte buffer (64 bytes with FCS) at line rate reads 100%.
pub const WIRE_OVERHEAD_BYTES: u64 = 24;

/// Bits a frame of `len` buffer bytes occupies on the wire. Frames shorter
/// than the 60-byte minimum are padded by the NIC.
#[inline]
pub const fn wire_bits(len: usize) -> u64 {
    let l = if len < 60 { 60 } else { len as u64 };
    (l + WIRE_OVERHEAD_BYTES) * 8
}

/// A token bucket in bits. `now` is in nanoseconds from any monotonic origin.
#[derive(Debug, Clone)]
pub struct Pacer {
    rate_bps: u64,
    burst_bits: u64,
    tokens: u64,
    last_ns: u64,
}

impl Pacer {
    /// `burst_bits` bounds how far ahead of the rate a sender may get
    /// (at least one maximum frame).
    pub fn new(rate_bps: u64, burst_bits: u64, now_ns: u64) -> Pacer {
        let burst_bits = burst_bits.max(wire_bits(9018));
        Pacer {
            rate_bps,
            burst_bits,
            tokens: burst_bits,
            last_ns: now_ns,
        }
    }

    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }

    /// Changes the rate (from the control side's pipe controller).
    pub fn set_rate(&mut self, rate_bps: u64) {
        self.rate_bps = rate_bps;
    }

    #[inline]
    fn refill(&mut self, now_ns: u64) {
        let dt = now_ns.saturating_sub(self.last_ns);
        if dt == 0 {
            return;
        }
        // u128 so hours of idle time at 100 Gb/s cannot overflow.
        let add = (dt as u128 * self.rate_bps as u128 / 1_000_000_000) as u64;
        if add > 0 {
            self.tokens = (self.tokens + add).min(self.burst_bits);
            // Advance by the time the added tokens account for, keeping the
            // remainder so slow rates still accrue.
            let used_ns = (add as u128 * 1_000_000_000 / self.rate_bps.max(1) as u128) as u64;
            self.last_ns += used_ns.min(dt);
            if self.tokens == self.burst_bits {
                self.last_ns = now_ns;
            }
        }
    }

    /// Takes `bits` if available.
    #[inline]
    pub fn try_take(&mut self, now_ns: u64, bits: u64) -> bool {
        self.refill(now_ns);
        if self.tokens >= bits {
            self.tokens -= bits;
            true
        } else {
            false
        }
    }

    /// Returns bits taken for a frame that was not sent after all.
    pub fn refund(&mut self, bits: u64) {
        self.tokens = (self.tokens + bits).min(self.burst_bits);
    }

    /// Bits available now.
    pub fn available(&mut self, now_ns: u64) -> u64 {
        self.refill(now_ns);
        self.tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_frames_at_line_rate_are_full_utilisation() {
        // 64-byte frames (60 + FCS) at 1 Gb/s: 1e9 / (84 * 8) frames/s.
        let fps = 1_000_000_000f64 / wire_bits(60) as f64;
        assert!((fps - 1_488_095.2).abs() < 1.0, "{fps}");
        assert_eq!(wire_bits(20), wire_bits(60), "short frames are padded");
    }

    #[test]
    fn pacer_holds_the_rate_over_a_second() {
        let rate = 1_000_000_000;
        let mut p = Pacer::new(rate, 0, 0);
        let mut sent_bits = 0u64;
        let mut now = 0u64;
        // Offer 2x the rate in 1500-byte frames every microsecond.
        while now < 1_000_000_000 {
            for _ in 0..2 {
                if p.try_take(now, wire_bits(1500)) {
                    sent_bits += wire_bits(1500);
                }
            }
            now += 24_000;
        }
        let ratio = sent_bits as f64 / rate as f64;
        assert!((0.99..=1.01).contains(&ratio), "{ratio}");
    }

    #[test]
    fn slow_rates_still_accrue_tokens() {
        let mut p = Pacer::new(1000, 0, 0);
        let start = p.available(0);
        let mut now = 0;
        while p.available(now) == start {
            now += 1_000_000;
            if now > 10_000_000_000 {
                break;
            }
        }
        // Full bucket: nothing to add; drain then refill at 1 kb/s.
        assert!(p.try_take(now, start));
        assert!(!p.try_take(now, 8));
        assert!(
            p.try_take(now + 8_000_000, 8),
            "8 bits after 8 ms at 1 kb/s"
        );
    }
}

#[cfg(test)]
mod pipe_rate_tests {
    use super::*;

    /// The worker's use: size the pull by full-size frames, then charge what
    /// was taken; loops every 10 us for 2 s against a 4 Mb/s threshold.
    #[test]
    fn worker_style_use_holds_a_low_rate() {
        let mut p = Pacer::new(0, 0, 0);
        let mut now = 3_000_000_000u64;
        let mut bits = 0u64;
        let end = now + 2_000_000_000;
        while now < end {
            if p.rate_bps() != 4_000_000 {
                p.set_rate(4_000_000);
            }
            let n = (p.available(now) / wire_bits(1514)).min(32);
            for _ in 0..n {
                assert!(p.try_take(now, wire_bits(1040)));
                bits += wire_bits(1040);
            }
            now += 10_000;
        }
        let rate = bits as f64 / 2.0;
        assert!(rate <= 4_000_000.0 * 1.01 + 72_336.0 / 2.0, "{rate}");
    }
}
