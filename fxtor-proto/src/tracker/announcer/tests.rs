use super::*;
use crate::tracker::udp::UdpTrackerError;
use crate::InfoHashV2;

const V1: InfoHashV1 = InfoHashV1([0x11; 20]);

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn announcer(info_hashes: InfoHashes, seed: u64) -> Announcer {
    Announcer::new(
        AnnouncerConfig::default(),
        info_hashes,
        PeerId([b'p'; 20]),
        6881,
        seed,
    )
}

fn v1_announcer(tiers: &[&[&str]]) -> Announcer {
    let mut a = announcer(InfoHashes::v1(V1), 7);
    for tier in tiers {
        assert!(a.add_tier(tier).iter().all(Result::is_ok));
    }
    a
}

fn next_announce(a: &mut Announcer) -> AnnounceAction {
    match a.poll_action() {
        Some(TrackerAction::Announce(action)) => action,
        other => panic!("expected an announce, got {other:?}"),
    }
}

fn url_of(a: &Announcer, action: &AnnounceAction) -> String {
    a.tracker_url(action.tracker).unwrap().to_owned()
}

fn ok_body(interval: u64) -> Vec<u8> {
    let mut body = format!("d8:intervali{interval}e5:peers6:").into_bytes();
    body.extend_from_slice(&[10, 0, 0, 1, 0x1a, 0xe1, b'e']);
    body
}

fn succeed(a: &mut Announcer, now: Instant, action: &AnnounceAction, interval: u64) {
    let body = ok_body(interval);
    a.handle_http_response(
        now,
        action.id,
        Ok(HttpResponse {
            status: 200,
            body: &body,
        }),
    );
}

fn fail(a: &mut Announcer, now: Instant, action: &AnnounceAction) {
    a.handle_http_response(now, action.id, Err("connection refused".into()));
}

fn drain_events(a: &mut Announcer) -> Vec<TrackerEvent> {
    std::iter::from_fn(|| a.poll_event()).collect()
}

#[test]
fn tier_shuffle_follows_the_seed() {
    let urls: Vec<String> = (0..8)
        .map(|i| format!("http://t{i}.example/announce"))
        .collect();
    let order = |seed| {
        let mut a = announcer(InfoHashes::v1(V1), seed);
        a.add_tier(&urls);
        a.add_tier(&["udp://backup.example:80"]);
        a.tiers().to_vec()
    };
    assert_eq!(order(1), order(1));
    assert_ne!(order(1), order(2));
    let tiers = order(1);
    assert_eq!(tiers.len(), 2);
    let mut first: Vec<u32> = tiers[0].iter().map(|id| id.0).collect();
    assert_ne!(first, (0..8).collect::<Vec<_>>(), "shuffled");
    first.sort_unstable();
    assert_eq!(first, (0..8).collect::<Vec<_>>());
    assert_eq!(tiers[1], [TrackerId(8)]);
}

#[test]
fn urls_are_checked_and_deduplicated() {
    let mut a = announcer(InfoHashes::v1(V1), 1);
    let results = a.add_tier(&[
        "http://a.example/announce",
        "ftp://b.example/",
        " http://a.example/announce ",
        "udp://c.example",
    ]);
    assert_eq!(results[0], Ok(TrackerId(0)));
    assert!(matches!(
        results[1],
        Err(TrackerUrlError::UnsupportedScheme(_))
    ));
    assert_eq!(results[2], Ok(TrackerId(0)));
    assert_eq!(results[3], Err(TrackerUrlError::NoPort));
    assert_eq!(a.tiers(), [vec![TrackerId(0)]]);
    assert_eq!(
        a.add_tracker("http://a.example/announce", 5),
        Ok(TrackerId(0))
    );
    assert_eq!(a.add_tracker("udp://d.example:1", 0), Ok(TrackerId(1)));
    assert_eq!(a.add_tracker("udp://e.example:1", 9), Ok(TrackerId(2)));
    assert_eq!(
        a.tiers(),
        [vec![TrackerId(0), TrackerId(1)], vec![TrackerId(2)]]
    );
    assert_eq!(a.add_tier::<&str>(&[]), []);
    assert_eq!(a.tiers().len(), 2);
}

#[test]
fn event_sequence_started_regular_completed_stopped() {
    let mut a = v1_announcer(&[&["http://t.example/announce?pk=1"]]);
    assert_eq!(a.poll_timeout(), None, "nothing before start");
    a.set_stats(TransferStats {
        uploaded: 1,
        downloaded: 2,
        left: 3,
    });
    a.start(secs(0));
    let started = next_announce(&mut a);
    assert_eq!(started.request.event, AnnounceEvent::Started);
    assert_eq!(
        (
            started.request.uploaded,
            started.request.downloaded,
            started.request.left
        ),
        (1, 2, 3)
    );
    assert_eq!(started.request.num_want, Some(200));
    assert_eq!(started.request.key, a.key());
    let RequestTarget::Http { url } = &started.target else {
        panic!()
    };
    assert!(url.starts_with("http://t.example/announce?pk=1&info_hash=%11%11"));
    assert!(url.contains("&event=started&"));
    assert_eq!(a.poll_action(), None);
    assert_eq!(a.poll_timeout(), None, "in flight");

    succeed(&mut a, secs(1), &started, 1800);
    let events = drain_events(&mut a);
    assert!(matches!(
        &events[..],
        [TrackerEvent::Announced { event: AnnounceEvent::Started, info_hash, response, .. }]
            if *info_hash == V1 && response.peers.len() == 1
    ));
    assert_eq!(a.poll_timeout(), Some(secs(1801)));
    a.handle_timeout(secs(1800));
    assert_eq!(a.poll_action(), None);

    a.handle_timeout(secs(1801));
    let regular = next_announce(&mut a);
    assert_eq!(regular.request.event, AnnounceEvent::None);
    let RequestTarget::Http { url } = &regular.target else {
        panic!()
    };
    assert!(!url.contains("event="));
    succeed(&mut a, secs(1802), &regular, 1800);

    // Completed goes out at once, and only once.
    a.completed(secs(2000));
    let completed = next_announce(&mut a);
    assert_eq!(completed.request.event, AnnounceEvent::Completed);
    succeed(&mut a, secs(2001), &completed, 1800);
    a.completed(secs(2002));
    assert_eq!(a.poll_action(), None);
    assert_eq!(a.poll_timeout(), Some(secs(3801)));
    a.handle_timeout(secs(3801));
    assert_eq!(next_announce(&mut a).request.event, AnnounceEvent::None);

    let events: Vec<AnnounceEvent> = drain_events(&mut a)
        .into_iter()
        .map(|e| match e {
            TrackerEvent::Announced { event, .. } => event,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(events, [AnnounceEvent::None, AnnounceEvent::Completed]);

    // Stopped: to the tracker that had our `started`; the announce in flight is forgotten.
    assert_eq!(a.stop(secs(3802)).len(), 1);
    assert_eq!(a.stop(secs(3802)), [], "already stopped");
    let stopped = next_announce(&mut a);
    assert_eq!(stopped.request.event, AnnounceEvent::Stopped);
    assert_eq!(stopped.request.num_want, Some(0));
    assert_eq!(a.poll_action(), None);
    assert_eq!(a.poll_timeout(), None);
    succeed(&mut a, secs(3803), &stopped, 1800);
    assert!(matches!(
        &drain_events(&mut a)[..],
        [TrackerEvent::Announced {
            event: AnnounceEvent::Stopped,
            ..
        }]
    ));
    a.handle_timeout(secs(10_000));
    assert_eq!(a.poll_action(), None);

    // A new start sends `started` again.
    a.start(secs(10_001));
    assert_eq!(next_announce(&mut a).request.event, AnnounceEvent::Started);
}

#[test]
fn completed_waits_for_the_announce_in_flight() {
    let mut a = v1_announcer(&[&["http://t.example/announce"]]);
    a.start(secs(0));
    let started = next_announce(&mut a);
    a.completed(secs(1));
    assert_eq!(a.poll_action(), None);
    succeed(&mut a, secs(2), &started, 1800);
    assert_eq!(
        next_announce(&mut a).request.event,
        AnnounceEvent::Completed
    );
}

#[test]
fn completed_while_stopped_is_never_sent() {
    let mut a = v1_announcer(&[&["http://t.example/announce"]]);
    a.completed(secs(0));
    a.start(secs(1));
    let started = next_announce(&mut a);
    succeed(&mut a, secs(2), &started, 1800);
    assert_eq!(a.poll_action(), None);
    a.completed(secs(3));
    assert_eq!(a.poll_action(), None);
}

#[test]
fn stop_before_any_answer_tells_the_tracker_in_flight() {
    let mut a = v1_announcer(&[
        &["http://t.example/announce"],
        &["http://u.example/announce"],
    ]);
    a.start(secs(0));
    let started = next_announce(&mut a);
    assert_eq!(a.stop(secs(1)), [started.id]);
    let stopped = next_announce(&mut a);
    assert_eq!(stopped.tracker, started.tracker);
    assert_eq!(stopped.request.event, AnnounceEvent::Stopped);
    assert_eq!(a.poll_action(), None);
    // The late answer to `started` is ignored.
    succeed(&mut a, secs(2), &started, 1800);
    assert!(drain_events(&mut a).is_empty());
    // A failed `stopped` is reported, not retried.
    fail(&mut a, secs(3), &stopped);
    assert!(matches!(
        &drain_events(&mut a)[..],
        [TrackerEvent::AnnounceFailed {
            event: AnnounceEvent::Stopped,
            failures: 0,
            retry_at: None,
            ..
        }]
    ));
    assert_eq!(a.poll_timeout(), None);
    // A stop with nothing started sends nothing.
    let mut b = v1_announcer(&[&["http://t.example/announce"]]);
    b.start(secs(0));
    let started = next_announce(&mut b);
    fail(&mut b, secs(1), &started);
    b.stop(secs(2));
    assert_eq!(b.poll_action(), None);
}

#[test]
fn interval_respects_min_interval_and_the_floor() {
    let mut a = v1_announcer(&[&["http://t.example/announce"]]);
    a.start(secs(0));
    let started = next_announce(&mut a);
    // An interval below the configured floor (5 min) is raised to it.
    succeed(&mut a, secs(0), &started, 10);
    assert_eq!(a.poll_timeout(), Some(secs(300)));
    a.handle_timeout(secs(300));
    let regular = next_announce(&mut a);
    // `min interval` above `interval` wins; no interval at all means 30 min.
    let body = b"d8:intervali400e12:min intervali900ee";
    a.handle_http_response(
        secs(300),
        regular.id,
        Ok(HttpResponse { status: 200, body }),
    );
    assert_eq!(a.poll_timeout(), Some(secs(1200)));
    // A forced re-announce waits for `min interval`.
    a.force_reannounce(secs(500));
    assert_eq!(a.poll_action(), None);
    assert_eq!(a.poll_timeout(), Some(secs(1200)));
    a.handle_timeout(secs(1200));
    let forced = next_announce(&mut a);
    a.handle_http_response(
        secs(1200),
        forced.id,
        Ok(HttpResponse {
            status: 200,
            body: b"de",
        }),
    );
    assert_eq!(a.poll_timeout(), Some(secs(1200 + 1800)));
    a.force_reannounce(secs(1300));
    assert!(a.poll_action().is_some(), "no min interval: at once");
}

#[test]
fn tracker_id_is_sent_back() {
    let mut a = v1_announcer(&[&["http://t.example/announce"]]);
    a.start(secs(0));
    let started = next_announce(&mut a);
    let body = b"d8:intervali1800e10:tracker id4:ab/ce";
    a.handle_http_response(secs(0), started.id, Ok(HttpResponse { status: 200, body }));
    assert_eq!(
        a.tracker_status(started.tracker, V1)
            .and_then(|s| s.tracker_id.clone()),
        Some(b"ab/c".to_vec())
    );
    a.handle_timeout(secs(1800));
    let regular = next_announce(&mut a);
    assert_eq!(regular.request.tracker_id.as_deref(), Some(&b"ab/c"[..]));
    let RequestTarget::Http { url } = &regular.target else {
        panic!()
    };
    assert!(url.ends_with("&trackerid=ab%2Fc"));
}

#[test]
fn failover_within_a_tier_and_promotion() {
    let urls = [
        "http://a.example/announce",
        "http://b.example/announce",
        "http://c.example/announce",
    ];
    let mut a = v1_announcer(&[&urls]);
    let order = a.tiers()[0].clone();
    a.start(secs(0));
    let first = next_announce(&mut a);
    assert_eq!(first.tracker, order[0]);
    fail(&mut a, secs(1), &first);
    // The next in the tier at once, also with `started`.
    let second = next_announce(&mut a);
    assert_eq!(second.tracker, order[1]);
    assert_eq!(second.request.event, AnnounceEvent::Started);
    succeed(&mut a, secs(2), &second, 1800);
    assert_eq!(a.tiers()[0], [order[1], order[0], order[2]]);
    let events = drain_events(&mut a);
    assert!(matches!(
        &events[0],
        TrackerEvent::AnnounceFailed { tracker, failures: 1, retry_at: Some(at), error: TrackerError::Transport(_), .. }
            if *tracker == order[0] && *at == secs(61)
    ));
    assert!(matches!(&events[1], TrackerEvent::Announced { tracker, .. } if *tracker == order[1]));
    // The next announce starts from the front of the tier: the tracker that answered.
    a.handle_timeout(secs(1802));
    assert_eq!(next_announce(&mut a).tracker, order[1]);
}

#[test]
fn every_tracker_of_a_tier_before_the_next_tier() {
    let mut a = v1_announcer(&[
        &["http://a.example/announce", "http://b.example/announce"],
        &["udp://backup.example:6969/announce"],
    ]);
    a.start(secs(0));
    let one = next_announce(&mut a);
    fail(&mut a, secs(0), &one);
    let two = next_announce(&mut a);
    assert_ne!(one.tracker, two.tracker);
    assert!(url_of(&a, &two).starts_with("http://"));
    fail(&mut a, secs(0), &two);
    let backup = next_announce(&mut a);
    assert_eq!(backup.tracker, TrackerId(2));
    assert_eq!(
        backup.target,
        RequestTarget::Udp {
            host: "backup.example".into(),
            port: 6969
        }
    );
    // A UDP answer comes back through its outcome.
    let response = AnnounceResponse {
        interval: Some(Duration::from_secs(900)),
        ..AnnounceResponse::default()
    };
    a.handle_udp_outcome(secs(1), backup.id, UdpOutcome::Announced(response.clone()));
    let events = drain_events(&mut a);
    assert_eq!(
        events.last(),
        Some(&TrackerEvent::Announced {
            tracker: TrackerId(2),
            info_hash: V1,
            event: AnnounceEvent::Started,
            response
        })
    );
    // The failed first tier is retried on the next announce, its back-off (60 s) being over.
    a.handle_timeout(secs(901));
    let next = next_announce(&mut a);
    assert_eq!(next.tracker, one.tracker);
    assert_eq!(next.request.event, AnnounceEvent::Started);
}

#[test]
fn back_off_doubles_up_to_an_hour() {
    let mut a = v1_announcer(&[&["udp://t.example:1"]]);
    a.start(secs(0));
    let mut now = 0;
    let mut waits = Vec::new();
    for _ in 0..9 {
        let action = next_announce(&mut a);
        a.handle_udp_outcome(
            secs(now),
            action.id,
            UdpOutcome::Failed(UdpTrackerError::TimedOut { attempts: 9 }),
        );
        assert_eq!(a.poll_action(), None, "no other tracker");
        let next = a.poll_timeout().unwrap();
        waits.push((next - secs(now)).as_secs());
        a.handle_timeout(next - Duration::from_secs(1));
        assert_eq!(a.poll_action(), None, "not before the back-off ends");
        now = next.since_epoch().as_secs();
        a.handle_timeout(secs(now));
    }
    assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
    let status = a.tracker_status(TrackerId(0), V1).unwrap();
    assert_eq!(status.failures, 9);
    // A success resets it.
    let action = next_announce(&mut a);
    a.handle_udp_outcome(
        secs(now),
        action.id,
        UdpOutcome::Announced(AnnounceResponse::default()),
    );
    let status = a.tracker_status(TrackerId(0), V1).unwrap();
    assert_eq!((status.failures, status.retry_at), (0, None));
    assert!(status.started);
}

#[test]
fn http_status_and_failure_reason() {
    let mut a = v1_announcer(&[&["http://t.example/announce"]]);
    a.start(secs(0));
    let action = next_announce(&mut a);
    a.handle_http_response(
        secs(0),
        action.id,
        Ok(HttpResponse {
            status: 502,
            body: b"<html>",
        }),
    );
    let action = {
        a.handle_timeout(secs(60));
        next_announce(&mut a)
    };
    let body = b"d14:failure reason12:unregisterede";
    a.handle_http_response(secs(60), action.id, Ok(HttpResponse { status: 400, body }));
    a.handle_timeout(secs(180));
    let action = next_announce(&mut a);
    a.handle_http_response(secs(180), action.id, Ok(HttpResponse { status: 200, body }));
    let errors: Vec<TrackerError> = drain_events(&mut a)
        .into_iter()
        .filter_map(|e| match e {
            TrackerEvent::AnnounceFailed { error, .. } => Some(error),
            _ => None,
        })
        .collect();
    assert_eq!(
        errors,
        [
            TrackerError::HttpStatus(502),
            TrackerError::Response(ResponseError::Failure("unregistered".into())),
            TrackerError::Response(ResponseError::Failure("unregistered".into())),
        ]
    );
    assert_eq!(errors[0].tracker_message(), None);
    assert_eq!(errors[1].tracker_message(), Some("unregistered"));
    assert_eq!(errors[1].to_string(), "tracker failure: unregistered");
}

#[test]
fn hybrid_torrents_announce_both_hashes() {
    let v2 = InfoHashV2([0x22; 32]);
    let mut a = announcer(InfoHashes::hybrid(V1, v2), 3);
    a.add_tier(&["http://t.example/announce"]);
    a.start(secs(0));
    let first = next_announce(&mut a);
    let second = next_announce(&mut a);
    assert_eq!(a.poll_action(), None);
    assert_eq!(first.tracker, second.tracker);
    assert_eq!(first.request.info_hash, V1);
    assert_eq!(second.request.info_hash, v2.truncated());
    let RequestTarget::Http { url } = &second.target else {
        panic!()
    };
    assert!(url.contains(&format!("info_hash={}&", "%22".repeat(20))));
    assert_eq!(first.request.key, second.request.key);

    // Each swarm keeps its own state: one fails, the other succeeds.
    fail(&mut a, secs(1), &first);
    succeed(&mut a, secs(1), &second, 1800);
    assert_eq!(a.tracker_status(first.tracker, V1).unwrap().failures, 1);
    assert_eq!(
        a.tracker_status(first.tracker, v2.truncated())
            .unwrap()
            .failures,
        0
    );
    assert_eq!(a.poll_timeout(), Some(secs(61)));
    a.handle_timeout(secs(61));
    let retry = next_announce(&mut a);
    assert_eq!(
        (retry.request.info_hash, retry.request.event),
        (V1, AnnounceEvent::Started)
    );
    assert_eq!(a.poll_action(), None);

    // Both are stopped.
    succeed(&mut a, secs(62), &retry, 1800);
    a.stop(secs(63));
    let stops: Vec<InfoHashV1> = std::iter::from_fn(|| a.poll_action())
        .map(|action| match action {
            TrackerAction::Announce(a) => {
                assert_eq!(a.request.event, AnnounceEvent::Stopped);
                a.request.info_hash
            }
            TrackerAction::Scrape(_) => panic!(),
        })
        .collect();
    assert_eq!(stops, [V1, v2.truncated()]);

    // A v2-only torrent announces its truncated hash once.
    let mut only_v2 = announcer(InfoHashes::v2(v2), 3);
    only_v2.add_tier(&["http://t.example/announce"]);
    only_v2.start(secs(0));
    assert_eq!(
        next_announce(&mut only_v2).request.info_hash,
        v2.truncated()
    );
    assert_eq!(only_v2.poll_action(), None);
}

#[test]
fn all_trackers_backing_off_waits_for_the_first() {
    let mut a = v1_announcer(&[
        &["http://a.example/announce"],
        &["http://b.example/announce"],
    ]);
    a.start(secs(0));
    let one = next_announce(&mut a);
    fail(&mut a, secs(0), &one);
    let two = next_announce(&mut a);
    fail(&mut a, secs(10), &two);
    assert_eq!(a.poll_action(), None);
    assert_eq!(a.poll_timeout(), Some(secs(60)));
    a.handle_timeout(secs(60));
    assert_eq!(next_announce(&mut a).tracker, one.tracker);
}

#[test]
fn scrapes_over_http_and_udp() {
    let v2 = InfoHashV2([0x22; 32]);
    let mut a = announcer(InfoHashes::hybrid(V1, v2), 3);
    a.add_tier(&["http://t.example/x/announce.php?pk=1"]);
    let id = a.scrape(secs(0)).unwrap();
    let Some(TrackerAction::Scrape(action)) = a.poll_action() else {
        panic!()
    };
    assert_eq!(action.id, id);
    assert_eq!(action.info_hashes, [V1, v2.truncated()]);
    assert_eq!(
        action.target,
        RequestTarget::Http {
            url: format!(
                "http://t.example/x/scrape.php?pk=1&info_hash={}&info_hash={}",
                "%11".repeat(20),
                "%22".repeat(20)
            )
        }
    );
    let mut body = b"d5:filesd20:".to_vec();
    body.extend_from_slice(&[0x11; 20]);
    body.extend_from_slice(b"d8:completei3e10:downloadedi4e10:incompletei5eeee");
    a.handle_http_response(
        secs(1),
        id,
        Ok(HttpResponse {
            status: 200,
            body: &body,
        }),
    );
    assert_eq!(
        a.poll_event(),
        Some(TrackerEvent::Scraped {
            tracker: TrackerId(0),
            files: vec![(
                V1,
                ScrapeStats {
                    complete: 3,
                    downloaded: 4,
                    incomplete: 5
                }
            )]
        })
    );

    // A tracker whose URL cannot become a scrape URL is skipped; UDP trackers always can.
    let mut b = announcer(InfoHashes::v1(V1), 3);
    b.add_tier(&["http://t.example/a"]);
    assert_eq!(b.scrape(secs(0)), None);
    b.add_tier(&["udp://u.example:1"]);
    let id = b.scrape(secs(0)).unwrap();
    let Some(TrackerAction::Scrape(action)) = b.poll_action() else {
        panic!()
    };
    assert_eq!(action.tracker, TrackerId(1));
    let stats = ScrapeStats {
        complete: 1,
        downloaded: 2,
        incomplete: 3,
    };
    b.handle_udp_outcome(secs(1), id, UdpOutcome::Scraped(vec![stats]));
    assert_eq!(
        b.poll_event(),
        Some(TrackerEvent::Scraped {
            tracker: TrackerId(1),
            files: vec![(V1, stats)]
        })
    );
    let id = b.scrape(secs(2)).unwrap();
    b.handle_udp_error(secs(2), id, "no such host".into());
    assert_eq!(
        b.poll_event(),
        Some(TrackerEvent::ScrapeFailed {
            tracker: TrackerId(1),
            error: TrackerError::Transport("no such host".into())
        })
    );
    // Unknown request ids are ignored.
    b.handle_udp_error(secs(3), RequestId(999), "x".into());
    b.handle_http_response(secs(3), RequestId(999), Err("x".into()));
    assert_eq!(b.poll_event(), None);
}

#[test]
fn retry_delays() {
    let config = AnnouncerConfig::default();
    assert_eq!(config.retry_delay(1), Duration::from_secs(60));
    assert_eq!(config.retry_delay(2), Duration::from_secs(120));
    assert_eq!(config.retry_delay(7), Duration::from_secs(3600));
    assert_eq!(config.retry_delay(u32::MAX), Duration::from_secs(3600));
}

mod random_runs {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[derive(Clone, Debug)]
    enum Op {
        Start,
        Stop,
        Completed,
        Force,
        Wait(u16),
        Answer { pick: usize, ok: bool },
        Scrape,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            1 => Just(Op::Start),
            1 => Just(Op::Stop),
            1 => Just(Op::Completed),
            1 => Just(Op::Force),
            3 => (0u16..4000).prop_map(Op::Wait),
            6 => (any::<usize>(), any::<bool>()).prop_map(|(pick, ok)| Op::Answer { pick, ok }),
            1 => Just(Op::Scrape),
        ]
    }

    proptest! {
        #[test]
        fn announcer_keeps_its_rules(ops in proptest::collection::vec(op(), 1..80), seed in any::<u64>()) {
            let v2 = InfoHashV2([0x22; 32]);
            let mut a = announcer(InfoHashes::hybrid(V1, v2), seed);
            a.add_tier(&["http://a.example/announce", "udp://b.example:1"]);
            a.add_tier(&["http://c.example/announce"]);
            let mut now = secs(0);
            let mut running = false;
            // Announces handed out and not answered: (id, info-hash, event).
            let mut outstanding: Vec<(RequestId, InfoHashV1, TrackerId, AnnounceEvent)> = Vec::new();
            let mut scrapes: Vec<RequestId> = Vec::new();
            // Trackers that answered a `started` since the last start, per swarm.
            let mut started: BTreeSet<(InfoHashV1, TrackerId)> = BTreeSet::new();
            // Swarms whose `completed` a tracker took.
            let mut completed_done: BTreeSet<InfoHashV1> = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Start => {
                        running = true;
                        a.start(now);
                    }
                    Op::Stop => {
                        if running {
                            outstanding.retain(|o| o.3 == AnnounceEvent::Stopped);
                            started.clear();
                        }
                        running = false;
                        a.stop(now);
                    }
                    Op::Completed => a.completed(now),
                    Op::Force => a.force_reannounce(now),
                    Op::Wait(s) => {
                        now += Duration::from_secs(u64::from(s));
                        a.handle_timeout(now);
                    }
                    Op::Answer { pick, ok } => {
                        if !outstanding.is_empty() {
                            let (id, hash, tracker, event) = outstanding.remove(pick % outstanding.len());
                            if ok {
                                a.handle_udp_outcome(now, id, UdpOutcome::Announced(AnnounceResponse::default()));
                                if event != AnnounceEvent::Stopped {
                                    started.insert((hash, tracker));
                                }
                                if event == AnnounceEvent::Completed {
                                    prop_assert!(completed_done.insert(hash), "completed twice");
                                }
                            } else {
                                a.handle_http_response(now, id, Err("refused".into()));
                            }
                        } else if let Some(id) = scrapes.pop() {
                            a.handle_udp_outcome(now, id, UdpOutcome::Scraped(vec![]));
                        }
                    }
                    Op::Scrape => {
                        if let Some(id) = a.scrape(now) {
                            scrapes.push(id);
                        }
                    }
                }
                while let Some(action) = a.poll_action() {
                    let TrackerAction::Announce(action) = action else { continue };
                    let hash = action.request.info_hash;
                    match action.request.event {
                        AnnounceEvent::Stopped => prop_assert!(!running),
                        AnnounceEvent::Started => prop_assert!(running),
                        AnnounceEvent::None => {
                            prop_assert!(running);
                            prop_assert!(started.contains(&(hash, action.tracker)), "regular before started");
                        }
                        AnnounceEvent::Completed => {
                            prop_assert!(running);
                            prop_assert!(started.contains(&(hash, action.tracker)), "completed before started");
                            prop_assert!(!completed_done.contains(&hash), "completed again");
                        }
                    }
                    outstanding.push((action.id, hash, action.tracker, action.request.event));
                }
                for hash in [V1, v2.truncated()] {
                    let in_flight = outstanding
                        .iter()
                        .filter(|o| o.1 == hash && o.3 != AnnounceEvent::Stopped)
                        .count();
                    prop_assert!(in_flight <= 1, "one announce at a time per swarm");
                }
                if let Some(t) = a.poll_timeout() {
                    prop_assert!(running);
                    let _ = t;
                }
                while a.poll_event().is_some() {}
            }
        }
    }
}
