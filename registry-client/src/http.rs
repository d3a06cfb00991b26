//! The HTTP transport: one GET per call, nothing else.
//!
//! [`Transport`] is the seam between the protocol logic ([`crate::client`])
//! and the network, so the logic can be tested with canned replies. The real
//! one, [`HttpTransport`], is ureq without default features: plain HTTP, no C
//! code. With the `tls` feature, `https://` URLs work too (rustls + ring).

use std::io::ErrorKind;
use std::time::Duration;

use crate::Error;

/// Largest reply body accepted (certificates, DH params and network configs
/// are a few KiB).
pub const MAX_BODY: u64 = 1 << 20;

/// Name of the header carrying HMACs, both ways.
pub const HMAC_HEADER: &str = "Re6stHMAC";

/// A reply: status, the `Re6stHMAC` header if any, and the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub hmac: Option<String>,
    pub body: Vec<u8>,
}

/// Sends `GET <base><path_query>`. `path_query` is `"/method?query"`, exactly
/// the bytes the HMAC covers.
pub trait Transport {
    fn get(&mut self, path_query: &str, hmac: Option<&str>) -> Result<Response, Error>;
    /// The registry URL, for messages.
    fn url(&self) -> &str;
}

/// Connect and whole-call timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub total: Duration,
}

impl Default for Timeouts {
    /// re6st's client uses 60 s; connecting gets 10 s of it.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            total: Duration::from_secs(60),
        }
    }
}

/// ureq-based transport.
pub struct HttpTransport {
    agent: ureq::Agent,
    base: String,
    url: String,
}

fn user_agent() -> String {
    format!(
        "re6stnet/re6st-lite-{}, {}-{}",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

impl HttpTransport {
    /// `url` is the registry URL as given to re6st-conf (`http://host:port/`,
    /// possibly with a path the proxy strips).
    pub fn new(url: &str, timeouts: Timeouts) -> Result<Self, Error> {
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if let Some(r) = url.strip_prefix("https://") {
            if !cfg!(feature = "tls") {
                return Err(Error::Usage(format!(
                    "{url}: this build has no HTTPS support (cargo feature \"tls\")"
                )));
            }
            r
        } else {
            return Err(Error::Usage(format!(
                "{url}: registry URL must start with http:// or https://"
            )));
        };
        if rest.is_empty() || rest.starts_with('/') || rest.contains(['?', '#', ' ']) {
            return Err(Error::Usage(format!("{url}: not a registry URL")));
        }
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(timeouts.connect))
            .timeout_global(Some(timeouts.total))
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .user_agent(user_agent())
            .build();
        Ok(HttpTransport {
            agent: config.into(),
            base: url.trim_end_matches('/').to_string(),
            url: url.to_string(),
        })
    }

    fn map_error(&self, e: ureq::Error, reading_body: bool) -> Error {
        let url = self.url.clone();
        match e {
            ureq::Error::Timeout(_) => Error::Timeout { url },
            ureq::Error::Io(io) => match io.kind() {
                ErrorKind::TimedOut | ErrorKind::WouldBlock => Error::Timeout { url },
                // The peer closed or reset mid-exchange: a broken reply.
                ErrorKind::UnexpectedEof
                | ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::BrokenPipe
                | ErrorKind::InvalidData => Error::malformed(
                    "HTTP reply",
                    format_args!("connection closed before a complete reply ({io})"),
                ),
                _ if reading_body => Error::malformed("HTTP reply", io),
                // Refused, unreachable, or an errno the platform does not
                // name (qemu-user passes host errnos through SO_ERROR).
                _ => Error::Unreachable {
                    url,
                    reason: io.to_string(),
                },
            },
            ureq::Error::HostNotFound => Error::Unreachable {
                url,
                reason: "host not found".into(),
            },
            ureq::Error::ConnectionFailed => Error::Unreachable {
                url,
                reason: "connection failed".into(),
            },
            ureq::Error::BodyExceedsLimit(_) => Error::malformed(
                "HTTP reply",
                format_args!("body larger than {MAX_BODY} bytes"),
            ),
            ureq::Error::Protocol(p) => Error::malformed("HTTP reply", p),
            ureq::Error::Tls(t) => Error::Unreachable {
                url,
                reason: format!("TLS: {t}"),
            },
            other => Error::malformed("HTTP reply", other),
        }
    }
}

impl Transport for HttpTransport {
    fn get(&mut self, path_query: &str, hmac: Option<&str>) -> Result<Response, Error> {
        let mut req = self.agent.get(format!("{}{path_query}", self.base));
        if let Some(h) = hmac {
            req = req.header(HMAC_HEADER, h);
        }
        let resp = req.call().map_err(|e| self.map_error(e, false))?;
        let status = resp.status().as_u16();
        let hmac = resp
            .headers()
            .get(HMAC_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp
            .into_body()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| self.map_error(e, true))?;
        Ok(Response { status, hmac, body })
    }

    fn url(&self) -> &str {
        &self.url
    }
}

/// Python's `urllib.parse.quote_plus`: what re6st's client puts in queries.
/// Unreserved characters stay, space becomes `+`, the rest `%XX`.
pub fn quote_plus(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `urlencode` of `(key, value)` pairs, in order.
pub fn query(args: &[(&str, &str)]) -> String {
    args.iter()
        .map(|(k, v)| format!("{}={}", quote_plus(k), quote_plus(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_python() {
        // urllib.parse.urlencode({'email': 'a b/c@d.e', 'req': '-----B\n+='})
        assert_eq!(
            query(&[("email", "a b/c@d.e"), ("req", "-----B\n+=")]),
            "email=a+b%2Fc%40d.e&req=-----B%0A%2B%3D"
        );
        assert_eq!(query(&[("token", "")]), "token=");
        assert_eq!(quote_plus("é"), "%C3%A9");
    }

    #[test]
    fn urls() {
        let t = Timeouts::default();
        assert!(HttpTransport::new("http://127.0.0.1:1/", t).is_ok());
        assert_eq!(
            HttpTransport::new("http://h/re6st/", t).unwrap().base,
            "http://h/re6st"
        );
        assert!(HttpTransport::new("ftp://h/", t).is_err());
        assert!(HttpTransport::new("http://", t).is_err());
        assert!(HttpTransport::new("127.0.0.1:80", t).is_err());
        assert_eq!(
            HttpTransport::new("https://h/", t).is_ok(),
            cfg!(feature = "tls")
        );
    }
}
