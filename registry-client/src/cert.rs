//! X.509 certificates, node keys and certification requests.
//!
//! Parsing is pure (`Certificate::from_der` / `from_pem` on untrusted bytes)
//! and never panics; verification is done here on the parsed DER (CA RSA
//! signature over the exact TBS bytes, issuer name, validity dates), so the
//! product never shells out to `openssl`.

use std::ops::Range;

use rsa::pkcs8;
use x509_cert::{der, spki};

use der::asn1::{BitString, SetOfVec};
use der::oid::ObjectIdentifier;
use der::{Decode, Encode, Header, Reader, SliceReader};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey, RsaPublicKey};
use sha2::{Digest, Sha256, Sha384, Sha512};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::name::Name;
use x509_cert::request::{CertReq, CertReqInfo, Version};

use crate::Error;

const SHA1_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.5");
const SHA256_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");
const SERIAL_NUMBER: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.5");

/// Smallest and largest RSA modulus this client accepts for the CA and node keys.
pub const MIN_KEY_BITS: usize = 1024;
pub const MAX_KEY_BITS: usize = 4096;

fn bad(detail: impl std::fmt::Display) -> Error {
    Error::malformed("certificate", detail)
}

/// A parsed certificate with an RSA key, keeping its exact DER.
#[derive(Clone, Debug)]
pub struct Certificate {
    der: Vec<u8>,
    tbs: Range<usize>,
    serial: Vec<u8>,
    issuer: Name,
    subject: Name,
    cn: Option<String>,
    not_before: u64,
    not_after: u64,
    public_key: RsaPublicKey,
    sig_alg: ObjectIdentifier,
    signature: Vec<u8>,
}

/// Find the first `-----BEGIN <label>-----` block in `pem` and decode it.
pub fn pem_block(pem: &[u8], label: &str) -> Result<Vec<u8>, Error> {
    let text = std::str::from_utf8(pem).map_err(|_| Error::malformed("PEM", "not text"))?;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text
        .find(&begin)
        .ok_or_else(|| Error::malformed("PEM", format_args!("no {label} block")))?;
    let stop = text[start..]
        .find(&end)
        .ok_or_else(|| Error::malformed("PEM", format_args!("{label} block not terminated")))?;
    let block = &text[start..start + stop + end.len()];
    let (got, der) = der::pem::decode_vec(block.as_bytes())
        .map_err(|e| Error::malformed("PEM", format_args!("{label}: {e}")))?;
    if got != label {
        return Err(Error::malformed("PEM", format_args!("label {got}")));
    }
    Ok(der)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    // Only fails for an unrepresentable length, impossible for our inputs.
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// Parse a `Time` value into Unix seconds.
fn unix(t: &x509_cert::time::Time) -> u64 {
    t.to_unix_duration().as_secs()
}

fn cn_of(name: &Name) -> Option<String> {
    name.0.iter().flat_map(|rdn| rdn.0.iter()).find_map(|atv| {
        (atv.oid == CN)
            .then(|| {
                std::str::from_utf8(atv.value.value())
                    .ok()
                    .map(str::to_owned)
            })
            .flatten()
    })
}

impl Certificate {
    /// Parse DER. Rejects trailing bytes and keys other than RSA.
    pub fn from_der(der: &[u8]) -> Result<Self, Error> {
        let cert = x509_cert::Certificate::from_der(der).map_err(bad)?;
        // The exact TBS bytes as signed (not a re-encoding).
        let tbs = (|| -> der::Result<Range<usize>> {
            let mut r = SliceReader::new(der)?;
            Header::decode(&mut r)?;
            let start = usize::try_from(r.position())?;
            let tbs = r.tlv_bytes()?;
            Ok(start..start + tbs.len())
        })()
        .map_err(bad)?;
        let tbs_c = &cert.tbs_certificate;
        let spki = tbs_c.subject_public_key_info.to_der().map_err(bad)?;
        let public_key = RsaPublicKey::from_public_key_der(&spki)
            .map_err(|e| bad(format_args!("public key is not a usable RSA key: {e}")))?;
        let bits = public_key.n().bits();
        if !(MIN_KEY_BITS..=MAX_KEY_BITS).contains(&bits) {
            return Err(bad(format_args!("{bits}-bit RSA key")));
        }
        let signature = cert
            .signature
            .as_bytes()
            .ok_or_else(|| bad("signature has unused bits"))?
            .to_vec();
        Ok(Certificate {
            der: der.to_vec(),
            tbs,
            serial: tbs_c.serial_number.as_bytes().to_vec(),
            issuer: tbs_c.issuer.clone(),
            subject: tbs_c.subject.clone(),
            cn: cn_of(&tbs_c.subject),
            not_before: unix(&tbs_c.validity.not_before),
            not_after: unix(&tbs_c.validity.not_after),
            public_key,
            sig_alg: cert.signature_algorithm.oid,
            signature,
        })
    }

    /// Parse the first CERTIFICATE block of a PEM text.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        Self::from_der(&pem_block(pem, "CERTIFICATE")?)
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    pub fn to_pem(&self) -> String {
        pem_encode("CERTIFICATE", &self.der)
    }

    /// Serial number, big-endian bytes as in the DER INTEGER.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// Serial number as an integer, if it fits (issued certificates: a counter).
    pub fn serial_u64(&self) -> Option<u64> {
        let s = match self.serial.iter().position(|&b| b != 0) {
            Some(i) => &self.serial[i..],
            None => return Some(0),
        };
        (s.len() <= 8).then(|| s.iter().fold(0u64, |a, &b| a << 8 | u64::from(b)))
    }

    /// The subject Common Name, if any.
    pub fn common_name(&self) -> Option<&str> {
        self.cn.as_deref()
    }

    /// The node prefix of an issued certificate (its CN, `"p/len"`).
    pub fn prefix(&self) -> Result<crate::Prefix, Error> {
        let cn = self
            .common_name()
            .ok_or_else(|| bad("no Common Name in the subject"))?;
        crate::Prefix::from_cn(cn)
    }

    /// The network of a CA certificate (its serial without the leading 1 bit).
    pub fn network(&self) -> Result<crate::Prefix, Error> {
        crate::Prefix::from_ca_serial(&self.serial)
    }

    pub fn subject(&self) -> &Name {
        &self.subject
    }

    pub fn not_before(&self) -> u64 {
        self.not_before
    }

    pub fn not_after(&self) -> u64 {
        self.not_after
    }

    /// The public key as SubjectPublicKeyInfo DER: what stays when a CA
    /// certificate is renewed (same key, new dates).
    pub fn public_key_der(&self) -> Vec<u8> {
        self.public_key
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default()
    }

    pub fn public_key(&self) -> &RsaPublicKey {
        &self.public_key
    }

    /// Modulus size in bits.
    pub fn key_bits(&self) -> usize {
        self.public_key.n().bits()
    }

    /// `sha256:<hex>` of the DER, the form `--fingerprint` takes.
    pub fn fingerprint_sha256(&self) -> String {
        format!("sha256:{}", hex(&Sha256::digest(&self.der)))
    }

    /// Check that `ca` issued this certificate: issuer name and RSA signature.
    pub fn verify_issued_by(&self, ca: &Certificate) -> Result<(), Error> {
        if self.issuer != ca.subject {
            return Err(Error::Certificate(
                "issuer is not the network's CA".to_string(),
            ));
        }
        let tbs = &self.der[self.tbs.clone()];
        let ok = match self.sig_alg {
            SHA512_RSA => ca.public_key.verify(
                Pkcs1v15Sign::new::<Sha512>(),
                &Sha512::digest(tbs),
                &self.signature,
            ),
            SHA384_RSA => ca.public_key.verify(
                Pkcs1v15Sign::new::<Sha384>(),
                &Sha384::digest(tbs),
                &self.signature,
            ),
            SHA256_RSA => ca.public_key.verify(
                Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(tbs),
                &self.signature,
            ),
            SHA1_RSA => ca.public_key.verify(
                Pkcs1v15Sign::new::<sha1::Sha1>(),
                &sha1::Sha1::digest(tbs),
                &self.signature,
            ),
            other => {
                return Err(Error::Certificate(format!(
                    "unsupported signature algorithm {other}"
                )))
            }
        };
        ok.map_err(|_| Error::Signature {
            what: "certificate",
        })
    }

    /// Check `not_before <= now <= not_after` (Unix seconds).
    pub fn check_dates(&self, now: u64) -> Result<(), Error> {
        if now < self.not_before {
            return Err(Error::Certificate(format!(
                "not valid before {}",
                utc_string(self.not_before)
            )));
        }
        if now > self.not_after {
            return Err(Error::Certificate(format!(
                "expired on {}",
                utc_string(self.not_after)
            )));
        }
        Ok(())
    }

    /// Check only `now <= not_after`. What the client uses for certificates
    /// the registry just issued or renewed: their notBefore is the
    /// registry's "now", and a router's clock may lag (no RTC before NTP),
    /// as re6st itself tolerates (`loadVerify` with `-attime`).
    pub fn check_not_expired(&self, now: u64) -> Result<(), Error> {
        if now > self.not_after {
            return Err(Error::Certificate(format!(
                "expired on {}",
                utc_string(self.not_after)
            )));
        }
        Ok(())
    }

    /// True if this certificate is for `key`.
    pub fn is_for_key(&self, key: &RsaPrivateKey) -> bool {
        self.public_key == key.to_public_key()
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parse `sha256:<64 hex digits>` (case-insensitive hex, `:` allowed between bytes).
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], Error> {
    let usage = || {
        Error::Usage(format!(
            "invalid fingerprint {s:?}: expected sha256:<64 hex digits>"
        ))
    };
    let (alg, hexs) = s.split_once(':').ok_or_else(usage)?;
    if !alg.eq_ignore_ascii_case("sha256") {
        return Err(Error::Usage(format!(
            "fingerprint algorithm {alg:?} not supported, use sha256"
        )));
    }
    let digits: Vec<u8> = hexs.bytes().filter(|&b| b != b':').collect();
    if digits.len() != 64 {
        return Err(usage());
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(digits.chunks(2)) {
        let s = std::str::from_utf8(pair).map_err(|_| usage())?;
        *o = u8::from_str_radix(s, 16).map_err(|_| usage())?;
    }
    Ok(out)
}

/// `YYYY-MM-DD HH:MM:SS UTC` for Unix seconds (no time zone database needed).
pub fn utc_string(secs: u64) -> String {
    let days = secs / 86400;
    let rem = secs % 86400;
    // Civil from days (Howard Hinnant's algorithm), for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Generate the node key: RSA with `bits` (the CA's modulus size), e = 65537.
pub fn generate_key(bits: usize) -> Result<RsaPrivateKey, Error> {
    if !(MIN_KEY_BITS..=MAX_KEY_BITS).contains(&bits) {
        return Err(Error::Key(format!("refusing to generate a {bits}-bit key")));
    }
    RsaPrivateKey::new(&mut rand_core::OsRng, bits).map_err(|e| Error::Key(e.to_string()))
}

/// PKCS#8 PEM (`BEGIN PRIVATE KEY`), what re6st-conf writes.
pub fn key_to_pem(key: &RsaPrivateKey) -> Result<String, Error> {
    key.to_pkcs8_pem(pkcs8::LineEnding::LF)
        .map(|z| z.to_string())
        .map_err(|e| Error::Key(e.to_string()))
}

/// Load a PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM key.
pub fn key_from_pem(pem: &[u8]) -> Result<RsaPrivateKey, Error> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    let key = if let Ok(der) = pem_block(pem, "PRIVATE KEY") {
        RsaPrivateKey::from_pkcs8_der(&der).map_err(|e| Error::Key(e.to_string()))?
    } else {
        let der = pem_block(pem, "RSA PRIVATE KEY")
            .map_err(|_| Error::Key("no RSA private key in PEM".to_string()))?;
        RsaPrivateKey::from_pkcs1_der(&der).map_err(|e| Error::Key(e.to_string()))?
    };
    let bits = key.n().bits();
    if !(MIN_KEY_BITS..=MAX_KEY_BITS).contains(&bits) {
        return Err(Error::Key(format!("{bits}-bit key not supported")));
    }
    Ok(key)
}

/// `subject` without the fields the registry sets itself (CN and serialNumber),
/// as re6st-conf does when it re-registers with an existing certificate.
pub fn request_subject(previous: Option<&Name>) -> Name {
    let mut out = Name::default();
    if let Some(prev) = previous {
        for rdn in &prev.0 {
            let kept: Vec<_> = rdn
                .0
                .iter()
                .filter(|atv| atv.oid != CN && atv.oid != SERIAL_NUMBER)
                .cloned()
                .collect();
            if let Ok(set) = SetOfVec::try_from(kept) {
                if !set.is_empty() {
                    out.0.push(x509_cert::name::RelativeDistinguishedName(set));
                }
            }
        }
    }
    out
}

/// A PEM certification request for `key`, signed with SHA-512 (like re6st-conf).
pub fn build_csr(key: &RsaPrivateKey, subject: Name) -> Result<String, Error> {
    let e = |e: der::Error| Error::Key(format!("building the request: {e}"));
    let spki_der = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| Error::Key(e.to_string()))?;
    let info = CertReqInfo {
        version: Version::V1,
        subject,
        public_key: SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes()).map_err(e)?,
        attributes: Default::default(),
    };
    let tbs = info.to_der().map_err(e)?;
    let signer = SigningKey::<Sha512>::new(key.clone());
    let sig = signer
        .try_sign(&tbs)
        .map_err(|e| Error::Key(format!("signing the request: {e}")))?;
    let req = CertReq {
        info,
        algorithm: AlgorithmIdentifierOwned {
            oid: SHA512_RSA,
            parameters: Some(der::asn1::Any::null()),
        },
        signature: BitString::from_bytes(&sig.to_bytes()).map_err(e)?,
    };
    Ok(pem_encode("CERTIFICATE REQUEST", &req.to_der().map_err(e)?))
}

/// Verify a CA RSA PKCS#1 v1.5 SHA-512 signature, as re6st's `Cert.verify`.
pub fn verify_sha512(
    ca: &RsaPublicKey,
    data: &[u8],
    sig: &[u8],
    what: &'static str,
) -> Result<(), Error> {
    ca.verify(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(data), sig)
        .map_err(|_| Error::Signature { what })
}

/// RSA PKCS#1 v1.5 decryption with blinding. Callers only decrypt bytes that
/// were authenticated first (CA signature or reply HMAC), see the README.
pub fn decrypt(key: &RsaPrivateKey, data: &[u8], what: &'static str) -> Result<Vec<u8>, Error> {
    if data.len() != key.size() {
        return Err(Error::malformed(
            what,
            format_args!(
                "{} encrypted bytes for a {}-byte key",
                data.len(),
                key.size()
            ),
        ));
    }
    key.decrypt_blinded(&mut rand_core::OsRng, rsa::Pkcs1v15Encrypt, data)
        .map_err(|_| Error::malformed(what, "RSA decryption failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_format() {
        assert_eq!(utc_string(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_string(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc_string(1_798_761_599), "2026-12-31 23:59:59 UTC");
    }

    #[test]
    fn fingerprints_parse() {
        let h = "ab".repeat(32);
        assert_eq!(
            parse_fingerprint(&format!("sha256:{h}")).unwrap(),
            [0xab; 32]
        );
        assert_eq!(
            parse_fingerprint(&format!("SHA256:{}", "AB:".repeat(31) + "AB")).unwrap(),
            [0xab; 32]
        );
        assert!(parse_fingerprint(&format!("sha1:{h}")).is_err());
        assert!(parse_fingerprint("sha256:abcd").is_err());
        assert!(parse_fingerprint(&format!("sha256:{}", "zz".repeat(32))).is_err());
        assert!(parse_fingerprint(&h).is_err());
    }

    use crate::testdata as td;

    #[test]
    fn real_ca_and_node_certificate() {
        let ca = Certificate::from_pem(td::CA_PEM).unwrap();
        assert_eq!(ca.network().unwrap().to_ipv6().to_string(), "2001:db8:42::");
        assert_eq!(ca.network().unwrap().len(), 48);
        assert_eq!(ca.key_bits(), 2048);
        assert_eq!(ca.common_name(), Some("re6st test CA"));
        assert_eq!(
            ca.fingerprint_sha256(),
            "sha256:b3a00292d0b283453b671e3245a7494b23ac4e76742904b6434fd218b6728a02"
        );
        let node = Certificate::from_pem(td::NODE_CERT_PEM).unwrap();
        assert_eq!(node.prefix().unwrap().to_cn(), "1/20");
        assert_eq!(node.serial_u64(), Some(2));
        assert_eq!(node.not_after() - node.not_before(), 365 * 86400);
        node.verify_issued_by(&ca).unwrap();
        node.check_dates(node.not_before() + 10).unwrap();
        assert!(node.check_dates(node.not_after() + 1).is_err());
        assert!(node.check_dates(node.not_before() - 1).is_err());
        let key = key_from_pem(td::NODE_KEY_PEM).unwrap();
        assert!(node.is_for_key(&key));
        // The CA is not issued by the node.
        assert!(ca.verify_issued_by(&node).is_err());
        // PEM written back parses to the same DER.
        let again = Certificate::from_pem(node.to_pem().as_bytes()).unwrap();
        assert_eq!(again.der(), node.der());
        // Leading text before the block is tolerated (as openssl does).
        let mut noisy = b"subject=...\n".to_vec();
        noisy.extend_from_slice(td::NODE_CERT_PEM);
        assert!(Certificate::from_pem(&noisy).is_ok());
    }

    #[test]
    fn tampered_certificate_fails_the_ca_check() {
        let ca = Certificate::from_pem(td::CA_PEM).unwrap();
        let node = Certificate::from_pem(td::NODE_CERT_PEM).unwrap();
        // Flip a bit in the subject (inside the TBS) and in the signature.
        let tbs_byte = node.tbs.start + 40;
        for i in [tbs_byte, node.der().len() - 5] {
            let mut der = node.der().to_vec();
            der[i] ^= 1;
            match Certificate::from_der(&der) {
                Ok(c) => assert!(matches!(
                    c.verify_issued_by(&ca),
                    Err(Error::Signature { .. }) | Err(Error::Certificate(_))
                )),
                Err(e) => assert!(matches!(e, Error::Malformed { .. })),
            }
        }
        // Every truncation is an error, never a panic.
        for n in 0..node.der().len() {
            assert!(Certificate::from_der(&node.der()[..n]).is_err());
        }
    }

    #[test]
    fn csr_is_signed_and_keeps_the_subject() {
        use rsa::signature::Verifier;
        let key = key_from_pem(td::NODE_KEY_PEM).unwrap();
        let node = Certificate::from_pem(td::NODE_CERT_PEM).unwrap();
        let subject = request_subject(Some(node.subject()));
        assert_eq!(subject.to_string(), "O=node");
        let pem = build_csr(&key, subject).unwrap();
        let der = pem_block(pem.as_bytes(), "CERTIFICATE REQUEST").unwrap();
        let req = CertReq::from_der(&der).unwrap();
        assert_eq!(req.algorithm.oid, SHA512_RSA);
        let vk = rsa::pkcs1v15::VerifyingKey::<Sha512>::new(key.to_public_key());
        let sig = rsa::pkcs1v15::Signature::try_from(req.signature.raw_bytes()).unwrap();
        vk.verify(&req.info.to_der().unwrap(), &sig).unwrap();
        // Same shape as openssl's request for the same key and subject.
        let theirs =
            CertReq::from_der(&pem_block(td::NODE_CSR_PEM, "CERTIFICATE REQUEST").unwrap())
                .unwrap();
        assert_eq!(theirs.info.subject, req.info.subject);
        assert_eq!(theirs.info.public_key, req.info.public_key);
        let pem_key = key_to_pem(&key).unwrap();
        assert!(pem_key.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(key_from_pem(pem_key.as_bytes()).unwrap(), key);
    }

    #[test]
    fn pem_garbage_is_an_error() {
        assert!(Certificate::from_pem(b"").is_err());
        assert!(Certificate::from_pem(b"-----BEGIN CERTIFICATE-----\nAAAA").is_err());
        assert!(Certificate::from_pem(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        )
        .is_err());
        assert!(Certificate::from_pem(&[0xff, 0xfe]).is_err());
        assert!(Certificate::from_der(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        assert!(key_from_pem(b"nothing").is_err());
    }
}
