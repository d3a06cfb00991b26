//! Issue 7, border gateway: node 0 has a native IPv6 uplink to an
//! "internet" namespace and runs with `gateway 1`; it announces `::/0 from
//! <network>` (RFC 9079). Node 2, two hops away in the mesh, and an IPv4-only
//! LAN host behind it (IPv6 from node 2's router advertisements) reach the
//! internet host through the gateway. Node 2 also
//! has a native IPv6 uplink of its own, and traffic from its native address
//! keeps using it: the gateway's route is only for sources inside the
//! network, so it hijacks nothing.
//!
//! Run as root: `cargo test -p re6st-integration --test gateway -- --nocapture`.

use std::time::{Duration, Instant};

use re6st_integration::mesh::Mesh;
use re6st_integration::netns::{veth, wait_until, Netns};
use re6st_integration::registry::Options;

/// The internet host, reachable only through the gateway's uplink.
const INTERNET_HOST: &str = "2001:db8:fffe::1";
/// A host behind node 2's own native uplink.
const NATIVE_HOST: &str = "2001:db8:eeee::1";

/// /64 prefixes (SLAAC for the LAN host), 2 s hellos.
fn options() -> Options {
    Options {
        anonymous_prefix_length: Some(16),
        extra: ["--hello", "2"].iter().map(|s| s.to_string()).collect(),
        ..Options::default()
    }
}

#[test]
fn gateway_carries_network_sources_only() {
    let mut m = Mesh::build(3, options());
    let network = "2001:db8:42::/48";

    // The gateway's uplink: the internet routes the network back to it.
    let inet = Netns::new("inet");
    veth(
        &m.nodes[0].ns,
        "2001:db8:fffe::2/64",
        &inet,
        "2001:db8:fffe::1/64",
    );
    m.nodes[0]
        .ns
        .ip("-6 route add default via 2001:db8:fffe::1");
    inet.ip(&format!("-6 route add {network} via 2001:db8:fffe::2"));
    // Node 2's own native uplink, to an ISP that knows nothing of the overlay.
    let isp = Netns::new("isp");
    veth(
        &m.nodes[2].ns,
        "2001:db8:eeee::2/64",
        &isp,
        "2001:db8:eeee::1/64",
    );
    m.nodes[2]
        .ns
        .ip("-6 route add default via 2001:db8:eeee::1");

    let host = m.add_lan_host(2);
    let start = Instant::now();
    m.nodes[0].options.push("gateway=1".into());
    m.spawn(0, &[]);
    let node0 = format!("{}:1194", m.nodes[0].ip);
    let node1 = format!("{}:1194", m.nodes[1].ip);
    m.spawn(1, &[node0]);
    m.spawn(2, &[node1]);

    let n2 = &m.nodes[2];
    let overlay = n2.address.clone();
    let through_gateway = wait_until(Duration::from_secs(60), || {
        ping_from(&n2.ns, &overlay, INTERNET_HOST)
    });
    if through_gateway.is_none() {
        panic!(
            "node 2 cannot reach the internet host through the gateway\n{}\n{}\n{}",
            n2.ns.ip("-6 route"),
            m.status_text(2),
            m.logs()
        );
    }
    println!(
        "node 2 reaches the internet host through the gateway {:.1} s after start",
        start.elapsed().as_secs_f64()
    );

    // The LAN host behind node 2: its SLAAC address is in the network, so
    // node 2 forwards it to the gateway as well.
    let lan_prefix = m.nodes[2].prefix.clone();
    let h = &m.hosts[host];
    let from_lan = wait_until(Duration::from_secs(60), || {
        h.slaac_address(&lan_prefix)
            .is_some_and(|a| ping_from(&h.ns, &a, INTERNET_HOST))
    });
    if from_lan.is_none() {
        panic!(
            "the LAN host behind node 2 cannot reach the internet host: {:?}\n{}\n{}",
            h.addresses(),
            h.routes(),
            m.logs()
        );
    }
    println!(
        "a LAN host behind node 2 reaches it {:.1} s after start",
        start.elapsed().as_secs_f64()
    );

    // The kernel route is source-specific, installed by the node.
    let routes = n2.ns.ip("-6 route show table main");
    assert!(
        routes.contains(&format!("default from {network} dev re6st0")),
        "no source-specific default route on node 2:\n{routes}"
    );
    // Native traffic stays native: the ISP host answers the native address,
    // and the overlay route is not chosen for it.
    assert!(
        ping_from(&n2.ns, "2001:db8:eeee::2", NATIVE_HOST),
        "node 2's native uplink was hijacked:\n{routes}"
    );
    let get = n2.ns.ip(&format!(
        "-6 route get {INTERNET_HOST} from 2001:db8:eeee::2"
    ));
    assert!(
        !get.contains("re6st0"),
        "native source routed into the overlay: {get}"
    );
    // The gateway does not route its own announcement.
    let g = m.nodes[0].ns.ip("-6 route show table main");
    assert!(
        !g.contains(&format!("default from {network}")),
        "gateway:\n{g}"
    );
}

/// One ping from `src` inside `ns` that gets an answer within a second.
fn ping_from(ns: &Netns, src: &str, dst: &str) -> bool {
    ns.output("ping", &["-6", "-n", "-c", "1", "-W", "1", "-I", src, dst])
        .status
        .success()
}
