//! The common header of every DMPD control frame.
//!
//! The view covers the whole Ethernet frame so that every offset below is
//! absolute (the same numbers as in `docs/dmpd-protocol.md`).

use super::ethernet::EthernetAddress;
use super::{be16, be32, be64, Kind, Reject, Result, TAG_LEN, VERSION};

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const VERSION: usize = 14;
    pub const KIND: usize = 15;
    pub const FLAGS: usize = 16;
    pub const KEY_ID: usize = 17;
    pub const CLUSTER: Range<usize> = 18..22;
    pub const SENDER: Range<usize> = 22..24;
    pub const INCARNATION: Range<usize> = 24..32;
    pub const TERM: Range<usize> = 32..40;
    pub const SEQ: Range<usize> = 40..48;
    pub const TIMESTAMP: Range<usize> = 48..56;
    pub const BODY_LEN: Range<usize> = 56..58;
    pub const fn body(len: usize) -> Range<usize> {
        BODY_LEN.end..BODY_LEN.end + len
    }
    pub const fn tag(len: usize) -> Range<usize> {
        body(len).end..body(len).end + super::TAG_LEN
    }
    /// Bytes covered by the tag: EtherType .. end of body.
    pub const fn authenticated(len: usize) -> Range<usize> {
        ETHERTYPE.start..body(len).end
    }
}

/// Ethernet header plus common header, in bytes.
pub const HEADER_LEN: usize = field::BODY_LEN.end;
/// Smallest possible control frame (empty body plus tag).
pub const MIN_FRAME_LEN: usize = HEADER_LEN + TAG_LEN;

/// A view of a whole control frame.
#[derive(Debug, Clone)]
pub struct ControlFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ControlFrame<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        ControlFrame { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// The fixed header fits, and so do the body and tag it claims.
    /// Trailing bytes (Ethernet padding) are allowed.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Reject::Truncated);
        }
        if len < field::tag(usize::from(self.body_len())).end {
            return Err(Reject::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::DST])
    }
    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SRC])
    }
    #[inline]
    pub fn ethertype(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::ETHERTYPE])
    }
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }
    #[inline]
    pub fn kind(&self) -> Kind {
        Kind::from(self.buffer.as_ref()[field::KIND])
    }
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    #[inline]
    pub fn key_id(&self) -> u8 {
        self.buffer.as_ref()[field::KEY_ID]
    }
    #[inline]
    pub fn cluster_id(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::CLUSTER])
    }
    #[inline]
    pub fn sender(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SENDER])
    }
    #[inline]
    pub fn incarnation(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::INCARNATION])
    }
    #[inline]
    pub fn term(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::TERM])
    }
    #[inline]
    pub fn seq(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::SEQ])
    }
    #[inline]
    pub fn timestamp(&self) -> u64 {
        be64(&self.buffer.as_ref()[field::TIMESTAMP])
    }
    #[inline]
    pub fn body_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::BODY_LEN])
    }
    /// Bytes covered by the tag (needs `check_len`).
    #[inline]
    pub fn authenticated_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[field::authenticated(usize::from(self.body_len()))]
    }
    /// The tag (needs `check_len`).
    #[inline]
    pub fn tag(&self) -> &[u8] {
        &self.buffer.as_ref()[field::tag(usize::from(self.body_len()))]
    }
    /// The body, borrowed for the lifetime of the view (needs `check_len`).
    #[inline]
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[field::body(usize::from(self.body_len()))]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> ControlFrame<&'a T> {
    /// The body with the lifetime of the underlying buffer (needs `check_len`).
    #[inline]
    pub fn body_bytes(&self) -> &'a [u8] {
        let b: &'a [u8] = self.buffer.as_ref();
        &b[field::body(usize::from(be16(&b[field::BODY_LEN])))]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ControlFrame<T> {
    #[inline]
    pub fn set_dst_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.0)
    }
    #[inline]
    pub fn set_src_addr(&mut self, a: EthernetAddress) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.0)
    }
    #[inline]
    pub fn set_ethertype(&mut self, v: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn set_version(&mut self, v: u8) {
        self.buffer.as_mut()[field::VERSION] = v
    }
    #[inline]
    pub fn set_kind(&mut self, v: Kind) {
        self.buffer.as_mut()[field::KIND] = v.into()
    }
    #[inline]
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v
    }
    #[inline]
    pub fn set_key_id(&mut self, v: u8) {
        self.buffer.as_mut()[field::KEY_ID] = v
    }
    #[inline]
    pub fn set_cluster_id(&mut self, v: u32) {
        self.buffer.as_mut()[field::CLUSTER].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn set_sender(&mut self, v: u16) {
        self.buffer.as_mut()[field::SENDER].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn set_incarnation(&mut self, v: u64) {
        self.buffer.as_mut()[field::INCARNATION].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn set_term(&mut self, v: u64) {
        self.buffer.as_mut()[field::TERM].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn set_seq(&mut self, v: u64) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn set_timestamp(&mut self, v: u64) {
        self.buffer.as_mut()[field::TIMESTAMP].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn set_body_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::BODY_LEN].copy_from_slice(&v.to_be_bytes())
    }
    #[inline]
    pub fn body_bytes_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.body_len());
        &mut self.buffer.as_mut()[field::body(len)]
    }
    /// Authenticated bytes and tag, split for signing.
    pub fn auth_and_tag_mut(&mut self) -> (&[u8], &mut [u8]) {
        let len = usize::from(self.body_len());
        let end = field::body(len).end;
        let (head, tail) = self.buffer.as_mut().split_at_mut(end);
        (&head[field::ETHERTYPE.start..], &mut tail[..TAG_LEN])
    }
}

/// Values of the common header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderRepr {
    pub kind: Kind,
    pub flags: u8,
    pub key_id: u8,
    pub cluster_id: u32,
    pub sender: u16,
    pub incarnation: u64,
    pub term: u64,
    pub seq: u64,
    /// Sender's clock at emission, nanoseconds.
    pub timestamp: u64,
    pub body_len: u16,
}

impl HeaderRepr {
    /// Check version, kind and lengths (in that order, so that a frame of a
    /// future version is reported as such whatever its length).
    pub fn parse<T: AsRef<[u8]>>(f: &ControlFrame<T>) -> Result<HeaderRepr> {
        if f.buffer.as_ref().len() < HEADER_LEN {
            return Err(Reject::Truncated);
        }
        if f.version() != VERSION {
            return Err(Reject::BadVersion);
        }
        let kind = f.kind();
        match kind {
            Kind::Heartbeat | Kind::Response | Kind::Table | Kind::Announce | Kind::Leave => {}
            Kind::Data | Kind::Unknown(_) => return Err(Reject::BadKind),
        }
        f.check_len()?;
        Ok(HeaderRepr {
            kind,
            flags: f.flags(),
            key_id: f.key_id(),
            cluster_id: f.cluster_id(),
            sender: f.sender(),
            incarnation: f.incarnation(),
            term: f.term(),
            seq: f.seq(),
            timestamp: f.timestamp(),
            body_len: f.body_len(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.body_len as usize + TAG_LEN
    }

    /// Write every header field after the Ethernet addresses' EtherType.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, f: &mut ControlFrame<T>) {
        f.set_version(VERSION);
        f.set_kind(self.kind);
        f.set_flags(self.flags);
        f.set_key_id(self.key_id);
        f.set_cluster_id(self.cluster_id);
        f.set_sender(self.sender);
        f.set_incarnation(self.incarnation);
        f.set_term(self.term);
        f.set_seq(self.seq);
        f.set_timestamp(self.timestamp);
        f.set_body_len(self.body_len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A LEAVE frame (body 4 bytes) with a zero tag, as emitted unauthenticated.
    static FRAME_BYTES: [u8; 78] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
        0x02, 0x00, 0x00, 0x00, 0x00, 0x07, // src
        0x88, 0xb5, // ethertype
        0x01, 0x05, 0x00, 0x00, // version, kind=LEAVE, flags, key id
        0x00, 0x00, 0x00, 0x2a, // cluster 42
        0x00, 0x07, // sender 7
        0, 0, 0, 0, 0, 0, 0, 3, // incarnation 3
        0, 0, 0, 0, 0, 0, 0, 9, // term 9
        0, 0, 0, 0, 0, 0, 1, 0, // seq 256
        0, 0, 0, 0, 0x3b, 0x9a, 0xca, 0x00, // timestamp 1e9
        0x00, 0x04, // body len
        0x01, 0x00, 0x00, 0x00, // body
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // tag
    ];

    fn repr() -> HeaderRepr {
        HeaderRepr {
            kind: Kind::Leave,
            flags: 0,
            key_id: 0,
            cluster_id: 42,
            sender: 7,
            incarnation: 3,
            term: 9,
            seq: 256,
            timestamp: 1_000_000_000,
            body_len: 4,
        }
    }

    #[test]
    fn test_deconstruct() {
        let f = ControlFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(f.version(), 1);
        assert_eq!(f.kind(), Kind::Leave);
        assert_eq!(f.cluster_id(), 42);
        assert_eq!(f.sender(), 7);
        assert_eq!(f.incarnation(), 3);
        assert_eq!(f.term(), 9);
        assert_eq!(f.seq(), 256);
        assert_eq!(f.timestamp(), 1_000_000_000);
        assert_eq!(f.body(), &[1, 0, 0, 0]);
        assert_eq!(f.tag(), &[0u8; 16]);
        assert_eq!(f.authenticated_bytes().len(), 2 + 44 + 4);
    }

    #[test]
    fn test_parse_emit() {
        let f = ControlFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(HeaderRepr::parse(&f).unwrap(), repr());
        let mut buf = [0xa5u8; 78];
        buf[..14].copy_from_slice(&FRAME_BYTES[..14]);
        buf[58..].copy_from_slice(&FRAME_BYTES[58..]);
        let mut f = ControlFrame::new_unchecked(&mut buf[..]);
        repr().emit(&mut f);
        assert_eq!(&buf[..], &FRAME_BYTES[..]);
    }

    #[test]
    fn test_impossible_len() {
        let mut bytes = FRAME_BYTES;
        bytes[57] = 200; // body claims more than the frame holds
        let f = ControlFrame::new_unchecked(&bytes[..]);
        assert_eq!(HeaderRepr::parse(&f), Err(Reject::Truncated));
        assert_eq!(
            ControlFrame::new_checked(&FRAME_BYTES[..40]).unwrap_err(),
            Reject::Truncated
        );
    }

    #[test]
    fn test_parse_bad_version() {
        let mut bytes = FRAME_BYTES;
        bytes[14] = 2;
        let f = ControlFrame::new_unchecked(&bytes[..]);
        assert_eq!(HeaderRepr::parse(&f), Err(Reject::BadVersion));
        bytes[14] = 1;
        bytes[15] = 0x77;
        let f = ControlFrame::new_unchecked(&bytes[..]);
        assert_eq!(HeaderRepr::parse(&f), Err(Reject::BadKind));
    }
}
