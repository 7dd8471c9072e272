//! libtorrent as the other peer, through Debian's python3-libtorrent and the one driver
//! script, `fxtor-tokio/tests/interop/lt.py` (its docstring lists its commands). Every
//! session it makes listens on 127.0.0.1 and accepts loopback peers only.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::process::Running;
use crate::tools::{run_ok, PYTHON};

/// How long libtorrent may take to check a seed's data on a busy machine.
const CHECK_LIMIT: Duration = Duration::from_secs(180);

/// The driver script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fxtor-tokio/tests/interop/lt.py")
}

/// The driver script, ready for its arguments.
pub fn command() -> Command {
    let mut cmd = Command::new(PYTHON);
    cmd.arg(script());
    cmd
}

/// Runs the driver script, insisting it succeeds, and parses its JSON answer (when it
/// prints one).
pub fn run(args: &[&str]) -> Value {
    let out = run_ok(command().args(args));
    if out.stdout.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout).expect("lt.py prints JSON")
    }
}

/// libtorrent seeding `torrent` from `save_path` (limited to `upload_limit` bytes a second,
/// if given), once it has checked its data; its address. It is killed when dropped.
pub fn seed(torrent: &Path, save_path: &Path, upload_limit: Option<u64>) -> (Running, SocketAddr) {
    let mut cmd = command();
    cmd.arg("seed").arg(torrent).arg(save_path);
    if let Some(limit) = upload_limit {
        cmd.args(["--upload-limit", &limit.to_string()]);
    }
    let seeder = Running::spawn(&mut cmd);
    let line = seeder.next_line(CHECK_LIMIT);
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{}", seeder.output()));
    assert_eq!(v["state"], "seeding", "{}", seeder.output());
    let port = v["port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("no port: {}", seeder.output()));
    (seeder, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// libtorrent downloading `torrent` into `out` from `peers` only, giving up after `limit`;
/// once finished it re-checks what it wrote.
pub fn download(torrent: &Path, out: &Path, peers: &[SocketAddr], limit: Duration) -> Running {
    let mut cmd = command();
    cmd.arg("download").arg(torrent).arg(out);
    for peer in peers {
        cmd.args(["--peer", &peer.to_string()]);
    }
    cmd.args(["--timeout", &limit.as_secs().to_string()]);
    Running::spawn(&mut cmd)
}

/// What `lt.py download` reported on its last line (`Null` if it printed no JSON).
pub fn download_report(leecher: &Running) -> Value {
    leecher
        .stdout
        .lock()
        .unwrap()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null)
}
