//! Decoding a stream of piece messages as they come off a socket: 64 MiB of 16 KiB blocks,
//! read in 64 KiB slices. The payloads are handed out as `Bytes` that share the receive
//! buffer, so the cost is framing, not copying.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fxtor_proto::wire::{Block, Message, MessageDecoder};
use fxtor_proto::PieceIndex;

fn piece_stream(total: usize) -> Vec<u8> {
    let data = Bytes::from(vec![0x42u8; 16 * 1024]);
    let mut out = BytesMut::with_capacity(total + total / 1000);
    let mut offset = 0u32;
    let mut piece = 0u32;
    while out.len() < total {
        Message::Piece(Block {
            piece: PieceIndex(piece),
            offset,
            data: data.clone(),
        })
        .encode(&mut out);
        offset += 16 * 1024;
        if offset == 256 * 1024 {
            offset = 0;
            piece += 1;
        }
    }
    out.to_vec()
}

fn decode_pieces(c: &mut Criterion) {
    let stream = piece_stream(64 << 20);
    let mut group = c.benchmark_group("wire decode");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.sample_size(20);
    for read_size in [64 * 1024, 1024 * 1024] {
        group.bench_with_input(
            BenchmarkId::new("piece messages, reads of", read_size),
            &read_size,
            |b, &read_size| {
                b.iter(|| {
                    let mut decoder = MessageDecoder::new();
                    let mut buf = BytesMut::with_capacity(2 * read_size);
                    let mut blocks = 0usize;
                    for chunk in stream.chunks(read_size) {
                        buf.extend_from_slice(chunk);
                        while let Some(message) = decoder.decode(&mut buf).expect("valid stream") {
                            if let Message::Piece(block) = message {
                                blocks += block.data.len();
                            }
                        }
                    }
                    blocks
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, decode_pieces);
criterion_main!(benches);
