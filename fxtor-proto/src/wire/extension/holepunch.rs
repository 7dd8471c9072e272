//! BEP55 `ut_holepunch`: connecting, through a peer both sides know, to a peer that cannot
//! accept incoming connections.

use bytes::{BufMut, Bytes};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{ExtensionError, UT_HOLEPUNCH};

/// Why a relaying peer could not act on a rendezvous (BEP55's error codes).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum HolepunchError {
    /// 1: the target endpoint is invalid.
    NoSuchPeer,
    /// 2: the relaying peer is not connected to the target.
    NotConnected,
    /// 3: the target does not support holepunching.
    NoSupport,
    /// 4: the target is the relaying peer itself.
    NoSelf,
    /// Any other code.
    Other(u32),
}

impl HolepunchError {
    /// The error for a code on the wire.
    pub fn from_code(code: u32) -> Self {
        match code {
            1 => Self::NoSuchPeer,
            2 => Self::NotConnected,
            3 => Self::NoSupport,
            4 => Self::NoSelf,
            other => Self::Other(other),
        }
    }

    /// The code on the wire.
    pub fn code(self) -> u32 {
        match self {
            Self::NoSuchPeer => 1,
            Self::NotConnected => 2,
            Self::NoSupport => 3,
            Self::NoSelf => 4,
            Self::Other(code) => code,
        }
    }
}

/// A `ut_holepunch` message. Its binary payload: message type (1 byte), address type (0
/// IPv4, 1 IPv6), address (4 or 16 bytes), port (2 bytes), error code (4 bytes, 0 unless
/// an error); all big-endian.
///
/// ```
/// use fxtor_proto::wire::extension::{HolepunchError, HolepunchMessage};
///
/// let target = "192.0.2.1:6881".parse().unwrap();
/// let msg = HolepunchMessage::Error { addr: target, error: HolepunchError::NotConnected };
/// let bytes = msg.to_bytes();
/// assert_eq!(&bytes[..], &[2, 0, 192, 0, 2, 1, 0x1a, 0xe1, 0, 0, 0, 2]);
/// assert_eq!(HolepunchMessage::parse(&bytes), Ok(msg));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum HolepunchMessage {
    /// Type 0, to the relaying peer: connect me with the peer at `addr`.
    Rendezvous(SocketAddr),
    /// Type 1, from the relaying peer: start a uTP connection to `addr`.
    Connect(SocketAddr),
    /// Type 2, from the relaying peer: the rendezvous with `addr` failed.
    Error {
        /// The target of the failed rendezvous.
        addr: SocketAddr,
        /// Why it failed.
        error: HolepunchError,
    },
}

impl HolepunchMessage {
    /// The endpoint the message is about.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Self::Rendezvous(addr) | Self::Connect(addr) | Self::Error { addr, .. } => *addr,
        }
    }

    /// The payload's length: 12 bytes for an IPv4 endpoint, 24 for IPv6.
    pub fn encoded_len(&self) -> usize {
        match self.addr() {
            SocketAddr::V4(_) => 12,
            SocketAddr::V6(_) => 24,
        }
    }

    /// Parses a `ut_holepunch` payload. The error code of a rendezvous or connect message,
    /// which should be 0, is not checked.
    pub fn parse(payload: &[u8]) -> Result<Self, ExtensionError> {
        let [msg_type, addr_type, rest @ ..] = payload else {
            return Err(wrong_length(12, payload.len()));
        };
        let (ip, rest) = match *addr_type {
            0 => {
                let (ip, rest) = rest
                    .split_first_chunk::<4>()
                    .ok_or(wrong_length(12, payload.len()))?;
                (IpAddr::V4(Ipv4Addr::from(*ip)), rest)
            }
            1 => {
                let (ip, rest) = rest
                    .split_first_chunk::<16>()
                    .ok_or(wrong_length(24, payload.len()))?;
                (IpAddr::V6(Ipv6Addr::from(*ip)), rest)
            }
            _ => {
                return Err(ExtensionError::InvalidValue {
                    extension: UT_HOLEPUNCH,
                    key: "addr_type",
                    problem: "is neither 0 (IPv4) nor 1 (IPv6)",
                })
            }
        };
        let expected = if ip.is_ipv4() { 12 } else { 24 };
        let Ok([p0, p1, e0, e1, e2, e3]) = <[u8; 6]>::try_from(rest) else {
            return Err(wrong_length(expected, payload.len()));
        };
        let addr = SocketAddr::new(ip, u16::from_be_bytes([p0, p1]));
        let code = u32::from_be_bytes([e0, e1, e2, e3]);
        match msg_type {
            0 => Ok(Self::Rendezvous(addr)),
            1 => Ok(Self::Connect(addr)),
            2 => Ok(Self::Error {
                addr,
                error: HolepunchError::from_code(code),
            }),
            &other => Err(ExtensionError::UnknownMessageType {
                extension: UT_HOLEPUNCH,
                msg_type: i64::from(other),
            }),
        }
    }

    /// Appends the payload to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        let (msg_type, code) = match self {
            Self::Rendezvous(_) => (0, 0),
            Self::Connect(_) => (1, 0),
            Self::Error { error, .. } => (2, error.code()),
        };
        out.put_u8(msg_type);
        match self.addr().ip() {
            IpAddr::V4(ip) => {
                out.put_u8(0);
                out.put_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.put_u8(1);
                out.put_slice(&ip.octets());
            }
        }
        out.put_u16(self.addr().port());
        out.put_u32(code);
    }

    /// The payload in a buffer of its own.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode(&mut out);
        out.into()
    }
}

fn wrong_length(expected: usize, actual: usize) -> ExtensionError {
    ExtensionError::WrongLength {
        extension: UT_HOLEPUNCH,
        expected,
        actual,
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::arb_socket_addr;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_type_exact_bytes() {
        let v4: SocketAddr = "1.2.3.4:258".parse().unwrap();
        let v6: SocketAddr = "[::1]:258".parse().unwrap();
        let cases = [
            (
                HolepunchMessage::Rendezvous(v4),
                vec![0, 0, 1, 2, 3, 4, 1, 2, 0, 0, 0, 0],
            ),
            (
                HolepunchMessage::Connect(v4),
                vec![1, 0, 1, 2, 3, 4, 1, 2, 0, 0, 0, 0],
            ),
            (
                HolepunchMessage::Error {
                    addr: v4,
                    error: HolepunchError::NoSelf,
                },
                vec![2, 0, 1, 2, 3, 4, 1, 2, 0, 0, 0, 4],
            ),
            (
                HolepunchMessage::Connect(v6),
                [
                    &[1, 1][..],
                    &Ipv6Addr::LOCALHOST.octets(),
                    &[1, 2, 0, 0, 0, 0],
                ]
                .concat(),
            ),
        ];
        for (msg, bytes) in cases {
            assert_eq!(&msg.to_bytes()[..], &bytes[..], "{msg:?}");
            assert_eq!(msg.encoded_len(), bytes.len());
            assert_eq!(HolepunchMessage::parse(&bytes), Ok(msg));
        }
    }

    #[test]
    fn error_codes() {
        for (code, error) in [
            (1, HolepunchError::NoSuchPeer),
            (2, HolepunchError::NotConnected),
            (3, HolepunchError::NoSupport),
            (4, HolepunchError::NoSelf),
            (9, HolepunchError::Other(9)),
        ] {
            assert_eq!(HolepunchError::from_code(code), error);
            assert_eq!(error.code(), code);
        }
    }

    #[test]
    fn malformed_payloads() {
        assert_eq!(
            HolepunchMessage::parse(&[0, 0, 1, 2, 3, 4, 1, 2, 0, 0, 0]),
            Err(wrong_length(12, 11))
        );
        assert_eq!(
            HolepunchMessage::parse(&[0, 1, 1, 2, 3, 4, 1, 2, 0, 0, 0, 0]),
            Err(wrong_length(24, 12))
        );
        assert_eq!(HolepunchMessage::parse(&[0]), Err(wrong_length(12, 1)));
        assert!(matches!(
            HolepunchMessage::parse(&[0, 2, 1, 2, 3, 4, 1, 2, 0, 0, 0, 0]),
            Err(ExtensionError::InvalidValue {
                key: "addr_type",
                ..
            })
        ));
        assert!(matches!(
            HolepunchMessage::parse(&[3, 0, 1, 2, 3, 4, 1, 2, 0, 0, 0, 0]),
            Err(ExtensionError::UnknownMessageType { msg_type: 3, .. })
        ));
    }

    fn arb_message() -> impl Strategy<Value = HolepunchMessage> {
        prop_oneof![
            arb_socket_addr().prop_map(HolepunchMessage::Rendezvous),
            arb_socket_addr().prop_map(HolepunchMessage::Connect),
            (arb_socket_addr(), any::<u32>()).prop_map(|(addr, code)| HolepunchMessage::Error {
                addr,
                error: HolepunchError::from_code(code),
            }),
        ]
    }

    proptest! {
        #[test]
        fn encode_then_parse_is_identity(msg in arb_message()) {
            prop_assert_eq!(HolepunchMessage::parse(&msg.to_bytes()), Ok(msg));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..30)) {
            let _ = HolepunchMessage::parse(&bytes);
        }
    }
}
