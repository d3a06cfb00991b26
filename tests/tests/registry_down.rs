//! A registered node that starts while its registry is unreachable (a
//! router's first boot before the uplink works, a registry outage): it
//! runs, `status` shows the registry's error, and the network config fetch
//! is tried again a minute later (then backing off), not an hour later, so
//! the node is up to date soon after the registry answers again.

use std::time::{Duration, Instant};

use re6st_integration::mesh::Mesh;
use re6st_integration::netns::wait_until;
use re6st_integration::registry::Options;

#[test]
fn config_fetch_retried_while_the_registry_is_down() {
    let mut m = Mesh::build(1, Options::default());
    // Declared after the mesh: dropped first, also on panic.
    let _forwards = m.registry_in_every_node();
    m.registry.stop();
    m.spawn(0, &[]);
    let error = |m: &Mesh| {
        let s = m.status_json(0);
        let i = s.find(r#""registry":"#)?;
        let r = &s[i..];
        let e = &r[r.find(r#""last_error":"#)? + 13..];
        Some(e[..e.find('}')?].to_string())
    };
    let failed = wait_until(Duration::from_secs(20), || {
        error(&m).is_some_and(|e| e.starts_with("\"network config"))
    });
    assert!(failed.is_some(), "{}\n{}", m.status_json(0), m.logs());
    println!(
        "registry down: last_error {}",
        error(&m).unwrap_or_default()
    );
    assert!(m.nodes[0].proc.as_mut().expect("running").running());

    m.registry.restart();
    let back = Instant::now();
    let fetched = wait_until(Duration::from_secs(90), || {
        error(&m).as_deref() == Some("null") && m.log_of(0).contains("network config version")
    });
    assert!(
        fetched.is_some(),
        "no fetch after the registry came back\n{}\n{}",
        m.status_json(0),
        m.logs()
    );
    println!(
        "network config fetched {:.0} s after the registry came back",
        back.elapsed().as_secs_f64()
    );
}
