//! The trackers' source of randomness: a small generator that replays from its seed.
//!
//! Transaction ids, announce keys and tier shuffles need only to be spread out, not to be
//! unpredictable; the caller seeds the generator, so a simulation replays exactly.

/// SplitMix64: one `u64` of state and the same sequence for the same seed on every platform.
#[derive(Clone, Debug)]
pub(super) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(super) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn next_u32(&mut self) -> u32 {
        // The high half of the output; the shift leaves 32 bits, so the cast keeps them all.
        (self.next_u64() >> 32) as u32
    }

    /// A number in `0..bound` (zero if `bound` is zero), by multiplying and keeping the high
    /// half: the bias is below `bound / 2^64`.
    pub(super) fn below(&mut self, bound: usize) -> usize {
        let wide = u128::from(self.next_u64()) * bound as u128;
        // The high half of the product is below `bound`, which is a usize.
        (wide >> 64) as usize
    }

    /// Shuffles `items` in place (Fisher–Yates).
    pub(super) fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_shuffle() {
        let mut a: Vec<u32> = (0..10).collect();
        let mut b = a.clone();
        SplitMix64::new(5).shuffle(&mut a);
        SplitMix64::new(5).shuffle(&mut b);
        assert_eq!(a, b);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        let mut c: Vec<u32> = (0..10).collect();
        SplitMix64::new(6).shuffle(&mut c);
        assert_ne!(a, c);
    }

    #[test]
    fn below_stays_in_range() {
        let mut rng = SplitMix64::new(1);
        assert_eq!(rng.below(0), 0);
        assert!((0..1000).all(|_| rng.below(7) < 7));
    }
}
