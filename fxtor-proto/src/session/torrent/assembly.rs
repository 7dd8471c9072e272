//! Pieces being put together from their blocks, and pieces waiting for their disk write.
//!
//! Blocks are kept as the `Bytes` they arrived in (sharing the receive buffer's memory), so
//! assembling a piece copies nothing; the finished piece goes to the disk job as the list
//! of its blocks. Who sent each block is remembered, to know whom to blame if the piece
//! fails its hash check.

use std::collections::BTreeMap;

use bytes::Bytes;
use core::net::SocketAddr;

use crate::PieceIndex;

/// One piece being assembled.
#[derive(Debug)]
struct PieceBuffer {
    blocks: Vec<Option<Bytes>>,
    /// Who sent each block.
    senders: Vec<Option<SocketAddr>>,
    received: u32,
    /// The piece's length, counted against the memory budget.
    len: u32,
}

/// A piece handed to the disk to be verified and written.
#[derive(Debug)]
struct Writing {
    senders: Vec<SocketAddr>,
    len: u32,
    /// Its blocks (shared with the disk job) and who sent each: if the piece fails, the
    /// blocks can be checked one by one against their merkle leaves.
    blocks: Vec<(Bytes, SocketAddr)>,
}

/// The pieces held in memory. Every started piece counts with its full length against the
/// budget, from its first request until its write completes.
#[derive(Debug, Default)]
pub(super) struct Assembly {
    building: BTreeMap<PieceIndex, PieceBuffer>,
    writing: BTreeMap<PieceIndex, Writing>,
    bytes: u64,
}

impl Assembly {
    /// Bytes of the pieces being assembled or written.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The pieces being assembled, in index order.
    pub fn building(&self) -> impl Iterator<Item = PieceIndex> + '_ {
        self.building.keys().copied()
    }

    /// Whether `piece` is being assembled.
    pub fn contains(&self, piece: PieceIndex) -> bool {
        self.building.contains_key(&piece)
    }

    /// How many blocks of `piece` have arrived (0 if it is not being assembled).
    pub fn received(&self, piece: PieceIndex) -> u32 {
        self.building.get(&piece).map_or(0, |b| b.received)
    }

    /// Makes room for `piece`, of `blocks` blocks and `len` bytes, if it is not there yet.
    pub fn start(&mut self, piece: PieceIndex, blocks: u32, len: u32) {
        if self.building.contains_key(&piece) {
            return;
        }
        self.bytes += u64::from(len);
        self.building.insert(
            piece,
            PieceBuffer {
                blocks: vec![None; blocks as usize],
                senders: vec![None; blocks as usize],
                received: 0,
                len,
            },
        );
    }

    /// Stores block `block` of `piece` from `from`. Returns whether the piece is now
    /// complete. A block already there is kept (the first copy wins).
    pub fn store(
        &mut self,
        piece: PieceIndex,
        block: usize,
        data: Bytes,
        from: SocketAddr,
    ) -> bool {
        let Some(buffer) = self.building.get_mut(&piece) else {
            return false;
        };
        if let (Some(slot @ None), Some(sender)) =
            (buffer.blocks.get_mut(block), buffer.senders.get_mut(block))
        {
            *slot = Some(data);
            *sender = Some(from);
            buffer.received += 1;
        }
        buffer.received as usize == buffer.blocks.len()
    }

    /// Takes a complete piece's blocks, in order, to write it. It counts against the budget
    /// until [`written`](Self::written). An incomplete piece is dropped and `None` returned.
    pub fn finish(&mut self, piece: PieceIndex) -> Option<Vec<Bytes>> {
        let buffer = self.building.remove(&piece)?;
        let blocks: Option<Vec<Bytes>> = buffer.blocks.into_iter().collect();
        let by_sender: Option<Vec<SocketAddr>> = buffer.senders.into_iter().collect();
        let (Some(blocks), Some(by_sender)) = (blocks, by_sender) else {
            self.bytes -= u64::from(buffer.len);
            return None;
        };
        let mut senders = by_sender.clone();
        senders.sort_unstable();
        senders.dedup();
        self.writing.insert(
            piece,
            Writing {
                senders,
                len: buffer.len,
                blocks: blocks.iter().cloned().zip(by_sender).collect(),
            },
        );
        Some(blocks)
    }

    /// The write of `piece` is done: returns who sent its blocks (each address once).
    pub fn written(&mut self, piece: PieceIndex) -> Vec<SocketAddr> {
        self.written_with_blocks(piece).0
    }

    /// The write of `piece` is done: returns who sent its blocks (each address once), and
    /// its blocks in order with the sender of each.
    pub fn written_with_blocks(
        &mut self,
        piece: PieceIndex,
    ) -> (Vec<SocketAddr>, Vec<(Bytes, SocketAddr)>) {
        match self.writing.remove(&piece) {
            Some(w) => {
                self.bytes -= u64::from(w.len);
                (w.senders, w.blocks)
            }
            None => (Vec::new(), Vec::new()),
        }
    }

    /// Drops `piece` if none of its blocks has arrived (its requests were all withdrawn).
    pub fn drop_if_empty(&mut self, piece: PieceIndex) {
        if self.building.get(&piece).is_some_and(|b| b.received == 0) {
            if let Some(b) = self.building.remove(&piece) {
                self.bytes -= u64::from(b.len);
            }
        }
    }

    /// Drops every piece being assembled (pieces being written stay until their write ends).
    pub fn clear_building(&mut self) {
        for b in std::mem::take(&mut self.building).into_values() {
            self.bytes -= u64::from(b.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn assembles_without_copying_and_accounts_memory() {
        let mut a = Assembly::default();
        let p = PieceIndex(3);
        let ip1 = SocketAddr::new(Ipv4Addr::new(10, 0, 0, 1).into(), 6881);
        let ip2 = SocketAddr::new(Ipv4Addr::new(10, 0, 0, 2).into(), 6881);
        a.start(p, 2, 20_000);
        a.start(p, 2, 20_000);
        assert_eq!(a.bytes(), 20_000);
        let second = Bytes::from(vec![2u8; 3616]);
        assert!(!a.store(p, 1, second.clone(), ip2));
        assert!(!a.store(p, 1, Bytes::from(vec![9u8; 3616]), ip1));
        assert!(a.store(p, 0, Bytes::from(vec![1u8; 16384]), ip1));
        let blocks = a.finish(p).unwrap();
        assert_eq!(blocks[1].as_ptr(), second.as_ptr());
        assert_eq!(a.bytes(), 20_000);
        assert_eq!(a.written(p), vec![ip1, ip2]);
        assert_eq!(a.bytes(), 0);

        a.start(PieceIndex(1), 1, 100);
        a.drop_if_empty(PieceIndex(1));
        assert_eq!(a.bytes(), 0);
        a.start(PieceIndex(2), 2, 100);
        a.store(PieceIndex(2), 0, Bytes::new(), ip1);
        assert!(
            a.finish(PieceIndex(2)).is_none(),
            "incomplete pieces are dropped"
        );
        assert_eq!(a.bytes(), 0);
        assert_eq!(a.building().count(), 0);
    }
}
