//! Garbage at line rate (issue 19, floods). A host on the underlay sends
//! the tunnel port of node N everything it can for 10 s: random bytes of
//! every size up to 65,000, and datagrams shaped like our handshake and
//! data messages with random contents. Then a member, through a real
//! tunnel, floods UDP port 326 of N's overlay address with junk. Each time
//! N's CPU and RSS are measured, and a ping from N to V through their
//! tunnel runs across the flood: it must keep getting through.

use std::time::{Duration, Instant};

use re6st_integration::adversary::{socket_in, TunnelPeer};
use re6st_integration::mesh::Mesh;
use re6st_integration::netns::wait_until;
use re6st_integration::registry::Options;

/// xorshift: junk needs no quality.
fn junk(state: &mut u64, out: &mut [u8]) {
    for b in out.iter_mut() {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *b = *state as u8;
    }
}

/// Ping from N to V while `flood` runs (it returns what it sent); N's CPU
/// (% of a core) and RSS growth (KiB), the ping's loss (%) and summary.
fn measure(
    m: &Mesh,
    n: usize,
    v: usize,
    flood: impl FnOnce() -> u64,
) -> (u64, f64, i64, f64, String) {
    let rss0 = m.rss_kib(n).unwrap_or(0) as i64;
    let ping = m.pinger(n, v, 0.05, 10);
    let (t0, c0) = (Instant::now(), m.cpu_ticks(n));
    let sent = flood();
    let cpu = 100.0 * (m.cpu_ticks(n) - c0) as f64 / 100.0 / t0.elapsed().as_secs_f64();
    let (loss, line) = ping.loss();
    (
        sent,
        cpu,
        m.rss_kib(n).unwrap_or(0) as i64 - rss0,
        loss,
        line,
    )
}

#[test]
fn garbage_at_line_rate_does_not_stop_a_tunnel() {
    let mut m = Mesh::build(3, Options::default());
    let (n, v, x) = (0, 1, 2);
    let n_at = format!("{}:1194", m.nodes[n].ip);
    m.spawn(n, &[]);
    m.spawn(v, std::slice::from_ref(&n_at));
    assert!(
        wait_until(Duration::from_secs(30), || m.ping(n, v)).is_some(),
        "{}",
        m.logs()
    );

    // 1. The underlay: anyone can send this.
    let sock = socket_in(
        &m.nodes[x].ns,
        format!("{}:0", m.nodes[x].ip).parse().unwrap(),
    );
    let to: std::net::SocketAddr = n_at.parse().unwrap();
    let (sent, cpu, rss, loss, line) = measure(&m, n, v, || {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut buf = vec![0u8; 65_000];
        let mut sent = 0u64;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            let len = match sent % 8 {
                0 => 65_000,
                1 | 2 => 1400,
                3 => 32,
                _ => 148, // a handshake initiation's size
            };
            junk(&mut state, &mut buf[..len]);
            // Shaped like our messages: a type byte the parser knows.
            buf[0] = [1, 2, 3, 4, 5][(sent % 5) as usize];
            if sock.send_to(&buf[..len], to).is_ok() {
                sent += 1;
            }
        }
        sent
    });
    println!("underlay junk: {sent} datagrams in 10 s; N's CPU {cpu:.0} % of a core, RSS {rss:+} KiB; ping N->V: {line}");
    assert!(loss <= 10.0, "ping through the junk flood: {line}");
    assert!(rss < 4096, "RSS grew by {rss} KiB");

    // 2. Inside the overlay: a member's tunnel, junk to UDP 326 of N.
    let dir = &m.nodes[x].dir;
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let mut peer = TunnelPeer::new(
        &m.nodes[x].ns,
        format!("{}:1194", m.nodes[x].ip).parse().unwrap(),
        &read("ca.crt"),
        &read("cert.crt"),
        &read("cert.key"),
    );
    let tid = peer.connect(to);
    assert!(peer.run(Duration::from_secs(10), |_| false) || peer.established().is_some());
    let src = re6st_integration::registry::identity(dir).subnet.address();
    let dst: std::net::Ipv6Addr = m.nodes[n].address.parse().unwrap();
    let (sent, cpu, rss, loss, line) = measure(&m, n, v, || {
        let mut state = 7u64;
        let mut payload = vec![0u8; 1200];
        let mut pkt = vec![0u8; 1400];
        let mut sent = 0u64;
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            let len = [1, 40, 300, 1200][(sent % 4) as usize];
            junk(&mut state, &mut payload[..len]);
            payload[0] = [0, 1, 0x41, 0x42, 0x43, 0x85][(sent % 6) as usize];
            let u = node_lite::ip::Udp {
                src,
                dst,
                src_port: 326,
                dst_port: 326,
                hop_limit: 64,
                payload: &payload[..len],
            };
            if let Some(l) = u.write(&mut pkt) {
                if peer.send(tid, &pkt[..l]).is_ok() {
                    sent += 1;
                }
            }
            if sent.is_multiple_of(256) {
                peer.run(Duration::from_millis(1), |_| false);
            }
        }
        sent
    });
    println!("overlay junk to port 326: {sent} packets in 10 s; N's CPU {cpu:.0} % of a core, RSS {rss:+} KiB; ping N->V: {line}");
    assert!(loss <= 10.0, "ping through the control-port flood: {line}");
    assert!(rss < 4096, "RSS grew by {rss} KiB");
    assert!(m.ping(n, v));
}
