//! The node-to-node control messages, carried as UDP port 326 inside the
//! overlay as re6st does (reference §3.3): a node asks another for its
//! underlay addresses, and tells each tunnel peer the address it sees it
//! at, which is how a node learns its own public address.
//!
//! Payload: `code ‖ data`. Addresses use re6st's text form,
//! `ip,port,proto;...` (proto `udp` or `udp6`: our tunnels are UDP).
//! re6st authenticates these messages with a per-peer session; here they
//! only ever travel inside tunnels, each hop of which authenticated its
//! peer's certificate, and an address learnt this way is only a hint: the
//! tunnel handshake to it proves who answers there.

use std::net::SocketAddr;

pub const PORT: u16 = 326;
const CODE_ADDRESS: u8 = 1;
/// Ours (re6st learns its address from OpenVPN instead).
const CODE_SEEN: u8 = 0x41;
/// Entries in an address answer; more would be noise.
const MAX_ADDRS: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// "What are your addresses?" (re6st code 1, empty).
    AddressRequest,
    /// The answer (re6st code 1 with data).
    Address(Vec<SocketAddr>),
    /// "I see you at this address" (to a tunnel peer).
    Seen(SocketAddr),
}

fn format_addrs(addrs: &[SocketAddr]) -> String {
    let entries: Vec<String> = addrs
        .iter()
        .map(|a| {
            let proto = if a.is_ipv4() { "udp" } else { "udp6" };
            format!("{},{},{proto}", a.ip(), a.port())
        })
        .collect();
    entries.join(";")
}

fn parse_addrs(text: &str) -> Vec<SocketAddr> {
    text.split(';')
        .filter_map(registry_client::bootstrap::parse_address)
        .filter(|a| matches!(a.proto.as_str(), "udp" | "udp6") && a.port != 0)
        .map(|a| SocketAddr::new(a.ip, a.port))
        .take(MAX_ADDRS)
        .collect()
}

impl Msg {
    pub fn encode(&self) -> Vec<u8> {
        let (code, data) = match self {
            Msg::AddressRequest => (CODE_ADDRESS, String::new()),
            Msg::Address(a) => (CODE_ADDRESS, format_addrs(&a[..a.len().min(MAX_ADDRS)])),
            Msg::Seen(a) => (CODE_SEEN, format_addrs(&[*a])),
        };
        let mut out = vec![code];
        out.extend_from_slice(data.as_bytes());
        out
    }

    /// None for unknown codes and unusable data (ignored, as re6st does).
    pub fn parse(payload: &[u8]) -> Option<Msg> {
        let (&code, data) = payload.split_first()?;
        let text = std::str::from_utf8(data).ok()?;
        match code {
            CODE_ADDRESS if text.is_empty() => Some(Msg::AddressRequest),
            CODE_ADDRESS => {
                Some(Msg::Address(parse_addrs(text))).filter(|m| m != &Msg::Address(vec![]))
            }
            CODE_SEEN => parse_addrs(text).first().map(|a| Msg::Seen(*a)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_re6st_text() {
        let a: SocketAddr = "198.51.100.7:1194".parse().unwrap();
        let b: SocketAddr = "[2001:db8::7]:1194".parse().unwrap();
        let m = Msg::Address(vec![a, b]);
        assert_eq!(
            m.encode(),
            b"\x01198.51.100.7,1194,udp;2001:db8::7,1194,udp6"
        );
        for m in [Msg::AddressRequest, m, Msg::Seen(a)] {
            assert_eq!(Msg::parse(&m.encode()), Some(m));
        }
    }

    #[test]
    fn junk_is_ignored() {
        assert_eq!(Msg::parse(b""), None);
        assert_eq!(Msg::parse(b"\x09x"), None);
        assert_eq!(Msg::parse(b"\x01\xff"), None);
        assert_eq!(Msg::parse(b"\x01nonsense"), None);
        assert_eq!(Msg::parse(b"\x41198.51.100.7,0,udp"), None);
        // TCP (OpenVPN) entries of a real re6st node are skipped.
        assert_eq!(
            Msg::parse(b"\x01198.51.100.7,1194,tcp;198.51.100.7,1194,udp,FR"),
            Some(Msg::Address(vec!["198.51.100.7:1194".parse().unwrap()]))
        );
    }
}
