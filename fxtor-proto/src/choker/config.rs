//! The choker's tunables.

use core::time::Duration;

/// How many peers the choker unchokes, how often it decides, and how seeding turns work.
///
/// The defaults are BEP3's and the original client's: four regular upload slots and one
/// optimistic slot, a rechoke every 10 seconds, and a new optimistic peer every 30 seconds.
///
/// The slot count is fixed rather than derived from the measured upload rate (libtorrent's
/// `rate_based_choker` with `unchoke_slots_limit` 8): the core does not know the upload
/// capacity. An owner that does can change [`upload_slots`](Self::upload_slots) with
/// [`Choker::set_config`](super::Choker::set_config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChokerConfig {
    /// Regular upload slots: peers unchoked for what they give us (leeching) or for their
    /// turn (seeding). Default 4.
    pub upload_slots: usize,
    /// Optimistic slots: peers unchoked at random, whatever their rates. Default 1.
    pub optimistic_slots: usize,
    /// The time between regular rechokes. Default 10 s; at least [`MIN_INTERVAL`].
    pub rechoke_interval: Duration,
    /// How long a peer keeps an optimistic slot. Default 30 s; at least [`MIN_INTERVAL`].
    pub optimistic_interval: Duration,
    /// A peer connected less than this long ago counts as new for the optimistic pick.
    /// Default 60 s.
    pub new_peer_window: Duration,
    /// How many times likelier a new peer is to get an optimistic slot than another: new
    /// peers have nothing to reciprocate yet, so they need the chance most. Default 3; 0
    /// counts as 1.
    pub new_peer_weight: u32,
    /// Whether we are seeding (have every piece we want). Default `false`.
    pub seeding: bool,
    /// While seeding, the longest turn a peer gets while others wait. Default 30 s.
    pub seeding_turn: Duration,
    /// While seeding, a turn also ends once this much piece data was sent in it. Default
    /// 8 MiB.
    pub seeding_quota: u64,
}

/// The shortest rechoke and optimistic interval: a shorter configured one counts as this.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

impl Default for ChokerConfig {
    fn default() -> Self {
        Self {
            upload_slots: 4,
            optimistic_slots: 1,
            rechoke_interval: Duration::from_secs(10),
            optimistic_interval: Duration::from_secs(30),
            new_peer_window: Duration::from_secs(60),
            new_peer_weight: 3,
            seeding: false,
            seeding_turn: Duration::from_secs(30),
            seeding_quota: 8 * 1024 * 1024,
        }
    }
}

impl ChokerConfig {
    /// The most peers unchoked at once.
    pub fn total_slots(&self) -> usize {
        self.upload_slots.saturating_add(self.optimistic_slots)
    }

    pub(super) fn rechoke_interval(&self) -> Duration {
        self.rechoke_interval.max(MIN_INTERVAL)
    }

    pub(super) fn optimistic_interval(&self) -> Duration {
        self.optimistic_interval.max(MIN_INTERVAL)
    }
}
