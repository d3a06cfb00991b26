//! rtnetlink requests the node needs: give the overlay link the node's
//! address, and install or remove IPv6 routes (including source-specific
//! ones, `ip -6 route add ::/0 from <network>`). Links are brought up by
//! [`super::iface`].
//!
//! Message bodies are built and parsed with netlink-packet-route, the
//! well-kept crate behind the rtnetlink ecosystem. The 16-byte netlink header
//! is written and read here instead of through its `RouteNetlinkMessage`
//! enum: decoding that enum links the parsers of every link kind the kernel
//! knows, about 300 KiB of code, where the node reads only ACKs and routes.
//! Requests are synchronous (one request, one ACK), which suits the
//! driver's rare configuration changes.

use std::io;
use std::net::{IpAddr, Ipv6Addr};

use netlink_packet_core::{
    Emitable, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::AddressFamily;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::net::Ipv6Net;

/// Routes the node installs carry this protocol number, so a restarted node
/// can find and remove what a crashed one left behind (`ip -6 route show
/// proto 114`). Unassigned in iproute2's rt_protos.
pub const RTPROT_RE6ST: u8 = 114;

// Message types (linux/rtnetlink.h, linux/netlink.h).
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
/// struct nlmsghdr: length, type, flags, sequence, port; host byte order.
const NLMSG_HDRLEN: usize = 16;
/// Multicast groups (linux/rtnetlink.h): links, IPv6 addresses and routes.
const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;

/// An IPv6 route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv6Net,
    /// Source prefix; `::/0` for an ordinary route (RFC 9079 otherwise).
    pub src: Ipv6Net,
    /// Output interface index.
    pub oif: Option<u32>,
    /// Next-hop address (a link-local neighbour on a LAN link).
    pub via: Option<Ipv6Addr>,
    pub metric: u32,
    /// An unreachable route: drop instead of leaking to the default route.
    pub unreachable: bool,
}

impl Route {
    /// A route to `dst` through interface `oif`.
    pub fn dev(dst: Ipv6Net, oif: u32) -> Self {
        Route {
            dst,
            src: Ipv6Net::DEFAULT,
            oif: Some(oif),
            via: None,
            metric: 1024,
            unreachable: false,
        }
    }
}

pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("netlink: {what}"))
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Netlink {
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink {
            socket,
            seq: 0,
            buf: vec![0; 32 * 1024],
        })
    }

    fn send(&mut self, kind: u16, flags: u16, body: &dyn Emitable) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let len = NLMSG_HDRLEN + body.buffer_len();
        let mut out = vec![0; len];
        out[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        out[4..6].copy_from_slice(&kind.to_ne_bytes());
        out[6..8].copy_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        out[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        body.emit(&mut out[NLMSG_HDRLEN..]);
        self.socket.send(&out, 0)?;
        Ok(self.seq)
    }

    /// Receive replies to request `seq`, passing each other message (type,
    /// body) to `each`, until the ACK (or NLMSG_DONE for a dump); a NACK
    /// becomes its errno.
    fn receive(&mut self, seq: u32, mut each: impl FnMut(u16, &[u8])) -> io::Result<()> {
        loop {
            let n = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let mut off = 0;
            while off + NLMSG_HDRLEN <= n {
                let m = &self.buf[off..n];
                let len = u32_at(m, 0) as usize;
                if len < NLMSG_HDRLEN || len > m.len() {
                    return Err(invalid("truncated message"));
                }
                off += (len + 3) & !3;
                if u32_at(m, 8) != seq {
                    continue;
                }
                let body = &m[NLMSG_HDRLEN..len];
                match u16_at(m, 4) {
                    NLMSG_ERROR => {
                        if body.len() < 4 {
                            return Err(invalid("short error message"));
                        }
                        let code = i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                        return match code {
                            0 => Ok(()),
                            c => Err(io::Error::from_raw_os_error(-c)),
                        };
                    }
                    NLMSG_DONE => return Ok(()),
                    kind => each(kind, body),
                }
            }
        }
    }

    fn request(&mut self, kind: u16, flags: u16, body: &dyn Emitable) -> io::Result<()> {
        let seq = self.send(kind, flags | NLM_F_ACK, body)?;
        self.receive(seq, |_, _| {})
    }

    /// The index of interface `name`.
    pub fn link_index(&mut self, name: &str) -> io::Result<u32> {
        nix::net::if_::if_nametoindex(name).map_err(io::Error::from)
    }

    fn address(index: u32, addr: Ipv6Addr, prefix_len: u8) -> AddressMessage {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet6;
        msg.header.prefix_len = prefix_len;
        msg.header.index = index;
        // The node owns its prefix: no duplicate address detection delay.
        msg.header.flags = AddressHeaderFlags::Nodad;
        msg.attributes
            .push(AddressAttribute::Address(IpAddr::V6(addr)));
        msg
    }

    /// Add (or refresh) an IPv6 address on a link.
    pub fn add_address(&mut self, index: u32, addr: Ipv6Addr, prefix_len: u8) -> io::Result<()> {
        let msg = Self::address(index, addr, prefix_len);
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, &msg)
    }

    pub fn del_address(&mut self, index: u32, addr: Ipv6Addr, prefix_len: u8) -> io::Result<()> {
        let msg = Self::address(index, addr, prefix_len);
        self.request(RTM_DELADDR, 0, &msg)
    }

    fn route_message(r: &Route) -> RouteMessage {
        let mut msg = RouteMessage::default();
        let h = &mut msg.header;
        h.address_family = AddressFamily::Inet6;
        h.destination_prefix_length = r.dst.prefix_len();
        h.source_prefix_length = r.src.prefix_len();
        h.table = RouteHeader::RT_TABLE_MAIN;
        h.protocol = RouteProtocol::Other(RTPROT_RE6ST);
        h.scope = RouteScope::Universe;
        h.kind = if r.unreachable {
            RouteType::Unreachable
        } else {
            RouteType::Unicast
        };
        let a = &mut msg.attributes;
        a.push(RouteAttribute::Destination(RouteAddress::Inet6(
            r.dst.addr(),
        )));
        if !r.src.is_default() {
            a.push(RouteAttribute::Source(RouteAddress::Inet6(r.src.addr())));
        }
        if let Some(oif) = r.oif {
            a.push(RouteAttribute::Oif(oif));
        }
        if let Some(via) = r.via {
            a.push(RouteAttribute::Gateway(RouteAddress::Inet6(via)));
        }
        a.push(RouteAttribute::Priority(r.metric));
        msg
    }

    /// Add or replace a route.
    pub fn add_route(&mut self, r: &Route) -> io::Result<()> {
        let msg = Self::route_message(r);
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, &msg)
    }

    pub fn del_route(&mut self, r: &Route) -> io::Result<()> {
        let msg = Self::route_message(r);
        self.request(RTM_DELROUTE, 0, &msg)
    }

    /// Every IPv6 route of the main table that carries [`RTPROT_RE6ST`].
    pub fn own_routes(&mut self) -> io::Result<Vec<Route>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet6;
        let seq = self.send(RTM_GETROUTE, NLM_F_DUMP, &msg)?;
        let mut routes = Vec::new();
        self.receive(seq, |kind, body| {
            if kind != RTM_NEWROUTE {
                return;
            }
            if let Some(r) = parse_own_route(body) {
                routes.push(r);
            }
        })?;
        Ok(routes)
    }
}

/// A route of ours ([`RTPROT_RE6ST`], main table) in an RTM_NEWROUTE or
/// RTM_DELROUTE body.
fn parse_own_route(body: &[u8]) -> Option<Route> {
    let m = <RouteMessage as netlink_packet_core::Parseable<[u8]>>::parse(body).ok()?;
    let h = &m.header;
    if h.protocol != RouteProtocol::Other(RTPROT_RE6ST) || h.table != RouteHeader::RT_TABLE_MAIN {
        return None;
    }
    let mut r = Route {
        dst: Ipv6Net::new(Ipv6Addr::UNSPECIFIED, h.destination_prefix_length),
        src: Ipv6Net::new(Ipv6Addr::UNSPECIFIED, h.source_prefix_length),
        oif: None,
        via: None,
        metric: 0,
        unreachable: h.kind == RouteType::Unreachable,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet6(d)) => {
                r.dst = Ipv6Net::new(*d, h.destination_prefix_length)
            }
            RouteAttribute::Source(RouteAddress::Inet6(s)) => {
                r.src = Ipv6Net::new(*s, h.source_prefix_length)
            }
            RouteAttribute::Oif(i) => r.oif = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => r.via = Some(*g),
            RouteAttribute::Priority(p) => r.metric = *p,
            _ => {}
        }
    }
    if r.unreachable {
        r.oif = None; // the kernel attaches unreachable routes to lo
    }
    Some(r)
}

/// What the kernel told of changes that may undo the node's set-up.
#[derive(Debug, Default)]
pub struct Changes {
    /// The watched link changed (up, down, renamed, ...).
    pub link: bool,
    /// An address of the watched link was removed.
    pub address_lost: bool,
    /// Routes of ours the kernel removed (by us, another program, or with
    /// their link going down).
    pub routes_lost: Vec<Route>,
    /// Notifications were lost (the socket's buffer overflowed): anything
    /// may have happened.
    pub overrun: bool,
}

/// Kernel notifications of link, IPv6 address and IPv6 route changes, read
/// without blocking.
pub struct Monitor {
    socket: Socket,
    buf: Vec<u8>,
}

impl Monitor {
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(
            0,
            RTMGRP_LINK | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE,
        ))?;
        socket.set_non_blocking(true)?;
        Ok(Monitor {
            socket,
            buf: vec![0; 32 * 1024],
        })
    }

    /// Reads every pending notification; those about link `index` or our
    /// routes are returned.
    pub fn drain(&mut self, index: u32) -> Changes {
        let mut c = Changes::default();
        loop {
            let n = match self.socket.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return c,
                Err(_) => {
                    // ENOBUFS: messages were dropped.
                    c.overrun = true;
                    return c;
                }
            };
            let mut off = 0;
            while off + NLMSG_HDRLEN <= n {
                let m = &self.buf[off..n];
                let len = u32_at(m, 0) as usize;
                if len < NLMSG_HDRLEN || len > m.len() {
                    break;
                }
                off += (len + 3) & !3;
                let body = &m[NLMSG_HDRLEN..len];
                match u16_at(m, 4) {
                    // struct ifinfomsg: family, pad, type (u16), index (i32).
                    RTM_NEWLINK if body.len() >= 8 => c.link |= u32_at(body, 4) == index,
                    // struct ifaddrmsg: family, prefix length, flags, scope, index.
                    RTM_DELADDR if body.len() >= 8 => c.address_lost |= u32_at(body, 4) == index,
                    RTM_DELROUTE => c.routes_lost.extend(parse_own_route(body)),
                    _ => {}
                }
            }
        }
    }
}

impl Monitor {
    /// Register with the tokio reactor.
    #[allow(unsafe_code)]
    pub fn into_async(self) -> io::Result<tokio::io::unix::AsyncFd<Monitor>> {
        // SAFETY: the Monitor owns its socket and closes it only when the
        // AsyncFd drops it, after deregistering.
        unsafe { tokio::io::unix::AsyncFd::register(self) }.map_err(|e| e.into_parts().1)
    }
}

impl std::os::fd::AsRawFd for Monitor {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.socket.as_raw_fd()
    }
}
