//! Torrent metainfo: what a .torrent file (or the info dictionary fetched for a magnet link)
//! says about a torrent.
//!
//! [`TorrentInfo`] reads v1 (BEP3), v2 (BEP52) and hybrid torrents, with trackers (BEP12),
//! web seeds (BEP19, BEP17), the private flag (BEP27) and file attributes and pad files
//! (BEP47). Its [`FileStorage`] lays the files end to end and maps pieces to files.
//!
//! The rules follow libtorrent 2.0, so that what it accepts loads here too, and what it
//! refuses is refused here:
//!
//! - The info-hashes are the SHA-1 (v1) and SHA-256 (v2) of the info dictionary's bytes
//!   *as written*, never of a re-encoding.
//! - A torrent with `meta version` 2 must have canonical bencode in its info dictionary.
//! - Every name is sanitised ([`sanitize_component`]): no path can leave the torrent's
//!   directory. Files whose paths collide are renamed `name.1.ext`.
//! - v2 files are aligned to piece boundaries by pad files ([`PadKind::Synthesized`]) placed
//!   where libtorrent places them. A hybrid torrent's v1 list must describe the same files
//!   as its v2 tree, aligned the same way; its [`FileStorage`] is the v1 list.
//! - `piece layers` are checked against each file's `pieces root` when loaded; missing ones
//!   may be supplied later ([`TorrentInfo::set_piece_layer`]).
//! - Sizes are bounded ([`LoadLimits`]) so a hostile torrent cannot exhaust memory.

mod error;
mod parse;
mod sanitize;
mod storage;

use std::fmt;
use std::ops::Range;

use bytes::Bytes;

use crate::bencode::{self, Dict, Mode, Value};
use crate::merkle;
use crate::{FileIndex, InfoHashV1, InfoHashV2, InfoHashes, PieceIndex, Sha1Hash, Sha256Hash};

pub use error::MetainfoError;
pub use parse::{MAX_FILE_SIZE, MAX_PIECE_LENGTH};
pub use sanitize::{sanitize_component, MAX_COMPONENT_LEN};
pub use storage::{FileEntry, FileSlice, FileStorage, PadKind};

/// Bounds on what loading a torrent may build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// Limits for the bencode decoder (nesting depth, number of values).
    pub bencode: bencode::Limits,
    /// The most pieces a torrent may have (libtorrent's default: 0x200000).
    pub max_pieces: u32,
    /// The most files a torrent may have, pad files included (at most `u32::MAX`, the
    /// largest [`FileIndex`]).
    pub max_files: usize,
    /// The deepest a v2 `file tree` may nest directories (libtorrent: 100).
    pub max_file_tree_depth: usize,
    /// The most files that may be renamed because their paths collide.
    pub max_duplicate_renames: usize,
}

impl Default for LoadLimits {
    fn default() -> Self {
        Self {
            bencode: bencode::Limits::default(),
            max_pieces: 0x20_0000,
            max_files: 1_000_000,
            max_file_tree_depth: 100,
            max_duplicate_renames: 100,
        }
    }
}

impl LoadLimits {
    /// [`max_files`](Self::max_files), capped so every file has a [`FileIndex`].
    fn file_limit(&self) -> usize {
        self.max_files.min(u32::MAX as usize)
    }
}

/// A parsed torrent: its info dictionary (names, files, piece hashes) and what the .torrent
/// says around it (trackers, web seeds, comment, v2 piece layers).
///
/// ```
/// use fxtor_proto::{PieceIndex, TorrentInfo};
///
/// let torrent = b"d8:announce20:http://t.example/ann4:infod6:lengthi20000e4:name9:hello.txt\
///     12:piece lengthi16384e6:pieces40:0123456789012345678901234567890123456789ee";
/// let info = TorrentInfo::from_bytes(torrent).unwrap();
/// assert_eq!(info.name(), "hello.txt");
/// assert_eq!(info.num_pieces(), 2);
/// assert_eq!(info.piece_size(PieceIndex(1)), 20000 - 16384);
/// assert_eq!(info.trackers(), [vec!["http://t.example/ann".to_string()]]);
/// assert!(info.info_hashes().has_v1() && !info.info_hashes().has_v2());
/// assert!(!info.is_multi_file());
/// assert_eq!(info.files().file(fxtor_proto::FileIndex(0)).unwrap().path_string(), "hello.txt");
/// ```
#[derive(Clone)]
pub struct TorrentInfo {
    info_bytes: Bytes,
    info_hashes: InfoHashes,
    name: String,
    files: FileStorage,
    multi_file: bool,
    private: bool,
    /// Where the v1 piece hashes are in `info_bytes`.
    v1_pieces: Option<Range<usize>>,
    /// The v2 piece layer of each file, by file index (empty for v1 torrents).
    piece_layers: Vec<Option<Box<[Sha256Hash]>>>,
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    http_seeds: Vec<String>,
    dht_nodes: Vec<(String, u16)>,
    comment: Option<String>,
    created_by: Option<String>,
    creation_date: Option<i64>,
}

impl fmt::Debug for TorrentInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TorrentInfo")
            .field("name", &self.name)
            .field("info_hashes", &self.info_hashes)
            .field("num_files", &self.files.num_files())
            .field("total_size", &self.files.total_size())
            .field("piece_length", &self.files.piece_length())
            .field("private", &self.private)
            .finish_non_exhaustive()
    }
}

impl TorrentInfo {
    /// Reads a .torrent file, with default [`LoadLimits`].
    pub fn from_bytes(torrent: &[u8]) -> Result<Self, MetainfoError> {
        Self::from_bytes_with(torrent, &LoadLimits::default())
    }

    /// Reads a .torrent file. Bytes after the top-level dictionary are ignored, as libtorrent
    /// does (several published torrents end with a newline).
    pub fn from_bytes_with(torrent: &[u8], limits: &LoadLimits) -> Result<Self, MetainfoError> {
        let (document, _) = bencode::decode_prefix(torrent, Mode::Lenient, limits.bencode)?;
        let dict = document.as_dict().ok_or(MetainfoError::NotADictionary)?;
        let info = dict.get("info").ok_or(MetainfoError::MissingKey("info"))?;
        let mut torrent = Self::from_info_value(info, limits)?;
        if torrent.info_hashes.has_v2() {
            if let Some(layers) = dict.get("piece layers") {
                let layers = layers.as_dict().ok_or(MetainfoError::WrongType {
                    key: "piece layers",
                    expected: "a dictionary",
                })?;
                torrent.set_piece_layers(layers)?;
            }
        }
        torrent.read_extras(dict);
        Ok(torrent)
    }

    /// Reads a bare info dictionary (as fetched for a magnet link), with default
    /// [`LoadLimits`]. A v2 torrent then lacks its piece layers until they are supplied.
    pub fn from_info_bytes(info: &[u8]) -> Result<Self, MetainfoError> {
        Self::from_info_bytes_with(info, &LoadLimits::default())
    }

    /// Reads a bare info dictionary, which must fill `info` exactly.
    pub fn from_info_bytes_with(info: &[u8], limits: &LoadLimits) -> Result<Self, MetainfoError> {
        let document = bencode::decode_with(info, Mode::Lenient, limits.bencode)?;
        Self::from_info_value(document.root(), limits)
    }

    fn from_info_value(info: Value<'_>, limits: &LoadLimits) -> Result<Self, MetainfoError> {
        let dict = info.as_dict().ok_or(MetainfoError::WrongType {
            key: "info",
            expected: "a dictionary",
        })?;
        let raw = info.raw();

        let version = dict.get_int("meta version");
        if let Some(version) = version.filter(|&v| v > 0) {
            if version > 2 {
                return Err(MetainfoError::UnknownVersion(version));
            }
            // The lenient decode noted whether the dictionary is canonical; only when it is
            // not is it decoded again, strictly, for the error to say what and where.
            if !info.is_canonical() {
                bencode::decode_with(raw, Mode::Strict, limits.bencode)
                    .map_err(MetainfoError::NonCanonicalInfo)?;
            }
        }
        let v2 = version == Some(2);
        let piece_length = parse::piece_length(dict, v2)?;

        let raw_name = dict
            .get_bytes("name.utf-8")
            .or_else(|| dict.get_bytes("name"))
            .ok_or(MetainfoError::MissingName)?;
        let name = sanitize_component(raw_name);

        let file_tree = match dict.get("file tree") {
            Some(tree) => match tree.as_dict() {
                Some(tree) if v2 => Some(tree),
                Some(_) => return Err(MetainfoError::FileTreeWithoutVersion),
                None if v2 => {
                    return Err(MetainfoError::WrongType {
                        key: "file tree",
                        expected: "a dictionary",
                    })
                }
                None => None,
            },
            None if v2 => return Err(MetainfoError::MissingKey("file tree")),
            None => None,
        };

        // The v1 view: a `files` list, or a single file named `name` (required without v2),
        // read before the v2 tree. Beside a tree, which gives the files, it is only checked
        // against the tree, so its files are not built.
        let files_list = match dict.get("files") {
            Some(list) => Some(list.as_list().ok_or(MetainfoError::WrongType {
                key: "files",
                expected: "a list",
            })?),
            None => None,
        };
        let v1_multi = files_list.is_some();
        let (files, multi_file) = match file_tree {
            None => {
                let files = match files_list {
                    Some(list) => parse::v1_files(list, limits)?,
                    None => vec![parse::v1_single_file(dict, &name)?],
                };
                (files, v1_multi)
            }
            Some(tree) => {
                let listing = match files_list {
                    Some(list) => Some(parse::v1_listing(list, limits)?),
                    None if dict.get("length").is_some() => {
                        let file = parse::v1_single_file(dict, &name)?;
                        Some(parse::V1Listing::of(&[file]))
                    }
                    None => None,
                };
                let tree = parse::file_tree(tree, limits)?;
                match listing {
                    Some(v1) => (
                        parse::hybrid_layout(&v1, tree.files, piece_length, limits)?,
                        v1_multi,
                    ),
                    None => (
                        parse::v2_layout(tree.files, piece_length, limits)?,
                        !tree.single_file,
                    ),
                }
            }
        };
        let has_v1 = !v2 || dict.get("files").is_some() || dict.get("length").is_some();

        if files.is_empty() {
            return Err(MetainfoError::NoFiles);
        }
        if files.len() > limits.file_limit() {
            return Err(MetainfoError::TooManyFiles {
                max: limits.file_limit(),
            });
        }
        let total_size = files
            .iter()
            .try_fold(0u64, |sum, f| sum.checked_add(f.size))
            .ok_or(MetainfoError::SizeOverflow)?;
        if total_size == 0 {
            return Err(MetainfoError::EmptyTorrent);
        }
        let num_pieces = total_size.div_ceil(u64::from(piece_length));
        if num_pieces > u64::from(limits.max_pieces) {
            return Err(MetainfoError::TooManyPieces {
                pieces: num_pieces,
                max: limits.max_pieces,
            });
        }

        let v1_pieces = match dict.get("pieces") {
            Some(pieces) => {
                let hashes = pieces.as_bytes().ok_or(MetainfoError::WrongType {
                    key: "pieces",
                    expected: "a string",
                })?;
                let expected = num_pieces * 20;
                if hashes.len() as u64 != expected {
                    return Err(MetainfoError::PiecesLength {
                        expected,
                        got: hashes.len(),
                    });
                }
                // The string's bytes are the tail of its raw encoding (`<len>:<bytes>`).
                let start = pieces.offset() - info.offset() + pieces.raw().len() - hashes.len();
                Some(start..start + hashes.len())
            }
            None if !v2 => return Err(MetainfoError::MissingKey("pieces")),
            None => None,
        };

        let info_hashes = InfoHashes::from_parts(
            has_v1.then(|| InfoHashV1::of_info(raw)),
            v2.then(|| InfoHashV2::of_info(raw)),
        )
        .ok_or(MetainfoError::MissingKey("files"))?;

        let mut files = FileStorage::new(files, piece_length);
        let mut paths: Vec<Option<&mut String>> = files
            .files
            .iter_mut()
            .map(|f| (!f.is_pad()).then_some(&mut f.path))
            .collect();
        sanitize::Deduplicator {
            max_renames: limits.max_duplicate_renames,
        }
        .run(&mut paths)
        .map_err(|_| MetainfoError::TooManyDuplicateNames {
            max: limits.max_duplicate_renames,
        })?;

        let name = if !name.is_empty() {
            name
        } else {
            // Only a multi-file torrent gets here (a single file needs its name): name its
            // directory after the torrent, as libtorrent does.
            match (info_hashes.get_v1(), info_hashes.get_v2()) {
                (Some(v1), _) => v1.to_hex(),
                (None, Some(v2)) => v2.to_hex(),
                (None, None) => String::new(),
            }
        };
        let piece_layers = if v2 {
            vec![None; files.num_files()]
        } else {
            Vec::new()
        };

        Ok(Self {
            info_bytes: Bytes::copy_from_slice(raw),
            info_hashes,
            name,
            files,
            multi_file,
            private: dict.get_int("private").is_some_and(|p| p != 0),
            v1_pieces,
            piece_layers,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            http_seeds: Vec::new(),
            dht_nodes: Vec::new(),
            comment: None,
            created_by: None,
            creation_date: None,
        })
    }

    /// Reads what the .torrent says outside the info dictionary.
    fn read_extras(&mut self, torrent: Dict<'_>) {
        self.trackers = read_trackers(torrent);
        self.web_seeds = read_urls(torrent.get("url-list"));
        self.http_seeds = read_urls(torrent.get("httpseeds"));
        self.dht_nodes = torrent
            .get_list("nodes")
            .unwrap_or_default()
            .iter()
            .filter_map(|node| {
                let mut items = node.as_list()?.iter();
                let (host, port) = (items.next()?, items.next()?);
                Some((
                    host.as_str()?.to_owned(),
                    u16::try_from(port.as_int()?).ok()?,
                ))
            })
            .collect();
        let text = |keys: [&str; 2]| {
            keys.iter()
                .find_map(|k| torrent.get_bytes(k).filter(|b| !b.is_empty()))
                .map(|b| String::from_utf8_lossy(b).into_owned())
        };
        self.comment = text(["comment.utf-8", "comment"]);
        self.created_by = text(["created by.utf-8", "created by"]);
        self.creation_date = torrent.get_int("creation date").filter(|&d| d >= 0);
    }

    /// The torrent's name, sanitised: the file's name for a single-file torrent, the
    /// directory holding the files otherwise (if nothing usable is left of the name, the
    /// info-hash in hex).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The info-hashes: v1, v2 or both.
    ///
    /// A v2 torrent that also has a v1 file list (`files` or `length`) is named by both, as
    /// libtorrent does, even without v1 `pieces`.
    pub fn info_hashes(&self) -> InfoHashes {
        self.info_hashes
    }

    /// The info dictionary exactly as it appeared in the .torrent (what the info-hashes hash,
    /// and what ut_metadata serves).
    pub fn info_bytes(&self) -> &Bytes {
        &self.info_bytes
    }

    /// The size of every piece but the last.
    pub fn piece_length(&self) -> u32 {
        self.files.piece_length()
    }

    /// The number of pieces.
    pub fn num_pieces(&self) -> u32 {
        self.files.num_pieces()
    }

    /// The size of a piece: the piece length, less for the last piece, 0 past the end.
    pub fn piece_size(&self, piece: PieceIndex) -> u32 {
        self.files.piece_size(piece)
    }

    /// The total size of the files, pad files included.
    pub fn total_size(&self) -> u64 {
        self.files.total_size()
    }

    /// BEP27: whether peers may only come from the torrent's trackers.
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// Tracker URLs by tier (BEP12 `announce-list`, or `announce` alone): trimmed, each URL
    /// once, empty URLs and tiers dropped.
    pub fn trackers(&self) -> &[Vec<String>] {
        &self.trackers
    }

    /// BEP19 web seeds (`url-list`, a string or a list): trimmed, each once.
    pub fn web_seeds(&self) -> &[String] {
        &self.web_seeds
    }

    /// BEP17 HTTP seeds (`httpseeds`): trimmed, each once.
    pub fn http_seeds(&self) -> &[String] {
        &self.http_seeds
    }

    /// BEP5 DHT nodes the torrent suggests (`nodes`): host and port.
    pub fn dht_nodes(&self) -> &[(String, u16)] {
        &self.dht_nodes
    }

    /// The `comment`, if any (invalid UTF-8 replaced).
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// The `created by`, if any (invalid UTF-8 replaced).
    pub fn created_by(&self) -> Option<&str> {
        self.created_by.as_deref()
    }

    /// The `creation date` (seconds since the Unix epoch), if any.
    pub fn creation_date(&self) -> Option<i64> {
        self.creation_date
    }

    /// The files and their layout.
    pub fn files(&self) -> &FileStorage {
        &self.files
    }

    /// Whether the files live in a directory named [`name`](Self::name) (a multi-file
    /// torrent), rather than being one file named so.
    pub fn is_multi_file(&self) -> bool {
        self.multi_file
    }

    /// Whether the torrent has v1 piece hashes (`pieces`).
    pub fn has_v1_piece_hashes(&self) -> bool {
        self.v1_pieces.is_some()
    }

    /// The v1 SHA-1 hash of a piece.
    pub fn v1_piece_hash(&self, piece: PieceIndex) -> Option<Sha1Hash> {
        let range = self.v1_pieces.as_ref()?;
        let start = range.start.checked_add(piece.get().checked_mul(20)?)?;
        if start >= range.end {
            return None;
        }
        Sha1Hash::from_slice(self.info_bytes.get(start..start + 20)?)
    }

    /// The v2 piece layer of a file, if known: the hashes of its piece-sized subtrees. Files
    /// of at most one piece have none (their `pieces root` is their only piece hash).
    pub fn piece_layer(&self, file: FileIndex) -> Option<&[Sha256Hash]> {
        self.piece_layers.get(file.get())?.as_deref()
    }

    /// Whether a file needs a piece layer: a v2 file larger than one piece.
    pub fn needs_piece_layer(&self, file: FileIndex) -> bool {
        self.files.file(file).is_some_and(|f| {
            f.pieces_root.is_some() && f.size > u64::from(self.files.piece_length())
        })
    }

    /// Whether every file that needs a piece layer has it (always true for v1 torrents).
    pub fn has_piece_layers(&self) -> bool {
        self.files
            .iter()
            .all(|(index, _)| !self.needs_piece_layer(index) || self.piece_layer(index).is_some())
    }

    /// The v2 hash of a piece: the merkle root of its blocks, from the piece layer of the file
    /// it belongs to (or the file's `pieces root`, for a file of one piece). `None` for v1
    /// torrents, pieces past the end, and pieces whose layer is not known yet.
    pub fn v2_piece_hash(&self, piece: PieceIndex) -> Option<Sha256Hash> {
        if piece.0 >= self.num_pieces() {
            return None;
        }
        let piece_length = u64::from(self.piece_length());
        let start = u64::from(piece.0) * piece_length;
        let index = self.files.file_at_offset(start)?;
        let file = self.files.file(index)?;
        let root = file.pieces_root?;
        if file.size <= piece_length {
            return Some(root);
        }
        // v2 files start on piece boundaries, so this is the piece's place in the file.
        let in_file = (start - file.offset) / piece_length;
        self.piece_layer(index)?
            .get(usize::try_from(in_file).ok()?)
            .copied()
    }

    /// Supplies the piece layer of one file (from a peer's `hashes`, say), after checking it
    /// against the file's `pieces root`.
    pub fn set_piece_layer(
        &mut self,
        file: FileIndex,
        layer: &[Sha256Hash],
    ) -> Result<(), MetainfoError> {
        let entry = self
            .files
            .file(file)
            .ok_or(MetainfoError::NoSuchFile(file))?;
        let root = entry.pieces_root.ok_or(MetainfoError::InvalidPieceLayer {
            root: None,
            reason: "the file has no pieces root",
        })?;
        if !self.needs_piece_layer(file) {
            return Err(MetainfoError::InvalidPieceLayer {
                root: Some(root),
                reason: "the file fits in one piece and has no piece layer",
            });
        }
        self.check_piece_layer(file, root, layer)?;
        if let Some(slot) = self.piece_layers.get_mut(file.get()) {
            *slot = Some(layer.into());
        }
        Ok(())
    }

    /// Supplies piece layers as a .torrent's `piece layers` holds them: a dictionary from
    /// `pieces root` to the concatenated hashes. Every entry must belong to a file of the
    /// torrent and match its root; nothing is taken unless all do.
    pub fn set_piece_layers(&mut self, layers: Dict<'_>) -> Result<(), MetainfoError> {
        if !self.info_hashes.has_v2() || layers.is_empty() {
            return Ok(());
        }
        // Files that need a layer, sorted by root, to find an entry's files.
        let mut by_root: Vec<(Sha256Hash, FileIndex)> = self
            .files
            .iter()
            .filter_map(|(index, f)| Some((f.pieces_root?, index)))
            .collect();
        by_root.sort_unstable();
        let mut accepted: Vec<(FileIndex, Box<[Sha256Hash]>)> = Vec::new();
        for (key, value) in layers.iter() {
            let root = Sha256Hash::from_slice(key).ok_or(MetainfoError::InvalidPieceLayer {
                root: None,
                reason: "a key is not a 32-byte pieces root",
            })?;
            let invalid = |reason| MetainfoError::InvalidPieceLayer {
                root: Some(root),
                reason,
            };
            let bytes = value.as_bytes().ok_or(invalid("not a string"))?;
            if bytes.len() % Sha256Hash::LEN != 0 {
                return Err(invalid("its length is not a multiple of 32"));
            }
            let first = by_root.partition_point(|(r, _)| *r < root);
            let owners: Vec<FileIndex> = by_root[first..]
                .iter()
                .take_while(|(r, _)| *r == root)
                .map(|&(_, index)| index)
                .collect();
            if owners.is_empty() {
                return Err(invalid("it belongs to no file of the torrent"));
            }
            let layer: Box<[Sha256Hash]> = bytes
                .chunks_exact(Sha256Hash::LEN)
                .filter_map(Sha256Hash::from_slice)
                .collect();
            for owner in owners {
                // A file of one piece has no layer; an entry for it is ignored.
                if self.needs_piece_layer(owner) {
                    self.check_piece_layer(owner, root, &layer)?;
                    accepted.push((owner, layer.clone()));
                }
            }
        }
        for (file, layer) in accepted {
            if let Some(slot) = self.piece_layers.get_mut(file.get()) {
                *slot = Some(layer);
            }
        }
        Ok(())
    }

    /// Checks a piece layer's length and that it hashes up to `root`.
    fn check_piece_layer(
        &self,
        file: FileIndex,
        root: Sha256Hash,
        layer: &[Sha256Hash],
    ) -> Result<(), MetainfoError> {
        let invalid = |reason| MetainfoError::InvalidPieceLayer {
            root: Some(root),
            reason,
        };
        let size = self.files.file(file).map_or(0, FileEntry::size);
        let piece_length = self.piece_length();
        let expected = size.div_ceil(u64::from(piece_length));
        if layer.len() as u64 != expected {
            return Err(invalid("wrong number of hashes for the file's size"));
        }
        // A v2 piece length is a power of two of at least 16 KiB (checked at load).
        let height = merkle::piece_height(piece_length).ok_or(invalid("bad piece length"))?;
        if merkle::root_from_layer(layer, merkle::pad_hash(height)) != root {
            return Err(invalid("the hashes do not match the pieces root"));
        }
        Ok(())
    }
}

/// Reads BEP12 tiers, or `announce` alone.
fn read_trackers(torrent: Dict<'_>) -> Vec<Vec<String>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut tiers: Vec<Vec<String>> = Vec::new();
    for tier in torrent.get_list("announce-list").unwrap_or_default() {
        let urls: Vec<String> = tier
            .as_list()
            .unwrap_or_default()
            .iter()
            .filter_map(|url| Some(url.as_str()?.trim()))
            .filter(|url| !url.is_empty() && seen.insert(*url))
            .map(str::to_owned)
            .collect();
        if !urls.is_empty() {
            tiers.push(urls);
        }
    }
    if tiers.is_empty() {
        if let Some(url) = torrent.get_str("announce").map(str::trim) {
            if !url.is_empty() {
                tiers.push(vec![url.to_owned()]);
            }
        }
    }
    tiers
}

/// Reads a URL list that may be one string or a list of strings: trimmed, each once.
fn read_urls(value: Option<Value<'_>>) -> Vec<String> {
    let Some(value) = value else {
        return Vec::new();
    };
    // The list's items, or the value alone.
    let (list, alone) = match value.as_list() {
        Some(list) => (Some(list), None),
        None => (None, Some(value)),
    };
    let mut seen = std::collections::BTreeSet::new();
    list.into_iter()
        .flatten()
        .chain(alone)
        .filter_map(|v| v.as_str())
        .map(str::trim)
        .filter(|url| !url.is_empty() && seen.insert(*url))
        .map(str::to_owned)
        .collect()
}
