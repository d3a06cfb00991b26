//! The data path: datagrams from peers opened and routed, packets from the
//! kernel sealed into tunnels, forwarding with a router's manners (hop
//! limit, ICMPv6 errors, Packet Too Big).

use std::net::{Ipv6Addr, SocketAddr};

use log::debug;

use super::{Io, Node};
use crate::ip::{self, Header, Udp};
use crate::mesh::ctl;
use crate::time::Instant;
use crate::tunnel::{Action, TunnelId};

/// All nodes: where control messages about the link go.
pub(super) const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

impl Node {
    /// A datagram from the underlay.
    pub fn handle_datagram(&mut self, t: Instant, from: SocketAddr, d: &[u8], io: &mut impl Io) {
        let mut pkt = std::mem::take(&mut self.pkt);
        match self.endpoint.decapsulate(t, from, d, &mut pkt) {
            Action::WriteToNetwork(to, bytes) => {
                io.send(to, bytes);
                // A handshake may have brought a tunnel up: known before the
                // next datagram of this batch, its first data, is handled.
                self.endpoint_output(t, io);
            }
            Action::WriteToTunnel(tid, packet) => {
                let len = packet.len();
                self.on_tunnel_packet(t, tid, &mut pkt[..len], io);
            }
            Action::Done => self.endpoint_output(t, io),
            Action::Err(e) => {
                debug!("datagram from {from}: {e}");
                self.dropped += 1;
            }
        }
        self.pkt = pkt;
    }

    /// A packet from the kernel: route it into a tunnel.
    pub fn handle_kernel_packet(&mut self, t: Instant, packet: &[u8], io: &mut impl Io) {
        let Some(h) = Header::parse(packet) else {
            self.dropped += 1;
            return;
        };
        match self.routing.lookup(h.dst(), h.src()) {
            Some(tid) => self.send_through(t, tid, packet, true, io),
            None => {
                self.dropped += 1;
                self.send_error(t, packet, ip::IcmpError::NoRoute, true, io);
            }
        }
    }

    /// A decrypted packet from tunnel `tid`: Babel or a control message for
    /// us, the kernel's, or forwarded.
    fn on_tunnel_packet(&mut self, t: Instant, tid: TunnelId, packet: &mut [u8], io: &mut impl Io) {
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
            self.on_link_message(t, tid, packet, io);
            return;
        }
        if dst == self.address && h.next_header() == ip::NEXT_UDP {
            if let Some(u) = Udp::parse(packet).filter(|u| u.dst_port == ctl::PORT) {
                let (src, sport) = (u.src, u.src_port);
                let msg = ctl::Msg::parse(u.payload);
                self.on_ctl(t, src, sport, msg, io);
                return;
            }
        }
        // Ours, or no tunnel for it (a LAN neighbour's, the outside through
        // a gateway): the kernel routes it. Were the kernel to send it back
        // to the TUN device, handle_kernel_packet drops it.
        let next = if self.subnet.contains(dst) {
            None
        } else {
            self.routing.lookup(dst, src)
        };
        let Some(next) = next else {
            io.deliver(packet);
            return;
        };
        if next == tid {
            self.dropped += 1; // back where it came from: a transient loop
            return;
        }
        if h.hop_limit() <= 1 {
            // A router's manners: traceroute shows this hop.
            self.dropped += 1;
            self.send_error(t, packet, ip::IcmpError::HopLimit, false, io);
            return;
        }
        packet[7] -= 1; // forwarding: decrement the hop limit
        self.send_through(t, next, packet, false, io);
    }

    /// Seal `packet` (traffic from the kernel or forwarded) into tunnel
    /// `tid`, which should bring something back (fast failover); too big:
    /// Packet Too Big back to the sender.
    fn send_through(
        &mut self,
        t: Instant,
        tid: TunnelId,
        packet: &[u8],
        local: bool,
        io: &mut impl Io,
    ) {
        if packet.len() > self.mtu as usize {
            self.dropped += 1;
            let kind = ip::IcmpError::TooBig(self.mtu);
            self.send_error(t, packet, kind, local, io);
            return;
        }
        self.seal_and_send(t, tid, packet, io);
        self.endpoint.expect_reply(t, tid);
    }

    /// The ICMPv6 error `kind` about `packet`, from our address, back to its
    /// sender: into the kernel for a `local` sender (or one we have no route
    /// to), else through its tunnel. Rate-limited, as RFC 4443 §2.4 asks.
    fn send_error(
        &mut self,
        t: Instant,
        packet: &[u8],
        kind: ip::IcmpError,
        local: bool,
        io: &mut impl Io,
    ) {
        if !self.icmp_budget.try_take(t) {
            return;
        }
        let mut err = [0u8; ip::MIN_MTU as usize];
        let Some(n) = ip::icmp_error(self.address, packet, kind, &mut err) else {
            return;
        };
        let sender = Header::parse(packet).map(|h| h.src());
        let back = sender.and_then(|s| self.routing.lookup(s, self.address));
        match back {
            Some(back) if !local => self.seal_and_send(t, back, &err[..n], io),
            _ => io.deliver(&err[..n]),
        }
    }

    fn seal_and_send(&mut self, t: Instant, tid: TunnelId, packet: &[u8], io: &mut impl Io) {
        let mut out = std::mem::take(&mut self.out);
        match self.endpoint.encapsulate(t, tid, packet, &mut out) {
            Action::WriteToNetwork(to, bytes) => {
                if let Some(p) = self.peers.get_mut(&tid) {
                    p.counters.tx_packets += 1;
                    p.counters.tx_bytes += packet.len() as u64;
                }
                io.send(to, bytes);
            }
            Action::Err(e) => {
                debug!("tunnel {tid}: {e}");
                self.dropped += 1;
            }
            _ => {}
        }
        self.out = out;
    }

    /// Write `u` as a packet and send it through tunnel `tid`.
    pub(super) fn send_packet_in(
        &mut self,
        t: Instant,
        tid: TunnelId,
        u: &Udp<'_>,
        io: &mut impl Io,
    ) {
        let mut pkt = std::mem::take(&mut self.scratch);
        if let Some(n) = u.write(&mut pkt) {
            self.seal_and_send(t, tid, &pkt[..n], io);
        }
        self.scratch = pkt;
    }

    /// A packet from our link-local address to the peer itself at the
    /// other end of tunnel `tid` (hop limit 1): Babel, or a control message
    /// about the link.
    pub(super) fn send_on_link(
        &mut self,
        t: Instant,
        tid: TunnelId,
        dst: Ipv6Addr,
        port: u16,
        payload: &[u8],
        io: &mut impl Io,
    ) {
        let u = Udp {
            src: self.link_local,
            dst,
            src_port: port,
            dst_port: port,
            hop_limit: 1,
            payload,
        };
        self.send_packet_in(t, tid, &u, io);
    }

    /// A control message from our address to a node, routed over the overlay.
    pub(super) fn send_ctl(
        &mut self,
        t: Instant,
        dst: Ipv6Addr,
        dst_port: u16,
        payload: &[u8],
        io: &mut impl Io,
    ) {
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
        self.send_packet_in(t, tid, &u, io);
    }
}
