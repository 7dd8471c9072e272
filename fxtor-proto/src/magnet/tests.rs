use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;
use crate::{InfoHashV1, InfoHashV2};

const V1_HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
const V1_BASE32: &str = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK";
const HYBRID_V1: &str = "631a31dd0a46257d5078c0dee4e66e26f73e42ac";
const HYBRID_V2: &str = "d8dd32ac93357c368556af3ac1d95c9d76bd0dff6fa9833ecdac3d53134efabb";

fn v1() -> InfoHashV1 {
    InfoHashV1::from_hex(V1_HEX).unwrap()
}

fn parse(uri: &str) -> Result<MagnetLink, MagnetError> {
    MagnetLink::parse(uri)
}

fn kind(uri: &str) -> MagnetErrorKind {
    parse(uri).unwrap_err().kind
}

fn range(first: u32, last: u32) -> FileRange {
    FileRange::new(FileIndex(first), FileIndex(last)).unwrap()
}

#[test]
fn reads_a_hex_btih() {
    let link = parse(&format!("magnet:?xt=urn:btih:{V1_HEX}")).unwrap();
    assert_eq!(link, MagnetLink::new(InfoHashes::v1(v1())));
    let upper = parse(&format!("magnet:?xt=urn:btih:{}", V1_HEX.to_uppercase())).unwrap();
    assert_eq!(upper.info_hashes(), InfoHashes::v1(v1()));
}

#[test]
fn reads_a_base32_btih_in_either_case() {
    for hash in [V1_BASE32.to_owned(), V1_BASE32.to_lowercase()] {
        let link = parse(&format!("magnet:?xt=urn:btih:{hash}")).unwrap();
        assert_eq!(link.info_hashes(), InfoHashes::v1(v1()));
    }
    // Written back as hex.
    let link = parse(&format!("magnet:?xt=urn:btih:{V1_BASE32}")).unwrap();
    assert_eq!(link.to_uri(), format!("magnet:?xt=urn:btih:{V1_HEX}"));
}

#[test]
fn reads_a_v2_only_link() {
    let link = parse(&format!("magnet:?xt=urn:btmh:1220{HYBRID_V2}&dn=test")).unwrap();
    let v2 = InfoHashV2::from_hex(HYBRID_V2).unwrap();
    assert_eq!(link.info_hashes(), InfoHashes::v2(v2));
    assert_eq!(link.display_name(), Some("test"));
    assert_eq!(
        link.to_uri(),
        format!("magnet:?xt=urn:btmh:1220{HYBRID_V2}&dn=test")
    );
}

#[test]
fn reads_a_hybrid_link() {
    let uri = format!("magnet:?xt=urn:btih:{HYBRID_V1}&xt=urn:btmh:1220{HYBRID_V2}");
    let link = parse(&uri).unwrap();
    let expected = InfoHashes::hybrid(
        InfoHashV1::from_hex(HYBRID_V1).unwrap(),
        InfoHashV2::from_hex(HYBRID_V2).unwrap(),
    );
    assert_eq!(link.info_hashes(), expected);
    assert_eq!(link.to_uri(), uri);
    // Either order, and the same hash twice, are fine.
    let reversed = format!(
        "magnet:?xt=urn:btmh:1220{HYBRID_V2}&xt=urn:btih:{HYBRID_V1}&xt=urn:btih:{HYBRID_V1}"
    );
    assert_eq!(parse(&reversed).unwrap().info_hashes(), expected);
}

#[test]
fn reads_the_bep53_example() {
    let uri = format!("magnet:?xt=urn:btih:{V1_HEX}&dn=NAME&tr=TRACKER&so=0,2,4,6-8");
    let link = parse(&uri).unwrap();
    assert_eq!(link.display_name(), Some("NAME"));
    assert_eq!(link.trackers(), ["TRACKER"]);
    assert_eq!(
        link.select_only(),
        [range(0, 0), range(2, 2), range(4, 4), range(6, 8)]
    );
    let selected: Vec<u32> = (0..10)
        .filter(|&i| link.selects_file(FileIndex(i)))
        .collect();
    assert_eq!(selected, [0, 2, 4, 6, 7, 8]);
    assert_eq!(link.to_uri(), uri);
}

#[test]
fn so_parameters_add_up_and_stay_ranges() {
    let link = parse(&format!(
        "magnet:?xt=urn:btih:{V1_HEX}&so=1&so=0-4294967295&so=%2C3"
    ))
    .unwrap();
    assert_eq!(
        link.select_only(),
        [range(1, 1), range(0, u32::MAX), range(3, 3)]
    );
    assert!(MagnetLink::new(InfoHashes::v1(v1())).selects_file(FileIndex(9)));
}

#[test]
fn reads_every_parameter() {
    let uri = format!(
        "magnet:?xt=urn:btih:{V1_HEX}&dn=Caf%C3%A9+%26+Co&xl=12345\
         &tr=udp%3A%2F%2Fa.example%3A6969%2Fannounce&tr=http://b.example/announce?x=1\
         &ws=https%3A%2F%2Fseed.example%2Ffiles%2F\
         &x.pe=127.0.0.9:6881&x.pe=%5B2001:db8::1%5D:51413&x.pe=peer.example:80&so=1"
    );
    let link = parse(&uri).unwrap();
    assert_eq!(link.display_name(), Some("Café & Co"));
    assert_eq!(link.exact_length(), Some(12345));
    assert_eq!(
        link.trackers(),
        [
            "udp://a.example:6969/announce",
            "http://b.example/announce?x=1"
        ]
    );
    assert_eq!(link.web_seeds(), ["https://seed.example/files/"]);
    assert_eq!(
        link.peers(),
        [
            PeerAddress::Ip(SocketAddr::new(Ipv4Addr::new(127, 0, 0, 9).into(), 6881)),
            PeerAddress::Ip(SocketAddr::new(
                "2001:db8::1".parse::<Ipv6Addr>().unwrap().into(),
                51413
            )),
            PeerAddress::Host {
                name: "peer.example".into(),
                port: 80
            },
        ]
    );
    assert_eq!(link.select_only(), [range(1, 1)]);
}

#[test]
fn trackers_keep_order_without_duplicates_or_empties() {
    let link = parse(&format!(
        "magnet:?tr=udp://c&xt=urn:btih:{V1_HEX}&tr=udp://a&tr=&tr=udp%3A%2F%2Fc&tr.1=udp://b\
         &ws=w&ws=w&x.pe=127.1.2.3:5&x.pe=127.1.2.3:5"
    ))
    .unwrap();
    assert_eq!(link.trackers(), ["udp://c", "udp://a", "udp://b"]);
    assert_eq!(link.web_seeds(), ["w"]);
    assert_eq!(link.peers().len(), 1);
}

#[test]
fn keys_are_case_sensitive_and_unknown_ones_ignored() {
    let link = parse(&format!(
        "magnet:?xt=urn:btih:{V1_HEX}&DN=upper&TR=udp://x&kt=a+b&as=http://x&xs=y&foo&=&&dn.2=n"
    ))
    .unwrap();
    assert_eq!(link.display_name(), Some("n"));
    assert!(link.trackers().is_empty());
    // Other namespaces in `xt` are not BitTorrent hashes and are skipped.
    let link = parse(&format!(
        "magnet:?xt=urn:ed2k:354B15E68FB8F36D7CD88FF94116CDC1&xt.1=urn:btih:{V1_HEX}"
    ))
    .unwrap();
    assert_eq!(link.info_hashes(), InfoHashes::v1(v1()));
}

#[test]
fn accepts_scheme_and_urn_in_any_case_and_surrounding_space() {
    let link = parse(&format!("  MAGNET:?xt=URN:BTIH:{V1_HEX}\n")).unwrap();
    assert_eq!(link.info_hashes(), InfoHashes::v1(v1()));
    // An escaped `xt` value is decoded first.
    let link = parse(&format!("magnet:?xt=urn%3Abtih%3A{V1_HEX}")).unwrap();
    assert_eq!(link.info_hashes(), InfoHashes::v1(v1()));
}

#[test]
fn the_last_display_name_wins_and_empty_values_are_skipped() {
    let link = parse(&format!(
        "magnet:?xt=urn:btih:{V1_HEX}&dn=a&dn=b&dn=&xl=&x.pe=&so="
    ))
    .unwrap();
    assert_eq!(link.display_name(), Some("b"));
    assert_eq!(link.exact_length(), None);
    assert!(link.peers().is_empty() && link.select_only().is_empty());
}

#[test]
fn a_stray_percent_is_kept() {
    let link = parse(&format!("magnet:?xt=urn:btih:{V1_HEX}&dn=100%+sure%")).unwrap();
    assert_eq!(link.display_name(), Some("100% sure%"));
    assert!(link.to_uri().ends_with("&dn=100%25%20sure%25"));
}

#[test]
fn refuses_what_is_not_a_magnet() {
    for uri in [
        "",
        "http://example.com/?xt=urn:btih:x",
        "magnet:xt=urn:btih:x",
        "magnet",
    ] {
        assert_eq!(kind(uri), MagnetErrorKind::NotMagnet, "{uri:?}");
    }
    assert_eq!(parse("  nope").unwrap_err().offset, 2);
}

#[test]
fn refuses_a_link_without_a_torrent_hash() {
    for uri in [
        "magnet:?",
        "magnet:?dn=x&tr=udp://t",
        "magnet:?xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C",
    ] {
        let err = parse(uri).unwrap_err();
        assert_eq!(err.kind, MagnetErrorKind::MissingInfoHash, "{uri}");
        assert_eq!(err.offset, uri.len());
    }
}

#[test]
fn refuses_bad_btih() {
    let uri = format!("magnet:?dn=x&xt=urn:btih:{}", &V1_HEX[1..]);
    let err = parse(&uri).unwrap_err();
    assert_eq!(err.offset, "magnet:?dn=x&xt=".len());
    assert_eq!(
        err.kind,
        MagnetErrorKind::BadBtih {
            value: V1_HEX[1..].to_owned()
        }
    );
    let not_hex = format!("magnet:?xt=urn:btih:{}g", &V1_HEX[1..]);
    assert!(matches!(kind(&not_hex), MagnetErrorKind::BadBtih { .. }));
    let not_base32 = format!("magnet:?xt=urn:btih:{}1", &V1_BASE32[1..]);
    assert!(matches!(kind(&not_base32), MagnetErrorKind::BadBtih { .. }));
    assert!(matches!(
        kind("magnet:?xt=urn:btih:"),
        MagnetErrorKind::BadBtih { .. }
    ));
}

#[test]
fn refuses_bad_btmh() {
    let wrong_code = format!("magnet:?xt=urn:btmh:1120{HYBRID_V2}");
    assert_eq!(
        kind(&wrong_code),
        MagnetErrorKind::UnsupportedMultihash {
            code: 0x11,
            len: 32
        }
    );
    let truncated = format!("magnet:?xt=urn:btmh:1214{}", &HYBRID_V2[..40]);
    assert_eq!(
        kind(&truncated),
        MagnetErrorKind::UnsupportedMultihash {
            code: 0x12,
            len: 20
        }
    );
    // A two-byte varint code (blake2b-256, 0xb220) is read as such.
    let blake = format!("magnet:?xt=urn:btmh:a0e40220{HYBRID_V2}");
    assert_eq!(
        kind(&blake),
        MagnetErrorKind::UnsupportedMultihash {
            code: 0xb220,
            len: 32
        }
    );
    for body in [
        format!("1220{}", &HYBRID_V2[2..]),
        format!("1220{HYBRID_V2}00"),
        format!("1220{}x", &HYBRID_V2[1..]),
        "1220".to_owned(),
        "12".to_owned(),
        "".to_owned(),
        "ffffffffffffffffffff".to_owned(),
    ] {
        let uri = format!("magnet:?xt=urn:btmh:{body}");
        assert!(
            matches!(kind(&uri), MagnetErrorKind::BadBtmh { .. }),
            "{uri}"
        );
    }
}

#[test]
fn refuses_two_different_hashes_of_a_kind() {
    let other_v1 = "0".repeat(40);
    let uri = format!("magnet:?xt=urn:btih:{V1_HEX}&xt=urn:btih:{other_v1}");
    let err = parse(&uri).unwrap_err();
    assert_eq!(err.kind, MagnetErrorKind::ConflictingBtih);
    assert_eq!(err.offset, uri.len() - other_v1.len() - "urn:btih:".len());
    let other_v2 = "0".repeat(64);
    let uri = format!("magnet:?xt=urn:btmh:1220{HYBRID_V2}&xt=urn:btmh:1220{other_v2}");
    assert_eq!(kind(&uri), MagnetErrorKind::ConflictingBtmh);
}

#[test]
fn refuses_bad_selections() {
    let uri = format!("magnet:?xt=urn:btih:{V1_HEX}&so=1,5-2");
    assert_eq!(
        kind(&uri),
        MagnetErrorKind::BadSelectOnly {
            value: "1,5-2".into(),
            reason: SelectOnlyError::ReversedRange
        }
    );
    let uri = format!("magnet:?xt=urn:btih:{V1_HEX}&so=4294967296");
    assert!(matches!(
        kind(&uri),
        MagnetErrorKind::BadSelectOnly {
            reason: SelectOnlyError::IndexTooLarge,
            ..
        }
    ));
    let uri = format!("magnet:?xt=urn:btih:{V1_HEX}&so=1+2");
    assert!(matches!(
        kind(&uri),
        MagnetErrorKind::BadSelectOnly {
            reason: SelectOnlyError::NotANumber,
            ..
        }
    ));
}

#[test]
fn refuses_bad_peers() {
    let bad_port = format!("magnet:?xt=urn:btih:{V1_HEX}&x.pe=127.1.2.3:70000");
    assert_eq!(
        kind(&bad_port),
        MagnetErrorKind::BadPeer {
            value: "127.1.2.3:70000".into(),
            reason: PeerAddressError::BadPort
        }
    );
    let no_port = format!("magnet:?xt=urn:btih:{V1_HEX}&x.pe=peer.example");
    assert!(matches!(
        kind(&no_port),
        MagnetErrorKind::BadPeer {
            reason: PeerAddressError::MissingPort,
            ..
        }
    ));
}

#[test]
fn refuses_a_bad_exact_length() {
    for xl in ["-1", "1e3", "18446744073709551616", "+5"] {
        let uri = format!("magnet:?xt=urn:btih:{V1_HEX}&xl={xl}");
        assert!(
            matches!(kind(&uri), MagnetErrorKind::BadExactLength { .. }),
            "{xl}"
        );
    }
}

#[test]
fn errors_quote_at_most_a_short_excerpt() {
    let uri = format!("magnet:?xt=urn:btih:{}", "z".repeat(100_000));
    let message = parse(&uri).unwrap_err().to_string();
    assert!(message.len() < 300, "{message}");
    assert!(message.starts_with("invalid magnet URI at byte 11: btih info-hash"));
}

#[test]
fn writes_every_parameter_escaped() {
    let link = MagnetLink::new(InfoHashes::v1(v1()))
        .with_display_name("a&b=c+d é")
        .with_exact_length(7)
        .with_tracker("udp://t.example:80/announce?k=v&x")
        .with_tracker("udp://t.example:80/announce?k=v&x")
        .with_tracker("")
        .with_web_seed("http://w.example/")
        .with_peer(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 6881))
        .with_peer(PeerAddress::host("peer.example", 1).unwrap())
        .with_select_only(range(0, 0))
        .with_select_only(range(4, 6));
    assert_eq!(
        link.to_uri(),
        format!(
            "magnet:?xt=urn:btih:{V1_HEX}&dn=a%26b%3Dc%2Bd%20%C3%A9&xl=7\
             &tr=udp://t.example:80/announce%3Fk%3Dv%26x&ws=http://w.example/\
             &x.pe=[::1]:6881&x.pe=peer.example:1&so=0,4-6"
        )
    );
    assert_eq!(parse(&link.to_uri()), Ok(link));
}

#[test]
fn an_empty_display_name_is_no_name() {
    let link = MagnetLink::new(InfoHashes::v1(v1())).with_display_name("");
    assert_eq!(link.display_name(), None);
    assert!(!link.to_uri().contains("dn="));
}

fn arb_info_hashes() -> impl Strategy<Value = InfoHashes> {
    prop_oneof![
        any::<[u8; 20]>().prop_map(|h| InfoHashes::v1(InfoHashV1(h))),
        any::<[u8; 32]>().prop_map(|h| InfoHashes::v2(InfoHashV2(h))),
        (any::<[u8; 20]>(), any::<[u8; 32]>())
            .prop_map(|(a, b)| InfoHashes::hybrid(InfoHashV1(a), InfoHashV2(b))),
    ]
}

/// Text with unicode, controls and every character that matters to a URI.
fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9 &=+%#?/:;@\\[\\]!$'()*,~._-]{0,24}",
        "(udp|http|https)://[a-z.]{1,12}(:[0-9]{1,5})?/[ -~é日本]{0,16}",
    ]
}

fn arb_peer() -> impl Strategy<Value = PeerAddress> {
    prop_oneof![
        (any::<Ipv4Addr>(), 1..=u16::MAX)
            .prop_map(|(ip, port)| PeerAddress::Ip(SocketAddr::new(ip.into(), port))),
        (any::<Ipv6Addr>(), 1..=u16::MAX)
            .prop_map(|(ip, port)| PeerAddress::Ip(SocketAddr::new(ip.into(), port))),
        (
            "[a-z][a-z0-9_-]{0,10}(\\.[a-zA-Z0-9-]{1,8}){0,3}",
            1..=u16::MAX
        )
            .prop_filter_map("not a host name", |(name, port)| {
                PeerAddress::host(&name, port).ok()
            }),
    ]
}

fn arb_range() -> impl Strategy<Value = FileRange> {
    prop_oneof![
        any::<u32>().prop_map(|i| FileRange::single(FileIndex(i))),
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| {
            FileRange::new(FileIndex(a.min(b)), FileIndex(a.max(b))).unwrap()
        }),
    ]
}

prop_compose! {
    fn arb_link()(
        info_hashes in arb_info_hashes(),
        name in proptest::option::of(arb_text()),
        length in proptest::option::of(any::<u64>()),
        trackers in proptest::collection::vec(arb_text(), 0..5),
        web_seeds in proptest::collection::vec(arb_text(), 0..3),
        peers in proptest::collection::vec(arb_peer(), 0..5),
        ranges in proptest::collection::vec(arb_range(), 0..5),
    ) -> MagnetLink {
        let mut link = MagnetLink::new(info_hashes);
        if let Some(name) = name {
            link = link.with_display_name(name);
        }
        if let Some(length) = length {
            link = link.with_exact_length(length);
        }
        for tracker in trackers {
            link = link.with_tracker(tracker);
        }
        for seed in web_seeds {
            link = link.with_web_seed(seed);
        }
        for peer in peers {
            link = link.with_peer(peer);
        }
        for range in ranges {
            link = link.with_select_only(range);
        }
        link
    }
}

/// Strings that look like magnets, to reach deep into the parser.
fn magnet_like() -> impl Strategy<Value = String> {
    let key = "(xt|dn|tr|ws|x\\.pe|so|xl|tr\\.[0-9]|XT|)";
    let value = prop_oneof![
        "urn:bt(ih|mh):[0-9a-zA-Z%]{0,80}",
        "[0-9,\\-]{0,12}",
        "\\[?[0-9a-f:.]{0,20}\\]?:[0-9]{0,6}",
        "[%+0-9a-fA-F&=]{0,10}",
        any::<String>(),
    ];
    proptest::collection::vec((key, value), 0..6).prop_map(|params| {
        let query: Vec<String> = params
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!("magnet:?{}", query.join("&"))
    })
}

proptest! {
    #[test]
    fn format_then_parse_is_the_identity(link in arb_link()) {
        let uri = link.to_uri();
        prop_assert_eq!(MagnetLink::parse(&uri), Ok(link), "{}", uri);
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in any::<String>()) {
        let _ = MagnetLink::parse(&text);
    }

    #[test]
    fn parsing_magnet_like_text_never_panics(text in magnet_like()) {
        if let Ok(link) = MagnetLink::parse(&text) {
            // Whatever was accepted writes out to a link that reads back the same.
            prop_assert_eq!(MagnetLink::parse(&link.to_uri()), Ok(link));
        }
    }
}
