//! What an announce says: [`AnnounceRequest`] and its [`AnnounceEvent`].

use crate::peer_id::PeerId;
use crate::InfoHashV1;

/// Why an announce is made (BEP3 `event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum AnnounceEvent {
    /// A regular re-announce: no event.
    #[default]
    None,
    /// The first announce of a session with this tracker.
    Started,
    /// The download finished (sent once, not when a torrent starts out complete).
    Completed,
    /// The torrent is paused or removed; the tracker may forget us.
    Stopped,
}

impl AnnounceEvent {
    /// The HTTP `event` parameter's value; `None` for a regular announce, which leaves the
    /// parameter out.
    pub fn http_value(self) -> Option<&'static str> {
        match self {
            Self::None => None,
            Self::Started => Some("started"),
            Self::Completed => Some("completed"),
            Self::Stopped => Some("stopped"),
        }
    }

    /// The BEP15 event code: 0 none, 1 completed, 2 started, 3 stopped.
    pub fn udp_code(self) -> u32 {
        match self {
            Self::None => 0,
            Self::Completed => 1,
            Self::Started => 2,
            Self::Stopped => 3,
        }
    }

    /// The event for a BEP15 code; `None` for a code BEP15 does not define.
    pub fn from_udp_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Self::None),
            1 => Some(Self::Completed),
            2 => Some(Self::Started),
            3 => Some(Self::Stopped),
            _ => None,
        }
    }
}

/// One announce: who we are, where we listen, how far we are, and what happened.
///
/// The same request goes to HTTP trackers ([`announce_url`](super::announce_url)) and UDP
/// trackers ([`UdpTracker::announce`](super::UdpTracker::announce)); `tracker_id` is only
/// sent over HTTP, since BEP15 has no field for it.
///
/// ```
/// use fxtor_proto::peer_id::PeerId;
/// use fxtor_proto::tracker::{AnnounceEvent, AnnounceRequest};
/// use fxtor_proto::InfoHashV1;
///
/// let request = AnnounceRequest {
///     event: AnnounceEvent::Started,
///     left: 1 << 20,
///     ..AnnounceRequest::new(InfoHashV1([1; 20]), PeerId([b'a'; 20]), 6881)
/// };
/// assert_eq!(request.event.http_value(), Some("started"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AnnounceRequest {
    /// The swarm: a v1 info-hash or a truncated v2 one.
    pub info_hash: InfoHashV1,
    /// Our peer id.
    pub peer_id: PeerId,
    /// The port we accept peer connections on.
    pub port: u16,
    /// Payload bytes sent since the `started` announce.
    pub uploaded: u64,
    /// Payload bytes received since the `started` announce.
    pub downloaded: u64,
    /// Bytes we still miss.
    pub left: u64,
    /// Why we announce.
    pub event: AnnounceEvent,
    /// How many peers we would like; `None` lets the tracker choose.
    pub num_want: Option<u32>,
    /// A random number that stays the same for the torrent's session (BEP7), so that the
    /// tracker can tell our announces apart from other clients behind the same address.
    pub key: u32,
    /// The `tracker id` the tracker gave us in an earlier response, sent back over HTTP.
    pub tracker_id: Option<Vec<u8>>,
}

impl AnnounceRequest {
    /// A regular announce with zero counters, no `num_want`, key 0 and no tracker id.
    pub fn new(info_hash: InfoHashV1, peer_id: PeerId, port: u16) -> Self {
        Self {
            info_hash,
            peer_id,
            port,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: AnnounceEvent::None,
            num_want: None,
            key: 0,
            tracker_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_codes() {
        for event in [
            AnnounceEvent::None,
            AnnounceEvent::Completed,
            AnnounceEvent::Started,
            AnnounceEvent::Stopped,
        ] {
            assert_eq!(AnnounceEvent::from_udp_code(event.udp_code()), Some(event));
        }
        assert_eq!(AnnounceEvent::Completed.udp_code(), 1);
        assert_eq!(AnnounceEvent::Started.udp_code(), 2);
        assert_eq!(AnnounceEvent::from_udp_code(4), None);
        assert_eq!(AnnounceEvent::None.http_value(), None);
        assert_eq!(AnnounceEvent::Stopped.http_value(), Some("stopped"));
    }
}
