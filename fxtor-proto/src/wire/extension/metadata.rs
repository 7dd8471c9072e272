//! BEP9 `ut_metadata`: fetching the info dictionary from peers, 16 KiB at a time.

use std::fmt;

use bytes::{BufMut, Bytes};

use super::{decode_dict, dict_of, int_in, ExtensionError, UT_METADATA};
use crate::bencode::{write_bytes, write_int};

/// The size of a metadata piece; only the last piece of the metadata may be shorter.
pub const METADATA_PIECE_SIZE: u32 = 16 * 1024;

/// The largest metadata (info dictionary) accepted: 32 MiB, room for a torrent of well
/// over a million pieces. A peer announcing more is refused before anything is allocated.
pub const MAX_METADATA_SIZE: u32 = 32 * 1024 * 1024;

/// A `ut_metadata` dictionary has two or three keys; allow for a few extra.
const MAX_VALUES: usize = 32;

/// The index of a 16 KiB piece of the metadata (not a piece of the torrent's content).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MetadataPiece(pub u32);

impl MetadataPiece {
    /// How many pieces metadata of `total_size` bytes has.
    pub fn count(total_size: u32) -> u32 {
        total_size.div_ceil(METADATA_PIECE_SIZE)
    }

    /// Where the piece starts in the metadata.
    pub fn offset(self) -> u64 {
        u64::from(self.0) * u64::from(METADATA_PIECE_SIZE)
    }

    /// The piece's length in metadata of `total_size` bytes; `None` if the piece is past
    /// the end.
    pub fn len_in(self, total_size: u32) -> Option<u32> {
        let remaining = u64::from(total_size).checked_sub(self.offset())?;
        // `min` keeps the value at or below METADATA_PIECE_SIZE, a u32.
        let len = remaining.min(u64::from(METADATA_PIECE_SIZE)) as u32;
        (len > 0).then_some(len)
    }
}

impl fmt::Debug for MetadataPiece {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MetadataPiece({})", self.0)
    }
}

/// A `ut_metadata` message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum MetadataMessage {
    /// `msg_type` 0: asks for a piece of the metadata.
    Request {
        /// The piece asked for.
        piece: MetadataPiece,
    },
    /// `msg_type` 1: a piece of the metadata. The data follows the dictionary in the
    /// payload and is shared with it, not copied.
    Data {
        /// Which piece.
        piece: MetadataPiece,
        /// The whole metadata's size.
        total_size: u32,
        /// The piece's bytes.
        data: Bytes,
    },
    /// `msg_type` 2: the sender will not send that piece.
    Reject {
        /// The piece asked for.
        piece: MetadataPiece,
    },
}

impl MetadataMessage {
    /// The piece the message is about.
    pub fn piece(&self) -> MetadataPiece {
        match self {
            Self::Request { piece } | Self::Data { piece, .. } | Self::Reject { piece } => *piece,
        }
    }

    /// Parses a `ut_metadata` payload.
    ///
    /// A `data` message is checked against its own `total_size`: the size is at most
    /// [`MAX_METADATA_SIZE`], the piece is within it, and the data is exactly as long as
    /// that piece. (Whether `total_size` matches what the peer announced in its handshake
    /// is for the caller.) Bytes after the dictionary of a `request` or `reject` are
    /// ignored. An unknown `msg_type` gives [`ExtensionError::UnknownMessageType`], which
    /// BEP9 says to ignore.
    pub fn parse(payload: &Bytes) -> Result<Self, ExtensionError> {
        let (document, used) = decode_dict(UT_METADATA, payload, MAX_VALUES)?;
        let dict = dict_of(&document);
        let msg_type = dict.get_int("msg_type").ok_or(ExtensionError::MissingKey {
            extension: UT_METADATA,
            key: "msg_type",
            expected: "an integer",
        })?;
        let piece = int_in::<u32>(dict.get("piece")).map(MetadataPiece).ok_or(
            ExtensionError::MissingKey {
                extension: UT_METADATA,
                key: "piece",
                expected: "an integer from 0 to 2^32 - 1",
            },
        )?;
        match msg_type {
            0 => Ok(Self::Request { piece }),
            2 => Ok(Self::Reject { piece }),
            1 => {
                let invalid = |key, problem| ExtensionError::InvalidValue {
                    extension: UT_METADATA,
                    key,
                    problem,
                };
                let total_size = int_in::<u32>(dict.get("total_size"))
                    .filter(|&size| size > 0)
                    .ok_or(ExtensionError::MissingKey {
                        extension: UT_METADATA,
                        key: "total_size",
                        expected: "a positive integer",
                    })?;
                if total_size > MAX_METADATA_SIZE {
                    return Err(invalid("total_size", "is over the 32 MiB limit"));
                }
                let expected_len = piece
                    .len_in(total_size)
                    .ok_or(invalid("piece", "is past the end of the metadata"))?;
                let data = payload.slice(used..);
                if data.len() != expected_len as usize {
                    return Err(invalid(
                        "data",
                        "is not as long as the piece (16 KiB, or the rest of the metadata)",
                    ));
                }
                Ok(Self::Data {
                    piece,
                    total_size,
                    data,
                })
            }
            other => Err(ExtensionError::UnknownMessageType {
                extension: UT_METADATA,
                msg_type: other,
            }),
        }
    }

    /// Appends the payload to `out`: the canonical dictionary, then a data message's bytes.
    pub fn encode(&self, out: &mut impl BufMut) {
        let (msg_type, total_size) = match self {
            Self::Request { .. } => (0, None),
            Self::Data { total_size, .. } => (1, Some(*total_size)),
            Self::Reject { .. } => (2, None),
        };
        out.put_u8(b'd');
        write_bytes(out, b"msg_type");
        write_int(out, msg_type);
        write_bytes(out, b"piece");
        write_int(out, i64::from(self.piece().0));
        if let Some(size) = total_size {
            write_bytes(out, b"total_size");
            write_int(out, i64::from(size));
        }
        out.put_u8(b'e');
        if let Self::Data { data, .. } = self {
            out.put_slice(data);
        }
    }

    /// The payload in a buffer of its own.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::new();
        self.encode(&mut out);
        out.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(bytes: &[u8]) -> Result<MetadataMessage, ExtensionError> {
        MetadataMessage::parse(&Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn request_and_reject_exact_bytes() {
        let request = MetadataMessage::Request {
            piece: MetadataPiece(0),
        };
        assert_eq!(&request.to_bytes()[..], b"d8:msg_typei0e5:piecei0ee");
        assert_eq!(parse(b"d8:msg_typei0e5:piecei0ee"), Ok(request));
        let reject = MetadataMessage::Reject {
            piece: MetadataPiece(3),
        };
        assert_eq!(&reject.to_bytes()[..], b"d8:msg_typei2e5:piecei3ee");
        assert_eq!(parse(b"d8:msg_typei2e5:piecei3ee"), Ok(reject));
    }

    #[test]
    fn data_exact_bytes_and_no_copy() {
        let mut payload = b"d8:msg_typei1e5:piecei1e10:total_sizei16390ee".to_vec();
        payload.extend_from_slice(b"abcdef");
        let payload = Bytes::from(payload);
        let msg = MetadataMessage::parse(&payload).unwrap();
        let MetadataMessage::Data {
            piece,
            total_size,
            data,
        } = &msg
        else {
            panic!("expected data, got {msg:?}");
        };
        assert_eq!((*piece, *total_size), (MetadataPiece(1), 16390));
        assert_eq!(&data[..], b"abcdef");
        assert_eq!(data.as_ptr(), payload[payload.len() - 6..].as_ptr());
        assert_eq!(msg.to_bytes(), payload);
    }

    #[test]
    fn data_is_checked_against_the_piece() {
        let data = |piece: u32, total: u32, len: usize| {
            let mut p =
                format!("d8:msg_typei1e5:piecei{piece}e10:total_sizei{total}ee").into_bytes();
            p.extend(std::iter::repeat_n(0u8, len));
            parse(&p)
        };
        assert!(data(0, 16384, 16384).is_ok());
        assert!(data(0, 20000, 16384).is_ok());
        assert!(data(1, 20000, 20000 - 16384).is_ok());
        let err = data(0, 20000, 100).unwrap_err();
        assert!(matches!(
            err,
            ExtensionError::InvalidValue { key: "data", .. }
        ));
        let err = data(2, 20000, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ut_metadata: \"piece\" is past the end of the metadata"
        );
        assert!(matches!(
            data(0, MAX_METADATA_SIZE + 1, 16384),
            Err(ExtensionError::InvalidValue {
                key: "total_size",
                ..
            })
        ));
        assert!(matches!(
            data(0, 0, 0),
            Err(ExtensionError::MissingKey {
                key: "total_size",
                ..
            })
        ));
    }

    #[test]
    fn malformed_and_unknown() {
        assert!(matches!(
            parse(b"d5:piecei0ee"),
            Err(ExtensionError::MissingKey {
                key: "msg_type",
                ..
            })
        ));
        assert!(matches!(
            parse(b"d8:msg_typei0e5:piecei-1ee"),
            Err(ExtensionError::MissingKey { key: "piece", .. })
        ));
        assert!(matches!(
            parse(b"i5e"),
            Err(ExtensionError::NotADictionary { .. })
        ));
        let unknown = parse(b"d8:msg_typei7e5:piecei0ee").unwrap_err();
        assert!(unknown.is_ignorable());
        assert!(!parse(b"d8:msg_typei0e").unwrap_err().is_ignorable());
    }

    #[test]
    fn piece_arithmetic() {
        assert_eq!(MetadataPiece::count(0), 0);
        assert_eq!(MetadataPiece::count(16384), 1);
        assert_eq!(MetadataPiece::count(16385), 2);
        assert_eq!(MetadataPiece(1).len_in(16385), Some(1));
        assert_eq!(MetadataPiece(1).len_in(16384), None);
        assert_eq!(MetadataPiece(u32::MAX).len_in(u32::MAX), None);
        assert_eq!(MetadataPiece(2).offset(), 32768);
    }

    fn arb_message() -> impl Strategy<Value = MetadataMessage> {
        let piece = any::<u32>().prop_map(MetadataPiece);
        prop_oneof![
            piece
                .clone()
                .prop_map(|piece| MetadataMessage::Request { piece }),
            piece.prop_map(|piece| MetadataMessage::Reject { piece }),
            (1u32..200_000, any::<prop::sample::Index>()).prop_map(|(total_size, i)| {
                let piece =
                    MetadataPiece(i.index(MetadataPiece::count(total_size) as usize) as u32);
                let len = piece.len_in(total_size).unwrap_or(0) as usize;
                MetadataMessage::Data {
                    piece,
                    total_size,
                    data: Bytes::from(vec![piece.0 as u8; len]),
                }
            }),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_parse_is_identity(msg in arb_message()) {
            prop_assert_eq!(MetadataMessage::parse(&msg.to_bytes()), Ok(msg));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn arbitrary_data_headers_never_panic(
            msg_type in -1i64..4, piece in any::<i64>(), total in any::<i64>(), len in 0usize..100,
        ) {
            let mut p = format!("d8:msg_typei{msg_type}e5:piecei{piece}e10:total_sizei{total}ee")
                .into_bytes();
            p.extend(std::iter::repeat_n(1u8, len));
            let _ = parse(&p);
        }
    }
}
