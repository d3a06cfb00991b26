//! Prefix hijacking by a member (issue 19, origin checks). A member of the
//! network (a real certificate from the registry) opens a tunnel to node N
//! and runs a Babel engine that originates, besides its own prefix, node
//! V's prefix, a more specific /80 of it, and a prefix outside the network.
//! N takes the member's own prefix and refuses the other three (counted in
//! `status` as `origins_rejected`); N's route to V stays through V's own
//! tunnel, and N keeps reaching V.

use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::{Duration, Instant as StdInstant};

use node_lite::babel::wire::{Prefix as BabelPrefix, RouterId};
use node_lite::babel::{Engine, EngineConfig, LinkConfig, LinkKind};
use node_lite::ip::Udp;
use node_lite::time::Instant;
use re6st_integration::adversary::{Seen, TunnelPeer};
use re6st_integration::mesh::Mesh;
use re6st_integration::netns::wait_until;
use re6st_integration::registry::{identity, Options};

const BABEL_PORT: u16 = 6696;

fn prefix(cidr: &str) -> BabelPrefix {
    let (a, l) = cidr.split_once('/').unwrap();
    BabelPrefix::from_addr(a.parse().unwrap(), l.parse().unwrap())
}

/// N's installed route for `cidr`, as its status shows it: the tunnel id.
fn route_tunnel(json: &str, cidr: &str) -> Option<String> {
    let key = format!("{{\"prefix\":\"{cidr}\",\"from\":\"::/0\"");
    let r = &json[json.find(&key)?..];
    let t = &r[r.find("\"tunnel\":")? + 9..];
    Some(t[..t.find([',', '}'])?].to_string())
}

#[test]
fn a_member_cannot_originate_anothers_prefix() {
    let mut m = Mesh::build(3, Options::default());
    let (n, v, x) = (0, 1, 2);
    let n_at = format!("{}:1194", m.nodes[n].ip);
    m.spawn(n, &[]);
    m.spawn(v, std::slice::from_ref(&n_at));
    let up = wait_until(Duration::from_secs(30), || m.ping(n, v));
    assert!(up.is_some(), "{}", m.logs());

    // The member: node x's registered identity, never run as a node.
    let dir = &m.nodes[x].dir;
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let mut peer = TunnelPeer::new(
        &m.nodes[x].ns,
        format!("{}:1194", m.nodes[x].ip).parse().unwrap(),
        &read("ca.crt"),
        &read("cert.crt"),
        &read("cert.key"),
    );
    let tid = peer.connect(n_at.parse().unwrap());
    assert!(peer.run(Duration::from_secs(10), |s| matches!(
        s,
        Seen::Event(node_lite::tunnel::Event::Established { .. })
    )));
    let own = m.nodes[x].prefix.clone();
    let victim = m.nodes[v].prefix.clone();
    let v_addr: Ipv6Addr = identity(&m.nodes[v].dir).subnet.address();
    let more_specific = format!("{}/80", v_addr);
    let outside = "2001:db8:ffff::/48".to_string();

    let local: Ipv6Addr = "fe80::bad".parse().unwrap();
    let start = StdInstant::now();
    let now = || Instant::from_millis(1000 + start.elapsed().as_millis() as u64);
    // A member knows the network's Babel MAC keys (its network config).
    let x_id = identity(dir);
    let netconf = registry_client::state::StateDir::new(dir)
        .network_config(&x_id)
        .unwrap()
        .expect("the member's network config");
    let set = node_lite::node::settings::settings(
        &node_lite::config::Config::default(),
        Some(&netconf),
        local,
    );
    let mut ecfg = EngineConfig::new(RouterId([0xba, 0xd, 0, 0, 0, 0, 0, 1]), 7);
    ecfg.mac = set.mac;
    let mut engine = Engine::new(ecfg, now());
    let link = engine
        .add_link(
            now(),
            LinkConfig::new(LinkKind::Tunnel, local).with_hello_interval_ms(1000),
        )
        .unwrap();
    for p in [&own, &victim, &more_specific, &outside] {
        engine.originate(now(), prefix(p), BabelPrefix::DEFAULT);
    }
    let json = || m.status_json(n);
    let rejected = || {
        let j = json();
        let k = "\"origins_rejected\":";
        j.find(k).and_then(|i| {
            let r = &j[i + k.len()..];
            r[..r.find(|c: char| !c.is_ascii_digit())?]
                .parse::<u64>()
                .ok()
        })
    };
    let before = rejected().unwrap_or(0);
    let mut buf = vec![0u8; 1500];
    let mut pkt = vec![0u8; 1600];
    let mut seen = 0;
    let deadline = StdInstant::now() + Duration::from_secs(25);
    let mut own_routed = false;
    while StdInstant::now() < deadline && !own_routed {
        peer.run(Duration::from_millis(50), |_| false);
        for s in &peer.seen[seen..] {
            if let Seen::Packet(_, p) = s {
                if let Some(u) = Udp::parse(p).filter(|u| u.dst_port == BABEL_PORT) {
                    let from = SocketAddrV6::new(u.src, u.src_port, 0, 0);
                    engine.handle_packet(now(), link, from, u.dst, u.payload);
                }
            }
        }
        seen = peer.seen.len();
        engine.handle_timeout(now());
        while let Some(tx) = engine.poll_transmit(now(), &mut buf) {
            let u = Udp {
                src: local,
                dst: tx.dst,
                src_port: BABEL_PORT,
                dst_port: BABEL_PORT,
                hop_limit: 1,
                payload: &buf[..tx.len],
            };
            if let Some(len) = u.write(&mut pkt) {
                let _ = peer.send(tid, &pkt[..len]);
            }
        }
        own_routed = route_tunnel(&json(), &own).is_some();
    }
    let j = json();
    assert!(own_routed, "the member's own prefix was not taken:\n{j}");
    let via_member = route_tunnel(&j, &own).unwrap();
    assert_ne!(
        route_tunnel(&j, &victim),
        Some(via_member),
        "V's prefix hijacked:\n{j}"
    );
    assert!(route_tunnel(&j, &victim).is_some(), "no route to V:\n{j}");
    assert_eq!(
        route_tunnel(&j, &more_specific),
        None,
        "the /80 was taken:\n{j}"
    );
    assert_eq!(
        route_tunnel(&j, &outside),
        None,
        "the outside prefix was taken:\n{j}"
    );
    let after = rejected().unwrap_or(0);
    assert!(after >= before + 3, "origins_rejected {before} -> {after}");
    assert!(m.ping(n, v), "N no longer reaches V");
    println!("origins_rejected {before} -> {after}; N routes V's prefix through its own tunnel");
}
