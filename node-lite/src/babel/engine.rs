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

/// Jitter and nonces, seeded by the caller.
#[derive(Debug, Clone)]
struct Rng(crate::rng::XorShift);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
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
    /// The tunnel layer lost the path: neighbours here cost infinity (as if
    /// the link were down) until it comes back, their state kept.
    suspended: bool,
    /// On a LAN link whose neighbours are proven by beacons: what each may
    /// originate (its certificate's prefix). None: no check (tunnels use
    /// `cfg.peer_prefix`; a MAC-keyed LAN trusts its key holders).
    origins: Option<Vec<(Ipv6Addr, Prefix)>>,
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
mod input;
mod neighbours;
mod output;
mod resend;
mod routes;

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
        let mut rng = Rng(crate::rng::XorShift::new(cfg.seed));
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
            suspended: false,
            origins: None,
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

    /// On LAN `link`, the neighbour at `address` proved (by its beacon) that
    /// it is the node of `prefix`: that is all it may originate, and, from
    /// the first call on, a neighbour of the link that proved nothing may
    /// originate nothing. Relayed routes are not affected.
    pub fn set_neighbour_origin(&mut self, link: LinkId, address: Ipv6Addr, prefix: Prefix) {
        if let Some(Some(l)) = self.links.get_mut(link.0) {
            let list = l.origins.get_or_insert_with(Vec::new);
            list.retain(|(a, _)| *a != address);
            list.push((address, prefix));
        }
    }

    /// Restricts what the peer of a tunnel may originate to its certificate's prefix.
    pub fn set_peer_prefix(&mut self, link: LinkId, prefix: Option<Prefix>) {
        if let Some(Some(l)) = self.links.get_mut(link.0) {
            l.cfg.peer_prefix = prefix;
        }
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

    /// The prefixes we originate: (prefix, source prefix, metric).
    pub fn xroutes(&self) -> impl Iterator<Item = (Prefix, Prefix, u16)> + '_ {
        self.xroutes.iter().map(|x| (x.prefix, x.src, x.metric))
    }

    fn find_xroute(&self, prefix: &Prefix, src: &Prefix) -> Option<XRoute> {
        self.xroutes
            .iter()
            .find(|x| x.prefix == *prefix && x.src == *src)
            .copied()
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
