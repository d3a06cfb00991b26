//! Decoding a packet body into messages with full prefixes ([RFC 8966 §4.5]: the parser
//! state of default prefixes, router-id and next hop that lives for one packet).

use std::net::Ipv6Addr;

use super::tlv::{Tlv, TlvIter};
use super::{ae, flag, subkind, Error, Prefix, Result, RouterId, INFINITY};

/// A decoded Update ([RFC 8966 §4.6.9]) with the packet state applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateMsg {
    pub ae: u8,
    pub flags: u8,
    /// Centiseconds.
    pub interval: u16,
    pub seqno: u16,
    pub metric: u16,
    /// `None` for a wildcard retraction (AE 0).
    pub prefix: Option<Prefix>,
    /// `::/0` (or `::ffff:0:0/96` for IPv4) unless a source prefix sub-TLV says otherwise.
    pub src_prefix: Prefix,
    /// Router-id from the last Router-Id TLV or the router-id flag; `None` only for
    /// retractions.
    pub router_id: Option<RouterId>,
    /// Next hop from a Next Hop TLV; `None` means the sender.
    pub next_hop: Option<Ipv6Addr>,
}

/// One message of a packet body, ready for the protocol engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    AckReq {
        nonce: u16,
        interval: u16,
    },
    Ack {
        nonce: u16,
    },
    Hello {
        unicast: bool,
        seqno: u16,
        /// Centiseconds; 0 for an unscheduled Hello.
        interval: u16,
        /// Sender's clock (µs, wrapping) when it sent this Hello.
        timestamp: Option<u32>,
    },
    Ihu {
        rxcost: u16,
        interval: u16,
        /// `None` for AE 0 (meant for every receiver).
        address: Option<Ipv6Addr>,
        /// (origin: our Hello's timestamp echoed, receive: when the sender got it).
        timestamps: Option<(u32, u32)>,
    },
    Update(UpdateMsg),
    RouteRequest {
        /// `None` for a wildcard request (full dump).
        prefix: Option<Prefix>,
        src_prefix: Prefix,
    },
    SeqnoRequest {
        prefix: Prefix,
        src_prefix: Prefix,
        seqno: u16,
        hop_count: u8,
        router_id: RouterId,
    },
    Pc {
        pc: u32,
        index: &'a [u8],
    },
    ChallengeRequest {
        nonce: &'a [u8],
    },
    ChallengeReply {
        nonce: &'a [u8],
    },
}

const V4_MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF];

fn is_v4_ae(a: u8) -> bool {
    a == ae::IPV4 || a == ae::V4_VIA_V6
}

/// The default source prefix for an AE (no sub-TLV).
pub(crate) fn default_src(a: u8) -> Prefix {
    if is_v4_ae(a) {
        let mut p = [0; 16];
        p[..12].copy_from_slice(&V4_MAPPED);
        Prefix::new(p, 96)
    } else {
        Prefix::DEFAULT
    }
}

/// Expands a (possibly compressed) prefix; `default` is the AE's default prefix.
pub(crate) fn expand_prefix(
    a: u8,
    plen: u8,
    omitted: u8,
    bytes: &[u8],
    default: Option<&[u8; 16]>,
) -> Result<Prefix> {
    let mut p = [0u8; 16];
    let omitted = omitted as usize;
    match a {
        ae::WILDCARD => Ok(Prefix::DEFAULT),
        ae::IPV4 | ae::V4_VIA_V6 => {
            if plen > 32 {
                return Err(Error::Malformed);
            }
            p[..12].copy_from_slice(&V4_MAPPED);
            if omitted > 0 {
                let d = default.ok_or(Error::NoDefaultPrefix)?;
                if d[..12] != V4_MAPPED || omitted > 4 {
                    return Err(Error::NoDefaultPrefix);
                }
                p[12..12 + omitted].copy_from_slice(&d[12..12 + omitted]);
            }
            let end = 12 + omitted + bytes.len();
            p.get_mut(12 + omitted..end)
                .ok_or(Error::Malformed)?
                .copy_from_slice(bytes);
            Ok(Prefix::new(p, plen + 96))
        }
        ae::IPV6 => {
            if plen > 128 {
                return Err(Error::Malformed);
            }
            if omitted > 0 {
                let d = default.ok_or(Error::NoDefaultPrefix)?;
                if d[..12] == V4_MAPPED || omitted > 16 {
                    return Err(Error::NoDefaultPrefix);
                }
                p[..omitted].copy_from_slice(&d[..omitted]);
            }
            p.get_mut(omitted..omitted + bytes.len())
                .ok_or(Error::Malformed)?
                .copy_from_slice(bytes);
            Ok(Prefix::new(p, plen))
        }
        ae::IPV6_LINK_LOCAL => {
            p[0] = 0xfe;
            p[1] = 0x80;
            p.get_mut(8..8 + bytes.len())
                .ok_or(Error::Malformed)?
                .copy_from_slice(bytes);
            Ok(Prefix::new(p, plen))
        }
        other => Err(Error::UnknownAe(other)),
    }
}

fn expand_address(a: u8, bytes: &[u8]) -> Result<Ipv6Addr> {
    Ok(expand_prefix(a, if is_v4_ae(a) { 32 } else { 128 }, 0, bytes, None)?.addr())
}

/// The source prefix of an Update or request, from its sub-TLVs ([RFC 9079 §7.1]).
fn source_prefix(a: u8, sub: &super::SubTlvs<'_>) -> Result<Prefix> {
    sub.check(&[subkind::SOURCE_PREFIX])?;
    match sub.source_prefix()? {
        None => Ok(default_src(a)),
        // A zero-length source prefix must not be sent (RFC 9079 §7.1).
        Some((0, _)) => Err(Error::Malformed),
        Some((plen, bytes)) => {
            if bytes.len() != super::tlv::prefix_octets(a, plen, 0)? {
                return Err(Error::Malformed);
            }
            expand_prefix(a, plen, 0, bytes, None)
        }
    }
}

/// Decodes the TLVs of a body in order, keeping the per-packet parser state.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    tlvs: TlvIter<'a>,
    default_v4: Option<[u8; 16]>,
    default_v6: Option<[u8; 16]>,
    default_v4v6: Option<[u8; 16]>,
    router_id: Option<RouterId>,
    next_hop_v4: Option<Ipv6Addr>,
    next_hop_v6: Option<Ipv6Addr>,
}

impl<'a> Decoder<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        Decoder {
            tlvs: TlvIter::new(body),
            default_v4: None,
            default_v6: None,
            default_v4v6: None,
            router_id: None,
            next_hop_v4: None,
            next_hop_v6: None,
        }
    }

    fn default_for(&mut self, a: u8) -> Option<&mut Option<[u8; 16]>> {
        match a {
            ae::IPV4 => Some(&mut self.default_v4),
            ae::IPV6 => Some(&mut self.default_v6),
            ae::V4_VIA_V6 => Some(&mut self.default_v4v6),
            _ => None,
        }
    }

    fn clear_defaults(&mut self) {
        self.default_v4 = None;
        self.default_v6 = None;
        self.default_v4v6 = None;
    }

    /// `Ok(None)` for TLVs that only change the parser state or are skipped.
    fn decode(&mut self, t: u8, v: &'a [u8]) -> Result<Option<Message<'a>>> {
        let tlv = match Tlv::parse(t, v) {
            Ok(tlv) => tlv,
            Err(e) => {
                // A broken state-setting TLV must not leave stale state behind (babeld).
                match t {
                    super::kind::ROUTER_ID => self.router_id = None,
                    super::kind::NEXT_HOP => {
                        self.next_hop_v4 = None;
                        self.next_hop_v6 = None;
                    }
                    super::kind::UPDATE if v.len() < 2 || v[1] & flag::DEFAULT_PREFIX != 0 => {
                        self.clear_defaults()
                    }
                    _ => {}
                }
                return Err(e);
            }
        };
        Ok(Some(match tlv {
            Tlv::Pad1 | Tlv::PadN { .. } | Tlv::Unknown { .. } | Tlv::Mac { .. } => {
                return Ok(None)
            }
            Tlv::AckReq {
                nonce,
                interval,
                sub,
                ..
            } => {
                sub.check(&[])?;
                Message::AckReq { nonce, interval }
            }
            Tlv::Ack { nonce, sub } => {
                sub.check(&[])?;
                Message::Ack { nonce }
            }
            Tlv::Hello {
                flags,
                seqno,
                interval,
                sub,
            } => {
                sub.check(&[])?;
                let timestamp = sub
                    .timestamp()
                    .filter(|v| v.len() >= 4)
                    .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
                Message::Hello {
                    unicast: flags & 0x8000 != 0,
                    seqno,
                    interval,
                    timestamp,
                }
            }
            Tlv::Ihu {
                ae: a,
                rxcost,
                interval,
                address,
                sub,
                ..
            } => {
                sub.check(&[])?;
                let address = if a == ae::WILDCARD {
                    None
                } else {
                    Some(expand_address(a, address)?)
                };
                let timestamps = sub.timestamp().filter(|v| v.len() >= 8).map(|v| {
                    (
                        u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                        u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
                    )
                });
                Message::Ihu {
                    rxcost,
                    interval,
                    address,
                    timestamps,
                }
            }
            Tlv::RouterId { router_id, sub, .. } => {
                // State changes even if a mandatory sub-TLV then voids the TLV (§4.4).
                self.router_id = Some(router_id);
                sub.check(&[])?;
                if !router_id.is_valid() {
                    self.router_id = None;
                    return Err(Error::Malformed);
                }
                return Ok(None);
            }
            Tlv::NextHop {
                ae: a,
                address,
                sub,
                ..
            } => {
                let addr = match a {
                    ae::WILDCARD => Err(Error::Malformed),
                    _ => expand_address(a, address),
                };
                let addr = match addr {
                    Ok(addr) => addr,
                    Err(e) => {
                        self.next_hop_v4 = None;
                        self.next_hop_v6 = None;
                        return Err(e);
                    }
                };
                match a {
                    ae::IPV4 => self.next_hop_v4 = Some(addr),
                    ae::IPV6 | ae::IPV6_LINK_LOCAL => self.next_hop_v6 = Some(addr),
                    _ => {} // v4-via-v6 next hops are not a thing
                }
                sub.check(&[])?;
                return Ok(None);
            }
            Tlv::Update {
                ae: a,
                flags,
                plen,
                omitted,
                interval,
                seqno,
                metric,
                prefix,
                sub,
            } => {
                let default = match a {
                    ae::IPV4 => self.default_v4,
                    ae::IPV6 => self.default_v6,
                    ae::V4_VIA_V6 => self.default_v4v6,
                    _ => None,
                };
                if a == ae::IPV6_LINK_LOCAL {
                    // RFC 8966 §4.1.1: AE 3 carries addresses, never prefixes.
                    return Err(Error::Malformed);
                }
                let full = match expand_prefix(a, plen, omitted, prefix, default.as_ref()) {
                    Ok(p) => p,
                    Err(e) => {
                        if flags & flag::DEFAULT_PREFIX != 0 {
                            self.clear_defaults();
                        }
                        return Err(e);
                    }
                };
                if flags & flag::DEFAULT_PREFIX != 0 {
                    if let Some(slot) = self.default_for(a) {
                        *slot = Some(*full.octets());
                    }
                }
                if flags & flag::ROUTER_ID != 0 && a != ae::WILDCARD {
                    let o = full.octets();
                    let mut id = [0; 8];
                    if is_v4_ae(a) {
                        id[4..].copy_from_slice(&o[12..]);
                    } else {
                        id.copy_from_slice(&o[8..]);
                    }
                    self.router_id = Some(RouterId(id));
                }
                if metric < INFINITY && self.router_id.is_none() && a != ae::WILDCARD {
                    return Err(Error::Malformed);
                }
                let src_prefix = source_prefix(a, &sub)?;
                if a == ae::WILDCARD && (metric != INFINITY || !src_prefix.is_default()) {
                    return Err(Error::Malformed);
                }
                let next_hop = if a == ae::IPV4 {
                    if self.next_hop_v4.is_none() && metric < INFINITY {
                        return Err(Error::Malformed);
                    }
                    self.next_hop_v4
                } else {
                    self.next_hop_v6
                };
                Message::Update(UpdateMsg {
                    ae: a,
                    flags,
                    interval,
                    seqno,
                    metric,
                    prefix: (a != ae::WILDCARD).then_some(full),
                    src_prefix,
                    router_id: self.router_id,
                    next_hop,
                })
            }
            Tlv::RouteRequest {
                ae: a,
                plen,
                prefix,
                sub,
            } => {
                let src_prefix = source_prefix(a, &sub)?;
                if a == ae::WILDCARD {
                    if !src_prefix.is_default() {
                        return Err(Error::Malformed);
                    }
                    Message::RouteRequest {
                        prefix: None,
                        src_prefix,
                    }
                } else {
                    Message::RouteRequest {
                        prefix: Some(expand_prefix(a, plen, 0, prefix, None)?),
                        src_prefix,
                    }
                }
            }
            Tlv::SeqnoRequest {
                ae: a,
                plen,
                seqno,
                hop_count,
                router_id,
                prefix,
                sub,
                ..
            } => {
                if a == ae::WILDCARD || a == ae::IPV6_LINK_LOCAL {
                    return Err(Error::Malformed);
                }
                let src_prefix = source_prefix(a, &sub)?;
                Message::SeqnoRequest {
                    prefix: expand_prefix(a, plen, 0, prefix, None)?,
                    src_prefix,
                    seqno,
                    hop_count,
                    router_id,
                }
            }
            Tlv::Pc { pc, index } => Message::Pc { pc, index },
            Tlv::ChallengeRequest { nonce } => Message::ChallengeRequest { nonce },
            Tlv::ChallengeReply { nonce } => Message::ChallengeReply { nonce },
        }))
    }
}

impl<'a> Iterator for Decoder<'a> {
    /// `Err` for a TLV to be ignored; iteration ends after a framing error.
    type Item = Result<Message<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (t, v) = match self.tlvs.next_raw()? {
                Ok(tv) => tv,
                Err(e) => return Some(Err(e)),
            };
            match self.decode(t, v) {
                Ok(None) => continue,
                Ok(Some(m)) => return Some(Ok(m)),
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
