//! Fast detection of a lost path (issue 18): when traffic goes into a
//! tunnel and nothing authenticated comes back for
//! [`timers::PROBE_AFTER`], the endpoint probes the peer every
//! [`timers::PROBE_INTERVAL`]; a probe is answered at once with a
//! keepalive. Nothing back for `silent_after` makes the tunnel
//! [`Event::Silent`] (the node retracts the routes through it, as babeld does
//! when a link goes down), and the next authenticated packet makes it
//! [`Event::Heard`]. Idle tunnels send no probes: only traffic the driver
//! marks with [`Endpoint::expect_reply`] (what the node forwards, not
//! Babel's own packets) starts the clock.
//!
//! A probe is a data message with the one-byte payload [`PROBE`]: no IPv6
//! packet is one byte long, so a peer without probes drops it as malformed
//! (and never answers: against such a peer, traffic one way only for
//! `silent_after` moves routes away until its next keepalive).

use super::*;

/// The payload of a probe.
pub(super) const PROBE: u8 = 0x01;

/// When tunnel `t` sends its next probe, or goes silent, if traffic is
/// unanswered.
pub(super) fn next_probe(t: &Tunnel, cfg: &Config) -> Option<Instant> {
    let silent_after = cfg.silent_after?;
    let since = t
        .unanswered_since
        .filter(|_| !t.silent && t.closing.is_none())?;
    let probe = match t.last_probe {
        Some(p) => p + timers::PROBE_INTERVAL,
        None => since + timers::PROBE_AFTER,
    };
    Some(probe.min(since + silent_after))
}

impl<A: Authority> Endpoint<A> {
    /// Traffic went into tunnel `id` that should bring something back
    /// (forwarded packets): starts the silence clock if it is not running.
    pub fn expect_reply(&mut self, now: Instant, id: TunnelId) {
        if self.config.silent_after.is_none() {
            return;
        }
        if let Some(Some(t)) = self.tunnels.get_mut(id as usize) {
            if t.peer.is_some() && t.unanswered_since.is_none() && !t.silent {
                t.unanswered_since = Some(now);
            }
        }
    }

    /// Whether tunnel `id`'s path is silent now.
    pub fn is_silent(&self, id: TunnelId) -> bool {
        self.tunnel(id).is_some_and(|t| t.silent)
    }

    /// An authenticated packet came through tunnel `id`.
    pub(super) fn heard(&mut self, id: TunnelId) {
        if let Some(Some(t)) = self.tunnels.get_mut(id as usize) {
            t.unanswered_since = None;
            t.last_probe = None;
            if std::mem::take(&mut t.silent) {
                self.events.push_back(Event::Heard { id });
            }
        }
    }

    /// A probe from the peer: a keepalive back at once, sealed into `out`.
    pub(super) fn answer_probe(&mut self, now: Instant, id: TunnelId, out: &mut [u8]) -> Out {
        let reject = self.config.reject_after_time;
        let Some(Some(t)) = self.tunnels.get_mut(id as usize) else {
            return Out::Done;
        };
        let addr = t.addr;
        match t
            .sending_session(now, reject)
            .and_then(|s| s.seal(wire::TYPE_DATA, &[], out).ok())
        {
            Some(n) => {
                t.last_sent = t.last_sent.max(now);
                Out::Network(addr, n)
            }
            None => Out::Done,
        }
    }

    /// The probe timer of tunnel `id`: send a probe, or declare the path
    /// silent. True if it queued something (the keepalive can wait).
    pub(super) fn probe(&mut self, now: Instant, id: TunnelId, cfg: &Config) -> bool {
        let Some(Some(t)) = self.tunnels.get_mut(id as usize) else {
            return false;
        };
        let (Some(at), Some(silent_after), Some(since)) =
            (next_probe(t, cfg), cfg.silent_after, t.unanswered_since)
        else {
            return false;
        };
        if now < at {
            return false;
        }
        if now.saturating_duration_since(since) >= silent_after {
            t.silent = true;
            self.events.push_back(Event::Silent { id });
            return false;
        }
        let to = t.addr;
        let mut buf = [0u8; wire::DATA_OVERHEAD + 1];
        let Some(n) = t
            .sending_session(now, cfg.reject_after_time)
            .and_then(|s| s.seal(wire::TYPE_DATA, &[PROBE], &mut buf).ok())
        else {
            return false;
        };
        t.last_probe = Some(now);
        t.last_sent = t.last_sent.max(now);
        self.transmits.push_back(Transmit {
            to,
            bytes: buf[..n].to_vec(),
        });
        true
    }
}
