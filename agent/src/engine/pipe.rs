//! Pipes: each application binds a bidirectional pair of rings (SPEC 5).
//! The tx ring carries finished data frames from the application to the
//! polling lcore; the rx ring carries received frames to the application.
//! Rings are named `rte_ring`s in DPDK memory, so a secondary process can
//! attach to them as well as an in-process application.
//!
//! Control fields (priority, flow threshold, buffer size, state) are atomics
//! that the application changes at run time and the engine reads per burst.
//! The engine's feedback controller writes `cap_bps` (at most the threshold).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

use dmpd::wire::data::{DataFlags, DataFrame, HEADER_LEN};
use ffi::{FfiError, Mbuf, MbufBurst, Mempool, Ring, RingFlags, SocketId};

/// Highest pipe id + 1 (ids index a flat table on the fast path).
pub const MAX_PIPES: usize = 1024;
/// Ring size of every pipe; `buffer` limits use below it at run time.
pub const PIPE_RING_SLOTS: u32 = 16384;
/// Packet type of acknowledgement-only frames of reliable streams.
pub const PTYPE_ACK: u8 = 0xff;

/// Pipe state, as reported in the cluster table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[repr(u8)]
pub enum PipeState {
    Open = 0,
    /// The tx ring is at its buffer limit: sends are refused (reported).
    Full = 1,
    Closed = 2,
}

/// Application-set and controller-set parameters of a pipe.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PipeParams {
    /// 0 is the lowest; higher priorities are served first.
    pub priority: u8,
    /// Flow threshold in bits per second on the wire; 0 = unlimited.
    pub threshold_bps: u64,
    /// Most messages queued for sending.
    pub buffer: u32,
}

impl Default for PipeParams {
    fn default() -> Self {
        PipeParams {
            priority: 0,
            threshold_bps: 0,
            buffer: 1024,
        }
    }
}

/// Counters of one pipe.
#[derive(Default, Debug)]
pub struct PipeCounters {
    /// Messages the engine put on the wire, and their frame bytes.
    pub tx_msgs: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// Messages delivered to the pipe's rx ring, and bytes.
    pub rx_msgs: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// Sends refused because the buffer was full (the sender was told).
    pub tx_refused: AtomicU64,
    /// Received frames dropped because the rx ring was full (counted and
    /// reported in the table; reliable streams resend them).
    pub rx_dropped: AtomicU64,
    /// Frames dropped on the way out (no route to the node, no local port
    /// up): counted, and reliable streams resend them.
    pub tx_dropped: AtomicU64,
    /// Frames held back by the threshold or priority at least once.
    pub tx_deferred: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PipeCountersSnapshot {
    pub tx_msgs: u64,
    pub tx_bytes: u64,
    pub rx_msgs: u64,
    pub rx_bytes: u64,
    pub tx_refused: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    pub tx_deferred: u64,
}

impl PipeCounters {
    pub fn snapshot(&self) -> PipeCountersSnapshot {
        PipeCountersSnapshot {
            tx_msgs: self.tx_msgs.load(Relaxed),
            tx_bytes: self.tx_bytes.load(Relaxed),
            rx_msgs: self.rx_msgs.load(Relaxed),
            rx_bytes: self.rx_bytes.load(Relaxed),
            tx_refused: self.tx_refused.load(Relaxed),
            rx_dropped: self.rx_dropped.load(Relaxed),
            tx_dropped: self.tx_dropped.load(Relaxed),
            tx_deferred: self.tx_deferred.load(Relaxed),
        }
    }
}

/// The engine's side of a pipe, shared with its application.
pub struct PipeShared {
    pub id: u16,
    pub tx: Ring,
    pub rx: Ring,
    pub priority: AtomicU8,
    pub threshold_bps: AtomicU64,
    /// Effective cap set by the feedback controller (<= threshold, or the
    /// controller's own cap when the threshold is unlimited); 0 = none.
    pub cap_bps: AtomicU64,
    pub buffer: AtomicU32,
    pub state: AtomicU8,
    /// Echo mode: the polling lcore turns every data frame that arrives for
    /// this pipe around (source and destination node and pipe swapped) and
    /// queues it on the pipe's tx ring instead of delivering it, like an
    /// echo service. Frames echoed count as received and, when sent, as
    /// sent; a full tx buffer drops the frame (`rx_dropped`).
    pub echo: AtomicBool,
    pub counters: PipeCounters,
}

impl std::fmt::Debug for PipeShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeShared").field("id", &self.id).finish()
    }
}

/// Ring names for a pipe of an agent (unique per node so agents in one
/// DPDK memory namespace do not clash).
pub fn ring_names(node: u16, id: u16) -> (String, String) {
    (
        format!("dmpd{node}_p{id}_tx"),
        format!("dmpd{node}_p{id}_rx"),
    )
}

impl PipeShared {
    pub fn create(node: u16, id: u16, params: PipeParams) -> Result<PipeShared, FfiError> {
        let (txn, rxn) = ring_names(node, id);
        // Many application threads may send; one lcore consumes.
        let tx = Ring::create(
            &txn,
            PIPE_RING_SLOTS,
            SocketId::ANY,
            RingFlags {
                single_producer: false,
                single_consumer: true,
            },
        )?;
        let rx = Ring::create(&rxn, PIPE_RING_SLOTS, SocketId::ANY, RingFlags::default())?;
        Ok(PipeShared {
            id,
            tx,
            rx,
            priority: AtomicU8::new(params.priority),
            threshold_bps: AtomicU64::new(params.threshold_bps),
            cap_bps: AtomicU64::new(0),
            buffer: AtomicU32::new(params.buffer.clamp(1, PIPE_RING_SLOTS - 1)),
            state: AtomicU8::new(PipeState::Open as u8),
            echo: AtomicBool::new(false),
            counters: PipeCounters::default(),
        })
    }

    pub fn params(&self) -> PipeParams {
        PipeParams {
            priority: self.priority.load(Relaxed),
            threshold_bps: self.threshold_bps.load(Relaxed),
            buffer: self.buffer.load(Relaxed),
        }
    }

    /// The rate the engine enforces: the tighter of threshold and cap.
    pub fn effective_rate_bps(&self) -> u64 {
        let t = self.threshold_bps.load(Relaxed);
        let c = self.cap_bps.load(Relaxed);
        match (t, c) {
            (0, c) => c,
            (t, 0) => t,
            (t, c) => t.min(c),
        }
    }

    pub fn state(&self) -> PipeState {
        match self.state.load(Relaxed) {
            0 => PipeState::Open,
            1 => PipeState::Full,
            _ => PipeState::Closed,
        }
    }
}

/// Why a send was refused. Nothing is dropped silently: the caller keeps
/// its message and decides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("pipe buffer full ({0} messages queued)")]
    Full(u32),
    #[error("message of {len} bytes exceeds the {max}-byte payload limit")]
    TooBig { len: usize, max: usize },
    #[error("no packet buffers left in the mempool")]
    NoBuffers,
    #[error("pipe is closed")]
    Closed,
}

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub src_node: u16,
    pub src_pipe: u16,
    pub ptype: u8,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub payload: bytes::Bytes,
}

/// What a pipe's frames need to know about their node.
#[derive(Debug, Clone, Copy)]
pub struct FrameTemplate {
    pub ethertype: u16,
    pub cluster_id: u32,
    pub node: u16,
    /// Largest payload: MTU minus the data header (Ethernet header excluded
    /// from the MTU as usual).
    pub max_payload: usize,
}

/// An application's handle on a pipe.
#[derive(Clone)]
pub struct Pipe {
    shared: Arc<PipeShared>,
    pool: Arc<Mempool>,
    tpl: FrameTemplate,
}

impl std::fmt::Debug for Pipe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pipe({})", self.shared.id)
    }
}

/// Header fields of one outgoing frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct SendMeta {
    pub ptype: u8,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
}

impl Pipe {
    pub fn new(shared: Arc<PipeShared>, pool: Arc<Mempool>, tpl: FrameTemplate) -> Pipe {
        Pipe { shared, pool, tpl }
    }

    pub fn id(&self) -> u16 {
        self.shared.id
    }

    pub fn node(&self) -> u16 {
        self.tpl.node
    }

    pub fn max_payload(&self) -> usize {
        self.tpl.max_payload
    }

    pub fn shared(&self) -> &Arc<PipeShared> {
        &self.shared
    }

    /// Sends `payload` to pipe `dst_pipe` of node `dst_node`, best effort.
    pub fn send(&self, dst_node: u16, dst_pipe: u16, payload: &[u8]) -> Result<(), SendError> {
        self.send_with(dst_node, dst_pipe, SendMeta::default(), payload)
    }

    /// Sends with explicit header fields (reliable streams use this).
    pub fn send_with(
        &self,
        dst_node: u16,
        dst_pipe: u16,
        meta: SendMeta,
        payload: &[u8],
    ) -> Result<(), SendError> {
        let s = &self.shared;
        if s.state() == PipeState::Closed {
            return Err(SendError::Closed);
        }
        let buffer = s.buffer.load(Relaxed);
        let r = enqueue_frame(
            &s.tx,
            &self.pool,
            &self.tpl,
            buffer,
            s.id,
            (dst_node, dst_pipe),
            meta,
            payload,
        );
        match r {
            Err(SendError::Full(_)) => {
                s.counters.tx_refused.fetch_add(1, Relaxed);
                s.state.store(PipeState::Full as u8, Relaxed);
            }
            Ok(()) if s.state() == PipeState::Full => {
                s.state.store(PipeState::Open as u8, Relaxed);
            }
            _ => {}
        }
        r
    }

    /// Takes one received message, if any.
    pub fn recv(&self) -> Option<Message> {
        dequeue_message(&self.shared.rx)
    }

    /// What the frames of this pipe carry about their node.
    pub fn template(&self) -> FrameTemplate {
        self.tpl
    }

    /// Messages waiting to be sent.
    pub fn queued(&self) -> u32 {
        self.shared.tx.count()
    }

    pub fn set_priority(&self, p: u8) {
        self.shared.priority.store(p, Relaxed);
    }

    /// Flow threshold in bits per second on the wire (0 = unlimited).
    pub fn set_threshold_bps(&self, bps: u64) {
        self.shared.threshold_bps.store(bps, Relaxed);
    }

    /// Most messages queued; clamped to the ring's size.
    pub fn set_buffer(&self, messages: u32) -> u32 {
        let b = messages.clamp(1, PIPE_RING_SLOTS - 1);
        self.shared.buffer.store(b, Relaxed);
        b
    }

    pub fn params(&self) -> PipeParams {
        self.shared.params()
    }

    /// Turns echo mode on or off (see [`PipeShared::echo`]). An echo pipe
    /// delivers nothing to `recv`.
    pub fn set_echo(&self, on: bool) {
        self.shared.echo.store(on, Relaxed);
    }

    pub fn counters(&self) -> PipeCountersSnapshot {
        self.shared.counters.snapshot()
    }
}

/// Name of an agent's mbuf pool (as `Engine::start` creates it), for
/// secondary processes that look it up.
pub fn pool_name(node: u16) -> String {
    format!("dmpd{node}_pool")
}

/// Builds one data frame from `pool` and enqueues it on `tx`, unless `tx`
/// already holds `buffer` frames. The one frame builder of both pipe kinds
/// (in-process [`Pipe`] and a secondary's `client::RemotePipe`).
#[allow(clippy::too_many_arguments)]
pub fn enqueue_frame(
    tx: &Ring,
    pool: &Mempool,
    tpl: &FrameTemplate,
    buffer: u32,
    src_pipe: u16,
    (dst_node, dst_pipe): (u16, u16),
    meta: SendMeta,
    payload: &[u8],
) -> Result<(), SendError> {
    if payload.len() > tpl.max_payload {
        return Err(SendError::TooBig {
            len: payload.len(),
            max: tpl.max_payload,
        });
    }
    if tx.count() >= buffer {
        return Err(SendError::Full(buffer));
    }
    let mut m = Mbuf::alloc(pool).map_err(|_| SendError::NoBuffers)?;
    let len = (HEADER_LEN + payload.len()).max(60);
    let buf = m.append(len).map_err(|_| SendError::TooBig {
        len: payload.len(),
        max: tpl.max_payload,
    })?;
    buf.fill(0);
    let mut f = DataFrame::new_unchecked(&mut buf[..]);
    f.set_ethertype(tpl.ethertype);
    f.set_version(dmpd::wire::VERSION);
    f.set_kind(dmpd::wire::Kind::Data);
    f.set_flags(DataFlags(meta.flags));
    f.set_ptype(meta.ptype);
    f.set_cluster_id(tpl.cluster_id);
    f.set_snode(tpl.node);
    f.set_dnode(dst_node);
    f.set_spipe(src_pipe);
    f.set_dpipe(dst_pipe);
    f.set_msg_seq(meta.seq);
    f.set_ack(meta.ack);
    f.set_payload_len(payload.len() as u16);
    buf[HEADER_LEN..HEADER_LEN + payload.len()].copy_from_slice(payload);
    let mut one: MbufBurst<1> = MbufBurst::new();
    let _ = one.push(m);
    if tx.enqueue_mbufs(&mut one) == 0 {
        // Ring slots are far above any buffer limit, so this means a racing
        // sender filled it: report as full; `one` frees the mbuf.
        return Err(SendError::Full(buffer));
    }
    Ok(())
}

/// Takes one received frame from `rx` and decodes it (both pipe kinds).
pub fn dequeue_message(rx: &Ring) -> Option<Message> {
    let mut one: MbufBurst<1> = MbufBurst::new();
    if rx.dequeue_mbufs(&mut one) == 0 {
        return None;
    }
    let m = one.pop()?;
    let f = DataFrame::new_checked(m.data()).ok()?;
    Some(Message {
        src_node: f.snode(),
        src_pipe: f.spipe(),
        ptype: f.ptype(),
        flags: f.flags().0,
        seq: f.msg_seq(),
        ack: f.ack(),
        payload: bytes::Bytes::copy_from_slice(f.payload()),
    })
}

/// What reliable streams and applications need from a pipe, whichever the
/// process it lives in: [`Pipe`] (in the agent's process) or
/// `client::RemotePipe` (a DPDK secondary process attached to an agent).
pub trait PipeIo {
    fn id(&self) -> u16;
    fn node(&self) -> u16;
    fn max_payload(&self) -> usize;
    /// Sends with explicit header fields; nothing is dropped silently.
    fn send_with(
        &self,
        dst_node: u16,
        dst_pipe: u16,
        meta: SendMeta,
        payload: &[u8],
    ) -> Result<(), SendError>;
    /// Takes one received message, if any.
    fn recv(&self) -> Option<Message>;
    /// Sends `payload` to pipe `dst_pipe` of node `dst_node`, best effort.
    fn send(&self, dst_node: u16, dst_pipe: u16, payload: &[u8]) -> Result<(), SendError> {
        self.send_with(dst_node, dst_pipe, SendMeta::default(), payload)
    }
}

impl PipeIo for Pipe {
    fn id(&self) -> u16 {
        Pipe::id(self)
    }
    fn node(&self) -> u16 {
        Pipe::node(self)
    }
    fn max_payload(&self) -> usize {
        Pipe::max_payload(self)
    }
    fn send_with(
        &self,
        dst_node: u16,
        dst_pipe: u16,
        meta: SendMeta,
        payload: &[u8],
    ) -> Result<(), SendError> {
        Pipe::send_with(self, dst_node, dst_pipe, meta, payload)
    }
    fn recv(&self) -> Option<Message> {
        Pipe::recv(self)
    }
}
