//! TUN offloads, sans-IO: the `virtio_net_hdr` that a TUN device opened with
//! IFF_VNET_HDR puts before every packet, TCP/IPv6 segmentation of the
//! super-packets (up to 64 KB) the kernel hands over with TSO enabled, and
//! completion of checksums it left partial.
//!
//! Why: one read, one lookup and one UDP GSO send for ~45 packets instead of
//! a read and a send per packet; the per-packet syscalls, not the cipher,
//! bound the tunnel's throughput (tests/BENCH.md).
//!
//! Everything here works on caller buffers, allocates nothing and never
//! panics on untrusted bytes.

use crate::ip::{checksum, finish, fold, sum, Header, HEADER_LEN, NEXT_TCP};

/// Size of `struct virtio_net_hdr` (the TUN default, TUNSETVNETHDRSZ unset).
pub const VNET_HDR_LEN: usize = 10;
/// `flags`: the checksum from `csum_start` to the end is left to us.
pub const F_NEEDS_CSUM: u8 = 1;
/// `gso_type` values.
pub const GSO_NONE: u8 = 0;
pub const GSO_TCPV6: u8 = 4;
/// `gso_type` bit: the super-packet carries CWR (set on the first segment only).
pub const GSO_ECN: u8 = 0x80;

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;
/// Offset of the checksum in a TCP header.
const TCP_CSUM: usize = 16;

/// A parsed `virtio_net_hdr`. Its fields are in host byte order: legacy
/// TUN devices (no TUNSETVNETLE/BE) use the CPU's endianness, so big-endian
/// MIPS reads them big-endian.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b: &[u8; VNET_HDR_LEN] = b.get(..VNET_HDR_LEN)?.try_into().ok()?;
        let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    pub fn write(&self, b: &mut [u8; VNET_HDR_LEN]) {
        b[0] = self.flags;
        b[1] = self.gso_type;
        for (i, v) in [
            self.hdr_len,
            self.gso_size,
            self.csum_start,
            self.csum_offset,
        ]
        .into_iter()
        .enumerate()
        {
            b[2 + 2 * i..4 + 2 * i].copy_from_slice(&v.to_ne_bytes());
        }
    }
}

/// Why a packet from the TUN device cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than its headers, or offsets outside the packet.
    Malformed,
    /// A GSO type we did not ask for (only TCP over IPv6 is enabled).
    Unsupported,
    /// The output buffer cannot hold a segment.
    BufferTooSmall,
}

/// Sum of the IPv6 pseudo-header of `ip` (source, destination, upper-layer
/// length and next header).
fn pseudo_sum(ip: &[u8], upper_len: usize, next: u8) -> u64 {
    sum(&ip[8..HEADER_LEN], upper_len as u64 + u64::from(next))
}

/// Complete a checksum the kernel left partial (VIRTIO_NET_HDR_F_NEEDS_CSUM):
/// the field at `start + offset` holds the pseudo-header sum; the checksum
/// of everything from `start` goes there.
pub fn complete_csum(pkt: &mut [u8], start: usize, offset: usize) -> Result<(), Error> {
    let at = start.checked_add(offset).ok_or(Error::Malformed)?;
    if at.checked_add(2).is_none_or(|end| end > pkt.len()) {
        return Err(Error::Malformed);
    }
    let c = finish(sum(&pkt[start..], 0));
    pkt[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// Checksum of a TCP (or UDP) segment `l4` inside IPv6 packet `ip`, with its
/// checksum field taken as zero.
fn l4_csum(ip: &[u8], l4: usize, next: u8, csum_at: usize) -> u16 {
    let seg = &ip[l4..];
    let acc = pseudo_sum(ip, seg.len(), next);
    let acc = sum(&seg[..csum_at], acc);
    finish(sum(&seg[csum_at + 2..], acc))
}

/// Make a packet read from a TUN device with IFF_VNET_HDR usable as one
/// plain IPv6 packet: checks the header and completes a partial checksum.
/// Returns `Ok(None)` for a packet that is ready, `Ok(Some(segments))` for a
/// TCP super-packet to be cut with [`Segments::next_into`].
pub fn prepare<'a>(hdr: &VnetHdr, pkt: &'a mut [u8]) -> Result<Option<Segments<'a>>, Error> {
    match hdr.gso_type & !GSO_ECN {
        GSO_NONE => {
            if hdr.flags & F_NEEDS_CSUM != 0 {
                complete_csum(pkt, hdr.csum_start.into(), hdr.csum_offset.into())?;
            }
            Ok(None)
        }
        GSO_TCPV6 => Segments::new(hdr, pkt).map(Some),
        _ => Err(Error::Unsupported),
    }
}

/// The segments of a TCP/IPv6 super-packet, each written as a full packet:
/// the headers copied, IPv6 payload length, sequence number and flags
/// adjusted (FIN and PSH only on the last, CWR only on the first), the TCP
/// checksum computed in full.
#[derive(Debug)]
pub struct Segments<'a> {
    pkt: &'a [u8],
    /// Offset of the TCP header, and of the payload.
    l4: usize,
    head: usize,
    mss: usize,
    /// Payload bytes already cut.
    done: usize,
    seq: u32,
    first: bool,
}

impl<'a> Segments<'a> {
    fn new(hdr: &VnetHdr, pkt: &'a [u8]) -> Result<Self, Error> {
        if pkt.len() < HEADER_LEN || pkt[0] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        // The kernel marks where TCP starts; behind extension headers too.
        let l4 = if hdr.flags & F_NEEDS_CSUM != 0 {
            usize::from(hdr.csum_start)
        } else if pkt[6] == NEXT_TCP {
            HEADER_LEN
        } else {
            return Err(Error::Malformed);
        };
        // TCP right behind the IPv6 header exactly when it says so.
        if l4 < HEADER_LEN || (l4 == HEADER_LEN) != (pkt[6] == NEXT_TCP) || pkt.len() < l4 + 20 {
            return Err(Error::Malformed);
        }
        let head = l4 + usize::from(pkt[l4 + 12] >> 4) * 4;
        let mss = usize::from(hdr.gso_size);
        if head < l4 + 20 || head > pkt.len() || mss == 0 {
            return Err(Error::Malformed);
        }
        let seq = u32::from_be_bytes([pkt[l4 + 4], pkt[l4 + 5], pkt[l4 + 6], pkt[l4 + 7]]);
        Ok(Segments {
            pkt,
            l4,
            head,
            mss,
            done: 0,
            seq,
            first: true,
        })
    }

    /// Size of the largest segment: what `next_into` needs.
    pub fn max_len(&self) -> usize {
        self.head + self.mss
    }

    /// How many segments are left.
    pub fn remaining(&self) -> usize {
        let left = self.pkt.len() - self.head - self.done;
        if self.first && left == 0 {
            return 1;
        }
        left.div_ceil(self.mss)
    }

    /// Write the next segment into `out`; its length, or `None` when done.
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<Result<usize, Error>> {
        let total = self.pkt.len() - self.head;
        if self.done >= total && !(self.first && total == 0) {
            return None;
        }
        let take = self.mss.min(total - self.done);
        let len = self.head + take;
        let Some(out) = out.get_mut(..len) else {
            return Some(Err(Error::BufferTooSmall));
        };
        let Ok(plen) = u16::try_from(len - HEADER_LEN) else {
            return Some(Err(Error::Malformed));
        };
        let from = self.head + self.done;
        out[..self.head].copy_from_slice(&self.pkt[..self.head]);
        out[self.head..].copy_from_slice(&self.pkt[from..from + take]);
        out[4..6].copy_from_slice(&plen.to_be_bytes());
        let (l4, last) = (self.l4, self.done + take == total);
        let seq = self.seq.wrapping_add(self.done as u32);
        out[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
        if !last {
            out[l4 + 13] &= !(TCP_FIN | TCP_PSH);
        }
        if !self.first {
            out[l4 + 13] &= !TCP_CWR;
        }
        let c = l4_csum(out, l4, NEXT_TCP, TCP_CSUM);
        out[l4 + TCP_CSUM..l4 + TCP_CSUM + 2].copy_from_slice(&c.to_be_bytes());
        self.done += take;
        self.first = false;
        Some(Ok(len))
    }
}

/// TCP/IPv6 segments of one flow, in order, merged into one super-packet
/// for a single TUN write (what GRO does in the kernel): the receiving stack
/// then handles one 64 KB packet instead of ~45. Only plain data segments
/// (ACK, PSH on the last) with a right checksum, equal headers but the
/// sequence number, and all but the last of the same size, are merged.
#[derive(Debug)]
pub struct Coalescer {
    /// `virtio_net_hdr`, then the packet being built.
    buf: Vec<u8>,
    /// Bytes of `buf` in use; 0 when empty.
    len: usize,
    /// IPv6 + TCP header length, and the payload size of the first segment.
    head: usize,
    mss: usize,
    next_seq: u32,
    count: usize,
    /// A short or PSH segment ended the run.
    closed: bool,
}

impl Default for Coalescer {
    fn default() -> Self {
        Coalescer {
            buf: vec![0; VNET_HDR_LEN + HEADER_LEN + 65535],
            len: 0,
            head: 0,
            mss: 0,
            next_seq: 0,
            count: 0,
            closed: false,
        }
    }
}

const TCP_ACK: u8 = 0x10;

/// The TCP header length of a plain data segment we may merge, if `p` is one
/// (IPv6 without extension headers, ACK or ACK+PSH, payload, good checksum).
fn mergeable(p: &[u8]) -> Option<usize> {
    let h = Header::parse(p)?;
    if h.next_header() != NEXT_TCP
        || h.payload_len() != p.len() - HEADER_LEN
        || p.len() < HEADER_LEN + 20
    {
        return None;
    }
    let head = HEADER_LEN + usize::from(p[HEADER_LEN + 12] >> 4) * 4;
    let flags = p[HEADER_LEN + 13];
    if head < HEADER_LEN + 20 || head >= p.len() || flags & !TCP_PSH != TCP_ACK {
        return None;
    }
    // The kernel will not check a merged packet again: check each here.
    (checksum(h.src(), h.dst(), NEXT_TCP, &p[HEADER_LEN..]) == 0).then_some(head)
}

impl Coalescer {
    /// Merge `p` into the pending super-packet, or start one. False: `p`
    /// does not fit (take what is pending and retry) or cannot be merged
    /// at all (retried on an empty coalescer: write it alone).
    pub fn push(&mut self, p: &[u8]) -> bool {
        let Some(head) = mergeable(p) else {
            return false;
        };
        let seq = u32::from_be_bytes([p[44], p[45], p[46], p[47]]);
        let payload = p.len() - head;
        let flags = p[HEADER_LEN + 13];
        if self.len == 0 {
            self.buf[VNET_HDR_LEN..VNET_HDR_LEN + p.len()].copy_from_slice(p);
            self.len = VNET_HDR_LEN + p.len();
            (self.head, self.mss, self.count) = (head, payload, 1);
            self.next_seq = seq.wrapping_add(payload as u32);
            self.closed = flags & TCP_PSH != 0;
            return true;
        }
        let cur = &self.buf[VNET_HDR_LEN..self.len];
        // Same addresses, traffic class, flow label, hop limit; same ports,
        // ACK, window and options: everything but length, seq, checksum, PSH.
        let same = head == self.head
            && p[..4] == cur[..4]
            && p[6..44] == cur[6..44]
            && p[48..53] == cur[48..53]
            && p[54..56] == cur[54..56]
            && p[58..head] == cur[58..head];
        if self.closed
            || !same
            || seq != self.next_seq
            || payload > self.mss
            || self.len - VNET_HDR_LEN - HEADER_LEN + payload > 65535
        {
            return false;
        }
        self.buf[self.len..self.len + payload].copy_from_slice(&p[head..]);
        self.len += payload;
        self.count += 1;
        self.next_seq = seq.wrapping_add(payload as u32);
        if flags & TCP_PSH != 0 {
            self.buf[VNET_HDR_LEN + HEADER_LEN + 13] |= TCP_PSH;
        }
        self.closed = flags & TCP_PSH != 0 || payload < self.mss;
        true
    }

    /// The pending packet behind its `virtio_net_hdr`, ready for one TUN
    /// write, and the coalescer emptied; `None` if nothing is pending.
    pub fn take(&mut self) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let len = std::mem::take(&mut self.len);
        let mut hdr = VnetHdr::default();
        if self.count > 1 {
            let p = &mut self.buf[VNET_HDR_LEN..len];
            let plen = (p.len() - HEADER_LEN) as u16;
            p[4..6].copy_from_slice(&plen.to_be_bytes());
            // As the kernel leaves it for checksum offload: the pseudo-header
            // sum over the whole length, folded, not complemented.
            let c = fold(pseudo_sum(p, p.len() - HEADER_LEN, NEXT_TCP));
            let at = HEADER_LEN + TCP_CSUM;
            p[at..at + 2].copy_from_slice(&c.to_be_bytes());
            hdr = VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: GSO_TCPV6,
                hdr_len: self.head as u16,
                gso_size: self.mss as u16,
                csum_start: HEADER_LEN as u16,
                csum_offset: TCP_CSUM as u16,
            };
        }
        let h: &mut [u8; VNET_HDR_LEN] = (&mut self.buf[..VNET_HDR_LEN]).try_into().ok()?;
        hdr.write(h);
        Some(&self.buf[..len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 the slow, obvious way: 16-bit words, carries folded at once.
    fn reference_csum(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        for c in data.chunks(2) {
            let w = u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
            s += w;
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    /// Is the TCP checksum of this IPv6 packet right? Pseudo-header built
    /// as bytes, as RFC 8200 §8.1 draws it.
    fn tcp_ok(p: &[u8]) -> bool {
        let tcp = &p[40..];
        let mut v = Vec::new();
        v.extend_from_slice(&p[8..40]);
        v.extend_from_slice(&(tcp.len() as u32).to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 6]);
        v.extend_from_slice(tcp);
        reference_csum(&v) == 0
    }

    /// A TCP/IPv6 super-packet as the kernel hands it over with TSO: one
    /// header (20 bytes + 12 of timestamp option), `payload` bytes.
    fn super_packet(payload: usize, flags: u8) -> Vec<u8> {
        let mut p = vec![0u8; 40 + 32 + payload];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((32 + payload) as u16).to_be_bytes());
        p[6] = 6;
        p[7] = 64;
        p[8..24].copy_from_slice(&"fd00:1::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&"fd00:2::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
        let t = &mut p[40..];
        t[0..2].copy_from_slice(&5201u16.to_be_bytes());
        t[2..4].copy_from_slice(&40000u16.to_be_bytes());
        t[4..8].copy_from_slice(&0xffff_fff0u32.to_be_bytes()); // wraps
        t[8..12].copy_from_slice(&7u32.to_be_bytes());
        t[12] = 8 << 4;
        t[13] = flags;
        t[14..16].copy_from_slice(&512u16.to_be_bytes());
        t[20..32].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
        for (i, b) in p[72..].iter_mut().enumerate() {
            *b = (i * 7 + i / 251) as u8;
        }
        p
    }

    fn tso(mss: u16) -> VnetHdr {
        VnetHdr {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV6,
            hdr_len: 72,
            gso_size: mss,
            csum_start: 40,
            csum_offset: 16,
        }
    }

    #[test]
    fn header_round_trip() {
        let h = tso(1348);
        let mut b = [0u8; VNET_HDR_LEN];
        h.write(&mut b);
        assert_eq!(VnetHdr::parse(&b), Some(h));
        assert_eq!(VnetHdr::parse(&b[..9]), None);
    }

    #[test]
    fn segments_of_a_64k_super_packet() {
        let payload = 65535 - 32; // the largest IPv6 payload length
        let mut p = super_packet(payload, 0x10 | TCP_PSH | TCP_FIN | TCP_CWR);
        let mss = 1348;
        let mut segs = prepare(&tso(mss), &mut p).unwrap().unwrap();
        let n = segs.remaining();
        assert_eq!(n, payload.div_ceil(mss as usize));
        assert_eq!(segs.max_len(), 72 + 1348);
        let p = super_packet(payload, 0x10 | TCP_PSH | TCP_FIN | TCP_CWR);
        let mut out = [0u8; 1500];
        let mut data = Vec::new();
        let mut i = 0;
        while let Some(r) = segs.next_into(&mut out) {
            let len = r.unwrap();
            let s = &out[..len];
            assert!(tcp_ok(s), "segment {i}: bad checksum");
            assert_eq!(usize::from(u16::from_be_bytes([s[4], s[5]])), len - 40);
            assert_eq!(&s[..4], &p[..4]);
            assert_eq!(&s[6..44], &p[6..44]);
            let seq = u32::from_be_bytes([s[44], s[45], s[46], s[47]]);
            assert_eq!(seq, 0xffff_fff0u32.wrapping_add(data.len() as u32));
            assert_eq!(&s[48..53], &p[48..53], "ack and data offset");
            let last = i == n - 1;
            assert_eq!(s[53] & TCP_FIN != 0, last);
            assert_eq!(s[53] & TCP_PSH != 0, last);
            assert_eq!(s[53] & TCP_CWR != 0, i == 0);
            assert_eq!(s[53] & 0x10, 0x10, "ACK on every segment");
            assert_eq!(&s[54..56], &p[54..56], "window");
            assert_eq!(&s[60..72], &p[60..72], "options");
            if !last {
                assert_eq!(len, 72 + 1348);
            }
            data.extend_from_slice(&s[72..]);
            i += 1;
        }
        assert_eq!(i, n);
        assert_eq!(segs.remaining(), 0);
        assert_eq!(data, &p[72..]);
    }

    #[test]
    fn small_output_and_bad_headers() {
        let mut p = super_packet(3000, 0x10);
        let mut segs = prepare(&tso(1400), &mut p).unwrap().unwrap();
        assert_eq!(
            segs.next_into(&mut [0u8; 100]),
            Some(Err(Error::BufferTooSmall))
        );
        let mut q = p.clone();
        let mut h = tso(1400);
        h.csum_start = 20;
        assert_eq!(prepare(&h, &mut q).unwrap_err(), Error::Malformed);
        h.csum_start = 40;
        h.gso_size = 0;
        assert_eq!(prepare(&h, &mut q).unwrap_err(), Error::Malformed);
        h.gso_type = 3; // UDP (UFO): not asked for
        assert_eq!(prepare(&h, &mut q).unwrap_err(), Error::Unsupported);
        q.truncate(50);
        assert_eq!(prepare(&tso(1400), &mut q).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn header_only_super_packet_is_one_segment() {
        let mut p = super_packet(0, 0x10 | TCP_FIN);
        let mut segs = prepare(&tso(1000), &mut p).unwrap().unwrap();
        assert_eq!(segs.remaining(), 1);
        let mut out = [0u8; 200];
        assert_eq!(segs.next_into(&mut out), Some(Ok(72)));
        assert!(tcp_ok(&out[..72]));
        assert_eq!(out[53] & TCP_FIN, TCP_FIN);
        assert_eq!(segs.next_into(&mut out), None);
    }

    #[test]
    fn partial_checksum_completed() {
        // A UDP/IPv6 packet with an odd payload, its checksum field holding
        // the folded pseudo-header sum as the kernel leaves it.
        let mut p = vec![0u8; 40 + 8 + 13];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&21u16.to_be_bytes());
        p[6] = 17;
        p[8..24].copy_from_slice(&[0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p[24..40].copy_from_slice(&[0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p[40..42].copy_from_slice(&326u16.to_be_bytes());
        p[42..44].copy_from_slice(&326u16.to_be_bytes());
        p[44..46].copy_from_slice(&21u16.to_be_bytes());
        p[48..].copy_from_slice(b"hello, world!");
        let partial = fold(pseudo_sum(&p, 21, 17));
        p[46..48].copy_from_slice(&partial.to_be_bytes());
        let mut hdr = [0u8; VNET_HDR_LEN];
        VnetHdr {
            flags: F_NEEDS_CSUM,
            csum_start: 40,
            csum_offset: 6,
            ..VnetHdr::default()
        }
        .write(&mut hdr);
        let h = VnetHdr::parse(&hdr).unwrap();
        assert!(prepare(&h, &mut p).unwrap().is_none());
        let mut v = Vec::new();
        v.extend_from_slice(&p[8..40]);
        v.extend_from_slice(&[0, 0, 0, 21, 0, 0, 0, 17]);
        v.extend_from_slice(&p[40..]);
        assert_eq!(reference_csum(&v), 0);
        assert_eq!(complete_csum(&mut p, 40, 100), Err(Error::Malformed));
        assert_eq!(complete_csum(&mut p, usize::MAX, 6), Err(Error::Malformed));
    }

    #[test]
    fn sum_matches_reference_on_odd_lengths() {
        let d: Vec<u8> = (0..1001u32).map(|i| (i * 31 % 256) as u8).collect();
        // All ones: every 64-bit addition carries.
        let ones = vec![0xffu8; 1001];
        for d in [&d, &ones] {
            for len in [0, 1, 2, 3, 5, 7, 8, 9, 1000, 1001] {
                let want = reference_csum(&d[..len]);
                let got = finish(sum(&d[..len], 0));
                // 0 and 0xffff are the same number in ones' complement.
                assert!(got == want || (want == 0 && got == 0xffff), "len {len}");
            }
        }
    }

    /// The segments of a super-packet, as a sender's kernel would emit them.
    fn cut(payload: usize, flags: u8, mss: u16) -> Vec<Vec<u8>> {
        let mut p = super_packet(payload, flags);
        let mut segs = prepare(&tso(mss), &mut p).unwrap().unwrap();
        let mut out = vec![0u8; 65600];
        let mut v = Vec::new();
        while let Some(r) = segs.next_into(&mut out) {
            v.push(out[..r.unwrap()].to_vec());
        }
        v
    }

    #[test]
    fn coalesced_segments_cut_back_to_the_same() {
        let segs = cut(65535 - 32, 0x10 | TCP_PSH, 1348);
        let mut c = Coalescer::default();
        for s in &segs {
            assert!(c.push(s));
        }
        let frame = c.take().unwrap().to_vec();
        assert!(c.take().is_none());
        let hdr = VnetHdr::parse(&frame).unwrap();
        assert_eq!(
            hdr,
            VnetHdr {
                flags: F_NEEDS_CSUM,
                gso_type: GSO_TCPV6,
                hdr_len: 72,
                gso_size: 1348,
                csum_start: 40,
                csum_offset: 16,
            }
        );
        let mut merged = frame[VNET_HDR_LEN..].to_vec();
        assert_eq!(
            merged,
            super_packet(65535 - 32, 0x10 | TCP_PSH)[..merged.len()]
                .iter()
                .enumerate()
                .map(|(i, &b)| if (56..58).contains(&i) { merged[i] } else { b })
                .collect::<Vec<u8>>()
        );
        // The partial checksum, completed as the kernel would, is right.
        let mut full = merged.clone();
        complete_csum(&mut full, 40, 16).unwrap();
        assert!(tcp_ok(&full));
        // Cut again: the very same segments.
        let mut again = prepare(&hdr, &mut merged).unwrap().unwrap();
        let mut out = [0u8; 1500];
        for s in &segs {
            let n = again.next_into(&mut out).unwrap().unwrap();
            assert_eq!(&out[..n], &s[..]);
        }
        assert!(again.next_into(&mut out).is_none());
    }

    #[test]
    fn what_is_not_coalesced() {
        let segs = cut(4500, 0x10, 1000);
        let mut c = Coalescer::default();
        assert!(c.push(&segs[0]));
        assert!(!c.push(&segs[2]), "a gap in the sequence");
        let mut other = segs[1].clone();
        other[41] ^= 1; // another source port
        assert!(!c.push(&other));
        let mut bad = segs[1].clone();
        bad[100] ^= 1; // corrupted payload
        assert!(!c.push(&bad));
        let mut syn = segs[1].clone();
        syn[53] |= 0x02;
        assert!(!c.push(&syn));
        assert!(c.push(&segs[1]));
        assert!(c.push(&segs[2]));
        // A lone packet goes out unchanged behind a zero header.
        let mut c = Coalescer::default();
        assert!(c.push(&segs[4]));
        assert!(!c.push(&segs[0]), "after a short segment");
        let frame = c.take().unwrap();
        assert_eq!(&frame[..VNET_HDR_LEN], &[0; VNET_HDR_LEN]);
        assert_eq!(&frame[VNET_HDR_LEN..], &segs[4][..]);
        let pure_ack = &segs[0][..72];
        let mut ack = pure_ack.to_vec();
        ack[4..6].copy_from_slice(&32u16.to_be_bytes());
        assert!(!Coalescer::default().push(&ack), "no payload");
    }
}
