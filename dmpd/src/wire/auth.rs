//! Authentication (HMAC-SHA256, truncated tag) and replay protection.
//!
//! Tag: the first [`TAG_LEN`] bytes of HMAC-SHA256(key, EtherType ‖ common
//! header ‖ body). The key id in the header selects the key; a [`KeyRing`]
//! holds several accepted keys at once and one send key, so keys rotate
//! without a lost round: (1) add the new key everywhere, (2) switch the send
//! key everywhere, (3) remove the old key. Key id 0 is reserved for
//! unauthenticated frames ([`AuthMode::None`], only by explicit configuration).

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::header::ControlFrame;
use super::{Reject, Result};

/// Length of the truncated tag (128 bits).
pub const TAG_LEN: usize = 16;
/// Maximum number of keys a ring holds.
pub const MAX_KEYS: usize = 8;

type HmacSha256 = Hmac<Sha256>;

/// Pre-shared cluster keys, indexed by key id (1..=255).
#[derive(Clone)]
pub struct KeyRing {
    keys: heapless::Vec<(u8, HmacSha256), MAX_KEYS>,
    send: u8,
}

impl core::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let ids: heapless::Vec<u8, MAX_KEYS> = self.keys.iter().map(|(id, _)| *id).collect();
        f.debug_struct("KeyRing")
            .field("key_ids", &ids)
            .field("send", &self.send)
            .finish()
    }
}

/// Errors building a key ring.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    #[error("key id 0 is reserved for unauthenticated frames")]
    ReservedId,
    #[error("key ring full")]
    Full,
    #[error("key shorter than 16 bytes")]
    TooShort,
    #[error("no such key id")]
    NoSuchKey,
}

impl KeyRing {
    /// A ring with one key, which is also the send key.
    pub fn new(id: u8, key: &[u8]) -> core::result::Result<KeyRing, KeyError> {
        let mut r = KeyRing {
            keys: heapless::Vec::new(),
            send: id,
        };
        r.add(id, key)?;
        Ok(r)
    }

    /// Accept frames signed with `key` under `id` (replaces a key of that id).
    pub fn add(&mut self, id: u8, key: &[u8]) -> core::result::Result<(), KeyError> {
        if id == 0 {
            return Err(KeyError::ReservedId);
        }
        if key.len() < 16 {
            return Err(KeyError::TooShort);
        }
        let mac = HmacSha256::new_from_slice(key).map_err(|_| KeyError::TooShort)?;
        if let Some(slot) = self.keys.iter_mut().find(|(i, _)| *i == id) {
            slot.1 = mac;
            return Ok(());
        }
        self.keys.push((id, mac)).map_err(|_| KeyError::Full)
    }

    /// Sign outgoing frames with key `id`.
    pub fn set_send_key(&mut self, id: u8) -> core::result::Result<(), KeyError> {
        if self.keys.iter().any(|(i, _)| *i == id) {
            self.send = id;
            Ok(())
        } else {
            Err(KeyError::NoSuchKey)
        }
    }

    /// Stop accepting key `id` (not the current send key).
    pub fn remove(&mut self, id: u8) -> core::result::Result<(), KeyError> {
        if id == self.send {
            return Err(KeyError::NoSuchKey);
        }
        let pos = self
            .keys
            .iter()
            .position(|(i, _)| *i == id)
            .ok_or(KeyError::NoSuchKey)?;
        self.keys.swap_remove(pos);
        Ok(())
    }

    pub fn send_key_id(&self) -> u8 {
        self.send
    }

    pub fn key_ids(&self) -> impl Iterator<Item = u8> + '_ {
        self.keys.iter().map(|(i, _)| *i)
    }

    fn mac(&self, id: u8) -> Option<&HmacSha256> {
        self.keys.iter().find(|(i, _)| *i == id).map(|(_, m)| m)
    }

    fn tag(mac: &HmacSha256, data: &[u8]) -> [u8; 32] {
        let mut m = mac.clone();
        m.update(data);
        m.finalize().into_bytes().into()
    }
}

/// How control frames are authenticated.
// The ring is kept inline (keyed HMAC states, no heap pointer to chase on
// the per-frame path); the enum lives once per node.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum AuthMode {
    /// HMAC-SHA256 with the keys of the ring.
    Hmac(KeyRing),
    /// No authentication: key id 0, zero tag, tag not checked. Only by
    /// explicit configuration (lab use, simulations).
    None,
}

impl AuthMode {
    pub fn send_key_id(&self) -> u8 {
        match self {
            AuthMode::Hmac(r) => r.send_key_id(),
            AuthMode::None => 0,
        }
    }

    /// Check the key id and the tag of a length-checked frame.
    pub fn verify<T: AsRef<[u8]>>(&self, f: &ControlFrame<T>) -> Result<()> {
        match self {
            AuthMode::None => {
                if f.key_id() != 0 {
                    Err(Reject::UnknownKeyId)
                } else {
                    Ok(())
                }
            }
            AuthMode::Hmac(ring) => {
                let mac = ring.mac(f.key_id()).ok_or(Reject::UnknownKeyId)?;
                let full = KeyRing::tag(mac, f.authenticated_bytes());
                if bool::from(full[..TAG_LEN].ct_eq(f.tag())) {
                    Ok(())
                } else {
                    Err(Reject::BadMac)
                }
            }
        }
    }

    /// Write the tag of an emitted frame (key id already set).
    pub fn sign<T: AsRef<[u8]> + AsMut<[u8]>>(&self, f: &mut ControlFrame<T>) {
        let id = f.key_id();
        let (data, tag) = f.auth_and_tag_mut();
        match self {
            AuthMode::None => tag.fill(0),
            AuthMode::Hmac(ring) => match ring.mac(id) {
                Some(mac) => tag.copy_from_slice(&KeyRing::tag(mac, data)[..TAG_LEN]),
                None => tag.fill(0),
            },
        }
    }
}

/// Sliding window size, in sequence numbers.
pub const REPLAY_WINDOW: u64 = 64;

/// One sender's replay window on one receive port: highest sequence seen and
/// a bitmap of the [`REPLAY_WINDOW`] sequences below it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    pub incarnation: u64,
    pub top: u64,
    pub bitmap: u64,
}

impl ReplayWindow {
    /// Accept `seq` and record it, or say why not. Call only after the tag
    /// was verified.
    pub fn check_and_update(&mut self, incarnation: u64, seq: u64) -> Result<()> {
        if incarnation < self.incarnation {
            return Err(Reject::StaleIncarnation);
        }
        if incarnation > self.incarnation || self.bitmap == 0 {
            *self = ReplayWindow {
                incarnation,
                top: seq,
                bitmap: 1,
            };
            return Ok(());
        }
        if seq > self.top {
            let shift = seq - self.top;
            self.bitmap = if shift >= REPLAY_WINDOW {
                1
            } else {
                (self.bitmap << shift) | 1
            };
            self.top = seq;
            return Ok(());
        }
        let off = self.top - seq;
        if off >= REPLAY_WINDOW {
            return Err(Reject::Replay);
        }
        let bit = 1u64 << off;
        if self.bitmap & bit != 0 {
            return Err(Reject::Duplicate);
        }
        self.bitmap |= bit;
        Ok(())
    }
}

/// Window key (in place of a port index) of [`ReplayGuard::check_single_port`].
pub const SINGLE_PORT_WINDOW: u8 = u8::MAX;

/// Replay state of every sender: its highest incarnation, and one window per
/// (sender, receive port) since one frame sent on several ports arrives once
/// per port with the same sequence number.
#[derive(Debug, Clone, Default)]
pub struct ReplayGuard {
    incarnations: BTreeMap<u16, u64>,
    windows: BTreeMap<(u16, u8), ReplayWindow>,
}

/// What [`ReplayGuard::check`] learnt about the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderStatus {
    /// First frame ever from this sender.
    New,
    /// Same incarnation as before.
    Known,
    /// A higher incarnation than before: the sender restarted.
    Restarted { previous: u64 },
}

impl ReplayGuard {
    pub fn new() -> Self {
        Self::default()
    }

    /// Check an authenticated frame's (sender, incarnation, seq) on `port`.
    pub fn check(
        &mut self,
        sender: u16,
        port: u8,
        incarnation: u64,
        seq: u64,
    ) -> Result<SenderStatus> {
        let status = match self.incarnations.get(&sender) {
            None => SenderStatus::New,
            Some(&known) if incarnation < known => return Err(Reject::StaleIncarnation),
            Some(&known) if incarnation > known => SenderStatus::Restarted { previous: known },
            Some(_) => SenderStatus::Known,
        };
        let w = self.windows.entry((sender, port)).or_default();
        w.check_and_update(incarnation, seq)?;
        if status != SenderStatus::Known {
            self.incarnations.insert(sender, incarnation);
        }
        Ok(status)
    }

    /// Check a frame its sender put on ONE port only (a response) against
    /// one window shared by every receive port, after [`ReplayGuard::check`]
    /// passed: the per-port windows alone would accept a copy replayed onto
    /// another receive port, whose window never saw that sequence number.
    pub fn check_single_port(&mut self, sender: u16, incarnation: u64, seq: u64) -> Result<()> {
        self.windows
            .entry((sender, SINGLE_PORT_WINDOW))
            .or_default()
            .check_and_update(incarnation, seq)
    }

    /// Highest incarnation seen from `sender`.
    pub fn incarnation(&self, sender: u16) -> Option<u64> {
        self.incarnations.get(&sender).copied()
    }

    /// Forget a sender's windows (keeps its incarnation so old frames stay
    /// rejected).
    pub fn forget_windows(&mut self, sender: u16) {
        let keys: heapless::Vec<(u16, u8), 32> = self
            .windows
            .range((sender, 0)..=(sender, u8::MAX))
            .map(|(k, _)| *k)
            .take(32)
            .collect();
        for k in keys {
            self.windows.remove(&k);
        }
    }

    pub fn senders(&self) -> usize {
        self.incarnations.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_accepts_reordered_and_rejects_duplicates() {
        let mut w = ReplayWindow::default();
        assert_eq!(w.check_and_update(1, 10), Ok(()));
        assert_eq!(w.check_and_update(1, 12), Ok(()));
        assert_eq!(w.check_and_update(1, 11), Ok(()));
        assert_eq!(w.check_and_update(1, 11), Err(Reject::Duplicate));
        assert_eq!(w.check_and_update(1, 12), Err(Reject::Duplicate));
        assert_eq!(w.check_and_update(1, 200), Ok(()));
        assert_eq!(w.check_and_update(1, 100), Err(Reject::Replay));
        assert_eq!(w.check_and_update(0, 201), Err(Reject::StaleIncarnation));
        assert_eq!(w.check_and_update(2, 0), Ok(()));
        assert_eq!(w.check_and_update(1, 500), Err(Reject::StaleIncarnation));
    }

    #[test]
    fn guard_tracks_incarnations_across_ports() {
        let mut g = ReplayGuard::new();
        assert_eq!(g.check(5, 0, 7, 1), Ok(SenderStatus::New));
        assert_eq!(g.check(5, 1, 7, 1), Ok(SenderStatus::Known));
        assert_eq!(g.check(5, 1, 7, 1), Err(Reject::Duplicate));
        assert_eq!(g.check(5, 2, 6, 99), Err(Reject::StaleIncarnation));
        assert_eq!(
            g.check(5, 2, 8, 1),
            Ok(SenderStatus::Restarted { previous: 7 })
        );
        assert_eq!(g.check(5, 0, 7, 2), Err(Reject::StaleIncarnation));
    }

    #[test]
    fn keyring_rules() {
        assert_eq!(KeyRing::new(0, &[1; 32]).unwrap_err(), KeyError::ReservedId);
        assert_eq!(KeyRing::new(1, &[1; 8]).unwrap_err(), KeyError::TooShort);
        let mut r = KeyRing::new(1, &[1; 32]).unwrap();
        r.add(2, &[2; 32]).unwrap();
        assert_eq!(r.remove(1), Err(KeyError::NoSuchKey));
        r.set_send_key(2).unwrap();
        r.remove(1).unwrap();
        assert_eq!(
            r.key_ids().collect::<heapless::Vec<u8, 8>>().as_slice(),
            &[2]
        );
    }
}
