//! Hostile datagrams against a live tunnel between two real nodes. Node B
//! connects to A through a UDP relay in a middle namespace, which both
//! nodes take for their peer; the relay records every datagram. The test
//! then re-sends, from the relay's address (as the peer would), replayed,
//! truncated and bit-flipped copies of real datagrams, and the relay
//! delivers live traffic reordered. Every injected copy is dropped (the
//! nodes' debug logs name each drop), nothing is delivered twice, and the
//! tunnel keeps working: a ping running through the attack loses nothing,
//! and the tunnel is never re-established.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use re6st_integration::adversary::{Dir, UdpProxy};
use re6st_integration::netns::{veth, wait_until, Netns};
use re6st_integration::registry::{
    identity, node_bin, register_anonymous, Options, Registry, TempDir,
};

const PORT: u16 = 1194;

/// Lines of `log` about dropped datagrams that contain `what`.
fn drops(log: &str, what: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("datagram from") && l.contains(what))
        .count()
}

/// The data datagrams (type 5) of a capture.
fn data(captured: &[Vec<u8>]) -> Vec<Vec<u8>> {
    captured
        .iter()
        .filter(|d| d.first() == Some(&5) && d.len() >= 32)
        .cloned()
        .collect()
}

/// Truncated and bit-flipped copies of `d`: every length class (empty,
/// inside the header, header only, short of the tag, one byte short) and a
/// flipped bit in the type, reserved bytes, receiver index, counter,
/// ciphertext and tag.
fn mutants(d: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for n in [0, 1, 3, 4, 8, 15, 16, 31, d.len() - 1] {
        out.push(d[..n].to_vec());
    }
    for (byte, bit) in [
        (0, 1),
        (0, 2),
        (2, 0),
        (4, 0),
        (6, 7),
        (8, 0),
        (12, 5),
        (15, 7),
        (16, 0),
        (d.len() / 2, 3),
        (d.len() - 17, 6),
        (d.len() - 1, 0),
    ] {
        let mut m = d.to_vec();
        m[byte] ^= 1 << bit;
        out.push(m);
    }
    out
}

#[test]
fn injected_datagrams_are_dropped_and_the_tunnel_keeps_working() {
    let reg = Registry::start(Options::default());
    let tmp = TempDir::new("inject");
    let (dir_a, dir_b) = (tmp.sub("a"), tmp.sub("b"));
    register_anonymous(&reg.url(), &dir_a);
    register_anonymous(&reg.url(), &dir_b);
    let addr_a = identity(&dir_a).subnet.address().to_string();
    let addr_b = identity(&dir_b).subnet.address().to_string();

    // A (192.0.2.1) — relay (192.0.2.2 | 198.51.100.1) — B (198.51.100.2).
    let a = Netns::new("a");
    let m = Netns::new("m");
    let b = Netns::new("b");
    veth(&a, "192.0.2.1/24", &m, "192.0.2.2/24");
    veth(&m, "198.51.100.1/24", &b, "198.51.100.2/24");
    let relay = UdpProxy::start(
        &m,
        SocketAddr::from(([198, 51, 100, 1], 4000)),
        SocketAddr::from(([192, 0, 2, 2], 4001)),
        SocketAddr::from(([192, 0, 2, 1], PORT)),
    );
    let bin = node_bin();
    let node = |ns: &Netns, dir: &Path, extra: &[&str], log: &str| {
        let state = format!("state_dir={}", dir.display());
        // Each daemon its own status socket, not the shared default.
        let run = format!("run_dir={}", dir.join("run").display());
        let mut args = vec!["run", "-o", "log_level=debug", "-o", &state, "-o", &run];
        args.extend_from_slice(extra);
        ns.spawn(&bin, &args, &tmp.path().join(log))
    };
    let mut node_a = node(&a, &dir_a, &[], "a.log");
    let mut node_b = node(&b, &dir_b, &["-o", "peer=198.51.100.1:4000"], "b.log");
    let log = |n: &str| std::fs::read_to_string(tmp.path().join(n)).unwrap_or_default();
    let logs = || format!("--- a.log\n{}\n--- b.log\n{}", log("a.log"), log("b.log"));

    let up = wait_until(Duration::from_secs(20), || b.ping6(&addr_a));
    assert!(up.is_some(), "no ping from B to A\n{}", logs());
    assert!(a.ping6(&addr_b), "{}", logs());

    // 1. Reordering of live traffic: batches of 8 datagrams from B are
    // delivered newest first. All are within the replay window, so all are
    // accepted: no loss, no replay drops.
    for _ in 0..5 {
        relay.reorder_next(8);
        let out = b.output(
            "ping",
            &[
                "-6", "-n", "-c", "16", "-i", "0.02", "-W", "2", "-q", &addr_a,
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(text.contains(" 0% packet loss"), "{text}\n{}", logs());
    }
    let reordered = relay.reordered.load(std::sync::atomic::Ordering::Relaxed);
    assert!(reordered >= 16, "only {reordered} datagrams reordered");
    assert_eq!(drops(&log("a.log"), "Replay"), 0, "{}", logs());
    println!("reordered {reordered} live datagrams: no loss, no replay drop");

    // 2. A ping runs through the attack.
    let mut pinger = b.spawn(
        "ping",
        &["-6", "-n", "-c", "80", "-i", "0.1", "-W", "2", &addr_a],
        &tmp.path().join("ping.log"),
    );
    let (before_a, before_b) = (log("a.log"), log("b.log"));
    let mut injected = [0usize; 2];
    for (i, to) in [Dir::BtoA, Dir::AtoB].into_iter().enumerate() {
        // What went this way so far, sent again the same way.
        let captured = relay.captured(to);
        // Replays: every datagram seen so far (handshake messages too),
        // oldest first, then newest first (reordered old traffic).
        for d in captured.iter().chain(captured.iter().rev()) {
            relay.inject(to, d);
            injected[i] += usize::from(d.first() == Some(&5) || d.first() == Some(&6));
            std::thread::sleep(Duration::from_millis(1));
        }
        // Truncated and bit-flipped copies of recent data datagrams.
        let recent = data(&captured);
        for d in recent.iter().rev().take(10) {
            for mutant in mutants(d) {
                relay.inject(to, &mutant);
                injected[i] += 1;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
    println!("injected {injected:?} datagrams (A, B) that must each be dropped");
    let done = wait_until(Duration::from_secs(20), || !pinger.running());
    assert!(done.is_some(), "ping did not finish");
    let ping_log = log("ping.log");
    assert!(
        ping_log.contains(" 0% packet loss"),
        "{ping_log}\n{}",
        logs()
    );

    // Every injected data-type datagram was dropped and logged as such
    // (replays name the replay window; damaged ones fail the tag, the
    // length checks or the index lookup).
    for (name, before, n) in [
        ("a.log", &before_a, injected[0]),
        ("b.log", &before_b, injected[1]),
    ] {
        let now = log(name);
        let new = &now[before.len().min(now.len())..];
        let dropped = drops(new, "");
        println!(
            "{name}: {dropped} drops (replay {}, tag {}, malformed {}, unknown index {})",
            drops(new, "Replay"),
            drops(new, "Tag"),
            drops(new, "malformed datagram"),
            drops(new, "unknown tunnel index")
        );
        assert!(
            dropped >= n,
            "{name}: {dropped} drops for {n} injected\n{new}"
        );
        for what in ["Replay", "Tag", "malformed datagram"] {
            assert!(drops(new, what) > 0, "{name}: no {what} drop\n{new}");
        }
        // Never re-established, never closed.
        assert_eq!(now.matches("is up").count(), 1, "{}", logs());
        assert!(!now.contains("closed"), "{}", logs());
    }

    // And it still carries full-size traffic both ways.
    let out = b.output(
        "ping",
        &[
            "-6", "-n", "-c", "10", "-i", "0.05", "-s", "1300", "-q", &addr_a,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" 0% packet loss"), "{text}\n{}", logs());
    assert!(a.ping6(&addr_b), "{}", logs());
    assert!(node_a.running() && node_b.running(), "{}", logs());
}
