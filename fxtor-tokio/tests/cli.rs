//! The `fxtor` program's contract: JSON keys, exit statuses, one-line errors.

mod support;

use serde_json::Value;
use support::*;

fn fixture(name: &str) -> String {
    format!(
        "{}/../fxtor-proto/tests/fixtures/libtorrent/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// Runs `fxtor` and returns (status, stdout, stderr).
fn fxtor_run(args: &[&str]) -> (i32, String, String) {
    let out = fxtor().args(args).output().expect("run fxtor");
    (
        out.status
            .code()
            .expect("fxtor exits, it is not killed by a signal"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn info_json_has_exactly_the_documented_keys() {
    let v = fxtor_info(&fixture("v2_hybrid.torrent"));
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "name",
            "info_hash_v1",
            "info_hash_v2",
            "piece_length",
            "num_pieces",
            "total_size",
            "private",
            "trackers",
            "files"
        ]
    );
    assert_eq!(v["info_hash_v1"].as_str().map(str::len), Some(40));
    assert_eq!(v["info_hash_v2"].as_str().map(str::len), Some(64));
    for f in v["files"].as_array().unwrap() {
        let keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["path", "size", "pad"]);
    }
    assert!(
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["pad"] == true),
        "the hybrid lists pad files"
    );
}

#[test]
fn info_reads_magnet_links() {
    let link = "magnet:?xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a&dn=a%20b&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce";
    let v = fxtor_info(link);
    assert_eq!(
        v["info_hash_v1"],
        "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
    );
    assert_eq!(v["info_hash_v2"], Value::Null);
    assert_eq!(v["name"], "a b");
    assert_eq!(v["trackers"][0][0], "http://127.0.0.1:6969/announce");
    let (status, text, _) = fxtor_run(&["info", link]);
    assert_eq!(status, 0);
    assert!(
        text.contains("c12fe1c06bba254a9dc9f519b335aa7c1367a88a"),
        "{text}"
    );
}

#[test]
fn human_output_names_the_files() {
    let (status, text, _) = fxtor_run(&["info", &fixture("base.torrent")]);
    assert_eq!(status, 0);
    assert!(text.contains("info-hash v1:"), "{text}");
    assert!(text.contains("files:"), "{text}");
}

#[test]
fn malformed_inputs_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.torrent");
    std::fs::write(&garbage, b"d4:infod4:name").unwrap();
    let invalid = [
        garbage.to_str().unwrap().to_string(),
        fixture("negative_piece_len.torrent"),
        fixture("v2_mismatching_metadata.torrent"),
        "magnet:?dn=no-hash".to_string(),
        "magnet:?xt=urn:btih:zz".to_string(),
    ];
    for source in &invalid {
        let (status, stdout, stderr) = fxtor_run(&["info", source]);
        assert_eq!(status, 2, "{source}: {stderr}");
        assert!(stdout.is_empty());
        assert_eq!(stderr.trim_end().lines().count(), 1, "{source}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn a_missing_file_is_an_io_error() {
    let (status, _, stderr) = fxtor_run(&["info", "/nonexistent/x.torrent"]);
    assert_eq!(status, 1, "{stderr}");
}

#[test]
fn create_refuses_bad_piece_lengths() {
    let tmp = tempfile::tempdir().unwrap();
    write_data(&tmp.path().join("f"), 1000, 9);
    let out = tmp.path().join("f.torrent");
    for bad in ["1000", "0", "8192"] {
        let (status, _, stderr) = fxtor_run(&[
            "create",
            tmp.path().join("f").to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--piece-length",
            bad,
        ]);
        assert_eq!(status, 2, "{bad}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn download_and_seed_refuse_bad_input_with_2_and_missing_files_with_1() {
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.torrent");
    std::fs::write(&garbage, b"d4:infod4:name").unwrap();
    let out = tmp.path().join("out");
    let (g, o) = (garbage.to_str().unwrap(), out.to_str().unwrap());
    let cases: [(&[&str], i32); 7] = [
        (&["download", g, "-o", o, "--listen", "127.0.0.1:0"], 2),
        (&["download", "magnet:?xt=urn:btih:zz", "-o", o], 2),
        (&["download", g, "-o", o, "--peer", "not-an-address"], 2),
        (&["download", g], 2),
        (&["seed", g, o, "--listen", "127.0.0.1:0"], 2),
        (
            &[
                "download",
                "/nonexistent/x.torrent",
                "-o",
                o,
                "--listen",
                "127.0.0.1:0",
            ],
            1,
        ),
        (
            &[
                "seed",
                "/nonexistent/x.torrent",
                o,
                "--listen",
                "127.0.0.1:0",
            ],
            1,
        ),
    ];
    for (args, expected) in cases {
        let (status, _, stderr) = fxtor_run(args);
        assert_eq!(status, expected, "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        // Our own errors are one line; clap's argument errors come with a usage hint.
        if stderr.starts_with("fxtor:") {
            assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        } else {
            assert!(stderr.starts_with("error:"), "{args:?}: {stderr}");
        }
    }
}
