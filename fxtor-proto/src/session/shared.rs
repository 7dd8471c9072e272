//! What every torrent of a session shares: the configuration, the random numbers, the id
//! counters, the table of connections and the output queues.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use core::net::{IpAddr, SocketAddr};

use super::dht::SessionDht;
use super::trackers::TrackerTransport;
use super::{
    Action, Alert, ConnectionId, DiskJob, DiskJobId, DiskJobKind, ExternalAddressSource,
    SessionConfig, TorrentId, Transmit,
};
use crate::rng::Rng;
use crate::time::Instant;

/// Who a connection belongs to.
#[derive(Debug)]
pub(super) enum Route {
    /// Accepted, waiting for the info-hash of its handshake.
    Incoming {
        /// The peer's address.
        addr: SocketAddr,
        /// When it is closed if no torrent has claimed it.
        deadline: Instant,
    },
    /// A torrent's connection (connecting or connected).
    Torrent(TorrentId),
}

/// The session's state outside its torrents; torrents get it as `&mut Shared`.
#[derive(Debug)]
pub(super) struct Shared {
    pub config: SessionConfig,
    pub rng: Rng,
    next_connection: u64,
    next_job: u64,
    /// Every connection of the session: pending, connecting and established.
    pub routes: BTreeMap<ConnectionId, Route>,
    pub transmits: VecDeque<Transmit>,
    pub actions: VecDeque<Action>,
    pub alerts: VecDeque<Alert>,
    /// Addresses that turned out to be this session.
    pub self_addrs: BTreeSet<SocketAddr>,
    /// Torrents that learnt info-hashes from their metadata, for the session to route
    /// them.
    pub learned: Vec<TorrentId>,
    /// The trackers' requests in flight, the UDP trackers and removed torrents' announcers.
    pub trackers: TrackerTransport,
    /// The DHT node, when the configuration asks for one.
    pub dht: Option<SessionDht>,
    /// Our external addresses, IPv4 and IPv6, as last told by a tracker or the DHT (a
    /// tracker does not override the DHT's vote).
    pub external_ip: [Option<(IpAddr, ExternalAddressSource)>; 2],
}

impl Shared {
    pub fn new(config: SessionConfig) -> Self {
        // Its own seed, so that trackers change no other random choice of a run.
        let trackers =
            TrackerTransport::new(config.udp_tracker, config.rng_seed ^ 0x7472_6163_6b65_7273);
        Self {
            rng: Rng::new(config.rng_seed),
            config,
            next_connection: 0,
            next_job: 0,
            routes: BTreeMap::new(),
            transmits: VecDeque::new(),
            actions: VecDeque::new(),
            alerts: VecDeque::new(),
            self_addrs: BTreeSet::new(),
            learned: Vec::new(),
            trackers,
            dht: None,
            external_ip: [None, None],
        }
    }

    /// A fresh connection id.
    pub fn connection_id(&mut self) -> ConnectionId {
        self.next_connection += 1;
        ConnectionId(self.next_connection)
    }

    /// Whether the session may have one more connection.
    pub fn has_room(&self) -> bool {
        self.routes.len() < self.config.max_connections
    }

    /// Queues a disk job and returns its id.
    pub fn disk_job(&mut self, torrent: TorrentId, kind: DiskJobKind) -> DiskJobId {
        self.next_job += 1;
        let id = DiskJobId(self.next_job);
        self.actions
            .push_back(Action::Disk(DiskJob { id, torrent, kind }));
        id
    }

    pub fn alert(&mut self, alert: Alert) {
        self.alerts.push_back(alert);
    }

    /// Someone told us our external address: kept per address family and alerted when it
    /// is news. An unspecified address is ignored, and a tracker's word does not replace
    /// the address the DHT's nodes voted for.
    pub fn note_external_ip(&mut self, ip: IpAddr, source: ExternalAddressSource) {
        if ip.is_unspecified() {
            return;
        }
        let slot = &mut self.external_ip[usize::from(ip.is_ipv6())];
        let known = *slot;
        if known.is_some_and(|(old, by)| {
            old == ip
                || (by == ExternalAddressSource::Dht && source == ExternalAddressSource::Tracker)
        }) {
            return;
        }
        *slot = Some((ip, source));
        self.alert(Alert::ExternalAddress { ip, source });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer_id::PeerId;

    #[test]
    fn external_addresses_are_kept_per_family_and_the_dht_outranks_a_tracker() {
        let mut shared = Shared::new(SessionConfig::new(PeerId([1; 20])));
        let (tracker, dht) = (ExternalAddressSource::Tracker, ExternalAddressSource::Dht);
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        let other: IpAddr = "198.51.100.9".parse().unwrap();
        shared.note_external_ip(v4, tracker);
        shared.note_external_ip(v4, tracker); // not news
        shared.note_external_ip(v6, tracker); // the other family: kept beside it
        shared.note_external_ip(v4, tracker);
        shared.note_external_ip(other, dht); // the DHT's vote replaces a tracker's word
        shared.note_external_ip(v4, tracker); // but not the other way round
        shared.note_external_ip("0.0.0.0".parse().unwrap(), tracker);
        let told: Vec<(IpAddr, ExternalAddressSource)> = shared
            .alerts
            .iter()
            .map(|a| match a {
                Alert::ExternalAddress { ip, source } => (*ip, *source),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(told, [(v4, tracker), (v6, tracker), (other, dht)]);
    }
}
