//! Transfers between fxtor and libtorrent on 127.0.0.1 over TCP, through the library API
//! on the runtime under test, for each torrent of a [`Swarm`].

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fxtor_io::runtime::{self, Runtime};
use fxtor_io::session::Session;
use fxtor_io::AddTorrentParams;
use fxtor_proto::resume::ResumeData;
use fxtor_proto::session::{TorrentState, TorrentStatus};
use fxtor_proto::TorrentInfo;

use super::{blocking, localhost, within, LIMIT};
use crate::{libtorrent, process, Running, Swarm};

/// libtorrent seeds, fxtor downloads: the bytes are the same and every wanted byte was
/// counted. A second session over the same directory, without resume data, checks the
/// files, finds every piece and fetches nothing.
pub async fn libtorrent_seeds_and_fxtor_downloads<R: Runtime>(rt: R, swarm: &Swarm, version: &str) {
    let fixture = swarm.torrent(version);
    let context = format!("{version} from libtorrent");
    let (torrent, src) = (fixture.torrent.clone(), swarm.src());
    let (_seeder, addr) = blocking(&rt, move || libtorrent::seed(&torrent, &src, None)).await;
    let out = tempfile::tempdir().unwrap();

    let (session, status) = download(&rt, fixture.info(), out.path(), addr, None, &context).await;
    assert_eq!(status.total_wanted, swarm.size(), "{context}: {status:?}");
    assert_eq!(
        status.total_wanted_done,
        swarm.size(),
        "{context}: {status:?}"
    );
    assert!(
        status.total_downloaded >= swarm.size(),
        "{context}: {status:?}"
    );
    session.shutdown().await.unwrap();
    swarm.assert_same_content(out.path(), &context);

    let (again, status) = download(&rt, fixture.info(), out.path(), addr, None, &context).await;
    assert_eq!(status.total_downloaded, 0, "{context}: {status:?}");
    again.shutdown().await.unwrap();
    swarm.assert_same_content(out.path(), &context);
}

/// A session on the runtime under test that downloads `info` into `out` from `peer`
/// (starting from `resume_data`, if any); the session, and the status once it seeds.
async fn download<R: Runtime>(
    rt: &R,
    info: TorrentInfo,
    out: &Path,
    peer: SocketAddr,
    resume_data: Option<Bytes>,
    context: &str,
) -> (Session<R>, TorrentStatus) {
    let session = Session::with_runtime(rt.clone(), localhost())
        .await
        .unwrap();
    let mut params = AddTorrentParams::from_info(info, out);
    params.peers.push(peer);
    params.resume_data = resume_data;
    let handle = session.add_torrent(params).await.unwrap();
    let status = within(rt, context, handle.wait_finished()).await.unwrap();
    assert_eq!(status.state, TorrentState::Seeding, "{context}: {status:?}");
    (session, status)
}

/// fxtor checks its data and seeds, libtorrent downloads: the bytes are the same,
/// libtorrent's own check of what it wrote passes, and fxtor counted the upload.
pub async fn fxtor_seeds_and_libtorrent_downloads<R: Runtime>(rt: R, swarm: &Swarm, version: &str) {
    let fixture = swarm.torrent(version);
    let context = format!("{version} to libtorrent");
    let session = Session::with_runtime(rt.clone(), localhost())
        .await
        .unwrap();
    let handle = session
        .add_torrent(AddTorrentParams::from_info(fixture.info(), swarm.src()))
        .await
        .unwrap();
    let status = within(&rt, &context, handle.wait_finished()).await.unwrap();
    assert_eq!(status.state, TorrentState::Seeding, "{context}: {status:?}");
    let addr = session.listen_addr().expect("the session listens");

    let out = tempfile::tempdir().unwrap();
    let (torrent, into) = (fixture.torrent.clone(), out.path().to_path_buf());
    let (exit, report, output) = blocking(&rt, move || {
        let mut leecher = libtorrent::download(&torrent, &into, &[addr], LIMIT);
        let exit = leecher.wait(LIMIT + Duration::from_secs(150));
        (
            exit,
            libtorrent::download_report(&leecher),
            leecher.output(),
        )
    })
    .await;
    assert_eq!(exit, 0, "{context}: {output}");
    assert_eq!(report["finished"], true, "{context}: {report}");
    assert_eq!(report["check_passed"], true, "{context}: {report}");
    swarm.assert_same_content(out.path(), &context);
    let status = handle.status().await.unwrap();
    assert!(
        status.total_uploaded >= swarm.size(),
        "{context}: {status:?}"
    );
    session.shutdown().await.unwrap();
}

/// The rate of the seeder in [`a_killed_download_resumes`]: slow enough (some 7 s for the
/// content) that there is a half way to kill the download at.
const SLOW_SEED: u64 = 3_000_000;

/// A download killed half way resumes from its resume file without fetching again what it
/// had:
///
/// 1. `program` (the adapter's download program, with the flags of `fxtor download` and a
///    resume file) downloads from a slow libtorrent seeder, and is killed (SIGKILL) once
///    its resume file holds at least 40% of the pieces;
/// 2. a session on the runtime under test adds the torrent with that resume file and
///    downloads the rest: it fetches at most the pieces the file did not hold (and a
///    little more: pieces in flight), and the bytes end up right.
pub async fn a_killed_download_resumes<R: Runtime>(
    rt: R,
    swarm: &Swarm,
    version: &str,
    program: Command,
) {
    let fixture = swarm.torrent(version);
    let context = format!("{version} resumed");
    let info = fixture.info();
    let (torrent, src) = (fixture.torrent.clone(), swarm.src());
    let (_seeder, addr) = blocking(&rt, move || {
        libtorrent::seed(&torrent, &src, Some(SLOW_SEED))
    })
    .await;
    let out = tempfile::tempdir().unwrap();
    let resume = out.path().join("swarm.resume");

    let mut first = Running::spawn(&mut process::download_command(
        program,
        &fixture.torrent,
        out.path(),
        &[addr],
        Some(&resume),
    ));
    let deadline = Instant::now() + LIMIT;
    let enough = info.num_pieces() * 2 / 5;
    while pieces_in(&resume) < enough {
        assert!(
            !first.has_exited(),
            "{context}: it ended before it could be killed: {}",
            first.output()
        );
        assert!(
            Instant::now() < deadline,
            "{context}: no resume data with {enough} pieces: {}",
            first.output()
        );
        runtime::sleep(&rt, Duration::from_millis(50)).await;
    }
    assert!(
        !first.has_exited(),
        "{context}: finished before it could be killed: {}",
        first.output()
    );
    first.kill();
    let had = pieces_in(&resume);
    assert!(had < info.num_pieces(), "{context}: it had every piece");

    let resume_data = fxtor_io::resume::read_resume_file(&resume).unwrap();
    let (session, status) =
        download(&rt, info.clone(), out.path(), addr, resume_data, &context).await;
    let piece = u64::from(info.piece_length());
    let missing = u64::from(info.num_pieces() - had) * piece;
    assert!(
        status.total_downloaded < status.total_wanted
            && status.total_downloaded <= missing + 2 * piece,
        "{context}: with {had} of {} pieces resumed, downloaded {} of {} bytes again",
        info.num_pieces(),
        status.total_downloaded,
        status.total_wanted
    );
    session.shutdown().await.unwrap();
    swarm.assert_same_content(out.path(), &context);
}

/// How many pieces the resume file at `path` holds (0 while there is none).
fn pieces_in(path: &Path) -> u32 {
    let Ok(Some(bytes)) = fxtor_io::resume::read_resume_file(path) else {
        return 0;
    };
    let data = ResumeData::from_bytes(&bytes).expect("a resume file is whole or absent");
    data.pieces.iter().map(|b| b.count_ones()).sum()
}

/// fxtor streams a file from a libtorrent seeder: with every file at priority 0, a
/// [`FileReader`](fxtor_io::FileReader) of the first file jumps to its middle and reads
/// 1 MiB, then reads it from its start to its end; the bytes are the seeder's, and the
/// other files were not downloaded.
pub async fn fxtor_streams_a_file_from_libtorrent<R: Runtime>(rt: R, swarm: &Swarm, version: &str) {
    let fixture = swarm.torrent(version);
    let context = format!("{version} streamed from libtorrent");
    let (torrent, src) = (fixture.torrent.clone(), swarm.src());
    let (_seeder, addr) = blocking(&rt, move || libtorrent::seed(&torrent, &src, None)).await;
    let out = tempfile::tempdir().unwrap();
    let session = Session::with_runtime(rt.clone(), localhost())
        .await
        .unwrap();
    let info = fixture.info();
    let mut params = AddTorrentParams::from_info(info.clone(), out.path());
    params.peers.push(addr);
    params.file_priorities = vec![0; swarm.files.len()];
    let handle = session.add_torrent(params).await.unwrap();

    let (path, size) = swarm.files[0];
    let expected =
        std::fs::read(crate::content::file_path(&swarm.src(), swarm.name, path)).unwrap();
    let index = info
        .files()
        .files()
        .iter()
        .position(|f| f.path_string() == path)
        .expect("the file is in the torrent");
    let mut reader = handle
        .open_file(fxtor_proto::FileIndex(index as u32))
        .await
        .unwrap();
    assert_eq!(reader.size(), size, "{context}");
    reader.set_readahead(2 << 20);
    let middle = size / 2;
    let got = within(&rt, &context, read_range(&mut reader, middle, 1 << 20)).await;
    assert!(
        got[..] == expected[middle as usize..middle as usize + (1 << 20)],
        "{context}: the middle differs"
    );
    let got = within(&rt, &context, read_range(&mut reader, 0, size)).await;
    assert!(got == expected, "{context}: the file differs");
    let status = handle.status().await.unwrap();
    assert!(
        status.num_have < status.num_pieces,
        "{context}: only the read file was wanted: {status:?}"
    );
    session.shutdown().await.unwrap();
}

/// `len` bytes of a file from `from`, read in chunks of 100 kB.
async fn read_range<R: Runtime>(
    reader: &mut fxtor_io::FileReader<R>,
    from: u64,
    len: u64,
) -> Vec<u8> {
    reader.seek_to(from);
    let mut got = Vec::new();
    while (got.len() as u64) < len {
        let chunk = reader.read_chunk(100_000).await.unwrap();
        assert!(
            !chunk.is_empty(),
            "the end came early at {}",
            reader.position()
        );
        got.extend_from_slice(&chunk);
    }
    got.truncate(len as usize);
    got
}
