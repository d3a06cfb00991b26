//! The HTTP transport: one GET per call, nothing else.
//!
//! [`Transport`] is the seam between the protocol logic ([`crate::client`])
//! and the network, so the logic can be tested with canned replies. The real
//! one, [`HttpTransport`], is our own HTTP/1.1 client over `TcpStream`, or
//! over rustls for `https://` registries (a registry behind a TLS frontend,
//! as SlapOS deploys them). Replies are authenticated by the CA fingerprint,
//! the CA signatures and the HMAC chain either way; TLS adds privacy and
//! checks the frontend's certificate against the system's CA bundle. The
//! registry needs one request line and three headers, and a reply parser
//! ([`parse_reply`], fuzzed); ureq and its HTTP stack cost far more flash
//! (see the README's design notes).

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv6Addr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::Error;

mod reply;
pub use reply::parse_reply;
use reply::too_large;

/// Largest reply body accepted (certificates, DH params and network configs
/// are a few KiB).
pub const MAX_BODY: usize = 1 << 20;

/// Largest reply head (status line and headers); the registry's are ~200 bytes.
pub const MAX_HEAD: usize = 16 << 10;

/// Name of the header carrying HMACs, both ways.
pub const HMAC_HEADER: &str = "Re6stHMAC";

/// The CA bundle HTTPS servers are checked against unless the config names
/// another (OpenWrt's `ca-bundle` package and Debian's `ca-certificates`).
pub const SYSTEM_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

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

/// The registry over HTTP or HTTPS: one connection per call, closed after
/// the reply. No proxy from the environment (re6st's client uses none
/// either), redirects are not followed (a 3xx is an unexpected status).
pub struct HttpTransport {
    /// Where to connect: a name or an IP address (no brackets), and a port.
    host: String,
    port: u16,
    /// The URL's `host[:port]`, sent as `Host`.
    authority: String,
    /// The URL's path without its trailing `/` (a proxy may strip it); it
    /// prefixes every request path but is not covered by the HMAC.
    base: String,
    url: String,
    timeouts: Timeouts,
    /// `https://` only: the CA bundle, and the TLS settings made from it at
    /// the first call (so that checking a config does not read the bundle).
    tls: Option<(PathBuf, Option<Arc<ClientConfig>>)>,
}

/// A connection to the registry, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            // A server that closes without close_notify (Python's, many
            // frontends) ends the reply as a plain close would: the framing
            // decides whether it is complete, and the HMAC whether it is
            // genuine.
            Stream::Tls(s) => match s.read(buf) {
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(0),
                r => r,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
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
    /// `url` is the registry URL as given to re6st-conf
    /// (`http[s]://host[:port]/`, possibly with a path the proxy strips); the
    /// host may be a bracketed IPv6 literal. HTTPS servers are checked
    /// against [`SYSTEM_CA_FILE`] unless [`HttpTransport::with_ca_file`].
    pub fn new(url: &str, timeouts: Timeouts) -> Result<Self, Error> {
        let (rest, https) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => {
                return Err(Error::Usage(format!(
                    "{url}: registry URL must start with http:// or https://"
                )))
            }
        };
        let default_port = if https { 443 } else { 80 };
        let bad = || Error::Usage(format!("{url}: not a registry URL"));
        // The path goes into the request line as is: visible ASCII only.
        if rest.bytes().any(|b| !b.is_ascii_graphic()) || rest.contains(['?', '#', '@']) {
            return Err(bad());
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let (ip, port) = v6.split_once(']').ok_or_else(bad)?;
                ip.parse::<Ipv6Addr>().map_err(|_| bad())?;
                (ip, port)
            }
            None => authority.split_at(authority.find(':').unwrap_or(authority.len())),
        };
        let port = match port.strip_prefix(':') {
            None if port.is_empty() => default_port,
            Some("") => default_port,
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().ok().filter(|&p| p != 0).ok_or_else(bad)?
            }
            _ => return Err(bad()),
        };
        if host.is_empty() || https && ServerName::try_from(host).is_err() {
            return Err(bad());
        }
        Ok(HttpTransport {
            host: host.to_string(),
            port,
            authority: authority.to_string(),
            base: path.trim_end_matches('/').to_string(),
            url: url.to_string(),
            timeouts,
            tls: https.then(|| (PathBuf::from(SYSTEM_CA_FILE), None)),
        })
    }

    /// For `https://`: check the server against the CA certificates in
    /// `ca_file` (PEM) instead of the system's bundle. No effect on `http://`.
    pub fn with_ca_file(mut self, ca_file: impl Into<PathBuf>) -> Self {
        if let Some(tls) = &mut self.tls {
            *tls = (ca_file.into(), None);
        }
        self
    }

    /// Connected, and for HTTPS wrapped in a TLS client whose handshake
    /// runs with the first write.
    fn open(&mut self, deadline: Instant) -> Result<Stream, Error> {
        let tcp = self.connect(deadline)?;
        let Some((ca_file, config)) = &mut self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        let url = &self.url;
        let config = match config {
            Some(c) => c.clone(),
            None => config
                .insert(crate::tls::client_config(ca_file).map_err(|e| tls_error(url, e))?)
                .clone(),
        };
        let name = ServerName::try_from(self.host.clone()).map_err(|e| tls_error(url, e))?;
        let conn = ClientConnection::new(config, name).map_err(|e| tls_error(url, e))?;
        Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
    }

    fn timeout(&self) -> Error {
        Error::Timeout {
            url: self.url.clone(),
        }
    }

    /// What is left of the whole-call budget; a timeout once it is spent.
    fn remaining(&self, deadline: Instant) -> Result<Duration, Error> {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| self.timeout())
    }

    /// Each address of the host in turn, within the connect timeout.
    fn connect(&self, deadline: Instant) -> Result<TcpStream, Error> {
        let unreachable = |reason: String| Error::Unreachable {
            url: self.url.clone(),
            reason,
        };
        let addrs = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| unreachable(format!("host not found ({e})")))?;
        let mut last = None;
        for a in addrs {
            let t = self.remaining(deadline)?.min(self.timeouts.connect);
            match TcpStream::connect_timeout(&a, t) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                self.timeout()
            }
            // Refused, unreachable, or an errno the platform does not name
            // (qemu-user passes host errnos through SO_ERROR).
            Some(e) => unreachable(e.to_string()),
            None => unreachable("host not found".into()),
        })
    }

    /// An I/O error once connected: a timeout, a TLS failure (the server's
    /// certificate refused), or a broken reply.
    fn io_error(&self, e: std::io::Error) -> Error {
        if let Some(t) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return tls_error(&self.url, t);
        }
        match e.kind() {
            ErrorKind::TimedOut | ErrorKind::WouldBlock => self.timeout(),
            _ => Error::malformed(
                "HTTP reply",
                format_args!("connection failed before a complete reply ({e})"),
            ),
        }
    }
}

impl Transport for HttpTransport {
    fn get(&mut self, path_query: &str, hmac: Option<&str>) -> Result<Response, Error> {
        // Both come from our own encoders; never let them split the request.
        let visible = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
        if !visible(path_query) || !hmac.is_none_or(visible) {
            return Err(Error::Usage(format!("{path_query}: not a request path")));
        }
        let deadline = Instant::now() + self.timeouts.total;
        let mut s = self.open(deadline)?;
        let mut req = format!(
            "GET {}{path_query} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\n",
            self.base,
            self.authority,
            user_agent()
        );
        if let Some(h) = hmac {
            req += &format!("{HMAC_HEADER}: {h}\r\n");
        }
        req += "Connection: close\r\n\r\n";
        s.tcp()
            .set_write_timeout(Some(self.remaining(deadline)?))
            .and_then(|()| s.write_all(req.as_bytes()))
            .and_then(|()| s.flush())
            .map_err(|e| self.io_error(e))?;
        let mut buf = Vec::new();
        loop {
            s.tcp()
                .set_read_timeout(Some(self.remaining(deadline)?))
                .map_err(|e| self.io_error(e))?;
            // Read into the buffer itself, as much as the socket holds: each
            // read re-parses the reply so far, so fewer reads is cheaper.
            let len = buf.len();
            buf.resize(len + (16 << 10), 0);
            let read = s.read(&mut buf[len..]);
            buf.truncate(len + *read.as_ref().unwrap_or(&0));
            let n = match read {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_error(e)),
            };
            // Done as soon as the framing says so: a server may keep the
            // connection open despite `Connection: close`.
            if let Some(r) = parse_reply(&buf, n == 0)? {
                return Ok(r);
            }
            // The body plus a generous allowance for head and chunk framing.
            if buf.len() > 2 * MAX_BODY {
                return Err(too_large());
            }
        }
    }

    fn url(&self) -> &str {
        &self.url
    }
}

fn tls_error(url: &str, reason: impl std::fmt::Display) -> Error {
    Error::Tls {
        url: url.to_string(),
        reason: reason.to_string(),
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
    use crate::testdata::http as real;
    use std::net::TcpListener;

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
        let parts = |u: &str| {
            HttpTransport::new(u, t)
                .map(|h| (h.host, h.port, h.authority, h.base))
                .map_err(|e| e.to_string())
        };
        let ok = |h: &str, p, a: &str, b: &str| Ok((h.into(), p, a.into(), b.into()));
        assert_eq!(
            parts("http://127.0.0.1:1/"),
            ok("127.0.0.1", 1, "127.0.0.1:1", "")
        );
        assert_eq!(parts("http://h/re6st/"), ok("h", 80, "h", "/re6st"));
        assert_eq!(parts("http://h:/"), ok("h", 80, "h:", ""));
        assert_eq!(parts("http://h"), ok("h", 80, "h", ""));
        assert_eq!(
            parts("http://[2001:db8::1]:8080/a/b"),
            ok("2001:db8::1", 8080, "[2001:db8::1]:8080", "/a/b")
        );
        assert_eq!(parts("http://[::1]/"), ok("::1", 80, "[::1]", ""));
        for bad in [
            "ftp://h/",
            "http://",
            "http:///x",
            "127.0.0.1:80",
            "http://h:0/",
            "http://h:65536/",
            "http://h:+80/",
            "http://h:x/",
            "http://[::1/",
            "http://[nope]/",
            "http://::1/",
            "http://u@h/",
            "http://h/?q",
            "http://h/#f",
            "http://h/a b",
            "http://h/a\r\nX: y",
            "http://h/é",
        ] {
            assert!(parts(bad).is_err(), "{bad}");
        }
        // HTTPS: port 443 by default, the system's CA bundle unless told.
        assert_eq!(parts("https://h/re6st/"), ok("h", 443, "h", "/re6st"));
        assert_eq!(
            parts("https://[::1]:8443/"),
            ok("::1", 8443, "[::1]:8443", "")
        );
        let h = HttpTransport::new("https://h/", t).unwrap();
        assert_eq!(h.tls.unwrap().0, std::path::Path::new(SYSTEM_CA_FILE));
        let h = HttpTransport::new("https://h/", t)
            .unwrap()
            .with_ca_file("/x.pem");
        assert_eq!(h.tls.unwrap().0, std::path::Path::new("/x.pem"));
        assert!(HttpTransport::new("http://h/", t)
            .unwrap()
            .with_ca_file("/x")
            .tls
            .is_none());
        assert!(parts("https://h..x/").is_err(), "not a DNS name");
    }

    /// A one-shot server on `addr`: replies `reply` in small pieces, keeps
    /// the connection open afterwards, and hands back the request it read.
    fn serve(addr: &str, reply: &'static [u8]) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind(addr).unwrap();
        let a = l.local_addr().unwrap();
        let host = match a {
            std::net::SocketAddr::V4(_) => format!("{a}"),
            std::net::SocketAddr::V6(v) => format!("[{}]:{}", v.ip(), v.port()),
        };
        let h = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = c.read(&mut b).unwrap();
                assert!(n > 0);
                req.extend_from_slice(&b[..n]);
            }
            for piece in reply.chunks(100) {
                c.write_all(piece).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
            // Held open until the client gives up on it.
            let _ = c.read(&mut b);
            req
        });
        (format!("http://{host}/re6st/"), h)
    }

    #[test]
    fn talks_to_a_server() {
        let (url, server) = serve("127.0.0.1:0", real::NETWORK_CONFIG);
        let mut t = HttpTransport::new(&url, Timeouts::default()).unwrap();
        let r = t.get("/getNetworkConfig?cn=01", Some("sig=")).unwrap();
        assert_eq!(Some(r), parse_reply(real::NETWORK_CONFIG, true).unwrap());
        // A header injection through the transport's own API is refused.
        assert!(t.get("/getCa\r\nX: y", None).is_err());
        assert!(t.get("/getCa", Some("a\r\nX: y")).is_err());
        let req = String::from_utf8(server.join().unwrap()).unwrap();
        let host = url
            .trim_start_matches("http://")
            .trim_end_matches("/re6st/");
        assert_eq!(
            req,
            format!(
                "GET /re6st/getNetworkConfig?cn=01 HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {}\r\n\
                 Re6stHMAC: sig=\r\nConnection: close\r\n\r\n",
                user_agent()
            )
        );
        // An IPv6 literal, where the host has IPv6.
        if TcpListener::bind("[::1]:0").is_ok() {
            let (url, server) = serve("[::1]:0", real::GET_CA);
            let mut t = HttpTransport::new(&url, Timeouts::default()).unwrap();
            assert_eq!(t.get("/getCa", None).unwrap().status, 200);
            let req = server.join().unwrap();
            assert!(req.starts_with(b"GET /re6st/getCa HTTP/1.1\r\nHost: [::1]:"));
        }
    }

    #[test]
    fn refused_and_silent_servers() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = Timeouts::default();
        let mut h = HttpTransport::new(&format!("http://127.0.0.1:{port}/"), t).unwrap();
        assert!(matches!(
            h.get("/getCa", None),
            Err(Error::Unreachable { .. })
        ));
        let mut h = HttpTransport::new("http://no-such-host.invalid/", t).unwrap();
        assert!(matches!(
            h.get("/getCa", None),
            Err(Error::Unreachable { .. })
        ));
        // Accepts, reads, never answers: the whole-call timeout.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let t = Timeouts {
            connect: Duration::from_secs(5),
            total: Duration::from_millis(300),
        };
        let start = Instant::now();
        let r = HttpTransport::new(&url, t).unwrap().get("/getCa", None);
        assert!(matches!(r, Err(Error::Timeout { .. })), "{r:?}");
        assert!(start.elapsed() < Duration::from_secs(3));
        drop(l);
    }
}
