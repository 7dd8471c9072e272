//! Transfers between fxtor and libtorrent on 127.0.0.1, over TCP, for v1, v2 and hybrid
//! torrents of 64 MiB in several files with pad files between them (and in one file):
//!
//! 1. libtorrent seeds, `fxtor download` fetches: the bytes are the same; a second run over
//!    the same directory checks the files and fetches nothing;
//! 2. `fxtor seed` seeds, libtorrent downloads: the bytes are the same and libtorrent's own
//!    check passes; both directions for single-file torrents too;
//! 3. a download killed half way resumes from `--resume` without fetching again what it
//!    had, and finishes with the right bytes;
//! 4. libtorrent given only a magnet link and `fxtor seed` as its peer fetches the
//!    metadata from fxtor (BEP9), then the payload, v1 and hybrid;
//! 5. a seeder serving corrupt data (libtorrent over files altered after its check) cannot
//!    corrupt the download: its pieces fail their hash checks, an honest seeder supplies
//!    them, and the files end up right;
//! 5. a magnet link (btih, btih and btmh, or btmh alone for the v2 torrent) with `x.pe`
//!    fetches the metadata (and v2 piece layers) and the payload from libtorrent.
//!
//! libtorrent is driven by `tests/interop/lt.py` through Debian's python3-libtorrent; every
//! session listens on 127.0.0.1 only and accepts loopback peers only.

mod support;

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use fxtor_testkit::libtorrent::{self, seed as lt_seed};
use fxtor_testkit::{download_command, Running, Swarm};
use serde_json::Value;
use support::*;

const MIB: u64 = 1 << 20;
const PIECE_LENGTH: u32 = 262_144;
/// How long any one transfer may take on a busy two-core machine.
const TRANSFER_LIMIT: Duration = Duration::from_secs(180);
/// The torrent's name (the directory's name).
const NAME: &str = "swarm";

/// The content, 64 MiB and a little: odd sizes, so every file but the last is followed by
/// a pad file in a v1 (canonical), v2 or hybrid torrent.
const FILES: [(&str, u64); 4] = [
    ("a.bin", 41 * MIB + 12_345),
    ("sub/b.bin", 19 * MIB + 777),
    ("sub/deeper/c.bin", 4 * MIB + 3),
    ("tiny.txt", 100),
];

/// The content (below `src/swarm` of a temporary directory) and its v1, v2 and hybrid
/// torrents made by libtorrent, made once for every test.
fn fixtures() -> &'static Swarm {
    static FIXTURES: OnceLock<Swarm> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let swarm = Swarm::create(NAME, &FILES, PIECE_LENGTH);
        for fixture in &swarm.torrents {
            let info = fxtor_info(fixture.torrent.to_str().unwrap());
            assert_eq!(
                info["total_size"].as_u64().map(|t| t >= 64 * MIB),
                Some(true)
            );
            if fixture.version != "v2" {
                // (v2 torrents pad in memory only; fxtor info lists what the file lists.)
                let pads = info["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|f| f["pad"] == true)
                    .count();
                assert!(pads >= 3, "{}: {pads} pad files", fixture.version);
            }
        }
        swarm
    })
}

/// The single-file content: one file of 64 MiB and a little.
const SINGLE_FILE: [(&str, u64); 1] = [("", 64 * MIB + 4_321)];

/// A single file (`src/movie.bin`) and its v1, v2 and hybrid torrents made by libtorrent.
fn single_file_fixtures() -> &'static Swarm {
    static FIXTURES: OnceLock<Swarm> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let swarm = Swarm::create("movie.bin", &SINGLE_FILE, PIECE_LENGTH);
        for fixture in &swarm.torrents {
            // (A v2 torrent's file is followed by a pad in memory, as in libtorrent.)
            let info = fixture.info();
            let files = info.files().files().iter().filter(|f| !f.is_pad()).count();
            assert_eq!(files, 1, "{}", fixture.version);
        }
        swarm
    })
}

/// `fxtor download` of `torrent` into `out` from `peers`.
fn fxtor_download(
    torrent: &Path,
    out: &Path,
    peers: &[SocketAddr],
    resume: Option<&Path>,
) -> Running {
    let mut program = fxtor();
    program.arg("download");
    Running::spawn(&mut download_command(program, torrent, out, peers, resume))
}

/// Asserts the files under `save_path/swarm` are the content.
fn assert_same_content(save_path: &Path, context: &str) {
    fixtures().assert_same_content(save_path, context);
}

/// The `finished: W bytes wanted, D bytes downloaded` line of `fxtor download`: (W, D).
fn finished_line(run: &Running) -> (u64, u64) {
    let lines = run.stdout.lock().unwrap().clone();
    let line = lines
        .iter()
        .find_map(|l| l.strip_prefix("finished: "))
        .unwrap_or_else(|| panic!("no finished line: {}", run.output()));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(numbers.len(), 2, "{line}");
    (numbers[0], numbers[1])
}

/// The percentage in a plain status line (`[  2.0s] downloading 53.1% (…)`).
fn progress_of(line: &str) -> Option<f64> {
    let rest = line.split_once("] downloading ")?.1;
    rest.split_once('%')?.0.parse().ok()
}

#[test]
fn libtorrent_seeds_and_fxtor_downloads() {
    if !have_libtorrent() {
        return;
    }
    let f = fixtures();
    for fixture in &f.torrents {
        let context = format!("{} from libtorrent", fixture.version);
        let (_seeder, addr) = lt_seed(&fixture.torrent, &f.src(), None);
        let out = tempfile::tempdir().unwrap();
        let mut run = fxtor_download(&fixture.torrent, out.path(), &[addr], None);
        let status = run.wait(TRANSFER_LIMIT);
        assert_eq!(status, 0, "{context}: {}", run.output());
        let (wanted, _) = finished_line(&run);
        assert_eq!(wanted, FILES.iter().map(|f| f.1).sum::<u64>(), "{context}");
        assert_same_content(out.path(), &context);

        // Again over the same directory, without resume data: the check finds every piece
        // and nothing is fetched.
        let mut again = fxtor_download(&fixture.torrent, out.path(), &[addr], None);
        assert_eq!(
            again.wait(TRANSFER_LIMIT),
            0,
            "{context}: {}",
            again.output()
        );
        assert_eq!(
            finished_line(&again),
            (wanted, 0),
            "{context}: {}",
            again.output()
        );
        assert_same_content(out.path(), &context);
    }
}

#[test]
fn fxtor_seeds_and_libtorrent_downloads() {
    if !have_libtorrent() {
        return;
    }
    let f = fixtures();
    for fixture in &f.torrents {
        let context = format!("{} to libtorrent", fixture.version);
        let (mut seeder, addr) = fxtor_seed(&fixture.torrent, &f.src());
        let out = tempfile::tempdir().unwrap();
        let mut leecher =
            libtorrent::download(&fixture.torrent, out.path(), &[addr], TRANSFER_LIMIT);
        let status =
            leecher.wait_beside(TRANSFER_LIMIT + Duration::from_secs(150), Some(&mut seeder));
        let report = libtorrent::download_report(&leecher);
        assert_eq!(
            status,
            0,
            "{context}: {}\nseeder: {}",
            leecher.output(),
            seeder.output()
        );
        assert_eq!(report["finished"], true, "{context}: {report}");
        assert_eq!(report["check_passed"], true, "{context}: {report}");
        assert_same_content(out.path(), &context);
    }
}

/// Single-file torrents (v1, v2, hybrid) both ways: libtorrent seeds and `fxtor download`
/// fetches; `fxtor seed` seeds and libtorrent downloads, and its own check passes.
#[test]
fn single_file_torrents_both_ways() {
    if !have_libtorrent() {
        return;
    }
    let f = single_file_fixtures();
    for fixture in &f.torrents {
        let context = format!("single-file {} from libtorrent", fixture.version);
        let (_seeder, addr) = lt_seed(&fixture.torrent, &f.src(), None);
        let out = tempfile::tempdir().unwrap();
        let mut run = fxtor_download(&fixture.torrent, out.path(), &[addr], None);
        assert_eq!(run.wait(TRANSFER_LIMIT), 0, "{context}: {}", run.output());
        assert_eq!(finished_line(&run).0, f.size(), "{context}");
        f.assert_same_content(out.path(), &context);

        let context = format!("single-file {} to libtorrent", fixture.version);
        let (mut seeder, addr) = fxtor_seed(&fixture.torrent, &f.src());
        let out = tempfile::tempdir().unwrap();
        let mut leecher =
            libtorrent::download(&fixture.torrent, out.path(), &[addr], TRANSFER_LIMIT);
        let status =
            leecher.wait_beside(TRANSFER_LIMIT + Duration::from_secs(150), Some(&mut seeder));
        let report = libtorrent::download_report(&leecher);
        assert_eq!(status, 0, "{context}: {}", leecher.output());
        assert_eq!(report["check_passed"], true, "{context}: {report}");
        f.assert_same_content(out.path(), &context);
    }
}

#[test]
fn a_killed_download_resumes_without_fetching_again() {
    if !have_libtorrent() {
        return;
    }
    let f = fixtures();
    for fixture in &f.torrents {
        let context = format!("{} resumed", fixture.version);
        // A slow seeder (about 4 MB/s: some 16 s for the whole), so there is a half way.
        let (_seeder, addr) = lt_seed(&fixture.torrent, &f.src(), Some(4_000_000));
        let out = tempfile::tempdir().unwrap();
        let resume = out.path().join("swarm.resume");

        let mut first = fxtor_download(&fixture.torrent, out.path(), &[addr], Some(&resume));
        let deadline = Instant::now() + TRANSFER_LIMIT;
        let half_way = loop {
            let line = first.next_line(deadline.saturating_duration_since(Instant::now()));
            if progress_of(&line).is_some_and(|p| p >= 50.0) {
                break SystemTime::now();
            }
        };
        // Wait for resume data saved after that moment: it holds at least half the pieces.
        let saved = Instant::now() + Duration::from_secs(30);
        while std::fs::metadata(&resume)
            .and_then(|m| m.modified())
            .map_or(true, |t| t <= half_way)
        {
            assert!(
                Instant::now() < saved,
                "{context}: no resume data saved: {}",
                first.output()
            );
            thread::sleep(Duration::from_millis(50));
        }
        assert!(
            !first.has_exited(),
            "{context}: finished before it could be killed: {}",
            first.output()
        );
        drop(first); // killed (SIGKILL): no chance to save anything more

        let mut second = fxtor_download(&fixture.torrent, out.path(), &[addr], Some(&resume));
        let status = second.wait(TRANSFER_LIMIT);
        assert_eq!(status, 0, "{context}: {}", second.output());
        let (wanted, downloaded) = finished_line(&second);
        // At least half was in the resume data: at most the other half (and a little
        // waste: pieces in flight, end-game duplicates) is fetched again.
        assert!(
            downloaded <= wanted * 6 / 10,
            "{context}: downloaded {downloaded} of {wanted} bytes again: {}",
            second.output()
        );
        assert_same_content(out.path(), &context);
    }
}

/// Flips one byte every 2.5 MiB of the content files below `save_path`, in place (so a
/// seeder that mapped the files serves the altered bytes). Returns how many were flipped.
fn corrupt(save_path: &Path) -> usize {
    let mut flipped = 0;
    for (path, size) in FILES {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(save_path.join(NAME).join(path))
            .unwrap();
        let mut at = 1_000;
        while at < size {
            let mut byte = [0u8];
            file.seek(SeekFrom::Start(at)).unwrap();
            file.read_exact(&mut byte).unwrap();
            file.seek(SeekFrom::Start(at)).unwrap();
            file.write_all(&[byte[0] ^ 0xA5]).unwrap();
            flipped += 1;
            at += 5 * MIB / 2;
        }
        file.sync_all().unwrap();
    }
    flipped
}

#[test]
fn a_corrupt_seeder_cannot_corrupt_the_download() {
    if !have_libtorrent() {
        return;
    }
    let f = fixtures();
    for fixture in &f.torrents {
        let context = format!("{} with a corrupt seeder", fixture.version);
        // The corrupt seeder checks good data, then the data changes under it.
        let bad = tempfile::tempdir().unwrap();
        copy_dir(&f.src(), bad.path());
        let (_liar, liar_addr) = lt_seed(&fixture.torrent, bad.path(), None);
        assert!(corrupt(bad.path()) >= 20);
        // The honest seeder is slower, so the fast liar serves much of the download.
        let (_honest, honest_addr) = lt_seed(&fixture.torrent, &f.src(), Some(8_000_000));

        let out = tempfile::tempdir().unwrap();
        let mut run = fxtor_download(
            &fixture.torrent,
            out.path(),
            &[liar_addr, honest_addr],
            None,
        );
        let status = run.wait(TRANSFER_LIMIT);
        assert_eq!(status, 0, "{context}: {}", run.output());
        assert!(
            run.stderr.lock().unwrap().contains("failed its hash check"),
            "{context}: the corrupt seeder's pieces were never rejected: {}",
            run.output()
        );
        assert_same_content(out.path(), &context);
    }
}

#[test]
fn status_lines_are_parsed() {
    assert_eq!(
        progress_of("[   4.0s] downloading 53.1% (1 of 2 bytes), 1 B/s down"),
        Some(53.1)
    );
    assert_eq!(progress_of("[   4.0s] checking 10.0% (…)"), None);
    assert_eq!(progress_of("listening on 127.0.0.1:5"), None);
}

#[test]
fn a_magnet_link_fetches_the_metadata_from_libtorrent() {
    if !have_libtorrent() {
        return;
    }
    let f = fixtures();
    // A v2-only torrent's piece layers come by hash requests (BEP52); see v2_hashes.rs.
    for fixture in &f.torrents {
        let context = format!("{} by magnet link", fixture.version);
        let (_seeder, addr) = lt_seed(&fixture.torrent, &f.src(), None);
        let info = fxtor_info(fixture.torrent.to_str().unwrap());
        let mut topics = Vec::new();
        if let Some(v1) = info["info_hash_v1"].as_str() {
            topics.push(format!("xt=urn:btih:{v1}"));
        }
        if let Some(v2) = info["info_hash_v2"].as_str() {
            topics.push(format!("xt=urn:btmh:1220{v2}"));
        }
        let link = format!("magnet:?{}&x.pe={addr}", topics.join("&"));
        let out = tempfile::tempdir().unwrap();
        let mut run = fxtor_download(Path::new(&link), out.path(), &[], None);
        let status = run.wait(TRANSFER_LIMIT);
        assert_eq!(status, 0, "{context}: {}", run.output());
        assert_same_content(out.path(), &context);
    }
}

#[test]
fn libtorrent_fetches_the_metadata_from_fxtor() {
    if !have_libtorrent() {
        return;
    }
    let f = fixtures();
    for fixture in f.torrents.iter().filter(|t| t.version != "v2") {
        let context = format!("{} magnet link to libtorrent", fixture.version);
        let (mut seeder, addr) = fxtor_seed(&fixture.torrent, &f.src());
        let info = fxtor_info(fixture.torrent.to_str().unwrap());
        let mut link = format!(
            "magnet:?xt=urn:btih:{}",
            info["info_hash_v1"].as_str().unwrap()
        );
        if let Some(v2) = info["info_hash_v2"].as_str() {
            link.push_str(&format!("&xt=urn:btmh:1220{v2}"));
        }
        let out = tempfile::tempdir().unwrap();
        let mut leecher = Running::spawn(
            Command::new(PYTHON)
                .arg(lt_script())
                .arg("magnet")
                .arg(&link)
                .arg(out.path())
                .args(["--peer", &addr.to_string()])
                .args(["--timeout", &TRANSFER_LIMIT.as_secs().to_string()]),
        );
        let status =
            leecher.wait_beside(TRANSFER_LIMIT + Duration::from_secs(150), Some(&mut seeder));
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
            "{context}: {}\nseeder: {}",
            leecher.output(),
            seeder.output()
        );
        assert_eq!(report["finished"], true, "{context}: {report}");
        assert_eq!(report["check_passed"], true, "{context}: {report}");
        assert_eq!(
            report["total_pieces"].as_u64(),
            info["num_pieces"].as_u64(),
            "{context}: {report}"
        );
        assert_same_content(out.path(), &context);
    }
}

/// `fxtor stream` writes one file to stdout while it downloads from a libtorrent seeder (a
/// slow one, so the stream leads the download): stdout holds exactly the file's bytes (the
/// 19 MiB `sub/b.bin`, and by default the largest file), and the torrent's other files were
/// not downloaded. v1 and hybrid (a magnet link for the hybrid).
#[test]
fn fxtor_streams_a_file_to_stdout() {
    if !have_libtorrent() {
        return;
    }
    let f = fixtures();
    for (version, file, expected_path) in [
        ("v1", Some("sub/b.bin"), "sub/b.bin"),
        ("hybrid", None, "a.bin"),
    ] {
        let context = format!("{version} streamed to stdout");
        let fixture = f.torrent(version);
        let (_seeder, addr) = lt_seed(&fixture.torrent, &f.src(), Some(40_000_000));
        let out = tempfile::tempdir().unwrap();
        let source = if version == "hybrid" {
            let info = fxtor_info(fixture.torrent.to_str().unwrap());
            format!(
                "magnet:?xt=urn:btih:{}",
                info["info_hash_v1"].as_str().unwrap()
            )
        } else {
            fixture.torrent.to_str().unwrap().to_owned()
        };
        let mut cmd = fxtor();
        cmd.arg("stream")
            .arg(&source)
            .arg("-o")
            .arg(out.path())
            .args(["--listen", "127.0.0.1:0", "--peer", &addr.to_string()]);
        if let Some(file) = file {
            cmd.args(["--file", file]);
        }
        let (status, stdout, stderr) = run_with_binary_stdout(&mut cmd, TRANSFER_LIMIT);
        assert_eq!(status, Some(0), "{context}: {stderr}");
        let theirs = std::fs::read(f.src().join(NAME).join(expected_path)).unwrap();
        assert_eq!(stdout.len(), theirs.len(), "{context}: {stderr}");
        assert!(stdout == theirs, "{context}: the bytes differ");
        for (path, _) in FILES.iter().filter(|(p, _)| *p != expected_path) {
            let other = out.path().join(NAME).join(path);
            let len = std::fs::metadata(&other).map_or(0, |m| m.len());
            let written =
                std::fs::read(&other).map_or(0, |b| b.iter().filter(|&&x| x != 0).count());
            assert!(
                written == 0 || len == 0,
                "{context}: {path} was downloaded ({written} bytes)"
            );
        }
    }
}

/// Runs `cmd`, keeping its stdout as bytes; kills it after `limit`. Its exit status (None if
/// killed by a signal), stdout and stderr.
fn run_with_binary_stdout(cmd: &mut Command, limit: Duration) -> (Option<i32>, Vec<u8>, String) {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut bytes = Vec::new();
        stdout.read_to_end(&mut bytes).unwrap();
        bytes
    });
    let err = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}
