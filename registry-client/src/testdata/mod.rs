//! Bytes captured from a real re6stnet 0.642 registry by `capture.py` (run
//! it again to refresh them). The registry ran with `--hello 20
//! --client-count 5 --max-clients 9 --tunnel-refresh 200 --encrypt --ipv4
//! 10.42.0.0/16 8 --min-protocol 2`, issued `0/20` (registry_prefix) then
//! our node `1/20` (serial 2), revoked serial 1 and rotated the babel HMAC.

pub const CA_PEM: &[u8] = include_bytes!("ca.crt");
pub const NODE_CERT_PEM: &[u8] = include_bytes!("node.crt");
pub const NODE_KEY_PEM: &[u8] = include_bytes!("node.key");
pub const NODE_CSR_PEM: &[u8] = include_bytes!("node.csr");
/// Reply to `hello?client_prefix=00000000000000000001&protocol=8`.
pub const HELLO: &[u8] = include_bytes!("hello.bin");
/// Replies to the first three authenticated calls after that hello.
pub const NETWORK_CONFIG: &[u8] = include_bytes!("getNetworkConfig.bin");
pub const BOOTSTRAP_PEER: &[u8] = include_bytes!("getBootstrapPeer.bin");
pub const RENEW_CERTIFICATE: &[u8] = include_bytes!("renewCertificate.bin");
/// `name value` lines: prefix, k0 (hex), and for each call the request and
/// reply `Re6stHMAC` headers.
pub const CHAIN: &str = include_str!("chain.txt");

pub fn chain(name: &str) -> &'static str {
    CHAIN
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} not in chain.txt"))
}

/// Raw HTTP replies of a real re6stnet 0.642 registry, every byte it wrote
/// up to its close, captured by `capture_http.py` (another registry run, so
/// unrelated to the fixtures above).
pub mod http {
    pub const GET_CA: &[u8] = include_bytes!("http/getCa.http");
    /// 200 with `Re6stHMAC`.
    pub const NETWORK_CONFIG: &[u8] = include_bytes!("http/getNetworkConfig.http");
    /// 204 with `Re6stHMAC` (no node beside the registry).
    pub const BOOTSTRAP_PEER_NONE: &[u8] = include_bytes!("http/getBootstrapPeer.http");
    /// 204: invalid token.
    pub const BAD_TOKEN: &[u8] = include_bytes!("http/requestCertificate-badtoken.http");
    /// `send_error` replies (HTML bodies): private method from elsewhere,
    /// unknown method, hello for an unknown prefix.
    pub const FORBIDDEN: &[u8] = include_bytes!("http/revoke-forbidden.http");
    pub const BAD_REQUEST: &[u8] = include_bytes!("http/nosuchmethod.http");
    pub const UNKNOWN_PREFIX: &[u8] = include_bytes!("http/hello-unknown.http");
    pub const ALL: [&[u8]; 7] = [
        GET_CA,
        NETWORK_CONFIG,
        BOOTSTRAP_PEER_NONE,
        BAD_TOKEN,
        FORBIDDEN,
        BAD_REQUEST,
        UNKNOWN_PREFIX,
    ];
}
