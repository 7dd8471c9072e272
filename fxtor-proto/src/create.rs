//! Building .torrent files (BEP3, BEP47, BEP52) from data the caller feeds in.
//!
//! [`TorrentBuilder`] describes the torrent: its files, piece length, version (hybrid v1+v2 by
//! default), trackers and so on. [`TorrentBuilder::into_hasher`] gives a [`TorrentHasher`] that
//! takes the files' bytes in [`TorrentHasher::files`] order, in pieces of any size, and
//! [`TorrentHasher::finish`] returns the bencoded .torrent. Nothing here reads a file: the caller
//! does, so the core stays free of I/O.
//!
//! For v2 and hybrid torrents the files are ordered as the v2 file tree orders them (by path,
//! byte-wise), and in a hybrid every file that does not end on a piece boundary is followed by a
//! pad file (BEP47), so that each file starts on a piece as v2 requires.
//!
//! ```
//! use fxtor_proto::create::{TorrentBuilder, TorrentVersion};
//! use fxtor_proto::TorrentInfo;
//!
//! let data = vec![7u8; 40_000];
//! let mut builder = TorrentBuilder::single_file("seven.bin", data.len() as u64);
//! builder.set_piece_length(16 * 1024).add_tracker(0, "http://127.0.0.1:6969/announce");
//! let mut hasher = builder.into_hasher().unwrap();
//! hasher.update(&data).unwrap();
//! let torrent = hasher.finish().unwrap();
//!
//! let info = TorrentInfo::from_bytes(&torrent.bytes).unwrap();
//! assert_eq!(info.info_hashes(), torrent.info_hashes);
//! assert!(info.info_hashes().is_hybrid());
//! assert_eq!(info.num_pieces(), 3);
//! ```

use bytes::Bytes;
use sha1::{Digest as _, Sha1};
use sha2::Sha256;
use thiserror::Error;

use crate::bencode::OwnedValue;
use crate::hash::{InfoHashV1, InfoHashV2, InfoHashes, Sha256Hash};
use crate::index::BLOCK_SIZE;
use crate::merkle;

/// Which views of the content a new torrent carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TorrentVersion {
    /// v1 only: SHA-1 piece hashes over the concatenated files.
    V1,
    /// v2 only (BEP52): a merkle tree per file.
    V2,
    /// Both views of the same piece-aligned data: readable by v1 and v2 clients.
    #[default]
    Hybrid,
}

impl TorrentVersion {
    fn has_v1(self) -> bool {
        matches!(self, Self::V1 | Self::Hybrid)
    }

    fn has_v2(self) -> bool {
        matches!(self, Self::V2 | Self::Hybrid)
    }
}

/// One file of a torrent being made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// Path components below the torrent's directory (empty for a single-file torrent).
    pub path: Vec<String>,
    /// Size in bytes.
    pub size: u64,
    /// BEP47 `x`: the file is executable.
    pub executable: bool,
    /// BEP47 `h`: the file is hidden.
    pub hidden: bool,
}

/// Why a torrent could not be made.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CreateError {
    /// The torrent has no name.
    #[error("the torrent needs a name")]
    EmptyName,
    /// A name or path component is empty, `.`, `..`, or holds `/`, `\` or NUL.
    #[error("invalid path component {0:?}")]
    InvalidPathComponent(String),
    /// The same path is added twice, or a path is both a file and a directory.
    #[error("path {0:?} is added twice or is both a file and a directory")]
    PathConflict(String),
    /// A multi-file torrent without files.
    #[error("the torrent has no files")]
    NoFiles,
    /// The content is empty (every file has size 0).
    #[error("the torrent's content is empty")]
    EmptyContent,
    /// The piece length is not a power of two of at least 16 KiB.
    #[error("piece length {0} is not a power of two of at least 16 KiB")]
    InvalidPieceLength(u64),
    /// So many pieces that the torrent would be unusable.
    #[error("{0} pieces is too many; choose a larger piece length")]
    TooManyPieces(u64),
    /// More data was fed than the files hold.
    #[error("more data than the files hold")]
    TooMuchData,
    /// `finish` before every file's data was fed.
    #[error("{missing} bytes of file {file:?} were never fed")]
    MissingData {
        /// The file still waiting for data.
        file: String,
        /// How many of its bytes are missing.
        missing: u64,
    },
}

/// The most pieces a created torrent may have (as libtorrent's default load limit).
pub const MAX_PIECES: u64 = 0x20_0000;

/// Describes a torrent to be made. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct TorrentBuilder {
    name: String,
    single_file: bool,
    files: Vec<NewFile>,
    version: TorrentVersion,
    piece_length: Option<u32>,
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    private: bool,
    comment: Option<String>,
    created_by: Option<String>,
    creation_date: Option<i64>,
}

impl TorrentBuilder {
    /// A torrent of one file called `name`.
    pub fn single_file(name: impl Into<String>, size: u64) -> Self {
        let mut builder = Self::multi_file(name);
        builder.single_file = true;
        builder.files.push(NewFile {
            path: Vec::new(),
            size,
            executable: false,
            hidden: false,
        });
        builder
    }

    /// A torrent of a directory called `name`; add its files with [`add_file`](Self::add_file).
    pub fn multi_file(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            single_file: false,
            files: Vec::new(),
            version: TorrentVersion::default(),
            piece_length: None,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            private: false,
            comment: None,
            created_by: Some(concat!("fxtor/", env!("CARGO_PKG_VERSION")).to_string()),
            creation_date: None,
        }
    }

    /// Adds a file of a multi-file torrent, its path relative to the torrent's directory.
    pub fn add_file(&mut self, path: Vec<String>, size: u64) -> &mut NewFile {
        self.files.push(NewFile {
            path,
            size,
            executable: false,
            hidden: false,
        });
        // Just pushed, so there is a last element.
        self.files.last_mut().expect("a file was just added")
    }

    /// v1, v2 or hybrid (the default).
    pub fn set_version(&mut self, version: TorrentVersion) -> &mut Self {
        self.version = version;
        self
    }

    /// The piece length; without it one is chosen from the total size.
    pub fn set_piece_length(&mut self, piece_length: u32) -> &mut Self {
        self.piece_length = Some(piece_length);
        self
    }

    /// Adds a tracker to tier `tier` (BEP12); tiers are numbered from 0.
    pub fn add_tracker(&mut self, tier: usize, url: impl Into<String>) -> &mut Self {
        let tier = tier.min(self.trackers.len());
        if tier == self.trackers.len() {
            self.trackers.push(Vec::new());
        }
        self.trackers[tier].push(url.into());
        self
    }

    /// Adds a web seed (BEP19 `url-list`).
    pub fn add_web_seed(&mut self, url: impl Into<String>) -> &mut Self {
        self.web_seeds.push(url.into());
        self
    }

    /// Marks the torrent private (BEP27).
    pub fn set_private(&mut self, private: bool) -> &mut Self {
        self.private = private;
        self
    }

    /// Sets the comment.
    pub fn set_comment(&mut self, comment: impl Into<String>) -> &mut Self {
        self.comment = Some(comment.into());
        self
    }

    /// Sets (or with `None` removes) the `created by` field.
    pub fn set_created_by(&mut self, created_by: Option<String>) -> &mut Self {
        self.created_by = created_by;
        self
    }

    /// Sets the creation date, in seconds since the Unix epoch (the caller reads the clock).
    pub fn set_creation_date(&mut self, seconds: i64) -> &mut Self {
        self.creation_date = Some(seconds);
        self
    }

    /// The sum of the files' sizes.
    pub fn content_size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// The piece length that will be used: the one set, or the smallest power of two from
    /// 16 KiB to 16 MiB that keeps the torrent near 1,500 pieces or fewer.
    pub fn piece_length(&self) -> u32 {
        self.piece_length.unwrap_or_else(|| {
            let target = self.content_size() / 1500;
            let mut len = BLOCK_SIZE;
            while u64::from(len) < target && len < 16 * 1024 * 1024 {
                len *= 2;
            }
            len
        })
    }

    /// Checks the description and starts hashing. The files' data must then be fed in
    /// [`TorrentHasher::files`] order.
    pub fn into_hasher(mut self) -> Result<TorrentHasher, CreateError> {
        check_component(&self.name).map_err(|_| {
            if self.name.is_empty() {
                CreateError::EmptyName
            } else {
                CreateError::InvalidPathComponent(self.name.clone())
            }
        })?;
        if self.files.is_empty() {
            return Err(CreateError::NoFiles);
        }
        let piece_length = self.piece_length();
        if piece_length < BLOCK_SIZE || !piece_length.is_power_of_two() {
            return Err(CreateError::InvalidPieceLength(piece_length.into()));
        }
        for file in &self.files {
            file.path.iter().try_for_each(|c| check_component(c))?;
            if !self.single_file && file.path.is_empty() {
                return Err(CreateError::InvalidPathComponent(String::new()));
            }
        }
        if self.version.has_v2() {
            // The v2 file tree is a dictionary: its files come in path order.
            self.files.sort_by(|a, b| a.path.cmp(&b.path));
        }
        check_no_conflicts(&self.files)?;
        // A single file needs no pad: nothing follows it (libtorrent writes none either).
        let align = self.version == TorrentVersion::Hybrid && !self.single_file;
        let layout = Layout::new(&self.files, piece_length, align);
        if self.content_size() == 0 {
            return Err(CreateError::EmptyContent);
        }
        let pieces = layout.total_size.div_ceil(u64::from(piece_length));
        if pieces > MAX_PIECES {
            return Err(CreateError::TooManyPieces(pieces));
        }
        Ok(TorrentHasher::new(self, layout, piece_length))
    }
}

fn check_component(c: &str) -> Result<(), CreateError> {
    if c.is_empty() || c == "." || c == ".." || c.contains(['/', '\\', '\0']) {
        return Err(CreateError::InvalidPathComponent(c.to_string()));
    }
    Ok(())
}

/// Files must be unique, and no file may also be a directory of another (in a v2 tree they
/// would collide). Expects `files` sorted by path when it matters (v2); a v1 list is checked
/// on a sorted copy.
fn check_no_conflicts(files: &[NewFile]) -> Result<(), CreateError> {
    let mut paths: Vec<&[String]> = files.iter().map(|f| f.path.as_slice()).collect();
    paths.sort();
    for pair in paths.windows(2) {
        if pair[1].starts_with(pair[0]) {
            return Err(CreateError::PathConflict(pair[0].join("/")));
        }
    }
    Ok(())
}

/// Where each file and pad lies in the v1 byte stream.
#[derive(Debug)]
struct Layout {
    /// For each file, the pad that follows it (0 for none).
    pads: Vec<u64>,
    total_size: u64,
}

impl Layout {
    fn new(files: &[NewFile], piece_length: u32, align: bool) -> Self {
        let piece = u64::from(piece_length);
        let pads: Vec<u64> = files
            .iter()
            .map(|f| {
                let rest = f.size % piece;
                if align && rest != 0 {
                    piece - rest
                } else {
                    0
                }
            })
            .collect();
        let total_size = files.iter().zip(&pads).map(|(f, p)| f.size + p).sum();
        Self { pads, total_size }
    }
}

/// A finished torrent.
#[derive(Debug, Clone)]
pub struct CreatedTorrent {
    /// The .torrent file's bytes.
    pub bytes: Vec<u8>,
    /// Its info-hashes.
    pub info_hashes: InfoHashes,
}

/// Hashes the files' data for a [`TorrentBuilder`]; see the [module documentation](self).
pub struct TorrentHasher {
    builder: TorrentBuilder,
    layout: Layout,
    piece_length: u32,
    /// The file now being fed, and how much of it has been.
    file: usize,
    file_fed: u64,
    v1: Option<V1Hasher>,
    v2: Option<V2Hasher>,
}

/// SHA-1 over the concatenated stream of files and pads.
struct V1Hasher {
    piece: Sha1,
    piece_fill: u64,
    pieces: Vec<u8>,
}

/// SHA-256 leaves per file, rolled up piece by piece into piece layers and roots. Holds one
/// hash per piece of the current file, never the whole tree.
struct V2Hasher {
    block: Sha256,
    block_fill: u32,
    blocks_per_piece: u32,
    /// The subtree of the piece being hashed, and how many leaves it has.
    piece: merkle::RootBuilder,
    piece_blocks: u32,
    /// The current file's completed piece hashes.
    layer: Vec<Sha256Hash>,
    /// Per file: (pieces root, piece layer); `None` for empty files. The layer is empty for
    /// files of one piece or less, whose root is their only hash.
    done: Vec<Option<(Sha256Hash, Vec<Sha256Hash>)>>,
}

impl TorrentHasher {
    fn new(builder: TorrentBuilder, layout: Layout, piece_length: u32) -> Self {
        let v1 = builder.version.has_v1().then(|| V1Hasher {
            piece: Sha1::new(),
            piece_fill: 0,
            pieces: Vec::with_capacity(
                (layout.total_size.div_ceil(u64::from(piece_length)) * 20) as usize,
            ),
        });
        let v2 = builder.version.has_v2().then(|| V2Hasher {
            block: Sha256::new(),
            block_fill: 0,
            blocks_per_piece: piece_length / BLOCK_SIZE,
            piece: merkle::RootBuilder::new(),
            piece_blocks: 0,
            layer: Vec::new(),
            done: Vec::with_capacity(builder.files.len()),
        });
        let mut hasher = Self {
            builder,
            layout,
            piece_length,
            file: 0,
            file_fed: 0,
            v1,
            v2,
        };
        hasher.skip_finished_files();
        hasher
    }

    /// The files in the order their data must be fed.
    pub fn files(&self) -> &[NewFile] {
        &self.builder.files
    }

    /// The piece length in use.
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// Feeds the next bytes of the files' content, in [`files`](Self::files) order. A chunk may
    /// span the end of one file and the start of the next.
    pub fn update(&mut self, mut data: &[u8]) -> Result<(), CreateError> {
        while !data.is_empty() {
            let Some(file) = self.builder.files.get(self.file) else {
                return Err(CreateError::TooMuchData);
            };
            let room = file.size - self.file_fed;
            let take = room.min(data.len() as u64) as usize;
            let (chunk, rest) = data.split_at(take);
            if let Some(v1) = &mut self.v1 {
                v1.update(chunk, self.piece_length);
            }
            if let Some(v2) = &mut self.v2 {
                v2.update(chunk);
            }
            self.file_fed += take as u64;
            data = rest;
            self.skip_finished_files();
        }
        Ok(())
    }

    /// Closes every file whose data is complete (empty files at once).
    fn skip_finished_files(&mut self) {
        while let Some(file) = self.builder.files.get(self.file) {
            if self.file_fed < file.size {
                return;
            }
            let pad = self.layout.pads[self.file];
            if let Some(v1) = &mut self.v1 {
                v1.pad(pad, self.piece_length);
            }
            if let Some(v2) = &mut self.v2 {
                v2.finish_file(file.size);
            }
            self.file += 1;
            self.file_fed = 0;
        }
    }

    /// Builds the .torrent once every file's data has been fed.
    pub fn finish(mut self) -> Result<CreatedTorrent, CreateError> {
        if let Some(file) = self.builder.files.get(self.file) {
            return Err(CreateError::MissingData {
                file: file.path.join("/"),
                missing: file.size - self.file_fed,
            });
        }
        if let Some(v1) = &mut self.v1 {
            v1.flush();
        }
        let info = self.info_dict();
        let info_bytes = info.to_vec();
        let info_hashes = InfoHashes::from_parts(
            self.v1.is_some().then(|| InfoHashV1::of_info(&info_bytes)),
            self.v2.is_some().then(|| InfoHashV2::of_info(&info_bytes)),
        )
        // A builder always has v1, v2 or both.
        .expect("a torrent has at least one version");
        let b = &self.builder;
        let mut torrent = OwnedValue::dict();
        if let Some(first) = b.trackers.iter().flatten().next() {
            torrent.insert("announce", first.as_str());
        }
        if b.trackers.iter().flatten().count() > 1 {
            let tiers = b
                .trackers
                .iter()
                .map(|t| OwnedValue::List(t.iter().map(|u| u.as_str().into()).collect()));
            torrent.insert("announce-list", OwnedValue::List(tiers.collect()));
        }
        if !b.web_seeds.is_empty() {
            torrent.insert(
                "url-list",
                OwnedValue::List(b.web_seeds.iter().map(|u| u.as_str().into()).collect()),
            );
        }
        if let Some(c) = &b.comment {
            torrent.insert("comment", c.as_str());
        }
        if let Some(c) = &b.created_by {
            torrent.insert("created by", c.as_str());
        }
        if let Some(d) = b.creation_date {
            torrent.insert("creation date", d);
        }
        if let Some(v2) = &self.v2 {
            let mut layers = OwnedValue::dict();
            for (root, layer) in v2.done.iter().flatten() {
                if layer.len() > 1 {
                    let hashes: Vec<u8> = layer.iter().flat_map(|h| h.0).collect();
                    layers.insert(Bytes::copy_from_slice(&root.0), hashes);
                }
            }
            torrent.insert("piece layers", layers);
        }
        let mut out = Vec::with_capacity(info_bytes.len() + 256);
        // Splice the info bytes in as they were hashed.
        if let OwnedValue::Dict(mut map) = torrent {
            map.insert(Bytes::from_static(b"info"), OwnedValue::Int(0));
            out.push(b'd');
            for (k, v) in &map {
                crate::bencode::write_bytes(&mut out, k);
                if &k[..] == b"info" {
                    out.extend_from_slice(&info_bytes);
                } else {
                    v.encode(&mut out);
                }
            }
            out.push(b'e');
        }
        Ok(CreatedTorrent {
            bytes: out,
            info_hashes,
        })
    }

    fn info_dict(&self) -> OwnedValue {
        let b = &self.builder;
        let mut info = OwnedValue::dict();
        info.insert("name", b.name.as_str());
        info.insert("piece length", i64::from(self.piece_length));
        if b.private {
            info.insert("private", 1);
        }
        if let Some(v1) = &self.v1 {
            info.insert("pieces", v1.pieces.clone());
            if b.single_file {
                info.insert("length", b.files[0].size as i64);
                if let Some(attr) = attr(&b.files[0]) {
                    info.insert("attr", attr);
                }
            } else {
                info.insert("files", OwnedValue::List(self.v1_file_list()));
            }
        }
        if let Some(v2) = &self.v2 {
            info.insert("meta version", 2);
            info.insert("file tree", self.file_tree(v2));
        }
        info
    }

    fn v1_file_list(&self) -> Vec<OwnedValue> {
        let b = &self.builder;
        let mut list = Vec::with_capacity(b.files.len() * 2);
        for (file, &pad) in b.files.iter().zip(&self.layout.pads) {
            let mut entry = OwnedValue::dict();
            entry.insert("length", file.size as i64);
            let path = if b.single_file {
                vec![b.name.clone()]
            } else {
                file.path.clone()
            };
            entry.insert(
                "path",
                OwnedValue::List(path.into_iter().map(OwnedValue::from).collect()),
            );
            if let Some(attr) = attr(file) {
                entry.insert("attr", attr);
            }
            list.push(entry);
            if pad > 0 {
                let mut entry = OwnedValue::dict();
                entry.insert("attr", "p");
                entry.insert("length", pad as i64);
                entry.insert(
                    "path",
                    OwnedValue::List(vec![".pad".into(), pad.to_string().into()]),
                );
                list.push(entry);
            }
        }
        list
    }

    fn file_tree(&self, v2: &V2Hasher) -> OwnedValue {
        let b = &self.builder;
        let mut tree = OwnedValue::dict();
        for (file, done) in b.files.iter().zip(&v2.done) {
            let mut leaf = OwnedValue::dict();
            leaf.insert("length", file.size as i64);
            if let Some((root, _)) = done {
                leaf.insert("pieces root", Bytes::copy_from_slice(&root.0));
            }
            if let Some(attr) = attr(file) {
                leaf.insert("attr", attr);
            }
            let mut node = OwnedValue::dict();
            node.insert("", leaf);
            let path = if b.single_file {
                std::slice::from_ref(&b.name)
            } else {
                &file.path[..]
            };
            insert_path(&mut tree, path, node);
        }
        tree
    }
}

/// Places `node` at `path` in a nested dictionary, creating directories on the way.
fn insert_path(tree: &mut OwnedValue, path: &[String], node: OwnedValue) {
    let OwnedValue::Dict(map) = tree else { return };
    match path {
        [] => {}
        [last] => {
            map.insert(Bytes::copy_from_slice(last.as_bytes()), node);
        }
        [dir, rest @ ..] => {
            let child = map
                .entry(Bytes::copy_from_slice(dir.as_bytes()))
                .or_insert_with(OwnedValue::dict);
            insert_path(child, rest, node);
        }
    }
}

fn attr(file: &NewFile) -> Option<&'static str> {
    match (file.executable, file.hidden) {
        (false, false) => None,
        (true, false) => Some("x"),
        (false, true) => Some("h"),
        (true, true) => Some("hx"),
    }
}

/// Zeros to feed for pad files.
static ZEROS: [u8; BLOCK_SIZE as usize] = [0; BLOCK_SIZE as usize];

impl V1Hasher {
    fn update(&mut self, mut data: &[u8], piece_length: u32) {
        while !data.is_empty() {
            let room = u64::from(piece_length) - self.piece_fill;
            let take = room.min(data.len() as u64) as usize;
            self.piece.update(&data[..take]);
            self.piece_fill += take as u64;
            data = &data[take..];
            if self.piece_fill == u64::from(piece_length) {
                self.flush();
            }
        }
    }

    fn pad(&mut self, mut len: u64, piece_length: u32) {
        while len > 0 {
            let take = len.min(ZEROS.len() as u64) as usize;
            self.update(&ZEROS[..take], piece_length);
            len -= take as u64;
        }
    }

    fn flush(&mut self) {
        if self.piece_fill > 0 {
            let digest = std::mem::take(&mut self.piece).finalize();
            self.pieces.extend_from_slice(&digest);
            self.piece_fill = 0;
        }
    }
}

impl V2Hasher {
    fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = (BLOCK_SIZE - self.block_fill) as usize;
            let take = room.min(data.len());
            self.block.update(&data[..take]);
            self.block_fill += take as u32;
            data = &data[take..];
            if self.block_fill == BLOCK_SIZE {
                self.flush_block();
            }
        }
    }

    fn flush_block(&mut self) {
        let digest = std::mem::take(&mut self.block).finalize();
        self.piece.push(Sha256Hash(digest.into()));
        self.block_fill = 0;
        self.piece_blocks += 1;
        if self.piece_blocks == self.blocks_per_piece {
            self.flush_piece();
        }
    }

    fn flush_piece(&mut self) {
        let piece = std::mem::take(&mut self.piece);
        if let Some(hash) = piece.finish() {
            self.layer.push(hash);
        }
        self.piece_blocks = 0;
    }

    fn finish_file(&mut self, size: u64) {
        if self.block_fill > 0 {
            self.flush_block();
        }
        if size == 0 {
            self.done.push(None);
            return;
        }
        let root = if self.layer.is_empty() {
            // One piece or less: the tree is padded only to a power of two of its own blocks.
            std::mem::take(&mut self.piece).finish()
        } else {
            if self.piece_blocks > 0 {
                // The last piece's subtree is padded with zero leaves to a whole piece.
                while self.piece_blocks < self.blocks_per_piece {
                    self.piece.push(Sha256Hash::default());
                    self.piece_blocks += 1;
                }
                self.flush_piece();
            }
            let pad = merkle::pad_hash(self.blocks_per_piece.trailing_zeros());
            Some(merkle::root_from_layer(&self.layer, pad))
        };
        self.piece_blocks = 0;
        let layer = std::mem::take(&mut self.layer);
        // A non-empty file has at least one block, so there is a root.
        self.done.push(root.map(|root| (root, layer)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bencode::{self, Mode};
    use crate::merkle::MerkleTree;
    use proptest::prelude::*;

    fn make(builder: TorrentBuilder, data: &[u8], chunk: usize) -> CreatedTorrent {
        let mut hasher = builder.into_hasher().unwrap();
        for c in data.chunks(chunk.max(1)) {
            hasher.update(c).unwrap();
        }
        hasher.finish().unwrap()
    }

    fn info_of(torrent: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let v = bencode::decode(torrent, Mode::Strict).expect("created torrents are canonical");
        let info = v.as_dict().unwrap().get("info").unwrap();
        (
            info.raw().to_vec(),
            info.as_dict()
                .unwrap()
                .get_bytes("pieces")
                .unwrap_or_default()
                .to_vec(),
        )
    }

    fn root_of(torrent: &[u8], path: &[&str]) -> Sha256Hash {
        let v = bencode::decode(torrent, Mode::Strict).unwrap();
        let mut node = v
            .as_dict()
            .unwrap()
            .get_dict("info")
            .unwrap()
            .get_dict("file tree")
            .unwrap();
        for c in path {
            node = node.get_dict(c).unwrap();
        }
        Sha256Hash::from_slice(node.get_dict("").unwrap().get_bytes("pieces root").unwrap())
            .unwrap()
    }

    #[test]
    fn known_pieces_roots() {
        for (size, piece_length, root) in [
            (
                65_536,
                16_384,
                "60aae9c7b428f87e0713e88229e18f0adf12cd7b22a0dd8a92bb2485eb7af242",
            ),
            (
                65_536,
                65_536,
                "60aae9c7b428f87e0713e88229e18f0adf12cd7b22a0dd8a92bb2485eb7af242",
            ),
            (
                1 << 20,
                16_384,
                "515ea9181744b817744ded9d2e8e9dc6a8450c0b0c52e24b5077f302ffbd9008",
            ),
            (
                1 << 20,
                262_144,
                "515ea9181744b817744ded9d2e8e9dc6a8450c0b0c52e24b5077f302ffbd9008",
            ),
        ] {
            let mut b = TorrentBuilder::single_file("zeros", size as u64);
            b.set_piece_length(piece_length)
                .set_version(TorrentVersion::V2);
            let t = make(b, &vec![0; size], 10_000);
            assert_eq!(
                root_of(&t.bytes, &["zeros"]).to_hex(),
                root,
                "{size} bytes, pieces of {piece_length}"
            );
        }
    }

    #[test]
    fn hybrid_pads_align_files_and_v1_hashes_cover_the_pads() {
        let mut b = TorrentBuilder::multi_file("d");
        b.add_file(vec!["a".into()], 20_000);
        b.add_file(vec!["b".into()], 0);
        b.add_file(vec!["c".into()], 16_384);
        b.add_file(vec!["e".into()], 5);
        b.set_piece_length(16_384);
        let data: Vec<u8> = (0..36_389u32).map(|i| (i % 251) as u8).collect();
        let t = make(b, &data, 777);
        let (_, pieces) = info_of(&t.bytes);
        // Stream: a (20000) + pad 12768 + c (16384) + e (5) + pad 16379 = 4 pieces.
        let mut stream = data[..20_000].to_vec();
        stream.resize(32_768, 0);
        stream.extend_from_slice(&data[20_000..36_384]);
        stream.extend_from_slice(&data[36_384..]);
        stream.resize(65_536, 0);
        let expected: Vec<u8> = stream
            .chunks(16_384)
            .flat_map(|p| crate::Sha1Hash::digest(p).0)
            .collect();
        assert_eq!(pieces, expected);
        let v = bencode::decode(&t.bytes, Mode::Strict).unwrap();
        let files = v
            .as_dict()
            .unwrap()
            .get_dict("info")
            .unwrap()
            .get_list("files")
            .unwrap();
        let pads: Vec<(i64, Option<&str>)> = files
            .iter()
            .map(|f| {
                (
                    f.as_dict().unwrap().get_int("length").unwrap(),
                    f.as_dict().unwrap().get_str("attr"),
                )
            })
            .collect();
        assert_eq!(
            pads,
            [
                (20_000, None),
                (12_768, Some("p")),
                (0, None),
                (16_384, None),
                (5, None),
                (16_379, Some("p"))
            ]
        );
    }

    #[test]
    fn single_file_hybrid_has_no_pad() {
        let mut b = TorrentBuilder::single_file("f", 70_000);
        b.set_piece_length(16_384);
        let t = make(b, &[1; 70_000], 4096);
        let v = bencode::decode(&t.bytes, Mode::Strict).unwrap();
        let info = v.as_dict().unwrap().get_dict("info").unwrap();
        assert_eq!(info.get_int("length"), Some(70_000));
        assert!(info.get("files").is_none());
        let pieces = info.get_bytes("pieces").unwrap();
        assert_eq!(pieces.len(), 5 * 20);
        // The last piece is hashed as it is, not padded.
        assert_eq!(
            pieces[80..],
            crate::Sha1Hash::digest(&[1; 70_000 - 4 * 16_384]).0
        );
    }

    #[test]
    fn v2_file_order_is_path_order() {
        let mut b = TorrentBuilder::multi_file("d");
        b.add_file(vec!["z".into()], 1);
        b.add_file(vec!["a".into(), "b".into()], 2);
        b.add_file(vec!["a".into(), "a".into()], 3);
        let hasher = b.into_hasher().unwrap();
        let order: Vec<String> = hasher.files().iter().map(|f| f.path.join("/")).collect();
        assert_eq!(order, ["a/a", "a/b", "z"]);
    }

    #[test]
    fn descriptions_that_cannot_be_made_are_refused() {
        let mut b = TorrentBuilder::multi_file("d");
        b.add_file(vec!["a".into()], 1);
        b.add_file(vec!["a".into(), "b".into()], 1);
        assert_eq!(
            b.into_hasher().err(),
            Some(CreateError::PathConflict("a".into()))
        );
        let mut b = TorrentBuilder::multi_file("d");
        b.add_file(vec!["..".into()], 1);
        assert_eq!(
            b.into_hasher().err(),
            Some(CreateError::InvalidPathComponent("..".into()))
        );
        assert_eq!(
            TorrentBuilder::multi_file("d").into_hasher().err(),
            Some(CreateError::NoFiles)
        );
        assert_eq!(
            TorrentBuilder::single_file("", 1).into_hasher().err(),
            Some(CreateError::EmptyName)
        );
        assert_eq!(
            TorrentBuilder::single_file("e", 0).into_hasher().err(),
            Some(CreateError::EmptyContent)
        );
        for bad in [0, 1000, 8192, 49_152] {
            let mut b = TorrentBuilder::single_file("f", 1);
            b.set_piece_length(bad);
            assert_eq!(
                b.into_hasher().err(),
                Some(CreateError::InvalidPieceLength(bad.into()))
            );
        }
        let mut h = TorrentBuilder::single_file("f", 3).into_hasher().unwrap();
        h.update(b"ab").unwrap();
        assert!(matches!(h.update(b"cd"), Err(CreateError::TooMuchData)));
        let mut h = TorrentBuilder::single_file("f", 3).into_hasher().unwrap();
        h.update(b"a").unwrap();
        assert_eq!(
            h.finish().err(),
            Some(CreateError::MissingData {
                file: String::new(),
                missing: 2
            })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn output_does_not_depend_on_chunking_and_layers_match_the_tree(
            sizes in proptest::collection::vec(0u64..200_000, 1..5),
            piece_shift in 0u32..3,
            chunk_a in 1usize..70_000,
            chunk_b in 1usize..70_000,
        ) {
            let piece_length = 16_384u32 << piece_shift;
            let mut b = TorrentBuilder::multi_file("d");
            for (i, s) in sizes.iter().enumerate() {
                b.add_file(vec![format!("f{i}")], *s);
            }
            b.set_piece_length(piece_length);
            let total: u64 = sizes.iter().sum();
            prop_assume!(total > 0);
            let data: Vec<u8> = (0..total).map(|i| (i * 31 % 256) as u8).collect();
            let one = make(b.clone(), &data, chunk_a);
            let two = make(b, &data, chunk_b);
            prop_assert_eq!(&one.bytes, &two.bytes);
            // Each file's root and piece layer equal those of its full merkle tree.
            let v = bencode::decode(&one.bytes, Mode::Strict).unwrap();
            let layers = v.as_dict().unwrap().get_dict("piece layers").unwrap();
            let mut offset = 0usize;
            for (i, s) in sizes.iter().enumerate() {
                let file = &data[offset..offset + *s as usize];
                offset += *s as usize;
                if file.is_empty() {
                    continue;
                }
                let tree = MerkleTree::from_data(file).unwrap();
                let name = format!("f{i}");
                prop_assert_eq!(root_of(&one.bytes, &[&name]), tree.root());
                let height = merkle::piece_height(piece_length).unwrap();
                let expected: Vec<u8> = tree.piece_layer(height).unwrap_or_default().iter().flat_map(|h| h.0).collect();
                let got = layers.get_raw(&tree.root().0).and_then(|l| l.as_bytes()).unwrap_or_default();
                prop_assert_eq!(got, expected);
            }
        }
    }
}
