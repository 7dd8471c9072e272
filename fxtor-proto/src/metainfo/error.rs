use thiserror::Error;

use crate::bencode::DecodeError;
use crate::{FileIndex, Sha256Hash};

/// Why a .torrent file or info dictionary was refused.
///
/// Each variant names the key or the file at fault. Files are named `files[N]` (their place in
/// a v1 `files` list) or by their path in a v2 `file tree`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MetainfoError {
    /// The input is not valid bencode.
    #[error(transparent)]
    Bencode(#[from] DecodeError),
    /// The info dictionary of a torrent with a `meta version` is not canonical bencode
    /// (unsorted or repeated keys, leading zeros), which BEP52 requires.
    #[error("the info dictionary is not canonical bencode: {0}")]
    NonCanonicalInfo(DecodeError),
    /// The top level of the input is not a dictionary.
    #[error("the torrent is not a bencoded dictionary")]
    NotADictionary,
    /// A required key is absent.
    #[error("missing `{0}`")]
    MissingKey(&'static str),
    /// A key holds a value of the wrong type.
    #[error("`{key}` is not {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What it should hold.
        expected: &'static str,
    },
    /// A `meta version` this parser does not know.
    #[error("unsupported `meta version` {0}")]
    UnknownVersion(i64),
    /// A `file tree` in a torrent without `meta version` 2.
    #[error("`file tree` in a torrent without `meta version` 2")]
    FileTreeWithoutVersion,
    /// A `piece length` that is not positive, too large, or (v2) not a power of two of at
    /// least 16 KiB.
    #[error("invalid `piece length` {0}")]
    InvalidPieceLength(i64),
    /// No usable `name`: absent, not a string, or (single-file torrents, where it names the
    /// file) nothing left after sanitising.
    #[error("the torrent has no usable `name`")]
    MissingName,
    /// A file `length` that is absent, negative, not an integer or too large.
    #[error("{file}: invalid `length` {length}")]
    InvalidFileLength {
        /// The file.
        file: String,
        /// The length given (-1 when absent or not an integer).
        length: i64,
    },
    /// A file entry that is not a dictionary, or a path (or symlink path) holding something
    /// other than strings.
    #[error("{file}: {reason}")]
    InvalidFile {
        /// The file.
        file: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A file in a `files` list without a `path` (only pad files may omit it).
    #[error("{file}: missing `path`")]
    MissingPath {
        /// The file.
        file: String,
    },
    /// A torrent that lists no files.
    #[error("the torrent has no files")]
    NoFiles,
    /// More files than [`LoadLimits::max_files`](super::LoadLimits::max_files).
    #[error("more than {max} files")]
    TooManyFiles {
        /// The limit.
        max: usize,
    },
    /// A torrent whose files add up to nothing.
    #[error("the torrent's total size is zero")]
    EmptyTorrent,
    /// File sizes whose sum does not fit in 64 bits.
    #[error("the files' sizes add up to more than 2^64 bytes")]
    SizeOverflow,
    /// More pieces than [`LoadLimits::max_pieces`](super::LoadLimits::max_pieces).
    #[error("{pieces} pieces, more than the limit of {max}")]
    TooManyPieces {
        /// The number of pieces the sizes call for.
        pieces: u64,
        /// The limit.
        max: u32,
    },
    /// A `pieces` string whose length is not 20 bytes per piece.
    #[error("`pieces` holds {got} bytes, expected {expected} (20 per piece)")]
    PiecesLength {
        /// 20 × the number of pieces.
        expected: u64,
        /// The length found.
        got: usize,
    },
    /// A malformed `file tree`.
    #[error("`file tree` at `{path}`: {reason}")]
    FileTree {
        /// Where in the tree (sanitised path).
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A `file tree` nested deeper than
    /// [`LoadLimits::max_file_tree_depth`](super::LoadLimits::max_file_tree_depth).
    #[error("`file tree` nested deeper than {0} levels")]
    FileTreeTooDeep(usize),
    /// A v2 file carrying the pad attribute (v2 pads are implied, never listed).
    #[error("`file tree` entry `{path}` is marked as a pad file")]
    PadFileInTree {
        /// The file.
        path: String,
    },
    /// A non-empty v2 file whose `pieces root` is absent, not 32 bytes, or all zeros.
    #[error("{file}: {reason}")]
    InvalidPiecesRoot {
        /// The file.
        file: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A hybrid torrent whose v1 file list and v2 file tree describe different files.
    #[error("the v1 and v2 file lists disagree: {0}")]
    InconsistentFiles(String),
    /// A malformed `piece layers` entry, or one whose hashes do not match the file's root.
    #[error("`piece layers`: {reason}")]
    InvalidPieceLayer {
        /// The `pieces root` the entry is filed under, when it is 32 bytes.
        root: Option<Sha256Hash>,
        /// What is wrong.
        reason: &'static str,
    },
    /// So many files share names that renaming them was given up.
    #[error("more than {max} files renamed for duplicate paths")]
    TooManyDuplicateNames {
        /// The limit.
        max: usize,
    },
    /// A file index past the end of the file list.
    #[error("no file {0}")]
    NoSuchFile(FileIndex),
}
