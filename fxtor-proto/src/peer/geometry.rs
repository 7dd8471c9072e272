//! The shape of a torrent as a connection needs it: how many pieces, and how long each is.

use std::sync::Arc;

use thiserror::Error;

use crate::wire::BlockRequest;
use crate::{PieceIndex, BLOCK_SIZE};

/// How many pieces a torrent has and how long each one is: what a connection checks
/// `have`, `bitfield`, `request` and `piece` messages against.
///
/// Every piece is [`piece_length`](Self::piece_length) long except the last one of each
/// run: in a v1 or hybrid torrent only the torrent's last piece is shorter, built with
/// [`new`](Self::new); in a v2 torrent every file starts at a piece boundary, so the last
/// piece of every file may be shorter, built with [`from_file_sizes`](Self::from_file_sizes).
/// Cloning is cheap (the list of short pieces is shared).
///
/// ```
/// use fxtor_proto::peer::TorrentGeometry;
/// use fxtor_proto::PieceIndex;
///
/// let v1 = TorrentGeometry::new(32768, 100_000).unwrap();
/// assert_eq!(v1.num_pieces(), 4);
/// assert_eq!(v1.piece_size(PieceIndex(3)), Some(100_000 - 3 * 32768));
/// assert_eq!(v1.piece_size(PieceIndex(4)), None);
///
/// // Two files in a v2 torrent: 40000 bytes (two pieces) and 10 bytes (one).
/// let v2 = TorrentGeometry::from_file_sizes(32768, [40_000, 0, 10]).unwrap();
/// assert_eq!(v2.num_pieces(), 3);
/// assert_eq!(v2.piece_size(PieceIndex(1)), Some(40_000 - 32768));
/// assert_eq!(v2.piece_size(PieceIndex(2)), Some(10));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorrentGeometry {
    num_pieces: u32,
    piece_length: u32,
    total_size: u64,
    /// The pieces shorter than `piece_length`, by index, with their sizes.
    short_pieces: Arc<[(PieceIndex, u32)]>,
}

/// Why a [`TorrentGeometry`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GeometryError {
    /// A piece length of zero.
    #[error("the piece length is zero")]
    ZeroPieceLength,
    /// More pieces than a 32-bit piece index can count.
    #[error("{size} bytes in pieces of {piece_length} bytes need more than 2^32 pieces")]
    TooManyPieces {
        /// The torrent's size (the sum of its files for v2).
        size: u64,
        /// The piece length.
        piece_length: u32,
    },
}

impl TorrentGeometry {
    /// A v1 or hybrid torrent: `total_size` bytes in pieces of `piece_length`, the last one
    /// possibly shorter.
    pub fn new(piece_length: u32, total_size: u64) -> Result<Self, GeometryError> {
        Self::from_file_sizes(piece_length, [total_size])
    }

    /// A v2 torrent: files of the given sizes, each starting at a piece boundary. Empty
    /// files take no piece.
    pub fn from_file_sizes(
        piece_length: u32,
        file_sizes: impl IntoIterator<Item = u64>,
    ) -> Result<Self, GeometryError> {
        if piece_length == 0 {
            return Err(GeometryError::ZeroPieceLength);
        }
        let mut num_pieces: u64 = 0;
        let mut total_size: u64 = 0;
        let mut short_pieces = Vec::new();
        let too_many = |size| GeometryError::TooManyPieces { size, piece_length };
        for size in file_sizes {
            total_size = total_size.saturating_add(size);
            num_pieces += size.div_ceil(u64::from(piece_length));
            if num_pieces > u64::from(u32::MAX) {
                return Err(too_many(total_size));
            }
            let tail = size % u64::from(piece_length);
            if tail != 0 {
                // `num_pieces` is at least 1 here and below 2^32 (checked above), and
                // `tail` is below `piece_length`.
                let last = PieceIndex((num_pieces - 1) as u32);
                short_pieces.push((last, tail as u32));
            }
        }
        Ok(Self {
            // Checked against u32::MAX in the loop.
            num_pieces: num_pieces as u32,
            piece_length,
            total_size,
            short_pieces: short_pieces.into(),
        })
    }

    /// How many pieces the torrent has.
    pub fn num_pieces(&self) -> u32 {
        self.num_pieces
    }

    /// The nominal piece length.
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// The torrent's size in bytes (for v2, the sum of its files).
    pub fn total_size(&self) -> u64 {
        self.total_size
    }

    /// The length of the bitfield message's payload: one bit per piece.
    pub fn bitfield_len(&self) -> usize {
        self.num_pieces.div_ceil(8) as usize
    }

    /// Whether `piece` is a piece of this torrent.
    pub fn contains(&self, piece: PieceIndex) -> bool {
        piece.0 < self.num_pieces
    }

    /// The size of `piece` in bytes, `None` if the torrent has no such piece.
    pub fn piece_size(&self, piece: PieceIndex) -> Option<u32> {
        if !self.contains(piece) {
            return None;
        }
        match self.short_pieces.binary_search_by_key(&piece, |&(p, _)| p) {
            Ok(i) => self.short_pieces.get(i).map(|&(_, size)| size),
            Err(_) => Some(self.piece_length),
        }
    }

    /// Whether `request` asks for a block inside one piece of this torrent, no longer than
    /// [`BLOCK_SIZE`] and not empty.
    pub fn is_valid_request(&self, request: &BlockRequest) -> bool {
        let Some(size) = self.piece_size(request.piece) else {
            return false;
        };
        request.length > 0
            && request.length <= BLOCK_SIZE
            && u64::from(request.offset) + u64::from(request.length) <= u64::from(size)
    }

    /// The blocks of `piece`, in order: [`BLOCK_SIZE`] each, the last one possibly shorter.
    /// Empty if the torrent has no such piece.
    pub fn blocks(&self, piece: PieceIndex) -> impl Iterator<Item = BlockRequest> {
        let size = self.piece_size(piece).unwrap_or(0);
        (0..size.div_ceil(BLOCK_SIZE)).map(move |i| {
            let offset = i * BLOCK_SIZE;
            BlockRequest {
                piece,
                offset,
                length: (size - offset).min(BLOCK_SIZE),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_geometry() {
        let g = TorrentGeometry::new(BLOCK_SIZE * 2, u64::from(BLOCK_SIZE) * 5 + 100).unwrap();
        assert_eq!(g.num_pieces(), 3);
        assert_eq!(g.bitfield_len(), 1);
        assert_eq!(g.piece_size(PieceIndex(0)), Some(BLOCK_SIZE * 2));
        assert_eq!(g.piece_size(PieceIndex(2)), Some(BLOCK_SIZE + 100));
        let blocks: Vec<_> = g.blocks(PieceIndex(2)).collect();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[1].offset, BLOCK_SIZE);
        assert_eq!(blocks[1].length, 100);
        assert_eq!(g.blocks(PieceIndex(3)).count(), 0);

        let exact = TorrentGeometry::new(BLOCK_SIZE, u64::from(BLOCK_SIZE) * 4).unwrap();
        assert_eq!(exact.num_pieces(), 4);
        assert_eq!(exact.piece_size(PieceIndex(3)), Some(BLOCK_SIZE));

        let empty = TorrentGeometry::new(BLOCK_SIZE, 0).unwrap();
        assert_eq!(empty.num_pieces(), 0);
        assert_eq!(empty.bitfield_len(), 0);
    }

    #[test]
    fn request_validity() {
        let g = TorrentGeometry::new(BLOCK_SIZE * 2, u64::from(BLOCK_SIZE) * 3).unwrap();
        let r = |piece, offset, length| BlockRequest {
            piece: PieceIndex(piece),
            offset,
            length,
        };
        assert!(g.is_valid_request(&r(0, 0, BLOCK_SIZE)));
        assert!(g.is_valid_request(&r(0, 100, BLOCK_SIZE)));
        assert!(g.is_valid_request(&r(1, 0, BLOCK_SIZE)));
        assert!(!g.is_valid_request(&r(1, 1, BLOCK_SIZE)));
        assert!(!g.is_valid_request(&r(0, 0, BLOCK_SIZE + 1)));
        assert!(!g.is_valid_request(&r(0, 0, 0)));
        assert!(!g.is_valid_request(&r(2, 0, 1)));
        assert!(!g.is_valid_request(&r(0, u32::MAX, BLOCK_SIZE)));
    }

    #[test]
    fn bad_geometries() {
        assert_eq!(
            TorrentGeometry::new(0, 10),
            Err(GeometryError::ZeroPieceLength)
        );
        assert!(matches!(
            TorrentGeometry::new(1, 1 << 33),
            Err(GeometryError::TooManyPieces { .. })
        ));
        assert!(TorrentGeometry::new(1, u64::from(u32::MAX)).is_ok());
    }
}
