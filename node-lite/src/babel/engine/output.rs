//! Output (babeld's `message.c`, sending side): per-link and per-neighbour queues,
//! Hellos, IHUs, updates and requests, and packets built with PC and MAC.

use super::*;
use std::collections::HashSet;

impl Engine {
    pub(super) fn queue_link(&mut self, now: Instant, link: LinkId, m: Out, delay: u64) {
        let at = now.add_millis(self.rng.roughly_ms(delay));
        let out = &mut self.link_mut(link).out;
        out.push(m);
        out.schedule(at);
    }

    pub(super) fn queue_neighbour(&mut self, now: Instant, n: NeighbourId, m: Out, delay: u64) {
        let at = now.add_millis(self.rng.roughly_ms(delay));
        let out = self.nb_out(n);
        out.push(m);
        out.schedule(at);
    }

    /// babeld `jitter`: a non-urgent message waits up to half a flush interval.
    pub(super) fn flush_jitter(&mut self, link: LinkId) -> u64 {
        let iv = (self.link(link).cfg.hello_interval_ms as u64 / 2).min(2000);
        self.rng.roughly_ms(iv / 2)
    }

    /// A scheduled multicast Hello, and IHUs (all every third Hello, else only for
    /// marginal neighbours) ([RFC 8966 §3.4.1]).
    pub(super) fn send_hello(&mut self, now: Instant, link: LinkId) {
        let hello_ms = self.link(link).cfg.hello_interval_ms as u64;
        let next = now.add_millis(self.rng.roughly_ms(hello_ms));
        let jitter = if self.link(link).hello_urgent {
            self.rng.roughly_ms(10)
        } else {
            self.flush_jitter(link)
        };
        let l = self.link_mut(link);
        l.hello_urgent = false;
        // A Hello still waiting in the queue (an unscheduled one for RTT) is
        // replaced under its own seqno: a fresh seqno would leave a gap the
        // neighbour counts as a lost Hello.
        if l.out.hello.is_none() {
            l.hello_seqno = l.hello_seqno.plus(1);
        }
        let interval = hello_ms.div_ceil(10).min(0xFFFF) as u16;
        l.out.hello = Some((false, l.hello_seqno, interval));
        l.hello_at = next;
        l.out.schedule(now.add_millis(jitter));
        let full = l.hello_seqno.0 % 3 == 0;
        let ids: Vec<NeighbourId> = self
            .neighbour_ids()
            .filter(|&n| self.nb(n).link == link)
            .collect();
        for n in ids {
            let nb = self.nb(n);
            if full || nb.txcost >= 384 || nb.hello.reach & 0xF000 != 0xF000 {
                self.send_ihu(now, n);
            }
        }
    }

    pub(super) fn send_ihu(&mut self, now: Instant, n: NeighbourId) {
        let link = self.nb(n).link;
        let cfg = self.link(link).cfg.clone();
        let nb = self.nb(n);
        let rxcost = nb.rxcost(&cfg, now);
        let interval = ((cfg.hello_interval_ms as u64 * 3).div_ceil(10)).min(0xFFFF) as u16;
        let rtt = cfg.timestamps
            && nb.hello_send_us != 0
            && nb
                .hello_rtt_receive_time
                .is_some_and(|t| now.millis_since(t) < 1_000_000);
        let timestamps = if rtt {
            Some((
                nb.hello_send_us,
                time_us(nb.hello_rtt_receive_time.unwrap_or(now)),
            ))
        } else {
            self.nb_mut(n).hello_send_us = 0;
            None
        };
        let address = self.nb(n).address;
        let jitter = self.flush_jitter(link);
        let l = self.link_mut(link);
        if timestamps.is_some() && l.out.hello.is_none() {
            // The RTT needs a Hello in the same packet: an unscheduled one.
            l.hello_seqno = l.hello_seqno.plus(1);
            l.out.hello = Some((false, l.hello_seqno, 0));
        }
        l.out.ihus.retain(|i| i.address != address);
        l.out.ihus.push(Ihu {
            address,
            rxcost,
            interval,
            timestamps,
        });
        l.out.schedule(now.add_millis(jitter));
    }

    /// Schedules an Update for a destination on one link or all ([RFC 8966 §3.7]).
    pub(super) fn send_update(
        &mut self,
        now: Instant,
        link: Option<LinkId>,
        urgent: bool,
        prefix: Prefix,
        src: Prefix,
    ) {
        let links: Vec<LinkId> = match link {
            Some(l) => vec![l],
            None => self.link_ids().collect(),
        };
        for l in links {
            let hello = self.link(l).cfg.hello_interval_ms as u64;
            let delay = self
                .rng
                .roughly_ms(hello.min(if urgent { 100 } else { 4000 }));
            let lk = self.link_mut(l);
            if !lk.pending_updates.contains(&(prefix, src)) {
                lk.pending_updates.push((prefix, src));
            }
            let at = now.add_millis(delay);
            lk.update_flush_at = Some(lk.update_flush_at.map_or(at, |f| f.min(at)));
        }
        if link.is_none() {
            if let Some(r) = self.find_installed(&prefix, &src) {
                if self.routes[r].metric() < INFINITY {
                    let (seqno, id) = (self.routes[r].seqno, self.routes[r].router_id);
                    self.satisfy_request(&prefix, &src, seqno, id, None);
                }
            }
        }
    }

    pub(super) fn send_update_resend(&mut self, now: Instant, prefix: Prefix, src: Prefix) {
        self.send_update(now, None, true, prefix, src);
        let delay = self.resend_delay();
        self.record_resend(
            now,
            ResendKind::Update,
            prefix,
            src,
            SeqNo(0),
            None,
            None,
            delay,
        );
    }

    /// Full dump on a link: our prefixes and every selected route. `urgent`
    /// for one that someone waits for, periodic ones are not.
    pub(super) fn send_full_update(&mut self, now: Instant, link: LinkId, urgent: bool) {
        let mut dests: Vec<(Prefix, Prefix)> =
            self.xroutes.iter().map(|x| (x.prefix, x.src)).collect();
        dests.extend(
            self.routes
                .iter()
                .filter(|r| r.installed)
                .map(|r| (r.prefix, r.src_prefix)),
        );
        for (p, s) in dests {
            self.send_update(now, Some(link), urgent, p, s);
        }
        let iv = self.link(link).cfg.update_interval_ms as u64;
        let next = now.add_millis(self.rng.roughly_ms(iv));
        let l = self.link_mut(link);
        l.update_at = next;
        l.last_full_update = Some(now);
        l.dump_due = None;
    }

    /// babeld `flushupdates`: turns pending destinations into Update TLVs with the
    /// current tables, updating the feasibility distances we advertise.
    pub(super) fn flush_updates(&mut self, now: Instant, link: LinkId) {
        let mut pending = core::mem::take(&mut self.link_mut(link).pending_updates);
        self.link_mut(link).update_flush_at = None;
        let myid = self.cfg.router_id;
        // Same router-id together, host routes of the router-id first, longer first:
        // babeld's order, which compresses best.
        let id_of = |e: &Engine, p: &Prefix, s: &Prefix| {
            e.find_installed(p, s)
                .map(|r| e.routes[r].router_id)
                .unwrap_or(myid)
        };
        let mut keyed: Vec<(RouterId, Prefix, Prefix)> = pending
            .drain(..)
            .map(|(p, s)| (id_of(self, &p, &s), p, s))
            .collect();
        keyed.sort_by(|a, b| {
            let ma = a.1.len() == 128 && a.1.octets()[8..] == a.0 .0;
            let mb = b.1.len() == 128 && b.1.octets()[8..] == b.0 .0;
            a.0.cmp(&b.0)
                .then(mb.cmp(&ma))
                .then(b.1.len().cmp(&a.1.len()))
                .then(a.1.cmp(&b.1))
                .then(a.2.cmp(&b.2))
        });
        keyed.dedup_by(|a, b| a.1 == b.1 && a.2 == b.2);
        // A later Update for a destination replaces an unsent one: dropped in
        // one pass (per update, a full dump of N routes took N² steps).
        let fresh: HashSet<(Prefix, Prefix)> = keyed.iter().map(|k| (k.1, k.2)).collect();
        self.link_mut(link).out.msgs.retain(
            |m| !matches!(m, Out::Update { prefix, src, .. } if fresh.contains(&(*prefix, *src))),
        );
        for (_, prefix, src) in keyed {
            let installed = self.find_installed(&prefix, &src);
            let out = if let Some(x) = self.find_xroute(&prefix, &src) {
                Out::Update {
                    router_id: myid,
                    prefix,
                    src,
                    seqno: self.seqno,
                    metric: x.metric,
                }
            } else if let Some(r) = installed {
                let route = &self.routes[r];
                let (seqno, metric, id, n) = (
                    route.seqno,
                    route.metric(),
                    route.router_id,
                    route.neighbour,
                );
                if metric < INFINITY {
                    self.satisfy_request(&prefix, &src, seqno, id, Some(link));
                }
                if self.link(link).cfg.split_horizon && self.nb(n).link == link {
                    continue;
                }
                if let Some(s) = self.find_source(id, &prefix, &src) {
                    self.sources[s].update(now, seqno, metric);
                }
                Out::Update {
                    router_id: id,
                    prefix,
                    src,
                    seqno,
                    metric,
                }
            } else {
                // No route any more: retract.
                Out::Update {
                    router_id: myid,
                    prefix,
                    src,
                    seqno: self.seqno,
                    metric: INFINITY,
                }
            };
            self.link_mut(link).out.msgs.push(out);
        }
        let at = now.add_millis(self.rng.roughly_ms(10));
        self.link_mut(link).out.schedule(at);
    }

    /// The next packet to send, written into `buf`. Call until it returns `None`.
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        for l in self.link_ids().collect::<Vec<_>>() {
            let q = &self.link(l).out;
            if !q.is_empty() && q.flush_at.is_some_and(|t| t <= now) {
                return self.serialize(now, l, None, buf);
            }
        }
        for n in self.neighbour_ids().collect::<Vec<_>>() {
            let q = &self.neighbours[n.0].as_ref()?.out;
            if !q.is_empty() && q.flush_at.is_some_and(|t| t <= now) {
                let link = self.nb(n).link;
                return self.serialize(now, link, Some(n), buf);
            }
        }
        None
    }

    pub(super) fn serialize(
        &mut self,
        now: Instant,
        link: LinkId,
        to: Option<NeighbourId>,
        buf: &mut [u8],
    ) -> Option<Transmit> {
        let (local, timestamps, max_packet, update_interval) = {
            let c = &self.link(link).cfg;
            (c.local, c.timestamps, c.max_packet, c.update_interval_ms)
        };
        let dst = to.map_or(MULTICAST, |n| self.nb(n).address);
        let sign = self.cfg.mac.sign.clone();
        let reserve = if sign.is_some() { TRAILER_SPACE } else { 0 };
        let limit = buf.len().min(max_packet);
        let mut q = match to {
            None => core::mem::take(&mut self.link_mut(link).out),
            Some(n) => core::mem::take(self.nb_out(n)),
        };
        let mut b = Builder::new(&mut buf[..limit], reserve).ok()?;
        if let Some((unicast, seqno, interval)) = q.hello.take() {
            let ts = timestamps.then(|| time_us(now));
            if b.hello(unicast, seqno.0, interval, ts).is_err() {
                q.hello = Some((unicast, seqno, interval));
            }
        }
        let mut ihus = core::mem::take(&mut q.ihus).into_iter();
        for ihu in ihus.by_ref() {
            if b.ihu(ihu.rxcost, ihu.interval, ihu.address, ihu.timestamps)
                .is_err()
            {
                q.ihus.push(ihu);
                break;
            }
        }
        q.ihus.extend(ihus);
        let update_cs = (update_interval as u64).div_ceil(10).min(0xFFFF) as u16;
        let mut msgs = core::mem::take(&mut q.msgs).into_iter();
        for m in msgs.by_ref() {
            let r = match &m {
                Out::Update {
                    router_id,
                    prefix,
                    src,
                    seqno,
                    metric,
                } => b.update(*router_id, prefix, src, update_cs, seqno.0, *metric),
                Out::WildcardRetraction(s) => b.wildcard_retraction(s.0),
                Out::RouteRequest(p) => b.route_request(p.as_ref().map(|(p, s)| (p, s))),
                Out::SeqnoRequest {
                    prefix,
                    src,
                    seqno,
                    hop_count,
                    router_id,
                } => b.seqno_request(prefix, src, seqno.0, *hop_count, *router_id),
                Out::Ack(nonce) => b.push(&Tlv::Ack {
                    nonce: *nonce,
                    sub: SubTlvs(&[]),
                }),
                Out::ChallengeRequest(nonce) => b.push(&Tlv::ChallengeRequest { nonce }),
                Out::ChallengeReply(nonce) => b.push(&Tlv::ChallengeReply { nonce }),
            };
            if r.is_err() {
                q.msgs.push(m);
                break;
            }
        }
        q.msgs.extend(msgs);
        if q.is_empty() {
            q.flush_at = None;
        }
        let empty = b.is_empty();
        match to {
            None => self.link_mut(link).out = q,
            Some(n) => *self.nb_out(n) = q,
        }
        if empty {
            return None;
        }
        if let Some(key) = &sign {
            let l = self.link_mut(link);
            if l.pc == 0 {
                let fresh = self.rng.next().to_be_bytes();
                self.link_mut(link).index = fresh;
            }
            let l = self.link_mut(link);
            let (pc, index) = (l.pc, l.index);
            l.pc = l.pc.wrapping_add(1);
            // The PC belongs to the body (the MAC covers it), in the space kept for it.
            b.push_reserved(&Tlv::Pc { pc, index: &index }).ok()?;
            b.finish_body();
            let mut mac = [0u8; MAX_MAC_LEN];
            let n = key.compute(local, PORT, dst, PORT, b.as_bytes(), &mut mac);
            b.push(&Tlv::Mac { mac: &mac[..n] }).ok()?;
        }
        let len = b.finish();
        self.stats.packets_out += 1;
        Some(Transmit { link, dst, len })
    }
}
