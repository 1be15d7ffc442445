//! The DMPD wire format (smoltcp `wire` style).
//!
//! Every family lives in its own file. Each has a zero-copy view
//! (`Packet<T: AsRef<[u8]>>`, or [`ControlFrame`] / [`DataFrame`] for whole
//! Ethernet frames) with the byte layout in a private `mod field`, and a `Repr`
//! of already-checked values with `parse`, `emit` and `buffer_len`.
//!
//! A control frame is
//!
//! ```text
//! | Ethernet II (14) | common header (44) | body (body_len) | tag (16) | padding? |
//! ```
//!
//! The tag is HMAC-SHA256 truncated to 16 bytes over the EtherType, the
//! common header and the body (bytes `12 .. 58 + body_len`). The MAC addresses
//! are *not* covered: the agent rewrites the source MAC per port when one
//! frame goes out on several ports. Byte tables: `docs/dmpd-protocol.md`.
//!
//! Views never fail on unknown kinds or enum values (`enum_with_unknown!`);
//! only `parse` rejects them. Every rejection has a [`Reject`] reason that
//! indexes a [`RejectCounters`] slot.

macro_rules! enum_with_unknown {
    (
        $( #[$enum_attr:meta] )*
        pub enum $name:ident($ty:ty) {
            $( $( #[$variant_attr:meta] )* $variant:ident = $value:expr ),+ $(,)?
        }
    ) => {
        $( #[$enum_attr] )*
        #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Clone, Copy)]
        pub enum $name {
            $( $( #[$variant_attr] )* $variant ),*,
            /// A value this version does not know.
            Unknown($ty),
        }

        impl ::core::convert::From<$ty> for $name {
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant ),*,
                    other => $name::Unknown(other),
                }
            }
        }

        impl ::core::convert::From<$name> for $ty {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value ),*,
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

pub mod announce;
pub mod auth;
pub mod data;
pub mod ethernet;
pub mod header;
pub mod heartbeat;
pub mod leave;
pub mod record;
pub mod response;
pub mod table;

pub use announce::AnnounceRepr;
pub use auth::{AuthMode, KeyRing, TAG_LEN};
pub use data::{DataFlags, DataFrame, DataRepr};
pub use ethernet::{EthernetAddress, Frame as EthernetFrame, DEFAULT_ETHERTYPE};
pub use header::{ControlFrame, HeaderRepr};
pub use heartbeat::HeartbeatRepr;
pub use leave::{LeaveReason, LeaveRepr};
pub use record::{
    NodeMetrics, NodeRecord, NodeState, PipeRecord, PipeState, PortMetrics, PortRecord, PortState,
    MAX_PIPES, MAX_PORTS,
};
pub use response::ResponseRepr;
pub use table::{RecordIter, TableRepr};

/// The protocol version carried in every frame.
pub const VERSION: u8 = 1;

enum_with_unknown! {
    /// Message kind (byte 15 of every DMPD frame).
    pub enum Kind(u8) {
        Heartbeat = 0x01,
        Response = 0x02,
        Table = 0x03,
        Announce = 0x04,
        Leave = 0x05,
        Data = 0x20,
    }
}

/// Why a frame was rejected. One variant per reason; [`Reject::as_index`]
/// indexes [`RejectCounters`].
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reject {
    #[error("frame shorter than its headers or claimed lengths")]
    Truncated,
    #[error("wrong EtherType")]
    BadEtherType,
    #[error("unsupported protocol version")]
    BadVersion,
    #[error("unknown or unexpected message kind")]
    BadKind,
    #[error("frame for another cluster")]
    WrongCluster,
    #[error("inconsistent length field")]
    BadLength,
    #[error("field value out of range")]
    BadField,
    #[error("unknown key id")]
    UnknownKeyId,
    #[error("authentication tag mismatch")]
    BadMac,
    #[error("sequence number older than the replay window")]
    Replay,
    #[error("sequence number already seen")]
    Duplicate,
    #[error("sender incarnation older than one already seen")]
    StaleIncarnation,
    #[error("frame sent by this node")]
    OwnFrame,
    #[error("receive port index out of range")]
    BadPort,
}

impl Reject {
    /// Number of reasons (size of [`RejectCounters`]).
    pub const COUNT: usize = 14;
    /// Every reason, in index order.
    pub const ALL: [Reject; Reject::COUNT] = [
        Reject::Truncated,
        Reject::BadEtherType,
        Reject::BadVersion,
        Reject::BadKind,
        Reject::WrongCluster,
        Reject::BadLength,
        Reject::BadField,
        Reject::UnknownKeyId,
        Reject::BadMac,
        Reject::Replay,
        Reject::Duplicate,
        Reject::StaleIncarnation,
        Reject::OwnFrame,
        Reject::BadPort,
    ];

    /// Stable index for counters (`0 .. COUNT`).
    pub const fn as_index(self) -> usize {
        match self {
            Reject::Truncated => 0,
            Reject::BadEtherType => 1,
            Reject::BadVersion => 2,
            Reject::BadKind => 3,
            Reject::WrongCluster => 4,
            Reject::BadLength => 5,
            Reject::BadField => 6,
            Reject::UnknownKeyId => 7,
            Reject::BadMac => 8,
            Reject::Replay => 9,
            Reject::Duplicate => 10,
            Reject::StaleIncarnation => 11,
            Reject::OwnFrame => 12,
            Reject::BadPort => 13,
        }
    }

    /// Short snake_case name (for metrics export).
    pub const fn name(self) -> &'static str {
        match self {
            Reject::Truncated => "truncated",
            Reject::BadEtherType => "bad_ethertype",
            Reject::BadVersion => "bad_version",
            Reject::BadKind => "bad_kind",
            Reject::WrongCluster => "wrong_cluster",
            Reject::BadLength => "bad_length",
            Reject::BadField => "bad_field",
            Reject::UnknownKeyId => "unknown_key_id",
            Reject::BadMac => "bad_mac",
            Reject::Replay => "replay",
            Reject::Duplicate => "duplicate",
            Reject::StaleIncarnation => "stale_incarnation",
            Reject::OwnFrame => "own_frame",
            Reject::BadPort => "bad_port",
        }
    }
}

/// The wire error type is the rejection reason.
pub type Error = Reject;
/// Result of parsing.
pub type Result<T> = core::result::Result<T, Reject>;

/// One counter per [`Reject`] reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectCounters {
    counts: [u64; Reject::COUNT],
}

impl RejectCounters {
    pub const fn new() -> Self {
        RejectCounters {
            counts: [0; Reject::COUNT],
        }
    }
    pub fn inc(&mut self, reason: Reject) {
        let c = &mut self.counts[reason.as_index()];
        *c = c.saturating_add(1);
    }
    pub fn get(&self, reason: Reject) -> u64 {
        self.counts[reason.as_index()]
    }
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, b| a.saturating_add(*b))
    }
    pub fn iter(&self) -> impl Iterator<Item = (Reject, u64)> + '_ {
        Reject::ALL
            .iter()
            .map(move |r| (*r, self.counts[r.as_index()]))
    }
}

/// The kind byte of a DMPD frame without any check beyond the length and
/// the EtherType: the agent's fast path uses it to send data frames to
/// [`DataFrame`] and everything else to the control lcore.
pub fn peek_kind(frame: &[u8], ethertype: u16) -> Option<Kind> {
    if frame.len() < ethernet::HEADER_LEN + 2 {
        return None;
    }
    if u16::from_be_bytes([frame[12], frame[13]]) != ethertype {
        return None;
    }
    Some(Kind::from(frame[15]))
}

/// The body of a control message.
// A response carries its record inline (fixed-capacity `heapless` vectors)
// so parsing never allocates; the value lives on the stack only briefly.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    Heartbeat(HeartbeatRepr),
    Response(ResponseRepr),
    Table(TableRepr<'a>),
    Announce(AnnounceRepr),
    Leave(LeaveRepr),
}

impl<'a> Message<'a> {
    pub fn kind(&self) -> Kind {
        match self {
            Message::Heartbeat(_) => Kind::Heartbeat,
            Message::Response(_) => Kind::Response,
            Message::Table(_) => Kind::Table,
            Message::Announce(_) => Kind::Announce,
            Message::Leave(_) => Kind::Leave,
        }
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            Message::Heartbeat(m) => m.buffer_len(),
            Message::Response(m) => m.buffer_len(),
            Message::Table(m) => m.buffer_len(),
            Message::Announce(m) => m.buffer_len(),
            Message::Leave(m) => m.buffer_len(),
        }
    }

    /// Parse a body of the given kind.
    pub fn parse(kind: Kind, body: &'a [u8]) -> Result<Message<'a>> {
        Ok(match kind {
            Kind::Heartbeat => Message::Heartbeat(HeartbeatRepr::parse(
                &heartbeat::Packet::new_checked(body)?,
            )?),
            Kind::Response => {
                Message::Response(ResponseRepr::parse(&response::Packet::new_checked(body)?)?)
            }
            Kind::Table => Message::Table(TableRepr::parse(body)?),
            Kind::Announce => {
                Message::Announce(AnnounceRepr::parse(&announce::Packet::new_checked(body)?)?)
            }
            Kind::Leave => Message::Leave(LeaveRepr::parse(&leave::Packet::new_checked(body)?)?),
            Kind::Data | Kind::Unknown(_) => return Err(Reject::BadKind),
        })
    }

    /// Emit the body into `buf` (exactly `buffer_len()` bytes).
    pub fn emit(&self, buf: &mut [u8]) {
        match self {
            Message::Heartbeat(m) => m.emit(&mut heartbeat::Packet::new_unchecked(buf)),
            Message::Response(m) => m.emit(&mut response::Packet::new_unchecked(buf)),
            Message::Table(m) => m.emit(buf),
            Message::Announce(m) => m.emit(&mut announce::Packet::new_unchecked(buf)),
            Message::Leave(m) => m.emit(&mut leave::Packet::new_unchecked(buf)),
        }
    }
}

/// A fully checked control frame: addresses, common header and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRepr<'a> {
    pub dst: EthernetAddress,
    pub src: EthernetAddress,
    pub header: HeaderRepr,
    pub message: Message<'a>,
}

impl<'a> ControlRepr<'a> {
    /// Length of the emitted frame (Ethernet header to tag, no padding).
    pub fn buffer_len(&self) -> usize {
        header::HEADER_LEN + self.message.buffer_len() + TAG_LEN
    }

    /// Check and authenticate `frame`: EtherType, version, kind, lengths,
    /// cluster id, key id and tag, then the body. Replay checks are the
    /// caller's (they need per-sender state): see [`auth::ReplayGuard`].
    pub fn parse(
        frame: &'a [u8],
        ethertype: u16,
        cluster_id: u32,
        auth: &AuthMode,
    ) -> Result<ControlRepr<'a>> {
        let f = ControlFrame::new_checked(frame)?;
        if f.ethertype() != ethertype {
            return Err(Reject::BadEtherType);
        }
        let header = HeaderRepr::parse(&f)?;
        if header.cluster_id != cluster_id {
            return Err(Reject::WrongCluster);
        }
        auth.verify(&f)?;
        let message = Message::parse(header.kind, f.body_bytes())?;
        Ok(ControlRepr {
            dst: f.dst_addr(),
            src: f.src_addr(),
            header,
            message,
        })
    }

    /// Emit into `buf` and authenticate; returns the frame length, or `None`
    /// when `buf` is too small or the body does not fit a u16 length.
    pub fn emit(&self, buf: &mut [u8], ethertype: u16, auth: &AuthMode) -> Option<usize> {
        let body_len = self.message.buffer_len();
        let total = header::HEADER_LEN + body_len + TAG_LEN;
        if buf.len() < total || body_len > usize::from(u16::MAX) {
            return None;
        }
        let buf = &mut buf[..total];
        let mut f = ControlFrame::new_unchecked(&mut *buf);
        f.set_dst_addr(self.dst);
        f.set_src_addr(self.src);
        f.set_ethertype(ethertype);
        let mut h = self.header;
        h.kind = self.message.kind();
        h.body_len = body_len as u16;
        h.key_id = auth.send_key_id();
        h.emit(&mut f);
        self.message.emit(f.body_bytes_mut());
        auth.sign(&mut f);
        Some(total)
    }
}

// Big-endian readers shared by the views' accessors; callers pass slices
// whose length `check_len` has already guaranteed.
#[inline]
pub(crate) fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
#[inline]
pub(crate) fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
#[inline]
pub(crate) fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}
