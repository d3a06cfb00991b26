//! Babel's selected routes become forwarding decisions: which tunnel carries
//! a destination (the forwarding table the data path reads for every
//! packet), and which routes the kernel needs beyond the network's route to
//! the overlay device (LAN next hops, source-specific and outside routes).

use std::collections::HashMap;
use std::net::Ipv6Addr;

use log::debug;

use super::net_of;
use crate::babel::{LinkId, RouteEvent};
use crate::fib::Fib;
use crate::net::Ipv6Net;
use crate::tunnel::TunnelId;

/// What a Babel link is, for routing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Tunnel(TunnelId),
    /// A `babel_interface`, by interface index.
    Lan(u32),
    Unknown,
}

/// Where a kernel route points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dev {
    /// The overlay (TUN) device: the node forwards into a tunnel.
    Overlay,
    /// A LAN interface, by index: the kernel forwards to a next hop.
    Lan(u32),
}

/// A route the node wants in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelRoute {
    pub dst: Ipv6Net,
    pub src: Ipv6Net,
    pub dev: Dev,
    pub via: Option<Ipv6Addr>,
}

/// The kernel route wanted for (`dst`, `src`); `None`: none of ours.
pub type KernelChange = (Ipv6Net, Ipv6Net, Option<KernelRoute>);

pub struct Routing {
    network: Ipv6Net,
    fib: Fib<TunnelId>,
    /// Tunnels that are up, and their peer's certified subnet.
    direct: HashMap<TunnelId, Ipv6Net>,
}

impl Routing {
    pub fn new(network: Ipv6Net) -> Self {
        Routing {
            network,
            fib: Fib::new(),
            direct: HashMap::new(),
        }
    }

    /// The tunnel for a packet from `src` to `dst`.
    pub fn lookup(&self, dst: Ipv6Addr, src: Ipv6Addr) -> Option<TunnelId> {
        self.fib.lookup(dst, src).copied()
    }

    /// A tunnel to `subnet` came up. Until Babel says otherwise (unless it
    /// already routes the subnet), that subnet is one hop away.
    pub fn tunnel_up(&mut self, id: TunnelId, subnet: Ipv6Net, babel_routes_it: bool) {
        self.direct.insert(id, subnet);
        if !babel_routes_it {
            self.fib.insert(subnet, Ipv6Net::DEFAULT, id);
        }
    }

    pub fn tunnel_down(&mut self, id: TunnelId) {
        self.direct.remove(&id);
        self.fib.retain(|hop| *hop != id);
    }

    /// A change of Babel's selected routes: the forwarding table follows,
    /// and the kernel route wanted for that destination is returned (None
    /// when the route is on a link that is neither a tunnel nor a LAN).
    pub fn on_route_event(
        &mut self,
        ev: RouteEvent,
        link: impl Fn(LinkId) -> Link,
    ) -> Option<KernelChange> {
        match ev {
            RouteEvent::Installed(r) | RouteEvent::Changed(r)
                if r.metric < crate::babel::wire::INFINITY =>
            {
                let (dst, src) = (net_of(&r.prefix), net_of(&r.src_prefix));
                match link(r.link) {
                    Link::Tunnel(tid) => {
                        debug!(
                            "route {dst} from {src} via tunnel {tid} metric {}",
                            r.metric
                        );
                        self.fib.insert(dst, src, tid);
                        // The network's route to the overlay device covers the rest.
                        let kernel = (!self.network.covers(&dst) || !src.is_default()).then_some(
                            KernelRoute {
                                dst,
                                src,
                                dev: Dev::Overlay,
                                via: None,
                            },
                        );
                        Some((dst, src, kernel))
                    }
                    Link::Lan(index) => {
                        debug!(
                            "route {dst} from {src} via {} on interface {index} metric {}",
                            r.next_hop, r.metric
                        );
                        // The kernel forwards it; no tunnel fallback.
                        self.fib.remove(dst, src);
                        let kernel = KernelRoute {
                            dst,
                            src,
                            dev: Dev::Lan(index),
                            via: Some(r.next_hop),
                        };
                        Some((dst, src, Some(kernel)))
                    }
                    Link::Unknown => None,
                }
            }
            RouteEvent::Installed(r) | RouteEvent::Changed(r) => {
                Some(self.unroute(net_of(&r.prefix), net_of(&r.src_prefix)))
            }
            RouteEvent::Removed { prefix, src_prefix } => {
                debug!("route {} removed", net_of(&prefix));
                Some(self.unroute(net_of(&prefix), net_of(&src_prefix)))
            }
        }
    }

    /// Babel no longer routes `dst`: a tunnel peer's own subnet stays
    /// reachable through its tunnel (its certificate proves it is there),
    /// anything else is dropped from the table.
    fn unroute(&mut self, dst: Ipv6Net, src: Ipv6Net) -> KernelChange {
        let direct = self
            .direct
            .iter()
            .find(|(_, subnet)| **subnet == dst && src.is_default())
            .map(|(id, _)| *id);
        match direct {
            Some(id) => {
                self.fib.insert(dst, src, id);
            }
            None => {
                self.fib.remove(dst, src);
            }
        }
        (dst, src, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::babel::{Prefix as BabelPrefix, RouteInfo, RouterId, SeqNo};

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn bp(s: &str) -> BabelPrefix {
        super::super::babel_prefix(net(s))
    }

    fn route(dst: &str, src: &str, link: usize, metric: u16) -> RouteInfo {
        RouteInfo {
            prefix: bp(dst),
            src_prefix: bp(src),
            router_id: RouterId([1; 8]),
            link: LinkId(link),
            next_hop: addr("fe80::2"),
            metric,
            refmetric: 0,
            seqno: SeqNo(1),
            installed: true,
        }
    }

    /// Links 1 and 2 are tunnels 7 and 8, link 3 a LAN (interface 5).
    fn links(l: LinkId) -> Link {
        match l.0 {
            1 => Link::Tunnel(7),
            2 => Link::Tunnel(8),
            3 => Link::Lan(5),
            _ => Link::Unknown,
        }
    }

    /// A tunnel comes up, Babel routes through it, the route moves, is
    /// retracted, the tunnel goes down: what the data path and the kernel
    /// see at each step (what only the namespace tests covered before).
    #[test]
    fn tunnel_and_babel_routes_become_forwarding_and_kernel_entries() {
        let mut r = Routing::new(net("2001:db8:42::/48"));
        let a = net("2001:db8:42:1000::/68");
        let host = addr("2001:db8:42:1000::1");
        let me = addr("2001:db8:42:2000::1");
        r.tunnel_up(7, a, false);
        assert_eq!(r.lookup(host, me), Some(7), "one hop away at once");

        // Through tunnel 8 now: inside the network, the overlay device's
        // route covers it, so no kernel route of its own.
        let ch = r.on_route_event(
            RouteEvent::Installed(route("2001:db8:42:1000::/68", "::/0", 2, 200)),
            links,
        );
        assert_eq!(ch, Some((a, Ipv6Net::DEFAULT, None)));
        assert_eq!(r.lookup(host, me), Some(8));

        // A gateway's default route for sources in the network: a kernel
        // route to the overlay device, source-specific.
        let dflt = RouteEvent::Installed(route("::/0", "2001:db8:42::/48", 1, 96));
        let want = KernelRoute {
            dst: Ipv6Net::DEFAULT,
            src: net("2001:db8:42::/48"),
            dev: Dev::Overlay,
            via: None,
        };
        assert_eq!(
            r.on_route_event(dflt, links),
            Some((Ipv6Net::DEFAULT, net("2001:db8:42::/48"), Some(want)))
        );
        assert_eq!(r.lookup(addr("2001:db8:ffff::1"), me), Some(7));
        assert_eq!(
            r.lookup(addr("2001:db8:ffff::1"), addr("2001:db8:1::1")),
            None
        );

        // Through a LAN neighbour: the kernel forwards, not the tunnels (but
        // for the gateway's default route, which the kernel's LAN route
        // shadows: seen from a source outside the network).
        let outside = addr("2001:db8:1::1");
        let lan = r.on_route_event(
            RouteEvent::Changed(route("2001:db8:42:1000::/68", "::/0", 3, 96)),
            links,
        );
        assert_eq!(
            lan.and_then(|c| c.2),
            Some(KernelRoute {
                dst: a,
                src: Ipv6Net::DEFAULT,
                dev: Dev::Lan(5),
                via: Some(addr("fe80::2"))
            })
        );
        assert_eq!(r.lookup(host, outside), None);

        // Retracted: the peer's own subnet stays on its tunnel; another
        // node's destination goes.
        let gone = RouteEvent::Changed(route("2001:db8:42:1000::/68", "::/0", 3, u16::MAX));
        assert_eq!(
            r.on_route_event(gone, links),
            Some((a, Ipv6Net::DEFAULT, None))
        );
        assert_eq!(r.lookup(host, me), Some(7));
        let b = net("2001:db8:42:3000::/68");
        r.on_route_event(
            RouteEvent::Installed(route("2001:db8:42:3000::/68", "::/0", 1, 96)),
            links,
        );
        assert_eq!(r.lookup(addr("2001:db8:42:3000::1"), me), Some(7));
        let removed = RouteEvent::Removed {
            prefix: bp("2001:db8:42:3000::/68"),
            src_prefix: BabelPrefix::DEFAULT,
        };
        assert_eq!(
            r.on_route_event(removed, links),
            Some((b, Ipv6Net::DEFAULT, None))
        );
        assert_eq!(r.lookup(addr("2001:db8:42:3000::1"), outside), None);

        // An unknown link changes nothing; the tunnel going down takes
        // everything through it.
        assert_eq!(
            r.on_route_event(
                RouteEvent::Installed(route("2001:db8:42:4000::/68", "::/0", 9, 96)),
                links
            ),
            None
        );
        r.tunnel_down(7);
        assert_eq!(r.lookup(host, me), None);
        assert_eq!(r.lookup(addr("2001:db8:ffff::1"), me), None);
    }
}
