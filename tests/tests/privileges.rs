//! Once set up, the daemon keeps only CAP_NET_ADMIN, CAP_NET_RAW and
//! CAP_NET_BIND_SERVICE, in
//! every set including the bounding set, with no_new_privs (issue 19,
//! local security), and still does its job: two nodes ping each other
//! (every other integration test runs it that way too).

use std::time::Duration;

use re6st_integration::mesh::Mesh;
use re6st_integration::netns::wait_until;
use re6st_integration::registry::Options;

fn field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

#[test]
fn the_daemon_keeps_only_its_network_capabilities() {
    let m = Mesh::start(2, Options::default());
    assert!(
        wait_until(Duration::from_secs(30), || m.all_ping(&[0, 1])).is_some(),
        "{}",
        m.logs()
    );
    for i in 0..2 {
        let pid = m.nodes[i].proc.as_ref().unwrap().pid();
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        // CAP_NET_BIND_SERVICE (10), CAP_NET_ADMIN (12), CAP_NET_RAW (13).
        for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
            assert_eq!(field(&s, set), "0000000000003400", "{set} of node {i}\n{s}");
        }
        assert_eq!(field(&s, "CapInh:"), "0000000000000000");
        assert_eq!(field(&s, "NoNewPrivs:"), "1");
    }
}
