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

    fn tls_error(&self, reason: impl std::fmt::Display) -> Error {
        Error::Tls {
            url: self.url.clone(),
            reason: reason.to_string(),
        }
    }

    /// Connected, and for HTTPS wrapped in a TLS client whose handshake
    /// runs with the first write.
    fn open(&mut self, deadline: Instant) -> Result<Stream, Error> {
        let tcp = self.connect(deadline)?;
        let Some((ca_file, config)) = &self.tls else {
            return Ok(Stream::Plain(tcp));
        };
        let config = match config {
            Some(c) => c.clone(),
            None => {
                let c = crate::tls::client_config(ca_file).map_err(|e| self.tls_error(e))?;
                if let Some(tls) = &mut self.tls {
                    tls.1 = Some(c.clone());
                }
                c
            }
        };
        let name = ServerName::try_from(self.host.clone()).map_err(|e| self.tls_error(e))?;
        let conn = ClientConnection::new(config, name).map_err(|e| self.tls_error(e))?;
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
            return self.tls_error(t);
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

fn malformed(detail: &str) -> Error {
    Error::malformed("HTTP reply", detail)
}

fn too_large() -> Error {
    Error::malformed(
        "HTTP reply",
        format_args!("body larger than {MAX_BODY} bytes"),
    )
}

/// `Ok(None)`: more bytes are needed, unless the server already closed.
fn incomplete<T>(eof: bool) -> Result<Option<T>, Error> {
    if eof {
        Err(malformed("connection closed before a complete reply"))
    } else {
        Ok(None)
    }
}

/// The line starting at `pos` without its `\n` (or `\r\n`), and where the
/// next one starts; `None` if it is not complete yet.
fn line_at(buf: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = buf.get(pos..)?;
    let n = rest.iter().position(|&b| b == b'\n')?;
    let line = &rest[..n];
    Some((line.strip_suffix(b"\r").unwrap_or(line), pos + n + 1))
}

/// What the head of a reply says.
struct Head<'a> {
    status: u16,
    /// Bytes of the head, blank line included.
    len: usize,
    content_length: Option<usize>,
    chunked: bool,
    hmac: Option<&'a str>,
}

/// `HTTP/1.x SSS reason`.
fn status_line(line: &[u8]) -> Result<u16, Error> {
    let bad = || malformed("not an HTTP/1.x status line");
    let r = line.strip_prefix(b"HTTP/1.").ok_or_else(bad)?;
    if r.len() < 5 || !r[0].is_ascii_digit() || r[1] != b' ' || r.get(5).is_some_and(|&b| b != b' ')
    {
        return Err(bad());
    }
    let mut status = 0u16;
    for &d in &r[2..5] {
        if !d.is_ascii_digit() {
            return Err(bad());
        }
        status = status * 10 + u16::from(d - b'0');
    }
    if !(100..600).contains(&status) {
        return Err(bad());
    }
    Ok(status)
}

/// A header name's characters (RFC 9110 `tchar`): no spaces, so obsolete
/// line folding and `Name : value` are refused.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn header<'a>(line: &'a [u8], head: &mut Head<'a>) -> Result<(), Error> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| malformed("header line without ':'"))?;
    let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(malformed("bad header name"));
    }
    if name.eq_ignore_ascii_case(b"content-length") {
        // Digits only (no sign), and few enough not to overflow.
        if value.is_empty() || value.len() > 12 || !value.iter().all(u8::is_ascii_digit) {
            return Err(malformed("bad Content-Length"));
        }
        let n = value
            .iter()
            .fold(0u64, |a, &d| a * 10 + u64::from(d - b'0'));
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if head.content_length.is_some_and(|m| m != n) {
            return Err(malformed("conflicting Content-Length"));
        }
        head.content_length = Some(n);
    } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
        // We ask for no coding; only chunked framing is understood.
        for coding in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
            if head.chunked || !coding.eq_ignore_ascii_case(b"chunked") {
                return Err(malformed("unsupported Transfer-Encoding"));
            }
            head.chunked = true;
        }
    } else if name.eq_ignore_ascii_case(HMAC_HEADER.as_bytes()) && head.hmac.is_none() {
        head.hmac = std::str::from_utf8(value).ok();
    }
    Ok(())
}

/// The head at the start of `buf`, or `None` until its blank line arrived.
fn parse_head(buf: &[u8]) -> Result<Option<Head<'_>>, Error> {
    let mut head = Head {
        status: 0,
        len: 0,
        content_length: None,
        chunked: false,
        hmac: None,
    };
    let mut pos = 0;
    loop {
        let Some((line, next)) = line_at(buf, pos) else {
            return if buf.len() > MAX_HEAD {
                Err(malformed("head too large"))
            } else {
                Ok(None)
            };
        };
        if next > MAX_HEAD {
            return Err(malformed("head too large"));
        }
        if pos == 0 {
            head.status = status_line(line)?;
        } else if line.is_empty() {
            head.len = next;
            return Ok(Some(head));
        } else {
            header(line, &mut head)?;
        }
        pos = next;
    }
}

/// A chunked body: chunks, the last (empty) chunk, trailers, blank line.
fn dechunk(buf: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let Some((line, next)) = line_at(buf, pos) else {
            return Ok(None);
        };
        // `size[;extensions]`; 8 hex digits at most (MAX_BODY is far below).
        let hex = line
            .split(|&b| b == b';')
            .next()
            .unwrap_or(line)
            .trim_ascii();
        if hex.is_empty() || hex.len() > 8 || !hex.iter().all(u8::is_ascii_hexdigit) {
            return Err(malformed("bad chunk size"));
        }
        let size = hex.iter().fold(0usize, |a, &d| {
            a * 16 + (d as char).to_digit(16).unwrap_or(0) as usize
        });
        pos = next;
        if size == 0 {
            // Trailer fields (ignored) up to the blank line.
            loop {
                let Some((line, next)) = line_at(buf, pos) else {
                    return Ok(None);
                };
                pos = next;
                if line.is_empty() {
                    return Ok(Some(out));
                }
            }
        }
        if out.len() + size > MAX_BODY {
            return Err(too_large());
        }
        let Some(data) = buf.get(pos..pos + size) else {
            return Ok(None);
        };
        out.extend_from_slice(data);
        match line_at(buf, pos + size) {
            None => return Ok(None),
            Some((b"", next)) => pos = next,
            Some(_) => return Err(malformed("chunk longer than its size")),
        }
    }
}

/// Parses a reply from the bytes received so far: `Ok(None)` while more are
/// needed, which cannot happen once `eof` (the server closed). The body is
/// framed by chunked encoding, else Content-Length, else the close; 1xx
/// interim replies are skipped. Bytes after a complete reply are ignored.
pub fn parse_reply(buf: &[u8], eof: bool) -> Result<Option<Response>, Error> {
    let mut buf = buf;
    loop {
        let Some(head) = parse_head(buf)? else {
            return incomplete(eof);
        };
        let rest = &buf[head.len..];
        let body = match head.status {
            101 => return Err(malformed("unexpected 101 Switching Protocols")),
            100..=199 => {
                buf = rest;
                continue;
            }
            204 | 304 => Vec::new(),
            _ if head.chunked => match dechunk(rest)? {
                Some(b) => b,
                None => return incomplete(eof),
            },
            _ => match head.content_length {
                Some(n) if n > MAX_BODY => return Err(too_large()),
                Some(n) => match rest.get(..n) {
                    Some(b) => b.to_vec(),
                    None => return incomplete(eof),
                },
                None if rest.len() > MAX_BODY => return Err(too_large()),
                None if eof => rest.to_vec(),
                None => return Ok(None),
            },
        };
        return Ok(Some(Response {
            status: head.status,
            hmac: head.hmac.map(str::to_owned),
            body,
        }));
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

    /// Every real reply, whole and cut anywhere: complete only once every
    /// byte the framing announces is there; a cut at the close is an error.
    #[test]
    fn parses_real_registry_replies() {
        let ca = parse_reply(real::GET_CA, true).unwrap().unwrap();
        assert_eq!((ca.status, ca.hmac.as_deref()), (200, None));
        assert_eq!(ca.body.len(), 1216);
        crate::cert::Certificate::from_pem(&ca.body).unwrap();
        assert!(ca.body.starts_with(b"-----BEGIN CERTIFICATE-----\n"));
        let nc = parse_reply(real::NETWORK_CONFIG, true).unwrap().unwrap();
        assert_eq!(nc.status, 200);
        assert_eq!(nc.hmac.as_deref(), Some("x77l2ef/x5pXDIAV4UXGD4iULko="));
        assert_eq!(nc.body.len(), 759);
        let bp = parse_reply(real::BOOTSTRAP_PEER_NONE, true)
            .unwrap()
            .unwrap();
        assert_eq!(bp.status, 204);
        assert_eq!(bp.hmac.as_deref(), Some("u3px4Az8131+Et/b/ZVGpzQiAow="));
        assert!(bp.body.is_empty());
        let token = parse_reply(real::BAD_TOKEN, true).unwrap().unwrap();
        assert_eq!((token.status, token.hmac, token.body.len()), (204, None, 0));
        for (reply, status) in [
            (real::FORBIDDEN, 403),
            (real::BAD_REQUEST, 400),
            (real::UNKNOWN_PREFIX, 500),
        ] {
            let r = parse_reply(reply, true).unwrap().unwrap();
            assert_eq!(r.status, status);
            assert!(r.body.starts_with(b"<!DOCTYPE HTML>"));
        }
        for reply in real::ALL {
            let whole = parse_reply(reply, true).unwrap().unwrap();
            assert_eq!(parse_reply(reply, false).unwrap().as_ref(), Some(&whole));
            let end = reply.len() - whole.body.len();
            for cut in 0..reply.len() {
                let part = &reply[..cut];
                // 204s are complete with their head, the rest with their body.
                let complete = if whole.status == 204 {
                    end
                } else {
                    reply.len()
                };
                if cut < complete {
                    assert_eq!(parse_reply(part, false).unwrap(), None, "cut {cut}");
                    assert!(parse_reply(part, true).is_err(), "cut {cut}");
                } else {
                    assert_eq!(parse_reply(part, false).unwrap().as_ref(), Some(&whole));
                }
            }
            // Bytes after the reply (a server ignoring `Connection: close`).
            let mut more = reply.to_vec();
            more.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
            assert_eq!(parse_reply(&more, false).unwrap().as_ref(), Some(&whole));
        }
    }

    /// `body` re-framed as a proxy might send it: HTTP/1.1, chunked, bare
    /// LF line ends, an interim 100, trailers.
    #[test]
    fn chunked_and_other_framings() {
        let body = &real::GET_CA[real::GET_CA.len() - 1216..];
        let mut r = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\nre6sthmac:  abc= \r\n\r\n".to_vec();
        for (i, c) in body.chunks(500).enumerate() {
            r.extend_from_slice(format!("{:x};ext=\"{i}\"\r\n", c.len()).as_bytes());
            r.extend_from_slice(c);
            r.extend_from_slice(b"\r\n");
        }
        r.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
        let want = Response {
            status: 200,
            hmac: Some("abc=".into()),
            body: body.to_vec(),
        };
        assert_eq!(parse_reply(&r, false).unwrap().as_ref(), Some(&want));
        for cut in 0..r.len() {
            assert_eq!(parse_reply(&r[..cut], false).unwrap(), None, "cut {cut}");
            assert!(parse_reply(&r[..cut], true).is_err());
        }
        // Bare LF; no Content-Length: the body ends at the close.
        let r = b"HTTP/1.0 200 OK\nServer: x\n\nbody";
        assert_eq!(parse_reply(r, false).unwrap(), None);
        assert_eq!(parse_reply(r, true).unwrap().unwrap().body, b"body");
        // Same Content-Length twice is fine; upper case chunk sizes too.
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok";
        assert_eq!(parse_reply(r, false).unwrap().unwrap().body, b"ok");
        let r = b"HTTP/1.1 201 X\r\ntransfer-encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n";
        let r = parse_reply(r, false).unwrap().unwrap();
        assert_eq!((r.status, &r.body[..]), (201, &b"0123456789"[..]));
    }

    #[test]
    fn refuses_broken_replies() {
        let big = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let long_head = format!("HTTP/1.1 200 OK\r\nX: {}\r\n", "a".repeat(MAX_HEAD));
        let many_chunks = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{}",
            "1\r\na\r\n".repeat(MAX_BODY + 1)
        );
        let cases: &[&[u8]] = &[
            b"\r\n\r\n",
            b"HTTP/2 200 OK\r\n\r\n",
            b"HTTP/1.1 200OK\r\n\r\n",
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 099 X\r\n\r\n",
            b"HTTP/1.1 600 X\r\n\r\n",
            b"HTTP/1.1 2x0 X\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n: v\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length : 1\r\n\r\nx",
            b"HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\nx",
            b"HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n100000000\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n200000\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n",
            big.as_bytes(),
            long_head.as_bytes(),
            many_chunks.as_bytes(),
        ];
        for (i, r) in cases.iter().enumerate() {
            for eof in [false, true] {
                assert!(
                    matches!(parse_reply(r, eof), Err(Error::Malformed { .. })),
                    "case {i} eof {eof}: {:?}",
                    parse_reply(r, eof)
                );
            }
        }
        // A body over the limit without any length is refused before the close.
        let mut r = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
        r.resize(r.len() + MAX_BODY + 1, b'x');
        assert!(parse_reply(&r, false).is_err());
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
