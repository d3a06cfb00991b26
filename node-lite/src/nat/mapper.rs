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
use crate::rng::XorShift;
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
    rng: XorShift,
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
            rng: XorShift::new(seed),
            last_error: None,
        };
        m.new_nonce();
        m
    }

    fn new_nonce(&mut self) {
        let (a, b) = (self.rng.next_u64(), self.rng.next_u64());
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
                    let other = 1024 + (self.rng.next_u64() % 64000) as u16;
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
#[path = "mapper_tests.rs"]
mod tests;
