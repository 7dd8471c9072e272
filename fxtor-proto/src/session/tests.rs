//! Sessions exchanging torrents over the simulated network of [`super::testing`].

use core::time::Duration;
use std::collections::{BTreeSet, HashSet};

use bytes::BytesMut;
use proptest::prelude::*;

use super::testing::{Content, Net};
use super::torrent::PeerUpload;
use super::*;
use crate::create::TorrentVersion;
use crate::magnet::MagnetLink;
use crate::resume::ResumeData;
use crate::wire::{Block, BlockRequest, Message, ReservedBits};
use crate::{InfoHashes, PieceIndex};

const KIB: u64 = 1024;
const MINUTE: Duration = Duration::from_secs(60);

fn files() -> Vec<(&'static str, u64)> {
    vec![
        ("a.bin", 100 * KIB + 17),
        ("dir/b.bin", 3 * KIB),
        ("dir/c.bin", 70 * KIB),
    ]
}

/// A seed on node 0 and a leecher on node 1; runs until the leecher seeds.
fn seed_to_leecher(version: TorrentVersion) {
    let content = Content::new(version, 32 * 1024, &files(), 1);
    let mut net = Net::new();
    let seed_node = net.add_node();
    let leech_node = net.add_node();
    let seed = net.add_seed(seed_node, &content);
    let leech = net.add_leecher(leech_node, &content, &[seed_node]);
    assert!(net.is_in(seed_node, seed, TorrentState::Seeding));
    assert!(net.is_in(leech_node, leech, TorrentState::Downloading));

    let done = net.run_until(MINUTE, |net| {
        net.is_in(leech_node, leech, TorrentState::Seeding)
    });
    assert!(done, "the download did not complete");
    let n = content.info.num_pieces();
    assert_eq!(
        net.nodes[leech_node].store.bytes(leech, n).as_deref(),
        Some(&content.data[..])
    );
    let leecher = &net.nodes[leech_node];
    assert!(leecher.saw(|a| matches!(a, Alert::TorrentFinished { torrent } if *torrent == leech)));
    assert!(leecher.saw(|a| matches!(a,
        Alert::PeerConnected { client: Some(client), addr, .. }
            if client.starts_with("fxtor") && *addr == net.nodes[seed_node].addr)));
    assert_eq!(
        leecher.states(leech),
        [TorrentState::Seeding],
        "Downloading straight to Seeding"
    );
    let stats_before = leecher.alerts.len();
    assert_eq!(leecher.finished_pieces(leech).len(), n as usize);
    assert!(!leecher.saw(|a| matches!(a, Alert::HashFailed { .. })));
    let status = leecher.session.status(net.now, leech).unwrap();
    assert_eq!(status.progress, 1.0);
    assert_eq!(status.num_have, n);
    assert_eq!(status.total_downloaded, content.info.total_size());
    // Wanted bytes are the files' bytes: pad files count for nothing.
    let real: u64 = content
        .info
        .files()
        .files()
        .iter()
        .filter(|f| !f.is_pad())
        .map(|f| f.size())
        .sum();
    assert_eq!(
        (status.total_wanted, status.total_wanted_done),
        (real, real)
    );
    let seeder = net.nodes[seed_node].session.status(net.now, seed).unwrap();
    assert_eq!(seeder.total_uploaded, content.info.total_size());
    // Both seed now: the connection between them is closed.
    assert!(leecher
        .saw(|a| matches!(a, Alert::PeerDisconnected { reason, .. } if reason.contains("seeds"))));
    // The second's statistics come once it is over, then no more.
    net.run_for(Duration::from_secs(5));
    let stats: Vec<&Alert> = net.nodes[leech_node].alerts[stats_before..]
        .iter()
        .filter(|a| matches!(a, Alert::Stats { .. }))
        .collect();
    assert_eq!(stats.len(), 1, "{stats:?}");
    assert!(matches!(stats[0], Alert::Stats { downloaded, .. } if *downloaded > 0));
}

/// The wanted and done bytes of the status (counted from the picker's totals, less the
/// short last piece and the pads) are those of a piece-by-piece count, through file
/// priorities that change while the download runs.
#[test]
fn wanted_bytes_follow_priorities_and_pieces() {
    for version in [
        TorrentVersion::V1,
        TorrentVersion::V2,
        TorrentVersion::Hybrid,
    ] {
        let files = [
            ("a", 100 * KIB + 1),
            ("b", 33 * KIB),
            ("c", 1),
            ("d", 250 * KIB + 7),
        ];
        let content = Content::new(version, 16 * 1024, &files, 41);
        let mut net = Net::new();
        let seed_node = net.add_node();
        let node = net.add_node();
        net.add_seed(seed_node, &content);
        let mut params = content.params();
        params.skip_check = true;
        params.file_priorities = vec![1, 0, 4, 0];
        params.peers = vec![net.nodes[seed_node].addr];
        let torrent = net.add_torrent(node, params, &content, []);
        let check = |net: &Net, when: &str| {
            let session = &net.nodes[node].session;
            let status = session.status(net.now, torrent).unwrap();
            let scan = session.torrents[&torrent].wanted_bytes_by_scan();
            assert_eq!(
                (status.total_wanted, status.total_wanted_done),
                scan,
                "{version:?} {when}"
            );
        };
        check(&net, "at first");
        net.run_for(Duration::from_millis(150));
        check(&net, "part way");
        net.with(node, |s, now| {
            s.prioritize_files(now, torrent, &[0, 7, 1, 1]).unwrap()
        });
        check(&net, "after a change");
        let finished = net.run_until(MINUTE, |net| {
            net.is_in(node, torrent, TorrentState::Finished)
                || net.is_in(node, torrent, TorrentState::Seeding)
        });
        assert!(
            finished,
            "{:?}",
            net.nodes[node].session.status(net.now, torrent)
        );
        check(&net, "at the end");
        let status = net.nodes[node].session.status(net.now, torrent).unwrap();
        assert_eq!(status.total_wanted, status.total_wanted_done);
        assert!(status.total_wanted > 0);
    }
}

#[test]
fn seed_to_leecher_v1() {
    seed_to_leecher(TorrentVersion::V1);
}

#[test]
fn seed_to_leecher_v2() {
    seed_to_leecher(TorrentVersion::V2);
}

#[test]
fn seed_to_leecher_hybrid() {
    seed_to_leecher(TorrentVersion::Hybrid);
}

#[test]
fn a_seed_and_five_leechers_all_complete() {
    let content = Content::new(
        TorrentVersion::Hybrid,
        16 * 1024,
        &[("x", 600 * KIB + 5)],
        2,
    );
    let mut net = Net::new();
    for i in 0..6 {
        let mut config = Net::config(i);
        // Fewer slots than peers: choking, rotation and leechers trading among themselves.
        config.upload_slots = 2;
        net.add_node_with(config);
    }
    let seed = net.add_seed(0, &content);
    let mut leeches = Vec::new();
    for i in 1..6 {
        // Every leecher dials every other node: both ends of some pairs dial each other.
        let peers: Vec<usize> = (0..6).filter(|&j| j != i).collect();
        leeches.push(net.add_leecher(i, &content, &peers));
    }
    let all_done = |net: &Net| (1..6).all(|i| net.is_in(i, leeches[i - 1], TorrentState::Seeding));
    assert!(
        net.run_until(10 * MINUTE, all_done),
        "not every leecher completed"
    );
    let n = content.info.num_pieces();
    for i in 1..6 {
        assert_eq!(
            net.nodes[i].store.bytes(leeches[i - 1], n).as_deref(),
            Some(&content.data[..])
        );
    }
    let uploaded_by_leechers: u64 = (1..6)
        .map(|i| {
            net.nodes[i]
                .session
                .status(net.now, leeches[i - 1])
                .unwrap()
                .total_uploaded
        })
        .sum();
    assert!(uploaded_by_leechers > 0, "the leechers traded pieces");
    let seeder = net.nodes[0].session.status(net.now, seed).unwrap();
    assert!(seeder.total_uploaded >= content.info.total_size());
    assert!((1..6).any(|i| net.nodes[i].saw(|a| matches!(a,
        Alert::PeerDisconnected { reason, .. } if reason.contains("duplicate")))));
}

#[test]
fn a_run_replays_exactly() {
    let run = || {
        let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("x", 200 * KIB)], 20);
        let mut net = Net::new();
        for i in 0..4 {
            let mut config = Net::config(i);
            config.upload_slots = 1;
            net.add_node_with(config);
        }
        net.add_seed(0, &content);
        let leeches: Vec<TorrentId> = (1..4)
            .map(|i| net.add_leecher(i, &content, &[0, 1, 2, 3]))
            .collect();
        let done = net.run_until(10 * MINUTE, |net| {
            (1..4).all(|i| net.is_in(i, leeches[i - 1], TorrentState::Seeding))
        });
        assert!(done);
        (
            net.now,
            net.nodes.into_iter().map(|n| n.alerts).collect::<Vec<_>>(),
        )
    };
    assert_eq!(run(), run());
}

#[test]
fn a_corrupt_seeder_is_banned_and_the_download_completes() {
    // One block per piece: each piece comes from one peer, so its sender is known.
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("x", 400 * KIB)], 3);
    let mut net = Net::new();
    let good = net.add_node();
    let bad = net.add_node();
    let leech_node = net.add_node();
    net.add_seed(good, &content);
    let bad_torrent = net.add_seed(bad, &content);
    let stored = net.nodes[bad].store.torrents.get_mut(&bad_torrent).unwrap();
    stored.corrupt = (0..content.info.num_pieces()).map(PieceIndex).collect();
    let leech = net.add_leecher(leech_node, &content, &[bad, good]);

    let done = net.run_until(MINUTE, |net| {
        net.is_in(leech_node, leech, TorrentState::Seeding)
    });
    assert!(done);
    let n = content.info.num_pieces();
    assert_eq!(
        net.nodes[leech_node].store.bytes(leech, n).as_deref(),
        Some(&content.data[..])
    );
    let bad_ip = net.nodes[bad].addr.ip();
    let leecher = &net.nodes[leech_node];
    assert!(leecher.saw(|a| matches!(a, Alert::HashFailed { .. })));
    assert!(leecher.saw(|a| matches!(a, Alert::PeerBanned { addr, .. } if addr.ip() == bad_ip)));
    let good_ip = net.nodes[good].addr.ip();
    assert!(!leecher.saw(|a| matches!(a, Alert::PeerBanned { addr, .. } if addr.ip() == good_ip)));

    // Not dialled again, and not accepted when it dials.
    let connects_before = connections_to(&net.nodes[leech_node].alerts, bad_ip);
    net.with(leech_node, |s, now| {
        s.connect_peer(now, leech, net_addr(bad_ip)).unwrap()
    });
    net.with(bad, |s, now| {
        s.connect_peer(now, bad_torrent, net_addr(net_ip(leech_node)))
            .unwrap()
    });
    net.run_for(Duration::from_secs(5));
    assert_eq!(
        connections_to(&net.nodes[leech_node].alerts, bad_ip),
        connects_before
    );
    assert!(net.nodes[leech_node].saw(|a| matches!(a,
        Alert::PeerDisconnected { reason, addr, .. } if reason.contains("banned") && addr.ip() == bad_ip)));
}

#[test]
fn a_corrupt_seeder_is_banned_with_pieces_of_several_blocks() {
    // Four blocks per piece: pieces mix blocks from both seeds.
    let content = Content::new(TorrentVersion::V1, 64 * 1024, &[("x", 1024 * KIB)], 19);
    let mut net = Net::new();
    let good = net.add_node();
    let bad = net.add_node();
    let leech_node = net.add_node();
    net.add_seed(good, &content);
    let bad_torrent = net.add_seed(bad, &content);
    let stored = net.nodes[bad].store.torrents.get_mut(&bad_torrent).unwrap();
    stored.corrupt = (0..content.info.num_pieces()).map(PieceIndex).collect();
    let leech = net.add_leecher(leech_node, &content, &[bad, good]);

    assert!(net.run_until(MINUTE, |net| net.is_in(
        leech_node,
        leech,
        TorrentState::Seeding
    )));
    let n = content.info.num_pieces();
    assert_eq!(
        net.nodes[leech_node].store.bytes(leech, n).as_deref(),
        Some(&content.data[..])
    );
    let (bad_ip, good_ip) = (net.nodes[bad].addr.ip(), net.nodes[good].addr.ip());
    let leecher = &net.nodes[leech_node];
    let failed = leecher
        .alerts
        .iter()
        .filter(|a| matches!(a, Alert::HashFailed { .. }))
        .count();
    assert!(failed >= 1);
    assert!(leecher.saw(|a| matches!(a, Alert::PeerBanned { addr, .. } if addr.ip() == bad_ip)));
    assert!(!leecher.saw(|a| matches!(a, Alert::PeerBanned { addr, .. } if addr.ip() == good_ip)));
}

fn net_ip(node: usize) -> core::net::IpAddr {
    core::net::IpAddr::V4(core::net::Ipv4Addr::new(10, 0, 0, node as u8 + 1))
}

fn net_addr(ip: core::net::IpAddr) -> SocketAddr {
    SocketAddr::new(ip, 6881)
}

fn connections_to(alerts: &[Alert], ip: core::net::IpAddr) -> usize {
    alerts
        .iter()
        .filter(|a| matches!(a, Alert::PeerConnected { addr, .. } if addr.ip() == ip))
        .count()
}

#[test]
fn resume_data_round_trip_skips_what_was_there() {
    let content = Content::new(TorrentVersion::Hybrid, 16 * 1024, &[("x", 512 * KIB)], 4);
    let n = content.info.num_pieces();
    let mut net = Net::new();
    let seed_node = net.add_node();
    let first = net.add_node();
    net.add_seed(seed_node, &content);
    let mut params = content.params();
    params.skip_check = true;
    params.peers = vec![net.nodes[seed_node].addr];
    params.sequential = true;
    params.file_priorities = vec![6];
    let leech = net.add_torrent(first, params, &content, []);
    let half = n as usize / 2;
    assert!(
        net.run_until(MINUTE, |net| net.nodes[first].finished_pieces(leech).len()
            >= half)
    );

    let resume = net.nodes[first].session.save_resume_data(leech).unwrap();
    let decoded = ResumeData::from_bytes(&resume).unwrap();
    assert!(decoded.sequential);
    assert_eq!(decoded.file_priorities, [6]);
    assert_eq!(decoded.info, None, "a .torrent's info is not repeated");
    // What the session knew it had (a piece being written at that moment is not in it).
    let mut had = Vec::new();
    crate::session::torrent::for_each_piece_of(&decoded.pieces, n, |p| had.push(p));
    assert!(had.len() >= half - 1);
    let saved_down = net.nodes[first]
        .session
        .status(net.now, leech)
        .unwrap()
        .total_downloaded;
    net.with(first, |s, now| s.remove_torrent(now, leech).unwrap());
    assert!(net.nodes[first].saw(|a| matches!(a, Alert::TorrentRemoved { .. })));

    // A new session with the same disk.
    let second = net.add_node();
    let mut params = content.params();
    params.resume_data = Some(resume.clone());
    params.peers = vec![net.nodes[seed_node].addr];
    let again = net.add_torrent(second, params, &content, had.iter().copied());
    let status = net.nodes[second].session.status(net.now, again).unwrap();
    assert_eq!(
        status.state,
        TorrentState::Downloading,
        "no check with resume data"
    );
    let had_set: BTreeSet<PieceIndex> = had.iter().copied().collect();
    let pieces_in_resume = decoded.pieces.iter().map(|b| b.count_ones()).sum::<u32>();
    assert_eq!(status.num_have, pieces_in_resume);
    // The all-time total carries over; this session has moved nothing yet.
    assert!(status.all_time_downloaded >= saved_down.min(u64::from(pieces_in_resume) * 16 * KIB));
    assert_eq!(status.total_downloaded, 0);

    assert!(net.run_until(MINUTE, |net| net.is_in(
        second,
        again,
        TorrentState::Seeding
    )));
    let stored = &net.nodes[second].store.torrents[&again];
    assert!(
        !stored.jobs.contains_key("check"),
        "nothing was re-hashed: {:?}",
        stored.jobs
    );
    assert!(
        stored.written.iter().all(|p| !had_set.contains(p)),
        "nothing we had was downloaded again"
    );
    assert_eq!(stored.written.len() + had.len(), n as usize);
    assert_eq!(
        net.nodes[second].store.bytes(again, n).as_deref(),
        Some(&content.data[..])
    );

    // Resume data of another torrent is refused.
    let other = Content::new(TorrentVersion::V1, 16 * 1024, &[("y", 40 * KIB)], 5);
    let mut params = other.params();
    params.resume_data = Some(resume);
    let refused = net.nodes[second].session.add_torrent(net.now, params);
    assert!(matches!(refused, Err(SessionError::InvalidResumeData(_))));
}

#[test]
fn checking_finds_the_pieces_on_disk() {
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("x", 300 * KIB)], 6);
    let n = content.info.num_pieces();
    let mut net = Net::new();
    let seed_node = net.add_node();
    let node = net.add_node();
    net.add_seed(seed_node, &content);
    let present = [PieceIndex(0), PieceIndex(2), PieceIndex(5), PieceIndex(7)];
    let mut params = content.params();
    params.peers = vec![net.nodes[seed_node].addr];
    net.nodes[node].store.put(TorrentId(0), &content, present);
    // Piece 7's bytes on disk are wrong.
    let stored = net.nodes[node]
        .store
        .torrents
        .get_mut(&TorrentId(0))
        .unwrap();
    stored
        .pieces
        .insert(PieceIndex(7), vec![0u8; 16 * 1024].into());
    // Connecting waits for the check.
    let torrent = net.add_torrent(node, params, &content, []);
    assert!(net.is_in(node, torrent, TorrentState::CheckingFiles));

    assert!(net.run_until(MINUTE, |net| net.nodes[node]
        .saw(|a| matches!(a, Alert::TorrentChecked { .. }))));
    let stored = &net.nodes[node].store.torrents[&torrent];
    assert_eq!(stored.jobs["check"], n as usize);
    let status = net.nodes[node].session.status(net.now, torrent).unwrap();
    assert_eq!(status.num_have, 3);
    assert_eq!(
        net.nodes[node].states(torrent),
        [TorrentState::Downloading],
        "CheckingFiles, then Downloading"
    );

    assert!(net.run_until(MINUTE, |net| net.is_in(
        node,
        torrent,
        TorrentState::Seeding
    )));
    let written: BTreeSet<PieceIndex> = net.nodes[node].store.torrents[&torrent]
        .written
        .iter()
        .copied()
        .collect();
    assert_eq!(written.len(), n as usize - 3);
    assert!(written.contains(&PieceIndex(7)) && !written.contains(&PieceIndex(2)));

    // A recheck after a piece vanished from disk finds it missing and downloads it again.
    net.nodes[node]
        .store
        .torrents
        .get_mut(&torrent)
        .unwrap()
        .pieces
        .remove(&PieceIndex(4));
    net.with(node, |s, now| s.force_recheck(now, torrent).unwrap());
    assert!(net.is_in(node, torrent, TorrentState::CheckingFiles));
    assert!(net.run_until(MINUTE, |net| net.is_in(
        node,
        torrent,
        TorrentState::Downloading
    )));
    assert_eq!(
        net.nodes[node]
            .session
            .status(net.now, torrent)
            .unwrap()
            .num_have,
        n - 1
    );
    net.with(node, |s, now| {
        s.connect_peer(now, torrent, net_addr(net_ip(seed_node)))
            .unwrap()
    });
    assert!(net.run_until(MINUTE, |net| net.is_in(
        node,
        torrent,
        TorrentState::Seeding
    )));
    assert_eq!(
        net.nodes[node].store.bytes(torrent, n).as_deref(),
        Some(&content.data[..])
    );
}

#[test]
fn a_file_of_priority_zero_is_never_requested() {
    // Hybrid torrents align files to pieces: no piece is shared by two files.
    let content = Content::new(
        TorrentVersion::Hybrid,
        16 * 1024,
        &[("a", 50 * KIB), ("b", 64 * KIB), ("c", 20 * KIB)],
        7,
    );
    let files = content.info.files();
    let b = files
        .iter()
        .find(|(_, f)| f.path_string() == "b")
        .map(|(i, _)| i)
        .unwrap();
    let b_pieces = files.file_piece_range(b).unwrap();
    let mut net = Net::new();
    let seed_node = net.add_node();
    let node = net.add_node();
    let seed = net.add_seed(seed_node, &content);
    let mut params = content.params();
    params.skip_check = true;
    params.peers = vec![net.nodes[seed_node].addr];
    // The non-pad files in order, whatever the torrent's order is.
    let non_pad: Vec<&str> = files
        .files()
        .iter()
        .filter(|f| !f.is_pad())
        .map(|f| f.path_string())
        .collect();
    params.file_priorities = non_pad
        .iter()
        .map(|&p| if p == "b" { 0 } else { 4 })
        .collect();
    let torrent = net.add_torrent(node, params, &content, []);

    assert!(net.run_until(MINUTE, |net| net.is_in(
        node,
        torrent,
        TorrentState::Finished
    )));
    let node_ref = &net.nodes[node];
    assert!(node_ref.saw(|a| matches!(a, Alert::TorrentFinished { .. })));
    let written = &node_ref.store.torrents[&torrent].written;
    assert!(written
        .iter()
        .all(|p| !(b_pieces.start..b_pieces.end).contains(p)));
    assert_eq!(
        written.len(),
        content.info.num_pieces() as usize - (b_pieces.end.0 - b_pieces.start.0) as usize
    );
    let read = &net.nodes[seed_node].store.torrents[&seed].read_pieces;
    assert!(
        read.iter()
            .all(|p| !(b_pieces.start..b_pieces.end).contains(p)),
        "never requested"
    );
    let status = node_ref.session.status(net.now, torrent).unwrap();
    assert_eq!(status.progress, 1.0);
    assert!(status.num_have < status.num_pieces);

    // Wanting the file again goes back to downloading, and then seeding.
    net.with(node, |s, now| {
        s.prioritize_files(now, torrent, &[4, 4, 4]).unwrap()
    });
    assert!(net.is_in(node, torrent, TorrentState::Downloading));
    net.with(node, |s, now| {
        s.connect_peer(now, torrent, net_addr(net_ip(seed_node)))
            .unwrap()
    });
    assert!(net.run_until(MINUTE, |net| net.is_in(
        node,
        torrent,
        TorrentState::Seeding
    )));
    let resume =
        ResumeData::from_bytes(&net.nodes[node].session.save_resume_data(torrent).unwrap())
            .unwrap();
    assert_eq!(resume.file_priorities, [4, 4, 4]);
}

#[test]
fn pieces_with_deadlines_arrive_first() {
    let content = Content::new(TorrentVersion::V1, 32 * 1024, &[("x", 640 * KIB)], 8);
    let mut net = Net::new();
    // No allowed-fast pieces, which the leecher would ask for while still choked, ahead
    // of the deadlines.
    let mut config = net.next_config();
    config.allowed_fast_set_size = 0;
    let seed_node = net.add_node_with(config);
    let node = net.add_node();
    net.add_seed(seed_node, &content);
    let mut params = content.params();
    params.skip_check = true;
    params.paused = true;
    params.peers = vec![net.nodes[seed_node].addr];
    let torrent = net.add_torrent(node, params, &content, []);
    let deadlines = [
        (PieceIndex(12), 100),
        (PieceIndex(3), 200),
        (PieceIndex(17), 300),
    ];
    for (piece, ms) in deadlines {
        net.with(node, |s, now| {
            s.set_piece_deadline(now, torrent, piece, Instant::from_millis(ms))
                .unwrap()
        });
    }
    net.with(node, |s, now| {
        s.set_piece_deadline(now, torrent, PieceIndex(19), Instant::from_millis(50))
            .unwrap()
    });
    net.with(node, |s, now| {
        s.reset_piece_deadline(now, torrent, PieceIndex(19))
            .unwrap()
    });
    assert_eq!(
        net.nodes[node].session.set_piece_deadline(
            net.now,
            torrent,
            PieceIndex(999),
            Instant::ZERO
        ),
        Err(SessionError::OutOfRange)
    );
    net.with(node, |s, now| s.resume(now, torrent).unwrap());
    assert!(net.run_until(MINUTE, |net| net.is_in(
        node,
        torrent,
        TorrentState::Seeding
    )));
    let order = net.nodes[node].finished_pieces(torrent);
    assert_eq!(order[..3], [PieceIndex(12), PieceIndex(3), PieceIndex(17)]);
}

#[test]
fn memory_for_pieces_stays_within_the_budget() {
    let content = Content::new(TorrentVersion::V1, 64 * 1024, &[("x", 1024 * KIB)], 9);
    let mut net = Net::new();
    let seed_node = net.add_node();
    let mut config = Net::config(1);
    config.max_piece_memory = 128 * 1024;
    let node = net.add_node_with(config);
    net.add_seed(seed_node, &content);
    let torrent = net.add_leecher(node, &content, &[seed_node]);
    let mut most = 0;
    let done = net.run_until(MINUTE, |net| {
        most = most.max(net.nodes[node].session.torrents[&torrent].piece_memory());
        net.is_in(node, torrent, TorrentState::Seeding)
    });
    assert!(done);
    // The piece started just below the budget may pass it.
    assert!(most <= 128 * 1024 + 64 * 1024, "{most} bytes held");
    assert_eq!(net.nodes[node].session.torrents[&torrent].piece_memory(), 0);
}

#[test]
fn pause_closes_connections_and_resume_reconnects() {
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("x", 320 * KIB)], 10);
    let mut net = Net::new();
    let seed_node = net.add_node();
    let node = net.add_node();
    net.add_seed(seed_node, &content);
    let torrent = net.add_leecher(node, &content, &[seed_node]);
    assert!(
        net.run_until(MINUTE, |net| net.nodes[node].finished_pieces(torrent).len()
            >= 3)
    );
    net.with(node, |s, now| s.pause(now, torrent).unwrap());
    assert!(net.is_in(node, torrent, TorrentState::Paused));
    assert!(net.nodes[node]
        .saw(|a| matches!(a, Alert::PeerDisconnected { reason, .. } if reason.contains("paused"))));
    let have = net.nodes[node].finished_pieces(torrent).len();
    net.run_for(Duration::from_secs(30));
    assert!(
        net.nodes[node].finished_pieces(torrent).len() <= have + 1,
        "no downloading while paused"
    );
    assert_eq!(
        net.nodes[node]
            .session
            .status(net.now, torrent)
            .unwrap()
            .num_peers,
        0
    );
    net.with(node, |s, now| s.resume(now, torrent).unwrap());
    assert!(net.run_until(MINUTE, |net| net.is_in(
        node,
        torrent,
        TorrentState::Seeding
    )));
    assert_eq!(
        net.nodes[node].states(torrent),
        [
            TorrentState::Paused,
            TorrentState::Downloading,
            TorrentState::Seeding
        ]
    );
}

#[test]
fn a_failed_write_stops_the_torrent() {
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("x", 64 * KIB)], 11);
    let mut net = Net::new();
    let seed_node = net.add_node();
    let node = net.add_node();
    net.add_seed(seed_node, &content);
    let torrent = net.add_leecher(node, &content, &[seed_node]);
    net.nodes[node]
        .store
        .torrents
        .entry(torrent)
        .or_default()
        .fail_writes = true;
    assert!(net.run_until(MINUTE, |net| net.is_in(node, torrent, TorrentState::Error)));
    let status = net.nodes[node].session.status(net.now, torrent).unwrap();
    assert!(status.error.unwrap().contains("no space"));
    assert!(net.nodes[node].saw(|a| matches!(a, Alert::TorrentError { .. })));
    assert_eq!(status.num_peers, 0);
}

#[test]
fn empty_files_are_created_when_downloading_starts() {
    let content = Content::new(
        TorrentVersion::V1,
        16 * 1024,
        &[("x", 20 * KIB), ("empty", 0)],
        12,
    );
    let mut net = Net::new();
    let node = net.add_node();
    let torrent = net.add_leecher(node, &content, &[]);
    assert!(
        net.run_until(MINUTE, |net| net.nodes[node].store.torrents[&torrent]
            .empty_files_created)
    );
    assert_eq!(net.nodes[node].store.torrents[&torrent].jobs["create"], 1);
}

#[test]
fn magnet_links_connect_and_wait_for_metadata() {
    let content = Content::new(TorrentVersion::Hybrid, 16 * 1024, &[("x", 64 * KIB)], 13);
    let mut net = Net::new();
    let seed_node = net.add_node();
    let node = net.add_node();
    let seed = net.add_seed(seed_node, &content);
    // The seed does not give its metadata away.
    net.with(seed_node, |s, _| {
        s.set_test_serving(seed, super::torrent::TestServing::Refuse)
    });
    // A v2-only link of a hybrid: its handshakes carry the truncated v2 hash, which the
    // seed must route to its hybrid torrent.
    let v2 = content.info.info_hashes().get_v2().unwrap();
    let link = MagnetLink::new(InfoHashes::v2(v2))
        .with_display_name("linked")
        .with_peer(net.nodes[seed_node].addr);
    let torrent = net.with(node, |s, now| {
        s.add_torrent(now, AddTorrentParams::new(TorrentSource::Magnet(link)))
            .unwrap()
    });
    let status = net.nodes[node].session.status(net.now, torrent).unwrap();
    assert_eq!(status.state, TorrentState::DownloadingMetadata);
    assert_eq!(status.name.as_deref(), Some("linked"));
    assert_eq!(status.num_pieces, 0);
    net.run_for(5 * MINUTE);
    assert!(net.nodes[node].saw(|a| matches!(a, Alert::PeerConnected { .. })));
    assert!(net.nodes[seed_node].saw(|a| matches!(a, Alert::PeerConnected { .. })));
    assert!(
        !net.nodes[node].saw(|a| matches!(a, Alert::PeerDisconnected { .. })),
        "kept alive"
    );
    assert!(net.is_in(node, torrent, TorrentState::DownloadingMetadata));
    assert_eq!(
        net.nodes[node]
            .session
            .prioritize_files(net.now, torrent, &[1]),
        Err(SessionError::NoMetadata)
    );
    let resume =
        ResumeData::from_bytes(&net.nodes[node].session.save_resume_data(torrent).unwrap())
            .unwrap();
    assert!(resume.pieces.is_empty() && resume.info.is_none());
}

#[test]
fn a_magnet_with_resume_data_has_its_metadata_at_once() {
    let content = Content::new(TorrentVersion::Hybrid, 16 * 1024, &[("x", 64 * KIB)], 14);
    let n = content.info.num_pieces();
    let mut resume = ResumeData::new(content.info.info_hashes());
    resume.info = Some(content.info.info_bytes().clone());
    resume.pieces = vec![0xf0].into();
    assert_eq!(n, 4);
    let mut net = Net::new();
    let seed_node = net.add_node();
    let leech_node = net.add_node();
    let v1 = content.info.info_hashes().get_v1().unwrap();
    let mut params =
        AddTorrentParams::new(TorrentSource::Magnet(MagnetLink::new(InfoHashes::v1(v1))));
    params.resume_data = Some(resume.to_bytes());
    let all = (0..n).map(PieceIndex);
    let seed = net.add_torrent(seed_node, params, &content, all);
    assert!(net.is_in(seed_node, seed, TorrentState::Seeding));
    let status = net.nodes[seed_node].session.status(net.now, seed).unwrap();
    assert_eq!(
        status.info_hashes,
        content.info.info_hashes(),
        "the v2 hash is learnt"
    );
    let again =
        ResumeData::from_bytes(&net.nodes[seed_node].session.save_resume_data(seed).unwrap())
            .unwrap();
    assert_eq!(again.info.as_ref(), Some(content.info.info_bytes()));

    let leech = net.add_leecher(leech_node, &content, &[seed_node]);
    assert!(net.run_until(MINUTE, |net| net.is_in(
        leech_node,
        leech,
        TorrentState::Seeding
    )));
}

#[test]
fn commands_check_their_arguments() {
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("x", 64 * KIB)], 15);
    let mut net = Net::new();
    let node = net.add_node();
    let torrent = net.add_leecher(node, &content, &[]);
    let s = &mut net.nodes[node].session;
    let now = net.now;
    let unknown = TorrentId(77);
    assert_eq!(
        s.pause(now, unknown),
        Err(SessionError::UnknownTorrent(unknown))
    );
    assert_eq!(
        s.status(now, unknown).err(),
        Some(SessionError::UnknownTorrent(unknown))
    );
    assert_eq!(
        s.set_piece_priority(now, torrent, PieceIndex(4), 1),
        Err(SessionError::OutOfRange)
    );
    assert_eq!(
        s.add_torrent(now, content.params()).err(),
        Some(SessionError::DuplicateTorrent)
    );
    let mut params = content.params();
    params.resume_data = Some(bytes::Bytes::from_static(b"garbage"));
    assert!(matches!(
        Session::new(now, Net::config(9)).add_torrent(now, params),
        Err(SessionError::InvalidResumeData(_))
    ));
    assert_eq!(s.torrents(), [torrent]);
    s.set_piece_priority(now, torrent, PieceIndex(1), 0)
        .unwrap();
    s.set_sequential(now, torrent, true).unwrap();
    let resume = ResumeData::from_bytes(&s.save_resume_data(torrent).unwrap()).unwrap();
    assert_eq!(resume.piece_priorities, [4, 0, 4, 4]);
    assert!(resume.sequential);
    s.remove_torrent(now, torrent).unwrap();
    assert!(s.torrents().is_empty());
    assert_eq!(
        s.remove_torrent(now, torrent),
        Err(SessionError::UnknownTorrent(torrent))
    );
}

#[test]
fn connection_limits_and_ourselves() {
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("x", 64 * KIB)], 16);
    let mut net = Net::new();
    let mut config = Net::config(0);
    config.max_connections_per_torrent = 2;
    let node = net.add_node_with(config);
    for i in 1..5 {
        // Seeds that never unchoke: the connections stay.
        let mut config = Net::config(i);
        config.upload_slots = 0;
        net.add_node_with(config);
        net.add_seed(i, &content);
    }
    let torrent = net.add_leecher(node, &content, &[1, 2, 3, 4]);
    net.run_for(Duration::from_secs(2));
    let status = net.nodes[node].session.status(net.now, torrent).unwrap();
    assert_eq!(status.num_peers, 2);
    // An incoming connection over the limit is refused.
    net.with(3, |s, now| {
        s.connect_peer(now, TorrentId(0), net_addr(net_ip(node)))
            .unwrap()
    });
    net.run_for(Duration::from_secs(2));
    assert_eq!(
        net.nodes[node]
            .session
            .status(net.now, torrent)
            .unwrap()
            .num_peers,
        2
    );
    assert!(net.nodes[node].saw(|a| matches!(a, Alert::PeerDisconnected { reason, .. } if reason.contains("as many connections"))));

    // Dialling our own address: the handshake shows it, and it is not dialled again.
    let me = net.nodes[0].addr;
    let mut net2 = Net::new();
    let solo = net2.add_node();
    assert_eq!(net2.nodes[solo].addr, me);
    let t = net2.add_leecher(solo, &content, &[solo]);
    net2.run_for(Duration::from_secs(2));
    assert!(net2.nodes[solo].saw(
        |a| matches!(a, Alert::PeerDisconnected { reason, .. } if reason.contains("ourselves"))
    ));
    let connects = |net: &mut Net| {
        let mut count = 0;
        net.with(solo, |s, now| {
            s.connect_peer(now, t, me).unwrap();
            while let Some(action) = s.poll_action() {
                count += usize::from(matches!(action, Action::Connect { .. }));
            }
        });
        count
    };
    assert_eq!(connects(&mut net2), 0);
}

#[test]
fn incoming_connections_wait_for_the_info_hash_and_time_out() {
    let content = Content::new(TorrentVersion::Hybrid, 16 * 1024, &[("x", 64 * KIB)], 17);
    let now = Instant::ZERO;
    let mut session = Session::new(now, Net::config(0));
    let mut params = content.params();
    params.seed_mode = true;
    let torrent = session.add_torrent(now, params).unwrap();
    while session.poll_alert().is_some() {}
    let peer: SocketAddr = "10.9.9.9:5000".parse().unwrap();

    // A handshake for the truncated v2 hash, in two parts: nothing is taken until the
    // info-hash is there.
    let mut handshake = BytesMut::new();
    Handshake {
        reserved: ReservedBits::FAST,
        info_hash: content.info.info_hashes().get_v2().unwrap().truncated(),
        peer_id: crate::peer_id::PeerId([5; 20]),
    }
    .encode(&mut handshake);
    let conn = session.handle_incoming(now, peer).unwrap();
    let mut buf = BytesMut::from(&handshake[..40]);
    session.handle_received(now, conn, &mut buf);
    assert_eq!(buf.len(), 40, "kept until the info-hash is in");
    assert!(session.poll_transmit().is_none());
    buf.extend_from_slice(&handshake[40..]);
    session.handle_received(now, conn, &mut buf);
    assert!(buf.is_empty());
    let reply = session.poll_transmit().unwrap();
    assert_eq!(reply.conn, conn);
    assert_eq!(
        &reply.data[28..48],
        &handshake[28..48],
        "answered with the same identifier"
    );
    assert!(
        matches!(session.poll_alert(), Some(Alert::PeerConnected { torrent: t, .. }) if t == torrent)
    );
    assert_eq!(session.status(now, torrent).unwrap().num_peers, 1);

    // Unknown info-hash: closed.
    let other = session.handle_incoming(now, peer).unwrap();
    let mut bad = handshake.clone();
    bad[30] ^= 1;
    session.handle_received(now, other, &mut bad);
    assert_eq!(session.poll_action(), Some(Action::Close { conn: other }));
    assert!(matches!(
        session.poll_alert(),
        Some(Alert::PeerDisconnected { torrent: None, .. })
    ));

    // Silence: closed after the handshake timeout.
    let silent = session.handle_incoming(now, peer).unwrap();
    let deadline = session.poll_timeout().unwrap();
    assert!(deadline <= now + Duration::from_secs(20));
    session.handle_timeout(now + Duration::from_secs(20));
    assert!(
        std::iter::from_fn(|| session.poll_action()).any(|a| a == Action::Close { conn: silent })
    );
    // The timeout never reports a time at or before the last call.
    assert!(session
        .poll_timeout()
        .is_none_or(|t| t > now + Duration::from_secs(20)));
}

/// The torrent of [`arbitrary_input_never_panics`], made once.
fn fuzz_content() -> &'static Content {
    static CONTENT: std::sync::OnceLock<Content> = std::sync::OnceLock::new();
    CONTENT.get_or_init(|| Content::new(TorrentVersion::Hybrid, 16 * 1024, &[("x", 40 * KIB)], 18))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_input_never_panics(
        with_handshake in any::<bool>(),
        seed in any::<bool>(),
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..12),
        ticks in proptest::collection::vec(0u64..5000, 0..12),
    ) {
        let content = fuzz_content();
        let mut now = Instant::ZERO;
        let mut session = Session::new(now, Net::config(0));
        let mut params = content.params();
        params.seed_mode = seed;
        params.skip_check = true;
        let torrent = session.add_torrent(now, params).unwrap();
        let conn = session.handle_incoming(now, "10.1.1.1:999".parse().unwrap()).unwrap();
        let mut buf = BytesMut::new();
        if with_handshake {
            Handshake {
                reserved: ReservedBits::FAST | ReservedBits::EXTENSION_PROTOCOL,
                info_hash: content.info.info_hashes().best_v1_identifier(),
                peer_id: crate::peer_id::PeerId([3; 20]),
            }
            .encode(&mut buf);
        }
        for (i, chunk) in chunks.iter().enumerate() {
            buf.extend_from_slice(chunk);
            session.handle_received(now, conn, &mut buf);
            now += Duration::from_millis(ticks.get(i).copied().unwrap_or(0));
            session.handle_timeout(now);
            session.handle_sent(now, conn, chunk.len());
            while let Some(t) = session.poll_transmit() {
                prop_assert_eq!(t.conn, conn);
            }
            while let Some(action) = session.poll_action() {
                if let Action::Disk(job) = action {
                    // Serve reads with zeros, so uploads run too.
                    let result = match job.kind {
                        DiskJobKind::Read { piece, offset, len } => DiskResult::Read {
                            piece, offset, data: vec![0u8; len as usize].into(),
                        },
                        _ => DiskResult::Done,
                    };
                    session.handle_disk(now, DiskCompletion { id: job.id, torrent, result });
                }
            }
            while session.poll_alert().is_some() {}
        }
        session.handle_closed(now, conn);
        let _ = session.status(now, torrent).unwrap();
    }
}

fn arb_request() -> impl Strategy<Value = BlockRequest> {
    (0u32..4, 0u32..40000, 0u32..20000).prop_map(|(piece, offset, length)| BlockRequest {
        piece: PieceIndex(piece),
        offset,
        length,
    })
}

/// A request for a block of [`fuzz_content`]'s torrent that fits its piece.
fn valid_request() -> impl Strategy<Value = BlockRequest> {
    (0u32..3, 1u32..=16384).prop_map(|(piece, length)| BlockRequest {
        piece: PieceIndex(piece),
        offset: 0,
        length: length.min(fuzz_content().info.piece_size(PieceIndex(piece))),
    })
}

/// Messages a peer of [`fuzz_content`]'s torrent may send: mostly valid ones (so the
/// session gets far: requests, uploads, blocks, hash checks), some out of range.
fn arb_message() -> impl Strategy<Value = Message> {
    prop_oneof![
        3 => Just(Message::KeepAlive),
        3 => Just(Message::Choke),
        10 => Just(Message::Unchoke),
        10 => Just(Message::Interested),
        3 => Just(Message::NotInterested),
        6 => Just(Message::HaveAll),
        2 => Just(Message::HaveNone),
        6 => (0u32..3).prop_map(|p| Message::Have(PieceIndex(p))),
        3 => (0u8..8).prop_map(|b| Message::Bitfield(vec![b << 5].into())),
        10 => valid_request().prop_map(Message::Request),
        4 => valid_request().prop_map(Message::Cancel),
        3 => valid_request().prop_map(Message::Reject),
        3 => (0u32..3).prop_map(|p| Message::AllowedFast(PieceIndex(p))),
        2 => (0u32..3).prop_map(|p| Message::Suggest(PieceIndex(p))),
        1 => any::<u16>().prop_map(Message::Port),
        2 => (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(id, payload)| Message::Extended { id, payload: payload.into() }),
        20 => (0u32..3, proptest::bool::weighted(0.8)).prop_map(|(p, good)| {
            let mut data = fuzz_content().piece(PieceIndex(p)).to_vec();
            if !good {
                data[0] ^= 1;
            }
            Message::Piece(Block { piece: PieceIndex(p), offset: 0, data: data.into() })
        }),
        1 => (0u32..8).prop_map(|p| Message::Have(PieceIndex(p))),
        1 => proptest::collection::vec(any::<u8>(), 0..3).prop_map(|b| Message::Bitfield(b.into())),
        1 => arb_request().prop_map(Message::Request),
        1 => arb_request().prop_map(Message::Cancel),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_messages_never_panic(
        seed in any::<bool>(),
        prelude in any::<bool>(),
        messages in proptest::collection::vec((arb_message(), 0u64..3000), 0..40),
    ) {
        let content = fuzz_content();
        let mut now = Instant::ZERO;
        let mut session = Session::new(now, Net::config(0));
        let mut store = super::testing::Store::default();
        let mut params = content.params();
        params.seed_mode = seed;
        params.skip_check = true;
        let torrent = session.add_torrent(now, params).unwrap();
        if seed {
            store.put(torrent, content, (0..content.info.num_pieces()).map(PieceIndex));
        }
        let peer: SocketAddr = "10.1.1.1:999".parse().unwrap();
        let conn = session.handle_incoming(now, peer).unwrap();
        let mut buf = BytesMut::new();
        Handshake {
            reserved: ReservedBits::FAST | ReservedBits::EXTENSION_PROTOCOL,
            info_hash: content.info.info_hashes().best_v1_identifier(),
            peer_id: crate::peer_id::PeerId([3; 20]),
        }
        .encode(&mut buf);
        // Often open as a real peer would, so that requests go out and blocks are taken.
        let opening = [Message::HaveAll, Message::Unchoke, Message::Interested];
        let opening = opening.into_iter().filter(|_| prelude).map(|m| (m, 0));
        for (message, wait) in opening.chain(messages) {
            message.encode(&mut buf);
            session.handle_received(now, conn, &mut buf);
            now += Duration::from_millis(wait);
            session.handle_timeout(now);
            let mut sent = 0;
            while let Some(t) = session.poll_transmit() {
                prop_assert_eq!(t.conn, conn);
                sent += t.data.len();
            }
            session.handle_sent(now, conn, sent);
            while let Some(action) = session.poll_action() {
                if let Action::Disk(job) = action {
                    let completion = store.run(job);
                    session.handle_disk(now, completion);
                }
            }
            while let Some(alert) = session.poll_alert() {
                if let Alert::PeerBanned { addr, .. } = alert {
                    prop_assert_eq!(addr.ip(), peer.ip());
                }
            }
        }
        let status = session.status(now, torrent).unwrap();
        prop_assert!(status.num_peers <= 1);
        prop_assert!(status.num_have <= content.info.num_pieces());
    }
}

// ----- choking -----

/// What `node`'s `torrent` does for its peer on `other` (found by address).
fn upload_to(net: &Net, node: usize, torrent: TorrentId, other: usize) -> Option<PeerUpload> {
    net.nodes[node].session.torrents[&torrent]
        .peer_uploads()
        .into_iter()
        .find(|p| p.addr.ip() == net_ip(other))
}

/// Whether `node`'s `torrent` unchokes its peer on `other`.
fn unchokes(net: &Net, node: usize, torrent: TorrentId, other: usize) -> bool {
    upload_to(net, node, torrent, other).is_some_and(|p| !p.choked)
}

/// Payload `torrent` on `node` downloaded so far.
fn downloaded(net: &Net, node: usize, torrent: TorrentId) -> u64 {
    net.nodes[node]
        .session
        .status(net.now, torrent)
        .unwrap()
        .total_downloaded
}

/// A leecher on node 0 with `upload_slots` 2 (one regular, one optimistic) that has the
/// first half of a 2 MiB torrent; node 1 has the second half and trades with it; nodes
/// `2..2 + takers` have nothing and only take. Every connection carries 16 KiB/s, so the
/// trade lasts about a minute.
fn trading_swarm(takers: usize) -> (Net, Content, Vec<TorrentId>) {
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("x", 2048 * KIB)], 30);
    let n = content.info.num_pieces();
    let mut net = Net::new();
    net.default_link.bandwidth = Some(16 * KIB);
    let mut config = Net::config(0);
    config.upload_slots = 2;
    net.add_node_with(config);
    let first_half = (0..n / 2).map(PieceIndex);
    let mut torrents = vec![net.add_torrent(0, content.params(), &content, first_half)];
    net.add_node();
    let mut params = content.params();
    params.peers = vec![net.nodes[0].addr];
    torrents.push(net.add_torrent(1, params, &content, (n / 2..n).map(PieceIndex)));
    for _ in 0..takers {
        let node = net.add_node();
        torrents.push(net.add_leecher(node, &content, &[0]));
    }
    (net, content, torrents)
}

#[test]
fn a_leecher_reciprocates_the_peer_that_uploads_to_it() {
    let (mut net, _, t) = trading_swarm(2);
    // Checking, connecting, and the first rechoke that knows the rates.
    net.run_for(Duration::from_secs(12));
    assert!(net.is_in(0, t[0], TorrentState::Downloading));
    assert!(downloaded(&net, 0, t[0]) > 0, "node 1 uploads to node 0");
    let mut takers_unchoked = [0; 2];
    for _ in 0..40 {
        net.run_for(Duration::from_secs(1));
        for node in 1..4 {
            let peer = upload_to(&net, 0, t[0], node).unwrap();
            assert!(peer.interested, "node {node} wants the first half");
        }
        assert!(
            unchokes(&net, 0, t[0], 1),
            "the trading peer keeps its slot at {:?}",
            net.now
        );
        let open: Vec<bool> = (2..4).map(|node| unchokes(&net, 0, t[0], node)).collect();
        assert!(
            !(open[0] && open[1]),
            "the takers share the optimistic slot at {:?}",
            net.now
        );
        for (count, open) in takers_unchoked.iter_mut().zip(open) {
            *count += usize::from(open);
        }
    }
    assert!(
        net.is_in(0, t[0], TorrentState::Downloading),
        "still trading"
    );
    // The optimistic slot went round: each taker got it for a while, not for good.
    for (i, count) in takers_unchoked.iter().enumerate() {
        assert!((1..40).contains(count), "taker {i}: {takers_unchoked:?}");
    }
    let sent = |node| upload_to(&net, 0, t[0], node).unwrap().uploaded;
    assert!(sent(1) > sent(2) && sent(1) > sent(3));
}

#[test]
fn the_optimistic_unchoke_reaches_a_choked_interested_peer() {
    let (mut net, content, t) = trading_swarm(1);
    net.run_for(Duration::from_secs(40));
    // Both slots taken: the trading peer and the only taker.
    assert!(unchokes(&net, 0, t[0], 1) && unchokes(&net, 0, t[0], 2));

    // A newcomer finds the slots full and waits, interested.
    let late = net.add_node();
    let late_torrent = net.add_leecher(late, &content, &[0]);
    net.run_for(Duration::from_secs(2));
    let peer = upload_to(&net, 0, t[0], late).expect("connected");
    assert!(peer.interested && peer.choked, "{peer:?}");

    // At the latest when the taker's optimistic slot ends, the newcomer gets it.
    let reached = net.run_until(Duration::from_secs(40), |net| {
        unchokes(net, 0, t[0], late) && downloaded(net, late, late_torrent) > 0
    });
    assert!(reached, "the newcomer was never unchoked");
    assert!(
        unchokes(&net, 0, t[0], 1),
        "the trading peer keeps its slot"
    );
    assert!(
        !unchokes(&net, 0, t[0], 2),
        "the slot moved from the old taker"
    );
}

#[test]
fn a_seed_with_fewer_slots_than_leechers_serves_them_all_in_turns() {
    let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("x", 1024 * KIB)], 31);
    let mut net = Net::new();
    net.default_link.bandwidth = Some(16 * KIB);
    let mut config = Net::config(0);
    config.upload_slots = 2;
    net.add_node_with(config);
    let seed = net.add_seed(0, &content);
    let leechers: Vec<(usize, TorrentId)> = (1..=5)
        .map(|_| {
            let node = net.add_node();
            (node, net.add_leecher(node, &content, &[0]))
        })
        .collect();
    let mut most_unchoked = 0;
    let mut waited = false;
    let all_served = net.run_until(4 * MINUTE, |net| {
        let peers = net.nodes[0].session.torrents[&seed].peer_uploads();
        most_unchoked = most_unchoked.max(peers.iter().filter(|p| !p.choked).count());
        waited |= peers.iter().any(|p| p.choked && p.interested);
        leechers
            .iter()
            .all(|&(node, torrent)| downloaded(net, node, torrent) > 0)
    });
    assert!(all_served, "a leecher never got data");
    assert!(waited, "some leecher waited for a slot");
    assert_eq!(most_unchoked, 2, "never more unchoked than slots");
    // Nobody had the seed to itself for long: a 1 MiB torrent at 16 KiB/s takes a
    // minute, and all five were served before any was done.
    assert!(leechers.iter().all(|&(node, torrent)| !net.is_in(
        node,
        torrent,
        TorrentState::Seeding
    )));
}

/// A peer driven by hand against a session, checking what the session sends it.
struct HandPeer {
    conn: ConnectionId,
    fast: bool,
    inbox: BytesMut,
    handshake_done: bool,
    decoder: crate::wire::MessageDecoder,
    /// Whether the session chokes it, as its messages say.
    choked: bool,
    /// Requests sent that may still be answered.
    outstanding: HashSet<BlockRequest>,
    /// Requests sent while choked, not rejected yet.
    sent_while_choked: HashSet<BlockRequest>,
    unchokes: usize,
    pieces: usize,
    /// Requests rejected when a choke took them back.
    rejected_by_choke: usize,
    /// Pieces the session granted with `allowed fast`.
    allowed: HashSet<PieceIndex>,
    /// Requests rejected, for any reason.
    rejected: usize,
}

impl HandPeer {
    /// Takes bytes from the session and checks every message.
    fn receive(&mut self, data: &[u8]) {
        self.inbox.extend_from_slice(data);
        if !self.handshake_done {
            match Handshake::decode(&mut self.inbox).unwrap() {
                Some(_) => self.handshake_done = true,
                None => return,
            }
        }
        while let Some(message) = self.decoder.decode(&mut self.inbox).unwrap() {
            match message {
                Message::Choke => {
                    assert!(!self.choked, "choked twice");
                    self.choked = true;
                    if !self.fast {
                        // BEP3: a choke drops every request.
                        self.outstanding.clear();
                    }
                }
                Message::Unchoke => {
                    self.choked = false;
                    self.unchokes += 1;
                }
                Message::AllowedFast(piece) => {
                    assert!(self.fast, "allowed fast without the fast extension");
                    self.allowed.insert(piece);
                }
                Message::Piece(block) => {
                    assert!(
                        !self.choked || self.allowed.contains(&block.piece),
                        "a block while choked (fast: {})",
                        self.fast
                    );
                    assert!(self.outstanding.remove(&block.request()), "unasked block");
                    self.pieces += 1;
                }
                Message::Reject(request) => {
                    assert!(self.fast, "a reject without the fast extension");
                    assert!(self.choked, "rejected while unchoked: {request:?}");
                    self.rejected += 1;
                    assert!(self.outstanding.remove(&request), "unasked reject");
                    if !self.sent_while_choked.remove(&request) {
                        self.rejected_by_choke += 1;
                    }
                }
                _ => {}
            }
        }
    }

    /// Requests for whole one-block pieces: up to four at a time while unchoked, and if
    /// `late`, one while choked (as a peer that missed the choke would).
    fn requests(&mut self, num_pieces: u32, late: bool) -> BytesMut {
        let mut out = BytesMut::new();
        let mut next = (0..num_pieces).map(|p| BlockRequest {
            piece: PieceIndex(p),
            offset: 0,
            length: 16 * 1024,
        });
        if !self.choked {
            while self.outstanding.len() < 4 {
                let Some(request) = next.find(|r| !self.outstanding.contains(r)) else {
                    break;
                };
                self.outstanding.insert(request);
                Message::Request(request).encode(&mut out);
            }
        } else if late {
            if let Some(request) = next.find(|r| !self.outstanding.contains(r)) {
                if self.fast {
                    self.outstanding.insert(request);
                    self.sent_while_choked.insert(request);
                }
                Message::Request(request).encode(&mut out);
            }
        }
        out
    }
}

/// A seed of a torrent of one-block pieces, in a session with one upload slot (the
/// optimistic one), and peers driven by hand. Disk reads complete at the next
/// [`step`](Self::step), so that a choke finds some in flight.
struct HandSeed {
    content: Content,
    session: Session,
    store: super::testing::Store,
    reads: Vec<DiskJob>,
    peers: Vec<HandPeer>,
    now: Instant,
}

impl HandSeed {
    fn new() -> Self {
        Self::with(128 * KIB, 1)
    }

    /// A seed of `size` bytes in one-block pieces, with `upload_slots`.
    fn with(size: u64, upload_slots: usize) -> Self {
        let content = Content::new(TorrentVersion::V1, 16 * 1024, &[("x", size)], 32);
        let mut config = Net::config(0);
        config.upload_slots = upload_slots;
        let now = Instant::ZERO;
        let mut session = Session::new(now, config);
        let mut store = super::testing::Store::default();
        let mut params = content.params();
        params.seed_mode = true;
        let torrent = session.add_torrent(now, params).unwrap();
        let n = content.info.num_pieces();
        store.put(torrent, &content, (0..n).map(PieceIndex));
        Self {
            content,
            session,
            store,
            reads: Vec::new(),
            peers: Vec::new(),
            now,
        }
    }

    /// Connects a peer that has nothing, interested in our pieces or not; returns its index.
    fn connect(&mut self, fast: bool, interested: bool) -> usize {
        let index = self.peers.len();
        let port = 1000 + index as u16;
        let conn = self
            .session
            .handle_incoming(self.now, SocketAddr::new(net_ip(9), port))
            .unwrap();
        let mut opening = BytesMut::new();
        let reserved = if fast {
            ReservedBits::FAST
        } else {
            ReservedBits::NONE
        };
        Handshake {
            reserved,
            info_hash: self.content.info.info_hashes().best_v1_identifier(),
            peer_id: crate::peer_id::PeerId([index as u8 + 1; 20]),
        }
        .encode(&mut opening);
        if fast {
            Message::HaveNone.encode(&mut opening);
        }
        self.peers.push(HandPeer {
            conn,
            fast,
            inbox: BytesMut::new(),
            handshake_done: false,
            decoder: crate::wire::MessageDecoder::for_torrent(self.content.info.num_pieces()),
            choked: true,
            outstanding: HashSet::new(),
            sent_while_choked: HashSet::new(),
            unchokes: 0,
            pieces: 0,
            rejected_by_choke: 0,
            allowed: HashSet::new(),
            rejected: 0,
        });
        self.send_bytes(index, opening);
        if interested {
            self.send(index, Message::Interested);
        }
        index
    }

    /// Hands a message from peer `index` to the session and passes on what follows.
    fn send(&mut self, index: usize, message: Message) {
        let mut bytes = BytesMut::new();
        message.encode(&mut bytes);
        self.send_bytes(index, bytes);
    }

    fn send_bytes(&mut self, index: usize, mut bytes: BytesMut) {
        let conn = self.peers[index].conn;
        self.session.handle_received(self.now, conn, &mut bytes);
        self.deliver();
    }

    /// Passes what the session sends to its peers, keeps disk jobs for the next step.
    fn deliver(&mut self) {
        while let Some(t) = self.session.poll_transmit() {
            if let Some(peer) = self.peers.iter_mut().find(|p| p.conn == t.conn) {
                peer.receive(&t.data);
                self.session.handle_sent(self.now, t.conn, t.data.len());
            }
        }
        while let Some(action) = self.session.poll_action() {
            match action {
                Action::Disk(job) => self.reads.push(job),
                Action::Close { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        while self.session.poll_alert().is_some() {}
    }

    /// Moves time on by `by`: the reads asked for finish, and timers run.
    fn step(&mut self, by: Duration) {
        self.now += by;
        for job in std::mem::take(&mut self.reads) {
            let completion = self.store.run(job);
            self.session.handle_disk(self.now, completion);
        }
        if self.session.poll_timeout().is_some_and(|t| t <= self.now) {
            self.session.handle_timeout(self.now);
        }
        self.deliver();
    }

    /// Whether the session unchokes peer `index`, as its messages say.
    fn open(&self, index: usize) -> bool {
        !self.peers[index].choked
    }
}

#[test]
fn a_choked_peer_gets_no_data() {
    let mut seed = HandSeed::new();
    let n = seed.content.info.num_pieces();
    // With and without the fast extension; they take turns in the one slot.
    seed.connect(true, true);
    seed.connect(false, true);
    for i in 0..3000u32 {
        let late = i % 20 == 0;
        for index in 0..2 {
            let requests = seed.peers[index].requests(n, late);
            if !requests.is_empty() {
                seed.send_bytes(index, requests);
            }
        }
        seed.step(Duration::from_millis(50));
        assert!(
            !(seed.open(0) && seed.open(1)),
            "one slot, at {:?}",
            seed.now
        );
    }
    for peer in &seed.peers {
        assert!(peer.pieces > 0, "fast {}: never served", peer.fast);
        assert!(peer.unchokes >= 2, "fast {}: no turns", peer.fast);
    }
    let fast = &seed.peers[0];
    assert!(
        fast.sent_while_choked.is_empty(),
        "every request sent while choked is rejected"
    );
    assert!(
        fast.rejected_by_choke > 0,
        "requests queued when the choke came are rejected"
    );
}

/// BEP6 as we grant it: a newcomer is granted up to 5 pieces we have (none in a small
/// torrent), served while choked, each at most about twice; other pieces are rejected, and
/// once it has 10 pieces it is no newcomer and granted pieces are refused too.
#[test]
fn allowed_fast_pieces_are_served_while_choked_within_bounds() {
    // Eight pieces: too few to grant any.
    let mut small = HandSeed::new();
    let a = small.connect(true, true);
    assert!(small.peers[a].allowed.is_empty());

    let mut seed = HandSeed::with(64 * 16 * KIB, 0);
    let a = seed.connect(true, true);
    let granted: Vec<PieceIndex> = seed.peers[a].allowed.iter().copied().collect();
    assert!(!granted.is_empty() && granted.len() <= 5, "{granted:?}");
    let request = |piece: PieceIndex| BlockRequest {
        piece,
        offset: 0,
        length: 16 * 1024,
    };
    // Each granted piece asked for three times: served twice each at most.
    for _ in 0..3 {
        for &piece in &granted {
            ask_as(&mut seed, a, request(piece));
        }
    }
    assert!(!seed.open(a));
    assert_eq!(seed.peers[a].pieces, 2 * granted.len());
    assert_eq!(seed.peers[a].rejected, granted.len());
    // A piece not granted is rejected.
    let other = (0..64)
        .map(PieceIndex)
        .find(|p| !granted.contains(p))
        .unwrap();
    ask_as(&mut seed, a, request(other));
    assert_eq!(seed.peers[a].rejected, granted.len() + 1);

    // A second newcomer with ten pieces is no newcomer: nothing is granted.
    let b = seed.connect(true, true);
    assert!(!seed.peers[b].allowed.is_empty());
    for p in 0..10 {
        seed.send(b, Message::Have(PieceIndex(p)));
    }
    let before = seed.peers[b].pieces;
    for piece in seed.peers[b].allowed.clone() {
        if piece.0 >= 10 {
            ask_as(&mut seed, b, request(piece));
        }
    }
    assert_eq!(
        seed.peers[b].pieces, before,
        "served to a peer no longer starting"
    );
}

/// Peer `index` of `seed` asks for `request`; the session's reads finish.
fn ask_as(seed: &mut HandSeed, index: usize, request: BlockRequest) {
    seed.peers[index].outstanding.insert(request);
    seed.send(index, Message::Request(request));
    seed.step(Duration::from_millis(50));
}

#[test]
fn interest_and_departures_rechoke_at_once() {
    let mut seed = HandSeed::new();
    let a = seed.connect(true, true);
    assert!(seed.open(a), "a free slot is given at once");
    let b = seed.connect(true, false);
    seed.step(Duration::from_secs(2));
    assert!(!seed.open(b));

    // Interested while the slot is taken: it waits.
    seed.send(b, Message::Interested);
    assert!(seed.open(a) && !seed.open(b));
    // The holder loses interest: the slot moves at once.
    seed.step(Duration::from_secs(1));
    seed.send(a, Message::NotInterested);
    assert!(!seed.open(a) && seed.open(b));
    seed.step(Duration::from_secs(1));
    seed.send(a, Message::Interested);
    assert!(!seed.open(a));

    // The holder leaves: the slot is given again at once.
    seed.step(Duration::from_secs(1));
    let conn = seed.peers[b].conn;
    seed.session.handle_closed(seed.now, conn);
    seed.deliver();
    assert!(seed.open(a));
}
