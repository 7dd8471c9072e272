//! Piece hashing: v1 SHA-1 of whole pieces and v2 merkle roots of 16 KiB leaves, against the
//! raw SHA-1 / SHA-256 speed of the same crates over the same bytes (the ceiling).
//! Compare with `openssl speed -evp sha1 -bytes 16384` for the machine's raw speed.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fxtor_proto::create::{TorrentBuilder, TorrentVersion};
use fxtor_proto::merkle::{self, RootBuilder};
use fxtor_proto::Sha1Hash;
use sha1::Digest as _;

const DATA: usize = 16 << 20;

fn v1_pieces(c: &mut Criterion) {
    let data = vec![0xa5u8; DATA];
    let mut group = c.benchmark_group("v1 piece hashing");
    group.throughput(Throughput::Bytes(DATA as u64));
    group.sample_size(20);
    group.bench_function("raw sha1 (one pass)", |b| {
        b.iter(|| sha1::Sha1::digest(&data))
    });
    for piece in [256 << 10, 4 << 20] {
        group.bench_with_input(
            BenchmarkId::new("Sha1Hash per piece", piece),
            &piece,
            |b, &piece| b.iter(|| data.chunks(piece).map(Sha1Hash::digest).count()),
        );
    }
    group.finish();
}

fn v2_roots(c: &mut Criterion) {
    let data = vec![0x5au8; DATA];
    let mut group = c.benchmark_group("v2 merkle root");
    group.throughput(Throughput::Bytes(DATA as u64));
    group.sample_size(20);
    group.bench_function("raw sha256 (one pass)", |b| {
        b.iter(|| sha2::Sha256::digest(&data))
    });
    group.bench_function("root_from_data", |b| {
        b.iter(|| merkle::root_from_data(&data))
    });
    group.bench_function("RootBuilder per block", |b| {
        b.iter(|| {
            let mut builder = RootBuilder::new();
            data.chunks(16 << 10)
                .for_each(|block| builder.push_block(block));
            builder.finish()
        })
    });
    group.finish();
}

fn create_hybrid(c: &mut Criterion) {
    let data = vec![0x3cu8; DATA];
    let mut group = c.benchmark_group("create torrent");
    group.throughput(Throughput::Bytes(DATA as u64));
    group.sample_size(10);
    for (name, version) in [
        ("v1", TorrentVersion::V1),
        ("v2", TorrentVersion::V2),
        ("hybrid", TorrentVersion::Hybrid),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut builder = TorrentBuilder::single_file("data", DATA as u64);
                builder.set_version(version).set_piece_length(256 << 10);
                let mut hasher = builder.into_hasher().expect("valid");
                data.chunks(1 << 20)
                    .for_each(|c| hasher.update(c).expect("fits"));
                hasher.finish().expect("complete")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, v1_pieces, v2_roots, create_hybrid);
criterion_main!(benches);
