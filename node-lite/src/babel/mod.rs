//! Babel routing ([RFC 8966]) as a sans-IO state machine, interoperable with babeld 1.12.
//!
//! - [`wire`]: packet and TLV formats, parse/emit into caller buffers.
//! - [`mac`]: RFC 8967 MACs (HMAC-SHA256, BLAKE2s-128) as babeld computes them.
//! - [`config`]: links (tunnels, LANs), RTT parameters, keys, table sizes.
//! - [`neighbour`], [`route`], [`seqno`]: the tables and their arithmetic.
//! - [`Engine`]: the protocol. The driver feeds it datagrams
//!   ([`Engine::handle_packet`]) and the clock ([`Engine::handle_timeout`]), and drains
//!   [`Engine::poll_transmit`] (datagrams to send), [`Engine::poll_event`] (route
//!   changes for the forwarding table and the kernel) and [`Engine::poll_timeout`].
//!
//! [RFC 8966]: https://www.rfc-editor.org/rfc/rfc8966

pub mod config;
pub mod control;
mod engine;
pub mod mac;
pub mod neighbour;
pub mod route;
pub mod seqno;
pub mod wire;

#[cfg(test)]
mod interop;
#[cfg(test)]
mod tests;

use std::net::Ipv6Addr;

pub use config::{EngineConfig, LinkConfig, LinkKind, MacConfig, RttParams};
pub use engine::{Engine, NeighbourInfo};
pub use seqno::SeqNo;
pub use wire::{Prefix, RouterId};

/// A link (tunnel or LAN interface), numbered by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkId(pub usize);

/// A neighbour table slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NeighbourId(pub usize);

/// A datagram written by [`Engine::poll_transmit`]: send `len` octets of the buffer
/// from our link-local address, port 6696, to `dst` port 6696 on `link`. `dst` is
/// ff02::1:6 for link-wide messages; on a tunnel, the driver sends those to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub link: LinkId,
    pub dst: Ipv6Addr,
    pub len: usize,
}

/// A route as the forwarding table needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteInfo {
    pub prefix: Prefix,
    pub src_prefix: Prefix,
    pub router_id: RouterId,
    pub link: LinkId,
    pub next_hop: Ipv6Addr,
    /// [`wire::INFINITY`] while the route is retracted but kept (unreachable).
    pub metric: u16,
    /// The metric the neighbour announced (0: the neighbour's own prefix).
    pub refmetric: u16,
    pub seqno: SeqNo,
    pub installed: bool,
}

/// A change of the selected routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteEvent {
    Installed(RouteInfo),
    /// Next hop or metric changed; metric INFINITY means unreachable for now.
    Changed(RouteInfo),
    Removed {
        prefix: Prefix,
        src_prefix: Prefix,
    },
}

/// Counters for the status page and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub packets_in: u64,
    pub packets_out: u64,
    /// Not a Babel packet, wrong link, or not from a link-local address.
    pub packets_dropped: u64,
    /// Malformed or unsupported TLVs skipped.
    pub tlvs_ignored: u64,
    /// Missing or wrong MAC.
    pub mac_rejected: u64,
    /// Good MAC but replayed PC, or unknown index (challenge sent).
    pub replays_rejected: u64,
    pub challenges_sent: u64,
    /// Originated routes a tunnel peer had no right to announce.
    pub origins_rejected: u64,
    pub martians: u64,
    /// Entries refused because a table was full.
    pub table_full: u64,
    pub events_dropped: u64,
}
