//! The set of pieces a peer has, as the picker sees it during a pick.

use crate::PieceIndex;

/// Which pieces a peer has. [`PiecePicker::pick`](super::PiecePicker::pick) asks
/// [`contains`](Self::contains) for each candidate piece, so it should answer in O(1).
///
/// A set that can also list its pieces cheaply ([`listable`](Self::listable) and
/// [`next_piece`](Self::next_piece)) bounds the cost of a pick by the number of pieces the
/// peer has: the picker then reads the peer's pieces alongside its own queue and stops at
/// whichever ends first, which matters for peers that have few pieces.
///
/// Implemented for closures `Fn(PieceIndex) -> bool` (not listable), for [`WireBitfield`]
/// (the bytes of a BEP3 `bitfield` message; listable) and for [`AllPieces`] (a seed, or a
/// BEP6 `have all`).
pub trait PieceSet {
    /// Whether the peer has `piece`.
    fn contains(&self, piece: PieceIndex) -> bool;

    /// Whether [`next_piece`](Self::next_piece) lists the set's pieces. `false` unless
    /// overridden.
    fn listable(&self) -> bool {
        false
    }

    /// For a [`listable`](Self::listable) set: the first piece of the set at or after
    /// `from`, or `None` if there is none. Not called on other sets.
    fn next_piece(&self, from: PieceIndex) -> Option<PieceIndex> {
        let _ = from;
        None
    }
}

impl<F: Fn(PieceIndex) -> bool> PieceSet for F {
    fn contains(&self, piece: PieceIndex) -> bool {
        self(piece)
    }
}

/// A peer that has every piece. Not listable: the picker's queue gives its first piece to
/// such a peer at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllPieces;

impl PieceSet for AllPieces {
    fn contains(&self, _piece: PieceIndex) -> bool {
        true
    }
}

/// A bitfield in wire format (BEP3): bit 7 of byte 0 is piece 0. Bits past the end of the
/// slice are pieces the peer does not have. Listable.
#[derive(Debug, Clone, Copy)]
pub struct WireBitfield<'a>(pub &'a [u8]);

impl PieceSet for WireBitfield<'_> {
    fn contains(&self, piece: PieceIndex) -> bool {
        let i = piece.get();
        self.0
            .get(i / 8)
            .is_some_and(|byte| byte & (0x80 >> (i % 8)) != 0)
    }

    fn listable(&self) -> bool {
        true
    }

    fn next_piece(&self, from: PieceIndex) -> Option<PieceIndex> {
        let start = from.get();
        let first = start / 8;
        // The first byte without the bits before `from`, then whole bytes.
        let head = self.0.get(first)? & (0xff >> (start % 8));
        if head != 0 {
            return Some(piece_at(first, head));
        }
        let rest = self.0.get(first + 1..)?;
        let at = rest.iter().position(|&b| b != 0)?;
        Some(piece_at(first + 1 + at, rest[at]))
    }
}

/// The piece of the highest set bit of a non-zero `byte` at `byte_index`.
fn piece_at(byte_index: usize, byte: u8) -> PieceIndex {
    // A bitfield of more than 2^29 bytes would name pieces past u32; such a piece is then
    // out of range for every picker and ignored there.
    let index = byte_index * 8 + byte.leading_zeros() as usize;
    PieceIndex(u32::try_from(index).unwrap_or(u32::MAX))
}

/// Calls `f` with each piece below `num_pieces` whose bit is set in the wire-format
/// `bitfield`, skipping zero bytes whole.
pub(super) fn for_each_set_bit(bitfield: &[u8], num_pieces: u32, mut f: impl FnMut(PieceIndex)) {
    for (byte_index, &byte) in bitfield.iter().enumerate() {
        if byte == 0 {
            continue;
        }
        let mut bits = byte;
        while bits != 0 {
            let bit = bits.leading_zeros() as usize;
            bits &= !(0x80 >> bit);
            let index = byte_index * 8 + bit;
            if index >= num_pieces as usize {
                return;
            }
            // `index` < `num_pieces`, a u32.
            f(PieceIndex(index as u32));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_bitfield_bit_order() {
        let bits = WireBitfield(&[0b1000_0001, 0b0100_0000]);
        let set: Vec<u32> = (0..20).filter(|&i| bits.contains(PieceIndex(i))).collect();
        assert_eq!(set, [0, 7, 9]);
    }

    #[test]
    fn wire_bitfield_lists_its_pieces() {
        let bytes = [0b1000_0001, 0, 0, 0b0100_0000];
        let bits = WireBitfield(&bytes);
        assert!(bits.listable());
        let mut listed = Vec::new();
        let mut from = PieceIndex(0);
        while let Some(piece) = bits.next_piece(from) {
            listed.push(piece.0);
            from = PieceIndex(piece.0 + 1);
        }
        assert_eq!(listed, [0, 7, 25]);
        assert_eq!(bits.next_piece(PieceIndex(1)), Some(PieceIndex(7)));
        assert_eq!(bits.next_piece(PieceIndex(100)), None);
        assert!(!(|_: PieceIndex| true).listable());
    }

    #[test]
    fn set_bits_stop_at_num_pieces() {
        let mut seen = Vec::new();
        for_each_set_bit(&[0xff, 0x00, 0xc0], 17, |p| seen.push(p.0));
        assert_eq!(seen, [0, 1, 2, 3, 4, 5, 6, 7, 16]);
    }
}
