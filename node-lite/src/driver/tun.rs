//! The overlay TUN device: raw IPv6 packets between the kernel and the node.
//!
//! Opened with the TUNSETIFF ioctl on /dev/net/tun (IFF_TUN | IFF_NO_PI: no
//! packet-information header, so a read returns exactly one IP packet).
//! Address, MTU and routes are set by [`super::netlink`].
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

const IFF_TUN: i16 = 0x0001;
const IFF_NO_PI: i16 = 0x1000;
const IFNAMSIZ: usize = 16;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags at the
/// start of the union. 40 bytes covers the union on 32- and 64-bit targets.
#[repr(C)]
struct IfReq {
    name: [u8; IFNAMSIZ],
    flags: i16,
    _pad: [u8; 22],
}

// TUNSETIFF is _IOW('T', 202, int); the macro encodes it per architecture
// (MIPS uses a different direction-bit layout than x86 and ARM).
nix::ioctl_write_ptr_bad!(
    tunsetiff,
    nix::request_code_write!(b'T', 202, std::mem::size_of::<nix::libc::c_int>()),
    IfReq
);

/// An open TUN device.
#[derive(Debug)]
pub struct Tun {
    file: File,
    name: String,
}

impl Tun {
    /// Create (or attach to) the TUN device `name`. Needs CAP_NET_ADMIN.
    pub fn open(name: &str) -> io::Result<Tun> {
        if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid interface name {name:?}"),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_CLOEXEC)
            .open("/dev/net/tun")?;
        let mut req = IfReq {
            name: [0; IFNAMSIZ],
            flags: IFF_TUN | IFF_NO_PI,
            _pad: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: `req` is a valid, initialised ifreq that outlives the call,
        // and the fd is an open /dev/net/tun descriptor.
        unsafe { tunsetiff(file.as_raw_fd(), &req) }.map_err(io::Error::from)?;
        // The kernel may have completed a name pattern such as "re6st%d".
        let end = req.name.iter().position(|&b| b == 0).unwrap_or(IFNAMSIZ);
        let name = String::from_utf8_lossy(&req.name[..end]).into_owned();
        Ok(Tun { file, name })
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

    /// Read one packet into `buf`; returns its length.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.file).read(buf)
    }

    /// Write one packet.
    pub fn send(&self, packet: &[u8]) -> io::Result<usize> {
        (&self.file).write(packet)
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
