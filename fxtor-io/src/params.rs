//! What an application gives an adapter's session: its settings, and how to add a torrent.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fxtor_proto::magnet::{MagnetLink, PeerAddress};
use fxtor_proto::peer_id::PeerId;
use fxtor_proto::session::{self, DhtSettings, SessionConfig, TorrentSource};
use fxtor_proto::TorrentInfo;

use crate::http::RootCertificate;
use crate::Error;

/// The settings of an adapter's session (libtorrent's `settings_pack`, the parts that exist).
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Where to accept peer connections; port 0 picks a free port (see the session's
    /// `listen_addr`). `None`: accept none (outgoing connections only).
    pub listen: Option<SocketAddr>,
    /// Our peer id; `None`: a fresh `-FXvvvv-` id from the operating system's randomness.
    pub peer_id: Option<PeerId>,
    /// The most peer connections in the session.
    pub max_connections: usize,
    /// The most peer connections per torrent.
    pub max_connections_per_torrent: usize,
    /// The most bytes of downloaded pieces held in memory before they are written.
    pub max_piece_memory: usize,
    /// Peers unchoked at once.
    pub upload_slots: usize,
    /// How long an outgoing connection may take to be established.
    pub connect_timeout: Duration,
    /// Disk jobs (reads, verified writes, checks) running at once on the blocking pool;
    /// more wait in a queue.
    pub max_disk_jobs: usize,
    /// Messages queued for one connection's writer. A peer that lets this many pile up is
    /// not reading: the connection is closed.
    pub send_queue: usize,
    /// Alerts held for a slow consumer before the oldest are dropped.
    pub alert_queue: usize,
    /// Root certificates trusted for HTTPS trackers besides the web's (PEM or DER).
    pub extra_root_certificates: Vec<RootCertificate>,
    /// How long an HTTP tracker request may take, redirects included.
    pub http_timeout: Duration,
    /// How long shutting down waits for the trackers to answer the `stopped` announces.
    pub stop_announce_timeout: Duration,
    /// Exchange peers with connected peers (BEP11 `ut_pex`) on public torrents.
    pub peer_exchange: bool,
    /// BEP6 allowed-fast pieces granted to each newcomer (see
    /// [`SessionConfig::allowed_fast_set_size`]); 0: none. Default 5.
    pub allowed_fast_set_size: usize,
    /// The DHT (BEP5), on the session's UDP socket. `None` (the default): no DHT, so a
    /// session built from the defaults never talks to a DHT node. [`DEFAULT_DHT_BOOTSTRAP`]
    /// lists the public routers real use joins through.
    pub dht: Option<DhtSettings>,
}

/// The public DHT routers a node joins the DHT through by default (the `fxtor` program
/// uses them unless told otherwise). Tests must never use them.
pub const DEFAULT_DHT_BOOTSTRAP: [&str; 4] = [
    "router.bittorrent.com:6881",
    "router.utorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "dht.libtorrent.org:25401",
];

/// The environment variable that turns a program's DHT off when it is `1` (as `--no-dht`).
pub const NO_DHT_ENV: &str = "FXTOR_NO_DHT";

/// The DHT a download program runs (`fxtor download`, `fxtor seed`, fxtor-async-std's
/// `download` example): none when `no_dht` is set or `no_dht_env` (the value of
/// [`NO_DHT_ENV`]) is `1`; else joined through `bootstrap`, or through
/// [`DEFAULT_DHT_BOOTSTRAP`] when that is empty. A loopback-only list (a test network) turns
/// BEP42's restrictions off by itself ([`DhtSettings::loopback_only`]).
///
/// ```
/// use fxtor_io::program_dht_settings;
///
/// let node = fxtor_io::parse_dht_node("127.0.0.1:6881").unwrap();
/// let settings = program_dht_settings(vec![node.clone()], false, None).unwrap();
/// assert_eq!(settings.bootstrap, vec![node]);
/// assert_eq!(program_dht_settings(Vec::new(), false, None).unwrap().bootstrap.len(), 4);
/// assert!(program_dht_settings(Vec::new(), true, None).is_none());
/// assert!(program_dht_settings(Vec::new(), false, Some("1")).is_none());
/// ```
pub fn program_dht_settings(
    bootstrap: Vec<PeerAddress>,
    no_dht: bool,
    no_dht_env: Option<&str>,
) -> Option<DhtSettings> {
    if no_dht || no_dht_env == Some("1") {
        return None;
    }
    let bootstrap = if bootstrap.is_empty() {
        DEFAULT_DHT_BOOTSTRAP
            .iter()
            .filter_map(|node| node.parse().ok())
            .collect()
    } else {
        bootstrap
    };
    Some(DhtSettings::new(bootstrap))
}

/// Parses a DHT bootstrap node, `HOST:PORT` or `IP:PORT` (`[IPv6]:PORT`).
pub fn parse_dht_node(text: &str) -> Result<PeerAddress, Error> {
    text.parse::<PeerAddress>()
        .map_err(|e| Error::Invalid(format!("invalid DHT node {text:?}: {e}")))
}

impl Default for SessionSettings {
    fn default() -> Self {
        let core = SessionConfig::new(PeerId([0; 20]));
        Self {
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 0))),
            peer_id: None,
            max_connections: core.max_connections,
            max_connections_per_torrent: core.max_connections_per_torrent,
            max_piece_memory: core.max_piece_memory,
            upload_slots: core.upload_slots,
            connect_timeout: Duration::from_secs(10),
            max_disk_jobs: 8,
            send_queue: 4096,
            alert_queue: 4096,
            extra_root_certificates: Vec::new(),
            http_timeout: Duration::from_secs(30),
            stop_announce_timeout: core.stop_announce_timeout,
            peer_exchange: core.peer_exchange,
            allowed_fast_set_size: core.allowed_fast_set_size,
            dht: None,
        }
    }
}

impl SessionSettings {
    /// Settings that listen on `addr` (port 0: any free port).
    pub fn listen_on(addr: SocketAddr) -> Self {
        Self {
            listen: Some(addr),
            ..Self::default()
        }
    }

    /// The core's configuration: the peer id (given, or from OS randomness), a random seed
    /// for the core's choices, and the port we listen on.
    pub fn core_config(&self, listen_port: u16) -> Result<SessionConfig, Error> {
        let peer_id = match self.peer_id {
            Some(id) => id,
            None => random_peer_id()?,
        };
        let mut config = SessionConfig::new(peer_id);
        config.listen_port = listen_port;
        config.max_connections = self.max_connections;
        config.max_connections_per_torrent = self.max_connections_per_torrent;
        config.max_piece_memory = self.max_piece_memory;
        config.upload_slots = self.upload_slots;
        config.stop_announce_timeout = self.stop_announce_timeout;
        config.peer_exchange = self.peer_exchange;
        config.allowed_fast_set_size = self.allowed_fast_set_size;
        config.dht = self.dht.clone();
        config.rng_seed = getrandom::u64().map_err(random_error)?;
        Ok(config)
    }
}

/// A fresh peer id, `-FXvvvv-` and twelve random characters from the OS's randomness.
pub fn random_peer_id() -> Result<PeerId, Error> {
    let mut random = [0u8; 20];
    getrandom::fill(&mut random).map_err(random_error)?;
    Ok(PeerId::fxtor(random))
}

fn random_error(e: getrandom::Error) -> Error {
    Error::Io(std::io::Error::other(format!(
        "no randomness from the operating system: {e}"
    )))
}

/// How to add a torrent (libtorrent's `add_torrent_params`): the core's parameters and where
/// the files live.
#[derive(Debug, Clone)]
pub struct AddTorrentParams {
    /// The torrent: a parsed .torrent, or a magnet link.
    pub source: TorrentSource,
    /// The directory the torrent's files go in: a torrent named `N` lands at `save_path/N`.
    pub save_path: PathBuf,
    /// Peers to connect to at once.
    pub peers: Vec<SocketAddr>,
    /// Resume data from an earlier run (`save_resume_data`): its pieces are trusted.
    pub resume_data: Option<Bytes>,
    /// Add it paused.
    pub paused: bool,
    /// Skip the initial check: the files are known not to exist.
    pub skip_check: bool,
    /// Trust that every piece is on disk: seed at once, no check.
    pub seed_mode: bool,
    /// File priorities (0–7) in the order of the non-pad files; empty: all 4.
    pub file_priorities: Vec<u8>,
    /// Files that `file_priorities` does not cover get priority 0 instead of 4, so a magnet
    /// link's files can be chosen once its metadata arrives (libtorrent's
    /// `default_dont_download`).
    pub default_dont_download: bool,
    /// Download in piece order.
    pub sequential: bool,
    /// Upload only: do not download pieces we lack.
    pub upload_only: bool,
    /// Trackers besides the torrent's own, in tiers after them.
    pub trackers: Vec<Vec<String>>,
}

impl AddTorrentParams {
    /// A torrent to store under `save_path`, everything else default.
    pub fn new(source: TorrentSource, save_path: impl Into<PathBuf>) -> Self {
        let core = session::AddTorrentParams::new(source);
        Self {
            source: core.source,
            save_path: save_path.into(),
            peers: core.peers,
            resume_data: core.resume_data,
            paused: core.paused,
            skip_check: core.skip_check,
            seed_mode: core.seed_mode,
            file_priorities: core.file_priorities,
            default_dont_download: core.default_dont_download,
            sequential: core.sequential,
            upload_only: core.upload_only,
            trackers: core.trackers,
        }
    }

    /// A parsed torrent to store under `save_path`.
    pub fn from_info(info: impl Into<Arc<TorrentInfo>>, save_path: impl Into<PathBuf>) -> Self {
        Self::new(TorrentSource::Info(info.into()), save_path)
    }

    /// A magnet link to store under `save_path`.
    pub fn from_magnet(link: MagnetLink, save_path: impl Into<PathBuf>) -> Self {
        Self::new(TorrentSource::Magnet(link), save_path)
    }

    /// A torrent given as text: a `magnet:` link, or else the bytes of a .torrent file
    /// (`torrent_bytes` is called only then).
    pub fn parse(
        source: &str,
        torrent_bytes: impl FnOnce(&str) -> std::io::Result<Vec<u8>>,
        save_path: impl Into<PathBuf>,
    ) -> Result<Self, Error> {
        if source.starts_with("magnet:") {
            let link = MagnetLink::parse(source)
                .map_err(|e| Error::Invalid(format!("invalid magnet link: {e}")))?;
            return Ok(Self::from_magnet(link, save_path));
        }
        let bytes = torrent_bytes(source)?;
        let info = TorrentInfo::from_bytes(&bytes)
            .map_err(|e| Error::Invalid(format!("{source}: {e}")))?;
        Ok(Self::from_info(info, save_path))
    }

    /// The core's half, and the save path.
    pub fn into_core(self) -> (session::AddTorrentParams, PathBuf) {
        let mut core = session::AddTorrentParams::new(self.source);
        core.peers = self.peers;
        core.resume_data = self.resume_data;
        core.paused = self.paused;
        core.skip_check = self.skip_check;
        core.seed_mode = self.seed_mode;
        core.file_priorities = self.file_priorities;
        core.default_dont_download = self.default_dont_download;
        core.sequential = self.sequential;
        core.upload_only = self.upload_only;
        core.trackers = self.trackers;
        (core, self.save_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fxtor_proto::create::TorrentBuilder;

    #[test]
    fn peer_ids_are_ours_and_fresh() {
        let a = random_peer_id().unwrap();
        let b = random_peer_id().unwrap();
        assert!(a.as_bytes().starts_with(b"-FX"), "{a}");
        assert_ne!(a, b);
        let config = SessionSettings::default().core_config(6881).unwrap();
        assert_eq!(config.listen_port, 6881);
        let fixed = SessionSettings {
            peer_id: Some(a),
            ..SessionSettings::default()
        };
        assert_eq!(fixed.core_config(0).unwrap().peer_id, a);
    }

    #[test]
    fn parses_links_and_torrents_and_says_what_is_wrong() {
        let mut h = TorrentBuilder::single_file("x", 3).into_hasher().unwrap();
        h.update(b"abc").unwrap();
        let torrent = h.finish().unwrap().bytes.to_vec();
        let p = AddTorrentParams::parse("a.torrent", |_| Ok(torrent.clone()), "/d").unwrap();
        assert!(matches!(p.source, TorrentSource::Info(ref i) if i.name() == "x"));
        assert_eq!(p.save_path, PathBuf::from("/d"));
        let link = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567";
        let p = AddTorrentParams::parse(link, |_| unreachable!(), "/d").unwrap();
        assert!(matches!(p.source, TorrentSource::Magnet(_)));
        let e = AddTorrentParams::parse("magnet:?xt=nonsense", |_| unreachable!(), "/d");
        assert!(matches!(e, Err(Error::Invalid(_))));
        let e = AddTorrentParams::parse("bad.torrent", |_| Ok(b"d4:infoi3ee".to_vec()), "/d");
        assert!(matches!(e, Err(Error::Invalid(m)) if m.starts_with("bad.torrent")));
        let e = AddTorrentParams::parse("gone", |_| Err(std::io::ErrorKind::NotFound.into()), "/");
        assert!(matches!(e, Err(Error::Io(_))));
    }

    #[test]
    fn core_params_keep_every_flag() {
        let link =
            MagnetLink::parse("magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567")
                .unwrap();
        let mut p = AddTorrentParams::from_magnet(link, "/s");
        p.peers = vec!["127.0.0.1:1".parse().unwrap()];
        p.resume_data = Some(Bytes::from_static(b"de"));
        p.paused = true;
        p.skip_check = true;
        p.seed_mode = true;
        p.file_priorities = vec![1, 7];
        p.sequential = true;
        p.upload_only = true;
        let (core, save) = p.into_core();
        assert_eq!(save, PathBuf::from("/s"));
        assert_eq!(core.peers.len(), 1);
        assert_eq!(core.resume_data.as_deref(), Some(&b"de"[..]));
        assert!(core.paused && core.skip_check && core.seed_mode);
        assert!(core.sequential && core.upload_only);
        assert_eq!(core.file_priorities, [1, 7]);
    }
}
