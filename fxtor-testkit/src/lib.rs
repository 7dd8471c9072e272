//! What the end-to-end tests of fxtor's runtime adapters share, written once:
//!
//! - [`tools`]: which outside tools are installed (a missing one fails loudly under
//!   `CI=true`), and running a command that must succeed;
//! - [`process`]: child processes killed when the test ends ([`Running`]), and the
//!   adapters' download programs ([`download_command`], [`example_program`]);
//! - [`libtorrent`]: libtorrent as the other peer, through Debian's python3-libtorrent and
//!   the one driver script, `fxtor-tokio/tests/interop/lt.py`;
//! - [`content`]: deterministic test content, the v1, v2 and hybrid torrents libtorrent makes
//!   of it ([`Swarm`]), and the check that a copy has the same bytes;
//! - [`scenarios`]: the scenarios every adapter must pass, as async functions generic over
//!   [`fxtor_io::Runtime`], and [`runtime_tests!`], which makes them the tests of one
//!   runtime and executor.
//!
//! An adapter's test file only names its runtime, how to block on a future, and its
//! download program; `fxtor-async-std/tests/runtime_interop.rs`, for async-std's executor:
//!
//! ```text
//! fn block_on(test: impl std::future::Future<Output = ()>) {
//!     async_std::task::block_on(test)
//! }
//!
//! fn program() -> std::process::Command {
//!     download_example("async-std")
//! }
//!
//! fxtor_testkit::runtime_tests!(
//!     runtime: fxtor_async_std::AsyncIo,
//!     block_on: block_on,
//!     download_program: program,
//! );
//! ```

#![warn(missing_docs)]

pub mod content;
pub mod libtorrent;
pub mod process;
pub mod scenarios;
pub mod tools;

pub use content::{write_data, Swarm, TorrentFixture};
pub use process::{download_command, example_program, Running};
pub use tools::{have_libtorrent, have_tool, in_ci, require, run_ok, PYTHON};
