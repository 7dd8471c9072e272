//! Merkle-precise blame: which blocks of a failed v2 piece were bad, and so which peers.
//!
//! When a piece that several peers sent blocks of fails its check, the v2 tree can tell
//! the bad blocks apart: its 16 KiB leaves are asked of a peer that speaks v2 (a BEP52
//! `hash request` at the base layer, for the piece's leaves, proven up to the piece's hash
//! in the piece layer, which we trust), then each block's SHA-256 is compared with its
//! leaf. Only the senders of blocks that do not match are banned. If no peer can give the
//! leaves (none speaks v2 or has the piece, or all refuse or time out), the blame falls
//! back on [`trust`](super::trust). (libtorrent 2.0 seeding data it checked keeps no block
//! hashes: it answers requests for the piece layer and rejects requests for leaves.)
//!
//! The other side: a peer's request for the leaves of a piece we have is answered by
//! reading the piece from disk and hashing its blocks (at most [`MAX_LEAF_READS`] reads at
//! once); the leaves are checked against our piece hash before they are sent.
//!
//! The blocks' hashes are computed in the core, on the rare failure of a shared piece: at
//! most one piece's worth of SHA-256 per case.

use std::collections::BTreeSet;

use bytes::Bytes;
use core::net::SocketAddr;
use core::time::Duration;

use super::{piece_check, Job, Shared, Torrent};
use crate::merkle::{self, MerkleTree};
use crate::picker::PeerKey;
use crate::session::{DiskJobKind, DiskResult};
use crate::time::Instant;
use crate::wire::{HashRequest, Hashes};
use crate::{FileIndex, PieceIndex, Sha256Hash, BLOCK_SIZE};

/// Failed pieces whose leaves are being asked for at once; more fall back on trust.
pub(super) const MAX_CASES: usize = 4;

/// Peers asked for one piece's leaves before falling back on trust.
pub(super) const MAX_TRIES: usize = 3;

/// How long a peer has to send the leaves.
pub(super) const LEAVES_TIMEOUT: Duration = Duration::from_secs(20);

/// Pieces read from disk at once to answer requests for leaves.
pub(super) const MAX_LEAF_READS: usize = 2;

/// A failed piece whose leaves were asked for.
#[derive(Debug)]
struct Case {
    piece: PieceIndex,
    /// The piece's blocks, in order, and who sent each.
    blocks: Vec<(Bytes, SocketAddr)>,
    /// Every sender, once.
    senders: Vec<SocketAddr>,
    request: HashRequest,
    num_blocks: u32,
    /// The piece's hash in the piece layer: what the leaves must hash up to.
    expected: Sha256Hash,
    /// How many of the piece's bytes are the file's (the rest is pad, not in the tree).
    data_len: u32,
    /// Whom it was asked of, until when.
    asked: (PeerKey, Instant),
    tried: BTreeSet<PeerKey>,
}

/// The blame cases of a torrent and its reads for leaves; see the [module documentation](self).
#[derive(Debug, Default)]
pub(super) struct Blame {
    cases: Vec<Case>,
    leaf_reads: usize,
}

/// Where a piece's leaves are in its file's tree.
struct PieceLeaves {
    request: HashRequest,
    num_blocks: u32,
    expected: Sha256Hash,
    data_len: u32,
    file: FileIndex,
}

/// The base-layer request for all the leaves of `piece`, proven up to the piece's hash.
fn piece_leaves(info: &crate::metainfo::TorrentInfo, piece: PieceIndex) -> Option<PieceLeaves> {
    let check = piece_check(info, piece)?.v2?;
    if check.leaves < 2 {
        return None;
    }
    let files = info.files();
    let start = u64::from(piece.0) * u64::from(files.piece_length());
    let file = files.file_at_offset(start)?;
    let entry = files.file(file)?;
    let num_blocks = u32::try_from(entry.num_blocks()).ok()?;
    let index = u32::try_from((start - entry.offset()) / u64::from(BLOCK_SIZE)).ok()?;
    let request = HashRequest {
        pieces_root: entry.pieces_root()?,
        base_layer: 0,
        index,
        length: check.leaves,
        proof_layers: check.leaves.ilog2() - 1,
    };
    merkle_request(&request).check(num_blocks).ok()?;
    Some(PieceLeaves {
        request,
        num_blocks,
        expected: check.expected,
        data_len: check.data_len,
        file,
    })
}

fn merkle_request(request: &HashRequest) -> merkle::HashRequest {
    merkle::HashRequest {
        base: request.base_layer,
        index: request.index,
        count: request.length,
        proof_layers: request.proof_layers,
    }
}

/// The leaf hashes of a piece's bytes: one per block of the file's data, zeros after.
fn leaves_of(
    blocks: impl IntoIterator<Item = Bytes>,
    data_len: u32,
    count: u32,
) -> Vec<Sha256Hash> {
    let mut leaves: Vec<Sha256Hash> = blocks
        .into_iter()
        .enumerate()
        .map_while(|(i, block)| {
            let start = u32::try_from(i).ok()?.checked_mul(BLOCK_SIZE)?;
            let take = data_len.checked_sub(start).filter(|&n| n > 0)?;
            let take = (take as usize).min(block.len());
            Some(merkle::block_hash(&block[..take]))
        })
        .collect();
    leaves.resize(count as usize, Sha256Hash::default());
    leaves
}

impl Torrent {
    /// A piece several peers sent failed its check: asks a peer for its leaves, to blame
    /// the right senders. Returns `false` (blame on trust instead) when that cannot be done.
    pub(super) fn start_blame(
        &mut self,
        now: Instant,
        piece: PieceIndex,
        senders: &[SocketAddr],
        blocks: Vec<(Bytes, SocketAddr)>,
    ) -> bool {
        if self.blame.cases.len() >= MAX_CASES {
            return false;
        }
        let Some(meta) = &self.meta else {
            return false;
        };
        let Some(leaves) = piece_leaves(&meta.info, piece) else {
            return false;
        };
        if blocks.len() > leaves.request.length as usize {
            return false;
        }
        let mut case = Case {
            piece,
            blocks,
            senders: senders.to_vec(),
            request: leaves.request,
            num_blocks: leaves.num_blocks,
            expected: leaves.expected,
            data_len: leaves.data_len,
            asked: (PeerKey(0), now),
            tried: BTreeSet::new(),
        };
        if !self.ask_leaves(now, &mut case) {
            return false;
        }
        self.blame.cases.push(case);
        true
    }

    /// Asks the next peer for a case's leaves: one that speaks v2, has the piece and was
    /// not tried, preferably one that sent none of the piece.
    fn ask_leaves(&mut self, now: Instant, case: &mut Case) -> bool {
        if case.tried.len() >= MAX_TRIES {
            return false;
        }
        let v2 = self.info_hashes.get_v2();
        let candidates = self.peers.iter().filter(|(key, p)| {
            p.established
                && p.speaks_v2(v2)
                && p.have.contains(case.piece)
                && !case.tried.contains(key)
        });
        let mut chosen = None;
        for (&key, peer) in candidates {
            let sent = case.senders.contains(&peer.addr);
            if chosen.is_none() || !sent {
                chosen = Some(key);
            }
            if !sent {
                break;
            }
        }
        let Some(key) = chosen else {
            return false;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return false;
        };
        peer.connection.send_hash_request(now, case.request);
        case.tried.insert(key);
        case.asked = (key, now + LEAVES_TIMEOUT);
        self.touch(key);
        true
    }

    /// Hashes from a peer: if they are the leaves of a case, blames the senders of the
    /// blocks that do not match them. Returns whether they were.
    pub(super) fn blame_on_hashes(
        &mut self,
        now: Instant,
        key: PeerKey,
        hashes: &Hashes,
        shared: &mut Shared,
    ) -> bool {
        let Some(at) = self
            .blame
            .cases
            .iter()
            .position(|c| c.asked.0 == key && c.request == hashes.request)
        else {
            return false;
        };
        let case = self.blame.cases.remove(at);
        let proven = merkle::prove(
            case.num_blocks,
            &merkle_request(&case.request),
            &hashes.hashes,
        );
        if !proven.is_ok_and(|node| node.hash == case.expected) {
            // Leaves that do not prove out to the piece's hash: that peer lies.
            if let Some(addr) = self.peers.get(&key).map(|p| p.addr) {
                self.ban(now, addr, shared);
            }
            self.retry_or_fall_back(now, case, shared);
            return true;
        }
        let count = case.request.length;
        let leaves = hashes.hashes.get(..count as usize).unwrap_or_default();
        let ours = leaves_of(
            case.blocks.iter().map(|(b, _)| b.clone()),
            case.data_len,
            count,
        );
        let mut bad = BTreeSet::new();
        for (i, (theirs, mine)) in leaves.iter().zip(&ours).enumerate() {
            if theirs != mine {
                if let Some((_, sender)) = case.blocks.get(i) {
                    bad.insert(*sender);
                }
            }
        }
        if bad.is_empty() {
            // Every block matches its leaf: the failure is not the v2 data's (a hybrid's
            // v1 hash, say).
            self.on_hash_failed(now, &case.senders, shared);
            return true;
        }
        for addr in bad {
            self.ban(now, addr, shared);
        }
        true
    }

    /// A peer refused a request for leaves: the next peer is asked. Returns whether it
    /// was one.
    pub(super) fn blame_on_reject(
        &mut self,
        now: Instant,
        key: PeerKey,
        request: &HashRequest,
        shared: &mut Shared,
    ) -> bool {
        let Some(at) = self
            .blame
            .cases
            .iter()
            .position(|c| c.asked.0 == key && c.request == *request)
        else {
            return false;
        };
        let case = self.blame.cases.remove(at);
        self.retry_or_fall_back(now, case, shared);
        true
    }

    fn retry_or_fall_back(&mut self, now: Instant, mut case: Case, shared: &mut Shared) {
        if self.ask_leaves(now, &mut case) {
            self.blame.cases.push(case);
        } else {
            self.on_hash_failed(now, &case.senders, shared);
        }
    }

    /// When a request for leaves times out.
    pub(super) fn blame_poll_timeout(&self) -> Option<Instant> {
        self.blame.cases.iter().map(|c| c.asked.1).min()
    }

    /// Requests for leaves not answered in time go to the next peer.
    pub(super) fn blame_handle_timeout(&mut self, now: Instant, shared: &mut Shared) {
        let (late, waiting): (Vec<Case>, Vec<Case>) = std::mem::take(&mut self.blame.cases)
            .into_iter()
            .partition(|c| c.asked.1 <= now);
        self.blame.cases = waiting;
        for case in late {
            self.retry_or_fall_back(now, case, shared);
        }
    }

    // ----- serving leaves -----

    /// A request for leaves of a piece we have: reads the piece to hash its blocks.
    /// Returns `false` if it cannot be served that way.
    pub(super) fn serve_leaves(
        &mut self,
        key: PeerKey,
        request: HashRequest,
        shared: &mut Shared,
    ) -> bool {
        if request.base_layer != 0 || self.blame.leaf_reads >= MAX_LEAF_READS {
            return false;
        }
        let Some(meta) = &self.meta else {
            return false;
        };
        let Some(piece) = self.piece_of_leaves(&request) else {
            return false;
        };
        if !meta.picker.have(piece) {
            return false;
        }
        let Some(leaves) = piece_leaves(&meta.info, piece) else {
            return false;
        };
        let id = shared.disk_job(
            self.id,
            DiskJobKind::ReadLeaves {
                piece,
                len: meta.picker.piece_len(piece),
                data_len: leaves.data_len,
                count: leaves.request.length,
            },
        );
        self.jobs.insert(id, Job::Leaves { key, request });
        self.blame.leaf_reads += 1;
        true
    }

    /// The piece whose leaves `request` asks for, if it asks for leaves of one piece.
    fn piece_of_leaves(&self, request: &HashRequest) -> Option<PieceIndex> {
        let meta = self.meta.as_ref()?;
        let files = meta.info.files();
        let (file, entry) = files
            .iter()
            .find(|(_, f)| f.pieces_root() == Some(request.pieces_root))?;
        let num_blocks = u32::try_from(entry.num_blocks()).ok()?;
        merkle_request(request).check(num_blocks).ok()?;
        let first_piece = files.file_piece_range(file)?.start;
        let per_piece = meta.info.piece_length() / BLOCK_SIZE;
        let piece = PieceIndex(first_piece.0.checked_add(request.index / per_piece)?);
        let leaves = piece_leaves(&meta.info, piece)?;
        let in_piece = request.index.checked_sub(leaves.request.index)?;
        (leaves.file == file && in_piece + request.length <= leaves.request.length).then_some(piece)
    }

    /// The piece read for a request for leaves: answers with the leaves and their proof,
    /// or rejects.
    pub(super) fn on_leaves_read(
        &mut self,
        now: Instant,
        key: PeerKey,
        request: HashRequest,
        result: DiskResult,
    ) {
        self.blame.leaf_reads = self.blame.leaf_reads.saturating_sub(1);
        let answer = match result {
            DiskResult::Leaves { leaves, .. } => self.leaves_answer(&request, leaves),
            _ => None,
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        match answer {
            Some(hashes) => peer.connection.send_hashes(now, Hashes { request, hashes }),
            None => peer.connection.send_hash_reject(now, request),
        }
        self.touch(key);
    }

    /// The answer to a request for leaves from the piece's leaves (hashed by the disk job
    /// that read it): the leaves asked for, then uncles from the piece's subtree and, above
    /// it, from the file's tree. `None` if the piece on disk no longer matches its hash.
    fn leaves_answer(
        &mut self,
        request: &HashRequest,
        ours: Vec<Sha256Hash>,
    ) -> Option<Vec<Sha256Hash>> {
        let piece = self.piece_of_leaves(request)?;
        let meta = self.meta.as_ref()?;
        let leaves = piece_leaves(&meta.info, piece)?;
        if ours.len() != leaves.request.length as usize {
            return None;
        }
        let subtree = MerkleTree::from_leaves(&ours).ok()?;
        if subtree.root() != leaves.expected {
            return None;
        }
        let wanted = merkle_request(request);
        let piece_height = subtree.root_height();
        let first = leaves.request.index;
        let local = request.index.checked_sub(first)? as usize;
        let mut out = ours.get(local..local + request.length as usize)?.to_vec();
        let subtree_height = request.length.ilog2();
        let info = meta.info.clone();
        for height in subtree_height..subtree_height + wanted.num_uncles() {
            let sibling = (request.index >> height) ^ 1;
            let node = if height < piece_height {
                subtree.node(height, sibling.checked_sub(first >> height)?)?
            } else {
                self.hash_server
                    .tree_of(&info, leaves.file)?
                    .node(height, sibling)?
            };
            out.push(node);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create::TorrentVersion;
    use crate::session::testing::Content;

    #[test]
    fn a_pieces_leaves_are_asked_with_a_proof_up_to_its_hash() {
        // 64 KiB pieces (4 blocks): `a` is 2.5 pieces, `b` one short block.
        let content = Content::new(
            TorrentVersion::V2,
            64 * 1024,
            &[("a", 160 * 1024), ("b", 100)],
            3,
        );
        let info = &content.info;
        let root = |f| {
            info.files()
                .file(FileIndex(f))
                .unwrap()
                .pieces_root()
                .unwrap()
        };
        let second = piece_leaves(info, PieceIndex(1)).unwrap();
        assert_eq!(
            second.request,
            HashRequest {
                pieces_root: root(0),
                base_layer: 0,
                index: 4,
                length: 4,
                proof_layers: 1,
            }
        );
        // The last piece of `a`: 2 blocks of data, then pad leaves.
        let last = piece_leaves(info, PieceIndex(2)).unwrap();
        assert_eq!((last.request.index, last.data_len), (8, 32 * 1024));
        let tree = MerkleTree::from_data(&content.data[..160 * 1024]).unwrap();
        let hashes = tree.hashes(&merkle_request(&last.request)).unwrap();
        let proven = merkle::prove(last.num_blocks, &merkle_request(&last.request), &hashes);
        assert_eq!(proven.map(|n| n.hash), Ok(last.expected));
        // Our blocks give the same leaves; pad bytes are not hashed.
        let mut piece = content.piece(PieceIndex(2)).to_vec();
        piece[40_000] ^= 1;
        let blocks: Vec<Bytes> = piece.chunks(16384).map(Bytes::copy_from_slice).collect();
        assert_eq!(leaves_of(blocks, last.data_len, 4), &hashes[..4]);
        // A file of one block has a single leaf: nothing to tell apart.
        assert!(piece_leaves(info, PieceIndex(3)).is_none());
    }
}
