//! # fxtor-proto
//!
//! The sans-IO core of fxtor: BitTorrent's formats and protocol state machines. Nothing here
//! opens a socket, reads a clock, touches a file or spawns a thread; the adapter crates
//! (`fxtor-tokio`, `fxtor-async-std`) do that and feed the results in.
//!
//! - [`bencode`]: borrowed, span-keeping decoder and canonical encoder.
//! - [`metainfo`]: [`TorrentInfo`] for v1, v2 and hybrid torrents, [`FileStorage`].
//! - [`merkle`]: BEP52 merkle trees.
//! - [`create`]: building .torrent files from data the caller feeds in.
//! - [`magnet`]: magnet links (BEP9, BEP53).
//! - [`wire`]: the peer wire protocol codec and extension payloads.
//! - [`dht`]: the mainline DHT as a sans-IO state machine ([`dht::Dht`]).
//! - [`peer_id`]: BEP20 peer ids.
//! - [`peer`]: one peer connection's state machine ([`peer::PeerConnection`]).
//! - [`choker`]: who to unchoke (tit-for-tat, optimistic unchoke, seeding rotation).
//! - [`picker`]: the piece picker (rarest first, priorities, deadlines, end-game).
//! - [`session`]: the [`session::Session`] state machine: torrents, peers, disk jobs, alerts.
//! - [`resume`]: resume data, so a restart skips re-hashing.
//! - [`verify`]: checking a piece's bytes against its v1 and v2 hashes.
//! - [`time`]: the [`time::Instant`] every state machine is driven with.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod bencode;
pub mod choker;
pub mod create;
pub mod dht;
mod hash;
mod index;
pub mod magnet;
pub mod merkle;
pub mod metainfo;
pub mod peer;
pub mod peer_id;
pub mod picker;
pub mod resume;
mod rng;
pub mod session;
pub mod time;
pub mod tracker;
pub mod verify;
pub mod wire;

pub use hash::{InfoHashV1, InfoHashV2, InfoHashes, Sha1Hash, Sha256Hash};
pub use index::{FileIndex, PieceIndex, BLOCK_SIZE};
pub use metainfo::{FileStorage, TorrentInfo};
