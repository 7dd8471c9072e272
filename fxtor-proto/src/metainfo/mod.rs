//! (in progress)
/// placeholder
pub struct TorrentInfo;
/// placeholder
pub struct FileStorage;
