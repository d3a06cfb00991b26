//! Known-answer check for `re6st-lite selftest`: two in-memory endpoints with
//! fixed keys and seeds complete a handshake and pass one packet; the bytes
//! are compared with the ones recorded on x86_64. A big-endian MIPS build
//! with an endianness or miscompilation bug in Noise, the AEAD, BLAKE2s, RSA
//! or our framing fails here, before it ships.

use blake2::{Blake2s256, Digest};
use core::net::SocketAddr;

use registry_client::cert::{key_from_pem, Certificate};

use super::auth::{CaAuthority, Identity};
use super::{wire, Action, Config, Endpoint, Event, Instant};

const CA: &[u8] = include_bytes!("testdata/ca.der");
const ALICE: (&[u8], &[u8]) = (
    include_bytes!("testdata/alice.der"),
    include_bytes!("testdata/alice.key"),
);
const BOB: (&[u8], &[u8]) = (
    include_bytes!("testdata/bob.der"),
    include_bytes!("testdata/bob.key"),
);

/// BLAKE2s-256 of every datagram of the handshake, in order.
const TRANSCRIPT_HASH: &str = "a93fd65e2b2e2f59f6c8c466221f66623563fc895e81916a8f7b9549064f5340";
/// The data datagram carrying `PACKET` from Alice to Bob.
const DATA_DATAGRAM: &str = concat!(
    "05000000010100000000000000000000",
    "f05c49b8ef4397f7c51d7e0a2c7d25190b4df3",
    "98633199b3fcd0b4b872743b74decafc"
);
const PACKET: &[u8] = b"re6st-lite selftest";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn endpoint(
    node: (&[u8], &[u8]),
    secret: u8,
    seed: u8,
    now: Instant,
    unix: u64,
) -> Result<Endpoint<CaAuthority>, String> {
    let key = key_from_pem(node.1).map_err(|e| e.to_string())?;
    let id = Identity::new(node.0.to_vec(), &key, [secret; 32]).map_err(|e| e.to_string())?;
    let ca = Certificate::from_der(CA).map_err(|e| e.to_string())?;
    Ok(Endpoint::new(
        Config::default(),
        CA,
        id,
        CaAuthority::new(ca, &[]),
        now,
        unix,
        [seed; 32],
    ))
}

/// Returns (transcript hash, data datagram) as hex.
pub fn run() -> Result<(String, String), String> {
    let unix = Certificate::from_der(ALICE.0)
        .map_err(|e| e.to_string())?
        .not_before()
        + 86_400;
    let now = Instant::from_secs(1);
    let mut a = endpoint(ALICE, 1, 11, now, unix)?;
    let mut b = endpoint(BOB, 2, 22, now, unix)?;
    let aa = SocketAddr::from(([192, 0, 2, 1], 326));
    let ba = SocketAddr::from(([192, 0, 2, 2], 326));
    let ia = a.connect(now, ba);
    let mut transcript = Blake2s256::new();
    let mut out = vec![0u8; wire::MAX_HANDSHAKE_LEN];
    let mut next = a.poll_transmit().map(|t| (aa, t.bytes));
    let mut steps = 0;
    while let Some((from, bytes)) = next.take() {
        steps += 1;
        if steps > 4 {
            return Err("handshake does not converge".into());
        }
        transcript.update(&bytes);
        let (ep, me) = if from == aa {
            (&mut b, ba)
        } else {
            (&mut a, aa)
        };
        match ep.decapsulate(now, from, &bytes, &mut out) {
            Action::WriteToNetwork(_, reply) => next = Some((me, reply.to_vec())),
            Action::Done => {}
            other => return Err(format!("handshake step {steps}: {other:?}")),
        }
    }
    if !matches!(a.poll_event(), Some(Event::Established { .. }))
        || !matches!(b.poll_event(), Some(Event::Established { .. }))
    {
        return Err("handshake did not complete".into());
    }
    let mut sealed = [0u8; 64];
    let n = match a.encapsulate(now, ia, PACKET, &mut sealed) {
        Action::WriteToNetwork(_, d) => d.len(),
        other => return Err(format!("encapsulate: {other:?}")),
    };
    match b.decapsulate(now, aa, &sealed[..n], &mut out) {
        Action::WriteToTunnel(_, p) if p == PACKET => {}
        other => return Err(format!("decapsulate: {other:?}")),
    }
    Ok((hex(&transcript.finalize()), hex(&sealed[..n])))
}

/// The selftest entry: run and compare with the recorded bytes.
pub fn known_answer() -> Result<(), String> {
    let (transcript, datagram) = run()?;
    if transcript != TRANSCRIPT_HASH {
        return Err(format!("handshake bytes differ (transcript {transcript})"));
    }
    if datagram != DATA_DATAGRAM {
        return Err(format!("data datagram differs ({datagram})"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_answer() {
        let got = super::run().unwrap();
        assert_eq!(super::known_answer(), Ok(()), "recorded: {got:?}");
    }
}
