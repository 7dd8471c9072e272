//! What `fxtor download` and `fxtor seed` share: loading a torrent, the session, progress
//! and status lines, resume files, signals.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use fxtor_proto::magnet::PeerAddress;
use fxtor_proto::session::SessionError;
use fxtor_tokio::{
    AddTorrentParams, Alert, DhtSettings, Error, Session, SessionSettings, TorrentHandle,
    TorrentState, TorrentStatus,
};

use super::CliError;

/// How often a plain status line is printed and resume data saved.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(2);
/// How often the status is read (and the progress bar drawn).
const TICK: Duration = Duration::from_millis(250);

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(_) | Error::Session(SessionError::InvalidResumeData(_)) => {
                CliError::Invalid(e.to_string())
            }
            Error::Session(SessionError::OutOfRange | SessionError::DuplicateTorrent) => {
                CliError::Invalid(e.to_string())
            }
            _ => CliError::Io(e.to_string()),
        }
    }
}

/// The parameters for a torrent given as a path or a `magnet:` link.
pub async fn load_source(source: &str, save_path: &Path) -> Result<AddTorrentParams, CliError> {
    let bytes = if source.starts_with("magnet:") {
        None
    } else {
        Some(super::read_file(PathBuf::from(source)).await?)
    };
    Ok(AddTorrentParams::parse(
        source,
        |_| Ok(bytes.unwrap_or_default()),
        save_path,
    )?)
}

/// The DHT flags `fxtor download` and `fxtor seed` share.
#[derive(Args, Debug, Default, PartialEq)]
pub struct DhtArgs {
    /// A DHT node to join through (repeatable); replaces the default public routers.
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT", value_parser = parse_dht_node)]
    pub dht_bootstrap: Vec<PeerAddress>,
    /// Run no DHT (the environment variable FXTOR_NO_DHT=1 does the same).
    #[arg(long = "no-dht")]
    pub no_dht: bool,
    /// Start the DHT from the routing table saved in FILE (if it exists), and save the
    /// table there on exit.
    #[arg(long = "dht-state", value_name = "FILE")]
    pub dht_state: Option<PathBuf>,
}

fn parse_dht_node(text: &str) -> Result<PeerAddress, String> {
    fxtor_io::parse_dht_node(text).map_err(|e| e.to_string())
}

impl DhtArgs {
    /// The DHT's settings: `None` when turned off (flag or environment), else the nodes
    /// given or the default routers. A list of loopback nodes only (a test network) turns
    /// BEP42's restrictions off (see `DhtSettings::loopback_only`).
    pub fn settings(&self, no_dht_env: Option<&str>) -> Option<DhtSettings> {
        fxtor_io::program_dht_settings(self.dht_bootstrap.clone(), self.no_dht, no_dht_env)
    }

    /// [`settings`](Self::settings) with the environment of this process.
    pub fn settings_from_env(&self) -> Option<DhtSettings> {
        let env = std::env::var(fxtor_io::NO_DHT_ENV).ok();
        self.settings(env.as_deref())
    }
}

/// Starts a session listening on `listen`, with the DHT `dht` asks for (from its saved
/// routing table, if `--dht-state` names one that exists).
pub async fn start_session(listen: SocketAddr, dht: &DhtArgs) -> Result<Session, CliError> {
    let mut dht_settings = dht.settings_from_env();
    if let (Some(settings), Some(path)) = (dht_settings.as_mut(), dht.dht_state.clone()) {
        settings.state = tokio::task::spawn_blocking(move || {
            fxtor_io::resume::read_resume_file(&path)
                .map_err(|e| CliError::io("cannot read", &path, e))
        })
        .await
        .map_err(|e| CliError::Io(e.to_string()))??;
    }
    let settings = SessionSettings {
        dht: dht_settings,
        ..SessionSettings::listen_on(listen)
    };
    let session = Session::new(settings)
        .await
        .map_err(|e| CliError::Io(format!("cannot listen on {listen}: {e}")))?;
    // Joining the DHT is the session's news, not a torrent's: told from the start.
    let mut alerts = session.alerts();
    tokio::spawn(async move {
        while let Some(alert) = alerts.recv().await {
            if let Alert::DhtBootstrapped { nodes } = alert {
                eprintln!("DHT: joined, {nodes} nodes");
            }
        }
    });
    Ok(session)
}

/// Saves the DHT's routing table where `--dht-state` says (if it does), then shuts the
/// session down.
pub async fn stop_session(session: &Session, dht: &DhtArgs) -> Result<(), CliError> {
    if let Some(path) = &dht.dht_state {
        if let Err(e) = session.save_dht_state_file(path).await {
            eprintln!(
                "fxtor: warning: cannot save the DHT state to {}: {e}",
                path.display()
            );
        }
    }
    session.shutdown().await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Where the resume data goes, if anywhere.
pub struct ResumeFile(pub Option<PathBuf>);

impl ResumeFile {
    /// Saves the torrent's resume data there (atomically).
    pub async fn save(&self, torrent: &TorrentHandle) -> Result<(), CliError> {
        match &self.0 {
            Some(path) => torrent
                .save_resume_file(path.clone())
                .await
                .map_err(|e| CliError::Io(format!("cannot save {}: {e}", path.display()))),
            None => Ok(()),
        }
    }
}

/// Shows how a torrent is doing: a progress bar on a terminal, a plain line every
/// [`STATUS_INTERVAL`] otherwise.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    last_line: Option<Instant>,
    /// Plain status lines go to stderr (stdout carries data).
    lines_to_stderr: bool,
}

impl Progress {
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            started: Instant::now(),
            last_line: None,
            lines_to_stderr: false,
        }
    }

    /// Progress that leaves stdout alone: plain status lines go to stderr too.
    pub fn on_stderr() -> Self {
        Self {
            lines_to_stderr: true,
            ..Self::new()
        }
    }

    /// Shows a status.
    pub fn show(&mut self, status: &TorrentStatus) {
        if let Some(bar) = &self.bar {
            bar.set_length(status.total_wanted);
            bar.set_position(status.total_wanted_done);
            bar.set_message(format!(
                "{} {}/s down {}/s up, {} peers, eta {}",
                state_name(status.state),
                size(status.download_rate),
                size(status.upload_rate),
                status.num_peers,
                eta(status)
            ));
            return;
        }
        let now = Instant::now();
        if self
            .last_line
            .is_some_and(|last| now.duration_since(last) < STATUS_INTERVAL)
        {
            return;
        }
        self.last_line = Some(now);
        let line = format!(
            "[{:>6.1}s] {}",
            self.started.elapsed().as_secs_f64(),
            status_line(status)
        );
        if self.lines_to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    /// Prints a line without tearing the bar.
    pub fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The plain status line: `downloading 53.1% (35651584 of 67108864 bytes), …`.
pub fn status_line(status: &TorrentStatus) -> String {
    format!(
        "{} {:.1}% ({} of {} bytes), {}/s down, {}/s up, {} peers, eta {}",
        state_name(status.state),
        status.progress * 100.0,
        status.total_wanted_done,
        status.total_wanted,
        size(status.download_rate),
        size(status.upload_rate),
        status.num_peers,
        eta(status)
    )
}

/// A note about an alert worth telling the user, if it is one.
pub fn alert_note(alert: &Alert) -> Option<String> {
    match alert {
        Alert::HashFailed { piece, .. } => Some(format!("piece {piece} failed its hash check")),
        Alert::PeerBanned { addr, .. } => Some(format!("banned {addr}: it sent corrupt data")),
        Alert::TorrentError { error, .. } => Some(format!("error: {error}")),
        Alert::TrackerReply { url, num_peers, .. } => {
            Some(format!("tracker {url}: {num_peers} peers"))
        }
        Alert::TrackerWarning { url, message, .. } => {
            Some(format!("tracker {url} warns: {message}"))
        }
        Alert::TrackerError { url, error, .. } => Some(format!("tracker {url}: error: {error}")),
        Alert::DhtPeers { peers, .. } => Some(format!("DHT: {peers} peers")),
        _ => None,
    }
}

fn state_name(state: TorrentState) -> &'static str {
    match state {
        TorrentState::CheckingFiles => "checking",
        TorrentState::DownloadingMetadata => "fetching metadata",
        TorrentState::Downloading => "downloading",
        TorrentState::Finished => "finished",
        TorrentState::Seeding => "seeding",
        TorrentState::Paused => "paused",
        TorrentState::Error => "error",
    }
}

fn eta(status: &TorrentStatus) -> String {
    let left = status.total_wanted.saturating_sub(status.total_wanted_done);
    if left == 0 {
        return "0s".into();
    }
    if status.download_rate == 0 {
        return "-".into();
    }
    let secs = left.div_ceil(status.download_rate);
    match secs {
        0..=99 => format!("{secs}s"),
        100..=5999 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
    }
}

/// A byte count in binary units.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Whether every wanted byte is verified on disk.
pub fn is_complete(status: &TorrentStatus) -> bool {
    matches!(status.state, TorrentState::Finished | TorrentState::Seeding)
}

/// Follows a torrent until `stop(status)` says so, showing progress, printing notable
/// alerts and saving resume data every [`STATUS_INTERVAL`]. `Ok(None)`: interrupted.
pub async fn follow(
    torrent: &TorrentHandle,
    progress: &mut Progress,
    resume: &ResumeFile,
    mut stop: impl FnMut(&TorrentStatus) -> bool,
) -> Result<Option<TorrentStatus>, CliError> {
    let mut alerts = torrent.session().alerts();
    let mut tick = tokio::time::interval(TICK);
    let mut last_save = Instant::now();
    let interrupt = interrupted();
    tokio::pin!(interrupt);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let status = torrent.status().await?;
                progress.show(&status);
                if status.state == TorrentState::Error {
                    return Err(CliError::Io(format!(
                        "the torrent stopped: {}",
                        status.error.unwrap_or_default()
                    )));
                }
                if last_save.elapsed() >= STATUS_INTERVAL {
                    last_save = Instant::now();
                    resume.save(torrent).await?;
                }
                if stop(&status) {
                    return Ok(Some(status));
                }
            }
            Some(alert) = alerts.recv() => {
                if let Some(note) = alert_note(&alert) {
                    progress.note(&note);
                }
            }
            () = &mut interrupt => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fxtor_proto::InfoHashes;

    fn status(state: TorrentState, done: u64, rate: u64) -> TorrentStatus {
        TorrentStatus {
            info_hashes: InfoHashes::v1(fxtor_proto::InfoHashV1::of_info(b"de")),
            name: Some("t".into()),
            state,
            progress: done as f64 / 1000.0,
            num_have: 0,
            num_pieces: 10,
            total_wanted: 1000,
            total_wanted_done: done,
            total_downloaded: done,
            total_uploaded: 0,
            all_time_downloaded: done,
            all_time_uploaded: 0,
            download_rate: rate,
            upload_rate: 2048,
            num_peers: 3,
            num_seeds: 1,
            error: None,
        }
    }

    #[test]
    fn status_lines_say_progress_rates_peers_and_eta() {
        assert_eq!(
            status_line(&status(TorrentState::Downloading, 531, 100)),
            "downloading 53.1% (531 of 1000 bytes), 100 B/s down, 2.0 KiB/s up, 3 peers, eta 5s"
        );
        assert!(status_line(&status(TorrentState::Downloading, 0, 0)).ends_with("eta -"));
        assert!(status_line(&status(TorrentState::Downloading, 0, 1)).ends_with("eta 16m40s"));
        assert!(is_complete(&status(TorrentState::Seeding, 1000, 0)));
        assert!(is_complete(&status(TorrentState::Finished, 1000, 0)));
        assert!(!is_complete(&status(TorrentState::CheckingFiles, 1000, 0)));
    }

    #[test]
    fn errors_map_to_exit_statuses() {
        let invalid: CliError = Error::Session(SessionError::InvalidResumeData("x".into())).into();
        assert_eq!(invalid.exit_status(), 2);
        let io: CliError = Error::Io(std::io::ErrorKind::PermissionDenied.into()).into();
        assert_eq!(io.exit_status(), 1);
        assert_eq!(CliError::from(Error::Shutdown).exit_status(), 1);
    }
}
