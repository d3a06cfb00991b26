//! The peer cache: peers' underlay addresses remembered across restarts, so a
//! node that boots with no registry and no internet route still finds the
//! mesh (re6st keeps the same in `cache.db`).
//!
//! Stored as `MAGIC ‖ postcard(File)` in the state directory and written
//! atomically (temporary file, fsync, rename), so a power cut or `kill -9`
//! during a write leaves the previous cache or the new one, never a torn
//! file. A cache that does not decode is dropped with a warning: it is only
//! a hint, and the registry or configured peers rebuild it.

use std::net::SocketAddr;

use registry_client::state::StateDir;
use registry_client::Prefix;
use serde::{Deserialize, Serialize};

pub const FILE_NAME: &str = "peers.cache";
/// Peers' addresses are nobody else's business.
pub const FILE_MODE: u32 = 0o600;
const MAGIC: &[u8; 8] = b"re6stPC\x01";
/// Addresses kept per peer; peers report theirs, so the list is bounded.
pub const MAX_ADDRS: usize = 8;

/// A known peer: its re6st prefix and where it was reachable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    prefix_value: u128,
    prefix_len: u8,
    /// Most recently working first.
    pub addrs: Vec<SocketAddr>,
    /// Consecutive failed attempts; failed peers are tried last.
    pub failures: u8,
    /// Unix time of the last working tunnel (0: never).
    pub last_ok: u64,
}

impl Peer {
    pub fn prefix(&self) -> Prefix {
        // Entries come from `learn` or from a decoded file checked in `decode`.
        Prefix::new(self.prefix_value, self.prefix_len).unwrap_or(Prefix::EMPTY)
    }
}

#[derive(Serialize, Deserialize)]
struct File {
    peers: Vec<Peer>,
}

/// Why a cache file was not usable.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    BadMagic,
    Corrupt,
    BadEntry,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DecodeError::BadMagic => "not a re6st-lite peer cache (or another version)",
            DecodeError::Corrupt => "truncated or corrupt",
            DecodeError::BadEntry => "holds an invalid entry",
        })
    }
}

/// Up to `capacity` peers.
#[derive(Debug, Default)]
pub struct PeerCache {
    peers: Vec<Peer>,
    capacity: usize,
}

/// splitmix64: a tiny generator for shuffling, seeded by the caller.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl PeerCache {
    pub fn new(capacity: usize) -> Self {
        PeerCache {
            peers: Vec::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.peers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// The prefixes of the peers remembered.
    pub fn prefixes(&self) -> impl Iterator<Item = Prefix> + '_ {
        self.peers.iter().map(Peer::prefix)
    }

    pub fn get(&self, prefix: Prefix) -> Option<&Peer> {
        self.peers.iter().find(|p| p.prefix() == prefix)
    }

    fn get_mut(&mut self, prefix: Prefix) -> Option<&mut Peer> {
        self.peers.iter_mut().find(|p| p.prefix() == prefix)
    }

    /// Record addresses for `prefix` (from the registry, a peer's answer or
    /// the configuration). Known addresses keep their place; new ones follow.
    pub fn learn(&mut self, prefix: Prefix, addrs: &[SocketAddr]) {
        if addrs.is_empty() {
            return;
        }
        if self.get(prefix).is_none() {
            self.peers.push(Peer {
                prefix_value: prefix.value(),
                prefix_len: prefix.len(),
                addrs: Vec::new(),
                failures: 0,
                last_ok: 0,
            });
        }
        let peer = self.get_mut(prefix).expect("inserted above");
        for a in addrs {
            if !peer.addrs.contains(a) {
                peer.addrs.push(*a);
            }
        }
        peer.addrs.truncate(MAX_ADDRS);
        self.trim();
    }

    /// A tunnel to `prefix` at `addr` came up: that address goes first.
    pub fn succeeded(&mut self, prefix: Prefix, addr: SocketAddr, now_unix: u64) {
        self.learn(prefix, &[addr]);
        if let Some(p) = self.get_mut(prefix) {
            p.addrs.retain(|a| *a != addr);
            p.addrs.insert(0, addr);
            p.failures = 0;
            p.last_ok = now_unix;
        }
    }

    /// Every address of `prefix` failed this round.
    pub fn failed(&mut self, prefix: Prefix) {
        if let Some(p) = self.get_mut(prefix) {
            p.failures = p.failures.saturating_add(1);
        }
    }

    pub fn remove(&mut self, prefix: Prefix) {
        self.peers.retain(|p| p.prefix() != prefix);
    }

    /// Keep `capacity` peers: drop the most failed, then the longest unseen.
    fn trim(&mut self) {
        if self.peers.len() > self.capacity {
            self.peers
                .sort_by_key(|p| (p.failures, std::cmp::Reverse(p.last_ok)));
            self.peers.truncate(self.capacity);
        }
    }

    /// Peers in the order to try them: peers that did not fail in random
    /// order (so nodes do not all pick the same ones), then failed peers,
    /// least failed first.
    pub fn candidates(&self, seed: u64) -> Vec<&Peer> {
        let mut state = seed;
        let mut keyed: Vec<(u8, u64, &Peer)> = self
            .peers
            .iter()
            .map(|p| (p.failures, next(&mut state), p))
            .collect();
        keyed.sort_by_key(|(failures, r, _)| (*failures, *r));
        keyed.into_iter().map(|(_, _, p)| p).collect()
    }

    pub fn encode(&self) -> Vec<u8> {
        let file = File {
            peers: self.peers.clone(),
        };
        let mut out = MAGIC.to_vec();
        // Serialising plain data into a Vec cannot fail.
        out.extend(postcard::to_allocvec(&file).unwrap_or_default());
        out
    }

    pub fn decode(bytes: &[u8], capacity: usize) -> Result<Self, DecodeError> {
        let body = bytes.strip_prefix(MAGIC).ok_or(DecodeError::BadMagic)?;
        let file: File = postcard::from_bytes(body).map_err(|_| DecodeError::Corrupt)?;
        if file.peers.iter().any(|p| {
            Prefix::new(p.prefix_value, p.prefix_len).is_err() || p.addrs.len() > MAX_ADDRS
        }) {
            return Err(DecodeError::BadEntry);
        }
        let mut cache = PeerCache::new(capacity);
        cache.peers = file.peers;
        cache.trim();
        Ok(cache)
    }

    /// The cache in `state`, or an empty one (with a warning) if it is
    /// missing or unusable.
    /// Temporary files left by a write that was killed are removed.
    pub fn load(state: &StateDir, capacity: usize) -> Self {
        let stale = format!(".{FILE_NAME}.tmp.");
        if let Ok(dir) = std::fs::read_dir(state.dir()) {
            for e in dir.flatten() {
                if e.file_name().to_string_lossy().starts_with(&stale) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        match state.read(FILE_NAME) {
            Ok(Some(bytes)) => PeerCache::decode(&bytes, capacity).unwrap_or_else(|e| {
                log::warn!(
                    "peer cache {}: {e}; starting empty",
                    state.path(FILE_NAME).display()
                );
                PeerCache::new(capacity)
            }),
            Ok(None) => PeerCache::new(capacity),
            Err(e) => {
                log::warn!("peer cache: {e}; starting empty");
                PeerCache::new(capacity)
            }
        }
    }

    /// Write the cache atomically.
    pub fn save(&self, state: &StateDir) -> Result<(), registry_client::Error> {
        state.write_atomic(FILE_NAME, &self.encode(), FILE_MODE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(v: u128) -> Prefix {
        Prefix::new(v, 16).unwrap()
    }
    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn learn_succeed_fail_order() {
        let mut c = PeerCache::new(10);
        c.learn(
            prefix(1),
            &[addr("192.0.2.1:1194"), addr("[2001:db8::1]:1194")],
        );
        c.learn(prefix(2), &[addr("192.0.2.2:1194")]);
        c.learn(prefix(3), &[addr("192.0.2.3:1194")]);
        c.learn(prefix(1), &[addr("192.0.2.1:1194")]); // no duplicate
        assert_eq!(c.get(prefix(1)).unwrap().addrs.len(), 2);
        c.succeeded(prefix(1), addr("[2001:db8::1]:1194"), 1000);
        assert_eq!(
            c.get(prefix(1)).unwrap().addrs[0],
            addr("[2001:db8::1]:1194")
        );
        c.failed(prefix(2));
        c.failed(prefix(2));
        c.failed(prefix(3));
        for seed in 0..20 {
            let order: Vec<u128> = c
                .candidates(seed)
                .iter()
                .map(|p| p.prefix().value())
                .collect();
            assert_eq!(
                order,
                vec![1, 3, 2],
                "failed peers last, least failed first"
            );
        }
        c.succeeded(prefix(2), addr("192.0.2.2:1194"), 2000);
        assert_eq!(c.get(prefix(2)).unwrap().failures, 0);
    }

    #[test]
    fn healthy_peers_are_shuffled() {
        let mut c = PeerCache::new(50);
        for v in 0..20 {
            c.learn(prefix(v), &[addr("192.0.2.1:1")]);
        }
        let first: Vec<_> = (0..10).map(|s| c.candidates(s)[0].prefix()).collect();
        let distinct = first.iter().collect::<std::collections::HashSet<_>>().len();
        assert!(distinct > 3, "seeds give different orders: {first:?}");
        assert_eq!(c.candidates(7), c.candidates(7), "same seed, same order");
    }

    #[test]
    fn capacity_drops_failed_then_stale() {
        let mut c = PeerCache::new(3);
        for v in 1..=3 {
            c.succeeded(prefix(v), addr("192.0.2.1:1"), 100 * v as u64);
        }
        c.failed(prefix(3));
        c.learn(prefix(4), &[addr("192.0.2.4:1")]);
        assert_eq!(c.len(), 3);
        assert!(c.get(prefix(3)).is_none(), "the failed one goes first");
        c.learn(prefix(5), &[addr("192.0.2.5:1")]);
        // All healthy now: the one never seen working (or seen longest ago) goes.
        assert_eq!(c.len(), 3);
        assert!(c.get(prefix(2)).is_some() && c.get(prefix(1)).is_some());
        let many: Vec<SocketAddr> = (1..20)
            .map(|p| SocketAddr::from(([192, 0, 2, 9], p)))
            .collect();
        c.learn(prefix(1), &many);
        assert_eq!(c.get(prefix(1)).unwrap().addrs.len(), MAX_ADDRS);
    }

    #[test]
    fn round_trip_and_bad_files() {
        let mut c = PeerCache::new(10);
        c.succeeded(prefix(7), addr("[2001:db8::7]:1194"), 42);
        c.learn(Prefix::new(5, 20).unwrap(), &[addr("198.51.100.5:1194")]);
        let bytes = c.encode();
        let d = PeerCache::decode(&bytes, 10).unwrap();
        assert_eq!(d.peers, c.peers);
        assert_eq!(
            PeerCache::decode(b"garbage", 10).unwrap_err(),
            DecodeError::BadMagic
        );
        for cut in MAGIC.len()..bytes.len() {
            assert!(
                PeerCache::decode(&bytes[..cut], 10).is_err(),
                "truncated at {cut}"
            );
        }
        let mut bad = c.peers.clone();
        bad[0].prefix_len = 200;
        let file = File { peers: bad };
        let mut bytes = MAGIC.to_vec();
        bytes.extend(postcard::to_allocvec(&file).unwrap());
        assert_eq!(
            PeerCache::decode(&bytes, 10).unwrap_err(),
            DecodeError::BadEntry
        );
    }

    #[test]
    fn load_and_save_in_a_state_dir() {
        let dir = std::env::temp_dir().join(format!("re6st-peers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let state = StateDir::new(&dir);
        assert!(PeerCache::load(&state, 5).is_empty());
        let mut c = PeerCache::new(5);
        c.learn(prefix(1), &[addr("192.0.2.1:1194")]);
        c.save(&state).unwrap();
        assert_eq!(PeerCache::load(&state, 5).len(), 1);
        std::fs::write(state.path(FILE_NAME), b"re6stPC\x01\xff\xff").unwrap();
        assert!(
            PeerCache::load(&state, 5).is_empty(),
            "corrupt file: start empty"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A cache of `n` peers, distinct for each `n`.
    fn cache_of(n: u128) -> PeerCache {
        let mut c = PeerCache::new(200);
        for i in 1..=n {
            c.learn(prefix(i), &[addr("198.51.100.5:1194")]);
        }
        c
    }

    /// The child of [`kill_9_during_writes_leaves_a_whole_cache`]: saves
    /// caches of 1, 2, ... 100, 1, ... peers until killed (or 20 s).
    #[test]
    #[ignore = "run by kill_9_during_writes_leaves_a_whole_cache"]
    fn cache_writer_child() {
        let Ok(dir) = std::env::var("RE6ST_CACHE_WRITER_DIR") else {
            return;
        };
        let state = StateDir::new(dir);
        let caches: Vec<PeerCache> = (1..=100).map(cache_of).collect();
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_secs(20) {
            for c in &caches {
                c.save(&state).unwrap();
            }
        }
    }

    /// `kill -9` at random moments of a stream of cache writes: the file
    /// left is always a whole cache (one of those written), and the next
    /// load removes the writer's temporary files.
    #[test]
    fn kill_9_during_writes_leaves_a_whole_cache() {
        let dir = std::env::temp_dir().join(format!("re6st-kill9-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let state = StateDir::new(&dir);
        let mut killed_mid_write = 0;
        for round in 0..20u64 {
            let mut child = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "mesh::cache::tests::cache_writer_child"])
                .args(["--ignored", "--test-threads=1"])
                .env("RE6ST_CACHE_WRITER_DIR", &dir)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            // Past start-up, then a different moment each round.
            std::thread::sleep(std::time::Duration::from_millis(60 + round * 7 % 40));
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            let leftovers = std::fs::read_dir(&dir)
                .unwrap()
                .filter(|e| {
                    let name = e.as_ref().unwrap().file_name();
                    name.to_string_lossy().contains(".tmp.")
                })
                .count();
            killed_mid_write += usize::from(leftovers > 0);
            let Some(bytes) = state.read(FILE_NAME).unwrap() else {
                continue; // killed before the first rename
            };
            let c = PeerCache::decode(&bytes, 200).expect("a whole cache after kill -9");
            assert!((1..=100).contains(&c.len()), "{} peers", c.len());
            assert_eq!(c.encode(), cache_of(c.len() as u128).encode());
            assert_eq!(PeerCache::load(&state, 200).len(), c.len());
            let after = std::fs::read_dir(&dir).unwrap().count();
            assert_eq!(after, 1, "temporary files left after load");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        // Not an assertion (timing), but the test means little if no kill
        // ever landed inside a write.
        println!("{killed_mid_write} of 20 kills interrupted a write");
    }
}
