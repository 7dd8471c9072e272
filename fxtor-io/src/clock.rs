//! The driver's clock: wall time turned into the core's [`Instant`].

use std::time::Duration;

use fxtor_proto::time::Instant;

/// The epoch the core's [`Instant`]s count from: the moment the clock was made.
///
/// ```
/// use fxtor_io::Clock;
/// use fxtor_proto::time::Instant;
///
/// let clock = Clock::new();
/// let now = clock.now();
/// assert!(now >= Instant::ZERO);
/// // And back, to arm a timer of the runtime.
/// assert!(clock.to_std(now) <= std::time::Instant::now());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: std::time::Instant,
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        Self {
            epoch: std::time::Instant::now(),
        }
    }

    /// The current time as the core sees it.
    pub fn now(&self) -> Instant {
        self.from_std(std::time::Instant::now())
    }

    /// A wall-clock instant as the core sees it (the epoch if it is earlier).
    pub fn from_std(&self, at: std::time::Instant) -> Instant {
        Instant::from_duration(at.saturating_duration_since(self.epoch))
    }

    /// The wall-clock instant of a core instant, for a runtime's timer. An instant too far
    /// away to represent is put a year out, which no timer of the core waits for.
    pub fn to_std(&self, at: Instant) -> std::time::Instant {
        let far = Duration::from_secs(365 * 24 * 3600);
        self.epoch
            .checked_add(at.since_epoch())
            .unwrap_or_else(|| std::time::Instant::now() + far)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let clock = Clock::new();
        let later = clock.to_std(Instant::from_secs(5));
        assert_eq!(clock.from_std(later), Instant::from_secs(5));
        if let Some(before) = clock.epoch.checked_sub(Duration::from_secs(1)) {
            assert_eq!(clock.from_std(before), Instant::ZERO);
        }
        assert!(clock.to_std(Instant::from_duration(Duration::MAX)) > std::time::Instant::now());
    }
}
