//! A small deterministic random number generator for tie-breaking.
//!
//! The picker never asks the operating system for randomness: the caller seeds it, so a
//! simulation with the same seed makes the same choices.

/// xorshift64* (Marsaglia's xorshift with a multiplicative output step). Fast, tiny and
/// good enough to spread equal-rarity pieces; not for anything security related.
#[derive(Debug, Clone)]
pub(super) struct XorShift64 {
    state: u64,
}

impl XorShift64 {
    /// Seeds the generator. The seed goes through one splitmix64 step first, so that
    /// nearby seeds give unrelated streams; a state of zero (which xorshift never leaves) is
    /// replaced by a fixed odd constant.
    pub(super) fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let state = if z == 0 { 0x2545_F491_4F6C_DD1D } else { z };
        Self { state }
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n` > 0), by multiply-shift on the high 32 bits.
    pub(super) fn below(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        let high = self.next_u64() >> 32;
        // `n` is a slice length below 2^32 (piece counts are u32), so the product fits in
        // a u64 and the result is below `n`.
        ((high * n as u64) >> 32) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_in_range() {
        let mut a = XorShift64::new(7);
        let mut b = XorShift64::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut c = XorShift64::new(0);
        let mut seen = [false; 10];
        for _ in 0..1000 {
            seen[c.below(10)] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_ne!(XorShift64::new(1).next_u64(), XorShift64::new(2).next_u64());
    }
}
