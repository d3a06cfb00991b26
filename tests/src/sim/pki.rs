//! The simulated network's certificates, made in process: a CA for
//! 2001:db8:42::/48 and one CA-signed certificate per node (CN = its 16-bit
//! node prefix, as the registry issues them), all RSA-1024 with SHA-512.
//!
//! Simulator-only shortcut: every node's certificate carries the same RSA
//! key pair, made once (RSA key generation would take minutes for 10,000
//! nodes). Every check a node makes stays real (chain, dates, CRL, the
//! signature over the tunnel key); only the uniqueness of keys is given up,
//! which nothing in the simulation depends on. The daemon cannot do this:
//! its key is its own, in its state directory.

use std::str::FromStr;
use std::time::Duration;

use registry_client::cert::Certificate;
use registry_client::netconfig::{Fields, NetworkConfig, Version};
use registry_client::state::Identity;
use registry_client::{Prefix, Subnet};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::EncodePublicKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use sha2::Sha512;
use x509_cert::der::asn1::{BitString, GeneralizedTime};
use x509_cert::der::{Decode, Encode};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::TbsCertificate;

/// sha512WithRSAEncryption.
const SHA512_RSA: x509_cert::der::oid::ObjectIdentifier =
    x509_cert::der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
/// The network: 2001:db8:42::/48, as the CA's serial (marker bit + bits).
const CA_SERIAL: [u8; 7] = [0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x42];
/// Node prefixes: 16 bits, so /64 subnets.
pub const NODE_BITS: u8 = 16;

pub struct Pki {
    ca_key: RsaPrivateKey,
    ca: Certificate,
    node_key: RsaPrivateKey,
    network: Prefix,
}

fn rng_key(seed: u64) -> RsaPrivateKey {
    use rand_chacha::rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    RsaPrivateKey::new(&mut rng, 1024).expect("RSA key")
}

fn time(unix: u64) -> Time {
    Time::GeneralTime(
        GeneralizedTime::from_unix_duration(Duration::from_secs(unix)).expect("a date"),
    )
}

fn serial(v: u64) -> SerialNumber {
    let mut b: Vec<u8> = v
        .to_be_bytes()
        .into_iter()
        .skip_while(|&x| x == 0)
        .collect();
    if b.first().is_none_or(|&x| x >= 0x80) {
        b.insert(0, 0);
    }
    SerialNumber::new(&b).expect("serial")
}

fn sign(
    key: &RsaPrivateKey,
    issuer: &Name,
    subject: &Name,
    serial: SerialNumber,
    public: &RsaPrivateKey,
    not_before: u64,
    not_after: u64,
) -> Certificate {
    let alg = AlgorithmIdentifierOwned {
        oid: SHA512_RSA,
        parameters: Some(x509_cert::der::asn1::Any::null()),
    };
    let spki = public.to_public_key().to_public_key_der().expect("SPKI");
    let tbs = TbsCertificate {
        version: x509_cert::Version::V3,
        serial_number: serial,
        signature: alg.clone(),
        issuer: issuer.clone(),
        validity: Validity {
            not_before: time(not_before),
            not_after: time(not_after),
        },
        subject: subject.clone(),
        subject_public_key_info: SubjectPublicKeyInfoOwned::from_der(spki.as_bytes())
            .expect("SPKI"),
        issuer_unique_id: None,
        subject_unique_id: None,
        extensions: None,
    };
    let der = tbs.to_der().expect("TBS");
    let sig = SigningKey::<Sha512>::new(key.clone()).sign(&der).to_vec();
    let cert = x509_cert::Certificate {
        tbs_certificate: tbs,
        signature_algorithm: alg,
        signature: BitString::from_bytes(&sig).expect("signature"),
    };
    Certificate::from_der(&cert.to_der().expect("certificate")).expect("parsable")
}

/// Certificates are valid from here...
pub const NOT_BEFORE: u64 = 1_700_000_000;
/// ... to here (2100).
pub const NOT_AFTER: u64 = 4_102_444_800;

impl Pki {
    /// The CA and the shared node key, from `seed`.
    pub fn new(seed: u64) -> Pki {
        let ca_key = rng_key(seed);
        let name = Name::from_str("CN=re6st-lite simulated CA").expect("name");
        let ca = sign(
            &ca_key,
            &name,
            &name,
            SerialNumber::new(&CA_SERIAL).expect("serial"),
            &ca_key,
            NOT_BEFORE,
            NOT_AFTER,
        );
        Pki {
            node_key: rng_key(seed ^ 0x5eed),
            network: ca.network().expect("network"),
            ca_key,
            ca,
        }
    }

    pub fn ca(&self) -> &Certificate {
        &self.ca
    }

    /// Node `i`'s identity: node prefix `i + 1`, serial `i + 2`.
    pub fn identity(&self, i: usize) -> Identity {
        let node = Prefix::new(i as u128 + 1, NODE_BITS).expect("prefix");
        let subject = Name::from_str(&format!("CN={}", node.to_cn())).expect("name");
        let cert = sign(
            &self.ca_key,
            self.ca.subject(),
            &subject,
            serial(Self::serial(i)),
            &self.node_key,
            NOT_BEFORE,
            NOT_AFTER,
        );
        Identity {
            ca: self.ca.clone(),
            cert,
            key: self.node_key.clone(),
            subnet: Subnet::new(self.network, node).expect("subnet"),
        }
    }

    /// A network config as the registry would sign it: version `number`,
    /// revoking `crl`, node 0 as the registry's own node (re6st's registry
    /// runs a node, the first certificate it issued), re6st's defaults
    /// otherwise.
    pub fn network_config(&self, number: u64, crl: &[u64]) -> NetworkConfig {
        let packed = registry_client::packint::pack(number).expect("a version");
        let digest = <Sha512 as sha2::Digest>::digest(&packed);
        let sig = self
            .ca_key
            .sign(rsa::Pkcs1v15Sign::new::<Sha512>(), &digest)
            .expect("signature");
        let raw = [packed, sig].concat();
        NetworkConfig {
            fields: Fields {
                babel_default: "max-rtt-penalty 5000 rtt-max 500 rtt-decay 125".into(),
                crl: crl.to_vec(),
                protocol: 8,
                min_protocol: 1,
                registry_prefix: Some(Prefix::new(1, NODE_BITS).expect("prefix")),
                client_count: 10,
                max_clients: 20,
                encrypt: false,
                hello: 15,
                tunnel_refresh: 300,
                ipv4: None,
                ipv4_sublen: None,
                same_country: None,
                valid_until: None,
                delay_restart: None,
                extra: Vec::new(),
                extra_binary: Vec::new(),
            },
            version: Version::parse(&raw).expect("a version"),
            babel_hmac_sign: None,
            babel_hmac_accept: None,
        }
    }

    /// The serial of node `i`'s certificate (for a CRL).
    pub fn serial(i: usize) -> u64 {
        i as u64 + 2
    }
}
