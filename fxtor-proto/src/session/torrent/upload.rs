//! Uploading: serving the blocks peers ask for from disk, with bounded reads and unsent
//! bytes per peer.

use super::{Job, Shared, Torrent};
use crate::picker::PeerKey;
use crate::session::{DiskJobKind, DiskResult, TorrentState};
use crate::time::Instant;
use crate::wire::{Block, BlockRequest};

/// The most disk reads in flight for one peer.
const MAX_READS_PER_PEER: usize = 8;

/// The most bytes read or being read for one peer and not yet written to its socket; more
/// requests wait until [`Session::handle_sent`](crate::session::Session::handle_sent)
/// reports progress.
const MAX_UNSENT_PER_PEER: usize = 1 << 20;

impl Torrent {
    /// Whether we serve blocks now.
    pub(super) fn uploading_allowed(&self) -> bool {
        self.meta.is_some()
            && matches!(
                self.state,
                TorrentState::Downloading | TorrentState::Finished | TorrentState::Seeding
            )
    }

    pub(super) fn on_upload_request(
        &mut self,
        now: Instant,
        key: PeerKey,
        request: BlockRequest,
        shared: &mut Shared,
    ) {
        let have = self
            .meta
            .as_ref()
            .is_some_and(|m| m.picker.have(request.piece));
        let allowed = self.uploading_allowed();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if !have || !allowed || peer.connection.am_choking() {
            peer.connection.reject_request(now, request);
            self.touch(key);
            return;
        }
        peer.uploads.waiting.push_back(request);
        self.pump_uploads(key, shared);
    }

    pub(super) fn on_upload_cancelled(&mut self, key: PeerKey, request: BlockRequest) {
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.uploads.waiting.retain(|r| *r != request);
        }
    }

    /// Starts reads for a peer's waiting requests, within the per-peer bounds.
    pub(super) fn pump_uploads(&mut self, key: PeerKey, shared: &mut Shared) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        while let Some(&request) = peer.uploads.waiting.front() {
            let len = request.length as usize;
            let pending = peer.unsent + peer.uploads.reading_bytes;
            if peer.uploads.reads >= MAX_READS_PER_PEER
                || (pending > 0 && pending + len > MAX_UNSENT_PER_PEER)
            {
                break;
            }
            peer.uploads.waiting.pop_front();
            peer.uploads.reads += 1;
            peer.uploads.reading_bytes += len;
            let id = shared.disk_job(
                self.id,
                DiskJobKind::Read {
                    piece: request.piece,
                    offset: request.offset,
                    len: request.length,
                },
            );
            self.jobs.insert(id, Job::Read { key, request });
        }
    }

    /// A read for a peer finished: serve the block, unless the request was withdrawn
    /// meanwhile (then the connection refuses it and nothing is sent).
    pub(super) fn on_read(
        &mut self,
        now: Instant,
        key: PeerKey,
        request: BlockRequest,
        result: DiskResult,
        shared: &mut Shared,
    ) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let len = request.length as usize;
        peer.uploads.reads = peer.uploads.reads.saturating_sub(1);
        peer.uploads.reading_bytes = peer.uploads.reading_bytes.saturating_sub(len);
        match result {
            DiskResult::Read { data, .. } if data.len() == len => {
                let block = Block {
                    piece: request.piece,
                    offset: request.offset,
                    data,
                };
                if peer.connection.serve_block(now, block) {
                    self.totals.uploaded += len as u64;
                    self.totals.moved(now);
                }
            }
            DiskResult::Read { .. } | DiskResult::Failed { .. } => {
                // The piece cannot be read back (the file shrank or went away): it is
                // lost, and downloaded again.
                peer.connection.reject_request(now, request);
                self.lose_piece(now, request.piece, shared);
            }
            _ => {
                peer.connection.reject_request(now, request);
            }
        }
        self.touch(key);
        self.pump_uploads(key, shared);
    }
}
