//! re6st's order-preserving integer encoding (`utils.packInteger`).
//!
//! The top 3 bits of the first byte give the number of extra bytes `n`
//! (0..=7); the value is the big-endian number of those `n + 1` bytes minus the
//! tag, plus the sizes of all shorter encodings. So 0..31 take one byte,
//! 32..8223 two bytes, and so on up to 0x202020202020201f.

use crate::Error;

/// Largest value `pack` accepts.
pub const MAX: u64 = 0x2020_2020_2020_201f;

/// Decode the integer at the start of `buf`: `(value, bytes used)`.
pub fn unpack(buf: &[u8]) -> Result<(u64, usize), Error> {
    let first = *buf
        .first()
        .ok_or_else(|| Error::malformed("packed integer", "empty"))?;
    let n = usize::from(first >> 5);
    let bytes = buf
        .get(..n + 1)
        .ok_or_else(|| Error::malformed("packed integer", "truncated"))?;
    let mut raw = 0u64;
    for &b in bytes {
        raw = raw << 8 | u64::from(b);
    }
    // Remove the tag (n in the top 3 bits), add the shorter ranges back.
    let tag = (n as u64) << (5 + 8 * n);
    let mut base = 0u64;
    for k in 0..n {
        base += 32u64 << (8 * k);
    }
    Ok((raw - tag + base, n + 1))
}

/// Encode `v`; `None` above [`MAX`].
pub fn pack(mut v: u64) -> Option<Vec<u8>> {
    for n in 0..8usize {
        let x = 32u64 << (8 * n);
        if v < x {
            let raw = v + ((n as u64) << (5 + 8 * n));
            return Some(raw.to_be_bytes()[7 - n..].to_vec());
        }
        v -= x;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Values checked against re6st.utils.packInteger (Python).
        assert_eq!(pack(0).unwrap(), [0x00]);
        assert_eq!(pack(1).unwrap(), [0x01]);
        assert_eq!(pack(31).unwrap(), [0x1f]);
        assert_eq!(pack(32).unwrap(), [0x20, 0x00]);
        assert_eq!(pack(300).unwrap(), [0x21, 0x0c]);
        assert_eq!(pack(8223).unwrap(), [0x3f, 0xff]);
        assert_eq!(pack(8224).unwrap(), [0x40, 0x00, 0x00]);
        assert_eq!(pack(MAX).unwrap(), [0xff; 8]);
        assert_eq!(pack(MAX + 1), None);
        assert_eq!(unpack(&[0x21, 0x0c, 0xaa]).unwrap(), (300, 2));
        assert_eq!(unpack(&[0xff; 8]).unwrap(), (MAX, 8));
    }

    #[test]
    fn round_trip_and_order() {
        let mut prev = Vec::new();
        for v in [
            0,
            5,
            31,
            32,
            33,
            8223,
            8224,
            1 << 21,
            1 << 30,
            1 << 40,
            1 << 56,
            MAX,
        ] {
            let p = pack(v).unwrap();
            assert_eq!(unpack(&p).unwrap(), (v, p.len()));
            assert!(p > prev, "{v}");
            prev = p;
        }
    }

    #[test]
    fn truncated_is_an_error() {
        assert!(unpack(&[]).is_err());
        assert!(unpack(&[0x20]).is_err());
        assert!(unpack(&[0xe0, 0, 0]).is_err());
    }
}
