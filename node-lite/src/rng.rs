//! xorshift64*: the one small generator for choices that need only be
//! unpredictable enough to spread load or jitter timers (Babel's jitter and
//! nonces, the mesh manager's picks, the port mapper's nonces). Keys and
//! handshakes use the OS's randomness, never this.

#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// Any seed (made odd: the all-zero state would stay zero).
    pub fn new(seed: u64) -> Self {
        XorShift(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
