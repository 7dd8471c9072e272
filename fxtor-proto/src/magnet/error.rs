use thiserror::Error;

use super::{PeerAddressError, SelectOnlyError};

/// The most characters of an offending value an error message repeats.
const MAX_EXCERPT_CHARS: usize = 64;

/// Why a magnet URI was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid magnet URI at byte {offset}: {kind}")]
pub struct MagnetError {
    /// Byte offset in the URI: of the offending parameter's value, or of the end of the URI
    /// when something is missing.
    pub offset: usize,
    /// What was wrong there.
    pub kind: MagnetErrorKind,
}

/// The kinds of [`MagnetError`]. Values quoted in them are cut short when long.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MagnetErrorKind {
    /// The text does not start with `magnet:?`.
    #[error("not a magnet URI (it must start with `magnet:?`)")]
    NotMagnet,
    /// No `xt` parameter names a BitTorrent info-hash.
    #[error("no info-hash: there is no `xt=urn:btih:` or `xt=urn:btmh:` parameter")]
    MissingInfoHash,
    /// A `urn:btih:` that is neither 40 hex digits nor 32 base32 characters.
    #[error("btih info-hash {value:?} is neither 40 hex digits nor 32 base32 characters")]
    BadBtih {
        /// The offending hash.
        value: String,
    },
    /// A `urn:btmh:` that is not a hex multihash whose digest has its declared length.
    #[error("btmh info-hash {value:?} is not a hex multihash of `1220` and a 32-byte digest")]
    BadBtmh {
        /// The offending hash.
        value: String,
    },
    /// A `urn:btmh:` multihash other than sha2-256 with a 32-byte digest.
    #[error(
        "multihash code {code:#x} with a {len}-byte digest: a v2 info-hash is sha2-256 \
         (code 0x12, 32 bytes)"
    )]
    UnsupportedMultihash {
        /// The multihash function code.
        code: u64,
        /// The declared digest length.
        len: u64,
    },
    /// A second `urn:btih:` naming a different torrent.
    #[error("a second, different btih info-hash")]
    ConflictingBtih,
    /// A second `urn:btmh:` naming a different torrent.
    #[error("a second, different btmh info-hash")]
    ConflictingBtmh,
    /// A BEP53 `so` selection that does not parse.
    #[error("bad `so` file selection {value:?}: {reason}")]
    BadSelectOnly {
        /// The offending selection.
        value: String,
        /// What is wrong with it.
        reason: SelectOnlyError,
    },
    /// An `x.pe` peer address that does not parse.
    #[error("bad `x.pe` peer address {value:?}: {reason}")]
    BadPeer {
        /// The offending address.
        value: String,
        /// What is wrong with it.
        reason: PeerAddressError,
    },
    /// An `xl` that is not a decimal byte count.
    #[error("bad `xl` exact length {value:?}: not a byte count")]
    BadExactLength {
        /// The offending length.
        value: String,
    },
}

/// The start of `value`, for an error message.
pub(super) fn excerpt(value: &str) -> String {
    match value.char_indices().nth(MAX_EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", value.get(..cut).unwrap_or_default()),
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_are_bounded() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(1000);
        assert_eq!(excerpt(&long).chars().count(), MAX_EXCERPT_CHARS + 1);
    }
}
