//! Network version propagation between nodes (re6st's code 0).
//!
//! 1. With no registry: a node restarted with a newer network config (the
//!    registry revoked a certificate since the others registered) tells its
//!    tunnel peers, who check the CA signature and pass it on, so every
//!    node learns of it.
//! 2. With the registry reachable (a [`Forward`] in each namespace): only
//!    node 0 re-checks (SIGHUP) after a revocation; the others hear the new
//!    version from their peers and fetch and apply the new config
//!    themselves, long before their hourly check.

use std::time::{Duration, Instant};

use re6st_integration::mesh::Mesh;
use re6st_integration::netns::wait_until;
use re6st_integration::registry::{identity, register_anonymous, Options, TempDir};
use registry_client::http::{HttpTransport, Timeouts};
use registry_client::state::{StateDir, NETCONFIG_FILE};

const N: usize = 4;

#[test]
fn newer_version_floods_the_mesh() {
    let mut m = Mesh::start(N, Options::default());
    let all: Vec<usize> = (0..N).collect();
    wait_until(Duration::from_secs(60), || m.all_ping(&all))
        .unwrap_or_else(|| panic!("unreachable: {:?}\n{}", m.unreachable_pairs(&all), m.logs()));

    // Version 2: a revocation.
    let tmp = TempDir::new("netver");
    let other = tmp.sub("other");
    register_anonymous(&m.registry.url(), &other);
    let serial = identity(&other).cert.serial_u64().expect("serial");
    let (code, _) = m.registry.get(&format!("/revoke?cn_or_serial={serial}"));
    assert_eq!(code, 204, "{}", m.registry.log());

    // Node 0 gets it (as a node next to the registry would) and restarts.
    let id = identity(&m.nodes[0].dir);
    let t = HttpTransport::new(&m.registry.url(), Timeouts::default()).expect("transport");
    let mut s =
        registry_client::Registry::new(t).session(id.ca.clone(), id.key.clone(), id.prefix());
    let (c, raw) = s.network_config().expect("network config");
    let old = StateDir::new(&m.nodes[0].dir)
        .network_config(&id)
        .expect("cached config")
        .expect("cached config")
        .version
        .number;
    assert!(c.version.number > old, "{} after {old}", c.version.number);
    StateDir::new(&m.nodes[0].dir)
        .write_atomic(NETCONFIG_FILE, &raw, 0o644)
        .expect("store the config");
    let mut p = m.nodes[0].proc.take().expect("running");
    assert_eq!(p.terminate(Duration::from_secs(5)), Some(0), "{}", m.logs());
    let peer = format!("{}:1194", m.nodes[1].ip);
    m.spawn(0, &[peer]);

    // Every other node hears of it, from node 0 or from a node that passed
    // it on.
    let line = format!("network version {} (ours {old})", c.version.number);
    let heard = wait_until(Duration::from_secs(60), || {
        (1..N).all(|i| m.log_of(i).contains(&line))
    });
    assert!(
        heard.is_some(),
        "not every node heard \"{line}\"\n{}",
        m.logs()
    );
    // And passes it on: a node meeting it afterwards finds it the same.
    let same = format!("network version {} (ours too)", c.version.number);
    assert!((0..N).any(|i| m.log_of(i).contains(&same)), "{}", m.logs());
}

const VERSION: &str = r#""network_config_version":"#;

#[test]
fn newer_version_is_fetched_by_every_node() {
    let n = 3;
    let mut m = Mesh::build(n, Options::default());
    let url = m.registry.url();
    // Declared after the mesh: dropped first, also on panic.
    let _forwards = m.registry_in_every_node();
    m.spawn_all();
    let all: Vec<usize> = (0..n).collect();
    let up = wait_until(Duration::from_secs(60), || {
        m.all_ping(&all) && (0..n).all(|i| m.status_number(i, VERSION).is_some())
    });
    assert!(up.is_some(), "mesh not up\n{}", m.logs());
    let old = m.status_number(0, VERSION).expect("version");

    // A revocation bumps the version; only node 0 re-checks.
    let tmp = TempDir::new("netver-fetch");
    let other = tmp.sub("other");
    register_anonymous(&url, &other);
    let serial = identity(&other).cert.serial_u64().expect("serial");
    let (code, _) = m.registry.get(&format!("/revoke?cn_or_serial={serial}"));
    assert_eq!(code, 204, "{}", m.registry.log());
    let hup = Instant::now();
    m.sighup(0);

    let fetched = wait_until(Duration::from_secs(30), || {
        (0..n).all(|i| m.status_number(i, VERSION).is_some_and(|v| v > old))
    });
    assert!(
        fetched.is_some(),
        "versions {:?} after {old}\n{}",
        (0..n)
            .map(|i| m.status_number(i, VERSION))
            .collect::<Vec<_>>(),
        m.logs()
    );
    println!(
        "SIGHUP to node 0 to the new network config on all {n} nodes: {:.1} s",
        hup.elapsed().as_secs_f64()
    );
    for i in 1..n {
        assert!(
            m.log_of(i).contains("fetching the network config"),
            "node {i} did not fetch on a peer's word\n{}",
            m.logs()
        );
    }
    // One session per node: no call failed because another call's `hello`
    // replaced its key (bootstrap and network config at start, SIGHUP).
    for i in 0..n {
        let log = m.log_of(i);
        let failed: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("warn") && l.contains("registry:"))
            .collect();
        assert!(failed.is_empty(), "node {i}: {failed:#?}");
    }
}
