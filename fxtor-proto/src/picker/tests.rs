use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

const B: u32 = BLOCK_SIZE;

impl PiecePicker {
    /// Checks every internal structure against the per-piece state.
    fn check_invariants(&self) {
        let n = self.num_pieces as usize;
        assert_eq!(self.availability.len(), n);
        assert_eq!(self.priority.len(), n);
        assert_eq!(self.stage.len(), n);
        assert_eq!(self.slot.len(), n);
        for (level, buckets) in self.levels.iter().enumerate() {
            buckets.check(&self.availability, &self.slot);
            for &piece in buckets.pieces() {
                assert_eq!(self.stage[piece.get()], Stage::Queued);
                assert_eq!(level_of(self.priority[piece.get()]), level);
            }
        }
        let queued = self.stage.iter().filter(|s| **s == Stage::Queued).count();
        assert_eq!(queued, self.levels.iter().map(Buckets::len).sum::<usize>());
        let downloading = self
            .stage
            .iter()
            .filter(|s| **s == Stage::Downloading)
            .count();
        assert_eq!(downloading, self.downloads.len());
        for (idx, d) in self.downloads.iter().enumerate() {
            assert_eq!(self.stage[d.piece.get()], Stage::Downloading);
            assert_eq!(self.slot[d.piece.get()] as usize, idx);
            assert_eq!(d.blocks.len() as u32, self.blocks_in_piece(d.piece));
            assert!(!d.is_untouched(), "untouched download of {:?}", d.piece);
            let mut requested = 0;
            let mut received = 0;
            for block in d.blocks.iter() {
                match block {
                    Block::Open => {}
                    Block::Requested(peers) => {
                        requested += 1;
                        assert!(!peers.is_empty());
                        let unique: BTreeSet<_> = peers.iter().collect();
                        assert_eq!(unique.len(), peers.len());
                    }
                    Block::Received => received += 1,
                }
            }
            assert_eq!((d.requested, d.received), (requested, received));
        }
        for (p, stage) in self.stage.iter().enumerate() {
            if *stage == Stage::Unwanted {
                assert!(!self.priority[p].is_wanted());
            }
        }
        let have = self.stage.iter().filter(|s| **s == Stage::Have).count();
        assert_eq!(have as u32, self.num_have);
        let wanted_left = (0..n)
            .filter(|&p| self.stage[p] != Stage::Have && self.priority[p].is_wanted())
            .count();
        assert_eq!(wanted_left as u32, self.wanted_left);
        let wanted = self.priority.iter().filter(|p| p.is_wanted()).count();
        assert_eq!(wanted as u32, self.num_wanted);
        assert_eq!(self.deadlines.len(), self.deadline_of.len());
        for &(deadline, piece) in &self.deadlines {
            assert_eq!(self.deadline_of.get(&piece), Some(&deadline));
            assert!(!self.have(piece));
        }
        for p in 0..self.cursor as usize {
            assert!(self.stage[p] == Stage::Have || !self.priority[p].is_wanted());
        }
    }
}

/// `pieces` pieces of `blocks` blocks each.
fn picker(pieces: u32, blocks: u32, seed: u64) -> PiecePicker {
    PiecePicker::new(u64::from(pieces) * u64::from(blocks * B), blocks * B, seed).unwrap()
}

fn piece_order(p: &mut PiecePicker, peer: PeerKey) -> Vec<u32> {
    let mut order = Vec::new();
    loop {
        let picked = p.pick(peer, &AllPieces, 1, PickOptions::new().with_end_game(false));
        let Some(block) = picked.first() else {
            break;
        };
        assert_eq!(picked.len(), 1);
        order.push(block.piece.0);
        p.check_invariants();
    }
    order
}

fn pieces_of(blocks: &[BlockRef]) -> Vec<u32> {
    let mut pieces: Vec<u32> = blocks.iter().map(|b| b.piece.0).collect();
    pieces.dedup();
    pieces
}

#[test]
fn geometry() {
    let p = PiecePicker::new(5 * u64::from(B) + 100, 2 * B, 1).unwrap();
    assert_eq!(p.num_pieces(), 3);
    assert_eq!(p.piece_len(PieceIndex(0)), 2 * B);
    assert_eq!(p.piece_len(PieceIndex(2)), B + 100);
    assert_eq!(p.piece_len(PieceIndex(3)), 0);
    assert_eq!(p.blocks_in_piece(PieceIndex(2)), 2);
    assert_eq!(p.block_len(BlockRef::new(PieceIndex(2), 0)), B);
    assert_eq!(p.block_len(BlockRef::new(PieceIndex(2), 1)), 100);
    assert_eq!(p.block_len(BlockRef::new(PieceIndex(2), 2)), 0);
    assert_eq!(
        BlockRef::new(PieceIndex(2), 1).offset_in_piece(),
        u64::from(B)
    );
    p.check_invariants();

    // A piece length that is not a multiple of the block size.
    let p = PiecePicker::new(50_000, 20_000, 1).unwrap();
    assert_eq!(p.num_pieces(), 3);
    assert_eq!(p.blocks_in_piece(PieceIndex(0)), 2);
    assert_eq!(p.block_len(BlockRef::new(PieceIndex(0), 1)), 20_000 - B);
    assert_eq!(p.piece_len(PieceIndex(2)), 10_000);

    let empty = PiecePicker::new(0, B, 1).unwrap();
    assert!(empty.is_seed() && empty.is_finished());
    assert_eq!(
        PiecePicker::new(10, 0, 1).unwrap_err(),
        PickerError::ZeroPieceLength
    );
    assert!(matches!(
        PiecePicker::new(u64::MAX, 1, 1),
        Err(PickerError::TooManyPieces { .. })
    ));
}

#[test]
fn rarest_first() {
    let mut p = picker(6, 1, 3);
    // Piece i is had by (i * 7) % 6 + 1 peers: 1, 2, 3, 4, 5, 6 for pieces 0, 5, 4, 3, 2, 1.
    for piece in 0..6u32 {
        for _ in 0..(piece * 5) % 6 + 1 {
            p.inc_availability(PieceIndex(piece));
        }
    }
    p.check_invariants();
    assert_eq!(p.availability(PieceIndex(1)), 6);
    assert_eq!(piece_order(&mut p, PeerKey(1)), [0, 5, 4, 3, 2, 1]);
}

#[test]
fn equal_rarity_is_shuffled_by_seed() {
    let order = |seed| piece_order(&mut picker(64, 1, seed), PeerKey(1));
    assert_eq!(order(5), order(5));
    assert_ne!(order(5), order(6));
    let mut sorted = order(5);
    sorted.sort_unstable();
    assert_eq!(sorted, (0..64).collect::<Vec<_>>());
}

#[test]
fn availability_moves_and_seeds() {
    let mut p = picker(100, 1, 9);
    for round in 0..5 {
        for piece in (0..100).filter(|i| i % (round + 2) == 0) {
            p.inc_availability(PieceIndex(piece));
            p.check_invariants();
        }
    }
    assert_eq!(p.availability(PieceIndex(0)), 5);
    assert_eq!(p.availability(PieceIndex(1)), 0);
    for piece in (0..100).step_by(2) {
        p.dec_availability(PieceIndex(piece));
    }
    p.check_invariants();
    assert_eq!(p.availability(PieceIndex(0)), 4);
    // Decrementing below zero and out-of-range indices are ignored.
    p.dec_availability(PieceIndex(1));
    p.inc_availability(PieceIndex(1000));
    assert_eq!(p.availability(PieceIndex(1)), 0);
    assert_eq!(p.availability(PieceIndex(1000)), 0);

    // Bitfields: pieces 0, 1 and 9.
    let mut p = picker(10, 1, 1);
    let bits = [0b1100_0000, 0b0100_0000, 0xff];
    p.peer_bitfield(&bits);
    let avail: Vec<u32> = (0..10).map(|i| p.availability(PieceIndex(i))).collect();
    assert_eq!(avail, [1, 1, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.peer_has_all();
    assert_eq!(p.availability(PieceIndex(2)), 1);
    assert_eq!(p.availability(PieceIndex(9)), 2);
    assert_eq!(p.num_seeds(), 1);
    p.peer_lost_all();
    p.peer_lost_bitfield(&bits);
    assert!((0..10).all(|i| p.availability(PieceIndex(i)) == 0));
    p.check_invariants();
    // Rarest-first is unchanged by seeds: the pieces only the seed... and others have.
    p.peer_has_all();
    p.inc_availability(PieceIndex(4));
    let order = piece_order(&mut p, PeerKey(1));
    assert_eq!(order.last(), Some(&4));
}

#[test]
fn buckets_stay_small_when_availability_falls() {
    let mut p = picker(4, 1, 1);
    for _ in 0..50 {
        p.inc_availability(PieceIndex(2));
    }
    assert_eq!(p.levels[3].num_buckets(), 51);
    for _ in 0..50 {
        p.dec_availability(PieceIndex(2));
    }
    assert_eq!(p.levels[3].num_buckets(), 1);
    p.check_invariants();
}

#[test]
fn skips_pieces_the_peer_lacks() {
    let mut p = picker(10, 2, 1);
    let has = |piece: PieceIndex| piece.0 == 7;
    let picked = p.pick(PeerKey(1), &has, 10, PickOptions::default());
    assert_eq!(
        picked.as_slice(),
        [0, 1].map(|b| BlockRef::new(PieceIndex(7), b))
    );
    // Nothing else to give, and no end-game while other blocks are open.
    assert!(p
        .pick(PeerKey(2), &has, 10, PickOptions::default())
        .is_empty());
    let bits = [0b0010_0000, 0];
    let picked = p.pick(PeerKey(1), &WireBitfield(&bits), 10, PickOptions::default());
    assert_eq!(pieces_of(&picked), [2]);
    p.check_invariants();
}

#[test]
fn partial_pieces_first() {
    let mut p = picker(10, 4, 2);
    // Piece 5 is the most common, but started.
    for _ in 0..3 {
        p.inc_availability(PieceIndex(5));
    }
    assert!(p.mark_requested(BlockRef::new(PieceIndex(5), 1), PeerKey(9)));
    let picked = p.pick(PeerKey(1), &AllPieces, 3, PickOptions::default());
    assert_eq!(
        picked.as_slice(),
        [0, 2, 3].map(|b| BlockRef::new(PieceIndex(5), b))
    );
    // Then a new piece.
    let picked = p.pick(PeerKey(1), &AllPieces, 2, PickOptions::default());
    assert_eq!(pieces_of(&picked).len(), 1);
    assert_ne!(picked[0].piece, PieceIndex(5));
    // The older of two partial pieces comes first.
    let older = picked[0].piece.0;
    let newer = if older == 8 { 9 } else { 8 };
    assert!(p.mark_requested(BlockRef::new(PieceIndex(newer), 0), PeerKey(9)));
    let picked = p.pick(PeerKey(2), &AllPieces, 3, PickOptions::default());
    assert_eq!(pieces_of(&picked), [older, newer]);
    p.check_invariants();
    let partial: BTreeSet<u32> = p.partial_pieces().map(|pp| pp.piece.0).collect();
    assert_eq!(partial, BTreeSet::from([5, older, newer]));
}

#[test]
fn priorities_first_and_zero_never() {
    let mut p = picker(8, 1, 4);
    let prio = |n| Priority::new(n).unwrap();
    for (piece, level) in [0, 7, 1, 6, 2, 5, 3, 4].into_iter().enumerate() {
        p.set_piece_priority(PieceIndex(piece as u32), prio(level));
        p.check_invariants();
    }
    // Rarity only breaks ties inside a priority.
    p.inc_availability(PieceIndex(1));
    p.inc_availability(PieceIndex(1));
    assert_eq!(p.piece_priority(PieceIndex(1)), Priority::TOP);
    assert!(!p.set_piece_priority(PieceIndex(1), Priority::TOP));
    assert_eq!(p.wanted_left(), 7);
    assert_eq!(piece_order(&mut p, PeerKey(1)), [1, 3, 5, 7, 6, 4, 2]);
    assert!(!p.is_end_game() || p.partial_pieces().count() == 7);
    assert!(p
        .pick(PeerKey(2), &AllPieces, 10, PickOptions::default())
        .iter()
        .all(|b| b.piece != PieceIndex(0)));

    // A partial piece set to 0 is no longer picked.
    let mut p = picker(2, 2, 4);
    assert!(p.mark_requested(BlockRef::new(PieceIndex(0), 0), PeerKey(1)));
    p.set_piece_priority(PieceIndex(0), Priority::DONT_DOWNLOAD);
    let picked = p.pick(PeerKey(1), &AllPieces, 10, PickOptions::default());
    assert_eq!(pieces_of(&picked), [1]);
    p.check_invariants();
    // Back to wanted: its open block comes first.
    p.set_piece_priority(PieceIndex(0), Priority::LOW);
    let picked = p.pick(PeerKey(2), &AllPieces, 1, PickOptions::default());
    assert_eq!(picked.as_slice(), [BlockRef::new(PieceIndex(0), 1)]);
}

#[test]
fn file_priorities() {
    let mut p = picker(6, 1, 4);
    let files = [
        (PieceIndex(0)..PieceIndex(2), Priority::DONT_DOWNLOAD),
        (PieceIndex(1)..PieceIndex(4), Priority::LOW),
        (PieceIndex(4)..PieceIndex(6), Priority::TOP),
    ];
    p.set_file_priorities(files);
    p.check_invariants();
    let prios: Vec<u8> = (0..6)
        .map(|i| p.piece_priority(PieceIndex(i)).get())
        .collect();
    assert_eq!(prios, [0, 1, 1, 1, 7, 7]);
    assert_eq!(p.wanted_left(), 5);
    let order = piece_order(&mut p, PeerKey(1));
    assert_eq!(order.len(), 5);
    assert_eq!(BTreeSet::from([order[0], order[1]]), BTreeSet::from([4, 5]));
    assert!(!order.contains(&0));
}

#[test]
fn sequential_mode() {
    let mut p = picker(10, 2, 7);
    for piece in 0..10 {
        for _ in 0..10 - piece {
            p.inc_availability(PieceIndex(piece));
        }
    }
    p.we_have(PieceIndex(0));
    p.set_piece_priority(PieceIndex(1), Priority::DONT_DOWNLOAD);
    p.set_piece_priority(PieceIndex(9), Priority::TOP);
    p.set_sequential(true);
    assert!(p.is_sequential());
    let has = |piece: PieceIndex| piece.0 != 3;
    let picked = p.pick(PeerKey(1), &has, 5, PickOptions::default());
    assert_eq!(pieces_of(&picked), [2, 4, 5]);
    assert_eq!(picked.len(), 5);
    assert_eq!(picked[4], BlockRef::new(PieceIndex(5), 0));
    let picked = p.pick(PeerKey(1), &has, 3, PickOptions::default());
    assert_eq!(pieces_of(&picked), [5, 6]);
    p.check_invariants();
    // A piece wanted again below the cursor is found.
    p.we_dont_have(PieceIndex(0));
    let picked = p.pick(PeerKey(1), &has, 1, PickOptions::default());
    assert_eq!(picked[0].piece, PieceIndex(0));
    p.check_invariants();
}

#[test]
fn urgent_deadline_blocks_are_asked_of_more_peers() {
    let mut p = picker(10, 4, 7);
    p.set_piece_deadline(PieceIndex(2), 100);
    p.set_piece_deadline(PieceIndex(5), 900);
    // A slow peer takes both deadline pieces.
    let slow = p.pick(PeerKey(1), &AllPieces, 8, PickOptions::default());
    assert_eq!(pieces_of(&slow), [2, 5]);
    // Without urgency, another peer gets other pieces.
    let calm = p.pick(PeerKey(2), &AllPieces, 2, PickOptions::default());
    assert!(!pieces_of(&calm).contains(&2), "{calm:?}");
    for block in calm {
        p.abort_request(block, PeerKey(2));
    }
    // When piece 2 is due, its blocks still outstanding are asked of the next peer as well
    // (piece 5 is not due yet); the block already received is not.
    p.mark_received(BlockRef::new(PieceIndex(2), 1), PeerKey(1));
    let urgent = PickOptions::default().with_urgent_until(500);
    let fast = p.pick(PeerKey(2), &AllPieces, 3, urgent);
    let blocks: Vec<(u32, u32)> = fast.iter().map(|b| (b.piece.0, b.block.0)).collect();
    assert_eq!(blocks, [(2, 0), (2, 2), (2, 3)]);
    // Asked of at most three peers; never twice of one.
    let third = p.pick(PeerKey(3), &AllPieces, 1, urgent);
    assert_eq!(pieces_of(&third), [2]);
    assert!(p
        .pick(PeerKey(2), &|piece: PieceIndex| piece.0 == 2, 4, urgent)
        .is_empty());
    let fourth = p.pick(PeerKey(4), &|piece: PieceIndex| piece.0 == 2, 4, urgent);
    let blocks: Vec<u32> = fourth.iter().map(|b| b.block.0).collect();
    assert_eq!(blocks, [2, 3], "block 0 has three requesters already");
    // The first copy to arrive cancels the others.
    let got = p.mark_received(BlockRef::new(PieceIndex(2), 0), PeerKey(2));
    assert!(got.new);
    assert_eq!(got.cancel.as_slice(), [PeerKey(1), PeerKey(3)]);
    p.check_invariants();
}

#[test]
fn deadlines_first_in_deadline_order() {
    let mut p = picker(10, 2, 7);
    p.set_piece_priority(PieceIndex(6), Priority::TOP);
    assert!(p.mark_requested(BlockRef::new(PieceIndex(2), 0), PeerKey(5)));
    p.set_piece_deadline(PieceIndex(8), 300);
    p.set_piece_deadline(PieceIndex(3), 100);
    p.set_piece_deadline(PieceIndex(7), 200);
    p.set_piece_deadline(PieceIndex(7), 50); // moved earlier
    p.set_piece_deadline(PieceIndex(4), 10);
    p.reset_piece_deadline(PieceIndex(4));
    assert_eq!(p.piece_deadline(PieceIndex(7)), Some(50));
    assert_eq!(p.piece_deadline(PieceIndex(4)), None);
    let has = |piece: PieceIndex| piece.0 != 3;
    let picked = p.pick(PeerKey(1), &has, 5, PickOptions::default());
    // 7 then 8 (3 is missing at this peer), then the partial piece 2.
    assert_eq!(pieces_of(&picked), [7, 8, 2]);
    let picked = p.pick(PeerKey(2), &AllPieces, 2, PickOptions::default());
    assert_eq!(pieces_of(&picked), [3]);
    // Then priority as usual.
    let picked = p.pick(PeerKey(2), &AllPieces, 2, PickOptions::default());
    assert_eq!(pieces_of(&picked), [6]);
    p.check_invariants();
    // Passing a piece removes its deadline; clearing removes all.
    for b in 0..2 {
        p.mark_received(BlockRef::new(PieceIndex(7), b), PeerKey(1));
    }
    p.piece_passed(PieceIndex(7));
    assert_eq!(p.piece_deadline(PieceIndex(7)), None);
    p.set_piece_deadline(PieceIndex(7), 1);
    assert_eq!(p.piece_deadline(PieceIndex(7)), None);
    p.clear_deadlines();
    assert_eq!(p.piece_deadline(PieceIndex(8)), None);
    p.check_invariants();
}

#[test]
fn deadline_pieces_also_first_in_sequential_mode() {
    let mut p = picker(10, 1, 7);
    p.set_sequential(true);
    p.set_piece_deadline(PieceIndex(9), 5);
    let picked = p.pick(PeerKey(1), &AllPieces, 2, PickOptions::default());
    assert_eq!(pieces_of(&picked), [9, 0]);
}

#[test]
fn end_game_duplicates_and_cancels() {
    let mut p = picker(2, 2, 1);
    let (a, b, c) = (PeerKey(1), PeerKey(2), PeerKey(3));
    let first = p.pick(a, &AllPieces, 4, PickOptions::default());
    assert_eq!(first.len(), 4);
    assert!(p.is_end_game());
    // Without end-game, nothing; with it, duplicates, never of a's own blocks.
    assert!(p
        .pick(
            b,
            &AllPieces,
            4,
            PickOptions::default().with_end_game(false)
        )
        .is_empty());
    assert!(p.pick(a, &AllPieces, 4, PickOptions::default()).is_empty());
    let dup = p.pick(b, &AllPieces, 2, PickOptions::default());
    assert_eq!(dup.len(), 2);
    for block in &dup {
        assert_eq!(p.block_requesters(*block), [a, b]);
    }
    // c gets the blocks with the fewest requesters first.
    let dup_c = p.pick(c, &AllPieces, 2, PickOptions::default());
    for block in &dup_c {
        assert!(!dup.contains(block));
        assert_eq!(p.block_requesters(*block), [a, c]);
    }
    p.check_invariants();
    // Receipt from b: cancel a.
    let got = p.mark_received(dup[0], b);
    assert!(got.new);
    assert_eq!(got.cancel.as_slice(), [a]);
    assert_eq!(p.block_status(dup[0]), Some(BlockStatus::Received));
    // A duplicate receipt is not new.
    assert_eq!(p.mark_received(dup[0], a), BlockReceived::default());
    // Receipt from a peer that was not asked: cancel all who were.
    let got = p.mark_received(dup_c[0], b);
    assert_eq!(got.cancel.as_slice(), [a, c]);
    // Finish piece by piece.
    let mut complete = 0;
    for block in first {
        let got = p.mark_received(block, a);
        complete += usize::from(got.piece_complete);
    }
    assert_eq!(complete, 2);
    p.check_invariants();
}

#[test]
fn abort_returns_blocks_and_pieces() {
    let mut p = picker(3, 2, 1);
    let picked = p.pick(PeerKey(1), &AllPieces, 1, PickOptions::default());
    let block = picked[0];
    assert_eq!(p.block_status(block), Some(BlockStatus::Requested));
    assert!(!p.abort_request(block, PeerKey(2)));
    assert!(p.abort_request(block, PeerKey(1)));
    assert!(!p.abort_request(block, PeerKey(1)));
    // The piece is untouched again: back in the queue.
    assert_eq!(p.partial_pieces().count(), 0);
    p.check_invariants();
    let picked = p.pick(PeerKey(1), &AllPieces, 6, PickOptions::default());
    assert_eq!(picked.len(), 6);
    p.mark_received(picked[0], PeerKey(1));
    assert_eq!(p.abort_peer(PeerKey(1)), 5);
    p.check_invariants();
    // Only the piece with a received block stays partial.
    let partial: Vec<PartialPiece> = p.partial_pieces().collect();
    assert_eq!(
        partial,
        [PartialPiece {
            piece: picked[0].piece,
            blocks: 2,
            requested: 0,
            received: 1
        }]
    );
    let again = p.pick(PeerKey(2), &AllPieces, 6, PickOptions::default());
    assert_eq!(again.len(), 5);
    assert_eq!(again[0], BlockRef::new(picked[0].piece, 1));
}

#[test]
fn failed_piece_is_picked_again() {
    let mut p = picker(2, 2, 1);
    let picked = p.pick(PeerKey(1), &AllPieces, 2, PickOptions::default());
    let piece = picked[0].piece;
    assert_eq!(pieces_of(&picked), [piece.0]);
    let mut complete = false;
    for block in &picked {
        complete = p.mark_received(*block, PeerKey(1)).piece_complete;
    }
    assert!(complete);
    // Complete pieces are not picked while being checked.
    let other = p.pick(PeerKey(2), &AllPieces, 4, PickOptions::default());
    assert!(other.iter().all(|b| b.piece != piece));
    p.piece_failed(piece);
    p.check_invariants();
    assert_eq!(p.block_status(picked[0]), Some(BlockStatus::Open));
    assert!(!p.have(piece));
    let no_end_game = PickOptions::default().with_end_game(false);
    let again = p.pick(PeerKey(3), &AllPieces, 4, no_end_game);
    assert_eq!(again.as_slice(), picked.as_slice());

    // Blocks still in flight when a piece fails stay requested.
    let mut p = picker(1, 3, 1);
    let picked = p.pick(PeerKey(1), &AllPieces, 3, PickOptions::default());
    p.mark_received(picked[0], PeerKey(1));
    p.piece_failed(PieceIndex(0));
    assert_eq!(p.block_status(picked[0]), Some(BlockStatus::Open));
    assert_eq!(p.block_status(picked[1]), Some(BlockStatus::Requested));
    p.check_invariants();
}

#[test]
fn have_and_finish() {
    let mut p = picker(10, 1, 1);
    p.we_have_bitfield(&[0b1010_0000, 0b0100_0000]);
    assert_eq!(p.num_have(), 3);
    assert!(p.have(PieceIndex(0)) && p.have(PieceIndex(2)) && p.have(PieceIndex(9)));
    assert_eq!(p.have_bitfield(), [0b1010_0000, 0b0100_0000]);
    assert_eq!(
        p.block_status(BlockRef::new(PieceIndex(0), 0)),
        Some(BlockStatus::Have)
    );
    assert_eq!(p.block_status(BlockRef::new(PieceIndex(0), 1)), None);
    assert!(!p.mark_requested(BlockRef::new(PieceIndex(0), 0), PeerKey(1)));
    assert!(
        !p.mark_received(BlockRef::new(PieceIndex(0), 0), PeerKey(1))
            .new
    );
    for piece in 3..9 {
        p.set_piece_priority(PieceIndex(piece), Priority::DONT_DOWNLOAD);
    }
    assert_eq!(p.wanted_left(), 1);
    let picked = p.pick(PeerKey(1), &AllPieces, 10, PickOptions::default());
    assert_eq!(picked.as_slice(), [BlockRef::new(PieceIndex(1), 0)]);
    p.mark_received(picked[0], PeerKey(1));
    p.piece_passed(PieceIndex(1));
    assert!(p.is_finished());
    assert!(!p.is_seed());
    p.set_piece_priorities(&[Priority::DEFAULT; 10]);
    assert!(!p.is_finished());
    for piece in 0..10 {
        p.we_have(PieceIndex(piece));
    }
    assert!(p.is_seed() && p.is_finished());
    p.check_invariants();
    assert!(p
        .pick(PeerKey(1), &AllPieces, 10, PickOptions::default())
        .is_empty());
}

#[test]
fn out_of_range_inputs_are_ignored() {
    let mut p = picker(3, 2, 1);
    let bad_piece = PieceIndex(3);
    let bad_block = BlockRef::new(PieceIndex(0), 2);
    for block in [BlockRef::new(bad_piece, 0), bad_block] {
        assert!(!p.mark_requested(block, PeerKey(1)));
        assert!(!p.mark_received(block, PeerKey(1)).new);
        assert!(!p.abort_request(block, PeerKey(1)));
        assert_eq!(p.block_status(block), None);
        assert!(p.block_requesters(block).is_empty());
    }
    p.inc_availability(bad_piece);
    p.dec_availability(bad_piece);
    p.piece_passed(bad_piece);
    p.piece_failed(bad_piece);
    p.we_dont_have(bad_piece);
    p.set_piece_deadline(bad_piece, 1);
    assert!(!p.set_piece_priority(bad_piece, Priority::TOP));
    p.set_piece_priorities(&[Priority::TOP; 10]);
    assert!(!p.have(bad_piece));
    assert_eq!(p.piece_priority(bad_piece), Priority::DONT_DOWNLOAD);
    assert_eq!(
        p.pick(PeerKey(1), &AllPieces, 0, PickOptions::default())
            .len(),
        0
    );
    p.check_invariants();
}

/// A wire bitfield that counts how often the picker looks at it, listable or not.
struct Counted<'a> {
    bits: WireBitfield<'a>,
    listable: bool,
    calls: std::cell::Cell<u32>,
}

impl<'a> Counted<'a> {
    fn new(bits: &'a [u8], listable: bool) -> Self {
        Self {
            bits: WireBitfield(bits),
            listable,
            calls: Default::default(),
        }
    }
}

impl PieceSet for Counted<'_> {
    fn contains(&self, piece: PieceIndex) -> bool {
        self.calls.set(self.calls.get() + 1);
        self.bits.contains(piece)
    }

    fn listable(&self) -> bool {
        self.listable
    }

    fn next_piece(&self, from: PieceIndex) -> Option<PieceIndex> {
        self.calls.set(self.calls.get() + 1);
        self.bits.next_piece(from)
    }
}

fn random_bitfield(pieces: u32, rng: &mut XorShift64, one_in: u64) -> Vec<u8> {
    let mut bits = vec![0u8; (pieces as usize).div_ceil(8)];
    for i in 0..pieces as usize {
        if rng.next_u64() % one_in == 0 {
            bits[i / 8] |= 0x80 >> (i % 8);
        }
    }
    bits
}

/// The bench scenario: 1,000,000 pieces of 256 KiB, 200 peers with half the pieces each
/// (16 when unoptimised, to keep the test quick) and 20 seeds. Counts how many pieces a
/// pick of 16 blocks looks at.
#[test]
fn large_torrent_pick_looks_at_few_pieces() {
    const PIECES: u32 = 1_000_000;
    let peers = if cfg!(debug_assertions) { 16 } else { 200 };
    let mut p = PiecePicker::new(u64::from(PIECES) * 256 * 1024, 256 * 1024, 11).unwrap();
    let mut rng = XorShift64::new(99);
    let bytes = (PIECES as usize).div_ceil(8);
    let mut bitfields = Vec::new();
    for _ in 0..peers {
        let bits: Vec<u8> = (0..bytes).map(|_| rng.next_u64() as u8).collect();
        p.peer_bitfield(&bits);
        bitfields.push(bits);
    }
    for _ in 0..20 {
        p.peer_has_all();
    }
    for (i, bits) in bitfields.iter().enumerate().take(8) {
        for listable in [false, true] {
            let set = Counted::new(bits, listable);
            let mut twin = p.clone();
            let picked = twin.pick(PeerKey(i as u32), &set, 16, PickOptions::default());
            assert_eq!(picked.len(), 16);
            assert!(picked.iter().all(|b| set.bits.contains(b.piece)));
            // A few pieces looked at, not a million.
            assert!(set.calls.get() < 200, "{} calls", set.calls.get());
        }
        let picked = p.pick(
            PeerKey(i as u32),
            &WireBitfield(bits),
            16,
            PickOptions::default(),
        );
        // Rarest: no piece this peer has is rarer.
        let rarest = p.availability(picked[0].piece);
        let field = WireBitfield(bits);
        assert!((0..PIECES)
            .map(PieceIndex)
            .filter(|&q| field.contains(q) && p.stage[q.get()] == Stage::Queued)
            .all(|q| p.availability(q) >= rarest));
    }
    let picked = p.pick(PeerKey(1000), &AllPieces, 16, PickOptions::default());
    assert_eq!(picked.len(), 16);
    p.check_invariants();
}

/// A swarm's start: one seed, and peers with a few pieces each. The rarest pieces (only
/// the seed has them) are the ones the other peers lack, so walking the queue for such a
/// peer reads nearly every piece; a listable set bounds the pick by the peer's pieces.
#[test]
fn sparse_peer_pick_is_bounded_by_its_pieces() {
    const PIECES: u32 = 100_000;
    let mut p = picker(PIECES, 4, 5);
    p.peer_has_all();
    let mut rng = XorShift64::new(3);
    let bitfields: Vec<Vec<u8>> = (0..3)
        .map(|_| random_bitfield(PIECES, &mut rng, 2000))
        .collect();
    for bits in &bitfields {
        p.peer_bitfield(bits);
    }
    for (i, bits) in bitfields.iter().enumerate() {
        let walk = Counted::new(bits, false);
        let scan = Counted::new(bits, true);
        let mut twin = p.clone();
        let by_walk = twin.pick(PeerKey(i as u32), &walk, 16, PickOptions::default());
        let by_scan = p.pick(PeerKey(i as u32), &scan, 16, PickOptions::default());
        assert_eq!(by_walk, by_scan);
        assert_eq!(pieces_of(&by_scan).len(), 4);
        assert!(walk.calls.get() > 90_000, "walk {}", walk.calls.get());
        assert!(scan.calls.get() < 500, "scan {}", scan.calls.get());
    }
    p.check_invariants();
}

// ---- property test against a naive model ----

#[derive(Debug, Clone)]
enum Op {
    PeerJoin(u8, Vec<bool>),
    PeerLeave(u8),
    PeerHave(u8, u32),
    SeedJoin,
    SeedLeave,
    Pick(u8, usize, bool),
    Receive(u8, u32, u32),
    ReceivePicked(u8, usize),
    Abort(u8, u32, u32),
    AbortPicked(u8, usize),
    AbortPeer(u8),
    Passed(u32),
    Failed(u32),
    Complete(u32),
    Priority(u32, u8),
    Priorities(Vec<u8>),
    Deadline(u32, u64),
    ResetDeadline(u32),
    ClearDeadlines,
    Sequential(bool),
    WeHave(u32),
    WeDontHave(u32),
    Request(u8, u32, u32),
}

fn op(pieces: u32) -> impl Strategy<Value = Op> {
    let peer = 0u8..4;
    let piece = 0..pieces + 1; // one past the end, to test range checks
    let block = 0u32..5;
    prop_oneof![
        1 => (peer.clone(), prop::collection::vec(any::<bool>(), pieces as usize))
            .prop_map(|(p, b)| Op::PeerJoin(p, b)),
        1 => peer.clone().prop_map(Op::PeerLeave),
        1 => (peer.clone(), piece.clone()).prop_map(|(p, i)| Op::PeerHave(p, i)),
        1 => Just(Op::SeedJoin),
        1 => Just(Op::SeedLeave),
        4 => (peer.clone(), 0usize..6, any::<bool>()).prop_map(|(p, c, e)| Op::Pick(p, c, e)),
        1 => (peer.clone(), piece.clone(), block.clone()).prop_map(|(p, i, b)| Op::Receive(p, i, b)),
        3 => (peer.clone(), any::<usize>()).prop_map(|(p, i)| Op::ReceivePicked(p, i)),
        1 => (peer.clone(), piece.clone(), block.clone()).prop_map(|(p, i, b)| Op::Abort(p, i, b)),
        1 => (peer.clone(), any::<usize>()).prop_map(|(p, i)| Op::AbortPicked(p, i)),
        1 => peer.clone().prop_map(Op::AbortPeer),
        1 => piece.clone().prop_map(Op::Passed),
        1 => piece.clone().prop_map(Op::Failed),
        2 => piece.clone().prop_map(Op::Complete),
        1 => (piece.clone(), 0u8..8).prop_map(|(i, p)| Op::Priority(i, p)),
        1 => prop::collection::vec(0u8..8, 0..pieces as usize + 2).prop_map(Op::Priorities),
        1 => (piece.clone(), 0u64..10).prop_map(|(i, d)| Op::Deadline(i, d)),
        1 => piece.clone().prop_map(Op::ResetDeadline),
        1 => Just(Op::ClearDeadlines),
        1 => any::<bool>().prop_map(Op::Sequential),
        1 => piece.clone().prop_map(Op::WeHave),
        1 => piece.clone().prop_map(Op::WeDontHave),
        1 => (peer, piece, block).prop_map(|(p, i, b)| Op::Request(p, i, b)),
    ]
}

#[derive(Debug, Clone, Default)]
struct BlockModel {
    requesters: BTreeSet<PeerKey>,
    received: bool,
}

/// What the picker should know, kept the obvious way.
struct Model {
    blocks_per_piece: Vec<u32>,
    availability: Vec<u32>,
    seeds: u32,
    have: Vec<bool>,
    priority: Vec<u8>,
    blocks: Vec<Vec<BlockModel>>,
    peers: [Option<Vec<bool>>; 4],
    /// Blocks handed out and not yet settled, per peer.
    outstanding: [Vec<BlockRef>; 4],
}

impl Model {
    fn new(p: &PiecePicker) -> Self {
        let n = p.num_pieces() as usize;
        let blocks_per_piece: Vec<u32> = (0..n as u32)
            .map(|i| p.blocks_in_piece(PieceIndex(i)))
            .collect();
        Self {
            blocks: blocks_per_piece
                .iter()
                .map(|&b| vec![BlockModel::default(); b as usize])
                .collect(),
            blocks_per_piece,
            availability: vec![0; n],
            seeds: 0,
            have: vec![false; n],
            priority: vec![4; n],
            peers: Default::default(),
            outstanding: Default::default(),
        }
    }

    fn block(&mut self, block: BlockRef) -> Option<&mut BlockModel> {
        self.blocks
            .get_mut(block.piece.get())?
            .get_mut(block.block.get())
    }

    fn open_wanted_block_exists(&self, peer_has: impl Fn(usize) -> bool) -> bool {
        (0..self.have.len()).any(|p| {
            !self.have[p]
                && self.priority[p] > 0
                && peer_has(p)
                && self.blocks[p]
                    .iter()
                    .any(|b| !b.received && b.requesters.is_empty())
        })
    }

    fn set_have(&mut self, piece: usize) {
        self.have[piece] = true;
        self.blocks[piece] = vec![BlockModel::default(); self.blocks_per_piece[piece] as usize];
        for list in &mut self.outstanding {
            list.retain(|b| b.piece.get() != piece);
        }
    }

    fn compare(&self, p: &PiecePicker) {
        p.check_invariants();
        let n = self.have.len();
        assert_eq!(
            p.num_have() as usize,
            self.have.iter().filter(|&&h| h).count()
        );
        let wanted_left = (0..n)
            .filter(|&i| !self.have[i] && self.priority[i] > 0)
            .count();
        assert_eq!(p.is_finished(), wanted_left == 0);
        assert_eq!(p.is_seed(), self.have.iter().all(|&h| h));
        let mut partial = BTreeSet::new();
        for i in 0..n {
            let piece = PieceIndex(i as u32);
            assert_eq!(p.have(piece), self.have[i]);
            assert_eq!(p.availability(piece), self.availability[i] + self.seeds);
            assert_eq!(p.piece_priority(piece).get(), self.priority[i]);
            for (b, model) in self.blocks[i].iter().enumerate() {
                let block = BlockRef::new(piece, b as u32);
                let expected = if self.have[i] {
                    BlockStatus::Have
                } else if model.received {
                    BlockStatus::Received
                } else if !model.requesters.is_empty() {
                    BlockStatus::Requested
                } else {
                    BlockStatus::Open
                };
                assert_eq!(p.block_status(block), Some(expected), "{block:?}");
                let requesters: BTreeSet<PeerKey> =
                    p.block_requesters(block).iter().copied().collect();
                assert_eq!(requesters, model.requesters);
                if model.received || !model.requesters.is_empty() {
                    partial.insert(i);
                }
            }
        }
        let got: BTreeSet<usize> = p.partial_pieces().map(|pp| pp.piece.get()).collect();
        assert_eq!(got, partial);
    }

    fn apply(&mut self, p: &mut PiecePicker, op: Op) {
        let n = self.have.len() as u32;
        let key = |peer: u8| PeerKey(u32::from(peer));
        match op {
            Op::PeerJoin(peer, bits) => {
                if self.peers[peer as usize].is_some() {
                    return;
                }
                let mut wire = vec![0u8; bits.len().div_ceil(8)];
                for (i, &set) in bits.iter().enumerate() {
                    if set {
                        wire[i / 8] |= 0x80 >> (i % 8);
                        self.availability[i] += 1;
                    }
                }
                p.peer_bitfield(&wire);
                self.peers[peer as usize] = Some(bits);
            }
            Op::PeerLeave(peer) => {
                let Some(bits) = self.peers[peer as usize].take() else {
                    return;
                };
                let mut wire = vec![0u8; bits.len().div_ceil(8)];
                for (i, &set) in bits.iter().enumerate() {
                    if set {
                        wire[i / 8] |= 0x80 >> (i % 8);
                        self.availability[i] -= 1;
                    }
                }
                p.peer_lost_bitfield(&wire);
                self.abort_peer(p, key(peer));
            }
            Op::PeerHave(peer, piece) => {
                let Some(bits) = self.peers[peer as usize].as_mut() else {
                    return;
                };
                if piece >= n || bits[piece as usize] {
                    return;
                }
                bits[piece as usize] = true;
                self.availability[piece as usize] += 1;
                p.inc_availability(PieceIndex(piece));
            }
            Op::SeedJoin => {
                self.seeds += 1;
                p.peer_has_all();
            }
            Op::SeedLeave => {
                self.seeds = self.seeds.saturating_sub(1);
                p.peer_lost_all();
            }
            Op::Pick(peer, count, end_game) => self.pick(p, peer, count, end_game),
            Op::Receive(peer, piece, block) => {
                self.receive(p, key(peer), BlockRef::new(PieceIndex(piece), block))
            }
            Op::ReceivePicked(peer, i) => {
                let list = &self.outstanding[peer as usize];
                if !list.is_empty() {
                    let block = list[i % list.len()];
                    self.receive(p, key(peer), block);
                }
            }
            Op::Abort(peer, piece, block) => {
                self.abort(p, key(peer), BlockRef::new(PieceIndex(piece), block))
            }
            Op::AbortPicked(peer, i) => {
                let list = &self.outstanding[peer as usize];
                if !list.is_empty() {
                    let block = list[i % list.len()];
                    self.abort(p, key(peer), block);
                }
            }
            Op::AbortPeer(peer) => self.abort_peer(p, key(peer)),
            Op::Passed(piece) => {
                p.piece_passed(PieceIndex(piece));
                if piece < n {
                    self.set_have(piece as usize);
                }
            }
            Op::Failed(piece) => {
                p.piece_failed(PieceIndex(piece));
                if piece < n && !self.have[piece as usize] {
                    for b in &mut self.blocks[piece as usize] {
                        b.received = false;
                    }
                }
            }
            Op::Complete(piece) => {
                // Receive every block of a piece, then pass or fail it by its index.
                if piece >= n || self.have[piece as usize] {
                    return;
                }
                for b in 0..self.blocks_per_piece[piece as usize] {
                    self.receive(p, PeerKey(7), BlockRef::new(PieceIndex(piece), b));
                }
                self.apply(
                    p,
                    if piece % 3 == 0 {
                        Op::Failed(piece)
                    } else {
                        Op::Passed(piece)
                    },
                );
            }
            Op::Priority(piece, level) => {
                let prio = Priority::new(level).unwrap();
                let changed = p.set_piece_priority(PieceIndex(piece), prio);
                if piece < n {
                    assert_eq!(changed, self.priority[piece as usize] != level);
                    self.priority[piece as usize] = level;
                } else {
                    assert!(!changed);
                }
            }
            Op::Priorities(levels) => {
                let prios: Vec<Priority> =
                    levels.iter().map(|&l| Priority::new(l).unwrap()).collect();
                p.set_piece_priorities(&prios);
                for (i, &l) in levels.iter().enumerate().take(n as usize) {
                    self.priority[i] = l;
                }
            }
            Op::Deadline(piece, d) => p.set_piece_deadline(PieceIndex(piece), d),
            Op::ResetDeadline(piece) => p.reset_piece_deadline(PieceIndex(piece)),
            Op::ClearDeadlines => p.clear_deadlines(),
            Op::Sequential(on) => p.set_sequential(on),
            Op::WeHave(piece) => {
                p.we_have(PieceIndex(piece));
                if piece < n {
                    self.set_have(piece as usize);
                }
            }
            Op::WeDontHave(piece) => {
                p.we_dont_have(PieceIndex(piece));
                if piece < n {
                    self.have[piece as usize] = false;
                }
            }
            Op::Request(peer, piece, block) => {
                let block = BlockRef::new(PieceIndex(piece), block);
                let peer = key(peer);
                let changed = p.mark_requested(block, peer);
                let have = self.have.get(piece as usize).copied().unwrap_or(true);
                let expected = match self.block(block) {
                    Some(b) if !have && !b.received && !b.requesters.contains(&peer) => {
                        b.requesters.insert(peer);
                        true
                    }
                    _ => false,
                };
                assert_eq!(changed, expected);
            }
        }
    }

    fn pick(&mut self, p: &mut PiecePicker, peer: u8, count: usize, end_game: bool) {
        let Some(bits) = self.peers[peer as usize].clone() else {
            return;
        };
        let key = PeerKey(u32::from(peer));
        let has = |piece: PieceIndex| bits.get(piece.get()).copied().unwrap_or(false);
        let options = PickOptions::default().with_end_game(end_game);
        // The same pick through a listable set must give the same blocks.
        let mut wire = vec![0u8; bits.len().div_ceil(8)];
        for (i, _) in bits.iter().enumerate().filter(|(_, &set)| set) {
            wire[i / 8] |= 0x80 >> (i % 8);
        }
        let by_scan = p.clone().pick(key, &WireBitfield(&wire), count, options);
        let picked = p.pick(key, &has, count, options);
        assert_eq!(picked, by_scan, "listable set picked differently");
        assert!(picked.len() <= count);
        let unique: BTreeSet<_> = picked.iter().collect();
        assert_eq!(unique.len(), picked.len(), "block picked twice in one pick");
        let mut duplicates = false;
        for &block in &picked {
            let i = block.piece.get();
            assert!(!self.have[i], "picked a piece we have");
            assert!(self.priority[i] > 0, "picked a piece of priority 0");
            assert!(bits[i], "picked a piece the peer lacks");
            let model = self.block(block).expect("picked block exists");
            assert!(!model.received, "picked a received block");
            assert!(
                !model.requesters.contains(&key),
                "picked twice for one peer"
            );
            duplicates |= !model.requesters.is_empty();
            model.requesters.insert(key);
            self.outstanding[peer as usize].push(block);
        }
        if duplicates {
            assert!(end_game, "duplicate request outside end-game");
            // End-game only starts once no wanted block anywhere is open.
            assert!(!self.open_wanted_block_exists(|_| true));
        }
        if picked.len() < count {
            // A short pick leaves nothing open that this peer could have given.
            assert!(!self.open_wanted_block_exists(|i| bits[i]));
        }
    }

    fn receive(&mut self, p: &mut PiecePicker, from: PeerKey, block: BlockRef) {
        let got = p.mark_received(block, from);
        let have = self.have.get(block.piece.get()).copied().unwrap_or(true);
        let Some(model) = self.block(block).filter(|b| !have && !b.received) else {
            assert_eq!(got, BlockReceived::default());
            return;
        };
        model.received = true;
        let requesters = std::mem::take(&mut model.requesters);
        let cancel: BTreeSet<PeerKey> = requesters.into_iter().filter(|&k| k != from).collect();
        assert!(got.new);
        assert_eq!(got.cancel.iter().copied().collect::<BTreeSet<_>>(), cancel);
        let complete = self.blocks[block.piece.get()].iter().all(|b| b.received);
        assert_eq!(got.piece_complete, complete);
        for list in &mut self.outstanding {
            list.retain(|b| *b != block);
        }
    }

    fn abort(&mut self, p: &mut PiecePicker, peer: PeerKey, block: BlockRef) {
        let aborted = p.abort_request(block, peer);
        let have = self.have.get(block.piece.get()).copied().unwrap_or(true);
        let expected = match self.block(block) {
            Some(b) if !have => b.requesters.remove(&peer),
            _ => false,
        };
        assert_eq!(aborted, expected);
        if let Some(list) = self.outstanding.get_mut(peer.0 as usize) {
            list.retain(|b| *b != block);
        }
    }

    fn abort_peer(&mut self, p: &mut PiecePicker, peer: PeerKey) {
        let aborted = p.abort_peer(peer);
        let mut expected = 0;
        for (i, blocks) in self.blocks.iter_mut().enumerate() {
            if !self.have[i] {
                for b in blocks {
                    expected += usize::from(b.requesters.remove(&peer));
                }
            }
        }
        assert_eq!(aborted, expected);
        if let Some(list) = self.outstanding.get_mut(peer.0 as usize) {
            list.clear();
        }
    }
}

fn scenario() -> impl Strategy<Value = (u32, u32, u32, u64, Vec<Op>)> {
    (1u32..16, 1u32..4, 0u32..B, any::<u64>()).prop_flat_map(|(pieces, blocks, short, seed)| {
        (
            Just(pieces),
            Just(blocks),
            Just(short),
            Just(seed),
            prop::collection::vec(op(pieces), 1..120),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_operations_match_a_naive_model(
        (pieces, blocks, short, seed, ops) in scenario()
    ) {
        let piece_length = blocks * B;
        let total = u64::from(pieces) * u64::from(piece_length) - u64::from(short);
        let mut p = PiecePicker::new(total, piece_length, seed).unwrap();
        let mut model = Model::new(&p);
        model.compare(&p);
        for op in ops {
            model.apply(&mut p, op);
            model.compare(&p);
        }
    }
}
