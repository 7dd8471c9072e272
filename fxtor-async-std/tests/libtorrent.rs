//! Against libtorrent (Debian's python3-libtorrent, driven by `tests/interop/lt_peer.py`):
//! libtorrent seeds and this crate downloads, then this crate seeds and libtorrent
//! downloads. Without python3-libtorrent the tests say so and pass, except under `CI=true`,
//! where they fail.

mod common;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use fxtor_async_std::{AddTorrentParams, Session, SessionSettings, TorrentState};

/// Debian's interpreter, the one python3-libtorrent is installed for.
const PYTHON: &str = "/usr/bin/python3";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt_peer.py")
}

/// Whether libtorrent can be driven here; in CI its absence is a failure.
fn libtorrent_present() -> bool {
    let importable = Command::new(PYTHON)
        .args(["-c", "import libtorrent"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !importable {
        assert!(
            !in_ci(),
            "{PYTHON} cannot import libtorrent: install python3-libtorrent (.ci/install-deps)"
        );
        eprintln!("skipped: {PYTHON} cannot import libtorrent (install python3-libtorrent)");
    }
    importable
}

fn localhost() -> SessionSettings {
    SessionSettings::listen_on(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// libtorrent seeding from a directory until dropped.
struct LtSeed {
    child: Child,
    port: u16,
}

impl LtSeed {
    fn start(torrent: &Path, dir: &Path) -> Self {
        let mut child = Command::new(PYTHON)
            .arg(script())
            .arg("seed")
            .args([torrent, dir])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start lt_peer.py seed");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let answer: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("lt_peer.py seed said {line:?}: {e}"));
        let port = answer["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("libtorrent does not seed: {answer}"));
        Self { child, port }
    }
}

impl Drop for LtSeed {
    fn drop(&mut self) {
        // Closing its standard input ends it.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

async fn libtorrent_seeds_we_download() {
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    let (info, bytes) = torrent_file(&seed_dir);
    let torrent = dir.path().join("content.torrent");
    std::fs::write(&torrent, bytes).unwrap();
    let seed = blocking::unblock(move || LtSeed::start(&torrent, &seed_dir)).await;

    let session = Session::new(localhost()).await.unwrap();
    let mut params = AddTorrentParams::from_info(info, &leech_dir);
    params
        .peers
        .push(SocketAddr::from(([127, 0, 0, 1], seed.port)));
    params.skip_check = true;
    let handle = session.add_torrent(params).await.unwrap();
    let status = futures_lite::future::or(handle.wait_finished(), async {
        async_io::Timer::after(Duration::from_secs(120)).await;
        panic!("the download from libtorrent took over two minutes");
    })
    .await
    .unwrap();
    assert_eq!(status.state, TorrentState::Seeding);
    for n in 0..FILES.len() {
        assert_file_matches(&leech_dir, n);
    }
    session.shutdown().await.unwrap();
    blocking::unblock(move || drop(seed)).await;
}

async fn we_seed_libtorrent_downloads() {
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    let (info, bytes) = torrent_file(&seed_dir);
    let torrent = dir.path().join("content.torrent");
    std::fs::write(&torrent, bytes).unwrap();

    let session = Session::new(localhost()).await.unwrap();
    let handle = session
        .add_torrent(AddTorrentParams::from_info(info, &seed_dir))
        .await
        .unwrap();
    assert_eq!(
        handle.wait_finished().await.unwrap().state,
        TorrentState::Seeding
    );
    let peer = session.listen_addr().unwrap().to_string();
    let leech = leech_dir.clone();
    let out = blocking::unblock(move || {
        Command::new(PYTHON)
            .arg(script())
            .arg("download")
            .args([&torrent, &leech])
            .args(["--peer", &peer])
            .output()
            .expect("run lt_peer.py download")
    })
    .await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "libtorrent did not complete the download: {said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for n in 0..FILES.len() {
        assert_file_matches(&leech_dir, n);
    }
    let status = handle.status().await.unwrap();
    let content: u64 = FILES.iter().map(|(_, len)| *len as u64).sum();
    assert!(status.total_uploaded >= content, "{status:?}");
    session.shutdown().await.unwrap();
}

#[test]
fn libtorrent_seeds_we_download_under_async_std() {
    if libtorrent_present() {
        async_std::task::block_on(libtorrent_seeds_we_download());
    }
}

#[test]
fn libtorrent_seeds_we_download_under_smol() {
    if libtorrent_present() {
        smol::block_on(libtorrent_seeds_we_download());
    }
}

#[test]
fn we_seed_libtorrent_downloads_under_async_std() {
    if libtorrent_present() {
        async_std::task::block_on(we_seed_libtorrent_downloads());
    }
}

#[test]
fn we_seed_libtorrent_downloads_under_smol() {
    if libtorrent_present() {
        smol::block_on(we_seed_libtorrent_downloads());
    }
}
