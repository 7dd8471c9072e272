//! Hostile .torrent files: every one is refused with a clear error or loads with its damage
//! contained, and large torrents load quickly.

use bytes::Bytes;
use fxtor_proto::bencode::{self, OwnedValue};
use fxtor_proto::merkle;
use fxtor_proto::metainfo::{LoadLimits, MetainfoError, PadKind, MAX_FILE_SIZE};
use fxtor_proto::{FileIndex, PieceIndex, Sha256Hash, TorrentInfo};

type E = MetainfoError;

fn dict(entries: Vec<(&[u8], OwnedValue)>) -> OwnedValue {
    let mut d = OwnedValue::dict();
    for (k, v) in entries {
        d.insert(Bytes::copy_from_slice(k), v);
    }
    d
}

fn bytes(b: &[u8]) -> OwnedValue {
    OwnedValue::from(b)
}

fn list(items: Vec<OwnedValue>) -> OwnedValue {
    OwnedValue::List(items)
}

fn path(components: &[&[u8]]) -> OwnedValue {
    list(components.iter().map(|c| bytes(c)).collect())
}

/// A v1 multi-file info dictionary with the right number of (fake) piece hashes.
fn v1_info(files: Vec<OwnedValue>, sizes: u64, piece_length: i64) -> OwnedValue {
    let pieces = sizes.div_ceil(piece_length as u64) as usize;
    dict(vec![
        (b"name", bytes(b"test")),
        (b"piece length", OwnedValue::Int(piece_length)),
        (b"pieces", OwnedValue::from(vec![7u8; 20 * pieces])),
        (b"files", list(files)),
    ])
}

fn v1_file(components: &[&[u8]], length: i64) -> OwnedValue {
    dict(vec![
        (b"length", OwnedValue::Int(length)),
        (b"path", path(components)),
    ])
}

fn torrent(info: OwnedValue) -> Vec<u8> {
    dict(vec![(b"info", info)]).to_vec()
}

fn load(info: OwnedValue) -> Result<TorrentInfo, MetainfoError> {
    TorrentInfo::from_bytes(&torrent(info))
}

/// A v2 file-tree leaf.
fn v2_leaf(length: i64, root: Option<Sha256Hash>) -> OwnedValue {
    let mut props = vec![(&b"length"[..], OwnedValue::Int(length))];
    if let Some(root) = root {
        props.push((b"pieces root", bytes(&root.0)));
    }
    dict(vec![(b"", dict(props))])
}

fn v2_info(tree: OwnedValue, piece_length: i64) -> OwnedValue {
    dict(vec![
        (b"name", bytes(b"test")),
        (b"piece length", OwnedValue::Int(piece_length)),
        (b"meta version", OwnedValue::Int(2)),
        (b"file tree", tree),
    ])
}

fn root(n: u8) -> Option<Sha256Hash> {
    Some(Sha256Hash([n; 32]))
}

#[test]
fn bad_piece_lengths() {
    for length in [0, -1, -16384, i64::MAX, 1 << 31] {
        let info = v1_info(vec![v1_file(&[b"a"], 10)], 10, 1);
        let mut info = info;
        info.insert("piece length", OwnedValue::Int(length));
        assert!(
            matches!(load(info), Err(E::InvalidPieceLength(l)) if l == length),
            "{length}"
        );
    }
    // v2: a power of two of at least 16 KiB.
    for length in [8192, 16385, 3 * 16384, 0] {
        let info = v2_info(dict(vec![(b"a", v2_leaf(10, root(1)))]), length);
        assert!(
            matches!(load(info), Err(E::InvalidPieceLength(_))),
            "{length}"
        );
    }
    let not_an_int = v2_info(dict(vec![(b"a", v2_leaf(10, root(1)))]), 16384);
    let mut not_an_int = not_an_int;
    not_an_int.insert("piece length", bytes(b"16384"));
    assert!(matches!(
        load(not_an_int),
        Err(E::WrongType {
            key: "piece length",
            ..
        })
    ));
}

#[test]
fn wrong_pieces_length() {
    for extra in [-20i64, -1, 1, 20] {
        let mut info = v1_info(vec![v1_file(&[b"a"], 40000)], 40000, 16384);
        let len = (60 + extra) as usize;
        info.insert("pieces", OwnedValue::from(vec![1u8; len]));
        assert!(
            matches!(load(info), Err(E::PiecesLength { expected: 60, got }) if got == len),
            "{extra}"
        );
    }
    let mut missing = v1_info(vec![v1_file(&[b"a"], 10)], 10, 16384);
    if let OwnedValue::Dict(d) = &mut missing {
        d.remove(&b"pieces"[..]);
    }
    assert!(matches!(load(missing), Err(E::MissingKey("pieces"))));
}

#[test]
fn traversal_and_absolute_paths_stay_inside() {
    let files = vec![
        v1_file(&[b"..", b"..", b"etc", b"passwd"], 1),
        v1_file(&[b"/etc/shadow"], 1),
        v1_file(&[b"C:\\Windows", b"system32"], 1),
        v1_file(&[b"a", b".", b"..", b"b"], 1),
        v1_file(&[b"\\\\server\\share"], 1),
        v1_file(&[b"NUL"], 1),
        v1_file(&[b"x\x00y"], 1),
        v1_file(&[b"..\\..\\boot.ini"], 1),
    ];
    let info = load(v1_info(files, 8, 16384)).unwrap();
    let paths: Vec<&str> = info
        .files()
        .files()
        .iter()
        .map(|f| f.path_string())
        .collect();
    assert_eq!(
        paths,
        [
            "etc/passwd",
            "etcshadow",
            "C_Windows/system32",
            "a/b",
            "servershare",
            "_NUL",
            "xy",
            "....boot.ini"
        ]
    );
    // The name is one component, whatever it says.
    let mut info = v1_info(vec![v1_file(&[b"f"], 1)], 1, 16384);
    info.insert("name", bytes(b"../../../etc"));
    assert_eq!(load(info).unwrap().name(), "......etc");
    let mut single = dict(vec![
        (b"name", bytes(b"/etc/passwd")),
        (b"length", OwnedValue::Int(5)),
        (b"piece length", OwnedValue::Int(16384)),
        (b"pieces", OwnedValue::from(vec![0u8; 20])),
    ]);
    assert_eq!(load(single.clone()).unwrap().name(), "etcpasswd");
    single.insert("name", bytes(b".."));
    assert!(matches!(load(single), Err(E::MissingName)));
}

#[test]
fn symlinks_cannot_point_outside() {
    let link = dict(vec![
        (b"attr", bytes(b"l")),
        (b"path", path(&[b"link"])),
        (
            b"symlink path",
            path(&[b"..", b"..", b"..", b"etc", b"passwd"]),
        ),
    ]);
    let absolute = dict(vec![
        (b"attr", bytes(b"l")),
        (b"path", path(&[b"link2"])),
        (b"symlink path", path(&[b"/", b"etc"])),
    ]);
    let nowhere = dict(vec![
        (b"attr", bytes(b"l")),
        (b"length", OwnedValue::Int(0)),
        (b"path", path(&[b"link3"])),
        (b"symlink path", path(&[b"..", b".", b"/"])),
    ]);
    let info = load(v1_info(
        vec![v1_file(&[b"f"], 1), link, absolute, nowhere],
        1,
        16384,
    ))
    .unwrap();
    let files = info.files().files();
    assert_eq!(files[1].symlink_target(), Some("etc/passwd"));
    assert_eq!(files[2].symlink_target(), Some("etc"));
    // A target that vanishes makes an ordinary empty file, as in libtorrent.
    assert!(!files[3].is_symlink());
    assert_eq!(files[3].size(), 0);
}

fn hybrid(v1_files: Vec<OwnedValue>, tree: OwnedValue, piece_length: i64) -> OwnedValue {
    let mut info = v2_info(tree, piece_length);
    let mut total = 0u64;
    for f in &v1_files {
        if let OwnedValue::Dict(d) = f {
            if let Some(OwnedValue::Int(n)) = d.get(&b"length"[..]) {
                total += *n as u64;
            }
        }
    }
    info.insert("files", list(v1_files));
    let pieces = total.div_ceil(piece_length as u64) as usize;
    info.insert("pieces", OwnedValue::from(vec![3u8; 20 * pieces.max(1)]));
    info
}

fn pad(length: i64) -> OwnedValue {
    dict(vec![
        (b"attr", bytes(b"p")),
        (b"length", OwnedValue::Int(length)),
        (b"path", path(&[b".pad", length.to_string().as_bytes()])),
    ])
}

#[test]
fn hybrid_halves_must_agree() {
    let tree = || {
        dict(vec![
            (b"a", v2_leaf(100, root(1))),
            (b"b", v2_leaf(200, root(2))),
        ])
    };
    // Consistent, with and without the tail pad.
    let good = hybrid(
        vec![v1_file(&[b"a"], 100), pad(16284), v1_file(&[b"b"], 200)],
        tree(),
        16384,
    );
    let info = load(good).unwrap();
    assert!(info.info_hashes().is_hybrid());
    assert_eq!(info.files().num_files(), 3);
    assert_eq!(info.files().files()[2].pieces_root(), root(2));
    let tail = hybrid(
        vec![
            v1_file(&[b"a"], 100),
            pad(16284),
            v1_file(&[b"b"], 200),
            pad(16184),
        ],
        tree(),
        16384,
    );
    let info = load(tail).unwrap();
    assert_eq!(info.files().num_files(), 4);
    assert_eq!(info.files().files()[3].pad_kind(), Some(PadKind::Listed));

    let inconsistent = |files: Vec<OwnedValue>| {
        let result = load(hybrid(files, tree(), 16384));
        assert!(matches!(result, Err(E::InconsistentFiles(_))), "{result:?}");
    };
    // Missing pad: b is not aligned.
    inconsistent(vec![v1_file(&[b"a"], 100), v1_file(&[b"b"], 200)]);
    // Different name, size, order; missing or extra file.
    inconsistent(vec![
        v1_file(&[b"a"], 100),
        pad(16284),
        v1_file(&[b"c"], 200),
    ]);
    inconsistent(vec![
        v1_file(&[b"a"], 100),
        pad(16284),
        v1_file(&[b"b"], 201),
    ]);
    inconsistent(vec![
        v1_file(&[b"b"], 200),
        pad(16184),
        v1_file(&[b"a"], 100),
    ]);
    inconsistent(vec![v1_file(&[b"a"], 100)]);
    inconsistent(vec![
        v1_file(&[b"a"], 100),
        pad(16284),
        v1_file(&[b"b"], 200),
        pad(16184),
        v1_file(&[b"c"], 1),
    ]);
    // A pad too long moves b.
    inconsistent(vec![
        v1_file(&[b"a"], 100),
        pad(16284 + 16384),
        v1_file(&[b"b"], 200),
    ]);
    // Too much padding at the end.
    inconsistent(vec![
        v1_file(&[b"a"], 100),
        pad(16284),
        v1_file(&[b"b"], 200),
        pad(16184 + 16384),
    ]);
}

#[test]
fn huge_lengths_do_not_overflow() {
    for length in [i64::MAX, i64::MIN, (MAX_FILE_SIZE + 1) as i64, -1] {
        let info = v1_info(vec![v1_file(&[b"a"], length)], 1, 16384);
        assert!(
            matches!(load(info), Err(E::InvalidFileLength { .. })),
            "{length}"
        );
        let info = v2_info(dict(vec![(b"a", v2_leaf(length, root(1)))]), 16384);
        assert!(
            matches!(load(info), Err(E::InvalidFileLength { .. })),
            "{length}"
        );
    }
    // Many files at the largest size: too many pieces, not an overflow.
    let big = MAX_FILE_SIZE as i64;
    let files: Vec<OwnedValue> = (0..20u8).map(|i| v1_file(&[&[b'a' + i]], big)).collect();
    let mut info = v1_info(files, 16384, 16384);
    info.insert("pieces", OwnedValue::from(vec![0u8; 20]));
    assert!(matches!(load(info), Err(E::TooManyPieces { .. })));
    let tree: Vec<(Vec<u8>, OwnedValue)> = (0..20u8)
        .map(|i| (vec![b'a' + i], v2_leaf(big, root(i + 1))))
        .collect();
    let mut tree_dict = OwnedValue::dict();
    for (k, v) in tree {
        tree_dict.insert(k, v);
    }
    assert!(matches!(
        load(v2_info(tree_dict, 16384)),
        Err(E::TooManyPieces { .. })
    ));
    // Total size zero.
    assert!(matches!(
        load(v1_info(vec![v1_file(&[b"a"], 0)], 1, 16384)),
        Err(E::EmptyTorrent)
    ));
}

/// A `file tree` nested `depth` directories deep with one file at the bottom.
fn deep_tree(depth: usize) -> OwnedValue {
    let mut node = dict(vec![(b"f", v2_leaf(10, root(9)))]);
    for _ in 0..depth {
        node = dict(vec![(b"d", node)]);
    }
    node
}

#[test]
fn deep_file_trees_are_refused() {
    assert!(load(v2_info(deep_tree(20), 16384)).is_ok());
    // Past the decoder's depth limit.
    assert!(matches!(
        load(v2_info(deep_tree(150), 16384)),
        Err(E::Bencode(_))
    ));
    // Past the file tree's own limit, with a decoder allowed to go deeper.
    let limits = LoadLimits {
        bencode: bencode::Limits {
            max_depth: 400,
            ..Default::default()
        },
        max_file_tree_depth: 100,
        ..Default::default()
    };
    let bytes = torrent(v2_info(deep_tree(150), 16384));
    assert!(matches!(
        TorrentInfo::from_bytes_with(&bytes, &limits),
        Err(E::FileTreeTooDeep(100))
    ));
}

#[test]
fn malformed_file_trees() {
    let bad = |tree: OwnedValue| load(v2_info(tree, 16384)).unwrap_err();
    // The tree's root may not be a file.
    assert!(matches!(bad(v2_leaf(10, root(1))), E::FileTree { .. }));
    // A file node with siblings is a directory holding an empty name.
    let mut mixed = v2_leaf(10, root(1));
    mixed.insert("x", v2_leaf(1, root(2)));
    assert!(matches!(bad(dict(vec![(b"a", mixed)])), E::FileTree { .. }));
    assert!(matches!(
        bad(dict(vec![(b"a", OwnedValue::Int(1))])),
        E::FileTree { .. }
    ));
    // Roots: missing, short, zero.
    assert!(matches!(
        bad(dict(vec![(b"a", v2_leaf(10, None))])),
        E::InvalidPiecesRoot { .. }
    ));
    let short = dict(vec![(
        b"",
        dict(vec![
            (b"length", OwnedValue::Int(10)),
            (b"pieces root", bytes(&[1; 31])),
        ]),
    )]);
    assert!(matches!(
        bad(dict(vec![(b"a", short)])),
        E::InvalidPiecesRoot { .. }
    ));
    assert!(matches!(
        bad(dict(vec![(b"a", v2_leaf(10, Some(Sha256Hash::default())))])),
        E::InvalidPiecesRoot { .. }
    ));
    // Empty files need no root; a tree of only empty files is an empty torrent.
    assert!(matches!(
        bad(dict(vec![(b"a", v2_leaf(0, None))])),
        E::EmptyTorrent
    ));
    assert!(matches!(bad(OwnedValue::dict()), E::NoFiles));
    // Versions.
    let mut v3 = v2_info(dict(vec![(b"a", v2_leaf(10, root(1)))]), 16384);
    v3.insert("meta version", OwnedValue::Int(3));
    assert!(matches!(load(v3), Err(E::UnknownVersion(3))));
    let mut unversioned = v1_info(vec![v1_file(&[b"a"], 10)], 10, 16384);
    unversioned.insert("file tree", dict(vec![(b"a", v2_leaf(10, root(1)))]));
    assert!(matches!(load(unversioned), Err(E::FileTreeWithoutVersion)));
}

#[test]
fn bad_piece_layers() {
    // A 3-piece file with real data, so its layer is real.
    let data: Vec<u8> = (0..40000u32).map(|i| (i % 251) as u8).collect();
    let tree = merkle::MerkleTree::from_data(&data).unwrap();
    let layer: Vec<u8> = tree
        .piece_layer(0)
        .unwrap()
        .iter()
        .flat_map(|h| h.0)
        .collect();
    assert_eq!(layer.len(), 3 * 32);
    let root = tree.root();
    let with_layers = |layers: OwnedValue| {
        let info = v2_info(dict(vec![(b"f", v2_leaf(40000, Some(root)))]), 16384);
        TorrentInfo::from_bytes(&dict(vec![(b"info", info), (b"piece layers", layers)]).to_vec())
    };
    let good = with_layers(dict(vec![(&root.0[..], bytes(&layer))])).unwrap();
    assert_eq!(
        good.piece_layer(FileIndex(0)).unwrap(),
        tree.piece_layer(0).unwrap()
    );
    assert_eq!(good.v2_piece_hash(PieceIndex(2)), tree.node(0, 2));

    let bad = |layers: OwnedValue| {
        let result = with_layers(layers);
        assert!(
            matches!(result, Err(E::InvalidPieceLayer { .. })),
            "{result:?}"
        );
    };
    let mut flipped = layer.clone();
    flipped[40] ^= 1;
    bad(dict(vec![(&root.0[..], bytes(&flipped))]));
    bad(dict(vec![(&root.0[..], bytes(&layer[..64]))]));
    bad(dict(vec![(&root.0[..], bytes(&layer[..95]))]));
    bad(dict(vec![(&root.0[..], OwnedValue::Int(5))]));
    bad(dict(vec![
        (&root.0[..], bytes(&layer)),
        (&[9u8; 32][..], bytes(&layer)),
    ]));
    bad(dict(vec![(&root.0[..31], bytes(&layer))]));
    assert!(matches!(
        with_layers(OwnedValue::Int(1)),
        Err(E::WrongType {
            key: "piece layers",
            ..
        })
    ));
}

#[test]
fn too_many_things() {
    let files: Vec<OwnedValue> = (0..50)
        .map(|i| v1_file(&[format!("f{i}").as_bytes()], 1))
        .collect();
    let bytes = torrent(v1_info(files, 50, 16384));
    let limits = LoadLimits {
        max_files: 49,
        ..Default::default()
    };
    assert!(matches!(
        TorrentInfo::from_bytes_with(&bytes, &limits),
        Err(E::TooManyFiles { max: 49 })
    ));
    let limits = LoadLimits {
        max_files: 50,
        ..Default::default()
    };
    assert!(TorrentInfo::from_bytes_with(&bytes, &limits).is_ok());

    let same: Vec<OwnedValue> = (0..102).map(|_| v1_file(&[b"same"], 1)).collect();
    assert!(matches!(
        load(v1_info(same, 102, 16384)),
        Err(E::TooManyDuplicateNames { max: 100 })
    ));
}

#[test]
fn missing_and_mistyped_keys() {
    let err = |t: OwnedValue| TorrentInfo::from_bytes(&t.to_vec()).unwrap_err();
    assert!(matches!(err(OwnedValue::Int(1)), E::NotADictionary));
    assert!(matches!(err(OwnedValue::dict()), E::MissingKey("info")));
    assert!(matches!(
        err(dict(vec![(b"info", OwnedValue::Int(1))])),
        E::WrongType { key: "info", .. }
    ));
    let mut files_not_list = v1_info(vec![], 1, 16384);
    files_not_list.insert("files", OwnedValue::Int(3));
    assert!(matches!(
        load(files_not_list),
        Err(E::WrongType { key: "files", .. })
    ));
    let entry_not_dict = v1_info(vec![OwnedValue::Int(3)], 1, 16384);
    assert!(matches!(load(entry_not_dict), Err(E::InvalidFile { .. })));
    let path_not_strings = v1_info(
        vec![dict(vec![
            (b"length", OwnedValue::Int(1)),
            (b"path", list(vec![bytes(b"a"), OwnedValue::Int(2)])),
        ])],
        1,
        16384,
    );
    assert!(matches!(load(path_not_strings), Err(E::InvalidFile { .. })));
    let no_path = v1_info(vec![dict(vec![(b"length", OwnedValue::Int(1))])], 1, 16384);
    assert!(matches!(load(no_path), Err(E::MissingPath { .. })));
    assert!(matches!(
        TorrentInfo::from_bytes(b"d4:info"),
        Err(E::Bencode(_))
    ));
    assert!(matches!(
        TorrentInfo::from_info_bytes(b"d4:name1:xe trailing"),
        Err(E::Bencode(_))
    ));
}

/// A torrent of `n` files in a few directories.
fn many_files_v1(n: usize) -> Vec<u8> {
    let files: Vec<OwnedValue> = (0..n)
        .map(|i| {
            let dir = format!("dir{}", i % 100);
            let name = format!("file-{i}.dat");
            v1_file(&[dir.as_bytes(), name.as_bytes()], 1000)
        })
        .collect();
    torrent(v1_info(files, 1000 * n as u64, 1 << 20))
}

fn many_files_v2(n: usize) -> Vec<u8> {
    let mut dirs = OwnedValue::dict();
    for d in 0..100 {
        let mut dir = OwnedValue::dict();
        for i in (d..n).step_by(100) {
            dir.insert(
                format!("file-{i}.dat"),
                v2_leaf(1000, root((i % 250) as u8 + 1)),
            );
        }
        dirs.insert(format!("dir{d}"), dir);
    }
    torrent(v2_info(dirs, 16384))
}

#[test]
fn sixty_thousand_files_load() {
    // How fast is measured by the `metainfo` bench, not here.
    for bytes in [many_files_v1(60_000), many_files_v2(60_000)] {
        let info = TorrentInfo::from_bytes(&bytes).unwrap();
        let real = info.files().files().iter().filter(|f| !f.is_pad()).count();
        assert_eq!(real, 60_000);
    }
}

#[test]
fn fifty_thousand_duplicates_are_refused() {
    let files: Vec<OwnedValue> = (0..50_000).map(|_| v1_file(&[b"same.txt"], 1)).collect();
    assert!(matches!(
        load(v1_info(files, 50_000, 1 << 20)),
        Err(E::TooManyDuplicateNames { .. })
    ));
}
