//! fxtor on async-std and smol: a BitTorrent [`Session`] whose network, timers and disk run
//! on the crates both runtimes are built on (`async-io`, `async-net`, `async-executor`,
//! `blocking`).
//!
//! The protocol lives in the sans-IO core (`fxtor-proto`); the event loop, the connections'
//! tasks, the handles and the alert fan-out live in `fxtor-io`, written once over its
//! [`Runtime`](fxtor_io::Runtime) trait, which `fxtor-tokio` shares. This crate is only
//! that trait's implementation, [`AsyncIo`], and the names of the API for it: the same
//! [`Session`], [`TorrentHandle`], [`Alerts`], [`SessionSettings`] and
//! [`AddTorrentParams`] as `fxtor-tokio`, with the same behaviour.
//!
//! The session's tasks run on an executor with threads of its own, so the API works from
//! any executor: `async_std::task::block_on`, `smol::block_on`, or a bare
//! `futures_lite::future::block_on`.
//!
//! ```no_run
//! use fxtor_async_std::{AddTorrentParams, Session, SessionSettings};
//!
//! # async fn run() -> Result<(), fxtor_async_std::Error> {
//! let session = Session::new(SessionSettings::listen_on("127.0.0.1:0".parse().unwrap())).await?;
//! println!("listening on {:?}", session.listen_addr());
//! let bytes = std::fs::read("some.torrent")?;
//! let info = fxtor_proto::TorrentInfo::from_bytes(&bytes)
//!     .map_err(|e| fxtor_async_std::Error::Invalid(e.to_string()))?;
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

pub use runtime::AsyncIo;

/// A BitTorrent session on async-io (libtorrent's `session`): torrents, peers, disk.
///
/// See [`fxtor_io::session::Session`] for its methods; `Session::new(settings).await`
/// starts one.
pub type Session = fxtor_io::session::Session<AsyncIo>;

/// A torrent in a [`Session`] (libtorrent's `torrent_handle`).
///
/// See [`fxtor_io::session::TorrentHandle`] for its methods.
pub type TorrentHandle = fxtor_io::session::TorrentHandle<AsyncIo>;

/// Reads a file of a torrent while it downloads (streaming), made by
/// `TorrentHandle::open_file`; see [`fxtor_io::reader`]. It is a `futures-io`
/// `AsyncRead + AsyncSeek`.
pub type FileReader = fxtor_io::FileReader<AsyncIo>;

pub use fxtor_io::http::RootCertificate;
pub use fxtor_io::{
    AddTorrentParams, Alerts, DhtSettings, Error, SessionSettings, DEFAULT_DHT_BOOTSTRAP,
};
pub use fxtor_proto::session::{
    Alert, PeerSource, PeerSources, TorrentId, TorrentSource, TorrentState, TorrentStatus,
    TrackerEntry,
};
