//! Network config version propagation, as re6st does it (reference §3.3
//! code 0, §3.6): every node tells its tunnel peers the network version it
//! knows; a node that hears a newer one, signed by the CA, tells its own
//! peers and fetches the network config from the registry, whose answer is
//! what is applied (new CRL, Babel MAC keys, parameters).
//!
//! Sans-IO: the driver feeds what peers announce and what the registry
//! answers, asks when to fetch, and does the sending and fetching. The
//! signature check is the driver's too (a closure), so tests need no CA.
//!
//! Limits, so that a buggy or lying peer cannot make the node hammer the
//! registry or burn CPU on RSA:
//! - only a number above the one we know is checked at all; after a bad
//!   signature, announcements above ours are ignored for [`REFUSED_HOLD_MS`];
//! - at most one fetch in flight, the first [`FETCH_DELAY_MS`] after the
//!   news (re6st's 1 s), and fetches started here at least
//!   [`MIN_INTERVAL_MS`] apart, that gap doubling (up to
//!   [`MAX_INTERVAL_MS`]) while the registry fails or answers with an
//!   older version than the one announced.

use registry_client::netconfig::Version;

use crate::time::Instant;

/// Delay between hearing of a newer version and fetching it.
pub const FETCH_DELAY_MS: u64 = 1_000;
/// Least time between two fetches started here.
pub const MIN_INTERVAL_MS: u64 = 60_000;
/// Longest gap between retries (re6st's NETCONF_CHECK).
pub const MAX_INTERVAL_MS: u64 = 3_600_000;
/// After a bad signature, newer announcements are ignored this long.
pub const REFUSED_HOLD_MS: u64 = 1_000;

/// What an announcement from a peer means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heard {
    /// Older than the version we know: tell that peer ours.
    Older,
    /// The one we know.
    Same,
    /// Newer and signed: it is now the version we announce (to every peer,
    /// [`Versions::take_announce`]), and a fetch is scheduled if the node
    /// can fetch.
    Newer,
    /// Newer but the signature is wrong (or checks are on hold): ignored.
    Refused,
}

#[derive(Debug)]
pub struct Versions {
    /// Whether there is a registry to fetch from.
    can_fetch: bool,
    /// The version of the config in use.
    applied: Option<u64>,
    /// The newest signed version heard of or applied: what we announce.
    known: Option<Version>,
    /// When to fetch, if behind.
    due: Option<Instant>,
    in_flight: bool,
    /// When the last fetch started here began.
    last_fetch: Option<Instant>,
    /// Fetches in a row that left us behind.
    failures: u32,
    /// When a signature was last refused.
    refused: Option<Instant>,
    /// `known` changed since [`Versions::take_announce`] last said so.
    announce: bool,
}

impl Versions {
    /// `applied`: the version of the config the node starts with.
    pub fn new(applied: Option<&Version>, can_fetch: bool) -> Self {
        Versions {
            can_fetch,
            applied: applied.map(|v| v.number),
            known: applied.cloned(),
            due: None,
            in_flight: false,
            last_fetch: None,
            failures: 0,
            refused: None,
            announce: false,
        }
    }

    /// The version to tell peers.
    pub fn known(&self) -> Option<&Version> {
        self.known.as_ref()
    }

    fn known_number(&self) -> Option<u64> {
        self.known.as_ref().map(|v| v.number)
    }

    /// Whether the version to announce changed since the last call: then
    /// tell every tunnel peer.
    pub fn take_announce(&mut self) -> bool {
        std::mem::take(&mut self.announce)
    }

    /// Whether a newer version than the applied one is known.
    pub fn behind(&self) -> bool {
        match (self.known_number(), self.applied) {
            (Some(k), Some(a)) => k > a,
            (k, a) => k.is_some() && a.is_none(),
        }
    }

    /// A peer announces `v`; `verify` checks its CA signature (called only
    /// for a number above ours).
    pub fn heard(
        &mut self,
        t: Instant,
        v: &Version,
        verify: impl FnOnce(&Version) -> bool,
    ) -> Heard {
        match self.known_number() {
            Some(n) if v.number < n => return Heard::Older,
            Some(n) if v.number == n => return Heard::Same,
            _ => {}
        }
        if self
            .refused
            .is_some_and(|r| t.millis_since(r) < REFUSED_HOLD_MS)
        {
            return Heard::Refused;
        }
        if !verify(v) {
            self.refused = Some(t);
            return Heard::Refused;
        }
        self.known = Some(v.clone());
        self.announce = true;
        self.failures = 0;
        self.schedule(t.add_millis(FETCH_DELAY_MS));
        Heard::Newer
    }

    /// Fetch at `at`, or later if the rate limit says so; a fetch already
    /// due earlier stays so (news coming every second must not put it off).
    fn schedule(&mut self, at: Instant) {
        if !self.can_fetch {
            return;
        }
        let gap = (MIN_INTERVAL_MS << self.failures.min(6)).min(MAX_INTERVAL_MS);
        let earliest = self.last_fetch.map_or(at, |l| l.add_millis(gap));
        let at = at.max(earliest);
        self.due = Some(self.due.map_or(at, |d| d.min(at)));
    }

    /// When the next fetch is due (none while one is in flight).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.due.filter(|_| !self.in_flight)
    }

    /// Whether to fetch now. Then the driver asks the registry and calls
    /// [`Versions::fetch_started`].
    pub fn fetch_due(&self, t: Instant) -> bool {
        self.poll_timeout().is_some_and(|d| d <= t)
    }

    pub fn fetch_started(&mut self, t: Instant) {
        self.in_flight = true;
        self.due = None;
        self.last_fetch = Some(t);
    }

    /// The registry answered a network config request (this one's, or the
    /// periodic re-check): the verified version applied, or None if the
    /// request failed. Returns whether the version to announce changed (as
    /// [`Versions::take_announce`] will say).
    pub fn fetched(&mut self, t: Instant, got: Option<&Version>) -> bool {
        let ours = std::mem::take(&mut self.in_flight);
        let mut changed = false;
        if let Some(v) = got {
            self.applied = Some(v.number);
            if self.known_number().is_none_or(|k| v.number > k) {
                self.known = Some(v.clone());
                self.announce = true;
                changed = true;
            }
        }
        if !self.behind() {
            self.due = None;
            self.failures = 0;
        } else if ours {
            // Failed, or the registry is behind what was announced: retry,
            // backing off.
            self.failures = self.failures.saturating_add(1);
            self.schedule(t);
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version blob with a fake signature: `sig` says whether the test's
    /// verifier accepts it.
    fn v(n: u64, sig: &[u8]) -> Version {
        let mut raw = registry_client::packint::pack(n).unwrap();
        raw.extend_from_slice(sig);
        Version::parse(&raw).unwrap()
    }
    fn good(n: u64) -> Version {
        v(n, b"good")
    }
    fn check(v: &Version) -> bool {
        v.raw.ends_with(b"good")
    }
    fn s(secs: u64) -> Instant {
        Instant::from_secs(secs)
    }

    /// Run until `end`, fetching whenever due; returns the fetch times.
    /// Every fetch fails.
    fn fetches_until(w: &mut Versions, from: u64, end: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut t = s(from);
        while t < s(end) {
            if w.fetch_due(t) {
                w.fetch_started(t);
                out.push(t.millis_since(Instant::ZERO) / 1000);
                w.fetched(t.add_millis(500), None);
            }
            t = t.add_millis(1000);
        }
        out
    }

    #[test]
    fn newer_signed_version_is_fetched_a_second_later() {
        let mut w = Versions::new(Some(&good(3)), true);
        assert_eq!(w.known().map(|v| v.number), Some(3));
        assert_eq!(w.poll_timeout(), None);
        assert_eq!(w.heard(s(10), &good(5), check), Heard::Newer);
        // Announced on at once, fetched 1 s later.
        assert_eq!(w.known(), Some(&good(5)));
        assert!(w.take_announce());
        assert!(!w.take_announce());
        assert!(w.behind());
        assert_eq!(w.poll_timeout(), Some(s(11)));
        assert!(!w.fetch_due(s(10)));
        assert!(w.fetch_due(s(11)));
        w.fetch_started(s(11));
        assert_eq!(w.poll_timeout(), None, "one fetch in flight");
        // Other peers tell the same: nothing more.
        assert_eq!(w.heard(s(11), &good(5), check), Heard::Same);
        assert_eq!(w.poll_timeout(), None);
        // The registry's answer is applied; it was announced already.
        assert!(!w.fetched(s(12), Some(&good(5))));
        assert!(!w.take_announce());
        assert!(!w.behind());
        assert_eq!(w.poll_timeout(), None);
    }

    #[test]
    fn older_and_same_versions_fetch_nothing() {
        let mut w = Versions::new(Some(&good(7)), true);
        let mut calls = 0;
        let mut verify = |_: &Version| {
            calls += 1;
            true
        };
        assert_eq!(w.heard(s(1), &good(6), &mut verify), Heard::Older);
        assert_eq!(w.heard(s(1), &good(7), &mut verify), Heard::Same);
        assert_eq!(calls, 0, "no RSA for what is not newer");
        assert_eq!(w.poll_timeout(), None);
        assert!(!w.take_announce());
        assert_eq!(w.known(), Some(&good(7)));
    }

    #[test]
    fn unsigned_versions_are_refused_and_checks_pause() {
        let mut w = Versions::new(Some(&good(1)), true);
        assert_eq!(w.heard(s(5), &v(9, b"forged"), check), Heard::Refused);
        assert_eq!(w.known(), Some(&good(1)));
        assert!(!w.take_announce());
        assert_eq!(w.poll_timeout(), None);
        // Within the hold, even a good one is not checked.
        let mut called = false;
        let r = w.heard(s(5).add_millis(999), &good(2), |_| {
            called = true;
            true
        });
        assert_eq!((r, called), (Heard::Refused, false));
        // After it, it is.
        assert_eq!(w.heard(s(6), &good(2), check), Heard::Newer);
        assert_eq!(w.poll_timeout(), Some(s(7)));
    }

    #[test]
    fn failures_back_off_from_a_minute_to_an_hour() {
        let mut w = Versions::new(Some(&good(1)), true);
        w.heard(s(0), &good(2), check);
        let times = fetches_until(&mut w, 0, 6 * 3600);
        let gaps: Vec<u64> = times.windows(2).map(|p| p[1] - p[0]).collect();
        assert_eq!(times[0], 1);
        assert_eq!(&gaps[..7], &[120, 240, 480, 960, 1920, 3600, 3600]);
        // Success ends the retries.
        let t = s(6 * 3600 + 10);
        assert!(!w.fetched(t, Some(&good(2))));
        assert_eq!(w.poll_timeout(), None);
    }

    #[test]
    fn registry_behind_the_announcement_is_retried() {
        let mut w = Versions::new(Some(&good(1)), true);
        w.heard(s(0), &good(3), check);
        assert!(w.fetch_due(s(1)));
        w.fetch_started(s(1));
        // The registry still serves 2 (say a mirror lags): applied, but we
        // keep announcing 3 and try again later.
        assert!(!w.fetched(s(2), Some(&good(2))));
        assert_eq!(w.known(), Some(&good(3)));
        assert!(w.behind());
        assert_eq!(w.poll_timeout(), Some(s(1 + 120)));
    }

    #[test]
    fn a_flood_of_new_versions_fetches_once_a_minute() {
        // Even were every number signed, one fetch per minute at most.
        let mut w = Versions::new(Some(&good(1)), true);
        let mut fetches = Vec::new();
        for sec in 0..600u64 {
            let t = s(sec);
            w.heard(t, &good(sec + 2), check);
            if w.fetch_due(t) {
                w.fetch_started(t);
                fetches.push(sec);
                // Each answer is already outdated by the next announcement.
                w.fetched(t, Some(&good(sec + 2)));
            }
        }
        assert_eq!(fetches.len(), 10, "{fetches:?}");
        assert!(fetches.windows(2).all(|p| p[1] - p[0] >= 60));
    }

    #[test]
    fn newer_version_during_a_fetch_waits_for_the_interval() {
        let mut w = Versions::new(Some(&good(1)), true);
        w.heard(s(0), &good(2), check);
        w.fetch_started(s(1));
        assert_eq!(w.heard(s(2), &good(3), check), Heard::Newer);
        assert_eq!(w.poll_timeout(), None, "in flight");
        // The answer brings 2: 3 is fetched a minute after the first fetch.
        w.fetched(s(3), Some(&good(2)));
        assert!(w.fetch_due(s(61)));
        assert!(!w.fetch_due(s(60)));
        // Had it brought 3, nothing more.
        let mut w = Versions::new(Some(&good(1)), true);
        w.heard(s(0), &good(2), check);
        w.fetch_started(s(1));
        w.heard(s(2), &good(3), check);
        w.fetched(s(3), Some(&good(3)));
        assert_eq!(w.poll_timeout(), None);
    }

    #[test]
    fn other_fetches_count_too() {
        let mut w = Versions::new(Some(&good(1)), true);
        w.heard(s(0), &good(2), check);
        // The hourly re-check brings the new config before our fetch.
        assert!(!w.fetched(s(0), Some(&good(2))));
        assert_eq!(w.poll_timeout(), None);
        // A failed job that was not ours changes nothing.
        let mut w = Versions::new(Some(&good(1)), true);
        w.heard(s(0), &good(2), check);
        w.fetched(s(0), None);
        assert_eq!(w.poll_timeout(), Some(s(1)));
    }

    #[test]
    fn periodic_fetch_with_a_newer_version_is_announced() {
        let mut w = Versions::new(Some(&good(1)), true);
        assert!(w.fetched(s(3600), Some(&good(4))));
        assert!(w.take_announce());
        assert_eq!(w.known(), Some(&good(4)));
        assert!(!w.fetched(s(7200), Some(&good(4))));
        assert_eq!(w.poll_timeout(), None);
    }

    #[test]
    fn without_config_or_registry() {
        // No config yet: any signed version is newer.
        let mut w = Versions::new(None, true);
        assert_eq!(w.known(), None);
        assert!(!w.behind());
        assert_eq!(w.heard(s(0), &good(0), check), Heard::Newer);
        assert!(w.behind());
        assert!(w.fetch_due(s(1)));
        // No registry: passed on to peers, never fetched.
        let mut w = Versions::new(Some(&good(1)), false);
        assert_eq!(w.heard(s(0), &good(2), check), Heard::Newer);
        assert_eq!(w.known(), Some(&good(2)));
        assert_eq!(w.poll_timeout(), None);
    }
}
