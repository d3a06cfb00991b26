//! rtnetlink requests the node needs: bring the overlay link up with its MTU,
//! give it the node's address, and install or remove IPv6 routes (including
//! source-specific ones, `ip -6 route add ::/0 from <network>`).
//!
//! Messages are built with netlink-packet-route, the well-kept crate behind
//! the rtnetlink ecosystem; requests are synchronous (one request, one ACK),
//! which suits the driver's rare configuration changes.

use std::io;
use std::net::{IpAddr, Ipv6Addr};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::net::Ipv6Net;

/// Routes the node installs carry this protocol number, so a restarted node
/// can find and remove what a crashed one left behind (`ip -6 route show
/// proto 114`). Unassigned in iproute2's rt_protos.
pub const RTPROT_RE6ST: u8 = 114;

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

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        msg.finalize();
        let mut out = vec![0; msg.buffer_len()];
        msg.serialize(&mut out);
        self.socket.send(&out, 0)?;
        Ok(self.seq)
    }

    /// Receive replies to request `seq`, passing each inner message to `each`,
    /// until the ACK (or NLMSG_DONE for a dump); a NACK becomes its errno.
    fn receive(&mut self, seq: u32, mut each: impl FnMut(RouteNetlinkMessage)) -> io::Result<()> {
        loop {
            let n = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let mut off = 0;
            while off < n {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[off..n])
                    .map_err(|e| invalid(&e.to_string()))?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(invalid("zero-length message"));
                }
                off += (len + 3) & !3;
                if msg.header.sequence_number != seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(()),
                            Some(_) => Err(e.to_io()),
                        }
                    }
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::InnerMessage(m) => each(m),
                    _ => {}
                }
            }
        }
    }

    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        let seq = self.send(msg, flags | NLM_F_ACK)?;
        self.receive(seq, |_| {})
    }

    /// The index of interface `name`.
    pub fn link_index(&mut self, name: &str) -> io::Result<u32> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let seq = self.send(RouteNetlinkMessage::GetLink(msg), NLM_F_ACK)?;
        let mut index = None;
        self.receive(seq, |m| {
            if let RouteNetlinkMessage::NewLink(l) = m {
                index = Some(l.header.index);
            }
        })?;
        index.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no interface {name}")))
    }

    /// Set a link up or down, and its MTU.
    pub fn set_link(&mut self, index: u32, up: bool, mtu: Option<u32>) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.change_mask = LinkFlags::Up;
        if up {
            msg.header.flags = LinkFlags::Up;
        }
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
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
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    pub fn del_address(&mut self, index: u32, addr: Ipv6Addr, prefix_len: u8) -> io::Result<()> {
        let msg = Self::address(index, addr, prefix_len);
        self.request(RouteNetlinkMessage::DelAddress(msg), 0)
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
        self.request(
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    pub fn del_route(&mut self, r: &Route) -> io::Result<()> {
        let msg = Self::route_message(r);
        self.request(RouteNetlinkMessage::DelRoute(msg), 0)
    }

    /// Every IPv6 route of the main table that carries [`RTPROT_RE6ST`].
    pub fn own_routes(&mut self) -> io::Result<Vec<Route>> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet6;
        let seq = self.send(RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)?;
        let mut routes = Vec::new();
        self.receive(seq, |m| {
            let RouteNetlinkMessage::NewRoute(m) = m else {
                return;
            };
            let h = &m.header;
            if h.protocol != RouteProtocol::Other(RTPROT_RE6ST)
                || h.table != RouteHeader::RT_TABLE_MAIN
            {
                return;
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
            routes.push(r);
        })?;
        Ok(routes)
    }
}
