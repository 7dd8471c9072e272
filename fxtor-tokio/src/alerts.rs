//! The application's view of what happens: a stream of [`Alert`]s.

use fxtor_proto::session::Alert;
use tokio::sync::broadcast;

/// A subscription to a session's alerts, from the moment it was made.
///
/// Alerts are kept in a bounded queue shared by every subscriber
/// ([`SessionSettings::alert_queue`](crate::SessionSettings::alert_queue) of them). A
/// subscriber that falls further behind loses the *oldest* alerts it has not read: the
/// session never waits for a slow consumer. [`dropped`](Self::dropped) says how many were
/// lost; a consumer that must not miss a state can read it again with
/// [`TorrentHandle::status`](crate::TorrentHandle::status).
#[derive(Debug)]
pub struct Alerts {
    receiver: broadcast::Receiver<Alert>,
    dropped: u64,
}

impl Alerts {
    pub(crate) fn new(receiver: broadcast::Receiver<Alert>) -> Self {
        Self {
            receiver,
            dropped: 0,
        }
    }

    /// The next alert; `None` once the session has shut down and every alert was read.
    pub async fn recv(&mut self) -> Option<Alert> {
        loop {
            match self.receiver.recv().await {
                Ok(alert) => return Some(alert),
                Err(broadcast::error::RecvError::Lagged(n)) => self.dropped += n,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next alert if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Alert> {
        loop {
            match self.receiver.try_recv() {
                Ok(alert) => return Some(alert),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.dropped += n,
                Err(_) => return None,
            }
        }
    }

    /// How many alerts this subscriber lost by reading too slowly.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fxtor_proto::session::TorrentId;

    fn alert(n: u32) -> Alert {
        Alert::TorrentRemoved {
            torrent: TorrentId(n),
        }
    }

    #[tokio::test]
    async fn a_slow_reader_loses_the_oldest() {
        let (tx, rx) = broadcast::channel(4);
        let mut alerts = Alerts::new(rx);
        for n in 0..10 {
            tx.send(alert(n)).unwrap();
        }
        drop(tx);
        let mut got = Vec::new();
        while let Some(a) = alerts.recv().await {
            got.push(a);
        }
        assert_eq!(got, (6..10).map(alert).collect::<Vec<_>>());
        assert_eq!(alerts.dropped(), 6);
        assert_eq!(alerts.try_recv(), None);
    }
}
