//! The node's core, sans-IO: what ties the tunnel endpoint, the Babel
//! engine, the mesh manager, LAN discovery and the registry together.
//!
//! [`Node`] is fed events (a datagram from a peer, a packet from the kernel,
//! a LAN packet, a registry answer, a timer) with the time of the driver's
//! turn, and carries out what they cause through [`Io`]: datagrams to send,
//! packets for the kernel, kernel routes, registry requests, state files.
//! `poll_timeout` says when to call `handle_timeout` next. The daemon's
//! driver (`driver/run.rs`) implements [`Io`] with sockets, the TUN device
//! and netlink; the simulator (`tests/src/sim`) with queues between
//! thousands of nodes in virtual time.
//!
//! [`Io`] is a sink the core calls, not a queue the driver polls (quinn's
//! `poll_transmit`): a sealed datagram is handed over from the core's buffer
//! as it is made, so the data path copies nothing more than before.

mod control;
mod data;
mod lan;
pub mod netconf;
mod punch;
pub mod registry;
mod registry_node;
pub mod renewal;
mod report;
pub mod routing;
pub mod settings;
pub mod status;

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use log::info;
use registry_client::netconfig::NetworkConfig;
use registry_client::state::Identity;
use registry_client::{Prefix, Subnet};
use sha2::{Digest, Sha256};

use crate::babel::{
    Engine, EngineConfig, LinkConfig, LinkId, Prefix as BabelPrefix, RouterId, SeqNo,
};
use crate::config::Config;
use crate::ip;
use crate::mesh::beacon::{Beacon, Discovery};
use crate::mesh::cache::PeerCache;
use crate::mesh::manager::Manager;
use crate::mesh::version::Versions;
use crate::nat::mapper::Mapper;
use crate::nat::Observed;
use crate::net::Ipv6Net;
use crate::time::Instant;
use crate::tunnel::auth::{CaAuthority, Identity as TunnelIdentity};
use crate::tunnel::cookie::TokenBucket;
use crate::tunnel::{wire, Endpoint, TunnelId};
use netconf::Refresh;
use registry::{Job, RegistryState};
use renewal::Renewal;
use routing::{KernelRoute, Routing};
use settings::{settings, Settings};

/// What the core asks of the world. Every call is made during a `handle_*`
/// call, with that call's time.
pub trait Io {
    /// A datagram to a peer's underlay address (sealed data or a handshake
    /// message).
    fn send(&mut self, to: SocketAddr, bytes: &[u8]);
    /// An IP packet for the kernel (written to the overlay device).
    fn deliver(&mut self, packet: &[u8]);
    /// A Babel packet on LAN interface `index`, to a neighbour or the
    /// Babel group.
    fn send_lan_babel(&mut self, index: u32, dst: Ipv6Addr, payload: &[u8]);
    /// Our discovery beacon on LAN interface `index`.
    fn send_beacon(&mut self, index: u32, payload: &[u8]);
    /// Make the kernel's route for (`dst`, `src`) be `route` (none: remove
    /// the node's).
    fn set_route(&mut self, dst: Ipv6Net, src: Ipv6Net, route: Option<KernelRoute>);
    /// Ask the registry (only made when the config names one).
    fn registry(&mut self, job: Job);
    /// Write state file `name` atomically.
    fn save(&mut self, name: &'static str, bytes: &[u8], mode: u32);
    /// A datagram to the registry's UDP port on ::1 (`registry_node`).
    fn to_registry(&mut self, port: u16, bytes: &[u8]);
    /// A datagram to the gateway's port mapping service (PCP, NAT-PMP,
    /// SSDP), from the NAT socket; answers go to
    /// [`Node::handle_nat_datagram`].
    fn nat_send(&mut self, _to: SocketAddr, _bytes: &[u8]) {}
    /// One HTTP exchange with the gateway (UPnP); the answer goes to
    /// [`Node::handle_nat_http`].
    fn nat_http(&mut self, _to: SocketAddr, _request: Vec<u8>) {}
}

/// Underlay MTU assumed until path MTU discovery exists: Ethernet.
const UNDERLAY_MTU: u32 = 1500;
/// The largest packet the core opens, seals or builds: a handshake message
/// with a 4096-bit certificate, a data packet from a peer on jumbo frames.
/// Bigger datagrams are dropped (peers send at most their MTU). The
/// driver's read buffers are larger: a GRO batch or a TSO super-packet is
/// cut before it gets here.
const BUF_LEN: usize = 16384;
/// ICMPv6 errors sent at most this often (a traceroute's probes come in
/// bursts of 16).
const ICMP_ERRORS_PER_SEC: u32 = 100;
const ICMP_ERRORS_BURST: u32 = 32;
/// The peer cache is written at most this often (and at exit).
const CACHE_SAVE_MS: u64 = 60_000;
/// Where the node's Babel seqno survives restarts.
pub const SEQNO_FILE: &str = "babel-seqno";

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

/// A LAN interface the node speaks Babel on (`babel_interface`).
struct LanLink {
    name: String,
    index: u32,
    /// Our link-local address there.
    local: Ipv6Addr,
    link: LinkId,
}

/// What a node starts from, read by the driver from the state directory.
pub struct Start {
    pub config: Config,
    pub id: Identity,
    /// The network config cached by the last run, if any.
    pub netconf: Option<NetworkConfig>,
    pub cache: PeerCache,
    /// The Babel seqno the last run saved.
    pub seqno: Option<SeqNo>,
    /// Which underlay address families the node can send on.
    pub ipv4: bool,
    pub ipv6: bool,
    /// Randomness for the tunnel keys, the endpoint and Babel.
    pub seed: [u8; 32],
}

/// The node. See the module doc.
pub struct Node {
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
    lans: Vec<LanLink>,
    discovery: Discovery,
    /// Our beacon, made once per certificate.
    beacon: Vec<u8>,
    /// Early Hellos for LAN newcomers: (link, when).
    lan_hellos: Vec<(LinkId, Instant)>,
    /// The network has Babel MAC keys: they, not beacons, vouch for LAN
    /// neighbours (so stock babeld with the keys can join).
    babel_mac: bool,
    ipv4: bool,
    ipv6: bool,
    /// Network bits (from the CA) and as a prefix.
    network_bits: Prefix,
    network: Ipv6Net,
    address: Ipv6Addr,
    subnet: Ipv6Net,
    link_local: Ipv6Addr,
    mtu: u32,
    cache: PeerCache,
    cache_dirty: bool,
    cache_saved: Instant,
    /// The Babel seqno last saved.
    seqno_saved: Option<SeqNo>,
    /// Our underlay addresses as peers report them, newest first.
    own_addrs: Vec<SocketAddr>,
    /// The host's public addresses (with our port).
    local_addrs: Vec<SocketAddr>,
    /// Our IPv4 address towards the default gateway.
    underlay: Option<Ipv4Addr>,
    /// How peers see us: the NAT situation.
    observed: Observed,
    mapper: Mapper,
    /// Introductions made for others, and acted upon (hole punching).
    intro_budget: TokenBucket,
    punch_budget: TokenBucket,
    /// What the registry's node keeps (`registry_node`).
    side: Option<registry_node::Side>,
    /// Address requests in flight: node address -> its prefix.
    asked: HashMap<Ipv6Addr, Prefix>,
    registry: Option<RegistryState>,
    netconf_version: Option<u64>,
    netconf_refresh: Refresh,
    /// The network version peers tell us and we tell them.
    versions: Versions,
    /// Our certificate and key (a renewal replaces the certificate), and
    /// the CA, which signs the network version.
    id: Identity,
    renewal: Renewal,
    ca_renewal: Renewal,
    started: Instant,
    /// The wall clock at the last timer turn: (instant, Unix seconds).
    wall: (Instant, u64),
    /// ICMPv6 errors we may send (RFC 4443 §2.4 (f)).
    icmp_budget: TokenBucket,
    /// Packets dropped (no route, malformed, too big, refused by the
    /// endpoint).
    dropped: u64,
    /// A datagram opened, a packet sealed, a packet built.
    pkt: Vec<u8>,
    out: Vec<u8>,
    scratch: Vec<u8>,
}

/// The node's prefixes as Babel's, and back.
fn babel_prefix(n: Ipv6Net) -> BabelPrefix {
    BabelPrefix::from_addr(n.addr(), n.prefix_len())
}

fn net_of(p: &BabelPrefix) -> Ipv6Net {
    Ipv6Net::new(p.addr(), p.len())
}

/// Independent 32-byte values from one seed.
fn derive(seed: &[u8; 32], label: &[u8]) -> [u8; 32] {
    Sha256::new()
        .chain_update(label)
        .chain_update(seed)
        .finalize()
        .into()
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

impl Node {
    /// The node at `t`, when the wall clock reads `unix`. Fails only if the
    /// certificate's key cannot sign.
    pub fn new(s: Start, t: Instant, unix: u64) -> Result<Node, String> {
        let Start {
            config,
            id,
            netconf,
            cache,
            seqno,
            ipv4,
            ipv6,
            seed,
        } = s;
        let crl = netconf.as_ref().map(|n| n.crl.clone()).unwrap_or_default();
        let identity = TunnelIdentity::new(
            id.cert.der().to_vec(),
            &id.key,
            derive(&seed, b"tunnel static key"),
        )
        .map_err(|e| format!("tunnel identity: {e}"))?;
        let beacon = beacon(config.port, &identity);
        // Babel: the router id and the link-local address on tunnels both
        // come from the node's address, unique in the network.
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
        let endpoint = Endpoint::new(
            tunnel_config,
            &id.ca.public_key_der(),
            identity,
            CaAuthority::new(id.ca.clone(), &crl),
            t,
            unix,
            derive(&seed, b"endpoint"),
        );
        let (net_addr, net_len) = (id.subnet.network.to_ipv6(), id.subnet.network.len());
        let network = Ipv6Net::new(net_addr, net_len);
        let (sub_addr, sub_len) = id.subnet.ipv6();
        let subnet = Ipv6Net::new(sub_addr, sub_len);

        let babel_seed = derive(&seed, b"babel");
        let babel_seed = u64::from_le_bytes(babel_seed[..8].try_into().expect("8 bytes"));
        let mut ecfg = EngineConfig::new(RouterId(iid.to_be_bytes()), babel_seed);
        ecfg.mac = mac;
        ecfg.limits.routes = config.max_routes as usize;
        ecfg.limits.sources = config.max_routes as usize;
        ecfg.limits.links = config.max_tunnels as usize + config.babel_interfaces.len() + 1;
        ecfg.network = Some(babel_prefix(network));
        let babel_mac = ecfg.mac.sign.is_some();
        let mut engine = Engine::new(ecfg, t);
        if let Some(last) = seqno {
            engine.resume_seqno(last);
        }
        engine.originate(t, babel_prefix(subnet), BabelPrefix::DEFAULT);
        if config.gateway {
            // Only for sources inside the network (RFC 9079): hosts with
            // native IPv6 keep their own default route.
            engine.originate(t, BabelPrefix::DEFAULT, babel_prefix(network));
            info!("gateway: announcing ::/0 from {network}");
        }
        let mesh = Manager::new(
            policy,
            id.subnet.node,
            config.peers.clone(),
            t,
            babel_seed.rotate_left(17),
        );
        Ok(Node {
            beacon,
            endpoint,
            engine,
            mesh,
            routing: Routing::new(network),
            peers: HashMap::new(),
            tunnel_of: HashMap::new(),
            link_template,
            lans: Vec::new(),
            discovery: Discovery::new(t),
            lan_hellos: Vec::new(),
            babel_mac,
            ipv4,
            ipv6,
            network_bits: id.subnet.network,
            network,
            address,
            subnet,
            link_local,
            mtu: ip::inner_mtu(UNDERLAY_MTU, false, wire::DATA_OVERHEAD as u32),
            cache,
            cache_dirty: false,
            cache_saved: t,
            seqno_saved: seqno,
            own_addrs: Vec::new(),
            local_addrs: Vec::new(),
            underlay: None,
            observed: Observed::default(),
            mapper: Mapper::new(config.port, babel_seed.rotate_left(29)),
            intro_budget: TokenBucket::new(punch::INTROS.0, punch::INTROS.1, t),
            punch_budget: TokenBucket::new(punch::PUNCHES.0, punch::PUNCHES.1, t),
            side: config.registry_node.then(Default::default),
            asked: HashMap::new(),
            registry: config.registry.clone().map(|url| RegistryState {
                url,
                last_ok: None,
                last_error: None,
            }),
            netconf_version: netconf.as_ref().map(|n| n.version.number),
            // At start when the registry is there: revocations since our
            // last run apply at once.
            netconf_refresh: Refresh::new(t, netconf.as_ref().and_then(|n| n.valid_until)),
            versions: Versions::new(
                netconf.as_ref().map(|n| &n.version),
                config.registry.is_some(),
            ),
            renewal: Renewal::new(id.cert.not_after()),
            ca_renewal: Renewal::new(id.ca.not_after()),
            id,
            config,
            started: t,
            wall: (t, unix),
            icmp_budget: TokenBucket::new(ICMP_ERRORS_PER_SEC, ICMP_ERRORS_BURST, t),
            dropped: 0,
            pkt: vec![0u8; BUF_LEN],
            out: vec![0u8; BUF_LEN + wire::DATA_OVERHEAD],
            scratch: vec![0u8; BUF_LEN],
        })
    }

    /// The overlay device's MTU: room for the tunnel headers.
    pub fn mtu(&self) -> u32 {
        self.mtu
    }

    /// The node's address (on the overlay device) and its subnet.
    pub fn address(&self) -> Ipv6Addr {
        self.address
    }

    pub fn subnet(&self) -> Ipv6Net {
        self.subnet
    }

    pub fn network(&self) -> Ipv6Net {
        self.network
    }

    /// The tunnel a packet from `src` to `dst` leaves by, if any.
    pub fn route(&self, dst: Ipv6Addr, src: Ipv6Addr) -> Option<TunnelId> {
        self.routing.lookup(dst, src)
    }

    /// The underlay address of tunnel `id`'s peer.
    pub fn peer_addr(&self, id: TunnelId) -> Option<SocketAddr> {
        self.endpoint.peer_addr(id)
    }

    /// Tunnels up, with their peers' subnets.
    pub fn tunnels(&self) -> impl Iterator<Item = (TunnelId, Ipv6Net)> + '_ {
        self.peers.iter().map(|(&id, p)| (id, p.subnet))
    }

    /// Babel's routes (all, selected or not) and neighbours, counted.
    pub fn table_sizes(&self, t: Instant) -> (usize, usize) {
        (
            self.engine.routes().count(),
            self.engine.neighbours(t).count(),
        )
    }

    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The wall clock at `t`, from the last reading the driver handed down.
    fn unix_at(&self, t: Instant) -> u64 {
        self.wall.1 + t.millis_since(self.wall.0) / 1000
    }

    /// When `handle_timeout` is due next.
    pub fn poll_timeout(&self) -> Instant {
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
        if let Some(m) = self.mapper.poll_timeout() {
            t = t.min(m);
        }
        if !self.lans.is_empty() {
            t = t.min(self.discovery.poll_timeout());
        }
        for &(_, at) in &self.lan_hellos {
            t = t.min(at);
        }
        t
    }

    /// Run whatever timer is due. `unix` is the wall clock as it is now:
    /// NTP may have set it since start (routers without a real-time clock
    /// boot in 1970), and certificate checks follow it.
    pub fn handle_timeout(&mut self, t: Instant, unix: u64, io: &mut impl Io) {
        self.wall = (t, unix);
        self.endpoint.set_unix_time(t, unix);
        self.endpoint.handle_timeout(t);
        self.engine.handle_timeout(t);
        self.mapper.handle_timeout(t);
        if self.registry.is_some() && self.renewal.poll(t, unix) {
            info!(
                "certificate valid until {}: asking the registry to renew it",
                registry_client::cert::utc_string(self.renewal.not_after())
            );
            io.registry(Job::Renew);
        }
        if self.registry.is_some() && self.ca_renewal.poll(t, unix) {
            info!(
                "CA certificate valid until {}: asking the registry for a renewed one",
                registry_client::cert::utc_string(self.ca_renewal.not_after())
            );
            io.registry(Job::RenewCa);
        }
        if t >= self.mesh.poll_timeout() {
            let routes = self.routed_nodes();
            let actions = self.mesh.tick(t, &routes, &self.cache);
            for a in actions {
                self.on_mesh_action(t, a, io);
            }
        }
        if self.netconf_refresh.poll(t, unix) && self.registry.is_some() {
            io.registry(Job::NetworkConfig);
        }
        if self.registry.is_some() && self.versions.fetch_due(t) {
            // A peer told of a newer network version.
            io.registry(Job::NetworkConfig);
            self.versions.fetch_started(t);
        }
        if self.cache_dirty && t.millis_since(self.cache_saved) >= CACHE_SAVE_MS {
            self.save_cache(t, io);
        }
        self.lan_timers(t, io);
    }

    /// Ask the registry to renew the certificate at the next timer turn,
    /// whatever its date (it answers with the same one while more than 30
    /// days are left).
    pub fn renew_now(&mut self) {
        self.renewal.force();
    }

    /// Check the network config now (SIGHUP).
    pub fn refresh_network_config(&mut self, t: Instant) {
        self.netconf_refresh.soon(t);
    }

    /// Carry out what the state machines queued: tunnel control datagrams
    /// and events, Babel packets, route changes, the version to pass on.
    /// The `handle_*` calls leave that to it, so the caller calls it after
    /// them (the driver once per turn, after every input of the turn).
    pub fn flush(&mut self, t: Instant, io: &mut impl Io) {
        self.nat_output(io);
        self.endpoint_output(t, io);
        self.babel_output(t, io);
        if self.versions.take_announce() {
            self.announce_version(t, None, io);
        }
        // Rare (a seqno request for our prefix), and a crash must not lose it.
        let seqno = self.engine.seqno();
        if self.seqno_saved != Some(seqno) {
            self.seqno_saved = Some(seqno);
            io.save(SEQNO_FILE, format!("{}\n", seqno.0).as_bytes(), 0o644);
        }
    }

    /// Stop: withdraw our routes and close every tunnel (peers learn it at
    /// once rather than after the dead-peer timeout). The driver saves the
    /// cache ([`Self::save_cache`]) once the goodbyes had time to go.
    pub fn shutdown(&mut self, t: Instant, io: &mut impl Io) {
        self.engine
            .withdraw(t, babel_prefix(self.subnet), BabelPrefix::DEFAULT);
        self.flush(t, io);
        let ids: Vec<TunnelId> = self.peers.keys().copied().collect();
        for tid in ids {
            let _ = self.endpoint.close(t, tid);
        }
        self.mapper.release();
        self.flush(t, io);
    }

    /// Write the peer cache now (it is also written at most once a minute
    /// while it changes).
    pub fn save_cache(&mut self, t: Instant, io: &mut impl Io) {
        self.cache_saved = t;
        self.cache_dirty = false;
        io.save(
            crate::mesh::cache::FILE_NAME,
            &self.cache.encode(),
            crate::mesh::cache::FILE_MODE,
        );
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
}
