//! What every command shares: a failure with its exit code, the common exit
//! codes, and the parsing of commands that take no options.

use std::fmt;

use lexopt::prelude::*;

/// A failed command: a one-line message and the process exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub msg: String,
}

/// Exit codes shared by every command; commands may add their own above 9.
pub mod exit {
    /// Runtime failure.
    pub const FAILURE: u8 = 1;
    /// Bad command line.
    pub const USAGE: u8 = 2;
}

impl Failure {
    pub fn new(code: u8, msg: impl Into<String>) -> Self {
        Failure {
            code,
            msg: msg.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl From<lexopt::Error> for Failure {
    fn from(e: lexopt::Error) -> Self {
        Failure::new(exit::USAGE, format!("{e} (try --help)"))
    }
}

/// For commands without options: accept only `-h/--help`.
pub fn no_options(p: &mut lexopt::Parser, usage: &str) -> Result<bool, Failure> {
    if let Some(arg) = p.next()? {
        match arg {
            Short('h') | Long("help") => {
                println!("{usage}");
                return Ok(false);
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    Ok(true)
}
