//! `re6st-lite run`: the node daemon's event loop.
//!
//! One tokio current-thread task owns everything: the TUN device, one UDP
//! socket per address family, the tunnel [`Endpoint`] and the forwarding
//! table. Each input (a packet from the kernel, a datagram from a peer, a
//! timer, a signal) is handed to the sans-IO state machines, then their
//! output is carried out. No locks, no task per tunnel.
//!
//! Around the data path: the Babel engine (each tunnel is a Babel link;
//! its packets travel inside the tunnel as link-local UDP), the mesh
//! manager (which tunnels to open, refresh and close), the control
//! messages between nodes (port 326 inside the overlay), the peer cache,
//! the registry (bootstrap peers, network config updates, on a blocking
//! thread) and the status socket.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket as StdUdpSocket};
use std::time::Duration;

use log::{debug, info, warn};
use registry_client::cert::{self, Certificate};
use registry_client::state::{Identity, Loaded, StateDir, CERT_FILE, NETCONFIG_FILE};
use registry_client::{Prefix, Subnet};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use super::clock::{now, unix_now};
use super::lan_babel::{self, Lan, Received};
use super::netlink::{Monitor, Netlink, Route};
use super::registry::{RegistryLink, RegistryResult};
use super::registry_jobs::Job;
use super::tun::Tun;
use super::udp::{self as udp_off, Batch};
use crate::babel::wire::INFINITY;
use crate::babel::{
    Engine, EngineConfig, LinkConfig, LinkId, LinkKind, Prefix as BabelPrefix, RouteEvent,
    RouterId, SeqNo,
};
use crate::config::Config;
use crate::failure::Failure;
use crate::ip::{self, Header, Udp};
use crate::mesh::beacon::{Beacon, Discovery, Verdict};
use crate::mesh::cache::PeerCache;
use crate::mesh::ctl;
use crate::mesh::manager::{Action as MeshAction, Dir, Manager, State as MeshState};
use crate::mesh::version::{Heard, Versions};
use crate::net::Ipv6Net;
use crate::node::netconf::Refresh;
use crate::node::renewal::Renewal;
use crate::node::routing::{Dev, Link as RouteLink, Routing};
use crate::node::settings::{settings, Settings};
use crate::node::status::{self, Status};
use crate::offload::{self, Coalescer, VnetHdr, VNET_HDR_LEN};
use crate::time::Instant;
use crate::tunnel::auth::{Authority, CaAuthority, Identity as TunnelIdentity};
use crate::tunnel::cookie::TokenBucket;
use crate::tunnel::{self, wire, Action, CloseReason, Endpoint, Event, Role, TunnelId};

/// Exit code: no usable certificate in the state directory.
pub const EXIT_NOT_REGISTERED: u8 = 30;
/// Exit code: the TUN device, sockets or routes could not be set up.
pub const EXIT_SETUP: u8 = 31;

/// Underlay MTU assumed until path MTU discovery exists: Ethernet.
const UNDERLAY_MTU: u32 = 1500;
const BUF_LEN: usize = 65536;

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

/// Traffic of one tunnel, for the status report.
#[derive(Clone, Copy, Default)]
struct Counters {
    rx_packets: u64,
    rx_bytes: u64,
    tx_packets: u64,
    tx_bytes: u64,
}

/// A tunnel that is up: its peer, its Babel link and its counters.
struct Peer {
    subnet: Ipv6Net,
    link: LinkId,
    counters: Counters,
}

/// ICMPv6 errors sent at most this often (a traceroute's probes come in
/// bursts of 16).
const ICMP_ERRORS_PER_SEC: u32 = 100;
const ICMP_ERRORS_BURST: u32 = 32;
/// Kernel changes come in bursts (a device cycled removes every route):
/// the set-up is restored once, this long after the first.
const REPAIR_DELAY_MS: u64 = 200;
/// The peer cache is written at most this often (and at exit).
const CACHE_SAVE_MS: u64 = 60_000;
/// Babel's port and group ([RFC 8966 §5]).
const BABEL_PORT: u16 = 6696;
const BABEL_GROUP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 6);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Cost multiplier that drains a retiring tunnel (re6st's soft lock).
const DRAIN_MULTIPLIER: u16 = 4096;
/// A LAN interface not ready at start (down, or its link-local address still
/// in duplicate address detection, which takes a second or two) is tried
/// again after LAN_RETRY_FIRST_MS, then twice as late each time up to
/// LAN_RETRY_MAX_MS.
const LAN_RETRY_FIRST_MS: u64 = 250;
const LAN_RETRY_MAX_MS: u64 = 5_000;

struct Node {
    /// What the node was started with (settings are derived from it again
    /// on each network config update).
    config: Config,
    endpoint: Endpoint<CaAuthority>,
    engine: Engine,
    mesh: Manager,
    /// Babel's routes as forwarding decisions (the data path's table).
    routing: Routing,
    peers: HashMap<TunnelId, Peer>,
    tunnel_of: HashMap<LinkId, TunnelId>,
    /// Template for new tunnel links (hello interval, RTT parameters).
    link_template: LinkConfig,
    tun: AsyncFd<Tun>,
    tun_index: u32,
    /// The `lan` interfaces (set at start).
    lan_interfaces: Vec<super::lan::LanSummary>,
    /// Kernel notifications: the overlay device's address and routes are put
    /// back if the interface is cycled or someone deletes them.
    monitor: Option<AsyncFd<Monitor>>,
    repair_at: Option<Instant>,
    nl: Netlink,
    /// Kernel routes Babel asked for beyond the network's route to the TUN
    /// device: LAN next hops, source-specific and outside routes.
    kroutes: HashMap<(Ipv6Net, Ipv6Net), Route>,
    lans: Vec<Lan>,
    /// `babel_interface`s not open yet, retried at `lan_retry`, the next
    /// time `lan_backoff_ms` later.
    lan_pending: Vec<String>,
    lan_retry: Instant,
    lan_backoff_ms: u64,
    lan_tx: mpsc::UnboundedSender<Received>,
    discovery: Discovery,
    /// Our beacon, made once.
    beacon: Vec<u8>,
    /// Early Hellos for LAN newcomers: (link, when).
    lan_hellos: Vec<(LinkId, Instant)>,
    /// The network has Babel MAC keys: they, not beacons, vouch for LAN
    /// neighbours (so stock babeld with the keys can join).
    babel_mac: bool,
    udp4: Option<UdpSocket>,
    udp6: Option<UdpSocket>,
    /// Network bits (from the CA) and as a prefix.
    network_bits: Prefix,
    network: Ipv6Net,
    address: Ipv6Addr,
    subnet: Ipv6Net,
    link_local: Ipv6Addr,
    port: u16,
    mtu: u32,
    state: StateDir,
    cache: PeerCache,
    cache_dirty: bool,
    cache_saved: Instant,
    /// The Babel seqno last written to the state directory.
    seqno_saved: Option<SeqNo>,
    /// Our underlay addresses as peers report them, newest first.
    own_addrs: Vec<SocketAddr>,
    /// Address requests in flight: node address -> its prefix.
    asked: HashMap<Ipv6Addr, Prefix>,
    registry: Option<RegistryLink>,
    netconf_version: Option<u64>,
    netconf_refresh: Refresh,
    /// The network version peers tell us and we tell them.
    versions: Versions,
    /// Our certificate and key (a renewal replaces the certificate), and
    /// the CA, which signs the network version.
    id: Identity,
    renewal: Renewal,
    started: Instant,
    /// ICMPv6 errors we may send (RFC 4443 §2.4 (f)).
    icmp_budget: TokenBucket,
    /// Packets dropped (no route, malformed, too big, refused by the
    /// endpoint), reported at exit and in the status.
    dropped: u64,
    scratch: Vec<u8>,
    /// The UDP sockets take GSO sends (and give GRO receives).
    gso4: bool,
    gso6: bool,
    /// Sealed datagrams for one peer, sent together by `send_batch`.
    tx: Batch,
    /// Control-message space for `recvmsg`.
    cmsg: Vec<u8>,
    /// TCP segments for the kernel, merged into one TUN write (offloads on).
    gro: Coalescer,
    /// Until the kernel refuses a merged write.
    gro_on: bool,
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

fn babel_prefix(n: Ipv6Net) -> BabelPrefix {
    BabelPrefix::from_addr(n.addr(), n.prefix_len())
}

/// Our LAN discovery beacon: the tunnel port and the identity's proof.
fn beacon(port: u16, identity: &TunnelIdentity) -> Vec<u8> {
    Beacon {
        port,
        static_pub: *identity.static_public(),
        cert: identity.cert_der(),
        signature: identity.signature(),
    }
    .encode()
}

fn net_of(p: &BabelPrefix) -> Ipv6Net {
    Ipv6Net::new(p.addr(), p.len())
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

    let identity = TunnelIdentity::new(id.cert.der().to_vec(), &id.key, tunnel::os_seed())
        .map_err(|e| setup_error("tunnel identity", e))?;
    let beacon = beacon(config.port, &identity);
    // Babel: the router id and the link-local address on tunnels both come
    // from the node's address, unique in the network.
    let address = id.subnet.address();
    let a = u128::from(address);
    let iid = ((a >> 64) as u64) ^ (a as u64);
    let link_local = Ipv6Addr::from((0xfe80u128 << 112) | u128::from(iid));
    let Settings {
        tunnel: tunnel_config,
        policy,
        link: link_template,
        mac,
    } = settings(&config, netconf.as_ref(), link_local);
    let t0 = now();
    let authority = CaAuthority::new(id.ca.clone(), &crl);
    let endpoint = Endpoint::new(
        tunnel_config,
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
    // Offloads (TSO from the TUN device, UDP GSO and GRO) unless
    // RE6ST_LITE_OFFLOAD=0: the plain path stays for old kernels and tests.
    let offload = std::env::var_os("RE6ST_LITE_OFFLOAD").is_none_or(|v| v != "0");
    let tun = Tun::open(&config.interface, offload).map_err(|e| setup_error("TUN device", e))?;
    let mut nl = Netlink::open().map_err(|e| setup_error("netlink", e))?;
    let index = nl
        .link_index(tun.name())
        .map_err(|e| setup_error("TUN device", e))?;
    let mtu = ip::inner_mtu(UNDERLAY_MTU, false, wire::DATA_OVERHEAD as u32);
    let (net_addr, net_len) = (id.subnet.network.to_ipv6(), id.subnet.network.len());
    let network = Ipv6Net::new(net_addr, net_len);
    let (sub_addr, sub_len) = id.subnet.ipv6();
    let subnet = Ipv6Net::new(sub_addr, sub_len);
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
        id.subnet,
        tun.name(),
        config.port,
        tun.offload(),
        gso4 || gso6,
    );

    let seed = u64::from_le_bytes(tunnel::os_seed()[..8].try_into().expect("8 bytes"));
    let mut ecfg = EngineConfig::new(RouterId(iid.to_be_bytes()), seed);
    ecfg.mac = mac;
    ecfg.limits.routes = config.max_routes as usize;
    ecfg.limits.sources = config.max_routes as usize;
    ecfg.limits.links = config.max_tunnels as usize + config.babel_interfaces.len() + 1;
    ecfg.network = Some(babel_prefix(network));
    let babel_mac = ecfg.mac.sign.is_some();
    let mut engine = Engine::new(ecfg, t0);
    if let Some(last) = load_seqno(&state) {
        engine.resume_seqno(last);
    }
    engine.originate(t0, babel_prefix(subnet), BabelPrefix::DEFAULT);
    if config.gateway {
        // Only for sources inside the network (RFC 9079): hosts with native
        // IPv6 keep their own default route.
        engine.originate(t0, BabelPrefix::DEFAULT, babel_prefix(network));
        info!("gateway: announcing ::/0 from {network}");
    }
    if config.gateway || !config.babel_interfaces.is_empty() {
        // Packets between LAN neighbours, tunnels and the outside pass
        // through the kernel.
        if let Err(e) = std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1") {
            warn!("enabling IPv6 forwarding: {e}");
        }
    }

    let cache = PeerCache::load(&state, config.peer_cache as usize);
    info!("peer cache: {} peers", cache.len());
    let mesh = Manager::new(
        policy,
        id.subnet.node,
        config.peers.clone(),
        t0,
        seed.rotate_left(17),
    );
    let (lan_tx, mut lan_rx) = mpsc::unbounded_channel();
    let (tx, mut registry_rx) = mpsc::unbounded_channel();
    let registry = match config.registry.clone() {
        Some(url) => Some(
            RegistryLink::start(url, (*id).clone(), tx)
                .map_err(|e| setup_error("registry thread", e))?,
        ),
        None => None,
    };
    let mut node = Node {
        config: config.clone(),
        endpoint,
        engine,
        mesh,
        routing: Routing::new(network),
        peers: HashMap::new(),
        tunnel_of: HashMap::new(),
        link_template,
        tun: tun.into_async().map_err(|e| setup_error("TUN device", e))?,
        tun_index: index,
        lan_interfaces: lan.summary(),
        monitor,
        repair_at: None,
        nl,
        kroutes: HashMap::new(),
        lans: Vec::new(),
        lan_pending: config.babel_interfaces.clone(),
        lan_retry: t0,
        lan_backoff_ms: LAN_RETRY_FIRST_MS,
        lan_tx,
        discovery: Discovery::new(t0),
        beacon,
        lan_hellos: Vec::new(),
        babel_mac,
        udp4: udp4.ok(),
        udp6: udp6.ok(),
        network_bits: id.subnet.network,
        network,
        address,
        subnet,
        link_local,
        port: config.port,
        mtu,
        state,
        cache,
        cache_dirty: false,
        cache_saved: t0,
        seqno_saved: None,
        own_addrs: Vec::new(),
        asked: HashMap::new(),
        registry,
        netconf_version: netconf.as_ref().map(|n| n.version.number),
        // At start when the registry is there: revocations since our last
        // run apply at once.
        netconf_refresh: Refresh::new(t0, netconf.as_ref().and_then(|n| n.valid_until)),
        versions: Versions::new(
            netconf.as_ref().map(|n| &n.version),
            config.registry.is_some(),
        ),
        renewal: Renewal::new(id.cert.not_after()),
        id: (*id).clone(),
        started: t0,
        icmp_budget: TokenBucket::new(ICMP_ERRORS_PER_SEC, ICMP_ERRORS_BURST, t0),
        dropped: 0,
        scratch: vec![0u8; BUF_LEN],
        gso4,
        gso6,
        tx: Batch::default(),
        cmsg: udp_off::cmsg_buffer(),
        gro: Coalescer::default(),
        gro_on: true,
    };

    let mut term = signal(SignalKind::terminate()).map_err(|e| setup_error("signals", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| setup_error("signals", e))?;
    let mut hup = signal(SignalKind::hangup()).map_err(|e| setup_error("signals", e))?;
    // Reads (a TUN super-packet behind its virtio_net_hdr, GRO batches),
    // then one packet (a segment, a decrypted datagram), then sealing.
    let mut buf = vec![0u8; BUF_LEN + VNET_HDR_LEN];
    let mut pkt = vec![0u8; BUF_LEN];
    let mut out = vec![0u8; BUF_LEN + wire::DATA_OVERHEAD];
    // One Sleep, re-armed only when the next timer moves: every packet is a
    // turn of this loop, and a new Sleep each turn is a timer-wheel insert
    // and removal per packet.
    let sleep = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    // Sources with more to read: a bounded drain keeps every input served.
    let (mut tun_more, mut udp4_more, mut udp6_more) = (false, false, false);
    let mut kernel_changed = false;
    loop {
        // Timers only when one is due.
        let t = now();
        if t >= node.next_wake() {
            node.on_timers(t, &mut out).await;
        }
        let wake = node.next_wake();
        if armed != Some(wake) {
            armed = Some(wake);
            let ms = wake.millis_since(now()).max(1);
            sleep
                .as_mut()
                .reset(tokio::time::Instant::now() + Duration::from_millis(ms));
        }
        let busy = tun_more || udp4_more || udp6_more;
        tokio::select! {
            r = node.tun.readable(), if !tun_more => {
                // Readiness is edge-triggered: clear it, then read until empty.
                if let Ok(mut guard) = r {
                    guard.clear_ready();
                }
                tun_more = true;
            }
            _ = readable(node.udp4.as_ref()), if !udp4_more => udp4_more = true,
            r = watch(node.monitor.as_ref()) => {
                if let Ok(mut guard) = r {
                    guard.clear_ready();
                }
                kernel_changed = true;
            }
            _ = readable(node.udp6.as_ref()), if !udp6_more => udp6_more = true,
            () = std::future::ready(()), if busy => {}
            Some((job, r)) = registry_rx.recv() => node.on_registry(now(), job, r),
            Some(r) = lan_rx.recv() => node.on_lan(r).await,
            _ = lan.turn() => {}
            Ok((stream, _)) = status.accept() => node.answer_status(stream).await,
            () = &mut sleep => armed = None,
            _ = hup.recv() => {
                info!("SIGHUP: checking the network config");
                node.netconf_refresh.soon(now());
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
        if std::mem::take(&mut kernel_changed) {
            node.on_kernel_changes(now());
        }
        if tun_more {
            tun_more = node.drain_tun(&mut buf, &mut pkt, &mut out).await;
        }
        if udp4_more {
            udp4_more = node.drain_udp(false, &mut buf, &mut pkt, &mut out).await;
        }
        if udp6_more {
            udp6_more = node.drain_udp(true, &mut buf, &mut pkt, &mut out).await;
        }
        node.flush(&mut out).await;
    }

    // Clean shutdown: tell peers, give the close messages a moment, then
    // remove what we added to the kernel and save the cache.
    info!("shutting down");
    node.engine
        .withdraw(now(), babel_prefix(subnet), BabelPrefix::DEFAULT);
    node.flush(&mut out).await;
    let ids: Vec<TunnelId> = node.peers.keys().copied().collect();
    for tid in ids {
        let _ = node.endpoint.close(now(), tid);
    }
    node.flush(&mut out).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let nl = &mut node.nl;
    lan.stop(nl);
    for (_, r) in node.kroutes.drain() {
        let _ = nl.del_route(&r);
    }
    let _ = nl.del_route(&Route::dev(network, index));
    let _ = nl.del_address(index, address, 128);
    let _ = std::fs::remove_file(super::status::socket_path(&config.run_dir));
    node.save_cache();
    if node.dropped > 0 {
        info!("{} packets dropped in all", node.dropped);
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

/// Readiness of an optional socket (pending forever when absent).
async fn readable(sock: Option<&UdpSocket>) -> io::Result<()> {
    match sock {
        Some(s) => s.readable().await,
        None => std::future::pending().await,
    }
}

/// Packets read from one source per turn of the event loop, so that a busy
/// source cannot starve the others (or the timers).
const BATCH: usize = 64;

impl Node {
    /// Read up to [`BATCH`] packets from the TUN device; true if it may
    /// have more. With offloads, a read may be a TCP super-packet: cut into
    /// `seg`, each segment routed on its own.
    async fn drain_tun(&mut self, buf: &mut [u8], seg: &mut [u8], out: &mut [u8]) -> bool {
        let vnet = self.tun.get_ref().offload();
        for _ in 0..BATCH {
            let n = match self.tun.get_ref().recv(buf) {
                Ok(n) => n,
                Err(e) => {
                    if e.kind() != io::ErrorKind::WouldBlock {
                        warn!("TUN read: {e}");
                    }
                    return false;
                }
            };
            if !vnet {
                self.on_kernel_packet(&buf[..n], out).await;
                continue;
            }
            let Some(hdr) = VnetHdr::parse(&buf[..n]) else {
                self.dropped += 1;
                continue;
            };
            let packet = &mut buf[VNET_HDR_LEN..n];
            match offload::prepare(&hdr, packet) {
                Ok(None) => self.on_kernel_packet(packet, out).await,
                Ok(Some(mut segments)) => {
                    while let Some(r) = segments.next_into(seg) {
                        match r {
                            Ok(len) => self.on_kernel_packet(&seg[..len], out).await,
                            Err(e) => {
                                debug!("TUN super-packet: {e:?}");
                                self.dropped += segments.remaining() as u64;
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    debug!("TUN packet {hdr:?}: {e:?}");
                    self.dropped += 1;
                }
            }
        }
        true
    }

    /// Read up to [`BATCH`] datagrams (or GRO batches of them) from a UDP
    /// socket; true if it may have more.
    async fn drain_udp(
        &mut self,
        v6: bool,
        buf: &mut [u8],
        pkt: &mut [u8],
        out: &mut [u8],
    ) -> bool {
        for _ in 0..BATCH {
            let sock = if v6 { &self.udp6 } else { &self.udp4 };
            let Some(s) = sock else { return false };
            let fd = std::os::fd::AsRawFd::as_raw_fd(s);
            let cmsg = &mut self.cmsg;
            let r = s.try_io(Interest::READABLE, || udp_off::recv_gro(fd, buf, cmsg));
            match r {
                // One datagram (maybe empty, still a malformed one to count).
                Ok((n, Some(from), seg)) if seg == 0 || seg >= n => {
                    self.on_datagram(from, &buf[..n], pkt, out).await;
                }
                Ok((n, Some(from), seg)) => {
                    for d in buf[..n].chunks(seg) {
                        self.on_datagram(from, d, pkt, out).await;
                    }
                }
                Ok((_, None, _)) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.flush_kernel();
                    return false;
                }
                Err(e) => debug!("UDP receive: {e}"),
            }
        }
        self.flush_kernel();
        true
    }

    /// Hand a packet to the kernel. With offloads, TCP segments of one flow
    /// wait in `gro` and go as one super-packet ([`Self::flush_kernel`]).
    fn write_kernel(&mut self, packet: &[u8]) {
        if self.gro_on && self.tun.get_ref().offload() {
            if self.gro.push(packet) {
                return;
            }
            self.flush_kernel();
            if self.gro.push(packet) {
                return;
            }
        }
        if let Err(e) = self.tun.get_ref().send(packet) {
            debug!("TUN write: {e}");
        }
    }

    fn flush_kernel(&mut self) {
        if let Some(frame) = self.gro.take() {
            if let Err(e) = self.tun.get_ref().send_frame(frame) {
                // Its segments are lost (TCP resends them); a kernel that
                // refuses super-packets gets one packet per write from now on.
                warn!("TUN write of merged TCP segments: {e}; no more merging");
                self.gro_on = false;
                self.dropped += 1;
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let mut t = self.mesh.poll_timeout();
        for x in [self.endpoint.poll_timeout(), self.engine.poll_timeout()]
            .into_iter()
            .flatten()
        {
            t = t.min(x);
        }
        if self.registry.is_some() {
            t = t.min(self.netconf_refresh.poll_timeout());
            if let Some(v) = self.versions.poll_timeout() {
                t = t.min(v);
            }
        }
        if self.cache_dirty {
            t = t.min(self.cache_saved.add_millis(CACHE_SAVE_MS));
        }
        if !self.lans.is_empty() {
            t = t.min(self.discovery.poll_timeout());
        }
        if !self.lan_pending.is_empty() {
            t = t.min(self.lan_retry);
        }
        for &(_, at) in &self.lan_hellos {
            t = t.min(at);
        }
        if let Some(at) = self.repair_at {
            t = t.min(at);
        }
        t
    }

    /// The kernel told of changes: if they may have undone our set-up (the
    /// device cycled, our address or a route we want removed), put it back
    /// once the burst is over.
    fn on_kernel_changes(&mut self, t: Instant) {
        let Some(m) = self.monitor.as_mut() else {
            return;
        };
        let c = m.get_mut().drain(self.tun_index);
        let wanted =
            |r: &Route| r.dst == self.network || self.kroutes.contains_key(&(r.dst, r.src));
        if c.link || c.address_lost || c.overrun || c.routes_lost.iter().any(wanted) {
            self.repair_at
                .get_or_insert_with(|| t.add_millis(REPAIR_DELAY_MS));
        }
    }

    /// Sets the node's address and every route it installed again. While
    /// the device is down this fails; its coming up is the next change.
    fn repair(&mut self) {
        self.repair_at = None;
        let nl = &mut self.nl;
        let r = nl
            .add_address(self.tun_index, self.address, 128)
            .and_then(|()| nl.add_route(&Route::dev(self.network, self.tun_index)))
            .and_then(|()| self.kroutes.values().try_for_each(|r| nl.add_route(r)));
        match r {
            Ok(()) => info!(
                "overlay device changed: address and {} routes set again",
                self.kroutes.len() + 1
            ),
            Err(e) => debug!("overlay device changed, not restored yet: {e}"),
        }
    }

    /// Run whatever timer is due.
    async fn on_timers(&mut self, t: Instant, out: &mut [u8]) {
        // The wall clock as it is now: NTP may have set it since start
        // (routers without a real-time clock boot in 1970).
        let unix = unix_now();
        self.endpoint.set_unix_time(t, unix);
        self.endpoint.handle_timeout(t);
        self.engine.handle_timeout(t);
        if self.repair_at.is_some_and(|at| t >= at) {
            self.repair();
        }
        if let Some(r) = self
            .registry
            .as_mut()
            .filter(|_| self.renewal.poll(t, unix))
        {
            info!(
                "certificate valid until {}: asking the registry to renew it",
                cert::utc_string(self.renewal.not_after())
            );
            r.request(Job::Renew);
        }
        if t >= self.mesh.poll_timeout() {
            let routes = self.routed_nodes();
            let actions = self.mesh.tick(t, &routes, &self.cache);
            for a in actions {
                self.on_mesh_action(t, a, out).await;
            }
        }
        if self.netconf_refresh.poll(t, unix) {
            if let Some(r) = &mut self.registry {
                r.request(Job::NetworkConfig);
            }
        }
        if let Some(r) = self
            .registry
            .as_mut()
            .filter(|_| self.versions.fetch_due(t))
        {
            // A peer told of a newer network version.
            r.request(Job::NetworkConfig);
            self.versions.fetch_started(t);
        }
        if self.cache_dirty && t.millis_since(self.cache_saved) >= CACHE_SAVE_MS {
            self.save_cache();
        }
        if !self.lan_pending.is_empty() && t >= self.lan_retry {
            self.lan_retry = t.add_millis(self.lan_backoff_ms);
            self.lan_backoff_ms = (self.lan_backoff_ms * 2).min(LAN_RETRY_MAX_MS);
            self.open_lans(t);
        }
        let engine = &mut self.engine;
        self.lan_hellos.retain(|&(link, at)| {
            if at > t {
                return true;
            }
            engine.hello_soon(link, t);
            false
        });
        if !self.lans.is_empty() && self.discovery.handle_timeout(t) {
            for lan in &self.lans {
                lan.send_beacon(&self.beacon).await;
            }
        }
        self.flush(out).await;
    }

    /// Open the `babel_interface`s that are ready: up, with a link-local
    /// address. The others stay pending.
    fn open_lans(&mut self, t: Instant) {
        let pending = std::mem::take(&mut self.lan_pending);
        for name in pending {
            let ready = self.nl.link_index(&name).ok().and_then(|index| {
                let _ = super::iface::set_up(&name, None);
                Some((index, lan_babel::link_local(index)?))
            });
            let Some((index, local)) = ready else {
                debug!("babel_interface {name}: not ready yet");
                self.lan_pending.push(name);
                continue;
            };
            let Some(link) = self
                .engine
                .add_link(t, LinkConfig::new(LinkKind::Wired, local))
            else {
                warn!("babel_interface {name}: Babel link table full");
                continue;
            };
            match Lan::open(&name, index, local, link, &self.lan_tx) {
                Ok(lan) => {
                    info!("babel on {name} ({local})");
                    self.lans.push(lan);
                    // A new interface announces us at once.
                    self.discovery.announce(t);
                }
                Err(e) => {
                    warn!("babel_interface {name}: {e}");
                    self.engine.remove_link(t, link);
                    self.lan_pending.push(name);
                }
            }
        }
    }

    /// A Babel packet or a beacon from a LAN interface.
    async fn on_lan(&mut self, r: Received) {
        let t = now();
        match r {
            Received::Babel {
                index,
                from,
                to,
                bytes,
            } => {
                let Some(lan) = self.lans.iter().find(|l| l.index == index) else {
                    return;
                };
                if *from.ip() == lan.local {
                    return;
                }
                if !self.babel_mac && !self.discovery.trusted(index, *from.ip()) {
                    self.dropped += 1;
                    return;
                }
                let from = SocketAddrV6::new(*from.ip(), from.port(), 0, 0);
                self.engine.handle_packet(t, lan.link, from, to, &bytes);
            }
            Received::Beacon { index, from, bytes } => {
                let Some(lan) = self.lans.iter().find(|l| l.index == index) else {
                    return;
                };
                let (name, link) = (lan.name.clone(), lan.link);
                let (authority, own) = (self.endpoint.authority(), self.subnet);
                let network_bits = self.network_bits;
                let verdict = self.discovery.on_beacon(t, index, from, &bytes, |b| {
                    let peer = authority
                        .verify_peer(b.cert, &b.static_pub, b.signature, unix_now())
                        .map_err(|e| e.to_string())?;
                    let subnet =
                        Subnet::new(network_bits, peer.prefix).map_err(|e| e.to_string())?;
                    let (a, l) = subnet.ipv6();
                    if Ipv6Net::new(a, l) == own {
                        return Err("our own prefix".into());
                    }
                    Ok(peer.prefix)
                });
                match verdict {
                    Verdict::New(p) => {
                        info!("LAN: node {} at {from}%{name}", p.to_cn());
                        // 2-out-of-3 wants two Hellos: both soon, after our
                        // beacon (due in 200 ms) makes us trusted.
                        self.lan_hellos.push((link, t.add_millis(300)));
                        self.lan_hellos.push((link, t.add_millis(700)));
                    }
                    Verdict::Refused(e) => info!("LAN: ignoring {from}%{name}: {e}"),
                    Verdict::Known | Verdict::Ignored | Verdict::RateLimited => {}
                }
            }
        }
    }

    fn save_cache(&mut self) {
        self.cache_saved = now();
        self.cache_dirty = false;
        if let Err(e) = self.cache.save(&self.state) {
            warn!("peer cache: {e}");
        }
    }

    /// Node prefixes Babel routes, with the tunnel each goes through.
    fn routed_nodes(&self) -> Vec<(Prefix, Option<TunnelId>)> {
        self.engine
            .routes()
            .filter(|r| r.installed && r.metric < INFINITY && r.src_prefix.is_default())
            .filter_map(|r| {
                let p = Prefix::from_ipv6(r.prefix.addr(), r.prefix.len()).ok()?;
                let node = self.network_bits.strip(&p).filter(|n| !n.is_empty())?;
                Some((node, self.tunnel_of.get(&r.link).copied()))
            })
            .collect()
    }

    /// The node prefix of a subnet of this network (inverse of
    /// [`Self::subnet_of`]).
    fn node_of(&self, subnet: Ipv6Net) -> Option<Prefix> {
        let p = Prefix::from_ipv6(subnet.addr(), subnet.prefix_len()).ok()?;
        self.network_bits.strip(&p).filter(|n| !n.is_empty())
    }

    fn subnet_of(&self, node: Prefix) -> Option<Ipv6Net> {
        let (a, l) = Subnet::new(self.network_bits, node).ok()?.ipv6();
        Some(Ipv6Net::new(a, l))
    }

    async fn on_mesh_action(&mut self, t: Instant, a: MeshAction, out: &mut [u8]) {
        match a {
            MeshAction::Connect { addr, prefix } => {
                let usable = if addr.is_ipv4() {
                    &self.udp4
                } else {
                    &self.udp6
                };
                if usable.is_none() {
                    return;
                }
                let tid = self.endpoint.connect(t, addr);
                debug!("tunnel {tid}: connecting to {addr}");
                self.mesh.connecting(t, tid, addr, prefix);
            }
            MeshAction::RequestAddress(p) => {
                let Some(sub) = self.subnet_of(p) else { return };
                let dst = sub.host(1);
                self.asked.insert(dst, p);
                let msg = ctl::Msg::AddressRequest.encode();
                self.send_ctl(dst, ctl::PORT, &msg, out).await;
            }
            MeshAction::Drain(tid) => {
                if let Some(link) = self.peers.get(&tid).map(|p| p.link) {
                    info!("tunnel {tid}: refresh, draining");
                    let nbs: Vec<Ipv6Addr> = self
                        .engine
                        .neighbours(t)
                        .filter(|n| n.link == link)
                        .map(|n| n.address)
                        .collect();
                    for a in nbs {
                        self.engine
                            .set_cost_multiplier(t, link, a, DRAIN_MULTIPLIER);
                    }
                }
            }
            MeshAction::Close(tid) => {
                debug!("tunnel {tid}: closing");
                if self.endpoint.close(t, tid).is_err() {
                    self.mesh.closed(t, tid);
                }
            }
            MeshAction::Bootstrap => {
                if let Some(r) = &mut self.registry {
                    r.request(Job::Bootstrap);
                }
            }
        }
    }

    fn on_registry(&mut self, t: Instant, job: Job, r: RegistryResult) {
        let Some(reg) = &mut self.registry else {
            return;
        };
        reg.done(job);
        match r {
            RegistryResult::Bootstrap(None) => {
                reg.last_ok = Some(t);
                debug!("registry: no bootstrap peer");
                self.mesh.bootstrapped(false);
            }
            RegistryResult::Bootstrap(Some((p, addrs))) => {
                reg.last_ok = Some(t);
                self.mesh.bootstrapped(true);
                info!("registry: bootstrap peer {} at {addrs:?}", p.to_cn());
                self.cache.learn(p, &addrs);
                self.cache_dirty = true;
                self.mesh.wake(t);
            }
            RegistryResult::NetworkConfig(c, raw) => {
                reg.last_ok = Some(t);
                reg.last_error = None;
                if self.netconf_version != Some(c.version.number) {
                    info!("network config version {}", c.version.number);
                    if let Err(e) = self.state.write_atomic(NETCONFIG_FILE, &raw, 0o644) {
                        warn!("storing the network config: {e}");
                    }
                } else {
                    debug!("network config version {}: unchanged", c.version.number);
                }
                self.netconf_version = Some(c.version.number);
                self.netconf_refresh.applied(c.valid_until, unix_now());
                // A newer one than peers told: flush tells them.
                self.versions.fetched(t, Some(&c.version));
                // Revoked peers' tunnels close now; parameters apply to what
                // comes next (re6st re-execs for those).
                self.endpoint.apply_crl(&c.crl);
                let set = settings(&self.config, Some(&c), self.link_local);
                self.endpoint.set_config(set.tunnel);
                self.engine.set_mac(set.mac);
                self.mesh.set_policy(set.policy);
                self.link_template = set.link;
            }
            RegistryResult::Certificate(c) => {
                reg.last_ok = Some(t);
                self.on_certificate(&c);
            }
            RegistryResult::Failed(what, e) => {
                match job {
                    Job::NetworkConfig => {
                        self.versions.fetched(t, None);
                    }
                    Job::Bootstrap => self.mesh.bootstrapped(false),
                    Job::Renew => self.renewal.failed(format!("{what}: {e}")),
                }
                warn!("registry: {what}: {e}");
                reg.last_error = Some(format!("{what}: {e}"));
            }
        }
    }

    /// The registry answered a renewal: a new certificate is stored and used
    /// for the next handshakes and beacons at once, without a restart.
    fn on_certificate(&mut self, c: &Certificate) {
        self.renewal.answered(c.not_after());
        if c.der() == self.id.cert.der() {
            info!(
                "certificate unchanged by the registry: valid until {}",
                cert::utc_string(c.not_after())
            );
            return;
        }
        if let Err(e) = self
            .state
            .write_atomic(CERT_FILE, c.to_pem().as_bytes(), 0o644)
        {
            warn!("storing the renewed certificate: {e}");
        }
        match TunnelIdentity::new(c.der().to_vec(), &self.id.key, tunnel::os_seed()) {
            Ok(identity) => {
                self.beacon = beacon(self.port, &identity);
                self.endpoint.set_identity(identity);
                self.id.cert = c.clone();
                info!(
                    "certificate renewed: serial {}, valid until {}",
                    c.serial_u64().unwrap_or_default(),
                    cert::utc_string(c.not_after())
                );
            }
            Err(e) => warn!("renewed certificate unusable: {e}"),
        }
    }

    /// Send the batched datagrams: one GSO `sendmsg`, or one by one when
    /// the socket cannot (a kernel error turns GSO off for that socket).
    async fn send_batch(&mut self) {
        let Some((to, data, seg, count)) = self.tx.contents() else {
            return;
        };
        let sock = if to.is_ipv4() { &self.udp4 } else { &self.udp6 };
        let (mut sent, mut broken) = (false, false);
        if let Some(s) = sock.as_ref().filter(|_| count > 1) {
            let fd = std::os::fd::AsRawFd::as_raw_fd(s);
            let r = s
                .async_io(Interest::WRITABLE, || udp_off::send_gso(fd, to, data, seg))
                .await;
            match r {
                Ok(_) => sent = true,
                // EIO: the kernel cannot segment for that route; others
                // (a path MTU below the segment size): this batch only.
                Err(e) => {
                    broken = e.raw_os_error() == Some(nix::libc::EIO);
                    debug!("GSO send of {count} datagrams to {to}: {e}");
                }
            }
        }
        if !sent {
            for d in data.chunks(seg) {
                self.send(to, d).await;
            }
        }
        if broken {
            warn!("UDP GSO failed, sending one datagram per syscall from now on");
            if to.is_ipv4() {
                self.gso4 = false;
            } else {
                self.gso6 = false;
            }
        }
        self.tx.clear();
    }

    async fn send(&self, to: SocketAddr, bytes: &[u8]) {
        let sock = if to.is_ipv4() { &self.udp4 } else { &self.udp6 };
        if let Some(s) = sock {
            if let Err(e) = s.send_to(bytes, to).await {
                debug!("send to {to}: {e}");
            }
        }
    }

    /// Carry out what the state machines queued: tunnel control datagrams
    /// and events, Babel packets, route changes.
    async fn flush(&mut self, out: &mut [u8]) {
        let t = now();
        self.endpoint_output(t, out).await;
        let mut payload = [0u8; 1500];
        while let Some(tx) = self.engine.poll_transmit(t, &mut payload) {
            let Some(&tid) = self.tunnel_of.get(&tx.link) else {
                if let Some(lan) = self.lan_of(tx.link) {
                    lan.send_babel(tx.dst, &payload[..tx.len]).await;
                }
                continue;
            };
            let dst = if tx.dst.is_multicast() {
                BABEL_GROUP
            } else {
                tx.dst
            };
            let u = Udp {
                src: self.link_local,
                dst,
                src_port: BABEL_PORT,
                dst_port: BABEL_PORT,
                hop_limit: 1,
                payload: &payload[..tx.len],
            };
            self.send_packet_in(tid, &u, out).await;
        }
        while let Some(ev) = self.engine.poll_event() {
            self.on_route_event(ev);
        }
        if self.versions.take_announce() {
            self.announce_version(None, out).await;
        }
        self.send_batch().await;
        self.flush_kernel();
        // Rare (a seqno request for our prefix), and a crash must not lose it.
        let seqno = self.engine.seqno();
        if self.seqno_saved != Some(seqno) {
            self.seqno_saved = Some(seqno);
            let text = format!("{}\n", seqno.0);
            if let Err(e) = self.state.write_atomic(SEQNO_FILE, text.as_bytes(), 0o644) {
                warn!("babel seqno: {e}");
            }
        }
    }

    /// The tunnel endpoint's control datagrams and events.
    async fn endpoint_output(&mut self, t: Instant, out: &mut [u8]) {
        while let Some(tx) = self.endpoint.poll_transmit() {
            self.send(tx.to, &tx.bytes).await;
        }
        while let Some(ev) = self.endpoint.poll_event() {
            self.on_tunnel_event(t, ev, out).await;
        }
    }

    fn on_route_event(&mut self, ev: RouteEvent) {
        let (tunnel_of, lans) = (&self.tunnel_of, &self.lans);
        let link = |l: LinkId| match (tunnel_of.get(&l), lans.iter().find(|x| x.link == l)) {
            (Some(&t), _) => RouteLink::Tunnel(t),
            (None, Some(lan)) => RouteLink::Lan(lan.index),
            _ => RouteLink::Unknown,
        };
        if let Some((dst, src, want)) = self.routing.on_route_event(ev, link) {
            let r = want.map(|k| Route {
                src: k.src,
                via: k.via,
                ..Route::dev(
                    k.dst,
                    match k.dev {
                        Dev::Overlay => self.tun_index,
                        Dev::Lan(index) => index,
                    },
                )
            });
            self.set_kernel_route(dst, src, r);
        }
    }

    /// Make the kernel's route for (`dst`, `src`) be `r` (none: remove ours).
    fn set_kernel_route(&mut self, dst: Ipv6Net, src: Ipv6Net, r: Option<Route>) {
        let key = (dst, src);
        if self.kroutes.get(&key) == r.as_ref() {
            return;
        }
        if let Some(old) = self.kroutes.remove(&key) {
            let _ = self.nl.del_route(&old);
        }
        if let Some(r) = r {
            match self.nl.add_route(&r) {
                Ok(()) => {
                    self.kroutes.insert(key, r);
                }
                Err(e) => warn!("kernel route {dst} from {src}: {e}"),
            }
        }
    }

    async fn on_tunnel_event(&mut self, t: Instant, ev: Event, out: &mut [u8]) {
        match ev {
            Event::Established { id, peer, addr } => {
                let Some(subnet) = self.subnet_of(peer.prefix) else {
                    warn!(
                        "tunnel {id}: peer prefix {} outside the network",
                        peer.prefix.to_cn()
                    );
                    let _ = self.endpoint.close(t, id);
                    return;
                };
                let mut lc = self.link_template.clone();
                lc.peer_prefix = Some(babel_prefix(subnet));
                let Some(link) = self.engine.add_link(t, lc) else {
                    warn!("tunnel {id}: Babel link table full");
                    let _ = self.endpoint.close(t, id);
                    return;
                };
                self.engine.hello_soon(link, t.add_millis(300));
                let dir = match self.endpoint.role(id) {
                    Some(Role::Server) => Dir::Server,
                    _ => Dir::Client,
                };
                info!("tunnel {id} to {subnet} at {addr} is up ({dir:?})");
                self.tunnel_of.insert(link, id);
                let routed = self
                    .engine
                    .installed_route(&babel_prefix(subnet), &BabelPrefix::DEFAULT)
                    .is_some();
                self.routing.tunnel_up(id, subnet, routed);
                self.peers.insert(
                    id,
                    Peer {
                        subnet,
                        link,
                        counters: Counters::default(),
                    },
                );
                if dir == Dir::Client {
                    self.cache.succeeded(peer.prefix, addr, unix_now());
                }
                if let Some(dup) = self.mesh.established(t, id, dir, peer.prefix, addr) {
                    debug!("tunnel {dup}: duplicate of another tunnel to {subnet}, closing");
                    let _ = self.endpoint.close(t, dup);
                }
                self.cache_dirty = true;
                // Tell the peer how we see it (its public address) and the
                // network version we know.
                self.send_link_ctl(id, &ctl::Msg::Seen(addr), out).await;
                self.announce_version(Some(id), out).await;
            }
            Event::Rekeyed { id } => debug!("tunnel {id} rekeyed"),
            Event::Closed { id, reason } => {
                if let Some(p) = self.peers.remove(&id) {
                    info!("tunnel {id} to {} closed: {reason:?}", p.subnet);
                    self.engine.remove_link(t, p.link);
                    self.tunnel_of.remove(&p.link);
                    if reason == CloseReason::Revoked {
                        // As re6st: a revoked node is dropped from the peer
                        // cache, so the mesh manager does not try it again.
                        if let Some(node) = self.node_of(p.subnet) {
                            self.cache.remove(node);
                            self.cache_dirty = true;
                        }
                    }
                }
                self.routing.tunnel_down(id);
                self.mesh.closed(t, id);
            }
            Event::ConnectFailed { id, addr } => {
                debug!("tunnel {id} to {addr}: no answer");
                self.mesh.connect_failed(t, id, &mut self.cache);
            }
        }
    }

    /// Write `u` as a packet and send it through tunnel `tid`.
    async fn send_packet_in(&mut self, tid: TunnelId, u: &Udp<'_>, out: &mut [u8]) {
        let mut pkt = std::mem::take(&mut self.scratch);
        if let Some(n) = u.write(&mut pkt) {
            self.seal_and_send(tid, &pkt[..n], out).await;
        }
        self.scratch = pkt;
    }

    /// A control message to the peer at the other end of tunnel `tid`.
    async fn send_link_ctl(&mut self, tid: TunnelId, msg: &ctl::Msg, out: &mut [u8]) {
        let msg = msg.encode();
        let u = Udp {
            src: self.link_local,
            dst: ALL_NODES,
            src_port: ctl::PORT,
            dst_port: ctl::PORT,
            hop_limit: 1,
            payload: &msg,
        };
        self.send_packet_in(tid, &u, out).await;
    }

    /// A control message from our address to a node, routed over the overlay.
    async fn send_ctl(&mut self, dst: Ipv6Addr, dst_port: u16, payload: &[u8], out: &mut [u8]) {
        let Some(tid) = self.routing.lookup(dst, self.address) else {
            debug!("control message to {dst}: no route");
            return;
        };
        let u = Udp {
            src: self.address,
            dst,
            src_port: ctl::PORT,
            dst_port,
            hop_limit: 64,
            payload,
        };
        self.send_packet_in(tid, &u, out).await;
    }

    /// A packet from the kernel: route it into a tunnel.
    async fn on_kernel_packet(&mut self, packet: &[u8], out: &mut [u8]) {
        let Some(h) = Header::parse(packet) else {
            self.dropped += 1;
            return;
        };
        match self.routing.lookup(h.dst(), h.src()) {
            Some(tid) => self.send_through(tid, packet, out, true).await,
            None => {
                self.dropped += 1;
                self.send_error(packet, ip::IcmpError::NoRoute, true, out)
                    .await;
            }
        }
    }

    /// Seal `packet` into tunnel `tid`; too big: Packet Too Big back to the
    /// sender.
    async fn send_through(&mut self, tid: TunnelId, packet: &[u8], out: &mut [u8], local: bool) {
        if packet.len() > self.mtu as usize {
            self.dropped += 1;
            let kind = ip::IcmpError::TooBig(self.mtu);
            self.send_error(packet, kind, local, out).await;
            return;
        }
        self.seal_and_send(tid, packet, out).await;
    }

    /// The ICMPv6 error `kind` about `packet`, from our address, back to its
    /// sender: into the kernel for a `local` sender (or one we have no route
    /// to), else through its tunnel. Rate-limited, as RFC 4443 §2.4 asks.
    async fn send_error(
        &mut self,
        packet: &[u8],
        kind: ip::IcmpError,
        local: bool,
        out: &mut [u8],
    ) {
        if !self.icmp_budget.try_take(now()) {
            return;
        }
        let mut err = [0u8; ip::MIN_MTU as usize];
        let Some(n) = ip::icmp_error(self.address, packet, kind, &mut err) else {
            return;
        };
        let sender = Header::parse(packet).map(|h| h.src());
        let back = sender.and_then(|s| self.routing.lookup(s, self.address));
        match back {
            Some(back) if !local => self.seal_and_send(back, &err[..n], out).await,
            _ => self.write_kernel(&err[..n]),
        }
    }

    async fn seal_and_send(&mut self, tid: TunnelId, packet: &[u8], out: &mut [u8]) {
        match self.endpoint.encapsulate(now(), tid, packet, out) {
            Action::WriteToNetwork(to, bytes) => {
                if let Some(p) = self.peers.get_mut(&tid) {
                    p.counters.tx_packets += 1;
                    p.counters.tx_bytes += packet.len() as u64;
                }
                let gso = if to.is_ipv4() { self.gso4 } else { self.gso6 };
                if !gso {
                    return self.send(to, bytes).await;
                }
                if !self.tx.accepts(to, bytes.len()) {
                    self.send_batch().await;
                }
                self.tx.push(to, bytes);
            }
            Action::Err(e) => {
                debug!("tunnel {tid}: {e}");
                self.dropped += 1;
            }
            _ => {}
        }
    }

    /// A datagram from a peer, opened into `pkt` (`out` stays free for
    /// forwarding).
    async fn on_datagram(&mut self, from: SocketAddr, d: &[u8], pkt: &mut [u8], out: &mut [u8]) {
        let t = now();
        match self.endpoint.decapsulate(t, from, d, pkt) {
            Action::WriteToNetwork(to, bytes) => {
                self.send(to, bytes).await;
                // A handshake may have brought a tunnel up: known before the
                // next datagram of this batch, its first data, is handled.
                self.endpoint_output(t, out).await;
            }
            Action::WriteToTunnel(tid, packet) => {
                let len = packet.len();
                self.on_tunnel_packet(tid, &mut pkt[..len], out).await;
            }
            Action::Done => self.endpoint_output(t, out).await,
            Action::Err(e) => {
                debug!("datagram from {from}: {e}");
                self.dropped += 1;
            }
        }
    }

    /// A decrypted packet from tunnel `tid`: Babel or a control message for
    /// us, the kernel's, or forwarded.
    async fn on_tunnel_packet(&mut self, tid: TunnelId, packet: &mut [u8], out: &mut [u8]) {
        let Some(h) = Header::parse(packet) else {
            self.dropped += 1;
            return;
        };
        if let Some(p) = self.peers.get_mut(&tid) {
            p.counters.rx_packets += 1;
            p.counters.rx_bytes += packet.len() as u64;
        }
        let (src, dst) = (h.src(), h.dst());
        if dst.is_multicast() || dst.is_unicast_link_local() {
            // The peer itself speaking: Babel, or how it sees us.
            self.on_link_message(tid, packet, out).await;
            return;
        }
        if dst == self.address && h.next_header() == ip::NEXT_UDP {
            if let Some(u) = Udp::parse(packet).filter(|u| u.dst_port == ctl::PORT) {
                let (src, sport) = (u.src, u.src_port);
                let msg = ctl::Msg::parse(u.payload);
                self.on_ctl(src, sport, msg, out).await;
                return;
            }
        }
        // Ours, or no tunnel for it (a LAN neighbour's, the outside through
        // a gateway): the kernel routes it. Were the kernel to send it back
        // to the TUN device, on_kernel_packet drops it.
        let next = if self.subnet.contains(dst) {
            None
        } else {
            self.routing.lookup(dst, src)
        };
        let Some(next) = next else {
            self.write_kernel(packet);
            return;
        };
        if next == tid {
            self.dropped += 1; // back where it came from: a transient loop
            return;
        }
        if h.hop_limit() <= 1 {
            // A router's manners: traceroute shows this hop.
            self.dropped += 1;
            self.send_error(packet, ip::IcmpError::HopLimit, false, out)
                .await;
            return;
        }
        packet[7] -= 1; // forwarding: decrement the hop limit
        self.send_through(next, packet, out, false).await;
    }

    async fn on_link_message(&mut self, tid: TunnelId, packet: &[u8], out: &mut [u8]) {
        let Some(u) = Udp::parse(packet) else { return };
        let Some(link) = self.peers.get(&tid).map(|p| p.link) else {
            return;
        };
        match u.dst_port {
            BABEL_PORT => {
                let from = SocketAddrV6::new(u.src, u.src_port, 0, 0);
                self.engine
                    .handle_packet(now(), link, from, u.dst, u.payload);
            }
            ctl::PORT => match ctl::Msg::parse(u.payload) {
                Some(ctl::Msg::Seen(a)) => {
                    let mine = SocketAddr::new(a.ip(), self.port);
                    if self.own_addrs.first() != Some(&mine) {
                        debug!("a peer sees us at {a}");
                    }
                    self.own_addrs
                        .retain(|x| *x != mine && x.is_ipv4() != mine.is_ipv4());
                    self.own_addrs.insert(0, mine);
                }
                Some(ctl::Msg::Version(v)) => self.on_version(tid, v, out).await,
                _ => {}
            },
            _ => {}
        }
    }

    /// A tunnel peer tells the network version it knows (re6st's code 0).
    async fn on_version(
        &mut self,
        tid: TunnelId,
        v: registry_client::netconfig::Version,
        out: &mut [u8],
    ) {
        let ca = self.id.ca.public_key();
        let ours = self
            .versions
            .known()
            .map_or_else(|| "none".into(), |k| k.number.to_string());
        match self.versions.heard(now(), &v, |v| v.verify(ca).is_ok()) {
            Heard::Same => debug!("tunnel {tid}: network version {} (ours too)", v.number),
            Heard::Older => {
                debug!("tunnel {tid}: network version {}, ours {ours}", v.number);
                self.announce_version(Some(tid), out).await;
            }
            Heard::Refused => debug!("tunnel {tid}: network version {}: bad signature", v.number),
            Heard::Newer => {
                // flush passes it on to every peer.
                info!(
                    "tunnel {tid}: network version {} (ours {ours}){}",
                    v.number,
                    if self.registry.is_some() {
                        ", fetching the network config"
                    } else {
                        ""
                    }
                );
            }
        }
    }

    /// Tell the network version we know to one tunnel peer, or all.
    async fn announce_version(&mut self, to: Option<TunnelId>, out: &mut [u8]) {
        let Some(v) = self.versions.known() else {
            return;
        };
        let msg = ctl::Msg::Version(v.clone());
        let tids: Vec<TunnelId> = match to {
            Some(t) => vec![t],
            None => self.peers.keys().copied().collect(),
        };
        for tid in tids {
            self.send_link_ctl(tid, &msg, out).await;
        }
    }

    async fn on_ctl(&mut self, src: Ipv6Addr, sport: u16, msg: Option<ctl::Msg>, out: &mut [u8]) {
        match msg {
            Some(ctl::Msg::AddressRequest) if !self.own_addrs.is_empty() => {
                let answer = ctl::Msg::Address(self.own_addrs.clone()).encode();
                self.send_ctl(src, sport, &answer, out).await;
            }
            Some(ctl::Msg::Address(addrs)) => {
                if let Some(p) = self.asked.remove(&src) {
                    debug!("{} is at {addrs:?}", p.to_cn());
                    self.cache.learn(p, &addrs);
                    self.cache_dirty = true;
                    self.mesh.learned(now(), p);
                }
            }
            _ => {}
        }
    }
}

/// Where the node's Babel seqno survives restarts.
const SEQNO_FILE: &str = "babel-seqno";

fn load_seqno(state: &StateDir) -> Option<SeqNo> {
    let raw = state.read(SEQNO_FILE).ok()??;
    std::str::from_utf8(&raw)
        .ok()?
        .trim()
        .parse()
        .ok()
        .map(SeqNo)
}

impl Node {
    /// Answer one status request (`json` or `text`).
    async fn answer_status(&mut self, stream: tokio::net::UnixStream) {
        let mut req = [0u8; 16];
        let read = async {
            loop {
                stream.readable().await?;
                match stream.try_read(&mut req) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => return r,
                }
            }
        };
        let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), read).await else {
            return;
        };
        let status = self.status();
        let answer = if req[..n].starts_with(b"json") {
            status.to_json() + "\n"
        } else {
            status.to_text()
        };
        let write = async {
            let mut rest = answer.as_bytes();
            while !rest.is_empty() {
                stream.writable().await?;
                match stream.try_write(rest) {
                    Ok(n) => rest = &rest[n..],
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            Ok::<(), io::Error>(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
    }

    /// The status report, as of now.
    fn status(&self) -> Status {
        let t = now();
        let rtt_ms = |us: Option<u32>| us.map(|u| f64::from(u) / 1000.0);
        let lan_name = |link: LinkId| self.lan_of(link).map(|l| l.name.clone());
        let mut tunnels: Vec<status::Tunnel> = self
            .mesh
            .tunnels()
            .map(|(id, m)| {
                let peer = self.peers.get(&id);
                let nb = peer.and_then(|p| self.engine.neighbours(t).find(|n| n.link == p.link));
                let counters = peer.map(|p| p.counters).unwrap_or_default();
                status::Tunnel {
                    id,
                    peer: peer.map(|p| p.subnet.to_string()).or_else(|| {
                        m.peer
                            .and_then(|p| self.subnet_of(p))
                            .map(|s| s.to_string())
                    }),
                    address: m.addr,
                    client: m.dir == Dir::Client,
                    state: state_name(m.state),
                    age_s: m.up_since.map_or(0, |u| t.millis_since(u) / 1000),
                    rtt_ms: rtt_ms(nb.as_ref().and_then(|n| n.rtt_us)),
                    loss: nb.as_ref().map(|n| {
                        // Of the Hellos expected so far (16 at most, the
                        // reach window), how many did not come.
                        let age_ms = m.up_since.map_or(0, |u| t.millis_since(u));
                        let hello = u64::from(self.link_template.hello_interval_ms).max(1);
                        let expected = (age_ms / hello + 1).min(16) as f64;
                        (1.0 - f64::from(n.reach.count_ones()) / expected).max(0.0)
                    }),
                    cost: nb.as_ref().map(|n| n.cost),
                    rx_packets: counters.rx_packets,
                    rx_bytes: counters.rx_bytes,
                    tx_packets: counters.tx_packets,
                    tx_bytes: counters.tx_bytes,
                }
            })
            .collect();
        tunnels.sort_by_key(|r| r.id);
        let st = self.engine.stats();
        Status {
            prefix: self.subnet,
            address: self.address,
            network: self.network,
            uptime_s: t.millis_since(self.started) / 1000,
            network_config_version: self.netconf_version,
            registry: self.registry.as_ref().map(|r| status::Registry {
                url: r.url.clone(),
                last_ok_s: r.last_ok.map(|o| t.millis_since(o) / 1000),
                last_error: r.last_error.clone(),
            }),
            certificate: status::CertificateStatus {
                not_after: self.renewal.not_after(),
                renew_from: self.renewal.renew_from(),
                renewal_error: self.renewal.last_error().map(str::to_owned),
            },
            reachable: self.mesh.reachable(),
            public_addresses: self.own_addrs.clone(),
            tunnels,
            babel_interfaces: self
                .lans
                .iter()
                .map(|l| status::BabelInterface {
                    interface: l.name.clone(),
                    address: l.local,
                    nodes: self.lan_nodes(l.index).collect(),
                })
                .collect(),
            lan_interfaces: self
                .lan_interfaces
                .iter()
                .map(|l| status::LanInterface {
                    interface: l.name.clone(),
                    prefix: l.prefix,
                    ra: l.ra,
                })
                .collect(),
            router_id: self.engine.router_id().0,
            neighbours: self
                .engine
                .neighbours(t)
                .map(|n| status::Neighbour {
                    tunnel: self.tunnel_of.get(&n.link).copied(),
                    interface: lan_name(n.link),
                    address: n.address,
                    reach: n.reach,
                    rxcost: n.rxcost,
                    txcost: n.txcost,
                    cost: n.cost,
                    rtt_ms: rtt_ms(n.rtt_us),
                })
                .collect(),
            routes: self
                .engine
                .routes()
                .filter(|r| r.installed)
                .map(|r| status::Route {
                    prefix: net_of(&r.prefix),
                    from: net_of(&r.src_prefix),
                    metric: r.metric,
                    tunnel: self.tunnel_of.get(&r.link).copied(),
                    interface: lan_name(r.link),
                    next_hop: r.next_hop,
                    router_id: r.router_id.0,
                })
                .collect(),
            babel: status::BabelCounts {
                routes: self.engine.routes().count(),
                max_routes: self.config.max_routes,
                table_full: st.table_full,
                origins_rejected: st.origins_rejected,
                mac_rejected: st.mac_rejected,
                replays_rejected: st.replays_rejected,
            },
            peer_cache: self.cache.len(),
            dropped_packets: self.dropped,
        }
    }

    /// The LAN interface of Babel link `link`, if it is one.
    fn lan_of(&self, link: LinkId) -> Option<&Lan> {
        self.lans.iter().find(|l| l.link == link)
    }

    /// Nodes proven on LAN interface `index`: link-local address, subnet.
    fn lan_nodes(&self, index: u32) -> impl Iterator<Item = (Ipv6Addr, String)> + '_ {
        self.discovery
            .neighbours()
            .filter(move |n| n.0 == index)
            .map(|(_, addr, p)| {
                let subnet = self
                    .subnet_of(p)
                    .map_or_else(|| p.to_cn(), |n| n.to_string());
                (addr, subnet)
            })
    }
}

fn state_name(s: MeshState) -> &'static str {
    match s {
        MeshState::Connecting => "connecting",
        MeshState::Up => "up",
        MeshState::Draining => "draining",
        MeshState::Closing => "closing",
    }
}
