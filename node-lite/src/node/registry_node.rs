//! The node next to the registry (`registry_node`; re6st's
//! `registry_prefix` node, reference §1.3 "Side channel"). The registry
//! knows the network only through it: it sends `prefix bits ‖ 0 ‖ code ‖
//! data` datagrams to `[::1]:326` and reads Babel's state from the
//! control socket ([`crate::babel::control`]). A datagram for our own
//! prefix is answered here; one for another node goes to that node as
//! `code|0x80` over the control messages, and its answer back to the
//! registry. That is what makes the registry's `getBootstrapPeer`,
//! `versions`, `topology` and `getIPv4Information` answer.
//!
//! Every node answers the forwarded requests: code 1 its addresses, 4 its
//! version, 5 its tunnels (only to the registry's node, as re6st).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use log::{debug, info};
use registry_client::Prefix;

use super::{Io, Node};
use crate::babel::control::{self, Dump, Request};
use crate::babel::wire::INFINITY;
use crate::mesh::ctl::{self, CODE_ADDRESS, CODE_INFO, CODE_TOPOLOGY, CODE_VERSION};
use crate::mesh::manager::Dir;
use crate::time::Instant;

/// Forwarded requests waiting for an answer, at most.
const PENDING_MAX: usize = 256;
/// The registry waits 3 s for an answer; ours wait a little longer.
const PENDING_MS: u64 = 5_000;
/// Interface indexes in the dump for tunnel links (they have no kernel
/// interface; LAN links keep theirs).
const TUNNEL_IFINDEX: u32 = 0x4000_0000;
/// Addresses announced at most.
const MAX_ANNOUNCED: usize = 8;

/// What the registry node keeps.
#[derive(Default)]
pub(super) struct Side {
    /// The registry's UDP port on ::1, from its last datagram.
    registry_port: Option<u16>,
    /// Requests sent to other nodes: (node address, code) -> (its prefix,
    /// when).
    pending: HashMap<(Ipv6Addr, u8), (Prefix, Instant)>,
}

/// An address peers may reach us at: not loopback, link-local, private
/// (RFC 1918, shared RFC 6598) or unique-local, not multicast.
pub(super) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            !(a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_multicast()
                || a.is_broadcast()
                || (o[0] == 100 && (o[1] & 0xc0) == 64))
        }
        // Global unicast only.
        IpAddr::V6(a) => (a.segments()[0] & 0xe000) == 0x2000,
    }
}

impl Node {
    /// What we tell others to reach us at: the `ip` option's addresses;
    /// else our port mapping, how peers see us (newest first), then the
    /// host's own public addresses ([`Self::set_local_addresses`]).
    pub(super) fn announced(&self) -> Vec<SocketAddr> {
        let port = self.config.port;
        if !self.config.ip.is_empty() {
            return self
                .config
                .ip
                .iter()
                .map(|&ip| SocketAddr::new(ip, port))
                .collect();
        }
        let mut out: Vec<SocketAddr> = self.mapped_address().into_iter().collect();
        for a in self.own_addrs.iter().chain(&self.local_addrs) {
            if !out.contains(a) {
                out.push(*a);
            }
        }
        out.truncate(MAX_ANNOUNCED);
        out
    }

    /// The host's addresses (the driver reads them now and then): the
    /// public ones, outside the overlay, are announced when no peer has
    /// told us how it sees us yet, as a registry's node on a public
    /// server must be.
    pub fn set_local_addresses(&mut self, addrs: &[IpAddr]) {
        let network = self.network;
        self.local_addrs = addrs
            .iter()
            .filter(|&&ip| is_public(ip))
            .filter(|ip| !matches!(ip, IpAddr::V6(a) if network.contains(*a)))
            .map(|&ip| SocketAddr::new(ip, self.config.port))
            .collect();
    }

    /// The answer to a forwarded request `code`, from `from` (None: the
    /// registry itself, through us).
    fn forwarded_answer(&self, code: u8, from: Option<Ipv6Addr>) -> Option<Vec<u8>> {
        match code {
            CODE_ADDRESS => {
                let a = self.announced();
                (!a.is_empty()).then(|| ctl::format_addrs(&a).into_bytes())
            }
            CODE_INFO => Some(
                format!(
                    "re6st-lite {}, {}-{}",
                    env!("CARGO_PKG_VERSION"),
                    std::env::consts::OS,
                    std::env::consts::ARCH
                )
                .into_bytes(),
            ),
            CODE_TOPOLOGY => {
                let registry = self.mesh.registry_node().and_then(|p| self.subnet_of(p));
                let allowed = from.is_none_or(|f| registry.is_some_and(|s| s.host(1) == f));
                allowed.then(|| self.topology().into_bytes())
            }
            _ => None,
        }
    }

    /// re6st's topology line: the number of client tunnels, then the
    /// peers of client tunnels and of served ones, as `p/len`.
    fn topology(&self) -> String {
        let mut up: Vec<(bool, String)> = self
            .mesh
            .tunnels()
            .filter(|(id, _)| self.peers.contains_key(id))
            .filter_map(|(_, m)| Some((m.dir == Dir::Server, m.peer?.to_cn())))
            .collect();
        up.sort();
        let clients = up.iter().filter(|(served, _)| !served).count();
        let mut s = clients.to_string();
        for (_, p) in up {
            s.push(' ');
            s.push_str(&p);
        }
        s
    }

    /// A forwarded request or answer from another node (control
    /// messages with code|0x80).
    pub(super) fn on_forwarded(
        &mut self,
        t: Instant,
        src: Ipv6Addr,
        sport: u16,
        code: u8,
        data: Vec<u8>,
        io: &mut impl Io,
    ) {
        if data.is_empty() {
            if let Some(answer) = self.forwarded_answer(code, Some(src)) {
                let m = ctl::Msg::Forwarded { code, data: answer }.encode();
                self.send_ctl(t, src, sport, &m, io);
            }
            return;
        }
        let Some(side) = &mut self.side else { return };
        let (Some(port), Some((prefix, _))) =
            (side.registry_port, side.pending.remove(&(src, code)))
        else {
            debug!("unexpected answer {code} from {src}");
            return;
        };
        io.to_registry(port, &ctl::encode_registry(&prefix, code, &data));
    }

    /// A datagram from the registry on `[::1]:326`, from its port `port`.
    pub fn handle_registry_datagram(&mut self, t: Instant, port: u16, d: &[u8], io: &mut impl Io) {
        if self.side.is_none() {
            return;
        }
        let Some((prefix, code, data)) = ctl::parse_registry(d) else {
            debug!("registry: unreadable datagram");
            return;
        };
        let dst = self.subnet_of(prefix).map(|s| s.host(1));
        let Some(side) = &mut self.side else { return };
        side.registry_port = Some(port);
        let own = self.id.subnet.node;
        if prefix == own {
            if code == CODE_VERSION {
                // The registry changed the network config (a revocation, a
                // key rotation): fetch it, and peers hear the new version.
                info!("registry: new network config, fetching it");
                self.netconf_refresh.soon(t);
            } else if let Some(a) = self.forwarded_answer(code, None) {
                io.to_registry(port, &ctl::encode_registry(&prefix, code, &a));
            }
            return;
        }
        let Some(dst) = dst else { return };
        side.pending
            .retain(|_, (_, at)| t.millis_since(*at) < PENDING_MS);
        if side.pending.len() >= PENDING_MAX {
            debug!(
                "registry: too many requests in flight, {} dropped",
                prefix.to_cn()
            );
            return;
        }
        side.pending.insert((dst, code), (prefix, t));
        let m = ctl::Msg::Forwarded {
            code,
            data: data.to_vec(),
        }
        .encode();
        self.send_ctl(t, dst, ctl::PORT, &m, io);
    }

    /// Answer a request on the Babel control socket.
    pub fn babel_control(&mut self, t: Instant, r: &Request) -> Vec<u8> {
        match *r {
            Request::Dump { flags } => self.babel_dump(t, flags).encode(),
            Request::SetCostMultiplier {
                address,
                ifindex,
                multiplier,
            } => {
                if let Some(link) = self.link_of_ifindex(ifindex) {
                    self.engine
                        .set_cost_multiplier(t, link, address, multiplier);
                }
                control::cost_multiplier_set()
            }
        }
    }

    fn ifindex_of(&self, link: crate::babel::LinkId) -> Option<(u32, String)> {
        if let Some(tid) = self.tunnel_of.get(&link) {
            return Some((TUNNEL_IFINDEX + link.0 as u32, format!("tunnel{tid}")));
        }
        let lan = self.lans.iter().find(|l| l.link == link)?;
        Some((lan.index, lan.name.clone()))
    }

    fn link_of_ifindex(&self, ifindex: u32) -> Option<crate::babel::LinkId> {
        self.tunnel_of
            .keys()
            .chain(self.lans.iter().map(|l| &l.link))
            .copied()
            .find(|&l| self.ifindex_of(l).is_some_and(|(i, _)| i == ifindex))
    }

    /// Babel's state as the fork dumps it. Routes are the installed ones
    /// through a listed neighbour (re6st looks each one's neighbour up).
    fn babel_dump(&self, t: Instant, flags: u8) -> Dump {
        let mut d = Dump::default();
        let neighbours: Vec<_> = self
            .engine
            .neighbours(t)
            .filter_map(|n| Some((self.ifindex_of(n.link)?, n)))
            .collect();
        if flags & control::DUMP_INTERFACES != 0 {
            d.interfaces = neighbours.iter().map(|(i, _)| i.clone()).collect();
            d.interfaces.sort();
            d.interfaces.dedup();
        }
        if flags & control::DUMP_NEIGHBOURS != 0 {
            d.neighbours = neighbours
                .iter()
                .map(|((index, _), n)| control::Neighbour {
                    address: n.address,
                    ifindex: *index,
                    reach: n.reach,
                    rxcost: n.rxcost,
                    txcost: n.txcost,
                    rtt: n
                        .rtt_us
                        .map_or(0, |us| (us / 1000).min(u32::from(u16::MAX)) as u16),
                    rttcost: n.cost.saturating_sub(n.txcost),
                    cost_multiplier: n.cost_multiplier,
                })
                .collect();
        }
        if flags & control::DUMP_XROUTES != 0 {
            d.xroutes = self
                .engine
                .xroutes()
                .map(|(p, _, metric)| (p.addr(), p.len(), metric))
                .collect();
        }
        if flags & control::DUMP_ROUTES != 0 {
            d.routes = self
                .engine
                .routes()
                .filter(|r| r.installed && r.metric < INFINITY)
                .filter_map(|r| {
                    let ((ifindex, _), _) = neighbours
                        .iter()
                        .find(|(_, n)| n.link == r.link && n.address == r.next_hop)?;
                    Some(control::Route {
                        prefix: r.prefix.addr(),
                        plen: r.prefix.len(),
                        metric: r.metric,
                        refmetric: r.refmetric,
                        router_id: r.router_id.0,
                        seqno: r.seqno.0,
                        ifindex: *ifindex,
                        neighbour: r.next_hop,
                    })
                })
                .collect();
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses() {
        for a in ["198.51.100.7", "203.0.113.1", "2001:db8::1"] {
            assert!(is_public(a.parse().unwrap()), "{a}");
        }
        for a in [
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.1",
            "100.64.0.1",
            "127.0.0.1",
            "169.254.1.1",
            "fe80::1",
            "fd00::1",
            "::1",
            "ff02::1",
        ] {
            assert!(!is_public(a.parse().unwrap()), "{a}");
        }
    }
}
