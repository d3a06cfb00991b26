//! Certificates (DER and PEM), private keys (PEM), CNs and packed integers.
#![no_main]
use libfuzzer_sys::fuzz_target;
use registry_client::cert::{key_from_pem, Certificate};
use registry_client::{packint, Prefix};

mod keys;

fuzz_target!(|data: &[u8]| {
    for c in [Certificate::from_der(data), Certificate::from_pem(data)]
        .into_iter()
        .flatten()
    {
        let _ = c.verify_issued_by(keys::ca());
        let _ = c.prefix();
        let _ = c.network();
        let _ = c.check_dates(1_800_000_000);
        let _ = c.to_pem();
    }
    let _ = key_from_pem(data);
    let _ = packint::unpack(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Prefix::from_cn(s);
        let _ = Prefix::from_bits(s);
        let _ = registry_client::cert::parse_fingerprint(s);
    }
});
