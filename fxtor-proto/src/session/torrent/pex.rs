//! Peer exchange (BEP11, `ut_pex`): telling connected peers whom else we are connected to,
//! and learning candidates from what they tell us.
//!
//! [`PeerPex`] is one peer's side of it. Sending: what we told that peer so far, so that
//! each message holds only the changes (at most [`PexMessage::ADVISED_MAX_PEERS`] added
//! and as many dropped), the first as soon as we have a peer to name, then at most one a
//! minute. Receiving: a peer may send [`MAX_MESSAGES_PER_WINDOW`] messages a minute and
//! teach us [`MAX_LEARNED_PER_MESSAGE`] new addresses a message, [`MAX_LEARNED_PER_WINDOW`]
//! a minute; a peer that sends more is flooding and is not listened to again.
//!
//! Peer exchange is off for private torrents (BEP27): `ut_pex` is not offered (or is
//! withdrawn with id 0 once a magnet link's metadata says private) and messages are
//! ignored.

use std::collections::{BTreeMap, BTreeSet};

use core::net::SocketAddr;
use core::time::Duration;

use super::peer_list::{Added, PeerSource};
use super::{Shared, Torrent};
use crate::peer::Direction;
use crate::picker::PeerKey;
use crate::time::Instant;
use crate::wire::extension::{PexFlags, PexMessage, PexPeer, UT_HOLEPUNCH, UT_PEX};

/// The id we assign to `ut_pex` in our extension handshake's `m`.
pub(super) const UT_PEX_ID: u8 = 1;

/// How often a peer is sent a message at most (BEP11: once a minute).
pub(super) const SEND_INTERVAL: Duration = Duration::from_secs(60);

/// How soon a peer is looked at again while we have had no one to name to it yet.
const FIRST_MESSAGE_RETRY: Duration = Duration::from_secs(5);

/// The span over which received messages are counted.
const WINDOW: Duration = Duration::from_secs(60);

/// Messages a peer may send per [`WINDOW`] (one a minute, and some slack for bursts).
pub(super) const MAX_MESSAGES_PER_WINDOW: u32 = 3;

/// New addresses taken from one message.
pub(super) const MAX_LEARNED_PER_MESSAGE: usize = 100;

/// New addresses taken from one peer per [`WINDOW`].
pub(super) const MAX_LEARNED_PER_WINDOW: usize = 200;

/// One peer's peer exchange; see the [module documentation](self).
#[derive(Debug, Default)]
pub(super) struct PeerPex {
    /// When to look at sending this peer a message next; `None` while it does not
    /// support `ut_pex`.
    next_send: Option<Instant>,
    /// Whether its first message went out.
    sent_first: bool,
    /// The addresses we told it we are connected to and did not drop since.
    advertised: BTreeSet<SocketAddr>,
    /// Start of the current receiving window, messages and addresses taken in it.
    window_start: Option<Instant>,
    messages_in_window: u32,
    learned_in_window: usize,
    /// It sent too many messages: what it sends is ignored.
    flooding: bool,
}

/// What to do with a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Received {
    /// Take these peers (already cut to the limits).
    Learn(Vec<PexPeer>),
    /// Ignored: the peer sends too often.
    Flooding,
}

impl PeerPex {
    /// The peer supports `ut_pex` (or no longer does): messages to it start at `now`.
    pub fn set_supported(&mut self, now: Instant, supported: bool) {
        self.next_send = match (supported, self.next_send) {
            (false, _) => None,
            (true, Some(at)) => Some(at),
            (true, None) => Some(now),
        };
    }

    /// When to call [`next_message`](Self::next_message) next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_send
    }

    /// The message due for this peer at `now`, given the peers we are connected to now
    /// (`current`, without this one), and records it as sent. `None` if none is due or
    /// there is nothing new to say.
    pub fn next_message(
        &mut self,
        now: Instant,
        current: &BTreeMap<SocketAddr, PexFlags>,
    ) -> Option<PexMessage> {
        if self.next_send? > now {
            return None;
        }
        let added: Vec<PexPeer> = current
            .iter()
            .filter(|(addr, _)| !self.advertised.contains(addr))
            .take(PexMessage::ADVISED_MAX_PEERS)
            .map(|(&addr, &flags)| PexPeer { addr, flags })
            .collect();
        let dropped: Vec<SocketAddr> = self
            .advertised
            .iter()
            .filter(|addr| !current.contains_key(addr))
            .take(PexMessage::ADVISED_MAX_PEERS)
            .copied()
            .collect();
        if added.is_empty() && dropped.is_empty() {
            let wait = if self.sent_first {
                SEND_INTERVAL
            } else {
                FIRST_MESSAGE_RETRY
            };
            self.next_send = Some(now + wait);
            return None;
        }
        for peer in &added {
            self.advertised.insert(peer.addr);
        }
        for addr in &dropped {
            self.advertised.remove(addr);
        }
        self.sent_first = true;
        self.next_send = Some(now + SEND_INTERVAL);
        Some(PexMessage { added, dropped })
    }

    /// A message arrived at `now`: what to learn from it, within the limits.
    pub fn receive(&mut self, now: Instant, message: PexMessage) -> Received {
        if self.flooding {
            return Received::Flooding;
        }
        let window_over = self.window_start.is_none_or(|start| now >= start + WINDOW);
        if window_over {
            self.window_start = Some(now);
            self.messages_in_window = 0;
            self.learned_in_window = 0;
        }
        self.messages_in_window += 1;
        if self.messages_in_window > MAX_MESSAGES_PER_WINDOW {
            self.flooding = true;
            return Received::Flooding;
        }
        let room = MAX_LEARNED_PER_WINDOW.saturating_sub(self.learned_in_window);
        let mut added = message.added;
        added.truncate(MAX_LEARNED_PER_MESSAGE.min(room));
        self.learned_in_window += added.len();
        Received::Learn(added)
    }
}

impl Torrent {
    /// Whether peer exchange runs for this torrent: if the session allows it, and not for
    /// a private torrent.
    pub(super) fn pex_allowed(&self) -> bool {
        self.peer_exchange && !self.meta.as_ref().is_some_and(|m| m.info.is_private())
    }

    /// The metadata arrived: if it says private, the addresses peer exchange taught us
    /// while it was unknown are forgotten (BEP27: peers come from the trackers only).
    pub(super) fn pex_on_metadata(&mut self) {
        if !self.pex_allowed() {
            self.peer_list.forget_learnt_only_from(PeerSource::Pex);
        }
    }

    /// A peer's extension handshake arrived: it does `ut_pex` or not.
    pub(super) fn pex_on_extended_handshake(&mut self, now: Instant, key: PeerKey) {
        let allowed = self.pex_allowed();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let supported = allowed
            && peer
                .connection
                .remote_extensions()
                .is_some_and(|hs| hs.extension_id(UT_PEX).is_some());
        peer.pex.set_supported(now, supported);
        self.pex_send(now, key);
    }

    /// The peers to name in peer exchange with `to`: established, and with an address
    /// that takes connections (the one we dialled, or the listen port a peer that
    /// dialled us gave).
    fn pex_current(&self, to: PeerKey) -> BTreeMap<SocketAddr, PexFlags> {
        let num_pieces = self.meta.as_ref().map_or(0, |m| m.picker.num_pieces());
        self.peers
            .iter()
            .filter(|(key, p)| **key != to && p.established && !p.connection.is_closed())
            .filter_map(|(_, p)| {
                let addr = p.listen_addr?;
                let hs = p.connection.remote_extensions();
                let mut flags = PexFlags::NONE;
                if p.have.is_seed(num_pieces) || hs.is_some_and(|h| h.upload_only) {
                    flags = flags | PexFlags::SEED;
                }
                if p.connection.direction() == Direction::Outgoing {
                    flags = flags | PexFlags::OUTGOING;
                }
                if hs.is_some_and(|h| h.prefers_encryption) {
                    flags = flags | PexFlags::PREFERS_ENCRYPTION;
                }
                if hs.is_some_and(|h| h.extension_id(UT_HOLEPUNCH).is_some()) {
                    flags = flags | PexFlags::HOLEPUNCH;
                }
                Some((addr, flags))
            })
            .collect()
    }

    /// Sends `key` its peer exchange message if one is due.
    fn pex_send(&mut self, now: Instant, key: PeerKey) {
        if !self.pex_allowed() {
            return;
        }
        let due = self
            .peers
            .get(&key)
            .and_then(|p| p.pex.poll_timeout())
            .is_some_and(|at| at <= now);
        if !due {
            return;
        }
        let current = self.pex_current(key);
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if let Some(message) = peer.pex.next_message(now, &current) {
            // Fails only if the peer withdrew `ut_pex`; the next handshake says so.
            let _ = peer
                .connection
                .send_extended(now, UT_PEX, message.to_bytes());
            self.touch(key);
        }
    }

    /// When a peer exchange message is due next.
    pub(super) fn pex_poll_timeout(&self) -> Option<Instant> {
        if !self.pex_allowed() {
            return None;
        }
        self.peers
            .values()
            .filter(|p| p.established)
            .filter_map(|p| p.pex.poll_timeout())
            .min()
    }

    /// Sends the peer exchange messages due by `now`.
    pub(super) fn pex_handle_timeout(&mut self, now: Instant) {
        let due: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.established && p.pex.poll_timeout().is_some_and(|t| t <= now))
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.pex_send(now, key);
        }
    }

    /// A `ut_pex` message from `key`: its new addresses join the peer list.
    pub(super) fn on_pex_message(
        &mut self,
        now: Instant,
        key: PeerKey,
        payload: &[u8],
        shared: &mut Shared,
    ) {
        if !self.pex_allowed() {
            return;
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let from_loopback = peer.addr.ip().is_loopback();
        let Ok(message) = PexMessage::parse(payload) else {
            self.close_peer(now, key, "sent an invalid ut_pex message");
            return;
        };
        let Received::Learn(peers) = peer.pex.receive(now, message) else {
            return;
        };
        let mut learned = 0;
        for p in peers {
            let ip = p.addr.ip();
            // Loopback addresses mean something only to a peer on this host.
            if ip.is_multicast() || (ip.is_loopback() && !from_loopback) {
                continue;
            }
            if Self::is_self(p.addr, shared) {
                continue;
            }
            if self.peer_list.add(p.addr, PeerSource::Pex, p.flags) == Added::New {
                learned += 1;
            }
        }
        if learned > 0 {
            self.connect_due = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, i], 6881))
    }

    fn current(range: core::ops::Range<u8>) -> BTreeMap<SocketAddr, PexFlags> {
        range.map(|i| (addr(i), PexFlags::OUTGOING)).collect()
    }

    #[test]
    fn first_message_lists_current_peers_then_only_changes() {
        let mut pex = PeerPex::default();
        let t0 = Instant::from_secs(10);
        assert_eq!(pex.next_message(t0, &current(1..3)), None, "not supported");
        pex.set_supported(t0, true);
        let first = pex.next_message(t0, &current(1..3)).unwrap();
        assert_eq!(
            first.added,
            [
                PexPeer {
                    addr: addr(1),
                    flags: PexFlags::OUTGOING
                },
                PexPeer {
                    addr: addr(2),
                    flags: PexFlags::OUTGOING
                }
            ]
        );
        assert!(first.dropped.is_empty());
        // Not again within the minute, whatever changed.
        let later = t0 + Duration::from_secs(59);
        assert_eq!(pex.next_message(later, &current(2..4)), None);
        assert_eq!(pex.poll_timeout(), Some(t0 + SEND_INTERVAL));
        let t1 = t0 + SEND_INTERVAL;
        let diff = pex.next_message(t1, &current(2..4)).unwrap();
        assert_eq!(
            diff.added.iter().map(|p| p.addr).collect::<Vec<_>>(),
            [addr(3)]
        );
        assert_eq!(diff.dropped, [addr(1)]);
        // Nothing changed: nothing sent, next look a minute later.
        let t2 = t1 + SEND_INTERVAL;
        assert_eq!(pex.next_message(t2, &current(2..4)), None);
        assert_eq!(pex.poll_timeout(), Some(t2 + SEND_INTERVAL));
    }

    #[test]
    fn an_empty_first_message_is_not_sent_and_retried_soon() {
        let mut pex = PeerPex::default();
        pex.set_supported(Instant::ZERO, true);
        assert_eq!(pex.next_message(Instant::ZERO, &BTreeMap::new()), None);
        assert_eq!(
            pex.poll_timeout(),
            Some(Instant::ZERO + FIRST_MESSAGE_RETRY)
        );
    }

    #[test]
    fn at_most_fifty_added_and_fifty_dropped_per_message() {
        let mut pex = PeerPex::default();
        let mut now = Instant::ZERO;
        pex.set_supported(now, true);
        let first = pex.next_message(now, &current(0..120)).unwrap();
        assert_eq!(first.added.len(), 50);
        now += SEND_INTERVAL;
        assert_eq!(
            pex.next_message(now, &current(0..120)).unwrap().added.len(),
            50
        );
        now += SEND_INTERVAL;
        let third = pex.next_message(now, &current(100..200)).unwrap();
        // 20 of 100..120 were told; 80 new ones remain, and 100 were dropped.
        assert_eq!(third.added.len(), 50);
        assert_eq!(third.dropped.len(), 50);
        let bytes = third.to_bytes();
        let parsed = PexMessage::parse(&bytes).unwrap();
        assert_eq!(parsed, third);
    }

    #[test]
    fn receiving_is_limited_and_floods_are_ignored() {
        let mut pex = PeerPex::default();
        let big = PexMessage {
            added: (0..150)
                .map(|i| PexPeer {
                    addr: SocketAddr::from(([10, 1, 0, i as u8], 1000 + i)),
                    flags: PexFlags::NONE,
                })
                .collect(),
            dropped: vec![],
        };
        let t = Instant::from_secs(100);
        let Received::Learn(first) = pex.receive(t, big.clone()) else {
            panic!("the first message is taken")
        };
        assert_eq!(first.len(), MAX_LEARNED_PER_MESSAGE);
        let Received::Learn(second) = pex.receive(t + Duration::from_secs(1), big.clone()) else {
            panic!("a second message in the minute is still taken")
        };
        assert_eq!(
            second.len(),
            MAX_LEARNED_PER_WINDOW - MAX_LEARNED_PER_MESSAGE
        );
        let Received::Learn(third) = pex.receive(t + Duration::from_secs(2), big.clone()) else {
            panic!("a third is taken too")
        };
        assert!(third.is_empty(), "but the minute's quota is used up");
        assert_eq!(
            pex.receive(t + Duration::from_secs(3), big.clone()),
            Received::Flooding
        );
        // A flooder stays ignored.
        assert_eq!(pex.receive(t + WINDOW * 5, big), Received::Flooding);
    }

    #[test]
    fn a_new_window_restores_the_quota() {
        let mut pex = PeerPex::default();
        let msg = PexMessage {
            added: vec![PexPeer {
                addr: addr(1),
                flags: PexFlags::SEED,
            }],
            dropped: vec![],
        };
        for minute in 0..10u64 {
            let at = Instant::from_secs(minute * 60);
            assert_eq!(
                pex.receive(at, msg.clone()),
                Received::Learn(msg.added.clone())
            );
        }
    }
}
