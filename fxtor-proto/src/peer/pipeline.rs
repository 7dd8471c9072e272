//! Our requests to the peer: which are outstanding, since when, how many to keep
//! outstanding, and which were recently given up on.

use std::collections::VecDeque;

use core::time::Duration;

use super::PeerConfig;
use crate::time::Instant;
use crate::wire::BlockRequest;
use crate::BLOCK_SIZE;

/// A request sent and not yet answered.
#[derive(Clone, Debug)]
struct Outstanding {
    request: BlockRequest,
    sent_at: Instant,
    /// Already reported as timed out.
    timed_out: bool,
}

/// How many recently cancelled requests are remembered at most.
const MAX_CANCELLED: usize = 1024;

/// The request pipeline of one connection.
///
/// Its depth starts at the configured minimum and, in slow start, grows by one for every
/// block received (doubling per round trip, as TCP's slow start does) until the download
/// rate stops growing; from then on it follows the rate: enough requests to cover
/// `request_queue_time` at the measured rate.
#[derive(Debug)]
pub(super) struct Pipeline {
    outstanding: VecDeque<Outstanding>,
    /// Requests we cancelled or dropped, and when: a block for one of them may still be
    /// on its way.
    cancelled: VecDeque<(BlockRequest, Instant)>,
    depth: usize,
    slow_start: bool,
    /// The bytes per second of the last tick's interval, to see whether slow start still
    /// pays.
    last_sample: u64,
    /// When the current wait for a block began: when a request went out with none
    /// outstanding, or when the last block arrived.
    waiting_since: Option<Instant>,
    snubbed: bool,
}

/// What a tick found.
#[derive(Debug, Default)]
pub(super) struct TickOutcome {
    /// Requests that just timed out.
    pub timed_out: Vec<BlockRequest>,
    /// The peer just became snubbed.
    pub snubbed: bool,
    /// The depth grew.
    pub grew: bool,
}

impl Pipeline {
    pub fn new(config: &PeerConfig) -> Self {
        Self {
            outstanding: VecDeque::new(),
            cancelled: VecDeque::new(),
            depth: config.min_request_queue.max(1),
            slow_start: true,
            last_sample: 0,
            waiting_since: None,
            snubbed: false,
        }
    }

    /// How many requests to keep outstanding, given the peer's `reqq`.
    pub fn target(&self, config: &PeerConfig, peer_reqq: usize) -> usize {
        if self.snubbed {
            return 1;
        }
        self.depth
            .max(config.min_request_queue)
            .min(Self::limit(config, peer_reqq))
    }

    /// The most requests that may be outstanding at all.
    pub fn limit(config: &PeerConfig, peer_reqq: usize) -> usize {
        config.max_request_queue.min(peer_reqq).max(1)
    }

    pub fn len(&self) -> usize {
        self.outstanding.len()
    }

    pub fn is_snubbed(&self) -> bool {
        self.snubbed
    }

    pub fn contains(&self, request: &BlockRequest) -> bool {
        self.outstanding.iter().any(|o| o.request == *request)
    }

    pub fn requests(&self) -> impl Iterator<Item = &BlockRequest> {
        self.outstanding.iter().map(|o| &o.request)
    }

    /// Records a request as sent.
    pub fn insert(&mut self, request: BlockRequest, now: Instant) {
        if self.outstanding.is_empty() {
            self.waiting_since = Some(now);
        }
        self.outstanding.push_back(Outstanding {
            request,
            sent_at: now,
            timed_out: false,
        });
    }

    /// Takes an answered request out; `false` if it was not outstanding.
    pub fn take(&mut self, request: &BlockRequest) -> bool {
        // Blocks mostly come in the order they were requested: the search ends early.
        let Some(i) = self.outstanding.iter().position(|o| o.request == *request) else {
            return false;
        };
        self.outstanding.remove(i);
        if self.outstanding.is_empty() {
            self.waiting_since = None;
        }
        true
    }

    /// Records that a block arrived; returns whether the peer stops being snubbed.
    pub fn on_block(&mut self, now: Instant, config: &PeerConfig) -> bool {
        if !self.outstanding.is_empty() {
            self.waiting_since = Some(now);
        }
        if self.slow_start && !self.snubbed {
            self.depth = (self.depth + 1).min(config.max_request_queue.max(1));
        }
        std::mem::replace(&mut self.snubbed, false)
    }

    /// Gives up on an outstanding request: takes it out and remembers it for a while, in
    /// case its block is already on the way. `false` if it was not outstanding.
    pub fn cancel(&mut self, request: &BlockRequest, now: Instant) -> bool {
        if !self.take(request) {
            return false;
        }
        self.remember_cancelled(*request, now);
        true
    }

    /// Gives up on every outstanding request; returns them.
    pub fn cancel_all(&mut self, now: Instant) -> Vec<BlockRequest> {
        self.waiting_since = None;
        let all: Vec<_> = self.outstanding.drain(..).map(|o| o.request).collect();
        for request in &all {
            self.remember_cancelled(*request, now);
        }
        all
    }

    /// Takes every outstanding request out, without remembering them (the connection is
    /// closing).
    pub fn drain(&mut self) -> Vec<BlockRequest> {
        self.waiting_since = None;
        self.cancelled.clear();
        self.outstanding.drain(..).map(|o| o.request).collect()
    }

    fn remember_cancelled(&mut self, request: BlockRequest, now: Instant) {
        if self.cancelled.len() == MAX_CANCELLED {
            self.cancelled.pop_front();
        }
        self.cancelled.push_back((request, now));
    }

    /// Whether `request` was cancelled recently; forgets it, as one answer is all that
    /// can come.
    pub fn take_cancelled(&mut self, request: &BlockRequest) -> bool {
        match self.cancelled.iter().position(|(r, _)| r == request) {
            Some(i) => {
                self.cancelled.remove(i);
                true
            }
            None => false,
        }
    }

    /// Whether anything waits for a tick: outstanding requests or cancellations to expire.
    pub fn needs_tick(&self) -> bool {
        !self.outstanding.is_empty() || !self.cancelled.is_empty()
    }

    /// The once-a-second update: the depth from the download rate (`rate`, smoothed, and
    /// `sample`, over the last interval alone), request timeouts, the snubbed state, the
    /// expiry of old cancellations.
    pub fn tick(
        &mut self,
        now: Instant,
        (rate, sample): (u64, u64),
        config: &PeerConfig,
        peer_reqq: usize,
    ) -> TickOutcome {
        let mut outcome = TickOutcome::default();
        let before = self.target(config, peer_reqq);

        // Leave slow start once a second of it no longer raises the rate by a tenth.
        if self.slow_start
            && sample > 0
            && sample.saturating_mul(10) < self.last_sample.saturating_mul(11)
        {
            self.slow_start = false;
        }
        self.last_sample = sample;
        let download_rate = rate;
        let by_rate = rate_depth(download_rate, config.request_queue_time);
        self.depth = if self.slow_start {
            self.depth.max(by_rate)
        } else {
            by_rate
        }
        .clamp(
            config.min_request_queue.max(1),
            config.max_request_queue.max(1),
        );

        if let Some(since) = self.waiting_since {
            for o in self.outstanding.iter_mut().filter(|o| !o.timed_out) {
                if now >= o.sent_at.max(since) + config.request_timeout {
                    o.timed_out = true;
                    outcome.timed_out.push(o.request);
                }
            }
            if !self.snubbed && now >= since + config.snub_timeout {
                self.snubbed = true;
                outcome.snubbed = true;
            }
        }

        while let Some(&(_, at)) = self.cancelled.front() {
            if now < at + config.cancel_grace {
                break;
            }
            self.cancelled.pop_front();
        }

        outcome.grew = self.target(config, peer_reqq) > before;
        outcome
    }
}

/// The number of requests that covers `queue_time` at `rate` bytes per second.
fn rate_depth(rate: u64, queue_time: Duration) -> usize {
    let bytes = rate as f64 * queue_time.as_secs_f64();
    // A float to integer cast saturates.
    (bytes / f64::from(BLOCK_SIZE)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PieceIndex;

    fn req(i: u32) -> BlockRequest {
        BlockRequest {
            piece: PieceIndex(i),
            offset: 0,
            length: BLOCK_SIZE,
        }
    }

    #[test]
    fn depth_follows_the_rate() {
        let config = PeerConfig::default();
        let mut p = Pipeline::new(&config);
        assert_eq!(p.target(&config, 250), 4);
        // Slow start: one more per block.
        for i in 0..6 {
            p.insert(req(i), Instant::ZERO);
            assert!(p.take(&req(i)));
            p.on_block(Instant::ZERO, &config);
        }
        assert_eq!(p.target(&config, 250), 10);
        // The rate grows: still slow start; 1 MB/s for 3 s is 183 blocks.
        p.tick(Instant::from_secs(1), (500_000, 500_000), &config, 250);
        assert!(p.slow_start);
        let grew = p.tick(Instant::from_secs(2), (1_000_000, 1_500_000), &config, 250);
        assert!(grew.grew);
        assert_eq!(p.target(&config, 250), 183);
        assert_eq!(p.target(&config, 100), 100, "capped by the peer's reqq");
        // It stops growing: slow start ends and the depth follows the rate down.
        p.tick(Instant::from_secs(3), (1_000_000, 1_500_000), &config, 250);
        assert!(!p.slow_start);
        p.tick(Instant::from_secs(4), (100_000, 0), &config, 250);
        assert_eq!(p.target(&config, 250), 18);
        p.tick(Instant::from_secs(5), (0, 0), &config, 250);
        assert_eq!(p.target(&config, 250), 4);
    }

    #[test]
    fn timeouts_and_snubbing() {
        let config = PeerConfig::default();
        let mut p = Pipeline::new(&config);
        p.insert(req(0), Instant::ZERO);
        p.insert(req(1), Instant::from_secs(10));
        let at = |s| Instant::from_secs(s);
        assert!(p.tick(at(29), (0, 0), &config, 250).timed_out.is_empty());
        assert_eq!(p.tick(at(30), (0, 0), &config, 250).timed_out, [req(0)]);
        assert!(p.tick(at(31), (0, 0), &config, 250).timed_out.is_empty());
        assert_eq!(p.tick(at(40), (0, 0), &config, 250).timed_out, [req(1)]);
        assert!(p.tick(at(50), (0, 0), &config, 250).timed_out.is_empty());
        let outcome = p.tick(at(60), (0, 0), &config, 250);
        assert!(outcome.snubbed);
        assert_eq!(p.target(&config, 250), 1);
        // A block ends it and restarts the clock.
        assert!(p.take(&req(0)));
        assert!(p.on_block(at(61), &config));
        assert!(!p.is_snubbed());
        assert!(!p.tick(at(100), (0, 0), &config, 250).snubbed);
        assert!(p.tick(at(121), (0, 0), &config, 250).snubbed);
    }

    #[test]
    fn cancelled_requests_expire() {
        let config = PeerConfig::default();
        let mut p = Pipeline::new(&config);
        p.insert(req(0), Instant::ZERO);
        p.insert(req(1), Instant::ZERO);
        assert!(p.cancel(&req(0), Instant::ZERO));
        assert!(!p.cancel(&req(0), Instant::ZERO));
        assert_eq!(p.cancel_all(Instant::from_secs(30)), [req(1)]);
        assert!(p.take_cancelled(&req(0)));
        assert!(!p.take_cancelled(&req(0)));
        p.tick(Instant::from_secs(90), (0, 0), &config, 250);
        assert!(!p.take_cancelled(&req(1)), "expired after the grace period");
        assert!(!p.needs_tick());
    }
}
