//! Input (babeld's `message.c`, receiving side): MAC and replay checks, then each
//! TLV of a packet.

use super::*;

impl Engine {
    /// Processes one received datagram: `from` is the sender (link-local, port), `to`
    /// the address it was sent to (ff02::1:6 or ours).
    pub fn handle_packet(
        &mut self,
        now: Instant,
        link: LinkId,
        from: SocketAddrV6,
        to: Ipv6Addr,
        bytes: &[u8],
    ) {
        self.stats.packets_in += 1;
        if !self.links.get(link.0).is_some_and(Option::is_some)
            || !from.ip().is_unicast_link_local()
        {
            self.stats.packets_dropped += 1;
            return;
        }
        let Ok(pkt) = Packet::new_checked(bytes) else {
            self.stats.packets_dropped += 1;
            return;
        };
        let src = *from.ip();
        let mut neighbour = None;
        if self.cfg.mac.enabled() {
            let keys = [self.cfg.mac.sign.clone(), self.cfg.mac.accept.clone()];
            let good = keys
                .iter()
                .flatten()
                .any(|k: &MacKey| k.verify(src, from.port(), to, PORT, &pkt) == MacCheck::Good);
            if good {
                match self.check_replay(now, link, src, to, pkt.body()) {
                    Some(n) => neighbour = Some(n),
                    None => {
                        self.stats.replays_rejected += 1;
                        return;
                    }
                }
            } else {
                self.stats.mac_rejected += 1;
                if !self.cfg.mac.accept_bad_signatures {
                    return;
                }
            }
        }
        let n = match neighbour {
            Some(n) => n,
            None => match self.find_or_create_neighbour(now, link, src) {
                Some(n) => n,
                None => return,
            },
        };
        let local = self.link(link).cfg.local;
        let mut have_hello_rtt = false;
        let mut ihu_ts: Option<(u32, u32)> = None;
        for m in Decoder::new(pkt.body()) {
            let Ok(m) = m else {
                self.stats.tlvs_ignored += 1;
                continue;
            };
            match m {
                Message::AckReq { nonce, interval } => {
                    self.queue_neighbour(now, n, Out::Ack(nonce), interval as u64 * 6);
                }
                Message::Ack { .. } => {}
                Message::Hello {
                    unicast,
                    seqno,
                    interval,
                    timestamp,
                } => {
                    let nb = self.nb_mut(n);
                    let hist = if unicast {
                        &mut nb.uhello
                    } else {
                        &mut nb.hello
                    };
                    let changed = hist.receive(now, SeqNo(seqno), interval);
                    // Two Hellos in a row after silence: a new (or returning)
                    // neighbour. As babeld: tell it our rxcost now, rather than
                    // a hello interval later, and ask for its routes.
                    let newish = hist.reach & 0xFC00 == 0xC000;
                    if let Some(ts) = timestamp {
                        nb.hello_send_us = ts;
                        nb.hello_rtt_receive_time = Some(now);
                        have_hello_rtt = true;
                    }
                    // Its first two Hellos: it needs two of ours as well before
                    // 2-out-of-3 gives us a cost on its side, so send them soon
                    // (a burst of two per appearance, never a storm).
                    let fresh = newish || hist.reach & 0xFC00 == 0x8000;
                    self.update_neighbour_metric(now, n, changed);
                    if newish {
                        self.send_ihu(now, n);
                        self.queue_neighbour(now, n, Out::RouteRequest(None), 10);
                    }
                    if fresh {
                        self.hello_soon(link, now.add_millis(100));
                    }
                    if interval > 0 {
                        self.schedule_neighbours_check(now, interval as u64 * 15);
                    }
                }
                Message::Ihu {
                    rxcost,
                    interval,
                    address,
                    timestamps,
                } => {
                    if address.is_none_or(|a| a == local) {
                        let nb = self.nb_mut(n);
                        let changed = nb.txcost != rxcost;
                        nb.txcost = rxcost;
                        nb.ihu_time = now;
                        nb.ihu_interval = interval;
                        if timestamps.is_some() {
                            ihu_ts = timestamps;
                        }
                        self.update_neighbour_metric(now, n, changed);
                        if interval > 0 {
                            self.schedule_neighbours_check(now, interval as u64 * 45);
                        }
                    }
                }
                Message::Update(u) => self.handle_update(now, n, src, u),
                Message::RouteRequest { prefix, src_prefix } => match prefix {
                    None => {
                        self.send_ihu(now, n);
                        // A newcomer waits for this: answer at once, but at most
                        // one dump a second per link, so that nodes booting
                        // together cause no update storm. A request within the
                        // guard is answered when it ends rather than dropped
                        // (as babeld does): the requester may have missed the
                        // last dump, as a LAN neighbour does until our beacon
                        // proved us to it.
                        let due = self
                            .link(link)
                            .last_full_update
                            .map_or(now, |t| t.add_millis(DUMP_GUARD_MS).max(now));
                        if due <= now {
                            self.send_full_update(now, link, true);
                        } else {
                            let l = self.link_mut(link);
                            l.dump_due = Some(l.dump_due.map_or(due, |d| d.min(due)));
                        }
                    }
                    Some(p) => self.send_update(now, Some(link), false, p, src_prefix),
                },
                Message::SeqnoRequest {
                    prefix,
                    src_prefix,
                    seqno,
                    hop_count,
                    router_id,
                } => self.handle_seqno_request(
                    now,
                    n,
                    prefix,
                    src_prefix,
                    hop_count,
                    SeqNo(seqno),
                    router_id,
                ),
                Message::Pc { .. }
                | Message::ChallengeRequest { .. }
                | Message::ChallengeReply { .. } => {}
            }
            if self.neighbours[n.0].is_none() {
                return;
            }
        }
        // RTT from a Hello and an IHU echoing our timestamp in the same packet.
        if let (true, Some((origin, receive))) = (have_hello_rtt, ihu_ts) {
            let nb = self.nb(n);
            if origin == 0 || receive == 0 || nb.hello_send_us == 0 {
                return;
            }
            let remote = nb.hello_send_us.wrapping_sub(receive) as i32;
            let local_wait = time_us(now).wrapping_sub(origin) as i32;
            if remote < 0 || local_wait < 0 || remote > 600_000_000 || local_wait > 600_000_000 {
                return;
            }
            let rtt = (local_wait - remote).max(0) as u32;
            let cfg = self.link(link).cfg.clone();
            let before = self.nb(n).rttcost(&cfg, now);
            self.nb_mut(n).rtt_sample(&cfg, now, rtt);
            let changed = self.nb(n).rttcost(&cfg, now) != before;
            self.update_neighbour_metric(now, n, changed);
        }
    }

    pub(super) fn handle_update(
        &mut self,
        now: Instant,
        n: NeighbourId,
        from: Ipv6Addr,
        u: UpdateMsg,
    ) {
        let Some(prefix) = u.prefix else {
            // Wildcard retraction.
            self.retract_neighbour_routes(now, n);
            return;
        };
        if prefix.is_v4() {
            // IPv4 is not routed by re6st-lite.
            self.stats.tlvs_ignored += 1;
            return;
        }
        let next_hop = u.next_hop.filter(|a| !a.is_unspecified()).unwrap_or(from);
        self.update_route(
            now,
            n,
            u.router_id,
            prefix,
            u.src_prefix,
            SeqNo(u.seqno),
            u.metric,
            u.interval,
            next_hop,
        );
    }

    /// RFC 8967 §4.3 replay protection (babeld `preparse_packet`): the packet's PC must
    /// grow; an unknown index triggers a challenge. Returns the neighbour if accepted.
    pub(super) fn check_replay(
        &mut self,
        now: Instant,
        link: LinkId,
        from: Ipv6Addr,
        to: Ipv6Addr,
        body: &[u8],
    ) -> Option<NeighbourId> {
        let mut pc: Option<(u32, [u8; 32], u8)> = None;
        let mut nonce: Option<Vec<u8>> = None;
        let mut success = false;
        let mut n: Option<NeighbourId> = None;
        let mut tlvs = crate::babel::wire::TlvIter::new(body);
        while let Some(Ok((t, v))) = tlvs.next_raw() {
            match t {
                kind::PC => {
                    if pc.is_some() {
                        continue;
                    }
                    if v.len() < 4 || v.len() > 36 {
                        break;
                    }
                    let mut index = [0u8; 32];
                    index[..v.len() - 4].copy_from_slice(&v[4..]);
                    pc = Some((
                        u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                        index,
                        (v.len() - 4) as u8,
                    ));
                }
                kind::CHALLENGE_REQUEST => {
                    if to.is_multicast() {
                        continue;
                    }
                    if v.len() > 192 {
                        break;
                    }
                    nonce = Some(v.to_vec());
                }
                kind::CHALLENGE_REPLY => {
                    if v.len() > 192 {
                        break;
                    }
                    let id = n.or_else(|| self.find_or_create_neighbour(now, link, from));
                    let Some(id) = id else { continue };
                    n = Some(id);
                    let m = &mut self.nb_mut(id).mac;
                    if m.challenge_deadline.is_some_and(|d| now <= d) && v == m.nonce {
                        success = true;
                        m.challenge_deadline = None;
                    }
                }
                _ => {}
            }
        }
        let mut accept = false;
        match pc {
            None => {}
            Some((pcv, index, ilen)) if success => {
                let m = &mut self.nb_mut(n?).mac;
                m.index = Some((index, ilen));
                m.pc_multicast = pcv;
                m.pc_unicast = pcv;
                accept = true;
            }
            Some((pcv, index, ilen)) => {
                let id = n.or_else(|| self.find_or_create_neighbour(now, link, from))?;
                n = Some(id);
                let known = self
                    .nb(id)
                    .mac
                    .index
                    .is_some_and(|(i, l)| l == ilen && i == index);
                if !known {
                    self.send_challenge_request(now, id);
                } else {
                    let m = &mut self.nb_mut(id).mac;
                    let last = if to.is_multicast() {
                        &mut m.pc_multicast
                    } else {
                        &mut m.pc_unicast
                    };
                    if pcv <= *last {
                        // Replayed or reordered: ignore its challenge request too.
                        nonce = None;
                    } else {
                        *last = pcv;
                        accept = true;
                    }
                }
            }
        }
        if let Some(nonce) = nonce {
            let id = n.or_else(|| self.find_or_create_neighbour(now, link, from))?;
            n = Some(id);
            let m = &mut self.nb_mut(id).mac;
            if m.challenge_reply_after.is_none_or(|t| now > t) {
                m.challenge_reply_after = Some(now.add_millis(300));
                self.queue_neighbour(now, id, Out::ChallengeReply(nonce), 10);
                // The challenger dropped what we sent so far, our Hello too:
                // another, after the reply, saves it a hello interval.
                self.hello_soon(link, now.add_millis(50));
            }
        }
        if accept {
            n
        } else {
            None
        }
    }

    pub(super) fn send_challenge_request(&mut self, now: Instant, n: NeighbourId) {
        if self
            .nb(n)
            .mac
            .challenge_request_after
            .is_some_and(|t| now <= t)
        {
            return;
        }
        let nonce = self.rng.next().to_be_bytes();
        let m = &mut self.nb_mut(n).mac;
        m.nonce = nonce;
        m.challenge_deadline = Some(now.add_millis(30_000));
        m.challenge_request_after = Some(now.add_millis(300));
        self.stats.challenges_sent += 1;
        self.queue_neighbour(now, n, Out::ChallengeRequest(nonce), 10);
    }
}
