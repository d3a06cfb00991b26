//! The tunnel manager: which peers the node keeps tunnels to, as re6st's
//! `TunnelManager` decides it (reference §3.4), without any I/O.
//!
//! The driver tells it what happens to tunnels and, every tick, which node
//! prefixes Babel routes and through which tunnel; it answers with
//! [`Action`]s: open a tunnel, ask a node for its addresses, drain a tunnel
//! (raise its Babel cost so traffic moves away) and close it, ask the
//! registry for a bootstrap peer.
//!
//! Policy, as re6st:
//! - keep `client_count` tunnels we opened; at most 2 while we are really
//!   unreachable: nobody ever connected to us, we hold no port mapping and
//!   no punched tunnel ever came up (re6st: nobody connected);
//! - every `tunnel_refresh`, retire the client tunnel through which Babel
//!   routes the fewest nodes: drain it, close it once nothing is routed
//!   through it (or after a timeout), and open a new one;
//! - new peers are picked at random among routed nodes that are not yet
//!   neighbours; when routing knows nobody, from the peer cache, then the
//!   registry, then the configured peers;
//! - a client and a server tunnel to the same node: the node with the lower
//!   prefix closes its client side, so both ends agree;
//! - hole punching: a tunnel opened because a mutual peer introduced us
//!   ([`Manager::punch_plan`]) counts as the side that asked counts it;
//!   the first tunnel up to a node ends the other attempts to it.

use std::collections::HashMap;
use std::net::SocketAddr;

use registry_client::Prefix;

use super::cache::{Peer, PeerCache};
use crate::rng::XorShift;
use crate::time::Instant;
use crate::tunnel::TunnelId;

/// The network's tunnel parameters (from the registry's network config).
#[derive(Clone, Debug)]
pub struct Policy {
    pub client_count: usize,
    /// Milliseconds between tunnel refreshes.
    pub tunnel_refresh_ms: u64,
    /// Longest a drained tunnel waits for its routes to move (re6st: 2 × 4 × hello).
    pub drain_timeout_ms: u64,
    /// Shortest wait between bootstrap requests (re6st's `timeout`: 4 × hello).
    pub bootstrap_ms: u64,
    /// The node next to the registry (network config `registry_prefix`): while
    /// it is routed, the node is connected and never asks for a bootstrap peer.
    pub registry: Option<Prefix>,
}

impl Policy {
    pub fn new(client_count: usize, tunnel_refresh_s: u64, hello_s: u64) -> Self {
        Policy {
            client_count,
            tunnel_refresh_ms: tunnel_refresh_s.max(1) * 1000,
            drain_timeout_ms: 8 * hello_s.max(1) * 1000,
            bootstrap_ms: 4 * hello_s.max(1) * 1000,
            registry: None,
        }
    }
}

/// How often the policy runs (re6st's main-loop tick).
pub const TICK_MS: u64 = 5000;
/// An address that failed is not tried again for this long.
const RETRY_MS: u64 = 60_000;
/// Address requests to one node at most this often.
const REQUEST_MS: u64 = 30_000;
/// Bootstrap requests that found nobody double the wait, up to this.
const BOOTSTRAP_MAX_MS: u64 = 3_600_000;
/// Client tunnels while we are unreachable (re6st: behind NAT).
const NAT_CLIENT_COUNT: usize = 2;
/// Tunnels being punched at once on others' introductions.
const MAX_PUNCHES: usize = 4;
/// Addresses tried for one introduction.
const PUNCH_ADDRS: usize = 3;
/// A tunnel still not up after this is given up (the peer may be full:
/// `max_clients` refusals are silent), so another peer gets the slot.
const CONNECT_TIMEOUT_MS: u64 = 15_000;

/// Who opened a tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Client,
    Server,
}

/// Where a tunnel stands, for the status report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Connecting,
    Up,
    /// Retiring: traffic moves away, then it is closed.
    Draining,
    /// Close requested, waiting for the endpoint to confirm.
    Closing,
}

#[derive(Clone, Debug)]
pub struct Tunnel {
    pub dir: Dir,
    pub addr: SocketAddr,
    /// The peer's prefix: from its certificate once up, or the one we
    /// expect while connecting (None for a configured bootstrap address).
    pub peer: Option<Prefix>,
    pub state: State,
    /// Since when it is in `state`.
    pub since: Instant,
    /// When it came up.
    pub up_since: Option<Instant>,
    /// Opened on an introduction (hole punching).
    pub punched: bool,
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open a tunnel, then report it with [`Manager::connecting`].
    Connect {
        addr: SocketAddr,
        prefix: Option<Prefix>,
    },
    /// Ask this node (over the overlay) for its underlay addresses.
    RequestAddress(Prefix),
    /// Make the tunnel expensive in Babel so routes move away.
    Drain(TunnelId),
    /// Close the tunnel (authenticated close exchange).
    Close(TunnelId),
    /// Ask the registry for a bootstrap peer.
    Bootstrap,
}

/// The manager's state.
pub struct Manager {
    policy: Policy,
    own: Prefix,
    bootstrap: Vec<SocketAddr>,
    tunnels: HashMap<TunnelId, Tunnel>,
    /// Someone connected to us at least once: we are reachable.
    served: bool,
    /// We hold a port mapping: others can connect.
    mapped: bool,
    /// A punched tunnel came up: others can reach us by punching.
    punch_worked: bool,
    next_tick: Instant,
    next_refresh: Instant,
    failed: HashMap<SocketAddr, Instant>,
    requested: HashMap<Prefix, Instant>,
    next_bootstrap: Instant,
    /// Bootstrap requests in a row that brought no peer.
    fruitless_bootstraps: u32,
    /// The peer the registry gave last, tried before routed nodes.
    bootstrap_peer: Option<Prefix>,
    rng: XorShift,
}

impl Manager {
    pub fn new(
        policy: Policy,
        own: Prefix,
        bootstrap: Vec<SocketAddr>,
        now: Instant,
        seed: u64,
    ) -> Self {
        let next_refresh = now.add_millis(policy.tunnel_refresh_ms);
        Manager {
            policy,
            own,
            bootstrap,
            tunnels: HashMap::new(),
            served: false,
            mapped: false,
            punch_worked: false,
            next_tick: now,
            next_refresh,
            failed: HashMap::new(),
            requested: HashMap::new(),
            next_bootstrap: now,
            fruitless_bootstraps: 0,
            bootstrap_peer: None,
            rng: XorShift::new(seed),
        }
    }

    fn random(&mut self) -> u64 {
        self.rng.next_u64()
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.random() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }

    pub fn set_policy(&mut self, policy: Policy) {
        self.policy = policy;
    }

    /// What the last bootstrap request brought: a peer (its address is in
    /// the cache), or nobody (no answer, an error, or no node next to the
    /// registry).
    pub fn bootstrapped(&mut self, peer: Option<Prefix>) {
        self.fruitless_bootstraps = if peer.is_some() {
            0
        } else {
            self.fruitless_bootstraps.saturating_add(1)
        };
        self.bootstrap_peer = peer;
    }

    /// re6st's "No route to registry": the registry's node is neither us, nor
    /// routed, nor a tunnel peer (an unknown one never is).
    fn registry_unreachable(&self, routes: &[(Prefix, Option<TunnelId>)]) -> bool {
        self.policy.registry.is_none_or(|r| {
            r != self.own
                && !routes.iter().any(|(p, _)| *p == r)
                && !self.tunnels.values().any(|t| t.peer == Some(r))
        })
    }

    /// The registry's node, from the network config.
    pub fn registry_node(&self) -> Option<Prefix> {
        self.policy.registry
    }

    pub fn tunnels(&self) -> impl Iterator<Item = (TunnelId, &Tunnel)> {
        self.tunnels.iter().map(|(id, t)| (*id, t))
    }

    pub fn tunnel(&self, id: TunnelId) -> Option<&Tunnel> {
        self.tunnels.get(&id)
    }

    /// Whether any node ever connected to us.
    pub fn reachable(&self) -> bool {
        self.served
    }

    /// Whether we hold a port mapping (the node's mapper says).
    pub fn set_mapped(&mut self, mapped: bool) {
        self.mapped = mapped;
    }

    /// Really unreachable: only then the client tunnels are capped.
    fn unreachable(&self) -> bool {
        !(self.served || self.mapped || self.punch_worked)
    }

    /// When [`Self::tick`] is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_tick
    }

    /// Run the policy now rather than at the next tick (a tunnel went down,
    /// an address arrived).
    pub fn wake(&mut self, now: Instant) {
        self.next_tick = self.next_tick.min(now);
    }

    /// The driver opened tunnel `id` as asked by [`Action::Connect`].
    pub fn connecting(
        &mut self,
        now: Instant,
        id: TunnelId,
        addr: SocketAddr,
        prefix: Option<Prefix>,
    ) {
        self.tunnels.insert(
            id,
            Tunnel {
                dir: Dir::Client,
                addr,
                peer: prefix,
                state: State::Connecting,
                since: now,
                up_since: None,
                punched: false,
            },
        );
    }

    /// A mutual peer introduced `node` at `addrs`: where to send at once
    /// (each then reported with [`Self::punching`]) and as which side.
    /// We punch when we are connecting to it ourselves, or when we are
    /// `blocked` (behind a NAT, unmapped): a reachable node is connected to
    /// directly and needs no punch.
    pub fn punch_plan(
        &self,
        node: Prefix,
        addrs: &[SocketAddr],
        blocked: bool,
    ) -> (Vec<SocketAddr>, Dir) {
        let mut out = Vec::new();
        let to_node = || self.tunnels.values().filter(|t| t.peer == Some(node));
        if node == self.own || to_node().any(|t| t.state != State::Connecting) {
            return (out, Dir::Client);
        }
        let asked = to_node().any(|t| t.dir == Dir::Client);
        let punching = self
            .tunnels
            .values()
            .filter(|t| t.punched && t.state == State::Connecting && t.dir == Dir::Server)
            .count();
        if !asked && (!blocked || punching >= MAX_PUNCHES) {
            return (out, Dir::Server);
        }
        for a in addrs {
            if out.len() < PUNCH_ADDRS
                && !out.contains(a)
                && !self.tunnels.values().any(|t| t.addr == *a)
            {
                out.push(*a);
            }
        }
        (out, if asked { Dir::Client } else { Dir::Server })
    }

    /// The driver opened tunnel `id` to punch through to `node`.
    pub fn punching(
        &mut self,
        now: Instant,
        id: TunnelId,
        addr: SocketAddr,
        node: Prefix,
        dir: Dir,
    ) {
        self.tunnels.insert(
            id,
            Tunnel {
                dir,
                addr,
                peer: Some(node),
                state: State::Connecting,
                since: now,
                up_since: None,
                punched: true,
            },
        );
    }

    /// Which side tunnel `id` counts as, if we opened it: a punched
    /// tunnel counts as the side that asked for it, whoever initiated.
    pub fn dir(&self, id: TunnelId) -> Option<Dir> {
        self.tunnels.get(&id).map(|t| t.dir)
    }

    /// Tunnel `id` authenticated `peer` (the driver records a client
    /// tunnel's address in the peer cache). Returns the tunnels to close:
    /// the other attempts to the same node still connecting (forgotten
    /// here, so their end is no failure), and a duplicate, ours if we
    /// opened one and have the lower prefix.
    pub fn established(
        &mut self,
        now: Instant,
        id: TunnelId,
        dir: Dir,
        peer: Prefix,
        addr: SocketAddr,
    ) -> Vec<TunnelId> {
        let punched = self.tunnels.get(&id).is_some_and(|t| t.punched);
        if punched {
            self.punch_worked = true;
        } else if dir == Dir::Server {
            self.served = true;
        }
        if dir == Dir::Client {
            self.failed.remove(&addr);
        }
        self.tunnels.insert(
            id,
            Tunnel {
                dir,
                addr,
                peer: Some(peer),
                state: State::Up,
                since: now,
                up_since: Some(now),
                punched,
            },
        );
        let mut close: Vec<TunnelId> = self
            .tunnels
            .iter()
            .filter(|(i, t)| **i != id && t.peer == Some(peer) && t.state == State::Connecting)
            .map(|(i, _)| *i)
            .collect();
        for i in &close {
            self.tunnels.remove(i);
        }
        let other = self.tunnels.iter().find(|(i, t)| {
            **i != id && t.peer == Some(peer) && t.state == State::Up && t.dir != dir
        });
        if let Some((&other, _)) = other {
            if prefix_order(self.own) < prefix_order(peer) {
                let client = if dir == Dir::Client { id } else { other };
                self.close(now, client);
                close.push(client);
            }
        }
        close
    }

    fn close(&mut self, now: Instant, id: TunnelId) {
        if let Some(t) = self.tunnels.get_mut(&id) {
            t.state = State::Closing;
            t.since = now;
        }
    }

    /// Tunnel `id` is gone.
    pub fn closed(&mut self, now: Instant, id: TunnelId) {
        if self.tunnels.remove(&id).is_some() {
            self.wake(now);
        }
    }

    /// Our attempt through tunnel `id` failed: try that address last.
    pub fn connect_failed(&mut self, now: Instant, id: TunnelId, cache: &mut PeerCache) {
        if let Some(t) = self.tunnels.remove(&id) {
            self.failed.insert(t.addr, now);
            // A punch is an extra try: the node's addresses may be fine.
            if let Some(p) = t.peer.filter(|_| !t.punched) {
                cache.failed(p);
            }
            self.wake(now);
        }
    }

    /// A node answered our address request: connect if we still need to.
    pub fn learned(&mut self, now: Instant, prefix: Prefix) {
        // The request stays on record: if the address it brought fails,
        // the node is asked again only REQUEST_MS later, not at once in a
        // loop as fast as the answers come (found by the simulator).
        if self.requested.contains_key(&prefix) {
            self.wake(now);
        }
    }

    /// Run the policy. `routes` lists every node prefix Babel routes, with
    /// the tunnel it goes through (None: another link, such as a LAN).
    pub fn tick(
        &mut self,
        now: Instant,
        routes: &[(Prefix, Option<TunnelId>)],
        cache: &PeerCache,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if now < self.next_tick {
            return out;
        }
        self.next_tick = now.add_millis(TICK_MS);
        self.failed.retain(|_, at| now.millis_since(*at) < RETRY_MS);
        self.requested
            .retain(|_, at| now.millis_since(*at) < REQUEST_MS);
        let via = |id: TunnelId| routes.iter().filter(|(_, t)| *t == Some(id)).count();

        // Drained tunnels close once nothing is routed through them.
        let drained: Vec<TunnelId> = self
            .tunnels
            .iter()
            .filter(|(id, t)| {
                t.state == State::Draining
                    && (via(**id) == 0 || now.millis_since(t.since) >= self.policy.drain_timeout_ms)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in drained {
            self.close(now, id);
            out.push(Action::Close(id));
        }
        let stuck: Vec<TunnelId> = self
            .tunnels
            .iter()
            .filter(|(_, t)| {
                t.state == State::Connecting && now.millis_since(t.since) >= CONNECT_TIMEOUT_MS
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stuck {
            if let Some(t) = self.tunnels.get(&id) {
                self.failed.insert(t.addr, now);
            }
            self.close(now, id);
            out.push(Action::Close(id));
        }

        let clients: Vec<TunnelId> = self
            .tunnels
            .iter()
            .filter(|(_, t)| t.dir == Dir::Client && t.state == State::Up)
            .map(|(id, _)| *id)
            .collect();
        let target = if self.unreachable() {
            self.policy.client_count.min(NAT_CLIENT_COUNT)
        } else {
            self.policy.client_count
        };

        // Refresh: retire the client tunnel that carries the fewest routes.
        if now >= self.next_refresh {
            self.next_refresh = now.add_millis(self.policy.tunnel_refresh_ms);
            let draining = self.tunnels.values().any(|t| t.state == State::Draining);
            if !draining && !clients.is_empty() && clients.len() >= target {
                let mut scored: Vec<(usize, u64, TunnelId)> =
                    clients.iter().map(|&id| (via(id), 0, id)).collect();
                for s in &mut scored {
                    s.1 = self.random(); // ties broken at random
                }
                let victim = scored.iter().min().map(|s| s.2);
                if let Some(id) = victim {
                    if let Some(t) = self.tunnels.get_mut(&id) {
                        t.state = State::Draining;
                        t.since = now;
                    }
                    out.push(Action::Drain(id));
                }
            }
        }

        // New tunnels.
        // A punch beside a direct attempt is the same try.
        let pending = self
            .tunnels
            .values()
            .filter(|t| t.dir == Dir::Client)
            .filter(|t| t.state == State::Up || (t.state == State::Connecting && !t.punched))
            .count();
        let mut need = target.saturating_sub(pending);
        if need == 0 {
            return out;
        }
        let neighbours: Vec<Prefix> = self.tunnels.values().filter_map(|t| t.peer).collect();
        let busy: Vec<SocketAddr> = self.tunnels.values().map(|t| t.addr).collect();
        let usable = |a: &SocketAddr, failed: &HashMap<SocketAddr, Instant>| {
            !failed.contains_key(a) && !busy.contains(a)
        };
        // A cached peer's first address worth trying (`failed` is passed in:
        // `self` changes between the calls).
        let first_usable = |c: &Peer, failed: &HashMap<SocketAddr, Instant>| {
            c.addrs.iter().copied().find(|a| usable(a, failed))
        };
        // A peer from the registry that routing does not know: it joins our
        // island to the registry's, so it goes first (re6st connects to it
        // at once). Were it left behind routed candidates, two islands
        // formed at start would stay apart (the simulator found 41 and 59
        // nodes apart for good).
        if let Some(p) = self.bootstrap_peer.take() {
            let routed = routes.iter().any(|(r, _)| *r == p);
            let addr = cache.get(p).and_then(|c| first_usable(c, &self.failed));
            if let Some(addr) = addr.filter(|_| !routed && !neighbours.contains(&p)) {
                out.push(Action::Connect {
                    addr,
                    prefix: Some(p),
                });
                need -= 1;
            }
        }
        if !self.registry_unreachable(routes) {
            // Connected: a later disconnection may ask at once.
            self.fruitless_bootstraps = 0;
            self.next_bootstrap = self.next_bootstrap.min(now);
        } else if need > 0 && now >= self.next_bootstrap {
            // re6st: timeout × (1 + randint(0, routed nodes)), so that the nodes
            // of a split network do not all ask at once; doubled for each
            // request in a row that brought nobody.
            let spread = 1 + self.random() % (routes.len() as u64 + 1);
            let wait = (self.policy.bootstrap_ms * spread)
                .saturating_mul(1 << self.fruitless_bootstraps.min(16))
                .min(BOOTSTRAP_MAX_MS);
            self.next_bootstrap = now.add_millis(wait);
            out.push(Action::Bootstrap);
            // A slot kept for the peer it brings, when routed nodes (of our
            // island) would take it: re6st asks the registry before it looks
            // at them. Configured peers at start do not wait.
            if !routes.is_empty() {
                need -= 1;
            }
        }
        let mut candidates: Vec<Prefix> = routes
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| *p != self.own && !neighbours.contains(p))
            .collect();
        candidates.sort_by_key(|p| prefix_order(*p));
        candidates.dedup();
        self.shuffle(&mut candidates);
        // Nodes whose address we know first: no round trip to ask for it.
        candidates.sort_by_key(|p| cache.get(*p).is_none_or(|c| c.addrs.is_empty()));
        for p in candidates {
            if need == 0 {
                break;
            }
            match cache.get(p).and_then(|c| first_usable(c, &self.failed)) {
                Some(addr) => out.push(Action::Connect {
                    addr,
                    prefix: Some(p),
                }),
                None if !self.requested.contains_key(&p) => {
                    self.requested.insert(p, now);
                    out.push(Action::RequestAddress(p));
                }
                None => continue,
            }
            need -= 1;
        }
        // Routing knows too few nodes: the peer cache, the registry, the
        // configured peers.
        if need > 0 {
            let routed: Vec<Prefix> = routes.iter().map(|(p, _)| *p).collect();
            for c in cache.candidates(self.random()) {
                if need == 0 {
                    break;
                }
                let p = c.prefix();
                if p == self.own || neighbours.contains(&p) || routed.contains(&p) {
                    continue;
                }
                if let Some(addr) = first_usable(c, &self.failed) {
                    out.push(Action::Connect {
                        addr,
                        prefix: Some(p),
                    });
                    need -= 1;
                }
            }
        }
        if need > 0 {
            let mut configured = self.bootstrap.clone();
            self.shuffle(&mut configured);
            for addr in configured {
                if need == 0 {
                    break;
                }
                if usable(&addr, &self.failed) {
                    out.push(Action::Connect { addr, prefix: None });
                    need -= 1;
                }
            }
        }
        out
    }
}

/// re6st compares prefixes as bit strings: "lower prefix".
fn prefix_order(p: Prefix) -> (u128, u8) {
    let left = if p.is_empty() {
        0
    } else {
        p.value() << (128 - u32::from(p.len()))
    };
    (left, p.len())
}

#[cfg(test)]
#[path = "manager_tests.rs"]
mod tests;
