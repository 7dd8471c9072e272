//! Resident memory of a session holding many added, paused torrents.
//!
//! ```sh
//! cargo run --release -p fxtor-tokio --example many_torrents [COUNT]
//! ```
//!
//! Makes COUNT v1 torrents of 1 GiB each (64 files, 256 KiB pieces: 4,096 pieces) in
//! memory, adds them paused to one session, and prints the process's resident memory
//! before and after (Linux only: read from /proc/self/status).

use std::error::Error;

use fxtor_proto::bencode::OwnedValue;
use fxtor_proto::TorrentInfo;
use fxtor_tokio::{AddTorrentParams, Session, SessionSettings};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let count: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    let dir = tempfile::tempdir()?;
    let session = Session::new(SessionSettings::listen_on("127.0.0.1:0".parse()?)).await?;
    let empty = resident_kib();
    // The parsed torrents (their piece hashes alone are 80 KiB each) are counted apart
    // from what the session adds.
    let infos: Vec<TorrentInfo> = (0..count).map(torrent).collect::<Result<_, _>>()?;
    let before = resident_kib();
    for info in infos {
        let mut params = AddTorrentParams::from_info(info, dir.path());
        params.paused = true;
        session.add_torrent(params).await?;
    }
    let after = resident_kib();
    if let (Some(empty), Some(before), Some(after)) = (empty, before, after) {
        let per = |kib: u64| kib as f64 / count as f64;
        println!(
            "{count} paused torrents: resident {after} KiB in all ({empty} KiB for the empty \
             session); per torrent {:.1} KiB of parsed torrent and {:.1} KiB added by the session",
            per(before.saturating_sub(empty)),
            per(after.saturating_sub(before))
        );
    }
    session.shutdown().await?;
    Ok(())
}

/// A 1 GiB v1 torrent of 64 files and 4,096 pieces of 256 KiB, written directly: its piece
/// hashes stand for no data (nothing is ever checked), which saves hashing a GiB for each.
fn torrent(i: usize) -> Result<TorrentInfo, Box<dyn Error>> {
    let mut info = OwnedValue::dict();
    let files: Vec<OwnedValue> = (0..64)
        .map(|f| {
            let mut file = OwnedValue::dict();
            file.insert("length", 16i64 << 20);
            file.insert(
                "path",
                OwnedValue::List(vec![format!("file-{f:02}.bin").into()]),
            );
            file
        })
        .collect();
    info.insert("files", OwnedValue::List(files));
    info.insert("name", format!("torrent-{i:04}"));
    info.insert("piece length", 256i64 * 1024);
    let pieces: Vec<u8> = (0..4096 * 20).map(|b| (b * 31 + i) as u8).collect();
    info.insert("pieces", pieces);
    let mut torrent = OwnedValue::dict();
    torrent.insert("info", info);
    Ok(TorrentInfo::from_bytes(&torrent.to_vec())?)
}

fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
