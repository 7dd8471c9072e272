//! HTTP tracker responses: announces ([`parse_announce_response`], BEP3, 7, 23, 24) and
//! scrapes ([`parse_scrape_response`], BEP48).
//!
//! # Limits
//!
//! A response body longer than [`MAX_RESPONSE_SIZE`] (2 MiB) is refused: the driver's HTTP
//! client should stop reading there (and report an error) rather than buffer more, and the
//! parsers check the length again. Bencode is read in [`Mode::Lenient`] with at most
//! [`RESPONSE_LIMITS`] (16 levels, 300,000 values).
//!
//! # Leniency
//!
//! What trackers get wrong in harmless ways is tolerated: counts and intervals that are
//! missing, negative or of the wrong type are left out; a compact peer list whose length is
//! not a multiple of 6 (18 for `peers6`) is read up to its last whole entry and the partial
//! entry is ignored; a peer dictionary without a usable `ip` or `port` is skipped; an
//! `external ip` that is neither 4 nor 16 bytes is ignored. A `peers` value that is neither a
//! string nor a list, or a `peers6` value that is not a string, is an error.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::time::Duration;
use std::collections::BTreeMap;

use thiserror::Error;

use crate::bencode::{self, DecodeError, Dict, Document, Limits, Mode, Value};
use crate::peer_id::PeerId;
use crate::InfoHashV1;

/// The longest response body the parsers accept: 2 MiB.
pub const MAX_RESPONSE_SIZE: usize = 2 * 1024 * 1024;

/// The bencode limits for tracker responses.
pub const RESPONSE_LIMITS: Limits = Limits {
    max_depth: 16,
    max_values: 300_000,
};

/// The longest host name a peer dictionary may give (RFC 1035).
const MAX_HOSTNAME_LEN: usize = 253;

/// A peer a tracker told us about, by address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerInfo {
    /// Where to connect. The port is as the tracker gave it, 0 included.
    pub addr: SocketAddr,
    /// The peer's id, when the tracker sent a (non-compact) dictionary with one.
    pub peer_id: Option<PeerId>,
}

impl PeerInfo {
    /// A peer known only by its address (compact lists, UDP trackers).
    pub fn from_addr(addr: SocketAddr) -> Self {
        Self {
            addr,
            peer_id: None,
        }
    }
}

/// A peer a tracker named by host name rather than address (BEP3 allows it in `ip`); the
/// driver resolves it, if it wants.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostnamePeer {
    /// The host name.
    pub host: String,
    /// The port.
    pub port: u16,
    /// The peer's id, when the tracker sent one.
    pub peer_id: Option<PeerId>,
}

/// A successful announce response, from an HTTP or a UDP tracker.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    /// `interval`: how long to wait before the next regular announce.
    pub interval: Option<Duration>,
    /// `min interval`: announce no more often than this, even on request.
    pub min_interval: Option<Duration>,
    /// `tracker id`: to send back with later announces to this tracker.
    pub tracker_id: Option<Vec<u8>>,
    /// `complete`: seeders.
    pub complete: Option<u32>,
    /// `incomplete`: leechers.
    pub incomplete: Option<u32>,
    /// `downloaded`: completed downloads, which some trackers add.
    pub downloaded: Option<u32>,
    /// `warning message`: the announce worked, but the tracker has something to say.
    pub warning: Option<String>,
    /// The peers from `peers` (compact or dictionaries) and `peers6`, in that order.
    pub peers: Vec<PeerInfo>,
    /// Peers given by host name in a dictionary list.
    pub hostname_peers: Vec<HostnamePeer>,
    /// `external ip` (BEP24): our address as the tracker sees it.
    pub external_ip: Option<IpAddr>,
}

/// One swarm's figures from a scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ScrapeStats {
    /// Seeders (`complete`).
    pub complete: u32,
    /// Completed downloads ever (`downloaded`).
    pub downloaded: u32,
    /// Leechers (`incomplete`).
    pub incomplete: u32,
}

/// A scrape response: figures per info-hash.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ScrapeResponse {
    /// The swarms the tracker reported on. Entries whose key is not 20 bytes, or whose value
    /// is not a dictionary, are skipped; missing counts are 0.
    pub files: BTreeMap<InfoHashV1, ScrapeStats>,
}

/// Why a tracker response was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ResponseError {
    /// The body is longer than [`MAX_RESPONSE_SIZE`].
    #[error("tracker response of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The body's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not bencode.
    #[error("tracker response: {0}")]
    Bencode(#[from] DecodeError),
    /// The body is bencode, but not a dictionary.
    #[error("tracker response is a {found}, not a dictionary")]
    NotADictionary {
        /// What it is.
        found: &'static str,
    },
    /// The tracker refused the request (`failure reason`).
    #[error("tracker failure: {0}")]
    Failure(String),
    /// A key whose value has a type we cannot use.
    #[error("tracker response: `{key}` is a {found}, expected {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What it should be.
        expected: &'static str,
        /// What it is.
        found: &'static str,
    },
    /// A scrape response without a `files` dictionary.
    #[error("scrape response has no `files` dictionary")]
    MissingFiles,
}

/// Parses an announce response body.
///
/// A `failure reason` makes the whole response a [`ResponseError::Failure`].
///
/// ```
/// use core::time::Duration;
/// use fxtor_proto::tracker::parse_announce_response;
///
/// let body = b"d8:intervali1800e5:peers6:\x7f\x00\x00\x01\x1a\xe1e";
/// let response = parse_announce_response(body).unwrap();
/// assert_eq!(response.interval, Some(Duration::from_secs(1800)));
/// assert_eq!(response.peers[0].addr, "127.0.0.1:6881".parse().unwrap());
///
/// let failure = parse_announce_response(b"d14:failure reason4:nopee");
/// assert_eq!(failure.unwrap_err().to_string(), "tracker failure: nope");
/// ```
pub fn parse_announce_response(body: &[u8]) -> Result<AnnounceResponse, ResponseError> {
    let doc = decode_body(body)?;
    let dict = as_dict(doc.root())?;
    if let Some(reason) = dict.get_bytes("failure reason") {
        return Err(ResponseError::Failure(lossy(reason)));
    }
    let mut response = AnnounceResponse {
        interval: seconds(dict, "interval"),
        min_interval: seconds(dict, "min interval"),
        tracker_id: dict.get_bytes("tracker id").map(<[u8]>::to_vec),
        complete: count(dict, "complete"),
        incomplete: count(dict, "incomplete"),
        downloaded: count(dict, "downloaded"),
        warning: dict.get_bytes("warning message").map(lossy),
        external_ip: dict.get_bytes("external ip").and_then(ip_from_bytes),
        ..AnnounceResponse::default()
    };
    if let Some(peers) = dict.get("peers") {
        if let Some(compact) = peers.as_bytes() {
            response
                .peers
                .extend(compact_v4(compact).map(PeerInfo::from_addr));
        } else if let Some(list) = peers.as_list() {
            for entry in list.iter().filter_map(|v| v.as_dict()) {
                match peer_from_dict(entry) {
                    Some(DictPeer::Addr(peer)) => response.peers.push(peer),
                    Some(DictPeer::Hostname(peer)) => response.hostname_peers.push(peer),
                    None => {}
                }
            }
        } else {
            return Err(wrong_type("peers", "string or list", peers));
        }
    }
    if let Some(peers6) = dict.get("peers6") {
        let compact = peers6
            .as_bytes()
            .ok_or_else(|| wrong_type("peers6", "string", peers6))?;
        response
            .peers
            .extend(compact_v6(compact).map(PeerInfo::from_addr));
    }
    Ok(response)
}

/// Parses a scrape response body.
///
/// ```
/// use fxtor_proto::tracker::parse_scrape_response;
/// use fxtor_proto::InfoHashV1;
///
/// let body = b"d5:filesd20:xxxxxxxxxxxxxxxxxxxxd8:completei11e10:downloadedi13772e10:incompletei19eeee";
/// let scrape = parse_scrape_response(body).unwrap();
/// let stats = scrape.files[&InfoHashV1([b'x'; 20])];
/// assert_eq!((stats.complete, stats.downloaded, stats.incomplete), (11, 13772, 19));
/// ```
pub fn parse_scrape_response(body: &[u8]) -> Result<ScrapeResponse, ResponseError> {
    let doc = decode_body(body)?;
    let dict = as_dict(doc.root())?;
    if let Some(reason) = dict.get_bytes("failure reason") {
        return Err(ResponseError::Failure(lossy(reason)));
    }
    let files = dict.get_dict("files").ok_or(ResponseError::MissingFiles)?;
    let files = files
        .iter()
        .filter_map(|(key, value)| {
            let hash = InfoHashV1::from_slice(key)?;
            let stats = value.as_dict()?;
            let get = |key| count(stats, key).unwrap_or(0);
            Some((
                hash,
                ScrapeStats {
                    complete: get("complete"),
                    downloaded: get("downloaded"),
                    incomplete: get("incomplete"),
                },
            ))
        })
        .collect();
    Ok(ScrapeResponse { files })
}

/// The peers of a compact IPv4 list (BEP23): whole 6-byte entries, the rest ignored.
pub fn compact_v4(bytes: &[u8]) -> impl Iterator<Item = SocketAddr> + '_ {
    bytes.chunks_exact(6).filter_map(|entry| {
        let (ip, port) = entry.split_first_chunk::<4>()?;
        let port = <[u8; 2]>::try_from(port).ok()?;
        Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(*ip)),
            u16::from_be_bytes(port),
        ))
    })
}

/// The peers of a compact IPv6 list (BEP7): whole 18-byte entries, the rest ignored.
pub fn compact_v6(bytes: &[u8]) -> impl Iterator<Item = SocketAddr> + '_ {
    bytes.chunks_exact(18).filter_map(|entry| {
        let (ip, port) = entry.split_first_chunk::<16>()?;
        let port = <[u8; 2]>::try_from(port).ok()?;
        Some(SocketAddr::new(
            IpAddr::V6(Ipv6Addr::from(*ip)),
            u16::from_be_bytes(port),
        ))
    })
}

fn decode_body(body: &[u8]) -> Result<Document<'_>, ResponseError> {
    if body.len() > MAX_RESPONSE_SIZE {
        return Err(ResponseError::TooLarge {
            len: body.len(),
            max: MAX_RESPONSE_SIZE,
        });
    }
    Ok(bencode::decode_with(body, Mode::Lenient, RESPONSE_LIMITS)?)
}

fn as_dict(value: Value<'_>) -> Result<Dict<'_>, ResponseError> {
    value.as_dict().ok_or(ResponseError::NotADictionary {
        found: value.type_name(),
    })
}

fn wrong_type(key: &'static str, expected: &'static str, value: Value<'_>) -> ResponseError {
    ResponseError::WrongType {
        key,
        expected,
        found: value.type_name(),
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A non-negative integer that fits a `u32`.
fn count(dict: Dict<'_>, key: &str) -> Option<u32> {
    dict.get_int(key).and_then(|n| u32::try_from(n).ok())
}

/// A non-negative number of seconds.
fn seconds(dict: Dict<'_>, key: &str) -> Option<Duration> {
    dict.get_int(key)
        .and_then(|n| u64::try_from(n).ok())
        .map(Duration::from_secs)
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        Some(IpAddr::V4(Ipv4Addr::from(v4)))
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        Some(IpAddr::V6(Ipv6Addr::from(v6)))
    } else {
        None
    }
}

enum DictPeer {
    Addr(PeerInfo),
    Hostname(HostnamePeer),
}

/// A BEP3 peer dictionary: `ip` (an address literal or a host name), `port`, `peer id`.
fn peer_from_dict(dict: Dict<'_>) -> Option<DictPeer> {
    let port = u16::try_from(dict.get_int("port")?).ok()?;
    let ip = dict.get_str("ip")?;
    let peer_id = dict.get_bytes("peer id").and_then(PeerId::from_slice);
    let literal = ip
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(ip);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Some(DictPeer::Addr(PeerInfo {
            addr: SocketAddr::new(ip, port),
            peer_id,
        }));
    }
    is_hostname(ip).then(|| {
        DictPeer::Hostname(HostnamePeer {
            host: ip.to_owned(),
            port,
            peer_id,
        })
    })
}

/// Letters, digits, `-` and `.`, not empty and not too long.
fn is_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_HOSTNAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(s: &str) -> PeerInfo {
        PeerInfo::from_addr(s.parse().unwrap())
    }

    #[test]
    fn every_announce_field() {
        let body = b"d8:completei5e10:downloadedi7e\
            11:external ip4:\x01\x02\x03\x04\
            10:incompletei3e8:intervali1800e12:min intervali60e\
            5:peers12:\x0a\x00\x00\x01\x1a\xe1\xc0\xa8\x01\x02\x00\x50\
            6:peers618:\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x1a\xe2\
            10:tracker id3:abc\
            15:warning message5:hello\
            e";
        let r = parse_announce_response(body).unwrap();
        assert_eq!(
            r,
            AnnounceResponse {
                interval: Some(Duration::from_secs(1800)),
                min_interval: Some(Duration::from_secs(60)),
                tracker_id: Some(b"abc".to_vec()),
                complete: Some(5),
                incomplete: Some(3),
                downloaded: Some(7),
                warning: Some("hello".into()),
                peers: vec![
                    v4("10.0.0.1:6881"),
                    v4("192.168.1.2:80"),
                    v4("[2001:db8::1]:6882")
                ],
                hostname_peers: vec![],
                external_ip: Some("1.2.3.4".parse().unwrap()),
            }
        );
    }

    #[test]
    fn minimal_response_and_bad_optional_fields() {
        assert_eq!(
            parse_announce_response(b"de"),
            Ok(AnnounceResponse::default())
        );
        let r = parse_announce_response(
            b"d8:completei-1e11:external ip3:abc10:incomplete1:x8:intervali-5e\
              12:min interval3:abce",
        )
        .unwrap();
        assert_eq!(r, AnnounceResponse::default());
        let r = parse_announce_response(b"d8:completei4294967296ee").unwrap();
        assert_eq!(r.complete, None);
    }

    #[test]
    fn external_ipv6() {
        let mut body = b"d11:external ip16:".to_vec();
        body.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        body.push(b'e');
        let r = parse_announce_response(&body).unwrap();
        assert_eq!(r.external_ip, Some("2001:db8::2".parse().unwrap()));
    }

    #[test]
    fn truncated_compact_lists_keep_whole_entries() {
        let r = parse_announce_response(b"d5:peers8:\x01\x02\x03\x04\x00\x01\xff\xffe").unwrap();
        assert_eq!(r.peers, [v4("1.2.3.4:1")]);
        let r = parse_announce_response(b"d5:peers5:\x01\x02\x03\x04\x00e").unwrap();
        assert!(r.peers.is_empty());
        let mut body = b"d6:peers620:".to_vec();
        body.extend_from_slice(&[0; 15]);
        body.extend_from_slice(&[1, 0x1a, 0xe1, 9, 9]);
        body.push(b'e');
        let r = parse_announce_response(&body).unwrap();
        assert_eq!(r.peers, [v4("[::1]:6881")]);
        let r = parse_announce_response(b"d6:peers617:aaaaaaaaaaaaaaaaae").unwrap();
        assert!(r.peers.is_empty());
    }

    #[test]
    fn dictionary_peer_list() {
        let body = b"d5:peersl\
            d2:ip8:10.0.0.17:peer id20:AAAAAAAAAAAAAAAAAAAA4:porti6881ee\
            d2:ip11:2001:db8::54:porti1ee\
            d2:ip13:[2001:db8::6]4:porti2ee\
            d2:ip13:peer.example.4:porti3e7:peer id3:shoe\
            d2:ip8:bad host4:porti4ee\
            d2:ip8:10.0.0.24:porti65536ee\
            d2:ip8:10.0.0.3e\
            d4:porti5ee\
            i42e\
            ee";
        let r = parse_announce_response(body).unwrap();
        assert_eq!(
            r.peers,
            [
                PeerInfo {
                    addr: "10.0.0.1:6881".parse().unwrap(),
                    peer_id: Some(PeerId([b'A'; 20])),
                },
                v4("[2001:db8::5]:1"),
                v4("[2001:db8::6]:2"),
            ]
        );
        assert_eq!(
            r.hostname_peers,
            [HostnamePeer {
                host: "peer.example.".into(),
                port: 3,
                peer_id: None
            }]
        );
    }

    #[test]
    fn failure_and_warning() {
        assert_eq!(
            parse_announce_response(b"d14:failure reason8:not here5:peers0:e"),
            Err(ResponseError::Failure("not here".into()))
        );
        assert_eq!(
            parse_announce_response(b"d14:failure reason2:\xff!e"),
            Err(ResponseError::Failure("\u{fffd}!".into()))
        );
        let r = parse_announce_response(b"d8:intervali60e15:warning message4:slowe").unwrap();
        assert_eq!(r.warning.as_deref(), Some("slow"));
        assert_eq!(
            parse_scrape_response(b"d14:failure reason2:noe"),
            Err(ResponseError::Failure("no".into()))
        );
    }

    #[test]
    fn malformed_responses() {
        assert!(matches!(
            parse_announce_response(b"d8:interval"),
            Err(ResponseError::Bencode(_))
        ));
        assert!(matches!(
            parse_announce_response(b"<html>502</html>"),
            Err(ResponseError::Bencode(_))
        ));
        assert_eq!(
            parse_announce_response(b"li1ee"),
            Err(ResponseError::NotADictionary { found: "list" })
        );
        assert_eq!(
            parse_announce_response(b"d5:peersi3ee"),
            Err(ResponseError::WrongType {
                key: "peers",
                expected: "string or list",
                found: "integer"
            })
        );
        assert_eq!(
            parse_announce_response(b"d6:peers6lee"),
            Err(ResponseError::WrongType {
                key: "peers6",
                expected: "string",
                found: "list"
            })
        );
        let huge = vec![b' '; MAX_RESPONSE_SIZE + 1];
        assert_eq!(
            parse_announce_response(&huge),
            Err(ResponseError::TooLarge {
                len: MAX_RESPONSE_SIZE + 1,
                max: MAX_RESPONSE_SIZE
            })
        );
        let deep = format!("{}{}", "l".repeat(20), "e".repeat(20));
        assert!(matches!(
            parse_announce_response(deep.as_bytes()),
            Err(ResponseError::Bencode(_))
        ));
        // Lenient bencode: unsorted keys are accepted.
        assert!(parse_announce_response(b"d8:intervali1e5:peers0:8:completei1ee").is_ok());
    }

    #[test]
    fn scrape_response() {
        let body = b"d5:filesd\
            20:xxxxxxxxxxxxxxxxxxxxd8:completei11e10:downloadedi13772e10:incompletei19ee\
            20:yyyyyyyyyyyyyyyyyyyyd8:completei21ee\
            3:abcd8:completei1ee\
            20:zzzzzzzzzzzzzzzzzzzzi5e\
            ee";
        let r = parse_scrape_response(body).unwrap();
        assert_eq!(r.files.len(), 2);
        assert_eq!(
            r.files[&InfoHashV1([b'x'; 20])],
            ScrapeStats {
                complete: 11,
                downloaded: 13772,
                incomplete: 19
            }
        );
        assert_eq!(
            r.files[&InfoHashV1([b'y'; 20])],
            ScrapeStats {
                complete: 21,
                ..ScrapeStats::default()
            }
        );
        assert_eq!(
            parse_scrape_response(b"de"),
            Err(ResponseError::MissingFiles)
        );
        assert_eq!(
            parse_scrape_response(b"d5:filesdee"),
            Ok(ScrapeResponse::default())
        );
    }

    proptest! {
        #[test]
        fn announce_parser_never_panics(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_announce_response(&body);
            let _ = parse_scrape_response(&body);
        }

        #[test]
        fn announce_parser_never_panics_on_near_bencode(
            peers in proptest::collection::vec(any::<u8>(), 0..64),
            interval in any::<i64>(),
            ip in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let mut body = format!("d11:external ip{}:", ip.len()).into_bytes();
            body.extend_from_slice(&ip);
            body.extend_from_slice(format!("8:intervali{interval}e5:peers{}:", peers.len()).as_bytes());
            body.extend_from_slice(&peers);
            body.extend_from_slice(format!("6:peers6{}:", peers.len()).as_bytes());
            body.extend_from_slice(&peers);
            body.push(b'e');
            let r = parse_announce_response(&body).unwrap();
            prop_assert_eq!(r.peers.len(), peers.len() / 6 + peers.len() / 18);
            prop_assert_eq!(r.interval.is_some(), interval >= 0);
        }
    }
}
