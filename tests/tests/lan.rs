//! IPv6 for the LANs behind nodes (options `lan`, `ra`, `rdnss`): three
//! nodes on the IPv4 underlay with the real registry handing out /64s; an
//! IPv4-only host behind node 0 and another behind node 2 get IPv6 from
//! their node's router advertisements (seen by rdisc6, autoconfigured by the
//! kernel) and ping each other across the overlay. Behind node 1 (`ra 0`)
//! the address is configured and nothing is advertised. When node 0 stops,
//! its final advertisement makes its host drop the prefix route and the
//! default route and deprecate the address. The time from node start to
//! LAN-host reachability is printed for the issue note. Also: a /62 serves
//! two LANs and a /68 none (warned); another router advertising the node's
//! prefix on its LAN silences the node there.

use std::time::{Duration, Instant};

use node_lite::net::Ipv6Net;
use re6st_integration::mesh::Mesh;
use re6st_integration::netns::wait_until;
use re6st_integration::registry::Options;

const N: usize = 3;
const DNS: &str = "2001:db8:42::53";

/// /64 prefixes (SLAAC needs them; the harness default is /68), 2 s hellos.
fn options() -> Options {
    Options {
        anonymous_prefix_length: Some(16),
        extra: ["--hello", "2"].iter().map(|s| s.to_string()).collect(),
        ..Options::default()
    }
}

/// rdisc6's report, with runs of spaces squeezed.
fn rdisc6(m: &Mesh, host: usize, tries: &str) -> (bool, String) {
    let h = &m.hosts[host];
    let out =
        h.ns.output("rdisc6", &["-1", "-n", "-r", tries, "-w", "1000", &h.dev]);
    let text = String::from_utf8_lossy(&out.stdout);
    let squeezed: Vec<&str> = text.split_whitespace().collect();
    (out.status.success(), squeezed.join(" "))
}

/// Any address of host `h` in `prefix`, even tentative.
fn has_address_in(m: &Mesh, h: usize, prefix: &str) -> bool {
    let net: Ipv6Net = prefix.parse().expect("prefix");
    m.hosts[h].addresses().iter().any(|a| {
        a.split('/')
            .next()
            .and_then(|x| x.parse().ok())
            .is_some_and(|x| net.contains(x))
    })
}

/// One ping from host `h` answered within 300 ms.
fn quick_ping(m: &Mesh, h: usize, addr: &str) -> bool {
    m.hosts[h]
        .ns
        .output("ping", &["-6", "-n", "-c", "1", "-W", "0.3", addr])
        .status
        .success()
}

#[test]
fn lan_hosts_get_ipv6_from_their_node() {
    let mut m = Mesh::build(N, options());
    let a = m.add_lan_host(0);
    let c = m.add_lan_host(1);
    let b = m.add_lan_host(2);
    m.nodes[0].options.push(format!("rdnss={DNS}"));
    m.nodes[1].options.push("ra=0".into());
    for n in &m.nodes {
        assert!(n.prefix.ends_with("/64"), "node prefix {}", n.prefix);
    }
    let (pa, pb, pc) = (
        m.nodes[0].prefix.clone(),
        m.nodes[2].prefix.clone(),
        m.nodes[1].prefix.clone(),
    );
    let started = Instant::now();
    m.spawn_all();

    // 1. The hosts autoconfigure an address in their node's /64 (tentative
    // first: the router advertisement arrived; then usable, after
    // duplicate address detection), and reach each other (and the far node)
    // over IPv6 through the mesh.
    let lan0 = format!("{}/64", m.nodes[0].address);
    let configured = wait_until(Duration::from_secs(30), || {
        m.nodes[0]
            .ns
            .ip(&format!("-6 addr show dev {}", m.hosts[a].node_dev))
            .contains(&lan0)
    })
    .map(|_| started.elapsed().as_secs_f64());
    let seen = wait_until(Duration::from_secs(30), || {
        has_address_in(&m, a, &pa) && has_address_in(&m, b, &pb)
    })
    .map(|_| started.elapsed().as_secs_f64());
    let slaac = wait_until(Duration::from_secs(10), || {
        m.hosts[a].slaac_address(&pa).is_some() && m.hosts[b].slaac_address(&pb).is_some()
    })
    .map(|_| started.elapsed().as_secs_f64());
    let (Some(configured), Some(seen), Some(slaac)) = (configured, seen, slaac) else {
        panic!(
            "no SLAAC address: A {:?}, B {:?}\n{}",
            m.hosts[a].addresses(),
            m.hosts[b].addresses(),
            m.logs()
        )
    };
    let (addr_a, addr_b) = (
        m.hosts[a].slaac_address(&pa).expect("A"),
        m.hosts[b].slaac_address(&pb).expect("B"),
    );
    let reach = wait_until(Duration::from_secs(90), || {
        quick_ping(&m, a, &addr_b) && quick_ping(&m, b, &addr_a)
    });
    reach.unwrap_or_else(|| {
        panic!(
            "LAN hosts do not reach each other\nA routes:\n{}\nB routes:\n{}\n{}\n{}",
            m.hosts[a].routes(),
            m.hosts[b].routes(),
            m.status_text(0),
            m.logs()
        )
    });
    let reach = started.elapsed().as_secs_f64();
    println!(
        "LAN host A {addr_a}, LAN host B {addr_b}; after node start: node 0's LAN \
         address {configured:.1} s, hosts' addresses configured {seen:.1} s, usable \
         {slaac:.1} s, A <-> B over IPv6 {reach:.1} s ({N} nodes)"
    );
    assert!(m.hosts[a].ns.ping6(&m.nodes[1].address), "A -> node 1");
    // The status names node 0's `lan` interface, its /64 and its RAs.
    let json = m.status_json(0);
    let lan = format!(
        r#""lan_interfaces":[{{"interface":"{}","prefix":"{pa}""#,
        m.hosts[a].node_dev
    );
    assert!(json.contains(&lan), "{lan} not in {json}");
    assert!(json.contains(r#""ra":true}]"#), "{json}");

    // 2. rdisc6 sees the advertisement: prefix with A and L, router
    // lifetime, MTU, the network as a route, the DNS server.
    let (ok, ra) = rdisc6(&m, a, "3");
    assert!(ok, "rdisc6 got no answer behind node 0: {ra}\n{}", m.logs());
    println!("rdisc6 behind node 0: {ra}");
    for want in [
        format!("Prefix : {pa}"),
        "On-link : Yes".into(),
        "Autonomous address conf.: Yes".into(),
        "Router lifetime : 1800".into(),
        "Router preference : low".into(),
        "MTU : 1500 bytes".into(),
        "Route : 2001:db8:42::/48".into(),
        format!("Recursive DNS server : {DNS}"),
    ] {
        assert!(ra.contains(&want), "rdisc6 lacks {want:?}: {ra}");
    }
    let (ok, rb) = rdisc6(&m, b, "3");
    assert!(ok && rb.contains(&format!("Prefix : {pb}")), "{rb}");
    assert!(!rb.contains("Recursive DNS server"), "{rb}");

    // 4. ra 0 behind node 1: the address is there, no advertisement.
    let node1 = m.nodes[1]
        .ns
        .ip(&format!("-6 addr show dev {}", m.hosts[c].node_dev));
    assert!(
        node1.contains(&format!("{}/64", m.nodes[1].address)),
        "{node1}"
    );
    let (ok, rc) = rdisc6(&m, c, "2");
    assert!(!ok, "an advertisement behind the ra=0 node: {rc}");
    assert!(m.hosts[c].slaac_address(&pc).is_none());

    // 5. Node 0 stops: its last advertisement withdraws the prefix.
    let before = m.hosts[a].routes();
    assert!(before.contains("default via fe80:"), "{before}");
    let mut p = m.nodes[0].proc.take().expect("running");
    assert_eq!(p.terminate(Duration::from_secs(5)), Some(0), "{}", m.logs());
    let stopped = Instant::now();
    let gone = wait_until(Duration::from_secs(5), || {
        let r = m.hosts[a].routes();
        !r.contains(&pa) && !r.contains("default") && m.hosts[a].slaac_address(&pa).is_none()
    });
    gone.unwrap_or_else(|| {
        panic!(
            "host A still uses the prefix after node 0 stopped:\n{}\n{:?}\n{}",
            m.hosts[a].routes(),
            m.hosts[a].addresses(),
            m.log_of(0)
        )
    });
    println!(
        "after node 0 stopped ({:.1} s): host A routes {:?}, addresses {:?}",
        stopped.elapsed().as_secs_f64(),
        m.hosts[a].routes().trim(),
        m.hosts[a].addresses()
    );
    assert!(!m.hosts[a].ns.ping6(&addr_b));
    let prefix: Ipv6Net = pa.parse().expect("prefix");
    let lan0 = m.nodes[0]
        .ns
        .ip(&format!("-6 addr show dev {}", m.hosts[a].node_dev));
    assert!(
        !lan0.contains(&prefix.host(1).to_string()),
        "node 0 left its LAN address: {lan0}"
    );
}

/// A /62 serves two LANs a /64 each (SLAAC on both, the rest of the /62
/// unreachable); a /68 (the registry's anonymous default) cannot do SLAAC:
/// the node warns, puts the /68 on its LAN and advertises nothing.
#[test]
fn prefix_lengths() {
    let mut m = Mesh::build(
        1,
        Options {
            anonymous_prefix_length: Some(14),
            ..Options::default()
        },
    );
    let (h0, h1) = (m.add_lan_host(0), m.add_lan_host(0));
    let p: Ipv6Net = m.nodes[0].prefix.parse().expect("prefix");
    assert_eq!(p.prefix_len(), 62);
    let first = Ipv6Net::new(p.addr(), 64).to_string();
    let second = Ipv6Net::new(p.host(1 << 64), 64).to_string();
    m.spawn_all();
    let both = wait_until(Duration::from_secs(30), || {
        m.hosts[h0].slaac_address(&first).is_some() && m.hosts[h1].slaac_address(&second).is_some()
    });
    both.unwrap_or_else(|| {
        panic!(
            "{first} / {second}: {:?} {:?}\n{}",
            m.hosts[h0].addresses(),
            m.hosts[h1].addresses(),
            m.logs()
        )
    });
    let to = m.hosts[h1].slaac_address(&second).expect("h1");
    let routed = wait_until(Duration::from_secs(10), || m.hosts[h0].ns.ping6(&to));
    assert!(
        routed.is_some(),
        "LAN to LAN through the node\n{}",
        m.logs()
    );
    let routes = m.nodes[0].ns.ip("-6 route show");
    assert!(routes.contains(&format!("unreachable {p}")), "{routes}");

    let mut m = Mesh::build(1, Options::default());
    let h = m.add_lan_host(0);
    let p: Ipv6Net = m.nodes[0].prefix.parse().expect("prefix");
    assert_eq!(p.prefix_len(), 68);
    m.spawn_all();
    let dev = m.hosts[h].node_dev.clone();
    let on_link = format!("{}/68", p.host(1));
    let configured = wait_until(Duration::from_secs(10), || {
        m.nodes[0]
            .ns
            .ip(&format!("-6 addr show dev {dev}"))
            .contains(&on_link)
    });
    assert!(configured.is_some(), "{}", m.logs());
    assert!(
        m.log_of(0).contains("longer than /64"),
        "no warning: {}",
        m.log_of(0)
    );
    let (ok, out) = rdisc6(&m, h, "2");
    assert!(!ok, "advertised a /68: {out}");
}

/// Not fighting another router: when a router on the LAN (here a raw
/// socket in the host's namespace) advertises the node's /64, the node
/// goes quiet there.
#[test]
fn another_router_for_the_prefix_silences_the_node() {
    use node_lite::lan::wire::{PrefixInfo, RouterAdvert};

    let mut m = Mesh::build(1, options());
    let h = m.add_lan_host(0);
    let p = m.nodes[0].prefix.clone();
    m.spawn_all();
    let up = wait_until(Duration::from_secs(30), || {
        m.hosts[h].slaac_address(&p).is_some()
    });
    assert!(up.is_some(), "{}", m.logs());
    let mut ra = RouterAdvert::empty();
    ra.router_lifetime = 600;
    ra.prefixes.push(PrefixInfo {
        prefix: p.parse().expect("prefix"),
        on_link: true,
        autonomous: true,
        valid_lifetime: 600,
        preferred_lifetime: 600,
    });
    let mut buf = [0u8; 128];
    let n = ra.emit(&mut buf).expect("fits");
    let hex: String = buf[..n].iter().map(|b| format!("{b:02x}")).collect();
    // The kernel fills in the ICMPv6 checksum of a raw ICMPv6 socket.
    let send = "import socket, sys\n\
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)\n\
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)\n\
        s.sendto(bytes.fromhex(sys.argv[1]), ('ff02::1', 0, 0, socket.if_nametoindex(sys.argv[2])))\n";
    let dev = m.hosts[h].dev.clone();
    let out = m.hosts[h].ns.output("python3", &["-c", send, &hex, &dev]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let quiet = wait_until(Duration::from_secs(5), || {
        m.log_of(0).contains("another router advertises here")
    });
    assert!(quiet.is_some(), "no conflict seen: {}", m.log_of(0));
    let (ok, text) = rdisc6(&m, h, "2");
    assert!(!ok, "the node still advertises: {text}");
}
