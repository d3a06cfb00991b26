//! The status report, built from the core's state (the driver adds what
//! only it knows: the `lan` interfaces, its own dropped packets).

use std::net::Ipv6Addr;

use super::status::{self, Status};
use super::{net_of, Node};
use crate::mesh::manager::{Dir, State as MeshState};
use crate::time::Instant;

fn state_name(s: MeshState) -> &'static str {
    match s {
        MeshState::Connecting => "connecting",
        MeshState::Up => "up",
        MeshState::Draining => "draining",
        MeshState::Closing => "closing",
    }
}

impl Node {
    /// The status report, as of `t`.
    pub fn status(&self, t: Instant) -> Status {
        let rtt_ms = |us: Option<u32>| us.map(|u| f64::from(u) / 1000.0);
        let mut tunnels: Vec<status::Tunnel> = self
            .mesh
            .tunnels()
            .map(|(id, m)| {
                let peer = self.peers.get(&id);
                let nb = peer.and_then(|p| self.engine.neighbours(t).find(|n| n.link == p.link));
                let counters = peer.map(|p| p.counters).unwrap_or_default();
                status::Tunnel {
                    id,
                    peer: peer.map(|p| p.subnet.to_string()).or_else(|| {
                        m.peer
                            .and_then(|p| self.subnet_of(p))
                            .map(|s| s.to_string())
                    }),
                    address: m.addr,
                    client: m.dir == Dir::Client,
                    kind: self.tunnel_kind(id),
                    state: if self.endpoint.is_silent(id) {
                        "silent"
                    } else {
                        state_name(m.state)
                    },
                    age_s: m.up_since.map_or(0, |u| t.millis_since(u) / 1000),
                    rtt_ms: rtt_ms(nb.as_ref().and_then(|n| n.rtt_us)),
                    loss: nb.as_ref().map(|n| {
                        // Of the Hellos expected so far (16 at most, the
                        // reach window), how many did not come.
                        let age_ms = m.up_since.map_or(0, |u| t.millis_since(u));
                        let hello = u64::from(self.link_template.hello_interval_ms).max(1);
                        let expected = (age_ms / hello + 1).min(16) as f64;
                        (1.0 - f64::from(n.reach.count_ones()) / expected).max(0.0)
                    }),
                    cost: nb.as_ref().map(|n| n.cost),
                    rx_packets: counters.rx_packets,
                    rx_bytes: counters.rx_bytes,
                    tx_packets: counters.tx_packets,
                    tx_bytes: counters.tx_bytes,
                }
            })
            .collect();
        tunnels.sort_by_key(|r| r.id);
        let st = self.engine.stats();
        Status {
            prefix: self.subnet,
            address: self.address,
            network: self.network,
            uptime_s: t.millis_since(self.started) / 1000,
            port: self.config.port,
            network_config_version: self.netconf_version,
            registry: self.registry.as_ref().map(|r| status::Registry {
                url: r.url.clone(),
                last_ok_s: r.last_ok.map(|o| t.millis_since(o) / 1000),
                last_error: r.last_error.clone(),
            }),
            certificate: self.renewal.status(),
            ca: self.ca_renewal.status(),
            reachable: self.mesh.reachable(),
            public_addresses: self.announced(),
            nat: status::Nat {
                situation: self.nat_situation().name(),
                external: self.observed.external(&self.own_ips()),
                gateway: self.mapper.gateway(),
                mapping: self.mapper.mapping().map(|m| status::Mapping {
                    protocol: m.protocol.name(),
                    external: m.external.into(),
                    lifetime_s: m.lifetime,
                    age_s: t.millis_since(m.since) / 1000,
                }),
                mapping_error: self
                    .mapper
                    .last_error()
                    .filter(|_| self.mapper.wanted())
                    .map(String::from),
            },
            tunnels,
            babel_interfaces: self
                .lans
                .iter()
                .map(|l| status::BabelInterface {
                    interface: l.name.clone(),
                    address: l.local,
                    nodes: self.lan_nodes(l.index).collect(),
                })
                .collect(),
            lan_interfaces: Vec::new(),
            router_id: self.engine.router_id().0,
            neighbours: self
                .engine
                .neighbours(t)
                .map(|n| status::Neighbour {
                    tunnel: self.tunnel_of.get(&n.link).copied(),
                    interface: self.lan_name(n.link),
                    address: n.address,
                    reach: n.reach,
                    rxcost: n.rxcost,
                    txcost: n.txcost,
                    cost: n.cost,
                    rtt_ms: rtt_ms(n.rtt_us),
                })
                .collect(),
            routes: self
                .engine
                .routes()
                .filter(|r| r.installed)
                .map(|r| status::Route {
                    prefix: net_of(&r.prefix),
                    from: net_of(&r.src_prefix),
                    metric: r.metric,
                    tunnel: self.tunnel_of.get(&r.link).copied(),
                    interface: self.lan_name(r.link),
                    next_hop: r.next_hop,
                    router_id: r.router_id.0,
                })
                .collect(),
            babel: status::BabelCounts {
                routes: self.engine.routes().count(),
                max_routes: self.config.max_routes,
                table_full: st.table_full,
                origins_rejected: st.origins_rejected,
                mac_rejected: st.mac_rejected,
                replays_rejected: st.replays_rejected,
            },
            peer_cache: self.cache.len(),
            peer_cache_peers: self
                .cache
                .prefixes()
                .map(|p| {
                    self.subnet_of(p)
                        .map_or_else(|| p.to_cn(), |n| n.to_string())
                })
                .collect(),
            dropped_packets: self.dropped,
        }
    }

    /// Nodes proven on LAN interface `index`: link-local address, subnet.
    fn lan_nodes(&self, index: u32) -> impl Iterator<Item = (Ipv6Addr, String)> + '_ {
        self.discovery
            .neighbours()
            .filter(move |n| n.0 == index)
            .map(|(_, addr, p)| {
                let subnet = self
                    .subnet_of(p)
                    .map_or_else(|| p.to_cn(), |n| n.to_string());
                (addr, subnet)
            })
    }
}
