//! Inputs shared by fxtor's criterion benches.

use fxtor_proto::create::{TorrentBuilder, TorrentVersion};

/// A v1 or hybrid torrent of `files` small files spread over nested directories, the shape of
/// a large collection (photos, a source tree). Built with fxtor's own creator.
pub fn many_files_torrent(files: usize, version: TorrentVersion) -> Vec<u8> {
    let mut builder = TorrentBuilder::multi_file("collection");
    let mut total = 0u64;
    for i in 0..files {
        let size = 200 + (i as u64 * 7919) % 1800;
        total += size;
        builder.add_file(
            vec![
                format!("dir{:03}", i % 500),
                format!("sub{}", i % 7),
                format!("file-{i:06}.dat"),
            ],
            size,
        );
    }
    builder.set_version(version).set_piece_length(16 * 1024);
    builder.add_tracker(0, "http://127.0.0.1:6969/announce");
    let mut hasher = builder.into_hasher().expect("a valid description");
    let chunk = vec![0x5a; 1 << 20];
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        hasher
            .update(&chunk[..n])
            .expect("exactly the files' size is fed");
        left -= n as u64;
    }
    hasher.finish().expect("all data fed").bytes
}
