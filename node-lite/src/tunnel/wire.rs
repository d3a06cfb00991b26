//! Tunnel datagram formats: borrowed views for parsing, `emit_*` for building.
//!
//! Every datagram starts with a 4-byte header, `type (u8) ‖ 3 reserved zero bytes`,
//! as in WireGuard, so a datagram is classified (and most junk rejected) by its
//! first byte and length before any cryptography. Integers are little-endian
//! (WireGuard's convention; the selftest pins it on big-endian MIPS).
//!
//! | type | message | layout after the header | size |
//! |---|---|---|---|
//! | 1 | handshake initiation (Noise XX `-> e`) | sender ‖ noise ‖ mac1 ‖ mac2 | [`INIT_LEN`] |
//! | 2 | handshake response (`<- e, ee, s, es`) | sender ‖ receiver ‖ noise ‖ mac1 ‖ mac2 | [`RESP_MIN_LEN`]..=[`MAX_HANDSHAKE_LEN`] |
//! | 3 | handshake final (`-> s, se`) | receiver ‖ noise ‖ mac1 ‖ mac2 | [`FINAL_MIN_LEN`]..=[`MAX_HANDSHAKE_LEN`] |
//! | 4 | cookie reply | receiver ‖ nonce(24) ‖ sealed cookie(32) | [`COOKIE_REPLY_LEN`] |
//! | 5 | transport data (empty = keepalive) | receiver ‖ counter(u64) ‖ ciphertext ‖ tag | ≥ [`DATA_OVERHEAD`] |
//! | 6 | close (kill request/ack, encrypted like data) | receiver ‖ counter ‖ ciphertext(1) ‖ tag | [`CLOSE_LEN`] |
//!
//! Invariant: [`parse`] never panics and returns views whose fixed-size fields
//! are arrays, so no later accessor can panic either. Emitters write into a
//! caller-owned buffer and return `Error::BufferTooSmall` rather than panic.

use core::fmt;

/// Message type bytes.
pub const TYPE_HANDSHAKE_INIT: u8 = 1;
pub const TYPE_HANDSHAKE_RESP: u8 = 2;
pub const TYPE_HANDSHAKE_FINAL: u8 = 3;
pub const TYPE_COOKIE_REPLY: u8 = 4;
pub const TYPE_DATA: u8 = 5;
pub const TYPE_CLOSE: u8 = 6;

/// `type ‖ reserved[3]`.
pub const HEADER_LEN: usize = 4;
/// Keyed BLAKE2s-128 MACs (WireGuard's mac1/mac2).
pub const MAC_LEN: usize = 16;
/// Both MACs, at the end of every handshake message.
pub const MACS_LEN: usize = 2 * MAC_LEN;
/// ChaCha20-Poly1305 tag.
pub const TAG_LEN: usize = 16;
/// x25519 public key.
pub const KEY_LEN: usize = 32;

/// Noise XX message 1 is `e` plus a plaintext payload of zero padding: the
/// initiation is padded so that a spoofed one cannot make the responder send
/// back many times its size (the response carries a certificate).
pub const INIT_PADDING: usize = 184;
/// Noise part of the initiation.
pub const INIT_NOISE_LEN: usize = KEY_LEN + INIT_PADDING;
/// Handshake initiation, fixed size.
pub const INIT_LEN: usize = HEADER_LEN + 4 + INIT_NOISE_LEN + MACS_LEN;
/// Smallest Noise XX message 2: `e`, encrypted `s`, encrypted empty payload.
pub const RESP_NOISE_MIN_LEN: usize = KEY_LEN + KEY_LEN + TAG_LEN + TAG_LEN;
pub const RESP_MIN_LEN: usize = HEADER_LEN + 8 + RESP_NOISE_MIN_LEN + MACS_LEN;
/// Smallest Noise XX message 3: encrypted `s`, encrypted empty payload.
pub const FINAL_NOISE_MIN_LEN: usize = KEY_LEN + TAG_LEN + TAG_LEN;
pub const FINAL_MIN_LEN: usize = HEADER_LEN + 4 + FINAL_NOISE_MIN_LEN + MACS_LEN;
/// Handshake messages carry a certificate and an RSA signature (up to 4096
/// bits); larger datagrams are junk. IP fragmentation is acceptable here: it
/// happens once per handshake, never on the data path.
pub const MAX_HANDSHAKE_LEN: usize = 4096;
/// XChaCha20-Poly1305 nonce of the cookie reply.
pub const COOKIE_NONCE_LEN: usize = 24;
/// Cookie reply, fixed size.
pub const COOKIE_REPLY_LEN: usize = HEADER_LEN + 4 + COOKIE_NONCE_LEN + MAC_LEN + TAG_LEN;
/// `header ‖ receiver ‖ counter`, authenticated as AEAD associated data.
pub const DATA_HEADER_LEN: usize = HEADER_LEN + 4 + 8;
/// Bytes a transport message adds to an IP packet (header + tag), before UDP/IP.
pub const DATA_OVERHEAD: usize = DATA_HEADER_LEN + TAG_LEN;
/// Close message: one encrypted byte ([`CloseKind`]).
pub const CLOSE_LEN: usize = DATA_OVERHEAD + 1;

/// A wire-level failure. Deliberately coarse: junk is dropped, not diagnosed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter or longer than its type allows.
    Length,
    /// Unknown type byte or non-zero reserved bytes.
    Type,
    /// The output buffer cannot hold the message.
    BufferTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Length => "datagram length does not match its type",
            Error::Type => "unknown datagram type",
            Error::BufferTooSmall => "output buffer too small for the message",
        })
    }
}

impl std::error::Error for Error {}

/// A classified datagram, borrowing from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    HandshakeInit(HandshakeInit<'a>),
    HandshakeResp(HandshakeResp<'a>),
    HandshakeFinal(HandshakeFinal<'a>),
    CookieReply(CookieReply<'a>),
    /// Transport data or close: same framing, the type byte tells which.
    Data(Data<'a>),
}

/// Type 1. `sender` is the initiator's index for this handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeInit<'a> {
    pub sender: u32,
    pub noise: &'a [u8; INIT_NOISE_LEN],
    pub macs: Macs<'a>,
}

/// Type 2. `receiver` echoes the initiation's sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeResp<'a> {
    pub sender: u32,
    pub receiver: u32,
    pub noise: &'a [u8],
    pub macs: Macs<'a>,
}

/// Type 3. `receiver` echoes the response's sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeFinal<'a> {
    pub receiver: u32,
    pub noise: &'a [u8],
    pub macs: Macs<'a>,
}

/// The MACs of a handshake message and the bytes each covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Macs<'a> {
    /// Everything before mac1.
    pub mac1_input: &'a [u8],
    pub mac1: &'a [u8; MAC_LEN],
    /// Everything before mac2 (includes mac1).
    pub mac2_input: &'a [u8],
    pub mac2: &'a [u8; MAC_LEN],
}

/// Type 4: sent instead of a response when the responder is under load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CookieReply<'a> {
    pub receiver: u32,
    pub nonce: &'a [u8; COOKIE_NONCE_LEN],
    pub sealed_cookie: &'a [u8; MAC_LEN + TAG_LEN],
}

/// Types 5 and 6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Data<'a> {
    /// `TYPE_DATA` or `TYPE_CLOSE`.
    pub kind: u8,
    pub receiver: u32,
    pub counter: u64,
    /// The AEAD associated data: the first [`DATA_HEADER_LEN`] bytes.
    pub header: &'a [u8; DATA_HEADER_LEN],
    /// Ciphertext followed by the tag (at least [`TAG_LEN`] bytes).
    pub sealed: &'a [u8],
}

impl Data<'_> {
    /// Length of the plaintext once opened.
    pub fn plaintext_len(&self) -> usize {
        self.sealed.len() - TAG_LEN
    }
}

/// What a close message asks for (its one encrypted byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseKind {
    /// The sender tears the tunnel down and asks for an acknowledgement.
    Request = 1,
    /// The answer to a request.
    Ack = 2,
}

impl CloseKind {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(CloseKind::Request),
            2 => Some(CloseKind::Ack),
            _ => None,
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// `b` as an array; the lengths were checked by `parse`, so `Err` never
/// happens in practice, but the check costs nothing and keeps parse panic-free.
fn array<const N: usize>(b: &[u8]) -> Result<&[u8; N], Error> {
    b.try_into().map_err(|_| Error::Length)
}

/// Callers guarantee `msg.len() >= MACS_LEN`.
fn macs(msg: &[u8]) -> Result<Macs<'_>, Error> {
    let n = msg.len();
    Ok(Macs {
        mac1_input: &msg[..n - MACS_LEN],
        mac1: array(&msg[n - MACS_LEN..n - MAC_LEN])?,
        mac2_input: &msg[..n - MAC_LEN],
        mac2: array(&msg[n - MAC_LEN..])?,
    })
}

/// Classify and split a datagram. Checks the header and the length bounds of
/// its type; nothing cryptographic.
pub fn parse(d: &[u8]) -> Result<Message<'_>, Error> {
    if d.len() < HEADER_LEN {
        return Err(Error::Length);
    }
    if d[1..4] != [0, 0, 0] {
        return Err(Error::Type);
    }
    let len = d.len();
    match d[0] {
        TYPE_HANDSHAKE_INIT => {
            if len != INIT_LEN {
                return Err(Error::Length);
            }
            Ok(Message::HandshakeInit(HandshakeInit {
                sender: u32_at(d, 4),
                noise: array(&d[8..8 + INIT_NOISE_LEN])?,
                macs: macs(d)?,
            }))
        }
        TYPE_HANDSHAKE_RESP => {
            if !(RESP_MIN_LEN..=MAX_HANDSHAKE_LEN).contains(&len) {
                return Err(Error::Length);
            }
            Ok(Message::HandshakeResp(HandshakeResp {
                sender: u32_at(d, 4),
                receiver: u32_at(d, 8),
                noise: &d[12..len - MACS_LEN],
                macs: macs(d)?,
            }))
        }
        TYPE_HANDSHAKE_FINAL => {
            if !(FINAL_MIN_LEN..=MAX_HANDSHAKE_LEN).contains(&len) {
                return Err(Error::Length);
            }
            Ok(Message::HandshakeFinal(HandshakeFinal {
                receiver: u32_at(d, 4),
                noise: &d[8..len - MACS_LEN],
                macs: macs(d)?,
            }))
        }
        TYPE_COOKIE_REPLY => {
            if len != COOKIE_REPLY_LEN {
                return Err(Error::Length);
            }
            Ok(Message::CookieReply(CookieReply {
                receiver: u32_at(d, 4),
                nonce: array(&d[8..8 + COOKIE_NONCE_LEN])?,
                sealed_cookie: array(&d[8 + COOKIE_NONCE_LEN..])?,
            }))
        }
        kind @ (TYPE_DATA | TYPE_CLOSE) => {
            if len < DATA_OVERHEAD || (kind == TYPE_CLOSE && len != CLOSE_LEN) {
                return Err(Error::Length);
            }
            let mut c = [0; 8];
            c.copy_from_slice(&d[8..16]);
            Ok(Message::Data(Data {
                kind,
                receiver: u32_at(d, 4),
                counter: u64::from_le_bytes(c),
                header: array(&d[..DATA_HEADER_LEN])?,
                sealed: &d[DATA_HEADER_LEN..],
            }))
        }
        _ => Err(Error::Type),
    }
}

/// The receiver index of any message but an initiation, for demultiplexing.
pub fn receiver_index(m: &Message<'_>) -> Option<u32> {
    match m {
        Message::HandshakeInit(_) => None,
        Message::HandshakeResp(r) => Some(r.receiver),
        Message::HandshakeFinal(f) => Some(f.receiver),
        Message::CookieReply(c) => Some(c.receiver),
        Message::Data(d) => Some(d.receiver),
    }
}

fn header(out: &mut [u8], kind: u8) {
    out[0] = kind;
    out[1..4].fill(0);
}

/// Write an initiation with zeroed MACs; returns [`INIT_LEN`].
/// `noise` is the Noise message 1 (exactly [`INIT_NOISE_LEN`] bytes).
pub fn emit_init(out: &mut [u8], sender: u32, noise: &[u8]) -> Result<usize, Error> {
    if noise.len() != INIT_NOISE_LEN {
        return Err(Error::Length);
    }
    if out.len() < INIT_LEN {
        return Err(Error::BufferTooSmall);
    }
    header(out, TYPE_HANDSHAKE_INIT);
    out[4..8].copy_from_slice(&sender.to_le_bytes());
    out[8..8 + INIT_NOISE_LEN].copy_from_slice(noise);
    out[INIT_LEN - MACS_LEN..INIT_LEN].fill(0);
    Ok(INIT_LEN)
}

/// Write a response with zeroed MACs; returns its length.
pub fn emit_resp(out: &mut [u8], sender: u32, receiver: u32, noise: &[u8]) -> Result<usize, Error> {
    let len = 12 + noise.len() + MACS_LEN;
    if !(RESP_MIN_LEN..=MAX_HANDSHAKE_LEN).contains(&len) {
        return Err(Error::Length);
    }
    if out.len() < len {
        return Err(Error::BufferTooSmall);
    }
    header(out, TYPE_HANDSHAKE_RESP);
    out[4..8].copy_from_slice(&sender.to_le_bytes());
    out[8..12].copy_from_slice(&receiver.to_le_bytes());
    out[12..12 + noise.len()].copy_from_slice(noise);
    out[len - MACS_LEN..len].fill(0);
    Ok(len)
}

/// Write a final handshake message with zeroed MACs; returns its length.
pub fn emit_final(out: &mut [u8], receiver: u32, noise: &[u8]) -> Result<usize, Error> {
    let len = 8 + noise.len() + MACS_LEN;
    if !(FINAL_MIN_LEN..=MAX_HANDSHAKE_LEN).contains(&len) {
        return Err(Error::Length);
    }
    if out.len() < len {
        return Err(Error::BufferTooSmall);
    }
    header(out, TYPE_HANDSHAKE_FINAL);
    out[4..8].copy_from_slice(&receiver.to_le_bytes());
    out[8..8 + noise.len()].copy_from_slice(noise);
    out[len - MACS_LEN..len].fill(0);
    Ok(len)
}

/// Write a cookie reply; returns [`COOKIE_REPLY_LEN`].
pub fn emit_cookie_reply(
    out: &mut [u8],
    receiver: u32,
    nonce: &[u8; COOKIE_NONCE_LEN],
    sealed_cookie: &[u8; MAC_LEN + TAG_LEN],
) -> Result<usize, Error> {
    if out.len() < COOKIE_REPLY_LEN {
        return Err(Error::BufferTooSmall);
    }
    header(out, TYPE_COOKIE_REPLY);
    out[4..8].copy_from_slice(&receiver.to_le_bytes());
    out[8..8 + COOKIE_NONCE_LEN].copy_from_slice(nonce);
    out[8 + COOKIE_NONCE_LEN..COOKIE_REPLY_LEN].copy_from_slice(sealed_cookie);
    Ok(COOKIE_REPLY_LEN)
}

/// Write the header of a data or close message (`kind`) into `out[..DATA_HEADER_LEN]`.
/// The caller seals the payload behind it.
pub fn emit_data_header(
    out: &mut [u8],
    kind: u8,
    receiver: u32,
    counter: u64,
) -> Result<(), Error> {
    if out.len() < DATA_HEADER_LEN {
        return Err(Error::BufferTooSmall);
    }
    header(out, kind);
    out[4..8].copy_from_slice(&receiver.to_le_bytes());
    out[8..16].copy_from_slice(&counter.to_le_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keepalive to receiver 0x04030201 with counter 7 and a dummy tag.
    static KEEPALIVE: [u8; 32] = [
        5, 0, 0, 0, 1, 2, 3, 4, 7, 0, 0, 0, 0, 0, 0, 0, //
        0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
        0xaa,
    ];

    #[test]
    fn deconstruct_keepalive() {
        let Ok(Message::Data(d)) = parse(&KEEPALIVE) else {
            panic!("not data")
        };
        assert_eq!((d.kind, d.receiver, d.counter), (TYPE_DATA, 0x0403_0201, 7));
        assert_eq!(d.plaintext_len(), 0);
        assert_eq!(&d.header[..], &KEEPALIVE[..16]);
    }

    #[test]
    fn construct_keepalive() {
        let mut out = [0xaa; 32];
        emit_data_header(&mut out, TYPE_DATA, 0x0403_0201, 7).unwrap();
        assert_eq!(out, KEEPALIVE);
    }

    #[test]
    fn sizes() {
        assert_eq!(INIT_LEN, 256);
        assert_eq!(COOKIE_REPLY_LEN, 64);
        assert_eq!(DATA_OVERHEAD, 32);
        assert_eq!(RESP_MIN_LEN, 140);
        assert_eq!(FINAL_MIN_LEN, 104);
    }

    #[test]
    fn handshake_round_trips() {
        let mut buf = [0u8; MAX_HANDSHAKE_LEN];
        let n = emit_init(&mut buf, 9, &[3; INIT_NOISE_LEN]).unwrap();
        let Ok(Message::HandshakeInit(i)) = parse(&buf[..n]) else {
            panic!()
        };
        assert_eq!(
            (i.sender, i.noise[0], i.macs.mac1_input.len()),
            (9, 3, n - 32)
        );
        assert_eq!(i.macs.mac2_input.len(), n - 16);

        let n = emit_resp(&mut buf, 5, 9, &[4; 500]).unwrap();
        let Ok(Message::HandshakeResp(r)) = parse(&buf[..n]) else {
            panic!()
        };
        assert_eq!((r.sender, r.receiver, r.noise), (5, 9, &[4u8; 500][..]));
        assert_eq!(receiver_index(&Message::HandshakeResp(r)), Some(9));

        let n = emit_final(&mut buf, 5, &[6; 300]).unwrap();
        let Ok(Message::HandshakeFinal(f)) = parse(&buf[..n]) else {
            panic!()
        };
        assert_eq!((f.receiver, f.noise.len()), (5, 300));

        let n = emit_cookie_reply(&mut buf, 77, &[1; 24], &[2; 32]).unwrap();
        let Ok(Message::CookieReply(c)) = parse(&buf[..n]) else {
            panic!()
        };
        assert_eq!((c.receiver, c.nonce[23], c.sealed_cookie[31]), (77, 1, 2));
    }

    #[test]
    fn impossible_lengths_and_types() {
        assert_eq!(parse(&[]), Err(Error::Length));
        assert_eq!(parse(&[5, 0, 0]), Err(Error::Length));
        assert_eq!(parse(&KEEPALIVE[..31]), Err(Error::Length));
        let mut bad = KEEPALIVE;
        bad[2] = 1;
        assert_eq!(parse(&bad), Err(Error::Type));
        bad = KEEPALIVE;
        bad[0] = 0;
        assert_eq!(parse(&bad), Err(Error::Type));
        bad[0] = 7;
        assert_eq!(parse(&bad), Err(Error::Type));
        bad[0] = TYPE_CLOSE;
        assert_eq!(parse(&bad), Err(Error::Length));
        assert_eq!(parse(&[1, 0, 0, 0]), Err(Error::Length));
        assert_eq!(parse(&[1; INIT_LEN + 1][..]), Err(Error::Type));
        let mut init = [0u8; INIT_LEN + 1];
        init[0] = 1;
        assert_eq!(parse(&init), Err(Error::Length));
        assert!(parse(&init[..INIT_LEN]).is_ok());
        let mut resp = vec![0u8; MAX_HANDSHAKE_LEN + 1];
        resp[0] = 2;
        assert_eq!(parse(&resp), Err(Error::Length));
        assert!(parse(&resp[..MAX_HANDSHAKE_LEN]).is_ok());
        assert!(parse(&resp[..RESP_MIN_LEN]).is_ok());
        assert_eq!(parse(&resp[..RESP_MIN_LEN - 1]), Err(Error::Length));
        resp[0] = 3;
        assert!(parse(&resp[..FINAL_MIN_LEN]).is_ok());
        assert_eq!(parse(&resp[..FINAL_MIN_LEN - 1]), Err(Error::Length));
        resp[0] = 4;
        assert!(parse(&resp[..COOKIE_REPLY_LEN]).is_ok());
        assert_eq!(parse(&resp[..COOKIE_REPLY_LEN + 1]), Err(Error::Length));
    }

    #[test]
    fn emit_refuses_small_buffers() {
        let mut small = [0u8; 20];
        assert_eq!(
            emit_init(&mut small, 1, &[0; INIT_NOISE_LEN]),
            Err(Error::BufferTooSmall)
        );
        assert_eq!(
            emit_resp(&mut small, 1, 2, &[0; 200]),
            Err(Error::BufferTooSmall)
        );
        assert_eq!(emit_resp(&mut small, 1, 2, &[0; 2]), Err(Error::Length));
        assert_eq!(
            emit_data_header(&mut small[..10], TYPE_DATA, 1, 2),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn every_prefix_of_every_message_parses_without_panic() {
        let mut buf = [0u8; 1200];
        for kind in 0..=8u8 {
            buf[0] = kind;
            for n in 0..buf.len() {
                let _ = parse(&buf[..n]);
            }
        }
    }
}
