//! Engine and link configuration, with babeld's defaults and re6st's RTT parameters.

use core::fmt;
use std::net::Ipv6Addr;

use super::mac::MacKey;
use super::wire::{Prefix, RouterId};

/// What a link is, which sets babeld's per-type defaults (`interface ... type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A LAN segment (multicast ff02::1:6): 2-out-of-3, cost 96, split horizon.
    Wired,
    /// A lossy segment: ETX link quality, cost 256.
    Wireless,
    /// A re6st tunnel to one peer: 2-out-of-3, cost 96, RTT timestamps on.
    Tunnel,
}

/// RTT-based cost (draft-ietf-babel-rtt-extension as babeld implements it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttParams {
    /// Weight of a new sample in the running average, out of 256 (`rtt-decay`).
    pub decay: u16,
    /// Below this RTT, no penalty (µs; `rtt-min`, given in ms in babeld's syntax).
    pub min_us: u32,
    /// At and above this RTT, the full penalty (µs; `rtt-max`).
    pub max_us: u32,
    /// Largest cost added (`max-rtt-penalty`); 0 disables RTT-based cost.
    pub max_penalty: u16,
}

impl Default for RttParams {
    /// re6st's `babel_default`: `max-rtt-penalty 5000 rtt-max 500 rtt-decay 125`, with
    /// babeld's `rtt-min` of 10 ms.
    fn default() -> Self {
        RttParams {
            decay: 125,
            min_us: 10_000,
            max_us: 500_000,
            max_penalty: 5000,
        }
    }
}

/// One link (a tunnel or a LAN interface).
#[derive(Debug, Clone)]
pub struct LinkConfig {
    pub kind: LinkKind,
    /// Our link-local address on it (IHU matching and the MAC pseudo-header).
    pub local: Ipv6Addr,
    /// Hello interval, ms (babeld `hello-interval`; re6st's registry says 15 s).
    pub hello_interval_ms: u32,
    /// Periodic full update interval, ms; babeld's default is 4 hello intervals.
    pub update_interval_ms: u32,
    /// Nominal link cost (rxcost when hellos arrive).
    pub cost: u16,
    /// ETX link-quality estimation instead of 2-out-of-3.
    pub link_quality: bool,
    /// Send and use RTT timestamps on Hello/IHU.
    pub timestamps: bool,
    pub rtt: RttParams,
    /// Do not announce routes back on the link they were learnt from.
    pub split_horizon: bool,
    /// Largest Babel packet (UDP payload) sent on the link.
    pub max_packet: usize,
    /// For a tunnel: the only prefix the peer may originate (refmetric 0) over it, its
    /// certificate's prefix. `None`: no restriction.
    pub peer_prefix: Option<Prefix>,
}

impl LinkConfig {
    /// babeld's defaults for a link of this kind, hello every 4 s.
    pub fn new(kind: LinkKind, local: Ipv6Addr) -> Self {
        let hello = 4000;
        LinkConfig {
            kind,
            local,
            hello_interval_ms: hello,
            update_interval_ms: 4 * hello,
            cost: if kind == LinkKind::Wireless { 256 } else { 96 },
            link_quality: kind == LinkKind::Wireless,
            timestamps: kind == LinkKind::Tunnel,
            rtt: RttParams::default(),
            split_horizon: kind == LinkKind::Wired,
            max_packet: 1400,
            peer_prefix: None,
        }
    }

    /// Sets the hello interval and the update interval (4 × hello), as babeld does.
    pub fn with_hello_interval_ms(mut self, ms: u32) -> Self {
        self.hello_interval_ms = ms.clamp(10, 655_350);
        self.update_interval_ms = 4 * self.hello_interval_ms;
        self
    }

    /// Applies a babeld `default ...` option string as re6st's registry distributes it
    /// (`babel_default`, e.g. `max-rtt-penalty 5000 rtt-max 500 rtt-decay 125`).
    pub fn apply_babel_default(&mut self, s: &str) -> Result<(), ConfigError> {
        let mut words = s.split_whitespace();
        while let Some(key) = words.next() {
            let value = words
                .next()
                .ok_or_else(|| ConfigError::MissingValue(Word::new(key)))?;
            let bad = || ConfigError::BadValue(Word::new(key), Word::new(value));
            let ms = || -> Result<u32, ConfigError> {
                // babeld takes seconds or milliseconds with a decimal point ("0.5").
                parse_thousandths(value).ok_or_else(bad)
            };
            match key {
                "max-rtt-penalty" => {
                    self.rtt.max_penalty = value.parse().map_err(|_| bad())?;
                }
                "rtt-decay" => {
                    let d: u16 = value.parse().map_err(|_| bad())?;
                    if d == 0 || d > 256 {
                        return Err(bad());
                    }
                    self.rtt.decay = d;
                }
                // In milliseconds, like babeld.
                "rtt-min" => self.rtt.min_us = value.parse::<u32>().map_err(|_| bad())? * 1000,
                "rtt-max" => self.rtt.max_us = value.parse::<u32>().map_err(|_| bad())? * 1000,
                // In seconds.
                "hello-interval" => {
                    let h = ms()?;
                    *self = self.clone().with_hello_interval_ms(h);
                }
                "update-interval" => self.update_interval_ms = ms()?.max(10),
                "cost" => self.cost = value.parse().map_err(|_| bad())?,
                "timestamps" | "enable-timestamps" => {
                    self.timestamps = parse_bool(value).ok_or_else(bad)?
                }
                "link-quality" => self.link_quality = parse_bool(value).ok_or_else(bad)?,
                "split-horizon" => self.split_horizon = parse_bool(value).ok_or_else(bad)?,
                _ => return Err(ConfigError::UnknownOption(Word::new(key))),
            }
        }
        if self.rtt.max_us <= self.rtt.min_us {
            // babeld's own correction.
            self.rtt.max_us = self.rtt.min_us + 10_000;
        }
        Ok(())
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "yes" => Some(true),
        "false" | "no" => Some(false),
        _ => None,
    }
}

/// "4" → 4000, "0.5" → 500 (babeld's `parse_thousands`).
fn parse_thousandths(s: &str) -> Option<u32> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || (int.is_empty() && frac.is_empty()) {
        return None;
    }
    let i: u32 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut f: u32 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..3 {
        f *= 10;
    }
    i.checked_mul(1000)?.checked_add(f)
}

/// A short copy of an offending word, for messages (no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Word {
    buf: [u8; 24],
    len: u8,
}

impl Word {
    fn new(s: &str) -> Word {
        let mut buf = [0; 24];
        let mut len = 0;
        for c in s.chars() {
            if len + c.len_utf8() > buf.len() {
                break;
            }
            c.encode_utf8(&mut buf[len..]);
            len += c.len_utf8();
        }
        Word {
            buf,
            len: len as u8,
        }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("?")
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    UnknownOption(Word),
    MissingValue(Word),
    BadValue(Word, Word),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::UnknownOption(k) => {
                write!(f, "babel option '{}' is not supported", k.as_str())
            }
            ConfigError::MissingValue(k) => {
                write!(f, "babel option '{}' needs a value", k.as_str())
            }
            ConfigError::BadValue(k, v) => {
                write!(
                    f,
                    "bad value '{}' for babel option '{}'",
                    v.as_str(),
                    k.as_str()
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Keys from the network configuration (`babel_hmac_sign` / `babel_hmac_accept`).
#[derive(Debug, Clone, Default)]
pub struct MacConfig {
    /// Key that signs what we send; `None`: packets go out unsigned.
    pub sign: Option<MacKey>,
    /// Another key accepted on input (during key rotation).
    pub accept: Option<MacKey>,
    /// Process packets whose MAC is missing or wrong anyway (the first step of a key
    /// roll-out, when not every node signs yet).
    pub accept_bad_signatures: bool,
}

impl MacConfig {
    /// Whether incoming packets are checked at all.
    pub fn enabled(&self) -> bool {
        self.sign.is_some() || self.accept.is_some()
    }
}

/// Table sizes, chosen by the caller (board profile). Beyond them, new entries are
/// refused and counted, never allocated.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub links: usize,
    pub neighbours: usize,
    pub sources: usize,
    pub routes: usize,
    pub originated: usize,
    pub pending_requests: usize,
    pub events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // A re6st node: ~30 tunnels, a network of a few hundred nodes.
        Limits {
            links: 64,
            neighbours: 128,
            // Every route needs its source: fewer sources than routes would make a
            // full source table refuse routes the route table has room for.
            sources: 4096,
            routes: 4096,
            originated: 16,
            pending_requests: 256,
            events: 1024,
        }
    }
}

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub router_id: RouterId,
    pub mac: MacConfig,
    pub limits: Limits,
    /// Seconds for the smoothed metric to move half-way (babeld `-M`, default 4).
    pub smoothing_half_life: u32,
    /// The overlay's prefix. Over tunnels, only routes inside it are accepted, and a
    /// default route only as `::/0 from <inside it>` (a re6st gateway, RFC 9079), so
    /// that no member can draw the internet's traffic to itself. `None`: any
    /// destination but a plain `::/0`.
    pub network: Option<Prefix>,
    /// Seed for the jitter and nonce generator (from the OS at start; fixed in tests).
    pub seed: u64,
}

impl EngineConfig {
    pub fn new(router_id: RouterId, seed: u64) -> Self {
        EngineConfig {
            router_id,
            mac: MacConfig::default(),
            limits: Limits::default(),
            smoothing_half_life: 4,
            network: None,
            seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re6st_babel_default_applies() {
        let mut l = LinkConfig::new(LinkKind::Tunnel, Ipv6Addr::LOCALHOST);
        l.rtt = RttParams {
            decay: 42,
            min_us: 10_000,
            max_us: 120_000,
            max_penalty: 96,
        };
        l.apply_babel_default("max-rtt-penalty 5000 rtt-max 500 rtt-decay 125")
            .unwrap();
        assert_eq!(l.rtt, RttParams::default());
        l.apply_babel_default("hello-interval 15 rtt-min 20")
            .unwrap();
        assert_eq!(l.hello_interval_ms, 15_000);
        assert_eq!(l.update_interval_ms, 60_000);
        assert_eq!(l.rtt.min_us, 20_000);
        l.apply_babel_default("update-interval 0.5").unwrap();
        assert_eq!(l.update_interval_ms, 500);
    }

    #[test]
    fn bad_babel_default_is_an_error_that_names_the_word() {
        let mut l = LinkConfig::new(LinkKind::Wired, Ipv6Addr::LOCALHOST);
        let e = l.apply_babel_default("rtt-decay 0").unwrap_err();
        assert_eq!(e.to_string(), "bad value '0' for babel option 'rtt-decay'");
        let e = l.apply_babel_default("diversity 3").unwrap_err();
        assert_eq!(e.to_string(), "babel option 'diversity' is not supported");
        assert!(l.apply_babel_default("cost").is_err());
    }
}
