//! The `fxtor` program's subcommands.

mod create;
mod info;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// A BitTorrent engine for v1, v2 and hybrid torrents.
#[derive(Parser, Debug)]
#[command(name = "fxtor", version, about)]
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
    }
}

/// Reads a whole file off the event loop.
async fn read_file(path: PathBuf) -> Result<Vec<u8>, CliError> {
    tokio::fs::read(&path)
        .await
        .map_err(|e| CliError::io("cannot read", &path, e))
}
