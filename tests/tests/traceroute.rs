//! The node forwards like a router (RFC 4443): a packet whose hop limit runs
//! out gets a Time Exceeded from the node, so `traceroute` across the mesh
//! shows every re6st-lite hop (as it shows every re6stnet hop), and a packet
//! for an overlay address no one routes gets a Destination Unreachable
//! instead of silence.
//!
//! Three nodes in a line: A (node 1) and C (node 2) cannot reach each other
//! on the underlay (a blackhole route in each namespace), so their tunnels go
//! to B (node 0) and A's traffic to C goes through B.

use std::time::Duration;

use re6st_integration::mesh::Mesh;
use re6st_integration::netns::wait_until;
use re6st_integration::registry::Options;

#[test]
fn traceroute_shows_the_middle_node_and_unrouted_addresses_are_unreachable() {
    let mut m = Mesh::build(3, Options::default());
    let (a, b, c) = (1, 0, 2);
    let (ip_a, ip_c) = (m.nodes[a].ip.clone(), m.nodes[c].ip.clone());
    m.nodes[a].ns.ip(&format!("route add blackhole {ip_c}/32"));
    m.nodes[c].ns.ip(&format!("route add blackhole {ip_a}/32"));
    m.spawn_all();
    wait_until(Duration::from_secs(60), || m.ping(a, c))
        .unwrap_or_else(|| panic!("A cannot reach C through B\n{}", m.logs()));

    let trace = |dst: &str| {
        let out = m.nodes[a].ns.output(
            "rltraceroute6",
            &["-n", "-q", "1", "-w", "2", "-m", "4", dst],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (addr_b, addr_c) = (m.nodes[b].address.clone(), m.nodes[c].address.clone());
    // A Babel route may still settle: one retry.
    let mut out = trace(&addr_c);
    if !out.contains(&addr_b) {
        std::thread::sleep(Duration::from_secs(2));
        out = trace(&addr_c);
    }
    println!("{out}");
    let hop = |n: u32| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(&n.to_string()))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        hop(1).contains(&addr_b),
        "hop 1 is not B ({addr_b}):\n{out}"
    );
    assert!(
        hop(2).contains(&addr_c),
        "hop 2 is not C ({addr_c}):\n{out}"
    );

    // The network's last address but one, which no node has: "no route" at
    // once, from A itself.
    let json = m.status_json(a);
    let network: node_lite::net::Ipv6Net = json
        .split("\"network\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no network in {json}"));
    let nowhere = network.host((1u128 << (128 - network.prefix_len())) - 2);
    let ping = m.nodes[a].ns.output(
        "ping",
        &["-6", "-n", "-c", "1", "-W", "2", &nowhere.to_string()],
    );
    let said = String::from_utf8_lossy(&ping.stdout);
    println!("{said}");
    assert!(
        said.contains("Destination unreachable") && said.contains(&m.nodes[a].address),
        "ping {nowhere}:\n{said}"
    );
}
