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

/// The `fxtor` program built with this test, its DHT off (`FXTOR_NO_DHT=1`): no test may
/// reach the public DHT routers the program joins through by default.
pub fn fxtor() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fxtor"));
    cmd.env("FXTOR_NO_DHT", "1");
    cmd
}

/// `fxtor SUBCOMMAND` with its DHT on, joining only through `bootstrap`, which must be
/// loopback addresses (it panics otherwise): `--dht-bootstrap` replaces the default list.
pub fn fxtor_with_dht(subcommand: &str, bootstrap: &[std::net::SocketAddr]) -> Command {
    assert!(
        !bootstrap.is_empty(),
        "a DHT test names its bootstrap nodes"
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fxtor"));
    cmd.env_remove("FXTOR_NO_DHT").arg(subcommand);
    for node in bootstrap {
        assert!(
            node.ip().is_loopback(),
            "{node} is not a loopback address: tests stay on loopback"
        );
        cmd.arg("--dht-bootstrap").arg(node.to_string());
    }
    cmd
}

/// The DHT bootstrap nodes a command was given, and whether its DHT is off.
pub fn dht_of(cmd: &Command) -> (Vec<String>, bool) {
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let nodes = args
        .windows(2)
        .filter(|w| w[0] == "--dht-bootstrap")
        .map(|w| w[1].clone())
        .collect();
    let off = cmd
        .get_envs()
        .any(|(k, v)| k == "FXTOR_NO_DHT" && v.is_some_and(|v| v == "1"))
        || args.iter().any(|a| a == "--no-dht");
    (nodes, off)
}

/// `fxtor seed TORRENT DATA_DIR` on 127.0.0.1, and the address it listens on.
pub fn fxtor_seed(torrent: &Path, data_dir: &Path) -> (Running, std::net::SocketAddr) {
    let seeder = Running::spawn(
        fxtor()
            .arg("seed")
            .arg(torrent)
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"]),
    );
    let line = seeder.next_line(std::time::Duration::from_secs(180));
    let addr = line
        .strip_prefix("listening on ")
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .unwrap_or_else(|| panic!("fxtor seed: {}", seeder.output()));
    assert!(addr.ip().is_loopback(), "{addr}");
    (seeder, addr)
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
