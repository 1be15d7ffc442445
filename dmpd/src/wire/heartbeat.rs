//! HEARTBEAT body: master to all, broadcast on every port each period. The
//! header timestamp doubles as the time-sync value that responses echo.

use super::{Reject, Result};

mod field {
    use core::ops::Range;
    pub const ROUND: Range<usize> = 0..8;
    pub const PERIOD: Range<usize> = 8..16;
    pub const PRIORITY: usize = 16;
    pub const FLAGS: usize = 17;
    pub const TABLE_NODES: Range<usize> = 18..20;
}

/// Body length.
pub const BODY_LEN: usize = field::TABLE_NODES.end;

/// View of a heartbeat body.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }
    /// The body length is fixed.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() != BODY_LEN {
            return Err(Reject::BadLength);
        }
        Ok(())
    }
    #[inline]
    pub fn round(&self) -> u64 {
        u64::from_be_bytes(
            self.buffer.as_ref()[field::ROUND]
                .try_into()
                .unwrap_or([0; 8]),
        )
    }
    #[inline]
    pub fn period_ns(&self) -> u64 {
        u64::from_be_bytes(
            self.buffer.as_ref()[field::PERIOD]
                .try_into()
                .unwrap_or([0; 8]),
        )
    }
    #[inline]
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    #[inline]
    pub fn table_nodes(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::TABLE_NODES];
        u16::from_be_bytes([b[0], b[1]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_round(&mut self, v: u64) {
        self.buffer.as_mut()[field::ROUND].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn set_period_ns(&mut self, v: u64) {
        self.buffer.as_mut()[field::PERIOD].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn set_priority(&mut self, v: u8) {
        self.buffer.as_mut()[field::PRIORITY] = v
    }
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v
    }
    #[inline]
    pub fn set_table_nodes(&mut self, v: u16) {
        self.buffer.as_mut()[field::TABLE_NODES].copy_from_slice(&v.to_be_bytes())
    }
}

/// Heartbeat values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatRepr {
    /// Round number, +1 each period of this master.
    pub round: u64,
    /// The master's heartbeat period (ns), so followers can size timeouts.
    pub period_ns: u64,
    /// The master's configured priority.
    pub priority: u8,
    pub flags: u8,
    /// Number of nodes in the master's table.
    pub table_nodes: u16,
}

impl HeartbeatRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<HeartbeatRepr> {
        p.check_len()?;
        Ok(HeartbeatRepr {
            round: p.round(),
            period_ns: p.period_ns(),
            priority: p.priority(),
            flags: p.flags(),
            table_nodes: p.table_nodes(),
        })
    }
    pub const fn buffer_len(&self) -> usize {
        BODY_LEN
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_round(self.round);
        p.set_period_ns(self.period_ns);
        p.set_priority(self.priority);
        p.set_flags(self.flags);
        p.set_table_nodes(self.table_nodes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static BODY: [u8; 20] = [
        0, 0, 0, 0, 0, 0, 0, 5, // round
        0, 0, 0, 0, 0x05, 0xf5, 0xe1, 0x00, // period 100 ms
        0x0a, 0x00, // priority, flags
        0x01, 0x00, // table nodes 256
    ];

    fn repr() -> HeartbeatRepr {
        HeartbeatRepr {
            round: 5,
            period_ns: 100_000_000,
            priority: 10,
            flags: 0,
            table_nodes: 256,
        }
    }

    #[test]
    fn test_deconstruct() {
        let p = Packet::new_checked(&BODY[..]).unwrap();
        assert_eq!(p.round(), 5);
        assert_eq!(p.period_ns(), 100_000_000);
        assert_eq!(p.priority(), 10);
        assert_eq!(p.table_nodes(), 256);
    }

    #[test]
    fn test_construct_emit_parse() {
        let mut buf = [0xa5u8; 20];
        repr().emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, BODY);
        assert_eq!(
            HeartbeatRepr::parse(&Packet::new_checked(&BODY[..]).unwrap()).unwrap(),
            repr()
        );
    }

    #[test]
    fn test_bad_len() {
        assert_eq!(
            Packet::new_checked(&BODY[..19]).unwrap_err(),
            Reject::BadLength
        );
        let mut long = [0u8; 21];
        long[..20].copy_from_slice(&BODY);
        assert_eq!(
            Packet::new_checked(&long[..]).unwrap_err(),
            Reject::BadLength
        );
    }
}
