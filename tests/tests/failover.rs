//! Fast failover (issue 18): a silent cut of the path a flow uses moves it
//! to another path within 3 s at the network's default Babel hello (15 s).
//!
//! Four nodes in a diamond, A - B - D and A - C - D (nftables keeps A from
//! D and B from C on the underlay). A pings D every 20 ms; then the
//! underlay between A and the node its route to D goes through drops
//! everything, both ways, with no interface going down. The longest gap
//! between two replies is the failover time.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use re6st_integration::mesh::{route_via, Mesh};
use re6st_integration::netns::{wait_until, Netns};
use re6st_integration::registry::Options;

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const D: usize = 3;

fn nft(ns: &Netns, rules: &str) {
    let out = ns.command("nft").arg(rules).output().expect("nft");
    assert!(
        out.status.success(),
        "nft {rules}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Drop everything between this namespace and `ip` on the underlay.
fn cut(ns: &Netns, ip: &str) {
    nft(ns, &format!("add rule inet cut out ip daddr {ip} drop"));
    nft(ns, &format!("add rule inet cut in ip saddr {ip} drop"));
}

fn cut_table(ns: &Netns) {
    nft(ns, "add table inet cut");
    nft(
        ns,
        "add chain inet cut out { type filter hook output priority 0; }",
    );
    nft(
        ns,
        "add chain inet cut in { type filter hook input priority 0; }",
    );
}

/// The peer prefix of the tunnel `from`'s route to `to` goes through.
fn next_hop(m: &Mesh, from: usize, to: usize) -> Option<String> {
    route_via(&m.status_json(from), &m.nodes[to].prefix).map(|(_, peer)| peer)
}

/// Longest gap between ping replies (ping -D timestamps), and the replies.
fn ping_gaps(
    ns: &Netns,
    addr: &str,
    secs: u64,
    cut_after: Duration,
    cut_it: impl FnOnce(),
) -> (f64, usize) {
    let mut child = ns
        .command("ping")
        .args([
            "-6",
            "-D",
            "-n",
            "-i",
            "0.02",
            "-w",
            &secs.to_string(),
            addr,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ping");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l.contains("bytes from"))
            .filter_map(|l| l.strip_prefix('[')?.split(']').next()?.parse::<f64>().ok())
            .collect::<Vec<f64>>()
    });
    std::thread::sleep(cut_after);
    cut_it();
    let _ = child.wait();
    let stamps = reader.join().unwrap();
    let gap = stamps.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    (gap, stamps.len())
}

/// Build the diamond, wait for A to reach D, cut A's next hop silently
/// while pinging; the longest gap in seconds.
fn diamond(fast_failover: bool, secs: u64) -> (f64, usize, String) {
    let mut m = Mesh::build(4, Options::default());
    for i in 0..4 {
        cut_table(&m.nodes[i].ns);
        m.nodes[i]
            .options
            .push(format!("fast_failover={}", u8::from(fast_failover)));
    }
    let ips: Vec<String> = m.nodes.iter().map(|n| n.ip.clone()).collect();
    let ip = |i: usize| ips[i].clone();
    cut(&m.nodes[A].ns, &ip(D));
    cut(&m.nodes[D].ns, &ip(A));
    cut(&m.nodes[B].ns, &ip(C));
    cut(&m.nodes[C].ns, &ip(B));
    let peer = |i: usize| format!("{}:1194", ip(i));
    m.spawn(B, &[]);
    m.spawn(C, &[]);
    m.spawn(A, &[peer(B), peer(C)]);
    m.spawn(D, &[peer(B), peer(C)]);
    let both = wait_until(Duration::from_secs(60), || {
        m.ping(A, D) && next_hop(&m, A, D).is_some() && m.tunnels_up(A) >= 2 && m.tunnels_up(D) >= 2
    });
    assert!(both.is_some(), "diamond not up:\n{}", m.logs());
    // Let the routes settle on both sides of the diamond.
    std::thread::sleep(Duration::from_secs(3));
    let via = next_hop(&m, A, D).expect("route from A to D");
    let hop = if via == m.nodes[B].prefix { B } else { C };
    let (ns_a, ns_hop) = (&m.nodes[A].ns, &m.nodes[hop].ns);
    let (ip_a, ip_hop) = (ip(A), ip(hop));
    let t0 = Instant::now();
    let (gap, replies) = ping_gaps(
        ns_a,
        &m.nodes[D].address,
        secs,
        Duration::from_secs(3),
        || {
            cut(ns_a, &ip_hop);
            cut(ns_hop, &ip_a);
        },
    );
    let logs = m.logs();
    println!(
        "fast_failover={}: cut A-{} after 3 s; longest gap {gap:.2} s, {replies} replies in {:.0} s",
        u8::from(fast_failover),
        if hop == B { "B" } else { "C" },
        t0.elapsed().as_secs_f64()
    );
    (gap, replies, logs)
}

#[test]
fn silent_cut_moves_traffic_within_3_s() {
    let (gap, replies, logs) = diamond(true, 12);
    assert!(replies > 300, "{replies} replies:\n{logs}");
    assert!(gap < 3.0, "longest gap {gap:.2} s:\n{logs}");
    assert!(
        logs.contains("traffic unanswered, routing around it"),
        "{logs}"
    );
}

/// The same cut without the tunnel-level detection: Babel's hellos (15 s)
/// and the tunnel's dead-peer timer (60 s) find it. For the record
/// (`-- --ignored --nocapture`); too slow for every CI run.
#[test]
#[ignore]
fn silent_cut_without_fast_failover() {
    let (gap, replies, _) = diamond(false, 90);
    println!("without fast failover: longest gap {gap:.2} s, {replies} replies");
}
