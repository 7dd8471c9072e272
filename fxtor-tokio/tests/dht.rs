//! The DHT (BEP5) end to end, on 127.0.0.1 only: a private DHT of libtorrent nodes
//! (`tests/interop/lt.py dht-node`) through which `fxtor download` finds a libtorrent seed
//! from a bare magnet link and a libtorrent leecher finds `fxtor seed`. (A DHT of fxtor
//! sessions alone is one of the scenarios every adapter runs: `fxtor-testkit`'s `dht`.)
//! No test here, or anywhere, names a DHT node that is not on loopback.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fxtor_proto::magnet::{MagnetLink, PeerAddress};
use fxtor_tokio::{AddTorrentParams, Alert, DhtSettings, Session, SessionSettings, TorrentSource};
use serde_json::Value;
use support::*;

const MIB: usize = 1 << 20;
/// How long any one transfer may take on a busy two-core machine.
const LIMIT: Duration = Duration::from_secs(180);
/// The torrent's name (the directory's name).
const NAME: &str = "dhtswarm";
/// Plain libtorrent nodes beside the first one: enough for a routing table to fill.
const LT_NODES: usize = 3;

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The content: two files below `root/src/dhtswarm`.
fn write_content(root: &Path) -> PathBuf {
    let src = root.join("src");
    write_data(&src.join(NAME).join("a.bin"), 3 * MIB + 1234, 41);
    write_data(&src.join(NAME).join("sub/b.bin"), MIB / 2 + 7, 42);
    src
}

/// Asserts the files below `out/dhtswarm` are those below `src/dhtswarm`.
fn assert_same_content(src: &Path, out: &Path, context: &str) {
    for path in ["a.bin", "sub/b.bin"] {
        let theirs = std::fs::read(src.join(NAME).join(path)).unwrap();
        let ours = std::fs::read(out.join(NAME).join(path))
            .unwrap_or_else(|e| panic!("{context}: {path}: {e}"));
        assert!(ours == theirs, "{context}: {path} differs");
    }
}

/// A private DHT of libtorrent nodes on 127.0.0.1: the first node (everyone's bootstrap
/// node) and a few more that joined through it.
struct LtDht {
    _nodes: Vec<Running>,
    bootstrap: SocketAddr,
}

impl LtDht {
    fn start() -> Self {
        let first = Running::spawn(Command::new(PYTHON).arg(lt_script()).arg("dht-node"));
        let bootstrap = loopback(port_of(&first));
        let mut nodes = vec![first];
        for _ in 0..LT_NODES {
            let node = Running::spawn(Command::new(PYTHON).arg(lt_script()).args([
                "dht-node",
                "--bootstrap",
                &bootstrap.to_string(),
            ]));
            port_of(&node);
            nodes.push(node);
        }
        Self {
            _nodes: nodes,
            bootstrap,
        }
    }
}

/// The port in the first line a libtorrent script prints.
fn port_of(run: &Running) -> u16 {
    let line = run.next_line(LIMIT);
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{}", run.output()));
    v["port"]
        .as_u64()
        .unwrap_or_else(|| panic!("{}", run.output())) as u16
}

/// A torrent of the content made by libtorrent (`v1` or `hybrid`), and `fxtor info` of it.
fn lt_torrent(root: &Path, src: &Path, mode: &str) -> (PathBuf, Value) {
    let torrent = root.join(format!("{mode}.torrent"));
    lt(&[
        "create",
        src.join(NAME).to_str().unwrap(),
        torrent.to_str().unwrap(),
        "--mode",
        mode,
        "--piece-length",
        "262144",
    ]);
    let info = fxtor_info(torrent.to_str().unwrap());
    (torrent, info)
}

/// libtorrent seeding `torrent` on the private DHT, once its announce is out.
fn lt_dht_seed(dht: &LtDht, torrent: &Path, src: &Path) -> Running {
    let seeder = Running::spawn(
        Command::new(PYTHON)
            .arg(lt_script())
            .arg("dht-seed")
            .arg(torrent)
            .arg(src)
            .args(["--bootstrap", &dht.bootstrap.to_string()]),
    );
    port_of(&seeder);
    seeder
}

/// How many IPv4 nodes a saved DHT state (`--dht-state`) holds.
fn saved_nodes(path: &Path) -> usize {
    let bytes = std::fs::read(path).expect("the DHT state file is there");
    let doc = fxtor_proto::bencode::decode(&bytes, fxtor_proto::bencode::Mode::Strict)
        .expect("the DHT state is bencoded");
    let dict = doc.root().as_dict().expect("a dictionary");
    assert_eq!(dict.get_bytes("id").map(<[u8]>::len), Some(20), "a node id");
    dict.get_bytes("nodes").map_or(0, |n| n.len() / 26)
}

#[test]
fn fxtor_downloads_a_bare_magnet_from_libtorrent_found_on_the_dht() {
    if !have_libtorrent() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = write_content(tmp.path());
    let dht = LtDht::start();
    // The routing table is saved at exit and the second run starts from it.
    let state = tmp.path().join("dht.state");
    for mode in ["v1", "hybrid"] {
        let (torrent, info) = lt_torrent(tmp.path(), &src, mode);
        let mut seeder = lt_dht_seed(&dht, &torrent, &src);
        // No tracker, no x.pe: the v1 link by btih, the hybrid one by btmh alone.
        let link = match info["info_hash_v2"].as_str() {
            Some(v2) => format!("magnet:?xt=urn:btmh:1220{v2}"),
            None => format!(
                "magnet:?xt=urn:btih:{}",
                info["info_hash_v1"].as_str().unwrap()
            ),
        };
        let out = tmp.path().join(format!("out-{mode}"));
        let mut cmd = fxtor_with_dht("download", &[dht.bootstrap]);
        cmd.arg(&link)
            .arg("-o")
            .arg(&out)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--dht-state")
            .arg(&state);
        let mut run = Running::spawn(&mut cmd);
        let status = run.wait_beside(LIMIT, Some(&mut seeder));
        assert_eq!(status, 0, "{mode}: {}", run.output());
        assert!(
            saved_nodes(&state) >= 1,
            "{mode}: the routing table was saved"
        );
        assert!(
            run.output().contains("DHT: joined"),
            "{mode}: {}",
            run.output()
        );
        assert_same_content(&src, &out, mode);
    }
}

#[test]
fn libtorrent_downloads_a_bare_magnet_from_fxtor_found_on_the_dht() {
    if !have_libtorrent() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = write_content(tmp.path());
    let dht = LtDht::start();
    let (torrent, info) = lt_torrent(tmp.path(), &src, "v1");
    let mut cmd = fxtor_with_dht("seed", &[dht.bootstrap]);
    cmd.arg(&torrent)
        .arg(&src)
        .args(["--listen", "127.0.0.1:0"]);
    let mut seeder = Running::spawn(&mut cmd);
    // Its data is checked; it announces as soon as its routing table holds nodes, and
    // the leecher asks the DHT again every few seconds until it has a peer.
    let deadline = Instant::now() + LIMIT;
    while !seeder.output().contains("checked:") {
        assert!(Instant::now() < deadline, "{}", seeder.output());
        assert!(!seeder.has_exited(), "{}", seeder.output());
        std::thread::sleep(Duration::from_millis(100));
    }
    let link = format!(
        "magnet:?xt=urn:btih:{}",
        info["info_hash_v1"].as_str().unwrap()
    );
    let out = tmp.path().join("out");
    let mut leecher = Running::spawn(
        Command::new(PYTHON)
            .arg(lt_script())
            .arg("dht-download")
            .arg(&link)
            .arg(&out)
            .args(["--bootstrap", &dht.bootstrap.to_string()])
            .args(["--timeout", "150"]),
    );
    let status = leecher.wait_beside(LIMIT, Some(&mut seeder));
    assert_eq!(status, 0, "{}", leecher.output());
    assert_same_content(&src, &out, "libtorrent from fxtor");
}

/// Session settings on 127.0.0.1 with a DHT joined through `bootstrap`.
fn dht_settings(bootstrap: &[SocketAddr]) -> SessionSettings {
    assert!(bootstrap.iter().all(|a| a.ip().is_loopback()));
    let mut dht = DhtSettings::new(bootstrap.iter().map(|a| PeerAddress::Ip(*a)).collect());
    // The first node has no bootstrap list to tell it this is a loopback network.
    dht.restrict_ips = false;
    SessionSettings {
        dht: Some(dht),
        ..SessionSettings::listen_on(loopback(0))
    }
}

/// Waits for the first alert `f` picks; how long it took from `start`.
async fn first_alert(
    alerts: &mut fxtor_tokio::Alerts,
    start: Instant,
    mut f: impl FnMut(&Alert) -> bool,
) -> Duration {
    let wait = async {
        while let Some(alert) = alerts.recv().await {
            if f(&alert) {
                return start.elapsed();
            }
        }
        panic!("the session stopped");
    };
    tokio::time::timeout(LIMIT, wait)
        .await
        .expect("the alert came in time")
}

/// How long a bare magnet takes on libtorrent's private DHT: to the first peer the DHT
/// gives, and to the metadata. Printed, not asserted (the machine is shared).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_to_first_dht_peer_and_metadata() {
    if !have_libtorrent() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = write_content(tmp.path());
    let dht = LtDht::start();
    let (torrent, _) = lt_torrent(tmp.path(), &src, "v1");
    let _seeder = lt_dht_seed(&dht, &torrent, &src);
    let info = fxtor_proto::TorrentInfo::from_bytes(&std::fs::read(&torrent).unwrap()).unwrap();

    let session = Session::new(dht_settings(&[dht.bootstrap])).await.unwrap();
    let mut alerts = session.alerts();
    // Added once the DHT is up, as an application that has run a while would.
    let start = Instant::now();
    let joined = first_alert(&mut alerts, start, |a| {
        matches!(a, Alert::DhtBootstrapped { .. })
    })
    .await;
    let link = MagnetLink::new(info.info_hashes());
    let start = Instant::now();
    session
        .add_torrent(AddTorrentParams::new(
            TorrentSource::Magnet(link),
            tmp.path().join("out"),
        ))
        .await
        .unwrap();
    let peer = first_alert(&mut alerts, start, |a| matches!(a, Alert::DhtPeers { .. })).await;
    let metadata = first_alert(&mut alerts, start, |a| {
        matches!(a, Alert::MetadataReceived { .. })
    })
    .await;
    println!(
        "DHT on libtorrent's private DHT: joined in {joined:?}; bare magnet to first DHT peer \
         {peer:?}, to metadata {metadata:?}"
    );
    assert!(peer <= metadata);
    session.shutdown().await.unwrap();

    // Cold: the magnet is added as the session starts, before the DHT has joined.
    let start = Instant::now();
    let session = Session::new(dht_settings(&[dht.bootstrap])).await.unwrap();
    let mut alerts = session.alerts();
    session
        .add_torrent(AddTorrentParams::new(
            TorrentSource::Magnet(MagnetLink::new(info.info_hashes())),
            tmp.path().join("out-cold"),
        ))
        .await
        .unwrap();
    let peer = first_alert(&mut alerts, start, |a| matches!(a, Alert::DhtPeers { .. })).await;
    let metadata = first_alert(&mut alerts, start, |a| {
        matches!(a, Alert::MetadataReceived { .. })
    })
    .await;
    println!(
        "DHT on libtorrent's private DHT, from a session's start: first DHT peer {peer:?}, \
         metadata {metadata:?}"
    );
    session.shutdown().await.unwrap();
}

#[test]
fn test_helpers_never_give_a_non_loopback_dht_node() {
    // The plain spawner turns the DHT off, and so does the shared scenarios' download
    // command (whatever program it is given).
    let (nodes, off) = dht_of(&fxtor());
    assert!(nodes.is_empty() && off);
    let download = fxtor_testkit::download_command(
        Command::new("download"),
        "a.torrent".as_ref(),
        "out".as_ref(),
        &[loopback(6881)],
        None,
    );
    let (nodes, off) = dht_of(&download);
    assert!(nodes.is_empty() && off);
    // The DHT one names loopback nodes only, and leaves FXTOR_NO_DHT unset.
    let cmd = fxtor_with_dht("download", &[loopback(6881), "[::1]:6881".parse().unwrap()]);
    let (nodes, off) = dht_of(&cmd);
    assert!(!off);
    assert_eq!(nodes.len(), 2);
    for node in nodes {
        let addr: SocketAddr = node.parse().unwrap();
        assert!(addr.ip().is_loopback(), "{addr}");
    }
    // Anything else is refused.
    for public in ["67.215.246.10:6881", "10.0.0.1:6881"] {
        let addr: SocketAddr = public.parse().unwrap();
        assert!(std::panic::catch_unwind(|| fxtor_with_dht("seed", &[addr])).is_err());
    }
    assert!(std::panic::catch_unwind(|| fxtor_with_dht("seed", &[])).is_err());
    // The library's default settings have no DHT at all.
    assert!(SessionSettings::default().dht.is_none());
}
