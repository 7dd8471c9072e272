//! fxtor on tokio: a BitTorrent [`Session`] whose network, timers and disk run on tokio.
//!
//! The protocol lives in the sans-IO core (`fxtor-proto`); the event loop's logic, the disk
//! jobs and the shared API types live in `fxtor-io`, which the async-std adapter shares.
//! This crate is the tokio part only: one actor task owns the core and selects over
//! commands, accepted connections, bytes read, bytes written, disk completions and the
//! core's timer; a reader and a writer task per TCP stream; disk jobs on
//! `spawn_blocking`, a bounded number at a time.
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

mod actor;
mod alerts;
mod conn;
mod session;

pub use alerts::Alerts;
pub use session::{Session, TorrentHandle};

pub use fxtor_io::{AddTorrentParams, Error, SessionSettings};
pub use fxtor_proto::session::{Alert, TorrentId, TorrentSource, TorrentState, TorrentStatus};
