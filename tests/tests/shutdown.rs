//! Stopping the daemon while a registry request hangs ([issue 20] item 6).
//!
//! procd sends SIGKILL 5 s after SIGTERM, so the node must say goodbye to
//! its peers, clean the kernel up and save its peer cache within that time
//! whatever the registry does. Here the registry accepts the connection and
//! never answers (a hung HTTPS frontend, a dead upstream), and the node gets
//! SIGTERM while its request waits.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use re6st_integration::forward::Forward;
use re6st_integration::mesh::Mesh;
use re6st_integration::netns::wait_until;
use re6st_integration::registry::Options;

/// A TCP server in the root namespace that accepts and never answers.
/// Dropping it closes the connections and joins its thread.
struct Silent {
    addr: SocketAddr,
    held: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Silent {
    fn start() -> Silent {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("address");
        let (held, stop) = (
            Arc::new(Mutex::new(Vec::new())),
            Arc::new(AtomicBool::new(false)),
        );
        let (h, s) = (held.clone(), stop.clone());
        let thread = thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((c, _)) => h.lock().unwrap().push(c),
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Silent {
            addr,
            held,
            stop,
            thread: Some(thread),
        }
    }

    fn connections(&self) -> usize {
        self.held.lock().unwrap().len()
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn sigterm_stops_within_two_seconds_while_a_registry_request_hangs() {
    let mut m = Mesh::build(2, Options::default());
    let silent = Silent::start();
    let listen = SocketAddr::from(([127, 0, 0, 1], 8326));
    m.nodes[1]
        .options
        .push(format!("registry=http://{listen}/"));
    let _fwd = Forward::start(&m.nodes[1].ns, listen, silent.addr);
    m.spawn_all();
    // Node 1 asks for the network config at start and waits for the answer.
    wait_until(Duration::from_secs(60), || {
        m.tunnels_up(1) >= 1 && silent.connections() >= 1
    })
    .unwrap_or_else(|| panic!("no tunnel or no registry request\n{}", m.logs()));

    let cache = m.nodes[1].dir.join("peers.cache");
    let before = SystemTime::now();
    let mut p = m.nodes[1].proc.take().expect("running");
    let t = Instant::now();
    let code = p.terminate(Duration::from_secs(10));
    let took = t.elapsed();
    eprintln!("stopped in {took:?} with a registry request pending");
    assert_eq!(code, Some(0), "exit code after {took:?}\n{}", m.logs());
    assert!(took <= Duration::from_secs(2), "took {took:?}");
    let saved = std::fs::metadata(&cache)
        .and_then(|md| md.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", cache.display()));
    assert!(saved >= before, "peer cache not saved at stop");
    assert!(m.log_of(1).contains("shutting down"));
}
