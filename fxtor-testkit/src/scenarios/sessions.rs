//! fxtor sessions on their own, on the runtime under test: the same API with the same
//! behaviour on every runtime.

use std::path::Path;
use std::time::Duration;

use fxtor_io::runtime::{self, Runtime};
use fxtor_io::session::Session;
use fxtor_io::{AddTorrentParams, Error, SessionSettings};
use fxtor_proto::session::{Alert, TorrentId, TorrentState};
use fxtor_proto::{PieceIndex, TorrentInfo};

use super::{localhost, within};
use crate::content::small::{self, assert_file_matches, file_bytes, FILES, NAME};

/// A session listens on the address asked for, accepts connections, answers commands,
/// shuts down (twice harmlessly), then refuses commands; its alerts end with it.
pub async fn a_session_listens_and_shuts_down<R: Runtime>(rt: R) {
    let session = Session::with_runtime(rt.clone(), localhost())
        .await
        .unwrap();
    let addr = session.listen_addr().unwrap();
    assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
    assert_ne!(addr.port(), 0);
    // A connection is accepted by the loop; either way it goes on answering commands.
    let _peer = rt.connect(addr).await.unwrap();
    assert!(session.torrents().await.unwrap().is_empty());
    let mut alerts = session.alerts();
    session.shutdown().await.unwrap();
    session.shutdown().await.unwrap();
    assert!(matches!(session.torrents().await, Err(Error::Shutdown)));
    assert_eq!(alerts.recv().await, None);
}

/// A session that does not listen has no address; every command to a torrent it does not
/// have fails with the core's error.
pub async fn an_unknown_torrent_refuses_every_command<R: Runtime>(rt: R) {
    let outgoing_only = SessionSettings {
        listen: None,
        ..SessionSettings::default()
    };
    let session = Session::with_runtime(rt, outgoing_only).await.unwrap();
    assert!(session.listen_addr().is_none());
    let ghost = session.handle(TorrentId(3));
    let outcomes = [
        ghost.pause().await,
        ghost.resume().await,
        ghost.force_recheck().await,
        ghost.set_sequential(true).await,
        ghost.prioritize_files(vec![1]).await,
        ghost.set_piece_priority(PieceIndex(0), 1).await,
        ghost
            .set_piece_deadline(PieceIndex(0), Duration::from_secs(1))
            .await,
        session.remove_torrent(&ghost, false).await,
    ];
    for outcome in outcomes {
        assert!(matches!(outcome, Err(Error::Session(_))), "{outcome:?}");
    }
    assert!(matches!(ghost.status().await, Err(Error::Session(_))));
    assert!(ghost.save_resume_data().await.is_err());
    session.shutdown().await.unwrap();
}

/// Dropping every handle stops the session: its alerts end and its listener closes.
pub async fn dropping_every_handle_stops_the_session<R: Runtime>(rt: R) {
    let session = Session::with_runtime(rt.clone(), localhost())
        .await
        .unwrap();
    let addr = session.listen_addr().unwrap();
    let mut alerts = session.alerts();
    drop(session);
    assert_eq!(alerts.recv().await, None);
    assert!(rt.connect(addr).await.is_err());
}

/// The runtime's blocking pool runs work and turns a panic there into `None`.
pub async fn blocking_work_runs_and_a_panic_is_none<R: Runtime>(rt: R) {
    assert_eq!(rt.spawn_blocking(|| 7).await, Some(7));
    let panicked: Option<()> = rt.spawn_blocking(|| panic!("on purpose")).await;
    assert_eq!(panicked, None);
}

/// A session seeding the torrent from `seed_dir`, its data checked.
async fn seeder<R: Runtime>(rt: &R, info: &TorrentInfo, seed_dir: &Path) -> Session<R> {
    let session = Session::with_runtime(rt.clone(), localhost())
        .await
        .unwrap();
    let torrent = session
        .add_torrent(AddTorrentParams::from_info(info.clone(), seed_dir))
        .await
        .unwrap();
    let status = within(rt, "the seeder's check", torrent.wait_finished())
        .await
        .unwrap();
    assert_eq!(status.state, TorrentState::Seeding);
    session
}

/// One session seeds, another downloads (sequentially, with a deadline on the first
/// piece): the bytes, the status and the alerts are right. Then a third session starts
/// from the saved resume file: it seeds at once without a check, with the all-time totals
/// carried over, and a removal without deleting leaves the files.
pub async fn a_swarm_of_two<R: Runtime>(rt: R) {
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    let info = small::seeded_torrent(&seed_dir);
    let seeding = seeder(&rt, &info, &seed_dir).await;

    let leecher = Session::with_runtime(rt.clone(), localhost())
        .await
        .unwrap();
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
    let status = within(&rt, "the download", torrent.wait_finished())
        .await
        .unwrap();
    for n in 0..FILES.len() {
        assert_file_matches(&leech_dir, n);
    }
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

    let again = Session::with_runtime(rt.clone(), localhost())
        .await
        .unwrap();
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

/// A paused torrent with a skipped file downloads only the files asked for (from a peer it
/// connects to: the session does not listen); the skipped one too once its priority rises.
/// A re-check finds every piece again; removing with the files deletes them.
pub async fn priorities_recheck_and_removal<R: Runtime>(rt: R) {
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    let info = small::seeded_torrent(&seed_dir);
    let seeding = seeder(&rt, &info, &seed_dir).await;

    let outgoing_only = SessionSettings {
        listen: None,
        ..localhost()
    };
    let leecher = Session::with_runtime(rt.clone(), outgoing_only)
        .await
        .unwrap();
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
    let status = within(&rt, "the partial download", torrent.wait_finished())
        .await
        .unwrap();
    assert_eq!(status.state, TorrentState::Finished);
    assert!(status.total_wanted < whole, "{status:?}");
    assert_file_matches(&leech_dir, 0);
    assert_file_matches(&leech_dir, 2);

    torrent.prioritize_files(vec![4, 4, 4]).await.unwrap();
    let status = within(
        &rt,
        "the rest",
        torrent.wait_for(|s| s.state == TorrentState::Seeding),
    )
    .await
    .unwrap();
    assert_eq!(status.total_wanted, whole);
    assert_file_matches(&leech_dir, 1);

    torrent.force_recheck().await.unwrap();
    within(&rt, "the re-check", torrent.wait_finished())
        .await
        .unwrap();
    let status = torrent.status().await.unwrap();
    assert_eq!(status.num_have, status.num_pieces);
    leecher.remove_torrent(&torrent, true).await.unwrap();
    within(&rt, "deleting the files", async {
        while leech_dir.join(NAME).join(FILES[0].0).exists() {
            runtime::sleep(&rt, Duration::from_millis(20)).await;
        }
    })
    .await;
    leecher.shutdown().await.unwrap();
    seeding.shutdown().await.unwrap();
}
