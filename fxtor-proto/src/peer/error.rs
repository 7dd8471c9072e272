//! Why a connection closed, and why a command was refused.

use thiserror::Error;

use crate::wire::extension::ExtensionError;
use crate::wire::{BlockRequest, MessageId, WireError};
use crate::{InfoHashV1, PieceIndex};

/// Why a connection closed. [`is_misbehaviour`](Self::is_misbehaviour) tells the peer's
/// faults from ordinary endings, for the owner to decide whether to try the peer again.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CloseReason {
    /// The owner closed the connection, for the reason it gave.
    #[error("closed locally: {0}")]
    Local(&'static str),
    /// The transport ended: the peer closed its end or the connection broke. The driver
    /// reports this with [`close`](super::PeerConnection::close).
    #[error("the peer disconnected")]
    Disconnected,
    /// The bytes from the peer are not a valid handshake or message stream.
    #[error("invalid data from the peer: {0}")]
    Wire(#[from] WireError),
    /// The peer's handshake names a torrent other than this connection's.
    #[error("the peer's handshake is for info-hash {received}, not this torrent")]
    InfoHashMismatch {
        /// The info-hash the peer sent.
        received: InfoHashV1,
    },
    /// The peer's id is our own: we connected to ourselves.
    #[error("connected to ourselves")]
    ConnectedToSelf,
    /// The peer broke a rule of the protocol.
    #[error("protocol violation: {0}")]
    Violation(#[from] Violation),
    /// The peer sent a block that was never requested (nor cancelled recently).
    #[error("the peer sent a block that was not requested: {0:?}")]
    UnrequestedPiece(BlockRequest),
    /// The peer asked for more blocks than it may have outstanding.
    #[error("the peer flooded us with requests: more than {limit} outstanding")]
    RequestFlood {
        /// The limit it went over.
        limit: usize,
    },
    /// The peer's extension handshake could not be read.
    #[error("bad extension handshake: {0}")]
    Extension(#[from] ExtensionError),
    /// The handshake did not complete in time.
    #[error("the handshake timed out")]
    HandshakeTimeout,
    /// Nothing arrived from the peer for too long.
    #[error("nothing received for too long")]
    InactivityTimeout,
}

impl CloseReason {
    /// Whether the peer is at fault: it sent something invalid, broke a rule or flooded
    /// us. Timeouts, disconnects and local closes are not misbehaviour.
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            CloseReason::Wire(_)
                | CloseReason::Violation(_)
                | CloseReason::UnrequestedPiece(_)
                | CloseReason::RequestFlood { .. }
                | CloseReason::Extension(_)
        )
    }
}

/// A rule of the protocol the peer broke.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Violation {
    /// A `bitfield`, `have all` or `have none` after the peer had already said what it
    /// has (with one of those or a `have`).
    #[error("{0} after the peer's availability was already known")]
    AvailabilityNotFirst(MessageId),
    /// A bitfield of the wrong length for the torrent.
    #[error("bitfield of {actual} bytes, the torrent needs {expected}")]
    BitfieldLength {
        /// The length the torrent's piece count gives.
        expected: usize,
        /// The length received.
        actual: usize,
    },
    /// A bitfield with bits set past the last piece.
    #[error("bitfield with bits set past the last piece")]
    BitfieldSpareBits,
    /// A message naming a piece the torrent does not have.
    #[error("{message} for piece {piece}, past the end of the torrent")]
    PieceOutOfRange {
        /// Which message.
        message: MessageId,
        /// The piece it named.
        piece: PieceIndex,
    },
    /// A request for a block outside its piece, empty, or over 16 KiB.
    #[error("invalid request {0:?}")]
    InvalidRequest(BlockRequest),
    /// A piece message whose block lies outside its piece or is over 16 KiB.
    #[error("block outside its piece: {0:?}")]
    InvalidBlock(BlockRequest),
    /// A message of an extension that was not negotiated in the handshake (a BEP6 message
    /// without the fast extension, `extended` without BEP10).
    #[error("{0} message, but that extension was not negotiated")]
    NotNegotiated(MessageId),
}

/// Why [`PeerConnection::request`](super::PeerConnection::request) refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RequestError {
    /// The handshake is not done yet, or the connection is closed.
    #[error("the connection is not established")]
    NotConnected,
    /// We have not told the peer we are interested
    /// ([`set_interested`](super::PeerConnection::set_interested)), so it would ignore
    /// the request.
    #[error("we are not interested in the peer")]
    NotInterested,
    /// The peer is choking us and the piece is not in its allowed-fast set.
    #[error("the peer is choking us and the piece is not allowed fast")]
    Choked,
    /// The block is outside its piece, empty or over 16 KiB, or the torrent's geometry is
    /// not known yet.
    #[error("not a valid block of this torrent")]
    InvalidBlock,
    /// The same block is already requested from this peer.
    #[error("the block is already requested from this peer")]
    AlreadyRequested,
    /// As many requests are outstanding as the peer accepts.
    #[error("the peer's request queue is full")]
    QueueFull,
}

/// Why [`PeerConnection::send_extended`](super::PeerConnection::send_extended) sent nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SendExtendedError {
    /// The handshake is not done yet, or the connection is closed.
    #[error("the connection is not established")]
    NotConnected,
    /// The peer did not offer the extension in its extension handshake (or disabled it
    /// since), or does not speak BEP10 at all.
    #[error("the peer does not support this extension")]
    Unsupported,
}
