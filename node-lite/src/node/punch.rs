//! Behind a NAT: the node's NAT situation, its port mapping, and hole
//! punching through a mutual peer.
//!
//! Punching: when the node connects to another node by prefix, it asks
//! each tunnel peer to introduce it ([`ctl::Msg::IntroRequest`]). A peer
//! with a tunnel to that node tells each side the address it sees the
//! other at ([`ctl::Msg::Intro`]), and both send handshake initiations at
//! once: each side's NAT has then seen an outgoing packet to the other, so
//! the other's gets in (with an endpoint-independent mapping; two
//! symmetric NATs cannot be punched and the pair stays routed through the
//! mesh). The tunnel endpoint resolves the crossed initiations into one
//! tunnel. Introductions only come from tunnel peers (authenticated, on
//! the tunnel's link), both ways are rate-limited, and a node acts on one
//! it did not ask for only while it is itself unreachable behind a NAT.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use log::{debug, info};
use registry_client::Prefix;

use super::data::ALL_NODES;
use super::{Io, Node};
use crate::mesh::ctl;
use crate::nat::mapper::Out;
use crate::nat::Situation;
use crate::time::Instant;
use crate::tunnel::TunnelId;

/// Introductions made for others, per second and burst.
pub(super) const INTROS: (u32, u32) = (10, 20);
/// Introductions acted upon, per second and burst.
pub(super) const PUNCHES: (u32, u32) = (2, 8);

impl Node {
    /// The default gateway and our IPv4 address towards it, as the driver
    /// reads them now and then (None: no IPv4 default route).
    pub fn set_underlay(&mut self, t: Instant, gateway: Option<Ipv4Addr>, local: Option<Ipv4Addr>) {
        if self.underlay != local {
            debug!("underlay address {local:?}, gateway {gateway:?}");
        }
        self.underlay = local;
        self.mapper.set_gateway(t, gateway, local);
        self.update_nat(t);
    }

    /// Our own addresses, against which peers' views are compared.
    pub(super) fn own_ips(&self) -> Vec<IpAddr> {
        let mut own: Vec<IpAddr> = self.local_addrs.iter().map(SocketAddr::ip).collect();
        own.extend(self.underlay.map(IpAddr::V4));
        own
    }

    pub(super) fn nat_situation(&self) -> Situation {
        self.observed.situation(&self.own_ips())
    }

    /// Unreachable from outside but by punching: behind a NAT, unmapped.
    fn blocked(&self) -> bool {
        self.nat_situation().behind_nat() && self.mapped_address().is_none()
    }

    /// The mapped address, when it is one others can use: public, or the
    /// address peers see us at (a mapping on the inner NAT of two is not).
    pub(super) fn mapped_address(&self) -> Option<SocketAddr> {
        let m = self.mapper.mapping()?;
        let ip = IpAddr::V4(*m.external.ip());
        let seen = self.observed.external(&self.own_ips()).map(|a| a.ip());
        (super::registry_node::is_public(ip) || seen == Some(ip))
            .then_some(SocketAddr::V4(m.external))
    }

    /// A peer told how it sees us, or our addresses changed: whether a
    /// mapping is wanted, and what the mesh manager may count on.
    pub(super) fn update_nat(&mut self, t: Instant) {
        let private = self.underlay.is_some_and(crate::nat::is_private);
        let wanted = self.config.port_mapping && (private || self.nat_situation().behind_nat());
        self.mapper.set_wanted(t, wanted);
        self.mesh.set_mapped(self.mapped_address().is_some());
    }

    /// Tunnel peer `by` sees us at `a`.
    pub(super) fn on_seen(&mut self, t: Instant, by: Prefix, a: SocketAddr) {
        self.observed.seen(by, a);
        // The view from outside our LAN, if any peer is outside it.
        let a = if a.is_ipv4() {
            self.observed.external(&self.own_ips()).unwrap_or(a)
        } else {
            a
        };
        // A symmetric NAT's port is only good for that peer.
        let mine = if self.nat_situation() == Situation::Symmetric {
            SocketAddr::new(a.ip(), self.config.port)
        } else {
            a
        };
        if self.own_addrs.first() != Some(&mine) {
            debug!("a peer sees us at {a}");
        }
        self.own_addrs
            .retain(|x| *x != mine && x.is_ipv4() != mine.is_ipv4());
        self.own_addrs.insert(0, mine);
        self.update_nat(t);
    }

    /// We connect to `node`: ask every tunnel peer to introduce us, with
    /// our LAN address when we are behind a NAT (a node behind the same
    /// NAT reaches us there).
    pub(super) fn request_intro(&mut self, t: Instant, node: Prefix, io: &mut impl Io) {
        let addrs: Vec<SocketAddr> = self
            .underlay
            .filter(|_| self.nat_situation().behind_nat())
            .map(|ip| SocketAddr::new(IpAddr::V4(ip), self.config.port))
            .into_iter()
            .collect();
        let msg = ctl::Msg::IntroRequest { node, addrs }.encode();
        let tids: Vec<TunnelId> = self.peers.keys().copied().collect();
        for tid in tids {
            self.send_on_link(t, tid, ALL_NODES, ctl::PORT, &msg, io);
        }
    }

    /// Tunnel peer `from` asks to be introduced to `node`: if we have a
    /// tunnel to it, tell each the address we see the other at.
    pub(super) fn on_intro_request(
        &mut self,
        t: Instant,
        from: TunnelId,
        node: Prefix,
        lan: Vec<SocketAddr>,
        io: &mut impl Io,
    ) {
        let Some(sub) = self.subnet_of(node) else {
            return;
        };
        let Some(to) = self
            .peers
            .iter()
            .find(|(_, p)| p.subnet == sub)
            .map(|(id, _)| *id)
        else {
            return;
        };
        let (Some(asker), Some(asker_at), Some(node_at)) = (
            self.peers.get(&from).and_then(|p| self.node_of(p.subnet)),
            self.endpoint.peer_addr(from),
            self.endpoint.peer_addr(to),
        ) else {
            return;
        };
        if to == from || !self.intro_budget.try_take(t) {
            return;
        }
        debug!(
            "introducing {} at {asker_at} and {} at {node_at}",
            asker.to_cn(),
            node.to_cn()
        );
        let mut addrs = vec![asker_at];
        addrs.extend(lan.into_iter().filter(|a| *a != asker_at));
        let to_node = ctl::Msg::Intro { node: asker, addrs }.encode();
        self.send_on_link(t, to, ALL_NODES, ctl::PORT, &to_node, io);
        let to_asker = ctl::Msg::Intro {
            node,
            addrs: vec![node_at],
        }
        .encode();
        self.send_on_link(t, from, ALL_NODES, ctl::PORT, &to_asker, io);
    }

    /// A tunnel peer introduces `node` at `addrs`: send to it now.
    pub(super) fn on_intro(&mut self, t: Instant, node: Prefix, addrs: Vec<SocketAddr>) {
        let usable: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| if a.is_ipv4() { self.ipv4 } else { self.ipv6 })
            .collect();
        let (to, dir) = self.mesh.punch_plan(node, &usable, self.blocked());
        if to.is_empty() || self.subnet_of(node).is_none() || !self.punch_budget.try_take(t) {
            return;
        }
        info!("punching to {} at {to:?}", node.to_cn());
        for addr in to {
            let tid = self.endpoint.connect(t, addr);
            self.mesh.punching(t, tid, addr, node, dir);
        }
    }

    /// A datagram from the gateway on the NAT socket.
    pub fn handle_nat_datagram(&mut self, t: Instant, from: SocketAddr, d: &[u8]) {
        self.mapper.handle_udp(t, from, d);
    }

    /// The answer to [`Io::nat_http`].
    pub fn handle_nat_http(&mut self, t: Instant, r: Result<Vec<u8>, String>) {
        self.mapper.handle_http(t, r);
    }

    /// What the mapper queued, and a mapping that came or went.
    pub(super) fn nat_output(&mut self, io: &mut impl Io) {
        while let Some(o) = self.mapper.poll_out() {
            match o {
                Out::Udp(to, bytes) => io.nat_send(to, &bytes),
                Out::Http(to, req) => io.nat_http(to, req),
            }
        }
        if self.mapper.take_changed() {
            self.mesh.set_mapped(self.mapped_address().is_some());
        }
    }

    /// How a tunnel was made, for `status`: punched (on an introduction),
    /// mapped (the peer came in through our port mapping), or direct.
    pub(super) fn tunnel_kind(&self, id: TunnelId) -> &'static str {
        match self.mesh.tunnel(id) {
            Some(m) if m.punched => "punched",
            Some(m)
                if m.dir == crate::mesh::manager::Dir::Server
                    && self.mapped_address().is_some() =>
            {
                "mapped"
            }
            _ => "direct",
        }
    }
}
