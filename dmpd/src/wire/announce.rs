//! ANNOUNCE body: a candidate claims the term in the header
//! (see `docs/election.md`).

use super::{Reject, Result};

mod field {
    use core::ops::Range;
    pub const PRIORITY: usize = 0;
    pub const FLAGS: usize = 1;
    pub const LAST_MASTER: Range<usize> = 2..4;
}

pub const BODY_LEN: usize = field::LAST_MASTER.end;

/// View of an announce body.
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
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    #[inline]
    pub fn last_master(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LAST_MASTER];
        u16::from_be_bytes([b[0], b[1]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_priority(&mut self, v: u8) {
        self.buffer.as_mut()[field::PRIORITY] = v
    }
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v
    }
    #[inline]
    pub fn set_last_master(&mut self, v: u16) {
        self.buffer.as_mut()[field::LAST_MASTER].copy_from_slice(&v.to_be_bytes())
    }
}

/// "No node" in node-number fields.
pub const NO_NODE: u16 = 0xffff;

/// Announce values (the candidate's term is the header term).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceRepr {
    pub priority: u8,
    pub flags: u8,
    /// The master the candidate last followed, if any.
    pub last_master: Option<u16>,
}

impl AnnounceRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<AnnounceRepr> {
        p.check_len()?;
        let lm = p.last_master();
        Ok(AnnounceRepr {
            priority: p.priority(),
            flags: p.flags(),
            last_master: if lm == NO_NODE { None } else { Some(lm) },
        })
    }
    pub const fn buffer_len(&self) -> usize {
        BODY_LEN
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_priority(self.priority);
        p.set_flags(self.flags);
        p.set_last_master(self.last_master.unwrap_or(NO_NODE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static BODY: [u8; 4] = [0x0a, 0x00, 0x00, 0x03];

    #[test]
    fn test_deconstruct_construct() {
        let p = Packet::new_checked(&BODY[..]).unwrap();
        assert_eq!(p.priority(), 10);
        assert_eq!(p.last_master(), 3);
        let r = AnnounceRepr {
            priority: 10,
            flags: 0,
            last_master: Some(3),
        };
        assert_eq!(AnnounceRepr::parse(&p).unwrap(), r);
        let mut buf = [0xa5u8; 4];
        r.emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, BODY);
    }

    #[test]
    fn test_bad_len() {
        assert_eq!(
            Packet::new_checked(&BODY[..3]).unwrap_err(),
            Reject::BadLength
        );
    }
}
