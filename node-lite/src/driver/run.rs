//! `re6st-lite run`: the node daemon's event loop.
//!
//! One tokio current-thread task owns everything: the TUN device, one UDP
//! socket per address family, the LAN sockets, netlink, the status socket,
//! and the node core ([`crate::node::Node`]), which holds every protocol
//! state machine. Each turn of the loop waits for an input (a packet from
//! the kernel, datagrams from peers, a LAN packet, a registry answer, a
//! timer, a signal), reads the clock once, hands the input to the core
//! with that time, and the core acts through [`Os`]. No locks, no task per
//! tunnel. The registry is asked on a worker thread (`registry.rs`).

use std::collections::HashMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::time::Duration;

use log::{debug, info, warn};
use registry_client::state::{Loaded, StateDir};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::clock::{now, unix_now};
use super::lan_babel::{self, Lan, Received};
use super::netlink::{Monitor, Netlink, Route};
use super::os::Os;
use super::registry::RegistryLink;
use super::registry_node;
use super::tun::Tun;
use super::udp::{self as udp_off, Batch};
use crate::babel::SeqNo;
use crate::config::Config;
use crate::failure::Failure;
use crate::mesh::cache::PeerCache;
use crate::node::registry::{Job, RegistryResult};
use crate::node::status::Status;
use crate::node::{Node, Start, SEQNO_FILE};
use crate::offload::{self, Coalescer, VnetHdr, VNET_HDR_LEN};
use crate::time::Instant;
use crate::tunnel;

/// Exit code: no usable certificate in the state directory.
pub const EXIT_NOT_REGISTERED: u8 = 30;
/// Exit code: the TUN device, sockets or routes could not be set up.
pub const EXIT_SETUP: u8 = 31;

const BUF_LEN: usize = 65536;
/// Packets read from one source per turn of the event loop, so that a busy
/// source cannot starve the others (or the timers).
const BATCH: usize = 64;
/// A LAN interface not ready at start (down, or its link-local address still
/// in duplicate address detection, which takes a second or two) is tried
/// again after LAN_RETRY_FIRST_MS, then twice as late each time up to
/// LAN_RETRY_MAX_MS.
const LAN_RETRY_FIRST_MS: u64 = 250;
const LAN_RETRY_MAX_MS: u64 = 5_000;
/// The host's addresses (announced while no peer says how it sees us) are
/// read this often.
const ADDRESSES_MS: u64 = 60_000;

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
    crate::logger::configured(config.log_level);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(EXIT_SETUP, format!("tokio runtime: {e}")))?;
    let r = rt.block_on(run(config));
    // Whatever the runtime still holds may wait on the network; dropping it
    // would wait for that, and procd kills us 5 s after SIGTERM. Everything
    // worth doing at stop is done.
    rt.shutdown_background();
    r
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

fn load_seqno(state: &StateDir) -> Option<SeqNo> {
    let raw = state.read(SEQNO_FILE).ok()??;
    std::str::from_utf8(&raw)
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(SeqNo)
}

/// The daemon: the core and what it runs on.
struct Driver {
    core: Node,
    os: Os,
    /// The `lan` interfaces (set at start), for the status.
    lan_interfaces: Vec<super::lan::LanSummary>,
    /// `babel_interface`s not open yet, retried at `lan_retry`, the next
    /// time `lan_backoff_ms` later.
    lan_pending: Vec<String>,
    lan_retry: Instant,
    lan_backoff_ms: u64,
    lan_tx: mpsc::UnboundedSender<Received>,
    /// Control-message space for `recvmsg`.
    cmsg: Vec<u8>,
    /// When the host's addresses are read again.
    addresses_at: Instant,
}

/// What woke the event loop.
enum Input {
    Tun,
    Udp4,
    Udp6,
    Kernel,
    Registry(Job, RegistryResult),
    Lan(Received),
    Status(tokio::net::UnixStream),
    /// From the registry on [::1]:326 (registry node).
    RegistryUdp,
    /// From the gateway (port mapping).
    NatUdp,
    NatHttp(super::nat::HttpResult),
    Control(tokio::net::UnixStream),
    Ask(registry_node::Ask),
    /// `renew` on the status socket (the LuCI app's "Renew now").
    Renew,
    Hup,
    Stop,
    /// A timer, or more to read from a source drained last turn.
    Nothing,
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

    // The overlay device: the node's address, the whole network routed to it
    // (so unknown overlay destinations are dropped here, never leaked to the
    // default route), and an MTU that leaves room for the tunnel headers.
    // Offloads (TSO from the TUN device, UDP GSO and GRO) unless
    // RE6ST_LITE_OFFLOAD=0: the plain path stays for old kernels and tests.
    let offload = std::env::var_os("RE6ST_LITE_OFFLOAD").is_none_or(|v| v != "0");
    let tun = Tun::open(&config.interface, offload).map_err(|e| setup_error("TUN device", e))?;
    let mut nl = Netlink::open().map_err(|e| setup_error("netlink", e))?;
    let index = nl
        .link_index(tun.name())
        .map_err(|e| setup_error("TUN device", e))?;
    let udp4 = bind_udp(SocketAddr::from(([0, 0, 0, 0], config.port)));
    let udp6 = bind_udp(SocketAddr::from((Ipv6Addr::UNSPECIFIED, config.port)));
    if let (Err(e4), Err(e6)) = (&udp4, &udp6) {
        return Err(setup_error(
            &format!("UDP port {}", config.port),
            format!("IPv4: {e4}; IPv6: {e6}"),
        ));
    }
    let gso = |s: &io::Result<UdpSocket>| {
        s.as_ref().is_ok_and(|s| {
            udp_off::set_receive_buffer(s, config.packet_buffers);
            offload && udp_off::enable_gso(s) && udp_off::enable_gro(s)
        })
    };
    let (gso4, gso6) = (gso(&udp4), gso(&udp6));
    let status = super::status::bind(&config.run_dir)
        .map_err(|e| setup_error(&format!("status socket in {}", config.run_dir.display()), e))?;
    let (registry_udp, control) = if config.registry_node {
        let udp = registry_node::bind_udp().map_err(|e| setup_error("UDP [::1]:326", e))?;
        let path = &config.babel_socket;
        let control = registry_node::bind_control(path)
            .map_err(|e| setup_error(&format!("Babel control socket {}", path.display()), e))?;
        info!("registry node: [::1]:326 and {}", path.display());
        (Some(udp), Some(control))
    } else {
        (None, None)
    };

    let t0 = now();
    // The registry worker's copy (it runs on its own thread).
    let registry_id = (*id).clone();
    let core = Node::new(
        Start {
            cache: PeerCache::load(&state, config.peer_cache as usize),
            seqno: load_seqno(&state),
            config: config.clone(),
            id: *id,
            netconf,
            ipv4: udp4.is_ok(),
            ipv6: udp6.is_ok(),
            seed: tunnel::os_seed(),
        },
        t0,
        unix_now(),
    )
    .map_err(|e| setup_error("node", e))?;
    let mut core = core;
    core.set_local_addresses(&super::iface::host_addresses());
    let (gateway, local) = super::nat::underlay();
    core.set_underlay(t0, gateway, local);
    // The port mapper's socket, when mapping may be wanted.
    let nat_udp = if config.port_mapping && udp4.is_ok() {
        super::nat::bind()
            .map_err(|e| warn!("port mapping socket: {e}; no port mapping"))
            .ok()
    } else {
        None
    };
    let nat_announce = nat_udp.as_ref().and_then(|_| {
        super::nat::bind_announcements()
            .map_err(|e| debug!("UDP port 5350: {e}; gateway restarts noticed at renewals only"))
            .ok()
    });
    let (nat_http, mut nat_http_rx) = mpsc::unbounded_channel();
    let (address, network, subnet, mtu) =
        (core.address(), core.network(), core.subnet(), core.mtu());

    // Only now that nothing else can fail (another node running holds the
    // port or the status socket) are a crashed node's routes removed.
    for stale in nl.own_routes().unwrap_or_default() {
        let _ = nl.del_route(&stale);
    }
    super::iface::set_up(tun.name(), Some(mtu))
        .and_then(|()| nl.add_address(index, address, 128))
        .and_then(|()| nl.add_route(&Route::dev(network, index)))
        .map_err(|e| setup_error("configuring the overlay device", e))?;
    let mut lan = super::lan::Lan::start(&config, subnet, network, &mut nl);
    let monitor = Monitor::open()
        .and_then(Monitor::into_async)
        .map_err(|e| warn!("kernel notifications: {e}; the overlay device is not watched"))
        .ok();
    info!(
        "node {} ({address}) on {} mtu {mtu}, UDP port {}, offloads: TUN {}, UDP {}",
        registry_id.subnet,
        tun.name(),
        config.port,
        tun.offload(),
        gso4 || gso6,
    );
    if config.gateway || !config.babel_interfaces.is_empty() {
        // Packets between LAN neighbours, tunnels and the outside pass
        // through the kernel.
        if let Err(e) = std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1") {
            warn!("enabling IPv6 forwarding: {e}");
        }
    }

    let (lan_tx, mut lan_rx) = mpsc::unbounded_channel();
    let (ask_tx, mut ask_rx) = mpsc::unbounded_channel();
    let (renew_tx, mut renew_rx) = mpsc::unbounded_channel();
    let control_open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (tx, mut registry_rx) = mpsc::unbounded_channel();
    let registry = match config.registry.clone() {
        Some(url) => Some(
            RegistryLink::start(url, config.registry_ca.clone(), registry_id, tx)
                .map_err(|e| setup_error("registry thread", e))?,
        ),
        None => None,
    };
    let mut d = Driver {
        core,
        os: Os {
            tun: tun.into_async().map_err(|e| setup_error("TUN device", e))?,
            tun_index: index,
            nl,
            address,
            network,
            kroutes: HashMap::new(),
            monitor,
            repair_at: None,
            udp4: udp4.ok(),
            udp6: udp6.ok(),
            gso4,
            gso6,
            tx: Batch::default(),
            gro: Coalescer::default(),
            gro_on: true,
            lans: Vec::new(),
            registry,
            registry_udp,
            nat_udp,
            nat_announce,
            nat_http,
            nat_http_pending: 0,
            state,
            dropped: 0,
        },
        addresses_at: t0.add_millis(ADDRESSES_MS),
        lan_interfaces: lan.summary(),
        lan_pending: config.babel_interfaces.clone(),
        lan_retry: t0,
        lan_backoff_ms: LAN_RETRY_FIRST_MS,
        lan_tx,
        cmsg: udp_off::cmsg_buffer(),
    };

    // Set up: from here on only netlink and raw sockets need privileges.
    super::privileges::drop_unneeded();
    let mut term = signal(SignalKind::terminate()).map_err(|e| setup_error("signals", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| setup_error("signals", e))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| setup_error("signals", e))?;
    // Reads (a TUN super-packet behind its virtio_net_hdr, GRO batches),
    // then one packet (a segment).
    let mut buf = vec![0u8; BUF_LEN + VNET_HDR_LEN];
    let mut seg = vec![0u8; BUF_LEN];
    // One Sleep, re-armed only when the next timer moves: every packet is a
    // turn of this loop, and a new Sleep each turn is a timer-wheel insert
    // and removal per packet.
    let sleep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    // Sources with more to read: a bounded drain keeps every input served.
    let (mut tun_more, mut udp4_more, mut udp6_more) = (false, false, false);
    let mut t = t0;
    loop {
        let wake = d.next_wake();
        if armed != Some(wake) {
            armed = Some(wake);
            let ms = wake.millis_since(t).max(1);
            sleep
                .as_mut()
                .reset(tokio::time::Instant::now() + Duration::from_millis(ms));
        }
        let busy = tun_more || udp4_more || udp6_more;
        let input = tokio::select! {
            r = d.os.tun.readable(), if !tun_more => {
                // Readiness is edge-triggered: clear it, then read until empty.
                if let Ok(mut guard) = r {
                    guard.clear_ready();
                }
                Input::Tun
            }
            _ = readable(d.os.udp4.as_ref()), if !udp4_more => Input::Udp4,
            r = watch(d.os.monitor.as_ref()) => {
                if let Ok(mut guard) = r {
                    guard.clear_ready();
                }
                Input::Kernel
            }
            _ = readable(d.os.udp6.as_ref()), if !udp6_more => Input::Udp6,
            () = std::future::ready(()), if busy => Input::Nothing,
            Some((job, r)) = registry_rx.recv() => Input::Registry(job, r),
            Some(r) = lan_rx.recv() => Input::Lan(r),
            _ = lan.turn() => Input::Nothing,
            Ok((stream, _)) = status.accept() => Input::Status(stream),
            _ = readable(d.os.registry_udp.as_ref()) => Input::RegistryUdp,
            _ = readable(d.os.nat_udp.as_ref()) => Input::NatUdp,
            _ = readable(d.os.nat_announce.as_ref()) => Input::NatUdp,
            Some(r) = nat_http_rx.recv() => Input::NatHttp(r),
            Ok(stream) = accept(control.as_ref()) => Input::Control(stream),
            Some(ask) = ask_rx.recv() => Input::Ask(ask),
            Some(()) = renew_rx.recv() => Input::Renew,
            () = &mut sleep => {
                armed = None;
                Input::Nothing
            }
            _ = hup.recv() => Input::Hup,
            _ = term.recv() => Input::Stop,
            _ = int.recv() => Input::Stop,
        };
        // One clock read per turn, handed down.
        t = now();
        match input {
            Input::Tun => tun_more = true,
            Input::Udp4 => udp4_more = true,
            Input::Udp6 => udp6_more = true,
            Input::Kernel => d.os.on_kernel_changes(t),
            Input::Registry(job, r) => {
                if let Some(reg) = &mut d.os.registry {
                    reg.done(job);
                }
                d.core.handle_registry(t, job, r, &mut d.os);
            }
            Input::Lan(r) => d.on_lan(t, r),
            Input::Status(stream) => {
                tokio::spawn(super::status::answer(stream, d.status(t), renew_tx.clone()));
            }
            Input::RegistryUdp => d.drain_registry_udp(t, &mut buf),
            Input::NatUdp => d.drain_nat_udp(t, &mut buf),
            Input::NatHttp(r) => {
                d.os.nat_http_pending = d.os.nat_http_pending.saturating_sub(1);
                d.core.handle_nat_http(t, r);
            }
            Input::Control(stream) => registry_node::serve(stream, ask_tx.clone(), &control_open),
            Input::Ask((request, answer)) => {
                let _ = answer.send(d.core.babel_control(t, &request));
            }
            Input::Renew => {
                info!("renewing the certificate now, as asked");
                d.core.renew_now();
            }
            Input::Hup => {
                info!("SIGHUP: checking the network config");
                d.core.refresh_network_config(t);
            }
            Input::Stop => break,
            Input::Nothing => {}
        }
        if tun_more {
            tun_more = d.drain_tun(t, &mut buf, &mut seg);
        }
        if udp4_more {
            udp4_more = d.drain_udp(t, false, &mut buf);
        }
        if udp6_more {
            udp6_more = d.drain_udp(t, true, &mut buf);
        }
        if t >= d.next_wake() {
            d.on_timers(t);
        }
        d.core.flush(t, &mut d.os);
        d.os.flush();
    }

    // Clean shutdown: tell peers, give the close messages a moment, then
    // remove what we added to the kernel.
    info!("shutting down");
    d.core.shutdown(now(), &mut d.os);
    d.os.flush();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A UPnP mapping's deletion is an HTTP exchange: wait for it (bounded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while d.os.nat_http_pending > 0 {
        match tokio::time::timeout_at(deadline, nat_http_rx.recv()).await {
            Ok(Some(_)) => d.os.nat_http_pending -= 1,
            _ => break,
        }
    }
    lan.stop(&mut d.os.nl);
    d.os.remove_routes();
    d.core.save_cache(now(), &mut d.os);
    let _ = std::fs::remove_file(super::status::socket_path(&config.run_dir));
    if control.is_some() {
        let _ = std::fs::remove_file(&config.babel_socket);
    }
    let dropped = d.core.dropped() + d.os.dropped;
    if dropped > 0 {
        info!("{dropped} packets dropped in all");
    }
    Ok(())
}

/// Readiness of the kernel notifications (pending forever when absent).
async fn watch(
    m: Option<&AsyncFd<Monitor>>,
) -> io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, Monitor>> {
    match m {
        Some(m) => m.readable().await,
        None => std::future::pending().await,
    }
}

/// A connection on an optional Unix socket (pending forever when absent).
async fn accept(l: Option<&tokio::net::UnixListener>) -> io::Result<tokio::net::UnixStream> {
    match l {
        Some(l) => l.accept().await.map(|(s, _)| s),
        None => std::future::pending().await,
    }
}

/// Readiness of an optional socket (pending forever when absent).
async fn readable(sock: Option<&UdpSocket>) -> io::Result<()> {
    match sock {
        Some(s) => s.readable().await,
        None => std::future::pending().await,
    }
}

impl Driver {
    fn next_wake(&self) -> Instant {
        let mut t = self.core.poll_timeout().min(self.addresses_at);
        if !self.lan_pending.is_empty() {
            t = t.min(self.lan_retry);
        }
        if let Some(at) = self.os.repair_at {
            t = t.min(at);
        }
        t
    }

    fn on_timers(&mut self, t: Instant) {
        if self.os.repair_at.is_some_and(|at| t >= at) {
            self.os.repair();
        }
        if !self.lan_pending.is_empty() && t >= self.lan_retry {
            self.lan_retry = t.add_millis(self.lan_backoff_ms);
            self.lan_backoff_ms = (self.lan_backoff_ms * 2).min(LAN_RETRY_MAX_MS);
            self.open_lans(t);
        }
        if t >= self.addresses_at {
            self.addresses_at = t.add_millis(ADDRESSES_MS);
            self.core
                .set_local_addresses(&super::iface::host_addresses());
            let (gateway, local) = super::nat::underlay();
            self.core.set_underlay(t, gateway, local);
        }
        if t >= self.core.poll_timeout() {
            self.core.handle_timeout(t, unix_now(), &mut self.os);
        }
    }

    /// The registry's datagrams on [::1]:326.
    fn drain_registry_udp(&mut self, t: Instant, buf: &mut [u8]) {
        for _ in 0..BATCH {
            let Some(s) = &self.os.registry_udp else {
                return;
            };
            match s.try_recv_from(buf) {
                Ok((n, from)) => {
                    self.core
                        .handle_registry_datagram(t, from.port(), &buf[..n], &mut self.os);
                }
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        debug!("UDP [::1]:326: {e}");
                    }
                    return;
                }
            }
        }
    }

    /// The gateway's answers on the NAT socket, and its announcements.
    fn drain_nat_udp(&mut self, t: Instant, buf: &mut [u8]) {
        for s in [&self.os.nat_udp, &self.os.nat_announce]
            .into_iter()
            .flatten()
        {
            for _ in 0..BATCH {
                match s.try_recv_from(buf) {
                    Ok((n, from)) => self.core.handle_nat_datagram(t, from, &buf[..n]),
                    Err(e) => {
                        if e.kind() != io::ErrorKind::WouldBlock {
                            debug!("port mapping socket: {e}");
                        }
                        break;
                    }
                }
            }
        }
    }

    /// Read up to [`BATCH`] packets from the TUN device; true if it may
    /// have more. With offloads, a read may be a TCP super-packet: cut into
    /// `seg`, each segment routed on its own.
    fn drain_tun(&mut self, t: Instant, buf: &mut [u8], seg: &mut [u8]) -> bool {
        let vnet = self.os.tun.get_ref().offload();
        for _ in 0..BATCH {
            let n = match self.os.tun.get_ref().recv(buf) {
                Ok(n) => n,
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        warn!("TUN read: {e}");
                    }
                    return false;
                }
            };
            if !vnet {
                self.core.handle_kernel_packet(t, &buf[..n], &mut self.os);
                continue;
            }
            let Some(hdr) = VnetHdr::parse(&buf[..n]) else {
                self.os.dropped += 1;
                continue;
            };
            let packet = &mut buf[VNET_HDR_LEN..n];
            match offload::prepare(&hdr, packet) {
                Ok(None) => self.core.handle_kernel_packet(t, packet, &mut self.os),
                Ok(Some(mut segments)) => {
                    while let Some(r) = segments.next_into(seg) {
                        match r {
                            Ok(len) => self.core.handle_kernel_packet(t, &seg[..len], &mut self.os),
                            Err(e) => {
                                debug!("TUN super-packet: {e:?}");
                                self.os.dropped += segments.remaining() as u64;
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    debug!("TUN packet {hdr:?}: {e:?}");
                    self.os.dropped += 1;
                }
            }
        }
        true
    }

    /// Read up to [`BATCH`] datagrams (or GRO batches of them) from a UDP
    /// socket; true if it may have more.
    fn drain_udp(&mut self, t: Instant, v6: bool, buf: &mut [u8]) -> bool {
        for _ in 0..BATCH {
            let sock = if v6 { &self.os.udp6 } else { &self.os.udp4 };
            let Some(s) = sock else { return false };
            let fd = std::os::fd::AsRawFd::as_raw_fd(s);
            let cmsg = &mut self.cmsg;
            let r = s.try_io(Interest::READABLE, || udp_off::recv_gro(fd, buf, cmsg));
            match r {
                // One datagram (maybe empty, still a malformed one to count).
                Ok((n, Some(from), seg)) if seg == 0 || seg >= n => {
                    self.core.handle_datagram(t, from, &buf[..n], &mut self.os);
                }
                Ok((n, Some(from), seg)) => {
                    for d in buf[..n].chunks(seg) {
                        self.core.handle_datagram(t, from, d, &mut self.os);
                    }
                }
                Ok((_, None, _)) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.os.flush_kernel();
                    return false;
                }
                Err(e) => debug!("UDP receive: {e}"),
            }
        }
        self.os.flush_kernel();
        true
    }

    /// Open the `babel_interface`s that are ready: up, with a link-local
    /// address. The others stay pending.
    fn open_lans(&mut self, t: Instant) {
        let pending = std::mem::take(&mut self.lan_pending);
        for name in pending {
            let ready = self.os.nl.link_index(&name).ok().and_then(|index| {
                let _ = super::iface::set_up(&name, None);
                Some((index, lan_babel::link_local(index)?))
            });
            let Some((index, local)) = ready else {
                debug!("babel_interface {name}: not ready yet");
                self.lan_pending.push(name);
                continue;
            };
            if self.core.add_lan(t, &name, index, local).is_none() {
                warn!("babel_interface {name}: Babel link table full");
                continue;
            }
            match Lan::open(&name, index, local, &self.lan_tx) {
                Ok(lan) => {
                    info!("babel on {name} ({local})");
                    self.os.lans.push(lan);
                }
                Err(e) => {
                    warn!("babel_interface {name}: {e}");
                    self.core.remove_lan(t, index);
                    self.lan_pending.push(name);
                }
            }
        }
    }

    /// A Babel packet or a beacon from a LAN interface.
    fn on_lan(&mut self, t: Instant, r: Received) {
        match r {
            Received::Babel {
                index,
                from,
                to,
                bytes,
            } => self.core.handle_lan_babel(t, index, from, to, &bytes),
            Received::Beacon { index, from, bytes } => {
                self.core.handle_beacon(t, index, from, &bytes);
            }
        }
    }

    /// The status report: the core's, with what only the driver knows.
    fn status(&self, t: Instant) -> Status {
        let mut s = self.core.status(t);
        s.lan_interfaces = self
            .lan_interfaces
            .iter()
            .map(|l| crate::node::status::LanInterface {
                interface: l.name.clone(),
                prefix: l.prefix,
                ra: l.ra,
            })
            .collect();
        s.dropped_packets += self.os.dropped;
        s
    }
}
