//! fxtor on tokio: a BitTorrent [`Session`] whose network, timers and disk run on tokio.
//!
//! The protocol lives in the sans-IO core (`fxtor-proto`); the event loop, the connections'
//! tasks, the handles and the alert fan-out live in `fxtor-io`, written once over its
//! [`Runtime`](fxtor_io::Runtime) trait, which `fxtor-async-std` shares. This crate is
//! that trait's implementation for tokio, [`Tokio`] (tokio's sockets and timers, tasks on
//! `tokio::spawn`, disk jobs on `spawn_blocking`), the names of the API for it
//! ([`Session`], [`TorrentHandle`], [`Alerts`], [`SessionSettings`], [`AddTorrentParams`]),
//! and the `fxtor` program.
//!
//! A session's tasks run on the tokio runtime it is started from.
//!
//! ```no_run
//! use fxtor_tokio::{AddTorrentParams, Session, SessionSettings};
//!
//! # async fn run() -> Result<(), fxtor_tokio::Error> {
//! let session = Session::new(SessionSettings::listen_on("127.0.0.1:0".parse().unwrap())).await?;
//! println!("listening on {:?}", session.listen_addr());
//! let bytes = std::fs::read("some.torrent")?;
//! let info = fxtor_proto::TorrentInfo::from_bytes(&bytes)
//!     .map_err(|e| fxtor_tokio::Error::Invalid(e.to_string()))?;
//! let mut params = AddTorrentParams::from_info(info, "downloads");
//! params.peers.push("127.0.0.1:6881".parse().unwrap());
//! let torrent = session.add_torrent(params).await?;
//! let status = torrent.wait_finished().await?;
//! println!("{} bytes downloaded", status.total_downloaded);
//! session.shutdown().await?;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod runtime;

pub use runtime::Tokio;

/// fxtor's session on tokio; its methods are [`fxtor_io::session::Session`]'s. Start it
/// with `Session::new(settings).await` from within a tokio runtime.
pub type Session = fxtor_io::session::Session<Tokio>;

/// A torrent of a tokio [`Session`]; its methods are [`fxtor_io::session::TorrentHandle`]'s.
pub type TorrentHandle = fxtor_io::session::TorrentHandle<Tokio>;

pub use fxtor_io::http::RootCertificate;
pub use fxtor_io::{
    AddTorrentParams, Alerts, DhtSettings, Error, SessionSettings, DEFAULT_DHT_BOOTSTRAP,
};
pub use fxtor_proto::session::{
    Alert, TorrentId, TorrentSource, TorrentState, TorrentStatus, TrackerEntry,
};

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
        // A connection is accepted by the loop; either way it goes on answering commands.
        let _peer = tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(session.torrents().await.unwrap().is_empty());
        let mut alerts = session.alerts();
        session.shutdown().await.unwrap();
        session.shutdown().await.unwrap();
        assert!(matches!(session.torrents().await, Err(Error::Shutdown)));
        // The alerts end with the session.
        assert_eq!(alerts.recv().await, None);
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_every_handle_stops_the_session() {
        let session = Session::new(SessionSettings::listen_on("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let addr = session.listen_addr().unwrap();
        let mut alerts = session.alerts();
        drop(session);
        assert_eq!(alerts.recv().await, None);
        // The listener went with the loop.
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn blocking_work_runs_and_a_panic_is_none() {
        use fxtor_io::Runtime as _;
        assert_eq!(Tokio.spawn_blocking(|| 7).await, Some(7));
        let panicked: Option<()> = Tokio.spawn_blocking(|| panic!("on purpose")).await;
        assert_eq!(panicked, None);
    }
}
