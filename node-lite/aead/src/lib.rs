//! ChaCha20-Poly1305 (RFC 8439) for the tunnel data path.
//!
//! The cipher crates are generic: their code is instantiated, and optimised,
//! in the crate that calls them. Called from node-lite, which ships at
//! opt-level "z", the hot loop was half the CPU per Gbit. Instantiated here
//! behind two non-generic functions, it is compiled at opt-level 3 (root
//! Cargo.toml) for a few KB.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Tag};

pub const TAG_LEN: usize = 16;

/// A key, ready to seal or open.
pub struct Aead(ChaCha20Poly1305);

/// The tag did not verify: forged, corrupted or another key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadTag;

impl Aead {
    pub fn new(key: &[u8; 32]) -> Self {
        Aead(ChaCha20Poly1305::new(key.into()))
    }

    /// Encrypt `text` in place; returns the tag over `aad` and the ciphertext.
    #[inline(never)]
    pub fn seal(&self, nonce: &[u8; 12], aad: &[u8], text: &mut [u8]) -> [u8; TAG_LEN] {
        self.0
            .encrypt_in_place_detached(nonce.into(), aad, text)
            .expect("ChaCha20-Poly1305 takes up to 256 GiB")
            .into()
    }

    /// Decrypt `text` in place if `tag` verifies (else `text` is unspecified).
    #[inline(never)]
    pub fn open(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        text: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), BadTag> {
        self.0
            .decrypt_in_place_detached(nonce.into(), aad, text, Tag::from_slice(tag))
            .map_err(|_| BadTag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 §2.8.2.
    #[test]
    fn rfc8439_aead_vector() {
        let key: [u8; 32] = core::array::from_fn(|i| 0x80 + i as u8);
        let nonce = [
            0x07, 0, 0, 0, 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
        ];
        let aad = [
            0x50, 0x51, 0x52, 0x53, 0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7,
        ];
        let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let mut buf = plain.to_vec();
        let a = Aead::new(&key);
        let tag = a.seal(&nonce, &aad, &mut buf);
        assert_eq!(&buf[..4], &[0xd3, 0x1a, 0x8d, 0x34]);
        assert_eq!(
            tag,
            [
                0x1a, 0xe1, 0x0b, 0x59, 0x4f, 0x09, 0xe2, 0x6a, 0x7e, 0x90, 0x2e, 0xcb, 0xd0, 0x60,
                0x06, 0x91
            ]
        );
        a.open(&nonce, &aad, &mut buf, &tag).unwrap();
        assert_eq!(&buf[..], &plain[..]);
        let mut bad = tag;
        bad[0] ^= 1;
        assert_eq!(a.open(&nonce, &aad, &mut buf, &bad), Err(BadTag));
    }
}
