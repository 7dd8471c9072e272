//! One TCP stream of a session: a reader task feeding the event loop, a writer task draining
//! a queue, both on the session's [`Runtime`].

use std::time::Duration;

use async_channel::{Receiver, Sender, TrySendError};
use bytes::{Bytes, BytesMut};
use futures_lite::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufWriter};
use fxtor_proto::session::{ConnectionId, DiskCompletion, HttpRequestId, ResolveId};

use crate::runtime::{self, Runtime};

/// What the tasks around the event loop tell it; `S` is the runtime's stream.
#[derive(Debug)]
pub(crate) enum Event<S> {
    /// Bytes read from a connection.
    Received(ConnectionId, BytesMut),
    /// Bytes written to a connection.
    Sent(ConnectionId, usize),
    /// A connection ended (end of stream, or an error reading or writing).
    Closed(ConnectionId),
    /// An outgoing connection is established.
    Connected(ConnectionId, S),
    /// An outgoing connection failed or timed out.
    ConnectFailed(ConnectionId),
    /// A disk job finished.
    Disk(DiskCompletion),
    /// An HTTP request ended.
    Http(HttpRequestId, Result<(u16, Vec<u8>), String>),
    /// A host name was resolved (or not).
    Resolved(ResolveId, Result<Vec<std::net::SocketAddr>, String>),
    /// A datagram arrived on the session's UDP socket.
    Datagram(std::net::SocketAddr, Bytes),
}

/// The buffer a reader reads into. Each read is split off its front, so consecutive reads
/// sit side by side and the loop joins a message cut between them without copying; the
/// buffer is zeroed once, not before every read.
const READ_BUFFER: usize = 256 * 1024;
/// The most a reader asks the socket for at once.
const READ_CHUNK: usize = 64 * 1024;
/// A reader's buffer with less room than this left is replaced by a fresh one.
const MIN_READ_ROOM: usize = 16 * 1024;
/// How much a writer gathers from its queue before flushing.
const WRITE_BATCH: usize = 256 * 1024;
/// The writer's buffer in front of the socket.
const WRITE_BUFFER: usize = 64 * 1024;
/// A write that makes no progress for this long ends the connection.
const WRITE_STALL: Duration = Duration::from_secs(60);

/// Where a connection's tasks report to the event loop.
#[derive(Debug)]
pub(crate) struct Reports<S> {
    /// Bytes read and ends of stream: bounded, so readers wait while the loop is busy.
    pub data: Sender<Event<S>>,
    /// Everything else: unbounded, so nothing that frees resources ever waits.
    pub events: Sender<Event<S>>,
}

/// The tasks of one open connection, as the event loop holds them.
#[derive(Debug)]
pub(crate) struct ConnTasks {
    /// The writer's queue: dropping it lets the writer finish what is queued and close.
    writer: Sender<Bytes>,
    /// Held only to be dropped: the reader stops when this end goes.
    _reading: Sender<()>,
}

/// What became of bytes handed to a connection.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Queued {
    /// They are in the writer's queue.
    Yes,
    /// The queue is full: the peer has not read a whole queue of messages.
    Full,
    /// The writer has ended (its `Closed` event is on the way).
    WriterGone,
}

impl ConnTasks {
    /// Starts the reader and the writer of a stream.
    pub fn start<R: Runtime>(
        runtime: &R,
        conn: ConnectionId,
        stream: R::Stream,
        queue: usize,
        reports: &Reports<R::Stream>,
    ) -> Self {
        let (read, write) = runtime.split(stream);
        let (writer, queued) = async_channel::bounded(queue.max(1));
        let (reading, stop) = async_channel::bounded(1);
        runtime.spawn(write_loop(
            runtime.clone(),
            conn,
            write,
            queued,
            reports.events.clone(),
        ));
        runtime.spawn(read_loop(conn, read, reports.data.clone(), stop));
        Self {
            writer,
            _reading: reading,
        }
    }

    /// Queues bytes for the writer, without waiting.
    pub fn send(&self, data: Bytes) -> Queued {
        match self.writer.try_send(data) {
            Ok(()) => Queued::Yes,
            Err(TrySendError::Full(_)) => Queued::Full,
            Err(TrySendError::Closed(_)) => Queued::WriterGone,
        }
    }

    /// Closes the connection: reading stops at once, writing once the queue is drained.
    pub fn close(self) {}
}

async fn read_loop<S>(
    conn: ConnectionId,
    mut read: impl AsyncRead + Unpin,
    data: Sender<Event<S>>,
    stop: Receiver<()>,
) {
    let reading = async {
        let mut buf = BytesMut::new();
        loop {
            if buf.len() < MIN_READ_ROOM {
                buf = BytesMut::zeroed(READ_BUFFER);
            }
            let room = buf.len().min(READ_CHUNK);
            match read.read(&mut buf[..room]).await {
                Ok(0) | Err(_) => {
                    let _ = data.send(Event::Closed(conn)).await;
                    return;
                }
                Ok(n) => {
                    let chunk = buf.split_to(n.min(room));
                    // The bounded channel holds readers back while the loop is busy.
                    if data.send(Event::Received(conn, chunk)).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    // Nothing is ever sent on `stop`: it ends when the loop drops the other end.
    futures_lite::future::or(reading, async {
        let _ = stop.recv().await;
    })
    .await
}

async fn write_loop<R: Runtime, S>(
    runtime: R,
    conn: ConnectionId,
    write: impl AsyncWrite + Unpin,
    queue: Receiver<Bytes>,
    events: Sender<Event<S>>,
) {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, write);
    while let Ok(first) = queue.recv().await {
        let mut len = first.len();
        let mut batch = vec![first];
        while len < WRITE_BATCH {
            match queue.try_recv() {
                Ok(more) => {
                    len += more.len();
                    batch.push(more);
                }
                Err(_) => break,
            }
        }
        let written = runtime::timeout(&runtime, WRITE_STALL, async {
            for data in &batch {
                out.write_all(data).await?;
            }
            out.flush().await
        })
        .await;
        if !matches!(written, Some(Ok(()))) {
            let _ = events.try_send(Event::Closed(conn));
            return;
        }
        let _ = events.try_send(Event::Sent(conn, len));
    }
    // The loop dropped the queue: the connection is closing and everything queued is out.
    let _ = runtime::timeout(&runtime, WRITE_STALL, out.close()).await;
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::io;
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use futures_lite::future::{block_on, pending};
    use futures_lite::io::Cursor;

    use super::*;

    /// A runtime whose timers never fire; the loops under test use nothing else of it.
    #[derive(Clone)]
    struct NoTimers;

    impl Runtime for NoTimers {
        type Listener = ();
        type Stream = ();
        type Reader = Cursor<Vec<u8>>;
        type Writer = Sink;
        type UdpSocket = ();

        fn bind(&self, _: SocketAddr) -> impl Future<Output = io::Result<()>> + Send {
            pending()
        }
        fn local_addr(&self, _: &()) -> io::Result<SocketAddr> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn accept<'a>(
            &'a self,
            _: &'a (),
        ) -> impl Future<Output = io::Result<((), SocketAddr)>> + Send + 'a {
            pending()
        }
        fn connect(&self, _: SocketAddr) -> impl Future<Output = io::Result<()>> + Send {
            pending()
        }
        fn split(&self, _: ()) -> (Cursor<Vec<u8>>, Sink) {
            (Cursor::new(Vec::new()), Sink::default())
        }
        fn bind_udp(&self, _: SocketAddr) -> impl Future<Output = io::Result<()>> + Send {
            pending()
        }
        fn udp_local_addr(&self, _: &()) -> io::Result<SocketAddr> {
            Err(io::ErrorKind::Unsupported.into())
        }
        fn send_to<'a>(
            &'a self,
            _: &'a (),
            _: &'a [u8],
            _: SocketAddr,
        ) -> impl Future<Output = io::Result<usize>> + Send + 'a {
            pending()
        }
        fn recv_from<'a>(
            &'a self,
            _: &'a (),
            _: &'a mut [u8],
        ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send + 'a {
            pending()
        }
        fn sleep_until(&self, _: std::time::Instant) -> impl Future<Output = ()> + Send {
            pending()
        }
        fn spawn(&self, _: impl Future<Output = ()> + Send + 'static) {}
        fn spawn_blocking<T, F>(&self, f: F) -> impl Future<Output = Option<T>> + Send
        where
            T: Send + 'static,
            F: FnOnce() -> T + Send + 'static,
        {
            let out = f();
            async { Some(out) }
        }
    }

    /// A writer that keeps what it is given, and whether it was closed.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, bool)>>);

    impl AsyncWrite for Sink {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let mut state = self.0.lock().unwrap();
            assert!(!state.1, "written after close");
            state.0.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.0.lock().unwrap().1 = true;
            Poll::Ready(Ok(()))
        }
    }

    /// A reader with nothing to read, ever.
    struct Silent;

    impl AsyncRead for Silent {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Pending
        }
    }

    #[test]
    fn the_writer_sends_everything_queued_in_order_then_closes() {
        let (queue, queued) = async_channel::unbounded();
        let (events, reports) = async_channel::unbounded::<Event<()>>();
        queue.try_send(Bytes::from_static(b"hello ")).unwrap();
        queue.try_send(Bytes::from(vec![b'!'; 300_000])).unwrap();
        queue.try_send(Bytes::from_static(b" world")).unwrap();
        drop(queue);
        let sink = Sink::default();
        block_on(write_loop(
            NoTimers,
            ConnectionId(4),
            sink.clone(),
            queued,
            events,
        ));
        let (written, closed) = sink.0.lock().unwrap().clone();
        assert_eq!(written.len(), 300_012);
        assert!(written.starts_with(b"hello !") && written.ends_with(b"! world"));
        assert!(closed);
        let mut sent = 0;
        while let Ok(event) = reports.try_recv() {
            match event {
                Event::Sent(ConnectionId(4), n) => sent += n,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(sent, 300_012);
    }

    #[test]
    fn the_reader_hands_over_every_byte_then_the_end() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (reports, received) = async_channel::unbounded::<Event<()>>();
        let (_keep_reading, stop) = async_channel::bounded(1);
        block_on(read_loop(
            ConnectionId(9),
            Cursor::new(data.clone()),
            reports,
            stop,
        ));
        let mut got = Vec::new();
        let mut closed = false;
        while let Ok(event) = received.try_recv() {
            match event {
                Event::Received(ConnectionId(9), chunk) if !closed => got.extend_from_slice(&chunk),
                Event::Closed(ConnectionId(9)) if !closed => closed = true,
                other => panic!("{other:?}"),
            }
        }
        assert!(closed);
        assert_eq!(got, data);
    }

    #[test]
    fn dropping_the_stop_end_ends_a_waiting_reader() {
        let (reports, received) = async_channel::unbounded::<Event<()>>();
        let (reading, stop) = async_channel::bounded(1);
        drop(reading);
        block_on(read_loop(ConnectionId(1), Silent, reports, stop));
        // Stopped by the loop, not by the peer: nothing is reported.
        assert!(received.try_recv().is_err());
    }
}
