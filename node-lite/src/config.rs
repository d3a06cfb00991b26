//! The node's configuration: one UCI file (see [`crate::uci`]) with a
//! `config node` section, plus `-o NAME=VALUE` overrides on the command line.
//!
//! [`OPTIONS`] is the single list of options with their defaults and help:
//! `re6st-lite config --defaults` prints it as a commented config file (the
//! OpenWrt package ships that output as `/etc/config/re6st`), and
//! [`Config::set`] is the single place that parses each one.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use log::LevelFilter;

use crate::failure::{exit, Failure};
use crate::uci;

/// Kind of value, for the generated documentation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Text,
    Path,
    Bool,
    Number,
    List,
}

/// One documented option.
pub struct Opt {
    pub name: &'static str,
    pub kind: Kind,
    /// Default as written in the file; empty means unset.
    pub default: &'static str,
    pub help: &'static str,
}

/// Every option of the `config node` section.
pub const OPTIONS: &[Opt] = &[
    Opt { name: "state_dir", kind: Kind::Path, default: "/etc/re6st",
          help: "Certificate, key, CA, cached network config and peer cache (kept across sysupgrade)." },
    Opt { name: "run_dir", kind: Kind::Path, default: "/var/run/re6st",
          help: "Runtime files: the root-only status socket." },
    Opt { name: "registry", kind: Kind::Text, default: "",
          help: "URL of the re6st registry, e.g. http://re6st.example.com/ or https:// (registration, renewal, network config)." },
    Opt { name: "registry_ca", kind: Kind::Path, default: registry_client::http::SYSTEM_CA_FILE,
          help: "CA certificates (PEM) an https:// registry's server certificate is checked against." },
    Opt { name: "fingerprint", kind: Kind::Text, default: "",
          help: "Expected CA fingerprint, sha256:<64 hex digits>; unset trusts the CA served on first registration." },
    Opt { name: "token", kind: Kind::Text, default: "",
          help: "Registration token received by e-mail." },
    Opt { name: "email", kind: Kind::Text, default: "",
          help: "Ask the registry to mail a registration token to this address." },
    Opt { name: "anonymous", kind: Kind::Bool, default: "0",
          help: "Register without a token (if the registry allows anonymous nodes)." },
    Opt { name: "interface", kind: Kind::Text, default: "re6st0",
          help: "Name of the overlay TUN device (at most 15 characters)." },
    Opt { name: "port", kind: Kind::Number, default: "1194",
          help: "UDP port of the tunnels, on every address family." },
    Opt { name: "peer", kind: Kind::List, default: "",
          help: "Bootstrap peer ADDRESS:PORT, tried after the peer cache and the registry (repeatable)." },
    Opt { name: "ip", kind: Kind::List, default: "",
          help: "Public IP address peers reach this node at, announced to them (repeatable; re6st's --ip). Unset: the address peers see, else the host's public addresses." },
    Opt { name: "port_mapping", kind: Kind::Bool, default: "1",
          help: "Behind a NAT, ask the gateway to forward the tunnel port (PCP, NAT-PMP or UPnP-IGD) and announce the mapped address." },
    Opt { name: "fast_failover", kind: Kind::Bool, default: "1",
          help: "Probe a tunnel whose traffic gets no answer, and route around it 2 s after its path went silent (0: Babel's hellos find it, in 2-3 hello intervals)." },
    Opt { name: "lan", kind: Kind::List, default: "",
          help: "LAN interface that gets IPv6 from the node's prefix (repeatable)." },
    Opt { name: "ra", kind: Kind::Bool, default: "1",
          help: "Send router advertisements on the lan interfaces; 0 leaves them to another daemon (odhcpd)." },
    Opt { name: "rdnss", kind: Kind::List, default: "",
          help: "IPv6 DNS server announced in router advertisements (repeatable)." },
    Opt { name: "babel_interface", kind: Kind::List, default: "",
          help: "LAN interface where the node meets other nodes directly, with no registry or internet (repeatable)." },
    Opt { name: "gateway", kind: Kind::Bool, default: "0",
          help: "Announce a default route for sources inside the network (border gateway)." },
    Opt { name: "registry_node", kind: Kind::Bool, default: "0",
          help: "Be the node next to the registry (its first registered node): answer the registry on [::1]:326 and at babel_socket, for bootstrap peers, versions and topology." },
    Opt { name: "babel_socket", kind: Kind::Path, default: "/var/run/re6stnet/babeld.sock",
          help: "With registry_node: where the registry reads Babel's state (its --run directory's babeld.sock)." },
    Opt { name: "max_tunnels", kind: Kind::Number, default: "30",
          help: "Cap on tunnels (client_count + max_clients from the registry); the board profile sets it." },
    Opt { name: "max_routes", kind: Kind::Number, default: "4096",
          help: "Capacity of the route table; the board profile sets it." },
    Opt { name: "peer_cache", kind: Kind::Number, default: "200",
          help: "Peers remembered across restarts." },
    Opt { name: "packet_buffers", kind: Kind::Number, default: "512",
          help: "Datagrams of 2 KiB the kernel may queue for the node (its UDP receive buffer); the board profile sets it." },
    Opt { name: "log_level", kind: Kind::Text, default: "info",
          help: "error, warn, info, debug or trace." },
];

/// How the node registers when it has no certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enrolment {
    None,
    Token(String),
    Email(String),
    Anonymous,
}

/// The typed configuration. `Default` is every option at its default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    pub registry: Option<String>,
    pub registry_ca: PathBuf,
    pub fingerprint: Option<String>,
    pub token: Option<String>,
    pub email: Option<String>,
    pub anonymous: bool,
    pub interface: String,
    pub port: u16,
    pub peers: Vec<SocketAddr>,
    pub ip: Vec<IpAddr>,
    pub lan: Vec<String>,
    pub ra: bool,
    pub rdnss: Vec<Ipv6Addr>,
    pub babel_interfaces: Vec<String>,
    pub gateway: bool,
    pub registry_node: bool,
    pub port_mapping: bool,
    pub fast_failover: bool,
    pub babel_socket: PathBuf,
    pub max_tunnels: u32,
    pub max_routes: u32,
    pub peer_cache: u32,
    pub packet_buffers: u32,
    pub log_level: LevelFilter,
}

impl Default for Config {
    fn default() -> Self {
        let mut c = Config {
            state_dir: PathBuf::new(),
            run_dir: PathBuf::new(),
            registry: None,
            registry_ca: PathBuf::new(),
            fingerprint: None,
            token: None,
            email: None,
            anonymous: false,
            interface: String::new(),
            port: 0,
            peers: Vec::new(),
            ip: Vec::new(),
            lan: Vec::new(),
            ra: false,
            rdnss: Vec::new(),
            babel_interfaces: Vec::new(),
            gateway: false,
            registry_node: false,
            port_mapping: true,
            fast_failover: true,
            babel_socket: PathBuf::new(),
            max_tunnels: 0,
            max_routes: 0,
            peer_cache: 0,
            packet_buffers: 0,
            log_level: LevelFilter::Info,
        };
        for o in OPTIONS.iter().filter(|o| !o.default.is_empty()) {
            // The defaults are constants checked by the tests.
            let _ = c.set(o.name, o.default, false);
        }
        c
    }
}

/// A bad option value or file, with where it came from.
#[derive(Debug, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "1" | "on" | "true" | "yes" | "enabled" => Ok(true),
        "0" | "off" | "false" | "no" | "disabled" => Ok(false),
        _ => Err(format!(
            "{v:?} is not a boolean (1/0, on/off, true/false, yes/no)"
        )),
    }
}

fn parse_num<T>(v: &str, min: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + fmt::Display,
{
    match v.parse::<T>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("{v:?} is not a number of at least {min}")),
    }
}

fn non_empty(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_string())
}

impl Config {
    /// Set option `name` from its text form. A list option appends unless
    /// `replace_list` is set (then the first value replaces the list).
    pub fn set(&mut self, name: &str, v: &str, replace_list: bool) -> Result<(), String> {
        fn push<T>(list: &mut Vec<T>, item: T, replace: bool) {
            if replace {
                list.clear();
            }
            list.push(item);
        }
        match name {
            "state_dir" => self.state_dir = PathBuf::from(v),
            "run_dir" => self.run_dir = PathBuf::from(v),
            "registry_ca" => self.registry_ca = PathBuf::from(v),
            "registry" => {
                // The transport's own check: http:// or https://, a host, a port.
                if !v.is_empty() {
                    registry_client::http::HttpTransport::new(v, Default::default())
                        .map_err(|e| e.to_string())?;
                }
                self.registry = non_empty(v);
            }
            "fingerprint" => {
                let hex = v.strip_prefix("sha256:").unwrap_or("");
                if !v.is_empty() && (hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()))
                {
                    return Err(format!("{v:?} is not sha256:<64 hex digits>"));
                }
                self.fingerprint = non_empty(v);
            }
            "token" => self.token = non_empty(v),
            "email" => self.email = non_empty(v),
            "anonymous" => self.anonymous = parse_bool(v)?,
            "interface" => {
                if v.is_empty() || v.len() > 15 || v.contains(['/', ' ']) {
                    return Err(format!("{v:?} is not a valid interface name"));
                }
                self.interface = v.to_string();
            }
            "port" => self.port = parse_num(v, 1)?,
            "peer" => {
                let a = v
                    .parse()
                    .map_err(|_| format!("{v:?} is not ADDRESS:PORT"))?;
                push(&mut self.peers, a, replace_list);
            }
            "ip" => {
                let a = v
                    .parse()
                    .map_err(|_| format!("{v:?} is not an IP address"))?;
                push(&mut self.ip, a, replace_list);
            }
            "lan" => push(&mut self.lan, v.to_string(), replace_list),
            "ra" => self.ra = parse_bool(v)?,
            "rdnss" => {
                let a = v
                    .parse()
                    .map_err(|_| format!("{v:?} is not an IPv6 address"))?;
                push(&mut self.rdnss, a, replace_list);
            }
            "babel_interface" => push(&mut self.babel_interfaces, v.to_string(), replace_list),
            "gateway" => self.gateway = parse_bool(v)?,
            "registry_node" => self.registry_node = parse_bool(v)?,
            "port_mapping" => self.port_mapping = parse_bool(v)?,
            "fast_failover" => self.fast_failover = parse_bool(v)?,
            "babel_socket" => self.babel_socket = PathBuf::from(v),
            "max_tunnels" => self.max_tunnels = parse_num(v, 1)?,
            "max_routes" => self.max_routes = parse_num(v, 16)?,
            "peer_cache" => self.peer_cache = parse_num(v, 1)?,
            "packet_buffers" => self.packet_buffers = parse_num(v, 8)?,
            "log_level" => {
                self.log_level = crate::logger::parse_level(v)
                    .ok_or_else(|| format!("{v:?} is not a log level"))?
            }
            _ => return Err(format!("unknown option {name:?}")),
        }
        Ok(())
    }

    /// Read the `config node` section of a UCI file over the defaults.
    pub fn from_uci(text: &str) -> Result<Self, Error> {
        let sections = uci::parse(text).map_err(|e| Error(e.to_string()))?;
        let mut c = Config::default();
        for s in &sections {
            if s.kind != "node" {
                return Err(Error(format!(
                    "line {}: unknown section type {:?}",
                    s.line, s.kind
                )));
            }
            for e in &s.entries {
                let is_list = OPTIONS
                    .iter()
                    .any(|o| o.name == e.name && o.kind == Kind::List);
                if is_list != e.list {
                    let want = if is_list { "list" } else { "option" };
                    return Err(Error(format!("line {}: write `{want} {}`", e.line, e.name)));
                }
                c.set(&e.name, &e.value, false)
                    .map_err(|m| Error(format!("line {}: {}: {m}", e.line, e.name)))?;
            }
        }
        c.check().map_err(Error)?;
        Ok(c)
    }

    /// Load `path` (the defaults if `path` is None), then apply overrides
    /// `NAME=VALUE` in order; a list option given on the command line
    /// replaces the file's list.
    pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Self, Error> {
        let mut c = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Error(format!("cannot read {}: {e}", p.display())))?;
                Config::from_uci(&text).map_err(|e| Error(format!("{}: {e}", p.display())))?
            }
            None => Config::default(),
        };
        let mut replaced: Vec<&str> = Vec::new();
        for o in overrides {
            let (name, value) = o
                .split_once('=')
                .ok_or_else(|| Error(format!("-o {o:?}: expected NAME=VALUE")))?;
            let first = !replaced.contains(&name);
            c.set(name, value, first)
                .map_err(|m| Error(format!("-o {name}: {m}")))?;
            replaced.push(name);
        }
        c.check().map_err(Error)?;
        Ok(c)
    }

    /// Checks across options.
    pub(crate) fn check(&self) -> Result<(), String> {
        let ways = [self.token.is_some(), self.email.is_some(), self.anonymous];
        if ways.iter().filter(|w| **w).count() > 1 {
            return Err("token, email and anonymous are alternatives: set one".into());
        }
        Ok(())
    }

    /// How to register, from token / email / anonymous.
    pub fn enrolment(&self) -> Enrolment {
        match (&self.token, &self.email, self.anonymous) {
            (Some(t), _, _) => Enrolment::Token(t.clone()),
            (None, Some(e), _) => Enrolment::Email(e.clone()),
            (None, None, true) => Enrolment::Anonymous,
            _ => Enrolment::None,
        }
    }
}

/// The default config file, every option commented with its help.
pub fn defaults_file() -> String {
    let mut s = String::from(
        "# re6st-lite configuration (UCI syntax). Generated by `re6st-lite config --defaults`.\n\
         # Options left commented out have the default shown.\n\nconfig node 'node'\n",
    );
    for o in OPTIONS {
        s += &format!("\t# {}\n", o.help);
        let kw = if o.kind == Kind::List {
            "list"
        } else {
            "option"
        };
        if o.default.is_empty() {
            s += &format!("\t#{kw} {} ''\n", o.name);
        } else {
            s += &format!("\t#{kw} {} '{}'\n", o.name, o.default);
        }
    }
    s
}

const USAGE: &str = "Usage: re6st-lite config [--defaults | [-c FILE] [-o NAME=VALUE]...]\n\
    Check a configuration and print the effective values, or print the default\n\
    config file with every option documented (--defaults).";

/// Where a command's configuration comes from: `-c FILE` and `-o NAME=VALUE`.
#[derive(Default)]
pub struct Source {
    file: Option<PathBuf>,
    overrides: Vec<String>,
}

/// An option [`Source`] takes.
#[derive(Clone, Copy)]
pub enum SourceOpt {
    File,
    Override,
}

impl Source {
    /// Whether `arg` is `-c`/`--config` or `-o`/`--option`.
    pub fn which(arg: &lexopt::Arg<'_>) -> Option<SourceOpt> {
        use lexopt::prelude::*;
        match arg {
            Short('c') | Long("config") => Some(SourceOpt::File),
            Short('o') | Long("option") => Some(SourceOpt::Override),
            _ => None,
        }
    }

    /// Read the value of option `which`.
    pub fn read(&mut self, p: &mut lexopt::Parser, which: SourceOpt) -> Result<(), Failure> {
        use lexopt::ValueExt;
        match which {
            SourceOpt::File => self.file = Some(p.value()?.into()),
            SourceOpt::Override => self.overrides.push(p.value()?.string()?),
        }
        Ok(())
    }

    /// Whether `-c` or `-o` was given.
    pub fn given(&self) -> bool {
        self.file.is_some() || !self.overrides.is_empty()
    }

    /// The configuration, or a usage failure naming the bad option or line.
    pub fn load(&self) -> Result<Config, Failure> {
        Config::load(self.file.as_deref(), &self.overrides)
            .map_err(|e| Failure::new(exit::USAGE, e.to_string()))
    }
}

pub fn command(p: &mut lexopt::Parser) -> Result<(), Failure> {
    use lexopt::prelude::*;
    let mut source = Source::default();
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
            Long("defaults") => {
                print!("{}", defaults_file());
                return Ok(());
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    println!("{:#?}", source.load()?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_parses_and_every_option_is_known() {
        for o in OPTIONS.iter().filter(|o| !o.default.is_empty()) {
            let mut c = Config::default();
            assert_eq!(c.set(o.name, o.default, true).err(), None, "{}", o.name);
        }
        let d = Config::default();
        assert_eq!(d.state_dir, Path::new("/etc/re6st"));
        assert_eq!((d.port, d.interface.as_str(), d.ra), (1194, "re6st0", true));
        assert_eq!(d.enrolment(), Enrolment::None);
        assert!(Config::default().set("nosuch", "1", false).is_err());
    }

    #[test]
    fn the_generated_file_is_the_defaults() {
        let text = defaults_file();
        assert_eq!(Config::from_uci(&text).unwrap(), Config::default());
        // Uncommenting every option line gives the same configuration.
        let uncommented = text
            .replace("\t#option", "\toption")
            .replace("\t#list", "\tlist");
        let lines: String = uncommented
            .lines()
            .filter(|l| !l.trim_end().ends_with("''"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(Config::from_uci(&lines).unwrap(), Config::default());
        for o in OPTIONS {
            assert!(text.contains(o.name), "{} undocumented", o.name);
        }
    }

    #[test]
    fn file_then_overrides() {
        let text = "config node 'node'\n\toption registry 'http://192.0.2.1/'\n\
                    \tlist peer '192.0.2.7:1194'\n\tlist peer '[2001:db8::7]:1194'\n\
                    \toption gateway 'yes'\n\toption anonymous '1'\n";
        let c = Config::from_uci(text).unwrap();
        assert_eq!(c.peers.len(), 2);
        assert!(c.gateway);
        assert_eq!(c.enrolment(), Enrolment::Anonymous);
        let dir = std::env::temp_dir().join(format!("re6st-config-{}", std::process::id()));
        std::fs::write(&dir, text).unwrap();
        let o = |s: &str| s.to_string();
        let c = Config::load(
            Some(&dir),
            &[
                o("peer=198.51.100.1:1"),
                o("peer=198.51.100.2:2"),
                o("port=1200"),
            ],
        )
        .unwrap();
        std::fs::remove_file(&dir).unwrap();
        assert_eq!(c.port, 1200);
        assert_eq!(
            c.peers,
            vec![
                "198.51.100.1:1".parse().unwrap(),
                "198.51.100.2:2".parse().unwrap()
            ]
        );
    }

    #[test]
    fn bad_values_name_option_and_line() {
        let bad = [
            ("option port '0'", "line 2: port"),
            ("option port 'x'", "line 2: port"),
            ("option gateway 'maybe'", "line 2: gateway"),
            ("option registry 'ftp://x/'", "line 2: registry"),
            ("option registry 'https://h..x/'", "line 2: registry"),
            ("option fingerprint 'sha256:abc'", "line 2: fingerprint"),
            (
                "option interface 'a-very-long-interface-name'",
                "line 2: interface",
            ),
            ("list rdnss '192.0.2.1'", "line 2: rdnss"),
            ("option peer '192.0.2.1:1'", "write `list peer`"),
            ("list port '1'", "write `option port`"),
            ("option bogus '1'", "unknown option"),
        ];
        for (line, want) in bad {
            let e = Config::from_uci(&format!("config node\n\t{line}\n")).unwrap_err();
            assert!(e.0.contains(want), "{line}: {e}");
        }
        let e = Config::from_uci("config node\n\toption token 'x'\n\toption anonymous '1'\n");
        assert!(e.unwrap_err().0.contains("alternatives"));
        assert!(Config::load(None, &["port".into()]).is_err());
        assert!(Config::load(Some(Path::new("/nonexistent/re6st")), &[]).is_err());
    }

    #[test]
    fn unknown_sections_are_refused() {
        let e = Config::from_uci("config node\nconfig nodes\n\toption port '1'\n").unwrap_err();
        assert!(e.0.contains("line 2: unknown section type"), "{e}");
    }
}
