//! The handles an application holds: [`Session`] and [`TorrentHandle`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fxtor_io::{AddTorrentParams, Clock, Driver, Error, SessionSettings};
use fxtor_proto::session::{Alert, TorrentId, TorrentState, TorrentStatus};
use fxtor_proto::time::Instant;
use fxtor_proto::PieceIndex;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::actor::{Actor, Msg};
use crate::alerts::Alerts;

/// Commands waiting for the loop; callers wait beyond this.
const COMMAND_QUEUE: usize = 64;

/// A BitTorrent session on tokio (libtorrent's `session`): torrents, peers, disk.
///
/// Cheap to clone (every clone is a handle to the same session) and `Send + Sync`. One
/// actor task owns the core state machine and the event loop; handles send it commands.
/// The session stops on [`shutdown`](Self::shutdown), or once every handle (torrent
/// handles included) is dropped.
#[derive(Clone, Debug)]
pub struct Session {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    commands: mpsc::Sender<Msg>,
    alerts: broadcast::Sender<Alert>,
    listen_addr: Option<SocketAddr>,
}

impl<C> std::fmt::Debug for Msg<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Call(_) => "Call",
            Msg::Shutdown(_) => "Shutdown",
        })
    }
}

impl Session {
    /// Starts a session: binds the listening socket (if any) and spawns the event loop on
    /// the current tokio runtime.
    pub async fn new(settings: SessionSettings) -> Result<Self, Error> {
        let listener = match settings.listen {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        let listen_addr = listener.as_ref().map(TcpListener::local_addr).transpose()?;
        let config = settings.core_config(listen_addr.map_or(0, |a| a.port()))?;
        let clock = Clock::new();
        let driver = Driver::new_session(clock.now(), config, settings.max_disk_jobs);
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let (alerts, _) = broadcast::channel(settings.alert_queue.max(1));
        let actor = Actor::new(
            driver,
            clock,
            &settings,
            listener,
            command_rx,
            alerts.clone(),
        );
        tokio::spawn(actor.run());
        Ok(Self {
            inner: Arc::new(Inner {
                commands,
                alerts,
                listen_addr,
            }),
        })
    }

    /// The address the session accepts peers on (with the port chosen if 0 was asked for).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.inner.listen_addr
    }

    /// Runs `f` on the event loop with the driver and the current time; its answer.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Driver, Instant) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        let call = Box::new(move |driver: &mut Driver, now: Instant| {
            let _ = tx.send(f(driver, now));
        });
        self.inner
            .commands
            .send(Msg::Call(call))
            .await
            .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)
    }

    /// Adds a torrent. Without resume data, files that may exist are checked first.
    pub async fn add_torrent(&self, params: AddTorrentParams) -> Result<TorrentHandle, Error> {
        let id = self
            .call(move |d, now| d.add_torrent(now, params))
            .await??;
        Ok(self.handle(id))
    }

    /// Removes a torrent; with `delete_files` its files are deleted too.
    pub async fn remove_torrent(
        &self,
        torrent: &TorrentHandle,
        delete_files: bool,
    ) -> Result<(), Error> {
        let id = torrent.id;
        Ok(self
            .call(move |d, now| d.remove_torrent(now, id, delete_files))
            .await??)
    }

    /// The torrents in the session.
    pub async fn torrents(&self) -> Result<Vec<TorrentHandle>, Error> {
        let ids = self.call(|d, _| d.core().torrents()).await?;
        Ok(ids.into_iter().map(|id| self.handle(id)).collect())
    }

    /// A handle to a torrent by its id (it may have been removed: commands then fail).
    pub fn handle(&self, id: TorrentId) -> TorrentHandle {
        TorrentHandle {
            id,
            session: self.clone(),
        }
    }

    /// Subscribes to the session's alerts from now on. See [`Alerts`] for what a slow
    /// reader loses.
    pub fn alerts(&self) -> Alerts {
        Alerts::new(self.inner.alerts.subscribe())
    }

    /// Stops the session: connections close, disk jobs already running finish (so every
    /// verified piece is on disk), then the loop ends. Later commands fail with
    /// [`Error::Shutdown`]; shutting down twice is harmless.
    pub async fn shutdown(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        if self.inner.commands.send(Msg::Shutdown(tx)).await.is_err() {
            return Ok(());
        }
        let _ = rx.await;
        Ok(())
    }
}

/// A torrent in a [`Session`] (libtorrent's `torrent_handle`). Cheap to clone.
#[derive(Clone, Debug)]
pub struct TorrentHandle {
    id: TorrentId,
    session: Session,
}

impl TorrentHandle {
    /// The torrent's id in its session.
    pub fn id(&self) -> TorrentId {
        self.id
    }

    /// The session it belongs to.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Pauses it: its connections close; nothing is requested or served.
    pub async fn pause(&self) -> Result<(), Error> {
        let id = self.id;
        Ok(self
            .session
            .call(move |d, now| d.core_mut().pause(now, id))
            .await??)
    }

    /// Resumes it.
    pub async fn resume(&self) -> Result<(), Error> {
        let id = self.id;
        Ok(self
            .session
            .call(move |d, now| d.core_mut().resume(now, id))
            .await??)
    }

    /// Its state and numbers now.
    pub async fn status(&self) -> Result<TorrentStatus, Error> {
        let id = self.id;
        Ok(self
            .session
            .call(move |d, now| d.core().status(now, id))
            .await??)
    }

    /// Its resume data as it is now (bencoded): give it back in
    /// [`AddTorrentParams::resume_data`] to start again without re-checking.
    pub async fn save_resume_data(&self) -> Result<Bytes, Error> {
        let id = self.id;
        Ok(self
            .session
            .call(move |d, _| d.core().save_resume_data(id))
            .await??)
    }

    /// Saves its resume data to a file, atomically (see [`fxtor_io::resume`]).
    pub async fn save_resume_file(&self, path: impl Into<PathBuf>) -> Result<(), Error> {
        let data = self.save_resume_data().await?;
        let path = path.into();
        tokio::task::spawn_blocking(move || fxtor_io::resume::write_resume_file(&path, &data))
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        Ok(())
    }

    /// Asks for a piece within `within` from now (streaming): it is requested before
    /// pieces without a deadline, earliest first.
    pub async fn set_piece_deadline(
        &self,
        piece: PieceIndex,
        within: Duration,
    ) -> Result<(), Error> {
        let id = self.id;
        Ok(self
            .session
            .call(move |d, now| d.set_piece_deadline(now, id, piece, within))
            .await??)
    }

    /// Withdraws a piece's deadline.
    pub async fn reset_piece_deadline(&self, piece: PieceIndex) -> Result<(), Error> {
        let id = self.id;
        Ok(self
            .session
            .call(move |d, now| d.core_mut().reset_piece_deadline(now, id, piece))
            .await??)
    }

    /// Sets the files' priorities, 0 (skip) to 7, in file order.
    pub async fn prioritize_files(&self, priorities: Vec<u8>) -> Result<(), Error> {
        let id = self.id;
        Ok(self
            .session
            .call(move |d, now| d.core_mut().prioritize_files(now, id, &priorities))
            .await??)
    }

    /// Sets a piece's priority, 0 (skip) to 7.
    pub async fn set_piece_priority(&self, piece: PieceIndex, priority: u8) -> Result<(), Error> {
        let id = self.id;
        Ok(self
            .session
            .call(move |d, now| d.core_mut().set_piece_priority(now, id, piece, priority))
            .await??)
    }

    /// Downloads in piece order (or rarest first again).
    pub async fn set_sequential(&self, sequential: bool) -> Result<(), Error> {
        let id = self.id;
        Ok(self
            .session
            .call(move |d, now| d.core_mut().set_sequential(now, id, sequential))
            .await??)
    }

    /// Re-checks every piece on disk.
    pub async fn force_recheck(&self) -> Result<(), Error> {
        let id = self.id;
        Ok(self
            .session
            .call(move |d, now| d.core_mut().force_recheck(now, id))
            .await??)
    }

    /// Connects to a peer for this torrent.
    pub async fn connect_peer(&self, addr: SocketAddr) -> Result<(), Error> {
        let id = self.id;
        Ok(self
            .session
            .call(move |d, now| d.core_mut().connect_peer(now, id, addr))
            .await??)
    }

    /// Waits until its status satisfies `done`, and returns that status. The status is
    /// read again whenever an alert about the torrent's state arrives (and at least once a
    /// second). Fails if the torrent stops on an error or is removed.
    pub async fn wait_for(
        &self,
        mut done: impl FnMut(&TorrentStatus) -> bool,
    ) -> Result<TorrentStatus, Error> {
        let mut alerts = self.session.alerts();
        loop {
            let status = self.status().await?;
            if done(&status) {
                return Ok(status);
            }
            if status.state == TorrentState::Error {
                return Err(Error::Torrent(status.error.unwrap_or_default()));
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while let Some(alert) = alerts.recv().await {
                    if self.is_state_alert(&alert) {
                        return;
                    }
                }
                // The session is gone: the next status says so.
            })
            .await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_session_listens_and_shuts_down() {
        let session = Session::new(SessionSettings::listen_on("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let addr = session.listen_addr().unwrap();
        assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
        assert_ne!(addr.port(), 0);
        // A connection is accepted by the loop (and refused by the core as it stands, or
        // kept); either way the loop goes on answering commands.
        let _peer = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(session.torrents().await.unwrap().is_empty());
        let alerts = session.alerts();
        session.shutdown().await.unwrap();
        session.shutdown().await.unwrap();
        assert!(matches!(session.torrents().await, Err(Error::Shutdown)));
        drop(alerts);
    }

    #[tokio::test]
    async fn without_listening_there_is_no_address() {
        let settings = SessionSettings {
            listen: None,
            ..SessionSettings::default()
        };
        let session = Session::new(settings).await.unwrap();
        assert_eq!(session.listen_addr(), None);
        let handle = session.handle(TorrentId(3));
        assert!(matches!(handle.status().await, Err(Error::Session(_))));
    }

    #[test]
    fn handles_are_send_and_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Session>();
        check::<TorrentHandle>();
    }
}
