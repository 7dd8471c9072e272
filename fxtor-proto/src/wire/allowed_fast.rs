//! The BEP6 allowed-fast set: the pieces a peer may download from us while choked.

use std::collections::BTreeSet;

use core::net::Ipv4Addr;

use crate::{InfoHashV1, PieceIndex, Sha1Hash};

/// The first `k` pieces of the allowed-fast set of the peer at `ip`, by BEP6's canonical
/// algorithm: hash the peer's /24 network and the info-hash with SHA-1, again and again, and
/// read piece indices from the digests.
///
/// Two peers that compute sets of different sizes agree on their common prefix. `k` is
/// capped at `num_pieces` (a set cannot hold more pieces than the torrent has); a torrent
/// without pieces has an empty set.
///
/// ```
/// use core::net::Ipv4Addr;
/// use fxtor_proto::wire::allowed_fast_set;
/// use fxtor_proto::{InfoHashV1, PieceIndex};
///
/// let set = allowed_fast_set(Ipv4Addr::new(80, 4, 4, 200), &InfoHashV1([0xaa; 20]), 1313, 3);
/// assert_eq!(set, [PieceIndex(1059), PieceIndex(431), PieceIndex(808)]);
/// ```
pub fn allowed_fast_set(
    ip: Ipv4Addr,
    info_hash: &InfoHashV1,
    num_pieces: u32,
    k: usize,
) -> Vec<PieceIndex> {
    let k = k.min(num_pieces as usize);
    let mut set = Vec::with_capacity(k);
    let mut seen = BTreeSet::new();
    let mut x = Vec::with_capacity(24);
    x.extend_from_slice(&(u32::from(ip) & 0xffff_ff00).to_be_bytes());
    x.extend_from_slice(info_hash.as_bytes());
    while set.len() < k {
        let digest = Sha1Hash::digest(&x);
        for word in digest.as_bytes().chunks_exact(4) {
            if set.len() == k {
                break;
            }
            let y = word.iter().fold(0u32, |y, &b| (y << 8) | u32::from(b));
            let index = y % num_pieces;
            if seen.insert(index) {
                set.push(PieceIndex(index));
            }
        }
        x.clear();
        x.extend_from_slice(digest.as_bytes());
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bep6_vector(k: usize) -> Vec<u32> {
        let ip = Ipv4Addr::new(80, 4, 4, 200);
        allowed_fast_set(ip, &InfoHashV1([0xaa; 20]), 1313, k)
            .into_iter()
            .map(|p| p.0)
            .collect()
    }

    #[test]
    fn bep6_test_vectors() {
        assert_eq!(bep6_vector(7), [1059, 431, 808, 1217, 287, 376, 1188]);
        assert_eq!(
            bep6_vector(9),
            [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
        );
    }

    #[test]
    fn only_the_network_counts() {
        let info_hash = InfoHashV1([0xaa; 20]);
        let a = allowed_fast_set(Ipv4Addr::new(80, 4, 4, 1), &info_hash, 1313, 9);
        let b = allowed_fast_set(Ipv4Addr::new(80, 4, 4, 200), &info_hash, 1313, 9);
        let c = allowed_fast_set(Ipv4Addr::new(80, 4, 5, 200), &info_hash, 1313, 9);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn small_torrents() {
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        let info_hash = InfoHashV1([1; 20]);
        assert!(allowed_fast_set(ip, &info_hash, 0, 10).is_empty());
        let mut all = allowed_fast_set(ip, &info_hash, 5, 10);
        all.sort();
        assert_eq!(all, (0..5).map(PieceIndex).collect::<Vec<_>>());
    }
}
