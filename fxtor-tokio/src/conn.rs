//! One TCP stream: a reader task feeding the event loop, a writer task draining a queue.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fxtor_proto::session::{ConnectionId, DiskCompletion};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What the tasks around the event loop tell it.
#[derive(Debug)]
pub(crate) enum Event {
    /// Bytes read from a connection.
    Received(ConnectionId, BytesMut),
    /// Bytes written to a connection.
    Sent(ConnectionId, usize),
    /// A connection ended (end of stream, or an error reading or writing).
    Closed(ConnectionId),
    /// An outgoing connection is established.
    Connected(ConnectionId, TcpStream),
    /// An outgoing connection failed or timed out.
    ConnectFailed(ConnectionId),
    /// A disk job finished.
    Disk(DiskCompletion),
}

/// How much a reader asks the socket for at once.
const READ_CHUNK: usize = 64 * 1024;
/// How much a writer gathers from its queue before flushing.
const WRITE_BATCH: usize = 256 * 1024;
/// A write that makes no progress for this long ends the connection.
const WRITE_STALL: Duration = Duration::from_secs(60);

/// The tasks of one open connection, as the event loop holds them.
#[derive(Debug)]
pub(crate) struct ConnTasks {
    /// The writer's queue: dropping it lets the writer finish what is queued and close.
    pub writer: mpsc::Sender<Bytes>,
    reader: JoinHandle<()>,
}

impl ConnTasks {
    /// Starts the reader and the writer of a stream.
    pub fn start(
        conn: ConnectionId,
        stream: TcpStream,
        queue: usize,
        data: mpsc::Sender<Event>,
        events: mpsc::UnboundedSender<Event>,
    ) -> Self {
        // Small protocol messages (requests, haves) must not wait for Nagle's timer.
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (writer, rx) = mpsc::channel(queue.max(1));
        tokio::spawn(write_loop(conn, write, rx, events));
        let reader = tokio::spawn(read_loop(conn, read, data));
        Self { writer, reader }
    }

    /// Closes the connection: reading stops at once, writing once the queue is drained.
    pub fn close(self) {
        self.reader.abort();
    }
}

async fn read_loop(conn: ConnectionId, mut read: OwnedReadHalf, data: mpsc::Sender<Event>) {
    let mut buf = BytesMut::new();
    loop {
        buf.reserve(READ_CHUNK);
        match read.read_buf(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = data.send(Event::Closed(conn)).await;
                return;
            }
            Ok(_) => {
                // The bounded channel holds readers back while the loop is busy.
                if data.send(Event::Received(conn, buf.split())).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn write_loop(
    conn: ConnectionId,
    write: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Bytes>,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut out = BufWriter::with_capacity(64 * 1024, write);
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        let mut len = batch[0].len();
        while len < WRITE_BATCH {
            match queue.try_recv() {
                Ok(more) => {
                    len += more.len();
                    batch.push(more);
                }
                Err(_) => break,
            }
        }
        let written = tokio::time::timeout(WRITE_STALL, async {
            for data in &batch {
                out.write_all(data).await?;
            }
            out.flush().await
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            let _ = events.send(Event::Closed(conn));
            return;
        }
        let _ = events.send(Event::Sent(conn, len));
    }
    // The loop dropped the queue: the connection is closing and everything queued is out.
    let _ = tokio::time::timeout(WRITE_STALL, out.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn bytes_flow_both_ways_and_the_close_is_reported() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let mut peer = client.unwrap();
        let (stream, _) = accepted.unwrap();
        let (data_tx, mut data_rx) = mpsc::channel(4);
        let (events_tx, mut events_rx) = mpsc::unbounded_channel();
        let tasks = ConnTasks::start(ConnectionId(5), stream, 8, data_tx, events_tx);

        tasks
            .writer
            .send(Bytes::from_static(b"hello "))
            .await
            .unwrap();
        tasks
            .writer
            .send(Bytes::from_static(b"world"))
            .await
            .unwrap();
        let mut sent = 0;
        while sent < 11 {
            match events_rx.recv().await.unwrap() {
                Event::Sent(ConnectionId(5), n) => sent += n,
                other => panic!("{other:?}"),
            }
        }
        let mut got = [0u8; 11];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello world");

        peer.write_all(b"from the peer").await.unwrap();
        let mut received = Vec::new();
        while received.len() < 13 {
            match data_rx.recv().await.unwrap() {
                Event::Received(ConnectionId(5), chunk) => received.extend_from_slice(&chunk),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(received, b"from the peer");
        drop(peer);
        assert!(matches!(
            data_rx.recv().await,
            Some(Event::Closed(ConnectionId(5)))
        ));
        tasks.close();
    }

    #[tokio::test]
    async fn closing_sends_what_was_queued_first() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let mut peer = client.unwrap();
        let (data_tx, _data_rx) = mpsc::channel(4);
        let (events_tx, _events_rx) = mpsc::unbounded_channel();
        let tasks = ConnTasks::start(ConnectionId(1), accepted.unwrap().0, 8, data_tx, events_tx);
        tasks
            .writer
            .send(Bytes::from(vec![7u8; 300_000]))
            .await
            .unwrap();
        tasks.close();
        let mut all = Vec::new();
        peer.read_to_end(&mut all).await.unwrap();
        assert_eq!(all.len(), 300_000);
    }
}
