//! A whole download driven through the picker's public API: peers with different pieces,
//! request queues, chokes, a corrupt piece, end-game and cancels.

use std::collections::{BTreeSet, VecDeque};

use fxtor_proto::picker::{
    AllPieces, BlockRef, PeerKey, PickOptions, PiecePicker, PieceSet, Priority, WireBitfield,
};
use fxtor_proto::{PieceIndex, BLOCK_SIZE};

const PIECES: u32 = 300;
const PIECE_LENGTH: u32 = 4 * BLOCK_SIZE;
const QUEUE: usize = 8;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

enum Pieces {
    All,
    Some(Vec<u8>),
}

struct Peer {
    key: PeerKey,
    pieces: Pieces,
    /// Requests sent and not yet answered, oldest first.
    queue: VecDeque<BlockRef>,
    /// Blocks per round this peer delivers.
    speed: usize,
}

impl Peer {
    fn pick(&self, picker: &mut PiecePicker, count: usize) -> Vec<BlockRef> {
        let options = PickOptions::default();
        match &self.pieces {
            Pieces::All => picker.pick(self.key, &AllPieces, count, options),
            Pieces::Some(bits) => picker.pick(self.key, &WireBitfield(bits), count, options),
        }
        .to_vec()
    }

    fn has(&self, piece: PieceIndex) -> bool {
        match &self.pieces {
            Pieces::All => true,
            Pieces::Some(bits) => WireBitfield(bits).contains(piece),
        }
    }
}

#[test]
fn a_swarm_downloads_every_wanted_piece() {
    let total = u64::from(PIECES) * u64::from(PIECE_LENGTH) - 1000;
    let mut picker = PiecePicker::new(total, PIECE_LENGTH, 2024).unwrap();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    // The last 20 pieces are not wanted; the first 10 are wanted most.
    let files = [
        (PieceIndex(0)..PieceIndex(10), Priority::TOP),
        (PieceIndex(10)..PieceIndex(280), Priority::DEFAULT),
        (PieceIndex(280)..PieceIndex(300), Priority::DONT_DOWNLOAD),
    ];
    picker.set_file_priorities(files);
    assert_eq!(picker.wanted_left(), 280);

    let mut peers = Vec::new();
    for key in 0..6 {
        let pieces = if key == 0 {
            picker.peer_has_all();
            Pieces::All
        } else {
            let bits: Vec<u8> = (0..PIECES.div_ceil(8)).map(|_| rng.next() as u8).collect();
            picker.peer_bitfield(&bits);
            Pieces::Some(bits)
        };
        peers.push(Peer {
            key: PeerKey(key),
            pieces,
            queue: VecDeque::new(),
            speed: if key == 5 { 1 } else { 3 },
        });
    }

    let corrupt = PieceIndex(42);
    let mut corrupt_once = true;
    let mut received = BTreeSet::new();
    let mut duplicates = 0;
    let mut cancels = 0;
    let mut rounds = 0;
    while !picker.is_finished() {
        rounds += 1;
        assert!(rounds < 10_000, "the download does not finish");
        for i in 0..peers.len() {
            // Keep the request queue full.
            let room = QUEUE - peers[i].queue.len();
            let picked = peers[i].pick(&mut picker, room);
            for block in &picked {
                assert!(peers[i].has(block.piece));
                assert!(!picker.have(block.piece));
                assert!(picker.piece_priority(block.piece).is_wanted());
            }
            peers[i].queue.extend(picked);

            // Peer 3 chokes us now and then: its requests are gone.
            if peers[i].key == PeerKey(3) && rng.next() % 10 == 0 {
                let queued = peers[i].queue.len();
                assert_eq!(picker.abort_peer(PeerKey(3)), queued);
                peers[i].queue.clear();
                continue;
            }

            for _ in 0..peers[i].speed {
                let Some(block) = peers[i].queue.pop_front() else {
                    break;
                };
                let got = picker.mark_received(block, peers[i].key);
                if !got.new {
                    duplicates += 1;
                    continue;
                }
                assert!(received.insert(block), "{block:?} new twice");
                cancels += got.cancel.len();
                for other in got.cancel {
                    let peer = &mut peers[other.0 as usize];
                    let before = peer.queue.len();
                    peer.queue.retain(|b| *b != block);
                    assert_eq!(peer.queue.len(), before - 1, "cancel for a block not asked");
                }
                if got.piece_complete {
                    if block.piece == corrupt && corrupt_once {
                        corrupt_once = false;
                        picker.piece_failed(block.piece);
                        for b in 0..picker.blocks_in_piece(block.piece) {
                            received.remove(&BlockRef::new(block.piece, b));
                        }
                    } else {
                        picker.piece_passed(block.piece);
                    }
                }
            }
        }
    }

    assert!(!corrupt_once, "the corrupt piece was downloaded");
    assert_eq!(picker.num_have(), 280);
    assert!(!picker.is_seed());
    assert!((0..280).all(|p| picker.have(PieceIndex(p))));
    assert!((280..300).all(|p| !picker.have(PieceIndex(p))));
    // Every block of every wanted piece arrived (the corrupt piece twice).
    let blocks: u32 = (0..280)
        .map(|p| picker.blocks_in_piece(PieceIndex(p)))
        .sum();
    assert_eq!(received.len(), blocks as usize);
    // End-game happened, and its cancels reached every other requester in time.
    assert!(cancels > 0);
    assert_eq!(duplicates, 0);
    assert_eq!(picker.partial_pieces().count(), 0);
}
