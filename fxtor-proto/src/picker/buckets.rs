//! Queued pieces of one priority, kept sorted by availability in buckets.
//!
//! `order` holds the pieces, rarest first: bucket `a` (the pieces that `a` peers have, not
//! counting seeds) is `order[start(a)..ends[a]]`. Inside a bucket the order is random.
//! Each piece's position in `order` is kept in the picker's `slots` array, so that:
//!
//! - a change of availability by one moves a piece to the neighbouring bucket with two
//!   swaps, in O(1);
//! - inserting or removing a piece shifts one piece per bucket above it, in O(B) where B is
//!   the number of buckets (the highest availability among the queued pieces, plus one);
//! - a pick reads `order` from the front.
//!
//! This is the layout of libtorrent's `m_pieces` with its priority boundaries, with one
//! array per priority level so that the priorities stay strictly ordered.

use super::rng::XorShift64;
use crate::PieceIndex;

#[derive(Debug, Clone, Default)]
pub(super) struct Buckets {
    order: Vec<PieceIndex>,
    /// `ends[a]` is one past the last position of bucket `a`; non-decreasing, and the last
    /// one equals `order.len()`. Trailing empty buckets are dropped.
    ends: Vec<u32>,
}

impl Buckets {
    /// The pieces, rarest first.
    pub(super) fn pieces(&self) -> &[PieceIndex] {
        &self.order
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The number of buckets (availability levels) currently kept.
    #[cfg(test)]
    pub(super) fn num_buckets(&self) -> usize {
        self.ends.len()
    }

    /// The range of positions of bucket `a` (empty if there is no such bucket).
    pub(super) fn bucket(&self, a: usize) -> std::ops::Range<usize> {
        match self.ends.get(a) {
            Some(&end) => self.start(a)..end as usize,
            None => self.order.len()..self.order.len(),
        }
    }

    fn start(&self, a: usize) -> usize {
        match a.checked_sub(1) {
            Some(below) => self.ends[below] as usize,
            None => 0,
        }
    }

    fn ensure_bucket(&mut self, a: usize) {
        let len = self.order.len() as u32;
        if self.ends.len() <= a {
            self.ends.resize(a + 1, len);
        }
    }

    fn trim(&mut self) {
        while let Some(&last) = self.ends.last() {
            if self.start(self.ends.len() - 1) == last as usize {
                self.ends.pop();
            } else {
                break;
            }
        }
    }

    fn put(&mut self, at: usize, piece: PieceIndex, slots: &mut [u32]) {
        self.order[at] = piece;
        // Positions are below `order.len()`, which is at most the piece count (a u32).
        slots[piece.get()] = at as u32;
    }

    fn swap(&mut self, a: usize, b: usize, slots: &mut [u32]) {
        if a != b {
            self.order.swap(a, b);
            slots[self.order[a].get()] = a as u32;
            slots[self.order[b].get()] = b as u32;
        }
    }

    /// Swaps the piece at `at` (inside bucket `a`) with a random member of that bucket.
    fn scatter(&mut self, a: usize, at: usize, slots: &mut [u32], rng: &mut XorShift64) {
        let range = self.bucket(a);
        if range.len() > 1 {
            let other = range.start + rng.below(range.len());
            self.swap(at, other, slots);
        }
    }

    /// Adds `piece`, which `a` peers have, at a random place in its bucket.
    pub(super) fn insert(
        &mut self,
        piece: PieceIndex,
        a: usize,
        slots: &mut [u32],
        rng: &mut XorShift64,
    ) {
        self.ensure_bucket(a);
        // Grow by one slot at the end, then walk the hole down: each bucket above `a` gives
        // its first piece to the hole at its end and so moves up by one place.
        let mut hole = self.order.len();
        self.order.push(piece);
        for b in (a + 1..self.ends.len()).rev() {
            let start = self.ends[b - 1] as usize;
            if start < hole {
                let moved = self.order[start];
                self.put(hole, moved, slots);
                hole = start;
            }
            self.ends[b] += 1;
        }
        self.ends[a] += 1;
        self.put(hole, piece, slots);
        self.scatter(a, hole, slots, rng);
    }

    /// Removes `piece`, which is in bucket `a`.
    pub(super) fn remove(&mut self, piece: PieceIndex, a: usize, slots: &mut [u32]) {
        let at = slots[piece.get()] as usize;
        debug_assert!(self.bucket(a).contains(&at) && self.order[at] == piece);
        // Move it to the end of its bucket, then walk the hole up: each bucket above gives
        // its last piece to the hole before its start and so moves down by one place.
        let mut hole = self.ends[a] as usize - 1;
        self.swap(at, hole, slots);
        self.ends[a] -= 1;
        for b in a + 1..self.ends.len() {
            let end = self.ends[b] as usize;
            if end > hole + 1 {
                let moved = self.order[end - 1];
                self.put(hole, moved, slots);
                hole = end - 1;
            }
            self.ends[b] -= 1;
        }
        debug_assert_eq!(hole, self.order.len() - 1);
        self.order.pop();
        self.trim();
    }

    /// Moves `piece` from bucket `a` to bucket `a + 1`.
    pub(super) fn move_up(
        &mut self,
        piece: PieceIndex,
        a: usize,
        slots: &mut [u32],
        rng: &mut XorShift64,
    ) {
        self.ensure_bucket(a + 1);
        let at = slots[piece.get()] as usize;
        let last = self.ends[a] as usize - 1;
        self.swap(at, last, slots);
        self.ends[a] -= 1;
        self.scatter(a + 1, last, slots, rng);
    }

    /// Moves `piece` from bucket `a` (> 0) to bucket `a - 1`.
    pub(super) fn move_down(
        &mut self,
        piece: PieceIndex,
        a: usize,
        slots: &mut [u32],
        rng: &mut XorShift64,
    ) {
        let at = slots[piece.get()] as usize;
        let first = self.start(a);
        self.swap(at, first, slots);
        self.ends[a - 1] += 1;
        self.scatter(a - 1, first, slots, rng);
        self.trim();
    }

    /// Rebuilds from scratch: `pieces` with their availabilities, in any order. O(n + B).
    pub(super) fn rebuild(
        &mut self,
        pieces: impl Iterator<Item = (PieceIndex, usize)> + Clone,
        slots: &mut [u32],
        rng: &mut XorShift64,
    ) {
        self.order.clear();
        self.ends.clear();
        // Counting sort: count per bucket, turn the counts into ends, then fill each bucket
        // from its end.
        for (_, a) in pieces.clone() {
            if self.ends.len() <= a {
                self.ends.resize(a + 1, 0);
            }
            self.ends[a] += 1;
        }
        let mut total = 0;
        for end in &mut self.ends {
            total += *end;
            *end = total;
        }
        self.order.resize(total as usize, PieceIndex(0));
        let mut next = self.ends.clone();
        for (piece, a) in pieces {
            next[a] -= 1;
            self.order[next[a] as usize] = piece;
        }
        for a in 0..self.ends.len() {
            let range = self.bucket(a);
            shuffle(&mut self.order[range], rng);
        }
        for (at, piece) in self.order.iter().enumerate() {
            slots[piece.get()] = at as u32;
        }
        self.trim();
    }

    /// Checks the layout against `availability` and `slots` (tests only).
    #[cfg(test)]
    pub(super) fn check(&self, availability: &[u32], slots: &[u32]) {
        assert_eq!(
            self.ends.last().map_or(0, |&e| e as usize),
            self.order.len()
        );
        assert!(self.ends.windows(2).all(|w| w[0] <= w[1]));
        if let Some(&last) = self.ends.last() {
            assert!(
                self.start(self.ends.len() - 1) < last as usize,
                "trailing empty bucket"
            );
        }
        for a in 0..self.ends.len() {
            for at in self.bucket(a) {
                let piece = self.order[at];
                assert_eq!(
                    availability[piece.get()] as usize,
                    a,
                    "{piece:?} in wrong bucket"
                );
                assert_eq!(slots[piece.get()] as usize, at, "{piece:?} slot");
            }
        }
    }
}

/// Fisher-Yates shuffle.
pub(super) fn shuffle(items: &mut [PieceIndex], rng: &mut XorShift64) {
    for i in (1..items.len()).rev() {
        let j = rng.below(i + 1);
        items.swap(i, j);
    }
}
