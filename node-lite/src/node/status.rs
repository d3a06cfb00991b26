//! The status report: what `re6st-lite status` prints, as a struct, with its
//! JSON (the documented schema, which only grows) and text renderings.

use std::fmt::Write;
use std::net::{Ipv6Addr, SocketAddr};

use registry_client::cert::utc_string;

use crate::json::{self, Object};
use crate::net::Ipv6Net;

#[derive(Clone, Debug)]
pub struct Status {
    pub prefix: Ipv6Net,
    pub address: Ipv6Addr,
    pub network: Ipv6Net,
    pub uptime_s: u64,
    /// The tunnels' UDP port.
    pub port: u16,
    pub network_config_version: Option<u64>,
    pub registry: Option<Registry>,
    pub certificate: CertificateStatus,
    /// The CA certificate, renewed through `getCa` (same key) as re6st does.
    pub ca: CertificateStatus,
    /// Someone connected to us.
    pub reachable: bool,
    pub public_addresses: Vec<SocketAddr>,
    pub nat: Nat,
    pub tunnels: Vec<Tunnel>,
    pub babel_interfaces: Vec<BabelInterface>,
    pub lan_interfaces: Vec<LanInterface>,
    pub router_id: [u8; 8],
    pub neighbours: Vec<Neighbour>,
    /// Installed routes.
    pub routes: Vec<Route>,
    pub babel: BabelCounts,
    pub peer_cache: usize,
    /// The subnets of the peers in the cache.
    pub peer_cache_peers: Vec<String>,
    pub dropped_packets: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Registry {
    pub url: String,
    pub last_ok_s: Option<u64>,
    pub last_error: Option<String>,
}

/// Our certificate's (or the CA's) validity and its renewal.
#[derive(Clone, Debug, Default)]
pub struct CertificateStatus {
    /// Unix seconds.
    pub not_after: u64,
    pub renew_from: u64,
    /// Why the last renewal attempt failed, until one succeeds.
    pub renewal_error: Option<String>,
}

impl CertificateStatus {
    fn to_json(&self) -> String {
        Object::new()
            .str("expires", &utc_string(self.not_after))
            .str("renew_from", &utc_string(self.renew_from))
            .num("not_after", self.not_after)
            .raw("renewal_error", opt_string(self.renewal_error.as_deref()))
            .finish()
    }

    fn line(&self, what: &str) -> String {
        format!(
            "{what:<9} valid until {}, renewal from {}{}\n",
            utc_string(self.not_after),
            utc_string(self.renew_from),
            self.renewal_error
                .as_ref()
                .map_or_else(String::new, |e| format!(" (last try: {e})"))
        )
    }
}

/// The node's NAT situation and port mapping.
#[derive(Clone, Debug, Default)]
pub struct Nat {
    /// unknown, public, nat, cone or symmetric (see `nat::Situation`).
    pub situation: &'static str,
    /// Our address as the newest tunnel peer sees it.
    pub external: Option<SocketAddr>,
    /// The default gateway asked for a mapping.
    pub gateway: Option<std::net::Ipv4Addr>,
    pub mapping: Option<Mapping>,
    /// Why no mapping (every protocol failed), if wanted.
    pub mapping_error: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Mapping {
    /// pcp, nat-pmp or upnp.
    pub protocol: &'static str,
    pub external: SocketAddr,
    pub lifetime_s: u32,
    pub age_s: u64,
}

impl Nat {
    fn to_json(&self) -> String {
        let mapping = self.mapping.as_ref().map_or_else(
            || "null".into(),
            |m| {
                Object::new()
                    .str("protocol", m.protocol)
                    .str("external", &m.external.to_string())
                    .num("lifetime_s", m.lifetime_s)
                    .num("age_s", m.age_s)
                    .finish()
            },
        );
        Object::new()
            .str("situation", self.situation)
            .raw(
                "external",
                opt_string(self.external.map(|a| a.to_string()).as_deref()),
            )
            .raw(
                "gateway",
                opt_string(self.gateway.map(|a| a.to_string()).as_deref()),
            )
            .raw("mapping", mapping)
            .raw("mapping_error", opt_string(self.mapping_error.as_deref()))
            .finish()
    }

    fn line(&self) -> String {
        let mut s = format!("nat       {}", self.situation);
        if let Some(e) = self.external {
            let _ = write!(s, ", seen at {e}");
        }
        match (&self.mapping, &self.mapping_error) {
            (Some(m), _) => {
                let _ = write!(
                    s,
                    ", {} mapping {} ({} s)",
                    m.protocol, m.external, m.lifetime_s
                );
            }
            (None, Some(e)) => {
                let _ = write!(s, ", no port mapping: {e}");
            }
            _ => {}
        }
        s + "\n"
    }
}

#[derive(Clone, Debug)]
pub struct Tunnel {
    pub id: u32,
    /// The peer's prefix (CIDR), once known.
    pub peer: Option<String>,
    pub address: SocketAddr,
    /// We opened it.
    pub client: bool,
    /// direct, mapped (through our port mapping) or punched.
    pub kind: &'static str,
    /// connecting, up, draining or closing.
    pub state: &'static str,
    pub age_s: u64,
    pub rtt_ms: Option<f64>,
    /// Share of the Hellos expected so far that did not come (0-1).
    pub loss: Option<f64>,
    pub cost: Option<u16>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

#[derive(Clone, Debug)]
pub struct BabelInterface {
    pub interface: String,
    /// Our link-local address on it.
    pub address: Ipv6Addr,
    /// Nodes whose beacon proved them members: link-local address, prefix.
    pub nodes: Vec<(Ipv6Addr, String)>,
}

#[derive(Clone, Debug)]
pub struct LanInterface {
    pub interface: String,
    pub prefix: Ipv6Net,
    /// We send router advertisements on it.
    pub ra: bool,
}

#[derive(Clone, Debug)]
pub struct Neighbour {
    pub tunnel: Option<u32>,
    pub interface: Option<String>,
    pub address: Ipv6Addr,
    pub reach: u16,
    pub rxcost: u16,
    pub txcost: u16,
    pub cost: u16,
    pub rtt_ms: Option<f64>,
}

#[derive(Clone, Debug)]
pub struct Route {
    pub prefix: Ipv6Net,
    pub from: Ipv6Net,
    pub metric: u16,
    pub tunnel: Option<u32>,
    pub interface: Option<String>,
    pub next_hop: Ipv6Addr,
    pub router_id: [u8; 8],
}

/// The route table's use and what Babel refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct BabelCounts {
    pub routes: usize,
    pub max_routes: u32,
    pub table_full: u64,
    pub origins_rejected: u64,
    pub mac_rejected: u64,
    pub replays_rejected: u64,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn opt_string(s: Option<&str>) -> String {
    s.map_or_else(|| "null".into(), json::string)
}

impl Status {
    /// The documented JSON object (README "Status JSON").
    pub fn to_json(&self) -> String {
        let tunnels = self.tunnels.iter().map(|r| {
            Object::new()
                .num("id", r.id)
                .raw("peer", opt_string(r.peer.as_deref()))
                .str("address", &r.address.to_string())
                .str("direction", if r.client { "client" } else { "server" })
                .str("kind", r.kind)
                .str("state", r.state)
                .num("age_s", r.age_s)
                .opt_num("rtt_ms", r.rtt_ms)
                .opt_num("loss", r.loss)
                .opt_num("cost", r.cost)
                .num("rx_packets", r.rx_packets)
                .num("rx_bytes", r.rx_bytes)
                .num("tx_packets", r.tx_packets)
                .num("tx_bytes", r.tx_bytes)
                .finish()
        });
        let neighbours = self.neighbours.iter().map(|n| {
            Object::new()
                .opt_num("tunnel", n.tunnel)
                .raw("interface", opt_string(n.interface.as_deref()))
                .str("address", &n.address.to_string())
                .str("reach", &format!("{:04x}", n.reach))
                .num("rxcost", n.rxcost)
                .num("txcost", n.txcost)
                .num("cost", n.cost)
                .opt_num("rtt_ms", n.rtt_ms)
                .finish()
        });
        let routes = self.routes.iter().map(|r| {
            Object::new()
                .str("prefix", &r.prefix.to_string())
                .str("from", &r.from.to_string())
                .num("metric", r.metric)
                .opt_num("tunnel", r.tunnel)
                .raw("interface", opt_string(r.interface.as_deref()))
                .str("next_hop", &r.next_hop.to_string())
                .str("router_id", &hex(&r.router_id))
                .finish()
        });
        let babel_interfaces = || {
            self.babel_interfaces.iter().map(|l| {
                let nodes = l.nodes.iter().map(|(addr, prefix)| {
                    Object::new()
                        .str("address", &addr.to_string())
                        .str("prefix", prefix)
                        .finish()
                });
                Object::new()
                    .str("interface", &l.interface)
                    .str("address", &l.address.to_string())
                    .raw("nodes", json::array(nodes))
                    .finish()
            })
        };
        let lan_interfaces = self.lan_interfaces.iter().map(|l| {
            Object::new()
                .str("interface", &l.interface)
                .str("prefix", &l.prefix.to_string())
                .str("address", &l.prefix.host(1).to_string())
                .bool("ra", l.ra)
                .finish()
        });
        let registry = self.registry.as_ref().map_or_else(
            || "null".into(),
            |r| {
                Object::new()
                    .str("url", &r.url)
                    .opt_num("last_ok_s", r.last_ok_s)
                    .raw("last_error", opt_string(r.last_error.as_deref()))
                    .finish()
            },
        );
        let b = &self.babel;
        let stats = Object::new()
            .num("routes", b.routes)
            .num("max_routes", b.max_routes)
            .num("table_full", b.table_full)
            .num("origins_rejected", b.origins_rejected)
            .num("mac_rejected", b.mac_rejected)
            .num("replays_rejected", b.replays_rejected)
            .finish();
        Object::new()
            .str("version", env!("CARGO_PKG_VERSION"))
            .str("prefix", &self.prefix.to_string())
            .str("address", &self.address.to_string())
            .str("network", &self.network.to_string())
            .num("uptime_s", self.uptime_s)
            .num("port", self.port)
            .opt_num("network_config_version", self.network_config_version)
            .raw("registry", registry)
            .raw("certificate", self.certificate.to_json())
            .raw("ca", self.ca.to_json())
            .bool("reachable", self.reachable)
            .raw(
                "public_addresses",
                json::array(
                    self.public_addresses
                        .iter()
                        .map(|a| json::string(&a.to_string())),
                ),
            )
            .raw("nat", self.nat.to_json())
            .raw("tunnels", json::array(tunnels))
            // `lan` predates the `lan` option: kept, with the same content as
            // `babel_interfaces`.
            .raw("lan", json::array(babel_interfaces()))
            .raw("babel_interfaces", json::array(babel_interfaces()))
            .raw("lan_interfaces", json::array(lan_interfaces))
            .raw(
                "babel",
                Object::new()
                    .str("router_id", &hex(&self.router_id))
                    .raw("neighbours", json::array(neighbours))
                    .raw("routes", json::array(routes))
                    .raw("stats", stats)
                    .finish(),
            )
            .raw(
                "peer_cache",
                Object::new()
                    .num("size", self.peer_cache)
                    .raw(
                        "peers",
                        json::array(self.peer_cache_peers.iter().map(|p| json::string(p))),
                    )
                    .finish(),
            )
            .num("dropped_packets", self.dropped_packets)
            .finish()
    }

    /// Tables for people.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "node      {} ({}) in {}",
            self.prefix, self.address, self.network
        );
        let _ = writeln!(
            s,
            "uptime    {} s, network config version {}",
            self.uptime_s,
            self.network_config_version
                .map_or_else(|| "none".into(), |v| v.to_string())
        );
        match &self.registry {
            Some(r) => {
                let _ = writeln!(
                    s,
                    "registry  {} (last answer {})",
                    r.url,
                    r.last_ok_s
                        .map_or_else(|| "never".into(), |o| format!("{o} s ago"))
                );
            }
            None => s += "registry  none configured\n",
        }
        s += &self.certificate.line("cert");
        s += &self.ca.line("ca");
        let addrs: Vec<String> = self
            .public_addresses
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(
            s,
            "public    {} (reachable from outside: {})",
            if addrs.is_empty() {
                "unknown".into()
            } else {
                addrs.join(", ")
            },
            if self.reachable { "yes" } else { "not yet" }
        );
        s += &self.nat.line();
        let _ = writeln!(
            s,
            "peers     {} cached, {} packets dropped",
            self.peer_cache, self.dropped_packets
        );
        let b = &self.babel;
        let _ = writeln!(
            s,
            "babel     {} of {} routes, {} refused (table full), {} refused (origin)\n",
            b.routes, b.max_routes, b.table_full, b.origins_rejected
        );
        let row = |s: &mut String, c: [&str; 10]| {
            let _ = writeln!(
                s,
                "{:>3} {:<28} {:<22} {:<6} {:<10} {:>6} {:>8} {:>5} {:>12} {:>12}",
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9]
            );
        };
        row(
            &mut s,
            [
                "id",
                "peer",
                "address",
                "dir",
                "state/kind",
                "age",
                "rtt ms",
                "loss",
                "rx bytes",
                "tx bytes",
            ],
        );
        for r in &self.tunnels {
            row(
                &mut s,
                [
                    &r.id.to_string(),
                    r.peer.as_deref().unwrap_or("?"),
                    &r.address.to_string(),
                    if r.client { "client" } else { "server" },
                    if r.state == "up" { r.kind } else { r.state },
                    &r.age_s.to_string(),
                    &r.rtt_ms.map_or_else(|| "-".into(), |m| format!("{m:.1}")),
                    &r.loss
                        .map_or_else(|| "-".into(), |l| format!("{:.0}%", l * 100.0)),
                    &r.rx_bytes.to_string(),
                    &r.tx_bytes.to_string(),
                ],
            );
        }
        for l in &self.babel_interfaces {
            let _ = writeln!(
                s,
                "\nLAN {} ({}): nodes proven by beacon",
                l.interface, l.address
            );
            for (addr, prefix) in &l.nodes {
                let _ = writeln!(
                    s,
                    "  lan {:<12} {:<28} {prefix}",
                    l.interface,
                    addr.to_string()
                );
            }
        }
        let _ = writeln!(
            s,
            "\n{:<28} {:<16} {:>6} {:>6}",
            "route", "from", "metric", "via"
        );
        for r in &self.routes {
            let via = match (r.tunnel, &r.interface) {
                (Some(t), _) => t.to_string(),
                (None, Some(i)) => i.clone(),
                _ => "-".into(),
            };
            let _ = writeln!(
                s,
                "{:<28} {:<16} {:>6} {:>6}",
                r.prefix.to_string(),
                r.from.to_string(),
                r.metric,
                via
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        let net = |s: &str| s.parse::<Ipv6Net>().unwrap();
        let ip = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        Status {
            prefix: net("2001:db8:42:1000::/68"),
            address: ip("2001:db8:42:1000::1"),
            network: net("2001:db8:42::/48"),
            uptime_s: 75,
            port: 1194,
            network_config_version: Some(3),
            registry: Some(Registry {
                url: "http://192.0.2.9/".into(),
                last_ok_s: Some(12),
                last_error: Some("bootstrap peer: \"timed out\"".into()),
            }),
            certificate: CertificateStatus {
                not_after: 1_830_000_000,
                renew_from: 1_827_408_000,
                renewal_error: None,
            },
            ca: CertificateStatus {
                not_after: 1_900_000_000,
                renew_from: 1_897_408_000,
                renewal_error: Some("getCa: timed out".into()),
            },
            reachable: true,
            public_addresses: vec!["198.51.100.2:1194".parse().unwrap()],
            nat: Nat {
                situation: "cone",
                external: Some("198.51.100.2:1194".parse().unwrap()),
                gateway: Some("192.0.2.1".parse().unwrap()),
                mapping: Some(Mapping {
                    protocol: "pcp",
                    external: "198.51.100.2:1194".parse().unwrap(),
                    lifetime_s: 3600,
                    age_s: 20,
                }),
                mapping_error: None,
            },
            tunnels: vec![Tunnel {
                id: 1,
                peer: Some("2001:db8:42::/68".into()),
                address: "198.51.100.1:1194".parse().unwrap(),
                client: true,
                kind: "direct",
                state: "up",
                age_s: 70,
                rtt_ms: Some(0.5),
                loss: Some(0.0),
                cost: Some(96),
                rx_packets: 10,
                rx_bytes: 1000,
                tx_packets: 11,
                tx_bytes: 1100,
            }],
            babel_interfaces: vec![BabelInterface {
                interface: "eth1".into(),
                address: ip("fe80::1"),
                nodes: vec![(ip("fe80::2"), "2001:db8:42:2000::/68".into())],
            }],
            lan_interfaces: vec![LanInterface {
                interface: "br-lan".into(),
                prefix: net("2001:db8:42:1000::/64"),
                ra: true,
            }],
            router_id: [0, 1, 2, 3, 4, 5, 6, 7],
            neighbours: vec![Neighbour {
                tunnel: Some(1),
                interface: None,
                address: ip("fe80::9"),
                reach: 0xffff,
                rxcost: 96,
                txcost: 96,
                cost: 96,
                rtt_ms: None,
            }],
            routes: vec![Route {
                prefix: net("2001:db8:42::/68"),
                from: net("::/0"),
                metric: 96,
                tunnel: Some(1),
                interface: None,
                next_hop: ip("fe80::9"),
                router_id: [7; 8],
            }],
            babel: BabelCounts {
                routes: 2,
                max_routes: 4096,
                ..BabelCounts::default()
            },
            peer_cache: 4,
            peer_cache_peers: vec!["2001:db8:42:1::/64".into()],
            dropped_packets: 0,
        }
    }

    /// Every documented field, with its JSON form: the LuCI app reads them.
    #[test]
    fn json_has_every_documented_field() {
        let j = sample().to_json();
        for part in [
            r#""prefix":"2001:db8:42:1000::/68""#,
            r#""uptime_s":75,"port":1194"#,
            r#""network_config_version":3"#,
            r#""registry":{"url":"http://192.0.2.9/","last_ok_s":12,"last_error":"bootstrap peer: \"timed out\""}"#,
            r#""certificate":{"expires":"#,
            r#""not_after":1830000000,"renewal_error":null}"#,
            r#""ca":{"expires":"#,
            r#""not_after":1900000000,"renewal_error":"getCa: timed out"}"#,
            r#""reachable":true"#,
            r#""public_addresses":["198.51.100.2:1194"]"#,
            r#""direction":"client","kind":"direct","state":"up","age_s":70,"rtt_ms":0.5,"loss":0,"cost":96"#,
            r#""nat":{"situation":"cone","external":"198.51.100.2:1194","gateway":"192.0.2.1","mapping":{"protocol":"pcp","external":"198.51.100.2:1194","lifetime_s":3600,"age_s":20},"mapping_error":null}"#,
            r#""lan":[{"interface":"eth1","address":"fe80::1","nodes":[{"address":"fe80::2","prefix":"2001:db8:42:2000::/68"}]}]"#,
            r#""babel_interfaces":[{"interface":"eth1""#,
            r#""lan_interfaces":[{"interface":"br-lan","prefix":"2001:db8:42:1000::/64","address":"2001:db8:42:1000::1","ra":true}]"#,
            r#""router_id":"0001020304050607""#,
            r#""neighbours":[{"tunnel":1,"interface":null,"address":"fe80::9","reach":"ffff","rxcost":96,"txcost":96,"cost":96,"rtt_ms":null}]"#,
            r#""routes":[{"prefix":"2001:db8:42::/68","from":"::/0","metric":96,"tunnel":1,"interface":null"#,
            r#""stats":{"routes":2,"max_routes":4096,"table_full":0"#,
            r#""peer_cache":{"size":4,"peers":["2001:db8:42:1::/64"]}"#,
            r#""dropped_packets":0"#,
        ] {
            assert!(j.contains(part), "{part}\nnot in\n{j}");
        }
        let none = Status {
            registry: None,
            network_config_version: None,
            ..sample()
        }
        .to_json();
        assert!(none.contains(r#""registry":null"#), "{none}");
        assert!(none.contains(r#""network_config_version":null"#), "{none}");
    }

    #[test]
    fn text_has_the_tables() {
        let t = sample().to_text();
        assert!(t.contains("registry  http://192.0.2.9/ (last answer 12 s ago)"));
        assert!(t.contains("babel     2 of 4096 routes"));
        assert!(t
            .lines()
            .any(|l| l.contains("2001:db8:42::/68") && l.contains("client") && l.contains("0.5")));
        assert!(t.contains("  lan eth1"));
        assert!(t
            .lines()
            .any(|l| l.starts_with("2001:db8:42::/68") && l.ends_with(" 1")));
    }
}
