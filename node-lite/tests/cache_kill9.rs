//! `kill -9` during a peer-cache write leaves a readable cache, the previous
//! generation or the new one. The test runs its own executable as the
//! writer (the ignored test below), kills it at varied moments, and reads.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use node_lite::mesh::cache::{PeerCache, FILE_NAME};
use registry_client::state::StateDir;
use registry_client::Prefix;

const DIR_VAR: &str = "RE6ST_CACHE_KILL9_DIR";

/// Generation `g` holds peers 1..=g (up to 150), each with g in its port.
fn generation(g: u64) -> PeerCache {
    let mut c = PeerCache::new(200);
    for v in 1..=g.min(150) {
        let addr = SocketAddr::from(([192, 0, 2, (v % 250) as u8], (g % 60000) as u16 + 1));
        c.learn(Prefix::new(u128::from(v), 16).unwrap(), &[addr]);
    }
    c
}

#[test]
#[ignore = "run by kill9_during_writes_leaves_a_readable_cache"]
fn writer() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let state = StateDir::new(dir);
    for g in 1.. {
        generation(g).save(&state).unwrap();
    }
}

#[test]
fn kill9_during_writes_leaves_a_readable_cache() {
    let dir = std::env::temp_dir().join(format!("re6st-kill9-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = StateDir::new(&dir);
    let exe = std::env::current_exe().unwrap();
    let mut seen = 0;
    for round in 0..15u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "writer", "--ignored", "--nocapture"])
            .env(DIR_VAR, &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(30 + 17 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let Some(bytes) = state.read(FILE_NAME).unwrap() else {
            continue; // killed before its first write finished
        };
        let cache = PeerCache::decode(&bytes, 200)
            .unwrap_or_else(|e| panic!("round {round}: cache unreadable after kill -9: {e}"));
        // A whole generation: every peer carries the same port.
        let g = cache.len() as u64;
        let ports: std::collections::HashSet<u16> = (1..=g)
            .map(|v| {
                let p = Prefix::new(u128::from(v), 16).unwrap();
                cache.get(p).expect("peers 1..=g present").addrs[0].port()
            })
            .collect();
        assert_eq!(ports.len(), 1, "round {round}: a torn generation");
        seen += 1;
        // Loading also sweeps the temporary file the killed write left.
        assert_eq!(PeerCache::load(&state, 200).len(), cache.len());
        let leftovers = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(leftovers, 1, "round {round}: temporary files left");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        seen >= 10,
        "the writer should have written in most rounds ({seen})"
    );
}
