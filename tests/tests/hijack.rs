//! Prefix hijacking by a member (issue 19, origin checks). A member of the
//! network (a real certificate from the registry) opens a tunnel to node N
//! and runs a Babel engine that originates, besides its own prefix, node
//! V's prefix, a more specific /80 of it, and a prefix outside the network.
//! N takes the member's own prefix and refuses the other three (counted in
//! `status` as `origins_rejected`); N's route to V stays through V's own
//! tunnel, and N keeps reaching V.

use std::net::Ipv6Addr;
use std::time::{Duration, Instant as StdInstant};

use node_lite::babel::wire::Prefix as BabelPrefix;
use re6st_integration::adversary::BabelMember;
use re6st_integration::mesh::{route_via, Mesh};
use re6st_integration::netns::wait_until;
use re6st_integration::registry::{identity, Options};

fn prefix(cidr: &str) -> BabelPrefix {
    let (a, l) = cidr.split_once('/').unwrap();
    BabelPrefix::from_addr(a.parse().unwrap(), l.parse().unwrap())
}

/// N's installed route for `cidr`: the tunnel it goes through.
fn route_tunnel(json: &str, cidr: &str) -> Option<u32> {
    route_via(json, cidr).map(|(id, _)| id)
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
    let mut member = BabelMember::connect(
        &m.nodes[x].ns,
        format!("{}:1194", m.nodes[x].ip).parse().unwrap(),
        &m.nodes[x].dir,
        n_at.parse().unwrap(),
        64,
    );
    let own = m.nodes[x].prefix.clone();
    let victim = m.nodes[v].prefix.clone();
    let v_addr: Ipv6Addr = identity(&m.nodes[v].dir).subnet.address();
    let more_specific = format!("{}/80", v_addr);
    let outside = "2001:db8:ffff::/48".to_string();
    let now = member.now();
    for p in [&own, &victim, &more_specific, &outside] {
        member
            .engine
            .originate(now, prefix(p), BabelPrefix::DEFAULT);
    }
    let json = || m.status_json(n);
    let rejected = || m.status_number(n, "\"origins_rejected\":");
    let before = rejected().unwrap_or(0);
    let deadline = StdInstant::now() + Duration::from_secs(25);
    let mut own_routed = false;
    while StdInstant::now() < deadline && !own_routed {
        member.pump(Duration::from_millis(100));
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
