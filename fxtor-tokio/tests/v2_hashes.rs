//! BEP52 hash requests with libtorrent on 127.0.0.1: a v2-only torrent whose files span
//! many pieces, known by its `btmh` magnet link alone. The info dictionary comes over
//! `ut_metadata`, but the piece layers are not in it: they come by `hash request` /
//! `hashes`, proven against each file's `pieces root`.
//!
//! 1. libtorrent seeds, `fxtor download 'magnet:?xt=urn:btmh:…&x.pe=…'` gets the metadata,
//!    the piece layers and every byte;
//! 2. `fxtor seed` seeds, libtorrent adds the magnet link alone with fxtor as its peer and
//!    downloads: fxtor serves the metadata and the piece layers, and libtorrent's own check
//!    of the result passes;
//! 3. a libtorrent seeder serving corrupt data beside an honest one: the liar alone is
//!    banned and the files end up right.

mod support;

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use fxtor_testkit::libtorrent::seed as lt_seed;
use fxtor_testkit::Running;
use serde_json::Value;
use support::*;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
/// 32 KiB pieces: `big.bin` has 641 of them, more than one request of 512 hashes.
const PIECE_LENGTH: &str = "32768";
const NAME: &str = "layers";
const TRANSFER_LIMIT: Duration = Duration::from_secs(180);

const FILES: [(&str, u64); 3] = [
    ("big.bin", 20 * MIB + 777),
    ("sub/mid.bin", MIB + 5 * KIB + 3),
    ("small.txt", 1000),
];

/// The content below `root/src/layers`, and its v2-only torrent made by libtorrent.
struct Fixture {
    root: PathBuf,
    torrent: PathBuf,
    /// `magnet:?xt=urn:btmh:1220…`, nothing else.
    link: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path().to_path_buf();
        for (i, (path, size)) in FILES.iter().enumerate() {
            write_data(
                &root.join("src").join(NAME).join(path),
                *size as usize,
                i as u64 + 52,
            );
        }
        let torrent = root.join("v2.torrent");
        let src = root.join("src").join(NAME);
        lt(&[
            "create",
            src.to_str().unwrap(),
            torrent.to_str().unwrap(),
            "--mode",
            "v2",
            "--piece-length",
            PIECE_LENGTH,
        ]);
        let info = fxtor_info(torrent.to_str().unwrap());
        assert_eq!(info["info_hash_v1"], Value::Null, "v2 only");
        let v2 = info["info_hash_v2"].as_str().expect("a v2 info-hash");
        Fixture {
            link: format!("magnet:?xt=urn:btmh:1220{v2}"),
            root,
            torrent,
            _dir: dir,
        }
    })
}

/// Asserts the files under `save_path/layers` are the content.
fn assert_same_content(save_path: &Path, context: &str) {
    let src = fixture().root.join("src").join(NAME);
    for (path, size) in FILES {
        let theirs = std::fs::read(src.join(path)).unwrap();
        let ours = std::fs::read(save_path.join(NAME).join(path))
            .unwrap_or_else(|e| panic!("{context}: {path}: {e}"));
        assert_eq!(
            ours.len() as u64,
            size,
            "{context}: {path} has the wrong size"
        );
        if let Some(at) = ours.iter().zip(&theirs).position(|(a, b)| a != b) {
            panic!("{context}: {path} differs at byte {at}");
        }
    }
}

#[test]
fn fxtor_fetches_a_btmh_magnet_with_its_piece_layers_from_libtorrent() {
    if !have_libtorrent() {
        return;
    }
    let f = fixture();
    let (mut seeder, addr) = lt_seed(&f.torrent, &f.root.join("src"), None);
    let link = format!("{}&x.pe={addr}", f.link);
    let out = tempfile::tempdir().unwrap();
    let mut run = Running::spawn(
        fxtor()
            .args(["download", &link, "-o"])
            .arg(out.path())
            .args(["--listen", "127.0.0.1:0"]),
    );
    let status = run.wait_beside(TRANSFER_LIMIT, Some(&mut seeder));
    assert_eq!(status, 0, "{}", run.output());
    assert_same_content(out.path(), "libtorrent to fxtor by btmh");
}

#[test]
fn libtorrent_fetches_a_btmh_magnet_with_its_piece_layers_from_fxtor() {
    if !have_libtorrent() {
        return;
    }
    let f = fixture();
    let (mut seeder, addr) = fxtor_seed(&f.torrent, &f.root.join("src"));
    let out = tempfile::tempdir().unwrap();
    let mut leecher = Running::spawn(
        Command::new(PYTHON)
            .arg(lt_script())
            .arg("magnet")
            .arg(&f.link)
            .arg(out.path())
            .args(["--peer", &addr.to_string()])
            .args(["--timeout", &TRANSFER_LIMIT.as_secs().to_string()]),
    );
    let status = leecher.wait_beside(TRANSFER_LIMIT + Duration::from_secs(150), Some(&mut seeder));
    let report: Value = leecher
        .stdout
        .lock()
        .unwrap()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    assert_eq!(
        status,
        0,
        "{}\nseeder: {}",
        leecher.output(),
        seeder.output()
    );
    assert_eq!(report["has_metadata"], true, "{report}");
    assert_eq!(report["finished"], true, "{report}");
    assert_eq!(report["check_passed"], true, "{report}");
    assert_same_content(out.path(), "fxtor to libtorrent by btmh");
}

/// Flips one byte every 1.5 MiB of `big.bin` under `save_path`; how many.
fn corrupt_big(save_path: &Path) -> usize {
    let path = save_path.join(NAME).join(FILES[0].0);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut flipped = 0;
    let mut at = 5_000;
    while at < FILES[0].1 {
        let mut byte = [0u8];
        file.seek(SeekFrom::Start(at)).unwrap();
        file.read_exact(&mut byte).unwrap();
        file.seek(SeekFrom::Start(at)).unwrap();
        file.write_all(&[byte[0] ^ 0x5A]).unwrap();
        flipped += 1;
        at += 3 * MIB / 2;
    }
    file.sync_all().unwrap();
    flipped
}

#[test]
fn a_corrupt_libtorrent_seeder_alone_is_banned() {
    if !have_libtorrent() {
        return;
    }
    let f = fixture();
    let bad = tempfile::tempdir().unwrap();
    copy_dir(&f.root.join("src"), bad.path());
    // It checks good data, then the data changes under it.
    let (_liar, liar_addr) = lt_seed(&f.torrent, bad.path(), None);
    assert!(corrupt_big(bad.path()) >= 10);
    // The honest seeder is slower, so the liar sends much of the download.
    let (_honest, honest_addr) = lt_seed(&f.torrent, &f.root.join("src"), Some(4_000_000));
    let out = tempfile::tempdir().unwrap();
    let mut run = Running::spawn(
        fxtor()
            .arg("download")
            .arg(&f.torrent)
            .arg("-o")
            .arg(out.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(["--peer", &liar_addr.to_string()])
            .args(["--peer", &honest_addr.to_string()]),
    );
    let status = run.wait(TRANSFER_LIMIT);
    assert_eq!(status, 0, "{}", run.output());
    let stderr = run.stderr.lock().unwrap().clone();
    assert!(stderr.contains("failed its hash check"), "{}", run.output());
    assert!(
        stderr.contains(&format!("banned {liar_addr}")),
        "the liar is banned: {}",
        run.output()
    );
    assert!(
        !stderr.contains(&format!("banned {honest_addr}")),
        "the honest seeder is not: {}",
        run.output()
    );
    assert_same_content(out.path(), "a corrupt libtorrent seeder");
}
