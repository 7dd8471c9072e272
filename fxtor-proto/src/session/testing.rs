//! Test support: sessions wired to each other through an in-memory network, in virtual
//! time, with in-memory disks.
//!
//! [`Net`] holds [`Node`]s, each a [`Session`] with an address and a [`Store`]. Whatever a
//! session hands out is carried out by the net: bytes of a connection arrive at the other
//! end after [`Net::latency`] (and are reported sent to the sender then), each direction of
//! a connection carrying at most [`Net::link_rate`] bytes a second if set, `Connect` reaches
//! the node listening at that address (its `handle_incoming`), `Close` ends the other side
//! after the latency, and disk jobs run on the node's [`Store`], which verifies a piece
//! with its [`PieceCheck`](crate::verify::PieceCheck) before keeping it, and answers after
//! [`Net::disk_latency`]. Time only moves to the next event or session timeout, so a run
//! is exact and repeatable. A swarm simulator with loss and hostile peers can grow from
//! here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use super::{
    Action, AddTorrentParams, Alert, ConnectionId, DiskCompletion, DiskJob, DiskJobKind,
    DiskResult, Session, SessionConfig, TorrentId, TorrentSource, TorrentState,
};
use crate::create::{TorrentBuilder, TorrentVersion};
use crate::metainfo::TorrentInfo;
use crate::peer_id::PeerId;
use crate::session::rng::Rng;
use crate::time::Instant;
use crate::PieceIndex;

/// A torrent and its content: the files laid end to end as its pieces cover them (pad
/// files as zeros).
#[derive(Debug, Clone)]
pub(crate) struct Content {
    pub info: Arc<TorrentInfo>,
    pub data: Bytes,
}

impl Content {
    /// A torrent of `version` with these files (path below the torrent's directory, size),
    /// filled with bytes drawn from `seed`.
    pub fn new(
        version: TorrentVersion,
        piece_length: u32,
        files: &[(&str, u64)],
        seed: u64,
    ) -> Self {
        let mut builder = TorrentBuilder::multi_file("content");
        builder.set_version(version).set_piece_length(piece_length);
        for (path, size) in files {
            builder.add_file(path.split('/').map(str::to_owned).collect(), *size);
        }
        let file_data = |path: &str, size: u64| -> Vec<u8> {
            let mut rng = Rng::new(
                seed ^ path
                    .bytes()
                    .fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(b)),
            );
            let mut data = Vec::with_capacity(size as usize);
            while data.len() < size as usize {
                data.extend_from_slice(&rng.next_u64().to_le_bytes());
            }
            data.truncate(size as usize);
            data
        };
        let mut hasher = builder.into_hasher().expect("a valid test torrent");
        let order: Vec<(String, u64)> = hasher
            .files()
            .iter()
            .map(|f| (f.path.join("/"), f.size))
            .collect();
        for (path, size) in &order {
            hasher
                .update(&file_data(path, *size))
                .expect("as much as the files hold");
        }
        let created = hasher.finish().expect("every file fed");
        let info = TorrentInfo::from_bytes(&created.bytes).expect("a torrent we made loads");
        let mut data = Vec::with_capacity(info.total_size() as usize);
        for file in info.files().files() {
            if file.is_pad() {
                data.resize(data.len() + file.size() as usize, 0);
            } else {
                data.extend_from_slice(&file_data(file.path_string(), file.size()));
            }
        }
        assert_eq!(data.len() as u64, info.total_size());
        Self {
            info: Arc::new(info),
            data: data.into(),
        }
    }

    /// The bytes of `piece`.
    pub fn piece(&self, piece: PieceIndex) -> Bytes {
        let len = u64::from(self.info.piece_length());
        let start = u64::from(piece.0) * len;
        let end = (start + len).min(self.info.total_size());
        self.data.slice(start as usize..end as usize)
    }

    /// Parameters to add the torrent.
    pub fn params(&self) -> AddTorrentParams {
        AddTorrentParams::new(TorrentSource::Info(self.info.clone()))
    }
}

/// One torrent's pieces on a node's disk.
#[derive(Debug, Default)]
pub(crate) struct StoredTorrent {
    pub pieces: BTreeMap<PieceIndex, Bytes>,
    /// Pieces whose reads come back with a flipped byte (a corrupt seeder).
    pub corrupt: BTreeSet<PieceIndex>,
    /// Pieces written, in order.
    pub written: Vec<PieceIndex>,
    /// Writes fail with an I/O error.
    pub fail_writes: bool,
    pub empty_files_created: bool,
    /// Every job run, by kind name.
    pub jobs: BTreeMap<&'static str, usize>,
    /// Pieces read (to upload them).
    pub read_pieces: BTreeSet<PieceIndex>,
}

/// A node's disk: pieces in memory.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub torrents: BTreeMap<TorrentId, StoredTorrent>,
}

impl Store {
    /// Runs a disk job.
    pub fn run(&mut self, job: DiskJob) -> DiskCompletion {
        let stored = self.torrents.entry(job.torrent).or_default();
        let name = match &job.kind {
            DiskJobKind::WritePiece { .. } => "write",
            DiskJobKind::Read { .. } => "read",
            DiskJobKind::CheckPiece { .. } => "check",
            DiskJobKind::CreateEmptyFiles => "create",
        };
        *stored.jobs.entry(name).or_default() += 1;
        let result = match job.kind {
            DiskJobKind::WritePiece {
                piece,
                blocks,
                check,
            } => {
                if stored.fail_writes {
                    DiskResult::Failed {
                        error: "no space left on device".into(),
                    }
                } else {
                    let passed = check.verify(blocks.iter().map(|b| &b[..])).passed();
                    if passed {
                        let mut whole = Vec::new();
                        for block in &blocks {
                            whole.extend_from_slice(block);
                        }
                        stored.pieces.insert(piece, whole.into());
                        stored.written.push(piece);
                    }
                    DiskResult::PieceWritten { piece, passed }
                }
            }
            DiskJobKind::Read { piece, offset, len } => {
                stored.read_pieces.insert(piece);
                let range = offset as usize..offset as usize + len as usize;
                match stored.pieces.get(&piece).filter(|p| range.end <= p.len()) {
                    Some(data) => {
                        let mut data = data.slice(range);
                        if stored.corrupt.contains(&piece) {
                            let mut bad = data.to_vec();
                            bad[0] ^= 0xff;
                            data = bad.into();
                        }
                        DiskResult::Read {
                            piece,
                            offset,
                            data,
                        }
                    }
                    None => DiskResult::Failed {
                        error: format!("piece {piece} is not on disk"),
                    },
                }
            }
            DiskJobKind::CheckPiece { piece, check } => {
                let passed = stored
                    .pieces
                    .get(&piece)
                    .is_some_and(|data| check.verify([&data[..]]).passed());
                DiskResult::Checked { piece, passed }
            }
            DiskJobKind::CreateEmptyFiles => {
                stored.empty_files_created = true;
                DiskResult::Done
            }
        };
        DiskCompletion {
            id: job.id,
            torrent: job.torrent,
            result,
        }
    }

    /// Puts pieces of `content` on disk for `torrent`.
    pub fn put(
        &mut self,
        torrent: TorrentId,
        content: &Content,
        pieces: impl IntoIterator<Item = PieceIndex>,
    ) {
        let stored = self.torrents.entry(torrent).or_default();
        for piece in pieces {
            stored.pieces.insert(piece, content.piece(piece));
        }
    }

    /// The torrent's bytes, if every piece is on disk.
    pub fn bytes(&self, torrent: TorrentId, num_pieces: u32) -> Option<Vec<u8>> {
        let stored = self.torrents.get(&torrent)?;
        let mut out = Vec::new();
        for p in 0..num_pieces {
            out.extend_from_slice(stored.pieces.get(&PieceIndex(p))?);
        }
        Some(out)
    }
}

/// A session on the net.
#[derive(Debug)]
pub(crate) struct Node {
    pub session: Session,
    pub addr: SocketAddr,
    pub store: Store,
    pub alerts: Vec<Alert>,
    /// Whether it accepts connections.
    pub listening: bool,
    receive: BTreeMap<ConnectionId, BytesMut>,
}

impl Node {
    /// The alerts about `torrent`'s states, in order.
    pub fn states(&self, torrent: TorrentId) -> Vec<TorrentState> {
        self.alerts
            .iter()
            .filter_map(|a| match a {
                Alert::StateChanged { torrent: t, to, .. } if *t == torrent => Some(*to),
                _ => None,
            })
            .collect()
    }

    /// The pieces finished for `torrent`, in order.
    pub fn finished_pieces(&self, torrent: TorrentId) -> Vec<PieceIndex> {
        self.alerts
            .iter()
            .filter_map(|a| match a {
                Alert::PieceFinished { torrent: t, piece } if *t == torrent => Some(*piece),
                _ => None,
            })
            .collect()
    }

    /// Whether an alert matching `f` was posted.
    pub fn saw(&self, f: impl Fn(&Alert) -> bool) -> bool {
        self.alerts.iter().any(f)
    }
}

#[derive(Debug)]
enum Event {
    /// Bytes arrive at `to`; the sender `from` learns they were sent.
    Deliver {
        to: (usize, ConnectionId),
        from: (usize, ConnectionId),
        data: Bytes,
    },
    Connected(usize, ConnectionId),
    ConnectFailed(usize, ConnectionId),
    Closed(usize, ConnectionId),
    Disk(usize, DiskCompletion),
}

/// The simulated network; see the [module documentation](self).
#[derive(Debug)]
pub(crate) struct Net {
    pub now: Instant,
    pub nodes: Vec<Node>,
    /// One-way delay of every connection.
    pub latency: Duration,
    /// How long a disk job takes.
    pub disk_latency: Duration,
    /// The most bytes a second each direction of a connection carries (`None`: no limit).
    /// Bytes wait for the ones sent before them on the same connection.
    pub link_rate: Option<u64>,
    /// When each end of a connection is done sending what it was given.
    sending_until: BTreeMap<(usize, ConnectionId), Instant>,
    /// Each end of each connection, to the other end.
    links: BTreeMap<(usize, ConnectionId), (usize, ConnectionId)>,
    events: BTreeMap<(Instant, u64), Event>,
    seq: u64,
}

impl Net {
    pub fn new() -> Self {
        Self {
            now: Instant::ZERO,
            nodes: Vec::new(),
            latency: Duration::from_millis(10),
            disk_latency: Duration::from_millis(1),
            link_rate: None,
            sending_until: BTreeMap::new(),
            links: BTreeMap::new(),
            events: BTreeMap::new(),
            seq: 0,
        }
    }

    /// The default configuration of node `index`.
    pub fn config(index: usize) -> SessionConfig {
        let mut random = [0u8; 20];
        let mut rng = Rng::new(index as u64 + 1000);
        for b in &mut random {
            *b = rng.next_u64() as u8;
        }
        let mut config = SessionConfig::new(PeerId::fxtor(random));
        config.listen_port = 6881;
        config.rng_seed = index as u64;
        config
    }

    /// Adds a listening node with the default configuration.
    pub fn add_node(&mut self) -> usize {
        let config = Self::config(self.nodes.len());
        self.add_node_with(config)
    }

    /// Adds a listening node.
    pub fn add_node_with(&mut self, config: SessionConfig) -> usize {
        let index = self.nodes.len();
        let ip = Ipv4Addr::new(10, 0, (index / 250) as u8, (index % 250) as u8 + 1);
        self.nodes.push(Node {
            session: Session::new(self.now, config),
            addr: SocketAddr::new(IpAddr::V4(ip), 6881),
            store: Store::default(),
            alerts: Vec::new(),
            listening: true,
            receive: BTreeMap::new(),
        });
        index
    }

    /// Adds a torrent to a node, with `pieces` of `content` already on its disk.
    pub fn add_torrent(
        &mut self,
        node: usize,
        params: AddTorrentParams,
        content: &Content,
        pieces: impl IntoIterator<Item = PieceIndex>,
    ) -> TorrentId {
        // Ids are handed out in order, so the next one is known before adding.
        let next = TorrentId(self.nodes[node].session.next_torrent);
        self.nodes[node].store.put(next, content, pieces);
        let id = self.nodes[node]
            .session
            .add_torrent(self.now, params)
            .expect("the torrent is added");
        assert_eq!(id, next);
        self.drain(node);
        id
    }

    /// Adds a seed of `content` (all pieces on disk, trusted).
    pub fn add_seed(&mut self, node: usize, content: &Content) -> TorrentId {
        let mut params = content.params();
        params.seed_mode = true;
        let all = (0..content.info.num_pieces()).map(PieceIndex);
        self.add_torrent(node, params, content, all)
    }

    /// Adds an empty leecher of `content` that connects to `peers`.
    pub fn add_leecher(&mut self, node: usize, content: &Content, peers: &[usize]) -> TorrentId {
        let mut params = content.params();
        params.skip_check = true;
        params.peers = peers.iter().map(|&p| self.nodes[p].addr).collect();
        self.add_torrent(node, params, content, [])
    }

    /// Runs `f` on a node's session, then carries out what it handed out.
    pub fn with<R>(&mut self, node: usize, f: impl FnOnce(&mut Session, Instant) -> R) -> R {
        let now = self.now;
        let r = f(&mut self.nodes[node].session, now);
        self.drain(node);
        r
    }

    fn schedule(&mut self, delay: Duration, event: Event) {
        self.seq += 1;
        self.events.insert((self.now + delay, self.seq), event);
    }

    /// Takes everything a node's session handed out and carries it out.
    pub fn drain(&mut self, i: usize) {
        loop {
            let mut progress = false;
            while let Some(t) = self.nodes[i].session.poll_transmit() {
                progress = true;
                if let Some(&to) = self.links.get(&(i, t.conn)) {
                    let sent = self.send_time((i, t.conn), t.data.len());
                    self.schedule(
                        sent + self.latency,
                        Event::Deliver {
                            to,
                            from: (i, t.conn),
                            data: t.data,
                        },
                    );
                }
            }
            while let Some(action) = self.nodes[i].session.poll_action() {
                progress = true;
                self.act(i, action);
            }
            while let Some(alert) = self.nodes[i].session.poll_alert() {
                progress = true;
                self.nodes[i].alerts.push(alert);
            }
            if !progress {
                return;
            }
        }
    }

    /// How long until `len` more bytes from `from` have left, at [`Net::link_rate`].
    fn send_time(&mut self, from: (usize, ConnectionId), len: usize) -> Duration {
        let Some(rate) = self.link_rate.filter(|&rate| rate > 0) else {
            return Duration::ZERO;
        };
        let start = self
            .sending_until
            .get(&from)
            .map_or(self.now, |&until| until.max(self.now));
        let nanos = (len as u64).saturating_mul(1_000_000_000) / rate;
        let until = start + Duration::from_nanos(nanos);
        self.sending_until.insert(from, until);
        until - self.now
    }

    fn act(&mut self, i: usize, action: Action) {
        match action {
            Action::Connect { conn, addr } => {
                let target = self
                    .nodes
                    .iter()
                    .position(|n| n.addr == addr && n.listening);
                let from =
                    SocketAddr::new(self.nodes[i].addr.ip(), 40000 + (conn.0 % 20000) as u16);
                let accepted = target.and_then(|j| {
                    let now = self.now;
                    let c2 = self.nodes[j].session.handle_incoming(now, from)?;
                    Some((j, c2))
                });
                match accepted {
                    Some((j, c2)) => {
                        self.links.insert((i, conn), (j, c2));
                        self.links.insert((j, c2), (i, conn));
                        self.schedule(self.latency, Event::Connected(i, conn));
                        self.drain(j);
                    }
                    None => self.schedule(self.latency, Event::ConnectFailed(i, conn)),
                }
            }
            Action::Close { conn } => {
                self.nodes[i].receive.remove(&conn);
                self.sending_until.remove(&(i, conn));
                if let Some(other) = self.links.remove(&(i, conn)) {
                    self.schedule(self.latency, Event::Closed(other.0, other.1));
                }
            }
            Action::Disk(job) => {
                let completion = self.nodes[i].store.run(job);
                self.schedule(self.disk_latency, Event::Disk(i, completion));
            }
        }
    }

    fn handle(&mut self, event: Event) {
        let now = self.now;
        match event {
            Event::Deliver { to, from, data } => {
                let len = data.len();
                if self.links.contains_key(&to) {
                    let node = &mut self.nodes[to.0];
                    let buf = node.receive.entry(to.1).or_default();
                    buf.extend_from_slice(&data);
                    node.session.handle_received(now, to.1, buf);
                    self.drain(to.0);
                }
                if self.links.contains_key(&from) {
                    self.nodes[from.0].session.handle_sent(now, from.1, len);
                    self.drain(from.0);
                }
            }
            Event::Connected(i, conn) => {
                if self.links.contains_key(&(i, conn)) {
                    self.nodes[i].session.handle_connected(now, conn);
                    self.drain(i);
                }
            }
            Event::ConnectFailed(i, conn) => {
                self.nodes[i].session.handle_connect_failed(now, conn);
                self.drain(i);
            }
            Event::Closed(i, conn) => {
                if self.links.remove(&(i, conn)).is_some() {
                    self.nodes[i].receive.remove(&conn);
                    self.sending_until.remove(&(i, conn));
                    self.nodes[i].session.handle_closed(now, conn);
                    self.drain(i);
                }
            }
            Event::Disk(i, completion) => {
                self.nodes[i].session.handle_disk(now, completion);
                self.drain(i);
            }
        }
    }

    /// Runs until `done` holds (true) or nothing is left to do before `limit` (false).
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) -> bool {
        let deadline = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            let next_event = self.events.first_key_value().map(|(k, _)| k.0);
            let next_timer = self
                .nodes
                .iter()
                .filter_map(|n| n.session.poll_timeout())
                .min();
            let Some(next) = [next_event, next_timer].into_iter().flatten().min() else {
                return false;
            };
            if next > deadline {
                self.now = deadline;
                return done(self);
            }
            self.now = self.now.max(next);
            if let Some(entry) = self.events.first_entry() {
                if entry.key().0 <= self.now {
                    let event = entry.remove();
                    self.handle(event);
                    continue;
                }
            }
            for i in 0..self.nodes.len() {
                if self.nodes[i]
                    .session
                    .poll_timeout()
                    .is_some_and(|t| t <= self.now)
                {
                    let now = self.now;
                    self.nodes[i].session.handle_timeout(now);
                    self.drain(i);
                }
            }
        }
    }

    /// Runs for `time`, whatever happens.
    pub fn run_for(&mut self, time: Duration) {
        self.run_until(time, |_| false);
    }

    /// Whether a node's torrent is in `state`.
    pub fn is_in(&self, node: usize, torrent: TorrentId, state: TorrentState) -> bool {
        self.nodes[node]
            .session
            .status(self.now, torrent)
            .is_ok_and(|s| s.state == state)
    }
}
