//! The control socket of Nexedi's babeld fork (`babeld -X <path>`), which
//! the re6st registry reads to know the network (reference §3.2): served
//! by the node next to the registry (`registry_node`), from our engine.
//!
//! A Unix stream: the client sends one byte, 0x01, then frames of
//! `u16 type ‖ u32 length ‖ body`, big-endian, no padding; each request
//! gets one frame back of the same type.
//! - 1 Dump, request `u8 flags` (re6st sends 11: interfaces, neighbours,
//!   installed routes; we read bit 1 interfaces, 2 neighbours, 4 exported
//!   routes, 8 installed routes, as re6st's client names them). The answer
//!   is four arrays (`u16 count ‖ items`), empty when not asked for.
//! - 2 SetCostMultiplier, request `16s address ‖ u32 ifindex ‖ u16
//!   multiplier`, answer `u8 flags`.
//!
//! The fork's source is not public in a form we could test against; the
//! layout is the one re6st's client (`re6st/ctl.py`) decodes, and the test
//! is the real registry reading our dump.

use std::net::Ipv6Addr;

const HELLO: u8 = 1;
const DUMP: u16 = 1;
const SET_COST_MULTIPLIER: u16 = 2;
const HEADER: usize = 6;
/// Longest request body (SetCostMultiplier's is 22 octets).
const MAX_REQUEST: usize = 64;

pub const DUMP_INTERFACES: u8 = 1;
pub const DUMP_NEIGHBOURS: u8 = 2;
pub const DUMP_XROUTES: u8 = 4;
pub const DUMP_ROUTES: u8 = 8;

/// A request from the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Dump {
        flags: u8,
    },
    SetCostMultiplier {
        address: Ipv6Addr,
        ifindex: u32,
        multiplier: u16,
    },
}

/// The client broke the protocol: the connection is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused;

/// One connection's input, decoded as it comes.
#[derive(Default)]
pub struct Decoder {
    greeted: bool,
    buf: Vec<u8>,
}

impl Decoder {
    /// Feed what was read; the complete requests in it, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Request>, Refused> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let mut at = 0;
        if !self.greeted {
            match self.buf.first() {
                None => return Ok(out),
                Some(&HELLO) => {
                    self.greeted = true;
                    at = 1;
                }
                Some(_) => return Err(Refused),
            }
        }
        while let Some(h) = self.buf.get(at..at + HEADER) {
            let kind = u16::from_be_bytes([h[0], h[1]]);
            let len = u32::from_be_bytes([h[2], h[3], h[4], h[5]]) as usize;
            if len > MAX_REQUEST {
                return Err(Refused);
            }
            let Some(body) = self.buf.get(at + HEADER..at + HEADER + len) else {
                break;
            };
            out.push(match (kind, body) {
                (DUMP, &[flags]) => Request::Dump { flags },
                (SET_COST_MULTIPLIER, b) if b.len() == 22 => Request::SetCostMultiplier {
                    address: Ipv6Addr::from(<[u8; 16]>::try_from(&b[..16]).expect("16")),
                    ifindex: u32::from_be_bytes(b[16..20].try_into().expect("4")),
                    multiplier: u16::from_be_bytes([b[20], b[21]]),
                },
                _ => return Err(Refused),
            });
            at += HEADER + len;
        }
        self.buf.drain(..at);
        Ok(out)
    }
}

/// A neighbour as the fork dumps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbour {
    pub address: Ipv6Addr,
    pub ifindex: u32,
    pub reach: u16,
    pub rxcost: u16,
    pub txcost: u16,
    /// Milliseconds (babeld's `rtt` is in its own units; re6st only
    /// passes it on).
    pub rtt: u16,
    pub rttcost: u16,
    pub cost_multiplier: u16,
}

/// An installed route: `nexthop` is the neighbour's address, as re6st
/// asserts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub prefix: Ipv6Addr,
    pub plen: u8,
    pub metric: u16,
    /// The metric the neighbour announced: 0 when the route is the
    /// neighbour's own prefix, which is how re6st tells which node a
    /// neighbour is.
    pub refmetric: u16,
    pub router_id: [u8; 8],
    pub seqno: u16,
    pub ifindex: u32,
    pub neighbour: Ipv6Addr,
}

/// The answer to a Dump.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dump {
    pub interfaces: Vec<(u32, String)>,
    pub neighbours: Vec<Neighbour>,
    /// Our own prefixes: (prefix, length, metric).
    pub xroutes: Vec<(Ipv6Addr, u8, u16)>,
    pub routes: Vec<Route>,
}

fn frame(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&kind.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// An array of at most u16::MAX items (more are left out).
fn array<T>(b: &mut Vec<u8>, items: &[T], mut item: impl FnMut(&mut Vec<u8>, &T)) {
    let n = items.len().min(usize::from(u16::MAX));
    b.extend_from_slice(&(n as u16).to_be_bytes());
    for x in &items[..n] {
        item(b, x);
    }
}

impl Dump {
    /// The framed answer.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        array(&mut b, &self.interfaces, |b, (index, name)| {
            b.extend_from_slice(&index.to_be_bytes());
            b.extend_from_slice(name.as_bytes());
            b.push(0);
        });
        array(&mut b, &self.neighbours, |b, n| {
            b.extend_from_slice(&n.address.octets());
            b.extend_from_slice(&n.ifindex.to_be_bytes());
            for v in [n.reach, n.rxcost, n.txcost, n.rtt, n.rttcost] {
                b.extend_from_slice(&v.to_be_bytes());
            }
            b.extend_from_slice(&0i32.to_be_bytes()); // channel: none
            b.extend_from_slice(&1u16.to_be_bytes()); // if_up
            b.extend_from_slice(&n.cost_multiplier.to_be_bytes());
        });
        array(&mut b, &self.xroutes, |b, (prefix, plen, metric)| {
            b.extend_from_slice(&prefix.octets());
            b.push(*plen);
            b.extend_from_slice(&metric.to_be_bytes());
        });
        array(&mut b, &self.routes, |b, r| {
            b.extend_from_slice(&r.prefix.octets());
            b.push(r.plen);
            // metric, smoothed metric, refmetric
            for v in [r.metric, r.metric, r.refmetric] {
                b.extend_from_slice(&v.to_be_bytes());
            }
            b.extend_from_slice(&r.router_id);
            b.extend_from_slice(&i32::from(r.seqno).to_be_bytes());
            b.extend_from_slice(&0i32.to_be_bytes()); // age
            b.extend_from_slice(&r.ifindex.to_be_bytes());
            b.extend_from_slice(&r.neighbour.octets()); // neighbour address
            b.extend_from_slice(&r.neighbour.octets()); // next hop
            b.push(1); // installed
        });
        frame(DUMP, &b)
    }
}

/// The answer to a SetCostMultiplier (flags 0: done).
pub fn cost_multiplier_set() -> Vec<u8> {
    frame(SET_COST_MULTIPLIER, &[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What re6st's client sends for a dump: hello, then `Dump(11)`.
    const RE6ST_DUMP: &[u8] = b"\x01\x00\x01\x00\x00\x00\x01\x0b";

    #[test]
    fn requests_in_any_pieces() {
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for b in RE6ST_DUMP.chunks(3) {
            got.extend(d.feed(b).unwrap());
        }
        assert_eq!(got, [Request::Dump { flags: 11 }]);
        let mut set = b"\x00\x02\x00\x00\x00\x16".to_vec();
        set.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
        set.extend_from_slice(b"\x00\x00\x00\x07\x00\x00");
        set.extend_from_slice(&RE6ST_DUMP[1..]);
        assert_eq!(
            d.feed(&set).unwrap(),
            [
                Request::SetCostMultiplier {
                    address: "fe80::1".parse().unwrap(),
                    ifindex: 7,
                    multiplier: 0
                },
                Request::Dump { flags: 11 }
            ]
        );
    }

    #[test]
    fn protocol_errors_close() {
        assert_eq!(Decoder::default().feed(b"\x02"), Err(Refused));
        let mut d = Decoder::default();
        assert_eq!(d.feed(b"\x01\x00\x09\x00\x00\x00\x01\x0b"), Err(Refused));
        let mut d = Decoder::default();
        assert_eq!(
            d.feed(b"\x01\x00\x01\x00\x00\x00\x02\x0b\x0b"),
            Err(Refused)
        );
        let mut d = Decoder::default();
        assert_eq!(d.feed(b"\x01\x00\x01\x7f\xff\xff\xff"), Err(Refused));
        // Incomplete is not an error.
        let mut d = Decoder::default();
        assert_eq!(d.feed(b"\x01\x00\x01\x00\x00"), Ok(vec![]));
    }

    #[test]
    fn dump_layout() {
        let d = Dump {
            interfaces: vec![(3, "re6st0".into())],
            neighbours: vec![Neighbour {
                address: "fe80::2".parse().unwrap(),
                ifindex: 3,
                reach: 0xffff,
                rxcost: 96,
                txcost: 96,
                rtt: 12,
                rttcost: 0,
                cost_multiplier: 256,
            }],
            xroutes: vec![("2001:db8:42::".parse().unwrap(), 64, 0)],
            routes: vec![Route {
                prefix: "2001:db8:42:1::".parse().unwrap(),
                plen: 64,
                metric: 96,
                refmetric: 0,
                router_id: [1, 2, 3, 4, 5, 6, 7, 8],
                seqno: 9,
                ifindex: 3,
                neighbour: "fe80::2".parse().unwrap(),
            }],
        };
        let b = d.encode();
        assert_eq!(&b[..2], b"\x00\x01");
        let len = u32::from_be_bytes(b[2..6].try_into().unwrap()) as usize;
        assert_eq!(len, b.len() - 6);
        // Sizes as re6st's struct formats give them: interface 4 + name,
        // neighbour 38, xroute 19, route 76; four counts.
        assert_eq!(len, 2 + (4 + 7) + 2 + 38 + 2 + 19 + 2 + 76);
        let route = &b[b.len() - 76..];
        assert_eq!(&route[..16], &d.routes[0].prefix.octets());
        assert_eq!(route[75], 1);
        assert_eq!(&route[43..59], &route[59..75], "next hop = neighbour");
    }
}
