//! A deterministic network of [`Dht`] nodes: virtual time, seeded latency and loss.
//!
//! 1,000 nodes join from a few seeds, one announces a peer, a tenth of the network dies
//! without a word, and lookups from random survivors must still find the peer.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use super::*;
use crate::rng::Rng;

/// Messages in flight and timers, in time order (ties broken by scheduling order).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Deliver {
        from: SocketAddr,
        to: usize,
        data: Bytes,
    },
    Timer {
        node: usize,
    },
}

struct SimNode {
    addr: SocketAddr,
    dht: Dht,
    alive: bool,
    timer: Option<Instant>,
}

/// What a lookup started by the test saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Outcome {
    found: bool,
    done: Option<LookupStats>,
}

struct Network {
    now: Instant,
    nodes: Vec<SimNode>,
    by_addr: HashMap<SocketAddr, usize>,
    queue: BinaryHeap<Reverse<(Instant, u64, Event)>>,
    seq: u64,
    rng: Rng,
    loss_per_mille: u64,
    /// FNV-1a over every delivered datagram: time, endpoints, bytes.
    trace: u64,
    delivered: u64,
    /// The lookups under watch: (node, lookup) → outcome.
    watched: BTreeMap<(usize, LookupId), Outcome>,
    /// The peer the watched lookups look for.
    wanted: Option<SocketAddr>,
    bootstrapped: usize,
}

impl Network {
    fn new(seed: u64) -> Self {
        Self {
            now: Instant::ZERO,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: Rng::new(seed),
            loss_per_mille: 10,
            trace: 0xcbf2_9ce4_8422_2325,
            delivered: 0,
            watched: BTreeMap::new(),
            wanted: None,
            bootstrapped: 0,
        }
    }

    /// A node at 100.64.x.y (shared address space: distinct IPs, none of them exempt from
    /// BEP42), with a BEP42 id for its address.
    fn add_node(&mut self) -> usize {
        let index = self.nodes.len();
        let n = u32::try_from(index).unwrap() + 1;
        let ip = IpAddr::from((0x6440_0000u32 + n).to_be_bytes());
        let addr = SocketAddr::new(ip, 6881);
        let config = DhtConfig {
            seed: self.rng.next_u64(),
            external_ip: Some(ip),
            ipv6: false,
            ..DhtConfig::default()
        };
        let dht = Dht::new(self.now, config);
        assert!(dht.node_id().is_secure_for(ip));
        self.nodes.push(SimNode {
            addr,
            dht,
            alive: true,
            timer: None,
        });
        self.by_addr.insert(addr, index);
        index
    }

    fn with<R>(&mut self, node: usize, f: impl FnOnce(&mut Dht, Instant) -> R) -> R {
        let now = self.now;
        let out = f(&mut self.nodes[node].dht, now);
        self.flush(node);
        out
    }

    fn schedule(&mut self, at: Instant, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, event)));
    }

    /// One-way latency between two nodes: 10 to 89 ms, fixed per pair.
    fn latency(a: SocketAddr, b: SocketAddr) -> Duration {
        let (x, y) = (ip_bits(a), ip_bits(b));
        let mixed = (x.min(y).wrapping_mul(0x9E37_79B9) ^ x.max(y).wrapping_mul(0x85EB_CA6B)) % 80;
        Duration::from_millis(10 + u64::from(mixed))
    }

    /// Sends what `node` has to send, collects its events and re-arms its timer.
    fn flush(&mut self, node: usize) {
        let from = self.nodes[node].addr;
        while let Some(datagram) = self.nodes[node].dht.poll_transmit() {
            if self.rng.below(1000) < self.loss_per_mille {
                continue;
            }
            let Some(&to) = self.by_addr.get(&datagram.to) else {
                continue;
            };
            let at = self.now + Self::latency(from, datagram.to);
            self.schedule(
                at,
                Event::Deliver {
                    from,
                    to,
                    data: datagram.data,
                },
            );
        }
        while let Some(event) = self.nodes[node].dht.poll_event() {
            match event {
                DhtEvent::Peers { lookup, peers, .. } => {
                    if let Some(outcome) = self.watched.get_mut(&(node, lookup)) {
                        outcome.found |= self.wanted.is_some_and(|w| peers.contains(&w));
                    }
                }
                DhtEvent::LookupDone { lookup, stats, .. } => {
                    if let Some(outcome) = self.watched.get_mut(&(node, lookup)) {
                        outcome.done = Some(stats);
                    }
                }
                DhtEvent::Bootstrapped { .. } => self.bootstrapped += 1,
                DhtEvent::ExternalAddress {
                    node_id_changed, ..
                } => {
                    assert!(!node_id_changed, "ids were BEP42 from the start");
                }
            }
        }
        let next = self.nodes[node].dht.poll_timeout();
        if next != self.nodes[node].timer {
            self.nodes[node].timer = next;
            if let Some(at) = next {
                self.schedule(at.max(self.now), Event::Timer { node });
            }
        }
    }

    fn run_until(&mut self, end: Instant) {
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > end {
                break;
            }
            let Some(Reverse((at, _, event))) = self.queue.pop() else {
                break;
            };
            self.now = at;
            match event {
                Event::Deliver { from, to, data } => {
                    if !self.nodes[to].alive {
                        continue;
                    }
                    self.record(at, from, self.nodes[to].addr, &data);
                    self.nodes[to].dht.handle_datagram(at, from, &data);
                    self.flush(to);
                }
                Event::Timer { node } => {
                    let current = self.nodes[node].timer;
                    if !self.nodes[node].alive || current != Some(at) {
                        continue;
                    }
                    self.nodes[node].timer = None;
                    self.nodes[node].dht.handle_timeout(at);
                    self.flush(node);
                }
            }
        }
        self.now = self.now.max(end);
    }

    fn record(&mut self, at: Instant, from: SocketAddr, to: SocketAddr, data: &[u8]) {
        self.delivered += 1;
        let nanos = at.since_epoch().as_nanos().to_be_bytes();
        let endpoints = [ip_bits(from).to_be_bytes(), ip_bits(to).to_be_bytes()];
        for byte in nanos
            .iter()
            .chain(endpoints.iter().flatten())
            .chain(data.iter())
        {
            self.trace ^= u64::from(*byte);
            self.trace = self.trace.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn ip_bits(addr: SocketAddr) -> u32 {
    match addr.ip() {
        IpAddr::V4(v4) => u32::from(v4),
        IpAddr::V6(_) => 0,
    }
}

/// What one run of the scenario gives.
#[derive(Debug, PartialEq)]
struct Report {
    trace: u64,
    delivered: u64,
    trials: usize,
    found: usize,
    mean_queries: f64,
    mean_responses: f64,
    mean_round_trips: f64,
    mean_timeouts: f64,
    mean_table: f64,
    max_table: usize,
}

fn scenario(seed: u64, nodes: usize, trials: usize) -> Report {
    let mut net = Network::new(seed);
    // A few seeds that know each other.
    let seeds: Vec<usize> = (0..4).map(|_| net.add_node()).collect();
    for &s in &seeds[1..] {
        let first = net.nodes[seeds[0]].addr;
        net.with(s, |dht, now| dht.add_bootstrap(now, first));
    }
    net.run_until(Instant::from_secs(5));
    // The rest join, one every 100 ms, each from two of the seeds.
    for _ in seeds.len()..nodes {
        let node = net.add_node();
        for _ in 0..2 {
            let seed_addr = net.nodes[seeds[net.rng.below(seeds.len() as u64) as usize]].addr;
            net.with(node, |dht, now| dht.add_bootstrap(now, seed_addr));
        }
        let next = net.now + Duration::from_millis(100);
        net.run_until(next);
    }
    // Let the network settle for 17 minutes: quiet buckets get refreshed, questionable
    // nodes pinged.
    let settle = net.now + Duration::from_secs(17 * 60);
    net.run_until(settle);

    // One node announces a peer on an explicit port.
    let info_hash = NodeId::random(&mut net.rng);
    let announcer = net.rng.below(nodes as u64) as usize;
    let now = net.now;
    let announce = net.nodes[announcer]
        .dht
        .announce(now, info_hash, Some(7000));
    net.watched
        .insert((announcer, announce), Outcome::default());
    net.flush(announcer);
    let end = net.now + Duration::from_secs(60);
    net.run_until(end);
    let announced = net.watched[&(announcer, announce)]
        .done
        .expect("the announce ended");
    assert!(announced.announced_to >= 6, "{announced:?}");
    net.wanted = Some(SocketAddr::new(net.nodes[announcer].addr.ip(), 7000));
    net.watched.clear();

    // A tenth of the nodes die without a word (the announcer may be among them: its peer
    // is stored elsewhere).
    let mut order: Vec<usize> = (0..nodes).collect();
    net.rng.shuffle(&mut order);
    for &dead in &order[..nodes / 10] {
        net.nodes[dead].alive = false;
    }
    let end = net.now + Duration::from_secs(30);
    net.run_until(end);

    // Lookups from random survivors, one every 200 ms.
    let survivors: Vec<usize> = order[nodes / 10..].to_vec();
    for _ in 0..trials {
        let node = survivors[net.rng.below(survivors.len() as u64) as usize];
        // Watched before its first events are collected: a node storing the peer itself
        // reports it at once.
        let now = net.now;
        let lookup = net.nodes[node].dht.get_peers(now, info_hash);
        net.watched.insert((node, lookup), Outcome::default());
        net.flush(node);
        let next = net.now + Duration::from_millis(200);
        net.run_until(next);
    }
    let end = net.now + Duration::from_secs(120);
    net.run_until(end);

    let outcomes: Vec<Outcome> = net.watched.values().copied().collect();
    assert_eq!(
        outcomes.len(),
        trials,
        "each lookup from its own (node, id)"
    );
    let done: Vec<LookupStats> = outcomes
        .iter()
        .map(|o| o.done.expect("every lookup ended"))
        .collect();
    let mean = |f: fn(&LookupStats) -> u32| {
        done.iter().map(|s| f64::from(f(s))).sum::<f64>() / done.len() as f64
    };

    // Memory stays bounded on every survivor.
    let mut table_sizes = Vec::new();
    for &node in &survivors {
        let stats = net.nodes[node].dht.stats(net.now);
        let table = stats.ipv4;
        assert!(
            table.buckets <= 160 && table.nodes() <= table.buckets * 8,
            "{stats:?}"
        );
        assert!(table.replacements <= table.buckets * 8, "{stats:?}");
        assert_eq!(stats.ipv6.nodes(), 0);
        assert!(stats.pending_requests <= 512, "{stats:?}");
        assert!(stats.lookups <= 8, "{stats:?}");
        assert!(
            stats.stored_peers <= 1 && stats.stored_info_hashes <= 1,
            "{stats:?}"
        );
        assert!(stats.rate_limited_ips <= 1024, "{stats:?}");
        assert_eq!(
            stats.queued_transmits + stats.queued_events,
            0,
            "the simulator drained them"
        );
        table_sizes.push(table.nodes());
    }
    Report {
        trace: net.trace,
        delivered: net.delivered,
        trials,
        found: outcomes.iter().filter(|o| o.found).count(),
        mean_queries: mean(|s| s.queries),
        mean_responses: mean(|s| s.responses),
        mean_round_trips: mean(|s| s.round_trips),
        mean_timeouts: mean(|s| s.timeouts),
        mean_table: table_sizes.iter().sum::<usize>() as f64 / table_sizes.len() as f64,
        max_table: table_sizes.iter().copied().max().unwrap_or(0),
    }
}

#[test]
fn a_thousand_nodes_find_an_announced_peer_after_a_tenth_die() {
    let report = scenario(2026, 1000, 300);
    println!(
        "1,000 nodes, 10% dead, {} get_peers lookups: found {} ({:.1}%); per lookup {:.1} queries, \
         {:.1} responses, {:.1} timeouts, {:.2} round trips to the closest node; routing table \
         {:.1} nodes on average, {} at most; {} datagrams delivered",
        report.trials,
        report.found,
        100.0 * report.found as f64 / report.trials as f64,
        report.mean_queries,
        report.mean_responses,
        report.mean_timeouts,
        report.mean_round_trips,
        report.mean_table,
        report.max_table,
        report.delivered,
    );
    assert!(report.found * 100 >= report.trials * 99, "{report:?}");
    // Lookups converge in a few hops and stay cheap.
    assert!(report.mean_round_trips <= 6.0, "{report:?}");
    assert!(report.mean_queries <= 60.0, "{report:?}");
    // Tables filled (a lookup needs more than the bootstrap nodes).
    assert!(report.mean_table >= 30.0, "{report:?}");
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let a = scenario(7, 1000, 100);
    let b = scenario(7, 1000, 100);
    assert_eq!(a, b);
    let c = scenario(8, 300, 20);
    assert_ne!(a.trace, c.trace);
}
