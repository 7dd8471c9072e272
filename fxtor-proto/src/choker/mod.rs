//! Choosing whom to upload to: BEP3's tit-for-tat with an optimistic unchoke while
//! leeching, and the fastest downloaders in turns while seeding.
//!
//! [`Choker`] only decides. At every rechoke its owner (the torrent) describes each
//! connected peer as a [`ChokeCandidate`] and gets back a [`ChokeDecision`]: whom to
//! unchoke and whom to choke, changes only. The owner applies it, e.g. with
//! [`PeerConnection::set_choking`](crate::peer::PeerConnection::set_choking), and calls
//! again at [`Choker::next_rechoke`].
//!
//! # Slots
//!
//! [`ChokerConfig::upload_slots`] regular slots (4) and [`ChokerConfig::optimistic_slots`]
//! optimistic ones (1); never more peers than both together are unchoked, and only
//! interested ones.
//!
//! # Leeching: tit-for-tat
//!
//! The regular slots go to the interested peers that send us the most
//! ([`ChokeCandidate::download_rate`]). Snubbed peers are not reciprocated. On equal rates a
//! peer we already unchoke keeps its slot, so that rates of zero do not make the choice churn.
//!
//! # Seeding: fast downloaders, in turns
//!
//! Nobody can give anything back, so the slots go round. A peer keeps its slot for a
//! turn, until [`ChokerConfig::seeding_turn`] has passed or it received
//! [`ChokerConfig::seeding_quota`] bytes in it; among peers in their turn the fastest
//! ([`ChokeCandidate::upload_rate`]) come first. Free slots go to the peers that have
//! waited longest. Peers whose turn is over keep their slots, fastest first, only while
//! nobody waits. A turn that began in an optimistic slot ends with that slot.
//!
//! # The optimistic unchoke
//!
//! Each optimistic slot goes to an interested, [eligible](ChokeCandidate::optimistic_eligible)
//! peer not in a regular slot, choked ones first, picked at random with peers connected in
//! the last [`ChokerConfig::new_peer_window`] [`ChokerConfig::new_peer_weight`] times as
//! likely. It holds the slot for `optimistic_interval` of [`ChokerConfig`] (30 s), or until it
//! loses interest or leaves. While leeching, a peer that turns out to send well stays on
//! in a regular slot.
//!
//! # Determinism
//!
//! The randomness comes from a seed given to [`Choker::new`]. The same seed and the same
//! sequence of calls give the same decisions; the order of the candidates in a call does
//! not matter.

mod candidate;
mod config;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

pub use candidate::{ChokeCandidate, ChokeDecision, PeerKey};
pub use config::{ChokerConfig, MIN_INTERVAL};

use crate::rng::Rng;
use crate::time::Instant;

/// The unchoke decision maker of one torrent.
///
/// ```
/// use fxtor_proto::choker::{ChokeCandidate, Choker, ChokerConfig, PeerKey};
/// use fxtor_proto::time::Instant;
///
/// let config = ChokerConfig { upload_slots: 2, optimistic_slots: 0, ..Default::default() };
/// let mut choker = Choker::new(config, 42);
/// let now = Instant::from_secs(100);
///
/// let peers: Vec<ChokeCandidate> = [(1, 10_000), (2, 50_000), (3, 30_000)]
///     .into_iter()
///     .map(|(key, rate)| ChokeCandidate {
///         interested: true,
///         download_rate: rate,
///         ..ChokeCandidate::new(PeerKey(key), Instant::ZERO)
///     })
///     .collect();
/// let decision = choker.rechoke(now, &peers);
/// // The two peers that send us the most are reciprocated.
/// assert_eq!(decision.unchoke, [PeerKey(2), PeerKey(3)]);
/// assert!(decision.choke.is_empty());
/// assert_eq!(choker.next_rechoke(), Instant::from_secs(110));
/// ```
#[derive(Clone, Debug)]
pub struct Choker {
    config: ChokerConfig,
    rng: Rng,
    /// What the choker remembers of each peer of the last rechoke.
    peers: BTreeMap<PeerKey, PeerState>,
    /// The optimistic slots in use; never more than `config.optimistic_slots`.
    optimistic: Vec<OptimisticSlot>,
    last_rechoke: Option<Instant>,
    /// Something changed that calls for a rechoke before the regular time.
    rechoke_due: bool,
}

/// A peer holding an optimistic slot.
#[derive(Clone, Copy, Debug)]
struct OptimisticSlot {
    key: PeerKey,
    until: Instant,
}

/// What the choker keeps of one peer between rechokes.
#[derive(Clone, Debug, Default)]
struct PeerState {
    /// When its current unchoke began; `None` while choked.
    unchoked_since: Option<Instant>,
    /// [`ChokeCandidate::uploaded`] when the current unchoke began.
    uploaded_at_unchoke: u64,
    /// Whether the current unchoke came with an optimistic slot.
    via_optimistic: bool,
    /// Since when the peer has been interested and choked: its place in the seeding queue.
    waiting_since: Option<Instant>,
}

impl PeerState {
    /// Brings the state in line with what the owner reports, which wins over what the last
    /// decision asked for.
    fn observe(&mut self, now: Instant, peer: &ChokeCandidate) {
        match (peer.is_choked, self.unchoked_since) {
            (false, None) => self.start_unchoke(now, peer, false),
            (true, Some(_)) => self.unchoked_since = None,
            _ => {}
        }
        self.waiting_since = if peer.interested && peer.is_choked {
            Some(self.waiting_since.unwrap_or(now))
        } else {
            None
        };
    }

    fn start_unchoke(&mut self, now: Instant, peer: &ChokeCandidate, via_optimistic: bool) {
        self.unchoked_since = Some(now);
        self.uploaded_at_unchoke = peer.uploaded;
        self.via_optimistic = via_optimistic;
        self.waiting_since = None;
    }

    fn choke(&mut self, now: Instant, peer: &ChokeCandidate) {
        self.unchoked_since = None;
        self.via_optimistic = false;
        self.waiting_since = peer.interested.then_some(now);
    }

    /// Where a seeding peer stands in the rotation.
    fn turn(&self, now: Instant, peer: &ChokeCandidate, config: &ChokerConfig) -> Turn {
        let Some(since) = self.unchoked_since else {
            return Turn::Waiting(self.waiting_since.unwrap_or(now));
        };
        let sent = peer.uploaded.saturating_sub(self.uploaded_at_unchoke);
        if self.via_optimistic || now - since >= config.seeding_turn || sent >= config.seeding_quota
        {
            Turn::Over
        } else {
            Turn::Running
        }
    }
}

/// A seeding peer's place in the rotation, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Turn {
    /// Unchoked, and its turn goes on.
    Running,
    /// Choked and interested since then: the earliest goes first.
    Waiting(Instant),
    /// Unchoked, and its turn is over.
    Over,
}

/// One candidate of a rechoke with its random tie-breaker.
struct Entry<'a> {
    peer: &'a ChokeCandidate,
    tiebreak: u64,
}

impl Choker {
    /// A choker with `config`, drawing its random choices from `seed`. The first rechoke is
    /// due at once.
    pub fn new(config: ChokerConfig, seed: u64) -> Self {
        Self {
            config,
            rng: Rng::new(seed),
            peers: BTreeMap::new(),
            optimistic: Vec::new(),
            last_rechoke: None,
            rechoke_due: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ChokerConfig {
        &self.config
    }

    /// Replaces the configuration; the next rechoke is due at once. Optimistic slots over
    /// the new count are given up.
    pub fn set_config(&mut self, config: ChokerConfig) {
        self.optimistic.truncate(config.optimistic_slots);
        self.config = config;
        self.rechoke_due = true;
    }

    /// Whether the choker works for a seed.
    pub fn is_seeding(&self) -> bool {
        self.config.seeding
    }

    /// Switches between leeching and seeding; on a change the next rechoke is due at once.
    pub fn set_seeding(&mut self, seeding: bool) {
        if self.config.seeding != seeding {
            self.config.seeding = seeding;
            self.rechoke_due = true;
        }
    }

    /// When the next rechoke is due: a rechoke interval after the last one, earlier when an
    /// optimistic slot runs out, and at once (the last rechoke's time, or
    /// [`Instant::ZERO`] before the first) when something asked for it.
    pub fn next_rechoke(&self) -> Instant {
        let Some(last) = self.last_rechoke else {
            return Instant::ZERO;
        };
        if self.rechoke_due {
            return last;
        }
        let regular = last + self.config.rechoke_interval();
        self.optimistic
            .iter()
            .map(|slot| slot.until)
            .fold(regular, Instant::min)
    }

    /// The same as [`next_rechoke`](Self::next_rechoke), in the shape every state machine
    /// of the core has; never `None`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.next_rechoke())
    }

    /// Makes the next rechoke due at once, e.g. when a peer became interested while a slot
    /// is free.
    pub fn request_rechoke(&mut self) {
        self.rechoke_due = true;
    }

    /// Forgets a peer that disconnected. If it held a slot, the next rechoke is due at once,
    /// so that the slot does not stay empty.
    pub fn peer_removed(&mut self, key: PeerKey) {
        let was_unchoked = self
            .peers
            .remove(&key)
            .is_some_and(|state| state.unchoked_since.is_some());
        let slots = self.optimistic.len();
        self.optimistic.retain(|slot| slot.key != key);
        if was_unchoked || self.optimistic.len() != slots {
            self.rechoke_due = true;
        }
    }

    /// The peers holding optimistic slots.
    pub fn optimistic_peers(&self) -> impl Iterator<Item = PeerKey> + '_ {
        self.optimistic.iter().map(|slot| slot.key)
    }

    /// Decides whom to unchoke among `peers`, the peers connected now, and returns what
    /// changes. The choker assumes the owner applies the decision; what the next call's
    /// [`ChokeCandidate::is_choked`] says wins in any case. Peers missing from `peers` are
    /// forgotten.
    pub fn rechoke(&mut self, now: Instant, peers: &[ChokeCandidate]) -> ChokeDecision {
        let round = self.observe(now, peers);
        let find = |key: PeerKey| {
            round
                .binary_search_by_key(&key, |entry| entry.peer.key)
                .ok()
                .and_then(|at| round.get(at))
        };
        self.optimistic.retain(|slot| {
            slot.until > now && find(slot.key).is_some_and(|entry| entry.peer.wants_optimistic())
        });

        let mut selected: BTreeSet<PeerKey> = self.optimistic_peers().collect();
        let regular = if self.config.seeding {
            self.rank_seeding(now, &round, &selected)
        } else {
            Self::rank_leeching(&round, &selected)
        };
        selected.extend(regular.into_iter().take(self.config.upload_slots));

        while self.optimistic.len() < self.config.optimistic_slots {
            let Some(key) = self.pick_optimistic(now, &round, &selected) else {
                break;
            };
            selected.insert(key);
            let until = now + self.config.optimistic_interval();
            self.optimistic.push(OptimisticSlot { key, until });
        }

        let decision = self.decide(now, &round, &selected);
        self.last_rechoke = Some(now);
        self.rechoke_due = false;
        decision
    }

    /// Sorts the candidates by key, drops repeated keys, updates the remembered state and
    /// draws each candidate's tie-breaker.
    fn observe<'a>(&mut self, now: Instant, peers: &'a [ChokeCandidate]) -> Vec<Entry<'a>> {
        let mut sorted: Vec<&ChokeCandidate> = peers.iter().collect();
        // A stable sort: of repeated keys, the first stays first and is the one kept.
        sorted.sort_by_key(|peer| peer.key);
        sorted.dedup_by_key(|peer| peer.key);
        self.peers
            .retain(|key, _| sorted.binary_search_by_key(key, |peer| peer.key).is_ok());
        sorted
            .into_iter()
            .map(|peer| {
                self.peers.entry(peer.key).or_default().observe(now, peer);
                Entry {
                    peer,
                    tiebreak: self.rng.next_u64(),
                }
            })
            .collect()
    }

    /// Leeching: interested, unsnubbed peers by the rate they send us, best first.
    fn rank_leeching(round: &[Entry<'_>], taken: &BTreeSet<PeerKey>) -> Vec<PeerKey> {
        let mut ranked: Vec<_> = round
            .iter()
            .filter(|entry| {
                entry.peer.interested && !entry.peer.is_snubbed && !taken.contains(&entry.peer.key)
            })
            .map(|entry| {
                let peer = entry.peer;
                (
                    Reverse(peer.download_rate),
                    peer.is_choked,
                    entry.tiebreak,
                    peer.key,
                )
            })
            .collect();
        // The keys are distinct, so the order is total.
        ranked.sort_unstable();
        ranked.into_iter().map(|(.., key)| key).collect()
    }

    /// Seeding: interested peers by their place in the rotation, then by the rate we send
    /// them, best first.
    fn rank_seeding(
        &self,
        now: Instant,
        round: &[Entry<'_>],
        taken: &BTreeSet<PeerKey>,
    ) -> Vec<PeerKey> {
        let mut ranked: Vec<_> = round
            .iter()
            .filter(|entry| entry.peer.interested && !taken.contains(&entry.peer.key))
            .map(|entry| {
                let peer = entry.peer;
                let turn = self
                    .peers
                    .get(&peer.key)
                    .map_or(Turn::Waiting(now), |state| {
                        state.turn(now, peer, &self.config)
                    });
                (turn, Reverse(peer.upload_rate), entry.tiebreak, peer.key)
            })
            .collect();
        // The keys are distinct, so the order is total.
        ranked.sort_unstable();
        ranked.into_iter().map(|(.., key)| key).collect()
    }

    /// Picks a peer for an optimistic slot among those not `taken`: choked ones if there
    /// are any, new ones weighted up.
    fn pick_optimistic(
        &mut self,
        now: Instant,
        round: &[Entry<'_>],
        taken: &BTreeSet<PeerKey>,
    ) -> Option<PeerKey> {
        let pool: Vec<&ChokeCandidate> = round
            .iter()
            .map(|entry| entry.peer)
            .filter(|peer| peer.wants_optimistic() && !taken.contains(&peer.key))
            .collect();
        let choked: Vec<&ChokeCandidate> =
            pool.iter().copied().filter(|peer| peer.is_choked).collect();
        let pool = if choked.is_empty() { pool } else { choked };

        let new_weight = u64::from(self.config.new_peer_weight.max(1));
        let weight = |peer: &ChokeCandidate| {
            if now - peer.connected_at < self.config.new_peer_window {
                new_weight
            } else {
                1
            }
        };
        let total = pool
            .iter()
            .fold(0u64, |sum, peer| sum.saturating_add(weight(peer)));
        let mut point = self.rng.below(total);
        for peer in &pool {
            let w = weight(peer);
            if point < w {
                return Some(peer.key);
            }
            point -= w;
        }
        // Reached only if the total saturated.
        pool.last().map(|peer| peer.key)
    }

    /// The changes that make `selected` the unchoked set, remembered as done.
    fn decide(
        &mut self,
        now: Instant,
        round: &[Entry<'_>],
        selected: &BTreeSet<PeerKey>,
    ) -> ChokeDecision {
        let mut decision = ChokeDecision::default();
        for entry in round {
            let peer = entry.peer;
            let optimistic = self.optimistic.iter().any(|slot| slot.key == peer.key);
            let state = self.peers.entry(peer.key).or_default();
            if selected.contains(&peer.key) {
                if peer.is_choked {
                    decision.unchoke.push(peer.key);
                    state.start_unchoke(now, peer, optimistic);
                } else if optimistic {
                    state.via_optimistic = true;
                }
            } else if !peer.is_choked {
                decision.choke.push(peer.key);
                state.choke(now, peer);
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests;
