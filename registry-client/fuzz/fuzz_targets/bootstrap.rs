//! getBootstrapPeer: the decrypted text, and (rarely, RSA is slow) encrypted bodies.
#![no_main]
use libfuzzer_sys::fuzz_target;
use registry_client::bootstrap::BootstrapPeer;

mod keys;

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        // 0xff + 256 bytes: a body to decrypt with the fixture key.
        Some((0xff, body)) if body.len() == 256 => {
            let _ = BootstrapPeer::open(body, keys::node_key());
        }
        _ => {
            let _ = BootstrapPeer::parse(data);
        }
    }
});
