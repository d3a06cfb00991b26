//! Everything around the data path: tunnels coming up and going (each a
//! Babel link), Babel's output and route changes, the mesh manager's
//! actions, the control messages between nodes (port 326: how a peer sees
//! us, addresses, the network version) and the registry's answers.

use std::net::{Ipv6Addr, SocketAddrV6};

use log::{debug, info, warn};
use registry_client::cert::{self, Certificate};
use registry_client::state::{CA_FILE, CERT_FILE, NETCONFIG_FILE};
use registry_client::Prefix;

use super::data::ALL_NODES;
use super::registry::{Job, RegistryResult};
use super::routing::Link as RouteLink;
use super::settings::settings;
use super::{babel_prefix, beacon, Counters, Io, Node, Peer};
use crate::babel::wire::{INFINITY, MULTICAST as BABEL_GROUP, PORT as BABEL_PORT};
use crate::babel::{LinkId, Prefix as BabelPrefix};
use crate::ip::Udp;
use crate::mesh::ctl;
use crate::mesh::manager::{Action as MeshAction, Dir};
use crate::mesh::version::Heard;
use crate::time::Instant;
use crate::tunnel::auth::Identity as TunnelIdentity;
use crate::tunnel::{CloseReason, Event, Role, TunnelId};

/// Cost multiplier that drains a retiring tunnel (re6st's soft lock).
const DRAIN_MULTIPLIER: u16 = 4096;

impl Node {
    /// The tunnel endpoint's control datagrams and events.
    pub(super) fn endpoint_output(&mut self, t: Instant, io: &mut impl Io) {
        while let Some(tx) = self.endpoint.poll_transmit() {
            io.send(tx.to, &tx.bytes);
        }
        while let Some(ev) = self.endpoint.poll_event() {
            self.on_tunnel_event(t, ev, io);
        }
    }

    /// Babel's packets (into tunnels or on LANs) and route changes.
    pub(super) fn babel_output(&mut self, t: Instant, io: &mut impl Io) {
        let mut payload = [0u8; 1500];
        while let Some(tx) = self.engine.poll_transmit(t, &mut payload) {
            let bytes = &payload[..tx.len];
            match self.tunnel_of.get(&tx.link) {
                Some(&tid) => {
                    let dst = if tx.dst.is_multicast() {
                        BABEL_GROUP
                    } else {
                        tx.dst
                    };
                    self.send_on_link(t, tid, dst, BABEL_PORT, bytes, io);
                }
                None => {
                    if let Some(lan) = self.lans.iter().find(|l| l.link == tx.link) {
                        io.send_lan_babel(lan.index, tx.dst, bytes);
                    }
                }
            }
        }
        while let Some(ev) = self.engine.poll_event() {
            let (tunnel_of, lans) = (&self.tunnel_of, &self.lans);
            let link = |l: LinkId| match (tunnel_of.get(&l), lans.iter().find(|x| x.link == l)) {
                (Some(&t), _) => RouteLink::Tunnel(t),
                (None, Some(lan)) => RouteLink::Lan(lan.index),
                _ => RouteLink::Unknown,
            };
            if let Some((dst, src, want)) = self.routing.on_route_event(ev, link) {
                io.set_route(dst, src, want);
            }
        }
    }

    fn on_tunnel_event(&mut self, t: Instant, ev: Event, io: &mut impl Io) {
        match ev {
            Event::Established { id, peer, addr } => {
                let Some(subnet) = self.subnet_of(peer.prefix) else {
                    warn!(
                        "tunnel {id}: peer prefix {} outside the network",
                        peer.prefix.to_cn()
                    );
                    let _ = self.endpoint.close(t, id);
                    return;
                };
                let mut lc = self.link_template.clone();
                lc.peer_prefix = Some(babel_prefix(subnet));
                let Some(link) = self.engine.add_link(t, lc) else {
                    warn!("tunnel {id}: Babel link table full");
                    let _ = self.endpoint.close(t, id);
                    return;
                };
                self.engine.hello_soon(link, t.add_millis(300));
                // A punched tunnel counts as the side that asked for it.
                let dir = self
                    .mesh
                    .dir(id)
                    .unwrap_or_else(|| match self.endpoint.role(id) {
                        Some(Role::Server) => Dir::Server,
                        _ => Dir::Client,
                    });
                info!("tunnel {id} to {subnet} at {addr} is up ({dir:?})");
                self.tunnel_of.insert(link, id);
                let routed = self
                    .engine
                    .installed_route(&babel_prefix(subnet), &BabelPrefix::DEFAULT)
                    .is_some();
                self.routing.tunnel_up(id, subnet, routed);
                self.peers.insert(
                    id,
                    Peer {
                        subnet,
                        link,
                        counters: Counters::default(),
                    },
                );
                if dir == Dir::Client {
                    self.cache.succeeded(peer.prefix, addr, self.unix_at(t));
                }
                for other in self.mesh.established(t, id, dir, peer.prefix, addr) {
                    debug!("tunnel {other}: another tunnel to {subnet}, closing");
                    let _ = self.endpoint.close(t, other);
                }
                self.cache_dirty = true;
                // Tell the peer how we see it (its public address) and the
                // network version we know.
                let seen = ctl::Msg::Seen(addr).encode();
                self.send_on_link(t, id, ALL_NODES, ctl::PORT, &seen, io);
                self.announce_version(t, Some(id), io);
            }
            Event::Rekeyed { id } => debug!("tunnel {id} rekeyed"),
            Event::Silent { id } | Event::Heard { id } => {
                let silent = matches!(ev, Event::Silent { .. });
                if let Some(p) = self.peers.get(&id) {
                    if silent {
                        info!(
                            "tunnel {id} to {}: traffic unanswered, routing around it",
                            p.subnet
                        );
                    } else {
                        info!("tunnel {id} to {}: answering again", p.subnet);
                    }
                    self.engine.set_link_suspended(t, p.link, silent);
                }
            }
            Event::Closed { id, reason } => {
                if let Some(p) = self.peers.remove(&id) {
                    info!("tunnel {id} to {} closed: {reason:?}", p.subnet);
                    self.engine.remove_link(t, p.link);
                    self.tunnel_of.remove(&p.link);
                    if reason == CloseReason::Revoked {
                        // As re6st: a revoked node is dropped from the peer
                        // cache, so the mesh manager does not try it again.
                        if let Some(node) = self.node_of(p.subnet) {
                            self.cache.remove(node);
                            self.cache_dirty = true;
                        }
                    }
                }
                self.routing.tunnel_down(id);
                self.mesh.closed(t, id);
            }
            Event::ConnectFailed { id, addr } => {
                debug!("tunnel {id} to {addr}: no answer");
                self.mesh.connect_failed(t, id, &mut self.cache);
            }
        }
    }

    /// Node prefixes Babel routes, with the tunnel each goes through.
    pub(super) fn routed_nodes(&self) -> Vec<(Prefix, Option<TunnelId>)> {
        self.engine
            .routes()
            .filter(|r| r.installed && r.metric < INFINITY && r.src_prefix.is_default())
            .filter_map(|r| {
                let p = Prefix::from_ipv6(r.prefix.addr(), r.prefix.len()).ok()?;
                let node = self.network_bits.strip(&p).filter(|n| !n.is_empty())?;
                Some((node, self.tunnel_of.get(&r.link).copied()))
            })
            .collect()
    }

    pub(super) fn on_mesh_action(&mut self, t: Instant, a: MeshAction, io: &mut impl Io) {
        match a {
            MeshAction::Connect { addr, prefix } => {
                if !(if addr.is_ipv4() { self.ipv4 } else { self.ipv6 }) {
                    return;
                }
                let tid = self.endpoint.connect(t, addr);
                debug!("tunnel {tid}: connecting to {addr}");
                self.mesh.connecting(t, tid, addr, prefix);
                if let Some(p) = prefix {
                    self.request_intro(t, p, io);
                }
            }
            MeshAction::RequestAddress(p) => {
                let Some(sub) = self.subnet_of(p) else { return };
                let dst = sub.host(1);
                self.asked.insert(dst, p);
                let msg = ctl::Msg::AddressRequest.encode();
                self.send_ctl(t, dst, ctl::PORT, &msg, io);
            }
            MeshAction::Drain(tid) => {
                if let Some(link) = self.peers.get(&tid).map(|p| p.link) {
                    info!("tunnel {tid}: refresh, draining");
                    let nbs: Vec<Ipv6Addr> = self
                        .engine
                        .neighbours(t)
                        .filter(|n| n.link == link)
                        .map(|n| n.address)
                        .collect();
                    for a in nbs {
                        self.engine
                            .set_cost_multiplier(t, link, a, DRAIN_MULTIPLIER);
                    }
                }
            }
            MeshAction::Close(tid) => {
                debug!("tunnel {tid}: closing");
                if self.endpoint.close(t, tid).is_err() {
                    self.mesh.closed(t, tid);
                }
            }
            MeshAction::Bootstrap => {
                if self.registry.is_some() {
                    io.registry(Job::Bootstrap);
                }
            }
        }
    }

    /// The registry answered `job` (the driver asked it because of
    /// [`Io::registry`]).
    pub fn handle_registry(&mut self, t: Instant, job: Job, r: RegistryResult, io: &mut impl Io) {
        let Some(reg) = &mut self.registry else {
            return;
        };
        match r {
            RegistryResult::Failed(what, e) => {
                match job {
                    Job::NetworkConfig => {
                        self.versions.fetched(t, None);
                        self.netconf_refresh.failed(t);
                    }
                    Job::Bootstrap => self.mesh.bootstrapped(None),
                    Job::Renew => self.renewal.failed(format!("{what}: {e}")),
                    Job::RenewCa => self.ca_renewal.failed(format!("{what}: {e}")),
                }
                warn!("registry: {what}: {e}");
                reg.last_error = Some(format!("{what}: {e}"));
            }
            RegistryResult::Bootstrap(None) => {
                reg.last_ok = Some(t);
                debug!("registry: no bootstrap peer");
                self.mesh.bootstrapped(None);
            }
            RegistryResult::Bootstrap(Some((p, addrs))) => {
                reg.last_ok = Some(t);
                info!("registry: bootstrap peer {} at {addrs:?}", p.to_cn());
                self.cache.learn(p, &addrs);
                self.mesh.bootstrapped(Some(p));
                self.cache_dirty = true;
                self.mesh.wake(t);
            }
            RegistryResult::NetworkConfig(c, raw) => {
                reg.last_ok = Some(t);
                reg.last_error = None;
                if self.netconf_version != Some(c.version.number) {
                    info!("network config version {}", c.version.number);
                    io.save(NETCONFIG_FILE, &raw, 0o644);
                } else {
                    debug!("network config version {}: unchanged", c.version.number);
                }
                self.netconf_version = Some(c.version.number);
                self.netconf_refresh.applied(c.valid_until, self.unix_at(t));
                // A newer one than peers told: flush tells them.
                self.versions.fetched(t, Some(&c.version));
                // Revoked peers' tunnels close now; parameters apply to what
                // comes next (re6st re-execs for those).
                self.endpoint.apply_crl(&c.crl);
                let set = settings(&self.config, Some(&c), self.link_local);
                self.endpoint.set_config(set.tunnel);
                self.engine.set_mac(set.mac);
                self.mesh.set_policy(set.policy);
                self.link_template = set.link;
            }
            RegistryResult::Certificate(c) => {
                reg.last_ok = Some(t);
                self.on_certificate(&c, io);
            }
            RegistryResult::Ca(c) => {
                reg.last_ok = Some(t);
                self.ca_renewal.answered(c.not_after());
                if c.not_after() <= self.id.ca.not_after() {
                    debug!("CA certificate unchanged by the registry");
                    return;
                }
                // Same key (the registry client checked): peers' certificates
                // and the network's identity (a hash of that key) stay valid.
                io.save(CA_FILE, c.to_pem().as_bytes(), 0o644);
                info!(
                    "CA certificate renewed: valid until {}",
                    cert::utc_string(c.not_after())
                );
                self.id.ca = *c;
            }
        }
    }

    /// The registry answered a renewal: a new certificate is stored and used
    /// for the next handshakes and beacons at once, without a restart.
    fn on_certificate(&mut self, c: &Certificate, io: &mut impl Io) {
        self.renewal.answered(c.not_after());
        if c.der() == self.id.cert.der() {
            info!(
                "certificate unchanged by the registry: valid until {}",
                cert::utc_string(c.not_after())
            );
            return;
        }
        io.save(CERT_FILE, c.to_pem().as_bytes(), 0o644);
        // The tunnel static key stays; its signature is remade with the
        // new certificate.
        let secret = *self.endpoint.identity().static_secret();
        match TunnelIdentity::new(c.der().to_vec(), &self.id.key, secret) {
            Ok(identity) => {
                self.beacon = beacon(self.config.port, &identity);
                self.endpoint.set_identity(identity);
                self.id.cert = c.clone();
                info!(
                    "certificate renewed: serial {}, valid until {}",
                    c.serial_u64().unwrap_or_default(),
                    cert::utc_string(c.not_after())
                );
            }
            Err(e) => warn!("renewed certificate unusable: {e}"),
        }
    }

    /// A packet from the peer itself (link-local or multicast): Babel, or
    /// a control message about the link.
    pub(super) fn on_link_message(
        &mut self,
        t: Instant,
        tid: TunnelId,
        packet: &[u8],
        io: &mut impl Io,
    ) {
        let Some(u) = Udp::parse(packet) else { return };
        let Some(link) = self.peers.get(&tid).map(|p| p.link) else {
            return;
        };
        match u.dst_port {
            BABEL_PORT => {
                let from = SocketAddrV6::new(u.src, u.src_port, 0, 0);
                self.engine.handle_packet(t, link, from, u.dst, u.payload);
            }
            ctl::PORT => match ctl::Msg::parse(u.payload) {
                Some(ctl::Msg::Seen(a)) => {
                    if let Some(by) = self.peers.get(&tid).and_then(|p| self.node_of(p.subnet)) {
                        self.on_seen(t, by, a);
                    }
                }
                Some(ctl::Msg::IntroRequest { node, addrs }) => {
                    self.on_intro_request(t, tid, node, addrs, io);
                }
                Some(ctl::Msg::Intro { node, addrs }) => self.on_intro(t, node, addrs),
                Some(ctl::Msg::Version(v)) => self.on_version(t, tid, v, io),
                _ => {}
            },
            _ => {}
        }
    }

    /// A tunnel peer tells the network version it knows (re6st's code 0).
    fn on_version(
        &mut self,
        t: Instant,
        tid: TunnelId,
        v: registry_client::netconfig::Version,
        io: &mut impl Io,
    ) {
        let ca = self.id.ca.public_key();
        let ours = self
            .versions
            .known()
            .map_or_else(|| "none".into(), |k| k.number.to_string());
        match self.versions.heard(t, &v, |v| v.verify(ca).is_ok()) {
            Heard::Same => debug!("tunnel {tid}: network version {} (ours too)", v.number),
            Heard::Older => {
                debug!("tunnel {tid}: network version {}, ours {ours}", v.number);
                self.announce_version(t, Some(tid), io);
            }
            Heard::Refused => debug!("tunnel {tid}: network version {}: bad signature", v.number),
            Heard::Newer => {
                // flush passes it on to every peer.
                info!(
                    "tunnel {tid}: network version {} (ours {ours}){}",
                    v.number,
                    if self.registry.is_some() {
                        ", fetching the network config"
                    } else {
                        ""
                    }
                );
            }
        }
    }

    /// Tell the network version we know to one tunnel peer, or all.
    pub(super) fn announce_version(&mut self, t: Instant, to: Option<TunnelId>, io: &mut impl Io) {
        let Some(v) = self.versions.known() else {
            return;
        };
        // Encoded once for every peer.
        let msg = ctl::Msg::Version(v.clone()).encode();
        let tids: Vec<TunnelId> = match to {
            Some(t) => vec![t],
            None => self.peers.keys().copied().collect(),
        };
        for tid in tids {
            self.send_on_link(t, tid, ALL_NODES, ctl::PORT, &msg, io);
        }
    }

    /// A control message to our address, from another node.
    pub(super) fn on_ctl(
        &mut self,
        t: Instant,
        src: Ipv6Addr,
        sport: u16,
        msg: Option<ctl::Msg>,
        io: &mut impl Io,
    ) {
        match msg {
            Some(ctl::Msg::AddressRequest) => {
                let addrs = self.announced();
                if !addrs.is_empty() {
                    let answer = ctl::Msg::Address(addrs).encode();
                    self.send_ctl(t, src, sport, &answer, io);
                }
            }
            Some(ctl::Msg::Forwarded { code, data }) => {
                self.on_forwarded(t, src, sport, code, data, io);
            }
            Some(ctl::Msg::Address(addrs)) => {
                if let Some(p) = self.asked.remove(&src) {
                    debug!("{} is at {addrs:?}", p.to_cn());
                    self.cache.learn(p, &addrs);
                    self.cache_dirty = true;
                    self.mesh.learned(t, p);
                }
            }
            _ => {}
        }
    }
}
