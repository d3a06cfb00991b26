//! Babel packet formats ([RFC 8966 §4]), with the MAC trailer ([RFC 8967]), source-specific
//! prefixes ([RFC 9079]) and babeld's RTT timestamps (draft-ietf-babel-rtt-extension).
//!
//! Three layers, smoltcp-style:
//! - [`Packet`]: a checked view of header, body and trailer over untrusted bytes.
//! - [`Tlv`]: one TLV as it is on the wire (prefix bytes still compressed), parsed with
//!   [`Tlv::parse`] and written back byte for byte with [`Tlv::emit`].
//! - [`Decoder`] / [`Builder`]: the per-packet state (default prefixes, router-id, next
//!   hop) that turns compressed Updates into full prefixes and back.
//!
//! Invariants: no function here panics on any input; parsing never allocates; emission
//! writes into a caller buffer and reports [`Error::BufferFull`] instead of growing it.
//!
//! [RFC 8966 §4]: https://www.rfc-editor.org/rfc/rfc8966#section-4
//! [RFC 8967]: https://www.rfc-editor.org/rfc/rfc8967
//! [RFC 9079]: https://www.rfc-editor.org/rfc/rfc9079

mod build;
mod decode;
mod tlv;

pub use build::Builder;
pub use decode::{Decoder, Message, UpdateMsg};
pub use tlv::{SubTlv, SubTlvIter, SubTlvs, Tlv, TlvIter};

use core::fmt;
use std::net::Ipv6Addr;

/// First octet of every Babel packet ([RFC 8966 §4.2]).
pub const MAGIC: u8 = 42;
/// The only version this module speaks ([RFC 8966 §4.2]).
pub const VERSION: u8 = 2;
pub const HEADER_LEN: usize = 4;
/// UDP port ([RFC 8966 §5]).
pub const PORT: u16 = 6696;
/// Link-local multicast group ff02::1:6 ([RFC 8966 §5]).
pub const MULTICAST: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 6);
/// Metric value meaning "unreachable" ([RFC 8966 §2.1]).
pub const INFINITY: u16 = 0xFFFF;

/// TLV types ([RFC 8966 §4.3], [RFC 8967 §4]).
pub mod kind {
    pub const PAD1: u8 = 0;
    pub const PADN: u8 = 1;
    pub const ACK_REQ: u8 = 2;
    pub const ACK: u8 = 3;
    pub const HELLO: u8 = 4;
    pub const IHU: u8 = 5;
    pub const ROUTER_ID: u8 = 6;
    pub const NEXT_HOP: u8 = 7;
    pub const UPDATE: u8 = 8;
    pub const ROUTE_REQUEST: u8 = 9;
    pub const SEQNO_REQUEST: u8 = 10;
    pub const MAC: u8 = 16;
    pub const PC: u8 = 17;
    pub const CHALLENGE_REQUEST: u8 = 18;
    pub const CHALLENGE_REPLY: u8 = 19;
}

/// Sub-TLV types. Bit 0x80 marks a mandatory sub-TLV ([RFC 8966 §4.4]).
pub mod subkind {
    pub const PAD1: u8 = 0;
    pub const PADN: u8 = 1;
    /// babeld's RTT timestamp (4 octets on Hello, 8 on IHU).
    pub const TIMESTAMP: u8 = 3;
    /// Source prefix, mandatory ([RFC 9079 §7.1]).
    pub const SOURCE_PREFIX: u8 = 128;
    pub const MANDATORY: u8 = 0x80;
}

/// Address encodings ([RFC 8966 §4.1.1]).
pub mod ae {
    pub const WILDCARD: u8 = 0;
    pub const IPV4: u8 = 1;
    pub const IPV6: u8 = 2;
    pub const IPV6_LINK_LOCAL: u8 = 3;
    /// v4-via-v6 ([RFC 9229]), parsed like AE 1.
    pub const V4_VIA_V6: u8 = 4;
}

/// Update TLV flags ([RFC 8966 §4.6.9]).
pub mod flag {
    /// Set the default prefix for later Updates of the same AE.
    pub const DEFAULT_PREFIX: u8 = 0x80;
    /// Take the router-id from the low 64 bits of the prefix.
    pub const ROUTER_ID: u8 = 0x40;
}

/// Why bytes could not be parsed or emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than its length fields say.
    Truncated,
    /// First octet is not 42.
    BadMagic,
    /// Version other than 2.
    BadVersion(u8),
    /// A field holds a value the format forbids (an AE with an impossible prefix length,
    /// an omitted count larger than the prefix, a short fixed part...).
    Malformed,
    /// The address encoding is not one of the RFC's.
    UnknownAe(u8),
    /// The TLV carries a mandatory sub-TLV this implementation does not know: the whole
    /// TLV must be ignored ([RFC 8966 §4.4]).
    UnknownMandatory(u8),
    /// Compressed prefix refers to a default prefix not set earlier in the packet.
    NoDefaultPrefix,
    /// The caller's buffer is too small.
    BufferFull,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated Babel packet or TLV"),
            Error::BadMagic => f.write_str("not a Babel packet (magic is not 42)"),
            Error::BadVersion(v) => write!(f, "unsupported Babel version {v}"),
            Error::Malformed => f.write_str("malformed Babel TLV"),
            Error::UnknownAe(a) => write!(f, "unknown address encoding {a}"),
            Error::UnknownMandatory(t) => write!(f, "unknown mandatory sub-TLV {t}"),
            Error::NoDefaultPrefix => f.write_str("compressed prefix without a default prefix"),
            Error::BufferFull => f.write_str("output buffer too small"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

/// An 8-octet router-id ([RFC 8966 §3.2.1]). All-zeros and all-ones are reserved.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RouterId(pub [u8; 8]);

impl RouterId {
    /// Whether the id may be used ([RFC 8966 §4.6.7]: 0 and FF..FF are invalid).
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 8] && self.0 != [0xFF; 8]
    }
}

impl fmt::Debug for RouterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}{:02x}:{:02x}{:02x}:{:02x}{:02x}:{:02x}{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]
        )
    }
}

impl fmt::Display for RouterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An IPv6 prefix, bits past `len` zero. IPv4 prefixes are kept v4-mapped
/// (`::ffff:a.b.c.d`, `len` + 96), as babeld does.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Prefix {
    addr: [u8; 16],
    len: u8,
}

/// The derived order, by address bytes then length, compared as one integer:
/// route and source tables are binary-searched by prefix on every update, and
/// a byte-wise compare was a tenth of a 1,000-node simulation's time.
impl Ord for Prefix {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (u128::from_be_bytes(self.addr), self.len)
            .cmp(&(u128::from_be_bytes(other.addr), other.len))
    }
}

impl PartialOrd for Prefix {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

// `len` is the prefix length in bits, not a container size.
#[allow(clippy::len_without_is_empty)]
impl Prefix {
    /// `::/0`, also "no source prefix".
    pub const DEFAULT: Prefix = Prefix {
        addr: [0; 16],
        len: 0,
    };

    /// Builds a prefix, clearing the host bits; `len` is capped at 128.
    pub fn new(addr: [u8; 16], len: u8) -> Prefix {
        let len = len.min(128);
        let mut p = Prefix { addr, len };
        for (i, b) in p.addr.iter_mut().enumerate() {
            let bit = i * 8;
            if bit >= len as usize {
                *b = 0;
            } else if bit + 8 > len as usize {
                *b &= 0xFFu8 << (8 - (len as usize - bit));
            }
        }
        p
    }

    pub fn from_addr(addr: Ipv6Addr, len: u8) -> Prefix {
        Prefix::new(addr.octets(), len)
    }

    pub fn addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.addr)
    }

    pub fn octets(&self) -> &[u8; 16] {
        &self.addr
    }

    pub fn len(&self) -> u8 {
        self.len
    }

    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// A v4-mapped prefix (`::ffff:0:0/96` or longer).
    pub fn is_v4(&self) -> bool {
        self.len >= 96 && self.addr[..12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]
    }

    /// Whether `other` lies inside this prefix.
    pub fn contains(&self, other: &Prefix) -> bool {
        other.len >= self.len && Prefix::new(other.addr, self.len) == *self
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A view of one Babel packet: header, body and trailer ([RFC 8966 §4.2], [RFC 8967 §4]).
#[derive(Debug, Clone, Copy)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checks; accessors may then return short slices but never panic.
    pub fn new_unchecked(buffer: T) -> Self {
        Packet { buffer }
    }

    /// Wraps untrusted bytes: checks magic, version and that the body fits.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Packet { buffer };
        p.check()?;
        Ok(p)
    }

    pub fn check(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] != MAGIC {
            return Err(Error::BadMagic);
        }
        if b[1] != VERSION {
            return Err(Error::BadVersion(b[1]));
        }
        if HEADER_LEN + self.body_len() > b.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn body_len(&self) -> usize {
        match self.buffer.as_ref().get(2..4) {
            Some(l) => u16::from_be_bytes([l[0], l[1]]) as usize,
            None => 0,
        }
    }

    /// The four header octets (covered by the MAC).
    pub fn header(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..b.len().min(HEADER_LEN)]
    }

    /// The TLVs protected by the MAC.
    pub fn body(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = (HEADER_LEN + self.body_len()).min(b.len());
        b.get(HEADER_LEN..end).unwrap_or(&[])
    }

    /// Header and body: the octets a MAC is computed over, after the pseudo-header.
    pub fn header_and_body(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[..(HEADER_LEN + self.body_len()).min(b.len())]
    }

    /// What follows the body: MAC TLVs ([RFC 8967 §4.1]).
    pub fn trailer(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        b.get(HEADER_LEN + self.body_len()..).unwrap_or(&[])
    }

    pub fn tlvs(&self) -> TlvIter<'_> {
        TlvIter::new(self.body())
    }

    pub fn trailer_tlvs(&self) -> TlvIter<'_> {
        TlvIter::new(self.trailer())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }
}

/// Writes a packet header for a body of `body_len` octets.
pub fn emit_header(buf: &mut [u8], body_len: usize) -> Result<()> {
    if buf.len() < HEADER_LEN || body_len > u16::MAX as usize {
        return Err(Error::BufferFull);
    }
    buf[0] = MAGIC;
    buf[1] = VERSION;
    buf[2..4].copy_from_slice(&(body_len as u16).to_be_bytes());
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
