//! Babel packet parser: header, TLVs, sub-TLVs, the per-packet Update state, and
//! re-emission of every TLV that parsed. Seeds: corpus/babel_packet (babeld captures).
//! Run: cd node-lite/fuzz && cargo +nightly fuzz run babel_packet corpus/babel_packet
#![no_main]

use libfuzzer_sys::fuzz_target;
use node_lite::babel::wire::{Builder, Decoder, Packet, Tlv};

fuzz_target!(|data: &[u8]| {
    let pkt = Packet::new_unchecked(data);
    let checked = pkt.check().is_ok();
    let mut out = [0u8; 2048];
    let mut b = Builder::new(&mut out, 0).expect("2048 octets hold a header");
    for t in pkt.tlvs().flatten() {
        // A parsed TLV re-emits to exactly its own length, and parses back the same.
        let mut one = [0u8; 260];
        let n = t.emit(&mut one).expect("a parsed TLV fits 257 octets");
        assert_eq!(n, t.buffer_len());
        let again = if n == 1 {
            Tlv::parse(one[0], &[])
        } else {
            Tlv::parse(one[0], &one[2..n])
        };
        if !matches!(t, Tlv::PadN { .. }) {
            assert_eq!(again, Ok(t));
        }
        let _ = b.push(&t);
    }
    for t in pkt.trailer_tlvs().flatten() {
        let _ = t.buffer_len();
    }
    for m in Decoder::new(pkt.body()) {
        let _ = m;
    }
    if checked {
        let _ = b.finish();
    }
});
