//! Checking the files on disk: every piece is read and hashed by the driver, a bounded
//! number at a time, and the pieces that pass are ours.

use super::{piece_check, Job, Shared, Torrent};
use crate::session::{Alert, DiskJobKind, TorrentState};
use crate::time::Instant;
use crate::PieceIndex;

/// How many [`DiskJobKind::CheckPiece`] jobs are in flight at once.
pub(super) const CHECKS_IN_FLIGHT: usize = 8;

/// Progress of a check of the files.
#[derive(Debug, Default)]
pub(super) struct Checking {
    /// The next piece to check.
    next: u32,
    /// Checks handed out and not answered.
    in_flight: usize,
}

impl Torrent {
    /// Hands out checks up to [`CHECKS_IN_FLIGHT`]; ends the check when all are answered.
    pub(super) fn issue_checks(&mut self, now: Instant, shared: &mut Shared) {
        if self.state != TorrentState::CheckingFiles {
            return;
        }
        let Some(meta) = &mut self.meta else {
            return;
        };
        let Some(checking) = &mut meta.checking else {
            return;
        };
        let num_pieces = meta.picker.num_pieces();
        while checking.in_flight < CHECKS_IN_FLIGHT && checking.next < num_pieces {
            let piece = PieceIndex(checking.next);
            checking.next += 1;
            // A piece without hashes (its v2 piece layer is still to be fetched from
            // peers) cannot be checked: it is not ours.
            if let Some(check) = piece_check(&meta.info, piece) {
                let id = shared.disk_job(self.id, DiskJobKind::CheckPiece { piece, check });
                self.jobs.insert(id, Job::Check(piece));
                checking.in_flight += 1;
            }
        }
        if checking.next >= num_pieces && checking.in_flight == 0 {
            self.finish_checking(now, shared);
        }
    }

    pub(super) fn on_checked(
        &mut self,
        now: Instant,
        piece: PieceIndex,
        passed: bool,
        shared: &mut Shared,
    ) {
        let Some(meta) = &mut self.meta else {
            return;
        };
        let Some(checking) = &mut meta.checking else {
            return;
        };
        checking.in_flight = checking.in_flight.saturating_sub(1);
        if passed {
            meta.picker.we_have(piece);
        }
        self.issue_checks(now, shared);
    }

    fn finish_checking(&mut self, now: Instant, shared: &mut Shared) {
        if let Some(meta) = &mut self.meta {
            meta.checking = None;
        }
        shared.alert(Alert::TorrentChecked { torrent: self.id });
        // Peers connected before the check (a magnet link's, while fetching the metadata)
        // learn what it found.
        if let Some(meta) = &self.meta {
            let have: Vec<PieceIndex> = (0..meta.picker.num_pieces())
                .map(PieceIndex)
                .filter(|&p| meta.picker.have(p))
                .collect();
            for peer in self.peers.values_mut() {
                for &piece in &have {
                    peer.connection.send_have(now, piece);
                }
            }
            let keys: Vec<_> = self.peers.keys().copied().collect();
            for key in keys {
                self.touch(key);
            }
        }
        self.update_state(now, shared);
        self.activate(now, shared);
    }
}
