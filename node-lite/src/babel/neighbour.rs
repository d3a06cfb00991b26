//! The neighbour table entry: Hello history, IHU state, link cost and RTT
//! ([RFC 8966 §3.4], Appendix A; babeld 1.12 `neighbour.c`).
//!
//! Intervals on the wire are centiseconds; times here are milliseconds.
//!
//! [RFC 8966 §3.4]: https://www.rfc-editor.org/rfc/rfc8966#section-3.4

use std::net::Ipv6Addr;

use super::config::LinkConfig;
use super::seqno::SeqNo;
use super::wire::INFINITY;
use super::LinkId;
use crate::time::Instant;

/// Received Hellos of one kind (multicast or unicast): a 16-bit window, newest in the
/// top bit ([RFC 8966 §3.4.1]).
#[derive(Debug, Clone, Copy, Default)]
pub struct HelloHistory {
    pub reach: u16,
    /// Seqno of the last Hello; `None` before the first.
    pub seqno: Option<SeqNo>,
    /// Announced interval, centiseconds.
    pub interval: u16,
    /// When the last Hello (or the last accounted-for missed Hello) was due.
    pub time: Instant,
}

impl HelloHistory {
    /// Accounts for a received Hello; returns whether the link cost may have changed.
    pub fn receive(&mut self, now: Instant, seqno: SeqNo, interval: u16) -> bool {
        let mut changed = false;
        let mut missed: i32 = 0;
        if let (Some(last), true) = (self.seqno, self.reach > 0) {
            missed = seqno.minus(last) as i16 as i32 - 1;
            if missed < -8 {
                // The neighbour rebooted and lost its seqno: start over.
                self.reach = 0;
                missed = 0;
                changed = true;
            } else if missed < 0 {
                // A late Hello (bufferbloat): undo the misses we already counted.
                self.reach = self.reach.checked_shl((-missed) as u32).unwrap_or(0);
                missed = 0;
                changed = true;
            }
        }
        if interval != 0 {
            self.time = now;
            self.interval = interval;
        }
        if missed > 0 {
            self.reach = if missed >= 16 {
                0
            } else {
                self.reach >> missed
            };
            changed = true;
        }
        self.seqno = Some(seqno);
        self.reach = (self.reach >> 1) | 0x8000;
        if self.reach & 0xFC00 != 0xFC00 {
            changed = true;
        }
        changed
    }

    /// Accounts for Hellos that should have arrived by `now` ([RFC 8966 §3.4.1]: a
    /// Hello is missed when 1.5 intervals pass without it... babeld waits 0.7 + 1).
    pub fn check_missed(&mut self, now: Instant) -> bool {
        let missed = if self.interval > 0 {
            let iv = self.interval as i64 * 10;
            (now.millis_since(self.time) as i64 - self.interval as i64 * 7) / iv
        } else {
            16
        };
        if missed <= 0 {
            return false;
        }
        self.time = self
            .time
            .add_millis((missed * self.interval as i64 * 10) as u64);
        self.reach = if missed >= 16 {
            0
        } else {
            self.reach >> missed
        };
        if let Some(s) = self.seqno {
            self.seqno = Some(s.plus(missed as u16));
        }
        true
    }
}

/// babeld's "to lose one Hello is a misfortune, to lose two is carelessness"
/// ([RFC 8966 Appendix A.2.1]).
pub fn two_out_of_three(reach: u16) -> bool {
    if reach & 0xC000 == 0xC000 {
        true
    } else if reach & 0xC000 == 0 {
        false
    } else {
        reach & 0x2000 != 0
    }
}

/// A neighbour: one address on one link ([RFC 8966 §3.2.4]).
#[derive(Debug, Clone)]
pub struct Neighbour {
    pub link: LinkId,
    pub address: Ipv6Addr,
    pub hello: HelloHistory,
    pub uhello: HelloHistory,
    /// Cost the neighbour reports for hearing us (from its IHU).
    pub txcost: u16,
    pub ihu_time: Instant,
    /// Centiseconds.
    pub ihu_interval: u16,
    /// Seqno of the unicast Hellos we send it.
    pub hello_seqno: SeqNo,
    /// Its last Hello's timestamp (its clock, µs) and when we got it (our clock).
    pub hello_send_us: u32,
    pub hello_rtt_receive_time: Option<Instant>,
    /// Smoothed RTT, µs, and when it was last updated.
    pub rtt_us: u32,
    pub rtt_time: Option<Instant>,
    /// Cost scale, 256 = neutral, 0 = unusable (re6st uses 4096 to drain a tunnel).
    pub cost_multiplier: u16,
    pub mac: NeighbourMac,
}

/// RFC 8967 replay protection state ([RFC 8967 §3.1]).
#[derive(Debug, Clone, Default)]
pub struct NeighbourMac {
    /// The neighbour's index, once a challenge has succeeded.
    pub index: Option<([u8; 32], u8)>,
    /// Last PC accepted on multicast and unicast.
    pub pc_multicast: u32,
    pub pc_unicast: u32,
    /// Our outstanding challenge.
    pub nonce: [u8; 8],
    pub challenge_deadline: Option<Instant>,
    pub challenge_request_after: Option<Instant>,
    pub challenge_reply_after: Option<Instant>,
}

impl Neighbour {
    pub fn new(link: LinkId, address: Ipv6Addr, now: Instant) -> Self {
        Neighbour {
            link,
            address,
            hello: HelloHistory::default(),
            uhello: HelloHistory::default(),
            txcost: INFINITY,
            ihu_time: now,
            ihu_interval: 0,
            hello_seqno: SeqNo(0),
            hello_send_us: 0,
            hello_rtt_receive_time: None,
            rtt_us: 0,
            rtt_time: None,
            cost_multiplier: 256,
            mac: NeighbourMac::default(),
        }
    }

    /// The cost of receiving from this neighbour ([RFC 8966 Appendix A.2]).
    pub fn rxcost(&self, link: &LinkConfig, now: Instant) -> u16 {
        let delay = now.millis_since(self.hello.time);
        let udelay = now.millis_since(self.uhello.time);
        let (reach, ureach) = (self.hello.reach, self.uhello.reach);
        if (reach & 0xFFF0 == 0 || delay >= 180_000) && (ureach & 0xFFF0 == 0 || udelay >= 180_000)
        {
            INFINITY
        } else if link.link_quality {
            // ETX: weight the two most recent Hellos more (Appendix A.2.2).
            let sreach = ((reach & 0x8000) >> 2) as u32
                + ((reach & 0x4000) >> 1) as u32
                + (reach & 0x3FFF) as u32;
            let mut cost = 0x8000u64 * link.cost as u64 / (sreach as u64 + 1);
            if delay >= 40_000 {
                cost = (cost * (delay - 20_000) + 10_000) / 20_000;
            }
            cost.min(INFINITY as u64) as u16
        } else if two_out_of_three(reach) || two_out_of_three(ureach) {
            link.cost
        } else {
            INFINITY
        }
    }

    /// Forgets the IHU-reported cost when IHUs stopped coming; returns whether it did.
    pub fn reset_txcost(&mut self, now: Instant) -> bool {
        let delay = now.millis_since(self.ihu_time);
        let iv = self.ihu_interval as u64 * 10;
        if iv > 0 && delay < iv * 3 {
            return false;
        }
        // Losing many packets means we have probably lost an IHU too.
        if delay >= 180_000 || self.hello.reach & 0xFFF0 == 0 || (iv > 0 && delay >= iv * 10) {
            self.txcost = INFINITY;
            self.ihu_time = now;
            return true;
        }
        false
    }

    pub fn valid_rtt(&self, now: Instant) -> bool {
        self.rtt_time.is_some_and(|t| now.millis_since(t) < 180_000)
    }

    /// RTT penalty: linear from 0 at `rtt-min` to `max-rtt-penalty` at `rtt-max`.
    pub fn rttcost(&self, link: &LinkConfig, now: Instant) -> u16 {
        let p = &link.rtt;
        if p.max_penalty == 0 || !self.valid_rtt(now) || self.rtt_us <= p.min_us {
            0
        } else if self.rtt_us <= p.max_us {
            (p.max_penalty as u64 * (self.rtt_us - p.min_us) as u64 / (p.max_us - p.min_us) as u64)
                as u16
        } else {
            p.max_penalty
        }
    }

    /// Feeds one RTT sample (µs) into the running average (babeld's rounding).
    pub fn rtt_sample(&mut self, link: &LinkConfig, now: Instant, rtt: u32) {
        if self.valid_rtt(now) {
            let d = link.rtt.decay.min(256) as u64;
            let smoothed = d * rtt as u64 + (256 - d) * self.rtt_us as u64;
            self.rtt_us = if self.rtt_us >= rtt {
                (smoothed / 256) as u32
            } else {
                smoothed.div_ceil(256) as u32
            };
        } else {
            // Be conservative with a new neighbour.
            self.rtt_us = rtt.saturating_mul(2);
        }
        self.rtt_time = Some(now);
    }

    /// The link cost C(neighbour) used in route metrics ([RFC 8966 §3.4.3]).
    pub fn cost(&self, link: &LinkConfig, now: Instant) -> u16 {
        let a = self.txcost;
        if a == INFINITY {
            return INFINITY;
        }
        let b = self.rxcost(link, now);
        if b == INFINITY {
            return INFINITY;
        }
        let mut cost: u32 = if !link.link_quality || (a < 256 && b < 256) {
            a as u32
        } else {
            // ETX = 1/(alpha*beta), with a = 256/alpha and b = 256/beta.
            let (a, b) = (a.max(256) as u32, b.max(256) as u32);
            (a * b + 128) >> 8
        };
        cost += self.rttcost(link, now) as u32;
        if self.cost_multiplier == 0 {
            return INFINITY;
        }
        cost = cost * self.cost_multiplier as u32 / 256;
        cost.min(INFINITY as u32) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::babel::config::LinkKind;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn two_out_of_three_rule() {
        assert!(two_out_of_three(0b1100_0000_0000_0000));
        assert!(two_out_of_three(0b1010_0000_0000_0000));
        assert!(two_out_of_three(0b0110_0000_0000_0000));
        assert!(!two_out_of_three(0b1001_1111_0000_0000));
        assert!(!two_out_of_three(0b0011_1111_0000_0000));
    }

    #[test]
    fn hello_history_counts_missed_hellos_and_recovers() {
        let mut h = HelloHistory::default();
        for i in 0..4u16 {
            h.receive(t(i as u64 * 1000), SeqNo(i), 100);
        }
        assert_eq!(h.reach, 0xF000);
        // Seqno 6 after 3: two missed.
        h.receive(t(6000), SeqNo(6), 100);
        assert_eq!(h.reach, 0b1001_1110_0000_0000);
        // Silence: at 1.7 intervals one Hello is missed, not before.
        assert!(!h.check_missed(t(7600)));
        assert!(h.check_missed(t(7800)));
        assert_eq!(h.reach, 0b0100_1111_0000_0000);
        assert_eq!(h.seqno, Some(SeqNo(7)));
        // A rebooted neighbour (seqno far behind) starts over.
        assert!(h.receive(t(9000), SeqNo(60_000), 100));
        assert_eq!(h.reach, 0x8000);
    }

    #[test]
    fn wired_cost_needs_two_of_three_and_an_ihu() {
        let link = LinkConfig::new(LinkKind::Wired, Ipv6Addr::LOCALHOST);
        let mut n = Neighbour::new(LinkId(0), Ipv6Addr::LOCALHOST, t(0));
        n.hello.receive(t(0), SeqNo(1), 400);
        assert_eq!(n.rxcost(&link, t(0)), INFINITY, "one Hello is not enough");
        n.hello.receive(t(4000), SeqNo(2), 400);
        assert_eq!(n.rxcost(&link, t(4000)), 96);
        assert_eq!(n.cost(&link, t(4000)), INFINITY, "no IHU yet");
        n.txcost = 96;
        assert_eq!(n.cost(&link, t(4000)), 96);
        n.cost_multiplier = 4096;
        assert_eq!(n.cost(&link, t(4000)), 96 * 16);
        n.cost_multiplier = 0;
        assert_eq!(n.cost(&link, t(4000)), INFINITY);
    }

    #[test]
    fn etx_on_lossy_links() {
        let link = LinkConfig::new(LinkKind::Wireless, Ipv6Addr::LOCALHOST);
        let mut n = Neighbour::new(LinkId(0), Ipv6Addr::LOCALHOST, t(0));
        for i in 0..16u16 {
            // Every other Hello lost.
            n.hello.receive(t(i as u64 * 8000), SeqNo(i * 2), 400);
        }
        let rx = n.rxcost(&link, t(120_000));
        assert!(rx > 400 && rx < 700, "{rx}");
        n.txcost = 256;
        let c = n.cost(&link, t(120_000));
        assert_eq!(c as u32, (rx as u32 * 256 + 128) >> 8);
    }

    #[test]
    fn rtt_cost_is_linear_between_min_and_max() {
        let link = LinkConfig::new(LinkKind::Tunnel, Ipv6Addr::LOCALHOST);
        let mut n = Neighbour::new(LinkId(0), Ipv6Addr::LOCALHOST, t(0));
        n.rtt_sample(&link, t(0), 127_500);
        assert_eq!(n.rtt_us, 255_000, "first sample doubled");
        assert_eq!(n.rttcost(&link, t(0)), (5000u32 * 245 / 490) as u16);
        // Decay 125/256 towards a 10 ms sample.
        n.rtt_sample(&link, t(1000), 10_000);
        assert_eq!(n.rtt_us, (125 * 10_000 + 131 * 255_000) / 256);
        n.rtt_sample(&link, t(2000), 900_000);
        n.rtt_sample(&link, t(3000), 900_000);
        n.rtt_sample(&link, t(4000), 900_000);
        assert_eq!(n.rttcost(&link, t(4000)), 5000);
        assert_eq!(n.rttcost(&link, t(200_000)), 0, "stale RTT ignored");
    }
}
