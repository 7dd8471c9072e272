//! The session: many torrents, their peers and their disk work, as one sans-IO state machine.
//!
//! A driver (an adapter crate, or a simulator in tests) owns a [`Session`] and loops:
//!
//! 1. feed it what happened, each input with the current [`Instant`]:
//!    [`handle_incoming`](Session::handle_incoming), [`handle_connected`](Session::handle_connected),
//!    [`handle_connect_failed`](Session::handle_connect_failed), [`handle_received`](Session::handle_received),
//!    [`handle_sent`](Session::handle_sent), [`handle_closed`](Session::handle_closed),
//!    [`handle_disk`](Session::handle_disk), [`handle_timeout`](Session::handle_timeout),
//!    [`handle_http_response`](Session::handle_http_response),
//!    [`handle_resolved`](Session::handle_resolved), [`handle_datagram`](Session::handle_datagram),
//!    and the user's commands ([`add_torrent`](Session::add_torrent), [`pause`](Session::pause), …);
//! 2. drain its outputs until each is empty: [`poll_transmit`](Session::poll_transmit) (bytes
//!    for a connection), [`poll_action`](Session::poll_action) (connect, close, a disk job, an
//!    HTTP request, a name to resolve), [`poll_datagram`](Session::poll_datagram) (for the
//!    session's one UDP socket), [`poll_alert`](Session::poll_alert) (what the application
//!    sees);
//! 3. sleep until [`poll_timeout`](Session::poll_timeout) or the next input.
//!
//! The session never blocks, never reads a clock and does no I/O. Disk jobs
//! ([`DiskJob`]) are run by the driver on a blocking pool and their results come back
//! through [`handle_disk`](Session::handle_disk); a downloaded piece is verified there
//! ([`PieceCheck`](crate::verify::PieceCheck)) *before* it is written.
//!
//! # Behaviour in brief
//!
//! - Incoming connections are routed by the info-hash of their handshake (any identifier
//!   of a torrent, a hybrid's truncated v2 hash included); their first bytes stay in the
//!   driver's buffer until it is in. Connections are limited per session and per torrent,
//!   never duplicated per address or per peer id, and an address found to be our own is
//!   not dialled again. `x.pe` peers given as host names are left to the driver to resolve
//!   (and pass to [`Session::connect_peer`]).
//! - A torrent requests rarest-first (or by deadline, or in order) through its
//!   [`PiecePicker`](crate::picker::PiecePicker), holds at most about
//!   [`SessionConfig::max_piece_memory`] of piece data, keeps received blocks as the
//!   `Bytes` they arrived in, and hands a complete piece to the disk to be verified and
//!   written. A peer that sent a whole piece that fails is banned; peers that shared in
//!   failed pieces lose trust and are banned when it runs out.
//! - Uploads are read from disk on request, a bounded number of reads and of unsent bytes
//!   per peer at a time; up to [`SessionConfig::upload_slots`] interested peers are
//!   unchoked, the fastest first, one slot rotating.
//! - Each torrent announces to its trackers (BEP3, 12, 15, 23; a hybrid with both
//!   identifiers) while it may have peers: `started`, `completed` when its download
//!   finishes, `stopped` on pause, error and removal; peers from the answers join its peer list.
//!   HTTP requests and name resolution are the driver's (actions); UDP trackers run here
//!   over the session's datagrams. See `trackers` for the details.
//! - Each torrent keeps a bounded list of candidate peers ([`Session::add_peers`] with a
//!   [`PeerSource`]; peer exchange adds to it) and dials the best by BEP40 canonical
//!   priority while it has room, backing off from addresses that fail. Peer exchange
//!   (BEP11, off for private torrents and with [`SessionConfig::peer_exchange`] off) tells
//!   each peer whom else we are connected to at most once a minute, and `lt_donthave`
//!   withdraws a piece that cannot be read back from disk.
//! - With [`SessionConfig::dht`], the session runs a DHT node (BEP5) on the same UDP
//!   socket: active public torrents are looked up and announced, and their peers join the
//!   peer list.
//!   See `dht`.
//! - Randomness comes from [`SessionConfig::rng_seed`]: a run with the same inputs gives
//!   the same outputs.
//!
//! # Cost
//!
//! Per block received or served: a few ordered-map operations, no copy of its data.
//! Choosing peers to dial sorts the candidates (at most 4,000 per torrent); a full peer
//! list looks at every candidate to forget the worst.
//! Per verified piece: a `have` to every peer. [`Session::poll_timeout`] and
//! [`Session::handle_timeout`] look at every connection; [`Session::status`] and
//! [`Session::prioritize_files`] at every piece.

mod alert;
mod dht;
#[cfg(test)]
mod dht_tests;
mod disk;
#[cfg(test)]
mod metadata_tests;
mod params;
#[cfg(test)]
mod pex_tests;

mod shared;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
pub(crate) mod sim_tracker;
mod status;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod torrent;
mod trackers;
#[cfg(test)]
mod trackers_tests;

pub use alert::{Alert, ExternalAddressSource};
pub use dht::{
    DhtSettings, ANNOUNCE_INTERVAL as DHT_ANNOUNCE_INTERVAL, FEW_PEERS as DHT_FEW_PEERS,
    LOOKUP_INTERVAL as DHT_LOOKUP_INTERVAL,
    LOOKUP_INTERVAL_FEW_PEERS as DHT_LOOKUP_INTERVAL_FEW_PEERS,
    LOOKUP_RETRY_NO_PEERS as DHT_LOOKUP_RETRY_NO_PEERS,
};
pub use disk::{DiskCompletion, DiskJob, DiskJobId, DiskJobKind, DiskResult};
pub use params::{AddTorrentParams, SessionConfig, TorrentSource};
pub use status::{TorrentState, TorrentStatus};
pub use torrent::{PeerSource, PeerSources};
pub use trackers::{
    Datagram, DatagramKind, HttpRequestId, ResolveId, TrackerEntry, MAX_STOPPING, RESOLVE_CACHE_TTL,
};

use std::collections::BTreeMap;
use std::sync::Arc;

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::metainfo::TorrentInfo;
use crate::peer::PeerConfig;
use crate::time::Instant;
use crate::tracker::HttpResponse;
use crate::wire::Handshake;
use crate::InfoHashV1;
use shared::{Route, Shared};
use torrent::Torrent;

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
    /// Fetch `url` with an HTTP GET (a tracker announce or scrape), off the event loop, with
    /// a timeout and at most [`MAX_RESPONSE_SIZE`](crate::tracker::MAX_RESPONSE_SIZE) of
    /// body; report [`Session::handle_http_response`], failures included.
    HttpRequest {
        /// Names the request when it is reported.
        id: HttpRequestId,
        /// The complete URL, query included.
        url: String,
    },
    /// Resolve a host name (a UDP tracker's), off the event loop; report
    /// [`Session::handle_resolved`], failures included.
    Resolve {
        /// Names the request when it is reported.
        id: ResolveId,
        /// The host name.
        host: String,
        /// The port the addresses are for.
        port: u16,
    },
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
///
/// ```
/// use std::sync::Arc;
/// use fxtor_proto::create::TorrentBuilder;
/// use fxtor_proto::peer_id::PeerId;
/// use fxtor_proto::session::{
///     Action, AddTorrentParams, Alert, DiskJobKind, Session, SessionConfig, TorrentSource,
///     TorrentState,
/// };
/// use fxtor_proto::time::Instant;
/// use fxtor_proto::TorrentInfo;
///
/// let mut builder = TorrentBuilder::single_file("hello.txt", 5);
/// builder.set_piece_length(16384);
/// let mut hasher = builder.into_hasher().unwrap();
/// hasher.update(b"hello").unwrap();
/// let info = Arc::new(TorrentInfo::from_bytes(&hasher.finish().unwrap().bytes).unwrap());
///
/// let now = Instant::ZERO;
/// let mut session = Session::new(now, SessionConfig::new(PeerId::fxtor([7; 20])));
/// let torrent = session
///     .add_torrent(now, AddTorrentParams::new(TorrentSource::Info(info)))
///     .unwrap();
/// assert!(matches!(session.poll_alert(), Some(Alert::TorrentAdded { .. })));
///
/// // Without resume data the files are checked first: the driver hashes each piece.
/// let Some(Action::Disk(job)) = session.poll_action() else { panic!() };
/// assert!(matches!(job.kind, DiskJobKind::CheckPiece { .. }));
/// # let DiskJobKind::CheckPiece { piece, .. } = job.kind else { panic!() };
/// let result = fxtor_proto::session::DiskResult::Checked { piece, passed: true };
/// session.handle_disk(now, fxtor_proto::session::DiskCompletion { id: job.id, torrent, result });
/// assert_eq!(session.status(now, torrent).unwrap().state, TorrentState::Seeding);
/// ```
#[derive(Debug)]
pub struct Session {
    shared: Shared,
    torrents: BTreeMap<TorrentId, Torrent>,
    /// Every 20-byte identifier of every torrent (v1 and truncated v2 info-hashes).
    by_info_hash: BTreeMap<InfoHashV1, TorrentId>,
    next_torrent: u32,
    /// The time of the last [`handle_timeout`](Self::handle_timeout): no timeout is
    /// reported at or before it again, so a driver cannot spin.
    last_timeout: Option<Instant>,
}

/// How long an incoming connection has to send the info-hash of its handshake.
fn incoming_timeout() -> Duration {
    PeerConfig::default().handshake_timeout
}

#[allow(clippy::new_without_default)]
impl Session {
    /// A session with no torrents.
    pub fn new(now: Instant, config: SessionConfig) -> Self {
        let mut session = Self {
            shared: Shared::new(config),
            torrents: BTreeMap::new(),
            by_info_hash: BTreeMap::new(),
            next_torrent: 0,
            last_timeout: None,
        };
        session.start_dht(now);
        session
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
        self.route_learned();
        let info_hashes = match &params.source {
            TorrentSource::Info(info) => info.info_hashes(),
            TorrentSource::Magnet(link) => link.info_hashes(),
        };
        if info_hashes
            .identifiers()
            .any(|id| self.by_info_hash.contains_key(&id))
        {
            return Err(SessionError::DuplicateTorrent);
        }
        let id = TorrentId(self.next_torrent);
        let mut torrent = Torrent::new(now, id, params, &mut self.shared)?;
        // Resume data may have revealed more info-hashes (a hybrid added by a v1 link).
        let info_hashes = torrent.info_hashes();
        if info_hashes
            .identifiers()
            .any(|id| self.by_info_hash.contains_key(&id))
        {
            return Err(SessionError::DuplicateTorrent);
        }
        self.next_torrent += 1;
        for identifier in info_hashes.identifiers() {
            self.by_info_hash.insert(identifier, id);
        }
        self.shared.alert(Alert::TorrentAdded {
            torrent: id,
            info_hashes,
        });
        torrent.start(now, &mut self.shared);
        self.torrents.insert(id, torrent);
        Ok(id)
    }

    /// Removes a torrent: its connections are closed and its pending disk jobs forgotten.
    /// Deleting files is the driver's business (it knows the save path).
    pub fn remove_torrent(&mut self, now: Instant, torrent: TorrentId) -> Result<(), SessionError> {
        let mut removed = self
            .torrents
            .remove(&torrent)
            .ok_or(SessionError::UnknownTorrent(torrent))?;
        removed.remove(now, &mut self.shared);
        let stopping = removed.stop_trackers(now, &mut self.shared);
        self.shared.trackers.keep_stopping(torrent, stopping);
        self.by_info_hash.retain(|_, t| *t != torrent);
        self.shared.alert(Alert::TorrentRemoved { torrent });
        Ok(())
    }

    /// Pauses a torrent: its connections close; nothing is requested or served.
    pub fn pause(&mut self, now: Instant, torrent: TorrentId) -> Result<(), SessionError> {
        let (t, shared) = self.torrent_mut(torrent)?;
        t.pause(now, shared);
        Ok(())
    }

    /// Resumes a paused torrent.
    pub fn resume(&mut self, now: Instant, torrent: TorrentId) -> Result<(), SessionError> {
        let (t, shared) = self.torrent_mut(torrent)?;
        t.resume(now, shared);
        Ok(())
    }

    /// Connects to a peer for a torrent (yields an [`Action::Connect`] unless already
    /// connected to that address or over the connection limits).
    pub fn connect_peer(
        &mut self,
        now: Instant,
        torrent: TorrentId,
        addr: SocketAddr,
    ) -> Result<(), SessionError> {
        let (t, shared) = self.torrent_mut(torrent)?;
        t.connect(now, addr, shared);
        Ok(())
    }

    /// Adds peer addresses learnt from `source` (a tracker's reply, the DHT, the user) to
    /// a torrent's peer list. While the torrent runs and has room for connections, the
    /// best of its candidates by BEP40 priority are connected to ([`Action::Connect`]);
    /// the others wait for a free slot. Addresses already known gain the source.
    pub fn add_peers(
        &mut self,
        now: Instant,
        torrent: TorrentId,
        addrs: impl IntoIterator<Item = SocketAddr>,
        source: PeerSource,
    ) -> Result<(), SessionError> {
        let (t, shared) = self.torrent_mut(torrent)?;
        t.add_peers(now, addrs, source, shared);
        Ok(())
    }

    /// Asks for a piece by a deadline (streaming): it is requested before anything without
    /// one, earliest deadline first, and once its deadline is less than a second away (or
    /// past), its blocks still outstanding are asked of up to three peers that are not
    /// snubbed, the first copy to arrive cancelling the others.
    pub fn set_piece_deadline(
        &mut self,
        now: Instant,
        torrent: TorrentId,
        piece: crate::PieceIndex,
        deadline: Instant,
    ) -> Result<(), SessionError> {
        let (t, shared) = self.torrent_mut(torrent)?;
        t.set_piece_deadline(now, piece, deadline, shared)
    }

    /// Withdraws a piece's deadline.
    pub fn reset_piece_deadline(
        &mut self,
        now: Instant,
        torrent: TorrentId,
        piece: crate::PieceIndex,
    ) -> Result<(), SessionError> {
        let _ = now;
        let (t, _) = self.torrent_mut(torrent)?;
        t.reset_piece_deadline(piece)
    }

    /// Sets a piece's priority, 0 (skip) to 7 (top); 4 is the default.
    pub fn set_piece_priority(
        &mut self,
        now: Instant,
        torrent: TorrentId,
        piece: crate::PieceIndex,
        priority: u8,
    ) -> Result<(), SessionError> {
        let (t, shared) = self.torrent_mut(torrent)?;
        t.set_piece_priority(now, piece, priority, shared)
    }

    /// Sets every file's priority, 0 (skip) to 7 (top), in file order (pad files included
    /// or not: a list as long as the non-pad files is matched to them).
    pub fn prioritize_files(
        &mut self,
        now: Instant,
        torrent: TorrentId,
        priorities: &[u8],
    ) -> Result<(), SessionError> {
        let (t, shared) = self.torrent_mut(torrent)?;
        t.prioritize_files(now, priorities, shared)
    }

    /// Downloads pieces in order instead of rarest first.
    pub fn set_sequential(
        &mut self,
        now: Instant,
        torrent: TorrentId,
        sequential: bool,
    ) -> Result<(), SessionError> {
        let _ = now;
        let (t, _) = self.torrent_mut(torrent)?;
        t.set_sequential(sequential)
    }

    /// Re-hashes every piece on disk ([`TorrentState::CheckingFiles`]).
    pub fn force_recheck(&mut self, now: Instant, torrent: TorrentId) -> Result<(), SessionError> {
        let (t, shared) = self.torrent_mut(torrent)?;
        t.force_recheck(now, shared)
    }

    /// The torrent's resume data as it is now (bencoded; see [`crate::resume`]).
    pub fn save_resume_data(&self, torrent: TorrentId) -> Result<Bytes, SessionError> {
        let t = self
            .torrents
            .get(&torrent)
            .ok_or(SessionError::UnknownTorrent(torrent))?;
        Ok(t.resume_data().to_bytes())
    }

    /// The torrent's status.
    pub fn status(&self, now: Instant, torrent: TorrentId) -> Result<TorrentStatus, SessionError> {
        Ok(self.torrent(torrent)?.status(now))
    }

    /// Whether a piece is ours: verified and on disk (so it can be read).
    pub fn have_piece(
        &self,
        torrent: TorrentId,
        piece: crate::PieceIndex,
    ) -> Result<bool, SessionError> {
        self.torrent(torrent)?.have_piece(piece)
    }

    /// A piece's deadline ([`set_piece_deadline`](Self::set_piece_deadline)), to the
    /// millisecond, if it has one.
    pub fn piece_deadline(
        &self,
        torrent: TorrentId,
        piece: crate::PieceIndex,
    ) -> Result<Option<Instant>, SessionError> {
        self.torrent(torrent)?.piece_deadline(piece)
    }

    /// A piece's priority, 0 (skip) to 7.
    pub fn piece_priority(
        &self,
        torrent: TorrentId,
        piece: crate::PieceIndex,
    ) -> Result<u8, SessionError> {
        self.torrent(torrent)?.piece_priority(piece)
    }

    /// Announces a torrent to its trackers again as soon as their `min interval` allows.
    pub fn force_reannounce(
        &mut self,
        now: Instant,
        torrent: TorrentId,
    ) -> Result<(), SessionError> {
        let (t, shared) = self.torrent_mut(torrent)?;
        t.force_reannounce(now, shared);
        Ok(())
    }

    /// Asks a torrent's trackers for its swarm's figures (scrape, BEP48): an
    /// [`Alert::ScrapeReply`] or [`Alert::ScrapeFailed`] follows.
    pub fn scrape_tracker(&mut self, now: Instant, torrent: TorrentId) -> Result<(), SessionError> {
        let (t, shared) = self.torrent_mut(torrent)?;
        t.scrape_tracker(now, shared);
        Ok(())
    }

    /// A torrent's trackers, in tier order, and what each last said.
    pub fn trackers(&self, torrent: TorrentId) -> Result<Vec<TrackerEntry>, SessionError> {
        let t = self
            .torrents
            .get(&torrent)
            .ok_or(SessionError::UnknownTorrent(torrent))?;
        Ok(t.tracker_entries())
    }

    /// The driver is shutting down: every torrent announces `stopped` to its trackers (its
    /// state is unchanged). The driver may keep handling tracker answers for a short while,
    /// until [`has_tracker_requests`](Self::has_tracker_requests) says none is left.
    pub fn stop_announcing(&mut self, now: Instant) {
        for torrent in self.torrents.values_mut() {
            torrent.stop_announcing(now, &mut self.shared);
        }
    }

    /// Whether tracker requests are outstanding (a driver shutting down may wait a little
    /// for removed torrents' `stopped` announces).
    pub fn has_tracker_requests(&self) -> bool {
        !self.shared.trackers.is_idle()
    }

    /// The torrent's metadata, once known (from the start, or fetched from peers for a
    /// magnet link: see [`Alert::MetadataReceived`]).
    pub fn torrent_info(&self, torrent: TorrentId) -> Option<Arc<TorrentInfo>> {
        self.torrents.get(&torrent)?.info()
    }

    /// Whether the session holds `torrent`.
    pub fn contains_torrent(&self, torrent: TorrentId) -> bool {
        self.torrents.contains_key(&torrent)
    }

    /// The torrents in the session.
    pub fn torrents(&self) -> Vec<TorrentId> {
        self.torrents.keys().copied().collect()
    }

    /// Sets how a torrent answers metadata requests.
    #[cfg(test)]
    pub(crate) fn set_test_serving(&mut self, torrent: TorrentId, serving: torrent::TestServing) {
        if let Some(t) = self.torrents.get_mut(&torrent) {
            t.test_serving = serving;
        }
    }

    /// Sets how a torrent answers hash requests.
    #[cfg(test)]
    pub(crate) fn set_test_hash_serving(
        &mut self,
        torrent: TorrentId,
        serving: torrent::TestServing,
    ) {
        if let Some(t) = self.torrents.get_mut(&torrent) {
            t.test_hash_serving = serving;
        }
    }

    /// Routes the info-hashes torrents learnt from their metadata to them.
    fn route_learned(&mut self) {
        for id in std::mem::take(&mut self.shared.learned) {
            if let Some(torrent) = self.torrents.get(&id) {
                for identifier in torrent.info_hashes().identifiers() {
                    self.by_info_hash.entry(identifier).or_insert(id);
                }
            }
        }
    }

    fn torrent(&self, torrent: TorrentId) -> Result<&Torrent, SessionError> {
        self.torrents
            .get(&torrent)
            .ok_or(SessionError::UnknownTorrent(torrent))
    }

    fn torrent_mut(
        &mut self,
        torrent: TorrentId,
    ) -> Result<(&mut Torrent, &mut Shared), SessionError> {
        match self.torrents.get_mut(&torrent) {
            Some(t) => Ok((t, &mut self.shared)),
            None => Err(SessionError::UnknownTorrent(torrent)),
        }
    }

    /// The torrent of an attached connection.
    fn connection_torrent(&mut self, conn: ConnectionId) -> Option<(&mut Torrent, &mut Shared)> {
        match self.shared.routes.get(&conn) {
            Some(Route::Torrent(id)) => {
                let id = *id;
                let t = self.torrents.get_mut(&id)?;
                Some((t, &mut self.shared))
            }
            _ => None,
        }
    }

    // ----- inputs from the driver -----

    /// A connection was accepted from `addr`. The session routes it by the info-hash of its
    /// handshake once that arrives; it returns the id the driver must use for it, or `None`
    /// when it refuses the connection (over the limits): then close the socket.
    pub fn handle_incoming(&mut self, now: Instant, addr: SocketAddr) -> Option<ConnectionId> {
        if !self.shared.has_room() {
            return None;
        }
        let conn = self.shared.connection_id();
        self.shared.routes.insert(
            conn,
            Route::Incoming {
                addr,
                deadline: now + incoming_timeout(),
            },
        );
        Some(conn)
    }

    /// An outgoing connection from [`Action::Connect`] is established.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnectionId) {
        if let Some((t, shared)) = self.connection_torrent(conn) {
            t.handle_connected(now, conn, shared);
        }
    }

    /// An outgoing connection from [`Action::Connect`] failed.
    pub fn handle_connect_failed(&mut self, now: Instant, conn: ConnectionId) {
        let _ = now;
        if let Some((t, shared)) = self.connection_torrent(conn) {
            t.handle_connect_failed(now, conn, shared);
        }
    }

    /// Bytes arrived on a connection. The session takes whole messages off the front of
    /// `buf` and leaves a partial one in place for the next call, so the driver keeps one
    /// receive buffer per connection and appends to it.
    pub fn handle_received(&mut self, now: Instant, conn: ConnectionId, buf: &mut BytesMut) {
        match self.shared.routes.get(&conn) {
            Some(Route::Incoming { addr, .. }) => {
                let addr = *addr;
                self.route_incoming(now, conn, addr, buf);
            }
            Some(Route::Torrent(_)) => {
                if let Some((t, shared)) = self.connection_torrent(conn) {
                    t.handle_received(now, conn, buf, shared);
                }
            }
            None => {}
        }
    }

    /// Hands an incoming connection to the torrent its handshake names, once its first 48
    /// bytes are in (they stay in `buf` until then).
    fn route_incoming(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        addr: SocketAddr,
        buf: &mut BytesMut,
    ) {
        let info_hash = match Handshake::peek_info_hash(buf) {
            Ok(None) => return,
            Ok(Some(info_hash)) => info_hash,
            Err(error) => {
                self.refuse_incoming(
                    conn,
                    addr,
                    None,
                    format!("invalid data from the peer: {error}"),
                );
                return;
            }
        };
        self.route_learned();
        let Some(&id) = self.by_info_hash.get(&info_hash) else {
            self.refuse_incoming(
                conn,
                addr,
                None,
                format!("no torrent with info-hash {info_hash}"),
            );
            return;
        };
        let Some(torrent) = self.torrents.get_mut(&id) else {
            return;
        };
        match torrent.accept(now, conn, addr, &mut self.shared) {
            Ok(()) => torrent.handle_received(now, conn, buf, &mut self.shared),
            Err(reason) => self.refuse_incoming(conn, addr, Some(id), reason.to_owned()),
        }
    }

    fn refuse_incoming(
        &mut self,
        conn: ConnectionId,
        addr: SocketAddr,
        torrent: Option<TorrentId>,
        reason: String,
    ) {
        self.shared.routes.remove(&conn);
        self.shared.actions.push_back(Action::Close { conn });
        self.shared.alert(Alert::PeerDisconnected {
            torrent,
            conn,
            addr,
            reason,
        });
    }

    /// `bytes` handed out for a connection by [`poll_transmit`](Self::poll_transmit) were
    /// written to its socket. The session serves uploads only while little is unsent.
    pub fn handle_sent(&mut self, now: Instant, conn: ConnectionId, bytes: usize) {
        if let Some((t, shared)) = self.connection_torrent(conn) {
            t.handle_sent(now, conn, bytes, shared);
        }
    }

    /// A connection was closed by the peer or failed.
    pub fn handle_closed(&mut self, now: Instant, conn: ConnectionId) {
        match self.shared.routes.get(&conn) {
            Some(Route::Incoming { addr, .. }) => {
                let addr = *addr;
                self.shared.routes.remove(&conn);
                self.shared.alert(Alert::PeerDisconnected {
                    torrent: None,
                    conn,
                    addr,
                    reason: crate::peer::CloseReason::Disconnected.to_string(),
                });
            }
            Some(Route::Torrent(_)) => {
                if let Some((t, shared)) = self.connection_torrent(conn) {
                    t.handle_closed(now, conn, shared);
                }
            }
            None => {}
        }
    }

    /// A disk job finished.
    pub fn handle_disk(&mut self, now: Instant, completion: DiskCompletion) {
        if let Some(t) = self.torrents.get_mut(&completion.torrent) {
            t.handle_disk(now, completion, &mut self.shared);
        }
    }

    /// Time passed: call when [`poll_timeout`](Self::poll_timeout) is reached (calling
    /// early or late is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_timeout = Some(self.last_timeout.map_or(now, |t| t.max(now)));
        let expired: Vec<(ConnectionId, SocketAddr)> = self
            .shared
            .routes
            .iter()
            .filter_map(|(conn, route)| match route {
                Route::Incoming { addr, deadline } if *deadline <= now => Some((*conn, *addr)),
                _ => None,
            })
            .collect();
        for (conn, addr) in expired {
            self.refuse_incoming(
                conn,
                addr,
                None,
                crate::peer::CloseReason::HandshakeTimeout.to_string(),
            );
        }
        for torrent in self.torrents.values_mut() {
            torrent.handle_timeout(now, &mut self.shared);
        }
        self.shared.trackers.handle_timeout(now);
        self.deliver_udp_results(now);
        self.dht_timeout(now);
    }

    /// An [`Action::HttpRequest`] ended: the status and body (at most
    /// [`MAX_RESPONSE_SIZE`](crate::tracker::MAX_RESPONSE_SIZE) bytes), or why there was no
    /// answer.
    pub fn handle_http_response(
        &mut self,
        now: Instant,
        id: HttpRequestId,
        response: Result<HttpResponse<'_>, String>,
    ) {
        let Some(origin) = self.shared.trackers.take_http(id) else {
            return;
        };
        if let Some(t) = self.torrents.get_mut(&origin.torrent) {
            t.handle_tracker_http(now, origin.request, response, &mut self.shared);
        } else if let Some(stopping) = self.shared.trackers.stopping.get_mut(&origin.torrent) {
            stopping.handle_http(now, origin.request, response);
            self.shared.trackers.settle_stopping(origin.torrent);
        }
    }

    /// An [`Action::Resolve`] ended: the host's addresses, or why there are none.
    pub fn handle_resolved(
        &mut self,
        now: Instant,
        id: ResolveId,
        result: Result<Vec<SocketAddr>, String>,
    ) {
        if self.dht_resolved(now, id, &result) {
            return;
        }
        self.shared.trackers.handle_resolved(now, id, result);
        self.deliver_udp_results(now);
    }

    /// A datagram arrived on the session's UDP socket. An IPv4-mapped IPv6 sender (a
    /// dual-stack socket) is taken as the IPv4 address it maps.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let from = match from {
            SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
                Some(v4) => SocketAddr::new(v4.into(), v6.port()),
                None => from,
            },
            SocketAddr::V4(_) => from,
        };
        match self.shared.trackers.classify(from, data) {
            DatagramKind::Tracker => {
                self.shared
                    .trackers
                    .handle_tracker_datagram(now, from, data);
                self.deliver_udp_results(now);
            }
            DatagramKind::Dht => self.handle_dht_datagram(now, from, data),
            DatagramKind::Unknown => {}
        }
    }

    /// Hands finished UDP tracker requests to their announcers.
    fn deliver_udp_results(&mut self, now: Instant) {
        while let Some((origin, result)) = self.shared.trackers.poll_result() {
            if let Some(t) = self.torrents.get_mut(&origin.torrent) {
                t.handle_tracker_udp(now, origin.request, result, &mut self.shared);
            } else if let Some(stopping) = self.shared.trackers.stopping.get_mut(&origin.torrent) {
                stopping.handle_udp(now, origin.request, result);
                self.shared.trackers.settle_stopping(origin.torrent);
            }
        }
    }

    // ----- outputs -----

    /// The next bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.shared.transmits.pop_front()
    }

    /// The next thing to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.shared.actions.pop_front()
    }

    /// The next datagram to send from the session's UDP socket.
    pub fn poll_datagram(&mut self) -> Option<Datagram> {
        self.shared
            .trackers
            .poll_datagram()
            .or_else(|| self.poll_dht_datagram())
    }

    /// The next alert for the application.
    pub fn poll_alert(&mut self) -> Option<Alert> {
        self.shared.alerts.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let incoming = self
            .shared
            .routes
            .values()
            .filter_map(|route| match route {
                Route::Incoming { deadline, .. } => Some(*deadline),
                Route::Torrent(_) => None,
            })
            .min();
        let torrents = self
            .torrents
            .values()
            .filter_map(Torrent::poll_timeout)
            .min();
        let trackers = self.shared.trackers.poll_timeout();
        let dht = self.dht_poll_timeout();
        let next = [incoming, torrents, trackers, dht]
            .into_iter()
            .flatten()
            .min()?;
        // What is due at or before the last timeout was handled then; anything still
        // reported there comes back a millisecond later rather than at once.
        Some(match self.last_timeout {
            Some(last) if next <= last => last + Duration::from_millis(1),
            _ => next,
        })
    }
}
