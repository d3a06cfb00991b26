//! The reply parser: what the registry (Python's `BaseHTTPServer`) and a
//! proxy or TLS frontend in front of it may send, from untrusted bytes
//! (fuzz target `http`).

use super::{Response, HMAC_HEADER, MAX_BODY, MAX_HEAD};
use crate::Error;

fn malformed(detail: &str) -> Error {
    Error::malformed("HTTP reply", detail)
}

pub(super) fn too_large() -> Error {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::http as real;

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
}
