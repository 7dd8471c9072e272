//! A UDP tracker (BEP15, answered by this test on 127.0.0.1) brings two sessions of this
//! crate together: the session's UDP socket on async-io, datagrams through the shared
//! event loop, and the `stopped` announce a shutdown waits for. Run under async-std's
//! executor and under smol's.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::*;
use fxtor_async_std::{AddTorrentParams, Session, SessionSettings, TorrentState};
use fxtor_proto::tracker::udp::{AddressFamily, UdpRequest, UdpResponse};
use fxtor_proto::tracker::AnnounceEvent;

const LIMIT: Duration = Duration::from_secs(120);

fn localhost() -> SessionSettings {
    SessionSettings::listen_on(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// A UDP tracker that hands out connection ids, answers every announce with `peers`, and
/// records the announces' events.
fn udp_tracker(peers: Vec<SocketAddr>) -> (SocketAddr, Arc<Mutex<Vec<AnnounceEvent>>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            let answer = match UdpRequest::parse(&buf[..len]) {
                Ok(UdpRequest::Connect { transaction_id }) => UdpResponse::Connect {
                    transaction_id,
                    connection_id: 0x1234,
                },
                Ok(UdpRequest::Announce {
                    transaction_id,
                    request,
                    ..
                }) => {
                    seen.lock().unwrap().push(request.event);
                    UdpResponse::Announce {
                        transaction_id,
                        interval: 1800,
                        leechers: 1,
                        seeders: 1,
                        peers: peers.clone(),
                    }
                }
                _ => continue,
            };
            let _ = socket.send_to(&answer.encode(AddressFamily::V4), from);
        }
    });
    (addr, events)
}

async fn meet_through_a_udp_tracker() {
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    let info = seeded_torrent(&seed_dir);
    let seeder = Session::new(localhost()).await.unwrap();
    let mut params = AddTorrentParams::from_info(info.clone(), &seed_dir);
    params.seed_mode = true;
    seeder.add_torrent(params).await.unwrap();
    let (tracker, events) = udp_tracker(vec![seeder.listen_addr().unwrap()]);

    let leecher = Session::new(localhost()).await.unwrap();
    let udp = leecher.udp_addr().expect("a UDP socket");
    assert_eq!(udp.port(), leecher.listen_addr().unwrap().port());
    let mut params = AddTorrentParams::from_info(info.clone(), &leech_dir);
    params.skip_check = true;
    params.trackers = vec![vec![format!("udp://{tracker}/announce")]];
    let torrent = leecher.add_torrent(params).await.unwrap();
    let status = futures_lite::future::or(torrent.wait_finished(), async {
        async_io::Timer::after(LIMIT).await;
        panic!("the download took longer than {LIMIT:?}");
    })
    .await
    .unwrap();
    assert_eq!(status.state, TorrentState::Seeding);
    for n in 0..FILES.len() {
        assert_file_matches(&leech_dir, n);
    }
    let entries = torrent.trackers().await.unwrap();
    assert_eq!(entries[0].last_error, None);
    assert_eq!(entries[0].seeders, Some(1));

    leecher.shutdown().await.unwrap();
    let events = events.lock().unwrap().clone();
    // (The torrent is a hybrid: two swarms, each announced.)
    let count = |e: AnnounceEvent| events.iter().filter(|x| **x == e).count();
    assert_eq!(count(AnnounceEvent::Started), 2, "{events:?}");
    assert_eq!(count(AnnounceEvent::Completed), 2, "{events:?}");
    assert_eq!(count(AnnounceEvent::Stopped), 2, "{events:?}");
    seeder.shutdown().await.unwrap();
}

#[test]
fn a_udp_tracker_brings_peers_together_under_async_std() {
    async_std::task::block_on(meet_through_a_udp_tracker());
}

#[test]
fn a_udp_tracker_brings_peers_together_under_smol() {
    smol::block_on(meet_through_a_udp_tracker());
}
