//! The connection state machine.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use core::time::Duration;

use super::bits;
use super::pipeline::Pipeline;
use super::rate::{PeerStats, RateEstimator};
use super::transmit::TransmitQueue;
use super::{
    Availability, CloseReason, PeerConfig, PeerEvent, PeerParams, RequestError, ReturnReason,
    SendExtendedError, TorrentGeometry, Violation,
};
use crate::peer_id::PeerId;
use crate::time::Instant;
use crate::wire::extension::ExtendedHandshake;
use crate::wire::{
    Block, BlockRequest, Handshake, HashRequest, Hashes, Message, MessageDecoder, MessageId,
    ReservedBits,
};
use crate::{InfoHashV1, InfoHashes, PieceIndex};

/// How often rates, the pipeline depth and request timeouts are updated while data moves.
pub const TICK_INTERVAL: Duration = Duration::from_secs(1);

/// The `reqq` assumed for a peer that does not announce one.
pub const DEFAULT_PEER_REQQ: usize = 250;

/// Who opened the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We connected to the peer; we send our handshake first.
    Outgoing,
    /// The peer connected to us; we answer its handshake.
    Incoming,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the peer's handshake.
    Handshaking,
    /// Handshakes exchanged: messages flow.
    Established,
    /// Closed: no more input or output.
    Closed,
}

/// What we have, until the handshake is done and it has been announced.
#[derive(Clone, Debug)]
enum LocalHave {
    None,
    All,
    Bits(BytesMut),
}

/// What the peer told us about itself in its handshake.
#[derive(Clone, Copy, Debug)]
struct Remote {
    peer_id: PeerId,
    reserved: ReservedBits,
}

/// One peer connection's protocol state machine: handshake, choke and interest on both
/// sides, the request pipeline, the upload queue, timeouts, BEP6 and BEP10 negotiation.
///
/// It does no I/O and reads no clock (the sans-IO style of quinn-proto's `Connection`).
/// The driver feeds it received bytes ([`handle_received`](Self::handle_received)) and
/// timer expiries ([`handle_timeout`](Self::handle_timeout)), the owner (the torrent)
/// gives it commands ([`request`](Self::request), [`set_choking`](Self::set_choking),
/// [`serve_block`](Self::serve_block), …), and after each of these the outputs are drained:
/// bytes to write ([`poll_transmit`](Self::poll_transmit)), events for the owner
/// ([`poll_event`](Self::poll_event)) and when to call back
/// ([`poll_timeout`](Self::poll_timeout)). Every input carries the current [`Instant`].
///
/// ```
/// use bytes::BytesMut;
/// use fxtor_proto::peer::{Availability, PeerConnection, PeerEvent, PeerParams, TorrentGeometry};
/// use fxtor_proto::peer_id::PeerId;
/// use fxtor_proto::time::Instant;
/// use fxtor_proto::{InfoHashV1, InfoHashes, PieceIndex};
///
/// let info_hashes = InfoHashes::v1(InfoHashV1([0xab; 20]));
/// let geometry = TorrentGeometry::new(32768, 32768).unwrap();
/// let params = |id: u8, availability| PeerParams {
///     geometry: Some(geometry.clone()),
///     availability,
///     ..PeerParams::new(info_hashes, PeerId([id; 20]))
/// };
/// let now = Instant::ZERO;
/// let mut leecher = PeerConnection::outgoing(now, info_hashes.best_v1_identifier(), params(1, Availability::None));
/// let mut seeder = PeerConnection::incoming(now, params(2, Availability::All));
///
/// // Carries everything one side has to send into the other.
/// fn pump(from: &mut PeerConnection, to: &mut PeerConnection, now: Instant) {
///     let mut wire = BytesMut::new();
///     while let Some(chunk) = from.poll_transmit() {
///         wire.extend_from_slice(&chunk);
///     }
///     to.handle_received(now, &mut wire);
/// }
///
/// pump(&mut leecher, &mut seeder, now); // the leecher's handshake
/// pump(&mut seeder, &mut leecher, now); // the seeder's handshake and `have all`
/// assert!(matches!(leecher.poll_event(), Some(PeerEvent::HandshakeDone { .. })));
/// assert_eq!(leecher.poll_event(), Some(PeerEvent::HaveAll));
///
/// leecher.set_interested(now, true);
/// pump(&mut leecher, &mut seeder, now);
/// seeder.set_choking(now, false);
/// pump(&mut seeder, &mut leecher, now);
/// while let Some(event) = leecher.poll_event() {
///     if let PeerEvent::WantBlocks { count, .. } = event {
///         assert!(count >= 2);
///         for block in geometry.blocks(PieceIndex(0)) {
///             leecher.request(now, block).unwrap();
///         }
///     }
/// }
/// pump(&mut leecher, &mut seeder, now);
///
/// // The seeder's owner reads each requested block and serves it.
/// while let Some(event) = seeder.poll_event() {
///     if let PeerEvent::UploadRequested(request) = event {
///         let data = vec![7u8; request.length as usize].into();
///         let block = fxtor_proto::wire::Block { piece: request.piece, offset: request.offset, data };
///         assert!(seeder.serve_block(now, block));
///     }
/// }
/// pump(&mut seeder, &mut leecher, now);
/// let received = std::iter::from_fn(|| leecher.poll_event())
///     .filter(|event| matches!(event, PeerEvent::BlockReceived(_)))
///     .count();
/// assert_eq!(received, 2);
/// assert_eq!(leecher.stats().payload_downloaded, 32768);
/// ```
#[derive(Debug)]
pub struct PeerConnection {
    config: PeerConfig,
    direction: Direction,
    state: State,
    info_hashes: InfoHashes,
    /// The info-hash on the wire: the one we send (outgoing) or the one the peer sent
    /// (incoming, once its handshake is in).
    info_hash: Option<InfoHashV1>,
    local_peer_id: PeerId,
    geometry: Option<TorrentGeometry>,
    local_have: LocalHave,
    local_extensions: ExtendedHandshake,
    decoder: MessageDecoder,

    remote: Option<Remote>,
    /// The extensions both sides announced.
    extensions: ReservedBits,
    remote_extensions: Option<ExtendedHandshake>,
    peer_reqq: usize,

    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    /// Whether the peer has said what it has (bitfield, have all/none, or a have).
    remote_availability_known: bool,

    pipeline: Pipeline,
    /// Pieces the peer lets us download while it chokes us.
    allowed_fast: Vec<PieceIndex>,
    /// Pieces we let the peer download while we choke it.
    granted_fast: Vec<PieceIndex>,
    /// Requests from the peer handed to the owner and not answered yet.
    upload_queue: VecDeque<BlockRequest>,
    /// Requests the peer sent while we choked it, since the last choke.
    requests_while_choked: usize,

    transmit: TransmitQueue,
    events: VecDeque<PeerEvent>,
    /// Something changed that may open room in the pipeline.
    pipeline_changed: bool,

    created_at: Instant,
    last_received: Instant,
    last_sent: Instant,
    next_tick: Option<Instant>,
    download_rate: RateEstimator,
    upload_rate: RateEstimator,
    stats: PeerStats,
    close_reason: Option<CloseReason>,
}

impl PeerConnection {
    /// A connection we opened: our handshake, with `info_hash` (usually
    /// [`InfoHashes::best_v1_identifier`]; a hybrid torrent may use its truncated v2 hash),
    /// is queued at once, and the peer must answer with the same info-hash.
    pub fn outgoing(now: Instant, info_hash: InfoHashV1, params: PeerParams) -> Self {
        let mut connection = Self::new(now, Direction::Outgoing, params);
        connection.info_hash = Some(info_hash);
        connection.send_handshake(now, info_hash);
        connection
    }

    /// A connection the peer opened. The driver routed it here by
    /// [`Handshake::peek_info_hash`]; the handshake must name one of the torrent's
    /// identifiers (for a hybrid torrent, its v1 hash or its truncated v2 hash), and ours
    /// answers with the same one.
    pub fn incoming(now: Instant, params: PeerParams) -> Self {
        Self::new(now, Direction::Incoming, params)
    }

    fn new(now: Instant, direction: Direction, params: PeerParams) -> Self {
        let PeerParams {
            info_hashes,
            local_peer_id,
            geometry,
            availability,
            mut extended_handshake,
            config,
        } = params;
        if extended_handshake.max_requests.is_none() {
            extended_handshake.max_requests = u32::try_from(config.max_upload_queue).ok();
        }
        let local_have = match availability {
            Availability::None => LocalHave::None,
            Availability::All => LocalHave::All,
            Availability::Bitfield(bytes) => {
                let mut bits = BytesMut::from(&bytes[..]);
                if let Some(g) = &geometry {
                    bits::normalize(&mut bits, g.num_pieces());
                }
                LocalHave::Bits(bits)
            }
        };
        let decoder = decoder_for(geometry.as_ref());
        Self {
            pipeline: Pipeline::new(&config),
            config,
            direction,
            state: State::Handshaking,
            info_hashes,
            info_hash: None,
            local_peer_id,
            geometry,
            local_have,
            local_extensions: extended_handshake,
            decoder,
            remote: None,
            extensions: ReservedBits::NONE,
            remote_extensions: None,
            peer_reqq: DEFAULT_PEER_REQQ,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            remote_availability_known: false,
            allowed_fast: Vec::new(),
            granted_fast: Vec::new(),
            upload_queue: VecDeque::new(),
            requests_while_choked: 0,
            transmit: TransmitQueue::default(),
            events: VecDeque::new(),
            pipeline_changed: false,
            created_at: now,
            last_received: now,
            last_sent: now,
            next_tick: None,
            download_rate: RateEstimator::new(now),
            upload_rate: RateEstimator::new(now),
            stats: PeerStats::default(),
            close_reason: None,
        }
    }

    // ----- inputs -----

    /// Takes every whole handshake or message off the front of `buf`, the bytes received
    /// from the peer, and acts on them. Whatever is left is the start of a message: keep it
    /// and append the next bytes received to it. Piece data is not copied: the blocks
    /// handed out share `buf`'s memory.
    ///
    /// Call it whenever bytes arrive; any call with bytes in `buf` counts as hearing from
    /// the peer. After the connection is closed it does nothing.
    pub fn handle_received(&mut self, now: Instant, buf: &mut BytesMut) {
        if self.state == State::Closed || buf.is_empty() {
            return;
        }
        self.last_received = now;
        if self.state == State::Handshaking {
            match Handshake::decode(buf) {
                Ok(Some(handshake)) => {
                    self.stats.protocol_downloaded += Handshake::LEN as u64;
                    if let Err(reason) = self.on_handshake(now, handshake) {
                        self.close(now, reason);
                    }
                }
                Ok(None) => {}
                Err(error) => self.close(now, error.into()),
            }
        }
        while self.state == State::Established {
            let before = buf.len();
            let message = match self.decoder.decode(buf) {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(error) => {
                    self.close(now, error.into());
                    break;
                }
            };
            let consumed = (before - buf.len()) as u64;
            let payload = match &message {
                Message::Piece(block) => block.data.len() as u64,
                _ => 0,
            };
            self.stats.protocol_downloaded += consumed - payload;
            self.stats.payload_downloaded += payload;
            if payload > 0 {
                self.download_rate.add(payload);
                self.ensure_ticking(now);
            }
            if let Err(reason) = self.on_message(now, message) {
                self.close(now, reason);
            }
        }
    }

    /// Acts on the passage of time: handshake and inactivity timeouts, keep-alives, and
    /// the once-a-second update of rates, pipeline depth and request timeouts. Call it when
    /// the instant from [`poll_timeout`](Self::poll_timeout) is reached; calling it at
    /// other times is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Closed => {}
            State::Handshaking => {
                if now >= self.created_at + self.config.handshake_timeout {
                    self.close(now, CloseReason::HandshakeTimeout);
                }
            }
            State::Established => {
                if now >= self.last_received + self.config.inactivity_timeout {
                    self.close(now, CloseReason::InactivityTimeout);
                    return;
                }
                if self.next_tick.is_some_and(|tick| now >= tick) {
                    self.tick(now);
                }
                if now >= self.last_sent + self.config.keep_alive_interval {
                    self.send(now, &Message::KeepAlive);
                }
            }
        }
    }

    // ----- outputs -----

    /// The next bytes to write to the peer, in order. A block's data comes as a chunk of
    /// its own, sharing the memory it was served in; gather several chunks for a vectored
    /// write.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop()
    }

    /// How many bytes wait in [`poll_transmit`](Self::poll_transmit): for the owner to
    /// hold back serving blocks while the socket is slow.
    pub fn pending_transmit(&self) -> usize {
        self.transmit.len()
    }

    /// The next event for the owner. After events that opened room in the request
    /// pipeline, the last one is a [`PeerEvent::WantBlocks`].
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        if std::mem::take(&mut self.pipeline_changed) {
            let count = self.request_slots();
            if count > 0 {
                return Some(PeerEvent::WantBlocks {
                    count,
                    allowed_fast_only: self.peer_choking,
                });
            }
        }
        None
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called; `None` once
    /// closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Closed => None,
            State::Handshaking => Some(self.created_at + self.config.handshake_timeout),
            State::Established => {
                let inactivity = self.last_received + self.config.inactivity_timeout;
                let keep_alive = self.last_sent + self.config.keep_alive_interval;
                let earliest = inactivity.min(keep_alive);
                Some(self.next_tick.map_or(earliest, |tick| tick.min(earliest)))
            }
        }
    }

    // ----- commands: downloading -----

    /// Tells the peer whether we want its pieces. Before the handshake completes, the
    /// choice is remembered and announced with it.
    pub fn set_interested(&mut self, now: Instant, interested: bool) {
        if self.state == State::Closed || self.am_interested == interested {
            return;
        }
        self.am_interested = interested;
        self.pipeline_changed = true;
        if self.state == State::Established {
            let message = if interested {
                Message::Interested
            } else {
                Message::NotInterested
            };
            self.send(now, &message);
        }
    }

    /// How many more blocks the pipeline wants now: its target depth (which follows the
    /// download rate) less what is outstanding. Zero unless we are interested and the peer
    /// unchokes us or has given us allowed-fast pieces.
    pub fn request_slots(&self) -> usize {
        let can_request = self.state == State::Established
            && self.am_interested
            && (!self.peer_choking || !self.allowed_fast.is_empty());
        if !can_request {
            return 0;
        }
        self.target_queue_depth()
            .saturating_sub(self.pipeline.len())
    }

    /// How many requests the pipeline aims to keep outstanding: the download rate times
    /// [`PeerConfig::request_queue_time`] in blocks, within the configured bounds and the
    /// peer's `reqq`; one while the peer is snubbed.
    pub fn target_queue_depth(&self) -> usize {
        self.pipeline.target(&self.config, self.peer_reqq)
    }

    /// Sends a request for a block. Requests need interest, and while the peer chokes us
    /// only blocks of its allowed-fast pieces may be requested.
    pub fn request(&mut self, now: Instant, request: BlockRequest) -> Result<(), RequestError> {
        if self.state != State::Established {
            return Err(RequestError::NotConnected);
        }
        let valid = self
            .geometry
            .as_ref()
            .is_some_and(|g| g.is_valid_request(&request));
        if !valid {
            return Err(RequestError::InvalidBlock);
        }
        if !self.am_interested {
            return Err(RequestError::NotInterested);
        }
        if self.peer_choking && !self.allowed_fast.contains(&request.piece) {
            return Err(RequestError::Choked);
        }
        if self.pipeline.contains(&request) {
            return Err(RequestError::AlreadyRequested);
        }
        if self.pipeline.len() >= Pipeline::limit(&self.config, self.peer_reqq) {
            return Err(RequestError::QueueFull);
        }
        self.pipeline.insert(request, now);
        self.send(now, &Message::Request(request));
        self.ensure_ticking(now);
        Ok(())
    }

    /// Withdraws an outstanding request (its block came from elsewhere, or it timed out).
    /// A block still on its way is accepted and dropped. Returns whether the request was
    /// outstanding.
    pub fn cancel(&mut self, now: Instant, request: BlockRequest) -> bool {
        if self.state != State::Established || !self.pipeline.cancel(&request, now) {
            return false;
        }
        self.send(now, &Message::Cancel(request));
        self.pipeline_changed = true;
        self.ensure_ticking(now);
        true
    }

    // ----- commands: uploading -----

    /// Chokes or unchokes the peer. Choking drops the requests it has queued, except those
    /// for pieces we allowed fast: each comes back as [`PeerEvent::UploadCancelled`], and
    /// with the fast extension the peer gets a `reject` for it (after the `choke`, so it
    /// does not request it again). Before the handshake completes, the choice is
    /// remembered and announced with it.
    pub fn set_choking(&mut self, now: Instant, choking: bool) {
        if self.state == State::Closed || self.am_choking == choking {
            return;
        }
        self.am_choking = choking;
        if self.state != State::Established {
            return;
        }
        if !choking {
            self.send(now, &Message::Unchoke);
            return;
        }
        self.send(now, &Message::Choke);
        self.requests_while_choked = 0;
        let queued = std::mem::take(&mut self.upload_queue);
        for request in queued {
            if self.granted_fast.contains(&request.piece) {
                self.upload_queue.push_back(request);
                continue;
            }
            if self.fast() {
                self.send(now, &Message::Reject(request));
            }
            self.events.push_back(PeerEvent::UploadCancelled(request));
        }
    }

    /// Sends a block the peer asked for ([`PeerEvent::UploadRequested`]). Returns `false`,
    /// sending nothing, if that request is no longer queued: the peer cancelled it, we
    /// choked it, or the data does not match it.
    pub fn serve_block(&mut self, now: Instant, block: Block) -> bool {
        if self.state != State::Established || !self.take_upload_request(&block.request()) {
            return false;
        }
        let len = block.data.len() as u64;
        self.transmit.push_block(&block);
        self.stats.payload_uploaded += len;
        self.stats.protocol_uploaded += Block::HEADER_LEN as u64;
        self.upload_rate.add(len);
        self.last_sent = now;
        self.ensure_ticking(now);
        true
    }

    /// Refuses a request from the peer (we do not have the piece, or cannot read it): with
    /// the fast extension the peer gets a `reject`; without it the request is dropped
    /// silently, as BEP3 has no other way. Returns whether the request was queued.
    pub fn reject_request(&mut self, now: Instant, request: BlockRequest) -> bool {
        if self.state != State::Established || !self.take_upload_request(&request) {
            return false;
        }
        if self.fast() {
            self.send(now, &Message::Reject(request));
        }
        true
    }

    /// Announces a piece we have verified. Before the handshake completes, the piece is
    /// added to the availability the handshake will announce. Pieces past the torrent's
    /// end are ignored.
    pub fn send_have(&mut self, now: Instant, piece: PieceIndex) {
        if self.geometry.as_ref().is_some_and(|g| !g.contains(piece)) {
            return;
        }
        match self.state {
            State::Closed => {}
            State::Established => self.send(now, &Message::Have(piece)),
            State::Handshaking => match &mut self.local_have {
                LocalHave::All => {}
                LocalHave::Bits(bits) => bits::set(bits, piece),
                LocalHave::None => {
                    let mut bits = BytesMut::zeroed(self.geometry_bitfield_len());
                    bits::set(&mut bits, piece);
                    self.local_have = LocalHave::Bits(bits);
                }
            },
        }
    }

    /// Lets the peer download `piece` while we choke it (BEP6); compute the set with
    /// [`allowed_fast_set`](crate::wire::allowed_fast_set). Ignored without the fast
    /// extension; before the handshake completes, sent with it if the fast extension is
    /// negotiated.
    pub fn send_allowed_fast(&mut self, now: Instant, piece: PieceIndex) {
        if self.state == State::Closed
            || self.granted_fast.contains(&piece)
            || self.geometry.as_ref().is_some_and(|g| !g.contains(piece))
        {
            return;
        }
        match self.state {
            State::Established if self.fast() => {
                self.granted_fast.push(piece);
                self.send(now, &Message::AllowedFast(piece));
            }
            State::Handshaking => self.granted_fast.push(piece),
            _ => {}
        }
    }

    /// Suggests a piece to the peer (BEP6). Ignored unless the connection is established
    /// with the fast extension.
    pub fn send_suggest(&mut self, now: Instant, piece: PieceIndex) {
        if self.state == State::Established && self.fast() {
            self.send(now, &Message::Suggest(piece));
        }
    }

    /// Tells the peer our DHT port (BEP5). Ignored unless the connection is established.
    pub fn send_port(&mut self, now: Instant, port: u16) {
        if self.state == State::Established {
            self.send(now, &Message::Port(port));
        }
    }

    // ----- commands: extensions -----

    /// Sends an extension message to the peer, under the id the peer assigned to the
    /// extension `name` in its extension handshake.
    pub fn send_extended(
        &mut self,
        now: Instant,
        name: &str,
        payload: Bytes,
    ) -> Result<(), SendExtendedError> {
        if self.state != State::Established {
            return Err(SendExtendedError::NotConnected);
        }
        let id = self
            .remote_extensions
            .as_ref()
            .and_then(|hs| hs.extension_id(name))
            .ok_or(SendExtendedError::Unsupported)?;
        self.send(now, &Message::Extended { id, payload });
        Ok(())
    }

    /// Replaces our extension handshake and, if the connection is established with BEP10,
    /// sends it again (to announce `metadata_size` once known, `upload_only`, or a changed
    /// `m`: an id of 0 disables an extension).
    pub fn update_extended_handshake(&mut self, now: Instant, mut handshake: ExtendedHandshake) {
        if handshake.max_requests.is_none() {
            handshake.max_requests = u32::try_from(self.config.max_upload_queue).ok();
        }
        self.local_extensions = handshake;
        if self.state == State::Established
            && self.extensions.contains(ReservedBits::EXTENSION_PROTOCOL)
        {
            self.send_extended_handshake(now);
        }
    }

    /// Sends a BEP52 hash request. Ignored unless the connection is established.
    pub fn send_hash_request(&mut self, now: Instant, request: HashRequest) {
        if self.state == State::Established {
            self.send(now, &Message::HashRequest(request));
        }
    }

    /// Sends BEP52 hashes, answering a hash request. Ignored unless established.
    pub fn send_hashes(&mut self, now: Instant, hashes: Hashes) {
        if self.state == State::Established {
            self.send(now, &Message::Hashes(hashes));
        }
    }

    /// Refuses a BEP52 hash request. Ignored unless established.
    pub fn send_hash_reject(&mut self, now: Instant, request: HashRequest) {
        if self.state == State::Established {
            self.send(now, &Message::HashReject(request));
        }
    }

    // ----- commands: the connection -----

    /// Sets the torrent's geometry once its metadata is known (a magnet download):
    /// from then on piece indices, bitfields and requests are checked against it, and
    /// blocks can be requested.
    pub fn set_geometry(&mut self, geometry: TorrentGeometry) {
        self.decoder = decoder_for(Some(&geometry));
        if let LocalHave::Bits(bits) = &mut self.local_have {
            bits::normalize(bits, geometry.num_pieces());
        }
        self.geometry = Some(geometry);
    }

    /// Closes the connection: every outstanding request comes back as a
    /// [`PeerEvent::RequestReturned`], then [`PeerEvent::Closed`] is the last event.
    /// Nothing more is sent; bytes not yet taken from
    /// [`poll_transmit`](Self::poll_transmit) are dropped. The driver also reports the
    /// end of the transport this way, with [`CloseReason::Disconnected`].
    pub fn close(&mut self, _now: Instant, reason: CloseReason) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        for request in self.pipeline.drain() {
            self.events.push_back(PeerEvent::RequestReturned {
                request,
                reason: ReturnReason::Closed,
            });
        }
        self.upload_queue.clear();
        self.transmit.clear();
        self.pipeline_changed = false;
        self.next_tick = None;
        self.close_reason = Some(reason.clone());
        self.events.push_back(PeerEvent::Closed(reason));
    }

    // ----- state -----

    /// Who opened the connection.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Whether both handshakes have been exchanged and the connection is not closed.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Why the connection closed, once it has.
    pub fn close_reason(&self) -> Option<&CloseReason> {
        self.close_reason.as_ref()
    }

    /// The info-hash the connection runs under, once known.
    pub fn info_hash(&self) -> Option<InfoHashV1> {
        self.info_hash
    }

    /// The peer's id, once its handshake is in.
    pub fn peer_id(&self) -> Option<PeerId> {
        self.remote.map(|r| r.peer_id)
    }

    /// The reserved bits of the peer's handshake, once it is in.
    pub fn remote_reserved(&self) -> Option<ReservedBits> {
        self.remote.map(|r| r.reserved)
    }

    /// The extensions in use: announced by both sides.
    pub fn extensions(&self) -> ReservedBits {
        self.extensions
    }

    /// The peer's extension handshake, merged over every one it sent.
    pub fn remote_extensions(&self) -> Option<&ExtendedHandshake> {
        self.remote_extensions.as_ref()
    }

    /// Whether we choke the peer.
    pub fn am_choking(&self) -> bool {
        self.am_choking
    }

    /// Whether we are interested in the peer's pieces.
    pub fn am_interested(&self) -> bool {
        self.am_interested
    }

    /// Whether the peer chokes us.
    pub fn peer_choking(&self) -> bool {
        self.peer_choking
    }

    /// Whether the peer is interested in our pieces.
    pub fn peer_interested(&self) -> bool {
        self.peer_interested
    }

    /// Whether the peer is snubbed: requests outstanding and no block for
    /// [`PeerConfig::snub_timeout`].
    pub fn is_snubbed(&self) -> bool {
        self.pipeline.is_snubbed()
    }

    /// The requests outstanding, oldest first.
    pub fn outstanding_requests(&self) -> impl Iterator<Item = &BlockRequest> {
        self.pipeline.requests()
    }

    /// The requests from the peer waiting for the owner's answer, oldest first.
    pub fn queued_uploads(&self) -> impl Iterator<Item = &BlockRequest> {
        self.upload_queue.iter()
    }

    /// The pieces the peer lets us download while it chokes us.
    pub fn allowed_fast(&self) -> &[PieceIndex] {
        &self.allowed_fast
    }

    /// The pieces we let the peer download while we choke it
    /// ([`send_allowed_fast`](Self::send_allowed_fast)).
    pub fn granted_fast(&self) -> &[PieceIndex] {
        &self.granted_fast
    }

    /// Byte counts and rates.
    pub fn stats(&self) -> PeerStats {
        PeerStats {
            download_rate: self.download_rate.bytes_per_second(),
            upload_rate: self.upload_rate.bytes_per_second(),
            ..self.stats
        }
    }

    /// The configuration the connection was created with.
    pub fn config(&self) -> &PeerConfig {
        &self.config
    }

    // ----- internals -----

    fn fast(&self) -> bool {
        self.extensions.contains(ReservedBits::FAST)
    }

    fn geometry_bitfield_len(&self) -> usize {
        self.geometry
            .as_ref()
            .map_or(0, TorrentGeometry::bitfield_len)
    }

    /// Queues a message and notes when we last sent.
    fn send(&mut self, now: Instant, message: &Message) {
        let len = self.transmit.push_message(message);
        self.stats.protocol_uploaded += len as u64;
        self.last_sent = now;
    }

    fn send_handshake(&mut self, now: Instant, info_hash: InfoHashV1) {
        let handshake = Handshake {
            reserved: self.config.reserved,
            info_hash,
            peer_id: self.local_peer_id,
        };
        let len = self.transmit.push_bytes(|out| handshake.encode(out));
        self.stats.protocol_uploaded += len as u64;
        self.last_sent = now;
    }

    fn send_extended_handshake(&mut self, now: Instant) {
        let payload = self.local_extensions.to_bytes();
        self.send(
            now,
            &Message::Extended {
                id: ExtendedHandshake::ID,
                payload,
            },
        );
    }

    /// Starts the once-a-second tick if it is not running.
    fn ensure_ticking(&mut self, now: Instant) {
        if self.next_tick.is_none() && self.state == State::Established {
            self.next_tick = Some(now + TICK_INTERVAL);
            self.download_rate.restart(now);
            self.upload_rate.restart(now);
        }
    }

    fn tick(&mut self, now: Instant) {
        self.download_rate.tick(now);
        self.upload_rate.tick(now);
        let outcome = self.pipeline.tick(
            now,
            (
                self.download_rate.bytes_per_second(),
                self.download_rate.last_sample(),
            ),
            &self.config,
            self.peer_reqq,
        );
        for request in outcome.timed_out {
            self.events.push_back(PeerEvent::RequestTimedOut(request));
        }
        if outcome.snubbed {
            self.events.push_back(PeerEvent::Snubbed);
        }
        if outcome.grew {
            self.pipeline_changed = true;
        }
        let busy = self.pipeline.needs_tick()
            || !self.download_rate.is_idle()
            || !self.upload_rate.is_idle();
        self.next_tick = busy.then(|| now + TICK_INTERVAL);
    }

    fn take_upload_request(&mut self, request: &BlockRequest) -> bool {
        match self.upload_queue.iter().position(|r| r == request) {
            Some(i) => {
                self.upload_queue.remove(i);
                true
            }
            None => false,
        }
    }

    fn on_handshake(&mut self, now: Instant, handshake: Handshake) -> Result<(), CloseReason> {
        match self.direction {
            Direction::Outgoing => {
                if self.info_hash != Some(handshake.info_hash) {
                    return Err(CloseReason::InfoHashMismatch {
                        received: handshake.info_hash,
                    });
                }
            }
            Direction::Incoming => {
                if !self.info_hashes.matches(&handshake.info_hash) {
                    return Err(CloseReason::InfoHashMismatch {
                        received: handshake.info_hash,
                    });
                }
                self.info_hash = Some(handshake.info_hash);
            }
        }
        if handshake.peer_id == self.local_peer_id {
            return Err(CloseReason::ConnectedToSelf);
        }
        if self.direction == Direction::Incoming {
            self.send_handshake(now, handshake.info_hash);
        }
        self.remote = Some(Remote {
            peer_id: handshake.peer_id,
            reserved: handshake.reserved,
        });
        self.extensions = self.config.reserved.intersection(handshake.reserved);
        self.state = State::Established;
        self.events.push_back(PeerEvent::HandshakeDone {
            peer_id: handshake.peer_id,
            reserved: handshake.reserved,
            info_hash: handshake.info_hash,
        });

        // BEP6: what we have comes first, right after the handshake.
        self.send_availability(now);
        if self.extensions.contains(ReservedBits::EXTENSION_PROTOCOL) {
            self.send_extended_handshake(now);
        }
        if self.fast() {
            for piece in self.granted_fast.clone() {
                self.send(now, &Message::AllowedFast(piece));
            }
        } else {
            self.granted_fast.clear();
        }
        if self.am_interested {
            self.send(now, &Message::Interested);
        }
        if !self.am_choking {
            self.send(now, &Message::Unchoke);
        }
        Ok(())
    }

    /// Sends our bitfield, or `have all` / `have none` with the fast extension.
    fn send_availability(&mut self, now: Instant) {
        let have = std::mem::replace(&mut self.local_have, LocalHave::None);
        let num_pieces = self.geometry.as_ref().map(TorrentGeometry::num_pieces);
        let (all, none, bits) = match have {
            LocalHave::All => match num_pieces {
                Some(n) => (true, n == 0, None),
                // Without metadata we cannot have anything.
                None => (false, true, None),
            },
            LocalHave::None => (false, true, None),
            LocalHave::Bits(bits) => {
                let full = num_pieces.is_some_and(|n| bits == bits::full(n));
                (full, bits::is_empty(&bits), Some(bits))
            }
        };
        let message = match (self.fast(), all, none) {
            (true, true, _) => Message::HaveAll,
            (true, false, true) => Message::HaveNone,
            // BEP3: a peer with no piece may skip the bitfield.
            (false, _, true) => return,
            (false, true, false) => match num_pieces {
                Some(n) => Message::Bitfield(bits::full(n).freeze()),
                None => return,
            },
            (_, false, false) => match bits {
                Some(bits) => Message::Bitfield(bits.freeze()),
                None => return,
            },
        };
        self.send(now, &message);
    }

    /// Checks that an extension the message belongs to was negotiated.
    fn require(&self, extension: ReservedBits, message: MessageId) -> Result<(), CloseReason> {
        if self.extensions.contains(extension) {
            Ok(())
        } else {
            Err(Violation::NotNegotiated(message).into())
        }
    }

    /// Checks a piece index against the torrent, if its geometry is known.
    fn check_piece(&self, message: MessageId, piece: PieceIndex) -> Result<(), CloseReason> {
        match &self.geometry {
            Some(g) if !g.contains(piece) => {
                Err(Violation::PieceOutOfRange { message, piece }.into())
            }
            _ => Ok(()),
        }
    }

    /// Checks that the peer has not said what it has yet, and notes that it now has.
    fn first_availability(&mut self, message: MessageId) -> Result<(), CloseReason> {
        if std::mem::replace(&mut self.remote_availability_known, true) {
            return Err(Violation::AvailabilityNotFirst(message).into());
        }
        Ok(())
    }

    fn on_message(&mut self, now: Instant, message: Message) -> Result<(), CloseReason> {
        match message {
            Message::KeepAlive | Message::Unknown { .. } => {}
            Message::Choke => self.on_choke(now),
            Message::Unchoke => {
                if self.peer_choking {
                    self.peer_choking = false;
                    self.pipeline_changed = true;
                    self.events.push_back(PeerEvent::Unchoked);
                }
            }
            Message::Interested => {
                if !self.peer_interested {
                    self.peer_interested = true;
                    self.events.push_back(PeerEvent::Interested);
                }
            }
            Message::NotInterested => {
                if self.peer_interested {
                    self.peer_interested = false;
                    self.events.push_back(PeerEvent::NotInterested);
                }
            }
            Message::Have(piece) => {
                self.check_piece(MessageId::Have, piece)?;
                self.remote_availability_known = true;
                self.events.push_back(PeerEvent::Have(piece));
            }
            Message::Bitfield(bits) => {
                self.first_availability(MessageId::Bitfield)?;
                if let Some(g) = &self.geometry {
                    if bits.len() != g.bitfield_len() {
                        return Err(Violation::BitfieldLength {
                            expected: g.bitfield_len(),
                            actual: bits.len(),
                        }
                        .into());
                    }
                    if !bits::spare_bits_clear(&bits, g.num_pieces()) {
                        return Err(Violation::BitfieldSpareBits.into());
                    }
                }
                self.events.push_back(PeerEvent::Bitfield(bits));
            }
            Message::HaveAll => {
                self.require(ReservedBits::FAST, MessageId::HaveAll)?;
                self.first_availability(MessageId::HaveAll)?;
                self.events.push_back(PeerEvent::HaveAll);
            }
            Message::HaveNone => {
                self.require(ReservedBits::FAST, MessageId::HaveNone)?;
                self.first_availability(MessageId::HaveNone)?;
                self.events.push_back(PeerEvent::HaveNone);
            }
            Message::Request(request) => self.on_request(now, request)?,
            Message::Piece(block) => self.on_block(now, block)?,
            Message::Cancel(request) => {
                if self.take_upload_request(&request) {
                    // BEP6: every request gets exactly one answer, a cancelled one too.
                    if self.fast() {
                        self.send(now, &Message::Reject(request));
                    }
                    self.events.push_back(PeerEvent::UploadCancelled(request));
                }
            }
            Message::Reject(request) => {
                self.require(ReservedBits::FAST, MessageId::Reject)?;
                if self.pipeline.take(&request) {
                    self.pipeline_changed = true;
                    self.events.push_back(PeerEvent::RequestReturned {
                        request,
                        reason: ReturnReason::Rejected,
                    });
                } else {
                    // The answer to a cancelled request; or to none, which BEP6 says
                    // "SHOULD" close for, but a late reject harms nobody.
                    self.pipeline.take_cancelled(&request);
                }
            }
            Message::Port(port) => self.events.push_back(PeerEvent::Port(port)),
            Message::Suggest(piece) => {
                self.require(ReservedBits::FAST, MessageId::Suggest)?;
                self.check_piece(MessageId::Suggest, piece)?;
                self.events.push_back(PeerEvent::Suggest(piece));
            }
            Message::AllowedFast(piece) => {
                self.require(ReservedBits::FAST, MessageId::AllowedFast)?;
                self.check_piece(MessageId::AllowedFast, piece)?;
                if !self.allowed_fast.contains(&piece)
                    && self.allowed_fast.len() < self.config.max_allowed_fast
                {
                    self.allowed_fast.push(piece);
                    self.pipeline_changed |= self.peer_choking;
                    self.events.push_back(PeerEvent::AllowedFast(piece));
                }
            }
            Message::Extended { id, payload } => {
                self.require(ReservedBits::EXTENSION_PROTOCOL, MessageId::Extended)?;
                if id == ExtendedHandshake::ID {
                    self.on_extended_handshake(&payload)?;
                } else if self.local_extensions.extensions.values().any(|&v| v == id) {
                    self.events.push_back(PeerEvent::Extended { id, payload });
                }
                // An id we never assigned: ignored, as a message we do not understand.
            }
            Message::HashRequest(request) => self.events.push_back(PeerEvent::HashRequest(request)),
            Message::Hashes(hashes) => self.events.push_back(PeerEvent::Hashes(hashes)),
            Message::HashReject(request) => self.events.push_back(PeerEvent::HashReject(request)),
        }
        Ok(())
    }

    fn on_choke(&mut self, now: Instant) {
        if self.peer_choking {
            return;
        }
        self.peer_choking = true;
        self.pipeline_changed = true;
        if !self.fast() {
            // BEP3: a choke drops every request; a block already on its way is still
            // accepted.
            for request in self.pipeline.cancel_all(now) {
                self.events.push_back(PeerEvent::RequestReturned {
                    request,
                    reason: ReturnReason::Choked,
                });
            }
        }
        self.events.push_back(PeerEvent::Choked);
    }

    fn on_request(&mut self, now: Instant, request: BlockRequest) -> Result<(), CloseReason> {
        let Some(geometry) = &self.geometry else {
            // Without metadata we have nothing to give (and said so).
            if self.fast() {
                self.send(now, &Message::Reject(request));
            }
            return Ok(());
        };
        if !geometry.is_valid_request(&request) {
            return Err(Violation::InvalidRequest(request).into());
        }
        let limit = self.config.max_upload_queue;
        if self.am_choking && !self.granted_fast.contains(&request.piece) {
            // Requests sent before our choke arrived are expected; more than a full queue
            // of them is not.
            self.requests_while_choked += 1;
            if self.requests_while_choked > limit {
                return Err(CloseReason::RequestFlood { limit });
            }
            if self.fast() {
                self.send(now, &Message::Reject(request));
            }
            return Ok(());
        }
        if self.upload_queue.contains(&request) {
            return Ok(());
        }
        if self.upload_queue.len() >= limit {
            return Err(CloseReason::RequestFlood { limit });
        }
        self.upload_queue.push_back(request);
        self.events.push_back(PeerEvent::UploadRequested(request));
        Ok(())
    }

    fn on_block(&mut self, now: Instant, block: Block) -> Result<(), CloseReason> {
        let request = block.request();
        if let Some(g) = &self.geometry {
            if !g.is_valid_request(&request) {
                return Err(Violation::InvalidBlock(request).into());
            }
        }
        if self.pipeline.take(&request) {
            if self.pipeline.on_block(now, &self.config) {
                self.events.push_back(PeerEvent::Unsnubbed);
            }
            self.pipeline_changed = true;
            self.events.push_back(PeerEvent::BlockReceived(block));
            Ok(())
        } else if self.pipeline.take_cancelled(&request) {
            self.stats.wasted_downloaded += u64::from(request.length);
            Ok(())
        } else {
            Err(CloseReason::UnrequestedPiece(request))
        }
    }

    fn on_extended_handshake(&mut self, payload: &[u8]) -> Result<(), CloseReason> {
        let handshake = ExtendedHandshake::parse(payload)?;
        let merged = match self.remote_extensions.take() {
            None => handshake.clone(),
            Some(mut merged) => {
                merge_extended_handshake(&mut merged, &handshake);
                merged
            }
        };
        self.peer_reqq = merged
            .max_requests
            .map_or(DEFAULT_PEER_REQQ, |reqq| reqq as usize)
            .max(1);
        self.remote_extensions = Some(merged);
        self.pipeline_changed = true;
        self.events
            .push_back(PeerEvent::ExtendedHandshake(Box::new(handshake)));
        Ok(())
    }
}

/// The decoder for a torrent: sized for its bitfield when the geometry is known.
fn decoder_for(geometry: Option<&TorrentGeometry>) -> MessageDecoder {
    match geometry {
        Some(g) => MessageDecoder::for_torrent(g.num_pieces()),
        None => MessageDecoder::new(),
    }
}

/// Applies a later extension handshake over an earlier one (BEP10): ids in `m` update the
/// map (0 disables), and the fields it carries replace the earlier ones.
fn merge_extended_handshake(merged: &mut ExtendedHandshake, update: &ExtendedHandshake) {
    for (name, &id) in &update.extensions {
        if id == 0 {
            merged.extensions.remove(name);
        } else {
            merged.extensions.insert(name.clone(), id);
        }
    }
    macro_rules! replace_if_some {
        ($($field:ident),*) => {
            $(if update.$field.is_some() {
                merged.$field.clone_from(&update.$field);
            })*
        };
    }
    replace_if_some!(
        listen_port,
        client,
        your_ip,
        ipv4,
        ipv6,
        max_requests,
        metadata_size,
        complete_ago
    );
    merged.upload_only = update.upload_only;
    merged.prefers_encryption = update.prefers_encryption;
}
