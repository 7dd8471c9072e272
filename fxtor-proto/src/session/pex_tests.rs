//! Finding peers in a simulated swarm: peer exchange (BEP11) brings peers together that
//! were told only of one another's neighbours; `lt_donthave` withdraws a lost piece.

use core::net::SocketAddr;
use core::time::Duration;

use super::testing::{Content, Net};
use super::*;
use crate::create::TorrentVersion;
use crate::wire::extension::PexFlags;
use crate::PieceIndex;

const KIB: u64 = 1024;
const MINUTE: Duration = Duration::from_secs(60);

/// A network whose nodes exchange peers.
fn pex_net(nodes: usize) -> Net {
    let mut net = Net::new();
    for _ in 0..nodes {
        let mut config = net.next_config();
        config.peer_exchange = true;
        net.add_node_with(config);
    }
    net
}

/// Whether `node`'s torrent `t` finished a handshake with `other`'s listening address.
fn connected_to(net: &Net, node: usize, t: TorrentId, other: usize) -> bool {
    let addr = net.nodes[other].addr;
    net.nodes[node]
        .saw(|a| matches!(a, Alert::PeerConnected { torrent, addr: at, .. } if *torrent == t && *at == addr))
}

/// A seeds; B is told of A; C is told of B only.
fn three_nodes(content: &Content) -> (Net, [TorrentId; 3]) {
    let mut net = pex_net(3);
    let a = net.add_seed(0, content);
    let b = net.add_leecher(1, content, &[0]);
    assert!(
        net.run_until(MINUTE, |net| connected_to(net, 1, b, 0)),
        "B connects to A"
    );
    let c = net.add_leecher(2, content, &[1]);
    (net, [a, b, c])
}

#[test]
fn a_peer_learnt_through_pex_is_connected() {
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("x", 512 * KIB)], 41);
    let (mut net, [_, _, c]) = three_nodes(&content);
    let a_addr = net.nodes[0].addr;
    assert!(
        net.run_until(MINUTE, |net| connected_to(net, 2, c, 0)),
        "C learns A from B and connects to it"
    );
    let sources = net.nodes[2].session.torrents[&c]
        .candidate_sources(a_addr)
        .expect("A is in C's peer list");
    assert!(sources.contains(PeerSource::Pex), "{sources:?}");
    assert!(!sources.contains(PeerSource::Manual), "{sources:?}");
    let alert_sources = net.nodes[2].alerts.iter().find_map(|a| match a {
        Alert::PeerConnected { addr, sources, .. } if *addr == a_addr => Some(*sources),
        _ => None,
    });
    assert_eq!(alert_sources, Some(sources));
    // B dialled A, a seed: B said so.
    let flags = net.nodes[2].session.torrents[&c]
        .candidate_flags(a_addr)
        .unwrap();
    assert_eq!(flags, PexFlags::SEED | PexFlags::OUTGOING);
    // A named B, which dialled it, by the listen port from B's extension handshake.
    let b_addr = net.nodes[1].addr;
    assert!(
        net.run_until(MINUTE, |net| net.nodes[2].session.torrents[&c]
            .candidate_sources(b_addr)
            .is_some_and(|s| s.contains(PeerSource::Pex)))
    );
    let b_flags = net.nodes[2].session.torrents[&c]
        .candidate_flags(b_addr)
        .unwrap();
    assert!(!b_flags.contains(PexFlags::OUTGOING), "{b_flags:?}");
    // C's first message came soon after the extension handshake, not a minute later.
    let at = net.nodes[2]
        .first_time(|a| matches!(a, Alert::PeerConnected { addr, .. } if *addr == a_addr))
        .unwrap();
    assert!(at < Instant::ZERO + MINUTE, "{at:?}");
    assert!(net.run_until(5 * MINUTE, |net| net.is_in(2, c, TorrentState::Seeding)));
    let n = content.info.num_pieces();
    assert_eq!(
        net.nodes[2].store.bytes(c, n).as_deref(),
        Some(&content.data[..])
    );
}

#[test]
fn no_peer_exchange_on_a_private_torrent() {
    let content = Content::new_private(TorrentVersion::V1, 16 * 1024, &[("x", 512 * KIB)], 42);
    let (mut net, [_, _, c]) = three_nodes(&content);
    net.run_for(3 * MINUTE);
    assert!(!connected_to(&net, 2, c, 0), "C never hears of A");
    assert_eq!(
        net.nodes[2].session.torrents[&c].candidate_sources(net.nodes[0].addr),
        None
    );
    assert!(connected_to(&net, 2, c, 1), "but talks to B");
}

#[test]
fn the_extension_handshake_offers_ut_pex_on_public_torrents_only() {
    for private in [false, true] {
        let content = if private {
            Content::new_private(TorrentVersion::V1, 16 * 1024, &[("x", 64 * KIB)], 45)
        } else {
            Content::new(TorrentVersion::V1, 16 * 1024, &[("x", 64 * KIB)], 45)
        };
        let mut net = pex_net(2);
        net.add_seed(0, &content);
        let b = net.add_leecher(1, &content, &[0]);
        assert!(
            net.run_until(MINUTE, |net| net.nodes[1].session.torrents[&b]
                .peer_extension_id(net.nodes[0].addr.ip(), "lt_donthave")
                .is_some())
        );
        let torrent = &net.nodes[1].session.torrents[&b];
        let id = |name| torrent.peer_extension_id(net.nodes[0].addr.ip(), name);
        assert_eq!(
            id("ut_pex"),
            Some(if private { 0 } else { 1 }),
            "private: {private}"
        );
        assert_eq!(id("lt_donthave"), Some(3));
        assert_eq!(id("ut_metadata"), Some(2));
    }
}

#[test]
fn no_peer_exchange_when_the_session_turns_it_off() {
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("x", 256 * KIB)], 43);
    let mut net = pex_net(2);
    let mut config = net.next_config();
    config.peer_exchange = false;
    net.add_node_with(config);
    net.add_seed(0, &content);
    let b = net.add_leecher(1, &content, &[0]);
    assert!(net.run_until(MINUTE, |net| connected_to(net, 1, b, 0)));
    let c = net.add_leecher(2, &content, &[1]);
    net.run_for(3 * MINUTE);
    assert!(!connected_to(&net, 2, c, 0));
}

#[test]
fn a_lost_piece_is_withdrawn_with_lt_donthave() {
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("x", 256 * KIB)], 44);
    let mut net = pex_net(2);
    let a = net.add_seed(0, &content);
    let lost = PieceIndex(3);
    // A believes it has every piece, but piece 3 is gone from its disk.
    net.nodes[0]
        .store
        .torrents
        .get_mut(&a)
        .unwrap()
        .pieces
        .remove(&lost);
    let b = net.add_leecher(1, &content, &[0]);
    let n = content.info.num_pieces();
    let done = net.run_until(2 * MINUTE, |net| {
        net.nodes[1].session.status(net.now, b).unwrap().num_have == n - 1
    });
    assert!(done, "B gets every piece but the lost one");
    net.run_for(Duration::from_secs(5));
    // A no longer seeds, and B knows nobody has piece 3.
    assert!(net.is_in(0, a, TorrentState::Downloading));
    let b_torrent = &net.nodes[1].session.torrents[&b];
    assert_eq!(b_torrent.availability(lost), Some(0));
    assert_eq!(b_torrent.availability(PieceIndex(0)), Some(1));
    // B has nothing to want from A any more.
    let b_at_a = net.nodes[0].session.torrents[&a]
        .peer_uploads()
        .into_iter()
        .find(|p| p.addr.ip() == net.nodes[1].addr.ip())
        .expect("still connected");
    assert!(!b_at_a.interested, "{b_at_a:?}");
}

#[test]
fn tracker_peers_wait_for_a_free_slot() {
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("x", 64 * KIB)], 46);
    let mut net = Net::new();
    let mut config = net.next_config();
    config.max_connections_per_torrent = 2;
    let node = net.add_node_with(config);
    for _ in 1..6 {
        // Seeds that never unchoke: the connections stay.
        let mut config = net.next_config();
        config.upload_slots = 0;
        let seed = net.add_node_with(config);
        net.add_seed(seed, &content);
    }
    let torrent = net.add_leecher(node, &content, &[]);
    let addrs: Vec<SocketAddr> = (1..6).map(|i| net.nodes[i].addr).collect();
    net.with(node, |s, now| {
        s.add_peers(now, torrent, addrs.clone(), PeerSource::Tracker)
            .unwrap()
    });
    net.run_for(Duration::from_secs(2));
    let connected = |net: &Net| -> Vec<SocketAddr> {
        addrs
            .iter()
            .copied()
            .filter(|a| {
                net.nodes[node].session.torrents[&torrent]
                    .peer_uploads()
                    .iter()
                    .any(|p| p.addr == *a)
            })
            .collect()
    };
    let first = connected(&net);
    assert_eq!(first.len(), 2, "{first:?}");
    for addr in &addrs {
        let sources = net.nodes[node].session.torrents[&torrent]
            .candidate_sources(*addr)
            .unwrap();
        assert_eq!(sources, PeerSources::of(PeerSource::Tracker));
    }
    // One of them leaves: its slot goes to a candidate not tried yet.
    let gone = addrs.iter().position(|a| *a == first[0]).unwrap() + 1;
    net.with(gone, |s, now| s.remove_torrent(now, TorrentId(0)).unwrap());
    net.run_for(Duration::from_secs(2));
    let now_connected = connected(&net);
    assert_eq!(now_connected.len(), 2, "{now_connected:?}");
    assert!(now_connected.contains(&first[1]));
    assert!(!now_connected.contains(&first[0]));
    assert!(matches!(
        net.with(node, |s, now| s.add_peers(
            now,
            TorrentId(9),
            [],
            PeerSource::Dht
        )),
        Err(SessionError::UnknownTorrent(TorrentId(9)))
    ));
}

#[test]
fn an_unreachable_candidate_is_retried_later_and_later_then_forgotten() {
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("x", 64 * KIB)], 47);
    let mut net = Net::new();
    let node = net.add_node();
    let seed = net.add_node();
    net.add_seed(seed, &content);
    let torrent = net.add_leecher(node, &content, &[]);
    let dead: SocketAddr = "10.9.9.9:6881".parse().unwrap();
    let seed_addr = net.nodes[seed].addr;
    net.with(node, |s, now| {
        s.add_peers(now, torrent, [dead, seed_addr], PeerSource::Tracker)
            .unwrap()
    });
    let failures = |net: &Net| {
        net.nodes[node]
            .alerts
            .iter()
            .filter(|a| matches!(a, Alert::PeerDisconnected { addr, .. } if *addr == dead))
            .count()
    };
    net.run_for(Duration::from_secs(1));
    assert_eq!(failures(&net), 1);
    assert!(
        connected_to(&net, node, torrent, seed),
        "the other candidate is used"
    );
    // Retried after 30 s, then 60 s, 120 s, 240 s: five attempts in all, then forgotten.
    let mut seen = Vec::new();
    for _ in 0..500 {
        net.run_for(Duration::from_secs(1));
        seen.push(failures(&net));
    }
    let first_at = |n: usize| seen.iter().position(|&f| f >= n).map(|s| s + 1);
    let at: Vec<Option<usize>> = (2..=6).map(first_at).collect();
    assert_eq!(
        at,
        [Some(30), Some(90), Some(210), Some(450), None],
        "{seen:?}"
    );
    assert_eq!(
        net.nodes[node].session.torrents[&torrent].candidate_sources(dead),
        None
    );
}
