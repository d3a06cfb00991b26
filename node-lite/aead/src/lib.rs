//! ChaCha20-Poly1305 (RFC 8439) for the tunnel data path: two non-generic
//! functions, whatever does the work.
//!
//! On x86_64 and ARM that is ring, whose BoringSSL assembly (AVX2/AVX-512,
//! NEON) seals 1400-byte packets about 2.5x as fast as the RustCrypto crates
//! on x86_64; the cipher was two thirds of the daemons' CPU per Gbit. On MIPS,
//! where ring has only generic code, it is RustCrypto's chacha20poly1305, which
//! the handshake (snow) links anyway. Those crates are generic, instantiated
//! (and optimised) in the crate that calls them: here, at opt-level 3 (root
//! Cargo.toml) inside a size-optimised binary.

pub const TAG_LEN: usize = 16;

/// The tag did not verify: forged, corrupted or another key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadTag;

pub use backend::Aead;

// Each backend: `Aead::new(key)`; `seal(nonce, aad, text)` encrypts `text` in
// place and returns the tag over `aad` and the ciphertext; `open(nonce, aad,
// text, tag)` decrypts `text` in place if `tag` verifies (else `text` is
// unspecified). Not inlined: the work stays in this opt-level-3 crate.

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm"))]
mod backend {
    use super::{BadTag, TAG_LEN};
    use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, CHACHA20_POLY1305};

    /// A key, ready to seal or open.
    pub struct Aead(LessSafeKey);

    impl Aead {
        pub fn new(key: &[u8; 32]) -> Self {
            let k = UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key");
            Aead(LessSafeKey::new(k))
        }

        #[inline(never)]
        pub fn seal(&self, nonce: &[u8; 12], aad: &[u8], text: &mut [u8]) -> [u8; TAG_LEN] {
            let n = Nonce::assume_unique_for_key(*nonce);
            let tag = self
                .0
                .seal_in_place_separate_tag(n, Aad::from(aad), text)
                .expect("ChaCha20-Poly1305 takes up to 256 GiB");
            let mut out = [0; TAG_LEN];
            out.copy_from_slice(tag.as_ref());
            out
        }

        #[inline(never)]
        pub fn open(
            &self,
            nonce: &[u8; 12],
            aad: &[u8],
            text: &mut [u8],
            tag: &[u8; TAG_LEN],
        ) -> Result<(), BadTag> {
            let n = Nonce::assume_unique_for_key(*nonce);
            self.0
                .open_in_place_separate_tag(n, Aad::from(aad), Tag::from(*tag), text, 0..)
                .map(|_| ())
                .map_err(|_| BadTag)
        }
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm")))]
mod backend {
    use super::{BadTag, TAG_LEN};
    use chacha20poly1305::aead::{AeadInPlace, KeyInit};
    use chacha20poly1305::{ChaCha20Poly1305, Tag};

    /// A key, ready to seal or open.
    pub struct Aead(ChaCha20Poly1305);

    impl Aead {
        pub fn new(key: &[u8; 32]) -> Self {
            Aead(ChaCha20Poly1305::new(key.into()))
        }

        #[inline(never)]
        pub fn seal(&self, nonce: &[u8; 12], aad: &[u8], text: &mut [u8]) -> [u8; TAG_LEN] {
            self.0
                .encrypt_in_place_detached(nonce.into(), aad, text)
                .expect("ChaCha20-Poly1305 takes up to 256 GiB")
                .into()
        }

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

    /// Whatever the backend, the same bytes as RustCrypto's implementation,
    /// at every length around the SIMD block sizes and up to a GSO segment.
    #[test]
    fn agrees_with_rustcrypto() {
        use chacha20poly1305::aead::{AeadInPlace, KeyInit};
        use chacha20poly1305::ChaCha20Poly1305;

        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        };
        let key: [u8; 32] = core::array::from_fn(|_| next());
        let ours = Aead::new(&key);
        let theirs = ChaCha20Poly1305::new(&key.into());
        let lens = (0..600).chain([1024, 1279, 1280, 1400, 1420, 1500, 4096, 9000, 65_000]);
        for len in lens {
            let nonce: [u8; 12] = core::array::from_fn(|_| next());
            let aad: Vec<u8> = (0..len % 40).map(|_| next()).collect();
            let plain: Vec<u8> = (0..len).map(|_| next()).collect();
            let mut a = plain.clone();
            let tag = ours.seal(&nonce, &aad, &mut a);
            let mut b = plain.clone();
            let want = theirs
                .encrypt_in_place_detached(&nonce.into(), &aad, &mut b)
                .unwrap();
            assert_eq!(a, b, "ciphertext, {len} bytes");
            assert_eq!(tag[..], want[..], "tag, {len} bytes");
            ours.open(&nonce, &aad, &mut a, &tag).unwrap();
            assert_eq!(a, plain);
            if len > 0 {
                a[len / 2] ^= 0x40;
                assert_eq!(ours.open(&nonce, &aad, &mut a, &tag), Err(BadTag));
            }
        }
    }
}
