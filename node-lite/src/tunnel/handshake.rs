//! The tunnel handshake: Noise `XX_25519_ChaChaPoly_BLAKE2s` (via `snow`) in our framing.
//!
//! **Why XX.** IK would save half a round trip, but it needs the responder's
//! static key before the first message, and re6st peers learn each other only
//! as `ip,port,proto` (the peer-address exchange, bootstrap peers, the peer
//! cache): carrying a tunnel key there would change re6st's protocol and make
//! every cached address go stale at each restart (the static key is made at
//! start). XX needs nothing in advance, hides both identities from passive
//! observers (the initiator's also from active ones), and its third message
//! lets the responder keep **no** public-key verification work for an
//! initiator that has not completed a round trip:
//!
//! ```text
//! -> e                       (initiation, 256 bytes with padding, no payload)
//! <- e, ee, s, es, payload   (response: responder's certificate + signature)
//! -> s, se, payload          (final: initiator's certificate + signature)
//! ```
//!
//! Forward secrecy comes from the ephemeral keys; transport keys are the
//! Noise split. The prologue is the network id (a hash of the CA), so nodes
//! of different networks cannot complete a handshake.
//!
//! Payload (encrypted by Noise): `u16 LE cert_len ‖ cert DER ‖ u16 LE sig_len ‖ sig`.
//! This module is pure: it returns the peer's credentials and leaves the RSA
//! checks to an [`super::auth::Authority`] called by the endpoint.

use core::fmt;

use blake2::digest::{FixedOutput, FixedOutputReset, KeyInit, Mac, Update};
use blake2::{Blake2s256, Blake2sMac256};
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{CryptoResolver, DefaultResolver};
use snow::types::{Cipher, Dh, Hash, Random};

use super::auth::Identity;
use super::cookie::NetworkKeys;
use super::wire::{self, MAX_HANDSHAKE_LEN};
use super::Instant;

/// The Noise protocol name (also hashed into every handshake).
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

/// Why a handshake message was refused. All are silent drops on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// Noise refused the message: wrong keys, forged or corrupted bytes.
    Noise,
    /// The decrypted payload is not `cert ‖ signature`.
    Payload,
    /// A message arrived in a state that does not expect it.
    State,
    /// Our own message would not fit (certificate too large).
    TooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Noise => "handshake message failed to decrypt",
            Error::Payload => "handshake payload is not a certificate and signature",
            Error::State => "handshake message out of order",
            Error::TooLarge => "certificate and signature too large for a handshake message",
        })
    }
}

impl std::error::Error for Error {}

impl From<snow::Error> for Error {
    fn from(_: snow::Error) -> Self {
        Error::Noise
    }
}

/// A deterministic CSPRNG: keyed BLAKE2s in counter mode. Seeded with 32
/// bytes of OS entropy per handshake in production, with fixed bytes in tests
/// and the selftest (so ephemeral keys, and the bytes, are reproducible).
pub struct SeededRng {
    key: [u8; 32],
    counter: u64,
}

impl SeededRng {
    pub fn new(seed: [u8; 32]) -> Self {
        SeededRng {
            key: seed,
            counter: 0,
        }
    }

    pub fn fill(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(32) {
            let mut m = <Blake2sMac256 as KeyInit>::new(&self.key.into());
            Mac::update(&mut m, &self.counter.to_le_bytes());
            self.counter += 1;
            let block: [u8; 32] = m.finalize_fixed().into();
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}

impl Random for SeededRng {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.fill(dest);
        Ok(())
    }
}

/// BLAKE2s for Noise. Ours rather than snow's default resolver, which
/// would also link BLAKE2b (27 KB of MIPS code) that we never use.
#[derive(Default)]
struct NoiseBlake2s(Blake2s256);

impl Hash for NoiseBlake2s {
    fn name(&self) -> &'static str {
        "BLAKE2s"
    }
    fn block_len(&self) -> usize {
        64
    }
    fn hash_len(&self) -> usize {
        32
    }
    fn reset(&mut self) {
        self.0 = Blake2s256::default();
    }
    fn input(&mut self, data: &[u8]) {
        Update::update(&mut self.0, data);
    }
    fn result(&mut self, out: &mut [u8]) {
        out[..32].copy_from_slice(&self.0.finalize_fixed_reset());
    }
}

/// snow's pure-Rust X25519 and ChaCha20-Poly1305, our BLAKE2s and RNG.
struct Resolver {
    seed: [u8; 32],
}

impl CryptoResolver for Resolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        Some(Box::new(SeededRng::new(self.seed)))
    }
    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        DefaultResolver.resolve_dh(choice)
    }
    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        match choice {
            HashChoice::Blake2s => Some(Box::<NoiseBlake2s>::default()),
            _ => None,
        }
    }
    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// What the peer presented, before the [`super::auth::Authority`] judged it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub static_pub: [u8; 32],
    pub cert_der: Vec<u8>,
    pub signature: Vec<u8>,
}

fn encode_payload(identity: &Identity) -> Result<Vec<u8>, Error> {
    let cert = identity.cert_der();
    let sig = identity.signature();
    let cl = u16::try_from(cert.len()).map_err(|_| Error::TooLarge)?;
    let sl = u16::try_from(sig.len()).map_err(|_| Error::TooLarge)?;
    let mut p = Vec::with_capacity(4 + cert.len() + sig.len());
    p.extend_from_slice(&cl.to_le_bytes());
    p.extend_from_slice(cert);
    p.extend_from_slice(&sl.to_le_bytes());
    p.extend_from_slice(sig);
    Ok(p)
}

/// Parse `u16 ‖ cert ‖ u16 ‖ sig` exactly; never panics.
pub fn decode_payload(p: &[u8]) -> Result<(&[u8], &[u8]), Error> {
    fn take(p: &[u8]) -> Result<(&[u8], &[u8]), Error> {
        let (len, rest) = p.split_first_chunk::<2>().ok_or(Error::Payload)?;
        let n = usize::from(u16::from_le_bytes(*len));
        if rest.len() < n || n == 0 {
            return Err(Error::Payload);
        }
        Ok(rest.split_at(n))
    }
    let (cert, rest) = take(p)?;
    let (sig, rest) = take(rest)?;
    if !rest.is_empty() {
        return Err(Error::Payload);
    }
    Ok((cert, sig))
}

fn builder<'a>(
    keys: &'a NetworkKeys,
    identity: &'a Identity,
    seed: [u8; 32],
) -> Result<snow::Builder<'a>, Error> {
    let params = NOISE_PARAMS.parse().map_err(|_| Error::State)?;
    Ok(
        snow::Builder::with_resolver(params, Box::new(Resolver { seed }))
            .prologue(&keys.network_id)?
            .local_private_key(identity.static_secret())?,
    )
}

/// A handshake in progress, on either side.
pub struct Handshake {
    noise: snow::HandshakeState,
    /// Our index for this handshake (and the session it produces).
    pub local_index: u32,
    /// The peer's index, once known (from the initiation or the response).
    pub remote_index: u32,
    /// When this handshake (attempt) started.
    pub started: Instant,
    /// mac1 of our last handshake message, to open a cookie reply to it.
    pub last_mac1: [u8; wire::MAC_LEN],
    ephemeral: [u8; 32],
}

/// The transport keys a completed handshake yields, ordered for our side.
pub struct Split {
    pub send: [u8; 32],
    pub recv: [u8; 32],
}

impl Handshake {
    /// Initiator: write the initiation into `out` (MACs filled, using `cookie`
    /// if the responder gave us one). Returns the handshake and the length.
    pub fn initiate(
        keys: &NetworkKeys,
        identity: &Identity,
        seed: [u8; 32],
        local_index: u32,
        now: Instant,
        cookie: Option<&[u8; wire::MAC_LEN]>,
        out: &mut [u8],
    ) -> Result<(Handshake, usize), Error> {
        let mut noise = builder(keys, identity, seed)?.build_initiator()?;
        // snow wants room for a tag even where the payload is not encrypted.
        let mut msg = [0u8; wire::INIT_NOISE_LEN + wire::TAG_LEN];
        let n = noise.write_message(&[0; wire::INIT_PADDING], &mut msg)?;
        if n != wire::INIT_NOISE_LEN {
            return Err(Error::State);
        }
        let len = wire::emit_init(out, local_index, &msg[..n]).map_err(|_| Error::TooLarge)?;
        let last_mac1 = keys.fill_macs(&mut out[..len], cookie);
        Ok((
            Handshake {
                noise,
                local_index,
                remote_index: 0,
                started: now,
                last_mac1,
                ephemeral: msg[..32].try_into().map_err(|_| Error::State)?,
            },
            len,
        ))
    }

    /// Responder: read an initiation (its MACs already checked by the caller)
    /// and write the response carrying our credentials into `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn respond(
        keys: &NetworkKeys,
        identity: &Identity,
        seed: [u8; 32],
        local_index: u32,
        now: Instant,
        init: &wire::HandshakeInit<'_>,
        out: &mut [u8],
    ) -> Result<(Handshake, usize), Error> {
        let mut noise = builder(keys, identity, seed)?.build_responder()?;
        let mut pad = [0u8; wire::INIT_NOISE_LEN];
        let n = noise.read_message(&init.noise[..], &mut pad)?;
        // The padding is hashed into the transcript; insist it is zeros so
        // the field stays free for a future version.
        if pad[..n].iter().any(|&b| b != 0) {
            return Err(Error::Payload);
        }
        let payload = encode_payload(identity)?;
        let mut msg = vec![0u8; MAX_HANDSHAKE_LEN];
        let n = noise.write_message(&payload, &mut msg)?;
        let len = wire::emit_resp(out, local_index, init.sender, &msg[..n])
            .map_err(|_| Error::TooLarge)?;
        let last_mac1 = keys.fill_macs(&mut out[..len], None);
        Ok((
            Handshake {
                noise,
                local_index,
                remote_index: init.sender,
                started: now,
                last_mac1,
                ephemeral: msg[..32].try_into().map_err(|_| Error::State)?,
            },
            len,
        ))
    }

    /// Initiator: read the response (MACs checked by the caller). On success
    /// the responder's credentials still need the Authority's verdict before
    /// [`Self::write_final`].
    pub fn read_response(&mut self, resp: &wire::HandshakeResp<'_>) -> Result<Credentials, Error> {
        if !self.noise.is_initiator() || resp.receiver != self.local_index {
            return Err(Error::State);
        }
        let mut payload = vec![0u8; resp.noise.len()];
        let n = self.noise.read_message(resp.noise, &mut payload)?;
        self.remote_index = resp.sender;
        self.credentials(&payload[..n])
    }

    /// Initiator: write the final message with our credentials; the
    /// handshake is then complete ([`Self::split`]).
    pub fn write_final(
        &mut self,
        keys: &NetworkKeys,
        identity: &Identity,
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let payload = encode_payload(identity)?;
        let mut msg = vec![0u8; MAX_HANDSHAKE_LEN];
        let n = self.noise.write_message(&payload, &mut msg)?;
        let len =
            wire::emit_final(out, self.remote_index, &msg[..n]).map_err(|_| Error::TooLarge)?;
        self.last_mac1 = keys.fill_macs(&mut out[..len], None);
        Ok(len)
    }

    /// Responder: read the final message; returns the initiator's credentials.
    pub fn read_final(&mut self, fin: &wire::HandshakeFinal<'_>) -> Result<Credentials, Error> {
        if self.noise.is_initiator() || fin.receiver != self.local_index {
            return Err(Error::State);
        }
        let mut payload = vec![0u8; fin.noise.len()];
        let n = self.noise.read_message(fin.noise, &mut payload)?;
        self.credentials(&payload[..n])
    }

    fn credentials(&self, payload: &[u8]) -> Result<Credentials, Error> {
        let (cert, sig) = decode_payload(payload)?;
        let static_pub: [u8; 32] = self
            .noise
            .get_remote_static()
            .and_then(|s| s.try_into().ok())
            .ok_or(Error::State)?;
        Ok(Credentials {
            static_pub,
            cert_der: cert.to_vec(),
            signature: sig.to_vec(),
        })
    }

    /// Our ephemeral public key (initiator: what the initiation carried),
    /// to break ties when both sides initiate at once.
    pub fn ephemeral(&self) -> &[u8] {
        &self.ephemeral
    }

    pub fn is_finished(&self) -> bool {
        self.noise.is_handshake_finished()
    }

    pub fn is_initiator(&self) -> bool {
        self.noise.is_initiator()
    }

    /// The transport keys; only once [`Self::is_finished`].
    pub fn split(mut self) -> Result<Split, Error> {
        if !self.noise.is_handshake_finished() {
            return Err(Error::State);
        }
        let (i2r, r2i) = self.noise.dangerously_get_raw_split();
        Ok(if self.noise.is_initiator() {
            Split {
                send: i2r,
                recv: r2i,
            }
        } else {
            Split {
                send: r2i,
                recv: i2r,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::auth::fixtures::*;
    use super::super::auth::{Authority, Identity};
    use super::*;

    fn parse(b: &[u8]) -> wire::Message<'_> {
        wire::parse(b).unwrap()
    }

    #[test]
    fn payload_codec() {
        let id = Identity::from_parts(vec![1, 2, 3], [5; 32], vec![9; 4]);
        let p = encode_payload(&id).unwrap();
        assert_eq!(decode_payload(&p), Ok((&[1u8, 2, 3][..], &[9u8; 4][..])));
        for n in 0..p.len() {
            assert_eq!(decode_payload(&p[..n]), Err(Error::Payload));
        }
        let mut long = p.clone();
        long.push(0);
        assert_eq!(decode_payload(&long), Err(Error::Payload));
    }

    #[test]
    fn xx_completes_and_keys_match() {
        let net = NetworkKeys::new(CA);
        let alice = identity(&ALICE, [1; 32]);
        let bob = identity(&BOB, [2; 32]);
        let t = Instant::from_secs(1);
        let mut b1 = [0u8; MAX_HANDSHAKE_LEN];
        let mut b2 = [0u8; MAX_HANDSHAKE_LEN];
        let mut b3 = [0u8; MAX_HANDSHAKE_LEN];
        let (mut hi, n1) =
            Handshake::initiate(&net, &alice, [3; 32], 100, t, None, &mut b1).unwrap();
        assert_eq!(n1, wire::INIT_LEN);
        let wire::Message::HandshakeInit(init) = parse(&b1[..n1]) else {
            panic!()
        };
        assert!(net.verify_mac1(&init.macs));
        let (mut hr, n2) = Handshake::respond(&net, &bob, [4; 32], 200, t, &init, &mut b2).unwrap();
        let wire::Message::HandshakeResp(resp) = parse(&b2[..n2]) else {
            panic!()
        };
        assert!(net.verify_mac1(&resp.macs));
        let creds = hi.read_response(&resp).unwrap();
        assert_eq!(&creds.static_pub, bob.static_public());
        assert!(authority()
            .verify_peer(
                &creds.cert_der,
                &creds.static_pub,
                &creds.signature,
                now_unix()
            )
            .is_ok());
        let n3 = hi.write_final(&net, &alice, &mut b3).unwrap();
        let wire::Message::HandshakeFinal(fin) = parse(&b3[..n3]) else {
            panic!()
        };
        let creds = hr.read_final(&fin).unwrap();
        assert_eq!(&creds.static_pub, alice.static_public());
        assert_eq!(creds.cert_der, ALICE.cert);
        let (si, sr) = (hi.split().unwrap(), hr.split().unwrap());
        assert_eq!(si.send, sr.recv);
        assert_eq!(si.recv, sr.send);
        assert_ne!(si.send, si.recv);
        // The response is a few times the initiation, not dozens.
        assert!(n2 < 4 * n1, "response {n2} bytes");
    }

    #[test]
    fn different_networks_cannot_complete() {
        let alice = identity(&ALICE, [1; 32]);
        let bob = identity(&BOB, [2; 32]);
        let (na, nb) = (NetworkKeys::new(CA), NetworkKeys::new(OTHER_CA));
        let t = Instant::ZERO;
        let mut b1 = [0u8; MAX_HANDSHAKE_LEN];
        let mut b2 = [0u8; MAX_HANDSHAKE_LEN];
        let (mut hi, n1) = Handshake::initiate(&na, &alice, [3; 32], 1, t, None, &mut b1).unwrap();
        let wire::Message::HandshakeInit(init) = parse(&b1[..n1]) else {
            panic!()
        };
        assert!(!nb.verify_mac1(&init.macs));
        // Even ignoring mac1, the prologue differs so the response fails.
        let (_, n2) = Handshake::respond(&nb, &bob, [4; 32], 2, t, &init, &mut b2).unwrap();
        let wire::Message::HandshakeResp(resp) = parse(&b2[..n2]) else {
            panic!()
        };
        assert_eq!(hi.read_response(&resp), Err(Error::Noise));
    }

    #[test]
    fn deterministic_with_fixed_seeds() {
        let net = NetworkKeys::new(CA);
        let alice = identity(&ALICE, [1; 32]);
        let mut a = [0u8; wire::INIT_LEN];
        let mut b = [0u8; wire::INIT_LEN];
        Handshake::initiate(&net, &alice, [3; 32], 1, Instant::ZERO, None, &mut a).unwrap();
        Handshake::initiate(&net, &alice, [3; 32], 1, Instant::ZERO, None, &mut b).unwrap();
        assert_eq!(a, b);
        Handshake::initiate(&net, &alice, [4; 32], 1, Instant::ZERO, None, &mut b).unwrap();
        assert_ne!(a, b);
    }
}
