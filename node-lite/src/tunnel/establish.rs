//! Handshake messages as they arrive: initiations (with the cookie and the
//! client-slot policy against floods), responses, finals and cookie replies;
//! then authentication against the network's CA and the new session.

use super::*;

impl<A: Authority> Endpoint<A> {
    pub(super) fn on_init(
        &mut self,
        now: Instant,
        src: SocketAddr,
        init: &wire::HandshakeInit<'_>,
        out: &mut [u8],
    ) -> Result<Out, Error> {
        if !self.keys.verify_mac1(&init.macs) {
            return Err(Error::Mac1);
        }
        // A known peer re-keying (or a simultaneous open) uses its tunnel.
        let existing = self.tunnels.iter().position(|t| {
            t.as_ref()
                .is_some_and(|t| t.addr == src && t.closing.is_none())
        });
        let full = existing.is_none()
            && self
                .tunnels
                .iter()
                .flatten()
                .filter(|t| t.role == Role::Server)
                .count()
                >= self.config.max_clients;
        // Under load, or with every client slot taken, only initiators that proved
        // their address (mac2, from our cookie) get work done; the others get a
        // cookie, so that a real peer proves itself on its next try (1 s later).
        let under_load = self.initiations.is_empty(now);
        let mut proven = false;
        if under_load || full {
            let mut rng = SeededRng::new(self.seed());
            let mut nonce = [0u8; wire::COOKIE_NONCE_LEN];
            rng.fill(&mut nonce);
            let mut fresh = || {
                let mut s = [0u8; 32];
                rng.fill(&mut s);
                s
            };
            proven = self.cookies.verify_mac2(now, &src, &init.macs, &mut fresh);
            if !proven {
                let n = self
                    .cookies
                    .reply(
                        &self.keys,
                        now,
                        &src,
                        init.sender,
                        init.macs.mac1,
                        &nonce,
                        fresh,
                        out,
                    )
                    .map_err(Error::Wire)?;
                return Ok(Out::Network(src, n));
            }
        }
        if !under_load {
            self.initiations.try_take(now);
        }
        let id = match existing {
            Some(i) => {
                let t = self.tunnels[i].as_ref().ok_or(Error::UnknownTunnel)?;
                if let Some(h) = t.handshake.as_ref().filter(|h| h.is_initiator()) {
                    // Both sides initiated: the larger ephemeral key wins, on both sides.
                    if h.ephemeral() > &init.noise[..32] {
                        return Ok(Out::Done);
                    }
                }
                i as TunnelId
            }
            None => {
                // A flood of unproven initiations must not keep the slots of
                // half-open tunnels: a proven one takes the oldest.
                if full && !self.evict_unproven_half_open() {
                    return Err(Error::TooManyClients);
                }
                let mut t = Tunnel::new(src, Role::Server, now);
                t.proven = proven;
                self.alloc(t)
            }
        };
        let seed = self.seed();
        let t = self.tunnels[id as usize]
            .as_mut()
            .ok_or(Error::UnknownTunnel)?;
        t.generation = t.generation.wrapping_add(1);
        let index = (id << 8) | u32::from(t.generation);
        match Handshake::respond(&self.keys, &self.identity, seed, index, now, init, out) {
            Ok((h, n)) => {
                t.handshake = Some(h);
                Ok(Out::Network(src, n))
            }
            Err(e) => {
                if t.peer.is_none() && t.current.is_none() {
                    self.tunnels[id as usize] = None;
                }
                Err(Error::Handshake(e))
            }
        }
    }

    /// Frees the slot of the oldest half-open accepted tunnel (initiation answered,
    /// initiator not yet authenticated) whose initiator did not prove its address.
    pub(super) fn evict_unproven_half_open(&mut self) -> bool {
        let oldest = self
            .tunnels
            .iter()
            .enumerate()
            .filter_map(|(i, t)| Some((i, t.as_ref()?)))
            .filter(|(_, t)| {
                t.role == Role::Server && t.peer.is_none() && t.current.is_none() && !t.proven
            })
            .min_by_key(|(_, t)| t.handshake.as_ref().map(|h| h.started))
            .map(|(i, _)| i);
        if let Some(i) = oldest {
            self.tunnels[i] = None;
        }
        oldest.is_some()
    }

    /// The Authority's verdict on `creds` for tunnel `id`, skipping RSA when
    /// the peer proved the same static key and certificate before.
    pub(super) fn authenticate(
        &mut self,
        now: Instant,
        src: SocketAddr,
        id: TunnelId,
        creds: &Credentials,
    ) -> Result<PeerIdentity, Error> {
        let unix = self.unix_now(now);
        let t = self.tunnels[id as usize]
            .as_ref()
            .ok_or(Error::UnknownTunnel)?;
        if let Some(p) = t.peer.as_ref() {
            if t.peer_static == creds.static_pub && t.peer_cert == creds.cert_der {
                if self.authority.is_revoked(p.serial) {
                    return Err(Error::Auth(AuthError::Revoked(p.serial)));
                }
                if unix > p.not_after {
                    return Err(Error::Auth(AuthError::OutOfDate));
                }
                return Ok(p.clone());
            }
        }
        // One address may not spend the budget of all: check its share
        // first, take from both only if both have a token.
        if !self.source_verifications.allows(src.ip(), now) {
            return Err(Error::RateLimitedSource);
        }
        if !self.verifications.try_take(now) {
            return Err(Error::RateLimited);
        }
        self.source_verifications.try_take(src.ip(), now);
        self.verifications_done += 1;
        let p = self
            .authority
            .verify_peer(&creds.cert_der, &creds.static_pub, &creds.signature, unix)
            .map_err(Error::Auth)?;
        if t.peer.as_ref().is_some_and(|old| old.prefix != p.prefix) {
            // A tunnel does not change peers; the other node must open its own.
            return Err(Error::Auth(AuthError::Malformed(
                "peer changed prefix".into(),
            )));
        }
        Ok(p)
    }

    /// Install a completed handshake's session on tunnel `id` and announce it.
    pub(super) fn establish(
        &mut self,
        now: Instant,
        id: TunnelId,
        h: Handshake,
        creds: Credentials,
        peer: PeerIdentity,
    ) -> Result<(), Error> {
        let (local, remote, initiator) = (h.local_index, h.remote_index, h.is_initiator());
        let split = h.split().map_err(Error::Handshake)?;
        let session = Session::new(local, remote, &split.send, &split.recv, now, initiator);
        // The same node through another tunnel of the same role (restart, new
        // address): keep the newest. A client and a server tunnel to one peer
        // (both connected at once) are the mesh manager's to resolve.
        let role = self.tunnel(id).ok_or(Error::UnknownTunnel)?.role;
        let dup: Vec<TunnelId> = self
            .tunnels
            .iter()
            .enumerate()
            .filter(|(i, t)| {
                *i != id as usize
                    && t.as_ref()
                        .filter(|t| t.role == role)
                        .and_then(|t| t.peer.as_ref())
                        .is_some_and(|p| p.prefix == peer.prefix)
            })
            .map(|(i, _)| i as TunnelId)
            .collect();
        for d in dup {
            self.free(d, Some(CloseReason::Replaced));
        }
        let t = self.tunnels[id as usize]
            .as_mut()
            .ok_or(Error::UnknownTunnel)?;
        t.install(session);
        t.attempts_since = None;
        t.last_received = t.last_received.max(now); // never backwards: a clock jump must not kill the tunnel
        t.peer_static = creds.static_pub;
        t.peer_cert = creds.cert_der;
        let first = t.peer.is_none();
        t.peer = Some(peer.clone());
        self.events.push_back(if first {
            Event::Established {
                id,
                peer,
                addr: t.addr,
            }
        } else {
            Event::Rekeyed { id }
        });
        Ok(())
    }

    /// The shared first half of [`Self::on_resp`] and [`Self::on_final`]:
    /// check mac1, find the handshake waiting for this message in the
    /// receiver's slot (ours as initiator for a response, as responder for a
    /// final), `read` the message into it and authenticate the peer. On
    /// success the handshake leaves its slot, ready to split. On failure:
    /// an initiator keeps its (now unusable) handshake, so its retransmit
    /// timer starts a fresh one later; a responder drops it, and a tunnel
    /// that never had a peer (half-open) goes with it.
    pub(super) fn complete_handshake(
        &mut self,
        now: Instant,
        src: SocketAddr,
        macs: &wire::Macs<'_>,
        receiver: u32,
        initiator: bool,
        read: impl FnOnce(&mut Handshake) -> Result<Credentials, handshake::Error>,
    ) -> Result<(TunnelId, Handshake, Credentials, PeerIdentity), Error> {
        if !self.keys.verify_mac1(macs) {
            return Err(Error::Mac1);
        }
        let id = slot_of(receiver) as TunnelId;
        let h = self
            .tunnels
            .get_mut(id as usize)
            .and_then(Option::as_mut)
            .and_then(|t| t.handshake.as_mut())
            .filter(|h| {
                h.is_initiator() == initiator && h.local_index == receiver && !h.is_finished()
            })
            .ok_or(Error::UnknownIndex)?;
        let result = read(h)
            .map_err(Error::Handshake)
            .and_then(|creds| Ok((self.authenticate(now, src, id, &creds)?, creds)));
        let t = self.tunnels[id as usize]
            .as_mut()
            .ok_or(Error::UnknownTunnel)?;
        match result {
            Ok((peer, creds)) => {
                let h = t.handshake.take().ok_or(Error::UnknownIndex)?;
                Ok((id, h, creds, peer))
            }
            Err(e) => {
                if !initiator {
                    t.handshake = None;
                    if t.peer.is_none() {
                        self.tunnels[id as usize] = None;
                    }
                }
                Err(e)
            }
        }
    }

    pub(super) fn on_resp(
        &mut self,
        now: Instant,
        src: SocketAddr,
        resp: &wire::HandshakeResp<'_>,
        out: &mut [u8],
    ) -> Result<Out, Error> {
        let (id, mut h, creds, peer) =
            self.complete_handshake(now, src, &resp.macs, resp.receiver, true, |h| {
                h.read_response(resp)
            })?;
        let n = h
            .write_final(&self.keys, &self.identity, out)
            .map_err(Error::Handshake)?;
        let t = self.tunnels[id as usize]
            .as_mut()
            .ok_or(Error::UnknownTunnel)?;
        // Roaming: the responder's address is where its authenticated answer came from.
        t.addr = src;
        t.last_sent = t.last_sent.max(now);
        self.establish(now, id, h, creds, peer)?;
        Ok(Out::Network(src, n))
    }

    pub(super) fn on_final(
        &mut self,
        now: Instant,
        src: SocketAddr,
        fin: &wire::HandshakeFinal<'_>,
        out: &mut [u8],
    ) -> Result<Out, Error> {
        let (id, h, creds, peer) =
            self.complete_handshake(now, src, &fin.macs, fin.receiver, false, |h| {
                h.read_final(fin)
            })?;
        let t = self.tunnels[id as usize]
            .as_mut()
            .ok_or(Error::UnknownTunnel)?;
        t.addr = src;
        self.establish(now, id, h, creds, peer)?;
        // Confirm at once, so the initiator switches to the new keys.
        let t = self.tunnels[id as usize]
            .as_mut()
            .ok_or(Error::UnknownTunnel)?;
        let s = t.current.as_mut().ok_or(Error::NoSession)?;
        let n = s
            .seal(wire::TYPE_DATA, &[], out)
            .map_err(|_| Error::BufferTooSmall)?;
        t.last_sent = t.last_sent.max(now);
        Ok(Out::Network(src, n))
    }

    pub(super) fn on_cookie(
        &mut self,
        now: Instant,
        c: &wire::CookieReply<'_>,
    ) -> Result<Out, Error> {
        let t = self
            .tunnels
            .get_mut(slot_of(c.receiver))
            .and_then(Option::as_mut)
            .ok_or(Error::UnknownIndex)?;
        let h = t
            .handshake
            .as_ref()
            .filter(|h| h.local_index == c.receiver)
            .ok_or(Error::UnknownIndex)?;
        let cookie = self
            .keys
            .open_cookie_reply(c, &h.last_mac1)
            .ok_or(Error::Mac1)?;
        // Used by the next retransmission (REKEY_TIMEOUT), as in WireGuard.
        t.cookie = Some((cookie, now));
        Ok(Out::Done)
    }
}
