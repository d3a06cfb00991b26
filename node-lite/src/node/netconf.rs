//! When the node fetches the network config again: every hour (re6st's
//! NETCONF_CHECK), at once on SIGHUP, and as soon as the config it holds
//! passes its `valid_until` (registries of protocol 9 and later), which is a
//! wall-clock date. A fetch that failed (the registry unreachable at first
//! boot, say) is tried again a minute later, then twice as late each time up
//! to the hour.

use crate::time::Instant;

/// Network config re-check period (re6st's NETCONF_CHECK).
const CHECK_MS: u64 = 3_600_000;
/// First retry after a failed fetch.
const RETRY_MS: u64 = 60_000;

#[derive(Clone, Debug)]
pub struct Refresh {
    next: Instant,
    valid_until: Option<u64>,
    /// The wait after the next failure.
    retry_ms: u64,
}

impl Refresh {
    /// The first check is at `t` (start: revocations since the node last ran);
    /// `valid_until` is the cached config's.
    pub fn new(t: Instant, valid_until: Option<u64>) -> Self {
        Refresh {
            next: t,
            valid_until,
            retry_ms: RETRY_MS,
        }
    }

    /// Check at `t` (SIGHUP).
    pub fn soon(&mut self, t: Instant) {
        self.next = self.next.min(t);
    }

    /// A config was applied. A `valid_until` already past (the registry's
    /// clock or ours is off) is ignored rather than fetched again and again.
    pub fn applied(&mut self, valid_until: Option<u64>, unix: u64) {
        self.valid_until = valid_until.filter(|&v| v > unix);
        self.retry_ms = RETRY_MS;
    }

    /// The fetch started at `t` failed: try again sooner than the hourly
    /// check, backing off.
    pub fn failed(&mut self, t: Instant) {
        self.next = self.next.min(t.add_millis(self.retry_ms));
        self.retry_ms = (self.retry_ms * 2).min(CHECK_MS);
    }

    /// When the next hourly (or requested) check is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next
    }

    /// Whether to fetch now (`unix` is the wall clock).
    pub fn poll(&mut self, t: Instant, unix: u64) -> bool {
        if self.valid_until.is_some_and(|v| unix >= v) {
            self.valid_until = None;
            self.next = self.next.min(t);
        }
        if t < self.next {
            return false;
        }
        self.next = t.add_millis(CHECK_MS);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hourly_on_request_and_when_the_config_expires() {
        let t0 = Instant::from_secs(1000);
        let unix = 1_800_000_000;
        let mut r = Refresh::new(t0, None);
        assert!(r.poll(t0, unix), "at start");
        assert!(!r.poll(t0.add_millis(60_000), unix));
        assert!(r.poll(t0.add_millis(CHECK_MS), unix), "an hour later");
        let t1 = t0.add_millis(CHECK_MS + 5_000);
        r.soon(t1);
        assert!(r.poll(t1, unix), "SIGHUP");
        // A config valid for 10 more minutes is fetched again when they pass.
        r.applied(Some(unix + 600), unix);
        assert!(!r.poll(t1.add_millis(1000), unix + 599));
        assert!(r.poll(t1.add_millis(2000), unix + 600));
        assert!(!r.poll(t1.add_millis(3000), unix + 601), "once");
        // One already past is not fetched in a loop.
        r.applied(Some(unix), unix + 700);
        assert!(!r.poll(t1.add_millis(4000), unix + 701));
    }

    #[test]
    fn failures_retry_sooner_backing_off() {
        let t0 = Instant::from_secs(1000);
        let unix = 1_800_000_000;
        let mut r = Refresh::new(t0, None);
        let mut t = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            assert!(r.poll(t, unix));
            r.failed(t);
            let next = r.poll_timeout();
            waits.push(next.millis_since(t) / 1000);
            t = next;
        }
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        // A success goes back to hourly checks, and the next failure
        // starts over at a minute.
        assert!(r.poll(t, unix));
        r.applied(None, unix);
        assert_eq!(r.poll_timeout().millis_since(t), CHECK_MS);
        r.failed(t);
        assert_eq!(r.poll_timeout().millis_since(t), RETRY_MS);
    }
}
