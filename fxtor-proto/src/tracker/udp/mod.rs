//! UDP trackers (BEP15): the packet codec ([`UdpRequest`], [`UdpResponse`]) and
//! [`UdpTracker`], the state machine for one tracker endpoint.
//!
//! # The exchange
//!
//! Before it announces or scrapes, a client obtains a connection id (connect, action 0) and
//! may use it for a minute ([`UdpTrackerConfig::connection_id_lifetime`]). Every request
//! carries a random transaction id, which the answer echoes; an answer whose transaction id
//! matches nothing outstanding is ignored. A request that gets no answer is sent again after
//! 15 · 2ⁿ seconds, n counting the attempts from 0 up to 8; when the last wait (3840 s) runs
//! out, the request fails with [`UdpTrackerError::TimedOut`]. If the connection id expired in
//! the meantime, the retransmission is a new connect instead, and n keeps counting.
//!
//! # Driving it
//!
//! [`UdpTracker`] serves every torrent that announces to one resolved `host:port`. The
//! driver resolves the tracker's host, keeps one `UdpTracker` per address, and:
//!
//! - calls [`announce`](UdpTracker::announce) or [`scrape`](UdpTracker::scrape);
//! - sends every datagram [`poll_transmit`](UdpTracker::poll_transmit) gives to the tracker;
//! - feeds every datagram from the tracker to [`handle_datagram`](UdpTracker::handle_datagram);
//! - calls [`handle_timeout`](UdpTracker::handle_timeout) at
//!   [`poll_timeout`](UdpTracker::poll_timeout);
//! - drains [`poll_event`](UdpTracker::poll_event) for the outcomes.

mod packet;

use core::net::SocketAddr;
use core::time::Duration;
use std::collections::VecDeque;

use thiserror::Error;

pub use packet::{
    AddressFamily, UdpPacketError, UdpRequest, UdpResponse, MAX_SCRAPE_HASHES, PROTOCOL_ID,
};

use super::request::AnnounceRequest;
use super::response::{AnnounceResponse, PeerInfo, ScrapeStats};
use crate::rng::Rng;
use crate::time::Instant;
use crate::InfoHashV1;

/// Timing of a [`UdpTracker`]; the defaults are BEP15's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpTrackerConfig {
    /// How long to wait for the first answer (15 s); every retransmission doubles it.
    pub initial_timeout: Duration,
    /// How many times the wait doubles (8): a request is sent at most this many times plus
    /// one, and given up when the last wait runs out.
    pub max_retransmissions: u32,
    /// How long a connection id may be used after it arrived (60 s).
    pub connection_id_lifetime: Duration,
}

impl Default for UdpTrackerConfig {
    fn default() -> Self {
        Self {
            initial_timeout: Duration::from_secs(15),
            max_retransmissions: 8,
            connection_id_lifetime: Duration::from_secs(60),
        }
    }
}

impl UdpTrackerConfig {
    /// The wait after attempt `n` (counted from 0): `initial_timeout · 2ⁿ`.
    pub fn timeout(&self, attempt: u32) -> Duration {
        self.initial_timeout
            .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
    }
}

/// Names a request made with [`UdpTracker::announce`] or [`UdpTracker::scrape`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UdpRequestId(pub u64);

/// How a request ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UdpOutcome {
    /// An announce's answer (`interval`, `complete` and `incomplete` are always set).
    Announced(AnnounceResponse),
    /// A scrape's answer: figures in the order of the requested info-hashes (a tracker may
    /// send fewer than asked).
    Scraped(Vec<ScrapeStats>),
    /// The request failed.
    Failed(UdpTrackerError),
}

/// The end of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpEvent {
    /// Which request.
    pub request: UdpRequestId,
    /// How it ended.
    pub outcome: UdpOutcome,
}

/// Why a UDP tracker request failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum UdpTrackerError {
    /// The tracker answered with an error packet.
    #[error("tracker error: {0}")]
    Tracker(String),
    /// No answer came in time.
    #[error("UDP tracker did not answer after {attempts} attempts")]
    TimedOut {
        /// How many times the packet (or the connect before it) was sent.
        attempts: u32,
    },
    /// The answer could not be read.
    #[error("malformed answer: {0}")]
    Malformed(#[from] UdpPacketError),
    /// The answer was for another kind of request.
    #[error("UDP tracker answered a {expected} with another action")]
    UnexpectedAction {
        /// The kind of request that was made.
        expected: &'static str,
    },
}

/// A scrape asked for more info-hashes than one packet may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("a UDP scrape carries at most {MAX_SCRAPE_HASHES} info-hashes, not {0}")]
pub struct TooManyHashes(pub usize);

#[derive(Clone, Debug)]
enum Connection {
    None,
    Connecting {
        transaction_id: u32,
        attempt: u32,
        deadline: Instant,
    },
    Connected {
        id: u64,
        expires: Instant,
    },
}

#[derive(Clone, Debug)]
enum RequestKind {
    Announce(AnnounceRequest),
    Scrape(Vec<InfoHashV1>),
}

impl RequestKind {
    fn name(&self) -> &'static str {
        match self {
            Self::Announce(_) => "announce",
            Self::Scrape(_) => "scrape",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum RequestState {
    WaitingForConnection,
    Sent {
        transaction_id: u32,
        deadline: Instant,
    },
}

#[derive(Clone, Debug)]
struct Pending {
    id: UdpRequestId,
    kind: RequestKind,
    /// n of BEP15: how many times this request has timed out.
    attempt: u32,
    state: RequestState,
}

/// One UDP tracker endpoint's state machine: connection id, outstanding requests,
/// retransmissions.
///
/// ```
/// use fxtor_proto::peer_id::PeerId;
/// use fxtor_proto::time::Instant;
/// use fxtor_proto::tracker::udp::{UdpOutcome, UdpRequest, UdpResponse, UdpTracker, AddressFamily};
/// use fxtor_proto::tracker::AnnounceRequest;
/// use fxtor_proto::InfoHashV1;
///
/// let mut tracker = UdpTracker::new("10.0.0.1:6969".parse().unwrap(), Default::default(), 7);
/// let now = Instant::ZERO;
/// let request = AnnounceRequest::new(InfoHashV1([1; 20]), PeerId([2; 20]), 6881);
/// let id = tracker.announce(now, request);
///
/// // First a connect; the tracker answers it with a connection id.
/// let connect = UdpRequest::parse(&tracker.poll_transmit().unwrap()).unwrap();
/// let answer = UdpResponse::Connect { transaction_id: connect.transaction_id(), connection_id: 42 };
/// tracker.handle_datagram(now, &answer.encode(AddressFamily::V4)).unwrap();
///
/// // Then the announce, with that connection id.
/// let announce = UdpRequest::parse(&tracker.poll_transmit().unwrap()).unwrap();
/// assert!(matches!(announce, UdpRequest::Announce { connection_id: 42, .. }));
/// let answer = UdpResponse::Announce {
///     transaction_id: announce.transaction_id(),
///     interval: 1800, leechers: 1, seeders: 2,
///     peers: vec!["10.0.0.9:6881".parse().unwrap()],
/// };
/// tracker.handle_datagram(now, &answer.encode(AddressFamily::V4)).unwrap();
/// let event = tracker.poll_event().unwrap();
/// assert_eq!(event.request, id);
/// let UdpOutcome::Announced(response) = event.outcome else { panic!() };
/// assert_eq!(response.peers.len(), 1);
/// ```
#[derive(Clone, Debug)]
pub struct UdpTracker {
    config: UdpTrackerConfig,
    remote: SocketAddr,
    family: AddressFamily,
    rng: Rng,
    connection: Connection,
    requests: Vec<Pending>,
    next_id: u64,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<UdpEvent>,
}

impl UdpTracker {
    /// A tracker at `remote` (its address family decides the form of announce answers), with
    /// transaction ids drawn from a generator seeded with `seed`.
    pub fn new(remote: SocketAddr, config: UdpTrackerConfig, seed: u64) -> Self {
        Self {
            config,
            remote,
            family: AddressFamily::of(remote.ip()),
            rng: Rng::new(seed),
            connection: Connection::None,
            requests: Vec::new(),
            next_id: 0,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The tracker's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Starts an announce. `request.tracker_id` is not sent (BEP15 has no field for it).
    pub fn announce(&mut self, now: Instant, request: AnnounceRequest) -> UdpRequestId {
        self.start(now, RequestKind::Announce(request))
    }

    /// Starts a scrape of up to [`MAX_SCRAPE_HASHES`] swarms.
    pub fn scrape(
        &mut self,
        now: Instant,
        info_hashes: Vec<InfoHashV1>,
    ) -> Result<UdpRequestId, TooManyHashes> {
        if info_hashes.len() > MAX_SCRAPE_HASHES {
            return Err(TooManyHashes(info_hashes.len()));
        }
        Ok(self.start(now, RequestKind::Scrape(info_hashes)))
    }

    /// Forgets a request: no more retransmissions and no event for it. Returns whether it
    /// was outstanding.
    pub fn cancel(&mut self, request: UdpRequestId) -> bool {
        let before = self.requests.len();
        self.requests.retain(|p| p.id != request);
        if self
            .requests
            .iter()
            .all(|p| !matches!(p.state, RequestState::WaitingForConnection))
            && matches!(self.connection, Connection::Connecting { .. })
        {
            self.connection = Connection::None;
        }
        self.requests.len() != before
    }

    /// Whether no request is outstanding.
    pub fn is_idle(&self) -> bool {
        self.requests.is_empty()
    }

    /// Handles a datagram from the tracker.
    ///
    /// An answer whose transaction id matches no outstanding request is ignored. A packet
    /// that cannot be read is returned as an error (for the driver's logs); if its
    /// transaction id names an outstanding request, that request fails with
    /// [`UdpTrackerError::Malformed`] as well.
    pub fn handle_datagram(&mut self, now: Instant, packet: &[u8]) -> Result<(), UdpPacketError> {
        let response = match UdpResponse::parse(packet, self.family) {
            Ok(response) => response,
            Err(err) => {
                if let Some(tid) = packet.get(4..8).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
                    self.fail_transaction(u32::from_be_bytes(tid), &err);
                }
                self.drive(now);
                return Err(err);
            }
        };
        let tid = response.transaction_id();
        if matches!(self.connection, Connection::Connecting { transaction_id, .. } if transaction_id == tid)
        {
            self.on_connect_response(now, response);
        } else if let Some(index) = self.requests.iter().position(
            |p| matches!(p.state, RequestState::Sent { transaction_id, .. } if transaction_id == tid),
        ) {
            let pending = self.requests.remove(index);
            let outcome = Self::outcome(&pending.kind, response);
            self.events.push_back(UdpEvent {
                request: pending.id,
                outcome,
            });
        }
        self.drive(now);
        Ok(())
    }

    /// Retransmits and gives up what is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Connection::Connecting {
            transaction_id,
            attempt,
            deadline,
        } = self.connection
        {
            if deadline <= now {
                if attempt >= self.config.max_retransmissions {
                    self.connection = Connection::None;
                    self.fail_waiting(&UdpTrackerError::TimedOut {
                        attempts: attempt.saturating_add(1),
                    });
                } else {
                    self.send_connect(now, transaction_id, attempt + 1);
                }
            }
        }
        let connection = self.valid_connection(now);
        let mut given_up = Vec::new();
        for pending in &mut self.requests {
            let RequestState::Sent {
                transaction_id,
                deadline,
            } = pending.state
            else {
                continue;
            };
            if deadline > now {
                continue;
            }
            if pending.attempt >= self.config.max_retransmissions {
                given_up.push(pending.id);
                continue;
            }
            pending.attempt += 1;
            match connection {
                Some(connection_id) => {
                    pending.state = RequestState::Sent {
                        transaction_id,
                        deadline: now + self.config.timeout(pending.attempt),
                    };
                    let packet = Self::request_packet(pending, connection_id, transaction_id);
                    self.transmits.push_back(packet);
                }
                None => pending.state = RequestState::WaitingForConnection,
            }
        }
        let attempts = self.config.max_retransmissions.saturating_add(1);
        for id in given_up {
            self.requests.retain(|p| p.id != id);
            self.events.push_back(UdpEvent {
                request: id,
                outcome: UdpOutcome::Failed(UdpTrackerError::TimedOut { attempts }),
            });
        }
        self.drive(now);
    }

    /// The next datagram to send to the tracker.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let connect = match self.connection {
            Connection::Connecting { deadline, .. } => Some(deadline),
            _ => None,
        };
        self.requests
            .iter()
            .filter_map(|p| match p.state {
                RequestState::Sent { deadline, .. } => Some(deadline),
                RequestState::WaitingForConnection => None,
            })
            .chain(connect)
            .min()
    }

    /// The next finished request.
    pub fn poll_event(&mut self) -> Option<UdpEvent> {
        self.events.pop_front()
    }

    fn start(&mut self, now: Instant, kind: RequestKind) -> UdpRequestId {
        let id = UdpRequestId(self.next_id);
        self.next_id += 1;
        self.requests.push(Pending {
            id,
            kind,
            attempt: 0,
            state: RequestState::WaitingForConnection,
        });
        self.drive(now);
        id
    }

    /// The connection id, if there is one that may still be used at `now`.
    fn valid_connection(&mut self, now: Instant) -> Option<u64> {
        match self.connection {
            Connection::Connected { id, expires } if now < expires => Some(id),
            Connection::Connected { .. } => {
                self.connection = Connection::None;
                None
            }
            _ => None,
        }
    }

    /// Sends what waits for a connection, or connects for it.
    fn drive(&mut self, now: Instant) {
        let waiting = self
            .requests
            .iter()
            .filter(|p| matches!(p.state, RequestState::WaitingForConnection))
            .map(|p| p.attempt)
            .min();
        let Some(attempt) = waiting else {
            return;
        };
        match self.valid_connection(now) {
            Some(connection_id) => {
                for i in 0..self.requests.len() {
                    if !matches!(
                        self.requests.get(i).map(|p| p.state),
                        Some(RequestState::WaitingForConnection)
                    ) {
                        continue;
                    }
                    let transaction_id = self.fresh_transaction_id();
                    let Some(pending) = self.requests.get_mut(i) else {
                        break;
                    };
                    pending.state = RequestState::Sent {
                        transaction_id,
                        deadline: now + self.config.timeout(pending.attempt),
                    };
                    let packet = Self::request_packet(pending, connection_id, transaction_id);
                    self.transmits.push_back(packet);
                }
            }
            None => {
                if matches!(self.connection, Connection::None) {
                    let transaction_id = self.fresh_transaction_id();
                    self.send_connect(now, transaction_id, attempt);
                }
            }
        }
    }

    fn send_connect(&mut self, now: Instant, transaction_id: u32, attempt: u32) {
        self.connection = Connection::Connecting {
            transaction_id,
            attempt,
            deadline: now + self.config.timeout(attempt),
        };
        self.transmits
            .push_back(UdpRequest::Connect { transaction_id }.encode());
    }

    fn request_packet(pending: &Pending, connection_id: u64, transaction_id: u32) -> Vec<u8> {
        let request = match &pending.kind {
            RequestKind::Announce(request) => UdpRequest::Announce {
                connection_id,
                transaction_id,
                request: request.clone(),
            },
            RequestKind::Scrape(info_hashes) => UdpRequest::Scrape {
                connection_id,
                transaction_id,
                info_hashes: info_hashes.clone(),
            },
        };
        request.encode()
    }

    /// A random transaction id that no outstanding exchange uses.
    fn fresh_transaction_id(&mut self) -> u32 {
        loop {
            let candidate = self.rng.next_u32();
            let connect_uses = matches!(
                self.connection,
                Connection::Connecting { transaction_id, .. } if transaction_id == candidate
            );
            let request_uses = self.requests.iter().any(|p| {
                matches!(p.state, RequestState::Sent { transaction_id, .. } if transaction_id == candidate)
            });
            if !connect_uses && !request_uses {
                return candidate;
            }
        }
    }

    fn on_connect_response(&mut self, now: Instant, response: UdpResponse) {
        match response {
            UdpResponse::Connect { connection_id, .. } => {
                // The attempts spent connecting count for the requests that waited.
                if let Connection::Connecting { attempt, .. } = self.connection {
                    for pending in &mut self.requests {
                        if matches!(pending.state, RequestState::WaitingForConnection) {
                            pending.attempt = pending.attempt.max(attempt);
                        }
                    }
                }
                self.connection = Connection::Connected {
                    id: connection_id,
                    expires: now + self.config.connection_id_lifetime,
                };
            }
            UdpResponse::Error { message, .. } => {
                self.connection = Connection::None;
                self.fail_waiting(&UdpTrackerError::Tracker(message));
            }
            _ => {
                self.connection = Connection::None;
                self.fail_waiting(&UdpTrackerError::UnexpectedAction {
                    expected: "connect",
                });
            }
        }
    }

    fn outcome(kind: &RequestKind, response: UdpResponse) -> UdpOutcome {
        match (kind, response) {
            (
                RequestKind::Announce(_),
                UdpResponse::Announce {
                    interval,
                    leechers,
                    seeders,
                    peers,
                    ..
                },
            ) => UdpOutcome::Announced(AnnounceResponse {
                interval: Some(Duration::from_secs(u64::from(interval))),
                complete: Some(seeders),
                incomplete: Some(leechers),
                peers: peers.into_iter().map(PeerInfo::from_addr).collect(),
                ..AnnounceResponse::default()
            }),
            (RequestKind::Scrape(_), UdpResponse::Scrape { stats, .. }) => {
                UdpOutcome::Scraped(stats)
            }
            (_, UdpResponse::Error { message, .. }) => {
                UdpOutcome::Failed(UdpTrackerError::Tracker(message))
            }
            (kind, _) => UdpOutcome::Failed(UdpTrackerError::UnexpectedAction {
                expected: kind.name(),
            }),
        }
    }

    /// Fails whatever a malformed packet with transaction id `tid` was the answer to.
    fn fail_transaction(&mut self, tid: u32, err: &UdpPacketError) {
        if matches!(self.connection, Connection::Connecting { transaction_id, .. } if transaction_id == tid)
        {
            self.connection = Connection::None;
            self.fail_waiting(&UdpTrackerError::Malformed(err.clone()));
        } else if let Some(index) = self.requests.iter().position(
            |p| matches!(p.state, RequestState::Sent { transaction_id, .. } if transaction_id == tid),
        ) {
            let pending = self.requests.remove(index);
            self.events.push_back(UdpEvent {
                request: pending.id,
                outcome: UdpOutcome::Failed(UdpTrackerError::Malformed(err.clone())),
            });
        }
    }

    /// Fails every request that waits for a connection.
    fn fail_waiting(&mut self, error: &UdpTrackerError) {
        let events = &mut self.events;
        self.requests.retain(|p| {
            if matches!(p.state, RequestState::Sent { .. }) {
                return true;
            }
            events.push_back(UdpEvent {
                request: p.id,
                outcome: UdpOutcome::Failed(error.clone()),
            });
            false
        });
    }
}

#[cfg(test)]
mod tests;
