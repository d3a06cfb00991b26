//! The mesh manager's policy, tick by tick.

use super::*;

fn pfx(v: u128) -> Prefix {
    Prefix::new(v, 16).unwrap()
}

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, n], 1194))
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(1_000_000 + ms)
}

fn manager(bootstrap: Vec<SocketAddr>) -> Manager {
    Manager::new(Policy::new(4, 300, 15), pfx(1), bootstrap, t(0), 42)
}

fn connects(actions: &[Action]) -> Vec<(SocketAddr, Option<Prefix>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Connect { addr, prefix } => Some((*addr, *prefix)),
            _ => None,
        })
        .collect()
}

#[test]
fn bootstraps_from_configured_peers_then_grows_from_routes() {
    let mut cache = PeerCache::new(200);
    let mut m = manager(vec![addr(2)]);
    let a = m.tick(t(0), &[], &cache);
    assert!(a.contains(&Action::Bootstrap));
    assert_eq!(connects(&a), vec![(addr(2), None)]);
    m.connecting(t(0), 1, addr(2), None);
    assert_eq!(
        m.established(t(100), 1, Dir::Client, pfx(2), addr(2)),
        Vec::<TunnelId>::new()
    );
    // Not yet reachable from outside: 2 client tunnels at most.
    cache.learn(pfx(3), &[addr(3)]);
    let routes = [
        (pfx(2), Some(1)),
        (pfx(3), Some(1)),
        (pfx(4), Some(1)),
        (pfx(5), Some(1)),
    ];
    let a = m.tick(t(5000), &routes, &cache);
    assert_eq!(connects(&a), vec![(addr(3), Some(pfx(3)))]);
    assert!(!a.iter().any(|x| matches!(x, Action::RequestAddress(_))));
    m.connecting(t(5000), 2, addr(3), Some(pfx(3)));
    // Someone connects to us: the target becomes client_count (4).
    m.established(t(5100), 9, Dir::Server, pfx(7), addr(7));
    let a = m.tick(t(10_000), &routes, &cache);
    let mut asked: Vec<Action> = a
        .into_iter()
        .filter(|x| matches!(x, Action::RequestAddress(_)))
        .collect();
    asked.sort_by_key(|x| format!("{x:?}"));
    assert_eq!(
        asked,
        vec![
            Action::RequestAddress(pfx(4)),
            Action::RequestAddress(pfx(5))
        ]
    );
    // Asked again only after REQUEST_MS.
    let a = m.tick(t(15_000), &routes, &cache);
    assert!(!a.iter().any(|x| matches!(x, Action::RequestAddress(_))));
    cache.learn(pfx(4), &[addr(4)]);
    m.learned(t(16_000), pfx(4));
    let a = m.tick(t(16_000), &routes, &cache);
    assert_eq!(connects(&a), vec![(addr(4), Some(pfx(4)))]);
}

/// Bootstrap requests in one hour of a node that lacks tunnels and has no
/// candidate ([issue 20] item 5: every 30 s before, 120 an hour), with the
/// registry's node routed or not, every answer empty.
fn bootstraps_per_hour(registry_routed: bool) -> usize {
    let cache = PeerCache::new(200);
    let mut policy = Policy::new(4, 300, 15);
    policy.registry = Some(pfx(9));
    let mut m = Manager::new(policy, pfx(1), vec![], t(0), 42);
    m.connecting(t(0), 1, addr(2), Some(pfx(2)));
    m.established(t(0), 1, Dir::Client, pfx(2), addr(2));
    // Pfx(3) is reached through pfx(2); the registry's node, when routed,
    // is a candidate whose address never comes.
    let mut routes = vec![(pfx(2), Some(1)), (pfx(3), Some(1))];
    m.established(t(0), 2, Dir::Server, pfx(3), addr(3));
    if registry_routed {
        routes.push((pfx(9), Some(1)));
    }
    (0..3600 / 5)
        .map(|i| {
            let asked = m
                .tick(t(i * 5000), &routes, &cache)
                .contains(&Action::Bootstrap);
            if asked {
                m.bootstrapped(None);
            }
            usize::from(asked)
        })
        .sum()
}

#[test]
fn bootstrap_requests_back_off_and_stop_while_the_registry_is_routed() {
    let disconnected = bootstraps_per_hour(false);
    assert!(
        (3..=8).contains(&disconnected),
        "{disconnected} requests an hour"
    );
    assert_eq!(bootstraps_per_hour(true), 0);
    // At start, with nothing routed, the first request goes out at once.
    let mut m = manager(vec![]);
    assert!(m
        .tick(t(0), &[], &PeerCache::new(200))
        .contains(&Action::Bootstrap));
}

/// Found by the simulator: two islands formed at start (the registry's
/// node in one) stayed apart, because a node of the other connected to
/// routed nodes of its own island before the peer the registry gave.
#[test]
fn the_registrys_bootstrap_peer_goes_before_routed_nodes() {
    let mut cache = PeerCache::new(200);
    let mut policy = Policy::new(2, 300, 15);
    policy.registry = Some(pfx(9));
    let mut m = Manager::new(policy, pfx(1), vec![], t(0), 42);
    m.established(t(0), 1, Dir::Server, pfx(7), addr(7));
    m.connecting(t(0), 2, addr(2), Some(pfx(2)));
    m.established(t(0), 2, Dir::Client, pfx(2), addr(2));
    // Our island: 2, 3, 4 (addresses known), no route to the registry.
    let routes = [
        (pfx(2), Some(2)),
        (pfx(3), Some(2)),
        (pfx(4), Some(2)),
        (pfx(7), Some(1)),
    ];
    cache.learn(pfx(3), &[addr(3)]);
    cache.learn(pfx(4), &[addr(4)]);
    assert!(m
        .tick(t(5000), &routes, &cache)
        .contains(&Action::Bootstrap));
    cache.learn(pfx(5), &[addr(5)]);
    m.bootstrapped(Some(pfx(5)));
    let a = m.tick(t(10_000), &routes, &cache);
    assert_eq!(connects(&a), vec![(addr(5), Some(pfx(5)))], "{a:?}");
}

/// Found by the simulator: an address learned from a node that fails
/// (a wrong port, a NAT) was asked for again at once, and the answer
/// woke the manager to ask again: 20 requests a second per node.
#[test]
fn a_learned_address_that_fails_is_not_asked_for_again_at_once() {
    let mut cache = PeerCache::new(200);
    let mut m = manager(vec![]);
    m.connecting(t(0), 1, addr(2), Some(pfx(2)));
    m.established(t(0), 1, Dir::Client, pfx(2), addr(2));
    m.established(t(0), 2, Dir::Server, pfx(7), addr(7));
    let routes = [(pfx(2), Some(1)), (pfx(3), Some(1)), (pfx(7), Some(2))];
    let asked = |a: &[Action]| a.contains(&Action::RequestAddress(pfx(3)));
    assert!(asked(&m.tick(t(5000), &routes, &cache)));
    cache.learn(pfx(3), &[addr(3)]);
    m.learned(t(5100), pfx(3));
    let a = m.tick(t(5100), &routes, &cache);
    assert_eq!(connects(&a), vec![(addr(3), Some(pfx(3)))]);
    m.connecting(t(5100), 3, addr(3), Some(pfx(3)));
    m.connect_failed(t(8000), 3, &mut cache);
    for ms in (10_000..5000 + REQUEST_MS).step_by(TICK_MS as usize) {
        let a = m.tick(t(ms), &routes, &cache);
        assert!(!asked(&a) && connects(&a).is_empty(), "at {ms} ms: {a:?}");
    }
    assert!(asked(&m.tick(t(5000 + REQUEST_MS), &routes, &cache)));
}

#[test]
fn failed_addresses_wait_before_a_retry() {
    let mut cache = PeerCache::new(200);
    let mut m = manager(vec![addr(2)]);
    assert_eq!(connects(&m.tick(t(0), &[], &cache)).len(), 1);
    m.connecting(t(0), 1, addr(2), None);
    m.connect_failed(t(3000), 1, &mut cache);
    assert!(connects(&m.tick(t(3000), &[], &cache)).is_empty());
    assert_eq!(connects(&m.tick(t(3000 + RETRY_MS), &[], &cache)).len(), 1);
    // A connection that never comes up is given up, and its address waits.
    m.connecting(t(3000 + RETRY_MS), 2, addr(2), None);
    let later = t(3000 + RETRY_MS + CONNECT_TIMEOUT_MS);
    let a = m.tick(later, &[], &cache);
    assert!(a.contains(&Action::Close(2)), "{a:?}");
    assert!(connects(&a).is_empty());
}

#[test]
fn refresh_drains_the_least_useful_client_then_closes_it() {
    let mut cache = PeerCache::new(200);
    let mut m = Manager::new(Policy::new(2, 10, 1), pfx(1), vec![], t(0), 7);
    for (id, p) in [(1, 2), (2, 3)] {
        m.connecting(t(0), id, addr(p as u8), Some(pfx(p)));
        m.established(t(0), id, Dir::Client, pfx(p), addr(p as u8));
    }
    // Tunnel 1 carries 3 routes, tunnel 2 only its own peer.
    let routes = [
        (pfx(2), Some(1)),
        (pfx(4), Some(1)),
        (pfx(5), Some(1)),
        (pfx(3), Some(2)),
    ];
    assert!(m.tick(t(5000), &routes, &cache).is_empty());
    let a = m.tick(t(10_000), &routes, &cache);
    assert!(a.contains(&Action::Drain(2)), "{a:?}");
    assert_eq!(m.tunnel(2).unwrap().state, State::Draining);
    // A replacement is opened at once (to a routed non-neighbour).
    cache.learn(pfx(4), &[addr(4)]);
    let a = m.tick(t(15_000), &routes, &cache);
    assert!(
        connects(&a).iter().any(|(_, p)| p == &Some(pfx(4)))
            || connects(&a).iter().any(|(_, p)| p == &Some(pfx(5)))
            || a.iter().any(|x| matches!(x, Action::RequestAddress(_))),
        "{a:?}"
    );
    // Still routed through it: kept; routes gone: closed.
    assert!(!m
        .tick(t(15_000), &routes, &cache)
        .contains(&Action::Close(2)));
    let moved = [
        (pfx(2), Some(1)),
        (pfx(4), Some(1)),
        (pfx(5), Some(1)),
        (pfx(3), Some(1)),
    ];
    assert!(m
        .tick(t(20_000), &moved, &cache)
        .contains(&Action::Close(2)));
    assert_eq!(m.tunnel(2).unwrap().state, State::Closing);
    m.closed(t(20_100), 2);
    assert!(m.tunnel(2).is_none());
}

#[test]
fn drain_times_out() {
    let cache = PeerCache::new(200);
    let mut m = Manager::new(Policy::new(1, 10, 1), pfx(1), vec![], t(0), 7);
    m.connecting(t(0), 1, addr(2), Some(pfx(2)));
    m.established(t(0), 1, Dir::Client, pfx(2), addr(2));
    let routes = [(pfx(2), Some(1))];
    assert!(m
        .tick(t(10_000), &routes, &cache)
        .contains(&Action::Drain(1)));
    assert!(!m
        .tick(t(15_000), &routes, &cache)
        .contains(&Action::Close(1)));
    assert!(m
        .tick(t(20_000), &routes, &cache)
        .contains(&Action::Close(1)));
}

#[test]
fn duplicate_tunnels_are_resolved_the_same_way_on_both_ends() {
    let _cache = PeerCache::new(200);
    // Node 1 (lower) and node 2 connect to each other at once.
    let mut low = Manager::new(Policy::new(4, 300, 15), pfx(1), vec![], t(0), 1);
    let mut high = Manager::new(Policy::new(4, 300, 15), pfx(2), vec![], t(0), 2);
    low.connecting(t(0), 1, addr(2), Some(pfx(2)));
    high.connecting(t(0), 1, addr(1), Some(pfx(1)));
    // Each sees its client tunnel, then the other's (server) one.
    assert_eq!(
        low.established(t(1), 1, Dir::Client, pfx(2), addr(2)),
        Vec::<TunnelId>::new()
    );
    assert_eq!(
        high.established(t(1), 1, Dir::Client, pfx(1), addr(1)),
        Vec::<TunnelId>::new()
    );
    // The lower node closes its client side; the higher keeps both and
    // loses the server side when the close arrives.
    assert_eq!(
        low.established(t(2), 2, Dir::Server, pfx(2), addr(2)),
        vec![1]
    );
    assert_eq!(
        high.established(t(2), 2, Dir::Server, pfx(1), addr(1)),
        Vec::<TunnelId>::new()
    );
    // In the other order on the low node, it still closes its client side.
    let mut low2 = Manager::new(Policy::new(4, 300, 15), pfx(1), vec![], t(0), 1);
    low2.established(t(1), 5, Dir::Server, pfx(2), addr(2));
    low2.connecting(t(1), 6, addr(2), Some(pfx(2)));
    assert_eq!(
        low2.established(t(2), 6, Dir::Client, pfx(2), addr(2)),
        vec![6]
    );
}

#[test]
fn cache_peers_are_used_when_routing_knows_nobody() {
    let mut cache = PeerCache::new(200);
    cache.learn(pfx(3), &[addr(3)]);
    cache.learn(pfx(1), &[addr(1)]); // ourselves: never
    let mut m = manager(vec![addr(9)]);
    let a = m.tick(t(0), &[], &cache);
    let c = connects(&a);
    assert_eq!(c[0], (addr(3), Some(pfx(3))));
    assert!(!c.iter().any(|(a, _)| *a == addr(1)));
}

#[test]
fn prefixes_compare_as_bit_strings() {
    let a = Prefix::from_bits("0001").unwrap();
    let b = Prefix::from_bits("01").unwrap();
    assert!(prefix_order(a) < prefix_order(b));
    assert!(
        prefix_order(Prefix::from_bits("0").unwrap())
            < prefix_order(Prefix::from_bits("00").unwrap())
    );
}

#[test]
fn punching_follows_who_asked_and_ends_the_other_attempts() {
    let mut cache = PeerCache::new(200);
    let mut m = manager(vec![]);
    let obs: SocketAddr = "198.51.100.9:40000".parse().unwrap();
    // Not connecting to node 3, not blocked: a reachable node ignores
    // an introduction (the other side connects directly).
    assert_eq!(m.punch_plan(pfx(3), &[obs], false), (vec![], Dir::Server));
    // Blocked behind a NAT: punch, counting it as the other side's.
    assert_eq!(
        m.punch_plan(pfx(3), &[obs, obs, addr(3)], true),
        (vec![obs, addr(3)], Dir::Server)
    );
    // We are connecting to it (our direct attempt at addr(3)): punch to
    // the other addresses, as the client.
    m.connecting(t(0), 1, addr(3), Some(pfx(3)));
    assert_eq!(
        m.punch_plan(pfx(3), &[addr(3), obs], false),
        (vec![obs], Dir::Client)
    );
    m.punching(t(0), 2, obs, pfx(3), Dir::Client);
    // The punch comes up first: the direct attempt is dropped without
    // counting as a failure of the node's addresses.
    assert_eq!(m.established(t(100), 2, Dir::Client, pfx(3), obs), vec![1]);
    m.connect_failed(t(100), 1, &mut cache);
    assert!(m.tunnel(1).is_none() && m.tunnel(2).is_some_and(|t| t.punched));
    // Up: no more punching to it.
    assert_eq!(m.punch_plan(pfx(3), &[addr(4)], true).0, vec![]);
    // At most MAX_PUNCHES at once on others' introductions.
    for n in 0..MAX_PUNCHES as u8 {
        let (to, dir) = m.punch_plan(pfx(10 + u128::from(n)), &[addr(10 + n)], true);
        m.punching(
            t(200),
            10 + u32::from(n),
            to[0],
            pfx(10 + u128::from(n)),
            dir,
        );
    }
    assert_eq!(m.punch_plan(pfx(30), &[addr(30)], true).0, vec![]);
}

#[test]
fn a_punched_tunnel_or_a_mapping_lifts_the_nat_cap() {
    let cache = PeerCache::new(200);
    let routes: Vec<(Prefix, Option<TunnelId>)> = (2..10).map(|n| (pfx(n), None)).collect();
    let wanted = |m: &mut Manager, at: u64| {
        let a = m.tick(t(at), &routes, &cache);
        // A slot is kept for the registry's bootstrap peer.
        a.iter()
            .filter(|a| matches!(a, Action::RequestAddress(_) | Action::Bootstrap))
            .count()
    };
    let mut m = manager(vec![]);
    assert_eq!(wanted(&mut m, 0), NAT_CLIENT_COUNT);
    let mut m2 = manager(vec![]);
    m2.set_mapped(true);
    assert_eq!(wanted(&mut m2, 0), 4);
    // A punched tunnel up is proof enough too; a punch is not "served".
    let mut m3 = manager(vec![]);
    m3.punching(t(0), 1, addr(5), pfx(5), Dir::Server);
    m3.established(t(10), 1, Dir::Server, pfx(5), addr(5));
    assert!(!m3.reachable());
    assert_eq!(wanted(&mut m3, 20), 4);
}
