//! A whole re6st network on this machine: the real registry, then N nodes,
//! each registered with it and running in its own network namespace, all
//! joined by one IPv4 bridge (the "underlay", 198.51.100.0/24) in a hub
//! namespace. Everything goes away on drop, also when a test panics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::forward::Forward;
use crate::netns::{Netns, Proc};
use crate::registry::{identity, node_bin, register_anonymous, Options, Registry, TempDir};

/// One node: its namespace, state and process.
pub struct Node {
    pub ns: Netns,
    pub dir: PathBuf,
    pub run_dir: PathBuf,
    /// Underlay IPv4 address.
    pub ip: String,
    /// Overlay address (`<prefix>::1`) and prefix.
    pub address: String,
    pub prefix: String,
    pub proc: Option<Proc>,
    pub log: PathBuf,
    /// Underlay veth inside the node's namespace.
    pub dev: String,
    /// Extra `-o NAME=VALUE` options of `re6st-lite run`.
    pub options: Vec<String>,
    /// Run with another wall clock than ours (libfaketime).
    pub clock: Option<Clock>,
    /// What runs the node instead of the tested binary: a program and its
    /// arguments, the node's own arguments after them (an installed binary,
    /// `setpriv ... /path/re6st-lite`). Not with `clock`.
    pub launcher: Vec<String>,
    /// `run -c FILE` (the `-o` options still override it).
    pub config: Option<PathBuf>,
}

/// A node's wall clock, through libfaketime; the monotonic clock stays real.
#[derive(Clone, Debug)]
pub enum Clock {
    /// This far from ours (`+340d`).
    Offset(String),
    /// The offset written in this file, re-read every second: a test steps
    /// the clock by writing it (`-9000d`, then `+0`), as NTP would.
    File(PathBuf),
}

/// A host on a LAN behind a node: its own namespace joined to the node's
/// by a veth, with IPv4 only (192.0.2.2/24, the node's end 192.0.2.1/24)
/// until the node gives it IPv6.
pub struct LanHost {
    pub ns: Netns,
    /// The veth end in the host's namespace.
    pub dev: String,
    /// The other end, in the node's namespace (its `lan` option).
    pub node_dev: String,
}

impl LanHost {
    /// Global IPv6 addresses of the host's LAN interface, with their
    /// flags (`2001:db8:42:1:...:1/64 ... dynamic mngtmpaddr deprecated`).
    pub fn addresses(&self) -> Vec<String> {
        self.ns
            .ip(&format!("-6 -o addr show dev {} scope global", self.dev))
            .lines()
            .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
            .collect()
    }

    /// The host's autoconfigured address in `prefix` (CIDR), if any, that
    /// is usable: neither tentative (duplicate address detection running)
    /// nor deprecated.
    pub fn slaac_address(&self, prefix: &str) -> Option<String> {
        let net: node_lite::net::Ipv6Net = prefix.parse().ok()?;
        self.addresses().into_iter().find_map(|a| {
            let addr: std::net::Ipv6Addr = a.split('/').next()?.parse().ok()?;
            (net.contains(addr) && !a.contains("deprecated") && !a.contains("tentative"))
                .then(|| addr.to_string())
        })
    }

    /// `ip -6 route` of the host.
    pub fn routes(&self) -> String {
        self.ns.ip("-6 route show")
    }
}

pub struct Mesh {
    pub nodes: Vec<Node>,
    pub registry: Registry,
    pub hub: Netns,
    pub tmp: TempDir,
    /// LAN hosts ([`Mesh::add_lan_host`]).
    pub hosts: Vec<LanHost>,
}

impl Mesh {
    /// Register `n` nodes with a registry started with `opts`, wire them
    /// to the bridge and start them; node i > 0 knows the addresses of
    /// node 0 and node i - 1.
    pub fn start(n: usize, opts: Options) -> Mesh {
        let mut m = Mesh::build(n, opts);
        m.spawn_all();
        m
    }

    /// [`Mesh::start`] without starting the nodes: set their
    /// [`Node::options`] and add LAN hosts, then [`Mesh::spawn_all`].
    pub fn build(n: usize, opts: Options) -> Mesh {
        assert!(n < 250);
        let registry = Registry::start(opts);
        let tmp = TempDir::new("mesh");
        let hub = Netns::new("hub");
        hub.ip("link add br0 type bridge");
        hub.ip("link set br0 up");
        let mut m = Mesh {
            nodes: Vec::new(),
            registry,
            hub,
            tmp,
            hosts: Vec::new(),
        };
        let url = m.registry.url();
        for _ in 0..n {
            m.add_node(&url);
        }
        m
    }

    /// Register one more node with the registry at `url` (possibly another
    /// network's) and wire it to the bridge; returns its index.
    pub fn add_node(&mut self, url: &str) -> usize {
        let ns = Netns::new(&format!("n{}", self.nodes.len()));
        self.wire_node(ns, |_, _, dir| register_anonymous(url, dir))
    }

    /// One more node wired to the bridge but not registered (its state
    /// directory is empty); returns its index.
    pub fn add_node_unregistered(&mut self) -> usize {
        let ns = Netns::new(&format!("n{}", self.nodes.len()));
        self.wire_node(ns, |_, _, _| {})
    }

    /// Wire namespace `ns` to the bridge (node i at 198.51.100.<i + 1>),
    /// then `register` the node into its state directory, from the
    /// namespace if it likes; returns its index.
    pub fn wire_node(
        &mut self,
        ns: Netns,
        register: impl FnOnce(&Registry, &Netns, &Path),
    ) -> usize {
        let ip = format!("198.51.100.{}", self.nodes.len() + 1);
        let dev = bridge_port(&self.hub, &ns, &format!("{ip}/24"));
        self.push_node(ns, ip, dev, register)
    }

    /// Add namespace `ns`, already wired (underlay address `ip` on `dev`),
    /// as the next node; `register` it as [`Mesh::wire_node`] does.
    pub fn push_node(
        &mut self,
        ns: Netns,
        ip: String,
        dev: String,
        register: impl FnOnce(&Registry, &Netns, &Path),
    ) -> usize {
        let i = self.nodes.len();
        let dir = self.tmp.sub(&format!("n{i}"));
        register(&self.registry, &ns, &dir);
        // A node left unregistered (it registers later) has no address yet.
        let (address, prefix) = if dir.join("cert.crt").is_file() {
            let id = identity(&dir);
            (id.subnet.address().to_string(), id.subnet.to_string())
        } else {
            Default::default()
        };
        self.nodes.push(Node {
            ns,
            run_dir: self.tmp.sub(&format!("run{i}")),
            dir,
            ip,
            address,
            prefix,
            proc: None,
            log: self.tmp.path().join(format!("n{i}.log")),
            dev,
            options: Vec::new(),
            clock: None,
            launcher: Vec::new(),
            config: None,
        });
        i
    }

    /// Start every node, node i > 0 with the addresses of node 0 and
    /// node i - 1.
    pub fn spawn_all(&mut self) {
        for i in 0..self.nodes.len() {
            // Node 0 and the previous node: one node alone could not take
            // everyone (max_clients), as on a real network.
            let mut peers: Vec<String> = [0, i.saturating_sub(1)]
                .iter()
                .filter(|&&j| j < i)
                .map(|&j| format!("{}:1194", self.nodes[j].ip))
                .collect();
            peers.dedup();
            self.spawn(i, &peers);
        }
    }

    /// A LAN host behind node `i` (before it starts): the node gets the
    /// option `lan=<its end of the veth>`. Returns the host's index in
    /// [`Mesh::hosts`].
    pub fn add_lan_host(&mut self, i: usize) -> usize {
        let ns = Netns::new(&format!("h{i}"));
        let (node_dev, dev) =
            crate::netns::veth(&self.nodes[i].ns, "192.0.2.1/24", &ns, "192.0.2.2/24");
        self.nodes[i].options.push(format!("lan={node_dev}"));
        self.hosts.push(LanHost { ns, dev, node_dev });
        self.hosts.len() - 1
    }

    /// Start node `i` with these bootstrap peers.
    pub fn spawn(&mut self, i: usize, peers: &[String]) {
        let n = &mut self.nodes[i];
        let state = format!("state_dir={}", n.dir.display());
        let run = format!("run_dir={}", n.run_dir.display());
        let mut args = vec!["--log-level".to_string(), "debug".into(), "run".into()];
        if let Some(c) = &n.config {
            args.extend(["-c".into(), c.display().to_string()]);
        }
        args.extend(["-o".into(), state, "-o".into(), run]);
        for p in peers {
            args.push("-o".into());
            args.push(format!("peer={p}"));
        }
        for o in &n.options {
            args.push("-o".into());
            args.push(o.clone());
        }
        assert!(
            n.launcher.is_empty() || n.clock.is_none(),
            "launcher or clock, not both"
        );
        let bin = node_bin().to_string_lossy().into_owned();
        let (program, args) = match &n.clock {
            // The monotonic clock stays real: only dates move.
            // `env` execs the node itself, so signals reach it (the
            // `faketime` wrapper would stand in between).
            Some(clock) => {
                let mut a = vec![
                    format!("LD_PRELOAD={}", crate::registry::libfaketime()),
                    "FAKETIME_DONT_FAKE_MONOTONIC=1".to_string(),
                ];
                match clock {
                    Clock::Offset(o) => a.push(format!("FAKETIME={o}")),
                    Clock::File(f) => a.extend([
                        format!("FAKETIME_TIMESTAMP_FILE={}", f.display()),
                        "FAKETIME_CACHE_DURATION=1".to_string(),
                    ]),
                }
                a.push(bin);
                a.extend(args);
                ("env".to_string(), a)
            }
            None => match n.launcher.split_first() {
                Some((program, first)) => (program.clone(), [first, &args[..]].concat()),
                None => (bin, args),
            },
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        n.proc = Some(n.ns.spawn(&program, &args, &n.log));
    }

    /// SIGKILL node `i`: no goodbye to its peers.
    pub fn kill(&mut self, i: usize) {
        if let Some(p) = self.nodes[i].proc.take() {
            drop(p); // Proc's drop kills (SIGKILL) and reaps
        }
    }

    pub fn ping(&self, from: usize, to: usize) -> bool {
        self.nodes[from].ns.ping6(&self.nodes[to].address)
    }

    /// Every pair among `alive` pings; stops at the first that does not (a
    /// failed ping costs a second).
    pub fn all_ping(&self, alive: &[usize]) -> bool {
        alive
            .iter()
            .all(|&a| alive.iter().all(|&b| a == b || self.ping(a, b)))
    }

    /// Pairs (from, to) among `alive` that do not ping.
    pub fn unreachable_pairs(&self, alive: &[usize]) -> Vec<(usize, usize)> {
        let mut bad = Vec::new();
        for &a in alive {
            for &b in alive {
                if a != b && !self.ping(a, b) {
                    bad.push((a, b));
                }
            }
        }
        bad
    }

    /// `re6st-lite status --json` of node `i` (empty if it does not answer).
    pub fn status_json(&self, i: usize) -> String {
        let run = format!("run_dir={}", self.nodes[i].run_dir.display());
        let out = Command::new(node_bin())
            .args(["status", "--json", "-o", &run])
            .output()
            .expect("re6st-lite status");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn status_text(&self, i: usize) -> String {
        let run = format!("run_dir={}", self.nodes[i].run_dir.display());
        let out = Command::new(node_bin())
            .args(["status", "-o", &run])
            .output()
            .expect("re6st-lite status");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The number right after `key` (`"network_config_version":`) in node
    /// `i`'s `status --json`, if there is one.
    pub fn status_number(&self, i: usize, key: &str) -> Option<u64> {
        let s = self.status_json(i);
        let v = &s[s.find(key)? + key.len()..];
        v[..v.find(|c: char| !c.is_ascii_digit())?].parse().ok()
    }

    /// SIGHUP to node `i`: it re-checks the network config now.
    pub fn sighup(&self, i: usize) {
        let pid = self.nodes[i].proc.as_ref().expect("node running").pid();
        let ok = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(ok.success(), "SIGHUP to node {i}");
    }

    /// Make the registry reachable from every node at its own URL and give
    /// the nodes `registry=<url>`; before [`Mesh::spawn_all`]. Keep the
    /// forwarders in a variable declared after the mesh, so that they go
    /// first, also on panic.
    pub fn registry_in_every_node(&mut self) -> Vec<Forward> {
        let url = self.registry.url();
        let registry = SocketAddr::from(([127, 0, 0, 1], self.registry.port));
        self.nodes
            .iter_mut()
            .map(|n| {
                n.options.push(format!("registry={url}"));
                Forward::start(&n.ns, registry, registry)
            })
            .collect()
    }

    /// Tunnels of node `i` that are up, from its status.
    pub fn tunnels_up(&self, i: usize) -> usize {
        self.status_json(i).matches(r#""state":"up""#).count()
    }

    /// Node `from` pinging node `to` every `interval` seconds for `secs`
    /// seconds, in the background.
    pub fn pinger(&self, from: usize, to: usize, interval: f64, secs: u64) -> Pinger {
        let child = self.nodes[from]
            .ns
            .command("ping")
            .args([
                "-6",
                "-n",
                "-q",
                "-i",
                &interval.to_string(),
                "-w",
                &secs.to_string(),
            ])
            .arg(&self.nodes[to].address)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("ping");
        Pinger(child)
    }

    /// CPU time node `i`'s process has used (user + system), in clock
    /// ticks (100 per second).
    pub fn cpu_ticks(&self, i: usize) -> u64 {
        let Some(pid) = self.nodes[i].proc.as_ref().map(Proc::pid) else {
            return 0;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<&str> = after.split_whitespace().collect();
        let field = |k: usize| f.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        field(11) + field(12)
    }

    /// Resident memory of node `i`'s process, in KiB.
    pub fn rss_kib(&self, i: usize) -> Option<u64> {
        let pid = self.nodes[i].proc.as_ref()?.pid();
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Bytes node `i` sent on its underlay link so far.
    pub fn underlay_tx_bytes(&self, i: usize) -> u64 {
        let n = &self.nodes[i];
        let out = n.ns.output(
            "cat",
            &[&format!("/sys/class/net/{}/statistics/tx_bytes", n.dev)],
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0)
    }

    /// Every node's log, for failure messages (the last lines of each).
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let text = std::fs::read_to_string(&n.log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            s += &format!(
                "--- node {i} ({}, {})\n{}\n",
                n.prefix,
                n.ip,
                tail.join("\n")
            );
        }
        s
    }

    pub fn log_of(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }
}

/// A veth from `ns` (given `addr`) to the hub's bridge; returns the name
/// of the end inside `ns`.
pub fn bridge_port(hub: &Netns, ns: &Netns, addr: &str) -> String {
    let (inner, outer) = (crate::netns::unique("u"), crate::netns::unique("p"));
    let ok = Command::new("ip")
        .args([
            "link", "add", &inner, "netns", &ns.name, "type", "veth", "peer", "name", &outer,
            "netns", &hub.name,
        ])
        .status()
        .expect("ip link add");
    assert!(ok.success(), "veth for {}", ns.name);
    hub.ip(&format!("link set {outer} master br0"));
    hub.ip(&format!("link set {outer} up"));
    ns.ip(&format!("addr add {addr} dev {inner}"));
    ns.ip(&format!("link set {inner} up"));
    inner
}

/// A ping running in the background ([`Mesh::pinger`]).
pub struct Pinger(std::process::Child);

impl Pinger {
    /// Wait for its end: the loss in percent, and its summary line.
    pub fn loss(self) -> (f64, String) {
        let out = self.0.wait_with_output().expect("ping");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text
            .lines()
            .find(|l| l.contains("packet loss"))
            .unwrap_or("")
            .to_string();
        let loss = line
            .split(',')
            .find(|f| f.contains("packet loss"))
            .and_then(|f| f.trim().split('%').next()?.parse().ok())
            .unwrap_or(100.0);
        (loss, line)
    }
}

/// In a node's `status --json`: the tunnel its installed route to `prefix`
/// (CIDR, from `::/0`) goes through, and that tunnel's peer (CIDR).
pub fn route_via(json: &str, prefix: &str) -> Option<(u32, String)> {
    let key = format!("{{\"prefix\":\"{prefix}\",\"from\":\"::/0\"");
    let route = &json[json.find(&key)?..];
    let t = &route[route.find("\"tunnel\":")? + 9..];
    let id: u32 = t[..t.find(|c: char| !c.is_ascii_digit())?].parse().ok()?;
    let tunnel = &json[json.find(&format!("{{\"id\":{id},\"peer\":\""))?..];
    let peer = &tunnel[tunnel.find("\"peer\":\"")? + 8..];
    Some((id, peer[..peer.find('"')?].to_string()))
}
