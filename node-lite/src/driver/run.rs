//! `re6st-lite run`: the node daemon's event loop.
//!
//! One tokio current-thread task owns everything: the TUN device, one UDP
//! socket per address family, the tunnel [`Endpoint`] and the forwarding
//! table. Each input (a packet from the kernel, a datagram from a peer, a
//! timer, a signal) is handed to the sans-IO state machines, then their
//! output is carried out. No locks, no task per tunnel.
//!
//! Routing, for now, is one hop: a tunnel peer's subnet (from its
//! certificate) is routed through its tunnel. Babel fills the same table
//! with multi-hop routes.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::time::Duration;

use log::{debug, info, warn};
use registry_client::state::{Loaded, StateDir};
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;
use tokio::signal::unix::{signal, SignalKind};

use super::netlink::{Netlink, Route};
use super::tun::Tun;
use crate::cli::Failure;
use crate::config::Config;
use crate::fib::Fib;
use crate::ip::{self, Header};
use crate::net::Ipv6Net;
use crate::time::Instant;
use crate::tunnel::auth::{CaAuthority, Identity};
use crate::tunnel::{self, wire, Action, Endpoint, Event, TunnelId};

/// Exit code: no usable certificate in the state directory.
pub const EXIT_NOT_REGISTERED: u8 = 30;
/// Exit code: the TUN device, sockets or routes could not be set up.
pub const EXIT_SETUP: u8 = 31;

/// Underlay MTU assumed until path MTU discovery exists: Ethernet.
const UNDERLAY_MTU: u32 = 1500;
const BUF_LEN: usize = 65536;

/// The monotonic clock the state machines run on: CLOCK_BOOTTIME keeps
/// counting across suspend, so timers stay honest on battery gateways.
pub fn now() -> Instant {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .expect("CLOCK_BOOTTIME is available on Linux");
    Instant::from_millis(t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

const USAGE: &str = "Usage: re6st-lite run [-c FILE] [-o NAME=VALUE]...\n\
    Run the node: bring up the overlay device, open tunnels, route.\n\
    -c, --config FILE     UCI config file (see `re6st-lite config --defaults`)\n\
    -o, --option N=V      override one option (repeatable)";

pub fn command(p: &mut lexopt::Parser) -> Result<(), Failure> {
    use lexopt::prelude::*;
    let mut source = crate::config::Source::default();
    while let Some(arg) = p.next()? {
        if let Some(which) = crate::config::Source::which(&arg) {
            source.read(p, which)?;
            continue;
        }
        match arg {
            Short('h') | Long("help") => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    let config = source.load()?;
    log::set_max_level(config.log_level);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(EXIT_SETUP, format!("tokio runtime: {e}")))?;
    rt.block_on(run(config))
}

/// A tunnel peer as the data path sees it.
struct Peer {
    subnet: Ipv6Net,
}

struct Node {
    endpoint: Endpoint<CaAuthority>,
    fib: Fib<TunnelId>,
    peers: HashMap<TunnelId, Peer>,
    tun: AsyncFd<Tun>,
    udp4: Option<UdpSocket>,
    udp6: Option<UdpSocket>,
    /// Network bits (from the CA) and as a prefix.
    network_bits: registry_client::Prefix,
    network: Ipv6Net,
    address: Ipv6Addr,
    subnet: Ipv6Net,
    mtu: u32,
    /// Packets dropped (no route, malformed, too big, refused by the
    /// endpoint), reported at exit.
    dropped: u64,
}

fn setup_error(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::new(EXIT_SETUP, format!("{what}: {e}"))
}

/// A UDP socket on `addr`; IPv6 sockets are IPv6-only so the IPv4 one can
/// share the port.
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket::socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    if addr.is_ipv6() {
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(addr),
    )?;
    UdpSocket::from_std(StdUdpSocket::from(fd))
}

async fn run(config: Config) -> Result<(), Failure> {
    let state = StateDir::new(&config.state_dir);
    let id = match state.load(unix_now()) {
        Ok(Loaded::Registered { id, expired }) => {
            if expired {
                warn!("the certificate has expired: peers will refuse it until it is renewed");
            }
            id
        }
        Ok(Loaded::Empty) => {
            return Err(Failure::new(
                EXIT_NOT_REGISTERED,
                format!(
                    "no certificate in {}: run `re6st-lite register` first",
                    config.state_dir.display()
                ),
            ))
        }
        Ok(Loaded::Broken(e)) | Err(e) => {
            return Err(Failure::new(EXIT_NOT_REGISTERED, e.to_string()))
        }
    };
    let netconf = state.network_config(&id).ok().flatten();
    let crl = netconf.as_ref().map(|n| n.crl.clone()).unwrap_or_default();

    let identity = Identity::new(id.cert.der().to_vec(), &id.key, tunnel::os_seed())
        .map_err(|e| setup_error("tunnel identity", e))?;
    let mut tconf = tunnel::Config::default();
    if let Some(n) = &netconf {
        tconf.max_clients = (n.max_clients as usize).min(config.max_tunnels as usize);
        tconf.dead_peer_timeout = Duration::from_secs(4 * u64::from(n.hello));
    }
    let t0 = now();
    let authority = CaAuthority::new(id.ca.clone(), &crl);
    let endpoint = Endpoint::new(
        tconf,
        id.ca.der(),
        identity,
        authority,
        t0,
        unix_now(),
        tunnel::os_seed(),
    );

    // The overlay device: the node's address, the whole network routed to it
    // (so unknown overlay destinations are dropped here, never leaked to the
    // default route), and an MTU that leaves room for the tunnel headers.
    let tun = Tun::open(&config.interface).map_err(|e| setup_error("TUN device", e))?;
    let mut nl = Netlink::open().map_err(|e| setup_error("netlink", e))?;
    let index = nl
        .link_index(tun.name())
        .map_err(|e| setup_error("TUN device", e))?;
    let mtu = ip::inner_mtu(UNDERLAY_MTU, false, wire::DATA_OVERHEAD as u32);
    let (net_addr, net_len) = (id.subnet.network.to_ipv6(), id.subnet.network.len());
    let network = Ipv6Net::new(net_addr, net_len);
    let (sub_addr, sub_len) = id.subnet.ipv6();
    let subnet = Ipv6Net::new(sub_addr, sub_len);
    let address = id.subnet.address();
    for stale in nl.own_routes().unwrap_or_default() {
        let _ = nl.del_route(&stale);
    }
    nl.set_link(index, true, Some(mtu))
        .and_then(|()| nl.add_address(index, address, 128))
        .and_then(|()| nl.add_route(&Route::dev(network, index)))
        .map_err(|e| setup_error("configuring the overlay device", e))?;

    let udp4 = bind_udp(SocketAddr::from(([0, 0, 0, 0], config.port)));
    let udp6 = bind_udp(SocketAddr::from((Ipv6Addr::UNSPECIFIED, config.port)));
    if let (Err(e4), Err(e6)) = (&udp4, &udp6) {
        return Err(setup_error(
            &format!("UDP port {}", config.port),
            format!("IPv4: {e4}; IPv6: {e6}"),
        ));
    }
    info!(
        "node {} ({address}) on {} mtu {mtu}, UDP port {}",
        id.subnet,
        tun.name(),
        config.port
    );
    let mut node = Node {
        endpoint,
        fib: Fib::new(),
        peers: HashMap::new(),
        tun: tun.into_async().map_err(|e| setup_error("TUN device", e))?,
        udp4: udp4.ok(),
        udp6: udp6.ok(),
        network_bits: id.subnet.network,
        network,
        address,
        subnet,
        mtu,
        dropped: 0,
    };
    for peer in &config.peers {
        let tid = node.endpoint.connect(now(), *peer);
        debug!("tunnel {tid}: connecting to {peer}");
    }
    node.flush().await;

    let mut term = signal(SignalKind::terminate()).map_err(|e| setup_error("signals", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| setup_error("signals", e))?;
    let mut buf = vec![0u8; BUF_LEN];
    let mut buf6 = vec![0u8; BUF_LEN];
    let mut out = vec![0u8; BUF_LEN + wire::DATA_OVERHEAD];
    loop {
        let wake = node
            .endpoint
            .poll_timeout()
            .map(|t| t.millis_since(now()))
            .unwrap_or(60_000);
        let mut tun_ready = false;
        tokio::select! {
            r = node.tun.readable() => {
                // Readiness is edge-triggered: clear it, then read until empty.
                if let Ok(mut guard) = r {
                    guard.clear_ready();
                }
                tun_ready = true;
            }
            r = recv(node.udp4.as_ref(), &mut buf) => {
                if let Ok((n, from)) = r {
                    node.on_datagram(from, n, &mut buf, &mut out).await;
                }
            }
            r = recv(node.udp6.as_ref(), &mut buf6) => {
                if let Ok((n, from)) = r {
                    node.on_datagram(from, n, &mut buf6, &mut out).await;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(wake)) => {
                node.endpoint.handle_timeout(now());
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
        while tun_ready {
            match node.tun.get_ref().recv(&mut buf) {
                Ok(n) => node.on_kernel_packet(&buf[..n], &mut out).await,
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        warn!("TUN read: {e}");
                    }
                    tun_ready = false;
                }
            }
        }
        node.flush().await;
    }

    // Clean shutdown: tell peers, give the close messages a moment, then
    // remove what we added to the kernel.
    info!("shutting down");
    let ids: Vec<TunnelId> = node.peers.keys().copied().collect();
    for tid in ids {
        let _ = node.endpoint.close(now(), tid);
    }
    node.flush().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = nl.del_route(&Route::dev(network, index));
    let _ = nl.del_address(index, address, 128);
    if node.dropped > 0 {
        info!("{} packets dropped in all", node.dropped);
    }
    Ok(())
}

/// Receive on an optional socket (pending forever when absent).
async fn recv(sock: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

impl Node {
    async fn send(&self, to: SocketAddr, bytes: &[u8]) {
        let sock = if to.is_ipv4() { &self.udp4 } else { &self.udp6 };
        if let Some(s) = sock {
            if let Err(e) = s.send_to(bytes, to).await {
                debug!("send to {to}: {e}");
            }
        }
    }

    /// Carry out what the endpoint queued: control datagrams, then events.
    async fn flush(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit() {
            self.send(t.to, &t.bytes).await;
        }
        while let Some(ev) = self.endpoint.poll_event() {
            match ev {
                Event::Established { id, peer, addr } => {
                    let Ok(sub) = registry_client::Subnet::new(self.network_bits, peer.prefix)
                    else {
                        warn!(
                            "tunnel {id}: peer prefix {} outside the network",
                            peer.prefix.to_cn()
                        );
                        let _ = self.endpoint.close(now(), id);
                        continue;
                    };
                    let (a, l) = sub.ipv6();
                    let subnet = Ipv6Net::new(a, l);
                    info!(
                        "tunnel {id} to {subnet} ({}) at {addr} is up",
                        peer.prefix.to_cn()
                    );
                    self.fib.insert(subnet, Ipv6Net::DEFAULT, id);
                    self.peers.insert(id, Peer { subnet });
                }
                Event::Rekeyed { id } => debug!("tunnel {id} rekeyed"),
                Event::Closed { id, reason } => {
                    if let Some(p) = self.peers.remove(&id) {
                        info!("tunnel {id} to {} closed: {reason:?}", p.subnet);
                    }
                    self.fib.retain(|hop| *hop != id);
                }
            }
        }
    }

    /// A packet from the kernel: route it into a tunnel.
    async fn on_kernel_packet(&mut self, packet: &[u8], out: &mut [u8]) {
        let Some(h) = Header::parse(packet) else {
            self.dropped += 1;
            return;
        };
        match self.fib.lookup(h.dst(), h.src()).copied() {
            Some(tid) => self.send_through(tid, packet, out, true).await,
            None => self.dropped += 1,
        }
    }

    /// Seal `packet` into tunnel `tid`; too big: Packet Too Big back to the
    /// sender (into the kernel for local senders, else through its tunnel).
    async fn send_through(&mut self, tid: TunnelId, packet: &[u8], out: &mut [u8], local: bool) {
        if packet.len() > self.mtu as usize {
            let mut ptb = [0u8; ip::MIN_MTU as usize];
            self.dropped += 1;
            let Some(n) = ip::packet_too_big(self.address, packet, self.mtu, &mut ptb) else {
                return;
            };
            let sender = Header::parse(packet).map(|h| h.src());
            let back = sender.and_then(|s| self.fib.lookup(s, self.address).copied());
            match back {
                Some(back) if !local => self.seal_and_send(back, &ptb[..n], out).await,
                _ => {
                    let _ = self.tun.get_ref().send(&ptb[..n]);
                }
            }
            return;
        }
        self.seal_and_send(tid, packet, out).await;
    }

    async fn seal_and_send(&mut self, tid: TunnelId, packet: &[u8], out: &mut [u8]) {
        match self.endpoint.encapsulate(now(), tid, packet, out) {
            Action::WriteToNetwork(to, bytes) => self.send(to, bytes).await,
            Action::Err(e) => {
                debug!("tunnel {tid}: {e}");
                self.dropped += 1;
            }
            _ => {}
        }
    }

    /// A datagram from a peer.
    async fn on_datagram(&mut self, from: SocketAddr, n: usize, buf: &mut [u8], out: &mut [u8]) {
        match self.endpoint.decapsulate(now(), from, &buf[..n], out) {
            Action::WriteToNetwork(to, bytes) => self.send(to, bytes).await,
            Action::WriteToTunnel(tid, packet) => {
                let len = packet.len();
                buf[..len].copy_from_slice(packet);
                self.on_tunnel_packet(tid, &mut buf[..len], out).await;
            }
            Action::Done => {}
            Action::Err(e) => {
                debug!("datagram from {from}: {e}");
                self.dropped += 1;
            }
        }
    }

    /// A decrypted packet from tunnel `tid`: for us, or forwarded.
    async fn on_tunnel_packet(&mut self, tid: TunnelId, packet: &mut [u8], out: &mut [u8]) {
        let Some(h) = Header::parse(packet) else {
            self.dropped += 1;
            return;
        };
        let (src, dst) = (h.src(), h.dst());
        // Ours, or outside the overlay (LAN, gateway): the kernel routes it.
        if self.subnet.contains(dst) || !self.network.contains(dst) {
            let _ = self.tun.get_ref().send(packet);
            return;
        }
        let Some(next) = self.fib.lookup(dst, src).copied() else {
            self.dropped += 1;
            return;
        };
        if next == tid || h.hop_limit() <= 1 {
            self.dropped += 1;
            return;
        }
        packet[7] -= 1; // forwarding: decrement the hop limit
        self.send_through(next, packet, out, false).await;
    }
}
