//! libtorrent's `lt_donthave`: withdraws an earlier `have`.

use bytes::{BufMut, Bytes};

use super::{ExtensionError, LT_DONTHAVE};
use crate::PieceIndex;

/// An `lt_donthave` message: the sender no longer has this piece (it failed a later check,
/// or the file was removed). Its payload is the piece index, four bytes big-endian.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct DontHave(pub PieceIndex);

impl DontHave {
    /// The payload's length.
    pub const LEN: usize = 4;

    /// Parses the payload.
    pub fn parse(payload: &[u8]) -> Result<Self, ExtensionError> {
        let bytes = <[u8; 4]>::try_from(payload).map_err(|_| ExtensionError::WrongLength {
            extension: LT_DONTHAVE,
            expected: Self::LEN,
            actual: payload.len(),
        })?;
        Ok(Self(PieceIndex(u32::from_be_bytes(bytes))))
    }

    /// Appends the payload to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_u32(self.0 .0);
    }

    /// The payload in a buffer of its own.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(&self.0 .0.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_bytes() {
        let msg = DontHave(PieceIndex(0x0102_0304));
        assert_eq!(&msg.to_bytes()[..], &[1, 2, 3, 4]);
        assert_eq!(DontHave::parse(&[1, 2, 3, 4]), Ok(msg));
        assert_eq!(
            DontHave::parse(&[1, 2, 3]),
            Err(ExtensionError::WrongLength {
                extension: LT_DONTHAVE,
                expected: 4,
                actual: 3
            })
        );
        assert!(DontHave::parse(&[0; 5]).is_err());
    }

    proptest! {
        #[test]
        fn encode_then_parse_is_identity(piece in any::<u32>()) {
            let msg = DontHave(PieceIndex(piece));
            let mut out = Vec::new();
            msg.encode(&mut out);
            prop_assert_eq!(DontHave::parse(&out), Ok(msg));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..10)) {
            let _ = DontHave::parse(&bytes);
        }
    }
}
