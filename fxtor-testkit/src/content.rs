//! Test content: deterministic bytes, the v1, v2 and hybrid torrents libtorrent makes of
//! them ([`Swarm`]), a small torrent fxtor's own builder makes ([`small`]), and the checks
//! that a copy has the same bytes.

use std::path::{Path, PathBuf};

use fxtor_proto::TorrentInfo;

/// The torrent versions every transfer scenario runs for.
pub const VERSIONS: [&str; 3] = ["v1", "v2", "hybrid"];

/// Writes `len` bytes of deterministic pseudo-random data (a simple xorshift stream).
pub fn write_data(path: &Path, len: usize, seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(len);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create data directory");
    }
    std::fs::write(path, data).expect("write data file");
}

/// One torrent of a [`Swarm`]'s content, made by libtorrent.
pub struct TorrentFixture {
    /// `v1`, `v2` or `hybrid`.
    pub version: &'static str,
    /// The .torrent file.
    pub torrent: PathBuf,
}

impl TorrentFixture {
    /// The torrent as fxtor reads it.
    pub fn info(&self) -> TorrentInfo {
        let bytes = std::fs::read(&self.torrent).expect("read the .torrent");
        TorrentInfo::from_bytes(&bytes).expect("fxtor reads libtorrent's torrent")
    }
}

/// Content in several files (below `src/NAME` of a temporary directory), or in the single
/// file `src/NAME`, and its v1 (canonical: pad files as in v2), v2 and hybrid torrents, made
/// by libtorrent.
pub struct Swarm {
    /// The temporary directory holding the content and the torrents.
    pub root: PathBuf,
    /// The torrent's name: the content's directory (or single file) below [`Swarm::src`].
    pub name: &'static str,
    /// The content's files: paths below the torrent's directory, and sizes; a single-file
    /// torrent's one file has the empty path.
    pub files: &'static [(&'static str, u64)],
    /// The torrents, in the order of [`VERSIONS`].
    pub torrents: Vec<TorrentFixture>,
    _dir: tempfile::TempDir,
}

impl Swarm {
    /// Writes the content and has libtorrent make its torrents with pieces of
    /// `piece_length` bytes. Sizes that are not multiples of it make every file but the last
    /// followed by a pad file. `files` of one file with the empty path make a single-file
    /// torrent.
    pub fn create(
        name: &'static str,
        files: &'static [(&'static str, u64)],
        piece_length: u32,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path().to_path_buf();
        for (i, (path, size)) in files.iter().enumerate() {
            let size = usize::try_from(*size).expect("test content fits in memory");
            write_data(
                &file_path(&root.join("src"), name, path),
                size,
                i as u64 + 11,
            );
        }
        let src = root.join("src").join(name);
        let piece_length = piece_length.to_string();
        let torrents = VERSIONS
            .iter()
            .map(|&version| {
                let torrent = root.join(format!("{version}.torrent"));
                let mut args = vec!["create", path_str(&src), path_str(&torrent)];
                args.extend(["--mode", version, "--piece-length", &piece_length]);
                if version == "v1" {
                    args.push("--canonical");
                }
                crate::libtorrent::run(&args);
                TorrentFixture { version, torrent }
            })
            .collect();
        let swarm = Self {
            root,
            name,
            files,
            torrents,
            _dir: dir,
        };
        for fixture in &swarm.torrents {
            let info = fixture.info();
            let pads = info.files().files().iter().filter(|f| f.is_pad()).count();
            assert!(
                pads + 1 >= files.len(),
                "{}: {pads} pad files",
                fixture.version
            );
            assert_eq!(info.name(), name);
        }
        swarm
    }

    /// The save path holding the content (the torrent's directory is in it).
    pub fn src(&self) -> PathBuf {
        self.root.join("src")
    }

    /// The torrent of one version (`v1`, `v2` or `hybrid`).
    pub fn torrent(&self, version: &str) -> &TorrentFixture {
        self.torrents
            .iter()
            .find(|t| t.version == version)
            .unwrap_or_else(|| panic!("no {version} torrent"))
    }

    /// The content's size in bytes (pad files not counted).
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.1).sum()
    }

    /// Asserts the files below `save_path/NAME` are the content, and no pad file was written.
    pub fn assert_same_content(&self, save_path: &Path, context: &str) {
        for &(path, size) in self.files {
            let theirs = std::fs::read(file_path(&self.src(), self.name, path)).unwrap();
            let ours = std::fs::read(file_path(save_path, self.name, path))
                .unwrap_or_else(|e| panic!("{context}: {path}: {e}"));
            assert_eq!(
                ours.len() as u64,
                size,
                "{context}: {path} has the wrong size"
            );
            if let Some(at) = ours.iter().zip(&theirs).position(|(a, b)| a != b) {
                panic!("{context}: {path} differs at byte {at}");
            }
        }
        assert!(
            !save_path.join(self.name).join(".pad").exists(),
            "{context}: pad files were written"
        );
    }
}

/// Where file `path` of torrent `name` lies below `save_path` (the empty path: the
/// single file `name` itself).
pub fn file_path(save_path: &Path, name: &str, path: &str) -> PathBuf {
    let top = save_path.join(name);
    if path.is_empty() {
        top
    } else {
        top.join(path)
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// A small hybrid torrent that fxtor's own builder makes, for transfers between fxtor
/// sessions.
pub mod small {
    use std::path::Path;

    use fxtor_proto::create::{TorrentBuilder, TorrentVersion};
    use fxtor_proto::TorrentInfo;

    /// The torrent's name, and its directory below a save path.
    pub const NAME: &str = "content";

    /// The files: their paths below the torrent's directory and sizes, chosen so that no
    /// file ends on a piece boundary (a hybrid torrent then needs pad files).
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

    /// The torrent of [`FILES`], with their content written below `seed_dir`.
    pub fn seeded_torrent(seed_dir: &Path) -> TorrentInfo {
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
        TorrentInfo::from_bytes(&bytes).expect("our own torrent parses")
    }

    /// Asserts that file `n` of [`FILES`] is below `save_path` with its exact content.
    pub fn assert_file_matches(save_path: &Path, n: usize) {
        let (path, len) = FILES[n];
        let got = std::fs::read(save_path.join(NAME).join(path))
            .unwrap_or_else(|e| panic!("{path} was not downloaded: {e}"));
        assert!(got == content(n, len), "{path} differs from the seeder's");
    }

    /// The bytes of the torrent's files, pad files left out.
    pub fn file_bytes(info: &TorrentInfo) -> u64 {
        info.files()
            .files()
            .iter()
            .filter(|f| !f.is_pad())
            .map(|f| f.size())
            .sum()
    }
}
