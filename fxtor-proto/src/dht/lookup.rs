//! Iterative lookups (BEP5, after Kademlia): walking towards a target by asking the closest
//! nodes known for nodes closer still.
//!
//! A lookup keeps candidates sorted by distance to its target (at most
//! [`MAX_CANDIDATES`]). It asks the closest candidate not yet asked whenever fewer than α
//! queries are in flight, looking only among the `k` closest candidates that have not
//! failed. A query that times out is sent once more (and stops counting against α, so the
//! lookup moves on meanwhile); a second timeout, or an error, fails the candidate. The
//! lookup is done when none of the `k` closest candidates that have not failed is left to
//! ask or waiting for: they all answered, or there is nobody left. A candidate whose query
//! is being retried is suspect: it leaves the window of the `k` closest until it answers,
//! so a lookup does not wait on a dead node.
//!
//! Bootstrap addresses come without ids; they sort after every known id, so they are asked
//! first only while nothing closer is known.

use core::net::SocketAddr;
use std::collections::BTreeSet;

use bytes::Bytes;

use super::krpc::NodeInfo;
use super::node_id::{Distance, NodeId};

/// The most candidates a lookup remembers.
pub(crate) const MAX_CANDIDATES: usize = 64;
/// The most distinct peers a lookup remembers having reported.
const MAX_PEERS_SEEN: usize = 2048;

/// Names a lookup started with [`Dht::get_peers`](super::Dht::get_peers) or
/// [`Dht::announce`](super::Dht::announce).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

/// What a lookup is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupKind {
    /// `get_peers`: peers for an info-hash.
    GetPeers,
    /// `get_peers`, then `announce_peer` to the closest nodes that answered; `None` as the
    /// port announces the port our datagrams come from (`implied_port`).
    Announce {
        /// The port to announce.
        port: Option<u16>,
    },
    /// `find_node` for our own id, from the bootstrap nodes.
    Bootstrap,
    /// `find_node` for an id in a bucket that has been quiet.
    Refresh,
}

/// What a lookup cost, reported when it ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Queries sent (retries included).
    pub queries: u32,
    /// Responses received.
    pub responses: u32,
    /// Queries that got no answer in time.
    pub timeouts: u32,
    /// Round trips on the path to the closest node that answered: 1 when a node we
    /// started from was the closest, one more for each hop.
    pub round_trips: u32,
    /// Distinct peers reported.
    pub peers: u32,
    /// `announce_peer` queries sent at the end (announces only).
    pub announced_to: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Fresh,
    InFlight { retried: bool },
    Responded,
    Failed,
}

#[derive(Clone, Debug)]
struct Candidate {
    id: Option<NodeId>,
    addr: SocketAddr,
    state: State,
    token: Option<Bytes>,
    /// Round trips from a starting node to this one.
    hop: u32,
}

impl Candidate {
    /// Whether the candidate counts among the `k` closest: not failed, and not suspect (a
    /// query to it timed out once and was sent again).
    fn in_window(&self) -> bool {
        !matches!(
            self.state,
            State::Failed | State::InFlight { retried: true }
        )
    }
}

/// One lookup in progress.
#[derive(Debug)]
pub(crate) struct Lookup {
    pub(crate) id: LookupId,
    pub(crate) target: NodeId,
    pub(crate) kind: LookupKind,
    k: usize,
    alpha: usize,
    candidates: Vec<Candidate>,
    peers_seen: BTreeSet<SocketAddr>,
    pub(crate) stats: LookupStats,
}

impl Lookup {
    pub(crate) fn new(
        id: LookupId,
        target: NodeId,
        kind: LookupKind,
        k: usize,
        alpha: usize,
        seeds: impl IntoIterator<Item = (Option<NodeId>, SocketAddr)>,
    ) -> Self {
        let mut lookup = Self {
            id,
            target,
            kind,
            k: k.max(1),
            alpha: alpha.max(1),
            candidates: Vec::new(),
            peers_seen: BTreeSet::new(),
            stats: LookupStats::default(),
        };
        for (node, addr) in seeds {
            lookup.add(node, addr, 0);
        }
        lookup
    }

    fn key(&self, id: Option<NodeId>) -> Option<Distance> {
        id.map(|id| id.distance(&self.target))
    }

    /// Adds a candidate unless its address or id is known already.
    fn add(&mut self, id: Option<NodeId>, addr: SocketAddr, hop: u32) {
        if self
            .candidates
            .iter()
            .any(|c| c.addr == addr || (id.is_some() && c.id == id))
        {
            return;
        }
        let key = self.key(id);
        // Known ids first, by distance; unknown ids last.
        let position = self
            .candidates
            .partition_point(|c| match (self.key(c.id), key) {
                (Some(a), Some(b)) => a <= b,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => true,
            });
        if position >= MAX_CANDIDATES {
            return;
        }
        self.candidates.insert(
            position,
            Candidate {
                id,
                addr,
                state: State::Fresh,
                token: None,
                hop,
            },
        );
        if self.candidates.len() > MAX_CANDIDATES {
            // Drop the farthest candidate not waited for.
            if let Some(last) = self
                .candidates
                .iter()
                .rposition(|c| !matches!(c.state, State::InFlight { .. }))
            {
                self.candidates.remove(last);
            }
        }
    }

    /// The next node to query (its address, and its id if known), if the lookup may send
    /// one now; it counts as in flight.
    pub(crate) fn next_query(&mut self) -> Option<(SocketAddr, Option<NodeId>)> {
        let active = self
            .candidates
            .iter()
            .filter(|c| c.state == State::InFlight { retried: false })
            .count();
        if active >= self.alpha {
            return None;
        }
        let candidate = self
            .candidates
            .iter_mut()
            .filter(|c| c.in_window())
            .take(self.k)
            .find(|c| c.state == State::Fresh)?;
        candidate.state = State::InFlight { retried: false };
        self.stats.queries += 1;
        Some((candidate.addr, candidate.id))
    }

    /// Takes a response from `addr`: marks it answered and adds the nodes it names. Returns
    /// the peers among `values` not reported before.
    pub(crate) fn on_response(
        &mut self,
        addr: SocketAddr,
        id: NodeId,
        nodes: &[NodeInfo],
        token: Option<Bytes>,
        values: &[SocketAddr],
    ) -> Vec<SocketAddr> {
        let Some(index) = self
            .candidates
            .iter()
            .position(|c| c.addr == addr && matches!(c.state, State::InFlight { .. }))
        else {
            return Vec::new();
        };
        self.stats.responses += 1;
        let mut candidate = self.candidates.remove(index);
        candidate.state = State::Responded;
        candidate.token = token;
        let hop = candidate.hop;
        if candidate.id != Some(id) {
            candidate.id = Some(id);
        }
        // Re-insert at its place (its id may have been unknown).
        self.candidates.retain(|c| c.id != Some(id));
        let key = self.key(Some(id));
        let position = self
            .candidates
            .partition_point(|c| self.key(c.id).is_some_and(|d| Some(d) <= key));
        self.candidates.insert(position, candidate);
        for node in nodes {
            self.add(Some(node.id), node.addr, hop + 1);
        }
        self.note_peers(values)
    }

    /// Returns the peers among `values` not reported before, and remembers them.
    pub(crate) fn note_peers(&mut self, values: &[SocketAddr]) -> Vec<SocketAddr> {
        let mut fresh = Vec::new();
        for &peer in values {
            if self.peers_seen.len() < MAX_PEERS_SEEN && self.peers_seen.insert(peer) {
                fresh.push(peer);
            }
        }
        self.stats.peers = self.peers_seen.len() as u32;
        fresh
    }

    /// Takes a timeout (or an error, with `retry == false`) for the query to `addr`.
    /// Returns whether the query should be sent again.
    pub(crate) fn on_failure(&mut self, addr: SocketAddr, retry: bool, timeout: bool) -> bool {
        let Some(candidate) = self
            .candidates
            .iter_mut()
            .find(|c| c.addr == addr && matches!(c.state, State::InFlight { .. }))
        else {
            return false;
        };
        if timeout {
            self.stats.timeouts += 1;
        }
        if retry && candidate.state == (State::InFlight { retried: false }) {
            candidate.state = State::InFlight { retried: true };
            self.stats.queries += 1;
            true
        } else {
            candidate.state = State::Failed;
            false
        }
    }

    /// Whether the `k` closest candidates that have not failed all answered (or none is
    /// left to ask).
    pub(crate) fn is_done(&self) -> bool {
        self.candidates
            .iter()
            .filter(|c| c.in_window())
            .take(self.k)
            .all(|c| c.state == State::Responded)
    }

    /// The `k` closest nodes that answered with a token: where to announce.
    pub(crate) fn announce_targets(&self) -> Vec<(SocketAddr, Bytes)> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Responded)
            .filter_map(|c| c.token.clone().map(|t| (c.addr, t)))
            .take(self.k)
            .collect()
    }

    /// Fills in [`LookupStats::round_trips`] from the closest node that answered.
    pub(crate) fn finish_stats(&mut self) -> LookupStats {
        self.stats.round_trips = self
            .candidates
            .iter()
            .find(|c| c.state == State::Responded)
            .map_or(0, |c| c.hop + 1);
        self.stats
    }

    /// Candidates remembered.
    #[cfg(test)]
    pub(crate) fn candidates(&self) -> usize {
        self.candidates.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(first: u8) -> NodeId {
        let mut id = [0u8; 20];
        id[0] = first;
        NodeId(id)
    }

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([100, 64, 0, n], 6881))
    }

    fn next(lookup: &mut Lookup) -> Option<SocketAddr> {
        lookup.next_query().map(|(addr, _)| addr)
    }

    fn node(n: u8) -> NodeInfo {
        NodeInfo {
            id: id(n),
            addr: addr(n),
        }
    }

    #[test]
    fn asks_alpha_closest_first_and_ends_when_k_closest_answered() {
        let target = id(0);
        let seeds = (10..20).map(|n| (Some(id(n)), addr(n)));
        let mut lookup = Lookup::new(LookupId(1), target, LookupKind::GetPeers, 4, 3, seeds);
        let first: Vec<_> = std::iter::from_fn(|| next(&mut lookup)).collect();
        assert_eq!(first, vec![addr(10), addr(11), addr(12)]);
        // Node 10 knows closer nodes; they are asked next.
        lookup.on_response(addr(10), id(10), &[node(1), node(2)], None, &[]);
        assert_eq!(next(&mut lookup), Some(addr(1)));
        assert_eq!(next(&mut lookup), None);
        lookup.on_response(
            addr(1),
            id(1),
            &[],
            Some(Bytes::from_static(b"t1")),
            &[addr(99)],
        );
        lookup.on_response(addr(11), id(11), &[], None, &[]);
        assert_eq!(next(&mut lookup), Some(addr(2)));
        assert!(!lookup.is_done());
        // 12 and 2 time out: 2 is retried, 12 fails without retry.
        assert!(lookup.on_failure(addr(2), true, true));
        assert!(!lookup.on_failure(addr(12), false, true));
        // The retried query no longer holds a slot: 13 is asked meanwhile.
        assert_eq!(next(&mut lookup), Some(addr(13)));
        assert!(!lookup.on_failure(addr(2), true, true));
        lookup.on_response(addr(13), id(13), &[], None, &[]);
        // The 4 closest alive: 1, 10, 11, 13: all answered.
        assert!(lookup.is_done());
        assert_eq!(
            lookup.announce_targets(),
            vec![(addr(1), Bytes::from_static(b"t1"))]
        );
        let stats = lookup.finish_stats();
        assert_eq!(stats.round_trips, 2);
        assert_eq!(stats.peers, 1);
        assert_eq!(stats.timeouts, 3);
    }

    #[test]
    fn unknown_ids_sort_last_and_learn_their_place() {
        let target = id(0);
        let mut lookup = Lookup::new(
            LookupId(1),
            target,
            LookupKind::Bootstrap,
            8,
            3,
            [(None, addr(50))],
        );
        assert_eq!(next(&mut lookup), Some(addr(50)));
        lookup.on_response(addr(50), id(50), &[node(5)], None, &[]);
        assert_eq!(next(&mut lookup), Some(addr(5)));
        lookup.on_response(addr(5), id(5), &[], None, &[]);
        assert!(lookup.is_done());
        assert_eq!(lookup.finish_stats().round_trips, 2);
    }

    #[test]
    fn candidates_are_bounded_and_peers_deduplicated() {
        let mut lookup = Lookup::new(
            LookupId(1),
            id(0),
            LookupKind::GetPeers,
            8,
            3,
            [(Some(id(200)), addr(200))],
        );
        assert_eq!(next(&mut lookup), Some(addr(200)));
        let many: Vec<NodeInfo> = (0..150u8)
            .map(|n| NodeInfo {
                id: id(n),
                addr: SocketAddr::from(([100, 65, 0, n], 1)),
            })
            .collect();
        let peers = [addr(1), addr(1), addr(2)];
        assert_eq!(
            lookup.on_response(addr(200), id(200), &many, None, &peers),
            vec![addr(1), addr(2)]
        );
        assert!(lookup.candidates() <= MAX_CANDIDATES);
        assert!(lookup
            .on_response(addr(200), id(200), &[], None, &peers)
            .is_empty());
    }
}
