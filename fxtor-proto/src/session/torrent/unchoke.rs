//! Choking: describing the torrent's peers to its [`Choker`] and applying its decisions.
//!
//! The choker decides; this module measures and obeys. A rechoke runs at the end of an
//! input ([`Torrent::flush`]) whenever [`Choker::next_rechoke`] is due: every rechoke
//! interval, when an optimistic slot runs out, and early when something frees or wants a
//! slot:
//!
//! - a peer that held a slot disconnects ([`Choker::peer_removed`]);
//! - a choked peer becomes interested while fewer peers than there are slots are
//!   unchoked, so it need not wait for the next regular rechoke;
//! - an unchoked peer loses interest, so its slot goes to someone who wants it;
//! - the torrent starts or stops downloading ([`Choker::set_seeding`]): while it
//!   downloads, peers are reciprocated for what they send us; once it only uploads, the
//!   slots go round in turns.
//!
//! Each decision is applied with [`PeerConnection::set_choking`](crate::peer::PeerConnection::set_choking).
//! Choking a peer drops the requests it has queued (with the fast extension it gets a
//! `reject` for each), and a block read for a dropped request is not sent, so a choked
//! peer gets no piece data.

use super::{Shared, Torrent};
use crate::choker::{ChokeCandidate, Choker, ChokerConfig};
use crate::picker::PeerKey;
use crate::session::SessionConfig;
use crate::time::Instant;

/// The choker settings of a session's torrents:
/// [`upload_slots`](SessionConfig::upload_slots) peers unchoked at once, one of them
/// optimistically (none with 0 slots), the other choker settings at their defaults.
pub(super) fn choker_config(config: &SessionConfig) -> ChokerConfig {
    let optimistic_slots = config.upload_slots.min(1);
    ChokerConfig {
        upload_slots: config.upload_slots.saturating_sub(optimistic_slots),
        optimistic_slots,
        ..ChokerConfig::default()
    }
}

impl Torrent {
    /// A choker for a new torrent, its randomness drawn from the session's.
    pub(super) fn new_choker(shared: &mut Shared) -> Choker {
        Choker::new(choker_config(&shared.config), shared.rng.next_u64())
    }

    /// Tells the choker whether the torrent downloads (peers are reciprocated) or only
    /// uploads (peers take turns).
    pub(super) fn update_choker_mode(&mut self) {
        let seeding = self.uploading_allowed() && !self.is_downloading();
        self.choker.set_seeding(seeding);
    }

    /// Whether a rechoke is due at `now`.
    pub(super) fn rechoke_due(&self, now: Instant) -> bool {
        !self.peers.is_empty() && self.choker.next_rechoke() <= now
    }

    /// Describes every established peer to the choker and applies what it decides.
    pub(super) fn rechoke(&mut self, now: Instant) {
        let candidates = self.choke_candidates();
        let decision = self.choker.rechoke(now, &candidates);
        let changes = decision
            .unchoke
            .into_iter()
            .map(|key| (key, false))
            .chain(decision.choke.into_iter().map(|key| (key, true)));
        for (key, choke) in changes {
            if let Some(peer) = self.peers.get_mut(&key) {
                peer.connection.set_choking(now, choke);
            }
            self.touch(key);
        }
    }

    /// The peers a rechoke chooses among: those whose handshake is done and whose
    /// connection is open. While nothing may be served, none counts as interested, so any
    /// unchoked peer is choked.
    fn choke_candidates(&self) -> Vec<ChokeCandidate> {
        let serving = self.uploading_allowed();
        self.peers
            .iter()
            .filter(|(_, p)| p.established && !p.connection.is_closed())
            .map(|(&key, p)| {
                let stats = p.connection.stats();
                ChokeCandidate {
                    key,
                    interested: serving && p.connection.peer_interested(),
                    is_choked: p.connection.am_choking(),
                    download_rate: stats.download_rate,
                    upload_rate: stats.upload_rate,
                    uploaded: stats.payload_uploaded,
                    is_snubbed: p.connection.is_snubbed(),
                    connected_at: p.connected_at,
                    // Every open connection may get the optimistic slot: the peers that
                    // could not use it are the ones not interested.
                    optimistic_eligible: true,
                }
            })
            .collect()
    }

    /// How many established peers we unchoke.
    fn unchoked_count(&self) -> usize {
        self.peers
            .values()
            .filter(|p| p.established && !p.connection.am_choking())
            .count()
    }

    /// A peer became interested: if it is choked and a slot is free, rechoke now rather
    /// than at the next regular time.
    pub(super) fn on_peer_interested(&mut self, key: PeerKey) {
        if !self.uploading_allowed() {
            return;
        }
        let choked = self
            .peers
            .get(&key)
            .is_some_and(|p| p.connection.am_choking());
        if choked && self.unchoked_count() < self.choker.config().total_slots() {
            self.choker.request_rechoke();
        }
    }

    /// A peer lost interest: if we unchoke it, rechoke now, so that its slot goes to a
    /// peer that wants it.
    pub(super) fn on_peer_not_interested(&mut self, key: PeerKey) {
        let unchoked = self
            .peers
            .get(&key)
            .is_some_and(|p| !p.connection.am_choking());
        if unchoked {
            self.choker.request_rechoke();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer_id::PeerId;

    fn slots(upload_slots: usize) -> (usize, usize) {
        let mut config = SessionConfig::new(PeerId([0; 20]));
        config.upload_slots = upload_slots;
        let choker = choker_config(&config);
        assert_eq!(choker.total_slots(), upload_slots);
        (choker.upload_slots, choker.optimistic_slots)
    }

    #[test]
    fn upload_slots_include_one_optimistic() {
        assert_eq!(slots(8), (7, 1));
        assert_eq!(slots(2), (1, 1));
        assert_eq!(slots(1), (0, 1));
        assert_eq!(slots(0), (0, 0));
        let defaults = ChokerConfig::default();
        let mapped = choker_config(&SessionConfig::new(PeerId([0; 20])));
        assert_eq!(mapped.rechoke_interval, defaults.rechoke_interval);
        assert!(!mapped.seeding);
    }
}
