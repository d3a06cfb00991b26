//! `re6st-lite`: argv → subcommand. Everything else lives in the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    match node_lite::cli::main(std::env::args_os().skip(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("re6st-lite: {e}");
            ExitCode::from(e.code)
        }
    }
}
