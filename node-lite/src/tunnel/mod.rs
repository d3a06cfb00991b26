//! Encrypted, certificate-authenticated UDP tunnels (issue 4), sans-IO.
//!
//! Layers, bottom up (a lower one never reaches up):
//! - [`wire`]: datagram formats; parse never panics;
//! - [`cookie`]: MAC1/MAC2, cookie replies, token buckets: junk costs no public-key work;
//! - [`session`]: transport keys, 64-bit counters, the replay window;
//! - [`handshake`]: Noise XX (snow) in our framing, pure;
//! - [`auth`]: the network-CA checks behind the [`auth::Authority`] trait;
//! - this module: [`Endpoint`], every tunnel of one UDP socket, with their
//!   timers (rekey, keepalive, dead peer, close: `timeout.rs`); `establish.rs`
//!   handles the handshake messages, `probe.rs` lost paths.
//!
//! The driver owns the socket, the TUN device and the clock. Its loop:
//! - a datagram arrives: [`Endpoint::decapsulate`], then act on the [`Action`];
//! - an IP packet for tunnel `id`: [`Endpoint::encapsulate`];
//! - after either, and after [`Endpoint::handle_timeout`], [`Endpoint::connect`],
//!   [`Endpoint::close`] or [`Endpoint::apply_crl`]: drain
//!   [`Endpoint::poll_transmit`] and [`Endpoint::poll_event`];
//! - sleep until [`Endpoint::poll_timeout`] or the next input.
//!
//! Data never allocates: the caller's buffers hold the packet, sealed or
//! opened in place. Handshakes (rare) may allocate.

pub mod auth;
pub mod check;
pub mod cookie;
mod establish;
pub mod handshake;
mod probe;
pub mod session;
mod timeout;
pub mod wire;

#[cfg(test)]
mod tests;

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;
use std::collections::VecDeque;

use auth::{AuthError, Authority, Identity, PeerIdentity};
use cookie::{CookieChecker, NetworkKeys, SourceLimiter, TokenBucket};
use handshake::{Credentials, Handshake, SeededRng};
use session::{OpenError, SealError, Session};
use wire::{CloseKind, Message, MAC_LEN};

/// The node's injected monotonic millisecond clock (shared with Babel).
pub use crate::time::Instant;

/// WireGuard's timers (boringtun `noise/timers.rs`), re6st's dead-peer time.
pub mod timers {
    use core::time::Duration;
    /// The initiator of a session starts a new handshake once it is this old.
    pub const REKEY_AFTER_TIME: Duration = Duration::from_secs(120);
    /// No message is sealed or opened with a session older than this.
    pub const REJECT_AFTER_TIME: Duration = Duration::from_secs(180);
    /// Give up a handshake attempt (and retry) after this long without an answer.
    pub const REKEY_TIMEOUT: Duration = Duration::from_secs(5);
    /// The first retry of a series of initiations comes this soon, then the
    /// wait doubles up to REKEY_TIMEOUT (1, 2, 4, 5, 5... s): a first
    /// initiation that raced the peer's start costs a second, not five.
    pub const FIRST_RETRANSMIT: Duration = Duration::from_secs(1);
    /// Stop retrying a handshake after this long.
    pub const REKEY_ATTEMPT_TIME: Duration = Duration::from_secs(90);
    /// Send a keepalive when nothing was sent for this long, so the peer's
    /// dead-peer timer only fires when we are really gone.
    pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
    /// re6st: OpenVPN `--ping-exit` is 4 × hello (15 s) = 60 s.
    pub const DEAD_PEER_TIMEOUT: Duration = Duration::from_secs(60);
    /// WireGuard's REKEY_AFTER_MESSAGES (2^60).
    pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
    /// A cookie from a responder is used for this long.
    pub const COOKIE_LIFETIME: Duration = Duration::from_secs(120);
    /// Traffic went out and nothing came back for this long: probe the path.
    pub const PROBE_AFTER: Duration = Duration::from_millis(500);
    /// Probes go this often while they get no answer.
    pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);
    /// Nothing back for this long after traffic went out: the path is lost
    /// ([`super::Event::Silent`]); within 3 s of a silent cut, routes move.
    pub const SILENT_AFTER: Duration = Duration::from_millis(2000);
}

/// Tunables, with re6st's and WireGuard's defaults.
#[derive(Clone, Debug)]
pub struct Config {
    /// Tunnels other nodes may open to us (re6st `max_clients`), half-open ones included.
    pub max_clients: usize,
    pub rekey_after_time: Duration,
    pub reject_after_time: Duration,
    pub rekey_after_messages: u64,
    pub rekey_timeout: Duration,
    /// First handshake retransmission; doubles up to `rekey_timeout`.
    pub first_retransmit: Duration,
    pub rekey_attempt_time: Duration,
    pub keepalive_timeout: Duration,
    /// Set from the network config: 4 × `hello`.
    pub dead_peer_timeout: Duration,
    /// Traffic unanswered this long makes the tunnel silent (None: never;
    /// Babel's own hellos then find a lost path, in 2-3 hello intervals).
    pub silent_after: Option<Duration>,
    /// Initiations answered per second (and burst) before cookies are demanded.
    pub initiations_per_sec: (u32, u32),
    /// RSA peer verifications per second (and burst).
    pub verifications_per_sec: (u32, u32),
    /// The same, for each source IP address: one address cannot spend the
    /// whole budget.
    pub verifications_per_source: (u32, u32),
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_clients: 20,
            rekey_after_time: timers::REKEY_AFTER_TIME,
            reject_after_time: timers::REJECT_AFTER_TIME,
            rekey_after_messages: timers::REKEY_AFTER_MESSAGES,
            rekey_timeout: timers::REKEY_TIMEOUT,
            first_retransmit: timers::FIRST_RETRANSMIT,
            rekey_attempt_time: timers::REKEY_ATTEMPT_TIME,
            keepalive_timeout: timers::KEEPALIVE_TIMEOUT,
            dead_peer_timeout: timers::DEAD_PEER_TIMEOUT,
            silent_after: Some(timers::SILENT_AFTER),
            initiations_per_sec: (50, 100),
            verifications_per_sec: (10, 20),
            verifications_per_source: (1, 4),
        }
    }
}

/// Source addresses whose verification budget is tracked (a few KB).
const SOURCES_TRACKED: usize = 256;

/// Identifies a tunnel of an [`Endpoint`] (the top 24 bits of its indices).
pub type TunnelId = u32;

/// Why a tunnel ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// [`Endpoint::close`] completed (acknowledged or timed out).
    Local,
    /// The peer sent a close request.
    Peer,
    /// The peer's certificate serial is in the new CRL.
    Revoked,
    /// The peer's certificate expired while the tunnel was up.
    Expired,
    /// Nothing authenticated received for the dead-peer timeout.
    DeadPeer,
    /// No handshake completed within REKEY_ATTEMPT_TIME.
    HandshakeFailed,
    /// The same peer (prefix) established a newer tunnel.
    Replaced,
}

/// What the mesh manager learns from [`Endpoint::poll_event`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// First session of a tunnel: the peer is authenticated.
    Established {
        id: TunnelId,
        peer: PeerIdentity,
        addr: SocketAddr,
    },
    /// A later handshake replaced the session keys.
    Rekeyed { id: TunnelId },
    /// The tunnel is gone; its id may be reused.
    Closed { id: TunnelId, reason: CloseReason },
    /// A tunnel we opened ([`Endpoint::connect`]) never authenticated its
    /// peer and was given up; its id may be reused.
    ConnectFailed { id: TunnelId, addr: SocketAddr },
    /// Traffic sent through tunnel `id` got nothing back for
    /// `silent_after`, probes included: its path is lost for now (routes
    /// should move away). The tunnel stays, and the dead-peer timer runs.
    Silent { id: TunnelId },
    /// A silent tunnel received an authenticated packet again.
    Heard { id: TunnelId },
}

/// Why an input was dropped or a call refused. Drops are normal on the
/// Internet; the driver counts them and moves on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Malformed datagram.
    Wire(wire::Error),
    /// mac1 wrong: not from a member of this network.
    Mac1,
    /// No tunnel, handshake or session has this receiver index.
    UnknownIndex,
    /// Handshake message refused by Noise or out of order.
    Handshake(handshake::Error),
    /// The peer failed authentication.
    Auth(AuthError),
    /// The RSA verification budget is spent; the peer will retry.
    RateLimited,
    /// This source address spent its share of the RSA verification budget.
    RateLimitedSource,
    /// `max_clients` tunnels are already open to us.
    TooManyClients,
    /// Decryption or replay check failed.
    Open(OpenError),
    /// No usable session yet (handshake in progress) or any more.
    NoSession,
    /// No tunnel with this id.
    UnknownTunnel,
    /// The caller's buffer is too small.
    BufferTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Wire(e) => write!(f, "malformed datagram: {e}"),
            Error::Mac1 => f.write_str("handshake not from a member of this network (mac1)"),
            Error::UnknownIndex => f.write_str("datagram for an unknown tunnel index"),
            Error::Handshake(e) => write!(f, "handshake: {e}"),
            Error::Auth(e) => write!(f, "{e}"),
            Error::RateLimited => f.write_str("peer verification rate limit reached"),
            Error::RateLimitedSource => {
                f.write_str("peer verification rate limit reached for this address")
            }
            Error::TooManyClients => f.write_str("max_clients tunnels already accepted"),
            Error::Open(e) => write!(f, "data packet dropped: {e:?}"),
            Error::NoSession => f.write_str("tunnel has no session (handshake pending)"),
            Error::UnknownTunnel => f.write_str("no such tunnel"),
            Error::BufferTooSmall => f.write_str("buffer too small"),
        }
    }
}

impl std::error::Error for Error {}

/// What the driver must do after [`Endpoint::decapsulate`] or [`Endpoint::encapsulate`].
#[derive(Debug)]
pub enum Action<'a> {
    /// Send these bytes (a slice of the caller's buffer) to this address.
    WriteToNetwork(SocketAddr, &'a mut [u8]),
    /// Deliver this decrypted IP packet, which came through tunnel `id`.
    /// The driver must check that its source lies in the peer's prefix.
    WriteToTunnel(TunnelId, &'a mut [u8]),
    /// Nothing to do (keepalive, cookie stored...).
    Done,
    /// Dropped; see the error.
    Err(Error),
}

/// A control datagram queued by the endpoint (handshakes, keepalives, closes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
}

/// Which side opened the tunnel (re6st counts `max_clients` on accepted ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We connected to the peer.
    Client,
    /// The peer connected to us.
    Server,
}

/// One peer: its sessions, handshake and timers.
struct Tunnel {
    addr: SocketAddr,
    role: Role,
    peer: Option<PeerIdentity>,
    /// What the peer proved last time, to skip RSA on rekeys.
    peer_static: [u8; 32],
    peer_cert: Vec<u8>,
    current: Option<Session>,
    previous: Option<Session>,
    handshake: Option<Handshake>,
    /// First attempt of the current series of initiations.
    attempts_since: Option<Instant>,
    /// Initiations sent in the current series (sets the retransmit backoff).
    attempts: u32,
    cookie: Option<([u8; MAC_LEN], Instant)>,
    /// Low byte of the next local index.
    generation: u8,
    last_sent: Instant,
    last_received: Instant,
    closing: Option<Instant>,
    /// Accepted with a valid mac2: the initiator answered our cookie from its address.
    proven: bool,
    /// The first traffic sent since the last packet received ([`Endpoint::expect_reply`]).
    unanswered_since: Option<Instant>,
    last_probe: Option<Instant>,
    /// [`Event::Silent`] was given and no packet came since.
    silent: bool,
}

impl Tunnel {
    fn new(addr: SocketAddr, role: Role, now: Instant) -> Self {
        Tunnel {
            addr,
            role,
            peer: None,
            peer_static: [0; 32],
            peer_cert: Vec::new(),
            current: None,
            previous: None,
            handshake: None,
            attempts_since: None,
            attempts: 0,
            cookie: None,
            generation: 0,
            last_sent: now,
            last_received: now,
            closing: None,
            proven: false,
            unanswered_since: None,
            last_probe: None,
            silent: false,
        }
    }

    fn session_mut(&mut self, index: u32) -> Option<&mut Session> {
        if self
            .current
            .as_ref()
            .is_some_and(|s| s.local_index == index)
        {
            return self.current.as_mut();
        }
        self.previous.as_mut().filter(|s| s.local_index == index)
    }

    /// The session to seal with: the newest one the peer is known to have.
    fn sending_session(&mut self, now: Instant, reject: Duration) -> Option<&mut Session> {
        let fresh = |s: &Session| now.saturating_duration_since(s.established) < reject;
        let use_current = match (&self.current, &self.previous) {
            (Some(c), Some(p)) => c.confirmed || !fresh(p),
            (Some(_), None) => true,
            _ => false,
        };
        let s = if use_current {
            self.current.as_mut()
        } else {
            self.previous.as_mut()
        };
        s.filter(|s| fresh(s))
    }

    fn install(&mut self, session: Session) {
        self.previous = self.current.take();
        self.current = Some(session);
    }

    /// How long handshake `h` waits for an answer before it is retried (or,
    /// for a responder, dropped): initiations back off from
    /// `first_retransmit`, doubling up to `rekey_timeout`.
    fn retransmit_after(&self, h: &Handshake, cfg: &Config) -> Duration {
        if !h.is_initiator() {
            return cfg.rekey_timeout;
        }
        let doublings = self.attempts.saturating_sub(1).min(16);
        cfg.first_retransmit
            .saturating_mul(1 << doublings)
            .min(cfg.rekey_timeout)
    }
}

/// Every tunnel of one UDP socket: demultiplexing by receiver index, the
/// responder path with its limits, and all timers.
pub struct Endpoint<A: Authority> {
    config: Config,
    keys: NetworkKeys,
    identity: Identity,
    authority: A,
    /// Slot `i` holds tunnel id `i`; slot 0 is never used (index 0 means "none").
    tunnels: Vec<Option<Tunnel>>,
    cookies: CookieChecker,
    initiations: TokenBucket,
    verifications: TokenBucket,
    /// Per source address share of `verifications`.
    source_verifications: SourceLimiter,
    rng: SeededRng,
    /// Wall clock at `clock_base` (for certificate dates).
    clock_base: (Instant, u64),
    events: VecDeque<Event>,
    transmits: VecDeque<Transmit>,
    /// RSA verifications started (for tests and the driver's statistics).
    verifications_done: u64,
}

/// 32 bytes from the operating system, to seed [`Endpoint::new`].
pub fn os_seed() -> [u8; 32] {
    use rand_core::RngCore;
    let mut s = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut s);
    s
}

fn slot_of(index: u32) -> usize {
    (index >> 8) as usize
}

impl<A: Authority> Endpoint<A> {
    /// `ca_key` is the network CA's public key, SubjectPublicKeyInfo DER (it
    /// keys mac1 and the Noise prologue),
    /// `unix_now` the wall clock at `now`, `seed` 32 random bytes ([`os_seed`];
    /// fixed in tests).
    pub fn new(
        config: Config,
        ca_key: &[u8],
        identity: Identity,
        authority: A,
        now: Instant,
        unix_now: u64,
        seed: [u8; 32],
    ) -> Self {
        let (ir, ib) = config.initiations_per_sec;
        let (vr, vb) = config.verifications_per_sec;
        let (sr, sb) = config.verifications_per_source;
        Endpoint {
            keys: NetworkKeys::new(ca_key),
            identity,
            authority,
            tunnels: vec![None],
            cookies: CookieChecker::new(),
            initiations: TokenBucket::new(ir, ib, now),
            verifications: TokenBucket::new(vr, vb, now),
            source_verifications: SourceLimiter::new(sr, sb, SOURCES_TRACKED),
            rng: SeededRng::new(seed),
            clock_base: (now, unix_now),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            verifications_done: 0,
            config,
        }
    }

    /// What the endpoint proves itself with.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// A new identity (a renewed certificate): new handshakes use it, the
    /// sessions already up carry on.
    pub fn set_identity(&mut self, identity: Identity) {
        self.identity = identity;
    }

    /// New settings (a network config update): limits and timers apply from
    /// now on, to the tunnels already up too. The rate limiters keep their
    /// state and rates.
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
    }

    /// Re-anchor the wall clock (after NTP sync, say).
    pub fn set_unix_time(&mut self, now: Instant, unix_now: u64) {
        self.clock_base = (now, unix_now);
    }

    fn unix_now(&self, now: Instant) -> u64 {
        self.clock_base.1 + now.millis_since(self.clock_base.0) / 1000
    }

    pub fn authority(&self) -> &A {
        &self.authority
    }

    /// RSA peer verifications started so far.
    pub fn verifications(&self) -> u64 {
        self.verifications_done
    }

    /// The authenticated peer of tunnel `id`, if established.
    pub fn peer(&self, id: TunnelId) -> Option<&PeerIdentity> {
        self.tunnel(id)?.peer.as_ref()
    }

    /// The peer's address of tunnel `id`.
    pub fn peer_addr(&self, id: TunnelId) -> Option<SocketAddr> {
        Some(self.tunnel(id)?.addr)
    }

    /// Which side opened tunnel `id`.
    pub fn role(&self, id: TunnelId) -> Option<Role> {
        Some(self.tunnel(id)?.role)
    }

    /// Ids of the tunnels with an authenticated peer.
    pub fn established(&self) -> impl Iterator<Item = TunnelId> + '_ {
        self.tunnels
            .iter()
            .enumerate()
            .filter(|(_, t)| t.as_ref().is_some_and(|t| t.peer.is_some()))
            .map(|(i, _)| i as TunnelId)
    }

    fn tunnel(&self, id: TunnelId) -> Option<&Tunnel> {
        self.tunnels.get(id as usize)?.as_ref()
    }

    fn seed(&mut self) -> [u8; 32] {
        let mut s = [0u8; 32];
        self.rng.fill(&mut s);
        s
    }

    fn alloc(&mut self, t: Tunnel) -> TunnelId {
        let slot = match self.tunnels.iter().skip(1).position(Option::is_none) {
            Some(i) => i + 1,
            None => {
                self.tunnels.push(None);
                self.tunnels.len() - 1
            }
        };
        self.tunnels[slot] = Some(t);
        slot as TunnelId
    }

    fn free(&mut self, id: TunnelId, reason: Option<CloseReason>) {
        if let Some(slot) = self.tunnels.get_mut(id as usize) {
            if let Some(t) = slot.take() {
                // Half-open tunnels never announced themselves; the mesh
                // manager still hears of its own failed attempts.
                match (reason, t.peer) {
                    (Some(reason), Some(_)) => self.events.push_back(Event::Closed { id, reason }),
                    (Some(_), None) if t.role == Role::Client => self
                        .events
                        .push_back(Event::ConnectFailed { id, addr: t.addr }),
                    _ => {}
                }
            }
        }
    }

    /// Open a tunnel to `addr`: queues a handshake initiation. The tunnel is
    /// usable after [`Event::Established`].
    pub fn connect(&mut self, now: Instant, addr: SocketAddr) -> TunnelId {
        let id = self.alloc(Tunnel::new(addr, Role::Client, now));
        self.initiate(now, id);
        id
    }

    /// Start (or restart) an initiation on tunnel `id`, queueing it.
    fn initiate(&mut self, now: Instant, id: TunnelId) {
        let seed = self.seed();
        let Some(Some(t)) = self.tunnels.get_mut(id as usize) else {
            return;
        };
        t.generation = t.generation.wrapping_add(1);
        let index = (id << 8) | u32::from(t.generation);
        let cookie = t
            .cookie
            .filter(|(_, at)| now.saturating_duration_since(*at) < timers::COOKIE_LIFETIME)
            .map(|(c, _)| c);
        let mut buf = [0u8; wire::INIT_LEN];
        if let Ok((h, n)) = Handshake::initiate(
            &self.keys,
            &self.identity,
            seed,
            index,
            now,
            cookie.as_ref(),
            &mut buf,
        ) {
            t.handshake = Some(h);
            if t.attempts_since.is_none() {
                t.attempts_since = Some(now);
                t.attempts = 0;
            }
            t.attempts = t.attempts.saturating_add(1);
            t.last_sent = t.last_sent.max(now);
            self.transmits.push_back(Transmit {
                to: t.addr,
                bytes: buf[..n].to_vec(),
            });
        }
    }

    /// Seal an IP packet for tunnel `id` into `out` (at least
    /// `packet.len() + wire::DATA_OVERHEAD` bytes). May queue a rekey.
    pub fn encapsulate<'a>(
        &mut self,
        now: Instant,
        id: TunnelId,
        packet: &[u8],
        out: &'a mut [u8],
    ) -> Action<'a> {
        let cfg = &self.config;
        let Some(Some(t)) = self.tunnels.get_mut(id as usize) else {
            return Action::Err(Error::UnknownTunnel);
        };
        if t.closing.is_some() {
            return Action::Err(Error::NoSession);
        }
        let addr = t.addr;
        let Some(s) = t.sending_session(now, cfg.reject_after_time) else {
            return Action::Err(Error::NoSession);
        };
        let n = match s.seal(wire::TYPE_DATA, packet, out) {
            Ok(n) => n,
            Err(SealError::BufferTooSmall) => return Action::Err(Error::BufferTooSmall),
            Err(SealError::Exhausted) => return Action::Err(Error::NoSession),
        };
        let volume = s.sent() >= cfg.rekey_after_messages;
        t.last_sent = t.last_sent.max(now);
        if volume && t.handshake.is_none() {
            self.initiate(now, id);
        }
        Action::WriteToNetwork(addr, &mut out[..n])
    }

    /// Handle one datagram from `src`. `out` must hold `datagram.len()` bytes
    /// and at least [`wire::MAX_HANDSHAKE_LEN`] (replies are written there).
    pub fn decapsulate<'a>(
        &mut self,
        now: Instant,
        src: SocketAddr,
        datagram: &[u8],
        out: &'a mut [u8],
    ) -> Action<'a> {
        let msg = match wire::parse(datagram) {
            Ok(m) => m,
            Err(e) => return Action::Err(Error::Wire(e)),
        };
        let r = match msg {
            Message::HandshakeInit(init) => self.on_init(now, src, &init, out),
            Message::HandshakeResp(resp) => self.on_resp(now, src, &resp, out),
            Message::HandshakeFinal(fin) => self.on_final(now, src, &fin, out),
            Message::CookieReply(c) => self.on_cookie(now, &c),
            Message::Data(d) => self.on_data(now, src, &d, out),
        };
        match r {
            Ok(Out::Network(to, n)) => Action::WriteToNetwork(to, &mut out[..n]),
            Ok(Out::Tunnel(id, n)) => Action::WriteToTunnel(id, &mut out[..n]),
            Ok(Out::Done) => Action::Done,
            Err(e) => Action::Err(e),
        }
    }

    fn on_data(
        &mut self,
        now: Instant,
        src: SocketAddr,
        d: &wire::Data<'_>,
        out: &mut [u8],
    ) -> Result<Out, Error> {
        let id = slot_of(d.receiver) as TunnelId;
        let reject = self.config.reject_after_time;
        let t = self
            .tunnels
            .get_mut(id as usize)
            .and_then(Option::as_mut)
            .ok_or(Error::UnknownIndex)?;
        let s = t.session_mut(d.receiver).ok_or(Error::UnknownIndex)?;
        if now.saturating_duration_since(s.established) >= reject {
            return Err(Error::Open(OpenError::Expired));
        }
        let n = s.open(d, out).map_err(Error::Open)?;
        t.last_received = t.last_received.max(now); // never backwards: a clock jump must not kill the tunnel
                                                    // Roaming, as in WireGuard: the last authenticated source is the peer.
        t.addr = src;
        self.heard(id);
        if d.kind == wire::TYPE_CLOSE {
            return self.on_close(now, id, out.first().copied(), out);
        }
        if n == 0 {
            return Ok(Out::Done);
        }
        if n == 1 && out[0] == probe::PROBE {
            return Ok(self.answer_probe(now, id, out));
        }
        Ok(Out::Tunnel(id, n))
    }

    fn on_close(
        &mut self,
        now: Instant,
        id: TunnelId,
        kind: Option<u8>,
        out: &mut [u8],
    ) -> Result<Out, Error> {
        match kind.and_then(CloseKind::from_byte) {
            Some(CloseKind::Request) => {
                let t = self.tunnels[id as usize]
                    .as_mut()
                    .ok_or(Error::UnknownTunnel)?;
                let addr = t.addr;
                let reject = self.config.reject_after_time;
                let n = t
                    .sending_session(now, reject)
                    .and_then(|s| s.seal(wire::TYPE_CLOSE, &[CloseKind::Ack as u8], out).ok());
                self.free(id, Some(CloseReason::Peer));
                Ok(n.map_or(Out::Done, |n| Out::Network(addr, n)))
            }
            Some(CloseKind::Ack) => {
                if self.tunnel(id).is_some_and(|t| t.closing.is_some()) {
                    self.free(id, Some(CloseReason::Local));
                }
                Ok(Out::Done)
            }
            None => Ok(Out::Done),
        }
    }

    /// Close tunnel `id` gracefully (re6st's kill request): queues an
    /// authenticated close request; [`Event::Closed`] follows the peer's
    /// acknowledgement, or REKEY_TIMEOUT.
    pub fn close(&mut self, now: Instant, id: TunnelId) -> Result<(), Error> {
        let reject = self.config.reject_after_time;
        let t = self
            .tunnels
            .get_mut(id as usize)
            .and_then(Option::as_mut)
            .ok_or(Error::UnknownTunnel)?;
        let mut buf = [0u8; wire::CLOSE_LEN];
        match t.sending_session(now, reject) {
            Some(s) => {
                let n = s
                    .seal(wire::TYPE_CLOSE, &[CloseKind::Request as u8], &mut buf)
                    .map_err(|_| Error::NoSession)?;
                t.closing = Some(now);
                t.handshake = None;
                let to = t.addr;
                self.transmits.push_back(Transmit {
                    to,
                    bytes: buf[..n].to_vec(),
                });
            }
            None => self.free(id, Some(CloseReason::Local)),
        }
        Ok(())
    }

    /// Apply a new CRL (the network config's `crl`): tunnels of revoked peers
    /// are torn down at once ([`Event::Closed`] with [`CloseReason::Revoked`]).
    pub fn apply_crl(&mut self, crl: &[u64]) {
        self.authority.update_crl(crl);
        let revoked: Vec<TunnelId> = self
            .tunnels
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                t.as_ref()
                    .and_then(|t| t.peer.as_ref())
                    .is_some_and(|p| self.authority.is_revoked(p.serial))
            })
            .map(|(i, _)| i as TunnelId)
            .collect();
        for id in revoked {
            self.free(id, Some(CloseReason::Revoked));
        }
    }

    /// The next queued control datagram. Call until `None` after every other call.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the mesh manager.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// Internal result of a decapsulation step: lengths into the caller's buffer.
enum Out {
    Network(SocketAddr, usize),
    Tunnel(TunnelId, usize),
    Done,
}
