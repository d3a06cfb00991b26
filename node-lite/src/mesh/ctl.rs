//! The node-to-node control messages, carried as UDP port 326 inside the
//! overlay as re6st does (reference §3.3): a node asks another for its
//! underlay addresses, tells each tunnel peer the address it sees it at,
//! which is how a node learns its own public address, and the network
//! config version it knows.
//!
//! Payload: `code ‖ data`. Addresses use re6st's text form,
//! `ip,port,proto;...` (proto `udp` or `udp6`: our tunnels are UDP). The
//! version is re6st's code 0: the registry's version blob as is,
//! `packInteger(n) ‖ CA signature`, which the receiver checks before it
//! believes the number (see [`super::version`]).
//! Codes 4 (node info) and 5 (topology) come with re6st's bit 0x80: the
//! registry's node asks them of other nodes on the registry's behalf
//! (reference §1.3 "Side channel", [`crate::node`]'s `registry_node`), and
//! the answer carries the same code.
//! re6st authenticates these messages with a per-peer session; here they
//! only ever travel inside tunnels, each hop of which authenticated its
//! peer's certificate, and an address learnt this way is only a hint: the
//! tunnel handshake to it proves who answers there.

use std::net::SocketAddr;

use registry_client::netconfig::Version;
use registry_client::Prefix;

pub const PORT: u16 = 326;
pub const CODE_VERSION: u8 = 0;
pub const CODE_ADDRESS: u8 = 1;
/// re6st's codes the registry asks for through its node: node info, topology.
pub const CODE_INFO: u8 = 4;
pub const CODE_TOPOLOGY: u8 = 5;
/// Ours (re6st learns its address from OpenVPN instead).
const CODE_SEEN: u8 = 0x41;
/// Ours, for hole punching through a mutual peer (`node/punch.rs`).
const CODE_INTRO_REQUEST: u8 = 0x42;
const CODE_INTRO: u8 = 0x43;
/// Addresses in an introduction: the observed one and a few local ones.
const MAX_INTRO_ADDRS: usize = 4;
/// re6st's flag for a request made for the registry, and its answer.
const FORWARDED: u8 = 0x80;
/// Longest forwarded answer: a topology line of a node with many tunnels.
const MAX_FORWARDED: usize = 4096;
/// Entries in an address answer; more would be noise.
const MAX_ADDRS: usize = 8;
/// Longest version blob: a packed integer (at most 8 bytes) and an RSA
/// signature of up to 8192 bits.
const MAX_VERSION: usize = 8 + 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg {
    /// "What are your addresses?" (re6st code 1, empty).
    AddressRequest,
    /// The answer (re6st code 1 with data).
    Address(Vec<SocketAddr>),
    /// "I see you at this address" (to a tunnel peer).
    Seen(SocketAddr),
    /// To a tunnel peer: "introduce me to `node`, which I am connecting
    /// to; I am also at `addrs`" (our LAN addresses: a node behind the
    /// same NAT reaches us there).
    IntroRequest {
        node: Prefix,
        addrs: Vec<SocketAddr>,
    },
    /// From a tunnel peer that has tunnels to both: "`node` is at `addrs`
    /// (first: as I see it); send to it now, it sends to you".
    Intro {
        node: Prefix,
        addrs: Vec<SocketAddr>,
    },
    /// "The network config version I know" (re6st code 0), signature
    /// not checked yet.
    Version(Version),
    /// A request for the registry (`data` empty: code 1 address, 4 node
    /// info, 5 topology) or its answer, passed to the registry as is.
    Forwarded { code: u8, data: Vec<u8> },
}

/// re6st's address list: `ip,port,proto;...`.
pub fn format_addrs(addrs: &[SocketAddr]) -> String {
    let entries: Vec<String> = addrs
        .iter()
        .map(|a| {
            let proto = if a.is_ipv4() { "udp" } else { "udp6" };
            format!("{},{},{proto}", a.ip(), a.port())
        })
        .collect();
    entries.join(";")
}

/// An introduction's text: `prefix/len;ip,port,proto;...`.
fn intro(node: &Prefix, addrs: &[SocketAddr]) -> String {
    let addrs = format_addrs(&addrs[..addrs.len().min(MAX_INTRO_ADDRS)]);
    format!("{};{addrs}", node.to_cn())
}

fn parse_addrs(text: &str) -> Vec<SocketAddr> {
    text.split(';')
        .filter_map(registry_client::bootstrap::parse_address)
        .filter(|a| matches!(a.proto.as_str(), "udp" | "udp6") && a.port != 0)
        .map(|a| SocketAddr::new(a.ip, a.port))
        .take(MAX_ADDRS)
        .collect()
}

/// The registry's datagrams to its node on `[::1]:326` and back:
/// `prefix bits ‖ 0 ‖ code ‖ data` (reference §1.3 "Side channel").
pub fn parse_registry(d: &[u8]) -> Option<(Prefix, u8, &[u8])> {
    let nul = d.iter().position(|&b| b == 0)?;
    let bits = std::str::from_utf8(&d[..nul]).ok()?;
    let prefix = Prefix::from_bits(bits).ok()?;
    let (&code, data) = d[nul + 1..].split_first()?;
    Some((prefix, code, data))
}

pub fn encode_registry(prefix: &Prefix, code: u8, data: &[u8]) -> Vec<u8> {
    [prefix.to_bits().as_bytes(), &[0, code], data].concat()
}

impl Msg {
    pub fn encode(&self) -> Vec<u8> {
        let raw = |code: u8, data: &[u8]| [&[code][..], data].concat();
        match self {
            Msg::Version(v) => return raw(CODE_VERSION, &v.raw),
            Msg::Forwarded { code, data } => return raw(code | FORWARDED, data),
            _ => {}
        }
        let (code, data) = match self {
            Msg::AddressRequest => (CODE_ADDRESS, String::new()),
            Msg::Address(a) => (CODE_ADDRESS, format_addrs(&a[..a.len().min(MAX_ADDRS)])),
            Msg::Seen(a) => (CODE_SEEN, format_addrs(&[*a])),
            Msg::IntroRequest { node, addrs } => (CODE_INTRO_REQUEST, intro(node, addrs)),
            Msg::Intro { node, addrs } => (CODE_INTRO, intro(node, addrs)),
            Msg::Version(_) | Msg::Forwarded { .. } => unreachable!("binary, encoded above"),
        };
        let mut out = vec![code];
        out.extend_from_slice(data.as_bytes());
        out
    }

    /// None for unknown codes and unusable data (ignored, as re6st does).
    pub fn parse(payload: &[u8]) -> Option<Msg> {
        let (&code, data) = payload.split_first()?;
        if code & FORWARDED != 0 {
            return (data.len() <= MAX_FORWARDED).then(|| Msg::Forwarded {
                code: code & !FORWARDED,
                data: data.to_vec(),
            });
        }
        if code == CODE_VERSION {
            return (data.len() <= MAX_VERSION)
                .then(|| Version::parse(data).ok())
                .flatten()
                .map(Msg::Version);
        }
        let text = std::str::from_utf8(data).ok()?;
        match code {
            CODE_ADDRESS if text.is_empty() => Some(Msg::AddressRequest),
            CODE_ADDRESS => {
                Some(Msg::Address(parse_addrs(text))).filter(|m| m != &Msg::Address(vec![]))
            }
            CODE_SEEN => parse_addrs(text).first().map(|a| Msg::Seen(*a)),
            CODE_INTRO_REQUEST | CODE_INTRO => {
                let (node, addrs) = text.split_once(';').unwrap_or((text, ""));
                let node = Prefix::from_cn(node).ok().filter(|p| !p.is_empty())?;
                let mut addrs = parse_addrs(addrs);
                addrs.truncate(MAX_INTRO_ADDRS);
                match code {
                    CODE_INTRO_REQUEST => Some(Msg::IntroRequest { node, addrs }),
                    _ if addrs.is_empty() => None,
                    _ => Some(Msg::Intro { node, addrs }),
                }
            }
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
        let v = Version::parse(b"\x21\x0csignature").unwrap();
        assert_eq!(v.number, 300);
        assert_eq!(Msg::Version(v.clone()).encode(), b"\x00\x21\x0csignature");
        let asked = Msg::Forwarded {
            code: 5,
            data: vec![],
        };
        assert_eq!(asked.encode(), b"\x85");
        let told = Msg::Forwarded {
            code: 5,
            data: b"1 2/16 3/16".to_vec(),
        };
        assert_eq!(told.encode(), b"\x851 2/16 3/16");
        let node = Prefix::new(5, 16).unwrap();
        let intro = Msg::Intro {
            node,
            addrs: vec![a, b],
        };
        assert_eq!(
            intro.encode(),
            b"\x435/16;198.51.100.7,1194,udp;2001:db8::7,1194,udp6"
        );
        for m in [
            Msg::AddressRequest,
            m,
            Msg::Seen(a),
            intro,
            Msg::IntroRequest {
                node,
                addrs: vec![],
            },
            Msg::IntroRequest {
                node,
                addrs: vec![a],
            },
            Msg::Version(v),
            asked,
            told,
        ] {
            assert_eq!(Msg::parse(&m.encode()), Some(m));
        }
    }

    #[test]
    fn registry_datagrams() {
        let (p, code, data) = parse_registry(b"0001\0\x01").unwrap();
        assert_eq!((p.to_cn().as_str(), code, data), ("1/4", 1, &b""[..]));
        assert_eq!(encode_registry(&p, 4, b"x, y"), b"0001\0\x04x, y");
        for junk in [&b""[..], b"0001", b"0001\0", b"01x\0\x01", b"\xff\0\x01"] {
            assert!(parse_registry(junk).is_none(), "{junk:?}");
        }
    }

    #[test]
    fn junk_is_ignored() {
        assert_eq!(Msg::parse(b""), None);
        assert_eq!(Msg::parse(b"\x09x"), None);
        assert_eq!(Msg::parse(b"\x01\xff"), None);
        assert_eq!(Msg::parse(b"\x01nonsense"), None);
        assert_eq!(Msg::parse(b"\x41198.51.100.7,0,udp"), None);
        // An introduction names a node and, for the target, an address.
        assert_eq!(Msg::parse(b"\x43"), None);
        assert_eq!(Msg::parse(b"\x435/16"), None);
        assert_eq!(Msg::parse(b"\x43x;198.51.100.7,1194,udp"), None);
        assert_eq!(Msg::parse(b"\x42/0;"), None);
        let many = format!("\x435/16{}", ";198.51.100.7,1194,udp".repeat(9));
        assert!(
            matches!(Msg::parse(many.as_bytes()), Some(Msg::Intro { addrs, .. }) if addrs.len() == 4)
        );
        // A version needs a number and a signature, of sane length.
        assert_eq!(Msg::parse(b"\x00"), None);
        assert_eq!(Msg::parse(b"\x00\x21"), None);
        assert_eq!(Msg::parse(b"\x00\x21\x0c"), None);
        let mut long = vec![0u8, 1];
        long.resize(1 + 8 + 1024, 7);
        assert!(matches!(Msg::parse(&long), Some(Msg::Version(_))));
        long.push(7);
        assert_eq!(Msg::parse(&long), None);
        let mut long = vec![0x85u8];
        long.resize(1 + 4097, b'1');
        assert_eq!(Msg::parse(&long), None);
        // TCP (OpenVPN) entries of a real re6st node are skipped.
        assert_eq!(
            Msg::parse(b"\x01198.51.100.7,1194,tcp;198.51.100.7,1194,udp,FR"),
            Some(Msg::Address(vec!["198.51.100.7:1194".parse().unwrap()]))
        );
    }
}
