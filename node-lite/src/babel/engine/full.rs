//! What happens when the route or source table is full ([issue 20] item 3).
//!
//! Tables are bounded, so a member announcing thousands of prefixes could otherwise
//! keep every later route out until its own expire (minutes). Instead, when the route
//! table is full, a route to a destination we have no route to takes the place of an
//! alternative not in use (reachability before redundancy); otherwise a newcomer takes
//! the place of a route held by the neighbour that holds the most, as long as that
//! neighbour holds more than the newcomer's (a fair share, so a flooder only ever
//! displaces itself); a tunnel peer's own certified prefix always gets in. Neighbours whose updates were refused are asked for a full
//! dump as soon as room frees, so recovery takes one round trip, not an update
//! interval.

use std::collections::HashSet;

use super::{Engine, NeighbourId, Out, Prefix, RouterId};
use crate::time::Instant;

impl Engine {
    /// A tunnel peer's own prefix (its certificate's), which no flood may push out.
    fn protected(&self, prefix: &Prefix, src: &Prefix) -> bool {
        src.is_default()
            && self
                .links
                .iter()
                .flatten()
                .any(|l| l.cfg.peer_prefix.as_ref() == Some(prefix))
    }

    /// The route table is full and neighbour `n` offers a new destination: frees one
    /// slot if fairness allows, else records `n` to be asked again later.
    pub(super) fn make_room(
        &mut self,
        now: Instant,
        n: NeighbourId,
        prefix: &Prefix,
        src: &Prefix,
    ) -> bool {
        let held = |i: usize| self.neighbours[i].as_ref().map_or(0, |s| s.routes);
        let (heaviest, most) = (0..self.neighbours.len())
            .map(|i| (i, held(i)))
            .max_by_key(|&(_, c)| c)
            .unwrap_or((n.0, 0));
        let newcomer = held(n.0);
        // A destination we have no route to goes before a spare route to one
        // we reach: an alternative that is not installed (the heaviest
        // neighbour's first) makes room. Without this a full table of
        // alternatives kept new nodes out: a 1,000-node network with 20
        // neighbours per node had 18 % of its pairs apart after 8 minutes.
        let spare = |i: Option<usize>| {
            self.routes.iter().position(|r| {
                !r.installed
                    && i.is_none_or(|i| r.neighbour.0 == i)
                    && !self.protected(&r.prefix, &r.src_prefix)
            })
        };
        let victim = if self.destination(prefix, src).is_empty() {
            spare(Some(heaviest)).or_else(|| spare(None))
        } else {
            None
        };
        let victim = victim.or_else(|| {
            if self.protected(prefix, src) || most > newcomer + 1 {
                // Of the heaviest neighbour's routes, one not in use if any.
                let candidates = || {
                    self.routes.iter().enumerate().filter(|(_, r)| {
                        r.neighbour.0 == heaviest && !self.protected(&r.prefix, &r.src_prefix)
                    })
                };
                candidates()
                    .find(|(_, r)| !r.installed)
                    .or_else(|| candidates().next_back())
                    .map(|(i, _)| i)
            } else {
                None
            }
        });
        match victim {
            Some(r) => {
                self.flush_route(now, r);
                true
            }
            None => {
                self.refused_full(now, "route");
                if !self.refused.contains(&n) && self.refused.len() < self.cfg.limits.neighbours {
                    self.refused.push(n);
                }
                false
            }
        }
    }

    /// The source table is full: forgets the oldest of the sources no route refers to
    /// (an eighth of them, at least a sixteenth of the table, so that a flood pays for
    /// this scan rarely). That feasibility memory would otherwise last `SOURCE_GC_SECS`.
    pub(super) fn evict_sources(&mut self) -> bool {
        let used: HashSet<(RouterId, Prefix, Prefix)> = self
            .routes
            .iter()
            .map(|r| (r.router_id, r.prefix, r.src_prefix))
            .collect();
        let mut unused: Vec<(Instant, usize)> = self
            .sources
            .iter()
            .enumerate()
            .filter(|(_, s)| !used.contains(&(s.router_id, s.prefix, s.src_prefix)))
            .map(|(i, s)| (s.time, i))
            .collect();
        if unused.is_empty() {
            return false;
        }
        unused.sort_unstable();
        let keep = (unused.len() / 8).max(self.cfg.limits.sources / 16).max(1);
        unused.truncate(keep);
        let mut gone: Vec<usize> = unused.into_iter().map(|(_, i)| i).collect();
        gone.sort_unstable();
        // Removed in place: the table stays sorted.
        for i in gone.into_iter().rev() {
            self.sources.remove(i);
        }
        true
    }

    /// Counts an entry refused because `table` is full, and says so in the log
    /// at most once an hour.
    pub(super) fn refused_full(&mut self, now: Instant, table: &str) {
        self.stats.table_full += 1;
        if self
            .full_warned
            .is_none_or(|t| now.millis_since(t) >= 3_600_000)
        {
            self.full_warned = Some(now);
            log::warn!(
                "babel: {table} table full ({} routes, {} sources; {} entries refused so far)",
                self.routes.len(),
                self.sources.len(),
                self.stats.table_full
            );
        }
    }

    /// Room has freed: neighbours whose routes were refused send them all again.
    pub(super) fn ask_refused_again(&mut self, now: Instant) {
        let limit = self.cfg.limits.routes;
        if self.refused.is_empty() || self.routes.len() + limit / 16 >= limit {
            return;
        }
        for n in std::mem::take(&mut self.refused) {
            if self.neighbours.get(n.0).is_some_and(|s| s.is_some()) {
                self.queue_neighbour(now, n, Out::RouteRequest(None), 10);
            }
        }
    }
}
