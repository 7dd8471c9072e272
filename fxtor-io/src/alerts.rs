//! The application's view of what happens: a bounded fan-out of [`Alert`]s to any number of
//! subscribers, free of any runtime (a mutex and the subscribers' wakers).
//!
//! The event loop publishes into an [`AlertQueue`]; every [`Alerts`] subscription reads the
//! alerts published after it was made. The queue holds the latest `capacity` alerts for all
//! subscribers together: a subscriber that falls further behind loses the *oldest* ones it
//! has not read, and the publisher never waits for a slow consumer.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use fxtor_proto::session::Alert;

/// The publishing end of a session's alerts. Cheap to clone; every clone is the same queue.
#[derive(Debug, Clone)]
pub struct AlertQueue {
    shared: Arc<Mutex<Shared>>,
}

#[derive(Debug)]
struct Shared {
    /// The latest alerts, at most `capacity`.
    alerts: VecDeque<Alert>,
    /// The sequence number of `alerts[0]`; numbers grow by one per published alert.
    first: u64,
    capacity: usize,
    closed: bool,
    /// Subscribers waiting for the next alert, by subscriber number.
    waiting: HashMap<u64, Waker>,
    next_subscriber: u64,
}

impl Shared {
    /// The sequence number the next published alert gets.
    fn end(&self) -> u64 {
        self.first + self.alerts.len() as u64
    }

    fn wake_all(&mut self) {
        for (_, waker) in self.waiting.drain() {
            waker.wake();
        }
    }
}

impl AlertQueue {
    /// A queue holding at most `capacity` unread alerts (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared {
                alerts: VecDeque::new(),
                first: 0,
                capacity: capacity.max(1),
                closed: false,
                waiting: HashMap::new(),
                next_subscriber: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // No code holding the lock can panic (it only moves alerts and wakers), so a
        // poisoned lock still guards consistent state.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes an alert to every subscriber; the oldest is dropped if the queue is full.
    /// Nothing happens once the queue is closed.
    pub fn publish(&self, alert: Alert) {
        let mut shared = self.lock();
        if shared.closed {
            return;
        }
        shared.alerts.push_back(alert);
        if shared.alerts.len() > shared.capacity {
            shared.alerts.pop_front();
            shared.first += 1;
        }
        shared.wake_all();
    }

    /// Closes the queue: subscribers read what is left, then get `None`.
    pub fn close(&self) {
        let mut shared = self.lock();
        shared.closed = true;
        shared.wake_all();
    }

    /// A subscription to the alerts published from now on.
    pub fn subscribe(&self) -> Alerts {
        let mut shared = self.lock();
        let id = shared.next_subscriber;
        shared.next_subscriber += 1;
        Alerts {
            queue: self.clone(),
            id,
            cursor: Cursor {
                next: shared.end(),
                dropped: 0,
            },
        }
    }
}

/// A subscription to a session's alerts, from the moment it was made.
///
/// Alerts are kept in a bounded queue shared by every subscriber
/// ([`SessionSettings::alert_queue`](crate::SessionSettings::alert_queue) of them). A
/// subscriber that falls further behind loses the *oldest* alerts it has not read: the
/// session never waits for a slow consumer. [`dropped`](Self::dropped) says how many were
/// lost; a consumer that must not miss a state can read it again with the torrent handle's
/// `status`. It is also a [`Stream`](futures_lite::Stream) of alerts.
///
/// ```
/// use fxtor_io::alerts::AlertQueue;
/// use fxtor_proto::session::{Alert, TorrentId};
///
/// let queue = AlertQueue::new(2);
/// let mut alerts = queue.subscribe();
/// for n in 0..3 {
///     queue.publish(Alert::TorrentRemoved { torrent: TorrentId(n) });
/// }
/// queue.close();
/// futures_lite::future::block_on(async {
///     // The oldest of the three did not fit.
///     assert_eq!(alerts.recv().await, Some(Alert::TorrentRemoved { torrent: TorrentId(1) }));
///     assert_eq!(alerts.dropped(), 1);
///     assert!(alerts.recv().await.is_some());
///     assert_eq!(alerts.recv().await, None);
/// });
/// ```
#[derive(Debug)]
pub struct Alerts {
    queue: AlertQueue,
    id: u64,
    cursor: Cursor,
}

/// Where a subscriber is in the queue.
#[derive(Debug)]
struct Cursor {
    /// The sequence number of the next alert to read.
    next: u64,
    /// Alerts lost by reading too slowly.
    dropped: u64,
}

impl Cursor {
    fn take(&mut self, shared: &Shared) -> Option<Alert> {
        if self.next < shared.first {
            self.dropped += shared.first - self.next;
            self.next = shared.first;
        }
        // `next` lies in first..=end here, so the offset fits the queue's length.
        let offset = usize::try_from(self.next - shared.first).ok()?;
        let alert = shared.alerts.get(offset)?.clone();
        self.next += 1;
        Some(alert)
    }
}

impl Alerts {
    /// The next alert; `None` once the session has shut down and every alert was read.
    pub async fn recv(&mut self) -> Option<Alert> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// The next alert if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Alert> {
        let shared = self.queue.lock();
        self.cursor.take(&shared)
    }

    /// Polls for the next alert (see [`recv`](Self::recv)).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Alert>> {
        let mut shared = self.queue.lock();
        if let Some(alert) = self.cursor.take(&shared) {
            shared.waiting.remove(&self.id);
            return Poll::Ready(Some(alert));
        }
        if shared.closed {
            return Poll::Ready(None);
        }
        shared.waiting.insert(self.id, cx.waker().clone());
        Poll::Pending
    }

    /// How many alerts this subscriber lost by reading too slowly.
    pub fn dropped(&self) -> u64 {
        self.cursor.dropped
    }
}

impl futures_lite::Stream for Alerts {
    type Item = Alert;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Alert>> {
        self.get_mut().poll_recv(cx)
    }
}

impl Drop for Alerts {
    fn drop(&mut self) {
        self.queue.lock().waiting.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;
    use futures_lite::StreamExt as _;
    use fxtor_proto::session::TorrentId;

    fn alert(n: u32) -> Alert {
        Alert::TorrentRemoved {
            torrent: TorrentId(n),
        }
    }

    #[test]
    fn a_slow_reader_loses_the_oldest() {
        let queue = AlertQueue::new(4);
        let mut alerts = queue.subscribe();
        for n in 0..10 {
            queue.publish(alert(n));
        }
        queue.close();
        let got: Vec<Alert> = block_on((&mut alerts).collect());
        assert_eq!(got, (6..10).map(alert).collect::<Vec<_>>());
        assert_eq!(alerts.dropped(), 6);
        assert_eq!(alerts.try_recv(), None);
    }

    #[test]
    fn subscribers_read_from_when_they_subscribed_each_at_their_pace() {
        let queue = AlertQueue::new(8);
        queue.publish(alert(0));
        let mut early = queue.subscribe();
        queue.publish(alert(1));
        let mut late = queue.subscribe();
        queue.publish(alert(2));
        assert_eq!(early.try_recv(), Some(alert(1)));
        assert_eq!(late.try_recv(), Some(alert(2)));
        assert_eq!(late.try_recv(), None);
        assert_eq!(early.try_recv(), Some(alert(2)));
        assert_eq!((early.dropped(), late.dropped()), (0, 0));
    }

    #[test]
    fn a_waiting_reader_is_woken_by_a_publish_from_another_thread() {
        let queue = AlertQueue::new(8);
        let mut alerts = queue.subscribe();
        let publisher = queue.clone();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            publisher.publish(alert(7));
            publisher.close();
        });
        assert_eq!(block_on(alerts.recv()), Some(alert(7)));
        assert_eq!(block_on(alerts.recv()), None);
        thread.join().unwrap();
        // After closing, publishing does nothing and new subscribers see the end at once.
        queue.publish(alert(8));
        assert_eq!(block_on(queue.subscribe().recv()), None);
    }

    #[test]
    fn dropped_subscribers_leave_no_waker_behind() {
        let queue = AlertQueue::new(1);
        let mut alerts = queue.subscribe();
        let waker = std::task::Waker::noop();
        assert!(alerts
            .poll_recv(&mut Context::from_waker(waker))
            .is_pending());
        assert!(alerts
            .poll_recv(&mut Context::from_waker(waker))
            .is_pending());
        assert_eq!(queue.lock().waiting.len(), 1);
        drop(alerts);
        assert!(queue.lock().waiting.is_empty());
    }
}
