//! Making the names in a .torrent safe to use as file names.
//!
//! A torrent names its files with arbitrary bytes. Nothing it says may name a path outside
//! the download directory, nor a name some file system refuses or treats specially. Each path
//! component is cleaned on its own ([`append_component`]):
//!
//! - `/`, `\`, NUL and the Unicode direction overrides (U+200E, U+200F, U+202A–U+202E,
//!   U+2066–U+2069, which can disguise an extension) are removed, so a component is always a
//!   single name and never absolute;
//! - other control characters, the characters Windows refuses (`< > : " | ? *`) and bytes
//!   that are not UTF-8 become `_`;
//! - trailing dots and spaces are removed (Windows drops them silently, which could make two
//!   names one); so `.` and `..` vanish entirely, as does any component left empty;
//! - Windows device names (`CON`, `NUL`, `COM1`, `LPT1`, … with or without an extension)
//!   get a leading `_`;
//! - a component longer than 255 bytes is shortened, keeping its extension.
//!
//! Paths are kept as their components joined with `/`. [`Deduplicator`] then renames files
//! whose paths collide (ignoring ASCII case, as on Windows and macOS), the way libtorrent
//! does: `name.ext` becomes `name.1.ext`.

use std::collections::{BTreeMap, BTreeSet};

/// The longest component, in bytes, most file systems accept.
pub const MAX_COMPONENT_LEN: usize = 255;

/// The longest extension (dot included) kept when a long component is shortened.
const MAX_EXTENSION_LEN: usize = 16;

/// Whether `c` is dropped from names: separators, NUL and direction overrides.
fn is_removed(c: char) -> bool {
    matches!(
        c,
        '/' | '\\' | '\0' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// Whether `c` is replaced by `_`: control characters and what Windows refuses in names.
fn is_replaced(c: char) -> bool {
    c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*')
}

/// Whether `name` is a Windows device name, which opens a device instead of a file even with
/// an extension (`nul.txt`).
fn is_device_name(name: &[u8]) -> bool {
    // Every device name starts with one of these letters; most names are ruled out here.
    let first = name.first().map(u8::to_ascii_lowercase);
    if !matches!(first, Some(b'c' | b'p' | b'a' | b'n' | b'l')) {
        return false;
    }
    let stem = name.split(|&b| b == b'.').next().unwrap_or(name);
    let stem = match stem.iter().rposition(|&b| b != b' ') {
        Some(last) => stem.get(..=last).unwrap_or(stem),
        None => &[],
    };
    const DEVICES: [&[u8]; 6] = [b"CON", b"PRN", b"AUX", b"NUL", b"CONIN$", b"CONOUT$"];
    if DEVICES.iter().any(|d| stem.eq_ignore_ascii_case(d)) {
        return true;
    }
    // COM0-9 and LPT0-9, and the superscript digits Windows also treats as port numbers.
    let (Some(prefix), Some(number)) = (stem.get(..3), stem.get(3..)) else {
        return false;
    };
    let is_port_number = matches!(number, [d] if d.is_ascii_digit())
        || ["¹", "²", "³"].iter().any(|s| number == s.as_bytes());
    (prefix.eq_ignore_ascii_case(b"COM") || prefix.eq_ignore_ascii_case(b"LPT")) && is_port_number
}

/// Removes trailing dots and spaces from `out[start..]`.
fn trim_trailing_dots_and_spaces(out: &mut String, start: usize) {
    while out.len() > start && out.ends_with(['.', ' ']) {
        out.pop();
    }
}

/// The largest index `<= at` that is a char boundary of `s`.
fn floor_char_boundary(s: &str, mut at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Shortens the component at `out[start..]` to [`MAX_COMPONENT_LEN`] bytes, keeping a short
/// extension.
fn shorten(out: &mut String, start: usize) {
    let component = &out[start..];
    if component.len() <= MAX_COMPONENT_LEN {
        return;
    }
    let extension = component
        .rfind('.')
        .filter(|&dot| dot > 0 && component.len() - dot <= MAX_EXTENSION_LEN)
        .map(|dot| component[dot..].to_owned());
    let ext_len = extension.as_ref().map_or(0, String::len);
    let stem_end = floor_char_boundary(component, MAX_COMPONENT_LEN - ext_len);
    out.truncate(start + stem_end);
    match extension {
        Some(ext) => out.push_str(&ext),
        None => trim_trailing_dots_and_spaces(out, start),
    }
}

/// Appends the sanitised form of the raw component `raw` to `out`, preceded by `/` if `out`
/// is not empty. Returns whether anything was appended (a component can vanish entirely).
pub fn append_component(out: &mut String, raw: &[u8]) -> bool {
    let before = out.len();
    if before > 0 {
        out.push('/');
    }
    let start = out.len();
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if is_removed(c) {
                continue;
            }
            out.push(if is_replaced(c) { '_' } else { c });
        }
        if !chunk.invalid().is_empty() {
            out.push('_');
        }
    }
    trim_trailing_dots_and_spaces(out, start);
    shorten(out, start);
    if out.len() == start {
        out.truncate(before);
        return false;
    }
    if is_device_name(out.as_bytes().get(start..).unwrap_or_default()) {
        out.insert(start, '_');
    }
    true
}

/// The sanitised form of one raw component; empty if nothing is left of it.
///
/// ```
/// use fxtor_proto::metainfo::sanitize_component;
/// assert_eq!(sanitize_component(b".."), "");
/// assert_eq!(sanitize_component(b"/etc/passwd"), "etcpasswd");
/// assert_eq!(sanitize_component(b"a\x01b:c"), "a_b_c");
/// assert_eq!(sanitize_component(b"con.txt"), "_con.txt");
/// assert_eq!(sanitize_component(b"bad\xffutf8"), "bad_utf8");
/// ```
pub fn sanitize_component(raw: &[u8]) -> String {
    let mut out = String::new();
    append_component(&mut out, raw);
    out
}

/// The bytes [`SanitizedPath::push`] copies as they are: printable ASCII but for separators
/// and what Windows refuses in names.
const PLAIN: [bool; 256] = {
    let mut plain = [false; 256];
    let mut b = b' ';
    while b <= b'~' {
        plain[b as usize] = !matches!(
            b,
            b'/' | b'\\' | b'<' | b'>' | b':' | b'"' | b'|' | b'?' | b'*'
        );
        b += 1;
    }
    plain
};

/// A path built from raw components, each sanitised as [`append_component`] does and joined
/// with `/`.
///
/// It is kept as bytes (always valid UTF-8) so that the common component, printable ASCII
/// that needs no change, is copied whole, and the path is checked as UTF-8 only once, when
/// it becomes a `String`.
#[derive(Debug, Default)]
pub struct SanitizedPath {
    bytes: Vec<u8>,
}

impl SanitizedPath {
    /// Appends the sanitised form of `raw`, preceded by `/` if the path is not empty.
    /// Returns whether anything was appended (a component can vanish entirely).
    pub fn push(&mut self, raw: &[u8]) -> bool {
        let plain = raw.len() <= MAX_COMPONENT_LEN && raw.iter().all(|&b| PLAIN[usize::from(b)]);
        if !plain {
            let mut component = String::new();
            if !append_component(&mut component, raw) {
                return false;
            }
            self.push_sanitized(component.as_bytes());
            return true;
        }
        // Printable ASCII no longer than a component may be: only trailing dots and spaces
        // and device names need care.
        let Some(last) = raw.iter().rposition(|&b| b != b'.' && b != b' ') else {
            return false;
        };
        let kept = raw.get(..=last).unwrap_or_default();
        if is_device_name(kept) {
            self.push_sanitized(b"_");
            self.bytes.extend_from_slice(kept);
        } else {
            self.push_sanitized(kept);
        }
        true
    }

    /// Appends a component that is already sanitised.
    fn push_sanitized(&mut self, component: &[u8]) {
        if !self.bytes.is_empty() {
            self.bytes.push(b'/');
        }
        self.bytes.extend_from_slice(component);
    }

    /// Makes room for `additional` more bytes.
    pub fn reserve(&mut self, additional: usize) {
        self.bytes.reserve(additional);
    }

    /// The path's bytes (UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing has been appended.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Shortens the path to `len` bytes: back to what it was before a [`push`](Self::push).
    pub fn truncate(&mut self, len: usize) {
        self.bytes.truncate(len);
    }

    /// The path as a `String`.
    pub fn into_string(self) -> String {
        // Only valid UTF-8 is ever appended, so nothing is replaced.
        String::from_utf8(self.bytes)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// A copy of the path as a `String`.
    pub fn to_path_string(&self) -> String {
        // Only valid UTF-8 is ever appended, so nothing is replaced.
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Renames files whose paths collide with another file's path or with a directory, ignoring
/// ASCII case, as libtorrent does: the later file becomes `stem.N.ext` for the smallest free
/// `N` from 1.
pub struct Deduplicator {
    /// The most files that may be renamed before the torrent is refused.
    pub max_renames: usize,
}

/// Too many files share names (see [`Deduplicator::max_renames`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyDuplicates;

impl Deduplicator {
    /// Renames, in `paths`, the paths that collide. `paths[i]` is `None` for files that take
    /// no part (pad files, which are never written). Returns how many were renamed.
    pub fn run(&self, paths: &mut [Option<&mut String>]) -> Result<usize, TooManyDuplicates> {
        if !self.has_collisions(paths) {
            return Ok(0);
        }
        self.rename(paths)
    }

    /// A fast check without allocating per file: hashes every file path and directory
    /// prefix (ignoring ASCII case) and looks for a file whose hash equals anything else's.
    /// Equal hashes may be a real collision or a hash collision; either way the exact check
    /// in [`rename`](Self::rename) decides.
    fn has_collisions(&self, paths: &[Option<&mut String>]) -> bool {
        /// FNV-1a, 64 bits.
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0100_0000_01b3;
        /// Directories recently seen, by hash, so that one shared by many files is listed
        /// about once (a direct-mapped cache: a miss only lists a directory again).
        const RECENT_DIRS: usize = 1 << 14;
        let mut recent_dirs = vec![0u64; RECENT_DIRS];
        // Each name's hash with its lowest bit replaced by whether it is a file.
        let mut names: Vec<u64> = Vec::with_capacity(paths.len() * 2);
        for path in paths.iter().flatten() {
            let mut hash = OFFSET;
            for byte in path.bytes() {
                if byte == b'/' {
                    let dir = hash & !1;
                    // Stored with the lowest bit set, so that no hash matches an empty slot.
                    let slot = recent_dirs.get_mut((hash >> 1) as usize % RECENT_DIRS);
                    if let Some(seen) = slot.filter(|seen| **seen != dir | 1) {
                        *seen = dir | 1;
                        names.push(dir);
                    }
                }
                hash = (hash ^ u64::from(byte.to_ascii_lowercase())).wrapping_mul(PRIME);
            }
            names.push(hash | 1);
        }
        names.sort_unstable();
        // A run of equal hashes (ignoring the lowest bit) collides if it holds a file and
        // anything else; equal directories are the same directory.
        names.dedup_by(|a, b| a == b && *a & 1 == 0);
        names
            .chunk_by(|a, b| a >> 1 == b >> 1)
            .any(|run| run.len() > 1 && run.iter().any(|name| name & 1 == 1))
    }

    /// Renames colliding files, in order: every directory is taken first, then each file takes
    /// its name or the first free `stem.N.ext`.
    fn rename(&self, paths: &mut [Option<&mut String>]) -> Result<usize, TooManyDuplicates> {
        let mut taken: BTreeSet<String> = BTreeSet::new();
        for path in paths.iter().flatten() {
            for (at, _) in path.match_indices('/') {
                taken.insert(path[..at].to_ascii_lowercase());
            }
        }
        // The next N to try for each (stem, extension), lower-cased.
        let mut next_number: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut renamed = 0usize;
        for path in paths.iter_mut().flatten() {
            if taken.insert(path.to_ascii_lowercase()) {
                continue;
            }
            renamed += 1;
            if renamed > self.max_renames {
                return Err(TooManyDuplicates);
            }
            let (stem, extension) = split_extension(path);
            let (stem, extension) = (stem.to_owned(), extension.to_owned());
            let key = (stem.to_ascii_lowercase(), extension.to_ascii_lowercase());
            let mut number = next_number.get(&key).copied().unwrap_or(1);
            // Every candidate that is taken belongs to another file or directory, so this
            // ends within paths.len() + 1 tries.
            let candidate = loop {
                let candidate = numbered(&stem, number, &extension);
                number += 1;
                if taken.insert(candidate.to_ascii_lowercase()) {
                    break candidate;
                }
            };
            next_number.insert(key, number);
            **path = candidate;
        }
        Ok(renamed)
    }
}

/// Splits a path into everything before the extension of its last component, and the
/// extension (dot included; empty if none). A leading dot (`.bashrc`) is not an extension.
fn split_extension(path: &str) -> (&str, &str) {
    let name_start = path.rfind('/').map_or(0, |slash| slash + 1);
    match path[name_start..].rfind('.') {
        Some(dot) if dot > 0 => path.split_at(name_start + dot),
        _ => (path, ""),
    }
}

/// `stem.N.ext`, its last component kept within [`MAX_COMPONENT_LEN`] bytes.
fn numbered(stem: &str, number: u64, extension: &str) -> String {
    let suffix = format!(".{number}{extension}");
    let name_start = stem.rfind('/').map_or(0, |slash| slash + 1);
    let room = MAX_COMPONENT_LEN.saturating_sub(suffix.len());
    let name = &stem[name_start..];
    let keep = floor_char_boundary(name, room);
    format!("{}{}{}", &stem[..name_start], &name[..keep], suffix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn clean(raw: &[u8]) -> String {
        sanitize_component(raw)
    }

    #[test]
    fn dot_components_vanish() {
        assert_eq!(clean(b"."), "");
        assert_eq!(clean(b".."), "");
        assert_eq!(clean(b"..."), "");
        assert_eq!(clean(b". ."), "");
        assert_eq!(clean(b""), "");
        assert_eq!(clean(b".hidden"), ".hidden");
        assert_eq!(clean(b"..hidden"), "..hidden");
    }

    #[test]
    fn separators_are_removed() {
        assert_eq!(clean(b"/"), "");
        assert_eq!(clean(b"\\"), "");
        assert_eq!(clean(b"/foobar"), "foobar");
        assert_eq!(clean(b"foo/../../bar"), "foo....bar");
        assert_eq!(clean(b"C:\\Windows"), "C_Windows");
        // Removing a separator cannot leave a dot component behind.
        assert_eq!(clean(b"./"), "");
        assert_eq!(clean(b"./."), "");
    }

    #[test]
    fn control_and_reserved_characters_are_replaced() {
        assert_eq!(clean(b"a\x00b"), "ab");
        assert_eq!(clean(b"\x00\x00"), "");
        assert_eq!(clean(b"a\x01b\x1fc\x7fd"), "a_b_c_d");
        assert_eq!(clean(b"a<b>c:d\"e|f?g*h"), "a_b_c_d_e_f_g_h");
        assert_eq!(clean("a\u{202e}txt.exe".as_bytes()), "atxt.exe");
        assert_eq!(clean("\u{2066}x\u{200f}".as_bytes()), "x");
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(clean(b"\x82est"), "_est");
        assert_eq!(clean(b"a\xff\xfeb"), "a__b");
        assert_eq!(clean("żółw".as_bytes()), "żółw");
    }

    #[test]
    fn trailing_dots_and_spaces_are_removed() {
        assert_eq!(clean(b"name. . "), "name");
        assert_eq!(clean(b"foobar "), "foobar");
        assert_eq!(clean(b" lead"), " lead");
    }

    #[test]
    fn device_names_are_defused() {
        for name in [
            "CON",
            "con",
            "nul.txt",
            "Com1",
            "LPT9.tar.gz",
            "aux ",
            "COM¹",
            "conin$",
        ] {
            let cleaned = clean(name.as_bytes());
            assert!(cleaned.starts_with('_'), "{name} -> {cleaned}");
        }
        for name in ["CONSOLE", "com10", "lpt", "nul_", "xcon"] {
            assert_eq!(clean(name.as_bytes()), name);
        }
    }

    #[test]
    fn long_components_are_shortened_keeping_the_extension() {
        let long = format!("{}.mkv", "a".repeat(300));
        let cleaned = clean(long.as_bytes());
        assert_eq!(cleaned.len(), MAX_COMPONENT_LEN);
        assert!(cleaned.ends_with("aaa.mkv"));
        let no_ext = "b".repeat(1000);
        assert_eq!(clean(no_ext.as_bytes()).len(), MAX_COMPONENT_LEN);
        // Multi-byte characters are not cut in half.
        let wide = "ż".repeat(200);
        let cleaned = clean(wide.as_bytes());
        assert!(cleaned.len() <= MAX_COMPONENT_LEN && cleaned.len() >= MAX_COMPONENT_LEN - 1);
        // A long "extension" is not one.
        let long_ext = format!("x.{}", "e".repeat(300));
        assert_eq!(clean(long_ext.as_bytes()).len(), MAX_COMPONENT_LEN);
    }

    /// The path of `components`, and whether each was appended.
    fn join<'a>(components: impl IntoIterator<Item = &'a [u8]>) -> (SanitizedPath, Vec<bool>) {
        let mut path = SanitizedPath::default();
        let appended = components.into_iter().map(|c| path.push(c)).collect();
        (path, appended)
    }

    #[test]
    fn components_join_with_slashes() {
        let (path, appended) = join([&b".."[..], b"a", b"", b"/", b"b.txt", b"con.txt", b"x. "]);
        assert_eq!(appended, [false, true, false, false, true, true, true]);
        assert_eq!(path.len(), "a/b.txt/_con.txt/x".len());
        assert_eq!(path.into_string(), "a/b.txt/_con.txt/x");
        let (mut path, _) = join([&b"dir"[..], b"sub"]);
        path.truncate(3);
        path.push(b"other");
        assert_eq!(path.to_path_string(), "dir/other");
        let (empty, _) = join([&b".."[..], b"."]);
        assert!(empty.is_empty());
        assert_eq!(empty.into_string(), "");
    }

    proptest! {
        /// The path builder's fast path for plain names agrees with the general one.
        #[test]
        fn a_path_is_its_components_sanitised(
            components in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..12),
                    "[ -~]{0,12}".prop_map(String::into_bytes),
                    "(con|CoM1|lpt|nul|aux )[. a-z]{0,4}".prop_map(String::into_bytes),
                    "[a.]{250,260}".prop_map(String::into_bytes),
                ],
                0..6,
            )
        ) {
            let mut expected = String::new();
            let expected_appended: Vec<bool> =
                components.iter().map(|c| append_component(&mut expected, c)).collect();
            let (path, appended) = join(components.iter().map(Vec::as_slice));
            prop_assert_eq!(appended, expected_appended);
            prop_assert_eq!(path.to_path_string(), expected.clone());
            prop_assert_eq!(path.into_string(), expected);
        }

        /// The quick collision check never misses a collision the exact rename finds.
        #[test]
        fn collisions_are_never_missed(
            paths in proptest::collection::vec("[aAbB]{1,2}(/[aAbB]{1,2}){0,2}", 1..12)
        ) {
            let mut owned = paths.clone();
            let refs: Vec<Option<&mut String>> = owned.iter_mut().map(Some).collect();
            let dedup = Deduplicator { max_renames: usize::MAX };
            let quick = dedup.has_collisions(&refs);
            let mut refs = refs;
            let renamed = dedup.rename(&mut refs).unwrap();
            prop_assert!(quick || renamed == 0, "{:?}", paths);
        }
    }

    fn dedup(paths: &[&str]) -> Result<Vec<String>, TooManyDuplicates> {
        let mut owned: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        let mut refs: Vec<Option<&mut String>> = owned.iter_mut().map(Some).collect();
        Deduplicator { max_renames: 100 }.run(&mut refs)?;
        Ok(owned)
    }

    #[test]
    fn duplicates_are_renamed() {
        assert_eq!(
            dedup(&["foo/bar.txt", "foo/bar.txt", "foo/BAR.txt"]).unwrap(),
            ["foo/bar.txt", "foo/bar.1.txt", "foo/BAR.2.txt"]
        );
        // A file may not take a directory's name.
        assert_eq!(dedup(&["a", "a/b"]).unwrap(), ["a.1", "a/b"]);
        assert_eq!(dedup(&["A/b", "a"]).unwrap(), ["A/b", "a.1"]);
        // A renamed file does not take a name another file has.
        assert_eq!(dedup(&["x.1", "x", "x"]).unwrap(), ["x.1", "x", "x.2"]);
        assert_eq!(
            dedup(&[".bashrc", ".bashrc"]).unwrap(),
            [".bashrc", ".bashrc.1"]
        );
        assert_eq!(dedup(&["d.e/f", "d.e/f"]).unwrap(), ["d.e/f", "d.e/f.1"]);
        // No collisions: untouched.
        assert_eq!(dedup(&["a", "b", "c/a"]).unwrap(), ["a", "b", "c/a"]);
    }

    #[test]
    fn too_many_duplicates_are_refused() {
        let many = vec!["same"; 102];
        assert_eq!(dedup(&many), Err(TooManyDuplicates));
        let fine = vec!["same"; 101];
        let out = dedup(&fine).unwrap();
        assert_eq!(out[100], "same.100");
    }

    #[test]
    fn renamed_names_stay_short() {
        let long = "n".repeat(MAX_COMPONENT_LEN);
        let out = dedup(&[&long, &long]).unwrap();
        assert_eq!(out[1].len(), MAX_COMPONENT_LEN);
        assert!(out[1].ends_with(".1"));
    }

    #[test]
    fn pads_take_no_part() {
        let mut a = "x".to_string();
        let mut b = "x".to_string();
        let mut refs = vec![Some(&mut a), None, Some(&mut b)];
        assert_eq!(Deduplicator { max_renames: 1 }.run(&mut refs), Ok(1));
        assert_eq!(b, "x.1");
    }
}
