//! Known answers from independent tools: torrents made by libtorrent, mktorrent and
//! transmission-create must read the same in fxtor as in libtorrent, and torrents fxtor makes
//! must be accepted by libtorrent, whose own check of the data must pass.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::*;

/// Sample content: one single file, and a directory with nesting, unicode names and empty files.
fn sample_content(dir: &Path) {
    write_data(&dir.join("single.bin"), 70_000, 1);
    let multi = dir.join("multi");
    write_data(&multi.join("a.bin"), 100_000, 2);
    write_data(&multi.join("sub/ünïcødé ✓.txt"), 40_000, 3);
    write_data(&multi.join("sub/deeper/exactly-two-pieces"), 32_768, 4);
    write_data(&multi.join("Ω/z"), 1, 5);
    std::fs::write(multi.join("empty"), b"").unwrap();
    std::fs::create_dir_all(multi.join("sub/empty-dir-file")).unwrap();
    std::fs::write(multi.join("sub/empty-dir-file/nothing"), b"").unwrap();
}

/// libtorrent's report, in the shape of `fxtor info --json`: paths below the torrent's
/// directory, and for v2-only torrents without the pads libtorrent adds in memory.
fn libtorrent_view(torrent: &Path) -> Value {
    let mut v = lt(&["info", torrent.to_str().unwrap()]);
    let name = v["name"].as_str().unwrap().to_string();
    let v2_only = v["info_hash_v1"].is_null();
    let files: Vec<Value> = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| !(v2_only && f["pad"] == true))
        .map(|f| {
            let path = f["path"].as_str().unwrap();
            let rel = path.strip_prefix(&format!("{name}/")).unwrap_or(path);
            json!({ "path": rel, "size": f["size"], "pad": f["pad"] })
        })
        .collect();
    v["files"] = Value::Array(files);
    v
}

fn assert_same_reading(torrent: &Path) {
    let ours = fxtor_info(torrent.to_str().unwrap());
    let theirs = libtorrent_view(torrent);
    assert_eq!(
        ours,
        theirs,
        "fxtor and libtorrent read {} differently",
        torrent.display()
    );
}

#[test]
fn torrents_made_by_libtorrent_read_the_same() {
    if !have_libtorrent() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    sample_content(tmp.path());
    for content in ["single.bin", "multi"] {
        for mode in ["v1", "v2", "hybrid"] {
            for piece_length in ["16384", "65536"] {
                let out = tmp
                    .path()
                    .join(format!("{content}-{mode}-{piece_length}.torrent"));
                let src = tmp.path().join(content);
                lt(&[
                    "create",
                    src.to_str().unwrap(),
                    out.to_str().unwrap(),
                    "--mode",
                    mode,
                    "--piece-length",
                    piece_length,
                    "--tracker",
                    "http://127.0.0.1:6969/announce",
                    "--tracker",
                    "udp://127.0.0.1:6969",
                ]);
                assert_same_reading(&out);
            }
        }
    }
}

#[test]
fn torrents_made_by_mktorrent_read_the_same() {
    if !have_libtorrent() || !have_tool("mktorrent") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    sample_content(tmp.path());
    for content in ["single.bin", "multi"] {
        let out = tmp.path().join(format!("{content}-mktorrent.torrent"));
        run_ok(
            Command::new("mktorrent")
                .args([
                    "-l",
                    "15",
                    "-a",
                    "http://127.0.0.1:6969/announce",
                    "-c",
                    "a comment",
                    "-o",
                ])
                .arg(&out)
                .arg(tmp.path().join(content)),
        );
        assert_same_reading(&out);
    }
}

#[test]
fn torrents_made_by_transmission_read_the_same() {
    if !have_libtorrent() || !have_tool("transmission-create") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    sample_content(tmp.path());
    for content in ["single.bin", "multi"] {
        let out = tmp.path().join(format!("{content}-transmission.torrent"));
        run_ok(
            Command::new("transmission-create")
                .args([
                    "-p",
                    "-s",
                    "32",
                    "-t",
                    "http://127.0.0.1:6969/announce",
                    "-o",
                ])
                .arg(&out)
                .arg(tmp.path().join(content)),
        );
        assert_same_reading(&out);
    }
}

#[test]
fn torrents_we_make_pass_libtorrents_check() {
    if !have_libtorrent() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    sample_content(tmp.path());
    for content in ["single.bin", "multi"] {
        for (flag, v1, v2) in [
            ("--v1-only", true, false),
            ("--v2-only", false, true),
            ("", true, true),
        ] {
            let out = tmp.path().join(format!("{content}{flag}.torrent"));
            let mut cmd = fxtor();
            cmd.arg("create")
                .arg(tmp.path().join(content))
                .arg("-o")
                .arg(&out);
            cmd.args([
                "--piece-length",
                "16384",
                "--tracker",
                "http://127.0.0.1:6969/announce",
            ]);
            if !flag.is_empty() {
                cmd.arg(flag);
            }
            run_ok(&mut cmd);
            let ours = fxtor_info(out.to_str().unwrap());
            assert_eq!(ours["info_hash_v1"].is_string(), v1);
            assert_eq!(ours["info_hash_v2"].is_string(), v2);
            assert_eq!(ours, libtorrent_view(&out), "{content} {flag}");
            let check = lt(&["check", out.to_str().unwrap(), tmp.path().to_str().unwrap()]);
            assert_eq!(check["error"], Value::Null, "{content} {flag}: {check}");
            assert_eq!(
                check["num_pieces"], check["total_pieces"],
                "{content} {flag}: {check}"
            );
            assert_eq!(check["info_hash_v1"], ours["info_hash_v1"]);
            assert_eq!(check["info_hash_v2"], ours["info_hash_v2"]);
        }
    }
}

#[test]
fn libtorrents_check_fails_on_changed_data() {
    // The check above must be able to fail: change one byte and it finds a bad piece.
    if !have_libtorrent() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    sample_content(tmp.path());
    let out = tmp.path().join("multi.torrent");
    run_ok(
        fxtor()
            .arg("create")
            .arg(tmp.path().join("multi"))
            .arg("-o")
            .arg(&out),
    );
    let victim = tmp.path().join("multi/a.bin");
    let mut data = std::fs::read(&victim).unwrap();
    data[5] ^= 0xff;
    std::fs::write(&victim, data).unwrap();
    let check = lt(&["check", out.to_str().unwrap(), tmp.path().to_str().unwrap()]);
    assert!(
        check["num_pieces"].as_u64() < check["total_pieces"].as_u64(),
        "{check}"
    );
}
