//! The routing table (BEP5): the nodes we know, in buckets of `k` by the length of the
//! prefix their id shares with ours.
//!
//! Bucket `i` holds the nodes whose ids share exactly `i` leading bits with ours; the last
//! bucket holds every node that shares at least as many, so it is the one containing our
//! own id, and it is the only one that splits when full (Kademlia's rule: we know much
//! about the space near us and a little about the rest). There is one table per address
//! family.
//!
//! Nodes are [`NodeState::Good`] when they answered us in the last 15 minutes, or answered
//! us once and sent us a query in the last 15 minutes; [`NodeState::Questionable`] when
//! quiet longer (and until they have answered once); [`NodeState::Bad`] after failing to
//! answer [`MAX_FAILURES`] queries in a row. A full bucket takes a new node only in place
//! of a bad one; otherwise the newcomer waits in the bucket's replacement cache (at most `k`
//! entries, newest kept) and takes the place of the next node that turns bad. Buckets
//! nothing happened in for 15 minutes are due a refresh.

use core::net::SocketAddr;
use core::time::Duration;

use super::krpc::NodeInfo;
use super::node_id::NodeId;
use crate::rng::Rng;
use crate::time::Instant;

/// How long a node stays good without news, and a bucket fresh (BEP5: 15 minutes).
pub(crate) const GOOD_FOR: Duration = Duration::from_secs(15 * 60);
/// Failed queries in a row after which a node is bad.
pub(crate) const MAX_FAILURES: u8 = 2;
/// How long between two pings of the same questionable node.
const PING_EVERY: Duration = Duration::from_secs(60);

/// A node's standing in the routing table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeState {
    Good,
    Questionable,
    Bad,
}

/// How we heard from a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Contact {
    /// It answered one of our queries.
    Responded,
    /// It sent us a query.
    Queried,
}

/// What [`RoutingTable::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Insert {
    /// A new node in a bucket.
    Added,
    /// A node already there, refreshed.
    Updated,
    /// The bucket is full of nodes that are not bad: the node waits in the replacement
    /// cache.
    Cached,
    /// Refused: our own id, an id BEP42 does not allow for the address, an address
    /// already in the table under another id, or a known id at another address.
    Rejected,
}

/// One entry of the table.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub(crate) id: NodeId,
    pub(crate) addr: SocketAddr,
    last_response: Option<Instant>,
    last_query: Option<Instant>,
    last_ping: Option<Instant>,
    failures: u8,
}

impl Node {
    fn new(now: Instant, id: NodeId, addr: SocketAddr, contact: Contact) -> Self {
        let mut node = Self {
            id,
            addr,
            last_response: None,
            last_query: None,
            last_ping: None,
            failures: 0,
        };
        node.touch(now, contact);
        node
    }

    fn touch(&mut self, now: Instant, contact: Contact) {
        match contact {
            Contact::Responded => {
                self.last_response = Some(now);
                self.failures = 0;
            }
            Contact::Queried => self.last_query = Some(now),
        }
    }

    pub(crate) fn state(&self, now: Instant) -> NodeState {
        let recent =
            |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < GOOD_FOR);
        if self.failures >= MAX_FAILURES {
            NodeState::Bad
        } else if recent(self.last_response)
            || (self.last_response.is_some() && recent(self.last_query))
        {
            NodeState::Good
        } else {
            NodeState::Questionable
        }
    }

    fn last_seen(&self) -> Option<Instant> {
        self.last_response.max(self.last_query)
    }

    fn info(&self) -> NodeInfo {
        NodeInfo {
            id: self.id,
            addr: self.addr,
        }
    }
}

#[derive(Debug)]
struct Bucket {
    nodes: Vec<Node>,
    replacements: Vec<Node>,
    last_changed: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Self {
            nodes: Vec::new(),
            replacements: Vec::new(),
            last_changed: now,
        }
    }
}

/// Counts of a table's nodes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Buckets.
    pub buckets: usize,
    /// Good nodes.
    pub good: usize,
    /// Questionable nodes.
    pub questionable: usize,
    /// Bad nodes (still in a bucket for want of a replacement).
    pub bad: usize,
    /// Nodes waiting in replacement caches.
    pub replacements: usize,
}

impl TableStats {
    /// Nodes in buckets, whatever their state.
    pub fn nodes(&self) -> usize {
        self.good + self.questionable + self.bad
    }
}

/// One address family's routing table.
#[derive(Debug)]
pub(crate) struct RoutingTable {
    own: NodeId,
    k: usize,
    restrict_ips: bool,
    buckets: Vec<Bucket>,
}

impl RoutingTable {
    pub(crate) fn new(now: Instant, own: NodeId, k: usize, restrict_ips: bool) -> Self {
        Self {
            own,
            k: k.max(1),
            restrict_ips,
            buckets: vec![Bucket::new(now)],
        }
    }

    fn bucket_index(&self, id: &NodeId) -> usize {
        // There is always at least one bucket.
        self.own.common_prefix_len(id).min(self.buckets.len() - 1)
    }

    /// Records that we heard from `id` at `addr`.
    pub(crate) fn insert(
        &mut self,
        now: Instant,
        id: NodeId,
        addr: SocketAddr,
        contact: Contact,
    ) -> Insert {
        if id == self.own || (self.restrict_ips && !id.is_secure_for(addr.ip())) {
            return Insert::Rejected;
        }
        let index = self.bucket_index(&id);
        let bucket = &mut self.buckets[index];
        if let Some(node) = bucket.nodes.iter_mut().find(|n| n.id == id) {
            if node.addr != addr {
                return Insert::Rejected;
            }
            node.touch(now, contact);
            bucket.last_changed = now;
            return Insert::Updated;
        }
        let restrict_ips = self.restrict_ips;
        let taken = self
            .buckets
            .iter()
            .flat_map(|b| &b.nodes)
            .any(|n| n.addr == addr || (restrict_ips && n.addr.ip() == addr.ip()));
        if taken {
            return Insert::Rejected;
        }
        let node = Node::new(now, id, addr, contact);
        loop {
            let index = self.bucket_index(&id);
            let count = self.buckets.len();
            let last = index == count - 1;
            let k = self.k;
            let bucket = &mut self.buckets[index];
            if bucket.nodes.len() < k {
                bucket.replacements.retain(|n| n.id != id);
                bucket.nodes.push(node);
                bucket.last_changed = now;
                return Insert::Added;
            }
            if let Some(bad) = bucket
                .nodes
                .iter_mut()
                .find(|n| n.state(now) == NodeState::Bad)
            {
                *bad = node;
                bucket.last_changed = now;
                return Insert::Added;
            }
            if last && count < 160 {
                self.split(now);
                continue;
            }
            bucket.replacements.retain(|n| n.id != id && n.addr != addr);
            bucket.replacements.push(node);
            if bucket.replacements.len() > k {
                bucket.replacements.remove(0);
            }
            return Insert::Cached;
        }
    }

    /// Splits the last bucket: the nodes sharing one more bit with us move to a new last
    /// bucket.
    fn split(&mut self, now: Instant) {
        let new_index = self.buckets.len();
        let own = self.own;
        let mut fresh = Bucket::new(now);
        if let Some(old) = self.buckets.last_mut() {
            let closer = |n: &Node| own.common_prefix_len(&n.id) >= new_index;
            fresh.nodes = old.nodes.iter().filter(|n| closer(n)).cloned().collect();
            old.nodes.retain(|n| !closer(n));
            fresh.replacements = old
                .replacements
                .iter()
                .filter(|n| closer(n))
                .cloned()
                .collect();
            old.replacements.retain(|n| !closer(n));
        }
        self.buckets.push(fresh);
    }

    /// Records that `id` at `addr` failed to answer; a node that turns bad is replaced from
    /// the replacement cache if it can be. Returns whether the node is now bad.
    pub(crate) fn on_failure(&mut self, now: Instant, id: &NodeId, addr: SocketAddr) -> bool {
        let index = self.bucket_index(id);
        let bucket = &mut self.buckets[index];
        let Some(position) = bucket
            .nodes
            .iter()
            .position(|n| n.id == *id && n.addr == addr)
        else {
            return false;
        };
        let node = &mut bucket.nodes[position];
        node.failures = node.failures.saturating_add(1);
        if node.state(now) != NodeState::Bad {
            return false;
        }
        // The newest replacement that answered us, else the newest.
        let pick = bucket
            .replacements
            .iter()
            .rposition(|n| n.last_response.is_some())
            .or(bucket.replacements.len().checked_sub(1));
        if let Some(pick) = pick {
            let replacement = bucket.replacements.remove(pick);
            bucket.nodes[position] = replacement;
            bucket.last_changed = now;
        }
        true
    }

    /// The `count` nodes closest to `target` that are not bad, closest first.
    pub(crate) fn closest(&self, now: Instant, target: &NodeId, count: usize) -> Vec<NodeInfo> {
        let mut all: Vec<(super::node_id::Distance, NodeInfo)> = self
            .buckets
            .iter()
            .flat_map(|b| &b.nodes)
            .filter(|n| n.state(now) != NodeState::Bad)
            .map(|n| (n.id.distance(target), n.info()))
            .collect();
        if all.len() > count && count > 0 {
            all.select_nth_unstable_by_key(count - 1, |(d, _)| *d);
            all.truncate(count);
        }
        all.sort_unstable_by_key(|(d, _)| *d);
        all.truncate(count);
        all.into_iter().map(|(_, n)| n).collect()
    }

    /// Targets for buckets nothing happened in for `interval`: a random id in each such
    /// bucket's range. The buckets count as refreshed from now.
    pub(crate) fn refresh_targets(
        &mut self,
        now: Instant,
        interval: Duration,
        rng: &mut Rng,
    ) -> Vec<NodeId> {
        let last = self.buckets.len() - 1;
        let own = self.own;
        let mut targets = Vec::new();
        for (index, bucket) in self.buckets.iter_mut().enumerate() {
            if now.saturating_duration_since(bucket.last_changed) >= interval {
                bucket.last_changed = now;
                targets.push(own.random_with_prefix(index, index != last, rng));
            }
        }
        targets
    }

    /// The questionable node heard from longest ago that was not pinged in the last minute:
    /// the one to ping next. It counts as pinged from now.
    pub(crate) fn next_to_ping(&mut self, now: Instant) -> Option<NodeInfo> {
        let node = self
            .buckets
            .iter_mut()
            .flat_map(|b| b.nodes.iter_mut())
            .filter(|n| {
                n.state(now) == NodeState::Questionable
                    && n.last_ping
                        .is_none_or(|p| now.saturating_duration_since(p) >= PING_EVERY)
            })
            .min_by_key(|n| n.last_seen())?;
        node.last_ping = Some(now);
        Some(node.info())
    }

    /// Every node in a bucket, good ones first.
    pub(crate) fn nodes(&self, now: Instant) -> Vec<NodeInfo> {
        let mut nodes: Vec<&Node> = self.buckets.iter().flat_map(|b| &b.nodes).collect();
        nodes.sort_by_key(|n| match n.state(now) {
            NodeState::Good => 0,
            NodeState::Questionable => 1,
            NodeState::Bad => 2,
        });
        nodes.into_iter().map(Node::info).collect()
    }

    /// Whether `id` is in a bucket.
    #[cfg(test)]
    pub(crate) fn contains(&self, id: &NodeId) -> bool {
        self.buckets[self.bucket_index(id)]
            .nodes
            .iter()
            .any(|n| n.id == *id)
    }

    /// Counts by state.
    pub(crate) fn stats(&self, now: Instant) -> TableStats {
        let mut stats = TableStats {
            buckets: self.buckets.len(),
            ..TableStats::default()
        };
        for bucket in &self.buckets {
            stats.replacements += bucket.replacements.len();
            for node in &bucket.nodes {
                match node.state(now) {
                    NodeState::Good => stats.good += 1,
                    NodeState::Questionable => stats.questionable += 1,
                    NodeState::Bad => stats.bad += 1,
                }
            }
        }
        stats
    }

    /// The most nodes the table can hold in buckets and caches: 160 buckets of `k`, and
    /// their caches.
    pub(crate) fn capacity(k: usize) -> usize {
        160 * 2 * k.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u32) -> SocketAddr {
        SocketAddr::from(((0x6440_0000u32 + n).to_be_bytes(), 6881))
    }

    fn table(own: NodeId) -> RoutingTable {
        RoutingTable::new(Instant::ZERO, own, 8, false)
    }

    #[test]
    fn only_the_bucket_holding_our_id_splits() {
        let own = NodeId([0; 20]);
        let mut rt = table(own);
        let mut rng = Rng::new(2);
        // Nine nodes far from us (first bit differs): the first bucket splits once, then the
        // far bucket is full and the ninth waits.
        let mut far = Vec::new();
        for n in 0..9 {
            let id = own.random_with_prefix(0, true, &mut rng);
            far.push(id);
            let outcome = rt.insert(Instant::ZERO, id, addr(n), Contact::Responded);
            assert_eq!(
                outcome,
                if n < 8 { Insert::Added } else { Insert::Cached },
                "{n}"
            );
        }
        assert_eq!(rt.stats(Instant::ZERO).buckets, 2);
        // Near nodes keep splitting the last bucket.
        for n in 0..40 {
            let id = own.random_with_prefix(1 + (n as usize % 5), true, &mut rng);
            assert_ne!(
                rt.insert(Instant::ZERO, id, addr(100 + n), Contact::Responded),
                Insert::Rejected
            );
        }
        let stats = rt.stats(Instant::ZERO);
        assert!(stats.buckets >= 6, "{stats:?}");
        assert_eq!(stats.good, 8 + 40);
        // No bucket holds more than k, and each node sits where its prefix says.
        for (i, bucket) in rt.buckets.iter().enumerate() {
            assert!(bucket.nodes.len() <= 8);
            for node in &bucket.nodes {
                let cpl = own.common_prefix_len(&node.id);
                if i + 1 < rt.buckets.len() {
                    assert_eq!(cpl, i);
                } else {
                    assert!(cpl >= i);
                }
            }
        }
        // The closest come back in order.
        let target = own.random_with_prefix(3, true, &mut rng);
        let closest = rt.closest(Instant::ZERO, &target, 8);
        assert_eq!(closest.len(), 8);
        assert!(closest
            .windows(2)
            .all(|w| w[0].id.distance(&target) <= w[1].id.distance(&target)));
    }

    #[test]
    fn node_states_follow_bep5_timing() {
        let own = NodeId([0; 20]);
        let mut rt = table(own);
        let id = NodeId([0x80; 20]);
        rt.insert(Instant::ZERO, id, addr(1), Contact::Responded);
        let node = |rt: &RoutingTable| rt.buckets[0].nodes[0].clone();
        assert_eq!(node(&rt).state(Instant::from_secs(899)), NodeState::Good);
        assert_eq!(
            node(&rt).state(Instant::from_secs(900)),
            NodeState::Questionable
        );
        // A query from a node that once answered makes it good again.
        rt.insert(Instant::from_secs(1000), id, addr(1), Contact::Queried);
        assert_eq!(node(&rt).state(Instant::from_secs(1000)), NodeState::Good);
        // A node that only ever queried us is questionable.
        let querier = NodeId([0x40; 20]);
        rt.insert(Instant::ZERO, querier, addr(2), Contact::Queried);
        assert_eq!(rt.stats(Instant::ZERO).questionable, 1);
        // Failures make it bad; an answer clears them.
        let t = Instant::from_secs(1000);
        assert!(!rt.on_failure(t, &id, addr(1)));
        rt.insert(t, id, addr(1), Contact::Responded);
        assert!(!rt.on_failure(t, &id, addr(1)));
        assert!(rt.on_failure(t, &id, addr(1)));
        assert_eq!(node(&rt).state(t), NodeState::Bad);
        // Bad nodes are not handed out.
        assert!(rt.closest(t, &id, 8).iter().all(|n| n.id != id));
        // The questionable querier is the one to ping, once a minute.
        assert_eq!(rt.next_to_ping(t).map(|n| n.id), Some(querier));
        assert_eq!(rt.next_to_ping(t), None);
        assert_eq!(
            rt.next_to_ping(t + Duration::from_secs(60)).map(|n| n.id),
            Some(querier)
        );
    }

    #[test]
    fn replacements_take_the_place_of_bad_nodes() {
        let own = NodeId([0; 20]);
        let mut rt = table(own);
        let mut rng = Rng::new(3);
        // Fill bucket 0 (after the first split) with far nodes.
        let far: Vec<NodeId> = (0..8)
            .map(|_| own.random_with_prefix(0, true, &mut rng))
            .collect();
        for (n, id) in far.iter().enumerate() {
            rt.insert(Instant::ZERO, *id, addr(n as u32), Contact::Responded);
        }
        rt.split(Instant::ZERO);
        let waiting = own.random_with_prefix(0, true, &mut rng);
        assert_eq!(
            rt.insert(Instant::ZERO, waiting, addr(50), Contact::Responded),
            Insert::Cached
        );
        assert_eq!(rt.stats(Instant::ZERO).replacements, 1);
        // One node fails twice: the waiting node takes its place.
        rt.on_failure(Instant::ZERO, &far[3], addr(3));
        assert!(rt.contains(&far[3]));
        rt.on_failure(Instant::ZERO, &far[3], addr(3));
        assert!(!rt.contains(&far[3]));
        assert!(rt.contains(&waiting));
        assert_eq!(rt.stats(Instant::ZERO).replacements, 0);
        // Without a replacement, a new node takes a bad node's place directly.
        rt.on_failure(Instant::ZERO, &far[4], addr(4));
        rt.on_failure(Instant::ZERO, &far[4], addr(4));
        let newcomer = own.random_with_prefix(0, true, &mut rng);
        assert_eq!(
            rt.insert(Instant::ZERO, newcomer, addr(60), Contact::Queried),
            Insert::Added
        );
        assert!(!rt.contains(&far[4]));
    }

    #[test]
    fn rejects_spoofed_and_duplicate_entries() {
        let own = NodeId([0; 20]);
        let mut rt = table(own);
        assert_eq!(
            rt.insert(Instant::ZERO, own, addr(1), Contact::Responded),
            Insert::Rejected
        );
        let id = NodeId([0x80; 20]);
        rt.insert(Instant::ZERO, id, addr(1), Contact::Responded);
        // The same id from another address, another id at the same address.
        assert_eq!(
            rt.insert(Instant::ZERO, id, addr(2), Contact::Responded),
            Insert::Rejected
        );
        assert_eq!(
            rt.insert(
                Instant::ZERO,
                NodeId([0x81; 20]),
                addr(1),
                Contact::Responded
            ),
            Insert::Rejected
        );
        // With BEP42 enforced, an id that does not match a public address is refused, and
        // only one node per IP is kept.
        let mut strict = RoutingTable::new(Instant::ZERO, own, 8, true);
        assert_eq!(
            strict.insert(Instant::ZERO, id, addr(1), Contact::Responded),
            Insert::Rejected
        );
        let mut rng = Rng::new(1);
        let good = NodeId::secure(addr(1).ip(), 7, NodeId::random(&mut rng));
        assert_eq!(
            strict.insert(Instant::ZERO, good, addr(1), Contact::Responded),
            Insert::Added
        );
        let other = NodeId::secure(addr(1).ip(), 3, NodeId::random(&mut rng));
        let other_port = SocketAddr::new(addr(1).ip(), 7000);
        assert_eq!(
            strict.insert(Instant::ZERO, other, other_port, Contact::Responded),
            Insert::Rejected
        );
        // Without it, many nodes may share one IP (a test network on loopback).
        let mut open = table(own);
        for port in 1..20u16 {
            let id = own.random_with_prefix(0, true, &mut rng);
            let outcome = open.insert(
                Instant::ZERO,
                id,
                SocketAddr::from(([127, 0, 0, 1], port)),
                Contact::Responded,
            );
            assert_ne!(outcome, Insert::Rejected);
        }
    }

    #[test]
    fn stale_buckets_are_refreshed_once() {
        let own = NodeId([0; 20]);
        let mut rt = table(own);
        let mut rng = Rng::new(3);
        for n in 0..9 {
            rt.insert(
                Instant::ZERO,
                own.random_with_prefix(0, true, &mut rng),
                addr(n),
                Contact::Responded,
            );
        }
        assert!(rt
            .refresh_targets(Instant::from_secs(100), GOOD_FOR, &mut rng)
            .is_empty());
        let t = Instant::from_secs(15 * 60);
        let targets = rt.refresh_targets(t, GOOD_FOR, &mut rng);
        assert_eq!(targets.len(), 2);
        assert_eq!(own.common_prefix_len(&targets[0]), 0);
        assert!(own.common_prefix_len(&targets[1]) >= 1);
        assert!(rt.refresh_targets(t, GOOD_FOR, &mut rng).is_empty());
    }
}
