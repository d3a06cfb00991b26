//! Prefix arithmetic shared by the registry client and the node.
//!
//! re6st names things with bit strings:
//! - the **network** is the CA serial number without its leading marker `1` bit
//!   (serial `0x120010db80042` → the 48 bits of `2001:db8:42::/48`);
//! - a **node prefix** is what the registry allocated, written in certificates
//!   as CN `"<value>/<length>"` (`"1/16"`) and on the wire (`cn=`,
//!   `client_prefix=`) as a binary string of exactly `length` digits
//!   (`"0000000000000001"`);
//! - the node's **subnet** is network bits followed by node bits; its address
//!   is the subnet with host part `::1`.

use std::fmt;
use std::net::Ipv6Addr;

use crate::Error;

/// A bit string of 0 to 128 bits, stored right-aligned in a `u128`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Prefix {
    value: u128,
    len: u8,
}

fn bad(detail: impl fmt::Display) -> Error {
    Error::malformed("prefix", detail)
}

impl Prefix {
    /// The empty bit string.
    pub const EMPTY: Prefix = Prefix { value: 0, len: 0 };

    /// `value` must fit in `len` bits, `len` at most 128.
    pub fn new(value: u128, len: u8) -> Result<Self, Error> {
        if len > 128 || (len < 128 && value >> len != 0) {
            return Err(bad(format_args!("{value} does not fit in {len} bits")));
        }
        Ok(Prefix { value, len })
    }

    /// Number of bits.
    pub fn len(&self) -> u8 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bits as an integer (right-aligned).
    pub fn value(&self) -> u128 {
        self.value
    }

    /// Parse a certificate CN, `"<value>/<length>"`, both decimal.
    pub fn from_cn(cn: &str) -> Result<Self, Error> {
        let (v, l) = cn
            .split_once('/')
            .ok_or_else(|| bad(format_args!("CN {cn:?} is not value/length")))?;
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 39 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(v) || !digits(l) {
            return Err(bad(format_args!("CN {cn:?} is not value/length")));
        }
        let value: u128 = v.parse().map_err(|_| bad(format_args!("CN {cn:?}")))?;
        let len: u8 = l.parse().map_err(|_| bad(format_args!("CN {cn:?}")))?;
        Prefix::new(value, len)
    }

    /// The CN form, `"<value>/<length>"`.
    pub fn to_cn(&self) -> String {
        format!("{}/{}", self.value, self.len)
    }

    /// Parse a binary string such as `"0000000000000001"` (empty is allowed).
    pub fn from_bits(s: &str) -> Result<Self, Error> {
        if s.len() > 128 {
            return Err(bad("more than 128 bits"));
        }
        let mut value = 0u128;
        for b in s.bytes() {
            let bit = match b {
                b'0' => 0,
                b'1' => 1,
                _ => return Err(bad(format_args!("{s:?} is not a binary string"))),
            };
            value = value << 1 | bit;
        }
        Ok(Prefix {
            value,
            len: s.len() as u8,
        })
    }

    /// The binary-string form used on the wire.
    pub fn to_bits(&self) -> String {
        (0..self.len)
            .rev()
            .map(|i| if self.value >> i & 1 == 1 { '1' } else { '0' })
            .collect()
    }

    /// The network of a CA: its serial number (big-endian unsigned bytes, as
    /// in DER, leading zero bytes allowed) without the leading `1` bit.
    pub fn from_ca_serial(serial: &[u8]) -> Result<Self, Error> {
        let first = serial
            .iter()
            .position(|&b| b != 0)
            .ok_or_else(|| bad("CA serial number is 0, it carries no network"))?;
        let bytes = &serial[first..];
        let bits = bytes.len() * 8 - bytes[0].leading_zeros() as usize;
        if bits > 129 {
            return Err(bad("CA serial number encodes more than 128 bits"));
        }
        // Everything below the marker bit; the marker itself may be bit 128.
        let mut value = 0u128;
        for &b in bytes {
            value = value.wrapping_shl(8) | u128::from(b);
        }
        let len = (bits - 1) as u8;
        let value = if len == 128 {
            value
        } else {
            value & ((1u128 << len) - 1)
        };
        Prefix::new(value, len)
    }

    /// `self` followed by `tail`, e.g. network + node prefix = subnet.
    pub fn concat(&self, tail: &Prefix) -> Result<Self, Error> {
        let len = self.len as u16 + tail.len as u16;
        if len > 128 {
            return Err(bad(format_args!(
                "/{} + {} bits is longer than 128",
                self.len, tail.len
            )));
        }
        let head = if tail.len == 128 {
            0
        } else {
            self.value << tail.len
        };
        Prefix::new(head | tail.value, len as u8)
    }

    /// True if `other` starts with the bits of `self`.
    pub fn contains(&self, other: &Prefix) -> bool {
        other.len >= self.len
            && (self.len == 0 || other.value >> (other.len - self.len) == self.value)
    }

    /// The bits after `self` in `other`, if `other` lies inside `self`.
    pub fn strip(&self, other: &Prefix) -> Option<Prefix> {
        if !self.contains(other) {
            return None;
        }
        let len = other.len - self.len;
        let value = if len == 128 {
            other.value
        } else {
            other.value & ((1u128 << len) - 1)
        };
        Some(Prefix { value, len })
    }

    /// The bits left-aligned in an IPv6 address, host part zero.
    pub fn to_ipv6(&self) -> Ipv6Addr {
        if self.len == 0 {
            return Ipv6Addr::UNSPECIFIED;
        }
        Ipv6Addr::from(self.value << (128 - self.len))
    }

    /// The first `len` bits of `addr`.
    pub fn from_ipv6(addr: Ipv6Addr, len: u8) -> Result<Self, Error> {
        if len > 128 {
            return Err(bad("IPv6 prefix longer than 128"));
        }
        let v = u128::from(addr);
        Ok(Prefix {
            value: if len == 0 { 0 } else { v >> (128 - len) },
            len,
        })
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Prefix({})", self.to_cn())
    }
}

/// Where a node sits in the network: its subnet and its address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    /// Network bits (from the CA serial).
    pub network: Prefix,
    /// Node bits (from the certificate CN).
    pub node: Prefix,
}

impl Subnet {
    pub fn new(network: Prefix, node: Prefix) -> Result<Self, Error> {
        let s = network.concat(&node)?;
        if s.len() >= 128 {
            return Err(bad("subnet leaves no host part"));
        }
        Ok(Subnet { network, node })
    }

    /// Network + node bits.
    pub fn prefix(&self) -> Prefix {
        // Checked in `new`.
        self.network.concat(&self.node).unwrap_or(self.network)
    }

    /// The subnet address (host part zero) and its length, e.g. `2001:db8:42:1::/64`.
    pub fn ipv6(&self) -> (Ipv6Addr, u8) {
        let p = self.prefix();
        (p.to_ipv6(), p.len())
    }

    /// The node's own address: the subnet with host part `::1`
    /// (re6st's `ipFromBin(subnet, '1')`).
    pub fn address(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.prefix().to_ipv6()) | 1)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (a, l) = self.ipv6();
        write!(f, "{a}/{l}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cn_and_bits_round_trip() {
        let p = Prefix::from_cn("1/16").unwrap();
        assert_eq!(p.to_bits(), "0000000000000001");
        assert_eq!(Prefix::from_bits("0000000000000001").unwrap(), p);
        assert_eq!(p.to_cn(), "1/16");
        let z = Prefix::from_cn("0/20").unwrap();
        assert_eq!(z.to_bits(), "00000000000000000000");
        assert_eq!(Prefix::from_bits("").unwrap(), Prefix::EMPTY);
        assert!(Prefix::from_cn("2/1").is_err());
        assert!(Prefix::from_cn("1/129").is_err());
        assert!(Prefix::from_cn("-1/16").is_err());
        assert!(Prefix::from_cn("1").is_err());
        assert!(Prefix::from_cn("/16").is_err());
        assert!(Prefix::from_cn("1/").is_err());
        assert!(Prefix::from_bits("012").is_err());
        assert!(Prefix::from_bits(&"0".repeat(129)).is_err());
        let full = Prefix::from_bits(&"1".repeat(128)).unwrap();
        assert_eq!(full.value(), u128::MAX);
        assert_eq!(Prefix::from_cn(&full.to_cn()).unwrap(), full);
    }

    #[test]
    fn network_from_ca_serial() {
        // openssl -set_serial 0x120010db80042, DER integer bytes.
        let n = Prefix::from_ca_serial(&[0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x42]).unwrap();
        assert_eq!(n.len(), 48);
        assert_eq!(n.to_ipv6(), "2001:db8:42::".parse::<Ipv6Addr>().unwrap());
        // Leading zero byte as DER puts before a high bit.
        let n = Prefix::from_ca_serial(&[0x00, 0x80]).unwrap();
        assert_eq!(n.to_bits(), "0000000");
        assert_eq!(Prefix::from_ca_serial(&[1]).unwrap(), Prefix::EMPTY);
        assert!(Prefix::from_ca_serial(&[0, 0]).is_err());
        assert!(Prefix::from_ca_serial(&[]).is_err());
        let mut s = vec![1];
        s.extend([0xff; 16]);
        assert_eq!(Prefix::from_ca_serial(&s).unwrap().len(), 128);
        s.insert(0, 1);
        assert!(Prefix::from_ca_serial(&s).is_err());
    }

    #[test]
    fn subnet_and_address() {
        let net = Prefix::from_ipv6("2001:db8:42::".parse().unwrap(), 48).unwrap();
        let s = Subnet::new(net, Prefix::from_cn("1/16").unwrap()).unwrap();
        assert_eq!(s.to_string(), "2001:db8:42:1::/64");
        assert_eq!(s.address(), "2001:db8:42:1::1".parse::<Ipv6Addr>().unwrap());
        let s = Subnet::new(net, Prefix::from_cn("0/20").unwrap()).unwrap();
        assert_eq!(s.to_string(), "2001:db8:42::/68");
        assert_eq!(s.address(), "2001:db8:42::1".parse::<Ipv6Addr>().unwrap());
        let s = Subnet::new(net, Prefix::from_cn("1/20").unwrap()).unwrap();
        assert_eq!(s.to_string(), "2001:db8:42:0:1000::/68");
        assert!(net.contains(&s.prefix()));
        assert_eq!(
            net.strip(&s.prefix()),
            Some(Prefix::from_cn("1/20").unwrap())
        );
        assert!(Subnet::new(net, Prefix::new(0, 80).unwrap()).is_err());
        assert!(Prefix::EMPTY.contains(&net));
        assert!(!s.prefix().contains(&net));
    }
}
