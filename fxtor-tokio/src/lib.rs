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

/// Reads a file of a torrent while it downloads (streaming), made by
/// `TorrentHandle::open_file`; see [`fxtor_io::reader`]. It is a `futures-io`
/// `AsyncRead + AsyncSeek`.
pub type FileReader = fxtor_io::FileReader<Tokio>;

pub use fxtor_io::http::RootCertificate;
pub use fxtor_io::{
    AddTorrentParams, Alerts, DhtSettings, Error, SessionSettings, DEFAULT_DHT_BOOTSTRAP,
};
pub use fxtor_proto::session::{
    Alert, PeerSource, PeerSources, TorrentId, TorrentSource, TorrentState, TorrentStatus,
    TrackerEntry,
};
