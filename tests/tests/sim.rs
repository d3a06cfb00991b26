//! The whole-network simulator in CI: whole `node::Node`s in one process,
//! virtual time, real cryptography (tests/src/sim). Small scenarios test
//! the node core in memory (what only the network-namespace tests covered
//! before); a 100-node network tests the mesh as a whole: full
//! reachability, a silent cut routed around, the registry down, 30 % of
//! the nodes killed.

use re6st_integration::sim::{Path, Pki, Sim};

const MIN: u64 = 60_000;

fn pki() -> Pki {
    Pki::new(1)
}

fn hops(sim: &Sim, a: usize, b: usize) -> Vec<usize> {
    match sim.path(a, b) {
        Path::Reached { hops, .. } => hops,
        Path::Lost { .. } => Vec::new(),
    }
}

/// Probes from `a` to `b` (real packets, sealed and opened at each hop):
/// how many of `n` arrived within 2 s.
fn probes(sim: &mut Sim, a: usize, b: usize, n: usize) -> usize {
    sim.arrived.clear();
    for _ in 0..n {
        sim.probe(a, b);
    }
    sim.run_until(sim.now + 2_000);
    sim.arrived.iter().filter(|&&x| x == (a, b)).count()
}

/// Tunnel up → Babel link → route → forwarding: two nodes find each other
/// through the registry, route each other's prefix, and packets pass; a
/// gateway's `::/0 from <network>` becomes a kernel route at the other.
#[test]
fn two_nodes_tunnel_route_and_forward_and_a_gateway_route_reaches_the_kernel() {
    let pki = pki();
    let mut sim = Sim::new(&pki, 2, 1, 0);
    let mut gateway = sim.config.clone();
    gateway.gateway = true;
    sim.configs.insert(0, gateway);
    let pairs = [(0, 1), (1, 0)];
    let t = sim.run_until_reached(&pairs, 1_000, 2 * MIN);
    assert!(t.is_some(), "no route between the two nodes in 2 minutes");
    assert_eq!(hops(&sim, 0, 1), vec![0, 1]);
    assert_eq!(probes(&mut sim, 0, 1, 5), 5);
    assert_eq!(probes(&mut sim, 1, 0, 5), 5);
    sim.run_until(sim.now + MIN);
    let default: Vec<_> = sim
        .kernel_routes(1)
        .into_iter()
        .filter(|(dst, _, _)| dst.prefix_len() == 0)
        .collect();
    assert_eq!(
        default.len(),
        1,
        "node 1's kernel routes: {:?}",
        sim.kernel_routes(1)
    );
    assert_eq!(default[0].1.to_string(), "2001:db8:42::/48");
    assert!(sim.kernel_routes(0).iter().all(|r| r.0.prefix_len() != 0));
}

/// The same scenario as `tests/tests/traceroute.rs` runs with real
/// processes: three nodes in a chain (the ends cannot reach each other on
/// the underlay). In both, the ends reach each other through the middle.
#[test]
fn a_chain_of_three_routes_through_the_middle_as_the_real_processes_do() {
    let pki = pki();
    let mut sim = Sim::new(&pki, 3, 2, 0);
    sim.underlay.set_cut(0, 2, true);
    let pairs = [(0, 2), (2, 0), (0, 1), (1, 2)];
    assert!(sim.run_until_reached(&pairs, 1_000, 5 * MIN).is_some());
    assert_eq!(hops(&sim, 0, 2), vec![0, 1, 2]);
    assert_eq!(hops(&sim, 2, 0), vec![2, 1, 0]);
    assert_eq!(probes(&mut sim, 0, 2, 5), 5);
}

/// A new network version (the registry revokes node 3) reaches one node
/// by a refresh (SIGHUP), the others by version gossip over the tunnels:
/// every node fetches the config, closes its tunnel to node 3 and routes
/// to it no more, and node 3 stays cut off.
#[test]
fn a_revocation_spreads_by_version_gossip_and_cuts_the_node_off() {
    let pki = pki();
    let n = 6;
    let mut sim = Sim::new(&pki, n, 3, 5_000);
    let all = sim.pairs(usize::MAX);
    assert!(sim.run_until_reached(&all, 5_000, 10 * MIN).is_some());
    sim.network_config = Some(pki.network_config(2, &[Pki::serial(3)]));
    sim.refresh(0);
    let others: Vec<(usize, usize)> = all
        .iter()
        .copied()
        .filter(|&(a, b)| a != 3 && b != 3)
        .collect();
    let deadline = sim.now + 5 * MIN;
    loop {
        let cut_off = (0..n).filter(|&i| i != 3).all(|i| {
            matches!(sim.path(i, 3), Path::Lost { .. })
                && sim
                    .node(i)
                    .is_some_and(|c| c.tunnels().all(|(_, s)| !s.contains(sim.address(3))))
        });
        if cut_off || sim.now >= deadline {
            assert!(cut_off, "node 3 still reachable or a tunnel to it still up");
            break;
        }
        sim.run_until(sim.now + 1_000);
    }
    for i in (0..n).filter(|&i| i != 3) {
        let v = sim
            .node(i)
            .unwrap()
            .status(node_lite::time::Instant::from_millis(sim.now));
        assert_eq!(v.network_config_version, Some(2), "node {i}");
    }
    // Refused ever after; the rest of the network stays whole.
    sim.run_until(sim.now + 5 * MIN);
    assert!((0..n)
        .filter(|&i| i != 3)
        .all(|i| matches!(sim.path(i, 3), Path::Lost { .. })));
    assert_eq!(sim.reached(&others), others.len());
}

/// 100 nodes, started within 10 s, found through the registry: every node
/// reaches every other; then a silent cut of a direct link that carries
/// traffic is routed around; the registry goes down for 15 minutes (three
/// tunnel refreshes) and the mesh holds; 30 % of the nodes die and the
/// rest reconnect.
#[test]
fn a_hundred_nodes() {
    let pki = pki();
    let n = 100;
    let mut sim = Sim::new(&pki, n, 4, 10_000);
    let all = sim.pairs(usize::MAX);
    let Some(t) = sim.run_until_reached(&all, 10_000, 30 * MIN) else {
        let lost: Vec<String> = all
            .iter()
            .filter(|&&(a, b)| matches!(sim.path(a, b), Path::Lost { .. }))
            .take(10)
            .map(|&(a, b)| format!("{a} -> {b}: {}", sim.explain(a, b)))
            .collect();
        panic!(
            "100 nodes did not all reach each other in 30 minutes:\n{}",
            lost.join("\n")
        );
    };
    eprintln!("100 nodes: full reachability after {} s", t / 1000);
    for (a, b) in [(0, 99), (42, 7), (63, 18)] {
        assert_eq!(probes(&mut sim, a, b, 3), 3, "probes {a} -> {b}");
    }

    // A silent cut of a link that carries traffic.
    let (a, b) = (0..n)
        .flat_map(|a| (0..n).map(move |b| (a, b)))
        .find(|&(a, b)| a < b && hops(&sim, a, b) == vec![a, b] && hops(&sim, b, a) == vec![b, a])
        .expect("a pair routed over its direct tunnel");
    sim.underlay.set_cut(a, b, true);
    let cut_at = sim.now;
    let healed = sim.run_until_reached(&[(a, b), (b, a)], 1_000, cut_at + 5 * MIN);
    let healed = healed.expect("the cut link was not routed around in 5 minutes");
    eprintln!(
        "cut {a}-{b}: routed around after {} s, via {:?}",
        (healed - cut_at) / 1000,
        hops(&sim, a, b)
    );
    assert_eq!(probes(&mut sim, a, b, 3), 3);

    // The registry down: the mesh lives on (tunnels are refreshed from the
    // peer cache and the routes).
    sim.registry_up = false;
    let mut worst = all.len();
    let end = sim.now + 15 * MIN;
    while sim.now < end {
        sim.run_until(sim.now + 30_000);
        worst = worst.min(sim.reached(&all));
    }
    eprintln!(
        "registry down 15 min: at worst {worst} of {} pairs reached",
        all.len()
    );
    assert_eq!(
        sim.reached(&all),
        all.len(),
        "pairs lost with the registry down"
    );
    assert!(
        worst * 100 >= all.len() * 99,
        "{worst} of {} at worst",
        all.len()
    );
    sim.registry_up = true;

    // 30 % of the nodes die at once (not node 0, the registry's own).
    for i in (0..n).filter(|i| (1..=3).contains(&(i % 10))) {
        sim.kill(i);
    }
    let live = sim.pairs(usize::MAX);
    let killed_at = sim.now;
    let back = sim.run_until_reached(&live, 5_000, killed_at + 15 * MIN);
    let back = back.expect("the 70 survivors did not reconnect in 15 minutes");
    eprintln!(
        "30 nodes killed: the rest reconnected after {} s",
        (back - killed_at) / 1000
    );
}
