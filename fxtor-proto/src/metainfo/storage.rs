//! The files of a torrent laid end to end, and the mapping between pieces and files.

use std::ops::Range;

use smallvec::SmallVec;

use crate::{merkle, FileIndex, PieceIndex, Sha256Hash};

/// Where a pad file comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PadKind {
    /// The .torrent lists it (BEP47 `attr` `p`, or a BitComet `_____padding_file_`).
    Listed,
    /// Inserted here to align the next file of a v2 torrent to a piece boundary, as BEP52
    /// implies and libtorrent does.
    Synthesized,
}

/// `.pad/<size>`, libtorrent's name for a pad file.
pub(super) fn pad_path(size: u64) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(size);
    let mut path = String::with_capacity(".pad/".len() + digits.len());
    path.push_str(".pad/");
    path.push_str(digits);
    path
}

/// One file of a torrent.
///
/// Its path is relative to the torrent's root directory: for a multi-file torrent the
/// components *below* the torrent's name, for a single-file torrent just the file's name.
/// Every component is sanitised (see [`sanitize_component`](super::sanitize_component)), so
/// joining the path to a download directory cannot leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Sanitised components joined with `/`; never empty.
    pub(super) path: String,
    pub(super) size: u64,
    pub(super) offset: u64,
    pub(super) pad: Option<PadKind>,
    pub(super) executable: bool,
    pub(super) hidden: bool,
    /// Sanitised target components joined with `/`, relative to the torrent's root directory.
    pub(super) symlink_target: Option<String>,
    pub(super) pieces_root: Option<Sha256Hash>,
    pub(super) mtime: Option<i64>,
}

impl FileEntry {
    /// A file with the given path, size and offset and no attributes.
    pub(super) fn new(path: String, size: u64) -> Self {
        Self {
            path,
            size,
            offset: 0,
            pad: None,
            executable: false,
            hidden: false,
            symlink_target: None,
            pieces_root: None,
            mtime: None,
        }
    }

    /// A pad file of `size` bytes named `.pad/<size>`, as libtorrent names them.
    pub(super) fn pad(size: u64, kind: PadKind) -> Self {
        Self {
            pad: Some(kind),
            ..Self::new(pad_path(size), size)
        }
    }

    /// The path, components joined with `/`.
    pub fn path_string(&self) -> &str {
        &self.path
    }

    /// The path's components.
    pub fn components(&self) -> impl Iterator<Item = &str> + '_ {
        self.path.split('/')
    }

    /// The last component: the file's own name.
    pub fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    /// The file's size in bytes (0 for a symlink).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where the file starts in the torrent's byte stream.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Where the file ends in the torrent's byte stream (exclusive).
    pub fn end(&self) -> u64 {
        // Loading checks the total size, so this never saturates for a loaded torrent.
        self.offset.saturating_add(self.size)
    }

    /// Whether this is a pad file: bytes that only align the next file, always zero, never
    /// written to disk.
    pub fn is_pad(&self) -> bool {
        self.pad.is_some()
    }

    /// Whether, and why, this is a pad file.
    pub fn pad_kind(&self) -> Option<PadKind> {
        self.pad
    }

    /// BEP47 `x`: the file is executable.
    pub fn is_executable(&self) -> bool {
        self.executable
    }

    /// BEP47 `h`: the file is hidden.
    pub fn is_hidden(&self) -> bool {
        self.hidden
    }

    /// BEP47 `l`: the file is a symbolic link (and has no data).
    pub fn is_symlink(&self) -> bool {
        self.symlink_target.is_some()
    }

    /// The symlink's target, components joined with `/`, relative to the torrent's root
    /// directory (not to the link). Sanitised like paths, so it stays inside the torrent.
    pub fn symlink_target(&self) -> Option<&str> {
        self.symlink_target.as_deref()
    }

    /// The v2 `pieces root` (merkle root of the file's blocks); `None` for v1 torrents and for
    /// empty files, symlinks and pads.
    pub fn pieces_root(&self) -> Option<Sha256Hash> {
        self.pieces_root
    }

    /// The modification time the torrent gives (seconds since the Unix epoch), if any.
    pub fn mtime(&self) -> Option<i64> {
        self.mtime
    }

    /// The number of 16 KiB blocks: the leaves of the file's v2 merkle tree.
    pub fn num_blocks(&self) -> u64 {
        merkle::num_blocks(self.size)
    }
}

/// A run of bytes of one file: where a block or piece lands on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileSlice {
    /// The file.
    pub file: FileIndex,
    /// Where the run starts in the file.
    pub offset: u64,
    /// The run's length in bytes.
    pub len: u32,
    /// Whether the file is a pad file (its bytes are zeros and are not stored).
    pub pad: bool,
}

/// The files of a torrent, laid end to end in the order the torrent gives, pad files
/// included, cut into pieces of [`piece_length`](Self::piece_length) bytes.
///
/// ```
/// # use fxtor_proto::TorrentInfo;
/// # let torrent = b"d4:infod5:filesld6:lengthi3e4:pathl1:aeed6:lengthi5e4:pathl1:beee4:name1:d12:piece lengthi4e6:pieces40:0123456789012345678901234567890123456789ee";
/// use fxtor_proto::{FileIndex, PieceIndex};
/// let info = TorrentInfo::from_bytes(torrent).unwrap();
/// let files = info.files();
/// // Piece 0 covers a (3 bytes) and the first byte of b.
/// let slices = files.map_block(PieceIndex(0), 0, 4).unwrap();
/// assert_eq!(slices.len(), 2);
/// assert_eq!((slices[1].file, slices[1].offset, slices[1].len), (FileIndex(1), 0, 1));
/// assert_eq!(files.map_file(FileIndex(1), 2), Some((PieceIndex(1), 1)));
/// assert_eq!(files.file_piece_range(FileIndex(1)), Some(PieceIndex(0)..PieceIndex(2)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStorage {
    pub(super) files: Vec<FileEntry>,
    pub(super) piece_length: u32,
    pub(super) num_pieces: u32,
    pub(super) total_size: u64,
}

impl FileStorage {
    /// Lays `files` end to end (setting their offsets) and cuts them into pieces.
    /// The caller has checked the total size and the number of pieces.
    pub(super) fn new(mut files: Vec<FileEntry>, piece_length: u32) -> Self {
        let mut offset = 0u64;
        for file in &mut files {
            file.offset = offset;
            offset += file.size;
        }
        let num_pieces = offset.div_ceil(u64::from(piece_length.max(1)));
        Self {
            files,
            piece_length,
            num_pieces: u32::try_from(num_pieces).unwrap_or(u32::MAX),
            total_size: offset,
        }
    }

    /// The number of files, pad files included.
    pub fn num_files(&self) -> usize {
        self.files.len()
    }

    /// A file by index.
    pub fn file(&self, index: FileIndex) -> Option<&FileEntry> {
        self.files.get(index.get())
    }

    /// All files, in order.
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    /// The files with their indices.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (FileIndex, &FileEntry)> + '_ {
        // The number of files fits in u32: loading limits it.
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileIndex(i as u32), f))
    }

    /// The sum of all file sizes, pad files included.
    pub fn total_size(&self) -> u64 {
        self.total_size
    }

    /// The size of every piece but the last.
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// The number of pieces.
    pub fn num_pieces(&self) -> u32 {
        self.num_pieces
    }

    /// The size of a piece: [`piece_length`](Self::piece_length), less for the last one,
    /// 0 for a piece past the end.
    pub fn piece_size(&self, piece: PieceIndex) -> u32 {
        let start = u64::from(piece.0) * u64::from(self.piece_length);
        let left = self.total_size.saturating_sub(start);
        // min(left, piece_length) fits in u32.
        left.min(u64::from(self.piece_length)) as u32
    }

    /// The first file holding data at `offset` in the torrent's byte stream (empty files
    /// hold none), or `None` past the end.
    pub fn file_at_offset(&self, offset: u64) -> Option<FileIndex> {
        let index = self.files.partition_point(|f| f.end() <= offset);
        // Empty files end where they start, so the first file ending past `offset` has data.
        (index < self.files.len()).then_some(FileIndex(index as u32))
    }

    /// Where `len` bytes at `offset` in `piece` land: one slice per file touched, in order,
    /// pad files included (flagged, so the caller can skip them) and empty files left out.
    /// `None` if the range is not inside the piece.
    pub fn map_block(
        &self,
        piece: PieceIndex,
        offset: u32,
        len: u32,
    ) -> Option<SmallVec<[FileSlice; 4]>> {
        let end_in_piece = offset.checked_add(len)?;
        if piece.0 >= self.num_pieces || end_in_piece > self.piece_size(piece) {
            return None;
        }
        let mut position = u64::from(piece.0) * u64::from(self.piece_length) + u64::from(offset);
        let mut left = len;
        let mut slices = SmallVec::new();
        let first = self.files.partition_point(|f| f.end() <= position);
        for (i, file) in self.files.iter().enumerate().skip(first) {
            if left == 0 {
                break;
            }
            if file.size == 0 {
                continue;
            }
            let in_file = position.saturating_sub(file.offset);
            // At most `left`, so it fits in u32.
            let take = file.size.saturating_sub(in_file).min(u64::from(left)) as u32;
            slices.push(FileSlice {
                file: FileIndex(i as u32),
                offset: in_file,
                len: take,
                pad: file.is_pad(),
            });
            position += u64::from(take);
            left -= take;
        }
        Some(slices)
    }

    /// Where byte `offset` of `file` is: its piece and the offset in that piece. `None` if
    /// the file does not exist or is not that long.
    pub fn map_file(&self, file: FileIndex, offset: u64) -> Option<(PieceIndex, u32)> {
        let entry = self.file(file)?;
        if offset >= entry.size {
            return None;
        }
        let position = entry.offset + offset;
        let piece_length = u64::from(self.piece_length);
        // position < total_size, so the piece index is below num_pieces and fits in u32,
        // and the remainder is below piece_length.
        Some((
            PieceIndex((position / piece_length) as u32),
            (position % piece_length) as u32,
        ))
    }

    /// The pieces that hold bytes of `file` (an empty range for an empty file).
    pub fn file_piece_range(&self, file: FileIndex) -> Option<Range<PieceIndex>> {
        let entry = self.file(file)?;
        let piece_length = u64::from(self.piece_length);
        let first = entry.offset / piece_length;
        let end = if entry.size == 0 {
            first
        } else {
            (entry.end() - 1) / piece_length + 1
        };
        // Both are at most num_pieces, a u32.
        Some(PieceIndex(first as u32)..PieceIndex(end as u32))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn storage(sizes: &[(u64, bool)], piece_length: u32) -> FileStorage {
        let files = sizes
            .iter()
            .enumerate()
            .map(|(i, &(size, pad))| {
                let mut f = FileEntry::new(format!("f{i}"), size);
                f.pad = pad.then_some(PadKind::Listed);
                f
            })
            .collect();
        FileStorage::new(files, piece_length)
    }

    #[test]
    fn pieces_and_sizes() {
        let s = storage(&[(10, false), (0, false), (7, true), (20, false)], 16);
        assert_eq!(s.total_size(), 37);
        assert_eq!(s.num_pieces(), 3);
        assert_eq!(s.piece_size(PieceIndex(0)), 16);
        assert_eq!(s.piece_size(PieceIndex(2)), 5);
        assert_eq!(s.piece_size(PieceIndex(3)), 0);
        assert_eq!(s.file_at_offset(10), Some(FileIndex(2)));
        assert_eq!(s.file_at_offset(37), None);
        assert_eq!(
            s.file_piece_range(FileIndex(1)),
            Some(PieceIndex(0)..PieceIndex(0))
        );
        assert_eq!(
            s.file_piece_range(FileIndex(3)),
            Some(PieceIndex(1)..PieceIndex(3))
        );
        assert_eq!(s.file_piece_range(FileIndex(4)), None);
    }

    #[test]
    fn map_block_skips_empty_files_and_flags_pads() {
        let s = storage(&[(10, false), (0, false), (7, true), (20, false)], 16);
        let slices = s.map_block(PieceIndex(0), 8, 8).unwrap();
        assert_eq!(
            slices.as_slice(),
            [
                FileSlice {
                    file: FileIndex(0),
                    offset: 8,
                    len: 2,
                    pad: false
                },
                FileSlice {
                    file: FileIndex(2),
                    offset: 0,
                    len: 6,
                    pad: true
                },
            ]
        );
        assert_eq!(s.map_block(PieceIndex(2), 0, 5).unwrap().len(), 1);
        assert_eq!(s.map_block(PieceIndex(2), 0, 6), None);
        assert_eq!(s.map_block(PieceIndex(3), 0, 1), None);
        assert_eq!(s.map_block(PieceIndex(0), u32::MAX, 2), None);
        assert!(s.map_block(PieceIndex(1), 3, 0).unwrap().is_empty());
    }

    proptest! {
        #[test]
        fn map_block_and_map_file_agree(
            sizes in proptest::collection::vec((0u64..5000, any::<bool>()), 1..20),
            piece_exp in 4u32..12,
            picks in proptest::collection::vec((any::<u32>(), any::<u32>(), any::<u32>()), 1..10),
        ) {
            let piece_length = 1u32 << piece_exp;
            let s = storage(&sizes, piece_length);
            prop_assume!(s.total_size() > 0);
            // Every piece maps to slices that tile it exactly.
            for p in 0..s.num_pieces() {
                let piece = PieceIndex(p);
                let size = s.piece_size(piece);
                let slices = s.map_block(piece, 0, size).unwrap();
                let mut position = u64::from(p) * u64::from(piece_length);
                for slice in &slices {
                    let file = s.file(slice.file).unwrap();
                    prop_assert!(file.size() > 0);
                    prop_assert_eq!(file.offset() + slice.offset, position);
                    prop_assert!(slice.offset + u64::from(slice.len) <= file.size());
                    prop_assert_eq!(slice.pad, file.is_pad());
                    position += u64::from(slice.len);
                }
                prop_assert_eq!(position, u64::from(p) * u64::from(piece_length) + u64::from(size));
            }
            // A random block maps back through map_file.
            for (piece_seed, offset_seed, len_seed) in picks {
                let piece = PieceIndex(piece_seed % s.num_pieces());
                let size = s.piece_size(piece);
                let offset = offset_seed % size;
                let len = len_seed % (size - offset) + 1;
                let slices = s.map_block(piece, offset, len).unwrap();
                let mut at = offset;
                for slice in &slices {
                    prop_assert_eq!(s.map_file(slice.file, slice.offset), Some((piece, at)));
                    let range = s.file_piece_range(slice.file).unwrap();
                    prop_assert!(range.start <= piece && piece < range.end);
                    at += slice.len;
                }
                prop_assert_eq!(at, offset + len);
            }
        }
    }
}
