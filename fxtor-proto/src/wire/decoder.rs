//! The incremental message decoder.

use bytes::{Buf, Bytes, BytesMut};

use super::{Block, BlockRequest, HashRequest, Hashes, Message, MessageId, WireError};
use crate::{PieceIndex, Sha256Hash, BLOCK_SIZE};

/// Reads [`Message`]s from a peer's byte stream, however it arrives split.
///
/// Feed it the connection's receive buffer after each read; it takes whole messages off the
/// front and leaves a partial one in place. A length prefix over
/// [`max_message_len`](Self::max_message_len) is refused as soon as its four bytes are
/// there. It never reserves or copies: the caller appends what it reads (ideally reads
/// that sit side by side in one allocation, joined with `BytesMut::unsplit` for free). Payloads that are data (`piece`, `bitfield`,
/// `extended`) are handed out as [`Bytes`] that share the receive buffer's memory.
///
/// ```
/// use bytes::BytesMut;
/// use fxtor_proto::wire::{Message, MessageDecoder, WireError};
///
/// let mut decoder = MessageDecoder::new();
/// let mut buf = BytesMut::from(&[0u8, 0, 0, 5, 4, 0][..]);
/// assert_eq!(decoder.decode(&mut buf), Ok(None)); // `have` needs 3 more bytes
/// buf.extend_from_slice(&[0, 0, 7, 0, 0]);
/// assert!(matches!(decoder.decode(&mut buf), Ok(Some(Message::Have(_)))));
/// assert_eq!(&buf[..], &[0, 0]); // the start of the next message stays
///
/// let mut hostile = BytesMut::from(&[0xffu8, 0xff, 0xff, 0xff][..]);
/// assert!(matches!(decoder.decode(&mut hostile), Err(WireError::MessageTooLong { .. })));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageDecoder {
    max_message_len: u32,
}

impl Default for MessageDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageDecoder {
    /// The default limit on a message's length (id and payload): 1 MiB, enough for the
    /// bitfield of a torrent of 8 million pieces.
    pub const DEFAULT_MAX_MESSAGE_LEN: u32 = 1 << 20;

    /// The least limit [`for_torrent`](Self::for_torrent) sets: 64 KiB, room for any block
    /// of 16 KiB, a metadata piece, 512 merkle hashes with their proof, or an extension
    /// handshake.
    pub const MIN_MAX_MESSAGE_LEN: u32 = 4 * BLOCK_SIZE;

    /// A decoder with [`DEFAULT_MAX_MESSAGE_LEN`](Self::DEFAULT_MAX_MESSAGE_LEN).
    pub fn new() -> Self {
        Self {
            max_message_len: Self::DEFAULT_MAX_MESSAGE_LEN,
        }
    }

    /// A decoder that refuses messages longer than `max_message_len` bytes (id and payload,
    /// without the length prefix). The limit is capped at `u32::MAX - 4`, so that a whole
    /// frame's length fits in 32 bits.
    pub fn with_max_message_len(max_message_len: u32) -> Self {
        Self {
            max_message_len: max_message_len.min(u32::MAX - 4),
        }
    }

    /// A decoder sized for a torrent of `num_pieces` pieces: its bitfield fits, and so does
    /// everything up to [`MIN_MAX_MESSAGE_LEN`](Self::MIN_MAX_MESSAGE_LEN).
    pub fn for_torrent(num_pieces: u32) -> Self {
        let bitfield = 1 + num_pieces.div_ceil(8);
        Self::with_max_message_len(bitfield.max(Self::MIN_MAX_MESSAGE_LEN))
    }

    /// The longest message (id and payload) this decoder accepts.
    pub fn max_message_len(&self) -> u32 {
        self.max_message_len
    }

    /// Takes the next whole message off the front of `buf`.
    ///
    /// `Ok(None)` means more bytes are needed; `buf` is left as it was.
    /// Unknown message ids come out as [`Message::Unknown`]. An error means the stream is
    /// unusable and the connection should be closed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, WireError> {
        let Some(prefix) = buf.first_chunk::<4>() else {
            return Ok(None);
        };
        let length = u32::from_be_bytes(*prefix);
        if length > self.max_message_len {
            return Err(WireError::MessageTooLong {
                length,
                max: self.max_message_len,
            });
        }
        // `length` is at most `u32::MAX - 4` (see `with_max_message_len`), so the frame's
        // length fits in 32 bits and thus in a usize.
        let frame_len = 4 + length as usize;
        if buf.len() < frame_len {
            return Ok(None);
        }
        buf.advance(4);
        if length == 0 {
            return Ok(Some(Message::KeepAlive));
        }
        let body = buf.split_to(length as usize).freeze();
        parse_body(body).map(Some)
    }
}

/// Checks that a message of a fixed size has it.
fn exact(message: MessageId, body: &Bytes, expected: u32) -> Result<(), WireError> {
    let actual = body_len(body);
    if actual != expected {
        return Err(WireError::WrongLength {
            message,
            expected,
            actual,
        });
    }
    Ok(())
}

/// Checks that a message is at least as long as its fixed fields.
fn at_least(message: MessageId, body: &Bytes, min: u32) -> Result<(), WireError> {
    let actual = body_len(body);
    if actual < min {
        return Err(WireError::TooShort {
            message,
            min,
            actual,
        });
    }
    Ok(())
}

/// A body's length as the u32 its prefix gave.
fn body_len(body: &Bytes) -> u32 {
    // The body was cut to the length in a u32 prefix.
    u32::try_from(body.len()).unwrap_or(u32::MAX)
}

/// Reads a message's fields after its length has been checked; every read below is within
/// that length.
struct Fields(Bytes);

impl Fields {
    fn u32(&mut self) -> u32 {
        self.0.get_u32()
    }

    fn piece(&mut self) -> PieceIndex {
        PieceIndex(self.u32())
    }

    fn block_request(&mut self) -> BlockRequest {
        BlockRequest {
            piece: self.piece(),
            offset: self.u32(),
            length: self.u32(),
        }
    }

    fn sha256(&mut self) -> Sha256Hash {
        let mut hash = [0u8; 32];
        self.0.copy_to_slice(&mut hash);
        Sha256Hash(hash)
    }

    fn hash_request(&mut self) -> HashRequest {
        HashRequest {
            pieces_root: self.sha256(),
            base_layer: self.u32(),
            index: self.u32(),
            length: self.u32(),
            proof_layers: self.u32(),
        }
    }
}

/// Parses a message body: the id and its payload, at least one byte.
fn parse_body(mut body: Bytes) -> Result<Message, WireError> {
    let Some(&id_byte) = body.first() else {
        // The decoder handles length zero (keep-alive) before calling this.
        return Ok(Message::KeepAlive);
    };
    let Some(id) = MessageId::from_u8(id_byte) else {
        return Ok(Message::Unknown {
            id: id_byte,
            payload: body.slice(1..),
        });
    };
    use MessageId as Id;
    let fixed = |len: u32| exact(id, &body, len);
    match id {
        Id::Choke | Id::Unchoke | Id::Interested | Id::NotInterested => fixed(1)?,
        Id::HaveAll | Id::HaveNone => fixed(1)?,
        Id::Have | Id::Suggest | Id::AllowedFast => fixed(5)?,
        Id::Port => fixed(3)?,
        Id::Request | Id::Cancel | Id::Reject => fixed(13)?,
        Id::HashRequest | Id::HashReject => fixed(1 + HashRequest::ENCODED_LEN as u32)?,
        Id::Bitfield => {}
        Id::Piece => at_least(id, &body, 9)?,
        Id::Extended => at_least(id, &body, 2)?,
        Id::Hashes => {
            at_least(id, &body, 1 + HashRequest::ENCODED_LEN as u32)?;
            if (body.len() - 1 - HashRequest::ENCODED_LEN) % 32 != 0 {
                return Err(WireError::Malformed {
                    message: id,
                    problem: "the hashes are not a whole number of 32-byte hashes",
                });
            }
        }
    }
    body.advance(1);
    let mut f = Fields(body);
    Ok(match id {
        Id::Choke => Message::Choke,
        Id::Unchoke => Message::Unchoke,
        Id::Interested => Message::Interested,
        Id::NotInterested => Message::NotInterested,
        Id::HaveAll => Message::HaveAll,
        Id::HaveNone => Message::HaveNone,
        Id::Have => Message::Have(f.piece()),
        Id::Suggest => Message::Suggest(f.piece()),
        Id::AllowedFast => Message::AllowedFast(f.piece()),
        Id::Port => Message::Port(f.0.get_u16()),
        Id::Request => Message::Request(f.block_request()),
        Id::Cancel => Message::Cancel(f.block_request()),
        Id::Reject => Message::Reject(f.block_request()),
        Id::HashRequest => Message::HashRequest(f.hash_request()),
        Id::HashReject => Message::HashReject(f.hash_request()),
        Id::Bitfield => Message::Bitfield(f.0),
        Id::Piece => Message::Piece(Block {
            piece: f.piece(),
            offset: f.u32(),
            data: f.0,
        }),
        Id::Extended => {
            let ext_id = f.0.get_u8();
            Message::Extended {
                id: ext_id,
                payload: f.0,
            }
        }
        Id::Hashes => {
            let request = f.hash_request();
            let hashes =
                f.0.chunks_exact(32)
                    .filter_map(Sha256Hash::from_slice)
                    .collect();
            Message::Hashes(Hashes { request, hashes })
        }
    })
}
