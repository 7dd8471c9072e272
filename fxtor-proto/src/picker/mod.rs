//! The piece picker: which blocks to ask of which peer.
//!
//! [`PiecePicker`] keeps, for every piece of a torrent, whether we have it, how many peers
//! have it, its [`Priority`], and for the pieces being downloaded the state of each 16 KiB
//! block. It is a plain data structure: the caller tells it what happened (a peer's
//! bitfield, a `have`, a request sent, a block received, a piece checked) and asks it for
//! the next blocks to request from a peer with [`PiecePicker::pick`]. It keeps no time and
//! does no I/O; deadlines are numbers on the caller's clock.
//!
//! A pick takes blocks in this order:
//!
//! 1. pieces with a deadline ([`PiecePicker::set_piece_deadline`]), earliest first; those
//!    due by [`PickOptions::urgent_until`] also have their blocks requested from other
//!    peers asked of this one (at most [`MAX_URGENT_REQUESTERS`] peers a block), so a
//!    streaming player does not wait on one slow peer;
//! 2. in sequential mode, the remaining pieces by index; otherwise
//! 3. pieces already started (partial pieces), higher priority first, then oldest first;
//! 4. pieces not started, higher priority first, then rarest first (fewest peers have
//!    them), equally rare pieces in random order;
//! 5. in end-game (every wanted block is requested), blocks already requested from other
//!    peers, those requested from the fewest peers first.
//!
//! It skips pieces the peer lacks, pieces of priority 0 and pieces we have, and never hands
//! out a block that is requested or received outside end-game. [`PiecePicker::pick`] marks
//! the blocks it returns as requested by that peer.
//!
//! # Cost
//!
//! With N pieces, D partial pieces, B availability levels (at most the number of peers,
//! plus one) and T pieces with a deadline:
//!
//! - `inc_availability` / `dec_availability`: O(1) (a piece moves to the neighbouring
//!   bucket with two swaps); a seed (`peer_has_all`) is O(1) as it moves every piece alike;
//!   a bitfield is O(pieces set).
//! - A piece leaving or entering the queue (first request, check passed or failed, all
//!   requests withdrawn, priority change): O(B). A bulk priority change rebuilds the queue
//!   in O(N + B).
//! - `pick` of k blocks: O(T) for the deadlines (plus the blocks of the urgent ones),
//!   O(D log D) for the partial pieces, plus the queue read from the front until the
//!   peer's pieces among it hold k blocks. For a
//!   peer with a random fraction f of the pieces that is about (k / blocks per piece) / f
//!   pieces, a few hundred nanoseconds on a million pieces. When the pieces the peer has
//!   sit far back in the queue (the rarest pieces are those only seeds have, and this peer
//!   has few pieces) the walk gets long; libtorrent's picker has the same limit. A
//!   [listable](PieceSet::listable) peer set such as a [`WireBitfield`] caps it: the picker
//!   reads the peer's own pieces alongside the queue and stops at whichever ends first, so a
//!   pick costs O(min(walk, pieces the peer has)). A closure set cannot do that. Only a
//!   peer that has many pieces, all of them far back in the queue, still costs O(N).
//! - Sequential mode reads pieces by index from the first wanted piece we lack, skipping
//!   those the peer lacks (by listing, for a listable set) and those fully requested.
//! - End-game: O(blocks of the partial pieces).
//! - Memory: about 14 bytes per piece, plus the blocks of the partial pieces.
//!
//! # Example
//!
//! ```
//! use fxtor_proto::picker::{AllPieces, PeerKey, PickOptions, PiecePicker};
//! use fxtor_proto::{PieceIndex, BLOCK_SIZE};
//!
//! // 4 pieces of 2 blocks each; the RNG seed makes the tie-breaks reproducible.
//! let mut picker = PiecePicker::new(8 * u64::from(BLOCK_SIZE), 2 * BLOCK_SIZE, 42).unwrap();
//! let seed = PeerKey(1);
//! picker.peer_has_all();
//! picker.inc_availability(PieceIndex(3)); // another peer has piece 3 too
//!
//! let blocks = picker.pick(seed, &AllPieces, 2, PickOptions::default());
//! assert_eq!(blocks.len(), 2);
//! assert_ne!(blocks[0].piece, PieceIndex(3)); // piece 3 is the least rare
//! let piece = blocks[0].piece;
//! for block in &blocks {
//!     let received = picker.mark_received(*block, seed);
//!     assert!(received.cancel.is_empty());
//! }
//! assert!(picker.partial_pieces().any(|p| p.piece == piece && p.received == 2));
//! picker.piece_passed(piece);
//! assert!(picker.have(piece));
//! assert_eq!(picker.num_have(), 1);
//! ```

mod buckets;
mod download;
mod pick;
mod piece_set;
mod priority;
mod rng;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;

use smallvec::SmallVec;

use crate::{PieceIndex, BLOCK_SIZE};
use buckets::Buckets;
use download::{Block, Download};
use rng::XorShift64;

pub use piece_set::{AllPieces, PieceSet, WireBitfield};
pub use priority::{piece_priorities_from_files, Priority};

/// A peer, as named by the caller. The picker only compares keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PeerKey(pub u32);

/// The index of a block inside its piece (block `i` starts at byte `i * BLOCK_SIZE`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BlockIndex(pub u32);

impl BlockIndex {
    /// The index as a `usize`.
    pub fn get(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Debug for BlockIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockIndex({})", self.0)
    }
}

impl fmt::Display for BlockIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// One block of one piece: what a `request` message asks for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct BlockRef {
    /// The piece.
    pub piece: PieceIndex,
    /// The block inside the piece.
    pub block: BlockIndex,
}

impl BlockRef {
    /// Block `block` of piece `piece`.
    pub const fn new(piece: PieceIndex, block: u32) -> Self {
        Self {
            piece,
            block: BlockIndex(block),
        }
    }

    /// The block's first byte, counted from the start of its piece.
    pub fn offset_in_piece(self) -> u64 {
        u64::from(self.block.0) * u64::from(BLOCK_SIZE)
    }
}

/// Where a block stands, from [`PiecePicker::block_status`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BlockStatus {
    /// Nobody has been asked for it yet.
    Open,
    /// Requested from one or more peers ([`PiecePicker::block_requesters`]).
    Requested,
    /// Received, its piece not yet checked.
    Received,
    /// Its piece has been checked and is ours.
    Have,
}

/// A piece with blocks requested or received, from [`PiecePicker::partial_pieces`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct PartialPiece {
    /// The piece.
    pub piece: PieceIndex,
    /// Its number of blocks.
    pub blocks: u32,
    /// Blocks requested and not yet received.
    pub requested: u32,
    /// Blocks received.
    pub received: u32,
}

/// What [`PiecePicker::mark_received`] found.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct BlockReceived {
    /// Whether the block was new (not a duplicate, not of a piece we have).
    pub new: bool,
    /// Other peers that were asked for the same block (end-game): send them a `cancel`.
    pub cancel: SmallVec<[PeerKey; 4]>,
    /// Whether every block of the piece is now received: time to check it.
    pub piece_complete: bool,
}

/// How [`PiecePicker::pick`] may choose.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct PickOptions {
    /// Whether, once every wanted block is requested, blocks already requested from other
    /// peers may be requested again (end-game). On by default.
    pub end_game: bool,
    /// Pieces whose deadline is at or before this (on the deadlines' clock) are urgent:
    /// their blocks already requested from other peers, and not yet received, may be
    /// requested from this peer too, each from at most [`MAX_URGENT_REQUESTERS`] peers,
    /// so a late piece does not wait on one slow peer. `None` (the default): no piece is.
    pub urgent_until: Option<u64>,
}

/// The most peers one block of an urgent deadline piece is requested from at once.
pub const MAX_URGENT_REQUESTERS: usize = 3;

impl PickOptions {
    /// The defaults: end-game allowed, no urgent pieces.
    pub const fn new() -> Self {
        Self {
            end_game: true,
            urgent_until: None,
        }
    }

    /// With end-game allowed or not.
    pub const fn with_end_game(mut self, end_game: bool) -> Self {
        self.end_game = end_game;
        self
    }

    /// With the deadline pieces due at or before `until` urgent (see
    /// [`urgent_until`](Self::urgent_until)).
    pub const fn with_urgent_until(mut self, until: u64) -> Self {
        self.urgent_until = Some(until);
        self
    }
}

impl Default for PickOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a [`PiecePicker`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickerError {
    /// The piece length was 0.
    #[error("piece length is 0")]
    ZeroPieceLength,
    /// The torrent has more pieces than the picker handles.
    #[error("{pieces} pieces, more than the picker's limit of {max}")]
    TooManyPieces {
        /// The number of pieces of the torrent.
        pieces: u64,
        /// [`PiecePicker::MAX_PIECES`].
        max: u32,
    },
}

/// Where a piece is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    /// Not ours, not started, priority 0: in no list.
    Unwanted,
    /// Not ours, not started, priority above 0: in the bucket list of its priority.
    Queued,
    /// Some block requested or received: in `downloads`.
    Downloading,
    /// Checked and ours.
    Have,
}

/// The piece picker; see the [module documentation](self).
#[derive(Clone)]
pub struct PiecePicker {
    num_pieces: u32,
    piece_length: u32,
    last_piece_length: u32,
    /// Per piece: the number of peers that have it, seeds not counted.
    availability: Vec<u32>,
    priority: Vec<Priority>,
    stage: Vec<Stage>,
    /// Per piece: its position in its bucket list when [`Stage::Queued`], its index in
    /// `downloads` when [`Stage::Downloading`], unused otherwise.
    slot: Vec<u32>,
    /// The queued pieces of priority `i + 1`.
    levels: [Buckets; 7],
    downloads: Vec<Download>,
    /// Counts the downloads started, to order partial pieces by age.
    downloads_started: u64,
    deadlines: BTreeSet<(u64, PieceIndex)>,
    deadline_of: BTreeMap<PieceIndex, u64>,
    /// Peers that have every piece: added to every piece's availability.
    seeds: u32,
    num_have: u32,
    /// Pieces with a priority above 0 that we do not have.
    wanted_left: u32,
    /// Pieces of a priority above 0, ours or not.
    num_wanted: u32,
    sequential: bool,
    /// Every piece below it is ours or of priority 0 (sequential mode starts here).
    cursor: u32,
    rng: XorShift64,
}

impl fmt::Debug for PiecePicker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PiecePicker")
            .field("num_pieces", &self.num_pieces)
            .field("piece_length", &self.piece_length)
            .field("num_have", &self.num_have)
            .field("wanted_left", &self.wanted_left)
            .field("partial_pieces", &self.downloads.len())
            .field("seeds", &self.seeds)
            .field("sequential", &self.sequential)
            .finish_non_exhaustive()
    }
}

impl PiecePicker {
    /// The most pieces a picker takes (33 554 432; a 2 TiB torrent of 64 KiB pieces).
    pub const MAX_PIECES: u32 = 1 << 25;

    /// A picker for a torrent of `total_length` bytes in pieces of `piece_length` bytes (the
    /// last piece may be shorter). Every piece starts wanted at [`Priority::DEFAULT`], with
    /// no peer having it. `rng_seed` seeds the tie-breaks between equally rare pieces.
    ///
    /// Takes O(N) time.
    pub fn new(total_length: u64, piece_length: u32, rng_seed: u64) -> Result<Self, PickerError> {
        if piece_length == 0 {
            return Err(PickerError::ZeroPieceLength);
        }
        let pieces = total_length.div_ceil(u64::from(piece_length));
        let num_pieces = match u32::try_from(pieces) {
            Ok(n) if n <= Self::MAX_PIECES => n,
            _ => {
                return Err(PickerError::TooManyPieces {
                    pieces,
                    max: Self::MAX_PIECES,
                })
            }
        };
        let last_piece_length = match num_pieces {
            0 => 0,
            // Below `piece_length`, a u32: the pieces before the last cover all but it.
            n => (total_length - u64::from(n - 1) * u64::from(piece_length)) as u32,
        };
        let n = num_pieces as usize;
        let mut picker = Self {
            num_pieces,
            piece_length,
            last_piece_length,
            availability: vec![0; n],
            priority: vec![Priority::DEFAULT; n],
            stage: vec![Stage::Queued; n],
            slot: vec![0; n],
            levels: Default::default(),
            downloads: Vec::new(),
            downloads_started: 0,
            deadlines: BTreeSet::new(),
            deadline_of: BTreeMap::new(),
            seeds: 0,
            num_have: 0,
            wanted_left: num_pieces,
            num_wanted: num_pieces,
            sequential: false,
            cursor: 0,
            rng: XorShift64::new(rng_seed),
        };
        picker.rebuild_levels();
        Ok(picker)
    }

    // ---- geometry ----

    /// The number of pieces.
    pub fn num_pieces(&self) -> u32 {
        self.num_pieces
    }

    /// The length of a piece in bytes (0 for an index out of range).
    pub fn piece_len(&self, piece: PieceIndex) -> u32 {
        if piece.0 + 1 == self.num_pieces {
            self.last_piece_length
        } else if piece.0 < self.num_pieces {
            self.piece_length
        } else {
            0
        }
    }

    /// The number of blocks of a piece (0 for an index out of range).
    pub fn blocks_in_piece(&self, piece: PieceIndex) -> u32 {
        self.piece_len(piece).div_ceil(BLOCK_SIZE)
    }

    /// The length of a block in bytes: [`BLOCK_SIZE`], less for the last block of a piece
    /// whose length is not a multiple of it, 0 for a block out of range.
    pub fn block_len(&self, block: BlockRef) -> u32 {
        let piece_len = u64::from(self.piece_len(block.piece));
        let rest = piece_len.saturating_sub(block.offset_in_piece());
        // At most BLOCK_SIZE, a u32.
        rest.min(u64::from(BLOCK_SIZE)) as u32
    }

    /// The block's index inside its piece, if the block exists.
    fn block_in_range(&self, block: BlockRef) -> Option<usize> {
        (block.block.0 < self.blocks_in_piece(block.piece)).then_some(block.block.get())
    }

    fn in_range(&self, piece: PieceIndex) -> bool {
        piece.0 < self.num_pieces
    }

    // ---- state queries ----

    /// Whether we have (checked) `piece`.
    pub fn have(&self, piece: PieceIndex) -> bool {
        self.stage.get(piece.get()) == Some(&Stage::Have)
    }

    /// The number of pieces we have.
    pub fn num_have(&self) -> u32 {
        self.num_have
    }

    /// Whether we have every piece of a priority above 0.
    pub fn is_finished(&self) -> bool {
        self.wanted_left == 0
    }

    /// The number of pieces of a priority above 0 that we do not have.
    pub fn wanted_left(&self) -> u32 {
        self.wanted_left
    }

    /// How many pieces have a priority above 0, whether we have them or not. O(1).
    pub fn num_wanted(&self) -> u32 {
        self.num_wanted
    }

    /// Whether we have every piece.
    pub fn is_seed(&self) -> bool {
        self.num_have == self.num_pieces
    }

    /// The number of peers that have `piece`, seeds included (0 out of range).
    pub fn availability(&self, piece: PieceIndex) -> u32 {
        self.availability
            .get(piece.get())
            .map_or(0, |&a| a.saturating_add(self.seeds))
    }

    /// The number of peers counted by [`peer_has_all`](Self::peer_has_all).
    pub fn num_seeds(&self) -> u32 {
        self.seeds
    }

    /// The priority of `piece` ([`Priority::DONT_DOWNLOAD`] out of range).
    pub fn piece_priority(&self, piece: PieceIndex) -> Priority {
        self.priority
            .get(piece.get())
            .copied()
            .unwrap_or(Priority::DONT_DOWNLOAD)
    }

    /// The pieces with blocks requested or received, in no particular order.
    pub fn partial_pieces(&self) -> impl Iterator<Item = PartialPiece> + '_ {
        self.downloads.iter().map(|d| PartialPiece {
            piece: d.piece,
            blocks: d.blocks.len() as u32,
            requested: d.requested,
            received: d.received,
        })
    }

    /// Where a block stands, or `None` if there is no such block.
    pub fn block_status(&self, block: BlockRef) -> Option<BlockStatus> {
        let i = self.block_in_range(block)?;
        Some(match self.stage[block.piece.get()] {
            Stage::Have => BlockStatus::Have,
            Stage::Unwanted | Stage::Queued => BlockStatus::Open,
            Stage::Downloading => match self.download_of(block.piece)?.blocks.get(i)? {
                Block::Open => BlockStatus::Open,
                Block::Requested(_) => BlockStatus::Requested,
                Block::Received => BlockStatus::Received,
            },
        })
    }

    /// The peers a block is requested from (empty unless it is
    /// [`BlockStatus::Requested`]).
    pub fn block_requesters(&self, block: BlockRef) -> &[PeerKey] {
        let found = self
            .download_of(block.piece)
            .and_then(|d| d.blocks.get(block.block.get()));
        match found {
            Some(Block::Requested(peers)) => peers,
            _ => &[],
        }
    }

    /// Whether we are in end-game: every block of every wanted piece we lack is requested
    /// or received. O(D).
    pub fn is_end_game(&self) -> bool {
        self.levels.iter().all(Buckets::is_empty)
            && self
                .downloads
                .iter()
                .all(|d| d.open() == 0 || !self.priority[d.piece.get()].is_wanted())
    }

    /// Whether sequential mode is on.
    pub fn is_sequential(&self) -> bool {
        self.sequential
    }

    /// The deadline of `piece`, if it has one.
    pub fn piece_deadline(&self, piece: PieceIndex) -> Option<u64> {
        self.deadline_of.get(&piece).copied()
    }

    /// The earliest deadline later than `after`, if any. O(log T).
    pub fn first_deadline_after(&self, after: u64) -> Option<u64> {
        let from = (after.checked_add(1)?, PieceIndex(0));
        self.deadlines
            .range(from..)
            .next()
            .map(|&(deadline, _)| deadline)
    }

    /// Our pieces as a wire-format bitfield (BEP3), for a `bitfield` message or resume data.
    pub fn have_bitfield(&self) -> Vec<u8> {
        let mut bits = vec![0u8; (self.num_pieces as usize).div_ceil(8)];
        for (i, stage) in self.stage.iter().enumerate() {
            if *stage == Stage::Have {
                bits[i / 8] |= 0x80 >> (i % 8);
            }
        }
        bits
    }

    fn download_of(&self, piece: PieceIndex) -> Option<&Download> {
        match self.stage.get(piece.get()) {
            Some(Stage::Downloading) => self.downloads.get(self.slot[piece.get()] as usize),
            _ => None,
        }
    }

    /// The number of blocks of `piece` nobody has been asked for.
    fn open_blocks(&self, piece: PieceIndex) -> u32 {
        match self.stage[piece.get()] {
            Stage::Queued | Stage::Unwanted => self.blocks_in_piece(piece),
            Stage::Downloading => self.download_of(piece).map_or(0, Download::open),
            Stage::Have => 0,
        }
    }

    // ---- availability ----

    /// One more peer has `piece` (a `have` message). Out-of-range indices are ignored.
    pub fn inc_availability(&mut self, piece: PieceIndex) {
        let p = piece.get();
        let Some(&a) = self.availability.get(p) else {
            return;
        };
        if a == u32::MAX {
            return;
        }
        if self.stage[p] == Stage::Queued {
            let level = level_of(self.priority[p]);
            self.levels[level].move_up(piece, a as usize, &mut self.slot, &mut self.rng);
        }
        self.availability[p] = a + 1;
    }

    /// One peer fewer has `piece`. A count already at 0 stays 0.
    pub fn dec_availability(&mut self, piece: PieceIndex) {
        let p = piece.get();
        let Some(&a) = self.availability.get(p) else {
            return;
        };
        if a == 0 {
            return;
        }
        if self.stage[p] == Stage::Queued {
            let level = level_of(self.priority[p]);
            self.levels[level].move_down(piece, a as usize, &mut self.slot, &mut self.rng);
        }
        self.availability[p] = a - 1;
    }

    /// A peer with the pieces set in `bitfield` (wire format, BEP3: bit 7 of byte 0 is
    /// piece 0) joined. Bits past the last piece are ignored. O(pieces set).
    pub fn peer_bitfield(&mut self, bitfield: &[u8]) {
        piece_set::for_each_set_bit(bitfield, self.num_pieces, |p| self.inc_availability(p));
    }

    /// A peer with the pieces set in `bitfield` left (the same bits it added, updated with
    /// its `have`s).
    pub fn peer_lost_bitfield(&mut self, bitfield: &[u8]) {
        piece_set::for_each_set_bit(bitfield, self.num_pieces, |p| self.dec_availability(p));
    }

    /// A peer with every piece joined (a seed, or a BEP6 `have all`). O(1): it adds to
    /// every piece alike, so no piece changes place.
    pub fn peer_has_all(&mut self) {
        self.seeds = self.seeds.saturating_add(1);
    }

    /// A peer counted by [`peer_has_all`](Self::peer_has_all) left.
    pub fn peer_lost_all(&mut self) {
        self.seeds = self.seeds.saturating_sub(1);
    }

    // ---- priorities ----

    /// Sets the priority of one piece. Returns whether it changed. O(B).
    pub fn set_piece_priority(&mut self, piece: PieceIndex, priority: Priority) -> bool {
        let p = piece.get();
        let Some(&old) = self.priority.get(p) else {
            return false;
        };
        if old == priority {
            return false;
        }
        if old.is_wanted() != priority.is_wanted() {
            if priority.is_wanted() {
                self.num_wanted += 1;
            } else {
                self.num_wanted -= 1;
            }
        }
        if self.stage[p] != Stage::Have {
            if old.is_wanted() && !priority.is_wanted() {
                self.wanted_left -= 1;
            } else if !old.is_wanted() && priority.is_wanted() {
                self.wanted_left += 1;
                self.cursor = self.cursor.min(piece.0);
            }
        }
        if self.stage[p] == Stage::Queued {
            self.levels[level_of(old)].remove(piece, self.availability[p] as usize, &mut self.slot);
            self.stage[p] = Stage::Unwanted;
        }
        self.priority[p] = priority;
        if self.stage[p] == Stage::Unwanted {
            self.enqueue(piece);
        }
        true
    }

    /// Sets the priority of every piece: `priorities[i]` for piece `i` (extra entries are
    /// ignored, pieces past the end keep theirs). Rebuilds the queue in O(N + B).
    pub fn set_piece_priorities(&mut self, priorities: &[Priority]) {
        for (p, &priority) in priorities.iter().enumerate().take(self.num_pieces as usize) {
            self.priority[p] = priority;
            if matches!(self.stage[p], Stage::Queued | Stage::Unwanted) {
                self.stage[p] = if priority.is_wanted() {
                    Stage::Queued
                } else {
                    Stage::Unwanted
                };
            }
        }
        self.wanted_left = self
            .stage
            .iter()
            .zip(&self.priority)
            .filter(|(s, prio)| **s != Stage::Have && prio.is_wanted())
            .count() as u32;
        self.num_wanted = self.priority.iter().filter(|p| p.is_wanted()).count() as u32;
        self.cursor = 0;
        self.rebuild_levels();
    }

    /// Sets piece priorities from file priorities: each file gives the pieces it overlaps
    /// (end exclusive) and its priority; a piece gets the highest priority of the files
    /// overlapping it, and 0 if none does. See [`piece_priorities_from_files`].
    pub fn set_file_priorities(
        &mut self,
        files: impl IntoIterator<Item = (Range<PieceIndex>, Priority)>,
    ) {
        let priorities = piece_priorities_from_files(self.num_pieces, files);
        self.set_piece_priorities(&priorities);
    }

    /// Puts every queued piece back in the bucket list of its priority.
    fn rebuild_levels(&mut self) {
        let mut per_level: [Vec<PieceIndex>; 7] = Default::default();
        for (p, stage) in self.stage.iter().enumerate() {
            if *stage == Stage::Queued {
                // `p` < num_pieces, a u32.
                per_level[level_of(self.priority[p])].push(PieceIndex(p as u32));
            }
        }
        for (level, pieces) in self.levels.iter_mut().zip(&per_level) {
            let availability = &self.availability;
            level.rebuild(
                pieces.iter().map(|&p| (p, availability[p.get()] as usize)),
                &mut self.slot,
                &mut self.rng,
            );
        }
    }

    // ---- modes and deadlines ----

    /// Turns sequential mode on or off: pieces by index instead of rarest first (deadline
    /// pieces still go first).
    pub fn set_sequential(&mut self, sequential: bool) {
        self.sequential = sequential;
    }

    /// Gives `piece` a deadline on the caller's clock: pieces with deadlines are picked
    /// before all others, earliest first. Ignored for pieces we have; a piece of priority 0
    /// keeps its deadline but is not picked. O(log T).
    pub fn set_piece_deadline(&mut self, piece: PieceIndex, deadline: u64) {
        if !self.in_range(piece) || self.have(piece) {
            return;
        }
        if let Some(old) = self.deadline_of.insert(piece, deadline) {
            self.deadlines.remove(&(old, piece));
        }
        self.deadlines.insert((deadline, piece));
    }

    /// Removes the deadline of `piece`.
    pub fn reset_piece_deadline(&mut self, piece: PieceIndex) {
        if let Some(old) = self.deadline_of.remove(&piece) {
            self.deadlines.remove(&(old, piece));
        }
    }

    /// Removes every deadline.
    pub fn clear_deadlines(&mut self) {
        self.deadlines.clear();
        self.deadline_of.clear();
    }

    // ---- our pieces ----

    /// `piece` passed its hash check: it is ours. Requests still out for it are forgotten.
    pub fn piece_passed(&mut self, piece: PieceIndex) {
        self.we_have(piece);
    }

    /// We have `piece` (from resume data or a check of the files). Same as
    /// [`piece_passed`](Self::piece_passed).
    pub fn we_have(&mut self, piece: PieceIndex) {
        let p = piece.get();
        match self.stage.get(p) {
            None | Some(Stage::Have) => return,
            Some(Stage::Queued) => {
                let level = level_of(self.priority[p]);
                self.levels[level].remove(piece, self.availability[p] as usize, &mut self.slot);
            }
            Some(Stage::Downloading) => {
                self.end_download(self.slot[p] as usize);
            }
            Some(Stage::Unwanted) => {}
        }
        self.stage[p] = Stage::Have;
        self.num_have += 1;
        if self.priority[p].is_wanted() {
            self.wanted_left -= 1;
        }
        self.reset_piece_deadline(piece);
    }

    /// We have the pieces set in a wire-format `bitfield` (resume data).
    pub fn we_have_bitfield(&mut self, bitfield: &[u8]) {
        piece_set::for_each_set_bit(bitfield, self.num_pieces, |p| self.we_have(p));
    }

    /// We no longer have `piece` (its data was found bad or lost): it is wanted again.
    pub fn we_dont_have(&mut self, piece: PieceIndex) {
        let p = piece.get();
        if self.stage.get(p) != Some(&Stage::Have) {
            return;
        }
        self.num_have -= 1;
        if self.priority[p].is_wanted() {
            self.wanted_left += 1;
            self.cursor = self.cursor.min(piece.0);
        }
        self.enqueue(piece);
    }

    /// `piece` failed its hash check: every received block is wanted again. Blocks still
    /// requested stay requested.
    pub fn piece_failed(&mut self, piece: PieceIndex) {
        if self.stage.get(piece.get()) != Some(&Stage::Downloading) {
            return;
        }
        let idx = self.slot[piece.get()] as usize;
        if let Some(d) = self.downloads.get_mut(idx) {
            d.reset_received();
            self.release_if_untouched(idx);
        }
    }

    // ---- requests ----

    /// Records that `block` was requested from `peer` (for requests the caller makes on its
    /// own; [`pick`](Self::pick) already records those it returns). Returns whether it
    /// changed anything: `false` for a block out of range, received, of a piece we have, or
    /// already requested from this peer. A second peer may be recorded for a requested
    /// block (end-game).
    pub fn mark_requested(&mut self, block: BlockRef, peer: PeerKey) -> bool {
        let Some(i) = self.block_in_range(block) else {
            return false;
        };
        let Some(idx) = self.download_index(block.piece) else {
            return false;
        };
        self.downloads[idx].request(i, peer)
    }

    /// A block arrived from `from`. Returns whether it was new, the other peers it was
    /// requested from (to cancel), and whether the piece is now complete. A block that was
    /// never requested is accepted too.
    pub fn mark_received(&mut self, block: BlockRef, from: PeerKey) -> BlockReceived {
        let Some(i) = self.block_in_range(block) else {
            return BlockReceived::default();
        };
        let Some(idx) = self.download_index(block.piece) else {
            return BlockReceived::default();
        };
        let d = &mut self.downloads[idx];
        match d.receive(i, from) {
            Some(cancel) => BlockReceived {
                new: true,
                cancel,
                piece_complete: d.received as usize == d.blocks.len(),
            },
            None => BlockReceived::default(),
        }
    }

    /// The request of `block` from `peer` is gone (rejected, timed out, choked, cancelled).
    /// If no other peer has it, the block is open again; a piece with nothing requested or
    /// received goes back to the queue. Returns whether there was such a request.
    pub fn abort_request(&mut self, block: BlockRef, peer: PeerKey) -> bool {
        let Some(i) = self.block_in_range(block) else {
            return false;
        };
        if self.stage[block.piece.get()] != Stage::Downloading {
            return false;
        }
        let idx = self.slot[block.piece.get()] as usize;
        let aborted = self
            .downloads
            .get_mut(idx)
            .is_some_and(|d| d.abort(i, peer));
        if aborted {
            self.release_if_untouched(idx);
        }
        aborted
    }

    /// Withdraws every request of `peer` (it disconnected or choked us). Returns how many
    /// there were. O(blocks of the partial pieces).
    pub fn abort_peer(&mut self, peer: PeerKey) -> usize {
        let mut aborted = 0;
        // From the back, so that the swap-removal in `release_if_untouched` only moves
        // downloads already visited.
        for idx in (0..self.downloads.len()).rev() {
            let d = &mut self.downloads[idx];
            for i in 0..d.blocks.len() {
                aborted += usize::from(d.abort(i, peer));
            }
            self.release_if_untouched(idx);
        }
        aborted
    }

    /// The index in `downloads` of `piece`, starting its download if it is not started.
    /// `None` for a piece we have.
    fn download_index(&mut self, piece: PieceIndex) -> Option<usize> {
        match self.stage[piece.get()] {
            Stage::Have => None,
            Stage::Downloading => Some(self.slot[piece.get()] as usize),
            Stage::Queued | Stage::Unwanted => Some(self.start_download(piece)),
        }
    }

    fn start_download(&mut self, piece: PieceIndex) -> usize {
        let p = piece.get();
        if self.stage[p] == Stage::Queued {
            let level = level_of(self.priority[p]);
            self.levels[level].remove(piece, self.availability[p] as usize, &mut self.slot);
        }
        self.downloads_started += 1;
        let blocks = self.blocks_in_piece(piece);
        self.downloads
            .push(Download::new(piece, blocks, self.downloads_started));
        let idx = self.downloads.len() - 1;
        self.stage[p] = Stage::Downloading;
        // Fewer downloads than pieces, so the index fits in a u32.
        self.slot[p] = idx as u32;
        idx
    }

    /// Removes `downloads[idx]` and returns its piece (whose stage the caller sets).
    fn end_download(&mut self, idx: usize) -> PieceIndex {
        let d = self.downloads.swap_remove(idx);
        if let Some(moved) = self.downloads.get(idx) {
            self.slot[moved.piece.get()] = idx as u32;
        }
        self.stage[d.piece.get()] = Stage::Unwanted;
        d.piece
    }

    /// Sends `downloads[idx]` back to the queue if nothing of it is requested or received.
    fn release_if_untouched(&mut self, idx: usize) {
        if self.downloads.get(idx).is_some_and(Download::is_untouched) {
            let piece = self.end_download(idx);
            self.enqueue(piece);
        }
    }

    /// Places a piece that is in no list: queued if wanted, else unwanted.
    fn enqueue(&mut self, piece: PieceIndex) {
        let p = piece.get();
        let priority = self.priority[p];
        if priority.is_wanted() {
            self.levels[level_of(priority)].insert(
                piece,
                self.availability[p] as usize,
                &mut self.slot,
                &mut self.rng,
            );
            self.stage[p] = Stage::Queued;
        } else {
            self.stage[p] = Stage::Unwanted;
        }
    }
}

/// The index in `levels` of a priority above 0.
fn level_of(priority: Priority) -> usize {
    debug_assert!(priority.is_wanted());
    usize::from(priority.get()).saturating_sub(1)
}
