//! What a connection tells its owner.

use bytes::Bytes;

use super::CloseReason;
use crate::peer_id::PeerId;
use crate::wire::extension::ExtendedHandshake;
use crate::wire::{Block, BlockRequest, HashRequest, Hashes, ReservedBits};
use crate::{InfoHashV1, PieceIndex};

/// Something that happened on a connection, for its owner (the torrent) to act on. Taken
/// with [`PeerConnection::poll_event`](super::PeerConnection::poll_event), in the order it
/// happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerEvent {
    /// Both handshakes are exchanged; the connection is established.
    HandshakeDone {
        /// The peer's id.
        peer_id: PeerId,
        /// The extensions the peer announced (the ones in use are the intersection with
        /// ours: [`PeerConnection::extensions`](super::PeerConnection::extensions)).
        reserved: ReservedBits,
        /// The info-hash the connection runs under: for a hybrid torrent, the v1 hash or the
        /// truncated v2 one.
        info_hash: InfoHashV1,
    },

    /// The peer's pieces, one bit each, high bit of the first byte for piece 0. When the
    /// torrent's geometry is known its length and spare bits have been checked.
    Bitfield(Bytes),
    /// The peer has every piece (BEP6).
    HaveAll,
    /// The peer has no piece (BEP6).
    HaveNone,
    /// The peer has verified another piece.
    Have(PieceIndex),
    /// The peer suggests downloading this piece (BEP6).
    Suggest(PieceIndex),
    /// The peer will serve this piece even while it chokes us (BEP6); requests for it are
    /// accepted by [`request`](super::PeerConnection::request) while choked.
    AllowedFast(PieceIndex),

    /// The peer chokes us. Without the fast extension every outstanding request was
    /// dropped (each comes back as a [`RequestReturned`](Self::RequestReturned) first).
    Choked,
    /// The peer unchokes us.
    Unchoked,
    /// The peer is interested in our pieces.
    Interested,
    /// The peer is no longer interested.
    NotInterested,

    /// Room in the request pipeline: the owner may [`request`](super::PeerConnection::request)
    /// up to `count` more blocks. Given once per batch of events, after the events that
    /// made the room.
    WantBlocks {
        /// How many more requests the pipeline wants.
        count: usize,
        /// The peer is choking us: only blocks of its allowed-fast pieces can be requested.
        allowed_fast_only: bool,
    },
    /// A requested block arrived. Its data shares the receive buffer's memory.
    BlockReceived(Block),
    /// A request will not be answered; the owner should give the block to someone else.
    RequestReturned {
        /// The request.
        request: BlockRequest,
        /// Why.
        reason: ReturnReason,
    },
    /// A request has gone unanswered for the configured request timeout while nothing else
    /// arrived either. It stays outstanding (its block is still accepted); the owner may
    /// request the block elsewhere, and [`cancel`](super::PeerConnection::cancel) it here.
    RequestTimedOut(BlockRequest),
    /// Requests are outstanding and no block arrived for the snub timeout: the pipeline
    /// shrinks to one request until a block arrives.
    Snubbed,
    /// A block arrived from a snubbed peer; the pipeline grows again.
    Unsnubbed,

    /// The peer asks for a block. The owner reads it and passes it to
    /// [`serve_block`](super::PeerConnection::serve_block), or refuses it with
    /// [`reject_request`](super::PeerConnection::reject_request).
    UploadRequested(BlockRequest),
    /// A request from the peer was withdrawn before it was served: the peer cancelled it or
    /// we choked it. A read in progress for it can be dropped.
    UploadCancelled(BlockRequest),

    /// The peer's extension handshake (BEP10), as received. The merged view of every
    /// handshake it sent is [`PeerConnection::remote_extensions`](super::PeerConnection::remote_extensions).
    ExtendedHandshake(Box<ExtendedHandshake>),
    /// An extension message. `id` is the one *we* assigned to the extension in our
    /// extension handshake's `m`, so the owner knows which extension it is.
    Extended {
        /// Our id for the extension.
        id: u8,
        /// The extension's payload.
        payload: Bytes,
    },
    /// The peer's DHT port (BEP5).
    Port(u16),
    /// BEP52: the peer asks for merkle hashes.
    HashRequest(HashRequest),
    /// BEP52: merkle hashes from the peer.
    Hashes(Hashes),
    /// BEP52: the peer will not serve a hash request.
    HashReject(HashRequest),

    /// The connection is closed; it takes no more input and gives no more output. Every
    /// outstanding request was returned before this; requests from the peer are void.
    Closed(CloseReason),
}

/// Why a request came back unanswered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReturnReason {
    /// The peer rejected it (BEP6 `reject request`).
    Rejected,
    /// The peer choked us without the fast extension, which drops every request.
    Choked,
    /// The connection closed.
    Closed,
}
