//! Trackers driven by the session: in the simulator (an HTTP tracker answering every
//! node) and by hand (UDP trackers, name resolution, removed torrents).

use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use super::testing::{Content, Net};
use super::*;
use crate::create::TorrentVersion;
use crate::tracker::udp::{AddressFamily, UdpRequest, UdpResponse};
use crate::tracker::{AnnounceEvent, HttpResponse};

const TRACKER: &str = "http://tracker.test/announce";
const MINUTE: Duration = Duration::from_secs(60);

fn content(version: TorrentVersion) -> Content {
    Content::new(version, 32 * 1024, &[("a.bin", 200 * 1024 + 5)], 3)
}

fn with_tracker(mut params: AddTorrentParams) -> AddTorrentParams {
    params.trackers = vec![vec![TRACKER.to_owned()]];
    params
}

/// A seed and a leecher that know nothing of each other but the tracker.
fn swarm(net: &mut Net, content: &Content) -> ((usize, TorrentId), (usize, TorrentId)) {
    let seed_node = net.add_node();
    let leech_node = net.add_node();
    let mut params = with_tracker(content.params());
    params.seed_mode = true;
    let all = (0..content.info.num_pieces()).map(crate::PieceIndex);
    let seed = net.add_torrent(seed_node, params, content, all);
    let mut params = with_tracker(content.params());
    params.skip_check = true;
    let leech = net.add_torrent(leech_node, params, content, []);
    ((seed_node, seed), (leech_node, leech))
}

fn events_of(net: &Net, node: usize) -> Vec<Option<String>> {
    let ip = net.nodes[node].addr.ip();
    net.tracker
        .announces
        .iter()
        .filter(|a| a.peer.ip() == ip)
        .map(|a| a.event.clone())
        .collect()
}

#[test]
fn peers_meet_through_the_tracker_and_announce_completed_and_stopped() {
    let content = content(TorrentVersion::V1);
    let mut net = Net::new();
    let ((seed_node, _), (leech_node, leech)) = swarm(&mut net, &content);
    let done = net.run_until(MINUTE, |net| {
        net.is_in(leech_node, leech, TorrentState::Seeding)
    });
    assert!(done, "the leecher never found the seed");
    let n = content.info.num_pieces();
    assert_eq!(
        net.nodes[leech_node].store.bytes(leech, n).as_deref(),
        Some(&content.data[..])
    );
    assert_eq!(events_of(&net, seed_node), [Some("started".to_owned())]);
    assert_eq!(
        events_of(&net, leech_node),
        [Some("started".to_owned()), Some("completed".to_owned())]
    );
    let leecher_announces: Vec<_> = net
        .tracker
        .announces
        .iter()
        .filter(|a| a.peer.ip() == net.nodes[leech_node].addr.ip())
        .collect();
    assert_eq!(leecher_announces[0].left, content.info.total_size());
    assert_eq!(leecher_announces[1].left, 0);
    assert_eq!(leecher_announces[1].downloaded, content.info.total_size());
    assert!(
        net.nodes[leech_node].saw(|a| matches!(a,
        Alert::TrackerReply { torrent, url, num_peers: 1 } if *torrent == leech && url == TRACKER))
    );

    let now = net.now;
    net.nodes[leech_node]
        .session
        .remove_torrent(now, leech)
        .unwrap();
    net.drain(leech_node);
    assert!(net.nodes[leech_node].session.has_tracker_requests());
    net.run_for(Duration::from_secs(1));
    assert_eq!(
        events_of(&net, leech_node).last(),
        Some(&Some("stopped".to_owned()))
    );
    let info_hash = content.info.info_hashes().get_v1().unwrap().0.to_vec();
    assert_eq!(
        net.tracker.swarm(&info_hash),
        [net.nodes[seed_node].addr],
        "the leecher left the swarm"
    );
    assert!(!net.nodes[leech_node].session.has_tracker_requests());
}

#[test]
fn a_hybrid_announces_both_info_hashes() {
    let content = content(TorrentVersion::Hybrid);
    let mut net = Net::new();
    let ((seed_node, _), (leech_node, leech)) = swarm(&mut net, &content);
    let done = net.run_until(MINUTE, |net| {
        net.is_in(leech_node, leech, TorrentState::Seeding)
    });
    assert!(done);
    let hashes = content.info.info_hashes();
    let v1 = hashes.get_v1().unwrap().0.to_vec();
    let v2 = hashes.get_v2().unwrap().truncated().0.to_vec();
    for node in [seed_node, leech_node] {
        let ip = net.nodes[node].addr.ip();
        for hash in [&v1, &v2] {
            assert!(
                net.tracker.announces.iter().any(|a| a.peer.ip() == ip
                    && &a.info_hash == hash
                    && a.event.as_deref() == Some("started")),
                "node {node} announced {hash:?}"
            );
        }
    }
    assert_eq!(net.tracker.swarm(&v1).len(), 2);
    assert_eq!(net.tracker.swarm(&v2).len(), 2);
}

#[test]
fn a_failure_reason_is_an_error_alert_and_the_tracker_is_asked_again_later() {
    let content = content(TorrentVersion::V1);
    let mut net = Net::new();
    net.tracker
        .script
        .push_back(Ok((200, b"d14:failure reason9:forbiddene".to_vec())));
    let ((seed_node, seed), _) = swarm(&mut net, &content);
    net.run_for(Duration::from_secs(5));
    let node = &net.nodes[seed_node];
    assert!(node.saw(|a| matches!(a,
        Alert::TrackerError { torrent, error, failures: 1, .. }
            if *torrent == seed && error == "forbidden")));
    let entries = node.session.trackers(seed).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].url, TRACKER);
    assert_eq!(entries[0].failures, 1);
    assert_eq!(entries[0].last_error.as_deref(), Some("forbidden"));
    let retry_at = entries[0].retry_at.expect("backing off");
    assert!(retry_at >= Instant::ZERO + Duration::from_secs(60));
    assert!(net.is_in(seed_node, seed, TorrentState::Seeding));
    let before = events_of(&net, seed_node).len();
    assert_eq!(before, 1, "not asked again while backing off");

    net.run_for(Duration::from_secs(60));
    let events = events_of(&net, seed_node);
    assert_eq!(events, [Some("started".into()), Some("started".into())]);
    let entries = net.nodes[seed_node].session.trackers(seed).unwrap();
    assert_eq!(
        (entries[0].failures, entries[0].last_error.as_ref()),
        (0, None)
    );
}

/// BEP24: the `external ip` a tracker reports is alerted once, not at every announce.
#[test]
fn the_external_ip_a_tracker_reports_is_alerted_when_new() {
    let content = content(TorrentVersion::V1);
    let mut net = Net::new();
    net.tracker.interval = 60;
    let ((seed_node, _), _) = swarm(&mut net, &content);
    net.run_for(Duration::from_secs(3600));
    let node = &net.nodes[seed_node];
    let told: Vec<&Alert> = node
        .alerts
        .iter()
        .filter(|a| matches!(a, Alert::ExternalAddress { .. }))
        .collect();
    assert_eq!(
        told,
        [&Alert::ExternalAddress {
            ip: node.addr.ip(),
            source: super::ExternalAddressSource::Tracker
        }]
    );
    assert!(net.tracker.announces.len() >= 4, "announced again");
}

#[test]
fn a_warning_message_is_alerted() {
    let content = content(TorrentVersion::V1);
    let mut net = Net::new();
    net.tracker.script.push_back(Ok((
        200,
        b"d8:intervali1800e15:warning message6:beware5:peers0:e".to_vec(),
    )));
    let ((seed_node, seed), _) = swarm(&mut net, &content);
    net.run_for(Duration::from_secs(1));
    let node = &net.nodes[seed_node];
    assert!(
        node.saw(|a| matches!(a,
        Alert::TrackerWarning { torrent, message, .. } if *torrent == seed && message == "beware"))
    );
    let entries = node.session.trackers(seed).unwrap();
    assert_eq!(entries[0].warning.as_deref(), Some("beware"));
}

#[test]
fn the_interval_paces_announces_and_pause_and_resume_stop_and_start() {
    let content = content(TorrentVersion::V1);
    let mut net = Net::new();
    net.tracker.interval = 600;
    let ((seed_node, seed), _) = swarm(&mut net, &content);
    net.run_for(Duration::from_secs(599));
    assert_eq!(events_of(&net, seed_node).len(), 1);
    net.run_for(Duration::from_secs(2));
    assert_eq!(events_of(&net, seed_node), [Some("started".into()), None]);

    let now = net.now;
    net.nodes[seed_node].session.pause(now, seed).unwrap();
    net.drain(seed_node);
    net.run_for(Duration::from_secs(1));
    assert_eq!(
        events_of(&net, seed_node).last(),
        Some(&Some("stopped".into()))
    );
    let now = net.now;
    net.nodes[seed_node].session.resume(now, seed).unwrap();
    net.drain(seed_node);
    net.run_for(Duration::from_secs(1));
    assert_eq!(
        events_of(&net, seed_node).last(),
        Some(&Some("started".into()))
    );

    // A forced announce waits for the tracker's minimum interval (5 min by default).
    let now = net.now;
    net.nodes[seed_node]
        .session
        .force_reannounce(now, seed)
        .unwrap();
    net.drain(seed_node);
    net.run_for(Duration::from_secs(301));
    assert_eq!(events_of(&net, seed_node).last(), Some(&None));
}

// ----- by hand: UDP trackers, name resolution, removed torrents -----

fn seed_session(trackers: &[&str]) -> (Session, TorrentId, Content) {
    let content = content(TorrentVersion::V1);
    let mut session = Session::new(Instant::ZERO, Net::config(0));
    let mut params = content.params();
    params.seed_mode = true;
    params.trackers = trackers.iter().map(|t| vec![(*t).to_owned()]).collect();
    let torrent = session.add_torrent(Instant::ZERO, params).unwrap();
    (session, torrent, content)
}

fn actions(session: &mut Session) -> Vec<Action> {
    std::iter::from_fn(|| session.poll_action()).collect()
}

fn alerts(session: &mut Session) -> Vec<Alert> {
    std::iter::from_fn(|| session.poll_alert()).collect()
}

/// Answers the connect and the announce a UDP tracker at `tracker` is sent; returns the
/// announce.
fn answer_udp_announce(
    session: &mut Session,
    now: Instant,
    tracker: SocketAddr,
    peers: Vec<SocketAddr>,
) -> crate::tracker::AnnounceRequest {
    let datagram = session.poll_datagram().expect("a connect");
    assert_eq!(datagram.to, tracker);
    let UdpRequest::Connect { transaction_id } = UdpRequest::parse(&datagram.data).unwrap() else {
        panic!("not a connect");
    };
    let connect = UdpResponse::Connect {
        transaction_id,
        connection_id: 77,
    };
    session.handle_datagram(now, tracker, &connect.encode(AddressFamily::V4));
    let datagram = session.poll_datagram().expect("an announce");
    let UdpRequest::Announce {
        connection_id: 77,
        transaction_id,
        request,
    } = UdpRequest::parse(&datagram.data).unwrap()
    else {
        panic!("not an announce");
    };
    let answer = UdpResponse::Announce {
        transaction_id,
        interval: 900,
        leechers: 1,
        seeders: 1,
        peers,
    };
    session.handle_datagram(now, tracker, &answer.encode(AddressFamily::V4));
    request
}

#[test]
fn a_udp_tracker_by_address_announces_and_its_peers_are_dialled() {
    let (mut session, torrent, _) = seed_session(&["udp://127.0.0.1:6969/announce"]);
    let tracker: SocketAddr = "127.0.0.1:6969".parse().unwrap();
    let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 5)), 7000);
    let now = Instant::from_secs(1);
    let request = answer_udp_announce(&mut session, now, tracker, vec![peer]);
    assert_eq!(request.event, AnnounceEvent::Started);
    assert_eq!(request.left, 0);
    assert!(actions(&mut session)
        .iter()
        .any(|a| matches!(a, Action::Connect { addr, .. } if *addr == peer)));
    assert!(alerts(&mut session).iter().any(|a| matches!(a,
        Alert::TrackerReply { num_peers: 1, torrent: t, .. } if *t == torrent)));
    let entries = session.trackers(torrent).unwrap();
    assert_eq!(
        (entries[0].seeders, entries[0].leechers),
        (Some(1), Some(1))
    );
    // The next announce is due after the tracker's interval.
    assert_eq!(
        session.poll_timeout().map(|t| t >= Instant::from_secs(900)),
        Some(true)
    );
}

#[test]
fn datagrams_from_elsewhere_are_told_apart() {
    let (mut session, _, _) = seed_session(&["udp://127.0.0.1:6969"]);
    let _connect = session.poll_datagram().expect("a connect");
    let stranger: SocketAddr = "127.0.0.1:9999".parse().unwrap();
    let tracker: SocketAddr = "127.0.0.1:6969".parse().unwrap();
    let transport = &session.shared.trackers;
    assert_eq!(
        transport.classify(stranger, b"d1:ad2:id20:"),
        DatagramKind::Dht
    );
    assert_eq!(
        transport.classify(stranger, b"\x00\x01"),
        DatagramKind::Unknown
    );
    assert_eq!(transport.classify(tracker, b"d"), DatagramKind::Tracker);
    // Neither a DHT message nor garbage disturbs anything.
    session.handle_datagram(Instant::ZERO, stranger, b"d1:ad2:id20:");
    session.handle_datagram(Instant::ZERO, stranger, &[0xff; 3]);
    session.handle_datagram(Instant::ZERO, tracker, &[0xff; 3]);
    assert!(session.poll_datagram().is_none());
    assert!(session.has_tracker_requests());
}

#[test]
fn a_udp_tracker_by_name_is_resolved_once() {
    let (mut session, _, _) = seed_session(&["udp://tracker.test:6969"]);
    let resolve = actions(&mut session)
        .into_iter()
        .find_map(|a| match a {
            Action::Resolve { id, host, port } => Some((id, host, port)),
            _ => None,
        })
        .expect("a resolve");
    assert_eq!((resolve.1.as_str(), resolve.2), ("tracker.test", 6969));
    assert!(session.poll_datagram().is_none());
    let addrs = vec![
        "[::1]:6969".parse().unwrap(),
        "127.0.0.9:6969".parse().unwrap(),
    ];
    session.handle_resolved(Instant::ZERO, resolve.0, Ok(addrs));
    let tracker: SocketAddr = "127.0.0.9:6969".parse().unwrap();
    answer_udp_announce(&mut session, Instant::ZERO, tracker, vec![]);
    assert!(!session.has_tracker_requests());
}

#[test]
fn a_name_that_does_not_resolve_is_a_tracker_error() {
    let (mut session, torrent, _) = seed_session(&["udp://nowhere.test:6969"]);
    let id = actions(&mut session)
        .into_iter()
        .find_map(|a| match a {
            Action::Resolve { id, .. } => Some(id),
            _ => None,
        })
        .expect("a resolve");
    session.handle_resolved(Instant::ZERO, id, Err("no such host".into()));
    assert!(alerts(&mut session).iter().any(|a| matches!(a,
        Alert::TrackerError { torrent: t, error, failures: 1, .. }
            if *t == torrent && error.contains("no such host"))));
}

#[test]
fn a_removed_torrent_waits_a_bounded_time_for_its_stopped_announce() {
    let (mut session, torrent, _) = seed_session(&[TRACKER]);
    let Some(Action::HttpRequest { id, url }) = actions(&mut session)
        .into_iter()
        .find(|a| matches!(a, Action::HttpRequest { .. }))
    else {
        panic!("no announce");
    };
    assert!(url.contains("event=started"));
    let ok = b"d8:intervali1800e5:peers0:e";
    let response = Ok(HttpResponse {
        status: 200,
        body: ok,
    });
    session.handle_http_response(Instant::from_secs(1), id, response);
    session
        .remove_torrent(Instant::from_secs(2), torrent)
        .unwrap();
    let stopped: Vec<String> = actions(&mut session)
        .into_iter()
        .filter_map(|a| match a {
            Action::HttpRequest { url, .. } => Some(url),
            _ => None,
        })
        .collect();
    assert_eq!(stopped.len(), 1);
    assert!(stopped[0].contains("event=stopped"));
    assert!(session.has_tracker_requests());
    // No answer: forgotten once the stop timeout (5 s) runs out.
    let deadline = session.poll_timeout().expect("a deadline");
    assert_eq!(deadline, Instant::from_secs(7));
    session.handle_timeout(deadline);
    assert!(!session.has_tracker_requests());
    assert_eq!(session.poll_timeout(), None);
}

#[test]
fn an_ipv4_mapped_sender_is_its_ipv4_address() {
    let (mut session, _, _) = seed_session(&["udp://127.0.0.1:6969"]);
    let datagram = session.poll_datagram().expect("a connect");
    let UdpRequest::Connect { transaction_id } = UdpRequest::parse(&datagram.data).unwrap() else {
        panic!("not a connect");
    };
    let connect = UdpResponse::Connect {
        transaction_id,
        connection_id: 5,
    };
    let mapped: SocketAddr = "[::ffff:127.0.0.1]:6969".parse().unwrap();
    session.handle_datagram(Instant::ZERO, mapped, &connect.encode(AddressFamily::V4));
    let announce = session
        .poll_datagram()
        .expect("the announce follows the connect");
    assert!(matches!(
        UdpRequest::parse(&announce.data),
        Ok(UdpRequest::Announce {
            connection_id: 5,
            ..
        })
    ));
}
