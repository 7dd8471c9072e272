//! `fxtor stream`: writes one file of a torrent to stdout while it downloads, from its first
//! byte to its last, for a player reading a pipe (`fxtor stream movie.torrent -o dl | mpv -`).
//! Only that file is downloaded (in order); status goes to stderr.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use fxtor_proto::metainfo::TorrentInfo;
use fxtor_proto::FileIndex;
use fxtor_tokio::TorrentState;
use tokio::io::AsyncWriteExt as _;

use super::transfer::{self, DhtArgs, Progress, ResumeFile};
use super::CliError;

/// How much is read from the torrent (and written to stdout) at a time: at most a piece.
const CHUNK: usize = 1 << 20;

/// Arguments of `fxtor stream`.
#[derive(Args, Debug, PartialEq)]
pub struct StreamArgs {
    /// A .torrent file, or a `magnet:?` link.
    pub source: String,
    /// The directory to save into: a torrent named N lands at DIR/N.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub save_path: PathBuf,
    /// The file to stream, by its path as `fxtor info` lists it; the largest by default.
    #[arg(long, value_name = "PATH")]
    pub file: Option<String>,
    /// A peer to connect to (repeatable).
    #[arg(long = "peer", value_name = "IP:PORT")]
    pub peers: Vec<SocketAddr>,
    /// Where to accept peers (port 0: any free port).
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:0")]
    pub listen: SocketAddr,
    /// A tracker to announce to besides the torrent's own (repeatable; each its own tier).
    #[arg(long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// The DHT.
    #[command(flatten)]
    pub dht: DhtArgs,
}

/// Streams the file to stdout; exits once its last byte is written.
pub async fn run(args: StreamArgs) -> Result<(), CliError> {
    let mut params = transfer::load_source(&args.source, &args.save_path).await?;
    params.peers = args.peers.clone();
    params.trackers = args.trackers.iter().map(|t| vec![t.clone()]).collect();
    // Nothing until the file is chosen (for a magnet link, once its metadata is here).
    params.default_dont_download = true;
    let session = transfer::start_session(args.listen, &args.dht).await?;
    if let Some(addr) = session.listen_addr() {
        eprintln!("listening on {addr}");
    }
    let torrent = session.add_torrent(params).await?;
    let mut progress = Progress::on_stderr();
    let outcome = async {
        // A magnet link's metadata first, and the check of what is on disk.
        let ready = |s: &fxtor_tokio::TorrentStatus| {
            !matches!(
                s.state,
                TorrentState::DownloadingMetadata | TorrentState::CheckingFiles
            )
        };
        if transfer::follow(&torrent, &mut progress, &ResumeFile(None), ready)
            .await?
            .is_none()
        {
            return Err(CliError::Io("interrupted".into()));
        }
        let info = torrent
            .torrent_info()
            .await?
            .ok_or_else(|| CliError::Io("the torrent has no metadata".into()))?;
        let file = choose_file(&info, args.file.as_deref())?;
        let entry = &info.files().files()[file.0 as usize];
        eprintln!("streaming {} ({} bytes)", entry.path_string(), entry.size());
        // Only this file, in order; the reader's deadlines lead the way.
        let priorities = (0..info.files().num_files())
            .map(|i| if i == file.0 as usize { 4 } else { 0 })
            .collect();
        torrent.prioritize_files(priorities).await?;
        torrent.set_sequential(true).await?;
        let mut reader = torrent.open_file(file).await?;
        let copy = async {
            let mut stdout = tokio::io::stdout();
            loop {
                let chunk = reader.read_chunk(CHUNK).await?;
                if chunk.is_empty() {
                    break;
                }
                stdout
                    .write_all(&chunk)
                    .await
                    .map_err(|e| CliError::Io(format!("cannot write to stdout: {e}")))?;
            }
            stdout
                .flush()
                .await
                .map_err(|e| CliError::Io(format!("cannot write to stdout: {e}")))
        };
        let follow = transfer::follow(&torrent, &mut progress, &ResumeFile(None), |_| false);
        tokio::select! {
            copied = copy => copied,
            // Following stops only when interrupted, or on the torrent's error.
            followed = follow => {
                followed?;
                Err(CliError::Io("interrupted before the file was streamed".into()))
            }
        }
    }
    .await;
    progress.finish();
    let stopped = transfer::stop_session(&session, &args.dht).await;
    outcome.and(stopped)
}

/// The file to stream: the one whose path is `path`, or the largest.
fn choose_file(info: &TorrentInfo, path: Option<&str>) -> Result<FileIndex, CliError> {
    let files = info.files().files().iter().enumerate();
    let mut real = files.filter(|(_, f)| !f.is_pad());
    let found = match path {
        Some(path) => real.find(|(_, f)| f.path_string() == path),
        None => real.max_by_key(|(i, f)| (f.size(), std::cmp::Reverse(*i))),
    };
    let (index, _) = found.ok_or_else(|| {
        CliError::Invalid(match path {
            Some(path) => format!("the torrent has no file {path:?}"),
            None => "the torrent has no file".into(),
        })
    })?;
    // A file index fits in u32: the torrent loaded.
    Ok(FileIndex(index as u32))
}
