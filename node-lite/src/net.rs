//! IPv6 prefixes as the node's tables use them.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// An IPv6 prefix, `addr/len`, with the host bits always zero, so two values
/// for the same prefix compare equal and hash alike.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Ipv6Net {
    bits: u128,
    len: u8,
}

/// The mask of the first `len` bits (`len` ≤ 128).
pub const fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

impl Ipv6Net {
    /// `::/0`.
    pub const DEFAULT: Ipv6Net = Ipv6Net { bits: 0, len: 0 };

    /// The prefix of length `len` (clamped to 128) containing `addr`.
    pub fn new(addr: Ipv6Addr, len: u8) -> Self {
        let len = len.min(128);
        Ipv6Net {
            bits: u128::from(addr) & mask(len),
            len,
        }
    }

    pub fn addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.bits)
    }

    pub fn bits(&self) -> u128 {
        self.bits
    }

    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// True for `::/0`.
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        u128::from(addr) & mask(self.len) == self.bits
    }

    /// True if `other` is this prefix or lies inside it.
    pub fn covers(&self, other: &Ipv6Net) -> bool {
        other.len >= self.len && other.bits & mask(self.len) == self.bits
    }

    /// The address with host part `host` (re6st: a node is `subnet::1`).
    pub fn host(&self, host: u128) -> Ipv6Addr {
        Ipv6Addr::from(self.bits | (host & !mask(self.len)))
    }
}

impl fmt::Display for Ipv6Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

/// Error for a string that is not `addr/len`.
#[derive(Debug, PartialEq, Eq)]
pub struct BadPrefix;

impl fmt::Display for BadPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an IPv6 prefix (expected addr/len, len at most 128)")
    }
}

impl FromStr for Ipv6Net {
    type Err = BadPrefix;

    fn from_str(s: &str) -> Result<Self, BadPrefix> {
        let (a, l) = s.split_once('/').ok_or(BadPrefix)?;
        let addr: Ipv6Addr = a.parse().map_err(|_| BadPrefix)?;
        let len: u8 = l.parse().map_err(|_| BadPrefix)?;
        if len > 128 {
            return Err(BadPrefix);
        }
        Ok(Ipv6Net::new(addr, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_bits_are_cleared() {
        let a: Ipv6Net = "2001:db8:42:1::1/64".parse().unwrap();
        let b: Ipv6Net = "2001:db8:42:1::/64".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "2001:db8:42:1::/64");
        assert_eq!(a.host(1), "2001:db8:42:1::1".parse::<Ipv6Addr>().unwrap());
    }

    #[test]
    fn containment() {
        let net: Ipv6Net = "2001:db8:42::/48".parse().unwrap();
        let sub: Ipv6Net = "2001:db8:42:1::/64".parse().unwrap();
        assert!(net.covers(&sub) && !sub.covers(&net) && net.covers(&net));
        assert!(net.contains("2001:db8:42:ffff::9".parse().unwrap()));
        assert!(!net.contains("2001:db8:43::".parse().unwrap()));
        assert!(Ipv6Net::DEFAULT.covers(&net));
        assert_eq!(mask(128), u128::MAX);
        assert!(Ipv6Net::new(Ipv6Addr::LOCALHOST, 128).contains(Ipv6Addr::LOCALHOST));
    }

    #[test]
    fn bad_strings() {
        for s in ["", "2001:db8::", "2001:db8::/129", "x/3", "::/-1", "::/ 3"] {
            assert_eq!(s.parse::<Ipv6Net>(), Err(BadPrefix), "{s}");
        }
    }
}
