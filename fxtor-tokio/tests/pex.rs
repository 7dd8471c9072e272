//! Peer exchange (BEP11) with libtorrent on 127.0.0.1.
//!
//! libtorrent seeder A and libtorrent downloader B (slowed down, so it stays a downloader
//! that keeps its connection to A) run in one process of `tests/interop/lt.py pair`; B
//! dialled A. fxtor is told of B only. B's `ut_pex` names A; fxtor connects to A, and says
//! that it learnt A's address through peer exchange. Then it downloads the torrent.
//!
//! The other way round: fxtor seeds, libtorrent D dials it and downloads slowly, and
//! libtorrent L, told of fxtor only, learns D's listen address from fxtor's `ut_pex`
//! (`lt.py join`) and connects to it: libtorrent reads what fxtor sends.
//!
//! libtorrent sends a peer its first `ut_pex` message at its first once-a-second tick
//! after the extension handshake once it has another peer to name (then at most one a
//! minute), so this takes seconds, not the minute of the steady-state interval.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fxtor_tokio::{AddTorrentParams, Alert, PeerSource, Session, SessionSettings, TorrentState};
use serde_json::Value;
use support::*;

const MIB: usize = 1 << 20;
/// How long B's peer exchange may take to bring fxtor to A (libtorrent's first message
/// comes within seconds; a busy two-core machine gets ample slack).
const PEX_LIMIT: Duration = Duration::from_secs(60);
const TRANSFER_LIMIT: Duration = Duration::from_secs(120);

/// Content of a few files, and its torrent (made by libtorrent) of `mode`.
fn content(root: &Path, mode: &str) -> std::path::PathBuf {
    let src = root.join("src").join("pexed");
    write_data(&src.join("a.bin"), 5 * MIB + 123, 1);
    write_data(&src.join("b.bin"), 3 * MIB + 7, 2);
    let torrent = root.join("pexed.torrent");
    lt(&[
        "create",
        src.to_str().unwrap(),
        torrent.to_str().unwrap(),
        "--mode",
        mode,
        "--piece-length",
        "65536",
    ]);
    torrent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fxtor_learns_a_libtorrent_seed_through_pex_and_connects_to_it() {
    if !have_libtorrent() {
        return;
    }
    for mode in ["v1", "hybrid"] {
        learn_and_connect(mode).await;
    }
}

/// Starts `lt.py pair` (libtorrent seed A and peer B, connected); its report line. A
/// harness that dies before reporting (the Python process, not fxtor, which is not
/// involved yet) is started once more, after saying how it ended.
fn start_pair(torrent: &Path, seed_dir: &Path, peer_dir: &Path) -> (Running, String) {
    let spawn = || {
        Running::spawn(
            Command::new(PYTHON)
                .arg(lt_script())
                .arg("pair")
                .arg(torrent)
                .arg(seed_dir)
                .arg(peer_dir)
                .args(["--download-limit", "16384"]),
        )
    };
    let mut pair = spawn();
    if let Some(line) = pair.try_next_line(TRANSFER_LIMIT) {
        return (pair, line);
    }
    eprintln!(
        "lt.py pair ended ({:?}) before reporting; starting it again: {}",
        pair.exit_status(),
        pair.output()
    );
    let pair = spawn();
    let line = pair.next_line(TRANSFER_LIMIT);
    (pair, line)
}

async fn learn_and_connect(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let torrent = content(dir.path(), mode);
    let peer_dir = dir.path().join("b");
    std::fs::create_dir_all(&peer_dir).unwrap();
    let (pair, line) = start_pair(&torrent, &dir.path().join("src"), &peer_dir);
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{}", pair.output()));
    let seed: SocketAddr = v["seed"].as_str().unwrap().parse().unwrap();
    let peer: SocketAddr = v["peer"].as_str().unwrap().parse().unwrap();
    assert!(seed.ip().is_loopback() && peer.ip().is_loopback());

    let session = Session::new(SessionSettings::listen_on("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let mut alerts = session.alerts();
    let out = tempfile::tempdir().unwrap();
    let mut params =
        AddTorrentParams::parse(torrent.to_str().unwrap(), |p| std::fs::read(p), out.path())
            .unwrap();
    params.peers = vec![peer];
    let started = Instant::now();
    let handle = session.add_torrent(params).await.unwrap();

    let mut seen = Vec::new();
    let learnt = tokio::time::timeout(PEX_LIMIT, async {
        while let Some(alert) = alerts.recv().await {
            if !matches!(alert, Alert::Stats { .. }) {
                seen.push(format!("{alert:?}"));
            }
            if let Alert::PeerConnected { addr, sources, .. } = alert {
                if addr == seed {
                    return Some(sources);
                }
            }
        }
        None
    })
    .await;
    let sources = match learnt {
        Ok(Some(sources)) => sources,
        other => panic!(
            "{mode}: fxtor did not connect to A ({seed}) within {PEX_LIMIT:?}: {other:?}\n{}\nalerts:\n{}",
            pair.output(),
            seen.join("\n")
        ),
    };
    eprintln!(
        "{mode}: connected to A through PEX {:?} after adding the torrent",
        started.elapsed()
    );
    assert!(sources.contains(PeerSource::Pex), "{mode}: {sources:?}");
    assert!(
        !sources.contains(PeerSource::Manual),
        "{mode}: A was never given: {sources:?}"
    );

    let status = tokio::time::timeout(TRANSFER_LIMIT, handle.wait_finished())
        .await
        .unwrap_or_else(|_| panic!("{mode}: not finished: {}", pair.output()))
        .unwrap();
    assert_eq!(status.state, TorrentState::Seeding);
    for name in ["a.bin", "b.bin"] {
        let ours = std::fs::read(out.path().join("pexed").join(name)).unwrap();
        let theirs = std::fs::read(dir.path().join("src").join("pexed").join(name)).unwrap();
        assert!(ours == theirs, "{mode}: {name} differs");
    }
    session.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libtorrent_learns_a_peer_through_fxtor_pex() {
    if !have_libtorrent() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let torrent = content(dir.path(), "hybrid");
    let session = Session::new(SessionSettings::listen_on("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let mut params = AddTorrentParams::parse(
        torrent.to_str().unwrap(),
        |p| std::fs::read(p),
        dir.path().join("src"),
    )
    .unwrap();
    params.seed_mode = true;
    let handle = session.add_torrent(params).await.unwrap();
    handle
        .wait_for(|s| s.state == TorrentState::Seeding)
        .await
        .unwrap();
    let fxtor_addr = session.listen_addr().unwrap();

    let join = |save: &str, expect: Option<SocketAddr>| {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(lt_script())
            .arg("join")
            .arg(&torrent)
            .arg(dir.path().join(save))
            .args(["--peer", &fxtor_addr.to_string()]);
        if let Some(expect) = expect {
            cmd.args(["--expect", &expect.to_string()]);
        }
        Running::spawn(&mut cmd)
    };
    let mut downloader = join("d", None);
    let line = downloader.next_line(TRANSFER_LIMIT);
    let v: Value =
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("{}", downloader.output()));
    let d_addr = SocketAddr::from(([127, 0, 0, 1], v["port"].as_u64().unwrap() as u16));

    let started = Instant::now();
    let mut learner = join("l", Some(d_addr));
    let status = learner.wait_beside(PEX_LIMIT + Duration::from_secs(30), Some(&mut downloader));
    assert_eq!(
        status,
        0,
        "libtorrent did not learn {d_addr} from fxtor: {}\ndownloader: {}",
        learner.output(),
        downloader.output()
    );
    let report: Value = learner
        .stdout
        .lock()
        .unwrap()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    assert_eq!(report["learnt"], d_addr.to_string(), "{report}");
    eprintln!(
        "libtorrent learnt {d_addr} through fxtor's PEX within {:?}",
        started.elapsed()
    );
    session.shutdown().await.unwrap();
}
