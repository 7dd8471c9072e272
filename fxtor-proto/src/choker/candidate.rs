//! What the choker is told about each peer, and what it answers.

use crate::time::Instant;

/// The owner's name for one peer connection: the same key the piece picker uses.
pub use crate::picker::PeerKey;

/// One connected peer as it stands at a rechoke, measured by the owner.
///
/// [`ChokeCandidate::new`] gives a peer that is choked, not interested and has moved
/// nothing; set the fields that differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChokeCandidate {
    /// Which peer this is. Keys are unique among the candidates of one rechoke; of two
    /// candidates with the same key, only the first counts.
    pub key: PeerKey,
    /// Whether the peer is interested in what we have. Only interested peers are unchoked.
    pub interested: bool,
    /// Whether we choke the peer now.
    pub is_choked: bool,
    /// The rate at which the peer sends us piece data, in bytes per second.
    pub download_rate: u64,
    /// The rate at which we send the peer piece data, in bytes per second.
    pub upload_rate: u64,
    /// Piece data sent to the peer over the whole connection, in bytes
    /// ([`PeerStats::payload_uploaded`](crate::peer::PeerStats::payload_uploaded)). While
    /// seeding it measures how much of its turn a peer has used.
    pub uploaded: u64,
    /// Whether the peer has left our requests unanswered for a long time
    /// ([`PeerConnection::is_snubbed`](crate::peer::PeerConnection::is_snubbed)). While
    /// leeching a snubbed peer is not reciprocated (it can still be unchoked optimistically).
    pub is_snubbed: bool,
    /// When the connection was made. Peers connected recently are favoured for the
    /// optimistic unchoke.
    pub connected_at: Instant,
    /// Whether the peer may get the optimistic unchoke, e.g. `false` for a peer we expect
    /// nothing back from.
    pub optimistic_eligible: bool,
}

impl ChokeCandidate {
    /// A peer connected at `connected_at` that we choke, that is not interested, has moved
    /// nothing, is not snubbed and may be unchoked optimistically.
    pub fn new(key: PeerKey, connected_at: Instant) -> Self {
        Self {
            key,
            interested: false,
            is_choked: true,
            download_rate: 0,
            upload_rate: 0,
            uploaded: 0,
            is_snubbed: false,
            connected_at,
            optimistic_eligible: true,
        }
    }

    /// Whether the peer may take an optimistic slot now.
    pub(super) fn wants_optimistic(&self) -> bool {
        self.interested && self.optimistic_eligible
    }
}

/// What a rechoke changes: the peers to unchoke and the peers to choke, each in key order.
///
/// Only changes are listed: a peer already unchoked that stays unchoked, or a choked one
/// that stays choked, appears in neither list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChokeDecision {
    /// Peers we choke now and should unchoke.
    pub unchoke: Vec<PeerKey>,
    /// Peers we unchoke now and should choke.
    pub choke: Vec<PeerKey>,
}

impl ChokeDecision {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.unchoke.is_empty() && self.choke.is_empty()
    }
}
