//! Learning our external IP from what other nodes see (the `ip` field of responses,
//! BEP42).
//!
//! Each responding IP has one vote, its latest; the [`MAX_VOTERS`] most recent voters are
//! kept. An address is elected once it has [`MIN_VOTES`] votes and more than half of those
//! cast, so a few lying nodes cannot move us.

use core::net::IpAddr;
use std::collections::VecDeque;

/// Voters remembered.
pub(crate) const MAX_VOTERS: usize = 32;
/// Votes an address needs to be elected.
pub(crate) const MIN_VOTES: usize = 5;

/// The votes.
#[derive(Debug, Default)]
pub(crate) struct ExternalIpVotes {
    votes: VecDeque<(IpAddr, IpAddr)>,
    elected: Option<IpAddr>,
}

impl ExternalIpVotes {
    pub(crate) fn new(known: Option<IpAddr>) -> Self {
        Self {
            votes: VecDeque::new(),
            elected: known,
        }
    }

    /// Records that `voter` sees us at `seen`. Returns the newly elected address when the
    /// vote changes it.
    pub(crate) fn vote(&mut self, voter: IpAddr, seen: IpAddr) -> Option<IpAddr> {
        self.votes.retain(|(v, _)| *v != voter);
        self.votes.push_back((voter, seen));
        if self.votes.len() > MAX_VOTERS {
            self.votes.pop_front();
        }
        let count = self.votes.iter().filter(|(_, s)| *s == seen).count();
        if count >= MIN_VOTES && count * 2 > self.votes.len() && self.elected != Some(seen) {
            self.elected = Some(seen);
            return Some(seen);
        }
        None
    }

    /// The elected address, or the one we were told.
    pub(crate) fn current(&self) -> Option<IpAddr> {
        self.elected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([100, 64, 1, n])
    }

    #[test]
    fn a_majority_of_distinct_voters_elects() {
        let mut votes = ExternalIpVotes::new(None);
        let us = ip(200);
        // One voter repeating itself counts once.
        for _ in 0..10 {
            assert_eq!(votes.vote(ip(1), us), None);
        }
        for n in 2..5 {
            assert_eq!(votes.vote(ip(n), us), None);
        }
        assert_eq!(votes.vote(ip(5), us), Some(us));
        assert_eq!(votes.current(), Some(us));
        // Not elected twice; a few liars do not move it.
        assert_eq!(votes.vote(ip(6), us), None);
        for n in 10..14 {
            assert_eq!(votes.vote(ip(n), ip(66)), None);
        }
        assert_eq!(votes.current(), Some(us));
        assert!(votes.votes.len() <= MAX_VOTERS);
    }
}
