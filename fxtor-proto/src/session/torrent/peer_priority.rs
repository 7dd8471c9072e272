//! BEP40 canonical peer priority: a rank both ends of a connection compute alike from
//! their two addresses, so that every peer of a swarm prefers the same connections.

use core::net::{IpAddr, SocketAddr};

/// CRC32-C (Castagnoli, reflected polynomial `0x82F63B78`) of `bytes`.
pub(super) fn crc32c(bytes: &[u8]) -> u32 {
    const POLY: u32 = 0x82F6_3B78;
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (POLY & mask);
        }
    }
    !crc
}

/// The canonical priority of a connection between `ours` and `theirs`: higher is better.
///
/// Both IP addresses are masked (`FF.FF.55.55`, keeping more of the address the longer
/// the prefix they share), sorted and hashed; for one IP address the two ports are
/// hashed instead. Addresses of different families are ranked by the ports as well.
pub(super) fn canonical_priority(ours: SocketAddr, theirs: SocketAddr) -> u32 {
    match (ours.ip(), theirs.ip()) {
        (a, b) if a == b => by_ports(ours.port(), theirs.port()),
        (IpAddr::V4(a), IpAddr::V4(b)) => by_ips(&a.octets(), &b.octets()),
        (IpAddr::V6(a), IpAddr::V6(b)) => by_ips(&a.octets(), &b.octets()),
        _ => by_ports(ours.port(), theirs.port()),
    }
}

fn by_ports(a: u16, b: u16) -> u32 {
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    let mut buf = [0u8; 4];
    buf[..2].copy_from_slice(&low.to_be_bytes());
    buf[2..].copy_from_slice(&high.to_be_bytes());
    crc32c(&buf)
}

/// Masks two addresses of `N` bytes (4 or 16) as BEP40 says and hashes them, sorted.
fn by_ips<const N: usize>(a: &[u8; N], b: &[u8; N]) -> u32 {
    // Bytes that are always kept whole: the /16 of IPv4, the /48 of IPv6.
    let whole = if N == 4 { 2 } else { 6 };
    let shared = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let mut mask = [0x55u8; N];
    let keep = whole.max(shared + 1).min(N);
    for m in &mut mask[..keep] {
        *m = 0xff;
    }
    // Within the same last network (/24 for IPv4) the whole address is used.
    if shared + 1 >= N {
        mask = [0xff; N];
    }
    let mut buf = [0u8; 32];
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    for i in 0..N {
        buf[i] = first[i] & mask[i];
        buf[N + i] = second[i] & mask[i];
    }
    crc32c(&buf[..2 * N])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn bep40_test_vectors() {
        // "crc32-c(624C14007BD50000) or ec2d7224"
        assert_eq!(
            crc32c(&[0x62, 0x4c, 0x14, 0x00, 0x7b, 0xd5, 0x00, 0x00]),
            0xec2d_7224
        );
        assert_eq!(
            canonical_priority(addr("123.213.32.10:1"), addr("98.76.54.32:2")),
            0xec2d_7224
        );
        // "crc32-c(7BD5200A7BD520EA) or 99568189"
        assert_eq!(
            canonical_priority(addr("123.213.32.10:1"), addr("123.213.32.234:2")),
            0x9956_8189
        );
    }

    #[test]
    fn both_ends_agree() {
        for (a, b) in [
            ("123.213.32.10:6881", "98.76.54.32:51413"),
            ("10.0.0.1:1", "10.0.7.1:2"),
            ("127.0.0.1:6881", "127.0.0.1:6882"),
            ("[2001:db8::1]:1", "[2001:db8:1::2]:2"),
        ] {
            assert_eq!(
                canonical_priority(addr(a), addr(b)),
                canonical_priority(addr(b), addr(a))
            );
        }
    }

    #[test]
    fn same_ip_ranks_by_ports() {
        let p = canonical_priority(addr("127.0.0.1:6881"), addr("127.0.0.1:6882"));
        assert_eq!(p, crc32c(&[0x1a, 0xe1, 0x1a, 0xe2]));
    }

    #[test]
    fn masks_depend_on_the_shared_prefix() {
        // Same /16: FF.FF.FF.55, so the third byte counts and the fourth is masked.
        let a = canonical_priority(addr("1.2.3.4:1"), addr("1.2.7.8:1"));
        assert_eq!(a, crc32c(&[1, 2, 3, 4 & 0x55, 1, 2, 7, 8 & 0x55]));
        // IPv6 differing in the first 48 bits: FFFF:FFFF:FFFF:5555...
        let x: SocketAddr = addr("[2001:db8:1:ffff::ff]:1");
        let y: SocketAddr = addr("[2001:db9::1]:1");
        let mut expected = Vec::new();
        for ip in [x.ip(), y.ip()] {
            let IpAddr::V6(v6) = ip else { unreachable!() };
            let o = v6.octets();
            expected.extend((0..16).map(|i| if i < 6 { o[i] } else { o[i] & 0x55 }));
        }
        assert_eq!(canonical_priority(x, y), crc32c(&expected));
    }
}
