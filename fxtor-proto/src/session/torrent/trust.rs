//! Whom to blame for pieces that fail their hash check when several peers sent blocks of
//! them.
//!
//! A peer that sent a whole failed piece alone is banned at once (that is decided by the
//! caller). When blocks came from several peers the culprit is unknown, so each loses
//! trust: +1 for every passed piece a peer sent blocks of (up to [`MAX_TRUST`]), -2 for
//! every failed one, and a peer is banned when its trust reaches [`BAN_TRUST`] (three
//! failures with no passes between them). An honest peer that keeps sending good pieces
//! survives occasional shared failures; a peer that only sends bad data does not.

use std::collections::BTreeMap;

use core::net::SocketAddr;

/// The trust at which a peer is banned.
pub(super) const BAN_TRUST: i32 = -6;

/// The most trust a peer builds up.
pub(super) const MAX_TRUST: i32 = 8;

/// Trust per address; addresses at 0 are not stored.
#[derive(Debug, Default)]
pub(super) struct Trust {
    points: BTreeMap<SocketAddr, i32>,
}

impl Trust {
    /// `ip` sent blocks of a piece that passed.
    pub fn passed(&mut self, ip: SocketAddr) {
        self.add(ip, 1);
    }

    /// `ip` sent blocks of a piece that failed, along with other peers. Returns whether it
    /// is now to be banned.
    pub fn failed(&mut self, ip: SocketAddr) -> bool {
        self.add(ip, -2) <= BAN_TRUST
    }

    /// Forgets `ip` (it was banned).
    pub fn forget(&mut self, ip: SocketAddr) {
        self.points.remove(&ip);
    }

    fn add(&mut self, ip: SocketAddr, delta: i32) -> i32 {
        let points = self.points.entry(ip).or_insert(0);
        *points = (*points + delta).clamp(BAN_TRUST, MAX_TRUST);
        let now = *points;
        if now == 0 {
            self.points.remove(&ip);
        }
        now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn repeated_shared_failures_ban_and_passes_forgive() {
        let bad = SocketAddr::new(Ipv4Addr::new(1, 1, 1, 1).into(), 1);
        let good = SocketAddr::new(Ipv4Addr::new(2, 2, 2, 2).into(), 2);
        let mut trust = Trust::default();
        for _ in 0..4 {
            trust.passed(good);
        }
        assert!(!trust.failed(bad) && !trust.failed(good));
        assert!(!trust.failed(bad) && !trust.failed(good));
        assert!(trust.failed(bad), "three failures without a pass");
        assert!(!trust.failed(good), "its passes count for it");
        trust.forget(bad);
        assert!(!trust.failed(bad), "a forgotten address starts again");
        // Trust is capped, so a long good record does not buy unlimited failures.
        for _ in 0..100 {
            trust.passed(good);
        }
        let failures = (0..20).take_while(|_| !trust.failed(good)).count();
        assert_eq!(failures, 6);
        trust.passed(bad);
        trust.passed(bad);
        assert!(!trust.points.contains_key(&bad), "back at 0, not stored");
    }
}
