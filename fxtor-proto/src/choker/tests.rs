use core::time::Duration;
use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const LONG_AGO: Instant = Instant::ZERO;

/// An interested peer that sends us `download_rate` and gets `upload_rate` from us.
fn peer(key: u32, download_rate: u64, upload_rate: u64) -> ChokeCandidate {
    ChokeCandidate {
        interested: true,
        download_rate,
        upload_rate,
        ..ChokeCandidate::new(PeerKey(key), LONG_AGO)
    }
}

fn keys(keys: &[u32]) -> Vec<PeerKey> {
    keys.iter().copied().map(PeerKey).collect()
}

fn config(upload_slots: usize, optimistic_slots: usize) -> ChokerConfig {
    ChokerConfig {
        upload_slots,
        optimistic_slots,
        ..ChokerConfig::default()
    }
}

/// Applies a decision the way an owner would.
fn apply(peers: &mut [ChokeCandidate], decision: &ChokeDecision) {
    for peer in peers {
        if decision.unchoke.contains(&peer.key) {
            peer.is_choked = false;
        }
        if decision.choke.contains(&peer.key) {
            peer.is_choked = true;
        }
    }
}

fn unchoked(peers: &[ChokeCandidate]) -> Vec<PeerKey> {
    peers
        .iter()
        .filter(|p| !p.is_choked)
        .map(|p| p.key)
        .collect()
}

#[test]
fn reciprocates_the_best_downloaders() {
    let mut choker = Choker::new(config(3, 0), 1);
    let mut peers: Vec<_> = [5, 80, 20, 60, 0, 70]
        .into_iter()
        .enumerate()
        .map(|(key, rate)| peer(key as u32, rate * 1000, 0))
        .collect();
    let decision = choker.rechoke(Instant::ZERO, &peers);
    assert_eq!(decision.unchoke, keys(&[1, 3, 5]));
    assert!(decision.choke.is_empty());
    apply(&mut peers, &decision);

    // Peer 2 overtakes peer 3.
    peers[2].download_rate = 65_000;
    let decision = choker.rechoke(Instant::from_secs(10), &peers);
    assert_eq!(decision.unchoke, keys(&[2]));
    assert_eq!(decision.choke, keys(&[3]));
    apply(&mut peers, &decision);
    assert_eq!(unchoked(&peers), keys(&[1, 2, 5]));
}

#[test]
fn equal_rates_keep_the_peers_already_unchoked() {
    let mut choker = Choker::new(config(2, 0), 9);
    let mut peers: Vec<_> = (0..6).map(|key| peer(key, 0, 0)).collect();
    let first = choker.rechoke(Instant::ZERO, &peers);
    assert_eq!(first.unchoke.len(), 2);
    apply(&mut peers, &first);
    for round in 1..20 {
        let decision = choker.rechoke(Instant::from_secs(10 * round), &peers);
        assert!(decision.is_empty(), "round {round}: {decision:?}");
    }
}

#[test]
fn snubbed_peers_are_not_reciprocated() {
    let mut choker = Choker::new(config(2, 0), 1);
    let mut peers = vec![peer(0, 90_000, 0), peer(1, 50_000, 0), peer(2, 10_000, 0)];
    peers[0].is_snubbed = true;
    let decision = choker.rechoke(Instant::ZERO, &peers);
    assert_eq!(decision.unchoke, keys(&[1, 2]));
    apply(&mut peers, &decision);

    // A reciprocated peer that gets snubbed loses its slot, even with slots to spare.
    peers[1].is_snubbed = true;
    let decision = choker.rechoke(Instant::from_secs(10), &peers);
    assert!(decision.unchoke.is_empty());
    assert_eq!(decision.choke, keys(&[1]));
}

#[test]
fn snubbed_peers_can_still_be_unchoked_optimistically() {
    let mut choker = Choker::new(config(1, 1), 1);
    let mut peers = vec![peer(0, 90_000, 0), peer(1, 50_000, 0)];
    peers[0].is_snubbed = true;
    let decision = choker.rechoke(Instant::ZERO, &peers);
    assert_eq!(decision.unchoke, keys(&[0, 1]));
    assert_eq!(choker.optimistic_peers().collect::<Vec<_>>(), keys(&[0]));
}

#[test]
fn uninterested_peers_are_never_unchoked() {
    for seeding in [false, true] {
        let mut choker = Choker::new(
            ChokerConfig {
                seeding,
                ..config(3, 2)
            },
            5,
        );
        let mut peers: Vec<_> = (0..8).map(|key| peer(key, 1000, 1000)).collect();
        for p in peers.iter_mut().filter(|p| p.key.0 % 2 == 0) {
            p.interested = false;
            p.download_rate = 1_000_000;
            p.upload_rate = 1_000_000;
        }
        // An uninterested peer we unchoke gets choked.
        peers[0].is_choked = false;
        for round in 0..40 {
            let decision = choker.rechoke(Instant::from_secs(10 * round), &peers);
            if round == 0 {
                assert_eq!(decision.choke, keys(&[0]));
            }
            assert!(
                decision.unchoke.iter().all(|key| key.0 % 2 == 1),
                "seeding {seeding}, round {round}: {decision:?}"
            );
            apply(&mut peers, &decision);
            for p in &mut peers {
                if !p.is_choked {
                    p.uploaded += p.upload_rate * 10;
                }
            }
        }
    }
}

#[test]
fn reports_only_changes() {
    let mut choker = Choker::new(config(2, 0), 3);
    let mut peers = vec![peer(0, 30, 0), peer(1, 20, 0), peer(2, 10, 0)];
    peers[0].is_choked = false;
    peers[2].is_choked = false;
    let decision = choker.rechoke(Instant::ZERO, &peers);
    assert_eq!(decision.unchoke, keys(&[1]));
    assert_eq!(decision.choke, keys(&[2]));
    apply(&mut peers, &decision);
    assert!(choker.rechoke(Instant::from_secs(10), &peers).is_empty());

    // What the owner reports wins: an unchoke it did not apply is asked for again.
    peers[1].is_choked = true;
    let decision = choker.rechoke(Instant::from_secs(20), &peers);
    assert_eq!(decision.unchoke, keys(&[1]));
    assert!(decision.choke.is_empty());
}

#[test]
fn optimistic_slot_rotates_every_30_seconds() {
    let mut choker = Choker::new(config(2, 1), 11);
    let mut peers: Vec<_> = (0..8).map(|key| peer(key, 0, 0)).collect();
    peers[0].download_rate = 100_000;
    peers[1].download_rate = 90_000;
    assert_eq!(choker.next_rechoke(), Instant::ZERO);

    let decision = choker.rechoke(Instant::ZERO, &peers);
    apply(&mut peers, &decision);
    let first: Vec<_> = choker.optimistic_peers().collect();
    assert_eq!(first.len(), 1);
    assert!(first[0].0 >= 2);
    assert_eq!(unchoked(&peers).len(), 3);

    let mut now = Instant::ZERO;
    for _ in 0..2 {
        assert_eq!(choker.next_rechoke(), now + Duration::from_secs(10));
        now = choker.next_rechoke();
        assert!(choker.rechoke(now, &peers).is_empty());
        assert_eq!(choker.optimistic_peers().collect::<Vec<_>>(), first);
    }
    assert_eq!(choker.next_rechoke(), Instant::from_secs(30));

    let mut seen = first.clone();
    let mut previous = first;
    for rotation in 1..=6u64 {
        let now = Instant::from_secs(30 * rotation);
        let decision = choker.rechoke(now, &peers);
        let current: Vec<_> = choker.optimistic_peers().collect();
        assert_eq!(current.len(), 1);
        assert_ne!(current, previous, "a choked peer takes over");
        assert_eq!(decision.unchoke, current);
        assert_eq!(decision.choke, previous);
        apply(&mut peers, &decision);
        seen.extend(current.iter().copied());
        previous = current;
        // Two plain rechokes between rotations leave the slot alone.
        for step in [10, 20] {
            let between = now + Duration::from_secs(step);
            assert!(choker.rechoke(between, &peers).is_empty());
        }
    }
    seen.sort();
    seen.dedup();
    assert!(seen.len() >= 4, "rotations reached {seen:?}");
}

#[test]
fn an_expiring_optimistic_slot_brings_the_rechoke_forward() {
    let mut choker = Choker::new(config(1, 1), 2);
    let peers: Vec<_> = (0..4).map(|key| peer(key, 0, 0)).collect();
    choker.rechoke(Instant::ZERO, &peers);
    // An early rechoke at 25 s: the slot still runs out at 30 s, before 35 s.
    choker.rechoke(Instant::from_secs(25), &peers);
    assert_eq!(choker.next_rechoke(), Instant::from_secs(30));
    assert_eq!(choker.poll_timeout(), Some(Instant::from_secs(30)));
}

#[test]
fn an_optimistic_peer_that_loses_interest_is_replaced() {
    let mut choker = Choker::new(config(0, 1), 4);
    let mut peers: Vec<_> = (0..3).map(|key| peer(key, 0, 0)).collect();
    let decision = choker.rechoke(Instant::ZERO, &peers);
    apply(&mut peers, &decision);
    let first = decision.unchoke[0];
    let holder = peers.iter_mut().find(|p| p.key == first).unwrap();
    holder.interested = false;
    let decision = choker.rechoke(Instant::from_secs(10), &peers);
    assert_eq!(decision.choke, [first]);
    assert_eq!(decision.unchoke.len(), 1);
    assert_ne!(decision.unchoke[0], first);
}

#[test]
fn new_peers_are_three_times_as_likely_to_be_optimistic() {
    let now = Instant::from_secs(1000);
    let mut peers: Vec<_> = (0..10).map(|key| peer(key, 0, 0)).collect();
    // Peers 5..10 connected 20 s ago; 0..5 long ago.
    for p in &mut peers[5..] {
        p.connected_at = now - Duration::from_secs(20);
    }
    let runs = 4000;
    let mut new_picks = 0;
    for seed in 0..runs {
        let mut choker = Choker::new(config(0, 1), seed);
        let decision = choker.rechoke(now, &peers);
        assert_eq!(decision.unchoke.len(), 1);
        if decision.unchoke[0].0 >= 5 {
            new_picks += 1;
        }
    }
    // Weights 3 × 5 against 1 × 5: three in four picks go to a new peer.
    let share = f64::from(new_picks) / runs as f64;
    assert!((0.72..0.78).contains(&share), "new peers got {share}");

    // With the weight at 1, they get their plain share.
    let mut new_picks = 0;
    for seed in 0..runs {
        let config = ChokerConfig {
            new_peer_weight: 1,
            ..config(0, 1)
        };
        let decision = Choker::new(config, seed).rechoke(now, &peers);
        if decision.unchoke[0].0 >= 5 {
            new_picks += 1;
        }
    }
    let share = f64::from(new_picks) / runs as f64;
    assert!((0.47..0.53).contains(&share), "new peers got {share}");
}

#[test]
fn ineligible_peers_get_no_optimistic_slot() {
    let mut choker = Choker::new(config(0, 1), 8);
    let mut peers: Vec<_> = (0..3).map(|key| peer(key, 0, 0)).collect();
    peers[0].optimistic_eligible = false;
    peers[1].optimistic_eligible = false;
    for round in 0..10 {
        let decision = choker.rechoke(Instant::from_secs(30 * round), &peers);
        apply(&mut peers, &decision);
        assert_eq!(unchoked(&peers), keys(&[2]));
    }
}

/// Runs a seeding swarm for `rounds` rechokes 10 s apart, sending each unchoked peer its
/// upload rate, and returns how many rechokes each peer spent unchoked.
fn run_seeding(
    choker: &mut Choker,
    peers: &mut [ChokeCandidate],
    rounds: u64,
) -> BTreeMap<PeerKey, u32> {
    let mut turns = BTreeMap::new();
    for round in 0..rounds {
        let decision = choker.rechoke(Instant::from_secs(10 * round), peers);
        apply(peers, &decision);
        assert!(unchoked(peers).len() <= choker.config().total_slots());
        for p in peers.iter_mut().filter(|p| !p.is_choked) {
            *turns.entry(p.key).or_insert(0) += 1;
            p.uploaded += p.upload_rate * 10;
        }
    }
    turns
}

#[test]
fn seeding_gives_every_interested_peer_a_turn() {
    for optimistic_slots in [0, 1] {
        let config = ChokerConfig {
            seeding: true,
            ..config(4, optimistic_slots)
        };
        let mut choker = Choker::new(config, 21);
        // Rates that differ a lot: the fast ones must not keep the slots.
        let mut peers: Vec<_> = (0..12)
            .map(|key| peer(key, 0, 10_000 * (u64::from(key) + 1)))
            .collect();
        // 12 peers, 4 regular slots, turns of at most 30 s: three rounds of turns.
        let turns = run_seeding(&mut choker, &mut peers, 10);
        assert_eq!(turns.len(), 12, "optimistic {optimistic_slots}: {turns:?}");
        let turns = run_seeding(&mut choker, &mut peers, 60);
        let fewest = turns.values().min().copied().unwrap_or(0);
        let most = turns.values().max().copied().unwrap_or(0);
        assert!(fewest >= 10, "optimistic {optimistic_slots}: {turns:?}");
        assert!(
            most <= 3 * fewest,
            "optimistic {optimistic_slots}: {turns:?}"
        );
    }
}

#[test]
fn seeding_turn_ends_at_the_quota() {
    let config = ChokerConfig {
        seeding: true,
        seeding_quota: 1_000_000,
        ..config(1, 0)
    };
    let mut choker = Choker::new(config, 2);
    let mut peers = vec![peer(0, 0, 0), peer(1, 0, 0)];
    let decision = choker.rechoke(Instant::ZERO, &peers);
    apply(&mut peers, &decision);
    let [holder] = decision.unchoke[..] else {
        panic!("{decision:?}")
    };
    let holder = peers.iter_mut().find(|p| p.key == holder).unwrap();
    holder.uploaded = 999_999;
    assert!(choker.rechoke(Instant::from_secs(10), &peers).is_empty());
    let holder = peers.iter_mut().find(|p| !p.is_choked).unwrap();
    holder.uploaded = 1_000_000;
    let decision = choker.rechoke(Instant::from_secs(11), &peers);
    assert_eq!(decision.choke.len(), 1);
    assert_eq!(decision.unchoke.len(), 1);
}

#[test]
fn seeding_keeps_the_fastest_while_nobody_waits() {
    let config = ChokerConfig {
        seeding: true,
        ..config(2, 0)
    };
    let mut choker = Choker::new(config, 6);
    let mut peers = vec![peer(0, 0, 10_000), peer(1, 0, 90_000), peer(2, 0, 50_000)];
    peers[2].interested = false;
    let decision = choker.rechoke(Instant::ZERO, &peers);
    assert_eq!(decision.unchoke, keys(&[0, 1]));
    apply(&mut peers, &decision);
    // Turns are over, but nobody waits: nothing changes.
    assert!(choker.rechoke(Instant::from_secs(60), &peers).is_empty());
    // Peer 2 wants in: it takes the slot of the slower peer whose turn is over.
    peers[2].interested = true;
    let decision = choker.rechoke(Instant::from_secs(70), &peers);
    assert_eq!(decision.unchoke, keys(&[2]));
    assert_eq!(decision.choke, keys(&[0]));
}

#[test]
fn seeding_running_turns_rank_by_upload_rate() {
    let config = ChokerConfig {
        seeding: true,
        ..config(3, 0)
    };
    let mut choker = Choker::new(config.clone(), 6);
    let mut peers = vec![peer(0, 0, 10_000), peer(1, 0, 90_000), peer(2, 0, 50_000)];
    let decision = choker.rechoke(Instant::ZERO, &peers);
    apply(&mut peers, &decision);
    // The slots shrink mid-turn: the fastest keep theirs.
    choker.set_config(ChokerConfig {
        upload_slots: 2,
        ..config
    });
    assert_eq!(choker.next_rechoke(), Instant::ZERO, "due at once");
    let decision = choker.rechoke(Instant::from_secs(5), &peers);
    assert_eq!(decision.choke, keys(&[0]));
}

#[test]
fn a_seeding_optimistic_turn_ends_with_its_slot() {
    let config = ChokerConfig {
        seeding: true,
        seeding_turn: Duration::from_secs(600),
        ..config(1, 1)
    };
    let mut choker = Choker::new(config, 13);
    let mut peers: Vec<_> = (0..3).map(|key| peer(key, 0, 0)).collect();
    let decision = choker.rechoke(Instant::ZERO, &peers);
    apply(&mut peers, &decision);
    let optimistic = choker.optimistic_peers().next().unwrap();
    let waiting = peers.iter().find(|p| p.is_choked).unwrap().key;
    // The optimistic slot runs out: the peer that waited gets it, and the old holder does
    // not stay on in a regular slot ahead of the regular peer's long turn.
    let decision = choker.rechoke(Instant::from_secs(30), &peers);
    assert_eq!(decision.unchoke, [waiting]);
    assert_eq!(decision.choke, [optimistic]);
}

#[test]
fn switching_to_seeding_makes_a_rechoke_due() {
    let mut choker = Choker::new(ChokerConfig::default(), 0);
    let peers = vec![peer(0, 0, 0)];
    choker.rechoke(Instant::from_secs(5), &peers);
    assert_eq!(choker.next_rechoke(), Instant::from_secs(15));
    choker.set_seeding(false);
    assert_eq!(choker.next_rechoke(), Instant::from_secs(15));
    choker.set_seeding(true);
    assert!(choker.is_seeding());
    assert_eq!(choker.next_rechoke(), Instant::from_secs(5));
    choker.rechoke(Instant::from_secs(6), &peers);
    assert_eq!(choker.next_rechoke(), Instant::from_secs(16));
    choker.request_rechoke();
    assert_eq!(choker.next_rechoke(), Instant::from_secs(6));
}

#[test]
fn removing_a_peer_with_a_slot_makes_a_rechoke_due() {
    let mut choker = Choker::new(config(1, 1), 0);
    let mut peers: Vec<_> = (0..5).map(|key| peer(key, 0, 0)).collect();
    peers[0].download_rate = 1000;
    let decision = choker.rechoke(Instant::ZERO, &peers);
    apply(&mut peers, &decision);
    let optimistic = choker.optimistic_peers().next().unwrap();

    // A choked peer leaves: nothing to do before the regular time.
    let choked = peers.iter().find(|p| p.is_choked).unwrap().key;
    choker.peer_removed(choked);
    peers.retain(|p| p.key != choked);
    assert_eq!(choker.next_rechoke(), Instant::from_secs(10));

    // The reciprocated peer leaves: its slot is refilled at once.
    choker.peer_removed(PeerKey(0));
    peers.retain(|p| p.key != PeerKey(0));
    assert_eq!(choker.next_rechoke(), Instant::ZERO);
    let decision = choker.rechoke(Instant::from_secs(1), &peers);
    apply(&mut peers, &decision);
    assert_eq!(decision.unchoke.len(), 1);
    assert_eq!(choker.optimistic_peers().next(), Some(optimistic));

    // The optimistic peer leaves: its slot goes to another at once.
    choker.peer_removed(optimistic);
    peers.retain(|p| p.key != optimistic);
    assert_eq!(choker.optimistic_peers().count(), 0);
    assert_eq!(choker.next_rechoke(), Instant::from_secs(1));
    let decision = choker.rechoke(Instant::from_secs(2), &peers);
    assert_eq!(decision.unchoke.len(), 1);
    assert_eq!(
        choker.optimistic_peers().collect::<Vec<_>>(),
        decision.unchoke
    );
    assert_eq!(peers.len(), 2);
}

#[test]
fn the_order_of_the_candidates_does_not_matter() {
    let peers: Vec<_> = (0..10)
        .map(|key| peer(key, u64::from(key % 3), 0))
        .collect();
    let mut reversed = peers.clone();
    reversed.reverse();
    let mut a = Choker::new(ChokerConfig::default(), 77);
    let mut b = Choker::new(ChokerConfig::default(), 77);
    for round in 0..10 {
        let now = Instant::from_secs(10 * round);
        assert_eq!(a.rechoke(now, &peers), b.rechoke(now, &reversed));
    }
}

#[test]
fn of_repeated_keys_the_first_counts() {
    let mut choker = Choker::new(config(1, 0), 0);
    let mut dup = peer(0, 0, 0);
    dup.is_choked = false;
    let peers = vec![peer(0, 100, 0), dup, peer(1, 50, 0)];
    let decision = choker.rechoke(Instant::ZERO, &peers);
    assert_eq!(decision.unchoke, keys(&[0]));
    assert!(decision.choke.is_empty());
}

#[test]
fn zero_intervals_still_move_time_forward() {
    let config = ChokerConfig {
        rechoke_interval: Duration::ZERO,
        optimistic_interval: Duration::ZERO,
        ..ChokerConfig::default()
    };
    let mut choker = Choker::new(config, 0);
    choker.rechoke(Instant::from_secs(3), &[peer(0, 0, 0), peer(1, 0, 0)]);
    assert_eq!(choker.next_rechoke(), Instant::from_secs(3) + MIN_INTERVAL);
}

fn arb_candidate() -> impl Strategy<Value = ChokeCandidate> {
    (
        0u32..24,
        any::<[bool; 4]>(),
        0u64..200_000,
        0u64..200_000,
        0u64..20_000_000,
        0u64..400,
    )
        .prop_map(|(key, flags, download_rate, upload_rate, uploaded, at)| {
            let [interested, is_choked, is_snubbed, optimistic_eligible] = flags;
            ChokeCandidate {
                key: PeerKey(key),
                interested,
                is_choked,
                download_rate,
                upload_rate,
                uploaded,
                is_snubbed,
                connected_at: Instant::from_secs(at),
                optimistic_eligible,
            }
        })
}

fn arb_config() -> impl Strategy<Value = ChokerConfig> {
    (
        0usize..6,
        0usize..3,
        any::<bool>(),
        0u64..40,
        0u64..90,
        0u32..5,
    )
        .prop_map(
            |(upload_slots, optimistic_slots, seeding, rechoke, optimistic, weight)| ChokerConfig {
                upload_slots,
                optimistic_slots,
                seeding,
                rechoke_interval: Duration::from_secs(rechoke),
                optimistic_interval: Duration::from_secs(optimistic),
                new_peer_weight: weight,
                ..ChokerConfig::default()
            },
        )
}

/// One call of a run: time to advance, the candidates, whether the owner applies the
/// previous decision, and a peer to remove first.
type Step = (u64, Vec<ChokeCandidate>, bool, Option<u32>);

fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(
        (
            0u64..45,
            prop::collection::vec(arb_candidate(), 0..30),
            any::<bool>(),
            prop::option::of(0u32..24),
        ),
        1..25,
    )
}

/// Runs the steps, checking every decision, and returns the decisions.
fn run_checked(config: &ChokerConfig, seed: u64, steps: &[Step]) -> Vec<ChokeDecision> {
    let mut choker = Choker::new(config.clone(), seed);
    let mut now = Instant::ZERO;
    // What the owner did with earlier decisions: the choke state it reports.
    let mut owner: BTreeMap<PeerKey, bool> = BTreeMap::new();
    let mut decisions = Vec::new();
    for (advance, candidates, applies, removed) in steps {
        now += Duration::from_secs(*advance);
        if let Some(key) = removed {
            choker.peer_removed(PeerKey(*key));
        }
        let mut candidates = candidates.clone();
        for c in &mut candidates {
            if *applies {
                if let Some(&choked) = owner.get(&c.key) {
                    c.is_choked = choked;
                }
            }
        }
        let decision = choker.rechoke(now, &candidates);

        // The first candidate of each key is the one that counts.
        let mut first: BTreeMap<PeerKey, &ChokeCandidate> = BTreeMap::new();
        for c in &candidates {
            first.entry(c.key).or_insert(c);
        }
        assert!(decision.unchoke.windows(2).all(|w| w[0] < w[1]));
        assert!(decision.choke.windows(2).all(|w| w[0] < w[1]));
        for key in &decision.unchoke {
            let c = first.get(key).expect("unchoke names a known key");
            assert!(c.is_choked && c.interested, "{c:?}");
        }
        for key in &decision.choke {
            let c = first.get(key).expect("choke names a known key");
            assert!(!c.is_choked, "{c:?}");
        }
        owner = first
            .iter()
            .map(|(&key, c)| {
                let choked = if decision.unchoke.contains(&key) {
                    false
                } else {
                    decision.choke.contains(&key) || c.is_choked
                };
                (key, choked)
            })
            .collect();
        let open: Vec<_> = owner.iter().filter(|(_, &choked)| !choked).collect();
        assert!(open.len() <= config.total_slots(), "{open:?}");
        for (key, _) in &open {
            assert!(first[key].interested, "{key:?} unchoked but not interested");
        }
        assert!(choker.optimistic_peers().count() <= config.optimistic_slots);
        assert!(choker.next_rechoke() > now);
        decisions.push(decision);
    }
    decisions
}

proptest! {
    #[test]
    fn random_runs_keep_the_rules(config in arb_config(), seed in any::<u64>(), steps in arb_steps()) {
        let decisions = run_checked(&config, seed, &steps);
        prop_assert_eq!(decisions, run_checked(&config, seed, &steps), "same seed, same decisions");
    }
}
