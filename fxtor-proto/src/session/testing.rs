//! Test support: a deterministic swarm simulator. Sessions exchange bytes through an
//! in-memory network in virtual time, with in-memory disks.
//!
//! A [`Network`] holds [`Node`]s, each a [`Session`] with an address, a [`Store`] (its
//! disk, which verifies a piece with its [`PieceCheck`](crate::verify::PieceCheck) before
//! keeping it and answers after [`Network::disk_latency`]), an optional upload capacity
//! shared fairly by its connections, and a [`Behaviour`] (honest, or one of a few hostile
//! ones). Whatever a session hands out is carried out by the network:
//!
//! - bytes of a connection go through the sender's upload, then over the [`Link`] between
//!   the two nodes (latency, bandwidth serialised per direction, and loss, which for a
//!   TCP stream shows as a retransmission delay of the chunk and of everything behind it);
//!   the sender is told they are sent once the link has serialised them;
//! - `Connect` reaches the node listening at that address (its `handle_incoming`) and is
//!   reported connected a round trip later; `Close` ends the other side after the bytes
//!   already handed out;
//! - every message is counted per pair of nodes ([`WireCounts`]), and every alert is
//!   folded into a [`Trace`].
//!
//! Time only moves to the next event or session timeout, and every random choice comes
//! from the network's seed, so a run is exact and repeatable: the same seed gives the same
//! trace.

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
use crate::rng::Rng;
use crate::time::Instant;
use crate::wire::MessageId;
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
        Self::build(version, piece_length, files, seed, false)
    }

    /// As [`new`](Self::new), for a private torrent (BEP27).
    pub fn new_private(
        version: TorrentVersion,
        piece_length: u32,
        files: &[(&str, u64)],
        seed: u64,
    ) -> Self {
        Self::build(version, piece_length, files, seed, true)
    }

    fn build(
        version: TorrentVersion,
        piece_length: u32,
        files: &[(&str, u64)],
        seed: u64,
        private: bool,
    ) -> Self {
        let mut builder = TorrentBuilder::multi_file("content");
        builder
            .set_version(version)
            .set_piece_length(piece_length)
            .set_private(private);
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

impl StoredTorrent {
    /// Reads part of a piece (a flipped first byte if the piece is corrupt).
    fn read(&mut self, piece: PieceIndex, offset: u32, len: u32) -> Result<Bytes, String> {
        self.read_pieces.insert(piece);
        let range = offset as usize..offset as usize + len as usize;
        let data = self
            .pieces
            .get(&piece)
            .filter(|p| range.end <= p.len())
            .ok_or_else(|| format!("piece {piece} is not on disk"))?
            .slice(range);
        if self.corrupt.contains(&piece) {
            let mut bad = data.to_vec();
            bad[0] ^= 0xff;
            return Ok(bad.into());
        }
        Ok(data)
    }
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
            DiskJobKind::Read { .. } | DiskJobKind::ReadLeaves { .. } => "read",
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
            DiskJobKind::Read { piece, offset, len } => match stored.read(piece, offset, len) {
                Ok(data) => DiskResult::Read {
                    piece,
                    offset,
                    data,
                },
                Err(error) => DiskResult::Failed { error },
            },
            DiskJobKind::ReadLeaves {
                piece,
                len,
                data_len,
                count,
            } => match stored.read(piece, 0, len) {
                Ok(data) => DiskResult::Leaves {
                    piece,
                    leaves: crate::merkle::piece_leaves(&data, data_len, count),
                },
                Err(error) => DiskResult::Failed { error },
            },
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

/// What a node does with the connections it has, beyond what its session says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Everything its session hands out is carried out.
    Honest,
    /// Accepts connections and reads from them, but never sends a byte nor closes one;
    /// its session is never told of them.
    BlackHole,
    /// Its session runs, but only the first `n` bytes it sends on each connection get
    /// through (below 68, its handshake never completes).
    Truncate(usize),
    /// Its session runs, but after its first `unchoke` on a connection nothing more it
    /// sends gets through, keep-alives included: a peer that stalls with requests
    /// outstanding.
    StallAfterUnchoke,
}

/// One direction of the path between two nodes. The path of a connection is the link
/// from the sender's node to the receiver's node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Link {
    /// One-way propagation delay.
    pub latency: Duration,
    /// Bytes per second of each connection in this direction (`None`: unlimited). Bytes
    /// are serialised one chunk after the other, so a connection's chunks queue behind
    /// each other.
    pub bandwidth: Option<u64>,
    /// The chance that a segment of [`SEGMENT`] bytes is lost. The stream being TCP, a
    /// loss shows as delay: the chunk holding the segment arrives [`Link::rto`] later per
    /// lost segment, and nothing after it on the connection arrives before it.
    pub loss: f64,
}

/// The size of a TCP segment, for drawing losses.
pub(crate) const SEGMENT: usize = 1460;

/// The most bytes a node's upload hands to one connection before serving the next.
const UPLOAD_QUANTUM: usize = 16 * 1024;

impl Link {
    /// A link with this latency, unlimited and lossless.
    pub const fn new(latency: Duration) -> Self {
        Self {
            latency,
            bandwidth: None,
            loss: 0.0,
        }
    }

    /// The same link limited to `bytes_per_second`.
    pub fn with_bandwidth(self, bytes_per_second: u64) -> Self {
        Self {
            bandwidth: Some(bytes_per_second),
            ..self
        }
    }

    /// The same link losing `loss` of its segments.
    pub fn with_loss(self, loss: f64) -> Self {
        Self { loss, ..self }
    }

    /// How long a lost segment delays its chunk: a retransmission timeout of twice the
    /// round trip, at least 200 ms (Linux's least RTO).
    pub fn rto(&self) -> Duration {
        (self.latency * 4).max(Duration::from_millis(200))
    }
}

/// The messages one node sent another, over all their connections, as they went onto
/// the wire (what a node's [`Behaviour`] held back is not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WireCounts {
    /// Messages by id.
    pub messages: BTreeMap<u8, u64>,
    /// Keep-alives (messages without an id).
    pub keep_alives: u64,
    /// `piece` messages sent while the receiver was choked, outside the pieces this
    /// direction granted with `allowed fast`. BEP3 forbids them; BEP6 allows only those.
    pub pieces_while_choked: u64,
    /// `piece` messages of granted allowed-fast pieces sent while the receiver was choked.
    pub allowed_fast_pieces_while_choked: u64,
    /// Bytes that arrived.
    pub bytes_delivered: u64,
}

impl WireCounts {
    /// How many messages of this kind were sent.
    pub fn count(&self, id: MessageId) -> u64 {
        self.messages.get(&(id as u8)).copied().unwrap_or(0)
    }
}

/// Follows one direction of a connection message by message (it reads the headers and
/// skips the bodies), counts what goes through, and holds back what the sender's
/// [`Behaviour`] keeps from the wire.
#[derive(Debug)]
struct Tap {
    /// Bytes of the handshake still to come.
    handshake_left: usize,
    /// The length prefix and id of the message being read.
    header: [u8; 5],
    header_len: usize,
    /// Bytes of the current message's body still to come.
    body_left: usize,
    /// For a `piece` or `allowed fast` message: the id, and the piece index's bytes read so
    /// far (the index opens the body).
    index: Option<(MessageId, [u8; 4], usize)>,
    /// The pieces this direction granted with `allowed fast`.
    granted: Vec<u32>,
    /// The receiver is choked by the sender, as far as the stream says.
    choked: bool,
    /// Bytes let through so far.
    passed: usize,
    /// Nothing more gets through.
    muted: bool,
    behaviour: Behaviour,
}

impl Tap {
    fn new(behaviour: Behaviour) -> Self {
        Self {
            handshake_left: crate::wire::Handshake::LEN,
            header: [0; 5],
            header_len: 0,
            body_left: 0,
            index: None,
            granted: Vec::new(),
            choked: true,
            passed: 0,
            muted: behaviour == Behaviour::BlackHole,
            behaviour,
        }
    }

    /// The bytes of `data` that get through.
    fn pass(&mut self, data: Bytes, counts: &mut WireCounts) -> Bytes {
        let mut kept: Vec<core::ops::Range<usize>> = Vec::new();
        let mut at = 0;
        while at < data.len() {
            if let Behaviour::Truncate(n) = self.behaviour {
                self.muted |= self.passed >= n;
            }
            let rest = data.len() - at;
            let letting_through = !self.muted;
            let mut mute_after = false;
            let take = if self.handshake_left > 0 {
                let take = self.handshake_left.min(rest);
                self.handshake_left -= take;
                take
            } else if let Some((id, mut bytes, read)) = self.index.take() {
                // A piece index, a byte at a time.
                bytes[read] = data[at];
                self.body_left -= 1;
                if read == 3 {
                    if letting_through {
                        self.on_piece_index(id, u32::from_be_bytes(bytes), counts);
                    }
                } else {
                    self.index = Some((id, bytes, read + 1));
                }
                1
            } else if self.body_left > 0 {
                let take = self.body_left.min(rest);
                self.body_left -= take;
                take
            } else {
                // The header, a byte at a time.
                self.header[self.header_len] = data[at];
                self.header_len += 1;
                let len = u32::from_be_bytes([
                    self.header[0],
                    self.header[1],
                    self.header[2],
                    self.header[3],
                ]) as usize;
                if self.header_len == 4 && len == 0 {
                    self.header_len = 0;
                    if letting_through {
                        counts.keep_alives += 1;
                    }
                } else if self.header_len == 5 {
                    self.header_len = 0;
                    self.body_left = len - 1;
                    let id = self.header[4];
                    if letting_through {
                        mute_after = self.on_message(id, counts);
                    }
                    match MessageId::from_u8(id) {
                        Some(id @ (MessageId::Piece | MessageId::AllowedFast))
                            if self.body_left >= 4 =>
                        {
                            self.index = Some((id, [0; 4], 0));
                        }
                        _ => {}
                    }
                }
                1
            };
            if letting_through {
                let allowed = match self.behaviour {
                    Behaviour::Truncate(n) => take.min(n.saturating_sub(self.passed)),
                    _ => take,
                };
                if allowed > 0 {
                    match kept.last_mut() {
                        Some(last) if last.end == at => last.end += allowed,
                        _ => kept.push(at..at + allowed),
                    }
                    self.passed += allowed;
                }
            }
            self.muted |= mute_after;
            at += take;
        }
        match kept.as_slice() {
            [only] if *only == (0..data.len()) => data,
            _ => {
                let mut out = BytesMut::new();
                for range in kept {
                    out.extend_from_slice(&data[range]);
                }
                out.freeze()
            }
        }
    }

    /// A message with this id goes onto the wire; returns whether the stream is muted
    /// after it.
    fn on_message(&mut self, id: u8, counts: &mut WireCounts) -> bool {
        *counts.messages.entry(id).or_default() += 1;
        match MessageId::from_u8(id) {
            Some(MessageId::Choke) => self.choked = true,
            Some(MessageId::Unchoke) => {
                self.choked = false;
                return self.behaviour == Behaviour::StallAfterUnchoke;
            }
            _ => {}
        }
        false
    }

    /// The piece index of a `piece` or `allowed fast` message.
    fn on_piece_index(&mut self, id: MessageId, piece: u32, counts: &mut WireCounts) {
        match id {
            MessageId::AllowedFast => self.granted.push(piece),
            MessageId::Piece if self.choked && self.granted.contains(&piece) => {
                counts.allowed_fast_pieces_while_choked += 1
            }
            MessageId::Piece if self.choked => counts.pieces_while_choked += 1,
            _ => {}
        }
    }
}

/// A connection's end: a node and the id the node knows the connection by.
type End = (usize, ConnectionId);

/// One direction of a connection, named by its sending end.
#[derive(Debug)]
struct Stream {
    /// The receiving end.
    to: End,
    tap: Tap,
    /// Bytes waiting for the sender's upload (with an upload limit only).
    queue: std::collections::VecDeque<Bytes>,
    /// When the link is done serialising what it was given.
    link_free: Instant,
    /// When the last chunk arrives (nothing later on the stream arrives before it).
    last_arrival: Instant,
    /// The sender closed the connection: once its queue is out, the receiver is told.
    closing: bool,
}

/// A node's upload, shared fairly by its connections.
#[derive(Debug, Default)]
struct Upload {
    /// A chunk is being serialised.
    busy: bool,
    /// Connections with queued bytes.
    waiting: BTreeSet<ConnectionId>,
    /// The connection served last (the next one after it goes next).
    last: Option<ConnectionId>,
}

/// A session on the network.
#[derive(Debug)]
pub(crate) struct Node {
    pub session: Session,
    pub addr: SocketAddr,
    pub store: Store,
    pub alerts: Vec<Alert>,
    /// Whether it accepts connections.
    pub listening: bool,
    /// What it does beyond what its session says.
    pub behaviour: Behaviour,
    /// Its upload capacity in bytes per second, shared fairly by its connections (`None`:
    /// unlimited).
    pub upload: Option<u64>,
    /// When each alert was posted, alongside [`Node::alerts`].
    pub alert_times: Vec<Instant>,
    receive: BTreeMap<ConnectionId, BytesMut>,
    upload_state: Upload,
    /// Ids for the connections a [`Behaviour::BlackHole`] accepts.
    next_hole: u64,
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

    /// When the first alert matching `f` was posted.
    pub fn first_time(&self, f: impl Fn(&Alert) -> bool) -> Option<Instant> {
        let i = self.alerts.iter().position(f)?;
        self.alert_times.get(i).copied()
    }
}

#[derive(Debug)]
enum Event {
    /// Bytes arrive at an end.
    Deliver {
        to: End,
        data: Bytes,
    },
    /// The sender's bytes are on the wire.
    Sent {
        from: End,
        len: usize,
    },
    /// A node's upload finished a chunk.
    UploadFree(usize),
    Connected(End),
    ConnectFailed(End),
    Closed(End),
    Disk(usize, DiskCompletion),
    /// An HTTP tracker's answer reaches a node.
    Http(usize, super::HttpRequestId, Result<(u16, Vec<u8>), String>),
    /// A UDP datagram reaches a node's socket (on its listen address).
    Datagram {
        to: usize,
        from: SocketAddr,
        data: Bytes,
    },
}

/// A running hash of every alert of a run with its time and node: two runs that posted
/// the same alerts at the same times have the same trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trace {
    pub hash: u64,
    pub alerts: usize,
}

impl Trace {
    const EMPTY: Self = Self {
        hash: 0xcbf2_9ce4_8422_2325,
        alerts: 0,
    };

    fn record(&mut self, now: Instant, node: usize, alert: &Alert) {
        let text = format!("{:?} {node} {alert:?}", now.since_epoch());
        // FNV-1a.
        for b in text.bytes() {
            self.hash ^= u64::from(b);
            self.hash = self.hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.alerts += 1;
    }
}

/// The simulated network; see the [module documentation](self).
#[derive(Debug)]
pub(crate) struct Network {
    pub now: Instant,
    pub nodes: Vec<Node>,
    /// The link between nodes without one of their own.
    pub default_link: Link,
    /// How long a disk job takes.
    pub disk_latency: Duration,
    /// Links between particular nodes, by (sender, receiver).
    links: BTreeMap<(usize, usize), Link>,
    /// Each open end of each connection, to the other end.
    ends: BTreeMap<End, End>,
    /// Each direction of each connection, by its sending end.
    streams: BTreeMap<End, Stream>,
    /// What each node sent each other node, by (sender, receiver).
    wire: BTreeMap<(usize, usize), WireCounts>,
    events: BTreeMap<(Instant, u64), Event>,
    seq: u64,
    seed: u64,
    /// Draws the losses.
    rng: Rng,
    trace: Trace,
    /// Each node's next timeout, as of the last time its session was called.
    timeouts: Vec<Option<Instant>>,
    /// The HTTP tracker every announce reaches, whatever its URL.
    pub tracker: super::sim_tracker::SimTracker,
}

/// The name the session tests use.
pub(crate) type Net = Network;

/// The time to serialise `len` bytes at `rate` bytes per second.
fn serialisation(len: usize, rate: Option<u64>) -> Duration {
    match rate {
        Some(rate) if rate > 0 => {
            let nanos = len as u128 * 1_000_000_000 / u128::from(rate);
            Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
        }
        _ => Duration::ZERO,
    }
}

impl Network {
    /// A network with seed 0, links of 10 ms.
    pub fn new() -> Self {
        Self::with_seed(0)
    }

    /// A network whose every random choice (losses, the nodes' session seeds and peer
    /// ids) comes from `seed`.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            now: Instant::ZERO,
            nodes: Vec::new(),
            default_link: Link::new(Duration::from_millis(10)),
            disk_latency: Duration::from_millis(1),
            links: BTreeMap::new(),
            ends: BTreeMap::new(),
            streams: BTreeMap::new(),
            wire: BTreeMap::new(),
            events: BTreeMap::new(),
            seq: 0,
            seed,
            rng: Rng::new(seed ^ 0x005E_ED0F_11E7),
            trace: Trace::EMPTY,
            timeouts: Vec::new(),
            tracker: Default::default(),
        }
    }

    /// The default configuration of node `index` on a network of seed 0.
    pub fn config(index: usize) -> SessionConfig {
        Self::seeded_config(index, 0)
    }

    fn seeded_config(index: usize, seed: u64) -> SessionConfig {
        let salt = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut random = [0u8; 20];
        let mut rng = Rng::new((index as u64 + 1000) ^ salt);
        for b in &mut random {
            *b = rng.next_u64() as u8;
        }
        let mut config = SessionConfig::new(PeerId::fxtor(random));
        config.listen_port = 6881;
        config.rng_seed = index as u64 ^ salt;
        // Most scenarios are about a given set of connections; those about finding peers
        // turn peer exchange on.
        config.peer_exchange = false;
        config
    }

    /// The default configuration of the next node of this network.
    pub fn next_config(&self) -> SessionConfig {
        Self::seeded_config(self.nodes.len(), self.seed)
    }

    /// Adds a listening node with the default configuration.
    pub fn add_node(&mut self) -> usize {
        let config = self.next_config();
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
            behaviour: Behaviour::Honest,
            upload: None,
            alert_times: Vec::new(),
            receive: BTreeMap::new(),
            upload_state: Upload::default(),
            next_hole: 0,
        });
        self.timeouts.push(None);
        index
    }

    /// Sets the link between `a` and `b`, both ways.
    pub fn set_link(&mut self, a: usize, b: usize, link: Link) {
        self.links.insert((a, b), link);
        self.links.insert((b, a), link);
    }

    /// The link from `from` to `to`.
    pub fn link(&self, from: usize, to: usize) -> Link {
        self.links
            .get(&(from, to))
            .copied()
            .unwrap_or(self.default_link)
    }

    /// What `from` sent `to` over all their connections.
    pub fn wire(&self, from: usize, to: usize) -> WireCounts {
        self.wire.get(&(from, to)).cloned().unwrap_or_default()
    }

    /// Every pair of nodes that exchanged messages, with what went from the first to
    /// the second.
    pub fn all_wire(&self) -> impl Iterator<Item = (&(usize, usize), &WireCounts)> {
        self.wire.iter()
    }

    /// The trace of the alerts so far.
    pub fn trace(&self) -> Trace {
        self.trace
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

    fn schedule_at(&mut self, at: Instant, event: Event) {
        self.seq += 1;
        self.events.insert((at.max(self.now), self.seq), event);
    }

    fn schedule(&mut self, delay: Duration, event: Event) {
        self.schedule_at(self.now + delay, event);
    }

    /// Takes everything a node's session handed out and carries it out.
    pub fn drain(&mut self, i: usize) {
        loop {
            let mut progress = false;
            while let Some(t) = self.nodes[i].session.poll_transmit() {
                progress = true;
                self.send((i, t.conn), t.data);
            }
            while let Some(action) = self.nodes[i].session.poll_action() {
                progress = true;
                self.act(i, action);
            }
            while let Some(datagram) = self.nodes[i].session.poll_datagram() {
                progress = true;
                self.send_datagram(i, datagram);
            }
            while let Some(alert) = self.nodes[i].session.poll_alert() {
                progress = true;
                self.trace.record(self.now, i, &alert);
                let node = &mut self.nodes[i];
                node.alerts.push(alert);
                node.alert_times.push(self.now);
            }
            if !progress {
                break;
            }
        }
        self.timeouts[i] = self.nodes[i].session.poll_timeout();
    }

    /// A node sends a datagram: it reaches the node with that address after the link's
    /// latency (or is lost as the link loses packets); to no node, it is dropped.
    fn send_datagram(&mut self, from: usize, datagram: super::Datagram) {
        let Some(to) = self.nodes.iter().position(|n| n.addr == datagram.to) else {
            return;
        };
        let link = self.link(from, to);
        if link.loss > 0.0 {
            let draw = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            if draw < link.loss {
                return;
            }
        }
        let source = self.nodes[from].addr;
        self.schedule(
            link.latency,
            Event::Datagram {
                to,
                from: source,
                data: datagram.data,
            },
        );
    }

    /// A session hands bytes to a connection: past the sender's behaviour, then into its
    /// upload queue, or straight onto the link.
    fn send(&mut self, from: End, data: Bytes) {
        let Some(stream) = self.streams.get_mut(&from) else {
            return;
        };
        let len = data.len();
        let counts = self.wire.entry((from.0, stream.to.0)).or_default();
        let data = stream.tap.pass(data, counts);
        if data.len() < len {
            // Held back, but written as far as the sender can tell.
            let held = len - data.len();
            self.schedule(Duration::ZERO, Event::Sent { from, len: held });
        }
        if data.is_empty() {
            return;
        }
        if self.nodes[from.0].upload.is_none() {
            self.put_on_link(from, data, self.now);
            return;
        }
        if let Some(stream) = self.streams.get_mut(&from) {
            stream.queue.push_back(data);
            self.nodes[from.0].upload_state.waiting.insert(from.1);
            self.serve_upload(from.0);
        }
    }

    /// Lets a node's upload serialise its next chunk: up to [`UPLOAD_QUANTUM`] bytes of
    /// the next connection after the one served last.
    fn serve_upload(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let state = &mut node.upload_state;
        if state.busy {
            return;
        }
        let next = state
            .last
            .and_then(|last| state.waiting.range(last..).find(|&&c| c != last))
            .or_else(|| state.waiting.first())
            .copied();
        let Some(conn) = next else {
            return;
        };
        let Some(stream) = self.streams.get_mut(&(i, conn)) else {
            state.waiting.remove(&conn);
            return self.serve_upload(i);
        };
        let Some(front) = stream.queue.front_mut() else {
            state.waiting.remove(&conn);
            return self.serve_upload(i);
        };
        let chunk = if front.len() > UPLOAD_QUANTUM {
            front.split_to(UPLOAD_QUANTUM)
        } else {
            stream.queue.pop_front().unwrap_or_default()
        };
        if stream.queue.is_empty() {
            state.waiting.remove(&conn);
        }
        state.busy = true;
        state.last = Some(conn);
        let done = self.now + serialisation(chunk.len(), node.upload);
        self.schedule_at(done, Event::UploadFree(i));
        self.put_on_link((i, conn), chunk, done);
    }

    /// Puts a chunk on the link of its stream, ready to go at `ready`: it is serialised
    /// after what the link already holds, travels, and may be delayed by losses, but never
    /// overtakes what went before it.
    fn put_on_link(&mut self, from: End, chunk: Bytes, ready: Instant) {
        let Some(stream) = self.streams.get(&from) else {
            return;
        };
        let to = stream.to;
        let link = self.link(from.0, to.0);
        let mut lost = 0u32;
        if link.loss > 0.0 {
            for _ in 0..chunk.len().div_ceil(SEGMENT) {
                // 53 random bits as a fraction in [0, 1).
                let draw = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
                lost += u32::from(draw < link.loss);
            }
        }
        let Some(stream) = self.streams.get_mut(&from) else {
            return;
        };
        let start = ready.max(stream.link_free);
        let end = start + serialisation(chunk.len(), link.bandwidth);
        stream.link_free = end;
        let arrival = (end + link.latency + link.rto() * lost).max(stream.last_arrival);
        stream.last_arrival = arrival;
        let finish = stream.closing && stream.queue.is_empty();
        let len = chunk.len();
        self.schedule_at(arrival, Event::Deliver { to, data: chunk });
        self.schedule_at(end, Event::Sent { from, len });
        if finish {
            self.finish(from);
        }
    }

    /// The stream of `from` is closed and has nothing queued: the other end learns it
    /// after the last bytes.
    fn finish(&mut self, from: End) {
        let Some(stream) = self.streams.remove(&from) else {
            return;
        };
        let latency = self.link(from.0, stream.to.0).latency;
        let at = (self.now.max(stream.link_free) + latency).max(stream.last_arrival);
        self.schedule_at(at, Event::Closed(stream.to));
    }

    /// Opens a connection from `from` to `to`.
    fn open(&mut self, from: End, to: End) {
        self.ends.insert(from, to);
        self.ends.insert(to, from);
        for (a, b) in [(from, to), (to, from)] {
            self.streams.insert(
                a,
                Stream {
                    to: b,
                    tap: Tap::new(self.nodes[a.0].behaviour),
                    queue: Default::default(),
                    link_free: self.now,
                    last_arrival: self.now,
                    closing: false,
                },
            );
        }
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
                    let node = &mut self.nodes[j];
                    let c2 = if node.behaviour == Behaviour::BlackHole {
                        node.next_hole += 1;
                        ConnectionId(node.next_hole)
                    } else {
                        node.session.handle_incoming(now, from)?
                    };
                    Some((j, c2))
                });
                let round_trip =
                    |net: &Self, j: usize| net.link(i, j).latency + net.link(j, i).latency;
                match accepted {
                    Some((j, c2)) => {
                        self.open((i, conn), (j, c2));
                        let rtt = round_trip(self, j);
                        self.schedule(rtt, Event::Connected((i, conn)));
                        self.drain(j);
                    }
                    None => {
                        let rtt =
                            target.map_or(Duration::from_millis(100), |j| round_trip(self, j));
                        self.schedule(rtt, Event::ConnectFailed((i, conn)));
                    }
                }
            }
            Action::Close { conn } => {
                self.nodes[i].receive.remove(&conn);
                if self.ends.remove(&(i, conn)).is_some() {
                    if let Some(stream) = self.streams.get_mut(&(i, conn)) {
                        stream.closing = true;
                        if stream.queue.is_empty() {
                            self.finish((i, conn));
                        }
                    }
                }
            }
            Action::Disk(job) => {
                let completion = self.nodes[i].store.run(job);
                self.schedule(self.disk_latency, Event::Disk(i, completion));
            }
            Action::HttpRequest { id, url } => {
                let ip = self.nodes[i].addr.ip();
                let reply = self.tracker.answer(&url, ip);
                let latency = self.default_link.latency * 2;
                self.schedule(latency, Event::Http(i, id, reply));
            }
            Action::Resolve { id, .. } => {
                let failed = Err("no name resolution in the simulator".to_owned());
                self.nodes[i].session.handle_resolved(self.now, id, failed);
            }
        }
    }

    fn handle(&mut self, event: Event) {
        let now = self.now;
        match event {
            Event::Datagram { to, from, data } => {
                let node = &mut self.nodes[to];
                if node.behaviour != Behaviour::BlackHole {
                    node.session.handle_datagram(now, from, &data);
                    self.drain(to);
                }
            }
            Event::Deliver { to, data } => {
                let Some(&from) = self.ends.get(&to) else {
                    return;
                };
                self.wire.entry((from.0, to.0)).or_default().bytes_delivered += data.len() as u64;
                let node = &mut self.nodes[to.0];
                if node.behaviour == Behaviour::BlackHole {
                    return;
                }
                let buf = node.receive.entry(to.1).or_default();
                buf.extend_from_slice(&data);
                node.session.handle_received(now, to.1, buf);
                self.drain(to.0);
            }
            Event::Sent { from, len } => {
                if self.ends.contains_key(&from) {
                    self.nodes[from.0].session.handle_sent(now, from.1, len);
                    self.drain(from.0);
                }
            }
            Event::UploadFree(i) => {
                self.nodes[i].upload_state.busy = false;
                self.serve_upload(i);
            }
            Event::Connected(end) => {
                if self.ends.contains_key(&end) {
                    self.nodes[end.0].session.handle_connected(now, end.1);
                    self.drain(end.0);
                }
            }
            Event::ConnectFailed((i, conn)) => {
                self.nodes[i].session.handle_connect_failed(now, conn);
                self.drain(i);
            }
            Event::Closed(end) => {
                if self.ends.remove(&end).is_some() {
                    // What it had not sent yet is lost with the connection.
                    self.streams.remove(&end);
                    let node = &mut self.nodes[end.0];
                    node.receive.remove(&end.1);
                    if node.behaviour != Behaviour::BlackHole {
                        node.session.handle_closed(now, end.1);
                        self.drain(end.0);
                    }
                }
            }
            Event::Disk(i, completion) => {
                self.nodes[i].session.handle_disk(now, completion);
                self.drain(i);
            }
            Event::Http(i, id, reply) => {
                let response = match &reply {
                    Ok((status, body)) => Ok(crate::tracker::HttpResponse {
                        status: *status,
                        body,
                    }),
                    Err(e) => Err(e.clone()),
                };
                self.nodes[i]
                    .session
                    .handle_http_response(now, id, response);
                self.drain(i);
            }
        }
    }

    /// Runs until `done` holds (true) or nothing is left to do before `limit` from now
    /// (false).
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Network) -> bool) -> bool {
        let deadline = self.now + limit;
        // Sessions may have been called directly since the last run.
        for i in 0..self.nodes.len() {
            self.timeouts[i] = self.nodes[i].session.poll_timeout();
        }
        loop {
            if done(self) {
                return true;
            }
            let next_event = self.events.first_key_value().map(|(k, _)| k.0);
            let next_timer = self.timeouts.iter().flatten().min().copied();
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
                if self.timeouts[i].is_some_and(|t| t <= self.now) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Block, Handshake, Message, ReservedBits};

    /// A handshake, then `messages`, as one stream.
    fn stream(messages: &[Message]) -> Vec<u8> {
        let mut out = BytesMut::new();
        Handshake {
            reserved: ReservedBits::FAST,
            info_hash: crate::InfoHashV1::from_slice(&[1; 20]).unwrap(),
            peer_id: PeerId([2; 20]),
        }
        .encode(&mut out);
        for m in messages {
            m.encode(&mut out);
        }
        out.to_vec()
    }

    /// Feeds `bytes` to a tap in chunks of `chunk` bytes; returns what got through.
    fn tap(behaviour: Behaviour, bytes: &[u8], chunk: usize) -> (Vec<u8>, WireCounts) {
        let mut tap = Tap::new(behaviour);
        let mut counts = WireCounts::default();
        let mut out = Vec::new();
        for part in bytes.chunks(chunk) {
            out.extend_from_slice(&tap.pass(Bytes::copy_from_slice(part), &mut counts));
        }
        (out, counts)
    }

    fn piece(index: u32) -> Message {
        Message::Piece(Block {
            piece: PieceIndex(index),
            offset: 0,
            data: vec![7u8; 100].into(),
        })
    }

    #[test]
    fn the_tap_follows_messages_across_chunks() {
        let messages = [
            Message::HaveAll,
            Message::AllowedFast(PieceIndex(0x0102_0304)),
            piece(0),
            Message::Unchoke,
            Message::KeepAlive,
            piece(0),
            Message::Choke,
            piece(0),
            piece(0x0102_0304),
        ];
        let bytes = stream(&messages);
        for chunk in [1, 3, 7, 64, bytes.len()] {
            let (out, counts) = tap(Behaviour::Honest, &bytes, chunk);
            assert_eq!(out, bytes);
            assert_eq!(counts.count(MessageId::Piece), 4);
            assert_eq!(counts.count(MessageId::Unchoke), 1);
            assert_eq!(counts.keep_alives, 1);
            assert_eq!(
                counts.pieces_while_choked, 2,
                "before the unchoke and after the choke"
            );
            assert_eq!(counts.allowed_fast_pieces_while_choked, 1);

            // Everything after the unchoke is held back.
            let (out, counts) = tap(Behaviour::StallAfterUnchoke, &bytes, chunk);
            assert_eq!(out, stream(&messages[..4]));
            assert_eq!(counts.count(MessageId::Piece), 1);
            assert_eq!(counts.keep_alives, 0);

            let (out, counts) = tap(Behaviour::Truncate(20), &bytes, chunk);
            assert_eq!(out, bytes[..20]);
            assert!(counts.messages.is_empty());
        }
    }
}
