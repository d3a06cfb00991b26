//! The engine against Debian's babeld 1.12 over a veth, with real sockets (issue 5
//! interop). Needs root and /usr/sbin/babeld (tests/setup.sh installs it); skipped
//! with a message otherwise.
//!
//! The test thread moves into a fresh network namespace with unshare(2) and drives the
//! engine with two UDP sockets (ff02::1:6 and our link-local address, port 6696);
//! babeld runs in a named namespace on the other end of the veth. Drop guards kill
//! babeld and delete the namespace on every exit path; every loop is bounded.

use std::fs;
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant as WallClock};

use super::mac::{MacAlgorithm, MacKey};
use super::wire::{Prefix, MULTICAST, PORT};
use super::*;
use crate::time::Instant;

const OURS: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const THEIRS: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
const BABELD: &str = "/usr/sbin/babeld";

fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if !out.status.success() {
        return Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// babeld in its own named namespace; killed and removed on drop.
struct Babeld {
    ns: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Drop for Babeld {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh(&["ip", "netns", "del", &self.ns]);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Babeld {
    /// The dump babeld prints in debug mode (routes and neighbours), latest copy.
    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("babeld.out")).unwrap_or_default()
    }

    fn kernel_route(&self, prefix: &str) -> String {
        sh(&["ip", "-n", &self.ns, "-6", "route", "show", prefix]).unwrap_or_default()
    }
}

fn usable() -> bool {
    let root = nix::unistd::geteuid().is_root();
    let babeld = std::path::Path::new(BABELD).exists();
    if !root || !babeld {
        eprintln!("skipped: babeld interop needs root and {BABELD}");
    }
    root && babeld
}

/// Sets up the veth (ours in the current thread's namespace), starts babeld with
/// `conf` on the other end, originating 2001:db8:2::/48.
fn start_babeld(tag: &str, conf: &str) -> Result<Babeld, String> {
    let ns = format!("b6i-{}-{tag}", std::process::id());
    let dir = std::env::temp_dir().join(&ns);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    sh(&["ip", "netns", "add", &ns])?;
    let mut b = Babeld {
        ns: ns.clone(),
        dir: dir.clone(),
        child: None,
    };
    sh(&["ip", "link", "set", "lo", "up"])?;
    sh(&[
        "ip", "link", "add", "vi0", "type", "veth", "peer", "name", "vi1",
    ])?;
    sh(&["ip", "link", "set", "vi1", "netns", &ns])?;
    sh(&["ip", "link", "set", "vi0", "addrgenmode", "none"])?;
    sh(&["ip", "link", "set", "vi0", "up"])?;
    sh(&[
        "ip",
        "-6",
        "addr",
        "add",
        "fe80::1/64",
        "dev",
        "vi0",
        "nodad",
    ])?;
    let n = ["ip", "-n", ns.as_str()];
    let ip = |rest: &[&str]| sh(&[&n[..], rest].concat());
    ip(&["link", "set", "lo", "up"])?;
    ip(&["link", "set", "vi1", "addrgenmode", "none"])?;
    ip(&["link", "set", "vi1", "up"])?;
    ip(&["-6", "addr", "add", "fe80::2/64", "dev", "vi1", "nodad"])?;
    // Something to originate: a static route on a second veth.
    ip(&[
        "link", "add", "dum0", "type", "veth", "peer", "name", "dum1",
    ])?;
    ip(&["link", "set", "dum0", "up"])?;
    ip(&["link", "set", "dum1", "up"])?;
    ip(&[
        "-6",
        "route",
        "add",
        "2001:db8:2::/48",
        "dev",
        "dum0",
        "proto",
        "static",
    ])?;
    let conf_path = dir.join("babeld.conf");
    fs::write(
        &conf_path,
        format!(
            "router-id 00:00:00:00:00:00:00:0b\nredistribute local deny\n{conf}\n\
             redistribute ip 2001:db8:2::/48 eq 48\nredistribute deny\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let out = fs::File::create(dir.join("babeld.out")).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns, BABELD, "-d", "1"])
        .args(["-I", &d("babeld.pid"), "-S", &d("babeld.state")])
        .args(["-c", &d("babeld.conf"), "vi1"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("babeld: {e}"))?;
    b.child = Some(child);
    Ok(b)
}

fn ifindex(name: &str) -> Result<u32, String> {
    let out = sh(&["ip", "-o", "link", "show", name])?;
    out.split(':')
        .next()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("no index for {name}: {out}"))
}

/// Our side: the engine on real sockets, run until `done` or the deadline.
struct Driver {
    engine: Engine,
    link: LinkId,
    ucast: UdpSocket,
    mcast: UdpSocket,
    scope: u32,
    start: WallClock,
}

impl Driver {
    fn new(mac: Option<MacKey>, kind: LinkKind) -> Result<Driver, String> {
        let scope = ifindex("vi0")?;
        let ucast = UdpSocket::bind(SocketAddrV6::new(OURS, PORT, 0, scope))
            .map_err(|e| format!("bind unicast: {e}"))?;
        let mcast = UdpSocket::bind(SocketAddrV6::new(MULTICAST, PORT, 0, scope))
            .map_err(|e| format!("bind multicast: {e}"))?;
        mcast
            .join_multicast_v6(&MULTICAST, scope)
            .map_err(|e| format!("join ff02::1:6: {e}"))?;
        for s in [&ucast, &mcast] {
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
        }
        let mut cfg = EngineConfig::new(RouterId([0, 0, 0, 0, 0, 0, 0, 0x0a]), 42);
        cfg.mac.sign = mac;
        let now = Instant::ZERO;
        let mut engine = Engine::new(cfg, now);
        engine.originate(now, prefix("2001:db8:1::/48"), Prefix::DEFAULT);
        let link = engine
            .add_link(
                now,
                LinkConfig::new(kind, OURS).with_hello_interval_ms(1000),
            )
            .ok_or("no link slot")?;
        Ok(Driver {
            engine,
            link,
            ucast,
            mcast,
            scope,
            start: WallClock::now(),
        })
    }

    fn now(&self) -> Instant {
        Instant::from_millis(self.start.elapsed().as_millis() as u64)
    }

    fn run_until(&mut self, max: Duration, done: impl Fn(&Driver) -> bool) -> bool {
        let deadline = WallClock::now() + max;
        let mut buf = [0u8; 1500];
        let mut checked = WallClock::now();
        while WallClock::now() < deadline {
            // Conditions may read babeld's log: not every millisecond.
            if checked.elapsed() >= Duration::from_millis(100) {
                checked = WallClock::now();
                if done(self) {
                    return true;
                }
            }
            let now = self.now();
            for (s, to) in [(&self.ucast, OURS), (&self.mcast, MULTICAST)] {
                for _ in 0..64 {
                    let Ok((n, std::net::SocketAddr::V6(from))) = s.recv_from(&mut buf) else {
                        break;
                    };
                    if *from.ip() == OURS {
                        continue; // our own multicast, looped back
                    }
                    self.engine
                        .handle_packet(now, self.link, from, to, &buf[..n]);
                }
            }
            self.engine.handle_timeout(now);
            while let Some(t) = self.engine.poll_transmit(now, &mut buf) {
                let dst = SocketAddrV6::new(t.dst, PORT, 0, self.scope);
                let _ = self.ucast.send_to(&buf[..t.len], dst);
            }
            while self.engine.poll_event().is_some() {}
            std::thread::sleep(Duration::from_millis(1));
        }
        done(self)
    }

    fn route(&self, p: &str) -> Option<RouteInfo> {
        self.engine
            .installed_route(&prefix(p), &Prefix::DEFAULT)
            .filter(|r| r.metric < wire::INFINITY)
    }
}

fn prefix(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix::from_addr(a.parse().unwrap(), l.parse().unwrap())
}

/// Runs `f` in a thread inside a fresh network namespace.
fn in_new_netns(f: impl FnOnce() + Send + 'static) {
    let t = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        f()
    });
    if let Err(e) = t.join() {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn routes_flow_both_ways_with_babeld_on_a_tunnel_link_with_timestamps() {
    if !usable() {
        return;
    }
    in_new_netns(|| {
        let babeld = start_babeld(
            "plain",
            "interface vi1 type tunnel hello-interval 1 max-rtt-penalty 5000 rtt-max 500 rtt-decay 125",
        )
        .unwrap();
        let mut d = Driver::new(None, LinkKind::Tunnel).unwrap();
        let babeld_rtt = |log: &str| {
            log.lines().any(|l| {
                l.starts_with("Neighbour fe80::1 dev vi1")
                    && l.contains(" rtt ")
                    && !l.contains(" rtt 0.000")
            })
        };
        let ok = d.run_until(Duration::from_secs(25), |d| {
            d.route("2001:db8:2::/48").is_some()
                && babeld
                    .kernel_route("2001:db8:1::/48")
                    .contains("via fe80::1")
                && d.engine.neighbours(d.now()).any(|n| n.rtt_us.is_some())
                && babeld_rtt(&babeld.log())
        });
        let log = babeld.log();
        assert!(
            ok,
            "no convergence with babeld; its log ends:\n{}",
            tail(&log)
        );
        let r = d.route("2001:db8:2::/48").unwrap();
        let nb = d.engine.neighbours(d.now()).next().unwrap();
        // babeld's tunnel cost 96, plus our RTT penalty if the measured RTT (a veth,
        // but timed by this test's polling loop) exceeds rtt-min.
        let rtt = nb.rtt_us.unwrap();
        assert!(rtt < 50_000, "veth RTT {rtt} µs");
        let penalty = if rtt <= 10_000 {
            0
        } else {
            5000 * (rtt - 10_000) / 490_000
        };
        assert_eq!(nb.cost as u32, 96 + penalty);
        assert_eq!(r.metric, nb.cost);
        assert_eq!(r.next_hop, THEIRS);
        assert_eq!(r.router_id, RouterId([0, 0, 0, 0, 0, 0, 0, 0x0b]));
        // babeld's own view: our prefix at metric 96 with refmetric 0 through us, and an
        // RTT to us from our timestamps.
        assert!(
            log.lines()
                .any(|l| l.starts_with("2001:db8:1::/48 from ::/0 metric 96 (")
                    && l.contains("refmetric 0 id 00:00:00:00:00:00:00:0a")
                    && l.contains("neigh fe80::1")),
            "{}",
            tail(&log)
        );
        assert!(babeld_rtt(&log));
        assert_eq!(d.engine.stats().tlvs_ignored, 0);
    });
}

fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(2000);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

const KEY: &str = "000102030405060708090a0b0c0d0e0f";

#[test]
fn blake2s_mac_with_babeld_same_key_works_and_wrong_key_is_rejected() {
    if !usable() {
        return;
    }
    in_new_netns(|| {
        let babeld = start_babeld(
            "mac",
            &format!(
                "key id k1 type blake2s128 value {KEY}\ninterface vi1 hello-interval 1 key k1"
            ),
        )
        .unwrap();
        let key = MacKey::new(MacAlgorithm::Blake2s128, &crate::selftest::hex(KEY)).unwrap();
        let mut d = Driver::new(Some(key), LinkKind::Wired).unwrap();
        let ok = d.run_until(Duration::from_secs(25), |d| {
            d.route("2001:db8:2::/48").is_some()
                && babeld
                    .kernel_route("2001:db8:1::/48")
                    .contains("via fe80::1")
        });
        assert!(
            ok,
            "no convergence with a shared key:\n{}",
            tail(&babeld.log())
        );
        assert_eq!(d.engine.stats().mac_rejected, 0);
        assert!(
            d.engine.stats().challenges_sent >= 1,
            "babeld's index was challenged"
        );
    });
    in_new_netns(|| {
        let babeld = start_babeld(
            "badmac",
            &format!(
                "key id k1 type blake2s128 value {KEY}\ninterface vi1 hello-interval 1 key k1"
            ),
        )
        .unwrap();
        let wrong = MacKey::new(MacAlgorithm::Blake2s128, &[0x55; 16]).unwrap();
        let mut d = Driver::new(Some(wrong), LinkKind::Wired).unwrap();
        d.run_until(Duration::from_secs(8), |_| false);
        assert!(d.route("2001:db8:2::/48").is_none());
        assert!(d.engine.stats().mac_rejected >= 5);
        assert!(!babeld.kernel_route("2001:db8:1::/48").contains("via"));
        assert!(!babeld.log().contains("Neighbour fe80::1 dev vi1 reach f"));
    });
}
