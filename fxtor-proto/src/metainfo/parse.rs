//! Reading the file lists of an info dictionary: the v1 `files` list (or single `length`), the
//! v2 `file tree`, and checking that a hybrid's two lists agree.

use crate::bencode::{Dict, List, Value};
use crate::Sha256Hash;

use super::error::MetainfoError;
use super::sanitize::SanitizedPath;
use super::storage::{FileEntry, PadKind};
use super::LoadLimits;

/// The largest file accepted: below (2^30 − 1) × 16 KiB, libtorrent's limit, so that the
/// indices of a file's merkle tree fit in 31 bits.
pub const MAX_FILE_SIZE: u64 = ((1 << 30) - 1) * 16384 - 1;

/// The largest `piece length` accepted (`i32::MAX / 2`, libtorrent's limit).
pub const MAX_PIECE_LENGTH: u32 = (i32::MAX / 2) as u32;

/// The name libtorrent gives a file whose path is sanitised away entirely.
const PLACEHOLDER_NAME: &str = "_";

/// The prefix by which BitComet names its pad files.
const BITCOMET_PAD_PREFIX: &[u8] = b"_____padding_file_";

/// BEP47 file attributes (`attr`).
#[derive(Default, Clone, Copy)]
struct Attributes {
    pad: bool,
    executable: bool,
    hidden: bool,
    symlink: bool,
}

impl Attributes {
    /// Reads `attr` (anything but a string counts as no attributes).
    fn of(attr: Option<Value<'_>>) -> Self {
        let mut attributes = Self::default();
        for c in attr.and_then(|a| a.as_bytes()).unwrap_or_default() {
            match c {
                b'p' => attributes.pad = true,
                b'x' => attributes.executable = true,
                b'h' => attributes.hidden = true,
                b'l' => attributes.symlink = true,
                _ => {}
            }
        }
        attributes
    }
}

/// The keys of a file's dictionary (a v1 `files` entry, a single-file info dictionary, a v2
/// file's properties), read in one pass. When a key repeats, the first wins, as in
/// [`Dict::get`].
#[derive(Default, Clone, Copy)]
struct FileKeys<'a> {
    attr: Option<Value<'a>>,
    length: Option<Value<'a>>,
    mtime: Option<Value<'a>>,
    path: Option<Value<'a>>,
    path_utf8: Option<Value<'a>>,
    symlink_path: Option<Value<'a>>,
    pieces_root: Option<Value<'a>>,
}

impl<'a> FileKeys<'a> {
    fn of(dict: Dict<'a>) -> Self {
        let mut keys = Self::default();
        for (key, value) in dict {
            let slot = match key {
                b"attr" => &mut keys.attr,
                b"length" => &mut keys.length,
                b"mtime" => &mut keys.mtime,
                b"path" => &mut keys.path,
                b"path.utf-8" => &mut keys.path_utf8,
                b"symlink path" => &mut keys.symlink_path,
                b"pieces root" => &mut keys.pieces_root,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        keys
    }

    fn attributes(&self) -> Attributes {
        Attributes::of(self.attr)
    }

    fn mtime(&self) -> Option<i64> {
        self.mtime.and_then(|m| m.as_int())
    }
}

/// Reads and checks `piece length`: positive and at most [`MAX_PIECE_LENGTH`]; for v2 also a
/// power of two of at least 16 KiB.
pub fn piece_length(info: Dict<'_>, v2: bool) -> Result<u32, MetainfoError> {
    let value = info
        .get("piece length")
        .ok_or(MetainfoError::MissingKey("piece length"))?;
    let length = value.as_int().ok_or(MetainfoError::WrongType {
        key: "piece length",
        expected: "an integer",
    })?;
    let valid = u32::try_from(length)
        .ok()
        .filter(|&l| l > 0 && l <= MAX_PIECE_LENGTH)
        .filter(|&l| !v2 || crate::merkle::piece_height(l).is_some());
    valid.ok_or(MetainfoError::InvalidPieceLength(length))
}

/// Reads a file's `length` (0 for a symlink, which has no data).
fn file_length(
    keys: &FileKeys<'_>,
    symlink: bool,
    label: impl Fn() -> String,
) -> Result<u64, MetainfoError> {
    if symlink {
        return Ok(0);
    }
    let length = keys.length.and_then(|l| l.as_int()).unwrap_or(-1);
    u64::try_from(length)
        .ok()
        .filter(|&l| l <= MAX_FILE_SIZE)
        .ok_or_else(|| MetainfoError::InvalidFileLength {
            file: label(),
            length,
        })
}

/// A value with its list, if it is one.
fn with_list(value: Value<'_>) -> Option<(Value<'_>, List<'_>)> {
    Some((value, value.as_list()?))
}

/// Appends a list of path components (every item must be a string) to `path`, sanitised;
/// says whether a component is named as a BitComet pad file.
fn read_path(
    value: Value<'_>,
    list: List<'_>,
    path: &mut SanitizedPath,
    label: impl Fn() -> String,
    reason: &'static str,
) -> Result<bool, MetainfoError> {
    // The list's encoding is a little longer than the path it makes (its length prefixes
    // are longer than the slashes joining the components).
    path.reserve(value.raw().len());
    let mut bitcomet_pad = false;
    for item in list {
        let component = item.as_bytes().ok_or_else(|| MetainfoError::InvalidFile {
            file: label(),
            reason,
        })?;
        bitcomet_pad |= component.starts_with(BITCOMET_PAD_PREFIX);
        path.push(component);
    }
    Ok(bitcomet_pad)
}

/// Reads a `symlink path` into a sanitised target; `None` if absent or empty once sanitised
/// (the file is then not a symlink, as libtorrent treats it).
fn symlink_target(
    keys: &FileKeys<'_>,
    label: impl Fn() -> String,
) -> Result<Option<String>, MetainfoError> {
    let Some((value, list)) = keys.symlink_path.and_then(with_list) else {
        return Ok(None);
    };
    let mut target = SanitizedPath::default();
    let reason = "`symlink path` holds something other than strings";
    read_path(value, list, &mut target, label, reason)?;
    Ok((!target.is_empty()).then(|| target.into_string()))
}

/// One entry of a v1 `files` list, read and checked (its path goes to a [`SanitizedPath`]).
struct V1Entry {
    attributes: Attributes,
    size: u64,
    mtime: Option<i64>,
    /// The sanitised symlink target, if the entry is a symlink.
    symlink_target: Option<String>,
}

impl V1Entry {
    fn into_file(self, path: String) -> FileEntry {
        let mut entry = FileEntry::new(path, self.size);
        entry.pad = self.attributes.pad.then_some(PadKind::Listed);
        entry.executable = self.attributes.executable;
        entry.hidden = self.attributes.hidden;
        entry.mtime = self.mtime;
        entry.symlink_target = self.symlink_target;
        entry
    }
}

/// Reads entry `index` of a `files` list, appending its sanitised path to `path`.
fn read_v1_entry(
    index: usize,
    value: Value<'_>,
    path: &mut SanitizedPath,
) -> Result<V1Entry, MetainfoError> {
    let label = || format!("files[{index}]");
    let dict = value.as_dict().ok_or_else(|| MetainfoError::InvalidFile {
        file: label(),
        reason: "not a dictionary",
    })?;
    let keys = FileKeys::of(dict);
    let mut attributes = keys.attributes();
    let size = file_length(&keys, attributes.symlink, label)?;
    let raw_path = (keys.path_utf8.and_then(with_list))
        .or_else(|| keys.path.and_then(with_list))
        .filter(|(_, list)| !list.is_empty());
    match raw_path {
        Some((value, list)) => {
            let reason = "`path` holds something other than strings";
            attributes.pad |= read_path(value, list, path, label, reason)?;
            if path.is_empty() {
                path.push(PLACEHOLDER_NAME.as_bytes());
            }
        }
        // libtorrent's name for a pad file without a path.
        None if attributes.pad => {
            path.push(b".pad");
            path.push(itoa::Buffer::new().format(size).as_bytes());
        }
        None => return Err(MetainfoError::MissingPath { file: label() }),
    }
    let symlink_target = match attributes.symlink {
        true => symlink_target(&keys, label)?,
        false => None,
    };
    Ok(V1Entry {
        attributes,
        size,
        mtime: keys.mtime(),
        symlink_target,
    })
}

/// Checks the length of a `files` list against the file limit.
fn check_file_count(list: List<'_>, limits: &LoadLimits) -> Result<usize, MetainfoError> {
    let count = list.len();
    if count > limits.file_limit() {
        return Err(MetainfoError::TooManyFiles {
            max: limits.file_limit(),
        });
    }
    Ok(count)
}

/// Reads a v1 multi-file `files` list.
pub fn v1_files(list: List<'_>, limits: &LoadLimits) -> Result<Vec<FileEntry>, MetainfoError> {
    let mut files = Vec::with_capacity(check_file_count(list, limits)?);
    for (index, value) in list.iter().enumerate() {
        let mut path = SanitizedPath::default();
        let entry = read_v1_entry(index, value, &mut path)?;
        files.push(entry.into_file(path.into_string()));
    }
    Ok(files)
}

/// One file of a [`V1Listing`].
struct ListedFile {
    /// Where its path ends in [`V1Listing::paths`] (it starts where the previous one ends).
    path_end: usize,
    size: u64,
    pad: bool,
    symlink: bool,
}

/// The v1 view of a hybrid torrent, which is read only to check it against the v2 tree:
/// each file's sanitised path (all in one buffer), size and kind.
#[derive(Default)]
pub struct V1Listing {
    paths: Vec<u8>,
    files: Vec<ListedFile>,
}

impl V1Listing {
    fn push(&mut self, path: &[u8], size: u64, pad: bool, symlink: bool) {
        self.paths.extend_from_slice(path);
        self.files.push(ListedFile {
            path_end: self.paths.len(),
            size,
            pad,
            symlink,
        });
    }

    /// The listing of files already read.
    pub fn of(files: &[FileEntry]) -> Self {
        let mut listing = Self::default();
        for f in files {
            listing.push(f.path.as_bytes(), f.size, f.is_pad(), f.is_symlink());
        }
        listing
    }

    /// The path of file `index`.
    fn path(&self, index: usize) -> &[u8] {
        let start = match index.checked_sub(1) {
            Some(previous) => self.files.get(previous).map_or(0, |f| f.path_end),
            None => 0,
        };
        let end = self.files.get(index).map_or(start, |f| f.path_end);
        self.paths.get(start..end).unwrap_or_default()
    }

    /// The path of file `index`, for messages.
    fn path_lossy(&self, index: usize) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.path(index))
    }
}

/// Reads a v1 multi-file `files` list into a listing, for a hybrid torrent: the same checks
/// as [`v1_files`], without building its files.
pub fn v1_listing(list: List<'_>, limits: &LoadLimits) -> Result<V1Listing, MetainfoError> {
    let count = check_file_count(list, limits)?;
    let mut listing = V1Listing {
        paths: Vec::new(),
        files: Vec::with_capacity(count),
    };
    let mut path = SanitizedPath::default();
    for (index, value) in list.iter().enumerate() {
        path.truncate(0);
        let entry = read_v1_entry(index, value, &mut path)?;
        let symlink = entry.symlink_target.is_some();
        listing.push(path.as_bytes(), entry.size, entry.attributes.pad, symlink);
    }
    Ok(listing)
}

/// Reads the one file of a v1 single-file torrent, named `name` (already sanitised).
pub fn v1_single_file(info: Dict<'_>, name: &str) -> Result<FileEntry, MetainfoError> {
    if name.is_empty() {
        return Err(MetainfoError::MissingName);
    }
    let label = || name.to_owned();
    let keys = FileKeys::of(info);
    let attributes = keys.attributes();
    let size = file_length(&keys, attributes.symlink, label)?;
    let mut entry = FileEntry::new(name.to_owned(), size);
    entry.pad = attributes.pad.then_some(PadKind::Listed);
    entry.executable = attributes.executable;
    entry.hidden = attributes.hidden;
    entry.mtime = keys.mtime();
    if attributes.symlink {
        entry.symlink_target = symlink_target(&keys, label)?;
    }
    Ok(entry)
}

/// The files of a v2 `file tree`, in tree order, without pads or offsets.
pub struct FileTree {
    /// The files.
    pub files: Vec<FileEntry>,
    /// Whether the tree is a single file at its top (a single-file torrent).
    pub single_file: bool,
}

/// Reads a v2 `file tree`.
pub fn file_tree(tree: Dict<'_>, limits: &LoadLimits) -> Result<FileTree, MetainfoError> {
    let mut files = Vec::new();
    let mut path = SanitizedPath::default();
    walk_tree(tree, &mut path, 0, limits, &mut files)?;
    let single_file = tree.len() == 1 && tree.iter().all(|(_, v)| is_file_node(v));
    Ok(FileTree { files, single_file })
}

/// Whether a tree node is a file: a dictionary whose only key is the empty string.
fn is_file_node(node: Value<'_>) -> bool {
    node.as_dict()
        .is_some_and(|d| d.len() == 1 && d.iter().all(|(k, _)| k.is_empty()))
}

fn walk_tree(
    tree: Dict<'_>,
    path: &mut SanitizedPath,
    depth: usize,
    limits: &LoadLimits,
    files: &mut Vec<FileEntry>,
) -> Result<(), MetainfoError> {
    if depth > limits.max_file_tree_depth {
        return Err(MetainfoError::FileTreeTooDeep(limits.max_file_tree_depth));
    }
    for (key, node) in tree.iter() {
        let parent_len = path.len();
        if key.is_empty() {
            return Err(MetainfoError::FileTree {
                path: path.to_path_string(),
                reason: "an empty name (a file must be the only entry of its node)",
            });
        }
        path.push(key);
        let dict = node.as_dict().ok_or_else(|| MetainfoError::FileTree {
            path: path.to_path_string(),
            reason: "not a dictionary",
        })?;
        if is_file_node(node) {
            if files.len() >= limits.file_limit() {
                return Err(MetainfoError::TooManyFiles {
                    max: limits.file_limit(),
                });
            }
            let properties = dict.get_dict("").ok_or_else(|| MetainfoError::FileTree {
                path: path.to_path_string(),
                reason: "file properties are not a dictionary",
            })?;
            files.push(v2_file(properties, path)?);
        } else {
            walk_tree(dict, path, depth + 1, limits, files)?;
        }
        path.truncate(parent_len);
    }
    Ok(())
}

/// Reads the properties of one v2 file at `path` (sanitised).
fn v2_file(properties: Dict<'_>, path: &SanitizedPath) -> Result<FileEntry, MetainfoError> {
    let label = || match path.is_empty() {
        true => PLACEHOLDER_NAME.to_owned(),
        false => path.to_path_string(),
    };
    let keys = FileKeys::of(properties);
    let attributes = keys.attributes();
    if attributes.pad {
        return Err(MetainfoError::PadFileInTree { path: label() });
    }
    let size = file_length(&keys, attributes.symlink, label)?;
    let symlink_target = match attributes.symlink {
        true => symlink_target(&keys, label)?,
        false => None,
    };
    let pieces_root = match size {
        0 => None,
        _ => Some(pieces_root(keys.pieces_root, label)?),
    };
    let mut entry = FileEntry::new(label(), size);
    entry.executable = attributes.executable;
    entry.hidden = attributes.hidden;
    entry.mtime = keys.mtime();
    entry.symlink_target = symlink_target;
    entry.pieces_root = pieces_root;
    Ok(entry)
}

/// Reads a v2 file's `pieces root`: 32 bytes, not all zero.
fn pieces_root(
    value: Option<Value<'_>>,
    label: impl Fn() -> String,
) -> Result<Sha256Hash, MetainfoError> {
    let invalid = |reason| MetainfoError::InvalidPiecesRoot {
        file: label(),
        reason,
    };
    let bytes = value
        .and_then(|r| r.as_bytes())
        .ok_or_else(|| invalid("missing `pieces root`"))?;
    let root =
        Sha256Hash::from_slice(bytes).ok_or_else(|| invalid("`pieces root` is not 32 bytes"))?;
    if root == Sha256Hash::default() {
        return Err(invalid("`pieces root` is all zeros"));
    }
    Ok(root)
}

/// Lays out v2 files as libtorrent does: a synthesized pad after every file with data whose
/// end is not on a piece boundary, so each such file starts a piece.
pub fn v2_layout(
    files: Vec<FileEntry>,
    piece_length: u32,
    limits: &LoadLimits,
) -> Result<Vec<FileEntry>, MetainfoError> {
    let piece_length = u64::from(piece_length);
    let mut laid_out = Vec::with_capacity(files.len());
    let mut end = 0u64;
    for file in files {
        end = end
            .checked_add(file.size)
            .ok_or(MetainfoError::SizeOverflow)?;
        let needs_pad = file.pieces_root.is_some() && end % piece_length != 0;
        laid_out.push(file);
        if needs_pad {
            let pad = piece_length - end % piece_length;
            end = end.checked_add(pad).ok_or(MetainfoError::SizeOverflow)?;
            laid_out.push(FileEntry::pad(pad, PadKind::Synthesized));
        }
        if laid_out.len() > limits.file_limit() {
            return Err(MetainfoError::TooManyFiles {
                max: limits.file_limit(),
            });
        }
    }
    Ok(laid_out)
}

/// Lays out a hybrid torrent: checks that its v1 files (pads included) describe the same
/// files as its v2 tree, in the same order, with the same paths, sizes and kinds, each file
/// with data starting where the v2 layout puts it; then returns the v2 layout, its pads
/// marked as listed.
///
/// As in libtorrent 2.0, the v1 list may leave out the pad after the last file with data
/// (the tail pad); the layout then leaves it out too.
pub fn hybrid_layout(
    v1: &V1Listing,
    v2: Vec<FileEntry>,
    piece_length: u32,
    limits: &LoadLimits,
) -> Result<Vec<FileEntry>, MetainfoError> {
    let inconsistent = |what: String| Err(MetainfoError::InconsistentFiles(what));
    let mut layout = v2_layout(v2, piece_length, limits)?;

    // The offset and index of each file that is not a pad, and the total size.
    let with_offsets = |files: &mut dyn Iterator<Item = (u64, bool)>| {
        let mut offset = 0u64;
        let mut out = Vec::new();
        for (index, (size, pad)) in files.enumerate() {
            if !pad {
                out.push((offset, index));
            }
            offset = offset
                .checked_add(size)
                .ok_or(MetainfoError::SizeOverflow)?;
        }
        Ok::<_, MetainfoError>((out, offset))
    };
    let (v1_files, v1_total) = with_offsets(&mut v1.files.iter().map(|f| (f.size, f.pad)))?;
    let (v2_files, v2_total) = with_offsets(&mut layout.iter().map(|f| (f.size, f.is_pad())))?;
    if v1_files.len() != v2_files.len() {
        return inconsistent(format!(
            "{} files in `files`, {} in `file tree`",
            v1_files.len(),
            v2_files.len()
        ));
    }
    for (&(v1_offset, i), &(v2_offset, j)) in v1_files.iter().zip(&v2_files) {
        let (Some(a), Some(b)) = (v1.files.get(i), layout.get(j)) else {
            return inconsistent("a file is missing".into());
        };
        let path = || v1.path_lossy(i);
        if v1.path(i) != b.path.as_bytes() {
            return inconsistent(format!("`{}` is `{}` in `file tree`", path(), b.path));
        }
        if a.size != b.size || a.symlink != b.is_symlink() {
            return inconsistent(format!("`{}` differs in size or kind", path()));
        }
        if a.size > 0 && v1_offset != v2_offset {
            return inconsistent(format!(
                "`{}` starts at {v1_offset} in `files` but at {v2_offset} in `file tree`",
                path()
            ));
        }
    }

    if v1_total != v2_total {
        // Only the tail pad, after the last file with data, may be missing from `files`.
        let tail_pad = layout
            .iter()
            .rposition(|f| f.pieces_root.is_some())
            .map(|last| last + 1)
            .filter(|&next| layout.get(next).is_some_and(FileEntry::is_pad));
        match tail_pad {
            Some(pad) if layout.get(pad).map(|p| v2_total - p.size) == Some(v1_total) => {
                layout.remove(pad);
            }
            _ => {
                return inconsistent(format!(
                    "{v1_total} bytes in `files`, {v2_total} in `file tree`"
                ))
            }
        }
    }
    for file in layout.iter_mut().filter(|f| f.is_pad()) {
        file.pad = Some(PadKind::Listed);
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64, root: u8) -> FileEntry {
        let mut f = FileEntry::new(path.to_owned(), size);
        f.pieces_root = (size > 0).then_some(Sha256Hash([root; 32]));
        f
    }

    fn sizes(files: &[FileEntry]) -> Vec<(u64, bool)> {
        files.iter().map(|f| (f.size, f.is_pad())).collect()
    }

    #[test]
    fn v2_pads_follow_every_unaligned_file() {
        let files = vec![
            file("a", 100, 1),
            file("b", 0, 0),
            file("c", 16384, 2),
            file("d", 1, 3),
        ];
        let laid = v2_layout(files, 16384, &LoadLimits::default()).unwrap();
        assert_eq!(
            sizes(&laid),
            [
                (100, false),
                (16284, true),
                (0, false),
                (16384, false),
                (1, false),
                (16383, true)
            ]
        );
        assert!(laid
            .iter()
            .filter(|f| f.is_pad())
            .all(|f| f.pad_kind() == Some(PadKind::Synthesized)
                && f.path == format!(".pad/{}", f.size)));
    }

    #[test]
    fn hybrid_may_omit_only_the_tail_pad() {
        let v2 = || vec![file("a", 100, 1), file("b", 100, 2), file("c", 0, 0)];
        let pad = |n| FileEntry::pad(n, PadKind::Listed);
        let limits = LoadLimits::default();
        // With the tail pad: as the v2 layout, pads listed.
        let v1 = [
            file("a", 100, 0),
            pad(16284),
            file("b", 100, 0),
            pad(16284),
            file("c", 0, 0),
        ];
        let laid = hybrid_layout(&V1Listing::of(&v1), v2(), 16384, &limits).unwrap();
        assert_eq!(
            sizes(&laid),
            [
                (100, false),
                (16284, true),
                (100, false),
                (16284, true),
                (0, false)
            ]
        );
        assert!(laid
            .iter()
            .filter(|f| f.is_pad())
            .all(|f| f.pad_kind() == Some(PadKind::Listed)));
        assert_eq!(laid[2].pieces_root, Some(Sha256Hash([2; 32])));
        // Without it (the empty file may sit anywhere after b).
        let v1 = [
            file("a", 100, 0),
            pad(16284),
            file("b", 100, 0),
            file("c", 0, 0),
        ];
        let laid = hybrid_layout(&V1Listing::of(&v1), v2(), 16384, &limits).unwrap();
        assert_eq!(
            sizes(&laid),
            [(100, false), (16284, true), (100, false), (0, false)]
        );
        // Any other difference in padding is not allowed.
        let v1 = [file("a", 100, 0), file("b", 100, 0), file("c", 0, 0)];
        assert!(hybrid_layout(&V1Listing::of(&v1), v2(), 16384, &limits).is_err());
        let v1 = [
            file("a", 100, 0),
            pad(16284),
            file("b", 100, 0),
            pad(100),
            file("c", 0, 0),
        ];
        assert!(hybrid_layout(&V1Listing::of(&v1), v2(), 16384, &limits).is_err());
    }

    #[test]
    fn a_listing_holds_what_the_files_say() {
        let list = b"l\
            d6:lengthi5e4:pathl3:dir5:a.txtee\
            d4:attr1:p6:lengthi7ee\
            d6:lengthi3e4:pathl22:_____padding_file_0___ee\
            d6:lengthi4e4:pathl2:..e10:path.utf-8l3:CON1:xee\
            d4:attr1:l6:lengthi9e4:pathl4:linke12:symlink pathl3:dir5:a.txtee\
            d6:lengthi1e4:pathl2:..eee";
        let doc = crate::bencode::decode(list, crate::bencode::Mode::Strict).unwrap();
        let list = doc.as_list().unwrap();
        let limits = LoadLimits::default();
        let (files, listing) = (
            v1_files(list, &limits).unwrap(),
            v1_listing(list, &limits).unwrap(),
        );
        let paths: Vec<&str> = files.iter().map(|f| f.path_string()).collect();
        assert_eq!(
            paths,
            [
                "dir/a.txt",
                ".pad/7",
                "_____padding_file_0___",
                "_CON/x",
                "link",
                "_"
            ]
        );
        assert_eq!(files[4].symlink_target(), Some("dir/a.txt"));
        assert_eq!(files.len(), listing.files.len());
        for (i, (file, listed)) in files.iter().zip(&listing.files).enumerate() {
            assert_eq!(listing.path(i), file.path_string().as_bytes());
            assert_eq!(
                (listed.size, listed.pad, listed.symlink),
                (file.size, file.is_pad(), file.is_symlink())
            );
        }
        // Errors are the same too.
        let bad = b"ld6:lengthi1e4:pathli1eeee";
        let doc = crate::bencode::decode(bad, crate::bencode::Mode::Strict).unwrap();
        let list = doc.as_list().unwrap();
        assert_eq!(
            v1_files(list, &limits).err(),
            v1_listing(list, &limits).err()
        );
    }
}
