//! The peers a torrent could connect to: where each was learnt, how connecting to it went,
//! and whom to connect to next.
//!
//! [`PeerList`] holds at most [`MAX_CANDIDATES`] addresses. A full list makes room by
//! forgetting its worst candidate (most failed attempts, then lowest priority; never one
//! that is connected). Candidates are chosen by BEP40 canonical priority, highest first.
//! A failed connection attempt puts a candidate aside for a while, longer after each
//! failure, and [`MAX_FAILURES`] failures in a row forget it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use super::peer_priority::canonical_priority;
use crate::time::Instant;
use crate::wire::extension::PexFlags;

/// The most candidates one torrent keeps.
pub(super) const MAX_CANDIDATES: usize = 4000;

/// Failed connection attempts in a row after which a candidate is forgotten.
pub(super) const MAX_FAILURES: u8 = 5;

/// How long a candidate rests after its first failed attempt; doubled after each further
/// failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(30);

/// How long a peer whose connection ended is left alone before it is dialled again.
const RECONNECT_DELAY: Duration = Duration::from_secs(60);

/// Where a peer's address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerSource {
    /// Given by the user: [`AddTorrentParams::peers`](crate::session::AddTorrentParams::peers),
    /// a magnet link's `x.pe`, or [`Session::connect_peer`](crate::session::Session::connect_peer).
    Manual,
    /// A tracker's announce reply.
    Tracker,
    /// Peer exchange (BEP11) from a connected peer.
    Pex,
    /// The DHT (BEP5).
    Dht,
    /// The peer connected to us (its address is its listen port, from its extension
    /// handshake).
    Incoming,
}

impl PeerSource {
    const ALL: [Self; 5] = [
        Self::Manual,
        Self::Tracker,
        Self::Pex,
        Self::Dht,
        Self::Incoming,
    ];

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`PeerSource`]s: every way a peer's address was learnt.
///
/// ```
/// use fxtor_proto::session::{PeerSource, PeerSources};
///
/// let mut sources = PeerSources::of(PeerSource::Tracker);
/// sources.insert(PeerSource::Pex);
/// assert!(sources.contains(PeerSource::Pex) && !sources.contains(PeerSource::Dht));
/// assert_eq!(sources.iter().collect::<Vec<_>>(), [PeerSource::Tracker, PeerSource::Pex]);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PeerSources(u8);

impl PeerSources {
    /// No source.
    pub const NONE: Self = Self(0);

    /// The set of one source.
    pub fn of(source: PeerSource) -> Self {
        Self(source.bit())
    }

    /// Whether `source` is in the set.
    pub fn contains(self, source: PeerSource) -> bool {
        self.0 & source.bit() != 0
    }

    /// Adds `source`.
    pub fn insert(&mut self, source: PeerSource) {
        self.0 |= source.bit();
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The sources in the set.
    pub fn iter(self) -> impl Iterator<Item = PeerSource> {
        PeerSource::ALL
            .into_iter()
            .filter(move |s| self.contains(*s))
    }
}

impl fmt::Debug for PeerSources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// One address the torrent could connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Candidate {
    /// How it was learnt.
    pub sources: PeerSources,
    /// What peer exchange said about it (seed, encryption, uTP, holepunch, reachable).
    pub flags: PexFlags,
    /// Failed connection attempts in a row.
    pub failures: u8,
    /// Not dialled before this.
    pub retry_after: Option<Instant>,
    /// A connection to it is open or being opened.
    pub connected: bool,
    /// It sent corrupt data or misbehaved: never dialled.
    pub banned: bool,
    /// Its BEP40 priority with our address.
    pub priority: u32,
}

impl Candidate {
    /// Orders candidates from the one to forget first: banned, then most failures, then
    /// lowest priority.
    fn badness(&self) -> (bool, u8, core::cmp::Reverse<u32>) {
        (
            self.banned,
            self.failures,
            core::cmp::Reverse(self.priority),
        )
    }
}

/// What adding an address did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Added {
    /// It is a new candidate.
    New,
    /// It was known: its sources and flags were updated.
    Known,
    /// The list is full of better candidates, or the address cannot be dialled.
    Refused,
}

/// The candidates of one torrent; see the [module documentation](self).
#[derive(Debug)]
pub(super) struct PeerList {
    candidates: BTreeMap<SocketAddr, Candidate>,
    /// Candidates resting, by when they may be dialled again.
    resting: BTreeSet<(Instant, SocketAddr)>,
    /// Our address as peers see it, for priorities.
    ours: SocketAddr,
    max: usize,
}

impl Default for PeerList {
    fn default() -> Self {
        Self::new(MAX_CANDIDATES)
    }
}

impl PeerList {
    /// An empty list holding at most `max` candidates.
    pub fn new(max: usize) -> Self {
        Self {
            candidates: BTreeMap::new(),
            resting: BTreeSet::new(),
            ours: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            max,
        }
    }

    /// How many candidates there are.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    /// The candidate at `addr`.
    pub fn get(&self, addr: &SocketAddr) -> Option<&Candidate> {
        self.candidates.get(addr)
    }

    /// Sets our address (as peers see it: the IP from `yourip`, our listen port), which
    /// every priority is computed from.
    pub fn set_our_address(&mut self, ours: SocketAddr) {
        if self.ours == ours {
            return;
        }
        self.ours = ours;
        for (addr, candidate) in &mut self.candidates {
            candidate.priority = canonical_priority(ours, *addr);
        }
    }

    /// Adds `addr`, learnt from `source` with `flags`. A full list forgets its worst
    /// candidate for it if that one is worse than a fresh one of this priority.
    pub fn add(&mut self, addr: SocketAddr, source: PeerSource, flags: PexFlags) -> Added {
        if addr.port() == 0 || addr.ip().is_unspecified() {
            return Added::Refused;
        }
        if let Some(candidate) = self.candidates.get_mut(&addr) {
            candidate.sources.insert(source);
            if source == PeerSource::Pex {
                candidate.flags = flags;
            }
            return Added::Known;
        }
        let candidate = Candidate {
            sources: PeerSources::of(source),
            flags,
            failures: 0,
            retry_after: None,
            connected: false,
            banned: false,
            priority: canonical_priority(self.ours, addr),
        };
        if self.candidates.len() >= self.max {
            let worst = self
                .candidates
                .iter()
                .filter(|(_, c)| !c.connected)
                .max_by_key(|(_, c)| c.badness())
                .map(|(a, c)| (*a, c.badness()));
            match worst {
                Some((worst, badness)) if badness > candidate.badness() => self.remove(&worst),
                _ => return Added::Refused,
            }
        }
        self.candidates.insert(addr, candidate);
        Added::New
    }

    /// Forgets `addr`.
    pub fn remove(&mut self, addr: &SocketAddr) {
        if let Some(candidate) = self.candidates.remove(addr) {
            if let Some(at) = candidate.retry_after {
                self.resting.remove(&(at, *addr));
            }
        }
    }

    /// Forgets the candidates learnt from `source` alone that are not connected.
    pub fn forget_learnt_only_from(&mut self, source: PeerSource) {
        let only = PeerSources::of(source);
        let gone: Vec<SocketAddr> = self
            .candidates
            .iter()
            .filter(|(_, c)| c.sources == only && !c.connected)
            .map(|(a, _)| *a)
            .collect();
        for addr in gone {
            self.remove(&addr);
        }
    }

    /// A connection to `addr` is being opened (or was accepted).
    pub fn set_connected(&mut self, addr: SocketAddr) {
        self.set_resting(addr, None);
        if let Some(c) = self.candidates.get_mut(&addr) {
            c.connected = true;
        }
    }

    /// The handshake with `addr` succeeded: its failures are forgiven.
    pub fn handshake_done(&mut self, addr: SocketAddr) {
        if let Some(c) = self.candidates.get_mut(&addr) {
            c.failures = 0;
        }
    }

    /// The connection to `addr` ended; `seed` says whether the peer had every piece.
    /// It is dialled again after a while.
    pub fn disconnected(&mut self, now: Instant, addr: SocketAddr, seed: bool) {
        let Some(c) = self.candidates.get_mut(&addr) else {
            return;
        };
        c.connected = false;
        if seed {
            c.flags = c.flags | PexFlags::SEED;
        }
        self.set_resting(addr, Some(now + RECONNECT_DELAY));
    }

    /// Connecting to `addr` failed: it rests, longer after each failure, and is forgotten
    /// after [`MAX_FAILURES`].
    pub fn connect_failed(&mut self, now: Instant, addr: SocketAddr) {
        let Some(c) = self.candidates.get_mut(&addr) else {
            return;
        };
        c.connected = false;
        c.failures = c.failures.saturating_add(1);
        if c.failures >= MAX_FAILURES && !c.banned {
            self.remove(&addr);
            return;
        }
        let backoff = FIRST_BACKOFF * (1u32 << (c.failures - 1).min(6));
        self.set_resting(addr, Some(now + backoff));
    }

    /// Marks `addr` banned: it is never chosen again (and is the first forgotten).
    pub fn ban(&mut self, addr: SocketAddr) {
        if let Some(c) = self.candidates.get_mut(&addr) {
            c.banned = true;
        }
    }

    fn set_resting(&mut self, addr: SocketAddr, until: Option<Instant>) {
        let Some(c) = self.candidates.get_mut(&addr) else {
            return;
        };
        if let Some(at) = c.retry_after.take() {
            self.resting.remove(&(at, addr));
        }
        if let Some(at) = until {
            c.retry_after = Some(at);
            self.resting.insert((at, addr));
        }
    }

    /// When the next resting candidate may be dialled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.resting.first().map(|(at, _)| *at)
    }

    /// Ends the rest of every candidate due by `now`; returns whether any is.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(&(at, addr)) = self.resting.first() {
            if at > now {
                break;
            }
            self.resting.pop_first();
            if let Some(c) = self.candidates.get_mut(&addr) {
                c.retry_after = None;
            }
            any = true;
        }
        any
    }

    /// Ends every rest (the torrent was started or resumed by the user).
    pub fn end_rests(&mut self) {
        for (_, addr) in std::mem::take(&mut self.resting) {
            if let Some(c) = self.candidates.get_mut(&addr) {
                c.retry_after = None;
            }
        }
    }

    /// Up to `count` candidates to dial now, best priority first: not connected, banned
    /// or resting, and (when `we_seed`) not known to be seeds.
    pub fn to_connect(&self, count: usize, we_seed: bool) -> Vec<SocketAddr> {
        if count == 0 {
            return Vec::new();
        }
        let mut ready: Vec<(core::cmp::Reverse<u32>, SocketAddr)> = self
            .candidates
            .iter()
            .filter(|(_, c)| {
                let skipped_seed = we_seed && c.flags.contains(PexFlags::SEED);
                !(c.connected || c.banned || c.retry_after.is_some() || skipped_seed)
            })
            .map(|(a, c)| (core::cmp::Reverse(c.priority), *a))
            .collect();
        // Highest priority first; ties (masked addresses hash alike) by address.
        ready.sort_unstable();
        ready.truncate(count);
        ready.into_iter().map(|(_, a)| a).collect()
    }

    /// Every candidate's address.
    #[cfg(test)]
    pub fn addrs(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.candidates.keys().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn at(secs: u64) -> Instant {
        Instant::from_duration(Duration::from_secs(secs))
    }

    #[test]
    fn chosen_by_canonical_priority() {
        let mut list = PeerList::new(100);
        let ours = addr("123.213.32.10:6881");
        list.set_our_address(ours);
        let peers: Vec<SocketAddr> = (1..=20)
            .map(|i| addr(&format!("98.76.{i}.32:{}", 6000 + i)))
            .collect();
        for &p in &peers {
            assert_eq!(list.add(p, PeerSource::Tracker, PexFlags::NONE), Added::New);
        }
        let mut expected = peers.clone();
        expected.sort_by_key(|p| (core::cmp::Reverse(canonical_priority(ours, *p)), *p));
        assert_eq!(list.to_connect(20, false), expected);
        assert_eq!(list.to_connect(3, false), expected[..3]);
        // Connected ones are not chosen again.
        list.set_connected(expected[0]);
        assert_eq!(list.to_connect(1, false), [expected[1]]);
    }

    #[test]
    fn sources_and_flags_accumulate() {
        let mut list = PeerList::new(10);
        let p = addr("10.0.0.1:1");
        assert_eq!(list.add(p, PeerSource::Tracker, PexFlags::NONE), Added::New);
        assert_eq!(list.add(p, PeerSource::Pex, PexFlags::SEED), Added::Known);
        let c = list.get(&p).unwrap();
        assert!(c.sources.contains(PeerSource::Tracker) && c.sources.contains(PeerSource::Pex));
        assert!(!c.sources.contains(PeerSource::Dht));
        assert_eq!(c.flags, PexFlags::SEED);
        assert_eq!(
            list.add(addr("10.0.0.1:0"), PeerSource::Pex, PexFlags::NONE),
            Added::Refused
        );
    }

    #[test]
    fn candidates_of_one_source_can_be_forgotten() {
        let mut list = PeerList::new(10);
        let pex_only = addr("10.0.0.1:1");
        let both = addr("10.0.0.2:1");
        let connected = addr("10.0.0.3:1");
        list.add(pex_only, PeerSource::Pex, PexFlags::NONE);
        list.add(both, PeerSource::Pex, PexFlags::NONE);
        list.add(both, PeerSource::Tracker, PexFlags::NONE);
        list.add(connected, PeerSource::Pex, PexFlags::NONE);
        list.set_connected(connected);
        list.connect_failed(at(0), pex_only);
        list.forget_learnt_only_from(PeerSource::Pex);
        assert!(list.get(&pex_only).is_none());
        assert!(list.get(&both).is_some() && list.get(&connected).is_some());
        assert_eq!(list.poll_timeout(), None);
    }

    #[test]
    fn seeds_are_skipped_when_we_seed() {
        let mut list = PeerList::new(10);
        let seed = addr("10.0.0.1:1");
        let leech = addr("10.0.0.2:1");
        list.add(seed, PeerSource::Pex, PexFlags::SEED);
        list.add(leech, PeerSource::Pex, PexFlags::NONE);
        assert_eq!(list.to_connect(10, true), [leech]);
        assert_eq!(list.to_connect(10, false).len(), 2);
    }

    #[test]
    fn failures_back_off_then_forget() {
        let mut list = PeerList::new(10);
        let p = addr("10.0.0.1:1");
        list.add(p, PeerSource::Tracker, PexFlags::NONE);
        let mut now = at(0);
        let mut waits = Vec::new();
        for _ in 0..MAX_FAILURES - 1 {
            list.set_connected(p);
            list.connect_failed(now, p);
            assert!(list.to_connect(1, false).is_empty(), "resting");
            let due = list.poll_timeout().unwrap();
            waits.push((due - now).as_secs());
            assert!(!list.handle_timeout(due - Duration::from_millis(1)));
            assert!(list.handle_timeout(due));
            assert_eq!(list.to_connect(1, false), [p]);
            now = due;
        }
        assert_eq!(waits, [30, 60, 120, 240]);
        list.connect_failed(now, p);
        assert!(list.get(&p).is_none(), "forgotten after {MAX_FAILURES}");
        assert_eq!(list.poll_timeout(), None);
    }

    #[test]
    fn a_handshake_forgives_failures_and_a_disconnect_rests() {
        let mut list = PeerList::new(10);
        let p = addr("10.0.0.1:1");
        list.add(p, PeerSource::Manual, PexFlags::NONE);
        list.connect_failed(at(0), p);
        list.handle_timeout(at(100));
        list.set_connected(p);
        list.handshake_done(p);
        assert_eq!(list.get(&p).unwrap().failures, 0);
        list.disconnected(at(200), p, true);
        assert!(list.get(&p).unwrap().flags.contains(PexFlags::SEED));
        assert_eq!(list.poll_timeout(), Some(at(200) + RECONNECT_DELAY));
        list.ban(p);
        list.handle_timeout(at(1000));
        assert!(list.to_connect(1, false).is_empty(), "banned");
    }

    #[test]
    fn a_full_list_forgets_its_worst() {
        let mut list = PeerList::new(3);
        let ours = addr("1.1.1.1:1");
        list.set_our_address(ours);
        let a = addr("2.2.2.2:1");
        let b = addr("3.3.3.3:1");
        let c = addr("4.4.4.4:1");
        for p in [a, b, c] {
            list.add(p, PeerSource::Tracker, PexFlags::NONE);
        }
        // A failed candidate goes first.
        list.connect_failed(at(0), b);
        let d = addr("5.5.5.5:1");
        assert_eq!(list.add(d, PeerSource::Pex, PexFlags::NONE), Added::New);
        assert!(list.get(&b).is_none());
        assert_eq!(list.poll_timeout(), None, "its rest went with it");
        assert_eq!(list.len(), 3);
        // Then the lowest priority, if the newcomer ranks above it.
        let mut all: Vec<SocketAddr> = list.addrs().collect();
        all.sort_by_key(|p| canonical_priority(ours, *p));
        let lowest = all[0];
        let newcomers: Vec<SocketAddr> = (10..60).map(|i| addr(&format!("9.{i}.9.9:1"))).collect();
        let better = newcomers
            .iter()
            .find(|p| canonical_priority(ours, **p) > canonical_priority(ours, lowest))
            .unwrap();
        let worse = newcomers
            .iter()
            .find(|p| canonical_priority(ours, **p) < canonical_priority(ours, lowest))
            .unwrap();
        assert_eq!(
            list.add(*worse, PeerSource::Pex, PexFlags::NONE),
            Added::Refused
        );
        assert_eq!(
            list.add(*better, PeerSource::Pex, PexFlags::NONE),
            Added::New
        );
        assert!(list.get(&lowest).is_none());
        // Connected candidates are never forgotten.
        let mut list = PeerList::new(1);
        list.add(a, PeerSource::Manual, PexFlags::NONE);
        list.set_connected(a);
        assert_eq!(list.add(b, PeerSource::Pex, PexFlags::NONE), Added::Refused);
    }

    /// The rests agree with the candidates' `retry_after`.
    fn consistent(list: &PeerList) -> bool {
        let from_candidates: BTreeSet<(Instant, SocketAddr)> = list
            .candidates
            .iter()
            .filter_map(|(a, c)| c.retry_after.map(|at| (at, *a)))
            .collect();
        from_candidates == list.resting
    }

    proptest::proptest! {
        #[test]
        fn any_sequence_keeps_the_bound_and_the_rests(
            ops in proptest::collection::vec((0u8..8, 0u8..24, 0u64..600), 0..300),
        ) {
            let mut list = PeerList::new(10);
            list.set_our_address(addr("10.0.0.100:6881"));
            for (op, peer, secs) in ops {
                let p = SocketAddr::from(([10, 0, peer % 3, peer], 6881));
                let now = at(secs);
                match op {
                    0 | 1 => {
                        list.add(p, PeerSource::ALL[usize::from(peer) % 5], PexFlags(peer));
                    }
                    2 => list.set_connected(p),
                    3 => list.connect_failed(now, p),
                    4 => list.disconnected(now, p, peer % 2 == 0),
                    5 => {
                        list.handle_timeout(now);
                    }
                    6 => list.ban(p),
                    _ => list.end_rests(),
                }
                proptest::prop_assert!(list.len() <= 10);
                proptest::prop_assert!(consistent(&list));
                let chosen = list.to_connect(usize::from(peer), peer % 2 == 0);
                proptest::prop_assert!(chosen.len() <= usize::from(peer));
                for c in &chosen {
                    let c = list.get(c).unwrap();
                    proptest::prop_assert!(!c.connected && !c.banned && c.retry_after.is_none());
                }
            }
        }
    }

    #[test]
    fn bounded_under_a_flood() {
        let mut list = PeerList::default();
        for i in 0..10_000u32 {
            let [_, b, c, d] = i.to_be_bytes();
            list.add(
                SocketAddr::from(([10, b, c, d], 1000)),
                PeerSource::Pex,
                PexFlags::NONE,
            );
        }
        assert_eq!(list.len(), MAX_CANDIDATES);
    }
}
