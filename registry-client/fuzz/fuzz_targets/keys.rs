#![allow(dead_code)]
// Keys of the captured fixtures (src/testdata), parsed once per process.
use std::sync::OnceLock;

use registry_client::cert::{key_from_pem, Certificate};
use registry_client::RsaPrivateKey;

pub fn ca() -> &'static Certificate {
    static CA: OnceLock<Certificate> = OnceLock::new();
    CA.get_or_init(|| {
        Certificate::from_pem(include_bytes!("../../src/testdata/ca.crt")).expect("fixture CA")
    })
}

pub fn node_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        key_from_pem(include_bytes!("../../src/testdata/node.key")).expect("fixture key")
    })
}
