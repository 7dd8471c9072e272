//! `fxtor download`: fetch a torrent into a directory.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use super::transfer::{self, DhtArgs, Progress, ResumeFile};
use super::CliError;

/// Arguments of `fxtor download`.
#[derive(Args, Debug, PartialEq)]
pub struct DownloadArgs {
    /// A .torrent file, or a `magnet:?` link.
    pub source: String,
    /// The directory to save into: a torrent named N lands at DIR/N.
    #[arg(short = 'o', long = "output", value_name = "DIR")]
    pub save_path: PathBuf,
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
    /// Keep serving once the download is complete, until interrupted.
    #[arg(long)]
    pub seed: bool,
    /// Resume data: loaded if the file exists, saved every few seconds and at exit.
    #[arg(long, value_name = "FILE")]
    pub resume: Option<PathBuf>,
}

/// Downloads until every wanted byte is verified on disk (then seeds, with `--seed`).
pub async fn run(args: DownloadArgs) -> Result<(), CliError> {
    let mut params = transfer::load_source(&args.source, &args.save_path).await?;
    params.peers = args.peers.clone();
    params.trackers = args.trackers.iter().map(|t| vec![t.clone()]).collect();
    let resume = ResumeFile(args.resume.clone());
    if let Some(path) = &args.resume {
        let path = path.clone();
        params.resume_data =
            tokio::task::spawn_blocking(move || fxtor_io::resume::read_resume_file(&path))
                .await
                .map_err(|e| CliError::Io(e.to_string()))?
                .map_err(|e| {
                    let path = args.resume.as_deref().unwrap_or_else(|| "".as_ref());
                    CliError::io("cannot read", path, e)
                })?;
    }
    let session = transfer::start_session(args.listen, &args.dht).await?;
    if let Some(addr) = session.listen_addr() {
        println!("listening on {addr}");
    }
    let torrent = session.add_torrent(params).await?;
    let mut progress = Progress::new();
    let outcome = transfer::follow(&torrent, &mut progress, &resume, transfer::is_complete).await;
    progress.finish();
    let status = match outcome {
        Ok(Some(status)) => status,
        Ok(None) => {
            resume.save(&torrent).await?;
            transfer::stop_session(&session, &args.dht).await?;
            return Err(CliError::Io(
                "interrupted before the download finished".into(),
            ));
        }
        Err(e) => {
            let _ = resume.save(&torrent).await;
            let _ = transfer::stop_session(&session, &args.dht).await;
            return Err(e);
        }
    };
    resume.save(&torrent).await?;
    println!(
        "finished: {} bytes wanted, {} bytes downloaded",
        status.total_wanted, status.total_downloaded
    );
    if args.seed {
        println!("seeding until interrupted");
        let mut progress = Progress::new();
        let _ = transfer::follow(&torrent, &mut progress, &resume, |_| false).await?;
        progress.finish();
        resume.save(&torrent).await?;
    }
    transfer::stop_session(&session, &args.dht).await?;
    Ok(())
}
