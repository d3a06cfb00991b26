//! The LAN side of the node (options `lan`, `ra`, `rdnss`): each LAN
//! interface gets its /64 of the node's prefix (`<prefix>::1/64`, see
//! [`crate::lan`]), the kernel forwards between the LANs and the overlay
//! device, and a raw ICMPv6 socket per interface carries the router
//! advertisements the sans-IO [`Advertiser`] decides on.
//!
//! Routing: the kernel's connected route sends each LAN /64 to its
//! interface; whatever part of the prefix no LAN took is unreachable (else
//! it would go back into the overlay device, which routes the whole network
//! to the node); other nodes' prefixes go into the overlay as before.
//!
//! `ra 0` configures the addresses only and leaves advertising to another
//! daemon (odhcpd on OpenWrt). With `ra 1`, the node still goes quiet on an
//! interface where another router advertises its prefix, or where another
//! daemon of this host advertises. At shutdown a final advertisement with
//! every lifetime zero withdraws the prefix, then the addresses go.

#![allow(unsafe_code)] // setsockopt for the options nix does not wrap

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::task::Poll;
use std::time::Duration;

use log::{debug, info, warn};
use nix::sys::socket::{
    self, sockopt, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn6,
};
use tokio::io::unix::AsyncFd;

use super::clock::now;
use super::netlink::{Netlink, Route};
use crate::config::Config;
use crate::lan::ra::{self, Advertiser, Received};
use crate::lan::{self, wire};
use crate::net::Ipv6Net;

const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// linux/icmpv6.h: the ICMPv6 type filter of a raw socket.
const ICMP6_FILTER: libc::c_int = 1;

struct Iface {
    name: String,
    index: u32,
    prefix: Ipv6Net,
    ra: Option<(Advertiser, AsyncFd<OwnedFd>)>,
}

/// A `lan` interface as the status reports it.
#[derive(Clone, Debug)]
pub struct LanSummary {
    pub name: String,
    pub prefix: Ipv6Net,
    pub ra: bool,
}

/// The LAN interfaces, their addresses and advertisers.
#[derive(Default)]
pub struct Lan {
    ifaces: Vec<Iface>,
    unreachable: Option<Route>,
}

impl Lan {
    /// Configure every `lan` interface for the node's `subnet` in `network`.
    /// Problems are logged and the interface skipped: the overlay works
    /// without its LANs.
    pub fn start(config: &Config, subnet: Ipv6Net, network: Ipv6Net, nl: &mut Netlink) -> Lan {
        let mut lan = Lan::default();
        if config.lan.is_empty() {
            return lan;
        }
        if let Err(e) = std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1") {
            warn!("lan: cannot enable IPv6 forwarding: {e}");
        }
        let plan = lan::assign(subnet, config.lan.len());
        if subnet.prefix_len() > 64 {
            warn!(
                "lan: the node's prefix {subnet} is longer than /64, so hosts cannot \
                 autoconfigure (SLAAC needs a /64): {} gets {subnet} on-link and no router \
                 advertisements are sent; ask the registry for a /64 or shorter prefix",
                config.lan[0]
            );
        }
        for (name, a) in config.lan.iter().zip(plan.iter().copied()) {
            let Some(a) = a else {
                warn!("lan {name}: no /64 of {subnet} left for it, skipped");
                continue;
            };
            let index = match nl.link_index(name) {
                Ok(i) => i,
                Err(e) => {
                    warn!("lan {name}: {e}, skipped");
                    continue;
                }
            };
            let addr = a.prefix.host(1);
            if let Err(e) = nl.add_address(index, addr, a.prefix.prefix_len()) {
                warn!("lan {name}: adding {addr}/{}: {e}", a.prefix.prefix_len());
                continue;
            }
            info!("lan {name}: {addr}/{}", a.prefix.prefix_len());
            let ra = if !config.ra {
                info!("lan {name}: router advertisements left to another daemon (ra 0)");
                None
            } else if !a.slaac {
                None
            } else {
                let mut c = ra::Config::new(vec![a.prefix]);
                c.routes = vec![network];
                c.rdnss = config.rdnss.clone();
                c.mtu = sys_value(name, "mtu").and_then(|m| m.parse().ok());
                c.source_lladdr = sys_value(name, "address").and_then(|m| mac(&m));
                let seed =
                    u64::from_le_bytes(crate::tunnel::os_seed()[..8].try_into().expect("8 bytes"));
                match icmp_socket(name, index) {
                    Ok(s) => Some((Advertiser::new(c, now(), seed), s)),
                    Err(e) => {
                        warn!("lan {name}: no router advertisements: ICMPv6 socket: {e}");
                        None
                    }
                }
            };
            lan.ifaces.push(Iface {
                name: name.clone(),
                index,
                prefix: a.prefix,
                ra,
            });
        }
        if !lan.ifaces.is_empty() && lan::leftover(subnet, &plan) {
            let r = Route {
                unreachable: true,
                oif: None,
                ..Route::dev(subnet, 0)
            };
            match nl.add_route(&r) {
                Ok(()) => lan.unreachable = Some(r),
                Err(e) => warn!("lan: unreachable route for {subnet}: {e}"),
            }
        }
        lan
    }

    /// Wait for a solicitation, another router's advertisement or our
    /// next advertisement, and handle it. Cancel-safe (all work happens
    /// after the wait); pending forever without advertisers.
    pub async fn turn(&mut self) {
        let Some(wake) = self
            .ifaces
            .iter()
            .filter_map(|i| i.ra.as_ref().map(|(a, _)| a.poll_timeout()))
            .min()
        else {
            return std::future::pending().await;
        };
        let sleep = Duration::from_millis(wake.millis_since(now()));
        let ready = std::future::poll_fn(|cx| {
            for (k, i) in self.ifaces.iter().enumerate() {
                if let Some((_, s)) = &i.ra {
                    if let Poll::Ready(Ok(mut g)) = s.poll_read_ready(cx) {
                        g.clear_ready();
                        return Poll::Ready(Some(k));
                    }
                }
            }
            Poll::Pending
        });
        let readable = tokio::select! {
            k = ready => k,
            _ = tokio::time::sleep(sleep) => None,
        };
        if let Some(k) = readable {
            self.receive(k);
        }
        let mut out = [0u8; 1500];
        let t = now();
        for i in &mut self.ifaces {
            let Some((adv, sock)) = &mut i.ra else {
                continue;
            };
            if adv.poll_timeout() <= t && super::lan_babel::link_local(i.index).is_none() {
                // Else the kernel would pick the global source, which hosts
                // ignore: wait for duplicate address detection to finish.
                adv.not_ready(t);
                continue;
            }
            while let Some(tx) = adv.poll_transmit(t, &mut out) {
                if let Err(e) = send(sock.as_raw_fd(), &out[..tx.len], tx.dst, i.index) {
                    debug!("lan {}: router advertisement to {}: {e}", i.name, tx.dst);
                }
            }
        }
    }

    /// Read every message waiting on interface `k`'s socket.
    fn receive(&mut self, k: usize) {
        let i = &mut self.ifaces[k];
        let Some((adv, sock)) = &mut i.ra else {
            return;
        };
        let mut buf = [0u8; 1500];
        for _ in 0..64 {
            let (n, src, hops) = match recv(sock.as_raw_fd(), &mut buf) {
                Ok(r) => r,
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        debug!("lan {}: {e}", i.name);
                    }
                    return;
                }
            };
            let msg = &buf[..n];
            let from_this_host =
                wire::icmp_type(msg) == Some(wire::ROUTER_ADVERT) && is_own_address(src);
            match adv.handle_message(now(), src, hops, msg, from_this_host) {
                Ok(Received::Conflict { first: true }) => warn!(
                    "lan {}: another router advertises here ({src}{}): not sending router \
                     advertisements while it does (set `ra 0` to leave them to it)",
                    i.name,
                    if from_this_host {
                        ", on this host"
                    } else {
                        ", for our prefix"
                    }
                ),
                Ok(Received::OtherRouter) => debug!("lan {}: router {src} advertises", i.name),
                Ok(_) => {}
                Err(e) => debug!("lan {}: from {src}: ignored: {e:?}", i.name),
            }
        }
    }

    /// Withdraw: the final advertisement, then the addresses and routes.
    /// Each configured interface: its name, the prefix it got, and whether
    /// the node sends router advertisements on it.
    pub fn summary(&self) -> Vec<LanSummary> {
        self.ifaces
            .iter()
            .map(|i| LanSummary {
                name: i.name.clone(),
                prefix: i.prefix,
                ra: i.ra.is_some(),
            })
            .collect()
    }

    pub fn stop(&mut self, nl: &mut Netlink) {
        let mut out = [0u8; 1500];
        let t = now();
        for i in &self.ifaces {
            if let Some((adv, sock)) = &i.ra {
                if let Some(n) = adv.final_advert(t, &mut out) {
                    info!("lan {}: withdrawing {}", i.name, i.prefix);
                    let _ = send(sock.as_raw_fd(), &out[..n], ra::ALL_NODES, i.index);
                }
            }
            let _ = nl.del_address(i.index, i.prefix.host(1), i.prefix.prefix_len());
        }
        if let Some(r) = self.unreachable.take() {
            let _ = nl.del_route(&r);
        }
        self.ifaces.clear();
    }
}

/// `/sys/class/net/<name>/<what>`, trimmed.
fn sys_value(name: &str, what: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/class/net/{name}/{what}"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// `aa:bb:cc:dd:ee:ff`.
fn mac(s: &str) -> Option<[u8; 6]> {
    let mut m = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut m {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    (parts.next().is_none() && m != [0; 6]).then_some(m)
}

/// Whether `a` is an address of this host (`/proc/net/if_inet6`).
fn is_own_address(a: Ipv6Addr) -> bool {
    let hex: String = a.octets().iter().map(|b| format!("{b:02x}")).collect();
    std::fs::read_to_string("/proc/net/if_inet6")
        .map(|t| t.lines().any(|l| l.starts_with(&hex)))
        .unwrap_or(false)
}

fn setopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, val: &T) -> io::Result<()> {
    // SAFETY: `val` points to a live T of the size passed; the kernel only
    // reads it.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A raw ICMPv6 socket on interface `name` for Router Solicitations and
/// Advertisements (RFC 4861 §6.1: hop limit 255 both ways; the kernel
/// computes and checks ICMPv6 checksums).
fn icmp_socket(name: &str, index: u32) -> io::Result<AsyncFd<OwnedFd>> {
    let fd = socket::socket(
        AddressFamily::Inet6,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::IcmpV6,
    )?;
    socket::setsockopt(&fd, sockopt::BindToDevice, &name.into())?;
    socket::setsockopt(&fd, sockopt::Ipv6RecvHopLimit, &true)?;
    socket::setsockopt(&fd, sockopt::Ipv6MulticastHops, &255)?;
    let raw = fd.as_raw_fd();
    setopt(raw, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &255i32)?;
    setopt(raw, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, &0i32)?;
    setopt(
        raw,
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_IF,
        &(index as i32),
    )?;
    // Only solicitations and other routers' advertisements.
    let mut filter = [u32::MAX; 8];
    for t in [wire::ROUTER_SOLICIT, wire::ROUTER_ADVERT] {
        filter[usize::from(t >> 5)] &= !(1 << (t & 31));
    }
    setopt(raw, libc::IPPROTO_ICMPV6, ICMP6_FILTER, &filter)?;
    let mreq = libc::ipv6_mreq {
        ipv6mr_multiaddr: libc::in6_addr {
            s6_addr: ALL_ROUTERS.octets(),
        },
        ipv6mr_interface: index,
    };
    setopt(raw, libc::IPPROTO_IPV6, libc::IPV6_ADD_MEMBERSHIP, &mreq)?;
    // SAFETY: the OwnedFd moves into the AsyncFd, which closes it only when
    // dropped, after deregistering.
    unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}

fn send(fd: RawFd, msg: &[u8], dst: Ipv6Addr, index: u32) -> io::Result<()> {
    let to = SockaddrIn6::from(SocketAddrV6::new(dst, 0, 0, index));
    socket::sendto(fd, msg, &to, MsgFlags::empty())?;
    Ok(())
}

/// One message: its length, source and hop limit (0 if the kernel did not
/// say, which fails the check for 255).
fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Ipv6Addr, u8)> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(libc::c_int);
    let m = socket::recvmsg::<SockaddrIn6>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())?;
    let mut hops = 0u8;
    for c in m.cmsgs()? {
        if let socket::ControlMessageOwned::Ipv6HopLimit(h) = c {
            hops = u8::try_from(h).unwrap_or(0);
        }
    }
    let src = m.address.map_or(Ipv6Addr::UNSPECIFIED, |a| a.ip());
    Ok((m.bytes, src, hops))
}
