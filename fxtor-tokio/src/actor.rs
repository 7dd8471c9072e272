//! The event loop: one task owns the [`Driver`] (and so the core) and selects over
//! everything that can happen to it.

use std::collections::HashMap;
use std::future::pending;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fxtor_io::{disk, Clock, Core, Driver, Effect, SessionSettings, Storage};
use fxtor_proto::session::{Alert, ConnectionId, DiskJob};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::conn::{ConnTasks, Event};

/// A command: a closure run on the loop with the driver and the current time.
pub(crate) type Call<C> = Box<dyn FnOnce(&mut Driver<C>, fxtor_proto::time::Instant) + Send>;

/// What a [`Session`](crate::Session) handle sends the loop.
pub(crate) enum Msg<C = fxtor_proto::session::Session> {
    /// Run this on the driver.
    Call(Call<C>),
    /// Stop: close every connection, let running disk jobs finish, then answer.
    Shutdown(oneshot::Sender<()>),
}

/// Chunks read but not yet handled, across all connections: readers wait beyond this.
const DATA_QUEUE: usize = 256;

/// The loop's state. Generic over the core so tests can drive it with a scripted one.
pub(crate) struct Actor<C> {
    driver: Driver<C>,
    clock: Clock,
    connect_timeout: Duration,
    send_queue: usize,
    listener: Option<TcpListener>,
    conns: HashMap<ConnectionId, ConnTasks>,
    commands: mpsc::Receiver<Msg<C>>,
    alerts: broadcast::Sender<Alert>,
    data_tx: mpsc::Sender<Event>,
    data_rx: mpsc::Receiver<Event>,
    events_tx: mpsc::UnboundedSender<Event>,
    events_rx: mpsc::UnboundedReceiver<Event>,
}

impl<C: Core> Actor<C> {
    pub fn new(
        driver: Driver<C>,
        clock: Clock,
        settings: &SessionSettings,
        listener: Option<TcpListener>,
        commands: mpsc::Receiver<Msg<C>>,
        alerts: broadcast::Sender<Alert>,
    ) -> Self {
        let (data_tx, data_rx) = mpsc::channel(DATA_QUEUE);
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Self {
            driver,
            clock,
            connect_timeout: settings.connect_timeout,
            send_queue: settings.send_queue,
            listener,
            conns: HashMap::new(),
            commands,
            alerts,
            data_tx,
            data_rx,
            events_tx,
            events_rx,
        }
    }

    /// Runs until shut down, or until every handle to the session is gone.
    pub async fn run(mut self) {
        let shutdown = loop {
            self.carry_out_effects();
            let timer = self
                .driver
                .poll_timeout()
                .map(|at| tokio::time::Instant::from_std(self.clock.to_std(at)));
            tokio::select! {
                msg = self.commands.recv() => match msg {
                    Some(Msg::Call(call)) => call(&mut self.driver, self.clock.now()),
                    Some(Msg::Shutdown(done)) => break Some(done),
                    None => break None,
                },
                accepted = accept(self.listener.as_ref()) => match accepted {
                    Ok((stream, addr)) => self.accepted(stream, addr),
                    // Out of descriptors, say: give the system a moment rather than spin.
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                },
                Some(event) = self.data_rx.recv() => self.event(event),
                Some(event) = self.events_rx.recv() => self.event(event),
                () = sleep_until(timer) => self.driver.timeout(self.clock.now()),
            }
        };
        self.stop().await;
        if let Some(done) = shutdown {
            let _ = done.send(());
        }
    }

    /// Closes everything and waits for the disk jobs already running, so every piece that
    /// passed its check is on disk when the session says it has stopped.
    async fn stop(&mut self) {
        self.listener = None;
        for conn in self.driver.shutdown() {
            if let Some(tasks) = self.conns.remove(&conn) {
                tasks.close();
            }
        }
        for (_, tasks) in self.conns.drain() {
            tasks.close();
        }
        while self.driver.disk_in_flight() > 0 {
            match self.events_rx.recv().await {
                Some(Event::Disk(done)) => self.driver.disk_done(self.clock.now(), done),
                Some(_) => {}
                None => break,
            }
        }
        // Whatever the last completions produced, alerts included, goes out.
        while let Some(effect) = self.driver.poll_effect() {
            if let Effect::Alert(alert) = effect {
                let _ = self.alerts.send(alert);
            }
        }
    }

    fn accepted(&mut self, stream: TcpStream, addr: SocketAddr) {
        if let Some(conn) = self.driver.incoming(self.clock.now(), addr) {
            self.open(conn, stream);
        }
        // Refused: the stream is dropped, which closes it.
    }

    fn open(&mut self, conn: ConnectionId, stream: TcpStream) {
        let tasks = ConnTasks::start(
            conn,
            stream,
            self.send_queue,
            self.data_tx.clone(),
            self.events_tx.clone(),
        );
        self.conns.insert(conn, tasks);
    }

    fn event(&mut self, event: Event) {
        let now = self.clock.now();
        match event {
            Event::Received(conn, data) => self.driver.received(now, conn, data),
            Event::Sent(conn, n) => self.driver.sent(now, conn, n),
            Event::Closed(conn) => {
                if let Some(tasks) = self.conns.remove(&conn) {
                    tasks.close();
                }
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
                    match tasks.writer.try_send(data) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            // The peer has not read for a whole queue of messages: stalled.
                            if let Some(tasks) = self.conns.remove(&conn) {
                                tasks.close();
                            }
                            self.driver.closed(self.clock.now(), conn);
                        }
                        // The writer failed; its Closed event is on the way.
                        Err(mpsc::error::TrySendError::Closed(_)) => {}
                    }
                }
                Effect::Close { conn } => {
                    if let Some(tasks) = self.conns.remove(&conn) {
                        tasks.close();
                    }
                }
                Effect::Disk { storage, job } => self.run_disk_job(storage, job),
                Effect::DeleteFiles { storage } => {
                    // Nothing waits on this; a failure leaves files for the user to remove.
                    drop(tokio::task::spawn_blocking(move || storage.delete_files()));
                }
                Effect::Alert(alert) => {
                    // No subscriber is not an error: alerts are for whoever listens.
                    let _ = self.alerts.send(alert);
                }
            }
        }
    }

    fn connect(&self, conn: ConnectionId, addr: SocketAddr) {
        let events = self.events_tx.clone();
        let limit = self.connect_timeout;
        tokio::spawn(async move {
            let event = match tokio::time::timeout(limit, TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => Event::Connected(conn, stream),
                _ => Event::ConnectFailed(conn),
            };
            let _ = events.send(event);
        });
    }

    fn run_disk_job(&self, storage: Arc<Storage>, job: DiskJob) {
        let events = self.events_tx.clone();
        let refused = disk::refuse_job(&job, "the disk job panicked");
        tokio::spawn(async move {
            let done = tokio::task::spawn_blocking(move || disk::run_job(&storage, job))
                .await
                .unwrap_or(refused);
            let _ = events.send(Event::Disk(done));
        });
    }
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => pending().await,
    }
}

#[cfg(test)]
mod tests;
