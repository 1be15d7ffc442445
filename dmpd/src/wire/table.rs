//! TABLE segment body: master to all, a slice of the aggregated cluster
//! table made of whole node records. Each segment applies on its own.

use super::record::NodeRecord;
use super::{Reject, Result};

mod field {
    use core::ops::{Range, RangeFrom};
    pub const ROUND: Range<usize> = 0..8;
    pub const SEG_IDX: Range<usize> = 8..10;
    pub const SEG_COUNT: Range<usize> = 10..12;
    pub const FLAGS: usize = 12;
    pub const RESERVED: usize = 13;
    pub const COUNT: Range<usize> = 14..16;
    pub const RECORDS: RangeFrom<usize> = 16..;
}

/// Length of the segment header.
pub const FIXED_LEN: usize = field::RECORDS.start;
/// Flag: this segment carries (part of) the rolling full refresh.
pub const FLAG_REFRESH: u8 = 0x01;

/// View of a table segment body.
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
    /// Header present and exactly `count` well-sized records follow.
    pub fn check_len(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < FIXED_LEN {
            return Err(Reject::BadLength);
        }
        let mut rest = &b[field::RECORDS];
        for _ in 0..self.count() {
            let n = NodeRecord::peek_len(rest).map_err(|e| match e {
                Reject::Truncated => Reject::BadLength,
                e => e,
            })?;
            rest = &rest[n..];
        }
        if !rest.is_empty() {
            return Err(Reject::BadLength);
        }
        Ok(())
    }
    #[inline]
    pub fn round(&self) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.buffer.as_ref()[field::ROUND]);
        u64::from_be_bytes(a)
    }
    #[inline]
    pub fn seg_idx(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::SEG_IDX];
        u16::from_be_bytes([b[0], b[1]])
    }
    #[inline]
    pub fn seg_count(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::SEG_COUNT];
        u16::from_be_bytes([b[0], b[1]])
    }
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    #[inline]
    pub fn count(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::COUNT];
        u16::from_be_bytes([b[0], b[1]])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    #[inline]
    pub fn records(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::RECORDS]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    #[inline]
    pub fn set_round(&mut self, v: u64) {
        self.buffer.as_mut()[field::ROUND].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn set_seg_idx(&mut self, v: u16) {
        self.buffer.as_mut()[field::SEG_IDX].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn set_seg_count(&mut self, v: u16) {
        self.buffer.as_mut()[field::SEG_COUNT].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
        self.buffer.as_mut()[field::RESERVED] = 0;
    }
    #[inline]
    pub fn set_count(&mut self, v: u16) {
        self.buffer.as_mut()[field::COUNT].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn records_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::RECORDS]
    }
}

/// Segment values; the records stay in the frame (zero copy) and are decoded
/// one at a time by [`TableRepr::records`]. `parse` has already decoded and
/// checked every record once, so a segment is accepted whole or not at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRepr<'a> {
    pub round: u64,
    pub seg_idx: u16,
    pub seg_count: u16,
    pub flags: u8,
    pub count: u16,
    /// Encoded records, back to back.
    pub records: &'a [u8],
}

impl<'a> TableRepr<'a> {
    pub fn parse(body: &'a [u8]) -> Result<TableRepr<'a>> {
        let p = Packet::new_checked(body)?;
        if p.seg_count() == 0 || p.seg_idx() >= p.seg_count() || p.flags() & !FLAG_REFRESH != 0 {
            return Err(Reject::BadField);
        }
        let records = p.records();
        let mut rest = records;
        while !rest.is_empty() {
            let (_, n) = NodeRecord::parse(rest)?;
            rest = &rest[n..];
        }
        Ok(TableRepr {
            round: p.round(),
            seg_idx: p.seg_idx(),
            seg_count: p.seg_count(),
            flags: p.flags(),
            count: p.count(),
            records,
        })
    }

    pub fn buffer_len(&self) -> usize {
        FIXED_LEN + self.records.len()
    }

    pub fn emit(&self, body: &mut [u8]) {
        let mut p = Packet::new_unchecked(body);
        p.set_round(self.round);
        p.set_seg_idx(self.seg_idx);
        p.set_seg_count(self.seg_count);
        p.set_flags(self.flags);
        p.set_count(self.count);
        p.records_mut()[..self.records.len()].copy_from_slice(self.records);
    }

    /// Decode the records one by one (no allocation).
    pub fn records(&self) -> RecordIter<'a> {
        RecordIter { rest: self.records }
    }
}

/// Iterator over the records of a parsed segment.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    rest: &'a [u8],
}

impl Iterator for RecordIter<'_> {
    type Item = NodeRecord;
    fn next(&mut self) -> Option<NodeRecord> {
        if self.rest.is_empty() {
            return None;
        }
        match NodeRecord::parse(self.rest) {
            Ok((r, n)) => {
                self.rest = &self.rest[n..];
                Some(r)
            }
            Err(_) => {
                self.rest = &[];
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::record::tests::sample;

    static HEADER: [u8; 16] = [
        0, 0, 0, 0, 0, 0, 0, 7, // round 7
        0, 1, 0, 3, // segment 1 of 3
        0x01, 0x00, // flags refresh
        0, 0, // count 0
    ];

    #[test]
    fn test_empty_segment() {
        let p = Packet::new_checked(&HEADER[..]).unwrap();
        assert_eq!(p.round(), 7);
        assert_eq!(p.seg_idx(), 1);
        assert_eq!(p.seg_count(), 3);
        let r = TableRepr::parse(&HEADER[..]).unwrap();
        assert_eq!(r.records().count(), 0);
        let mut buf = [0xa5u8; 16];
        r.emit(&mut buf);
        assert_eq!(buf, HEADER);
    }

    #[test]
    fn test_records_roundtrip() {
        let a = sample(1, 2, 0);
        let b = sample(2, 4, 1);
        let mut recs = [0u8; 1024];
        let n1 = a.emit(&mut recs);
        let n2 = b.emit(&mut recs[n1..]);
        let r = TableRepr {
            round: 1,
            seg_idx: 0,
            seg_count: 1,
            flags: 0,
            count: 2,
            records: &recs[..n1 + n2],
        };
        let mut buf = [0u8; 1024];
        let len = r.buffer_len();
        r.emit(&mut buf[..len]);
        let p = TableRepr::parse(&buf[..len]).unwrap();
        assert_eq!(p, r);
        let got: std::vec::Vec<NodeRecord> = p.records().collect();
        assert_eq!(got, vec![a, b]);
        // count mismatch and trailing garbage are rejected
        buf[15] = 3;
        assert_eq!(
            TableRepr::parse(&buf[..len]).unwrap_err(),
            Reject::BadLength
        );
        buf[15] = 1;
        assert_eq!(
            TableRepr::parse(&buf[..len]).unwrap_err(),
            Reject::BadLength
        );
    }

    #[test]
    fn test_bad_segment_index() {
        let mut h = HEADER;
        h[9] = 3;
        assert_eq!(TableRepr::parse(&h[..]).unwrap_err(), Reject::BadField);
        assert_eq!(
            TableRepr::parse(&HEADER[..15]).unwrap_err(),
            Reject::BadLength
        );
    }
}
