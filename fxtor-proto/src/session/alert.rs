use core::net::{IpAddr, SocketAddr};

use super::{ConnectionId, PeerSources, TorrentId, TorrentState};
use crate::{InfoHashes, PieceIndex};

/// What happened, for the application: libtorrent's alerts, spelled as one enum.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Alert {
    /// A torrent was added.
    TorrentAdded {
        /// The torrent.
        torrent: TorrentId,
        /// Its info-hashes.
        info_hashes: InfoHashes,
    },
    /// A torrent was removed.
    TorrentRemoved {
        /// The torrent.
        torrent: TorrentId,
    },
    /// A torrent's state changed.
    StateChanged {
        /// The torrent.
        torrent: TorrentId,
        /// The state before.
        from: TorrentState,
        /// The state now.
        to: TorrentState,
    },
    /// A magnet link's torrent received and verified its info dictionary.
    MetadataReceived {
        /// The torrent.
        torrent: TorrentId,
    },
    /// A piece passed its hash check and was written.
    PieceFinished {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: PieceIndex,
    },
    /// A piece failed its hash check; it was not written and will be downloaded again.
    HashFailed {
        /// The torrent.
        torrent: TorrentId,
        /// The piece.
        piece: PieceIndex,
    },
    /// Every wanted piece is downloaded and written.
    TorrentFinished {
        /// The torrent.
        torrent: TorrentId,
    },
    /// A full check of the files ended.
    TorrentChecked {
        /// The torrent.
        torrent: TorrentId,
    },
    /// A torrent stopped on an error (a disk write failed, say).
    TorrentError {
        /// The torrent.
        torrent: TorrentId,
        /// What went wrong.
        error: String,
    },
    /// A peer completed the handshake.
    PeerConnected {
        /// The torrent.
        torrent: TorrentId,
        /// The connection.
        conn: ConnectionId,
        /// The peer's address.
        addr: SocketAddr,
        /// The client, as its peer id says.
        client: Option<String>,
        /// How its address was learnt (none for a peer that dialled us and has not told
        /// its listen port).
        sources: PeerSources,
    },
    /// A peer connection ended.
    PeerDisconnected {
        /// The torrent (`None` when the connection closed before its handshake named one).
        torrent: Option<TorrentId>,
        /// The connection.
        conn: ConnectionId,
        /// The peer's address.
        addr: SocketAddr,
        /// Why, in words.
        reason: String,
    },
    /// A peer sent data that failed a hash check and is banned from the torrent.
    PeerBanned {
        /// The torrent.
        torrent: TorrentId,
        /// The peer's address.
        addr: SocketAddr,
    },
    /// The once-a-second statistics of a torrent (only while it transfers).
    Stats {
        /// The torrent.
        torrent: TorrentId,
        /// Payload bytes downloaded in the last interval.
        downloaded: u64,
        /// Payload bytes uploaded in the last interval.
        uploaded: u64,
    },
    /// A tracker answered an announce.
    TrackerReply {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker's announce URL.
        url: String,
        /// How many peers it gave.
        num_peers: usize,
    },
    /// A tracker answered an announce with a `warning message`.
    TrackerWarning {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker's announce URL.
        url: String,
        /// What it said.
        message: String,
    },
    /// An announce failed: the tracker said `failure reason`, gave a bad answer, or could
    /// not be reached. The torrent goes on; the tracker is asked again after a back-off.
    TrackerError {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker's announce URL.
        url: String,
        /// What went wrong (the tracker's own words for a `failure reason`).
        error: String,
        /// Consecutive failures of this tracker.
        failures: u32,
    },
    /// A tracker answered a scrape ([`Session::scrape_tracker`](crate::session::Session::scrape_tracker)).
    /// For a hybrid torrent the figures are those of its v1 swarm.
    ScrapeReply {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker's announce URL.
        url: String,
        /// Peers with the whole torrent (`complete`).
        seeders: u32,
        /// Peers still downloading (`incomplete`).
        leechers: u32,
        /// Downloads the tracker saw complete (`downloaded`).
        downloaded: u32,
    },
    /// A scrape failed, or no tracker of the torrent can be scraped.
    ScrapeFailed {
        /// The torrent.
        torrent: TorrentId,
        /// The tracker's announce URL, if one was asked.
        url: Option<String>,
        /// What went wrong.
        error: String,
    },
    /// The DHT node joined the network: its first bootstrap lookup filled its routing
    /// table with `nodes` nodes.
    DhtBootstrapped {
        /// Nodes in the routing tables.
        nodes: usize,
    },
    /// A DHT lookup found peers for a torrent (only ones it had not reported before).
    DhtPeers {
        /// The torrent.
        torrent: TorrentId,
        /// How many.
        peers: usize,
    },
    /// Our address as the outside sees it changed (libtorrent's `external_ip_alert`): a
    /// tracker said so in its `external ip` (BEP24), or the DHT nodes' votes (BEP42's `ip`)
    /// elected it.
    ExternalAddress {
        /// The address.
        ip: IpAddr,
        /// Who told us.
        source: ExternalAddressSource,
    },
}

/// Where an [`Alert::ExternalAddress`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExternalAddressSource {
    /// A tracker's `external ip` (BEP24).
    Tracker,
    /// The votes of the DHT nodes that answered us.
    Dht,
}
