//! Time as `u64` nanoseconds, owned by the caller (smoltcp `time.rs` style).
//!
//! `dmpd` never reads a clock: every entry point receives `now: Instant`.
//! The agent derives it from the TSC, tests and the simulator from a virtual
//! clock. Arithmetic saturates instead of panicking.

use core::fmt;
use core::ops::{Add, AddAssign, Div, Mul, Sub, SubAssign};

/// A point in time, nanoseconds since an arbitrary origin chosen by the caller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant {
    nanos: u64,
}

/// A span of time in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration {
    nanos: u64,
}

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant { nanos: 0 };
    /// The far future (used as "never").
    pub const MAX: Instant = Instant { nanos: u64::MAX };

    pub const fn from_nanos(nanos: u64) -> Self {
        Instant { nanos }
    }
    pub const fn from_micros(micros: u64) -> Self {
        Instant {
            nanos: micros.saturating_mul(1_000),
        }
    }
    pub const fn from_millis(millis: u64) -> Self {
        Instant {
            nanos: millis.saturating_mul(1_000_000),
        }
    }
    pub const fn from_secs(secs: u64) -> Self {
        Instant {
            nanos: secs.saturating_mul(1_000_000_000),
        }
    }
    pub const fn total_nanos(&self) -> u64 {
        self.nanos
    }
    pub const fn total_millis(&self) -> u64 {
        self.nanos / 1_000_000
    }
    /// `self - earlier`, or zero when `earlier` is later.
    pub const fn saturating_duration_since(&self, earlier: Instant) -> Duration {
        Duration {
            nanos: self.nanos.saturating_sub(earlier.nanos),
        }
    }
}

impl Duration {
    pub const ZERO: Duration = Duration { nanos: 0 };
    pub const MAX: Duration = Duration { nanos: u64::MAX };

    pub const fn from_nanos(nanos: u64) -> Self {
        Duration { nanos }
    }
    pub const fn from_micros(micros: u64) -> Self {
        Duration {
            nanos: micros.saturating_mul(1_000),
        }
    }
    pub const fn from_millis(millis: u64) -> Self {
        Duration {
            nanos: millis.saturating_mul(1_000_000),
        }
    }
    pub const fn from_secs(secs: u64) -> Self {
        Duration {
            nanos: secs.saturating_mul(1_000_000_000),
        }
    }
    pub const fn total_nanos(&self) -> u64 {
        self.nanos
    }
    pub const fn total_micros(&self) -> u64 {
        self.nanos / 1_000
    }
    pub const fn total_millis(&self) -> u64 {
        self.nanos / 1_000_000
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.nanos / 1_000_000_000,
            self.nanos % 1_000_000_000
        )
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09}s",
            self.nanos / 1_000_000_000,
            self.nanos % 1_000_000_000
        )
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant {
            nanos: self.nanos.saturating_add(rhs.nanos),
        }
    }
}
impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}
impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        Instant {
            nanos: self.nanos.saturating_sub(rhs.nanos),
        }
    }
}
impl SubAssign<Duration> for Instant {
    fn sub_assign(&mut self, rhs: Duration) {
        *self = *self - rhs;
    }
}
impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}
impl Add for Duration {
    type Output = Duration;
    fn add(self, rhs: Duration) -> Duration {
        Duration {
            nanos: self.nanos.saturating_add(rhs.nanos),
        }
    }
}
impl AddAssign for Duration {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}
impl Sub for Duration {
    type Output = Duration;
    fn sub(self, rhs: Duration) -> Duration {
        Duration {
            nanos: self.nanos.saturating_sub(rhs.nanos),
        }
    }
}
impl Mul<u64> for Duration {
    type Output = Duration;
    fn mul(self, rhs: u64) -> Duration {
        Duration {
            nanos: self.nanos.saturating_mul(rhs),
        }
    }
}
impl Div<u64> for Duration {
    type Output = Duration;
    fn div(self, rhs: u64) -> Duration {
        Duration {
            nanos: self.nanos.checked_div(rhs).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(5);
        assert_eq!((t + Duration::from_millis(5)).total_millis(), 10);
        assert_eq!(t - Instant::from_millis(10), Duration::ZERO);
        assert_eq!(Instant::MAX + Duration::from_secs(1), Instant::MAX);
        assert_eq!(Duration::from_secs(1) / 4, Duration::from_millis(250));
        assert_eq!(Duration::from_secs(1) / 0, Duration::ZERO);
    }
}
