//! Issue 7, offline operation: three nodes registered earlier, now on one LAN
//! bridge with no registry and no other underlay (no peer addresses, empty
//! peer caches), find each other with discovery beacons and Babel on the LAN
//! interface. A node of another network (another CA) on the same LAN is
//! ignored by all of them.
//!
//! Run as root: `cargo test -p re6st-integration --test lan_offline -- --nocapture`.

use std::time::{Duration, Instant};

use re6st_integration::mesh::Mesh;
use re6st_integration::netns::wait_until;
use re6st_integration::registry::{Options, Registry};

const N: usize = 3;

#[test]
fn lan_mesh_forms_offline_and_ignores_another_network() {
    let mut m = Mesh::build(N, Options::default());
    // Same network prefix (the test CA's serial), another CA: its node may
    // even hold one of our prefixes, which makes ignoring it matter.
    let mut other = Registry::start(Options::default());
    let foreign = m.add_node(&other.url());
    other.stop();
    m.registry.stop();

    let start = Instant::now();
    let stamp = re6st_integration::netns::since_start().as_secs_f64();
    for i in 0..=foreign {
        let lan = format!("babel_interface={}", m.nodes[i].dev);
        m.nodes[i].options.push(lan);
        m.spawn(i, &[]);
    }
    let ours: Vec<usize> = (0..N).collect();
    let formed = wait_until(Duration::from_secs(30), || m.all_ping(&ours));
    let Some(_) = formed else {
        panic!(
            "LAN mesh not formed: {:?}\n{}\n{}",
            m.unreachable_pairs(&ours),
            m.status_text(0),
            m.logs()
        );
    };
    let secs = start.elapsed().as_secs_f64();
    println!("offline LAN mesh of {N} nodes: all pairs ping {secs:.1} s after start");
    let routes: Vec<String> = ours.iter().map(|&i| m.nodes[i].ns.ip("-6 route")).collect();
    assert!(
        secs <= 10.0,
        "took {secs:.1} s (goal: 10 s), from [{stamp:7.3}]\n{}\n{routes:#?}",
        m.logs()
    );

    // The foreign node (which may come up later: its link-local address can
    // still be in DAD): refused by everyone, routed by no one, and its own
    // view of the LAN is empty too.
    let foreign_prefix = m.nodes[foreign].prefix.clone();
    let refused =
        |log: &str| log.contains("LAN: ignoring") && log.contains("not issued by the network CA");
    for i in ours {
        // A node whose LAN address came out of DAD after the foreign node's
        // first beacon hears its next one, 30 s later (the foreign node
        // answers no newcomer of another network).
        let seen = wait_until(Duration::from_secs(35), || refused(&m.log_of(i)));
        assert!(
            seen.is_some(),
            "node {i} did not refuse the foreign beacon\n{}",
            m.log_of(i)
        );
        let status = m.status_text(i);
        let via_lan = status.lines().filter(|l| l.contains(" lan ")).count();
        assert_eq!(via_lan, N - 1, "node {i}: LAN neighbours\n{status}");
        let json = m.status_json(i);
        let lans = format!(r#""babel_interfaces":[{{"interface":"{}""#, m.nodes[i].dev);
        assert!(json.contains(&lans), "{lans} not in {json}");
    }
    let f = m.status_text(foreign);
    assert!(
        !f.lines().any(|l| l.contains(" lan ")),
        "the foreign node accepted one of ours\n{f}"
    );
    println!("foreign node {foreign_prefix}: refused by all {N}");
}
