//! Downloads a torrent (a .torrent file or a magnet link) into a directory, on async-std:
//! the flags of `fxtor download`.
//!
//! ```sh
//! cargo run -p fxtor-async-std --example download -- SOURCE -o DIR \
//!     [--peer IP:PORT]... [--listen IP:PORT] [--tracker URL]... [--seed] [--resume FILE]
//!     [--dht-bootstrap HOST:PORT]... [--no-dht] [--dht-state FILE]
//! ```
//!
//! As the program, it joins the DHT through the public routers unless `--dht-bootstrap`
//! names other nodes, and runs none with `--no-dht` or `FXTOR_NO_DHT=1`.
//!
//! Exit status: 0 once every wanted byte is verified on disk (with `--seed`, once
//! interrupted after that), 2 for a malformed input, 1 for any other failure.
//!
//! It runs on async-std's executor; with `FXTOR_EXECUTOR=smol` in the environment, on
//! smol's instead (the session is the same: its tasks run on the adapter's own executor).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use async_signal::{Signal, Signals};
use clap::Parser;
use futures_lite::{future, StreamExt as _};
use fxtor_async_std::{
    AddTorrentParams, Alert, Error, Session, SessionSettings, TorrentHandle, TorrentState,
    TorrentStatus,
};
use fxtor_io::resume;

/// Download a torrent; exit 0 once every wanted byte is verified on disk.
#[derive(Parser, Debug)]
#[command(name = "download")]
struct Args {
    /// A .torrent file, or a `magnet:?` link.
    source: String,
    /// The directory to save into: a torrent named N lands at DIR/N.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    save_path: PathBuf,
    /// A peer to connect to (repeatable).
    #[arg(long = "peer", value_name = "IP:PORT")]
    peers: Vec<SocketAddr>,
    /// Where to accept peers (port 0: any free port).
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:0")]
    listen: SocketAddr,
    /// Keep serving once the download is complete, until interrupted.
    #[arg(long)]
    seed: bool,
    /// Resume data: loaded if the file exists, saved every few seconds and at exit.
    #[arg(long, value_name = "FILE")]
    resume: Option<PathBuf>,
    /// A tracker to announce to besides the torrent's own (repeatable; each its own tier).
    #[arg(long = "tracker", value_name = "URL")]
    trackers: Vec<String>,
    /// A DHT node to join through (repeatable); replaces the default public routers.
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT")]
    dht_bootstrap: Vec<String>,
    /// Run no DHT (the environment variable FXTOR_NO_DHT=1 does the same).
    #[arg(long = "no-dht")]
    no_dht: bool,
    /// Start the DHT from the routing table saved in FILE (if it exists), and save the
    /// table there on exit.
    #[arg(long = "dht-state", value_name = "FILE")]
    dht_state: Option<PathBuf>,
}

/// How often a status line is printed and the resume data saved.
const REPORT_EVERY: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = match std::env::var("FXTOR_EXECUTOR").as_deref() {
        Ok("smol") => smol::block_on(download(args)),
        Ok("async-std") | Err(_) => async_std::task::block_on(download(args)),
        Ok(other) => {
            eprintln!("download: FXTOR_EXECUTOR is async-std or smol, not {other:?}");
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("download: {e}");
            let malformed = matches!(e, Error::Invalid(_) | Error::Session(_));
            ExitCode::from(if malformed { 2 } else { 1 })
        }
    }
}

async fn download(args: Args) -> Result<(), Error> {
    let mut interrupts = Signals::new([Signal::Int, Signal::Term])?;
    let read = |path: &str| {
        std::fs::read(path).map_err(|e| std::io::Error::new(e.kind(), format!("{path}: {e}")))
    };
    let mut params = AddTorrentParams::parse(&args.source, read, &args.save_path)?;
    params.peers = args.peers;
    params.trackers = args.trackers.iter().map(|t| vec![t.clone()]).collect();
    if let Some(path) = &args.resume {
        params.resume_data = resume::read_resume_file(path)?;
    }
    let mut settings = SessionSettings::listen_on(args.listen);
    let nodes = args
        .dht_bootstrap
        .iter()
        .map(|node| fxtor_io::parse_dht_node(node))
        .collect::<Result<_, _>>()?;
    let no_dht_env = std::env::var(fxtor_io::NO_DHT_ENV).ok();
    settings.dht = fxtor_io::program_dht_settings(nodes, args.no_dht, no_dht_env.as_deref());
    if let (Some(dht), Some(path)) = (settings.dht.as_mut(), &args.dht_state) {
        dht.state = resume::read_resume_file(path)?;
    }
    let session = Session::new(settings).await?;
    if let Some(addr) = session.listen_addr() {
        println!("listening on {addr}");
    }
    let torrent = session.add_torrent(params).await?;
    let saver = ResumeSaver(args.resume);

    let complete =
        |s: &TorrentStatus| matches!(s.state, TorrentState::Finished | TorrentState::Seeding);
    let outcome = until_interrupted(&mut interrupts, report(&torrent, &saver, complete)).await;
    let result = match outcome {
        Some(Ok(status)) => {
            println!(
                "finished: {} bytes wanted, {} bytes downloaded",
                status.total_wanted, status.total_downloaded
            );
            if args.seed {
                println!("seeding until interrupted");
                until_interrupted(&mut interrupts, report(&torrent, &saver, |_| false)).await;
            }
            Ok(())
        }
        Some(Err(e)) => Err(e),
        None => Err(Error::Io(std::io::Error::other(
            "interrupted before the download finished",
        ))),
    };
    // Whatever happened, what is verified is remembered.
    let saved = saver.save(&torrent).await;
    if let Some(path) = &args.dht_state {
        if let Err(e) = session.save_dht_state_file(path).await {
            eprintln!(
                "download: warning: cannot save the DHT state to {}: {e}",
                path.display()
            );
        }
    }
    session.shutdown().await?;
    result.and(saved)
}

/// Runs `work` until it ends or Ctrl-C / SIGTERM arrives (`None`).
async fn until_interrupted<T>(
    interrupts: &mut Signals,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    future::or(async { Some(work.await) }, async {
        interrupts.next().await;
        None
    })
    .await
}

/// Prints a status line and saves the resume data every [`REPORT_EVERY`], and a note for
/// each alert worth one, until `done` says so; fails if the torrent stops on an error.
async fn report(
    torrent: &TorrentHandle,
    saver: &ResumeSaver,
    done: impl Fn(&TorrentStatus) -> bool,
) -> Result<TorrentStatus, Error> {
    let mut alerts = torrent.session().alerts();
    loop {
        let status = torrent.status().await?;
        println!("{}", describe(&status));
        if status.state == TorrentState::Error {
            return Err(Error::Torrent(status.error.unwrap_or_default()));
        }
        if done(&status) {
            return Ok(status);
        }
        saver.save(torrent).await?;
        // Until the next report, tell what goes wrong; a state change reports at once.
        future::or(
            async {
                while let Some(alert) = alerts.recv().await {
                    match alert {
                        Alert::HashFailed { piece, .. } => {
                            eprintln!("piece {piece} failed its check")
                        }
                        Alert::PeerBanned { addr, .. } => {
                            eprintln!("banned {addr} for corrupt data")
                        }
                        Alert::StateChanged { .. } | Alert::TorrentFinished { .. } => return,
                        _ => {}
                    }
                }
            },
            async {
                async_io::Timer::after(REPORT_EVERY).await;
            },
        )
        .await;
    }
}

/// One line: state, share done, bytes, rates, peers.
fn describe(s: &TorrentStatus) -> String {
    format!(
        "{:?}: {:.1}% of {} bytes, {} B/s down, {} B/s up, {} peers ({} seeds)",
        s.state,
        s.progress * 100.0,
        s.total_wanted,
        s.download_rate,
        s.upload_rate,
        s.num_peers,
        s.num_seeds
    )
}

/// Where the resume data goes, if anywhere.
struct ResumeSaver(Option<PathBuf>);

impl ResumeSaver {
    async fn save(&self, torrent: &TorrentHandle) -> Result<(), Error> {
        match &self.0 {
            Some(path) => torrent.save_resume_file(path).await,
            None => Ok(()),
        }
    }
}
