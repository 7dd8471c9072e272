//! The I/O that fxtor's runtime adapters share.
//!
//! Everything here is synchronous and blocking by design: the adapters (`fxtor-tokio`,
//! `fxtor-async-std`) run it on their blocking pools, never on the event loop. It depends on
//! no async runtime, so both adapters use the same code.
//!
//! - [`Storage`]: a torrent's files on disk, with positioned reads and writes, files opened
//!   once and cached, sparse allocation, and pad files never written.
#![warn(missing_docs)]

mod pio;
mod storage;

pub use storage::{Storage, StorageError};
