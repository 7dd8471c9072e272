//! Swarm scenarios on the deterministic simulator of [`super::testing`]: many sessions,
//! realistic latencies and upload limits, loss, and peers that cheat or stall. Every run
//! is a pure function of its seed.

use core::time::Duration;

use super::testing::{Behaviour, Content, Link, Network, Trace};
use super::{Alert, TorrentId, TorrentState};
use crate::create::TorrentVersion;
use crate::rng::Rng;
use crate::time::Instant;
use crate::wire::MessageId;
use crate::PieceIndex;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// A number in `low..=high` drawn from `rng`.
fn between(rng: &mut Rng, low: u64, high: u64) -> u64 {
    low + rng.next_u64() % (high - low + 1)
}

/// One torrent shared by the nodes of a network.
struct Swarm {
    net: Network,
    content: Content,
    /// Each node's torrent, if it has one.
    torrents: Vec<Option<TorrentId>>,
    /// The honest downloaders.
    leechers: Vec<usize>,
    rng: Rng,
}

/// How a swarm is laid out.
#[derive(Clone, Copy)]
struct Layout {
    seed: u64,
    version: TorrentVersion,
    size: u64,
    piece_length: u32,
    /// Each node's half of a path's latency is drawn from this range (ms), so a path
    /// between two nodes takes their sum.
    access_latency_ms: (u64, u64),
    /// The seed's upload, bytes per second.
    seed_upload: u64,
    /// The leechers' uploads are drawn from this range, bytes per second.
    leecher_upload: (u64, u64),
    /// Segment loss on every path.
    loss: f64,
    /// Bytes per second of each connection in each direction, if limited.
    link_bandwidth: Option<u64>,
}

impl Layout {
    fn new(seed: u64) -> Self {
        Self {
            seed,
            version: TorrentVersion::V1,
            size: 4 * MIB,
            piece_length: 64 * 1024,
            access_latency_ms: (3, 25),
            seed_upload: 2 * MIB,
            leecher_upload: (256 * KIB, MIB),
            loss: 0.0,
            link_bandwidth: None,
        }
    }
}

impl Swarm {
    /// A network of the layout's seed holding node 0, the seed of a torrent of random
    /// content, and nothing else yet.
    fn new(layout: Layout) -> Self {
        let content = Content::new(
            layout.version,
            layout.piece_length,
            &[("movie.bin", layout.size)],
            layout.seed,
        );
        let mut swarm = Self {
            net: Network::with_seed(layout.seed),
            content,
            torrents: Vec::new(),
            leechers: Vec::new(),
            rng: Rng::new(layout.seed),
        };
        let seed = swarm.add_node(&layout, layout.seed_upload);
        let torrent = swarm.net.add_seed(seed, &swarm.content);
        swarm.torrents[seed] = Some(torrent);
        swarm
    }

    /// Adds a node with this upload, linked to every other node by the layout's rules.
    fn add_node(&mut self, layout: &Layout, upload: u64) -> usize {
        let node = self.net.add_node();
        self.net.nodes[node].upload = Some(upload);
        self.torrents.push(None);
        let (low, high) = layout.access_latency_ms;
        let half = Duration::from_millis(between(&mut self.rng, low, high));
        let link = |latency| {
            let link = Link::new(latency).with_loss(layout.loss);
            match layout.link_bandwidth {
                Some(rate) => link.with_bandwidth(rate),
                None => link,
            }
        };
        // The access latency of each node, kept in the path to itself.
        self.net.set_link(node, node, link(half));
        for other in 0..node {
            let latency = self.net.link(other, other).latency + half;
            self.net.set_link(other, node, link(latency));
        }
        node
    }

    /// Adds `count` leechers, each dialling the seed and up to `mesh` earlier nodes.
    fn add_leechers(&mut self, layout: &Layout, count: usize, mesh: usize) {
        for _ in 0..count {
            let (low, high) = layout.leecher_upload;
            let upload = between(&mut self.rng, low, high);
            let node = self.add_node(layout, upload);
            let mut peers = vec![0];
            for _ in 0..mesh.min(node - 1) {
                let other = 1 + (self.rng.next_u64() % (node as u64 - 1)) as usize;
                if !peers.contains(&other) {
                    peers.push(other);
                }
            }
            let torrent = self.net.add_leecher(node, &self.content, &peers);
            self.torrents[node] = Some(torrent);
            self.leechers.push(node);
        }
    }

    fn torrent(&self, node: usize) -> TorrentId {
        self.torrents[node].expect("the node has the torrent")
    }

    /// Runs until every leecher seeds; whether they all did within `limit`.
    fn run_until_complete(&mut self, limit: Duration) -> bool {
        let leechers = self.leechers.clone();
        let torrents = self.torrents.clone();
        self.net.run_until(limit, |net| {
            leechers
                .iter()
                .all(|&n| torrents[n].is_some_and(|t| net.is_in(n, t, TorrentState::Seeding)))
        })
    }

    /// When each leecher finished (its `TorrentFinished`).
    fn completion_times(&self) -> Vec<Duration> {
        self.leechers
            .iter()
            .map(|&n| {
                let torrent = self.torrent(n);
                self.net.nodes[n]
                    .first_time(
                        |a| matches!(a, Alert::TorrentFinished { torrent: t } if *t == torrent),
                    )
                    .expect("finished")
                    .since_epoch()
            })
            .collect()
    }

    /// Every leecher holds the torrent's exact bytes.
    fn assert_bytes_correct(&self) {
        let n = self.content.info.num_pieces();
        for &node in &self.leechers {
            let bytes = self.net.nodes[node].store.bytes(self.torrent(node), n);
            assert!(
                bytes.as_deref() == Some(&self.content.data[..]),
                "node {node} has wrong or missing bytes"
            );
        }
    }

    /// No node sent a `piece` to a peer it was choking.
    fn assert_no_pieces_while_choked(&self) {
        for ((from, to), counts) in self.net.all_wire() {
            assert_eq!(
                counts.pieces_while_choked, 0,
                "node {from} sent pieces to node {to} while choking it"
            );
        }
    }

    fn alerts_of(&self, node: usize, f: impl Fn(&Alert) -> bool) -> usize {
        self.net.nodes[node].alerts.iter().filter(|a| f(a)).count()
    }
}

fn summary(times: &[Duration]) -> String {
    let mut sorted = times.to_vec();
    sorted.sort();
    let ms = |d: Duration| d.as_millis();
    format!(
        "first {} ms, median {} ms, last {} ms",
        ms(sorted[0]),
        ms(sorted[sorted.len() / 2]),
        ms(sorted[sorted.len() - 1])
    )
}

/// Scenario 1: a seed and 20 leechers; what the runs report, for the other scenarios.
struct SwarmRun {
    trace: Trace,
    times: Vec<Duration>,
    end: Instant,
}

fn twenty_leechers(seed: u64) -> SwarmRun {
    let layout = Layout {
        version: TorrentVersion::V1,
        ..Layout::new(seed)
    };
    let mut swarm = Swarm::new(layout);
    swarm.add_leechers(&layout, 20, 4);
    assert!(
        swarm.run_until_complete(Duration::from_secs(600)),
        "seed {seed}: not every leecher finished"
    );
    swarm.assert_bytes_correct();
    swarm.assert_no_pieces_while_choked();
    // The leechers traded among themselves: the seed alone could not have sent it all
    // this fast.
    let times = swarm.completion_times();
    let total = swarm.content.info.total_size();
    let seed_status = swarm.net.nodes[0]
        .session
        .status(swarm.net.now, swarm.torrent(0))
        .unwrap();
    let from_leechers: u64 = swarm
        .leechers
        .iter()
        .map(|&n| {
            swarm.net.nodes[n]
                .session
                .status(swarm.net.now, swarm.torrent(n))
                .unwrap()
                .total_uploaded
        })
        .sum();
    assert!(
        from_leechers > total,
        "leechers uploaded {from_leechers} bytes"
    );
    assert!(seed_status.total_uploaded >= total);
    SwarmRun {
        trace: swarm.net.trace(),
        times,
        end: swarm.net.now,
    }
}

#[test]
fn twenty_leechers_all_finish_with_the_right_bytes() {
    let run = twenty_leechers(1);
    println!(
        "20 leechers of 4 MiB, seed upload 2 MiB/s: {} (virtual); {} alerts",
        summary(&run.times),
        run.trace.alerts
    );
    let mut sorted = run.times.clone();
    sorted.sort();
    println!(
        "completion times (ms): {:?}",
        sorted.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );
    // 80 MiB went out over 2 MiB/s from the seed plus at most 20 MiB/s from the leechers.
    assert!(run.times.iter().all(|t| *t >= Duration::from_millis(2000)));
    assert!(
        run.end <= Instant::from_secs(120),
        "finished at {:?}",
        run.end
    );
}

#[test]
fn same_seed_same_trace_and_different_seeds_differ() {
    let a = twenty_leechers(7);
    let b = twenty_leechers(7);
    assert_eq!(a.trace, b.trace);
    assert_eq!(a.times, b.times);
    let c = twenty_leechers(8);
    assert_ne!(a.trace, c.trace);
}

/// The address of a node, as its peers see it.
fn ip_of(net: &Network, node: usize) -> core::net::IpAddr {
    net.nodes[node].addr.ip()
}

#[test]
fn a_transfer_takes_what_the_link_allows() {
    // 1 MiB over a 256 KiB/s link of 20 ms: 4 s of serialisation, plus a few round trips
    // (connect, handshakes, the first requests) and the protocol's overhead.
    let content = Content::new(TorrentVersion::V1, 64 * 1024, &[("x", MIB)], 9);
    let mut net = Network::with_seed(9);
    let seed = net.add_node();
    let leech = net.add_node();
    let link = Link::new(Duration::from_millis(20)).with_bandwidth(256 * KIB);
    net.set_link(seed, leech, link);
    net.add_seed(seed, &content);
    let torrent = net.add_leecher(leech, &content, &[seed]);
    assert!(net.run_until(Duration::from_secs(60), |net| net.is_in(
        leech,
        torrent,
        TorrentState::Seeding
    )));
    let took = net.now.since_epoch();
    println!("1 MiB over 256 KiB/s and 20 ms: {took:?}");
    assert!(took >= Duration::from_secs(4), "{took:?}");
    assert!(took <= Duration::from_millis(4400), "{took:?}");
}

#[test]
fn an_upload_is_shared_fairly() {
    // Two leechers that only know the seed share its 256 KiB/s: 2 MiB in about 8 s, and
    // they finish together.
    let content = Content::new(TorrentVersion::V1, 64 * 1024, &[("x", MIB)], 10);
    let mut net = Network::with_seed(10);
    let seed = net.add_node();
    net.nodes[seed].upload = Some(256 * KIB);
    net.add_seed(seed, &content);
    let mut leechers = Vec::new();
    for _ in 0..2 {
        let node = net.add_node();
        net.nodes[node].listening = false;
        leechers.push((node, net.add_leecher(node, &content, &[seed])));
    }
    assert!(net.run_until(Duration::from_secs(60), |net| leechers
        .iter()
        .all(|&(n, t)| net.is_in(n, t, TorrentState::Seeding))));
    let times: Vec<Duration> = leechers
        .iter()
        .map(|&(n, t)| {
            net.nodes[n]
                .first_time(|a| matches!(a, Alert::TorrentFinished { torrent } if *torrent == t))
                .unwrap()
                .since_epoch()
        })
        .collect();
    println!("two leechers behind 256 KiB/s: {times:?}");
    for t in &times {
        assert!(
            *t >= Duration::from_secs(8) && *t <= Duration::from_millis(8600),
            "{t:?}"
        );
    }
    let apart = times[0].abs_diff(times[1]);
    assert!(apart <= Duration::from_millis(300), "{apart:?} apart");
}

#[test]
fn a_peer_sending_corrupt_blocks_is_banned_and_the_swarm_completes() {
    let layout = Layout {
        size: 2 * MIB,
        ..Layout::new(2)
    };
    let mut swarm = Swarm::new(layout);
    // Node 1 seeds too, but every block it reads comes out with a flipped byte.
    let liar = swarm.add_node(&layout, 2 * MIB);
    let torrent = swarm.net.add_seed(liar, &swarm.content);
    swarm.torrents[liar] = Some(torrent);
    let all = (0..swarm.content.info.num_pieces()).map(PieceIndex);
    swarm.net.nodes[liar]
        .store
        .torrents
        .get_mut(&torrent)
        .unwrap()
        .corrupt = all.collect();
    swarm.add_leechers(&layout, 8, 3);
    for &leecher in &swarm.leechers.clone() {
        let addr = swarm.net.nodes[liar].addr;
        swarm.net.with(leecher, |s, now| {
            s.connect_peer(now, TorrentId(0), addr).unwrap()
        });
    }
    assert!(swarm.run_until_complete(Duration::from_secs(300)));
    swarm.assert_bytes_correct();
    swarm.assert_no_pieces_while_choked();

    let liar_ip = ip_of(&swarm.net, liar);
    let mut banned_by = 0;
    let mut failed = 0;
    let mut failed_after_ban = 0;
    for &leecher in &swarm.leechers {
        failed += swarm.alerts_of(leecher, |a| matches!(a, Alert::HashFailed { .. }));
        let banned = swarm.net.nodes[leecher]
            .saw(|a| matches!(a, Alert::PeerBanned { addr, .. } if addr.ip() == liar_ip));
        let pieces_from_liar = swarm.net.wire(liar, leecher).count(MessageId::Piece);
        if pieces_from_liar > 0 {
            assert!(
                banned,
                "node {leecher} took {pieces_from_liar} bad blocks and kept the peer"
            );
        }
        banned_by += usize::from(banned);
        // Nobody honest is banned.
        assert!(
            !swarm.net.nodes[leecher]
                .saw(|a| matches!(a, Alert::PeerBanned { addr, .. } if addr.ip() != liar_ip)),
            "node {leecher} banned an honest peer"
        );
        // Once banned, the liar is neither dialled nor accepted again.
        if let Some(at) = swarm.net.nodes[leecher]
            .first_time(|a| matches!(a, Alert::PeerBanned { addr, .. } if addr.ip() == liar_ip))
        {
            let node = &swarm.net.nodes[leecher];
            let reconnected = node.alerts.iter().zip(&node.alert_times).any(|(a, t)| {
                *t > at && matches!(a, Alert::PeerConnected { addr, .. } if addr.ip() == liar_ip)
            });
            assert!(
                !reconnected,
                "node {leecher} connected to the liar after banning it"
            );
            failed_after_ban += node
                .alerts
                .iter()
                .zip(&node.alert_times)
                .filter(|(a, t)| **t > at && matches!(a, Alert::HashFailed { .. }))
                .count();
        }
    }
    println!(
        "corrupt peer: banned by {banned_by} of {} leechers; {failed} failed pieces, \
         {failed_after_ban} of them after the ban (blocks taken before it); {}",
        swarm.leechers.len(),
        summary(&swarm.completion_times())
    );
    assert!(banned_by >= 1);
}

#[test]
fn peers_that_never_answer_are_dropped_and_the_download_completes() {
    let layout = Layout {
        size: MIB,
        ..Layout::new(3)
    };
    let mut swarm = Swarm::new(layout);
    // Accepts connections, never sends a byte.
    let hole = swarm.add_node(&layout, MIB);
    swarm.net.nodes[hole].behaviour = Behaviour::BlackHole;
    // A seed whose handshake stops after 20 bytes.
    let mute = swarm.add_node(&layout, MIB);
    swarm.net.nodes[mute].behaviour = Behaviour::Truncate(20);
    let torrent = swarm.net.add_seed(mute, &swarm.content);
    swarm.torrents[mute] = Some(torrent);
    // Has half the pieces, handshakes and unchokes, then falls silent with requests
    // outstanding.
    let staller = swarm.add_node(&layout, MIB);
    swarm.net.nodes[staller].behaviour = Behaviour::StallAfterUnchoke;
    let n = swarm.content.info.num_pieces();
    let mut params = swarm.content.params();
    params.resume_data = None;
    let half = (0..n).filter(|p| p % 2 == 0).map(PieceIndex);
    let torrent = swarm
        .net
        .add_torrent(staller, params, &swarm.content.clone(), half);
    swarm.torrents[staller] = Some(torrent);
    swarm.net.run_for(Duration::from_secs(1));
    assert!(swarm.net.is_in(staller, torrent, TorrentState::Downloading));

    swarm.add_leechers(&layout, 3, 0);
    let hostile = [hole, mute, staller];
    for &leecher in &swarm.leechers.clone() {
        for &h in &hostile {
            let addr = swarm.net.nodes[h].addr;
            swarm.net.with(leecher, |s, now| {
                s.connect_peer(now, TorrentId(0), addr).unwrap()
            });
        }
    }
    let leechers = swarm.leechers.clone();
    let addrs: Vec<_> = hostile.iter().map(|&h| swarm.net.nodes[h].addr).collect();
    let dropped_all = |net: &Network, leecher: usize| {
        addrs.iter().all(|addr| {
            net.nodes[leecher]
                .saw(|a| matches!(a, Alert::PeerDisconnected { addr: a, .. } if a == addr))
        })
    };
    let done = swarm.net.run_until(Duration::from_secs(600), |net| {
        leechers
            .iter()
            .all(|&l| net.is_in(l, TorrentId(0), TorrentState::Seeding) && dropped_all(net, l))
    });
    assert!(done, "a download did not complete or a silent peer stayed");
    swarm.assert_bytes_correct();

    let reason = |leecher: usize, node: usize| -> String {
        let addr = swarm.net.nodes[node].addr;
        swarm.net.nodes[leecher]
            .alerts
            .iter()
            .find_map(|a| match a {
                Alert::PeerDisconnected {
                    addr: a, reason, ..
                } if *a == addr => Some(reason.clone()),
                _ => None,
            })
            .unwrap()
    };
    let dropped_at = |leecher: usize, node: usize| {
        let addr = swarm.net.nodes[node].addr;
        swarm.net.nodes[leecher]
            .first_time(|a| matches!(a, Alert::PeerDisconnected { addr: a, .. } if *a == addr))
            .unwrap()
    };
    for &leecher in &swarm.leechers {
        assert!(reason(leecher, hole).contains("handshake timed out"));
        assert!(reason(leecher, mute).contains("handshake timed out"));
        assert!(
            reason(leecher, staller).contains("nothing received"),
            "{}",
            reason(leecher, staller)
        );
        let requests = swarm.net.wire(leecher, staller).count(MessageId::Request);
        assert!(requests > 0, "blocks were asked of the staller");
        assert_eq!(swarm.net.wire(staller, leecher).count(MessageId::Piece), 0);
        assert!(swarm.net.wire(staller, leecher).count(MessageId::Unchoke) == 1);
        println!(
            "node {leecher}: finished at {:?}; dropped the black hole at {:?}, the cut handshake at {:?}, the staller at {:?} (after {requests} requests)",
            swarm.completion_times()[swarm.leechers.iter().position(|&l| l == leecher).unwrap()],
            dropped_at(leecher, hole).since_epoch(),
            dropped_at(leecher, mute).since_epoch(),
            dropped_at(leecher, staller).since_epoch(),
        );
    }
}

#[test]
fn a_choked_peer_receives_no_piece() {
    let layout = Layout {
        size: MIB,
        ..Layout::new(4)
    };
    let mut swarm = Swarm::new(layout);
    // A second seed that unchokes nobody.
    let mut config = swarm.net.next_config();
    config.upload_slots = 0;
    let stingy = swarm.net.add_node_with(config);
    swarm.torrents.push(None);
    swarm.net.nodes[stingy].upload = Some(4 * MIB);
    let torrent = swarm.net.add_seed(stingy, &swarm.content);
    swarm.torrents[stingy] = Some(torrent);
    swarm.add_leechers(&layout, 4, 0);
    for &leecher in &swarm.leechers.clone() {
        let addr = swarm.net.nodes[stingy].addr;
        swarm.net.with(leecher, |s, now| {
            s.connect_peer(now, TorrentId(0), addr).unwrap()
        });
    }
    assert!(swarm.run_until_complete(Duration::from_secs(300)));
    swarm.assert_bytes_correct();
    swarm.assert_no_pieces_while_choked();
    for &leecher in &swarm.leechers {
        let to = swarm.net.wire(leecher, stingy);
        let from = swarm.net.wire(stingy, leecher);
        assert!(
            to.count(MessageId::Interested) >= 1,
            "the leecher wanted its pieces"
        );
        assert_eq!(
            to.count(MessageId::Request),
            0,
            "nothing asked of a choking peer"
        );
        assert_eq!(from.count(MessageId::Unchoke), 0);
        assert_eq!(from.count(MessageId::Piece), 0);
    }
    let status = swarm.net.nodes[stingy]
        .session
        .status(swarm.net.now, torrent)
        .unwrap();
    assert_eq!(status.total_uploaded, 0);
}

#[test]
fn rechoking_with_reads_in_flight_sends_no_piece_to_a_choked_peer() {
    // Two upload slots for six leechers that only know the seed, and too little upload
    // for anyone to finish within a round: the seed chokes and unchokes them in turn
    // while their blocks are being read and sent.
    let layout = Layout {
        size: MIB,
        piece_length: 32 * 1024,
        seed_upload: 32 * KIB,
        ..Layout::new(5)
    };
    let content = Content::new(
        layout.version,
        layout.piece_length,
        &[("x", layout.size)],
        5,
    );
    let mut net = Network::with_seed(5);
    let mut config = net.next_config();
    config.upload_slots = 2;
    let seed = net.add_node_with(config);
    net.nodes[seed].upload = Some(layout.seed_upload);
    net.add_seed(seed, &content);
    let mut leechers = Vec::new();
    for i in 0..6 {
        let node = net.add_node();
        net.nodes[node].listening = false;
        net.set_link(seed, node, Link::new(Duration::from_millis(10 + 5 * i)));
        leechers.push((node, net.add_leecher(node, &content, &[seed])));
    }
    let done = net.run_until(Duration::from_secs(600), |net| {
        leechers
            .iter()
            .all(|&(n, t)| net.is_in(n, t, TorrentState::Seeding))
    });
    assert!(done);
    let mut chokes = 0;
    for &(node, torrent) in &leechers {
        let from_seed = net.wire(seed, node);
        chokes += from_seed.count(MessageId::Choke);
        assert_eq!(from_seed.pieces_while_choked, 0, "node {node}");
        assert_eq!(
            net.nodes[node]
                .store
                .bytes(torrent, content.info.num_pieces())
                .as_deref(),
            Some(&content.data[..])
        );
    }
    println!(
        "six leechers behind two slots: {chokes} chokes, done at {:?}",
        net.now
    );
    assert!(chokes >= 2, "the seed rechoked ({chokes} chokes)");
}

#[test]
fn pieces_with_deadlines_come_first_under_bandwidth_limits() {
    let layout = Layout {
        version: TorrentVersion::Hybrid,
        size: 2 * MIB,
        piece_length: 32 * 1024,
        seed_upload: 512 * KIB,
        leecher_upload: (128 * KIB, 256 * KIB),
        link_bandwidth: Some(192 * KIB),
        ..Layout::new(6)
    };
    let mut swarm = Swarm::new(layout);
    swarm.add_leechers(&layout, 5, 2);
    assert!(swarm.run_until_complete(Duration::from_secs(300)));
    // A viewer joins six seeds of limited upload, with deadlines on the first pieces.
    let viewer = swarm.add_node(&layout, 256 * KIB);
    let mut params = swarm.content.params();
    params.skip_check = true;
    params.paused = true;
    params.peers = (0..viewer).map(|n| swarm.net.nodes[n].addr).collect();
    let content = swarm.content.clone();
    let torrent = swarm.net.add_torrent(viewer, params, &content, []);
    swarm.torrents[viewer] = Some(torrent);
    swarm.leechers.push(viewer);
    const STREAMED: u32 = 8;
    let start = swarm.net.now;
    // Half a second to connect and handshake, then a piece every 300 ms.
    let deadline = |i: u32| start + Duration::from_millis(500 + 300 * u64::from(i));
    for i in 0..STREAMED {
        swarm.net.with(viewer, |s, now| {
            s.set_piece_deadline(now, torrent, PieceIndex(i), deadline(i))
                .unwrap()
        });
    }
    swarm
        .net
        .with(viewer, |s, now| s.resume(now, torrent).unwrap());
    assert!(swarm.run_until_complete(Duration::from_secs(300)));
    swarm.assert_bytes_correct();
    swarm.assert_no_pieces_while_choked();

    let node = &swarm.net.nodes[viewer];
    let order = node.finished_pieces(torrent);
    let streamed: Vec<u32> = order
        .iter()
        .map(|p| p.0)
        .filter(|&p| p < STREAMED)
        .collect();
    let finished_at = |i: u32| {
        node.first_time(|a| matches!(a, Alert::PieceFinished { piece, .. } if piece.0 == i))
            .unwrap()
    };
    let times: Vec<String> = (0..STREAMED)
        .map(|i| {
            format!(
                "{i}: {} ms (deadline {} ms)",
                (finished_at(i) - start).as_millis(),
                (deadline(i) - start).as_millis()
            )
        })
        .collect();
    println!(
        "streamed pieces, in finish order {streamed:?} (first ten of all: {:?}): {}; whole torrent at {} ms",
        &order[..10],
        times.join(", "),
        (swarm.net.now - start).as_millis()
    );
    // Several sources of different speeds serve at once, so a piece without a deadline
    // from a fast peer may finish before a deadline piece from a slow one; but every
    // deadline piece was asked for first, and each is in by its deadline.
    let first: Vec<u32> = order[..2 * STREAMED as usize].iter().map(|p| p.0).collect();
    for i in 0..STREAMED {
        assert!(
            first.contains(&i),
            "piece {i} is not among the first: {order:?}"
        );
        assert!(
            finished_at(i) <= deadline(i),
            "piece {i} missed its deadline"
        );
    }
}

/// A viewer streams from a very slow seed (one block a second) and, a second later, a fast
/// one too. The deadline blocks that went to the slow seed first are asked of the fast one
/// as well once their deadline is near, the first copy cancelling the other: every streamed
/// piece is in by its deadline, where waiting on the slow seed (or for the end-game, many
/// seconds away in a torrent this size) would miss it.
#[test]
fn an_urgent_piece_does_not_wait_on_a_slow_peer() {
    let layout = Layout {
        size: 24 * MIB,
        piece_length: 64 * 1024,
        seed_upload: 4 * MIB,
        access_latency_ms: (5, 5),
        ..Layout::new(21)
    };
    let mut swarm = Swarm::new(layout);
    let fast = 0;
    let slow = swarm.add_node(&layout, 16 * KIB);
    let torrent = swarm.net.add_seed(slow, &swarm.content);
    swarm.torrents[slow] = Some(torrent);
    let viewer = swarm.add_node(&layout, MIB);
    let mut params = swarm.content.params();
    params.skip_check = true;
    params.peers = vec![swarm.net.nodes[slow].addr];
    let content = swarm.content.clone();
    let torrent = swarm.net.add_torrent(viewer, params, &content, []);
    swarm.torrents[viewer] = Some(torrent);
    swarm.leechers.push(viewer);
    const STREAMED: u32 = 8;
    let start = swarm.net.now;
    let deadline = |i: u32| start + Duration::from_millis(2000 + 250 * u64::from(i));
    for i in 0..STREAMED {
        swarm.net.with(viewer, |s, now| {
            s.set_piece_deadline(now, torrent, PieceIndex(i), deadline(i))
                .unwrap()
        });
    }
    swarm.net.run_for(Duration::from_secs(1));
    let asked_of_slow = swarm.net.wire(viewer, slow).count(MessageId::Request);
    assert!(asked_of_slow > 1, "the slow seed holds deadline blocks");
    let fast_addr = swarm.net.nodes[fast].addr;
    swarm.net.with(viewer, |s, now| {
        s.add_peers(now, torrent, [fast_addr], super::PeerSource::Manual)
            .unwrap()
    });
    assert!(swarm.run_until_complete(Duration::from_secs(300)));
    swarm.assert_bytes_correct();

    let node = &swarm.net.nodes[viewer];
    let finished_at = |i: u32| {
        node.first_time(|a| matches!(a, Alert::PieceFinished { piece, .. } if piece.0 == i))
            .unwrap()
    };
    let end_game = node
        .first_time(|a| matches!(a, Alert::TorrentFinished { .. }))
        .unwrap();
    println!(
        "{asked_of_slow} blocks asked of the slow seed in the first second; streamed pieces in at {:?} ms; the whole torrent at {} ms",
        (0..STREAMED)
            .map(|i| (finished_at(i) - start).as_millis())
            .collect::<Vec<_>>(),
        (end_game - start).as_millis()
    );
    for i in 0..STREAMED {
        assert!(
            finished_at(i) <= deadline(i),
            "piece {i} in at {} ms, due at {} ms",
            (finished_at(i) - start).as_millis(),
            (deadline(i) - start).as_millis()
        );
    }
}

/// Newcomers get BEP6 allowed-fast pieces: a seed grants each leecher (they start with
/// nothing) the pieces of its allowed-fast set, five of them, and serves those to leechers
/// it chokes; no other piece goes to a choked peer.
#[test]
fn newcomers_download_their_allowed_fast_pieces_while_choked() {
    let layout = Layout {
        size: 2 * MIB,
        piece_length: 32 * 1024,
        seed_upload: 256 * KIB,
        ..Layout::new(31)
    };
    let mut swarm = Swarm::new(layout);
    swarm.add_leechers(&layout, 12, 0);
    assert!(swarm.run_until_complete(Duration::from_secs(600)));
    swarm.assert_bytes_correct();
    swarm.assert_no_pieces_while_choked();
    let mut served_while_choked = 0;
    for &leecher in &swarm.leechers {
        let from_seed = swarm.net.wire(0, leecher);
        assert_eq!(
            from_seed.count(MessageId::AllowedFast),
            5,
            "leecher {leecher}"
        );
        served_while_choked += from_seed.allowed_fast_pieces_while_choked;
    }
    println!("{served_while_choked} allowed-fast blocks served to choked leechers");
    assert!(served_while_choked > 0);
}

#[test]
fn the_swarm_completes_through_loss() {
    for (seed, loss) in [(11, 0.01), (12, 0.03), (13, 0.05)] {
        let layout = Layout {
            size: MIB,
            piece_length: 32 * 1024,
            loss,
            ..Layout::new(seed)
        };
        let mut swarm = Swarm::new(layout);
        swarm.add_leechers(&layout, 8, 3);
        assert!(
            swarm.run_until_complete(Duration::from_secs(900)),
            "not complete at {loss} loss"
        );
        swarm.assert_bytes_correct();
        swarm.assert_no_pieces_while_choked();
        let failed: usize = swarm
            .leechers
            .iter()
            .map(|&l| {
                swarm.alerts_of(l, |a| {
                    matches!(a, Alert::HashFailed { .. } | Alert::PeerBanned { .. })
                })
            })
            .sum();
        assert_eq!(failed, 0, "loss delays bytes, never changes them");
        for &l in &swarm.leechers {
            assert!(
                !swarm.net.nodes[l].saw(|a| matches!(a,
                    Alert::PeerDisconnected { reason, .. } if reason.contains("invalid"))),
                "loss never reorders a stream"
            );
        }
        println!(
            "loss {:.0}%: {}",
            loss * 100.0,
            summary(&swarm.completion_times())
        );
    }
}
