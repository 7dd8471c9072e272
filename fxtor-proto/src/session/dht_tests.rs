//! The session's DHT in a simulated network: torrents found through it, BEP5's `port`
//! messages, and the saved routing table.

use core::time::Duration;

use super::testing::{Content, Net};
use super::*;
use crate::create::TorrentVersion;
use crate::magnet::{MagnetLink, PeerAddress};

const KIB: u64 = 1024;
const MINUTE: Duration = Duration::from_secs(60);

/// A network of `n` nodes running a DHT, each bootstrapped from node 0 (node 0 from
/// nobody).
fn dht_network(n: usize) -> Net {
    let mut net = Net::with_seed(7);
    let first = net.next_config();
    let zero = net.add_node_with(with_dht(first, Vec::new()));
    let bootstrap = vec![PeerAddress::Ip(net.nodes[zero].addr)];
    for _ in 1..n {
        let config = with_dht(net.next_config(), bootstrap.clone());
        let i = net.add_node_with(config);
        net.drain(i);
    }
    net
}

fn with_dht(mut config: SessionConfig, bootstrap: Vec<PeerAddress>) -> SessionConfig {
    config.dht = Some(DhtSettings::new(bootstrap));
    config
}

fn routing_nodes(net: &Net, node: usize) -> usize {
    let stats = net.nodes[node].session.dht_stats(net.now).expect("a DHT");
    stats.ipv4.nodes() + stats.ipv6.nodes()
}

fn bare_magnet(net: &mut Net, node: usize, content: &Content) -> TorrentId {
    let link = MagnetLink::new(content.info.info_hashes());
    let params = AddTorrentParams::new(TorrentSource::Magnet(link));
    net.add_torrent(node, params, content, [])
}

fn downloads_by_dht(version: TorrentVersion) {
    let mut net = dht_network(20);
    net.run_for(MINUTE);
    assert!(
        (1..20).all(|i| routing_nodes(&net, i) >= 2),
        "every node joined the DHT"
    );
    assert!(net.nodes[3].saw(|a| matches!(a, Alert::DhtBootstrapped { .. })));
    let content = Content::new(version, 16 * 1024, &[("a", 200 * KIB)], 11);
    net.add_seed(5, &content);
    net.run_for(MINUTE);
    let torrent = bare_magnet(&mut net, 17, &content);
    assert!(
        net.run_until(5 * MINUTE, |net| net.is_in(
            17,
            torrent,
            TorrentState::Seeding
        )),
        "{:?}",
        net.nodes[17].session.status(net.now, torrent)
    );
    let n = content.info.num_pieces();
    assert_eq!(
        net.nodes[17].store.bytes(torrent, n).as_deref(),
        Some(&content.data[..])
    );
    assert!(net.nodes[17].saw(
        |a| matches!(a, Alert::DhtPeers { torrent: t, peers } if *t == torrent && *peers > 0)
    ));
}

#[test]
fn a_bare_magnet_finds_its_seed_through_the_dht() {
    downloads_by_dht(TorrentVersion::V1);
}

#[test]
fn a_hybrid_bare_magnet_finds_its_seed_through_the_dht() {
    downloads_by_dht(TorrentVersion::Hybrid);
}

#[test]
fn a_private_torrent_is_not_announced() {
    let mut net = dht_network(10);
    net.run_for(MINUTE);
    let mut builder = crate::create::TorrentBuilder::single_file("p", 32 * KIB);
    builder.set_piece_length(16 * 1024).set_private(true);
    let mut hasher = builder.into_hasher().unwrap();
    let data = vec![7u8; 32 * KIB as usize];
    hasher.update(&data).unwrap();
    let info = crate::TorrentInfo::from_bytes(&hasher.finish().unwrap().bytes).unwrap();
    assert!(info.is_private());
    let content = Content {
        info: std::sync::Arc::new(info),
        data: data.into(),
    };
    net.add_seed(4, &content);
    net.run_for(MINUTE);
    let torrent = bare_magnet(&mut net, 8, &content);
    net.run_for(3 * MINUTE);
    let status = net.nodes[8].session.status(net.now, torrent).unwrap();
    assert_eq!(status.state, TorrentState::DownloadingMetadata);
    // It looked (and may have found itself), but was never told of the seed.
    assert!(net.nodes[8].session.dht_stats(net.now).is_some());
    assert_eq!(net.wire(8, 4).bytes_delivered, 0);
    assert_eq!(net.wire(4, 8).bytes_delivered, 0);
}

/// Two nodes that only know each other as peers: the DHT bit and `port` messages put
/// each one's DHT node in the other's routing table.
#[test]
fn port_messages_introduce_dht_nodes() {
    let mut net = Net::with_seed(3);
    let a = net.add_node_with(with_dht(net.next_config(), Vec::new()));
    let b = net.add_node_with(with_dht(net.next_config(), Vec::new()));
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("a", 64 * KIB)], 5);
    net.add_seed(a, &content);
    let torrent = net.add_leecher(b, &content, &[a]);
    assert!(net.run_until(MINUTE, |net| net.is_in(b, torrent, TorrentState::Seeding)));
    net.run_for(Duration::from_secs(10));
    assert_eq!(routing_nodes(&net, a), 1);
    assert_eq!(routing_nodes(&net, b), 1);
    assert!(net.wire(a, b).count(crate::wire::MessageId::Port) == 1);
    assert!(net.wire(b, a).count(crate::wire::MessageId::Port) == 1);
}

/// Peers of a private torrent (BEP27) exchange no `port` messages, though both run a DHT.
#[test]
fn a_private_torrents_peers_send_no_port_messages() {
    let mut net = Net::with_seed(3);
    let a = net.add_node_with(with_dht(net.next_config(), Vec::new()));
    let b = net.add_node_with(with_dht(net.next_config(), Vec::new()));
    let mut builder = crate::create::TorrentBuilder::single_file("p", 64 * KIB);
    builder.set_piece_length(16 * 1024).set_private(true);
    let mut hasher = builder.into_hasher().unwrap();
    let data = vec![9u8; 64 * KIB as usize];
    hasher.update(&data).unwrap();
    let info = crate::TorrentInfo::from_bytes(&hasher.finish().unwrap().bytes).unwrap();
    let content = Content {
        info: std::sync::Arc::new(info),
        data: data.into(),
    };
    net.add_seed(a, &content);
    let torrent = net.add_leecher(b, &content, &[a]);
    assert!(net.run_until(MINUTE, |net| net.is_in(b, torrent, TorrentState::Seeding)));
    net.run_for(Duration::from_secs(10));
    assert_eq!(net.wire(a, b).count(crate::wire::MessageId::Port), 0);
    assert_eq!(net.wire(b, a).count(crate::wire::MessageId::Port), 0);
    assert_eq!(routing_nodes(&net, a), 0);
    assert_eq!(routing_nodes(&net, b), 0);
}

/// Without a DHT, no `port` message is sent, and a DHT peer gets none either.
#[test]
fn no_dht_no_port_messages() {
    let mut net = Net::with_seed(3);
    let a = net.add_node();
    let b = net.add_node_with(with_dht(net.next_config(), Vec::new()));
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("a", 64 * KIB)], 5);
    net.add_seed(a, &content);
    let torrent = net.add_leecher(b, &content, &[a]);
    assert!(net.run_until(MINUTE, |net| net.is_in(b, torrent, TorrentState::Seeding)));
    assert!(net.nodes[a].session.dht_state(net.now).is_none());
    assert_eq!(net.wire(a, b).count(crate::wire::MessageId::Port), 0);
    assert_eq!(net.wire(b, a).count(crate::wire::MessageId::Port), 0);
    assert_eq!(routing_nodes(&net, b), 0);
}

#[test]
fn the_routing_table_is_saved_and_restored() {
    let mut net = dht_network(8);
    net.run_for(MINUTE);
    let state = net.nodes[2].session.dht_state(net.now).unwrap();
    let before = net.nodes[2].session.dht_stats(net.now).unwrap();
    let mut config = net.next_config();
    config.dht = Some(DhtSettings {
        state: Some(state),
        ..DhtSettings::new(Vec::new())
    });
    let restored = net.add_node_with(config);
    let mut config = net.next_config();
    config.dht = Some(DhtSettings {
        state: Some(bytes::Bytes::from_static(b"garbage")),
        ..DhtSettings::new(Vec::new())
    });
    // Malformed state is ignored: the node starts afresh, knowing nobody.
    let fresh = net.add_node_with(config);
    net.drain(restored);
    net.drain(fresh);
    net.run_for(MINUTE);
    let after = net.nodes[restored].session.dht_stats(net.now).unwrap();
    assert_eq!(after.node_id, before.node_id);
    assert!(
        routing_nodes(&net, restored) >= 2,
        "it rejoined from its saved table"
    );
    assert_eq!(routing_nodes(&net, fresh), 0);
}

/// A DHT whose socket cannot reach IPv6 (`DhtSettings::ipv6` off) sends nothing to an
/// IPv6 node, and joins through the IPv4 one; with it on, the IPv6 node is asked.
#[test]
fn ipv6_nodes_are_left_alone_without_ipv6() {
    for ipv6 in [false, true] {
        let mut config = Net::config(0);
        let mut settings = DhtSettings::new(vec![
            PeerAddress::Ip("[2001:db8::9]:6881".parse().unwrap()),
            PeerAddress::Ip("10.0.0.9:6881".parse().unwrap()),
        ]);
        settings.ipv6 = ipv6;
        config.dht = Some(settings);
        let now = crate::time::Instant::ZERO;
        let mut session = Session::new(now, config);
        let sent: Vec<_> = std::iter::from_fn(|| session.poll_datagram()).collect();
        assert_eq!(sent.iter().any(|d| d.to.is_ipv6()), ipv6, "{sent:?}");
        if !ipv6 {
            assert!(sent.iter().any(|d| d.to.is_ipv4()), "{sent:?}");
        }
    }
}

#[test]
fn host_name_bootstrap_nodes_are_resolved_by_the_driver() {
    let mut config = Net::config(0);
    config.dht = Some(DhtSettings::new(vec![
        PeerAddress::Host {
            name: "router.example".to_owned(),
            port: 6881,
        },
        PeerAddress::Ip("10.0.0.9:6881".parse().unwrap()),
    ]));
    let now = crate::time::Instant::ZERO;
    let mut session = Session::new(now, config);
    let Some(Action::Resolve { id, host, port }) = session.poll_action() else {
        panic!("a name to resolve");
    };
    assert_eq!((host.as_str(), port), ("router.example", 6881));
    // The literal address is queried at once, the resolved one once it is known.
    let first: Vec<_> = std::iter::from_fn(|| session.poll_datagram()).collect();
    assert!(first
        .iter()
        .all(|d| d.to == "10.0.0.9:6881".parse().unwrap()));
    assert!(!first.is_empty());
    session.handle_resolved(now, id, Ok(vec!["10.0.0.8:1".parse().unwrap()]));
    session.handle_timeout(now + Duration::from_secs(31));
    let later: Vec<_> = std::iter::from_fn(|| session.poll_datagram()).collect();
    assert!(
        later
            .iter()
            .any(|d| d.to == "10.0.0.8:6881".parse().unwrap()),
        "{later:?}"
    );
}

#[test]
fn loopback_bootstrap_lists_are_recognised() {
    let loopback = DhtSettings::new(vec![PeerAddress::Ip("127.0.0.1:1".parse().unwrap())]);
    assert!(loopback.loopback_only());
    let mixed = DhtSettings::new(vec![
        PeerAddress::Ip("127.0.0.1:1".parse().unwrap()),
        PeerAddress::Ip("10.0.0.1:1".parse().unwrap()),
    ]);
    assert!(!mixed.loopback_only());
    assert!(!DhtSettings::new(Vec::new()).loopback_only());
}

/// A leecher that started before any seed was announced keeps looking (every minute while
/// it has few peers) and finds the seed once it appears.
#[test]
fn a_leecher_keeps_looking_until_a_seed_appears() {
    let mut net = dht_network(12);
    net.run_for(MINUTE);
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("a", 64 * KIB)], 13);
    let torrent = bare_magnet(&mut net, 9, &content);
    net.run_for(3 * MINUTE);
    assert!(net.is_in(9, torrent, TorrentState::DownloadingMetadata));
    net.add_seed(4, &content);
    let added = net.now;
    assert!(net.run_until(5 * MINUTE, |net| net.is_in(
        9,
        torrent,
        TorrentState::Seeding
    )));
    assert!(
        net.now - added <= super::DHT_LOOKUP_INTERVAL_FEW_PEERS + Duration::from_secs(10),
        "found within one lookup interval: {:?}",
        net.now - added
    );
}

/// A bare magnet whose first lookup found nobody looks again within seconds while it has
/// no peer (5, 10, 20… s), so a seed announced just after it is found at once, not a
/// minute later. (The seed's own lookup cannot be what finds it: the leecher has no listen
/// port, so it only asks and is never announced.)
#[test]
fn a_peerless_magnet_looks_again_within_seconds() {
    let mut net = dht_network(12);
    let bootstrap = vec![PeerAddress::Ip(net.nodes[0].addr)];
    let mut config = with_dht(net.next_config(), bootstrap);
    config.listen_port = 0;
    let leecher = net.add_node_with(config);
    net.run_for(MINUTE);
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("a", 64 * KIB)], 19);
    let torrent = bare_magnet(&mut net, leecher, &content);
    net.run_for(Duration::from_secs(3));
    net.add_seed(4, &content);
    let added = net.now;
    assert!(net.run_until(MINUTE, |net| net.is_in(
        leecher,
        torrent,
        TorrentState::Seeding
    )));
    let took = net.now - added;
    println!("found the seed {took:?} after it was added");
    assert!(
        took < super::DHT_LOOKUP_RETRY_NO_PEERS * 4,
        "found within the first retries: {took:?}"
    );
}

/// Announces expire after 30 minutes at the other end: a seed announces again every 15, so
/// a leecher arriving an hour later still finds it.
#[test]
fn a_seed_is_announced_again() {
    let mut net = dht_network(12);
    net.run_for(MINUTE);
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("a", 64 * KIB)], 17);
    net.add_seed(2, &content);
    net.run_for(60 * MINUTE);
    let torrent = bare_magnet(&mut net, 10, &content);
    assert!(net.run_until(5 * MINUTE, |net| net.is_in(
        10,
        torrent,
        TorrentState::Seeding
    )));
}
