//! NAT routers made of network namespaces, for the NAT tests.
//!
//! The "internet" is the mesh's hub bridge (198.51.100.0/24). A [`Router`]
//! has its WAN end on it (198.51.100.(200 + k)) and a LAN bridge
//! (203.0.113.16k/28, the router at .16k+1) with the nodes behind it, whose
//! default route goes through it. Its nftables ruleset is a home router's:
//! masquerade out of the WAN, unsolicited packets from the WAN dropped
//! (as OpenWrt's firewall does), forwarding from the WAN only for what
//! miniupnpd opens. Kinds:
//! - [`Kind::Cone`]: `masquerade`, which keeps the source port while it is
//!   free: endpoint-independent mapping, address-and-port-dependent
//!   filtering (a port-restricted cone);
//! - [`Kind::Symmetric`]: `masquerade random`: a new port for each
//!   destination;
//! - [`Kind::Upnp`]: the cone, plus the real miniupnpd (Debian 2.3.1:
//!   UPnP-IGD, NAT-PMP and PCP), or with `upnp_only` UPnP-IGD alone.
//!
//! miniupnpd 2.3.1 maps nothing while its external address is a reserved
//! one (TEST-NET addresses are): with `ext_perform_stun` it believes a STUN
//! server instead, so [`Lab::new`] runs `tests/tools/stun-responder.py` on
//! the hub (198.51.100.250:3478).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::mesh::Mesh;
use crate::netns::{unique, wait_until, Netns, Proc};
use crate::registry::register_anonymous;

pub const STUN_ADDR: &str = "198.51.100.250";
const STUN_PORT: u16 = 3478;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Cone,
    Symmetric,
    /// miniupnpd with every protocol (true: UPnP-IGD only).
    Upnp(bool),
}

pub struct Router {
    pub ns: Netns,
    pub kind: Kind,
    pub wan_ip: String,
    pub wan_dev: String,
    /// 203.0.113.<base> is the LAN's network address.
    base: u8,
    hosts: u8,
    dir: PathBuf,
    pub miniupnpd: Option<Proc>,
    /// When miniupnpd was last started.
    pub started: Option<std::time::Instant>,
}

/// The hub's STUN server and the routers.
pub struct Lab {
    pub routers: Vec<Router>,
    _stun: Proc,
}

fn tools() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools")
}

impl Lab {
    pub fn new(mesh: &Mesh) -> Lab {
        mesh.hub.ip(&format!("addr add {STUN_ADDR}/24 dev br0"));
        let log = mesh.path().join("stun.log");
        let stun = mesh.hub.spawn(
            "python3",
            &[
                tools()
                    .join("stun-responder.py")
                    .to_str()
                    .expect("utf-8 path"),
                STUN_ADDR,
                &STUN_PORT.to_string(),
            ],
            &log,
        );
        let ready = wait_until(Duration::from_secs(10), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("READY"))
        });
        assert!(ready.is_some(), "STUN responder did not start");
        Lab {
            routers: Vec::new(),
            _stun: stun,
        }
    }

    /// A router of `kind` on the hub; returns its index.
    pub fn router(&mut self, mesh: &Mesh, kind: Kind) -> usize {
        let k = self.routers.len();
        assert!(k < 14);
        let ns = Netns::new(&format!("r{k}"));
        let wan_ip = format!("198.51.100.{}", 200 + k);
        let wan_dev = crate::mesh::bridge_port(&mesh.hub, &ns, &format!("{wan_ip}/24"));
        let base = 16 * (k as u8 + 1);
        ns.ip("link add lan0 type bridge");
        ns.ip(&format!("addr add 203.0.113.{}/28 dev lan0", base + 1));
        ns.ip("link set lan0 up");
        sh(&ns, "sysctl -qw net.ipv4.ip_forward=1");
        let random = if kind == Kind::Symmetric {
            " random"
        } else {
            ""
        };
        let w = &wan_dev;
        let rules = [
            "table inet filter {".to_string(),
            " chain input { type filter hook input priority filter; policy accept;".into(),
            format!("  iifname \"{w}\" ct state established,related accept"),
            format!("  iifname \"{w}\" drop"),
            " }".into(),
            " chain forward { type filter hook forward priority filter; policy drop;".into(),
            "  ct state established,related accept".into(),
            format!("  iifname \"lan0\" oifname \"{w}\" accept"),
            // The LAN is a switch (bridged frames come here with br_netfilter).
            "  iifname \"lan0\" oifname \"lan0\" accept".into(),
            format!("  iifname \"{w}\" jump miniupnpd"),
            " }".into(),
            " chain miniupnpd {\n }".into(),
            " chain prerouting { type nat hook prerouting priority dstnat; policy accept;".into(),
            format!("  iifname \"{w}\" jump prerouting_miniupnpd"),
            " }".into(),
            " chain postrouting { type nat hook postrouting priority srcnat; policy accept;".into(),
            "  jump postrouting_miniupnpd".into(),
            format!("  oifname \"{w}\" masquerade{random}"),
            " }".into(),
            " chain prerouting_miniupnpd {\n }".into(),
            " chain postrouting_miniupnpd {\n }".into(),
            "}\n".into(),
        ]
        .join("\n");
        let dir = mesh.path().join(format!("router{k}"));
        std::fs::create_dir_all(&dir).expect("router dir");
        std::fs::write(dir.join("rules.nft"), rules).expect("rules");
        sh(&ns, &format!("nft -f {}", dir.join("rules.nft").display()));
        let mut r = Router {
            ns,
            kind,
            wan_ip,
            wan_dev,
            base,
            hosts: 0,
            dir,
            miniupnpd: None,
            started: None,
        };
        if let Kind::Upnp(upnp_only) = kind {
            r.write_miniupnpd_conf(upnp_only);
            r.start_miniupnpd();
        }
        self.routers.push(r);
        k
    }

    /// A node registered with the mesh's registry, behind router `k`;
    /// returns its index in the mesh.
    pub fn node_behind(&mut self, mesh: &mut Mesh, k: usize) -> usize {
        let r = &mut self.routers[k];
        let host = r.base + 2 + r.hosts;
        r.hosts += 1;
        let ns = Netns::new(&format!("n{}", mesh.nodes.len()));
        let (inner, outer) = (unique("u"), unique("p"));
        let ok = Command::new("ip")
            .args([
                "link", "add", &inner, "netns", &ns.name, "type", "veth", "peer", "name", &outer,
                "netns", &r.ns.name,
            ])
            .status()
            .expect("ip link add");
        assert!(ok.success());
        r.ns.ip(&format!("link set {outer} master lan0"));
        r.ns.ip(&format!("link set {outer} up"));
        let ip = format!("203.0.113.{host}");
        ns.ip(&format!("addr add {ip}/28 dev {inner}"));
        ns.ip(&format!("link set {inner} up"));
        ns.ip(&format!("route add default via 203.0.113.{}", r.base + 1));
        let url = mesh.registry.url();
        mesh.push_node(ns, ip, inner, |_, _, dir| register_anonymous(&url, dir))
    }
}

fn sh(ns: &Netns, cmd: &str) -> String {
    let out = ns
        .command("sh")
        .args(["-c", cmd])
        .output()
        .expect("sh in namespace");
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Router {
    fn write_miniupnpd_conf(&self, upnp_only: bool) {
        let d = self.dir.display();
        let uuid = format!("8f9e1a2b-0000-4000-8000-{:012x}", 0x100 + self.base as u64);
        let conf = format!(
            "ext_ifname={wan}\nlistening_ip=lan0\nhttp_port=5000\nenable_upnp=yes\n\
enable_natpmp={pmp}\nipv6_disable=yes\nsecure_mode=yes\nsystem_uptime=no\nuuid={uuid}\n\
lease_file={d}/upnp.leases\nminissdpdsocket={d}/minissdpd.sock\nmin_lifetime=120\nmax_lifetime=86400\n\
upnp_table_name=filter\nupnp_nat_table_name=filter\nupnp_forward_chain=miniupnpd\n\
upnp_nat_chain=prerouting_miniupnpd\nupnp_nat_postrouting_chain=postrouting_miniupnpd\n\
ext_perform_stun=yes\next_stun_host={STUN_ADDR}\next_stun_port={STUN_PORT}\n\
allow 1024-65535 203.0.113.0/24 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n",
            wan = self.wan_dev,
            pmp = if upnp_only { "no" } else { "yes" },
        );
        std::fs::write(self.dir.join("miniupnpd.conf"), conf).expect("miniupnpd.conf");
    }

    /// Start miniupnpd and wait until it maps.
    pub fn start_miniupnpd(&mut self) {
        let log = self.dir.join("miniupnpd.log");
        let conf = self.dir.join("miniupnpd.conf");
        let pid = self.dir.join("miniupnpd.pid");
        let _ = std::fs::remove_file(&pid);
        self.started = Some(std::time::Instant::now());
        self.miniupnpd = Some(self.ns.spawn(
            "miniupnpd",
            &[
                "-f",
                conf.to_str().unwrap(),
                "-d",
                "-P",
                pid.to_str().unwrap(),
            ],
            &log,
        ));
        let up = wait_until(Duration::from_secs(15), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("HTTP listening"))
        });
        assert!(
            up.is_some(),
            "miniupnpd did not start:\n{}",
            self.miniupnpd_log()
        );
    }

    pub fn miniupnpd_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("miniupnpd.log")).unwrap_or_default()
    }

    /// What a reboot does to the gateway: miniupnpd restarts with its rules
    /// and its lease file gone (OpenWrt keeps both in RAM).
    pub fn reboot(&mut self) {
        if let Some(mut p) = self.miniupnpd.take() {
            p.terminate(Duration::from_secs(5));
        }
        sh(&self.ns, "nft flush chain inet filter prerouting_miniupnpd");
        sh(&self.ns, "nft flush chain inet filter miniupnpd");
        let _ = std::fs::remove_file(self.dir.join("upnp.leases"));
        assert!(self.forwardings().is_empty());
        self.start_miniupnpd();
    }

    /// The port forwardings miniupnpd installed (`dnat` rules).
    pub fn forwardings(&self) -> Vec<String> {
        sh(&self.ns, "nft list chain inet filter prerouting_miniupnpd")
            .lines()
            .filter(|l| l.contains("dnat"))
            .map(|l| l.trim().to_string())
            .collect()
    }
}
