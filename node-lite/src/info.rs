//! `re6st-lite info`: what the state directory holds, offline.
//!
//! For scripts (the OpenWrt init script hands the prefix to netifd) and for
//! people: registered or not, the node's subnet as an IPv6 CIDR, its
//! address, the network, the certificate's dates. Nothing is contacted and
//! nothing is written. Output is `key=value` lines, one per fact, that a
//! POSIX shell can `eval` (values with characters outside
//! `[A-Za-z0-9_./:@+,-]` are single-quoted), or one JSON object with `--json`.
//!
//! The module is declared inside its `COMMANDS` entry in `cli.rs`; its tests
//! are in `node-lite/tests/info.rs`, which compiles this file again.
//!
//! Exit status: 0 whenever the directory could be examined (registered or
//! not: read `registered`), 2 for a bad command line or config, 21 when the
//! state directory cannot be read.

use std::path::PathBuf;

use lexopt::prelude::*;
use registry_client::cert;
use registry_client::state::{Loaded, StateDir};
use registry_client::RENEW_PERIOD;

use crate::cli::Failure;
use crate::config::Source;

const USAGE: &str = "\
Usage: re6st-lite info [-c FILE] [-o NAME=VALUE]... [-d DIR] [--json]
Print what the state directory holds, without contacting anyone: registered
or not, the node's prefix (IPv6 CIDR), address, network and certificate dates.
The directory is the config's state_dir unless -d is given.
Output: key=value lines a shell can eval, or a JSON object (--json).

Keys: state_dir, registered (1/0), state (registered, expired, none, broken),
error (broken only), prefix, address, network, cn, not_before, not_after (Unix
seconds), expires (UTC), renew_from (UTC), expired (1/0).";

/// One fact: a key and its value, typed for JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Text(String),
    Number(u64),
    Flag(bool),
}

/// The facts, in output order.
#[derive(Debug, Default)]
pub(crate) struct Info(pub(crate) Vec<(&'static str, Value)>);

impl Info {
    fn text(&mut self, k: &'static str, v: impl Into<String>) {
        self.0.push((k, Value::Text(v.into())));
    }
    fn number(&mut self, k: &'static str, v: u64) {
        self.0.push((k, Value::Number(v)));
    }
    fn flag(&mut self, k: &'static str, v: bool) {
        self.0.push((k, Value::Flag(v)));
    }

    /// `key=value` lines, values quoted for the shell where needed.
    pub(crate) fn to_lines(&self) -> String {
        let mut s = String::new();
        for (k, v) in &self.0 {
            let v = match v {
                Value::Text(t) => shell_quote(t),
                Value::Number(n) => n.to_string(),
                Value::Flag(b) => u8::from(*b).to_string(),
            };
            s += &format!("{k}={v}\n");
        }
        s
    }

    /// One JSON object.
    pub(crate) fn to_json(&self) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::Text(t) => json_string(t),
                    Value::Number(n) => n.to_string(),
                    Value::Flag(b) => b.to_string(),
                };
                format!("{}:{v}", json_string(k))
            })
            .collect();
        format!("{{{}}}\n", fields.join(","))
    }
}

/// `s` as one shell word: bare if it is made of safe characters, else in
/// single quotes (a quote inside becomes `'\''`).
pub(crate) fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./:@+,-".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out += "\\\"",
            '\\' => out += "\\\\",
            '\n' => out += "\\n",
            '\r' => out += "\\r",
            '\t' => out += "\\t",
            c if (c as u32) < 0x20 => out += &format!("\\u{:04x}", c as u32),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Examine `dir` at time `now` (Unix seconds).
pub(crate) fn examine(dir: &StateDir, now: u64) -> Result<Info, Failure> {
    let mut info = Info::default();
    info.text("state_dir", dir.dir().display().to_string());
    let loaded = dir
        .load(now)
        .map_err(|e| Failure::new(e.exit_code(), format!("info: {e}")))?;
    match loaded {
        Loaded::Empty => {
            info.flag("registered", false);
            info.text("state", "none");
        }
        Loaded::Broken(e) => {
            info.flag("registered", false);
            info.text("state", "broken");
            info.text("error", e.to_string());
        }
        Loaded::Registered { id, expired } => {
            let (net, net_len) = (id.subnet.network.to_ipv6(), id.subnet.network.len());
            info.flag("registered", true);
            info.text("state", if expired { "expired" } else { "registered" });
            info.text("prefix", id.subnet.to_string());
            info.text("address", id.subnet.address().to_string());
            info.text("network", format!("{net}/{net_len}"));
            info.text("cn", id.subnet.node.to_cn());
            info.number("not_before", id.cert.not_before());
            info.number("not_after", id.cert.not_after());
            info.text("expires", cert::utc_string(id.cert.not_after()));
            info.text(
                "renew_from",
                cert::utc_string(id.cert.not_after().saturating_sub(RENEW_PERIOD)),
            );
            info.flag("expired", expired);
        }
    }
    Ok(info)
}

pub fn command(p: &mut lexopt::Parser) -> Result<(), Failure> {
    let mut source = Source::default();
    let mut dir: Option<PathBuf> = None;
    let mut json = false;
    while let Some(arg) = p.next()? {
        if let Some(which) = Source::which(&arg) {
            source.read(p, which)?;
            continue;
        }
        match arg {
            Short('h') | Long("help") => {
                println!("{USAGE}");
                return Ok(());
            }
            Short('d') | Long("dir") => dir = Some(p.value()?.into()),
            Long("json") => json = true,
            _ => return Err(arg.unexpected().into()),
        }
    }
    let dir = match dir {
        Some(d) => d,
        None => source.load()?.state_dir,
    };
    let info = examine(&StateDir::new(dir), registry_client::now())?;
    if json {
        print!("{}", info.to_json());
    } else {
        print!("{}", info.to_lines());
    }
    Ok(())
}
