//! [`AsyncIo`]: the [`Runtime`] of this crate, on async-io's reactor.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;
use std::time::Instant;

use async_executor::Executor;
use async_net::{TcpListener, TcpStream, UdpSocket};
use fxtor_io::Runtime;

/// The executor the sessions' tasks run on: the event loops, the connections' readers and
/// writers, connection attempts.
static EXECUTOR: Executor<'static> = Executor::new();
static START: Once = Once::new();
/// The most threads that run [`EXECUTOR`]. Hashing and file I/O run on `blocking`'s pool,
/// so these threads only move bytes between sockets and the event loop.
const MAX_THREADS: usize = 4;

/// The executor, with its threads started on first use.
fn executor() -> &'static Executor<'static> {
    START.call_once(|| {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_THREADS);
        for n in 0..threads {
            let started = std::thread::Builder::new()
                .name(format!("fxtor-{n}"))
                .spawn(run_executor);
            // The executor runs on the threads that did start; if none did, sessions
            // never start, and this says why.
            if let Err(e) = started {
                eprintln!("fxtor-async-std: cannot start an executor thread: {e}");
            }
        }
    });
    &EXECUTOR
}

fn run_executor() {
    loop {
        // A task's panic is kept in its task, so this returns only if the executor itself
        // fails; keep serving the other tasks.
        let _ = catch_unwind(|| {
            async_io::block_on(EXECUTOR.run(futures_lite::future::pending::<()>()))
        });
    }
}

/// Sockets and timers from `async-io`/`async-net`, blocking work on `blocking`'s thread
/// pool, and tasks on a small executor of this crate's own (`async-executor`, the executor
/// smol and async-std are built on).
///
/// The executor has its own threads, so a session runs whichever executor the application
/// awaits it from: async-std's, smol's, or a bare `block_on`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncIo;

impl Runtime for AsyncIo {
    type Listener = TcpListener;
    type Stream = TcpStream;
    type Reader = TcpStream;
    type Writer = TcpStream;
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

    fn split(&self, stream: TcpStream) -> (TcpStream, TcpStream) {
        let _ = stream.set_nodelay(true);
        // Both halves share the socket; closing the writer shuts down only writing.
        (stream.clone(), stream)
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

    fn sleep_until(&self, at: Instant) -> impl Future<Output = ()> + Send {
        let timer = async_io::Timer::at(at);
        async move {
            timer.await;
        }
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        executor().spawn(task).detach();
    }

    fn spawn_blocking<T, F>(&self, f: F) -> impl Future<Output = Option<T>> + Send
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        blocking::unblock(move || catch_unwind(AssertUnwindSafe(f)).ok())
    }
}
