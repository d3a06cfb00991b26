//! The driver's TUN and netlink code against a real kernel, inside a private
//! network namespace (needs root; CI runs as root). The test thread moves
//! into a fresh namespace with unshare(2); processes it spawns (`ip`, `ping`)
//! inherit it, and the namespace disappears with the thread.

use std::net::Ipv6Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use node_lite::driver::netlink::{Netlink, Route, RTPROT_RE6ST};
use node_lite::driver::tun::Tun;
use node_lite::net::Ipv6Net;

fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root for a network namespace");
        return None;
    }
    let t = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        f()
    });
    Some(t.join().expect("test thread panicked"))
}

fn ip(args: &str) -> String {
    let out = Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn net(s: &str) -> Ipv6Net {
    s.parse().unwrap()
}

#[test]
fn tun_address_routes_and_packets() {
    in_new_netns(|| tun_in_netns(false));
}

/// The same with offloads: each packet behind a virtio_net_hdr, which
/// `Tun::send` adds and the test strips.
#[test]
fn tun_with_offloads() {
    in_new_netns(|| tun_in_netns(true));
}

fn tun_in_netns(offload: bool) {
    {
        let tun = Tun::open("re6sttest0", offload).expect("open TUN");
        assert_eq!(tun.offload(), offload, "this kernel has TUN offloads");
        let skip = if offload {
            node_lite::offload::VNET_HDR_LEN
        } else {
            0
        };
        assert_eq!(tun.name(), "re6sttest0");
        let mut nl = Netlink::open().expect("netlink socket");
        let index = nl.link_index("re6sttest0").unwrap();
        assert!(nl.link_index("nosuch0").is_err());
        node_lite::driver::iface::set_up("re6sttest0", Some(1400)).unwrap();
        let node: Ipv6Addr = "2001:db8:42:1::1".parse().unwrap();
        nl.add_address(index, node, 64).unwrap();
        nl.add_address(index, node, 64).unwrap(); // idempotent

        let link = ip("-6 link show re6sttest0");
        assert!(link.contains("mtu 1400") && link.contains(",UP"), "{link}");
        assert!(ip("-6 addr show dev re6sttest0").contains("2001:db8:42:1::1/64"));

        let network = Route::dev(net("2001:db8:42::/48"), index);
        let gateway = Route {
            src: net("2001:db8:42::/48"),
            ..Route::dev(Ipv6Net::DEFAULT, index)
        };
        let unreachable = Route {
            oif: None,
            unreachable: true,
            ..Route::dev(net("2001:db8:99::/48"), index)
        };
        for r in [&network, &gateway, &unreachable] {
            nl.add_route(r).unwrap();
            nl.add_route(r).unwrap(); // replace, not a duplicate
        }
        let shown = ip(&format!("-6 route show proto {RTPROT_RE6ST}"));
        assert!(shown.contains("2001:db8:42::/48 dev re6sttest0"), "{shown}");
        assert!(shown.contains("unreachable 2001:db8:99::/48"), "{shown}");
        let shown = ip("-6 route show from 2001:db8:42::/48");
        assert!(
            shown.contains("default from 2001:db8:42::/48 dev re6sttest0"),
            "{shown}"
        );
        let mut own = nl.own_routes().unwrap();
        own.sort_by_key(|r| (r.dst, r.src));
        let mut want = vec![network.clone(), gateway.clone(), unreachable.clone()];
        want.sort_by_key(|r| (r.dst, r.src));
        assert_eq!(own, want);

        // A packet the kernel routes into the overlay comes out of the TUN
        // device as one whole IPv6 packet, no packet-information header.
        let dst: Ipv6Addr = "2001:db8:42:2::5".parse().unwrap();
        let ping = Command::new("ping")
            .args(["-6", "-c", "1", "-W", "1", "-s", "100", &dst.to_string()])
            .output()
            .expect("run ping");
        assert!(!ping.status.success(), "nobody answers in the overlay");
        tun.set_nonblocking().unwrap();
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(3);
        let packet = loop {
            match tun.recv(&mut buf) {
                Ok(n) if buf[skip] >> 4 == 6 && buf[skip + 6] == 58 && buf[skip + 40] == 128 => {
                    break &buf[skip..n]
                }
                Ok(_) => continue, // router solicitations and the like
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no echo request from the TUN");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("TUN read: {e}"),
            }
        };
        assert_eq!(packet.len(), 40 + 8 + 100);
        assert_eq!(&packet[8..24], &node.octets());
        assert_eq!(&packet[24..40], &dst.octets());

        // The kernel accepts our Packet Too Big for that packet (so its
        // checksum and quoting are right) and lowers the path MTU.
        let router: Ipv6Addr = "2001:db8:42:2::1".parse().unwrap();
        let mut ptb = [0u8; 1280];
        let n = node_lite::ip::packet_too_big(router, packet, 1300, &mut ptb).unwrap();
        tun.send(&ptb[..n]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let got = ip(&format!("-6 route get {dst}"));
            if got.contains("mtu 1300") {
                break;
            }
            assert!(Instant::now() < deadline, "path MTU not lowered: {got}");
            std::thread::sleep(Duration::from_millis(20));
        }

        nl.del_route(&network).unwrap();
        assert!(
            nl.del_route(&network).is_err(),
            "deleting twice is an error"
        );
        let left = ip("-6 route");
        assert!(
            !left.lines().any(|l| l.starts_with("2001:db8:42::/48 ")),
            "{left}"
        );
        assert!(left.contains("default from 2001:db8:42::/48"), "{left}");
        nl.del_address(index, node, 64).unwrap();
        drop(tun);
        // The kernel unregisters the device after the last close returns
        // (netdev_run_todo), so a busy machine can still list it briefly.
        let deadline = Instant::now() + Duration::from_secs(5);
        while nl.link_index("re6sttest0").is_ok() {
            assert!(Instant::now() < deadline, "the device goes with its fd");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn bad_tun_names_are_refused() {
    for offload in [false, true] {
        assert!(Tun::open("", offload).is_err());
        assert!(Tun::open("a-name-longer-than-15", offload).is_err());
    }
}
