//! One torrent of a session: its metadata and piece picker, its peers, the pieces held in
//! memory, its disk jobs, its state and its numbers.
//!
//! The session routes every input for the torrent's connections and disk jobs here. A
//! torrent reacts by giving its [`PeerConnection`]s commands and queueing outputs in the
//! session's [`Shared`] queues. Peers whose connection may have something to say are put
//! on a list ([`Torrent::touch`]) and drained at the end of each input
//! ([`Torrent::flush`]): their events are acted on, then their bytes queued, in order.
//!
//! - [`peer`]: what the torrent keeps per peer.
//! - [`download`]: availability, interest, requests, received blocks, hash checks, bans.
//! - [`upload`]: serving requests from disk.
//! - [`unchoke`]: choking, decided by the torrent's [`Choker`].
//! - [`assembly`]: the pieces held in memory.
//! - [`trust`]: how far peers that sent blocks of failed pieces are trusted.
//! - [`checking`]: hashing the files on disk.
//! - [`trackers`]: the torrent's announcer, following its state.
//! - [`peer_list`]: the addresses to connect to, chosen by [`peer_priority`] (BEP40).
//! - [`pex`]: peer exchange (BEP11); [`donthave`]: withdrawn pieces (`lt_donthave`).
//! - [`hashes`]: BEP52 hash requests: fetching missing v2 piece layers, serving ours.
//! - [`blame`]: which senders of a failed v2 piece sent the bad blocks, by its leaves.
//!
//! A torrent added by magnet link has no metadata ([`Metadata`]) until its info dictionary
//! arrives: its connections run without a geometry, their availability is recorded as
//! plain bits, and nothing is requested or served. Supplying the metadata later builds the
//! [`Metadata`], gives every connection its geometry and replays the recorded
//! availability into the new picker.

mod assembly;
mod blame;
mod checking;
mod dht;
mod donthave;
mod download;
mod fast;
mod hashes;
mod metadata;
mod peer_list;
mod peer_priority;
mod pex;

#[cfg(test)]
pub(super) use metadata::TestServing;
pub use peer_list::{PeerSource, PeerSources};
mod peer;
mod trackers;
mod trust;
mod unchoke;
mod upload;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::BytesMut;
use core::net::SocketAddr;
use core::time::Duration;

use super::shared::{Route, Shared};
use super::{
    Action, AddTorrentParams, Alert, ConnectionId, DiskCompletion, DiskJobId, DiskJobKind,
    DiskResult, SessionError, TorrentId, TorrentSource, TorrentState, TorrentStatus, Transmit,
};
use crate::choker::Choker;
use crate::magnet::PeerAddress;
use crate::metainfo::{FileStorage, TorrentInfo};
use crate::peer::{
    Availability, CloseReason, PeerConnection, PeerEvent, PeerParams, TorrentGeometry,
};
use crate::picker::{piece_priorities_from_files, PeerKey, PiecePicker, Priority};
use crate::resume::ResumeData;
use crate::time::Instant;
use crate::verify::PieceCheck;
use crate::wire::extension::{
    ExtendedHandshake, PexFlags, LT_DONTHAVE, MAX_METADATA_SIZE, UT_METADATA, UT_PEX,
};
use crate::wire::HashRequest;
use crate::{FileIndex, InfoHashV1, InfoHashes, PieceIndex};

use assembly::Assembly;
use checking::Checking;
use download::deadline_millis;
use hashes::{HashServer, LayerFetch};
use metadata::MetadataFetch;
use peer::{Peer, PeerHave};
use peer_list::PeerList;
use trackers::Trackers;
use trust::Trust;

/// The client name we announce in the extension handshake.
const CLIENT: &str = concat!("fxtor ", env!("CARGO_PKG_VERSION"));

/// How often [`Alert::Stats`] is posted while data moves.
const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// A disk job in flight, by what it is for. `Leaves`: a piece read to answer a peer's
/// request for its leaves (see [`blame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Write(PieceIndex),
    Read { key: PeerKey, run: upload::ReadRun },
    Check(PieceIndex),
    CreateFiles,
    Leaves { key: PeerKey, request: HashRequest },
}

/// What a torrent knows once it has its info dictionary.
#[derive(Debug)]
struct Metadata {
    info: Arc<TorrentInfo>,
    geometry: TorrentGeometry,
    picker: PiecePicker,
    pieces: Assembly,
    /// Set while the files are being checked.
    checking: Option<Checking>,
    /// Bytes of pad files in each piece that has any: they count as neither wanted nor
    /// done in the status, as the user sees only real files.
    pad_bytes: BTreeMap<u32, u32>,
    /// The v2 piece layers being fetched from peers.
    layers: LayerFetch,
}

/// The bytes of pad files in each piece that holds some.
fn pad_bytes_per_piece(info: &TorrentInfo) -> BTreeMap<u32, u32> {
    let piece_length = u64::from(info.piece_length().max(1));
    let mut pads = BTreeMap::new();
    for file in info.files().files().iter().filter(|f| f.is_pad()) {
        let mut at = file.offset();
        while at < file.end() {
            let piece = at / piece_length;
            let piece_end = (piece + 1) * piece_length;
            let take = file.end().min(piece_end) - at;
            // A piece index fits in u32 (the torrent loaded) and `take` is at most a piece.
            *pads.entry(piece as u32).or_insert(0) += take as u32;
            at += take;
        }
    }
    pads
}

impl Metadata {
    fn new(info: Arc<TorrentInfo>, rng_seed: u64) -> Result<Self, String> {
        let geometry = TorrentGeometry::new(info.piece_length(), info.total_size())
            .map_err(|e| e.to_string())?;
        let picker = PiecePicker::new(info.total_size(), info.piece_length(), rng_seed)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            pad_bytes: pad_bytes_per_piece(&info),
            layers: LayerFetch::new(&info),
            info,
            geometry,
            picker,
            pieces: Assembly::default(),
            checking: None,
        })
    }

    /// The bytes of real files (pads left out) in pieces of a priority above 0, and those
    /// of them we have. O(pieces holding pad bytes), not O(pieces): from the picker's
    /// counts of whole pieces, less the short last piece and the pads.
    fn wanted_bytes(&self) -> (u64, u64) {
        let picker = &self.picker;
        let n = picker.num_pieces();
        if n == 0 {
            return (0, 0);
        }
        let full = u64::from(picker.piece_len(PieceIndex(0)));
        let wanted_pieces = picker.num_wanted();
        let have_pieces = wanted_pieces - picker.wanted_left();
        let mut wanted = u64::from(wanted_pieces) * full;
        let mut done = u64::from(have_pieces) * full;
        let mut less = |piece: PieceIndex, bytes: u64| {
            if picker.piece_priority(piece).is_wanted() {
                wanted -= bytes;
                if picker.have(piece) {
                    done -= bytes;
                }
            }
        };
        let last = PieceIndex(n - 1);
        less(last, full - u64::from(picker.piece_len(last)));
        for (&piece, &pad) in &self.pad_bytes {
            less(PieceIndex(piece), u64::from(pad));
        }
        (wanted, done)
    }
}

/// What the user asked for a torrent when adding it, applied once its metadata is known
/// (at once, or when a magnet link's info dictionary arrives).
#[derive(Debug, Default)]
struct Setup {
    seed_mode: bool,
    skip_check: bool,
    sequential: bool,
    file_priorities: Vec<u8>,
    /// Files `file_priorities` does not cover get priority 0.
    default_dont_download: bool,
    /// A magnet link's `so=` (BEP53): download only these files, unless file priorities
    /// were given.
    select_only: Vec<crate::magnet::FileRange>,
    resume: Option<ResumeData>,
}

/// Payload byte counts and the once-a-second report.
#[derive(Debug, Default)]
struct Totals {
    /// Payload moved since the torrent was added to this session.
    downloaded: u64,
    uploaded: u64,
    /// Payload moved in earlier sessions, from the resume data.
    earlier_downloaded: u64,
    earlier_uploaded: u64,
    reported_downloaded: u64,
    reported_uploaded: u64,
    next_report: Option<Instant>,
}

impl Totals {
    /// Data moved: make sure the report is scheduled.
    fn moved(&mut self, now: Instant) {
        if self.next_report.is_none() {
            self.next_report = Some(now + STATS_INTERVAL);
        }
    }
}

/// One torrent; see the [module documentation](self).
#[derive(Debug)]
pub(super) struct Torrent {
    id: TorrentId,
    info_hashes: InfoHashes,
    display_name: Option<String>,
    from_magnet: bool,
    state: TorrentState,
    error: Option<String>,
    meta: Option<Metadata>,
    /// What to apply once the metadata arrives (a magnet link's torrent).
    setup: Option<Setup>,
    /// Fetching the metadata from peers, while it is unknown.
    fetch: MetadataFetch,
    upload_only: bool,
    /// The user's file priorities, one per non-pad file; empty if never set.
    file_priorities: Vec<u8>,
    /// Piece priorities were set piece by piece (saved in resume data).
    custom_piece_priorities: bool,
    empty_files_created: bool,

    peers: BTreeMap<PeerKey, Peer>,
    by_conn: BTreeMap<ConnectionId, PeerKey>,
    /// Outgoing connections not established yet.
    connecting: BTreeMap<ConnectionId, SocketAddr>,
    /// The addresses of `peers` and `connecting`.
    addrs: BTreeSet<SocketAddr>,
    /// Where to connect: every address learnt, and how connecting to it went.
    peer_list: PeerList,
    /// Candidates were added or slots freed: look for peers to connect to.
    connect_due: bool,
    /// Every connection is being closed: connect to no one meanwhile.
    closing: bool,
    /// Peer exchange is allowed by the session's settings.
    peer_exchange: bool,
    banned: BTreeSet<SocketAddr>,
    trust: Trust,
    next_key: u32,
    /// Peers to drain at the next flush.
    dirty: Vec<PeerKey>,
    /// Peers that asked for more blocks than they got.
    hungry: BTreeSet<PeerKey>,
    /// Blocks became available again: offer them to hungry peers.
    refill: bool,
    /// When the next piece with a deadline becomes urgent (its outstanding blocks may be
    /// asked of more peers): hungry peers are offered blocks again then.
    next_urgency: Option<Instant>,

    jobs: BTreeMap<DiskJobId, Job>,
    choker: Choker,
    trackers: Trackers,
    totals: Totals,
    /// Answers peers' hash requests.
    hash_server: HashServer,
    /// Failed pieces whose leaves were asked for; reads for leaves asked of us.
    blame: blame::Blame,
    /// The metadata came without (all) its v2 piece layers: the ones fetched are kept in
    /// resume data.
    layers_from_peers: bool,
    /// How metadata requests are answered (tests only).
    #[cfg(test)]
    pub test_serving: metadata::TestServing,
    /// How hash requests are answered (tests only).
    #[cfg(test)]
    pub test_hash_serving: metadata::TestServing,
}

impl Torrent {
    /// A torrent from `params`, added at `_now`, in its first state (no alert is posted
    /// for it). Nothing of a new torrent depends on the time yet.
    pub fn new(
        _now: Instant,
        id: TorrentId,
        params: AddTorrentParams,
        shared: &mut Shared,
    ) -> Result<Self, SessionError> {
        let AddTorrentParams {
            source,
            peers,
            paused,
            resume_data,
            skip_check,
            seed_mode,
            file_priorities,
            default_dont_download,
            sequential,
            upload_only,
            trackers,
        } = params;
        let tracker_tiers = trackers::tracker_tiers(&source, trackers);
        let resume = resume_data
            .map(|bytes| ResumeData::from_bytes(&bytes))
            .transpose()
            .map_err(|e| SessionError::InvalidResumeData(e.to_string()))?;

        let select_only = match &source {
            TorrentSource::Magnet(link) => link.select_only().to_vec(),
            TorrentSource::Info(_) => Vec::new(),
        };
        let (mut info_hashes, mut info, display_name, from_magnet, mut known) = match source {
            TorrentSource::Info(info) => (info.info_hashes(), Some(info), None, false, Vec::new()),
            TorrentSource::Magnet(link) => {
                let known: Vec<SocketAddr> = link
                    .peers()
                    .iter()
                    .filter_map(|p| match p {
                        PeerAddress::Ip(addr) => Some(*addr),
                        PeerAddress::Host { .. } => None,
                    })
                    .collect();
                let name = link.display_name().map(str::to_owned);
                (link.info_hashes(), None, name, true, known)
            }
        };
        if let Some(resume) = &resume {
            let invalid =
                |e: crate::resume::ResumeError| SessionError::InvalidResumeData(e.to_string());
            resume
                .check_torrent(info_hashes, info.as_deref())
                .map_err(invalid)?;
            if let (None, Some(bytes)) = (&info, &resume.info) {
                // `ResumeData::from_bytes` checked that it hashes to the resume data's
                // info-hashes, which match the torrent's.
                let parsed = TorrentInfo::from_info_bytes(bytes).map_err(|e| {
                    SessionError::InvalidResumeData(format!("its info dictionary: {e}"))
                })?;
                resume
                    .check_torrent(parsed.info_hashes(), Some(&parsed))
                    .map_err(invalid)?;
                info_hashes = parsed.info_hashes();
                info = Some(Arc::new(parsed));
            }
        }
        known.extend(peers);
        let layers_from_peers = from_magnet || info.as_ref().is_some_and(|i| !i.has_piece_layers());
        if let (Some(info), Some(resume)) = (&mut info, &resume) {
            if !resume.piece_layers.is_empty() {
                hashes::restore_layers(Arc::make_mut(info), resume)
                    .map_err(SessionError::InvalidResumeData)?;
            }
        }

        let mut error = None;
        let meta = match info {
            None => None,
            Some(info) => match Metadata::new(info, shared.rng.next_u64()) {
                Ok(meta) => Some(meta),
                Err(e) => {
                    error = Some(e);
                    None
                }
            },
        };

        let mut torrent = Self {
            id,
            info_hashes,
            display_name,
            from_magnet,
            state: TorrentState::Paused,
            error,
            meta,
            setup: None,
            fetch: MetadataFetch::default(),
            upload_only,
            file_priorities: Vec::new(),
            custom_piece_priorities: false,
            empty_files_created: false,
            peers: BTreeMap::new(),
            by_conn: BTreeMap::new(),
            connecting: BTreeMap::new(),
            addrs: BTreeSet::new(),
            peer_list: PeerList::default(),
            connect_due: false,
            closing: false,
            peer_exchange: shared.config.peer_exchange,
            banned: BTreeSet::new(),
            trust: Trust::default(),
            next_key: 0,
            dirty: Vec::new(),
            hungry: BTreeSet::new(),
            refill: false,
            next_urgency: None,
            jobs: BTreeMap::new(),
            choker: Self::new_choker(shared),
            trackers: Trackers::new(id, info_hashes, &tracker_tiers, shared),
            totals: Totals::default(),
            hash_server: HashServer::default(),
            blame: blame::Blame::default(),
            layers_from_peers,
            #[cfg(test)]
            test_serving: metadata::TestServing::Honest,
            #[cfg(test)]
            test_hash_serving: metadata::TestServing::Honest,
        };
        for addr in known {
            torrent.remember(addr, PeerSource::Manual);
        }

        let file_priorities = match (&resume, file_priorities.is_empty()) {
            (Some(resume), true) => resume.file_priorities.clone(),
            _ => file_priorities,
        };
        if let Some(resume) = &resume {
            torrent.totals.earlier_downloaded = resume.total_downloaded;
            torrent.totals.earlier_uploaded = resume.total_uploaded;
        }
        let setup = Setup {
            seed_mode,
            skip_check,
            sequential,
            file_priorities,
            default_dont_download,
            select_only,
            resume,
        };
        if torrent.meta.is_some() {
            torrent.apply_setup(setup);
        } else {
            torrent.setup = Some(setup);
        }
        torrent.state = if paused {
            TorrentState::Paused
        } else {
            torrent.natural_state()
        };
        torrent.update_choker_mode();
        Ok(torrent)
    }

    /// Applies what the user asked for when adding the torrent to its metadata: file and
    /// piece priorities, sequential order, and what is on disk (all of it in seed mode,
    /// what the resume data says, or to be found by checking the files).
    fn apply_setup(&mut self, setup: Setup) {
        let Setup {
            seed_mode,
            skip_check,
            sequential,
            mut file_priorities,
            default_dont_download,
            select_only,
            resume,
        } = setup;
        if file_priorities.is_empty() && !select_only.is_empty() {
            if let Some(meta) = &self.meta {
                // `so=` indices count every file of the torrent, pads included.
                file_priorities = (0..meta.info.files().num_files() as u32)
                    .map(|i| {
                        let selected = select_only.iter().any(|r| r.contains(FileIndex(i)));
                        if selected {
                            Priority::DEFAULT.get()
                        } else {
                            0
                        }
                    })
                    .collect();
            }
        }
        if default_dont_download {
            if let Some(meta) = &self.meta {
                let non_pad = meta.info.files().files().iter().filter(|f| !f.is_pad());
                let count = non_pad.count();
                if file_priorities.len() < count {
                    file_priorities.resize(count, 0);
                }
            }
        }
        if !file_priorities.is_empty() {
            self.apply_file_priorities(&file_priorities);
        }
        let Some(meta) = &mut self.meta else {
            return;
        };
        if let Some(resume) = &resume {
            if !resume.piece_priorities.is_empty() {
                let prios: Vec<Priority> = resume
                    .piece_priorities
                    .iter()
                    .map(|&p| Priority::saturating(p))
                    .collect();
                meta.picker.set_piece_priorities(&prios);
                self.custom_piece_priorities = true;
            }
        }
        meta.picker
            .set_sequential(sequential || resume.as_ref().is_some_and(|r| r.sequential));
        if seed_mode {
            for p in 0..meta.picker.num_pieces() {
                meta.picker.we_have(PieceIndex(p));
            }
        } else if let Some(resume) = &resume {
            meta.picker.we_have_bitfield(&resume.pieces);
        } else if !skip_check {
            meta.checking = Some(Checking::default());
        }
    }

    // ----- identity and state -----

    pub fn info_hashes(&self) -> InfoHashes {
        self.info_hashes
    }

    /// The metadata, once known.
    pub fn info(&self) -> Option<Arc<TorrentInfo>> {
        self.meta.as_ref().map(|m| m.info.clone())
    }

    /// Starts the torrent's work after it was added: checking, or connecting to its peers.
    pub fn start(&mut self, now: Instant, shared: &mut Shared) {
        if let Some(error) = self.error.clone() {
            shared.alert(Alert::TorrentError {
                torrent: self.id,
                error,
            });
        }
        self.activate(now, shared);
        self.announce_state(now, self.state, shared);
    }

    /// The state the torrent is in when it is neither paused nor stopped by the user.
    fn natural_state(&self) -> TorrentState {
        if self.error.is_some() {
            return TorrentState::Error;
        }
        match &self.meta {
            None => TorrentState::DownloadingMetadata,
            Some(m) if m.checking.is_some() => TorrentState::CheckingFiles,
            Some(m) if m.picker.is_seed() => TorrentState::Seeding,
            Some(m) if m.picker.is_finished() => TorrentState::Finished,
            Some(_) => TorrentState::Downloading,
        }
    }

    /// Moves to the natural state, unless paused or stopped on an error.
    fn update_state(&mut self, now: Instant, shared: &mut Shared) {
        if matches!(self.state, TorrentState::Paused | TorrentState::Error) {
            return;
        }
        let next = self.natural_state();
        self.set_state(now, next, shared);
    }

    fn set_state(&mut self, now: Instant, to: TorrentState, shared: &mut Shared) {
        if self.state == to {
            return;
        }
        let from = std::mem::replace(&mut self.state, to);
        shared.alert(Alert::StateChanged {
            torrent: self.id,
            from,
            to,
        });
        if from == TorrentState::Downloading
            && matches!(to, TorrentState::Finished | TorrentState::Seeding)
        {
            shared.alert(Alert::TorrentFinished { torrent: self.id });
        }
        self.announce_state(now, from, shared);
        self.create_empty_files(shared);
        self.update_all_interest(now);
        self.update_choker_mode();
        if to == TorrentState::Seeding {
            self.close_seeds(now);
        }
    }

    /// Does the work of the current state: checks files, or connects to known peers.
    fn activate(&mut self, now: Instant, shared: &mut Shared) {
        match self.state {
            TorrentState::Paused | TorrentState::Error => {}
            TorrentState::CheckingFiles => self.issue_checks(now, shared),
            _ => {
                self.create_empty_files(shared);
                self.peer_list.end_rests();
                self.connect_more(shared);
            }
        }
        self.flush(now, shared);
    }

    /// Whether peers may be connected: not paused, checking or stopped.
    fn is_active(&self) -> bool {
        matches!(
            self.state,
            TorrentState::DownloadingMetadata
                | TorrentState::Downloading
                | TorrentState::Finished
                | TorrentState::Seeding
        )
    }

    /// Whether blocks are requested now.
    fn is_downloading(&self) -> bool {
        self.state == TorrentState::Downloading && !self.upload_only && self.meta.is_some()
    }

    /// Emits [`DiskJobKind::CreateEmptyFiles`] the first time the torrent downloads, if it
    /// has empty files.
    fn create_empty_files(&mut self, shared: &mut Shared) {
        if self.state != TorrentState::Downloading || self.empty_files_created {
            return;
        }
        let Some(meta) = &self.meta else {
            return;
        };
        self.empty_files_created = true;
        let has_empty = meta
            .info
            .files()
            .files()
            .iter()
            .any(|f| f.size() == 0 && !f.is_pad());
        if has_empty {
            let id = shared.disk_job(self.id, DiskJobKind::CreateEmptyFiles);
            self.jobs.insert(id, Job::CreateFiles);
        }
    }

    /// Stops the torrent on an error: [`TorrentState::Error`], its peers disconnected.
    fn fail(&mut self, now: Instant, error: String, shared: &mut Shared) {
        if self.error.is_some() {
            return;
        }
        self.error = Some(error.clone());
        shared.alert(Alert::TorrentError {
            torrent: self.id,
            error,
        });
        if self.state != TorrentState::Paused {
            self.set_state(now, TorrentState::Error, shared);
        }
        self.disconnect_all(now, "the torrent stopped on an error", shared);
    }

    // ----- commands -----

    pub fn pause(&mut self, now: Instant, shared: &mut Shared) {
        if self.state == TorrentState::Paused {
            return;
        }
        self.set_state(now, TorrentState::Paused, shared);
        self.disconnect_all(now, "paused", shared);
    }

    pub fn resume(&mut self, now: Instant, shared: &mut Shared) {
        if self.state != TorrentState::Paused {
            return;
        }
        let next = self.natural_state();
        self.set_state(now, next, shared);
        self.activate(now, shared);
    }

    /// Closes every connection before the torrent is dropped.
    pub fn remove(&mut self, now: Instant, shared: &mut Shared) {
        self.closing = true;
        self.disconnect_all(now, "the torrent was removed", shared);
        self.jobs.clear();
    }

    pub fn connect(&mut self, now: Instant, addr: SocketAddr, shared: &mut Shared) {
        self.remember(addr, PeerSource::Manual);
        if self.is_active() {
            self.try_connect(addr, shared);
        }
        self.flush(now, shared);
    }

    pub fn set_piece_deadline(
        &mut self,
        now: Instant,
        piece: PieceIndex,
        deadline: Instant,
        shared: &mut Shared,
    ) -> Result<(), SessionError> {
        let meta = self.meta.as_mut().ok_or(SessionError::NoMetadata)?;
        if piece.0 >= meta.picker.num_pieces() {
            return Err(SessionError::OutOfRange);
        }
        meta.picker
            .set_piece_deadline(piece, deadline_millis(deadline));
        // A hungry peer may take it now, or once it is urgent.
        self.refill = true;
        self.schedule_urgency(now);
        self.flush(now, shared);
        Ok(())
    }

    pub fn reset_piece_deadline(&mut self, piece: PieceIndex) -> Result<(), SessionError> {
        let meta = self.meta.as_mut().ok_or(SessionError::NoMetadata)?;
        if piece.0 >= meta.picker.num_pieces() {
            return Err(SessionError::OutOfRange);
        }
        meta.picker.reset_piece_deadline(piece);
        Ok(())
    }

    /// The picker, if `piece` is one of the torrent's pieces.
    fn picker_for(&self, piece: PieceIndex) -> Result<&PiecePicker, SessionError> {
        let meta = self.meta.as_ref().ok_or(SessionError::NoMetadata)?;
        if piece.0 >= meta.picker.num_pieces() {
            return Err(SessionError::OutOfRange);
        }
        Ok(&meta.picker)
    }

    pub fn have_piece(&self, piece: PieceIndex) -> Result<bool, SessionError> {
        Ok(self.picker_for(piece)?.have(piece))
    }

    pub fn piece_priority(&self, piece: PieceIndex) -> Result<u8, SessionError> {
        Ok(self.picker_for(piece)?.piece_priority(piece).get())
    }

    pub fn piece_deadline(&self, piece: PieceIndex) -> Result<Option<Instant>, SessionError> {
        Ok(self
            .picker_for(piece)?
            .piece_deadline(piece)
            .map(Instant::from_millis))
    }

    pub fn set_piece_priority(
        &mut self,
        now: Instant,
        piece: PieceIndex,
        priority: u8,
        shared: &mut Shared,
    ) -> Result<(), SessionError> {
        let meta = self.meta.as_mut().ok_or(SessionError::NoMetadata)?;
        if piece.0 >= meta.picker.num_pieces() {
            return Err(SessionError::OutOfRange);
        }
        let was_wanted = wanted(&meta.picker, piece);
        meta.picker
            .set_piece_priority(piece, Priority::saturating(priority));
        self.custom_piece_priorities = true;
        let now_wanted = wanted(&meta.picker, piece);
        if was_wanted != now_wanted {
            for peer in self.peers.values_mut() {
                if let PeerHave::Pieces { bits, .. } = &peer.have {
                    if peer::bit(bits, piece) {
                        peer.wanted = if now_wanted {
                            peer.wanted + 1
                        } else {
                            peer.wanted.saturating_sub(1)
                        };
                    }
                }
            }
        }
        self.after_priority_change(now, shared);
        Ok(())
    }

    pub fn prioritize_files(
        &mut self,
        now: Instant,
        priorities: &[u8],
        shared: &mut Shared,
    ) -> Result<(), SessionError> {
        if self.meta.is_none() {
            return Err(SessionError::NoMetadata);
        }
        self.apply_file_priorities(priorities);
        self.custom_piece_priorities = false;
        self.recount_wanted();
        self.after_priority_change(now, shared);
        Ok(())
    }

    /// Sets the picker's priorities from file priorities given for every file or for the
    /// non-pad files, and remembers them per non-pad file.
    fn apply_file_priorities(&mut self, priorities: &[u8]) {
        let Some(meta) = &mut self.meta else {
            return;
        };
        let (per_file, pieces) = file_priorities(meta.info.files(), priorities);
        meta.picker.set_piece_priorities(&pieces);
        self.file_priorities = per_file;
    }

    fn after_priority_change(&mut self, now: Instant, shared: &mut Shared) {
        self.update_state(now, shared);
        self.update_all_interest(now);
        self.refill = true;
        self.flush(now, shared);
    }

    pub fn set_sequential(&mut self, sequential: bool) -> Result<(), SessionError> {
        let meta = self.meta.as_mut().ok_or(SessionError::NoMetadata)?;
        meta.picker.set_sequential(sequential);
        Ok(())
    }

    pub fn force_recheck(&mut self, now: Instant, shared: &mut Shared) -> Result<(), SessionError> {
        if self.meta.is_none() {
            return Err(SessionError::NoMetadata);
        }
        self.disconnect_all(now, "rechecking the files", shared);
        let Some(meta) = &mut self.meta else {
            return Err(SessionError::NoMetadata);
        };
        let num_pieces = meta.picker.num_pieces();
        let priorities: Vec<Priority> = (0..num_pieces)
            .map(|p| meta.picker.piece_priority(PieceIndex(p)))
            .collect();
        let sequential = meta.picker.is_sequential();
        let mut picker = PiecePicker::new(
            meta.info.total_size(),
            meta.info.piece_length(),
            shared.rng.next_u64(),
        )
        // The same arguments made the picker being replaced, so this cannot fail.
        .map_err(|_| SessionError::NoMetadata)?;
        picker.set_piece_priorities(&priorities);
        picker.set_sequential(sequential);
        meta.picker = picker;
        meta.pieces.clear_building();
        meta.checking = Some(Checking::default());
        // Checks still in flight belong to the check being replaced.
        self.jobs.retain(|_, job| !matches!(job, Job::Check(_)));
        self.hungry.clear();
        self.error = None;
        if self.state == TorrentState::Paused {
            // The check runs when the torrent resumes.
            return Ok(());
        }
        self.set_state(now, TorrentState::CheckingFiles, shared);
        self.activate(now, shared);
        Ok(())
    }

    pub fn status(&self, _now: Instant) -> TorrentStatus {
        let (num_pieces, num_have, total_wanted, total_wanted_done) = match &self.meta {
            None => (0, 0, 0, 0),
            Some(m) => {
                let (wanted, done) = m.wanted_bytes();
                (m.picker.num_pieces(), m.picker.num_have(), wanted, done)
            }
        };
        let progress = match (total_wanted, &self.meta) {
            (0, Some(_)) => 1.0,
            (0, None) => 0.0,
            (w, _) => total_wanted_done as f64 / w as f64,
        };
        let established = self.peers.values().filter(|p| p.established);
        let (mut num_peers, mut num_seeds, mut down, mut up) = (0u32, 0u32, 0u64, 0u64);
        for peer in established {
            num_peers += 1;
            num_seeds += u32::from(peer.have.is_seed(num_pieces));
            let stats = peer.connection.stats();
            down += stats.download_rate;
            up += stats.upload_rate;
        }
        TorrentStatus {
            info_hashes: self.info_hashes,
            name: self
                .meta
                .as_ref()
                .map(|m| m.info.name().to_owned())
                .or_else(|| self.display_name.clone()),
            state: self.state,
            progress,
            num_have,
            num_pieces,
            total_wanted,
            total_wanted_done,
            total_downloaded: self.totals.downloaded,
            total_uploaded: self.totals.uploaded,
            all_time_downloaded: self.totals.earlier_downloaded + self.totals.downloaded,
            all_time_uploaded: self.totals.earlier_uploaded + self.totals.uploaded,
            download_rate: down,
            upload_rate: up,
            num_peers,
            num_seeds,
            error: self.error.clone(),
        }
    }

    pub fn resume_data(&self) -> ResumeData {
        let mut data = ResumeData::new(self.info_hashes);
        data.file_priorities = self.file_priorities.clone();
        data.total_downloaded = self.totals.earlier_downloaded + self.totals.downloaded;
        data.total_uploaded = self.totals.earlier_uploaded + self.totals.uploaded;
        if let Some(meta) = &self.meta {
            // While checking, what is known to be there is not final: save nothing, so the
            // next start checks again.
            if meta.checking.is_none() {
                data.pieces = meta.picker.have_bitfield().into();
            }
            if self.custom_piece_priorities {
                data.piece_priorities = (0..meta.picker.num_pieces())
                    .map(|p| meta.picker.piece_priority(PieceIndex(p)).get())
                    .collect();
            }
            data.sequential = meta.picker.is_sequential();
            if self.from_magnet {
                data.info = Some(meta.info.info_bytes().clone());
            }
            if self.layers_from_peers {
                data.piece_layers = hashes::layers_for_resume(&meta.info);
            }
        }
        data
    }

    // ----- connections -----

    fn remember(&mut self, addr: SocketAddr, source: PeerSource) -> bool {
        self.peer_list.add(addr, source, PexFlags::NONE) == peer_list::Added::New
    }

    /// Adds addresses learnt from `source` to the peer list and connects to the best ones
    /// while there is room.
    pub fn add_peers(
        &mut self,
        now: Instant,
        addrs: impl IntoIterator<Item = SocketAddr>,
        source: PeerSource,
        shared: &mut Shared,
    ) {
        for addr in addrs {
            if !Self::is_self(addr, shared) && self.remember(addr, source) {
                self.connect_due = true;
            }
        }
        self.flush(now, shared);
    }

    /// Connects to the best candidates of the peer list while there is room.
    fn connect_more(&mut self, shared: &mut Shared) {
        self.connect_due = false;
        if !self.is_active() || self.closing {
            return;
        }
        let room = shared
            .config
            .max_connections_per_torrent
            .saturating_sub(self.addrs.len())
            .min(
                shared
                    .config
                    .max_connections
                    .saturating_sub(shared.routes.len()),
            );
        let we_seed = self.state == TorrentState::Seeding;
        // Some candidates may turn out to be refused (banned, ourselves): ask for more.
        for addr in self.peer_list.to_connect(room.saturating_mul(2), we_seed) {
            if !self.has_room(shared) {
                break;
            }
            self.try_connect(addr, shared);
        }
    }

    fn has_room(&self, shared: &Shared) -> bool {
        shared.has_room() && self.addrs.len() < shared.config.max_connections_per_torrent
    }

    /// Whether `addr` is (as far as we can tell) this session's own listening address.
    fn is_self(addr: SocketAddr, shared: &Shared) -> bool {
        shared.self_addrs.contains(&addr)
            || (addr.port() == shared.config.listen_port
                && (addr.ip().is_loopback() || addr.ip().is_unspecified()))
    }

    /// Opens a connection to `addr` unless it is banned, already connected, ourselves, or
    /// over a limit.
    fn try_connect(&mut self, addr: SocketAddr, shared: &mut Shared) {
        if self.banned.contains(&addr) {
            self.peer_list.ban(addr);
            return;
        }
        if Self::is_self(addr, shared) {
            self.peer_list.remove(&addr);
            return;
        }
        if addr.port() == 0 || self.addrs.contains(&addr) || !self.has_room(shared) {
            return;
        }
        self.peer_list.set_connected(addr);
        let conn = shared.connection_id();
        shared.routes.insert(conn, Route::Torrent(self.id));
        self.connecting.insert(conn, addr);
        self.addrs.insert(addr);
        shared.actions.push_back(Action::Connect { conn, addr });
    }

    /// Takes an incoming connection whose handshake names this torrent, or says why not.
    pub fn accept(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        addr: SocketAddr,
        shared: &mut Shared,
    ) -> Result<(), &'static str> {
        if !self.is_active() {
            return Err("the torrent is not accepting peers now");
        }
        // An incoming connection comes from a port of the peer's choosing, so a banned
        // peer is recognised by its IP alone here; the peers we dial are told apart by port.
        if self.banned.iter().any(|b| b.ip() == addr.ip()) {
            return Err("the peer is banned");
        }
        if self.addrs.contains(&addr) {
            return Err("already connected to this address");
        }
        if self.addrs.len() >= shared.config.max_connections_per_torrent {
            return Err("the torrent has as many connections as allowed");
        }
        let connection = PeerConnection::incoming(now, self.peer_params(shared));
        self.add_peer(now, conn, addr, connection);
        shared.routes.insert(conn, Route::Torrent(self.id));
        Ok(())
    }

    fn add_peer(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        addr: SocketAddr,
        connection: PeerConnection,
    ) -> PeerKey {
        self.next_key = self.next_key.wrapping_add(1);
        let key = PeerKey(self.next_key);
        self.peers
            .insert(key, Peer::new(now, conn, addr, connection));
        self.by_conn.insert(conn, key);
        self.addrs.insert(addr);
        self.touch(key);
        key
    }

    fn peer_params(&self, shared: &Shared) -> PeerParams {
        let mut params = PeerParams::new(self.info_hashes, shared.config.peer_id);
        if let Some(meta) = &self.meta {
            params.geometry = Some(meta.geometry.clone());
            params.availability = if meta.checking.is_some() || meta.picker.num_have() == 0 {
                Availability::None
            } else if meta.picker.is_seed() {
                Availability::All
            } else {
                Availability::Bitfield(meta.picker.have_bitfield().into())
            };
        }
        params.extended_handshake = self.extended_handshake(shared);
        self.dht_handshake_bits(&mut params, shared);
        params
    }

    /// Our extension handshake: `ut_metadata` always, with `metadata_size` once we have
    /// the metadata to serve.
    fn extended_handshake(&self, shared: &Shared) -> ExtendedHandshake {
        let mut handshake = ExtendedHandshake {
            client: Some(CLIENT.to_owned()),
            ..ExtendedHandshake::default()
        };
        if shared.config.listen_port != 0 {
            handshake.listen_port = Some(shared.config.listen_port);
        }
        handshake
            .extensions
            .insert(UT_METADATA.to_owned(), metadata::UT_METADATA_ID);
        // A private torrent withdraws `ut_pex` (id 0) in case a magnet link offered it.
        let pex_id = if self.pex_allowed() {
            pex::UT_PEX_ID
        } else {
            0
        };
        handshake.extensions.insert(UT_PEX.to_owned(), pex_id);
        handshake
            .extensions
            .insert(LT_DONTHAVE.to_owned(), donthave::LT_DONTHAVE_ID);
        handshake.metadata_size = self
            .meta
            .as_ref()
            .and_then(|m| u32::try_from(m.info.info_bytes().len()).ok())
            .filter(|&size| size <= MAX_METADATA_SIZE);
        handshake
    }

    /// The identifier to send in our handshakes: the v1 info-hash, or a v2 torrent's
    /// truncated v2 one.
    fn wire_info_hash(&self) -> InfoHashV1 {
        self.info_hashes.best_v1_identifier()
    }

    pub fn handle_connected(&mut self, now: Instant, conn: ConnectionId, shared: &mut Shared) {
        let Some(addr) = self.connecting.remove(&conn) else {
            return;
        };
        let connection =
            PeerConnection::outgoing(now, self.wire_info_hash(), self.peer_params(shared));
        // `add_peer` inserts the address again.
        self.addrs.remove(&addr);
        self.add_peer(now, conn, addr, connection);
        self.flush(now, shared);
    }

    pub fn handle_connect_failed(&mut self, now: Instant, conn: ConnectionId, shared: &mut Shared) {
        let Some(addr) = self.connecting.remove(&conn) else {
            return;
        };
        self.addrs.remove(&addr);
        self.peer_list.connect_failed(now, addr);
        self.connect_due = true;
        shared.routes.remove(&conn);
        shared.alert(Alert::PeerDisconnected {
            torrent: Some(self.id),
            conn,
            addr,
            reason: "the connection could not be established".to_owned(),
        });
        // Another candidate takes the slot.
        self.flush(now, shared);
    }

    pub fn handle_received(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        buf: &mut BytesMut,
        shared: &mut Shared,
    ) {
        let Some(&key) = self.by_conn.get(&conn) else {
            return;
        };
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.connection.handle_received(now, buf);
        }
        self.touch(key);
        self.flush(now, shared);
    }

    pub fn handle_sent(
        &mut self,
        now: Instant,
        conn: ConnectionId,
        bytes: usize,
        shared: &mut Shared,
    ) {
        let Some(&key) = self.by_conn.get(&conn) else {
            return;
        };
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.unsent = peer.unsent.saturating_sub(bytes);
        }
        self.pump_uploads(key, shared);
        self.flush(now, shared);
    }

    pub fn handle_closed(&mut self, now: Instant, conn: ConnectionId, shared: &mut Shared) {
        if self.connecting.contains_key(&conn) {
            self.handle_connect_failed(now, conn, shared);
            return;
        }
        let Some(&key) = self.by_conn.get(&conn) else {
            return;
        };
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.transport_closed = true;
            peer.connection.close(now, CloseReason::Disconnected);
        }
        self.touch(key);
        self.flush(now, shared);
    }

    /// Closes one peer's connection (it is removed at the next flush).
    fn close_peer(&mut self, now: Instant, key: PeerKey, reason: &'static str) {
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.connection.close(now, CloseReason::Local(reason));
        }
        self.touch(key);
    }

    /// Closes every connection, pending ones included.
    fn disconnect_all(&mut self, now: Instant, reason: &'static str, shared: &mut Shared) {
        let closing = std::mem::replace(&mut self.closing, true);
        for (conn, addr) in std::mem::take(&mut self.connecting) {
            self.addrs.remove(&addr);
            self.peer_list.disconnected(now, addr, false);
            shared.routes.remove(&conn);
            shared.actions.push_back(Action::Close { conn });
            shared.alert(Alert::PeerDisconnected {
                torrent: Some(self.id),
                conn,
                addr,
                reason: format!("closed locally: {reason}"),
            });
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.close_peer(now, key, reason);
        }
        self.flush(now, shared);
        self.closing = closing;
    }

    /// Once we seed, peers that seed too have nothing to exchange with us.
    fn close_seeds(&mut self, now: Instant) {
        let Some(meta) = &self.meta else {
            return;
        };
        let n = meta.picker.num_pieces();
        let seeds: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.have.is_seed(n))
            .map(|(k, _)| *k)
            .collect();
        for key in seeds {
            self.close_peer(now, key, "both sides are seeds");
        }
    }

    // ----- disk -----

    pub fn handle_disk(&mut self, now: Instant, completion: DiskCompletion, shared: &mut Shared) {
        let Some(job) = self.jobs.remove(&completion.id) else {
            return;
        };
        match (job, completion.result) {
            (Job::Write(piece), DiskResult::PieceWritten { passed, .. }) => {
                self.on_written(now, piece, passed, shared);
            }
            (Job::Write(piece), result) => {
                if let Some(meta) = &mut self.meta {
                    meta.pieces.written(piece);
                    meta.picker.piece_failed(piece);
                }
                let error = match result {
                    DiskResult::Failed { error } => error,
                    other => format!("unexpected answer to a piece write: {other:?}"),
                };
                self.fail(
                    now,
                    format!("writing piece {piece} failed: {error}"),
                    shared,
                );
            }
            (Job::Read { key, run }, result) => self.on_read(now, key, run, result, shared),
            (Job::Check(piece), DiskResult::Checked { passed, .. }) => {
                self.on_checked(now, piece, passed, shared);
            }
            (Job::Check(piece), result) => {
                let error = match result {
                    DiskResult::Failed { error } => error,
                    other => format!("unexpected answer to a piece check: {other:?}"),
                };
                self.fail(
                    now,
                    format!("checking piece {piece} failed: {error}"),
                    shared,
                );
            }
            (Job::CreateFiles, DiskResult::Failed { error }) => {
                self.fail(
                    now,
                    format!("creating the empty files failed: {error}"),
                    shared,
                );
            }
            (Job::CreateFiles, _) => {}
            (Job::Leaves { key, request }, result) => {
                self.on_leaves_read(now, key, request, result);
            }
        }
        self.flush(now, shared);
    }

    // ----- time -----

    pub fn poll_timeout(&self) -> Option<Instant> {
        let peers = self
            .peers
            .values()
            .filter_map(|p| p.connection.poll_timeout())
            .min();
        let rechoke = (!self.peers.is_empty()).then(|| self.choker.next_rechoke());
        let fetch = self
            .meta
            .is_none()
            .then(|| self.fetch.poll_timeout())
            .flatten();
        let retry = self
            .is_active()
            .then(|| self.peer_list.poll_timeout())
            .flatten();
        let hashes = self.hashes_poll_timeout();
        let blame = self.blame_poll_timeout();
        [
            peers,
            rechoke,
            self.totals.next_report,
            fetch,
            retry,
            self.pex_poll_timeout(),
            self.trackers_poll_timeout(),
            hashes,
            blame,
            self.next_urgency,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn handle_timeout(&mut self, now: Instant, shared: &mut Shared) {
        let due: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.connection.poll_timeout().is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            if let Some(peer) = self.peers.get_mut(&key) {
                peer.connection.handle_timeout(now);
            }
            self.touch(key);
        }
        if self.totals.next_report.is_some_and(|t| now >= t) {
            self.report_stats(now, shared);
        }
        if self.meta.is_none() && self.fetch.poll_timeout().is_some_and(|t| t <= now) {
            self.fetch.handle_timeout(now);
            self.request_metadata(now);
        }
        self.trackers_timeout(now, shared);
        if self.is_active() && self.peer_list.handle_timeout(now) {
            self.connect_due = true;
        }
        if self.next_urgency.is_some_and(|t| t <= now) {
            self.refill = true;
            self.schedule_urgency(now);
        }
        self.pex_handle_timeout(now);
        self.hashes_handle_timeout(now);
        if self.blame_poll_timeout().is_some_and(|t| t <= now) {
            self.blame_handle_timeout(now, shared);
        }
        self.flush(now, shared);
    }

    fn report_stats(&mut self, now: Instant, shared: &mut Shared) {
        let t = &mut self.totals;
        let downloaded = t.downloaded - t.reported_downloaded;
        let uploaded = t.uploaded - t.reported_uploaded;
        t.reported_downloaded = t.downloaded;
        t.reported_uploaded = t.uploaded;
        if downloaded == 0 && uploaded == 0 {
            t.next_report = None;
            return;
        }
        t.next_report = Some(now + STATS_INTERVAL);
        shared.alert(Alert::Stats {
            torrent: self.id,
            downloaded,
            uploaded,
        });
    }

    // ----- draining peers -----

    /// Puts a peer on the list of peers to drain.
    fn touch(&mut self, key: PeerKey) {
        if let Some(peer) = self.peers.get_mut(&key) {
            if !peer.dirty {
                peer.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// Acts on every event of the touched peers, rechokes if due, and queues the peers'
    /// bytes, until nothing is left to do; then dials candidates if slots were freed or
    /// candidates added.
    fn flush(&mut self, now: Instant, shared: &mut Shared) {
        loop {
            while let Some(key) = self.dirty.pop() {
                self.drain_peer(now, key, shared);
            }
            if self.rechoke_due(now) {
                // A rechoke moves the next one past `now`; the peers it touched are
                // drained on the next turn.
                self.rechoke(now);
                continue;
            }
            self.request_hashes(now);
            if !self.dirty.is_empty() {
                continue;
            }
            if !std::mem::take(&mut self.refill) {
                break;
            }
            self.refill_hungry(now, shared);
            if self.dirty.is_empty() {
                break;
            }
        }
        if self.connect_due {
            self.connect_more(shared);
        }
    }

    fn drain_peer(&mut self, now: Instant, key: PeerKey, shared: &mut Shared) {
        loop {
            let Some(peer) = self.peers.get_mut(&key) else {
                return;
            };
            peer.dirty = false;
            let Some(event) = peer.connection.poll_event() else {
                break;
            };
            self.on_event(now, key, event, shared);
        }
        if let Some(peer) = self.peers.get_mut(&key) {
            while let Some(data) = peer.connection.poll_transmit() {
                peer.unsent += data.len();
                shared.transmits.push_back(Transmit {
                    conn: peer.conn,
                    data,
                });
            }
        }
    }

    fn on_event(&mut self, now: Instant, key: PeerKey, event: PeerEvent, shared: &mut Shared) {
        match event {
            PeerEvent::HandshakeDone { peer_id, .. } => {
                self.on_handshake(now, key, peer_id, shared)
            }
            PeerEvent::Bitfield(bits) => {
                self.on_bitfield(now, key, &bits);
                self.offer_allowed_fast(now, key, shared);
            }
            PeerEvent::HaveAll => self.on_have_all(now, key),
            PeerEvent::Have(piece) => {
                self.on_have(now, key, piece);
                self.offer_allowed_fast(now, key, shared);
            }
            PeerEvent::HaveNone => self.offer_allowed_fast(now, key, shared),
            PeerEvent::Suggest(_)
            | PeerEvent::AllowedFast(_)
            | PeerEvent::Choked
            | PeerEvent::Unchoked
            | PeerEvent::Snubbed
            | PeerEvent::Unsnubbed => {}
            PeerEvent::Interested => self.on_peer_interested(key),
            PeerEvent::NotInterested => self.on_peer_not_interested(key),
            PeerEvent::WantBlocks {
                count,
                allowed_fast_only,
            } => self.request_blocks(now, key, count, allowed_fast_only, shared),
            PeerEvent::BlockReceived(block) => self.on_block(now, key, block, shared),
            PeerEvent::RequestReturned { request, .. } => self.on_request_gone(key, request),
            PeerEvent::RequestTimedOut(request) => {
                if let Some(peer) = self.peers.get_mut(&key) {
                    peer.connection.cancel(now, request);
                }
                self.on_request_gone(key, request);
            }
            PeerEvent::UploadRequested(request) => {
                self.on_upload_request(now, key, request, shared)
            }
            PeerEvent::UploadCancelled(request) => self.on_upload_cancelled(key, request),
            PeerEvent::ExtendedHandshake(_) => {
                self.learn_listen_addr(key, shared);
                self.on_extended_handshake(now, key);
                self.pex_on_extended_handshake(now, key);
            }
            PeerEvent::Extended { id, payload } if id == metadata::UT_METADATA_ID => {
                self.on_metadata_message(now, key, &payload, shared)
            }
            PeerEvent::Extended { id, payload } if id == pex::UT_PEX_ID => {
                self.on_pex_message(now, key, &payload, shared)
            }
            PeerEvent::Extended { id, payload } if id == donthave::LT_DONTHAVE_ID => {
                self.on_donthave_message(now, key, &payload)
            }
            PeerEvent::Port(port) => self.on_dht_port(now, key, port, shared),
            PeerEvent::Extended { .. } => {}
            PeerEvent::Hashes(hashes) => self.on_hashes(now, key, &hashes, shared),
            PeerEvent::HashReject(request) => self.on_hash_reject(now, key, &request, shared),
            PeerEvent::HashRequest(request) => self.on_hash_request(now, key, request, shared),
            PeerEvent::Closed(reason) => {
                self.on_closed(now, key, reason, shared);
                self.fetch.remove_source(key);
                self.request_metadata(now);
            }
        }
    }

    fn on_handshake(
        &mut self,
        now: Instant,
        key: PeerKey,
        peer_id: crate::peer_id::PeerId,
        shared: &mut Shared,
    ) {
        // Two connections to one peer (both sides dialled): both sides keep the one opened
        // by the peer with the lower id, so they agree.
        let duplicate = self
            .peers
            .iter()
            .find(|(k, p)| **k != key && p.established && p.connection.peer_id() == Some(peer_id));
        if let Some((&other, _)) = duplicate {
            let ours_first = shared.config.peer_id < peer_id;
            let this_outgoing = self
                .peers
                .get(&key)
                .is_some_and(|p| p.connection.direction() == crate::peer::Direction::Outgoing);
            let drop = if this_outgoing == ours_first {
                other
            } else {
                key
            };
            self.close_peer(now, drop, "duplicate connection to the same peer");
            if drop == key {
                return;
            }
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.established = true;
        if let Some(listen) = peer.listen_addr {
            self.peer_list.handshake_done(listen);
        }
        let sources = peer
            .listen_addr
            .and_then(|a| self.peer_list.get(&a))
            .map_or(PeerSources::NONE, |c| c.sources);
        let client = peer_id.client().map(|c| {
            if c.version.is_empty() {
                c.name.to_owned()
            } else {
                format!("{} {}", c.name, c.version)
            }
        });
        shared.alert(Alert::PeerConnected {
            torrent: self.id,
            conn: peer.conn,
            addr: peer.addr,
            client,
            sources,
        });
        self.dht_send_port(now, key, shared);
    }

    fn on_closed(&mut self, now: Instant, key: PeerKey, reason: CloseReason, shared: &mut Shared) {
        let Some(peer) = self.peers.remove(&key) else {
            return;
        };
        self.forget_connection(now, &peer);
        self.by_conn.remove(&peer.conn);
        self.addrs.remove(&peer.addr);
        self.hungry.remove(&key);
        self.choker.peer_removed(key);
        self.hashes_peer_gone(key);
        shared.routes.remove(&peer.conn);
        if let Some(meta) = &mut self.meta {
            meta.picker.abort_peer(key);
            match &peer.have {
                PeerHave::Nothing => {}
                PeerHave::All => meta.picker.peer_lost_all(),
                PeerHave::Pieces { bits, .. } => meta.picker.peer_lost_bitfield(bits),
            }
            let building: Vec<PieceIndex> = meta.pieces.building().collect();
            for piece in building {
                release_if_untouched(meta, piece);
            }
        }
        if reason == CloseReason::ConnectedToSelf {
            self.found_self(&peer, shared);
        }
        if !peer.transport_closed {
            shared.actions.push_back(Action::Close { conn: peer.conn });
        }
        shared.alert(Alert::PeerDisconnected {
            torrent: Some(self.id),
            conn: peer.conn,
            addr: peer.addr,
            reason: reason.to_string(),
        });
        self.refill = true;
    }
}

impl Torrent {
    /// A peer's extension handshake arrived: a peer that dialled us may have told its
    /// listen port, which makes it a candidate of its own (marked connected); a peer we
    /// dialled may have told us our address, which ranks the candidates (BEP40).
    fn learn_listen_addr(&mut self, key: PeerKey, shared: &Shared) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(hs) = peer.connection.remote_extensions() else {
            return;
        };
        if peer.connection.direction() == crate::peer::Direction::Outgoing {
            if let Some(ip) = hs.your_ip {
                let port = shared.config.listen_port;
                self.peer_list.set_our_address(SocketAddr::new(ip, port));
            }
            return;
        }
        let listen = hs
            .listen_port
            .filter(|&p| p != 0)
            .map(|p| SocketAddr::new(peer.addr.ip(), p));
        if peer.listen_addr.is_some() || listen.is_none() {
            return;
        }
        peer.listen_addr = listen;
        if let Some(listen) = listen {
            self.peer_list
                .add(listen, PeerSource::Incoming, PexFlags::NONE);
            self.peer_list.set_connected(listen);
            self.peer_list.handshake_done(listen);
        }
    }

    /// A peer's connection is gone: its candidate may be dialled again after a while.
    fn forget_connection(&mut self, now: Instant, peer: &Peer) {
        let num_pieces = self.meta.as_ref().map_or(0, |m| m.picker.num_pieces());
        if let Some(listen) = peer.listen_addr {
            self.peer_list
                .disconnected(now, listen, peer.have.is_seed(num_pieces));
        }
        self.connect_due = true;
    }

    /// A connection turned out to go from us to us. Outgoing, its address is ours. Incoming
    /// (the side that sees the handshake first), the outgoing end is one of our connections
    /// still handshaking with a peer at the same IP address: those addresses are ours.
    fn found_self(&mut self, peer: &Peer, shared: &mut Shared) {
        let mut ours = Vec::new();
        if peer.connection.direction() == crate::peer::Direction::Outgoing {
            ours.push(peer.addr);
        } else {
            ours.extend(
                self.peers
                    .values()
                    .filter(|p| {
                        !p.established
                            && p.addr.ip() == peer.addr.ip()
                            && p.connection.direction() == crate::peer::Direction::Outgoing
                    })
                    .map(|p| p.addr),
            );
        }
        for addr in ours {
            shared.self_addrs.insert(addr);
            self.peer_list.remove(&addr);
        }
    }
}

/// What `piece` must hash to: its full check, or for a hybrid torrent whose v2 piece layer
/// is missing, the v1 hash alone.
fn piece_check(info: &TorrentInfo, piece: PieceIndex) -> Option<PieceCheck> {
    PieceCheck::for_piece(info, piece).or_else(|| {
        info.v1_piece_hash(piece).map(|v1| PieceCheck {
            v1: Some(v1),
            v2: None,
        })
    })
}

/// Whether we want `piece` and lack it.
fn wanted(picker: &PiecePicker, piece: PieceIndex) -> bool {
    picker.piece_priority(piece).is_wanted() && !picker.have(piece)
}

/// Drops `piece`'s buffer if nothing of it is requested or received any more.
fn release_if_untouched(meta: &mut Metadata, piece: PieceIndex) {
    if meta.pieces.received(piece) != 0 {
        return;
    }
    let blocks = meta.picker.blocks_in_piece(piece);
    let untouched = (0..blocks).all(|b| {
        meta.picker
            .block_status(crate::picker::BlockRef::new(piece, b))
            == Some(crate::picker::BlockStatus::Open)
    });
    if untouched {
        meta.pieces.drop_if_empty(piece);
    }
}

/// The user's file priorities, given for every file or for the non-pad files only, as one
/// priority per non-pad file (missing ones 4, over 7 taken as 7) and the piece priorities
/// they give.
fn file_priorities(files: &FileStorage, priorities: &[u8]) -> (Vec<u8>, Vec<Priority>) {
    let non_pad: Vec<FileIndex> = files
        .iter()
        .filter(|(_, f)| !f.is_pad())
        .map(|(i, _)| i)
        .collect();
    let covers_all = priorities.len() == files.num_files() && files.num_files() != non_pad.len();
    let per_file: Vec<u8> = non_pad
        .iter()
        .enumerate()
        .map(|(i, file)| {
            let at = if covers_all { file.get() } else { i };
            priorities
                .get(at)
                .map_or(Priority::DEFAULT, |&p| Priority::saturating(p))
                .get()
        })
        .collect();
    let ranges = non_pad
        .iter()
        .zip(&per_file)
        .filter_map(|(file, &p)| Some((files.file_piece_range(*file)?, Priority::saturating(p))));
    let pieces = piece_priorities_from_files(files.num_pieces(), ranges);
    (per_file, pieces)
}

/// What a test sees of uploading to one established peer.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PeerUpload {
    pub addr: SocketAddr,
    /// We choke it.
    pub choked: bool,
    /// It is interested in our pieces.
    pub interested: bool,
    /// Piece data sent to it.
    pub uploaded: u64,
}

#[cfg(test)]
impl Torrent {
    /// How many peers we know to have `piece`.
    pub fn availability(&self, piece: PieceIndex) -> Option<u32> {
        self.meta.as_ref().map(|m| m.picker.availability(piece))
    }

    /// How the peer list learnt `addr`, if it holds it.
    pub fn candidate_sources(&self, addr: SocketAddr) -> Option<PeerSources> {
        self.peer_list.get(&addr).map(|c| c.sources)
    }

    /// The id an established peer at `ip` gave extension `name` in its handshake's `m`
    /// (0: withdrawn).
    pub fn peer_extension_id(&self, ip: core::net::IpAddr, name: &str) -> Option<u8> {
        self.peers
            .values()
            .filter(|p| p.established && p.addr.ip() == ip)
            .find_map(|p| {
                p.connection
                    .remote_extensions()?
                    .extensions
                    .get(name)
                    .copied()
            })
    }

    /// What peer exchange said of `addr`, if the peer list holds it.
    pub fn candidate_flags(&self, addr: SocketAddr) -> Option<PexFlags> {
        self.peer_list.get(&addr).map(|c| c.flags)
    }

    /// [`Metadata::wanted_bytes`] the slow way, piece by piece: (wanted, done).
    pub fn wanted_bytes_by_scan(&self) -> (u64, u64) {
        let Some(m) = &self.meta else {
            return (0, 0);
        };
        let (mut wanted, mut done) = (0, 0);
        for p in 0..m.picker.num_pieces() {
            let piece = PieceIndex(p);
            if m.picker.piece_priority(piece).is_wanted() {
                let pad = m.pad_bytes.get(&p).copied().unwrap_or(0);
                let size = u64::from(m.picker.piece_len(piece) - pad);
                wanted += size;
                done += if m.picker.have(piece) { size } else { 0 };
            }
        }
        (wanted, done)
    }

    /// Bytes of the pieces held in memory.
    pub fn piece_memory(&self) -> u64 {
        self.meta.as_ref().map_or(0, |m| m.pieces.bytes())
    }

    /// The established peers, as uploading to them stands.
    pub fn peer_uploads(&self) -> Vec<PeerUpload> {
        self.peers
            .values()
            .filter(|p| p.established)
            .map(|p| PeerUpload {
                addr: p.addr,
                choked: p.connection.am_choking(),
                interested: p.connection.peer_interested(),
                uploaded: p.connection.stats().payload_uploaded,
            })
            .collect()
    }
}

/// Calls `f` with every piece below `num_pieces` set in a BEP3 bitfield (for tests).
#[cfg(test)]
pub(super) fn for_each_piece_of(bits: &[u8], num_pieces: u32, f: impl FnMut(PieceIndex)) {
    peer::for_each_piece(bits, num_pieces, f);
}
