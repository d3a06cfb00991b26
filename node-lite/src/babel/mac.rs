//! MAC computation for Babel packets ([RFC 8967 §4.1]), as babeld 1.12 does it.
//!
//! The MAC covers a pseudo-header (source address, source port, destination address,
//! destination port) followed by the packet header and body, never the trailer.
//! HMAC-SHA256 keys are zero-padded to 64 octets by babeld, which HMAC does by itself;
//! BLAKE2s-128 is keyed BLAKE2s with a 16-octet output and a 1..=32-octet key.
//!
//! [RFC 8967 §4.1]: https://www.rfc-editor.org/rfc/rfc8967#section-4.1

use core::fmt;
use std::net::Ipv6Addr;

use blake2::digest::consts::U16;
use blake2::digest::Mac as _;
use hmac::Hmac;
use sha2::Sha256;

use super::wire::{kind, Packet, TlvIter};

/// Longest MAC this module produces (HMAC-SHA256).
pub const MAX_MAC_LEN: usize = 32;

/// The algorithms of re6st (`blake2s128`) and RFC 8967's mandatory one (`hmac-sha256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacAlgorithm {
    HmacSha256,
    Blake2s128,
}

/// A key the caller cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadKeyLength {
    pub algorithm: MacAlgorithm,
    pub len: usize,
}

impl fmt::Display for BadKeyLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (lo, hi) = match self.algorithm {
            MacAlgorithm::HmacSha256 => (1, 64),
            MacAlgorithm::Blake2s128 => (1, 32),
        };
        write!(
            f,
            "a {:?} key must be {lo} to {hi} octets long, not {}",
            self.algorithm, self.len
        )
    }
}

impl std::error::Error for BadKeyLength {}

/// A MAC key, stored inline (no allocation).
#[derive(Clone, PartialEq, Eq)]
pub struct MacKey {
    algorithm: MacAlgorithm,
    key: [u8; 64],
    len: u8,
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        write!(f, "MacKey({:?}, {} octets)", self.algorithm, self.len)
    }
}

impl MacKey {
    pub fn new(algorithm: MacAlgorithm, key: &[u8]) -> Result<Self, BadKeyLength> {
        let max = match algorithm {
            MacAlgorithm::HmacSha256 => 64,
            MacAlgorithm::Blake2s128 => 32,
        };
        if key.is_empty() || key.len() > max {
            return Err(BadKeyLength {
                algorithm,
                len: key.len(),
            });
        }
        let mut k = [0; 64];
        k[..key.len()].copy_from_slice(key);
        Ok(MacKey {
            algorithm,
            key: k,
            len: key.len() as u8,
        })
    }

    pub fn algorithm(&self) -> MacAlgorithm {
        self.algorithm
    }

    fn bytes(&self) -> &[u8] {
        &self.key[..self.len as usize]
    }

    /// Computes the MAC of `header_and_body` sent from `src`:`sport` to `dst`:`dport`
    /// into `out`; returns its length.
    pub fn compute(
        &self,
        src: Ipv6Addr,
        sport: u16,
        dst: Ipv6Addr,
        dport: u16,
        header_and_body: &[u8],
        out: &mut [u8; MAX_MAC_LEN],
    ) -> usize {
        let mut pseudo = [0u8; 36];
        pseudo[..16].copy_from_slice(&src.octets());
        pseudo[16..18].copy_from_slice(&sport.to_be_bytes());
        pseudo[18..34].copy_from_slice(&dst.octets());
        pseudo[34..36].copy_from_slice(&dport.to_be_bytes());
        match self.algorithm {
            MacAlgorithm::HmacSha256 => {
                // Key length was checked in `new`; HMAC accepts any length anyway.
                let Ok(mut m) = <Hmac<Sha256> as hmac::Mac>::new_from_slice(self.bytes()) else {
                    return 0;
                };
                hmac::Mac::update(&mut m, &pseudo);
                hmac::Mac::update(&mut m, header_and_body);
                out.copy_from_slice(&hmac::Mac::finalize(m).into_bytes());
                32
            }
            MacAlgorithm::Blake2s128 => {
                let Ok(mut m) = blake2::Blake2sMac::<U16>::new_from_slice(self.bytes()) else {
                    return 0;
                };
                m.update(&pseudo);
                m.update(header_and_body);
                out[..16].copy_from_slice(&m.finalize().into_bytes());
                16
            }
        }
    }

    /// Whether any MAC TLV in the packet's trailer verifies with this key
    /// ([RFC 8967 §4.3]: one good MAC is enough).
    pub fn verify<T: AsRef<[u8]>>(
        &self,
        src: Ipv6Addr,
        sport: u16,
        dst: Ipv6Addr,
        dport: u16,
        packet: &Packet<T>,
    ) -> MacCheck {
        let mut want = [0u8; MAX_MAC_LEN];
        let n = self.compute(src, sport, dst, dport, packet.header_and_body(), &mut want);
        let mut seen = false;
        let mut trailer = TlvIter::new(packet.trailer());
        while let Some(Ok((t, v))) = trailer.next_raw() {
            if t == kind::MAC {
                seen = true;
                if constant_time_eq(v, &want[..n]) {
                    return MacCheck::Good;
                }
            }
        }
        if seen {
            MacCheck::Bad
        } else {
            MacCheck::Missing
        }
    }
}

/// Outcome of checking a packet's MACs against one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacCheck {
    Good,
    /// MAC TLVs present, none matches.
    Bad,
    /// No MAC TLV at all.
    Missing,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
