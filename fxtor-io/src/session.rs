//! The handles an application holds, for any [`Runtime`]: [`Session`] and [`TorrentHandle`].
//!
//! An adapter names them for its runtime (`pub type Session = fxtor_io::session::Session<Tokio>`,
//! say), so every adapter offers the same API with the same behaviour.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_channel::Sender;
use bytes::Bytes;
use fxtor_proto::dht::DhtStats;
use fxtor_proto::session::{Alert, TorrentId, TorrentState, TorrentStatus, TrackerEntry};
use fxtor_proto::time::Instant;
use fxtor_proto::{PieceIndex, TorrentInfo};

use crate::alerts::{AlertQueue, Alerts};
use crate::event_loop::{Command, EventLoop};
use crate::http::HttpClient;
use crate::runtime::{self, Runtime};
use crate::{AddTorrentParams, Clock, Driver, Error, SessionSettings};

/// Binds the session's UDP socket: on the TCP listening address and port if possible, else
/// on any port of that address (or of every IPv4 address when not listening). A session
/// without one still works, without UDP trackers.
async fn bind_udp<R: Runtime>(
    runtime: &R,
    listen: Option<SocketAddr>,
    bound: Option<SocketAddr>,
) -> Option<R::UdpSocket> {
    let any = SocketAddr::from(([0, 0, 0, 0], 0));
    let ip = listen.map_or(any.ip(), |a| a.ip());
    if let Some(bound) = bound {
        if let Ok(socket) = runtime.bind_udp(SocketAddr::new(ip, bound.port())).await {
            return Some(socket);
        }
    }
    runtime.bind_udp(SocketAddr::new(ip, 0)).await.ok()
}

/// Commands waiting for the loop; callers wait beyond this.
const COMMAND_QUEUE: usize = 64;
/// How often [`TorrentHandle::wait_for`] reads the status when no alert says it changed.
const STATUS_POLL: Duration = Duration::from_secs(1);

/// A BitTorrent session (libtorrent's `session`): torrents, peers, disk, on the runtime `R`.
///
/// Cheap to clone (every clone is a handle to the same session) and `Send + Sync`. One
/// event-loop task owns the core state machine; handles send it commands. The session stops
/// on [`shutdown`](Self::shutdown), or once every handle (torrent handles included) is
/// dropped.
pub struct Session<R: Runtime> {
    inner: Arc<Inner<R>>,
}

struct Inner<R> {
    runtime: R,
    commands: Sender<Command>,
    alerts: AlertQueue,
    listen_addr: Option<SocketAddr>,
    udp_addr: Option<SocketAddr>,
}

/// Handles go to other tasks and threads: on every runtime they stay `Send + Sync + Clone`.
/// Never called; the compiler checks its body for any `R`.
#[allow(dead_code)]
fn handles_are_shareable<R: Runtime>() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Session<R>>();
    shareable::<TorrentHandle<R>>();
}

impl<R: Runtime> Clone for Session<R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for Session<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("listen_addr", &self.inner.listen_addr)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime + Default> Session<R> {
    /// Starts a session: binds the listening socket (if any) and spawns the event loop.
    pub async fn new(settings: SessionSettings) -> Result<Self, Error> {
        Self::with_runtime(R::default(), settings).await
    }
}

impl<R: Runtime> Session<R> {
    /// Starts a session on the given runtime value.
    pub async fn with_runtime(runtime: R, settings: SessionSettings) -> Result<Self, Error> {
        let listener = match settings.listen {
            Some(addr) => Some(runtime.bind(addr).await?),
            None => None,
        };
        let listen_addr = listener
            .as_ref()
            .map(|l| runtime.local_addr(l))
            .transpose()?;
        let udp = bind_udp(&runtime, settings.listen, listen_addr).await;
        let udp_addr = udp.as_ref().and_then(|u| runtime.udp_local_addr(u).ok());
        let http = HttpClient::new(&settings.extra_root_certificates, settings.http_timeout)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        let mut config = settings.core_config(listen_addr.map_or(0, |a| a.port()))?;
        if let (Some(dht), Some(udp)) = (config.dht.as_mut(), udp_addr) {
            dht.port = Some(udp.port());
            // An IPv6 socket reaches IPv4 nodes by their mapped addresses; an IPv4 one
            // cannot reach IPv6 nodes.
            dht.ipv6 = udp.is_ipv6();
        }
        let clock = Clock::new();
        let driver = Driver::new_session(clock.now(), config, settings.max_disk_jobs);
        let (commands, command_rx) = async_channel::bounded(COMMAND_QUEUE);
        let alerts = AlertQueue::new(settings.alert_queue);
        let event_loop = EventLoop::new(
            runtime.clone(),
            driver,
            clock,
            &settings,
            listener,
            command_rx,
            alerts.clone(),
        )
        .with_trackers(udp, http);
        runtime.spawn(event_loop.run());
        Ok(Self {
            inner: Arc::new(Inner {
                runtime,
                commands,
                alerts,
                listen_addr,
                udp_addr,
            }),
        })
    }

    /// The address of the session's UDP socket (UDP trackers; on the TCP listening port
    /// when that port was free for UDP too), if one could be bound.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.inner.udp_addr
    }

    /// The address the session accepts peers on (with the port chosen if 0 was asked for).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.inner.listen_addr
    }

    /// The runtime the session runs on.
    pub(crate) fn runtime(&self) -> &R {
        &self.inner.runtime
    }

    /// Runs `f` on the event loop with the driver and the current time; its answer.
    pub(crate) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Driver, Instant) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (tx, rx) = async_channel::bounded(1);
        let call = Box::new(move |driver: &mut Driver, now: Instant| {
            let _ = tx.try_send(f(driver, now));
        });
        self.inner
            .commands
            .send(Command::Call(call))
            .await
            .map_err(|_| Error::Shutdown)?;
        rx.recv().await.map_err(|_| Error::Shutdown)
    }

    /// Adds a torrent. Without resume data, files that may exist are checked first.
    pub async fn add_torrent(&self, params: AddTorrentParams) -> Result<TorrentHandle<R>, Error> {
        let id = self
            .call(move |d, now| d.add_torrent(now, params))
            .await??;
        Ok(self.handle(id))
    }

    /// Removes a torrent; with `delete_files` its files are deleted too.
    pub async fn remove_torrent(
        &self,
        torrent: &TorrentHandle<R>,
        delete_files: bool,
    ) -> Result<(), Error> {
        let id = torrent.id;
        Ok(self
            .call(move |d, now| d.remove_torrent(now, id, delete_files))
            .await??)
    }

    /// The torrents in the session.
    pub async fn torrents(&self) -> Result<Vec<TorrentHandle<R>>, Error> {
        let ids = self.call(|d, _| d.core().torrents()).await?;
        Ok(ids.into_iter().map(|id| self.handle(id)).collect())
    }

    /// A handle to a torrent by its id (it may have been removed: commands then fail).
    pub fn handle(&self, id: TorrentId) -> TorrentHandle<R> {
        TorrentHandle {
            id,
            session: self.clone(),
        }
    }

    /// The DHT's routing table and node id, bencoded (`None` without a DHT): give it back
    /// in [`DhtSettings::state`](fxtor_proto::session::DhtSettings::state) to rejoin
    /// quickly next time.
    pub async fn dht_state(&self) -> Result<Option<Bytes>, Error> {
        self.call(|d, now| d.core().dht_state(now)).await
    }

    /// Saves the DHT's state to a file, atomically (as resume files are); `false` without
    /// a DHT (nothing is written).
    pub async fn save_dht_state_file(&self, path: impl Into<PathBuf>) -> Result<bool, Error> {
        let Some(data) = self.dht_state().await? else {
            return Ok(false);
        };
        let path = path.into();
        self.inner
            .runtime
            .spawn_blocking(move || crate::resume::write_resume_file(&path, &data))
            .await
            .ok_or_else(|| Error::Io(std::io::Error::other("saving the DHT state panicked")))??;
        Ok(true)
    }

    /// What the DHT holds: routing tables, stored peers, lookups (`None` without a DHT).
    pub async fn dht_stats(&self) -> Result<Option<DhtStats>, Error> {
        self.call(|d, now| d.core().dht_stats(now)).await
    }

    /// Subscribes to the session's alerts from now on. See [`Alerts`] for what a slow
    /// reader loses; the subscription ends (`None`) once the session has shut down.
    pub fn alerts(&self) -> Alerts {
        self.inner.alerts.subscribe()
    }

    /// Stops the session: connections close, disk jobs already running finish (so every
    /// verified piece is on disk), then the loop ends. Later commands fail with
    /// [`Error::Shutdown`]; shutting down twice is harmless.
    pub async fn shutdown(&self) -> Result<(), Error> {
        let (tx, rx) = async_channel::bounded(1);
        if self
            .inner
            .commands
            .send(Command::Shutdown(tx))
            .await
            .is_err()
        {
            return Ok(());
        }
        // The loop drops the sender once it has stopped.
        let _ = rx.recv().await;
        Ok(())
    }
}

/// A torrent in a [`Session`] (libtorrent's `torrent_handle`). Cheap to clone.
pub struct TorrentHandle<R: Runtime> {
    id: TorrentId,
    session: Session<R>,
}

impl<R: Runtime> Clone for TorrentHandle<R> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            session: self.session.clone(),
        }
    }
}

impl<R: Runtime> std::fmt::Debug for TorrentHandle<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorrentHandle")
            .field("id", &self.id)
            .field("session", &self.session)
            .finish()
    }
}

impl<R: Runtime> TorrentHandle<R> {
    /// The torrent's id in its session.
    pub fn id(&self) -> TorrentId {
        self.id
    }

    /// The session it belongs to.
    pub fn session(&self) -> &Session<R> {
        &self.session
    }

    /// Runs a command of the core on this torrent.
    async fn command<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Driver, Instant, TorrentId) -> Result<T, fxtor_proto::session::SessionError>
            + Send
            + 'static,
    ) -> Result<T, Error> {
        let id = self.id;
        Ok(self.session.call(move |d, now| f(d, now, id)).await??)
    }

    /// Pauses it: its connections close; nothing is requested or served.
    pub async fn pause(&self) -> Result<(), Error> {
        self.command(|d, now, id| d.core_mut().pause(now, id)).await
    }

    /// Resumes it.
    pub async fn resume(&self) -> Result<(), Error> {
        self.command(|d, now, id| d.core_mut().resume(now, id))
            .await
    }

    /// What it is (libtorrent's `torrent_file`): `None` for a magnet link whose metadata has
    /// not arrived yet.
    pub async fn torrent_info(&self) -> Result<Option<Arc<TorrentInfo>>, Error> {
        self.command(|d, _, id| match d.core().contains_torrent(id) {
            true => Ok(d.core().torrent_info(id)),
            false => Err(fxtor_proto::session::SessionError::UnknownTorrent(id)),
        })
        .await
    }

    /// Its state and numbers now.
    pub async fn status(&self) -> Result<TorrentStatus, Error> {
        self.command(|d, now, id| d.core().status(now, id)).await
    }

    /// Its resume data as it is now (bencoded): give it back in
    /// [`AddTorrentParams::resume_data`] to start again without re-checking.
    pub async fn save_resume_data(&self) -> Result<Bytes, Error> {
        self.command(|d, _, id| d.core().save_resume_data(id)).await
    }

    /// Saves its resume data to a file, atomically (see [`crate::resume`]).
    pub async fn save_resume_file(&self, path: impl Into<PathBuf>) -> Result<(), Error> {
        let data = self.save_resume_data().await?;
        let path = path.into();
        self.session
            .inner
            .runtime
            .spawn_blocking(move || crate::resume::write_resume_file(&path, &data))
            .await
            .ok_or_else(|| Error::Io(std::io::Error::other("saving the resume file panicked")))??;
        Ok(())
    }

    /// Asks for a piece within `within` from now (streaming): it is requested before
    /// pieces without a deadline, earliest first.
    pub async fn set_piece_deadline(
        &self,
        piece: PieceIndex,
        within: Duration,
    ) -> Result<(), Error> {
        self.command(move |d, now, id| d.set_piece_deadline(now, id, piece, within))
            .await
    }

    /// Withdraws a piece's deadline.
    pub async fn reset_piece_deadline(&self, piece: PieceIndex) -> Result<(), Error> {
        self.command(move |d, now, id| d.core_mut().reset_piece_deadline(now, id, piece))
            .await
    }

    /// Sets the files' priorities, 0 (skip) to 7, in file order.
    pub async fn prioritize_files(&self, priorities: Vec<u8>) -> Result<(), Error> {
        self.command(move |d, now, id| d.core_mut().prioritize_files(now, id, &priorities))
            .await
    }

    /// Sets a piece's priority, 0 (skip) to 7.
    pub async fn set_piece_priority(&self, piece: PieceIndex, priority: u8) -> Result<(), Error> {
        self.command(move |d, now, id| d.core_mut().set_piece_priority(now, id, piece, priority))
            .await
    }

    /// Downloads in piece order (or rarest first again).
    pub async fn set_sequential(&self, sequential: bool) -> Result<(), Error> {
        self.command(move |d, now, id| d.core_mut().set_sequential(now, id, sequential))
            .await
    }

    /// Re-checks every piece on disk.
    pub async fn force_recheck(&self) -> Result<(), Error> {
        self.command(|d, now, id| d.core_mut().force_recheck(now, id))
            .await
    }

    /// Its trackers, in tier order, and what each last said.
    pub async fn trackers(&self) -> Result<Vec<TrackerEntry>, Error> {
        self.command(|d, _, id| d.core().trackers(id)).await
    }

    /// Announces to its trackers again as soon as their `min interval` allows.
    pub async fn force_reannounce(&self) -> Result<(), Error> {
        self.command(|d, now, id| d.core_mut().force_reannounce(now, id))
            .await
    }

    /// Asks its trackers for the swarm's figures (scrape): an `Alert::ScrapeReply` or
    /// `Alert::ScrapeFailed` follows.
    pub async fn scrape_tracker(&self) -> Result<(), Error> {
        self.command(|d, now, id| d.core_mut().scrape_tracker(now, id))
            .await
    }

    /// Connects to a peer for this torrent.
    pub async fn connect_peer(&self, addr: SocketAddr) -> Result<(), Error> {
        self.command(move |d, now, id| d.core_mut().connect_peer(now, id, addr))
            .await
    }

    /// Waits until its status satisfies `done`, and returns that status. The status is
    /// read again whenever an alert about the torrent's state arrives (and at least once a
    /// second). Fails if the torrent stops on an error or is removed.
    pub async fn wait_for(
        &self,
        mut done: impl FnMut(&TorrentStatus) -> bool,
    ) -> Result<TorrentStatus, Error> {
        let mut alerts = self.session.alerts();
        let runtime = &self.session.inner.runtime;
        loop {
            let status = self.status().await?;
            if done(&status) {
                return Ok(status);
            }
            if status.state == TorrentState::Error {
                return Err(Error::Torrent(status.error.unwrap_or_default()));
            }
            let state_changed = async {
                while let Some(alert) = alerts.recv().await {
                    if self.is_state_alert(&alert) {
                        return;
                    }
                }
                // The session is gone: the next status says so.
            };
            let _ = runtime::timeout(runtime, STATUS_POLL, state_changed).await;
        }
    }

    /// Waits until every wanted piece is verified on disk (state Finished or Seeding).
    pub async fn wait_finished(&self) -> Result<TorrentStatus, Error> {
        self.wait_for(|s| matches!(s.state, TorrentState::Finished | TorrentState::Seeding))
            .await
    }

    fn is_state_alert(&self, alert: &Alert) -> bool {
        match alert {
            Alert::StateChanged { torrent, .. }
            | Alert::TorrentFinished { torrent }
            | Alert::TorrentChecked { torrent }
            | Alert::TorrentError { torrent, .. }
            | Alert::TorrentRemoved { torrent } => *torrent == self.id,
            _ => false,
        }
    }
}
