//! The driver's bookkeeping against a scripted core.

use super::*;
use fxtor_proto::create::TorrentBuilder;
use fxtor_proto::session::{DiskJobId, DiskJobKind, DiskResult};
use fxtor_proto::TorrentInfo;

/// A core whose outputs the test scripts and whose inputs it records. Messages are four
/// bytes long, so partial ones stay in the receive buffer.
#[derive(Default)]
struct Fake {
    transmits: VecDeque<Transmit>,
    actions: VecDeque<Action>,
    alerts: VecDeque<Alert>,
    log: Vec<String>,
    messages: Vec<(ConnectionId, Vec<u8>)>,
    next_conn: u64,
    refuse: bool,
    disk: Vec<DiskCompletion>,
    /// What `torrent_info` answers.
    infos: HashMap<TorrentId, Arc<TorrentInfo>>,
    datagrams: VecDeque<Datagram>,
}

impl Core for Fake {
    fn handle_incoming(&mut self, _: Instant, addr: SocketAddr) -> Option<ConnectionId> {
        self.log.push(format!("incoming {addr}"));
        if self.refuse {
            return None;
        }
        self.next_conn += 1;
        Some(ConnectionId(100 + self.next_conn))
    }
    fn handle_connected(&mut self, _: Instant, conn: ConnectionId) {
        self.log.push(format!("connected {}", conn.0));
    }
    fn handle_connect_failed(&mut self, _: Instant, conn: ConnectionId) {
        self.log.push(format!("connect failed {}", conn.0));
    }
    fn handle_received(&mut self, _: Instant, conn: ConnectionId, buf: &mut BytesMut) {
        while buf.len() >= 4 {
            self.messages.push((conn, buf.split_to(4).to_vec()));
        }
    }
    fn handle_sent(&mut self, _: Instant, conn: ConnectionId, bytes: usize) {
        self.log.push(format!("sent {} {bytes}", conn.0));
    }
    fn handle_closed(&mut self, _: Instant, conn: ConnectionId) {
        self.log.push(format!("closed {}", conn.0));
    }
    fn handle_disk(&mut self, _: Instant, completion: DiskCompletion) {
        self.disk.push(completion);
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.log.push(format!("timeout {:?}", now.since_epoch()));
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
        Some(Instant::from_secs(9))
    }
    fn torrent_info(&self, torrent: TorrentId) -> Option<Arc<TorrentInfo>> {
        self.infos.get(&torrent).cloned()
    }
    fn handle_http_response(
        &mut self,
        _: Instant,
        id: HttpRequestId,
        response: Result<HttpResponse<'_>, String>,
    ) {
        let answer = response.map(|r| (r.status, r.body.len()));
        self.log.push(format!("http {} {answer:?}", id.0));
    }
    fn handle_resolved(
        &mut self,
        _: Instant,
        id: ResolveId,
        result: Result<Vec<SocketAddr>, String>,
    ) {
        self.log.push(format!("resolved {} {result:?}", id.0));
    }
    fn handle_datagram(&mut self, _: Instant, from: SocketAddr, data: &[u8]) {
        self.log.push(format!("datagram {from} {}", data.len()));
    }
    fn poll_datagram(&mut self) -> Option<Datagram> {
        self.datagrams.pop_front()
    }
}

#[test]
fn tracker_requests_and_datagrams_pass_through() {
    let mut driver = Driver::new(Fake::default(), 2);
    let core = driver.core_mut();
    core.actions.push_back(Action::HttpRequest {
        id: HttpRequestId(1),
        url: "http://127.0.0.1:1/announce".into(),
    });
    core.actions.push_back(Action::Resolve {
        id: ResolveId(2),
        host: "localhost".into(),
        port: 6969,
    });
    core.datagrams.push_back(Datagram {
        to: addr(),
        data: Bytes::from_static(b"abc"),
    });
    assert_eq!(
        effects(&mut driver),
        [
            "http 1 http://127.0.0.1:1/announce",
            "resolve 2 localhost:6969",
            "datagram 127.0.0.1:6881 3"
        ]
    );
    driver.http_response(T, HttpRequestId(1), Ok((200, b"de".to_vec())));
    driver.resolved(T, ResolveId(2), Err("no".into()));
    driver.datagram(T, addr(), b"xy");
    assert_eq!(
        driver.core().log,
        [
            "http 1 Ok((200, 2))",
            "resolved 2 Err(\"no\")",
            "datagram 127.0.0.1:6881 2"
        ]
    );
}

const T: Instant = Instant::ZERO;

fn send(conn: u64, data: &'static [u8]) -> Transmit {
    Transmit {
        conn: ConnectionId(conn),
        data: Bytes::from_static(data),
    }
}

fn effects(driver: &mut Driver<Fake>) -> Vec<String> {
    std::iter::from_fn(|| driver.poll_effect())
        .map(|e| match e {
            Effect::Connect { conn, addr } => format!("connect {} {addr}", conn.0),
            Effect::Send { conn, data } => {
                format!("send {} {}", conn.0, String::from_utf8_lossy(&data))
            }
            Effect::Close { conn } => format!("close {}", conn.0),
            Effect::Disk { job, .. } => format!("disk {}", job.id.0),
            Effect::DeleteFiles { .. } => "delete".to_string(),
            Effect::Alert(a) => format!("alert {a:?}"),
            Effect::HttpRequest { id, url } => format!("http {} {url}", id.0),
            Effect::Resolve { id, host, port } => format!("resolve {} {host}:{port}", id.0),
            Effect::SendDatagram(d) => format!("datagram {} {}", d.to, d.data.len()),
        })
        .collect()
}

fn addr() -> SocketAddr {
    "127.0.0.1:6881".parse().unwrap()
}

#[test]
fn bytes_wait_for_the_connection_and_keep_their_order() {
    let mut d = Driver::new(Fake::default(), 4);
    d.core_mut().actions.push_back(Action::Connect {
        conn: ConnectionId(1),
        addr: addr(),
    });
    d.core_mut()
        .transmits
        .extend([send(1, b"hand"), send(1, b"shake"), send(2, b"lost")]);
    // Bytes for a connection that is not established are held; for an unknown one, dropped.
    assert_eq!(effects(&mut d), ["connect 1 127.0.0.1:6881"]);
    assert!(d.connected(T, ConnectionId(1)));
    d.core_mut().transmits.push_back(send(1, b"more"));
    assert_eq!(
        effects(&mut d),
        ["send 1 hand", "send 1 shake", "send 1 more"]
    );
    assert_eq!(d.core().log, ["connected 1"]);
    // A second report of the same connection is not a new one.
    assert!(!d.connected(T, ConnectionId(1)));
}

#[test]
fn a_failed_or_abandoned_connect_is_reported_once() {
    let mut d = Driver::new(Fake::default(), 4);
    for conn in [1, 2] {
        d.core_mut().actions.push_back(Action::Connect {
            conn: ConnectionId(conn),
            addr: addr(),
        });
    }
    d.core_mut().actions.push_back(Action::Close {
        conn: ConnectionId(2),
    });
    assert_eq!(
        effects(&mut d),
        [
            "connect 1 127.0.0.1:6881",
            "connect 2 127.0.0.1:6881",
            "close 2"
        ]
    );
    d.connect_failed(T, ConnectionId(1));
    d.connect_failed(T, ConnectionId(1));
    // The core gave up on 2 while it was connecting: the socket is dropped, nothing reported.
    assert!(!d.connected(T, ConnectionId(2)));
    assert_eq!(d.core().log, ["connect failed 1"]);
    assert_eq!(d.connections().count(), 0);
}

#[test]
fn partial_messages_wait_in_the_receive_buffer() {
    let mut d = Driver::new(Fake::default(), 4);
    let conn = d.incoming(T, addr()).unwrap();
    for chunk in [&b"ab"[..], b"cdefg", b"", b"h", b"ijklm"] {
        d.received(T, conn, BytesMut::from(chunk));
    }
    let got: Vec<_> = d.core().messages.iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(got, [b"abcd".to_vec(), b"efgh".to_vec(), b"ijkl".to_vec()]);
    d.core_mut().refuse = true;
    assert_eq!(d.incoming(T, addr()), None);
}

#[test]
fn reads_side_by_side_are_joined_without_a_copy() {
    let mut d = Driver::new(Fake::default(), 4);
    let conn = d.incoming(T, addr()).unwrap();
    let leftover = |d: &Driver<Fake>| {
        let recv = &d.conns[&conn].recv;
        (recv.as_ptr(), recv.len())
    };
    // A reader's first buffer: reads split off its front.
    let mut first = BytesMut::from(&b"abcdefgXYZ"[..]);
    let base = first.as_ptr();
    d.received(T, conn, first.split_to(6));
    assert_eq!(leftover(&d), (base.wrapping_add(4), 2));
    d.received(T, conn, first.split_to(1));
    assert_eq!(leftover(&d), (base.wrapping_add(4), 3), "joined in place");
    // The reader moves on to a new buffer: the join copies, but what is left over is kept
    // as a slice of the new buffer, so the next read joins in place again.
    let mut second = BytesMut::from(&b"hijklmnop"[..]);
    let base = second.as_ptr();
    d.received(T, conn, second.split_to(6));
    assert_eq!(leftover(&d), (base.wrapping_add(5), 1));
    d.received(T, conn, second.split_to(3));
    let got: Vec<_> = d.core().messages.iter().map(|(_, m)| m.clone()).collect();
    assert_eq!(got, [&b"abcd"[..], b"efgh", b"ijkl", b"mnop"]);
}

#[test]
fn a_connection_the_core_closed_is_forgotten() {
    let mut d = Driver::new(Fake::default(), 4);
    let conn = d.incoming(T, addr()).unwrap();
    d.core_mut().transmits.push_back(Transmit {
        conn,
        data: Bytes::from_static(b"bye!"),
    });
    d.core_mut().actions.push_back(Action::Close { conn });
    // What was handed out before the close is sent, then the close.
    assert_eq!(effects(&mut d), ["send 101 bye!", "close 101"]);
    d.core_mut().transmits.push_back(Transmit {
        conn,
        data: Bytes::from_static(b"late"),
    });
    assert!(effects(&mut d).is_empty(), "nothing after the close");
    // Events of the socket still in flight are not the core's business any more.
    d.received(T, conn, BytesMut::from(&b"data"[..]));
    d.sent(T, conn, 4);
    d.closed(T, conn);
    assert!(d.core().messages.is_empty());
    assert_eq!(d.core().log, ["incoming 127.0.0.1:6881"]);
}

#[test]
fn sent_and_closed_reach_the_core_for_open_connections() {
    let mut d = Driver::new(Fake::default(), 4);
    let conn = d.incoming(T, addr()).unwrap();
    d.sent(T, conn, 17);
    d.closed(T, conn);
    d.closed(T, conn);
    d.timeout(Instant::from_secs(2));
    assert_eq!(d.poll_timeout(), Some(Instant::from_secs(9)));
    assert_eq!(
        d.core().log,
        [
            "incoming 127.0.0.1:6881",
            "sent 101 17",
            "closed 101",
            "timeout 2s"
        ]
    );
}

fn info() -> TorrentInfo {
    let mut h = TorrentBuilder::single_file("x", 3).into_hasher().unwrap();
    h.update(b"abc").unwrap();
    TorrentInfo::from_bytes(&h.finish().unwrap().bytes).unwrap()
}

fn job(id: u64, torrent: u32) -> Action {
    Action::Disk(DiskJob {
        id: DiskJobId(id),
        torrent: TorrentId(torrent),
        kind: DiskJobKind::CreateEmptyFiles,
    })
}

fn done(id: u64, torrent: u32) -> DiskCompletion {
    DiskCompletion {
        id: DiskJobId(id),
        torrent: TorrentId(torrent),
        result: DiskResult::Done,
    }
}

#[test]
fn disk_jobs_run_within_the_bound() {
    let mut d = Driver::new(Fake::default(), 2);
    d.storages_mut()
        .insert(TorrentId(1), "/nowhere".into(), Some(&info()));
    d.core_mut().actions.extend((1..=5).map(|id| job(id, 1)));
    assert_eq!(effects(&mut d), ["disk 1", "disk 2"]);
    assert_eq!(d.disk_in_flight(), 2);
    d.disk_done(T, done(2, 1));
    assert_eq!(effects(&mut d), ["disk 3"]);
    d.disk_done(T, done(1, 1));
    d.disk_done(T, done(3, 1));
    assert_eq!(effects(&mut d), ["disk 4", "disk 5"]);
    let ids: Vec<u64> = d.core().disk.iter().map(|c| c.id.0).collect();
    assert_eq!(ids, [2, 1, 3]);
}

#[test]
fn jobs_of_a_torrent_without_storage_fail_back_to_the_core() {
    let mut d = Driver::new(Fake::default(), 2);
    d.storages_mut()
        .insert(TorrentId(2), "/magnet".into(), None);
    d.core_mut().actions.extend([job(1, 2), job(2, 9)]);
    assert!(effects(&mut d).is_empty());
    assert_eq!(d.disk_in_flight(), 0);
    let failed: Vec<_> = d
        .core()
        .disk
        .iter()
        .map(|c| (c.id.0, matches!(c.result, DiskResult::Failed { .. })))
        .collect();
    assert_eq!(failed, [(1, true), (2, true)]);
}

#[test]
fn a_magnet_torrent_gets_its_storage_with_its_metadata() {
    let mut d = Driver::new(Fake::default(), 2);
    d.storages_mut()
        .insert(TorrentId(2), "/magnet".into(), None);
    // The metadata arrives: its first jobs come in the same batch as the alert.
    d.core_mut().infos.insert(TorrentId(2), Arc::new(info()));
    d.core_mut().actions.push_back(job(1, 2));
    d.core_mut().alerts.push_back(Alert::MetadataReceived {
        torrent: TorrentId(2),
    });
    let out = effects(&mut d);
    assert_eq!(out.first().map(String::as_str), Some("disk 1"));
    assert!(d.storages().storage(TorrentId(2)).is_some());
    assert!(d.core().disk.is_empty(), "no job was refused");
    // An alert alone is enough too.
    d.storages_mut()
        .insert(TorrentId(3), "/magnet".into(), None);
    d.core_mut().infos.insert(TorrentId(3), Arc::new(info()));
    d.core_mut().alerts.push_back(Alert::MetadataReceived {
        torrent: TorrentId(3),
    });
    effects(&mut d);
    assert!(d.storages().storage(TorrentId(3)).is_some());
}

#[test]
fn files_are_deleted_only_after_the_torrents_running_jobs() {
    let mut d = Driver::new(Fake::default(), 4);
    d.storages_mut()
        .insert(TorrentId(1), "/a".into(), Some(&info()));
    d.storages_mut()
        .insert(TorrentId(2), "/b".into(), Some(&info()));
    d.core_mut().actions.extend([
        job(1, 1),
        job(2, 1),
        job(3, 2),
        job(4, 2),
        job(5, 2),
        job(6, 1),
    ]);
    // Four run, two wait; the torrent is removed meanwhile.
    assert_eq!(effects(&mut d), ["disk 1", "disk 2", "disk 3", "disk 4"]);
    d.forget_torrent(TorrentId(1), true);
    assert!(effects(&mut d).is_empty(), "its jobs 1 and 2 still run");
    d.disk_done(T, done(1, 1));
    assert_eq!(
        effects(&mut d),
        ["disk 5"],
        "job 6 of the removed torrent is dropped"
    );
    d.disk_done(T, done(2, 1));
    assert_eq!(effects(&mut d), ["delete"]);
    // Without delete_files nothing is deleted, at once or later.
    d.forget_torrent(TorrentId(2), false);
    for id in [3, 4, 5] {
        d.disk_done(T, done(id, 2));
    }
    assert!(effects(&mut d).is_empty());
    assert_eq!(d.disk_in_flight(), 0);
}

#[test]
fn alerts_pass_through_and_shutdown_forgets_everything() {
    let mut d = Driver::new(Fake::default(), 1);
    d.core_mut().alerts.push_back(Alert::TorrentRemoved {
        torrent: TorrentId(4),
    });
    assert_eq!(
        effects(&mut d),
        ["alert TorrentRemoved { torrent: TorrentId(4) }"]
    );
    let a = d.incoming(T, addr()).unwrap();
    d.core_mut().actions.push_back(Action::Connect {
        conn: ConnectionId(1),
        addr: addr(),
    });
    assert_eq!(effects(&mut d), ["connect 1 127.0.0.1:6881"]);
    let mut closed = d.shutdown();
    closed.sort();
    assert_eq!(closed, [ConnectionId(1), a]);
    assert_eq!(d.connections().count(), 0);
}
