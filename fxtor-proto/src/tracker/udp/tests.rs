use super::*;
use crate::peer_id::PeerId;
use crate::tracker::AnnounceEvent;
use proptest::prelude::*;

const V4_TRACKER: &str = "10.0.0.1:6969";

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn announce_request() -> AnnounceRequest {
    AnnounceRequest {
        downloaded: 0x0102_0304_0506_0708,
        left: 2,
        uploaded: 3,
        event: AnnounceEvent::Started,
        key: 0xAABB_CCDD,
        ..AnnounceRequest::new(InfoHashV1([0x11; 20]), PeerId([0x22; 20]), 6881)
    }
}

fn tracker() -> UdpTracker {
    UdpTracker::new(V4_TRACKER.parse().unwrap(), UdpTrackerConfig::default(), 1)
}

/// The next datagram, parsed.
fn sent(tracker: &mut UdpTracker) -> UdpRequest {
    UdpRequest::parse(&tracker.poll_transmit().expect("a datagram")).expect("a request")
}

fn answer(tracker: &mut UdpTracker, now: Instant, response: &UdpResponse) {
    let family = AddressFamily::of(tracker.remote().ip());
    tracker
        .handle_datagram(now, &response.encode(family))
        .expect("a valid answer");
}

/// Connects: expects a connect request and answers it with `connection_id`.
fn connect(tracker: &mut UdpTracker, now: Instant, connection_id: u64) {
    let request = sent(tracker);
    assert!(matches!(request, UdpRequest::Connect { .. }), "{request:?}");
    answer(
        tracker,
        now,
        &UdpResponse::Connect {
            transaction_id: request.transaction_id(),
            connection_id,
        },
    );
}

fn announce_answer(transaction_id: u32, peers: Vec<SocketAddr>) -> UdpResponse {
    UdpResponse::Announce {
        transaction_id,
        interval: 1800,
        leechers: 4,
        seeders: 5,
        peers,
    }
}

#[test]
fn connect_request_bytes() {
    assert_eq!(
        UdpRequest::Connect {
            transaction_id: 0xDEAD_BEEF
        }
        .encode(),
        [0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 0xDE, 0xAD, 0xBE, 0xEF]
    );
}

#[test]
fn announce_request_bytes() {
    let packet = UdpRequest::Announce {
        connection_id: 0x0A0B_0C0D_0E0F_1011,
        transaction_id: 7,
        request: announce_request(),
    }
    .encode();
    let mut expected = vec![
        0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0, 0, 0, 1, 0, 0, 0, 7,
    ];
    expected.extend_from_slice(&[0x11; 20]);
    expected.extend_from_slice(&[0x22; 20]);
    expected.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // downloaded
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 2]); // left
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 3]); // uploaded
    expected.extend_from_slice(&[0, 0, 0, 2]); // event: started
    expected.extend_from_slice(&[0, 0, 0, 0]); // IP address
    expected.extend_from_slice(&[0xAA, 0xBB, 0xCC, 0xDD]); // key
    expected.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]); // num_want: -1
    expected.extend_from_slice(&[0x1A, 0xE1]); // port
    assert_eq!(packet, expected);
    assert_eq!(packet.len(), 98);
    let mut with_num_want = announce_request();
    with_num_want.num_want = Some(50);
    let packet = UdpRequest::Announce {
        connection_id: 0,
        transaction_id: 0,
        request: with_num_want,
    }
    .encode();
    assert_eq!(&packet[92..96], &[0, 0, 0, 50]);
}

#[test]
fn scrape_request_bytes() {
    let packet = UdpRequest::Scrape {
        connection_id: 1,
        transaction_id: 2,
        info_hashes: vec![InfoHashV1([0xAB; 20]), InfoHashV1([0xCD; 20])],
    }
    .encode();
    let mut expected = vec![0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2];
    expected.extend_from_slice(&[0xAB; 20]);
    expected.extend_from_slice(&[0xCD; 20]);
    assert_eq!(packet, expected);
}

#[test]
fn response_bytes() {
    let v4 = [
        0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0x07, 0x08, 0, 0, 0, 3, 0, 0, 0, 4, 10, 0, 0, 2, 0x1A, 0xE1,
        192, 168, 0, 1, 0, 80, 0xFF,
    ];
    assert_eq!(
        UdpResponse::parse(&v4, AddressFamily::V4),
        Ok(UdpResponse::Announce {
            transaction_id: 9,
            interval: 1800,
            leechers: 3,
            seeders: 4,
            // The trailing partial entry is ignored.
            peers: vec![
                "10.0.0.2:6881".parse().unwrap(),
                "192.168.0.1:80".parse().unwrap()
            ],
        })
    );
    assert_eq!(
        UdpResponse::parse(&v4[..32], AddressFamily::V4)
            .unwrap()
            .encode(AddressFamily::V4),
        &v4[..32]
    );
    let mut v6 = vec![0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 0];
    v6.extend_from_slice(&[
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1,
    ]);
    assert_eq!(
        UdpResponse::parse(&v6, AddressFamily::V6),
        Ok(UdpResponse::Announce {
            transaction_id: 9,
            interval: 60,
            leechers: 0,
            seeders: 0,
            peers: vec!["[2001:db8::1]:1".parse().unwrap()],
        })
    );
    // The same packet read as IPv4 gives three 6-byte entries.
    let UdpResponse::Announce { peers, .. } = UdpResponse::parse(&v6, AddressFamily::V4).unwrap()
    else {
        panic!()
    };
    assert_eq!(peers.len(), 3);

    let scrape = [
        0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0xEE,
    ];
    assert_eq!(
        UdpResponse::parse(&scrape, AddressFamily::V4),
        Ok(UdpResponse::Scrape {
            transaction_id: 5,
            stats: vec![ScrapeStats {
                complete: 1,
                downloaded: 2,
                incomplete: 3
            }],
        })
    );
    let error = b"\x00\x00\x00\x03\x00\x00\x00\x05bad torrent\x00";
    assert_eq!(
        UdpResponse::parse(error, AddressFamily::V4),
        Ok(UdpResponse::Error {
            transaction_id: 5,
            message: "bad torrent".into()
        })
    );
}

#[test]
fn short_and_unknown_packets_are_errors() {
    fn too_short<T>(what: &'static str, len: usize, needed: usize) -> Result<T, UdpPacketError> {
        Err(UdpPacketError::TooShort { what, len, needed })
    }
    assert_eq!(
        UdpResponse::parse(&[0; 7], AddressFamily::V4),
        too_short("response", 7, 8)
    );
    assert_eq!(
        UdpResponse::parse(&[0; 15], AddressFamily::V4),
        too_short("connect response", 15, 16)
    );
    assert_eq!(
        UdpResponse::parse(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], AddressFamily::V4),
        too_short("announce response", 12, 20)
    );
    assert_eq!(
        UdpResponse::parse(&[0, 0, 0, 4, 0, 0, 0, 0], AddressFamily::V4),
        Err(UdpPacketError::UnknownAction(4))
    );
    assert_eq!(UdpRequest::parse(&[0; 15]), too_short("request", 15, 16));
    assert_eq!(
        UdpRequest::parse(&[0; 16]),
        Err(UdpPacketError::BadProtocolId(0))
    );
    let mut announce = UdpRequest::Announce {
        connection_id: 1,
        transaction_id: 2,
        request: announce_request(),
    }
    .encode();
    assert_eq!(
        UdpRequest::parse(&announce[..97]),
        too_short("announce request", 97, 98)
    );
    announce[83] = 9;
    assert_eq!(
        UdpRequest::parse(&announce),
        Err(UdpPacketError::UnknownEvent(9))
    );
}

#[test]
fn announce_over_ipv4() {
    let mut t = tracker();
    let id = t.announce(secs(0), announce_request());
    assert_eq!(t.poll_timeout(), Some(secs(15)));
    connect(&mut t, secs(1), 0x1234);
    let UdpRequest::Announce {
        connection_id,
        transaction_id,
        request,
    } = sent(&mut t)
    else {
        panic!("expected an announce")
    };
    assert_eq!((connection_id, &request), (0x1234, &announce_request()));
    assert_eq!(t.poll_timeout(), Some(secs(16)));
    answer(
        &mut t,
        secs(2),
        &announce_answer(transaction_id, vec!["1.2.3.4:5".parse().unwrap()]),
    );
    assert_eq!(
        t.poll_event(),
        Some(UdpEvent {
            request: id,
            outcome: UdpOutcome::Announced(AnnounceResponse {
                interval: Some(Duration::from_secs(1800)),
                complete: Some(5),
                incomplete: Some(4),
                peers: vec![PeerInfo::from_addr("1.2.3.4:5".parse().unwrap())],
                ..AnnounceResponse::default()
            })
        })
    );
    assert!(t.is_idle());
    assert_eq!(t.poll_timeout(), None);
    assert_eq!(t.poll_transmit(), None);
}

#[test]
fn announce_over_ipv6_reads_18_byte_peers() {
    let mut t = UdpTracker::new("[2001:db8::9]:6969".parse().unwrap(), Default::default(), 3);
    t.announce(secs(0), announce_request());
    connect(&mut t, secs(0), 1);
    let tid = sent(&mut t).transaction_id();
    let peer: SocketAddr = "[2001:db8::7]:6881".parse().unwrap();
    answer(&mut t, secs(0), &announce_answer(tid, vec![peer]));
    let Some(UdpEvent {
        outcome: UdpOutcome::Announced(response),
        ..
    }) = t.poll_event()
    else {
        panic!()
    };
    assert_eq!(response.peers, [PeerInfo::from_addr(peer)]);
    // An IPv4-mapped tracker address talks IPv4.
    let mapped = UdpTracker::new(
        "[::ffff:10.0.0.1]:1".parse().unwrap(),
        Default::default(),
        3,
    );
    assert_eq!(mapped.family, AddressFamily::V4);
}

#[test]
fn scrape_round_trip() {
    let mut t = tracker();
    let hashes = vec![InfoHashV1([1; 20]), InfoHashV1([2; 20])];
    let id = t.scrape(secs(0), hashes.clone()).unwrap();
    connect(&mut t, secs(0), 5);
    let UdpRequest::Scrape {
        connection_id: 5,
        transaction_id,
        info_hashes,
    } = sent(&mut t)
    else {
        panic!()
    };
    assert_eq!(info_hashes, hashes);
    let stats = vec![ScrapeStats {
        complete: 1,
        downloaded: 2,
        incomplete: 3,
    }];
    answer(
        &mut t,
        secs(0),
        &UdpResponse::Scrape {
            transaction_id,
            stats: stats.clone(),
        },
    );
    assert_eq!(
        t.poll_event(),
        Some(UdpEvent {
            request: id,
            outcome: UdpOutcome::Scraped(stats)
        })
    );
    assert_eq!(
        t.scrape(secs(0), vec![InfoHashV1([0; 20]); 75]),
        Err(TooManyHashes(75))
    );
}

#[test]
fn transaction_id_mismatch_is_ignored() {
    let mut t = tracker();
    t.announce(secs(0), announce_request());
    let tid = sent(&mut t).transaction_id();
    let wrong = UdpResponse::Connect {
        transaction_id: tid.wrapping_add(1),
        connection_id: 9,
    };
    answer(&mut t, secs(1), &wrong);
    // Still connecting: nothing sent, nothing reported, the connect's timer still runs.
    assert_eq!(t.poll_transmit(), None);
    assert_eq!(t.poll_event(), None);
    assert_eq!(t.poll_timeout(), Some(secs(15)));
    answer(
        &mut t,
        secs(1),
        &UdpResponse::Connect {
            transaction_id: tid,
            connection_id: 9,
        },
    );
    let tid = sent(&mut t).transaction_id();
    answer(&mut t, secs(2), &announce_answer(tid ^ 0x8000_0000, vec![]));
    answer(
        &mut t,
        secs(2),
        &UdpResponse::Error {
            transaction_id: tid.wrapping_sub(1),
            message: "x".into(),
        },
    );
    assert_eq!(t.poll_event(), None);
    assert!(!t.is_idle());
    answer(&mut t, secs(2), &announce_answer(tid, vec![]));
    assert!(matches!(
        t.poll_event().map(|e| e.outcome),
        Some(UdpOutcome::Announced(_))
    ));
}

#[test]
fn connect_retransmission_schedule() {
    let mut t = tracker();
    let id = t.announce(secs(0), announce_request());
    let first = sent(&mut t);
    let mut now = 0;
    // BEP15's example: 0, 15, 45, 105, … (waits of 15 · 2^n, n up to 8).
    for n in 0..=8 {
        let wait = 15 << n;
        assert_eq!(t.poll_timeout(), Some(secs(now + wait)), "attempt {n}");
        t.handle_timeout(secs(now + wait - 1));
        assert_eq!(t.poll_transmit(), None);
        now += wait;
        t.handle_timeout(secs(now));
        if n < 8 {
            // The same connect, transaction id and all.
            assert_eq!(sent(&mut t), first);
            assert_eq!(t.poll_event(), None);
        }
    }
    assert_eq!(now, 15 * 511);
    assert_eq!(t.poll_transmit(), None);
    assert_eq!(
        t.poll_event(),
        Some(UdpEvent {
            request: id,
            outcome: UdpOutcome::Failed(UdpTrackerError::TimedOut { attempts: 9 })
        })
    );
    assert!(t.is_idle());
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn announce_retransmission_reconnects_after_expiry() {
    // BEP15's "announce times out" example.
    let mut t = tracker();
    t.announce(secs(0), announce_request());
    connect(&mut t, secs(1), 77);
    let first = sent(&mut t); // sent at 1: n = 0
    assert_eq!(t.poll_timeout(), Some(secs(16)));
    t.handle_timeout(secs(16));
    assert_eq!(sent(&mut t), first);
    assert_eq!(t.poll_timeout(), Some(secs(46)));
    t.handle_timeout(secs(46));
    assert_eq!(sent(&mut t), first);
    assert_eq!(t.poll_timeout(), Some(secs(106)));
    // At 106 the connection id (from 1) has expired: connect again, n = 3.
    t.handle_timeout(secs(106));
    let reconnect = sent(&mut t);
    assert!(matches!(reconnect, UdpRequest::Connect { .. }));
    assert_eq!(t.poll_transmit(), None);
    assert_eq!(t.poll_timeout(), Some(secs(226)));
    t.handle_timeout(secs(226));
    assert_eq!(sent(&mut t), reconnect);
    assert_eq!(t.poll_timeout(), Some(secs(466)));
    // The new connection id is used; the announce continues at n = 4.
    answer(
        &mut t,
        secs(300),
        &UdpResponse::Connect {
            transaction_id: reconnect.transaction_id(),
            connection_id: 78,
        },
    );
    let UdpRequest::Announce {
        connection_id: 78, ..
    } = sent(&mut t)
    else {
        panic!("expected an announce with the new connection id")
    };
    assert_eq!(t.poll_timeout(), Some(secs(300 + 240)));
}

#[test]
fn connection_id_expires_after_60_seconds() {
    let mut t = tracker();
    t.announce(secs(0), announce_request());
    connect(&mut t, secs(0), 1);
    let tid = sent(&mut t).transaction_id();
    answer(&mut t, secs(0), &announce_answer(tid, vec![]));
    t.poll_event();

    // Within the minute the id is reused.
    t.announce(secs(59), announce_request());
    assert!(matches!(
        sent(&mut t),
        UdpRequest::Announce {
            connection_id: 1,
            ..
        }
    ));
    let tid = t.requests[0].state;
    let RequestState::Sent { transaction_id, .. } = tid else {
        panic!()
    };
    answer(&mut t, secs(59), &announce_answer(transaction_id, vec![]));
    t.poll_event();

    // At 60 s it has expired.
    t.announce(secs(60), announce_request());
    assert!(matches!(sent(&mut t), UdpRequest::Connect { .. }));
    assert_eq!(t.poll_transmit(), None);
}

#[test]
fn concurrent_requests_share_one_connect() {
    let mut t = tracker();
    let a = t.announce(secs(0), announce_request());
    let b = t.scrape(secs(0), vec![InfoHashV1([3; 20])]).unwrap();
    assert_ne!(a, b);
    connect(&mut t, secs(1), 2);
    let first = sent(&mut t);
    let second = sent(&mut t);
    assert_eq!(t.poll_transmit(), None);
    assert!(matches!(first, UdpRequest::Announce { .. }));
    assert!(matches!(second, UdpRequest::Scrape { .. }));
    assert_ne!(first.transaction_id(), second.transaction_id());
    // Answers in either order reach the right request.
    answer(
        &mut t,
        secs(2),
        &UdpResponse::Scrape {
            transaction_id: second.transaction_id(),
            stats: vec![],
        },
    );
    answer(
        &mut t,
        secs(2),
        &announce_answer(first.transaction_id(), vec![]),
    );
    assert_eq!(t.poll_event().map(|e| e.request), Some(b));
    assert_eq!(t.poll_event().map(|e| e.request), Some(a));
}

#[test]
fn error_and_wrong_action_fail_the_request() {
    let mut t = tracker();
    let a = t.announce(secs(0), announce_request());
    let connect_tid = sent(&mut t).transaction_id();
    answer(
        &mut t,
        secs(0),
        &UdpResponse::Error {
            transaction_id: connect_tid,
            message: "go away".into(),
        },
    );
    assert_eq!(
        t.poll_event(),
        Some(UdpEvent {
            request: a,
            outcome: UdpOutcome::Failed(UdpTrackerError::Tracker("go away".into()))
        })
    );
    assert!(t.is_idle());

    let b = t.announce(secs(1), announce_request());
    connect(&mut t, secs(1), 3);
    let tid = sent(&mut t).transaction_id();
    answer(
        &mut t,
        secs(1),
        &UdpResponse::Scrape {
            transaction_id: tid,
            stats: vec![],
        },
    );
    assert_eq!(
        t.poll_event(),
        Some(UdpEvent {
            request: b,
            outcome: UdpOutcome::Failed(UdpTrackerError::UnexpectedAction {
                expected: "announce"
            })
        })
    );
}

#[test]
fn malformed_answer_fails_its_request_and_is_reported() {
    let mut t = tracker();
    let a = t.announce(secs(0), announce_request());
    connect(&mut t, secs(0), 3);
    let tid = sent(&mut t).transaction_id();
    let mut packet = vec![0, 0, 0, 1];
    packet.extend_from_slice(&tid.to_be_bytes());
    packet.extend_from_slice(&[0, 0]);
    let err = t.handle_datagram(secs(1), &packet).unwrap_err();
    assert!(matches!(err, UdpPacketError::TooShort { .. }));
    assert_eq!(
        t.poll_event(),
        Some(UdpEvent {
            request: a,
            outcome: UdpOutcome::Failed(UdpTrackerError::Malformed(err))
        })
    );
    // Garbage with no known transaction id changes nothing.
    let b = t.announce(secs(2), announce_request());
    assert!(t.handle_datagram(secs(2), &[1, 2, 3]).is_err());
    assert!(t
        .handle_datagram(secs(2), &[0, 0, 0, 9, 1, 2, 3, 4])
        .is_err());
    assert_eq!(t.poll_event(), None);
    assert!(t.cancel(b));
    assert!(!t.cancel(b));
    assert!(t.is_idle());
}

#[test]
fn transaction_ids_follow_the_seed() {
    let run = |seed| {
        let mut t = UdpTracker::new(V4_TRACKER.parse().unwrap(), Default::default(), seed);
        t.announce(secs(0), announce_request());
        sent(&mut t).transaction_id()
    };
    assert_eq!(run(9), run(9));
    assert_ne!(run(9), run(10));
}

fn arb_request() -> impl Strategy<Value = AnnounceRequest> {
    (
        any::<[u8; 20]>(),
        any::<[u8; 20]>(),
        any::<u16>(),
        any::<(u64, u64, u64)>(),
        0u32..4,
        proptest::option::of(0..=i32::MAX as u32),
        any::<u32>(),
    )
        .prop_map(
            |(hash, id, port, (up, down, left), event, num_want, key)| AnnounceRequest {
                info_hash: InfoHashV1(hash),
                peer_id: PeerId(id),
                port,
                uploaded: up,
                downloaded: down,
                left,
                event: AnnounceEvent::from_udp_code(event).unwrap_or_default(),
                num_want,
                key,
                tracker_id: None,
            },
        )
}

fn arb_udp_request() -> impl Strategy<Value = UdpRequest> {
    prop_oneof![
        any::<u32>().prop_map(|transaction_id| UdpRequest::Connect { transaction_id }),
        (any::<u64>(), any::<u32>(), arb_request()).prop_map(
            |(connection_id, transaction_id, request)| UdpRequest::Announce {
                connection_id,
                transaction_id,
                request
            }
        ),
        (
            any::<u64>(),
            any::<u32>(),
            proptest::collection::vec(any::<[u8; 20]>().prop_map(InfoHashV1), 0..=74)
        )
            .prop_map(|(connection_id, transaction_id, info_hashes)| {
                UdpRequest::Scrape {
                    connection_id,
                    transaction_id,
                    info_hashes,
                }
            }),
    ]
}

fn arb_peer(family: AddressFamily) -> BoxedStrategy<SocketAddr> {
    match family {
        AddressFamily::V4 => (any::<[u8; 4]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::from((ip, port)))
            .boxed(),
        AddressFamily::V6 => (any::<[u8; 16]>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::from((ip, port)))
            .boxed(),
    }
}

fn arb_udp_response(family: AddressFamily) -> impl Strategy<Value = UdpResponse> {
    prop_oneof![
        any::<(u32, u64)>().prop_map(|(transaction_id, connection_id)| UdpResponse::Connect {
            transaction_id,
            connection_id
        }),
        (
            any::<(u32, u32, u32, u32)>(),
            proptest::collection::vec(arb_peer(family), 0..20)
        )
            .prop_map(|((transaction_id, interval, leechers, seeders), peers)| {
                UdpResponse::Announce {
                    transaction_id,
                    interval,
                    leechers,
                    seeders,
                    peers,
                }
            }),
        (
            any::<u32>(),
            proptest::collection::vec(any::<(u32, u32, u32)>(), 0..20)
        )
            .prop_map(|(transaction_id, stats)| UdpResponse::Scrape {
                transaction_id,
                stats: stats
                    .into_iter()
                    .map(|(complete, downloaded, incomplete)| ScrapeStats {
                        complete,
                        downloaded,
                        incomplete
                    })
                    .collect(),
            }),
        (any::<u32>(), "[^\u{0}]{0,40}").prop_map(|(transaction_id, message)| {
            UdpResponse::Error {
                transaction_id,
                message,
            }
        }),
    ]
}

proptest! {
    #[test]
    fn requests_round_trip(request in arb_udp_request()) {
        prop_assert_eq!(UdpRequest::parse(&request.encode()), Ok(request));
    }

    #[test]
    fn v4_responses_round_trip(response in arb_udp_response(AddressFamily::V4)) {
        let bytes = response.encode(AddressFamily::V4);
        prop_assert_eq!(UdpResponse::parse(&bytes, AddressFamily::V4), Ok(response));
    }

    #[test]
    fn v6_responses_round_trip(response in arb_udp_response(AddressFamily::V6)) {
        let bytes = response.encode(AddressFamily::V6);
        prop_assert_eq!(UdpResponse::parse(&bytes, AddressFamily::V6), Ok(response));
    }

    #[test]
    fn packet_parsers_never_panic(packet in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = UdpRequest::parse(&packet);
        let _ = UdpResponse::parse(&packet, AddressFamily::V4);
        let _ = UdpResponse::parse(&packet, AddressFamily::V6);
    }

    #[test]
    fn tracker_never_panics_on_datagrams(
        packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        tid_prefix in any::<bool>(),
    ) {
        let mut t = tracker();
        t.announce(secs(0), announce_request());
        let tid = sent(&mut t).transaction_id();
        for (i, mut packet) in packets.into_iter().enumerate() {
            // Half the time, aim at the outstanding connect.
            if tid_prefix && packet.len() >= 8 {
                packet[4..8].copy_from_slice(&tid.to_be_bytes());
            }
            let _ = t.handle_datagram(secs(i as u64), &packet);
            t.handle_timeout(secs(i as u64 * 20));
            while t.poll_transmit().is_some() {}
            while t.poll_event().is_some() {}
        }
    }
}

proptest! {
    /// What the `udp_tracker_packet` fuzz target checks.
    #[test]
    fn reparsing_is_stable(packet in proptest::collection::vec(any::<u8>(), 0..160)) {
        if let Ok(request) = UdpRequest::parse(&packet) {
            prop_assert_eq!(UdpRequest::parse(&request.encode()), Ok(request));
        }
        for family in [AddressFamily::V4, AddressFamily::V6] {
            if let Ok(response) = UdpResponse::parse(&packet, family) {
                prop_assert_eq!(UdpResponse::parse(&response.encode(family), family), Ok(response));
            }
        }
    }

    #[test]
    fn error_messages_reparse(text in proptest::collection::vec(any::<u8>(), 0..40), tid in any::<u32>()) {
        let mut packet = vec![0, 0, 0, 3];
        packet.extend_from_slice(&tid.to_be_bytes());
        packet.extend_from_slice(&text);
        let response = UdpResponse::parse(&packet, AddressFamily::V4).unwrap();
        prop_assert_eq!(UdpResponse::parse(&response.encode(AddressFamily::V4), AddressFamily::V4), Ok(response));
    }
}
