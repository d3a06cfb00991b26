//! The simulated underlay: one-way latency and loss between any two nodes,
//! computed (not stored: 10,000 nodes would be 10^8 pairs) from each node's
//! place and a per-pair hash, and links that can be cut silently.
//!
//! Nodes sit on a 2D map 100 ms across; a pair's latency is their distance
//! times a path inflation of 1.0-1.5, plus 1 ms; a share of the pairs is
//! degraded as the internet's are (routing detours, filtering): latency ×2-4
//! and 5-15 % loss. So some pairs have a better path through a third node
//! than their direct one, which is what re6st is for.

use std::collections::HashSet;

/// SplitMix64: a stateless hash of a value, and a small RNG.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform value in [0, 1) from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

pub struct Underlay {
    seed: u64,
    place: Vec<(f64, f64)>,
    /// Share of degraded pairs.
    degraded: f64,
    cut: HashSet<(usize, usize)>,
}

/// One direction of a pair: latency (ms) and loss (0..1).
#[derive(Clone, Copy, Debug)]
pub struct Path {
    pub latency_ms: f64,
    pub loss: f64,
}

impl Underlay {
    pub fn new(n: usize, seed: u64, degraded: f64) -> Self {
        let place = (0..n as u64)
            .map(|i| {
                let h = mix(seed ^ mix(i));
                (unit(h) * 100.0, unit(mix(h)) * 100.0)
            })
            .collect();
        Underlay {
            seed,
            place,
            degraded,
            cut: HashSet::new(),
        }
    }

    fn key(a: usize, b: usize) -> (usize, usize) {
        (a.min(b), a.max(b))
    }

    /// The path between `a` and `b` (the same both ways).
    pub fn path(&self, a: usize, b: usize) -> Path {
        let (a, b) = Self::key(a, b);
        let h = mix(self.seed ^ mix((a as u64) << 32 | b as u64));
        let (pa, pb) = (self.place[a], self.place[b]);
        let dist = ((pa.0 - pb.0).powi(2) + (pa.1 - pb.1).powi(2)).sqrt();
        let mut latency_ms = 1.0 + dist * (1.0 + 0.5 * unit(h));
        let mut loss = 0.0;
        if unit(mix(h ^ 1)) < self.degraded {
            latency_ms *= 2.0 + 2.0 * unit(mix(h ^ 2));
            loss = 0.05 + 0.10 * unit(mix(h ^ 3));
        }
        Path { latency_ms, loss }
    }

    /// Cut (or mend) the link between `a` and `b`, silently: datagrams are
    /// lost, nobody is told.
    pub fn set_cut(&mut self, a: usize, b: usize, cut: bool) {
        if cut {
            self.cut.insert(Self::key(a, b));
        } else {
            self.cut.remove(&Self::key(a, b));
        }
    }

    pub fn is_cut(&self, a: usize, b: usize) -> bool {
        !self.cut.is_empty() && self.cut.contains(&Self::key(a, b))
    }

    /// The best round trip between `a` and `b` through at most one relay
    /// (the direct path or a detour through one node), in ms.
    pub fn best_rtt(&self, a: usize, b: usize) -> f64 {
        let direct = if self.is_cut(a, b) {
            f64::INFINITY
        } else {
            self.path(a, b).latency_ms
        };
        let relayed = (0..self.place.len())
            .filter(|&r| r != a && r != b && !self.is_cut(a, r) && !self.is_cut(r, b))
            .map(|r| self.path(a, r).latency_ms + self.path(r, b).latency_ms)
            .fold(f64::INFINITY, f64::min);
        2.0 * direct.min(relayed)
    }
}
