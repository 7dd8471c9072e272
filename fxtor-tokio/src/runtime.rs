//! [`Tokio`]: the [`Runtime`] of this crate.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use fxtor_io::Runtime;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::Instant;
use tokio_util::compat::{Compat, TokioAsyncReadCompatExt as _, TokioAsyncWriteCompatExt as _};

/// Sockets, timers, tasks and the blocking pool of the tokio runtime the session is
/// started on.
///
/// Its methods call tokio's free functions, so a session must be started from within a
/// tokio runtime (with its I/O and time drivers enabled), and its tasks run there.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokio;

impl Runtime for Tokio {
    type Listener = TcpListener;
    type Stream = TcpStream;
    type Reader = Compat<OwnedReadHalf>;
    type Writer = Compat<OwnedWriteHalf>;
    type UdpSocket = UdpSocket;

    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<TcpListener>> + Send {
        TcpListener::bind(addr)
    }

    fn local_addr(&self, listener: &TcpListener) -> io::Result<SocketAddr> {
        listener.local_addr()
    }

    fn accept<'a>(
        &'a self,
        listener: &'a TcpListener,
    ) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send + 'a {
        listener.accept()
    }

    fn connect(&self, addr: SocketAddr) -> impl Future<Output = io::Result<TcpStream>> + Send {
        TcpStream::connect(addr)
    }

    fn split(&self, stream: TcpStream) -> (Self::Reader, Self::Writer) {
        let _ = stream.set_nodelay(true);
        // Dropping or closing the writing half shuts the socket down for writing only.
        let (read, write) = stream.into_split();
        (read.compat(), write.compat_write())
    }

    fn bind_udp(&self, addr: SocketAddr) -> impl Future<Output = io::Result<UdpSocket>> + Send {
        UdpSocket::bind(addr)
    }

    fn udp_local_addr(&self, socket: &UdpSocket) -> io::Result<SocketAddr> {
        socket.local_addr()
    }

    fn send_to<'a>(
        &'a self,
        socket: &'a UdpSocket,
        data: &'a [u8],
        to: SocketAddr,
    ) -> impl Future<Output = io::Result<usize>> + Send + 'a {
        socket.send_to(data, to)
    }

    fn recv_from<'a>(
        &'a self,
        socket: &'a UdpSocket,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + Send + 'a {
        socket.recv_from(buf)
    }

    fn sleep_until(&self, at: std::time::Instant) -> impl Future<Output = ()> + Send {
        tokio::time::sleep_until(Instant::from_std(at))
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(task);
    }

    fn spawn_blocking<T, F>(&self, f: F) -> impl Future<Output = Option<T>> + Send
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let task = tokio::task::spawn_blocking(f);
        // A panic in `f` (or a runtime shutting down) is an error of the join.
        async move { task.await.ok() }
    }
}
