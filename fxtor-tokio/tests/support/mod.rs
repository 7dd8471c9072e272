//! What the end-to-end tests share: the `fxtor` binary built with them, and, from
//! `fxtor-testkit` (shared with fxtor-async-std's tests), libtorrent through Debian's
//! python3-libtorrent (`tests/interop/lt.py`), the checks for outside tools, and content.
//!
//! A tool that is missing fails the test loudly under `CI=true`; elsewhere the test says what
//! is missing and returns early, so `cargo test` on a bare machine still runs the rest.
#![allow(dead_code, unused_imports)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

pub use fxtor_testkit::libtorrent::{run as lt, script as lt_script};
pub use fxtor_testkit::{
    have_libtorrent, have_tool, in_ci, require, run_ok, write_data, Running, PYTHON,
};

/// The `fxtor` program built with this test.
pub fn fxtor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fxtor"))
}

/// Runs `fxtor info --json` on a torrent or link.
pub fn fxtor_info(source: &str) -> Value {
    let out = run_ok(fxtor().args(["info", "--json", source]));
    serde_json::from_slice(&out.stdout).expect("fxtor info --json prints JSON")
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
