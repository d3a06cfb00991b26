//! Building a packet into a caller buffer, with the same prefix and router-id compression
//! choices as babeld 1.12 (`really_buffer_update` in message.c), so that our Updates cost
//! the same octets on the wire.

use std::net::Ipv6Addr;

use super::tlv::{SubTlvs, Tlv};
use super::{ae, emit_header, flag, subkind, Error, Prefix, Result, RouterId, HEADER_LEN};

/// Writes one packet: header, body TLVs, then (after [`Builder::finish_body`]) trailer TLVs.
pub struct Builder<'b> {
    buf: &'b mut [u8],
    len: usize,
    /// Octets kept free at the end of the body for the trailer (PC + MAC).
    reserve: usize,
    body_done: bool,
    default_v6: Option<[u8; 16]>,
    router_id: Option<RouterId>,
}

impl<'b> Builder<'b> {
    /// Starts a packet; `reserve` octets stay free for what [`finish_body`] callers add.
    ///
    /// [`finish_body`]: Builder::finish_body
    pub fn new(buf: &'b mut [u8], reserve: usize) -> Result<Self> {
        emit_header(buf, 0)?;
        Ok(Builder {
            buf,
            len: HEADER_LEN,
            reserve,
            body_done: false,
            default_v6: None,
            router_id: None,
        })
    }

    /// Body octets written so far.
    pub fn body_len(&self) -> usize {
        if self.body_done {
            u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize
        } else {
            self.len - HEADER_LEN
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == HEADER_LEN
    }

    /// Octets still free for body TLVs.
    pub fn remaining(&self) -> usize {
        let limit = if self.body_done {
            self.buf.len()
        } else {
            self.buf.len().saturating_sub(self.reserve)
        };
        limit.saturating_sub(self.len)
    }

    /// Appends a TLV as is.
    pub fn push(&mut self, tlv: &Tlv<'_>) -> Result<()> {
        if tlv.buffer_len() > self.remaining() {
            return Err(Error::BufferFull);
        }
        let n = tlv.emit(&mut self.buf[self.len..])?;
        self.len += n;
        if !self.body_done {
            self.forget_state_for(tlv);
        }
        Ok(())
    }

    /// Appends a TLV to the body in the space kept by `reserve` (RFC 8967's PC, which
    /// the MAC covers, must fit even when the body is full).
    pub fn push_reserved(&mut self, tlv: &Tlv<'_>) -> Result<()> {
        let reserve = core::mem::take(&mut self.reserve);
        let r = self.push(tlv);
        self.reserve = match r {
            Ok(()) => reserve.saturating_sub(tlv.buffer_len()),
            Err(_) => reserve,
        };
        r
    }

    /// A raw TLV may change what receivers believe the default prefix or router-id is.
    fn forget_state_for(&mut self, tlv: &Tlv<'_>) {
        match tlv {
            Tlv::RouterId { router_id, .. } => self.router_id = Some(*router_id),
            Tlv::Update { .. } => {
                self.default_v6 = None;
                self.router_id = None;
            }
            _ => {}
        }
    }

    /// A Hello ([RFC 8966 §4.6.5]), with babeld's timestamp sub-TLV if `timestamp` is set.
    pub fn hello(
        &mut self,
        unicast: bool,
        seqno: u16,
        interval: u16,
        timestamp: Option<u32>,
    ) -> Result<()> {
        let mut sub = [0u8; 6];
        let n = match timestamp {
            Some(t) => {
                sub[0] = subkind::TIMESTAMP;
                sub[1] = 4;
                sub[2..6].copy_from_slice(&t.to_be_bytes());
                6
            }
            None => 0,
        };
        self.push(&Tlv::Hello {
            flags: if unicast { 0x8000 } else { 0 },
            seqno,
            interval,
            sub: SubTlvs(&sub[..n]),
        })
    }

    /// An IHU ([RFC 8966 §4.6.6]) for `address` (AE 3 when link-local, like babeld),
    /// with the RTT timestamps (origin, receive) if given.
    pub fn ihu(
        &mut self,
        rxcost: u16,
        interval: u16,
        address: Ipv6Addr,
        timestamps: Option<(u32, u32)>,
    ) -> Result<()> {
        let o = address.octets();
        let ll = o[..8] == [0xfe, 0x80, 0, 0, 0, 0, 0, 0];
        let mut sub = [0u8; 10];
        let n = match timestamps {
            Some((t1, t2)) => {
                sub[0] = subkind::TIMESTAMP;
                sub[1] = 8;
                sub[2..6].copy_from_slice(&t1.to_be_bytes());
                sub[6..10].copy_from_slice(&t2.to_be_bytes());
                10
            }
            None => 0,
        };
        self.push(&Tlv::Ihu {
            ae: if ll { ae::IPV6_LINK_LOCAL } else { ae::IPV6 },
            reserved: 0,
            rxcost,
            interval,
            address: if ll { &o[8..] } else { &o[..] },
            sub: SubTlvs(&sub[..n]),
        })
    }

    /// An Update for an IPv6 prefix ([RFC 8966 §4.6.9]), preceded by a Router-Id TLV
    /// when needed; compresses like babeld. Either everything fits or nothing is written.
    pub fn update(
        &mut self,
        router_id: RouterId,
        prefix: &Prefix,
        src_prefix: &Prefix,
        interval: u16,
        seqno: u16,
        metric: u16,
    ) -> Result<()> {
        if prefix.is_v4() || src_prefix.is_v4() {
            // IPv4 is not routed by this node; babeld peers get AE 2 only.
            return Err(Error::Malformed);
        }
        let o = prefix.octets();
        let plen = prefix.len();
        let pb = (plen as usize).div_ceil(8);
        let mut omit = 0usize;
        if let Some(d) = &self.default_v6 {
            while omit < plen as usize / 8 && d[omit] == o[omit] {
                omit += 1;
            }
        }
        let mut flags = 0u8;
        if self.default_v6.is_none() || plen >= 48 {
            flags |= flag::DEFAULT_PREFIX;
        }
        let mut need_router_id = false;
        if self.router_id != Some(router_id) {
            if plen == 128 && o[8..] == router_id.0 {
                flags |= flag::ROUTER_ID;
            } else {
                need_router_id = true;
            }
        }
        let mut sub = [0u8; 19];
        let sublen = Self::source_sub(src_prefix, &mut sub);
        let update = Tlv::Update {
            ae: ae::IPV6,
            flags,
            plen,
            omitted: omit as u8,
            interval,
            seqno,
            metric,
            prefix: &o[omit..pb],
            sub: SubTlvs(&sub[..sublen]),
        };
        let id_tlv = Tlv::RouterId {
            reserved: 0,
            router_id,
            sub: SubTlvs(&[]),
        };
        let total = update.buffer_len()
            + if need_router_id {
                id_tlv.buffer_len()
            } else {
                0
            };
        if total > self.remaining() {
            return Err(Error::BufferFull);
        }
        if need_router_id {
            self.len += id_tlv.emit(&mut self.buf[self.len..])?;
        }
        self.len += update.emit(&mut self.buf[self.len..])?;
        self.router_id = Some(router_id);
        if flags & flag::DEFAULT_PREFIX != 0 {
            self.default_v6 = Some(*o);
        }
        Ok(())
    }

    /// A wildcard retraction: every route through the sender is gone ([RFC 8966 §4.6.9]).
    pub fn wildcard_retraction(&mut self, seqno: u16) -> Result<()> {
        self.push(&Tlv::Update {
            ae: ae::WILDCARD,
            flags: 0,
            plen: 0,
            omitted: 0,
            interval: 0xFFFF,
            seqno,
            metric: super::INFINITY,
            prefix: &[],
            sub: SubTlvs(&[]),
        })?;
        self.router_id = None;
        Ok(())
    }

    fn source_sub(src_prefix: &Prefix, sub: &mut [u8; 19]) -> usize {
        if src_prefix.is_default() {
            return 0;
        }
        let spb = (src_prefix.len() as usize).div_ceil(8);
        sub[0] = subkind::SOURCE_PREFIX;
        sub[1] = 1 + spb as u8;
        sub[2] = src_prefix.len();
        sub[3..3 + spb].copy_from_slice(&src_prefix.octets()[..spb]);
        3 + spb
    }

    /// A Route Request ([RFC 8966 §4.6.10]); `None` asks for a full dump.
    pub fn route_request(&mut self, prefix: Option<(&Prefix, &Prefix)>) -> Result<()> {
        let Some((p, src)) = prefix else {
            return self.push(&Tlv::RouteRequest {
                ae: ae::WILDCARD,
                plen: 0,
                prefix: &[],
                sub: SubTlvs(&[]),
            });
        };
        let mut sub = [0u8; 19];
        let n = Self::source_sub(src, &mut sub);
        let pb = (p.len() as usize).div_ceil(8);
        self.push(&Tlv::RouteRequest {
            ae: ae::IPV6,
            plen: p.len(),
            prefix: &p.octets()[..pb],
            sub: SubTlvs(&sub[..n]),
        })
    }

    /// A Seqno Request ([RFC 8966 §4.6.11]).
    pub fn seqno_request(
        &mut self,
        prefix: &Prefix,
        src_prefix: &Prefix,
        seqno: u16,
        hop_count: u8,
        router_id: RouterId,
    ) -> Result<()> {
        let mut sub = [0u8; 19];
        let n = Self::source_sub(src_prefix, &mut sub);
        let pb = (prefix.len() as usize).div_ceil(8);
        self.push(&Tlv::SeqnoRequest {
            ae: ae::IPV6,
            plen: prefix.len(),
            seqno,
            hop_count,
            reserved: 0,
            router_id,
            prefix: &prefix.octets()[..pb],
            sub: SubTlvs(&sub[..n]),
        })
    }

    /// Closes the body (sets the body length); later pushes go to the trailer.
    pub fn finish_body(&mut self) {
        if !self.body_done {
            let body = (self.len - HEADER_LEN) as u16;
            self.buf[2..4].copy_from_slice(&body.to_be_bytes());
            self.body_done = true;
        }
    }

    /// The packet so far (header, body, trailer).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Closes the packet and returns its length.
    pub fn finish(mut self) -> usize {
        self.finish_body();
        self.len
    }
}
