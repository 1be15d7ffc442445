//! Hash inputs: the DMPD key tuple and the standard IPv4/IPv6 tuples.
//!
//! Every multi-byte field is big-endian (network order), as Microsoft's RSS
//! suite and DPDK's `rte_softrss` expect.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The paper's balancing key: `(Snode_num, Dnode_num, Spump, Dpump, Ptype)`.
///
/// Byte layout of [`DmpdTuple::to_bytes`] (9 bytes, big-endian):
///
/// | bytes | field |
/// |---|---|
/// | 0..2 | `snode` source node number |
/// | 2..4 | `dnode` destination node number |
/// | 4..6 | `spipe` source pipe id |
/// | 6..8 | `dpipe` destination pipe id |
/// | 8    | `ptype` packet type |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct DmpdTuple {
    pub snode: u16,
    pub dnode: u16,
    pub spipe: u16,
    pub dpipe: u16,
    pub ptype: u8,
}

impl DmpdTuple {
    /// Length of the hash input.
    pub const LEN: usize = 9;

    /// The hash input in the documented layout.
    #[inline]
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let [s0, s1] = self.snode.to_be_bytes();
        let [d0, d1] = self.dnode.to_be_bytes();
        let [sp0, sp1] = self.spipe.to_be_bytes();
        let [dp0, dp1] = self.dpipe.to_be_bytes();
        [s0, s1, d0, d1, sp0, sp1, dp0, dp1, self.ptype]
    }

    /// The hash input from its two parts as a data path reads them from a
    /// DMPD header: `addrs` is bytes 0..8 of the layout (snode, dnode,
    /// spipe, dpipe) as one big-endian `u64`, then the packet type.
    #[inline(always)]
    pub fn key_from_parts(addrs: u64, ptype: u8) -> [u8; Self::LEN] {
        let [a0, a1, a2, a3, a4, a5, a6, a7] = addrs.to_be_bytes();
        [a0, a1, a2, a3, a4, a5, a6, a7, ptype]
    }

    /// The destination node in such an `addrs` word.
    #[inline(always)]
    pub fn dnode_of_addrs(addrs: u64) -> u16 {
        (addrs >> 32) as u16
    }
}

/// IPv4 addresses and L4 ports, in Microsoft's input order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Tuple {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub sport: u16,
    pub dport: u16,
}

impl Ipv4Tuple {
    /// Length of the hash input with ports.
    pub const LEN: usize = 12;
    /// Length of the hash input without ports (addresses only).
    pub const ADDRS_LEN: usize = 8;

    /// `src | dst | sport | dport`, 12 bytes.
    #[inline]
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..8].copy_from_slice(&self.addrs_bytes());
        out[8..10].copy_from_slice(&self.sport.to_be_bytes());
        out[10..12].copy_from_slice(&self.dport.to_be_bytes());
        out
    }

    /// `src | dst`, 8 bytes (the "IPv4 only" hash type).
    #[inline]
    pub fn addrs_bytes(&self) -> [u8; Self::ADDRS_LEN] {
        let mut out = [0u8; Self::ADDRS_LEN];
        out[..4].copy_from_slice(&self.src.octets());
        out[4..].copy_from_slice(&self.dst.octets());
        out
    }
}

/// IPv6 addresses and L4 ports, in Microsoft's input order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv6Tuple {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub sport: u16,
    pub dport: u16,
}

impl Ipv6Tuple {
    /// Length of the hash input with ports.
    pub const LEN: usize = 36;
    /// Length of the hash input without ports.
    pub const ADDRS_LEN: usize = 32;

    /// `src | dst | sport | dport`, 36 bytes.
    #[inline]
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..32].copy_from_slice(&self.addrs_bytes());
        out[32..34].copy_from_slice(&self.sport.to_be_bytes());
        out[34..36].copy_from_slice(&self.dport.to_be_bytes());
        out
    }

    /// `src | dst`, 32 bytes (the "IPv6 only" hash type).
    #[inline]
    pub fn addrs_bytes(&self) -> [u8; Self::ADDRS_LEN] {
        let mut out = [0u8; Self::ADDRS_LEN];
        out[..16].copy_from_slice(&self.src.octets());
        out[16..].copy_from_slice(&self.dst.octets());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dmpd_layout_is_big_endian_in_field_order() {
        let t = DmpdTuple {
            snode: 0x0102,
            dnode: 0x0304,
            spipe: 0x0506,
            dpipe: 0x0708,
            ptype: 0x09,
        };
        assert_eq!(t.to_bytes(), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let addrs = 0x0102_0304_0506_0708;
        assert_eq!(DmpdTuple::key_from_parts(addrs, 9), t.to_bytes());
        assert_eq!(DmpdTuple::dnode_of_addrs(addrs), 0x0304);
    }

    #[test]
    fn ipv4_layout() {
        let t = Ipv4Tuple {
            src: Ipv4Addr::new(1, 2, 3, 4),
            dst: Ipv4Addr::new(5, 6, 7, 8),
            sport: 0x090a,
            dport: 0x0b0c,
        };
        assert_eq!(t.to_bytes(), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(t.addrs_bytes(), [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn ipv6_layout() {
        let t = Ipv6Tuple {
            src: Ipv6Addr::from([1u8; 16]),
            dst: Ipv6Addr::from([2u8; 16]),
            sport: 0x0304,
            dport: 0x0506,
        };
        let b = t.to_bytes();
        assert_eq!(&b[..16], &[1u8; 16]);
        assert_eq!(&b[16..32], &[2u8; 16]);
        assert_eq!(&b[32..], &[3, 4, 5, 6]);
    }
}
