//! Babel and discovery beacons on LAN interfaces (`babel_interface`), as
//! re6st's `-i`: nodes on one segment route to each other directly. Nodes
//! prove themselves with beacons (certificate and tunnel key signature)
//! before their Babel packets are heard, unless the network's Babel MAC
//! keys vouch for them.

use std::net::{Ipv6Addr, SocketAddrV6};

use log::info;
use registry_client::Subnet;

use super::{Io, LanLink, Node};
use crate::babel::{LinkConfig, LinkId, LinkKind};
use crate::mesh::beacon::Verdict;
use crate::net::Ipv6Net;
use crate::time::Instant;
use crate::tunnel::auth::Authority;

impl Node {
    /// Speak Babel on LAN interface `name` (index `index`, our link-local
    /// address `local`): None if the Babel link table is full.
    pub fn add_lan(
        &mut self,
        t: Instant,
        name: &str,
        index: u32,
        local: Ipv6Addr,
    ) -> Option<LinkId> {
        let link = self
            .engine
            .add_link(t, LinkConfig::new(LinkKind::Wired, local))?;
        self.lans.push(LanLink {
            name: name.to_string(),
            index,
            local,
            link,
        });
        // A new interface announces us at once.
        self.discovery.announce(t);
        Some(link)
    }

    /// Stop speaking on LAN interface `index` (its sockets failed).
    pub fn remove_lan(&mut self, t: Instant, index: u32) {
        if let Some(i) = self.lans.iter().position(|l| l.index == index) {
            let lan = self.lans.remove(i);
            self.engine.remove_link(t, lan.link);
        }
    }

    /// A Babel packet from `from` to `to` (our address or the group) on
    /// LAN interface `index`.
    pub fn handle_lan_babel(
        &mut self,
        t: Instant,
        index: u32,
        from: SocketAddrV6,
        to: Ipv6Addr,
        bytes: &[u8],
    ) {
        let Some(lan) = self.lans.iter().find(|l| l.index == index) else {
            return;
        };
        if *from.ip() == lan.local {
            return;
        }
        if !self.babel_mac && !self.discovery.trusted(index, *from.ip()) {
            self.dropped += 1;
            return;
        }
        let from = SocketAddrV6::new(*from.ip(), from.port(), 0, 0);
        let link = lan.link;
        self.engine.handle_packet(t, link, from, to, bytes);
    }

    /// A discovery beacon from `from` on LAN interface `index`.
    pub fn handle_beacon(&mut self, t: Instant, index: u32, from: Ipv6Addr, bytes: &[u8]) {
        let Some(lan) = self.lans.iter().find(|l| l.index == index) else {
            return;
        };
        let (name, link) = (lan.name.clone(), lan.link);
        let (authority, own) = (self.endpoint.authority(), self.subnet);
        let (network_bits, unix) = (self.network_bits, self.unix_at(t));
        let verdict = self.discovery.on_beacon(t, index, from, bytes, |b| {
            let peer = authority
                .verify_peer(b.cert, &b.static_pub, b.signature, unix)
                .map_err(|e| e.to_string())?;
            let subnet = Subnet::new(network_bits, peer.prefix).map_err(|e| e.to_string())?;
            let (a, l) = subnet.ipv6();
            if Ipv6Net::new(a, l) == own {
                return Err("our own prefix".into());
            }
            Ok(peer.prefix)
        });
        match verdict {
            Verdict::New(p) => {
                info!("LAN: node {} at {from}%{name}", p.to_cn());
                // Without MAC keys the beacon is the only proof: the node
                // may originate its own prefix there and nothing else.
                if !self.babel_mac {
                    if let Some(sub) = self.subnet_of(p) {
                        self.engine
                            .set_neighbour_origin(link, from, super::babel_prefix(sub));
                    }
                }
                // 2-out-of-3 wants two Hellos: both soon, after our beacon
                // (due in 200 ms) makes us trusted.
                self.lan_hellos.push((link, t.add_millis(300)));
                self.lan_hellos.push((link, t.add_millis(700)));
            }
            Verdict::Refused(e) => info!("LAN: ignoring {from}%{name}: {e}"),
            Verdict::Known | Verdict::Ignored | Verdict::RateLimited => {}
        }
    }

    /// Early Hellos for newcomers, and beacons when due.
    pub(super) fn lan_timers(&mut self, t: Instant, io: &mut impl Io) {
        let engine = &mut self.engine;
        self.lan_hellos.retain(|&(link, at)| {
            if at > t {
                return true;
            }
            engine.hello_soon(link, t);
            false
        });
        if !self.lans.is_empty() && self.discovery.handle_timeout(t) {
            for lan in &self.lans {
                io.send_beacon(lan.index, &self.beacon);
            }
        }
    }

    /// The LAN interface name of Babel link `link`, if it is one.
    pub(super) fn lan_name(&self, link: LinkId) -> Option<String> {
        self.lans
            .iter()
            .find(|l| l.link == link)
            .map(|l| l.name.clone())
    }
}
