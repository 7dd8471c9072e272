//! Magnet links (BEP9, BEP53): a torrent named by its info-hash, with hints for finding its
//! metadata.
//!
//! A [`MagnetLink`] reads and writes these parameters:
//!
//! | key | meaning |
//! |-----|---------|
//! | `xt=urn:btih:` | v1 info-hash: 40 hex digits or 32 base32 characters |
//! | `xt=urn:btmh:` | v2 info-hash: the multihash `1220` and 64 hex digits (BEP52) |
//! | `dn` | display name |
//! | `xl` | exact length in bytes |
//! | `tr` | tracker URL, any number |
//! | `ws` | web seed URL, any number |
//! | `x.pe` | peer address, any number ([`PeerAddress`]) |
//! | `so` | files to download, as in `0,2,4-6` (BEP53, [`FileRange`]) |
//!
//! Reading is lenient where libtorrent is (unknown keys and other `xt` namespaces are
//! ignored, keys may carry a numeric suffix like `tr.1`, `+` is a space, empty values are
//! skipped) and strict where a wrong guess would mean the wrong torrent or the wrong files
//! (malformed hashes, two different hashes of one kind, bad `so`, `x.pe` or `xl` values are
//! errors). Writing then reading gives back the same link.

mod error;
mod escape;
mod parse;
mod peer;
mod select;

use std::fmt;
use std::str::FromStr;

pub use error::{MagnetError, MagnetErrorKind};
pub use peer::{PeerAddress, PeerAddressError};
pub use select::{FileRange, SelectOnlyError};

use crate::{FileIndex, InfoHashes};
use escape::{Escaped, Plain};

/// A magnet link: the info-hashes of a torrent, and optionally its name, size, trackers, web
/// seeds, peers and the files to download.
///
/// Lists keep their order and hold no duplicates; adding an empty or repeated tracker or web
/// seed, or a repeated peer, changes nothing.
///
/// ```
/// use fxtor_proto::magnet::{FileRange, MagnetLink};
/// use fxtor_proto::{FileIndex, InfoHashV1, InfoHashes};
///
/// let link: MagnetLink = "magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK\
///     &dn=Big+Buck+Bunny&tr=udp%3A%2F%2Ftracker.example%3A1337&so=0,2-3"
///     .parse()?;
/// let v1 = InfoHashV1::from_hex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a").unwrap();
/// assert_eq!(link.info_hashes(), InfoHashes::v1(v1));
/// assert_eq!(link.display_name(), Some("Big Buck Bunny"));
/// assert_eq!(link.trackers(), ["udp://tracker.example:1337"]);
/// assert!(link.selects_file(FileIndex(3)) && !link.selects_file(FileIndex(1)));
///
/// // Building one and writing it out.
/// let built = MagnetLink::new(InfoHashes::v1(v1))
///     .with_display_name("Big Buck Bunny")
///     .with_tracker("udp://tracker.example:1337")
///     .with_select_only(FileRange::single(FileIndex(0)))
///     .with_select_only(FileRange::new(FileIndex(2), FileIndex(3)).unwrap());
/// assert_eq!(
///     built.to_uri(),
///     "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a\
///      &dn=Big%20Buck%20Bunny&tr=udp://tracker.example:1337&so=0,2-3"
/// );
/// assert_eq!(built, link);
/// # Ok::<(), fxtor_proto::magnet::MagnetError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MagnetLink {
    info_hashes: InfoHashes,
    display_name: Option<String>,
    exact_length: Option<u64>,
    trackers: Vec<String>,
    web_seeds: Vec<String>,
    peers: Vec<PeerAddress>,
    select_only: Vec<FileRange>,
}

impl MagnetLink {
    /// A link with only the info-hashes; add the rest with the `with_*` methods.
    pub fn new(info_hashes: InfoHashes) -> Self {
        Self {
            info_hashes,
            display_name: None,
            exact_length: None,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            peers: Vec::new(),
            select_only: Vec::new(),
        }
    }

    /// Reads a `magnet:?` URI. Surrounding whitespace is ignored.
    pub fn parse(uri: &str) -> Result<Self, MagnetError> {
        parse::parse(uri)
    }

    /// Writes the link as a `magnet:?` URI (the same as its [`Display`](fmt::Display)).
    pub fn to_uri(&self) -> String {
        self.to_string()
    }

    /// The torrent's info-hashes: v1 (`btih`), v2 (`btmh`) or both.
    pub fn info_hashes(&self) -> InfoHashes {
        self.info_hashes
    }

    /// The display name (`dn`), if any.
    pub fn display_name(&self) -> Option<&str> {
        self.display_name.as_deref()
    }

    /// The total size in bytes (`xl`), if given.
    pub fn exact_length(&self) -> Option<u64> {
        self.exact_length
    }

    /// Tracker URLs (`tr`), in order.
    pub fn trackers(&self) -> &[String] {
        &self.trackers
    }

    /// Web seed URLs (`ws`), in order.
    pub fn web_seeds(&self) -> &[String] {
        &self.web_seeds
    }

    /// Peers to contact directly (`x.pe`), in order.
    pub fn peers(&self) -> &[PeerAddress] {
        &self.peers
    }

    /// The BEP53 file selection (`so`), as given; empty when every file is wanted.
    pub fn select_only(&self) -> &[FileRange] {
        &self.select_only
    }

    /// Whether the link asks for the file at `index`: true for every file when there is no
    /// `so` selection.
    pub fn selects_file(&self, index: FileIndex) -> bool {
        self.select_only.is_empty() || self.select_only.iter().any(|r| r.contains(index))
    }

    /// Sets the display name; an empty name removes it.
    pub fn with_display_name(mut self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.display_name = (!name.is_empty()).then_some(name);
        self
    }

    /// Sets the total size in bytes.
    pub fn with_exact_length(mut self, length: u64) -> Self {
        self.exact_length = Some(length);
        self
    }

    /// Adds a tracker URL, unless it is empty or already there.
    pub fn with_tracker(mut self, url: impl Into<String>) -> Self {
        push_new(&mut self.trackers, url.into());
        self
    }

    /// Adds a web seed URL, unless it is empty or already there.
    pub fn with_web_seed(mut self, url: impl Into<String>) -> Self {
        push_new(&mut self.web_seeds, url.into());
        self
    }

    /// Adds a peer, unless it is already there.
    pub fn with_peer(mut self, peer: impl Into<PeerAddress>) -> Self {
        let peer = peer.into();
        if !self.peers.contains(&peer) {
            self.peers.push(peer);
        }
        self
    }

    /// Adds a range of files to the BEP53 selection.
    pub fn with_select_only(mut self, range: FileRange) -> Self {
        self.select_only.push(range);
        self
    }
}

fn push_new(list: &mut Vec<String>, value: String) {
    if !value.is_empty() && !list.contains(&value) {
        list.push(value);
    }
}

impl fmt::Display for MagnetLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut params = Params { f, first: true };
        if let Some(v1) = self.info_hashes.get_v1() {
            params.start("xt")?;
            write!(params.f, "urn:btih:{v1}")?;
        }
        if let Some(v2) = self.info_hashes.get_v2() {
            params.start("xt")?;
            // Multihash header: sha2-256 (0x12), 32 bytes (0x20).
            write!(params.f, "urn:btmh:1220{v2}")?;
        }
        if let Some(name) = &self.display_name {
            params.escaped("dn", name, Plain::Value)?;
        }
        if let Some(length) = self.exact_length {
            params.start("xl")?;
            write!(params.f, "{length}")?;
        }
        for tracker in &self.trackers {
            params.escaped("tr", tracker, Plain::Value)?;
        }
        for seed in &self.web_seeds {
            params.escaped("ws", seed, Plain::Value)?;
        }
        for peer in &self.peers {
            params.escaped("x.pe", &peer.to_string(), Plain::Peer)?;
        }
        if let Some((head, tail)) = self.select_only.split_first() {
            params.start("so")?;
            write!(params.f, "{head}")?;
            for range in tail {
                write!(params.f, ",{range}")?;
            }
        }
        Ok(())
    }
}

/// Writes `magnet:?key=value&key=value…`.
struct Params<'a, 'b> {
    f: &'a mut fmt::Formatter<'b>,
    first: bool,
}

impl Params<'_, '_> {
    /// Writes the separator and `key=`.
    fn start(&mut self, key: &str) -> fmt::Result {
        let separator = if self.first { "magnet:?" } else { "&" };
        self.first = false;
        write!(self.f, "{separator}{key}=")
    }

    fn escaped(&mut self, key: &str, text: &str, plain: Plain) -> fmt::Result {
        self.start(key)?;
        write!(self.f, "{}", Escaped { text, plain })
    }
}

impl FromStr for MagnetLink {
    type Err = MagnetError;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        Self::parse(uri)
    }
}

#[cfg(test)]
mod tests;
