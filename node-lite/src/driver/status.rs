//! `re6st-lite status [--json]`: the running node's state, asked over a
//! Unix socket in `run_dir` that only root can open (mode 0600).
//!
//! The request is one line, `json` or `text` (or `renew`: renew the
//! certificate now, answered `ok`); the daemon writes the answer and closes. The JSON schema is documented in the README ("Status JSON")
//! and only grows: fields are never renamed or removed.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Source;
use crate::failure::Failure;
use crate::node::status::Status;

pub const SOCKET_NAME: &str = "status.sock";
/// Exit code: no node answers on the status socket.
pub const EXIT_NOT_RUNNING: u8 = 32;

const USAGE: &str = "\
Usage: re6st-lite status [-c FILE] [-o NAME=VALUE]... [--json]
Show the running node: prefix, registry, tunnels, Babel neighbours and
routes, peer cache. Asks the daemon over <run_dir>/status.sock (root only).
--json prints the documented JSON object instead of tables.";

pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join(SOCKET_NAME)
}

/// Bind the status socket: a stale one from a killed node is replaced, a
/// live one (another node answers on it) is an error.
pub fn bind(run_dir: &Path) -> std::io::Result<tokio::net::UnixListener> {
    std::fs::create_dir_all(run_dir)?;
    let path = socket_path(run_dir);
    if std::os::unix::net::UnixStream::connect(&path).is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "another node is running",
        ));
    }
    let _ = std::fs::remove_file(&path);
    let l = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Answer one status request (`json` or `text`), on its own task: a slow
/// client does not hold up the node.
pub(super) async fn answer(
    stream: tokio::net::UnixStream,
    status: Status,
    renew: tokio::sync::mpsc::UnboundedSender<()>,
) {
    let mut req = [0u8; 16];
    let read = async {
        loop {
            stream.readable().await?;
            match stream.try_read(&mut req) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                r => return r,
            }
        }
    };
    let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(2), read).await else {
        return;
    };
    let answer = if req[..n].starts_with(b"json") {
        status.to_json() + "\n"
    } else if req[..n].starts_with(b"renew") {
        // The event loop asks the registry at its next turn.
        let _ = renew.send(());
        "ok\n".to_string()
    } else {
        status.to_text()
    };
    let write = async {
        let mut rest = answer.as_bytes();
        while !rest.is_empty() {
            stream.writable().await?;
            match stream.try_write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok::<(), std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}

pub fn command(p: &mut lexopt::Parser) -> Result<(), Failure> {
    use lexopt::prelude::*;
    let mut source = Source::default();
    let mut json = false;
    while let Some(arg) = p.next()? {
        if let Some(which) = Source::which(&arg) {
            source.read(p, which)?;
            continue;
        }
        match arg {
            Long("json") => json = true,
            Short('h') | Long("help") => {
                println!("{USAGE}");
                return Ok(());
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    let config = source.load()?;
    let answer = query(&config.run_dir, if json { b"json\n" } else { b"text\n" }).map_err(|e| {
        Failure::new(
            EXIT_NOT_RUNNING,
            format!(
                "no node answers on {}: {e}",
                socket_path(&config.run_dir).display()
            ),
        )
    })?;
    print!("{answer}");
    Ok(())
}

/// Ask the node over its status socket: `json`, `text` or `renew` (then
/// `ok`), one line.
pub fn query(run_dir: &Path, request: &[u8]) -> std::io::Result<String> {
    let mut s = UnixStream::connect(socket_path(run_dir))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(request)?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer)
}
