use core::net::SocketAddr;
use core::time::Duration;
use std::sync::Arc;

use bytes::Bytes;

use super::DhtSettings;
use crate::magnet::MagnetLink;
use crate::metainfo::TorrentInfo;
use crate::peer_id::PeerId;
use crate::tracker::{AnnouncerConfig, UdpTrackerConfig};

/// Settings of a [`Session`](super::Session).
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our peer id.
    pub peer_id: PeerId,
    /// The port we listen on, told to peers in the extension handshake (0: not listening).
    pub listen_port: u16,
    /// The most peer connections in the session.
    pub max_connections: usize,
    /// The most peer connections per torrent.
    pub max_connections_per_torrent: usize,
    /// The most bytes of downloaded piece data held in memory (pieces being assembled and
    /// waiting to be verified and written). When reached, no new pieces are started.
    pub max_piece_memory: usize,
    /// Seed of the session's random numbers (tie-breaks, optimistic unchokes), so a run can
    /// be replayed exactly.
    pub rng_seed: u64,
    /// BEP6: how many pieces each newcomer (a peer with fewer than 10 pieces, on a
    /// connection with the fast extension) may download while we choke it — those of its
    /// allowed-fast set that we have (libtorrent's `allowed_fast_set_size`). Granted only
    /// in torrents of at least four times as many pieces, where it bootstraps a newcomer
    /// without giving the torrent away. 0: none. Default 5.
    pub allowed_fast_set_size: usize,
    /// Upload slots of each torrent: how many of its peers are unchoked at once. One of
    /// them is the optimistic unchoke and the others are regular
    /// ([`ChokerConfig`](crate::choker::ChokerConfig): `upload_slots - 1` regular slots and
    /// one optimistic slot; 0 unchokes nobody). Default 8.
    pub upload_slots: usize,
    /// How the torrents' trackers are announced to (intervals, back-off, `numwant`).
    pub announcer: AnnouncerConfig,
    /// Retransmission timing of UDP trackers (BEP15).
    pub udp_tracker: UdpTrackerConfig,
    /// How long a removed torrent waits for its trackers to answer its `stopped`
    /// announces (5 s) before it is forgotten.
    pub stop_announce_timeout: Duration,
    /// Exchange peers with connected peers (BEP11 `ut_pex`) on public torrents. Default
    /// on.
    pub peer_exchange: bool,
    /// The DHT (BEP5) on the session's UDP socket; `None` (the default): no DHT.
    pub dht: Option<DhtSettings>,
}

impl SessionConfig {
    /// Defaults for a session with this peer id.
    pub fn new(peer_id: PeerId) -> Self {
        Self {
            peer_id,
            listen_port: 0,
            max_connections: 200,
            max_connections_per_torrent: 50,
            max_piece_memory: 64 << 20,
            rng_seed: 0,
            upload_slots: 8,
            allowed_fast_set_size: 5,
            announcer: AnnouncerConfig::default(),
            udp_tracker: UdpTrackerConfig::default(),
            stop_announce_timeout: Duration::from_secs(5),
            peer_exchange: true,
            dht: None,
        }
    }
}

/// Where a torrent's description comes from.
#[derive(Debug, Clone)]
pub enum TorrentSource {
    /// A parsed .torrent (or info dictionary).
    Info(Arc<TorrentInfo>),
    /// A magnet link: the info dictionary is fetched from peers (BEP9).
    Magnet(MagnetLink),
}

/// How to add a torrent to a session (libtorrent's `add_torrent_params`).
#[derive(Debug, Clone)]
pub struct AddTorrentParams {
    /// The torrent.
    pub source: TorrentSource,
    /// Peers to connect to at once.
    pub peers: Vec<SocketAddr>,
    /// Add it paused.
    pub paused: bool,
    /// Resume data from [`Session::save_resume_data`](super::Session::save_resume_data): the
    /// pieces we have are trusted, not re-hashed.
    pub resume_data: Option<Bytes>,
    /// Skip the initial check: the files are known not to exist yet.
    pub skip_check: bool,
    /// Trust that every piece is on disk (seed at once, no check).
    pub seed_mode: bool,
    /// File priorities (0–7), in the order of the non-pad files; empty: all 4.
    pub file_priorities: Vec<u8>,
    /// Files that `file_priorities` does not cover get priority 0 instead of 4
    /// (libtorrent's `default_dont_download`): a magnet link's files can be chosen once its
    /// metadata arrives, before any of them is downloaded.
    pub default_dont_download: bool,
    /// Download in piece order.
    pub sequential: bool,
    /// Stop downloading (but keep seeding) pieces we do not have: upload only.
    pub upload_only: bool,
    /// Trackers to announce to besides the torrent's own (a .torrent's `announce-list`, a
    /// magnet link's `tr=`), in BEP12 tiers placed after them; a URL already known is not
    /// added twice.
    pub trackers: Vec<Vec<String>>,
}

impl AddTorrentParams {
    /// Parameters for a torrent, everything else default.
    pub fn new(source: TorrentSource) -> Self {
        Self {
            source,
            peers: Vec::new(),
            paused: false,
            resume_data: None,
            skip_check: false,
            seed_mode: false,
            file_priorities: Vec::new(),
            default_dont_download: false,
            sequential: false,
            upload_only: false,
            trackers: Vec::new(),
        }
    }
}
