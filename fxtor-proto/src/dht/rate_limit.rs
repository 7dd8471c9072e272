//! A per-source-IP limit on incoming datagrams, so one host cannot flood the node.
//!
//! Each IP has a token bucket: [`RateLimitConfig::burst`] datagrams at once, refilled at
//! [`RateLimitConfig::per_second`]. The map of buckets holds at most
//! [`RateLimitConfig::max_tracked`] IPs: when it is full, buckets that have refilled
//! completely (their IP has been quiet) are dropped, and if none has, the one that was used
//! least recently goes. Memory stays bounded however many addresses a flood spoofs.

use core::net::IpAddr;
use std::collections::BTreeMap;

use crate::time::Instant;

/// Limits of the per-IP rate limiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Datagrams an IP may send in a burst (50).
    pub burst: u32,
    /// Datagrams per second an IP may send in the long run (10).
    pub per_second: u32,
    /// IPs tracked at once (1,024).
    pub max_tracked: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            burst: 50,
            per_second: 10,
            max_tracked: 1024,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Tokens left, in thousandths of a datagram.
    millis: u64,
    last: Instant,
}

/// The per-IP limiter.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    config: RateLimitConfig,
    buckets: BTreeMap<IpAddr, Bucket>,
}

impl RateLimiter {
    pub(crate) fn new(config: RateLimitConfig) -> Self {
        Self {
            config,
            buckets: BTreeMap::new(),
        }
    }

    fn capacity(&self) -> u64 {
        u64::from(self.config.burst.max(1)) * 1000
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.last);
        let added = elapsed
            .as_millis()
            .saturating_mul(u128::from(self.config.per_second));
        let added = u64::try_from(added).unwrap_or(u64::MAX);
        bucket.millis = bucket.millis.saturating_add(added).min(self.capacity());
        bucket.last = now;
    }

    /// Whether a datagram from `ip` may be handled now; takes one token if so.
    pub(crate) fn allow(&mut self, now: Instant, ip: IpAddr) -> bool {
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= self.config.max_tracked.max(1) {
            self.make_room(now);
        }
        let capacity = self.capacity();
        let mut bucket = self.buckets.get(&ip).copied().unwrap_or(Bucket {
            millis: capacity,
            last: now,
        });
        self.refill(&mut bucket, now);
        let allowed = bucket.millis >= 1000;
        if allowed {
            bucket.millis -= 1000;
        }
        self.buckets.insert(ip, bucket);
        allowed
    }

    /// Drops buckets that have refilled; failing that, the least recently used one.
    fn make_room(&mut self, now: Instant) {
        let capacity = self.capacity();
        let per_second = u128::from(self.config.per_second);
        self.buckets.retain(|_, b| {
            let refill = now.saturating_duration_since(b.last).as_millis() * per_second;
            u128::from(b.millis) + refill < u128::from(capacity)
        });
        if self.buckets.len() >= self.config.max_tracked.max(1) {
            let oldest = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.last)
                .map(|(ip, _)| *ip);
            if let Some(ip) = oldest {
                self.buckets.remove(&ip);
            }
        }
    }

    /// How many IPs are tracked.
    pub(crate) fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from((0x6440_0000u32 + n).to_be_bytes())
    }

    #[test]
    fn bursts_then_refills() {
        let config = RateLimitConfig {
            burst: 5,
            per_second: 2,
            max_tracked: 16,
        };
        let mut limiter = RateLimiter::new(config);
        let t = Instant::ZERO;
        assert_eq!((0..10).filter(|_| limiter.allow(t, ip(1))).count(), 5);
        // Another IP is not affected.
        assert!(limiter.allow(t, ip(2)));
        // Half a second later, one more.
        let t = t + Duration::from_millis(500);
        assert!(limiter.allow(t, ip(1)));
        assert!(!limiter.allow(t, ip(1)));
        // A long pause refills to the burst, no more.
        let t = t + Duration::from_secs(100);
        assert_eq!((0..10).filter(|_| limiter.allow(t, ip(1))).count(), 5);
    }

    #[test]
    fn memory_is_bounded_under_a_spoofed_flood() {
        let config = RateLimitConfig {
            burst: 3,
            per_second: 1,
            max_tracked: 100,
        };
        let mut limiter = RateLimiter::new(config);
        let mut t = Instant::ZERO;
        for n in 0..10_000 {
            limiter.allow(t, ip(n));
            assert!(limiter.tracked() <= 100);
            t += Duration::from_millis(1);
        }
        // A flooding IP that keeps its bucket busy stays limited even as others come and go.
        let flooder = ip(1_000_000);
        let mut allowed = 0;
        for n in 0..1000 {
            allowed += usize::from(limiter.allow(t, flooder));
            limiter.allow(t, ip(20_000 + n));
            t += Duration::from_millis(10);
        }
        // 3 at once plus 1 per second over 10 s.
        assert!(allowed <= 3 + 11, "{allowed}");
    }
}
