//! The registry API, as re6st's `RegistryClient` speaks it.
//!
//! - [`Registry`]: the unauthenticated calls (`getCa`, `requestToken`,
//!   `requestCertificate`).
//! - [`Session`]: the authenticated calls of one node. It owns the HMAC chain
//!   key, and every call takes `&mut self`, so two calls for the same prefix
//!   can never overlap within a process (the chain is strictly sequential).
//!   A rejected key (registry restarted: 400 on 0.642, 401 on git HEAD, or
//!   any other error status) is dropped and the call retried once after a
//!   new `hello`, which is how re6st clients survive registry restarts.

use rsa::RsaPrivateKey;

use crate::auth::{Hello, SessionKey};
use crate::bootstrap::BootstrapPeer;
use crate::cert::Certificate;
use crate::http::{query, Response, Transport};
use crate::netconfig::{NetworkConfig, Payload};
use crate::{Error, Prefix};

/// The protocol version announced in `hello` (re6stnet 0.642's).
pub const PROTOCOL: u32 = 8;

/// Unauthenticated registry calls.
pub struct Registry<T: Transport> {
    t: T,
}

fn unexpected(method: &'static str, r: &Response) -> Error {
    match r.status {
        403 => Error::Forbidden { method },
        status => Error::Status { method, status },
    }
}

impl<T: Transport> Registry<T> {
    pub fn new(transport: T) -> Self {
        Registry { t: transport }
    }

    pub fn transport(&mut self) -> &mut T {
        &mut self.t
    }

    /// `getCa`: the network's CA certificate.
    pub fn get_ca(&mut self) -> Result<Certificate, Error> {
        let r = self.t.get("/getCa", None)?;
        if r.status != 200 {
            return Err(unexpected("getCa", &r));
        }
        Certificate::from_pem(&r.body)
    }

    /// `requestToken`: ask the registry to mail a token to `email`.
    pub fn request_token(&mut self, email: &str) -> Result<(), Error> {
        let r = self.t.get(
            &format!("/requestToken?{}", query(&[("email", email)])),
            None,
        )?;
        match r.status {
            200 | 204 => Ok(()),
            _ => Err(unexpected("requestToken", &r)),
        }
    }

    /// `requestCertificate`: `token` empty for an anonymous certificate.
    /// 204 means the token is invalid or expired, 403 that this kind of
    /// registration is disabled. The certificate is parsed, not verified.
    pub fn request_certificate(
        &mut self,
        token: &str,
        csr_pem: &str,
        location: Option<&str>,
    ) -> Result<Certificate, Error> {
        let mut args = vec![("token", token), ("req", csr_pem)];
        if let Some(l) = location {
            args.push(("location", l));
        }
        let r = self
            .t
            .get(&format!("/requestCertificate?{}", query(&args)), None)?;
        match r.status {
            200 if !r.body.is_empty() => Certificate::from_pem(&r.body),
            200 | 204 => Err(Error::InvalidToken),
            _ => Err(unexpected("requestCertificate", &r)),
        }
    }

    /// Start authenticated calls as the node `prefix`.
    pub fn session(self, ca: Certificate, key: RsaPrivateKey, prefix: Prefix) -> Session<T> {
        Session {
            t: self.t,
            ca,
            key,
            prefix,
            bits: prefix.to_bits(),
            hmac: None,
        }
    }
}

/// Authenticated calls of one node (one prefix).
pub struct Session<T: Transport> {
    t: T,
    ca: Certificate,
    key: RsaPrivateKey,
    prefix: Prefix,
    bits: String,
    hmac: Option<SessionKey>,
}

impl<T: Transport> Session<T> {
    pub fn prefix(&self) -> Prefix {
        self.prefix
    }

    pub fn transport(&mut self) -> &mut T {
        &mut self.t
    }

    /// True once a hello succeeded and the chain key is usable.
    pub fn has_key(&self) -> bool {
        self.hmac.is_some()
    }

    /// Forget the chain key (the next call starts with a new hello).
    pub fn reset(&mut self) {
        self.hmac = None;
    }

    /// `getCa`, for a renewed CA certificate: accepted only with the same
    /// key and network as ours (a new key would be a new network; over
    /// plain HTTP, anyone could answer), and then ours from now on. The
    /// same certificate back is not an error.
    pub fn renewed_ca(&mut self) -> Result<Certificate, Error> {
        let r = self.t.get("/getCa", None)?;
        if r.status != 200 {
            return Err(unexpected("getCa", &r));
        }
        let ca = Certificate::from_pem(&r.body)?;
        if ca.public_key() != self.ca.public_key() || ca.network()? != self.ca.network()? {
            return Err(Error::malformed(
                "getCa",
                "a CA with another key or network",
            ));
        }
        if ca.not_after() > self.ca.not_after() {
            self.ca = ca.clone();
        }
        Ok(ca)
    }

    /// `hello`: get a fresh session secret.
    pub fn hello(&mut self) -> Result<(), Error> {
        self.hmac = None;
        let pq = format!(
            "/hello?{}",
            query(&[
                ("client_prefix", &self.bits),
                ("protocol", &PROTOCOL.to_string())
            ])
        );
        let r = self.t.get(&pq, None)?;
        match r.status {
            200 => {
                let k = Hello::parse(&r.body)?.open(self.ca.public_key(), &self.key)?;
                self.hmac = Some(k);
                Ok(())
            }
            // No certificate for this prefix: 404 on git HEAD, 500 on 0.642.
            404 | 500 => Err(Error::UnknownNode {
                prefix: self.prefix.to_cn(),
            }),
            _ => Err(unexpected("hello", &r)),
        }
    }

    /// One authenticated call: `cn` first, then `args`. `None` for 204.
    pub fn call(
        &mut self,
        method: &'static str,
        args: &[(&str, &str)],
    ) -> Result<Option<Vec<u8>>, Error> {
        let mut all = vec![("cn", self.bits.as_str())];
        all.extend_from_slice(args);
        let pq = format!("/{method}?{}", query(&all));
        let mut retried = false;
        loop {
            let cached = self.hmac.is_some();
            if !cached {
                self.hello()?;
            }
            // The key is consumed whatever happens; only success stores the next one.
            let Some(k) = self.hmac.take() else {
                return Err(Error::UnknownNode {
                    prefix: self.prefix.to_cn(),
                });
            };
            let keys = k.call(&pq);
            let r = self.t.get(&pq, Some(&keys.header))?;
            match r.status {
                200 | 204 => {
                    keys.reply
                        .verify_reply(&r.body, r.hmac.as_deref(), method)?;
                    self.hmac = Some(keys.next);
                    return Ok((r.status == 200).then_some(r.body));
                }
                403 => return Err(Error::Forbidden { method }),
                status if cached && !retried => {
                    log::info!(
                        "{method}: registry rejected the session key (HTTP {status}), new hello"
                    );
                    retried = true;
                }
                _ => return Err(unexpected(method, &r)),
            }
        }
    }

    /// `renewCertificate`: the same certificate while more than 30 days from
    /// expiry, else (or if revoked) a new one. Verified against the CA and
    /// our key before it is returned.
    pub fn renew_certificate(&mut self, now: u64) -> Result<Certificate, Error> {
        let body = self
            .call("renewCertificate", &[])?
            .ok_or_else(|| Error::malformed("renewCertificate reply", "empty"))?;
        let cert = Certificate::from_pem(&body)?;
        check_issued(&cert, &self.ca, &self.key, now)?;
        if cert.prefix()? != self.prefix {
            return Err(Error::Certificate(format!(
                "renewed certificate is for {}, not {}",
                cert.prefix()?.to_cn(),
                self.prefix.to_cn()
            )));
        }
        Ok(cert)
    }

    /// `getNetworkConfig`: the verified config and the raw payload (what
    /// the state directory caches).
    pub fn network_config(&mut self) -> Result<(NetworkConfig, Vec<u8>), Error> {
        let body = self
            .call("getNetworkConfig", &[])?
            .ok_or_else(|| Error::malformed("network config", "empty reply"))?;
        let config = Payload::parse(&body)?.open(self.ca.public_key(), &self.key)?;
        Ok((config, body))
    }

    /// `getBootstrapPeer`: `None` when the registry knows no peer (204).
    pub fn bootstrap_peer(&mut self) -> Result<Option<BootstrapPeer>, Error> {
        match self.call("getBootstrapPeer", &[])? {
            None => Ok(None),
            Some(body) => BootstrapPeer::open(&body, &self.key).map(Some),
        }
    }

    /// `getDh`: the DH parameters (PEM) for OpenVPN-style tunnel servers.
    pub fn dh(&mut self) -> Result<Vec<u8>, Error> {
        self.call("getDh", &[])?
            .ok_or_else(|| Error::malformed("getDh reply", "empty"))
    }
}

/// Checks on a certificate the registry issued to us: signed by the CA, for
/// our key, not expired (notBefore is not checked: see
/// [`Certificate::check_not_expired`]), with a prefix CN that fits in the network.
pub fn check_issued(
    cert: &Certificate,
    ca: &Certificate,
    key: &RsaPrivateKey,
    now: u64,
) -> Result<(), Error> {
    cert.verify_issued_by(ca)?;
    if !cert.is_for_key(key) {
        return Err(Error::Certificate(
            "issued for another key than ours".to_string(),
        ));
    }
    cert.check_not_expired(now)?;
    crate::Subnet::new(ca.network()?, cert.prefix()?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Canned replies; records what was sent.
    struct Canned {
        replies: VecDeque<Result<Response, Error>>,
        sent: Vec<(String, Option<String>)>,
    }

    impl Transport for Canned {
        fn get(&mut self, pq: &str, hmac: Option<&str>) -> Result<Response, Error> {
            self.sent.push((pq.to_string(), hmac.map(str::to_owned)));
            self.replies.pop_front().unwrap_or_else(|| {
                Err(Error::Timeout {
                    url: "canned".into(),
                })
            })
        }
        fn url(&self) -> &str {
            "canned"
        }
    }

    fn reply(status: u16, body: &[u8]) -> Result<Response, Error> {
        Ok(Response {
            status,
            hmac: None,
            body: body.to_vec(),
        })
    }

    fn canned(replies: Vec<Result<Response, Error>>) -> Registry<Canned> {
        Registry::new(Canned {
            replies: replies.into(),
            sent: Vec::new(),
        })
    }

    use crate::testdata as td;

    fn signed(status: u16, body: &[u8], hmac: &str) -> Result<Response, Error> {
        Ok(Response {
            status,
            hmac: Some(hmac.to_string()),
            body: body.to_vec(),
        })
    }

    fn session(replies: Vec<Result<Response, Error>>) -> Session<Canned> {
        let ca = Certificate::from_pem(td::CA_PEM).unwrap();
        let key = crate::cert::key_from_pem(td::NODE_KEY_PEM).unwrap();
        canned(replies).session(ca, key, Prefix::from_bits(td::chain("prefix")).unwrap())
    }

    #[test]
    fn replays_a_real_chain() {
        let mut s = session(vec![
            reply(200, td::HELLO),
            signed(200, td::NETWORK_CONFIG, td::chain("getNetworkConfig.reply")),
            signed(200, td::BOOTSTRAP_PEER, td::chain("getBootstrapPeer.reply")),
            signed(
                200,
                td::RENEW_CERTIFICATE,
                td::chain("renewCertificate.reply"),
            ),
        ]);
        let (config, raw) = s.network_config().unwrap();
        assert_eq!(raw, td::NETWORK_CONFIG);
        assert_eq!(config.client_count, 5);
        let peer = s.bootstrap_peer().unwrap().unwrap();
        assert_eq!(peer.prefix.to_cn(), "0/20");
        let node = Certificate::from_pem(td::NODE_CERT_PEM).unwrap();
        let cert = s.renew_certificate(node.not_before() + 60).unwrap();
        assert_eq!(cert.der(), node.der());
        let sent = &s.transport().sent;
        assert_eq!(
            sent[0],
            (
                "/hello?client_prefix=00000000000000000001&protocol=8".into(),
                None
            )
        );
        for (i, m) in ["getNetworkConfig", "getBootstrapPeer", "renewCertificate"]
            .iter()
            .enumerate()
        {
            assert_eq!(sent[i + 1].0, format!("/{m}?cn=00000000000000000001"));
            assert_eq!(
                sent[i + 1].1.as_deref(),
                Some(td::chain(&format!("{m}.request")))
            );
        }
        // An expired certificate from the registry is refused.
        let mut s = session(vec![
            reply(200, td::HELLO),
            signed(200, td::NETWORK_CONFIG, td::chain("getNetworkConfig.reply")),
            signed(200, td::BOOTSTRAP_PEER, td::chain("getBootstrapPeer.reply")),
            signed(
                200,
                td::RENEW_CERTIFICATE,
                td::chain("renewCertificate.reply"),
            ),
        ]);
        s.network_config().unwrap();
        s.bootstrap_peer().unwrap();
        assert!(matches!(
            s.renew_certificate(node.not_after() + 1),
            Err(Error::Certificate(_))
        ));
    }

    #[test]
    fn stale_key_gets_one_new_hello() {
        for status in [400, 401, 500] {
            let mut s = session(vec![
                reply(status, b""),
                reply(200, td::HELLO),
                signed(200, td::NETWORK_CONFIG, td::chain("getNetworkConfig.reply")),
            ]);
            s.hmac = Some(SessionKey([7; 20]));
            s.network_config().unwrap();
            assert_eq!(s.transport().sent.len(), 3);
            assert!(s.has_key());
        }
        // A fresh key that is rejected is not retried.
        let mut s = session(vec![reply(200, td::HELLO), reply(401, b"")]);
        assert!(matches!(
            s.network_config(),
            Err(Error::Status { status: 401, .. })
        ));
        assert!(!s.has_key());
        // Rejected twice: one retry only.
        let mut s = session(vec![
            reply(400, b""),
            reply(200, td::HELLO),
            reply(400, b""),
        ]);
        s.hmac = Some(SessionKey([7; 20]));
        assert!(matches!(
            s.network_config(),
            Err(Error::Status { status: 400, .. })
        ));
        assert_eq!(s.transport().sent.len(), 3);
    }

    #[test]
    fn tampering_is_detected() {
        let mut body = td::NETWORK_CONFIG.to_vec();
        body[10] ^= 1;
        let mut s = session(vec![
            reply(200, td::HELLO),
            signed(200, &body, td::chain("getNetworkConfig.reply")),
        ]);
        assert!(matches!(s.network_config(), Err(Error::Hmac { .. })));
        assert!(!s.has_key());
        let mut s = session(vec![reply(200, td::HELLO), reply(200, td::NETWORK_CONFIG)]);
        assert!(matches!(s.network_config(), Err(Error::Hmac { .. })));
        // Hello signed by someone else than the CA.
        let mut hello = td::HELLO.to_vec();
        let n = hello.len();
        hello[n - 3] ^= 1;
        let mut s = session(vec![reply(200, &hello)]);
        assert!(matches!(s.hello(), Err(Error::Signature { .. })));
        for cut in [0, 1, 256, 511] {
            let mut s = session(vec![reply(200, &td::HELLO[..cut])]);
            assert!(s.hello().is_err());
        }
    }

    #[test]
    fn unknown_prefix_and_forbidden() {
        for status in [404, 500] {
            let mut s = session(vec![reply(status, b"")]);
            assert!(matches!(s.network_config(), Err(Error::UnknownNode { .. })));
        }
        let mut s = session(vec![reply(200, td::HELLO), reply(403, b"")]);
        assert!(matches!(s.dh(), Err(Error::Forbidden { .. })));
        let mut s = session(vec![
            reply(200, td::HELLO),
            signed(204, b"", &{
                // 204 replies carry the HMAC of the empty body.
                use base64::Engine;
                use hmac::Mac;
                let k: Vec<u8> = (0..20)
                    .map(|i| u8::from_str_radix(&td::chain("k0")[2 * i..2 * i + 2], 16).unwrap())
                    .collect();
                let k1 = <sha1::Sha1 as sha1::Digest>::digest(&k);
                let mut m = <hmac::Hmac<sha1::Sha1> as Mac>::new_from_slice(&k1).unwrap();
                m.update(b"");
                base64::engine::general_purpose::STANDARD.encode(m.finalize().into_bytes())
            }),
        ]);
        assert_eq!(s.bootstrap_peer().unwrap(), None);
    }

    #[test]
    fn unauthenticated_status_mapping() {
        let mut r = canned(vec![reply(204, b""), reply(403, b""), reply(200, b"junk")]);
        assert!(matches!(
            r.request_certificate("bad", "PEM", None),
            Err(Error::InvalidToken)
        ));
        assert!(matches!(
            r.request_certificate("", "PEM", Some("FR,EU")),
            Err(Error::Forbidden { .. })
        ));
        assert!(matches!(r.get_ca(), Err(Error::Malformed { .. })));
        let sent = &r.transport().sent;
        assert_eq!(sent[0].0, "/requestCertificate?token=bad&req=PEM");
        assert_eq!(
            sent[1].0,
            "/requestCertificate?token=&req=PEM&location=FR%2CEU"
        );
        assert_eq!(sent[2], ("/getCa".to_string(), None));
    }
}
