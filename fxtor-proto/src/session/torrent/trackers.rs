//! A torrent's trackers: its [`Announcer`], driven by the torrent's state.
//!
//! The announcer is built from the torrent's trackers (a .torrent's `announce-list` or
//! `announce`, a magnet link's `tr=`, each its own tier, then
//! [`AddTorrentParams::trackers`](crate::session::AddTorrentParams::trackers)). It runs
//! while the torrent may have peers ([`Torrent::is_active`]): `started` when that begins,
//! `completed` when a download finishes, `stopped` on pause, on an error and on removal.
//! Its requests go to the session's [`TrackerTransport`](crate::session::trackers); its
//! answers come back here, become alerts, and their peers go to the torrent's peers
//! ([`Torrent::add_tracker_peers`]).

use std::collections::BTreeMap;

use core::net::SocketAddr;

use super::{PeerSource, Torrent};
use crate::session::shared::Shared;
use crate::session::trackers::{Stopping, TrackerEntry, UdpResult};
use crate::session::{Alert, ExternalAddressSource, TorrentId, TorrentSource, TorrentState};
use crate::time::Instant;
use crate::tracker::{
    AnnounceEvent, Announcer, HttpResponse, RequestId, TrackerAction, TrackerEvent, TrackerId,
    TransferStats,
};
use crate::InfoHashes;

/// What `left` says before the metadata is known: not 0, which would make us a seed.
const LEFT_UNKNOWN: u64 = 16 * 1024;

/// What we last heard from one tracker.
#[derive(Debug, Default, Clone)]
struct Note {
    last_error: Option<String>,
    warning: Option<String>,
    num_peers: usize,
    seeders: Option<u32>,
    leechers: Option<u32>,
}

/// A torrent's announcer and what its trackers last said.
#[derive(Debug)]
pub(in crate::session) struct Trackers {
    announcer: Announcer,
    notes: BTreeMap<TrackerId, Note>,
}

impl Trackers {
    /// An announcer for the tiers given (URLs that are not trackers are left out).
    pub fn new(
        torrent: TorrentId,
        info_hashes: InfoHashes,
        tiers: &[Vec<String>],
        shared: &Shared,
    ) -> Self {
        let config = &shared.config;
        // Derived from the session's seed rather than drawn from its generator, so that
        // adding trackers changes no other random choice of a replayed run.
        let seed = config.rng_seed ^ u64::from(torrent.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut announcer = Announcer::new(
            config.announcer,
            info_hashes,
            config.peer_id,
            config.listen_port,
            seed,
        );
        for tier in tiers {
            // A URL that is no tracker's is skipped; the others of its tier are kept.
            let _ = announcer.add_tier(tier);
        }
        Self {
            announcer,
            notes: BTreeMap::new(),
        }
    }
}

/// The tracker tiers of a torrent: its own, then those given when it was added.
pub(super) fn tracker_tiers(source: &TorrentSource, extra: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let mut tiers: Vec<Vec<String>> = match source {
        TorrentSource::Info(info) => info.trackers().to_vec(),
        TorrentSource::Magnet(link) => link.trackers().iter().map(|t| vec![t.clone()]).collect(),
    };
    tiers.extend(extra.into_iter().filter(|tier| !tier.is_empty()));
    tiers
}

impl Torrent {
    /// Starts, completes or stops announcing as the torrent's state changed from `from`.
    pub(super) fn announce_state(&mut self, now: Instant, from: TorrentState, shared: &mut Shared) {
        let stats = self.announce_stats();
        let active = self.is_active();
        let announcer = &mut self.trackers.announcer;
        announcer.set_stats(stats);
        if active && !announcer.is_running() {
            announcer.start(now);
        } else if !active && announcer.is_running() {
            let abandoned = announcer.stop(now);
            shared.trackers.cancel(self.id, &abandoned);
        }
        if from == TorrentState::Downloading
            && matches!(self.state, TorrentState::Finished | TorrentState::Seeding)
        {
            announcer.completed(now);
        }
        self.drain_trackers(now, shared);
    }

    /// When the announcer needs [`trackers_timeout`](Self::trackers_timeout).
    pub(super) fn trackers_poll_timeout(&self) -> Option<Instant> {
        self.trackers.announcer.poll_timeout()
    }

    /// Announces what is due.
    pub(super) fn trackers_timeout(&mut self, now: Instant, shared: &mut Shared) {
        if self.trackers_poll_timeout().is_some_and(|at| at <= now) {
            let stats = self.announce_stats();
            self.trackers.announcer.set_stats(stats);
            self.trackers.announcer.handle_timeout(now);
            self.drain_trackers(now, shared);
        }
    }

    /// Announces again as soon as the trackers allow.
    pub fn force_reannounce(&mut self, now: Instant, shared: &mut Shared) {
        let stats = self.announce_stats();
        self.trackers.announcer.set_stats(stats);
        self.trackers.announcer.force_reannounce(now);
        self.drain_trackers(now, shared);
    }

    /// Asks the first tracker (in tier order) that can be scraped and is not backing off
    /// for the swarm's figures (BEP48; BEP15 for UDP): a [`Alert::ScrapeReply`] follows,
    /// or a [`Alert::ScrapeFailed`].
    pub fn scrape_tracker(&mut self, now: Instant, shared: &mut Shared) {
        if self.trackers.announcer.scrape(now).is_none() {
            shared.alert(Alert::ScrapeFailed {
                torrent: self.id,
                url: None,
                error: "no tracker of the torrent can be scraped now".to_owned(),
            });
        }
        self.drain_trackers(now, shared);
    }

    /// An HTTP tracker request of this torrent ended.
    pub fn handle_tracker_http(
        &mut self,
        now: Instant,
        request: RequestId,
        response: Result<HttpResponse<'_>, String>,
        shared: &mut Shared,
    ) {
        let stats = self.announce_stats();
        self.trackers.announcer.set_stats(stats);
        self.trackers
            .announcer
            .handle_http_response(now, request, response);
        self.drain_trackers(now, shared);
    }

    /// A UDP tracker request of this torrent ended.
    pub fn handle_tracker_udp(
        &mut self,
        now: Instant,
        request: RequestId,
        result: UdpResult,
        shared: &mut Shared,
    ) {
        let stats = self.announce_stats();
        self.trackers.announcer.set_stats(stats);
        deliver_udp(&mut self.trackers.announcer, now, request, result);
        self.drain_trackers(now, shared);
    }

    /// The torrent's trackers and what they last said.
    pub fn tracker_entries(&self) -> Vec<TrackerEntry> {
        let announcer = &self.trackers.announcer;
        let mut entries = Vec::new();
        for (tier, trackers) in announcer.tiers().iter().enumerate() {
            for &tracker in trackers {
                let Some(url) = announcer.tracker_url(tracker) else {
                    continue;
                };
                // A hybrid's two swarms: the worse standing, the latest success.
                let mut status = crate::tracker::TrackerStatus::default();
                for swarm in self.info_hashes.identifiers() {
                    if let Some(s) = announcer.tracker_status(tracker, swarm) {
                        status.failures = status.failures.max(s.failures);
                        status.retry_at = status.retry_at.max(s.retry_at);
                        status.last_success = status.last_success.max(s.last_success);
                    }
                }
                let note = self
                    .trackers
                    .notes
                    .get(&tracker)
                    .cloned()
                    .unwrap_or_default();
                entries.push(TrackerEntry {
                    url: url.to_owned(),
                    tier,
                    failures: status.failures,
                    retry_at: status.retry_at,
                    last_success: status.last_success,
                    last_error: note.last_error,
                    warning: note.warning,
                    num_peers: note.num_peers,
                    seeders: note.seeders,
                    leechers: note.leechers,
                });
            }
        }
        entries
    }

    /// The session is shutting down: announce `stopped`, as on a pause, without changing
    /// the torrent's state.
    pub fn stop_announcing(&mut self, now: Instant, shared: &mut Shared) {
        let stats = self.announce_stats();
        self.trackers.announcer.set_stats(stats);
        let abandoned = self.trackers.announcer.stop(now);
        shared.trackers.cancel(self.id, &abandoned);
        self.drain_trackers(now, shared);
    }

    /// The torrent is being removed: announce `stopped` and hand the announcer over to wait
    /// for the answers.
    pub fn stop_trackers(mut self, now: Instant, shared: &mut Shared) -> Stopping {
        let stats = self.announce_stats();
        let announcer = &mut self.trackers.announcer;
        announcer.set_stats(stats);
        let abandoned = announcer.stop(now);
        shared.trackers.cancel(self.id, &abandoned);
        let mut outstanding = 0;
        while let Some(action) = announcer.poll_action() {
            outstanding += usize::from(is_stopped_announce(&action));
            shared
                .trackers
                .dispatch(now, self.id, action, &mut shared.actions);
        }
        Stopping {
            announcer: self.trackers.announcer,
            outstanding,
            deadline: now + shared.config.stop_announce_timeout,
        }
    }

    /// Hands the announcer's requests to the transport and acts on what it learnt.
    fn drain_trackers(&mut self, now: Instant, shared: &mut Shared) {
        while let Some(action) = self.trackers.announcer.poll_action() {
            shared
                .trackers
                .dispatch(now, self.id, action, &mut shared.actions);
        }
        while let Some(event) = self.trackers.announcer.poll_event() {
            self.on_tracker_event(now, event, shared);
        }
    }

    fn on_tracker_event(&mut self, now: Instant, event: TrackerEvent, shared: &mut Shared) {
        let url = |t: &Self, tracker: TrackerId| {
            t.trackers
                .announcer
                .tracker_url(tracker)
                .unwrap_or_default()
                .to_owned()
        };
        match event {
            TrackerEvent::Announced {
                tracker,
                event,
                response,
                ..
            } => {
                let note = self.trackers.notes.entry(tracker).or_default();
                note.last_error = None;
                note.num_peers = response.peers.len();
                note.seeders = response.complete;
                note.leechers = response.incomplete;
                if response.warning.is_some() {
                    note.warning.clone_from(&response.warning);
                }
                if let Some(ip) = response.external_ip {
                    shared.note_external_ip(ip, ExternalAddressSource::Tracker);
                }
                let url = url(self, tracker);
                shared.alert(Alert::TrackerReply {
                    torrent: self.id,
                    url: url.clone(),
                    num_peers: response.peers.len(),
                });
                if let Some(message) = response.warning {
                    shared.alert(Alert::TrackerWarning {
                        torrent: self.id,
                        url,
                        message,
                    });
                }
                if event != AnnounceEvent::Stopped {
                    let peers = response.peers.iter().map(|p| p.addr);
                    self.add_tracker_peers(now, peers, shared);
                }
            }
            TrackerEvent::AnnounceFailed {
                tracker,
                error,
                failures,
                ..
            } => {
                let error = error
                    .tracker_message()
                    .map_or_else(|| error.to_string(), str::to_owned);
                let note = self.trackers.notes.entry(tracker).or_default();
                note.last_error = Some(error.clone());
                shared.alert(Alert::TrackerError {
                    torrent: self.id,
                    url: url(self, tracker),
                    error,
                    failures,
                });
            }
            TrackerEvent::Scraped { tracker, files } => {
                let Some((_, stats)) = files.first() else {
                    shared.alert(Alert::ScrapeFailed {
                        torrent: self.id,
                        url: Some(url(self, tracker)),
                        error: "the tracker knows nothing of the torrent".to_owned(),
                    });
                    return;
                };
                let note = self.trackers.notes.entry(tracker).or_default();
                note.seeders = Some(stats.complete);
                note.leechers = Some(stats.incomplete);
                shared.alert(Alert::ScrapeReply {
                    torrent: self.id,
                    url: url(self, tracker),
                    seeders: stats.complete,
                    leechers: stats.incomplete,
                    downloaded: stats.downloaded,
                });
            }
            TrackerEvent::ScrapeFailed { tracker, error } => {
                shared.alert(Alert::ScrapeFailed {
                    torrent: self.id,
                    url: Some(url(self, tracker)),
                    error: error.to_string(),
                });
            }
        }
    }

    /// Peers a tracker gave join the peer list (and are dialled, best first, while the
    /// torrent runs and has room).
    fn add_tracker_peers(
        &mut self,
        now: Instant,
        peers: impl Iterator<Item = SocketAddr>,
        shared: &mut Shared,
    ) {
        self.add_peers(now, peers, PeerSource::Tracker, shared);
    }

    /// The figures announces carry: payload moved in this session, bytes still missing.
    fn announce_stats(&self) -> TransferStats {
        let left = match &self.meta {
            None => LEFT_UNKNOWN,
            Some(meta) => {
                let picker = &meta.picker;
                let num_pieces = picker.num_pieces();
                let have = u64::from(picker.num_have());
                let piece_length = u64::from(meta.info.piece_length());
                // Every piece but the last is `piece_length` long.
                let last = num_pieces.checked_sub(1).map(crate::PieceIndex);
                let have_bytes = match last {
                    Some(last) if picker.have(last) => {
                        (have - 1) * piece_length + u64::from(picker.piece_len(last))
                    }
                    _ => have * piece_length,
                };
                meta.info.total_size().saturating_sub(have_bytes)
            }
        };
        TransferStats {
            uploaded: self.totals.uploaded,
            downloaded: self.totals.downloaded,
            left,
        }
    }
}

impl Stopping {
    /// Delivers the answer to one of a removed torrent's requests.
    pub fn handle_http(
        &mut self,
        now: Instant,
        request: RequestId,
        response: Result<HttpResponse<'_>, String>,
    ) {
        self.announcer.handle_http_response(now, request, response);
        self.settle();
    }

    /// Delivers the outcome of one of a removed torrent's UDP requests.
    pub fn handle_udp(&mut self, now: Instant, request: RequestId, result: UdpResult) {
        deliver_udp(&mut self.announcer, now, request, result);
        self.settle();
    }

    /// Counts the answered `stopped` announces. A stopped announcer asks nothing more.
    fn settle(&mut self) {
        while self.announcer.poll_action().is_some() {}
        while let Some(event) = self.announcer.poll_event() {
            if matches!(
                event,
                TrackerEvent::Announced { .. } | TrackerEvent::AnnounceFailed { .. }
            ) {
                self.outstanding = self.outstanding.saturating_sub(1);
            }
        }
    }
}

fn deliver_udp(announcer: &mut Announcer, now: Instant, request: RequestId, result: UdpResult) {
    match result {
        UdpResult::Outcome(outcome) => announcer.handle_udp_outcome(now, request, outcome),
        UdpResult::Failed(error) => announcer.handle_udp_error(now, request, error),
    }
}

fn is_stopped_announce(action: &TrackerAction) -> bool {
    matches!(action, TrackerAction::Announce(a) if a.request.event == AnnounceEvent::Stopped)
}
