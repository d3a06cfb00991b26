//! Behind a NAT (issue 16): what the node knows of its own NAT, and the
//! port mapping it asks of its gateway.
//!
//! - [`Observed`]: how tunnel peers see our underlay address (the control
//!   messages' "seen") against our own address tell whether we are
//!   public, behind a NAT, and whether that NAT keeps one external port
//!   for every destination (cone-like: punching works) or not (symmetric).
//! - [`mapper`]: PCP, NAT-PMP and UPnP-IGD port mapping, sans-IO.
//! - Hole punching itself is the node's (`node/punch.rs`): two nodes with a
//!   tunnel to a third are introduced by it and send at once.

pub mod mapper;
pub mod pmp;
pub mod upnp;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use registry_client::Prefix;

/// How many peers' observations are kept.
const OBSERVERS: usize = 8;

/// The node's NAT situation, for the policy and `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Situation {
    /// No peer told us how it sees us yet, or our own address is unknown.
    Unknown,
    /// Peers see one of our own addresses.
    Public,
    /// Behind a NAT; one peer's view so far.
    Nat,
    /// Behind a NAT that kept our port the same for two peers or more
    /// (endpoint-independent mapping): punching can work.
    Cone,
    /// Behind a NAT that gave different ports to different peers.
    Symmetric,
}

impl Situation {
    pub fn name(self) -> &'static str {
        match self {
            Situation::Unknown => "unknown",
            Situation::Public => "public",
            Situation::Nat => "nat",
            Situation::Cone => "cone",
            Situation::Symmetric => "symmetric",
        }
    }

    /// Behind some NAT (without counting a port mapping).
    pub fn behind_nat(self) -> bool {
        matches!(
            self,
            Situation::Nat | Situation::Cone | Situation::Symmetric
        )
    }
}

/// IPv4 addresses that are never reachable from the Internet: a node there
/// is behind a NAT whatever peers say.
pub fn is_private(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
}

/// Peers' views of our IPv4 underlay address, newest first.
#[derive(Default)]
pub struct Observed {
    seen: Vec<(Prefix, SocketAddr)>,
}

impl Observed {
    /// Tunnel peer `by` sees us at `addr`.
    pub fn seen(&mut self, by: Prefix, addr: SocketAddr) {
        if !addr.is_ipv4() {
            return;
        }
        self.seen.retain(|(p, _)| *p != by);
        self.seen.insert(0, (by, addr));
        self.seen.truncate(OBSERVERS);
    }

    /// Our external address: as the newest observer outside our own
    /// networks sees it (`own`: see [`Self::situation`]).
    pub fn external(&self, own: &[IpAddr]) -> Option<SocketAddr> {
        let outside = self.seen.iter().find(|(_, a)| !own.contains(&a.ip()));
        outside.or_else(|| self.seen.first()).map(|(_, a)| *a)
    }

    /// The situation, given our own addresses (`own`: the underlay
    /// address towards the gateway and the host's public ones). A peer on
    /// our LAN sees our own address whatever NAT is in front of us: only
    /// the others tell.
    pub fn situation(&self, own: &[IpAddr]) -> Situation {
        let Some(first) = self.external(own) else {
            return Situation::Unknown;
        };
        if own.contains(&first.ip()) {
            return Situation::Public;
        }
        if own.is_empty() {
            return Situation::Unknown;
        }
        let same_ip: Vec<u16> = self
            .seen
            .iter()
            .filter(|(_, a)| a.ip() == first.ip())
            .map(|(_, a)| a.port())
            .collect();
        match same_ip.len() {
            1 => Situation::Nat,
            _ if same_ip.iter().all(|&p| p == first.port()) => Situation::Cone,
            _ => Situation::Symmetric,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: u128) -> Prefix {
        Prefix::new(v, 16).unwrap()
    }

    #[test]
    fn situations() {
        let own: Vec<IpAddr> = vec!["192.0.2.2".parse().unwrap()];
        let mut o = Observed::default();
        assert_eq!(o.situation(&own), Situation::Unknown);
        o.seen(p(1), "192.0.2.2:1194".parse().unwrap());
        assert_eq!(o.situation(&own), Situation::Public);
        o.seen(p(1), "203.0.113.1:1194".parse().unwrap());
        assert_eq!(o.situation(&own), Situation::Nat);
        assert_eq!(o.situation(&[]), Situation::Unknown);
        o.seen(p(2), "203.0.113.1:1194".parse().unwrap());
        assert_eq!(o.situation(&own), Situation::Cone);
        o.seen(p(3), "203.0.113.1:40001".parse().unwrap());
        assert_eq!(o.situation(&own), Situation::Symmetric);
        // IPv6 views say nothing of an IPv4 NAT; a LAN peer's view says
        // nothing of the NAT in front of us.
        o.seen(p(4), "[2001:db8::1]:1194".parse().unwrap());
        o.seen(p(5), "192.0.2.2:1194".parse().unwrap());
        assert_eq!(o.external(&own), Some("203.0.113.1:40001".parse().unwrap()));
        assert_eq!(o.situation(&own), Situation::Symmetric);
        assert!(
            is_private(Ipv4Addr::new(100, 64, 1, 1)) && !is_private(Ipv4Addr::new(198, 51, 100, 1))
        );
    }
}
