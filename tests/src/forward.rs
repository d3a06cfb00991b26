//! A TCP forwarder that makes a service of the root namespace appear at an
//! address inside a test namespace: nodes in their namespaces reach the
//! real registry at its own URL (`http://127.0.0.1:<port>/`) with no link
//! into the root namespace.
//!
//! A socket stays in the namespace it was created in. The listening socket
//! is made by a short-lived thread that enters the namespace with setns(2)
//! and exits; accepting and connecting upstream happen on a thread spawned
//! by the test thread, which never left the root namespace, so connections
//! come in inside the namespace and go out from the root namespace.
//!
//! Bounded: at most [`MAX_CONNECTIONS`] at a time (more are refused), each
//! ended after [`IDLE`] without data. Dropping the [`Forward`] (also when a
//! test panics) stops accepting, shuts every open connection down and joins
//! every thread.

use std::fs::File;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::netns::Netns;

/// Connections forwarded at once; more are closed at accept.
pub const MAX_CONNECTIONS: usize = 16;
/// A connection with no data either way for this long is closed.
pub const IDLE: Duration = Duration::from_secs(60);
/// Time to reach the upstream service.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Run `f` on a thread inside the namespace `ns` (an open `/run/netns`
/// file); the thread ends with `f`, so no other thread changes namespace.
pub fn in_netns<T: Send + 'static>(
    ns: &File,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let ns = ns.try_clone()?;
    thread::spawn(move || {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        f()
    })
    .join()
    .map_err(|_| io::Error::other("setns thread panicked"))?
}

/// A TCP connection made inside namespace `ns` (to a service that lives
/// there), usable from any thread.
pub fn connect_in(ns: &str, to: SocketAddr) -> io::Result<TcpStream> {
    let ns = File::open(PathBuf::from("/var/run/netns").join(ns))?;
    in_netns(&ns, move || {
        TcpStream::connect_timeout(&to, CONNECT_TIMEOUT)
    })
}

/// A forwarder from `listen` inside a namespace to `upstream` in the root
/// namespace.
pub struct Forward {
    pub listen: SocketAddr,
    /// The namespace, held open: the wake-up at drop works even after the
    /// namespace's name is gone.
    ns: File,
    stop: Arc<AtomicBool>,
    /// Connections accepted so far (refused ones included).
    pub accepted: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Forward {
    /// Listen on `listen` inside `ns` and forward every connection to
    /// `upstream`, reached from the root namespace. Must be called from a
    /// thread in the root namespace (any test thread).
    pub fn start(ns: &Netns, listen: SocketAddr, upstream: SocketAddr) -> Self {
        let path = PathBuf::from("/var/run/netns").join(&ns.name);
        let ns_file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let listener = in_netns(&ns_file, move || TcpListener::bind(listen))
            .unwrap_or_else(|e| panic!("bind {listen} in {}: {e}", ns.name));
        let listen = listener.local_addr().expect("local address");
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (s, n) = (stop.clone(), accepted.clone());
        let thread = thread::spawn(move || accept_loop(&listener, upstream, &s, &n));
        Forward {
            listen,
            ns: ns_file,
            stop,
            accepted,
            thread: Some(thread),
        }
    }
}

/// One forwarded connection: its two streams (to shut down) and its two
/// copying threads.
struct Conn {
    streams: [TcpStream; 2],
    copies: [JoinHandle<()>; 2],
}

impl Conn {
    fn finished(&self) -> bool {
        self.copies.iter().all(JoinHandle::is_finished)
    }

    fn end(self) {
        for s in &self.streams {
            let _ = s.shutdown(Shutdown::Both);
        }
        for c in self.copies {
            let _ = c.join();
        }
    }
}

fn accept_loop(l: &TcpListener, upstream: SocketAddr, stop: &AtomicBool, accepted: &AtomicUsize) {
    let mut conns: Vec<Conn> = Vec::new();
    for c in l.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(inside) = c else {
            // Out of descriptors, say: no busy loop.
            thread::sleep(Duration::from_millis(50));
            continue;
        };
        accepted.fetch_add(1, Ordering::Relaxed);
        let (done, open): (Vec<Conn>, Vec<Conn>) = conns.drain(..).partition(Conn::finished);
        conns = open;
        done.into_iter().for_each(Conn::end);
        if conns.len() >= MAX_CONNECTIONS {
            continue; // dropped: closed
        }
        // Created on this thread: in the root namespace.
        let Ok(outside) = TcpStream::connect_timeout(&upstream, CONNECT_TIMEOUT) else {
            continue;
        };
        if let Ok(conn) = forward(inside, outside) {
            conns.push(conn);
        }
    }
    conns.into_iter().for_each(Conn::end);
}

fn forward(a: TcpStream, b: TcpStream) -> io::Result<Conn> {
    for s in [&a, &b] {
        s.set_read_timeout(Some(IDLE))?;
        s.set_write_timeout(Some(IDLE))?;
    }
    let (a2, b2) = (a.try_clone()?, b.try_clone()?);
    let (a3, b3) = (a.try_clone()?, b.try_clone()?);
    let copies = [
        thread::spawn(move || copy(a2, b2)),
        thread::spawn(move || copy(b3, a3)),
    ];
    Ok(Conn {
        streams: [a, b],
        copies,
    })
}

/// Copy until end of stream, error or [`IDLE`], then pass the end on.
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept with a connection from inside the namespace.
        let listen = self.listen;
        let _ = in_netns(&self.ns, move || {
            TcpStream::connect_timeout(&listen, CONNECT_TIMEOUT).map(drop)
        });
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Instant;

    /// A connection made inside `ns`.
    fn connect_in(ns: &Netns, addr: SocketAddr) -> io::Result<TcpStream> {
        let path = PathBuf::from("/var/run/netns").join(&ns.name);
        in_netns(&File::open(path)?, move || TcpStream::connect(addr))
    }

    /// An echo server on 127.0.0.1 of the root namespace is reached at the
    /// same address inside a namespace, and only through the forwarder; a
    /// drop with a connection still open is quick and leaves no listener.
    #[test]
    fn forwards_into_a_namespace() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let echo = thread::spawn(move || {
            for c in server.incoming().take(2) {
                let mut c = c.unwrap();
                let mut buf = [0u8; 64];
                let n = c.read(&mut buf).unwrap();
                c.write_all(&buf[..n]).unwrap();
                if &buf[..n] == b"hold" {
                    // Keep this one open: the drop below must end it.
                    let _ = c.read(&mut buf);
                }
            }
        });
        let ns = Netns::new("fw");
        assert!(
            connect_in(&ns, addr).is_err(),
            "namespace reaches the root's loopback"
        );
        let fw = Forward::start(&ns, addr, addr);
        assert_eq!(fw.listen, addr);

        let mut c = connect_in(&ns, addr).expect("connect through the forwarder");
        c.write_all(b"ping").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"ping");

        let mut held = connect_in(&ns, addr).unwrap();
        held.write_all(b"hold").unwrap();
        let mut buf = [0u8; 4];
        held.read_exact(&mut buf).unwrap();
        assert_eq!(fw.accepted.load(Ordering::Relaxed), 2);

        let t = Instant::now();
        drop(fw);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "drop took {:?}",
            t.elapsed()
        );
        assert_eq!(held.read(&mut [0u8; 4]).unwrap_or(0), 0, "still open");
        assert!(connect_in(&ns, addr).is_err(), "still listening");
        echo.join().unwrap();
    }
}
