//! Staying joined for years: a running node renews its certificate from 30
//! days before it expires, with the real registry, and uses the new one at
//! once, without a restart. The CA certificate (a year, as the test CA)
//! is renewed too: the operator re-made it with the same key, and the
//! nodes fetch it with `getCa` from 30 days before theirs expires.
//!
//! Nodes register today; then the registry and the nodes run with their
//! wall clocks 340 days ahead (libfaketime; the monotonic clock stays real),
//! 25 days before the certificates expire.

use std::time::{Duration, Instant};

use re6st_integration::mesh::{Clock, Mesh};
use re6st_integration::netns::wait_until;
use re6st_integration::registry::{identity, Options};

const N: usize = 2;
const AHEAD: &str = "+340d";

#[test]
fn a_running_node_renews_its_certificate_before_it_expires() {
    let mut m = Mesh::build(N, Options::default());
    let before: Vec<u64> = (0..N)
        .map(|i| identity(&m.nodes[i].dir).cert.not_after())
        .collect();
    // Declared after the mesh: dropped first, also on panic.
    let _forwards = m.registry_in_every_node();
    let old_ca = identity(&m.nodes[0].dir).ca.not_after();
    m.registry.ca.renew(730);
    m.registry.restart_at(AHEAD);
    for n in &mut m.nodes {
        n.clock = Some(Clock::Offset(AHEAD.into()));
    }
    let start = Instant::now();
    m.spawn_all();
    let renewed = wait_until(Duration::from_secs(60), || {
        (0..N).all(|i| m.log_of(i).contains("certificate renewed"))
    });
    assert!(
        renewed.is_some(),
        "not renewed\n{}\n{}",
        m.logs(),
        m.registry.log()
    );
    println!(
        "both nodes renewed {:.1} s after start",
        start.elapsed().as_secs_f64()
    );
    for (i, old) in before.iter().enumerate() {
        // Stored for the next start, and in use (status).
        let new = identity(&m.nodes[i].dir).cert.not_after();
        assert!(new >= old + 300 * 86_400, "node {i}: {old} -> {new}");
        let json = m.status_json(i);
        assert!(json.contains(&format!(r#""not_after":{new}"#)), "{json}");
        assert!(json.contains(r#""renewal_error":null"#), "{json}");
    }
    let ca_renewed = wait_until(Duration::from_secs(30), || {
        (0..N).all(|i| m.log_of(i).contains("CA certificate renewed"))
    });
    assert!(ca_renewed.is_some(), "CA not renewed\n{}", m.logs());
    for i in 0..N {
        let new = identity(&m.nodes[i].dir).ca.not_after();
        assert!(
            new >= old_ca + 300 * 86_400,
            "node {i}: CA {old_ca} -> {new}"
        );
        let json = m.status_json(i);
        assert!(json.contains(r#""ca":{"expires":"#), "{json}");
        assert!(
            json.contains(&format!(r#""not_after":{new},"renewal_error":null}}"#)),
            "{json}"
        );
    }
    // The nodes still reach each other, and new handshakes carry the new
    // certificates (and the new CA, same key: the same network): node 1
    // restarts and connects again.
    let all: Vec<usize> = (0..N).collect();
    wait_until(Duration::from_secs(30), || m.all_ping(&all))
        .unwrap_or_else(|| panic!("no mesh after renewal\n{}", m.logs()));
    let mut p = m.nodes[1].proc.take().expect("running");
    assert_eq!(p.terminate(Duration::from_secs(5)), Some(0));
    let peer = format!("{}:1194", m.nodes[0].ip);
    m.spawn(1, &[peer]);
    wait_until(Duration::from_secs(30), || m.all_ping(&all))
        .unwrap_or_else(|| panic!("no tunnel with the renewed certificate\n{}", m.logs()));
}
