//! LEAVE body: the sender withdraws from the cluster at once.

use super::{Reject, Result};

mod field {
    use core::ops::Range;
    pub const REASON: usize = 0;
    pub const RESERVED: Range<usize> = 1..4;
}

pub const BODY_LEN: usize = field::RESERVED.end;

enum_with_unknown! {
    /// Why a node leaves.
    pub enum LeaveReason(u8) {
        Shutdown = 1,
        /// Self-monitoring found the node faulty (no usable port, stalled loop).
        SelfFaulty = 2,
        Admin = 3,
    }
}

/// View of a leave body.
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
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() != BODY_LEN {
            return Err(Reject::BadLength);
        }
        Ok(())
    }
    #[inline]
    pub fn reason(&self) -> LeaveReason {
        LeaveReason::from(self.buffer.as_ref()[field::REASON])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_reason(&mut self, v: LeaveReason) {
        self.buffer.as_mut()[field::REASON] = v.into();
        self.buffer.as_mut()[field::RESERVED].fill(0);
    }
}

/// Leave values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaveRepr {
    pub reason: LeaveReason,
}

impl LeaveRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<LeaveRepr> {
        p.check_len()?;
        match p.reason() {
            LeaveReason::Unknown(_) => Err(Reject::BadField),
            reason => Ok(LeaveRepr { reason }),
        }
    }
    pub const fn buffer_len(&self) -> usize {
        BODY_LEN
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_reason(self.reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static BODY: [u8; 4] = [0x02, 0, 0, 0];

    #[test]
    fn test_parse_emit() {
        let r = LeaveRepr {
            reason: LeaveReason::SelfFaulty,
        };
        assert_eq!(
            LeaveRepr::parse(&Packet::new_checked(&BODY[..]).unwrap()).unwrap(),
            r
        );
        let mut buf = [0xa5u8; 4];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, BODY);
    }

    #[test]
    fn test_bad_reason_and_len() {
        let b = [9u8, 0, 0, 0];
        assert_eq!(
            LeaveRepr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap_err(),
            Reject::BadField
        );
        assert_eq!(
            Packet::new_checked(&BODY[..2]).unwrap_err(),
            Reject::BadLength
        );
    }
}
