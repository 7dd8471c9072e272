//! The session: many torrents, their peers and their disk work, as one sans-IO state machine.
//!
//! A driver (an adapter crate, or a simulator in tests) owns a [`Session`] and loops:
//!
//! 1. feed it what happened, each input with the current [`Instant`]:
//!    [`handle_incoming`](Session::handle_incoming), [`handle_connected`](Session::handle_connected),
//!    [`handle_connect_failed`](Session::handle_connect_failed), [`handle_received`](Session::handle_received),
//!    [`handle_sent`](Session::handle_sent), [`handle_closed`](Session::handle_closed),
//!    [`handle_disk`](Session::handle_disk), [`handle_timeout`](Session::handle_timeout), and the
//!    user's commands ([`add_torrent`](Session::add_torrent), [`pause`](Session::pause), …);
//! 2. drain its outputs until each is empty: [`poll_transmit`](Session::poll_transmit) (bytes
//!    for a connection), [`poll_action`](Session::poll_action) (connect, close, a disk job),
//!    [`poll_alert`](Session::poll_alert) (what the application sees);
//! 3. sleep until [`poll_timeout`](Session::poll_timeout) or the next input.
//!
//! The session never blocks, never reads a clock and does no I/O. Disk jobs
//! ([`DiskJob`]) are run by the driver on a blocking pool and their results come back
//! through [`handle_disk`](Session::handle_disk); a downloaded piece is verified there
//! ([`PieceCheck`](crate::verify::PieceCheck)) *before* it is written.

mod alert;
mod disk;
mod params;
mod status;

pub use alert::Alert;
pub use disk::{DiskCompletion, DiskJob, DiskJobId, DiskJobKind, DiskResult};
pub use params::{AddTorrentParams, SessionConfig, TorrentSource};
pub use status::{TorrentState, TorrentStatus};

use core::fmt;
use core::net::SocketAddr;

use bytes::{Bytes, BytesMut};

use crate::time::Instant;

/// A torrent in a session: a small number, never reused within the session.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct TorrentId(pub u32);

/// A peer connection (a TCP stream) in a session: never reused within the session.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct ConnectionId(pub u64);

impl fmt::Display for TorrentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "torrent {}", self.0)
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection {}", self.0)
    }
}

/// Bytes to send on a connection, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The connection.
    pub conn: ConnectionId,
    /// The bytes (a piece's data is handed out as its own `Bytes`, never copied).
    pub data: Bytes,
}

/// Something the driver must do for the session.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Open a TCP connection to `addr`; report [`Session::handle_connected`] or
    /// [`Session::handle_connect_failed`].
    Connect {
        /// The id the session gave the connection.
        conn: ConnectionId,
        /// Where to connect.
        addr: SocketAddr,
    },
    /// Close a connection (after sending what was already handed out for it, if possible).
    /// The session has forgotten it: do not report it closed.
    Close {
        /// The connection.
        conn: ConnectionId,
    },
    /// Run a disk job on a blocking pool and report its result with
    /// [`Session::handle_disk`].
    Disk(DiskJob),
}

/// Why a torrent could not be added or a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// A torrent with one of these info-hashes is already in the session.
    #[error("the torrent is already in the session")]
    DuplicateTorrent,
    /// No torrent has this id (it was removed, or never added).
    #[error("no such torrent: {0}")]
    UnknownTorrent(TorrentId),
    /// The resume data does not belong to this torrent or is malformed.
    #[error("invalid resume data: {0}")]
    InvalidResumeData(String),
    /// A piece or file index past the torrent's end.
    #[error("index out of range")]
    OutOfRange,
    /// The command needs the torrent's metadata, which it does not have yet.
    #[error("the torrent's metadata is not known yet")]
    NoMetadata,
}

/// The session state machine. See the [module documentation](self).
#[derive(Debug)]
pub struct Session {
    _private: (),
}

#[allow(unused_variables, clippy::new_without_default)]
impl Session {
    /// A session with no torrents.
    pub fn new(now: Instant, config: SessionConfig) -> Self {
        Self { _private: () }
    }

    // ----- commands -----

    /// Adds a torrent. With resume data the session trusts it (no re-hash); without it, a
    /// torrent whose files may exist is checked first ([`TorrentState::CheckingFiles`]),
    /// unless [`AddTorrentParams::skip_check`] says the files are known to be absent.
    pub fn add_torrent(
        &mut self,
        now: Instant,
        params: AddTorrentParams,
    ) -> Result<TorrentId, SessionError> {
        Err(SessionError::NoMetadata)
    }

    /// Removes a torrent: its connections are closed and its pending disk jobs forgotten.
    /// Deleting files is the driver's business (it knows the save path).
    pub fn remove_torrent(&mut self, now: Instant, torrent: TorrentId) -> Result<(), SessionError> {
        Err(SessionError::UnknownTorrent(torrent))
    }

    /// Pauses a torrent: its connections close; nothing is requested or served.
    pub fn pause(&mut self, now: Instant, torrent: TorrentId) -> Result<(), SessionError> {
        Err(SessionError::UnknownTorrent(torrent))
    }

    /// Resumes a paused torrent.
    pub fn resume(&mut self, now: Instant, torrent: TorrentId) -> Result<(), SessionError> {
        Err(SessionError::UnknownTorrent(torrent))
    }

    /// Connects to a peer for a torrent (yields an [`Action::Connect`] unless already
    /// connected to that address or over the connection limits).
    pub fn connect_peer(
        &mut self,
        now: Instant,
        torrent: TorrentId,
        addr: SocketAddr,
    ) -> Result<(), SessionError> {
        Err(SessionError::UnknownTorrent(torrent))
    }

    /// Asks for a piece by a deadline (streaming): it is requested before anything without
    /// one, earliest deadline first, and from several peers once the deadline is near.
    pub fn set_piece_deadline(
        &mut self,
        now: Instant,
        torrent: TorrentId,
        piece: crate::PieceIndex,
        deadline: Instant,
    ) -> Result<(), SessionError> {
        Err(SessionError::UnknownTorrent(torrent))
    }

    /// Withdraws a piece's deadline.
    pub fn reset_piece_deadline(
        &mut self,
        now: Instant,
        torrent: TorrentId,
        piece: crate::PieceIndex,
    ) -> Result<(), SessionError> {
        Err(SessionError::UnknownTorrent(torrent))
    }

    /// Sets a piece's priority, 0 (skip) to 7 (top); 4 is the default.
    pub fn set_piece_priority(
        &mut self,
        now: Instant,
        torrent: TorrentId,
        piece: crate::PieceIndex,
        priority: u8,
    ) -> Result<(), SessionError> {
        Err(SessionError::UnknownTorrent(torrent))
    }

    /// Sets every file's priority, 0 (skip) to 7 (top), in file order (pad files included
    /// or not: a list as long as the non-pad files is matched to them).
    pub fn prioritize_files(
        &mut self,
        now: Instant,
        torrent: TorrentId,
        priorities: &[u8],
    ) -> Result<(), SessionError> {
        Err(SessionError::UnknownTorrent(torrent))
    }

    /// Downloads pieces in order instead of rarest first.
    pub fn set_sequential(
        &mut self,
        now: Instant,
        torrent: TorrentId,
        sequential: bool,
    ) -> Result<(), SessionError> {
        Err(SessionError::UnknownTorrent(torrent))
    }

    /// Re-hashes every piece on disk ([`TorrentState::CheckingFiles`]).
    pub fn force_recheck(&mut self, now: Instant, torrent: TorrentId) -> Result<(), SessionError> {
        Err(SessionError::UnknownTorrent(torrent))
    }

    /// The torrent's resume data as it is now (bencoded; see [`crate::resume`]).
    pub fn save_resume_data(&self, torrent: TorrentId) -> Result<Bytes, SessionError> {
        Err(SessionError::UnknownTorrent(torrent))
    }

    /// The torrent's status.
    pub fn status(&self, now: Instant, torrent: TorrentId) -> Result<TorrentStatus, SessionError> {
        Err(SessionError::UnknownTorrent(torrent))
    }

    /// The torrents in the session.
    pub fn torrents(&self) -> Vec<TorrentId> {
        Vec::new()
    }

    // ----- inputs from the driver -----

    /// A connection was accepted from `addr`. The session routes it by the info-hash of its
    /// handshake once that arrives; it returns the id the driver must use for it, or `None`
    /// when it refuses the connection (over the limits): then close the socket.
    pub fn handle_incoming(&mut self, now: Instant, addr: SocketAddr) -> Option<ConnectionId> {
        None
    }

    /// An outgoing connection from [`Action::Connect`] is established.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnectionId) {}

    /// An outgoing connection from [`Action::Connect`] failed.
    pub fn handle_connect_failed(&mut self, now: Instant, conn: ConnectionId) {}

    /// Bytes arrived on a connection. The session takes whole messages off the front of
    /// `buf` and leaves a partial one in place for the next call, so the driver keeps one
    /// receive buffer per connection and appends to it.
    pub fn handle_received(&mut self, now: Instant, conn: ConnectionId, buf: &mut BytesMut) {}

    /// `bytes` handed out for a connection by [`poll_transmit`](Self::poll_transmit) were
    /// written to its socket. The session serves uploads only while little is unsent.
    pub fn handle_sent(&mut self, now: Instant, conn: ConnectionId, bytes: usize) {}

    /// A connection was closed by the peer or failed.
    pub fn handle_closed(&mut self, now: Instant, conn: ConnectionId) {}

    /// A disk job finished.
    pub fn handle_disk(&mut self, now: Instant, completion: DiskCompletion) {}

    /// Time passed: call when [`poll_timeout`](Self::poll_timeout) is reached (calling
    /// early or late is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {}

    // ----- outputs -----

    /// The next bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        None
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        None
    }

    /// The next alert for the application.
    pub fn poll_alert(&mut self) -> Option<Alert> {
        None
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }
}
