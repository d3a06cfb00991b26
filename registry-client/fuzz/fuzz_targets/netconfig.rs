//! getNetworkConfig bodies: zlib → JSON → typed fields → signature/decryption.
#![no_main]
use libfuzzer_sys::fuzz_target;
use registry_client::netconfig::Payload;

mod keys;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the layer, so JSON is reached without zlib.
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let parsed = if mode & 1 == 0 {
        Payload::parse(rest)
    } else {
        Payload::parse_json(rest)
    };
    if let Ok(p) = parsed {
        let _ = p.open(keys::ca().public_key(), keys::node_key());
    }
});
