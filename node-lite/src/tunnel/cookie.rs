//! Cheap rejection of junk before any public-key work: MAC1, MAC2/cookies, rate limits.
//!
//! As in WireGuard (paper §5.4.4, §5.4.7), every handshake message ends with
//! `mac1 ‖ mac2`, keyed BLAKE2s-128:
//! - `mac1 = MAC(HASH("mac1----" ‖ network_id), msg[..mac1])`. WireGuard keys it
//!   with the responder's static key; with Noise XX the initiator does not know
//!   that key, so ours is keyed by the **network**: `network_id` is a hash of the
//!   CA's public key (not of its certificate, which a renewal replaces with the
//!   same key and new dates). Datagrams from outside the re6st network (or from another
//!   network) die here for the cost of one BLAKE2s.
//! - `mac2 = MAC(cookie, msg[..mac2])` or zeros. Under load the responder
//!   demands it and answers initiations without a valid mac2 with a cookie
//!   reply instead of a response: `cookie = MAC(secret, source address)`, the
//!   secret rotating every [`COOKIE_SECRET_LIFETIME`], sealed with
//!   XChaCha20-Poly1305 under `HASH("cookie--" ‖ network_id)` with mac1 as
//!   associated data. A spoofing flooder never sees its cookie.
//!
//! [`TokenBucket`] limits both the initiations answered and the RSA
//! verifications started, with injected time.

use core::net::SocketAddr;
use core::time::Duration;

use blake2::digest::consts::U16;
use blake2::digest::{FixedOutput, KeyInit, Mac, Update};
use blake2::{Blake2s256, Blake2sMac, Digest};
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};

use super::wire::{self, CookieReply, Macs, COOKIE_NONCE_LEN, MACS_LEN, MAC_LEN, TAG_LEN};
use super::Instant;

const LABEL_MAC1: &[u8] = b"mac1----";
const LABEL_COOKIE: &[u8] = b"cookie--";
const LABEL_NETWORK: &[u8] = b"re6st-lite network v1";
/// WireGuard's cookie secret lifetime.
pub const COOKIE_SECRET_LIFETIME: Duration = Duration::from_secs(120);

/// Keyed BLAKE2s-128.
pub fn mac(key: &[u8; 32], parts: &[&[u8]]) -> [u8; MAC_LEN] {
    // A 32-byte key is always valid for BLAKE2s.
    let mut m = <Blake2sMac<U16> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <Blake2sMac<U16> as KeyInit>::new(&Default::default()));
    for p in parts {
        Mac::update(&mut m, p);
    }
    m.finalize_fixed().into()
}

fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Blake2s256::new();
    for p in parts {
        Update::update(&mut h, p);
    }
    h.finalize().into()
}

/// Constant-time equality of two MACs.
pub fn mac_eq(a: &[u8; MAC_LEN], b: &[u8; MAC_LEN]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Keys every member of one re6st network derives from its CA's public key.
#[derive(Clone)]
pub struct NetworkKeys {
    /// `HASH(label ‖ CA public key DER)`; also the Noise prologue, so a handshake
    /// between members of different networks fails.
    pub network_id: [u8; 32],
    mac1_key: [u8; 32],
    cookie_key: [u8; 32],
}

impl NetworkKeys {
    /// From the CA's public key (SubjectPublicKeyInfo DER).
    pub fn new(ca_key: &[u8]) -> Self {
        let network_id = hash(&[LABEL_NETWORK, ca_key]);
        NetworkKeys {
            network_id,
            mac1_key: hash(&[LABEL_MAC1, &network_id]),
            cookie_key: hash(&[LABEL_COOKIE, &network_id]),
        }
    }

    /// Fill the trailing `mac1 ‖ mac2` of a handshake message built with zero MACs.
    /// `cookie` is the last cookie received from this responder, if still fresh.
    pub fn fill_macs(&self, msg: &mut [u8], cookie: Option<&[u8; MAC_LEN]>) -> [u8; MAC_LEN] {
        let n = msg.len();
        if n < MACS_LEN {
            return [0; MAC_LEN];
        }
        let mac1 = mac(&self.mac1_key, &[&msg[..n - MACS_LEN]]);
        msg[n - MACS_LEN..n - MAC_LEN].copy_from_slice(&mac1);
        let mac2 = match cookie {
            Some(c) => {
                let mut key = [0u8; 32];
                key[..MAC_LEN].copy_from_slice(c);
                mac(&key, &[&msg[..n - MAC_LEN]])
            }
            None => [0; MAC_LEN],
        };
        msg[n - MAC_LEN..].copy_from_slice(&mac2);
        mac1
    }

    /// True if mac1 is right: the sender knows the network's CA certificate.
    pub fn verify_mac1(&self, macs: &Macs<'_>) -> bool {
        mac_eq(&mac(&self.mac1_key, &[macs.mac1_input]), macs.mac1)
    }

    /// Open a cookie reply to a message whose mac1 was `sent_mac1`.
    pub fn open_cookie_reply(
        &self,
        reply: &CookieReply<'_>,
        sent_mac1: &[u8; MAC_LEN],
    ) -> Option<[u8; MAC_LEN]> {
        let aead = <XChaCha20Poly1305 as chacha20poly1305::KeyInit>::new(&self.cookie_key.into());
        let mut cookie = [0u8; MAC_LEN];
        cookie.copy_from_slice(&reply.sealed_cookie[..MAC_LEN]);
        aead.decrypt_in_place_detached(
            XNonce::from_slice(reply.nonce),
            sent_mac1,
            &mut cookie,
            Tag::from_slice(&reply.sealed_cookie[MAC_LEN..]),
        )
        .ok()?;
        Some(cookie)
    }
}

fn addr_bytes(addr: &SocketAddr) -> ([u8; 18], usize) {
    let mut b = [0u8; 18];
    let n = match addr {
        SocketAddr::V4(a) => {
            b[..4].copy_from_slice(&a.ip().octets());
            b[4..6].copy_from_slice(&a.port().to_be_bytes());
            6
        }
        SocketAddr::V6(a) => {
            b[..16].copy_from_slice(&a.ip().octets());
            b[16..18].copy_from_slice(&a.port().to_be_bytes());
            18
        }
    };
    (b, n)
}

/// The responder's side of the cookie mechanism.
pub struct CookieChecker {
    secret: [u8; 32],
    previous: [u8; 32],
    born: Option<Instant>,
}

impl CookieChecker {
    pub fn new() -> Self {
        CookieChecker {
            secret: [0; 32],
            previous: [0; 32],
            born: None,
        }
    }

    /// Rotate the secret if it is older than [`COOKIE_SECRET_LIFETIME`];
    /// `fresh` supplies 32 random bytes when needed.
    fn rotate(&mut self, now: Instant, mut fresh: impl FnMut() -> [u8; 32]) {
        let stale = self
            .born
            .is_none_or(|b| now.saturating_duration_since(b) >= COOKIE_SECRET_LIFETIME || now < b);
        if stale {
            self.previous = if self.born.is_some() {
                self.secret
            } else {
                fresh()
            };
            self.secret = fresh();
            self.born = Some(now);
        }
    }

    fn cookie(secret: &[u8; 32], src: &SocketAddr) -> [u8; MAC_LEN] {
        let (b, n) = addr_bytes(src);
        mac(secret, &[&b[..n]])
    }

    /// True if mac2 carries a cookie we gave `src` (current or previous secret).
    pub fn verify_mac2(
        &mut self,
        now: Instant,
        src: &SocketAddr,
        macs: &Macs<'_>,
        fresh: impl FnMut() -> [u8; 32],
    ) -> bool {
        self.rotate(now, fresh);
        [self.secret, self.previous].iter().any(|s| {
            let mut key = [0u8; 32];
            key[..MAC_LEN].copy_from_slice(&Self::cookie(s, src));
            mac_eq(&mac(&key, &[macs.mac2_input]), macs.mac2)
        })
    }

    /// Write a cookie reply for a handshake message from `src` with index
    /// `receiver` and mac1 `mac1`; `nonce` must be random.
    #[allow(clippy::too_many_arguments)]
    pub fn reply(
        &mut self,
        keys: &NetworkKeys,
        now: Instant,
        src: &SocketAddr,
        receiver: u32,
        mac1: &[u8; MAC_LEN],
        nonce: &[u8; COOKIE_NONCE_LEN],
        fresh: impl FnMut() -> [u8; 32],
        out: &mut [u8],
    ) -> Result<usize, wire::Error> {
        self.rotate(now, fresh);
        let mut sealed = [0u8; MAC_LEN + TAG_LEN];
        sealed[..MAC_LEN].copy_from_slice(&Self::cookie(&self.secret, src));
        let aead = <XChaCha20Poly1305 as chacha20poly1305::KeyInit>::new(&keys.cookie_key.into());
        let tag = aead
            .encrypt_in_place_detached(XNonce::from_slice(nonce), mac1, &mut sealed[..MAC_LEN])
            .map_err(|_| wire::Error::BufferTooSmall)?;
        sealed[MAC_LEN..].copy_from_slice(&tag);
        wire::emit_cookie_reply(out, receiver, nonce, &sealed)
    }
}

impl Default for CookieChecker {
    fn default() -> Self {
        Self::new()
    }
}

/// A token bucket on injected time: `rate` tokens per second, at most `burst`.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    /// Tokens in thousandths, so integer arithmetic keeps sub-token refills.
    milli_tokens: u64,
    rate_per_sec: u64,
    burst: u64,
    last: Instant,
}

impl TokenBucket {
    /// Starts full.
    pub fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        TokenBucket {
            milli_tokens: u64::from(burst) * 1000,
            rate_per_sec: u64::from(rate_per_sec),
            burst: u64::from(burst),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        // A clock jump backwards refills nothing; forwards, at most to `burst`.
        let ms = now.millis_since(self.last);
        if now > self.last {
            self.last = now;
        }
        self.milli_tokens =
            (self.milli_tokens + ms.saturating_mul(self.rate_per_sec)).min(self.burst * 1000);
    }

    /// Take one token if available.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            true
        } else {
            false
        }
    }

    /// True if no whole token is left (without taking one).
    pub fn is_empty(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.milli_tokens < 1000
    }

    /// True if the bucket is back to its burst (nothing to remember).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.milli_tokens >= self.burst * 1000
    }
}

/// One [`TokenBucket`] per source IP address (ports are free to an
/// attacker, so they do not count), for at most `capacity` addresses. When
/// the table is full, a source whose bucket has refilled is forgotten first
/// (it is as good as new), else the least recently seen one: a flood from
/// many addresses can at worst reset an address to a full bucket, never
/// block one that has tokens.
#[derive(Clone, Debug)]
pub struct SourceLimiter {
    rate_per_sec: u32,
    burst: u32,
    capacity: usize,
    /// (source, bucket, last seen).
    table: Vec<(core::net::IpAddr, TokenBucket, Instant)>,
}

impl SourceLimiter {
    pub fn new(rate_per_sec: u32, burst: u32, capacity: usize) -> Self {
        SourceLimiter {
            rate_per_sec,
            burst,
            capacity: capacity.max(1),
            table: Vec::new(),
        }
    }

    fn bucket(&mut self, src: core::net::IpAddr, now: Instant) -> &mut TokenBucket {
        if let Some(i) = self.table.iter().position(|(a, _, _)| *a == src) {
            self.table[i].2 = now;
            return &mut self.table[i].1;
        }
        if self.table.len() >= self.capacity {
            let full = self.table.iter_mut().position(|(_, b, _)| b.is_full(now));
            let victim = full.unwrap_or_else(|| {
                (0..self.table.len())
                    .min_by_key(|&i| self.table[i].2)
                    .unwrap_or(0)
            });
            self.table.swap_remove(victim);
        }
        self.table.push((
            src,
            TokenBucket::new(self.rate_per_sec, self.burst, now),
            now,
        ));
        let last = self.table.len() - 1;
        &mut self.table[last].1
    }

    /// True if `src` has a token left (without taking it).
    pub fn allows(&mut self, src: core::net::IpAddr, now: Instant) -> bool {
        !self.bucket(src, now).is_empty(now)
    }

    /// Take one of `src`'s tokens if it has one.
    pub fn try_take(&mut self, src: core::net::IpAddr, now: Instant) -> bool {
        self.bucket(src, now).try_take(now)
    }

    /// Addresses tracked (for tests).
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_init(b: &[u8]) -> wire::HandshakeInit<'_> {
        match wire::parse(b) {
            Ok(wire::Message::HandshakeInit(i)) => i,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mac1_binds_the_network() {
        let net = NetworkKeys::new(b"ca one");
        let other = NetworkKeys::new(b"ca two");
        let mut msg = [0u8; wire::INIT_LEN];
        wire::emit_init(&mut msg, 1, &[7; wire::INIT_NOISE_LEN]).unwrap();
        net.fill_macs(&mut msg, None);
        assert!(net.verify_mac1(&parse_init(&msg).macs));
        assert!(!other.verify_mac1(&parse_init(&msg).macs));
        msg[20] ^= 1;
        assert!(!net.verify_mac1(&parse_init(&msg).macs));
    }

    #[test]
    fn cookie_round_trip_binds_the_source_address() {
        let net = NetworkKeys::new(b"ca");
        let mut checker = CookieChecker::new();
        let src: SocketAddr = "192.0.2.1:326".parse().unwrap();
        let now = Instant::from_secs(5);
        let fresh = || [9u8; 32];
        let mut msg = [0u8; wire::INIT_LEN];
        wire::emit_init(&mut msg, 1, &[7; wire::INIT_NOISE_LEN]).unwrap();
        let mac1 = net.fill_macs(&mut msg, None);
        assert!(!checker.verify_mac2(now, &src, &parse_init(&msg).macs, fresh));
        let mut reply = [0u8; wire::COOKIE_REPLY_LEN];
        checker
            .reply(&net, now, &src, 1, &mac1, &[3; 24], fresh, &mut reply)
            .unwrap();
        let Ok(wire::Message::CookieReply(r)) = wire::parse(&reply) else {
            panic!()
        };
        assert_eq!(net.open_cookie_reply(&r, &[0; 16]), None, "mac1 is the AD");
        let cookie = net.open_cookie_reply(&r, &mac1).unwrap();
        net.fill_macs(&mut msg, Some(&cookie));
        assert!(checker.verify_mac2(now, &src, &parse_init(&msg).macs, fresh));
        let elsewhere: SocketAddr = "192.0.2.2:326".parse().unwrap();
        assert!(!checker.verify_mac2(now, &elsewhere, &parse_init(&msg).macs, fresh));
        // Still valid one rotation later, not two.
        let later = now + COOKIE_SECRET_LIFETIME;
        assert!(checker.verify_mac2(later, &src, &parse_init(&msg).macs, || [10; 32]));
        let much_later = later + COOKIE_SECRET_LIFETIME;
        assert!(!checker.verify_mac2(much_later, &src, &parse_init(&msg).macs, || [11; 32]));
    }

    #[test]
    fn token_bucket_refills_and_survives_clock_jumps() {
        let t0 = Instant::from_secs(100);
        let mut b = TokenBucket::new(2, 3, t0);
        assert!(b.try_take(t0) && b.try_take(t0) && b.try_take(t0));
        assert!(!b.try_take(t0));
        assert!(b.is_empty(t0));
        assert!(!b.try_take(t0.add_millis(499)));
        assert!(b.try_take(t0.add_millis(500)));
        // Backwards: no refill, no panic.
        assert!(!b.try_take(Instant::from_secs(1)));
        // A huge jump forwards refills to the burst only.
        let far = Instant::from_secs(1_000_000);
        assert!(b.try_take(far) && b.try_take(far) && b.try_take(far));
        assert!(!b.try_take(far));
    }

    #[test]
    fn source_limiter_caps_each_address_and_stays_bounded() {
        let t0 = Instant::from_secs(100);
        let mut l = SourceLimiter::new(1, 2, 3);
        let a: core::net::IpAddr = "192.0.2.1".parse().unwrap();
        let b: core::net::IpAddr = "192.0.2.2".parse().unwrap();
        assert!(l.allows(a, t0) && l.try_take(a, t0) && l.try_take(a, t0));
        assert!(!l.allows(a, t0) && !l.try_take(a, t0));
        // Another address has its own budget.
        assert!(l.try_take(b, t0));
        assert!(l.try_take(a, t0.add_millis(1000)));
        // A crowd of new sources evicts refilled and old entries, never
        // growing past the capacity; an evicted address comes back full.
        for i in 0..100u8 {
            let c = core::net::IpAddr::from([198, 51, 100, i]);
            assert!(l.try_take(c, t0.add_millis(1500)));
            assert!(l.len() <= 3);
        }
        // `a` (drained, least recently seen) went first and comes back full.
        assert!(l.try_take(a, t0.add_millis(1500)));
        // Drained ones are kept over refilled ones while there is a choice.
        let mut l = SourceLimiter::new(1, 1, 2);
        assert!(l.try_take(a, t0));
        let t1 = t0.add_millis(2000);
        assert!(l.try_take(b, t1));
        // a has refilled by t1: it goes, b (empty) stays.
        let c = core::net::IpAddr::from([203, 0, 113, 1]);
        assert!(l.try_take(c, t1));
        assert!(!l.try_take(b, t1), "drained source forgotten");
    }
}
