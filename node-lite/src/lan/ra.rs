//! The router advertisement schedule of one LAN interface ([RFC 4861 §6.2]),
//! sans-IO: fed solicitations and other routers' advertisements with an
//! injected instant, it says what to send and when to wake.
//!
//! - Unsolicited advertisements at a random interval in
//!   [MinRtrAdvInterval, MaxRtrAdvInterval]; the first
//!   [`MAX_INITIAL_RTR_ADVERTISEMENTS`] at most
//!   [`MAX_INITIAL_RTR_ADVERT_INTERVAL_MS`] apart (§6.2.4).
//! - A valid solicitation brings an advertisement after a random delay of at
//!   most [`MAX_RA_DELAY_TIME_MS`] (§6.2.6), unicast to the host that asked
//!   (as the RFC allows, and odhcpd does), so a host is not kept waiting by
//!   the multicast rate limit; at most [`MAX_PENDING_UNICAST`] wait at once.
//!   A solicitation from the unspecified address, or beyond that cap, gets
//!   the multicast answer, never sooner than [`MIN_DELAY_BETWEEN_RAS_MS`]
//!   after the previous multicast advertisement.
//! - Not fighting another router: an advertisement from another router for
//!   one of our prefixes, or from an address of this very host (another RA
//!   daemon such as odhcpd on the same interface), makes the node yield:
//!   it stops advertising until [`CONFLICT_HOLD_MS`] pass without one.
//! - Withdrawal: [`Advertiser::final_advert`] is the advertisement with
//!   every lifetime zero (§6.2.5), so hosts drop the default route and the
//!   prefix at once (their addresses become deprecated; RFC 4862 §5.5.3 e
//!   keeps them valid up to two more hours against forged RAs).
//!
//! [RFC 4861 §6.2]: https://www.rfc-editor.org/rfc/rfc4861#section-6.2

use std::net::Ipv6Addr;

use super::wire::{
    self, Preference, PrefixInfo, Rdnss, RouteInfo, RouterAdvert, RouterSolicit, ROUTER_ADVERT,
    ROUTER_SOLICIT,
};
use crate::net::Ipv6Net;
use crate::time::Instant;

/// Protocol constants (RFC 4861 §10), in milliseconds.
pub const MAX_INITIAL_RTR_ADVERT_INTERVAL_MS: u64 = 16_000;
pub const MAX_INITIAL_RTR_ADVERTISEMENTS: u32 = 3;
pub const MIN_DELAY_BETWEEN_RAS_MS: u64 = 3_000;
pub const MAX_RA_DELAY_TIME_MS: u64 = 500;
/// MaxRtrAdvInterval's default (RFC 4861 §6.2.1).
pub const MAX_RTR_ADV_INTERVAL_MS: u64 = 600_000;
/// Unicast answers to solicitations waiting at once; more solicitations
/// share the multicast answer.
pub const MAX_PENDING_UNICAST: usize = 8;
/// RDNSS servers carried (the first ones configured), which also bounds the
/// advertisement's size: it always fits 1280 octets.
pub const MAX_RDNSS: usize = 8;
/// How soon to try again when the interface cannot send yet (its
/// link-local address is still tentative: an advertisement from any other
/// source would be ignored by hosts, RFC 4861 §6.1.2).
pub const NOT_READY_RETRY_MS: u64 = 500;
/// How long the node stays silent after another router's conflicting
/// advertisement: two of our periods.
pub const CONFLICT_HOLD_MS: u64 = 2 * MAX_RTR_ADV_INTERVAL_MS;
/// Prefix lifetimes (seconds): hosts keep the prefix a day, prefer it for
/// four hours, through every refresh; far longer than our period, as RFC
/// 4861 §6.2.1 asks, short enough that a vanished node's prefix goes.
pub const VALID_LIFETIME_S: u32 = 86_400;
pub const PREFERRED_LIFETIME_S: u32 = 14_400;
/// The hop limit hosts should use (0 would leave theirs).
pub const CUR_HOP_LIMIT: u8 = 64;

/// What one interface advertises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The /64s on the link, for SLAAC (A and L flags).
    pub prefixes: Vec<Ipv6Net>,
    /// Prefixes reachable through us beyond the link (Route Information):
    /// the re6st network.
    pub routes: Vec<Ipv6Net>,
    pub rdnss: Vec<Ipv6Addr>,
    /// The link's MTU, announced so every host agrees on it.
    pub mtu: Option<u32>,
    /// The interface's Ethernet address.
    pub source_lladdr: Option<[u8; 6]>,
    /// MaxRtrAdvInterval, at least 4 s (RFC 4861 §6.2.1).
    pub max_interval_ms: u64,
}

impl Config {
    pub fn new(prefixes: Vec<Ipv6Net>) -> Self {
        Config {
            prefixes,
            routes: Vec::new(),
            rdnss: Vec::new(),
            mtu: None,
            source_lladdr: None,
            max_interval_ms: MAX_RTR_ADV_INTERVAL_MS,
        }
    }

    fn max_interval(&self) -> u64 {
        self.max_interval_ms.clamp(4_000, 1_800_000)
    }

    /// MinRtrAdvInterval: 0.33 × MaxRtrAdvInterval (§6.2.1), at least 3 s.
    fn min_interval(&self) -> u64 {
        (self.max_interval() * 33 / 100).max(3_000)
    }

    /// AdvDefaultLifetime: 3 × MaxRtrAdvInterval, in seconds.
    fn router_lifetime_s(&self) -> u16 {
        (3 * self.max_interval() / 1000).min(9000) as u16
    }
}

/// What a received message meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// A solicitation: an answer is scheduled (unless we yield).
    Solicited,
    /// Another router's advertisement that leaves us alone.
    OtherRouter,
    /// Another router advertises our prefix, or another daemon on this
    /// host advertises here: the node stops advertising. `first` when this
    /// starts a silence (worth a warning).
    Conflict { first: bool },
}

/// Why a message was ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Not hop limit 255: it crossed a router (RFC 4861 §6.1).
    HopLimit(u8),
    /// An advertisement not from a link-local address (§6.1.2).
    NotLinkLocal,
    Malformed(wire::Error),
    /// Some other ICMPv6 type.
    NotNd(u8),
}

/// The advertiser of one interface.
pub struct Advertiser {
    config: Config,
    rng: u64,
    /// Next multicast advertisement.
    next: Instant,
    /// When the last one went out.
    last_sent: Option<Instant>,
    sent: u32,
    /// Silent until then (another router owns the prefix).
    yield_until: Option<Instant>,
    /// Unicast answers to solicitations: when, to whom.
    unicast: Vec<(Instant, Ipv6Addr)>,
}

/// An advertisement to send: to `dst` (all-nodes, or the host that
/// solicited), `len` octets of the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub dst: Ipv6Addr,
    pub len: usize,
}

/// ff02::1.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

impl Advertiser {
    /// Start advertising at `now` (the first advertisement is due at once).
    pub fn new(config: Config, now: Instant, seed: u64) -> Self {
        Advertiser {
            config,
            rng: seed | 1,
            next: now,
            last_sent: None,
            sent: 0,
            yield_until: None,
            unicast: Vec::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// True while another router's advertisements keep us silent.
    pub fn yielding(&self, now: Instant) -> bool {
        self.yield_until.is_some_and(|u| now < u)
    }

    /// When to call [`poll_transmit`](Self::poll_transmit) next.
    pub fn poll_timeout(&self) -> Instant {
        match self.yield_until {
            Some(u) => u.max(self.next),
            None => self
                .unicast
                .iter()
                .map(|u| u.0)
                .fold(self.next, Instant::min),
        }
    }

    /// An advertisement due at `now`, written into `out`; call again until
    /// None. Each call consumes what it returns, also when `out` is too
    /// small (then None), so a caller cannot be kept waking for nothing.
    pub fn poll_transmit(&mut self, now: Instant, out: &mut [u8]) -> Option<Transmit> {
        if let Some(u) = self.yield_until {
            if now < u {
                return None;
            }
            // The other router has been quiet long enough: start over, with
            // fast initial advertisements.
            self.yield_until = None;
            self.sent = 0;
            self.next = now;
        }
        if let Some(i) = self.unicast.iter().position(|u| u.0 <= now) {
            let (_, dst) = self.unicast.swap_remove(i);
            let len = self.advert(false).emit(out)?;
            return Some(Transmit { dst, len });
        }
        if now < self.next {
            return None;
        }
        let n = self.advert(false).emit(out);
        self.sent = self.sent.saturating_add(1);
        self.last_sent = Some(now);
        let (lo, hi) = (self.config.min_interval(), self.config.max_interval());
        let mut interval = lo + self.random(hi - lo + 1);
        if self.sent <= MAX_INITIAL_RTR_ADVERTISEMENTS {
            interval = interval.min(MAX_INITIAL_RTR_ADVERT_INTERVAL_MS);
        }
        self.next = now.add_millis(interval);
        // Whoever waited for a unicast answer soon gets this one.
        let soon = now.add_millis(MAX_RA_DELAY_TIME_MS);
        self.unicast.retain(|u| u.0 > soon);
        n.map(|len| Transmit {
            dst: ALL_NODES,
            len,
        })
    }

    /// The interface cannot send now (no usable link-local address yet):
    /// whatever is due waits [`NOT_READY_RETRY_MS`], nothing is lost.
    pub fn not_ready(&mut self, now: Instant) {
        let later = now.add_millis(NOT_READY_RETRY_MS);
        self.next = self.next.max(later);
        for u in &mut self.unicast {
            u.0 = u.0.max(later);
        }
    }

    /// An ICMPv6 message from `src` received on the interface with hop limit
    /// `hop_limit`; `from_this_host` when `src` is one of this host's
    /// addresses (our own advertisements are not looped back to us).
    pub fn handle_message(
        &mut self,
        now: Instant,
        src: Ipv6Addr,
        hop_limit: u8,
        msg: &[u8],
        from_this_host: bool,
    ) -> Result<Received, Ignored> {
        let kind = wire::icmp_type(msg).unwrap_or(0);
        if kind != ROUTER_SOLICIT && kind != ROUTER_ADVERT {
            return Err(Ignored::NotNd(kind));
        }
        if hop_limit != 255 {
            return Err(Ignored::HopLimit(hop_limit));
        }
        if kind == ROUTER_SOLICIT {
            RouterSolicit::parse(msg, src).map_err(Ignored::Malformed)?;
            if !self.yielding(now) {
                self.solicited(now, src);
            }
            return Ok(Received::Solicited);
        }
        if !src.is_unicast_link_local() {
            return Err(Ignored::NotLinkLocal);
        }
        let ra = RouterAdvert::parse(msg).map_err(Ignored::Malformed)?;
        let ours = |p: &PrefixInfo| {
            self.config
                .prefixes
                .iter()
                .any(|q| q.covers(&p.prefix) || p.prefix.covers(q))
        };
        if !from_this_host && !ra.prefixes.iter().any(ours) {
            return Ok(Received::OtherRouter);
        }
        let first = !self.yielding(now);
        self.yield_until = Some(now.add_millis(CONFLICT_HOLD_MS));
        self.unicast.clear();
        Ok(Received::Conflict { first })
    }

    /// Schedule the answer to a solicitation from `src` (§6.2.6).
    fn solicited(&mut self, now: Instant, src: Ipv6Addr) {
        let delay = self.random(MAX_RA_DELAY_TIME_MS + 1);
        let mut at = now.add_millis(delay);
        if at >= self.next {
            return; // the next multicast advertisement comes sooner
        }
        let asked = self.unicast.iter().any(|u| u.1 == src);
        if !src.is_unspecified() && !asked && self.unicast.len() < MAX_PENDING_UNICAST {
            self.unicast.push((at, src));
            return;
        }
        if asked {
            return;
        }
        if let Some(last) = self.last_sent {
            let earliest = last.add_millis(MIN_DELAY_BETWEEN_RAS_MS);
            if earliest > now {
                at = earliest.add_millis(delay);
            }
        }
        self.next = self.next.min(at);
    }

    /// The advertisement for the current configuration; `withdraw` makes
    /// every lifetime zero.
    pub fn advert(&self, withdraw: bool) -> RouterAdvert {
        let c = &self.config;
        let life = |s: u32| if withdraw { 0 } else { s };
        let router_lifetime = u32::from(c.router_lifetime_s());
        RouterAdvert {
            cur_hop_limit: CUR_HOP_LIMIT,
            // Low: where a native IPv6 router also advertises, it keeps the
            // default route; hosts reach the network through the Route
            // Information option, or through us when no one else routes.
            preference: Preference::Low,
            router_lifetime: life(router_lifetime) as u16,
            source_lladdr: c.source_lladdr,
            mtu: c.mtu,
            prefixes: c
                .prefixes
                .iter()
                .map(|&prefix| PrefixInfo {
                    prefix,
                    on_link: true,
                    autonomous: prefix.prefix_len() == 64,
                    valid_lifetime: life(VALID_LIFETIME_S),
                    preferred_lifetime: life(PREFERRED_LIFETIME_S),
                })
                .collect(),
            routes: c
                .routes
                .iter()
                .map(|&prefix| RouteInfo {
                    prefix,
                    preference: Preference::Medium,
                    lifetime: life(router_lifetime),
                })
                .collect(),
            rdnss: if c.rdnss.is_empty() {
                Vec::new()
            } else {
                vec![Rdnss {
                    lifetime: life(router_lifetime),
                    servers: c.rdnss.iter().take(MAX_RDNSS).copied().collect(),
                }]
            },
            ..RouterAdvert::empty()
        }
    }

    /// The withdrawal to multicast when the interface stops advertising
    /// (written into `out`), or None if there is nothing to withdraw: we
    /// never advertised, or another router owns the prefix now.
    pub fn final_advert(&self, now: Instant, out: &mut [u8]) -> Option<usize> {
        if self.sent == 0 || self.yielding(now) {
            return None;
        }
        self.advert(true).emit(out)
    }

    /// Uniform in [0, n) (xorshift64; n > 0).
    fn random(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    fn config() -> Config {
        let mut c = Config::new(vec![net("2001:db8:42:1::/64")]);
        c.routes = vec![net("2001:db8:42::/48")];
        c.rdnss = vec!["2001:db8:42:1::53".parse().unwrap()];
        c.mtu = Some(1500);
        c.source_lladdr = Some([2, 0, 0, 0, 0, 1]);
        c
    }

    const LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 7);

    /// Run `a` from `from` to `until`, returning the instants it sent at.
    fn run(a: &mut Advertiser, from: Instant, until: Instant) -> Vec<u64> {
        let mut t = from;
        let mut sent = Vec::new();
        let mut out = [0u8; 512];
        for _ in 0..10_000 {
            if a.poll_transmit(t, &mut out).is_some() {
                sent.push(t.as_millis());
            }
            let next = a.poll_timeout();
            assert!(next > t, "woken for nothing at {t:?}");
            if next > until {
                break;
            }
            t = next;
        }
        sent
    }

    #[test]
    fn the_advertisement_carries_the_config() {
        let a = Advertiser::new(config(), Instant::ZERO, 1);
        let ra = a.advert(false);
        assert_eq!(ra.router_lifetime, 1800);
        assert_eq!(ra.preference, Preference::Low);
        let p = ra.prefixes[0];
        assert!(p.on_link && p.autonomous);
        assert_eq!((p.valid_lifetime, p.preferred_lifetime), (86_400, 14_400));
        assert_eq!(ra.routes[0].prefix, net("2001:db8:42::/48"));
        assert_eq!(ra.rdnss[0].servers.len(), 1);
        assert_eq!(ra.mtu, Some(1500));
        let w = a.advert(true);
        assert_eq!(w.router_lifetime, 0);
        assert_eq!(
            (
                w.prefixes[0].valid_lifetime,
                w.prefixes[0].preferred_lifetime
            ),
            (0, 0)
        );
        assert_eq!((w.routes[0].lifetime, w.rdnss[0].lifetime), (0, 0));
        // A prefix that is not a /64 is on-link only: SLAAC needs a /64.
        let b = Advertiser::new(
            Config::new(vec![net("2001:db8:42:10::/60")]),
            Instant::ZERO,
            1,
        );
        assert!(!b.advert(false).prefixes[0].autonomous);
    }

    #[test]
    fn initial_advertisements_are_fast_then_randomised() {
        for seed in 1..50 {
            let mut a = Advertiser::new(config(), Instant::ZERO, seed);
            let sent = run(&mut a, Instant::ZERO, Instant::from_secs(7200));
            assert_eq!(sent[0], 0);
            let gaps: Vec<u64> = sent.windows(2).map(|w| w[1] - w[0]).collect();
            for (i, g) in gaps.iter().enumerate() {
                if i < MAX_INITIAL_RTR_ADVERTISEMENTS as usize {
                    assert_eq!(*g, MAX_INITIAL_RTR_ADVERT_INTERVAL_MS, "seed {seed}");
                } else {
                    assert!((198_000..=600_000).contains(g), "seed {seed}: {g}");
                }
            }
            assert!(gaps.len() >= 13, "{gaps:?}");
            let late = &gaps[3..];
            assert!(
                late.iter().any(|g| *g != late[0]),
                "not randomised: {late:?}"
            );
        }
    }

    fn rs() -> Vec<u8> {
        let mut out = [0u8; 16];
        let n = RouterSolicit {
            source_lladdr: Some([2, 0, 0, 0, 0, 9]),
        }
        .emit(&mut out)
        .unwrap();
        out[..n].to_vec()
    }

    #[test]
    fn solicitations_are_answered_soon_but_multicast_not_too_often() {
        let mut a = Advertiser::new(config(), Instant::ZERO, 5);
        let mut out = [0u8; 512];
        let first = a.poll_transmit(Instant::ZERO, &mut out).unwrap();
        assert_eq!(first.dst, ALL_NODES);
        // 1 s after a multicast advertisement, a host asks: a unicast
        // answer within MAX_RA_DELAY_TIME.
        let t = Instant::from_secs(1);
        assert_eq!(
            a.handle_message(t, LL, 255, &rs(), false),
            Ok(Received::Solicited)
        );
        // Asking again changes nothing.
        a.handle_message(t, LL, 255, &rs(), false).unwrap();
        let at = a.poll_timeout();
        assert!(at.millis_since(t) <= MAX_RA_DELAY_TIME_MS, "{at:?}");
        let tx = a.poll_transmit(at, &mut out).unwrap();
        assert_eq!(tx.dst, LL);
        assert_eq!(RouterAdvert::parse(&out[..tx.len]), Ok(a.advert(false)));
        assert_eq!(a.poll_transmit(at, &mut out), None);
        assert_eq!(a.poll_timeout(), Instant::from_secs(16));
        // From the unspecified address: multicast, not before 3 s after the
        // previous multicast one.
        a.handle_message(t, Ipv6Addr::UNSPECIFIED, 255, &rs()[..8], false)
            .unwrap();
        let at = a.poll_timeout().as_millis();
        assert!((3_000..=3_500).contains(&at), "{at}");
        assert_eq!(a.poll_transmit(t, &mut out), None);
        let tx = a.poll_transmit(Instant::from_millis(at), &mut out).unwrap();
        assert_eq!(tx.dst, ALL_NODES);
        // Long after: within MAX_RA_DELAY_TIME.
        let t = Instant::from_secs(10);
        a.handle_message(t, Ipv6Addr::UNSPECIFIED, 255, &rs()[..8], false)
            .unwrap();
        let d = a.poll_timeout().millis_since(t);
        assert!(d <= MAX_RA_DELAY_TIME_MS, "{d}");
        // A periodic advertisement due sooner answers instead.
        let mut b = Advertiser::new(config(), Instant::ZERO, 5);
        b.poll_transmit(Instant::ZERO, &mut out).unwrap();
        b.handle_message(Instant::from_millis(15_999), LL, 255, &rs(), false)
            .unwrap();
        let at = b.poll_timeout().as_millis();
        assert!((15_999..=16_000).contains(&at), "{at}");
    }

    /// Destinations of what `a` sends for `n` solicitations at `t`, until
    /// 4 s later.
    fn answers(a: &mut Advertiser, t: Instant, n: u16) -> Vec<Ipv6Addr> {
        for i in 0..n {
            let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 1, i);
            a.handle_message(t, src, 255, &rs(), false).unwrap();
        }
        let (mut sent, mut now, mut out) = (Vec::new(), t, [0u8; 512]);
        while now <= t.add_millis(4_000) {
            while let Some(tx) = a.poll_transmit(now, &mut out) {
                sent.push(tx.dst);
            }
            now = a.poll_timeout().max(now.add_millis(1));
        }
        sent
    }

    #[test]
    fn a_solicitation_flood_is_bounded() {
        let mut out = [0u8; 512];
        let mut a = Advertiser::new(config(), Instant::ZERO, 5);
        a.poll_transmit(Instant::ZERO, &mut out).unwrap();
        let n = MAX_PENDING_UNICAST as u16;
        let sent = answers(&mut a, Instant::from_secs(5), n);
        assert_eq!(sent.len(), MAX_PENDING_UNICAST, "{sent:?}");
        assert!(!sent.contains(&ALL_NODES));
        // Beyond the cap, one multicast answer for all.
        let mut a = Advertiser::new(config(), Instant::ZERO, 5);
        a.poll_transmit(Instant::ZERO, &mut out).unwrap();
        let sent = answers(&mut a, Instant::from_secs(5), 1000);
        assert!(sent.contains(&ALL_NODES), "{sent:?}");
        assert!(sent.len() <= MAX_PENDING_UNICAST + 1, "{sent:?}");
    }

    #[test]
    fn invalid_messages_are_ignored() {
        let mut a = Advertiser::new(config(), Instant::ZERO, 5);
        let t = Instant::from_secs(30);
        assert_eq!(
            a.handle_message(t, LL, 64, &rs(), false),
            Err(Ignored::HopLimit(64))
        );
        assert_eq!(
            a.handle_message(t, LL, 255, &[128, 0, 0, 0], false),
            Err(Ignored::NotNd(128))
        );
        assert_eq!(
            a.handle_message(t, Ipv6Addr::UNSPECIFIED, 255, &rs(), false),
            Err(Ignored::Malformed(wire::Error::UnspecifiedWithLladdr))
        );
        let mut out = [0u8; 512];
        let n = a.advert(false).emit(&mut out).unwrap();
        let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            a.handle_message(t, global, 255, &out[..n], false),
            Err(Ignored::NotLinkLocal)
        );
        assert_eq!(
            a.handle_message(t, LL, 255, &[], false),
            Err(Ignored::NotNd(0))
        );
        assert!(!a.yielding(t));
    }

    fn other_ra(prefix: &str) -> Vec<u8> {
        let mut ra = RouterAdvert::empty();
        ra.router_lifetime = 1800;
        ra.prefixes.push(PrefixInfo {
            prefix: net(prefix),
            on_link: true,
            autonomous: true,
            valid_lifetime: 100,
            preferred_lifetime: 100,
        });
        let mut out = [0u8; 128];
        let n = ra.emit(&mut out).unwrap();
        out[..n].to_vec()
    }

    #[test]
    fn another_router_for_our_prefix_silences_us() {
        let mut a = Advertiser::new(config(), Instant::ZERO, 9);
        let mut out = [0u8; 512];
        assert!(a.poll_transmit(Instant::ZERO, &mut out).is_some());
        // A native router with its own prefix: we coexist.
        let t = Instant::from_secs(5);
        let native = other_ra("2001:db8:99::/64");
        assert_eq!(
            a.handle_message(t, LL, 255, &native, false),
            Ok(Received::OtherRouter)
        );
        assert!(!a.yielding(t));
        // Someone else advertising our /64: we go quiet, and stay quiet
        // (no answer to solicitations, no withdrawal of their prefix).
        let ours = other_ra("2001:db8:42:1::/64");
        assert_eq!(
            a.handle_message(t, LL, 255, &ours, false),
            Ok(Received::Conflict { first: true })
        );
        assert_eq!(
            a.handle_message(t, LL, 255, &ours, false),
            Ok(Received::Conflict { first: false })
        );
        a.handle_message(t, LL, 255, &rs(), false).unwrap();
        let quiet = run(&mut a, t, t.add_millis(CONFLICT_HOLD_MS - 1));
        assert!(quiet.is_empty(), "{quiet:?}");
        assert_eq!(a.final_advert(t, &mut out), None);
        // The other router gone for CONFLICT_HOLD: we start again, fast.
        let back = t.add_millis(CONFLICT_HOLD_MS);
        assert_eq!(a.poll_timeout(), back);
        let sent = run(&mut a, back, back.add_millis(40_000));
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(a.final_advert(back, &mut out).is_some());
        // Another daemon on this host (same link-local address), whatever
        // it advertises: we yield too.
        assert_eq!(
            a.handle_message(back, LL, 255, &native, true),
            Ok(Received::Conflict { first: true })
        );
    }

    #[test]
    fn an_interface_not_ready_delays_without_losing() {
        let mut a = Advertiser::new(config(), Instant::ZERO, 3);
        let mut out = [0u8; 512];
        a.not_ready(Instant::ZERO);
        assert_eq!(a.poll_timeout(), Instant::from_millis(NOT_READY_RETRY_MS));
        assert_eq!(a.poll_transmit(Instant::ZERO, &mut out), None);
        let t = a.poll_timeout();
        assert_eq!(a.poll_transmit(t, &mut out).unwrap().dst, ALL_NODES);
        // Still three fast initial advertisements in all.
        let sent = run(&mut a, t, t.add_millis(40_000));
        assert_eq!(sent.len(), 2, "{sent:?}");
    }

    #[test]
    fn withdrawal_only_after_advertising() {
        let mut a = Advertiser::new(config(), Instant::ZERO, 3);
        let mut out = [0u8; 512];
        assert_eq!(a.final_advert(Instant::ZERO, &mut out), None);
        a.poll_transmit(Instant::ZERO, &mut out).unwrap();
        let n = a.final_advert(Instant::ZERO, &mut out).unwrap();
        let ra = RouterAdvert::parse(&out[..n]).unwrap();
        assert_eq!(ra, a.advert(true));
        assert_eq!(ra.router_lifetime, 0);
    }
}
