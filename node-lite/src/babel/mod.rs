//! Babel routing ([RFC 8966]) as a sans-IO state machine, interoperable with babeld 1.12.
//!
//! - [`wire`]: packet and TLV formats, parse/emit into caller buffers.
//! - [`mac`]: RFC 8967 MACs (HMAC-SHA256, BLAKE2s-128) as babeld computes them.
//!
//! [RFC 8966]: https://www.rfc-editor.org/rfc/rfc8966

pub mod mac;
pub mod wire;
