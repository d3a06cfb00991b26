//! The node keeps its kernel set-up ([issue 13]): the overlay device cycled
//! (as netifd does), its address or routes deleted by another program, the
//! node notices (netlink notifications) and puts them back, and traffic
//! flows again. And a second `run` that cannot start (the port is taken)
//! leaves the running node's routes alone.

use std::time::{Duration, Instant};

use re6st_integration::mesh::Mesh;
use re6st_integration::netns::wait_until;
use re6st_integration::registry::{node_bin, Options};

#[test]
fn the_overlay_set_up_comes_back_after_the_device_is_cycled_or_routes_deleted() {
    let m = Mesh::start(2, Options::default());
    let both = || m.ping(0, 1) && m.ping(1, 0);
    wait_until(Duration::from_secs(60), both).unwrap_or_else(|| panic!("no tunnel\n{}", m.logs()));
    let ns = &m.nodes[1].ns;
    let ours = || ns.ip("-6 route show proto 114");
    let routes = ours();
    assert!(!routes.is_empty());

    // 1. The device taken down and up: the kernel drops its address and routes.
    ns.ip("link set re6st0 down");
    std::thread::sleep(Duration::from_millis(500));
    let up = Instant::now();
    ns.ip("link set re6st0 up");
    let back = wait_until(Duration::from_secs(15), both);
    println!(
        "device cycled: traffic again {:?} after it came up",
        back.map(|_| up.elapsed())
    );
    assert!(back.is_some(), "not restored\n{}\n{}", ours(), m.logs());
    assert!(m.log_of(1).contains("set again"));

    // 2. The address and the network's route deleted by hand.
    let address = &m.nodes[1].address;
    ns.ip(&format!("-6 addr del {address}/128 dev re6st0"));
    let json = m.status_json(1);
    let network = json
        .split("\"network\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no network in {json}"))
        .to_owned();
    ns.ip(&format!("-6 route del {network} dev re6st0"));
    let back = wait_until(Duration::from_secs(15), || {
        ns.ip("-6 addr show dev re6st0").contains(address.as_str()) && both()
    });
    assert!(back.is_some(), "not restored\n{}\n{}", ours(), m.logs());

    // 3. A second node in the same namespace on the same port: it fails with
    // exit 31, and the first keeps its routes.
    let before = ours();
    let tmp = m.tmp.sub("second");
    let state = format!("state_dir={}", m.nodes[1].dir.display());
    let run = format!("run_dir={}", tmp.display());
    let out = ns.output(
        "timeout",
        &[
            "10",
            &node_bin().to_string_lossy(),
            "run",
            "-o",
            &state,
            "-o",
            &run,
            "-o",
            "interface=re6st9",
        ],
    );
    assert_eq!(out.status.code(), Some(31), "{out:?}");
    assert_eq!(ours(), before, "the second run touched the routes");
    assert!(both());
}
