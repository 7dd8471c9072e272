//! The mainline DHT (BEP5) as a sans-IO state machine, with IPv6 (BEP32), secure node ids
//! (BEP42), read-only nodes (BEP43) and `sample_infohashes` (BEP51).
//!
//! [`Dht`] takes datagrams and the time in and gives datagrams, a timeout and events out:
//!
//! - feed every datagram that arrives on the DHT's UDP socket (a bencoded dictionary,
//!   starting with `d`) to [`handle_datagram`](Dht::handle_datagram);
//! - send every [`Datagram`] [`poll_transmit`](Dht::poll_transmit) gives;
//! - call [`handle_timeout`](Dht::handle_timeout) once [`poll_timeout`](Dht::poll_timeout)
//!   has passed;
//! - drain [`poll_event`](Dht::poll_event) for peers found, lookups finished, the bootstrap
//!   and our external address.
//!
//! # Parts
//!
//! [`krpc`] is the message codec; `node_id` the id space and BEP42; `routing` the routing
//! table (one per address family); `lookup` iterative lookups; `storage` the peers announced
//! to us; `token` the `get_peers` tokens; `rate_limit` the per-IP flood limit;
//! `external_ip` the vote on our external address.
//!
//! # What the caller schedules
//!
//! The DHT keeps its own house: it refreshes buckets that have been quiet for 15 minutes,
//! pings questionable nodes, re-bootstraps while its table is nearly empty, rotates token
//! secrets and expires stored peers. It does not keep a list of torrents: **re-announcing
//! is the caller's job** (BEP5 peers expire after 30 minutes; announce each torrent every
//! 15 or so). A hybrid torrent is announced twice, once under its v1 info-hash and once
//! under its v2 info-hash truncated to 20 bytes
//! ([`InfoHashV2::truncated`](crate::InfoHashV2::truncated)), and looked up under both.

mod external_ip;
pub mod krpc;
mod lookup;
mod node_id;
mod rate_limit;
mod routing;
mod storage;
mod token;

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

use core::net::{IpAddr, SocketAddr};
use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use thiserror::Error;

use self::external_ip::ExternalIpVotes;
use self::krpc::{
    Body, ErrorMessage, Message, NodeInfo, Query, QueryKind, Response, TransactionId, Want,
};
use self::lookup::Lookup;
use self::rate_limit::RateLimiter;
use self::routing::{Contact, RoutingTable};
use self::storage::PeerStore;
use self::token::Tokens;
use crate::bencode::{self, Mode};
use crate::rng::Rng;
use crate::time::Instant;

pub use self::lookup::{LookupId, LookupKind, LookupStats};
pub use self::node_id::{Distance, NodeId};
pub use self::rate_limit::RateLimitConfig;
pub use self::routing::TableStats;
pub use self::storage::StorageLimits;

/// How often the DHT does its housekeeping.
const TICK: Duration = Duration::from_secs(5);
/// How often stored peers are swept for expiry.
const EXPIRE_EVERY: Duration = Duration::from_secs(60);
/// How long between two bootstrap attempts while the table is nearly empty.
const BOOTSTRAP_RETRY: Duration = Duration::from_secs(30);
/// Bootstrap addresses remembered.
const MAX_BOOTSTRAP: usize = 32;
/// Datagrams waiting in [`Dht::poll_transmit`]'s queue before new ones are dropped.
const MAX_TRANSMIT_QUEUE: usize = 1024;
/// Events waiting in [`Dht::poll_event`]'s queue before new `Peers` events are dropped.
const MAX_EVENT_QUEUE: usize = 1024;
/// Peers in one `get_peers` answer, by family (so the answer fits a 1,500-byte datagram).
const MAX_VALUES_V4: usize = 50;
const MAX_VALUES_V6: usize = 30;
/// Info-hashes in one `sample_infohashes` answer.
const MAX_SAMPLES: usize = 20;
/// Refresh lookups running at once.
const MAX_REFRESH_LOOKUPS: usize = 4;

/// How a [`Dht`] behaves. The defaults suit a node on the internet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhtConfig {
    /// Our node id; `None` draws one (a BEP42 one if `external_ip` is known).
    pub node_id: Option<NodeId>,
    /// Seed of every random choice (ids, transaction ids, token secrets, samples).
    pub seed: u64,
    /// BEP43: send `ro = 1`, answer no query, and so stay out of others' tables.
    pub read_only: bool,
    /// BEP42: admit to the routing table only nodes whose id suits their IP (private and
    /// loopback addresses are exempt) and at most one node per IP, and take a suitable id
    /// once our external IP is known. Turn it off for test networks where many nodes share
    /// one public IP.
    pub restrict_ips: bool,
    /// Our external IP, if known.
    pub external_ip: Option<IpAddr>,
    /// Talk to IPv4 nodes.
    pub ipv4: bool,
    /// Talk to IPv6 nodes.
    pub ipv6: bool,
    /// Bucket size and the number of closest nodes a lookup waits for (8).
    pub k: usize,
    /// Queries a lookup keeps in flight (3).
    pub alpha: usize,
    /// How long to wait for an answer before sending again or giving up (3 s).
    pub request_timeout: Duration,
    /// Requests in flight at once, over all lookups and pings (512).
    pub max_pending: usize,
    /// Bounds of the store of announced peers.
    pub storage: StorageLimits,
    /// The per-IP limit on incoming datagrams; `None` turns it off.
    pub rate_limit: Option<RateLimitConfig>,
    /// The `interval` of `sample_infohashes` answers (6 hours).
    pub sample_interval: Duration,
    /// The `v` field: client and version (`FX` and two version bytes).
    pub version: Option<[u8; 4]>,
}

impl Default for DhtConfig {
    fn default() -> Self {
        Self {
            node_id: None,
            seed: 0,
            read_only: false,
            restrict_ips: true,
            external_ip: None,
            ipv4: true,
            ipv6: true,
            k: 8,
            alpha: 3,
            request_timeout: Duration::from_secs(3),
            max_pending: 512,
            storage: StorageLimits::default(),
            rate_limit: Some(RateLimitConfig::default()),
            sample_interval: Duration::from_secs(6 * 3600),
            version: Some(*b"FX\x00\x01"),
        }
    }
}

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Where to.
    pub to: SocketAddr,
    /// The bencoded message.
    pub data: Bytes,
}

/// What the DHT has to say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DhtEvent {
    /// A lookup found peers (only ones it had not reported yet).
    Peers {
        /// The lookup.
        lookup: LookupId,
        /// What it looks for.
        info_hash: NodeId,
        /// The new peers.
        peers: Vec<SocketAddr>,
    },
    /// A `get_peers` or announce lookup ended.
    LookupDone {
        /// The lookup.
        lookup: LookupId,
        /// What it looked for.
        info_hash: NodeId,
        /// What it was.
        kind: LookupKind,
        /// What it cost.
        stats: LookupStats,
    },
    /// A bootstrap lookup ended; `nodes` are in the routing tables now.
    Bootstrapped {
        /// Nodes in the routing tables.
        nodes: usize,
    },
    /// Other nodes agree our external IP is `ip`. With `restrict_ips`, an id that did not
    /// suit it was replaced (`node_id_changed`) and the routing tables rebuilt.
    ExternalAddress {
        /// The IP.
        ip: IpAddr,
        /// Whether our node id changed.
        node_id_changed: bool,
    },
}

/// Counts that tell what a [`Dht`] holds; all of them are bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DhtStats {
    /// Our node id.
    pub node_id: NodeId,
    /// The IPv4 routing table.
    pub ipv4: TableStats,
    /// The IPv6 routing table.
    pub ipv6: TableStats,
    /// Info-hashes peers were announced for.
    pub stored_info_hashes: usize,
    /// Peers stored, over all info-hashes.
    pub stored_peers: usize,
    /// Lookups running.
    pub lookups: usize,
    /// Requests waiting for an answer.
    pub pending_requests: usize,
    /// IPs the rate limiter tracks.
    pub rate_limited_ips: usize,
    /// Datagrams dropped by the rate limiter so far.
    pub rate_limited_datagrams: u64,
    /// Datagrams waiting to be sent.
    pub queued_transmits: usize,
    /// Events waiting to be polled.
    pub queued_events: usize,
}

/// Why saved state could not be restored.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RestoreError {
    /// Not bencode.
    #[error("DHT state is not bencode: {0}")]
    Bencode(#[from] bencode::DecodeError),
    /// A field is missing or malformed.
    #[error("DHT state: `{0}` is missing or malformed")]
    Field(&'static str),
}

/// Why we sent a request.
#[derive(Clone, Copy, Debug)]
enum Purpose {
    /// A query of a lookup.
    Lookup(LookupId),
    /// A ping: of a questionable node, or of a node we were told about.
    Ping,
    /// An `announce_peer` at the end of an announce.
    Announce,
}

/// A request waiting for its answer.
#[derive(Clone, Debug)]
struct Pending {
    to: SocketAddr,
    node: Option<NodeId>,
    deadline: Instant,
    purpose: Purpose,
}

/// A DHT node. See the [module documentation](self) for how to drive it.
///
/// # Example
///
/// Two nodes find each other and one finds the peer the other announced:
///
/// ```
/// use core::net::SocketAddr;
/// use core::time::Duration;
/// use fxtor_proto::dht::{Dht, DhtConfig, DhtEvent, NodeId};
/// use fxtor_proto::time::Instant;
///
/// let a_addr: SocketAddr = "127.0.0.1:6881".parse().unwrap();
/// let b_addr: SocketAddr = "127.0.0.1:6882".parse().unwrap();
/// let config = |seed| DhtConfig { seed, restrict_ips: false, ..DhtConfig::default() };
/// let mut now = Instant::ZERO;
/// let mut a = Dht::new(now, config(1));
/// let mut b = Dht::new(now, config(2));
/// b.add_bootstrap(now, a_addr);
///
/// // Deliver every datagram at once, until both are quiet.
/// fn exchange(now: Instant, a: &mut Dht, a_addr: SocketAddr, b: &mut Dht, b_addr: SocketAddr) {
///     loop {
///         let mut moved = false;
///         while let Some(d) = a.poll_transmit() {
///             assert_eq!(d.to, b_addr);
///             b.handle_datagram(now, a_addr, &d.data);
///             moved = true;
///         }
///         while let Some(d) = b.poll_transmit() {
///             a.handle_datagram(now, b_addr, &d.data);
///             moved = true;
///         }
///         if !moved { break; }
///     }
/// }
/// exchange(now, &mut a, a_addr, &mut b, b_addr);
/// assert!(matches!(b.poll_event(), Some(DhtEvent::Bootstrapped { .. })));
///
/// let info_hash = NodeId([7; 20]);
/// b.announce(now, info_hash, Some(51413));
/// exchange(now, &mut a, a_addr, &mut b, b_addr);
/// now += Duration::from_secs(1);
/// let lookup = a.get_peers(now, info_hash);
/// exchange(now, &mut a, a_addr, &mut b, b_addr);
/// let peers: Vec<SocketAddr> = std::iter::from_fn(|| a.poll_event())
///     .filter_map(|e| match e {
///         DhtEvent::Peers { lookup: l, peers, .. } if l == lookup => Some(peers),
///         _ => None,
///     })
///     .flatten()
///     .collect();
/// assert_eq!(peers, vec!["127.0.0.1:51413".parse::<SocketAddr>().unwrap()]);
/// ```
#[derive(Debug)]
pub struct Dht {
    config: DhtConfig,
    id: NodeId,
    rng: Rng,
    table_v4: RoutingTable,
    table_v6: RoutingTable,
    storage: PeerStore,
    tokens: Tokens,
    limiter: Option<RateLimiter>,
    votes: ExternalIpVotes,
    bootstrap: Vec<SocketAddr>,
    /// Nodes from saved state, used as bootstrap candidates once.
    restored: Vec<NodeInfo>,
    lookups: Vec<Lookup>,
    next_lookup: u64,
    pending: BTreeMap<u16, Pending>,
    next_transaction: u16,
    transmits: VecDeque<Datagram>,
    events: VecDeque<DhtEvent>,
    next_tick: Instant,
    next_expire: Instant,
    last_bootstrap: Option<Instant>,
    rate_limited: u64,
}

impl Dht {
    /// A node that knows nobody yet: give it [`add_bootstrap`](Self::add_bootstrap)
    /// addresses or nodes ([`add_node`](Self::add_node)).
    pub fn new(now: Instant, config: DhtConfig) -> Self {
        Self::build(now, config, None)
    }

    /// A node with the id `config` gives, else `saved` if it suits what BEP42 asks, else a
    /// fresh one.
    fn build(now: Instant, config: DhtConfig, saved: Option<NodeId>) -> Self {
        let mut rng = Rng::new(config.seed);
        let suits = |id: &NodeId| match (config.restrict_ips, config.external_ip) {
            (true, Some(ip)) => id.is_secure_for(ip),
            _ => true,
        };
        let id = match (config.node_id, saved) {
            (Some(id), _) => id,
            (None, Some(id)) if suits(&id) => id,
            (None, _) => match config.external_ip {
                Some(ip) => {
                    let rand = rng.next_u32() as u8;
                    NodeId::secure(ip, rand, NodeId::random(&mut rng))
                }
                None => NodeId::random(&mut rng),
            },
        };
        let tokens = Tokens::new(now, &mut rng);
        let next_transaction = rng.next_u32() as u16;
        Self {
            table_v4: RoutingTable::new(now, id, config.k, config.restrict_ips),
            table_v6: RoutingTable::new(now, id, config.k, config.restrict_ips),
            storage: PeerStore::new(config.storage),
            limiter: config.rate_limit.map(RateLimiter::new),
            votes: ExternalIpVotes::new(config.external_ip),
            id,
            rng,
            tokens,
            bootstrap: Vec::new(),
            restored: Vec::new(),
            lookups: Vec::new(),
            next_lookup: 0,
            pending: BTreeMap::new(),
            next_transaction,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_tick: now + TICK,
            next_expire: now + EXPIRE_EVERY,
            last_bootstrap: None,
            rate_limited: 0,
            config,
        }
    }

    /// A node restored from [`save_state`](Self::save_state): the saved id (unless
    /// `config.node_id` gives one, or BEP42 wants another for `config.external_ip`) and the
    /// saved nodes as bootstrap candidates; a bootstrap lookup starts at once.
    pub fn restore(now: Instant, config: DhtConfig, state: &[u8]) -> Result<Self, RestoreError> {
        let document = bencode::decode(state, Mode::Lenient)?;
        let dict = document.as_dict().ok_or(RestoreError::Field("state"))?;
        let id = dict
            .get_bytes("id")
            .and_then(NodeId::from_slice)
            .ok_or(RestoreError::Field("id"))?;
        let mut nodes = Vec::new();
        for (field, entry) in [("nodes", 26), ("nodes6", 38)] {
            if let Some(value) = dict.get(field) {
                let bytes = value.as_bytes().ok_or(RestoreError::Field(field))?;
                if bytes.len() % entry != 0 {
                    return Err(RestoreError::Field(field));
                }
                for chunk in bytes.chunks_exact(entry) {
                    let (id, addr) = chunk.split_at(NodeId::LEN);
                    if let (Some(id), Some(addr)) =
                        (NodeId::from_slice(id), krpc::parse_compact_addr(addr))
                    {
                        nodes.push(NodeInfo { id, addr });
                    }
                }
            }
        }
        let mut dht = Self::build(now, config, Some(id));
        let max = RoutingTable::capacity(dht.config.k);
        nodes.truncate(max);
        dht.restored = nodes;
        dht.start_bootstrap(now);
        Ok(dht)
    }

    /// Our id and the nodes of our routing tables (good ones first), bencoded:
    /// `id`, `nodes` (compact IPv4) and `nodes6` (compact IPv6).
    pub fn save_state(&self, now: Instant) -> Bytes {
        let mut out = Vec::new();
        out.push(b'd');
        bencode::write_bytes(&mut out, b"id");
        bencode::write_bytes(&mut out, &self.id.0);
        for (key, table) in [("nodes", &self.table_v4), ("nodes6", &self.table_v6)] {
            let mut compact = Vec::new();
            for node in table.nodes(now) {
                compact.extend_from_slice(&node.id.0);
                compact.extend_from_slice(&krpc::compact_addr(node.addr));
            }
            bencode::write_bytes(&mut out, key.as_bytes());
            bencode::write_bytes(&mut out, &compact);
        }
        out.push(b'e');
        out.into()
    }

    /// Our node id.
    pub fn node_id(&self) -> NodeId {
        self.id
    }

    /// Our external IP: the one we were told, or the one other nodes agreed on.
    pub fn external_ip(&self) -> Option<IpAddr> {
        self.votes.current()
    }

    /// Adds a bootstrap address (a well-known node, id unknown) and starts a bootstrap
    /// lookup. It is used again whenever the routing table runs nearly empty.
    pub fn add_bootstrap(&mut self, now: Instant, addr: SocketAddr) {
        if !self.family_enabled(addr) {
            return;
        }
        if !self.bootstrap.contains(&addr) && self.bootstrap.len() < MAX_BOOTSTRAP {
            self.bootstrap.push(addr);
        }
        self.start_bootstrap(now);
    }

    /// Pings a node we were told about (a peer's `port` message, BEP5); it enters the
    /// routing table if it answers.
    pub fn add_node(&mut self, now: Instant, addr: SocketAddr) {
        if self.family_enabled(addr) {
            self.send_query(now, addr, None, QueryKind::Ping, Purpose::Ping);
        }
    }

    /// Starts a lookup for peers of `info_hash` (a v1 info-hash, or a v2 one truncated).
    /// Peers arrive as [`DhtEvent::Peers`], the end as [`DhtEvent::LookupDone`].
    pub fn get_peers(&mut self, now: Instant, info_hash: NodeId) -> LookupId {
        self.start_lookup(now, info_hash, LookupKind::GetPeers, Vec::new())
    }

    /// Starts a lookup for peers of `info_hash` that ends with announcing us to the closest
    /// nodes that answered: on `port`, or (`None`) on the port our datagrams come from
    /// (`implied_port`). Peers found on the way arrive as [`DhtEvent::Peers`]. Announces
    /// last 30 minutes at the other end: the caller repeats them (every 15 minutes or so).
    pub fn announce(&mut self, now: Instant, info_hash: NodeId, port: Option<u16>) -> LookupId {
        self.start_lookup(now, info_hash, LookupKind::Announce { port }, Vec::new())
    }

    /// Takes a datagram that arrived from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if let Some(limiter) = &mut self.limiter {
            if !limiter.allow(now, from.ip()) {
                self.rate_limited += 1;
                return;
            }
        }
        let message = match Message::decode(data) {
            Ok(message) => message,
            Err(error) => {
                if let (true, Some(transaction)) = (error.query, error.transaction) {
                    if !self.config.read_only {
                        self.send_error(from, transaction, krpc::ERROR_PROTOCOL, "invalid query");
                    }
                }
                return;
            }
        };
        match message.body {
            Body::Query(query) => {
                if !self.config.read_only {
                    self.handle_query(now, from, message.transaction, message.read_only, query);
                }
            }
            Body::Response(response) => self.handle_response(
                now,
                from,
                &message.transaction,
                message.read_only,
                message.ip,
                response,
            ),
            Body::Error(_) => self.handle_error(now, from, &message.transaction),
        }
    }

    /// Runs what is due at `now`: timed-out requests, housekeeping.
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<u16> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        for transaction in expired {
            if let Some(pending) = self.pending.remove(&transaction) {
                self.on_request_failed(now, pending, true);
            }
        }
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            self.housekeeping(now);
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Datagram> {
        self.transmits.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pending = self.pending.values().map(|p| p.deadline).min();
        Some(pending.map_or(self.next_tick, |p| p.min(self.next_tick)))
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<DhtEvent> {
        self.events.pop_front()
    }

    /// What the node holds.
    pub fn stats(&self, now: Instant) -> DhtStats {
        DhtStats {
            node_id: self.id,
            ipv4: self.table_v4.stats(now),
            ipv6: self.table_v6.stats(now),
            stored_info_hashes: self.storage.info_hashes(),
            stored_peers: self.storage.peer_count(),
            lookups: self.lookups.len(),
            pending_requests: self.pending.len(),
            rate_limited_ips: self.limiter.as_ref().map_or(0, RateLimiter::tracked),
            rate_limited_datagrams: self.rate_limited,
            queued_transmits: self.transmits.len(),
            queued_events: self.events.len(),
        }
    }

    fn family_enabled(&self, addr: SocketAddr) -> bool {
        if addr.is_ipv4() {
            self.config.ipv4
        } else {
            self.config.ipv6
        }
    }

    fn table_for(&mut self, addr: SocketAddr) -> &mut RoutingTable {
        if addr.is_ipv4() {
            &mut self.table_v4
        } else {
            &mut self.table_v6
        }
    }

    fn node_count(&self, now: Instant) -> usize {
        self.table_v4.stats(now).nodes() + self.table_v6.stats(now).nodes()
    }

    fn closest(&self, now: Instant, target: &NodeId, count: usize) -> Vec<NodeInfo> {
        let mut nodes = Vec::new();
        if self.config.ipv4 {
            nodes.extend(self.table_v4.closest(now, target, count));
        }
        if self.config.ipv6 {
            nodes.extend(self.table_v6.closest(now, target, count));
        }
        nodes
    }

    // Sending.

    fn push_transmit(&mut self, to: SocketAddr, message: &Message) {
        if self.transmits.len() < MAX_TRANSMIT_QUEUE {
            self.transmits.push_back(Datagram {
                to,
                data: message.to_vec().into(),
            });
        }
    }

    fn push_event(&mut self, event: DhtEvent) {
        let droppable = matches!(event, DhtEvent::Peers { .. });
        if !droppable || self.events.len() < MAX_EVENT_QUEUE {
            self.events.push_back(event);
        }
    }

    fn version(&self) -> Option<Bytes> {
        self.config.version.map(|v| Bytes::copy_from_slice(&v))
    }

    fn want(&self) -> Want {
        if self.config.ipv4 && self.config.ipv6 {
            Want { v4: true, v6: true }
        } else {
            Want::default()
        }
    }

    fn allocate_transaction(&mut self) -> Option<u16> {
        if self.pending.len() >= self.config.max_pending.min(usize::from(u16::MAX)) {
            return None;
        }
        loop {
            let candidate = self.next_transaction;
            self.next_transaction = self.next_transaction.wrapping_add(1);
            if !self.pending.contains_key(&candidate) {
                return Some(candidate);
            }
        }
    }

    /// Sends a query; returns whether it went out (the pending table may be full).
    fn send_query(
        &mut self,
        now: Instant,
        to: SocketAddr,
        node: Option<NodeId>,
        kind: QueryKind,
        purpose: Purpose,
    ) -> bool {
        let Some(transaction) = self.allocate_transaction() else {
            return false;
        };
        let want = match kind {
            QueryKind::FindNode { .. } | QueryKind::GetPeers { .. } => self.want(),
            _ => Want::default(),
        };
        let message = Message {
            transaction: TransactionId::from_u16(transaction),
            version: self.version(),
            read_only: self.config.read_only,
            ip: None,
            body: Body::Query(Query {
                id: self.id,
                want,
                kind,
            }),
        };
        self.push_transmit(to, &message);
        self.pending.insert(
            transaction,
            Pending {
                to,
                node,
                deadline: now + self.config.request_timeout,
                purpose,
            },
        );
        true
    }

    fn send_response(&mut self, to: SocketAddr, transaction: TransactionId, response: Response) {
        let message = Message {
            transaction,
            version: self.version(),
            read_only: false,
            ip: Some(to),
            body: Body::Response(response),
        };
        self.push_transmit(to, &message);
    }

    fn send_error(&mut self, to: SocketAddr, transaction: TransactionId, code: i64, text: &str) {
        let message = Message {
            transaction,
            version: self.version(),
            read_only: false,
            ip: None,
            body: Body::Error(ErrorMessage {
                code,
                message: text.into(),
            }),
        };
        self.push_transmit(to, &message);
    }

    // Answering.

    fn handle_query(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transaction: TransactionId,
        read_only: bool,
        query: Query,
    ) {
        let querier = query.id;
        let answer = self.answer(now, from, query);
        // The querier enters the table after the answer is built, so it is not sent itself.
        if !read_only && self.family_enabled(from) {
            self.table_for(from)
                .insert(now, querier, from, Contact::Queried);
        }
        match answer {
            Ok(response) => self.send_response(from, transaction, response),
            Err((code, text)) => self.send_error(from, transaction, code, text),
        }
    }

    /// The answer to a query: a response, or an error's code and text.
    fn answer(
        &mut self,
        now: Instant,
        from: SocketAddr,
        query: Query,
    ) -> Result<Response, (i64, &'static str)> {
        let want = if query.want.v4 || query.want.v6 {
            query.want
        } else {
            Want {
                v4: from.is_ipv4(),
                v6: from.is_ipv6(),
            }
        };
        let mut response = Response {
            id: self.id,
            ..Response::default()
        };
        match query.kind {
            QueryKind::Ping => {}
            QueryKind::FindNode { target } => {
                response.nodes = self.nodes_for(now, &target, want);
            }
            QueryKind::GetPeers { info_hash } => {
                response.nodes = self.nodes_for(now, &info_hash, want);
                response.token = Some(Bytes::copy_from_slice(&self.tokens.token_for(from.ip())));
                let (v6, max) = if from.is_ipv6() {
                    (true, MAX_VALUES_V6)
                } else {
                    (false, MAX_VALUES_V4)
                };
                response.values = self.storage.peers(now, &info_hash, v6, max, &mut self.rng);
            }
            QueryKind::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
            } => {
                if !self.tokens.is_valid(from.ip(), &token) {
                    return Err((krpc::ERROR_PROTOCOL, "bad token"));
                }
                let port = if implied_port { from.port() } else { port };
                if port == 0 {
                    return Err((krpc::ERROR_PROTOCOL, "invalid port"));
                }
                let peer = SocketAddr::new(from.ip(), port);
                if !self.storage.announce(now, info_hash, peer) {
                    return Err((krpc::ERROR_SERVER, "storage full"));
                }
            }
            QueryKind::SampleInfohashes { target } => {
                response.nodes = self.nodes_for(now, &target, want);
                let (samples, total) = self.storage.sample(MAX_SAMPLES, &mut self.rng);
                response.samples = Some(samples);
                response.num = Some(u32::try_from(total).unwrap_or(u32::MAX));
                response.interval =
                    Some(u32::try_from(self.config.sample_interval.as_secs()).unwrap_or(u32::MAX));
            }
            QueryKind::Unknown { .. } => {
                return Err((krpc::ERROR_METHOD_UNKNOWN, "method unknown"));
            }
        }
        Ok(response)
    }

    fn nodes_for(&self, now: Instant, target: &NodeId, want: Want) -> Vec<NodeInfo> {
        let k = self.config.k;
        let mut nodes = Vec::new();
        if want.v4 && self.config.ipv4 {
            nodes.extend(self.table_v4.closest(now, target, k));
        }
        if want.v6 && self.config.ipv6 {
            nodes.extend(self.table_v6.closest(now, target, k));
        }
        nodes
    }

    // Answers to our requests.

    fn take_pending(&mut self, from: SocketAddr, transaction: &TransactionId) -> Option<Pending> {
        let key = transaction.as_u16()?;
        if self.pending.get(&key)?.to != from {
            return None;
        }
        self.pending.remove(&key)
    }

    fn handle_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transaction: &TransactionId,
        read_only: bool,
        seen_as: Option<SocketAddr>,
        response: Response,
    ) {
        let Some(pending) = self.take_pending(from, transaction) else {
            return;
        };
        if !read_only && self.family_enabled(from) {
            self.table_for(from)
                .insert(now, response.id, from, Contact::Responded);
        }
        if let Some(seen) = seen_as {
            self.vote_external_ip(now, from.ip(), seen.ip());
        }
        if let Purpose::Lookup(lookup_id) = pending.purpose {
            let enabled: Vec<NodeInfo> = response
                .nodes
                .iter()
                .filter(|n| self.family_enabled(n.addr) && n.id != self.id)
                .copied()
                .collect();
            let Some(index) = self.lookups.iter().position(|l| l.id == lookup_id) else {
                return;
            };
            let lookup = &mut self.lookups[index];
            let peers = lookup.on_response(
                from,
                response.id,
                &enabled,
                response.token,
                &response.values,
            );
            let (target, kind) = (lookup.target, lookup.kind);
            if !peers.is_empty()
                && matches!(kind, LookupKind::GetPeers | LookupKind::Announce { .. })
            {
                self.push_event(DhtEvent::Peers {
                    lookup: lookup_id,
                    info_hash: target,
                    peers,
                });
            }
            self.drive_lookup(now, index);
        }
    }

    fn handle_error(&mut self, now: Instant, from: SocketAddr, transaction: &TransactionId) {
        if let Some(pending) = self.take_pending(from, transaction) {
            // The node is alive; only the request failed.
            self.on_request_failed(now, pending, false);
        }
    }

    fn on_request_failed(&mut self, now: Instant, pending: Pending, timeout: bool) {
        if timeout {
            if let Some(node) = pending.node {
                self.table_for(pending.to)
                    .on_failure(now, &node, pending.to);
            }
        }
        let Purpose::Lookup(lookup_id) = pending.purpose else {
            return;
        };
        let Some(index) = self.lookups.iter().position(|l| l.id == lookup_id) else {
            return;
        };
        let lookup = &mut self.lookups[index];
        if lookup.on_failure(pending.to, timeout, timeout) {
            let kind = lookup_query(lookup.kind, lookup.target);
            if !self.send_query(now, pending.to, pending.node, kind, pending.purpose) {
                self.lookups[index].on_failure(pending.to, false, false);
            }
        }
        self.drive_lookup(now, index);
    }

    fn vote_external_ip(&mut self, now: Instant, voter: IpAddr, seen: IpAddr) {
        let Some(ip) = self.votes.vote(voter, seen) else {
            return;
        };
        let change =
            self.config.restrict_ips && self.config.node_id.is_none() && !self.id.is_secure_for(ip);
        if change {
            let rand = self.rng.next_u32() as u8;
            self.id = NodeId::secure(ip, rand, NodeId::random(&mut self.rng));
            self.rebuild_tables(now);
        }
        self.push_event(DhtEvent::ExternalAddress {
            ip,
            node_id_changed: change,
        });
    }

    /// New tables around a new id, holding the old tables' nodes (questionable until they
    /// answer again).
    fn rebuild_tables(&mut self, now: Instant) {
        let (k, restrict) = (self.config.k, self.config.restrict_ips);
        for v6 in [false, true] {
            let table = if v6 {
                &mut self.table_v6
            } else {
                &mut self.table_v4
            };
            let nodes = table.nodes(now);
            *table = RoutingTable::new(now, self.id, k, restrict);
            for node in nodes {
                table.insert(now, node.id, node.addr, Contact::Queried);
            }
        }
    }

    // Lookups.

    fn start_lookup(
        &mut self,
        now: Instant,
        target: NodeId,
        kind: LookupKind,
        extra: Vec<(Option<NodeId>, SocketAddr)>,
    ) -> LookupId {
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        let mut seeds: Vec<(Option<NodeId>, SocketAddr)> = self
            .closest(now, &target, lookup::MAX_CANDIDATES)
            .into_iter()
            .map(|n| (Some(n.id), n.addr))
            .collect();
        seeds.extend(extra);
        let mut lookup = Lookup::new(id, target, kind, self.config.k, self.config.alpha, seeds);
        if matches!(kind, LookupKind::GetPeers | LookupKind::Announce { .. }) {
            // Peers announced to us count too.
            let mut local = Vec::new();
            for v6 in [false, true] {
                let max = if v6 { MAX_VALUES_V6 } else { MAX_VALUES_V4 };
                local.extend(self.storage.peers(now, &target, v6, max, &mut self.rng));
            }
            let peers = lookup.note_peers(&local);
            if !peers.is_empty() {
                self.push_event(DhtEvent::Peers {
                    lookup: id,
                    info_hash: target,
                    peers,
                });
            }
        }
        self.lookups.push(lookup);
        let index = self.lookups.len() - 1;
        self.drive_lookup(now, index);
        id
    }

    fn start_bootstrap(&mut self, now: Instant) {
        if self.lookups.iter().any(|l| l.kind == LookupKind::Bootstrap) {
            return;
        }
        let mut extra: Vec<(Option<NodeId>, SocketAddr)> = self
            .restored
            .drain(..)
            .map(|n| (Some(n.id), n.addr))
            .collect();
        extra.extend(self.bootstrap.iter().map(|a| (None, *a)));
        if extra.is_empty() && self.node_count(now) == 0 {
            return;
        }
        self.last_bootstrap = Some(now);
        self.start_lookup(now, self.id, LookupKind::Bootstrap, extra);
    }

    /// Sends what the lookup at `index` may send, and ends it if it is done.
    fn drive_lookup(&mut self, now: Instant, index: usize) {
        loop {
            let Some(lookup) = self.lookups.get_mut(index) else {
                return;
            };
            let Some((addr, node)) = lookup.next_query() else {
                break;
            };
            let (kind, target, id) = (lookup.kind, lookup.target, lookup.id);
            if !self.send_query(
                now,
                addr,
                node,
                lookup_query(kind, target),
                Purpose::Lookup(id),
            ) {
                // No room for another request: count it as failed.
                self.lookups[index].on_failure(addr, false, false);
            }
        }
        if self.lookups.get(index).is_some_and(Lookup::is_done) {
            let lookup = self.lookups.swap_remove(index);
            self.finish_lookup(now, lookup);
        }
    }

    fn finish_lookup(&mut self, now: Instant, mut lookup: Lookup) {
        match lookup.kind {
            LookupKind::Bootstrap => {
                let nodes = self.node_count(now);
                self.push_event(DhtEvent::Bootstrapped { nodes });
            }
            LookupKind::Refresh => {}
            LookupKind::GetPeers | LookupKind::Announce { .. } => {
                if let LookupKind::Announce { port } = lookup.kind {
                    let targets = lookup.announce_targets();
                    for (addr, token) in targets {
                        let kind = QueryKind::AnnouncePeer {
                            info_hash: lookup.target,
                            port: port.unwrap_or(0),
                            implied_port: port.is_none(),
                            token,
                        };
                        if self.send_query(now, addr, None, kind, Purpose::Announce) {
                            lookup.stats.announced_to += 1;
                        }
                    }
                }
                let stats = lookup.finish_stats();
                self.push_event(DhtEvent::LookupDone {
                    lookup: lookup.id,
                    info_hash: lookup.target,
                    kind: lookup.kind,
                    stats,
                });
            }
        }
    }

    // Housekeeping.

    fn housekeeping(&mut self, now: Instant) {
        self.tokens.rotate_if_due(now, &mut self.rng);
        if now >= self.next_expire {
            self.next_expire = now + EXPIRE_EVERY;
            self.storage.expire(now);
        }
        // Quiet buckets.
        let mut targets = Vec::new();
        for v6 in [false, true] {
            let enabled = if v6 {
                self.config.ipv6
            } else {
                self.config.ipv4
            };
            if !enabled {
                continue;
            }
            let table = if v6 {
                &mut self.table_v6
            } else {
                &mut self.table_v4
            };
            targets.extend(table.refresh_targets(now, routing::GOOD_FOR, &mut self.rng));
        }
        for target in targets {
            let running = self
                .lookups
                .iter()
                .filter(|l| l.kind == LookupKind::Refresh)
                .count();
            if running >= MAX_REFRESH_LOOKUPS {
                break;
            }
            self.start_lookup(now, target, LookupKind::Refresh, Vec::new());
        }
        // One questionable node per table.
        for v6 in [false, true] {
            let enabled = if v6 {
                self.config.ipv6
            } else {
                self.config.ipv4
            };
            let table = if v6 {
                &mut self.table_v6
            } else {
                &mut self.table_v4
            };
            if let Some(node) = enabled.then(|| table.next_to_ping(now)).flatten() {
                self.send_query(
                    now,
                    node.addr,
                    Some(node.id),
                    QueryKind::Ping,
                    Purpose::Ping,
                );
            }
        }
        // A nearly empty table: bootstrap again.
        let sparse = self.node_count(now) < self.config.k;
        let due = self
            .last_bootstrap
            .is_none_or(|t| now.saturating_duration_since(t) >= BOOTSTRAP_RETRY);
        if sparse && due && !self.bootstrap.is_empty() {
            self.start_bootstrap(now);
        }
    }
}

/// The query a lookup sends.
fn lookup_query(kind: LookupKind, target: NodeId) -> QueryKind {
    match kind {
        LookupKind::GetPeers | LookupKind::Announce { .. } => {
            QueryKind::GetPeers { info_hash: target }
        }
        LookupKind::Bootstrap | LookupKind::Refresh => QueryKind::FindNode { target },
    }
}
