//! BEP11 `ut_pex`: peer exchange.

use std::fmt;
use std::ops::BitOr;

use bytes::{BufMut, Bytes};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::{decode_whole_dict, dict_of, ExtensionError, UT_PEX};
use crate::bencode::{write_bytes, Dict};

/// Six keys of strings, and a few more a client might add.
const MAX_VALUES: usize = 64;

const V4_LEN: usize = 6;
const V6_LEN: usize = 18;

/// What a PEX message says about a peer (BEP11's flag byte).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// No flag.
    pub const NONE: Self = Self(0);
    /// `0x01`: the peer prefers encrypted connections.
    pub const PREFERS_ENCRYPTION: Self = Self(0x01);
    /// `0x02`: the peer is a seed, or only uploads.
    pub const SEED: Self = Self(0x02);
    /// `0x04`: the peer supports uTP.
    pub const UTP: Self = Self(0x04);
    /// `0x08`: the peer supports `ut_holepunch`.
    pub const HOLEPUNCH: Self = Self(0x08);
    /// `0x10`: the connection to the peer was outgoing, so the peer is reachable.
    pub const OUTGOING: Self = Self(0x10);

    const NAMED: [(Self, &'static str); 5] = [
        (Self::PREFERS_ENCRYPTION, "PREFERS_ENCRYPTION"),
        (Self::SEED, "SEED"),
        (Self::UTP, "UTP"),
        (Self::HOLEPUNCH, "HOLEPUNCH"),
        (Self::OUTGOING, "OUTGOING"),
    ];

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// The flags set in either.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl BitOr for PexFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl fmt::Debug for PexFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Self::NAMED
            .iter()
            .filter(|(flag, _)| self.contains(*flag))
            .map(|(_, name)| (*name).to_owned())
            .collect();
        let known = Self::NAMED.iter().fold(0, |acc, (flag, _)| acc | flag.0);
        if self.0 & !known != 0 {
            parts.push(format!("{:#04x}", self.0 & !known));
        }
        write!(f, "PexFlags({})", parts.join(" | "))
    }
}

/// A peer announced as connected.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PexPeer {
    /// Its address.
    pub addr: SocketAddr,
    /// What the sender knows about it.
    pub flags: PexFlags,
}

/// A `ut_pex` message: peers the sender has connected to and disconnected from since its
/// last message.
///
/// On the wire IPv4 and IPv6 peers go in separate lists (`added`/`added6`,
/// `dropped`/`dropped6`); here they share one list, IPv4 peers first after parsing.
/// Flags (`added.f`) that do not match their list one for one are ignored.
///
/// ```
/// use core::net::SocketAddr;
/// use fxtor_proto::wire::extension::{PexFlags, PexMessage, PexPeer};
///
/// let addr: SocketAddr = "10.0.0.1:6881".parse().unwrap();
/// let msg = PexMessage {
///     added: vec![PexPeer { addr, flags: PexFlags::SEED | PexFlags::UTP }],
///     dropped: vec![],
/// };
/// let bytes = msg.to_bytes();
/// assert_eq!(&bytes[..], b"d5:added6:\x0a\x00\x00\x01\x1a\xe17:added.f1:\x06e");
/// assert_eq!(PexMessage::parse(&bytes), Ok(msg));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PexMessage {
    /// Peers the sender is now connected to.
    pub added: Vec<PexPeer>,
    /// Peers the sender is no longer connected to.
    pub dropped: Vec<SocketAddr>,
}

impl PexMessage {
    /// The most peers accepted in one message, separately for `added` and `dropped` (both
    /// families together); [`encode`](Self::encode) writes no more than this either.
    pub const MAX_PEERS: usize = 200;

    /// BEP11's advice for every message but the first: at most 50 added and 50 dropped.
    pub const ADVISED_MAX_PEERS: usize = 50;

    /// Parses a `ut_pex` payload.
    pub fn parse(payload: &[u8]) -> Result<Self, ExtensionError> {
        let document = decode_whole_dict(UT_PEX, payload, MAX_VALUES)?;
        let dict = dict_of(&document);
        let added4 = compact_list(dict, "added", V4_LEN)?;
        let added6 = compact_list(dict, "added6", V6_LEN)?;
        let dropped4 = compact_list(dict, "dropped", V4_LEN)?;
        let dropped6 = compact_list(dict, "dropped6", V6_LEN)?;
        check_count("added", added4.len() / V4_LEN + added6.len() / V6_LEN)?;
        check_count("dropped", dropped4.len() / V4_LEN + dropped6.len() / V6_LEN)?;

        let mut added = Vec::new();
        for (list, flags_key, len) in [(added4, "added.f", V4_LEN), (added6, "added6.f", V6_LEN)] {
            let count = list.len() / len;
            let flags = dict.get_bytes(flags_key).filter(|f| f.len() == count);
            for (i, entry) in list.chunks_exact(len).enumerate() {
                let flags = flags
                    .and_then(|f| f.get(i))
                    .copied()
                    .map_or(PexFlags::NONE, PexFlags);
                if let Some(addr) = compact_addr(entry) {
                    added.push(PexPeer { addr, flags });
                }
            }
        }
        let dropped = dropped4
            .chunks_exact(V4_LEN)
            .chain(dropped6.chunks_exact(V6_LEN))
            .filter_map(compact_addr)
            .collect();
        Ok(Self { added, dropped })
    }

    /// Appends the payload (a canonical bencoded dictionary) to `out`: the first
    /// [`MAX_PEERS`](Self::MAX_PEERS) added and dropped peers, with flags for every added
    /// one. Use [`batches`](Self::batches) to keep to BEP11's advice of 50.
    pub fn encode(&self, out: &mut impl BufMut) {
        let added = &self.added[..self.added.len().min(Self::MAX_PEERS)];
        let dropped = &self.dropped[..self.dropped.len().min(Self::MAX_PEERS)];
        let (mut added4, mut flags4, mut added6, mut flags6) = (vec![], vec![], vec![], vec![]);
        for peer in added {
            match peer.addr {
                SocketAddr::V4(_) => {
                    put_compact(&mut added4, peer.addr);
                    flags4.push(peer.flags.0);
                }
                SocketAddr::V6(_) => {
                    put_compact(&mut added6, peer.addr);
                    flags6.push(peer.flags.0);
                }
            }
        }
        let (mut dropped4, mut dropped6) = (vec![], vec![]);
        for &addr in dropped {
            match addr {
                SocketAddr::V4(_) => put_compact(&mut dropped4, addr),
                SocketAddr::V6(_) => put_compact(&mut dropped6, addr),
            }
        }
        out.put_u8(b'd');
        for (key, value) in [
            ("added", added4),
            ("added.f", flags4),
            ("added6", added6),
            ("added6.f", flags6),
            ("dropped", dropped4),
            ("dropped6", dropped6),
        ] {
            if !value.is_empty() {
                write_bytes(out, key.as_bytes());
                write_bytes(out, &value);
            }
        }
        out.put_u8(b'e');
    }

    /// The payload in a buffer of its own.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::new();
        self.encode(&mut out);
        out.into()
    }

    /// Splits changes into messages of at most [`ADVISED_MAX_PEERS`](Self::ADVISED_MAX_PEERS)
    /// added and as many dropped peers each; none if there are no changes.
    pub fn batches(added: &[PexPeer], dropped: &[SocketAddr]) -> Vec<Self> {
        let mut added = added.chunks(Self::ADVISED_MAX_PEERS);
        let mut dropped = dropped.chunks(Self::ADVISED_MAX_PEERS);
        let mut out = Vec::new();
        loop {
            match (added.next(), dropped.next()) {
                (None, None) => return out,
                (a, d) => out.push(Self {
                    added: a.unwrap_or_default().to_vec(),
                    dropped: d.unwrap_or_default().to_vec(),
                }),
            }
        }
    }
}

/// The compact peer list under `key`: empty if absent, an error if its length is not a
/// whole number of entries.
fn compact_list<'a>(
    dict: Dict<'a>,
    key: &'static str,
    entry_len: usize,
) -> Result<&'a [u8], ExtensionError> {
    let Some(value) = dict.get(key) else {
        return Ok(&[]);
    };
    let bytes = value.as_bytes().ok_or(ExtensionError::MissingKey {
        extension: UT_PEX,
        key,
        expected: "a string of compact peers",
    })?;
    if bytes.len() % entry_len != 0 {
        return Err(ExtensionError::InvalidValue {
            extension: UT_PEX,
            key,
            problem: "is not a whole number of compact peers",
        });
    }
    Ok(bytes)
}

fn check_count(key: &'static str, count: usize) -> Result<(), ExtensionError> {
    if count > PexMessage::MAX_PEERS {
        return Err(ExtensionError::TooManyPeers {
            extension: UT_PEX,
            key,
            count,
            max: PexMessage::MAX_PEERS,
        });
    }
    Ok(())
}

/// A compact address: 4 bytes of IPv4 or 16 of IPv6, then a big-endian port.
fn compact_addr(entry: &[u8]) -> Option<SocketAddr> {
    let (ip, port) = entry.split_last_chunk::<2>()?;
    let port = u16::from_be_bytes(*port);
    let ip = match ip.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?)),
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

fn put_compact(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(a) => out.extend_from_slice(&a.ip().octets()),
        SocketAddr::V6(a) => out.extend_from_slice(&a.ip().octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::super::test_support::arb_socket_addr;
    use super::*;
    use crate::bencode::{self, Mode};
    use proptest::prelude::*;

    fn v4(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn exact_bytes_both_families() {
        let msg = PexMessage {
            added: vec![
                PexPeer {
                    addr: v4("1.2.3.4:258"),
                    flags: PexFlags::OUTGOING,
                },
                PexPeer {
                    addr: v4("[::1]:1"),
                    flags: PexFlags::HOLEPUNCH | PexFlags::PREFERS_ENCRYPTION,
                },
            ],
            dropped: vec![v4("5.6.7.8:2"), v4("[::2]:3")],
        };
        let mut expected = b"d5:added6:\x01\x02\x03\x04\x01\x027:added.f1:\x106:added618:".to_vec();
        expected.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        expected.extend_from_slice(b"\x00\x018:added6.f1:\x097:dropped6:\x05\x06\x07\x08\x00\x02");
        expected.extend_from_slice(b"8:dropped618:");
        expected.extend_from_slice(&"::2".parse::<Ipv6Addr>().unwrap().octets());
        expected.extend_from_slice(b"\x00\x03e");
        let bytes = msg.to_bytes();
        assert_eq!(&bytes[..], &expected[..]);
        assert!(bencode::decode(&bytes, Mode::Strict).is_ok());
        assert_eq!(PexMessage::parse(&bytes), Ok(msg));
    }

    #[test]
    fn missing_or_mismatched_flags_are_ignored() {
        let msg = PexMessage::parse(
            b"d5:added12:\x01\x02\x03\x04\x00\x01\x01\x02\x03\x05\x00\x017:added.f1:\x02e",
        )
        .unwrap();
        assert_eq!(msg.added.len(), 2);
        assert!(msg.added.iter().all(|p| p.flags == PexFlags::NONE));
    }

    #[test]
    fn malformed_lists_are_refused() {
        assert!(matches!(
            PexMessage::parse(b"d5:added5:abcdee"),
            Err(ExtensionError::InvalidValue { key: "added", .. })
        ));
        assert!(matches!(
            PexMessage::parse(b"d7:droppedi1ee"),
            Err(ExtensionError::MissingKey { key: "dropped", .. })
        ));
        assert!(matches!(
            PexMessage::parse(b"d6:added617:aaaaaaaaaaaaaaaaae"),
            Err(ExtensionError::InvalidValue { key: "added6", .. })
        ));
    }

    #[test]
    fn too_many_peers_are_refused() {
        let mut payload = b"d5:added1206:".to_vec();
        payload.extend(std::iter::repeat_n(1u8, 1206));
        payload.extend_from_slice(b"6:added618:");
        payload.extend(std::iter::repeat_n(2u8, 18));
        payload.push(b'e');
        let err = PexMessage::parse(&payload).unwrap_err();
        assert_eq!(
            err,
            ExtensionError::TooManyPeers {
                extension: UT_PEX,
                key: "added",
                count: 202,
                max: 200
            }
        );
        // Exactly 200 is fine.
        let mut payload = b"d7:dropped1200:".to_vec();
        payload.extend(std::iter::repeat_n(1u8, 1200));
        payload.push(b'e');
        assert_eq!(PexMessage::parse(&payload).unwrap().dropped.len(), 200);
    }

    #[test]
    fn encoding_is_capped_and_batches_follow_the_advice() {
        let peers: Vec<PexPeer> = (0..230u16)
            .map(|port| PexPeer {
                addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
                flags: PexFlags::NONE,
            })
            .collect();
        let big = PexMessage {
            added: peers.clone(),
            dropped: vec![],
        };
        let parsed = PexMessage::parse(&big.to_bytes()).unwrap();
        assert_eq!(parsed.added, peers[..200]);

        let dropped: Vec<SocketAddr> = peers.iter().take(60).map(|p| p.addr).collect();
        let batches = PexMessage::batches(&peers, &dropped);
        assert_eq!(batches.len(), 5);
        assert!(batches
            .iter()
            .all(|b| b.added.len() <= 50 && b.dropped.len() <= 50));
        assert_eq!(batches[1].dropped.len(), 10);
        assert!(batches[2].dropped.is_empty());
        assert_eq!(batches.iter().map(|b| b.added.len()).sum::<usize>(), 230);
        assert!(PexMessage::batches(&[], &[]).is_empty());
    }

    #[test]
    fn flags_debug() {
        assert_eq!(
            format!("{:?}", PexFlags::SEED | PexFlags::UTP | PexFlags(0x80)),
            "PexFlags(SEED | UTP | 0x80)"
        );
    }

    fn arb_pex() -> impl Strategy<Value = PexMessage> {
        let peer = (arb_socket_addr(), any::<u8>()).prop_map(|(addr, f)| PexPeer {
            addr,
            flags: PexFlags(f),
        });
        (
            proptest::collection::vec(peer, 0..60),
            proptest::collection::vec(arb_socket_addr(), 0..60),
        )
            .prop_map(|(mut added, mut dropped)| {
                // Parsing gives IPv4 peers first.
                added.sort_by_key(|p| p.addr.is_ipv6());
                dropped.sort_by_key(|a| a.is_ipv6());
                PexMessage { added, dropped }
            })
    }

    proptest! {
        #[test]
        fn encode_then_parse_is_identity(msg in arb_pex()) {
            let bytes = msg.to_bytes();
            prop_assert!(bencode::decode(&bytes, Mode::Strict).is_ok());
            prop_assert_eq!(PexMessage::parse(&bytes), Ok(msg));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = PexMessage::parse(&bytes);
        }

        #[test]
        fn arbitrary_lists_never_panic(
            added in proptest::collection::vec(any::<u8>(), 0..100),
            flags in proptest::collection::vec(any::<u8>(), 0..20),
        ) {
            let mut payload = format!("d5:added{}:", added.len()).into_bytes();
            payload.extend_from_slice(&added);
            payload.extend_from_slice(format!("7:added.f{}:", flags.len()).as_bytes());
            payload.extend_from_slice(&flags);
            payload.push(b'e');
            let _ = PexMessage::parse(&payload);
        }
    }
}
