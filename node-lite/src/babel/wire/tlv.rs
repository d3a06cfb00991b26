//! One TLV as it is on the wire ([RFC 8966 §4.3], [RFC 8967 §4]): fixed fields decoded,
//! address and prefix octets kept as they were sent (possibly compressed), sub-TLVs kept
//! as raw bytes. `parse` then `emit` reproduces the input octet for octet.

use super::{ae, kind, subkind, Error, Result, RouterId};

/// Iterates over the TLVs of a body or trailer. Yields `Err(Truncated)` once and stops
/// when a TLV's length runs past the end ([RFC 8966 §4.3]: the rest is unusable).
#[derive(Debug, Clone)]
pub struct TlvIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> TlvIter<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        TlvIter {
            rest: bytes,
            failed: false,
        }
    }

    /// Next TLV as (type, value) framing only.
    pub fn next_raw(&mut self) -> Option<Result<(u8, &'a [u8])>> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        let t = self.rest[0];
        if t == kind::PAD1 {
            self.rest = &self.rest[1..];
            return Some(Ok((t, &[])));
        }
        let Some(&len) = self.rest.get(1) else {
            self.failed = true;
            return Some(Err(Error::Truncated));
        };
        let end = 2 + len as usize;
        let Some(value) = self.rest.get(2..end) else {
            self.failed = true;
            return Some(Err(Error::Truncated));
        };
        self.rest = &self.rest[end..];
        Some(Ok((t, value)))
    }
}

impl<'a> Iterator for TlvIter<'a> {
    /// A framing error is `Err(Truncated)` and ends the iteration; a TLV whose framing is
    /// fine but whose content is malformed is `Err(...)` too, and iteration goes on.
    type Item = Result<Tlv<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_raw()?.and_then(|(t, v)| Tlv::parse(t, v)))
    }
}

/// Sub-TLVs following a TLV's fixed part, unparsed ([RFC 8966 §4.4]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubTlvs<'a>(pub &'a [u8]);

impl<'a> SubTlvs<'a> {
    pub fn iter(&self) -> SubTlvIter<'a> {
        SubTlvIter { rest: self.0 }
    }

    /// Checks the framing and returns the first mandatory sub-TLV type not in `known`:
    /// its presence means the enclosing TLV must be ignored ([RFC 8966 §4.4]).
    pub fn check(&self, known: &[u8]) -> Result<()> {
        for s in self.iter() {
            let s = s?;
            let t = s.kind();
            if t & subkind::MANDATORY != 0 && !known.contains(&t) {
                return Err(Error::UnknownMandatory(t));
            }
        }
        Ok(())
    }

    /// The RTT timestamp sub-TLV's value, if present and well-formed.
    pub fn timestamp(&self) -> Option<&'a [u8]> {
        self.iter().find_map(|s| match s {
            Ok(SubTlv::Timestamp(v)) => Some(v),
            _ => None,
        })
    }

    /// The source prefix sub-TLV ([RFC 9079 §7.1]): (length, prefix octets).
    pub fn source_prefix(&self) -> Result<Option<(u8, &'a [u8])>> {
        let mut found = None;
        for s in self.iter() {
            if let SubTlv::SourcePrefix { plen, prefix } = s? {
                if found.is_some() {
                    // RFC 9079 §7.1: at most one per TLV.
                    return Err(Error::Malformed);
                }
                found = Some((plen, prefix));
            }
        }
        Ok(found)
    }
}

/// One sub-TLV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubTlv<'a> {
    Pad1,
    PadN(u8),
    /// babeld's RTT timestamp: 4 octets on Hello, 8 on IHU.
    Timestamp(&'a [u8]),
    SourcePrefix {
        plen: u8,
        prefix: &'a [u8],
    },
    Unknown {
        kind: u8,
        value: &'a [u8],
    },
}

impl SubTlv<'_> {
    pub fn kind(&self) -> u8 {
        match self {
            SubTlv::Pad1 => subkind::PAD1,
            SubTlv::PadN(_) => subkind::PADN,
            SubTlv::Timestamp(_) => subkind::TIMESTAMP,
            SubTlv::SourcePrefix { .. } => subkind::SOURCE_PREFIX,
            SubTlv::Unknown { kind, .. } => *kind,
        }
    }
}

pub struct SubTlvIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for SubTlvIter<'a> {
    type Item = Result<SubTlv<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (&t, _) = self.rest.split_first()?;
        if t == subkind::PAD1 {
            self.rest = &self.rest[1..];
            return Some(Ok(SubTlv::Pad1));
        }
        let len = match self.rest.get(1) {
            Some(&l) => l as usize,
            None => {
                self.rest = &[];
                return Some(Err(Error::Truncated));
            }
        };
        let Some(v) = self.rest.get(2..2 + len) else {
            self.rest = &[];
            return Some(Err(Error::Truncated));
        };
        self.rest = &self.rest[2 + len..];
        Some(Ok(match t {
            subkind::PADN => SubTlv::PadN(len as u8),
            subkind::TIMESTAMP => SubTlv::Timestamp(v),
            subkind::SOURCE_PREFIX => match v.split_first() {
                Some((&plen, prefix)) => SubTlv::SourcePrefix { plen, prefix },
                None => return Some(Err(Error::Malformed)),
            },
            _ => SubTlv::Unknown { kind: t, value: v },
        }))
    }
}

/// One TLV. Multi-octet fields are host order here, network order on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tlv<'a> {
    /// [RFC 8966 §4.6.1]
    Pad1,
    /// [RFC 8966 §4.6.2]; the content is ignored on input and zero on output.
    PadN { len: u8 },
    /// [RFC 8966 §4.6.3]
    AckReq {
        reserved: u16,
        nonce: u16,
        interval: u16,
        sub: SubTlvs<'a>,
    },
    /// [RFC 8966 §4.6.4]
    Ack { nonce: u16, sub: SubTlvs<'a> },
    /// [RFC 8966 §4.6.5]; flag 0x8000 = unicast.
    Hello {
        flags: u16,
        seqno: u16,
        interval: u16,
        sub: SubTlvs<'a>,
    },
    /// [RFC 8966 §4.6.6]; `address` as encoded by `ae`.
    Ihu {
        ae: u8,
        reserved: u8,
        rxcost: u16,
        interval: u16,
        address: &'a [u8],
        sub: SubTlvs<'a>,
    },
    /// [RFC 8966 §4.6.7]
    RouterId {
        reserved: u16,
        router_id: RouterId,
        sub: SubTlvs<'a>,
    },
    /// [RFC 8966 §4.6.8]
    NextHop {
        ae: u8,
        reserved: u8,
        address: &'a [u8],
        sub: SubTlvs<'a>,
    },
    /// [RFC 8966 §4.6.9]; `prefix` holds the octets after the `omitted` ones.
    Update {
        ae: u8,
        flags: u8,
        plen: u8,
        omitted: u8,
        interval: u16,
        seqno: u16,
        metric: u16,
        prefix: &'a [u8],
        sub: SubTlvs<'a>,
    },
    /// [RFC 8966 §4.6.10]
    RouteRequest {
        ae: u8,
        plen: u8,
        prefix: &'a [u8],
        sub: SubTlvs<'a>,
    },
    /// [RFC 8966 §4.6.11]. babeld 1.12 puts the source prefix length in `reserved`.
    SeqnoRequest {
        ae: u8,
        plen: u8,
        seqno: u16,
        hop_count: u8,
        reserved: u8,
        router_id: RouterId,
        prefix: &'a [u8],
        sub: SubTlvs<'a>,
    },
    /// [RFC 8967 §4.1], only in the packet trailer.
    Mac { mac: &'a [u8] },
    /// [RFC 8967 §4.2]: packet counter and index.
    Pc { pc: u32, index: &'a [u8] },
    /// [RFC 8967 §4.3]
    ChallengeRequest { nonce: &'a [u8] },
    /// [RFC 8967 §4.4]
    ChallengeReply { nonce: &'a [u8] },
    /// Any other type: skipped by receivers ([RFC 8966 §4.3]).
    Unknown { kind: u8, value: &'a [u8] },
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Octets of a prefix of `plen` bits, `omitted` of them left out, as sent with `ae`.
pub(super) fn prefix_octets(ae: u8, plen: u8, omitted: u8) -> Result<usize> {
    let pb = (plen as usize).div_ceil(8);
    let omitted = omitted as usize;
    match ae {
        ae::WILDCARD => Ok(0),
        ae::IPV4 | ae::V4_VIA_V6 => {
            if plen <= 32 && omitted <= 4 && omitted <= pb {
                Ok(pb - omitted)
            } else {
                Err(Error::Malformed)
            }
        }
        ae::IPV6 => {
            if plen <= 128 && omitted <= pb {
                Ok(pb - omitted)
            } else {
                Err(Error::Malformed)
            }
        }
        // Link-local: the fe80::/64 half is implied.
        ae::IPV6_LINK_LOCAL => {
            if plen <= 128 && omitted == 0 {
                Ok(pb.saturating_sub(8))
            } else {
                Err(Error::Malformed)
            }
        }
        other => Err(Error::UnknownAe(other)),
    }
}

/// Octets of a full address encoded with `ae`.
pub(super) fn address_octets(ae: u8) -> Result<usize> {
    match ae {
        ae::WILDCARD => Ok(0),
        ae::IPV4 | ae::V4_VIA_V6 => Ok(4),
        ae::IPV6 => Ok(16),
        ae::IPV6_LINK_LOCAL => Ok(8),
        other => Err(Error::UnknownAe(other)),
    }
}

fn split(v: &[u8], n: usize) -> Result<(&[u8], &[u8])> {
    if v.len() < n {
        Err(Error::Malformed)
    } else {
        Ok(v.split_at(n))
    }
}

impl<'a> Tlv<'a> {
    /// Parses the value of a TLV of type `t`. Never panics.
    pub fn parse(t: u8, v: &'a [u8]) -> Result<Tlv<'a>> {
        let need = |n: usize| {
            if v.len() < n {
                Err(Error::Malformed)
            } else {
                Ok(())
            }
        };
        Ok(match t {
            kind::PAD1 => Tlv::Pad1,
            kind::PADN => Tlv::PadN { len: v.len() as u8 },
            kind::ACK_REQ => {
                need(6)?;
                Tlv::AckReq {
                    reserved: be16(v, 0),
                    nonce: be16(v, 2),
                    interval: be16(v, 4),
                    sub: SubTlvs(&v[6..]),
                }
            }
            kind::ACK => {
                need(2)?;
                Tlv::Ack {
                    nonce: be16(v, 0),
                    sub: SubTlvs(&v[2..]),
                }
            }
            kind::HELLO => {
                need(6)?;
                Tlv::Hello {
                    flags: be16(v, 0),
                    seqno: be16(v, 2),
                    interval: be16(v, 4),
                    sub: SubTlvs(&v[6..]),
                }
            }
            kind::IHU => {
                need(6)?;
                let n = address_octets(v[0])?;
                let (address, sub) = split(&v[6..], n)?;
                Tlv::Ihu {
                    ae: v[0],
                    reserved: v[1],
                    rxcost: be16(v, 2),
                    interval: be16(v, 4),
                    address,
                    sub: SubTlvs(sub),
                }
            }
            kind::ROUTER_ID => {
                need(10)?;
                let mut id = [0; 8];
                id.copy_from_slice(&v[2..10]);
                Tlv::RouterId {
                    reserved: be16(v, 0),
                    router_id: RouterId(id),
                    sub: SubTlvs(&v[10..]),
                }
            }
            kind::NEXT_HOP => {
                need(2)?;
                let n = address_octets(v[0])?;
                let (address, sub) = split(&v[2..], n)?;
                Tlv::NextHop {
                    ae: v[0],
                    reserved: v[1],
                    address,
                    sub: SubTlvs(sub),
                }
            }
            kind::UPDATE => {
                need(10)?;
                let n = prefix_octets(v[0], v[2], v[3])?;
                let (prefix, sub) = split(&v[10..], n)?;
                Tlv::Update {
                    ae: v[0],
                    flags: v[1],
                    plen: v[2],
                    omitted: v[3],
                    interval: be16(v, 4),
                    seqno: be16(v, 6),
                    metric: be16(v, 8),
                    prefix,
                    sub: SubTlvs(sub),
                }
            }
            kind::ROUTE_REQUEST => {
                need(2)?;
                let n = prefix_octets(v[0], v[1], 0)?;
                let (prefix, sub) = split(&v[2..], n)?;
                Tlv::RouteRequest {
                    ae: v[0],
                    plen: v[1],
                    prefix,
                    sub: SubTlvs(sub),
                }
            }
            kind::SEQNO_REQUEST => {
                need(14)?;
                let n = prefix_octets(v[0], v[1], 0)?;
                let (prefix, sub) = split(&v[14..], n)?;
                let mut id = [0; 8];
                id.copy_from_slice(&v[6..14]);
                Tlv::SeqnoRequest {
                    ae: v[0],
                    plen: v[1],
                    seqno: be16(v, 2),
                    hop_count: v[4],
                    reserved: v[5],
                    router_id: RouterId(id),
                    prefix,
                    sub: SubTlvs(sub),
                }
            }
            kind::MAC => Tlv::Mac { mac: v },
            kind::PC => {
                need(4)?;
                Tlv::Pc {
                    pc: u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                    index: &v[4..],
                }
            }
            kind::CHALLENGE_REQUEST => Tlv::ChallengeRequest { nonce: v },
            kind::CHALLENGE_REPLY => Tlv::ChallengeReply { nonce: v },
            _ => Tlv::Unknown { kind: t, value: v },
        })
    }

    pub fn kind(&self) -> u8 {
        match self {
            Tlv::Pad1 => kind::PAD1,
            Tlv::PadN { .. } => kind::PADN,
            Tlv::AckReq { .. } => kind::ACK_REQ,
            Tlv::Ack { .. } => kind::ACK,
            Tlv::Hello { .. } => kind::HELLO,
            Tlv::Ihu { .. } => kind::IHU,
            Tlv::RouterId { .. } => kind::ROUTER_ID,
            Tlv::NextHop { .. } => kind::NEXT_HOP,
            Tlv::Update { .. } => kind::UPDATE,
            Tlv::RouteRequest { .. } => kind::ROUTE_REQUEST,
            Tlv::SeqnoRequest { .. } => kind::SEQNO_REQUEST,
            Tlv::Mac { .. } => kind::MAC,
            Tlv::Pc { .. } => kind::PC,
            Tlv::ChallengeRequest { .. } => kind::CHALLENGE_REQUEST,
            Tlv::ChallengeReply { .. } => kind::CHALLENGE_REPLY,
            Tlv::Unknown { kind, .. } => *kind,
        }
    }

    /// Length of the value (after type and length octets).
    pub fn value_len(&self) -> usize {
        match self {
            Tlv::Pad1 => 0,
            Tlv::PadN { len } => *len as usize,
            Tlv::AckReq { sub, .. } => 6 + sub.0.len(),
            Tlv::Ack { sub, .. } => 2 + sub.0.len(),
            Tlv::Hello { sub, .. } => 6 + sub.0.len(),
            Tlv::Ihu { address, sub, .. } => 6 + address.len() + sub.0.len(),
            Tlv::RouterId { sub, .. } => 10 + sub.0.len(),
            Tlv::NextHop { address, sub, .. } => 2 + address.len() + sub.0.len(),
            Tlv::Update { prefix, sub, .. } => 10 + prefix.len() + sub.0.len(),
            Tlv::RouteRequest { prefix, sub, .. } => 2 + prefix.len() + sub.0.len(),
            Tlv::SeqnoRequest { prefix, sub, .. } => 14 + prefix.len() + sub.0.len(),
            Tlv::Mac { mac } => mac.len(),
            Tlv::Pc { index, .. } => 4 + index.len(),
            Tlv::ChallengeRequest { nonce } | Tlv::ChallengeReply { nonce } => nonce.len(),
            Tlv::Unknown { value, .. } => value.len(),
        }
    }

    /// Octets `emit` writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Tlv::Pad1 => 1,
            _ => 2 + self.value_len(),
        }
    }

    /// Writes the TLV at the start of `buf`; returns the octets written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let total = self.buffer_len();
        let vlen = self.value_len();
        if vlen > u8::MAX as usize {
            return Err(Error::Malformed);
        }
        let Some(out) = buf.get_mut(..total) else {
            return Err(Error::BufferFull);
        };
        out[0] = self.kind();
        if let Tlv::Pad1 = self {
            return Ok(1);
        }
        out[1] = vlen as u8;
        let v = &mut out[2..];
        let mut w = Writer { buf: v, at: 0 };
        match *self {
            Tlv::Pad1 => {}
            Tlv::PadN { len } => {
                for _ in 0..len {
                    w.u8(0);
                }
            }
            Tlv::AckReq {
                reserved,
                nonce,
                interval,
                sub,
            } => {
                w.u16(reserved);
                w.u16(nonce);
                w.u16(interval);
                w.bytes(sub.0);
            }
            Tlv::Ack { nonce, sub } => {
                w.u16(nonce);
                w.bytes(sub.0);
            }
            Tlv::Hello {
                flags,
                seqno,
                interval,
                sub,
            } => {
                w.u16(flags);
                w.u16(seqno);
                w.u16(interval);
                w.bytes(sub.0);
            }
            Tlv::Ihu {
                ae,
                reserved,
                rxcost,
                interval,
                address,
                sub,
            } => {
                w.u8(ae);
                w.u8(reserved);
                w.u16(rxcost);
                w.u16(interval);
                w.bytes(address);
                w.bytes(sub.0);
            }
            Tlv::RouterId {
                reserved,
                router_id,
                sub,
            } => {
                w.u16(reserved);
                w.bytes(&router_id.0);
                w.bytes(sub.0);
            }
            Tlv::NextHop {
                ae,
                reserved,
                address,
                sub,
            } => {
                w.u8(ae);
                w.u8(reserved);
                w.bytes(address);
                w.bytes(sub.0);
            }
            Tlv::Update {
                ae,
                flags,
                plen,
                omitted,
                interval,
                seqno,
                metric,
                prefix,
                sub,
            } => {
                w.u8(ae);
                w.u8(flags);
                w.u8(plen);
                w.u8(omitted);
                w.u16(interval);
                w.u16(seqno);
                w.u16(metric);
                w.bytes(prefix);
                w.bytes(sub.0);
            }
            Tlv::RouteRequest {
                ae,
                plen,
                prefix,
                sub,
            } => {
                w.u8(ae);
                w.u8(plen);
                w.bytes(prefix);
                w.bytes(sub.0);
            }
            Tlv::SeqnoRequest {
                ae,
                plen,
                seqno,
                hop_count,
                reserved,
                router_id,
                prefix,
                sub,
            } => {
                w.u8(ae);
                w.u8(plen);
                w.u16(seqno);
                w.u8(hop_count);
                w.u8(reserved);
                w.bytes(&router_id.0);
                w.bytes(prefix);
                w.bytes(sub.0);
            }
            Tlv::Mac { mac } => w.bytes(mac),
            Tlv::Pc { pc, index } => {
                w.bytes(&pc.to_be_bytes());
                w.bytes(index);
            }
            Tlv::ChallengeRequest { nonce } | Tlv::ChallengeReply { nonce } => w.bytes(nonce),
            Tlv::Unknown { value, .. } => w.bytes(value),
        }
        Ok(total)
    }
}

/// Sequential writer over a slice already checked to be long enough.
pub(super) struct Writer<'b> {
    pub(super) buf: &'b mut [u8],
    pub(super) at: usize,
}

impl Writer<'_> {
    pub(super) fn u8(&mut self, v: u8) {
        if let Some(b) = self.buf.get_mut(self.at) {
            *b = v;
        }
        self.at += 1;
    }
    pub(super) fn u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }
    pub(super) fn bytes(&mut self, v: &[u8]) {
        if let Some(d) = self.buf.get_mut(self.at..self.at + v.len()) {
            d.copy_from_slice(v);
        }
        self.at += v.len();
    }
}
