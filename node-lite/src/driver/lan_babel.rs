//! Babel and discovery beacons on LAN interfaces (`babel_interface`), as
//! re6st's `-i`: nodes on one segment route to each other directly, with no
//! tunnel, no registry and no internet.
//!
//! Per interface, three kernel sockets, each bound to an address scoped to
//! the interface (which also binds the socket to it): our link-local address
//! and ff02::1:6 on UDP 6696 for Babel (so the engine knows unicast from
//! multicast), ff02::1 on UDP 326 for beacons. A task per socket hands what
//! arrives to the event loop through one channel.

use std::fs;
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket as StdUdpSocket};
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::babel::wire::{MULTICAST as BABEL_GROUP, PORT as BABEL_PORT};
use crate::mesh::beacon;

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// IFA_F_TENTATIVE and IFA_F_DADFAILED: not usable as a source yet (or ever).
const UNUSABLE: u32 = 0x40 | 0x08;

/// One LAN interface the node speaks Babel on.
pub struct Lan {
    pub name: String,
    pub index: u32,
    /// Our link-local address there.
    pub local: Ipv6Addr,
    send: Arc<UdpSocket>,
}

/// Something that arrived on a LAN interface.
pub enum Received {
    Babel {
        index: u32,
        from: SocketAddrV6,
        to: Ipv6Addr,
        bytes: Vec<u8>,
    },
    Beacon {
        index: u32,
        from: Ipv6Addr,
        bytes: Vec<u8>,
    },
}

/// The usable link-local address of interface `index`, if it has one yet
/// (duplicate address detection takes a second or two after link up).
pub fn link_local(index: u32) -> Option<Ipv6Addr> {
    link_local_in(&fs::read_to_string("/proc/net/if_inet6").ok()?, index)
}

/// From /proc/net/if_inet6: address, index, prefix length, scope, flags,
/// name; all hex.
fn link_local_in(table: &str, index: u32) -> Option<Ipv6Addr> {
    table.lines().find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (addr, idx, scope, flags) = (f.first()?, f.get(1)?, f.get(3)?, f.get(4)?);
        let usable = u32::from_str_radix(idx, 16).ok()? == index
            && u32::from_str_radix(scope, 16).ok()? == 0x20
            && u32::from_str_radix(flags, 16).ok()? & UNUSABLE == 0;
        usable.then(|| u128::from_str_radix(addr, 16).ok().map(Ipv6Addr::from))?
    })
}

fn bind(addr: Ipv6Addr, port: u16, index: u32) -> io::Result<UdpSocket> {
    let s = StdUdpSocket::bind(SocketAddrV6::new(addr, port, 0, index))?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// Hand each datagram (up to `max` bytes) arriving on `sock` to the event
/// loop as `wrap(sender, bytes)`, until the loop is gone.
fn feed(
    sock: Arc<UdpSocket>,
    max: usize,
    tx: &mpsc::UnboundedSender<Received>,
    wrap: impl Fn(SocketAddrV6, Vec<u8>) -> Received + Send + 'static,
) {
    let tx = tx.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; max];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let SocketAddr::V6(from) = from else { continue };
            if tx.send(wrap(from, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
}

impl Lan {
    /// Open the sockets on interface `index` (link-local address `local`)
    /// and start the tasks that feed `tx`.
    pub fn open(
        name: &str,
        index: u32,
        local: Ipv6Addr,
        tx: &mpsc::UnboundedSender<Received>,
    ) -> io::Result<Lan> {
        let unicast = bind(local, BABEL_PORT, index)?;
        // Our own multicasts are not news to us.
        unicast.set_multicast_loop_v6(false)?;
        let group = bind(BABEL_GROUP, BABEL_PORT, index)?;
        group.join_multicast_v6(&BABEL_GROUP, index)?;
        // ff02::1 is joined by every IPv6 interface already.
        let beacons = bind(ALL_NODES, beacon::PORT, index)?;
        let unicast = Arc::new(unicast);
        for (sock, to) in [(unicast.clone(), local), (Arc::new(group), BABEL_GROUP)] {
            feed(sock, 1500, tx, move |from, bytes| Received::Babel {
                index,
                from,
                to,
                bytes,
            });
        }
        feed(Arc::new(beacons), 4096, tx, move |from, bytes| {
            Received::Beacon {
                index,
                from: *from.ip(),
                bytes,
            }
        });
        Ok(Lan {
            name: name.to_string(),
            index,
            local,
            send: unicast,
        })
    }

    /// A Babel packet to `dst` (a neighbour or ff02::1:6) on this link.
    pub fn send_babel(&self, dst: Ipv6Addr, bytes: &[u8]) {
        let to = SocketAddrV6::new(dst, BABEL_PORT, 0, self.index);
        if let Err(e) = self.send.try_send_to(bytes, to.into()) {
            log::debug!("babel on {}: {e}", self.name);
        }
    }

    /// Our beacon to every node on the link.
    pub fn send_beacon(&self, bytes: &[u8]) {
        let to = SocketAddrV6::new(ALL_NODES, beacon::PORT, 0, self.index);
        if let Err(e) = self.send.try_send_to(bytes, to.into()) {
            log::debug!("beacon on {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_skips_other_scopes_interfaces_and_tentative_addresses() {
        let table = "\
20010db8000000000000000000000001 0b 40 00 80    eth1
fe800000000000000000000000000002 0b 40 20 c0    eth1
fe800000000000000000000000000003 0c 40 20 80    eth2
fe800000000000000000000000000004 0b 40 20 80    eth1
00000000000000000000000000000001 01 80 10 80       lo
";
        // The tentative ::2 (flags 0xc0) is skipped for the settled ::4.
        assert_eq!(link_local_in(table, 0x0b), Some("fe80::4".parse().unwrap()));
        assert_eq!(link_local_in(table, 0x0c), Some("fe80::3".parse().unwrap()));
        assert_eq!(link_local_in(table, 1), None);
        assert_eq!(link_local_in("garbage\n\n", 1), None);
    }
}
