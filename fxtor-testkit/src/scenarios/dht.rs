//! A DHT of fxtor sessions alone on 127.0.0.1, on the runtime under test: the sessions
//! join through one of them, a seed announces itself, and a bare magnet link (no tracker,
//! no peer) finds it.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use fxtor_io::runtime::{self, Runtime};
use fxtor_io::session::Session;
use fxtor_io::{AddTorrentParams, Alerts, DhtSettings, SessionSettings};
use fxtor_proto::magnet::{MagnetLink, PeerAddress};
use fxtor_proto::session::{Alert, TorrentSource, TorrentState};

use super::{localhost, within, LIMIT};
use crate::content::small::{self, assert_file_matches, FILES};

/// How many sessions form the DHT.
const NODES: usize = 20;

/// Settings on 127.0.0.1 with a DHT joined through `bootstrap` (loopback addresses only).
fn dht_settings(bootstrap: Option<SocketAddr>) -> SessionSettings {
    let bootstrap: Vec<PeerAddress> = bootstrap.into_iter().map(PeerAddress::Ip).collect();
    assert!(bootstrap.iter().all(|node| matches!(node,
        PeerAddress::Ip(addr) if addr.ip().is_loopback())));
    let mut dht = DhtSettings::new(bootstrap);
    // The first node has no bootstrap list to tell it this is a loopback network, where
    // every node shares one IP.
    dht.restrict_ips = false;
    SessionSettings {
        dht: Some(dht),
        ..localhost()
    }
}

/// Twenty sessions join a DHT through the first; each routing table comes to hold several
/// others. A seed on one and a bare magnet link on another meet through the DHT (whichever
/// finds the other's announce: when the leecher looks before the seed's announce has
/// landed, the seed's own lookup finds the leecher), and the bytes arrive whole. The
/// leecher's routing table is saved.
pub async fn twenty_sessions_form_a_dht_and_find_a_seed<R: Runtime>(rt: R) {
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    let info = small::seeded_torrent(&seed_dir);

    let first = Session::with_runtime(rt.clone(), dht_settings(None))
        .await
        .unwrap();
    let bootstrap = first.udp_addr().expect("a UDP socket");
    let mut sessions = vec![first];
    for _ in 1..NODES {
        let session = Session::with_runtime(rt.clone(), dht_settings(Some(bootstrap)))
            .await
            .unwrap();
        sessions.push(session);
    }
    within(&rt, "joining the DHT", async {
        loop {
            let mut sizes = Vec::new();
            for session in &sessions {
                let stats = session.dht_stats().await.unwrap().expect("a DHT");
                sizes.push(stats.ipv4.nodes());
            }
            if sizes.iter().all(|&n| n >= 3) {
                break;
            }
            runtime::sleep(&rt, Duration::from_millis(200)).await;
        }
    })
    .await;

    let (seeder, leecher) = (&sessions[7], &sessions[16]);
    let mut seeder_alerts = seeder.alerts();
    let mut leecher_alerts = leecher.alerts();
    let mut params = AddTorrentParams::from_info(info.clone(), &seed_dir);
    params.seed_mode = true;
    seeder.add_torrent(params).await.unwrap();
    let link = MagnetLink::new(info.info_hashes());
    let torrent = leecher
        .add_torrent(AddTorrentParams::new(
            TorrentSource::Magnet(link),
            &leech_dir,
        ))
        .await
        .unwrap();
    let status = within(&rt, "the download", torrent.wait_finished())
        .await
        .unwrap();
    assert!(matches!(
        status.state,
        TorrentState::Finished | TorrentState::Seeding
    ));
    for n in 0..FILES.len() {
        assert_file_matches(&leech_dir, n);
    }
    // Neither had any other way to learn of the other.
    let deadline = Instant::now() + LIMIT;
    while !found_dht_peers(&mut seeder_alerts) && !found_dht_peers(&mut leecher_alerts) {
        assert!(Instant::now() < deadline, "no DHT peers alert");
        runtime::sleep(&rt, Duration::from_millis(100)).await;
    }

    let state = leecher.dht_state().await.unwrap().expect("a DHT");
    assert!(!state.is_empty());
    let saved = dir.path().join("dht.state");
    assert!(leecher.save_dht_state_file(&saved).await.unwrap());
    assert_eq!(std::fs::read(&saved).unwrap().len(), state.len());
    for session in sessions {
        session.shutdown().await.unwrap();
    }
}

/// Whether `alerts` held a DHT lookup's peers (reading what has come so far).
fn found_dht_peers(alerts: &mut Alerts) -> bool {
    while let Some(alert) = alerts.try_recv() {
        if matches!(alert, Alert::DhtPeers { peers, .. } if peers > 0) {
            return true;
        }
    }
    false
}
