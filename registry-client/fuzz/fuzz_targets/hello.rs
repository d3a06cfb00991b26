//! hello replies: split, CA signature check, then (only if signed) decryption.
#![no_main]
use libfuzzer_sys::fuzz_target;
use registry_client::auth::Hello;

mod keys;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Hello::parse(data) {
        let _ = h.open(keys::ca().public_key(), keys::node_key());
    }
});
