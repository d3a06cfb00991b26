//! `re6st-lite register` and the registry client against the real re6st
//! registry (re6stnet 0.642 in `$RE6ST_VENV`). Each test starts its own
//! registry on 127.0.0.1 with its own port and directory.

use std::path::Path;
use std::time::Duration;

use re6st_integration::registry::{
    free_port, re6st_lite, re6st_lite_with, reply, snapshot, Options, Registry, Run, SilentServer,
    TamperProxy, TempDir,
};
use registry_client::error::exit;
use registry_client::http::{HttpTransport, Response, Timeouts, Transport};
use registry_client::netconfig::BabelHmac;
use registry_client::state::{Loaded, StateDir};
use registry_client::{Error, Prefix};

fn register(url: &str, dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "register",
        "--registry",
        url,
        "--dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    re6st_lite(&args)
}

#[track_caller]
fn assert_exit(run: &Run, code: u8, message: &str) {
    assert_eq!(
        run.code,
        i32::from(code),
        "expected exit {code} ({message:?}), got:\n{}",
        run.output()
    );
    assert!(
        run.output().contains(message),
        "{message:?} not in:\n{}",
        run.output()
    );
    if code != 0 {
        // One line of error on stderr, prefixed by the program name.
        let last = run.stderr.lines().last().unwrap_or("");
        assert!(last.starts_with("re6st-lite: "), "{}", run.stderr);
        assert!(!run.output().contains("panicked"), "{}", run.output());
    }
}

/// Register anonymously; returns the state dir's identity.
fn registered(reg: &Registry, dir: &Path) -> registry_client::state::Identity {
    let fp = reg.ca.fingerprint();
    let run = register(&reg.url(), dir, &["--anonymous", "--fingerprint", &fp]);
    assert_exit(&run, 0, "Your subnet:");
    match StateDir::new(dir).load(registry_client::now()).unwrap() {
        Loaded::Registered { id, expired: false } => *id,
        other => panic!("not registered: {other:?}"),
    }
}

#[test]
fn anonymous_then_token_registrations() {
    let reg = Registry::start(Options::default());
    let tmp = TempDir::new("reg");
    let fp = reg.ca.fingerprint();

    // The first certificate ever issued is the registry's own node: 0/20.
    let a = tmp.sub("anon");
    let run = register(&reg.url(), &a, &["--anonymous", "--fingerprint", &fp]);
    assert_exit(&run, 0, "Your subnet: 2001:db8:42::/68 (CN=0/20)");
    assert!(
        run.stdout.contains("Your address: 2001:db8:42::1\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Generating a 2048-bit RSA key"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Key generated in "), "{}", run.stdout);
    let files = snapshot(&a);
    let names: Vec<_> = files
        .keys()
        .map(|p| p.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["ca.crt", "cert.crt", "cert.key", "network-config.z"]
    );
    assert_eq!(files[&a.join("cert.key")].1, 0o600);
    let sd = StateDir::new(&a);
    let Loaded::Registered { id, expired: false } = sd.load(registry_client::now()).unwrap() else {
        panic!("not registered")
    };
    assert_eq!(id.cert.key_bits(), 2048);
    assert_eq!(id.ca.fingerprint_sha256(), fp);
    let config = sd.network_config(&id).unwrap().unwrap();
    assert_eq!(
        config.registry_prefix,
        Some(Prefix::from_cn("0/20").unwrap())
    );

    // Running again: already registered, nothing changes, no registry needed.
    let before = snapshot(&a);
    let run = register("http://127.0.0.1:1/", &a, &["--anonymous"]);
    assert_exit(&run, 0, "Already registered");
    assert!(run.stdout.contains("CN=0/20"), "{}", run.stdout);
    assert_eq!(snapshot(&a), before);

    // E-mail: requestToken, the token is read on stdin (from the mbox here).
    let e = tmp.sub("email");
    let dir = e.to_str().unwrap().to_string();
    let url = reg.url();
    let feed = || reg.wait_token(None) + "\n";
    let run = re6st_lite_with(
        &[
            "register",
            "--registry",
            &url,
            "--dir",
            &dir,
            "--fingerprint",
            &fp,
            "--email",
            "alice@example.invalid",
        ],
        Some(&feed),
    );
    assert_exit(&run, 0, "Your subnet: 2001:db8:42:1::/64 (CN=1/16)");
    assert!(
        run.stdout.contains("Please enter your token:"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("Your address: 2001:db8:42:1::1\n"),
        "{}",
        run.stdout
    );

    // A token obtained beforehand, given with --token.
    let first = reg.last_token();
    let (status, _) = reg.get("/requestToken?email=bob%40example.invalid");
    assert_eq!(status, 204);
    let token = reg.wait_token(first.as_deref());
    let t = tmp.sub("token");
    let run = register(&reg.url(), &t, &["--token", &token, "--fingerprint", &fp]);
    assert_exit(&run, 0, "Your subnet: 2001:db8:42:2::/64 (CN=2/16)");

    // The same token twice: invalid (204), and the directory is untouched.
    let before = snapshot(&t);
    let run = register(&reg.url(), &t, &["--force", "--token", &token]);
    assert_exit(&run, exit::TOKEN, "invalid or expired token");
    assert_eq!(snapshot(&t), before);
}

#[test]
fn network_config_has_every_field() {
    let extra = "--hello 20 --client-count 5 --max-clients 9 --tunnel-refresh 200 --encrypt \
                 --ipv4 10.42.0.0/16 8 --min-protocol 2";
    let mut reg = Registry::start(Options {
        extra: extra.split(' ').map(str::to_owned).collect(),
        ..Options::default()
    });
    let tmp = TempDir::new("netconf");
    let a = tmp.sub("a");
    let id = registered(&reg, &a);
    let sd = StateDir::new(&a);
    let c = sd.network_config(&id).unwrap().unwrap();
    assert_eq!(
        c.babel_default,
        "max-rtt-penalty 5000 rtt-max 500 rtt-decay 125"
    );
    assert!(c.crl.is_empty());
    assert_eq!((c.protocol, c.min_protocol), (8, 2));
    assert_eq!(c.registry_prefix, Some(id.prefix()));
    assert_eq!(
        (c.client_count, c.max_clients, c.hello, c.tunnel_refresh),
        (5, 9, 20, 200)
    );
    assert!(c.encrypt);
    assert_eq!(c.ipv4, Some(("10.42.0.0".parse().unwrap(), 16)));
    assert_eq!(c.ipv4_sublen, Some(8));
    assert_eq!(
        (c.same_country.clone(), c.valid_until, c.delay_restart),
        (None, None, None)
    );
    assert!(
        c.extra.is_empty() && c.extra_binary.is_empty(),
        "{:?}",
        c.extra
    );
    assert!(c.version.number >= 1);
    let Some(BabelHmac::Key(sign)) = c.babel_hmac_sign.clone() else {
        panic!("no babel_hmac_sign: {:?}", c.babel_hmac_sign)
    };
    assert_eq!(sign.len(), 16);
    assert_eq!(c.babel_hmac_accept, None);

    // Rotate the babel key (private method, allowed from 127.0.0.1). 0.642
    // cannot serialise the config after updateHMAC until it restarts.
    assert_eq!(reg.get("/updateHMAC").0, 204);
    reg.restart();
    let run = register(&reg.url(), &a, &["--renew"]);
    assert_exit(&run, 0, "Certificate unchanged");
    let c2 = sd.network_config(&id).unwrap().unwrap();
    assert_eq!(c2.babel_hmac_sign, Some(BabelHmac::Key(sign)));
    assert!(matches!(&c2.babel_hmac_accept, Some(BabelHmac::Key(k)) if k.len() == 16));
    assert!(c2.version.number > c.version.number);
}

#[test]
fn renewal_and_revocation() {
    let reg = Registry::start(Options::default());
    let tmp = TempDir::new("renew");
    let first = registered(&reg, &tmp.sub("first"));
    assert_eq!(first.prefix().to_cn(), "0/20");
    let b = tmp.sub("b");
    let id = registered(&reg, &b);
    assert_eq!(id.prefix().to_cn(), "1/20");
    let serial = id.cert.serial_u64().unwrap();

    // More than 30 days from expiry: the same certificate comes back.
    let before = snapshot(&b);
    let run = register(&reg.url(), &b, &["--renew"]);
    assert_exit(&run, 0, "Certificate unchanged");
    assert!(
        run.stdout
            .contains("Your subnet: 2001:db8:42:0:1000::/68 (CN=1/20)"),
        "{}",
        run.stdout
    );
    assert_eq!(
        before[&b.join("cert.crt")],
        snapshot(&b)[&b.join("cert.crt")]
    );

    // Revoked by serial: listed in crl, and renewal re-issues (new serial,
    // same prefix and notAfter).
    assert_eq!(reg.get(&format!("/revoke?cn_or_serial={serial}")).0, 204);
    let run = register(&reg.url(), &b, &["--renew"]);
    assert_exit(&run, 0, "Certificate renewed: serial");
    let sd = StateDir::new(&b);
    let Loaded::Registered { id: new, .. } = sd.load(registry_client::now()).unwrap() else {
        panic!("state broken after renewal")
    };
    assert!(new.cert.serial_u64().unwrap() > serial);
    assert_eq!(new.prefix(), id.prefix());
    assert_eq!(new.cert.not_after(), id.cert.not_after());
    let c = sd.network_config(&new).unwrap().unwrap();
    assert!(c.is_revoked(serial), "crl {:?}", c.crl);
    assert!(!c.is_revoked(new.cert.serial_u64().unwrap()));

    // Revoked by CN: the registry forgets the prefix, hello fails (500 on
    // 0.642, 404 on HEAD) and nothing is overwritten.
    assert_eq!(reg.get("/revoke?cn_or_serial=1/20").0, 204);
    let before = snapshot(&b);
    let run = register(&reg.url(), &b, &["--renew"]);
    assert_exit(
        &run,
        exit::UNKNOWN_NODE,
        "registry does not know prefix 1/20",
    );
    assert_eq!(snapshot(&b), before);
}

/// Records every status, to see the client's re-hello.
struct Recorder(HttpTransport, Vec<(String, u16)>);

impl Transport for Recorder {
    fn get(&mut self, pq: &str, hmac: Option<&str>) -> Result<Response, Error> {
        let r = self.0.get(pq, hmac)?;
        self.1
            .push((pq.split('?').next().unwrap_or("").to_string(), r.status));
        Ok(r)
    }
    fn url(&self) -> &str {
        self.0.url()
    }
}

#[test]
fn session_survives_a_registry_restart() {
    let mut reg = Registry::start(Options::default());
    let tmp = TempDir::new("restart");
    let id = registered(&reg, &tmp.sub("a"));
    let t = HttpTransport::new(&reg.url(), Timeouts::default()).unwrap();
    let mut s = registry_client::Registry::new(Recorder(t, Vec::new())).session(
        id.ca.clone(),
        id.key.clone(),
        id.prefix(),
    );
    let (c1, _) = s.network_config().unwrap();
    // The chain goes on without a new hello.
    assert!(s.renew_certificate(registry_client::now()).is_ok());
    reg.restart();
    // The registry lost the session: 400 on 0.642 (401 on HEAD), then a
    // new hello and the call succeeds.
    let (c2, _) = s.network_config().unwrap();
    assert_eq!(c1.version, c2.version);
    let calls: Vec<_> = s
        .transport()
        .1
        .iter()
        .map(|(m, s)| format!("{m} {s}"))
        .collect();
    assert_eq!(
        calls,
        [
            "/hello 200",
            "/getNetworkConfig 200",
            "/renewCertificate 200",
            "/getNetworkConfig 400",
            "/hello 200",
            "/getNetworkConfig 200"
        ]
    );
}

#[test]
fn bootstrap_peer_with_and_without_a_local_node() {
    let reg = Registry::start(Options::default());
    let tmp = TempDir::new("bootstrap");
    let _registry_node = registered(&reg, &tmp.sub("first"));
    let id = registered(&reg, &tmp.sub("b"));
    let mut s = registry_client::Registry::new(
        HttpTransport::new(&reg.url(), Timeouts::default()).unwrap(),
    )
    .session(id.ca.clone(), id.key.clone(), id.prefix());
    // No node next to the registry: 204 after its 3 s wait.
    assert_eq!(s.bootstrap_peer().unwrap(), None);
    // Stand in for the registry's node on [::1]:326 (needs root, as CI is).
    // Another test may hold the port for a moment: retry for up to 30 s.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let sock = loop {
        match std::net::UdpSocket::bind("[::1]:326") {
            Ok(s) => break s,
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(200))
            }
            Err(e) => panic!("bind [::1]:326 (needs root): {e}"),
        }
    };
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let node = std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        // Skip the network-version notifications (code 0) the registry sends.
        loop {
            let (n, from) = sock.recv_from(&mut buf).expect("registry query");
            let Some(z) = buf[..n].iter().position(|&b| b == 0) else {
                continue;
            };
            if buf.get(z + 1) == Some(&1) {
                let mut ans = buf[..z + 2].to_vec();
                ans.extend_from_slice(b"198.51.100.7,1194,udp,FR;2001:db8::7,1194,tcp6,FR");
                sock.send_to(&ans, from).unwrap();
                return;
            }
        }
    });
    let peer = s.bootstrap_peer().unwrap().expect("a peer");
    node.join().unwrap();
    assert_eq!(peer.prefix.to_cn(), "0/20");
    assert_eq!(peer.addresses.len(), 2);
    assert_eq!(peer.addresses[0].ip.to_string(), "198.51.100.7");
    assert_eq!(peer.addresses[1].proto, "tcp6");
}

#[test]
fn refusals_from_the_real_registry() {
    // No --anonymous-prefix-length: anonymous registration is disabled (403).
    let reg = Registry::start(Options {
        anonymous_prefix_length: None,
        ..Options::default()
    });
    let tmp = TempDir::new("refuse");
    let d = tmp.sub("d");
    let fp = reg.ca.fingerprint();
    let run = register(&reg.url(), &d, &["--anonymous", "--fingerprint", &fp]);
    assert_exit(&run, exit::FORBIDDEN, "registration is disabled");
    only_the_key(&d);
    let key = snapshot(&d);
    // Wrong fingerprint: stops before anything else.
    let wrong = format!("sha256:{}", "00".repeat(32));
    let run = register(&reg.url(), &d, &["--anonymous", "--fingerprint", &wrong]);
    assert_exit(&run, exit::FINGERPRINT, "CA fingerprint mismatch");
    assert!(!run.stdout.contains("Generating"), "{}", run.stdout);
    assert_eq!(snapshot(&d), key);
    // Unknown token (204): the kept key spares another generation.
    let run = register(
        &reg.url(),
        &d,
        &["--token", "nosuchtk", "--fingerprint", &fp],
    );
    assert_exit(&run, exit::TOKEN, "invalid or expired token");
    assert!(
        run.stdout.contains("Reusing existing key."),
        "{}",
        run.stdout
    );
    assert_eq!(snapshot(&d), key);
}

/// A refused first registration leaves only its key (0600), which the next
/// attempt reuses rather than spend minutes generating another on a router.
fn only_the_key(d: &std::path::Path) {
    let s = snapshot(d);
    let names: Vec<_> = s.keys().filter_map(|p| p.file_name()?.to_str()).collect();
    assert_eq!(names, ["cert.key"], "{:?}", s.keys());
    assert_eq!(s.values().next().map(|v| v.1), Some(0o600));
}

#[test]
fn existing_state_survives_every_failure() {
    let reg = Registry::start(Options::default());
    let tmp = TempDir::new("fail");
    let d = tmp.sub("d");
    registered(&reg, &d);
    let good = snapshot(&d);
    let fp = reg.ca.fingerprint();

    // Wrong fingerprint with --force.
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let run = register(
        &reg.url(),
        &d,
        &["--force", "--anonymous", "--fingerprint", &wrong],
    );
    assert_exit(&run, exit::FINGERPRINT, "CA fingerprint mismatch");
    assert_eq!(snapshot(&d), good);

    // Registry down: connection refused.
    let down = format!("http://127.0.0.1:{}/", free_port());
    let run = register(&down, &d, &["--force", "--anonymous"]);
    assert_exit(&run, exit::UNREACHABLE, "unreachable");
    assert_eq!(snapshot(&d), good);
    let run = register(&down, &d, &["--renew"]);
    assert_exit(&run, exit::UNREACHABLE, "unreachable");
    assert_eq!(snapshot(&d), good);

    // Registry that accepts and never answers: timeout.
    let silent = SilentServer::start();
    let url = format!("http://127.0.0.1:{}/", silent.port);
    let run = register(&url, &d, &["--renew", "--timeout", "1.5"]);
    assert_exit(&run, exit::TIMEOUT, "did not answer in time");
    assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
    assert_eq!(snapshot(&d), good);

    // Tampered reply HMAC (one bit of the renewCertificate body).
    let flip = |method: &'static str| {
        Box::new(move |path: &str, resp: Vec<u8>| {
            if !path.starts_with(method) {
                return resp;
            }
            let (_, mut body) = reply::parts(&resp);
            let last = body.len() - 1;
            body[last] ^= 1;
            reply::with_body(&resp, &body)
        })
    };
    for method in ["/renewCertificate", "/getNetworkConfig"] {
        let proxy = TamperProxy::start(reg.port, flip(method));
        let run = register(&proxy.url(), &d, &["--renew"]);
        assert_exit(&run, exit::HMAC, "failed HMAC authentication");
        assert_eq!(snapshot(&d), good, "{method}");
    }

    // Garbage hello: the CA signature does not verify.
    let proxy = TamperProxy::start(
        reg.port,
        Box::new(|path: &str, resp: Vec<u8>| {
            if path.starts_with("/hello") {
                reply::with_body(&resp, &[0x5a; 512])
            } else {
                resp
            }
        }),
    );
    let run = register(&proxy.url(), &d, &["--renew"]);
    assert_exit(&run, exit::SIGNATURE, "bad CA signature on hello reply");
    assert_eq!(snapshot(&d), good);

    // Truncated CA (Content-Length says more), garbage CA.
    for (what, tamper) in [
        (
            "truncated",
            Box::new(|p: &str, r: Vec<u8>| {
                if p == "/getCa" {
                    reply::truncated(&r, 100)
                } else {
                    r
                }
            }) as Box<re6st_integration::registry::Tamper>,
        ),
        (
            "garbage",
            Box::new(|p: &str, r: Vec<u8>| {
                if p == "/getCa" {
                    reply::with_body(&r, b"<html>oops</html>")
                } else {
                    r
                }
            }),
        ),
    ] {
        let proxy = TamperProxy::start(reg.port, tamper);
        let run = register(
            &proxy.url(),
            &d,
            &["--force", "--anonymous", "--fingerprint", &fp],
        );
        assert_exit(&run, exit::MALFORMED, "malformed");
        assert_eq!(snapshot(&d), good, "{what}");
    }
}

#[test]
fn certificate_not_from_the_served_ca_is_refused() {
    // Two registries with CAs of the same name: getCa from the second, the
    // certificate from the first. The fingerprint matches what was served,
    // but the certificate is not signed by it.
    let real = Registry::start(Options::default());
    let other = Registry::start(Options::default());
    let other_ca = std::fs::read(&other.ca.cert).unwrap();
    let fake_fp = other.ca.fingerprint();
    let proxy = TamperProxy::start(
        real.port,
        Box::new(move |path: &str, resp: Vec<u8>| {
            if path == "/getCa" {
                reply::with_body(&resp, &other_ca)
            } else {
                resp
            }
        }),
    );
    let tmp = TempDir::new("otherca");
    let d = tmp.sub("d");
    let run = register(
        &proxy.url(),
        &d,
        &["--anonymous", "--fingerprint", &fake_fp],
    );
    assert_exit(&run, exit::SIGNATURE, "bad CA signature on certificate");
    only_the_key(&d);
}
