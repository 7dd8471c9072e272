//! The `fxtor` program's subcommands.

mod create;
mod download;
mod info;
mod seed;
mod stream;
mod transfer;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A BitTorrent engine for v1, v2 and hybrid torrents.
#[derive(Parser, Debug)]
#[command(
    name = "fxtor",
    version,
    about = "A BitTorrent engine for v1, v2 and hybrid torrents"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show what a .torrent file or a magnet link describes.
    Info {
        /// A .torrent file, or a `magnet:?` link.
        source: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make a .torrent from a file or a directory (hybrid v1+v2 unless told otherwise).
    Create(create::CreateArgs),
    /// Download a torrent; exit 0 once every wanted byte is verified on disk.
    Download(download::DownloadArgs),
    /// Check a torrent's data and serve it until interrupted.
    Seed(seed::SeedArgs),
    /// Write one file of a torrent to stdout while it downloads, in order (for a player
    /// reading a pipe); only that file is downloaded.
    Stream(stream::StreamArgs),
}

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The input (a .torrent, a link, an argument) is malformed: exit status 2.
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing failed: exit status 1.
    #[error("{0}")]
    Io(String),
}

impl CliError {
    /// The process exit status for this error.
    pub fn exit_status(&self) -> u8 {
        match self {
            CliError::Invalid(_) => 2,
            CliError::Io(_) => 1,
        }
    }

    fn io(what: impl std::fmt::Display, path: &std::path::Path, e: std::io::Error) -> Self {
        CliError::Io(format!("{what} {}: {e}", path.display()))
    }
}

/// Runs one subcommand.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Info { source, json } => info::run(&source, json).await,
        Command::Create(args) => create::run(args).await,
        Command::Download(args) => download::run(args).await,
        Command::Seed(args) => seed::run(args).await,
        Command::Stream(args) => stream::run(args).await,
    }
}

/// Reads a whole file off the event loop.
async fn read_file(path: PathBuf) -> Result<Vec<u8>, CliError> {
    tokio::fs::read(&path)
        .await
        .map_err(|e| CliError::io("cannot read", &path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fxtor_tokio::DEFAULT_DHT_BOOTSTRAP;

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("fxtor").chain(args.iter().copied())).map(|c| c.command)
    }

    #[test]
    fn download_takes_a_source_a_directory_peers_listen_seed_and_resume() {
        let Command::Download(args) = parse(&[
            "download",
            "a.torrent",
            "-o",
            "out",
            "--peer",
            "127.0.0.1:6881",
            "--peer",
            "[::1]:7000",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "--resume",
            "a.resume",
            "--tracker",
            "udp://127.0.0.1:6969",
            "--tracker",
            "http://127.0.0.1:6969/announce",
        ])
        .unwrap() else {
            panic!("not a download");
        };
        assert_eq!(
            args,
            download::DownloadArgs {
                source: "a.torrent".into(),
                save_path: "out".into(),
                peers: vec![
                    "127.0.0.1:6881".parse().unwrap(),
                    "[::1]:7000".parse().unwrap()
                ],
                listen: "127.0.0.1:0".parse().unwrap(),
                seed: true,
                resume: Some("a.resume".into()),
                trackers: vec![
                    "udp://127.0.0.1:6969".into(),
                    "http://127.0.0.1:6969/announce".into()
                ],
                dht: transfer::DhtArgs::default(),
            }
        );
        let Command::Download(args) =
            parse(&["download", "magnet:?xt=urn:btih:00", "--output", "d"]).unwrap()
        else {
            panic!("not a download");
        };
        assert_eq!(args.listen, "0.0.0.0:0".parse().unwrap());
        assert!(args.peers.is_empty() && !args.seed && args.resume.is_none());
    }

    #[test]
    fn download_refuses_bad_arguments_with_status_2() {
        for bad in [
            &["download", "a.torrent"][..],
            &["download", "a.torrent", "-o", "d", "--peer", "localhost"],
            &["download", "a.torrent", "-o", "d", "--listen", "127.0.0.1"],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn stream_takes_a_source_a_directory_a_file_and_peers() {
        let Command::Stream(args) = parse(&[
            "stream",
            "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567",
            "-o",
            "out",
            "--file",
            "sub/movie.mkv",
            "--peer",
            "127.0.0.1:6881",
            "--no-dht",
        ])
        .unwrap() else {
            panic!("not a stream");
        };
        assert_eq!(args.file.as_deref(), Some("sub/movie.mkv"));
        assert_eq!(args.save_path, PathBuf::from("out"));
        assert_eq!(args.peers, ["127.0.0.1:6881".parse().unwrap()]);
        assert!(args.dht.no_dht);
        assert!(parse(&["stream", "a.torrent"]).is_err(), "-o is required");
    }

    #[test]
    fn dht_flags_choose_the_bootstrap_nodes_or_turn_the_dht_off() {
        let Command::Download(args) = parse(&[
            "download",
            "a.torrent",
            "-o",
            "d",
            "--dht-bootstrap",
            "127.0.0.1:6881",
            "--dht-bootstrap",
            "localhost:7000",
        ])
        .unwrap() else {
            panic!("not a download");
        };
        let settings = args.dht.settings(None).unwrap();
        assert_eq!(
            settings.bootstrap,
            vec![
                "127.0.0.1:6881".parse().unwrap(),
                "localhost:7000".parse().unwrap()
            ]
        );
        assert!(settings.loopback_only());
        assert!(args.dht.settings(Some("1")).is_none(), "FXTOR_NO_DHT=1");
        assert!(args.dht.settings(Some("0")).is_some());
        let Command::Seed(args) = parse(&["seed", "t", "d", "--no-dht"]).unwrap() else {
            panic!("not a seed");
        };
        assert!(args.dht.settings(None).is_none());
        // The default list: the public routers, never loopback.
        let Command::Seed(args) = parse(&["seed", "t", "d"]).unwrap() else {
            panic!("not a seed");
        };
        let settings = args.dht.settings(None).unwrap();
        assert_eq!(settings.bootstrap.len(), DEFAULT_DHT_BOOTSTRAP.len());
        assert!(!settings.loopback_only());
        for bad in ["nohost", "host:0", "host:x"] {
            let e = parse(&["seed", "t", "d", "--dht-bootstrap", bad]).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn seed_takes_a_torrent_a_data_directory_and_listen() {
        let Command::Seed(args) = parse(&[
            "seed",
            "t.torrent",
            "data",
            "--listen",
            "127.0.0.1:0",
            "--tracker",
            "x",
        ])
        .unwrap() else {
            panic!("not a seed");
        };
        assert_eq!(
            args,
            seed::SeedArgs {
                torrent: "t.torrent".into(),
                data_dir: "data".into(),
                listen: "127.0.0.1:0".parse().unwrap(),
                trackers: vec!["x".into()],
                dht: transfer::DhtArgs::default(),
            }
        );
        assert_eq!(parse(&["seed", "t.torrent"]).unwrap_err().exit_code(), 2);
    }
}
