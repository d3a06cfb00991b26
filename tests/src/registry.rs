//! Harness for tests against the real re6st registry (PyPI re6stnet 0.642).
//!
//! - [`Registry::start`] makes a fresh CA for `2001:db8:42::/48` (serial
//!   `0x120010db80042`) with the openssl CLI, fast DH params, and starts
//!   `re6st-registry` on 127.0.0.1 with a free port, its own temp dir and an
//!   mbox file as `--mailhost`. It is stopped by PID on drop, also on panic.
//! - [`re6st_lite`] runs the node binary with a watchdog.
//! - [`SilentServer`] accepts connections and never answers (timeouts);
//!   [`TamperProxy`] forwards to a registry and rewrites chosen replies (what
//!   the real registry cannot produce: bad HMACs, garbage, truncation).
//!
//! A missing registry venv or node binary makes the tests fail, not skip.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The registry virtualenv: `$RE6ST_VENV` or `/opt/re6st-lite/venv`.
pub fn venv() -> PathBuf {
    let v = PathBuf::from(
        std::env::var_os("RE6ST_VENV").unwrap_or_else(|| "/opt/re6st-lite/venv".into()),
    );
    assert!(
        v.join("bin/re6st-registry").is_file(),
        "re6st-registry not found in {} (set RE6ST_VENV, or run tests/setup.sh)",
        v.display()
    );
    v
}

/// The node binary: `$RE6ST_LITE_BIN`, else `<target dir>/debug/re6st-lite`.
pub fn node_bin() -> PathBuf {
    let bin = match std::env::var_os("RE6ST_LITE_BIN") {
        Some(b) => PathBuf::from(b),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
            target.join("debug/re6st-lite")
        }
    };
    assert!(
        bin.is_file(),
        "{} not found: build it first (cargo build -p node-lite) or set RE6ST_LITE_BIN",
        bin.display()
    );
    bin
}

/// Register a node anonymously with the registry at `url` into `dir`
/// (`re6st-lite register`); panics unless it succeeds.
pub fn register_anonymous(url: &str, dir: &Path) {
    let d = dir.to_str().expect("UTF-8 path");
    let run = re6st_lite(&["register", "--registry", url, "--anonymous", "--dir", d]);
    assert_eq!(run.code, 0, "register: {}", run.output());
}

/// libfaketime (Debian's `faketime` package, which tests/setup.sh installs):
/// a program run with it in LD_PRELOAD and `FAKETIME=+340d` sees the wall
/// clock that far ahead.
pub fn libfaketime() -> String {
    let found = std::fs::read_dir("/usr/lib").ok().and_then(|dirs| {
        dirs.flatten()
            .map(|d| d.path().join("faketime/libfaketime.so.1"))
            .find(|p| p.exists())
    });
    found
        .expect("libfaketime.so.1 under /usr/lib/*/faketime (apt install faketime)")
        .to_string_lossy()
        .into_owned()
}

/// The identity a registered state directory holds; panics if none.
pub fn identity(dir: &Path) -> registry_client::state::Identity {
    match registry_client::state::StateDir::new(dir)
        .load(0)
        .expect("state dir")
    {
        registry_client::state::Loaded::Registered { id, .. } => *id,
        _ => panic!("{} holds no identity", dir.display()),
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(PathBuf);

static SEQ: AtomicUsize = AtomicUsize::new(0);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "re6st-it-{tag}-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A new empty subdirectory.
    pub fn sub(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(&p).expect("create subdir");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `cmd`, panics (with its stderr) unless it succeeds; its stdout.
pub fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A CA for 2001:db8:42::/48 made with the openssl CLI.
pub struct Ca {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path) -> Self {
        let key = dir.join("ca.key");
        let cert = dir.join("ca.crt");
        run_ok(
            Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "rsa",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                ])
                .arg(&key)
                .stderr(Stdio::null()),
            "openssl genpkey",
        );
        let ca = Ca { cert, key };
        ca.renew(365);
        ca
    }

    /// (Re)make the certificate: same key, serial and subject, valid
    /// `days` from now (how an operator renews the CA).
    pub fn renew(&self, days: u32) {
        let (cert, key) = (&self.cert, &self.key);
        run_ok(
            Command::new("openssl")
                .args(["req", "-nodes", "-new", "-x509", "-key"])
                .arg(key)
                .args(["-set_serial", "0x120010db80042", "-days", &days.to_string()])
                .args([
                    "-subj",
                    "/CN=re6st test CA/emailAddress=registry@example.invalid",
                ])
                .arg("-out")
                .arg(cert),
            "openssl req -x509",
        );
    }

    /// `sha256:<hex>` of the DER, as `--fingerprint` takes it.
    pub fn fingerprint(&self) -> String {
        let pem = std::fs::read(&self.cert).expect("read CA");
        registry_client::cert::Certificate::from_pem(&pem)
            .expect("parse CA")
            .fingerprint_sha256()
    }
}

/// How to start a registry.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--anonymous-prefix-length`; `None` disables anonymous registration.
    pub anonymous_prefix_length: Option<u8>,
    /// Extra command-line arguments (`--hello 20`, `--encrypt`...).
    pub extra: Vec<String>,
    /// Run inside this namespace (name, its IPv4 address for the URL),
    /// listening on every IPv4 address there, next to a node: the
    /// registry reaches its node on [::1]:326 of its own namespace.
    pub netns: Option<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            anonymous_prefix_length: Some(20),
            extra: Vec::new(),
            netns: None,
        }
    }
}

/// A running `re6st-registry`.
pub struct Registry {
    child: Option<Child>,
    pub port: u16,
    pub dir: TempDir,
    pub ca: Ca,
    opts: Options,
    /// A libfaketime offset the registry runs with (`+340d`).
    clock: Option<String>,
}

impl Registry {
    pub fn start(opts: Options) -> Self {
        let dir = TempDir::new("registry");
        let ca = Ca::new(dir.path());
        run_ok(
            Command::new("openssl")
                .args(["dhparam", "-dsaparam", "-out"])
                .arg(dir.path().join("dh.pem"))
                .arg("1024")
                .stderr(Stdio::null()),
            "openssl dhparam",
        );
        std::fs::create_dir_all(dir.path().join("run")).expect("run dir");
        let mut r = Registry {
            child: None,
            port: 0,
            dir,
            ca,
            opts,
            clock: None,
        };
        r.launch(None);
        r
    }

    fn launch(&mut self, port: Option<u16>) {
        let venv = venv();
        for _ in 0..5 {
            let port = port.unwrap_or_else(free_port);
            let d = self.dir.path();
            let registry = venv.join("bin/re6st-registry");
            let mut cmd = match &self.opts.netns {
                Some((ns, _)) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", ns]).arg(&registry);
                    c
                }
                None => Command::new(&registry),
            };
            let listen = if self.opts.netns.is_some() {
                "0.0.0.0"
            } else {
                "127.0.0.1"
            };
            if let Some(offset) = &self.clock {
                cmd.env("LD_PRELOAD", libfaketime())
                    .env("FAKETIME", offset)
                    .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
            }
            cmd.arg("--port")
                .arg(port.to_string())
                .args(["-4", listen, "-6", ""])
                .arg("--db")
                .arg(d.join("registry.db"))
                .arg("--dh")
                .arg(d.join("dh.pem"))
                .arg("--ca")
                .arg(&self.ca.cert)
                .arg("--key")
                .arg(&self.ca.key)
                .arg("--mailhost")
                .arg(d.join("mbox"))
                .args(["--prefix-length", "16"])
                .arg("-l")
                .arg(d.join("registry.log"))
                .arg("-r")
                .arg(d.join("run"))
                .args(["-v", "3"])
                .args(&self.opts.extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(
                    std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(d.join("registry.stderr"))
                        .expect("stderr log"),
                );
            if let Some(n) = self.opts.anonymous_prefix_length {
                cmd.arg("--anonymous-prefix-length").arg(n.to_string());
            }
            let mut child = cmd.spawn().expect("spawn re6st-registry");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // died (port taken?): try another port
                }
                if self.connect(port).is_ok() {
                    self.child = Some(child);
                    self.port = port;
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
            thread::sleep(Duration::from_millis(200));
        }
        panic!("re6st-registry did not start; stderr:\n{}", self.log());
    }

    pub fn url(&self) -> String {
        let host = self.opts.netns.as_ref().map_or("127.0.0.1", |(_, ip)| ip);
        format!("http://{host}:{}/", self.port)
    }

    /// A connection to the registry from 127.0.0.1 (of its namespace).
    fn connect(&self, port: u16) -> std::io::Result<TcpStream> {
        let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        match &self.opts.netns {
            Some((ns, _)) => crate::forward::connect_in(ns, to),
            None => TcpStream::connect(to),
        }
    }

    /// The registry's stderr and log file, for failure messages.
    pub fn log(&self) -> String {
        let d = self.dir.path();
        let read = |n: &str| std::fs::read_to_string(d.join(n)).unwrap_or_default();
        format!("{}{}", read("registry.stderr"), read("registry.log"))
    }

    /// Stop by PID (SIGTERM via kill) and reap.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Restart with its wall clock `offset` from ours (libfaketime syntax,
    /// `+340d`): what a registry sees months after the nodes registered.
    pub fn restart_at(&mut self, offset: &str) {
        self.clock = Some(offset.to_owned());
        self.restart();
    }

    /// Stop and start again on the same port and database.
    pub fn restart(&mut self) {
        self.stop();
        let port = self.port;
        // The port may linger briefly; the registry sets SO_REUSEADDR.
        self.launch(Some(port));
    }

    /// GET `path_query` from 127.0.0.1 (private methods are allowed from there).
    pub fn get(&self, path_query: &str) -> (u16, Vec<u8>) {
        http_get_on(self.connect(self.port).expect("connect"), path_query)
    }

    /// The last token mailed by `requestToken`, from the mbox file.
    pub fn last_token(&self) -> Option<String> {
        let mbox = std::fs::read_to_string(self.dir.path().join("mbox")).ok()?;
        let marker = "network is: ";
        let i = mbox.rfind(marker)? + marker.len();
        let t: String = mbox[i..]
            .chars()
            .take_while(char::is_ascii_lowercase)
            .collect();
        (!t.is_empty()).then_some(t)
    }

    /// Wait (up to 30 s) for a token different from `previous`.
    pub fn wait_token(&self, previous: Option<&str>) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(t) = self.last_token() {
                if Some(t.as_str()) != previous {
                    return t;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no token in the mbox:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Minimal HTTP/1.0 GET to 127.0.0.1: status and body.
pub fn http_get(port: u16, path_query: &str) -> (u16, Vec<u8>) {
    http_get_on(
        TcpStream::connect(("127.0.0.1", port)).expect("connect"),
        path_query,
    )
}

fn http_get_on(mut s: TcpStream, path_query: &str) -> (u16, Vec<u8>) {
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    write!(s, "GET {path_query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").expect("send");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read reply");
    let (head, body) = split_head(&resp).expect("HTTP reply");
    let status = std::str::from_utf8(head)
        .ok()
        .and_then(|h| h.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    (status, body.to_vec())
}

fn split_head(resp: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = resp.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((&resp[..i], &resp[i + 4..]))
}

/// The outcome of one `re6st-lite` run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// Everything printed, for assertions on messages.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Run `re6st-lite args...`, feeding `stdin` when `feed` returns it (called
/// once the process started, so it can wait for a mailed token). Killed after
/// 180 s.
pub fn re6st_lite_with(args: &[&str], feed: Option<&dyn Fn() -> String>) -> Run {
    let start = Instant::now();
    let mut child = Command::new(node_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn re6st-lite");
    let mut stdin = child.stdin.take();
    if let (Some(f), Some(s)) = (feed, stdin.as_mut()) {
        let _ = s.write_all(f().as_bytes());
    }
    drop(stdin);
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(180);
            while !done.load(Ordering::Relaxed) {
                if Instant::now() > deadline {
                    // Our own child, by PID.
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                    return;
                }
                thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let out = child.wait_with_output().expect("wait re6st-lite");
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

pub fn re6st_lite(args: &[&str]) -> Run {
    re6st_lite_with(args, None)
}

/// Contents and permission bits of every file in `dir` (recursively).
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).expect("stat");
        if meta.is_dir() {
            out.extend(snapshot(&p));
        } else {
            let data = std::fs::read(&p).unwrap_or_default();
            out.insert(p, (data, meta.permissions().mode() & 0o7777));
        }
    }
    out
}

/// A TCP server that accepts connections and never answers.
pub struct SilentServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl SilentServer {
    pub fn start() -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = thread::spawn(move || {
            let mut held = Vec::new();
            for c in l.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(c) = c {
                    held.push(c);
                }
            }
        });
        SilentServer {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Rewrites one reply: gets the request path and the raw HTTP reply.
pub type Tamper = dyn Fn(&str, Vec<u8>) -> Vec<u8> + Send + Sync;

/// An HTTP proxy in front of a registry that rewrites replies.
pub struct TamperProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
    /// Request paths seen, in order.
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl TamperProxy {
    pub fn start(upstream: u16, tamper: Box<Tamper>) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (s, seen2) = (stop.clone(), seen.clone());
        let thread = thread::spawn(move || {
            for c in l.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(mut c) = c else { continue };
                c.set_read_timeout(Some(Duration::from_secs(30))).ok();
                // Read the request head.
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while split_head(&req).is_none() {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let path = std::str::from_utf8(&req)
                    .ok()
                    .and_then(|r| r.split(' ').nth(1))
                    .unwrap_or("")
                    .to_string();
                seen2.lock().map(|mut v| v.push(path.clone())).ok();
                let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let _ = up.write_all(&req);
                let mut resp = Vec::new();
                let _ = up.read_to_end(&mut resp);
                let _ = c.write_all(&tamper(&path, resp));
                let _ = c.shutdown(Shutdown::Both);
            }
        });
        TamperProxy {
            port,
            stop,
            thread: Some(thread),
            seen,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for TamperProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Helpers to rewrite raw HTTP replies.
pub mod reply {
    use super::split_head;

    /// Split into (head text, body).
    pub fn parts(resp: &[u8]) -> (String, Vec<u8>) {
        match split_head(resp) {
            Some((h, b)) => (String::from_utf8_lossy(h).into_owned(), b.to_vec()),
            None => (String::from_utf8_lossy(resp).into_owned(), Vec::new()),
        }
    }

    /// Reassemble with a new body and a correct Content-Length.
    pub fn with_body(resp: &[u8], body: &[u8]) -> Vec<u8> {
        let (head, _) = parts(resp);
        let mut lines: Vec<String> = head
            .split("\r\n")
            .filter(|l| !l.to_ascii_lowercase().starts_with("content-length:"))
            .map(str::to_owned)
            .collect();
        lines.push(format!("Content-Length: {}", body.len()));
        let mut out = lines.join("\r\n").into_bytes();
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
        out
    }

    /// Keep the head (and its Content-Length) but cut the body to `n` bytes.
    pub fn truncated(resp: &[u8], n: usize) -> Vec<u8> {
        let (head, body) = parts(resp);
        let mut out = head.into_bytes();
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(&body[..n.min(body.len())]);
        out
    }
}
