//! libtorrent's `lt_donthave`: withdrawing a piece we announced (it went bad or missing on
//! disk), and taking a peer's withdrawal into its availability.

use super::peer::PeerHave;
use super::{wanted, Shared, Torrent};
use crate::picker::PeerKey;
use crate::time::Instant;
use crate::wire::extension::{DontHave, LT_DONTHAVE};
use crate::PieceIndex;

/// The id we assign to `lt_donthave` in our extension handshake's `m`.
pub(super) const LT_DONTHAVE_ID: u8 = 3;

impl Torrent {
    /// A peer no longer has a piece: its availability and our interest follow.
    pub(super) fn on_donthave_message(&mut self, now: Instant, key: PeerKey, payload: &[u8]) {
        let Ok(DontHave(piece)) = DontHave::parse(payload) else {
            self.close_peer(now, key, "sent an invalid lt_donthave message");
            return;
        };
        let Some(meta) = &mut self.meta else {
            // Without metadata, a peer's pieces are plain bits; only those can drop one.
            if let Some(peer) = self.peers.get_mut(&key) {
                if let PeerHave::Pieces { .. } = peer.have {
                    let n = super::peer::MAX_PIECES_WITHOUT_METADATA;
                    let len = (n / 8) as usize;
                    peer.have.remove(piece, n, len);
                }
            }
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let num_pieces = meta.picker.num_pieces();
        let was_all = peer.have == PeerHave::All;
        if !peer
            .have
            .remove(piece, num_pieces, meta.geometry.bitfield_len())
        {
            return;
        }
        if was_all {
            meta.picker.peer_lost_all();
            if let PeerHave::Pieces { bits, .. } = &peer.have {
                meta.picker.peer_bitfield(bits);
            }
            peer.wanted = meta.picker.wanted_left();
        } else {
            meta.picker.dec_availability(piece);
        }
        if wanted(&meta.picker, piece) {
            peer.wanted = peer.wanted.saturating_sub(1);
        }
        self.update_interest(now, key);
    }

    /// We lost `piece` (it could not be read back from disk): it is wanted again, and the
    /// peers that understand `lt_donthave` are told.
    pub(super) fn lose_piece(&mut self, now: Instant, piece: PieceIndex, shared: &mut Shared) {
        let Some(meta) = &mut self.meta else {
            return;
        };
        if !meta.picker.have(piece) {
            return;
        }
        meta.picker.we_dont_have(piece);
        let payload = DontHave(piece).to_bytes();
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            // A peer without `lt_donthave` keeps believing we have it; its requests
            // for it are rejected.
            if peer
                .connection
                .send_extended(now, LT_DONTHAVE, payload.clone())
                .is_ok()
            {
                self.touch(key);
            }
        }
        self.recount_wanted();
        self.update_state(now, shared);
        self.update_all_interest(now);
        self.refill = true;
    }
}
