//! [`PiecePicker::pick`]: choosing the next blocks for a peer.

use std::cmp::Reverse;

use smallvec::SmallVec;

use super::download::Block;
use super::{
    BlockRef, PeerKey, PickOptions, PiecePicker, PieceSet, Priority, Stage, MAX_URGENT_REQUESTERS,
};
use crate::PieceIndex;

/// The blocks of one pick.
type Picked = SmallVec<[BlockRef; 16]>;

/// Pieces chosen from the queue, in pick order.
type Chosen = SmallVec<[PieceIndex; 8]>;

/// A queued piece's place in the queue: priority first, then its position in the list of
/// that priority (availability bucket, then the random order inside the bucket).
type QueueKey = (Reverse<Priority>, u32);

/// How many steps the queue walk and the scan of a listable peer set take in turn. Tests
/// use a tiny chunk so that the scan also wins on small torrents.
const CHUNK: usize = if cfg!(test) { 2 } else { 64 };

impl PiecePicker {
    /// Picks up to `count` blocks to request from `peer`, which has the pieces in
    /// `peer_has`, and records them as requested by `peer` (as
    /// [`mark_requested`](Self::mark_requested) would). Returns fewer blocks, or none, when
    /// the peer has nothing more we want. See the [module documentation](super) for the order
    /// and the cost.
    pub fn pick<S: PieceSet + ?Sized>(
        &mut self,
        peer: PeerKey,
        peer_has: &S,
        count: usize,
        options: PickOptions,
    ) -> Picked {
        let mut picked = Picked::new();
        if count == 0 {
            return picked;
        }
        self.pick_deadline_pieces(peer, peer_has, count, &mut picked);
        if let Some(until) = options.urgent_until {
            self.pick_urgent_blocks(peer, peer_has, count, until, &mut picked);
        }
        if self.sequential {
            self.pick_in_order(peer, peer_has, count, &mut picked);
        } else {
            self.pick_partial_pieces(peer, peer_has, count, &mut picked);
            self.pick_queued_pieces(peer, peer_has, count, &mut picked);
        }
        if picked.len() < count && options.end_game && self.is_end_game() {
            self.pick_end_game(peer, peer_has, count, &mut picked);
        }
        picked
    }

    fn pick_deadline_pieces<S: PieceSet + ?Sized>(
        &mut self,
        peer: PeerKey,
        peer_has: &S,
        count: usize,
        picked: &mut Picked,
    ) {
        let mut need = count.saturating_sub(picked.len());
        let mut chosen = Chosen::new();
        for &(_, piece) in &self.deadlines {
            if need == 0 {
                break;
            }
            if !self.priority[piece.get()].is_wanted() || !peer_has.contains(piece) {
                continue;
            }
            let open = self.open_blocks(piece) as usize;
            if open > 0 {
                chosen.push(piece);
                need = need.saturating_sub(open);
            }
        }
        for piece in chosen {
            self.take_open_blocks(piece, peer, count, picked);
        }
    }

    /// Urgent deadline pieces (due by `until`), earliest first: their blocks requested from
    /// other peers (fewer than [`MAX_URGENT_REQUESTERS`]) and not yet received.
    fn pick_urgent_blocks<S: PieceSet + ?Sized>(
        &mut self,
        peer: PeerKey,
        peer_has: &S,
        count: usize,
        until: u64,
        picked: &mut Picked,
    ) {
        let mut urgent: SmallVec<[BlockRef; 16]> = SmallVec::new();
        for &(deadline, piece) in &self.deadlines {
            if deadline > until || picked.len() + urgent.len() >= count {
                break;
            }
            if !self.priority[piece.get()].is_wanted() || !peer_has.contains(piece) {
                continue;
            }
            // Only a piece being downloaded has requested blocks.
            if self.stage[piece.get()] != Stage::Downloading {
                continue;
            }
            let idx = self.slot[piece.get()] as usize;
            for (i, block) in self.downloads[idx].blocks.iter().enumerate() {
                if picked.len() + urgent.len() >= count {
                    break;
                }
                if let Block::Requested(peers) = block {
                    if peers.len() < MAX_URGENT_REQUESTERS && !peers.contains(&peer) {
                        // `i` < blocks in a piece, a u32.
                        urgent.push(BlockRef::new(piece, i as u32));
                    }
                }
            }
        }
        for block in urgent {
            if self.mark_requested(block, peer) {
                picked.push(block);
            }
        }
    }

    /// Partial pieces: higher priority first, then the oldest.
    fn pick_partial_pieces<S: PieceSet + ?Sized>(
        &mut self,
        peer: PeerKey,
        peer_has: &S,
        count: usize,
        picked: &mut Picked,
    ) {
        if picked.len() >= count {
            return;
        }
        let mut candidates: SmallVec<[(Reverse<Priority>, u64, PieceIndex); 16]> = self
            .downloads
            .iter()
            .filter(|d| {
                d.open() > 0
                    && self.priority[d.piece.get()].is_wanted()
                    && peer_has.contains(d.piece)
            })
            .map(|d| (Reverse(self.priority[d.piece.get()]), d.started, d.piece))
            .collect();
        candidates.sort_unstable();
        for (_, _, piece) in candidates {
            if picked.len() >= count {
                break;
            }
            self.take_open_blocks(piece, peer, count, picked);
        }
    }

    /// Pieces not started: the front of the queue that the peer has.
    fn pick_queued_pieces<S: PieceSet + ?Sized>(
        &mut self,
        peer: PeerKey,
        peer_has: &S,
        count: usize,
        picked: &mut Picked,
    ) {
        let need = count.saturating_sub(picked.len());
        if need == 0 {
            return;
        }
        // Choose first, then take: taking a piece removes it from the list being read.
        let mut walk = QueueWalk::new(need);
        let chosen = if peer_has.listable() {
            // Walk the queue and read the peer's pieces in turn; both give the same answer,
            // and whichever ends first bounds the cost.
            let mut scan = SetScan::new(need);
            loop {
                if walk.step(self, peer_has, CHUNK) {
                    break walk.chosen;
                }
                if scan.step(self, peer_has, CHUNK) {
                    break scan.chosen();
                }
            }
        } else {
            walk.step(self, peer_has, usize::MAX);
            walk.chosen
        };
        for piece in chosen {
            self.take_open_blocks(piece, peer, count, picked);
        }
    }

    /// Sequential mode: pieces by index from the first wanted piece we lack.
    fn pick_in_order<S: PieceSet + ?Sized>(
        &mut self,
        peer: PeerKey,
        peer_has: &S,
        count: usize,
        picked: &mut Picked,
    ) {
        while self.cursor < self.num_pieces {
            let p = self.cursor as usize;
            if self.stage[p] != Stage::Have && self.priority[p].is_wanted() {
                break;
            }
            self.cursor += 1;
        }
        let listable = peer_has.listable();
        let mut index = self.cursor;
        while index < self.num_pieces && picked.len() < count {
            let piece = if listable {
                match peer_has.next_piece(PieceIndex(index)) {
                    Some(piece) if piece.0 < self.num_pieces && piece.0 >= index => piece,
                    _ => break,
                }
            } else {
                PieceIndex(index)
            };
            index = piece.0 + 1;
            if self.priority[piece.get()].is_wanted()
                && self.open_blocks(piece) > 0
                && (listable || peer_has.contains(piece))
            {
                self.take_open_blocks(piece, peer, count, picked);
            }
        }
    }

    /// End-game: blocks already requested from others, the least requested first, then
    /// those of the oldest pieces.
    fn pick_end_game<S: PieceSet + ?Sized>(
        &mut self,
        peer: PeerKey,
        peer_has: &S,
        count: usize,
        picked: &mut Picked,
    ) {
        let need = count.saturating_sub(picked.len());
        let mut candidates: SmallVec<[(usize, u64, BlockRef); 32]> = SmallVec::new();
        for d in &self.downloads {
            if !self.priority[d.piece.get()].is_wanted() || !peer_has.contains(d.piece) {
                continue;
            }
            for (i, block) in d.blocks.iter().enumerate() {
                if let Block::Requested(peers) = block {
                    if !peers.contains(&peer) {
                        // `i` < blocks in a piece, a u32.
                        let block = BlockRef::new(d.piece, i as u32);
                        candidates.push((peers.len(), d.started, block));
                    }
                }
            }
        }
        candidates.sort_unstable();
        for &(_, _, block) in candidates.iter().take(need) {
            if self.mark_requested(block, peer) {
                picked.push(block);
            }
        }
    }

    /// Requests open blocks of `piece` from `peer`, in block order, until `picked` holds
    /// `count` blocks.
    fn take_open_blocks(
        &mut self,
        piece: PieceIndex,
        peer: PeerKey,
        count: usize,
        picked: &mut Picked,
    ) {
        if picked.len() >= count {
            return;
        }
        let Some(idx) = self.download_index(piece) else {
            return;
        };
        let d = &mut self.downloads[idx];
        for i in 0..d.blocks.len() {
            if picked.len() >= count {
                break;
            }
            if d.blocks[i] == Block::Open && d.request(i, peer) {
                // `i` < blocks in a piece, a u32.
                picked.push(BlockRef::new(piece, i as u32));
            }
        }
    }
}

/// Reads the queue from the front (highest priority, rarest) for pieces the peer has, until
/// they hold `need` blocks.
struct QueueWalk {
    /// The priority level being read, as an index into `levels`, plus one (0: done).
    level: usize,
    pos: usize,
    need: usize,
    chosen: Chosen,
}

impl QueueWalk {
    fn new(need: usize) -> Self {
        Self {
            level: 7,
            pos: 0,
            need,
            chosen: Chosen::new(),
        }
    }

    /// Looks at up to `budget` pieces. Returns whether the walk is over.
    fn step<S: PieceSet + ?Sized>(
        &mut self,
        picker: &PiecePicker,
        peer_has: &S,
        mut budget: usize,
    ) -> bool {
        while self.need > 0 && self.level > 0 {
            let pieces = picker.levels[self.level - 1].pieces();
            while let Some(&piece) = pieces.get(self.pos) {
                if budget == 0 {
                    return false;
                }
                budget -= 1;
                self.pos += 1;
                if peer_has.contains(piece) {
                    self.chosen.push(piece);
                    let blocks = picker.blocks_in_piece(piece) as usize;
                    self.need = self.need.saturating_sub(blocks);
                    if self.need == 0 {
                        return true;
                    }
                }
            }
            self.level -= 1;
            self.pos = 0;
        }
        true
    }
}

/// Reads a listable peer set in index order and keeps the queued pieces that the
/// [`QueueWalk`] would choose: the fewest pieces, earliest in queue order, that hold `need`
/// blocks.
struct SetScan {
    /// The next piece index to read from the set; `None` when the set is read.
    next: Option<PieceIndex>,
    need: usize,
    /// (queue order key, piece, its blocks), best first.
    best: SmallVec<[(QueueKey, PieceIndex, usize); 8]>,
    best_blocks: usize,
}

impl SetScan {
    fn new(need: usize) -> Self {
        Self {
            next: Some(PieceIndex(0)),
            need,
            best: SmallVec::new(),
            best_blocks: 0,
        }
    }

    /// Reads up to `budget` pieces of the set. Returns whether the set is read.
    fn step<S: PieceSet + ?Sized>(
        &mut self,
        picker: &PiecePicker,
        peer_has: &S,
        budget: usize,
    ) -> bool {
        for _ in 0..budget {
            let Some(from) = self.next else {
                return true;
            };
            let piece = match peer_has.next_piece(from) {
                Some(piece) if piece.0 < picker.num_pieces && piece >= from => piece,
                _ => {
                    self.next = None;
                    return true;
                }
            };
            self.next = piece.0.checked_add(1).map(PieceIndex);
            if picker.stage[piece.get()] == Stage::Queued {
                let priority = picker.priority[piece.get()];
                let key = (Reverse(priority), picker.slot[piece.get()]);
                self.offer(key, piece, picker.blocks_in_piece(piece) as usize);
            }
        }
        self.next.is_none()
    }

    fn offer(&mut self, key: QueueKey, piece: PieceIndex, blocks: usize) {
        let full = self.best_blocks >= self.need;
        if full && self.best.last().is_some_and(|worst| worst.0 < key) {
            return;
        }
        let at = self.best.partition_point(|b| b.0 < key);
        self.best.insert(at, (key, piece, blocks));
        self.best_blocks += blocks;
        // Drop the worst while the rest still holds enough blocks.
        while let Some(&(_, _, worst_blocks)) = self.best.last() {
            if self.best_blocks - worst_blocks >= self.need {
                self.best.pop();
                self.best_blocks -= worst_blocks;
            } else {
                break;
            }
        }
    }

    fn chosen(self) -> Chosen {
        self.best.into_iter().map(|(_, piece, _)| piece).collect()
    }
}
