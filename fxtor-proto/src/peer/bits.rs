//! Bitfields in their wire form: one bit per piece, high bit of the first byte for piece 0.

use bytes::BytesMut;

use crate::PieceIndex;

/// The mask of the bits of the last byte that name pieces, for `num_pieces` pieces.
fn last_byte_mask(num_pieces: u32) -> u8 {
    match num_pieces % 8 {
        0 => 0xff,
        used => !(0xffu8 >> used),
    }
}

/// Whether the bits past the last piece are all clear.
pub(super) fn spare_bits_clear(bits: &[u8], num_pieces: u32) -> bool {
    bits.last()
        .is_none_or(|&last| last & !last_byte_mask(num_pieces) == 0)
}

/// A bitfield with every piece set.
pub(super) fn full(num_pieces: u32) -> BytesMut {
    let len = num_pieces.div_ceil(8) as usize;
    let mut bits = BytesMut::zeroed(len);
    bits.fill(0xff);
    if let Some(last) = bits.last_mut() {
        *last = last_byte_mask(num_pieces);
    }
    bits
}

/// Cuts or pads `bits` to the length for `num_pieces` and clears the spare bits.
pub(super) fn normalize(bits: &mut BytesMut, num_pieces: u32) {
    bits.resize(num_pieces.div_ceil(8) as usize, 0);
    if let Some(last) = bits.last_mut() {
        *last &= last_byte_mask(num_pieces);
    }
}

/// Sets `piece`'s bit, growing the bitfield if it is too short.
pub(super) fn set(bits: &mut BytesMut, piece: PieceIndex) {
    let byte = piece.get() / 8;
    if bits.len() <= byte {
        bits.resize(byte + 1, 0);
    }
    if let Some(b) = bits.get_mut(byte) {
        *b |= 0x80 >> (piece.0 % 8);
    }
}

/// Whether no bit is set.
pub(super) fn is_empty(bits: &[u8]) -> bool {
    bits.iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_spare_bits() {
        assert_eq!(&full(10)[..], &[0xff, 0xc0]);
        assert_eq!(&full(16)[..], &[0xff, 0xff]);
        assert!(full(0).is_empty());
        assert!(spare_bits_clear(&[0xff, 0xc0], 10));
        assert!(!spare_bits_clear(&[0xff, 0xe0], 10));
        assert!(spare_bits_clear(&[], 0));

        let mut bits = BytesMut::from(&[0xff, 0xff, 0xff][..]);
        normalize(&mut bits, 12);
        assert_eq!(&bits[..], &[0xff, 0xf0]);
        set(&mut bits, PieceIndex(17));
        assert_eq!(&bits[..], &[0xff, 0xf0, 0x40]);
        assert!(!is_empty(&bits));
        assert!(is_empty(&[0, 0]));
    }
}
