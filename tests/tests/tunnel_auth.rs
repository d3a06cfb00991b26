//! Tunnel authentication against the real registry, with real nodes in
//! network namespaces: a node whose certificate comes from another CA, has
//! expired, or was revoked (in the CRL of the network config the legit node
//! loaded at start) cannot open a tunnel with a legit node, whichever side
//! initiates. Each test checks that no ping crosses, that the legit node's
//! log names the refusal, and — so that "no ping" cannot come from a broken
//! set-up — that a peer with a good certificate from the same namespace does
//! get through to the same legit node.

use std::net::{Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use re6st_integration::adversary::{echo_request, is_echo_reply, mint_cert, Seen, TunnelPeer};
use re6st_integration::netns::{veth, wait_until, Netns, Proc};
use re6st_integration::registry::{
    identity, node_bin, register_anonymous, Options, Registry, TempDir,
};
use registry_client::state::{Loaded, StateDir};

/// The nodes' UDP port (the `port` default).
const PORT: u16 = 1194;
/// How long the bad node gets to try: the legit pair in `tunnel.rs` is up
/// in well under a second, and handshakes are retried after 1, 2, 4 s.
const TRY_FOR: Duration = Duration::from_secs(8);

fn overlay_address(dir: &Path) -> Ipv6Addr {
    identity(dir).subnet.address()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The legit node A in namespace `a` (192.0.2.1) and the namespace `x`
/// (192.0.2.2) of the node under test, joined by a veth.
struct Scene {
    tmp: TempDir,
    a: Netns,
    x: Netns,
    dir_a: PathBuf,
    node_a: Option<Proc>,
    others: Vec<Proc>,
}

impl Scene {
    fn new(tag: &str) -> Self {
        let tmp = TempDir::new(tag);
        let a = Netns::new("a");
        let x = Netns::new("x");
        veth(&a, "192.0.2.1/24", &x, "192.0.2.2/24");
        let dir_a = tmp.sub("a");
        Scene {
            tmp,
            a,
            x,
            dir_a,
            node_a: None,
            others: Vec::new(),
        }
    }

    fn daemon(&self, ns: &Netns, dir: &Path, peer: &str, log: &str) -> Proc {
        let state = format!("state_dir={}", dir.display());
        // Each daemon its own status socket: the default one is shared by
        // the tests running in parallel.
        let run = format!("run_dir={}", dir.join("run").display());
        let peer = format!("peer={peer}:{PORT}");
        let args = [
            "run",
            "-o",
            "log_level=debug",
            "-o",
            &state,
            "-o",
            &run,
            "-o",
            &peer,
        ];
        ns.spawn(node_bin(), &args, &self.tmp.path().join(log))
    }

    /// Start A (it also connects to the node under test: both directions
    /// of the handshake are tried) and the node under test from `dir`.
    fn start(&mut self, dir_x: &Path) {
        self.node_a = Some(self.daemon(&self.a, &self.dir_a, "192.0.2.2", "a.log"));
        let x = self.daemon(&self.x, dir_x, "192.0.2.1", "x.log");
        self.others.push(x);
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.tmp.path().join(name)).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!(
            "--- a.log\n{}\n--- x.log\n{}",
            self.log("a.log"),
            self.log("x.log")
        )
    }

    /// For [`TRY_FOR`], no ping crosses between A and the node under test.
    fn assert_no_ping(&self, addr_x: Ipv6Addr) {
        let addr_a = overlay_address(&self.dir_a).to_string();
        let addr_x = addr_x.to_string();
        let crossed = wait_until(TRY_FOR, || self.x.ping6(&addr_a) || self.a.ping6(&addr_x));
        assert!(crossed.is_none(), "a ping crossed\n{}", self.logs());
    }

    /// A's log shows the refusal, and no tunnel came up on A.
    fn assert_refused(&self, why: &str) {
        let found = wait_until(Duration::from_secs(10), || self.log("a.log").contains(why));
        assert!(found.is_some(), "A's log lacks {why:?}\n{}", self.logs());
        assert!(!self.log("a.log").contains("is up"), "{}", self.logs());
    }

    /// A peer with the good certificate in `dir` (registered with A's
    /// registry), from the namespace of the node under test, gets an
    /// answer to a ping through A: the refusal was about the certificate.
    fn control(&self, dir: &Path, cert_pem: &[u8], port: u16) {
        let mut peer = TunnelPeer::new(
            &self.x,
            SocketAddr::from(([192, 0, 2, 2], port)),
            &read(&dir.join("ca.crt")),
            cert_pem,
            &read(&dir.join("cert.key")),
        );
        let tid = peer.connect(SocketAddr::from(([192, 0, 2, 1], PORT)));
        let up = peer.run(Duration::from_secs(10), |s| {
            matches!(s, Seen::Event(node_lite::tunnel::Event::Established { .. }))
        });
        assert!(
            up,
            "control peer: no tunnel {:?}\n{}",
            peer.seen,
            self.logs()
        );
        let ping = echo_request(overlay_address(dir), overlay_address(&self.dir_a), 77, 1);
        peer.send(tid, &ping).expect("seal");
        let answered = peer.run(
            Duration::from_secs(5),
            |s| matches!(s, Seen::Packet(_, p) if is_echo_reply(p, 77)),
        );
        assert!(
            answered,
            "control peer: no echo reply {:?}\n{}",
            peer.seen,
            self.logs()
        );
        // The log line `assert_refused` looks for in vain does exist (the
        // harness copies the node's output to its log file on its own
        // thread: the echo reply may come before the line is there).
        let logged = wait_until(Duration::from_secs(5), || {
            self.log("a.log").contains("is up")
        });
        assert!(logged.is_some(), "{}", self.logs());
    }
}

/// Another network's node: a real daemon registered with another registry
/// (its own CA, same network prefix and CA subject) is refused at mac1,
/// before any public-key work; and a peer that knows our network's CA (so
/// mac1 passes) but shows a certificate issued by the other CA, for the key
/// and prefix of a node of ours, is refused by the CA check.
#[test]
fn certificate_from_another_ca_is_refused() {
    let reg = Registry::start(Options::default());
    let other = Registry::start(Options::default());
    let mut s = Scene::new("auth-ca");
    let (dir_o, dir_filler, dir_s) = (s.tmp.sub("o"), s.tmp.sub("filler"), s.tmp.sub("s"));
    register_anonymous(&reg.url(), &s.dir_a);
    register_anonymous(&reg.url(), &dir_s);
    // The other registry's first node would get A's prefix: take it first.
    register_anonymous(&other.url(), &dir_filler);
    register_anonymous(&other.url(), &dir_o);
    let addr_o = overlay_address(&dir_o);
    assert_ne!(addr_o, overlay_address(&s.dir_a));

    s.start(&dir_o);
    s.assert_no_ping(addr_o);
    s.assert_refused("handshake not from a member of this network (mac1)");

    // Our node S's key and subject, certified by the other CA.
    let forged = s.tmp.path().join("forged.crt");
    let (start, end) = ("20200101000000Z", "20991231000000Z");
    mint_cert(
        &other.ca,
        &dir_s,
        0x5eed,
        (start, end),
        &s.tmp.sub("mint"),
        &forged,
    );
    let mut peer = TunnelPeer::new(
        &s.x,
        SocketAddr::from(([192, 0, 2, 2], 2000)),
        &read(&reg.ca.cert),
        &read(&forged),
        &read(&dir_s.join("cert.key")),
    );
    let tid = peer.connect(SocketAddr::from(([192, 0, 2, 1], PORT)));
    // The initiator authenticates A on the second message, so on its side
    // a session exists; A refuses the third, so nothing comes back.
    peer.run(Duration::from_secs(3), |s| matches!(s, Seen::Event(_)));
    let _ = peer.send(
        tid,
        &echo_request(overlay_address(&dir_s), overlay_address(&s.dir_a), 9, 1),
    );
    let answered = peer.run(TRY_FOR, |s| matches!(s, Seen::Packet(..)));
    assert!(!answered, "{:?}\n{}", peer.seen, s.logs());
    s.assert_refused("peer certificate not issued by the network CA");

    s.control(&dir_s, &read(&dir_s.join("cert.crt")), 2001);
}

/// A daemon whose certificate (from the network CA, for its own key and
/// prefix) expired: it starts with a warning, and A refuses it.
#[test]
fn expired_certificate_is_refused() {
    let reg = Registry::start(Options::default());
    let mut s = Scene::new("auth-exp");
    let dir_e = s.tmp.sub("e");
    register_anonymous(&reg.url(), &s.dir_a);
    register_anonymous(&reg.url(), &dir_e);
    let good = read(&dir_e.join("cert.crt"));
    let expired = s.tmp.path().join("expired.crt");
    mint_cert(
        &reg.ca,
        &dir_e,
        0x7e57,
        ("20200101000000Z", "20200102000000Z"),
        &s.tmp.sub("mint"),
        &expired,
    );
    std::fs::copy(&expired, dir_e.join("cert.crt")).expect("install expired certificate");
    assert!(matches!(
        StateDir::new(&dir_e).load(unix_now()).unwrap(),
        Loaded::Registered { expired: true, .. }
    ));
    let addr_e = overlay_address(&dir_e);

    s.start(&dir_e);
    s.assert_no_ping(addr_e);
    s.assert_refused("peer certificate expired or not yet valid");
    assert!(s.log("x.log").contains("expired"), "{}", s.logs());

    // The same key and prefix with the certificate the registry issued.
    s.control(&dir_e, &good, 2001);
}

/// A node revoked in the registry before A started: the CRL of A's
/// network config lists its serial, and A refuses it.
#[test]
fn revoked_certificate_is_refused() {
    let reg = Registry::start(Options::default());
    let mut s = Scene::new("auth-rev");
    let (dir_r, dir_g) = (s.tmp.sub("r"), s.tmp.sub("g"));
    register_anonymous(&reg.url(), &dir_r);
    let serial = identity(&dir_r).cert.serial_u64().expect("serial");
    assert_eq!(
        reg.get(&format!("/revoke?cn_or_serial={serial}")).0,
        204,
        "{}",
        reg.log()
    );
    // Registered after the revocation: their cached network config has it.
    register_anonymous(&reg.url(), &s.dir_a);
    register_anonymous(&reg.url(), &dir_g);
    let id_a = identity(&s.dir_a);
    let crl = StateDir::new(&s.dir_a)
        .network_config(&id_a)
        .expect("network config")
        .expect("cached network config")
        .crl
        .clone();
    assert!(crl.contains(&serial), "crl {crl:?}");
    let addr_r = overlay_address(&dir_r);

    s.start(&dir_r);
    s.assert_no_ping(addr_r);
    s.assert_refused(&format!("peer certificate serial {serial} is revoked"));

    s.control(&dir_g, &read(&dir_g.join("cert.crt")), 2001);
}
