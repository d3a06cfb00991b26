//! `re6st-lite register`: join a re6st network through its registry, the
//! counterpart of re6st-conf.
//!
//! What it does, in order, and what it never does:
//! - An existing state directory with a valid certificate is left alone: the
//!   command says so and prints the subnet. `--force` registers again (new
//!   certificate, same key if it still fits the CA), `--renew` (or a
//!   certificate within 30 days of expiry, or expired) calls
//!   `renewCertificate` and refreshes the cached network config.
//! - Otherwise: `getCa` (checked against `--fingerprint`), a node key the size
//!   of the CA key (reused if `cert.key` already holds one), a token
//!   (`--anonymous`, `--token`, or `--email`: the registry mails one and it is
//!   read on stdin), `requestCertificate`, then the certificate is checked
//!   (CA signature, our key, dates, prefix) before anything is written.
//! - Files are written only after every check passed, each one atomically, so
//!   a failed or interrupted registration leaves the directory as it was.
//! - Then `hello` + `getNetworkConfig` fill the network config cache; if that
//!   step fails the registration still stands (the node fetches the config at
//!   start) and a warning says why.
//!
//! Errors print one line and exit with the codes of
//! [`registry_client::error::exit`] (see `registry-client/README.md`).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use lexopt::prelude::*;
use registry_client::cert::{self, Certificate};
use registry_client::client::check_issued;
use registry_client::http::{HttpTransport, Timeouts};
use registry_client::netconfig::NetworkConfig;
use registry_client::state::{self, Identity, Loaded, StateDir};
use registry_client::{Error, Registry, Subnet, RENEW_PERIOD};

use crate::failure::{exit, Failure};

const USAGE: &str = "\
Usage: re6st-lite register --registry URL (--anonymous | --token TOKEN | --email EMAIL)
                           [--fingerprint sha256:HEX] [--dir DIR] [options]
       re6st-lite register -c FILE [-o NAME=VALUE]... [options]
Obtain a certificate from a re6st registry and cache the network config
(what re6st-conf does). An existing valid certificate is kept unless --force.

With -c (the config file `run` reads) or -o, registry, token, email,
anonymous, fingerprint, registry_ca and state_dir (the directory) come from
the config, as `run` sees it; options given here win.

Options:
  --registry URL         registry URL, e.g. http://re6st.example.net/ (or https://)
  --registry-ca FILE     CA certificates (PEM) for an https:// registry's server
                         (default: /etc/ssl/certs/ca-certificates.crt)
  --fingerprint ALG:HEX  expected CA fingerprint, sha256:<64 hex digits>
  --anonymous            request an anonymous certificate
  --token TOKEN          token received by e-mail
  --email EMAIL          have a token mailed to EMAIL, then type it on stdin
  --location CC,CONT     country and continent codes for the registry's communities
  -d, --dir DIR          state directory (default: current directory)
  --force                register again even if DIR holds a valid certificate
  --renew                renew the certificate now and refresh the network config
  --timeout SECS         give up on a registry call after SECS seconds (default 60)
  --progress FILE        keep FILE up to date with the registration's step and
                         outcome (JSON; the OpenWrt service writes run_dir/registration.json)

Exit codes: 0 ok, 2 usage, 10 unreachable, 11 timeout, 12 unexpected HTTP status,
13 CA fingerprint mismatch, 14 bad CA signature, 15 bad reply HMAC, 16 invalid token,
17 registration disabled (403), 18 malformed reply, 19 unusable certificate,
20 registry does not know our prefix, 21 state directory error, 22 key error,
23 TLS (the https:// server's certificate refused).";

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::new(e.exit_code(), e.to_string())
    }
}

/// How the token is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenMode {
    Anonymous,
    Token(String),
    Email(String),
}

#[derive(Debug)]
struct Opts {
    registry: String,
    registry_ca: Option<PathBuf>,
    fingerprint: Option<[u8; 32]>,
    mode: Option<TokenMode>,
    location: Option<String>,
    dir: PathBuf,
    force: bool,
    renew: bool,
    timeouts: Timeouts,
    progress: Progress,
}

/// `--progress FILE`: where the registration stands, as one JSON object
/// rewritten (atomically) at each step, for the LuCI app: `{"state":
/// "running", "step": "ca" | "key" | "certificate" | "config", "since"}`,
/// then `{"state": "done"}` or `{"state": "failed", "exit", "error"}`.
#[derive(Debug, Default)]
struct Progress(Option<PathBuf>);

impl Progress {
    fn write(&self, fields: &str) {
        let Some(path) = &self.0 else { return };
        let text = format!("{{{fields},\"since\":{}}}\n", registry_client::now());
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .is_err()
        {
            log::warn!("cannot write {}", path.display());
        }
    }

    fn step(&self, step: &str) {
        self.write(&format!("\"state\":\"running\",\"step\":\"{step}\""));
    }

    fn finish(&self, r: &Result<(), Failure>) {
        match r {
            Ok(()) => self.write("\"state\":\"done\""),
            Err(f) => self.write(&format!(
                "\"state\":\"failed\",\"exit\":{},\"error\":{}",
                f.code,
                crate::json::string(&f.msg)
            )),
        }
    }
}

fn usage(msg: impl Into<String>) -> Failure {
    Failure::new(
        exit::USAGE,
        format!("register: {} (try --help)", msg.into()),
    )
}

fn parse(p: &mut lexopt::Parser) -> Result<Option<Opts>, Failure> {
    let mut source = crate::config::Source::default();
    let mut registry = None;
    let mut registry_ca = None;
    let mut fingerprint = None;
    let mut modes = Vec::new();
    let mut location = None;
    let mut dir = None;
    let mut force = false;
    let mut renew = false;
    let mut timeouts = Timeouts::default();
    let mut progress = Progress::default();
    while let Some(arg) = p.next()? {
        if let Some(which) = crate::config::Source::which(&arg) {
            source.read(p, which)?;
            continue;
        }
        match arg {
            Short('h') | Long("help") => {
                println!("{USAGE}");
                return Ok(None);
            }
            Long("registry") => registry = Some(p.value()?.string()?),
            Long("registry-ca") => registry_ca = Some(p.value()?.into()),
            Long("fingerprint") => {
                let v = p.value()?.string()?;
                fingerprint = Some(cert::parse_fingerprint(&v).map_err(|e| usage(e.to_string()))?);
            }
            Long("anonymous") => modes.push(TokenMode::Anonymous),
            Long("token") => modes.push(TokenMode::Token(p.value()?.string()?)),
            Long("email") => modes.push(TokenMode::Email(p.value()?.string()?)),
            Long("location") => location = Some(p.value()?.string()?),
            Short('d') | Long("dir") => dir = Some(p.value()?.into()),
            Long("force") => force = true,
            Long("renew") => renew = true,
            Long("progress") => progress = Progress(Some(p.value()?.into())),
            Long("timeout") => {
                let v = p.value()?.string()?;
                let secs: f64 = v
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 86400.0)
                    .ok_or_else(|| usage(format!("--timeout {v:?} is not a number of seconds")))?;
                let total = Duration::from_secs_f64(secs);
                timeouts = Timeouts {
                    connect: total.min(Duration::from_secs(10)),
                    total,
                };
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    // The config file `run` reads, for what the command line leaves out.
    if source.given() {
        let c = source.load()?;
        registry = registry.or(c.registry);
        if registry_ca.is_none() && c.registry_ca.is_file() {
            registry_ca = Some(c.registry_ca);
        }
        if fingerprint.is_none() {
            if let Some(f) = &c.fingerprint {
                fingerprint = Some(cert::parse_fingerprint(f).map_err(|e| usage(e.to_string()))?);
            }
        }
        if modes.is_empty() {
            if let Some(t) = c.token {
                modes.push(TokenMode::Token(t));
            } else if let Some(e) = c.email {
                modes.push(TokenMode::Email(e));
            } else if c.anonymous {
                modes.push(TokenMode::Anonymous);
            }
        }
        dir = dir.or(Some(c.state_dir));
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from("."));
    let registry = registry.ok_or_else(|| usage("--registry URL is required"))?;
    if modes.len() > 1 {
        return Err(usage("--anonymous, --token and --email exclude each other"));
    }
    if force && renew {
        return Err(usage("--force and --renew exclude each other"));
    }
    if matches!(modes.first(), Some(TokenMode::Token(t)) if t.is_empty()) {
        return Err(usage("--token is empty"));
    }
    Ok(Some(Opts {
        registry,
        registry_ca,
        fingerprint,
        mode: modes.pop(),
        location,
        dir,
        force,
        renew,
        timeouts,
        progress,
    }))
}

pub fn command(p: &mut lexopt::Parser) -> Result<(), Failure> {
    let Some(o) = parse(p)? else {
        return Ok(());
    };
    o.progress.step("ca");
    let r = run(&o);
    o.progress.finish(&r);
    r
}

fn run(o: &Opts) -> Result<(), Failure> {
    let now = registry_client::now();
    let dir = StateDir::new(&o.dir);
    match dir.load(now)? {
        Loaded::Registered { id, expired } if !o.force => {
            let due = now.saturating_add(RENEW_PERIOD) >= id.cert.not_after();
            if o.renew || due || expired {
                renew(o, &dir, &id)
            } else {
                println!(
                    "Already registered in {}: certificate valid until {}, renewal from {}.",
                    o.dir.display(),
                    cert::utc_string(id.cert.not_after()),
                    cert::utc_string(id.cert.not_after() - RENEW_PERIOD)
                );
                println!("Use --force to register again, --renew to renew now.");
                print_subnet(&id.subnet);
                Ok(())
            }
        }
        Loaded::Registered { id, .. } => register(o, &dir, Some(&id.cert)),
        Loaded::Broken(e) => {
            if o.renew {
                return Err(Failure::new(
                    e.exit_code(),
                    format!("register: nothing to renew in {}: {e}", o.dir.display()),
                ));
            }
            log::warn!(
                "existing state in {} is unusable ({e}); registering anew",
                o.dir.display()
            );
            register(o, &dir, None)
        }
        Loaded::Empty if o.renew => Err(usage(format!(
            "nothing to renew: no certificate in {}",
            o.dir.display()
        ))),
        Loaded::Empty => register(o, &dir, None),
    }
}

fn transport(o: &Opts) -> Result<HttpTransport, Failure> {
    let t = HttpTransport::new(&o.registry, o.timeouts).map_err(|e| usage(e.to_string()))?;
    Ok(match &o.registry_ca {
        Some(f) => t.with_ca_file(f),
        None => t,
    })
}

fn register(o: &Opts, dir: &StateDir, previous: Option<&Certificate>) -> Result<(), Failure> {
    let mode = o
        .mode
        .clone()
        .ok_or_else(|| usage("one of --anonymous, --token TOKEN or --email EMAIL is required"))?;
    let mut registry = Registry::new(transport(o)?);

    let ca = registry.get_ca()?;
    let actual = ca.fingerprint_sha256();
    match o.fingerprint {
        Some(fp) => {
            let expected = format!("sha256:{}", cert::hex(&fp));
            if expected != actual {
                return Err(Error::Fingerprint { expected, actual }.into());
            }
        }
        None => println!(
            "WARNING: no --fingerprint given; the CA served is {actual}. \
             It is strongly recommended to check it."
        ),
    }
    let network = ca.network()?;
    let bits = ca.key_bits();
    o.progress.step("key");
    println!(
        "Network {}/{} (CA {:?}, {bits}-bit key).",
        network.to_ipv6(),
        network.len(),
        ca.common_name().unwrap_or("")
    );

    if let TokenMode::Email(email) = &mode {
        registry.request_token(email)?;
        println!("The registry sent a token to {email}.");
    }

    let (key, new_key) = match dir.reusable_key(bits)? {
        Some(k) => {
            println!("Reusing existing key.");
            (k, false)
        }
        None => {
            println!("Generating a {bits}-bit RSA key (this can take minutes on a router) ...");
            let t0 = Instant::now();
            let k = cert::generate_key(bits)?;
            println!("Key generated in {:.1} s.", t0.elapsed().as_secs_f64());
            // Kept at once when there is nothing it could break: a failed
            // request (registry down, bad token) then reuses it rather than
            // spend minutes on another.
            if previous.is_none() {
                dir.create()?;
                dir.write_atomic(state::KEY_FILE, cert::key_to_pem(&k)?.as_bytes(), 0o600)?;
            }
            (k, previous.is_some())
        }
    };

    let token = match &mode {
        TokenMode::Anonymous => String::new(),
        TokenMode::Token(t) => t.clone(),
        TokenMode::Email(_) => read_token()?,
    };
    let csr = cert::build_csr(
        &key,
        cert::request_subject(previous.map(Certificate::subject)),
    )?;

    // Fail on an unwritable directory before the token is spent.
    dir.create()?;
    dir.check_writable()?;
    println!("Requesting a certificate ...");
    o.progress.step("certificate");
    let crt = registry
        .request_certificate(&token, &csr, o.location.as_deref())
        .map_err(|e| match (&e, &mode) {
            (Error::InvalidToken, TokenMode::Email(_)) => Failure::new(
                e.exit_code(),
                format!("{e} (use --token to retry without asking for a new one)"),
            ),
            _ => e.into(),
        })?;
    check_issued(&crt, &ca, &key, registry_client::now())?;
    let subnet = Subnet::new(network, crt.prefix()?)?;

    // Everything checked: write, certificate last (it marks completion).
    write_if_changed(dir, state::CA_FILE, ca.to_pem().as_bytes(), 0o644)?;
    if new_key {
        dir.write_atomic(state::KEY_FILE, cert::key_to_pem(&key)?.as_bytes(), 0o600)?;
    }
    dir.write_atomic(state::CERT_FILE, crt.to_pem().as_bytes(), 0o644)?;
    // A network config cached for an older certificate is stale now.
    if dir.read(state::NETCONFIG_FILE)?.is_some() {
        let _ = std::fs::remove_file(dir.path(state::NETCONFIG_FILE));
    }
    println!(
        "Setup complete. Certificate is valid until {} and will be renewed from {}.",
        cert::utc_string(crt.not_after()),
        cert::utc_string(crt.not_after() - RENEW_PERIOD)
    );
    println!(
        "Back up the private key ({}): without it the subnet is lost.",
        dir.path(state::KEY_FILE).display()
    );

    o.progress.step("config");
    let mut session = registry.session(ca, key, subnet.node);
    match session.network_config() {
        Ok((config, raw)) => {
            dir.write_atomic(state::NETCONFIG_FILE, &raw, 0o644)?;
            print_config(&config);
        }
        Err(e) => println!(
            "WARNING: network config not fetched ({e}); the node will fetch it when it starts."
        ),
    }
    print_subnet(&subnet);
    Ok(())
}

fn renew(o: &Opts, dir: &StateDir, id: &Identity) -> Result<(), Failure> {
    let registry = Registry::new(transport(o)?);
    let mut session = registry.session(id.ca.clone(), id.key.clone(), id.prefix());
    let crt = session.renew_certificate(registry_client::now())?;
    let (config, raw) = session.network_config()?;
    if crt.der() != id.cert.der() {
        dir.write_atomic(state::CERT_FILE, crt.to_pem().as_bytes(), 0o644)?;
        println!(
            "Certificate renewed: serial {}, valid until {}.",
            crt.serial_u64()
                .map_or_else(|| cert::hex(crt.serial()), |s| s.to_string()),
            cert::utc_string(crt.not_after())
        );
    } else {
        println!(
            "Certificate unchanged: valid until {}, renewal from {}.",
            cert::utc_string(crt.not_after()),
            cert::utc_string(crt.not_after() - RENEW_PERIOD)
        );
    }
    dir.write_atomic(state::NETCONFIG_FILE, &raw, 0o644)?;
    if crt.serial_u64().is_some_and(|s| config.is_revoked(s)) {
        println!("WARNING: the registry lists this certificate as revoked.");
    }
    print_config(&config);
    print_subnet(&id.subnet);
    Ok(())
}

fn write_if_changed(dir: &StateDir, name: &str, data: &[u8], mode: u32) -> Result<(), Error> {
    if dir.read(name)?.as_deref() == Some(data) {
        return Ok(());
    }
    dir.write_atomic(name, data, mode)
}

/// Prompt for the mailed token on stdin, like re6st-conf.
fn read_token() -> Result<String, Failure> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock();
    loop {
        print!("Please enter your token: ");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        match lines.read_line(&mut line) {
            Ok(0) => {
                println!();
                return Err(usage("no token given on standard input"));
            }
            Ok(_) => {
                let t = line.trim();
                if !t.is_empty() {
                    return Ok(t.to_string());
                }
            }
            Err(e) => return Err(usage(format!("reading the token: {e}"))),
        }
    }
}

fn print_config(c: &NetworkConfig) {
    println!(
        "Network config version {} cached (registry protocol {}, {} revoked certificate(s)).",
        c.version.number,
        c.protocol,
        c.crl.len()
    );
}

fn print_subnet(s: &Subnet) {
    println!("Your subnet: {s} (CN={})", s.node.to_cn());
    println!("Your address: {}", s.address());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Option<Opts>, Failure> {
        parse(&mut lexopt::Parser::from_args(args.iter().copied()))
    }

    #[test]
    fn options() {
        let o = run(&["--registry", "http://r/", "--anonymous", "-d", "/tmp/x"])
            .unwrap()
            .unwrap();
        assert_eq!(o.mode, Some(TokenMode::Anonymous));
        assert_eq!(o.dir, PathBuf::from("/tmp/x"));
        let o = run(&["--registry", "http://r/", "--renew", "--timeout", "2.5"])
            .unwrap()
            .unwrap();
        assert_eq!(o.mode, None);
        assert_eq!(o.timeouts.total, Duration::from_millis(2500));
        assert_eq!(o.timeouts.connect, Duration::from_millis(2500));
        assert!(run(&["--help"]).unwrap().is_none());
        for bad in [
            &["--anonymous"][..],
            &["--registry", "http://r/", "--anonymous", "--token", "t"],
            &["--registry", "http://r/", "--token", ""],
            &["--registry", "http://r/", "--fingerprint", "sha256:12"],
            &["--registry", "http://r/", "--timeout", "0"],
            &["--registry", "http://r/", "--force", "--renew"],
            &["--registry", "http://r/", "extra"],
        ] {
            assert_eq!(run(bad).unwrap_err().code, exit::USAGE, "{bad:?}");
        }
    }

    #[test]
    fn the_config_file_run_reads() {
        let dir = std::env::temp_dir().join(format!("re6st-register-c-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("re6st");
        let fp = format!("sha256:{}", "ab".repeat(32));
        std::fs::write(
            &conf,
            format!(
                "config node 'node'\n\toption registry 'http://r.example/'\n\
                 \toption token 'T0k3n'\n\toption state_dir '/srv/re6st'\n\
                 \toption fingerprint '{fp}'\n"
            ),
        )
        .unwrap();
        let c = conf.to_str().unwrap();
        let o = run(&["-c", c]).unwrap().unwrap();
        assert_eq!(o.registry, "http://r.example/");
        assert_eq!(o.mode, Some(TokenMode::Token("T0k3n".into())));
        assert_eq!(o.dir, PathBuf::from("/srv/re6st"));
        assert_eq!(o.fingerprint, Some([0xab; 32]));
        // The command line wins.
        let o = run(&[
            "-c",
            c,
            "--anonymous",
            "-d",
            "/tmp/y",
            "-o",
            "registry=http://s/",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(o.registry, "http://s/");
        assert_eq!(o.mode, Some(TokenMode::Anonymous));
        assert_eq!(o.dir, PathBuf::from("/tmp/y"));
        std::fs::write(&conf, "config node 'node'\n\toption bogus '1'\n").unwrap();
        assert_eq!(run(&["-c", c]).unwrap_err().code, exit::USAGE);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn errors_map_to_their_exit_codes() {
        let f: Failure = Error::InvalidToken.into();
        assert_eq!(f.code, registry_client::error::exit::TOKEN);
        assert_eq!(f.msg, "invalid or expired token");
    }
}
