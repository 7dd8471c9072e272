//! `fxtor create`: make a .torrent from a file or a directory.

use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};

use clap::Args;
use fxtor_proto::create::{CreatedTorrent, TorrentBuilder, TorrentVersion};

use super::CliError;

/// Arguments of `fxtor create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The file or directory to make a torrent of.
    path: PathBuf,
    /// Where to write the .torrent.
    #[arg(short, long)]
    output: PathBuf,
    /// A v1-only torrent (SHA-1 pieces, no v2 file tree).
    #[arg(long, conflicts_with = "v2_only")]
    v1_only: bool,
    /// A v2-only torrent (BEP52).
    #[arg(long)]
    v2_only: bool,
    /// Piece length in bytes: a power of two of at least 16384 (chosen from the size if absent).
    #[arg(long)]
    piece_length: Option<u32>,
    /// A tracker URL; each one given forms its own tier, in order.
    #[arg(long = "tracker")]
    trackers: Vec<String>,
    /// A web seed URL (BEP19).
    #[arg(long = "web-seed")]
    web_seeds: Vec<String>,
    /// Mark the torrent private (BEP27).
    #[arg(long)]
    private: bool,
    /// A comment.
    #[arg(long)]
    comment: Option<String>,
}

/// Makes the torrent; the files are read and hashed on a blocking thread.
pub async fn run(args: CreateArgs) -> Result<(), CliError> {
    let output = args.output.clone();
    let torrent = tokio::task::spawn_blocking(move || build(&args))
        .await
        .map_err(|e| CliError::Io(format!("hashing stopped: {e}")))??;
    tokio::fs::write(&output, &torrent.bytes)
        .await
        .map_err(|e| CliError::io("cannot write", &output, e))?;
    let ih = torrent.info_hashes;
    if let Some(v1) = ih.get_v1() {
        println!("info-hash v1: {v1}");
    }
    if let Some(v2) = ih.get_v2() {
        println!("info-hash v2: {v2}");
    }
    Ok(())
}

/// A file found under the directory.
struct Source {
    path: Vec<String>,
    size: u64,
    executable: bool,
}

fn build(args: &CreateArgs) -> Result<CreatedTorrent, CliError> {
    let root = &args.path;
    let meta = std::fs::metadata(root).map_err(|e| CliError::io("cannot read", root, e))?;
    let name = root
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .ok_or_else(|| CliError::Invalid(format!("{}: has no file name", root.display())))?;
    let mut builder = if meta.is_dir() {
        let mut sources = Vec::new();
        walk(root, &mut Vec::new(), &mut sources)?;
        let mut builder = TorrentBuilder::multi_file(name);
        for s in &sources {
            builder.add_file(s.path.clone(), s.size).executable = s.executable;
        }
        builder
    } else {
        TorrentBuilder::single_file(name, meta.len())
    };
    builder.set_version(match (args.v1_only, args.v2_only) {
        (true, _) => TorrentVersion::V1,
        (_, true) => TorrentVersion::V2,
        _ => TorrentVersion::Hybrid,
    });
    if let Some(len) = args.piece_length {
        builder.set_piece_length(len);
    }
    for (tier, url) in args.trackers.iter().enumerate() {
        builder.add_tracker(tier, url.as_str());
    }
    for url in &args.web_seeds {
        builder.add_web_seed(url.as_str());
    }
    builder.set_private(args.private);
    if let Some(c) = &args.comment {
        builder.set_comment(c.as_str());
    }
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        builder.set_creation_date(now.as_secs() as i64);
    }
    let total = builder.content_size();
    let mut hasher = builder
        .into_hasher()
        .map_err(|e| CliError::Invalid(e.to_string()))?;

    let progress = progress_bar(total);
    let mut buf = vec![0u8; 1 << 20];
    let files: Vec<(PathBuf, u64)> = hasher
        .files()
        .iter()
        .map(|f| (disk_path(root, meta.is_dir(), &f.path), f.size))
        .collect();
    for (disk, size) in files {
        let mut file =
            std::fs::File::open(&disk).map_err(|e| CliError::io("cannot open", &disk, e))?;
        let mut left = size;
        while left > 0 {
            let want = left.min(buf.len() as u64) as usize;
            let n = file
                .read(&mut buf[..want])
                .map_err(|e| CliError::io("cannot read", &disk, e))?;
            if n == 0 {
                return Err(CliError::Io(format!(
                    "{} shrank while being read",
                    disk.display()
                )));
            }
            hasher
                .update(&buf[..n])
                .map_err(|e| CliError::Invalid(e.to_string()))?;
            left -= n as u64;
            if let Some(p) = &progress {
                p.inc(n as u64);
            }
        }
    }
    if let Some(p) = progress {
        p.finish_and_clear();
    }
    hasher
        .finish()
        .map_err(|e| CliError::Invalid(e.to_string()))
}

fn disk_path(root: &Path, is_dir: bool, components: &[String]) -> PathBuf {
    if is_dir {
        components.iter().fold(root.to_path_buf(), |p, c| p.join(c))
    } else {
        root.to_path_buf()
    }
}

/// Collects the regular files below `dir`, in a stable order. Symbolic links are not followed.
fn walk(dir: &Path, prefix: &mut Vec<String>, out: &mut Vec<Source>) -> Result<(), CliError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| CliError::io("cannot list", dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| CliError::io("cannot list", dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| CliError::io("cannot stat", &path, e))?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|n| CliError::Invalid(format!("file name {n:?} is not UTF-8")))?;
        prefix.push(name);
        if kind.is_dir() {
            walk(&path, prefix, out)?;
        } else if kind.is_file() {
            let meta = entry
                .metadata()
                .map_err(|e| CliError::io("cannot stat", &path, e))?;
            out.push(Source {
                path: prefix.clone(),
                size: meta.len(),
                executable: is_executable(&meta),
            });
        }
        prefix.pop();
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &std::fs::Metadata) -> bool {
    false
}

fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "hashing {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}
