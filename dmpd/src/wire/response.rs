//! RESPONSE body: node to master (unicast to the MAC the heartbeat came
//! from), once per port that heard the heartbeat. It echoes the heartbeat
//! timestamp (RTT per port) and carries the node's view of the master and,
//! when the master's table lacks the node's current version, its record.

use super::announce::NO_NODE;
use super::record::NodeRecord;
use super::{be64, Reject, Result};

mod field {
    use core::ops::{Range, RangeFrom};
    pub const ECHO_TS: Range<usize> = 0..8;
    pub const ROUND: Range<usize> = 8..16;
    pub const PORT: usize = 16;
    pub const FLAGS: usize = 17;
    pub const MASTER: Range<usize> = 18..20;
    pub const MASTER_TERM: Range<usize> = 20..28;
    pub const PRIORITY: usize = 28;
    pub const RESERVED: usize = 29;
    pub const RECORD: RangeFrom<usize> = 30..;
}

/// Length of the fixed part.
pub const FIXED_LEN: usize = field::RECORD.start;
/// Flag: a node record follows the fixed part.
pub const FLAG_RECORD: u8 = 0x01;

/// View of a response body.
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
    /// Fixed part present; with the record flag the record's own counts
    /// must match the remaining length exactly, without it nothing follows.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < FIXED_LEN {
            return Err(Reject::BadLength);
        }
        let rest = &b[field::RECORD];
        if b[field::FLAGS] & FLAG_RECORD != 0 {
            match NodeRecord::peek_len(rest) {
                Ok(n) if n == rest.len() => Ok(()),
                Ok(_) | Err(Reject::Truncated) => Err(Reject::BadLength),
                Err(e) => Err(e),
            }
        } else if rest.is_empty() {
            Ok(())
        } else {
            Err(Reject::BadLength)
        }
    }
    #[inline]
    pub fn echo_ts(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::ECHO_TS])
    }
    #[inline]
    pub fn round(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::ROUND])
    }
    #[inline]
    pub fn port(&self) -> u8 {
        self.buffer.as_ref()[field::PORT]
    }
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    #[inline]
    pub fn master(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::MASTER];
        u16::from_be_bytes([b[0], b[1]])
    }
    #[inline]
    pub fn master_term(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::MASTER_TERM])
    }
    #[inline]
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }
    #[inline]
    pub fn record_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[field::RECORD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_echo_ts(&mut self, v: u64) {
        self.buffer.as_mut()[field::ECHO_TS].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn set_round(&mut self, v: u64) {
        self.buffer.as_mut()[field::ROUND].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn set_port(&mut self, v: u8) {
        self.buffer.as_mut()[field::PORT] = v
    }
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v
    }
    #[inline]
    pub fn set_master(&mut self, v: u16) {
        self.buffer.as_mut()[field::MASTER].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn set_master_term(&mut self, v: u64) {
        self.buffer.as_mut()[field::MASTER_TERM].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn set_priority(&mut self, v: u8) {
        self.buffer.as_mut()[field::PRIORITY] = v;
        self.buffer.as_mut()[field::RESERVED] = 0;
    }
    #[inline]
    pub fn record_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::RECORD]
    }
}

/// Response values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseRepr {
    /// The heartbeat's header timestamp, echoed.
    pub echo_ts: u64,
    /// The heartbeat's round.
    pub round: u64,
    /// Index of the responder's port that heard the heartbeat.
    pub port: u8,
    /// The responder's master.
    pub master: Option<u16>,
    pub master_term: u64,
    pub priority: u8,
    pub record: Option<NodeRecord>,
}

impl ResponseRepr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<ResponseRepr> {
        p.check_len()?;
        if p.flags() & !FLAG_RECORD != 0 {
            return Err(Reject::BadField);
        }
        let record = if p.flags() & FLAG_RECORD != 0 {
            Some(NodeRecord::parse(p.record_bytes())?.0)
        } else {
            None
        };
        let m = p.master();
        Ok(ResponseRepr {
            echo_ts: p.echo_ts(),
            round: p.round(),
            port: p.port(),
            master: if m == NO_NODE { None } else { Some(m) },
            master_term: p.master_term(),
            priority: p.priority(),
            record,
        })
    }
    pub fn buffer_len(&self) -> usize {
        FIXED_LEN + self.record.as_ref().map_or(0, NodeRecord::buffer_len)
    }
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_echo_ts(self.echo_ts);
        p.set_round(self.round);
        p.set_port(self.port);
        p.set_flags(if self.record.is_some() {
            FLAG_RECORD
        } else {
            0
        });
        p.set_master(self.master.unwrap_or(NO_NODE));
        p.set_master_term(self.master_term);
        p.set_priority(self.priority);
        if let Some(r) = &self.record {
            r.emit(p.record_bytes_mut());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static BODY: [u8; 30] = [
        0, 0, 0, 0, 0x3b, 0x9a, 0xca, 0x00, // echo ts 1e9
        0, 0, 0, 0, 0, 0, 0, 9, // round 9
        0x02, 0x00, // port 2, flags
        0x00, 0x01, // master 1
        0, 0, 0, 0, 0, 0, 0, 4, // master term 4
        0x05, 0x00, // priority, reserved
    ];

    fn repr() -> ResponseRepr {
        ResponseRepr {
            echo_ts: 1_000_000_000,
            round: 9,
            port: 2,
            master: Some(1),
            master_term: 4,
            priority: 5,
            record: None,
        }
    }

    #[test]
    fn test_deconstruct_parse_emit() {
        let p = Packet::new_checked(&BODY[..]).unwrap();
        assert_eq!(p.echo_ts(), 1_000_000_000);
        assert_eq!(p.port(), 2);
        assert_eq!(ResponseRepr::parse(&p).unwrap(), repr());
        let mut buf = [0xa5u8; 30];
        repr().emit(&mut Packet::new_unchecked(&mut buf[..]));
        assert_eq!(buf, BODY);
    }

    #[test]
    fn test_with_record() {
        let mut r = repr();
        r.record = Some(crate::wire::record::tests::sample(3, 2, 1));
        let mut buf = [0u8; 512];
        let n = r.buffer_len();
        r.emit(&mut Packet::new_unchecked(&mut buf[..n]));
        assert_eq!(
            ResponseRepr::parse(&Packet::new_checked(&buf[..n]).unwrap()).unwrap(),
            r
        );
        // one byte short or long: the record length must match exactly
        assert_eq!(
            Packet::new_checked(&buf[..n - 1]).unwrap_err(),
            Reject::BadLength
        );
        assert_eq!(
            Packet::new_checked(&buf[..n + 1]).unwrap_err(),
            Reject::BadLength
        );
    }

    #[test]
    fn test_bad_len() {
        assert_eq!(
            Packet::new_checked(&BODY[..29]).unwrap_err(),
            Reject::BadLength
        );
        let mut long = [0u8; 31];
        long[..30].copy_from_slice(&BODY);
        assert_eq!(
            Packet::new_checked(&long[..]).unwrap_err(),
            Reject::BadLength
        );
    }
}
