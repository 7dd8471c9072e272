//! Bencode (BEP3): a decoder that borrows from its input and remembers where every value
//! came from, and a canonical encoder.
//!
//! A decode gives a [`Document`]: every value in it, stored flat in one vector. Every
//! [`Value`] knows its original bytes ([`Value::raw`]) and offset, so an
//! info-hash is always the hash of the info dictionary *as it was written*, never of a
//! re-encoding. Decoding is bounded by [`Limits`] (nesting depth, number of values) and
//! runs in one of two [`Mode`]s: [`Mode::Strict`] accepts only canonical bencode,
//! [`Mode::Lenient`] accepts what real torrents contain (unsorted keys, leading zeros).
//!
//! ```
//! use fxtor_proto::bencode::{self, Mode};
//!
//! let input = b"d3:cow3:moo4:spami42ee";
//! let doc = bencode::decode(input, Mode::Strict).unwrap();
//! let dict = doc.as_dict().unwrap();
//! assert_eq!(dict.get_str("cow"), Some("moo"));
//! assert_eq!(dict.get_int("spam"), Some(42));
//! assert_eq!(doc.raw(), &input[..]);
//! // Canonical encoding of a canonical input gives the same bytes back.
//! assert_eq!(bencode::to_vec(&doc.root()), input);
//! ```

mod decode;
mod encode;
mod error;
mod owned;
mod value;

pub use decode::{decode, decode_prefix, decode_with, Limits, Mode};
pub use encode::{to_vec, write_bytes, write_int, write_value};
pub use error::{DecodeError, DecodeErrorKind};
pub use owned::OwnedValue;
pub use value::{Dict, Document, Entries, Items, Kind, List, Value};
