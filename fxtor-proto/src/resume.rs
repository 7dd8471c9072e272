//! Resume data: what a session remembers about a torrent between runs, so that a restart
//! neither re-hashes the files nor forgets the user's choices.
//!
//! [`ResumeData`] is a bencoded dictionary in the spirit of libtorrent's resume files:
//!
//! | key | value |
//! |---|---|
//! | `file-format` | `"fxtor resume file"` |
//! | `file-version` | `1` |
//! | `info-hash` / `info-hash2` | the v1 (20 bytes) and v2 (32 bytes) info-hashes, as present |
//! | `pieces` | the pieces we have, a BEP3 bitfield (bit 7 of byte 0 is piece 0) |
//! | `file_priority` | a list of priorities 0–7, one per file that is not a pad file |
//! | `piece_priority` | one byte per piece, 0–7; only when set piece by piece |
//! | `sequential_download` | 0 or 1 |
//! | `total_downloaded` / `total_uploaded` | payload byte counts |
//! | `info` | the info dictionary (for a torrent added by magnet link) |
//! | `piece layers` | v2 piece layers fetched from peers: `pieces root` → concatenated hashes, as in a .torrent |
//!
//! Only whole, verified pieces are saved: blocks of pieces that were still being
//! downloaded are not, and are downloaded again after a restart. The have-bitfield is
//! trusted when the torrent is added again, so resume data must come from the same files.
//!
//! Decoding checks every field's type, length and range, and that an embedded info
//! dictionary hashes to the info-hashes; [`ResumeData::check_torrent`] checks that the data
//! fits a given torrent.
//!
//! ```
//! use fxtor_proto::resume::ResumeData;
//! use fxtor_proto::{InfoHashV1, InfoHashes};
//!
//! let mut data = ResumeData::new(InfoHashes::v1(InfoHashV1([1; 20])));
//! data.pieces = vec![0b1010_0000].into();
//! data.total_downloaded = 32768;
//! let bytes = data.to_bytes();
//! assert_eq!(ResumeData::from_bytes(&bytes), Ok(data));
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::bencode::{self, write_bytes, write_int, DecodeError, Dict, Mode};
use crate::metainfo::TorrentInfo;
use crate::picker::PiecePicker;
use crate::{InfoHashV1, InfoHashV2, InfoHashes, Sha256Hash};
use std::collections::BTreeMap;

/// The `file-format` of fxtor's resume data.
pub const FORMAT: &str = "fxtor resume file";

/// The `file-version` this crate writes and reads.
pub const VERSION: i64 = 1;

/// The most priorities of files a resume file may list (as [`crate::metainfo::LoadLimits`]
/// bounds the files of a torrent).
const MAX_FILES: usize = 1_000_000;

/// The most pieces a resume file may describe.
const MAX_PIECES: usize = PiecePicker::MAX_PIECES as usize;

/// A torrent's resume data; see the [module documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeData {
    /// The torrent's info-hashes.
    pub info_hashes: InfoHashes,
    /// The pieces we have, as a BEP3 bitfield; empty when the metadata is not known.
    pub pieces: Bytes,
    /// Priorities 0–7 of the files that are not pad files, in file order; empty: all 4.
    pub file_priorities: Vec<u8>,
    /// Priorities 0–7 of every piece, when they were set piece by piece; empty otherwise.
    pub piece_priorities: Vec<u8>,
    /// Whether pieces are downloaded in order.
    pub sequential: bool,
    /// Payload bytes downloaded, over the torrent's life.
    pub total_downloaded: u64,
    /// Payload bytes uploaded, over the torrent's life.
    pub total_uploaded: u64,
    /// The bencoded info dictionary, for a torrent added by magnet link (whose metadata
    /// would otherwise have to be fetched again). Written only if it is a bencoded
    /// dictionary.
    pub info: Option<Bytes>,
    /// v2 piece layers that were not in the torrent's metadata (fetched from peers), by the
    /// `pieces root` of their file, so that a restart does not ask for them again. Checked
    /// against the torrent when it is added, not here.
    pub piece_layers: BTreeMap<Sha256Hash, Vec<Sha256Hash>>,
}

/// Why resume data was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResumeError {
    /// The data is not valid bencode.
    #[error(transparent)]
    Bencode(#[from] DecodeError),
    /// The data is not a bencoded dictionary.
    #[error("resume data is not a dictionary")]
    NotADictionary,
    /// The `file-format` is not fxtor's.
    #[error("not an fxtor resume file (file-format {0:?})")]
    WrongFormat(String),
    /// A `file-version` this crate does not read.
    #[error("unsupported resume file version {0}")]
    UnsupportedVersion(i64),
    /// A required field is missing.
    #[error("missing field {0:?}")]
    Missing(&'static str),
    /// A field has the wrong type, length or range.
    #[error("invalid field {field:?}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The resume data names other info-hashes than the torrent, or its embedded info
    /// dictionary does not hash to its info-hashes.
    #[error("the resume data belongs to another torrent")]
    WrongTorrent,
}

impl ResumeData {
    /// Empty resume data for a torrent: no pieces, default priorities.
    pub fn new(info_hashes: InfoHashes) -> Self {
        Self {
            info_hashes,
            pieces: Bytes::new(),
            file_priorities: Vec::new(),
            piece_priorities: Vec::new(),
            sequential: false,
            total_downloaded: 0,
            total_uploaded: 0,
            info: None,
            piece_layers: BTreeMap::new(),
        }
    }

    /// The canonical bencoding (keys sorted, so [`Mode::Strict`] reads it).
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        out.put_u8(b'd');
        // Keys in byte order: '-' < '_' < letters.
        write_bytes(&mut out, b"file-format");
        write_bytes(&mut out, FORMAT.as_bytes());
        write_bytes(&mut out, b"file-version");
        write_int(&mut out, VERSION);
        write_bytes(&mut out, b"file_priority");
        out.put_u8(b'l');
        for &p in &self.file_priorities {
            write_int(&mut out, i64::from(p));
        }
        out.put_u8(b'e');
        if let Some(info) = self.info.as_ref().filter(|info| is_dictionary(info)) {
            write_bytes(&mut out, b"info");
            out.put_slice(info);
        }
        if let Some(v1) = self.info_hashes.get_v1() {
            write_bytes(&mut out, b"info-hash");
            write_bytes(&mut out, v1.as_bytes());
        }
        if let Some(v2) = self.info_hashes.get_v2() {
            write_bytes(&mut out, b"info-hash2");
            write_bytes(&mut out, v2.as_bytes());
        }
        if !self.piece_layers.is_empty() {
            write_bytes(&mut out, b"piece layers");
            out.put_u8(b'd');
            for (root, layer) in &self.piece_layers {
                write_bytes(&mut out, root.as_bytes());
                let mut hashes = Vec::with_capacity(layer.len() * Sha256Hash::LEN);
                for hash in layer {
                    hashes.extend_from_slice(hash.as_bytes());
                }
                write_bytes(&mut out, &hashes);
            }
            out.put_u8(b'e');
        }
        if !self.piece_priorities.is_empty() {
            write_bytes(&mut out, b"piece_priority");
            write_bytes(&mut out, &self.piece_priorities);
        }
        write_bytes(&mut out, b"pieces");
        write_bytes(&mut out, &self.pieces);
        write_bytes(&mut out, b"sequential_download");
        write_int(&mut out, i64::from(self.sequential));
        write_bytes(&mut out, b"total_downloaded");
        write_int(&mut out, saturating_i64(self.total_downloaded));
        write_bytes(&mut out, b"total_uploaded");
        write_int(&mut out, saturating_i64(self.total_uploaded));
        out.put_u8(b'e');
        out.freeze()
    }

    /// Reads resume data, checking every field (see the [module documentation](self)).
    /// Unknown keys are ignored.
    pub fn from_bytes(input: &[u8]) -> Result<Self, ResumeError> {
        let value = bencode::decode(input, Mode::Lenient)?;
        let dict = value.as_dict().ok_or(ResumeError::NotADictionary)?;

        let format = dict
            .get_bytes("file-format")
            .ok_or(ResumeError::Missing("file-format"))?;
        if format != FORMAT.as_bytes() {
            return Err(ResumeError::WrongFormat(
                String::from_utf8_lossy(format).into_owned(),
            ));
        }
        let version = int(dict, "file-version")?.ok_or(ResumeError::Missing("file-version"))?;
        if version != VERSION {
            return Err(ResumeError::UnsupportedVersion(version));
        }

        let v1 = match dict.get("info-hash") {
            None => None,
            Some(v) => Some(
                v.as_bytes()
                    .and_then(InfoHashV1::from_slice)
                    .ok_or(invalid("info-hash", "not 20 bytes"))?,
            ),
        };
        let v2 = match dict.get("info-hash2") {
            None => None,
            Some(v) => Some(
                v.as_bytes()
                    .and_then(InfoHashV2::from_slice)
                    .ok_or(invalid("info-hash2", "not 32 bytes"))?,
            ),
        };
        let info_hashes =
            InfoHashes::from_parts(v1, v2).ok_or(ResumeError::Missing("info-hash"))?;

        let pieces = match dict.get("pieces") {
            None => &[][..],
            Some(v) => v.as_bytes().ok_or(invalid("pieces", "not a string"))?,
        };
        if pieces.len() > MAX_PIECES.div_ceil(8) {
            return Err(invalid("pieces", "longer than any torrent"));
        }

        let file_priorities = match dict.get("file_priority") {
            None => Vec::new(),
            Some(v) => {
                let list = v.as_list().ok_or(invalid("file_priority", "not a list"))?;
                if list.len() > MAX_FILES {
                    return Err(invalid("file_priority", "more entries than files"));
                }
                list.iter()
                    .map(|p| priority(p.as_int(), "file_priority"))
                    .collect::<Result<_, _>>()?
            }
        };
        let piece_priorities = match dict.get("piece_priority") {
            None => Vec::new(),
            Some(v) => {
                let bytes = v
                    .as_bytes()
                    .ok_or(invalid("piece_priority", "not a string"))?;
                if bytes.len() > MAX_PIECES {
                    return Err(invalid("piece_priority", "longer than any torrent"));
                }
                bytes
                    .iter()
                    .map(|&p| priority(Some(i64::from(p)), "piece_priority"))
                    .collect::<Result<_, _>>()?
            }
        };
        let sequential = match int(dict, "sequential_download")? {
            None | Some(0) => false,
            Some(1) => true,
            Some(_) => return Err(invalid("sequential_download", "not 0 or 1")),
        };
        let total_downloaded = count(dict, "total_downloaded")?;
        let total_uploaded = count(dict, "total_uploaded")?;

        let info = match dict.get("info") {
            None => None,
            Some(v) => {
                if v.as_dict().is_none() {
                    return Err(invalid("info", "not a dictionary"));
                }
                let raw = v.raw();
                let hashes_match = v1.is_none_or(|h| InfoHashV1::of_info(raw) == h)
                    && v2.is_none_or(|h| InfoHashV2::of_info(raw) == h);
                if !hashes_match {
                    return Err(ResumeError::WrongTorrent);
                }
                Some(Bytes::copy_from_slice(raw))
            }
        };

        let piece_layers = match dict.get("piece layers") {
            None => BTreeMap::new(),
            Some(v) => piece_layers(v)?,
        };

        Ok(Self {
            info_hashes,
            pieces: Bytes::copy_from_slice(pieces),
            file_priorities,
            piece_priorities,
            sequential,
            total_downloaded,
            total_uploaded,
            info,
            piece_layers,
        })
    }

    /// Checks that the data belongs to the torrent with `info_hashes` and, when its
    /// metadata is known, fits it: the bitfield's length and spare bits, the number of
    /// piece and file priorities. A torrent known by one info-hash (a v1 magnet link of a
    /// hybrid) matches data that has it among others.
    pub fn check_torrent(
        &self,
        info_hashes: InfoHashes,
        info: Option<&TorrentInfo>,
    ) -> Result<(), ResumeError> {
        let v1_ok = match (info_hashes.get_v1(), self.info_hashes.get_v1()) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        let v2_ok = match (info_hashes.get_v2(), self.info_hashes.get_v2()) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        let shared = info_hashes.has_v1() && self.info_hashes.has_v1()
            || info_hashes.has_v2() && self.info_hashes.has_v2();
        if !(v1_ok && v2_ok && shared) {
            return Err(ResumeError::WrongTorrent);
        }
        let Some(info) = info else {
            return Ok(());
        };
        let num_pieces = info.num_pieces() as usize;
        if !self.pieces.is_empty() {
            if self.pieces.len() != num_pieces.div_ceil(8) {
                return Err(invalid("pieces", "wrong length for the torrent"));
            }
            let spare = num_pieces % 8;
            let last = self.pieces.last().copied().unwrap_or(0);
            if spare != 0 && last & (0xff >> spare) != 0 {
                return Err(invalid("pieces", "bits set past the last piece"));
            }
        }
        if !self.piece_priorities.is_empty() && self.piece_priorities.len() != num_pieces {
            return Err(invalid("piece_priority", "wrong length for the torrent"));
        }
        let files = info.files().files().iter().filter(|f| !f.is_pad()).count();
        if self.file_priorities.len() > files {
            return Err(invalid("file_priority", "more entries than files"));
        }
        Ok(())
    }
}

/// Reads `piece layers`: a dictionary from 32-byte roots to strings of whole hashes.
fn piece_layers(
    value: bencode::Value<'_>,
) -> Result<BTreeMap<Sha256Hash, Vec<Sha256Hash>>, ResumeError> {
    const FIELD: &str = "piece layers";
    let dict = value.as_dict().ok_or(invalid(FIELD, "not a dictionary"))?;
    if dict.len() > MAX_FILES {
        return Err(invalid(FIELD, "more entries than files"));
    }
    let mut layers = BTreeMap::new();
    for (key, value) in dict.iter() {
        let root = Sha256Hash::from_slice(key).ok_or(invalid(FIELD, "a key is not 32 bytes"))?;
        let bytes = value
            .as_bytes()
            .ok_or(invalid(FIELD, "a layer is not a string"))?;
        if bytes.is_empty() || bytes.len() % Sha256Hash::LEN != 0 {
            return Err(invalid(FIELD, "a layer is not a whole number of hashes"));
        }
        let layer = bytes
            .chunks_exact(Sha256Hash::LEN)
            .filter_map(Sha256Hash::from_slice)
            .collect();
        layers.insert(root, layer);
    }
    Ok(layers)
}

fn invalid(field: &'static str, reason: &'static str) -> ResumeError {
    ResumeError::Invalid { field, reason }
}

/// An optional integer field.
fn int(dict: Dict<'_>, field: &'static str) -> Result<Option<i64>, ResumeError> {
    match dict.get(field) {
        None => Ok(None),
        Some(v) => v.as_int().map(Some).ok_or(invalid(field, "not an integer")),
    }
}

/// An optional byte count: 0 when absent.
fn count(dict: Dict<'_>, field: &'static str) -> Result<u64, ResumeError> {
    match int(dict, field)? {
        None => Ok(0),
        Some(n) => u64::try_from(n).map_err(|_| invalid(field, "negative")),
    }
}

fn priority(value: Option<i64>, field: &'static str) -> Result<u8, ResumeError> {
    match value {
        Some(p @ 0..=7) => Ok(p as u8),
        Some(_) => Err(invalid(field, "a priority outside 0..=7")),
        None => Err(invalid(field, "not an integer")),
    }
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn is_dictionary(bytes: &[u8]) -> bool {
    bencode::decode(bytes, Mode::Lenient).is_ok_and(|doc| doc.as_dict().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hybrid() -> InfoHashes {
        InfoHashes::hybrid(InfoHashV1([1; 20]), InfoHashV2([2; 32]))
    }

    #[test]
    fn round_trip_is_canonical() {
        let data = ResumeData {
            info_hashes: hybrid(),
            pieces: vec![0xf0, 0x80].into(),
            file_priorities: vec![4, 0, 7],
            piece_priorities: vec![1; 9],
            sequential: true,
            total_downloaded: 1 << 40,
            total_uploaded: 12,
            info: None,
            piece_layers: BTreeMap::from([
                (
                    Sha256Hash([7; 32]),
                    vec![Sha256Hash([1; 32]), Sha256Hash([2; 32])],
                ),
                (Sha256Hash([3; 32]), vec![Sha256Hash([4; 32]); 3]),
            ]),
        };
        let bytes = data.to_bytes();
        // Strict decoding accepts only sorted keys.
        assert!(bencode::decode(&bytes, Mode::Strict).is_ok());
        assert_eq!(ResumeData::from_bytes(&bytes), Ok(data));
    }

    #[test]
    fn embedded_info_must_hash_to_the_info_hashes() {
        let info = Bytes::from_static(b"d4:name1:xe");
        let mut data = ResumeData::new(InfoHashes::v1(InfoHashV1::of_info(&info)));
        data.info = Some(info.clone());
        let bytes = data.to_bytes();
        assert!(bencode::decode(&bytes, Mode::Strict).is_ok());
        assert_eq!(ResumeData::from_bytes(&bytes).unwrap().info, Some(info));

        let mut other = data.clone();
        other.info_hashes = InfoHashes::v1(InfoHashV1([9; 20]));
        assert_eq!(
            ResumeData::from_bytes(&other.to_bytes()),
            Err(ResumeError::WrongTorrent)
        );
        // Something that is not a dictionary is not written.
        other.info = Some(Bytes::from_static(b"i3e"));
        assert_eq!(
            ResumeData::from_bytes(&other.to_bytes()).unwrap().info,
            None
        );
    }

    #[test]
    fn piece_layers_must_be_whole_hashes_under_32_byte_roots() {
        let prefix = b"d11:file-format17:fxtor resume file12:file-versioni1e9:info-hash20:aaaaaaaaaaaaaaaaaaaa12:piece layers";
        let with = |layers: &[u8]| {
            let mut bytes = prefix.to_vec();
            bytes.extend_from_slice(layers);
            bytes.push(b'e');
            ResumeData::from_bytes(&bytes)
        };
        let bad = |reason| {
            Err(ResumeError::Invalid {
                field: "piece layers",
                reason,
            })
        };
        assert_eq!(with(b"le"), bad("not a dictionary"));
        assert_eq!(with(b"d3:abc0:e"), bad("a key is not 32 bytes"));
        let root = [b'r'; 32];
        let entry = |value: &[u8]| {
            let mut d = b"d32:".to_vec();
            d.extend_from_slice(&root);
            d.extend_from_slice(value);
            d.push(b'e');
            d
        };
        assert_eq!(with(&entry(b"i1e")), bad("a layer is not a string"));
        assert_eq!(
            with(&entry(b"3:abc")),
            bad("a layer is not a whole number of hashes")
        );
        let mut good = b"64:".to_vec();
        good.extend_from_slice(&[5; 64]);
        let data = with(&entry(&good)).unwrap();
        assert_eq!(
            data.piece_layers.get(&Sha256Hash(root)),
            Some(&vec![Sha256Hash([5; 32]); 2])
        );
    }

    #[test]
    fn bad_fields_are_refused() {
        let cases: [(&[u8], ResumeError); 6] = [
            (b"le", ResumeError::NotADictionary),
            (
                b"d11:file-format3:abce",
                ResumeError::WrongFormat("abc".into()),
            ),
            (
                b"d11:file-format17:fxtor resume file12:file-versioni2ee",
                ResumeError::UnsupportedVersion(2),
            ),
            (
                b"d11:file-format17:fxtor resume file12:file-versioni1ee",
                ResumeError::Missing("info-hash"),
            ),
            (
                b"d11:file-format17:fxtor resume file12:file-versioni1e9:info-hash3:abce",
                invalid("info-hash", "not 20 bytes"),
            ),
            (
                b"d11:file-format17:fxtor resume file12:file-versioni1e13:file_priorityli8ee\
                  9:info-hash20:aaaaaaaaaaaaaaaaaaaae",
                invalid("file_priority", "a priority outside 0..=7"),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(ResumeData::from_bytes(input), Err(expected), "{input:?}");
        }
        let mut data = ResumeData::new(hybrid());
        data.total_uploaded = 5;
        let text = String::from_utf8(data.to_bytes().to_vec())
            .unwrap()
            .replace("i5e", "i-5e");
        assert_eq!(
            ResumeData::from_bytes(text.as_bytes()),
            Err(invalid("total_uploaded", "negative"))
        );
    }

    #[test]
    fn check_torrent_matches_hashes_and_lengths() {
        let torrent = crate::create::TorrentBuilder::single_file("a", 5 * 16384 + 1);
        let mut hasher = {
            let mut b = torrent;
            b.set_piece_length(16384);
            b.into_hasher().unwrap()
        };
        hasher.update(&vec![0u8; 5 * 16384 + 1]).unwrap();
        let created = hasher.finish().unwrap();
        let info = TorrentInfo::from_bytes(&created.bytes).unwrap();
        assert_eq!(info.num_pieces(), 6);

        let mut data = ResumeData::new(info.info_hashes());
        data.pieces = vec![0b1111_1100].into();
        assert_eq!(data.check_torrent(info.info_hashes(), Some(&info)), Ok(()));
        // A v1 magnet of the hybrid matches too.
        let v1_only = InfoHashes::v1(info.info_hashes().get_v1().unwrap());
        assert_eq!(data.check_torrent(v1_only, None), Ok(()));
        assert_eq!(
            data.check_torrent(InfoHashes::v1(InfoHashV1([3; 20])), None),
            Err(ResumeError::WrongTorrent)
        );

        data.pieces = vec![0b1111_1110].into();
        assert!(data.check_torrent(info.info_hashes(), Some(&info)).is_err());
        data.pieces = vec![0xff, 0].into();
        assert!(data.check_torrent(info.info_hashes(), Some(&info)).is_err());
        data.pieces = Bytes::new();
        data.piece_priorities = vec![4; 5];
        assert!(data.check_torrent(info.info_hashes(), Some(&info)).is_err());
        data.piece_priorities = Vec::new();
        data.file_priorities = vec![4, 4];
        assert!(data.check_torrent(info.info_hashes(), Some(&info)).is_err());
    }

    fn arb_resume() -> impl Strategy<Value = ResumeData> {
        (
            any::<[u8; 20]>(),
            proptest::option::of(any::<[u8; 32]>()),
            proptest::collection::vec(any::<u8>(), 0..20),
            proptest::collection::vec(0u8..=7, 0..10),
            proptest::collection::vec(0u8..=7, 0..10),
            any::<bool>(),
            0u64..=i64::MAX as u64,
            0u64..=i64::MAX as u64,
            proptest::collection::btree_map(
                any::<[u8; 32]>().prop_map(Sha256Hash),
                proptest::collection::vec(any::<[u8; 32]>().prop_map(Sha256Hash), 1..4),
                0..3,
            ),
        )
            .prop_map(
                |(v1, v2, pieces, files, pieces_prio, seq, down, up, layers)| ResumeData {
                    info_hashes: InfoHashes::from_parts(Some(InfoHashV1(v1)), v2.map(InfoHashV2))
                        .unwrap(),
                    pieces: pieces.into(),
                    file_priorities: files,
                    piece_priorities: pieces_prio,
                    sequential: seq,
                    total_downloaded: down,
                    total_uploaded: up,
                    info: None,
                    piece_layers: layers,
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips(data in arb_resume()) {
            prop_assert_eq!(ResumeData::from_bytes(&data.to_bytes()), Ok(data));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ResumeData::from_bytes(&bytes);
        }

        #[test]
        fn mutated_data_never_panics(
            data in arb_resume(),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = data.to_bytes().to_vec();
            for (at, byte) in flips {
                let len = bytes.len();
                bytes[at % len] = byte;
            }
            let _ = ResumeData::from_bytes(&bytes);
        }
    }
}
