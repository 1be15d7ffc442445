//! Reliable, in-order, exactly-once delivery over a best-effort pipe:
//! sequence numbers, cumulative acknowledgements and resends (a selective
//! go-back-N). Sans-IO: [`Sender`] and [`Receiver`] take `now` and return
//! what to send; [`ReliablePipe`] drives them over a [`Pipe`].
//!
//! Guarantee: while both ends live, every message pushed is delivered to
//! the receiving application exactly once and in push order, whatever the
//! loss, duplication or reordering between ports; the sender learns which
//! prefix was delivered (`delivered()`). A restart of either end starts a
//! new stream (sequence numbers restart at 0).

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;

use crate::engine::pipe::{Message, Pipe, PipeIo, SendError, SendMeta, PTYPE_ACK};
use dmpd::wire::data::DataFlags;

/// Parameters of a reliable stream.
#[derive(Debug, Clone, Copy)]
pub struct ReliableConfig {
    /// Messages in flight (sent, not yet acknowledged).
    pub window: u32,
    /// Resend a message not acknowledged after this long.
    pub rto_ns: u64,
    /// Messages accepted but not yet sent.
    pub max_pending: usize,
    /// Out-of-order messages a receiver keeps while waiting for a gap.
    pub max_out_of_order: usize,
}

impl Default for ReliableConfig {
    fn default() -> Self {
        ReliableConfig {
            window: 256,
            rto_ns: 100_000_000,
            max_pending: 4096,
            max_out_of_order: 1024,
        }
    }
}

/// `a < b` in sequence space (wrapping).
#[inline]
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

struct Inflight {
    seq: u32,
    payload: Bytes,
    sent_at: u64,
}

/// The sending half of one stream.
pub struct Sender {
    cfg: ReliableConfig,
    next_seq: u32,
    /// Every sequence below this was delivered.
    acked: u32,
    pending: VecDeque<Bytes>,
    inflight: VecDeque<Inflight>,
    /// Resends so far.
    pub resends: u64,
}

impl Sender {
    pub fn new(cfg: ReliableConfig) -> Sender {
        Sender {
            cfg,
            next_seq: 0,
            acked: 0,
            pending: VecDeque::new(),
            inflight: VecDeque::new(),
            resends: 0,
        }
    }

    /// Queues a message; returns its sequence number, or `None` when the
    /// pending queue is full (the caller keeps the message).
    pub fn push(&mut self, payload: Bytes) -> Option<u32> {
        if self.pending.len() >= self.cfg.max_pending {
            return None;
        }
        // Numbers follow push order: the next message is `next_seq +
        // pending` (next_seq counts what left the pending queue).
        let seq = self.next_seq.wrapping_add(self.pending.len() as u32);
        self.pending.push_back(payload);
        Some(seq)
    }

    /// A cumulative acknowledgement: every message below `ack` arrived.
    pub fn on_ack(&mut self, ack: u32) {
        if !seq_lt(self.acked, ack) || seq_lt(self.next_seq, ack) {
            return; // old, or acknowledges what was never sent
        }
        self.acked = ack;
        while self.inflight.front().is_some_and(|f| seq_lt(f.seq, ack)) {
            self.inflight.pop_front();
        }
    }

    /// The next frame to send now: a timed-out message (oldest first), else
    /// a new one within the window.
    pub fn poll_transmit(&mut self, now: u64) -> Option<(u32, Bytes)> {
        let rto = self.cfg.rto_ns;
        if let Some(f) = self
            .inflight
            .iter_mut()
            .find(|f| now.saturating_sub(f.sent_at) >= rto)
        {
            f.sent_at = now;
            self.resends += 1;
            return Some((f.seq, f.payload.clone()));
        }
        if (self.inflight.len() as u32) < self.cfg.window {
            let payload = self.pending.pop_front()?;
            let seq = self.next_seq;
            self.next_seq = self.next_seq.wrapping_add(1);
            self.inflight.push_back(Inflight {
                seq,
                payload: payload.clone(),
                sent_at: now,
            });
            return Some((seq, payload));
        }
        None
    }

    /// Un-sends a frame that `poll_transmit` returned but the pipe refused,
    /// so it goes out again at the next chance rather than after a timeout.
    pub fn refused(&mut self, seq: u32) {
        if let Some(f) = self.inflight.iter_mut().find(|f| f.seq == seq) {
            f.sent_at = 0;
        }
    }

    /// Messages delivered so far (the acknowledged prefix).
    pub fn delivered(&self) -> u32 {
        self.acked
    }

    /// Messages pushed so far.
    pub fn pushed(&self) -> u32 {
        self.next_seq.wrapping_add(self.pending.len() as u32)
    }

    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Nothing pending or unacknowledged.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.inflight.is_empty()
    }
}

/// The receiving half of one stream.
pub struct Receiver {
    cfg: ReliableConfig,
    /// Next sequence to deliver.
    expected: u32,
    out_of_order: BTreeMap<u32, Bytes>,
    pub duplicates: u64,
    pub dropped_out_of_window: u64,
}

impl Receiver {
    pub fn new(cfg: ReliableConfig) -> Receiver {
        Receiver {
            cfg,
            expected: 0,
            out_of_order: BTreeMap::new(),
            duplicates: 0,
            dropped_out_of_window: 0,
        }
    }

    /// Takes a data frame; pushes what is now deliverable, in order, to
    /// `out`, and returns the cumulative acknowledgement to send.
    pub fn on_data(&mut self, seq: u32, payload: Bytes, out: &mut VecDeque<Bytes>) -> u32 {
        if seq_lt(seq, self.expected) || self.out_of_order.contains_key(&seq) {
            self.duplicates += 1;
        } else if seq == self.expected {
            out.push_back(payload);
            self.expected = self.expected.wrapping_add(1);
            while let Some(p) = self.out_of_order.remove(&self.expected) {
                out.push_back(p);
                self.expected = self.expected.wrapping_add(1);
            }
        } else if self.out_of_order.len() < self.cfg.max_out_of_order
            && seq.wrapping_sub(self.expected) < self.cfg.max_out_of_order as u32 * 4
        {
            self.out_of_order.insert(seq, payload);
        } else {
            // The sender resends it; keeping memory bounded matters more.
            self.dropped_out_of_window += 1;
        }
        self.expected
    }

    pub fn expected(&self) -> u32 {
        self.expected
    }
}

/// A peer: (node, pipe).
pub type Peer = (u16, u16);

/// A received reliable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub from: Peer,
    pub payload: Bytes,
}

/// Reliable streams to and from any number of peers over one pipe, of
/// either kind ([`Pipe`] in-process, `client::RemotePipe` attached).
pub struct ReliablePipe<P: PipeIo = Pipe> {
    pipe: P,
    cfg: ReliableConfig,
    senders: HashMap<Peer, Sender>,
    receivers: HashMap<Peer, Receiver>,
    inbox: VecDeque<Delivered>,
    acks_due: HashMap<Peer, u32>,
    scratch: VecDeque<Bytes>,
    /// Best-effort messages that arrived on this pipe (not reliable frames).
    pub other: VecDeque<Message>,
}

impl<P: PipeIo> ReliablePipe<P> {
    pub fn new(pipe: P, cfg: ReliableConfig) -> ReliablePipe<P> {
        ReliablePipe {
            pipe,
            cfg,
            senders: HashMap::new(),
            receivers: HashMap::new(),
            inbox: VecDeque::new(),
            acks_due: HashMap::new(),
            scratch: VecDeque::new(),
            other: VecDeque::new(),
        }
    }

    pub fn pipe(&self) -> &P {
        &self.pipe
    }

    /// Queues a message for `to`; returns its sequence number.
    pub fn send(&mut self, to: Peer, payload: Bytes) -> Result<u32, SendError> {
        if payload.len() > self.pipe.max_payload() {
            return Err(SendError::TooBig {
                len: payload.len(),
                max: self.pipe.max_payload(),
            });
        }
        let cfg = self.cfg;
        self.senders
            .entry(to)
            .or_insert_with(|| Sender::new(cfg))
            .push(payload)
            .ok_or(SendError::Full(cfg.max_pending as u32))
    }

    /// Moves frames both ways; call it often (every millisecond or so).
    pub fn poll(&mut self, now: u64) {
        while let Some(m) = self.pipe.recv() {
            let from = (m.src_node, m.src_pipe);
            if m.flags & DataFlags::ACK != 0 {
                if let Some(s) = self.senders.get_mut(&from) {
                    s.on_ack(m.ack);
                }
            }
            if m.flags & DataFlags::RELIABLE != 0 && m.ptype != PTYPE_ACK {
                let cfg = self.cfg;
                let r = self
                    .receivers
                    .entry(from)
                    .or_insert_with(|| Receiver::new(cfg));
                let ack = r.on_data(m.seq, m.payload, &mut self.scratch);
                for payload in self.scratch.drain(..) {
                    self.inbox.push_back(Delivered { from, payload });
                }
                self.acks_due.insert(from, ack);
            } else if m.flags & DataFlags::ACK == 0 {
                self.other.push_back(m);
            }
        }
        // One cumulative ack per peer per poll.
        let acks: Vec<(Peer, u32)> = self.acks_due.drain().collect();
        for (to, ack) in acks {
            let meta = SendMeta {
                ptype: PTYPE_ACK,
                flags: DataFlags::ACK,
                seq: 0,
                ack,
            };
            if self.pipe.send_with(to.0, to.1, meta, &[]).is_err() {
                // Try again next poll; the sender resends meanwhile.
                self.acks_due.insert(to, ack);
            }
        }
        for (&to, s) in self.senders.iter_mut() {
            while let Some((seq, payload)) = s.poll_transmit(now) {
                let meta = SendMeta {
                    ptype: 1,
                    flags: DataFlags::RELIABLE,
                    seq,
                    ack: 0,
                };
                if self.pipe.send_with(to.0, to.1, meta, &payload).is_err() {
                    s.refused(seq);
                    break;
                }
            }
        }
    }

    /// The next delivered message, in order per peer.
    pub fn recv(&mut self) -> Option<Delivered> {
        self.inbox.pop_front()
    }

    /// How many messages to `to` were delivered (acknowledged prefix).
    pub fn delivered(&self, to: Peer) -> u32 {
        self.senders.get(&to).map_or(0, Sender::delivered)
    }

    pub fn resends(&self, to: Peer) -> u64 {
        self.senders.get(&to).map_or(0, |s| s.resends)
    }

    /// Everything sent was acknowledged.
    pub fn is_idle(&self) -> bool {
        self.senders.values().all(Sender::is_idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A lossy, reordering, duplicating link driven by a seeded RNG.
    fn run(seed: u64, loss: f64, n: u32) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let cfg = ReliableConfig {
            window: 32,
            rto_ns: 10,
            ..Default::default()
        };
        let mut s = Sender::new(cfg);
        let mut r = Receiver::new(cfg);
        for i in 0..n {
            assert_eq!(s.push(Bytes::from(i.to_be_bytes().to_vec())), Some(i));
        }
        let mut wire: Vec<(u64, u32, Bytes)> = Vec::new();
        let mut acks: Vec<(u64, u32)> = Vec::new();
        let mut out = VecDeque::new();
        let mut got = Vec::new();
        let mut now = 0u64;
        while !s.is_idle() {
            now += 1;
            assert!(now < 1_000_000, "seed {seed}: no progress");
            while let Some((seq, p)) = s.poll_transmit(now) {
                if rng.gen_bool(1.0 - loss) {
                    wire.push((now + rng.gen_range(0..5), seq, p.clone()));
                }
                if rng.gen_bool(0.05) {
                    wire.push((now + rng.gen_range(0..8), seq, p)); // duplicate
                }
            }
            let (due, rest): (Vec<_>, Vec<_>) = wire.drain(..).partition(|x| x.0 <= now);
            wire = rest;
            for (_, seq, p) in due {
                let ack = r.on_data(seq, p, &mut out);
                if rng.gen_bool(1.0 - loss) {
                    acks.push((now + rng.gen_range(0..5), ack));
                }
            }
            got.extend(out.drain(..));
            let (due, rest): (Vec<_>, Vec<_>) = acks.drain(..).partition(|x| x.0 <= now);
            acks = rest;
            for (_, a) in due {
                s.on_ack(a);
            }
        }
        let want: Vec<Bytes> = (0..n)
            .map(|i| Bytes::from(i.to_be_bytes().to_vec()))
            .collect();
        assert_eq!(got, want, "seed {seed}: exactly once, in order");
        assert_eq!(s.delivered(), n);
    }

    #[test]
    fn exactly_once_in_order_over_a_lossy_duplicating_link() {
        for seed in 0..40 {
            for loss in [0.0, 0.01, 0.1, 0.3] {
                run(seed, loss, 300);
            }
        }
    }

    #[test]
    fn sequence_comparison_wraps() {
        assert!(seq_lt(u32::MAX, 0));
        assert!(seq_lt(5, 6));
        assert!(!seq_lt(6, 5));
    }

    #[test]
    fn stale_and_impossible_acks_are_ignored() {
        let mut s = Sender::new(ReliableConfig::default());
        for i in 0..4u8 {
            s.push(Bytes::from(vec![i]));
        }
        while s.poll_transmit(0).is_some() {}
        s.on_ack(10); // never sent
        assert_eq!(s.delivered(), 0);
        s.on_ack(2);
        s.on_ack(1); // stale
        assert_eq!(s.delivered(), 2);
        assert_eq!(s.in_flight(), 2);
    }

    #[test]
    fn receiver_memory_is_bounded() {
        let cfg = ReliableConfig {
            max_out_of_order: 8,
            ..Default::default()
        };
        let mut r = Receiver::new(cfg);
        let mut out = VecDeque::new();
        for seq in 1..1000 {
            r.on_data(seq, Bytes::new(), &mut out);
        }
        assert!(out.is_empty());
        assert!(r.out_of_order.len() <= 8);
        assert!(r.dropped_out_of_window > 0);
        r.on_data(0, Bytes::new(), &mut out);
        assert_eq!(out.len(), 9, "0 plus the 8 kept");
    }
}
