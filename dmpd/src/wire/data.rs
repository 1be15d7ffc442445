//! DATA frames: application messages between pipes, parsed on the agent's
//! fast path (not through `Node`).
//!
//! Data frames are **not** authenticated: an HMAC per packet would cost more
//! than the forwarding itself at line rate (tens of Mpps); the plane is a
//! private L2 segment, control frames (which decide membership, mastership
//! and where traffic goes) are authenticated, and applications that need
//! integrity protect their payloads end to end.

use super::ethernet::{self, EthernetAddress};
use super::{be16, be32, Kind, Reject, Result, VERSION};

mod field {
    use core::ops::Range;
    pub const DST: Range<usize> = 0..6;
    pub const SRC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const VERSION: usize = 14;
    pub const KIND: usize = 15;
    pub const FLAGS: usize = 16;
    pub const PTYPE: usize = 17;
    pub const CLUSTER: Range<usize> = 18..22;
    pub const SNODE: Range<usize> = 22..24;
    pub const DNODE: Range<usize> = 24..26;
    pub const SPIPE: Range<usize> = 26..28;
    pub const DPIPE: Range<usize> = 28..30;
    pub const MSG_SEQ: Range<usize> = 30..34;
    pub const ACK: Range<usize> = 34..38;
    pub const PAYLOAD_LEN: Range<usize> = 38..40;
    pub const fn payload(len: usize) -> Range<usize> {
        PAYLOAD_LEN.end..PAYLOAD_LEN.end + len
    }
}

/// Ethernet header plus data header.
pub const HEADER_LEN: usize = field::PAYLOAD_LEN.end;

/// Data frame flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct DataFlags(pub u8);

impl DataFlags {
    /// The sender wants an acknowledgement.
    pub const RELIABLE: u8 = 0x01;
    /// The `ack` field is valid.
    pub const ACK: u8 = 0x02;
    /// The same frame was sent on several ports ("one packet, many ports");
    /// the receiver drops copies by `(snode, spipe, msg_seq)`.
    pub const DUP_MANY_PORTS: u8 = 0x04;
    pub const KNOWN: u8 = Self::RELIABLE | Self::ACK | Self::DUP_MANY_PORTS;

    pub const fn reliable(self) -> bool {
        self.0 & Self::RELIABLE != 0
    }
    pub const fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
    pub const fn dup_many_ports(self) -> bool {
        self.0 & Self::DUP_MANY_PORTS != 0
    }
}

/// Zero-copy view of a whole data frame.
#[derive(Debug, Clone)]
pub struct DataFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> DataFrame<T> {
    pub const fn new_unchecked(buffer: T) -> Self {
        DataFrame { buffer }
    }
    pub fn new_checked(buffer: T) -> Result<Self> {
        let f = Self::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }
    /// Header present and payload within the buffer (trailing padding allowed).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN || len < field::payload(usize::from(self.payload_len())).end {
            return Err(Reject::Truncated);
        }
        Ok(())
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
    pub fn flags(&self) -> DataFlags {
        DataFlags(self.buffer.as_ref()[field::FLAGS])
    }
    #[inline]
    pub fn ptype(&self) -> u8 {
        self.buffer.as_ref()[field::PTYPE]
    }
    #[inline]
    pub fn cluster_id(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::CLUSTER])
    }
    #[inline]
    pub fn snode(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SNODE])
    }
    #[inline]
    pub fn dnode(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DNODE])
    }
    #[inline]
    pub fn spipe(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::SPIPE])
    }
    #[inline]
    pub fn dpipe(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::DPIPE])
    }
    #[inline]
    pub fn msg_seq(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::MSG_SEQ])
    }
    #[inline]
    pub fn ack(&self) -> u32 {
        be32(&self.buffer.as_ref()[field::ACK])
    }
    #[inline]
    pub fn payload_len(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::PAYLOAD_LEN])
    }
    /// The five-tuple `(Snode, Dnode, Spipe, Dpipe, Ptype)` used by the
    /// load balancer's Toeplitz hash.
    #[inline]
    pub fn five_tuple(&self) -> (u16, u16, u16, u16, u8) {
        (
            self.snode(),
            self.dnode(),
            self.spipe(),
            self.dpipe(),
            self.ptype(),
        )
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> DataFrame<&'a T> {
    /// The payload, borrowed from the received buffer (needs `check_len`).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let b: &'a [u8] = self.buffer.as_ref();
        &b[field::payload(usize::from(be16(&b[field::PAYLOAD_LEN])))]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> DataFrame<T> {
    fn put(&mut self, r: core::ops::Range<usize>, v: &[u8]) {
        self.buffer.as_mut()[r].copy_from_slice(v)
    }
    #[inline]
    pub fn set_dst_addr(&mut self, a: EthernetAddress) {
        self.put(field::DST, &a.0)
    }
    #[inline]
    pub fn set_src_addr(&mut self, a: EthernetAddress) {
        self.put(field::SRC, &a.0)
    }
    #[inline]
    pub fn set_ethertype(&mut self, v: u16) {
        self.put(field::ETHERTYPE, &v.to_be_bytes())
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
    pub fn set_flags(&mut self, v: DataFlags) {
        self.buffer.as_mut()[field::FLAGS] = v.0
    }
    #[inline]
    pub fn set_ptype(&mut self, v: u8) {
        self.buffer.as_mut()[field::PTYPE] = v
    }
    #[inline]
    pub fn set_cluster_id(&mut self, v: u32) {
        self.put(field::CLUSTER, &v.to_be_bytes())
    }
    #[inline]
    pub fn set_snode(&mut self, v: u16) {
        self.put(field::SNODE, &v.to_be_bytes())
    }
    #[inline]
    pub fn set_dnode(&mut self, v: u16) {
        self.put(field::DNODE, &v.to_be_bytes())
    }
    #[inline]
    pub fn set_spipe(&mut self, v: u16) {
        self.put(field::SPIPE, &v.to_be_bytes())
    }
    #[inline]
    pub fn set_dpipe(&mut self, v: u16) {
        self.put(field::DPIPE, &v.to_be_bytes())
    }
    #[inline]
    pub fn set_msg_seq(&mut self, v: u32) {
        self.put(field::MSG_SEQ, &v.to_be_bytes())
    }
    #[inline]
    pub fn set_ack(&mut self, v: u32) {
        self.put(field::ACK, &v.to_be_bytes())
    }
    #[inline]
    pub fn set_payload_len(&mut self, v: u16) {
        self.put(field::PAYLOAD_LEN, &v.to_be_bytes())
    }
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.payload_len());
        &mut self.buffer.as_mut()[field::payload(len)]
    }
}

/// The receive fast path's test for "a data frame for this node and
/// cluster, whole": EtherType, kind, cluster id and destination node
/// compared as two masked 64-bit words, and the payload length against the
/// buffer. Equivalent to `DataFrame::new_checked(d)` succeeding with
/// `ethertype() == ethertype`, `kind() == Kind::Data`,
/// `cluster_id() == cluster_id` and `dnode() == node` (the property test in
/// `tests/wire_props.rs` checks it); a frame that fails takes the slow
/// path, which says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataMatcher {
    /// Header bytes 12..20 (EtherType, version, kind, flags, ptype,
    /// cluster id bytes 0..2) read as a little-endian word: which bits
    /// count, and their values.
    mask0: u64,
    want0: u64,
    /// Header bytes 20..28 (cluster id bytes 2..4, snode, dnode, spipe).
    mask1: u64,
    want1: u64,
}

impl DataMatcher {
    pub fn new(ethertype: u16, cluster_id: u32, node: u16) -> Self {
        let et = ethertype.to_be_bytes();
        let cl = cluster_id.to_be_bytes();
        let dn = node.to_be_bytes();
        let kind: u8 = Kind::Data.into();
        DataMatcher {
            mask0: u64::from_le_bytes([0xff, 0xff, 0, 0xff, 0, 0, 0xff, 0xff]),
            want0: u64::from_le_bytes([et[0], et[1], 0, kind, 0, 0, cl[0], cl[1]]),
            mask1: u64::from_le_bytes([0xff, 0xff, 0, 0, 0xff, 0xff, 0, 0]),
            want1: u64::from_le_bytes([cl[2], cl[3], 0, 0, dn[0], dn[1], 0, 0]),
        }
    }

    /// The header of `d` if it is a whole data frame for this node and
    /// cluster (see the type's doc).
    #[inline(always)]
    pub fn check<'a>(&self, d: &'a [u8]) -> Option<&'a [u8; HEADER_LEN]> {
        let h = d.first_chunk::<HEADER_LEN>()?;
        let w0 = u64::from_le_bytes(*h[12..].first_chunk::<8>()?);
        let w1 = u64::from_le_bytes(*h[20..].first_chunk::<8>()?);
        let payload = usize::from(be16(&h[field::PAYLOAD_LEN]));
        (w0 & self.mask0 == self.want0
            && w1 & self.mask1 == self.want1
            && d.len() - HEADER_LEN >= payload)
            .then_some(h)
    }

    /// [`Self::check`], writable.
    #[inline(always)]
    pub fn check_mut<'a>(&self, d: &'a mut [u8]) -> Option<&'a mut [u8; HEADER_LEN]> {
        self.check(d)?;
        d.first_chunk_mut::<HEADER_LEN>()
    }
}

/// Header bytes 22..30 of a data frame (snode, dnode, spipe, dpipe) as
/// one big-endian word: the first eight bytes of the balancer's key tuple.
#[inline(always)]
pub fn addrs_word(h: &[u8; HEADER_LEN]) -> u64 {
    u64::from_be_bytes(
        *h[field::SNODE.start..]
            .first_chunk::<8>()
            .expect("in the header"),
    )
}

/// The same eight bytes as they lie in memory, read as a little-endian
/// word (no byte swap on the data path): `addrs_wire(h).swap_bytes() ==
/// addrs_word(h)`.
#[inline(always)]
pub fn addrs_wire(h: &[u8; HEADER_LEN]) -> u64 {
    u64::from_le_bytes(
        *h[field::SNODE.start..]
            .first_chunk::<8>()
            .expect("in the header"),
    )
}

/// Turns a data frame round: swaps source and destination node and pipe,
/// so that it goes back where it came from. Returns the new
/// [`addrs_wire`]. Each node-and-pipe pair is a 32-bit half of the word
/// whose two 16-bit fields trade places: a rotation by 16, whatever the
/// byte order.
#[inline(always)]
pub fn turn_around(h: &mut [u8; HEADER_LEN]) -> u64 {
    let turned = turned_wire(addrs_wire(h));
    set_addrs_wire(h, turned);
    turned
}

/// The [`addrs_wire`] word of a frame turned round, without writing it:
/// for a data path that decides before it changes the frame.
#[inline(always)]
pub fn turned_wire(wire: u64) -> u64 {
    let lo = (wire as u32).rotate_left(16);
    let hi = ((wire >> 32) as u32).rotate_left(16);
    u64::from(hi) << 32 | u64::from(lo)
}

/// Writes header bytes 22..30 from an [`addrs_wire`] word.
#[inline(always)]
pub fn set_addrs_wire(h: &mut [u8; HEADER_LEN], wire: u64) {
    *h[field::SNODE.start..]
        .first_chunk_mut::<8>()
        .expect("in the header") = wire.to_le_bytes();
}

/// The packet type of a checked data header.
#[inline(always)]
pub fn ptype_of(h: &[u8; HEADER_LEN]) -> u8 {
    h[field::PTYPE]
}

/// The destination pipe of a checked data header.
#[inline(always)]
pub fn dpipe_of(h: &[u8; HEADER_LEN]) -> u16 {
    u16::from_be_bytes([h[field::DPIPE.start], h[field::DPIPE.start + 1]])
}

/// The destination pipe's two bytes as they lie in memory, read as a
/// little-endian `u16` (no byte swap): `dpipe_wire(h).swap_bytes() ==
/// dpipe_of(h)`. A data path compares it with the last frame's.
#[inline(always)]
pub fn dpipe_wire(h: &[u8; HEADER_LEN]) -> u16 {
    u16::from_le_bytes([h[field::DPIPE.start], h[field::DPIPE.start + 1]])
}

/// Data header values (the payload stays in the buffer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataRepr {
    pub dst: EthernetAddress,
    pub src: EthernetAddress,
    pub flags: DataFlags,
    pub cluster_id: u32,
    pub snode: u16,
    pub dnode: u16,
    pub spipe: u16,
    pub dpipe: u16,
    pub ptype: u8,
    pub msg_seq: u32,
    pub ack: u32,
    pub payload_len: u16,
}

impl DataRepr {
    /// Check EtherType, version, kind, cluster, flags and lengths.
    pub fn parse<T: AsRef<[u8]>>(
        f: &DataFrame<T>,
        ethertype: u16,
        cluster_id: u32,
    ) -> Result<DataRepr> {
        if f.buffer.as_ref().len() < HEADER_LEN {
            return Err(Reject::Truncated);
        }
        if f.ethertype() != ethertype {
            return Err(Reject::BadEtherType);
        }
        if f.version() != VERSION {
            return Err(Reject::BadVersion);
        }
        if f.kind() != Kind::Data {
            return Err(Reject::BadKind);
        }
        f.check_len()?;
        if f.cluster_id() != cluster_id {
            return Err(Reject::WrongCluster);
        }
        if f.flags().0 & !DataFlags::KNOWN != 0 {
            return Err(Reject::BadField);
        }
        Ok(DataRepr {
            dst: f.dst_addr(),
            src: f.src_addr(),
            flags: f.flags(),
            cluster_id: f.cluster_id(),
            snode: f.snode(),
            dnode: f.dnode(),
            spipe: f.spipe(),
            dpipe: f.dpipe(),
            ptype: f.ptype(),
            msg_seq: f.msg_seq(),
            ack: f.ack(),
            payload_len: f.payload_len(),
        })
    }

    /// Frame length (no padding).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len as usize
    }

    /// Write every header field and copy `payload` (its length must equal
    /// `payload_len`) into `buf`; returns the frame length, or `None` if
    /// `buf` is too small or the lengths disagree.
    pub fn emit(&self, buf: &mut [u8], ethertype: u16, payload: &[u8]) -> Option<usize> {
        let len = self.buffer_len();
        if buf.len() < len || payload.len() != usize::from(self.payload_len) {
            return None;
        }
        let mut f = DataFrame::new_unchecked(&mut buf[..len]);
        f.set_dst_addr(self.dst);
        f.set_src_addr(self.src);
        f.set_ethertype(ethertype);
        f.set_version(VERSION);
        f.set_kind(Kind::Data);
        f.set_flags(self.flags);
        f.set_ptype(self.ptype);
        f.set_cluster_id(self.cluster_id);
        f.set_snode(self.snode);
        f.set_dnode(self.dnode);
        f.set_spipe(self.spipe);
        f.set_dpipe(self.dpipe);
        f.set_msg_seq(self.msg_seq);
        f.set_ack(self.ack);
        f.set_payload_len(self.payload_len);
        f.payload_mut().copy_from_slice(payload);
        Some(len)
    }
}

const _: () = assert!(ethernet::HEADER_LEN == 14);

#[cfg(test)]
mod tests {
    use super::*;

    static FRAME: [u8; 44] = [
        0x02, 0, 0, 0, 0, 0x02, // dst
        0x02, 0, 0, 0, 0, 0x01, // src
        0x88, 0xb5, 0x01, 0x20, // ethertype, version, kind DATA
        0x05, 0x11, // flags reliable|dup, ptype 17
        0, 0, 0, 42, // cluster
        0, 1, 0, 2, 0, 3, 0, 4, // snode dnode spipe dpipe
        0, 0, 0, 9, 0, 0, 0, 8, // msg seq, ack
        0, 4, // payload len
        0xde, 0xad, 0xbe, 0xef,
    ];

    fn repr() -> DataRepr {
        DataRepr {
            dst: EthernetAddress([2, 0, 0, 0, 0, 2]),
            src: EthernetAddress([2, 0, 0, 0, 0, 1]),
            flags: DataFlags(DataFlags::RELIABLE | DataFlags::DUP_MANY_PORTS),
            cluster_id: 42,
            snode: 1,
            dnode: 2,
            spipe: 3,
            dpipe: 4,
            ptype: 17,
            msg_seq: 9,
            ack: 8,
            payload_len: 4,
        }
    }

    #[test]
    fn test_deconstruct() {
        let f = DataFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(f.five_tuple(), (1, 2, 3, 4, 17));
        assert!(f.flags().reliable() && f.flags().dup_many_ports() && !f.flags().ack());
        assert_eq!(f.payload(), &[0xde, 0xad, 0xbe, 0xef]);
    }

    #[test]
    fn test_parse_emit() {
        let f = DataFrame::new_checked(&FRAME[..]).unwrap();
        assert_eq!(DataRepr::parse(&f, 0x88b5, 42).unwrap(), repr());
        let mut buf = [0xa5u8; 60];
        let n = repr()
            .emit(&mut buf, 0x88b5, &[0xde, 0xad, 0xbe, 0xef])
            .unwrap();
        assert_eq!(&buf[..n], &FRAME[..]);
        assert_eq!(repr().emit(&mut buf[..43], 0x88b5, &[0; 4]), None);
    }

    #[test]
    fn test_bad() {
        let f = DataFrame::new_unchecked(&FRAME[..]);
        assert_eq!(DataRepr::parse(&f, 0x88b5, 7), Err(Reject::WrongCluster));
        assert_eq!(DataRepr::parse(&f, 0x88b6, 42), Err(Reject::BadEtherType));
        let mut b = FRAME;
        b[14] = 9;
        assert_eq!(
            DataRepr::parse(&DataFrame::new_unchecked(&b[..]), 0x88b5, 42),
            Err(Reject::BadVersion)
        );
        assert_eq!(
            DataFrame::new_checked(&FRAME[..43]).unwrap_err(),
            Reject::Truncated
        );
        let mut b = FRAME;
        b[16] = 0x80;
        assert_eq!(
            DataRepr::parse(&DataFrame::new_unchecked(&b[..]), 0x88b5, 42),
            Err(Reject::BadField)
        );
    }
}
