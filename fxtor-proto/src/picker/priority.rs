//! Download priorities of pieces and files.

use std::fmt;
use std::ops::Range;

use crate::PieceIndex;

/// How much a piece (or file) is wanted: 0 (never download) to 7 (most wanted), as in
/// libtorrent. The picker hands out higher priorities first.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Priority(u8);

impl Priority {
    /// Do not download.
    pub const DONT_DOWNLOAD: Priority = Priority(0);
    /// The lowest priority that is still downloaded.
    pub const LOW: Priority = Priority(1);
    /// The priority every piece starts with.
    pub const DEFAULT: Priority = Priority(4);
    /// The highest priority.
    pub const TOP: Priority = Priority(7);

    /// The priority `level`, or `None` if it is above 7.
    pub const fn new(level: u8) -> Option<Priority> {
        if level <= Self::TOP.0 {
            Some(Priority(level))
        } else {
            None
        }
    }

    /// The priority `level`, with anything above 7 taken as 7.
    pub const fn saturating(level: u8) -> Priority {
        if level <= Self::TOP.0 {
            Priority(level)
        } else {
            Self::TOP
        }
    }

    /// The level, 0..=7.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// Whether pieces of this priority are downloaded at all (the level is not 0).
    pub const fn is_wanted(self) -> bool {
        self.0 != 0
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Debug for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Priority({})", self.0)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Piece priorities from file priorities.
///
/// `files` gives, for each file, the pieces it overlaps (`start..end`, end exclusive, so an
/// empty file has an empty range) and its priority. A piece shared by several files gets the
/// highest of their priorities; a piece that no file overlaps (only pad files, which the
/// caller leaves out) gets [`Priority::DONT_DOWNLOAD`]. Ranges past `num_pieces` are cut.
///
/// ```
/// use fxtor_proto::picker::{piece_priorities_from_files, Priority};
/// use fxtor_proto::PieceIndex;
///
/// // Two files sharing piece 2.
/// let files = [
///     (PieceIndex(0)..PieceIndex(3), Priority::DONT_DOWNLOAD),
///     (PieceIndex(2)..PieceIndex(5), Priority::TOP),
/// ];
/// let prios = piece_priorities_from_files(5, files);
/// assert_eq!(prios[1], Priority::DONT_DOWNLOAD);
/// assert_eq!(prios[2], Priority::TOP);
/// ```
pub fn piece_priorities_from_files(
    num_pieces: u32,
    files: impl IntoIterator<Item = (Range<PieceIndex>, Priority)>,
) -> Vec<Priority> {
    let mut prios = vec![Priority::DONT_DOWNLOAD; num_pieces as usize];
    for (range, priority) in files {
        let end = range.end.get().min(prios.len());
        let start = range.start.get().min(end);
        for p in &mut prios[start..end] {
            *p = (*p).max(priority);
        }
    }
    prios
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(Priority::new(8), None);
        assert_eq!(Priority::new(3).map(Priority::get), Some(3));
        assert_eq!(Priority::saturating(200), Priority::TOP);
        assert!(!Priority::DONT_DOWNLOAD.is_wanted());
        assert!(Priority::LOW.is_wanted());
        assert_eq!(Priority::default(), Priority::DEFAULT);
    }

    #[test]
    fn max_of_overlapping_files_wins() {
        let p = |n| Priority::new(n).unwrap();
        let files = [
            (PieceIndex(0)..PieceIndex(2), p(1)),
            (PieceIndex(1)..PieceIndex(4), p(5)),
            (PieceIndex(3)..PieceIndex(4), p(2)),
            (PieceIndex(4)..PieceIndex(4), p(7)), // empty file
            (PieceIndex(6)..PieceIndex(100), p(3)),
        ];
        let prios: Vec<u8> = piece_priorities_from_files(8, files)
            .into_iter()
            .map(Priority::get)
            .collect();
        assert_eq!(prios, [1, 5, 5, 5, 0, 0, 3, 3]);
    }
}
