//! What a gateway (or anything on the LAN) sends the port mapper: PCP and
//! NAT-PMP datagrams, SSDP answers, the UPnP description and SOAP answers.
//! The parsers never panic; the mapper, fed the input as datagrams and
//! HTTP answers in every state it reaches, never panics, and only a
//! datagram from the gateway's address can give it a mapping.
//! Run: cd node-lite/fuzz && cargo +nightly fuzz run gateway_messages
#![no_main]

use std::net::{Ipv4Addr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use node_lite::nat::mapper::Mapper;
use node_lite::nat::{pmp, upnp};
use node_lite::time::Instant;

fuzz_target!(|data: &[u8]| {
    let _ = pmp::parse(data);
    if let Some(url) = upnp::parse_ssdp(data) {
        let _ = upnp::get(&url);
    }
    if let Some((_, body)) = upnp::parse_http(data) {
        let base = upnp::Url::parse("http://192.0.2.1:5000/rootDesc.xml").unwrap();
        if let Some(s) = upnp::find_service(body, &base) {
            let _ = upnp::add_mapping(&s, 1194, 1194, Ipv4Addr::new(192, 0, 2, 2), 3600);
        }
        let _ = upnp::element(body, "NewExternalIPAddress");
    }
    let _ = upnp::parse_soap(data);

    // The mapper: the input, cut in pieces, as every kind of answer.
    let mut m = Mapper::new(1194, 7);
    let mut now = Instant::from_secs(1);
    m.set_gateway(now, Some(Ipv4Addr::new(192, 0, 2, 1)), Some(Ipv4Addr::new(192, 0, 2, 2)));
    m.set_wanted(now, true);
    let stranger: SocketAddr = "192.0.2.9:5351".parse().unwrap();
    for piece in data.chunks(97) {
        m.handle_udp(now, stranger, piece);
        assert!(m.mapping().is_none(), "a mapping from another host than the gateway");
    }
    for (i, piece) in data.chunks(61).enumerate() {
        let from: SocketAddr = match i % 3 {
            0 => "192.0.2.1:5351".parse().unwrap(),
            1 => "192.0.2.1:1900".parse().unwrap(),
            _ => "192.0.2.1:40000".parse().unwrap(),
        };
        m.handle_udp(now, from, piece);
        m.handle_http(now, Ok(piece.to_vec()));
        while m.poll_out().is_some() {}
        if let Some(at) = m.poll_timeout() {
            now = at;
            m.handle_timeout(now);
        }
    }
    m.release();
    while m.poll_out().is_some() {}
});
