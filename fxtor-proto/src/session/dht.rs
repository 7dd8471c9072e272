//! The session's DHT: a [`Dht`] on the session's UDP socket, looking up and announcing the
//! session's torrents.
//!
//! It exists when [`SessionConfig::dht`](super::SessionConfig::dht) is set. Bencoded
//! datagrams ([`DatagramKind::Dht`](super::DatagramKind::Dht)) go to it, its datagrams
//! leave through [`Session::poll_datagram`], and its timer is part of
//! [`Session::poll_timeout`].
//!
//! - **Bootstrap**: the nodes of [`DhtSettings::bootstrap`]; host names are resolved by the
//!   driver ([`Action::Resolve`]) first. A saved routing table
//!   ([`DhtSettings::state`], from [`Session::dht_state`]) is restored when it is valid (a
//!   malformed one is ignored: the node starts empty).
//! - **Loopback networks**: when every bootstrap node is a loopback address (or
//!   [`DhtSettings::restrict_ips`] is off), BEP42's restrictions (ids tied to IPs, one node
//!   per IP) and the per-IP rate limit are off, as every node of such a network shares one
//!   IP.
//! - **Torrents**: once the routing table holds nodes, every active torrent that is not
//!   private is announced (with our listen port; looked up only, without one) when it
//!   starts and then every [`ANNOUNCE_INTERVAL`]; a torrent still
//!   downloading looks for peers every [`LOOKUP_INTERVAL_FEW_PEERS`] while it has fewer
//!   than [`FEW_PEERS`] peers and every [`LOOKUP_INTERVAL`] otherwise, and sooner while it
//!   has none at all ([`LOOKUP_RETRY_NO_PEERS`], doubling). A hybrid is looked up
//!   and announced under both its v1 info-hash and its truncated v2 one. Peers found join
//!   the torrent's peer list with source [`PeerSource::Dht`].
//! - **Peer wire (BEP5)**: our handshakes set the DHT bit; a peer that sets it is sent a
//!   `port` message, and a peer's `port` message makes its node a candidate for the
//!   routing table (see `torrent/dht.rs`).

use std::collections::{BTreeMap, BTreeSet};

use core::net::SocketAddr;
use core::time::Duration;

use bytes::Bytes;

use super::trackers::Datagram;
use super::{Action, Alert, ExternalAddressSource, PeerSource, ResolveId, Session, TorrentId};
use crate::dht::{Dht, DhtConfig, DhtEvent, DhtStats, LookupId, NodeId};
use crate::magnet::PeerAddress;
use crate::time::Instant;

/// How often a torrent is announced to the DHT.
pub const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(15 * 60);
/// How often a downloading torrent with few peers looks for more.
pub const LOOKUP_INTERVAL_FEW_PEERS: Duration = Duration::from_secs(60);
/// How often a downloading torrent with enough peers looks for more.
pub const LOOKUP_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// How soon a torrent without a single peer looks again after its first lookup; the wait
/// doubles with each lookup that leaves it without peers, up to
/// [`LOOKUP_INTERVAL_FEW_PEERS`] (5, 10, 20, 40, 60 s…), so a bare magnet added just before
/// its seed's announce lands is not left waiting a minute.
pub const LOOKUP_RETRY_NO_PEERS: Duration = Duration::from_secs(5);
/// Below this many connected peers, a torrent looks for peers more often.
pub const FEW_PEERS: usize = 10;
/// The most bootstrap host names resolved at once.
const MAX_RESOLVING: usize = 32;

/// How a session runs its DHT (BEP5).
///
/// ```
/// use core::net::SocketAddr;
/// use fxtor_proto::magnet::PeerAddress;
/// use fxtor_proto::session::DhtSettings;
///
/// let node: SocketAddr = "127.0.0.1:6881".parse().unwrap();
/// let settings = DhtSettings::new(vec![PeerAddress::Ip(node)]);
/// assert!(settings.restrict_ips);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhtSettings {
    /// Nodes to join the DHT through: addresses, or host names the driver resolves.
    pub bootstrap: Vec<PeerAddress>,
    /// BEP42: admit only nodes whose ids suit their IPs, one node per IP, and limit the
    /// datagrams taken from one IP. Turned off by itself when every bootstrap node is a
    /// loopback address (a test network, where every node shares one IP).
    pub restrict_ips: bool,
    /// BEP43: a read-only node answers no query and stays out of others' tables.
    pub read_only: bool,
    /// A routing table saved by [`Session::dht_state`], to start from.
    pub state: Option<Bytes>,
    /// The port our DHT datagrams come from, told to peers in `port` messages; `None`:
    /// the listen port (the driver binds its UDP socket there when it can).
    pub port: Option<u16>,
    /// Whether IPv6 nodes can be reached (BEP32's second routing table, `nodes6`, `want`).
    /// On by default; the adapters turn it off when the session's UDP socket is bound to
    /// an IPv4 address, from which queries to IPv6 nodes could only time out.
    pub ipv6: bool,
}

impl DhtSettings {
    /// A DHT joined through `bootstrap`, BEP42 on, not read-only, no saved state.
    pub fn new(bootstrap: Vec<PeerAddress>) -> Self {
        Self {
            bootstrap,
            restrict_ips: true,
            read_only: false,
            state: None,
            port: None,
            ipv6: true,
        }
    }

    /// Whether every bootstrap node is a loopback address (and there is at least one).
    pub fn loopback_only(&self) -> bool {
        !self.bootstrap.is_empty()
            && self.bootstrap.iter().all(|node| match node {
                PeerAddress::Ip(addr) => addr.ip().is_loopback(),
                PeerAddress::Host { name, .. } => name.eq_ignore_ascii_case("localhost"),
            })
    }
}

/// When a torrent next looks up and announces.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    next_lookup: Instant,
    next_announce: Instant,
    /// Lookups in a row that started while the torrent had no peer.
    peerless_lookups: u32,
}

impl Schedule {
    /// The wait before the next lookup of a torrent that has `peers` peers now, as one
    /// starts.
    fn lookup_interval(&mut self, peers: usize) -> Duration {
        if peers > 0 {
            self.peerless_lookups = 0;
            return if peers < FEW_PEERS {
                LOOKUP_INTERVAL_FEW_PEERS
            } else {
                LOOKUP_INTERVAL
            };
        }
        let doublings = self.peerless_lookups.min(8);
        self.peerless_lookups += 1;
        (LOOKUP_RETRY_NO_PEERS * (1 << doublings)).min(LOOKUP_INTERVAL_FEW_PEERS)
    }
}

/// The session's DHT node and what it does for the torrents; see the
/// [module documentation](self).
#[derive(Debug)]
pub(super) struct SessionDht {
    dht: Dht,
    /// Bootstrap host names being resolved: the port of each.
    resolving: BTreeMap<ResolveId, u16>,
    /// Lookups running for torrents.
    lookups: BTreeMap<LookupId, TorrentId>,
    schedules: BTreeMap<TorrentId, Schedule>,
    bootstrapped: bool,
    /// The routing tables hold nodes: lookups can start (a lookup from an empty table
    /// would end at once, and an announce with it).
    ready: bool,
}

impl SessionDht {
    /// A DHT node for a session with the given seed. Bootstrap addresses are added at
    /// once; host names come back as names to resolve.
    pub fn new(now: Instant, settings: &DhtSettings, seed: u64) -> (Self, Vec<(String, u16)>) {
        let restrict_ips = settings.restrict_ips && !settings.loopback_only();
        let config = DhtConfig {
            seed,
            read_only: settings.read_only,
            restrict_ips,
            ipv6: settings.ipv6,
            rate_limit: if !restrict_ips {
                None
            } else {
                DhtConfig::default().rate_limit
            },
            ..DhtConfig::default()
        };
        let dht = settings
            .state
            .as_ref()
            .and_then(|state| Dht::restore(now, config.clone(), state).ok())
            .unwrap_or_else(|| Dht::new(now, config));
        let mut this = Self {
            dht,
            resolving: BTreeMap::new(),
            lookups: BTreeMap::new(),
            schedules: BTreeMap::new(),
            bootstrapped: false,
            ready: false,
        };
        let mut hosts = Vec::new();
        for node in &settings.bootstrap {
            match node {
                PeerAddress::Ip(addr) => this.dht.add_bootstrap(now, *addr),
                PeerAddress::Host { name, port } => {
                    if hosts.len() < MAX_RESOLVING {
                        hosts.push((name.clone(), *port));
                    }
                }
            }
        }
        (this, hosts)
    }

    /// Notes whether the routing tables hold nodes.
    fn update_ready(&mut self, now: Instant) {
        let stats = self.dht.stats(now);
        self.ready = stats.ipv4.nodes() + stats.ipv6.nodes() > 0;
    }

    /// A node a peer told us about in a `port` message.
    pub fn add_node(&mut self, now: Instant, addr: SocketAddr) {
        if addr.port() != 0 {
            self.dht.add_node(now, addr);
        }
    }
}

/// What a torrent looks like to the DHT scheduler.
#[derive(Debug, Clone, Copy)]
pub(super) struct DhtView {
    /// Active and not private.
    pub eligible: bool,
    /// Has every piece it wants: announces, does not look for peers.
    pub finished: bool,
    /// Connected peers.
    pub peers: usize,
}

fn node_id(identifier: crate::InfoHashV1) -> NodeId {
    NodeId(*identifier.as_bytes())
}

impl Session {
    /// Starts the session's DHT if its configuration asks for one.
    pub(super) fn start_dht(&mut self, now: Instant) {
        let Some(settings) = self.shared.config.dht.clone() else {
            return;
        };
        let seed = self.shared.config.rng_seed ^ 0x6468_745f_6e6f_6465;
        let (mut dht, hosts) = SessionDht::new(now, &settings, seed);
        for (host, port) in hosts {
            let id = self.shared.trackers.resolve_id();
            dht.resolving.insert(id, port);
            self.shared
                .actions
                .push_back(Action::Resolve { id, host, port });
        }
        self.shared.dht = Some(dht);
    }

    /// A DHT message arrived.
    pub(super) fn handle_dht_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        if let Some(dht) = &mut self.shared.dht {
            dht.dht.handle_datagram(now, from, data);
            if !dht.ready {
                dht.update_ready(now);
            }
            self.drain_dht(now);
        }
    }

    /// A bootstrap host name resolved (or not); `false` if the request was not the DHT's.
    pub(super) fn dht_resolved(
        &mut self,
        now: Instant,
        id: ResolveId,
        result: &Result<Vec<SocketAddr>, String>,
    ) -> bool {
        let Some(dht) = &mut self.shared.dht else {
            return false;
        };
        let Some(port) = dht.resolving.remove(&id) else {
            return false;
        };
        if let Ok(addrs) = result {
            for addr in addrs.iter().take(4) {
                dht.dht.add_bootstrap(now, SocketAddr::new(addr.ip(), port));
            }
        }
        true
    }

    /// Runs the DHT's timers and starts the torrents' lookups and announces that are due.
    pub(super) fn dht_timeout(&mut self, now: Instant) {
        let Some(dht) = &mut self.shared.dht else {
            return;
        };
        // The tables change only on the DHT's own timer or a datagram: counting them (a
        // walk over the buckets) is done then, not on every timeout of the session.
        if dht.dht.poll_timeout().is_some_and(|at| at <= now) {
            dht.dht.handle_timeout(now);
            dht.update_ready(now);
        }
        if !dht.ready {
            self.drain_dht(now);
            return;
        }
        let port = match self.shared.config.listen_port {
            0 => None,
            port => Some(port),
        };
        dht.schedules
            .retain(|id, _| self.torrents.get(id).is_some_and(|t| t.dht_view().eligible));
        let busy: BTreeSet<TorrentId> = dht.lookups.values().copied().collect();
        for (&id, torrent) in &self.torrents {
            let view = torrent.dht_view();
            if !view.eligible || busy.contains(&id) {
                continue;
            }
            let schedule = dht.schedules.entry(id).or_insert(Schedule {
                next_lookup: now,
                next_announce: now,
                peerless_lookups: 0,
            });
            let announce = now >= schedule.next_announce;
            let lookup = !view.finished && now >= schedule.next_lookup;
            if !announce && !lookup {
                continue;
            }
            for identifier in torrent.info_hashes().identifiers() {
                let target = node_id(identifier);
                let lookup_id = match (announce, port) {
                    (true, Some(_)) => dht.dht.announce(now, target, port),
                    _ => dht.dht.get_peers(now, target),
                };
                dht.lookups.insert(lookup_id, id);
            }
            if announce {
                schedule.next_announce = now + ANNOUNCE_INTERVAL;
            }
            schedule.next_lookup = now + schedule.lookup_interval(view.peers);
        }
        self.drain_dht(now);
    }

    /// When the DHT needs [`dht_timeout`](Self::dht_timeout): its own timer, a torrent's
    /// next lookup, or at once for an eligible torrent not scheduled yet.
    pub(super) fn dht_poll_timeout(&self) -> Option<Instant> {
        let dht = self.shared.dht.as_ref()?;
        let own = dht.dht.poll_timeout();
        if !dht.ready {
            return own;
        }
        let busy: BTreeSet<TorrentId> = dht.lookups.values().copied().collect();
        let torrents = self
            .torrents
            .iter()
            .filter(|(id, t)| !busy.contains(id) && t.dht_view().eligible)
            .map(|(id, t)| match dht.schedules.get(id) {
                None => Instant::ZERO,
                Some(s) if t.dht_view().finished => s.next_announce,
                Some(s) => s.next_announce.min(s.next_lookup),
            })
            .min();
        [own, torrents].into_iter().flatten().min()
    }

    /// Hands the DHT's events to the torrents and the application.
    fn drain_dht(&mut self, now: Instant) {
        loop {
            let Some(dht) = &mut self.shared.dht else {
                return;
            };
            let Some(event) = dht.dht.poll_event() else {
                return;
            };
            match event {
                DhtEvent::Peers { lookup, peers, .. } => {
                    let Some(&id) = dht.lookups.get(&lookup) else {
                        continue;
                    };
                    self.shared.alert(Alert::DhtPeers {
                        torrent: id,
                        peers: peers.len(),
                    });
                    if let Some(t) = self.torrents.get_mut(&id) {
                        t.add_peers(now, peers, PeerSource::Dht, &mut self.shared);
                    }
                }
                DhtEvent::LookupDone { lookup, .. } => {
                    dht.lookups.remove(&lookup);
                }
                DhtEvent::Bootstrapped { nodes } => {
                    if !dht.bootstrapped && nodes > 0 {
                        dht.bootstrapped = true;
                        self.shared.alert(Alert::DhtBootstrapped { nodes });
                    }
                }
                DhtEvent::ExternalAddress { ip, .. } => {
                    self.shared.note_external_ip(ip, ExternalAddressSource::Dht);
                }
            }
        }
    }

    /// The next DHT datagram to send.
    pub(super) fn poll_dht_datagram(&mut self) -> Option<Datagram> {
        let datagram = self.shared.dht.as_mut()?.dht.poll_transmit()?;
        Some(Datagram {
            to: datagram.to,
            data: datagram.data,
        })
    }

    /// The DHT's routing table and node id, bencoded, to give back in
    /// [`DhtSettings::state`] next time; `None` without a DHT.
    pub fn dht_state(&self, now: Instant) -> Option<Bytes> {
        Some(self.shared.dht.as_ref()?.dht.save_state(now))
    }

    /// What the DHT holds (routing tables, stored peers, lookups); `None` without a DHT.
    pub fn dht_stats(&self, now: Instant) -> Option<DhtStats> {
        Some(self.shared.dht.as_ref()?.dht.stats(now))
    }
}

/// Our DHT port for peers' `port` messages, if the DHT is on: [`DhtSettings::port`], or
/// the listen port if we listen.
pub(super) fn dht_port(shared: &super::shared::Shared) -> Option<u16> {
    shared.dht.as_ref()?;
    let settings = shared.config.dht.as_ref()?;
    settings
        .port
        .or(Some(shared.config.listen_port))
        .filter(|&port| port != 0)
}
