//! The port mapper's I/O (`nat::mapper` decides): one UDP socket for PCP,
//! NAT-PMP and SSDP, one TCP exchange per UPnP request, and where the
//! default gateway is.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket as StdUdpSocket};
use std::time::Duration;

use std::io::{Read, Write};
use std::net::TcpStream;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::nat::upnp::MAX_RESPONSE;

/// Each step of a UPnP exchange (connect, send, read) waits this long at most.
const HTTP_TIMEOUT: Duration = Duration::from_secs(4);

pub(super) type HttpResult = Result<Vec<u8>, String>;

/// The NAT socket: any port, IPv4.
pub(super) fn bind() -> io::Result<UdpSocket> {
    let s = StdUdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// Where gateways announce restarts (`224.0.0.1:5350`, which every host
/// receives): shared with other clients on the host.
pub(super) fn bind_announcements() -> io::Result<UdpSocket> {
    use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd = socket::socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    let any = SockaddrIn::new(0, 0, 0, 0, crate::nat::pmp::CLIENT_PORT);
    socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &any)?;
    UdpSocket::from_std(StdUdpSocket::from(fd))
}

/// The IPv4 default gateway (`/proc/net/route`), and our address towards
/// it (what the kernel would pick as source).
pub(super) fn underlay() -> (Option<Ipv4Addr>, Option<Ipv4Addr>) {
    let gateway = std::fs::read_to_string("/proc/net/route")
        .ok()
        .and_then(|t| default_gateway(&t));
    let local = gateway.and_then(|gw| {
        let s = StdUdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
        s.connect((gw, crate::nat::pmp::SERVER_PORT)).ok()?;
        match s.local_addr().ok()? {
            SocketAddr::V4(a) => Some(*a.ip()),
            SocketAddr::V6(_) => None,
        }
    });
    (gateway, local)
}

/// `/proc/net/route`: the gateway of the first default route (destination
/// and mask 0, flag RTF_GATEWAY). The kernel prints each address's
/// network-order bytes as a host-order number.
fn default_gateway(table: &str) -> Option<Ipv4Addr> {
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let hex = |i: usize| u32::from_str_radix(f.get(i)?, 16).ok();
        let (dst, gw, flags, mask) = (hex(1)?, hex(2)?, hex(3)?, hex(7)?);
        (dst == 0 && mask == 0 && flags & 0x2 != 0 && gw != 0)
            .then(|| Ipv4Addr::from(gw.to_ne_bytes()))
    })
}

/// One HTTP exchange on a short-lived thread (rare: a mapping and its
/// renewals), blocking with timeouts; the answer goes to `tx`.
pub(super) fn http(to: SocketAddr, request: Vec<u8>, tx: mpsc::UnboundedSender<HttpResult>) {
    let spawned = std::thread::Builder::new()
        .name("upnp".into())
        .stack_size(64 * 1024)
        .spawn({
            let tx = tx.clone();
            move || {
                let _ = tx.send(exchange(to, &request).map_err(|e| format!("{to}: {e}")));
            }
        });
    if let Err(e) = spawned {
        let _ = tx.send(Err(format!("thread: {e}")));
    }
}

fn exchange(to: SocketAddr, request: &[u8]) -> io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&to, HTTP_TIMEOUT)?;
    s.set_read_timeout(Some(HTTP_TIMEOUT))?;
    s.set_write_timeout(Some(HTTP_TIMEOUT))?;
    s.write_all(request)?;
    let mut answer = Vec::new();
    s.take(MAX_RESPONSE as u64).read_to_end(&mut answer)?;
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_from_proc_net_route() {
        let t =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        #[cfg(target_endian = "little")]
        assert_eq!(default_gateway(t), Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(default_gateway("Iface\n"), None);
    }
}
