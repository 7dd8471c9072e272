//! Piece picker micro-benches: a 1,000,000-piece torrent (and a 10,000-piece one, to show the
//! cost of a pick does not grow with the number of pieces) (256 KiB pieces, 16 blocks each)
//! with 200 peers, 180 of them with a random half of the pieces and 20 seeds.
//!
//! - `pick 16`: one pick of a peer's next 16 blocks (then the requests are withdrawn, so
//!   that every iteration sees the same swarm), for a peer with half the pieces, for a
//!   seed, and for a peer with 1% of the pieces;
//! - `availability`: one `have` (`inc_availability`) and its undo (`dec_availability`).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fxtor_proto::picker::{AllPieces, PeerKey, PickOptions, PiecePicker, PieceSet, WireBitfield};
use fxtor_proto::PieceIndex;

const PIECE_LENGTH: u32 = 256 * 1024;
const PEERS: usize = 200;
const SEEDS: usize = 20;

/// xorshift64, so that every run builds the same swarm.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

struct Swarm {
    picker: PiecePicker,
    /// The bitfields of the peers that are not seeds.
    bitfields: Vec<Vec<u8>>,
    /// A peer with about 1% of the pieces (not counted in the availability).
    sparse: Vec<u8>,
}

fn swarm(pieces: u32) -> Swarm {
    let total = u64::from(pieces) * u64::from(PIECE_LENGTH);
    let mut picker = PiecePicker::new(total, PIECE_LENGTH, 1).expect("a valid torrent");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let bytes = (pieces as usize).div_ceil(8);
    let mut bitfields = Vec::new();
    for _ in 0..PEERS - SEEDS {
        let bits: Vec<u8> = (0..bytes).map(|_| rng.next() as u8).collect();
        picker.peer_bitfield(&bits);
        bitfields.push(bits);
    }
    for _ in 0..SEEDS {
        picker.peer_has_all();
    }
    let mut sparse = vec![0u8; bytes];
    for i in 0..pieces as usize {
        if rng.next() < u64::MAX / 100 {
            sparse[i / 8] |= 0x80 >> (i % 8);
        }
    }
    Swarm {
        picker,
        bitfields,
        sparse,
    }
}

/// One pick of 16 blocks, then the requests withdrawn again.
fn pick_and_undo(picker: &mut PiecePicker, peer: PeerKey, has: &impl PieceSet) -> usize {
    let picked = picker.pick(peer, has, 16, PickOptions::default());
    for block in &picked {
        picker.abort_request(*block, peer);
    }
    picked.len()
}

fn bench_picker(c: &mut Criterion) {
    for pieces in [10_000, 1_000_000] {
        bench_swarm(c, pieces);
    }
}

fn bench_swarm(c: &mut Criterion, pieces: u32) {
    let Swarm {
        mut picker,
        bitfields,
        sparse,
    } = swarm(pieces);
    let mut group = c.benchmark_group(format!("picker {pieces} pieces 200 peers"));

    let mut next = 0;
    group.bench_function("pick 16, peer with half the pieces", |b| {
        b.iter(|| {
            next = (next + 1) % bitfields.len();
            let has = WireBitfield(&bitfields[next]);
            black_box(pick_and_undo(&mut picker, PeerKey(next as u32), &has))
        })
    });
    group.bench_function("pick 16, seed", |b| {
        b.iter(|| black_box(pick_and_undo(&mut picker, PeerKey(1000), &AllPieces)))
    });
    group.bench_function("pick 16, peer with 1% of the pieces", |b| {
        let has = WireBitfield(&sparse);
        b.iter(|| black_box(pick_and_undo(&mut picker, PeerKey(1001), &has)))
    });

    let mut rng = Rng(42);
    group.bench_function("inc + dec availability", |b| {
        b.iter(|| {
            let piece = PieceIndex((rng.next() % u64::from(pieces)) as u32);
            picker.inc_availability(piece);
            picker.dec_availability(piece);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_picker);
criterion_main!(benches);
