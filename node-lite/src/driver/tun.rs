//! The overlay TUN device: raw IPv6 packets between the kernel and the node.
//!
//! Opened with the TUNSETIFF ioctl on /dev/net/tun (IFF_TUN | IFF_NO_PI: no
//! packet-information header). With offloads (the default), also
//! IFF_VNET_HDR and TUNSETOFFLOAD: every packet then starts with a
//! `virtio_net_hdr`, and a read may return a TCP super-packet of up to 64 KB
//! that [`crate::offload`] cuts; without them a read returns one IP packet.
//! Address, MTU and routes are set by [`super::netlink`].
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use super::iface::IfReq;

const IFF_TUN: i16 = 0x0001;
const IFF_NO_PI: i16 = 0x1000;
const IFF_VNET_HDR: i16 = 0x4000;
// TUNSETOFFLOAD flags: checksums, and TCP segmentation over IPv6 (with the
// ECN bit: we keep CWR on the first segment). IPv4 never enters the overlay.
const TUN_F_CSUM: nix::libc::c_int = 0x01;
const TUN_F_TSO6: nix::libc::c_int = 0x04;
const TUN_F_TSO_ECN: nix::libc::c_int = 0x08;

// TUNSETIFF is _IOW('T', 202, int); the macro encodes it per architecture
// (MIPS uses a different direction-bit layout than x86 and ARM).
nix::ioctl_write_ptr_bad!(
    tunsetiff,
    nix::request_code_write!(b'T', 202, std::mem::size_of::<nix::libc::c_int>()),
    IfReq
);
// TUNSETOFFLOAD is _IOW('T', 208, unsigned int), its argument passed by value.
nix::ioctl_write_int_bad!(
    tunsetoffload,
    nix::request_code_write!(b'T', 208, std::mem::size_of::<nix::libc::c_uint>())
);

/// An open TUN device.
#[derive(Debug)]
pub struct Tun {
    file: File,
    name: String,
    /// Packets carry a `virtio_net_hdr` (offloads on).
    vnet: bool,
}

impl Tun {
    /// Create (or attach to) the TUN device `name`. Needs CAP_NET_ADMIN.
    /// With `offload`, ask for TSO and checksum offload; a kernel that
    /// refuses gets the plain device (see [`Self::offload`]).
    pub fn open(name: &str, offload: bool) -> io::Result<Tun> {
        if offload {
            match Self::open_flags(name, IFF_VNET_HDR) {
                Ok(tun) => {
                    let flags = TUN_F_CSUM | TUN_F_TSO6 | TUN_F_TSO_ECN;
                    // SAFETY: TUNSETOFFLOAD takes its argument by value, on
                    // an open TUN descriptor.
                    match unsafe { tunsetoffload(tun.file.as_raw_fd(), flags) } {
                        Ok(_) => return Ok(tun),
                        Err(e) => log::info!("TUN offloads refused ({e}): one packet per read"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::InvalidInput => return Err(e),
                Err(e) => log::info!("TUN with IFF_VNET_HDR refused ({e}): one packet per read"),
            }
        }
        Self::open_flags(name, 0)
    }

    fn open_flags(name: &str, extra: i16) -> io::Result<Tun> {
        let mut req = IfReq::new(name)?;
        req.set_flags(IFF_TUN | IFF_NO_PI | extra);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        // SAFETY: `req` is a valid, initialised ifreq that outlives the call,
        // and the fd is an open /dev/net/tun descriptor.
        unsafe { tunsetiff(file.as_raw_fd(), &req) }.map_err(io::Error::from)?;
        Ok(Tun {
            file,
            name: req.name(),
            vnet: extra & IFF_VNET_HDR != 0,
        })
    }

    /// Reads start with a `virtio_net_hdr` and may be super-packets.
    pub fn offload(&self) -> bool {
        self.vnet
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Switch to non-blocking mode, for an async driver.
    pub fn set_nonblocking(&self) -> io::Result<()> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let flags = OFlag::from_bits_truncate(fcntl(&self.file, FcntlArg::F_GETFL)?);
        fcntl(&self.file, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        Ok(())
    }

    /// Register with the tokio reactor (non-blocking mode first).
    pub fn into_async(self) -> io::Result<tokio::io::unix::AsyncFd<Tun>> {
        self.set_nonblocking()?;
        // SAFETY: `Tun` owns its descriptor and never replaces or closes it
        // while registered; it is closed only when the AsyncFd drops it.
        unsafe { tokio::io::unix::AsyncFd::register(self) }.map_err(|e| e.into_parts().1)
    }

    /// Read one packet into `buf`; returns its length. With offloads, the
    /// `virtio_net_hdr` comes first.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Write one IPv6 packet (behind an all-zero `virtio_net_hdr` with
    /// offloads: nothing to segment, checksums complete).
    pub fn send(&self, packet: &[u8]) -> io::Result<usize> {
        if !self.vnet {
            return (&self.file).write(packet);
        }
        let hdr = [0u8; crate::offload::VNET_HDR_LEN];
        (&self.file).write_vectored(&[IoSlice::new(&hdr), IoSlice::new(packet)])
    }

    /// Write a packet that starts with its own `virtio_net_hdr` (offloads
    /// on): a super-packet for the kernel to take whole.
    pub fn send_frame(&self, frame: &[u8]) -> io::Result<usize> {
        (&self.file).write(frame)
    }
}

impl AsFd for Tun {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}
