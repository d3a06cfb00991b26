//! 16-bit sequence numbers compared modulo 2^16 ([RFC 8966 §3.2.1]).
//!
//! The order is not transitive over the whole space, so [`SeqNo`] deliberately does not
//! implement `PartialOrd`: comparisons are explicit ([`SeqNo::lt`], [`SeqNo::gt`]).
//!
//! [RFC 8966 §3.2.1]: https://www.rfc-editor.org/rfc/rfc8966#section-3.2.1

use core::cmp::Ordering;
use core::fmt;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNo(pub u16);

impl SeqNo {
    /// `self + n` modulo 2^16.
    pub fn plus(self, n: u16) -> SeqNo {
        SeqNo(self.0.wrapping_add(n))
    }

    /// `self - other` modulo 2^16: how far `self` is ahead of `other`.
    pub fn minus(self, other: SeqNo) -> u16 {
        self.0.wrapping_sub(other.0)
    }

    /// `self` is older than `other`: `0 < (other - self) mod 2^16 < 2^15`.
    pub fn lt(self, other: SeqNo) -> bool {
        self != other && other.0.wrapping_sub(self.0) < 0x8000
    }

    /// `self` is newer than `other`.
    pub fn gt(self, other: SeqNo) -> bool {
        other.lt(self)
    }

    /// Three-way comparison in babeld's sense (`seqno_compare`); two seqnos exactly
    /// 2^15 apart compare as "greater" both ways, as there.
    pub fn compare(self, other: SeqNo) -> Ordering {
        if self == other {
            Ordering::Equal
        } else if self.lt(other) {
            Ordering::Less
        } else {
            Ordering::Greater
        }
    }
}

impl fmt::Debug for SeqNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_around() {
        assert!(SeqNo(0xFFFF).lt(SeqNo(0)));
        assert!(SeqNo(0).gt(SeqNo(0xFFFF)));
        assert!(SeqNo(1).lt(SeqNo(0x8000)));
        assert!(!SeqNo(0).lt(SeqNo(0x8000)), "exactly half-way is not older");
        assert!(!SeqNo(5).lt(SeqNo(5)) && !SeqNo(5).gt(SeqNo(5)));
        assert_eq!(SeqNo(0xFFFE).plus(3), SeqNo(1));
        assert_eq!(SeqNo(1).minus(SeqNo(0xFFFF)), 2);
        assert_eq!(SeqNo(10).compare(SeqNo(9)), Ordering::Greater);
        assert_eq!(SeqNo(9).compare(SeqNo(10)), Ordering::Less);
    }

    #[test]
    fn not_transitive_which_is_why_there_is_no_partial_ord() {
        let (a, b, c) = (SeqNo(0), SeqNo(0x6000), SeqNo(0xC000));
        assert!(a.lt(b) && b.lt(c) && c.lt(a));
    }
}
