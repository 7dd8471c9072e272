//! `fxtor info`: what a .torrent file or a magnet link describes.

use fxtor_proto::magnet::MagnetLink;
use fxtor_proto::metainfo::PadKind;
use fxtor_proto::{InfoHashes, TorrentInfo};
use serde_json::{json, Value};

use super::CliError;

/// Prints the description of `source` (a path or a `magnet:?` link).
pub async fn run(source: &str, as_json: bool) -> Result<(), CliError> {
    let report = if source.starts_with("magnet:") {
        let link: MagnetLink = source
            .parse()
            .map_err(|e| CliError::Invalid(format!("invalid magnet link: {e}")))?;
        magnet_report(&link)
    } else {
        let path = std::path::PathBuf::from(source);
        let bytes = super::read_file(path.clone()).await?;
        let info = TorrentInfo::from_bytes(&bytes)
            .map_err(|e| CliError::Invalid(format!("{}: {e}", path.display())))?;
        torrent_report(&info)
    };
    if as_json {
        println!("{report}");
    } else {
        print!("{}", human(&report));
    }
    Ok(())
}

fn hashes(ih: Option<InfoHashes>) -> (Value, Value) {
    let v1 = ih.and_then(|h| h.get_v1()).map(|h| h.to_hex());
    let v2 = ih.and_then(|h| h.get_v2()).map(|h| h.to_hex());
    (json!(v1), json!(v2))
}

/// The JSON description of a torrent; its keys are the contract of `fxtor info --json`.
fn torrent_report(info: &TorrentInfo) -> Value {
    let (v1, v2) = hashes(Some(info.info_hashes()));
    // Pads the torrent itself lists are shown; pads that only align a v2 file in memory are not.
    let files: Vec<Value> = info
        .files()
        .files()
        .iter()
        .filter(|f| f.pad_kind() != Some(PadKind::Synthesized))
        .map(|f| json!({ "path": f.path_string(), "size": f.size(), "pad": f.is_pad() }))
        .collect();
    json!({
        "name": info.name(),
        "info_hash_v1": v1,
        "info_hash_v2": v2,
        "piece_length": info.piece_length(),
        "num_pieces": info.num_pieces(),
        "total_size": info.total_size(),
        "private": info.is_private(),
        "trackers": info.trackers(),
        "files": files,
    })
}

/// A magnet link names a torrent but does not describe its pieces or files: those are null.
fn magnet_report(link: &MagnetLink) -> Value {
    let (v1, v2) = hashes(Some(link.info_hashes()));
    let trackers: Vec<Vec<&str>> = link.trackers().iter().map(|t| vec![t.as_str()]).collect();
    json!({
        "name": link.display_name(),
        "info_hash_v1": v1,
        "info_hash_v2": v2,
        "piece_length": null,
        "num_pieces": null,
        "total_size": null,
        "private": null,
        "trackers": trackers,
        "files": null,
    })
}

/// The text form, made from the same report so both forms always agree.
fn human(report: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let field = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let _ = writeln!(out, "name:          {}", field(&report["name"]));
    let _ = writeln!(out, "info-hash v1:  {}", field(&report["info_hash_v1"]));
    let _ = writeln!(out, "info-hash v2:  {}", field(&report["info_hash_v2"]));
    if let Some(len) = report["piece_length"].as_u64() {
        let _ = writeln!(out, "piece length:  {} ({len} bytes)", size(len));
    }
    if let Some(n) = report["num_pieces"].as_u64() {
        let _ = writeln!(out, "pieces:        {n}");
    }
    if let Some(total) = report["total_size"].as_u64() {
        let _ = writeln!(out, "total size:    {} ({total} bytes)", size(total));
    }
    if let Some(private) = report["private"].as_bool() {
        let _ = writeln!(out, "private:       {}", if private { "yes" } else { "no" });
    }
    let tiers = report["trackers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if tiers.is_empty() {
        let _ = writeln!(out, "trackers:      none");
    }
    for (i, tier) in tiers.iter().enumerate() {
        let urls: Vec<String> = tier.as_array().into_iter().flatten().map(field).collect();
        let _ = writeln!(out, "tracker tier {i}: {}", urls.join(", "));
    }
    if let Some(files) = report["files"].as_array() {
        let pads = files.iter().filter(|f| f["pad"] == true).count();
        let _ = writeln!(out, "files:         {} ({pads} pad)", files.len() - pads);
        for f in files.iter().filter(|f| f["pad"] != true) {
            let _ = writeln!(out, "  {:>12}  {}", f["size"], field(&f["path"]));
        }
    }
    out
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
