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
//! - [`Clock`]: wall time as the core's [`Instant`](fxtor_proto::time::Instant).
#![warn(missing_docs)]

mod clock;
pub mod disk;
pub mod driver;
mod error;
mod params;
mod pio;
mod registry;
pub mod resume;
mod storage;

pub use clock::Clock;
pub use driver::{Core, Driver, Effect};
pub use error::Error;
pub use params::{random_peer_id, AddTorrentParams, SessionSettings};
pub use registry::StorageRegistry;
pub use storage::{Storage, StorageError};
