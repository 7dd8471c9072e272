//! The metadata exchange (BEP9, `ut_metadata`): fetching a magnet link's info dictionary
//! from peers 16 KiB at a time, and serving ours.
//!
//! [`MetadataFetch`] is the bookkeeping of a fetch: which peers offer metadata of which
//! size, which piece is asked of which peer and until when, and the pieces received. It
//! sends nothing itself; the torrent asks it what to request
//! ([`MetadataFetch::next_requests`]) and feeds it the answers. The info dictionary is
//! assembled at the size most peers agree on, each piece from one peer at a time, and
//! checked against the info-hashes of the magnet link: a SHA-1 for a v1 hash, a SHA-256 for
//! a v2 one (both for a hybrid link). On a mismatch every piece is dropped. If one peer
//! sent them all, it is named, to be disconnected; if several did, the culprit is not
//! known, and from then on the metadata is fetched from one peer at a time, so the next
//! mismatch names it.

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use core::time::Duration;

use std::sync::Arc;

use super::peer::PeerHave;
use super::{Metadata, Shared, Torrent};
use crate::metainfo::TorrentInfo;
use crate::picker::PeerKey;
use crate::session::Alert;
use crate::time::Instant;
use crate::wire::extension::{MetadataMessage, MetadataPiece, MAX_METADATA_SIZE, UT_METADATA};
use crate::{InfoHashV1, InfoHashV2, InfoHashes};

/// The id we assign to `ut_metadata` in our extension handshake's `m`.
pub(super) const UT_METADATA_ID: u8 = 2;

/// How many metadata requests one peer has outstanding at most.
const REQUESTS_PER_PEER: usize = 2;

/// How long a peer has to answer a metadata request before it is asked of another.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a peer that rejected a request (or let one time out) is left alone.
pub(super) const REST_AFTER_REFUSAL: Duration = Duration::from_secs(30);

/// How many `ut_metadata` requests we serve on one connection: enough to fetch the
/// metadata a few times over, no more.
pub(super) fn max_served(metadata_size: u32) -> u32 {
    MetadataPiece::count(metadata_size)
        .saturating_mul(3)
        .saturating_add(8)
}

/// The state of one metadata piece.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Slot {
    /// Not asked of anyone.
    Missing,
    /// Asked of `peer`, which has until `deadline` to answer.
    Requested { peer: PeerKey, deadline: Instant },
    /// Received from `from`.
    Received { from: PeerKey, data: Bytes },
}

/// A peer offering metadata.
#[derive(Debug, Clone)]
struct Source {
    /// The metadata size it announced.
    size: u32,
    /// Its requests not answered yet.
    outstanding: usize,
    /// It is not asked again before this (it refused, or was too slow).
    resting_until: Option<Instant>,
}

/// What a `data` message did to the fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Received {
    /// Stored; more pieces are missing.
    Stored,
    /// Not a piece we asked that peer for (or of another size): ignored.
    Unexpected,
    /// The last piece: the info dictionary, verified against the info-hashes.
    Complete(Bytes),
    /// The last piece, but the whole does not hash to the info-hashes: every piece was
    /// dropped. If one peer sent them all, it is named (and no longer asked).
    HashMismatch(Option<PeerKey>),
}

/// The bookkeeping of a metadata fetch; see the [module documentation](self).
#[derive(Debug, Default)]
pub(super) struct MetadataFetch {
    sources: BTreeMap<PeerKey, Source>,
    /// The size being assembled, once a peer offered one.
    size: Option<u32>,
    /// One per piece of `size`.
    slots: Vec<Slot>,
    /// After a mismatch of pieces from several peers: all pieces are asked of this one
    /// peer (chosen again when it leaves or rests).
    one_at_a_time: bool,
    solo: Option<PeerKey>,
}

impl MetadataFetch {
    /// A peer offers metadata of `size` bytes (from its extension handshake). Sizes of 0
    /// or over [`MAX_METADATA_SIZE`] are not taken.
    pub fn add_source(&mut self, key: PeerKey, size: u32) {
        if size == 0 || size > MAX_METADATA_SIZE {
            self.remove_source(key);
            return;
        }
        match self.sources.get_mut(&key) {
            Some(source) if source.size == size => return,
            Some(_) => self.remove_source(key),
            None => {}
        }
        self.sources.insert(
            key,
            Source {
                size,
                outstanding: 0,
                resting_until: None,
            },
        );
        self.choose_size();
    }

    /// A peer is gone or no longer offers metadata: what it was asked is asked elsewhere.
    pub fn remove_source(&mut self, key: PeerKey) {
        if self.sources.remove(&key).is_none() {
            return;
        }
        for slot in &mut self.slots {
            if matches!(slot, Slot::Requested { peer, .. } if *peer == key) {
                *slot = Slot::Missing;
            }
        }
        self.choose_size();
    }

    /// How many peers offer metadata.
    #[cfg(test)]
    pub fn num_sources(&self) -> usize {
        self.sources.len()
    }

    /// While nothing is received or asked, assembles at the size most peers announce
    /// (ties to the smaller).
    fn choose_size(&mut self) {
        let busy = self.slots.iter().any(|s| !matches!(s, Slot::Missing));
        if busy {
            return;
        }
        let mut votes: BTreeMap<u32, usize> = BTreeMap::new();
        for source in self.sources.values() {
            *votes.entry(source.size).or_default() += 1;
        }
        let best = votes
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(&size, _)| size);
        if best != self.size {
            self.size = best;
            let count = best.map_or(0, MetadataPiece::count);
            self.slots = vec![Slot::Missing; count as usize];
        }
    }

    /// Picks requests to send now: each missing piece goes to the peer of the right size
    /// with the fewest requests outstanding, up to [`REQUESTS_PER_PEER`] each. The pieces
    /// are marked as asked.
    pub fn next_requests(&mut self, now: Instant) -> Vec<(PeerKey, MetadataPiece)> {
        let Some(size) = self.size else {
            return Vec::new();
        };
        if self.one_at_a_time {
            let usable = |s: &Source| s.size == size && s.resting_until.is_none_or(|t| t <= now);
            if !self
                .solo
                .and_then(|k| self.sources.get(&k))
                .is_some_and(usable)
            {
                self.solo = self
                    .sources
                    .iter()
                    .find(|(_, s)| usable(s))
                    .map(|(&k, _)| k);
            }
        }
        let solo = self.solo.filter(|_| self.one_at_a_time);
        let mut out = Vec::new();
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if *slot != Slot::Missing {
                continue;
            }
            let pick = self
                .sources
                .iter_mut()
                .filter(|(k, s)| {
                    solo.is_none_or(|solo| solo == **k)
                        && s.size == size
                        && s.outstanding < REQUESTS_PER_PEER
                        && s.resting_until.is_none_or(|t| t <= now)
                })
                .min_by_key(|(_, s)| s.outstanding);
            let Some((&key, source)) = pick else {
                break;
            };
            source.outstanding += 1;
            source.resting_until = None;
            *slot = Slot::Requested {
                peer: key,
                deadline: now + REQUEST_TIMEOUT,
            };
            // `slots` has one entry per piece of a size below 2^32, so the index fits.
            out.push((key, MetadataPiece(index as u32)));
        }
        out
    }

    /// A `data` message from `key`. When it completes the metadata, the whole is checked
    /// against `info_hashes`.
    pub fn on_data(
        &mut self,
        key: PeerKey,
        piece: MetadataPiece,
        total_size: u32,
        data: Bytes,
        info_hashes: &InfoHashes,
    ) -> Received {
        if self.size != Some(total_size) {
            return Received::Unexpected;
        }
        let Some(slot) = self.slots.get_mut(piece.0 as usize) else {
            return Received::Unexpected;
        };
        if !matches!(slot, Slot::Requested { peer, .. } if *peer == key) {
            return Received::Unexpected;
        }
        *slot = Slot::Received { from: key, data };
        if let Some(source) = self.sources.get_mut(&key) {
            source.outstanding = source.outstanding.saturating_sub(1);
        }
        if !self
            .slots
            .iter()
            .all(|s| matches!(s, Slot::Received { .. }))
        {
            return Received::Stored;
        }
        let mut whole = BytesMut::with_capacity(total_size as usize);
        let mut senders = Vec::new();
        for slot in std::mem::take(&mut self.slots) {
            if let Slot::Received { from, data } = slot {
                whole.extend_from_slice(&data);
                if !senders.contains(&from) {
                    senders.push(from);
                }
            }
        }
        let whole = whole.freeze();
        if matches_info_hashes(&whole, info_hashes) {
            self.sources.clear();
            self.size = None;
            return Received::Complete(whole);
        }
        let culprit = match senders.as_slice() {
            [only] => {
                self.sources.remove(only);
                Some(*only)
            }
            _ => None,
        };
        self.one_at_a_time = true;
        self.solo = None;
        self.size = None;
        self.choose_size();
        Received::HashMismatch(culprit)
    }

    /// `key` rejected a request: the piece is asked elsewhere, and the peer rests.
    pub fn on_reject(&mut self, now: Instant, key: PeerKey, piece: MetadataPiece) {
        let Some(slot) = self.slots.get_mut(piece.0 as usize) else {
            return;
        };
        if !matches!(slot, Slot::Requested { peer, .. } if *peer == key) {
            return;
        }
        *slot = Slot::Missing;
        if let Some(source) = self.sources.get_mut(&key) {
            source.outstanding = source.outstanding.saturating_sub(1);
            source.resting_until = Some(now + REST_AFTER_REFUSAL);
        }
    }

    /// Requests past their deadline are taken back (the peers rest), and rests that are
    /// over end.
    pub fn handle_timeout(&mut self, now: Instant) {
        for slot in &mut self.slots {
            if let Slot::Requested { peer, deadline } = *slot {
                if deadline <= now {
                    *slot = Slot::Missing;
                    if let Some(source) = self.sources.get_mut(&peer) {
                        source.outstanding = source.outstanding.saturating_sub(1);
                        source.resting_until = Some(now + REST_AFTER_REFUSAL);
                    }
                }
            }
        }
        for source in self.sources.values_mut() {
            if source.resting_until.is_some_and(|t| t <= now) {
                source.resting_until = None;
            }
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadlines = self.slots.iter().filter_map(|s| match s {
            Slot::Requested { deadline, .. } => Some(*deadline),
            _ => None,
        });
        let rests = self.sources.values().filter_map(|s| s.resting_until);
        deadlines.chain(rests).min()
    }
}

/// Whether `info` hashes to every info-hash given: SHA-1 for v1, SHA-256 for v2.
pub(super) fn matches_info_hashes(info: &[u8], info_hashes: &InfoHashes) -> bool {
    let v1 = info_hashes
        .get_v1()
        .is_none_or(|v1| InfoHashV1::of_info(info) == v1);
    let v2 = info_hashes
        .get_v2()
        .is_none_or(|v2| InfoHashV2::of_info(info) == v2);
    v1 && v2
}

impl Torrent {
    /// The peer's extension handshake arrived (or changed): while we lack the metadata,
    /// it becomes a source if it offers `ut_metadata` with a size we accept.
    pub(super) fn on_extended_handshake(&mut self, now: Instant, key: PeerKey) {
        if self.meta.is_some() {
            return;
        }
        let Some(peer) = self.peers.get(&key) else {
            return;
        };
        let offered = peer
            .connection
            .remote_extensions()
            .filter(|hs| hs.extension_id(UT_METADATA).is_some())
            .and_then(|hs| hs.metadata_size);
        match offered {
            Some(size) => self.fetch.add_source(key, size),
            None => self.fetch.remove_source(key),
        }
        self.request_metadata(now);
    }

    /// Sends the metadata requests the fetch picks, while the torrent lacks its metadata
    /// and talks to peers.
    pub(super) fn request_metadata(&mut self, now: Instant) {
        if self.meta.is_some() || !self.is_active() {
            return;
        }
        loop {
            let requests = self.fetch.next_requests(now);
            if requests.is_empty() {
                return;
            }
            let mut failed = false;
            for (key, piece) in requests {
                let payload = MetadataMessage::Request { piece }.to_bytes();
                let sent = self.peers.get_mut(&key).is_some_and(|p| {
                    p.connection
                        .send_extended(now, UT_METADATA, payload)
                        .is_ok()
                });
                if sent {
                    self.touch(key);
                } else {
                    // Its piece goes back to be asked of another peer.
                    self.fetch.remove_source(key);
                    failed = true;
                }
            }
            if !failed {
                return;
            }
        }
    }

    /// A `ut_metadata` message from a peer.
    pub(super) fn on_metadata_message(
        &mut self,
        now: Instant,
        key: PeerKey,
        payload: &Bytes,
        shared: &mut Shared,
    ) {
        let message = match MetadataMessage::parse(payload) {
            Ok(message) => message,
            Err(e) if e.is_ignorable() => return,
            Err(_) => {
                self.fetch.remove_source(key);
                self.close_peer(now, key, "sent an invalid ut_metadata message");
                self.request_metadata(now);
                return;
            }
        };
        match message {
            MetadataMessage::Request { piece } => self.serve_metadata(now, key, piece),
            MetadataMessage::Reject { piece } => {
                if self.meta.is_none() {
                    self.fetch.on_reject(now, key, piece);
                    self.request_metadata(now);
                }
            }
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => {
                if self.meta.is_some() {
                    return;
                }
                match self
                    .fetch
                    .on_data(key, piece, total_size, data, &self.info_hashes)
                {
                    Received::Stored | Received::Unexpected => self.request_metadata(now),
                    Received::Complete(info) => self.metadata_received(now, info, shared),
                    Received::HashMismatch(culprit) => {
                        if let Some(culprit) = culprit {
                            if let Some(peer) = self.peers.get(&culprit) {
                                self.banned.insert(peer.addr);
                            }
                            self.close_peer(
                                now,
                                culprit,
                                "sent metadata that does not match the info-hash",
                            );
                        }
                        self.request_metadata(now);
                    }
                }
            }
        }
    }

    /// Answers a metadata request: the piece if we have the metadata and the peer has not
    /// asked too much, a reject otherwise.
    fn serve_metadata(&mut self, now: Instant, key: PeerKey, piece: MetadataPiece) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let data = self.meta.as_ref().and_then(|meta| {
            let info = meta.info.info_bytes();
            let total_size = u32::try_from(info.len())
                .ok()
                .filter(|&s| s <= MAX_METADATA_SIZE)?;
            if peer.metadata_served >= max_served(total_size) {
                return None;
            }
            let len = piece.len_in(total_size)?;
            // `len_in` keeps the piece within the metadata, whose size fits in a u32.
            let start = piece.offset() as usize;
            Some(MetadataMessage::Data {
                piece,
                total_size,
                data: info.slice(start..start + len as usize),
            })
        });
        #[cfg(test)]
        let data = match (self.test_serving, data) {
            (TestServing::Honest, data) => data,
            (TestServing::Refuse, _) => None,
            (
                TestServing::Corrupt,
                Some(MetadataMessage::Data {
                    piece,
                    total_size,
                    data,
                }),
            ) => {
                let mut bad = data.to_vec();
                if let Some(b) = bad.last_mut() {
                    *b ^= 0x55;
                }
                Some(MetadataMessage::Data {
                    piece,
                    total_size,
                    data: bad.into(),
                })
            }
            (TestServing::Corrupt, other) => other,
        };
        let answer = match data {
            Some(message) => {
                peer.metadata_served += 1;
                message
            }
            None => MetadataMessage::Reject { piece },
        };
        // A peer without `ut_metadata` in its handshake cannot be answered; nothing to do.
        let _ = peer
            .connection
            .send_extended(now, UT_METADATA, answer.to_bytes());
        self.touch(key);
    }

    /// The info dictionary arrived and matches the info-hashes: the torrent gets its
    /// metadata, its peers their geometry and its picker their recorded availability,
    /// and it goes on as any torrent (checking its files, or downloading).
    fn metadata_received(&mut self, now: Instant, info: Bytes, shared: &mut Shared) {
        self.fetch = MetadataFetch::default();
        let info = match TorrentInfo::from_info_bytes(&info) {
            Ok(info) => Arc::new(info),
            Err(e) => {
                self.fail(
                    now,
                    format!("the info dictionary from the peers is invalid: {e}"),
                    shared,
                );
                return;
            }
        };
        // A link may name fewer info-hashes than the torrent has (a hybrid by its v1 hash).
        self.info_hashes = info.info_hashes();
        shared.learned.push(self.id);
        let meta = match Metadata::new(info, shared.rng.next_u64()) {
            Ok(meta) => meta,
            Err(e) => {
                self.fail(now, e, shared);
                return;
            }
        };
        let geometry = meta.geometry.clone();
        self.meta = Some(meta);
        let setup = self.setup.take().unwrap_or_default();
        self.apply_setup(setup);
        shared.alert(Alert::MetadataReceived { torrent: self.id });
        if let Some(error) = self.error.take() {
            self.fail(now, error, shared);
            return;
        }
        self.pex_on_metadata();
        let handshake = self.extended_handshake(shared);
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for &key in &keys {
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            peer.connection.set_geometry(geometry.clone());
            peer.connection
                .update_extended_handshake(now, handshake.clone());
            let recorded = std::mem::replace(&mut peer.have, PeerHave::Nothing);
            match recorded {
                PeerHave::Nothing => {}
                PeerHave::All => self.on_have_all(now, key),
                PeerHave::Pieces { mut bits, .. } => {
                    fit_bitfield(&mut bits, geometry.num_pieces(), geometry.bitfield_len());
                    self.on_bitfield(now, key, &bits.freeze());
                }
            }
            self.touch(key);
        }
        self.update_state(now, shared);
        self.activate(now, shared);
    }
}

/// How a test torrent answers metadata requests.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum TestServing {
    /// As it should.
    #[default]
    Honest,
    /// Rejects every request.
    Refuse,
    /// Sends every piece with a byte changed.
    Corrupt,
}

/// Makes a bitfield recorded before the piece count was known `len` bytes long, with no
/// bit set at or past `num_pieces`.
fn fit_bitfield(bits: &mut BytesMut, num_pieces: u32, len: usize) {
    bits.resize(len, 0);
    let spare = (len as u64 * 8).saturating_sub(u64::from(num_pieces));
    if let Some(last) = bits.last_mut() {
        if spare > 0 && spare < 8 {
            *last &= 0xffu8 << spare;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::extension::METADATA_PIECE_SIZE;

    fn t(secs: u64) -> Instant {
        Instant::from_secs(secs)
    }

    fn info_of(len: usize) -> (Bytes, InfoHashes) {
        let bytes: Bytes = (0..len)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into();
        let hashes = InfoHashes::hybrid(InfoHashV1::of_info(&bytes), InfoHashV2::of_info(&bytes));
        (bytes, hashes)
    }

    fn piece_of(bytes: &Bytes, piece: MetadataPiece) -> Bytes {
        let start = piece.offset() as usize;
        let end = (start + METADATA_PIECE_SIZE as usize).min(bytes.len());
        bytes.slice(start..end)
    }

    #[test]
    fn assembles_from_several_peers_in_parallel() {
        let (bytes, hashes) = info_of(50_000);
        let size = bytes.len() as u32;
        let mut fetch = MetadataFetch::default();
        fetch.add_source(PeerKey(1), size);
        fetch.add_source(PeerKey(2), size);
        let requests = fetch.next_requests(t(0));
        assert_eq!(requests.len(), 4, "four pieces, two peers, two each");
        assert_eq!(requests.iter().filter(|(k, _)| *k == PeerKey(1)).count(), 2);
        assert!(fetch.next_requests(t(0)).is_empty(), "each piece once");
        let mut result = Received::Stored;
        for (key, piece) in requests {
            result = fetch.on_data(key, piece, size, piece_of(&bytes, piece), &hashes);
        }
        assert_eq!(result, Received::Complete(bytes));
    }

    #[test]
    fn rejects_and_timeouts_go_elsewhere() {
        let (bytes, hashes) = info_of(100);
        let mut fetch = MetadataFetch::default();
        fetch.add_source(PeerKey(1), 100);
        let first = fetch.next_requests(t(0));
        assert_eq!(first, [(PeerKey(1), MetadataPiece(0))]);
        fetch.add_source(PeerKey(2), 100);
        fetch.on_reject(t(1), PeerKey(1), MetadataPiece(0));
        assert_eq!(
            fetch.next_requests(t(1)),
            [(PeerKey(2), MetadataPiece(0))],
            "the refusing peer rests"
        );
        assert_eq!(fetch.poll_timeout(), Some(t(1) + REQUEST_TIMEOUT));
        fetch.handle_timeout(t(1) + REQUEST_TIMEOUT);
        let later = t(1) + REST_AFTER_REFUSAL;
        fetch.handle_timeout(later);
        let again = fetch.next_requests(later);
        assert_eq!(again.len(), 1);
        let (key, piece) = again[0];
        assert_eq!(
            fetch.on_data(PeerKey(3), piece, 100, bytes.clone(), &hashes),
            Received::Unexpected,
            "not asked of that peer"
        );
        assert_eq!(
            fetch.on_data(key, piece, 100, bytes.clone(), &hashes),
            Received::Complete(bytes)
        );
    }

    #[test]
    fn a_mismatch_names_the_senders_and_starts_over() {
        let (bytes, hashes) = info_of(20_000);
        let size = bytes.len() as u32;
        let mut fetch = MetadataFetch::default();
        fetch.add_source(PeerKey(1), size);
        fetch.add_source(PeerKey(2), size);
        let requests = fetch.next_requests(t(0));
        let mut result = Received::Stored;
        for (key, piece) in requests {
            let mut data = piece_of(&bytes, piece).to_vec();
            if key == PeerKey(2) {
                data[0] ^= 1;
            }
            result = fetch.on_data(key, piece, size, data.into(), &hashes);
        }
        assert_eq!(
            result,
            Received::HashMismatch(None),
            "the culprit is not known"
        );
        assert_eq!(fetch.num_sources(), 2);
        // One peer at a time now: the bad one gives itself away.
        let requests = fetch.next_requests(t(1));
        assert!(requests.iter().all(|(k, _)| *k == PeerKey(1)));
        fetch.remove_source(PeerKey(1));
        let requests = fetch.next_requests(t(1));
        assert_eq!(requests.len(), 2);
        assert!(requests.iter().all(|(k, _)| *k == PeerKey(2)));
        let mut result = Received::Stored;
        for (key, piece) in requests {
            let mut data = piece_of(&bytes, piece).to_vec();
            data[0] ^= 1;
            result = fetch.on_data(key, piece, size, data.into(), &hashes);
        }
        assert_eq!(result, Received::HashMismatch(Some(PeerKey(2))));
        assert_eq!(fetch.num_sources(), 0);
    }

    #[test]
    fn the_size_most_peers_announce_wins() {
        let mut fetch = MetadataFetch::default();
        fetch.add_source(PeerKey(1), 999);
        fetch.add_source(PeerKey(2), 100);
        fetch.add_source(PeerKey(3), 100);
        fetch.add_source(PeerKey(4), MAX_METADATA_SIZE + 1);
        assert_eq!(fetch.num_sources(), 3);
        let requests = fetch.next_requests(t(0));
        assert_eq!(requests.len(), 1);
        assert_ne!(requests[0].0, PeerKey(1));
    }
}
