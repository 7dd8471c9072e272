//! One torrent's trackers: BEP12 tiers and the announce schedule.
//!
//! # Order (BEP12)
//!
//! Trackers come in tiers. Each tier is shuffled once, when it is added, with the
//! announcer's seeded generator. An announce goes to the first tracker in tier order that is
//! not [backing off](#back-off); if it fails, the next one is tried at once, so every tracker
//! of a tier is tried before the next tier. A tracker that answers moves to the front of its
//! tier. Every announce starts again from the first tier.
//!
//! # Schedule
//!
//! - [`start`](Announcer::start) announces `started` to the first tracker that answers.
//!   A tracker that has not yet answered a `started` gets one before anything else.
//! - After a successful announce the next one is due after the tracker's `interval` (or
//!   [`AnnouncerConfig::default_interval`]), never sooner than its `min interval` nor
//!   [`AnnouncerConfig::min_announce_interval`].
//! - [`completed`](Announcer::completed) announces `completed` at once, once per announcer.
//! - [`force_reannounce`](Announcer::force_reannounce) announces as soon as the last
//!   tracker's `min interval` allows.
//! - [`stop`](Announcer::stop) (pause, removal) sends `stopped` to every tracker that has
//!   had a `started` (or has one in flight), once, without retries, and announces no more
//!   until the next `start`.
//!
//! # Back-off
//!
//! A tracker that fails (an error from the driver, a bad HTTP status, a `failure reason`, a
//! malformed answer) is not asked again for [`AnnouncerConfig::retry_base`] (60 s), doubling
//! with every consecutive failure up to [`AnnouncerConfig::retry_max`] (1 h). Its first
//! success resets that. When every tracker is backing off, the announce waits for the first
//! to come back.
//!
//! # Hybrid torrents
//!
//! A torrent with both a v1 and a v2 info-hash is two swarms for a tracker: each announce is
//! made twice, with the v1 hash and with the truncated v2 hash, and each swarm keeps its own
//! schedule, back-off and `tracker id` per tracker (the tier order is shared).
//!
//! # Driving it
//!
//! [`poll_action`](Announcer::poll_action) hands out [`TrackerAction`]s: HTTP requests to
//! make with the driver's client (at most [`MAX_RESPONSE_SIZE`](super::MAX_RESPONSE_SIZE)
//! of body), or UDP announces and scrapes to run on the [`UdpTracker`](super::UdpTracker)
//! for the resolved host. Each action carries a [`RequestId`]; its outcome comes back through
//! [`handle_http_response`](Announcer::handle_http_response) or
//! [`handle_udp_outcome`](Announcer::handle_udp_outcome). The driver must report every
//! request it was given, failures included, and should bound HTTP requests with a timeout
//! (a request never reported holds up that swarm's announces). Before it drains actions,
//! the owner keeps [`set_stats`](Announcer::set_stats) current, since the requests carry the
//! figures of the moment they are made. [`poll_event`](Announcer::poll_event) gives what the
//! session needs to know: peers, counts, warnings, errors, scrape figures.

use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};

use thiserror::Error;

use super::request::{AnnounceEvent, AnnounceRequest};
use super::response::{
    parse_announce_response, parse_scrape_response, AnnounceResponse, ResponseError, ScrapeStats,
};
use super::udp::{UdpOutcome, UdpTrackerError};
use super::url::{announce_url, scrape_request_url, scrape_url, TrackerEndpoint, TrackerUrlError};
use crate::peer_id::PeerId;
use crate::rng::Rng;
use crate::time::Instant;
use crate::{InfoHashV1, InfoHashes};

/// Names a tracker of an [`Announcer`]: the order in which it was added, from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackerId(pub u32);

/// Names one request an [`Announcer`] asked the driver to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// The announcer's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnouncerConfig {
    /// `numwant` for announces other than `stopped` (200; `None` leaves it to the tracker).
    pub num_want: Option<u32>,
    /// The re-announce interval when a tracker gives none (30 min).
    pub default_interval: Duration,
    /// The shortest re-announce interval we accept from a tracker (5 min).
    pub min_announce_interval: Duration,
    /// The wait after a tracker's first failure (60 s); it doubles with each further one.
    pub retry_base: Duration,
    /// The longest wait after failures (1 h).
    pub retry_max: Duration,
}

impl Default for AnnouncerConfig {
    fn default() -> Self {
        Self {
            num_want: Some(200),
            default_interval: Duration::from_secs(30 * 60),
            min_announce_interval: Duration::from_secs(5 * 60),
            retry_base: Duration::from_secs(60),
            retry_max: Duration::from_secs(60 * 60),
        }
    }
}

impl AnnouncerConfig {
    /// The wait after `failures` consecutive failures (at least one).
    pub fn retry_delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.retry_base
            .saturating_mul(1u32 << doublings)
            .min(self.retry_max)
    }
}

/// What we have transferred, as the announces report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TransferStats {
    /// Payload bytes sent since the torrent started.
    pub uploaded: u64,
    /// Payload bytes received since the torrent started.
    pub downloaded: u64,
    /// Bytes still missing.
    pub left: u64,
}

/// Where the driver sends a request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RequestTarget {
    /// An HTTP GET of this complete URL (query string included).
    Http {
        /// The URL to fetch.
        url: String,
    },
    /// A UDP tracker at `host:port`: resolve it, and run the request on the
    /// [`UdpTracker`](super::UdpTracker) for that address.
    Udp {
        /// Host name or address literal.
        host: String,
        /// UDP port.
        port: u16,
    },
}

/// An announce for the driver to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceAction {
    /// Names the request when its outcome is reported.
    pub id: RequestId,
    /// The tracker.
    pub tracker: TrackerId,
    /// Where to send it.
    pub target: RequestTarget,
    /// What it says (for HTTP, already in the target URL).
    pub request: AnnounceRequest,
}

/// A scrape for the driver to make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeAction {
    /// Names the request when its outcome is reported.
    pub id: RequestId,
    /// The tracker.
    pub tracker: TrackerId,
    /// Where to send it.
    pub target: RequestTarget,
    /// The swarms to scrape (for HTTP, already in the target URL).
    pub info_hashes: Vec<InfoHashV1>,
}

/// Work for the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackerAction {
    /// Announce to a tracker.
    Announce(AnnounceAction),
    /// Scrape a tracker.
    Scrape(ScrapeAction),
}

/// An HTTP response, as the driver's client got it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpResponse<'a> {
    /// The status code.
    pub status: u16,
    /// The body (at most [`MAX_RESPONSE_SIZE`](super::MAX_RESPONSE_SIZE) bytes).
    pub body: &'a [u8],
}

/// Why a tracker request failed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TrackerError {
    /// The driver could not make the request (name resolution, connection, TLS, timeout,
    /// an oversized body…).
    #[error("tracker request failed: {0}")]
    Transport(String),
    /// The HTTP status was not 200, and the body did not say why.
    #[error("tracker answered HTTP {0}")]
    HttpStatus(u16),
    /// The HTTP response was refused, or the tracker said `failure reason`.
    #[error(transparent)]
    Response(#[from] ResponseError),
    /// The UDP exchange failed.
    #[error(transparent)]
    Udp(#[from] UdpTrackerError),
}

impl TrackerError {
    /// The tracker's own explanation, when it gave one.
    pub fn tracker_message(&self) -> Option<&str> {
        match self {
            Self::Response(ResponseError::Failure(reason)) => Some(reason),
            Self::Udp(UdpTrackerError::Tracker(message)) => Some(message),
            _ => None,
        }
    }
}

/// What the session learns from the trackers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrackerEvent {
    /// An announce succeeded: peers, swarm counts, perhaps a warning or our external address.
    Announced {
        /// The tracker.
        tracker: TrackerId,
        /// The swarm announced to.
        info_hash: InfoHashV1,
        /// The announce's event.
        event: AnnounceEvent,
        /// What the tracker said.
        response: AnnounceResponse,
    },
    /// An announce failed.
    AnnounceFailed {
        /// The tracker.
        tracker: TrackerId,
        /// The swarm announced to.
        info_hash: InfoHashV1,
        /// The announce's event.
        event: AnnounceEvent,
        /// What went wrong.
        error: TrackerError,
        /// Consecutive failures of this tracker for this swarm (0 for `stopped`, which is
        /// not retried).
        failures: u32,
        /// When the tracker will be asked again, if it will.
        retry_at: Option<Instant>,
    },
    /// A scrape succeeded.
    Scraped {
        /// The tracker.
        tracker: TrackerId,
        /// Figures per swarm.
        files: Vec<(InfoHashV1, ScrapeStats)>,
    },
    /// A scrape failed.
    ScrapeFailed {
        /// The tracker.
        tracker: TrackerId,
        /// What went wrong.
        error: TrackerError,
    },
}

/// A tracker's standing with one swarm.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TrackerStatus {
    /// Consecutive failures.
    pub failures: u32,
    /// Not asked again before this, after failures.
    pub retry_at: Option<Instant>,
    /// Whether a `started` announce succeeded since the last start.
    pub started: bool,
    /// The `tracker id` it gave us.
    pub tracker_id: Option<Vec<u8>>,
    /// When it last answered an announce.
    pub last_success: Option<Instant>,
}

#[derive(Clone, Debug)]
struct Tracker {
    url: String,
    endpoint: TrackerEndpoint,
    /// The BEP48 scrape URL of an HTTP tracker.
    scrape_url: Option<String>,
}

#[derive(Clone, Copy, Debug)]
struct InFlight {
    request: RequestId,
    tracker: TrackerId,
}

/// One swarm (one 20-byte identifier) and its trackers.
#[derive(Clone, Debug)]
struct Swarm {
    info_hash: InfoHashV1,
    /// Per tracker, indexed by [`TrackerId`].
    trackers: Vec<TrackerStatus>,
    /// When the next announce is due; `None` while stopped.
    due: Option<Instant>,
    /// No announce (but an event) before this: the last tracker's `min interval`.
    not_before: Instant,
    in_flight: Option<InFlight>,
    completed_pending: bool,
}

#[derive(Clone, Debug)]
enum Pending {
    Announce {
        swarm: usize,
        tracker: TrackerId,
        event: AnnounceEvent,
    },
    Scrape {
        tracker: TrackerId,
        info_hashes: Vec<InfoHashV1>,
    },
}

/// One torrent's trackers: which to announce to and when.
///
/// ```
/// use fxtor_proto::peer_id::PeerId;
/// use fxtor_proto::time::Instant;
/// use fxtor_proto::tracker::{
///     AnnounceEvent, Announcer, AnnouncerConfig, HttpResponse, TrackerAction, TrackerEvent,
/// };
/// use fxtor_proto::{InfoHashV1, InfoHashes};
///
/// let mut announcer = Announcer::new(
///     AnnouncerConfig::default(),
///     InfoHashes::v1(InfoHashV1([1; 20])),
///     PeerId([b'p'; 20]),
///     6881,
///     42,
/// );
/// announcer.add_tier(&["http://tracker.example/announce"]);
/// announcer.start(Instant::ZERO);
///
/// let Some(TrackerAction::Announce(action)) = announcer.poll_action() else { panic!() };
/// assert_eq!(action.request.event, AnnounceEvent::Started);
///
/// // The driver fetches the action's URL and reports the answer.
/// let body = b"d8:intervali1800e5:peers6:\x0a\x00\x00\x01\x1a\xe1e";
/// announcer.handle_http_response(Instant::from_secs(1), action.id, Ok(HttpResponse { status: 200, body }));
/// let Some(TrackerEvent::Announced { response, .. }) = announcer.poll_event() else { panic!() };
/// assert_eq!(response.peers.len(), 1);
/// assert_eq!(announcer.poll_timeout(), Some(Instant::from_secs(1801)));
/// ```
#[derive(Clone, Debug)]
pub struct Announcer {
    config: AnnouncerConfig,
    peer_id: PeerId,
    port: u16,
    key: u32,
    rng: Rng,
    trackers: Vec<Tracker>,
    tiers: Vec<Vec<TrackerId>>,
    swarms: Vec<Swarm>,
    running: bool,
    completed_announced: bool,
    stats: TransferStats,
    next_request: u64,
    pending: BTreeMap<RequestId, Pending>,
    actions: VecDeque<TrackerAction>,
    events: VecDeque<TrackerEvent>,
}

impl Announcer {
    /// An announcer for a torrent, with no trackers yet; `seed` drives the announce key and
    /// the tier shuffles.
    pub fn new(
        config: AnnouncerConfig,
        info_hashes: InfoHashes,
        peer_id: PeerId,
        port: u16,
        seed: u64,
    ) -> Self {
        let mut rng = Rng::new(seed);
        let key = rng.next_u32();
        let swarms = info_hashes
            .identifiers()
            .map(|info_hash| Swarm {
                info_hash,
                trackers: Vec::new(),
                due: None,
                not_before: Instant::ZERO,
                in_flight: None,
                completed_pending: false,
            })
            .collect();
        Self {
            config,
            peer_id,
            port,
            key,
            rng,
            trackers: Vec::new(),
            tiers: Vec::new(),
            swarms,
            running: false,
            completed_announced: false,
            stats: TransferStats::default(),
            next_request: 0,
            pending: BTreeMap::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Adds a tier after the existing ones, in a shuffled order. Returns, for each URL in
    /// the order given, its tracker or why it was refused. A URL already known keeps its
    /// place and its id.
    pub fn add_tier<S: AsRef<str>>(
        &mut self,
        urls: &[S],
    ) -> Vec<Result<TrackerId, TrackerUrlError>> {
        let mut added = Vec::new();
        let results = urls
            .iter()
            .map(|url| {
                let (id, new) = self.insert_tracker(url.as_ref())?;
                if new {
                    added.push(id);
                }
                Ok(id)
            })
            .collect();
        if !added.is_empty() {
            self.rng.shuffle(&mut added);
            self.tiers.push(added);
        }
        results
    }

    /// Adds a tracker at the end of tier `tier` (a new last tier if there is no such tier).
    /// A URL already known keeps its place and its id.
    pub fn add_tracker(&mut self, url: &str, tier: usize) -> Result<TrackerId, TrackerUrlError> {
        let (id, new) = self.insert_tracker(url)?;
        if new {
            match self.tiers.get_mut(tier) {
                Some(t) => t.push(id),
                None => self.tiers.push(vec![id]),
            }
        }
        Ok(id)
    }

    /// The tracker's URL.
    pub fn tracker_url(&self, tracker: TrackerId) -> Option<&str> {
        self.tracker(tracker).map(|t| t.url.as_str())
    }

    /// The tiers, each in its current order.
    pub fn tiers(&self) -> &[Vec<TrackerId>] {
        &self.tiers
    }

    /// A tracker's standing with the swarm `info_hash`.
    pub fn tracker_status(
        &self,
        tracker: TrackerId,
        info_hash: InfoHashV1,
    ) -> Option<&TrackerStatus> {
        self.swarms
            .iter()
            .find(|s| s.info_hash == info_hash)?
            .trackers
            .get(index(tracker))
    }

    /// The `key` sent with every announce.
    pub fn key(&self) -> u32 {
        self.key
    }

    /// Whether the announcer is started.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Updates the figures the next announces carry.
    pub fn set_stats(&mut self, stats: TransferStats) {
        self.stats = stats;
    }

    /// Starts (or resumes) announcing: `started` to the first tracker that answers.
    pub fn start(&mut self, now: Instant) {
        if self.running {
            return;
        }
        self.running = true;
        for swarm in &mut self.swarms {
            swarm.due = Some(now);
        }
        self.advance(now);
    }

    /// The download finished: announce `completed` now. Only the first call while running
    /// has an effect; a torrent that starts out complete never sends `completed`.
    pub fn completed(&mut self, now: Instant) {
        if self.completed_announced {
            return;
        }
        self.completed_announced = true;
        if !self.running {
            return;
        }
        for swarm in &mut self.swarms {
            swarm.completed_pending = true;
            if swarm.in_flight.is_none() {
                swarm.due = Some(now);
            }
        }
        self.advance(now);
    }

    /// Announces as soon as the trackers' `min interval` allows.
    pub fn force_reannounce(&mut self, now: Instant) {
        if !self.running {
            return;
        }
        for swarm in &mut self.swarms {
            if swarm.in_flight.is_none() {
                swarm.due = Some(now.max(swarm.not_before));
            }
        }
        self.advance(now);
    }

    /// Stops announcing (pause or removal): `stopped` to every tracker that had a `started`
    /// or has an announce in flight. Returns the announces that were in flight: their answers
    /// will be ignored, so the driver may cancel them (e.g. with
    /// [`UdpTracker::cancel`](super::UdpTracker::cancel)).
    pub fn stop(&mut self, now: Instant) -> Vec<RequestId> {
        // Stopping sets no timer; `now` keeps every input's shape alike.
        let _ = now;
        let mut abandoned = Vec::new();
        if !self.running {
            return abandoned;
        }
        self.running = false;
        for s in 0..self.swarms.len() {
            let Some(swarm) = self.swarms.get_mut(s) else {
                break;
            };
            swarm.due = None;
            swarm.completed_pending = false;
            let in_flight = swarm.in_flight.take();
            let told: Vec<TrackerId> = swarm
                .trackers
                .iter_mut()
                .enumerate()
                .filter_map(|(i, status)| {
                    let was_started = core::mem::take(&mut status.started);
                    let in_flight_here = in_flight.is_some_and(|f| index(f.tracker) == i);
                    (was_started || in_flight_here).then(|| tracker_id(i))
                })
                .collect();
            if let Some(flight) = in_flight {
                self.pending.remove(&flight.request);
                abandoned.push(flight.request);
            }
            for tracker in told {
                self.send_announce(s, tracker, AnnounceEvent::Stopped);
            }
        }
        abandoned
    }

    /// Scrapes every swarm of the torrent at the first tracker in tier order that can be
    /// scraped and is not backing off. Returns the request, or `None` if no tracker fits.
    pub fn scrape(&mut self, now: Instant) -> Option<RequestId> {
        let info_hashes: Vec<InfoHashV1> = self.swarms.iter().map(|s| s.info_hash).collect();
        let tracker = self.tiers.iter().flatten().copied().find(|&id| {
            let scrapable = self
                .tracker(id)
                .is_some_and(|t| t.endpoint.is_udp() || t.scrape_url.is_some());
            scrapable
                && self.swarms.iter().all(|s| {
                    s.trackers
                        .get(index(id))
                        .is_none_or(|st| st.retry_at.is_none_or(|at| at <= now))
                })
        })?;
        let target = match &self.tracker(tracker)?.endpoint {
            TrackerEndpoint::Udp { host, port } => RequestTarget::Udp {
                host: host.clone(),
                port: *port,
            },
            TrackerEndpoint::Http(_) => RequestTarget::Http {
                url: scrape_request_url(
                    self.tracker(tracker)?.scrape_url.as_deref()?,
                    &info_hashes,
                ),
            },
        };
        let id = self.new_request_id();
        self.pending.insert(
            id,
            Pending::Scrape {
                tracker,
                info_hashes: info_hashes.clone(),
            },
        );
        self.actions.push_back(TrackerAction::Scrape(ScrapeAction {
            id,
            tracker,
            target,
            info_hashes,
        }));
        Some(id)
    }

    /// Reports how an HTTP request went: the response, or why there was none. Stale or
    /// unknown requests are ignored.
    pub fn handle_http_response(
        &mut self,
        now: Instant,
        request: RequestId,
        response: Result<HttpResponse<'_>, String>,
    ) {
        let Some(pending) = self.pending.remove(&request) else {
            return;
        };
        match pending {
            Pending::Announce {
                swarm,
                tracker,
                event,
            } => {
                let result = response
                    .map_err(TrackerError::Transport)
                    .and_then(|r| http_result(r, parse_announce_response));
                self.announce_finished(now, request, swarm, tracker, event, result);
            }
            Pending::Scrape {
                tracker,
                info_hashes,
            } => {
                let result = response
                    .map_err(TrackerError::Transport)
                    .and_then(|r| http_result(r, parse_scrape_response));
                let result = result.map(|scrape| {
                    info_hashes
                        .iter()
                        .filter_map(|h| scrape.files.get(h).map(|stats| (*h, *stats)))
                        .collect()
                });
                self.scrape_finished(tracker, result);
            }
        }
        self.advance(now);
    }

    /// Reports how a UDP request went, as its [`UdpTracker`](super::UdpTracker) reported it
    /// in a [`UdpEvent`](super::udp::UdpEvent). Stale or unknown requests are ignored.
    pub fn handle_udp_outcome(&mut self, now: Instant, request: RequestId, outcome: UdpOutcome) {
        let Some(pending) = self.pending.remove(&request) else {
            return;
        };
        match pending {
            Pending::Announce {
                swarm,
                tracker,
                event,
            } => {
                let result = match outcome {
                    UdpOutcome::Announced(response) => Ok(response),
                    UdpOutcome::Failed(error) => Err(TrackerError::Udp(error)),
                    UdpOutcome::Scraped(_) => {
                        Err(TrackerError::Udp(UdpTrackerError::UnexpectedAction {
                            expected: "announce",
                        }))
                    }
                };
                self.announce_finished(now, request, swarm, tracker, event, result);
            }
            Pending::Scrape {
                tracker,
                info_hashes,
            } => {
                let result = match outcome {
                    UdpOutcome::Scraped(stats) => Ok(info_hashes.into_iter().zip(stats).collect()),
                    UdpOutcome::Failed(error) => Err(TrackerError::Udp(error)),
                    UdpOutcome::Announced(_) => {
                        Err(TrackerError::Udp(UdpTrackerError::UnexpectedAction {
                            expected: "scrape",
                        }))
                    }
                };
                self.scrape_finished(tracker, result);
            }
        }
        self.advance(now);
    }

    /// Reports that a UDP request could not even be made (the host did not resolve, no
    /// socket for its address family…).
    pub fn handle_udp_error(&mut self, now: Instant, request: RequestId, error: String) {
        let Some(pending) = self.pending.remove(&request) else {
            return;
        };
        match pending {
            Pending::Announce {
                swarm,
                tracker,
                event,
            } => {
                let result = Err(TrackerError::Transport(error));
                self.announce_finished(now, request, swarm, tracker, event, result);
            }
            Pending::Scrape { tracker, .. } => {
                self.scrape_finished(tracker, Err(TrackerError::Transport(error)));
            }
        }
        self.advance(now);
    }

    /// Starts what is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
    }

    /// The next request for the driver.
    pub fn poll_action(&mut self) -> Option<TrackerAction> {
        self.actions.pop_front()
    }

    /// The next thing the session should know.
    pub fn poll_event(&mut self) -> Option<TrackerEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next: the next
    /// announce, or the end of the back-off that holds one up.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if !self.running {
            return None;
        }
        self.swarms
            .iter()
            .filter(|s| s.in_flight.is_none())
            .filter_map(|s| {
                let due = s.due?;
                let available = self
                    .tiers
                    .iter()
                    .flatten()
                    .map(|&id| {
                        s.trackers
                            .get(index(id))
                            .and_then(|st| st.retry_at)
                            .unwrap_or(Instant::ZERO)
                    })
                    .min()?;
                Some(due.max(available))
            })
            .min()
    }

    fn tracker(&self, id: TrackerId) -> Option<&Tracker> {
        self.trackers.get(index(id))
    }

    /// Registers a tracker URL; returns its id and whether it is new.
    fn insert_tracker(&mut self, url: &str) -> Result<(TrackerId, bool), TrackerUrlError> {
        let endpoint = TrackerEndpoint::parse(url)?;
        let url = url.trim();
        if let Some(i) = self.trackers.iter().position(|t| t.url == url) {
            return Ok((tracker_id(i), false));
        }
        let scrape_url = match &endpoint {
            TrackerEndpoint::Http(url) => scrape_url(url),
            TrackerEndpoint::Udp { .. } => None,
        };
        self.trackers.push(Tracker {
            url: url.to_owned(),
            endpoint,
            scrape_url,
        });
        for swarm in &mut self.swarms {
            swarm.trackers.push(TrackerStatus::default());
        }
        Ok((tracker_id(self.trackers.len() - 1), true))
    }

    fn new_request_id(&mut self) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        id
    }

    /// Starts every announce that is due and has a tracker to go to.
    fn advance(&mut self, now: Instant) {
        if !self.running {
            return;
        }
        for s in 0..self.swarms.len() {
            let Some(swarm) = self.swarms.get(s) else {
                break;
            };
            if swarm.in_flight.is_some() || swarm.due.is_none_or(|due| due > now) {
                continue;
            }
            let next = self.tiers.iter().flatten().copied().find(|&id| {
                swarm
                    .trackers
                    .get(index(id))
                    .is_some_and(|st| st.retry_at.is_none_or(|at| at <= now))
            });
            let Some(tracker) = next else {
                continue;
            };
            let event = match swarm.trackers.get(index(tracker)) {
                Some(status) if !status.started => AnnounceEvent::Started,
                _ if swarm.completed_pending => AnnounceEvent::Completed,
                _ => AnnounceEvent::None,
            };
            let request = self.send_announce(s, tracker, event);
            if let Some(swarm) = self.swarms.get_mut(s) {
                swarm.in_flight = Some(InFlight { request, tracker });
            }
        }
    }

    /// Queues an announce to `tracker` for swarm `s`.
    fn send_announce(&mut self, s: usize, tracker: TrackerId, event: AnnounceEvent) -> RequestId {
        let id = self.new_request_id();
        let (info_hash, tracker_id) = match self.swarms.get(s) {
            Some(swarm) => (
                swarm.info_hash,
                swarm
                    .trackers
                    .get(index(tracker))
                    .and_then(|st| st.tracker_id.clone()),
            ),
            None => return id,
        };
        let request = AnnounceRequest {
            info_hash,
            peer_id: self.peer_id,
            port: self.port,
            uploaded: self.stats.uploaded,
            downloaded: self.stats.downloaded,
            left: self.stats.left,
            event,
            num_want: if event == AnnounceEvent::Stopped {
                Some(0)
            } else {
                self.config.num_want
            },
            key: self.key,
            tracker_id,
        };
        let Some(target) = self.tracker(tracker).map(|t| match &t.endpoint {
            TrackerEndpoint::Http(url) => RequestTarget::Http {
                url: announce_url(url, &request),
            },
            TrackerEndpoint::Udp { host, port } => RequestTarget::Udp {
                host: host.clone(),
                port: *port,
            },
        }) else {
            return id;
        };
        self.pending.insert(
            id,
            Pending::Announce {
                swarm: s,
                tracker,
                event,
            },
        );
        self.actions
            .push_back(TrackerAction::Announce(AnnounceAction {
                id,
                tracker,
                target,
                request,
            }));
        id
    }

    fn announce_finished(
        &mut self,
        now: Instant,
        request: RequestId,
        s: usize,
        tracker: TrackerId,
        event: AnnounceEvent,
        result: Result<AnnounceResponse, TrackerError>,
    ) {
        let config = self.config;
        let Some(swarm) = self.swarms.get_mut(s) else {
            return;
        };
        let current = swarm.in_flight.is_some_and(|f| f.request == request);
        if current {
            swarm.in_flight = None;
        }
        let info_hash = swarm.info_hash;
        let Some(status) = swarm.trackers.get_mut(index(tracker)) else {
            return;
        };
        match result {
            Ok(response) => {
                if event != AnnounceEvent::Stopped {
                    status.failures = 0;
                    status.retry_at = None;
                    status.started = true;
                    status.last_success = Some(now);
                    if let Some(id) = &response.tracker_id {
                        status.tracker_id = Some(id.clone());
                    }
                }
                if current {
                    let min_interval = response.min_interval.unwrap_or(Duration::ZERO);
                    let interval = response
                        .interval
                        .unwrap_or(config.default_interval)
                        .max(min_interval)
                        .max(config.min_announce_interval);
                    if event == AnnounceEvent::Completed {
                        swarm.completed_pending = false;
                    }
                    swarm.not_before = now + min_interval;
                    swarm.due = Some(if swarm.completed_pending {
                        now
                    } else {
                        now + interval
                    });
                    self.promote(tracker);
                }
                self.events.push_back(TrackerEvent::Announced {
                    tracker,
                    info_hash,
                    event,
                    response,
                });
            }
            Err(error) => {
                let (failures, retry_at) = if event == AnnounceEvent::Stopped {
                    (0, None)
                } else {
                    status.failures = status.failures.saturating_add(1);
                    let retry_at = now + config.retry_delay(status.failures);
                    status.retry_at = Some(retry_at);
                    (status.failures, Some(retry_at))
                };
                self.events.push_back(TrackerEvent::AnnounceFailed {
                    tracker,
                    info_hash,
                    event,
                    error,
                    failures,
                    retry_at,
                });
            }
        }
    }

    fn scrape_finished(
        &mut self,
        tracker: TrackerId,
        result: Result<Vec<(InfoHashV1, ScrapeStats)>, TrackerError>,
    ) {
        self.events.push_back(match result {
            Ok(files) => TrackerEvent::Scraped { tracker, files },
            Err(error) => TrackerEvent::ScrapeFailed { tracker, error },
        });
    }

    /// Moves a tracker that answered to the front of its tier (BEP12).
    fn promote(&mut self, tracker: TrackerId) {
        for tier in &mut self.tiers {
            if let Some(pos) = tier.iter().position(|&id| id == tracker) {
                // `pos` is an index into `tier`.
                tier[..=pos].rotate_right(1);
                return;
            }
        }
    }
}

/// Reads an HTTP response: a 200 is parsed; any other status is an error, named by the
/// body's `failure reason` when it has one.
fn http_result<T>(
    response: HttpResponse<'_>,
    parse: fn(&[u8]) -> Result<T, ResponseError>,
) -> Result<T, TrackerError> {
    if response.status == 200 {
        return parse(response.body).map_err(TrackerError::Response);
    }
    match parse(response.body) {
        Err(failure @ ResponseError::Failure(_)) => Err(TrackerError::Response(failure)),
        _ => Err(TrackerError::HttpStatus(response.status)),
    }
}

fn index(id: TrackerId) -> usize {
    id.0 as usize
}

fn tracker_id(index: usize) -> TrackerId {
    // Trackers are counted by a u32; a torrent with four billion trackers is not a concern,
    // but saturate rather than wrap.
    TrackerId(u32::try_from(index).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests;
