//! Client for the re6st registry (Nexedi re6stnet's `re6st-registry`).
//!
//! Layers, bottom up; a lower one never reaches up:
//! - pure parsers of registry bytes, each `parse(&[u8]) -> Result<_, Error>`,
//!   panic-free and fuzzed: [`cert`] (PEM/DER), [`auth`] (hello replies, HMAC
//!   chain), [`netconfig`] (getNetworkConfig payloads), [`bootstrap`]
//!   (getBootstrapPeer), [`packint`] (re6st's integer packing);
//! - [`prefix`]: CN ↔ bit string ↔ IPv6 arithmetic, shared with the node;
//! - [`http`]: the transport (our own HTTP/1.1 client, plain HTTP only);
//! - [`client`]: the API calls, [`client::Registry`] and the authenticated
//!   [`client::Session`];
//! - [`state`]: the state directory (atomic writes).
//!
//! See `registry-client/README.md` for exit codes and the state layout.

pub mod auth;
pub mod bootstrap;
pub mod cert;
pub mod client;
pub mod error;
pub mod http;
pub mod netconfig;
pub mod packint;
pub mod prefix;
pub mod state;
mod tls;

#[cfg(test)]
mod testdata;

pub use client::{Registry, Session, PROTOCOL};
pub use error::Error;
pub use prefix::{Prefix, Subnet};
pub use rsa::{RsaPrivateKey, RsaPublicKey};

/// re6st renews certificates from 30 days before they expire.
pub const RENEW_PERIOD: u64 = 30 * 86400;

/// Seconds since the Unix epoch, from the system clock (0 if before it).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
