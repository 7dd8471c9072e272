//! Two connections back to back in virtual time, and connections fed scripted bytes.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use core::time::Duration;
use proptest::prelude::*;

use super::*;
use crate::peer_id::PeerId;
use crate::time::Instant;
use crate::wire::extension::{ExtendedHandshake, UT_METADATA, UT_PEX};
use crate::wire::{Block, BlockRequest, Handshake, Message, ReservedBits};
use crate::{InfoHashV1, InfoHashV2, InfoHashes, PieceIndex, BLOCK_SIZE};

const V1: InfoHashV1 = InfoHashV1([0xaa; 20]);
const LEECHER_ID: PeerId = PeerId([b'L'; 20]);
const SEEDER_ID: PeerId = PeerId([b'S'; 20]);
const BOTH: ReservedBits = ReservedBits::EXTENSION_PROTOCOL.union(ReservedBits::FAST);

/// Four pieces of 64 KiB and a last one of 20000 bytes.
fn geometry() -> TorrentGeometry {
    TorrentGeometry::new(4 * BLOCK_SIZE, 4 * 4 * u64::from(BLOCK_SIZE) + 20_000).unwrap()
}

fn params(id: PeerId, availability: Availability, reserved: ReservedBits) -> PeerParams {
    let mut extended_handshake = ExtendedHandshake::default();
    extended_handshake
        .extensions
        .insert(UT_METADATA.to_owned(), 3);
    extended_handshake.client = Some(format!("test {}", id.0[0] as char));
    PeerParams {
        geometry: Some(geometry()),
        availability,
        extended_handshake,
        config: PeerConfig {
            reserved,
            ..PeerConfig::default()
        },
        ..PeerParams::new(InfoHashes::v1(V1), id)
    }
}

/// Deterministic block contents.
fn data_for(request: &BlockRequest) -> Bytes {
    (0..request.length)
        .map(|i| (request.piece.0 * 31 + request.offset / 7 + i) as u8)
        .collect::<Vec<_>>()
        .into()
}

fn block_for(request: &BlockRequest) -> Block {
    Block {
        piece: request.piece,
        offset: request.offset,
        data: data_for(request),
    }
}

/// One side of a [`Pair`]: its connection, receive buffer, the events it gave, and what
/// its stand-in owner does by itself.
struct Side {
    conn: PeerConnection,
    inbox: BytesMut,
    events: Vec<PeerEvent>,
    /// Serve every upload request at once.
    auto_serve: bool,
    /// Blocks to request whenever the pipeline wants some.
    to_request: VecDeque<BlockRequest>,
}

impl Side {
    fn new(conn: PeerConnection) -> Self {
        Self {
            conn,
            inbox: BytesMut::new(),
            events: Vec::new(),
            auto_serve: false,
            to_request: VecDeque::new(),
        }
    }

    /// Drains events, acting on them as a simple owner would.
    fn drain(&mut self, now: Instant) {
        while let Some(event) = self.conn.poll_event() {
            match &event {
                PeerEvent::UploadRequested(request) if self.auto_serve => {
                    assert!(self.conn.serve_block(now, block_for(request)));
                }
                PeerEvent::WantBlocks { count, .. } => {
                    for _ in 0..*count {
                        let Some(request) = self.to_request.pop_front() else {
                            break;
                        };
                        self.conn.request(now, request).unwrap();
                    }
                }
                _ => {}
            }
            self.events.push(event);
        }
    }

    fn take_events(&mut self) -> Vec<PeerEvent> {
        std::mem::take(&mut self.events)
    }

    fn received_blocks(&self) -> Vec<&Block> {
        self.events
            .iter()
            .filter_map(|e| match e {
                PeerEvent::BlockReceived(block) => Some(block),
                _ => None,
            })
            .collect()
    }
}

/// An outgoing connection `a` and an incoming one `b`, wired back to back.
struct Pair {
    now: Instant,
    a: Side,
    b: Side,
    /// Whether bytes from `b` go to `a` by themselves; if not they stay in `b`'s transmit
    /// queue (a silent peer, or a link the test drives).
    b_to_a: bool,
}

impl Pair {
    fn new(a: PeerParams, b: PeerParams) -> Self {
        let info_hash = a.info_hashes.best_v1_identifier();
        Self::with_info_hash(a, b, info_hash)
    }

    fn with_info_hash(a: PeerParams, b: PeerParams, info_hash: InfoHashV1) -> Self {
        let now = Instant::ZERO;
        let mut pair = Self {
            now,
            a: Side::new(PeerConnection::outgoing(now, info_hash, a)),
            b: Side::new(PeerConnection::incoming(now, b)),
            b_to_a: true,
        };
        pair.pump();
        pair
    }

    /// A leecher (`a`, nothing) and a seeder (`b`, everything), both with `reserved`.
    fn leecher_seeder(reserved: ReservedBits) -> Self {
        Self::new(
            params(LEECHER_ID, Availability::None, reserved),
            params(SEEDER_ID, Availability::All, reserved),
        )
    }

    /// Moves bytes both ways until neither side has anything to send.
    fn pump(&mut self) {
        let now = self.now;
        self.a.drain(now);
        self.b.drain(now);
        loop {
            let mut moved = false;
            while let Some(chunk) = self.a.conn.poll_transmit() {
                self.b.inbox.extend_from_slice(&chunk);
                moved = true;
            }
            self.b.conn.handle_received(now, &mut self.b.inbox);
            self.b.drain(now);
            // A silent link leaves the bytes where they are.
            while let Some(chunk) = self.b_to_a.then(|| self.b.conn.poll_transmit()).flatten() {
                self.a.inbox.extend_from_slice(&chunk);
                moved = true;
            }
            self.a.conn.handle_received(now, &mut self.a.inbox);
            self.a.drain(now);
            if !moved {
                break;
            }
        }
    }

    /// Advances virtual time by `by`, firing both sides' timers on the way.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        for _ in 0..100_000 {
            let next = [self.a.conn.poll_timeout(), self.b.conn.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(next) if next <= end => {
                    self.now = self.now.max(next);
                    self.a.conn.handle_timeout(self.now);
                    self.b.conn.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// Sets up interest and unchoking so that `a` can download from `b`.
    fn start_download(&mut self) {
        let now = self.now;
        self.a.conn.set_interested(now, true);
        self.b.conn.set_choking(now, false);
        self.pump();
    }
}

fn all_blocks(g: &TorrentGeometry) -> VecDeque<BlockRequest> {
    (0..g.num_pieces())
        .flat_map(|p| g.blocks(PieceIndex(p)))
        .collect()
}

fn returned(events: &[PeerEvent]) -> Vec<(BlockRequest, ReturnReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            PeerEvent::RequestReturned { request, reason } => Some((*request, *reason)),
            _ => None,
        })
        .collect()
}

fn closed_with(events: &[PeerEvent]) -> Option<&CloseReason> {
    events.iter().find_map(|e| match e {
        PeerEvent::Closed(reason) => Some(reason),
        _ => None,
    })
}

// ----- handshake -----

#[test]
fn handshake_both_ways_with_extensions() {
    let mut pair = Pair::leecher_seeder(BOTH);
    let a = pair.a.take_events();
    let b = pair.b.take_events();
    assert_eq!(
        a[..2],
        [
            PeerEvent::HandshakeDone {
                peer_id: SEEDER_ID,
                reserved: BOTH,
                info_hash: V1
            },
            PeerEvent::HaveAll,
        ]
    );
    assert_eq!(
        b[..2],
        [
            PeerEvent::HandshakeDone {
                peer_id: LEECHER_ID,
                reserved: BOTH,
                info_hash: V1
            },
            PeerEvent::HaveNone,
        ]
    );
    for (events, conn, client) in [(&a, &pair.a.conn, "test S"), (&b, &pair.b.conn, "test L")] {
        let PeerEvent::ExtendedHandshake(hs) = &events[2] else {
            panic!("no extension handshake in {events:?}");
        };
        assert_eq!(hs.client.as_deref(), Some(client));
        assert_eq!(hs.extension_id(UT_METADATA), Some(3));
        assert_eq!(hs.max_requests, Some(500), "reqq is filled in");
        assert_eq!(conn.extensions(), BOTH);
        assert!(conn.is_established());
        assert_eq!(conn.info_hash(), Some(V1));
        assert!(conn.am_choking() && !conn.am_interested());
        assert!(conn.peer_choking() && !conn.peer_interested());
        assert_eq!(events.len(), 3, "{events:?}");
    }
    assert_eq!(pair.a.conn.direction(), Direction::Outgoing);
    assert_eq!(pair.b.conn.peer_id(), Some(LEECHER_ID));
    assert_eq!(pair.a.conn.remote_reserved(), Some(BOTH));
}

#[test]
fn handshake_without_extensions_sends_a_bitfield() {
    let mut pair = Pair::leecher_seeder(ReservedBits::NONE);
    let a = pair.a.take_events();
    let b = pair.b.take_events();
    assert_eq!(a.len(), 2);
    assert_eq!(a[1], PeerEvent::Bitfield(Bytes::from_static(&[0xf8])));
    assert_eq!(b.len(), 1, "a peer with nothing sends no bitfield: {b:?}");
    assert_eq!(pair.a.conn.remote_extensions(), None);
    assert_eq!(
        pair.a
            .conn
            .send_extended(pair.now, UT_METADATA, Bytes::new()),
        Err(SendExtendedError::Unsupported)
    );
}

#[test]
fn mixed_extensions_use_the_intersection() {
    let mut pair = Pair::new(
        params(LEECHER_ID, Availability::None, BOTH),
        params(SEEDER_ID, Availability::All, ReservedBits::FAST),
    );
    let a = pair.a.take_events();
    assert_eq!(pair.a.conn.extensions(), ReservedBits::FAST);
    assert_eq!(a[1], PeerEvent::HaveAll);
    assert_eq!(a.len(), 2, "no extension handshake: {a:?}");
}

#[test]
fn hybrid_torrent_accepts_the_truncated_v2_hash() {
    let v2 = InfoHashV2([0x55; 32]);
    let hybrid = InfoHashes::hybrid(V1, v2);
    let a = PeerParams {
        info_hashes: InfoHashes::v2(v2),
        ..params(LEECHER_ID, Availability::None, BOTH)
    };
    let b = PeerParams {
        info_hashes: hybrid,
        ..params(SEEDER_ID, Availability::All, BOTH)
    };
    let mut pair = Pair::with_info_hash(a, b, v2.truncated());
    assert_eq!(pair.b.conn.info_hash(), Some(v2.truncated()));
    assert!(matches!(
        pair.a.take_events()[0],
        PeerEvent::HandshakeDone { info_hash, .. } if info_hash == v2.truncated()
    ));

    // And the v1 hash too.
    let pair = Pair::new(
        params(LEECHER_ID, Availability::None, BOTH),
        PeerParams {
            info_hashes: hybrid,
            ..params(SEEDER_ID, Availability::All, BOTH)
        },
    );
    assert_eq!(pair.b.conn.info_hash(), Some(V1));
    assert!(pair.a.conn.is_established());

    // A v1-only torrent refuses a truncated v2 hash.
    let other = PeerParams {
        info_hashes: InfoHashes::v2(v2),
        ..params(LEECHER_ID, Availability::None, BOTH)
    };
    let mut pair = Pair::with_info_hash(
        other,
        params(SEEDER_ID, Availability::All, BOTH),
        v2.truncated(),
    );
    assert_eq!(
        closed_with(&pair.b.take_events()),
        Some(&CloseReason::InfoHashMismatch {
            received: v2.truncated()
        })
    );
    assert!(!pair.a.conn.is_established());
}

#[test]
fn incoming_connections_are_routed_by_the_peeked_info_hash() {
    // Two torrents; the second is hybrid. A peer dials the hybrid one by its truncated
    // v2 hash, and the first 48 bytes are enough to find it.
    let v2 = InfoHashV2([0x77; 32]);
    let torrents = [
        InfoHashes::v1(InfoHashV1([1; 20])),
        InfoHashes::hybrid(V1, v2),
    ];
    let now = Instant::ZERO;
    let mut dialer = PeerConnection::outgoing(
        now,
        v2.truncated(),
        PeerParams {
            info_hashes: InfoHashes::v2(v2),
            ..params(LEECHER_ID, Availability::None, BOTH)
        },
    );
    let mut inbox = BytesMut::new();
    while let Some(chunk) = dialer.poll_transmit() {
        inbox.extend_from_slice(&chunk);
    }
    assert_eq!(Handshake::peek_info_hash(&inbox[..47]), Ok(None));
    let peeked = Handshake::peek_info_hash(&inbox[..48]).unwrap().unwrap();
    let torrent = torrents.iter().find(|t| t.matches(&peeked)).unwrap();
    let mut conn = PeerConnection::incoming(
        now,
        PeerParams {
            info_hashes: *torrent,
            ..params(SEEDER_ID, Availability::All, BOTH)
        },
    );
    conn.handle_received(now, &mut inbox);
    assert!(conn.is_established());
    assert_eq!(conn.info_hash(), Some(v2.truncated()));
    let mut reply = BytesMut::new();
    while let Some(chunk) = conn.poll_transmit() {
        reply.extend_from_slice(&chunk);
    }
    assert_eq!(Handshake::peek_info_hash(&reply), Ok(Some(v2.truncated())));
    dialer.handle_received(now, &mut reply);
    assert!(dialer.is_established());
}

#[test]
fn outgoing_refuses_a_reply_for_another_torrent() {
    let mut conn = PeerConnection::outgoing(
        Instant::ZERO,
        V1,
        params(LEECHER_ID, Availability::None, BOTH),
    );
    let mut buf = BytesMut::new();
    handshake_bytes(&mut buf, BOTH, InfoHashV1([1; 20]), SEEDER_ID);
    conn.handle_received(Instant::ZERO, &mut buf);
    assert!(conn.is_closed());
    assert!(matches!(
        conn.close_reason(),
        Some(CloseReason::InfoHashMismatch { .. })
    ));
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn connecting_to_ourselves_closes() {
    let mut pair = Pair::new(
        params(LEECHER_ID, Availability::None, BOTH),
        params(LEECHER_ID, Availability::None, BOTH),
    );
    assert_eq!(
        closed_with(&pair.b.take_events()),
        Some(&CloseReason::ConnectedToSelf)
    );
}

#[test]
fn handshake_timeout() {
    let mut conn =
        PeerConnection::incoming(Instant::ZERO, params(SEEDER_ID, Availability::All, BOTH));
    assert_eq!(conn.poll_timeout(), Some(Instant::from_secs(20)));
    conn.handle_timeout(Instant::from_secs(19));
    assert!(!conn.is_closed());
    conn.handle_timeout(Instant::from_secs(20));
    assert_eq!(conn.close_reason(), Some(&CloseReason::HandshakeTimeout));
    assert_eq!(
        conn.poll_event(),
        Some(PeerEvent::Closed(CloseReason::HandshakeTimeout))
    );
    assert_eq!(conn.poll_transmit(), None, "an incoming connection waits");
}

#[test]
fn commands_before_the_handshake_are_announced_with_it() {
    let now = Instant::ZERO;
    let mut a = PeerConnection::outgoing(now, V1, params(LEECHER_ID, Availability::None, BOTH));
    a.set_interested(now, true);
    a.set_choking(now, false);
    a.send_have(now, PieceIndex(1));
    a.send_have(now, PieceIndex(4));
    a.send_allowed_fast(now, PieceIndex(2));
    assert_eq!(
        a.request(now, geometry().blocks(PieceIndex(0)).next().unwrap()),
        Err(RequestError::NotConnected)
    );
    let mut pair = Pair {
        now,
        a: Side::new(a),
        b: Side::new(PeerConnection::incoming(
            now,
            params(SEEDER_ID, Availability::None, BOTH),
        )),
        b_to_a: true,
    };
    pair.pump();
    let b = pair.b.take_events();
    assert_eq!(b[1], PeerEvent::Bitfield(Bytes::from_static(&[0x48])));
    assert!(matches!(b[2], PeerEvent::ExtendedHandshake(_)));
    assert_eq!(
        b[3..],
        [
            PeerEvent::AllowedFast(PieceIndex(2)),
            PeerEvent::Interested,
            PeerEvent::Unchoked,
        ]
    );
}

// ----- downloading -----

#[test]
fn full_download_between_two_connections() {
    for reserved in [BOTH, ReservedBits::NONE] {
        let mut pair = Pair::leecher_seeder(reserved);
        let g = geometry();
        pair.b.auto_serve = true;
        pair.a.to_request = all_blocks(&g);
        let total = pair.a.to_request.len();
        pair.start_download();
        for _ in 0..20 {
            if pair.a.to_request.is_empty() && pair.a.conn.outstanding_requests().count() == 0 {
                break;
            }
            pair.advance(Duration::from_millis(100));
        }
        let blocks = pair.a.received_blocks();
        assert_eq!(blocks.len(), total);
        for block in &blocks {
            assert_eq!(block.data, data_for(&block.request()), "{reserved:?}");
        }
        let mut got: Vec<_> = blocks.iter().map(|b| b.request()).collect();
        got.sort_by_key(|r| (r.piece, r.offset));
        assert_eq!(got, Vec::from(all_blocks(&g)));

        let a = pair.a.conn.stats();
        let b = pair.b.conn.stats();
        assert_eq!(a.payload_downloaded, g.total_size());
        assert_eq!(b.payload_uploaded, g.total_size());
        assert_eq!(a.protocol_downloaded, b.protocol_uploaded);
        assert_eq!(b.protocol_downloaded, a.protocol_uploaded);
        assert_eq!(a.wasted_downloaded, 0);

        // The leecher announces what it verified.
        pair.b.take_events();
        let now = pair.now;
        pair.a.conn.send_have(now, PieceIndex(2));
        pair.a.conn.set_interested(now, false);
        pair.pump();
        assert_eq!(
            pair.b.take_events(),
            [PeerEvent::Have(PieceIndex(2)), PeerEvent::NotInterested]
        );
    }
}

#[test]
fn requests_are_checked() {
    let mut pair = Pair::leecher_seeder(BOTH);
    let now = pair.now;
    let first = geometry().blocks(PieceIndex(0)).next().unwrap();
    assert_eq!(
        pair.a.conn.request(now, first),
        Err(RequestError::NotInterested)
    );
    pair.a.conn.set_interested(now, true);
    assert_eq!(pair.a.conn.request(now, first), Err(RequestError::Choked));
    pair.b.conn.set_choking(now, false);
    pair.pump();
    let too_long = BlockRequest {
        length: BLOCK_SIZE + 1,
        ..first
    };
    assert_eq!(
        pair.a.conn.request(now, too_long),
        Err(RequestError::InvalidBlock)
    );
    assert_eq!(pair.a.conn.request(now, first), Ok(()));
    assert_eq!(
        pair.a.conn.request(now, first),
        Err(RequestError::AlreadyRequested)
    );
}

#[test]
fn choke_without_fast_returns_every_request() {
    let mut pair = Pair::leecher_seeder(ReservedBits::NONE);
    let g = geometry();
    pair.a.to_request = all_blocks(&g);
    pair.start_download();
    let outstanding: Vec<_> = pair.a.conn.outstanding_requests().copied().collect();
    assert_eq!(outstanding.len(), 4);
    assert_eq!(pair.b.conn.queued_uploads().count(), 4);
    pair.a.take_events();
    pair.b.take_events();

    // One block is on its way when the seeder chokes.
    let now = pair.now;
    assert!(pair.b.conn.serve_block(now, block_for(&outstanding[0])));
    pair.b.conn.set_choking(now, true);
    pair.pump();
    let b = pair.b.take_events();
    assert_eq!(
        b,
        outstanding[1..]
            .iter()
            .map(|r| PeerEvent::UploadCancelled(*r))
            .collect::<Vec<_>>()
    );
    assert!(!pair.b.conn.serve_block(now, block_for(&outstanding[1])));

    let a = pair.a.take_events();
    assert!(matches!(a[0], PeerEvent::BlockReceived(_)));
    assert_eq!(
        returned(&a),
        outstanding[1..]
            .iter()
            .map(|r| (*r, ReturnReason::Choked))
            .collect::<Vec<_>>()
    );
    assert_eq!(a.last(), Some(&PeerEvent::Choked));
    assert_eq!(pair.a.conn.outstanding_requests().count(), 0);
    assert_eq!(pair.a.conn.request_slots(), 0);
}

#[test]
fn choke_with_fast_rejects_explicitly() {
    let mut pair = Pair::leecher_seeder(BOTH);
    pair.a.to_request = all_blocks(&geometry());
    pair.start_download();
    let outstanding: Vec<_> = pair.a.conn.outstanding_requests().copied().collect();
    pair.a.take_events();
    let now = pair.now;
    pair.b.conn.set_choking(now, true);
    pair.pump();
    let a = pair.a.take_events();
    assert_eq!(a[0], PeerEvent::Choked, "choke first, then the rejects");
    assert_eq!(
        returned(&a),
        outstanding
            .iter()
            .map(|r| (*r, ReturnReason::Rejected))
            .collect::<Vec<_>>()
    );
    assert_eq!(pair.a.conn.outstanding_requests().count(), 0);
}

#[test]
fn allowed_fast_pieces_are_requested_while_choked() {
    let mut pair = Pair::leecher_seeder(BOTH);
    let now = pair.now;
    pair.b.conn.send_allowed_fast(now, PieceIndex(3));
    pair.b.auto_serve = true;
    pair.a.conn.set_interested(now, true);
    pair.pump();
    let a = pair.a.take_events();
    assert_eq!(pair.a.conn.allowed_fast(), [PieceIndex(3)]);
    assert!(a.contains(&PeerEvent::AllowedFast(PieceIndex(3))));
    assert!(matches!(
        a.last(),
        Some(PeerEvent::WantBlocks {
            allowed_fast_only: true,
            ..
        })
    ));

    let g = geometry();
    let other = g.blocks(PieceIndex(0)).next().unwrap();
    assert_eq!(pair.a.conn.request(now, other), Err(RequestError::Choked));
    for block in g.blocks(PieceIndex(3)) {
        pair.a.conn.request(now, block).unwrap();
    }
    pair.pump();
    assert!(pair.a.conn.peer_choking());
    assert_eq!(pair.a.received_blocks().len(), 4);

    // A request for another piece while choked is rejected, not queued.
    let mut raw = BytesMut::new();
    Message::Request(other).encode(&mut raw);
    pair.b.conn.handle_received(now, &mut raw);
    assert_eq!(pair.b.conn.queued_uploads().count(), 0);
    pair.b.take_events();
    pair.pump();
    assert!(pair.b.take_events().is_empty());
}

#[test]
fn cancel_removes_a_queued_upload_request() {
    let mut pair = Pair::leecher_seeder(BOTH);
    pair.a.to_request = all_blocks(&geometry());
    pair.start_download();
    let first = *pair.a.conn.outstanding_requests().next().unwrap();
    assert!(pair.b.events.contains(&PeerEvent::UploadRequested(first)));
    pair.a.to_request.clear();
    pair.a.take_events();
    pair.b.take_events();

    let now = pair.now;
    assert!(pair.a.conn.cancel(now, first));
    assert!(!pair.a.conn.cancel(now, first));
    pair.pump();
    assert_eq!(pair.b.take_events(), [PeerEvent::UploadCancelled(first)]);
    assert!(!pair.b.conn.queued_uploads().any(|r| *r == first));
    assert!(!pair.b.conn.serve_block(now, block_for(&first)));
    // The seeder's reject answers the cancel; nothing comes back to the leecher's owner
    // but room in the pipeline.
    let a = pair.a.take_events();
    assert!(returned(&a).is_empty(), "{a:?}");
    assert!(pair.a.conn.is_established());
}

#[test]
fn a_block_after_its_cancel_is_dropped_quietly() {
    let mut pair = Pair::leecher_seeder(ReservedBits::NONE);
    pair.a.to_request = all_blocks(&geometry());
    pair.start_download();
    let first = *pair.a.conn.outstanding_requests().next().unwrap();
    let now = pair.now;
    // The seeder serves before the cancel reaches it.
    assert!(pair.b.conn.serve_block(now, block_for(&first)));
    assert!(pair.a.conn.cancel(now, first));
    pair.a.take_events();
    pair.pump();
    assert!(pair.a.conn.is_established());
    assert!(pair.a.received_blocks().is_empty());
    assert_eq!(
        pair.a.conn.stats().wasted_downloaded,
        u64::from(first.length)
    );

    // Twice is too much: the grace covers one answer.
    let mut raw = BytesMut::new();
    Message::Piece(block_for(&first)).encode(&mut raw);
    pair.a.conn.handle_received(now, &mut raw);
    assert_eq!(
        pair.a.conn.close_reason(),
        Some(&CloseReason::UnrequestedPiece(first))
    );
}

#[test]
fn pipeline_depth_grows_with_rate() {
    // A seeder behind a link of `rate` bytes per second; the leecher always has blocks to
    // ask for. After a while the depth covers about three seconds at that rate.
    let depth_at = |rate: usize| {
        let g = TorrentGeometry::new(4 * BLOCK_SIZE, 1 << 32).unwrap();
        let mut pair = Pair::leecher_seeder(BOTH);
        pair.a.conn.set_geometry(g.clone());
        pair.b.conn.set_geometry(g.clone());
        pair.b.auto_serve = true;
        pair.a.to_request = (0..4000).flat_map(|p| g.blocks(PieceIndex(p))).collect();
        pair.b_to_a = false;
        pair.start_download();
        assert_eq!(pair.a.conn.target_queue_depth(), 4);

        let step = Duration::from_millis(10);
        let per_step = rate / 100;
        let mut link = BytesMut::new();
        let mut depths = Vec::new();
        for i in 0..2000 {
            while let Some(chunk) = pair.b.conn.poll_transmit() {
                link.extend_from_slice(&chunk);
            }
            let n = per_step.min(link.len());
            pair.a.inbox.extend_from_slice(&link.split_to(n));
            pair.pump();
            pair.advance(step);
            if i % 100 == 99 {
                depths.push(pair.a.conn.target_queue_depth());
            }
        }
        let stats = pair.a.conn.stats();
        assert!(
            stats.download_rate.abs_diff(rate as u64) < rate as u64 / 10,
            "measured {} for a link of {rate}",
            stats.download_rate
        );
        assert!(depths[0] > 10, "slow start: {depths:?}");
        depths
    };
    let slow = depth_at(200_000);
    let fast = depth_at(2_000_000);
    let expected = |rate: f64| rate * 3.0 / f64::from(BLOCK_SIZE);
    let close_to =
        |depth: usize, rate: f64| (depth as f64 - expected(rate)).abs() < expected(rate) * 0.3;
    assert!(close_to(*slow.last().unwrap(), 200_000.0), "{slow:?}");
    assert!(close_to(*fast.last().unwrap(), 2_000_000.0), "{fast:?}");
}

#[test]
fn request_timeout_then_snub_then_recovery() {
    let mut pair = Pair::leecher_seeder(BOTH);
    pair.a.to_request = all_blocks(&geometry());
    pair.start_download();
    let outstanding: Vec<_> = pair.a.conn.outstanding_requests().copied().collect();
    pair.a.take_events();
    // The seeder's owner never answers.
    pair.advance(Duration::from_secs(29));
    assert!(pair.a.take_events().is_empty());
    pair.advance(Duration::from_secs(1));
    assert_eq!(
        pair.a.take_events(),
        outstanding
            .iter()
            .map(|r| PeerEvent::RequestTimedOut(*r))
            .collect::<Vec<_>>()
    );
    pair.advance(Duration::from_secs(30));
    assert_eq!(pair.a.take_events(), [PeerEvent::Snubbed]);
    assert!(pair.a.conn.is_snubbed());
    assert_eq!(pair.a.conn.target_queue_depth(), 1);

    // A late block is still welcome.
    let now = pair.now;
    assert!(pair.b.conn.serve_block(now, block_for(&outstanding[0])));
    pair.pump();
    let a = pair.a.take_events();
    assert_eq!(a[0], PeerEvent::Unsnubbed);
    assert!(matches!(a[1], PeerEvent::BlockReceived(_)));
    assert!(!pair.a.conn.is_snubbed());
    assert!(pair.a.conn.is_established(), "keep-alives kept it open");
}

// ----- keep-alive and inactivity -----

#[test]
fn keep_alive_and_inactivity_timeout() {
    let mut pair = Pair::leecher_seeder(BOTH);
    let sent = pair.a.conn.stats().protocol_uploaded;
    assert_eq!(pair.a.conn.poll_timeout(), Some(Instant::from_secs(120)));
    pair.advance(Duration::from_secs(119));
    assert_eq!(pair.a.conn.stats().protocol_uploaded, sent);
    pair.advance(Duration::from_secs(1));
    assert_eq!(
        pair.a.conn.stats().protocol_uploaded,
        sent + 4,
        "a keep-alive"
    );
    // Both keep each other alive for as long as they like.
    pair.advance(Duration::from_secs(1080));
    assert_eq!(pair.now, Instant::from_secs(1200));
    assert!(pair.a.conn.is_established() && pair.b.conn.is_established());

    // The seeder's bytes stop reaching the leecher: 180 s after the last (its keep-alive
    // at 1200 s), it gives up.
    pair.a.take_events();
    pair.b_to_a = false;
    pair.advance(Duration::from_secs(179));
    assert!(pair.a.conn.is_established());
    pair.advance(Duration::from_secs(1));
    assert_eq!(
        pair.a.take_events(),
        [PeerEvent::Closed(CloseReason::InactivityTimeout)]
    );
    assert!(!CloseReason::InactivityTimeout.is_misbehaviour());
}

// ----- extensions -----

#[test]
fn extension_messages_are_routed_by_name_and_id() {
    let mut pair = Pair::leecher_seeder(BOTH);
    let now = pair.now;
    // The seeder assigned ut_metadata id 3; the leecher sends by name.
    pair.a
        .conn
        .send_extended(
            now,
            UT_METADATA,
            Bytes::from_static(b"d8:msg_typei0e5:piecei0ee"),
        )
        .unwrap();
    assert_eq!(
        pair.a.conn.send_extended(now, UT_PEX, Bytes::new()),
        Err(SendExtendedError::Unsupported)
    );
    pair.b.take_events();
    pair.pump();
    assert_eq!(
        pair.b.take_events(),
        [PeerEvent::Extended {
            id: 3,
            payload: Bytes::from_static(b"d8:msg_typei0e5:piecei0ee")
        }]
    );

    // The seeder disables ut_metadata and offers ut_pex.
    let mut update = ExtendedHandshake::default();
    update.extensions.insert(UT_METADATA.to_owned(), 0);
    update.extensions.insert(UT_PEX.to_owned(), 9);
    update.max_requests = Some(5);
    pair.b.conn.update_extended_handshake(now, update);
    pair.pump();
    let merged = pair.a.conn.remote_extensions().unwrap();
    assert_eq!(merged.extension_id(UT_METADATA), None);
    assert_eq!(merged.extension_id(UT_PEX), Some(9));
    assert_eq!(
        merged.client.as_deref(),
        Some("test S"),
        "kept from the first"
    );
    assert_eq!(
        pair.a.conn.send_extended(now, UT_METADATA, Bytes::new()),
        Err(SendExtendedError::Unsupported)
    );
    pair.a
        .conn
        .send_extended(now, UT_PEX, Bytes::new())
        .unwrap();

    // The peer's reqq caps the pipeline.
    pair.a.conn.set_interested(now, true);
    pair.b.conn.set_choking(now, false);
    pair.pump();
    let g = geometry();
    let mut blocks = all_blocks(&g).into_iter();
    for block in blocks.by_ref().take(5) {
        pair.a.conn.request(now, block).unwrap();
    }
    assert_eq!(
        pair.a.conn.request(now, blocks.next().unwrap()),
        Err(RequestError::QueueFull)
    );

    // An id we never assigned is ignored.
    let mut raw = BytesMut::new();
    Message::Extended {
        id: 77,
        payload: Bytes::new(),
    }
    .encode(&mut raw);
    pair.a.take_events();
    pair.a.conn.handle_received(now, &mut raw);
    assert!(pair.a.conn.is_established());
}

#[test]
fn bep52_and_port_messages_pass_through() {
    let mut pair = Pair::leecher_seeder(BOTH);
    let now = pair.now;
    let request = crate::wire::HashRequest {
        pieces_root: crate::Sha256Hash([1; 32]),
        base_layer: 0,
        index: 0,
        length: 2,
        proof_layers: 0,
    };
    pair.a.conn.send_hash_request(now, request);
    pair.a.conn.send_port(now, 6881);
    pair.b.conn.send_hash_reject(now, request);
    pair.b.conn.send_suggest(now, PieceIndex(1));
    pair.a.take_events();
    pair.b.take_events();
    pair.pump();
    assert_eq!(
        pair.b.take_events(),
        [PeerEvent::HashRequest(request), PeerEvent::Port(6881)]
    );
    assert_eq!(
        pair.a.take_events(),
        [
            PeerEvent::HashReject(request),
            PeerEvent::Suggest(PieceIndex(1))
        ]
    );
}

// ----- misbehaviour, from a scripted peer -----

fn handshake_bytes(out: &mut BytesMut, reserved: ReservedBits, info_hash: InfoHashV1, id: PeerId) {
    Handshake {
        reserved,
        info_hash,
        peer_id: id,
    }
    .encode(out);
}

/// An incoming connection for a seeder, fed a scripted peer's handshake (with
/// `reserved`) and then `messages`; returns it with its events.
fn scripted(
    reserved: ReservedBits,
    ours: Availability,
    messages: &[Message],
) -> (PeerConnection, Vec<PeerEvent>) {
    let now = Instant::ZERO;
    let mut conn = PeerConnection::incoming(now, params(SEEDER_ID, ours, BOTH));
    let mut buf = BytesMut::new();
    handshake_bytes(&mut buf, reserved, V1, LEECHER_ID);
    for message in messages {
        message.encode(&mut buf);
    }
    conn.handle_received(now, &mut buf);
    let events = std::iter::from_fn(|| conn.poll_event()).collect();
    (conn, events)
}

fn request(piece: u32, offset: u32, length: u32) -> BlockRequest {
    BlockRequest {
        piece: PieceIndex(piece),
        offset,
        length,
    }
}

#[track_caller]
fn assert_closes(reserved: ReservedBits, messages: &[Message], expected: CloseReason) {
    let (conn, events) = scripted(reserved, Availability::All, messages);
    assert_eq!(closed_with(&events), Some(&expected), "{events:?}");
    assert!(conn.is_closed());
    assert!(expected.is_misbehaviour());
}

#[test]
fn protocol_violations_close() {
    use crate::wire::MessageId as Id;
    let v = |violation: Violation| CloseReason::Violation(violation);
    assert_closes(
        BOTH,
        &[Message::Piece(block_for(&request(0, 0, BLOCK_SIZE)))],
        CloseReason::UnrequestedPiece(request(0, 0, BLOCK_SIZE)),
    );
    assert_closes(
        BOTH,
        &[Message::Bitfield(Bytes::from_static(&[0xff]))],
        v(Violation::BitfieldSpareBits),
    );
    assert_closes(
        BOTH,
        &[Message::Bitfield(Bytes::from_static(&[0xf8, 0]))],
        v(Violation::BitfieldLength {
            expected: 1,
            actual: 2,
        }),
    );
    assert_closes(
        BOTH,
        &[
            Message::Have(PieceIndex(1)),
            Message::Bitfield(Bytes::from_static(&[0x80])),
        ],
        v(Violation::AvailabilityNotFirst(Id::Bitfield)),
    );
    assert_closes(
        BOTH,
        &[Message::HaveNone, Message::HaveAll],
        v(Violation::AvailabilityNotFirst(Id::HaveAll)),
    );
    assert_closes(
        ReservedBits::NONE,
        &[Message::HaveAll],
        v(Violation::NotNegotiated(Id::HaveAll)),
    );
    assert_closes(
        ReservedBits::NONE,
        &[Message::Reject(request(0, 0, 10))],
        v(Violation::NotNegotiated(Id::Reject)),
    );
    assert_closes(
        ReservedBits::FAST,
        &[Message::Extended {
            id: 0,
            payload: Bytes::from_static(b"de"),
        }],
        v(Violation::NotNegotiated(Id::Extended)),
    );
    assert_closes(
        BOTH,
        &[Message::Have(PieceIndex(5))],
        v(Violation::PieceOutOfRange {
            message: Id::Have,
            piece: PieceIndex(5),
        }),
    );
    assert_closes(
        BOTH,
        &[Message::AllowedFast(PieceIndex(99))],
        v(Violation::PieceOutOfRange {
            message: Id::AllowedFast,
            piece: PieceIndex(99),
        }),
    );
    for bad in [
        request(0, 0, BLOCK_SIZE + 1),
        request(4, 16384, 16384),
        request(5, 0, 1),
        request(0, 0, 0),
    ] {
        assert_closes(
            BOTH,
            &[Message::Request(bad)],
            v(Violation::InvalidRequest(bad)),
        );
    }
    assert!(matches!(
        scripted(
            BOTH,
            Availability::All,
            &[Message::Extended {
                id: 0,
                payload: Bytes::from_static(b"li1ee"),
            }]
        )
        .0
        .close_reason(),
        Some(CloseReason::Extension(_))
    ));
}

#[test]
fn oversized_and_garbled_input_closes() {
    let now = Instant::ZERO;
    let mut conn = PeerConnection::incoming(now, params(SEEDER_ID, Availability::All, BOTH));
    let mut buf = BytesMut::from(&b"GET /announce HTTP/1.1\r\n"[..]);
    conn.handle_received(now, &mut buf);
    assert!(matches!(conn.close_reason(), Some(CloseReason::Wire(_))));

    let (mut conn, _) = scripted(BOTH, Availability::All, &[]);
    let mut buf = BytesMut::from(&[0x00u8, 0x10, 0x00, 0x00][..]);
    conn.handle_received(now, &mut buf);
    assert!(matches!(
        conn.close_reason(),
        Some(CloseReason::Wire(
            crate::wire::WireError::MessageTooLong { .. }
        ))
    ));
}

#[test]
fn request_flood_closes() {
    // Unchoked: more than 500 outstanding requests.
    let now = Instant::ZERO;
    let (mut conn, _) = scripted(BOTH, Availability::All, &[Message::Interested]);
    conn.set_choking(now, false);
    let g = geometry();
    let blocks: Vec<_> = all_blocks(&g).into_iter().collect();
    let mut buf = BytesMut::new();
    // Distinct requests: every block, at every offset that keeps it inside its piece.
    let mut sent = 0;
    'outer: for shift in 0..200 {
        for block in &blocks {
            let r = BlockRequest {
                offset: block.offset + shift,
                length: block.length - shift.min(block.length - 1),
                ..*block
            };
            Message::Request(r).encode(&mut buf);
            sent += 1;
            if sent == 501 {
                break 'outer;
            }
        }
    }
    conn.handle_received(now, &mut buf);
    assert_eq!(
        conn.close_reason(),
        Some(&CloseReason::RequestFlood { limit: 500 })
    );
    assert_eq!(conn.queued_uploads().count(), 0, "cleared on close");

    // Choked, with fast: rejected one by one, then closed past the limit.
    let (mut conn, _) = scripted(BOTH, Availability::All, &[]);
    while conn.poll_transmit().is_some() {}
    let mut buf = BytesMut::new();
    for _ in 0..500 {
        Message::Request(blocks[0]).encode(&mut buf);
    }
    conn.handle_received(now, &mut buf);
    assert!(conn.is_established());
    let mut rejects = BytesMut::new();
    while let Some(chunk) = conn.poll_transmit() {
        rejects.extend_from_slice(&chunk);
    }
    let mut decoder = crate::wire::MessageDecoder::new();
    let mut count = 0;
    while let Ok(Some(message)) = decoder.decode(&mut rejects) {
        if message == Message::Reject(blocks[0]) {
            count += 1;
        }
    }
    assert_eq!(count, 500);
    Message::Request(blocks[0]).encode(&mut buf);
    conn.handle_received(now, &mut buf);
    assert_eq!(
        conn.close_reason(),
        Some(&CloseReason::RequestFlood { limit: 500 })
    );
}

#[test]
fn duplicate_upload_requests_are_ignored_and_reject_request_answers() {
    let now = Instant::ZERO;
    let (mut conn, _) = scripted(BOTH, Availability::All, &[]);
    conn.set_choking(now, false);
    let r = request(1, 0, BLOCK_SIZE);
    let mut buf = BytesMut::new();
    Message::Request(r).encode(&mut buf);
    Message::Request(r).encode(&mut buf);
    conn.handle_received(now, &mut buf);
    let events: Vec<_> = std::iter::from_fn(|| conn.poll_event()).collect();
    assert_eq!(events, [PeerEvent::UploadRequested(r)]);
    while conn.poll_transmit().is_some() {}
    assert!(conn.reject_request(now, r));
    assert!(!conn.reject_request(now, r));
    assert_eq!(conn.poll_transmit(), Some(Message::Reject(r).to_bytes()));
}

#[test]
fn close_returns_outstanding_requests_last() {
    let mut pair = Pair::leecher_seeder(BOTH);
    pair.a.to_request = all_blocks(&geometry());
    pair.start_download();
    let outstanding: Vec<_> = pair.a.conn.outstanding_requests().copied().collect();
    pair.a.take_events();
    let now = pair.now;
    pair.a.conn.close(now, CloseReason::Disconnected);
    pair.a.drain(now);
    let a = pair.a.take_events();
    assert_eq!(
        returned(&a),
        outstanding
            .iter()
            .map(|r| (*r, ReturnReason::Closed))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        a.last(),
        Some(&PeerEvent::Closed(CloseReason::Disconnected))
    );
    assert_eq!(pair.a.conn.poll_transmit(), None);
    assert_eq!(pair.a.conn.poll_timeout(), None);
    // Nothing more happens.
    pair.a.conn.close(now, CloseReason::Local("again"));
    let mut buf = BytesMut::from(&[0u8, 0, 0, 0][..]);
    pair.a.conn.handle_received(now, &mut buf);
    assert_eq!(buf.len(), 4);
    assert_eq!(pair.a.conn.poll_event(), None);
}

#[test]
fn without_metadata_everything_passes_unchecked() {
    let now = Instant::ZERO;
    let mut conn = PeerConnection::incoming(
        now,
        PeerParams {
            config: PeerConfig {
                reserved: BOTH,
                ..PeerConfig::default()
            },
            ..PeerParams::new(InfoHashes::v1(V1), SEEDER_ID)
        },
    );
    let mut buf = BytesMut::new();
    handshake_bytes(&mut buf, BOTH, V1, LEECHER_ID);
    Message::Bitfield(Bytes::from_static(&[0xff; 40])).encode(&mut buf);
    Message::Have(PieceIndex(100_000)).encode(&mut buf);
    Message::Request(request(3, 0, BLOCK_SIZE)).encode(&mut buf);
    conn.handle_received(now, &mut buf);
    assert!(conn.is_established());
    let events: Vec<_> = std::iter::from_fn(|| conn.poll_event()).collect();
    assert_eq!(
        events[1],
        PeerEvent::Bitfield(Bytes::from_static(&[0xff; 40]))
    );
    assert_eq!(events[2], PeerEvent::Have(PieceIndex(100_000)));
    assert_eq!(events.len(), 3, "the request is rejected, not passed on");
    conn.set_interested(now, true);
    assert_eq!(
        conn.request(now, request(0, 0, BLOCK_SIZE)),
        Err(RequestError::InvalidBlock)
    );
    // Once the metadata is in, checks apply.
    conn.set_geometry(geometry());
    let mut buf = BytesMut::new();
    Message::Have(PieceIndex(100_000)).encode(&mut buf);
    conn.handle_received(now, &mut buf);
    assert!(conn.is_closed());
}

// ----- property tests -----

/// A valid stream a peer could send to a seeder: handshake, then messages.
fn arb_stream() -> impl Strategy<Value = Vec<u8>> {
    let g = geometry();
    let blocks: Vec<_> = all_blocks(&g).into_iter().collect();
    let message = prop_oneof![
        Just(Message::KeepAlive),
        Just(Message::Interested),
        Just(Message::NotInterested),
        (0..g.num_pieces()).prop_map(|p| Message::Have(PieceIndex(p))),
        proptest::sample::select(blocks.clone()).prop_map(Message::Request),
        proptest::sample::select(blocks).prop_map(Message::Cancel),
        any::<u16>().prop_map(Message::Port),
        Just(Message::Extended {
            id: 0,
            payload: Bytes::from_static(b"d1:md6:ut_pexi2eee")
        }),
        Just(Message::Extended {
            id: 3,
            payload: Bytes::from_static(b"d8:msg_typei0e5:piecei0ee")
        }),
    ];
    (
        proptest::collection::vec(message, 0..40),
        prop_oneof![
            Just(Message::HaveNone),
            Just(Message::HaveAll),
            Just(Message::Bitfield(Bytes::from_static(&[0xa8])))
        ],
    )
        .prop_map(|(messages, availability)| {
            let mut buf = BytesMut::new();
            handshake_bytes(&mut buf, BOTH, V1, LEECHER_ID);
            availability.encode(&mut buf);
            for message in messages {
                message.encode(&mut buf);
            }
            buf.to_vec()
        })
}

/// Feeds `stream` to an unchoking seeder in pieces cut at `cuts`; returns its events and
/// everything it sent.
fn feed(stream: &[u8], cuts: &[usize]) -> (Vec<PeerEvent>, Vec<u8>) {
    let now = Instant::ZERO;
    let mut conn = PeerConnection::incoming(now, params(SEEDER_ID, Availability::All, BOTH));
    conn.set_choking(now, false);
    let mut inbox = BytesMut::new();
    let mut start = 0;
    let mut events = Vec::new();
    let mut sent = Vec::new();
    let mut cuts: Vec<_> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(stream.len());
    for cut in cuts {
        inbox.extend_from_slice(&stream[start..cut.max(start)]);
        start = cut.max(start);
        conn.handle_received(now, &mut inbox);
        events.extend(std::iter::from_fn(|| conn.poll_event()));
        while let Some(chunk) = conn.poll_transmit() {
            sent.extend_from_slice(&chunk);
        }
    }
    (events, sent)
}

proptest! {
    #[test]
    fn random_splits_give_the_same_events(
        stream in arb_stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let (whole_events, whole_sent) = feed(&stream, &[]);
        prop_assert!(whole_events.iter().all(|e| !matches!(e, PeerEvent::Closed(_))), "{:?}", whole_events);
        let (events, sent) = feed(&stream, &cuts);
        prop_assert_eq!(events, whole_events);
        prop_assert_eq!(sent, whole_sent);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        before_handshake in any::<bool>(),
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        advance in 0u64..400,
    ) {
        let now = Instant::ZERO;
        let mut conn = if before_handshake {
            PeerConnection::incoming(now, params(SEEDER_ID, Availability::All, BOTH))
        } else {
            scripted(BOTH, Availability::All, &[Message::Unchoke]).0
        };
        conn.set_choking(now, false);
        conn.set_interested(now, true);
        let mut inbox = BytesMut::new();
        for chunk in chunks {
            inbox.extend_from_slice(&chunk);
            conn.handle_received(now, &mut inbox);
            while conn.poll_event().is_some() {}
            while conn.poll_transmit().is_some() {}
        }
        conn.handle_timeout(Instant::from_secs(advance));
        let _ = conn.request(now, request(0, 0, BLOCK_SIZE));
        while conn.poll_event().is_some() {}
    }

    #[test]
    fn arbitrary_messages_never_panic(
        messages in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..20)), 0..30),
    ) {
        // Well-framed messages with arbitrary ids and payloads.
        let now = Instant::ZERO;
        let (mut conn, _) = scripted(BOTH, Availability::All, &[]);
        let mut buf = BytesMut::new();
        for (id, payload) in messages {
            buf.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
            buf.extend_from_slice(&[id]);
            buf.extend_from_slice(&payload);
        }
        conn.handle_received(now, &mut buf);
        while conn.poll_event().is_some() {}
    }
}
