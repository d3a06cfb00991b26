//! The few IPv6 facts the data path needs: header fields of a packet read
//! from the TUN device or a tunnel, the inner MTU, the ICMPv6 errors a router
//! sends (RFC 4443: Packet Too Big for packets that do not fit, Time Exceeded
//! when the hop limit runs out, Destination Unreachable with no route), and
//! the UDP datagrams the node itself sends inside tunnels (Babel, the control
//! protocol).

use std::net::Ipv6Addr;

pub const HEADER_LEN: usize = 40;
/// The IPv6 minimum MTU (RFC 8200 §5): every link must carry this much.
pub const MIN_MTU: u32 = 1280;
const NEXT_ICMPV6: u8 = 58;
pub const NEXT_UDP: u8 = 17;
pub const NEXT_TCP: u8 = 6;
const UDP_HEADER_LEN: usize = 8;

/// An ICMPv6 error a router sends about a packet it could not forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// Destination Unreachable, "no route to destination" (§3.1, code 0).
    NoRoute,
    /// Packet Too Big (§3.2), with the MTU of the next hop.
    TooBig(u32),
    /// Time Exceeded, "hop limit exceeded in transit" (§3.3, code 0): what
    /// makes a router show in traceroute.
    HopLimit,
}

impl IcmpError {
    /// Type, code and the 4-octet field after the checksum.
    fn fields(self) -> (u8, u8, u32) {
        match self {
            IcmpError::NoRoute => (1, 0, 0),
            IcmpError::TooBig(mtu) => (2, 0, mtu),
            IcmpError::HopLimit => (3, 0, 0),
        }
    }
}

/// A checked view of an IPv6 header at the start of `buf`.
#[derive(Clone, Copy, Debug)]
pub struct Header<'a>(&'a [u8]);

impl<'a> Header<'a> {
    /// None unless `buf` holds a whole IPv6 header whose payload length fits.
    pub fn parse(buf: &'a [u8]) -> Option<Self> {
        if buf.len() < HEADER_LEN || buf[0] >> 4 != 6 {
            return None;
        }
        let h = Header(buf);
        (HEADER_LEN + h.payload_len() <= buf.len()).then_some(h)
    }

    pub fn payload_len(&self) -> usize {
        u16::from_be_bytes([self.0[4], self.0[5]]) as usize
    }

    pub fn next_header(&self) -> u8 {
        self.0[6]
    }

    pub fn hop_limit(&self) -> u8 {
        self.0[7]
    }

    fn addr(&self, at: usize) -> Ipv6Addr {
        let mut a = [0; 16];
        a.copy_from_slice(&self.0[at..at + 16]);
        Ipv6Addr::from(a)
    }

    pub fn src(&self) -> Ipv6Addr {
        self.addr(8)
    }

    pub fn dst(&self) -> Ipv6Addr {
        self.addr(24)
    }
}

/// The MTU of the overlay for an underlay link of `underlay_mtu`, carrying
/// tunnels over IPv4 or IPv6 + UDP with `tunnel_overhead` bytes of their own.
/// Never below 1280: below that the outer packets are fragmented instead
/// (IPv6 requires it of every link).
pub fn inner_mtu(underlay_mtu: u32, over_ipv6: bool, tunnel_overhead: u32) -> u32 {
    let outer = if over_ipv6 { 40 } else { 20 } + 8 + tunnel_overhead;
    underlay_mtu.saturating_sub(outer).max(MIN_MTU)
}

/// The Internet checksum of the upper-layer message `msg` (ICMPv6, UDP)
/// from `src` to `dst`, with the IPv6 pseudo-header (RFC 8200 §8.1); 0 when
/// `msg` holds a right one.
pub fn checksum(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, msg: &[u8]) -> u16 {
    !fold(upper_sum(src, dst, next_header, msg))
}

/// The [`sum`] of the IPv6 pseudo-header and `msg`.
fn upper_sum(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, msg: &[u8]) -> u64 {
    let acc = sum(&src.octets(), msg.len() as u64 + u64::from(next_header));
    sum(msg, sum(&dst.octets(), acc))
}

/// Ones' complement sum of `data` as big-endian 16-bit words (odd length:
/// padded with a zero byte), added to `acc`. Not folded. `data` must start
/// on an even offset of what is summed.
pub fn sum(data: &[u8], acc: u64) -> u64 {
    // 64-bit words with the carry added back (ones' complement in 64 bits,
    // folded to 16 later): a quarter of the additions of 16-bit words, and
    // this runs over every byte of the data path at opt-level "z".
    let add = |acc: u64, w: [u8; 8]| {
        let (s, carry) = acc.overflowing_add(u64::from_be_bytes(w));
        s + u64::from(carry)
    };
    let mut words = data.chunks_exact(8);
    let mut acc = acc;
    for w in &mut words {
        acc = add(acc, w.try_into().unwrap_or_default());
    }
    let rest = words.remainder();
    let mut tail = [0u8; 8];
    tail[..rest.len()].copy_from_slice(rest);
    add(acc, tail)
}

/// A [`sum`] folded to 16 bits, not complemented.
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Fold a [`sum`] to 16 bits and complement it: the checksum field. A zero
/// result is written as 0xffff, the same value in ones' complement and the
/// only valid one for UDP over IPv6 (RFC 8200 §8.1: zero means none).
pub fn finish(acc: u64) -> u16 {
    match !fold(acc) {
        0 => 0xffff,
        c => c,
    }
}

pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, msg: &[u8]) -> u16 {
    checksum(src, dst, NEXT_ICMPV6, msg)
}

/// Write an IPv6 header for `payload_len` bytes of `next_header` into `out`.
fn write_header(
    out: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    hop_limit: u8,
    payload_len: usize,
) {
    out[0] = 0x60;
    out[1..4].fill(0);
    out[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    out[6] = next_header;
    out[7] = hop_limit;
    out[8..24].copy_from_slice(&src.octets());
    out[24..40].copy_from_slice(&dst.octets());
}

/// A UDP datagram inside an IPv6 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Udp<'a> {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub hop_limit: u8,
    pub payload: &'a [u8],
}

impl<'a> Udp<'a> {
    /// The UDP datagram in `packet`, if it is one (no extension headers, as
    /// the node's own messages never have them) with consistent lengths.
    /// The checksum is not checked: these arrive through an authenticated
    /// tunnel, which already guarantees integrity.
    pub fn parse(packet: &'a [u8]) -> Option<Self> {
        let h = Header::parse(packet)?;
        if h.next_header() != NEXT_UDP || h.payload_len() < UDP_HEADER_LEN {
            return None;
        }
        let u = &packet[HEADER_LEN..HEADER_LEN + h.payload_len()];
        let len = u16::from_be_bytes([u[4], u[5]]) as usize;
        if len < UDP_HEADER_LEN || len > u.len() {
            return None;
        }
        Some(Udp {
            src: h.src(),
            dst: h.dst(),
            src_port: u16::from_be_bytes([u[0], u[1]]),
            dst_port: u16::from_be_bytes([u[2], u[3]]),
            hop_limit: h.hop_limit(),
            payload: &u[UDP_HEADER_LEN..len],
        })
    }

    /// Write this datagram as an IPv6 packet into `out`; its length, or
    /// None if `out` is too small.
    pub fn write(&self, out: &mut [u8]) -> Option<usize> {
        let udp_len = UDP_HEADER_LEN + self.payload.len();
        let total = HEADER_LEN + udp_len;
        if out.len() < total || udp_len > usize::from(u16::MAX) {
            return None;
        }
        write_header(out, self.src, self.dst, NEXT_UDP, self.hop_limit, udp_len);
        let u = &mut out[HEADER_LEN..total];
        u[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        u[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        u[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        u[6..8].fill(0);
        u[8..].copy_from_slice(self.payload);
        let sum = finish(upper_sum(self.src, self.dst, NEXT_UDP, u));
        u[6..8].copy_from_slice(&sum.to_be_bytes());
        Some(total)
    }
}

/// Write into `out` the ICMPv6 error `kind` that `router` sends back about
/// `packet`; returns its length. None when RFC 4443 §2.4 forbids an error
/// (the packet is itself an ICMPv6 error, comes from an unspecified or
/// multicast source, or, but for Packet Too Big, went to a multicast group)
/// or when `out` cannot hold the minimum.
pub fn icmp_error(
    router: Ipv6Addr,
    packet: &[u8],
    kind: IcmpError,
    out: &mut [u8],
) -> Option<usize> {
    let h = Header::parse(packet)?;
    let src = h.src();
    if src.is_unspecified() || src.is_multicast() {
        return None;
    }
    if h.dst().is_multicast() && !matches!(kind, IcmpError::TooBig(_)) {
        return None;
    }
    // ICMPv6 errors (types < 128) never trigger errors, to avoid storms.
    if h.next_header() == NEXT_ICMPV6 && packet.get(HEADER_LEN).is_some_and(|t| *t < 128) {
        return None;
    }
    // As much of the offending packet as fits in the minimum MTU.
    let quoted = packet.len().min(MIN_MTU as usize - HEADER_LEN - 8);
    let total = HEADER_LEN + 8 + quoted;
    if out.len() < total {
        return None;
    }
    let msg_len = 8 + quoted;
    write_header(out, router, src, NEXT_ICMPV6, 64, msg_len);
    let msg = &mut out[HEADER_LEN..total];
    let (kind, code, field) = kind.fields();
    msg[0] = kind;
    msg[1] = code;
    msg[2..4].fill(0);
    msg[4..8].copy_from_slice(&field.to_be_bytes());
    msg[8..].copy_from_slice(&packet[..quoted]);
    let sum = icmpv6_checksum(router, src, msg);
    msg[2..4].copy_from_slice(&sum.to_be_bytes());
    Some(total)
}

/// [`icmp_error`] for a packet larger than `mtu`.
pub fn packet_too_big(router: Ipv6Addr, packet: &[u8], mtu: u32, out: &mut [u8]) -> Option<usize> {
    icmp_error(router, packet, IcmpError::TooBig(mtu), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(src: &str, dst: &str, next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(&src.parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&dst.parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn udp_round_trip_with_a_checksum_the_kernel_accepts() {
        let a: Ipv6Addr = "fe80::1".parse().unwrap();
        let b: Ipv6Addr = "ff02::1:6".parse().unwrap();
        let u = Udp {
            src: a,
            dst: b,
            src_port: 6696,
            dst_port: 6696,
            hop_limit: 1,
            payload: b"hello",
        };
        let mut out = [0u8; 64];
        let n = u.write(&mut out).unwrap();
        assert_eq!(n, 40 + 8 + 5);
        assert_eq!(Udp::parse(&out[..n]), Some(u));
        // Summing the datagram with its checksum in place gives zero.
        assert_eq!(checksum(a, b, NEXT_UDP, &out[40..n]), 0);
        assert!(u.write(&mut out[..52]).is_none());
        // Truncated or lying UDP lengths are refused.
        assert!(Udp::parse(&out[..n - 1]).is_none());
        out[44..46].copy_from_slice(&100u16.to_be_bytes());
        assert!(Udp::parse(&out[..n]).is_none());
        let icmp = packet("2001:db8::1", "2001:db8::2", 58, &[0; 8]);
        assert!(Udp::parse(&icmp).is_none());
    }

    #[test]
    fn header_fields_and_bad_input() {
        let p = packet("2001:db8::1", "2001:db8::2", 17, &[1, 2, 3]);
        let h = Header::parse(&p).unwrap();
        assert_eq!(h.src(), "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(h.dst(), "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            (h.payload_len(), h.next_header(), h.hop_limit()),
            (3, 17, 64)
        );
        assert!(Header::parse(&p[..39]).is_none());
        assert!(
            Header::parse(&p[..42]).is_none(),
            "payload length beyond the buffer"
        );
        let mut v4 = p.clone();
        v4[0] = 0x45;
        assert!(Header::parse(&v4).is_none());
    }

    #[test]
    fn mtu_arithmetic() {
        assert_eq!(inner_mtu(1500, false, 32), 1500 - 20 - 8 - 32);
        assert_eq!(inner_mtu(1500, true, 32), 1500 - 40 - 8 - 32);
        assert_eq!(inner_mtu(1280, false, 32), MIN_MTU);
        assert_eq!(inner_mtu(0, true, 32), MIN_MTU);
    }

    #[test]
    fn checksum_of_a_known_message() {
        // An ICMPv6 echo request fe80::1 -> ff02::1, id 0x1234 seq 1, no data;
        // checksum computed independently (Python, RFC 1071 algorithm).
        let msg = [128, 0, 0, 0, 0x12, 0x34, 0, 1];
        let sum = icmpv6_checksum("fe80::1".parse().unwrap(), "ff02::1".parse().unwrap(), &msg);
        assert_eq!(sum, 0x7002);
    }

    #[test]
    fn packet_too_big_quotes_and_checksums() {
        let router: Ipv6Addr = "2001:db8:42:1::1".parse().unwrap();
        let big = packet("2001:db8:42:2::7", "2001:db8:42:9::1", 17, &[0xab; 1452]);
        let mut out = [0u8; 1500];
        let n = packet_too_big(router, &big, 1400, &mut out).unwrap();
        assert_eq!(n, MIN_MTU as usize);
        let h = Header::parse(&out[..n]).unwrap();
        assert_eq!(
            (h.src(), h.dst()),
            (router, "2001:db8:42:2::7".parse().unwrap())
        );
        assert_eq!(h.payload_len(), n - HEADER_LEN);
        assert_eq!(&out[40..48], &[2, 0, out[42], out[43], 0, 0, 0x05, 0x78]);
        assert_eq!(&out[48..n], &big[..n - 48]);
        // A correct checksum makes the sum over the message (with it) zero.
        assert_eq!(icmpv6_checksum(router, h.dst(), &out[40..n]), 0);
        // Small packets are quoted whole.
        let small = packet("2001:db8:42:2::7", "2001:db8:42:9::1", 17, &[1; 10]);
        assert_eq!(
            packet_too_big(router, &small, 1300, &mut out),
            Some(48 + 50)
        );
    }

    #[test]
    fn no_error_about_errors_or_from_nowhere() {
        let router: Ipv6Addr = "2001:db8:42:1::1".parse().unwrap();
        let mut out = [0u8; 1500];
        let err = packet("2001:db8::7", "2001:db8::1", 58, &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(packet_too_big(router, &err, 1300, &mut out), None);
        let echo = packet(
            "2001:db8::7",
            "2001:db8::1",
            58,
            &[128, 0, 0, 0, 0, 0, 0, 0],
        );
        assert!(packet_too_big(router, &echo, 1300, &mut out).is_some());
        let anon = packet("::", "2001:db8::1", 17, &[0; 8]);
        assert_eq!(packet_too_big(router, &anon, 1300, &mut out), None);
        let mcast = packet("ff02::1", "2001:db8::1", 17, &[0; 8]);
        assert_eq!(packet_too_big(router, &mcast, 1300, &mut out), None);
        assert_eq!(packet_too_big(router, &echo, 1300, &mut out[..40]), None);
    }

    #[test]
    fn time_exceeded_and_no_route() {
        let router: Ipv6Addr = "2001:db8:42:1::1".parse().unwrap();
        let probe = packet("2001:db8:42:2::7", "2001:db8:42:9::1", 17, &[9; 24]);
        let mut out = [0u8; 1500];
        for (kind, head) in [
            (IcmpError::HopLimit, [3u8, 0]),
            (IcmpError::NoRoute, [1u8, 0]),
        ] {
            let n = icmp_error(router, &probe, kind, &mut out).unwrap();
            assert_eq!(n, 48 + probe.len());
            assert_eq!(&out[40..42], &head);
            assert_eq!(&out[44..48], &[0; 4]);
            assert_eq!(&out[48..n], &probe[..]);
            let h = Header::parse(&out[..n]).unwrap();
            assert_eq!(h.dst(), "2001:db8:42:2::7".parse::<Ipv6Addr>().unwrap());
            assert_eq!(icmpv6_checksum(router, h.dst(), &out[40..n]), 0);
        }
        // Not about packets to a group, but for Packet Too Big (§2.4 e).
        let group = packet("2001:db8:42:2::7", "ff0e::1", 17, &[9; 24]);
        assert_eq!(
            icmp_error(router, &group, IcmpError::HopLimit, &mut out),
            None
        );
        assert!(icmp_error(router, &group, IcmpError::TooBig(1280), &mut out).is_some());
    }
}
