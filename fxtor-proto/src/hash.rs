//! Digests and info-hashes.
//!
//! A v1 torrent is named by the SHA-1 of its info dictionary ([`InfoHashV1`]), a v2 torrent by
//! its SHA-256 ([`InfoHashV2`]); a hybrid torrent has both ([`InfoHashes`]). Where a 20-byte
//! identifier is needed for a v2 torrent (the peer wire handshake, trackers, the DHT), the v2
//! hash is truncated to its first 20 bytes ([`InfoHashV2::truncated`]).

use std::fmt;

use sha1::Digest as _;

macro_rules! digest_newtype {
    ($(#[$meta:meta])* $name:ident, $len:expr) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// The digest's length in bytes.
            pub const LEN: usize = $len;

            /// The digest's bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Reads a digest from a slice of exactly [`Self::LEN`] bytes.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; $len]>::try_from(bytes).ok().map(Self)
            }

            /// Parses lower- or upper-case hex of exactly `2 * LEN` digits.
            pub fn from_hex(hex: &str) -> Option<Self> {
                let bytes = data_encoding::HEXLOWER_PERMISSIVE.decode(hex.as_bytes()).ok()?;
                Self::from_slice(&bytes)
            }

            /// Lower-case hex.
            pub fn to_hex(&self) -> String {
                data_encoding::HEXLOWER.encode(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
    };
}

digest_newtype!(
    /// A SHA-1 digest: a v1 piece hash.
    Sha1Hash,
    20
);
digest_newtype!(
    /// A SHA-256 digest: a v2 merkle node, block hash or `pieces root`.
    Sha256Hash,
    32
);
digest_newtype!(
    /// The v1 info-hash: SHA-1 of the bencoded info dictionary, as it appears in the .torrent.
    InfoHashV1,
    20
);
digest_newtype!(
    /// The v2 info-hash: SHA-256 of the bencoded info dictionary, as it appears in the .torrent.
    InfoHashV2,
    32
);

impl Sha1Hash {
    /// The SHA-1 of `data`.
    pub fn digest(data: &[u8]) -> Self {
        Self(sha1::Sha1::digest(data).into())
    }
}

impl Sha256Hash {
    /// The SHA-256 of `data`.
    pub fn digest(data: &[u8]) -> Self {
        Self(sha2::Sha256::digest(data).into())
    }
}

impl InfoHashV1 {
    /// The info-hash of a bencoded info dictionary.
    pub fn of_info(info_bytes: &[u8]) -> Self {
        Self(sha1::Sha1::digest(info_bytes).into())
    }
}

impl InfoHashV2 {
    /// The info-hash of a bencoded info dictionary.
    pub fn of_info(info_bytes: &[u8]) -> Self {
        Self(sha2::Sha256::digest(info_bytes).into())
    }

    /// The first 20 bytes: how a v2 torrent is named where only 20 bytes fit (the handshake,
    /// trackers, the DHT).
    pub fn truncated(&self) -> InfoHashV1 {
        let mut out = [0u8; 20];
        out.copy_from_slice(&self.0[..20]);
        InfoHashV1(out)
    }
}

/// The info-hashes of a torrent: v1, v2, or both for a hybrid. At least one is present.
///
/// ```
/// use fxtor_proto::{InfoHashes, InfoHashV1};
/// let ih = InfoHashes::v1(InfoHashV1([7; 20]));
/// assert!(ih.has_v1() && !ih.has_v2());
/// assert_eq!(ih.best_v1_identifier(), InfoHashV1([7; 20]));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct InfoHashes {
    v1: Option<InfoHashV1>,
    v2: Option<InfoHashV2>,
}

impl InfoHashes {
    /// A v1-only torrent.
    pub fn v1(v1: InfoHashV1) -> Self {
        Self {
            v1: Some(v1),
            v2: None,
        }
    }

    /// A v2-only torrent.
    pub fn v2(v2: InfoHashV2) -> Self {
        Self {
            v1: None,
            v2: Some(v2),
        }
    }

    /// A hybrid torrent.
    pub fn hybrid(v1: InfoHashV1, v2: InfoHashV2) -> Self {
        Self {
            v1: Some(v1),
            v2: Some(v2),
        }
    }

    /// Builds from optional parts; `None` when both are missing.
    pub fn from_parts(v1: Option<InfoHashV1>, v2: Option<InfoHashV2>) -> Option<Self> {
        (v1.is_some() || v2.is_some()).then_some(Self { v1, v2 })
    }

    /// The v1 info-hash, if the torrent has a v1 view.
    pub fn get_v1(&self) -> Option<InfoHashV1> {
        self.v1
    }

    /// The v2 info-hash, if the torrent has a v2 view.
    pub fn get_v2(&self) -> Option<InfoHashV2> {
        self.v2
    }

    /// Whether there is a v1 info-hash.
    pub fn has_v1(&self) -> bool {
        self.v1.is_some()
    }

    /// Whether there is a v2 info-hash.
    pub fn has_v2(&self) -> bool {
        self.v2.is_some()
    }

    /// Whether this is a hybrid torrent (both hashes).
    pub fn is_hybrid(&self) -> bool {
        self.v1.is_some() && self.v2.is_some()
    }

    /// The 20-byte identifier to use on the wire, trackers and the DHT: the v1 hash when there
    /// is one, otherwise the truncated v2 hash (as libtorrent's `info_hash_t::get_best`).
    pub fn best_v1_identifier(&self) -> InfoHashV1 {
        match (self.v1, self.v2) {
            (Some(v1), _) => v1,
            (None, Some(v2)) => v2.truncated(),
            // Construction guarantees at least one hash is present.
            (None, None) => unreachable!("InfoHashes always holds at least one hash"),
        }
    }

    /// Every 20-byte identifier this torrent answers to: the v1 hash and the truncated v2
    /// hash. A hybrid torrent is reachable by both.
    pub fn identifiers(&self) -> impl Iterator<Item = InfoHashV1> + '_ {
        self.v1.into_iter().chain(self.v2.map(|h| h.truncated()))
    }

    /// Whether a 20-byte identifier (from a handshake, say) names this torrent.
    pub fn matches(&self, id: &InfoHashV1) -> bool {
        self.identifiers().any(|x| &x == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let h = Sha1Hash::digest(b"abc");
        assert_eq!(h.to_hex(), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(Sha1Hash::from_hex(&h.to_hex().to_uppercase()), Some(h));
        assert_eq!(Sha1Hash::from_hex("abc"), None);
    }

    #[test]
    fn hybrid_answers_to_both_identifiers() {
        let v2 = InfoHashV2([9; 32]);
        let ih = InfoHashes::hybrid(InfoHashV1([1; 20]), v2);
        assert!(ih.matches(&InfoHashV1([1; 20])));
        assert!(ih.matches(&v2.truncated()));
        assert!(!ih.matches(&InfoHashV1([2; 20])));
        assert_eq!(InfoHashes::v2(v2).best_v1_identifier(), v2.truncated());
    }
}
