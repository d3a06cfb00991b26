//! The node's registry requests and their answers, without any I/O.
//!
//! One worker answers them in order (`driver/registry.rs`). One of each kind
//! asked at a time, and none is lost: a network config check asked for
//! while a bootstrap request is pending is queued at once behind it (the
//! registry takes 3 s to answer "no peer" when no node runs beside it; a
//! revocation may wait that long, but must not be skipped until the next
//! hourly check), and one asked for while another network config request
//! is pending is asked again when it is answered (the pending one may be
//! answered before the change that prompted the new request: a SIGHUP
//! right after a revocation).

use std::net::SocketAddr;

use registry_client::cert::Certificate;
use registry_client::netconfig::NetworkConfig;
use registry_client::Prefix;

use crate::time::Instant;

/// What a registry job brings back.
pub enum RegistryResult {
    Bootstrap(Option<(Prefix, Vec<SocketAddr>)>),
    /// The verified config and its raw bytes (to store).
    NetworkConfig(Box<NetworkConfig>, Vec<u8>),
    /// The certificate the registry gave back (verified: issued by the CA,
    /// for our key and prefix): a renewed one, or the same.
    Certificate(Box<Certificate>),
    /// The CA certificate `getCa` gave (checked: same key and network).
    Ca(Box<Certificate>),
    Failed(&'static str, String),
}

/// The registry as the status report shows it.
#[derive(Clone, Debug)]
pub struct RegistryState {
    pub url: String,
    pub last_ok: Option<Instant>,
    pub last_error: Option<String>,
}

/// A registry request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    /// The network config (CRL, parameters).
    NetworkConfig,
    /// A bootstrap peer.
    Bootstrap,
    /// A renewed certificate.
    Renew,
    /// A renewed CA certificate.
    RenewCa,
}

impl Job {
    fn index(self) -> usize {
        match self {
            Job::NetworkConfig => 0,
            Job::Bootstrap => 1,
            Job::Renew => 2,
            Job::RenewCa => 3,
        }
    }
}

/// Per kind: running, and asked for again meanwhile.
#[derive(Debug, Default)]
pub struct Jobs {
    running: [bool; 4],
    again: [bool; 4],
}

impl Jobs {
    /// Ask for `job`: true when it is to start now; otherwise it starts
    /// again when the running one is [`Self::done`].
    pub fn request(&mut self, job: Job) -> bool {
        let i = job.index();
        if self.running[i] {
            self.again[i] = true;
            return false;
        }
        self.running[i] = true;
        true
    }

    /// The running `job` finished (answered or failed): true when it is
    /// to start again now.
    pub fn done(&mut self, job: Job) -> bool {
        let i = job.index();
        self.running[i] = std::mem::take(&mut self.again[i]);
        self.running[i]
    }

    pub fn running(&self, job: Job) -> bool {
        self.running[job.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_starts_at_once() {
        let mut j = Jobs::default();
        assert!(j.request(Job::Bootstrap));
        assert!(!j.done(Job::Bootstrap));
        assert!(!j.running(Job::Bootstrap));
        assert!(j.request(Job::NetworkConfig));
        assert!(j.running(Job::NetworkConfig));
    }

    /// The bug this fixes: a network config check asked for during a
    /// bootstrap request (SIGHUP, or the start-up check, which comes with
    /// the first bootstrap request) was dropped, until the hourly check.
    #[test]
    fn netconfig_during_bootstrap_starts_at_once() {
        let mut j = Jobs::default();
        assert!(j.request(Job::Bootstrap));
        assert!(j.request(Job::NetworkConfig));
        assert!(!j.done(Job::Bootstrap));
        assert!(j.running(Job::NetworkConfig));
        assert!(!j.done(Job::NetworkConfig));
    }

    /// A check asked for (once or more) while one runs runs once more
    /// after it: the first answer may predate the change.
    #[test]
    fn netconfig_during_netconfig_runs_again_once() {
        let mut j = Jobs::default();
        assert!(j.request(Job::NetworkConfig));
        assert!(!j.request(Job::NetworkConfig));
        assert!(!j.request(Job::NetworkConfig));
        assert!(j.done(Job::NetworkConfig));
        assert!(j.running(Job::NetworkConfig));
        assert!(!j.done(Job::NetworkConfig));
        assert!(!j.running(Job::NetworkConfig));
    }
}
