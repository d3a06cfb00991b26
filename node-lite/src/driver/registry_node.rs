//! The sockets of the registry's node (`registry_node`, see
//! [`crate::node`]'s `registry_node`): UDP `[::1]:326`, where the registry
//! sends its requests and reads the answers, and the Babel control socket
//! it reads the network from. Each control connection is a task that
//! decodes requests and asks the event loop, which owns the core, for the
//! answers.

use std::io;
use std::net::{Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use log::{debug, warn};
use tokio::net::{UdpSocket, UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot};

use crate::babel::control::{Decoder, Request};

/// Control connections at once (the registry keeps one).
const MAX_CONNECTIONS: usize = 8;

/// A control request and where its answer goes.
pub(super) type Ask = (Request, oneshot::Sender<Vec<u8>>);

/// UDP `[::1]:326`: loopback only, so only the host's own processes (the
/// registry) reach it.
pub(super) fn bind_udp() -> io::Result<UdpSocket> {
    let s = std::net::UdpSocket::bind(SocketAddr::from((
        Ipv6Addr::LOCALHOST,
        crate::mesh::ctl::PORT,
    )))?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

/// The control socket at `path`, root only (as the status socket): a stale
/// one is replaced.
pub(super) fn bind_control(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "a babeld is running",
        ));
    }
    let _ = std::fs::remove_file(path);
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Serve one control connection on its own task.
pub(super) fn serve(stream: UnixStream, ask: mpsc::UnboundedSender<Ask>, open: &Arc<AtomicUsize>) {
    if open.fetch_add(1, Ordering::Relaxed) >= MAX_CONNECTIONS {
        open.fetch_sub(1, Ordering::Relaxed);
        warn!("babel control socket: too many connections");
        return;
    }
    let open = Arc::clone(open);
    tokio::spawn(async move {
        if let Err(e) = connection(stream, ask).await {
            debug!("babel control connection: {e}");
        }
        open.fetch_sub(1, Ordering::Relaxed);
    });
}

async fn connection(stream: UnixStream, ask: mpsc::UnboundedSender<Ask>) -> io::Result<()> {
    let mut d = Decoder::default();
    let mut buf = [0u8; 256];
    loop {
        stream.readable().await?;
        let n = match stream.try_read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            r => r?,
        };
        if n == 0 {
            return Ok(());
        }
        let requests = d
            .feed(&buf[..n])
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "protocol error"))?;
        for r in requests {
            let (tx, rx) = oneshot::channel();
            ask.send((r, tx))
                .map_err(|_| io::Error::other("node stopping"))?;
            let answer = rx.await.map_err(|_| io::Error::other("node stopping"))?;
            let mut rest = &answer[..];
            while !rest.is_empty() {
                stream.writable().await?;
                match stream.try_write(rest) {
                    Ok(n) => rest = &rest[n..],
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
}
