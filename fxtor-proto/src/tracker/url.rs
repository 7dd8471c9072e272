//! Tracker URLs: what kind of tracker a URL names ([`TrackerEndpoint`]), the HTTP announce
//! URL for a request ([`announce_url`]), and BEP48 scrape URLs ([`scrape_url`],
//! [`scrape_request_url`]).
//!
//! Query parameters are appended to the tracker's URL as it was written (a private tracker's
//! passkey in its query string stays where it is). Binary values (info-hash, peer id, tracker
//! id) are percent-encoded byte by byte: the unreserved characters of RFC 3986 (`A`–`Z`,
//! `a`–`z`, `0`–`9`, `-`, `.`, `_`, `~`) stay as they are, every other byte becomes `%XX`.

use core::fmt::Write as _;

use thiserror::Error;

use super::request::AnnounceRequest;
use crate::InfoHashV1;

/// How a tracker is reached.
///
/// ```
/// use fxtor_proto::tracker::TrackerEndpoint;
///
/// let udp = TrackerEndpoint::parse("udp://tracker.example:6969/announce").unwrap();
/// assert_eq!(udp, TrackerEndpoint::Udp { host: "tracker.example".into(), port: 6969 });
/// let http = TrackerEndpoint::parse("https://t.example/announce?passkey=x").unwrap();
/// assert!(matches!(http, TrackerEndpoint::Http(_)));
/// assert!(TrackerEndpoint::parse("wss://t.example/").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TrackerEndpoint {
    /// An `http://` or `https://` tracker: its announce URL, as written.
    Http(String),
    /// A `udp://` tracker (BEP15): the host to resolve (a name, an IPv4 address, or an IPv6
    /// address without brackets) and the port. A path or query in the URL is ignored.
    Udp {
        /// Host name or address literal.
        host: String,
        /// UDP port.
        port: u16,
    },
}

/// Why a tracker URL was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TrackerUrlError {
    /// Not a URL at all.
    #[error("invalid tracker URL: {0}")]
    Invalid(#[from] url::ParseError),
    /// A scheme other than `http`, `https` or `udp`.
    #[error("unsupported tracker URL scheme {0:?}")]
    UnsupportedScheme(String),
    /// A URL without a host.
    #[error("tracker URL has no host")]
    NoHost,
    /// A `udp://` URL without a port (or with port 0).
    #[error("UDP tracker URL has no port")]
    NoPort,
}

impl TrackerEndpoint {
    /// Reads a tracker URL. Surrounding white space is ignored.
    pub fn parse(url: &str) -> Result<Self, TrackerUrlError> {
        let url = url.trim();
        let parsed = url::Url::parse(url)?;
        let host = parsed.host().ok_or(TrackerUrlError::NoHost)?;
        match parsed.scheme() {
            "http" | "https" => Ok(Self::Http(url.to_owned())),
            "udp" => {
                let host = match host {
                    url::Host::Domain("") => return Err(TrackerUrlError::NoHost),
                    url::Host::Domain(name) => name.to_owned(),
                    url::Host::Ipv4(ip) => ip.to_string(),
                    url::Host::Ipv6(ip) => ip.to_string(),
                };
                match parsed.port() {
                    Some(port) if port != 0 => Ok(Self::Udp { host, port }),
                    _ => Err(TrackerUrlError::NoPort),
                }
            }
            other => Err(TrackerUrlError::UnsupportedScheme(other.to_owned())),
        }
    }

    /// Whether this is a UDP tracker.
    pub fn is_udp(&self) -> bool {
        matches!(self, Self::Udp { .. })
    }
}

/// The HTTP GET URL for an announce: `base` with the request's parameters appended.
///
/// Sent: `info_hash`, `peer_id`, `port`, `uploaded`, `downloaded`, `left`, `event` (not for
/// a regular announce), `key` (8 hex digits), `numwant` (when set), `compact=1`,
/// `no_peer_id=1` and `trackerid` (when the tracker gave one). A `base` that already has a
/// query string gets `&` rather than `?`; a fragment in `base` is dropped (it is never sent
/// to a server anyway).
///
/// ```
/// use fxtor_proto::peer_id::PeerId;
/// use fxtor_proto::tracker::{announce_url, AnnounceRequest};
/// use fxtor_proto::InfoHashV1;
///
/// let mut hash = [b'a'; 20];
/// hash[0] = 0xff;
/// let request = AnnounceRequest::new(InfoHashV1(hash), PeerId([b'p'; 20]), 6881);
/// let url = announce_url("http://t.example/announce?pk=1", &request);
/// assert!(url.starts_with("http://t.example/announce?pk=1&info_hash=%FFaaaaaaaaaaaaaaaaaaa&"));
/// assert!(url.contains("&port=6881&uploaded=0&downloaded=0&left=0&key=00000000&"));
/// ```
pub fn announce_url(base: &str, request: &AnnounceRequest) -> String {
    let mut url = start_query(base);
    url.push_str("info_hash=");
    push_percent_encoded(&mut url, request.info_hash.as_bytes());
    url.push_str("&peer_id=");
    push_percent_encoded(&mut url, request.peer_id.as_bytes());
    // Writing to a String cannot fail.
    let _ = write!(
        url,
        "&port={}&uploaded={}&downloaded={}&left={}",
        request.port, request.uploaded, request.downloaded, request.left
    );
    if let Some(event) = request.event.http_value() {
        url.push_str("&event=");
        url.push_str(event);
    }
    let _ = write!(url, "&key={:08X}", request.key);
    if let Some(num_want) = request.num_want {
        let _ = write!(url, "&numwant={num_want}");
    }
    url.push_str("&compact=1&no_peer_id=1");
    if let Some(tracker_id) = &request.tracker_id {
        url.push_str("&trackerid=");
        push_percent_encoded(&mut url, tracker_id);
    }
    url
}

/// The BEP48 scrape URL for an HTTP announce URL: the last path component must start with
/// `announce`, which becomes `scrape` (`/announce` → `/scrape`, `/x/announce.php` →
/// `/x/scrape.php`); the query string is kept. `None` when the URL has no such component:
/// that tracker cannot be scraped.
///
/// ```
/// use fxtor_proto::tracker::scrape_url;
///
/// assert_eq!(scrape_url("http://t.example/announce?pk=1").as_deref(),
///            Some("http://t.example/scrape?pk=1"));
/// assert_eq!(scrape_url("http://t.example/a/announce.php").as_deref(),
///            Some("http://t.example/a/scrape.php"));
/// assert_eq!(scrape_url("http://t.example/announce/x"), None);
/// ```
pub fn scrape_url(announce: &str) -> Option<String> {
    let without_fragment = announce.split('#').next().unwrap_or(announce);
    let path_end = without_fragment.find('?').unwrap_or(without_fragment.len());
    let (before_query, query) = without_fragment.split_at(path_end);
    // The path starts at the first `/` after the authority.
    let authority_start = before_query.find("://").map_or(0, |i| i + 3);
    let path_start = authority_start + before_query.get(authority_start..)?.find('/')?;
    let last_slash = path_start + before_query.get(path_start..)?.rfind('/')?;
    let last_component = before_query.get(last_slash + 1..)?;
    let rest = last_component.strip_prefix("announce")?;
    let mut url = String::with_capacity(announce.len());
    url.push_str(before_query.get(..=last_slash)?);
    url.push_str("scrape");
    url.push_str(rest);
    url.push_str(query);
    Some(url)
}

/// The HTTP GET URL that scrapes `info_hashes` at a scrape URL (one `info_hash` parameter
/// per hash, as BEP48 describes).
pub fn scrape_request_url(scrape: &str, info_hashes: &[InfoHashV1]) -> String {
    let mut url = start_query(scrape);
    for (i, hash) in info_hashes.iter().enumerate() {
        if i > 0 {
            url.push('&');
        }
        url.push_str("info_hash=");
        push_percent_encoded(&mut url, hash.as_bytes());
    }
    url
}

/// `base` without its fragment, ready for the first parameter: followed by `?` or `&`
/// unless it already ends in one of them.
fn start_query(base: &str) -> String {
    let base = base.split('#').next().unwrap_or(base);
    let mut url = String::with_capacity(base.len() + 256);
    url.push_str(base);
    if !base.ends_with('?') && !base.ends_with('&') {
        url.push(if base.contains('?') { '&' } else { '?' });
    }
    url
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `bytes` percent-encoded: RFC 3986 unreserved characters as themselves, every
/// other byte as `%XX`.
pub(super) fn push_percent_encoded(out: &mut String, bytes: &[u8]) {
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            // Each nibble is below 16, the table's length.
            out.push(char::from(HEX_UPPER[usize::from(byte >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(byte & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peer_id::PeerId;
    use crate::tracker::AnnounceEvent;

    fn request() -> AnnounceRequest {
        let mut hash = [0u8; 20];
        for (i, b) in hash.iter_mut().enumerate() {
            *b = i as u8 * 13;
        }
        AnnounceRequest {
            uploaded: 10,
            downloaded: 20,
            left: 30,
            key: 0xdead_beef,
            num_want: Some(50),
            ..AnnounceRequest::new(InfoHashV1(hash), PeerId(*b"-FX0100-ab~.-_ &=+/%"), 6881)
        }
    }

    #[test]
    fn percent_encoding_keeps_only_unreserved_bytes() {
        let mut out = String::new();
        push_percent_encoded(&mut out, b"aZ09-._~ &=+/?#%\x00\x7f\x80\xff");
        assert_eq!(out, "aZ09-._~%20%26%3D%2B%2F%3F%23%25%00%7F%80%FF");
    }

    #[test]
    fn announce_url_has_every_parameter() {
        let url = announce_url("http://t.example:8080/announce", &request());
        assert_eq!(
            url,
            "http://t.example:8080/announce?\
             info_hash=%00%0D%1A%274AN%5Bhu%82%8F%9C%A9%B6%C3%D0%DD%EA%F7\
             &peer_id=-FX0100-ab~.-_%20%26%3D%2B%2F%25\
             &port=6881&uploaded=10&downloaded=20&left=30&key=DEADBEEF&numwant=50\
             &compact=1&no_peer_id=1"
        );
    }

    #[test]
    fn announce_url_event_and_tracker_id() {
        let mut r = request();
        r.event = AnnounceEvent::Started;
        r.tracker_id = Some(b"id 7\xff".to_vec());
        r.num_want = None;
        let url = announce_url("https://t.example/announce", &r);
        assert!(url.contains("&left=30&event=started&key=DEADBEEF&compact=1"));
        assert!(url.ends_with("&no_peer_id=1&trackerid=id%207%FF"));
        assert!(!url.contains("numwant"));
        r.event = AnnounceEvent::None;
        assert!(!announce_url("http://t/a", &r).contains("event="));
        r.event = AnnounceEvent::Completed;
        assert!(announce_url("http://t/a", &r).contains("&event=completed&"));
        r.event = AnnounceEvent::Stopped;
        assert!(announce_url("http://t/a", &r).contains("&event=stopped&"));
    }

    #[test]
    fn announce_url_joins_an_existing_query() {
        let r = request();
        assert!(announce_url("http://t/announce.php?passkey=abc", &r)
            .starts_with("http://t/announce.php?passkey=abc&info_hash=%00"));
        assert!(announce_url("http://t/announce?", &r).starts_with("http://t/announce?info_hash="));
        assert!(announce_url("http://t/announce?a=1&", &r)
            .starts_with("http://t/announce?a=1&info_hash="));
        assert!(
            announce_url("http://t/announce#frag", &r).starts_with("http://t/announce?info_hash=")
        );
    }

    #[test]
    fn scrape_urls_follow_bep48() {
        let cases = [
            ("http://t/announce", Some("http://t/scrape")),
            (
                "http://t:80/x/announce?pk=a/announce",
                Some("http://t:80/x/scrape?pk=a/announce"),
            ),
            ("http://t/announce.php", Some("http://t/scrape.php")),
            ("http://t/announce.php?a=b", Some("http://t/scrape.php?a=b")),
            ("http://t/x/announce#f", Some("http://t/x/scrape")),
            ("http://t/a", None),
            ("http://t/announce/", None),
            ("http://t/x/myannounce", None),
            ("http://announce", None),
            ("http://t", None),
            ("http://t?announce", None),
            ("", None),
        ];
        for (announce, scrape) in cases {
            assert_eq!(scrape_url(announce).as_deref(), scrape, "{announce}");
        }
    }

    #[test]
    fn scrape_request_repeats_info_hash() {
        let url = scrape_request_url(
            "http://t/scrape?pk=1",
            &[InfoHashV1([b'x'; 20]), InfoHashV1([0xff; 20])],
        );
        assert_eq!(
            url,
            format!(
                "http://t/scrape?pk=1&info_hash={}&info_hash={}",
                "x".repeat(20),
                "%FF".repeat(20)
            )
        );
    }

    #[test]
    fn endpoints() {
        use TrackerEndpoint as E;
        assert_eq!(
            E::parse(" udp://[::1]:6969 "),
            Ok(E::Udp {
                host: "::1".into(),
                port: 6969
            })
        );
        assert_eq!(
            E::parse("udp://10.0.0.1:80/announce?x"),
            Ok(E::Udp {
                host: "10.0.0.1".into(),
                port: 80
            })
        );
        assert_eq!(
            E::parse("udp://t.example/announce"),
            Err(TrackerUrlError::NoPort)
        );
        assert_eq!(E::parse("udp://t.example:0"), Err(TrackerUrlError::NoPort));
        assert_eq!(
            E::parse("http://t.example/announce?pk=%41"),
            Ok(E::Http("http://t.example/announce?pk=%41".into()))
        );
        assert!(E::parse("HTTPS://t.example/announce").is_ok());
        assert_eq!(
            E::parse("ftp://t.example/"),
            Err(TrackerUrlError::UnsupportedScheme("ftp".into()))
        );
        assert!(matches!(
            E::parse("not a url"),
            Err(TrackerUrlError::Invalid(_))
        ));
        assert!(E::parse("udp://t.example:1").is_ok_and(|e| e.is_udp()));
    }
}
