//! A whole-network simulator: N complete nodes, each the same
//! `node_lite::node::Node` the daemon runs, in one process, in virtual
//! time, over a simulated underlay ([`underlay`]): latency and loss between
//! any two nodes, links cut silently, nodes killed and restarted, and a
//! registry (bootstrap peers) that can be down.
//!
//! Events (a datagram arriving, a node's timer, a registry answer) are
//! handled in time order; each node's [`Io`] calls are collected in an
//! [`Outbox`] and turned into events. The registry serves the network
//! config (which names node 0 as the registry's own node) and bootstrap
//! peers as re6st's does: a random node that the registry's node routes to.
//! Cryptography is real: Noise
//! handshakes, ChaCha20-Poly1305, RSA checks of every certificate (see
//! [`pki`] for the one shortcut, a key pair shared by all nodes).

pub mod pki;
pub mod underlay;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{Ipv6Addr, SocketAddr};

use node_lite::config::Config;
use node_lite::ip::Udp;
use node_lite::mesh::cache::PeerCache;
use node_lite::net::Ipv6Net;
use node_lite::node::registry::{Job, RegistryResult};
use node_lite::node::routing::KernelRoute;
use node_lite::node::{Io, Node, Start};
use node_lite::time::Instant;
use registry_client::state::Identity;

pub use pki::Pki;
use underlay::{mix, Underlay};

/// The wall clock at virtual time 0 (2027).
const UNIX_BASE: u64 = 1_800_000_000;
/// The registry answers after this long.
const REGISTRY_MS: u64 = 100;
/// The port of the probe packets the simulator sends between nodes.
pub const PROBE_PORT: u16 = 9;

/// What a node asked of the world during one call.
#[derive(Default)]
pub struct Outbox {
    sends: Vec<(SocketAddr, Vec<u8>)>,
    delivered: Vec<Vec<u8>>,
    jobs: Vec<Job>,
    files: Vec<(&'static str, Vec<u8>)>,
    routes: Vec<(Ipv6Net, Ipv6Net, Option<KernelRoute>)>,
}

impl Io for Outbox {
    fn send(&mut self, to: SocketAddr, bytes: &[u8]) {
        self.sends.push((to, bytes.to_vec()));
    }
    fn deliver(&mut self, packet: &[u8]) {
        self.delivered.push(packet.to_vec());
    }
    fn send_lan_babel(&mut self, _: u32, _: Ipv6Addr, _: &[u8]) {}
    fn send_beacon(&mut self, _: u32, _: &[u8]) {}
    fn set_route(&mut self, dst: Ipv6Net, src: Ipv6Net, route: Option<KernelRoute>) {
        self.routes.push((dst, src, route));
    }
    fn registry(&mut self, job: Job) {
        self.jobs.push(job);
    }
    fn save(&mut self, name: &'static str, bytes: &[u8], _: u32) {
        self.files.push((name, bytes.to_vec()));
    }
    fn to_registry(&mut self, _: u16, _: &[u8]) {}
}

struct SimNode {
    core: Option<Node>,
    id: Identity,
    addr: SocketAddr,
    /// The earliest timer event queued for it (later ones are stale).
    wake: u64,
    /// The peer cache it saved last (a restart starts from it).
    cache: Option<Vec<u8>>,
    /// The kernel routes it asked for (beyond the network's).
    kernel: HashMap<(Ipv6Net, Ipv6Net), KernelRoute>,
    sent_bytes: u64,
    sent_datagrams: u64,
}

enum Ev {
    Start(usize),
    Wake(usize),
    Datagram {
        to: usize,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    Registry(usize, Job),
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// Where a packet from one node to another went.
#[derive(Clone, Debug, PartialEq)]
pub enum Path {
    /// It arrived, through these nodes (source and destination included),
    /// with this one-way underlay latency in all.
    Reached { hops: Vec<usize>, latency_ms: f64 },
    /// It stopped after `hops` (the last is where it stopped), for `why`.
    Lost { hops: Vec<usize>, why: Lost },
}

/// Why a packet did not arrive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lost {
    /// The node it was at is dead.
    Dead,
    NoRoute,
    /// Its route's tunnel leads to no node.
    NoPeer,
    /// The next node is dead.
    NextDead(usize),
    /// The underlay link to the next node is cut.
    Cut(usize),
    /// The next node was passed already.
    Loop(usize),
    /// 64 hops and still going.
    TooLong,
}

pub struct Sim {
    /// Virtual time, ms.
    pub now: u64,
    pub underlay: Underlay,
    /// The registry answers.
    pub registry_up: bool,
    /// The network config the registry serves (none: it fails the
    /// request).
    pub network_config: Option<registry_client::netconfig::NetworkConfig>,
    /// The config every node starts with (tests may change it), and
    /// per-node exceptions.
    pub config: Config,
    pub configs: HashMap<usize, Config>,
    nodes: Vec<SimNode>,
    by_addr: HashMap<SocketAddr, usize>,
    by_overlay: HashMap<Ipv6Addr, usize>,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    rng: u64,
    out: Outbox,
    /// Probes that arrived: (from, to).
    pub arrived: Vec<(usize, usize)>,
    /// Events handled (a measure of the work done).
    pub events: u64,
    /// The nodes the registry's node routes to, as of a second.
    registry_view: (u64, Vec<usize>),
}

impl Sim {
    /// `n` nodes with certificates from `pki`, started at random times in
    /// the first `spread_ms`.
    pub fn new(pki: &Pki, n: usize, seed: u64, spread_ms: u64) -> Sim {
        let config = Config {
            registry: Some("http://registry.invalid/".into()),
            port: 326,
            ..Config::default()
        };
        let mut sim = Sim {
            now: 0,
            underlay: Underlay::new(n, seed, 0.1),
            registry_up: true,
            network_config: Some(pki.network_config(1, &[])),
            config,
            configs: HashMap::new(),
            nodes: Vec::with_capacity(n),
            by_addr: HashMap::new(),
            by_overlay: HashMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: mix(seed),
            out: Outbox::default(),
            arrived: Vec::new(),
            events: 0,
            registry_view: (u64::MAX, Vec::new()),
        };
        for i in 0..n {
            let id = pki.identity(i);
            // Underlay addresses from the documentation prefix.
            let ip = Ipv6Addr::from(0x2001_0db8_ffff_u128 << 80 | (i as u128 + 1));
            let addr = SocketAddr::new(ip.into(), 326);
            sim.by_addr.insert(addr, i);
            sim.by_overlay.insert(id.subnet.address(), i);
            sim.nodes.push(SimNode {
                core: None,
                id,
                addr,
                wake: u64::MAX,
                cache: None,
                kernel: HashMap::new(),
                sent_bytes: 0,
                sent_datagrams: 0,
            });
            let at = if spread_ms == 0 {
                0
            } else {
                sim.random() % spread_ms
            };
            sim.push(at, Ev::Start(i));
        }
        sim
    }

    fn random(&mut self) -> u64 {
        self.rng = mix(self.rng);
        self.rng
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            ev,
        }));
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn alive(&self, i: usize) -> bool {
        self.nodes[i].core.is_some()
    }

    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes[i].core.as_ref()
    }

    /// Node `i`'s overlay address.
    pub fn address(&self, i: usize) -> Ipv6Addr {
        self.nodes[i].id.subnet.address()
    }

    /// Underlay bytes and datagrams sent by all nodes so far.
    pub fn sent(&self) -> (u64, u64) {
        self.nodes
            .iter()
            .fold((0, 0), |(b, d), n| (b + n.sent_bytes, d + n.sent_datagrams))
    }

    fn start(&mut self, i: usize) {
        let n = &self.nodes[i];
        let cap = self.config.peer_cache as usize;
        let cache = n
            .cache
            .as_ref()
            .and_then(|b| PeerCache::decode(b, cap).ok())
            .unwrap_or_else(|| PeerCache::new(cap));
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&mix(self.rng ^ i as u64).to_le_bytes());
        seed[8..16].copy_from_slice(&(self.now ^ 0xa5a5).to_le_bytes());
        let start = Start {
            config: self.configs.get(&i).unwrap_or(&self.config).clone(),
            id: n.id.clone(),
            // As cached by `register`.
            netconf: self.network_config.clone(),
            cache,
            seqno: None,
            ipv4: false,
            ipv6: true,
            seed,
        };
        let core =
            Node::new(start, Instant::from_millis(self.now), self.unix()).expect("a node identity");
        self.nodes[i].core = Some(core);
        self.nodes[i].wake = u64::MAX;
        self.after(i);
    }

    /// The kernel routes node `i` asked for (beyond the network's route).
    pub fn kernel_routes(&self, i: usize) -> Vec<(Ipv6Net, Ipv6Net, KernelRoute)> {
        let mut v: Vec<_> = self.nodes[i]
            .kernel
            .iter()
            .map(|(&(d, s), &r)| (d, s, r))
            .collect();
        v.sort_by_key(|x| (x.0.to_string(), x.1.to_string()));
        v
    }

    /// Node `i` checks the network config now (as on SIGHUP).
    pub fn refresh(&mut self, i: usize) {
        if let Some(core) = self.nodes[i].core.as_mut() {
            core.refresh_network_config(Instant::from_millis(self.now));
            self.after(i);
        }
    }

    /// Kill node `i` (its state is lost, as when a router loses power).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].core = None;
        self.nodes[i].kernel.clear();
        self.nodes[i].wake = u64::MAX;
    }

    /// Start node `i` again now, from its saved peer cache.
    pub fn restart(&mut self, i: usize) {
        self.push(self.now, Ev::Start(i));
    }

    fn unix(&self) -> u64 {
        UNIX_BASE + self.now / 1000
    }

    /// Carry out what node `i` asked for, and queue its next timer.
    fn after(&mut self, i: usize) {
        let t = Instant::from_millis(self.now);
        let Some(core) = self.nodes[i].core.as_mut() else {
            return;
        };
        core.flush(t, &mut self.out);
        let wake = core.poll_timeout().as_millis().max(self.now + 1);
        let mut out = std::mem::take(&mut self.out);
        for (to, bytes) in out.sends.drain(..) {
            self.nodes[i].sent_bytes += bytes.len() as u64;
            self.nodes[i].sent_datagrams += 1;
            let Some(&j) = self.by_addr.get(&to) else {
                continue;
            };
            if self.underlay.is_cut(i, j) {
                continue;
            }
            let p = self.underlay.path(i, j);
            if p.loss > 0.0 && (self.random() % 1_000_000) as f64 / 1e6 < p.loss {
                continue;
            }
            let at = self.now + (p.latency_ms.round() as u64).max(1);
            let from = self.nodes[i].addr;
            self.push(at, Ev::Datagram { to: j, from, bytes });
        }
        for packet in out.delivered.drain(..) {
            if let Some(u) = Udp::parse(&packet).filter(|u| u.dst_port == PROBE_PORT) {
                if let Some(&from) = self.by_overlay.get(&u.src) {
                    self.arrived.push((from, i));
                }
            }
        }
        for (dst, src, route) in out.routes.drain(..) {
            let kernel = &mut self.nodes[i].kernel;
            match route {
                Some(r) => kernel.insert((dst, src), r),
                None => kernel.remove(&(dst, src)),
            };
        }
        for job in out.jobs.drain(..) {
            self.push(self.now + REGISTRY_MS, Ev::Registry(i, job));
        }
        for (name, bytes) in out.files.drain(..) {
            if name == node_lite::mesh::cache::FILE_NAME {
                self.nodes[i].cache = Some(bytes);
            }
        }
        self.out = out;
        if wake < self.nodes[i].wake {
            self.nodes[i].wake = wake;
            self.push(wake, Ev::Wake(i));
        }
    }

    /// The registry's answer to node `i`'s `job`.
    fn registry_answer(&mut self, i: usize, job: Job) -> RegistryResult {
        if !self.registry_up {
            return RegistryResult::Failed("registry", "connection refused (simulated)".into());
        }
        match job {
            Job::Bootstrap => {
                // re6st's registry: a random node its own node (node 0)
                // has a route to, or none (HTTP 204) when it routes to
                // nobody or is down. What node 0 routes to is found again
                // at most once a second (O(N) a time).
                if self.registry_view.0 != self.now / 1000 || self.registry_view.1.is_empty() {
                    let routed = (0..self.nodes.len())
                        .filter(|&j| self.alive(0) && self.alive(j))
                        .filter(|&j| j == 0 || matches!(self.path(0, j), Path::Reached { .. }))
                        .collect();
                    self.registry_view = (self.now / 1000, routed);
                }
                let pick = self.random() as usize;
                let routed = &self.registry_view.1;
                let k = pick % routed.len().max(1);
                let j = routed
                    .get(k)
                    .filter(|&&j| j != i)
                    .or_else(|| routed.get((k + 1) % routed.len().max(1)))
                    .copied()
                    .filter(|&j| j != i);
                if let Some(j) = j {
                    let p = self.nodes[j].id.subnet.node;
                    return RegistryResult::Bootstrap(Some((p, vec![self.nodes[j].addr])));
                }
                RegistryResult::Bootstrap(None)
            }
            Job::NetworkConfig => match &self.network_config {
                Some(c) => RegistryResult::NetworkConfig(Box::new(c.clone()), Vec::new()),
                None => RegistryResult::Failed("network config", "none (simulated)".into()),
            },
            Job::Renew | Job::RenewCa => RegistryResult::Failed("renewal", "not simulated".into()),
        }
    }

    /// Handle events up to virtual time `until` (ms).
    pub fn run_until(&mut self, until: u64) {
        while let Some(Reverse(q)) = self.queue.peek() {
            if q.at > until {
                break;
            }
            let Reverse(q) = self.queue.pop().expect("peeked");
            self.now = q.at;
            self.events += 1;
            let t = Instant::from_millis(self.now);
            let unix = self.unix();
            match q.ev {
                Ev::Start(i) => {
                    if !self.alive(i) {
                        self.start(i);
                    }
                }
                Ev::Wake(i) => {
                    if self.nodes[i].wake != q.at {
                        continue;
                    }
                    self.nodes[i].wake = u64::MAX;
                    if let Some(core) = self.nodes[i].core.as_mut() {
                        core.handle_timeout(t, unix, &mut self.out);
                        self.after(i);
                    }
                }
                Ev::Datagram { to, from, bytes } => {
                    if let Some(core) = self.nodes[to].core.as_mut() {
                        core.handle_datagram(t, from, &bytes, &mut self.out);
                        self.after(to);
                    }
                }
                Ev::Registry(i, job) => {
                    let r = self.registry_answer(i, job);
                    if let Some(core) = self.nodes[i].core.as_mut() {
                        core.handle_registry(t, job, r, &mut self.out);
                        self.after(i);
                    }
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Where a packet from `a` to `b` goes now, by each node's forwarding
    /// table (no packet is sent).
    pub fn path(&self, a: usize, b: usize) -> Path {
        let (src, dst) = (self.address(a), self.address(b));
        let mut hops = vec![a];
        let mut latency_ms = 0.0;
        let mut at = a;
        while at != b {
            let lost = |hops, why| Path::Lost { hops, why };
            let Some(core) = self.node(at) else {
                return lost(hops, Lost::Dead);
            };
            let Some(tid) = core.route(dst, src) else {
                return lost(hops, Lost::NoRoute);
            };
            let next = core
                .peer_addr(tid)
                .and_then(|addr| self.by_addr.get(&addr).copied());
            let next = match next {
                None => return lost(hops, Lost::NoPeer),
                Some(n) if !self.alive(n) => return lost(hops, Lost::NextDead(n)),
                Some(n) if hops.contains(&n) => return lost(hops, Lost::Loop(n)),
                Some(n) if self.underlay.is_cut(at, n) => return lost(hops, Lost::Cut(n)),
                Some(_) if hops.len() >= 64 => return lost(hops, Lost::TooLong),
                Some(n) => n,
            };
            latency_ms += self.underlay.path(at, next).latency_ms;
            hops.push(next);
            at = next;
        }
        Path::Reached { hops, latency_ms }
    }

    /// Why `a` does not reach `b`, for failure messages.
    pub fn explain(&self, a: usize, b: usize) -> String {
        match self.path(a, b) {
            Path::Reached { hops, .. } => format!("{hops:?}"),
            Path::Lost {
                hops,
                why: Lost::NoRoute,
            } => {
                let at = *hops.last().expect("the source");
                let (routes, nbs) = self
                    .node(at)
                    .expect("alive")
                    .table_sizes(Instant::from_millis(self.now));
                format!(
                    "{hops:?}: node {at} has no route ({routes} Babel routes, {nbs} neighbours)"
                )
            }
            Path::Lost { hops, why } => format!("{hops:?}: {why:?}"),
        }
    }

    /// Pairs of live nodes (or of all nodes, before any started): all of
    /// them, or `max` drawn at random.
    pub fn pairs(&mut self, max: usize) -> Vec<(usize, usize)> {
        let mut live: Vec<usize> = (0..self.len()).filter(|&i| self.alive(i)).collect();
        if live.is_empty() {
            live = (0..self.len()).collect();
        }
        let all = live.len() * live.len().saturating_sub(1);
        if all <= max {
            let mut v = Vec::with_capacity(all);
            for &a in &live {
                for &b in &live {
                    if a != b {
                        v.push((a, b));
                    }
                }
            }
            return v;
        }
        (0..max)
            .map(|_| loop {
                let a = live[(self.random() % live.len() as u64) as usize];
                let b = live[(self.random() % live.len() as u64) as usize];
                if a != b {
                    break (a, b);
                }
            })
            .collect()
    }

    /// Of `pairs`, how many reach each other by the forwarding tables.
    pub fn reached(&self, pairs: &[(usize, usize)]) -> usize {
        pairs
            .iter()
            .filter(|&&(a, b)| matches!(self.path(a, b), Path::Reached { .. }))
            .count()
    }

    /// Send a real packet (UDP to [`PROBE_PORT`]) from node `a` to node
    /// `b`, as if an application on `a` sent it; arrivals are counted in
    /// [`Sim::arrived`] as the simulation runs.
    pub fn probe(&mut self, a: usize, b: usize) {
        let u = Udp {
            src: self.address(a),
            dst: self.address(b),
            src_port: PROBE_PORT,
            dst_port: PROBE_PORT,
            hop_limit: 64,
            payload: b"probe",
        };
        let mut packet = [0u8; 128];
        let n = u.write(&mut packet).expect("room");
        let t = Instant::from_millis(self.now);
        if let Some(core) = self.nodes[a].core.as_mut() {
            core.handle_kernel_packet(t, &packet[..n], &mut self.out);
            self.after(a);
        }
    }

    /// Run until every pair in `pairs` reaches the other (checked every
    /// `step_ms`), at most until `deadline`: the time it happened.
    pub fn run_until_reached(
        &mut self,
        pairs: &[(usize, usize)],
        step_ms: u64,
        deadline: u64,
    ) -> Option<u64> {
        loop {
            if self.reached(pairs) == pairs.len() {
                return Some(self.now);
            }
            if self.now >= deadline {
                return None;
            }
            let next = (self.now + step_ms).min(deadline);
            self.run_until(next);
        }
    }
}

/// Resident memory of this process, bytes.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}
