//! Every timer of the endpoint's tunnels: handshake retries and rekeys,
//! keepalives, session expiry, dead peers, closes, path probes.

use super::*;

impl<A: Authority> Endpoint<A> {
    /// Run every timer due at `now`: handshake retries and rekeys,
    /// keepalives, session expiry, dead peers, close timeouts. Call it at
    /// [`Self::poll_timeout`] (calling it early or late is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        let unix = self.unix_now(now);
        let cfg = self.config.clone();
        for id in 1..self.tunnels.len() as TunnelId {
            let Some(t) = self.tunnels[id as usize].as_mut() else {
                continue;
            };
            let since = |at: Instant| now.saturating_duration_since(at);
            if let Some(at) = t.closing {
                if since(at) >= cfg.rekey_timeout {
                    self.free(id, Some(CloseReason::Local));
                }
                continue;
            }
            // Expired sessions go first: nothing may use them.
            if t.previous
                .as_ref()
                .is_some_and(|s| since(s.established) >= cfg.reject_after_time)
            {
                t.previous = None;
            }
            if t.current
                .as_ref()
                .is_some_and(|s| since(s.established) >= cfg.reject_after_time)
            {
                t.current = t.previous.take();
            }
            if t.peer.is_none() && t.role == Role::Server {
                // Half-open: the initiator never completed.
                if t.handshake
                    .as_ref()
                    .is_none_or(|h| since(h.started) >= cfg.rekey_timeout)
                {
                    self.tunnels[id as usize] = None;
                }
                continue;
            }
            if t.peer.is_some() {
                if since(t.last_received) >= cfg.dead_peer_timeout {
                    self.free(id, Some(CloseReason::DeadPeer));
                    continue;
                }
                if t.peer.as_ref().is_some_and(|p| unix > p.not_after) {
                    self.free(id, Some(CloseReason::Expired));
                    continue;
                }
            }
            let mut initiate = false;
            match t.handshake.as_ref() {
                Some(h) if since(h.started) >= t.retransmit_after(h, &cfg) => {
                    if h.is_initiator() || t.current.is_none() {
                        if t.attempts_since
                            .is_some_and(|a| since(a) >= cfg.rekey_attempt_time)
                        {
                            if t.current.is_none() {
                                if t.peer.is_some() {
                                    self.free(id, Some(CloseReason::HandshakeFailed));
                                } else {
                                    self.tunnels[id as usize] = None;
                                    self.events.push_back(Event::Closed {
                                        id,
                                        reason: CloseReason::HandshakeFailed,
                                    });
                                }
                                continue;
                            }
                            t.handshake = None;
                        } else {
                            initiate = true;
                        }
                    } else {
                        t.handshake = None;
                    }
                }
                Some(_) => {}
                None => {
                    let stale = |s: &Session| {
                        let age = since(s.established);
                        (s.initiator && age >= cfg.rekey_after_time)
                            || age
                                >= cfg
                                    .reject_after_time
                                    .saturating_sub(cfg.keepalive_timeout + cfg.rekey_timeout)
                            || (s.initiator && !s.confirmed && age >= cfg.rekey_timeout)
                    };
                    initiate = t.current.as_ref().is_none_or(stale);
                }
            }
            if initiate {
                self.initiate(now, id);
                continue;
            }
            if self.probe(now, id, &cfg) {
                continue;
            }
            let Some(t) = self.tunnels[id as usize].as_mut() else {
                continue;
            };
            if since(t.last_sent) >= cfg.keepalive_timeout {
                let to = t.addr;
                let mut buf = [0u8; wire::DATA_OVERHEAD];
                if let Some(n) = t
                    .sending_session(now, cfg.reject_after_time)
                    .and_then(|s| s.seal(wire::TYPE_DATA, &[], &mut buf).ok())
                {
                    t.last_sent = t.last_sent.max(now);
                    self.transmits.push_back(Transmit {
                        to,
                        bytes: buf[..n].to_vec(),
                    });
                }
            }
        }
    }

    /// The earliest time [`Self::handle_timeout`] has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let cfg = &self.config;
        let mut next: Option<Instant> = None;
        let mut at = |i: Instant| next = Some(next.map_or(i, |n| n.min(i)));
        for t in self.tunnels.iter().flatten() {
            if let Some(c) = t.closing {
                at(c + cfg.rekey_timeout);
                continue;
            }
            if let Some(h) = &t.handshake {
                at(h.started + t.retransmit_after(h, cfg));
            }
            for s in t.current.iter().chain(&t.previous) {
                at(s.established + cfg.reject_after_time);
            }
            if let Some(s) = &t.current {
                let rekey = if s.initiator {
                    if s.confirmed {
                        cfg.rekey_after_time
                    } else {
                        cfg.rekey_timeout
                    }
                } else {
                    cfg.reject_after_time
                        .saturating_sub(cfg.keepalive_timeout + cfg.rekey_timeout)
                };
                at(s.established + rekey);
                at(t.last_sent + cfg.keepalive_timeout);
            }
            if let Some(p) = &t.peer {
                at(t.last_received + cfg.dead_peer_timeout);
                if let Some(p) = probe::next_probe(t, cfg) {
                    at(p);
                }
                // Certificate expiry, on the monotonic clock.
                let left = p.not_after.saturating_sub(self.clock_base.1);
                at(self.clock_base.0 + Duration::from_secs(left.saturating_add(1)));
            }
        }
        next
    }
}
