//! The event loop: one task owns the [`Driver`] (and so the core) and waits on everything
//! that can happen to it; written once for every [`Runtime`].

use std::collections::HashMap;
use std::future::pending;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, Sender};
use bytes::Bytes;
use futures_lite::future::race;
use fxtor_proto::session::{ConnectionId, Datagram, DiskJob, HttpRequestId, ResolveId};
use fxtor_proto::time::Instant;

use crate::alerts::AlertQueue;
use crate::connection::{ConnTasks, Event, Queued, Reports};
use crate::http::HttpClient;
use crate::runtime::{self, Runtime};
use crate::{disk, Clock, Driver, Effect, SessionSettings, Storage};

/// A command: a closure run on the loop with the driver and the current time.
pub(crate) type Call = Box<dyn FnOnce(&mut Driver, Instant) + Send>;

/// What a session handle sends the loop.
pub(crate) enum Command {
    /// Run this on the driver.
    Call(Call),
    /// Stop: close every connection, let running disk jobs finish, then drop the sender
    /// (which is the answer).
    Shutdown(Sender<()>),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Call(_) => "Call",
            Command::Shutdown(_) => "Shutdown",
        })
    }
}

/// Chunks read but not yet handled, across all connections: readers wait beyond this.
const DATA_QUEUE: usize = 256;
/// How long a host name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(20);
/// The largest datagram received (the most a UDP payload can be).
const MAX_DATAGRAM: usize = 65_536;
/// How long to wait after a failed accept (out of descriptors, say) rather than spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// One thing that happened, as the loop takes it.
enum Input<S> {
    /// A command, or `None`: every handle is gone.
    Command(Option<Command>),
    Accepted(io::Result<(S, SocketAddr)>),
    Event(Event<S>),
    Timeout,
}

pub(crate) struct EventLoop<R: Runtime> {
    runtime: R,
    driver: Driver,
    clock: Clock,
    connect_timeout: Duration,
    send_queue: usize,
    listener: Option<R::Listener>,
    conns: HashMap<ConnectionId, ConnTasks>,
    commands: Receiver<Command>,
    alerts: AlertQueue,
    reports: Reports<R::Stream>,
    data: Receiver<Event<R::Stream>>,
    events: Receiver<Event<R::Stream>>,
    /// The session's UDP socket (trackers; later the DHT and uTP).
    udp: Option<Arc<R::UdpSocket>>,
    /// Closed when the loop ends, which ends the UDP receiving task.
    udp_stop: Option<Sender<()>>,
    /// The UDP socket is bound to an IPv6 address.
    udp_v6: bool,
    http: Option<HttpClient>,
    stop_announce_timeout: Duration,
}

impl<R: Runtime> EventLoop<R> {
    pub fn new(
        runtime: R,
        driver: Driver,
        clock: Clock,
        settings: &SessionSettings,
        listener: Option<R::Listener>,
        commands: Receiver<Command>,
        alerts: AlertQueue,
    ) -> Self {
        let (data_tx, data) = async_channel::bounded(DATA_QUEUE);
        let (events_tx, events) = async_channel::unbounded();
        Self {
            runtime,
            driver,
            clock,
            connect_timeout: settings.connect_timeout,
            send_queue: settings.send_queue,
            listener,
            conns: HashMap::new(),
            commands,
            alerts,
            reports: Reports {
                data: data_tx,
                events: events_tx,
            },
            data,
            events,
            udp: None,
            udp_stop: None,
            udp_v6: false,
            http: None,
            stop_announce_timeout: settings.stop_announce_timeout,
        }
    }

    /// Gives the loop its UDP socket and its HTTP client.
    pub fn with_trackers(mut self, udp: Option<R::UdpSocket>, http: HttpClient) -> Self {
        self.udp_v6 = udp
            .as_ref()
            .and_then(|u| self.runtime.udp_local_addr(u).ok())
            .is_some_and(|a| a.is_ipv6());
        self.udp = udp.map(Arc::new);
        self.http = Some(http);
        self
    }

    /// Receives datagrams until the loop ends, into the bounded data channel.
    fn start_udp_receiver(&mut self) {
        let Some(socket) = self.udp.clone() else {
            return;
        };
        let (stop_tx, stop) = async_channel::bounded::<()>(1);
        self.udp_stop = Some(stop_tx);
        let runtime = self.runtime.clone();
        let data = self.reports.data.clone();
        self.runtime.spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                let received = async { Some(runtime.recv_from(&socket, &mut buf).await) };
                let stopped = async {
                    let _ = stop.recv().await;
                    None
                };
                match race(received, stopped).await {
                    None => break,
                    Some(Ok((len, from))) => {
                        let datagram = Bytes::copy_from_slice(buf.get(..len).unwrap_or(&[]));
                        if data.send(Event::Datagram(from, datagram)).await.is_err() {
                            break;
                        }
                    }
                    // An error of one datagram (an ICMP report, say) is not the socket's.
                    Some(Err(_)) => runtime::sleep(&runtime, ACCEPT_BACKOFF).await,
                }
            }
        });
    }

    /// Runs until shut down, or until every handle to the session is gone.
    pub async fn run(mut self) {
        self.start_udp_receiver();
        let shutdown = loop {
            self.carry_out_effects();
            match self.next_input().await {
                Input::Command(Some(Command::Call(call))) => {
                    call(&mut self.driver, self.clock.now())
                }
                Input::Command(Some(Command::Shutdown(done))) => break Some(done),
                Input::Command(None) => break None,
                Input::Accepted(Ok((stream, addr))) => self.accepted(stream, addr),
                Input::Accepted(Err(_)) => runtime::sleep(&self.runtime, ACCEPT_BACKOFF).await,
                Input::Event(event) => self.event(event),
                Input::Timeout => self.driver.timeout(self.clock.now()),
            }
        };
        self.stop().await;
        // Commands sent meanwhile, or from now on, fail: their answers' senders drop.
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            drop(command);
        }
        // Dropping the answer's sender is the answer.
        drop(shutdown);
    }

    /// Waits for whichever input comes first; among several ready at once, one at random,
    /// so a busy source cannot starve the others.
    async fn next_input(&self) -> Input<R::Stream> {
        let timer = self.driver.poll_timeout().map(|at| self.clock.to_std(at));
        let command = async { Input::Command(self.commands.recv().await.ok()) };
        let accept = async {
            match &self.listener {
                Some(listener) => Input::Accepted(self.runtime.accept(listener).await),
                None => pending().await,
            }
        };
        // The loop holds senders of both channels, so they never close.
        let data = async {
            match self.data.recv().await {
                Ok(event) => Input::Event(event),
                Err(_) => pending().await,
            }
        };
        let events = async {
            match self.events.recv().await {
                Ok(event) => Input::Event(event),
                Err(_) => pending().await,
            }
        };
        let timeout = async {
            match timer {
                Some(at) => {
                    self.runtime.sleep_until(at).await;
                    Input::Timeout
                }
                None => pending().await,
            }
        };
        race(race(command, timeout), race(race(events, data), accept)).await
    }

    /// Closes everything and waits for the disk jobs already running, so every piece that
    /// passed its check is on disk when the session says it has stopped; then closes the
    /// alerts.
    async fn stop(&mut self) {
        self.listener = None;
        self.announce_stopped().await;
        for conn in self.driver.shutdown() {
            if let Some(tasks) = self.conns.remove(&conn) {
                tasks.close();
            }
        }
        for (_, tasks) in self.conns.drain() {
            tasks.close();
        }
        while self.driver.disk_in_flight() > 0 {
            match self.events.recv().await {
                Ok(Event::Disk(done)) => self.driver.disk_done(self.clock.now(), done),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        // Whatever the last completions produced, alerts included, goes out.
        while let Some(effect) = self.driver.poll_effect() {
            if let Effect::Alert(alert) = effect {
                self.alerts.publish(alert);
            }
        }
        self.alerts.close();
    }

    /// Announces `stopped` to every torrent's trackers and waits (a bounded time) for the
    /// answers, while everything else still runs.
    async fn announce_stopped(&mut self) {
        self.driver.stop_announcing(self.clock.now());
        let deadline = self
            .clock
            .to_std(self.clock.now() + self.stop_announce_timeout);
        loop {
            self.carry_out_effects();
            if !self.driver.has_tracker_requests() {
                break;
            }
            let events = async { self.events.recv().await.ok() };
            let data = async { self.data.recv().await.ok() };
            let timeout = async {
                self.runtime.sleep_until(deadline).await;
                None
            };
            match race(race(events, data), timeout).await {
                Some(event) => self.event(event),
                None => break,
            }
        }
    }

    fn accepted(&mut self, stream: R::Stream, addr: SocketAddr) {
        if let Some(conn) = self.driver.incoming(self.clock.now(), addr) {
            self.open(conn, stream);
        }
        // Refused: the stream is dropped, which closes it.
    }

    fn open(&mut self, conn: ConnectionId, stream: R::Stream) {
        let tasks = ConnTasks::start(&self.runtime, conn, stream, self.send_queue, &self.reports);
        self.conns.insert(conn, tasks);
    }

    fn close(&mut self, conn: ConnectionId) {
        if let Some(tasks) = self.conns.remove(&conn) {
            tasks.close();
        }
    }

    fn event(&mut self, event: Event<R::Stream>) {
        let now = self.clock.now();
        match event {
            Event::Received(conn, data) => self.driver.received(now, conn, data),
            Event::Sent(conn, n) => self.driver.sent(now, conn, n),
            Event::Closed(conn) => {
                self.close(conn);
                self.driver.closed(now, conn);
            }
            Event::Connected(conn, stream) => {
                // Tasks first: the bytes held for the connection are handed out next.
                if self.driver.connected(now, conn) {
                    self.open(conn, stream);
                }
            }
            Event::ConnectFailed(conn) => self.driver.connect_failed(now, conn),
            Event::Disk(done) => self.driver.disk_done(now, done),
            Event::Http(id, response) => self.driver.http_response(now, id, response),
            Event::Resolved(id, result) => self.driver.resolved(now, id, result),
            Event::Datagram(from, data) => self.driver.datagram(now, from, &data),
        }
    }

    fn carry_out_effects(&mut self) {
        while let Some(effect) = self.driver.poll_effect() {
            match effect {
                Effect::Connect { conn, addr } => self.connect(conn, addr),
                Effect::Send { conn, data } => {
                    let Some(tasks) = self.conns.get(&conn) else {
                        continue;
                    };
                    if tasks.send(data) == Queued::Full {
                        // The peer has not read for a whole queue of messages: stalled.
                        self.close(conn);
                        self.driver.closed(self.clock.now(), conn);
                    }
                }
                Effect::Close { conn } => self.close(conn),
                Effect::Disk { storage, job } => self.run_disk_job(storage, job),
                Effect::DeleteFiles { storage } => {
                    // Nothing waits on this; a failure leaves files for the user to remove.
                    let runtime = self.runtime.clone();
                    self.runtime.spawn(async move {
                        let _ = runtime.spawn_blocking(move || storage.delete_files()).await;
                    });
                }
                // No subscriber is not an error: alerts are for whoever listens.
                Effect::Alert(alert) => self.alerts.publish(alert),
                Effect::HttpRequest { id, url } => self.http_request(id, url),
                Effect::Resolve { id, host, port } => self.resolve(id, host, port),
                Effect::SendDatagram(datagram) => self.send_datagram(datagram),
            }
        }
    }

    fn connect(&self, conn: ConnectionId, addr: SocketAddr) {
        let runtime = self.runtime.clone();
        let events = self.reports.events.clone();
        let limit = self.connect_timeout;
        self.runtime.spawn(async move {
            let event = match runtime::timeout(&runtime, limit, runtime.connect(addr)).await {
                Some(Ok(stream)) => Event::Connected(conn, stream),
                _ => Event::ConnectFailed(conn),
            };
            let _ = events.try_send(event);
        });
    }

    /// Runs an HTTP GET on the blocking pool.
    fn http_request(&self, id: HttpRequestId, url: String) {
        let Some(client) = self.http.clone() else {
            let _ =
                (self.reports.events).try_send(Event::Http(id, Err("no HTTP client".to_owned())));
            return;
        };
        let runtime = self.runtime.clone();
        let events = self.reports.events.clone();
        self.runtime.spawn(async move {
            let result = runtime
                .spawn_blocking(move || client.get(&url))
                .await
                .unwrap_or_else(|| Err("the HTTP request panicked".to_owned()));
            let _ = events.try_send(Event::Http(id, result));
        });
    }

    /// Resolves a host name on the blocking pool.
    fn resolve(&self, id: ResolveId, host: String, port: u16) {
        let runtime = self.runtime.clone();
        let events = self.reports.events.clone();
        self.runtime.spawn(async move {
            let resolving = runtime.spawn_blocking(move || crate::http::resolve(&host, port));
            // A resolver that hangs must not hold the tracker's announces up for ever.
            let result = match runtime::timeout(&runtime, RESOLVE_TIMEOUT, resolving).await {
                Some(Some(result)) => result,
                Some(None) => Err("name resolution panicked".to_owned()),
                None => Err(format!("name resolution took over {RESOLVE_TIMEOUT:?}")),
            };
            let _ = events.try_send(Event::Resolved(id, result));
        });
    }

    /// Sends a datagram from the session's UDP socket; a failure is a lost datagram, which
    /// UDP protocols expect.
    fn send_datagram(&self, datagram: Datagram) {
        let Some(socket) = self.udp.clone() else {
            return;
        };
        // A socket bound to an IPv6 address reaches IPv4 ones by their mapped form.
        let to = match (self.udp_v6, datagram.to) {
            (true, SocketAddr::V4(v4)) => {
                SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
            }
            (_, to) => to,
        };
        let runtime = self.runtime.clone();
        self.runtime.spawn(async move {
            let _ = runtime.send_to(&socket, &datagram.data, to).await;
        });
    }

    fn run_disk_job(&self, storage: Arc<Storage>, job: DiskJob) {
        let runtime = self.runtime.clone();
        let events = self.reports.events.clone();
        let refused = disk::refuse_job(&job, "the disk job panicked");
        self.runtime.spawn(async move {
            let done = runtime
                .spawn_blocking(move || disk::run_job(&storage, job))
                .await
                .unwrap_or(refused);
            let _ = events.try_send(Event::Disk(done));
        });
    }
}
