//! Minimal logger: `level: message` lines on stderr (systemd and procd
//! file them), or with `--syslog` one datagram per line to the system log
//! (`/dev/log`, OpenWrt's logd) with the line's own priority: procd files
//! a service's stderr as `daemon.err`, which made every info line an error
//! in `logread`. No timestamps or colours: the log daemon adds them.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;

/// The socket to the system log, when `--syslog` was given.
static SYSLOG: OnceLock<UnixDatagram> = OnceLock::new();
const SYSLOG_PATH: &str = "/dev/log";
/// syslog facility `daemon`.
const FACILITY_DAEMON: u8 = 3;

/// RFC 3164's `<PRI>tag[pid]: message` (the log daemon adds the time).
fn syslog_line(level: Level, pid: u32, msg: &str) -> String {
    let severity = match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    };
    format!(
        "<{}>re6st-lite[{pid}]: {msg}",
        FACILITY_DAEMON * 8 + severity
    )
}

/// Send log lines to the system log at `path` from now on; false (and
/// stderr stays) if nothing listens there.
fn connect_syslog(path: &Path) -> bool {
    let Ok(s) = UnixDatagram::unbound() else {
        return false;
    };
    if s.connect(path).is_err() {
        return false;
    }
    SYSLOG.set(s).is_ok()
}

/// `--syslog`: the system log, or stderr if it is not there.
pub fn use_syslog() -> bool {
    connect_syslog(Path::new(SYSLOG_PATH))
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        if let Some(s) = SYSLOG.get() {
            let line = syslog_line(
                record.level(),
                std::process::id(),
                &record.args().to_string(),
            );
            if s.send(line.as_bytes()).is_ok() {
                return;
            }
        }
        // One write per line, so concurrent lines never interleave mid-line.
        let line = format!("{level}: {}\n", record.args());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// `--log-level` was given: it wins over the config file's `log_level`.
static EXPLICIT: AtomicBool = AtomicBool::new(false);

/// Install the logger once; later calls only change the level.
/// `explicit`: the level comes from the command line.
pub fn init(level: LevelFilter, explicit: bool) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
    EXPLICIT.store(explicit, Ordering::Relaxed);
}

/// The config file's level, unless the command line set one.
pub fn configured(level: LevelFilter) {
    if !EXPLICIT.load(Ordering::Relaxed) {
        log::set_max_level(level);
    }
}

/// Parse a level name as used in the config file and on the command line.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    Some(match s {
        "off" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "warn" | "warning" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_lines_carry_their_priority() {
        assert_eq!(syslog_line(Level::Info, 42, "up"), "<30>re6st-lite[42]: up");
        assert_eq!(syslog_line(Level::Error, 42, "x"), "<27>re6st-lite[42]: x");
        assert_eq!(syslog_line(Level::Warn, 1, "x"), "<28>re6st-lite[1]: x");
        assert_eq!(syslog_line(Level::Debug, 1, "x"), "<31>re6st-lite[1]: x");
    }

    #[test]
    fn syslog_datagrams_reach_the_socket() {
        let dir = std::env::temp_dir().join(format!("re6st-syslog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        assert!(!connect_syslog(&dir.join("nothing")));
        assert!(connect_syslog(&path));
        init(LevelFilter::Info, true);
        log::warn!("tunnel down");
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(
            got.starts_with("<28>re6st-lite[") && got.ends_with("]: tunnel down"),
            "{got}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn levels_parse() {
        assert_eq!(parse_level("warning"), Some(LevelFilter::Warn));
        assert_eq!(parse_level("debug"), Some(LevelFilter::Debug));
        assert_eq!(parse_level("loud"), None);
    }
}
