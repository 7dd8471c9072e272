use crate::InfoHashes;

/// Where a torrent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TorrentState {
    /// Hashing the files on disk to learn which pieces are there.
    CheckingFiles,
    /// Fetching the info dictionary from peers (a magnet link).
    DownloadingMetadata,
    /// Downloading.
    Downloading,
    /// Every wanted piece is there (some files were skipped by priority).
    Finished,
    /// Every piece is there; uploading.
    Seeding,
    /// Paused by the user.
    Paused,
    /// Stopped on an error (see [`TorrentStatus::error`]).
    Error,
}

/// A torrent's state and numbers, at one moment (libtorrent's `torrent_status`).
#[derive(Debug, Clone, PartialEq)]
pub struct TorrentStatus {
    /// Its info-hashes.
    pub info_hashes: InfoHashes,
    /// Its name, once the metadata is known.
    pub name: Option<String>,
    /// Its state.
    pub state: TorrentState,
    /// The fraction of wanted bytes we have, 0.0 to 1.0.
    pub progress: f64,
    /// Pieces we have.
    pub num_have: u32,
    /// Pieces in the torrent (0 before the metadata is known).
    pub num_pieces: u32,
    /// Bytes of wanted pieces in total.
    pub total_wanted: u64,
    /// Bytes of wanted pieces we have.
    pub total_wanted_done: u64,
    /// Payload bytes downloaded since the torrent was added to this session.
    pub total_downloaded: u64,
    /// Payload bytes uploaded since the torrent was added to this session.
    pub total_uploaded: u64,
    /// Payload bytes downloaded in all sessions (carried in the resume data).
    pub all_time_downloaded: u64,
    /// Payload bytes uploaded in all sessions (carried in the resume data).
    pub all_time_uploaded: u64,
    /// Download rate, payload bytes per second.
    pub download_rate: u64,
    /// Upload rate, payload bytes per second.
    pub upload_rate: u64,
    /// Connected peers (handshake done).
    pub num_peers: u32,
    /// Of which seeds.
    pub num_seeds: u32,
    /// The error that stopped it, if any.
    pub error: Option<String>,
}
