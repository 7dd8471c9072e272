//! Transfer statistics: byte counters and rate estimates that depend only on the `now`
//! they are given.

use core::time::Duration;

use crate::time::Instant;

/// An estimate of a transfer rate: bytes are added as they move, and on every
/// [`tick`](Self::tick) the bytes since the last tick update an exponentially weighted
/// moving average.
///
/// The same sequence of `add` and `tick` calls gives the same rates, whatever the real
/// time, so simulations replay exactly.
///
/// ```
/// use core::time::Duration;
/// use fxtor_proto::peer::RateEstimator;
/// use fxtor_proto::time::Instant;
///
/// let mut rate = RateEstimator::new(Instant::ZERO);
/// for second in 1..=20 {
///     rate.add(100_000);
///     rate.tick(Instant::from_secs(second));
/// }
/// assert!((99_000..=100_000).contains(&rate.bytes_per_second()));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RateEstimator {
    /// Bytes added since the last tick.
    pending: u64,
    last_tick: Instant,
    rate: f64,
    /// The rate over the last tick's interval alone.
    last_sample: u64,
}

impl RateEstimator {
    /// The weight of the newest sample: how fast the estimate follows a change. With ticks
    /// a second apart, the estimate covers roughly the last five seconds.
    pub const WEIGHT: f64 = 0.3;

    /// Below this many bytes per second the rate counts as zero.
    const NEGLIGIBLE: f64 = 1.0;

    /// An estimator at rate zero whose first sample starts at `now`.
    pub fn new(now: Instant) -> Self {
        Self {
            pending: 0,
            last_tick: now,
            rate: 0.0,
            last_sample: 0,
        }
    }

    /// Counts `bytes` that moved since the last tick.
    pub fn add(&mut self, bytes: u64) {
        self.pending = self.pending.saturating_add(bytes);
    }

    /// Folds the bytes since the last tick into the estimate, as a sample over the time
    /// since then. A tick at or before the last one does nothing.
    pub fn tick(&mut self, now: Instant) {
        let elapsed = now - self.last_tick;
        if elapsed == Duration::ZERO {
            return;
        }
        let sample = self.pending as f64 / elapsed.as_secs_f64();
        self.rate += Self::WEIGHT * (sample - self.rate);
        // A float to integer cast saturates.
        self.last_sample = sample as u64;
        if self.rate < Self::NEGLIGIBLE {
            self.rate = 0.0;
        }
        self.pending = 0;
        self.last_tick = now;
    }

    /// Restarts the sample interval at `now` without counting the time before as idle;
    /// for when ticks stopped while nothing moved.
    pub fn restart(&mut self, now: Instant) {
        self.last_tick = now;
    }

    /// The estimate in bytes per second.
    pub fn bytes_per_second(&self) -> u64 {
        // A float to integer cast saturates; the rate is never negative.
        self.rate as u64
    }

    /// The rate over the last tick's interval alone, unsmoothed, in bytes per second.
    pub fn last_sample(&self) -> u64 {
        self.last_sample
    }

    /// Whether the estimate is zero and nothing is waiting for the next tick.
    pub fn is_idle(&self) -> bool {
        self.rate == 0.0 && self.pending == 0
    }
}

/// What a connection has moved so far, and how fast.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Piece data received (the data of `piece` messages).
    pub payload_downloaded: u64,
    /// Piece data sent.
    pub payload_uploaded: u64,
    /// Every other byte received: the handshake, message headers, control messages.
    pub protocol_downloaded: u64,
    /// Every other byte sent.
    pub protocol_uploaded: u64,
    /// Piece data received that nobody wanted any more: blocks that arrived after they were
    /// cancelled or given up on. Also counted in `payload_downloaded`.
    pub wasted_downloaded: u64,
    /// The estimated rate of piece data received, in bytes per second.
    pub download_rate: u64,
    /// The estimated rate of piece data sent, in bytes per second.
    pub upload_rate: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_changes_and_decays_to_zero() {
        let mut rate = RateEstimator::new(Instant::ZERO);
        rate.add(1000);
        rate.tick(Instant::from_secs(1));
        assert_eq!(rate.bytes_per_second(), 300);
        rate.add(1000);
        rate.tick(Instant::from_secs(1));
        assert_eq!(
            rate.bytes_per_second(),
            300,
            "a tick at the same time is ignored"
        );
        rate.tick(Instant::from_secs(2));
        assert_eq!(rate.bytes_per_second(), 510);
        assert_eq!(rate.last_sample(), 1000);
        let mut t = 2;
        while !rate.is_idle() {
            t += 1;
            rate.tick(Instant::from_secs(t));
        }
        assert!(t < 40, "decayed after {t} ticks");
    }

    #[test]
    fn late_ticks_average_over_the_gap() {
        let mut rate = RateEstimator::new(Instant::ZERO);
        rate.add(10_000);
        rate.tick(Instant::from_secs(10));
        assert_eq!(rate.bytes_per_second(), 300);
        rate.restart(Instant::from_secs(100));
        rate.add(1000);
        rate.tick(Instant::from_secs(101));
        assert_eq!(rate.bytes_per_second(), 510);
    }
}
