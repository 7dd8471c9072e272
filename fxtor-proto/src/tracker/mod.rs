//! Trackers: HTTP(S) announces and scrapes (BEP3, 7, 23, 24, 48), UDP trackers (BEP15) and
//! multitracker tiers (BEP12).
//!
//! - [`AnnounceRequest`]: what an announce says.
//! - [`announce_url`], [`scrape_url`], [`scrape_request_url`]: HTTP request URLs;
//!   [`TrackerEndpoint`]: what kind of tracker a URL names.
//! - [`parse_announce_response`], [`parse_scrape_response`]: HTTP response bodies.
//! - [`udp`]: the BEP15 codec and [`UdpTracker`], one UDP tracker endpoint's state machine.
//! - [`Announcer`]: one torrent's trackers, in BEP12 tiers, and when to announce to which.
//!
//! Nothing here performs I/O: the driver runs HTTP requests with its own client, resolves
//! host names, and moves UDP datagrams; every input carries the current
//! [`Instant`](crate::time::Instant), and randomness comes from a seed the caller gives.

mod announcer;
mod request;
mod response;

pub mod udp;
mod url;

pub use announcer::{
    AnnounceAction, Announcer, AnnouncerConfig, HttpResponse, RequestId, RequestTarget,
    ScrapeAction, TrackerAction, TrackerError, TrackerEvent, TrackerId, TrackerStatus,
    TransferStats,
};
pub use request::{AnnounceEvent, AnnounceRequest};
pub use response::{
    compact_v4, compact_v6, parse_announce_response, parse_scrape_response, AnnounceResponse,
    HostnamePeer, PeerInfo, ResponseError, ScrapeResponse, ScrapeStats, MAX_RESPONSE_SIZE,
    RESPONSE_LIMITS,
};
pub use udp::{UdpTracker, UdpTrackerConfig};
pub use url::{announce_url, scrape_request_url, scrape_url, TrackerEndpoint, TrackerUrlError};
