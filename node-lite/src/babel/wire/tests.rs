//! Wire tests against packets captured from two babeld 1.12.1 instances
//! (`testdata/capture.sh`; each `.cap` record is src, dst, length, payload).

use std::net::Ipv6Addr;

use super::*;

pub(crate) struct Captured<'a> {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub payload: &'a [u8],
}

pub(crate) fn records(cap: &[u8]) -> Vec<Captured<'_>> {
    let mut out = Vec::new();
    let mut rest = cap;
    while rest.len() >= 34 {
        let mut a = [0; 16];
        let mut b = [0; 16];
        a.copy_from_slice(&rest[..16]);
        b.copy_from_slice(&rest[16..32]);
        let n = u16::from_be_bytes([rest[32], rest[33]]) as usize;
        out.push(Captured {
            src: Ipv6Addr::from(a),
            dst: Ipv6Addr::from(b),
            payload: &rest[34..34 + n],
        });
        rest = &rest[34 + n..];
    }
    assert!(rest.is_empty(), "trailing bytes in capture");
    out
}

pub(crate) const PLAIN: &[u8] = include_bytes!("../testdata/plain.cap");
pub(crate) const TUNNEL: &[u8] = include_bytes!("../testdata/tunnel.cap");
pub(crate) const BLAKE2S: &[u8] = include_bytes!("../testdata/blake2s.cap");
pub(crate) const SHA256: &[u8] = include_bytes!("../testdata/sha256.cap");
pub(crate) const SRCSPEC: &[u8] = include_bytes!("../testdata/srcspec.cap");
const ALL: [(&str, &[u8]); 5] = [
    ("plain", PLAIN),
    ("tunnel", TUNNEL),
    ("blake2s", BLAKE2S),
    ("sha256", SHA256),
    ("srcspec", SRCSPEC),
];

fn p(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix::from_addr(a.parse().unwrap(), l.parse().unwrap())
}

fn node_a() -> Ipv6Addr {
    "fe80::ff:fe00:1".parse().unwrap()
}

#[test]
fn every_captured_tlv_reencodes_octet_for_octet() {
    let mut n = 0;
    for (name, cap) in ALL {
        let recs = records(cap);
        assert!(recs.len() > 15, "{name}: too few packets captured");
        for r in recs {
            let pkt = Packet::new_checked(r.payload).unwrap();
            let mut buf = [0u8; 1500];
            let mut b = Builder::new(&mut buf, 0).unwrap();
            for t in pkt.tlvs() {
                b.push(&t.unwrap_or_else(|e| panic!("{name}: {e}")))
                    .unwrap();
            }
            b.finish_body();
            for t in pkt.trailer_tlvs() {
                b.push(&t.unwrap()).unwrap();
            }
            let len = b.finish();
            assert_eq!(&buf[..len], r.payload, "{name}");
            n += 1;
        }
    }
    assert!(n > 100);
}

#[test]
fn every_captured_body_decodes_without_error() {
    for (name, cap) in ALL {
        for r in records(cap) {
            let pkt = Packet::new_checked(r.payload).unwrap();
            for m in Decoder::new(pkt.body()) {
                m.unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
}

fn updates_from(cap: &[u8], src: Ipv6Addr) -> Vec<UpdateMsg> {
    let mut out = Vec::new();
    for r in records(cap).into_iter().filter(|r| r.src == src) {
        let pkt = Packet::new_checked(r.payload).unwrap();
        for m in Decoder::new(pkt.body()) {
            if let Message::Update(u) = m.unwrap() {
                out.push(u);
            }
        }
    }
    out
}

#[test]
fn prefix_compression_and_router_id_flag_decode_to_full_prefixes() {
    let ups = updates_from(PLAIN, node_a());
    let id = RouterId([0, 0, 0, 0, 0, 0, 0, 0x0a]);
    for want in [
        "2001:db8:1::/48",
        "2001:db8:1:1::/64",
        "2001:db8:1:2::/64",
        "2001:db8:1::a/128",
    ] {
        let u = ups
            .iter()
            .find(|u| u.prefix == Some(p(want)) && u.metric < INFINITY)
            .unwrap_or_else(|| panic!("no update for {want}"));
        assert_eq!(u.router_id, Some(id));
        assert_eq!(u.src_prefix, Prefix::DEFAULT);
        assert_eq!(u.metric, 0, "originated routes have metric 0");
        assert_eq!(u.interval, 400, "update interval is 4 hello intervals (cs)");
    }
    // The /128 whose low half is the router-id is sent with the router-id flag.
    assert!(ups.iter().any(|u| u.flags & flag::ROUTER_ID != 0));
    // Some Update really omitted octets (otherwise this test proves nothing).
    let mut omitted = false;
    for r in records(PLAIN) {
        for t in Packet::new_checked(r.payload).unwrap().tlvs() {
            if let Ok(Tlv::Update { omitted: o, .. }) = t {
                omitted |= o > 0;
            }
        }
    }
    assert!(omitted);
    // A prefix retraction (babeld sends one for ::/0 after a kernel route change).
    assert!(ups
        .iter()
        .any(|u| u.prefix.is_some() && u.metric == INFINITY && u.router_id == Some(id)));
    // Startup wildcard retraction.
    assert!(ups
        .iter()
        .any(|u| u.prefix.is_none() && u.metric == INFINITY));
}

#[test]
fn source_specific_default_route() {
    let ups = updates_from(SRCSPEC, node_a());
    assert!(ups.iter().any(|u| u.prefix == Some(Prefix::DEFAULT)
        && u.src_prefix == p("2001:db8:42::/48")
        && u.metric == 0));
    assert!(ups.iter().any(|u| u.prefix == Some(Prefix::DEFAULT)
        && u.src_prefix == p("2001:db8:42::/48")
        && u.metric == INFINITY));
}

#[test]
fn tunnel_hellos_and_ihus_carry_timestamps() {
    let (mut hellos, mut ihus) = (0, 0);
    for r in records(TUNNEL) {
        for m in Decoder::new(Packet::new_checked(r.payload).unwrap().body()) {
            match m.unwrap() {
                Message::Hello {
                    timestamp,
                    interval,
                    unicast,
                    ..
                } => {
                    assert!(timestamp.is_some());
                    assert!(!unicast);
                    // Scheduled every second, or unscheduled (0) to carry an IHU's RTT.
                    assert!(interval == 100 || interval == 0, "{interval}");
                    hellos += 1;
                }
                Message::Ihu {
                    timestamps: Some((origin, receive)),
                    address,
                    ..
                } => {
                    assert!(origin != 0 && receive != 0);
                    assert!(address.unwrap().segments()[0] == 0xfe80);
                    ihus += 1;
                }
                _ => {}
            }
        }
    }
    assert!(hellos > 5 && ihus > 2, "{hellos} hellos, {ihus} IHUs");
}

/// Re-encoding decoded messages with our own compression gives babeld's exact octets.
#[test]
fn builder_compresses_like_babeld() {
    let mut checked = 0;
    for cap in [PLAIN, SRCSPEC, TUNNEL] {
        for r in records(cap) {
            let pkt = Packet::new_checked(r.payload).unwrap();
            let mut buf = [0u8; 1500];
            let mut b = Builder::new(&mut buf, 0).unwrap();
            let mut rebuilt = true;
            for t in pkt.tlvs() {
                // Pads are not produced by the builder.
                if matches!(t, Ok(Tlv::Pad1 | Tlv::PadN { .. })) {
                    rebuilt = false;
                }
            }
            for m in Decoder::new(pkt.body()) {
                match m.unwrap() {
                    Message::Hello {
                        unicast,
                        seqno,
                        interval,
                        timestamp,
                    } => b.hello(unicast, seqno, interval, timestamp).unwrap(),
                    Message::Ihu {
                        rxcost,
                        interval,
                        address,
                        timestamps,
                    } => b
                        .ihu(rxcost, interval, address.unwrap(), timestamps)
                        .unwrap(),
                    Message::Update(u) => match u.prefix {
                        None => b.wildcard_retraction(u.seqno).unwrap(),
                        Some(prefix) => b
                            .update(
                                u.router_id.unwrap(),
                                &prefix,
                                &u.src_prefix,
                                u.interval,
                                u.seqno,
                                u.metric,
                            )
                            .unwrap(),
                    },
                    Message::RouteRequest { prefix, src_prefix } => b
                        .route_request(prefix.as_ref().map(|p| (p, &src_prefix)))
                        .unwrap(),
                    other => panic!("unexpected {other:?}"),
                }
            }
            if rebuilt {
                let len = b.finish();
                assert_eq!(&buf[..len], r.payload);
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "{checked}");
}

#[test]
fn macs_of_captured_packets_verify_with_the_configured_keys() {
    use crate::babel::mac::{MacAlgorithm, MacCheck, MacKey};
    let blake = MacKey::new(
        MacAlgorithm::Blake2s128,
        &crate::selftest::hex("000102030405060708090a0b0c0d0e0f"),
    )
    .unwrap();
    let sha = MacKey::new(
        MacAlgorithm::HmacSha256,
        &crate::selftest::hex("101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"),
    )
    .unwrap();
    let wrong = MacKey::new(MacAlgorithm::Blake2s128, &[7; 16]).unwrap();
    let mut unicast = 0;
    for (cap, key) in [(BLAKE2S, &blake), (SHA256, &sha)] {
        for r in records(cap) {
            let pkt = Packet::new_checked(r.payload).unwrap();
            assert_eq!(key.verify(r.src, PORT, r.dst, PORT, &pkt), MacCheck::Good);
            assert_eq!(wrong.verify(r.src, PORT, r.dst, PORT, &pkt), MacCheck::Bad);
            // The pseudo-header binds the addresses.
            assert_eq!(key.verify(r.dst, PORT, r.src, PORT, &pkt), MacCheck::Bad);
            unicast += usize::from(!r.dst.is_multicast());
        }
    }
    assert!(unicast >= 4, "challenge exchanges are unicast");
    let plain = records(PLAIN);
    let pkt = Packet::new_checked(plain[0].payload).unwrap();
    assert_eq!(
        blake.verify(plain[0].src, PORT, plain[0].dst, PORT, &pkt),
        MacCheck::Missing
    );
}

#[test]
fn pc_and_challenges_parse() {
    let mut pcs = Vec::new();
    let (mut req, mut rep) = (0, 0);
    for r in records(BLAKE2S).into_iter().filter(|r| r.src == node_a()) {
        for m in Decoder::new(Packet::new_checked(r.payload).unwrap().body()) {
            match m.unwrap() {
                Message::Pc { pc, index } => {
                    assert_eq!(index.len(), 8);
                    pcs.push(pc);
                }
                Message::ChallengeRequest { nonce } => {
                    assert_eq!(nonce.len(), 8);
                    req += 1;
                }
                Message::ChallengeReply { nonce } => {
                    assert_eq!(nonce.len(), 8);
                    rep += 1;
                }
                _ => {}
            }
        }
    }
    assert!(req >= 1 && rep >= 1);
    assert!(pcs.windows(2).all(|w| w[1] > w[0]), "PC increases: {pcs:?}");
}

#[test]
fn header_errors() {
    assert_eq!(
        Packet::new_checked(&[42u8, 2, 0][..]).unwrap_err(),
        Error::Truncated
    );
    assert_eq!(
        Packet::new_checked(&[43u8, 2, 0, 0][..]).unwrap_err(),
        Error::BadMagic
    );
    assert_eq!(
        Packet::new_checked(&[42u8, 1, 0, 0][..]).unwrap_err(),
        Error::BadVersion(1)
    );
    assert_eq!(
        Packet::new_checked(&[42u8, 2, 0, 5, 0][..]).unwrap_err(),
        Error::Truncated
    );
    let ok = Packet::new_checked(&[42u8, 2, 0, 1, 0, 16, 0][..]).unwrap();
    assert_eq!(ok.body(), &[0]);
    assert_eq!(ok.trailer(), &[16, 0]);
}

#[test]
fn unknown_tlv_is_skipped_and_unknown_mandatory_sub_tlv_voids_its_tlv() {
    // Unknown TLV 200, then Hello with an unknown optional sub-TLV (5), then a Hello with
    // an unknown mandatory sub-TLV (200), then a truncated TLV.
    let body = [
        200, 2, 9, 9, //
        4, 9, 0, 0, 0, 7, 1, 144, 5, 1, 0, //
        4, 9, 0, 0, 0, 8, 1, 144, 200, 1, 0, //
        4, 9, 0,
    ];
    let got: Vec<_> = Decoder::new(&body).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(
        got[0],
        Ok(Message::Hello {
            unicast: false,
            seqno: 7,
            interval: 400,
            timestamp: None
        })
    );
    assert_eq!(got[1], Err(Error::UnknownMandatory(200)));
    assert_eq!(got[2], Err(Error::Truncated));
}

#[test]
fn update_state_survives_a_voided_update() {
    // RFC 8966 §4.4: the parser state is updated even when a mandatory sub-TLV voids
    // the TLV. Router-Id, Update /48 with default-prefix flag and a mandatory sub-TLV,
    // then an Update /64 omitting 6 octets.
    let mut body = vec![6, 10, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
    body.extend([8, 19, 2, 0x80, 48, 0, 0, 100, 0, 1, 0, 0]);
    body.extend([0x20, 0x01, 0x0d, 0xb8, 0, 1, 201, 1, 0]);
    body.extend([8, 12, 2, 0, 64, 6, 0, 100, 0, 1, 0, 0, 0, 2]);
    let got: Vec<_> = Decoder::new(&body).collect();
    assert_eq!(got[0], Err(Error::UnknownMandatory(201)));
    let Ok(Message::Update(u)) = got[1] else {
        panic!("{got:?}")
    };
    assert_eq!(u.prefix, Some(p("2001:db8:1:2::/64")));
    assert_eq!(u.router_id, Some(RouterId([1, 2, 3, 4, 5, 6, 7, 8])));
}

#[test]
fn compressed_update_without_default_is_rejected() {
    let body = [
        6, 10, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, //
        8, 12, 2, 0, 64, 6, 0, 100, 0, 1, 0, 0, 0, 2,
    ];
    let got: Vec<_> = Decoder::new(&body).collect();
    assert_eq!(got, vec![Err(Error::NoDefaultPrefix)]);
}

#[test]
fn finite_update_without_router_id_is_rejected() {
    let body = [
        8, 16, 2, 0, 48, 0, 0, 100, 0, 1, 0, 0, 0x20, 1, 0xd, 0xb8, 0, 1,
    ];
    assert_eq!(
        Decoder::new(&body).collect::<Vec<_>>(),
        vec![Err(Error::Malformed)]
    );
}

#[test]
fn seqno_request_and_ack_request_round_trip() {
    let mut buf = [0u8; 128];
    let mut b = Builder::new(&mut buf, 0).unwrap();
    let id = RouterId([9; 8]);
    b.seqno_request(&p("2001:db8:7::/48"), &p("2001:db8:42::/48"), 513, 127, id)
        .unwrap();
    b.push(&Tlv::AckReq {
        reserved: 0,
        nonce: 0xbeef,
        interval: 200,
        sub: SubTlvs(&[]),
    })
    .unwrap();
    let len = b.finish();
    let pkt = Packet::new_checked(&buf[..len]).unwrap();
    let got: Vec<_> = Decoder::new(pkt.body()).collect();
    assert_eq!(
        got,
        vec![
            Ok(Message::SeqnoRequest {
                prefix: p("2001:db8:7::/48"),
                src_prefix: p("2001:db8:42::/48"),
                seqno: 513,
                hop_count: 127,
                router_id: id
            }),
            Ok(Message::AckReq {
                nonce: 0xbeef,
                interval: 200
            })
        ]
    );
}

#[test]
fn builder_reports_full_buffer_and_writes_nothing_partial() {
    let mut buf = [0u8; 20];
    let mut b = Builder::new(&mut buf, 0).unwrap();
    b.hello(false, 1, 400, None).unwrap();
    let before = b.body_len();
    assert_eq!(
        b.update(
            RouterId([1; 8]),
            &p("2001:db8::/32"),
            &Prefix::DEFAULT,
            400,
            1,
            0
        ),
        Err(Error::BufferFull)
    );
    assert_eq!(b.body_len(), before);
}

#[test]
fn prefix_normalises_and_contains() {
    let a = p("2001:db8:1:2:3::/33");
    assert_eq!(a, p("2001:db8::/33"));
    assert!(p("2001:db8::/32").contains(&p("2001:db8:1::/48")));
    assert!(!p("2001:db8:1::/48").contains(&p("2001:db8::/32")));
    assert!(Prefix::DEFAULT.contains(&a));
}

/// No input makes the parsers panic: every truncation and many single-octet
/// corruptions of every captured packet.
#[test]
fn truncated_and_corrupted_packets_never_panic() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for (_, cap) in ALL {
        for r in records(cap) {
            for cut in 0..r.payload.len() {
                exercise(&r.payload[..cut]);
            }
            let mut m = r.payload.to_vec();
            for _ in 0..64 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % m.len();
                m[i] = (seed >> 32) as u8;
                exercise(&m);
            }
        }
    }
}

pub(crate) fn exercise(bytes: &[u8]) {
    let pkt = Packet::new_unchecked(bytes);
    let _ = pkt.check();
    for t in pkt.tlvs().chain(pkt.trailer_tlvs()).flatten() {
        let mut out = [0u8; 300];
        let n = t.emit(&mut out).unwrap();
        assert_eq!(n, t.buffer_len());
    }
    for _ in Decoder::new(pkt.body()) {}
}
