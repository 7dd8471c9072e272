//! Decoding a large .torrent (50,000 files): fxtor against the crates a Rust user would
//! otherwise pick, lava_torrent and serde_bencode, in the same run.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fxtor_benches::many_files_torrent;
use fxtor_proto::create::TorrentVersion;
use fxtor_proto::TorrentInfo;
use serde::Deserialize;

/// The usual serde_bencode model of a torrent.
#[derive(Deserialize)]
struct SerdeTorrent {
    #[allow(dead_code)]
    info: SerdeInfo,
    #[allow(dead_code)]
    announce: Option<String>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct SerdeInfo {
    name: String,
    #[serde(with = "serde_bytes")]
    pieces: Vec<u8>,
    #[serde(rename = "piece length")]
    piece_length: i64,
    files: Option<Vec<SerdeFile>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct SerdeFile {
    length: i64,
    path: Vec<String>,
}

fn decode_large_torrent(c: &mut Criterion) {
    let v1 = many_files_torrent(50_000, TorrentVersion::V1);
    let hybrid = many_files_torrent(50_000, TorrentVersion::Hybrid);
    let mut group = c.benchmark_group("decode 50k-file torrent");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(v1.len() as u64));
    group.bench_function(BenchmarkId::new("fxtor", "v1"), |b| {
        b.iter(|| TorrentInfo::from_bytes(&v1).expect("valid"))
    });
    group.bench_function(BenchmarkId::new("fxtor bencode::decode", "v1"), |b| {
        b.iter(|| {
            fxtor_proto::bencode::decode(&v1, fxtor_proto::bencode::Mode::Lenient).expect("valid")
        })
    });
    group.bench_function(BenchmarkId::new("lava_torrent", "v1"), |b| {
        b.iter(|| lava_torrent::torrent::v1::Torrent::read_from_bytes(&v1).expect("valid"))
    });
    group.bench_function(BenchmarkId::new("serde_bencode", "v1"), |b| {
        b.iter(|| serde_bencode::from_bytes::<SerdeTorrent>(&v1).expect("valid"))
    });
    group.throughput(Throughput::Bytes(hybrid.len() as u64));
    group.bench_function(BenchmarkId::new("fxtor", "hybrid"), |b| {
        b.iter(|| TorrentInfo::from_bytes(&hybrid).expect("valid"))
    });
    group.finish();
}

criterion_group!(benches, decode_large_torrent);
criterion_main!(benches);
