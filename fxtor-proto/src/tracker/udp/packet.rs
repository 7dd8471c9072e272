//! BEP15 packets: [`UdpRequest`] (what a client sends) and [`UdpResponse`] (what a tracker
//! answers), both ways.
//!
//! Parsing checks every length before it reads: a packet too short for its action is a
//! [`UdpPacketError`], never a panic. As BEP15 asks, packets may be longer than their
//! action needs; the extra bytes are ignored (for peer and scrape lists, a trailing partial
//! entry is ignored too).

use core::net::{IpAddr, SocketAddr};

use bytes::BufMut;
use thiserror::Error;

use crate::peer_id::PeerId;
use crate::tracker::request::{AnnounceEvent, AnnounceRequest};
use crate::tracker::response::{compact_v4, compact_v6, ScrapeStats};
use crate::InfoHashV1;

/// The magic number a connect request starts with.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;

/// The most info-hashes one scrape request may carry (BEP15: "up to about 74").
pub const MAX_SCRAPE_HASHES: usize = 74;

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

const CONNECT_LEN: usize = 16;
const ANNOUNCE_REQUEST_LEN: usize = 98;
const ANNOUNCE_RESPONSE_HEADER_LEN: usize = 20;
const HEADER_LEN: usize = 8;

/// The address family of the packets exchanged with a tracker, which decides the form of its
/// announce responses: 6-byte peer entries over IPv4, 18-byte ones over IPv6.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl AddressFamily {
    /// The family the packets to `addr` travel in (an IPv4-mapped IPv6 address is IPv4).
    pub fn of(addr: IpAddr) -> Self {
        match addr.to_canonical() {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }
}

/// A packet a client sends to a UDP tracker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UdpRequest {
    /// Asks for a connection id (action 0).
    Connect {
        /// Chosen by the client, echoed by the tracker.
        transaction_id: u32,
    },
    /// An announce (action 1). `request.tracker_id` is not sent (BEP15 has no field for it);
    /// the `IP address` field is always 0; a `num_want` of `None` is sent as -1.
    Announce {
        /// From the connect response.
        connection_id: u64,
        /// Chosen by the client, echoed by the tracker.
        transaction_id: u32,
        /// What to announce.
        request: AnnounceRequest,
    },
    /// A scrape (action 2) of up to [`MAX_SCRAPE_HASHES`] swarms.
    Scrape {
        /// From the connect response.
        connection_id: u64,
        /// Chosen by the client, echoed by the tracker.
        transaction_id: u32,
        /// The swarms to report on.
        info_hashes: Vec<InfoHashV1>,
    },
}

/// A packet a UDP tracker sends back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UdpResponse {
    /// The connection id to use for the next minute.
    Connect {
        /// The request's transaction id.
        transaction_id: u32,
        /// The connection id.
        connection_id: u64,
    },
    /// An announce's answer.
    Announce {
        /// The request's transaction id.
        transaction_id: u32,
        /// Seconds until the next regular announce.
        interval: u32,
        /// Leechers in the swarm.
        leechers: u32,
        /// Seeders in the swarm.
        seeders: u32,
        /// Peers, all of the packet's address family.
        peers: Vec<SocketAddr>,
    },
    /// A scrape's answer: one entry per requested info-hash, in the request's order.
    Scrape {
        /// The request's transaction id.
        transaction_id: u32,
        /// Figures per swarm.
        stats: Vec<ScrapeStats>,
    },
    /// The tracker refused a request (action 3).
    Error {
        /// The request's transaction id.
        transaction_id: u32,
        /// The tracker's explanation (invalid UTF-8 replaced, trailing NULs dropped).
        message: String,
    },
}

/// Why a UDP tracker packet could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum UdpPacketError {
    /// Shorter than its action needs.
    #[error("UDP tracker {what} of {len} bytes, needs at least {needed}")]
    TooShort {
        /// What the packet was read as.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The minimum for that kind of packet.
        needed: usize,
    },
    /// An action number BEP15 does not define (for that direction).
    #[error("unknown UDP tracker action {0}")]
    UnknownAction(u32),
    /// A connect request that does not start with [`PROTOCOL_ID`].
    #[error("connect request with protocol id {0:#x}")]
    BadProtocolId(u64),
    /// An announce request with an event code BEP15 does not define.
    #[error("announce request with unknown event {0}")]
    UnknownEvent(u32),
}

impl UdpRequest {
    /// The transaction id.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Self::Connect { transaction_id }
            | Self::Announce { transaction_id, .. }
            | Self::Scrape { transaction_id, .. } => *transaction_id,
        }
    }

    /// The packet's bytes.
    ///
    /// ```
    /// use fxtor_proto::tracker::udp::UdpRequest;
    ///
    /// let packet = UdpRequest::Connect { transaction_id: 0x0102_0304 }.encode();
    /// assert_eq!(packet, [0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 1, 2, 3, 4]);
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Connect { transaction_id } => {
                let mut out = Vec::with_capacity(CONNECT_LEN);
                out.put_u64(PROTOCOL_ID);
                out.put_u32(ACTION_CONNECT);
                out.put_u32(*transaction_id);
                out
            }
            Self::Announce {
                connection_id,
                transaction_id,
                request,
            } => {
                let mut out = Vec::with_capacity(ANNOUNCE_REQUEST_LEN);
                out.put_u64(*connection_id);
                out.put_u32(ACTION_ANNOUNCE);
                out.put_u32(*transaction_id);
                out.put_slice(request.info_hash.as_bytes());
                out.put_slice(request.peer_id.as_bytes());
                out.put_u64(request.downloaded);
                out.put_u64(request.left);
                out.put_u64(request.uploaded);
                out.put_u32(request.event.udp_code());
                out.put_u32(0); // IP address: the packet's source.
                out.put_u32(request.key);
                let num_want = match request.num_want {
                    None => -1,
                    Some(n) => i32::try_from(n).unwrap_or(i32::MAX),
                };
                out.put_i32(num_want);
                out.put_u16(request.port);
                out
            }
            Self::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            } => {
                let mut out = Vec::with_capacity(16 + 20 * info_hashes.len());
                out.put_u64(*connection_id);
                out.put_u32(ACTION_SCRAPE);
                out.put_u32(*transaction_id);
                for hash in info_hashes {
                    out.put_slice(hash.as_bytes());
                }
                out
            }
        }
    }

    /// Reads a request (what a tracker receives).
    pub fn parse(packet: &[u8]) -> Result<Self, UdpPacketError> {
        let too_short = |what, needed| UdpPacketError::TooShort {
            what,
            len: packet.len(),
            needed,
        };
        let mut r = Reader::new(packet);
        let (Some(connection_id), Some(action), Some(transaction_id)) = (r.u64(), r.u32(), r.u32())
        else {
            return Err(too_short("request", CONNECT_LEN));
        };
        match action {
            ACTION_CONNECT if connection_id == PROTOCOL_ID => Ok(Self::Connect { transaction_id }),
            ACTION_CONNECT => Err(UdpPacketError::BadProtocolId(connection_id)),
            ACTION_ANNOUNCE => {
                let short = || too_short("announce request", ANNOUNCE_REQUEST_LEN);
                let info_hash = InfoHashV1(r.array().ok_or_else(short)?);
                let peer_id = PeerId(r.array().ok_or_else(short)?);
                let downloaded = r.u64().ok_or_else(short)?;
                let left = r.u64().ok_or_else(short)?;
                let uploaded = r.u64().ok_or_else(short)?;
                let event_code = r.u32().ok_or_else(short)?;
                let _ip = r.u32().ok_or_else(short)?;
                let key = r.u32().ok_or_else(short)?;
                let num_want = r.u32().ok_or_else(short)?;
                let port = r.u16().ok_or_else(short)?;
                let event = AnnounceEvent::from_udp_code(event_code)
                    .ok_or(UdpPacketError::UnknownEvent(event_code))?;
                // A negative count (-1 by convention) leaves the choice to the tracker.
                let num_want = u32::try_from(num_want as i32).ok();
                Ok(Self::Announce {
                    connection_id,
                    transaction_id,
                    request: AnnounceRequest {
                        info_hash,
                        peer_id,
                        port,
                        uploaded,
                        downloaded,
                        left,
                        event,
                        num_want,
                        key,
                        tracker_id: None,
                    },
                })
            }
            ACTION_SCRAPE => {
                let info_hashes = r
                    .rest()
                    .chunks_exact(InfoHashV1::LEN)
                    .filter_map(InfoHashV1::from_slice)
                    .collect();
                Ok(Self::Scrape {
                    connection_id,
                    transaction_id,
                    info_hashes,
                })
            }
            other => Err(UdpPacketError::UnknownAction(other)),
        }
    }
}

impl UdpResponse {
    /// The transaction id.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Self::Connect { transaction_id, .. }
            | Self::Announce { transaction_id, .. }
            | Self::Scrape { transaction_id, .. }
            | Self::Error { transaction_id, .. } => *transaction_id,
        }
    }

    /// The packet's bytes, with announce peers in `family`'s form. Peers of the other family
    /// are left out, except that IPv4 peers go into an IPv6 response as IPv4-mapped
    /// addresses.
    pub fn encode(&self, family: AddressFamily) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Self::Connect {
                transaction_id,
                connection_id,
            } => {
                out.put_u32(ACTION_CONNECT);
                out.put_u32(*transaction_id);
                out.put_u64(*connection_id);
            }
            Self::Announce {
                transaction_id,
                interval,
                leechers,
                seeders,
                peers,
            } => {
                out.put_u32(ACTION_ANNOUNCE);
                out.put_u32(*transaction_id);
                out.put_u32(*interval);
                out.put_u32(*leechers);
                out.put_u32(*seeders);
                for peer in peers {
                    match (family, peer.ip()) {
                        (AddressFamily::V4, IpAddr::V4(ip)) => out.put_slice(&ip.octets()),
                        (AddressFamily::V4, IpAddr::V6(_)) => continue,
                        (AddressFamily::V6, IpAddr::V4(ip)) => {
                            out.put_slice(&ip.to_ipv6_mapped().octets());
                        }
                        (AddressFamily::V6, IpAddr::V6(ip)) => out.put_slice(&ip.octets()),
                    }
                    out.put_u16(peer.port());
                }
            }
            Self::Scrape {
                transaction_id,
                stats,
            } => {
                out.put_u32(ACTION_SCRAPE);
                out.put_u32(*transaction_id);
                for s in stats {
                    out.put_u32(s.complete);
                    out.put_u32(s.downloaded);
                    out.put_u32(s.incomplete);
                }
            }
            Self::Error {
                transaction_id,
                message,
            } => {
                out.put_u32(ACTION_ERROR);
                out.put_u32(*transaction_id);
                out.put_slice(message.as_bytes());
            }
        }
        out
    }

    /// Reads a response that came over `family`.
    ///
    /// ```
    /// use fxtor_proto::tracker::udp::{AddressFamily, UdpResponse};
    ///
    /// let packet = [0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 9];
    /// assert_eq!(
    ///     UdpResponse::parse(&packet, AddressFamily::V4),
    ///     Ok(UdpResponse::Connect { transaction_id: 0x0102_0304, connection_id: 9 }),
    /// );
    /// assert!(UdpResponse::parse(&packet[..15], AddressFamily::V4).is_err());
    /// ```
    pub fn parse(packet: &[u8], family: AddressFamily) -> Result<Self, UdpPacketError> {
        let too_short = |what, needed| UdpPacketError::TooShort {
            what,
            len: packet.len(),
            needed,
        };
        let mut r = Reader::new(packet);
        let (Some(action), Some(transaction_id)) = (r.u32(), r.u32()) else {
            return Err(too_short("response", HEADER_LEN));
        };
        match action {
            ACTION_CONNECT => {
                let connection_id = r
                    .u64()
                    .ok_or_else(|| too_short("connect response", CONNECT_LEN))?;
                Ok(Self::Connect {
                    transaction_id,
                    connection_id,
                })
            }
            ACTION_ANNOUNCE => {
                let short = || too_short("announce response", ANNOUNCE_RESPONSE_HEADER_LEN);
                let interval = r.u32().ok_or_else(short)?;
                let leechers = r.u32().ok_or_else(short)?;
                let seeders = r.u32().ok_or_else(short)?;
                let peers = match family {
                    AddressFamily::V4 => compact_v4(r.rest()).collect(),
                    AddressFamily::V6 => compact_v6(r.rest()).collect(),
                };
                Ok(Self::Announce {
                    transaction_id,
                    interval,
                    leechers,
                    seeders,
                    peers,
                })
            }
            ACTION_SCRAPE => {
                let mut stats = Vec::with_capacity(r.rest().len() / 12);
                while let (Some(complete), Some(downloaded), Some(incomplete)) =
                    (r.u32(), r.u32(), r.u32())
                {
                    stats.push(ScrapeStats {
                        complete,
                        downloaded,
                        incomplete,
                    });
                }
                Ok(Self::Scrape {
                    transaction_id,
                    stats,
                })
            }
            ACTION_ERROR => {
                let text = r.rest();
                let end = text.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                // `end` is at most one past a position inside `text`.
                let text = text.get(..end).unwrap_or(text);
                Ok(Self::Error {
                    transaction_id,
                    message: String::from_utf8_lossy(text).into_owned(),
                })
            }
            other => Err(UdpPacketError::UnknownAction(other)),
        }
    }
}

/// Reads big-endian fields from the front of a packet; every read checks the length.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(packet: &'a [u8]) -> Self {
        Self { rest: packet }
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.rest.split_first_chunk::<N>()?;
        self.rest = tail;
        Some(*head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }

    fn rest(&self) -> &'a [u8] {
        self.rest
    }
}
