//! The error of an adapter's session and its torrents.

use fxtor_proto::session::SessionError;

/// Why a session or torrent operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The core refused the command (unknown torrent, duplicate, bad resume data…).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The input is malformed (a .torrent, a magnet link).
    #[error("{0}")]
    Invalid(String),
    /// An operating-system operation failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The torrent stopped on an error (a disk write failed, say).
    #[error("the torrent stopped: {0}")]
    Torrent(String),
    /// The session has shut down: no more commands.
    #[error("the session has shut down")]
    Shutdown,
}
