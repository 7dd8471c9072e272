//! The tokio loop around a scripted core: sockets, connects, disk jobs, the timer and
//! shutdown, over real TCP on 127.0.0.1.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fxtor_proto::create::TorrentBuilder;
use fxtor_proto::session::{
    Action, DiskCompletion, DiskJob, DiskJobId, DiskJobKind, DiskResult, TorrentId, Transmit,
};
use fxtor_proto::time::Instant;
use fxtor_proto::{PieceIndex, TorrentInfo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;

/// A core that echoes what it receives, except for commands: `connect:PORT` dials
/// 127.0.0.1:PORT (and says `hello` once connected), `read` reads the torrent's first
/// bytes from disk and sends them back. Disk results, timeouts and closes become alerts.
#[derive(Default)]
struct Echo {
    next: u64,
    transmits: VecDeque<Transmit>,
    actions: VecDeque<Action>,
    alerts: VecDeque<Alert>,
    timer: Option<Instant>,
    reader: Option<ConnectionId>,
}

impl Core for Echo {
    fn handle_incoming(&mut self, _: Instant, _: SocketAddr) -> Option<ConnectionId> {
        self.next += 1;
        Some(ConnectionId(self.next))
    }
    fn handle_connected(&mut self, _: Instant, conn: ConnectionId) {
        self.transmits.push_back(Transmit {
            conn,
            data: Bytes::from_static(b"hello"),
        });
    }
    fn handle_connect_failed(&mut self, _: Instant, _: ConnectionId) {}
    fn handle_received(&mut self, _: Instant, conn: ConnectionId, buf: &mut BytesMut) {
        let data = buf.split().freeze();
        if let Some(port) = data.strip_prefix(b"connect:") {
            let port: u16 = std::str::from_utf8(port).unwrap().parse().unwrap();
            self.next += 1;
            self.actions.push_back(Action::Connect {
                conn: ConnectionId(self.next),
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
            });
        } else if &data[..] == b"read" {
            self.reader = Some(conn);
            self.actions.push_back(Action::Disk(DiskJob {
                id: DiskJobId(1),
                torrent: TorrentId(0),
                kind: DiskJobKind::Read {
                    piece: PieceIndex(0),
                    offset: 0,
                    len: 5,
                },
            }));
        } else {
            self.transmits.push_back(Transmit { conn, data });
        }
    }
    fn handle_sent(&mut self, _: Instant, _: ConnectionId, _: usize) {}
    fn handle_closed(&mut self, _: Instant, conn: ConnectionId) {
        self.alerts.push_back(Alert::PeerDisconnected {
            torrent: None,
            conn,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            reason: "closed".into(),
        });
    }
    fn handle_disk(&mut self, _: Instant, completion: DiskCompletion) {
        if let (DiskResult::Read { data, .. }, Some(conn)) = (completion.result, self.reader) {
            self.transmits.push_back(Transmit { conn, data });
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        if self.timer.is_some_and(|t| t <= now) {
            self.timer = None;
            self.alerts.push_back(Alert::TorrentChecked {
                torrent: TorrentId(9),
            });
        }
    }
    fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }
    fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
    fn poll_alert(&mut self) -> Option<Alert> {
        self.alerts.pop_front()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }
}

async fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut buf))
        .await
        .expect("no answer in time")
        .unwrap();
    buf
}

async fn next_alert(alerts: &mut broadcast::Receiver<Alert>) -> Alert {
    tokio::time::timeout(Duration::from_secs(10), alerts.recv())
        .await
        .expect("no alert in time")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_carries_out_what_the_core_asks() {
    let dir = tempfile::tempdir().unwrap();
    let mut hasher = TorrentBuilder::single_file("f", 5).into_hasher().unwrap();
    hasher.update(b"bytes").unwrap();
    let info = TorrentInfo::from_bytes(&hasher.finish().unwrap().bytes).unwrap();
    std::fs::write(dir.path().join("f"), b"bytes").unwrap();

    let clock = Clock::new();
    let core = Echo {
        timer: Some(clock.now() + Duration::from_millis(100)),
        ..Echo::default()
    };
    let mut driver = Driver::new(core, 2);
    driver
        .storages_mut()
        .insert(TorrentId(0), dir.path().to_path_buf(), Some(&info));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (commands, command_rx) = mpsc::channel(4);
    let (alerts_tx, mut alerts) = broadcast::channel(16);
    let settings = SessionSettings::default();
    let actor = Actor::new(
        driver,
        clock,
        &settings,
        Some(listener),
        command_rx,
        alerts_tx,
    );
    let running = tokio::spawn(actor.run());

    // The core's timer fires.
    assert_eq!(
        next_alert(&mut alerts).await,
        Alert::TorrentChecked {
            torrent: TorrentId(9)
        }
    );

    // An accepted connection: bytes in, bytes out.
    let mut peer = TcpStream::connect(addr).await.unwrap();
    peer.write_all(b"ping").await.unwrap();
    assert_eq!(read_exactly(&mut peer, 4).await, b"ping");

    // A disk read on the blocking pool, its bytes sent on.
    peer.write_all(b"read").await.unwrap();
    assert_eq!(read_exactly(&mut peer, 5).await, b"bytes");

    // An outgoing connection, and the bytes held for it until it is established.
    let other = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = other.local_addr().unwrap().port();
    peer.write_all(format!("connect:{port}").as_bytes())
        .await
        .unwrap();
    let (mut dialled, _) = tokio::time::timeout(Duration::from_secs(10), other.accept())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read_exactly(&mut dialled, 5).await, b"hello");

    // A command runs on the loop with the driver.
    let (tx, rx) = oneshot::channel();
    commands
        .send(Msg::Call(Box::new(move |d: &mut Driver<Echo>, _| {
            let _ = tx.send(d.connections().count());
        })))
        .await
        .unwrap();
    assert_eq!(rx.await.unwrap(), 2);

    // The peer hangs up: the core hears of it.
    drop(peer);
    assert!(matches!(
        next_alert(&mut alerts).await,
        Alert::PeerDisconnected {
            conn: ConnectionId(1),
            ..
        }
    ));

    // Shutdown closes the rest and ends the loop.
    let (tx, rx) = oneshot::channel();
    commands.send(Msg::Shutdown(tx)).await.unwrap();
    rx.await.unwrap();
    running.await.unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(10), dialled.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "the dialled connection was closed");
}
