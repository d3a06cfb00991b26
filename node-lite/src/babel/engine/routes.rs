//! Sources and routes (babeld's `source.c` and `route.c`): feasibility, the route
//! table, selection and installation, and what each change triggers.

use super::*;

impl Engine {
    /// Where the source (`id`, `prefix`, `src`) is, or would go: sources are
    /// kept sorted, like routes, for a binary search.
    fn source_slot(&self, id: RouterId, prefix: &Prefix, src: &Prefix) -> Result<usize, usize> {
        self.sources
            .binary_search_by(|s| (s.prefix, s.src_prefix, s.router_id).cmp(&(*prefix, *src, id)))
    }

    pub(super) fn find_source(&self, id: RouterId, prefix: &Prefix, src: &Prefix) -> Option<usize> {
        self.source_slot(id, prefix, src).ok()
    }

    pub(super) fn find_or_create_source(
        &mut self,
        now: Instant,
        id: RouterId,
        prefix: &Prefix,
        src: &Prefix,
        seqno: SeqNo,
    ) -> Option<usize> {
        if let Some(i) = self.find_source(id, prefix, src) {
            return Some(i);
        }
        if self.sources.len() >= self.cfg.limits.sources && !self.evict_sources() {
            self.refused_full(now, "source");
            return None;
        }
        let Err(i) = self.source_slot(id, prefix, src) else {
            return None; // found above
        };
        self.sources.insert(
            i,
            Source {
                router_id: id,
                prefix: *prefix,
                src_prefix: *src,
                seqno,
                metric: INFINITY,
                time: now,
            },
        );
        Some(i)
    }

    pub(super) fn route_feasible(&self, now: Instant, r: usize) -> bool {
        let route = &self.routes[r];
        match self.find_source(route.router_id, &route.prefix, &route.src_prefix) {
            Some(s) => self.sources[s].feasible(now, route.seqno, route.refmetric),
            None => true,
        }
    }

    pub(super) fn expire_sources(&mut self, now: Instant) {
        let mut sources = core::mem::take(&mut self.sources);
        sources.retain(|s| {
            now.millis_since(s.time) <= SOURCE_GC_SECS * 1000
                || self
                    .destination(&s.prefix, &s.src_prefix)
                    .any(|r| self.routes[r].router_id == s.router_id)
        });
        self.sources = sources;
    }

    // ----- routes ------------------------------------------------------------------

    /// The route table ([RFC 8966 §3.2.6]).
    pub fn routes(&self) -> impl Iterator<Item = RouteInfo> + '_ {
        self.routes.iter().map(move |r| self.route_info(r))
    }

    /// The selected route for a destination, if any.
    pub fn installed_route(&self, prefix: &Prefix, src: &Prefix) -> Option<RouteInfo> {
        self.find_installed(prefix, src)
            .map(|i| self.route_info(&self.routes[i]))
    }

    pub(super) fn route_info(&self, r: &Route) -> RouteInfo {
        RouteInfo {
            prefix: r.prefix,
            src_prefix: r.src_prefix,
            router_id: r.router_id,
            link: self.nb(r.neighbour).link,
            next_hop: r.next_hop,
            metric: r.metric(),
            refmetric: r.refmetric,
            seqno: r.seqno,
            installed: r.installed,
        }
    }

    /// Where the route to (`prefix`, `src`) through `n` is, or would go: the
    /// table is kept sorted by destination then neighbour, as babeld's is, so
    /// that a lookup is a binary search, not a scan of every route (a
    /// 1,000-node network holds ~18,000 of them).
    pub(super) fn route_slot(
        &self,
        prefix: &Prefix,
        src: &Prefix,
        n: NeighbourId,
    ) -> Result<usize, usize> {
        self.routes.binary_search_by(|r| {
            (r.prefix, r.src_prefix, r.neighbour.0).cmp(&(*prefix, *src, n.0))
        })
    }

    /// The routes to one destination: a run of the sorted table.
    pub(super) fn destination(&self, prefix: &Prefix, src: &Prefix) -> core::ops::Range<usize> {
        let key = (*prefix, *src);
        let lo = self
            .routes
            .partition_point(|r| (r.prefix, r.src_prefix) < key);
        let len = self.routes[lo..].partition_point(|r| (r.prefix, r.src_prefix) == key);
        lo..lo + len
    }

    pub(super) fn find_route(
        &self,
        prefix: &Prefix,
        src: &Prefix,
        n: NeighbourId,
    ) -> Option<usize> {
        self.route_slot(prefix, src, n).ok()
    }

    pub(super) fn find_installed(&self, prefix: &Prefix, src: &Prefix) -> Option<usize> {
        self.destination(prefix, src)
            .find(|&r| self.routes[r].installed)
    }

    pub(super) fn smoothed(&mut self, now: Instant, r: usize) -> u16 {
        let hl = self.cfg.smoothing_half_life;
        let rng = &mut self.rng;
        smooth(&mut self.routes[r], now, hl, |d| rng.roughly(d));
        self.routes[r].smoothed_metric
    }

    pub(super) fn route_acceptable(
        &self,
        now: Instant,
        r: usize,
        feasible: bool,
        exclude: Option<NeighbourId>,
    ) -> bool {
        let route = &self.routes[r];
        !route.expired(now)
            && (!feasible || self.route_feasible(now, r))
            && exclude != Some(route.neighbour)
    }

    /// The best route by smoothed metric (babeld's weak ordering).
    pub(super) fn find_best_route(
        &mut self,
        now: Instant,
        prefix: &Prefix,
        src: &Prefix,
        feasible: bool,
        exclude: Option<NeighbourId>,
    ) -> Option<usize> {
        let mut best: Option<(usize, u16)> = None;
        for r in self.destination(prefix, src) {
            if !self.route_acceptable(now, r, feasible, exclude) {
                continue;
            }
            let sm = self.smoothed(now, r);
            if best.is_none_or(|(_, b)| sm < b) {
                best = Some((r, sm));
            }
        }
        best.map(|(r, _)| r)
    }

    pub(super) fn emit(&mut self, e: RouteEvent) {
        if self.events.len() >= self.cfg.limits.events {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(e);
    }

    pub(super) fn install_route(&mut self, r: usize) {
        if self.routes[r].installed {
            return;
        }
        self.routes[r].installed = true;
        let info = self.route_info(&self.routes[r]);
        self.emit(RouteEvent::Installed(info));
    }

    pub(super) fn uninstall_route(&mut self, r: usize) {
        if !self.routes[r].installed {
            return;
        }
        self.routes[r].installed = false;
        let (prefix, src_prefix) = (self.routes[r].prefix, self.routes[r].src_prefix);
        self.emit(RouteEvent::Removed { prefix, src_prefix });
    }

    pub(super) fn switch_routes(&mut self, old: Option<usize>, new: usize) {
        match old {
            None => self.install_route(new),
            Some(o) if self.routes[o].installed => {
                self.routes[o].installed = false;
                self.routes[new].installed = true;
                let info = self.route_info(&self.routes[new]);
                self.emit(RouteEvent::Changed(info));
            }
            Some(_) => {}
        }
    }

    pub(super) fn change_route_metric(
        &mut self,
        now: Instant,
        r: usize,
        refmetric: u16,
        cost: u16,
    ) {
        let old = self.routes[r].metric();
        // Account the time elapsed at the old metric first.
        self.smoothed(now, r);
        let route = &mut self.routes[r];
        route.refmetric = refmetric;
        route.cost = cost;
        if self.cfg.smoothing_half_life == 0 {
            route.smoothed_metric = route.metric();
            route.smoothed_time = now.as_secs();
        }
        if self.routes[r].installed && self.routes[r].metric() != old {
            let info = self.route_info(&self.routes[r]);
            self.emit(RouteEvent::Changed(info));
        }
    }

    /// Keeps the route but unreachable, so no loop forms while it is retracted
    /// ([RFC 8966 §3.5.5]).
    pub(super) fn retract_route(&mut self, now: Instant, r: usize) {
        self.change_route_metric(now, r, INFINITY, INFINITY);
    }

    pub(super) fn flush_route(&mut self, now: Instant, r: usize) {
        let oldmetric = self.routes[r].metric();
        let lost = self.routes[r].installed;
        let (id, prefix, src) = (
            self.routes[r].router_id,
            self.routes[r].prefix,
            self.routes[r].src_prefix,
        );
        self.uninstall_route(r);
        let gone = self.routes.remove(r);
        if let Some(slot) = self.neighbours[gone.neighbour.0].as_mut() {
            slot.routes -= 1;
        }
        if lost {
            self.route_lost(now, id, prefix, src, oldmetric);
        }
    }

    pub(super) fn update_route_metric(&mut self, now: Instant, r: usize) {
        let oldmetric = self.routes[r].metric();
        let old_sm = self.smoothed(now, r);
        let id = self.routes[r].router_id;
        if self.routes[r].expired(now) {
            if self.routes[r].refmetric < INFINITY {
                let src_seqno = self
                    .find_source(id, &self.routes[r].prefix, &self.routes[r].src_prefix)
                    .map(|s| self.sources[s].seqno)
                    .unwrap_or(self.routes[r].seqno);
                self.routes[r].seqno = src_seqno.plus(1);
                self.retract_route(now, r);
                if oldmetric < INFINITY {
                    self.route_changed(now, r, id, oldmetric);
                }
            }
        } else {
            let cost = self.neighbour_cost(now, self.routes[r].neighbour);
            let refmetric = self.routes[r].refmetric;
            self.change_route_metric(now, r, refmetric, cost);
            if self.routes[r].metric() != oldmetric || self.smoothed(now, r) != old_sm {
                self.route_changed(now, r, id, oldmetric);
            }
        }
    }

    /// babeld `consider_route`: installs a feasible route if it is better by the strong
    /// ordering (metric and smoothed metric both), which gives hysteresis.
    pub(super) fn consider_route(&mut self, now: Instant, r: usize) {
        if self.routes[r].installed || !self.route_feasible(now, r) {
            return;
        }
        let (prefix, src) = (self.routes[r].prefix, self.routes[r].src_prefix);
        if self.find_xroute(&prefix, &src).is_some() {
            return;
        }
        let installed = self.find_installed(&prefix, &src);
        let install = match installed {
            None => true,
            Some(i) => {
                if self.routes[r].metric() == INFINITY {
                    false
                } else if self.routes[i].metric() == INFINITY {
                    true
                } else {
                    let (im, rm) = (self.routes[i].metric(), self.routes[r].metric());
                    im >= rm && self.smoothed(now, i) > self.smoothed(now, r)
                }
            }
        };
        if !install {
            return;
        }
        self.switch_routes(installed, r);
        match installed {
            Some(i) if self.routes[r].installed => {
                let (oid, om) = (self.routes[i].router_id, self.routes[i].metric());
                self.send_triggered_update(now, r, oid, om);
            }
            _ => self.send_update(now, None, true, prefix, src),
        }
    }

    pub(super) fn route_changed(
        &mut self,
        now: Instant,
        r: usize,
        oldsrc: RouterId,
        oldmetric: u16,
    ) {
        if self.routes[r].installed {
            let (p, s) = (self.routes[r].prefix, self.routes[r].src_prefix);
            if let Some(b) = self.find_best_route(now, &p, &s, true, None) {
                if self.routes[b].metric() < self.routes[r].metric() {
                    self.consider_route(now, b);
                }
            }
        }
        if self.routes[r].installed {
            self.send_triggered_update(now, r, oldsrc, oldmetric);
        } else {
            self.consider_route(now, r);
        }
    }

    /// The installed route to a destination is gone: switch, or retract and ask for a
    /// new seqno ([RFC 8966 §3.8.2.1]).
    pub(super) fn route_lost(
        &mut self,
        now: Instant,
        id: RouterId,
        prefix: Prefix,
        src: Prefix,
        oldmetric: u16,
    ) {
        if let Some(r) = self.find_best_route(now, &prefix, &src, true, None) {
            self.consider_route(now, r);
        } else if oldmetric < INFINITY {
            // Avoid a black hole.
            self.send_update_resend(now, prefix, src);
            if oldmetric <= INFINITY / 2 {
                let seqno = self
                    .find_source(id, &prefix, &src)
                    .map(|s| {
                        let s = &self.sources[s];
                        if s.metric == INFINITY {
                            s.seqno
                        } else {
                            s.seqno.plus(1)
                        }
                    })
                    .unwrap_or(SeqNo(0));
                self.send_request_resend(now, prefix, src, seqno, id);
            }
        }
    }

    pub(super) fn send_triggered_update(
        &mut self,
        now: Instant,
        r: usize,
        oldsrc: RouterId,
        oldmetric: u16,
    ) {
        let route = &self.routes[r];
        if !route.installed {
            return;
        }
        let newmetric = route.metric();
        let (prefix, src, seqno, id) =
            (route.prefix, route.src_prefix, route.seqno, route.router_id);
        let diff = newmetric.abs_diff(oldmetric);
        let urgent = if id != oldsrc || (oldmetric < INFINITY && newmetric == INFINITY) {
            // Source switches may loop transiently; retractions may black-hole.
            2
        } else if (newmetric > oldmetric && oldmetric < 6 * 256 && diff >= 512)
            || self.unsatisfied_request(now, &prefix, &src, seqno, id)
        {
            // Getting significantly worse, or someone asked for it.
            1
        } else if oldmetric == INFINITY && newmetric < INFINITY {
            0
        } else if newmetric < oldmetric && diff < 1024 {
            // Getting better a little may be a fluctuation: not worth a feasibility cost.
            return;
        } else if diff < 384 {
            return;
        } else {
            0
        };
        if urgent >= 2 {
            self.send_update_resend(now, prefix, src);
        } else {
            self.send_update(now, None, urgent == 1, prefix, src);
        }
        if oldmetric < INFINITY && newmetric as u32 >= oldmetric as u32 + 288 {
            for l in self.link_ids().collect::<Vec<_>>() {
                self.queue_link(now, l, Out::RouteRequest(Some((prefix, src))), 10);
            }
        }
    }

    pub(super) fn retract_neighbour_routes(&mut self, now: Instant, n: NeighbourId) {
        for r in 0..self.routes.len() {
            if self.routes[r].neighbour == n && self.routes[r].refmetric != INFINITY {
                let oldmetric = self.routes[r].metric();
                let id = self.routes[r].router_id;
                self.retract_route(now, r);
                if oldmetric != INFINITY {
                    self.route_changed(now, r, id, oldmetric);
                }
            }
        }
    }

    /// Whether a tunnel peer may originate this destination ([issue 5]: only the prefix
    /// of its certificate, or a source-specific default route for the network that
    /// prefix lies in, as a re6st gateway announces).
    pub(super) fn origin_allowed(link: &LinkConfig, prefix: &Prefix, src: &Prefix) -> bool {
        link.peer_prefix
            .as_ref()
            .is_none_or(|pp| Self::may_originate(pp, prefix, src))
    }

    /// The node of `pp` may originate `pp`, and `::/0 from` a prefix holding
    /// `pp` (a gateway's route for its network).
    fn may_originate(pp: &Prefix, prefix: &Prefix, src: &Prefix) -> bool {
        prefix == pp || (prefix.is_default() && !src.is_default() && src.contains(pp))
    }

    /// Whether a destination may be learnt over a tunnel, whoever announces it
    /// ([issue 20]): inside the network (or `::/0 from` inside it, never a plain
    /// default), not inside our own prefix, and not more specific than a tunnel
    /// peer's certified prefix (which would take that peer's traffic).
    pub(super) fn tunnel_route_allowed(&self, prefix: &Prefix, src: &Prefix) -> bool {
        if prefix.is_default() {
            return !src.is_default() && self.cfg.network.is_none_or(|net| net.contains(src));
        }
        if let Some(net) = &self.cfg.network {
            if !net.contains(prefix) || !(src.is_default() || net.contains(src)) {
                return false;
            }
        }
        let inside = |own: &Prefix| !own.is_default() && own.contains(prefix);
        let more_specific = |pp: &Prefix| pp.contains(prefix) && prefix.len() > pp.len();
        !self.xroutes.iter().any(|x| inside(&x.prefix))
            && !self
                .links
                .iter()
                .flatten()
                .filter_map(|l| l.cfg.peer_prefix.as_ref())
                .any(more_specific)
    }

    /// babeld `update_route`: an Update arrived from neighbour `n`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn update_route(
        &mut self,
        now: Instant,
        n: NeighbourId,
        id: Option<RouterId>,
        prefix: Prefix,
        src: Prefix,
        seqno: SeqNo,
        refmetric: u16,
        interval: u16,
        next_hop: Ipv6Addr,
    ) {
        match id {
            None if refmetric < INFINITY => return,
            Some(id) if id == self.cfg.router_id => return,
            _ => {}
        }
        if martian(&prefix) || martian(&src) || prefix.is_v4() != src.is_v4() {
            self.stats.martians += 1;
            return;
        }
        let link = self.nb(n).link;
        if self.link(link).cfg.kind == LinkKind::Tunnel && !self.tunnel_route_allowed(&prefix, &src)
        {
            self.stats.origins_rejected += 1;
            log::debug!(
                "babel: ignoring {prefix} from {src} from tunnel neighbour {}",
                self.nb(n).address
            );
            return;
        }
        let lan_origin_refused = refmetric == 0
            && self.link(link).origins.as_ref().is_some_and(|list| {
                let address = self.nb(n).address;
                !list
                    .iter()
                    .any(|(a, pp)| *a == address && Self::may_originate(pp, &prefix, &src))
            });
        if lan_origin_refused {
            self.stats.origins_rejected += 1;
            log::warn!(
                "babel: ignoring {prefix} from {src} originated by LAN neighbour {}, not its proven prefix",
                self.nb(n).address
            );
            return;
        }
        if refmetric == 0 && !Self::origin_allowed(&self.link(link).cfg, &prefix, &src) {
            self.stats.origins_rejected += 1;
            log::warn!(
                "babel: ignoring {prefix} from {src} originated by {} over a tunnel for {:?}",
                self.nb(n).address,
                self.link(link).cfg.peer_prefix
            );
            return;
        }
        let hold = hold_time(interval);
        let existing = self.find_route(&prefix, &src, n);
        if refmetric == INFINITY && existing.is_none() {
            return;
        }
        let id = match (id, existing) {
            (Some(id), _) => id,
            (None, Some(r)) => self.routes[r].router_id,
            (None, None) => return,
        };
        if existing.is_none()
            && self.routes.len() >= self.cfg.limits.routes
            && !self.make_room(now, n, &prefix, &src)
        {
            return;
        }
        let Some(s) = self.find_or_create_source(now, id, &prefix, &src, seqno) else {
            return;
        };
        let feasible = self.sources[s].feasible(now, seqno, refmetric);
        let cost = self.neighbour_cost(now, n);
        let metric = (refmetric as u32 + cost as u32).min(INFINITY as u32) as u16;
        if let Some(r) = existing {
            let oldinstalled = self.routes[r].installed;
            let oldsrc = self.routes[r].router_id;
            let oldmetric = self.routes[r].metric();
            let mut lost = false;
            // A successor switching sources must be followed even when unfeasible, to
            // break loops quickly; an unfeasible update from the same source is ignored
            // by not selecting it.
            if !feasible && oldinstalled && id != oldsrc {
                self.uninstall_route(r);
                lost = true;
            }
            let route = &mut self.routes[r];
            route.router_id = id;
            if refmetric < INFINITY {
                route.time = now;
            }
            route.seqno = seqno;
            route.hold_time = hold;
            self.change_route_metric(now, r, refmetric, cost);
            self.route_changed(now, r, oldsrc, oldmetric);
            if !lost {
                lost = oldinstalled && self.find_installed(&prefix, &src).is_none();
            }
            if lost {
                self.route_lost(now, oldsrc, prefix, src, oldmetric);
            } else if !feasible {
                let force = self
                    .find_route(&prefix, &src, n)
                    .is_some_and(|r| self.routes[r].old(now));
                self.send_unfeasible_request(now, n, force, seqno, metric, id, prefix, src);
            }
        } else {
            if !feasible {
                self.send_unfeasible_request(now, n, false, seqno, metric, id, prefix, src);
            }
            if self.routes.len() >= self.cfg.limits.routes {
                self.refused_full(now, "route");
                return;
            }
            let Err(r) = self.route_slot(&prefix, &src, n) else {
                return; // not `existing`, so not there
            };
            self.routes.insert(
                r,
                Route {
                    prefix,
                    src_prefix: src,
                    router_id: id,
                    neighbour: n,
                    next_hop,
                    seqno,
                    refmetric,
                    cost,
                    time: now,
                    hold_time: hold,
                    // New routes start pessimistic so that they do not win by accident.
                    smoothed_metric: metric.max(INFINITY / 2),
                    smoothed_time: now.as_secs(),
                    installed: false,
                },
            );
            if let Some(slot) = self.neighbours[n.0].as_mut() {
                slot.routes += 1;
            }
            self.consider_route(now, r);
        }
    }

    /// An unfeasible update: if it is good, ask its origin for a new seqno.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_unfeasible_request(
        &mut self,
        now: Instant,
        n: NeighbourId,
        force: bool,
        seqno: SeqNo,
        metric: u16,
        id: RouterId,
        prefix: Prefix,
        src: Prefix,
    ) {
        let Some(s) = self.find_source(id, &prefix, &src) else {
            return;
        };
        let (sseq, smetric) = (self.sources[s].seqno, self.sources[s].metric);
        if sseq.minus(seqno) > 100 && sseq.minus(seqno) < 0x8000 {
            // A source that lost its seqno: let it time out.
            return;
        }
        let installed = self.find_installed(&prefix, &src);
        if force || installed.is_none_or(|i| self.routes[i].metric() as u32 >= metric as u32 + 512)
        {
            let want = if smetric == INFINITY {
                sseq
            } else {
                sseq.plus(1)
            };
            self.queue_neighbour(
                now,
                n,
                Out::SeqnoRequest {
                    prefix,
                    src,
                    seqno: want,
                    hop_count: HOP_COUNT,
                    router_id: id,
                },
                10,
            );
        }
    }

    pub(super) fn expire_routes(&mut self, now: Instant) {
        let mut r = 0;
        while r < self.routes.len() {
            if self.routes[r].time > now || self.routes[r].old(now) {
                self.flush_route(now, r);
                continue;
            }
            self.update_route_metric(now, r);
            r += 1;
        }
        self.ask_refused_again(now);
    }
}
