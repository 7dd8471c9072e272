//! BEP53 file selection: `so=0,2,4,6-8` names the files to download.
//!
//! Ranges are kept as ranges, never expanded, so `so=0-4294967295` costs one entry.

use std::fmt;

use thiserror::Error;

use crate::FileIndex;

/// An inclusive range of file indices from a BEP53 `so=` parameter: `4` or `6-8`.
///
/// ```
/// use fxtor_proto::FileIndex;
/// use fxtor_proto::magnet::FileRange;
///
/// let range = FileRange::new(FileIndex(6), FileIndex(8)).unwrap();
/// assert!(range.contains(FileIndex(7)));
/// assert_eq!(range.file_count(), 3);
/// assert_eq!(range.to_string(), "6-8");
/// assert_eq!(FileRange::single(FileIndex(4)).to_string(), "4");
/// assert_eq!(FileRange::new(FileIndex(5), FileIndex(2)), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FileRange {
    first: FileIndex,
    last: FileIndex,
}

impl FileRange {
    /// The files from `first` to `last`, both included; `None` when `first > last`.
    pub fn new(first: FileIndex, last: FileIndex) -> Option<Self> {
        (first <= last).then_some(Self { first, last })
    }

    /// A single file.
    pub fn single(index: FileIndex) -> Self {
        Self {
            first: index,
            last: index,
        }
    }

    /// The first file in the range.
    pub fn first(&self) -> FileIndex {
        self.first
    }

    /// The last file in the range (included).
    pub fn last(&self) -> FileIndex {
        self.last
    }

    /// Whether `index` is in the range.
    pub fn contains(&self, index: FileIndex) -> bool {
        self.first <= index && index <= self.last
    }

    /// How many files the range names (at least one).
    pub fn file_count(&self) -> u64 {
        u64::from(self.last.0) - u64::from(self.first.0) + 1
    }

    /// The indices in the range, in order.
    pub fn iter(&self) -> impl Iterator<Item = FileIndex> {
        (self.first.0..=self.last.0).map(FileIndex)
    }
}

impl fmt::Display for FileRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Why a BEP53 `so=` file selection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SelectOnlyError {
    /// An index that is not a plain decimal number, or a range missing one of its ends.
    #[error("not a file index or `first-last` range")]
    NotANumber,
    /// An index above 4294967295.
    #[error("file index above {}", u32::MAX)]
    IndexTooLarge,
    /// A range whose end comes before its start, like `5-2`.
    #[error("range ends before it starts")]
    ReversedRange,
}

/// Parses a comma-separated selection, appending its ranges to `out`. Empty entries (`1,,2`,
/// a trailing comma) are skipped, as libtorrent does.
pub(super) fn parse_select_only(
    text: &str,
    out: &mut Vec<FileRange>,
) -> Result<(), SelectOnlyError> {
    for entry in text.split(',').filter(|entry| !entry.is_empty()) {
        let range = match entry.split_once('-') {
            Some((first, last)) => FileRange::new(parse_index(first)?, parse_index(last)?)
                .ok_or(SelectOnlyError::ReversedRange)?,
            None => FileRange::single(parse_index(entry)?),
        };
        out.push(range);
    }
    Ok(())
}

fn parse_index(text: &str) -> Result<FileIndex, SelectOnlyError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SelectOnlyError::NotANumber);
    }
    // Only digits remain, so the one way to fail is overflow.
    text.parse()
        .map(FileIndex)
        .map_err(|_| SelectOnlyError::IndexTooLarge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<FileRange>, SelectOnlyError> {
        let mut out = Vec::new();
        parse_select_only(text, &mut out).map(|()| out)
    }

    fn range(first: u32, last: u32) -> FileRange {
        FileRange::new(FileIndex(first), FileIndex(last)).unwrap()
    }

    #[test]
    fn parses_the_bep53_example() {
        assert_eq!(
            parse("0,2,4,6-8"),
            Ok(vec![range(0, 0), range(2, 2), range(4, 4), range(6, 8)])
        );
    }

    #[test]
    fn a_huge_range_is_one_entry() {
        let ranges = parse("0-4294967295").unwrap();
        assert_eq!(ranges, vec![range(0, u32::MAX)]);
        assert_eq!(ranges[0].file_count(), 1 << 32);
        assert!(ranges[0].contains(FileIndex(u32::MAX)));
    }

    #[test]
    fn skips_empty_entries_and_keeps_order() {
        assert_eq!(parse(",3,,1-1,"), Ok(vec![range(3, 3), range(1, 1)]));
        assert_eq!(parse(""), Ok(vec![]));
        assert_eq!(parse("007"), Ok(vec![range(7, 7)]));
    }

    #[test]
    fn refuses_bad_entries() {
        assert_eq!(parse("5-2"), Err(SelectOnlyError::ReversedRange));
        assert_eq!(parse("4294967296"), Err(SelectOnlyError::IndexTooLarge));
        assert_eq!(parse("1-99999999999"), Err(SelectOnlyError::IndexTooLarge));
        for bad in ["-3", "3-", "1-2-3", "+1", "a", " 1", "1.5", "-"] {
            assert_eq!(parse(bad), Err(SelectOnlyError::NotANumber), "{bad}");
        }
    }

    #[test]
    fn iterates_its_indices() {
        let indices: Vec<_> = range(6, 8).iter().collect();
        assert_eq!(indices, [FileIndex(6), FileIndex(7), FileIndex(8)]);
    }
}
