//! Pending requests (babeld's `resend.c`): seqno and route requests we sent or
//! forward, their retries, and urgent updates resent until acknowledged.

use super::*;

impl Engine {
    pub(super) fn resend_delay(&self) -> u64 {
        let min_hello = self
            .links
            .iter()
            .flatten()
            .map(|l| l.cfg.hello_interval_ms as u64 / 2)
            .min()
            .unwrap_or(2000);
        min_hello.clamp(20, 2000)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_resend(
        &mut self,
        now: Instant,
        kind: ResendKind,
        prefix: Prefix,
        src: Prefix,
        seqno: SeqNo,
        id: Option<RouterId>,
        link: Option<LinkId>,
        delay: u64,
    ) {
        let delay = delay.min(0xFFFF);
        if let Some(r) = self
            .requests
            .iter_mut()
            .find(|r| r.kind == kind && r.prefix == prefix && r.src == src)
        {
            if r.delay > 0 && delay > 0 {
                r.delay = r.delay.min(delay);
            } else if delay > 0 {
                r.delay = delay;
            }
            r.time = now;
            r.max = RESEND_MAX;
            if id.is_some() && r.router_id == id && r.seqno.gt(seqno) {
                return;
            }
            r.router_id = id;
            r.seqno = seqno;
            if r.link != link {
                r.link = None;
            }
            return;
        }
        if self.requests.len() >= self.cfg.limits.pending_requests {
            self.stats.table_full += 1;
            return;
        }
        self.requests.push(Resend {
            kind,
            prefix,
            src,
            seqno,
            router_id: id,
            link,
            time: now,
            delay,
            max: RESEND_MAX,
        });
    }

    pub(super) fn find_request(&self, prefix: &Prefix, src: &Prefix) -> Option<usize> {
        self.requests
            .iter()
            .position(|r| r.kind == ResendKind::Request && r.prefix == *prefix && r.src == *src)
    }

    pub(super) fn unsatisfied_request(
        &self,
        now: Instant,
        prefix: &Prefix,
        src: &Prefix,
        seqno: SeqNo,
        id: RouterId,
    ) -> bool {
        match self.find_request(prefix, src) {
            Some(i) if !self.requests[i].expired(now) => {
                let r = &self.requests[i];
                r.router_id != Some(id) || !r.seqno.gt(seqno)
            }
            _ => false,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn request_redundant(
        &self,
        now: Instant,
        link: LinkId,
        prefix: &Prefix,
        src: &Prefix,
        seqno: SeqNo,
        id: RouterId,
    ) -> bool {
        let Some(i) = self.find_request(prefix, src) else {
            return false;
        };
        let r = &self.requests[i];
        if r.expired(now) {
            return false;
        }
        if r.router_id == Some(id) && r.seqno.gt(seqno) {
            return false;
        }
        if r.link.is_some_and(|l| l != link) {
            return false;
        }
        if r.max > 0 {
            return true;
        }
        let hello = self.link(link).cfg.hello_interval_ms as u64;
        now.millis_since(r.time) < hello.min(1000)
    }

    pub(super) fn satisfy_request(
        &mut self,
        prefix: &Prefix,
        src: &Prefix,
        seqno: SeqNo,
        id: RouterId,
        link: Option<LinkId>,
    ) {
        let Some(i) = self.find_request(prefix, src) else {
            return;
        };
        let r = &mut self.requests[i];
        if link.is_some() && r.link != link {
            return;
        }
        if r.router_id != Some(id) || !r.seqno.gt(seqno) {
            r.max = 0;
            r.time = Instant::ZERO;
        }
    }

    pub(super) fn expire_resends(&mut self, now: Instant) {
        self.requests.retain(|r| !r.expired(now));
    }

    pub(super) fn do_resend(&mut self, now: Instant) {
        for i in 0..self.requests.len() {
            let Some(due) = self.requests[i].due(now) else {
                continue;
            };
            if now < due {
                continue;
            }
            let r = self.requests[i].clone();
            match r.kind {
                ResendKind::Request => {
                    let id = r.router_id.unwrap_or_default();
                    let links: Vec<LinkId> = match r.link {
                        Some(l) if self.links.get(l.0).is_some_and(Option::is_some) => vec![l],
                        _ => self.link_ids().collect(),
                    };
                    for l in links {
                        self.queue_link(
                            now,
                            l,
                            Out::SeqnoRequest {
                                prefix: r.prefix,
                                src: r.src,
                                seqno: r.seqno,
                                hop_count: HOP_COUNT,
                                router_id: id,
                            },
                            10,
                        );
                    }
                }
                ResendKind::Update => {
                    let link = r
                        .link
                        .filter(|l| self.links.get(l.0).is_some_and(Option::is_some));
                    self.send_update(now, link, true, r.prefix, r.src);
                }
            }
            let q = &mut self.requests[i];
            q.delay = (q.delay * 2).min(0xFFFF);
            q.max -= 1;
        }
    }

    pub(super) fn send_request_resend(
        &mut self,
        now: Instant,
        prefix: Prefix,
        src: Prefix,
        seqno: SeqNo,
        id: RouterId,
    ) {
        let req = Out::SeqnoRequest {
            prefix,
            src,
            seqno,
            hop_count: HOP_COUNT,
            router_id: id,
        };
        if let Some(r) = self.find_best_route(now, &prefix, &src, false, None) {
            let n = self.routes[r].neighbour;
            let link = self.nb(n).link;
            self.queue_neighbour(now, n, req, 10);
            let delay = self.resend_delay();
            self.record_resend(
                now,
                ResendKind::Request,
                prefix,
                src,
                seqno,
                Some(id),
                Some(link),
                delay,
            );
        } else {
            for l in self.link_ids().collect::<Vec<_>>() {
                self.queue_link(now, l, req.clone(), 10);
            }
        }
    }

    /// A Seqno Request from neighbour `n` ([RFC 8966 §3.8.1.2]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_seqno_request(
        &mut self,
        now: Instant,
        n: NeighbourId,
        prefix: Prefix,
        src: Prefix,
        hop_count: u8,
        seqno: SeqNo,
        id: RouterId,
    ) {
        let link = self.nb(n).link;
        let installed = self.find_installed(&prefix, &src);
        if self.find_xroute(&prefix, &src).is_some() && installed.is_none() {
            if hop_count > 0 && id == self.cfg.router_id && seqno.gt(self.seqno) {
                if seqno.minus(self.seqno) > 100 {
                    // Hopelessly out of date.
                    return;
                }
                self.seqno = self.seqno.plus(1);
            }
            self.send_update(now, Some(link), true, prefix, src);
            return;
        }
        if let Some(r) = installed {
            let route = &self.routes[r];
            if id != route.router_id || !seqno.gt(route.seqno) {
                self.send_update(now, Some(link), true, prefix, src);
                return;
            }
        }
        if hop_count <= 1 {
            return;
        }
        if let Some(r) = installed {
            if id == self.routes[r].router_id && seqno.minus(self.routes[r].seqno) > 100 {
                return;
            }
        }
        if self.request_redundant(now, link, &prefix, &src, seqno, id) {
            return;
        }
        let mut successor = installed
            .filter(|&r| self.routes[r].metric() < INFINITY)
            .map(|r| self.routes[r].neighbour);
        if successor.is_none() || successor == Some(n) {
            // Never send a request back to its requestor.
            successor = self
                .find_best_route(now, &prefix, &src, false, Some(n))
                .filter(|&r| self.routes[r].metric() < INFINITY)
                .map(|r| self.routes[r].neighbour);
        }
        let Some(succ) = successor.filter(|&s| s != n) else {
            return;
        };
        self.queue_neighbour(
            now,
            succ,
            Out::SeqnoRequest {
                prefix,
                src,
                seqno,
                hop_count: hop_count - 1,
                router_id: id,
            },
            10,
        );
        self.record_resend(
            now,
            ResendKind::Request,
            prefix,
            src,
            seqno,
            Some(id),
            Some(link),
            0,
        );
    }
}
