//! Every state machine's settings from the node's config and the network
//! config the registry signed (or none yet), in one pure function applied at
//! start and again on every network config update. Defaults live here.

use std::net::Ipv6Addr;
use std::time::Duration;

use registry_client::netconfig::{BabelHmac, NetworkConfig};

use crate::babel::mac::{MacAlgorithm, MacKey};
use crate::babel::{LinkConfig, LinkKind, MacConfig};
use crate::config::Config;
use crate::mesh::manager::Policy;
use crate::tunnel;

/// re6st's registry defaults, used until a network config is cached.
const CLIENT_COUNT: u32 = 10;
/// `max_clients` is 2 × `client_count` in re6st's registry
/// (`re6st/cli/registry.py`): twice as many places as clients, so that a
/// newcomer finds a free one when every node has its 10 clients.
const MAX_CLIENTS: u32 = 20;
const HELLO_S: u32 = 15;
const TUNNEL_REFRESH_S: u32 = 300;

/// What the node's state machines are set with.
#[derive(Clone, Debug)]
pub struct Settings {
    pub tunnel: tunnel::Config,
    pub policy: Policy,
    /// Template of every tunnel's Babel link (`local` is the node's
    /// link-local address on tunnels).
    pub link: LinkConfig,
    pub mac: MacConfig,
}

/// The settings for `config` under `netconf`. Tunnels stay within the
/// board's `max_tunnels`: the clients we open (`client_count`) come first,
/// the peers we accept (`max_clients`) get the rest, so that every tunnel
/// gets a Babel link.
pub fn settings(config: &Config, netconf: Option<&NetworkConfig>, local: Ipv6Addr) -> Settings {
    let hello = netconf.map_or(HELLO_S, |n| n.hello).max(1);
    let cap = config.max_tunnels;
    let client_count = netconf.map_or(CLIENT_COUNT, |n| n.client_count).min(cap);
    let max_clients = netconf
        .map_or(MAX_CLIENTS, |n| n.max_clients)
        .min(cap - client_count);
    let refresh = netconf.map_or(TUNNEL_REFRESH_S, |n| n.tunnel_refresh);

    let tunnel = tunnel::Config {
        max_clients: max_clients as usize,
        // re6st: OpenVPN's --ping-exit is 4 hellos.
        dead_peer_timeout: Duration::from_secs(4 * u64::from(hello)),
        silent_after: config.fast_failover.then_some(tunnel::timers::SILENT_AFTER),
        ..tunnel::Config::default()
    };
    let mut policy = Policy::new(client_count as usize, refresh.into(), hello.into());
    policy.registry = netconf.and_then(|n| n.registry_prefix);
    let mut link = LinkConfig::new(LinkKind::Tunnel, local).with_hello_interval_ms(hello * 1000);
    if let Some(n) = netconf {
        if let Err(e) = link.apply_babel_default(&n.babel_default) {
            log::warn!("network config babel_default {:?}: {e}", n.babel_default);
        }
    }
    Settings {
        tunnel,
        policy,
        link,
        mac: mac_config(netconf),
    }
}

fn mac_config(netconf: Option<&NetworkConfig>) -> MacConfig {
    let mut m = MacConfig::default();
    let Some(n) = netconf else { return m };
    let key = |h: &Option<BabelHmac>| match h {
        Some(BabelHmac::Key(k)) => MacKey::new(MacAlgorithm::Blake2s128, k).ok(),
        _ => None,
    };
    m.sign = key(&n.babel_hmac_sign);
    m.accept = key(&n.babel_hmac_accept);
    m.accept_bad_signatures = matches!(n.babel_hmac_accept, Some(BabelHmac::AcceptUnsigned));
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry_client::netconfig::Payload;

    fn config(max_tunnels: &str) -> Config {
        let mut c = Config::default();
        c.set("max_tunnels", max_tunnels, false).unwrap();
        c
    }

    fn netconf(client_count: u32, max_clients: u32, hello: u32) -> NetworkConfig {
        let json = format!(
            r#"{{"babel_default": "max-rtt-penalty 5000 rtt-max 500 rtt-decay 125",
            "crl": [], "protocol": 8, "registry_prefix": "0000", "encrypt": false,
            "client_count": {client_count}, "max_clients": {max_clients}, "hello": {hello},
            "min_protocol": 1, "tunnel_refresh": 600, "": ["version"], "version": "AAE="}}"#
        );
        let p = Payload::parse_json(json.as_bytes()).unwrap();
        NetworkConfig {
            fields: p.fields,
            version: p.version,
            babel_hmac_sign: None,
            babel_hmac_accept: None,
        }
    }

    /// Without a network config the board's cap holds: 16 tunnels on a
    /// 64 MB router are 10 clients and 6 accepted, not 10 and 20.
    #[test]
    fn tunnels_stay_within_the_board_cap_with_or_without_a_network_config() {
        let s = settings(&config("16"), None, Ipv6Addr::LOCALHOST);
        assert_eq!((s.policy.client_count, s.tunnel.max_clients), (10, 6));
        assert_eq!(s.tunnel.dead_peer_timeout, Duration::from_secs(60));
        // re6st's defaults where the board has room: 10 clients, 20 places.
        let s = settings(&config("30"), None, Ipv6Addr::LOCALHOST);
        assert_eq!((s.policy.client_count, s.tunnel.max_clients), (10, 20));
        let n = netconf(12, 20, 30);
        let s = settings(&config("16"), Some(&n), Ipv6Addr::LOCALHOST);
        assert_eq!((s.policy.client_count, s.tunnel.max_clients), (12, 4));
        let s = settings(&config("30"), Some(&n), Ipv6Addr::LOCALHOST);
        assert_eq!((s.policy.client_count, s.tunnel.max_clients), (12, 18));
        let s = settings(&config("8"), Some(&n), Ipv6Addr::LOCALHOST);
        assert_eq!((s.policy.client_count, s.tunnel.max_clients), (8, 0));
    }

    /// Every hello-derived timer follows the network's hello.
    #[test]
    fn the_network_hello_sets_every_timer() {
        let n = netconf(10, 10, 30);
        let s = settings(&config("30"), Some(&n), Ipv6Addr::LOCALHOST);
        assert_eq!(s.tunnel.dead_peer_timeout, Duration::from_secs(120));
        assert_eq!(s.link.hello_interval_ms, 30_000);
        assert_eq!(s.policy.bootstrap_ms, 120_000);
        assert_eq!(s.policy.tunnel_refresh_ms, 600_000);
        assert_eq!(s.policy.registry, n.registry_prefix);
        assert!(s.mac.sign.is_none());
    }
}
