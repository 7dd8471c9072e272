//! Streaming reads on the runtime under test: a [`FileReader`](fxtor_io::FileReader) reads
//! a file while it downloads.

use std::time::Duration;

use futures_lite::future;
use futures_lite::io::{AsyncReadExt as _, AsyncSeekExt as _};
use fxtor_io::runtime::{self, Runtime};
use fxtor_io::session::Session;
use fxtor_io::{AddTorrentParams, Error};
use fxtor_proto::session::SessionError;
use fxtor_proto::{FileIndex, TorrentInfo};

use super::{localhost, within};
use crate::content::small::{self, FILES};

/// The index of file `n` of [`FILES`] in the torrent's file storage (pads counted).
fn file_index(info: &TorrentInfo, n: usize) -> FileIndex {
    let position = info
        .files()
        .files()
        .iter()
        .position(|f| !f.is_pad() && f.path_string() == FILES[n].0)
        .expect("the file is in the torrent");
    FileIndex(position as u32)
}

/// A torrent whose every file has priority 0 and that has no peer yet: a reader of its
/// second file waits (and keeps asking when the file priorities are set to 0 again); once
/// the seed is connected, the reader gets the file's exact bytes
/// (by `read_chunk`, then again through `AsyncRead` after seeking back), and only the
/// pieces of that file were fetched. A pad file cannot be opened; neither can a file past
/// the end.
pub async fn a_file_streams_while_it_downloads<R: Runtime>(rt: R) {
    let dir = tempfile::tempdir().unwrap();
    let (seed_dir, leech_dir) = (dir.path().join("seed"), dir.path().join("leech"));
    let info = small::seeded_torrent(&seed_dir);
    let seeding = Session::with_runtime(rt.clone(), localhost())
        .await
        .unwrap();
    let mut params = AddTorrentParams::from_info(info.clone(), &seed_dir);
    params.seed_mode = true;
    seeding.add_torrent(params).await.unwrap();

    let leecher = Session::with_runtime(rt.clone(), localhost())
        .await
        .unwrap();
    let mut params = AddTorrentParams::from_info(info.clone(), &leech_dir);
    params.skip_check = true;
    params.file_priorities = vec![0; FILES.len()];
    let torrent = leecher.add_torrent(params).await.unwrap();

    let second = file_index(&info, 1);
    let mut reader = torrent.open_file(second).await.unwrap();
    assert_eq!(reader.size(), FILES[1].1 as u64);
    reader.set_readahead(64 * 1024);
    let expected = small::content(1, FILES[1].1);

    let first_chunk = std::cell::Cell::new(false);
    let reading = async {
        let mut got = Vec::new();
        loop {
            let chunk = reader.read_chunk(20_000).await.unwrap();
            first_chunk.set(true);
            if chunk.is_empty() {
                break;
            }
            assert!(chunk.len() <= 20_000);
            got.extend_from_slice(&chunk);
        }
        got
    };
    let connecting = async {
        // Nothing can arrive without a peer: the reader is still waiting for its first
        // bytes, and the pieces it wants have deadlines.
        runtime::sleep(&rt, Duration::from_millis(300)).await;
        assert!(
            !first_chunk.get(),
            "a read returned before any piece arrived"
        );
        let status = torrent.status().await.unwrap();
        assert_eq!(status.num_have, 0, "{status:?}");
        // The application sets the file priorities again, lowering what the reader raised:
        // the waiting reader asks for its piece again.
        torrent
            .prioritize_files(vec![0; FILES.len()])
            .await
            .unwrap();
        torrent
            .connect_peer(seeding.listen_addr().unwrap())
            .await
            .unwrap();
    };
    let (got, ()) = within(&rt, "the streaming read", future::zip(reading, connecting)).await;
    assert!(got == expected, "the streamed bytes differ from the file");
    assert_eq!(reader.position(), reader.size());
    assert!(
        reader.read_chunk(100).await.unwrap().is_empty(),
        "at the end"
    );

    // Back to the middle, through the futures-io traits.
    let middle = reader.size() / 2;
    assert_eq!(
        reader.seek(std::io::SeekFrom::Start(middle)).await.unwrap(),
        middle
    );
    let mut tail = Vec::new();
    reader.read_to_end(&mut tail).await.unwrap();
    assert!(tail[..] == expected[middle as usize..]);

    // Only the second file's pieces were asked for (every file starts on a piece
    // boundary: pads fill the rest).
    let pieces = info.files().file_piece_range(second).unwrap();
    let status = torrent.status().await.unwrap();
    assert_eq!(
        status.num_have,
        pieces.end.0 - pieces.start.0,
        "only the read file's pieces: {status:?}"
    );

    let pad = info
        .files()
        .files()
        .iter()
        .position(|f| f.is_pad())
        .expect("a hybrid torrent of these files has pads");
    assert!(matches!(
        torrent.open_file(FileIndex(pad as u32)).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        torrent.open_file(FileIndex(99)).await,
        Err(Error::Session(SessionError::OutOfRange))
    ));
    leecher.shutdown().await.unwrap();
    seeding.shutdown().await.unwrap();
}
