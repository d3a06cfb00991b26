//! `re6st-lite info`: what the state directory holds, offline.
//!
//! For scripts (the OpenWrt init script hands the prefix to netifd) and for
//! people: registered or not, the node's subnet as an IPv6 CIDR, its
//! address, the network, the certificate's dates. Nothing is contacted and
//! nothing is written. Output is `key=value` lines, one per fact, that a
//! POSIX shell can `eval` (values with characters outside
//! `[A-Za-z0-9_./:@+,-]` are single-quoted), or one JSON object with `--json`.
//!
//! Exit status: 0 whenever the directory could be examined (registered or
//! not: read `registered`), 2 for a bad command line or config, 21 when the
//! state directory cannot be read.

use std::path::PathBuf;

use lexopt::prelude::*;
use registry_client::cert;
use registry_client::state::{Loaded, StateDir};
use registry_client::RENEW_PERIOD;

use crate::config::Source;
use crate::failure::Failure;
use crate::json;

const USAGE: &str = "\
Usage: re6st-lite info [-c FILE] [-o NAME=VALUE]... [-d DIR] [--json]
Print what the state directory holds, without contacting anyone: registered
or not, the node's prefix (IPv6 CIDR), address, network and certificate dates.
The directory is the config's state_dir unless -d is given.
Output: key=value lines a shell can eval, or a JSON object (--json).

Keys: state_dir, registered (1/0: a certificate valid now), state (registered, expired, none, broken),
error (broken only), prefix, address, network, cn, not_before, not_after (Unix
seconds), expires (UTC), renew_from (UTC), expired (1/0), ca_fingerprint
(sha256:HEX).";

/// One fact: a key and its value, typed for JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Text(String),
    Number(u64),
    Flag(bool),
}

/// The facts, in output order.
#[derive(Debug, Default)]
struct Info(Vec<(&'static str, Value)>);

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
    fn to_lines(&self) -> String {
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
    fn to_json(&self) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::Text(t) => json::string(t),
                    Value::Number(n) => n.to_string(),
                    Value::Flag(b) => b.to_string(),
                };
                format!("{}:{v}", json::string(k))
            })
            .collect();
        format!("{{{}}}\n", fields.join(","))
    }
}

/// `s` as one shell word: bare if it is made of safe characters, else in
/// single quotes (a quote inside becomes `'\''`).
fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_./:@+,-".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Examine `dir` at time `now` (Unix seconds).
fn examine(dir: &StateDir, now: u64) -> Result<Info, Failure> {
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
            // An expired certificate is not a registration peers accept; the
            // node renews it (`run` at once, or `register --renew`).
            info.flag("registered", !expired);
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
            info.text("ca_fingerprint", id.ca.fingerprint_sha256());
        }
    }
    Ok(info)
}

/// The JSON object `info --json` prints, for state directory `dir`.
pub fn json(dir: &std::path::Path) -> Result<String, Failure> {
    Ok(examine(&StateDir::new(dir.to_path_buf()), registry_client::now())?.to_json())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::exit;
    use registry_client::state::{Loaded, StateDir};
    use std::ffi::OsString;
    use std::path::Path;
    use std::path::PathBuf;

    const TESTDATA: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../registry-client/src/testdata"
    );

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("re6st-info-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A state directory holding the registry capture's CA, certificate and key.
    fn registered(tag: &str) -> PathBuf {
        let d = tmpdir(tag);
        for (from, to) in [
            ("ca.crt", "ca.crt"),
            ("node.crt", "cert.crt"),
            ("node.key", "cert.key"),
        ] {
            std::fs::copy(Path::new(TESTDATA).join(from), d.join(to)).unwrap();
        }
        d
    }

    fn get<'a>(info: &'a Info, k: &str) -> Option<&'a Value> {
        info.0.iter().find(|(n, _)| *n == k).map(|(_, v)| v)
    }

    fn text(v: &str) -> Option<Value> {
        Some(Value::Text(v.into()))
    }

    #[test]
    fn registered_directory() {
        let d = registered("ok");
        let dir = StateDir::new(&d);
        let Loaded::Registered { id, .. } = dir.load(0).unwrap() else {
            panic!("test state not registered");
        };
        let (not_before, not_after) = (id.cert.not_before(), id.cert.not_after());
        let info = examine(&dir, not_before + 1).unwrap();
        // The capture's network 2001:db8:42::/48 and node 1/20.
        assert_eq!(get(&info, "registered"), Some(&Value::Flag(true)));
        assert_eq!(get(&info, "state"), text("registered").as_ref());
        assert_eq!(
            get(&info, "prefix"),
            text("2001:db8:42:0:1000::/68").as_ref()
        );
        assert_eq!(
            get(&info, "address"),
            text("2001:db8:42:0:1000::1").as_ref()
        );
        assert_eq!(get(&info, "network"), text("2001:db8:42::/48").as_ref());
        assert_eq!(get(&info, "cn"), text("1/20").as_ref());
        assert_eq!(get(&info, "not_after"), Some(&Value::Number(not_after)));
        assert_eq!(get(&info, "expired"), Some(&Value::Flag(false)));
        let lines = info.to_lines();
        assert!(lines.starts_with(&format!("state_dir={}\nregistered=1\n", d.display())));
        assert!(
            lines.contains("\nprefix=2001:db8:42:0:1000::/68\n"),
            "{lines}"
        );
        assert!(lines.contains("\nexpires='20"), "{lines}");
        let json = info.to_json();
        assert!(json.contains(
            r#""registered":true,"state":"registered","prefix":"2001:db8:42:0:1000::/68""#
        ));
        assert!(
            json.contains(&format!(r#""not_after":{not_after},"#)),
            "{json}"
        );

        let later = examine(&dir, not_after + 1).unwrap();
        assert_eq!(get(&later, "state"), text("expired").as_ref());
        assert_eq!(get(&later, "registered"), Some(&Value::Flag(false)));
        assert_eq!(get(&later, "expired"), Some(&Value::Flag(true)));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn empty_missing_and_broken_directories() {
        let d = tmpdir("empty");
        let info = examine(&StateDir::new(&d), 0).unwrap();
        assert_eq!(get(&info, "registered"), Some(&Value::Flag(false)));
        assert_eq!(get(&info, "state"), text("none").as_ref());
        assert_eq!(get(&info, "prefix"), None);
        let missing = examine(&StateDir::new(d.join("nosuch")), 0).unwrap();
        assert_eq!(get(&missing, "state"), text("none").as_ref());

        // A certificate that is not for the key: present but unusable.
        let b = registered("broken");
        std::fs::copy(Path::new(TESTDATA).join("ca.crt"), b.join("cert.crt")).unwrap();
        let info = examine(&StateDir::new(&b), 0).unwrap();
        assert_eq!(get(&info, "registered"), Some(&Value::Flag(false)));
        assert_eq!(get(&info, "state"), text("broken").as_ref());
        let lines = info.to_lines();
        assert!(lines.contains("\nerror='"), "{lines}");
        std::fs::remove_dir_all(d).unwrap();
        std::fs::remove_dir_all(b).unwrap();
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("2001:db8::/64"), "2001:db8::/64");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(x)"), "'$(x)'");
        assert_eq!(json::string("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
    }

    fn run(args: &[&str]) -> Result<(), crate::failure::Failure> {
        crate::cli::main(args.iter().map(OsString::from))
    }

    /// This file's own copy of the command, called directly.
    fn run_here(args: &[&str]) -> Result<(), crate::failure::Failure> {
        command(&mut lexopt::Parser::from_args(args.iter().copied()))
    }

    #[test]
    fn command_line() {
        let d = registered("cli");
        let cfg = d.join("re6st.conf");
        std::fs::write(
            &cfg,
            format!("config node 'node'\n\toption state_dir '{}'\n", d.display()),
        )
        .unwrap();
        let cfg = cfg.to_str().unwrap();
        let dir = d.to_str().unwrap();
        assert!(run(&["info", "-c", cfg]).is_ok());
        assert!(run(&["info", "-c", cfg, "--json"]).is_ok());
        assert!(run(&["info", "-d", dir]).is_ok());
        assert!(run(&["info", "-o", &format!("state_dir={dir}")]).is_ok());
        assert!(run(&["info", "--help"]).is_ok());
        assert!(run_here(&["-d", dir, "--json"]).is_ok());
        assert_eq!(run_here(&["extra"]).unwrap_err().code, exit::USAGE);
        assert_eq!(run(&["info", "--bogus"]).unwrap_err().code, exit::USAGE);
        assert_eq!(
            run(&["info", "-o", "port=0"]).unwrap_err().code,
            exit::USAGE
        );
        assert_eq!(
            run(&["info", "-c", "/nonexistent/re6st"]).unwrap_err().code,
            exit::USAGE
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn unreadable_directory_is_a_state_error() {
        // A file where the directory should be: reading "ca.crt" under it fails.
        let d = tmpdir("notdir");
        let f = d.join("file");
        std::fs::write(&f, b"x").unwrap();
        let e = examine(&StateDir::new(&f), 0).unwrap_err();
        assert_eq!(e.code, registry_client::error::exit::STATE, "{}", e.msg);
        std::fs::remove_dir_all(d).unwrap();
    }
}
