//! `getBootstrapPeer` replies.
//!
//! The body is `RSA-encrypt(node key, "<prefix bits> <address list>")`; the
//! list is `ip,port,proto[,country]` entries separated by `;`. 204 (no body)
//! means the registry found no peer. Entries that do not parse are skipped,
//! as re6st's `utils.parse_address` does.

use std::net::IpAddr;

use rsa::RsaPrivateKey;

use crate::{Error, Prefix};

/// One way to reach a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddress {
    pub ip: IpAddr,
    pub port: u16,
    /// `udp`, `tcp`, `udp6`, `tcp6`... as the peer advertises it.
    pub proto: String,
    /// Country code, sent to nodes of protocol 7 and later.
    pub country: Option<String>,
}

/// A peer to bootstrap from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapPeer {
    pub prefix: Prefix,
    pub addresses: Vec<PeerAddress>,
    /// How many address entries could not be parsed and were skipped.
    pub skipped: usize,
}

fn bad(detail: impl std::fmt::Display) -> Error {
    Error::malformed("bootstrap peer", detail)
}

impl BootstrapPeer {
    /// Parse the decrypted text.
    pub fn parse(plain: &[u8]) -> Result<Self, Error> {
        let text = std::str::from_utf8(plain).map_err(|_| bad("not UTF-8"))?;
        let (bits, list) = text
            .split_once(' ')
            .ok_or_else(|| bad("no space between prefix and addresses"))?;
        if bits.is_empty() {
            return Err(bad("empty prefix"));
        }
        let prefix = Prefix::from_bits(bits)?;
        let mut addresses = Vec::new();
        let mut skipped = 0;
        for entry in list.split(';').filter(|e| !e.is_empty()) {
            match parse_address(entry) {
                Some(a) => addresses.push(a),
                None => skipped += 1,
            }
        }
        Ok(BootstrapPeer {
            prefix,
            addresses,
            skipped,
        })
    }

    /// Decrypt a reply body with the node key, then parse it. Call only after
    /// the reply HMAC was verified.
    pub fn open(body: &[u8], key: &RsaPrivateKey) -> Result<Self, Error> {
        Self::parse(&crate::cert::decrypt(key, body, "bootstrap peer")?)
    }
}

/// One `ip,port,proto[,country]` entry of a re6st address list.
pub fn parse_address(entry: &str) -> Option<PeerAddress> {
    let mut f = entry.split(',');
    let ip = f.next()?.parse().ok()?;
    let port = f.next()?.parse().ok()?;
    let proto = f.next()?;
    if proto.is_empty() {
        return None;
    }
    let country = f.next().filter(|c| !c.is_empty()).map(str::to_owned);
    Some(PeerAddress {
        ip,
        port,
        proto: proto.to_owned(),
        country,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_registry_format() {
        // As returned by 0.642 with a stand-in node on [::1]:326.
        let p = BootstrapPeer::parse(
            b"00000000000000000000 198.51.100.7,1194,udp,FR;2001:db8::7,1194,tcp6",
        )
        .unwrap();
        assert_eq!(p.prefix.to_cn(), "0/20");
        assert_eq!(p.addresses.len(), 2);
        assert_eq!(p.addresses[0].ip, "198.51.100.7".parse::<IpAddr>().unwrap());
        assert_eq!(p.addresses[0].port, 1194);
        assert_eq!(p.addresses[0].proto, "udp");
        assert_eq!(p.addresses[0].country.as_deref(), Some("FR"));
        assert_eq!(p.addresses[1].country, None);
        assert_eq!(p.skipped, 0);
    }

    #[test]
    fn real_reply_decrypts() {
        use crate::testdata as td;
        let key = crate::cert::key_from_pem(td::NODE_KEY_PEM).unwrap();
        let p = BootstrapPeer::open(td::BOOTSTRAP_PEER, &key).unwrap();
        assert_eq!(p.prefix.to_cn(), "0/20");
        assert_eq!(p.addresses.len(), 2);
        assert_eq!(p.addresses[1].proto, "tcp6");
        assert_eq!(p.addresses[1].country.as_deref(), Some("FR"));
        assert!(BootstrapPeer::open(&td::BOOTSTRAP_PEER[1..], &key).is_err());
        let mut bad = td::BOOTSTRAP_PEER.to_vec();
        bad[0] ^= 0x55;
        assert!(BootstrapPeer::open(&bad, &key).is_err());
    }

    #[test]
    fn garbage() {
        assert!(BootstrapPeer::parse(b"").is_err());
        assert!(BootstrapPeer::parse(b"0101").is_err());
        assert!(BootstrapPeer::parse(b" 1.2.3.4,1,udp").is_err());
        assert!(BootstrapPeer::parse(b"01x 1.2.3.4,1,udp").is_err());
        assert!(BootstrapPeer::parse(&[0xff, b' ']).is_err());
        let p = BootstrapPeer::parse(b"01 nope,1,udp;1.2.3.4,99999,udp;1.2.3.4,1,;1.2.3.4,1,tcp")
            .unwrap();
        assert_eq!((p.addresses.len(), p.skipped), (1, 3));
    }
}
