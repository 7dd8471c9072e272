//! Uploading: serving the blocks peers ask for from disk, with bounded reads and unsent
//! bytes per peer.

use super::{Job, Shared, Torrent};
use crate::picker::PeerKey;
use crate::session::{DiskJobKind, DiskResult, TorrentState};
use crate::time::Instant;
use crate::wire::{Block, BlockRequest};
use crate::PieceIndex;

/// The most disk reads in flight for one peer.
const MAX_READS_PER_PEER: usize = 8;

/// The most bytes read or being read for one peer and not yet written to its socket; more
/// requests wait until [`Session::handle_sent`](crate::session::Session::handle_sent)
/// reports progress.
const MAX_UNSENT_PER_PEER: usize = 1 << 20;

/// The most bytes one read for a peer covers.
const MAX_READ_RUN: usize = 256 << 10;

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
        let piece_length = self.meta.as_ref().map_or(0, |m| m.info.piece_length());
        let allowed = self.uploading_allowed();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let choked = peer.connection.am_choking()
            && !super::fast::serve_while_choked(peer, &request, piece_length);
        if !have || !allowed || choked {
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

    /// Starts reads for a peer's waiting requests, within the per-peer bounds. Consecutive
    /// requests for one piece (peers ask for a piece's blocks in order) share one disk job,
    /// so a seeder makes one read per [`MAX_READ_RUN`] bytes rather than one per block.
    pub(super) fn pump_uploads(&mut self, key: PeerKey, shared: &mut Shared) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        while let Some(&first) = peer.uploads.waiting.front() {
            let len = first.length as usize;
            let pending = peer.unsent + peer.uploads.reading_bytes;
            if peer.uploads.reads >= MAX_READS_PER_PEER
                || (pending > 0 && pending + len > MAX_UNSENT_PER_PEER)
            {
                break;
            }
            peer.uploads.waiting.pop_front();
            let mut run = ReadRun::new(first);
            while let Some(&next) = peer.uploads.waiting.front() {
                let budget = MAX_UNSENT_PER_PEER.saturating_sub(pending);
                if run.len as usize + next.length as usize > budget.min(MAX_READ_RUN)
                    || !run.extend(next)
                {
                    break;
                }
                peer.uploads.waiting.pop_front();
            }
            peer.uploads.reads += 1;
            peer.uploads.reading_bytes += run.len as usize;
            let id = shared.disk_job(
                self.id,
                DiskJobKind::Read {
                    piece: run.piece,
                    offset: run.offset,
                    len: run.len,
                },
            );
            self.jobs.insert(id, Job::Read { key, run });
        }
    }

    /// A read for a peer finished: serve its blocks, except those withdrawn meanwhile (the
    /// connection refuses them and nothing is sent).
    pub(super) fn on_read(
        &mut self,
        now: Instant,
        key: PeerKey,
        run: ReadRun,
        result: DiskResult,
        shared: &mut Shared,
    ) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        peer.uploads.reads = peer.uploads.reads.saturating_sub(1);
        peer.uploads.reading_bytes = peer.uploads.reading_bytes.saturating_sub(run.len as usize);
        // A read that fails or comes back short means the piece cannot be read back (the
        // file shrank or went away): it is lost, and downloaded again.
        let (data, lost) = match result {
            DiskResult::Read { data, .. } if data.len() == run.len as usize => (Some(data), false),
            DiskResult::Read { .. } | DiskResult::Failed { .. } => (None, true),
            _ => (None, false),
        };
        for request in run.requests() {
            let start = (request.offset - run.offset) as usize;
            let block = data.as_ref().map(|data| Block {
                piece: request.piece,
                offset: request.offset,
                // In bounds: the requests of a run tile `0..run.len` exactly, and the data is
                // `run.len` bytes long.
                data: data.slice(start..start + request.length as usize),
            });
            match block {
                Some(block) => {
                    if peer.connection.serve_block(now, block) {
                        self.totals.uploaded += u64::from(request.length);
                        self.totals.moved(now);
                    }
                }
                None => {
                    peer.connection.reject_request(now, request);
                }
            }
        }
        if lost {
            self.lose_piece(now, run.piece, shared);
        }
        self.touch(key);
        self.pump_uploads(key, shared);
    }
}

/// Consecutive block requests of one piece, read from disk as one range: blocks of `block`
/// bytes from `offset`, the last one possibly shorter, `len` bytes in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReadRun {
    piece: PieceIndex,
    offset: u32,
    len: u32,
    block: u32,
}

impl ReadRun {
    fn new(request: BlockRequest) -> Self {
        Self {
            piece: request.piece,
            offset: request.offset,
            len: request.length,
            block: request.length,
        }
    }

    /// Adds `next` if it continues the run: same piece, starting where the run ends, and no
    /// longer than the run's blocks, after a run whose blocks are all full.
    fn extend(&mut self, next: BlockRequest) -> bool {
        let full = self.len % self.block == 0;
        let continues = next.piece == self.piece
            && u64::from(next.offset) == u64::from(self.offset) + u64::from(self.len)
            && next.length > 0
            && next.length <= self.block;
        if !(full && continues) {
            return false;
        }
        self.len += next.length;
        true
    }

    /// The requests the run was made of, in order.
    fn requests(self) -> impl Iterator<Item = BlockRequest> {
        let block = self.block.max(1);
        (0..self.len.div_ceil(block)).map(move |i| {
            let start = i * block;
            BlockRequest {
                piece: self.piece,
                offset: self.offset + start,
                length: block.min(self.len - start),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(piece: u32, offset: u32, length: u32) -> BlockRequest {
        BlockRequest {
            piece: PieceIndex(piece),
            offset,
            length,
        }
    }

    #[test]
    fn a_run_gives_back_its_requests() {
        let parts = [
            request(3, 32768, 16384),
            request(3, 49152, 16384),
            request(3, 65536, 1000),
        ];
        let mut run = ReadRun::new(parts[0]);
        assert!(run.extend(parts[1]));
        assert!(run.extend(parts[2]));
        assert_eq!(run.len, 33768);
        assert_eq!(run.requests().collect::<Vec<_>>(), parts);
        // Nothing follows a short block.
        assert!(!run.extend(request(3, 66536, 16384)));
    }

    #[test]
    fn a_run_takes_only_what_continues_it() {
        let mut run = ReadRun::new(request(1, 0, 16384));
        assert!(!run.extend(request(2, 16384, 16384)), "another piece");
        assert!(!run.extend(request(1, 32768, 16384)), "a gap");
        assert!(!run.extend(request(1, 16384, 32768)), "a longer block");
        assert!(!run.extend(request(1, 16384, 0)), "an empty block");
        assert_eq!(run.requests().count(), 1);
    }
}
