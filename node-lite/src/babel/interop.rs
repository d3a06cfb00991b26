//! The engine against Debian's babeld 1.12 with real sockets (issue 5 interop): over
//! one veth, on a line ours - babeld - babeld, and in a triangle where a link is cut
//! silently and the switch-over time is compared with babeld's own in our place.
//! Needs root and /usr/sbin/babeld (tests/setup.sh installs it); skipped with a
//! message otherwise.
//!
//! The test thread moves into a fresh network namespace with unshare(2) and drives the
//! engine with two UDP sockets per interface (ff02::1:6 and our link-local address,
//! port 6696); each babeld runs in a named namespace. Multi-node links go through a
//! bridge in a "wire" namespace, where they can be cut without either end seeing
//! its carrier drop (the kernel here has no netem). Drop guards kill babeld and
//! delete the namespaces on every exit path; every loop is bounded.

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

/// A named network namespace, with babeld in it once started; babeld is killed and
/// the namespace deleted on drop.
struct Netns {
    name: String,
    dir: PathBuf,
    babeld: Option<Child>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut c) = self.babeld.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh(&["ip", "netns", "del", &self.name]);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Netns {
    /// `b6i-<pid>-<tag>`: tags differ between tests, which run in parallel.
    fn new(tag: &str) -> Result<Netns, String> {
        let name = format!("b6i-{}-{tag}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        sh(&["ip", "netns", "add", &name])?;
        let ns = Netns {
            name,
            dir,
            babeld: None,
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn ip(&self, args: &[&str]) -> Result<String, String> {
        sh(&[&["ip", "-n", self.name.as_str()], args].concat())
    }

    /// Something for babeld to redistribute: a static route to `prefix` on a
    /// second veth.
    fn static_route(&self, prefix: &str) -> Result<(), String> {
        self.ip(&[
            "link", "add", "dum0", "type", "veth", "peer", "name", "dum1",
        ])?;
        self.ip(&["link", "set", "dum0", "up"])?;
        self.ip(&["link", "set", "dum1", "up"])?;
        self.ip(&[
            "-6", "route", "add", prefix, "dev", "dum0", "proto", "static",
        ])?;
        Ok(())
    }

    /// Starts babeld with router-id `id` on `ifaces`, redistributing `prefix`.
    fn start_babeld(
        &mut self,
        id: u8,
        prefix: &str,
        conf: &str,
        ifaces: &[&str],
    ) -> Result<(), String> {
        self.static_route(prefix)?;
        let dir = &self.dir;
        fs::write(
            dir.join("babeld.conf"),
            format!(
                "router-id 00:00:00:00:00:00:00:{id:02x}\nredistribute local deny\n{conf}\n\
                 redistribute ip {prefix} eq 48\nredistribute deny\n"
            ),
        )
        .map_err(|e| e.to_string())?;
        let out = fs::File::create(dir.join("babeld.out")).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, BABELD, "-d", "1"])
            .args(["-I", &d("babeld.pid"), "-S", &d("babeld.state")])
            .args(["-c", &d("babeld.conf")])
            .args(ifaces)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("babeld: {e}"))?;
        self.babeld = Some(child);
        Ok(())
    }

    /// The dump babeld prints in debug mode (routes and neighbours), latest copy.
    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("babeld.out")).unwrap_or_default()
    }

    fn kernel_route(&self, prefix: &str) -> String {
        self.ip(&["-6", "route", "show", prefix])
            .unwrap_or_default()
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

/// Interface `name` in `ns` (`None`: this thread's namespace), up with the link-local
/// address `addr` and no other.
fn set_up(ns: Option<&Netns>, name: &str, addr: &str) -> Result<(), String> {
    let ip = |args: &[&str]| match ns {
        Some(ns) => ns.ip(args),
        None => sh(&[&["ip"], args].concat()),
    };
    ip(&["link", "set", name, "addrgenmode", "none"])?;
    ip(&["link", "set", name, "up"])?;
    ip(&[
        "-6",
        "addr",
        "add",
        &format!("{addr}/64"),
        "dev",
        name,
        "nodad",
    ])?;
    Ok(())
}

/// Sets up the veth (ours in the current thread's namespace), starts babeld with
/// `conf` on the other end, originating 2001:db8:2::/48.
fn start_babeld(tag: &str, conf: &str) -> Result<Netns, String> {
    let mut b = Netns::new(tag)?;
    sh(&["ip", "link", "set", "lo", "up"])?;
    sh(&[
        "ip", "link", "add", "vi0", "type", "veth", "peer", "name", "vi1", "netns", &b.name,
    ])?;
    set_up(None, "vi0", "fe80::1")?;
    set_up(Some(&b), "vi1", "fe80::2")?;
    b.start_babeld(0x0b, "2001:db8:2::/48", conf, &["vi1"])?;
    Ok(b)
}

/// One end of a link: a namespace (`None`: this thread's), its interface, its
/// link-local address.
type End<'a> = (Option<&'a Netns>, &'a str, &'a str);

/// Joins two ends through a bridge in the `wire` namespace (bridge `br<n>`, ports
/// `<n>a` and `<n>b`), so that the link can be cut silently there.
fn wire_link(wire: &Netns, n: &str, ends: [End; 2]) -> Result<(), String> {
    let br = format!("br{n}");
    wire.ip(&["link", "add", &br, "type", "bridge", "mcast_snooping", "0"])?;
    wire.ip(&["link", "set", &br, "up"])?;
    for ((ns, name, addr), side) in ends.into_iter().zip(["a", "b"]) {
        let port = format!("{n}{side}");
        let add = ["link", "add", name, "type", "veth", "peer", "name", &port];
        let add = [&add[..], &["netns", &wire.name]].concat();
        match ns {
            Some(ns) => ns.ip(&add)?,
            None => sh(&[&["ip"], &add[..]].concat())?,
        };
        set_up(ns, name, addr)?;
        wire.ip(&["link", "set", &port, "addrgenmode", "none"])?;
        wire.ip(&["link", "set", &port, "master", &br, "up"])?;
    }
    Ok(())
}

/// Cuts (`up` false) or restores a link made by [`wire_link`] without telling either
/// end: with the bridge down its ports drop everything, while the veths keep their
/// carrier. (A veth end taken down drops its peer's carrier, which babeld notices.)
fn set_link(wire: &Netns, n: &str, up: bool) -> Result<(), String> {
    let state = if up { "up" } else { "down" };
    wire.ip(&["link", "set", &format!("br{n}"), state])?;
    Ok(())
}

fn ifindex(name: &str) -> Result<u32, String> {
    let out = sh(&["ip", "-o", "link", "show", name])?;
    out.split(':')
        .next()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("no index for {name}: {out}"))
}

/// One interface of ours: a Babel link with its sockets.
struct DriverLink {
    link: LinkId,
    ucast: UdpSocket,
    mcast: UdpSocket,
    scope: u32,
}

/// Our side: the engine on real sockets, one link per interface (`OURS` on each),
/// run until `done` or the deadline.
struct Driver {
    engine: Engine,
    links: Vec<DriverLink>,
    start: WallClock,
}

impl Driver {
    fn new(
        mac: Option<MacKey>,
        kind: LinkKind,
        ifaces: &[&str],
        hello_ms: u32,
    ) -> Result<Driver, String> {
        let mut cfg = EngineConfig::new(RouterId([0, 0, 0, 0, 0, 0, 0, 0x0a]), 42);
        cfg.mac.sign = mac;
        cfg.limits.originated = 2048;
        let now = Instant::ZERO;
        let mut engine = Engine::new(cfg, now);
        engine.originate(now, prefix("2001:db8:1::/48"), Prefix::DEFAULT);
        let mut links = Vec::new();
        for name in ifaces {
            let scope = ifindex(name)?;
            // Bound to an interface (the scope): one pair of sockets per link.
            let ucast = UdpSocket::bind(SocketAddrV6::new(OURS, PORT, 0, scope))
                .map_err(|e| format!("bind unicast on {name}: {e}"))?;
            let mcast = UdpSocket::bind(SocketAddrV6::new(MULTICAST, PORT, 0, scope))
                .map_err(|e| format!("bind multicast on {name}: {e}"))?;
            mcast
                .join_multicast_v6(&MULTICAST, scope)
                .map_err(|e| format!("join ff02::1:6 on {name}: {e}"))?;
            for s in [&ucast, &mcast] {
                s.set_nonblocking(true).map_err(|e| e.to_string())?;
            }
            let link = engine
                .add_link(
                    now,
                    LinkConfig::new(kind, OURS).with_hello_interval_ms(hello_ms),
                )
                .ok_or("no link slot")?;
            links.push(DriverLink {
                link,
                ucast,
                mcast,
                scope,
            });
        }
        Ok(Driver {
            engine,
            links,
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
            for l in &self.links {
                for (s, to) in [(&l.ucast, OURS), (&l.mcast, MULTICAST)] {
                    for _ in 0..64 {
                        let Ok((n, std::net::SocketAddr::V6(from))) = s.recv_from(&mut buf) else {
                            break;
                        };
                        if *from.ip() == OURS {
                            continue; // our own multicast, looped back
                        }
                        self.engine.handle_packet(now, l.link, from, to, &buf[..n]);
                    }
                }
            }
            self.engine.handle_timeout(now);
            while let Some(t) = self.engine.poll_transmit(now, &mut buf) {
                let Some(l) = self.links.iter().find(|l| l.link == t.link) else {
                    continue;
                };
                let dst = SocketAddrV6::new(t.dst, PORT, 0, l.scope);
                let _ = l.ucast.send_to(&buf[..t.len], dst);
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
        let mut d = Driver::new(None, LinkKind::Tunnel, &["vi0"], 1000).unwrap();
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
        // babeld's own view: our prefix with refmetric 0 through us, at 96 plus
        // at most the RTT cost babeld printed for us (non-zero when a loaded
        // machine delays our packets past rtt-min; babeld folds it into its
        // routes lazily).
        let mut rttcost = 0;
        let seen = log.lines().any(|l| {
            if l.starts_with("Neighbour fe80::1 ") {
                rttcost = l
                    .split_once("rttcost ")
                    .and_then(|(_, r)| r.split_whitespace().next()?.parse::<u32>().ok())
                    .unwrap_or(0);
            }
            let metric = l
                .strip_prefix("2001:db8:1::/48 from ::/0 metric ")
                .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok());
            metric.is_some_and(|m| (96..=96 + rttcost).contains(&m))
                && l.contains("refmetric 0 id 00:00:00:00:00:00:00:0a")
                && l.contains("neigh fe80::1")
        });
        assert!(seen, "{}", tail(&log));
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

/// babeld at the far end of the veth, signing with [`KEY`] (BLAKE2s).
fn start_keyed_babeld(tag: &str) -> Netns {
    start_babeld(
        tag,
        &format!("key id k1 type blake2s128 value {KEY}\ninterface vi1 hello-interval 1 key k1"),
    )
    .unwrap()
}

fn shared_key() -> MacKey {
    MacKey::new(MacAlgorithm::Blake2s128, &crate::selftest::hex(KEY)).unwrap()
}

#[test]
fn blake2s_mac_with_babeld_same_key_works_and_wrong_key_is_rejected() {
    if !usable() {
        return;
    }
    in_new_netns(|| {
        let babeld = start_keyed_babeld("mac");
        let key = shared_key();
        let mut d = Driver::new(Some(key), LinkKind::Wired, &["vi0"], 1000).unwrap();
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
        let babeld = start_keyed_babeld("badmac");
        let wrong = MacKey::new(MacAlgorithm::Blake2s128, &[0x55; 16]).unwrap();
        let mut d = Driver::new(Some(wrong), LinkKind::Wired, &["vi0"], 1000).unwrap();
        d.run_until(Duration::from_secs(8), |_| false);
        assert!(d.route("2001:db8:2::/48").is_none());
        assert!(d.engine.stats().mac_rejected >= 5);
        assert!(!babeld.kernel_route("2001:db8:1::/48").contains("via"));
        assert!(!babeld.log().contains("Neighbour fe80::1 dev vi1 reach f"));
    });
}

/// 1,002 prefixes from us reach babeld over a MAC-keyed link, every one ([issue 20]
/// item 1: full updates that filled a packet lost their PC TLV, and the packet; 84
/// of 1,002 got through). babeld checks every packet's PC and MAC.
#[test]
fn a_thousand_routes_reach_babeld_with_mac() {
    if !usable() {
        return;
    }
    in_new_netns(|| {
        let babeld = start_keyed_babeld("many");
        let key = shared_key();
        let mut d = Driver::new(Some(key), LinkKind::Wired, &["vi0"], 1000).unwrap();
        let now = d.now();
        for i in 0..1002u16 {
            let p = Prefix::from_addr(Ipv6Addr::new(0x2001, 0xdb8, 0x100 + i, 0, 0, 0, 0, 0), 48);
            assert!(d.engine.originate(now, p, Prefix::DEFAULT));
        }
        let learnt = || {
            babeld
                .ip(&["-6", "route", "show", "root", "2001:db8::/32"])
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("via fe80::1"))
                .count()
        };
        // One more: our own 2001:db8:1::/48.
        let all = d.run_until(Duration::from_secs(30), |_| learnt() >= 1003);
        assert!(
            all,
            "babeld installed {} of 1003 routes\n{}",
            learnt(),
            tail(&babeld.log())
        );
    });
}

/// `interface ... type wired hello-interval` lines for babeld.
fn wired(ifaces: &[&str], hello_s: u32) -> String {
    ifaces
        .iter()
        .map(|i| format!("interface {i} type wired hello-interval {hello_s}\n"))
        .collect()
}

/// Polls `f` every 100 ms until it holds or `max` has passed.
fn wait_for(max: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = WallClock::now() + max;
    loop {
        if f() {
            return true;
        }
        if WallClock::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

const C: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 3);

/// babeld's dump has a route to `prefix` at `metric` through neighbour `neigh`.
fn babeld_has_route(log: &str, prefix: &str, metric: u16, neigh: &str) -> bool {
    let head = format!("{prefix} from ::/0 metric {metric} (");
    log.lines()
        .any(|l| l.starts_with(&head) && l.contains(&format!(" neigh {neigh}")))
}

#[test]
fn line_through_two_babelds_routes_both_ways_with_additive_metrics() {
    if !usable() {
        return;
    }
    // Ours (fe80::1) - babeld B (fe80::2) - babeld C (fe80::3).
    in_new_netns(|| {
        let wire = Netns::new("line-w").unwrap();
        let mut b = Netns::new("line-b").unwrap();
        let mut c = Netns::new("line-c").unwrap();
        wire_link(
            &wire,
            "ab",
            [(None, "toB", "fe80::1"), (Some(&b), "toA", "fe80::2")],
        )
        .unwrap();
        wire_link(
            &wire,
            "bc",
            [(Some(&b), "toC", "fe80::2"), (Some(&c), "toB", "fe80::3")],
        )
        .unwrap();
        let ifs = ["toA", "toC"];
        b.start_babeld(0x0b, "2001:db8:2::/48", &wired(&ifs, 1), &ifs)
            .unwrap();
        c.start_babeld(0x0c, "2001:db8:3::/48", &wired(&["toB"], 1), &["toB"])
            .unwrap();
        let mut d = Driver::new(None, LinkKind::Wired, &["toB"], 1000).unwrap();
        let ok = d.run_until(Duration::from_secs(30), |d| {
            d.route("2001:db8:3::/48").is_some()
                && d.route("2001:db8:2::/48").is_some()
                && c.kernel_route("2001:db8:1::/48").contains("via fe80::2")
                && babeld_has_route(&c.log(), "2001:db8:1::/48", 192, "fe80::2")
        });
        assert!(
            ok,
            "no convergence on the line; C's log ends:\n{}",
            tail(&c.log())
        );
        // One wired hop costs 96: C is two hops away, through B, still originated by C.
        let r = d.route("2001:db8:3::/48").unwrap();
        assert_eq!(r.metric, 192);
        assert_eq!(r.next_hop, THEIRS);
        assert_eq!(r.router_id, RouterId([0, 0, 0, 0, 0, 0, 0, 0x0c]));
        assert_eq!(d.route("2001:db8:2::/48").unwrap().metric, 96);
        // C's view of ours: metric 192, B's refmetric 96, our router-id.
        let log = c.log();
        assert!(
            log.lines().any(|l| {
                l.starts_with("2001:db8:1::/48 from ::/0 metric 192 (")
                    && l.contains("refmetric 96 id 00:00:00:00:00:00:00:0a")
            }),
            "{}",
            tail(&log)
        );
        assert_eq!(d.engine.stats().tlvs_ignored, 0);
        // A silent cut of A-B: we lose B and C, and B's retraction tells C. Both ends
        // must notice within a few Hello intervals (babeld: 2 missed Hellos out of 3).
        let start = WallClock::now();
        set_link(&wire, "ab", false).unwrap();
        let ok = d.run_until(Duration::from_secs(20), |d| {
            d.route("2001:db8:2::/48").is_none()
                && d.route("2001:db8:3::/48").is_none()
                && (!c.kernel_route("2001:db8:1::/48").contains("via")
                    || c.log()
                        .contains("\n2001:db8:1::/48 from ::/0 metric 65535 ("))
        });
        let t = start.elapsed();
        assert!(ok, "cut not noticed in {t:?}:\n{}", tail(&c.log()));
        eprintln!("line: routes through a silently cut link retracted in {t:?}");
        assert!(t <= Duration::from_secs(12), "{t:?}");
    });
}

/// Node A of the triangle: our engine in this thread's namespace, or babeld.
enum NodeA {
    Ours(Box<Driver>),
    Babeld(Netns),
}

impl NodeA {
    /// A's next hop to C's prefix and the metric, as A has installed it.
    fn route_to_c(&mut self) -> Option<(Ipv6Addr, Option<u16>)> {
        match self {
            NodeA::Ours(d) => d
                .route("2001:db8:3::/48")
                .map(|r| (r.next_hop, Some(r.metric))),
            NodeA::Babeld(ns) => {
                let r = ns.kernel_route("2001:db8:3::/48");
                let via = r.split_whitespace().skip_while(|w| *w != "via").nth(1)?;
                Some((via.parse().ok()?, None))
            }
        }
    }

    /// Whether A knows the detour through B (metric 192) besides the direct route.
    fn knows_detour(&self) -> bool {
        match self {
            NodeA::Ours(d) => d.engine.routes().any(|r| {
                r.prefix == prefix("2001:db8:3::/48") && r.next_hop == THEIRS && r.metric == 192
            }),
            NodeA::Babeld(ns) => babeld_has_route(&ns.log(), "2001:db8:3::/48", 192, "fe80::2"),
        }
    }

    /// Lets time pass (our engine needs driving) until `done` or `max`.
    fn run_until(&mut self, max: Duration, mut done: impl FnMut(&mut NodeA) -> bool) -> bool {
        match self {
            NodeA::Ours(_) => {
                let deadline = WallClock::now() + max;
                // Drive in 100 ms slices: `done` needs `&mut self`.
                while WallClock::now() < deadline {
                    if done(self) {
                        return true;
                    }
                    if let NodeA::Ours(d) = self {
                        d.run_until(Duration::from_millis(100), |_| false);
                    }
                }
                done(self)
            }
            NodeA::Babeld(_) => wait_for(max, || done(self)),
        }
    }
}

/// The triangle A-B, B-C, A-C, all wired links with `hello` s Hellos, A being our
/// engine or babeld, B and C babeld. Once A routes to C directly (metric 96) and
/// knows the detour through B, the A-C link is cut silently; returns the time A
/// takes to route to C through B.
fn triangle_switch_over(tag: &str, hello: u32, ours: bool) -> Result<Duration, String> {
    let wire = Netns::new(&format!("{tag}-w"))?;
    let a_ns = if ours {
        None
    } else {
        Some(Netns::new(&format!("{tag}-a"))?)
    };
    let mut b = Netns::new(&format!("{tag}-b"))?;
    let mut c = Netns::new(&format!("{tag}-c"))?;
    let a = a_ns.as_ref();
    wire_link(
        &wire,
        "ab",
        [(a, "toB", "fe80::1"), (Some(&b), "toA", "fe80::2")],
    )?;
    wire_link(
        &wire,
        "bc",
        [(Some(&b), "toC", "fe80::2"), (Some(&c), "toB", "fe80::3")],
    )?;
    wire_link(
        &wire,
        "ac",
        [(a, "toC", "fe80::1"), (Some(&c), "toA", "fe80::3")],
    )?;
    set_link(&wire, "ab", false)?;
    let conf = |ifs: &[&str]| wired(ifs, hello);
    b.start_babeld(
        0x0b,
        "2001:db8:2::/48",
        &conf(&["toA", "toC"]),
        &["toA", "toC"],
    )?;
    c.start_babeld(
        0x0c,
        "2001:db8:3::/48",
        &conf(&["toA", "toB"]),
        &["toA", "toB"],
    )?;
    let mut a = match a_ns {
        None => {
            let d = Driver::new(None, LinkKind::Wired, &["toB", "toC"], hello * 1000)?;
            NodeA::Ours(Box::new(d))
        }
        Some(mut ns) => {
            let ifs = ["toB", "toC"];
            ns.start_babeld(0x0a, "2001:db8:1::/48", &conf(&ifs), &ifs)?;
            NodeA::Babeld(ns)
        }
    };
    let hello = Duration::from_secs(hello as u64);
    let to_c = |a: &mut NodeA, via: Ipv6Addr, metric: u16| {
        a.route_to_c()
            .is_some_and(|(v, m)| v == via && m.is_none_or(|m| m == metric))
    };
    let failed = |a: &mut NodeA, what: &str| {
        let routes = match &*a {
            NodeA::Ours(d) => format!(
                "{:?}\nneighbours: {:?}",
                d.engine.routes().collect::<Vec<_>>(),
                d.engine.neighbours(d.now()).collect::<Vec<_>>()
            ),
            NodeA::Babeld(ns) => tail(&ns.log()).to_string(),
        };
        Err(format!(
            "{tag}: {what}; A's routes:\n{routes}\nB's log ends:\n{}",
            tail(&b.log())
        ))
    };
    // A-B only once A and B both route to C directly: had the detour come first
    // (B learning C through A), the direct route's smoothed metric would take
    // half a minute to win (in babeld too).
    let b_direct = || b.kernel_route("2001:db8:3::/48").contains("via fe80::3");
    if !a.run_until(Duration::from_secs(10) + 5 * hello, |a| {
        to_c(a, C, 96) && b_direct()
    }) {
        return failed(&mut a, "no direct route to C");
    }
    set_link(&wire, "ab", true)?;
    // Generous: once (in ~20 runs) B's detour had not reached us after 30 s at 4 s
    // Hellos; the error then shows both tables.
    if !a.run_until(Duration::from_secs(10) + 12 * hello, |a| a.knows_detour()) {
        return failed(&mut a, "no detour to C through B");
    }
    // Full Hello histories everywhere before the cut.
    a.run_until(3 * hello, |_| false);
    let start = WallClock::now();
    set_link(&wire, "ac", false)?;
    if !a.run_until(Duration::from_secs(5) + 10 * hello, |a| {
        to_c(a, THEIRS, 192)
    }) {
        return failed(&mut a, "no switch to B after the cut");
    }
    let t = start.elapsed();
    Ok(t)
}

/// Issue 5's measurement: the time to switch routes after a silent link cut, ours
/// next to babeld's in the same topology, at 1 s and 4 s Hellos (all four runs in
/// parallel). babeld needs 2 missed Hellos out of 3 before the cost goes up, so about
/// 3-4 intervals.
#[test]
fn triangle_silent_cut_switch_over_next_to_babeld() {
    if !usable() {
        return;
    }
    let cases = [(1, true), (1, false), (4, true), (4, false)];
    let runs: Vec<_> = cases
        .iter()
        .map(|&(hello, ours)| {
            std::thread::spawn(move || {
                let tag = format!("tri{hello}{}", if ours { "o" } else { "b" });
                if ours {
                    // Our engine's interfaces live in this thread's own namespace.
                    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| format!("unshare: {e}"))?;
                }
                triangle_switch_over(&tag, hello, ours)
            })
        })
        .collect();
    let times: Vec<Result<Duration, String>> = runs
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|_| Err("panicked".into())))
        .collect();
    let show = |r: &Result<Duration, String>| match r {
        Ok(t) => format!("{:.1} s", t.as_secs_f64()),
        Err(_) => "-".into(),
    };
    eprintln!("silent cut of A-C in a triangle, time until A routes to C via B:");
    eprintln!("{:<8}{:>12}{:>14}", "hello", "re6st-lite", "babeld 1.12");
    for (i, hello) in [1, 4].iter().enumerate() {
        let (o, b) = (&times[2 * i], &times[2 * i + 1]);
        eprintln!("{:<8}{:>12}{:>14}", format!("{hello} s"), show(o), show(b));
    }
    let errors: Vec<String> = times
        .iter()
        .zip(cases)
        .filter_map(|(r, (hello, ours))| {
            let who = if ours { "re6st-lite" } else { "babeld" };
            r.as_ref()
                .err()
                .map(|e| format!("{who} at {hello} s Hellos: {e}"))
        })
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    for (i, hello) in [1, 4].into_iter().enumerate() {
        let hello = Duration::from_secs(hello);
        let (o, b) = (
            times[2 * i].clone().unwrap(),
            times[2 * i + 1].clone().unwrap(),
        );
        // Two Hellos must be missed first: quicker means the cut was not silent.
        assert!(
            b >= hello && o >= hello,
            "{o:?} and {b:?} at {hello:?} Hellos"
        );
        // Generous for a busy 2-core machine: the point is the same order as babeld.
        assert!(
            o <= 3 * b + 2 * hello,
            "ours {o:?} against babeld's {b:?} at {hello:?} Hellos"
        );
    }
}

/// babeld alone at re6st's default hello (15 s), for the failover figures
/// next to `tests/tests/failover.rs` (`-- --ignored --nocapture`; a minute).
#[test]
#[ignore]
fn babeld_switch_over_at_the_default_hello() {
    if !usable() {
        return;
    }
    let t = triangle_switch_over("tri15b", 15, false);
    eprintln!("babeld 1.12, 15 s hellos, silent cut: A routes to C via B after {t:?}");
    assert!(t.is_ok());
}
