//! Time as the core sees it: an [`Instant`] the driver passes in with every input.
//!
//! The core never reads a clock. The driver (an adapter or a simulator) picks an epoch,
//! usually the moment it started, and hands the core the time elapsed since then. A
//! simulator can start at [`Instant::ZERO`] and advance time as it likes, so runs replay
//! exactly.

use core::fmt;
use core::ops::{Add, AddAssign, Sub};
use core::time::Duration;

/// A point in time: a [`Duration`] since an epoch the driver chose.
///
/// Arithmetic saturates instead of panicking: adding to the last representable instant
/// stays there, and the time between an instant and a later one is zero.
///
/// ```
/// use core::time::Duration;
/// use fxtor_proto::time::Instant;
///
/// let start = Instant::ZERO;
/// let later = start + Duration::from_secs(3);
/// assert_eq!(later - start, Duration::from_secs(3));
/// assert_eq!(start - later, Duration::ZERO);
/// assert!(later > start);
/// assert_eq!(Instant::from_millis(1500).since_epoch(), Duration::from_millis(1500));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(Duration);

impl Instant {
    /// The epoch.
    pub const ZERO: Self = Self(Duration::ZERO);

    /// The instant `since_epoch` after the epoch.
    pub const fn from_duration(since_epoch: Duration) -> Self {
        Self(since_epoch)
    }

    /// The instant `secs` seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    /// The instant `millis` milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Self(Duration::from_millis(millis))
    }

    /// The time since the epoch.
    pub const fn since_epoch(self) -> Duration {
        self.0
    }

    /// The time from `earlier` to `self`; zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// `self + duration`, or `None` if that cannot be represented.
    pub fn checked_add(self, duration: Duration) -> Option<Self> {
        self.0.checked_add(duration).map(Self)
    }
}

impl Add<Duration> for Instant {
    type Output = Self;

    /// Saturates at the last representable instant.
    fn add(self, rhs: Duration) -> Self {
        Self(self.0.saturating_add(rhs))
    }
}

impl AddAssign<Duration> for Instant {
    fn add_assign(&mut self, rhs: Duration) {
        *self = *self + rhs;
    }
}

impl Sub<Duration> for Instant {
    type Output = Self;

    /// Saturates at the epoch.
    fn sub(self, rhs: Duration) -> Self {
        Self(self.0.saturating_sub(rhs))
    }
}

impl Sub for Instant {
    type Output = Duration;

    /// The time between the two; zero if `rhs` is later.
    fn sub(self, rhs: Self) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instant({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let end = Instant::from_duration(Duration::MAX);
        assert_eq!(end + Duration::from_secs(1), end);
        assert_eq!(end.checked_add(Duration::from_nanos(1)), None);
        assert_eq!(Instant::ZERO - Duration::from_secs(1), Instant::ZERO);
        let mut t = Instant::from_secs(1);
        t += Duration::from_millis(500);
        assert_eq!(t, Instant::from_millis(1500));
        assert_eq!(t - Instant::from_secs(1), Duration::from_millis(500));
        assert_eq!(format!("{t:?}"), "Instant(1.5s)");
    }
}
