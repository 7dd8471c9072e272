//! `fxtor seed`: check a torrent's data and serve it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use fxtor_tokio::TorrentState;

use super::transfer::{self, DhtArgs, Progress, ResumeFile};
use super::CliError;

/// Arguments of `fxtor seed`.
#[derive(Args, Debug, PartialEq)]
pub struct SeedArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
    /// The directory holding the torrent's data (the torrent named N is at DATA_DIR/N).
    pub data_dir: PathBuf,
    /// Where to accept peers (port 0: any free port; the address is printed).
    #[arg(long, value_name = "IP:PORT", default_value = "0.0.0.0:0")]
    pub listen: SocketAddr,
    /// A tracker to announce to besides the torrent's own (repeatable; each its own tier).
    #[arg(long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// The DHT.
    #[command(flatten)]
    pub dht: DhtArgs,
}

/// Checks the data, then serves it until interrupted.
pub async fn run(args: SeedArgs) -> Result<(), CliError> {
    let source = args.torrent.to_string_lossy().into_owned();
    let mut params = transfer::load_source(&source, &args.data_dir).await?;
    if matches!(params.source, fxtor_tokio::TorrentSource::Magnet(_)) {
        return Err(CliError::Invalid("seed needs a .torrent file".into()));
    }
    params.upload_only = true;
    params.trackers = args.trackers.iter().map(|t| vec![t.clone()]).collect();
    let session = transfer::start_session(args.listen, &args.dht).await?;
    if let Some(addr) = session.listen_addr() {
        println!("listening on {addr}");
    }
    let torrent = session.add_torrent(params).await?;
    let checked = torrent
        .wait_for(|s| s.state != TorrentState::CheckingFiles)
        .await?;
    println!(
        "checked: {} of {} pieces present",
        checked.num_have, checked.num_pieces
    );
    if !transfer::is_complete(&checked) {
        eprintln!("fxtor: warning: the data is incomplete; serving the pieces that are there");
    }
    let mut progress = Progress::new();
    let _ = transfer::follow(&torrent, &mut progress, &ResumeFile(None), |_| false).await?;
    progress.finish();
    transfer::stop_session(&session, &args.dht).await?;
    Ok(())
}
