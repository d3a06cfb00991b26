//! PCP (RFC 6887) MAP and NAT-PMP (RFC 6886) messages: what a client sends
//! to its gateway's UDP port 5351 and reads back. Both fit in a page, so
//! they are written here rather than taken from a crate (see the README's
//! design notes). Parsers never panic: the gateway is on the LAN, but
//! anything on the LAN can answer.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};

pub const SERVER_PORT: u16 = 5351;
/// Where a gateway announces a restart or a new address, to 224.0.0.1
/// (RFC 6886 §3.2.1, RFC 6887 §14.1.3).
pub const CLIENT_PORT: u16 = 5350;
const PCP_ANNOUNCE: u8 = 0;
const PCP_VERSION: u8 = 2;
const PCP_MAP: u8 = 1;
const PCP_RESPONSE: u8 = 0x80;
const PCP_REQUEST_LEN: usize = 60;
const UDP: u8 = 17;
const PMP_EXTERNAL: u8 = 0;
const PMP_MAP_UDP: u8 = 1;
/// A NAT-PMP server's result code to a PCP request (RFC 6887 §9).
pub const UNSUPPORTED_VERSION: u16 = 1;

/// A PCP MAP request for UDP `port` of `client` (our LAN address),
/// suggesting the same external port. Lifetime 0 deletes the mapping.
pub fn pcp_map(client: Ipv4Addr, nonce: &[u8; 12], port: u16, lifetime: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(PCP_REQUEST_LEN);
    m.extend_from_slice(&[PCP_VERSION, PCP_MAP, 0, 0]);
    m.extend_from_slice(&lifetime.to_be_bytes());
    m.extend_from_slice(&client.to_ipv6_mapped().octets());
    m.extend_from_slice(nonce);
    m.extend_from_slice(&[UDP, 0, 0, 0]);
    m.extend_from_slice(&port.to_be_bytes());
    m.extend_from_slice(&port.to_be_bytes());
    // No preference of external address: the IPv4-mapped all-zeros.
    m.extend_from_slice(&Ipv4Addr::UNSPECIFIED.to_ipv6_mapped().octets());
    m
}

/// NAT-PMP's two requests: the external address, and a UDP mapping.
pub fn pmp_external() -> Vec<u8> {
    vec![0, PMP_EXTERNAL]
}

pub fn pmp_map(port: u16, lifetime: u32) -> Vec<u8> {
    let mut m = vec![0, PMP_MAP_UDP, 0, 0];
    m.extend_from_slice(&port.to_be_bytes());
    m.extend_from_slice(&port.to_be_bytes());
    m.extend_from_slice(&lifetime.to_be_bytes());
    m
}

/// A gateway's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// PCP MAP answered (result 0: success).
    Pcp {
        result: u8,
        nonce: [u8; 12],
        internal_port: u16,
        external: Option<SocketAddrV4>,
        lifetime: u32,
        epoch: u32,
    },
    /// NAT-PMP's external address.
    PmpExternal {
        result: u16,
        epoch: u32,
        ip: Ipv4Addr,
    },
    /// NAT-PMP's UDP mapping.
    PmpMap {
        result: u16,
        epoch: u32,
        internal_port: u16,
        external_port: u16,
        lifetime: u32,
    },
    /// PCP ANNOUNCE: the gateway restarted (or says it is there).
    Announce { epoch: u32 },
    /// A NAT-PMP header with an error and no body (a NAT-PMP-only server
    /// answering PCP says [`UNSUPPORTED_VERSION`]).
    PmpError { result: u16 },
}

fn u16_at(d: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([d[i], d[i + 1]])
}

fn u32_at(d: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([d[i], d[i + 1], d[i + 2], d[i + 3]])
}

/// None for anything that is not an answer to our requests.
pub fn parse(d: &[u8]) -> Option<Reply> {
    match (d.first()?, d.get(1)?) {
        (&PCP_VERSION, &op) if op == PCP_RESPONSE | PCP_ANNOUNCE && d.len() >= 24 => {
            Some(Reply::Announce {
                epoch: u32_at(d, 8),
            })
        }
        (&PCP_VERSION, &op) if op == PCP_RESPONSE | PCP_MAP && d.len() >= PCP_REQUEST_LEN => {
            if d[36] != UDP {
                return None;
            }
            let ip = Ipv6Addr::from(<[u8; 16]>::try_from(&d[44..60]).ok()?).to_ipv4_mapped();
            let port = u16_at(d, 42);
            Some(Reply::Pcp {
                result: d[3],
                nonce: d[24..36].try_into().ok()?,
                internal_port: u16_at(d, 40),
                external: ip
                    .filter(|_| port != 0)
                    .map(|ip| SocketAddrV4::new(ip, port)),
                lifetime: u32_at(d, 4),
                epoch: u32_at(d, 8),
            })
        }
        (0, &op) if op & 0x80 != 0 && d.len() >= 4 => {
            let result = u16_at(d, 2);
            match (op & 0x7f, d.len()) {
                (PMP_EXTERNAL, 12..) => Some(Reply::PmpExternal {
                    result,
                    epoch: u32_at(d, 4),
                    ip: Ipv4Addr::from(u32_at(d, 8)),
                }),
                (PMP_MAP_UDP, 16..) => Some(Reply::PmpMap {
                    result,
                    epoch: u32_at(d, 4),
                    internal_port: u16_at(d, 8),
                    external_port: u16_at(d, 10),
                    lifetime: u32_at(d, 12),
                }),
                _ if result != 0 => Some(Reply::PmpError { result }),
                _ => None,
            }
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcp_map_request_layout() {
        let m = pcp_map(Ipv4Addr::new(192, 0, 2, 2), &[7; 12], 1194, 3600);
        assert_eq!(m.len(), 60);
        assert_eq!(&m[..8], &[2, 1, 0, 0, 0, 0, 0x0e, 0x10]);
        assert_eq!(
            &m[8..24],
            &Ipv4Addr::new(192, 0, 2, 2).to_ipv6_mapped().octets()
        );
        assert_eq!(&m[24..36], &[7; 12]);
        assert_eq!(&m[36..44], &[17, 0, 0, 0, 0x04, 0xaa, 0x04, 0xaa]);
        assert_eq!(
            &m[44..60],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]
        );
    }

    #[test]
    fn pcp_answer() {
        // The request turned into an answer, as a server builds it.
        let mut a = pcp_map(Ipv4Addr::new(192, 0, 2, 2), &[7; 12], 1194, 3600);
        a[1] = 0x81;
        a[3] = 0;
        a[8..12].copy_from_slice(&42u32.to_be_bytes());
        a[12..24].fill(0);
        a[42..44].copy_from_slice(&1195u16.to_be_bytes());
        a[44..60].copy_from_slice(&Ipv4Addr::new(203, 0, 113, 1).to_ipv6_mapped().octets());
        assert_eq!(
            parse(&a),
            Some(Reply::Pcp {
                result: 0,
                nonce: [7; 12],
                internal_port: 1194,
                external: Some("203.0.113.1:1195".parse().unwrap()),
                lifetime: 3600,
                epoch: 42,
            })
        );
        // Our own request is not an answer.
        a[1] = 1;
        assert_eq!(parse(&a), None);
    }

    #[test]
    fn nat_pmp_answers() {
        assert_eq!(pmp_external(), [0, 0]);
        assert_eq!(
            pmp_map(1194, 7200),
            [0, 1, 0, 0, 4, 0xaa, 4, 0xaa, 0, 0, 0x1c, 0x20]
        );
        let ext = [0, 128, 0, 0, 0, 0, 0, 9, 203, 0, 113, 1];
        assert_eq!(
            parse(&ext),
            Some(Reply::PmpExternal {
                result: 0,
                epoch: 9,
                ip: Ipv4Addr::new(203, 0, 113, 1)
            })
        );
        let map = [0, 129, 0, 0, 0, 0, 0, 9, 4, 0xaa, 4, 0xab, 0, 0, 0x1c, 0x20];
        assert_eq!(
            parse(&map),
            Some(Reply::PmpMap {
                result: 0,
                epoch: 9,
                internal_port: 1194,
                external_port: 1195,
                lifetime: 7200
            })
        );
        let mut announce = [0u8; 24];
        announce[..4].copy_from_slice(&[2, 0x80, 0, 0]);
        announce[11] = 3;
        assert_eq!(parse(&announce), Some(Reply::Announce { epoch: 3 }));
        // A NAT-PMP server's answer to a PCP request.
        assert_eq!(parse(&[0, 0x81, 0, 1]), Some(Reply::PmpError { result: 1 }));
    }

    #[test]
    fn junk_is_ignored() {
        for d in [
            &[][..],
            &[0],
            &[0, 128],
            &[0, 129, 0, 0],
            &[2, 0x81, 0, 0],
            &[0, 1, 0, 0],
            &[9; 60],
        ] {
            assert_eq!(parse(d), None, "{d:?}");
        }
    }
}
