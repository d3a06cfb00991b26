//! The port mapping of the tunnel port, sans-IO: which gateway protocol
//! answers (PCP, then NAT-PMP, then UPnP-IGD), renewals, loss, release.
//!
//! The node says whether a mapping is wanted (it is behind a NAT) and
//! where the gateway is; the mapper queues [`Out`]s (datagrams to the
//! gateway, HTTP exchanges for UPnP) and is fed what comes back. A mapping
//! is asked again every [`CHECK_MS`] whatever its lifetime: that renews
//! it, and puts it back when the gateway lost it (restarted, its rules
//! flushed) — the answer's epoch tells a restart apart. A gateway that
//! announces its restart (PCP ANNOUNCE, NAT-PMP's address notice, to
//! 224.0.0.1:5350) gets the request at once.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use log::{debug, info};

use super::pmp::{self, Reply};
use super::upnp::{self, Service, Url};
use crate::time::Instant;

/// Lifetime asked for (RFC 6886 suggests 2 hours; an hour bounds what a
/// crash leaves behind).
pub const LIFETIME_S: u32 = 3600;
/// A held mapping is asked again this often.
pub const CHECK_MS: u64 = 30_000;
/// After every protocol failed, try again this much later.
pub const RETRY_MS: u64 = 300_000;
/// Retransmissions of a PCP or NAT-PMP request: 250 ms, doubling (RFC 6886).
const FIRST_WAIT_MS: u64 = 250;
const TRIES: u32 = 4;
/// SSDP: a search every second, three times.
const SSDP_WAIT_MS: u64 = 1000;
const SSDP_TRIES: u32 = 3;
/// Announcements act at most this often (anyone on the LAN can send one).
const ANNOUNCE_MS: u64 = 2000;
/// UPnP answers (one HTTP exchange each) may take this long.
const HTTP_WAIT_MS: u64 = 5000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Pcp,
    NatPmp,
    Upnp,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Pcp => "pcp",
            Protocol::NatPmp => "nat-pmp",
            Protocol::Upnp => "upnp",
        }
    }
}

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// A datagram to the gateway (from the node's NAT socket).
    Udp(SocketAddr, Vec<u8>),
    /// One HTTP exchange: connect, send, read to the end; the answer (or
    /// the error) goes to [`Mapper::handle_http`].
    Http(SocketAddr, Vec<u8>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapping {
    pub protocol: Protocol,
    pub external: SocketAddrV4,
    pub lifetime: u32,
    pub since: Instant,
}

#[derive(Clone, Debug)]
enum Step {
    /// Not wanted, or no gateway.
    Idle,
    Pcp {
        tries: u32,
    },
    Pmp {
        tries: u32,
        ip: Option<Ipv4Addr>,
        port: Option<(u16, u32)>,
    },
    Ssdp {
        tries: u32,
    },
    Describe(Url),
    Add {
        service: Service,
        external: u16,
        lease: u32,
    },
    External {
        external: u16,
        lease: u32,
    },
    /// Mapped; asked again at the timer.
    Holding,
    /// Nothing answered; tried again at the timer.
    Failed,
}

pub struct Mapper {
    port: u16,
    gateway: Option<Ipv4Addr>,
    local: Option<Ipv4Addr>,
    wanted: bool,
    step: Step,
    next: Option<Instant>,
    mapping: Option<Mapping>,
    /// The protocol that worked last: a renewal uses it first.
    last: Option<Protocol>,
    service: Option<Service>,
    nonce: [u8; 12],
    /// The gateway's epoch at the last answer, and when.
    epoch: Option<(u32, Instant)>,
    out: VecDeque<Out>,
    changed: bool,
    last_announce: Option<Instant>,
    rng: u64,
    last_error: Option<String>,
}

impl Mapper {
    pub fn new(port: u16, seed: u64) -> Self {
        let mut m = Mapper {
            port,
            gateway: None,
            local: None,
            wanted: false,
            step: Step::Idle,
            next: None,
            mapping: None,
            last: None,
            service: None,
            nonce: [0; 12],
            epoch: None,
            out: VecDeque::new(),
            changed: false,
            last_announce: None,
            rng: seed | 1,
            last_error: None,
        };
        m.new_nonce();
        m
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn new_nonce(&mut self) {
        let (a, b) = (self.random(), self.random());
        self.nonce[..8].copy_from_slice(&a.to_le_bytes());
        self.nonce[8..].copy_from_slice(&b.to_le_bytes()[..4]);
    }

    pub fn mapping(&self) -> Option<&Mapping> {
        self.mapping.as_ref()
    }

    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateway
    }

    pub fn wanted(&self) -> bool {
        self.wanted
    }

    /// Why the last attempt found no mapping.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The mapping appeared, changed or went since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The default gateway and our address towards it (the driver reads
    /// them now and then). A change starts over.
    pub fn set_gateway(
        &mut self,
        now: Instant,
        gateway: Option<Ipv4Addr>,
        local: Option<Ipv4Addr>,
    ) {
        if (gateway, local) == (self.gateway, self.local) {
            return;
        }
        self.release();
        self.gateway = gateway;
        self.local = local;
        self.restart(now);
    }

    /// Whether the node needs a mapping (it is behind a NAT).
    pub fn set_wanted(&mut self, now: Instant, wanted: bool) {
        if wanted == self.wanted {
            return;
        }
        self.wanted = wanted;
        if wanted {
            self.restart(now);
        } else {
            self.release();
        }
    }

    fn restart(&mut self, now: Instant) {
        self.step = Step::Idle;
        self.next = None;
        if self.wanted && self.gateway.is_some() && self.local.is_some() {
            self.start(now, self.last.unwrap_or(Protocol::Pcp));
        }
    }

    fn gateway_at(&self, port: u16) -> Option<SocketAddr> {
        Some(SocketAddr::from((self.gateway?, port)))
    }

    fn start(&mut self, now: Instant, p: Protocol) {
        self.step = match p {
            Protocol::Pcp => Step::Pcp { tries: 0 },
            Protocol::NatPmp => Step::Pmp {
                tries: 0,
                ip: None,
                port: None,
            },
            Protocol::Upnp => match self.service.clone() {
                // A renewal: the service is known.
                Some(service) if self.mapping.is_some() => {
                    let external = self
                        .mapping
                        .as_ref()
                        .map_or(self.port, |m| m.external.port());
                    self.upnp_add(now, service, external, LIFETIME_S);
                    return;
                }
                _ => Step::Ssdp { tries: 0 },
            },
        };
        self.send(now);
    }

    /// (Re)send the current step's request and arm its timer.
    fn send(&mut self, now: Instant) {
        let Some(local) = self.local else { return };
        let Some(gw) = self.gateway_at(pmp::SERVER_PORT) else {
            return;
        };
        let wait = |tries: u32| FIRST_WAIT_MS << tries.min(8);
        match &mut self.step {
            Step::Pcp { tries } => {
                let w = wait(*tries);
                *tries += 1;
                let m = pmp::pcp_map(local, &self.nonce, self.port, LIFETIME_S);
                self.out.push_back(Out::Udp(gw, m));
                self.next = Some(now.add_millis(w));
            }
            Step::Pmp { tries, ip, port } => {
                let w = wait(*tries);
                *tries += 1;
                if ip.is_none() {
                    self.out.push_back(Out::Udp(gw, pmp::pmp_external()));
                }
                if port.is_none() {
                    self.out
                        .push_back(Out::Udp(gw, pmp::pmp_map(self.port, LIFETIME_S)));
                }
                self.next = Some(now.add_millis(w));
            }
            Step::Ssdp { tries } => {
                *tries += 1;
                let m = upnp::msearch();
                if let Some(gw) = self.gateway_at(upnp::SSDP_PORT) {
                    self.out.push_back(Out::Udp(gw, m.clone()));
                }
                let group = SocketAddr::from((upnp::SSDP_GROUP, upnp::SSDP_PORT));
                self.out.push_back(Out::Udp(group, m));
                self.next = Some(now.add_millis(SSDP_WAIT_MS));
            }
            _ => {}
        }
    }

    fn upnp_add(&mut self, now: Instant, service: Service, external: u16, lease: u32) {
        let Some(local) = self.local else { return };
        let req = upnp::add_mapping(&service, external, self.port, local, lease);
        self.out.push_back(Out::Http(service.control.addr(), req));
        self.step = Step::Add {
            service,
            external,
            lease,
        };
        self.next = Some(now.add_millis(HTTP_WAIT_MS));
    }

    /// The protocol being tried failed: the next one, or give up for a while.
    fn next_protocol(&mut self, now: Instant, failed: Protocol, why: String) {
        debug!("port mapping: {}: {why}", failed.name());
        if self.mapping.is_some() && self.last == Some(failed) {
            // A renewal failed: the mapping is gone; every protocol again.
            info!(
                "port mapping: {} renewal failed ({why}): mapping lost",
                failed.name()
            );
            self.lose();
            self.last = None;
            return self.start(now, Protocol::Pcp);
        }
        match failed {
            Protocol::Pcp => self.start(now, Protocol::NatPmp),
            Protocol::NatPmp => self.start(now, Protocol::Upnp),
            Protocol::Upnp => {
                self.last_error = Some(why);
                self.last = None;
                self.step = Step::Failed;
                self.next = Some(now.add_millis(RETRY_MS));
            }
        }
    }

    fn lose(&mut self) {
        self.epoch = None;
        if self.mapping.take().is_some() {
            self.changed = true;
        }
    }

    fn mapped(&mut self, now: Instant, protocol: Protocol, external: SocketAddrV4, lifetime: u32) {
        let m = Mapping {
            protocol,
            external,
            lifetime,
            since: now,
        };
        let same = self
            .mapping
            .as_ref()
            .is_some_and(|o| (o.protocol, o.external) == (protocol, external));
        if !same {
            info!(
                "port mapping: {} maps {external} to UDP port {} for {lifetime} s",
                protocol.name(),
                self.port
            );
            self.changed = true;
            self.mapping = Some(m);
        } else if let Some(o) = &mut self.mapping {
            o.lifetime = lifetime;
        }
        self.last = Some(protocol);
        self.last_error = None;
        self.step = Step::Holding;
        let renew = (u64::from(lifetime) * 500).clamp(1000, CHECK_MS);
        self.next = Some(now.add_millis(renew));
    }

    /// RFC 6886 §3.6: an epoch that did not advance with the clock (within
    /// slack) means the gateway restarted and lost its mappings.
    fn check_epoch(&mut self, now: Instant, epoch: u32) {
        if let Some((e, at)) = self.epoch {
            let elapsed = now.millis_since(at) / 1000;
            let expected = u64::from(e) + elapsed * 7 / 8;
            if u64::from(epoch) + 2 < expected {
                info!("port mapping: the gateway restarted (epoch {e} then {epoch}): mapping made again");
            }
        }
        self.epoch = Some((epoch, now));
    }

    /// A datagram on the NAT socket, or an announcement on port 5350.
    pub fn handle_udp(&mut self, now: Instant, from: SocketAddr, d: &[u8]) {
        if Some(from.ip()) != self.gateway.map(Into::into) {
            return;
        }
        match (&mut self.step, from.port()) {
            (Step::Holding, pmp::SERVER_PORT) => {
                let announced = matches!(
                    pmp::parse(d),
                    Some(Reply::Announce { .. } | Reply::PmpExternal { .. })
                );
                let recent = self
                    .last_announce
                    .is_some_and(|a| now.millis_since(a) < ANNOUNCE_MS);
                if announced && !recent {
                    self.last_announce = Some(now);
                    info!("port mapping: the gateway announced a restart or a new address: mapping again");
                    let p = self.last.unwrap_or(Protocol::Pcp);
                    self.start(now, p);
                }
            }
            (Step::Pcp { .. } | Step::Pmp { .. }, pmp::SERVER_PORT) => self.on_pmp(now, d),
            (Step::Ssdp { .. }, _) => {
                if let Some(url) = upnp::parse_ssdp(d) {
                    debug!(
                        "port mapping: UPnP gateway description at {}{}",
                        url.host, url.path
                    );
                    self.out.push_back(Out::Http(url.addr(), upnp::get(&url)));
                    self.step = Step::Describe(url);
                    self.next = Some(now.add_millis(HTTP_WAIT_MS));
                }
            }
            _ => {}
        }
    }

    fn on_pmp(&mut self, now: Instant, d: &[u8]) {
        let Some(reply) = pmp::parse(d) else { return };
        match (&mut self.step, reply) {
            (
                Step::Pcp { .. },
                Reply::Pcp {
                    result,
                    nonce,
                    internal_port,
                    external,
                    lifetime,
                    epoch,
                },
            ) => {
                if nonce != self.nonce || internal_port != self.port {
                    return;
                }
                self.check_epoch(now, epoch);
                match external.filter(|_| result == 0 && lifetime > 0) {
                    Some(ext) => self.mapped(now, Protocol::Pcp, ext, lifetime),
                    None => self.next_protocol(now, Protocol::Pcp, format!("result code {result}")),
                }
            }
            (Step::Pcp { .. }, Reply::PmpError { result }) => {
                self.next_protocol(
                    now,
                    Protocol::Pcp,
                    format!("NAT-PMP server (result {result})"),
                );
            }
            (Step::Pmp { ip, port, .. }, r) => {
                let (result, epoch) = match r {
                    Reply::PmpExternal {
                        result,
                        epoch,
                        ip: a,
                    } => {
                        *ip = Some(a);
                        (result, epoch)
                    }
                    Reply::PmpMap {
                        result,
                        epoch,
                        internal_port,
                        external_port,
                        lifetime,
                    } => {
                        if internal_port != self.port {
                            return;
                        }
                        *port = Some((external_port, lifetime));
                        (result, epoch)
                    }
                    Reply::PmpError { result } => (result, 0),
                    Reply::Pcp { .. } | Reply::Announce { .. } => return,
                };
                if result != 0 {
                    return self.next_protocol(
                        now,
                        Protocol::NatPmp,
                        format!("result code {result}"),
                    );
                }
                if let (Some(a), Some((p, life))) = (*ip, *port) {
                    self.check_epoch(now, epoch);
                    if p == 0 || life == 0 {
                        return self.next_protocol(now, Protocol::NatPmp, "no port given".into());
                    }
                    self.mapped(now, Protocol::NatPmp, SocketAddrV4::new(a, p), life);
                }
            }
            _ => {}
        }
    }

    /// The answer to the last [`Out::Http`] (Err: no connection, timeout).
    pub fn handle_http(&mut self, now: Instant, r: Result<Vec<u8>, String>) {
        let step = std::mem::replace(&mut self.step, Step::Idle);
        let d = match r {
            Ok(d) => d,
            Err(e) => {
                if matches!(
                    step,
                    Step::Describe(_) | Step::Add { .. } | Step::External { .. }
                ) {
                    self.next_protocol(now, Protocol::Upnp, e);
                } else {
                    self.step = step;
                }
                return;
            }
        };
        match step {
            Step::Describe(url) => {
                let service = upnp::parse_http(&d)
                    .filter(|(status, _)| *status == 200)
                    .and_then(|(_, xml)| upnp::find_service(xml, &url));
                match service {
                    Some(s) => {
                        debug!(
                            "port mapping: UPnP {} at {}{}",
                            s.kind, s.control.host, s.control.path
                        );
                        self.service = Some(s.clone());
                        self.upnp_add(now, s, self.port, LIFETIME_S);
                    }
                    None => {
                        self.next_protocol(now, Protocol::Upnp, "no WANIPConnection service".into())
                    }
                }
            }
            Step::Add {
                service,
                external,
                lease,
            } => match upnp::parse_soap(&d) {
                Ok(_) => {
                    self.out.push_back(Out::Http(
                        service.control.addr(),
                        upnp::external_address(&service),
                    ));
                    self.step = Step::External { external, lease };
                    self.next = Some(now.add_millis(HTTP_WAIT_MS));
                }
                Err(Some(upnp::ONLY_PERMANENT_LEASES)) if lease != 0 => {
                    self.upnp_add(now, service, external, 0)
                }
                Err(Some(upnp::CONFLICT)) if external == self.port => {
                    // Another host has our port: any other will do.
                    let other = 1024 + (self.random() % 64000) as u16;
                    self.upnp_add(now, service, other, lease);
                }
                Err(code) => self.next_protocol(
                    now,
                    Protocol::Upnp,
                    format!("AddPortMapping: error {code:?}"),
                ),
            },
            Step::External { external, lease } => {
                let ip = upnp::parse_soap(&d)
                    .ok()
                    .and_then(|b| upnp::element(b, "NewExternalIPAddress"))
                    .and_then(|s| s.parse::<Ipv4Addr>().ok())
                    .filter(|ip| !ip.is_unspecified());
                match ip {
                    // A permanent lease is held as if it had our lifetime.
                    Some(ip) => self.mapped(
                        now,
                        Protocol::Upnp,
                        SocketAddrV4::new(ip, external),
                        if lease == 0 { LIFETIME_S } else { lease },
                    ),
                    None => self.next_protocol(now, Protocol::Upnp, "no external address".into()),
                }
            }
            other => self.step = other,
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next.is_none_or(|n| now < n) {
            return;
        }
        self.next = None;
        match self.step.clone() {
            Step::Pcp { tries } if tries >= TRIES => {
                self.next_protocol(now, Protocol::Pcp, "no answer".into())
            }
            Step::Pmp { tries, .. } if tries >= TRIES => {
                self.next_protocol(now, Protocol::NatPmp, "no answer".into())
            }
            Step::Ssdp { tries } if tries >= SSDP_TRIES => {
                self.next_protocol(now, Protocol::Upnp, "no UPnP gateway answered".into())
            }
            Step::Pcp { .. } | Step::Pmp { .. } | Step::Ssdp { .. } => self.send(now),
            Step::Describe(_) | Step::Add { .. } | Step::External { .. } => {
                self.next_protocol(now, Protocol::Upnp, "HTTP timeout".into())
            }
            Step::Holding => {
                let p = self.last.unwrap_or(Protocol::Pcp);
                self.start(now, p);
            }
            Step::Failed => self.start(now, Protocol::Pcp),
            Step::Idle => {}
        }
    }

    /// Delete the mapping (at stop, or when no longer wanted).
    pub fn release(&mut self) {
        if let (Some(m), Some(local)) = (self.mapping.take(), self.local) {
            self.changed = true;
            info!("port mapping: releasing {}", m.external);
            match m.protocol {
                Protocol::Pcp => {
                    if let Some(gw) = self.gateway_at(pmp::SERVER_PORT) {
                        self.out.push_back(Out::Udp(
                            gw,
                            pmp::pcp_map(local, &self.nonce, self.port, 0),
                        ));
                    }
                }
                Protocol::NatPmp => {
                    if let Some(gw) = self.gateway_at(pmp::SERVER_PORT) {
                        self.out.push_back(Out::Udp(gw, pmp::pmp_map(self.port, 0)));
                    }
                }
                Protocol::Upnp => {
                    if let Some(s) = &self.service {
                        let req = upnp::delete_mapping(s, m.external.port());
                        self.out.push_back(Out::Http(s.control.addr(), req));
                    }
                }
            }
        }
        self.step = Step::Idle;
        self.next = None;
        self.last = None;
        self.epoch = None;
    }

    pub fn poll_out(&mut self) -> Option<Out> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(1_000_000 + ms)
    }

    const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const ME: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    fn mapper() -> Mapper {
        let mut m = Mapper::new(1194, 7);
        m.set_gateway(t(0), Some(GW), Some(ME));
        assert!(m.poll_out().is_none(), "nothing until wanted");
        m.set_wanted(t(0), true);
        m
    }

    fn udp(m: &mut Mapper) -> Vec<(SocketAddr, Vec<u8>)> {
        std::iter::from_fn(|| m.poll_out())
            .map(|o| match o {
                Out::Udp(a, b) => (a, b),
                Out::Http(..) => panic!("HTTP where a datagram was expected"),
            })
            .collect()
    }

    fn http(m: &mut Mapper) -> String {
        match m.poll_out() {
            Some(Out::Http(to, b)) => {
                assert_eq!(to, "192.0.2.1:5000".parse().unwrap());
                String::from_utf8(b).unwrap()
            }
            o => panic!("{o:?}"),
        }
    }

    fn pcp_answer(req: &[u8], epoch: u32, ext_port: u16) -> Vec<u8> {
        let mut a = req.to_vec();
        a[1] |= 0x80;
        a[8..12].copy_from_slice(&epoch.to_be_bytes());
        a[42..44].copy_from_slice(&ext_port.to_be_bytes());
        a[44..60].copy_from_slice(&Ipv4Addr::new(203, 0, 113, 1).to_ipv6_mapped().octets());
        a
    }

    const PCP_FROM: &str = "192.0.2.1:5351";

    #[test]
    fn pcp_maps_renews_and_notices_a_restart() {
        let mut m = mapper();
        let sent = udp(&mut m);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, PCP_FROM.parse().unwrap());
        // Only the gateway is listened to.
        m.handle_udp(
            t(10),
            "192.0.2.9:5351".parse().unwrap(),
            &pcp_answer(&sent[0].1, 100, 1194),
        );
        assert!(m.mapping().is_none());
        m.handle_udp(
            t(10),
            PCP_FROM.parse().unwrap(),
            &pcp_answer(&sent[0].1, 100, 1194),
        );
        let got = m.mapping().unwrap();
        assert_eq!(
            (got.protocol, got.external),
            (Protocol::Pcp, "203.0.113.1:1194".parse().unwrap())
        );
        assert!(m.take_changed() && !m.take_changed());
        // Asked again every CHECK_MS; a restarted gateway (epoch back to 1)
        // gets the same request, which makes the mapping again.
        assert_eq!(m.poll_timeout(), Some(t(10 + CHECK_MS)));
        m.handle_timeout(t(10 + CHECK_MS));
        let again = udp(&mut m);
        assert_eq!(again.len(), 1);
        m.handle_udp(
            t(20 + CHECK_MS),
            PCP_FROM.parse().unwrap(),
            &pcp_answer(&again[0].1, 1, 1194),
        );
        assert!(m.mapping().is_some() && !m.take_changed());
        // A renewal with no answer loses the mapping and starts over.
        m.handle_timeout(t(20 + 2 * CHECK_MS));
        let mut now = 20 + 2 * CHECK_MS;
        for _ in 0..TRIES {
            udp(&mut m);
            now = m.poll_timeout().unwrap().millis_since(t(0));
            m.handle_timeout(t(now));
        }
        assert!(m.mapping().is_none() && m.take_changed());
        // ... with PCP first again.
        assert_eq!(udp(&mut m)[0].1[0], 2);
        // At stop, a mapping is deleted (lifetime 0).
        m.handle_udp(
            t(now + 1),
            PCP_FROM.parse().unwrap(),
            &pcp_answer(&again[0].1, 5, 1194),
        );
        m.release();
        let del = udp(&mut m);
        assert_eq!(&del[0].1[4..8], &[0, 0, 0, 0]);
        assert!(m.mapping().is_none() && m.poll_timeout().is_none());
    }

    #[test]
    fn nat_pmp_after_pcp_is_refused() {
        let mut m = mapper();
        udp(&mut m);
        m.handle_udp(t(5), PCP_FROM.parse().unwrap(), &[0, 0x81, 0, 1]);
        let sent = udp(&mut m);
        assert_eq!(sent.iter().map(|s| s.1[1]).collect::<Vec<_>>(), [0, 1]);
        m.handle_udp(
            t(6),
            PCP_FROM.parse().unwrap(),
            &[0, 129, 0, 0, 0, 0, 0, 9, 4, 0xaa, 4, 0xab, 0, 0, 0x0e, 0x10],
        );
        assert!(m.mapping().is_none(), "the address is still missing");
        m.handle_udp(
            t(7),
            PCP_FROM.parse().unwrap(),
            &[0, 128, 0, 0, 0, 0, 0, 9, 203, 0, 113, 1],
        );
        let got = m.mapping().unwrap();
        assert_eq!(
            (got.protocol, got.external),
            (Protocol::NatPmp, "203.0.113.1:1195".parse().unwrap())
        );
    }

    #[test]
    fn upnp_when_nothing_answers_on_5351() {
        let mut m = mapper();
        // PCP, then NAT-PMP, time out.
        let mut now = 0;
        while udp(&mut m).iter().all(|(a, _)| a.port() == 5351) {
            now = m.poll_timeout().unwrap().millis_since(t(0));
            m.handle_timeout(t(now));
        }
        assert!(now < 10_000, "{now} ms to give up PCP and NAT-PMP");
        let ssdp =
            b"HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
LOCATION: http://192.0.2.1:5000/rootDesc.xml\r\n\r\n";
        m.handle_udp(t(now), "192.0.2.1:1900".parse().unwrap(), ssdp);
        assert!(http(&mut m).starts_with("GET /rootDesc.xml "));
        let desc = "HTTP/1.1 200 OK\r\n\r\n<root><service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:1\
</serviceType><controlURL>/ctl/IPConn</controlURL></service></root>";
        m.handle_http(t(now), Ok(desc.as_bytes().to_vec()));
        assert!(http(&mut m).contains("#AddPortMapping"));
        let conflict = "HTTP/1.1 500 x\r\n\r\n<errorCode>718</errorCode>";
        m.handle_http(t(now), Ok(conflict.as_bytes().to_vec()));
        let retry = http(&mut m);
        assert!(retry.contains("#AddPortMapping") && !retry.contains("<NewExternalPort>1194<"));
        m.handle_http(t(now), Ok(b"HTTP/1.1 200 OK\r\n\r\n<ok/>".to_vec()));
        assert!(http(&mut m).contains("#GetExternalIPAddress"));
        m.handle_http(
            t(now),
            Ok(
                b"HTTP/1.1 200 OK\r\n\r\n<NewExternalIPAddress>203.0.113.1</NewExternalIPAddress>"
                    .to_vec(),
            ),
        );
        let got = m.mapping().unwrap().clone();
        assert_eq!(
            (got.protocol, got.external.ip()),
            (Protocol::Upnp, &Ipv4Addr::new(203, 0, 113, 1))
        );
        // The renewal goes straight to AddPortMapping, same port.
        m.handle_timeout(t(now + CHECK_MS));
        assert!(http(&mut m).contains(&format!("<NewExternalPort>{}<", got.external.port())));
        m.handle_http(t(now + CHECK_MS), Err("connection refused".into()));
        assert!(m.mapping().is_none() && m.take_changed());
        assert_eq!(udp(&mut m)[0].1[0], 2, "every protocol again, PCP first");
    }

    #[test]
    fn all_failed_waits_then_tries_again() {
        let mut m = mapper();
        let mut now = 0;
        for _ in 0..50 {
            udp(&mut m);
            now = m.poll_timeout().unwrap().millis_since(t(0));
            if now >= RETRY_MS {
                break;
            }
            m.handle_timeout(t(now));
        }
        assert!(
            m.last_error().is_some_and(|e| e.contains("UPnP")),
            "{:?}",
            m.last_error()
        );
        m.handle_timeout(t(now));
        assert_eq!(udp(&mut m)[0].1[0], 2, "PCP again");
    }
}

/// The real miniupnpd's answers (`testdata/`, captured by
/// `tests/tools/capture-miniupnpd.sh` from our own requests), through the
/// mapper.
#[cfg(test)]
mod captured {
    use super::*;

    const GW: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const PCP_FROM: &str = "192.0.2.1:5351";

    fn t(ms: u64) -> Instant {
        Instant::from_millis(1_000_000 + ms)
    }

    fn mapper() -> Mapper {
        let mut m = Mapper::new(1194, 7);
        m.set_gateway(t(0), Some(GW), Some(Ipv4Addr::new(192, 0, 2, 2)));
        m.set_wanted(t(0), true);
        m
    }

    #[test]
    fn pcp_map_announce_and_delete() {
        let mut m = mapper();
        let _ = m.poll_out();
        // The capture was made with nonce 01..0c.
        m.nonce = *b"\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c";
        m.handle_udp(
            t(5),
            PCP_FROM.parse().unwrap(),
            include_bytes!("testdata/pcp-map.bin"),
        );
        let got = m.mapping().unwrap();
        assert_eq!(
            (got.protocol, got.external, got.lifetime),
            (Protocol::Pcp, "203.0.113.1:1194".parse().unwrap(), 3600)
        );
        // miniupnpd's ANNOUNCE at start (from its port 5351): map again now.
        m.handle_udp(
            t(10),
            PCP_FROM.parse().unwrap(),
            include_bytes!("testdata/pcp-announce.bin"),
        );
        assert!(
            matches!(m.poll_out(), Some(Out::Udp(_, r)) if r[1] == 1 && r[4..8] == 3600u32.to_be_bytes())
        );
        // Its answer to a deletion is no mapping.
        assert_eq!(
            pmp::parse(include_bytes!("testdata/pcp-delete.bin"))
                .map(|r| matches!(r, Reply::Pcp { lifetime: 0, .. })),
            Some(true)
        );
    }

    #[test]
    fn nat_pmp_map() {
        let mut m = mapper();
        m.handle_udp(t(5), PCP_FROM.parse().unwrap(), &[0, 0x81, 0, 1]); // a NAT-PMP-only gateway
        m.handle_udp(
            t(6),
            PCP_FROM.parse().unwrap(),
            include_bytes!("testdata/pmp-map.bin"),
        );
        m.handle_udp(
            t(7),
            PCP_FROM.parse().unwrap(),
            include_bytes!("testdata/pmp-external.bin"),
        );
        let got = m.mapping().unwrap();
        assert_eq!(
            (got.protocol, got.external),
            (Protocol::NatPmp, "203.0.113.1:1194".parse().unwrap())
        );
        assert!(matches!(
            pmp::parse(include_bytes!("testdata/pmp-delete.bin")),
            Some(Reply::PmpMap {
                external_port: 0,
                lifetime: 0,
                ..
            })
        ));
    }

    #[test]
    fn upnp_discovery_to_mapping() {
        let mut m = mapper();
        // PCP and NAT-PMP unanswered.
        while !matches!(m.step, Step::Ssdp { .. }) {
            let at = m.poll_timeout().unwrap();
            m.handle_timeout(at);
        }
        let now = m.poll_timeout().unwrap();
        while m.poll_out().is_some() {}
        m.handle_udp(
            now,
            "192.0.2.1:1900".parse().unwrap(),
            include_bytes!("testdata/ssdp.txt"),
        );
        assert!(
            matches!(m.poll_out(), Some(Out::Http(a, _)) if a == "192.0.2.1:5000".parse().unwrap())
        );
        m.handle_http(now, Ok(include_bytes!("testdata/rootdesc.http").to_vec()));
        let Some(Out::Http(_, add)) = m.poll_out() else {
            panic!("no AddPortMapping")
        };
        let add = String::from_utf8(add).unwrap();
        assert!(add.starts_with("POST /ctl/IPConn HTTP/1.0\r\n"), "{add}");
        assert!(add.contains("service:WANIPConnection:2#AddPortMapping"));
        // Another host holds the port: another one is asked for.
        m.handle_http(
            now,
            Ok(include_bytes!("testdata/soap-conflict.http").to_vec()),
        );
        assert!(
            matches!(m.poll_out(), Some(Out::Http(_, r)) if !String::from_utf8_lossy(&r).contains("<NewExternalPort>1194<"))
        );
        m.handle_http(now, Ok(include_bytes!("testdata/soap-add.http").to_vec()));
        assert!(
            matches!(m.poll_out(), Some(Out::Http(_, r)) if String::from_utf8_lossy(&r).contains("#GetExternalIPAddress"))
        );
        m.handle_http(
            now,
            Ok(include_bytes!("testdata/soap-external.http").to_vec()),
        );
        let got = m.mapping().unwrap();
        assert_eq!(
            (got.protocol, *got.external.ip()),
            (Protocol::Upnp, Ipv4Addr::new(203, 0, 113, 1))
        );
        assert_eq!(
            upnp::parse_soap(include_bytes!("testdata/soap-delete.http")).map(|_| ()),
            Ok(())
        );
    }
}
