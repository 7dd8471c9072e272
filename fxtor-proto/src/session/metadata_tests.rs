//! Magnet links in a simulated swarm: the info dictionary is fetched over `ut_metadata`
//! (BEP9), checked, and the torrent then downloads as any other; a v2 torrent's piece
//! layers come by BEP52 hash requests. Also BEP52's other use: the leaves of a failed
//! v2 piece tell which peer sent the bad blocks.

use core::time::Duration;

use super::testing::{Content, Net};
use super::torrent::TestServing;
use super::*;
use crate::create::TorrentVersion;
use crate::magnet::MagnetLink;
use crate::resume::ResumeData;
use crate::{FileIndex, InfoHashes};

const KIB: u64 = 1024;
const MINUTE: Duration = Duration::from_secs(60);

/// Adds a torrent from `link` to `node`, connecting to `peers`.
fn add_magnet(
    net: &mut Net,
    node: usize,
    content: &Content,
    link: MagnetLink,
    peers: &[usize],
) -> TorrentId {
    let mut params = AddTorrentParams::new(TorrentSource::Magnet(link));
    params.peers = peers.iter().map(|&p| net.nodes[p].addr).collect();
    net.add_torrent(node, params, content, [])
}

/// Runs until the torrent seeds; checks its bytes, its alerts and its resume data.
fn completes(net: &mut Net, node: usize, torrent: TorrentId, content: &Content) {
    assert!(
        net.run_until(5 * MINUTE, |net| net.is_in(
            node,
            torrent,
            TorrentState::Seeding
        )),
        "{:?}",
        net.nodes[node].session.status(net.now, torrent)
    );
    let n = content.info.num_pieces();
    assert_eq!(
        net.nodes[node].store.bytes(torrent, n).as_deref(),
        Some(&content.data[..])
    );
    assert!(net.nodes[node]
        .saw(|a| matches!(a, Alert::MetadataReceived { torrent: t } if *t == torrent)));
    let states = net.nodes[node].states(torrent);
    assert!(states.contains(&TorrentState::Downloading), "{states:?}");
    let status = net.nodes[node].session.status(net.now, torrent).unwrap();
    assert_eq!(
        status.info_hashes,
        content.info.info_hashes(),
        "all info-hashes are learnt"
    );
    assert_eq!(status.num_pieces, n);
    let info = net.nodes[node].session.torrent_info(torrent).unwrap();
    assert_eq!(info.info_bytes(), content.info.info_bytes());
    let resume =
        ResumeData::from_bytes(&net.nodes[node].session.save_resume_data(torrent).unwrap())
            .unwrap();
    assert_eq!(resume.info.as_ref(), Some(content.info.info_bytes()));
}

fn fetch_from_a_seed(content: &Content, hashes: InfoHashes) {
    let mut net = Net::new();
    let seed_node = net.add_node();
    let node = net.add_node();
    net.add_seed(seed_node, content);
    let torrent = add_magnet(
        &mut net,
        node,
        content,
        MagnetLink::new(hashes),
        &[seed_node],
    );
    assert!(net.is_in(node, torrent, TorrentState::DownloadingMetadata));
    assert!(net.nodes[node].session.torrent_info(torrent).is_none());
    completes(&mut net, node, torrent, content);
}

#[test]
fn a_v1_magnet_fetches_its_metadata_and_completes() {
    let content = Content::new(
        TorrentVersion::V1,
        16 * 1024,
        &[("a", 100 * KIB), ("b", 7 * KIB)],
        1,
    );
    fetch_from_a_seed(&content, content.info.info_hashes());
}

#[test]
fn a_hybrid_by_its_v1_hash_or_both_completes() {
    let content = Content::new(TorrentVersion::Hybrid, 16 * 1024, &[("a", 100 * KIB)], 2);
    let hashes = content.info.info_hashes();
    fetch_from_a_seed(&content, InfoHashes::v1(hashes.get_v1().unwrap()));
    fetch_from_a_seed(&content, hashes);
}

#[test]
fn a_v2_torrent_by_its_btmh_completes() {
    // Files of at most one piece: their piece hashes are their roots, in the info
    // dictionary, so no piece layers are needed.
    let content = Content::new(
        TorrentVersion::V2,
        64 * 1024,
        &[("a", 64 * KIB), ("b", 10 * KIB), ("c", 33 * KIB)],
        3,
    );
    let v2 = content.info.info_hashes().get_v2().unwrap();
    fetch_from_a_seed(&content, InfoHashes::v2(v2));
}

/// A v1 torrent of many small files, whose info dictionary spans several 16 KiB pieces.
fn many_files(seed: u64) -> Content {
    let names: Vec<String> = (0..700)
        .map(|i| format!("directory-{:03}/a-rather-long-file-name-{i:04}.bin", i % 40))
        .collect();
    let files: Vec<(&str, u64)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), 100 + (i as u64 * 37) % 900))
        .collect();
    Content::new(TorrentVersion::V1, 16 * 1024, &files, seed)
}

#[test]
fn metadata_of_many_pieces_from_several_seeds() {
    let content = many_files(4);
    let size = content.info.info_bytes().len();
    assert!(
        size > 2 * 16 * 1024,
        "{size} bytes: at least three metadata pieces"
    );
    let mut net = Net::new();
    let seeds: Vec<usize> = (0..3).map(|_| net.add_node()).collect();
    for &s in &seeds {
        net.add_seed(s, &content);
    }
    let node = net.add_node();
    let link = MagnetLink::new(content.info.info_hashes());
    let torrent = add_magnet(&mut net, node, &content, link, &seeds);
    completes(&mut net, node, torrent, &content);
    let wire_from = |s: usize| net.wire(s, node).count(crate::wire::MessageId::Extended);
    assert!(
        seeds.iter().filter(|&&s| wire_from(s) > 1).count() >= 2,
        "metadata came from several seeds"
    );
}

#[test]
fn a_peer_serving_bad_metadata_is_dropped() {
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("a", 64 * KIB)], 5);
    let mut net = Net::new();
    let bad_node = net.add_node();
    let good_node = net.add_node();
    let node = net.add_node();
    let bad = net.add_seed(bad_node, &content);
    net.with(bad_node, |s, _| {
        s.set_test_serving(bad, TestServing::Corrupt)
    });
    net.add_seed(good_node, &content);
    let link = MagnetLink::new(content.info.info_hashes());
    let torrent = add_magnet(&mut net, node, &content, link, &[bad_node]);
    let bad_addr = net.nodes[bad_node].addr;
    let dropped = |net: &Net| {
        net.nodes[node].saw(|a| {
            matches!(a, Alert::PeerDisconnected { addr, reason, .. }
                if *addr == bad_addr && reason.contains("does not match the info-hash"))
        })
    };
    assert!(net.run_until(MINUTE, dropped));
    assert!(net.is_in(node, torrent, TorrentState::DownloadingMetadata));
    // It is not dialled again; a good peer gives the metadata.
    net.with(node, |s, now| s.connect_peer(now, torrent, bad_addr))
        .unwrap();
    let good_addr = net.nodes[good_node].addr;
    net.with(node, |s, now| s.connect_peer(now, torrent, good_addr))
        .unwrap();
    completes(&mut net, node, torrent, &content);
    let pieces_from_bad = net
        .wire(bad_node, node)
        .count(crate::wire::MessageId::Piece);
    assert_eq!(pieces_from_bad, 0);
}

#[test]
fn bad_metadata_mixed_with_good_still_completes() {
    let content = many_files(6);
    let mut net = Net::new();
    let bad_node = net.add_node();
    let good_node = net.add_node();
    let node = net.add_node();
    let bad = net.add_seed(bad_node, &content);
    net.with(bad_node, |s, _| {
        s.set_test_serving(bad, TestServing::Corrupt)
    });
    net.add_seed(good_node, &content);
    let link = MagnetLink::new(content.info.info_hashes());
    let torrent = add_magnet(&mut net, node, &content, link, &[bad_node, good_node]);
    completes(&mut net, node, torrent, &content);
    let good_addr = net.nodes[good_node].addr;
    let bad_addr = net.nodes[bad_node].addr;
    let blamed = |addr: core::net::SocketAddr| {
        net.nodes[node].saw(|a| {
            matches!(a, Alert::PeerDisconnected { addr: at, reason, .. }
                if *at == addr && reason.contains("does not match the info-hash"))
        })
    };
    assert!(!blamed(good_addr));
    let _ = blamed(bad_addr);
}

#[test]
fn a_peer_rejecting_requests_is_passed_over() {
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("a", 64 * KIB)], 7);
    let mut net = Net::new();
    let refusing_node = net.add_node();
    let good_node = net.add_node();
    let node = net.add_node();
    let refusing = net.add_seed(refusing_node, &content);
    net.with(refusing_node, |s, _| {
        s.set_test_serving(refusing, TestServing::Refuse)
    });
    let link = MagnetLink::new(content.info.info_hashes());
    let torrent = add_magnet(&mut net, node, &content, link, &[refusing_node]);
    net.run_for(MINUTE);
    assert!(net.is_in(node, torrent, TorrentState::DownloadingMetadata));
    let asked = net
        .wire(node, refusing_node)
        .count(crate::wire::MessageId::Extended);
    assert!(
        (2..10).contains(&asked),
        "asked again after a rest, not flooded: {asked}"
    );
    net.add_seed(good_node, &content);
    let good_addr = net.nodes[good_node].addr;
    net.with(node, |s, now| s.connect_peer(now, torrent, good_addr))
        .unwrap();
    completes(&mut net, node, torrent, &content);
}

#[test]
fn we_reject_metadata_requests_without_metadata() {
    // Two magnet leechers of one torrent: neither has metadata to give, so neither offers
    // any, and both wait.
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("a", 64 * KIB)], 8);
    let mut net = Net::new();
    let a = net.add_node();
    let b = net.add_node();
    let link = MagnetLink::new(content.info.info_hashes());
    add_magnet(&mut net, a, &content, link.clone(), &[]);
    let torrent = add_magnet(&mut net, b, &content, link, &[a]);
    net.run_for(MINUTE);
    assert!(net.is_in(b, torrent, TorrentState::DownloadingMetadata));
    assert!(net.nodes[b].saw(|a| matches!(a, Alert::PeerConnected { .. })));
    // The extension handshakes only.
    assert_eq!(net.wire(a, b).count(crate::wire::MessageId::Extended), 1);
    assert_eq!(net.wire(b, a).count(crate::wire::MessageId::Extended), 1);
}

#[test]
fn a_finished_magnet_seeds_its_metadata_to_the_next() {
    let content = Content::new(TorrentVersion::Hybrid, 16 * 1024, &[("a", 64 * KIB)], 9);
    let mut net = Net::new();
    let seed_node = net.add_node();
    let first = net.add_node();
    let second = net.add_node();
    let seed = net.add_seed(seed_node, &content);
    let link = MagnetLink::new(content.info.info_hashes());
    let t1 = add_magnet(&mut net, first, &content, link.clone(), &[seed_node]);
    completes(&mut net, first, t1, &content);
    net.with(seed_node, |s, now| s.remove_torrent(now, seed))
        .unwrap();
    let t2 = add_magnet(&mut net, second, &content, link, &[first]);
    completes(&mut net, second, t2, &content);
}

#[test]
fn a_magnets_select_only_downloads_just_those_files() {
    // v1, files of whole pieces: each piece belongs to one file.
    let content = Content::new(
        TorrentVersion::V1,
        16 * 1024,
        &[("a", 32 * KIB), ("b", 48 * KIB), ("c", 16 * KIB)],
        5,
    );
    let mut net = Net::new();
    let seed_node = net.add_node();
    let node = net.add_node();
    net.add_seed(seed_node, &content);
    let link = MagnetLink::new(content.info.info_hashes())
        .with_select_only(crate::magnet::FileRange::single(FileIndex(0)))
        .with_select_only(crate::magnet::FileRange::single(FileIndex(2)));
    let torrent = add_magnet(&mut net, node, &content, link, &[seed_node]);
    assert!(net.run_until(5 * MINUTE, |net| net.is_in(
        node,
        torrent,
        TorrentState::Finished
    )));
    let status = net.nodes[node].session.status(net.now, torrent).unwrap();
    assert_eq!(status.total_wanted, 48 * KIB, "a and c only");
    assert_eq!(status.total_wanted_done, 48 * KIB);
    // Pieces 2..5 are b's: never downloaded.
    let finished = net.nodes[node].finished_pieces(torrent);
    assert!(
        finished.iter().all(|p| !(2..5).contains(&p.0)),
        "{finished:?}"
    );
    assert_eq!(finished.len(), 3);
}

/// `default_dont_download`: a magnet's files wait at priority 0 once its metadata arrives
/// (nothing is downloaded; the torrent is finished with nothing wanted) until one is
/// chosen, and then only that one is downloaded.
#[test]
fn a_magnet_added_to_download_nothing_waits_for_its_files_to_be_chosen() {
    let content = Content::new(
        TorrentVersion::V1,
        16 * 1024,
        &[("a", 32 * KIB), ("b", 48 * KIB), ("c", 16 * KIB)],
        6,
    );
    let mut net = Net::new();
    let seed_node = net.add_node();
    let node = net.add_node();
    net.add_seed(seed_node, &content);
    let mut params = AddTorrentParams::new(TorrentSource::Magnet(MagnetLink::new(
        content.info.info_hashes(),
    )));
    params.peers = vec![net.nodes[seed_node].addr];
    params.default_dont_download = true;
    let torrent = net.add_torrent(node, params, &content, []);
    assert!(net.run_until(MINUTE, |net| net.is_in(
        node,
        torrent,
        TorrentState::Finished
    )));
    net.run_for(Duration::from_secs(5));
    let status = net.nodes[node].session.status(net.now, torrent).unwrap();
    assert_eq!((status.total_wanted, status.num_have), (0, 0), "{status:?}");
    net.with(node, |s, now| {
        s.prioritize_files(now, torrent, &[0, 1, 0]).unwrap()
    });
    assert!(net.run_until(MINUTE, |net| {
        let status = net.nodes[node].session.status(net.now, torrent).unwrap();
        status.total_wanted > 0 && net.is_in(node, torrent, TorrentState::Finished)
    }));
    let finished = net.nodes[node].finished_pieces(torrent);
    assert_eq!(finished.len(), 3);
    assert!(
        finished.iter().all(|p| (2..5).contains(&p.0)),
        "{finished:?}"
    );
}

/// A v2 torrent whose files span several pieces, one of them more than a chunk of 512
/// piece hashes.
fn v2_multi_piece(seed: u64) -> Content {
    Content::new(
        TorrentVersion::V2,
        16 * 1024,
        &[
            ("a", 100 * KIB),
            ("big", 600 * 16 * KIB + 100),
            ("c", 5 * KIB),
        ],
        seed,
    )
}

#[test]
fn a_v2_magnet_fetches_its_piece_layers_and_completes() {
    let content = v2_multi_piece(10);
    assert!(!content
        .info
        .files()
        .iter()
        .all(|(f, _)| !content.info.needs_piece_layer(f)));
    let v2 = content.info.info_hashes().get_v2().unwrap();
    let mut net = Net::new();
    let seeds: Vec<usize> = (0..2).map(|_| net.add_node()).collect();
    for &s in &seeds {
        net.add_seed(s, &content);
    }
    let node = net.add_node();
    let torrent = add_magnet(
        &mut net,
        node,
        &content,
        MagnetLink::new(InfoHashes::v2(v2)),
        &seeds,
    );
    completes(&mut net, node, torrent, &content);
    let asked: u64 = seeds
        .iter()
        .map(|&s| net.wire(node, s).count(crate::wire::MessageId::HashRequest))
        .sum();
    let answered: u64 = seeds
        .iter()
        .map(|&s| net.wire(s, node).count(crate::wire::MessageId::Hashes))
        .sum();
    // a: 1 chunk; big: 601 pieces in 2 chunks; c needs none.
    assert_eq!((asked, answered), (3, 3));
    let info = net.nodes[node].session.torrent_info(torrent).unwrap();
    assert!(info.has_piece_layers());

    // The layers are in the resume data: a restart asks for none.
    let resume = net.nodes[node].session.save_resume_data(torrent).unwrap();
    let data = ResumeData::from_bytes(&resume).unwrap();
    assert_eq!(data.piece_layers.len(), 2);
    let again = net.add_node();
    let mut params =
        AddTorrentParams::new(TorrentSource::Magnet(MagnetLink::new(InfoHashes::v2(v2))));
    params.resume_data = Some(resume);
    params.peers = vec![net.nodes[seeds[0]].addr];
    let restarted = net.add_torrent(again, params, &content, []);
    let info = net.nodes[again].session.torrent_info(restarted).unwrap();
    assert!(info.has_piece_layers(), "layers restored from resume data");
    net.run_for(MINUTE);
    assert_eq!(
        net.wire(again, seeds[0])
            .count(crate::wire::MessageId::HashRequest),
        0
    );
}

#[test]
fn a_peer_sending_bad_hashes_is_banned_and_one_refusing_passed_over() {
    let content = v2_multi_piece(11);
    let v2 = content.info.info_hashes().get_v2().unwrap();
    let mut net = Net::new();
    let liar_node = net.add_node();
    let refusing_node = net.add_node();
    let good_node = net.add_node();
    let liar = net.add_seed(liar_node, &content);
    net.with(liar_node, |s, _| {
        s.set_test_hash_serving(liar, TestServing::Corrupt)
    });
    let refusing = net.add_seed(refusing_node, &content);
    net.with(refusing_node, |s, _| {
        s.set_test_hash_serving(refusing, TestServing::Refuse)
    });
    net.add_seed(good_node, &content);
    let node = net.add_node();
    let link = MagnetLink::new(InfoHashes::v2(v2));
    let torrent = add_magnet(
        &mut net,
        node,
        &content,
        link,
        &[liar_node, refusing_node, good_node],
    );
    completes(&mut net, node, torrent, &content);
    let banned = |n: usize| {
        let addr = net.nodes[n].addr;
        net.nodes[node].saw(|a| matches!(a, Alert::PeerBanned { addr: at, .. } if *at == addr))
    };
    let asked = |n: usize| net.wire(node, n).count(crate::wire::MessageId::HashRequest);
    let rejected = net
        .wire(refusing_node, node)
        .count(crate::wire::MessageId::HashReject);
    assert!(asked(liar_node) >= 1, "the liar is asked first");
    assert!(banned(liar_node), "bad hashes get a peer banned");
    assert!(!banned(refusing_node) && !banned(good_node));
    assert_eq!(rejected, asked(refusing_node));
    assert!(asked(good_node) >= 1);
}

/// A v2 swarm of three honest seeds (which answer requests for leaves, or refuse them)
/// and one whose every block is corrupt; a leecher takes pieces from all four. Returns the
/// network, the leecher's node and the liar's.
fn corrupt_v2_swarm(honest_serve_leaves: bool) -> (Net, usize, usize, Vec<usize>) {
    // 256 KiB pieces of 16 blocks: the leecher takes each piece's blocks from several
    // seeds, so failed pieces are shared and the leaves must tell who sent the bad blocks.
    let content = Content::new(
        TorrentVersion::V2,
        256 * 1024,
        &[("a", 3 * 1024 * KIB + 100), ("b", 700 * KIB)],
        12,
    );
    let mut net = Net::new();
    let honest: Vec<usize> = (0..3).map(|_| net.add_node()).collect();
    for &h in &honest {
        let t = net.add_seed(h, &content);
        if !honest_serve_leaves {
            net.with(h, |s, _| s.set_test_hash_serving(t, TestServing::Refuse));
        }
    }
    let liar = net.add_node();
    let lying = net.add_seed(liar, &content);
    net.nodes[liar]
        .store
        .torrents
        .get_mut(&lying)
        .unwrap()
        .corrupt = (0..content.info.num_pieces())
        .map(crate::PieceIndex)
        .collect();
    let node = net.add_node();
    let mut peers = honest.clone();
    peers.insert(1, liar);
    let torrent = net.add_leecher(node, &content, &peers);
    assert!(net.run_until(5 * MINUTE, |net| net.is_in(
        node,
        torrent,
        TorrentState::Seeding
    )));
    let n = content.info.num_pieces();
    assert_eq!(
        net.nodes[node].store.bytes(torrent, n).as_deref(),
        Some(&content.data[..])
    );
    (net, node, liar, honest)
}

/// The peers `node` banned, in order.
fn banned_by(net: &Net, node: usize) -> Vec<core::net::SocketAddr> {
    net.nodes[node]
        .alerts
        .iter()
        .filter_map(|a| match a {
            Alert::PeerBanned { addr, .. } => Some(*addr),
            _ => None,
        })
        .collect()
}

/// How many pieces failed at `node` before its first ban.
fn failed_before_ban(net: &Net, node: usize) -> usize {
    net.nodes[node]
        .alerts
        .iter()
        .take_while(|a| !matches!(a, Alert::PeerBanned { .. }))
        .filter(|a| matches!(a, Alert::HashFailed { .. }))
        .count()
}

#[test]
fn a_corrupt_peer_in_a_v2_swarm_is_found_by_the_leaves_of_shared_pieces() {
    let (net, node, liar, honest) = corrupt_v2_swarm(true);
    assert_eq!(
        banned_by(&net, node),
        [net.nodes[liar].addr],
        "the liar alone"
    );
    assert_eq!(
        failed_before_ban(&net, node),
        1,
        "banned at its first failed piece, not on trust"
    );
    let asked: u64 = honest
        .iter()
        .map(|&h| net.wire(node, h).count(crate::wire::MessageId::HashRequest))
        .sum();
    let answered: u64 = honest
        .iter()
        .map(|&h| net.wire(h, node).count(crate::wire::MessageId::Hashes))
        .sum();
    assert!(answered >= 1, "the leaves came from an honest seed");
    assert_eq!(asked, answered);
}

#[test]
fn without_leaves_the_blame_falls_back_on_trust() {
    let (net, node, liar, honest) = corrupt_v2_swarm(false);
    assert_eq!(
        banned_by(&net, node),
        [net.nodes[liar].addr],
        "the liar alone"
    );
    let rejected: u64 = honest
        .iter()
        .map(|&h| net.wire(h, node).count(crate::wire::MessageId::HashReject))
        .sum();
    assert!(rejected >= 1, "the leaves were asked for and refused");
    assert!(
        failed_before_ban(&net, node) > 1,
        "trust takes more than one shared failure"
    );
}
