//! The handshake that opens every peer connection (BEP3) and its reserved bits (BEP4).

use std::fmt;
use std::ops::{BitAnd, BitOr, BitOrAssign};

use bytes::{Buf, BufMut, BytesMut};

use super::WireError;
use crate::peer_id::PeerId;
use crate::InfoHashV1;

/// What a handshake starts with: the length of the protocol name, then the name.
pub const PROTOCOL_PREFIX: &[u8; 20] = b"\x13BitTorrent protocol";

/// The eight reserved bytes of the handshake, in which each side announces the extensions
/// it supports (BEP4). An extension is on for a connection when both sides set its bit
/// (see [`intersection`](Self::intersection)).
///
/// ```
/// use fxtor_proto::wire::ReservedBits;
/// let ours = ReservedBits::EXTENSION_PROTOCOL | ReservedBits::FAST | ReservedBits::DHT;
/// assert_eq!(ours.0, [0, 0, 0, 0, 0, 0x10, 0, 0x05]);
/// let theirs = ReservedBits::FAST;
/// assert!(ours.intersection(theirs).contains(ReservedBits::FAST));
/// assert!(!ours.intersection(theirs).contains(ReservedBits::EXTENSION_PROTOCOL));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReservedBits(pub [u8; 8]);

impl ReservedBits {
    /// No bit set.
    pub const NONE: Self = Self([0; 8]);
    /// BEP10 extension protocol: byte 5, `0x10`.
    pub const EXTENSION_PROTOCOL: Self = Self::bit(5, 0x10);
    /// BEP6 fast extension: byte 7, `0x04`.
    pub const FAST: Self = Self::bit(7, 0x04);
    /// BEP5 DHT (the peer sends a `port` message): byte 7, `0x01`.
    pub const DHT: Self = Self::bit(7, 0x01);
    /// BEP52 upgrade of a hybrid torrent's connection to v2: byte 7, `0x10`.
    pub const V2_UPGRADE: Self = Self::bit(7, 0x10);

    const NAMED: [(Self, &'static str); 4] = [
        (Self::EXTENSION_PROTOCOL, "EXTENSION_PROTOCOL"),
        (Self::FAST, "FAST"),
        (Self::DHT, "DHT"),
        (Self::V2_UPGRADE, "V2_UPGRADE"),
    ];

    const fn bit(byte: usize, mask: u8) -> Self {
        let mut bits = [0; 8];
        bits[byte] = mask;
        Self(bits)
    }

    /// Whether every bit of `other` is set in `self`.
    pub fn contains(self, other: Self) -> bool {
        self.intersection(other) == other
    }

    /// The bits set in either.
    pub const fn union(self, other: Self) -> Self {
        let mut bits = self.0;
        let mut i = 0;
        while i < 8 {
            bits[i] |= other.0[i];
            i += 1;
        }
        Self(bits)
    }

    /// The bits set in both: the extensions a connection can use.
    pub fn intersection(self, other: Self) -> Self {
        Self(std::array::from_fn(|i| self.0[i] & other.0[i]))
    }

    /// Sets `other`'s bits.
    pub fn insert(&mut self, other: Self) {
        *self = self.union(other);
    }

    /// Clears `other`'s bits.
    pub fn remove(&mut self, other: Self) {
        self.0 = std::array::from_fn(|i| self.0[i] & !other.0[i]);
    }
}

impl BitOr for ReservedBits {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl BitOrAssign for ReservedBits {
    fn bitor_assign(&mut self, rhs: Self) {
        self.insert(rhs);
    }
}

impl BitAnd for ReservedBits {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        self.intersection(rhs)
    }
}

impl fmt::Debug for ReservedBits {
    /// The named bits, then any others as hex: `ReservedBits(FAST | DHT | 0x80...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = *self;
        let mut parts: Vec<String> = Vec::new();
        for (flag, name) in Self::NAMED {
            if self.contains(flag) {
                parts.push(name.to_owned());
                rest.remove(flag);
            }
        }
        if rest != Self::NONE {
            parts.push(format!("0x{}", data_encoding::HEXLOWER.encode(&rest.0)));
        }
        write!(f, "ReservedBits({})", parts.join(" | "))
    }
}

/// The 68-byte handshake: protocol name, reserved bits, info-hash, peer id.
///
/// ```
/// use bytes::BytesMut;
/// use fxtor_proto::peer_id::PeerId;
/// use fxtor_proto::wire::{Handshake, ReservedBits};
/// use fxtor_proto::InfoHashV1;
///
/// let ours = Handshake {
///     reserved: ReservedBits::EXTENSION_PROTOCOL | ReservedBits::FAST,
///     info_hash: InfoHashV1([0xaa; 20]),
///     peer_id: PeerId::fxtor([1; 20]),
/// };
/// let mut buf = BytesMut::new();
/// ours.encode(&mut buf);
/// assert_eq!(buf.len(), Handshake::LEN);
///
/// let mut first_half = buf.split_to(30);
/// assert_eq!(Handshake::decode(&mut first_half), Ok(None));
/// first_half.unsplit(buf);
/// assert_eq!(Handshake::decode(&mut first_half), Ok(Some(ours)));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Handshake {
    /// The extensions the sender supports.
    pub reserved: ReservedBits,
    /// The torrent: its v1 info-hash, or for a v2-only torrent the truncated v2 one.
    pub info_hash: InfoHashV1,
    /// The sender's peer id.
    pub peer_id: PeerId,
}

impl Handshake {
    /// A handshake's length in bytes.
    pub const LEN: usize = 68;

    /// Appends the handshake's 68 bytes to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        out.put_slice(PROTOCOL_PREFIX);
        out.put_slice(&self.reserved.0);
        out.put_slice(self.info_hash.as_bytes());
        out.put_slice(self.peer_id.as_bytes());
    }

    /// Takes a handshake off the front of `buf`: `Ok(None)` until all 68 bytes are there.
    ///
    /// The protocol name is checked as its bytes arrive, so a peer that speaks something
    /// else is refused at once.
    pub fn decode(buf: &mut BytesMut) -> Result<Option<Self>, WireError> {
        check_protocol(buf)?;
        let Some(bytes) = buf.first_chunk::<{ Self::LEN }>() else {
            return Ok(None);
        };
        let handshake = Self::from_bytes(bytes);
        buf.advance(Self::LEN);
        Ok(Some(handshake))
    }

    /// The info-hash from the front of a handshake, once its first 48 bytes are there; for
    /// routing an incoming connection to its torrent before the whole handshake is in.
    pub fn peek_info_hash(buf: &[u8]) -> Result<Option<InfoHashV1>, WireError> {
        check_protocol(buf)?;
        Ok(buf.get(28..48).and_then(InfoHashV1::from_slice))
    }

    fn from_bytes(bytes: &[u8; Self::LEN]) -> Self {
        let (_, rest) = bytes.split_at(PROTOCOL_PREFIX.len());
        let (reserved, rest) = rest.split_at(8);
        let (info_hash, peer_id) = rest.split_at(20);
        let mut handshake = Self {
            reserved: ReservedBits::NONE,
            info_hash: InfoHashV1::default(),
            peer_id: PeerId::default(),
        };
        handshake.reserved.0.copy_from_slice(reserved);
        handshake.info_hash.0.copy_from_slice(info_hash);
        handshake.peer_id.0.copy_from_slice(peer_id);
        handshake
    }
}

/// Checks what has arrived of the protocol name.
fn check_protocol(buf: &[u8]) -> Result<(), WireError> {
    match buf
        .iter()
        .zip(PROTOCOL_PREFIX)
        .enumerate()
        .find(|(_, (got, want))| got != want)
    {
        Some((offset, (&byte, _))) => Err(WireError::BadProtocolString { offset, byte }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Handshake {
        Handshake {
            reserved: ReservedBits::EXTENSION_PROTOCOL | ReservedBits::FAST | ReservedBits::DHT,
            info_hash: InfoHashV1([0xaa; 20]),
            peer_id: PeerId(*b"-FX0100-abcdefghijkl"),
        }
    }

    #[test]
    fn exact_bytes() {
        let mut out = Vec::new();
        sample().encode(&mut out);
        let mut expected = b"\x13BitTorrent protocol".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0x05]);
        expected.extend_from_slice(&[0xaa; 20]);
        expected.extend_from_slice(b"-FX0100-abcdefghijkl");
        assert_eq!(out, expected);
    }

    #[test]
    fn reserved_bit_positions() {
        assert_eq!(ReservedBits::EXTENSION_PROTOCOL.0[5], 0x10);
        assert_eq!(ReservedBits::FAST.0[7], 0x04);
        assert_eq!(ReservedBits::DHT.0[7], 0x01);
        assert_eq!(ReservedBits::V2_UPGRADE.0[7], 0x10);
        let mut bits = ReservedBits::FAST | ReservedBits::V2_UPGRADE;
        assert_eq!(bits.0[7], 0x14);
        bits.remove(ReservedBits::FAST);
        assert_eq!(bits, ReservedBits::V2_UPGRADE);
        bits |= ReservedBits([0x80, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            format!("{bits:?}"),
            "ReservedBits(V2_UPGRADE | 0x8000000000000000)"
        );
        assert_eq!(bits & ReservedBits::V2_UPGRADE, ReservedBits::V2_UPGRADE);
    }

    #[test]
    fn bad_protocol_is_refused_early() {
        let mut buf = BytesMut::from(&b"\x13BitTorrent"[..]);
        assert_eq!(Handshake::decode(&mut buf), Ok(None));
        let mut buf = BytesMut::from(&b"\x13BitTorrent Protocol"[..]);
        assert_eq!(
            Handshake::decode(&mut buf),
            Err(WireError::BadProtocolString {
                offset: 12,
                byte: b'P'
            })
        );
        let mut buf = BytesMut::from(&b"GET / HTTP/1.1"[..]);
        assert!(Handshake::decode(&mut buf).is_err());
    }

    #[test]
    fn leaves_what_follows() {
        let mut buf = BytesMut::new();
        sample().encode(&mut buf);
        buf.extend_from_slice(&[0, 0, 0, 1, 2]);
        assert_eq!(Handshake::peek_info_hash(&buf[..47]), Ok(None));
        assert_eq!(
            Handshake::peek_info_hash(&buf[..48]),
            Ok(Some(InfoHashV1([0xaa; 20])))
        );
        assert_eq!(Handshake::decode(&mut buf), Ok(Some(sample())));
        assert_eq!(&buf[..], &[0, 0, 0, 1, 2]);
    }

    proptest! {
        #[test]
        fn round_trip_at_any_split(
            reserved in any::<[u8; 8]>(),
            info_hash in any::<[u8; 20]>(),
            peer_id in any::<[u8; 20]>(),
            split in 0usize..=68,
        ) {
            let handshake = Handshake {
                reserved: ReservedBits(reserved),
                info_hash: InfoHashV1(info_hash),
                peer_id: PeerId(peer_id),
            };
            let mut all = BytesMut::new();
            handshake.encode(&mut all);
            let rest = all.split_off(split);
            let mut buf = all;
            if split < Handshake::LEN {
                prop_assert_eq!(Handshake::decode(&mut buf), Ok(None));
            }
            buf.unsplit(rest);
            prop_assert_eq!(Handshake::decode(&mut buf), Ok(Some(handshake)));
            prop_assert!(buf.is_empty());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut buf = BytesMut::from(&bytes[..]);
            let _ = Handshake::decode(&mut buf);
            let _ = Handshake::peek_info_hash(&bytes);
        }
    }
}
