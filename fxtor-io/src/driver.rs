//! The event loop's logic, free of any runtime.
//!
//! A [`Driver`] owns the core [`Session`] and the bookkeeping every adapter needs around
//! it: which connections are open or still connecting, one receive buffer per connection,
//! bytes held for a connection until it is established, disk jobs queued behind a bound on
//! how many run at once, and each torrent's [`Storage`]. It turns the core's outputs into
//! [`Effect`]s: things only the adapter can do (open a socket, queue bytes on a writer, run
//! a job on the blocking pool, publish an alert).
//!
//! An adapter's loop is then:
//!
//! ```text
//! loop {
//!     while let Some(effect) = driver.poll_effect() { carry it out }
//!     wait for: a command, an accepted socket, bytes read, bytes written, a closed socket,
//!               a connect result, a finished disk job, or driver.poll_timeout()
//!     report it: driver.incoming / received / sent / closed / connected / connect_failed /
//!                disk_done / timeout, or run the command on driver
//! }
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fxtor_proto::metainfo::TorrentInfo;
use fxtor_proto::session::{
    Action, Alert, ConnectionId, Datagram, DiskCompletion, DiskJob, HttpRequestId, ResolveId,
    Session, SessionConfig, SessionError, TorrentId, TorrentSource, Transmit,
};
use fxtor_proto::time::Instant;
use fxtor_proto::tracker::HttpResponse;
use fxtor_proto::PieceIndex;

use crate::params::AddTorrentParams;
use crate::registry::StorageRegistry;
use crate::storage::Storage;

/// What the driver needs of the core: its I/O inputs and outputs. [`Session`] is the real
/// one; tests drive the bookkeeping with scripted fakes.
pub trait Core {
    /// See [`Session::handle_incoming`].
    fn handle_incoming(&mut self, now: Instant, addr: SocketAddr) -> Option<ConnectionId>;
    /// See [`Session::handle_connected`].
    fn handle_connected(&mut self, now: Instant, conn: ConnectionId);
    /// See [`Session::handle_connect_failed`].
    fn handle_connect_failed(&mut self, now: Instant, conn: ConnectionId);
    /// See [`Session::handle_received`].
    fn handle_received(&mut self, now: Instant, conn: ConnectionId, buf: &mut BytesMut);
    /// See [`Session::handle_sent`].
    fn handle_sent(&mut self, now: Instant, conn: ConnectionId, bytes: usize);
    /// See [`Session::handle_closed`].
    fn handle_closed(&mut self, now: Instant, conn: ConnectionId);
    /// See [`Session::handle_disk`].
    fn handle_disk(&mut self, now: Instant, completion: DiskCompletion);
    /// See [`Session::handle_timeout`].
    fn handle_timeout(&mut self, now: Instant);
    /// See [`Session::poll_transmit`].
    fn poll_transmit(&mut self) -> Option<Transmit>;
    /// See [`Session::poll_action`].
    fn poll_action(&mut self) -> Option<Action>;
    /// See [`Session::poll_alert`].
    fn poll_alert(&mut self) -> Option<Alert>;
    /// See [`Session::poll_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;
    /// See [`Session::torrent_info`]; cores without metadata exchange know nothing more
    /// than what the torrent was added with.
    fn torrent_info(&self, _torrent: TorrentId) -> Option<Arc<TorrentInfo>> {
        None
    }
    /// See [`Session::handle_http_response`].
    fn handle_http_response(
        &mut self,
        _now: Instant,
        _id: HttpRequestId,
        _response: Result<HttpResponse<'_>, String>,
    ) {
    }
    /// See [`Session::handle_resolved`].
    fn handle_resolved(
        &mut self,
        _now: Instant,
        _id: ResolveId,
        _result: Result<Vec<SocketAddr>, String>,
    ) {
    }
    /// See [`Session::handle_datagram`].
    fn handle_datagram(&mut self, _now: Instant, _from: SocketAddr, _data: &[u8]) {}
    /// See [`Session::poll_datagram`].
    fn poll_datagram(&mut self) -> Option<Datagram> {
        None
    }
    /// See [`Session::stop_announcing`].
    fn stop_announcing(&mut self, _now: Instant) {}
    /// See [`Session::has_tracker_requests`].
    fn has_tracker_requests(&self) -> bool {
        false
    }
}

impl Core for Session {
    fn handle_incoming(&mut self, now: Instant, addr: SocketAddr) -> Option<ConnectionId> {
        Session::handle_incoming(self, now, addr)
    }
    fn handle_connected(&mut self, now: Instant, conn: ConnectionId) {
        Session::handle_connected(self, now, conn)
    }
    fn handle_connect_failed(&mut self, now: Instant, conn: ConnectionId) {
        Session::handle_connect_failed(self, now, conn)
    }
    fn handle_received(&mut self, now: Instant, conn: ConnectionId, buf: &mut BytesMut) {
        Session::handle_received(self, now, conn, buf)
    }
    fn handle_sent(&mut self, now: Instant, conn: ConnectionId, bytes: usize) {
        Session::handle_sent(self, now, conn, bytes)
    }
    fn handle_closed(&mut self, now: Instant, conn: ConnectionId) {
        Session::handle_closed(self, now, conn)
    }
    fn handle_disk(&mut self, now: Instant, completion: DiskCompletion) {
        Session::handle_disk(self, now, completion)
    }
    fn handle_timeout(&mut self, now: Instant) {
        Session::handle_timeout(self, now)
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        Session::poll_transmit(self)
    }
    fn poll_action(&mut self) -> Option<Action> {
        Session::poll_action(self)
    }
    fn poll_alert(&mut self) -> Option<Alert> {
        Session::poll_alert(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Session::poll_timeout(self)
    }
    fn torrent_info(&self, torrent: TorrentId) -> Option<Arc<TorrentInfo>> {
        Session::torrent_info(self, torrent)
    }
    fn handle_http_response(
        &mut self,
        now: Instant,
        id: HttpRequestId,
        response: Result<HttpResponse<'_>, String>,
    ) {
        Session::handle_http_response(self, now, id, response)
    }
    fn handle_resolved(
        &mut self,
        now: Instant,
        id: ResolveId,
        result: Result<Vec<SocketAddr>, String>,
    ) {
        Session::handle_resolved(self, now, id, result)
    }
    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        Session::handle_datagram(self, now, from, data)
    }
    fn poll_datagram(&mut self) -> Option<Datagram> {
        Session::poll_datagram(self)
    }
    fn stop_announcing(&mut self, now: Instant) {
        Session::stop_announcing(self, now)
    }
    fn has_tracker_requests(&self) -> bool {
        Session::has_tracker_requests(self)
    }
}

/// Something only the adapter can do, in the order the driver hands them out.
#[derive(Debug)]
pub enum Effect {
    /// Open a TCP connection (with the connect timeout); report
    /// [`Driver::connected`] or [`Driver::connect_failed`].
    Connect {
        /// The connection's id.
        conn: ConnectionId,
        /// Where to.
        addr: SocketAddr,
    },
    /// Queue bytes on the connection's writer; report [`Driver::sent`] as they are written.
    Send {
        /// The connection.
        conn: ConnectionId,
        /// The bytes.
        data: Bytes,
    },
    /// Close the connection once what is queued for it is written (or at once if it was
    /// still connecting). Do not report it closed: the driver has forgotten it.
    Close {
        /// The connection.
        conn: ConnectionId,
    },
    /// Run [`crate::disk::run_job`] on the blocking pool; report [`Driver::disk_done`].
    Disk {
        /// The torrent's files.
        storage: Arc<Storage>,
        /// The job.
        job: DiskJob,
    },
    /// Delete a removed torrent's files on the blocking pool ([`Storage::delete_files`]);
    /// handed out only once no job of that torrent is running.
    DeleteFiles {
        /// The torrent's files.
        storage: Arc<Storage>,
    },
    /// Publish an alert to the application.
    Alert(Alert),
    /// Run an HTTP GET off the event loop ([`crate::http::HttpClient`]); report
    /// [`Driver::http_response`], failures included.
    HttpRequest {
        /// Names the request.
        id: HttpRequestId,
        /// The URL.
        url: String,
    },
    /// Resolve a host name off the event loop; report [`Driver::resolved`].
    Resolve {
        /// Names the request.
        id: ResolveId,
        /// The host.
        host: String,
        /// The port the addresses are for.
        port: u16,
    },
    /// Send a datagram from the session's UDP socket (dropped if there is none).
    SendDatagram(Datagram),
}

/// The state of one connection as the driver sees it.
#[derive(Debug)]
struct Conn {
    /// Established (accepted, or connected).
    open: bool,
    /// Received bytes the core has not consumed (a partial message).
    recv: BytesMut,
    /// Bytes handed out before the connection was established, in order.
    held: Vec<Bytes>,
}

/// The runtime-agnostic half of an adapter's event loop. See the [module docs](self).
#[derive(Debug)]
pub struct Driver<C = Session> {
    core: C,
    storages: StorageRegistry,
    conns: HashMap<ConnectionId, Conn>,
    disk_queue: VecDeque<DiskJob>,
    disk_running: HashMap<TorrentId, usize>,
    disk_in_flight: usize,
    max_disk_jobs: usize,
    pending_deletes: Vec<(TorrentId, Arc<Storage>)>,
    effects: VecDeque<Effect>,
    /// The time of the latest input, for what the driver reports on its own.
    now: Instant,
}

impl<C: Core> Driver<C> {
    /// A driver around `core`, running at most `max_disk_jobs` disk jobs at once (at least 1).
    pub fn new(core: C, max_disk_jobs: usize) -> Self {
        Self {
            core,
            storages: StorageRegistry::new(),
            conns: HashMap::new(),
            disk_queue: VecDeque::new(),
            disk_running: HashMap::new(),
            disk_in_flight: 0,
            max_disk_jobs: max_disk_jobs.max(1),
            pending_deletes: Vec::new(),
            effects: VecDeque::new(),
            now: Instant::ZERO,
        }
    }

    /// The core.
    pub fn core(&self) -> &C {
        &self.core
    }

    /// The core, for commands; drain [`poll_effect`](Self::poll_effect) afterwards.
    pub fn core_mut(&mut self) -> &mut C {
        &mut self.core
    }

    /// The torrents' storages.
    pub fn storages(&self) -> &StorageRegistry {
        &self.storages
    }

    /// The torrents' storages, to register one.
    pub fn storages_mut(&mut self) -> &mut StorageRegistry {
        &mut self.storages
    }

    /// The time of the latest input the driver saw.
    pub fn last_input(&self) -> Instant {
        self.now
    }

    /// Records the time of an input.
    fn at(&mut self, now: Instant) -> Instant {
        self.now = self.now.max(now);
        now
    }

    /// A connection was accepted from `addr`. `Some(id)`: keep the socket under this id;
    /// `None`: the core refuses it, drop the socket.
    pub fn incoming(&mut self, now: Instant, addr: SocketAddr) -> Option<ConnectionId> {
        let now = self.at(now);
        let conn = self.core.handle_incoming(now, addr)?;
        self.conns.insert(
            conn,
            Conn {
                open: true,
                recv: BytesMut::new(),
                held: Vec::new(),
            },
        );
        Some(conn)
    }

    /// An outgoing connection is established. `true`: keep the socket (and send what
    /// [`poll_effect`](Self::poll_effect) hands out for it); `false`: the core gave up on it
    /// meanwhile, drop the socket.
    pub fn connected(&mut self, now: Instant, conn: ConnectionId) -> bool {
        let now = self.at(now);
        let Some(state) = self.conns.get_mut(&conn).filter(|c| !c.open) else {
            return false;
        };
        state.open = true;
        for data in std::mem::take(&mut state.held) {
            self.effects.push_back(Effect::Send { conn, data });
        }
        self.core.handle_connected(now, conn);
        true
    }

    /// An outgoing connection failed (refused, timed out).
    pub fn connect_failed(&mut self, now: Instant, conn: ConnectionId) {
        let now = self.at(now);
        if self.conns.remove(&conn).is_some() {
            self.core.handle_connect_failed(now, conn);
        }
    }

    /// Bytes were read from a connection.
    pub fn received(&mut self, now: Instant, conn: ConnectionId, data: BytesMut) {
        let now = self.at(now);
        let Some(state) = self.conns.get_mut(&conn).filter(|c| c.open) else {
            return;
        };
        // A reader hands out reads that sit side by side in its buffer, so a message cut
        // between two reads is joined without a copy.
        let joined_in_place = if state.recv.is_empty() {
            state.recv = data;
            Ok(())
        } else {
            state.recv.try_unsplit(data)
        };
        match joined_in_place {
            Ok(()) => self.core.handle_received(now, conn, &mut state.recv),
            Err(data) => {
                // The reader moved on to a new buffer: join the two by copying, then keep
                // what is left over as a slice of the reader's buffer rather than of the
                // copy, so the next read joins it for free again.
                let mut joined = BytesMut::with_capacity(state.recv.len() + data.len());
                joined.extend_from_slice(&state.recv);
                joined.extend_from_slice(&data);
                self.core.handle_received(now, conn, &mut joined);
                state.recv = match data.len().checked_sub(joined.len()) {
                    Some(at) => {
                        let mut data = data;
                        data.split_off(at)
                    }
                    None => joined,
                };
            }
        }
    }

    /// `bytes` queued for a connection were written to its socket.
    pub fn sent(&mut self, now: Instant, conn: ConnectionId, bytes: usize) {
        let now = self.at(now);
        if self.conns.get(&conn).is_some_and(|c| c.open) {
            self.core.handle_sent(now, conn, bytes);
        }
    }

    /// A connection was closed by the peer or failed (reading or writing).
    pub fn closed(&mut self, now: Instant, conn: ConnectionId) {
        let now = self.at(now);
        if self.conns.remove(&conn).is_some() {
            self.core.handle_closed(now, conn);
        }
    }

    /// A disk job handed out as [`Effect::Disk`] finished.
    pub fn disk_done(&mut self, now: Instant, completion: DiskCompletion) {
        let now = self.at(now);
        self.disk_in_flight = self.disk_in_flight.saturating_sub(1);
        if let Some(running) = self.disk_running.get_mut(&completion.torrent) {
            *running -= 1;
            if *running == 0 {
                self.disk_running.remove(&completion.torrent);
            }
        }
        self.release_deletes();
        self.core.handle_disk(now, completion);
    }

    /// An [`Effect::HttpRequest`] ended: status and body, or why there was no answer.
    pub fn http_response(
        &mut self,
        now: Instant,
        id: HttpRequestId,
        response: Result<(u16, Vec<u8>), String>,
    ) {
        let now = self.at(now);
        let response = match &response {
            Ok((status, body)) => Ok(HttpResponse {
                status: *status,
                body,
            }),
            Err(e) => Err(e.clone()),
        };
        self.core.handle_http_response(now, id, response);
    }

    /// An [`Effect::Resolve`] ended.
    pub fn resolved(
        &mut self,
        now: Instant,
        id: ResolveId,
        result: Result<Vec<SocketAddr>, String>,
    ) {
        let now = self.at(now);
        self.core.handle_resolved(now, id, result);
    }

    /// A datagram arrived on the session's UDP socket.
    pub fn datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let now = self.at(now);
        self.core.handle_datagram(now, from, data);
    }

    /// Shutting down: the torrents announce `stopped`. Keep handling tracker answers while
    /// [`has_tracker_requests`](Self::has_tracker_requests), for a bounded time.
    pub fn stop_announcing(&mut self, now: Instant) {
        let now = self.at(now);
        self.core.stop_announcing(now);
    }

    /// Whether tracker requests are outstanding.
    pub fn has_tracker_requests(&self) -> bool {
        self.core.has_tracker_requests()
    }

    /// The time from [`poll_timeout`](Self::poll_timeout) was reached.
    pub fn timeout(&mut self, now: Instant) {
        let now = self.at(now);
        self.core.handle_timeout(now);
    }

    /// When [`timeout`](Self::timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// The next thing to do; call until `None` after every input.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        loop {
            if let Some(effect) = self.effects.pop_front() {
                return Some(effect);
            }
            if !self.pump() {
                return None;
            }
        }
    }

    /// Disk jobs running on the blocking pool.
    pub fn disk_in_flight(&self) -> usize {
        self.disk_in_flight
    }

    /// Connections the driver knows (open or connecting).
    pub fn connections(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.conns.keys().copied()
    }

    /// Forgets a torrent's storage (after the core removed it): queued jobs are dropped and,
    /// with `delete_files`, an [`Effect::DeleteFiles`] follows once its running jobs end.
    pub fn forget_torrent(&mut self, torrent: TorrentId, delete_files: bool) {
        self.disk_queue.retain(|job| job.torrent != torrent);
        if let Some(storage) = self.storages.remove(torrent) {
            if delete_files {
                self.pending_deletes.push((torrent, storage));
                self.release_deletes();
            }
        }
    }

    /// Stops everything: every connection is forgotten (the adapter closes them all) and
    /// queued disk jobs are dropped. Jobs already running still finish: an adapter waits for
    /// [`disk_in_flight`](Self::disk_in_flight) to reach zero before it exits, so every
    /// verified piece is on disk.
    pub fn shutdown(&mut self) -> Vec<ConnectionId> {
        self.disk_queue.clear();
        self.effects.clear();
        self.conns.drain().map(|(conn, _)| conn).collect()
    }

    fn release_deletes(&mut self) {
        let running = &self.disk_running;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_deletes)
            .into_iter()
            .partition(|(torrent, _)| !running.contains_key(torrent));
        self.pending_deletes = waiting;
        for (_, storage) in ready {
            self.effects.push_back(Effect::DeleteFiles { storage });
        }
    }

    /// Moves the core's outputs into effects; `false` if there were none.
    ///
    /// The core's transmits and actions come from separate queues, so a batch is applied in
    /// the order that keeps both meanings: new connections are registered first (bytes for
    /// them are held until they are established), then bytes are routed, then connections
    /// are closed (after the bytes handed out before the close) and disk jobs queued.
    fn pump(&mut self) -> bool {
        let transmits: Vec<Transmit> = std::iter::from_fn(|| self.core.poll_transmit()).collect();
        let actions: Vec<Action> = std::iter::from_fn(|| self.core.poll_action()).collect();
        let mut moved = !transmits.is_empty() || !actions.is_empty();
        for action in &actions {
            if let Action::Connect { conn, addr } = *action {
                self.conns.insert(
                    conn,
                    Conn {
                        open: false,
                        recv: BytesMut::new(),
                        held: Vec::new(),
                    },
                );
                self.effects.push_back(Effect::Connect { conn, addr });
            }
        }
        for Transmit { conn, data } in transmits {
            match self.conns.get_mut(&conn) {
                Some(state) if state.open => self.effects.push_back(Effect::Send { conn, data }),
                Some(state) => state.held.push(data),
                // Bytes for a connection that is gone: nobody can receive them.
                None => {}
            }
        }
        for action in actions {
            match action {
                Action::Connect { .. } => {}
                Action::Close { conn } => {
                    if self.conns.remove(&conn).is_some() {
                        self.effects.push_back(Effect::Close { conn });
                    }
                }
                Action::Disk(job) => self.disk_queue.push_back(job),
                Action::HttpRequest { id, url } => {
                    self.effects.push_back(Effect::HttpRequest { id, url })
                }
                Action::Resolve { id, host, port } => {
                    self.effects.push_back(Effect::Resolve { id, host, port })
                }
            }
        }
        while let Some(datagram) = self.core.poll_datagram() {
            moved = true;
            self.effects.push_back(Effect::SendDatagram(datagram));
        }
        while self.disk_in_flight < self.max_disk_jobs {
            let Some(job) = self.disk_queue.pop_front() else {
                break;
            };
            moved = true;
            // A magnet link's torrent has its storage once its metadata arrived (its first
            // jobs come in the batch that carries `Alert::MetadataReceived`).
            self.learn_info(job.torrent);
            match self.storages.storage(job.torrent) {
                Some(storage) => {
                    self.disk_in_flight += 1;
                    *self.disk_running.entry(job.torrent).or_default() += 1;
                    self.effects.push_back(Effect::Disk { storage, job });
                }
                None => {
                    let completion = crate::disk::refuse_job(
                        &job,
                        "the torrent has no storage (its metadata is not known to the driver)",
                    );
                    self.core.handle_disk(self.now, completion);
                }
            }
        }
        while let Some(alert) = self.core.poll_alert() {
            moved = true;
            if let Alert::MetadataReceived { torrent } = alert {
                self.learn_info(torrent);
            }
            self.effects.push_back(Effect::Alert(alert));
        }
        moved
    }

    /// Gives a registered torrent without storage its storage, if the core knows its
    /// metadata by now.
    fn learn_info(&mut self, torrent: TorrentId) {
        if self.storages.save_path(torrent).is_none() || self.storages.storage(torrent).is_some() {
            return;
        }
        if let Some(info) = self.core.torrent_info(torrent) {
            self.storages.set_info(torrent, &info);
        }
    }
}

impl Driver<Session> {
    /// A driver around a new core session.
    pub fn new_session(now: Instant, config: SessionConfig, max_disk_jobs: usize) -> Self {
        let mut driver = Self::new(Session::new(now, config), max_disk_jobs);
        driver.now = now;
        driver
    }

    /// Adds a torrent and registers where its files live.
    pub fn add_torrent(
        &mut self,
        now: Instant,
        params: AddTorrentParams,
    ) -> Result<TorrentId, SessionError> {
        let now = self.at(now);
        let (core, save_path) = params.into_core();
        let info = match &core.source {
            TorrentSource::Info(info) => Some(info.clone()),
            TorrentSource::Magnet(_) => None,
        };
        let torrent = self.core.add_torrent(now, core)?;
        self.storages.insert(torrent, save_path, info.as_deref());
        Ok(torrent)
    }

    /// Removes a torrent; with `delete_files`, its files go too (see
    /// [`forget_torrent`](Self::forget_torrent)).
    pub fn remove_torrent(
        &mut self,
        now: Instant,
        torrent: TorrentId,
        delete_files: bool,
    ) -> Result<(), SessionError> {
        let now = self.at(now);
        self.core.remove_torrent(now, torrent)?;
        self.forget_torrent(torrent, delete_files);
        Ok(())
    }

    /// Asks for a piece within `within` from now (streaming).
    pub fn set_piece_deadline(
        &mut self,
        now: Instant,
        torrent: TorrentId,
        piece: PieceIndex,
        within: Duration,
    ) -> Result<(), SessionError> {
        let now = self.at(now);
        self.core
            .set_piece_deadline(now, torrent, piece, now + within)
    }
}

#[cfg(test)]
mod tests;
