//! Tools to attack a running node from inside the test's namespaces:
//!
//! - [`socket_in`]: a UDP socket bound inside a [`Netns`] (a helper thread
//!   enters the namespace with `setns`; the socket stays there after);
//! - [`TunnelPeer`]: the real tunnel protocol (`node_lite::tunnel::Endpoint`)
//!   over such a socket, with any certificate, to show what a node refuses;
//!   it can carry an ICMPv6 echo request through its tunnel (a ping without
//!   a TUN device);
//! - [`UdpProxy`]: a UDP relay in a middle namespace that captures every
//!   datagram of a live tunnel, can reorder them, and lets the test inject
//!   copies (replayed, truncated, bit-flipped) from the relay's own address;
//! - [`mint_cert`]: certificates with chosen issuer, dates and serial
//!   (`openssl ca`), for keys and subjects of nodes the real registry made.

use std::net::{Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant as StdInstant};

use node_lite::tunnel::auth::{CaAuthority, Identity};
use node_lite::tunnel::{self, Action, Endpoint, Event, Instant, TunnelId};
use registry_client::cert::{key_from_pem, Certificate};

use crate::netns::Netns;
use crate::registry::Ca;

/// A UDP socket bound to `addr` inside `ns`.
pub fn socket_in(ns: &Netns, addr: SocketAddr) -> UdpSocket {
    let path = PathBuf::from("/var/run/netns").join(&ns.name);
    thread::spawn(move || {
        let f = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        UdpSocket::bind(addr)
    })
    .join()
    .expect("setns thread")
    .unwrap_or_else(|e| panic!("bind {addr} in {}: {e}", ns.name))
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Re-issue the certificate of a registered node (`state_dir`'s `cert.crt`
/// and `cert.key`) with `ca`, serial `serial`, valid from `start` to `end`
/// (openssl `YYYYMMDDHHMMSSZ`). Key and CN stay the node's; the result is
/// PEM at `out`. `work` holds openssl's CA database.
pub fn mint_cert(
    ca: &Ca,
    state_dir: &Path,
    serial: u32,
    (start, end): (&str, &str),
    work: &Path,
    out: &Path,
) {
    std::fs::create_dir_all(work).expect("work dir");
    let csr = work.join("req.csr");
    run_ok(
        Command::new("openssl")
            .args(["x509", "-x509toreq", "-in"])
            .arg(state_dir.join("cert.crt"))
            .arg("-signkey")
            .arg(state_dir.join("cert.key"))
            .arg("-out")
            .arg(&csr)
            .stderr(Stdio::null()),
        "openssl x509 -x509toreq",
    );
    std::fs::write(work.join("index.txt"), "").expect("index");
    std::fs::write(work.join("serial"), format!("{serial:08X}\n")).expect("serial");
    let cnf = work.join("ca.cnf");
    std::fs::write(
        &cnf,
        format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {w}/index.txt\nnew_certs_dir = {w}\n\
             serial = {w}/serial\ndefault_md = sha512\npolicy = p\nunique_subject = no\n\
             [p]\ncommonName = supplied\n",
            w = work.display()
        ),
    )
    .expect("openssl config");
    run_ok(
        Command::new("openssl")
            .args(["ca", "-batch", "-notext", "-config"])
            .arg(&cnf)
            .arg("-cert")
            .arg(&ca.cert)
            .arg("-keyfile")
            .arg(&ca.key)
            .args(["-startdate", start, "-enddate", end, "-in"])
            .arg(&csr)
            .arg("-out")
            .arg(out)
            .stderr(Stdio::null()),
        "openssl ca",
    );
}

/// What a [`TunnelPeer`] saw.
#[derive(Debug)]
pub enum Seen {
    Event(Event),
    /// A decrypted packet from tunnel `id`.
    Packet(TunnelId, Vec<u8>),
    /// A datagram it dropped, and why.
    Dropped(String),
}

/// A tunnel endpoint speaking the node's protocol with the certificate it
/// is given, in a namespace, driven by the test thread.
pub struct TunnelPeer {
    sock: UdpSocket,
    ep: Endpoint<CaAuthority>,
    base: StdInstant,
    pub seen: Vec<Seen>,
}

impl TunnelPeer {
    /// `ca_pem` is the network CA the peer claims (it keys mac1 and the
    /// Noise prologue, and checks the other side); `cert_pem`/`key_pem` what
    /// it proves itself with, whoever issued them.
    pub fn new(
        ns: &Netns,
        bind: SocketAddr,
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
    ) -> Self {
        let ca = Certificate::from_pem(ca_pem).expect("CA");
        let cert = Certificate::from_pem(cert_pem).expect("certificate");
        let key = key_from_pem(key_pem).expect("key");
        let identity =
            Identity::new(cert.der().to_vec(), &key, tunnel::os_seed()).expect("identity");
        let sock = socket_in(ns, bind);
        sock.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let ep = Endpoint::new(
            tunnel::Config::default(),
            &ca.public_key_der(),
            identity,
            CaAuthority::new(ca.clone(), &[]),
            Instant::from_secs(1),
            unix_now(),
            tunnel::os_seed(),
        );
        TunnelPeer {
            sock,
            ep,
            base: StdInstant::now(),
            seen: Vec::new(),
        }
    }

    fn now(&self) -> Instant {
        Instant::from_millis(1000 + self.base.elapsed().as_millis() as u64)
    }

    pub fn connect(&mut self, to: SocketAddr) -> TunnelId {
        let now = self.now();
        let id = self.ep.connect(now, to);
        self.flush();
        id
    }

    fn flush(&mut self) {
        while let Some(t) = self.ep.poll_transmit() {
            let _ = self.sock.send_to(&t.bytes, t.to);
        }
        while let Some(e) = self.ep.poll_event() {
            self.seen.push(Seen::Event(e));
        }
    }

    /// Seal `packet` into tunnel `id` and send it.
    pub fn send(&mut self, id: TunnelId, packet: &[u8]) -> Result<(), String> {
        let mut out = vec![0u8; packet.len() + 64];
        let now = self.now();
        match self.ep.encapsulate(now, id, packet, &mut out) {
            Action::WriteToNetwork(to, bytes) => {
                self.sock.send_to(bytes, to).map_err(|e| e.to_string())?;
            }
            other => return Err(format!("{other:?}")),
        }
        self.flush();
        Ok(())
    }

    /// Run the protocol for up to `timeout`, until `stop` holds for something
    /// seen (true) or time is up (false).
    pub fn run(&mut self, timeout: Duration, mut stop: impl FnMut(&Seen) -> bool) -> bool {
        let deadline = StdInstant::now() + timeout;
        let mut buf = vec![0u8; 65536];
        let mut out = vec![0u8; 65536];
        let mut checked = self.seen.len();
        while StdInstant::now() < deadline {
            if let Ok((n, from)) = self.sock.recv_from(&mut buf) {
                let now = self.now();
                match self.ep.decapsulate(now, from, &buf[..n], &mut out) {
                    Action::WriteToNetwork(to, bytes) => {
                        let _ = self.sock.send_to(bytes, to);
                    }
                    Action::WriteToTunnel(id, p) => self.seen.push(Seen::Packet(id, p.to_vec())),
                    Action::Done => {}
                    Action::Err(e) => self.seen.push(Seen::Dropped(e.to_string())),
                }
            }
            let now = self.now();
            if self.ep.poll_timeout().is_some_and(|t| t <= now) {
                self.ep.handle_timeout(now);
            }
            self.flush();
            while checked < self.seen.len() {
                if stop(&self.seen[checked]) {
                    return true;
                }
                checked += 1;
            }
        }
        false
    }

    pub fn established(&self) -> Option<TunnelId> {
        self.seen.iter().find_map(|s| match s {
            Seen::Event(Event::Established { id, .. }) => Some(*id),
            _ => None,
        })
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// An ICMPv6 echo request from `src` to `dst`.
pub fn echo_request(src: Ipv6Addr, dst: Ipv6Addr, id: u16, seq: u16) -> Vec<u8> {
    let payload = b"re6st-lite adversary ping";
    let mut icmp = vec![128, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(payload);
    let sum = node_lite::ip::icmpv6_checksum(src, dst, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    p.extend_from_slice(&[58, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&icmp);
    p
}

/// True if `packet` is an ICMPv6 echo reply with identifier `id`.
pub fn is_echo_reply(packet: &[u8], id: u16) -> bool {
    packet.len() >= 48 && packet[6] == 58 && packet[40] == 129 && packet[44..46] == id.to_be_bytes()
}

/// Every datagram a [`UdpProxy`] relayed, in order.
pub type Capture = Arc<Mutex<Vec<(Dir, Vec<u8>)>>>;

/// Which way a datagram went through a [`UdpProxy`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// From the node that connected (B) to the node it connected to (A).
    BtoA,
    AtoB,
}

/// A UDP relay between node B (which connects to the relay's `b_side`
/// address) and node A (reached from the relay's `a_side` address): both
/// nodes see the relay as their peer. It records every datagram, and
/// reorders B→A datagrams on request.
pub struct UdpProxy {
    a_sock: UdpSocket,
    b_sock: UdpSocket,
    a_addr: SocketAddr,
    b_addr: Arc<Mutex<Option<SocketAddr>>>,
    pub captured: Capture,
    /// B→A datagrams still to hold back and release in reverse order.
    reorder: Arc<AtomicUsize>,
    /// B→A datagrams relayed out of order so far.
    pub reordered: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl UdpProxy {
    /// Listen for B on `b_side`, talk to A at `a_addr` from `a_side`.
    pub fn start(ns: &Netns, b_side: SocketAddr, a_side: SocketAddr, a_addr: SocketAddr) -> Self {
        let b_sock = socket_in(ns, b_side);
        let a_sock = socket_in(ns, a_side);
        for s in [&a_sock, &b_sock] {
            s.set_read_timeout(Some(Duration::from_millis(50)))
                .expect("timeout");
        }
        let mut p = UdpProxy {
            a_sock: a_sock.try_clone().expect("clone"),
            b_sock: b_sock.try_clone().expect("clone"),
            a_addr,
            b_addr: Arc::new(Mutex::new(None)),
            captured: Arc::new(Mutex::new(Vec::new())),
            reorder: Arc::new(AtomicUsize::new(0)),
            reordered: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Vec::new(),
        };
        // B → A, with the reordering buffer.
        let (from_b, to_a) = (
            b_sock.try_clone().expect("clone"),
            a_sock.try_clone().expect("clone"),
        );
        let (b_addr, cap, stop) = (p.b_addr.clone(), p.captured.clone(), p.stop.clone());
        let (reorder, reordered) = (p.reorder.clone(), p.reordered.clone());
        p.threads.push(thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut held: Vec<Vec<u8>> = Vec::new();
            let mut held_since = StdInstant::now();
            while !stop.load(Ordering::Relaxed) {
                let got = from_b.recv_from(&mut buf);
                if let Ok((n, from)) = got {
                    *b_addr.lock().unwrap() = Some(from);
                    let d = buf[..n].to_vec();
                    cap.lock().unwrap().push((Dir::BtoA, d.clone()));
                    if reorder.load(Ordering::Relaxed) > 0 {
                        if held.is_empty() {
                            held_since = StdInstant::now();
                        }
                        held.push(d);
                        reorder.fetch_sub(1, Ordering::Relaxed);
                    } else {
                        let _ = to_a.send_to(&d, a_addr);
                    }
                }
                // Release the held ones, newest first, when the batch is
                // complete or after 300 ms (so a quiet link is not stalled).
                if !held.is_empty()
                    && (reorder.load(Ordering::Relaxed) == 0
                        || held_since.elapsed() > Duration::from_millis(300))
                {
                    if held.len() > 1 {
                        reordered.fetch_add(held.len(), Ordering::Relaxed);
                    }
                    for d in held.drain(..).rev() {
                        let _ = to_a.send_to(&d, a_addr);
                    }
                }
            }
        }));
        // A → B.
        let (b_addr, cap, stop) = (p.b_addr.clone(), p.captured.clone(), p.stop.clone());
        p.threads.push(thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, _)) = a_sock.recv_from(&mut buf) {
                    cap.lock().unwrap().push((Dir::AtoB, buf[..n].to_vec()));
                    if let Some(b) = *b_addr.lock().unwrap() {
                        let _ = b_sock.send_to(&buf[..n], b);
                    }
                }
            }
        }));
        p
    }

    /// Hold the next `n` datagrams from B and deliver them in reverse order.
    pub fn reorder_next(&self, n: usize) {
        self.reorder.store(n, Ordering::Relaxed);
    }

    /// Datagrams captured so far in direction `dir`.
    pub fn captured(&self, dir: Dir) -> Vec<Vec<u8>> {
        let cap = self.captured.lock().unwrap();
        cap.iter()
            .filter(|(d, _)| *d == dir)
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Send `datagram` as if it came from the other node: to A from the
    /// address A knows B by, or to B from the address B knows A by.
    pub fn inject(&self, to: Dir, datagram: &[u8]) {
        match to {
            Dir::BtoA => {
                let _ = self.a_sock.send_to(datagram, self.a_addr);
            }
            Dir::AtoB => {
                if let Some(b) = *self.b_addr.lock().unwrap() {
                    let _ = self.b_sock.send_to(datagram, b);
                }
            }
        }
    }
}

impl Drop for UdpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A member of the network that speaks Babel over a real tunnel with its
/// own engine (`node_lite::babel::Engine`) and the network's MAC keys: what
/// a modified node could announce. The test originates what it likes on
/// [`BabelMember::engine`], or gives it a second, in-memory neighbour
/// ([`BabelMember::relay_from`]) whose routes it passes on as relayed.
pub struct BabelMember {
    pub peer: TunnelPeer,
    pub engine: node_lite::babel::Engine,
    tunnel: TunnelId,
    link: node_lite::babel::LinkId,
    local: Ipv6Addr,
    seen: usize,
    start: StdInstant,
    /// The in-memory neighbour behind us, and our link to it.
    behind: Option<(
        node_lite::babel::Engine,
        node_lite::babel::LinkId,
        node_lite::babel::LinkId,
    )>,
    mac: node_lite::babel::MacConfig,
}

const BABEL_PORT: u16 = 6696;

impl BabelMember {
    /// Node `dir`'s registered identity (never run as a node), in `ns` at
    /// `bind`, connected to the node at `to`; `routes` sizes its tables.
    pub fn connect(
        ns: &Netns,
        bind: SocketAddr,
        dir: &Path,
        to: SocketAddr,
        routes: usize,
    ) -> Self {
        use node_lite::babel::{wire::RouterId, Engine, EngineConfig, LinkConfig, LinkKind};
        let read = |f: &str| std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        let mut peer = TunnelPeer::new(
            ns,
            bind,
            &read("ca.crt"),
            &read("cert.crt"),
            &read("cert.key"),
        );
        let tunnel = peer.connect(to);
        assert!(
            peer.run(Duration::from_secs(10), |s| matches!(
                s,
                Seen::Event(Event::Established { .. })
            )),
            "the member's tunnel did not come up"
        );
        // A member knows the network's Babel MAC keys (its network config).
        let id = crate::registry::identity(dir);
        let netconf = registry_client::state::StateDir::new(dir)
            .network_config(&id)
            .expect("state dir")
            .expect("the member's network config");
        let local: Ipv6Addr = "fe80::bad".parse().unwrap();
        let set = node_lite::node::settings::settings(
            &node_lite::config::Config::default(),
            Some(&netconf),
            local,
        );
        let mut cfg = EngineConfig::new(RouterId([0xba, 0xd, 0, 0, 0, 0, 0, 1]), 7);
        cfg.mac = set.mac.clone();
        cfg.limits.routes = routes;
        cfg.limits.sources = routes;
        let start = StdInstant::now();
        let now = node_lite::time::Instant::from_millis(1000);
        let mut engine = Engine::new(cfg, now);
        let link = engine
            .add_link(
                now,
                LinkConfig::new(LinkKind::Tunnel, local).with_hello_interval_ms(1000),
            )
            .expect("link");
        BabelMember {
            peer,
            engine,
            tunnel,
            link,
            local,
            seen: 0,
            start,
            behind: None,
            mac: set.mac,
        }
    }

    pub fn now(&self) -> node_lite::time::Instant {
        node_lite::time::Instant::from_millis(1000 + self.start.elapsed().as_millis() as u64)
    }

    /// A second engine behind us (router-id `id`, on an in-memory wired
    /// link) that originates `prefixes`: we relay them, as any node relays
    /// what its neighbours announce.
    pub fn relay_from(&mut self, id: u8, prefixes: &[node_lite::babel::wire::Prefix]) {
        use node_lite::babel::{
            wire::Prefix, wire::RouterId, Engine, EngineConfig, LinkConfig, LinkKind,
        };
        let now = self.now();
        let mut cfg = EngineConfig::new(RouterId([0xba, 0xd, 0, 0, 0, 0, 0, id]), 9);
        cfg.limits.originated = prefixes.len() + 1;
        cfg.limits.routes = prefixes.len() + 16;
        cfg.mac = self.mac.clone();
        let mut other = Engine::new(cfg, now);
        let theirs = other
            .add_link(
                now,
                LinkConfig::new(LinkKind::Wired, "fe80::b0b".parse().unwrap())
                    .with_hello_interval_ms(1000),
            )
            .expect("link");
        for p in prefixes {
            other.originate(now, *p, Prefix::DEFAULT);
        }
        let ours = self
            .engine
            .add_link(
                now,
                LinkConfig::new(LinkKind::Wired, "fe80::bad:2".parse().unwrap())
                    .with_hello_interval_ms(1000),
            )
            .expect("link");
        self.behind = Some((other, theirs, ours));
    }

    /// Run everything for `d`: the tunnel, our engine, the one behind.
    pub fn pump(&mut self, d: Duration) {
        let deadline = StdInstant::now() + d;
        let mut buf = vec![0u8; 1500];
        let mut pkt = vec![0u8; 1600];
        while StdInstant::now() < deadline {
            self.peer.run(Duration::from_millis(20), |_| false);
            let now = self.now();
            for s in &self.peer.seen[self.seen..] {
                if let Seen::Packet(_, p) = s {
                    if let Some(u) =
                        node_lite::ip::Udp::parse(p).filter(|u| u.dst_port == BABEL_PORT)
                    {
                        let from = std::net::SocketAddrV6::new(u.src, u.src_port, 0, 0);
                        self.engine
                            .handle_packet(now, self.link, from, u.dst, u.payload);
                    }
                }
            }
            self.seen = self.peer.seen.len();
            if let Some((other, _, ours)) = &mut self.behind {
                other.handle_timeout(now);
                while let Some(tx) = other.poll_transmit(now, &mut buf) {
                    let from =
                        std::net::SocketAddrV6::new("fe80::b0b".parse().unwrap(), BABEL_PORT, 0, 0);
                    self.engine
                        .handle_packet(now, *ours, from, tx.dst, &buf[..tx.len]);
                }
            }
            self.engine.handle_timeout(now);
            while let Some(tx) = self.engine.poll_transmit(now, &mut buf) {
                if tx.link == self.link {
                    let u = node_lite::ip::Udp {
                        src: self.local,
                        dst: tx.dst,
                        src_port: BABEL_PORT,
                        dst_port: BABEL_PORT,
                        hop_limit: 1,
                        payload: &buf[..tx.len],
                    };
                    if let Some(len) = u.write(&mut pkt) {
                        let _ = self.peer.send(self.tunnel, &pkt[..len]);
                    }
                } else if let Some((other, theirs, _)) = &mut self.behind {
                    let from = std::net::SocketAddrV6::new(
                        "fe80::bad:2".parse().unwrap(),
                        BABEL_PORT,
                        0,
                        0,
                    );
                    other.handle_packet(now, *theirs, from, tx.dst, &buf[..tx.len]);
                }
            }
        }
    }
}
