//! Trackers end to end, on 127.0.0.1 (and ::1) only:
//!
//! 1. opentracker (Debian's build, started by the test) over HTTP and over UDP: a libtorrent
//!    seeder and `fxtor download` meet through it with no peer given (a .torrent's
//!    `announce`; a magnet link's `tr=` without `x.pe`); the bytes are the same; the
//!    tracker counted the `completed` download, and the `stopped` at exit took fxtor out of
//!    the swarm (scrape figures). A session's own scrape (`scrape_tracker`), over HTTP and
//!    UDP, finds itself the one seeder.
//! 2. A small HTTP tracker in this file, for what opentracker cannot be made to do: a
//!    `failure reason` and a `warning message` surface as alerts while the torrent goes on,
//!    a `peers6` peer on ::1 is used, a redirect is followed, and HTTPS works with a
//!    self-signed certificate the session trusts and fails without it.

mod support;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fxtor_proto::create::TorrentBuilder;
use fxtor_proto::tracker::parse_scrape_response;
use fxtor_proto::{InfoHashV1, TorrentInfo};
use fxtor_tokio::{
    AddTorrentParams, Alert, RootCertificate, Session, SessionSettings, TorrentSource, TorrentState,
};
use serde_json::Value;
use support::*;

const LIMIT: Duration = Duration::from_secs(120);
const NAME: &str = "payload.bin";
const SIZE: usize = 3 * 1024 * 1024 + 123;

// ----- opentracker -----

/// A free port on 127.0.0.1 (for TCP; opentracker takes the same number for UDP).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// opentracker on 127.0.0.1, HTTP and UDP on one port, serving only `hashes` (Debian's
/// build has a whitelist).
struct OpenTracker {
    _run: Running,
    port: u16,
    _dir: tempfile::TempDir,
}

impl OpenTracker {
    fn start(hashes: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let whitelist = dir.path().join("whitelist");
        std::fs::write(&whitelist, hashes.join("\n") + "\n").unwrap();
        // The port was free a moment ago; another test's socket may take it before
        // opentracker does. Then opentracker exits, or the port answers something other
        // than HTTP: try another.
        for _ in 0..10 {
            let port = free_port();
            let mut run = Running::spawn(
                Command::new("opentracker")
                    .args(["-i", "127.0.0.1", "-p", &port.to_string()])
                    .args(["-P", &port.to_string(), "-A", "127.0.0.1"])
                    .arg("-w")
                    .arg(&whitelist)
                    .current_dir(dir.path()),
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if run.has_exited() || Instant::now() > deadline {
                    break;
                }
                if answers_http(port) {
                    return Self {
                        _run: run,
                        port,
                        _dir: dir,
                    };
                }
                thread::sleep(Duration::from_millis(50));
            }
            eprintln!(
                "opentracker on port {port} did not come up: {}",
                run.output()
            );
        }
        panic!("opentracker never came up");
    }

    /// (seeders, completed downloads, leechers) of a swarm, from a scrape.
    fn scrape(&self, info_hash: &str) -> (u32, u32, u32) {
        let hash = InfoHashV1::from_hex(info_hash).unwrap();
        let escaped: String = hash.0.iter().map(|b| format!("%{b:02x}")).collect();
        let body = http_get(self.port, &format!("/scrape?info_hash={escaped}"));
        let scrape = parse_scrape_response(&body).expect("a scrape answer");
        let stats = scrape.files.get(&hash).copied().unwrap_or_default();
        (stats.complete, stats.downloaded, stats.incomplete)
    }
}

/// Whether an HTTP server answers on 127.0.0.1:port (within a second).
fn answers_http(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if write!(stream, "GET /stats HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut start = [0u8; 5];
    stream.read_exact(&mut start).is_ok() && &start == b"HTTP/"
}

/// A GET on 127.0.0.1:port: the body.
fn http_get(port: u16, path: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let at = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    answer.split_off(at + 4)
}

/// Waits until `check` holds, polling.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "never: {what}");
        thread::sleep(Duration::from_millis(200));
    }
}

/// The payload's directory and a v1 .torrent of it made by libtorrent (with `trackers`).
fn lt_torrent(root: &Path, trackers: &[String]) -> (std::path::PathBuf, String) {
    let src = root.join("src");
    write_data(&src.join(NAME), SIZE, 42);
    let torrent = root.join("payload.torrent");
    let path = src.join(NAME);
    let mut args = vec![
        "create",
        path.to_str().unwrap(),
        torrent.to_str().unwrap(),
        "--mode",
        "v1",
        "--piece-length",
        "65536",
    ];
    for t in trackers {
        args.extend(["--tracker", t.as_str()]);
    }
    lt(&args);
    let info = fxtor_info(torrent.to_str().unwrap());
    let hash = info["info_hash_v1"].as_str().unwrap().to_owned();
    (torrent, hash)
}

/// libtorrent seeding, announcing to its torrent's trackers and `trackers`.
///
/// It runs on 127.0.0.2: opentracker lists the announcing peer itself among the peers, and
/// libtorrent, on connecting to itself, refuses its own address from then on; on
/// 127.0.0.1 that would shut fxtor out as well.
fn lt_seed(torrent: &Path, save_path: &Path, trackers: &[String]) -> Running {
    let mut cmd = Command::new(PYTHON);
    cmd.arg(lt_script()).arg("seed").arg(torrent).arg(save_path);
    cmd.args(["--ip", "127.0.0.2"]);
    for t in trackers {
        cmd.args(["--tracker", t]);
    }
    let seeder = Running::spawn(&mut cmd);
    let line = seeder.next_line(LIMIT);
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{}", seeder.output()));
    assert_eq!(v["state"], "seeding", "{}", seeder.output());
    seeder
}

fn assert_same_payload(root: &Path, out: &Path) {
    let theirs = std::fs::read(root.join("src").join(NAME)).unwrap();
    let ours = std::fs::read(out.join(NAME)).unwrap();
    assert!(theirs == ours, "the downloaded payload differs");
}

/// libtorrent seeds and `fxtor download SOURCE` finds it through opentracker alone.
fn meet_through_opentracker(udp: bool) {
    if !have_libtorrent() || !have_tool("opentracker") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    // The hash does not depend on the trackers: make the torrent once to learn it.
    let (_, hash) = lt_torrent(root.path(), &[]);
    let tracker = OpenTracker::start(&[&hash]);
    let http: String = format!("http://127.0.0.1:{}/announce", tracker.port);
    let udp_url = format!("udp://127.0.0.1:{}", tracker.port);
    let out = tempfile::tempdir().unwrap();
    let (seeder, source) = if udp {
        // A magnet link with `tr=` and no `x.pe`; libtorrent told the tracker by hand.
        let (torrent, _) = lt_torrent(root.path(), &[]);
        let seeder = lt_seed(
            &torrent,
            &root.path().join("src"),
            std::slice::from_ref(&udp_url),
        );
        let link = format!("magnet:?xt=urn:btih:{hash}&tr={udp_url}");
        (seeder, link)
    } else {
        // The .torrent's own `announce`.
        let (torrent, _) = lt_torrent(root.path(), std::slice::from_ref(&http));
        let seeder = lt_seed(&torrent, &root.path().join("src"), &[]);
        (seeder, torrent.to_str().unwrap().to_owned())
    };
    eventually("libtorrent announced itself", || {
        tracker.scrape(&hash).0 == 1
    });

    let mut run = Running::spawn(
        fxtor()
            .args(["download", &source, "--listen", "127.0.0.1:0", "-o"])
            .arg(out.path()),
    );
    let mut seeder = seeder;
    let status = run.wait_beside(LIMIT, Some(&mut seeder));
    assert_eq!(status, 0, "{}", run.output());
    assert_same_payload(root.path(), out.path());
    // (opentracker lists the announcing peer too: fxtor sees 2 peers, and skips itself.)
    let noted = format!("tracker {}: 2 peers", if udp { &udp_url } else { &http });
    assert!(
        run.stderr.lock().unwrap().contains(&noted),
        "no tracker reply noted: {}",
        run.output()
    );
    // `completed` was counted; `stopped` at exit left libtorrent the only seeder.
    let (seeders, completed, leechers) = tracker.scrape(&hash);
    assert_eq!(completed, 1, "the completed event reached the tracker");
    assert_eq!(
        (seeders, leechers),
        (1, 0),
        "fxtor's stopped event left the swarm"
    );
}

#[test]
fn libtorrent_and_fxtor_meet_through_opentracker_over_http() {
    meet_through_opentracker(false);
}

#[test]
fn libtorrent_and_fxtor_meet_through_opentracker_over_udp_from_a_magnet_link() {
    meet_through_opentracker(true);
}

/// fxtor seeds with opentracker as its only tracker, then scrapes it: the tracker counts
/// it as the one seeder.
async fn scrape_opentracker(udp: bool) {
    if !have_tool("opentracker") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let info = small_torrent(dir.path());
    let hashes: Vec<String> = info
        .info_hashes()
        .identifiers()
        .map(|h| h.to_hex())
        .collect();
    let hashes: Vec<&str> = hashes.iter().map(String::as_str).collect();
    let tracker = OpenTracker::start(&hashes);
    let url = if udp {
        format!("udp://127.0.0.1:{}", tracker.port)
    } else {
        format!("http://127.0.0.1:{}/announce", tracker.port)
    };
    let session = Session::new(loopback_settings()).await.unwrap();
    let mut alerts = session.alerts();
    let mut params = AddTorrentParams::from_info(info.clone(), dir.path());
    params.seed_mode = true;
    params.trackers = vec![vec![url.clone()]];
    let torrent = session.add_torrent(params).await.unwrap();
    wait_alert(&mut alerts, |a| {
        matches!(a, Alert::TrackerReply { .. }).then_some(())
    })
    .await;
    torrent.scrape_tracker().await.unwrap();
    let (scraped_url, seeders, leechers) = wait_alert(&mut alerts, |a| match a {
        Alert::ScrapeReply {
            url,
            seeders,
            leechers,
            ..
        } => Some((url.clone(), *seeders, *leechers)),
        Alert::ScrapeFailed { error, .. } => panic!("the scrape failed: {error}"),
        _ => None,
    })
    .await;
    assert_eq!(scraped_url, url);
    assert_eq!((seeders, leechers), (1, 0), "fxtor is the one seeder");
    session.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentracker_scraped_over_http() {
    scrape_opentracker(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opentracker_scraped_over_udp() {
    scrape_opentracker(true).await;
}

// ----- a tracker of our own -----

/// What the test tracker answers: a status line's code, extra headers, a body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn ok(body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

type Handler = dyn Fn(&str) -> Reply + Send + Sync;

/// An HTTP tracker on 127.0.0.1 answering every request with `handler(path and query)`;
/// with `tls`, over HTTPS with that server configuration.
struct TestTracker {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
}

impl TestTracker {
    fn start(tls: Option<Arc<rustls::ServerConfig>>, handler: Arc<Handler>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (handler, seen, tls) = (handler.clone(), seen.clone(), tls.clone());
                thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    match tls {
                        Some(config) => {
                            let Ok(conn) = rustls::ServerConnection::new(config) else {
                                return;
                            };
                            let mut stream = stream;
                            let mut tls = rustls::StreamOwned::new(conn, &mut stream);
                            serve(&mut tls, &*handler, &seen);
                        }
                        None => {
                            let mut stream = stream;
                            serve(&mut stream, &*handler, &seen);
                        }
                    }
                });
            }
        });
        Self { port, requests }
    }

    fn url(&self, scheme: &str) -> String {
        let host = if scheme == "https" {
            "localhost"
        } else {
            "127.0.0.1"
        };
        format!("{scheme}://{host}:{}/announce", self.port)
    }
}

/// Reads one request from `stream` and writes the handler's answer.
fn serve<S: std::io::Read + std::io::Write>(
    stream: &mut S,
    handler: &Handler,
    seen: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(&mut *stream);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => return,
            Ok(_) if header == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let Some(target) = line.split_whitespace().nth(1) else {
        return;
    };
    seen.lock().unwrap().push(target.to_owned());
    let reply = handler(target);
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&reply.body);
    let _ = stream.flush();
}

/// A bencoded announce answer with `peers` (compact IPv4) and `peers6`.
fn announce_body(peers: &[SocketAddr], extra: &str) -> Vec<u8> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for p in peers {
        match p {
            SocketAddr::V4(a) => {
                v4.extend_from_slice(&a.ip().octets());
                v4.extend_from_slice(&a.port().to_be_bytes());
            }
            SocketAddr::V6(a) => {
                v6.extend_from_slice(&a.ip().octets());
                v6.extend_from_slice(&a.port().to_be_bytes());
            }
        }
    }
    let mut body = format!("d{extra}8:intervali1800e5:peers{}:", v4.len()).into_bytes();
    body.extend_from_slice(&v4);
    body.extend_from_slice(format!("6:peers6{}:", v6.len()).as_bytes());
    body.extend_from_slice(&v6);
    body.push(b'e');
    body
}

/// A small torrent and its payload in `dir`.
fn small_torrent(dir: &Path) -> Arc<TorrentInfo> {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("small.bin"), &data).unwrap();
    let mut builder = TorrentBuilder::single_file("small.bin", data.len() as u64);
    builder.set_piece_length(32 * 1024);
    let mut hasher = builder.into_hasher().unwrap();
    hasher.update(&data).unwrap();
    Arc::new(TorrentInfo::from_bytes(&hasher.finish().unwrap().bytes).unwrap())
}

/// An fxtor session seeding the small torrent on `listen`.
async fn fxtor_seed(listen: SocketAddr, dir: &Path, info: &Arc<TorrentInfo>) -> Session {
    let session = Session::new(SessionSettings::listen_on(listen))
        .await
        .unwrap();
    let mut params = AddTorrentParams::from_info(info.clone(), dir);
    params.seed_mode = true;
    session.add_torrent(params).await.unwrap();
    session
}

/// A session downloading the small torrent into `out`, with `trackers` only; its alerts
/// from before the torrent was added.
async fn fxtor_leech(
    settings: SessionSettings,
    out: &Path,
    info: &Arc<TorrentInfo>,
    trackers: &[String],
) -> (Session, fxtor_tokio::TorrentHandle, fxtor_tokio::Alerts) {
    let session = Session::new(settings).await.unwrap();
    let alerts = session.alerts();
    let mut params = AddTorrentParams::new(TorrentSource::Info(info.clone()), out);
    params.skip_check = true;
    params.trackers = trackers.iter().map(|t| vec![t.clone()]).collect();
    let torrent = session.add_torrent(params).await.unwrap();
    (session, torrent, alerts)
}

fn loopback_settings() -> SessionSettings {
    SessionSettings::listen_on("127.0.0.1:0".parse().unwrap())
}

/// The first alert `pick` accepts, within the limit.
async fn wait_alert<T>(
    alerts: &mut fxtor_tokio::Alerts,
    mut pick: impl FnMut(&Alert) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let alert = tokio::time::timeout_at(deadline, alerts.recv())
            .await
            .expect("the alert came in time")
            .expect("the session is running");
        if let Some(t) = pick(&alert) {
            return t;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_reason_is_an_error_alert_and_the_torrent_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let info = small_torrent(dir.path());
    let tracker = TestTracker::start(
        None,
        Arc::new(|_: &str| Reply::ok(&b"d14:failure reason7:go awaye"[..])),
    );
    let out = tempfile::tempdir().unwrap();
    let url = tracker.url("http");
    let (session, torrent, mut alerts) = fxtor_leech(
        loopback_settings(),
        out.path(),
        &info,
        std::slice::from_ref(&url),
    )
    .await;
    let error = wait_alert(&mut alerts, |a| match a {
        Alert::TrackerError { url: u, error, .. } if *u == url => Some(error.clone()),
        _ => None,
    })
    .await;
    assert_eq!(error, "go away");
    let status = torrent.status().await.unwrap();
    assert_eq!(status.state, TorrentState::Downloading);
    assert_eq!(status.error, None);
    let entries = torrent.trackers().await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].last_error.as_deref(), Some("go away"));
    assert_eq!(entries[0].failures, 1, "{entries:?} {status:?}");
    session.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warning_message_is_alerted() {
    let dir = tempfile::tempdir().unwrap();
    let info = small_torrent(dir.path());
    let tracker = TestTracker::start(
        None,
        Arc::new(|_: &str| Reply::ok(announce_body(&[], "15:warning message6:beware"))),
    );
    let out = tempfile::tempdir().unwrap();
    let (session, torrent, mut alerts) = fxtor_leech(
        loopback_settings(),
        out.path(),
        &info,
        &[tracker.url("http")],
    )
    .await;
    let message = wait_alert(&mut alerts, |a| match a {
        Alert::TrackerWarning { message, .. } => Some(message.clone()),
        _ => None,
    })
    .await;
    assert_eq!(message, "beware");
    let entries = torrent.trackers().await.unwrap();
    assert_eq!(entries[0].warning.as_deref(), Some("beware"));
    assert_eq!(entries[0].last_error, None);
    session.shutdown().await.unwrap();
}

/// A leecher whose only way to the seed is `tracker`'s answer downloads the whole torrent.
async fn download_through(
    settings: SessionSettings,
    trackers: &[String],
    seed_dir: &Path,
    info: &Arc<TorrentInfo>,
) {
    let out = tempfile::tempdir().unwrap();
    let (session, torrent, _) = fxtor_leech(settings, out.path(), info, trackers).await;
    tokio::time::timeout(LIMIT, torrent.wait_finished())
        .await
        .expect("the download finished in time")
        .unwrap();
    let ours = std::fs::read(out.path().join("small.bin")).unwrap();
    let theirs = std::fs::read(seed_dir.join("small.bin")).unwrap();
    assert!(ours == theirs, "the payload differs");
    session.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peers6_peer_on_ipv6_loopback_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let info = small_torrent(dir.path());
    let seed = fxtor_seed("[::1]:0".parse().unwrap(), dir.path(), &info).await;
    let seed_addr = seed.listen_addr().unwrap();
    assert!(seed_addr.is_ipv6());
    let tracker = TestTracker::start(
        None,
        Arc::new(move |_: &str| Reply::ok(announce_body(&[seed_addr], ""))),
    );
    download_through(
        loopback_settings(),
        &[tracker.url("http")],
        dir.path(),
        &info,
    )
    .await;
    seed.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let info = small_torrent(dir.path());
    let seed = fxtor_seed("127.0.0.1:0".parse().unwrap(), dir.path(), &info).await;
    let seed_addr = seed.listen_addr().unwrap();
    let tracker = TestTracker::start(
        None,
        Arc::new(move |target: &str| {
            if target.starts_with("/announce?") {
                let query = target.split_once('?').map_or("", |(_, q)| q);
                Reply {
                    status: 302,
                    headers: vec![("Location".into(), format!("/moved?{query}"))],
                    body: Vec::new(),
                }
            } else {
                Reply::ok(announce_body(&[seed_addr], ""))
            }
        }),
    );
    download_through(
        loopback_settings(),
        &[tracker.url("http")],
        dir.path(),
        &info,
    )
    .await;
    let requests = tracker.requests.lock().unwrap().clone();
    assert!(
        requests.iter().any(|r| r.starts_with("/moved?")),
        "{requests:?}"
    );
    seed.shutdown().await.unwrap();
}

/// A self-signed certificate for `localhost` and 127.0.0.1, and a server configuration
/// presenting it.
fn self_signed() -> (Vec<u8>, Arc<rustls::ServerConfig>) {
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let certified = rcgen::generate_simple_self_signed(names).unwrap();
    let der = certified.cert.der().to_vec();
    let key =
        rustls::pki_types::PrivateKeyDer::try_from(certified.key_pair.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone().into()], key)
        .unwrap();
    (der, Arc::new(config))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_works_with_a_trusted_self_signed_certificate_and_fails_without() {
    let dir = tempfile::tempdir().unwrap();
    let info = small_torrent(dir.path());
    let seed = fxtor_seed("127.0.0.1:0".parse().unwrap(), dir.path(), &info).await;
    let seed_addr = seed.listen_addr().unwrap();
    let (der, server) = self_signed();
    let tracker = TestTracker::start(
        Some(server),
        Arc::new(move |_: &str| Reply::ok(announce_body(&[seed_addr], ""))),
    );
    let url = tracker.url("https");

    // Untrusted: an error, with the certificate as the reason.
    let out = tempfile::tempdir().unwrap();
    let (session, _torrent, mut alerts) = fxtor_leech(
        loopback_settings(),
        out.path(),
        &info,
        std::slice::from_ref(&url),
    )
    .await;
    let error = wait_alert(&mut alerts, |a| match a {
        Alert::TrackerError { error, .. } => Some(error.clone()),
        _ => None,
    })
    .await;
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    session.shutdown().await.unwrap();

    // Trusted (given as DER, and as PEM): the download goes through the tracker.
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64(&der)
    );
    for root in [
        RootCertificate::Der(der.clone()),
        RootCertificate::Pem(pem.into_bytes()),
    ] {
        let mut settings = loopback_settings();
        settings.extra_root_certificates = vec![root];
        download_through(settings, std::slice::from_ref(&url), dir.path(), &info).await;
    }
    seed.shutdown().await.unwrap();
}

/// Standard base64 with padding, for a PEM block.
fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
