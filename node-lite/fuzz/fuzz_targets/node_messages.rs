//! The node's own small messages from untrusted senders: LAN discovery
//! beacons (anyone on the LAN) and the control messages inside the overlay
//! (UDP 326). A beacon that parses encodes back to the same bytes; the
//! discovery state machine never trusts one its verifier refused; a network
//! version whose signature is refused is neither passed on nor fetched.
//! The registry's datagrams to its node ([::1]:326) and the Babel control
//! socket's requests (local, but parsed all the same): a datagram that
//! parses encodes back the same; the control decoder, fed in two pieces,
//! never panics.
//! Run: cd node-lite/fuzz && cargo +nightly fuzz run node_messages
#![no_main]

use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;
use node_lite::mesh::beacon::{Beacon, Discovery, Verdict};
use node_lite::babel::control::Decoder;
use node_lite::mesh::ctl::{encode_registry, parse_registry, Msg};
use node_lite::mesh::version::{Heard, Versions};
use node_lite::time::Instant;

fuzz_target!(|data: &[u8]| {
    if let Some(b) = Beacon::parse(data) {
        assert_eq!(b.encode(), data);
    }
    let mut d = Discovery::new(Instant::from_secs(1));
    let from = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
    let v = d.on_beacon(Instant::from_secs(1), 2, from, data, |_| Err("no".into()));
    assert!(!matches!(v, Verdict::New(_)));
    assert!(!d.trusted(2, from));
    if let Some((prefix, code, rest)) = parse_registry(data) {
        assert_eq!(encode_registry(&prefix, code, rest), data);
    }
    let mut dec = Decoder::default();
    let cut = data.first().map_or(0, |&b| usize::from(b) % (data.len() + 1));
    if dec.feed(&data[..cut]).is_ok() {
        let _ = dec.feed(&data[cut..]);
    }
    if let Some(m) = Msg::parse(data) {
        // What parses, encodes and parses back the same.
        assert_eq!(Msg::parse(&m.encode()), Some(m.clone()));
        if let Msg::Version(v) = m {
            let mut w = Versions::new(None, true);
            assert_eq!(w.heard(Instant::from_secs(1), &v, |_| false), Heard::Refused);
            assert!(w.known().is_none() && !w.take_announce());
            assert_eq!(w.poll_timeout(), None);
        }
    }
});
