//! Every tunnel datagram parser on arbitrary bytes: `wire::parse` (handshake
//! messages, cookie replies, data and close) and the handshake payload codec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use node_lite::tunnel::{handshake, wire};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = wire::parse(data) {
        let _ = wire::receiver_index(&m);
        if let wire::Message::Data(d) = m {
            assert!(d.plaintext_len() + wire::DATA_OVERHEAD == data.len());
        }
    }
    let _ = handshake::decode_payload(data);
});
