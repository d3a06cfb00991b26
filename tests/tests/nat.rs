//! Behind NAT (issue 16), with real NATs: nftables masquerade in router
//! namespaces and the real miniupnpd (see `re6st_integration::nat`).
//!
//! `nat_matrix`: two public nodes, two nodes behind cone NATs (one of them
//! with a second node behind the same NAT), two behind symmetric NATs, one
//! behind miniupnpd (PCP) and one behind a UPnP-IGD-only miniupnpd. Every
//! node but the first is given the first as its only peer; the mesh does
//! the rest. For each pair: did a direct tunnel form, of which kind, how
//! long after start; then everyone must reach everyone over the overlay.
//!
//! `gateway_reboot`: a node behind miniupnpd holds a mapping; the gateway
//! reboots (miniupnpd restarted, its rules and leases gone); the node puts
//! the mapping back, an outside node that only knows the mapped address
//! reaches it, and at stop the node deletes the mapping.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use re6st_integration::mesh::Mesh;
use re6st_integration::nat::{Kind, Lab};
use re6st_integration::netns::wait_until;
use re6st_integration::registry::Options;

/// The tunnels up in a `status --json`: (peer prefix, kind).
fn tunnels(json: &str) -> Vec<(String, String)> {
    let Some(start) = json.find("\"tunnels\":[") else {
        return Vec::new();
    };
    let field = |chunk: &str, key: &str| {
        let k = format!("\"{key}\":\"");
        let i = chunk.find(&k)? + k.len();
        Some(chunk[i..i + chunk[i..].find('"')?].to_string())
    };
    json[start..]
        .split("{\"id\":")
        .skip(1)
        .take_while(|c| !c.starts_with('[')) // the tunnels array only
        .filter(|c| field(c, "state").as_deref() == Some("up"))
        .filter_map(|c| Some((field(c, "peer")?, field(c, "kind")?)))
        .collect()
}

/// The text of `"key":{...}` in a JSON document (one level of nesting).
fn object<'a>(json: &'a str, key: &str) -> &'a str {
    let k = format!("\"{key}\":{{");
    let Some(i) = json.find(&k) else { return "" };
    let rest = &json[i + k.len()..];
    let mut depth = 1;
    for (j, c) in rest.char_indices() {
        depth += match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        };
        if depth == 0 {
            return &rest[..j];
        }
    }
    rest
}

#[test]
fn nat_matrix() {
    let mut m = Mesh::build(2, Options::default());
    let mut lab = Lab::new(&m);
    let cone_a = lab.router(&m, Kind::Cone);
    let cone_b = lab.router(&m, Kind::Cone);
    let sym_a = lab.router(&m, Kind::Symmetric);
    let sym_b = lab.router(&m, Kind::Symmetric);
    let upnp_a = lab.router(&m, Kind::Upnp(false));
    let upnp_b = lab.router(&m, Kind::Upnp(true));
    let mut names = vec!["public1", "public2"];
    for (r, name) in [
        (cone_a, "cone1"),
        (cone_a, "cone1b"),
        (cone_b, "cone2"),
        (sym_a, "sym1"),
        (sym_b, "sym2"),
        (upnp_a, "pcp"),
        (upnp_b, "upnp"),
    ] {
        lab.node_behind(&mut m, r);
        names.push(name);
    }
    let n = m.nodes.len();
    let public1 = format!("{}:1194", m.nodes[0].ip);
    let t0 = Instant::now();
    m.spawn(0, &[]);
    for i in 1..n {
        m.spawn(i, std::slice::from_ref(&public1));
    }
    // Which pairs the NATs let meet directly: all but those with a
    // symmetric NAT on one side and no mapping or public address on the
    // other.
    let class = |i: usize| names[i].trim_end_matches(|c: char| c.is_ascii_digit() || c == 'b');
    let expect_direct = |a: usize, b: usize| {
        let (x, y) = (class(a), class(b));
        !((x == "sym" || y == "sym") && matches!((x, y), ("sym" | "cone", "sym" | "cone")))
    };
    let prefix_of: HashMap<String, usize> =
        (0..n).map(|i| (m.nodes[i].prefix.clone(), i)).collect();
    let mut first: HashMap<(usize, usize), (Duration, String)> = HashMap::new();
    let done = wait_until(Duration::from_secs(150), || {
        for i in 0..n {
            for (peer, kind) in tunnels(&m.status_json(i)) {
                let Some(&j) = prefix_of.get(&peer) else {
                    continue;
                };
                let key = (i.min(j), i.max(j));
                let e = first
                    .entry(key)
                    .or_insert_with(|| (t0.elapsed(), kind.clone()));
                if kind != "direct" && e.1 == "direct" {
                    e.1 = kind; // either side may know it was punched or mapped
                }
            }
        }
        (0..n).all(|a| (a + 1..n).all(|b| !expect_direct(a, b) || first.contains_key(&(a, b))))
    });
    // The NATs that cannot be punched: a few more seconds must not
    // bring a tunnel either.
    std::thread::sleep(Duration::from_secs(5));
    let unreachable = m.unreachable_pairs(&(0..n).collect::<Vec<_>>());
    let mut table = String::from("pair                  tunnel     kind      after\n");
    for a in 0..n {
        for b in a + 1..n {
            let row = match first.get(&(a, b)) {
                Some((t, kind)) => format!("direct     {kind:<9} {:.1} s", t.as_secs_f64()),
                None => "relayed    -         -".into(),
            };
            table += &format!("{:<21} {row}\n", format!("{}-{}", names[a], names[b]));
        }
    }
    let nat: Vec<String> = (0..n)
        .map(|i| format!("{:<8} {}", names[i], object(&m.status_json(i), "nat")))
        .collect();
    println!("{table}\n{}", nat.join("\n"));
    assert!(
        done.is_some(),
        "direct tunnels missing:\n{table}\n{}",
        m.logs()
    );
    for a in 0..n {
        for b in a + 1..n {
            assert_eq!(
                first.contains_key(&(a, b)),
                expect_direct(a, b),
                "{}-{}:\n{table}",
                names[a],
                names[b]
            );
        }
    }
    assert!(
        unreachable.is_empty(),
        "over the overlay: {unreachable:?}\n{table}"
    );
    // What each node knows of its NAT.
    let situation = |i: usize| {
        m.status_json(i)
            .contains(&format!("\"situation\":\"{}\"", "public"))
    };
    assert!(situation(0) && situation(1));
    for (i, proto) in [(7, "pcp"), (8, "upnp")] {
        let nat = object(&m.status_json(i), "nat").to_string();
        assert!(
            nat.contains(&format!("\"protocol\":\"{proto}\"")),
            "{}: {nat}",
            names[i]
        );
    }
    for (i, name) in names.iter().enumerate().skip(2) {
        // A cone NAT seen by one peer only is just "nat"; a LAN peer's
        // view (cone1 and cone1b see each other's LAN address) must not
        // make a node think it is public.
        let want: &[&str] = if class(i) == "sym" {
            &["symmetric"]
        } else {
            &["cone", "nat"]
        };
        let nat = object(&m.status_json(i), "nat").to_string();
        assert!(
            want.iter()
                .any(|w| nat.contains(&format!("\"situation\":\"{w}\""))),
            "{name}: {nat}"
        );
    }
}

#[test]
fn gateway_reboot() {
    let mut m = Mesh::build(1, Options::default());
    let mut lab = Lab::new(&m);
    let r = lab.router(&m, Kind::Upnp(false));
    let node = lab.node_behind(&mut m, r);
    let public = format!("{}:1194", m.nodes[0].ip);
    m.spawn(0, &[]);
    m.spawn(node, &[public]);
    let mapped = || {
        let nat = object(&m.status_json(node), "nat").to_string();
        let k = "\"protocol\":\"pcp\",\"external\":\"";
        nat.find(k).map(|i| {
            let rest = &nat[i + k.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
    };
    let got = wait_until(Duration::from_secs(30), || mapped().is_some());
    assert!(
        got.is_some(),
        "no mapping:\n{}\n{}",
        m.logs(),
        lab.routers[r].miniupnpd_log()
    );
    let external = mapped().unwrap();
    assert_eq!(lab.routers[r].forwardings().len(), 1);
    println!(
        "mapped {external} after {:.1} s",
        got.unwrap().as_secs_f64()
    );

    lab.routers[r].reboot();
    // miniupnpd announces its start (PCP ANNOUNCE to 224.0.0.1:5350): the
    // node maps again at once, not at its next renewal (30 s).
    let back = wait_until(Duration::from_secs(10), || {
        lab.routers[r].forwardings().len() == 1
    });
    assert!(back.is_some(), "mapping not put back:\n{}", m.log_of(node));
    let started = lab.routers[r].started.unwrap();
    println!(
        "mapping back {:.2} s after miniupnpd started again",
        started.elapsed().as_secs_f64()
    );
    assert!(
        m.log_of(node).contains("the gateway announced"),
        "{}",
        m.log_of(node)
    );

    // An outside node that only knows the mapped address.
    let outside = m.add_node(&m.registry.url());
    m.spawn(outside, std::slice::from_ref(&external));
    let prefix = m.nodes[node].prefix.clone();
    let reached = wait_until(Duration::from_secs(30), || {
        tunnels(&m.status_json(outside))
            .iter()
            .any(|(p, _)| *p == prefix)
    });
    assert!(
        reached.is_some(),
        "not reached at {external}:\n{}",
        m.logs()
    );
    // Babel's routes follow the tunnel within a few hellos.
    let pinged = wait_until(Duration::from_secs(20), || m.ping(outside, node));
    assert!(pinged.is_some(), "{}", m.logs());

    // Stop: the mapping goes.
    if let Some(mut p) = m.nodes[node].proc.take() {
        p.terminate(Duration::from_secs(10));
    }
    let gone = wait_until(Duration::from_secs(5), || {
        lab.routers[r].forwardings().is_empty()
    });
    assert!(
        gone.is_some(),
        "mapping left at stop: {:?}",
        lab.routers[r].forwardings()
    );
}
