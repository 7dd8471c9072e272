//! The peer wire protocol: the handshake, every peer message, and the payloads of the
//! extension messages.
//!
//! - [`Handshake`] and [`ReservedBits`]: the 68 bytes that open a connection (BEP3, BEP4).
//! - [`Message`]: keep-alive, BEP3's messages, BEP5's `port`, BEP6's fast extension,
//!   BEP10's `extended`, BEP52's hash messages; [`Message::encode`] writes one.
//! - [`MessageDecoder`]: takes messages off a receive buffer, however the stream is split,
//!   with a hard limit on their length; piece data stays in the receive buffer's memory.
//! - [`extension`]: the payloads carried in `extended` messages (BEP9, 10, 11, 55,
//!   lt_donthave).
//! - [`allowed_fast_set`]: BEP6's canonical allowed-fast set.
//!
//! Nothing here keeps connection state (who is choked, which extensions were negotiated):
//! this module turns bytes into values and back.
//!
//! ```
//! use bytes::BytesMut;
//! use fxtor_proto::wire::{Block, Message, MessageDecoder};
//! use fxtor_proto::PieceIndex;
//!
//! let mut stream = BytesMut::new();
//! Message::Interested.encode(&mut stream);
//! let block = Block { piece: PieceIndex(3), offset: 0, data: vec![7; 16384].into() };
//! Message::Piece(block.clone()).encode(&mut stream);
//!
//! let mut decoder = MessageDecoder::new();
//! let mut received = stream.split_to(10); // the bytes arrive in two parts
//! assert_eq!(decoder.decode(&mut received), Ok(Some(Message::Interested)));
//! assert_eq!(decoder.decode(&mut received), Ok(None));
//! received.unsplit(stream);
//! assert_eq!(decoder.decode(&mut received), Ok(Some(Message::Piece(block))));
//! ```

mod allowed_fast;
mod decoder;
mod error;
pub mod extension;
mod handshake;
mod message;

pub use allowed_fast::allowed_fast_set;
pub use decoder::MessageDecoder;
pub use error::WireError;
pub use handshake::{Handshake, ReservedBits, PROTOCOL_PREFIX};
pub use message::{Block, BlockRequest, HashRequest, Hashes, Message, MessageId};

#[cfg(test)]
mod tests;
