//! Arbitrary datagrams into a live endpoint (responder side and an
//! established tunnel): no input may panic, and none may reach the RSA
//! verification without a valid mac1 and a completed Noise round trip.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use node_lite::time::Instant;
use node_lite::tunnel::auth::{CaAuthority, Identity};
use node_lite::tunnel::{wire, Action, Config, Endpoint};
use registry_client::cert::{key_from_pem, Certificate};

const CA: &[u8] = include_bytes!("../../src/tunnel/testdata/ca.der");
const CERT: &[u8] = include_bytes!("../../src/tunnel/testdata/bob.der");
const KEY: &[u8] = include_bytes!("../../src/tunnel/testdata/bob.key");

fn signature() -> &'static [u8] {
    static SIG: OnceLock<Vec<u8>> = OnceLock::new();
    SIG.get_or_init(|| {
        let key = key_from_pem(KEY).unwrap();
        Identity::new(CERT.to_vec(), &key, [2; 32])
            .unwrap()
            .signature()
            .to_vec()
    })
}

fuzz_target!(|data: &[u8]| {
    let ca = Certificate::from_der(CA).unwrap();
    let unix = ca.not_before() + 86_400;
    let id = Identity::from_parts(CERT.to_vec(), [2; 32], signature().to_vec());
    let now = Instant::from_secs(1);
    let mut ep = Endpoint::new(
        Config::default(),
        CA,
        id,
        CaAuthority::new(ca, &[]),
        now,
        unix,
        [7; 32],
    );
    let from: SocketAddr = ([192, 0, 2, 1], 326).into();
    let _ = ep.connect(now, from);
    let mut out = vec![0u8; wire::MAX_HANDSHAKE_LEN.max(data.len())];
    // Split the input into datagrams at 0xfe bytes.
    for d in data.split(|&b| b == 0xfe) {
        let _ = matches!(ep.decapsulate(now, from, d, &mut out), Action::Err(_));
    }
    ep.handle_timeout(Instant::from_secs(10));
    while ep.poll_transmit().is_some() {}
});
