//! A torrent's side of the DHT (BEP5): what the session's scheduler needs to know about
//! it, the DHT bit of our handshakes, and `port` messages both ways. The session's DHT
//! itself is in `session/dht.rs`.

use core::net::SocketAddr;

use super::Torrent;
use crate::peer::PeerParams;
use crate::picker::PeerKey;
use crate::session::dht::{dht_port, DhtView};
use crate::session::shared::Shared;
use crate::session::TorrentState;
use crate::time::Instant;
use crate::wire::ReservedBits;

impl Torrent {
    /// Whether the torrent is private (BEP27): it keeps out of the DHT altogether. A
    /// magnet link's torrent counts as public until its metadata says otherwise.
    fn is_private(&self) -> bool {
        self.meta.as_ref().is_some_and(|m| m.info.is_private())
    }

    /// Whether the DHT should look the torrent up (active, not private), and how.
    pub(in crate::session) fn dht_view(&self) -> DhtView {
        DhtView {
            eligible: self.is_active() && !self.is_private(),
            finished: matches!(self.state, TorrentState::Finished | TorrentState::Seeding),
            peers: self.peers.len(),
        }
    }

    /// Sets the DHT bit of our handshake when the session has a DHT and the torrent is
    /// not private.
    pub(super) fn dht_handshake_bits(&self, params: &mut PeerParams, shared: &Shared) {
        if shared.dht.is_some() && !self.is_private() {
            params.config.reserved = params.config.reserved.union(ReservedBits::DHT);
        }
    }

    /// A peer finished its handshake: if it set the DHT bit, tell it our DHT port (not
    /// on a private torrent).
    pub(super) fn dht_send_port(&mut self, now: Instant, key: PeerKey, shared: &Shared) {
        if self.is_private() {
            return;
        }
        let (Some(port), Some(peer)) = (dht_port(shared), self.peers.get_mut(&key)) else {
            return;
        };
        if peer
            .connection
            .remote_reserved()
            .is_some_and(|r| r.contains(ReservedBits::DHT))
        {
            peer.connection.send_port(now, port);
        }
    }

    /// A peer's `port` message: its DHT node may join our routing table (not from a
    /// private torrent's swarm).
    pub(super) fn on_dht_port(
        &mut self,
        now: Instant,
        key: PeerKey,
        port: u16,
        shared: &mut Shared,
    ) {
        if self.is_private() {
            return;
        }
        let (Some(dht), Some(peer)) = (&mut shared.dht, self.peers.get(&key)) else {
            return;
        };
        dht.add_node(now, SocketAddr::new(peer.addr.ip(), port));
    }
}
