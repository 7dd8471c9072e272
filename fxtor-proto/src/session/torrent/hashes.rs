//! BEP52 hash transfers: fetching the piece layers a v2 torrent lacks, and answering the
//! hash requests of peers.
//!
//! A v2 torrent's `piece layers` live outside its info dictionary, so a torrent added by a
//! `btmh` magnet link knows only each file's `pieces root` once the metadata arrives. For a
//! file longer than one piece, the hashes of its pieces are asked of peers that speak v2
//! ([`LayerFetch`]): in chunks of [`CHUNK`] piece hashes with the uncle hashes that prove
//! them up to the root, so each answer is checked on its own. A peer whose hashes do not
//! prove out is banned; a rejected or unanswered request goes to another peer. Pieces of a
//! file are not picked before its layer is complete ([`LayerFetch::piece_ready`]); the
//! complete layer is given to the torrent's [`TorrentInfo`] and kept in resume data.
//!
//! Requests from peers are answered from our piece layers ([`HashServer`]), with proofs,
//! at most [`MAX_SERVED_PER_SECOND`] per peer; requests for layers below the piece layer
//! (block hashes), or that do not fit the file, are rejected.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use core::ops::Range;
use core::time::Duration;

use super::{Metadata, Shared, Torrent};
use crate::merkle::{self, MerkleTree};
use crate::metainfo::TorrentInfo;
use crate::picker::PeerKey;
use crate::resume::ResumeData;
use crate::time::Instant;
use crate::wire::{HashRequest, Hashes};
use crate::{FileIndex, PieceIndex, Sha256Hash};

/// Piece hashes asked for in one request (libtorrent's bucket): a chunk of a file's layer.
pub(super) const CHUNK: u32 = 512;

/// Hash requests outstanding with one peer.
pub(super) const MAX_REQUESTS_PER_PEER: u32 = 2;

/// Hash requests outstanding for one torrent.
pub(super) const MAX_REQUESTS: u32 = 16;

/// How long a peer has to answer a hash request.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// How long a chunk that every peer refused waits before they are asked again.
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(15);

/// Hash requests answered per peer and second; more are rejected.
pub(super) const MAX_SERVED_PER_SECOND: u32 = 32;

/// Merkle trees kept to answer requests (each built from a file's piece layer).
const MAX_CACHED_TREES: usize = 8;

/// Where a chunk of a layer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Not asked for, or to be asked again.
    Needed,
    /// Asked of `peer`, to be answered by `deadline`.
    Requested { peer: PeerKey, deadline: Instant },
    /// Received and proven.
    Done,
}

/// One chunk of a file's piece layer.
#[derive(Debug, Clone)]
struct Chunk {
    state: ChunkState,
    /// Peers that rejected it or let it time out: not asked again before `retry_at`.
    refused: BTreeSet<PeerKey>,
    retry_at: Option<Instant>,
}

/// A file whose piece layer is being fetched.
#[derive(Debug)]
struct FileLayer {
    file: FileIndex,
    root: Sha256Hash,
    num_blocks: u32,
    /// The file's pieces in the torrent.
    pieces: Range<u32>,
    /// The layer: one hash per piece of the file, valid where its chunk is done.
    layer: Vec<Sha256Hash>,
    chunks: Vec<Chunk>,
}

impl FileLayer {
    /// The request for chunk `chunk`: up to [`CHUNK`] hashes of the piece layer (fewer for
    /// the last chunk, rounded up to a power of two), proven up to the root.
    fn request(&self, chunk: usize, piece_height: u32) -> Option<HashRequest> {
        let index = u32::try_from(chunk).ok()?.checked_mul(CHUNK)?;
        let remaining = (self.pieces.end - self.pieces.start).checked_sub(index)?;
        let length = remaining.next_power_of_two().min(CHUNK);
        let root_height = merkle::root_height(self.num_blocks).ok()?;
        let proof_layers = root_height.checked_sub(piece_height)?.checked_sub(1)?;
        Some(HashRequest {
            pieces_root: self.root,
            base_layer: piece_height,
            index,
            length,
            proof_layers,
        })
    }

    /// Which chunk `request` is, if it is one we ask for.
    fn chunk_of(&self, request: &HashRequest, piece_height: u32) -> Option<usize> {
        let chunk = (request.index / CHUNK) as usize;
        (request.index % CHUNK == 0 && self.request(chunk, piece_height) == Some(*request))
            .then_some(chunk)
    }
}

/// What became of an answer to one of our hash requests.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum HashesOutcome {
    /// Not an answer to a request of ours outstanding with this peer: ignored.
    Unsolicited,
    /// The hashes prove out; a file's layer is complete if `completed` says so.
    Accepted {
        completed: Option<(FileIndex, Vec<Sha256Hash>)>,
    },
    /// The hashes do not prove out to the file's root.
    Invalid(merkle::MerkleError),
}

/// The piece layers a torrent is fetching; see the [module documentation](self).
#[derive(Debug, Default)]
pub(super) struct LayerFetch {
    /// By file index, so by piece.
    files: Vec<FileLayer>,
    piece_height: u32,
    /// The torrent has v1 piece hashes (a hybrid): its pieces can be checked without the
    /// v2 layers, so picking does not wait for them.
    has_v1: bool,
    /// Requests outstanding, per peer.
    per_peer: BTreeMap<PeerKey, u32>,
    outstanding: u32,
    /// Chunks not received yet (asked for or not).
    remaining: u32,
}

impl LayerFetch {
    /// The layers `info` lacks: every v2 file longer than a piece whose layer is unknown.
    pub fn new(info: &TorrentInfo) -> Self {
        let piece_height = merkle::piece_height(info.piece_length()).unwrap_or(0);
        let files = info
            .files()
            .iter()
            .filter(|&(index, _)| {
                info.needs_piece_layer(index) && info.piece_layer(index).is_none()
            })
            .filter_map(|(file, entry)| {
                let pieces = info.files().file_piece_range(file)?;
                let count = pieces.end.0 - pieces.start.0;
                Some(FileLayer {
                    file,
                    root: entry.pieces_root()?,
                    num_blocks: u32::try_from(entry.num_blocks()).ok()?,
                    pieces: pieces.start.0..pieces.end.0,
                    layer: vec![Sha256Hash::default(); count as usize],
                    chunks: vec![
                        Chunk {
                            state: ChunkState::Needed,
                            refused: BTreeSet::new(),
                            retry_at: None,
                        };
                        count.div_ceil(CHUNK) as usize
                    ],
                })
            })
            .collect::<Vec<FileLayer>>();
        let remaining = files.iter().map(|f| f.chunks.len() as u32).sum();
        Self {
            files,
            remaining,
            piece_height,
            has_v1: info.has_v1_piece_hashes(),
            ..Self::default()
        }
    }

    /// Whether every layer is known.
    pub fn is_done(&self) -> bool {
        self.files.is_empty()
    }

    /// Whether picking must ask [`piece_ready`](Self::piece_ready): some layer is missing
    /// and the torrent has no v1 hashes to check pieces with.
    pub fn gates_picking(&self) -> bool {
        !self.has_v1 && !self.is_done()
    }

    /// Whether `piece` can be downloaded: its file's layer is known or not needed, or the
    /// torrent's v1 hashes can check it.
    pub fn piece_ready(&self, piece: PieceIndex) -> bool {
        if self.has_v1 {
            return true;
        }
        let at = self.files.partition_point(|f| f.pieces.end <= piece.0);
        self.files
            .get(at)
            .is_none_or(|f| !f.pieces.contains(&piece.0))
    }

    /// Whether some chunk waits to be asked for and the torrent's bound allows it (cheap:
    /// checked before looking for a chunk).
    pub fn wants_requests(&self) -> bool {
        self.remaining > self.outstanding && self.outstanding < MAX_REQUESTS
    }

    /// Whether a request may be sent to `peer` now.
    pub fn has_room(&self, peer: PeerKey) -> bool {
        self.wants_requests()
            && self.per_peer.get(&peer).copied().unwrap_or(0) < MAX_REQUESTS_PER_PEER
    }

    /// The next chunk to ask `peer` for, among those it has a piece of (`has_any` of the
    /// chunk's pieces), recorded as asked.
    pub fn next_request(
        &mut self,
        now: Instant,
        peer: PeerKey,
        has_any: impl Fn(Range<u32>) -> bool,
    ) -> Option<HashRequest> {
        if !self.has_room(peer) {
            return None;
        }
        let piece_height = self.piece_height;
        for file in &mut self.files {
            for c in 0..file.chunks.len() {
                let chunk = &file.chunks[c];
                let refused = chunk.refused.contains(&peer);
                if chunk.state != ChunkState::Needed || refused {
                    continue;
                }
                let first = file.pieces.start + c as u32 * CHUNK;
                let last = (first + CHUNK).min(file.pieces.end);
                if !has_any(first..last) {
                    continue;
                }
                let Some(request) = file.request(c, piece_height) else {
                    continue;
                };
                file.chunks[c].state = ChunkState::Requested {
                    peer,
                    deadline: now + REQUEST_TIMEOUT,
                };
                self.outstanding += 1;
                *self.per_peer.entry(peer).or_insert(0) += 1;
                return Some(request);
            }
        }
        None
    }

    /// The file and chunk `request` is, if it is outstanding with `peer` (files with the
    /// same contents share a root: each is asked for on its own).
    fn find(&self, peer: PeerKey, request: &HashRequest) -> Option<(usize, usize)> {
        self.files.iter().enumerate().find_map(|(f, file)| {
            if file.root != request.pieces_root {
                return None;
            }
            let c = file.chunk_of(request, self.piece_height)?;
            match file.chunks.get(c)?.state {
                ChunkState::Requested { peer: p, .. } if p == peer => Some((f, c)),
                _ => None,
            }
        })
    }

    /// A request of ours ended (answered, rejected, timed out or its peer gone).
    fn release(&mut self, peer: PeerKey) {
        self.outstanding = self.outstanding.saturating_sub(1);
        if let Some(n) = self.per_peer.get_mut(&peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_peer.remove(&peer);
            }
        }
    }

    /// Puts a chunk back to be asked of someone other than `peer`.
    fn requeue(&mut self, now: Instant, f: usize, c: usize, peer: PeerKey) {
        self.release(peer);
        let chunk = &mut self.files[f].chunks[c];
        chunk.state = ChunkState::Needed;
        chunk.refused.insert(peer);
        chunk.retry_at.get_or_insert(now + RETRY_AFTER);
    }

    /// An answer from `peer`: checks it against the file's root and keeps its hashes.
    pub fn on_hashes(&mut self, peer: PeerKey, hashes: &Hashes) -> HashesOutcome {
        let Some((f, c)) = self.find(peer, &hashes.request) else {
            return HashesOutcome::Unsolicited;
        };
        self.release(peer);
        let file = &mut self.files[f];
        let request = merkle_request(&hashes.request);
        let base =
            match merkle::verify_hashes(&file.root, file.num_blocks, &request, &hashes.hashes) {
                Ok(base) => base,
                Err(e) => {
                    let chunk = &mut file.chunks[c];
                    chunk.state = ChunkState::Needed;
                    chunk.refused.insert(peer);
                    return HashesOutcome::Invalid(e);
                }
            };
        let start = hashes.request.index as usize;
        let take = file.layer.len().saturating_sub(start).min(base.len());
        if let (Some(dst), Some(src)) = (file.layer.get_mut(start..start + take), base.get(..take))
        {
            dst.copy_from_slice(src);
        }
        file.chunks[c].state = ChunkState::Done;
        self.remaining = self.remaining.saturating_sub(1);
        let complete = file.chunks.iter().all(|c| c.state == ChunkState::Done);
        let completed = complete.then(|| {
            let done = self.files.remove(f);
            (done.file, done.layer)
        });
        HashesOutcome::Accepted { completed }
    }

    /// `peer` rejected a request: another peer is asked.
    pub fn on_reject(&mut self, now: Instant, peer: PeerKey, request: &HashRequest) {
        if let Some((f, c)) = self.find(peer, request) {
            self.requeue(now, f, c, peer);
        }
    }

    /// `peer` left: what it was asked goes to others.
    pub fn peer_gone(&mut self, peer: PeerKey) {
        for file in &mut self.files {
            for chunk in &mut file.chunks {
                if matches!(chunk.state, ChunkState::Requested { peer: p, .. } if p == peer) {
                    chunk.state = ChunkState::Needed;
                }
                chunk.refused.remove(&peer);
            }
        }
        if let Some(n) = self.per_peer.remove(&peer) {
            self.outstanding = self.outstanding.saturating_sub(n);
        }
    }

    /// A layer given to the torrent turned out not to fit it after all: fetch it again.
    pub fn restart(&mut self, info: &TorrentInfo, file: FileIndex) {
        let again = Self::new(info);
        if let Some(layer) = again.files.into_iter().find(|f| f.file == file) {
            self.remaining += layer.chunks.len() as u32;
            let at = self.files.partition_point(|f| f.file < file);
            self.files.insert(at, layer);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.files
            .iter()
            .flat_map(|f| &f.chunks)
            .filter_map(|c| match c.state {
                ChunkState::Requested { deadline, .. } => Some(deadline),
                ChunkState::Needed => c.retry_at,
                ChunkState::Done => None,
            })
            .min()
    }

    /// Requests not answered in time go to other peers; chunks every peer refused may be
    /// asked again once their rest is over. Returns the peers that let a request time out.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<PeerKey> {
        let mut late = Vec::new();
        for f in 0..self.files.len() {
            for c in 0..self.files[f].chunks.len() {
                let chunk = &mut self.files[f].chunks[c];
                match chunk.state {
                    ChunkState::Requested { peer, deadline } if deadline <= now => {
                        late.push(peer);
                        self.requeue(now, f, c, peer);
                    }
                    ChunkState::Needed if chunk.retry_at.is_some_and(|t| t <= now) => {
                        chunk.retry_at = None;
                        chunk.refused.clear();
                    }
                    _ => {}
                }
            }
        }
        late
    }
}

/// A wire hash request as the merkle module takes it.
fn merkle_request(request: &HashRequest) -> merkle::HashRequest {
    merkle::HashRequest {
        base: request.base_layer,
        index: request.index,
        count: request.length,
        proof_layers: request.proof_layers,
    }
}

/// How many hash requests a peer had answered in the current second.
#[derive(Debug, Clone, Copy)]
struct ServedWindow {
    start: Instant,
    count: u32,
}

/// Answers peers' hash requests; see the [module documentation](self).
#[derive(Debug, Default)]
pub(super) struct HashServer {
    /// Files by `pieces root`, sorted, built at the first request.
    roots: Vec<(Sha256Hash, FileIndex)>,
    /// Trees built from piece layers, most recently used last.
    trees: Vec<(FileIndex, MerkleTree)>,
    served: BTreeMap<PeerKey, ServedWindow>,
}

/// Why a hash request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The peer asks faster than [`MAX_SERVED_PER_SECOND`].
    RateLimited,
    /// No file of the torrent has that root.
    UnknownRoot,
    /// The request does not fit the file's tree.
    Invalid,
    /// We do not hold the hashes asked for (block hashes, or a layer not known yet).
    NotHeld,
}

impl HashServer {
    /// Answers `request` from `peer`: the hashes with their proof, or why not.
    pub fn answer(
        &mut self,
        now: Instant,
        peer: PeerKey,
        info: &TorrentInfo,
        request: &HashRequest,
    ) -> Result<Vec<Sha256Hash>, Refusal> {
        let window = self.served.entry(peer).or_insert(ServedWindow {
            start: now,
            count: 0,
        });
        if now.saturating_duration_since(window.start) >= Duration::from_secs(1) {
            *window = ServedWindow {
                start: now,
                count: 0,
            };
        }
        if window.count >= MAX_SERVED_PER_SECOND {
            return Err(Refusal::RateLimited);
        }
        window.count += 1;

        if self.roots.is_empty() {
            self.roots = info
                .files()
                .iter()
                .filter_map(|(index, f)| Some((f.pieces_root()?, index)))
                .collect();
            self.roots.sort_unstable();
        }
        let at = self
            .roots
            .partition_point(|(r, _)| *r < request.pieces_root);
        let file = match self.roots.get(at) {
            Some(&(root, file)) if root == request.pieces_root => file,
            _ => return Err(Refusal::UnknownRoot),
        };
        let num_blocks = info
            .files()
            .file(file)
            .and_then(|f| u32::try_from(f.num_blocks()).ok())
            .ok_or(Refusal::UnknownRoot)?;
        let wanted = merkle_request(request);
        wanted.check(num_blocks).map_err(|_| Refusal::Invalid)?;
        let piece_height = merkle::piece_height(info.piece_length()).ok_or(Refusal::NotHeld)?;
        if wanted.base < piece_height {
            return Err(Refusal::NotHeld);
        }
        let tree = self.tree(info, file, piece_height, num_blocks)?;
        tree.hashes(&wanted).map_err(|_| Refusal::NotHeld)
    }

    /// The tree of `file` above its piece layer, built once and cached.
    fn tree(
        &mut self,
        info: &TorrentInfo,
        file: FileIndex,
        piece_height: u32,
        num_blocks: u32,
    ) -> Result<&MerkleTree, Refusal> {
        if let Some(at) = self.trees.iter().position(|(f, _)| *f == file) {
            let entry = self.trees.remove(at);
            self.trees.push(entry);
        } else {
            let layer = info.piece_layer(file).ok_or(Refusal::NotHeld)?;
            let tree = MerkleTree::from_layer(layer, piece_height, num_blocks)
                .map_err(|_| Refusal::NotHeld)?;
            if self.trees.len() >= MAX_CACHED_TREES {
                self.trees.remove(0);
            }
            self.trees.push((file, tree));
        }
        self.trees.last().map(|(_, t)| t).ok_or(Refusal::NotHeld)
    }

    /// The tree of `file` above its piece layer, if its layer is known.
    pub fn tree_of(&mut self, info: &TorrentInfo, file: FileIndex) -> Option<&MerkleTree> {
        let num_blocks = u32::try_from(info.files().file(file)?.num_blocks()).ok()?;
        let piece_height = merkle::piece_height(info.piece_length())?;
        self.tree(info, file, piece_height, num_blocks).ok()
    }

    /// Forgets a peer that left.
    pub fn peer_gone(&mut self, peer: PeerKey) {
        self.served.remove(&peer);
    }
}

/// Gives `info` the piece layers saved in resume data. Layers for no file of the torrent,
/// or that do not prove out to their file's root, are refused.
pub(super) fn restore_layers(info: &mut TorrentInfo, resume: &ResumeData) -> Result<(), String> {
    for (root, layer) in &resume.piece_layers {
        let files: Vec<FileIndex> = info
            .files()
            .iter()
            .filter(|(index, f)| f.pieces_root() == Some(*root) && info.needs_piece_layer(*index))
            .map(|(index, _)| index)
            .collect();
        if files.is_empty() {
            return Err(format!("a piece layer for {root}, a root of no file"));
        }
        for file in files {
            info.set_piece_layer(file, layer)
                .map_err(|e| format!("its piece layers: {e}"))?;
        }
    }
    Ok(())
}

/// The layers of `info` that were not in its metadata to begin with, for resume data: every
/// layer of a torrent whose layers were fetched.
pub(super) fn layers_for_resume(info: &TorrentInfo) -> BTreeMap<Sha256Hash, Vec<Sha256Hash>> {
    info.files()
        .iter()
        .filter_map(|(index, f)| Some((f.pieces_root()?, info.piece_layer(index)?.to_vec())))
        .collect()
}

impl Torrent {
    /// Sends hash requests for missing piece layers to the peers that can answer them:
    /// established, speaking v2, with pieces of the chunk, within the bounds.
    pub(super) fn request_hashes(&mut self, now: Instant) {
        if !self.is_active() {
            return;
        }
        let Some(meta) = &mut self.meta else {
            return;
        };
        if !meta.layers.wants_requests() {
            return;
        }
        let v2 = self.info_hashes.get_v2();
        let mut asked = Vec::new();
        for (&key, peer) in &mut self.peers {
            if !peer.established || !peer.speaks_v2(v2) {
                continue;
            }
            while let Some(request) = meta.layers.next_request(now, key, |pieces| {
                pieces.clone().any(|p| peer.have.contains(PieceIndex(p)))
            }) {
                peer.connection.send_hash_request(now, request);
                asked.push(key);
            }
        }
        for key in asked {
            self.touch(key);
        }
    }

    /// An answer to one of our hash requests.
    pub(super) fn on_hashes(
        &mut self,
        now: Instant,
        key: PeerKey,
        hashes: &Hashes,
        shared: &mut Shared,
    ) {
        if self.blame_on_hashes(now, key, hashes, shared) {
            return;
        }
        let Some(meta) = &mut self.meta else {
            return;
        };
        match meta.layers.on_hashes(key, hashes) {
            HashesOutcome::Unsolicited => {}
            HashesOutcome::Accepted { completed } => {
                if let Some((file, layer)) = completed {
                    layer_complete(meta, file, &layer);
                    self.recount_wanted();
                    self.update_all_interest(now);
                    self.refill = true;
                }
            }
            HashesOutcome::Invalid(_) => {
                if let Some(addr) = self.peers.get(&key).map(|p| p.addr) {
                    self.ban(now, addr, shared);
                }
            }
        }
    }

    /// A peer refused one of our hash requests.
    pub(super) fn on_hash_reject(
        &mut self,
        now: Instant,
        key: PeerKey,
        request: &HashRequest,
        shared: &mut Shared,
    ) {
        if self.blame_on_reject(now, key, request, shared) {
            return;
        }
        if let Some(meta) = &mut self.meta {
            meta.layers.on_reject(now, key, request);
        }
    }

    /// A peer's hash request: answered from our layers, or (leaves) from the piece's
    /// bytes on disk, or rejected.
    pub(super) fn on_hash_request(
        &mut self,
        now: Instant,
        key: PeerKey,
        request: HashRequest,
        shared: &mut Shared,
    ) {
        let answer = match &self.meta {
            Some(meta) => self.hash_server.answer(now, key, &meta.info, &request),
            None => Err(Refusal::NotHeld),
        };
        #[cfg(test)]
        let honest = self.test_hash_serving == super::TestServing::Honest;
        #[cfg(not(test))]
        let honest = true;
        if answer == Err(Refusal::NotHeld) && honest && self.serve_leaves(key, request, shared) {
            return;
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        #[cfg(test)]
        let answer = match (self.test_hash_serving, answer) {
            (super::TestServing::Refuse, _) => Err(Refusal::NotHeld),
            (super::TestServing::Corrupt, Ok(mut hashes)) => {
                if let Some(first) = hashes.first_mut() {
                    first.0[0] ^= 1;
                }
                Ok(hashes)
            }
            (_, answer) => answer,
        };
        match answer {
            Ok(hashes) => peer.connection.send_hashes(now, Hashes { request, hashes }),
            Err(_) => peer.connection.send_hash_reject(now, request),
        }
        self.touch(key);
    }

    /// Forgets a peer's hash requests, both ways.
    pub(super) fn hashes_peer_gone(&mut self, key: PeerKey) {
        if let Some(meta) = &mut self.meta {
            meta.layers.peer_gone(key);
        }
        self.hash_server.peer_gone(key);
    }

    /// When hash requests time out or may be retried.
    pub(super) fn hashes_poll_timeout(&self) -> Option<Instant> {
        self.meta.as_ref().and_then(|m| m.layers.poll_timeout())
    }

    /// Requests not answered in time go to other peers.
    pub(super) fn hashes_handle_timeout(&mut self, now: Instant) {
        if let Some(meta) = &mut self.meta {
            if meta.layers.poll_timeout().is_some_and(|t| t <= now) {
                meta.layers.handle_timeout(now);
            }
        }
    }
}

/// Gives a complete, proven layer to the torrent's metadata, so its pieces can be checked
/// and picked.
fn layer_complete(meta: &mut Metadata, file: FileIndex, layer: &[Sha256Hash]) {
    // The chunks were each proven to the root, so the whole layer fits it; were it not
    // so, it is fetched again.
    if Arc::make_mut(&mut meta.info)
        .set_piece_layer(file, layer)
        .is_err()
    {
        let info = meta.info.clone();
        meta.layers.restart(&info, file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create::TorrentVersion;
    use crate::session::testing::Content;

    const KIB: u64 = 1024;

    fn t(secs: u64) -> Instant {
        Instant::from_duration(Duration::from_secs(secs))
    }

    /// A v2 torrent of 16 KiB pieces: `a` of 1,100 pieces (three chunks), `b` of one.
    fn content() -> Content {
        Content::new(
            TorrentVersion::V2,
            16 * 1024,
            &[("a", 1100 * 16 * KIB - 5), ("b", 3 * KIB)],
            1,
        )
    }

    /// The torrent as a magnet link gives it: the info dictionary alone.
    fn bare(content: &Content) -> TorrentInfo {
        TorrentInfo::from_info_bytes(content.info.info_bytes()).unwrap()
    }

    /// Answers `request` as an honest peer that has the layers.
    fn answer(content: &Content, request: &HashRequest) -> Hashes {
        let mut server = HashServer::default();
        let hashes = server
            .answer(t(0), PeerKey(99), &content.info, request)
            .unwrap();
        Hashes {
            request: *request,
            hashes,
        }
    }

    #[test]
    fn layers_are_asked_in_chunks_of_512_with_proofs_to_the_root() {
        let content = content();
        let info = bare(&content);
        let mut fetch = LayerFetch::new(&info);
        assert!(!fetch.is_done());
        assert!(!fetch.piece_ready(PieceIndex(0)) && !fetch.piece_ready(PieceIndex(1099)));
        assert!(fetch.piece_ready(PieceIndex(1100)), "b fits in a piece");
        let (a, b) = (PeerKey(1), PeerKey(2));
        let all = |_: Range<u32>| true;
        let r1 = fetch.next_request(t(0), a, all).unwrap();
        let r2 = fetch.next_request(t(0), a, all).unwrap();
        assert_eq!(fetch.next_request(t(0), a, all), None, "two per peer");
        let r3 = fetch.next_request(t(0), b, all).unwrap();
        assert_eq!(
            fetch.next_request(t(0), b, all),
            None,
            "nothing left to ask"
        );
        assert_eq!(
            [r1, r2, r3].map(|r| (r.index, r.length)),
            [(0, 512), (512, 512), (1024, 128)],
            "the last chunk rounded up to a power of two"
        );
        // 1,100 pieces of one block: a tree of height 11, the piece layer at height 0.
        assert!([r1, r2, r3]
            .iter()
            .all(|r| r.base_layer == 0 && r.proof_layers == 10));

        for (peer, request) in [(a, r1), (b, r3)] {
            let outcome = fetch.on_hashes(peer, &answer(&content, &request));
            assert_eq!(outcome, HashesOutcome::Accepted { completed: None });
        }
        assert!(
            !fetch.piece_ready(PieceIndex(0)),
            "the file is not complete"
        );
        let outcome = fetch.on_hashes(a, &answer(&content, &r2));
        let HashesOutcome::Accepted {
            completed: Some((file, layer)),
        } = outcome
        else {
            panic!("{outcome:?}");
        };
        assert_eq!(file, FileIndex(0));
        assert_eq!(Some(&layer[..]), content.info.piece_layer(FileIndex(0)));
        assert!(fetch.is_done() && fetch.piece_ready(PieceIndex(0)));
        assert!(!fetch.wants_requests());
        assert_eq!(fetch.outstanding, 0);
        assert!(fetch.per_peer.is_empty());
    }

    #[test]
    fn hashes_that_do_not_prove_out_are_refused() {
        let content = content();
        let mut fetch = LayerFetch::new(&bare(&content));
        let peer = PeerKey(1);
        let request = fetch.next_request(t(0), peer, |_| true).unwrap();
        let mut hashes = answer(&content, &request);
        hashes.hashes[3].0[0] ^= 1;
        assert_eq!(
            fetch.on_hashes(peer, &hashes),
            HashesOutcome::Invalid(merkle::MerkleError::Mismatch)
        );
        // A lost uncle is refused too, as is an answer to a request never made.
        let request = fetch.next_request(t(0), peer, |_| true).unwrap();
        let mut short = answer(&content, &request);
        short.hashes.pop();
        assert!(matches!(
            fetch.on_hashes(peer, &short),
            HashesOutcome::Invalid(merkle::MerkleError::AnswerLength { .. })
        ));
        let unasked = answer(&content, &request);
        assert_eq!(
            fetch.on_hashes(PeerKey(7), &unasked),
            HashesOutcome::Unsolicited
        );
        // The refused chunks go to another peer.
        let other = fetch.next_request(t(0), PeerKey(2), |_| true).unwrap();
        assert_eq!(other.index, 0);
    }

    #[test]
    fn rejected_and_late_requests_go_to_other_peers_then_back_after_a_rest() {
        let content = content();
        let mut fetch = LayerFetch::new(&bare(&content));
        let (a, b) = (PeerKey(1), PeerKey(2));
        let first = |r: Range<u32>| r.start == 0;
        let request = fetch.next_request(t(0), a, first).unwrap();
        fetch.on_reject(t(1), a, &request);
        assert_eq!(fetch.next_request(t(1), a, first), None, "not asked again");
        let again = fetch.next_request(t(1), b, first).unwrap();
        assert_eq!(again, request);
        // b does not answer.
        assert_eq!(fetch.poll_timeout(), Some(t(1) + REQUEST_TIMEOUT));
        assert_eq!(fetch.handle_timeout(t(1) + REQUEST_TIMEOUT), vec![b]);
        assert_eq!(fetch.next_request(t(30), b, first), None);
        assert_eq!(fetch.next_request(t(30), a, first), None);
        // After the rest, both may be asked again.
        let rest = fetch.poll_timeout().unwrap();
        assert_eq!(rest, t(1) + RETRY_AFTER);
        fetch.handle_timeout(rest);
        assert_eq!(fetch.next_request(rest, a, first), Some(request));
        // A peer that leaves hands its requests back.
        fetch.peer_gone(a);
        assert_eq!(fetch.outstanding, 0);
        assert_eq!(fetch.next_request(rest, b, first), Some(request));
    }

    #[test]
    fn a_hybrid_picks_its_pieces_before_its_layers_arrive() {
        let hybrid = Content::new(TorrentVersion::Hybrid, 16 * 1024, &[("a", 100 * KIB)], 4);
        let fetch = LayerFetch::new(&bare(&hybrid));
        assert!(!fetch.is_done(), "its layer is still asked for");
        assert!(!fetch.gates_picking());
        assert!(fetch.piece_ready(PieceIndex(0)), "its v1 hash checks it");
        let v2 = LayerFetch::new(&bare(&content()));
        assert!(v2.gates_picking());
        assert!(
            LayerFetch::new(&content().info).is_done(),
            "a .torrent has its layers"
        );
    }

    #[test]
    fn peers_are_asked_only_for_chunks_they_have_pieces_of() {
        let content = content();
        let mut fetch = LayerFetch::new(&bare(&content));
        let peer = PeerKey(1);
        // Pieces 600 and 1050 only: chunks 1 and 2.
        let has = |r: Range<u32>| r.contains(&600) || r.contains(&1050);
        let got: Vec<u32> = std::iter::from_fn(|| fetch.next_request(t(0), peer, has))
            .map(|r| r.index)
            .collect();
        assert_eq!(got, [512, 1024]);
    }

    #[test]
    fn requests_are_served_with_proofs_and_bad_ones_rejected() {
        let content = content();
        let info = &content.info;
        let root = info
            .files()
            .file(FileIndex(0))
            .unwrap()
            .pieces_root()
            .unwrap();
        let mut server = HashServer::default();
        let request = HashRequest {
            pieces_root: root,
            base_layer: 0,
            index: 512,
            length: 512,
            proof_layers: 10,
        };
        let hashes = server.answer(t(0), PeerKey(1), info, &request).unwrap();
        let proven =
            merkle::verify_hashes(&root, 1100, &merkle_request(&request), &hashes).unwrap();
        assert_eq!(proven, &info.piece_layer(FileIndex(0)).unwrap()[512..1024]);
        let refused = |server: &mut HashServer, request: HashRequest| {
            server.answer(t(0), PeerKey(1), info, &request).unwrap_err()
        };
        let unknown = HashRequest {
            pieces_root: Sha256Hash([9; 32]),
            ..request
        };
        assert_eq!(refused(&mut server, unknown), Refusal::UnknownRoot);
        for bad in [
            HashRequest {
                index: 100,
                ..request
            },
            HashRequest {
                length: 3,
                ..request
            },
            HashRequest {
                proof_layers: 11,
                ..request
            },
            HashRequest {
                index: 2048,
                ..request
            },
            HashRequest {
                base_layer: 11,
                ..request
            },
        ] {
            assert_eq!(refused(&mut server, bad), Refusal::Invalid, "{bad:?}");
        }
        // A layer above the piece layer is served too; block hashes of a file with a
        // piece layer of 32 KiB pieces are not held.
        let two_blocks = Content::new(TorrentVersion::V2, 32 * 1024, &[("a", 200 * KIB)], 2);
        let info = &two_blocks.info;
        let root = info
            .files()
            .file(FileIndex(0))
            .unwrap()
            .pieces_root()
            .unwrap();
        let leaves = HashRequest {
            pieces_root: root,
            base_layer: 0,
            index: 0,
            length: 2,
            proof_layers: 3,
        };
        let mut server = HashServer::default();
        assert_eq!(
            server.answer(t(0), PeerKey(1), info, &leaves),
            Err(Refusal::NotHeld)
        );
        let upper = HashRequest {
            base_layer: 2,
            length: 2,
            proof_layers: 1,
            ..leaves
        };
        assert!(server.answer(t(0), PeerKey(1), info, &upper).is_ok());
    }

    #[test]
    fn each_peer_is_served_a_bounded_number_of_requests_a_second() {
        let content = content();
        let info = &content.info;
        let root = info
            .files()
            .file(FileIndex(0))
            .unwrap()
            .pieces_root()
            .unwrap();
        let request = HashRequest {
            pieces_root: root,
            base_layer: 0,
            index: 0,
            length: 512,
            proof_layers: 10,
        };
        let mut server = HashServer::default();
        let served = (0..100)
            .take_while(|_| server.answer(t(5), PeerKey(1), info, &request).is_ok())
            .count();
        assert_eq!(served, MAX_SERVED_PER_SECOND as usize);
        assert_eq!(
            server.answer(t(5), PeerKey(1), info, &request),
            Err(Refusal::RateLimited)
        );
        assert!(
            server.answer(t(5), PeerKey(2), info, &request).is_ok(),
            "per peer"
        );
        assert!(
            server.answer(t(6), PeerKey(1), info, &request).is_ok(),
            "a second later"
        );
    }

    #[test]
    fn resume_layers_must_fit_the_torrent() {
        let content = content();
        let mut info = bare(&content);
        let mut resume = ResumeData::new(info.info_hashes());
        resume.piece_layers = layers_for_resume(&content.info);
        assert_eq!(resume.piece_layers.len(), 1);
        restore_layers(&mut info, &resume).unwrap();
        assert!(info.has_piece_layers());

        let mut info = bare(&content);
        let (root, layer) = resume.piece_layers.pop_first().unwrap();
        let mut wrong = layer.clone();
        wrong[7].0[0] ^= 1;
        resume.piece_layers.insert(root, wrong);
        assert!(restore_layers(&mut info, &resume).is_err());
        resume.piece_layers.clear();
        resume.piece_layers.insert(Sha256Hash([1; 32]), layer);
        assert!(restore_layers(&mut info, &resume).is_err());
        assert!(!info.has_piece_layers());
    }
}
