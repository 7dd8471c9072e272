//! Streaming reads: [`FileReader`] reads one file of a torrent while it downloads, the way a
//! media player reads a video that is still arriving.
//!
//! A read at some position asks for the piece holding it at once (a deadline of now, which
//! makes it urgent: its outstanding blocks are asked of several peers) and for the pieces
//! after it up to the read-ahead, with deadlines [`READAHEAD_STEP`] apart, as libtorrent's
//! streaming mode does. It then waits until that piece is verified on disk and reads it
//! there, on the runtime's blocking pool. The first read in another piece, after reading
//! on or seeking, moves the window of deadlines; pieces that left it lose their deadline,
//! and so do the window's pieces when the reader is dropped. A piece of priority 0 that a
//! read needs is raised to priority 1 (and again while the read waits, should a change of
//! file priorities lower it): asking to read it is asking for it.
//!
//! It is an [`AsyncRead`] and [`AsyncSeek`] of the `futures-io` traits (tokio users can
//! turn it into tokio's with `tokio_util::compat`), and has plain async methods too
//! ([`FileReader::read_chunk`], [`FileReader::seek_to`]).

use std::future::Future;
use std::io::{self, SeekFrom};
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_lite::io::{AsyncRead, AsyncSeek};
use fxtor_proto::session::{Alert, SessionError, TorrentState};
use fxtor_proto::{FileIndex, PieceIndex};

use crate::runtime::{self, Runtime};
use crate::session::TorrentHandle;
use crate::{Error, Storage};

/// How far apart the deadlines of the pieces ahead of a read are.
pub const READAHEAD_STEP: Duration = Duration::from_millis(250);

/// The read-ahead a reader starts with, in bytes (at least one piece is always asked for).
pub const DEFAULT_READAHEAD: u64 = 8 << 20;

/// How often a read waiting for its piece looks at the torrent's state when no alert says
/// the piece arrived.
const WAIT_POLL: Duration = Duration::from_secs(1);

/// A read in flight, for the `AsyncRead` implementation.
type PendingRead = Pin<Box<dyn Future<Output = Result<Bytes, Error>> + Send>>;

/// Reads one file of a torrent while it downloads; see the [module documentation](self).
///
/// Made by [`TorrentHandle::open_file`]. Reads return the file's bytes only once the pieces
/// holding them are verified on disk.
///
/// ```no_run
/// # async fn run<R: fxtor_io::Runtime>(torrent: fxtor_io::session::TorrentHandle<R>)
/// # -> Result<(), fxtor_io::Error> {
/// use fxtor_proto::FileIndex;
///
/// let mut movie = torrent.open_file(FileIndex(0)).await?;
/// movie.seek_to(movie.size() / 2); // the player jumps to the middle
/// loop {
///     let chunk = movie.read_chunk(64 * 1024).await?;
///     if chunk.is_empty() {
///         break; // the end of the file
///     }
///     // hand `chunk` to the decoder
/// }
/// # Ok(())
/// # }
/// ```
pub struct FileReader<R: Runtime> {
    torrent: TorrentHandle<R>,
    storage: Arc<Storage>,
    /// Where the file's bytes lie in the torrent's byte stream.
    span: Range<u64>,
    piece_length: u64,
    pos: u64,
    readahead: u64,
    /// The pieces we gave deadlines to, last time.
    window: Option<Range<u32>>,
    /// A piece known to be on disk: reads inside it need not ask the session.
    ready: Option<u32>,
    /// The read in flight (`AsyncRead`).
    pending: Option<(Started, PendingRead)>,
}

/// What a read in flight will have done once it succeeds.
#[derive(Debug, Clone)]
struct Started {
    /// The piece it reads.
    piece: u32,
    /// The window of deadlines it asked for.
    window: Range<u32>,
}

impl<R: Runtime> std::fmt::Debug for FileReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("torrent", &self.torrent.id())
            .field("span", &self.span)
            .field("pos", &self.pos)
            .field("readahead", &self.readahead)
            .finish_non_exhaustive()
    }
}

impl<R: Runtime> TorrentHandle<R> {
    /// Opens file `file` (an index into the torrent's
    /// [`FileStorage`](fxtor_proto::metainfo::FileStorage), pad files counted) for reading
    /// while it downloads. Fails for a pad file, an index past the end, or a magnet link
    /// whose metadata has not arrived yet ([`SessionError::NoMetadata`]).
    pub async fn open_file(&self, file: FileIndex) -> Result<FileReader<R>, Error> {
        let id = self.id();
        let (info, storage) = self
            .session()
            .call(move |d, _| (d.core().torrent_info(id), d.storages().storage(id)))
            .await?;
        let (Some(info), Some(storage)) = (info, storage) else {
            return Err(self
                .status()
                .await
                .err()
                .unwrap_or(Error::Session(SessionError::NoMetadata)));
        };
        let entry = info
            .files()
            .files()
            .get(file.0 as usize)
            .ok_or(SessionError::OutOfRange)?;
        if entry.is_pad() {
            return Err(Error::Invalid(format!("file {} is a pad file", file.0)));
        }
        Ok(FileReader {
            torrent: self.clone(),
            storage,
            span: entry.offset()..entry.offset() + entry.size(),
            piece_length: u64::from(info.piece_length()).max(1),
            pos: 0,
            readahead: DEFAULT_READAHEAD,
            window: None,
            ready: None,
            pending: None,
        })
    }
}

impl<R: Runtime> FileReader<R> {
    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.span.end - self.span.start
    }

    /// Where the next read starts, from the file's start.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Moves to `pos` (from the file's start; past the end, reads return nothing). The
    /// deadlines move with the next read.
    pub fn seek_to(&mut self, pos: u64) {
        if pos != self.pos {
            self.pending = None;
        }
        self.pos = pos;
    }

    /// How many bytes past a read's position are asked for with deadlines (at least the
    /// rest of the piece being read). [`DEFAULT_READAHEAD`] to start with.
    pub fn set_readahead(&mut self, bytes: u64) {
        self.readahead = bytes;
    }

    /// Reads at most `max` bytes at the position and moves past them; waits until they are
    /// verified on disk. Returns fewer bytes at a piece's end, and none at the file's end
    /// (or when `max` is 0).
    pub async fn read_chunk(&mut self, max: usize) -> Result<Bytes, Error> {
        // A read `AsyncRead` left unfinished is abandoned.
        self.pending = None;
        let Some((started, read)) = self.start_read(max) else {
            return Ok(Bytes::new());
        };
        match read.await {
            Ok(data) => {
                self.finish_read(started, &data);
                Ok(data)
            }
            Err(e) => {
                self.ready = None;
                Err(e)
            }
        }
    }

    /// The read of at most `max` bytes at the position, after moving the deadlines' window
    /// if it must; `None` when there is nothing to read. Nothing is recorded until it
    /// succeeds ([`finish_read`](Self::finish_read)): a read dropped half way leaves the
    /// next one to ask again.
    fn start_read(&mut self, max: usize) -> Option<(Started, PendingRead)> {
        let at = self.span.start.checked_add(self.pos)?;
        if at >= self.span.end || max == 0 {
            return None;
        }
        let piece = u32::try_from(at / self.piece_length).ok()?;
        let in_piece = at % self.piece_length;
        let len = (max as u64)
            .min(self.piece_length - in_piece)
            .min(self.span.end - at);
        // `in_piece` and `len` are below the piece length, a u32.
        let (in_piece, len) = (in_piece as u32, len as u32);

        let window = self.window_at(piece);
        let moved = self.window.as_ref() != Some(&window);
        let previous = self.window.clone();
        let wait = self.ready != Some(piece);
        let torrent = self.torrent.clone();
        let storage = Arc::clone(&self.storage);
        let started = Started {
            piece,
            window: window.clone(),
        };
        let read = async move {
            if moved {
                ask_for(&torrent, window, previous).await?;
            }
            if wait {
                wait_for_piece(&torrent, PieceIndex(piece)).await?;
            }
            let runtime = torrent.session().runtime().clone();
            runtime
                .spawn_blocking(move || storage.read(PieceIndex(piece), in_piece, len))
                .await
                .ok_or_else(|| Error::Io(io::Error::other("the read panicked")))?
                .map_err(|e| Error::Io(io::Error::other(e.to_string())))
        };
        Some((started, Box::pin(read)))
    }

    /// A read succeeded with `data`: its window is the one asked for, its piece is on disk.
    fn finish_read(&mut self, started: Started, data: &Bytes) {
        self.window = Some(started.window);
        self.ready = Some(started.piece);
        self.pos += data.len() as u64;
    }

    /// The pieces from `piece` to the read-ahead's end, within the file.
    fn window_at(&self, piece: u32) -> Range<u32> {
        let last = (self.span.end - 1) / self.piece_length;
        let ahead = self.readahead / self.piece_length;
        // The file's last piece index fits in u32, as `piece` does.
        let end = (u64::from(piece) + ahead).min(last) as u32 + 1;
        piece..end
    }
}

/// Gives the pieces of `window` deadlines (`READAHEAD_STEP` apart, the first now), raising
/// any of priority 0 to 1, and takes the deadlines off the pieces of `previous` that left
/// the window; pieces we have are left alone. One command to the session.
async fn ask_for<R: Runtime>(
    torrent: &TorrentHandle<R>,
    window: Range<u32>,
    previous: Option<Range<u32>>,
) -> Result<(), Error> {
    let id = torrent.id();
    torrent
        .session()
        .call(move |d, now| -> Result<(), SessionError> {
            for piece in previous.unwrap_or(0..0).filter(|p| !window.contains(p)) {
                let piece = PieceIndex(piece);
                if !d.core().have_piece(id, piece)? {
                    d.core_mut().reset_piece_deadline(now, id, piece)?;
                }
            }
            for (k, piece) in window.clone().enumerate() {
                let piece = PieceIndex(piece);
                if d.core().have_piece(id, piece)? {
                    continue;
                }
                if d.core().piece_priority(id, piece)? == 0 {
                    d.core_mut().set_piece_priority(now, id, piece, 1)?;
                }
                let within = READAHEAD_STEP * u32::try_from(k).unwrap_or(u32::MAX);
                d.set_piece_deadline(now, id, piece, within)?;
            }
            Ok(())
        })
        .await??;
    Ok(())
}

/// Waits until `piece` is verified on disk; fails if the torrent stops on an error or is
/// removed.
async fn wait_for_piece<R: Runtime>(
    torrent: &TorrentHandle<R>,
    piece: PieceIndex,
) -> Result<(), Error> {
    let id = torrent.id();
    let mut alerts = torrent.session().alerts();
    loop {
        // Still wanted, and due now: a change of file priorities may have lowered it.
        let (have, state) = torrent
            .session()
            .call(move |d, now| {
                let have = d.core().have_piece(id, piece)?;
                if !have {
                    if d.core().piece_priority(id, piece)? == 0 {
                        d.core_mut().set_piece_priority(now, id, piece, 1)?;
                    }
                    if d.core().piece_deadline(id, piece)?.is_none() {
                        d.set_piece_deadline(now, id, piece, Duration::ZERO)?;
                    }
                }
                Ok::<_, SessionError>((have, d.core().status(now, id)?.state))
            })
            .await??;
        if have {
            return Ok(());
        }
        if state == TorrentState::Error {
            let status = torrent.status().await?;
            return Err(Error::Torrent(status.error.unwrap_or_default()));
        }
        let arrived = async {
            while let Some(alert) = alerts.recv().await {
                match alert {
                    Alert::PieceFinished { torrent, piece: p } if torrent == id && p == piece => {
                        return
                    }
                    Alert::TorrentError { torrent, .. } | Alert::TorrentRemoved { torrent }
                        if torrent == id =>
                    {
                        return
                    }
                    _ => {}
                }
            }
        };
        let runtime = torrent.session().runtime().clone();
        let _ = runtime::timeout(&runtime, WAIT_POLL, arrived).await;
    }
}

impl<R: Runtime> Drop for FileReader<R> {
    /// Takes the deadlines off the window's pieces that have not arrived (in a task: the
    /// session is told soon after). Raised priorities stay.
    fn drop(&mut self) {
        let Some(window) = self.window.take() else {
            return;
        };
        let torrent = self.torrent.clone();
        let runtime = torrent.session().runtime().clone();
        runtime.spawn(async move {
            let _ = ask_for(&torrent, 0..0, Some(window)).await;
        });
    }
}

impl<R: Runtime> AsyncRead for FileReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.is_none() {
            match this.start_read(buf.len()) {
                Some(read) => this.pending = Some(read),
                None => return Poll::Ready(Ok(0)),
            }
        }
        let Some((_, read)) = this.pending.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        let result = std::task::ready!(read.as_mut().poll(cx));
        let Some((started, _)) = this.pending.take() else {
            return Poll::Ready(Ok(0));
        };
        match result {
            Ok(data) => {
                // The read asked for at most `buf.len()` bytes (a later call may bring a
                // smaller buffer: the rest is read again then).
                let n = data.len().min(buf.len());
                buf[..n].copy_from_slice(&data[..n]);
                this.finish_read(started, &data.slice(..n));
                Poll::Ready(Ok(n))
            }
            Err(e) => {
                this.ready = None;
                Poll::Ready(Err(match e {
                    Error::Io(e) => e,
                    e => io::Error::other(e),
                }))
            }
        }
    }
}

impl<R: Runtime> AsyncSeek for FileReader<R> {
    fn poll_seek(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => this.size().checked_add_signed(d),
            SeekFrom::Current(d) => this.pos.checked_add_signed(d),
        };
        match target {
            Some(n) => {
                this.seek_to(n);
                Poll::Ready(Ok(n))
            }
            None => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a seek before the start of the file",
            ))),
        }
    }
}
