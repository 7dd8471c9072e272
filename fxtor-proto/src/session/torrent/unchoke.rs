//! Whom to unchoke: a plain rule standing in for a full choker.
//!
//! Every [`ROUND`] the interested peers are ranked by rate (how fast they send to us while
//! we download, how fast we send to them while we seed) and the best `slots - 1` are
//! unchoked, plus one optimistic unchoke chosen at random among the rest and kept for
//! [`OPTIMISTIC_ROUNDS`] rounds, so newcomers get a chance to show their rate.

use std::collections::BTreeSet;

use core::time::Duration;

use crate::picker::PeerKey;
use crate::session::rng::Rng;
use crate::time::Instant;

/// How often the unchoked set is chosen again.
pub(super) const ROUND: Duration = Duration::from_secs(10);

/// How many rounds an optimistic unchoke lasts.
pub(super) const OPTIMISTIC_ROUNDS: u32 = 3;

/// A peer as the rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Candidate {
    pub key: PeerKey,
    /// Whether it is interested in our pieces (only those are unchoked).
    pub interested: bool,
    /// Its rate, bytes per second.
    pub rate: u64,
}

/// The unchoke rule's state.
#[derive(Debug)]
pub(super) struct Unchoker {
    slots: usize,
    next_round: Instant,
    optimistic: Option<PeerKey>,
    optimistic_rounds: u32,
}

impl Unchoker {
    /// A rule with `slots` upload slots (the optimistic one included).
    pub fn new(now: Instant, slots: usize) -> Self {
        Self {
            slots,
            next_round: now + ROUND,
            optimistic: None,
            optimistic_rounds: 0,
        }
    }

    /// How many peers may be unchoked at once.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// When the next round is due.
    pub fn next_round(&self) -> Instant {
        self.next_round
    }

    /// Chooses the peers to unchoke now; every other peer is choked.
    pub fn round(
        &mut self,
        now: Instant,
        candidates: &[Candidate],
        rng: &mut Rng,
    ) -> BTreeSet<PeerKey> {
        self.next_round = now + ROUND;
        let mut interested: Vec<&Candidate> = candidates.iter().filter(|c| c.interested).collect();
        if interested.len() <= self.slots {
            self.optimistic = None;
            return interested.iter().map(|c| c.key).collect();
        }
        // Fastest first; equal rates by key, so the order is reproducible.
        interested.sort_by(|a, b| b.rate.cmp(&a.rate).then(a.key.cmp(&b.key)));
        // More interested peers than slots: `regular` < `slots` < `interested.len()`, so
        // the slicing below is in range and `rest` holds at least two peers.
        let regular = self.slots.saturating_sub(1);
        let mut chosen: BTreeSet<PeerKey> = interested[..regular].iter().map(|c| c.key).collect();
        if self.slots == 0 {
            return chosen;
        }
        let rest: Vec<PeerKey> = interested[regular..].iter().map(|c| c.key).collect();
        self.optimistic_rounds += 1;
        let keep = self
            .optimistic
            .filter(|key| rest.contains(key) && self.optimistic_rounds < OPTIMISTIC_ROUNDS);
        let optimistic = match keep {
            Some(key) => key,
            None => {
                self.optimistic_rounds = 0;
                rest[rng.below(rest.len())]
            }
        };
        self.optimistic = Some(optimistic);
        chosen.insert(optimistic);
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(rates: &[(u32, bool, u64)]) -> Vec<Candidate> {
        rates
            .iter()
            .map(|&(k, interested, rate)| Candidate {
                key: PeerKey(k),
                interested,
                rate,
            })
            .collect()
    }

    #[test]
    fn fewer_interested_than_slots_all_unchoked() {
        let mut u = Unchoker::new(Instant::ZERO, 3);
        let set = u.round(
            Instant::ZERO,
            &candidates(&[(1, true, 0), (2, false, 100), (3, true, 5)]),
            &mut Rng::new(1),
        );
        assert_eq!(set, [PeerKey(1), PeerKey(3)].into());
        assert_eq!(u.next_round(), Instant::ZERO + ROUND);
    }

    #[test]
    fn best_rates_plus_a_rotating_optimistic() {
        let mut u = Unchoker::new(Instant::ZERO, 3);
        let mut rng = Rng::new(7);
        let peers = candidates(&[
            (1, true, 10),
            (2, true, 500),
            (3, true, 400),
            (4, true, 1),
            (5, true, 2),
            (6, true, 3),
        ]);
        let mut optimistic_seen = BTreeSet::new();
        let mut now = Instant::ZERO;
        for round in 0..30 {
            let set = u.round(now, &peers, &mut rng);
            assert_eq!(set.len(), 3);
            assert!(set.contains(&PeerKey(2)) && set.contains(&PeerKey(3)));
            let optimistic = *set.iter().find(|k| k.0 != 2 && k.0 != 3).unwrap();
            if round % OPTIMISTIC_ROUNDS as usize != 0 {
                assert!(optimistic_seen.contains(&optimistic));
            }
            optimistic_seen.insert(optimistic);
            now = u.next_round();
        }
        assert!(optimistic_seen.len() > 1, "the optimistic slot rotates");
    }
}
