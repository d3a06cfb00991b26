//! The node as a whole: ten nodes, each in its own namespace on one IPv4
//! bridge, registered with the real registry. The random mesh forms from a
//! single bootstrap address, every node reaches every other, tunnels are
//! refreshed without breaking a running ping, a dead node is routed
//! around, and a node restarted with the registry gone rejoins from its
//! peer cache. Tunnel peers exchange the network version. Figures (time to full reachability, re-route time, RSS,
//! control traffic) are printed for the issue note.

use std::time::{Duration, Instant};

use re6st_integration::mesh::Mesh;
use re6st_integration::netns::wait_until;
use re6st_integration::registry::Options;

const N: usize = 10;
/// re6st's parameters, scaled down so the test takes minutes: 2 s hellos,
/// 3 client tunnels (6 accepted), a tunnel refresh every 10 s.
fn options() -> Options {
    let extra = [
        "--hello",
        "2",
        "--client-count",
        "3",
        "--max-clients",
        "6",
        "--tunnel-refresh",
        "10",
    ];
    Options {
        extra: extra.iter().map(|s| s.to_string()).collect(),
        ..Options::default()
    }
}

#[test]
fn ten_node_mesh() {
    let mut m = Mesh::start(N, options());
    let started = Instant::now();
    let all: Vec<usize> = (0..N).collect();

    // 1. Full reachability from one bootstrap address.
    let full = wait_until(Duration::from_secs(90), || m.all_ping(&all));
    let full = full
        .unwrap_or_else(|| panic!("unreachable: {:?}\n{}", m.unreachable_pairs(&all), m.logs()));
    println!(
        "full reachability ({} pairs) {:.1} s after start",
        N * (N - 1),
        started.elapsed().as_secs_f64()
    );
    let _ = full;
    for i in 0..N {
        let t = m.tunnels_up(i);
        // client_count 3 + at most 6 accepted; at least one.
        assert!(
            (1..=9).contains(&t),
            "node {i} has {t} tunnels\n{}",
            m.status_text(i)
        );
    }
    // Each new tunnel's peers tell each other the network version (they
    // all have the registry's, from registration).
    let silent: Vec<usize> = (0..N)
        .filter(|&i| !m.log_of(i).contains("(ours too)"))
        .collect();
    assert!(
        silent.is_empty(),
        "no network version heard by {silent:?}\n{}",
        m.logs()
    );
    println!("node 0 status:\n{}", m.status_text(0));
    let json = m.status_json(1);
    for key in [
        "\"prefix\":",
        "\"tunnels\":",
        "\"babel\":",
        "\"neighbours\":",
        "\"routes\":",
        "\"peer_cache\":",
        "\"rtt_ms\":",
        "\"stats\":",
    ] {
        assert!(json.contains(key), "status JSON lacks {key}: {json}");
    }
    // An honest 10-node network fills no table and has no route refused.
    for i in 0..N {
        assert_eq!(m.status_number(i, "\"table_full\":"), Some(0));
        assert_eq!(m.status_number(i, "\"origins_rejected\":"), Some(0));
    }

    // 2. Figures in steady state (after the start-up burst of handshakes,
    // dumps and the mesh filling to client_count): memory and control
    // traffic per node.
    std::thread::sleep(Duration::from_secs(10));
    let rss: Vec<u64> = (0..N).filter_map(|i| m.rss_kib(i)).collect();
    let before: Vec<u64> = (0..N).map(|i| m.underlay_tx_bytes(i)).collect();
    std::thread::sleep(Duration::from_secs(10));
    let after: Vec<u64> = (0..N).map(|i| m.underlay_tx_bytes(i)).collect();
    let per_s: Vec<u64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (a - b) / 10)
        .collect();
    println!(
        "RSS per node: max {} KiB, mean {} KiB; control traffic per node: mean {} B/s, max {} B/s",
        rss.iter().max().unwrap_or(&0),
        rss.iter().sum::<u64>() / rss.len().max(1) as u64,
        per_s.iter().sum::<u64>() / N as u64,
        per_s.iter().max().unwrap_or(&0)
    );

    // 3. Refresh: over 40 s (4 refreshes), a continuous ping between two
    // nodes loses at most a few packets, and tunnels were replaced.
    let ping = m.nodes[3].ns.output(
        "ping",
        &[
            "-6",
            "-n",
            "-q",
            "-i",
            "0.2",
            "-w",
            "40",
            "-W",
            "1",
            &m.nodes[8].address,
        ],
    );
    let text = String::from_utf8_lossy(&ping.stdout);
    let summary = text
        .lines()
        .find(|l| l.contains("packet loss"))
        .unwrap_or("")
        .to_string();
    println!("ping across refreshes: {summary}");
    let (sent, received) = counts(&summary);
    assert!(sent >= 150, "{text}");
    assert!(
        sent - received <= 5,
        "lost {} of {sent} during refreshes\n{}",
        sent - received,
        m.logs()
    );
    let refreshed = (0..N)
        .filter(|&i| m.log_of(i).contains("refresh, draining"))
        .count();
    assert!(
        refreshed >= N / 2,
        "only {refreshed} nodes refreshed a tunnel\n{}",
        m.logs()
    );

    // 4. Kill node 0 (everyone's bootstrap peer, so it carries traffic):
    // the others route around it.
    m.kill(0);
    let killed = Instant::now();
    let rest: Vec<usize> = (1..N).collect();
    let rerouted = wait_until(Duration::from_secs(60), || m.all_ping(&rest));
    let rerouted = rerouted.unwrap_or_else(|| {
        panic!(
            "after node 0 died: {:?}\n{}",
            m.unreachable_pairs(&rest),
            m.logs()
        )
    });
    println!(
        "re-routed around the dead node {:.1} s after SIGKILL ({rerouted:?} to check)",
        killed.elapsed().as_secs_f64()
    );

    // 5. Registry gone, node 5 restarted with no bootstrap address: it
    // rejoins from its peer cache.
    m.registry.stop();
    let mut p = m.nodes[5].proc.take().expect("running");
    assert_eq!(p.terminate(Duration::from_secs(5)), Some(0), "{}", m.logs());
    assert!(
        m.nodes[5].dir.join("peers.cache").is_file(),
        "no peer cache written"
    );
    m.spawn(5, &[]);
    let back = Instant::now();
    let rejoined = wait_until(Duration::from_secs(60), || {
        rest.iter().filter(|&&j| j != 5).all(|&j| m.ping(5, j))
    });
    if rejoined.is_none() {
        let lost: Vec<usize> = rest
            .iter()
            .copied()
            .filter(|&j| j != 5 && !m.ping(5, j))
            .collect();
        let far = lost.first().map_or(String::new(), |&j| m.status_text(j));
        panic!(
            "node 5 did not rejoin from its cache: no ping to {lost:?}\n{}\n{far}\n{}",
            m.status_text(5),
            m.logs()
        );
    }
    println!(
        "node 5 rejoined from its peer cache {:.1} s after restart",
        back.elapsed().as_secs_f64()
    );
}

/// (transmitted, received) from ping's summary line.
fn counts(summary: &str) -> (u64, u64) {
    let nums: Vec<u64> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(2)
        .filter_map(|s| s.parse().ok())
        .collect();
    (
        nums.first().copied().unwrap_or(0),
        nums.get(1).copied().unwrap_or(0),
    )
}
