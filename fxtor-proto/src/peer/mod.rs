//! One peer connection: the protocol state machine between the wire codec and the torrent.
//!
//! [`PeerConnection`] runs the handshake (both directions, including a hybrid torrent's
//! truncated v2 info-hash), tracks choke and interest on both sides, keeps a request
//! pipeline whose depth follows the measured download rate, queues the peer's requests for
//! the owner to serve, applies BEP6's fast extension rules and BEP10's extension
//! handshake, sends keep-alives and times out silent peers and requests. It closes with a
//! typed [`CloseReason`] when the peer misbehaves.
//!
//! It decides nothing about *which* blocks to request or whom to unchoke: it asks its
//! owner with [`PeerEvent::WantBlocks`] and reports what the peer has, and the owner (a
//! torrent with its piece picker and choker) answers with commands.
//!
//! - [`PeerConnection`]: the state machine; [`PeerParams`] and [`PeerConfig`] create it.
//! - [`PeerEvent`]: what it tells its owner.
//! - [`TorrentGeometry`]: the torrent's pieces, for checking what the peer sends.
//! - [`RateEstimator`] and [`PeerStats`]: transfer statistics.
//! - [`Instant`](crate::time::Instant): the time every input carries.

mod bits;
mod config;
mod connection;
mod error;
mod event;
mod geometry;
mod pipeline;
mod rate;
mod transmit;

pub use config::{Availability, PeerConfig, PeerParams};
pub use connection::{Direction, PeerConnection, DEFAULT_PEER_REQQ, TICK_INTERVAL};
pub use error::{CloseReason, RequestError, SendExtendedError, Violation};
pub use event::{PeerEvent, ReturnReason};
pub use geometry::{GeometryError, TorrentGeometry};
pub use rate::{PeerStats, RateEstimator};

#[cfg(test)]
mod tests;
