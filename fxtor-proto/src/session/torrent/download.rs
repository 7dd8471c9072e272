//! Downloading: what peers have, whether we are interested in them, which blocks to ask
//! them for, and what becomes of the blocks that arrive and the pieces they make up.

use bytes::{Bytes, BytesMut};
use core::net::SocketAddr;
use smallvec::SmallVec;

use super::assembly::Assembly;
use super::peer::{count_ones, for_each_piece, PeerHave};
use super::{piece_check, release_if_untouched, wanted, Job, Metadata, Shared, Torrent};
use crate::picker::{
    AllPieces, BlockRef, BlockStatus, PeerKey, PickOptions, PiecePicker, WireBitfield,
};
use crate::session::{Alert, DiskJobKind, TorrentState};
use crate::time::Instant;
use crate::wire::{Block, BlockRequest};
use crate::{PieceIndex, BLOCK_SIZE};

type Picked = SmallVec<[BlockRef; 16]>;

/// A piece with a deadline this close is urgent: its outstanding blocks are asked of more
/// peers than the one that has them (as libtorrent's time-critical pieces), so a streaming
/// player does not wait on a slow peer.
pub(super) const URGENT_WINDOW: core::time::Duration = core::time::Duration::from_secs(1);

/// A time as the picker's deadlines hold it: milliseconds since the core's epoch.
pub(super) fn deadline_millis(at: Instant) -> u64 {
    u64::try_from(at.since_epoch().as_millis()).unwrap_or(u64::MAX)
}

impl Torrent {
    /// Notes when the next deadline piece that is not urgent yet becomes urgent.
    pub(super) fn schedule_urgency(&mut self, now: Instant) {
        self.next_urgency = self.meta.as_ref().and_then(|meta| {
            let deadline = meta
                .picker
                .first_deadline_after(deadline_millis(now + URGENT_WINDOW))?;
            // (Not before the next millisecond: the deadlines are in whole milliseconds.)
            let at = Instant::from_millis(deadline) - URGENT_WINDOW;
            Some(at.max(now + core::time::Duration::from_millis(1)))
        });
    }
}

impl Torrent {
    // ----- availability and interest -----

    pub(super) fn on_bitfield(&mut self, now: Instant, key: PeerKey, bits: &Bytes) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let count = count_ones(bits);
        match &mut self.meta {
            None => {
                peer.have = PeerHave::Pieces {
                    bits: BytesMut::from(&bits[..]),
                    count,
                };
            }
            Some(meta) => {
                forget_availability(meta, &peer.have);
                let n = meta.picker.num_pieces();
                if n > 0 && count >= n {
                    meta.picker.peer_has_all();
                    peer.have = PeerHave::All;
                } else {
                    meta.picker.peer_bitfield(bits);
                    let mut wanted_count = 0;
                    for_each_piece(bits, n, |p| {
                        wanted_count += u32::from(wanted(&meta.picker, p))
                    });
                    peer.wanted = wanted_count;
                    peer.have = PeerHave::Pieces {
                        bits: BytesMut::from(&bits[..]),
                        count,
                    };
                }
            }
        }
        self.after_availability(now, key);
    }

    pub(super) fn on_have_all(&mut self, now: Instant, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if let Some(meta) = &mut self.meta {
            forget_availability(meta, &peer.have);
            meta.picker.peer_has_all();
        }
        peer.have = PeerHave::All;
        self.after_availability(now, key);
    }

    pub(super) fn on_have(&mut self, now: Instant, key: PeerKey, piece: PieceIndex) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let len = self.meta.as_ref().map(|m| m.geometry.bitfield_len());
        if !peer.have.insert(piece, len) {
            return;
        }
        if let Some(meta) = &mut self.meta {
            meta.picker.inc_availability(piece);
            peer.wanted += u32::from(wanted(&meta.picker, piece));
        }
        self.after_availability(now, key);
    }

    fn after_availability(&mut self, now: Instant, key: PeerKey) {
        let both_seeds = self.state == TorrentState::Seeding
            && self.peers.get(&key).is_some_and(|p| {
                p.have
                    .is_seed(self.meta.as_ref().map_or(0, |m| m.picker.num_pieces()))
            });
        if both_seeds {
            self.close_peer(now, key, "both sides are seeds");
            return;
        }
        self.update_interest(now, key);
        if self.hungry.contains(&key) {
            self.refill = true;
        }
    }

    /// Tells the peer we are interested iff it has a piece we want, while we download.
    pub(super) fn update_interest(&mut self, now: Instant, key: PeerKey) {
        let downloading = self.is_downloading();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let interesting = downloading
            && match (&self.meta, &peer.have) {
                (Some(m), PeerHave::All) => m.picker.wanted_left() > 0,
                (Some(_), PeerHave::Pieces { .. }) => peer.wanted > 0,
                _ => false,
            };
        if peer.connection.am_interested() != interesting {
            peer.connection.set_interested(now, interesting);
            self.touch(key);
        }
    }

    pub(super) fn update_all_interest(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.update_interest(now, key);
        }
    }

    /// Counts again, for every peer, the pieces it has that we want (after a change of
    /// many priorities).
    pub(super) fn recount_wanted(&mut self) {
        let Some(meta) = &self.meta else {
            return;
        };
        let n = meta.picker.num_pieces();
        for peer in self.peers.values_mut() {
            if let PeerHave::Pieces { bits, .. } = &peer.have {
                let mut count = 0;
                for_each_piece(bits, n, |p| count += u32::from(wanted(&meta.picker, p)));
                peer.wanted = count;
            }
        }
    }

    // ----- requests -----

    /// Fills up to `count` request slots of a peer with blocks from the picker. Once the
    /// pieces held in memory reach [`max_piece_memory`](crate::session::SessionConfig::max_piece_memory),
    /// no new piece is started: only blocks of pieces already started are requested (so
    /// the budget is passed by less than one piece).
    pub(super) fn request_blocks(
        &mut self,
        now: Instant,
        key: PeerKey,
        count: usize,
        allowed_fast_only: bool,
        shared: &Shared,
    ) {
        if !self.is_downloading() {
            return;
        }
        let budget = u64::try_from(shared.config.max_piece_memory).unwrap_or(u64::MAX);
        let (Some(meta), Some(peer)) = (self.meta.as_mut(), self.peers.get_mut(&key)) else {
            return;
        };
        if !peer.connection.am_interested() {
            return;
        }
        let picked: Picked = {
            let have = &peer.have;
            let allowed = peer.connection.allowed_fast();
            // Pieces of a file whose v2 piece layer is still being fetched cannot be
            // checked yet: they are not picked.
            let layers = &meta.layers;
            let has = |p: PieceIndex| {
                have.contains(p)
                    && (!allowed_fast_only || allowed.contains(&p))
                    && layers.piece_ready(p)
            };
            let mut options = PickOptions::default();
            // A snubbed peer is the slow peer an urgent piece must not wait on.
            if !peer.connection.is_snubbed() {
                options = options.with_urgent_until(deadline_millis(now + URGENT_WINDOW));
            }
            if meta.pieces.bytes() >= budget {
                pick_started(&mut meta.picker, &meta.pieces, key, &has, count)
            } else if allowed_fast_only || layers.gates_picking() {
                meta.picker.pick(key, &has, count, options)
            } else {
                match have {
                    PeerHave::Nothing => Picked::new(),
                    PeerHave::All => meta.picker.pick(key, &AllPieces, count, options),
                    PeerHave::Pieces { bits, .. } => {
                        meta.picker.pick(key, &WireBitfield(bits), count, options)
                    }
                }
            }
        };
        let mut sent = 0;
        for &block in &picked {
            let request = block_request(meta, block);
            let starts_piece = !meta.pieces.contains(block.piece);
            let result = if starts_piece && meta.pieces.bytes() >= budget {
                Err(())
            } else {
                peer.connection.request(now, request).map_err(|_| ())
            };
            match result {
                Ok(()) => {
                    sent += 1;
                    meta.pieces.start(
                        block.piece,
                        meta.picker.blocks_in_piece(block.piece),
                        meta.picker.piece_len(block.piece),
                    );
                }
                Err(_) => {
                    meta.picker.abort_request(block, key);
                    release_if_untouched(meta, block.piece);
                }
            }
        }
        if sent < count {
            self.hungry.insert(key);
        } else {
            self.hungry.remove(&key);
        }
        self.touch(key);
    }

    /// Offers blocks to the peers that wanted more than they got, after blocks or memory
    /// became free.
    pub(super) fn refill_hungry(&mut self, now: Instant, shared: &Shared) {
        if !self.is_downloading() {
            self.hungry.clear();
            return;
        }
        let hungry: Vec<PeerKey> = self.hungry.iter().copied().collect();
        for key in hungry {
            let Some(peer) = self.peers.get(&key) else {
                self.hungry.remove(&key);
                continue;
            };
            let slots = peer.connection.request_slots();
            if slots == 0 {
                // It asks again (WantBlocks) when it has room.
                self.hungry.remove(&key);
                continue;
            }
            let choked = peer.connection.peer_choking();
            self.request_blocks(now, key, slots, choked, shared);
        }
    }

    /// A request of ours will not be answered: its block is free for others.
    pub(super) fn on_request_gone(&mut self, key: PeerKey, request: BlockRequest) {
        let Some(meta) = &mut self.meta else {
            return;
        };
        if request.offset % BLOCK_SIZE != 0 {
            return;
        }
        let block = BlockRef::new(request.piece, request.offset / BLOCK_SIZE);
        if meta.picker.abort_request(block, key) {
            release_if_untouched(meta, request.piece);
            self.refill = true;
        }
    }

    // ----- blocks and pieces -----

    pub(super) fn on_block(
        &mut self,
        now: Instant,
        key: PeerKey,
        block: Block,
        shared: &mut Shared,
    ) {
        let Some(meta) = &mut self.meta else {
            return;
        };
        let Some(peer) = self.peers.get(&key) else {
            return;
        };
        let from = peer.addr;
        let len = block.data.len();
        self.totals.downloaded += len as u64;
        self.totals.moved(now);
        if block.offset % BLOCK_SIZE != 0 {
            return;
        }
        let r = BlockRef::new(block.piece, block.offset / BLOCK_SIZE);
        if meta.picker.block_len(r) as usize != len {
            return;
        }
        let received = meta.picker.mark_received(r, key);
        if !received.new {
            return;
        }
        let piece = block.piece;
        meta.pieces.start(
            piece,
            meta.picker.blocks_in_piece(piece),
            meta.picker.piece_len(piece),
        );
        meta.pieces.store(piece, r.block.get(), block.data, from);
        let request = block_request(meta, r);
        let mut cancelled: SmallVec<[PeerKey; 4]> = SmallVec::new();
        for other in received.cancel {
            if other == key {
                continue;
            }
            if let Some(p) = self.peers.get_mut(&other) {
                p.connection.cancel(now, request);
                cancelled.push(other);
            }
        }
        for other in cancelled {
            self.touch(other);
        }
        if received.piece_complete {
            self.write_piece(piece, shared);
        }
    }

    /// Hands a complete piece to the disk, to be verified and written.
    fn write_piece(&mut self, piece: PieceIndex, shared: &mut Shared) {
        let Some(meta) = &mut self.meta else {
            return;
        };
        let check = piece_check(&meta.info, piece);
        let (Some(blocks), Some(check)) = (meta.pieces.finish(piece), check) else {
            // Not reachable: the picker and the buffer count the same blocks, and a torrent
            // whose pieces cannot be checked stops when added. Download it again.
            meta.pieces.written(piece);
            meta.picker.piece_failed(piece);
            self.refill = true;
            return;
        };
        let id = shared.disk_job(
            self.id,
            DiskJobKind::WritePiece {
                piece,
                blocks,
                check,
            },
        );
        self.jobs.insert(id, Job::Write(piece));
    }

    /// A piece's write finished: it passed its check and is ours, or it failed.
    pub(super) fn on_written(
        &mut self,
        now: Instant,
        piece: PieceIndex,
        passed: bool,
        shared: &mut Shared,
    ) {
        let Some(meta) = &mut self.meta else {
            return;
        };
        let (senders, blocks) = meta.pieces.written_with_blocks(piece);
        self.refill = true;
        if !passed {
            shared.alert(Alert::HashFailed {
                torrent: self.id,
                piece,
            });
            meta.picker.piece_failed(piece);
            let explained = senders.iter().any(|ip| self.banned.contains(ip));
            if senders.len() > 1 && !explained && self.start_blame(now, piece, &senders, blocks) {
                return;
            }
            self.on_hash_failed(now, &senders, shared);
            return;
        }
        if meta.picker.have(piece) {
            return;
        }
        let was_wanted = wanted(&meta.picker, piece);
        meta.picker.piece_passed(piece);
        for ip in senders {
            self.trust.passed(ip);
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in &keys {
            if let Some(peer) = self.peers.get_mut(key) {
                peer.connection.send_have(now, piece);
                if was_wanted
                    && matches!(&peer.have, PeerHave::Pieces { .. })
                    && peer.have.contains(piece)
                {
                    peer.wanted = peer.wanted.saturating_sub(1);
                }
            }
            self.touch(*key);
        }
        shared.alert(Alert::PieceFinished {
            torrent: self.id,
            piece,
        });
        // Leaving Downloading for Finished or Seeding posts TorrentFinished.
        self.update_all_interest(now);
        self.update_state(now, shared);
    }

    /// Blames the senders of a piece that failed its check: a peer that sent all of it is
    /// banned at once; peers that shared in it lose trust, and are banned when it runs out
    /// (when the piece's v2 leaves could not tell the bad blocks apart, see [`super::blame`]).
    pub(super) fn on_hash_failed(
        &mut self,
        now: Instant,
        senders: &[SocketAddr],
        shared: &mut Shared,
    ) {
        if let [only] = senders {
            self.ban(now, *only, shared);
            return;
        }
        // A sender already banned for bad data explains the failure (the piece kept blocks
        // it sent before its ban): the others are not blamed for it.
        if senders.iter().any(|ip| self.banned.contains(ip)) {
            return;
        }
        for &ip in senders {
            if self.trust.failed(ip) {
                self.ban(now, ip, shared);
            }
        }
    }

    /// Bans a peer from the torrent: its connection closes and its address is not connected
    /// to or accepted again.
    ///
    /// A peer is its address and port, not its IP alone: several peers can share an IP
    /// (behind one NAT, or all on loopback), and banning the IP would punish the honest
    /// ones. Connections *from* a banned peer's IP are refused, as their port says nothing
    /// of who they are (see `accept`).
    pub(super) fn ban(&mut self, now: Instant, addr: SocketAddr, shared: &mut Shared) {
        if !self.banned.insert(addr) {
            return;
        }
        self.trust.forget(addr);
        self.peer_list.ban(addr);
        let victims: Vec<crate::picker::PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.addr == addr)
            .map(|(k, _)| *k)
            .collect();
        shared.alert(Alert::PeerBanned {
            torrent: self.id,
            addr,
        });
        for key in victims {
            self.close_peer(now, key, "banned: sent data that failed a hash check");
        }
    }
}

/// The request message for a block.
fn block_request(meta: &Metadata, block: BlockRef) -> BlockRequest {
    BlockRequest {
        piece: block.piece,
        // Inside a piece, whose length is a u32.
        offset: block.offset_in_piece() as u32,
        length: meta.picker.block_len(block),
    }
}

/// Takes the availability a peer had out of the picker (before it says something new).
fn forget_availability(meta: &mut Metadata, have: &PeerHave) {
    match have {
        PeerHave::Nothing => {}
        PeerHave::All => meta.picker.peer_lost_all(),
        PeerHave::Pieces { bits, .. } => meta.picker.peer_lost_bitfield(bits),
    }
}

/// Up to `count` open blocks of the pieces already being assembled that the peer has: the
/// pick while the memory budget is spent.
fn pick_started(
    picker: &mut PiecePicker,
    pieces: &Assembly,
    key: PeerKey,
    has: &dyn Fn(PieceIndex) -> bool,
    count: usize,
) -> Picked {
    let mut picked = Picked::new();
    let pieces: Vec<PieceIndex> = pieces
        .building()
        .filter(|&p| has(p) && picker.piece_priority(p).is_wanted())
        .collect();
    for piece in pieces {
        for b in 0..picker.blocks_in_piece(piece) {
            if picked.len() >= count {
                return picked;
            }
            let block = BlockRef::new(piece, b);
            if picker.block_status(block) == Some(BlockStatus::Open)
                && picker.mark_requested(block, key)
            {
                picked.push(block);
            }
        }
    }
    picked
}
