//! Checking a piece's bytes against the hashes a torrent gives for it.
//!
//! This is pure computation: the core says *what* to check ([`PieceCheck`]), and an adapter
//! runs [`PieceCheck::verify`] on its blocking pool, before the piece is written to disk.
//!
//! A v1 piece is checked with the SHA-1 of its bytes. A v2 piece is checked with the root of
//! the merkle subtree over its 16 KiB blocks: the blocks of the file's data in the piece
//! (not the pad after it), padded with zero leaves to a whole piece — or, for a file of one
//! piece or less, to a power of two of its own blocks, its `pieces root`. A hybrid piece must
//! pass both.

use sha1::{Digest as _, Sha1};
use sha2::Sha256;

use crate::hash::{Sha1Hash, Sha256Hash};
use crate::index::{PieceIndex, BLOCK_SIZE};
use crate::merkle::RootBuilder;
use crate::metainfo::TorrentInfo;

/// What a piece must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceCheck {
    /// The expected SHA-1 of the whole piece (v1 and hybrid torrents).
    pub v1: Option<Sha1Hash>,
    /// The expected merkle subtree root (v2 and hybrid torrents).
    pub v2: Option<V2PieceCheck>,
}

/// The v2 half of a [`PieceCheck`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2PieceCheck {
    /// The expected root of the piece's subtree.
    pub expected: Sha256Hash,
    /// How many of the piece's bytes are the file's data (the rest is pad).
    pub data_len: u32,
    /// How many leaves the subtree has (a power of two), zero leaves filling the rest.
    pub leaves: u32,
}

/// The outcome of [`PieceCheck::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceVerdict {
    /// Whether the v1 hash matched (`None` when there is none to check).
    pub v1: Option<bool>,
    /// Whether the v2 subtree root matched (`None` when there is none to check).
    pub v2: Option<bool>,
}

impl PieceVerdict {
    /// Whether every hash there was to check matched.
    pub fn passed(&self) -> bool {
        self.v1 != Some(false) && self.v2 != Some(false)
    }
}

impl PieceCheck {
    /// What `piece` of `info` must hash to; `None` if no hash is known for it (a v2 piece
    /// whose piece layer has not arrived yet) or the piece does not exist.
    pub fn for_piece(info: &TorrentInfo, piece: PieceIndex) -> Option<Self> {
        let v1 = info.v1_piece_hash(piece);
        let v2 = if info.info_hashes().has_v2() {
            Some(Self::v2_part(info, piece)?)
        } else {
            None
        };
        (v1.is_some() || v2.is_some()).then_some(Self { v1, v2 })
    }

    fn v2_part(info: &TorrentInfo, piece: PieceIndex) -> Option<V2PieceCheck> {
        let expected = info.v2_piece_hash(piece)?;
        let files = info.files();
        let piece_length = u64::from(files.piece_length());
        let start = u64::from(piece.0) * piece_length;
        let file = files.file(files.file_at_offset(start)?)?;
        // v2 files start on piece boundaries: the file's data runs from the piece's start.
        let data_len = (file.end() - start).min(u64::from(files.piece_size(piece)));
        let leaves = if file.size() <= piece_length {
            // The file is its own tree: padded to a power of two of its blocks.
            u32::try_from(file.num_blocks()).ok()?.next_power_of_two()
        } else {
            files.piece_length() / BLOCK_SIZE
        };
        Some(V2PieceCheck {
            expected,
            data_len: u32::try_from(data_len).ok()?,
            leaves,
        })
    }

    /// Hashes the piece's bytes, given in order in any number of parts (the blocks as they
    /// came off the wire), and compares.
    pub fn verify<'a>(&self, parts: impl IntoIterator<Item = &'a [u8]>) -> PieceVerdict {
        let mut sha1 = self.v1.map(|_| Sha1::new());
        let mut v2 = self
            .v2
            .map(|c| (c, LeafHasher::default(), RootBuilder::new()));
        let mut position = 0u64;
        for part in parts {
            if let Some(h) = &mut sha1 {
                h.update(part);
            }
            if let Some((check, leaf, tree)) = &mut v2 {
                // Only the file's data counts towards the v2 tree, not the pad after it.
                let data_end = u64::from(check.data_len);
                let take = data_end.saturating_sub(position).min(part.len() as u64) as usize;
                leaf.update(&part[..take], tree);
            }
            position += part.len() as u64;
        }
        PieceVerdict {
            v1: sha1
                .zip(self.v1)
                .map(|(h, expected)| Sha1Hash(h.finalize().into()) == expected),
            v2: v2.map(|(check, leaf, mut tree)| {
                leaf.finish(&mut tree);
                while tree.len() < u64::from(check.leaves) {
                    tree.push(Sha256Hash::default());
                }
                tree.finish() == Some(check.expected)
            }),
        }
    }
}

/// SHA-256 of 16 KiB leaves over a stream split anywhere.
#[derive(Default)]
struct LeafHasher {
    hasher: Sha256,
    fill: usize,
}

impl LeafHasher {
    fn update(&mut self, mut data: &[u8], tree: &mut RootBuilder) {
        while !data.is_empty() {
            let take = (BLOCK_SIZE as usize - self.fill).min(data.len());
            self.hasher.update(&data[..take]);
            self.fill += take;
            data = &data[take..];
            if self.fill == BLOCK_SIZE as usize {
                self.flush(tree);
            }
        }
    }

    fn flush(&mut self, tree: &mut RootBuilder) {
        tree.push(Sha256Hash(
            std::mem::take(&mut self.hasher).finalize().into(),
        ));
        self.fill = 0;
    }

    fn finish(mut self, tree: &mut RootBuilder) {
        if self.fill > 0 {
            self.flush(tree);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create::{TorrentBuilder, TorrentVersion};

    fn torrent(
        sizes: &[u64],
        version: TorrentVersion,
        piece_length: u32,
    ) -> (TorrentInfo, Vec<u8>) {
        let mut b = TorrentBuilder::multi_file("t");
        for (i, s) in sizes.iter().enumerate() {
            b.add_file(vec![format!("f{i}")], *s);
        }
        b.set_version(version).set_piece_length(piece_length);
        let total: u64 = sizes.iter().sum();
        let data: Vec<u8> = (0..total).map(|i| (i * 7 % 253) as u8).collect();
        let mut h = b.into_hasher().unwrap();
        h.update(&data).unwrap();
        (
            TorrentInfo::from_bytes(&h.finish().unwrap().bytes).unwrap(),
            data,
        )
    }

    /// The torrent's byte stream, pads included, as a peer would send it.
    fn stream(info: &TorrentInfo, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut at = 0usize;
        for f in info.files().files() {
            if f.is_pad() {
                out.resize(out.len() + f.size() as usize, 0);
            } else {
                out.extend_from_slice(&data[at..at + f.size() as usize]);
                at += f.size() as usize;
            }
        }
        out
    }

    #[test]
    fn every_piece_of_every_version_passes_and_a_flipped_bit_fails() {
        for version in [
            TorrentVersion::V1,
            TorrentVersion::V2,
            TorrentVersion::Hybrid,
        ] {
            for piece_length in [16_384, 65_536] {
                let (info, data) = torrent(&[100_000, 1, 0, 16_384, 70_000], version, piece_length);
                let bytes = stream(&info, &data);
                for p in 0..info.num_pieces() {
                    let piece = PieceIndex(p);
                    let start = p as usize * piece_length as usize;
                    let len = info.piece_size(piece) as usize;
                    let mut body = bytes[start..start + len].to_vec();
                    let check = PieceCheck::for_piece(&info, piece).unwrap();
                    assert_eq!(check.v1.is_some(), version != TorrentVersion::V2);
                    assert_eq!(check.v2.is_some(), version != TorrentVersion::V1);
                    // Split into odd parts: the result must not depend on the split.
                    let verdict = check.verify(body.chunks(5_000));
                    assert!(
                        verdict.passed(),
                        "{version:?} {piece_length} piece {p}: {verdict:?}"
                    );
                    body[0] ^= 1; // always file data: pads end on piece boundaries
                    assert!(!check.verify([&body[..]]).passed(), "{version:?} piece {p}");
                }
            }
        }
    }

    #[test]
    fn v2_ignores_the_pad_but_v1_does_not() {
        let (info, data) = torrent(&[20_000, 5], TorrentVersion::Hybrid, 32_768);
        let mut bytes = stream(&info, &data);
        // Piece 0 is file 0 (20,000 bytes) then 12,768 pad bytes; corrupt a pad byte.
        bytes[25_000] = 1;
        let verdict = PieceCheck::for_piece(&info, PieceIndex(0))
            .unwrap()
            .verify([&bytes[..32_768]]);
        assert_eq!(
            verdict,
            PieceVerdict {
                v1: Some(false),
                v2: Some(true)
            }
        );
        assert!(!verdict.passed());
    }

    #[test]
    fn no_check_without_hashes() {
        let (info, _) = torrent(&[20_000], TorrentVersion::V1, 16_384);
        assert!(PieceCheck::for_piece(&info, PieceIndex(9)).is_none());
    }
}
