//! Node ids: 160-bit names in the DHT's XOR metric, and BEP42's tie between a node's id and
//! its IP address.

use core::fmt;
use core::net::IpAddr;

use crate::rng::Rng;

/// A DHT node id or lookup target: 160 bits compared by XOR distance (BEP5).
///
/// Info-hashes are targets in the same space: a v1 info-hash as is, a v2 one truncated to
/// 20 bytes ([`InfoHashV2::truncated`](crate::InfoHashV2::truncated)).
///
/// ```
/// use fxtor_proto::dht::NodeId;
///
/// let a = NodeId([0u8; 20]);
/// let mut b = [0u8; 20];
/// b[0] = 0x10;
/// let b = NodeId(b);
/// assert_eq!(a.distance(&b).0[0], 0x10);
/// assert_eq!(a.common_prefix_len(&b), 3);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub [u8; 20]);

/// The XOR of two ids: the smaller, the closer (BEP5's metric).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Distance(pub [u8; 20]);

impl NodeId {
    /// The id's length in bytes.
    pub const LEN: usize = 20;

    /// Reads an id from a slice of exactly 20 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 20]>::try_from(bytes).ok().map(Self)
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// The XOR distance between two ids.
    pub fn distance(&self, other: &NodeId) -> Distance {
        let mut out = [0u8; 20];
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            *o = a ^ b;
        }
        Distance(out)
    }

    /// How many leading bits the two ids share (160 when equal).
    pub fn common_prefix_len(&self, other: &NodeId) -> usize {
        for (i, (a, b)) in self.0.iter().zip(other.0.iter()).enumerate() {
            let x = a ^ b;
            if x != 0 {
                return i * 8 + x.leading_zeros() as usize;
            }
        }
        160
    }

    /// The value of bit `index` (0 is the most significant bit of the first byte).
    pub(crate) fn bit(&self, index: usize) -> bool {
        self.0
            .get(index / 8)
            .is_some_and(|byte| byte & (0x80 >> (index % 8)) != 0)
    }

    /// A random id.
    pub(crate) fn random(rng: &mut Rng) -> Self {
        let mut id = [0u8; 20];
        for chunk in id.chunks_mut(8) {
            let bytes = rng.next_u64().to_be_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Self(id)
    }

    /// A random id that shares exactly `prefix_len` leading bits with `self` (all 160 bits
    /// when `prefix_len` is 160); with `exact == false`, at least `prefix_len`.
    pub(crate) fn random_with_prefix(&self, prefix_len: usize, exact: bool, rng: &mut Rng) -> Self {
        let prefix_len = prefix_len.min(160);
        let mut out = Self::random(rng);
        for bit in 0..prefix_len {
            out.set_bit(bit, self.bit(bit));
        }
        if exact && prefix_len < 160 {
            out.set_bit(prefix_len, !self.bit(prefix_len));
        }
        out
    }

    fn set_bit(&mut self, index: usize, value: bool) {
        if let Some(byte) = self.0.get_mut(index / 8) {
            let mask = 0x80 >> (index % 8);
            if value {
                *byte |= mask;
            } else {
                *byte &= !mask;
            }
        }
    }

    /// A BEP42 id for a node whose external address is `ip`: its first 21 bits come from
    /// the CRC32C of the masked address and `rand & 7`, its last byte is `rand`, the other
    /// bits are `random`'s.
    ///
    /// ```
    /// use fxtor_proto::dht::NodeId;
    ///
    /// let ip = "124.31.75.21".parse().unwrap();
    /// let id = NodeId::secure(ip, 1, NodeId([0x55; 20]));
    /// assert_eq!(id.0[..3], [0x5f, 0xbf, 0xbd]);
    /// assert_eq!(id.0[19], 1);
    /// assert!(id.is_secure_for(ip));
    /// ```
    pub fn secure(ip: IpAddr, rand: u8, random: NodeId) -> Self {
        let crc = secure_prefix(ip, rand);
        let mut id = random;
        let [c0, c1, c2, _] = crc.to_be_bytes();
        id.0[0] = c0;
        id.0[1] = c1;
        id.0[2] = (c2 & 0xf8) | (id.0[2] & 0x07);
        id.0[19] = rand;
        id
    }

    /// Whether the id is valid for a node at `ip` under BEP42. Local and private addresses
    /// (loopback, RFC 1918, link-local, unique local) are exempt and always valid.
    pub fn is_secure_for(&self, ip: IpAddr) -> bool {
        if is_exempt(ip) {
            return true;
        }
        let crc = secure_prefix(ip, self.0[19]);
        let [c0, c1, c2, _] = crc.to_be_bytes();
        self.0[0] == c0 && self.0[1] == c1 && (self.0[2] & 0xf8) == (c2 & 0xf8)
    }
}

/// The CRC32C BEP42 takes the first 21 bits of an id from.
fn secure_prefix(ip: IpAddr, rand: u8) -> u32 {
    let r = rand & 0x07;
    match ip {
        IpAddr::V4(v4) => {
            let mut octets = v4.octets();
            for (o, m) in octets.iter_mut().zip([0x03, 0x0f, 0x3f, 0xff]) {
                *o &= m;
            }
            octets[0] |= r << 5;
            crc32c(&octets)
        }
        IpAddr::V6(v6) => {
            let mut octets = [0u8; 8];
            octets.copy_from_slice(&v6.octets()[..8]);
            for (o, m) in octets
                .iter_mut()
                .zip([0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff])
            {
                *o &= m;
            }
            octets[0] |= r << 5;
            crc32c(&octets)
        }
    }
}

/// Addresses BEP42 does not apply to: nodes there cannot be told apart by address.
pub(crate) fn is_exempt(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

/// CRC32C (Castagnoli), reflected, as BEP42 uses it.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        // The index is a `u8`, and the table has 256 entries.
        crc = CRC32C_TABLE[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&data_encoding::HEXLOWER.encode(&self.0))
    }
}

impl From<crate::InfoHashV1> for NodeId {
    fn from(hash: crate::InfoHashV1) -> Self {
        Self(hash.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn crc32c_known_answer() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn bep42_test_vectors() {
        // IP, rand, the BEP's example id (its first three bytes and last byte matter).
        let vectors: [([u8; 4], u8, &str); 5] = [
            (
                [124, 31, 75, 21],
                1,
                "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401",
            ),
            (
                [21, 75, 31, 124],
                86,
                "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256",
            ),
            (
                [65, 23, 51, 170],
                22,
                "a5d43220bc8f112a3d426c84764f8c2a1150e616",
            ),
            (
                [84, 124, 73, 14],
                65,
                "1b0321dd1bb1fe518101ceef99462b947a01ff41",
            ),
            (
                [43, 213, 53, 83],
                90,
                "e56f6cbf5b7c4be0237986d5243b87aa6d51305a",
            ),
        ];
        let mut rng = Rng::new(9);
        for (ip, rand, hex) in vectors {
            let ip = IpAddr::V4(Ipv4Addr::from(ip));
            let example =
                NodeId::from_slice(&data_encoding::HEXLOWER.decode(hex.as_bytes()).unwrap())
                    .unwrap();
            assert!(example.is_secure_for(ip), "{ip}");
            let ours = NodeId::secure(ip, rand, NodeId::random(&mut rng));
            assert_eq!(ours.0[..2], example.0[..2], "{ip}");
            assert_eq!(ours.0[2] & 0xf8, example.0[2] & 0xf8, "{ip}");
            assert_eq!(ours.0[19], rand);
            assert!(ours.is_secure_for(ip));
            // Another address does not accept it.
            let other = IpAddr::V4(Ipv4Addr::new(ip_first(ip) ^ 0x80, 1, 2, 3));
            assert!(!example.is_secure_for(other), "{ip}");
        }
    }

    fn ip_first(ip: IpAddr) -> u8 {
        match ip {
            IpAddr::V4(v4) => v4.octets()[0],
            IpAddr::V6(_) => 0,
        }
    }

    #[test]
    fn ipv6_ids_and_exempt_addresses() {
        let mut rng = Rng::new(1);
        let ip: IpAddr = "2001:db8:1:2::5".parse().unwrap();
        let id = NodeId::secure(ip, 200, NodeId::random(&mut rng));
        assert!(id.is_secure_for(ip));
        assert!(!NodeId([0; 20]).is_secure_for(ip) || NodeId([0; 20]).0[..3] == id.0[..3]);
        for local in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.9",
            "172.16.4.4",
            "::1",
            "fd00::1",
        ] {
            assert!(
                NodeId([0xab; 20]).is_secure_for(local.parse().unwrap()),
                "{local}"
            );
        }
    }

    #[test]
    fn distance_and_prefixes() {
        let mut rng = Rng::new(4);
        let own = NodeId::random(&mut rng);
        assert_eq!(own.common_prefix_len(&own), 160);
        assert_eq!(own.distance(&own), Distance([0; 20]));
        for prefix in [0, 1, 7, 8, 9, 100, 159] {
            let id = own.random_with_prefix(prefix, true, &mut rng);
            assert_eq!(own.common_prefix_len(&id), prefix);
            let at_least = own.random_with_prefix(prefix, false, &mut rng);
            assert!(own.common_prefix_len(&at_least) >= prefix);
        }
        let a = NodeId([0; 20]);
        let mut near = [0u8; 20];
        near[19] = 1;
        let mut far = [0u8; 20];
        far[0] = 1;
        assert!(a.distance(&NodeId(near)) < a.distance(&NodeId(far)));
    }
}
