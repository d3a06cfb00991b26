//! The one error type of the registry client, and the exit codes derived from it.
//!
//! Every variant is a class of failure a user can act on; its `Display` is a
//! single line. `re6st-lite register` exits with [`Error::exit_code`]; the codes
//! are listed in `registry-client/README.md` and must stay stable.

use std::fmt;
use std::path::PathBuf;

/// Exit codes of `re6st-lite register` (and anything else driving this crate).
/// 1 and 2 are the CLI's generic failure and usage codes.
pub mod exit {
    /// The registry could not be reached (connection refused, no route, DNS).
    pub const UNREACHABLE: u8 = 10;
    /// The registry did not answer in time (connect or overall timeout).
    pub const TIMEOUT: u8 = 11;
    /// The registry answered with an HTTP status this client does not expect.
    pub const STATUS: u8 = 12;
    /// The CA served by the registry does not have the expected fingerprint.
    pub const FINGERPRINT: u8 = 13;
    /// A CA signature (hello, network version, issued certificate) is wrong.
    pub const SIGNATURE: u8 = 14;
    /// A reply's Re6stHMAC header is missing or wrong (tampered reply).
    pub const HMAC: u8 = 15;
    /// The token is invalid or expired (registry answered 204).
    pub const TOKEN: u8 = 16;
    /// The registry refuses (403): this kind of registration is disabled.
    pub const FORBIDDEN: u8 = 17;
    /// A reply is truncated or is not what the method returns (garbage).
    pub const MALFORMED: u8 = 18;
    /// A certificate is unusable: expired, not yet valid, not for our key.
    pub const CERTIFICATE: u8 = 19;
    /// The registry does not know our prefix (revoked, or its database was reset).
    pub const UNKNOWN_NODE: u8 = 20;
    /// Reading or writing the state directory failed.
    pub const STATE: u8 = 21;
    /// Local key generation or use failed.
    pub const KEY: u8 = 22;
    /// HTTPS: the registry's server certificate failed verification, or the
    /// TLS handshake failed.
    pub const TLS: u8 = 23;
}

/// Everything that can go wrong talking to a registry or handling its bytes.
#[derive(Debug)]
pub enum Error {
    /// Bad input from our own user (URL, fingerprint syntax...).
    Usage(String),
    /// Connection to the registry failed.
    Unreachable { url: String, reason: String },
    /// Connect or overall timeout.
    Timeout { url: String },
    /// An HTTP status the method does not return on success.
    Status { method: &'static str, status: u16 },
    /// CA fingerprint mismatch.
    Fingerprint { expected: String, actual: String },
    /// A CA RSA signature did not verify; `what` names the signed object.
    Signature { what: &'static str },
    /// Reply HMAC missing or wrong.
    Hmac { method: &'static str },
    /// requestCertificate answered 204.
    InvalidToken,
    /// 403 from the registry.
    Forbidden { method: &'static str },
    /// Truncated or garbage bytes; `what` names what was being parsed.
    Malformed { what: &'static str, detail: String },
    /// A certificate fails a check.
    Certificate(String),
    /// hello rejected: the registry has no certificate for this prefix.
    UnknownNode { prefix: String },
    /// A file of the state directory.
    State { path: PathBuf, err: std::io::Error },
    /// Key generation, loading or a private-key operation failed.
    Key(String),
    /// HTTPS: the server certificate or the TLS handshake was refused.
    Tls { url: String, reason: String },
}

impl Error {
    /// Process exit code for this class of error (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Unreachable { .. } => exit::UNREACHABLE,
            Error::Timeout { .. } => exit::TIMEOUT,
            Error::Status { .. } => exit::STATUS,
            Error::Fingerprint { .. } => exit::FINGERPRINT,
            Error::Signature { .. } => exit::SIGNATURE,
            Error::Hmac { .. } => exit::HMAC,
            Error::InvalidToken => exit::TOKEN,
            Error::Forbidden { .. } => exit::FORBIDDEN,
            Error::Malformed { .. } => exit::MALFORMED,
            Error::Certificate(_) => exit::CERTIFICATE,
            Error::UnknownNode { .. } => exit::UNKNOWN_NODE,
            Error::State { .. } => exit::STATE,
            Error::Key(_) => exit::KEY,
            Error::Tls { .. } => exit::TLS,
        }
    }

    pub(crate) fn malformed(what: &'static str, detail: impl fmt::Display) -> Self {
        Error::Malformed {
            what,
            detail: detail.to_string(),
        }
    }

    pub(crate) fn state(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        Error::State {
            path: path.into(),
            err,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => f.write_str(m),
            Error::Unreachable { url, reason } => {
                write!(f, "registry {url} unreachable: {reason}")
            }
            Error::Timeout { url } => write!(f, "registry {url} did not answer in time"),
            Error::Status { method, status } => {
                write!(f, "registry answered HTTP {status} to {method}")
            }
            Error::Fingerprint { expected, actual } => write!(
                f,
                "CA fingerprint mismatch: expected {expected}, registry serves {actual}"
            ),
            Error::Signature { what } => write!(f, "bad CA signature on {what}"),
            Error::Hmac { method } => write!(
                f,
                "reply to {method} failed HMAC authentication (tampered or corrupted)"
            ),
            Error::InvalidToken => f.write_str("invalid or expired token"),
            Error::Forbidden { method } => write!(
                f,
                "registry refused {method} (403): this kind of registration is disabled"
            ),
            Error::Malformed { what, detail } => write!(f, "malformed {what}: {detail}"),
            Error::Certificate(m) => write!(f, "certificate: {m}"),
            Error::UnknownNode { prefix } => write!(
                f,
                "registry does not know prefix {prefix} (revoked, or registry database reset); \
                 register again with --force"
            ),
            Error::State { path, err } => write!(f, "{}: {err}", path.display()),
            Error::Key(m) => write!(f, "key: {m}"),
            Error::Tls { url, reason } => write!(f, "registry {url}: TLS: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct_and_messages_one_line() {
        let all = [
            Error::Usage("u".into()),
            Error::Unreachable {
                url: "u".into(),
                reason: "r".into(),
            },
            Error::Timeout { url: "u".into() },
            Error::Status {
                method: "m",
                status: 500,
            },
            Error::Fingerprint {
                expected: "a".into(),
                actual: "b".into(),
            },
            Error::Signature { what: "w" },
            Error::Hmac { method: "m" },
            Error::InvalidToken,
            Error::Forbidden { method: "m" },
            Error::malformed("w", "d"),
            Error::Certificate("c".into()),
            Error::UnknownNode { prefix: "0".into() },
            Error::state("/x", std::io::Error::other("e")),
            Error::Key("k".into()),
            Error::Tls {
                url: "u".into(),
                reason: "r".into(),
            },
        ];
        let mut codes: Vec<u8> = all.iter().map(Error::exit_code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
        for e in &all {
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
}
