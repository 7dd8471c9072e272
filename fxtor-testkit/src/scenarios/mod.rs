//! The scenarios every adapter must pass, written once as async functions generic over
//! [`Runtime`]: an adapter's test file instantiates them all with [`runtime_tests!`]
//! (`crate::runtime_tests`) for its runtime and executor.
//!
//! - [`sessions`]: fxtor sessions alone: a session's life, commands to an unknown torrent,
//!   the blocking pool, two sessions transferring (alerts, deadlines, resume data, removal),
//!   priorities and re-checks;
//! - [`streaming`]: a file read while it downloads;
//! - [`dht`]: twenty sessions forming a DHT on 127.0.0.1, where a bare magnet link finds
//!   its seed;
//! - [`interop`]: against libtorrent, for v1, v2 and hybrid torrents: libtorrent seeds and
//!   fxtor downloads, fxtor seeds and libtorrent downloads, a download killed half way
//!   that resumes from its resume file, and a file streamed from a libtorrent seeder.

pub mod dht;
pub mod interop;
pub mod sessions;
pub mod streaming;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use fxtor_io::runtime::{self, Runtime};
use fxtor_io::SessionSettings;

use crate::Swarm;

/// Longer than any one transfer here takes on a busy two-core machine: a hang fails the
/// test instead of stalling it.
pub const LIMIT: Duration = Duration::from_secs(180);

const MIB: u64 = 1 << 20;

/// The content of the library-level interop scenarios, some 20 MiB in files of odd sizes:
/// in every version each file but the last is followed by a pad file.
pub const LIBRARY_FILES: [(&str, u64); 4] = [
    ("a.bin", 13 * MIB + 12_345),
    ("sub/b.bin", 6 * MIB + 777),
    ("sub/deeper/c.bin", MIB + 3),
    ("tiny.txt", 100),
];

/// The content and torrents of the interop scenarios, made once per test program.
pub fn library_swarm() -> &'static Swarm {
    static SWARM: OnceLock<Swarm> = OnceLock::new();
    SWARM.get_or_init(|| Swarm::create("swarm", &LIBRARY_FILES, 256 * 1024))
}

/// A session on 127.0.0.1, port chosen by the system.
pub fn localhost() -> SessionSettings {
    SessionSettings::listen_on(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// `future`'s output; fails the test if it takes longer than [`LIMIT`].
pub async fn within<R: Runtime, T>(rt: &R, what: &str, future: impl Future<Output = T>) -> T {
    runtime::timeout(rt, LIMIT, future)
        .await
        .unwrap_or_else(|| panic!("{what} took longer than {LIMIT:?}"))
}

/// Runs blocking test code (starting and waiting for processes) on the runtime's blocking
/// pool, so the session's tasks go on meanwhile; a panic there fails the test.
pub async fn blocking<R: Runtime, T: Send + 'static>(
    rt: &R,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    rt.spawn_blocking(f)
        .await
        .expect("the blocking part of the test panicked (its message is above)")
}

/// The tests of every scenario for one runtime and executor.
///
/// - `runtime`: the [`Runtime`] value (`Tokio`, `AsyncIo`);
/// - `block_on`: a function (or closure) that runs a `Future<Output = ()>` to its end on
///   the executor under test;
/// - `download_program`: a function returning the adapter's download program as a
///   `std::process::Command` that takes the flags of `fxtor download` (see
///   [`download_command`](crate::download_command)).
///
/// The libtorrent scenarios pass without running when python3-libtorrent is missing,
/// except under `CI=true`, where they fail.
#[macro_export]
macro_rules! runtime_tests {
    (runtime: $runtime:expr, block_on: $block_on:expr, download_program: $program:expr $(,)?) => {
        $crate::runtime_tests!(@in sessions, $runtime, $block_on;
            a_session_listens_and_shuts_down,
            an_unknown_torrent_refuses_every_command,
            dropping_every_handle_stops_the_session,
            blocking_work_runs_and_a_panic_is_none,
            a_swarm_of_two,
            priorities_recheck_and_removal,
        );
        $crate::runtime_tests!(@in streaming, $runtime, $block_on;
            a_file_streams_while_it_downloads,
        );
        $crate::runtime_tests!(@in dht, $runtime, $block_on;
            twenty_sessions_form_a_dht_and_find_a_seed,
        );
        $crate::runtime_tests!(@interop $runtime, $block_on;
            libtorrent_seeds_and_fxtor_downloads_v1 = libtorrent_seeds_and_fxtor_downloads("v1"),
            libtorrent_seeds_and_fxtor_downloads_v2 = libtorrent_seeds_and_fxtor_downloads("v2"),
            libtorrent_seeds_and_fxtor_downloads_hybrid =
                libtorrent_seeds_and_fxtor_downloads("hybrid"),
            fxtor_seeds_and_libtorrent_downloads_v1 = fxtor_seeds_and_libtorrent_downloads("v1"),
            fxtor_seeds_and_libtorrent_downloads_v2 = fxtor_seeds_and_libtorrent_downloads("v2"),
            fxtor_seeds_and_libtorrent_downloads_hybrid =
                fxtor_seeds_and_libtorrent_downloads("hybrid"),
            a_killed_download_resumes_v1 = a_killed_download_resumes("v1", $program()),
            a_killed_download_resumes_v2 = a_killed_download_resumes("v2", $program()),
            a_killed_download_resumes_hybrid = a_killed_download_resumes("hybrid", $program()),
            fxtor_streams_a_file_from_libtorrent_v1 = fxtor_streams_a_file_from_libtorrent("v1"),
            fxtor_streams_a_file_from_libtorrent_v2 = fxtor_streams_a_file_from_libtorrent("v2"),
            fxtor_streams_a_file_from_libtorrent_hybrid =
                fxtor_streams_a_file_from_libtorrent("hybrid"),
        );
    };
    (@in $module:ident, $runtime:expr, $block_on:expr; $($name:ident,)*) => {
        $(
            #[test]
            fn $name() {
                ($block_on)($crate::scenarios::$module::$name($runtime));
            }
        )*
    };
    (@interop $runtime:expr, $block_on:expr; $($name:ident = $scenario:ident($($arg:expr),*),)*) => {
        $(
            #[test]
            fn $name() {
                if $crate::have_libtorrent() {
                    let swarm = $crate::scenarios::library_swarm();
                    ($block_on)($crate::scenarios::interop::$scenario($runtime, swarm, $($arg),*));
                }
            }
        )*
    };
}
