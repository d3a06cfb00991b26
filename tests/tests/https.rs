//! An `https://` registry: the real re6st registry behind a real TLS
//! terminator (Debian's stunnel4, as SlapOS puts a TLS frontend in front of
//! it), with a TLS CA made here (ECDSA P-256, the server certificate for
//! 127.0.0.1). `register` over HTTPS, `--renew` over HTTPS, a wrong CA and
//! the system bundle (which does not know our CA) refused with exit 23
//! without touching the state dir; then the daemon fetches its network
//! config over HTTPS (SIGHUP), and a node given the wrong CA reports a TLS
//! error in `status`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use re6st_integration::forward::Forward;
use re6st_integration::mesh::Mesh;
use re6st_integration::netns::wait_until;
use re6st_integration::registry::{free_port, re6st_lite, run_ok, snapshot, Options, Run, TempDir};
use registry_client::error::exit;

fn openssl(args: &[&str]) {
    run_ok(
        Command::new("openssl").args(args),
        &format!("openssl {args:?}"),
    );
}

/// A TLS CA in `dir` (`<name>.pem`, `<name>.key`).
fn tls_ca(dir: &Path, name: &str) -> PathBuf {
    let (key, pem) = (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pem")),
    );
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-days",
        "2",
        "-subj",
        &format!("/CN={name}"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        pem.to_str().unwrap(),
    ]);
    pem
}

/// stunnel4 on 127.0.0.1:`port`, terminating TLS for the registry.
struct Stunnel(Child);

impl Stunnel {
    /// `extra`: more lines for the service section (`sslVersionMax = ...`).
    fn start(dir: &Path, ca: &Path, port: u16, upstream: u16, extra: &str) -> Self {
        let ca_key = ca.with_extension("key");
        let (key, csr, crt) = (
            dir.join("srv.key"),
            dir.join("srv.csr"),
            dir.join("srv.pem"),
        );
        let ext = dir.join("srv.ext");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=registry",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            ca.to_str().unwrap(),
            "-CAkey",
            ca_key.to_str().unwrap(),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            crt.to_str().unwrap(),
        ]);
        let conf = dir.join(format!("stunnel-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\n[registry]\naccept = 127.0.0.1:{port}\n\
                 connect = 127.0.0.1:{upstream}\ncert = {}\nkey = {}\n{extra}\n",
                crt.display(),
                key.display()
            ),
        )
        .unwrap();
        let child = Command::new("stunnel4")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("stunnel4 (tests/setup.sh installs it)");
        let up = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up.is_some(), "stunnel4 did not listen");
        Stunnel(child)
    }
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[track_caller]
fn assert_exit(run: &Run, code: u8, message: &str) {
    assert_eq!(run.code, i32::from(code), "{}", run.output());
    assert!(
        run.output().contains(message),
        "{message:?} not in {}",
        run.output()
    );
}

#[test]
fn registry_over_https() {
    let mut m = Mesh::build(2, Options::default());
    let tmp = TempDir::new("https");
    let ca = tls_ca(tmp.path(), "tls-ca");
    let wrong = tls_ca(tmp.path(), "other-ca");
    let port = free_port();
    let _tls = Stunnel::start(tmp.path(), &ca, port, m.registry.port, "");
    let url = format!("https://127.0.0.1:{port}/");
    let fp = m.registry.ca.fingerprint();

    // The CLI: a wrong CA, then the system's bundle, refused before any
    // registry call; the state dir stays empty.
    let dir = tmp.sub("node");
    let register = |extra: &[&str]| {
        let mut args = vec![
            "register",
            "--registry",
            &url,
            "--dir",
            dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        args.extend(["--anonymous", "--fingerprint", &fp]);
        re6st_lite(&args)
    };
    for bad in [vec!["--registry-ca", wrong.to_str().unwrap()], vec![]] {
        let run = register(&bad);
        assert_exit(&run, exit::TLS, "TLS");
        println!("refused ({bad:?}): {}", run.stderr.trim());
        assert!(snapshot(&dir).is_empty(), "state written on a TLS failure");
    }
    let with_ca = ["--registry-ca", ca.to_str().unwrap()];
    // A frontend that stops at TLS 1.2: we speak TLS 1.3 only (README).
    let old_port = free_port();
    let _old = Stunnel::start(
        tmp.path(),
        &ca,
        old_port,
        m.registry.port,
        "sslVersionMax = TLSv1.2",
    );
    let old_url = format!("https://127.0.0.1:{old_port}/");
    let run = re6st_lite(&[
        "register",
        "--registry",
        &old_url,
        "--dir",
        dir.to_str().unwrap(),
        "--anonymous",
        with_ca[0],
        with_ca[1],
    ]);
    assert_exit(&run, exit::TLS, "TLS");
    println!("TLS 1.2-only frontend: {}", run.stderr.trim());
    assert!(snapshot(&dir).is_empty());
    let run = register(&with_ca);
    assert_exit(&run, 0, "Your subnet:");
    println!("registered over HTTPS in {:?}", run.elapsed);
    let mut renew = vec![
        "register",
        "--registry",
        &url,
        "--dir",
        dir.to_str().unwrap(),
    ];
    renew.extend(["--renew", with_ca[0], with_ca[1]]);
    let run = re6st_lite(&renew);
    assert_exit(&run, 0, "Network config version");

    // The daemon: the network config over HTTPS, reached from the node's
    // namespace at the same address.
    let listen = SocketAddr::from(([127, 0, 0, 1], port));
    let mut forwards = Vec::new();
    for (i, ca_file) in [(0, &ca), (1, &wrong)] {
        m.nodes[i].options.push(format!("registry={url}"));
        m.nodes[i]
            .options
            .push(format!("registry_ca={}", ca_file.display()));
        forwards.push(Forward::start(&m.nodes[i].ns, listen, listen));
    }
    m.spawn_all();
    let json = |i: usize| m.status_json(i);
    // SIGHUP asks for the network config now (once the node answers: before
    // its handler is set, SIGHUP would end it).
    for i in 0..2 {
        let up = wait_until(Duration::from_secs(20), || json(i).contains("\"registry\""));
        assert!(up.is_some(), "node {i} did not start\n{}", m.logs());
        m.sighup(i);
    }
    let fetched = wait_until(Duration::from_secs(30), || {
        json(0).contains("\"last_error\":null") && !json(0).contains("\"last_ok_s\":null")
    });
    assert!(
        fetched.is_some(),
        "node 0 never fetched over HTTPS: {}",
        json(0)
    );
    let refused = wait_until(Duration::from_secs(30), || json(1).contains("TLS"));
    assert!(
        refused.is_some(),
        "node 1's TLS error not shown: {}",
        json(1)
    );
    println!(
        "node 1 with the wrong CA: {}",
        json(1)
            .split("\"registry\":")
            .nth(1)
            .unwrap_or("")
            .split('}')
            .next()
            .unwrap_or("")
    );
    drop(forwards);
}
