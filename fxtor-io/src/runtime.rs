//! What an async runtime provides a session: sockets, timers and spawning.
//!
//! Everything else a session does (the event loop, a connection's reader and writer, the
//! commands of the handles, the alert fan-out) is written once, in this crate, against
//! this trait; `fxtor-tokio` and `fxtor-async-std` each implement it for their runtime.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant as StdInstant};

use futures_lite::io::{AsyncRead, AsyncWrite};

/// The primitives of an async runtime that a session needs.
///
/// A runtime value is cloned into every task the session spawns; it is usually a unit
/// struct, or a handle to an executor.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// A listening TCP socket.
    type Listener: Send + Sync + 'static;
    /// A connected TCP stream.
    type Stream: Send + 'static;
    /// The reading half of a stream.
    type Reader: AsyncRead + Unpin + Send + 'static;
    /// The writing half of a stream; closing it shuts the stream down for writing.
    type Writer: AsyncWrite + Unpin + Send + 'static;

    /// A bound UDP socket.
    type UdpSocket: Send + Sync + 'static;

    /// Binds a listening socket.
    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Listener>> + Send;

    /// The address a listener is bound to.
    fn local_addr(&self, listener: &Self::Listener) -> io::Result<SocketAddr>;

    /// Accepts the next connection.
    fn accept<'a>(
        &'a self,
        listener: &'a Self::Listener,
    ) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send + 'a;

    /// Opens a connection.
    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// Splits a stream into its halves, with Nagle's algorithm off (small protocol messages
    /// such as requests must not wait for its timer).
    fn split(&self, stream: Self::Stream) -> (Self::Reader, Self::Writer);

    /// Binds a UDP socket.
    fn bind_udp(
        &self,
        addr: SocketAddr,
    ) -> impl Future<Output = io::Result<Self::UdpSocket>> + Send;

    /// The address a UDP socket is bound to.
    fn udp_local_addr(&self, socket: &Self::UdpSocket) -> io::Result<SocketAddr>;

    /// Sends one datagram.
    fn send_to<'a>(
        &'a self,
        socket: &'a Self::UdpSocket,
        data: &'a [u8],
        to: SocketAddr,
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a;

    /// Receives one datagram into `buf`: its length and sender.
    fn recv_from<'a>(
        &'a self,
        socket: &'a Self::UdpSocket,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send + 'a;

    /// Resolves at `at`.
    fn sleep_until(&self, at: StdInstant) -> impl Future<Output = ()> + Send;

    /// Runs a task in the background to its end.
    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static);

    /// Runs blocking code (file I/O, hashing) off the async threads; `None` if it panicked.
    fn spawn_blocking<T, F>(&self, f: F) -> impl Future<Output = Option<T>> + Send
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static;
}

/// Resolves after `duration`.
pub async fn sleep<R: Runtime>(runtime: &R, duration: Duration) {
    runtime.sleep_until(deadline(duration)).await
}

/// `future`'s output, or `None` if it takes longer than `limit`.
pub async fn timeout<R: Runtime, T>(
    runtime: &R,
    limit: Duration,
    future: impl Future<Output = T>,
) -> Option<T> {
    let at = deadline(limit);
    futures_lite::future::or(async { Some(future.await) }, async {
        runtime.sleep_until(at).await;
        None
    })
    .await
}

/// The instant `duration` from now; a year from now if that cannot be represented.
fn deadline(duration: Duration) -> StdInstant {
    let now = StdInstant::now();
    now.checked_add(duration)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}
