//! The registry, when the config names one: bootstrap peers and network
//! config updates (new CRL, parameters), asked on one worker thread.
//!
//! One thread and one session for the node's life: the registry keeps one
//! session key per node (an HMAC chain), so two calls in flight with two
//! `hello`s make one of them fail ("Wrong HMAC", HTTP 400), and the chain
//! saves a `hello` (an RSA decryption on each side) per call. HTTP and RSA
//! take time; the event loop never waits for them.

use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;

use registry_client::http::{HttpTransport, Timeouts};
use registry_client::state::Identity;
use registry_client::{Registry, Session};
use tokio::sync::mpsc;

use crate::node::registry::{Job, Jobs, RegistryResult};

pub(super) struct RegistryLink {
    /// One request of each kind asked for at a time, none lost; the worker
    /// answers them in order.
    jobs: Jobs,
    queue: std_mpsc::Sender<Job>,
}

impl RegistryLink {
    /// Starts the worker; answers come on `results`. The thread ends when
    /// the link is dropped (or with the process: a request may hang for a
    /// minute, and nothing waits for it at exit).
    pub(super) fn start(
        url: String,
        ca_file: std::path::PathBuf,
        id: Identity,
        results: mpsc::UnboundedSender<(Job, RegistryResult)>,
    ) -> std::io::Result<Self> {
        let (queue, jobs) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("registry".into())
            .spawn(move || worker(&url, ca_file, id, &jobs, &results))?;
        Ok(RegistryLink {
            jobs: Jobs::default(),
            queue,
        })
    }

    /// Ask the registry for `job`: now, or again once the same request
    /// asked before is answered ([`Self::done`]).
    pub(super) fn request(&mut self, job: Job) {
        if self.jobs.request(job) {
            let _ = self.queue.send(job);
        }
    }

    /// `job` is answered: ask again if it was asked for meanwhile.
    pub(super) fn done(&mut self, job: Job) {
        if self.jobs.done(job) {
            let _ = self.queue.send(job);
        }
    }
}

fn worker(
    url: &str,
    ca_file: std::path::PathBuf,
    id: Identity,
    jobs: &std_mpsc::Receiver<Job>,
    results: &mpsc::UnboundedSender<(Job, RegistryResult)>,
) {
    // The URL was checked when the config was read.
    let mut session = match HttpTransport::new(url, Timeouts::default()) {
        Ok(t) => Ok(Registry::new(t.with_ca_file(ca_file)).session(id.ca, id.key, id.subnet.node)),
        Err(e) => Err(e.to_string()),
    };
    while let Ok(job) = jobs.recv() {
        let r = match &mut session {
            Ok(s) => match job {
                Job::NetworkConfig => netconfig_job(s),
                Job::Bootstrap => bootstrap_job(s),
                Job::Renew => match s.renew_certificate(super::clock::unix_now()) {
                    Ok(c) => RegistryResult::Certificate(Box::new(c)),
                    Err(e) => RegistryResult::Failed("certificate renewal", e.to_string()),
                },
                Job::RenewCa => match s.renewed_ca() {
                    Ok(c) => RegistryResult::Ca(Box::new(c)),
                    Err(e) => RegistryResult::Failed("CA renewal", e.to_string()),
                },
            },
            Err(e) => RegistryResult::Failed("registry", e.clone()),
        };
        if results.send((job, r)).is_err() {
            return;
        }
    }
}

fn bootstrap_job(s: &mut Session<HttpTransport>) -> RegistryResult {
    match s.bootstrap_peer() {
        Ok(p) => RegistryResult::Bootstrap(p.map(|p| {
            let addrs = p
                .addresses
                .iter()
                .filter(|a| matches!(a.proto.as_str(), "udp" | "udp6"))
                .map(|a| SocketAddr::new(a.ip, a.port))
                .collect();
            (p.prefix, addrs)
        })),
        Err(e) => RegistryResult::Failed("bootstrap peer", e.to_string()),
    }
}

fn netconfig_job(s: &mut Session<HttpTransport>) -> RegistryResult {
    match s.network_config() {
        Ok((c, raw)) => RegistryResult::NetworkConfig(Box::new(c), raw),
        Err(e) => RegistryResult::Failed("network config", e.to_string()),
    }
}
