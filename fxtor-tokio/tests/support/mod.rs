//! What the end-to-end tests share: the `fxtor` binary, libtorrent through Debian's
//! python3-libtorrent, and the independent torrent makers.
//!
//! A tool that is missing fails the test loudly under `CI=true`; elsewhere the test says what
//! is missing and returns early, so `cargo test` on a bare machine still runs the rest.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod process;

/// Debian's interpreter, the one python3-libtorrent is installed for.
pub const PYTHON: &str = "/usr/bin/python3";

/// Whether the test runs in CI, where every tool must be there.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Checks a tool is installed. In CI a missing tool is a failure; elsewhere the caller skips.
pub fn require(what: &str, present: bool) -> bool {
    if !present {
        assert!(!in_ci(), "{what} is missing: run .ci/install-deps");
        eprintln!("skipping: {what} is not installed (run .ci/install-deps)");
    }
    present
}

/// Whether python3-libtorrent is importable.
pub fn have_libtorrent() -> bool {
    require(
        "python3-libtorrent",
        Command::new(PYTHON)
            .args(["-c", "import libtorrent"])
            .output()
            .is_ok_and(|o| o.status.success()),
    )
}

/// Whether an executable is on PATH.
pub fn have_tool(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    require(name, found)
}

/// Runs a command and insists it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The `fxtor` program built with this test.
pub fn fxtor() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fxtor"))
}

/// Runs `fxtor info --json` on a torrent or link.
pub fn fxtor_info(source: &str) -> Value {
    let out = run_ok(fxtor().args(["info", "--json", source]));
    serde_json::from_slice(&out.stdout).expect("fxtor info --json prints JSON")
}

/// The interop script driving libtorrent.
pub fn lt_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt.py")
}

/// Runs the libtorrent script and parses its JSON answer (when it prints one).
pub fn lt(args: &[&str]) -> Value {
    let out = run_ok(Command::new(PYTHON).arg(lt_script()).args(args));
    if out.stdout.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout).expect("lt.py prints JSON")
    }
}

/// Writes `len` bytes of deterministic pseudo-random data (a simple xorshift stream).
pub fn write_data(path: &Path, len: usize, seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(len);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create data directory");
    }
    std::fs::write(path, data).expect("write data file");
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
