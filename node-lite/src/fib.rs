//! Forwarding table: longest-prefix match from a packet's destination (and,
//! for source-specific routes, its source) to a next hop.
//!
//! Babel fills it through the driver; the data path looks up every packet
//! that comes from the TUN device or from a tunnel. Prefixes are grouped by
//! length, so a lookup is one hash probe per distinct length in the table
//! (a re6st network has a handful: the network, /64 nodes, /68 anonymous
//! nodes, the default route), with no allocation.
//!
//! Source-specific routes follow RFC 9079 §5.2: the destination is matched
//! first; among routes for that destination, the most specific source that
//! contains the packet's source wins; a destination whose routes all have a
//! non-matching source falls through to shorter destinations.

use std::collections::HashMap;
use std::net::Ipv6Addr;

use crate::net::{mask, Ipv6Net};

/// The routes for one destination prefix.
#[derive(Debug)]
struct Slot<T> {
    /// Source-specific routes, most specific source first.
    from: Vec<(Ipv6Net, T)>,
}

/// A forwarding table mapping `(destination, source)` prefixes to `T`.
#[derive(Debug)]
pub struct Fib<T> {
    /// Per prefix length, longest first: masked destination → slot.
    by_len: Vec<(u8, HashMap<u128, Slot<T>>)>,
    routes: usize,
}

impl<T> Default for Fib<T> {
    fn default() -> Self {
        Fib {
            by_len: Vec::new(),
            routes: 0,
        }
    }
}

impl<T> Fib<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes
    }

    pub fn is_empty(&self) -> bool {
        self.routes == 0
    }

    /// Add or replace the route for `dst` from `src` (`::/0` for an ordinary
    /// route). Returns the previous next hop.
    pub fn insert(&mut self, dst: Ipv6Net, src: Ipv6Net, hop: T) -> Option<T> {
        let i = match self
            .by_len
            .binary_search_by(|(l, _)| dst.prefix_len().cmp(l))
        {
            Ok(i) => i,
            Err(i) => {
                self.by_len.insert(i, (dst.prefix_len(), HashMap::new()));
                i
            }
        };
        let slot = self.by_len[i]
            .1
            .entry(dst.bits())
            .or_insert_with(|| Slot { from: Vec::new() });
        match slot.from.iter().position(|(s, _)| *s == src) {
            Some(j) => Some(std::mem::replace(&mut slot.from[j].1, hop)),
            None => {
                let j = slot
                    .from
                    .partition_point(|(s, _)| s.prefix_len() >= src.prefix_len());
                slot.from.insert(j, (src, hop));
                self.routes += 1;
                None
            }
        }
    }

    /// Remove the route for `dst` from `src`; returns its next hop.
    pub fn remove(&mut self, dst: Ipv6Net, src: Ipv6Net) -> Option<T> {
        let i = self
            .by_len
            .binary_search_by(|(l, _)| dst.prefix_len().cmp(l))
            .ok()?;
        let map = &mut self.by_len[i].1;
        let slot = map.get_mut(&dst.bits())?;
        let j = slot.from.iter().position(|(s, _)| *s == src)?;
        let (_, hop) = slot.from.remove(j);
        if slot.from.is_empty() {
            map.remove(&dst.bits());
            if map.is_empty() {
                self.by_len.remove(i);
            }
        }
        self.routes -= 1;
        Some(hop)
    }

    /// The next hop for a packet from `src` to `dst`.
    pub fn lookup(&self, dst: Ipv6Addr, src: Ipv6Addr) -> Option<&T> {
        let (dst, src) = (u128::from(dst), u128::from(src));
        for (len, map) in &self.by_len {
            if let Some(slot) = map.get(&(dst & mask(*len))) {
                let hit = slot
                    .from
                    .iter()
                    .find(|(s, _)| src & mask(s.prefix_len()) == s.bits());
                if let Some((_, hop)) = hit {
                    return Some(hop);
                }
            }
        }
        None
    }

    /// Every route, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (Ipv6Net, Ipv6Net, &T)> {
        self.by_len.iter().flat_map(|(len, map)| {
            map.iter().flat_map(move |(bits, slot)| {
                let dst = Ipv6Net::new(Ipv6Addr::from(*bits), *len);
                slot.from.iter().map(move |(src, hop)| (dst, *src, hop))
            })
        })
    }

    /// Remove every route whose next hop matches `f` (a tunnel went down).
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let mut removed = 0;
        for (_, map) in &mut self.by_len {
            map.retain(|_, slot| {
                let before = slot.from.len();
                slot.from.retain(|(_, hop)| keep(hop));
                removed += before - slot.from.len();
                !slot.from.is_empty()
            });
        }
        self.by_len.retain(|(_, map)| !map.is_empty());
        self.routes -= removed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }
    const ANY: Ipv6Net = Ipv6Net::DEFAULT;

    #[test]
    fn longest_prefix_wins() {
        let mut fib = Fib::new();
        fib.insert(net("2001:db8:42::/48"), ANY, "network");
        fib.insert(net("2001:db8:42:1::/64"), ANY, "node1");
        fib.insert(net("2001:db8:42:1:1000::/68"), ANY, "anon");
        let src = ip("2001:db8:42:9::1");
        assert_eq!(fib.lookup(ip("2001:db8:42:1::1"), src), Some(&"node1"));
        assert_eq!(fib.lookup(ip("2001:db8:42:1:1fff::1"), src), Some(&"anon"));
        assert_eq!(fib.lookup(ip("2001:db8:42:2::1"), src), Some(&"network"));
        assert_eq!(fib.lookup(ip("2001:db8:43::1"), src), None);
        assert_eq!(fib.len(), 3);
    }

    #[test]
    fn replace_and_remove() {
        let mut fib = Fib::new();
        let p = net("2001:db8:42:1::/64");
        assert_eq!(fib.insert(p, ANY, 1), None);
        assert_eq!(fib.insert(p, ANY, 2), Some(1));
        assert_eq!(fib.len(), 1);
        assert_eq!(fib.remove(p, ANY), Some(2));
        assert_eq!(fib.remove(p, ANY), None);
        assert!(fib.is_empty() && fib.by_len.is_empty());
    }

    #[test]
    fn source_specific_default_route() {
        // A gateway announces ::/0 from the network; hosts outside the
        // network keep their own default route (not in this table).
        let mut fib = Fib::new();
        fib.insert(ANY, net("2001:db8:42::/48"), "gateway");
        fib.insert(net("2001:db8:42:1::/64"), ANY, "node1");
        assert_eq!(
            fib.lookup(ip("2001:db8:ffff::1"), ip("2001:db8:42:5::1")),
            Some(&"gateway")
        );
        assert_eq!(
            fib.lookup(ip("2001:db8:ffff::1"), ip("2001:db8:99::1")),
            None
        );
        // Destination first: a more specific destination beats the source match.
        assert_eq!(
            fib.lookup(ip("2001:db8:42:1::1"), ip("2001:db8:42:5::1")),
            Some(&"node1")
        );
    }

    #[test]
    fn most_specific_source_then_fall_through() {
        let mut fib = Fib::new();
        let dst = net("2001:db8:42:1::/64");
        fib.insert(dst, net("2001:db8:42::/48"), "wide");
        fib.insert(dst, net("2001:db8:42:7::/64"), "narrow");
        fib.insert(net("2001:db8::/32"), ANY, "fallback");
        let d = ip("2001:db8:42:1::1");
        assert_eq!(fib.lookup(d, ip("2001:db8:42:7::1")), Some(&"narrow"));
        assert_eq!(fib.lookup(d, ip("2001:db8:42:8::1")), Some(&"wide"));
        assert_eq!(fib.lookup(d, ip("2001:db8:1::1")), Some(&"fallback"));
    }

    #[test]
    fn retain_drops_a_next_hop() {
        let mut fib = Fib::new();
        fib.insert(net("2001:db8:42:1::/64"), ANY, 1);
        fib.insert(net("2001:db8:42:2::/64"), ANY, 2);
        fib.insert(ANY, net("2001:db8:42::/48"), 1);
        fib.retain(|hop| *hop != 1);
        assert_eq!(fib.len(), 1);
        let mut all: Vec<_> = fib.iter().map(|(d, s, h)| (d, s, *h)).collect();
        all.sort();
        assert_eq!(all, vec![(net("2001:db8:42:2::/64"), ANY, 2)]);
        assert_eq!(fib.by_len.len(), 1);
    }
}
