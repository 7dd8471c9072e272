use bytes::Bytes;

use super::TorrentId;
use crate::verify::PieceCheck;
use crate::PieceIndex;

/// A disk job, numbered so its completion can be matched.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct DiskJobId(pub u64);

/// Work for the driver's blocking pool.
#[derive(Debug, Clone, PartialEq)]
pub struct DiskJob {
    /// The job's number, echoed in its [`DiskCompletion`].
    pub id: DiskJobId,
    /// The torrent whose files it touches.
    pub torrent: TorrentId,
    /// What to do.
    pub kind: DiskJobKind,
}

/// What a [`DiskJob`] does.
#[derive(Debug, Clone, PartialEq)]
pub enum DiskJobKind {
    /// Verify a downloaded piece with `check` and, only if it passes, write it.
    /// Answer [`DiskResult::PieceWritten`] (or [`DiskResult::Failed`] if writing failed).
    WritePiece {
        /// The piece.
        piece: PieceIndex,
        /// Its bytes, as consecutive blocks from offset 0.
        blocks: Vec<Bytes>,
        /// What it must hash to.
        check: PieceCheck,
    },
    /// Read part of a piece (to upload it). Answer [`DiskResult::Read`].
    Read {
        /// The piece.
        piece: PieceIndex,
        /// Where in the piece.
        offset: u32,
        /// How many bytes.
        len: u32,
    },
    /// Read a whole piece and verify it (checking files on start or on demand). A missing
    /// or short file is not an error: the piece just fails. Answer [`DiskResult::Checked`].
    CheckPiece {
        /// The piece.
        piece: PieceIndex,
        /// What it must hash to.
        check: PieceCheck,
    },
    /// Read a whole v2 piece and hash its 16 KiB blocks into BEP52 leaves
    /// ([`piece_leaves`](crate::merkle::piece_leaves)), to answer a peer's request for
    /// them. Answer [`DiskResult::Leaves`].
    ReadLeaves {
        /// The piece.
        piece: PieceIndex,
        /// The piece's length.
        len: u32,
        /// How many of its bytes are the file's data (the rest is pad).
        data_len: u32,
        /// How many leaves the piece's subtree has.
        count: u32,
    },
    /// Create the torrent's empty files (no piece covers them). Answer [`DiskResult::Done`].
    CreateEmptyFiles,
}

/// A finished [`DiskJob`].
#[derive(Debug, Clone, PartialEq)]
pub struct DiskCompletion {
    /// The job's number.
    pub id: DiskJobId,
    /// The job's torrent.
    pub torrent: TorrentId,
    /// How it went.
    pub result: DiskResult,
}

/// The outcome of a [`DiskJob`].
#[derive(Debug, Clone, PartialEq)]
pub enum DiskResult {
    /// `WritePiece`: whether the piece passed its check (and so was written).
    PieceWritten {
        /// The piece.
        piece: PieceIndex,
        /// Whether it passed (if not, nothing was written).
        passed: bool,
    },
    /// `Read`: the bytes.
    Read {
        /// The piece.
        piece: PieceIndex,
        /// Where in the piece.
        offset: u32,
        /// The bytes read.
        data: Bytes,
    },
    /// `ReadLeaves`: the piece's leaf hashes.
    Leaves {
        /// The piece.
        piece: PieceIndex,
        /// One per block of the piece's subtree.
        leaves: Vec<crate::Sha256Hash>,
    },
    /// `CheckPiece`: whether the piece on disk passed.
    Checked {
        /// The piece.
        piece: PieceIndex,
        /// Whether it passed.
        passed: bool,
    },
    /// A job without a result of its own finished.
    Done,
    /// The job failed (an I/O error other than a missing file while checking).
    Failed {
        /// What failed, in words.
        error: String,
    },
}
