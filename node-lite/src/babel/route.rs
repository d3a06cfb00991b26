//! Source table and route table entries, the feasibility condition and metric smoothing
//! ([RFC 8966 §3.2.5, §3.2.6, §3.5.1]; babeld 1.12 `source.c`, `route.c`).

use std::net::Ipv6Addr;

use super::seqno::SeqNo;
use super::wire::{Prefix, RouterId, INFINITY};
use super::NeighbourId;
use crate::time::Instant;

/// Seconds after which a source entry's feasibility distance no longer binds
/// (babeld `SOURCE_GC_TIME`).
pub const SOURCE_GC_SECS: u64 = 200;

/// A source: (router-id, prefix, source prefix) with its feasibility distance
/// ([RFC 8966 §3.2.5]).
#[derive(Debug, Clone)]
pub struct Source {
    pub router_id: RouterId,
    pub prefix: Prefix,
    pub src_prefix: Prefix,
    /// Feasibility distance: (seqno, metric) of the best route we advertised.
    pub seqno: SeqNo,
    pub metric: u16,
    pub time: Instant,
}

impl Source {
    pub fn matches(&self, id: RouterId, prefix: &Prefix, src: &Prefix) -> bool {
        self.router_id == id && self.prefix == *prefix && self.src_prefix == *src
    }

    fn expired(&self, now: Instant) -> bool {
        now.millis_since(self.time) > SOURCE_GC_SECS * 1000
    }

    /// The feasibility condition ([RFC 8966 §3.5.1]): an update is feasible when it is a
    /// retraction, or newer, or as new with a strictly smaller metric.
    pub fn feasible(&self, now: Instant, seqno: SeqNo, refmetric: u16) -> bool {
        if self.expired(now) || refmetric == INFINITY {
            return true;
        }
        seqno.gt(self.seqno) || (seqno == self.seqno && refmetric < self.metric)
    }

    /// Records an advertisement we sent ([RFC 8966 §3.7.3]).
    pub fn update(&mut self, now: Instant, seqno: SeqNo, metric: u16) {
        if metric == INFINITY {
            return;
        }
        // An expired source is overwritten unconditionally, so that a router that lost
        // its seqno is not shut out forever.
        if self.expired(now)
            || self.seqno.lt(seqno)
            || (self.seqno == seqno && self.metric > metric)
        {
            self.seqno = seqno;
            self.metric = metric;
        }
        self.time = now;
    }
}

/// A route table entry ([RFC 8966 §3.2.6]).
#[derive(Debug, Clone)]
pub struct Route {
    pub prefix: Prefix,
    pub src_prefix: Prefix,
    pub router_id: RouterId,
    pub neighbour: NeighbourId,
    pub next_hop: Ipv6Addr,
    pub seqno: SeqNo,
    pub refmetric: u16,
    /// Neighbour cost when last computed.
    pub cost: u16,
    pub time: Instant,
    /// Seconds the route stays valid without an update.
    pub hold_time: u64,
    pub smoothed_metric: u16,
    pub smoothed_time: u64,
    pub installed: bool,
}

impl Route {
    /// M(c, m) = c + m, saturating at infinity ([RFC 8966 §3.5.2]).
    pub fn metric(&self) -> u16 {
        (self.refmetric as u32 + self.cost as u32).min(INFINITY as u32) as u16
    }

    /// Past 7/8 of its hold time: flushed by the expiry pass (babeld `route_old`).
    pub fn old(&self, now: Instant) -> bool {
        now.millis_since(self.time) > self.hold_time * 1000 * 7 / 8
    }

    pub fn expired(&self, now: Instant) -> bool {
        now.millis_since(self.time) > self.hold_time * 1000
    }
}

/// Hold time for an update interval in centiseconds (babeld: about 3.5 intervals plus
/// slack, at least 15 s).
pub fn hold_time(interval_cs: u16) -> u64 {
    let i = interval_cs as u64;
    (4 * i / 100 + i / 50).max(15)
}

/// babeld's `two_to_the_one_over_hl`: 2^(1/hl) in 16.16 fixed point.
fn two_to_the_one_over(half_life: u32) -> i64 {
    match half_life {
        0 => 0,
        1 => 131_072,
        2 => 92_682,
        3 => 82_570,
        4 => 77_935,
        h => 0x10000 + 45_426 / h as i64,
    }
}

/// Moves `route.smoothed_metric` towards the metric, exponentially with the given
/// half-life in seconds; `rough` randomises each step like babeld's `roughly`.
pub fn smooth(route: &mut Route, now: Instant, half_life: u32, mut rough: impl FnMut(i64) -> i64) {
    let metric = route.metric() as i64;
    let now_s = now.as_secs();
    if half_life == 0
        || metric == INFINITY as i64
        || route.smoothed_time > now_s
        || route.smoothed_metric as i64 == metric
    {
        route.smoothed_metric = metric as u16;
        route.smoothed_time = now_s;
        return;
    }
    let k = two_to_the_one_over(half_life);
    let mut sm = route.smoothed_metric as i64;
    let mut t = route.smoothed_time;
    while t + half_life as u64 <= now_s {
        sm += rough(metric - sm) / 2;
        t += half_life as u64;
    }
    while t < now_s {
        sm += rough(metric - sm) * (k - 0x10000) / 0x10000;
        t += 1;
    }
    if (metric - sm).abs() < 4 {
        sm = metric;
    }
    route.smoothed_metric = sm.clamp(0, INFINITY as i64) as u16;
    route.smoothed_time = now_s;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src() -> Source {
        Source {
            router_id: RouterId([1; 8]),
            prefix: Prefix::DEFAULT,
            src_prefix: Prefix::DEFAULT,
            seqno: SeqNo(10),
            metric: 300,
            time: Instant::from_secs(1000),
        }
    }

    #[test]
    fn feasibility_condition() {
        let s = src();
        let now = Instant::from_secs(1010);
        assert!(s.feasible(now, SeqNo(11), 5000), "newer seqno");
        assert!(
            s.feasible(now, SeqNo(10), 299),
            "same seqno, smaller metric"
        );
        assert!(!s.feasible(now, SeqNo(10), 300), "same seqno, same metric");
        assert!(!s.feasible(now, SeqNo(9), 0), "older seqno");
        assert!(
            s.feasible(now, SeqNo(9), INFINITY),
            "retractions are feasible"
        );
        assert!(
            s.feasible(Instant::from_secs(1201), SeqNo(9), 0),
            "expired sources do not bind"
        );
    }

    #[test]
    fn feasibility_distance_only_decreases() {
        let mut s = src();
        let now = Instant::from_secs(1010);
        s.update(now, SeqNo(10), 400);
        assert_eq!((s.seqno, s.metric), (SeqNo(10), 300));
        s.update(now, SeqNo(10), 200);
        assert_eq!(s.metric, 200);
        s.update(now, SeqNo(11), 900);
        assert_eq!((s.seqno, s.metric), (SeqNo(11), 900));
        s.update(now, SeqNo(12), INFINITY);
        assert_eq!(s.seqno, SeqNo(11));
    }

    #[test]
    fn smoothing_halves_the_gap_per_half_life() {
        let mut r = Route {
            prefix: Prefix::DEFAULT,
            src_prefix: Prefix::DEFAULT,
            router_id: RouterId([1; 8]),
            neighbour: NeighbourId(0),
            next_hop: Ipv6Addr::LOCALHOST,
            seqno: SeqNo(0),
            refmetric: 0,
            cost: 1000,
            time: Instant::ZERO,
            hold_time: 60,
            smoothed_metric: 3000,
            smoothed_time: 0,
            installed: false,
        };
        smooth(&mut r, Instant::from_secs(4), 4, |d| d);
        assert_eq!(r.smoothed_metric, 2000);
        smooth(&mut r, Instant::from_secs(6), 4, |d| d);
        assert!(
            r.smoothed_metric > 1600 && r.smoothed_metric < 1800,
            "{}",
            r.smoothed_metric
        );
        smooth(&mut r, Instant::from_secs(100), 4, |d| d);
        assert_eq!(r.smoothed_metric, 1000);
    }

    #[test]
    fn hold_time_follows_the_interval() {
        assert_eq!(hold_time(400), 24);
        assert_eq!(hold_time(6000), 360);
        assert_eq!(hold_time(10), 15);
    }
}
