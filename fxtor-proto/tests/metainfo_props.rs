//! Property tests of the metainfo parser: no input makes it panic, and whatever it accepts
//! keeps its invariants (contained unique paths, consistent sizes, pieces that tile the files,
//! v2 files on piece boundaries).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use bytes::Bytes;
use fxtor_proto::bencode::OwnedValue;
use fxtor_proto::metainfo::PadKind;
use fxtor_proto::{PieceIndex, Sha256Hash, TorrentInfo};
use proptest::prelude::*;

fn fixtures() -> &'static [Vec<u8>] {
    static FIXTURES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/libtorrent");
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("fixture dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "torrent"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read(p).expect("fixture"))
            // The largest ones make mutation runs slow without adding cases.
            .filter(|b| b.len() < 20_000)
            .collect()
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Delete(usize),
    Insert(usize, u8),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let interesting = prop::sample::select(b"0123456789:-deil\xff ".to_vec());
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(at, x)| Mutation::Flip(at, x)),
        (any::<usize>(), interesting.clone()).prop_map(|(at, b)| Mutation::Set(at, b)),
        any::<usize>().prop_map(Mutation::Delete),
        (any::<usize>(), interesting).prop_map(|(at, b)| Mutation::Insert(at, b)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let at = |i: usize| i % bytes.len();
    match *mutation {
        Mutation::Flip(i, x) => {
            let i = at(i);
            bytes[i] ^= x;
        }
        Mutation::Set(i, b) => {
            let i = at(i);
            bytes[i] = b;
        }
        Mutation::Delete(i) => {
            bytes.remove(at(i));
        }
        Mutation::Insert(i, b) => bytes.insert(at(i), b),
        Mutation::Truncate(i) => bytes.truncate(at(i)),
    }
}

/// Checks what every loaded torrent must satisfy.
fn check_invariants(info: &TorrentInfo) -> Result<(), TestCaseError> {
    let files = info.files();
    prop_assert!(files.num_files() > 0);
    let total: u64 = files.files().iter().map(|f| f.size()).sum();
    prop_assert_eq!(total, files.total_size());
    prop_assert!(total > 0);
    let piece_length = u64::from(info.piece_length());
    prop_assert_eq!(u64::from(info.num_pieces()), total.div_ceil(piece_length));
    prop_assert!(!info.name().is_empty());

    let contained = |path: &str| {
        !path.is_empty()
            && path.split('/').all(|c| {
                !c.is_empty()
                    && c != "."
                    && c != ".."
                    && !c.contains(['\\', '\0'])
                    && !c.ends_with(['.', ' '])
                    && c.len() <= 255
            })
    };
    prop_assert!(contained(info.name()), "name {:?}", info.name());
    let mut offset = 0;
    let mut names = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    for file in files.files() {
        prop_assert_eq!(file.offset(), offset);
        offset += file.size();
        prop_assert!(
            contained(file.path_string()),
            "path {:?}",
            file.path_string()
        );
        if let Some(target) = file.symlink_target() {
            prop_assert!(contained(target), "target {target:?}");
            prop_assert_eq!(file.size(), 0);
        }
        if file.pad_kind() == Some(PadKind::Synthesized) || file.pieces_root().is_some() {
            prop_assert!(info.info_hashes().has_v2());
        }
        if file.pieces_root().is_some() {
            prop_assert_eq!(file.offset() % piece_length, 0);
        }
        if !file.is_pad() {
            let lower = file.path_string().to_ascii_lowercase();
            for (at, _) in lower.match_indices('/') {
                dirs.insert(lower[..at].to_owned());
            }
            prop_assert!(names.insert(lower), "duplicate {:?}", file.path_string());
        }
    }
    prop_assert!(names.is_disjoint(&dirs), "a file has a directory's name");

    // Pieces tile the files; v1 hashes exist for every piece or none.
    let mut covered = 0u64;
    for p in 0..info.num_pieces() {
        let piece = PieceIndex(p);
        let size = info.piece_size(piece);
        prop_assert!(size > 0 && u64::from(size) <= piece_length);
        let slices = files.map_block(piece, 0, size).expect("whole piece maps");
        let mapped: u64 = slices.iter().map(|s| u64::from(s.len)).sum();
        prop_assert_eq!(mapped, u64::from(size));
        for slice in &slices {
            let (at_piece, _) = files.map_file(slice.file, slice.offset).expect("maps back");
            prop_assert_eq!(at_piece, piece);
        }
        prop_assert_eq!(
            info.v1_piece_hash(piece).is_some(),
            info.has_v1_piece_hashes()
        );
        covered += u64::from(size);
    }
    prop_assert_eq!(covered, total);
    prop_assert!(info.v1_piece_hash(PieceIndex(info.num_pieces())).is_none());
    Ok(())
}

fn dict(entries: Vec<(&[u8], OwnedValue)>) -> OwnedValue {
    let mut d = OwnedValue::dict();
    for (k, v) in entries {
        d.insert(Bytes::copy_from_slice(k), v);
    }
    d
}

/// Path components that include hostile ones.
fn component() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::sample::select(vec![
            b"..".to_vec(),
            b".".to_vec(),
            b"".to_vec(),
            b"/".to_vec(),
            b"\\".to_vec(),
            b"CON".to_vec(),
            b"a".to_vec(),
            b"A".to_vec(),
            b"a.txt".to_vec(),
            b"dir".to_vec(),
            b"x\x00y".to_vec(),
            b"\xff\xfe".to_vec(),
            b"name. ".to_vec(),
            vec![b'n'; 300],
        ]),
        prop::collection::vec(any::<u8>(), 0..12),
    ]
}

#[derive(Debug, Clone)]
struct SpecFile {
    path: Vec<Vec<u8>>,
    size: u64,
    attr: &'static str,
}

fn spec_file() -> impl Strategy<Value = SpecFile> {
    (
        prop::collection::vec(component(), 1..4),
        prop_oneof![Just(0u64), 1u64..100, 1u64..100_000],
        prop::sample::select(vec!["", "", "", "x", "h", "p", "l", "xh"]),
    )
        .prop_map(|(path, size, attr)| SpecFile { path, size, attr })
}

fn v1_file(f: &SpecFile) -> OwnedValue {
    let mut entries = vec![
        (&b"length"[..], OwnedValue::Int(f.size as i64)),
        (
            b"path",
            OwnedValue::List(f.path.iter().map(|c| OwnedValue::from(c.clone())).collect()),
        ),
    ];
    if !f.attr.is_empty() {
        entries.push((b"attr", OwnedValue::from(f.attr)));
    }
    if f.attr.contains('l') {
        entries.push((
            b"symlink path",
            OwnedValue::List(vec![OwnedValue::from("a")]),
        ));
    }
    dict(entries)
}

fn v1_torrent(files: &[SpecFile], piece_length: u32, name: &[u8]) -> Vec<u8> {
    // Generously many hashes; a wrong count is an error the test allows for.
    let total: u64 = files
        .iter()
        .filter(|f| !f.attr.contains('l'))
        .map(|f| f.size)
        .sum();
    let pieces = total.div_ceil(u64::from(piece_length)) as usize;
    let info = dict(vec![
        (b"name", OwnedValue::from(name)),
        (b"piece length", OwnedValue::Int(i64::from(piece_length))),
        (b"pieces", OwnedValue::from(vec![5u8; 20 * pieces])),
        (
            b"files",
            OwnedValue::List(files.iter().map(v1_file).collect()),
        ),
    ]);
    dict(vec![(b"info", info)]).to_vec()
}

/// A v2 tree of files `(name, size)` under directories `dir0..`, with arbitrary roots.
fn v2_tree(files: &[(Vec<u8>, u64)], dirs: usize) -> OwnedValue {
    let mut tree = OwnedValue::dict();
    let mut dir_nodes: Vec<OwnedValue> = (0..dirs).map(|_| OwnedValue::dict()).collect();
    for (i, (name, size)) in files.iter().enumerate() {
        let mut props = dict(vec![(b"length", OwnedValue::Int(*size as i64))]);
        if *size > 0 {
            props.insert(
                "pieces root",
                OwnedValue::from(vec![(i % 250) as u8 + 1; 32]),
            );
        }
        let leaf = dict(vec![(b"", props)]);
        let mut key = name.clone();
        key.extend_from_slice(format!("-{i}").as_bytes());
        match dir_nodes.get_mut(i % (dirs + 1)) {
            Some(dir) => dir.insert(Bytes::from(key), leaf),
            None => tree.insert(Bytes::from(key), leaf),
        }
    }
    for (d, node) in dir_nodes.into_iter().enumerate() {
        if matches!(&node, OwnedValue::Dict(m) if !m.is_empty()) {
            tree.insert(Bytes::from(format!("dir{d}")), node);
        }
    }
    tree
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = TorrentInfo::from_bytes(&bytes);
        let _ = TorrentInfo::from_info_bytes(&bytes);
        let mut prefixed = b"d4:infod".to_vec();
        prefixed.extend_from_slice(&bytes);
        let _ = TorrentInfo::from_bytes(&prefixed);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let fixtures = fixtures();
        let mut bytes = fixtures[which.index(fixtures.len())].clone();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if let Ok(info) = TorrentInfo::from_bytes(&bytes) {
            check_invariants(&info)?;
            // What loaded from a file loads the same from its info bytes.
            let again = TorrentInfo::from_info_bytes(info.info_bytes()).expect("info reloads");
            prop_assert_eq!(again.files(), info.files());
            prop_assert_eq!(again.info_hashes(), info.info_hashes());
        }
    }

    #[test]
    fn random_v1_torrents_keep_invariants(
        files in prop::collection::vec(spec_file(), 1..12),
        piece_exp in 0u32..18,
        name in component(),
    ) {
        let bytes = v1_torrent(&files, 1 << piece_exp, &name);
        match TorrentInfo::from_bytes(&bytes) {
            Ok(info) => {
                check_invariants(&info)?;
                prop_assert!(info.is_multi_file());
                prop_assert_eq!(info.files().num_files(), files.len());
            }
            Err(e) => {
                // Only these can go wrong with such input.
                let allowed = matches!(
                    e,
                    fxtor_proto::metainfo::MetainfoError::EmptyTorrent
                        | fxtor_proto::metainfo::MetainfoError::MissingPath { .. }
                        | fxtor_proto::metainfo::MetainfoError::TooManyPieces { .. }
                );
                prop_assert!(allowed, "{e}");
            }
        }
    }

    #[test]
    fn random_v2_torrents_align_and_hybridise(
        files in prop::collection::vec(
            (prop::collection::vec(any::<u8>(), 0..6), prop_oneof![Just(0u64), 1u64..70_000]),
            1..10,
        ),
        dirs in 0usize..3,
        piece_exp in 14u32..18,
    ) {
        let piece_length = 1u32 << piece_exp;
        let tree = v2_tree(&files, dirs);
        let mut info = dict(vec![
            (b"name", OwnedValue::from("t")),
            (b"piece length", OwnedValue::Int(i64::from(piece_length))),
            (b"meta version", OwnedValue::Int(2)),
            (b"file tree", tree),
        ]);
        let v2_only = TorrentInfo::from_bytes(&dict(vec![(b"info", info.clone())]).to_vec());
        let total: u64 = files.iter().map(|f| f.1).sum();
        let Ok(v2_only) = v2_only else {
            prop_assert_eq!(total, 0);
            return Ok(());
        };
        check_invariants(&v2_only)?;
        prop_assert!(!v2_only.info_hashes().has_v1());
        for file in v2_only.files().files() {
            prop_assert_eq!(file.pieces_root().is_some(), !file.is_pad() && file.size() > 0);
            if file.is_pad() {
                prop_assert_eq!(file.pad_kind(), Some(PadKind::Synthesized));
                prop_assert!(file.size() < u64::from(piece_length));
                prop_assert_eq!(file.end() % u64::from(piece_length), 0);
            }
        }

        // The same files as a v1 list, pads where the v2 layout puts them: a hybrid.
        let v1_list: Vec<OwnedValue> = v2_only
            .files()
            .files()
            .iter()
            .map(|f| {
                let mut entries = vec![
                    (&b"length"[..], OwnedValue::Int(f.size() as i64)),
                    (
                        b"path",
                        OwnedValue::List(f.components().map(OwnedValue::from).collect()),
                    ),
                ];
                if f.is_pad() {
                    entries.push((b"attr", OwnedValue::from("p")));
                }
                dict(entries)
            })
            .collect();
        if v2_only.is_multi_file() {
            info.insert("files", OwnedValue::List(v1_list));
        } else {
            // A single file: the v1 view names it by `name`, and has no tail pad.
            let file = &v2_only.files().files()[0];
            info.insert("name", OwnedValue::from(file.path_string()));
            info.insert("length", OwnedValue::Int(total as i64));
        }
        info.insert(
            "pieces",
            OwnedValue::from(vec![1u8; 20 * v2_only.num_pieces() as usize]),
        );
        let hybrid = TorrentInfo::from_bytes(&dict(vec![(b"info", info)]).to_vec())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        check_invariants(&hybrid)?;
        prop_assert!(hybrid.info_hashes().is_hybrid());
        prop_assert_eq!(hybrid.is_multi_file(), v2_only.is_multi_file());
        let real = |info: &TorrentInfo| -> Vec<(String, u64, u64, Option<Sha256Hash>)> {
            info.files()
                .files()
                .iter()
                .filter(|f| !f.is_pad())
                .map(|f| (f.path_string().to_owned(), f.size(), f.offset(), f.pieces_root()))
                .collect()
        };
        prop_assert_eq!(real(&hybrid), real(&v2_only));
        prop_assert_eq!(hybrid.num_pieces(), v2_only.num_pieces());
    }

    #[test]
    fn piece_layers_never_panic(
        layer in prop::collection::vec(any::<[u8; 32]>(), 0..40),
        key in prop::collection::vec(any::<u8>(), 30..34),
    ) {
        let torrent = std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/libtorrent/v2_no_piece_layers.torrent"),
        )
        .expect("fixture");
        let mut info = TorrentInfo::from_bytes(&torrent).expect("loads");
        let hashes: Vec<Sha256Hash> = layer.iter().map(|h| Sha256Hash(*h)).collect();
        prop_assert!(info.set_piece_layer(fxtor_proto::FileIndex(0), &hashes).is_err());
        prop_assert!(info.set_piece_layer(fxtor_proto::FileIndex(7), &hashes).is_err());
        let flat: Vec<u8> = layer.iter().flatten().copied().collect();
        let layers = dict(vec![(&key[..], OwnedValue::from(flat))]).to_vec();
        let decoded = fxtor_proto::bencode::decode(&layers, fxtor_proto::bencode::Mode::Strict)
            .expect("valid bencode");
        prop_assert!(info.set_piece_layers(decoded.as_dict().expect("dict")).is_err());
        prop_assert!(!info.has_piece_layers());
    }
}
