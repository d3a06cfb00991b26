//! Minimal stderr logger: procd and syslog take it from there, so no timestamps
//! or colours, just `level: target: message`.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;

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
    fn levels_parse() {
        assert_eq!(parse_level("warning"), Some(LevelFilter::Warn));
        assert_eq!(parse_level("debug"), Some(LevelFilter::Debug));
        assert_eq!(parse_level("loud"), None);
    }
}
