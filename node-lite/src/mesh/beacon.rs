//! LAN discovery beacons (sans-IO). On each `babel_interface` a node
//! multicasts, to ff02::1 UDP 326, the proof its tunnel handshake carries:
//! its certificate and its certificate key's signature over its tunnel
//! key. A neighbour that verifies it against the network CA (and CRL) lets
//! that link-local address speak Babel to it on the LAN. So two nodes of one
//! network meet with no registry and no internet, and a node of another
//! network is ignored.
//!
//! The beacon proves "a node of this network is on the link", not that this
//! very packet came from it: it can be replayed, as any unauthenticated Babel
//! packet on a LAN can be forged. The network's Babel MAC keys are what
//! protect a LAN against an active attacker there; the driver accepts any
//! neighbour that passes the MAC when keys are configured.
//!
//! Wire: `MAGIC ‖ port:u16 ‖ tunnel key:32 ‖ cert len:u16 ‖ cert ‖
//! signature len:u16 ‖ signature`, integers big-endian.

use std::net::Ipv6Addr;

use registry_client::Prefix;
use sha2::{Digest, Sha256};

use crate::time::Instant;
use crate::tunnel::cookie::TokenBucket;

pub const PORT: u16 = 326;
/// Distinct from every code of re6st's messages on the same port.
const MAGIC: &[u8; 8] = b"re6stLB\x01";
/// Period of unsolicited beacons.
pub const INTERVAL_MS: u64 = 30_000;
/// A neighbour stays trusted this long after its last beacon.
const TRUST_MS: u64 = 3 * INTERVAL_MS + 5_000;
/// A beacon from a newcomer is answered this soon (rate-limited by it).
const ANSWER_MS: u64 = 200;
const MIN_GAP_MS: u64 = 1_000;
/// RSA verifications: a burst of this many, then one per second.
const VERIFY_BURST: u32 = 4;
const VERIFY_PER_SEC: u32 = 1;
/// Neighbours remembered; more on one LAN is not a branch office.
const MAX_KNOWN: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Beacon<'a> {
    /// The sender's tunnel UDP port.
    pub port: u16,
    pub static_pub: [u8; 32],
    pub cert: &'a [u8],
    pub signature: &'a [u8],
}

impl<'a> Beacon<'a> {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(46 + self.cert.len() + self.signature.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.port.to_be_bytes());
        out.extend_from_slice(&self.static_pub);
        for field in [self.cert, self.signature] {
            out.extend_from_slice(&(field.len() as u16).to_be_bytes());
            out.extend_from_slice(field);
        }
        out
    }

    /// `None` for anything but one whole, well-formed beacon.
    pub fn parse(b: &'a [u8]) -> Option<Beacon<'a>> {
        let rest = b.strip_prefix(MAGIC)?;
        let (port, rest) = split(rest, 2)?;
        let (key, rest) = split(rest, 32)?;
        let (len, rest) = split(rest, 2)?;
        let (cert, rest) = split(rest, u16::from_be_bytes([len[0], len[1]]) as usize)?;
        let (len, rest) = split(rest, 2)?;
        let (signature, rest) = split(rest, u16::from_be_bytes([len[0], len[1]]) as usize)?;
        if !rest.is_empty() || cert.is_empty() || signature.is_empty() {
            return None;
        }
        Some(Beacon {
            port: u16::from_be_bytes([port[0], port[1]]),
            static_pub: key.try_into().ok()?,
            cert,
            signature,
        })
    }
}

fn split(b: &[u8], n: usize) -> Option<(&[u8], &[u8])> {
    (b.len() >= n).then(|| b.split_at(n))
}

/// What became of a received beacon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A neighbour seen for the first time (or again after it expired).
    New(Prefix),
    /// A known neighbour's periodic beacon: no verification needed.
    Known,
    Refused(String),
    /// Refused before: not verified (nor logged) again.
    Ignored,
    /// Too many verifications lately: dropped unread.
    RateLimited,
}

struct Known {
    ifindex: u32,
    addr: Ipv6Addr,
    digest: [u8; 32],
    prefix: Prefix,
    until: Instant,
}

/// Beacon schedule and the neighbours proven so far, on every interface.
pub struct Discovery {
    next_send: Instant,
    last_sent: Option<Instant>,
    known: Vec<Known>,
    /// Digests of beacons refused lately (another network's nodes, say).
    refused: Vec<[u8; 32]>,
    verifications: TokenBucket,
}

impl Discovery {
    /// The first beacon goes at once.
    pub fn new(now: Instant) -> Self {
        Discovery {
            next_send: now,
            last_sent: None,
            known: Vec::new(),
            refused: Vec::new(),
            verifications: TokenBucket::new(VERIFY_PER_SEC, VERIFY_BURST, now),
        }
    }

    /// Send the next beacon now (a new interface), keeping the neighbours
    /// proven on the others.
    pub fn announce(&mut self, now: Instant) {
        self.next_send = self.next_send.min(now);
    }

    pub fn poll_timeout(&self) -> Instant {
        self.known
            .iter()
            .map(|k| k.until)
            .fold(self.next_send, Instant::min)
    }

    /// Forget expired neighbours; true when a beacon is due on every
    /// interface now.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        self.known.retain(|k| k.until > now);
        if now < self.next_send {
            return false;
        }
        self.last_sent = Some(now);
        self.next_send = now.add_millis(INTERVAL_MS);
        true
    }

    /// A beacon from `addr` on interface `ifindex`. `verify` (the RSA work:
    /// certificate chain, CRL, dates, signature) runs only for beacons not
    /// seen before, within the rate limit.
    pub fn on_beacon(
        &mut self,
        now: Instant,
        ifindex: u32,
        addr: Ipv6Addr,
        raw: &[u8],
        verify: impl FnOnce(&Beacon) -> Result<Prefix, String>,
    ) -> Verdict {
        let Some(beacon) = Beacon::parse(raw) else {
            return Verdict::Refused("malformed beacon".into());
        };
        let digest: [u8; 32] = Sha256::digest(raw).into();
        let until = now.add_millis(TRUST_MS);
        if let Some(k) = self
            .known
            .iter_mut()
            .find(|k| k.ifindex == ifindex && k.addr == addr && k.digest == digest)
        {
            k.until = until;
            return Verdict::Known;
        }
        if self.refused.contains(&digest) {
            return Verdict::Ignored;
        }
        if !self.verifications.try_take(now) {
            return Verdict::RateLimited;
        }
        let prefix = match verify(&beacon) {
            Ok(p) => p,
            Err(e) => {
                if self.refused.len() >= MAX_KNOWN {
                    self.refused.remove(0);
                }
                self.refused.push(digest);
                return Verdict::Refused(e);
            }
        };
        self.known
            .retain(|k| !(k.ifindex == ifindex && k.addr == addr));
        if self.known.len() >= MAX_KNOWN {
            return Verdict::RateLimited;
        }
        self.known.push(Known {
            ifindex,
            addr,
            digest,
            prefix,
            until,
        });
        // A newcomer hears from us soon rather than in up to 30 s.
        let earliest = self
            .last_sent
            .map_or(now, |t| t.add_millis(MIN_GAP_MS))
            .max(now.add_millis(ANSWER_MS));
        self.next_send = self.next_send.min(earliest);
        Verdict::New(prefix)
    }

    /// May `addr` on `ifindex` speak Babel to us?
    pub fn trusted(&self, ifindex: u32, addr: Ipv6Addr) -> bool {
        self.known
            .iter()
            .any(|k| k.ifindex == ifindex && k.addr == addr)
    }

    /// The neighbours proven on the LAN: (interface, address, prefix).
    pub fn neighbours(&self) -> impl Iterator<Item = (u32, Ipv6Addr, Prefix)> + '_ {
        self.known.iter().map(|k| (k.ifindex, k.addr, k.prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beacon() -> Vec<u8> {
        Beacon {
            port: 1194,
            static_pub: [7; 32],
            cert: b"certificate",
            signature: b"signature",
        }
        .encode()
    }

    fn ll(i: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, i)
    }

    fn prefix() -> Prefix {
        Prefix::from_bits("0001").unwrap()
    }

    #[test]
    fn encode_parse_round_trip_and_malformed_input() {
        let raw = beacon();
        let b = Beacon::parse(&raw).unwrap();
        assert_eq!(
            (b.port, b.cert, b.signature),
            (1194, &b"certificate"[..], &b"signature"[..])
        );
        assert_eq!(b.static_pub, [7; 32]);
        for n in 0..raw.len() {
            assert_eq!(Beacon::parse(&raw[..n]), None, "truncated to {n}");
        }
        let mut long = raw.clone();
        long.push(0);
        assert_eq!(Beacon::parse(&long), None);
        let mut magic = raw.clone();
        magic[0] ^= 1;
        assert_eq!(Beacon::parse(&magic), None);
        // A length that points past the end.
        let mut len = raw.clone();
        len[42] = 0xff;
        assert_eq!(Beacon::parse(&len), None);
    }

    #[test]
    fn verified_once_then_known_until_it_expires() {
        let t0 = Instant::from_secs(100);
        let mut d = Discovery::new(t0);
        assert!(d.handle_timeout(t0), "first beacon at once");
        let raw = beacon();
        let v = d.on_beacon(t0, 2, ll(1), &raw, |_| Ok(prefix()));
        assert_eq!(v, Verdict::New(prefix()));
        assert!(d.trusted(2, ll(1)));
        assert!(!d.trusted(3, ll(1)), "another interface");
        assert!(!d.trusted(2, ll(2)), "another address");
        let again = d.on_beacon(t0.add_millis(30_000), 2, ll(1), &raw, |_| {
            panic!("a known beacon is not verified again")
        });
        assert_eq!(again, Verdict::Known);
        let later = t0.add_millis(30_000 + TRUST_MS + 1);
        d.handle_timeout(later);
        assert!(!d.trusted(2, ll(1)), "expired without beacons");
    }

    #[test]
    fn announcing_on_a_new_interface_keeps_the_proven_neighbours() {
        let t0 = Instant::from_secs(100);
        let mut d = Discovery::new(t0);
        assert!(d.handle_timeout(t0));
        d.on_beacon(t0, 2, ll(1), &beacon(), |_| Ok(prefix()));
        assert!(d.handle_timeout(t0.add_millis(MIN_GAP_MS)), "the answer");
        let t1 = t0.add_millis(5_000);
        d.announce(t1);
        assert_eq!(d.poll_timeout(), t1);
        assert!(d.handle_timeout(t1));
        assert!(d.trusted(2, ll(1)));
    }

    #[test]
    fn a_refused_beacon_trusts_nothing() {
        let t0 = Instant::from_secs(100);
        let mut d = Discovery::new(t0);
        let v = d.on_beacon(t0, 2, ll(1), &beacon(), |_| Err("other CA".into()));
        assert_eq!(v, Verdict::Refused("other CA".into()));
        assert!(!d.trusted(2, ll(1)));
        let again = d.on_beacon(t0, 2, ll(1), &beacon(), |_| panic!("verified again"));
        assert_eq!(again, Verdict::Ignored);
        let v = d.on_beacon(t0, 2, ll(1), b"junk", |_| unreachable!());
        assert!(matches!(v, Verdict::Refused(_)));
    }

    #[test]
    fn verifications_are_rate_limited() {
        let t0 = Instant::from_secs(100);
        let mut d = Discovery::new(t0);
        let mut verified = 0;
        for i in 0..20u8 {
            let raw = Beacon {
                port: 1194,
                static_pub: [i; 32],
                cert: b"certificate",
                signature: b"signature",
            }
            .encode();
            let v = d.on_beacon(t0, 2, ll(i.into()), &raw, |_| {
                verified += 1;
                Err("bogus".into())
            });
            assert!(matches!(v, Verdict::Refused(_) | Verdict::RateLimited));
        }
        assert_eq!(verified, VERIFY_BURST);
        // One more per second after that.
        let v = d.on_beacon(t0.add_millis(1000), 2, ll(99), &beacon(), |_| Ok(prefix()));
        assert_eq!(v, Verdict::New(prefix()));
    }

    #[test]
    fn a_newcomer_is_answered_soon_but_not_in_a_storm() {
        let t0 = Instant::from_secs(100);
        let mut d = Discovery::new(t0);
        assert!(d.handle_timeout(t0));
        assert_eq!(d.poll_timeout(), t0.add_millis(INTERVAL_MS));
        let t1 = t0.add_millis(5_000);
        d.on_beacon(t1, 2, ll(1), &beacon(), |_| Ok(prefix()));
        assert_eq!(d.poll_timeout(), t1.add_millis(ANSWER_MS));
        assert!(d.handle_timeout(t1.add_millis(ANSWER_MS)));
        // Another newcomer right away: not before MIN_GAP_MS after the last.
        let t2 = t1.add_millis(300);
        let other = Beacon {
            port: 1194,
            static_pub: [8; 32],
            cert: b"other",
            signature: b"sig",
        }
        .encode();
        d.on_beacon(t2, 2, ll(2), &other, |_| Ok(prefix()));
        assert_eq!(d.poll_timeout(), t1.add_millis(ANSWER_MS + MIN_GAP_MS));
    }
}
