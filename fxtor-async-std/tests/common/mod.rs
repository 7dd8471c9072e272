//! What the integration tests share: a torrent of generated content, written to a seeder's
//! directory, and the check that a downloader's copy is the same.
#![allow(dead_code)]

use std::path::Path;

use fxtor_proto::create::{TorrentBuilder, TorrentVersion};
use fxtor_proto::TorrentInfo;

/// The torrent's name, and its directory below a save path.
pub const NAME: &str = "content";

/// The files: their paths below the torrent's directory and sizes, chosen so that no file
/// ends on a piece boundary (a hybrid torrent then needs pad files).
pub const FILES: [(&str, usize); 3] = [
    ("first.bin", 300_000),
    ("nested/second.bin", 170_001),
    ("third.bin", 9),
];

/// Content that differs at every offset and from file to file.
pub fn content(file: usize, len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1d_u64 ^ (file as u64 + 1);
    (0..len)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (x >> 56) as u8
        })
        .collect()
}

/// A hybrid torrent of [`FILES`], with their content written below `seed_dir`.
pub fn seeded_torrent(seed_dir: &Path) -> TorrentInfo {
    torrent_file(seed_dir).0
}

/// [`seeded_torrent`], and the bytes of its .torrent file.
pub fn torrent_file(seed_dir: &Path) -> (TorrentInfo, Vec<u8>) {
    let mut builder = TorrentBuilder::multi_file(NAME);
    builder
        .set_version(TorrentVersion::Hybrid)
        .set_piece_length(32 * 1024);
    for (path, len) in FILES {
        builder.add_file(path.split('/').map(String::from).collect(), len as u64);
    }
    let mut hasher = builder.into_hasher().expect("a valid torrent");
    for (n, (path, len)) in FILES.iter().enumerate() {
        let data = content(n, *len);
        let file = seed_dir.join(NAME).join(path);
        std::fs::create_dir_all(file.parent().expect("below the torrent's directory")).unwrap();
        std::fs::write(&file, &data).unwrap();
        hasher.update(&data).unwrap();
    }
    let bytes = hasher.finish().unwrap().bytes.to_vec();
    let info = TorrentInfo::from_bytes(&bytes).expect("our own torrent parses");
    (info, bytes)
}

/// Asserts that file `n` of [`FILES`] is below `save_path` with its exact content.
pub fn assert_file_matches(save_path: &Path, n: usize) {
    let (path, len) = FILES[n];
    let got = std::fs::read(save_path.join(NAME).join(path))
        .unwrap_or_else(|e| panic!("{path} was not downloaded: {e}"));
    assert!(got == content(n, len), "{path} differs from the seeder's");
}

/// Whether the test runs in CI, where every tool it needs must be installed.
pub fn in_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true" | "1"))
}
