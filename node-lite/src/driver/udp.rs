//! UDP offloads: several equal-size datagrams to one peer in one `sendmsg`
//! (UDP_SEGMENT, Linux 4.18+), and coalesced datagrams from one peer in one
//! `recvmsg` (UDP_GRO, Linux 5.0+). Both are probed per socket; without them
//! every datagram is its own syscall, as before.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, RawFd};

use nix::sys::socket::{
    self, sockopt, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrStorage,
};

/// Datagrams per GSO send: UDP_MAX_SEGMENTS of the first kernels with it.
const MAX_SEGMENTS: usize = 64;
/// Bytes per GSO send: all of them go in one IP packet before segmentation,
/// so below 64 KB with the IP and UDP headers.
const MAX_BYTES: usize = 65000;

/// Can this socket send with UDP_SEGMENT? Setting a zero segment size
/// changes nothing and fails on kernels without UDP GSO.
pub fn enable_gso(fd: &impl AsFd) -> bool {
    socket::setsockopt(fd, sockopt::UdpGsoSegment, &0).is_ok()
}

/// Ask for coalesced receives (the segment size comes in a UDP_GRO cmsg).
pub fn enable_gro(fd: &impl AsFd) -> bool {
    socket::setsockopt(fd, sockopt::UdpGroSegment, &true).is_ok()
}

/// Sizes the receive buffer: what the kernel may hold for the node while it
/// is busy, the board's `packet_buffers` × 2 KiB (`cross/boards.py` budgets
/// the same). The default (208 KB on Linux, charged per buffer, not per
/// byte) holds only three GRO batches of 64 KB, and a burst beyond that is
/// lost and resent by TCP; 1 MiB (the default 512 buffers) holds ~15.
/// SO_RCVBUFFORCE passes rmem_max (we run as root); the kernel doubles the
/// value.
pub fn set_receive_buffer(fd: &impl AsFd, packet_buffers: u32) {
    let bytes = packet_buffers as usize * 2048;
    if socket::setsockopt(fd, sockopt::RcvBufForce, &bytes).is_err() {
        let _ = socket::setsockopt(fd, sockopt::RcvBuf, &bytes);
    }
}

/// Datagrams sealed for one peer, waiting to leave in one GSO send: all of
/// `seg` bytes but the last, which may be shorter (and then closes it).
#[derive(Debug)]
pub struct Batch {
    buf: Vec<u8>,
    to: Option<SocketAddr>,
    seg: usize,
    count: usize,
    closed: bool,
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            buf: Vec::with_capacity(MAX_BYTES),
            to: None,
            seg: 0,
            count: 0,
            closed: false,
        }
    }
}

impl Batch {
    /// Can a datagram of `len` bytes to `to` join?
    pub fn accepts(&self, to: SocketAddr, len: usize) -> bool {
        self.count == 0
            || (self.to == Some(to)
                && !self.closed
                && len <= self.seg
                && self.count < MAX_SEGMENTS
                && self.buf.len() + len <= MAX_BYTES)
    }

    /// Add a datagram; the caller checked [`Self::accepts`].
    pub fn push(&mut self, to: SocketAddr, d: &[u8]) {
        if self.count == 0 {
            self.to = Some(to);
            self.seg = d.len();
        } else if d.len() < self.seg {
            self.closed = true;
        }
        self.buf.extend_from_slice(d);
        self.count += 1;
    }

    /// The peer, the datagrams back to back, the segment size, how many.
    pub fn contents(&self) -> Option<(SocketAddr, &[u8], usize, usize)> {
        Some((self.to?, &self.buf, self.seg.max(1), self.count))
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.to = None;
        self.count = 0;
        self.closed = false;
    }
}

/// Send `data`, datagrams of `seg` bytes (the last may be shorter), to `to`
/// in one syscall.
pub fn send_gso(fd: RawFd, to: SocketAddr, data: &[u8], seg: usize) -> io::Result<usize> {
    let seg = u16::try_from(seg).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let addr = SockaddrStorage::from(to);
    socket::sendmsg(
        fd,
        &[IoSlice::new(data)],
        &[ControlMessage::UdpGsoSegments(&seg)],
        MsgFlags::empty(),
        Some(&addr),
    )
    .map_err(io::Error::from)
}

/// Space for the UDP_GRO control message, allocated once (and so aligned
/// for `cmsghdr`).
pub fn cmsg_buffer() -> Vec<u8> {
    nix::cmsg_space!(nix::libc::c_int)
}

/// Receive one datagram, or several coalesced by GRO: the byte count, the
/// sender and the size of each datagram but the last (0: one datagram).
pub fn recv_gro(
    fd: RawFd,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> io::Result<(usize, Option<SocketAddr>, usize)> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = socket::recvmsg::<SockaddrStorage>(fd, &mut iov, Some(cmsg), MsgFlags::empty())?;
    let seg = msg
        .cmsgs()
        .ok()
        .and_then(|mut c| {
            c.find_map(|m| match m {
                ControlMessageOwned::UdpGroSegments(s) => usize::try_from(s).ok(),
                _ => None,
            })
        })
        .unwrap_or(0);
    let from = msg.address.as_ref().and_then(socket_addr);
    Ok((msg.bytes, from, seg))
}

fn socket_addr(a: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    let v6 = a.as_sockaddr_in6()?;
    Some(SocketAddr::V6(SocketAddrV6::from(*v6)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], p))
    }

    /// The board's `packet_buffers` is what the kernel may queue for us
    /// (root sets it past rmem_max; the kernel reports twice the value).
    #[test]
    fn receive_buffer_follows_packet_buffers() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: SO_RCVBUFFORCE needs root");
            return;
        }
        for n in [64, 512, 1024] {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            set_receive_buffer(&s, n);
            let got = socket::getsockopt(&s, sockopt::RcvBuf).unwrap();
            assert_eq!(got, 2 * 2048 * n as usize, "{n} buffers");
        }
    }

    #[test]
    fn batch_rules() {
        let mut b = Batch::default();
        assert!(b.accepts(addr(1), 1400));
        b.push(addr(1), &[1; 1400]);
        assert!(b.accepts(addr(1), 1400));
        assert!(!b.accepts(addr(2), 1400), "another peer");
        assert!(!b.accepts(addr(1), 1401), "longer than the segment size");
        b.push(addr(1), &[2; 1400]);
        b.push(addr(1), &[3; 100]);
        assert!(!b.accepts(addr(1), 100), "closed by a short datagram");
        let (to, data, seg, n) = b.contents().unwrap();
        assert_eq!((to, data.len(), seg, n), (addr(1), 2900, 1400, 3));
        b.clear();
        assert!(b.contents().is_none());
        for _ in 0..46 {
            b.push(addr(1), &[0; 1400]);
        }
        assert!(!b.accepts(addr(1), 1400), "64 KB reached");
        b.clear();
        for _ in 0..MAX_SEGMENTS {
            b.push(addr(1), &[0; 10]);
        }
        assert!(!b.accepts(addr(1), 10), "segment count reached");
    }

    /// GSO out, GRO in, over loopback: what the kernel splits and merges
    /// must match datagram for datagram.
    #[test]
    fn gso_and_gro_over_loopback() {
        use std::net::UdpSocket;
        use std::os::fd::AsRawFd;
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        if !enable_gso(&tx) {
            eprintln!("no UDP GSO on this kernel: skipped");
            return;
        }
        let gro = enable_gro(&rx);
        let mut data = Vec::new();
        for i in 0..5u8 {
            data.extend_from_slice(&[i; 1000]);
        }
        data.extend_from_slice(&[9; 300]);
        let to = rx.local_addr().unwrap();
        assert_eq!(send_gso(tx.as_raw_fd(), to, &data, 1000).unwrap(), 5300);
        rx.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let (mut got, mut buf, mut cmsg) = (Vec::new(), vec![0u8; 65536], cmsg_buffer());
        while got.len() < 6 {
            let (n, from, seg) = recv_gro(rx.as_raw_fd(), &mut buf, &mut cmsg).unwrap();
            assert_eq!(from, Some(tx.local_addr().unwrap()));
            assert!(gro || seg == 0);
            let seg = if seg == 0 { n } else { seg };
            got.extend(buf[..n].chunks(seg).map(<[u8]>::to_vec));
        }
        let want: Vec<Vec<u8>> = data.chunks(1000).map(<[u8]>::to_vec).collect();
        assert_eq!(got, want);
    }
}
