//! `getNetworkConfig` payloads: zlib-compressed JSON.
//!
//! Two steps, both pure:
//! - [`Payload::parse`] inflates (size-capped), parses the JSON, base64-decodes
//!   the keys listed under `""` and types every known field. Unknown keys are
//!   kept, not rejected (newer registries add some).
//! - [`Payload::open`] verifies the CA signature on `version` and decrypts the
//!   `babel_hmac_*` keys with the node key, giving a [`NetworkConfig`].
//!
//! Example from re6stnet 0.642 (before compression):
//! `{"babel_default": "max-rtt-penalty 5000 rtt-max 500 rtt-decay 125", "crl": [],
//!   "protocol": 8, "registry_prefix": "00000000000000000000", "client_count": 10,
//!   "encrypt": false, "hello": 15, "max_clients": 20, "min_protocol": 1,
//!   "tunnel_refresh": 300, "": ["version"], "version": "<base64>",
//!   "babel_hmac_sign": "<base64>"}`

use std::net::Ipv4Addr;

use base64::Engine;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Map, Value};

use crate::{packint, Error, Prefix};

/// Largest inflated payload accepted (the real one is well under 4 KiB; the
/// CRL grows by a few bytes per revoked certificate).
pub const MAX_INFLATED: usize = 1 << 20;

fn bad(detail: impl std::fmt::Display) -> Error {
    Error::malformed("network config", detail)
}

/// A babel HMAC key as sent by the registry, still RSA-encrypted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncryptedHmac {
    /// Empty string: accept packets with bad or no signature.
    AcceptUnsigned,
    Encrypted(Vec<u8>),
}

/// A decrypted babel HMAC key.
#[derive(Clone, PartialEq, Eq)]
pub enum BabelHmac {
    /// Empty string from the registry: accept packets with bad signatures.
    AcceptUnsigned,
    Key(Vec<u8>),
}

impl std::fmt::Debug for BabelHmac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BabelHmac::AcceptUnsigned => f.write_str("AcceptUnsigned"),
            BabelHmac::Key(k) => write!(f, "Key({} bytes)", k.len()),
        }
    }
}

/// The network version: `packInteger(n) || CA-sign-SHA512(packInteger(n))`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The version number `n`.
    pub number: u64,
    /// The whole blob as sent (nodes forward it to each other unchanged).
    pub raw: Vec<u8>,
    packed_len: usize,
}

impl Version {
    /// Split a version blob; does not verify the signature.
    pub fn parse(raw: &[u8]) -> Result<Self, Error> {
        let (number, packed_len) = packint::unpack(raw)?;
        if raw.len() == packed_len {
            return Err(Error::malformed("network version", "no signature"));
        }
        Ok(Version {
            number,
            raw: raw.to_vec(),
            packed_len,
        })
    }

    /// The CA signature check re6st's `verifyVersion` does.
    pub fn verify(&self, ca: &RsaPublicKey) -> Result<(), Error> {
        let (packed, sig) = self.raw.split_at(self.packed_len);
        crate::cert::verify_sha512(ca, packed, sig, "network version")
    }
}

/// Fields common to the parsed payload and the opened config.
#[derive(Clone, Debug, PartialEq)]
pub struct Fields {
    pub babel_default: String,
    /// Serial numbers of revoked certificates.
    pub crl: Vec<u64>,
    /// Protocol version of the registry.
    pub protocol: u32,
    pub min_protocol: u32,
    /// Prefix of the node next to the registry (first certificate issued).
    pub registry_prefix: Option<Prefix>,
    pub client_count: u32,
    pub max_clients: u32,
    pub encrypt: bool,
    /// Babel hello interval, seconds.
    pub hello: u32,
    /// Seconds between tunnel refreshes.
    pub tunnel_refresh: u32,
    /// `--ipv4 IP/N PLEN` on the registry: the IPv4 network and its length.
    pub ipv4: Option<(Ipv4Addr, u8)>,
    pub ipv4_sublen: Option<u8>,
    pub same_country: Option<Vec<String>>,
    /// Unix time until which the config is valid (git HEAD registries).
    pub valid_until: Option<u64>,
    /// Seconds to wait before a restart the config requires.
    pub delay_restart: Option<u64>,
    /// Unknown keys with their JSON text, sorted by key.
    pub extra: Vec<(String, String)>,
    /// Unknown base64-listed keys, decoded, sorted by key.
    pub extra_binary: Vec<(String, Vec<u8>)>,
}

/// A parsed but not yet verified payload.
#[derive(Clone, Debug, PartialEq)]
pub struct Payload {
    pub fields: Fields,
    pub version: Version,
    pub babel_hmac_sign: Option<EncryptedHmac>,
    pub babel_hmac_accept: Option<EncryptedHmac>,
}

/// A verified network configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    pub fields: Fields,
    pub version: Version,
    pub babel_hmac_sign: Option<BabelHmac>,
    pub babel_hmac_accept: Option<BabelHmac>,
}

impl std::ops::Deref for NetworkConfig {
    type Target = Fields;
    fn deref(&self) -> &Fields {
        &self.fields
    }
}

struct Obj(Map<String, Value>);

impl Obj {
    fn take(&mut self, k: &str) -> Option<Value> {
        self.0.remove(k)
    }

    fn need(&mut self, k: &'static str) -> Result<Value, Error> {
        self.take(k)
            .ok_or_else(|| bad(format_args!("missing key {k:?}")))
    }
}

fn as_u64(k: &str, v: &Value) -> Result<u64, Error> {
    v.as_u64()
        .ok_or_else(|| bad(format_args!("{k:?} is not a non-negative integer")))
}

fn as_u32(k: &str, v: &Value) -> Result<u32, Error> {
    u32::try_from(as_u64(k, v)?).map_err(|_| bad(format_args!("{k:?} out of range")))
}

fn as_str<'a>(k: &str, v: &'a Value) -> Result<&'a str, Error> {
    v.as_str()
        .ok_or_else(|| bad(format_args!("{k:?} is not a string")))
}

fn b64(k: &str, s: &str) -> Result<Vec<u8>, Error> {
    base64::engine::general_purpose::STANDARD
        .decode(s.trim_end_matches('\n'))
        .map_err(|_| bad(format_args!("{k:?} is not base64")))
}

/// Inflate a zlib stream, refusing more than [`MAX_INFLATED`] bytes.
pub fn inflate(data: &[u8]) -> Result<Vec<u8>, Error> {
    miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(data, MAX_INFLATED).map_err(|e| {
        bad(match e.status {
            miniz_oxide::inflate::TINFLStatus::HasMoreOutput => "inflates to more than 1 MiB",
            miniz_oxide::inflate::TINFLStatus::FailedCannotMakeProgress => "zlib data truncated",
            _ => "not zlib data",
        })
    })
}

impl Payload {
    /// Parse the body of a `getNetworkConfig` reply (zlib-compressed JSON).
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        Self::parse_json(&inflate(body)?)
    }

    /// Parse the inflated JSON text.
    pub fn parse_json(json: &[u8]) -> Result<Self, Error> {
        let v: Value = serde_json::from_slice(json).map_err(|e| bad(format_args!("JSON: {e}")))?;
        let Value::Object(map) = v else {
            return Err(bad("not a JSON object"));
        };
        let mut o = Obj(map);

        let base64_keys: Vec<String> = match o.take("") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|k| as_str("\"\"", k).map(str::to_owned))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad("\"\" is not a list of keys")),
        };
        if !base64_keys.iter().any(|k| k == "version") {
            return Err(bad("\"version\" is not listed as base64"));
        }
        let mut extra_binary = Vec::new();
        let mut version = None;
        for k in &base64_keys {
            let Some(v) = o.take(k) else {
                return Err(bad(format_args!("missing base64 key {k:?}")));
            };
            let bytes = b64(k, as_str(k, &v)?)?;
            if k == "version" {
                version = Some(Version::parse(&bytes)?);
            } else {
                extra_binary.push((k.clone(), bytes));
            }
        }
        let version = version.ok_or_else(|| bad("missing version"))?;

        let hmac = |o: &mut Obj, k: &'static str| -> Result<Option<EncryptedHmac>, Error> {
            Ok(match o.take(k) {
                None | Some(Value::Null) => None,
                Some(v) => match as_str(k, &v)? {
                    "" => Some(EncryptedHmac::AcceptUnsigned),
                    s => Some(EncryptedHmac::Encrypted(b64(k, s)?)),
                },
            })
        };
        let babel_hmac_sign = hmac(&mut o, "babel_hmac_sign")?;
        let babel_hmac_accept = hmac(&mut o, "babel_hmac_accept")?;

        let v = o.need("babel_default")?;
        let babel_default = as_str("babel_default", &v)?.to_owned();
        let crl = match o.need("crl")? {
            Value::Array(a) => a
                .iter()
                .map(|s| as_u64("crl", s))
                .collect::<Result<_, _>>()?,
            _ => return Err(bad("\"crl\" is not a list")),
        };
        let mut num = |k: &'static str| -> Result<u32, Error> { as_u32(k, &o.need(k)?) };
        let protocol = num("protocol")?;
        let min_protocol = num("min_protocol")?;
        let client_count = num("client_count")?;
        let max_clients = num("max_clients")?;
        let hello = num("hello")?;
        let tunnel_refresh = num("tunnel_refresh")?;
        let encrypt = o
            .need("encrypt")?
            .as_bool()
            .ok_or_else(|| bad("\"encrypt\" is not a boolean"))?;
        let registry_prefix = match o.need("registry_prefix")? {
            Value::Null => None,
            v => Some(Prefix::from_bits(as_str("registry_prefix", &v)?)?),
        };
        let ipv4 = match o.take("ipv4") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let s = as_str("ipv4", &v)?;
                let parsed = s.split_once('/').and_then(|(ip, n)| {
                    let n: u8 = n.parse().ok()?;
                    (n <= 32).then_some((ip.parse::<Ipv4Addr>().ok()?, n))
                });
                Some(parsed.ok_or_else(|| bad(format_args!("\"ipv4\" {s:?} is not IP/N")))?)
            }
        };
        let ipv4_sublen = match o.take("ipv4_sublen") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                u8::try_from(as_u64("ipv4_sublen", &v)?)
                    .ok()
                    .filter(|&n| n <= 32)
                    .ok_or_else(|| bad("\"ipv4_sublen\" out of range"))?,
            ),
        };
        let same_country = match o.take("same_country") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|c| as_str("same_country", c).map(str::to_owned))
                    .collect::<Result<_, _>>()?,
            ),
            Some(_) => return Err(bad("\"same_country\" is not a list")),
        };
        let seconds = |o: &mut Obj, k: &'static str| -> Result<Option<u64>, Error> {
            match o.take(k) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_f64() {
                    // Python may send a float timestamp; whole seconds are enough.
                    Some(f) if v.is_f64() && (0.0..1e18).contains(&f) => Ok(Some(f as u64)),
                    _ => as_u64(k, &v).map(Some),
                },
            }
        };
        let valid_until = seconds(&mut o, "valid_until")?;
        let delay_restart = seconds(&mut o, "delay_restart")?;

        // serde_json's Map (without preserve_order) is a BTreeMap: sorted.
        let extra = o.0.into_iter().map(|(k, v)| (k, v.to_string())).collect();
        extra_binary.sort();
        Ok(Payload {
            fields: Fields {
                babel_default,
                crl,
                protocol,
                min_protocol,
                registry_prefix,
                client_count,
                max_clients,
                encrypt,
                hello,
                tunnel_refresh,
                ipv4,
                ipv4_sublen,
                same_country,
                valid_until,
                delay_restart,
                extra,
                extra_binary,
            },
            version,
            babel_hmac_sign,
            babel_hmac_accept,
        })
    }

    /// Verify the version signature with the CA key and decrypt the babel
    /// HMAC keys with the node key. Call only on a payload whose reply HMAC
    /// was verified (see the README on RSA decryption).
    pub fn open(self, ca: &RsaPublicKey, key: &RsaPrivateKey) -> Result<NetworkConfig, Error> {
        self.version.verify(ca)?;
        let dec = |h: Option<EncryptedHmac>, what| -> Result<Option<BabelHmac>, Error> {
            Ok(match h {
                None => None,
                Some(EncryptedHmac::AcceptUnsigned) => Some(BabelHmac::AcceptUnsigned),
                Some(EncryptedHmac::Encrypted(c)) => {
                    Some(BabelHmac::Key(crate::cert::decrypt(key, &c, what)?))
                }
            })
        };
        Ok(NetworkConfig {
            babel_hmac_sign: dec(self.babel_hmac_sign, "babel_hmac_sign")?,
            babel_hmac_accept: dec(self.babel_hmac_accept, "babel_hmac_accept")?,
            fields: self.fields,
            version: self.version,
        })
    }
}

impl NetworkConfig {
    /// True if `serial` (an issued certificate's serial number) is revoked.
    pub fn is_revoked(&self, serial: u64) -> bool {
        self.crl.contains(&serial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deflate(json: &str) -> Vec<u8> {
        miniz_oxide::deflate::compress_to_vec_zlib(json.as_bytes(), 6)
    }

    const MINIMAL: &str = r#"{"babel_default": "x", "crl": [3, 7], "protocol": 8,
        "registry_prefix": "0000", "client_count": 10, "encrypt": true, "hello": 15,
        "max_clients": 20, "min_protocol": 1, "tunnel_refresh": 300,
        "": ["version", "blob"], "version": "ASE=", "blob": "AAE=",
        "babel_hmac_sign": "AAAA", "babel_hmac_accept": "",
        "ipv4": "10.42.0.0/16", "ipv4_sublen": 8, "same_country": ["FR"],
        "valid_until": 1700000000.5, "delay_restart": 30, "future": {"a": [1]}}"#;

    #[test]
    fn every_field_is_typed() {
        let p = Payload::parse(&deflate(MINIMAL)).unwrap();
        let f = &p.fields;
        assert_eq!(f.babel_default, "x");
        assert_eq!(f.crl, [3, 7]);
        assert_eq!((f.protocol, f.min_protocol), (8, 1));
        assert_eq!(f.registry_prefix, Some(Prefix::from_bits("0000").unwrap()));
        assert_eq!(
            (f.client_count, f.max_clients, f.hello, f.tunnel_refresh),
            (10, 20, 15, 300)
        );
        assert!(f.encrypt);
        assert_eq!(f.ipv4, Some((Ipv4Addr::new(10, 42, 0, 0), 16)));
        assert_eq!(f.ipv4_sublen, Some(8));
        assert_eq!(f.same_country.as_deref(), Some(&["FR".to_string()][..]));
        assert_eq!(f.valid_until, Some(1_700_000_000));
        assert_eq!(f.delay_restart, Some(30));
        assert_eq!(
            f.extra,
            [("future".to_string(), r#"{"a":[1]}"#.to_string())]
        );
        assert_eq!(f.extra_binary, [("blob".to_string(), vec![0, 1])]);
        assert_eq!(p.version.number, 1);
        assert_eq!(
            p.babel_hmac_sign,
            Some(EncryptedHmac::Encrypted(vec![0, 0, 0]))
        );
        assert_eq!(p.babel_hmac_accept, Some(EncryptedHmac::AcceptUnsigned));
    }

    #[test]
    fn real_payload_opens() {
        use crate::testdata as td;
        let ca = crate::cert::Certificate::from_pem(td::CA_PEM).unwrap();
        let key = crate::cert::key_from_pem(td::NODE_KEY_PEM).unwrap();
        let p = Payload::parse(td::NETWORK_CONFIG).unwrap();
        let c = p.clone().open(ca.public_key(), &key).unwrap();
        assert_eq!(
            c.babel_default,
            "max-rtt-penalty 5000 rtt-max 500 rtt-decay 125"
        );
        assert_eq!(c.crl, [1]);
        assert!(c.is_revoked(1) && !c.is_revoked(2));
        assert_eq!((c.protocol, c.min_protocol), (8, 2));
        assert_eq!(c.registry_prefix.unwrap().to_cn(), "0/20");
        assert_eq!(
            (c.client_count, c.max_clients, c.hello, c.tunnel_refresh),
            (5, 9, 20, 200)
        );
        assert!(c.encrypt);
        assert_eq!(c.ipv4, Some((Ipv4Addr::new(10, 42, 0, 0), 16)));
        assert_eq!(c.ipv4_sublen, Some(8));
        assert_eq!(
            (c.same_country.as_ref(), c.valid_until, c.delay_restart),
            (None, None, None)
        );
        assert!(c.extra.is_empty() && c.extra_binary.is_empty());
        assert_eq!(c.version.number, 3);
        for k in [&c.babel_hmac_sign, &c.babel_hmac_accept] {
            assert!(matches!(k, Some(BabelHmac::Key(k)) if k.len() == 16));
        }
        assert_ne!(c.babel_hmac_sign, c.babel_hmac_accept);
        // A version signed by another key is refused.
        let other = crate::cert::Certificate::from_pem(td::NODE_CERT_PEM).unwrap();
        assert!(matches!(
            p.clone().open(other.public_key(), &key),
            Err(Error::Signature { .. })
        ));
        // Every truncation is an error, never a panic.
        for n in 0..td::NETWORK_CONFIG.len() {
            assert!(Payload::parse(&td::NETWORK_CONFIG[..n]).is_err());
        }
    }

    #[test]
    fn bad_payloads_are_errors() {
        assert!(Payload::parse(b"").is_err());
        assert!(Payload::parse(b"garbage").is_err());
        let z = deflate(MINIMAL);
        assert!(Payload::parse(&z[..z.len() / 2]).is_err());
        for (from, to) in [
            (r#""hello": 15"#, r#""hello": "15""#),
            (r#""hello": 15"#, r#""hello": -1"#),
            (r#""hello": 15"#, r#""hello": 99999999999"#),
            (r#""encrypt": true"#, r#""encrypt": 1"#),
            (r#""crl": [3, 7]"#, r#""crl": [3, "7"]"#),
            (r#""version": "ASE=""#, r#""version": "AS""#),
            (r#""version": "ASE=""#, r#""version": "AQ==""#),
            (r#""version", "blob""#, r#""blob""#),
            (
                r#""registry_prefix": "0000""#,
                r#""registry_prefix": "0102""#,
            ),
            (r#""ipv4": "10.42.0.0/16""#, r#""ipv4": "10.42.0.0/33""#),
            (r#""babel_default": "x", "#, ""),
        ] {
            let json = MINIMAL.replace(from, to);
            assert_ne!(json, MINIMAL);
            assert!(Payload::parse(&deflate(&json)).is_err(), "{to}");
        }
        // A zlib bomb stops at the cap.
        let big = miniz_oxide::deflate::compress_to_vec_zlib(&vec![b' '; MAX_INFLATED + 1], 9);
        assert!(Payload::parse(&big).is_err());
    }
}
