//! A swarm of two on 127.0.0.1: one session seeds a hybrid torrent of random data, another
//! downloads it; the bytes are compared and the rate printed.
//!
//! ```sh
//! cargo run --release -p fxtor-tokio --example local_swarm [MiB]
//! ```

use std::error::Error;
use std::time::Instant;

use fxtor_proto::create::{TorrentBuilder, TorrentVersion};
use fxtor_proto::TorrentInfo;
use fxtor_tokio::{AddTorrentParams, Session, SessionSettings};

/// The torrent's files: (path below the torrent's directory, share of the total in 1/16ths,
/// plus a few bytes so no file ends on a piece boundary and pads are needed).
const FILES: [(&str, u64, u64); 3] = [("a.bin", 10, 1), ("sub/b.bin", 5, 12_345), ("c.bin", 1, 7)];

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mib: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(64);
    let dir = tempfile::tempdir()?;
    let seed_dir = dir.path().join("seed");
    let leech_dir = dir.path().join("leech");

    // Random content, and a hybrid torrent of it.
    let mut builder = TorrentBuilder::multi_file("swarm");
    builder
        .set_version(TorrentVersion::Hybrid)
        .set_piece_length(256 * 1024);
    let mut contents = Vec::new();
    for (path, share, extra) in FILES {
        let size = mib * 1024 * 1024 * share / 16 + extra;
        let data = random_bytes(size as usize)?;
        let on_disk = seed_dir.join("swarm").join(path);
        std::fs::create_dir_all(on_disk.parent().ok_or("no parent")?)?;
        std::fs::write(&on_disk, &data)?;
        builder.add_file(path.split('/').map(String::from).collect(), size);
        contents.push((path, data));
    }
    let mut hasher = builder.into_hasher()?;
    // The hasher takes the files in its own order (a v2 file tree sorts them by path).
    let order: Vec<String> = hasher.files().iter().map(|f| f.path.join("/")).collect();
    for path in &order {
        let (_, data) = contents
            .iter()
            .find(|(p, _)| p == path)
            .ok_or("a file went missing")?;
        hasher.update(data)?;
    }
    let info = TorrentInfo::from_bytes(&hasher.finish()?.bytes)?;
    let total = info.total_size();

    // The seeder checks its data first.
    let localhost = "127.0.0.1:0".parse()?;
    let seeder = Session::new(SessionSettings::listen_on(localhost)).await?;
    let seed_addr = seeder.listen_addr().ok_or("the seeder is not listening")?;
    let seeding = seeder
        .add_torrent(AddTorrentParams::from_info(info.clone(), &seed_dir))
        .await?;
    seeding.wait_finished().await?;
    println!("seeding {} MiB on {seed_addr}", total >> 20);

    // The downloader starts from nothing.
    let leecher = Session::new(SessionSettings::listen_on(localhost)).await?;
    let mut params = AddTorrentParams::from_info(info, &leech_dir);
    params.peers.push(seed_addr);
    params.skip_check = true;
    let started = Instant::now();
    let download = leecher.add_torrent(params).await?;
    let status = download.wait_finished().await?;
    let secs = started.elapsed().as_secs_f64();
    leecher.shutdown().await?;
    seeder.shutdown().await?;

    for (path, data) in &contents {
        let got = std::fs::read(leech_dir.join("swarm").join(path))?;
        if &got != data {
            return Err(format!("{path} differs from the seeder's").into());
        }
    }
    println!(
        "downloaded {} bytes in {secs:.2} s: {:.1} MB/s; every byte matches",
        status.total_wanted,
        status.total_wanted as f64 / secs / 1e6
    );
    Ok(())
}

/// `len` random bytes: a xorshift stream seeded from the operating system.
fn random_bytes(len: usize) -> Result<Vec<u8>, Box<dyn Error>> {
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).map_err(|e| e.to_string())?;
    let mut state = u64::from_le_bytes(seed) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    Ok(out)
}
