//! The scenarios every adapter passes (`fxtor-testkit`: sessions alone, and transfers with
//! libtorrent for v1, v2 and hybrid torrents, a killed download resuming), on `Tokio` under
//! a multi-threaded tokio runtime. The download program killed half way is `fxtor download`.

use std::future::Future;
use std::process::Command;

fn block_on(test: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(test)
}

fn fxtor_download() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fxtor"));
    cmd.arg("download");
    cmd
}

fxtor_testkit::runtime_tests!(
    runtime: fxtor_tokio::Tokio,
    block_on: block_on,
    download_program: fxtor_download,
);
