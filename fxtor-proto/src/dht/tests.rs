//! Tests of [`Dht`] as a whole: how it answers queries and what it sends.

use super::krpc::*;
use super::*;

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([100, 64, 0, n], 6881))
}

fn config(seed: u64) -> DhtConfig {
    DhtConfig {
        seed,
        restrict_ips: false,
        ..DhtConfig::default()
    }
}

fn query(t: &[u8], id: NodeId, kind: QueryKind) -> Vec<u8> {
    Message {
        transaction: TransactionId::from_slice(t).unwrap(),
        version: None,
        read_only: false,
        ip: None,
        body: Body::Query(Query {
            id,
            want: Want::default(),
            kind,
        }),
    }
    .to_vec()
}

fn sent(dht: &mut Dht) -> Vec<(SocketAddr, Message)> {
    std::iter::from_fn(|| dht.poll_transmit())
        .map(|d| (d.to, Message::decode(&d.data).unwrap()))
        .collect()
}

fn only_response(dht: &mut Dht) -> (Response, Option<SocketAddr>) {
    let mut out = sent(dht);
    assert_eq!(out.len(), 1, "{out:?}");
    let (_, message) = out.remove(0);
    match message.body {
        Body::Response(r) => (r, message.ip),
        other => panic!("not a response: {other:?}"),
    }
}

/// The one error among what was sent (housekeeping may have sent queries too).
fn only_error(dht: &mut Dht) -> ErrorMessage {
    let errors: Vec<ErrorMessage> = sent(dht)
        .into_iter()
        .filter_map(|(_, m)| match m.body {
            Body::Error(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors[0].clone()
}

#[test]
fn answers_ping_find_node_and_get_peers() {
    let now = Instant::ZERO;
    let mut dht = Dht::new(now, config(1));
    let asker = NodeId([0x11; 20]);
    dht.handle_datagram(now, addr(1), &query(b"p1", asker, QueryKind::Ping));
    let (r, ip) = only_response(&mut dht);
    assert_eq!(r.id, dht.node_id());
    // BEP42: the response tells the asker its address.
    assert_eq!(ip, Some(addr(1)));
    // The asker is in the table now (questionable until it answers us).
    assert_eq!(dht.stats(now).ipv4.questionable, 1);

    dht.handle_datagram(
        now,
        addr(2),
        &query(
            b"f1",
            NodeId([0x22; 20]),
            QueryKind::FindNode {
                target: NodeId([0x10; 20]),
            },
        ),
    );
    let (r, _) = only_response(&mut dht);
    assert_eq!(
        r.nodes,
        vec![NodeInfo {
            id: asker,
            addr: addr(1)
        }]
    );

    let info_hash = NodeId([0x99; 20]);
    dht.handle_datagram(
        now,
        addr(3),
        &query(b"g1", NodeId([0x33; 20]), QueryKind::GetPeers { info_hash }),
    );
    let (r, _) = only_response(&mut dht);
    let token = r.token.expect("a token");
    assert!(r.values.is_empty());
    assert_eq!(r.nodes.len(), 2);

    // Announce with that token, implied port: the peer is the datagram's source.
    let announce = QueryKind::AnnouncePeer {
        info_hash,
        port: 0,
        implied_port: true,
        token: token.clone(),
    };
    dht.handle_datagram(now, addr(3), &query(b"a1", NodeId([0x33; 20]), announce));
    let (r, _) = only_response(&mut dht);
    assert_eq!(r.id, dht.node_id());
    assert_eq!(dht.stats(now).stored_peers, 1);

    dht.handle_datagram(
        now,
        addr(4),
        &query(b"g2", NodeId([0x44; 20]), QueryKind::GetPeers { info_hash }),
    );
    let (r, _) = only_response(&mut dht);
    assert_eq!(r.values, vec![addr(3)]);

    // The token is tied to the address it was given to.
    let stolen = QueryKind::AnnouncePeer {
        info_hash,
        port: 1234,
        implied_port: false,
        token,
    };
    dht.handle_datagram(now, addr(5), &query(b"a2", NodeId([0x55; 20]), stolen));
    assert_eq!(only_error(&mut dht).code, ERROR_PROTOCOL);

    // BEP51.
    dht.handle_datagram(
        now,
        addr(6),
        &query(
            b"s1",
            NodeId([0x66; 20]),
            QueryKind::SampleInfohashes { target: info_hash },
        ),
    );
    let (r, _) = only_response(&mut dht);
    assert_eq!(r.samples, Some(vec![info_hash]));
    assert_eq!(r.num, Some(1));
    assert_eq!(r.interval, Some(6 * 3600));
}

#[test]
fn tokens_expire_after_two_rotations() {
    let mut dht = Dht::new(Instant::ZERO, config(2));
    let info_hash = NodeId([0x99; 20]);
    dht.handle_datagram(
        Instant::ZERO,
        addr(3),
        &query(b"g1", NodeId([0x33; 20]), QueryKind::GetPeers { info_hash }),
    );
    let token = only_response(&mut dht).0.token.unwrap();
    // Ten minutes of housekeeping later, the token is refused.
    let mut now = Instant::ZERO;
    while now < Instant::from_secs(601) {
        now += Duration::from_secs(5);
        dht.handle_timeout(now);
    }
    let announce = QueryKind::AnnouncePeer {
        info_hash,
        port: 1,
        implied_port: false,
        token,
    };
    dht.handle_datagram(now, addr(3), &query(b"a1", NodeId([0x33; 20]), announce));
    assert_eq!(only_error(&mut dht).code, ERROR_PROTOCOL);
}

#[test]
fn malformed_queries_get_203_unknown_methods_204_garbage_nothing() {
    let now = Instant::ZERO;
    let mut dht = Dht::new(now, config(3));
    dht.handle_datagram(
        now,
        addr(1),
        b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:xy1:y1:qe",
    );
    let error = only_error(&mut dht);
    assert_eq!(error.code, ERROR_PROTOCOL);
    dht.handle_datagram(
        now,
        addr(1),
        b"d1:ad2:id20:abcdefghij0123456789e1:q3:put1:t2:xy1:y1:qe",
    );
    assert_eq!(only_error(&mut dht).code, ERROR_METHOD_UNKNOWN);
    for garbage in [
        &b""[..],
        b"d",
        b"de",
        b"i1e",
        b"d1:t2:xy1:y1:re",
        b"d1:y1:qe",
        &[0xff; 100],
    ] {
        dht.handle_datagram(now, addr(1), garbage);
        assert!(sent(&mut dht).is_empty(), "{garbage:?}");
    }
    // Responses nobody asked for are dropped.
    let stray = Message {
        transaction: TransactionId::from_u16(7),
        version: None,
        read_only: false,
        ip: None,
        body: Body::Response(Response {
            id: NodeId([1; 20]),
            ..Response::default()
        }),
    };
    dht.handle_datagram(now, addr(9), &stray.to_vec());
    assert_eq!(dht.stats(now).ipv4.nodes(), 1);
}

#[test]
fn read_only_nodes_stay_silent_and_out_of_tables() {
    let now = Instant::ZERO;
    let mut ro = Dht::new(
        now,
        DhtConfig {
            read_only: true,
            ..config(4)
        },
    );
    ro.handle_datagram(
        now,
        addr(1),
        &query(b"p1", NodeId([0x11; 20]), QueryKind::Ping),
    );
    assert!(sent(&mut ro).is_empty());
    // Its own queries carry ro = 1.
    ro.add_node(now, addr(2));
    let out = sent(&mut ro);
    assert_eq!(out.len(), 1);
    assert!(out[0].1.read_only);
    // A normal node answers a read-only node but does not add it.
    let mut normal = Dht::new(now, config(5));
    normal.handle_datagram(now, addr(1), &out[0].1.to_vec());
    let (r, _) = only_response(&mut normal);
    assert_eq!(r.id, normal.node_id());
    assert_eq!(normal.stats(now).ipv4.nodes(), 0);
}

#[test]
fn requests_time_out_and_nodes_turn_bad() {
    let mut now = Instant::ZERO;
    let mut dht = Dht::new(now, config(6));
    dht.add_bootstrap(now, addr(1));
    let out = sent(&mut dht);
    assert_eq!(out.len(), 1);
    assert!(matches!(
        &out[0].1.body,
        Body::Query(Query {
            kind: QueryKind::FindNode { .. },
            ..
        })
    ));
    assert_eq!(dht.poll_timeout(), Some(now + Duration::from_secs(3)));
    // No answer: sent once more, then the lookup gives up.
    now += Duration::from_secs(3);
    dht.handle_timeout(now);
    assert_eq!(sent(&mut dht).len(), 1);
    now += Duration::from_secs(3);
    dht.handle_timeout(now);
    assert_eq!(dht.poll_event(), Some(DhtEvent::Bootstrapped { nodes: 0 }));
    assert_eq!(dht.stats(now).pending_requests, 0);
    // It tries again later, while the table is empty.
    let mut retried = false;
    for _ in 0..20 {
        now += Duration::from_secs(5);
        dht.handle_timeout(now);
        retried |= !sent(&mut dht).is_empty();
    }
    assert!(retried);
}

#[test]
fn an_announce_is_found_by_a_third_node() {
    let now = Instant::ZERO;
    let mut a = Dht::new(now, config(7));
    let mut b = Dht::new(now, config(8));
    b.add_bootstrap(now, addr(1));
    pump(now, &mut [(addr(1), &mut a), (addr(2), &mut b)]);
    assert_eq!(b.poll_event(), Some(DhtEvent::Bootstrapped { nodes: 1 }));
    assert_eq!(a.stats(now).ipv4.nodes(), 1);
    let info_hash = NodeId([0x42; 20]);
    let lookup = b.announce(now, info_hash, None);
    pump(now, &mut [(addr(1), &mut a), (addr(2), &mut b)]);
    match b.poll_event() {
        Some(DhtEvent::LookupDone {
            lookup: l, stats, ..
        }) => {
            assert_eq!(l, lookup);
            assert_eq!(stats.announced_to, 1);
            assert_eq!(stats.responses, 1);
        }
        other => panic!("{other:?}"),
    }
    // implied_port: b's datagrams come from addr(2).
    assert_eq!(a.stats(now).stored_peers, 1);
    let mut c = Dht::new(now, config(9));
    c.add_node(now, addr(1));
    pump(
        now,
        &mut [(addr(1), &mut a), (addr(2), &mut b), (addr(3), &mut c)],
    );
    let lookup = c.get_peers(now, info_hash);
    pump(
        now,
        &mut [(addr(1), &mut a), (addr(2), &mut b), (addr(3), &mut c)],
    );
    let events: Vec<DhtEvent> = std::iter::from_fn(|| c.poll_event()).collect();
    assert!(
        events.contains(&DhtEvent::Peers {
            lookup,
            info_hash,
            peers: vec![addr(2)]
        }),
        "{events:?}"
    );
}

#[test]
fn save_and_restore_keep_the_id_and_nodes() {
    let now = Instant::ZERO;
    let mut dht = Dht::new(now, config(10));
    for n in 1..=5 {
        dht.handle_datagram(
            now,
            addr(n),
            &query(b"p1", NodeId([n; 20]), QueryKind::Ping),
        );
    }
    let _ = sent(&mut dht);
    let saved = dht.save_state(now);
    let restored = Dht::restore(now, config(11), &saved);
    let mut restored = restored.unwrap();
    assert_eq!(restored.node_id(), dht.node_id());
    // The saved nodes are asked at once.
    let asked: Vec<SocketAddr> = sent(&mut restored).into_iter().map(|(to, _)| to).collect();
    assert_eq!(asked.len(), 3, "alpha queries at first");
    assert!(asked.iter().all(|a| (1..=5).map(addr).any(|b| b == *a)));
    // With BEP42 on and an external IP the saved id does not suit, a new id is drawn.
    let public: IpAddr = "100.100.1.1".parse().unwrap();
    let strict = DhtConfig {
        seed: 1,
        external_ip: Some(public),
        ..DhtConfig::default()
    };
    let moved = Dht::restore(now, strict, &saved).unwrap();
    assert_ne!(moved.node_id(), dht.node_id());
    assert!(moved.node_id().is_secure_for(public));
    assert!(matches!(
        Dht::restore(now, config(1), b"d2:id3:abce"),
        Err(RestoreError::Field("id"))
    ));
    assert!(matches!(
        Dht::restore(now, config(1), b"xx"),
        Err(RestoreError::Bencode(_))
    ));
    assert!(Dht::restore(now, config(1), b"d2:id20:aaaaaaaaaaaaaaaaaaaa5:nodes3:abce").is_err());
}

#[test]
fn a_flooding_ip_is_limited() {
    let now = Instant::ZERO;
    let mut dht = Dht::new(now, config(12));
    for n in 0..1000u32 {
        let t = n.to_be_bytes();
        dht.handle_datagram(now, addr(1), &query(&t, NodeId([1; 20]), QueryKind::Ping));
    }
    let answered = sent(&mut dht).len();
    assert_eq!(answered, RateLimitConfig::default().burst as usize);
    assert_eq!(
        dht.stats(now).rate_limited_datagrams,
        1000 - answered as u64
    );
}

#[test]
fn external_address_vote_gives_a_secure_id() {
    let now = Instant::ZERO;
    let public: IpAddr = "100.100.1.1".parse().unwrap();
    let mut dht = Dht::new(
        now,
        DhtConfig {
            seed: 13,
            ..DhtConfig::default()
        },
    );
    assert!(!dht.node_id().is_secure_for(public));
    // Five nodes answer pings, each saying where they see us.
    for n in 1..=5u8 {
        dht.add_node(now, addr(n));
        let (to, message) = sent(&mut dht).remove(0);
        let mut rng = crate::rng::Rng::new(u64::from(n));
        let id = NodeId::secure(to.ip(), n, NodeId::random(&mut rng));
        let answer = Message {
            transaction: message.transaction,
            version: None,
            read_only: false,
            ip: Some(SocketAddr::new(public, 6881)),
            body: Body::Response(Response {
                id,
                ..Response::default()
            }),
        };
        dht.handle_datagram(now, to, &answer.to_vec());
    }
    assert_eq!(
        dht.poll_event(),
        Some(DhtEvent::ExternalAddress {
            ip: public,
            node_id_changed: true
        })
    );
    assert!(dht.node_id().is_secure_for(public));
    assert_eq!(dht.external_ip(), Some(public));
    // The nodes survived the rebuild.
    assert_eq!(dht.stats(now).ipv4.nodes(), 5);
}

/// Delivers every datagram among `nodes` at once until all are quiet.
fn pump(now: Instant, nodes: &mut [(SocketAddr, &mut Dht)]) {
    loop {
        let mut moved = false;
        for i in 0..nodes.len() {
            while let Some(d) = nodes[i].1.poll_transmit() {
                let from = nodes[i].0;
                if let Some((_, to)) = nodes.iter_mut().find(|(a, _)| *a == d.to) {
                    to.handle_datagram(now, from, &d.data);
                }
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn valid_query() -> impl Strategy<Value = Vec<u8>> {
        (any::<[u8; 20]>(), any::<[u8; 20]>(), 0..6u8).prop_map(|(id, target, method)| {
            let target = NodeId(target);
            let kind = match method {
                0 => QueryKind::Ping,
                1 => QueryKind::FindNode { target },
                2 => QueryKind::GetPeers { info_hash: target },
                3 => QueryKind::AnnouncePeer {
                    info_hash: target,
                    port: 1,
                    implied_port: false,
                    token: Bytes::from_static(b"12345678"),
                },
                4 => QueryKind::SampleInfohashes { target },
                _ => QueryKind::Unknown {
                    method: Bytes::from_static(b"vote"),
                },
            };
            query(b"tx", NodeId(id), kind)
        })
    }

    proptest! {
        /// Whatever arrives, the DHT does not panic, and all it sends decodes.
        #[test]
        fn arbitrary_and_mutated_datagrams(
            inputs in prop::collection::vec(
                prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..300),
                    (valid_query(), prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4))
                        .prop_map(|(mut bytes, flips)| {
                            for (i, b) in flips {
                                let i = i.index(bytes.len());
                                bytes[i] = b;
                            }
                            bytes
                        }),
                ],
                1..20,
            ),
        ) {
            let now = Instant::ZERO;
            let mut dht = Dht::new(now, config(20));
            for (n, input) in inputs.iter().enumerate() {
                dht.handle_datagram(now, addr(n as u8), input);
            }
            dht.handle_timeout(Instant::from_secs(10));
            while let Some(datagram) = dht.poll_transmit() {
                prop_assert!(Message::decode(&datagram.data).is_ok());
            }
            let stats = dht.stats(now);
            prop_assert!(stats.ipv4.nodes() <= inputs.len());
        }
    }
}

#[test]
fn ipv6_nodes_are_served_by_want() {
    let now = Instant::ZERO;
    let mut dht = Dht::new(now, config(30));
    let v6 = |n: u16| SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, n], 6881));
    dht.handle_datagram(
        now,
        addr(1),
        &query(b"p1", NodeId([1; 20]), QueryKind::Ping),
    );
    dht.handle_datagram(now, v6(2), &query(b"p2", NodeId([2; 20]), QueryKind::Ping));
    let _ = sent(&mut dht);
    assert_eq!(
        (dht.stats(now).ipv4.nodes(), dht.stats(now).ipv6.nodes()),
        (1, 1)
    );
    let target = NodeId([3; 20]);
    // Without `want`, a requester gets its own family.
    dht.handle_datagram(
        now,
        v6(3),
        &query(b"f1", NodeId([3; 20]), QueryKind::FindNode { target }),
    );
    let (r, _) = only_response(&mut dht);
    assert_eq!(
        r.nodes,
        vec![NodeInfo {
            id: NodeId([2; 20]),
            addr: v6(2)
        }]
    );
    // With `want = [n4, n6]`, both.
    let both = Message {
        transaction: TransactionId::from_slice(b"f2").unwrap(),
        version: None,
        read_only: false,
        ip: None,
        body: Body::Query(Query {
            id: NodeId([4; 20]),
            want: Want { v4: true, v6: true },
            kind: QueryKind::FindNode { target },
        }),
    };
    dht.handle_datagram(now, addr(4), &both.to_vec());
    let (r, _) = only_response(&mut dht);
    // (v6(3) entered the table when it asked.)
    let v4_count = r.nodes.iter().filter(|n| n.addr.is_ipv4()).count();
    assert_eq!((v4_count, r.nodes.len() - v4_count), (1, 2));
    // A dual-stack node asks for both in its own lookups.
    dht.get_peers(now, target);
    let queries = sent(&mut dht);
    assert!(!queries.is_empty());
    for (_, message) in queries {
        let Body::Query(q) = message.body else {
            panic!("a query")
        };
        assert_eq!(q.want, Want { v4: true, v6: true });
    }
}

#[test]
fn bep42_keeps_unsuitable_ids_out_of_the_table() {
    let now = Instant::ZERO;
    let mut dht = Dht::new(
        now,
        DhtConfig {
            seed: 31,
            ..DhtConfig::default()
        },
    );
    let public = SocketAddr::from(([100, 100, 7, 7], 6881));
    dht.handle_datagram(now, public, &query(b"p1", NodeId([1; 20]), QueryKind::Ping));
    // Answered, but not admitted.
    assert_eq!(only_response(&mut dht).0.id, dht.node_id());
    assert_eq!(dht.stats(now).ipv4.nodes(), 0);
    let mut rng = crate::rng::Rng::new(1);
    let secure = NodeId::secure(public.ip(), 9, NodeId::random(&mut rng));
    dht.handle_datagram(now, public, &query(b"p2", secure, QueryKind::Ping));
    let _ = sent(&mut dht);
    assert_eq!(dht.stats(now).ipv4.nodes(), 1);
}
