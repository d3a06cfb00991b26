//! IPv6 for the LANs behind the node (option `lan`): which /64 of the node's
//! prefix each LAN interface gets ([`assign`]), and the router
//! advertisements that let hosts configure themselves from it ([`ra`], on
//! the Neighbor Discovery messages of [`wire`]). Sans-IO like every protocol
//! of the node; the driver (`driver/lan.rs`) owns the sockets, the addresses
//! and the routes.
//!
//! Addressing: LAN interface *i* gets `<the i-th /64 of the prefix>::1/64`,
//! so the first LAN shares the node's own address `<prefix>::1` (also on the
//! overlay device, as a /128). A /64 prefix serves one LAN, a /62 four.
//! SLAAC needs a /64: a node whose prefix is longer (re6st's anonymous /68s,
//! say) gives its first LAN the whole prefix, on-link, and sends no
//! advertisements.

pub mod ra;
pub mod wire;

use crate::net::Ipv6Net;

/// What one LAN interface gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The on-link prefix; the interface's address is its `::1`.
    pub prefix: Ipv6Net,
    /// A /64: hosts can autoconfigure, advertisements make sense.
    pub slaac: bool,
}

/// At most this many /64s are handed out (a /48 prefix would offer 65536).
pub const MAX_LANS: usize = 256;

/// The prefixes of `count` LAN interfaces from the node's `subnet`, in order;
/// None for an interface the prefix has no room for.
pub fn assign(subnet: Ipv6Net, count: usize) -> Vec<Option<Assignment>> {
    let len = subnet.prefix_len();
    if len > 64 {
        let mut v = vec![None; count];
        if let Some(first) = v.first_mut() {
            *first = Some(Assignment {
                prefix: subnet,
                slaac: false,
            });
        }
        return v;
    }
    let room = 1usize << (64 - u32::from(len)).min(16);
    (0..count)
        .map(|i| {
            (i < room.min(MAX_LANS)).then(|| Assignment {
                prefix: Ipv6Net::new(subnet.host((i as u128) << 64), 64),
                slaac: true,
            })
        })
        .collect()
}

/// Whether part of `subnet` is left over once the LANs took their /64s (the
/// rest of the prefix then needs an unreachable route, so packets for it
/// are refused instead of looping between the kernel and the overlay).
pub fn leftover(subnet: Ipv6Net, assigned: &[Option<Assignment>]) -> bool {
    let covered: u128 = assigned
        .iter()
        .flatten()
        .map(|a| 1u128 << (128 - u32::from(a.prefix.prefix_len())).min(127))
        .sum();
    let total = 1u128 << (128 - u32::from(subnet.prefix_len())).min(127);
    covered < total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    #[test]
    fn slash64_serves_one_lan() {
        let s = net("2001:db8:42:7::/64");
        let a = assign(s, 2);
        assert_eq!(
            a,
            vec![
                Some(Assignment {
                    prefix: s,
                    slaac: true
                }),
                None
            ]
        );
        assert!(!leftover(s, &a));
    }

    #[test]
    fn shorter_prefixes_give_one_slash64_each() {
        let s = net("2001:db8:42:4::/62");
        let a = assign(s, 5);
        let got: Vec<String> = a.iter().flatten().map(|a| a.prefix.to_string()).collect();
        assert_eq!(
            got,
            [
                "2001:db8:42:4::/64",
                "2001:db8:42:5::/64",
                "2001:db8:42:6::/64",
                "2001:db8:42:7::/64"
            ]
        );
        assert_eq!(a[4], None);
        assert!(!leftover(s, &a));
        assert!(leftover(s, &assign(s, 1)));
        assert_eq!(
            assign(net("2001:db8::/32"), 300).iter().flatten().count(),
            MAX_LANS
        );
    }

    #[test]
    fn longer_prefixes_are_on_link_only() {
        let s = net("2001:db8:42:7:1000::/68");
        let a = assign(s, 2);
        assert_eq!(
            a[0],
            Some(Assignment {
                prefix: s,
                slaac: false
            })
        );
        assert_eq!(a[1], None);
        assert!(!leftover(s, &a));
        assert!(assign(s, 0).is_empty());
    }
}
