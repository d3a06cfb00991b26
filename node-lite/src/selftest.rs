//! Known-answer checks, run by `re6st-lite selftest` on the target itself.
//!
//! Cross builds for big-endian MIPS or soft-float ARM can compile and still be
//! wrong; these checks run the real crypto and wire code on published vectors
//! so such a build fails before it ships. Every protocol module adds its own.

use crate::failure::{self, exit, Failure};

/// A named known-answer check. `Err` says what differed.
pub struct Check {
    pub name: &'static str,
    pub run: fn() -> Result<(), String>,
}

/// Every check the binary carries.
pub fn checks() -> Vec<Check> {
    vec![
        Check {
            name: "chacha20poly1305 (RFC 8439 §2.8.2)",
            run: aead_rfc8439,
        },
        Check {
            name: "x25519 (RFC 7748 §6.1)",
            run: x25519_rfc7748,
        },
        Check {
            name: "re6st registry HMAC-SHA1 chain",
            run: registry_hmac_chain,
        },
        Check {
            name: "re6st packInteger",
            run: registry_pack_integer,
        },
        Check {
            name: "re6st prefixes (CN, bit string, IPv6)",
            run: registry_prefixes,
        },
        Check {
            name: "re6st network config: zlib, JSON, RSA-SHA512 version signature (0.642 capture)",
            run: registry_network_config,
        },
        Check {
            name: "re6st bootstrap peer: RSA PKCS#1 v1.5 decryption (0.642 capture)",
            run: registry_rsa_decrypt,
        },
        Check {
            name: "babel wire + BLAKE2s-128 MAC (babeld 1.12.1 capture)",
            run: babel_wire_and_mac,
        },
        Check {
            name: "tunnel: Noise XX handshake + data packet (fixed keys)",
            run: crate::tunnel::check::known_answer,
        },
    ]
}

pub fn command(p: &mut lexopt::Parser) -> Result<(), Failure> {
    if !failure::no_options(
        p,
        "Usage: re6st-lite selftest\nRuns every known-answer check; exits 1 if one fails.",
    )? {
        return Ok(());
    }
    let all = checks();
    let mut failed = 0;
    for c in &all {
        match (c.run)() {
            Ok(()) => println!("ok    {}", c.name),
            Err(e) => {
                failed += 1;
                println!("FAIL  {}: {e}", c.name);
            }
        }
    }
    if failed > 0 {
        return Err(Failure::new(
            exit::FAILURE,
            format!("selftest: {failed} of {} checks failed", all.len()),
        ));
    }
    println!("selftest: all {} checks passed", all.len());
    Ok(())
}

/// Decode a hex string known at compile time (test vectors only).
pub fn hex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap_or("zz"), 16).unwrap_or(0))
        .collect()
}

fn expect_eq(what: &str, got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what} differs from the vector"))
    }
}

fn aead_rfc8439() -> Result<(), String> {
    // The data path's own AEAD (ring's assembly or RustCrypto, by target).
    use re6st_aead::{Aead, TAG_LEN};

    let key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    let nonce: [u8; 12] = hex("070000004041424344454647")
        .try_into()
        .expect("12 bytes");
    let aad = hex("50515253c0c1c2c3c4c5c6c7");
    let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip \
                  for the future, sunscreen would be it.";
    let want = hex(
        "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6\
         3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36\
         92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc\
         3ff4def08e4b7a9de576d26586cec64b6116",
    );
    let want_tag: [u8; TAG_LEN] = hex("1ae10b594f09e26a7e902ecbd0600691")
        .try_into()
        .expect("16 bytes");

    let aead = Aead::new(&key.try_into().expect("32 bytes"));
    let mut buf = plain.to_vec();
    let tag = aead.seal(&nonce, &aad, &mut buf);
    expect_eq("ciphertext", &buf, &want)?;
    expect_eq("tag", &tag, &want_tag)?;
    aead.open(&nonce, &aad, &mut buf, &tag)
        .map_err(|_| "decryption of the vector failed".to_string())?;
    expect_eq("decrypted text", &buf, plain)?;
    // A flipped bit must be rejected, or the tag check is miscompiled.
    let mut forged = want.clone();
    forged[7] ^= 0x10;
    if aead.open(&nonce, &aad, &mut forged, &want_tag).is_ok() {
        return Err("a forged ciphertext was accepted".into());
    }
    Ok(())
}

fn x25519_rfc7748() -> Result<(), String> {
    use x25519_dalek::{PublicKey, StaticSecret};

    fn key(s: &str) -> [u8; 32] {
        let mut k = [0; 32];
        k.copy_from_slice(&hex(s));
        k
    }
    let alice = StaticSecret::from(key(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
    ));
    let bob = StaticSecret::from(key(
        "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
    ));
    let alice_pub = PublicKey::from(&alice);
    let bob_pub = PublicKey::from(&bob);
    expect_eq(
        "Alice's public key",
        alice_pub.as_bytes(),
        &key("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"),
    )?;
    expect_eq(
        "Bob's public key",
        bob_pub.as_bytes(),
        &key("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"),
    )?;
    let shared = key("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    expect_eq(
        "shared secret (Alice)",
        alice.diffie_hellman(&bob_pub).as_bytes(),
        &shared,
    )?;
    expect_eq(
        "shared secret (Bob)",
        bob.diffie_hellman(&alice_pub).as_bytes(),
        &shared,
    )
}

// Registry client vectors. The captured bytes come from a real re6stnet 0.642
// registry (registry-client/src/testdata/capture.py); the node key is a test key.
const REGISTRY_CA: &[u8] = include_bytes!("../../registry-client/src/testdata/ca.crt");
const REGISTRY_NETCONFIG: &[u8] =
    include_bytes!("../../registry-client/src/testdata/getNetworkConfig.bin");
const REGISTRY_NODE_KEY: &[u8] = include_bytes!("../../registry-client/src/testdata/node.key");
const REGISTRY_BOOTSTRAP: &[u8] =
    include_bytes!("../../registry-client/src/testdata/getBootstrapPeer.bin");

fn registry_hmac_chain() -> Result<(), String> {
    use registry_client::auth::SessionKey;
    // Python: hmac.HMAC(bytes(range(20)), b"/getNetworkConfig?cn=...", sha1)
    let k0 = SessionKey(core::array::from_fn(|i| i as u8));
    let c = k0.call("/getNetworkConfig?cn=0000000000000001");
    if c.header != "BIcMwJ5NqRRv1KqdgNk1omkyIRU=" {
        return Err(format!("request HMAC {} differs from the vector", c.header));
    }
    expect_eq(
        "reply key SHA1(K)",
        &c.reply.0,
        &hex("602c63d2f3d13ca3206cdf204cde24e7d8f4266c"),
    )?;
    expect_eq(
        "next key SHA1(SHA1(K))",
        &c.next.0,
        &hex("8f610962f8582709735b1a7964b86202a5e4a9df"),
    )
}

fn registry_pack_integer() -> Result<(), String> {
    use registry_client::packint::{pack, unpack};
    for (v, want) in [
        (0u64, "00"),
        (31, "1f"),
        (32, "2000"),
        (300, "210c"),
        (8224, "400000"),
    ] {
        let got = pack(v).ok_or("pack failed")?;
        expect_eq("packInteger", &got, &hex(want))?;
        if unpack(&got).map_err(|e| e.to_string())? != (v, got.len()) {
            return Err(format!("unpackInteger({want}) is not {v}"));
        }
    }
    Ok(())
}

fn registry_prefixes() -> Result<(), String> {
    use registry_client::{Prefix, Subnet};
    let e = |e: registry_client::Error| e.to_string();
    let network = Prefix::from_ca_serial(&hex("0120010db80042")).map_err(e)?;
    let node = Prefix::from_cn("1/16").map_err(e)?;
    if node.to_bits() != "0000000000000001"
        || Prefix::from_bits("0000000000000001").ok() != Some(node)
    {
        return Err("CN 1/16 <-> bit string".into());
    }
    let s = Subnet::new(network, node).map_err(e)?;
    if s.to_string() != "2001:db8:42:1::/64" || s.address().to_string() != "2001:db8:42:1::1" {
        return Err(format!("subnet {s}, address {}", s.address()));
    }
    Ok(())
}

fn registry_network_config() -> Result<(), String> {
    use registry_client::cert::Certificate;
    use registry_client::netconfig::Payload;
    let ca = Certificate::from_pem(REGISTRY_CA).map_err(|e| e.to_string())?;
    let p = Payload::parse(REGISTRY_NETCONFIG).map_err(|e| e.to_string())?;
    if (p.fields.client_count, p.fields.hello, p.version.number) != (5, 20, 3) {
        return Err("decoded fields differ from the capture".into());
    }
    p.version
        .verify(ca.public_key())
        .map_err(|e| e.to_string())?;
    let mut forged = p.version.clone();
    let last = forged.raw.len() - 1;
    forged.raw[last] ^= 1;
    if forged.verify(ca.public_key()).is_ok() {
        return Err("a forged version signature was accepted".into());
    }
    Ok(())
}

fn registry_rsa_decrypt() -> Result<(), String> {
    use registry_client::bootstrap::BootstrapPeer;
    let key = registry_client::cert::key_from_pem(REGISTRY_NODE_KEY).map_err(|e| e.to_string())?;
    let peer = BootstrapPeer::open(REGISTRY_BOOTSTRAP, &key).map_err(|e| e.to_string())?;
    if peer.prefix.to_cn() != "0/20" || peer.addresses.len() != 2 {
        return Err(format!("decrypted peer {:?}", peer));
    }
    Ok(())
}

/// A Hello + PC + BLAKE2s-128 MAC packet captured from babeld 1.12.1
/// (node-lite/src/babel/testdata/blake2s.cap, key 00..0f), sent fe80::ff:fe00:1 → ff02::1:6.
fn babel_wire_and_mac() -> Result<(), String> {
    use crate::babel::mac::{MacAlgorithm, MacCheck, MacKey};
    use crate::babel::wire::{Builder, Decoder, Message, Packet, PORT};

    let bytes = hex(
        "2a020020040c00002bea00640304688e367d09020000110c00000000a5b49ca1\
         8ad03e2e101042248974e9b8b348275c959900f5fee4",
    );
    let src = "fe80::ff:fe00:1".parse().map_err(|_| "address")?;
    let dst = "ff02::1:6".parse().map_err(|_| "address")?;
    let pkt = Packet::new_checked(&bytes[..]).map_err(|e| e.to_string())?;
    let mut hello = None;
    for m in Decoder::new(pkt.body()) {
        if let Message::Hello {
            seqno,
            interval,
            timestamp,
            ..
        } = m.map_err(|e| e.to_string())?
        {
            hello = Some((seqno, interval, timestamp));
        }
    }
    if hello != Some((0x2bea, 100, Some(0x688e367d))) {
        return Err(format!("decoded Hello {hello:?} differs from the capture"));
    }
    let mut out = [0u8; 128];
    let mut b = Builder::new(&mut out, 0).map_err(|e| e.to_string())?;
    for t in pkt.tlvs().chain(pkt.trailer_tlvs()) {
        let t = t.map_err(|e| e.to_string())?;
        if t.kind() == crate::babel::wire::kind::MAC {
            b.finish_body();
        }
        b.push(&t).map_err(|e| e.to_string())?;
    }
    let n = b.finish();
    expect_eq("re-encoded packet", &out[..n], &bytes)?;
    let key = MacKey::new(
        MacAlgorithm::Blake2s128,
        &hex("000102030405060708090a0b0c0d0e0f"),
    )
    .map_err(|e| e.to_string())?;
    if key.verify(src, PORT, dst, PORT, &pkt) != MacCheck::Good {
        return Err("BLAKE2s-128 MAC of the captured packet does not verify".into());
    }
    let mut forged = bytes.clone();
    forged[9] ^= 1;
    let forged = Packet::new_checked(&forged[..]).map_err(|e| e.to_string())?;
    if key.verify(src, PORT, dst, PORT, &forged) != MacCheck::Bad {
        return Err("a modified packet passed the MAC check".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_check_passes_on_the_host() {
        for c in checks() {
            assert_eq!((c.run)(), Ok(()), "{}", c.name);
        }
    }

    #[test]
    fn a_wrong_vector_is_reported() {
        assert!(expect_eq("x", &[1, 2], &[1, 3]).is_err());
        assert_eq!(hex("00ff 10"), vec![0, 255, 16]);
    }
}
