//! fxtor's metainfo parser against libtorrent's own test torrents (see
//! `fixtures/libtorrent/SOURCE.md`): the same verdict on every file, and for the valid ones
//! the same info-hashes, pieces and files as libtorrent 2.0.8.

use std::path::PathBuf;

use fxtor_proto::metainfo::MetainfoError;
use fxtor_proto::{FileIndex, PieceIndex, TorrentInfo};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/libtorrent")
}

fn load(name: &str) -> Result<TorrentInfo, MetainfoError> {
    let bytes = std::fs::read(fixture_dir().join(name)).expect("fixture file");
    TorrentInfo::from_bytes(&bytes)
}

fn read_tsv(name: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(fixture_dir().join(name)).expect("tsv file");
    text.lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Every fixture gets the verdict MANIFEST.tsv records.
///
/// `v2_invalid_root_hash.torrent` (a piece layer that does not hash up to its file's root)
/// is refused by libtorrent only when the torrent is added to a session; fxtor checks piece
/// layers while loading, so refuses it at load. The same goes for
/// `v2_invalid_piece_layer_root.torrent`, which libtorrent 2.0.8 also loads and newer
/// versions refuse.
#[test]
fn verdicts_match_the_manifest() {
    let manifest = read_tsv("MANIFEST.tsv");
    assert_eq!(manifest.len(), 108);
    let mut mismatches = Vec::new();
    for row in &manifest {
        let (file, expect) = (&row[0], &row[1]);
        let result = load(file);
        let valid = result.is_ok();
        if valid != (expect == "valid") {
            mismatches.push(format!("{file}: expected {expect}, got {result:?}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} fixtures differ:\n{}",
        mismatches.len(),
        manifest.len(),
        mismatches.join("\n")
    );
}

/// The valid fixtures load as libtorrent 2.0.8 loads them (expected.tsv).
#[test]
fn valid_fixtures_match_libtorrent() {
    let expected = read_tsv("expected.tsv");
    assert!(expected.len() >= 60);
    for row in &expected {
        let file = &row[0];
        let info = load(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let ih = info.info_hashes();
        let v1 = ih.get_v1().map_or("-".to_string(), |h| h.to_hex());
        let v2 = ih.get_v2().map_or("-".to_string(), |h| h.to_hex());
        assert_eq!(v1, row[1], "{file}: v1 info-hash");
        assert_eq!(v2, row[2], "{file}: v2 info-hash");
        assert_eq!(
            info.piece_length().to_string(),
            row[3],
            "{file}: piece length"
        );
        assert_eq!(info.num_pieces().to_string(), row[4], "{file}: pieces");
        assert_eq!(info.total_size().to_string(), row[5], "{file}: total size");
        assert_eq!(
            info.files().num_files().to_string(),
            row[6],
            "{file}: files"
        );
        let files: Vec<String> = info
            .files()
            .files()
            .iter()
            .map(|f| {
                let mut s = f.size().to_string();
                if f.is_pad() {
                    s.push('p');
                }
                if f.is_executable() {
                    s.push('x');
                }
                if f.is_hidden() {
                    s.push('h');
                }
                if f.is_symlink() {
                    s.push('l');
                }
                s
            })
            .collect();
        assert_eq!(files.join(";"), row[7], "{file}: file sizes and flags");
    }
}

/// Whatever a valid fixture's names hold, every path stays inside the torrent's directory.
#[test]
fn every_path_is_contained() {
    for row in read_tsv("MANIFEST.tsv") {
        let Ok(info) = load(&row[0]) else { continue };
        let contained = |path: &str| {
            !path.is_empty()
                && path.split('/').all(|c| {
                    !c.is_empty()
                        && c != "."
                        && c != ".."
                        && !c.contains(['\\', '\0'])
                        && !c.ends_with(['.', ' '])
                })
        };
        assert!(contained(info.name()), "{}: name {:?}", row[0], info.name());
        for file in info.files().files() {
            let path = file.path_string();
            assert!(contained(path), "{}: path {path:?}", row[0]);
            if let Some(target) = file.symlink_target() {
                assert!(contained(target), "{}: symlink {target:?}", row[0]);
            }
        }
    }
}

fn paths(info: &TorrentInfo) -> Vec<&str> {
    info.files()
        .files()
        .iter()
        .map(|f| f.path_string())
        .collect()
}

#[test]
fn hostile_paths_are_cleaned() {
    assert_eq!(paths(&load("parent_path.torrent").unwrap()), ["bar"]);
    assert_eq!(
        paths(&load("hidden_parent_path.torrent").unwrap()),
        ["foo......bar/bar"]
    );
    assert_eq!(paths(&load("slash_path.torrent").unwrap()), ["bar"]);
    assert_eq!(
        paths(&load("slash_path2.torrent").unwrap()),
        ["abc....def/bar"]
    );
    let single = load("slash_path3.torrent").unwrap();
    assert_eq!(single.name(), "temp....abc");
    assert_eq!(paths(&single), ["temp....abc"]);
    assert_eq!(paths(&load("backslash_path.torrent").unwrap()), ["bar"]);
    assert_eq!(
        paths(&load("absolute_filename.torrent").unwrap()),
        ["abcde", "foobar"]
    );
    // Paths that vanish entirely become `_`, then collide and are numbered.
    assert_eq!(paths(&load("empty_path.torrent").unwrap()), ["_"]);
    assert_eq!(
        paths(&load("empty_path_multi.torrent").unwrap()),
        ["abcde", "_", "_.1"]
    );
    assert_eq!(
        paths(&load("invalid_filename2.torrent").unwrap()),
        ["f", "_", "_.1"]
    );
    assert_eq!(
        paths(&load("invalid_directory_name.torrent").unwrap()),
        ["foo", "foo.1"]
    );
    assert_eq!(
        paths(&load("duplicate_files.torrent").unwrap()),
        ["foo/bar.txt", "foo/bar.1.txt"]
    );
    assert_eq!(
        paths(&load("v2_invalid_filename2.torrent").unwrap()),
        ["_", "_.1", "stress_test2"]
    );
    let bad_utf8 = load("v2_invalid_filename.torrent").unwrap();
    assert_eq!(bad_utf8.name(), "_estMB");
    assert_eq!(paths(&bad_utf8), ["_estMB"]);
}

#[test]
fn names() {
    // A multi-file torrent whose name is `..` is named after its info-hash.
    let info = load("invalid_name2.torrent").unwrap();
    assert_eq!(info.name(), "b61560c2918f463768cd122b6d2fdd47b77bdb35");
    assert_eq!(paths(&info), ["foo/bar.txt", "foo/var.txt"]);
    // Trailing spaces go.
    assert_eq!(load("invalid_name3.torrent").unwrap().name(), "foobar");
    // A long name keeps its extension within 255 bytes.
    let long = load("long_name.torrent").unwrap();
    assert!(long.name().len() <= 255);
    assert!(long.name().ends_with(".23456789"));
    // A single-file torrent's name is its file; files of a multi-file torrent are below it.
    assert!(!load("base.torrent").unwrap().is_multi_file());
    let multi = load("single_multi_file.torrent").unwrap();
    assert!(multi.is_multi_file());
    assert_eq!(multi.name(), "temp");
    assert_eq!(paths(&multi), ["foo/bar"]);
    assert!(load("v2_multiple_files.torrent").unwrap().is_multi_file());
    assert!(!load("v2_only.torrent").unwrap().is_multi_file());
}

#[test]
fn symlinks_and_attributes() {
    let info = load("symlink1.torrent").unwrap();
    let link = info.files().file(FileIndex(1)).unwrap();
    assert_eq!(link.path_string(), "a/b/foo");
    assert_eq!(link.symlink_target(), Some("a/b/bar"));
    assert_eq!(link.size(), 0);
    let filtered = load("symlink_filtered_path.torrent").unwrap();
    assert_eq!(paths(&filtered), ["a/bar", "a/foo"]);
    assert_eq!(
        filtered
            .files()
            .file(FileIndex(1))
            .unwrap()
            .symlink_target(),
        Some("a/bar")
    );
    let v2 = load("v2_symlinks.torrent").unwrap();
    let headers = v2.files().file(FileIndex(0)).unwrap();
    assert_eq!(headers.symlink_target(), Some("Versions/Current/Headers"));
    assert!(headers.is_executable());
    assert_eq!(headers.pieces_root(), None);
}

#[test]
fn pads() {
    use fxtor_proto::metainfo::PadKind;
    let listed = load("pad_file_no_path.torrent").unwrap();
    let pad = listed.files().file(FileIndex(1)).unwrap();
    assert_eq!(pad.pad_kind(), Some(PadKind::Listed));
    assert_eq!(pad.path_string(), ".pad/2124");
    let bitcomet = load("pad_file.torrent").unwrap();
    assert!(bitcomet.files().file(FileIndex(1)).unwrap().is_pad());
    // v2-only: pads are synthesized after each file that does not end on a piece boundary.
    let v2 = load("v2_multiple_files.torrent").unwrap();
    let kinds: Vec<_> = v2.files().files().iter().map(|f| f.pad_kind()).collect();
    assert_eq!(
        kinds,
        [
            None,
            None,
            Some(PadKind::Synthesized),
            None,
            Some(PadKind::Synthesized)
        ]
    );
    for file in v2
        .files()
        .files()
        .iter()
        .filter(|f| f.pieces_root().is_some())
    {
        assert_eq!(file.offset() % u64::from(v2.piece_length()), 0);
    }
    // A hybrid's pads are the ones its v1 list gives; its files have their v2 roots.
    let hybrid = load("v2_hybrid.torrent").unwrap();
    assert!(hybrid.info_hashes().is_hybrid());
    for file in hybrid.files().files() {
        assert_eq!(file.is_pad(), file.pad_kind() == Some(PadKind::Listed));
        assert_eq!(
            file.pieces_root().is_some(),
            !file.is_pad() && file.size() > 0
        );
    }
}

#[test]
fn piece_hashes_and_layers() {
    let info = load("v2_only.torrent").unwrap();
    assert!(info.has_piece_layers());
    let layer = info.piece_layer(FileIndex(0)).unwrap();
    assert_eq!(layer.len(), 16);
    assert_eq!(info.v2_piece_hash(PieceIndex(3)), Some(layer[3]));
    assert_eq!(info.v2_piece_hash(PieceIndex(16)), None);
    assert!(!info.has_v1_piece_hashes());

    // No layers in the file: loaded without them, and they can be supplied later.
    let mut bare = load("v2_no_piece_layers.torrent").unwrap();
    assert!(!bare.has_piece_layers());
    assert_eq!(bare.v2_piece_hash(PieceIndex(0)), None);
    let mut wrong = layer.to_vec();
    wrong[7].0[0] ^= 1;
    assert!(bare.set_piece_layer(FileIndex(0), &wrong).is_err());
    assert!(bare.set_piece_layer(FileIndex(0), &layer[..15]).is_err());
    bare.set_piece_layer(FileIndex(0), layer).unwrap();
    assert!(bare.has_piece_layers());

    let partial = load("v2_incomplete_piece_layer.torrent").unwrap();
    assert!(!partial.has_piece_layers());

    // A file of one piece has its root as its piece hash.
    let small = load("v2.torrent").unwrap();
    let root = small.files().file(FileIndex(0)).unwrap().pieces_root();
    assert_eq!(small.v2_piece_hash(PieceIndex(0)), root);
    assert!(small.piece_layer(FileIndex(0)).is_none());

    let v1 = load("sample.torrent").unwrap();
    assert!(v1.v1_piece_hash(PieceIndex(1)).is_some());
    assert!(v1.v1_piece_hash(PieceIndex(2)).is_none());
    assert_eq!(v1.v2_piece_hash(PieceIndex(0)), None);
}

#[test]
fn info_bytes_give_the_same_torrent() {
    for file in ["sample.torrent", "v2_hybrid.torrent", "v2_only.torrent"] {
        let full = load(file).unwrap();
        let bare = TorrentInfo::from_info_bytes(full.info_bytes()).unwrap();
        assert_eq!(bare.info_hashes(), full.info_hashes());
        assert_eq!(bare.files(), full.files());
        assert!(bare.trackers().is_empty());
    }
}

#[test]
fn trackers_seeds_and_extras() {
    assert_eq!(
        load("whitespace_url.torrent").unwrap().trackers(),
        [vec!["udp://test.com/announce".to_string()]]
    );
    let sample = load("sample.torrent").unwrap();
    assert_eq!(
        sample.trackers(),
        [
            vec!["udp://tracker.opentracker.com:80/announce".to_string()],
            vec!["tracker.publicbt.com:80/announce".to_string()]
        ]
    );
    assert_eq!(sample.comment(), Some("sample comment"));
    assert_eq!(sample.created_by(), Some("libtorrent"));
    assert_eq!(sample.creation_date(), Some(1418787579));
    assert_eq!(
        load("duplicate_web_seeds.torrent").unwrap().web_seeds(),
        [
            "http://foobar.com/foo",
            "http://foobar.com/foobar",
            "http://foobar.com/bar"
        ]
    );
    for empty in ["url_list.torrent", "url_list2.torrent", "url_list3.torrent"] {
        assert!(load(empty).unwrap().web_seeds().is_empty(), "{empty}");
    }
    assert_eq!(
        load("url_seed_multi_space.torrent").unwrap().web_seeds(),
        ["http://test.com/test file/foo bar"]
    );
    assert_eq!(
        load("httpseed.torrent").unwrap().http_seeds(),
        ["http://foobar.com/"]
    );
    assert!(load("empty_httpseed.torrent")
        .unwrap()
        .http_seeds()
        .is_empty());
    assert_eq!(
        load("dht_nodes.torrent").unwrap().dht_nodes(),
        [
            ("127.0.0.1".to_string(), 6881),
            ("192.168.1.1".to_string(), 6881)
        ]
    );
    assert_eq!(
        load("no_creation_date.torrent").unwrap().creation_date(),
        None
    );
}

#[test]
fn errors_name_the_problem() {
    use MetainfoError as E;
    let err = |f| load(f).unwrap_err();
    assert!(matches!(
        err("missing_piece_len.torrent"),
        E::MissingKey("piece length")
    ));
    assert!(matches!(
        err("negative_piece_len.torrent"),
        E::InvalidPieceLength(-16384)
    ));
    assert!(matches!(
        err("v2_no_power2_piece.torrent"),
        E::InvalidPieceLength(32767)
    ));
    assert!(matches!(err("no_name.torrent"), E::MissingName));
    assert!(matches!(err("bad_name.torrent"), E::MissingName));
    assert!(matches!(err("string.torrent"), E::NotADictionary));
    assert!(matches!(
        err("negative_file_size.torrent"),
        E::InvalidFileLength { length: -45, .. }
    ));
    assert!(matches!(
        err("unaligned_pieces.torrent"),
        E::PiecesLength {
            expected: 20,
            got: 24
        }
    ));
    assert!(matches!(
        err("many_pieces.torrent"),
        E::TooManyPieces { .. }
    ));
    assert!(matches!(
        err("v2_large_offset.torrent"),
        E::TooManyPieces { .. }
    ));
    assert!(matches!(err("no_files.torrent"), E::NoFiles));
    assert!(matches!(err("zero.torrent"), E::EmptyTorrent));
    assert!(matches!(
        err("v2_mismatching_metadata.torrent"),
        E::InconsistentFiles(_)
    ));
    assert!(matches!(
        err("v2_bad_file_alignment.torrent"),
        E::InconsistentFiles(_)
    ));
    assert!(matches!(
        err("v2_unordered_files.torrent"),
        E::NonCanonicalInfo(_)
    ));
    assert!(matches!(
        err("v2_overlong_integer.torrent"),
        E::NonCanonicalInfo(_)
    ));
    assert!(matches!(err("v2_deep_recursion.torrent"), E::Bencode(_)));
    assert!(matches!(
        err("v2_invalid_pad_file.torrent"),
        E::PadFileInTree { .. }
    ));
    assert!(matches!(
        err("v2_zero_root.torrent"),
        E::InvalidPiecesRoot { .. }
    ));
    assert!(matches!(
        err("v2_zero_root_small.torrent"),
        E::InvalidPiecesRoot { .. }
    ));
    assert!(matches!(
        err("v2_empty_filename.torrent"),
        E::FileTree { .. }
    ));
    assert!(matches!(err("v2_invalid_file.torrent"), E::FileTree { .. }));
    assert!(matches!(
        err("v2_unknown_piece_layer_entry.torrent"),
        E::InvalidPieceLayer { .. }
    ));
    assert!(matches!(
        err("v2_invalid_root_hash.torrent"),
        E::InvalidPieceLayer { .. }
    ));
    assert!(matches!(
        err("duplicate_files2.torrent"),
        E::TooManyDuplicateNames { .. }
    ));
    assert!(matches!(
        err("v2_large_file.torrent"),
        E::InvalidFileLength { .. }
    ));
    assert!(matches!(
        err("v2_piece_size.torrent"),
        E::InvalidPieceLength(_)
    ));
    // The messages say what and where.
    let message = err("negative_file_size.torrent").to_string();
    assert!(
        message.contains("files[0]") && message.contains("-45"),
        "{message}"
    );
}
