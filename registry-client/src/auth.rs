//! The registry's session authentication: `hello` replies and the HMAC chain.
//!
//! `hello` returns `RSA-encrypt(node key, K0) || CA-sign-SHA512(that)`, both
//! halves the size of the modulus. Each authenticated call then goes:
//! - request header `Re6stHMAC: base64(HMAC-SHA1(K, "/method?query"))`;
//! - reply header `Re6stHMAC: base64(HMAC-SHA1(SHA1(K), body))`;
//! - next request key `SHA1(SHA1(K))`.
//!
//! Everything here is pure; [`crate::client::Session`] drives it.

use base64::Engine;
use hmac::{Hmac, Mac};
use rsa::{RsaPrivateKey, RsaPublicKey};
use sha1::{Digest, Sha1};

use crate::Error;

/// Length of the session secret drawn by the registry (`>QQI`).
pub const SECRET_LEN: usize = 20;

/// A `hello` reply split into its two halves; lengths checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hello<'a> {
    pub encrypted: &'a [u8],
    pub signature: &'a [u8],
}

impl<'a> Hello<'a> {
    /// Split a hello body. It must be two equal, non-empty halves.
    pub fn parse(body: &'a [u8]) -> Result<Self, Error> {
        if body.is_empty() || body.len() % 2 != 0 {
            return Err(Error::malformed(
                "hello reply",
                format_args!("{} bytes, expected two equal halves", body.len()),
            ));
        }
        let (encrypted, signature) = body.split_at(body.len() / 2);
        Ok(Hello {
            encrypted,
            signature,
        })
    }

    /// Verify the CA signature first, then decrypt the session secret.
    /// Nothing is decrypted unless the CA signed it (no decryption oracle).
    pub fn open(&self, ca: &RsaPublicKey, key: &RsaPrivateKey) -> Result<SessionKey, Error> {
        crate::cert::verify_sha512(ca, self.encrypted, self.signature, "hello reply")?;
        let secret = crate::cert::decrypt(key, self.encrypted, "hello secret")?;
        let k: [u8; SECRET_LEN] = secret.as_slice().try_into().map_err(|_| {
            Error::malformed(
                "hello secret",
                format_args!("{} bytes, expected {SECRET_LEN}", secret.len()),
            )
        })?;
        Ok(SessionKey(k))
    }
}

/// The current request key `K` of an HMAC chain.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(pub [u8; SECRET_LEN]);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> [u8; 20] {
    // HMAC accepts keys of any length: this cannot fail.
    let mut m = <Hmac<Sha1> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(data);
    m.finalize().into_bytes().into()
}

fn sha1(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

/// What one call of the chain needs: the request header, the reply key and
/// the next request key.
#[derive(Debug, Clone)]
pub struct CallKeys {
    /// Value of the request's `Re6stHMAC` header.
    pub header: String,
    /// Key that authenticates the reply, `SHA1(K)`.
    pub reply: SessionKey,
    /// Request key of the next call, `SHA1(SHA1(K))`.
    pub next: SessionKey,
}

impl SessionKey {
    /// Keys for one call whose request line is `path_query` (`"/method?query"`,
    /// exactly the bytes sent).
    pub fn call(&self, path_query: &str) -> CallKeys {
        let header = base64::engine::general_purpose::STANDARD
            .encode(hmac_sha1(&self.0, path_query.as_bytes()));
        let reply = sha1(&self.0);
        let next = sha1(&reply);
        CallKeys {
            header,
            reply: SessionKey(reply),
            next: SessionKey(next),
        }
    }

    /// Check a reply body against its `Re6stHMAC` header, with `self` the reply key.
    pub fn verify_reply(
        &self,
        body: &[u8],
        header: Option<&str>,
        method: &'static str,
    ) -> Result<(), Error> {
        let header = header.ok_or(Error::Hmac { method })?;
        let got = base64::engine::general_purpose::STANDARD
            .decode(header.trim())
            .map_err(|_| Error::Hmac { method })?;
        let want = hmac_sha1(&self.0, body);
        // Constant time, though nothing secret is learnt from a mismatch here.
        if got.len() == want.len() && got.iter().zip(want).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0 {
            Ok(())
        } else {
            Err(Error::Hmac { method })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_matches_python() {
        // Computed with hmac/hashlib in Python as registry.py does:
        // K0 = bytes(range(20)); h = HMAC(K0, b"/getNetworkConfig?cn=0000000000000001", sha1)
        let k0 = SessionKey(core::array::from_fn(|i| i as u8));
        let c = k0.call("/getNetworkConfig?cn=0000000000000001");
        assert_eq!(c.header, "BIcMwJ5NqRRv1KqdgNk1omkyIRU=");
        assert_eq!(
            crate::cert::hex(&c.reply.0),
            "602c63d2f3d13ca3206cdf204cde24e7d8f4266c"
        );
        assert_eq!(
            crate::cert::hex(&c.next.0),
            "8f610962f8582709735b1a7964b86202a5e4a9df"
        );
        let body_mac =
            base64::engine::general_purpose::STANDARD.encode(hmac_sha1(&c.reply.0, b"body"));
        c.reply.verify_reply(b"body", Some(&body_mac), "m").unwrap();
        assert!(c.reply.verify_reply(b"bodz", Some(&body_mac), "m").is_err());
        assert!(c.reply.verify_reply(b"body", None, "m").is_err());
        assert!(c.reply.verify_reply(b"body", Some("!!"), "m").is_err());
        assert!(k0.verify_reply(b"body", Some(&body_mac), "m").is_err());
    }

    #[test]
    fn hello_split() {
        assert!(Hello::parse(b"").is_err());
        assert!(Hello::parse(b"abc").is_err());
        let h = Hello::parse(b"abcd").unwrap();
        assert_eq!((h.encrypted, h.signature), (&b"ab"[..], &b"cd"[..]));
    }
}
