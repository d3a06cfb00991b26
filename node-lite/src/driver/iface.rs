//! Interface flags and MTU through the classic socket ioctls.
//!
//! One netlink message would do the same, but netlink-packet-route's link
//! message (every IFLA attribute, parsed and emitted) costs about 50 KB of
//! MIPS code for this single use; the ioctls are stable, and their numbers
//! are the same on every Linux architecture.
#![allow(unsafe_code)]

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::libc;
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

const IFNAMSIZ: usize = 16;

/// `struct ifreq`: the name, then a union whose first member is what these
/// ioctls and TUNSETIFF use (flags: short, MTU: int). 40 bytes covers the
/// union on 32- and 64-bit targets.
#[repr(C)]
pub(super) struct IfReq {
    name: [u8; IFNAMSIZ],
    data: [u8; 24],
}

impl IfReq {
    /// An ifreq for interface `name` (refused if it does not fit).
    pub(super) fn new(name: &str) -> io::Result<IfReq> {
        if name.is_empty() || name.len() >= IFNAMSIZ || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid interface name {name:?}"),
            ));
        }
        let mut req = IfReq {
            name: [0; IFNAMSIZ],
            data: [0; 24],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        Ok(req)
    }

    pub(super) fn flags(&self) -> i16 {
        i16::from_ne_bytes([self.data[0], self.data[1]])
    }

    pub(super) fn set_flags(&mut self, flags: i16) {
        self.data[..2].copy_from_slice(&flags.to_ne_bytes());
    }

    /// The name, as the kernel may have completed it (e.g. "re6st%d").
    pub(super) fn name(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(IFNAMSIZ);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }
}

nix::ioctl_read_bad!(get_flags, libc::SIOCGIFFLAGS, IfReq);
nix::ioctl_write_ptr_bad!(set_flags, libc::SIOCSIFFLAGS, IfReq);
nix::ioctl_write_ptr_bad!(set_mtu, libc::SIOCSIFMTU, IfReq);

/// Bring interface `name` up, and set its MTU if given. Needs CAP_NET_ADMIN.
pub fn set_up(name: &str, mtu: Option<u32>) -> io::Result<()> {
    let mut req = IfReq::new(name)?;
    // Any socket carries interface ioctls.
    let sock: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let fd = sock.as_raw_fd();
    if let Some(mtu) = mtu {
        let mtu = i32::try_from(mtu).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        req.data[..4].copy_from_slice(&mtu.to_ne_bytes());
        // SAFETY: `req` is a valid ifreq that outlives the call; `fd` is open.
        unsafe { set_mtu(fd, &req) }?;
    }
    // SAFETY: as above; the kernel writes the flags into `req`.
    unsafe { get_flags(fd, &mut req) }?;
    req.set_flags(req.flags() | libc::IFF_UP as i16);
    // SAFETY: as above.
    unsafe { set_flags(fd, &req) }?;
    Ok(())
}

/// The host's addresses, for what the node announces when no peer told it
/// how it sees it.
pub fn host_addresses() -> Vec<IpAddr> {
    let Ok(list) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    list.filter_map(|i| {
        let a = i.address?;
        if let Some(v4) = a.as_sockaddr_in() {
            Some(IpAddr::V4(v4.ip()))
        } else {
            a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
        }
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_do_not_fit_an_ifreq_are_refused() {
        assert!(set_up("", None).is_err());
        assert!(set_up("a-name-of-16-chr", None).is_err());
    }
}
