//! The session's side of trackers: carrying the torrents' announces and scrapes to the
//! driver and back, and the session's one UDP socket.
//!
//! Each torrent owns an [`Announcer`] (see `torrent/trackers.rs`), which decides what to
//! announce and when. What it asks for goes through [`TrackerTransport`]:
//!
//! - an HTTP(S) request becomes an [`Action::HttpRequest`]; its answer comes back through
//!   [`Session::handle_http_response`](super::Session::handle_http_response);
//! - a UDP tracker's host is resolved ([`Action::Resolve`], answered through
//!   [`Session::handle_resolved`](super::Session::handle_resolved); results are cached for
//!   [`RESOLVE_CACHE_TTL`]), and the request runs on the [`UdpTracker`] for that address,
//!   one per address for the whole session. Its datagrams leave through
//!   [`Session::poll_datagram`](super::Session::poll_datagram).
//!
//! # The UDP socket
//!
//! A session has one UDP socket for everything that speaks UDP. Incoming datagrams
//! ([`Session::handle_datagram`](super::Session::handle_datagram)) are told apart by
//! [`TrackerTransport::classify`]: from the address of a UDP tracker we talk to, they go to
//! its [`UdpTracker`]; a bencoded dictionary (`d…`) is a DHT message
//! ([`DatagramKind::Dht`], for the session's DHT if it has one: see `dht.rs`); anything else
//! is dropped.
//!
//! # Removed torrents
//!
//! A removed torrent's announcer stays here ([`Stopping`]) until its `stopped` announces
//! are answered or [`SessionConfig::stop_announce_timeout`](super::SessionConfig) runs out,
//! at most [`MAX_STOPPING`] of them at once.

use std::collections::{BTreeMap, VecDeque};

use core::fmt;
use core::net::{IpAddr, SocketAddr};
use core::time::Duration;

use bytes::Bytes;

use super::{Action, TorrentId};
use crate::rng::Rng;
use crate::time::Instant;
use crate::tracker::udp::{UdpOutcome, UdpRequestId};
use crate::tracker::{
    Announcer, RequestId, RequestTarget, TrackerAction, UdpTracker, UdpTrackerConfig,
};

/// Names an [`Action::HttpRequest`]; never reused within a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HttpRequestId(pub u64);

/// Names an [`Action::Resolve`]; never reused within a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResolveId(pub u64);

impl fmt::Display for HttpRequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP request {}", self.0)
    }
}

/// A datagram for the driver to send from the session's UDP socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Where to.
    pub to: SocketAddr,
    /// The payload.
    pub data: Bytes,
}

/// One tracker of a torrent, as [`Session::trackers`](super::Session::trackers) shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackerEntry {
    /// The announce URL.
    pub url: String,
    /// Its BEP12 tier, from 0.
    pub tier: usize,
    /// Consecutive failed announces (of the swarm that failed most, for a hybrid).
    pub failures: u32,
    /// Not asked again before this, after failures.
    pub retry_at: Option<Instant>,
    /// When it last answered an announce.
    pub last_success: Option<Instant>,
    /// The last error, cleared by the next success.
    pub last_error: Option<String>,
    /// The last `warning message`.
    pub warning: Option<String>,
    /// Peers in its last answer.
    pub num_peers: usize,
    /// Seeders in the swarm, as it last said.
    pub seeders: Option<u32>,
    /// Leechers in the swarm, as it last said.
    pub leechers: Option<u32>,
}

/// How long a resolved UDP tracker address is used before the host is resolved again.
pub const RESOLVE_CACHE_TTL: Duration = Duration::from_secs(30 * 60);
/// The most host names kept resolved.
const MAX_RESOLVED: usize = 256;
/// The most requests waiting for host names to resolve.
const MAX_WAITING: usize = 4096;
/// The most idle [`UdpTracker`]s kept (with their connection ids) before idle ones go.
const MAX_IDLE_UDP_TRACKERS: usize = 256;
/// The most removed torrents waiting for their `stopped` announces.
pub const MAX_STOPPING: usize = 64;

/// Who asked for a request: a torrent's announcer, and the announcer's own id for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Origin {
    pub torrent: TorrentId,
    pub request: RequestId,
}

/// How a UDP request ended, for its announcer.
#[derive(Debug)]
pub(super) enum UdpResult {
    /// The [`UdpTracker`]'s outcome.
    Outcome(UdpOutcome),
    /// The request could not be made (the host did not resolve…).
    Failed(String),
}

/// What a datagram that arrived is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatagramKind {
    /// From a UDP tracker we talk to.
    Tracker,
    /// A bencoded dictionary: a DHT message (BEP5), for the session's DHT.
    Dht,
    /// Nothing we know.
    Unknown,
}

/// A request waiting for its tracker's host name.
#[derive(Debug)]
struct Waiting {
    origin: Origin,
    action: TrackerAction,
}

#[derive(Debug)]
struct Resolving {
    host: String,
    port: u16,
    waiting: Vec<Waiting>,
}

#[derive(Debug, Clone, Copy)]
struct Resolved {
    addr: SocketAddr,
    expires: Instant,
}

/// A removed torrent's announcer, waiting for its `stopped` announces.
#[derive(Debug)]
pub(super) struct Stopping {
    pub announcer: Announcer,
    /// `stopped` announces not answered yet.
    pub outstanding: usize,
    pub deadline: Instant,
}

/// Carries the announcers' requests; see the [module documentation](self).
#[derive(Debug)]
pub(super) struct TrackerTransport {
    config: UdpTrackerConfig,
    rng: Rng,
    next_id: u64,
    http: BTreeMap<HttpRequestId, Origin>,
    resolving: BTreeMap<ResolveId, Resolving>,
    resolved: BTreeMap<(String, u16), Resolved>,
    udp: BTreeMap<SocketAddr, UdpTracker>,
    udp_requests: BTreeMap<(SocketAddr, UdpRequestId), Origin>,
    datagrams: VecDeque<Datagram>,
    results: VecDeque<(Origin, UdpResult)>,
    pub stopping: BTreeMap<TorrentId, Stopping>,
}

impl TrackerTransport {
    pub fn new(config: UdpTrackerConfig, seed: u64) -> Self {
        Self {
            config,
            rng: Rng::new(seed),
            next_id: 0,
            http: BTreeMap::new(),
            resolving: BTreeMap::new(),
            resolved: BTreeMap::new(),
            udp: BTreeMap::new(),
            udp_requests: BTreeMap::new(),
            datagrams: VecDeque::new(),
            results: VecDeque::new(),
            stopping: BTreeMap::new(),
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A fresh id for an [`Action::Resolve`] someone else in the session makes (the DHT's
    /// bootstrap hosts), from the same counter so ids never clash.
    pub fn resolve_id(&mut self) -> ResolveId {
        ResolveId(self.next_id())
    }

    /// Carries out an announcer's request: an HTTP action, or a UDP exchange (after
    /// resolving the host if needed).
    pub fn dispatch(
        &mut self,
        now: Instant,
        torrent: TorrentId,
        action: TrackerAction,
        actions: &mut VecDeque<Action>,
    ) {
        let (request, target) = match &action {
            TrackerAction::Announce(a) => (a.id, &a.target),
            TrackerAction::Scrape(s) => (s.id, &s.target),
        };
        let origin = Origin { torrent, request };
        match target {
            RequestTarget::Http { url } => {
                let id = HttpRequestId(self.next_id());
                self.http.insert(id, origin);
                actions.push_back(Action::HttpRequest {
                    id,
                    url: url.clone(),
                });
            }
            RequestTarget::Udp { host, port } => {
                let (host, port) = (host.clone(), *port);
                if let Some(addr) = self.address_of(now, &host, port) {
                    self.start_udp(now, addr, origin, action);
                    return;
                }
                let waiting = Waiting { origin, action };
                if self
                    .resolving
                    .values()
                    .map(|r| r.waiting.len())
                    .sum::<usize>()
                    >= MAX_WAITING
                {
                    self.results.push_back((
                        origin,
                        UdpResult::Failed("too many tracker host names to resolve".into()),
                    ));
                    return;
                }
                if let Some(r) = self
                    .resolving
                    .values_mut()
                    .find(|r| r.host == host && r.port == port)
                {
                    r.waiting.push(waiting);
                    return;
                }
                let id = ResolveId(self.next_id());
                actions.push_back(Action::Resolve {
                    id,
                    host: host.clone(),
                    port,
                });
                self.resolving.insert(
                    id,
                    Resolving {
                        host,
                        port,
                        waiting: vec![waiting],
                    },
                );
            }
        }
    }

    /// The address of a UDP tracker, if it is a literal or resolved recently.
    fn address_of(&self, now: Instant, host: &str, port: u16) -> Option<SocketAddr> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Some(SocketAddr::new(ip, port));
        }
        self.resolved
            .get(&(host.to_owned(), port))
            .filter(|r| r.expires > now)
            .map(|r| r.addr)
    }

    fn start_udp(&mut self, now: Instant, addr: SocketAddr, origin: Origin, action: TrackerAction) {
        if !self.udp.contains_key(&addr) {
            self.forget_idle_udp_trackers();
            let seed = self.rng.next_u64();
            self.udp
                .insert(addr, UdpTracker::new(addr, self.config, seed));
        }
        let Some(tracker) = self.udp.get_mut(&addr) else {
            return;
        };
        let id = match action {
            TrackerAction::Announce(a) => tracker.announce(now, a.request),
            TrackerAction::Scrape(s) => match tracker.scrape(now, s.info_hashes) {
                Ok(id) => id,
                Err(e) => {
                    self.results
                        .push_back((origin, UdpResult::Failed(e.to_string())));
                    return;
                }
            },
        };
        self.udp_requests.insert((addr, id), origin);
        self.drain_udp(addr);
    }

    fn forget_idle_udp_trackers(&mut self) {
        if self.udp.len() < MAX_IDLE_UDP_TRACKERS {
            return;
        }
        self.udp.retain(|_, t| !t.is_idle());
    }

    /// Moves a [`UdpTracker`]'s datagrams and finished requests to the queues.
    fn drain_udp(&mut self, addr: SocketAddr) {
        let Some(tracker) = self.udp.get_mut(&addr) else {
            return;
        };
        while let Some(packet) = tracker.poll_transmit() {
            self.datagrams.push_back(Datagram {
                to: addr,
                data: Bytes::from(packet),
            });
        }
        while let Some(event) = tracker.poll_event() {
            if let Some(origin) = self.udp_requests.remove(&(addr, event.request)) {
                self.results
                    .push_back((origin, UdpResult::Outcome(event.outcome)));
            }
        }
    }

    /// The origin of an HTTP request, which is then forgotten.
    pub fn take_http(&mut self, id: HttpRequestId) -> Option<Origin> {
        self.http.remove(&id)
    }

    /// A host name resolved (or not): start the requests that waited for it.
    pub fn handle_resolved(
        &mut self,
        now: Instant,
        id: ResolveId,
        result: Result<Vec<SocketAddr>, String>,
    ) {
        let Some(resolving) = self.resolving.remove(&id) else {
            return;
        };
        // The socket is usually bound to an IPv4 address: prefer those.
        let addr = result.and_then(|addrs| {
            addrs
                .iter()
                .find(|a| a.is_ipv4())
                .or_else(|| addrs.first())
                .copied()
                .ok_or_else(|| format!("{} resolved to no address", resolving.host))
        });
        match addr {
            Ok(addr) => {
                let addr = SocketAddr::new(addr.ip(), resolving.port);
                self.remember_resolved(now, resolving.host, resolving.port, addr);
                for w in resolving.waiting {
                    self.start_udp(now, addr, w.origin, w.action);
                }
            }
            Err(error) => {
                for w in resolving.waiting {
                    self.results
                        .push_back((w.origin, UdpResult::Failed(error.clone())));
                }
            }
        }
    }

    fn remember_resolved(&mut self, now: Instant, host: String, port: u16, addr: SocketAddr) {
        if self.resolved.len() >= MAX_RESOLVED {
            self.resolved.retain(|_, r| r.expires > now);
        }
        if self.resolved.len() >= MAX_RESOLVED {
            let first = self.resolved.keys().next().cloned();
            if let Some(key) = first {
                self.resolved.remove(&key);
            }
        }
        self.resolved.insert(
            (host, port),
            Resolved {
                addr,
                expires: now + RESOLVE_CACHE_TTL,
            },
        );
    }

    /// What an incoming datagram is.
    pub fn classify(&self, from: SocketAddr, data: &[u8]) -> DatagramKind {
        if self.udp.contains_key(&from) {
            DatagramKind::Tracker
        } else if data.first() == Some(&b'd') {
            DatagramKind::Dht
        } else {
            DatagramKind::Unknown
        }
    }

    /// A datagram from a UDP tracker.
    pub fn handle_tracker_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if let Some(tracker) = self.udp.get_mut(&from) {
            // A packet that cannot be read fails its request (if it names one), which
            // comes out as that request's outcome; nothing more to do with the error.
            let _ = tracker.handle_datagram(now, data);
            self.drain_udp(from);
        }
    }

    /// Forgets requests whose answers no announcer wants any more.
    pub fn cancel(&mut self, torrent: TorrentId, requests: &[RequestId]) {
        self.forget_where(|o| o.torrent == torrent && requests.contains(&o.request));
    }

    /// Forgets every request of a torrent.
    pub fn forget_torrent(&mut self, torrent: TorrentId) {
        self.forget_where(|o| o.torrent == torrent);
    }

    fn forget_where(&mut self, gone: impl Fn(&Origin) -> bool) {
        self.http.retain(|_, o| !gone(o));
        for r in self.resolving.values_mut() {
            r.waiting.retain(|w| !gone(&w.origin));
        }
        let cancelled: Vec<(SocketAddr, UdpRequestId)> = self
            .udp_requests
            .iter()
            .filter(|(_, o)| gone(o))
            .map(|(k, _)| *k)
            .collect();
        for key in cancelled {
            self.udp_requests.remove(&key);
            if let Some(tracker) = self.udp.get_mut(&key.0) {
                tracker.cancel(key.1);
            }
        }
        self.results.retain(|(o, _)| !gone(o));
    }

    /// The next finished UDP request.
    pub fn poll_result(&mut self) -> Option<(Origin, UdpResult)> {
        self.results.pop_front()
    }

    /// The next datagram to send.
    pub fn poll_datagram(&mut self) -> Option<Datagram> {
        self.datagrams.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let udp = self.udp.values().filter_map(UdpTracker::poll_timeout).min();
        let stopping = self.stopping.values().map(|s| s.deadline).min();
        [udp, stopping].into_iter().flatten().min()
    }

    /// Retransmits and gives up UDP requests; forgets removed torrents whose time to stop
    /// ran out (their requests cancelled).
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<SocketAddr> = self
            .udp
            .iter()
            .filter(|(_, t)| t.poll_timeout().is_some_and(|at| at <= now))
            .map(|(addr, _)| *addr)
            .collect();
        for addr in due {
            if let Some(tracker) = self.udp.get_mut(&addr) {
                tracker.handle_timeout(now);
            }
            self.drain_udp(addr);
        }
        let expired: Vec<TorrentId> = self
            .stopping
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for torrent in expired {
            self.stopping.remove(&torrent);
            self.forget_torrent(torrent);
        }
    }

    /// Keeps a removed torrent's announcer until its `stopped` announces are answered.
    pub fn keep_stopping(&mut self, torrent: TorrentId, stopping: Stopping) {
        if stopping.outstanding == 0 || self.stopping.len() >= MAX_STOPPING {
            self.forget_torrent(torrent);
            return;
        }
        self.stopping.insert(torrent, stopping);
    }

    /// Forgets a removed torrent's announcer once its `stopped` announces are answered.
    pub fn settle_stopping(&mut self, torrent: TorrentId) {
        if self
            .stopping
            .get(&torrent)
            .is_some_and(|s| s.outstanding == 0)
        {
            self.stopping.remove(&torrent);
            self.forget_torrent(torrent);
        }
    }

    /// Whether any tracker request is outstanding (HTTP, resolving or UDP).
    pub fn is_idle(&self) -> bool {
        self.http.is_empty() && self.resolving.is_empty() && self.udp_requests.is_empty()
    }
}
