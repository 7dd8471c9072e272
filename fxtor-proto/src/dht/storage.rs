//! Peers other nodes announced to us (`announce_peer`), served to `get_peers` and
//! sampled for `sample_infohashes` (BEP51).
//!
//! Bounded twice: at most [`StorageLimits::max_peers_per_info_hash`] peers per info-hash
//! (a new announce then replaces the one that was refreshed longest ago) and at most
//! [`StorageLimits::max_info_hashes`] info-hashes (a new info-hash is then refused). A peer
//! is forgotten [`StorageLimits::peer_ttl`] after its last announce.

use core::net::SocketAddr;
use core::time::Duration;
use std::collections::BTreeMap;

use super::node_id::NodeId;
use crate::rng::Rng;
use crate::time::Instant;

/// Bounds of the peer store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageLimits {
    /// Info-hashes stored at once (2,000).
    pub max_info_hashes: usize,
    /// Peers stored per info-hash (100).
    pub max_peers_per_info_hash: usize,
    /// How long an announce lasts (30 minutes).
    pub peer_ttl: Duration,
}

impl Default for StorageLimits {
    fn default() -> Self {
        Self {
            max_info_hashes: 2000,
            max_peers_per_info_hash: 100,
            peer_ttl: Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct StoredPeer {
    addr: SocketAddr,
    announced: Instant,
}

/// The peer store.
#[derive(Debug)]
pub(crate) struct PeerStore {
    limits: StorageLimits,
    torrents: BTreeMap<NodeId, Vec<StoredPeer>>,
    peers: usize,
}

impl PeerStore {
    pub(crate) fn new(limits: StorageLimits) -> Self {
        Self {
            limits,
            torrents: BTreeMap::new(),
            peers: 0,
        }
    }

    /// Records that `addr` is a peer for `info_hash`. Returns `false` if the store is full.
    pub(crate) fn announce(&mut self, now: Instant, info_hash: NodeId, addr: SocketAddr) -> bool {
        if !self.torrents.contains_key(&info_hash)
            && self.torrents.len() >= self.limits.max_info_hashes
        {
            return false;
        }
        let max_per = self.limits.max_peers_per_info_hash.max(1);
        let peers = self.torrents.entry(info_hash).or_default();
        if let Some(known) = peers.iter_mut().find(|p| p.addr == addr) {
            known.announced = now;
            return true;
        }
        let fresh = StoredPeer {
            addr,
            announced: now,
        };
        if peers.len() >= max_per {
            // Replace the peer that announced longest ago.
            if let Some(oldest) = peers.iter_mut().min_by_key(|p| p.announced) {
                *oldest = fresh;
            }
        } else {
            peers.push(fresh);
            self.peers += 1;
        }
        true
    }

    /// Up to `max` live peers for `info_hash` whose family is `v6` (IPv6) or not, starting
    /// at a random place so that large swarms are spread among requesters.
    pub(crate) fn peers(
        &self,
        now: Instant,
        info_hash: &NodeId,
        v6: bool,
        max: usize,
        rng: &mut Rng,
    ) -> Vec<SocketAddr> {
        let Some(peers) = self.torrents.get(info_hash) else {
            return Vec::new();
        };
        let start = rng.below(peers.len() as u64) as usize;
        peers
            .iter()
            .cycle()
            .skip(start)
            .take(peers.len())
            .filter(|p| p.addr.is_ipv6() == v6 && !self.expired(now, p))
            .take(max)
            .map(|p| p.addr)
            .collect()
    }

    fn expired(&self, now: Instant, peer: &StoredPeer) -> bool {
        now.saturating_duration_since(peer.announced) >= self.limits.peer_ttl
    }

    /// Forgets expired peers, and info-hashes left without peers.
    pub(crate) fn expire(&mut self, now: Instant) {
        let ttl = self.limits.peer_ttl;
        let mut removed = 0;
        self.torrents.retain(|_, peers| {
            let before = peers.len();
            peers.retain(|p| now.saturating_duration_since(p.announced) < ttl);
            removed += before - peers.len();
            !peers.is_empty()
        });
        self.peers -= removed;
    }

    /// Up to `max` stored info-hashes, from a random place in the store, and how many are
    /// stored (BEP51).
    pub(crate) fn sample(&self, max: usize, rng: &mut Rng) -> (Vec<NodeId>, usize) {
        let total = self.torrents.len();
        let start = rng.below(total as u64) as usize;
        let sample = self
            .torrents
            .keys()
            .cycle()
            .skip(start)
            .take(total.min(max))
            .copied()
            .collect();
        (sample, total)
    }

    /// How many info-hashes are stored.
    pub(crate) fn info_hashes(&self) -> usize {
        self.torrents.len()
    }

    /// How many peers are stored, over all info-hashes.
    pub(crate) fn peer_count(&self) -> usize {
        self.peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> NodeId {
        NodeId([n; 20])
    }

    fn peer(n: u16) -> SocketAddr {
        SocketAddr::from(([100, 64, 0, 1], n))
    }

    #[test]
    fn bounded_per_info_hash_and_in_total() {
        let limits = StorageLimits {
            max_info_hashes: 3,
            max_peers_per_info_hash: 4,
            peer_ttl: Duration::from_secs(60),
        };
        let mut store = PeerStore::new(limits);
        let mut rng = Rng::new(1);
        for n in 0..10u16 {
            assert!(store.announce(Instant::from_secs(u64::from(n)), hash(1), peer(n)));
        }
        // The four most recent remain.
        let mut got = store.peers(Instant::from_secs(10), &hash(1), false, 50, &mut rng);
        got.sort();
        assert_eq!(got, vec![peer(6), peer(7), peer(8), peer(9)]);
        assert_eq!(store.peer_count(), 4);
        assert!(store.announce(Instant::ZERO, hash(2), peer(1)));
        assert!(store.announce(Instant::ZERO, hash(3), peer(1)));
        assert!(!store.announce(Instant::ZERO, hash(4), peer(1)));
        assert_eq!(store.info_hashes(), 3);
        // Family filter and `max`.
        assert!(store
            .peers(Instant::ZERO, &hash(2), true, 50, &mut rng)
            .is_empty());
        assert_eq!(
            store
                .peers(Instant::from_secs(10), &hash(1), false, 2, &mut rng)
                .len(),
            2
        );
    }

    #[test]
    fn peers_expire() {
        let mut store = PeerStore::new(StorageLimits::default());
        let mut rng = Rng::new(1);
        store.announce(Instant::ZERO, hash(1), peer(1));
        store.announce(Instant::from_secs(20 * 60), hash(1), peer(2));
        let at = Instant::from_secs(31 * 60);
        assert_eq!(
            store.peers(at, &hash(1), false, 50, &mut rng),
            vec![peer(2)]
        );
        store.expire(at);
        assert_eq!(store.peer_count(), 1);
        store.expire(Instant::from_secs(60 * 60));
        assert_eq!((store.peer_count(), store.info_hashes()), (0, 0));
        // The slot is free again.
        assert!(store.announce(Instant::from_secs(3600), hash(9), peer(3)));
    }

    #[test]
    fn samples_cover_the_store() {
        let mut store = PeerStore::new(StorageLimits::default());
        let mut rng = Rng::new(1);
        for n in 0..30 {
            store.announce(Instant::ZERO, hash(n), peer(1));
        }
        let (sample, total) = store.sample(20, &mut rng);
        assert_eq!(total, 30);
        assert_eq!(sample.len(), 20);
        let mut unique = sample.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 20);
        assert_eq!(store.sample(20, &mut rng).0.len(), 20);
        assert!(PeerStore::new(StorageLimits::default())
            .sample(20, &mut rng)
            .0
            .is_empty());
    }
}
