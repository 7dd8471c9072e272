//! Two sessions of this crate on 127.0.0.1: one seeds, the other downloads; run under
//! async-std's executor and under smol's.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::*;
use fxtor_async_std::{
    AddTorrentParams, Alert, Session, SessionSettings, TorrentHandle, TorrentState,
};
use fxtor_proto::{PieceIndex, TorrentInfo};

/// Longer than any transfer here takes; a hang fails the test instead of stalling it.
const LIMIT: Duration = Duration::from_secs(120);

fn localhost() -> SessionSettings {
    SessionSettings::listen_on(SocketAddr::from(([127, 0, 0, 1], 0)))
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    futures_lite::future::or(future, async {
        async_io::Timer::after(LIMIT).await;
        panic!("{what} took longer than {LIMIT:?}");
    })
    .await
}

/// A session seeding the torrent from `seed_dir`, its data checked.
async fn seeder(info: &TorrentInfo, seed_dir: &Path) -> (Session, TorrentHandle) {
    let session = Session::new(localhost()).await.unwrap();
    let torrent = session
        .add_torrent(AddTorrentParams::from_info(info.clone(), seed_dir))
        .await
        .unwrap();
    let status = within("the seeder's check", torrent.wait_finished())
        .await
        .unwrap();
    assert_eq!(status.state, TorrentState::Seeding);
    (session, torrent)
}

/// Downloads the torrent from a seeder, checks the bytes, the alerts and the status, then
/// restarts from the resume file without a check.
async fn seed_and_download() {
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    let info = seeded_torrent(&seed_dir);
    let (seeding, _) = seeder(&info, &seed_dir).await;

    let leecher = Session::new(localhost()).await.unwrap();
    let mut alerts = leecher.alerts();
    let mut params = AddTorrentParams::from_info(info.clone(), &leech_dir);
    params.peers.push(seeding.listen_addr().unwrap());
    params.skip_check = true;
    let torrent = leecher.add_torrent(params).await.unwrap();
    torrent.set_sequential(true).await.unwrap();
    torrent
        .set_piece_deadline(PieceIndex(0), Duration::from_millis(500))
        .await
        .unwrap();
    let status = within("the download", torrent.wait_finished())
        .await
        .unwrap();
    for n in 0..FILES.len() {
        assert_file_matches(&leech_dir, n);
    }
    // Pad files count as wanted (and are never sent): the torrent's whole size.
    // Wanted bytes are the files' bytes, pads not counted.
    assert_eq!(status.total_wanted, file_bytes(&info));
    assert_eq!(status.total_wanted_done, file_bytes(&info));
    assert_eq!(status.num_have, status.num_pieces);
    let content: u64 = FILES.iter().map(|(_, len)| *len as u64).sum();
    assert!(status.total_downloaded >= content, "{status:?}");

    // The alerts told the story: a peer, pieces, the end.
    let mut seen = Vec::new();
    while let Some(alert) = alerts.try_recv() {
        seen.push(alert);
    }
    let id = torrent.id();
    assert!(
        seen.contains(&Alert::TorrentFinished { torrent: id }),
        "{seen:?}"
    );
    assert!(seen
        .iter()
        .any(|a| matches!(a, Alert::PeerConnected { torrent, .. } if *torrent == id)));
    let pieces = seen
        .iter()
        .filter(|a| matches!(a, Alert::PieceFinished { torrent, .. } if *torrent == id))
        .count();
    assert_eq!(pieces as u32, status.num_pieces);

    // Resume data: a new session takes every piece on trust and seeds at once.
    let resume = dir.path().join("leech.resume");
    torrent.save_resume_file(&resume).await.unwrap();
    leecher.shutdown().await.unwrap();
    assert_eq!(alerts.recv().await, None, "the alerts end with the session");
    assert!(torrent.status().await.is_err());

    let again = Session::new(localhost()).await.unwrap();
    let mut params = AddTorrentParams::from_info(info, &leech_dir);
    params.resume_data = fxtor_io::resume::read_resume_file(&resume).unwrap();
    assert!(params.resume_data.is_some());
    let torrent = again.add_torrent(params).await.unwrap();
    let status = torrent.status().await.unwrap();
    assert_eq!(status.state, TorrentState::Seeding, "{status:?}");
    assert_eq!(status.num_have, status.num_pieces);
    // The all-time totals carry over in the resume data; this session has moved nothing.
    assert!(status.all_time_downloaded >= content, "{status:?}");
    assert_eq!(status.total_downloaded, 0, "{status:?}");
    assert_eq!(again.torrents().await.unwrap().len(), 1);
    again.remove_torrent(&torrent, false).await.unwrap();
    assert!(again.torrents().await.unwrap().is_empty());
    again.shutdown().await.unwrap();
    seeding.shutdown().await.unwrap();
    // Files stay where they are after a removal without deleting.
    assert_file_matches(&leech_dir, 0);
}

/// Downloads only the files asked for; then the skipped one too, once its priority rises.
async fn download_by_priority() {
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    let info = seeded_torrent(&seed_dir);
    let (seeding, _) = seeder(&info, &seed_dir).await;

    // Outgoing connections only: the leecher does not listen.
    let outgoing_only = SessionSettings {
        listen: None,
        ..localhost()
    };
    let leecher = Session::new(outgoing_only).await.unwrap();
    let whole = file_bytes(&info);
    let mut params = AddTorrentParams::from_info(info, &leech_dir);
    params.skip_check = true;
    params.paused = true;
    let torrent = leecher.add_torrent(params).await.unwrap();
    torrent.prioritize_files(vec![7, 0, 1]).await.unwrap();
    torrent.resume().await.unwrap();
    torrent
        .connect_peer(seeding.listen_addr().unwrap())
        .await
        .unwrap();
    let status = within("the partial download", torrent.wait_finished())
        .await
        .unwrap();
    assert_eq!(status.state, TorrentState::Finished);
    assert!(status.total_wanted < whole, "{status:?}");
    assert_file_matches(&leech_dir, 0);
    assert_file_matches(&leech_dir, 2);

    torrent.prioritize_files(vec![4, 4, 4]).await.unwrap();
    let status = within(
        "the rest",
        torrent.wait_for(|s| s.state == TorrentState::Seeding),
    )
    .await
    .unwrap();
    assert_eq!(status.total_wanted, whole);
    assert_file_matches(&leech_dir, 1);

    // A re-check finds every piece again; removing with the files deletes them.
    torrent.force_recheck().await.unwrap();
    within("the re-check", torrent.wait_finished())
        .await
        .unwrap();
    assert_eq!(
        torrent.status().await.unwrap().num_have,
        info_pieces(&torrent).await
    );
    leecher.remove_torrent(&torrent, true).await.unwrap();
    within("deleting the files", async {
        while leech_dir.join(NAME).join(FILES[0].0).exists() {
            async_io::Timer::after(Duration::from_millis(20)).await;
        }
    })
    .await;
    leecher.shutdown().await.unwrap();
    seeding.shutdown().await.unwrap();
}

async fn info_pieces(torrent: &TorrentHandle) -> u32 {
    torrent.status().await.unwrap().num_pieces
}

#[test]
fn a_swarm_of_two_under_async_std() {
    async_std::task::block_on(seed_and_download());
}

#[test]
fn a_swarm_of_two_under_smol() {
    smol::block_on(seed_and_download());
}

#[test]
fn priorities_under_async_std() {
    async_std::task::block_on(download_by_priority());
}

#[test]
fn priorities_under_smol() {
    smol::block_on(download_by_priority());
}

/// The bytes of the torrent's files, pad files left out.
fn file_bytes(info: &fxtor_proto::TorrentInfo) -> u64 {
    info.files()
        .files()
        .iter()
        .filter(|f| !f.is_pad())
        .map(|f| f.size())
        .sum()
}
