//! Network namespaces, veth links and processes for multi-node tests.
//!
//! Every object removes what it made when dropped, also when a test panics:
//! a [`Netns`] kills the processes left inside it and deletes itself, a
//! [`Proc`] kills its process. Tests use only TEST-NET and documentation
//! addresses inside the namespaces they create.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

static START: OnceLock<Instant> = OnceLock::new();

/// Time since the first call in this test binary: the clock of log stamps.
pub fn since_start() -> Duration {
    START.get_or_init(Instant::now).elapsed()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub(crate) fn unique(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{tag}{}x{n}", std::process::id() % 100_000)
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace with its loopback up.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Self {
        assert!(
            nix_is_root(),
            "multi-node tests need root (network namespaces)"
        );
        let ns = Netns {
            name: unique(&format!("r6{tag}")),
        };
        run_ok(Command::new("ip").args(["netns", "add", &ns.name]));
        ns.ip("link set lo up");
        ns
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: impl AsRef<Path>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program.as_ref());
        c
    }

    /// `ip ARGS` inside the namespace; panics on failure.
    pub fn ip(&self, args: &str) -> String {
        let out = run_ok(self.command("ip").args(args.split_whitespace()));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run `program args` inside the namespace, returning its output.
    pub fn output(&self, program: &str, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    }

    /// One ping -6 that gets an answer within a second.
    pub fn ping6(&self, addr: &str) -> bool {
        self.output("ping", &["-6", "-n", "-c", "1", "-W", "1", addr])
            .status
            .success()
    }

    /// Start a long-running process inside the namespace; its output goes
    /// to `log`, each line stamped with the seconds since the test binary
    /// started (to tell what happened when, across processes).
    pub fn spawn(&self, program: impl AsRef<Path>, args: &[&str], log: &Path) -> Proc {
        let log = Arc::new(Mutex::new(std::fs::File::create(log).expect("create log")));
        since_start();
        let mut child = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let out = child
            .stdout
            .take()
            .map(|o| Box::new(o) as Box<dyn Read + Send>);
        let err = child
            .stderr
            .take()
            .map(|e| Box::new(e) as Box<dyn Read + Send>);
        for pipe in [out, err].into_iter().flatten() {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let t = since_start().as_secs_f64();
                    let mut f = log.lock().unwrap_or_else(|e| e.into_inner());
                    let _ = writeln!(f, "[{t:7.3}] {line}");
                }
            });
        }
        Proc { child: Some(child) }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn nix_is_root() -> bool {
    // The effective uid, from /proc (no libc dependency for one number).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Join `a` and `b` with a veth pair and give each end an address
/// (`"192.0.2.1/24"`). The pair disappears with either namespace.
pub fn veth(a: &Netns, a_addr: &str, b: &Netns, b_addr: &str) -> (String, String) {
    let (ea, eb) = (unique("va"), unique("vb"));
    run_ok(Command::new("ip").args([
        "link", "add", &ea, "netns", &a.name, "type", "veth", "peer", "name", &eb, "netns", &b.name,
    ]));
    a.ip(&format!("addr add {a_addr} dev {ea}"));
    b.ip(&format!("addr add {b_addr} dev {eb}"));
    a.ip(&format!("link set {ea} up"));
    b.ip(&format!("link set {eb} up"));
    (ea, eb)
}

/// A process killed when dropped.
pub struct Proc {
    child: Option<Child>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Send SIGTERM and wait up to `timeout`; the exit code, if it exited.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let child = self.child.as_mut()?;
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Poll `f` every 100 ms until it holds or `timeout` passes; returns the
/// time it took, or None.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}
