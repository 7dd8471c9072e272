//! The BEP10 extension handshake.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{decode_whole_dict, dict_of, int_in, ExtensionError};
use crate::bencode::{write_bytes, write_int};

const EXTENSION: &str = "extension handshake";

/// Bounds one handshake: a few dozen keys in practice; some room for what clients add.
const MAX_VALUES: usize = 1000;

/// The BEP10 extension handshake: what the sender supports and a few facts about it.
///
/// Every field is optional on the wire. Keys this crate does not know are ignored, and so
/// are known keys with a value of the wrong type or out of range (as if absent): one odd
/// field is no reason to refuse a peer. Only a payload that is not a bencoded dictionary is
/// an error.
///
/// A later handshake on the same connection updates the earlier one: its `m` holds only
/// changes, id 0 disabling an extension. Merging is up to the caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtendedHandshake {
    /// `m`: extension name → the extended message id the sender wants to receive it under;
    /// 0 means disabled.
    pub extensions: BTreeMap<String, u8>,
    /// `p`: the sender's TCP listen port.
    pub listen_port: Option<u16>,
    /// `v`: the sender's client name and version.
    pub client: Option<String>,
    /// `yourip`: the receiver's address as the sender sees it.
    pub your_ip: Option<IpAddr>,
    /// `ipv4`: an IPv4 address of the sender.
    pub ipv4: Option<Ipv4Addr>,
    /// `ipv6`: an IPv6 address of the sender.
    pub ipv6: Option<Ipv6Addr>,
    /// `reqq`: how many outstanding requests the sender queues without dropping any.
    pub max_requests: Option<u32>,
    /// `metadata_size` (BEP9): the size of the info dictionary in bytes.
    pub metadata_size: Option<u32>,
    /// `upload_only` (BEP21): the sender only uploads (a seed or partial seed).
    pub upload_only: bool,
    /// `complete_ago`: seconds since the sender last had every piece; negative if never.
    pub complete_ago: Option<i64>,
    /// `e`: the sender prefers encrypted connections.
    pub prefers_encryption: bool,
}

impl ExtendedHandshake {
    /// The extended message id of the handshake.
    pub const ID: u8 = 0;

    /// The id under which the sender wants to receive extension `name`, if it supports it.
    pub fn extension_id(&self, name: &str) -> Option<u8> {
        self.extensions.get(name).copied().filter(|&id| id != 0)
    }

    /// Parses the payload of an extended message with id 0.
    pub fn parse(payload: &[u8]) -> Result<Self, ExtensionError> {
        let document = decode_whole_dict(EXTENSION, payload, MAX_VALUES)?;
        let dict = dict_of(&document);
        let mut extensions = BTreeMap::new();
        if let Some(m) = dict.get_dict("m") {
            for (name, id) in m.iter() {
                let (Ok(name), Some(id)) = (std::str::from_utf8(name), int_in::<u8>(Some(id)))
                else {
                    continue;
                };
                extensions.entry(name.to_owned()).or_insert(id);
            }
        }
        let flag = |key| int_in::<i64>(dict.get(key)).is_some_and(|i| i != 0);
        Ok(Self {
            extensions,
            listen_port: int_in(dict.get("p")),
            client: dict
                .get_bytes("v")
                .map(|v| String::from_utf8_lossy(v).into_owned()),
            your_ip: dict.get_bytes("yourip").and_then(ip_from_bytes),
            ipv4: dict
                .get_bytes("ipv4")
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(Ipv4Addr::from),
            ipv6: dict
                .get_bytes("ipv6")
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .map(Ipv6Addr::from),
            max_requests: int_in(dict.get("reqq")),
            metadata_size: int_in(dict.get("metadata_size")),
            upload_only: flag("upload_only"),
            complete_ago: int_in(dict.get("complete_ago")),
            prefers_encryption: flag("e"),
        })
    }

    /// Appends the handshake's payload (a canonical bencoded dictionary) to `out`.
    pub fn encode(&self, out: &mut impl BufMut) {
        // Keys in byte order, as canonical bencode wants.
        out.put_u8(b'd');
        if let Some(ago) = self.complete_ago {
            put_int(out, "complete_ago", ago);
        }
        if self.prefers_encryption {
            put_int(out, "e", 1);
        }
        if let Some(ip) = self.ipv4 {
            put_bytes(out, "ipv4", &ip.octets());
        }
        if let Some(ip) = self.ipv6 {
            put_bytes(out, "ipv6", &ip.octets());
        }
        write_bytes(out, b"m");
        out.put_u8(b'd');
        for (name, id) in &self.extensions {
            put_int(out, name, i64::from(*id));
        }
        out.put_u8(b'e');
        if let Some(size) = self.metadata_size {
            put_int(out, "metadata_size", i64::from(size));
        }
        if let Some(port) = self.listen_port {
            put_int(out, "p", i64::from(port));
        }
        if let Some(reqq) = self.max_requests {
            put_int(out, "reqq", i64::from(reqq));
        }
        if self.upload_only {
            put_int(out, "upload_only", 1);
        }
        if let Some(client) = &self.client {
            put_bytes(out, "v", client.as_bytes());
        }
        match self.your_ip {
            Some(IpAddr::V4(ip)) => put_bytes(out, "yourip", &ip.octets()),
            Some(IpAddr::V6(ip)) => put_bytes(out, "yourip", &ip.octets()),
            None => {}
        }
        out.put_u8(b'e');
    }

    /// The handshake's payload in a buffer of its own.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = Vec::new();
        self.encode(&mut out);
        out.into()
    }
}

fn put_int(out: &mut impl BufMut, key: &str, value: i64) {
    write_bytes(out, key.as_bytes());
    write_int(out, value);
}

fn put_bytes(out: &mut impl BufMut, key: &str, value: &[u8]) {
    write_bytes(out, key.as_bytes());
    write_bytes(out, value);
}

/// A compact IPv4 (4 bytes) or IPv6 (16 bytes) address.
fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::V4(Ipv4Addr::from(v4)));
    }
    <[u8; 16]>::try_from(bytes)
        .ok()
        .map(|v6| IpAddr::V6(Ipv6Addr::from(v6)))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::arb_ip;
    use super::*;
    use crate::bencode::{self, Mode};
    use proptest::prelude::*;

    #[test]
    fn parses_bep10_example() {
        // BEP10's example, with the length of "µT_PEX" corrected: µ takes two bytes in
        // UTF-8, so the name is 7 bytes, not the 6 the BEP writes.
        let payload =
            b"d1:md11:LT_metadatai1e7:\xc2\xb5T_PEXi2ee1:pi6881e1:v13:\xc2\xb5Torrent 1.2e";
        let hs = ExtendedHandshake::parse(payload).unwrap();
        assert_eq!(hs.extension_id("LT_metadata"), Some(1));
        assert_eq!(hs.extension_id("µT_PEX"), Some(2));
        assert_eq!(hs.listen_port, Some(6881));
        assert_eq!(hs.client.as_deref(), Some("µTorrent 1.2"));
        assert_eq!(hs.your_ip, None);
    }

    #[test]
    fn full_handshake_exact_bytes() {
        let hs = ExtendedHandshake {
            extensions: [("ut_metadata".to_owned(), 2), ("ut_pex".to_owned(), 0)].into(),
            listen_port: Some(6881),
            client: Some("fxtor 0.1.0".to_owned()),
            your_ip: Some(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4))),
            ipv4: Some(Ipv4Addr::new(5, 6, 7, 8)),
            ipv6: Some(Ipv6Addr::LOCALHOST),
            max_requests: Some(500),
            metadata_size: Some(31235),
            upload_only: true,
            complete_ago: Some(-1),
            prefers_encryption: true,
        };
        let bytes = hs.to_bytes();
        let mut expected = b"d12:complete_agoi-1e1:ei1e4:ipv44:\x05\x06\x07\x084:ipv616:".to_vec();
        expected.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        expected.extend_from_slice(
            b"1:md11:ut_metadatai2e6:ut_pexi0ee13:metadata_sizei31235e1:pi6881e\
              4:reqqi500e11:upload_onlyi1e1:v11:fxtor 0.1.06:yourip4:\x01\x02\x03\x04e",
        );
        assert_eq!(&bytes[..], &expected[..]);
        // It is canonical bencode.
        assert!(bencode::decode(&bytes, Mode::Strict).is_ok());
        assert_eq!(ExtendedHandshake::parse(&bytes).unwrap(), hs);
        assert_eq!(hs.extension_id("ut_pex"), None);
        assert_eq!(hs.extension_id("ut_holepunch"), None);
    }

    #[test]
    fn empty_handshake() {
        let hs = ExtendedHandshake::default();
        assert_eq!(&hs.to_bytes()[..], b"d1:mdee");
        assert_eq!(ExtendedHandshake::parse(b"de").unwrap(), hs);
    }

    #[test]
    fn odd_fields_are_ignored() {
        let payload = b"d1:md1:ai300e1:bi-1e1:ci7e2:\xff\xffi3ee1:pi70000e6:yourip3:abc\
                        4:ipv45:abcde4:reqqi-5e7:unknownld1:xi1eee11:upload_onlyi0ee";
        let hs = ExtendedHandshake::parse(payload).unwrap();
        assert_eq!(hs.extensions, [("c".to_owned(), 7)].into());
        assert_eq!(hs.listen_port, None);
        assert_eq!(hs.your_ip, None);
        assert_eq!(hs.ipv4, None);
        assert_eq!(hs.max_requests, None);
        assert!(!hs.upload_only);
        let v6 =
            ExtendedHandshake::parse(b"d6:yourip16:\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01e").unwrap();
        assert_eq!(v6.your_ip, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    }

    #[test]
    fn structural_errors() {
        assert!(matches!(
            ExtendedHandshake::parse(b"li1ee"),
            Err(ExtensionError::NotADictionary { found: "list", .. })
        ));
        assert!(matches!(
            ExtendedHandshake::parse(b"d1:m"),
            Err(ExtensionError::Bencode { .. })
        ));
        assert!(matches!(
            ExtendedHandshake::parse(b"dexx"),
            Err(ExtensionError::Bencode { .. })
        ));
        let deep = [&b"d1:x"[..], &[b'l'; 20], &[b'e'; 21]].concat();
        assert!(matches!(
            ExtendedHandshake::parse(&deep),
            Err(ExtensionError::Bencode { .. })
        ));
    }

    fn arb_handshake() -> impl Strategy<Value = ExtendedHandshake> {
        (
            proptest::collection::btree_map("[a-z_]{1,12}", any::<u8>(), 0..6),
            proptest::option::of(any::<u16>()),
            proptest::option::of(".{0,20}"),
            proptest::option::of(arb_ip()),
            proptest::option::of(any::<[u8; 4]>().prop_map(Ipv4Addr::from)),
            proptest::option::of(any::<[u8; 16]>().prop_map(Ipv6Addr::from)),
            (
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u32>()),
                any::<bool>(),
                proptest::option::of(any::<i64>()),
                any::<bool>(),
            ),
        )
            .prop_map(
                |(extensions, listen_port, client, your_ip, ipv4, ipv6, rest)| {
                    let (max_requests, metadata_size, upload_only, complete_ago, e) = rest;
                    ExtendedHandshake {
                        extensions,
                        listen_port,
                        client,
                        your_ip,
                        ipv4,
                        ipv6,
                        max_requests,
                        metadata_size,
                        upload_only,
                        complete_ago,
                        prefers_encryption: e,
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn encode_then_parse_is_identity(hs in arb_handshake()) {
            let bytes = hs.to_bytes();
            prop_assert!(bencode::decode(&bytes, Mode::Strict).is_ok());
            prop_assert_eq!(ExtendedHandshake::parse(&bytes), Ok(hs));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = ExtendedHandshake::parse(&bytes);
        }
    }
}
