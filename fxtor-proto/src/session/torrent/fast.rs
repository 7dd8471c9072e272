//! BEP6 allowed-fast pieces we grant: a newcomer (a peer with almost nothing) may download
//! the pieces of its allowed-fast set that we have while we choke it, so it has something
//! to trade before any choker picks it. As libtorrent, we grant a set of
//! [`SessionConfig::allowed_fast_set_size`] pieces once, when the peer's availability is
//! first known; unlike libtorrent, never in a torrent of fewer than
//! [`MIN_PIECES_PER_GRANTED`] times as many pieces, where the set would be much of the
//! torrent. Requests for them are served while we choke the peer as long as it is a
//! newcomer that does not say it has the piece, and up to twice the granted pieces' bytes
//! (BEP6 lets us refuse a piece already sent, or a peer no longer starting); the rest are
//! rejected. The connection keeps granted requests queued through a choke
//! ([`PeerConnection::granted_fast`]).
//!
//! [`SessionConfig::allowed_fast_set_size`]: crate::session::SessionConfig::allowed_fast_set_size
//! [`PeerConnection::granted_fast`]: crate::peer::PeerConnection::granted_fast

use core::net::IpAddr;

use super::peer::{Peer, PeerHave};
use super::{Shared, Torrent};
use crate::picker::PeerKey;
use crate::time::Instant;
use crate::wire::{allowed_fast_set, BlockRequest, ReservedBits};

/// A peer with fewer pieces than this is a newcomer.
pub(super) const NEWCOMER_PIECES: u32 = 10;

/// Allowed-fast pieces are granted only in torrents of at least this many pieces per
/// granted piece.
pub(super) const MIN_PIECES_PER_GRANTED: usize = 4;

/// A choked peer is served at most this many times the bytes of the pieces granted to it
/// (a little more than once, for requests it cancels and asks again).
const SERVED_PER_GRANTED_BYTE: u64 = 2;

/// Whether `request` of a peer we choke is served as an allowed-fast piece: one granted to
/// it, while it is still a newcomer and does not say it has the piece, and within
/// [`SERVED_PER_GRANTED_BYTE`] times the granted pieces' bytes (BEP6 lets us refuse a piece
/// already sent, or a peer that is no longer starting). Counts the bytes when it is.
pub(super) fn serve_while_choked(
    peer: &mut Peer,
    request: &BlockRequest,
    piece_length: u32,
) -> bool {
    let granted = peer.connection.granted_fast();
    let budget = granted.len() as u64 * u64::from(piece_length) * SERVED_PER_GRANTED_BYTE;
    let newcomer = is_newcomer(&peer.have);
    let serve = granted.contains(&request.piece)
        && newcomer
        && !peer.have.contains(request.piece)
        && peer.fast_bytes_served + u64::from(request.length) <= budget;
    if serve {
        peer.fast_bytes_served += u64::from(request.length);
    }
    serve
}

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
        let newcomer = is_newcomer(&peer.have);
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

/// A peer with fewer than [`NEWCOMER_PIECES`] pieces.
fn is_newcomer(have: &PeerHave) -> bool {
    match have {
        PeerHave::Nothing => true,
        PeerHave::All => false,
        PeerHave::Pieces { count, .. } => *count < NEWCOMER_PIECES,
    }
}
