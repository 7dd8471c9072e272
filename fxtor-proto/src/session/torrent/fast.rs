//! BEP6 allowed-fast pieces we grant: a newcomer (a peer with almost nothing) may download
//! the pieces of its allowed-fast set that we have while we choke it, so it has something
//! to trade before any choker picks it. As libtorrent, we grant a set of
//! [`SessionConfig::allowed_fast_set_size`] pieces once, when the peer's availability is
//! first known; unlike libtorrent, never in a torrent of fewer than
//! [`MIN_PIECES_PER_GRANTED`] times as many pieces, where the set would be much of the
//! torrent. The connection serves requests for them while choking
//! ([`PeerConnection::granted_fast`]), and keeps them queued through a choke.
//!
//! [`SessionConfig::allowed_fast_set_size`]: crate::session::SessionConfig::allowed_fast_set_size
//! [`PeerConnection::granted_fast`]: crate::peer::PeerConnection::granted_fast

use core::net::IpAddr;

use super::peer::PeerHave;
use super::{Shared, Torrent};
use crate::picker::PeerKey;
use crate::time::Instant;
use crate::wire::{allowed_fast_set, ReservedBits};

/// A peer with fewer pieces than this is a newcomer.
pub(super) const NEWCOMER_PIECES: u32 = 10;

/// Allowed-fast pieces are granted only in torrents of at least this many pieces per
/// granted piece.
pub(super) const MIN_PIECES_PER_GRANTED: usize = 4;

impl Torrent {
    /// Grants a newcomer the pieces of its allowed-fast set that we have, the first time its
    /// availability is known. Only on connections with the fast extension, to IPv4 peers
    /// (BEP6 defines the set for IPv4 addresses; a v4-mapped IPv6 address counts as one).
    pub(super) fn offer_allowed_fast(&mut self, now: Instant, key: PeerKey, shared: &Shared) {
        let Some(meta) = &self.meta else {
            return;
        };
        let size = shared.config.allowed_fast_set_size;
        let num_pieces = meta.picker.num_pieces();
        if size == 0 || (num_pieces as usize) < size.saturating_mul(MIN_PIECES_PER_GRANTED) {
            return;
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer.fast_set_offered || !peer.connection.extensions().contains(ReservedBits::FAST) {
            return;
        }
        peer.fast_set_offered = true;
        let newcomer = match &peer.have {
            PeerHave::Nothing => true,
            PeerHave::All => false,
            PeerHave::Pieces { count, .. } => *count < NEWCOMER_PIECES,
        };
        let ip = match peer.addr.ip() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(ip) => ip.to_ipv4_mapped(),
        };
        let (true, Some(ip), Some(info_hash)) = (newcomer, ip, peer.connection.info_hash()) else {
            return;
        };
        for piece in allowed_fast_set(ip, &info_hash, num_pieces, size) {
            if meta.picker.have(piece) {
                peer.connection.send_allowed_fast(now, piece);
            }
        }
        self.touch(key);
    }
}
