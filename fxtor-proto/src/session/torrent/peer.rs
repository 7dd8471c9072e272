//! A torrent's view of one connected peer: the connection state machine plus what the
//! torrent keeps about it.

use std::collections::VecDeque;

use bytes::BytesMut;
use core::net::SocketAddr;

use super::pex::PeerPex;
use crate::peer::{Direction, PeerConnection};
use crate::session::ConnectionId;
use crate::time::Instant;
use crate::wire::BlockRequest;
use crate::{InfoHashV2, PieceIndex};

/// The most pieces recorded for a peer while the torrent's metadata is unknown (a
/// hostile `have` cannot make us allocate more than this many bits).
pub(super) const MAX_PIECES_WITHOUT_METADATA: u32 = 0x20_0000;

/// The pieces a peer has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PeerHave {
    /// None said yet, or none (`have none`).
    Nothing,
    /// Every piece (`have all`, or a full bitfield).
    All,
    /// A BEP3 bitfield and how many bits are set.
    Pieces {
        /// The bits; at least as long as the torrent's bitfield once its metadata is known.
        bits: BytesMut,
        /// How many are set.
        count: u32,
    },
}

impl PeerHave {
    /// Whether the peer has `piece`.
    pub fn contains(&self, piece: PieceIndex) -> bool {
        match self {
            PeerHave::Nothing => false,
            PeerHave::All => true,
            PeerHave::Pieces { bits, .. } => bit(bits, piece),
        }
    }

    /// Records a `have`. Returns whether the piece is new for this peer. Without a bitfield
    /// length (`len` is `None`, no metadata) the bits grow up to
    /// [`MAX_PIECES_WITHOUT_METADATA`]; pieces past it are ignored.
    pub fn insert(&mut self, piece: PieceIndex, len: Option<usize>) -> bool {
        let byte = piece.get() / 8;
        let needed = match len {
            Some(len) if byte < len => len,
            Some(_) => return false,
            None if piece.0 < MAX_PIECES_WITHOUT_METADATA => byte + 1,
            None => return false,
        };
        match self {
            PeerHave::All => false,
            PeerHave::Nothing => {
                let mut bits = BytesMut::zeroed(needed);
                set_bit(&mut bits, piece);
                *self = PeerHave::Pieces { bits, count: 1 };
                true
            }
            PeerHave::Pieces { bits, count } => {
                if bits.len() < needed {
                    bits.resize(needed, 0);
                }
                if bit(bits, piece) {
                    return false;
                }
                set_bit(bits, piece);
                *count += 1;
                true
            }
        }
    }

    /// Withdraws `piece` (an `lt_donthave`). A peer that had every piece becomes one with
    /// all of `num_pieces` but this one, in a bitfield of `len` bytes. Returns whether the
    /// peer had the piece.
    pub fn remove(&mut self, piece: PieceIndex, num_pieces: u32, len: usize) -> bool {
        if piece.0 >= num_pieces {
            return false;
        }
        match self {
            PeerHave::Nothing => false,
            PeerHave::All => {
                let mut bits = BytesMut::zeroed(len);
                for p in 0..num_pieces {
                    set_bit(&mut bits, PieceIndex(p));
                }
                clear_bit(&mut bits, piece);
                *self = PeerHave::Pieces {
                    bits,
                    count: num_pieces - 1,
                };
                true
            }
            PeerHave::Pieces { bits, count } => {
                if !bit(bits, piece) {
                    return false;
                }
                clear_bit(bits, piece);
                *count = count.saturating_sub(1);
                true
            }
        }
    }

    /// Whether the peer has all `num_pieces` pieces.
    pub fn is_seed(&self, num_pieces: u32) -> bool {
        match self {
            PeerHave::Nothing => false,
            PeerHave::All => true,
            PeerHave::Pieces { count, .. } => *count >= num_pieces && num_pieces > 0,
        }
    }
}

/// Whether bit `piece` is set in a BEP3 bitfield (bits past its end are not).
pub(super) fn bit(bits: &[u8], piece: PieceIndex) -> bool {
    let i = piece.get();
    bits.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
}

fn set_bit(bits: &mut [u8], piece: PieceIndex) {
    let i = piece.get();
    if let Some(b) = bits.get_mut(i / 8) {
        *b |= 0x80 >> (i % 8);
    }
}

fn clear_bit(bits: &mut [u8], piece: PieceIndex) {
    let i = piece.get();
    if let Some(b) = bits.get_mut(i / 8) {
        *b &= !(0x80 >> (i % 8));
    }
}

/// Calls `f` with every piece below `num_pieces` set in `bits`; zero bytes are skipped whole.
pub(super) fn for_each_piece(bits: &[u8], num_pieces: u32, mut f: impl FnMut(PieceIndex)) {
    for (i, &byte) in bits.iter().enumerate() {
        let mut rest = byte;
        while rest != 0 {
            let b = rest.leading_zeros() as usize;
            rest &= !(0x80 >> b);
            let index = i * 8 + b;
            if index >= num_pieces as usize {
                return;
            }
            // Below `num_pieces`, a u32.
            f(PieceIndex(index as u32));
        }
    }
}

/// How many bits are set in `bits`.
pub(super) fn count_ones(bits: &[u8]) -> u32 {
    bits.iter().map(|b| b.count_ones()).sum()
}

/// Requests from the peer on their way to being served: waiting for a read, or being read.
#[derive(Debug, Default)]
pub(super) struct Uploads {
    /// Accepted requests not read yet, oldest first.
    pub waiting: VecDeque<BlockRequest>,
    /// Reads in flight.
    pub reads: usize,
    /// Bytes of the reads in flight.
    pub reading_bytes: usize,
}

/// One peer of a torrent.
#[derive(Debug)]
pub(super) struct Peer {
    /// Its connection id in the session.
    pub conn: ConnectionId,
    /// Its address.
    pub addr: SocketAddr,
    /// The protocol state machine.
    pub connection: PeerConnection,
    /// What it has.
    pub have: PeerHave,
    /// For [`PeerHave::Pieces`]: how many of its pieces we want (priority above 0) and lack.
    pub wanted: u32,
    /// Its handshake is done.
    pub established: bool,
    /// It is in the torrent's list of peers to drain.
    pub dirty: bool,
    /// The driver reported the transport closed: no [`Action::Close`](crate::session::Action::Close)
    /// is due.
    pub transport_closed: bool,
    /// Its upload requests in progress.
    pub uploads: Uploads,
    /// Bytes handed to the driver for it and not reported sent.
    pub unsent: usize,
    /// When the connection was made.
    pub connected_at: Instant,
    /// `ut_metadata` requests we answered with data.
    pub metadata_served: u32,
    /// The address it takes connections on: the one we dialled, or for a peer that dialled
    /// us, its IP with the listen port of its extension handshake (once known).
    pub listen_addr: Option<SocketAddr>,
    /// Peer exchange with it.
    pub pex: PeerPex,
    /// Whether its allowed-fast set was considered (see `fast.rs`).
    pub fast_set_offered: bool,
    /// Bytes of allowed-fast pieces accepted to serve it while choked.
    pub fast_bytes_served: u64,
}

impl Peer {
    /// Whether the connection runs BEP52 for a torrent with v2 info-hash `v2`: under the
    /// (truncated) v2 info-hash. A hybrid's connection under its v1 info-hash is taken as
    /// v1 even when the peer sets the v2 upgrade bit: hash requests are sent on v2
    /// connections only (a hybrid needs no layers to download: its v1 hashes check its
    /// pieces).
    pub fn speaks_v2(&self, v2: Option<InfoHashV2>) -> bool {
        v2.is_some_and(|v2| self.connection.info_hash() == Some(v2.truncated()))
    }

    pub fn new(
        now: Instant,
        conn: ConnectionId,
        addr: SocketAddr,
        connection: PeerConnection,
    ) -> Self {
        Self {
            conn,
            addr,
            have: PeerHave::Nothing,
            wanted: 0,
            established: false,
            dirty: false,
            transport_closed: false,
            uploads: Uploads::default(),
            unsent: 0,
            connected_at: now,
            metadata_served: 0,
            listen_addr: (connection.direction() == Direction::Outgoing).then_some(addr),
            connection,
            pex: PeerPex::default(),
            fast_set_offered: false,
            fast_bytes_served: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn have_grows_and_counts() {
        let mut have = PeerHave::Nothing;
        assert!(have.insert(PieceIndex(9), None));
        assert!(!have.insert(PieceIndex(9), None));
        assert!(have.insert(PieceIndex(0), None));
        assert!(have.contains(PieceIndex(0)) && have.contains(PieceIndex(9)));
        assert!(!have.contains(PieceIndex(1)));
        assert!(!have.insert(PieceIndex(MAX_PIECES_WITHOUT_METADATA), None));
        assert!(!have.insert(PieceIndex(16), Some(2)));
        match &have {
            PeerHave::Pieces { bits, count } => {
                assert_eq!(&bits[..], &[0x80, 0x40]);
                assert_eq!(*count, 2);
            }
            other => panic!("{other:?}"),
        }
        assert!(!have.is_seed(10));
        assert!(PeerHave::All.is_seed(10));
    }

    #[test]
    fn donthave_withdraws_a_piece() {
        let mut have = PeerHave::All;
        assert!(have.remove(PieceIndex(3), 10, 2));
        assert!(!have.contains(PieceIndex(3)) && have.contains(PieceIndex(9)));
        assert!(!have.is_seed(10));
        assert!(!have.remove(PieceIndex(3), 10, 2));
        assert!(!have.remove(PieceIndex(10), 10, 2), "out of range");
        match &have {
            PeerHave::Pieces { bits, count } => {
                assert_eq!(&bits[..], &[0xef, 0xc0]);
                assert_eq!(*count, 9);
            }
            other => panic!("{other:?}"),
        }
        assert!(!PeerHave::Nothing.remove(PieceIndex(0), 10, 2));
    }

    #[test]
    fn pieces_of_a_bitfield() {
        let mut seen = Vec::new();
        for_each_piece(&[0b1000_0001, 0, 0b1100_0000], 17, |p| seen.push(p.0));
        assert_eq!(seen, [0, 7, 16]);
        assert_eq!(count_ones(&[0xff, 0x01]), 9);
    }
}
