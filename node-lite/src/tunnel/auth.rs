//! Peer authentication rooted in the network CA.
//!
//! Noise XX proves that each side holds the secret of the x25519 static key it
//! sent. What ties that key to a re6st node is this module: at start the node
//! signs, once, `STATIC_KEY_LABEL ‖ static_public` with its registry RSA key
//! (PKCS#1 v1.5, SHA-512, like every re6st signature), and sends its
//! certificate and that signature inside the encrypted handshake payload.
//! The peer accepts it only if ([`CaAuthority::verify_peer`]):
//! 1. the certificate chains to the network CA (issuer name and RSA signature),
//! 2. it is in date on the wall clock,
//! 3. its serial is not in the network config's CRL,
//! 4. the signature over the static key verifies with the certificate's key.
//!
//! The result is the peer's prefix (CN `"p/len"`) and serial.
//!
//! RSA work is expensive on a router, so it sits behind [`Authority`]; the
//! handshake state machine never calls it itself (the endpoint does, after
//! every cheap check passed and a rate-limiter token was taken), and tests
//! count the calls. Certificate parsing and chain checks are the registry
//! client's (`registry_client::cert`): nothing is duplicated here.

use core::fmt;

use registry_client::cert::{verify_sha512, Certificate};
use registry_client::Prefix;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha2::{Digest, Sha512};

/// Domain separation: this signature can never be mistaken for another
/// re6st RSA signature (certificates, network versions, registry calls).
pub const STATIC_KEY_LABEL: &[u8] = b"re6st-lite tunnel static key v1\0";

/// Who the peer is, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The node prefix of its certificate (CN `"p/len"`).
    pub prefix: Prefix,
    /// Certificate serial, what the CRL lists.
    pub serial: u64,
    /// Certificate expiry, Unix seconds.
    pub not_after: u64,
}

/// Why a peer was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Not a parsable certificate with a prefix CN and a numeric serial.
    Malformed(String),
    /// Not issued by the network CA.
    NotIssuedByCa,
    /// Outside its validity dates.
    OutOfDate,
    /// Its serial is in the CRL.
    Revoked(u64),
    /// The RSA signature over the static key does not verify.
    StaticKeySignature,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Malformed(d) => write!(f, "peer certificate unusable: {d}"),
            AuthError::NotIssuedByCa => {
                f.write_str("peer certificate not issued by the network CA")
            }
            AuthError::OutOfDate => {
                f.write_str("peer certificate expired or not yet valid (check the clock)")
            }
            AuthError::Revoked(s) => write!(f, "peer certificate serial {s} is revoked"),
            AuthError::StaticKeySignature => {
                f.write_str("peer's tunnel key is not signed by its certificate key")
            }
        }
    }
}

impl std::error::Error for AuthError {}

/// The expensive checks, kept out of the handshake state machine.
pub trait Authority {
    /// Authenticate a peer (see the module doc). Called at most once per
    /// handshake, only after the Noise message decrypted.
    fn verify_peer(
        &self,
        cert_der: &[u8],
        static_pub: &[u8; 32],
        signature: &[u8],
        now_unix: u64,
    ) -> Result<PeerIdentity, AuthError>;

    /// Replace the revoked serials (the network config's `crl`).
    fn update_crl(&mut self, crl: &[u64]);

    /// True if `serial` is revoked. Cheap: used for live tunnels.
    fn is_revoked(&self, serial: u64) -> bool;
}

/// The real [`Authority`]: the network CA and its CRL.
pub struct CaAuthority {
    ca: Certificate,
    crl: Vec<u64>,
}

impl CaAuthority {
    pub fn new(ca: Certificate, crl: &[u64]) -> Self {
        let mut a = CaAuthority {
            ca,
            crl: Vec::new(),
        };
        a.update_crl(crl);
        a
    }

    pub fn ca(&self) -> &Certificate {
        &self.ca
    }
}

fn static_key_digest(static_pub: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(STATIC_KEY_LABEL.len() + 32);
    m.extend_from_slice(STATIC_KEY_LABEL);
    m.extend_from_slice(static_pub);
    m
}

impl Authority for CaAuthority {
    fn verify_peer(
        &self,
        cert_der: &[u8],
        static_pub: &[u8; 32],
        signature: &[u8],
        now_unix: u64,
    ) -> Result<PeerIdentity, AuthError> {
        let cert =
            Certificate::from_der(cert_der).map_err(|e| AuthError::Malformed(e.to_string()))?;
        let serial = cert
            .serial_u64()
            .ok_or_else(|| AuthError::Malformed("serial wider than 64 bits".into()))?;
        let prefix = cert
            .prefix()
            .map_err(|e| AuthError::Malformed(e.to_string()))?;
        // Cheap checks first: a revoked or expired certificate costs no RSA.
        if self.is_revoked(serial) {
            return Err(AuthError::Revoked(serial));
        }
        cert.check_dates(now_unix)
            .map_err(|_| AuthError::OutOfDate)?;
        cert.verify_issued_by(&self.ca)
            .map_err(|_| AuthError::NotIssuedByCa)?;
        verify_sha512(
            cert.public_key(),
            &static_key_digest(static_pub),
            signature,
            "tunnel key",
        )
        .map_err(|_| AuthError::StaticKeySignature)?;
        Ok(PeerIdentity {
            prefix,
            serial,
            not_after: cert.not_after(),
        })
    }

    fn update_crl(&mut self, crl: &[u64]) {
        self.crl = crl.to_vec();
        self.crl.sort_unstable();
        self.crl.dedup();
    }

    fn is_revoked(&self, serial: u64) -> bool {
        self.crl.binary_search(&serial).is_ok()
    }
}

/// What this node proves itself with: its certificate, its static x25519
/// secret, and its RSA signature over the static public key. Made once at
/// start ([`Identity::new`] does the only RSA private-key operation).
pub struct Identity {
    cert_der: Vec<u8>,
    static_secret: [u8; 32],
    static_public: [u8; 32],
    signature: Vec<u8>,
}

impl Identity {
    /// Sign `static_secret`'s public key with the node's certificate key.
    pub fn new(
        cert_der: Vec<u8>,
        key: &RsaPrivateKey,
        static_secret: [u8; 32],
    ) -> Result<Self, AuthError> {
        let static_public =
            x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(static_secret))
                .to_bytes();
        let digest = Sha512::digest(static_key_digest(&static_public));
        let signature = key
            .sign(Pkcs1v15Sign::new::<Sha512>(), &digest)
            .map_err(|e| AuthError::Malformed(format!("signing the tunnel key: {e}")))?;
        Ok(Identity::from_parts(cert_der, static_secret, signature))
    }

    /// An identity from a signature made elsewhere (or a wrong one, in tests).
    pub fn from_parts(cert_der: Vec<u8>, static_secret: [u8; 32], signature: Vec<u8>) -> Self {
        let static_public =
            x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(static_secret))
                .to_bytes();
        Identity {
            cert_der,
            static_secret,
            static_public,
            signature,
        }
    }

    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    pub fn static_secret(&self) -> &[u8; 32] {
        &self.static_secret
    }

    pub fn static_public(&self) -> &[u8; 32] {
        &self.static_public
    }

    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

/// Fixture certificates made once by `testdata/gen.sh` (RSA-1024 for speed).
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub(crate) const CA: &[u8] = include_bytes!("testdata/ca.der");
    pub(crate) const OTHER_CA: &[u8] = include_bytes!("testdata/other-ca.der");

    /// A node fixture: certificate DER and PKCS#8 PEM key.
    pub(crate) struct Node {
        pub cert: &'static [u8],
        pub key: &'static [u8],
    }

    pub(crate) const ALICE: Node = Node {
        cert: include_bytes!("testdata/alice.der"),
        key: include_bytes!("testdata/alice.key"),
    };
    pub(crate) const BOB: Node = Node {
        cert: include_bytes!("testdata/bob.der"),
        key: include_bytes!("testdata/bob.key"),
    };
    /// Serial 4: tests put it in the CRL.
    pub(crate) const REVOKED: Node = Node {
        cert: include_bytes!("testdata/revoked.der"),
        key: include_bytes!("testdata/revoked.key"),
    };
    pub(crate) const REVOKED_SERIAL: u64 = 4;
    /// Issued by another CA with the same subject name.
    pub(crate) const STRANGER: Node = Node {
        cert: include_bytes!("testdata/stranger.der"),
        key: include_bytes!("testdata/stranger.key"),
    };
    /// Valid for one day from its creation.
    pub(crate) const EXPIRED: Node = Node {
        cert: include_bytes!("testdata/expired.der"),
        key: include_bytes!("testdata/expired.key"),
    };

    /// A wall clock at which every fixture but EXPIRED is valid.
    pub(crate) fn now_unix() -> u64 {
        Certificate::from_der(EXPIRED.cert).unwrap().not_after() + 86_400
    }

    pub(crate) fn authority() -> CaAuthority {
        CaAuthority::new(Certificate::from_der(CA).unwrap(), &[REVOKED_SERIAL])
    }

    pub(crate) fn identity(node: &Node, static_secret: [u8; 32]) -> Identity {
        let key = registry_client::cert::key_from_pem(node.key).unwrap();
        Identity::new(node.cert.to_vec(), &key, static_secret).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    fn check(node: &Node, now: u64) -> Result<PeerIdentity, AuthError> {
        let id = identity(node, [7; 32]);
        authority().verify_peer(id.cert_der(), id.static_public(), id.signature(), now)
    }

    #[test]
    fn accepts_a_node_of_the_network() {
        let p = check(&ALICE, now_unix()).unwrap();
        assert_eq!(p.prefix.to_cn(), "1/16");
        assert_eq!(p.serial, 2);
        assert_eq!(check(&BOB, now_unix()).unwrap().prefix.to_cn(), "2/16");
    }

    #[test]
    fn refuses_other_ca_expired_revoked() {
        assert_eq!(check(&STRANGER, now_unix()), Err(AuthError::NotIssuedByCa));
        assert_eq!(check(&EXPIRED, now_unix()), Err(AuthError::OutOfDate));
        // The expired one was fine while in date: the test is about time.
        let born = Certificate::from_der(EXPIRED.cert).unwrap().not_before();
        assert!(check(&EXPIRED, born + 60).is_ok());
        assert_eq!(check(&ALICE, born - 1), Err(AuthError::OutOfDate));
        assert_eq!(
            check(&REVOKED, now_unix()),
            Err(AuthError::Revoked(REVOKED_SERIAL))
        );
        let mut a = authority();
        a.update_crl(&[]);
        let id = identity(&REVOKED, [7; 32]);
        assert!(a
            .verify_peer(
                id.cert_der(),
                id.static_public(),
                id.signature(),
                now_unix()
            )
            .is_ok());
    }

    #[test]
    fn refuses_a_signature_over_another_static_key() {
        let id = identity(&ALICE, [7; 32]);
        let other = identity(&ALICE, [8; 32]);
        let a = authority();
        assert_eq!(
            a.verify_peer(
                id.cert_der(),
                other.static_public(),
                id.signature(),
                now_unix()
            ),
            Err(AuthError::StaticKeySignature)
        );
        // Bob's signature with Alice's certificate.
        let bob = identity(&BOB, [7; 32]);
        assert_eq!(
            a.verify_peer(
                id.cert_der(),
                id.static_public(),
                bob.signature(),
                now_unix()
            ),
            Err(AuthError::StaticKeySignature)
        );
        assert!(matches!(
            a.verify_peer(
                &id.cert_der()[1..],
                id.static_public(),
                id.signature(),
                now_unix()
            ),
            Err(AuthError::Malformed(_))
        ));
        // The other CA's own certificate is not a node certificate of ours.
        assert!(a
            .verify_peer(OTHER_CA, id.static_public(), id.signature(), now_unix())
            .is_err());
    }
}
