//! When the running node asks the registry to renew its certificate (and
//! the CA's, with `getCa`, as re6st does): from
//! `RENEW_PERIOD` (30 days) before it expires, as re6st does, then again
//! after each failure or unchanged answer with a growing wait that stays
//! under a day, so a router that cannot reach its registry for a while
//! still renews once it can. The window is on the wall clock (certificate
//! dates), the waits on the monotonic clock.

use registry_client::RENEW_PERIOD;

use crate::time::Instant;

/// First wait after an attempt, doubled each time up to [`MAX_WAIT_MS`].
const FIRST_WAIT_MS: u64 = 5 * 60 * 1000;
const MAX_WAIT_MS: u64 = 24 * 3600 * 1000;

#[derive(Clone, Debug)]
pub struct Renewal {
    not_after: u64,
    next_try: Option<Instant>,
    wait_ms: u64,
    last_error: Option<String>,
    /// Asked for now, whatever the date.
    forced: bool,
}

impl Renewal {
    /// For a certificate valid until `not_after` (Unix seconds).
    pub fn new(not_after: u64) -> Self {
        Renewal {
            not_after,
            next_try: None,
            wait_ms: FIRST_WAIT_MS,
            last_error: None,
            forced: false,
        }
    }

    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    /// Unix time from which the node asks.
    pub fn renew_from(&self) -> u64 {
        self.not_after.saturating_sub(RENEW_PERIOD)
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Whether to ask now (`t` monotonic, `unix` the wall clock); if so, the
    /// next attempt is scheduled as if this one will not bring a new
    /// certificate.
    pub fn poll(&mut self, t: Instant, unix: u64) -> bool {
        if std::mem::take(&mut self.forced) {
            return true;
        }
        if unix < self.renew_from() || self.next_try.is_some_and(|n| t < n) {
            return false;
        }
        self.next_try = Some(t.add_millis(self.wait_ms));
        self.wait_ms = (self.wait_ms * 2).min(MAX_WAIT_MS);
        true
    }

    /// The registry answered with a certificate valid until `not_after`: a
    /// later date starts over (the next window is a year away), the same
    /// one keeps the waits growing (the registry did not renew yet).
    pub fn answered(&mut self, not_after: u64) {
        self.last_error = None;
        if not_after > self.not_after {
            *self = Renewal::new(not_after);
        }
    }

    /// Ask at the next poll, once, whatever the date.
    pub fn force(&mut self) {
        self.forced = true;
    }

    pub fn failed(&mut self, e: String) {
        self.last_error = Some(e);
    }

    pub fn status(&self) -> super::status::CertificateStatus {
        super::status::CertificateStatus {
            not_after: self.not_after,
            renew_from: self.renew_from(),
            renewal_error: self.last_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn t(s: u64) -> Instant {
        Instant::from_secs(1000 + s)
    }

    #[test]
    fn asks_from_thirty_days_before_expiry_with_waits_under_a_day() {
        let expiry = 400 * DAY;
        let mut r = Renewal::new(expiry);
        assert!(!r.poll(t(0), expiry - 31 * DAY), "too early");
        assert!(r.poll(t(0), expiry - 30 * DAY));
        assert!(!r.poll(t(60), expiry - 30 * DAY), "asked again at once");
        // Attempts in a row, on the monotonic clock: 5 min, 10, 20, ... 24 h.
        let mut at = 0;
        let mut asked = vec![0];
        for s in (0..8 * DAY).step_by(60) {
            if r.poll(t(s), expiry - 30 * DAY + s) {
                asked.push(s);
                at = s;
            }
        }
        let gaps: Vec<u64> = asked.windows(2).map(|w| w[1] - w[0]).collect();
        assert_eq!(&gaps[..4], &[300, 600, 1200, 2400]);
        assert!(gaps.iter().all(|&g| g <= DAY), "{gaps:?}");
        assert!(8 * DAY - at <= DAY + 60);
        r.failed("registry: timed out".into());
        assert_eq!(r.last_error(), Some("registry: timed out"));
        // The same certificate again: still waiting to be renewed.
        r.answered(expiry);
        assert!(r.last_error().is_none());
        assert!(!r.poll(t(8 * DAY), expiry - 22 * DAY));
        // A renewed one: the next window is a year away.
        r.answered(expiry + 365 * DAY);
        assert_eq!(r.renew_from(), expiry + 335 * DAY);
        assert!(!r.poll(t(9 * DAY), expiry - 21 * DAY));
        assert!(r.poll(t(9 * DAY), expiry + 335 * DAY));
    }

    /// A node that was off through its whole window, or whose certificate
    /// expired, asks at once.
    #[test]
    fn an_expired_certificate_is_renewed_at_once() {
        let mut r = Renewal::new(100 * DAY);
        assert!(r.poll(t(0), 200 * DAY));
    }
}
