//! Peer addresses in `x.pe` parameters (BEP9): `hostname:port`, `ipv4:port` or
//! `[ipv6]:port`.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// The longest host name DNS allows.
const MAX_HOST_NAME_LEN: usize = 253;

/// A peer to contact directly for the torrent's metadata: an IP address or a host name to
/// resolve, with a port.
///
/// ```
/// use core::net::SocketAddr;
/// use fxtor_proto::magnet::PeerAddress;
///
/// let ip: PeerAddress = "[2001:db8::1]:6881".parse().unwrap();
/// assert_eq!(ip, PeerAddress::Ip("[2001:db8::1]:6881".parse::<SocketAddr>().unwrap()));
/// let host: PeerAddress = "peer.example:51413".parse().unwrap();
/// assert_eq!(host.port(), 51413);
/// assert_eq!(host.to_string(), "peer.example:51413");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerAddress {
    /// An IPv4 or IPv6 address and a port.
    Ip(SocketAddr),
    /// A host name and a port. The name is not an IP literal (those parse as
    /// [`PeerAddress::Ip`]) and holds only letters, digits, `-`, `.`, `_` or non-ASCII
    /// characters; [`PeerAddress::host`] checks this.
    Host {
        /// The name to resolve.
        name: String,
        /// The port to connect to.
        port: u16,
    },
}

/// Why an `x.pe` peer address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PeerAddressError {
    /// No `:port` after the host.
    #[error("no `:port`")]
    MissingPort,
    /// The port is not a number from 1 to 65535.
    #[error("the port is not a number from 1 to 65535")]
    BadPort,
    /// The text inside `[...]` is not an IPv6 address, or an IPv6 address is not in brackets.
    #[error("not a valid `[ipv6]` address")]
    BadIpv6,
    /// The host is empty, too long, all digits and dots, or holds characters a host name
    /// cannot have.
    #[error("not a valid host name")]
    BadHost,
}

impl PeerAddress {
    /// A host-name peer, after checking that `name` is a plausible host name. A name that is
    /// an IPv4 literal gives [`PeerAddress::Ip`].
    pub fn host(name: &str, port: u16) -> Result<Self, PeerAddressError> {
        if port == 0 {
            return Err(PeerAddressError::BadPort);
        }
        if let Ok(ip) = name.parse::<Ipv4Addr>() {
            return Ok(Self::Ip(SocketAddr::new(ip.into(), port)));
        }
        if name.contains(':') {
            return Err(PeerAddressError::BadIpv6);
        }
        if !is_host_name(name) {
            return Err(PeerAddressError::BadHost);
        }
        Ok(Self::Host {
            name: name.to_owned(),
            port,
        })
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        match self {
            Self::Ip(addr) => addr.port(),
            Self::Host { port, .. } => *port,
        }
    }

    /// The socket address, when the peer is given by IP.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Self::Ip(addr) => Some(*addr),
            Self::Host { .. } => None,
        }
    }
}

impl FromStr for PeerAddress {
    type Err = PeerAddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(bracketed) = text.strip_prefix('[') {
            let (ip, port) = bracketed.split_once(']').ok_or(PeerAddressError::BadIpv6)?;
            let ip: Ipv6Addr = ip.parse().map_err(|_| PeerAddressError::BadIpv6)?;
            let port = port
                .strip_prefix(':')
                .ok_or(PeerAddressError::MissingPort)?;
            return Ok(Self::Ip(SocketAddr::new(ip.into(), parse_port(port)?)));
        }
        let (host, port) = text.rsplit_once(':').ok_or(PeerAddressError::MissingPort)?;
        Self::host(host, parse_port(port)?)
    }
}

impl fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ip(addr) => fmt::Display::fmt(addr, f),
            Self::Host { name, port } => write!(f, "{name}:{port}"),
        }
    }
}

impl From<SocketAddr> for PeerAddress {
    fn from(addr: SocketAddr) -> Self {
        Self::Ip(addr)
    }
}

fn parse_port(text: &str) -> Result<u16, PeerAddressError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(PeerAddressError::BadPort);
    }
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(PeerAddressError::BadPort),
        Ok(port) => Ok(port),
    }
}

fn is_host_name(name: &str) -> bool {
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') || !c.is_ascii();
    // A name of only digits and dots would be read as an (octal, short) IPv4 address by
    // some resolvers, so it is neither a clean IP literal nor a safe name.
    let numeric = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    !name.is_empty() && name.len() <= MAX_HOST_NAME_LEN && name.chars().all(allowed) && !numeric
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PeerAddress, PeerAddressError> {
        text.parse()
    }

    #[test]
    fn parses_each_form() {
        assert_eq!(
            parse("10.0.0.1:6881"),
            Ok(PeerAddress::Ip(SocketAddr::new(
                Ipv4Addr::new(10, 0, 0, 1).into(),
                6881
            )))
        );
        assert_eq!(
            parse("[::1]:80"),
            Ok(PeerAddress::Ip(SocketAddr::new(
                Ipv6Addr::LOCALHOST.into(),
                80
            )))
        );
        assert_eq!(
            parse("Peer-1.example_x:65535"),
            Ok(PeerAddress::Host {
                name: "Peer-1.example_x".into(),
                port: 65535
            })
        );
        assert_eq!(parse("bücher.example:1").map(|p| p.port()), Ok(1));
    }

    #[test]
    fn refuses_bad_ports() {
        for text in [
            "1.2.3.4:0",
            "1.2.3.4:65536",
            "1.2.3.4:",
            "1.2.3.4:+80",
            "h:8x",
            "[::1]:99999",
        ] {
            assert_eq!(parse(text), Err(PeerAddressError::BadPort), "{text}");
        }
    }

    #[test]
    fn refuses_malformed_addresses() {
        assert_eq!(parse("1.2.3.4"), Err(PeerAddressError::MissingPort));
        assert_eq!(parse("[::1]"), Err(PeerAddressError::MissingPort));
        assert_eq!(parse("[::1]80"), Err(PeerAddressError::MissingPort));
        assert_eq!(parse("::1:80"), Err(PeerAddressError::BadIpv6));
        assert_eq!(parse("[::g]:80"), Err(PeerAddressError::BadIpv6));
        assert_eq!(parse("[::1:80"), Err(PeerAddressError::BadIpv6));
        assert_eq!(parse(":80"), Err(PeerAddressError::BadHost));
        assert_eq!(parse("a b:80"), Err(PeerAddressError::BadHost));
        assert_eq!(parse("a/b:80"), Err(PeerAddressError::BadHost));
        assert_eq!(parse("01.2.3.4:80"), Err(PeerAddressError::BadHost));
        assert_eq!(
            parse(&format!("{}:80", "a".repeat(254))),
            Err(PeerAddressError::BadHost)
        );
    }

    #[test]
    fn displays_as_parsed() {
        for text in ["10.0.0.1:6881", "[2001:db8::7]:1", "peer.example:2"] {
            assert_eq!(parse(text).map(|p| p.to_string()).as_deref(), Ok(text));
        }
    }
}
