//! Neighbor Discovery messages from a LAN (untrusted): Router Solicitation
//! and Advertisement parsers, re-emission of every advertisement that parsed,
//! and the advertiser fed the same bytes. Seeds: seeds/nd_message.
//! Run: cd node-lite/fuzz && cargo +nightly fuzz run nd_message seeds/nd_message
#![no_main]

use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;
use node_lite::lan::ra::{Advertiser, Config};
use node_lite::lan::wire::{RouterAdvert, RouterSolicit};
use node_lite::time::Instant;

const LL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

fuzz_target!(|data: &[u8]| {
    // The first octet picks the source and how the message arrived.
    let Some((&sel, msg)) = data.split_first() else {
        return;
    };
    let src = if sel & 1 == 0 { LL } else { Ipv6Addr::UNSPECIFIED };
    let _ = RouterSolicit::parse(msg, src);
    if let Ok(ra) = RouterAdvert::parse(msg) {
        // What parsed re-emits to its own length and parses back the same.
        let mut out = vec![0u8; ra.buffer_len()];
        if let Some(n) = ra.emit(&mut out) {
            assert_eq!(n, ra.buffer_len());
            assert_eq!(RouterAdvert::parse(&out[..n]), Ok(ra));
        }
    }
    let prefix = "2001:db8:42::/64".parse().expect("prefix");
    let mut adv = Advertiser::new(Config::new(vec![prefix]), Instant::ZERO, 1);
    let hops = if sel & 2 == 0 { 255 } else { 64 };
    let _ = adv.handle_message(Instant::from_secs(1), src, hops, msg, sel & 4 != 0);
    let mut out = [0u8; 1500];
    let _ = adv.poll_transmit(adv.poll_timeout(), &mut out);
    let _ = adv.final_advert(Instant::from_secs(2), &mut out);
});
