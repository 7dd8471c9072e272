//! What a connection is created with: the torrent's facts and the tunable limits.

use core::time::Duration;

use bytes::Bytes;

use super::TorrentGeometry;
use crate::peer_id::PeerId;
use crate::wire::extension::ExtendedHandshake;
use crate::wire::ReservedBits;
use crate::InfoHashes;

/// Timeouts and limits of a connection. The defaults follow common practice (BEP3's two
/// minute keep-alive, libtorrent's request queue time of three seconds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// The extensions we announce in the handshake. An extension is used when the peer
    /// announces it too. Default: BEP10 extension protocol and BEP6 fast extension.
    pub reserved: ReservedBits,
    /// How long the peer has to complete the handshake, from the connection's creation.
    pub handshake_timeout: Duration,
    /// After this long without sending anything, a keep-alive is sent.
    pub keep_alive_interval: Duration,
    /// After this long without receiving anything, the connection is closed.
    pub inactivity_timeout: Duration,
    /// A request outstanding this long, with no block arriving meanwhile, is reported
    /// as timed out.
    pub request_timeout: Duration,
    /// Requests outstanding and no block for this long: the peer is snubbed.
    pub snub_timeout: Duration,
    /// How many seconds of data at the measured download rate to keep requested: the
    /// pipeline's depth is `rate × request_queue_time / 16 KiB`.
    pub request_queue_time: Duration,
    /// The least pipeline depth (outside the snubbed state).
    pub min_request_queue: usize,
    /// The greatest pipeline depth; the peer's `reqq` lowers it further.
    pub max_request_queue: usize,
    /// How many requests from the peer may wait for an answer. We announce it as our
    /// `reqq`; a peer that goes over it is closed for flooding.
    pub max_upload_queue: usize,
    /// How long a block that arrives after we cancelled or gave up its request is still
    /// accepted (and dropped) rather than treated as unrequested.
    pub cancel_grace: Duration,
    /// How many allowed-fast pieces from the peer are remembered; further ones are
    /// ignored.
    pub max_allowed_fast: usize,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            reserved: ReservedBits::EXTENSION_PROTOCOL | ReservedBits::FAST,
            handshake_timeout: Duration::from_secs(20),
            keep_alive_interval: Duration::from_secs(120),
            inactivity_timeout: Duration::from_secs(180),
            request_timeout: Duration::from_secs(30),
            snub_timeout: Duration::from_secs(60),
            request_queue_time: Duration::from_secs(3),
            min_request_queue: 4,
            max_request_queue: 500,
            max_upload_queue: 500,
            cancel_grace: Duration::from_secs(60),
            max_allowed_fast: 64,
        }
    }
}

/// Which pieces we have, as the connection first announces them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Availability {
    /// No piece (or the torrent's metadata is not known yet).
    #[default]
    None,
    /// Every piece.
    All,
    /// One bit per piece, high bit of the first byte for piece 0. A bitfield of the wrong
    /// length for the torrent is cut or padded with zeros.
    Bitfield(Bytes),
}

/// What a connection needs to know about its torrent and about us.
#[derive(Clone, Debug)]
pub struct PeerParams {
    /// The torrent's info-hashes; an incoming handshake must name one of its identifiers.
    pub info_hashes: InfoHashes,
    /// Our peer id.
    pub local_peer_id: PeerId,
    /// The torrent's pieces, if its metadata is known. Without it (a magnet link still
    /// fetching metadata), piece indices and bitfields are passed on unchecked and no
    /// blocks can be requested; see [`PeerConnection::set_geometry`](super::PeerConnection::set_geometry).
    pub geometry: Option<TorrentGeometry>,
    /// What we have when the handshake completes; later pieces are announced with
    /// [`send_have`](super::PeerConnection::send_have).
    pub availability: Availability,
    /// Our extension handshake (BEP10), sent when both sides support the extension
    /// protocol. Its `m` assigns the ids under which we receive extension messages. Its
    /// `reqq`, if unset, is filled with [`PeerConfig::max_upload_queue`].
    pub extended_handshake: ExtendedHandshake,
    /// Timeouts and limits.
    pub config: PeerConfig,
}

impl PeerParams {
    /// Parameters for a torrent with the given info-hashes, whose metadata is not known
    /// yet: no geometry, no pieces, an empty extension handshake, the default config.
    pub fn new(info_hashes: InfoHashes, local_peer_id: PeerId) -> Self {
        Self {
            info_hashes,
            local_peer_id,
            geometry: None,
            availability: Availability::None,
            extended_handshake: ExtendedHandshake::default(),
            config: PeerConfig::default(),
        }
    }
}
