//! Pieces being downloaded: the state of each of their blocks.

use smallvec::SmallVec;

use super::PeerKey;
use crate::PieceIndex;

/// One block of a piece being downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Block {
    /// Nobody has been asked for it.
    Open,
    /// Asked of these peers (more than one only in end-game); never empty.
    Requested(SmallVec<[PeerKey; 2]>),
    /// Received; waiting for the piece to be checked.
    Received,
}

/// A piece with at least one block requested or received.
#[derive(Debug, Clone)]
pub(super) struct Download {
    pub(super) piece: PieceIndex,
    pub(super) blocks: Box<[Block]>,
    /// Blocks in [`Block::Requested`].
    pub(super) requested: u32,
    /// Blocks in [`Block::Received`].
    pub(super) received: u32,
    /// When the download started, in picker operations: older partial pieces go first.
    pub(super) started: u64,
}

impl Download {
    pub(super) fn new(piece: PieceIndex, num_blocks: u32, started: u64) -> Self {
        Self {
            piece,
            blocks: vec![Block::Open; num_blocks as usize].into_boxed_slice(),
            requested: 0,
            received: 0,
            started,
        }
    }

    /// Blocks nobody has been asked for.
    pub(super) fn open(&self) -> u32 {
        self.blocks.len() as u32 - self.requested - self.received
    }

    /// Whether nothing is requested or received, so the piece can go back to the queue.
    pub(super) fn is_untouched(&self) -> bool {
        self.requested == 0 && self.received == 0
    }

    /// Records a request of block `i` to `peer`. Returns whether it changed anything.
    pub(super) fn request(&mut self, i: usize, peer: PeerKey) -> bool {
        let Some(block) = self.blocks.get_mut(i) else {
            return false;
        };
        match block {
            Block::Open => {
                *block = Block::Requested(SmallVec::from_elem(peer, 1));
                self.requested += 1;
                true
            }
            Block::Requested(peers) if !peers.contains(&peer) => {
                peers.push(peer);
                true
            }
            Block::Requested(_) | Block::Received => false,
        }
    }

    /// Withdraws `peer`'s request for block `i`. Returns whether it had one.
    pub(super) fn abort(&mut self, i: usize, peer: PeerKey) -> bool {
        let Some(block) = self.blocks.get_mut(i) else {
            return false;
        };
        let Block::Requested(peers) = block else {
            return false;
        };
        let Some(at) = peers.iter().position(|&p| p == peer) else {
            return false;
        };
        peers.swap_remove(at);
        if peers.is_empty() {
            *block = Block::Open;
            self.requested -= 1;
        }
        true
    }

    /// Marks block `i` received from `from`. Returns `None` if it was already received (or
    /// out of range), else the other peers that were asked for it.
    pub(super) fn receive(&mut self, i: usize, from: PeerKey) -> Option<SmallVec<[PeerKey; 4]>> {
        let block = self.blocks.get_mut(i)?;
        let others = match std::mem::replace(block, Block::Received) {
            Block::Open => SmallVec::new(),
            Block::Requested(peers) => {
                self.requested -= 1;
                peers.into_iter().filter(|&p| p != from).collect()
            }
            Block::Received => return None,
        };
        self.received += 1;
        Some(others)
    }

    /// Every received block back to open (the piece failed its check); requests still in
    /// flight stay.
    pub(super) fn reset_received(&mut self) {
        for block in self.blocks.iter_mut() {
            if *block == Block::Received {
                *block = Block::Open;
            }
        }
        self.received = 0;
    }
}
