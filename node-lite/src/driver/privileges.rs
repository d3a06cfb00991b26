//! After set-up the daemon keeps only the capabilities it still uses, the
//! Debian unit's set: `CAP_NET_ADMIN` (routes and addresses through
//! netlink, repairs, LAN interfaces brought up later), `CAP_NET_RAW` (LAN
//! router advertisements, sockets bound to a device) and
//! `CAP_NET_BIND_SERVICE` (a `babel_interface` that comes up later gets its
//! beacon socket on port 326). Everything else goes from the effective,
//! permitted, inheritable and bounding sets (among them `CAP_DAC_OVERRIDE`:
//! a compromised node cannot read other users' files, and `CAP_SYS_ADMIN`),
//! and `no_new_privs` is set. It stays uid 0: the state directory is root's.
#![allow(unsafe_code)] // capget/capset and prctl, which nix does not wrap

use log::{debug, warn};

const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_NET_ADMIN: u32 = 12;
const CAP_NET_RAW: u32 = 13;
const KEEP: u64 = (1 << CAP_NET_BIND_SERVICE) | (1 << CAP_NET_ADMIN) | (1 << CAP_NET_RAW);
/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drop what is not needed; a failure is logged, never fatal (a node
/// started without some capabilities keeps running as it is).
pub(super) fn drop_unneeded() {
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(40);
    for cap in 0..=last_cap {
        if KEEP & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments only.
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        }
    }
    let mut hdr = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut now = [Data::default(); 2];
    // SAFETY: capget fills two Data structs for version 3, as declared.
    let got = unsafe { libc::syscall(libc::SYS_capget, &mut hdr as *mut Header, now.as_mut_ptr()) };
    if got != 0 {
        warn!(
            "capget: {}; capabilities left as they are",
            std::io::Error::last_os_error()
        );
        return;
    }
    let keep = [KEEP as u32, (KEEP >> 32) as u32];
    let want: [Data; 2] = [0, 1].map(|i| Data {
        effective: now[i].permitted & keep[i],
        permitted: now[i].permitted & keep[i],
        inheritable: 0,
    });
    // SAFETY: capset reads the header and two Data structs.
    let set = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, want.as_ptr()) };
    if set != 0 {
        warn!(
            "capset: {}; capabilities left as they are",
            std::io::Error::last_os_error()
        );
        return;
    }
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    debug!("capabilities kept: net_admin, net_raw, net_bind_service (of those the process had)");
}
