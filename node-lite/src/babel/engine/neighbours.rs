//! Neighbours (babeld's `neighbour.c`): the table, link costs with RTT and the
//! multiplier, and the periodic check of Hello and IHU histories.

use super::*;

impl Engine {
    pub(super) fn nb(&self, id: NeighbourId) -> &Neighbour {
        &self.neighbours[id.0].as_ref().expect("live neighbour").n
    }

    pub(super) fn nb_mut(&mut self, id: NeighbourId) -> &mut Neighbour {
        &mut self.neighbours[id.0].as_mut().expect("live neighbour").n
    }

    pub(super) fn nb_out(&mut self, id: NeighbourId) -> &mut OutQueue {
        &mut self.neighbours[id.0].as_mut().expect("live neighbour").out
    }

    pub(super) fn neighbour_ids(&self) -> impl Iterator<Item = NeighbourId> + '_ {
        self.neighbours
            .iter()
            .enumerate()
            .filter(|(_, n)| n.is_some())
            .map(|(i, _)| NeighbourId(i))
    }

    pub(super) fn find_neighbour(&self, link: LinkId, address: Ipv6Addr) -> Option<NeighbourId> {
        self.neighbour_ids().find(|&i| {
            let n = self.nb(i);
            n.link == link && n.address == address
        })
    }

    pub(super) fn find_or_create_neighbour(
        &mut self,
        now: Instant,
        link: LinkId,
        address: Ipv6Addr,
    ) -> Option<NeighbourId> {
        if let Some(n) = self.find_neighbour(link, address) {
            return Some(n);
        }
        let Some(slot) = free_slot(&mut self.neighbours, self.cfg.limits.neighbours) else {
            self.refused_full(now, "neighbour");
            return None;
        };
        self.neighbours[slot] = Some(NeighbourSlot {
            n: Neighbour::new(link, address, now),
            out: OutQueue::default(),
            routes: 0,
        });
        Some(NeighbourId(slot))
    }

    pub(super) fn neighbour_cost(&self, now: Instant, n: NeighbourId) -> u16 {
        let nb = self.nb(n);
        let link = self.link(nb.link);
        if link.suspended {
            return INFINITY;
        }
        nb.cost(&link.cfg, now)
    }

    /// The tunnel under `link` stopped answering (`true`), or answers again:
    /// routes through its neighbours are retracted and others selected at
    /// once, as when babeld sees a link go down, and come back as they were
    /// (no Hellos to wait for). Returns false for an unknown link.
    pub fn set_link_suspended(&mut self, now: Instant, link: LinkId, suspended: bool) -> bool {
        match self.links.get_mut(link.0) {
            Some(Some(l)) if l.suspended != suspended => l.suspended = suspended,
            Some(Some(_)) => return true,
            _ => return false,
        }
        let ids: Vec<NeighbourId> = self
            .neighbour_ids()
            .filter(|&n| self.nb(n).link == link)
            .collect();
        for n in ids {
            self.update_neighbour_metric(now, n, true);
        }
        true
    }

    /// Sets re6st's cost multiplier for a neighbour (256 neutral, 4096 to drain a
    /// tunnel before closing it, 0 to make it unusable). Returns false if unknown.
    pub fn set_cost_multiplier(
        &mut self,
        now: Instant,
        link: LinkId,
        address: Ipv6Addr,
        multiplier: u16,
    ) -> bool {
        let Some(n) = self.find_neighbour(link, address) else {
            return false;
        };
        self.nb_mut(n).cost_multiplier = multiplier;
        self.update_neighbour_metric(now, n, true);
        true
    }

    /// A view of the neighbour table.
    pub fn neighbours(&self, now: Instant) -> impl Iterator<Item = NeighbourInfo> + '_ {
        self.neighbour_ids().map(move |i| {
            let n = self.nb(i);
            let cfg = &self.link(n.link).cfg;
            NeighbourInfo {
                link: n.link,
                address: n.address,
                reach: n.hello.reach,
                txcost: n.txcost,
                rxcost: n.rxcost(cfg, now),
                rtt_us: n.valid_rtt(now).then_some(n.rtt_us),
                cost: n.cost(cfg, now),
                cost_multiplier: n.cost_multiplier,
            }
        })
    }

    pub(super) fn flush_neighbour(&mut self, now: Instant, n: NeighbourId) {
        let mut i = 0;
        while i < self.routes.len() {
            if self.routes[i].neighbour == n {
                self.flush_route(now, i);
            } else {
                i += 1;
            }
        }
        self.neighbours[n.0] = None;
        self.refused.retain(|&r| r != n);
        self.ask_refused_again(now);
    }

    pub(super) fn update_neighbour_metric(&mut self, now: Instant, n: NeighbourId, changed: bool) {
        if !changed {
            return;
        }
        for i in 0..self.routes.len() {
            if i < self.routes.len() && self.routes[i].neighbour == n {
                self.update_route_metric(now, i);
            }
        }
    }

    pub(super) fn schedule_neighbours_check(&mut self, now: Instant, ms: u64) {
        let at = now.add_millis(self.rng.roughly_ms(ms));
        self.check_neighbours_at = self.check_neighbours_at.min(at);
    }

    /// babeld `check_neighbours`: ages Hello histories, drops dead neighbours, forgets
    /// stale IHUs. Returns the next check delay.
    pub(super) fn check_neighbours(&mut self, now: Instant) -> u64 {
        let mut msecs = 50_000u64;
        let ids: Vec<NeighbourId> = self.neighbour_ids().collect();
        for id in ids {
            let nb = self.nb_mut(id);
            let mut changed = nb.hello.check_missed(now);
            changed |= nb.uhello.check_missed(now);
            if nb.hello.reach == 0 || now.millis_since(nb.hello.time) > 300_000 {
                self.flush_neighbour(now, id);
                continue;
            }
            let nb = self.nb_mut(id);
            changed |= nb.reset_txcost(now);
            let (h, u, i) = (nb.hello.interval, nb.uhello.interval, nb.ihu_interval);
            self.update_neighbour_metric(now, id, changed);
            for iv in [h, u, i] {
                if iv > 0 {
                    msecs = msecs.min(iv as u64 * 10);
                }
            }
        }
        msecs
    }
}
