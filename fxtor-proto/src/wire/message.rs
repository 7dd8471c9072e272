//! Peer messages (BEP3, BEP5's `port`, BEP6, BEP10, BEP52) and their encoding.

use std::fmt;

use bytes::{BufMut, Bytes};

use crate::{PieceIndex, Sha256Hash};

/// The one-byte id that follows a message's length prefix (BEP4's registry).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum MessageId {
    /// BEP3 `choke`.
    Choke = 0,
    /// BEP3 `unchoke`.
    Unchoke = 1,
    /// BEP3 `interested`.
    Interested = 2,
    /// BEP3 `not interested`.
    NotInterested = 3,
    /// BEP3 `have`.
    Have = 4,
    /// BEP3 `bitfield`.
    Bitfield = 5,
    /// BEP3 `request`.
    Request = 6,
    /// BEP3 `piece`.
    Piece = 7,
    /// BEP3 `cancel`.
    Cancel = 8,
    /// BEP5 `port`: the sender's DHT port.
    Port = 9,
    /// BEP6 `suggest piece`.
    Suggest = 13,
    /// BEP6 `have all`.
    HaveAll = 14,
    /// BEP6 `have none`.
    HaveNone = 15,
    /// BEP6 `reject request`.
    Reject = 16,
    /// BEP6 `allowed fast`.
    AllowedFast = 17,
    /// BEP10 `extended`.
    Extended = 20,
    /// BEP52 `hash request`.
    HashRequest = 21,
    /// BEP52 `hashes`.
    Hashes = 22,
    /// BEP52 `hash reject`.
    HashReject = 23,
}

impl MessageId {
    /// The message id for a byte, if it is one we know.
    pub fn from_u8(id: u8) -> Option<Self> {
        use MessageId::*;
        Some(match id {
            0 => Choke,
            1 => Unchoke,
            2 => Interested,
            3 => NotInterested,
            4 => Have,
            5 => Bitfield,
            6 => Request,
            7 => Piece,
            8 => Cancel,
            9 => Port,
            13 => Suggest,
            14 => HaveAll,
            15 => HaveNone,
            16 => Reject,
            17 => AllowedFast,
            20 => Extended,
            21 => HashRequest,
            22 => Hashes,
            23 => HashReject,
            _ => return None,
        })
    }

    /// The message's name as the BEPs spell it.
    pub fn name(self) -> &'static str {
        use MessageId::*;
        match self {
            Choke => "choke",
            Unchoke => "unchoke",
            Interested => "interested",
            NotInterested => "not interested",
            Have => "have",
            Bitfield => "bitfield",
            Request => "request",
            Piece => "piece",
            Cancel => "cancel",
            Port => "port",
            Suggest => "suggest piece",
            HaveAll => "have all",
            HaveNone => "have none",
            Reject => "reject request",
            AllowedFast => "allowed fast",
            Extended => "extended",
            HashRequest => "hash request",
            Hashes => "hashes",
            HashReject => "hash reject",
        }
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<MessageId> for u8 {
    fn from(id: MessageId) -> u8 {
        id as u8
    }
}

/// A request for a block: `length` bytes at `offset` in `piece`. The payload of `request`,
/// `cancel` and `reject request`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct BlockRequest {
    /// The piece the block is in.
    pub piece: PieceIndex,
    /// The block's byte offset in the piece.
    pub offset: u32,
    /// The block's length in bytes (16 KiB, [`BLOCK_SIZE`](crate::BLOCK_SIZE), except at the
    /// end of a piece).
    pub length: u32,
}

/// A block of piece data: the payload of a `piece` message. `data` is shared, never copied,
/// from the buffer it was received in or read into.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Block {
    /// The piece the block is in.
    pub piece: PieceIndex,
    /// The block's byte offset in the piece.
    pub offset: u32,
    /// The block's bytes.
    pub data: Bytes,
}

impl Block {
    /// The length of a `piece` message before its data: length prefix, message id, piece
    /// index and offset.
    pub const HEADER_LEN: usize = 13;

    /// The request this block answers.
    ///
    /// A block whose data is 4 GiB or longer cannot be sent; its length saturates here.
    pub fn request(&self) -> BlockRequest {
        BlockRequest {
            piece: self.piece,
            offset: self.offset,
            length: u32::try_from(self.data.len()).unwrap_or(u32::MAX),
        }
    }

    /// Writes the [`HEADER_LEN`](Self::HEADER_LEN) bytes of the `piece` message that come
    /// before the data, so the data can follow as a separate buffer (a vectored write)
    /// without being copied.
    ///
    /// # Panics
    ///
    /// If the data is too long for a message's 32-bit length prefix (4 GiB or more).
    pub fn encode_header(&self, out: &mut impl BufMut) {
        out.put_u32(frame_len(9 + self.data.len()));
        out.put_u8(MessageId::Piece.into());
        out.put_u32(self.piece.0);
        out.put_u32(self.offset);
    }
}

/// A BEP52 request for merkle hashes: `length` hashes from layer `base_layer` of the tree of
/// the file with root `pieces_root`, starting at hash `index`, with enough uncle hashes to
/// prove them up to `proof_layers` layers above. The payload of `hash request` and
/// `hash reject`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct HashRequest {
    /// The file's merkle root.
    pub pieces_root: Sha256Hash,
    /// How many layers above the leaves (the 16 KiB blocks) the requested hashes are.
    pub base_layer: u32,
    /// The first requested hash's position in its layer.
    pub index: u32,
    /// How many hashes of the base layer are requested.
    pub length: u32,
    /// How many layers of uncle hashes to add.
    pub proof_layers: u32,
}

impl HashRequest {
    /// Encoded size: the root and four integers.
    pub const ENCODED_LEN: usize = 32 + 4 * 4;

    /// Whether the request follows BEP52's rules: `length` a power of two, at least two,
    /// and `index` a multiple of it.
    pub fn is_well_formed(&self) -> bool {
        self.length >= 2 && self.length.is_power_of_two() && self.index % self.length == 0
    }

    fn encode(&self, out: &mut impl BufMut) {
        out.put_slice(self.pieces_root.as_bytes());
        out.put_u32(self.base_layer);
        out.put_u32(self.index);
        out.put_u32(self.length);
        out.put_u32(self.proof_layers);
    }
}

/// The answer to a [`HashRequest`]: the requested hashes of the base layer followed by the
/// uncle hashes, lowest layer first.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Hashes {
    /// The request this answers, repeated.
    pub request: HashRequest,
    /// The base layer's hashes, then the proof.
    pub hashes: Vec<Sha256Hash>,
}

/// One message of the peer wire protocol.
///
/// ```
/// use bytes::BytesMut;
/// use fxtor_proto::wire::{BlockRequest, Message, MessageDecoder};
/// use fxtor_proto::PieceIndex;
///
/// let request = Message::Request(BlockRequest { piece: PieceIndex(1), offset: 16384, length: 16384 });
/// let mut buf = BytesMut::new();
/// request.encode(&mut buf);
/// assert_eq!(buf.len(), request.encoded_len());
/// assert_eq!(&buf[..5], &[0, 0, 0, 13, 6]);
///
/// let mut decoder = MessageDecoder::new();
/// assert_eq!(decoder.decode(&mut buf).unwrap(), Some(request));
/// assert!(buf.is_empty());
/// ```
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// A message of length zero, sent to keep an idle connection open.
    KeepAlive,
    /// The sender will not serve requests (except allowed-fast ones, with BEP6).
    Choke,
    /// The sender will serve requests.
    Unchoke,
    /// The sender wants something the receiver has.
    Interested,
    /// The sender wants nothing the receiver has.
    NotInterested,
    /// The sender has verified this piece.
    Have(PieceIndex),
    /// Which pieces the sender has, one bit per piece, high bit of the first byte for piece
    /// 0; only right after the handshake. Its length is checked against the torrent by the
    /// caller, who knows it.
    Bitfield(Bytes),
    /// Asks for a block.
    Request(BlockRequest),
    /// A block of data.
    Piece(Block),
    /// Withdraws a request.
    Cancel(BlockRequest),
    /// The sender's DHT port (BEP5).
    Port(u16),
    /// BEP6: "you might like to download this piece".
    Suggest(PieceIndex),
    /// BEP6: the sender has every piece (in place of a bitfield).
    HaveAll,
    /// BEP6: the sender has no piece (in place of a bitfield).
    HaveNone,
    /// BEP6: a request will not be served.
    Reject(BlockRequest),
    /// BEP6: the sender will serve this piece even while choking.
    AllowedFast(PieceIndex),
    /// BEP10: an extension message. `id` 0 is the extension handshake; other ids are the
    /// ones the *receiver* assigned in its handshake. The payload's format depends on the
    /// extension (see [`extension`](super::extension)).
    Extended {
        /// The extended message id.
        id: u8,
        /// The extension's payload.
        payload: Bytes,
    },
    /// BEP52: asks for merkle hashes.
    HashRequest(HashRequest),
    /// BEP52: merkle hashes, answering a hash request.
    Hashes(Hashes),
    /// BEP52: a hash request will not be served.
    HashReject(HashRequest),
    /// A message with an id this crate does not know, passed through so the caller can
    /// ignore it (as libtorrent does) rather than drop the connection. `id` is never one of
    /// [`MessageId`]'s.
    Unknown {
        /// The message id.
        id: u8,
        /// Everything after the id.
        payload: Bytes,
    },
}

/// The 32-bit length prefix for a message body of `len` bytes.
///
/// # Panics
///
/// If `len` does not fit in 32 bits: a body of 4 GiB or more cannot be framed, and no
/// message fxtor builds comes near it (the largest, a bitfield, is 1/8 byte per piece).
fn frame_len(len: usize) -> u32 {
    match u32::try_from(len) {
        Ok(len) => len,
        Err(_) => panic!("a peer message body of {len} bytes does not fit a 32-bit length"),
    }
}

impl Message {
    /// The message's id; `None` for a keep-alive (which has none) and for
    /// [`Message::Unknown`] (whose id is not one of ours).
    pub fn id(&self) -> Option<MessageId> {
        Some(match self {
            Message::KeepAlive | Message::Unknown { .. } => return None,
            Message::Choke => MessageId::Choke,
            Message::Unchoke => MessageId::Unchoke,
            Message::Interested => MessageId::Interested,
            Message::NotInterested => MessageId::NotInterested,
            Message::Have(_) => MessageId::Have,
            Message::Bitfield(_) => MessageId::Bitfield,
            Message::Request(_) => MessageId::Request,
            Message::Piece(_) => MessageId::Piece,
            Message::Cancel(_) => MessageId::Cancel,
            Message::Port(_) => MessageId::Port,
            Message::Suggest(_) => MessageId::Suggest,
            Message::HaveAll => MessageId::HaveAll,
            Message::HaveNone => MessageId::HaveNone,
            Message::Reject(_) => MessageId::Reject,
            Message::AllowedFast(_) => MessageId::AllowedFast,
            Message::Extended { .. } => MessageId::Extended,
            Message::HashRequest(_) => MessageId::HashRequest,
            Message::Hashes(_) => MessageId::Hashes,
            Message::HashReject(_) => MessageId::HashReject,
        })
    }

    /// The length of the message's body: what its length prefix says (id and payload).
    fn body_len(&self) -> usize {
        match self {
            Message::KeepAlive => 0,
            Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 1,
            Message::Have(_) | Message::Suggest(_) | Message::AllowedFast(_) => 5,
            Message::Port(_) => 3,
            Message::Request(_) | Message::Cancel(_) | Message::Reject(_) => 13,
            Message::Bitfield(bits) => 1 + bits.len(),
            Message::Piece(block) => 9 + block.data.len(),
            Message::Extended { payload, .. } => 2 + payload.len(),
            Message::HashRequest(_) | Message::HashReject(_) => 1 + HashRequest::ENCODED_LEN,
            Message::Hashes(h) => 1 + HashRequest::ENCODED_LEN + 32 * h.hashes.len(),
            Message::Unknown { payload, .. } => 1 + payload.len(),
        }
    }

    /// How many bytes [`encode`](Self::encode) writes, length prefix included.
    pub fn encoded_len(&self) -> usize {
        4 + self.body_len()
    }

    /// Appends the message, length prefix included, to `out`.
    ///
    /// To send a `piece` message without copying its data, write
    /// [`Block::encode_header`] and then the data as a buffer of its own.
    ///
    /// # Panics
    ///
    /// If a payload is too long for the 32-bit length prefix (4 GiB or more).
    pub fn encode(&self, out: &mut impl BufMut) {
        match self {
            Message::KeepAlive => out.put_u32(0),
            Message::Piece(block) => {
                block.encode_header(out);
                out.put_slice(&block.data);
            }
            Message::Unknown { id, payload } => {
                out.put_u32(frame_len(self.body_len()));
                out.put_u8(*id);
                out.put_slice(payload);
            }
            known => {
                out.put_u32(frame_len(self.body_len()));
                if let Some(id) = known.id() {
                    out.put_u8(id.into());
                }
                known.encode_payload(out);
            }
        }
    }

    /// Writes what follows the message id.
    fn encode_payload(&self, out: &mut impl BufMut) {
        match self {
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => {}
            Message::Have(piece) | Message::Suggest(piece) | Message::AllowedFast(piece) => {
                out.put_u32(piece.0)
            }
            Message::Bitfield(bits) => out.put_slice(bits),
            Message::Request(r) | Message::Cancel(r) | Message::Reject(r) => {
                out.put_u32(r.piece.0);
                out.put_u32(r.offset);
                out.put_u32(r.length);
            }
            Message::Piece(block) => {
                out.put_u32(block.piece.0);
                out.put_u32(block.offset);
                out.put_slice(&block.data);
            }
            Message::Port(port) => out.put_u16(*port),
            Message::Extended { id, payload } => {
                out.put_u8(*id);
                out.put_slice(payload);
            }
            Message::HashRequest(r) | Message::HashReject(r) => r.encode(out),
            Message::Hashes(h) => {
                h.request.encode(out);
                for hash in &h.hashes {
                    out.put_slice(hash.as_bytes());
                }
            }
            Message::Unknown { payload, .. } => out.put_slice(payload),
        }
    }

    /// The message, encoded, in a buffer of its own.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out.into()
    }
}
