//! The Babel state machine ([RFC 8966 §3]): links, neighbours, sources, routes, pending
//! requests and output queues, driven by packets and an injected clock.
//!
//! Behaviour follows babeld 1.12.1 where the RFC leaves a choice (jitter, hysteresis,
//! triggered-update urgency, request forwarding, PC/challenge handling), so that a
//! re6st-lite node behaves like its babeld neighbours.
//!
//! Call contract (quinn style): after `handle_packet`, `handle_timeout` or any
//! configuration call, drain `poll_transmit` and `poll_event`, then sleep until
//! `poll_timeout`.

use std::collections::VecDeque;
use std::net::{Ipv6Addr, SocketAddrV6};

use super::config::{EngineConfig, LinkConfig, LinkKind, MacConfig};
use super::mac::{MacCheck, MacKey, MAX_MAC_LEN};
use super::neighbour::Neighbour;
use super::route::{hold_time, smooth, Route, Source, SOURCE_GC_SECS};
use super::seqno::SeqNo;
use super::wire::{
    kind, Builder, Decoder, Message, Packet, Prefix, RouterId, SubTlvs, Tlv, UpdateMsg, INFINITY,
    MULTICAST, PORT,
};
use super::{LinkId, NeighbourId, RouteEvent, RouteInfo, Stats, Transmit};
use crate::time::Instant;

/// A Seqno Request travels at most this many hops ([RFC 8966 §3.8.2.1]).
const HOP_COUNT: u8 = 127;
/// Pending requests are forgotten after this long (babeld `REQUEST_TIMEOUT`).
const REQUEST_TIMEOUT_MS: u64 = 65_000;
/// Resend attempts for urgent requests and updates (babeld `RESEND_MAX`).
const RESEND_MAX: u8 = 3;
/// At most one full dump a second on a link in answer to wildcard requests.
const DUMP_GUARD_MS: u64 = 1000;
/// PC TLV + MAC TLV at most: room kept at the end of every signed packet.
const TRAILER_SPACE: usize = 2 + 4 + 8 + 2 + MAX_MAC_LEN;

/// Tiny xorshift64* generator for jitter and nonces, seeded by the caller.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// babeld's `roughly`: uniform in [3/4 v, 5/4 v).
    fn roughly(&mut self, v: i64) -> i64 {
        if v < 0 {
            -self.roughly(-v)
        } else if v <= 1 {
            v
        } else {
            v * 3 / 4 + (self.next() % (v as u64 / 2)) as i64
        }
    }

    fn roughly_ms(&mut self, v: u64) -> u64 {
        self.roughly(v as i64) as u64
    }
}

/// Something queued for one packet.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    Update {
        router_id: RouterId,
        prefix: Prefix,
        src: Prefix,
        seqno: SeqNo,
        metric: u16,
    },
    WildcardRetraction(SeqNo),
    RouteRequest(Option<(Prefix, Prefix)>),
    SeqnoRequest {
        prefix: Prefix,
        src: Prefix,
        seqno: SeqNo,
        hop_count: u8,
        router_id: RouterId,
    },
    Ack(u16),
    ChallengeRequest([u8; 8]),
    ChallengeReply(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Ihu {
    address: Ipv6Addr,
    rxcost: u16,
    interval: u16,
    timestamps: Option<(u32, u32)>,
}

/// What waits for the next packet to one destination (a link's multicast group, or one
/// neighbour).
#[derive(Debug, Clone, Default)]
struct OutQueue {
    /// (unicast, seqno, interval): at most one Hello per packet, or link quality
    /// estimation breaks.
    hello: Option<(bool, SeqNo, u16)>,
    ihus: Vec<Ihu>,
    msgs: Vec<Out>,
    flush_at: Option<Instant>,
}

impl OutQueue {
    fn is_empty(&self) -> bool {
        self.hello.is_none() && self.ihus.is_empty() && self.msgs.is_empty()
    }

    /// Flush no later than `at`.
    fn schedule(&mut self, at: Instant) {
        self.flush_at = Some(self.flush_at.map_or(at, |f| f.min(at)));
    }

    fn push(&mut self, m: Out) {
        if !self.msgs.contains(&m) {
            self.msgs.push(m);
        }
    }
}

#[derive(Debug, Clone)]
struct Link {
    cfg: LinkConfig,
    hello_seqno: SeqNo,
    hello_at: Instant,
    /// The next Hello was brought forward: no flush jitter for it.
    hello_urgent: bool,
    update_at: Instant,
    last_full_update: Option<Instant>,
    /// A wildcard request came within the dump guard: the dump it is owed.
    dump_due: Option<Instant>,
    /// Destinations whose Update is due; resolved against the tables at flush time.
    pending_updates: Vec<(Prefix, Prefix)>,
    update_flush_at: Option<Instant>,
    out: OutQueue,
    /// RFC 8967 packet counter and index for what we send on this link.
    pc: u32,
    index: [u8; 8],
}

#[derive(Debug, Clone)]
struct NeighbourSlot {
    n: Neighbour,
    out: OutQueue,
    /// Entries of the route table learnt from it (the fair share when it is full).
    routes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResendKind {
    Request,
    Update,
}

/// The pending-request table ([RFC 8966 §3.8.2.3]), babeld's `resend.c`.
#[derive(Debug, Clone)]
struct Resend {
    kind: ResendKind,
    prefix: Prefix,
    src: Prefix,
    seqno: SeqNo,
    router_id: Option<RouterId>,
    /// Where it came from (forwarded requests) or goes to; `None`: every link.
    link: Option<LinkId>,
    time: Instant,
    delay: u64,
    max: u8,
}

impl Resend {
    fn expired(&self, now: Instant) -> bool {
        match self.kind {
            ResendKind::Request => now.millis_since(self.time) >= REQUEST_TIMEOUT_MS,
            ResendKind::Update => self.max == 0,
        }
    }

    fn due(&self, now: Instant) -> Option<Instant> {
        (!self.expired(now) && self.delay > 0 && self.max > 0)
            .then(|| self.time.add_millis(self.delay))
    }
}

/// A prefix we originate (babeld's xroute), metric 0.
#[derive(Debug, Clone, Copy)]
struct XRoute {
    prefix: Prefix,
    src: Prefix,
    metric: u16,
}

/// The Babel routing engine.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    rng: Rng,
    seqno: SeqNo,
    links: Vec<Option<Link>>,
    neighbours: Vec<Option<NeighbourSlot>>,
    sources: Vec<Source>,
    routes: Vec<Route>,
    xroutes: Vec<XRoute>,
    requests: Vec<Resend>,
    events: VecDeque<RouteEvent>,
    /// Neighbours some of whose routes a full table refused.
    refused: Vec<NeighbourId>,
    /// When a full table was last reported in the log.
    full_warned: Option<Instant>,
    check_neighbours_at: Instant,
    expiry_at: Instant,
    source_expiry_at: Instant,
    stats: Stats,
}

mod full;

fn time_us(t: Instant) -> u32 {
    (t.as_millis().wrapping_mul(1000)) as u32
}

/// Prefixes no one may route ([RFC 8966 §3.5.3] leaves it to the implementation;
/// these are babeld's): multicast, link-local, loopback, unspecified.
fn martian(p: &Prefix) -> bool {
    let o = p.octets();
    (p.len() >= 8 && o[0] == 0xff)
        || (p.len() >= 10 && o[0] == 0xfe && o[1] & 0xc0 == 0x80)
        || (p.len() == 128 && (p.addr() == Ipv6Addr::LOCALHOST || p.addr().is_unspecified()))
}

impl Engine {
    pub fn new(cfg: EngineConfig, now: Instant) -> Self {
        let mut rng = Rng(cfg.seed | 1);
        let seqno = SeqNo(rng.next() as u16);
        let expiry_at = now.add_millis(rng.roughly_ms(30_000));
        let source_expiry_at = now.add_millis(rng.roughly_ms(300_000));
        Engine {
            links: Vec::with_capacity(cfg.limits.links),
            neighbours: Vec::with_capacity(cfg.limits.neighbours),
            sources: Vec::new(),
            routes: Vec::new(),
            xroutes: Vec::new(),
            requests: Vec::new(),
            events: VecDeque::new(),
            refused: Vec::new(),
            full_warned: None,
            check_neighbours_at: now.add_millis(50_000),
            expiry_at,
            source_expiry_at,
            stats: Stats::default(),
            seqno,
            rng,
            cfg,
        }
    }

    pub fn router_id(&self) -> RouterId {
        self.cfg.router_id
    }

    /// Our own seqno ([RFC 8966 §3.7.1]).
    pub fn seqno(&self) -> SeqNo {
        self.seqno
    }

    /// Carry on after the seqno a previous run last used, as babeld does with
    /// its state file: neighbours remember that seqno, and anything older looks
    /// stale to them until their source entries expire minutes later.
    pub fn resume_seqno(&mut self, last: SeqNo) {
        self.seqno = last.plus(1);
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Replaces the MAC keys (network configuration change).
    pub fn set_mac(&mut self, mac: MacConfig) {
        self.cfg.mac = mac;
    }

    // ----- links -------------------------------------------------------------------

    /// Adds a link and starts speaking on it: a Hello and a wildcard Route Request.
    pub fn add_link(&mut self, now: Instant, cfg: LinkConfig) -> Option<LinkId> {
        let Some(slot) = free_slot(&mut self.links, self.cfg.limits.links) else {
            self.stats.table_full += 1;
            return None;
        };
        let mut index = [0u8; 8];
        index.copy_from_slice(&self.rng.next().to_be_bytes());
        let update_at = now.add_millis(self.rng.roughly_ms(cfg.update_interval_ms as u64));
        self.links[slot] = Some(Link {
            hello_seqno: SeqNo(self.rng.next() as u16),
            hello_at: now,
            hello_urgent: false,
            update_at,
            last_full_update: None,
            dump_due: None,
            pending_updates: Vec::new(),
            update_flush_at: None,
            out: OutQueue::default(),
            pc: 0,
            index,
            cfg,
        });
        let id = LinkId(slot);
        // babeld's start: Hello, wildcard retraction (forget what we said before a
        // restart), a full dump and a wildcard request for theirs. Those who hear
        // the dump keep our routes until they have a cost for us; it does not
        // count against the request guard, as nobody could have asked for it.
        self.send_hello(now, id);
        let seqno = self.seqno;
        self.queue_link(now, id, Out::WildcardRetraction(seqno), 10);
        self.send_full_update(now, id, true);
        self.link_mut(id).last_full_update = None;
        self.queue_link(now, id, Out::RouteRequest(None), 10);
        Some(id)
    }

    /// Removes a link: its neighbours and the routes through them go.
    pub fn remove_link(&mut self, now: Instant, link: LinkId) {
        let ids: Vec<NeighbourId> = self
            .neighbour_ids()
            .filter(|&n| self.nb(n).link == link)
            .collect();
        for n in ids {
            self.flush_neighbour(now, n);
        }
        if let Some(l) = self.links.get_mut(link.0) {
            *l = None;
        }
    }

    /// Brings the next Hello on `link` forward to `at`, and sends it without
    /// the usual flush delay. A new neighbour needs two Hellos before
    /// 2-out-of-3 gives it a cost; sending them early makes routes usable in
    /// well under a second instead of one hello interval.
    pub fn hello_soon(&mut self, link: LinkId, at: Instant) {
        if let Some(Some(l)) = self.links.get_mut(link.0) {
            // Not before a pending Hello has left: one per packet.
            let after_flush = match (l.out.hello, l.out.flush_at) {
                (Some(_), Some(f)) => f.add_millis(1),
                _ => at,
            };
            l.hello_at = l.hello_at.min(at.max(after_flush));
            l.hello_urgent = true;
        }
    }

    /// Restricts what the peer of a tunnel may originate to its certificate's prefix.
    pub fn set_peer_prefix(&mut self, link: LinkId, prefix: Option<Prefix>) {
        if let Some(Some(l)) = self.links.get_mut(link.0) {
            l.cfg.peer_prefix = prefix;
        }
    }

    pub fn link_config(&self, link: LinkId) -> Option<&LinkConfig> {
        self.links.get(link.0)?.as_ref().map(|l| &l.cfg)
    }

    fn link(&self, id: LinkId) -> &Link {
        self.links[id.0]
            .as_ref()
            .expect("link id refers to a live link")
    }

    fn link_mut(&mut self, id: LinkId) -> &mut Link {
        self.links[id.0]
            .as_mut()
            .expect("link id refers to a live link")
    }

    fn link_ids(&self) -> impl Iterator<Item = LinkId> + '_ {
        self.links
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_some())
            .map(|(i, _)| LinkId(i))
    }

    // ----- originated prefixes -----------------------------------------------------

    /// Originates `prefix` (from `src`, `::/0` for none) with metric 0: our own prefix,
    /// or `::/0 from <network>` on a gateway.
    pub fn originate(&mut self, now: Instant, prefix: Prefix, src: Prefix) -> bool {
        if self
            .xroutes
            .iter()
            .any(|x| x.prefix == prefix && x.src == src)
        {
            return true;
        }
        if self.xroutes.len() >= self.cfg.limits.originated {
            self.stats.table_full += 1;
            return false;
        }
        self.xroutes.push(XRoute {
            prefix,
            src,
            metric: 0,
        });
        // A learnt route to our own prefix stops being used (babeld does the same).
        if let Some(i) = self.find_installed(&prefix, &src) {
            self.uninstall_route(i);
        }
        self.send_update(now, None, true, prefix, src);
        true
    }

    /// Stops originating; neighbours get a retraction.
    pub fn withdraw(&mut self, now: Instant, prefix: Prefix, src: Prefix) {
        let before = self.xroutes.len();
        self.xroutes
            .retain(|x| !(x.prefix == prefix && x.src == src));
        if self.xroutes.len() != before {
            self.send_update_resend(now, prefix, src);
            if let Some(r) = self.find_best_route(now, &prefix, &src, true, None) {
                self.consider_route(now, r);
            }
        }
    }

    fn find_xroute(&self, prefix: &Prefix, src: &Prefix) -> Option<XRoute> {
        self.xroutes
            .iter()
            .find(|x| x.prefix == *prefix && x.src == *src)
            .copied()
    }

    // ----- neighbours --------------------------------------------------------------

    fn nb(&self, id: NeighbourId) -> &Neighbour {
        &self.neighbours[id.0].as_ref().expect("live neighbour").n
    }

    fn nb_mut(&mut self, id: NeighbourId) -> &mut Neighbour {
        &mut self.neighbours[id.0].as_mut().expect("live neighbour").n
    }

    fn nb_out(&mut self, id: NeighbourId) -> &mut OutQueue {
        &mut self.neighbours[id.0].as_mut().expect("live neighbour").out
    }

    fn neighbour_ids(&self) -> impl Iterator<Item = NeighbourId> + '_ {
        self.neighbours
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_some())
            .map(|(i, _)| NeighbourId(i))
    }

    fn find_neighbour(&self, link: LinkId, address: Ipv6Addr) -> Option<NeighbourId> {
        self.neighbour_ids().find(|&i| {
            let n = self.nb(i);
            n.link == link && n.address == address
        })
    }

    fn find_or_create_neighbour(
        &mut self,
        now: Instant,
        link: LinkId,
        address: Ipv6Addr,
    ) -> Option<NeighbourId> {
        if let Some(n) = self.find_neighbour(link, address) {
            return Some(n);
        }
        let Some(slot) = free_slot(&mut self.neighbours, self.cfg.limits.neighbours) else {
            self.refused_full(now, "neighbour");
            return None;
        };
        self.neighbours[slot] = Some(NeighbourSlot {
            n: Neighbour::new(link, address, now),
            out: OutQueue::default(),
            routes: 0,
        });
        Some(NeighbourId(slot))
    }

    fn neighbour_cost(&self, now: Instant, n: NeighbourId) -> u16 {
        let nb = self.nb(n);
        nb.cost(&self.link(nb.link).cfg, now)
    }

    /// Sets re6st's cost multiplier for a neighbour (256 neutral, 4096 to drain a
    /// tunnel before closing it, 0 to make it unusable). Returns false if unknown.
    pub fn set_cost_multiplier(
        &mut self,
        now: Instant,
        link: LinkId,
        address: Ipv6Addr,
        multiplier: u16,
    ) -> bool {
        let Some(n) = self.find_neighbour(link, address) else {
            return false;
        };
        self.nb_mut(n).cost_multiplier = multiplier;
        self.update_neighbour_metric(now, n, true);
        true
    }

    /// A view of the neighbour table.
    pub fn neighbours(&self, now: Instant) -> impl Iterator<Item = NeighbourInfo> + '_ {
        self.neighbour_ids().map(move |i| {
            let n = self.nb(i);
            let cfg = &self.link(n.link).cfg;
            NeighbourInfo {
                link: n.link,
                address: n.address,
                reach: n.hello.reach,
                txcost: n.txcost,
                rxcost: n.rxcost(cfg, now),
                rtt_us: n.valid_rtt(now).then_some(n.rtt_us),
                cost: n.cost(cfg, now),
                cost_multiplier: n.cost_multiplier,
            }
        })
    }

    fn flush_neighbour(&mut self, now: Instant, n: NeighbourId) {
        let mut i = 0;
        while i < self.routes.len() {
            if self.routes[i].neighbour == n {
                self.flush_route(now, i);
            } else {
                i += 1;
            }
        }
        self.neighbours[n.0] = None;
        self.refused.retain(|&r| r != n);
        self.ask_refused_again(now);
    }

    fn update_neighbour_metric(&mut self, now: Instant, n: NeighbourId, changed: bool) {
        if !changed {
            return;
        }
        for i in 0..self.routes.len() {
            if i < self.routes.len() && self.routes[i].neighbour == n {
                self.update_route_metric(now, i);
            }
        }
    }

    fn schedule_neighbours_check(&mut self, now: Instant, ms: u64) {
        let at = now.add_millis(self.rng.roughly_ms(ms));
        self.check_neighbours_at = self.check_neighbours_at.min(at);
    }

    /// babeld `check_neighbours`: ages Hello histories, drops dead neighbours, forgets
    /// stale IHUs. Returns the next check delay.
    fn check_neighbours(&mut self, now: Instant) -> u64 {
        let mut msecs = 50_000u64;
        let ids: Vec<NeighbourId> = self.neighbour_ids().collect();
        for id in ids {
            let nb = self.nb_mut(id);
            let mut changed = nb.hello.check_missed(now);
            changed |= nb.uhello.check_missed(now);
            if nb.hello.reach == 0 || now.millis_since(nb.hello.time) > 300_000 {
                self.flush_neighbour(now, id);
                continue;
            }
            let nb = self.nb_mut(id);
            changed |= nb.reset_txcost(now);
            let (h, u, i) = (nb.hello.interval, nb.uhello.interval, nb.ihu_interval);
            self.update_neighbour_metric(now, id, changed);
            for iv in [h, u, i] {
                if iv > 0 {
                    msecs = msecs.min(iv as u64 * 10);
                }
            }
        }
        msecs
    }

    // ----- sources -----------------------------------------------------------------

    fn find_source(&self, id: RouterId, prefix: &Prefix, src: &Prefix) -> Option<usize> {
        self.sources.iter().position(|s| s.matches(id, prefix, src))
    }

    fn find_or_create_source(
        &mut self,
        now: Instant,
        id: RouterId,
        prefix: &Prefix,
        src: &Prefix,
        seqno: SeqNo,
    ) -> Option<usize> {
        if let Some(i) = self.find_source(id, prefix, src) {
            return Some(i);
        }
        if self.sources.len() >= self.cfg.limits.sources && !self.evict_sources() {
            self.refused_full(now, "source");
            return None;
        }
        self.sources.push(Source {
            router_id: id,
            prefix: *prefix,
            src_prefix: *src,
            seqno,
            metric: INFINITY,
            time: now,
        });
        Some(self.sources.len() - 1)
    }

    fn route_feasible(&self, now: Instant, r: usize) -> bool {
        let route = &self.routes[r];
        match self.find_source(route.router_id, &route.prefix, &route.src_prefix) {
            Some(s) => self.sources[s].feasible(now, route.seqno, route.refmetric),
            None => true,
        }
    }

    fn expire_sources(&mut self, now: Instant) {
        let routes = &self.routes;
        self.sources.retain(|s| {
            now.millis_since(s.time) <= SOURCE_GC_SECS * 1000
                || routes.iter().any(|r| {
                    r.router_id == s.router_id && r.same_destination(&s.prefix, &s.src_prefix)
                })
        });
    }

    // ----- routes ------------------------------------------------------------------

    /// The route table ([RFC 8966 §3.2.6]).
    pub fn routes(&self) -> impl Iterator<Item = RouteInfo> + '_ {
        self.routes.iter().map(move |r| self.route_info(r))
    }

    /// The selected route for a destination, if any.
    pub fn installed_route(&self, prefix: &Prefix, src: &Prefix) -> Option<RouteInfo> {
        self.find_installed(prefix, src)
            .map(|i| self.route_info(&self.routes[i]))
    }

    fn route_info(&self, r: &Route) -> RouteInfo {
        RouteInfo {
            prefix: r.prefix,
            src_prefix: r.src_prefix,
            router_id: r.router_id,
            link: self.nb(r.neighbour).link,
            next_hop: r.next_hop,
            metric: r.metric(),
            seqno: r.seqno,
            installed: r.installed,
        }
    }

    fn find_route(&self, prefix: &Prefix, src: &Prefix, n: NeighbourId) -> Option<usize> {
        self.routes
            .iter()
            .position(|r| r.neighbour == n && r.same_destination(prefix, src))
    }

    fn find_installed(&self, prefix: &Prefix, src: &Prefix) -> Option<usize> {
        self.routes
            .iter()
            .position(|r| r.installed && r.same_destination(prefix, src))
    }

    fn smoothed(&mut self, now: Instant, r: usize) -> u16 {
        let hl = self.cfg.smoothing_half_life;
        let rng = &mut self.rng;
        smooth(&mut self.routes[r], now, hl, |d| rng.roughly(d));
        self.routes[r].smoothed_metric
    }

    fn route_acceptable(
        &self,
        now: Instant,
        r: usize,
        feasible: bool,
        exclude: Option<NeighbourId>,
    ) -> bool {
        let route = &self.routes[r];
        !route.expired(now)
            && (!feasible || self.route_feasible(now, r))
            && exclude != Some(route.neighbour)
    }

    /// The best route by smoothed metric (babeld's weak ordering).
    fn find_best_route(
        &mut self,
        now: Instant,
        prefix: &Prefix,
        src: &Prefix,
        feasible: bool,
        exclude: Option<NeighbourId>,
    ) -> Option<usize> {
        let mut best: Option<(usize, u16)> = None;
        for r in 0..self.routes.len() {
            if !self.routes[r].same_destination(prefix, src)
                || !self.route_acceptable(now, r, feasible, exclude)
            {
                continue;
            }
            let sm = self.smoothed(now, r);
            if best.is_none_or(|(_, b)| sm < b) {
                best = Some((r, sm));
            }
        }
        best.map(|(r, _)| r)
    }

    fn emit(&mut self, e: RouteEvent) {
        if self.events.len() >= self.cfg.limits.events {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(e);
    }

    fn install_route(&mut self, r: usize) {
        if self.routes[r].installed {
            return;
        }
        self.routes[r].installed = true;
        let info = self.route_info(&self.routes[r]);
        self.emit(RouteEvent::Installed(info));
    }

    fn uninstall_route(&mut self, r: usize) {
        if !self.routes[r].installed {
            return;
        }
        self.routes[r].installed = false;
        let (prefix, src_prefix) = (self.routes[r].prefix, self.routes[r].src_prefix);
        self.emit(RouteEvent::Removed { prefix, src_prefix });
    }

    fn switch_routes(&mut self, old: Option<usize>, new: usize) {
        match old {
            None => self.install_route(new),
            Some(o) if self.routes[o].installed => {
                self.routes[o].installed = false;
                self.routes[new].installed = true;
                let info = self.route_info(&self.routes[new]);
                self.emit(RouteEvent::Changed(info));
            }
            Some(_) => {}
        }
    }

    fn change_route_metric(&mut self, now: Instant, r: usize, refmetric: u16, cost: u16) {
        let old = self.routes[r].metric();
        // Account the time elapsed at the old metric first.
        self.smoothed(now, r);
        let route = &mut self.routes[r];
        route.refmetric = refmetric;
        route.cost = cost;
        if self.cfg.smoothing_half_life == 0 {
            route.smoothed_metric = route.metric();
            route.smoothed_time = now.as_secs();
        }
        if self.routes[r].installed && self.routes[r].metric() != old {
            let info = self.route_info(&self.routes[r]);
            self.emit(RouteEvent::Changed(info));
        }
    }

    /// Keeps the route but unreachable, so no loop forms while it is retracted
    /// ([RFC 8966 §3.5.5]).
    fn retract_route(&mut self, now: Instant, r: usize) {
        self.change_route_metric(now, r, INFINITY, INFINITY);
    }

    fn flush_route(&mut self, now: Instant, r: usize) {
        let oldmetric = self.routes[r].metric();
        let lost = self.routes[r].installed;
        let (id, prefix, src) = (
            self.routes[r].router_id,
            self.routes[r].prefix,
            self.routes[r].src_prefix,
        );
        self.uninstall_route(r);
        let gone = self.routes.remove(r);
        if let Some(slot) = self.neighbours[gone.neighbour.0].as_mut() {
            slot.routes -= 1;
        }
        if lost {
            self.route_lost(now, id, prefix, src, oldmetric);
        }
    }

    fn update_route_metric(&mut self, now: Instant, r: usize) {
        let oldmetric = self.routes[r].metric();
        let old_sm = self.smoothed(now, r);
        let id = self.routes[r].router_id;
        if self.routes[r].expired(now) {
            if self.routes[r].refmetric < INFINITY {
                let src_seqno = self
                    .find_source(id, &self.routes[r].prefix, &self.routes[r].src_prefix)
                    .map(|s| self.sources[s].seqno)
                    .unwrap_or(self.routes[r].seqno);
                self.routes[r].seqno = src_seqno.plus(1);
                self.retract_route(now, r);
                if oldmetric < INFINITY {
                    self.route_changed(now, r, id, oldmetric);
                }
            }
        } else {
            let cost = self.neighbour_cost(now, self.routes[r].neighbour);
            let refmetric = self.routes[r].refmetric;
            self.change_route_metric(now, r, refmetric, cost);
            if self.routes[r].metric() != oldmetric || self.smoothed(now, r) != old_sm {
                self.route_changed(now, r, id, oldmetric);
            }
        }
    }

    /// babeld `consider_route`: installs a feasible route if it is better by the strong
    /// ordering (metric and smoothed metric both), which gives hysteresis.
    fn consider_route(&mut self, now: Instant, r: usize) {
        if self.routes[r].installed || !self.route_feasible(now, r) {
            return;
        }
        let (prefix, src) = (self.routes[r].prefix, self.routes[r].src_prefix);
        if self.find_xroute(&prefix, &src).is_some() {
            return;
        }
        let installed = self.find_installed(&prefix, &src);
        let install = match installed {
            None => true,
            Some(i) => {
                if self.routes[r].metric() == INFINITY {
                    false
                } else if self.routes[i].metric() == INFINITY {
                    true
                } else {
                    let (im, rm) = (self.routes[i].metric(), self.routes[r].metric());
                    im >= rm && self.smoothed(now, i) > self.smoothed(now, r)
                }
            }
        };
        if !install {
            return;
        }
        self.switch_routes(installed, r);
        match installed {
            Some(i) if self.routes[r].installed => {
                let (oid, om) = (self.routes[i].router_id, self.routes[i].metric());
                self.send_triggered_update(now, r, oid, om);
            }
            _ => self.send_update(now, None, true, prefix, src),
        }
    }

    fn route_changed(&mut self, now: Instant, r: usize, oldsrc: RouterId, oldmetric: u16) {
        if self.routes[r].installed {
            let (p, s) = (self.routes[r].prefix, self.routes[r].src_prefix);
            if let Some(b) = self.find_best_route(now, &p, &s, true, None) {
                if self.routes[b].metric() < self.routes[r].metric() {
                    self.consider_route(now, b);
                }
            }
        }
        if self.routes[r].installed {
            self.send_triggered_update(now, r, oldsrc, oldmetric);
        } else {
            self.consider_route(now, r);
        }
    }

    /// The installed route to a destination is gone: switch, or retract and ask for a
    /// new seqno ([RFC 8966 §3.8.2.1]).
    fn route_lost(
        &mut self,
        now: Instant,
        id: RouterId,
        prefix: Prefix,
        src: Prefix,
        oldmetric: u16,
    ) {
        if let Some(r) = self.find_best_route(now, &prefix, &src, true, None) {
            self.consider_route(now, r);
        } else if oldmetric < INFINITY {
            // Avoid a black hole.
            self.send_update_resend(now, prefix, src);
            if oldmetric <= INFINITY / 2 {
                let seqno = self
                    .find_source(id, &prefix, &src)
                    .map(|s| {
                        let s = &self.sources[s];
                        if s.metric == INFINITY {
                            s.seqno
                        } else {
                            s.seqno.plus(1)
                        }
                    })
                    .unwrap_or(SeqNo(0));
                self.send_request_resend(now, prefix, src, seqno, id);
            }
        }
    }

    fn send_triggered_update(&mut self, now: Instant, r: usize, oldsrc: RouterId, oldmetric: u16) {
        let route = &self.routes[r];
        if !route.installed {
            return;
        }
        let newmetric = route.metric();
        let (prefix, src, seqno, id) =
            (route.prefix, route.src_prefix, route.seqno, route.router_id);
        let diff = newmetric.abs_diff(oldmetric);
        let urgent = if id != oldsrc || (oldmetric < INFINITY && newmetric == INFINITY) {
            // Source switches may loop transiently; retractions may black-hole.
            2
        } else if (newmetric > oldmetric && oldmetric < 6 * 256 && diff >= 512)
            || self.unsatisfied_request(now, &prefix, &src, seqno, id)
        {
            // Getting significantly worse, or someone asked for it.
            1
        } else if oldmetric == INFINITY && newmetric < INFINITY {
            0
        } else if newmetric < oldmetric && diff < 1024 {
            // Getting better a little may be a fluctuation: not worth a feasibility cost.
            return;
        } else if diff < 384 {
            return;
        } else {
            0
        };
        if urgent >= 2 {
            self.send_update_resend(now, prefix, src);
        } else {
            self.send_update(now, None, urgent == 1, prefix, src);
        }
        if oldmetric < INFINITY && newmetric as u32 >= oldmetric as u32 + 288 {
            for l in self.link_ids().collect::<Vec<_>>() {
                self.queue_link(now, l, Out::RouteRequest(Some((prefix, src))), 10);
            }
        }
    }

    fn retract_neighbour_routes(&mut self, now: Instant, n: NeighbourId) {
        for r in 0..self.routes.len() {
            if self.routes[r].neighbour == n && self.routes[r].refmetric != INFINITY {
                let oldmetric = self.routes[r].metric();
                let id = self.routes[r].router_id;
                self.retract_route(now, r);
                if oldmetric != INFINITY {
                    self.route_changed(now, r, id, oldmetric);
                }
            }
        }
    }

    /// Whether a tunnel peer may originate this destination ([issue 5]: only the prefix
    /// of its certificate, or a source-specific default route for the network that
    /// prefix lies in, as a re6st gateway announces).
    fn origin_allowed(link: &LinkConfig, prefix: &Prefix, src: &Prefix) -> bool {
        match &link.peer_prefix {
            None => true,
            Some(pp) => {
                prefix == pp || (prefix.is_default() && !src.is_default() && src.contains(pp))
            }
        }
    }

    /// Whether a destination may be learnt over a tunnel, whoever announces it
    /// ([issue 20]): inside the network (or `::/0 from` inside it, never a plain
    /// default), not inside our own prefix, and not more specific than a tunnel
    /// peer's certified prefix (which would take that peer's traffic).
    fn tunnel_route_allowed(&self, prefix: &Prefix, src: &Prefix) -> bool {
        if prefix.is_default() {
            return !src.is_default() && self.cfg.network.is_none_or(|net| net.contains(src));
        }
        if let Some(net) = &self.cfg.network {
            if !net.contains(prefix) || !(src.is_default() || net.contains(src)) {
                return false;
            }
        }
        let inside = |own: &Prefix| !own.is_default() && own.contains(prefix);
        let more_specific = |pp: &Prefix| pp.contains(prefix) && prefix.len() > pp.len();
        !self.xroutes.iter().any(|x| inside(&x.prefix))
            && !self
                .links
                .iter()
                .flatten()
                .filter_map(|l| l.cfg.peer_prefix.as_ref())
                .any(more_specific)
    }

    /// babeld `update_route`: an Update arrived from neighbour `n`.
    #[allow(clippy::too_many_arguments)]
    fn update_route(
        &mut self,
        now: Instant,
        n: NeighbourId,
        id: Option<RouterId>,
        prefix: Prefix,
        src: Prefix,
        seqno: SeqNo,
        refmetric: u16,
        interval: u16,
        next_hop: Ipv6Addr,
    ) {
        match id {
            None if refmetric < INFINITY => return,
            Some(id) if id == self.cfg.router_id => return,
            _ => {}
        }
        if martian(&prefix) || martian(&src) || prefix.is_v4() != src.is_v4() {
            self.stats.martians += 1;
            return;
        }
        let link = self.nb(n).link;
        if self.link(link).cfg.kind == LinkKind::Tunnel && !self.tunnel_route_allowed(&prefix, &src)
        {
            self.stats.origins_rejected += 1;
            log::debug!(
                "babel: ignoring {prefix} from {src} from tunnel neighbour {}",
                self.nb(n).address
            );
            return;
        }
        if refmetric == 0 && !Self::origin_allowed(&self.link(link).cfg, &prefix, &src) {
            self.stats.origins_rejected += 1;
            log::warn!(
                "babel: ignoring {prefix} from {src} originated by {} over a tunnel for {:?}",
                self.nb(n).address,
                self.link(link).cfg.peer_prefix
            );
            return;
        }
        let hold = hold_time(interval);
        let existing = self.find_route(&prefix, &src, n);
        if refmetric == INFINITY && existing.is_none() {
            return;
        }
        let id = match (id, existing) {
            (Some(id), _) => id,
            (None, Some(r)) => self.routes[r].router_id,
            (None, None) => return,
        };
        if existing.is_none()
            && self.routes.len() >= self.cfg.limits.routes
            && !self.make_room(now, n, &prefix, &src)
        {
            return;
        }
        let Some(s) = self.find_or_create_source(now, id, &prefix, &src, seqno) else {
            return;
        };
        let feasible = self.sources[s].feasible(now, seqno, refmetric);
        let cost = self.neighbour_cost(now, n);
        let metric = (refmetric as u32 + cost as u32).min(INFINITY as u32) as u16;
        if let Some(r) = existing {
            let oldinstalled = self.routes[r].installed;
            let oldsrc = self.routes[r].router_id;
            let oldmetric = self.routes[r].metric();
            let mut lost = false;
            // A successor switching sources must be followed even when unfeasible, to
            // break loops quickly; an unfeasible update from the same source is ignored
            // by not selecting it.
            if !feasible && oldinstalled && id != oldsrc {
                self.uninstall_route(r);
                lost = true;
            }
            let route = &mut self.routes[r];
            route.router_id = id;
            if refmetric < INFINITY {
                route.time = now;
            }
            route.seqno = seqno;
            route.hold_time = hold;
            self.change_route_metric(now, r, refmetric, cost);
            self.route_changed(now, r, oldsrc, oldmetric);
            if !lost {
                lost = oldinstalled && self.find_installed(&prefix, &src).is_none();
            }
            if lost {
                self.route_lost(now, oldsrc, prefix, src, oldmetric);
            } else if !feasible {
                let force = self
                    .find_route(&prefix, &src, n)
                    .is_some_and(|r| self.routes[r].old(now));
                self.send_unfeasible_request(now, n, force, seqno, metric, id, prefix, src);
            }
        } else {
            if !feasible {
                self.send_unfeasible_request(now, n, false, seqno, metric, id, prefix, src);
            }
            if self.routes.len() >= self.cfg.limits.routes {
                self.refused_full(now, "route");
                return;
            }
            self.routes.push(Route {
                prefix,
                src_prefix: src,
                router_id: id,
                neighbour: n,
                next_hop,
                seqno,
                refmetric,
                cost,
                time: now,
                hold_time: hold,
                // New routes start pessimistic so that they do not win by accident.
                smoothed_metric: metric.max(INFINITY / 2),
                smoothed_time: now.as_secs(),
                installed: false,
            });
            let r = self.routes.len() - 1;
            if let Some(slot) = self.neighbours[n.0].as_mut() {
                slot.routes += 1;
            }
            self.consider_route(now, r);
        }
    }

    /// An unfeasible update: if it is good, ask its origin for a new seqno.
    #[allow(clippy::too_many_arguments)]
    fn send_unfeasible_request(
        &mut self,
        now: Instant,
        n: NeighbourId,
        force: bool,
        seqno: SeqNo,
        metric: u16,
        id: RouterId,
        prefix: Prefix,
        src: Prefix,
    ) {
        let Some(s) = self.find_source(id, &prefix, &src) else {
            return;
        };
        let (sseq, smetric) = (self.sources[s].seqno, self.sources[s].metric);
        if sseq.minus(seqno) > 100 && sseq.minus(seqno) < 0x8000 {
            // A source that lost its seqno: let it time out.
            return;
        }
        let installed = self.find_installed(&prefix, &src);
        if force || installed.is_none_or(|i| self.routes[i].metric() as u32 >= metric as u32 + 512)
        {
            let want = if smetric == INFINITY {
                sseq
            } else {
                sseq.plus(1)
            };
            self.queue_neighbour(
                now,
                n,
                Out::SeqnoRequest {
                    prefix,
                    src,
                    seqno: want,
                    hop_count: HOP_COUNT,
                    router_id: id,
                },
                10,
            );
        }
    }

    fn expire_routes(&mut self, now: Instant) {
        let mut r = 0;
        while r < self.routes.len() {
            if self.routes[r].time > now || self.routes[r].old(now) {
                self.flush_route(now, r);
                continue;
            }
            self.update_route_metric(now, r);
            r += 1;
        }
        self.ask_refused_again(now);
    }

    // ----- pending requests (resend.c) ---------------------------------------------

    fn resend_delay(&self) -> u64 {
        let min_hello = self
            .links
            .iter()
            .flatten()
            .map(|l| l.cfg.hello_interval_ms as u64 / 2)
            .min()
            .unwrap_or(2000);
        min_hello.clamp(20, 2000)
    }

    #[allow(clippy::too_many_arguments)]
    fn record_resend(
        &mut self,
        now: Instant,
        kind: ResendKind,
        prefix: Prefix,
        src: Prefix,
        seqno: SeqNo,
        id: Option<RouterId>,
        link: Option<LinkId>,
        delay: u64,
    ) {
        let delay = delay.min(0xFFFF);
        if let Some(r) = self
            .requests
            .iter_mut()
            .find(|r| r.kind == kind && r.prefix == prefix && r.src == src)
        {
            if r.delay > 0 && delay > 0 {
                r.delay = r.delay.min(delay);
            } else if delay > 0 {
                r.delay = delay;
            }
            r.time = now;
            r.max = RESEND_MAX;
            if id.is_some() && r.router_id == id && r.seqno.gt(seqno) {
                return;
            }
            r.router_id = id;
            r.seqno = seqno;
            if r.link != link {
                r.link = None;
            }
            return;
        }
        if self.requests.len() >= self.cfg.limits.pending_requests {
            self.stats.table_full += 1;
            return;
        }
        self.requests.push(Resend {
            kind,
            prefix,
            src,
            seqno,
            router_id: id,
            link,
            time: now,
            delay,
            max: RESEND_MAX,
        });
    }

    fn find_request(&self, prefix: &Prefix, src: &Prefix) -> Option<usize> {
        self.requests
            .iter()
            .position(|r| r.kind == ResendKind::Request && r.prefix == *prefix && r.src == *src)
    }

    fn unsatisfied_request(
        &self,
        now: Instant,
        prefix: &Prefix,
        src: &Prefix,
        seqno: SeqNo,
        id: RouterId,
    ) -> bool {
        match self.find_request(prefix, src) {
            Some(i) if !self.requests[i].expired(now) => {
                let r = &self.requests[i];
                r.router_id != Some(id) || !r.seqno.gt(seqno)
            }
            _ => false,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn request_redundant(
        &self,
        now: Instant,
        link: LinkId,
        prefix: &Prefix,
        src: &Prefix,
        seqno: SeqNo,
        id: RouterId,
    ) -> bool {
        let Some(i) = self.find_request(prefix, src) else {
            return false;
        };
        let r = &self.requests[i];
        if r.expired(now) {
            return false;
        }
        if r.router_id == Some(id) && r.seqno.gt(seqno) {
            return false;
        }
        if r.link.is_some_and(|l| l != link) {
            return false;
        }
        if r.max > 0 {
            return true;
        }
        let hello = self.link(link).cfg.hello_interval_ms as u64;
        now.millis_since(r.time) < hello.min(1000)
    }

    fn satisfy_request(
        &mut self,
        prefix: &Prefix,
        src: &Prefix,
        seqno: SeqNo,
        id: RouterId,
        link: Option<LinkId>,
    ) {
        let Some(i) = self.find_request(prefix, src) else {
            return;
        };
        let r = &mut self.requests[i];
        if link.is_some() && r.link != link {
            return;
        }
        if r.router_id != Some(id) || !r.seqno.gt(seqno) {
            r.max = 0;
            r.time = Instant::ZERO;
        }
    }

    fn expire_resends(&mut self, now: Instant) {
        self.requests.retain(|r| !r.expired(now));
    }

    fn do_resend(&mut self, now: Instant) {
        for i in 0..self.requests.len() {
            let Some(due) = self.requests[i].due(now) else {
                continue;
            };
            if now < due {
                continue;
            }
            let r = self.requests[i].clone();
            match r.kind {
                ResendKind::Request => {
                    let id = r.router_id.unwrap_or_default();
                    let links: Vec<LinkId> = match r.link {
                        Some(l) if self.links.get(l.0).is_some_and(Option::is_some) => vec![l],
                        _ => self.link_ids().collect(),
                    };
                    for l in links {
                        self.queue_link(
                            now,
                            l,
                            Out::SeqnoRequest {
                                prefix: r.prefix,
                                src: r.src,
                                seqno: r.seqno,
                                hop_count: HOP_COUNT,
                                router_id: id,
                            },
                            10,
                        );
                    }
                }
                ResendKind::Update => {
                    let link = r
                        .link
                        .filter(|l| self.links.get(l.0).is_some_and(Option::is_some));
                    self.send_update(now, link, true, r.prefix, r.src);
                }
            }
            let q = &mut self.requests[i];
            q.delay = (q.delay * 2).min(0xFFFF);
            q.max -= 1;
        }
    }

    fn send_request_resend(
        &mut self,
        now: Instant,
        prefix: Prefix,
        src: Prefix,
        seqno: SeqNo,
        id: RouterId,
    ) {
        let req = Out::SeqnoRequest {
            prefix,
            src,
            seqno,
            hop_count: HOP_COUNT,
            router_id: id,
        };
        if let Some(r) = self.find_best_route(now, &prefix, &src, false, None) {
            let n = self.routes[r].neighbour;
            let link = self.nb(n).link;
            self.queue_neighbour(now, n, req, 10);
            let delay = self.resend_delay();
            self.record_resend(
                now,
                ResendKind::Request,
                prefix,
                src,
                seqno,
                Some(id),
                Some(link),
                delay,
            );
        } else {
            for l in self.link_ids().collect::<Vec<_>>() {
                self.queue_link(now, l, req.clone(), 10);
            }
        }
    }

    /// A Seqno Request from neighbour `n` ([RFC 8966 §3.8.1.2]).
    #[allow(clippy::too_many_arguments)]
    fn handle_seqno_request(
        &mut self,
        now: Instant,
        n: NeighbourId,
        prefix: Prefix,
        src: Prefix,
        hop_count: u8,
        seqno: SeqNo,
        id: RouterId,
    ) {
        let link = self.nb(n).link;
        let installed = self.find_installed(&prefix, &src);
        if self.find_xroute(&prefix, &src).is_some() && installed.is_none() {
            if hop_count > 0 && id == self.cfg.router_id && seqno.gt(self.seqno) {
                if seqno.minus(self.seqno) > 100 {
                    // Hopelessly out of date.
                    return;
                }
                self.seqno = self.seqno.plus(1);
            }
            self.send_update(now, Some(link), true, prefix, src);
            return;
        }
        if let Some(r) = installed {
            let route = &self.routes[r];
            if id != route.router_id || !seqno.gt(route.seqno) {
                self.send_update(now, Some(link), true, prefix, src);
                return;
            }
        }
        if hop_count <= 1 {
            return;
        }
        if let Some(r) = installed {
            if id == self.routes[r].router_id && seqno.minus(self.routes[r].seqno) > 100 {
                return;
            }
        }
        if self.request_redundant(now, link, &prefix, &src, seqno, id) {
            return;
        }
        let mut successor = installed
            .filter(|&r| self.routes[r].metric() < INFINITY)
            .map(|r| self.routes[r].neighbour);
        if successor.is_none() || successor == Some(n) {
            // Never send a request back to its requestor.
            successor = self
                .find_best_route(now, &prefix, &src, false, Some(n))
                .filter(|&r| self.routes[r].metric() < INFINITY)
                .map(|r| self.routes[r].neighbour);
        }
        let Some(succ) = successor.filter(|&s| s != n) else {
            return;
        };
        self.queue_neighbour(
            now,
            succ,
            Out::SeqnoRequest {
                prefix,
                src,
                seqno,
                hop_count: hop_count - 1,
                router_id: id,
            },
            10,
        );
        self.record_resend(
            now,
            ResendKind::Request,
            prefix,
            src,
            seqno,
            Some(id),
            Some(link),
            0,
        );
    }

    // ----- output ------------------------------------------------------------------

    fn queue_link(&mut self, now: Instant, link: LinkId, m: Out, delay: u64) {
        let at = now.add_millis(self.rng.roughly_ms(delay));
        let out = &mut self.link_mut(link).out;
        out.push(m);
        out.schedule(at);
    }

    fn queue_neighbour(&mut self, now: Instant, n: NeighbourId, m: Out, delay: u64) {
        let at = now.add_millis(self.rng.roughly_ms(delay));
        let out = self.nb_out(n);
        out.push(m);
        out.schedule(at);
    }

    /// babeld `jitter`: a non-urgent message waits up to half a flush interval.
    fn flush_jitter(&mut self, link: LinkId) -> u64 {
        let iv = (self.link(link).cfg.hello_interval_ms as u64 / 2).min(2000);
        self.rng.roughly_ms(iv / 2)
    }

    /// A scheduled multicast Hello, and IHUs (all every third Hello, else only for
    /// marginal neighbours) ([RFC 8966 §3.4.1]).
    fn send_hello(&mut self, now: Instant, link: LinkId) {
        let hello_ms = self.link(link).cfg.hello_interval_ms as u64;
        let next = now.add_millis(self.rng.roughly_ms(hello_ms));
        let jitter = if self.link(link).hello_urgent {
            self.rng.roughly_ms(10)
        } else {
            self.flush_jitter(link)
        };
        let l = self.link_mut(link);
        l.hello_urgent = false;
        // A Hello still waiting in the queue (an unscheduled one for RTT) is
        // replaced under its own seqno: a fresh seqno would leave a gap the
        // neighbour counts as a lost Hello.
        if l.out.hello.is_none() {
            l.hello_seqno = l.hello_seqno.plus(1);
        }
        let interval = hello_ms.div_ceil(10).min(0xFFFF) as u16;
        l.out.hello = Some((false, l.hello_seqno, interval));
        l.hello_at = next;
        l.out.schedule(now.add_millis(jitter));
        let full = l.hello_seqno.0 % 3 == 0;
        let ids: Vec<NeighbourId> = self
            .neighbour_ids()
            .filter(|&n| self.nb(n).link == link)
            .collect();
        for n in ids {
            let nb = self.nb(n);
            if full || nb.txcost >= 384 || nb.hello.reach & 0xF000 != 0xF000 {
                self.send_ihu(now, n);
            }
        }
    }

    fn send_ihu(&mut self, now: Instant, n: NeighbourId) {
        let link = self.nb(n).link;
        let cfg = self.link(link).cfg.clone();
        let nb = self.nb(n);
        let rxcost = nb.rxcost(&cfg, now);
        let interval = ((cfg.hello_interval_ms as u64 * 3).div_ceil(10)).min(0xFFFF) as u16;
        let rtt = cfg.timestamps
            && nb.hello_send_us != 0
            && nb
                .hello_rtt_receive_time
                .is_some_and(|t| now.millis_since(t) < 1_000_000);
        let timestamps = if rtt {
            Some((
                nb.hello_send_us,
                time_us(nb.hello_rtt_receive_time.unwrap_or(now)),
            ))
        } else {
            self.nb_mut(n).hello_send_us = 0;
            None
        };
        let address = self.nb(n).address;
        let jitter = self.flush_jitter(link);
        let l = self.link_mut(link);
        if timestamps.is_some() && l.out.hello.is_none() {
            // The RTT needs a Hello in the same packet: an unscheduled one.
            l.hello_seqno = l.hello_seqno.plus(1);
            l.out.hello = Some((false, l.hello_seqno, 0));
        }
        l.out.ihus.retain(|i| i.address != address);
        l.out.ihus.push(Ihu {
            address,
            rxcost,
            interval,
            timestamps,
        });
        l.out.schedule(now.add_millis(jitter));
    }

    /// Schedules an Update for a destination on one link or all ([RFC 8966 §3.7]).
    fn send_update(
        &mut self,
        now: Instant,
        link: Option<LinkId>,
        urgent: bool,
        prefix: Prefix,
        src: Prefix,
    ) {
        let links: Vec<LinkId> = match link {
            Some(l) => vec![l],
            None => self.link_ids().collect(),
        };
        for l in links {
            let hello = self.link(l).cfg.hello_interval_ms as u64;
            let delay = self
                .rng
                .roughly_ms(hello.min(if urgent { 100 } else { 4000 }));
            let lk = self.link_mut(l);
            if !lk.pending_updates.contains(&(prefix, src)) {
                lk.pending_updates.push((prefix, src));
            }
            let at = now.add_millis(delay);
            lk.update_flush_at = Some(lk.update_flush_at.map_or(at, |f| f.min(at)));
        }
        if link.is_none() {
            if let Some(r) = self.find_installed(&prefix, &src) {
                if self.routes[r].metric() < INFINITY {
                    let (seqno, id) = (self.routes[r].seqno, self.routes[r].router_id);
                    self.satisfy_request(&prefix, &src, seqno, id, None);
                }
            }
        }
    }

    fn send_update_resend(&mut self, now: Instant, prefix: Prefix, src: Prefix) {
        self.send_update(now, None, true, prefix, src);
        let delay = self.resend_delay();
        self.record_resend(
            now,
            ResendKind::Update,
            prefix,
            src,
            SeqNo(0),
            None,
            None,
            delay,
        );
    }

    /// Full dump on a link: our prefixes and every selected route. `urgent`
    /// for one that someone waits for, periodic ones are not.
    fn send_full_update(&mut self, now: Instant, link: LinkId, urgent: bool) {
        let mut dests: Vec<(Prefix, Prefix)> =
            self.xroutes.iter().map(|x| (x.prefix, x.src)).collect();
        dests.extend(
            self.routes
                .iter()
                .filter(|r| r.installed)
                .map(|r| (r.prefix, r.src_prefix)),
        );
        for (p, s) in dests {
            self.send_update(now, Some(link), urgent, p, s);
        }
        let iv = self.link(link).cfg.update_interval_ms as u64;
        let next = now.add_millis(self.rng.roughly_ms(iv));
        let l = self.link_mut(link);
        l.update_at = next;
        l.last_full_update = Some(now);
        l.dump_due = None;
    }

    /// babeld `flushupdates`: turns pending destinations into Update TLVs with the
    /// current tables, updating the feasibility distances we advertise.
    fn flush_updates(&mut self, now: Instant, link: LinkId) {
        let mut pending = core::mem::take(&mut self.link_mut(link).pending_updates);
        self.link_mut(link).update_flush_at = None;
        let myid = self.cfg.router_id;
        // Same router-id together, host routes of the router-id first, longer first:
        // babeld's order, which compresses best.
        let id_of = |e: &Engine, p: &Prefix, s: &Prefix| {
            e.find_installed(p, s)
                .map(|r| e.routes[r].router_id)
                .unwrap_or(myid)
        };
        let mut keyed: Vec<(RouterId, Prefix, Prefix)> = pending
            .drain(..)
            .map(|(p, s)| (id_of(self, &p, &s), p, s))
            .collect();
        keyed.sort_by(|a, b| {
            let ma = a.1.len() == 128 && a.1.octets()[8..] == a.0 .0;
            let mb = b.1.len() == 128 && b.1.octets()[8..] == b.0 .0;
            a.0.cmp(&b.0)
                .then(mb.cmp(&ma))
                .then(b.1.len().cmp(&a.1.len()))
                .then(a.1.cmp(&b.1))
                .then(a.2.cmp(&b.2))
        });
        keyed.dedup_by(|a, b| a.1 == b.1 && a.2 == b.2);
        for (_, prefix, src) in keyed {
            let installed = self.find_installed(&prefix, &src);
            let out = if let Some(x) = self.find_xroute(&prefix, &src) {
                Out::Update {
                    router_id: myid,
                    prefix,
                    src,
                    seqno: self.seqno,
                    metric: x.metric,
                }
            } else if let Some(r) = installed {
                let route = &self.routes[r];
                let (seqno, metric, id, n) = (
                    route.seqno,
                    route.metric(),
                    route.router_id,
                    route.neighbour,
                );
                if metric < INFINITY {
                    self.satisfy_request(&prefix, &src, seqno, id, Some(link));
                }
                if self.link(link).cfg.split_horizon && self.nb(n).link == link {
                    continue;
                }
                if let Some(s) = self.find_source(id, &prefix, &src) {
                    self.sources[s].update(now, seqno, metric);
                }
                Out::Update {
                    router_id: id,
                    prefix,
                    src,
                    seqno,
                    metric,
                }
            } else {
                // No route any more: retract.
                Out::Update {
                    router_id: myid,
                    prefix,
                    src,
                    seqno: self.seqno,
                    metric: INFINITY,
                }
            };
            let l = self.link_mut(link);
            // A later Update for the same destination replaces an unsent one.
            l.out.msgs.retain(|m| !matches!(m, Out::Update { prefix: p, src: s, .. } if *p == prefix && *s == src));
            l.out.msgs.push(out);
        }
        let at = now.add_millis(self.rng.roughly_ms(10));
        self.link_mut(link).out.schedule(at);
    }

    /// The next packet to send, written into `buf`. Call until it returns `None`.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        for l in self.link_ids().collect::<Vec<_>>() {
            let q = &self.link(l).out;
            if !q.is_empty() && q.flush_at.is_some_and(|t| t <= now) {
                return self.serialize(now, l, None, buf);
            }
        }
        for n in self.neighbour_ids().collect::<Vec<_>>() {
            let q = &self.neighbours[n.0].as_ref()?.out;
            if !q.is_empty() && q.flush_at.is_some_and(|t| t <= now) {
                let link = self.nb(n).link;
                return self.serialize(now, link, Some(n), buf);
            }
        }
        None
    }

    fn serialize(
        &mut self,
        now: Instant,
        link: LinkId,
        to: Option<NeighbourId>,
        buf: &mut [u8],
    ) -> Option<Transmit> {
        let (local, timestamps, max_packet, update_interval) = {
            let c = &self.link(link).cfg;
            (c.local, c.timestamps, c.max_packet, c.update_interval_ms)
        };
        let dst = to.map_or(MULTICAST, |n| self.nb(n).address);
        let sign = self.cfg.mac.sign.clone();
        let reserve = if sign.is_some() { TRAILER_SPACE } else { 0 };
        let limit = buf.len().min(max_packet);
        let mut q = match to {
            None => core::mem::take(&mut self.link_mut(link).out),
            Some(n) => core::mem::take(self.nb_out(n)),
        };
        let mut b = Builder::new(&mut buf[..limit], reserve).ok()?;
        if let Some((unicast, seqno, interval)) = q.hello.take() {
            let ts = timestamps.then(|| time_us(now));
            if b.hello(unicast, seqno.0, interval, ts).is_err() {
                q.hello = Some((unicast, seqno, interval));
            }
        }
        let mut ihus = core::mem::take(&mut q.ihus).into_iter();
        for ihu in ihus.by_ref() {
            if b.ihu(ihu.rxcost, ihu.interval, ihu.address, ihu.timestamps)
                .is_err()
            {
                q.ihus.push(ihu);
                break;
            }
        }
        q.ihus.extend(ihus);
        let update_cs = (update_interval as u64).div_ceil(10).min(0xFFFF) as u16;
        let mut msgs = core::mem::take(&mut q.msgs).into_iter();
        for m in msgs.by_ref() {
            let r = match &m {
                Out::Update {
                    router_id,
                    prefix,
                    src,
                    seqno,
                    metric,
                } => b.update(*router_id, prefix, src, update_cs, seqno.0, *metric),
                Out::WildcardRetraction(s) => b.wildcard_retraction(s.0),
                Out::RouteRequest(p) => b.route_request(p.as_ref().map(|(p, s)| (p, s))),
                Out::SeqnoRequest {
                    prefix,
                    src,
                    seqno,
                    hop_count,
                    router_id,
                } => b.seqno_request(prefix, src, seqno.0, *hop_count, *router_id),
                Out::Ack(nonce) => b.push(&Tlv::Ack {
                    nonce: *nonce,
                    sub: SubTlvs(&[]),
                }),
                Out::ChallengeRequest(nonce) => b.push(&Tlv::ChallengeRequest { nonce }),
                Out::ChallengeReply(nonce) => b.push(&Tlv::ChallengeReply { nonce }),
            };
            if r.is_err() {
                q.msgs.push(m);
                break;
            }
        }
        q.msgs.extend(msgs);
        if q.is_empty() {
            q.flush_at = None;
        }
        let empty = b.is_empty();
        match to {
            None => self.link_mut(link).out = q,
            Some(n) => *self.nb_out(n) = q,
        }
        if empty {
            return None;
        }
        if let Some(key) = &sign {
            let l = self.link_mut(link);
            if l.pc == 0 {
                let fresh = self.rng.next().to_be_bytes();
                self.link_mut(link).index = fresh;
            }
            let l = self.link_mut(link);
            let (pc, index) = (l.pc, l.index);
            l.pc = l.pc.wrapping_add(1);
            // The PC belongs to the body (the MAC covers it), in the space kept for it.
            b.push_reserved(&Tlv::Pc { pc, index: &index }).ok()?;
            b.finish_body();
            let mut mac = [0u8; MAX_MAC_LEN];
            let n = key.compute(local, PORT, dst, PORT, b.as_bytes(), &mut mac);
            b.push(&Tlv::Mac { mac: &mac[..n] }).ok()?;
        }
        let len = b.finish();
        self.stats.packets_out += 1;
        Some(Transmit { link, dst, len })
    }

    // ----- input -------------------------------------------------------------------

    /// Processes one received datagram: `from` is the sender (link-local, port), `to`
    /// the address it was sent to (ff02::1:6 or ours).
    pub fn handle_packet(
        &mut self,
        now: Instant,
        link: LinkId,
        from: SocketAddrV6,
        to: Ipv6Addr,
        bytes: &[u8],
    ) {
        self.stats.packets_in += 1;
        if !self.links.get(link.0).is_some_and(Option::is_some)
            || !from.ip().is_unicast_link_local()
        {
            self.stats.packets_dropped += 1;
            return;
        }
        let Ok(pkt) = Packet::new_checked(bytes) else {
            self.stats.packets_dropped += 1;
            return;
        };
        let src = *from.ip();
        let mut neighbour = None;
        if self.cfg.mac.enabled() {
            let keys = [self.cfg.mac.sign.clone(), self.cfg.mac.accept.clone()];
            let good = keys
                .iter()
                .flatten()
                .any(|k: &MacKey| k.verify(src, from.port(), to, PORT, &pkt) == MacCheck::Good);
            if good {
                match self.check_replay(now, link, src, to, pkt.body()) {
                    Some(n) => neighbour = Some(n),
                    None => {
                        self.stats.replays_rejected += 1;
                        return;
                    }
                }
            } else {
                self.stats.mac_rejected += 1;
                if !self.cfg.mac.accept_bad_signatures {
                    return;
                }
            }
        }
        let n = match neighbour {
            Some(n) => n,
            None => match self.find_or_create_neighbour(now, link, src) {
                Some(n) => n,
                None => return,
            },
        };
        let local = self.link(link).cfg.local;
        let mut have_hello_rtt = false;
        let mut ihu_ts: Option<(u32, u32)> = None;
        for m in Decoder::new(pkt.body()) {
            let Ok(m) = m else {
                self.stats.tlvs_ignored += 1;
                continue;
            };
            match m {
                Message::AckReq { nonce, interval } => {
                    self.queue_neighbour(now, n, Out::Ack(nonce), interval as u64 * 6);
                }
                Message::Ack { .. } => {}
                Message::Hello {
                    unicast,
                    seqno,
                    interval,
                    timestamp,
                } => {
                    let nb = self.nb_mut(n);
                    let hist = if unicast {
                        &mut nb.uhello
                    } else {
                        &mut nb.hello
                    };
                    let changed = hist.receive(now, SeqNo(seqno), interval);
                    // Two Hellos in a row after silence: a new (or returning)
                    // neighbour. As babeld: tell it our rxcost now, rather than
                    // a hello interval later, and ask for its routes.
                    let newish = hist.reach & 0xFC00 == 0xC000;
                    if let Some(ts) = timestamp {
                        nb.hello_send_us = ts;
                        nb.hello_rtt_receive_time = Some(now);
                        have_hello_rtt = true;
                    }
                    // Its first two Hellos: it needs two of ours as well before
                    // 2-out-of-3 gives us a cost on its side, so send them soon
                    // (a burst of two per appearance, never a storm).
                    let fresh = newish || hist.reach & 0xFC00 == 0x8000;
                    self.update_neighbour_metric(now, n, changed);
                    if newish {
                        self.send_ihu(now, n);
                        self.queue_neighbour(now, n, Out::RouteRequest(None), 10);
                    }
                    if fresh {
                        self.hello_soon(link, now.add_millis(100));
                    }
                    if interval > 0 {
                        self.schedule_neighbours_check(now, interval as u64 * 15);
                    }
                }
                Message::Ihu {
                    rxcost,
                    interval,
                    address,
                    timestamps,
                } => {
                    if address.is_none_or(|a| a == local) {
                        let nb = self.nb_mut(n);
                        let changed = nb.txcost != rxcost;
                        nb.txcost = rxcost;
                        nb.ihu_time = now;
                        nb.ihu_interval = interval;
                        if timestamps.is_some() {
                            ihu_ts = timestamps;
                        }
                        self.update_neighbour_metric(now, n, changed);
                        if interval > 0 {
                            self.schedule_neighbours_check(now, interval as u64 * 45);
                        }
                    }
                }
                Message::Update(u) => self.handle_update(now, n, src, u),
                Message::RouteRequest { prefix, src_prefix } => match prefix {
                    None => {
                        self.send_ihu(now, n);
                        // A newcomer waits for this: answer at once, but at most
                        // one dump a second per link, so that nodes booting
                        // together cause no update storm. A request within the
                        // guard is answered when it ends rather than dropped
                        // (as babeld does): the requester may have missed the
                        // last dump, as a LAN neighbour does until our beacon
                        // proved us to it.
                        let due = self
                            .link(link)
                            .last_full_update
                            .map_or(now, |t| t.add_millis(DUMP_GUARD_MS).max(now));
                        if due <= now {
                            self.send_full_update(now, link, true);
                        } else {
                            let l = self.link_mut(link);
                            l.dump_due = Some(l.dump_due.map_or(due, |d| d.min(due)));
                        }
                    }
                    Some(p) => self.send_update(now, Some(link), false, p, src_prefix),
                },
                Message::SeqnoRequest {
                    prefix,
                    src_prefix,
                    seqno,
                    hop_count,
                    router_id,
                } => self.handle_seqno_request(
                    now,
                    n,
                    prefix,
                    src_prefix,
                    hop_count,
                    SeqNo(seqno),
                    router_id,
                ),
                Message::Pc { .. }
                | Message::ChallengeRequest { .. }
                | Message::ChallengeReply { .. } => {}
            }
            if self.neighbours[n.0].is_none() {
                return;
            }
        }
        // RTT from a Hello and an IHU echoing our timestamp in the same packet.
        if let (true, Some((origin, receive))) = (have_hello_rtt, ihu_ts) {
            let nb = self.nb(n);
            if origin == 0 || receive == 0 || nb.hello_send_us == 0 {
                return;
            }
            let remote = nb.hello_send_us.wrapping_sub(receive) as i32;
            let local_wait = time_us(now).wrapping_sub(origin) as i32;
            if remote < 0 || local_wait < 0 || remote > 600_000_000 || local_wait > 600_000_000 {
                return;
            }
            let rtt = (local_wait - remote).max(0) as u32;
            let cfg = self.link(link).cfg.clone();
            let before = self.nb(n).rttcost(&cfg, now);
            self.nb_mut(n).rtt_sample(&cfg, now, rtt);
            let changed = self.nb(n).rttcost(&cfg, now) != before;
            self.update_neighbour_metric(now, n, changed);
        }
    }

    fn handle_update(&mut self, now: Instant, n: NeighbourId, from: Ipv6Addr, u: UpdateMsg) {
        let Some(prefix) = u.prefix else {
            // Wildcard retraction.
            self.retract_neighbour_routes(now, n);
            return;
        };
        if prefix.is_v4() {
            // IPv4 is not routed by re6st-lite.
            self.stats.tlvs_ignored += 1;
            return;
        }
        let next_hop = u.next_hop.filter(|a| !a.is_unspecified()).unwrap_or(from);
        self.update_route(
            now,
            n,
            u.router_id,
            prefix,
            u.src_prefix,
            SeqNo(u.seqno),
            u.metric,
            u.interval,
            next_hop,
        );
    }

    /// RFC 8967 §4.3 replay protection (babeld `preparse_packet`): the packet's PC must
    /// grow; an unknown index triggers a challenge. Returns the neighbour if accepted.
    fn check_replay(
        &mut self,
        now: Instant,
        link: LinkId,
        from: Ipv6Addr,
        to: Ipv6Addr,
        body: &[u8],
    ) -> Option<NeighbourId> {
        let mut pc: Option<(u32, [u8; 32], u8)> = None;
        let mut nonce: Option<Vec<u8>> = None;
        let mut success = false;
        let mut n: Option<NeighbourId> = None;
        let mut tlvs = super::wire::TlvIter::new(body);
        while let Some(Ok((t, v))) = tlvs.next_raw() {
            match t {
                kind::PC => {
                    if pc.is_some() {
                        continue;
                    }
                    if v.len() < 4 || v.len() > 36 {
                        break;
                    }
                    let mut index = [0u8; 32];
                    index[..v.len() - 4].copy_from_slice(&v[4..]);
                    pc = Some((
                        u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                        index,
                        (v.len() - 4) as u8,
                    ));
                }
                kind::CHALLENGE_REQUEST => {
                    if to.is_multicast() {
                        continue;
                    }
                    if v.len() > 192 {
                        break;
                    }
                    nonce = Some(v.to_vec());
                }
                kind::CHALLENGE_REPLY => {
                    if v.len() > 192 {
                        break;
                    }
                    let id = n.or_else(|| self.find_or_create_neighbour(now, link, from));
                    let Some(id) = id else { continue };
                    n = Some(id);
                    let m = &mut self.nb_mut(id).mac;
                    if m.challenge_deadline.is_some_and(|d| now <= d) && v == m.nonce {
                        success = true;
                        m.challenge_deadline = None;
                    }
                }
                _ => {}
            }
        }
        let mut accept = false;
        match pc {
            None => {}
            Some((pcv, index, ilen)) if success => {
                let m = &mut self.nb_mut(n?).mac;
                m.index = Some((index, ilen));
                m.pc_multicast = pcv;
                m.pc_unicast = pcv;
                accept = true;
            }
            Some((pcv, index, ilen)) => {
                let id = n.or_else(|| self.find_or_create_neighbour(now, link, from))?;
                n = Some(id);
                let known = self
                    .nb(id)
                    .mac
                    .index
                    .is_some_and(|(i, l)| l == ilen && i == index);
                if !known {
                    self.send_challenge_request(now, id);
                } else {
                    let m = &mut self.nb_mut(id).mac;
                    let last = if to.is_multicast() {
                        &mut m.pc_multicast
                    } else {
                        &mut m.pc_unicast
                    };
                    if pcv <= *last {
                        // Replayed or reordered: ignore its challenge request too.
                        nonce = None;
                    } else {
                        *last = pcv;
                        accept = true;
                    }
                }
            }
        }
        if let Some(nonce) = nonce {
            let id = n.or_else(|| self.find_or_create_neighbour(now, link, from))?;
            n = Some(id);
            let m = &mut self.nb_mut(id).mac;
            if m.challenge_reply_after.is_none_or(|t| now > t) {
                m.challenge_reply_after = Some(now.add_millis(300));
                self.queue_neighbour(now, id, Out::ChallengeReply(nonce), 10);
                // The challenger dropped what we sent so far, our Hello too:
                // another, after the reply, saves it a hello interval.
                self.hello_soon(link, now.add_millis(50));
            }
        }
        if accept {
            n
        } else {
            None
        }
    }

    fn send_challenge_request(&mut self, now: Instant, n: NeighbourId) {
        if self
            .nb(n)
            .mac
            .challenge_request_after
            .is_some_and(|t| now <= t)
        {
            return;
        }
        let nonce = self.rng.next().to_be_bytes();
        let m = &mut self.nb_mut(n).mac;
        m.nonce = nonce;
        m.challenge_deadline = Some(now.add_millis(30_000));
        m.challenge_request_after = Some(now.add_millis(300));
        self.stats.challenges_sent += 1;
        self.queue_neighbour(now, n, Out::ChallengeRequest(nonce), 10);
    }

    // ----- timers ------------------------------------------------------------------

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.check_neighbours_at {
            let ms = self.check_neighbours(now);
            self.check_neighbours_at = now.add_millis(self.rng.roughly_ms((3 * ms / 2).max(10)));
        }
        if now >= self.expiry_at {
            self.expire_routes(now);
            self.expire_resends(now);
            self.expiry_at = now.add_millis(self.rng.roughly_ms(30_000));
        }
        if now >= self.source_expiry_at {
            self.expire_sources(now);
            self.source_expiry_at = now.add_millis(self.rng.roughly_ms(300_000));
        }
        for l in self.link_ids().collect::<Vec<_>>() {
            if now >= self.link(l).hello_at {
                self.send_hello(now, l);
            }
            if self.link(l).dump_due.is_some_and(|t| now >= t) {
                self.send_full_update(now, l, true);
            } else if now >= self.link(l).update_at {
                self.send_full_update(now, l, false);
            }
            if self.link(l).update_flush_at.is_some_and(|t| now >= t) {
                self.flush_updates(now, l);
            }
        }
        if self
            .requests
            .iter()
            .any(|r| r.due(now).is_some_and(|t| t <= now))
        {
            self.do_resend(now);
        }
    }

    /// When `handle_timeout` must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self
            .check_neighbours_at
            .min(self.expiry_at)
            .min(self.source_expiry_at);
        for l in self.links.iter().flatten() {
            t = t.min(l.hello_at).min(l.update_at);
            for x in [
                l.dump_due,
                l.update_flush_at,
                l.out.flush_at.filter(|_| !l.out.is_empty()),
            ]
            .into_iter()
            .flatten()
            {
                t = t.min(x);
            }
        }
        for s in self.neighbours.iter().flatten() {
            if let Some(x) = s.out.flush_at.filter(|_| !s.out.is_empty()) {
                t = t.min(x);
            }
        }
        for r in self.requests.iter().filter(|r| r.delay > 0 && r.max > 0) {
            t = t.min(r.time.add_millis(r.delay));
        }
        Some(t)
    }

    /// The next route change for the forwarding table and the kernel.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<RouteEvent> {
        self.events.pop_front()
    }
}

/// A neighbour as the control socket or tests see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighbourInfo {
    pub link: LinkId,
    pub address: Ipv6Addr,
    pub reach: u16,
    pub txcost: u16,
    pub rxcost: u16,
    pub rtt_us: Option<u32>,
    /// C(neighbour) with RTT penalty and multiplier.
    pub cost: u16,
    pub cost_multiplier: u16,
}

/// A free slot in a table of at most `cap` entries, growing it if needed.
fn free_slot<T>(table: &mut Vec<Option<T>>, cap: usize) -> Option<usize> {
    if let Some(i) = table.iter().position(Option::is_none) {
        return Some(i);
    }
    (table.len() < cap).then(|| {
        table.push(None);
        table.len() - 1
    })
}
