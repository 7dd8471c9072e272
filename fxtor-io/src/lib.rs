//! The I/O that fxtor's runtime adapters share.
//!
//! Nothing here depends on an async runtime, so `fxtor-tokio` and `fxtor-async-std` use the
//! same code and differ only in how they run it (sockets, timers, tasks, the blocking pool):
//!
//! - [`Driver`]: the event loop's logic around the core [`Session`](fxtor_proto::session::Session):
//!   connection bookkeeping, receive buffers, the bound on disk jobs, torrents' storages; it
//!   turns the core's outputs into [`Effect`]s an adapter carries out.
//! - [`Storage`]: a torrent's files on disk, with positioned reads and writes, files opened
//!   once and cached, sparse allocation, and pad files never written.
//! - [`disk::run_job`]: one disk job (verify then write, read, check, create empty files),
//!   blocking, for the adapter's blocking pool.
//! - [`resume`]: resume files, replaced atomically.
//! - [`SessionSettings`], [`AddTorrentParams`], [`Error`]: the adapters' common API types.
//! - [`http`]: the blocking HTTP(S) client tracker requests run on, and name resolution.
//! - [`Clock`]: wall time as the core's [`Instant`](fxtor_proto::time::Instant).
//! - [`session::Session`] and [`session::TorrentHandle`]: the handles an application holds,
//!   over the event loop, the connections' reader and writer tasks and the [`alerts`]
//!   fan-out, written once against the [`Runtime`] trait an adapter implements (sockets,
//!   timers, spawning).
#![warn(missing_docs)]

pub mod alerts;
mod clock;
mod connection;
pub mod disk;
pub mod driver;
mod error;
mod event_loop;
pub mod http;
mod params;
mod pio;
pub mod reader;
mod registry;
pub mod resume;
pub mod runtime;
pub mod session;
mod storage;

pub use alerts::Alerts;
pub use clock::Clock;
pub use driver::{Core, Driver, Effect};
pub use error::Error;
pub use fxtor_proto::session::DhtSettings;
pub use params::{
    parse_dht_node, program_dht_settings, random_peer_id, AddTorrentParams, SessionSettings,
    DEFAULT_DHT_BOOTSTRAP, NO_DHT_ENV,
};
pub use reader::FileReader;
pub use registry::StorageRegistry;
pub use runtime::Runtime;
pub use storage::{Storage, StorageError};
