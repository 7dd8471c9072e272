//! The scenarios every adapter passes (`fxtor-testkit`: sessions alone, and transfers with
//! libtorrent for v1, v2 and hybrid torrents, a killed download resuming), on `AsyncIo`
//! under async-std's executor and under smol's. The download program killed half way is
//! this crate's `download` example, run under the same executor.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The `download` example, built in this test's profile, on `executor`.
fn download_example(executor: &str) -> Command {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    let program = PROGRAM.get_or_init(|| {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        fxtor_testkit::example_program(manifest, "fxtor-async-std", "download")
    });
    let mut cmd = Command::new(program);
    cmd.env("FXTOR_EXECUTOR", executor);
    cmd
}

mod under_async_std {
    use super::*;

    fn block_on(test: impl Future<Output = ()>) {
        async_std::task::block_on(test)
    }

    fn program() -> Command {
        download_example("async-std")
    }

    fxtor_testkit::runtime_tests!(
        runtime: fxtor_async_std::AsyncIo,
        block_on: block_on,
        download_program: program,
    );
}

mod under_smol {
    use super::*;

    fn block_on(test: impl Future<Output = ()>) {
        smol::block_on(test)
    }

    fn program() -> Command {
        download_example("smol")
    }

    fxtor_testkit::runtime_tests!(
        runtime: fxtor_async_std::AsyncIo,
        block_on: block_on,
        download_program: program,
    );
}
