//! Outside tools: whether they are installed, and running them.
//!
//! A tool that is missing fails the test loudly under `CI=true`; elsewhere the test says what
//! is missing and returns early, so `cargo test` on a bare machine still runs the rest.

use std::process::{Command, Output};

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
