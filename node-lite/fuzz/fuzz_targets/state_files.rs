//! The node's files, which a power cut can truncate or a hand can garble:
//! the UCI config reader (any text: an error names its line, never a panic)
//! and the peer cache (a decoded cache encodes and decodes back the same).
//! Seeds: seeds/state_files (the packaged /etc/config/re6st).
//! Run: cd node-lite/fuzz && cargo +nightly fuzz run state_files seeds/state_files
#![no_main]

use libfuzzer_sys::fuzz_target;
use node_lite::config::Config;
use node_lite::mesh::cache::PeerCache;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_uci(text);
    }
    if let Ok(cache) = PeerCache::decode(data, 64) {
        let bytes = cache.encode();
        let again = PeerCache::decode(&bytes, 64).expect("a cache we wrote decodes");
        assert_eq!(again.encode(), bytes);
    }
});
