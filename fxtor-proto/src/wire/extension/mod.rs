//! The payloads of BEP10 `extended` messages.
//!
//! An `extended` message ([`Message::Extended`](super::Message::Extended)) carries an
//! extended message id and a payload. Id 0 is the [`ExtendedHandshake`], in which each side
//! names the extensions it supports and the ids it wants to receive them under; the other
//! ids are looked up in that map. The payload formats here:
//!
//! | extension | name | payload |
//! |---|---|---|
//! | BEP10 handshake | (id 0) | [`ExtendedHandshake`] |
//! | BEP9 metadata exchange | [`UT_METADATA`] | [`MetadataMessage`] |
//! | BEP11 peer exchange | [`UT_PEX`] | [`PexMessage`] |
//! | BEP55 holepunch | [`UT_HOLEPUNCH`] | [`HolepunchMessage`] |
//! | libtorrent's "don't have" | [`LT_DONTHAVE`] | [`DontHave`] |
//!
//! Bencoded payloads are read in lenient mode (peers differ in how canonical they are) but
//! with tight [`Limits`], and every length is checked against a bound before anything is
//! built from it.
//!
//! ```
//! use fxtor_proto::wire::extension::{ExtendedHandshake, MetadataMessage, MetadataPiece, UT_METADATA};
//! use fxtor_proto::wire::Message;
//!
//! let mut ours = ExtendedHandshake::default();
//! ours.extensions.insert(UT_METADATA.to_owned(), 3);
//! ours.client = Some("fxtor 0.1.0".to_owned());
//! let handshake = Message::Extended { id: ExtendedHandshake::ID, payload: ours.to_bytes() };
//!
//! // The peer's handshake says which id to use for ut_metadata when talking to it.
//! let theirs = ExtendedHandshake::parse(b"d1:md11:ut_metadatai2ee13:metadata_sizei31235ee")?;
//! let id = theirs.extension_id(UT_METADATA).unwrap();
//! let request = MetadataMessage::Request { piece: MetadataPiece(0) };
//! let message = Message::Extended { id, payload: request.to_bytes() };
//! assert_eq!(theirs.metadata_size, Some(31235));
//! # Ok::<(), fxtor_proto::wire::extension::ExtensionError>(())
//! ```

mod donthave;
mod handshake;
mod holepunch;
mod metadata;
mod pex;

use thiserror::Error;

use crate::bencode::{self, DecodeError, Dict, Document, Limits, Mode, Value};

pub use donthave::DontHave;
pub use handshake::ExtendedHandshake;
pub use holepunch::{HolepunchError, HolepunchMessage};
pub use metadata::{MetadataMessage, MetadataPiece, MAX_METADATA_SIZE, METADATA_PIECE_SIZE};
pub use pex::{PexFlags, PexMessage, PexPeer};

/// The extension name of BEP9 metadata exchange.
pub const UT_METADATA: &str = "ut_metadata";
/// The extension name of BEP11 peer exchange.
pub const UT_PEX: &str = "ut_pex";
/// The extension name of BEP55 holepunching.
pub const UT_HOLEPUNCH: &str = "ut_holepunch";
/// The extension name of libtorrent's "don't have" message, which withdraws a `have`.
pub const LT_DONTHAVE: &str = "lt_donthave";

/// Why an extension payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExtensionError {
    /// The payload is not valid bencode (or exceeds the decoding limits).
    #[error("{extension}: {source}")]
    Bencode {
        /// Which extension's payload.
        extension: &'static str,
        /// What the bencode decoder found.
        source: DecodeError,
    },
    /// The payload is bencode but not a dictionary.
    #[error("{extension}: the payload is a {found}, not a dictionary")]
    NotADictionary {
        /// Which extension's payload.
        extension: &'static str,
        /// The type it is instead.
        found: &'static str,
    },
    /// A required key is missing or has the wrong type.
    #[error("{extension}: {key:?} is missing or not {expected}")]
    MissingKey {
        /// Which extension's payload.
        extension: &'static str,
        /// The key.
        key: &'static str,
        /// What it should be, e.g. "an integer".
        expected: &'static str,
    },
    /// A value is out of range or inconsistent with the rest of the message.
    #[error("{extension}: {key:?} {problem}")]
    InvalidValue {
        /// Which extension's payload.
        extension: &'static str,
        /// The key (or field) at fault.
        key: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A binary payload of the wrong size.
    #[error("{extension}: payload of {actual} bytes, must be {expected}")]
    WrongLength {
        /// Which extension's payload.
        extension: &'static str,
        /// The size it must have.
        expected: usize,
        /// The size it has.
        actual: usize,
    },
    /// More peers in one message than are accepted.
    #[error("{extension}: {count} peers in {key:?}, at most {max} are accepted")]
    TooManyPeers {
        /// Which extension's payload.
        extension: &'static str,
        /// Which list (`added` or `dropped`, both families together).
        key: &'static str,
        /// How many it held.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A message type this crate does not know. BEP9 requires unknown `ut_metadata`
    /// message types to be ignored, so this is [`ignorable`](Self::is_ignorable).
    #[error("{extension}: unknown message type {msg_type}")]
    UnknownMessageType {
        /// Which extension's payload.
        extension: &'static str,
        /// The type it gave.
        msg_type: i64,
    },
}

impl ExtensionError {
    /// Whether the message should be ignored rather than counted against the peer: a
    /// message type added to the extension after this crate was written.
    pub fn is_ignorable(&self) -> bool {
        matches!(self, ExtensionError::UnknownMessageType { .. })
    }
}

/// Decodes the bencoded dictionary at the start of `payload`; returns it (see [`dict_of`])
/// and its length.
fn decode_dict<'a>(
    extension: &'static str,
    payload: &'a [u8],
    max_values: usize,
) -> Result<(Document<'a>, usize), ExtensionError> {
    let limits = Limits {
        max_depth: 8,
        max_values,
    };
    let (document, used) = bencode::decode_prefix(payload, Mode::Lenient, limits)
        .map_err(|source| ExtensionError::Bencode { extension, source })?;
    if document.as_dict().is_none() {
        return Err(ExtensionError::NotADictionary {
            extension,
            found: document.type_name(),
        });
    }
    Ok((document, used))
}

/// Decodes a payload that must be exactly one bencoded dictionary (see [`dict_of`]).
fn decode_whole_dict<'a>(
    extension: &'static str,
    payload: &'a [u8],
    max_values: usize,
) -> Result<Document<'a>, ExtensionError> {
    let (document, used) = decode_dict(extension, payload, max_values)?;
    if used != payload.len() {
        return Err(ExtensionError::Bencode {
            extension,
            source: DecodeError {
                offset: used,
                kind: bencode::DecodeErrorKind::TrailingData,
            },
        });
    }
    Ok(document)
}

/// The dictionary of a document from [`decode_dict`] or [`decode_whole_dict`], which checked
/// that it is one (an empty dictionary otherwise).
fn dict_of<'d>(document: &'d Document<'_>) -> Dict<'d> {
    document.as_dict().unwrap_or_default()
}

/// An integer in `T`'s range, or `None` if the value is not an integer or out of range.
fn int_in<T: TryFrom<i64>>(value: Option<Value<'_>>) -> Option<T> {
    value
        .and_then(|v| v.as_int())
        .and_then(|i| T::try_from(i).ok())
}

#[cfg(test)]
pub(crate) mod test_support {
    use proptest::prelude::*;

    use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

    pub fn arb_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
            any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
        ]
    }

    pub fn arb_socket_addr() -> impl Strategy<Value = SocketAddr> {
        (arb_ip(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port))
    }
}
