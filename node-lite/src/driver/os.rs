//! What the node core asks of the operating system ([`Io`]): UDP sends
//! (batched for GSO), TUN writes (TCP segments merged for the kernel's
//! GRO), LAN sockets, kernel routes through netlink (and their repair when
//! someone removes them), registry requests, state files.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd};

use log::{debug, info, warn};
use registry_client::state::StateDir;
use tokio::io::unix::AsyncFd;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::lan_babel::Lan;
use super::netlink::{Monitor, Netlink, Route};
use super::registry::RegistryLink;
use super::tun::Tun;
use super::udp::{self as udp_off, Batch};
use crate::net::Ipv6Net;
use crate::node::registry::Job;
use crate::node::routing::{Dev, KernelRoute};
use crate::node::Io;
use crate::offload::Coalescer;
use crate::time::Instant;

/// Kernel changes come in bursts (a device cycled removes every route):
/// the set-up is restored once, this long after the first.
const REPAIR_DELAY_MS: u64 = 200;
/// How long a send waits for room in a full socket buffer.
const SEND_WAIT_MS: u16 = 100;

pub(super) struct Os {
    pub(super) tun: AsyncFd<Tun>,
    pub(super) tun_index: u32,
    pub(super) nl: Netlink,
    /// The node's address and the network routed to the TUN device.
    pub(super) address: Ipv6Addr,
    pub(super) network: Ipv6Net,
    /// Kernel routes Babel asked for beyond the network's route to the TUN
    /// device: LAN next hops, source-specific and outside routes.
    pub(super) kroutes: HashMap<(Ipv6Net, Ipv6Net), Route>,
    /// Kernel notifications: the overlay device's address and routes are
    /// put back if the interface is cycled or someone deletes them.
    pub(super) monitor: Option<AsyncFd<Monitor>>,
    pub(super) repair_at: Option<Instant>,
    pub(super) udp4: Option<UdpSocket>,
    pub(super) udp6: Option<UdpSocket>,
    /// The UDP sockets take GSO sends (and give GRO receives).
    pub(super) gso4: bool,
    pub(super) gso6: bool,
    /// Sealed datagrams for one peer, sent together by `send_batch`.
    pub(super) tx: Batch,
    /// TCP segments for the kernel, merged into one TUN write (offloads on).
    pub(super) gro: Coalescer,
    /// Until the kernel refuses a merged write.
    pub(super) gro_on: bool,
    /// The `babel_interface`s open.
    pub(super) lans: Vec<Lan>,
    pub(super) registry: Option<RegistryLink>,
    /// `[::1]:326`, where the registry talks to its node (`registry_node`).
    pub(super) registry_udp: Option<UdpSocket>,
    /// PCP, NAT-PMP and SSDP with the gateway (`port_mapping`).
    pub(super) nat_udp: Option<UdpSocket>,
    /// The gateway's restart announcements (port 5350).
    pub(super) nat_announce: Option<UdpSocket>,
    /// UPnP answers come back here; how many are awaited.
    pub(super) nat_http: mpsc::UnboundedSender<super::nat::HttpResult>,
    pub(super) nat_http_pending: usize,
    pub(super) state: StateDir,
    /// Packets lost here (TUN writes refused, malformed offload headers).
    pub(super) dropped: u64,
}

/// Wait until `fd` can take a send, at most [`SEND_WAIT_MS`].
fn wait_writable(fd: &impl AsFd) {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
    let _ = poll(&mut fds, PollTimeout::from(SEND_WAIT_MS));
}

/// Try `f`; when the socket buffer is full, wait for room once and try
/// again (the event loop has nothing better to do: everything it would
/// read next would need sending too).
fn with_room<T>(fd: &impl AsFd, mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    match f() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            wait_writable(fd);
            f()
        }
        r => r,
    }
}

impl Os {
    fn socket(&self, to: SocketAddr) -> Option<&UdpSocket> {
        if to.is_ipv4() {
            self.udp4.as_ref()
        } else {
            self.udp6.as_ref()
        }
    }

    fn send_one(&self, to: SocketAddr, bytes: &[u8]) {
        if let Some(s) = self.socket(to) {
            if let Err(e) = with_room(s, || s.try_send_to(bytes, to)) {
                debug!("send to {to}: {e}");
            }
        }
    }

    /// Send the batched datagrams: one GSO `sendmsg`, or one by one when
    /// the socket cannot (a kernel error turns GSO off for that socket).
    pub(super) fn send_batch(&mut self) {
        let Some((to, data, seg, count)) = self.tx.contents() else {
            return;
        };
        let (mut sent, mut broken) = (false, false);
        if let Some(s) = self.socket(to).filter(|_| count > 1) {
            let fd = s.as_raw_fd();
            match with_room(s, || udp_off::send_gso(fd, to, data, seg)) {
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
                self.send_one(to, d);
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

    /// Write merged TCP segments to the kernel.
    pub(super) fn flush_kernel(&mut self) {
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

    /// Everything held back for batching goes now (end of a turn).
    pub(super) fn flush(&mut self) {
        self.send_batch();
        self.flush_kernel();
    }

    /// The kernel told of changes: if they may have undone our set-up (the
    /// device cycled, our address or a route we want removed), put it back
    /// once the burst is over.
    pub(super) fn on_kernel_changes(&mut self, t: Instant) {
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
    pub(super) fn repair(&mut self) {
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

    /// Remove what the node added to the kernel (at stop).
    pub(super) fn remove_routes(&mut self) {
        for (_, r) in self.kroutes.drain() {
            let _ = self.nl.del_route(&r);
        }
        let _ = self.nl.del_route(&Route::dev(self.network, self.tun_index));
        let _ = self.nl.del_address(self.tun_index, self.address, 128);
    }
}

impl Io for Os {
    fn send(&mut self, to: SocketAddr, bytes: &[u8]) {
        let gso = if to.is_ipv4() { self.gso4 } else { self.gso6 };
        if !gso {
            return self.send_one(to, bytes);
        }
        if !self.tx.accepts(to, bytes.len()) {
            self.send_batch();
        }
        self.tx.push(to, bytes);
    }

    /// With offloads, TCP segments of one flow wait in `gro` and go as one
    /// super-packet ([`Os::flush_kernel`]).
    fn deliver(&mut self, packet: &[u8]) {
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
            self.dropped += 1;
        }
    }

    fn send_lan_babel(&mut self, index: u32, dst: Ipv6Addr, payload: &[u8]) {
        if let Some(lan) = self.lans.iter().find(|l| l.index == index) {
            lan.send_babel(dst, payload);
        }
    }

    fn send_beacon(&mut self, index: u32, payload: &[u8]) {
        if let Some(lan) = self.lans.iter().find(|l| l.index == index) {
            lan.send_beacon(payload);
        }
    }

    fn set_route(&mut self, dst: Ipv6Net, src: Ipv6Net, want: Option<KernelRoute>) {
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

    fn registry(&mut self, job: Job) {
        if let Some(r) = &mut self.registry {
            r.request(job);
        }
    }

    fn save(&mut self, name: &'static str, bytes: &[u8], mode: u32) {
        if let Err(e) = self.state.write_atomic(name, bytes, mode) {
            warn!("{name}: {e}");
        }
    }

    fn nat_send(&mut self, to: SocketAddr, bytes: &[u8]) {
        if let Some(s) = &self.nat_udp {
            if let Err(e) = s.try_send_to(bytes, to) {
                debug!("port mapping: to {to}: {e}");
            }
        }
    }

    fn nat_http(&mut self, to: SocketAddr, request: Vec<u8>) {
        self.nat_http_pending += 1;
        super::nat::http(to, request, self.nat_http.clone());
    }

    fn to_registry(&mut self, port: u16, bytes: &[u8]) {
        if let Some(s) = &self.registry_udp {
            let to = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
            if let Err(e) = s.try_send_to(bytes, to) {
                debug!("to the registry at {to}: {e}");
            }
        }
    }
}
