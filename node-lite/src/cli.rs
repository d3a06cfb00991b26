//! Command line: `re6st-lite [--log-level L] <command> [options]`: the
//! commands and their dispatch. What commands share ([`Failure`], exit codes)
//! is in [`crate::failure`], so that commands do not depend on this module.
//!
//! lexopt rather than clap: it adds about 8 KB to a static musl binary where
//! clap's derive API adds several hundred (measured, see README design notes).

use std::ffi::OsString;

use lexopt::prelude::*;

use crate::failure::{exit, Failure};

/// One subcommand: its name, a one-line summary for the top-level help, and
/// its entry point, which parses the rest of the command line itself.
pub struct Command {
    pub name: &'static str,
    pub summary: &'static str,
    pub run: fn(&mut lexopt::Parser) -> Result<(), Failure>,
}

pub const COMMANDS: &[Command] = &[
    Command {
        name: "config",
        summary: "check a config file and print it, or print the documented defaults",
        run: crate::config::command,
    },
    Command {
        name: "run",
        summary: "run the node (the daemon)",
        run: crate::driver::run::command,
    },
    Command {
        name: "status",
        summary: "show the running node: tunnels, neighbours, routes (--json for scripts)",
        run: crate::driver::status::command,
    },
    Command {
        name: "selftest",
        summary: "run known-answer checks of the crypto and wire code on this machine",
        run: crate::selftest::command,
    },
    Command {
        name: "register",
        summary: "join a re6st network: get a certificate from its registry",
        run: crate::register::command,
    },
    Command {
        name: "rpcd",
        summary: "the LuCI app's rpcd plugin (list | call METHOD)",
        run: crate::rpcd::command,
    },
    Command {
        name: "info",
        summary: "print the registration and prefix held in the state directory (offline)",
        run: crate::info::command,
    },
];

pub fn version() -> String {
    format!(
        "re6st-lite {} ({}-{}, {}-endian)",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS,
        if cfg!(target_endian = "big") {
            "big"
        } else {
            "little"
        }
    )
}

fn help() -> String {
    let mut s = format!(
        "{}\nA compact node for the re6st IPv6 overlay network.\n\n\
         Usage: re6st-lite [--log-level LEVEL] <command> [options]\n\n\
         Commands:\n",
        version()
    );
    for c in COMMANDS {
        s += &format!("  {:<10} {}\n", c.name, c.summary);
    }
    s += "\nOptions:\n\
          \x20 --log-level LEVEL  error, warn, info (default), debug or trace\n\
          \x20 --syslog           log to the system log (/dev/log) with each line's priority\n\
          \x20 -h, --help         this help; `re6st-lite <command> --help` for a command\n\
          \x20 -V, --version      print the version\n";
    s
}

/// Parse the command line and run the chosen command.
pub fn main(args: impl IntoIterator<Item = OsString>) -> Result<(), Failure> {
    let mut p = lexopt::Parser::from_args(args);
    let mut level = None;
    while let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => {
                print!("{}", help());
                return Ok(());
            }
            Short('V') | Long("version") => {
                println!("{}", version());
                return Ok(());
            }
            Long("syslog") => {
                // Before the logger is in use; stderr if there is no log daemon.
                crate::logger::use_syslog();
            }
            Long("log-level") => {
                let v = p.value()?.string()?;
                level = Some(crate::logger::parse_level(&v).ok_or_else(|| {
                    Failure::new(exit::USAGE, format!("unknown log level {v:?}"))
                })?);
            }
            Value(name) => {
                let name = name.string()?;
                let cmd = COMMANDS.iter().find(|c| c.name == name).ok_or_else(|| {
                    Failure::new(
                        exit::USAGE,
                        format!("unknown command {name:?} (try --help)"),
                    )
                })?;
                crate::logger::init(level.unwrap_or(log::LevelFilter::Info), level.is_some());
                return (cmd.run)(&mut p);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    Err(Failure::new(
        exit::USAGE,
        "no command given (try --help)".to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<(), Failure> {
        main(args.iter().map(OsString::from))
    }

    #[test]
    fn usage_errors_exit_2() {
        assert_eq!(run(&[]).unwrap_err().code, exit::USAGE);
        assert_eq!(run(&["nosuch"]).unwrap_err().code, exit::USAGE);
        assert_eq!(run(&["--bogus"]).unwrap_err().code, exit::USAGE);
        assert_eq!(
            run(&["--log-level", "loud", "selftest"]).unwrap_err().code,
            exit::USAGE
        );
        assert_eq!(run(&["selftest", "extra"]).unwrap_err().code, exit::USAGE);
    }

    #[test]
    fn help_lists_every_command() {
        let h = help();
        for c in COMMANDS {
            assert!(h.contains(c.name), "{} missing from help", c.name);
        }
        assert!(run(&["--help"]).is_ok());
        assert!(run(&["selftest", "--help"]).is_ok());
    }

    #[test]
    fn version_names_the_crate_version() {
        assert!(version().starts_with(concat!("re6st-lite ", env!("CARGO_PKG_VERSION"))));
    }
}
