//! `re6st-lite rpcd list | call METHOD`: the rpcd backend of the LuCI app,
//! as an rpcd exec plugin (`/usr/libexec/rpcd/luci.re6st` is a two-line
//! wrapper that execs this). rpcd runs the plugin with `list` to learn the
//! methods and their arguments, and with `call METHOD`, the arguments as a
//! JSON object on stdin, for each call; the answer is one JSON object on
//! stdout.
//!
//! The daemon's own code answers, so the app and the daemon cannot
//! disagree: `options` is the daemon's option table, `check` its own
//! validation of a candidate config, `status` its status socket (a node
//! that is not running is an answer, not an error), `info` and
//! `registration` what `info` and `register --progress` know, `renew` asks
//! the running node to renew its certificate now, `board` the memory
//! defaults the init script gives this board (`/usr/share/re6st/board-defaults`
//! by `/etc/openwrt_release`).

use std::io::Read;

use lexopt::prelude::*;
use serde_json::{Map, Value as Json};

use crate::config::{Config, Kind, Source, OPTIONS};
use crate::failure::{exit, Failure};
use crate::json::{self, Object};

const USAGE: &str = "\
Usage: re6st-lite rpcd [-c FILE] [-o NAME=VALUE]... (list | call METHOD)
The LuCI app's rpcd plugin (object luci.re6st): `list` prints the methods,
`call METHOD` reads the arguments (a JSON object) on stdin and prints the
answer. Methods: options, status, info, registration, check, renew, board.";

/// The package's board table and the release file naming this board.
const BOARDS: &str = "/usr/share/re6st/board-defaults";
const RELEASE: &str = "/etc/openwrt_release";

/// Where `register --progress` writes, in run_dir.
pub const PROGRESS_FILE: &str = "registration.json";

/// The methods and their arguments, as rpcd's `list` wants them.
fn list() -> String {
    let mut o = Object::new();
    for m in [
        "options",
        "status",
        "info",
        "registration",
        "renew",
        "board",
    ] {
        o = o.raw(m, "{}");
    }
    o.raw("check", r#"{"values":{}}"#).finish()
}

/// `VAR='value'` from an os-release style file.
fn release_var(text: &str, var: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(var)?.strip_prefix('=')?;
        Some(v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
    })
}

/// This board's line of the board table, as the init script picks it: the
/// line of its target, else the smallest board of its architecture.
fn board(table: &str, release: &str) -> String {
    let target = release_var(release, "DISTRIB_TARGET").unwrap_or_default();
    let arch = release_var(release, "DISTRIB_ARCH").unwrap_or_default();
    let rows: Vec<Vec<&str>> = table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .filter(|r: &Vec<&str>| r.len() == 7)
        .collect();
    let row = rows
        .iter()
        .find(|r| r[0] == target)
        .or_else(|| rows.iter().find(|r| r[1] == arch));
    let o = Object::new().str("target", &target).str("arch", &arch);
    match row {
        Some(r) => {
            let mut defaults = Object::new();
            for (name, v) in BOARD_OPTIONS.iter().zip(&r[3..]) {
                defaults = defaults.str(name, v);
            }
            o.str("profile", r[0])
                .opt_num("ram_mb", r[2].parse::<u64>().ok())
                .raw("defaults", defaults.finish())
        }
        None => o.raw("profile", "null").raw("defaults", "{}"),
    }
    .finish()
}

/// The board table's columns after target, arch and RAM.
const BOARD_OPTIONS: [&str; 4] = ["max_tunnels", "max_routes", "peer_cache", "packet_buffers"];

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Path => "path",
        Kind::Text => "text",
        Kind::Bool => "bool",
        Kind::Number => "number",
        Kind::List => "list",
    }
}

/// Every option of the config file: the Settings page is made from it.
fn options() -> String {
    let list = OPTIONS.iter().map(|o| {
        Object::new()
            .str("name", o.name)
            .str("kind", kind_name(o.kind))
            .str("default", o.default)
            .str("help", o.help)
            .finish()
    });
    Object::new().raw("options", json::array(list)).finish()
}

fn refused(option: Option<&str>, error: &str) -> String {
    let o = Object::new().bool("ok", false);
    match option {
        Some(name) => o.str("option", name),
        None => o.raw("option", "null"),
    }
    .str("error", error)
    .finish()
}

/// A candidate config from the Settings page (`{"values": {name: value or
/// [values]}}`), checked by the daemon's own rules: the first error names
/// its option.
fn check(args: &Json) -> String {
    let empty = Map::new();
    let values = args
        .get("values")
        .and_then(Json::as_object)
        .unwrap_or(&empty);
    let mut c = Config::default();
    for (name, v) in values {
        let items: Vec<&Json> = match v {
            Json::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        for item in items {
            let text = match item {
                Json::String(s) => s.clone(),
                Json::Number(n) => n.to_string(),
                Json::Bool(b) => if *b { "1" } else { "0" }.to_string(),
                _ => return refused(Some(name), "not a value"),
            };
            if let Err(e) = c.set(name, &text, false) {
                return refused(Some(name), &e);
            }
        }
    }
    match c.check() {
        Ok(()) => Object::new().bool("ok", true).finish(),
        Err(e) => refused(None, &e),
    }
}

/// A JSON text from the daemon or a file, passed on if it is JSON (null
/// otherwise).
fn checked(text: &str) -> String {
    let t = text.trim();
    if serde_json::from_slice::<Json>(t.as_bytes()).is_ok() {
        t.to_string()
    } else {
        "null".to_string()
    }
}

fn call(method: &str, args: &Json, config: &Config) -> Result<String, Failure> {
    let error = |e: std::io::Error| Object::new().str("error", &e.to_string());
    Ok(match method {
        "options" => options(),
        "check" => check(args),
        "status" => match crate::driver::status::query(&config.run_dir, b"json\n") {
            Ok(s) => Object::new()
                .bool("running", true)
                .raw("status", checked(&s))
                .finish(),
            Err(e) => error(e).bool("running", false).finish(),
        },
        "renew" => match crate::driver::status::query(&config.run_dir, b"renew\n") {
            Ok(s) => Object::new().bool("ok", s.trim() == "ok").finish(),
            Err(e) => error(e).bool("ok", false).finish(),
        },
        "info" => checked(&crate::info::json(&config.state_dir)?),
        "board" => board(
            &std::fs::read_to_string(BOARDS).unwrap_or_default(),
            &std::fs::read_to_string(RELEASE).unwrap_or_default(),
        ),
        "registration" => match std::fs::read_to_string(config.run_dir.join(PROGRESS_FILE)) {
            Ok(s) => checked(&s),
            Err(_) => Object::new().str("state", "none").finish(),
        },
        _ => {
            return Err(Failure::new(
                exit::USAGE,
                format!("unknown method {method:?}"),
            ))
        }
    })
}

pub fn command(p: &mut lexopt::Parser) -> Result<(), Failure> {
    let mut source = Source::default();
    let mut words = Vec::new();
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
            Value(v) => words.push(v.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let answer = match words.as_slice() {
        [l] if l == "list" => list(),
        [c, method] if c == "call" => {
            let mut input = String::new();
            let _ = std::io::stdin().read_to_string(&mut input);
            let args = if input.trim().is_empty() {
                Json::Object(Map::new())
            } else {
                serde_json::from_slice(input.as_bytes())
                    .map_err(|e| Failure::new(exit::USAGE, format!("arguments: {e}")))?
            };
            match method.as_str() {
                // Neither needs the config file (it may be the broken one).
                "options" => options(),
                "check" => check(&args),
                // A broken config is an answer too: the page says what is wrong.
                _ => match source.load() {
                    Ok(config) => call(method, &args, &config)?,
                    Err(e) => Object::new().str("error", &e.to_string()).finish(),
                },
            }
        }
        _ => return Err(Failure::new(exit::USAGE, USAGE)),
    };
    println!("{answer}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(text: String) -> Json {
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn every_option_is_listed_with_its_default() {
        let o = v(options());
        let list = o["options"].as_array().unwrap();
        assert_eq!(list.len(), OPTIONS.len());
        let port = list.iter().find(|o| o["name"] == "port").unwrap();
        assert_eq!(port["default"], "1194");
        assert_eq!(port["kind"], "number");
    }

    #[test]
    fn check_names_the_bad_option() {
        let ok = v(check(
            &json!({"values": {"port": "1195", "peer": ["192.0.2.1:1194"], "gateway": true}}),
        ));
        assert_eq!(ok, json!({"ok": true}));
        let bad = v(check(
            &json!({"values": {"registry": "http://r.example/", "port": "0"}}),
        ));
        assert_eq!(bad["ok"], false);
        assert_eq!(bad["option"], "port");
        let unknown = v(check(&json!({"values": {"nonsense": "1"}})));
        assert_eq!(unknown["option"], "nonsense");
        let list = v(check(
            &json!({"values": {"peer": ["192.0.2.1:1194", "bad"]}}),
        ));
        assert_eq!(list["option"], "peer");
        assert!(list["error"].as_str().unwrap().contains("bad"), "{list}");
    }

    #[test]
    fn board_as_the_init_script_picks_it() {
        let table = "# target arch ram ...\nramips/mt76x8 mipsel_24kc 64 16 1024 100 64\n\
                     ramips/mt7621 mipsel_24kc 128 30 4096 200 128\n";
        let b = v(board(
            table,
            "DISTRIB_TARGET='ramips/mt7621'\nDISTRIB_ARCH='mipsel_24kc'\n",
        ));
        assert_eq!(b["profile"], "ramips/mt7621");
        assert_eq!(b["defaults"]["max_routes"], "4096");
        // An unknown board of a known arch: the smallest of that arch.
        let b = v(board(
            table,
            "DISTRIB_TARGET='ramips/other'\nDISTRIB_ARCH='mipsel_24kc'\n",
        ));
        assert_eq!(b["profile"], "ramips/mt76x8");
        assert_eq!(v(board(table, ""))["profile"], Json::Null);
        assert_eq!(b["ram_mb"], 64);
    }

    #[test]
    fn list_names_every_method_call_answers() {
        let config = Config::default();
        for m in v(list()).as_object().unwrap().keys() {
            let r = call(m, &json!({}), &config);
            // info may fail on this machine's /etc/re6st; never "unknown".
            if let Err(e) = r {
                assert!(!e.to_string().contains("unknown method"), "{m}: {e}");
            }
        }
        assert!(call("nope", &json!({}), &config).is_err());
    }
}
