//! Network version propagation between nodes (re6st's code 0): a node
//! restarted with a newer network config (the registry revoked a
//! certificate since the others registered) tells its tunnel peers, who
//! check the CA signature and pass it on, so every node learns of it.
//!
//! Not covered here: the fetch that follows. Nodes in namespaces cannot
//! reach the registry (127.0.0.1 of the root namespace), so they run with
//! no `registry` option and only pass the version on; the fetch decision is
//! unit-tested in node-lite's `mesh::version`.

use std::time::Duration;

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
