//! What the end-to-end tests share: the `fxtor` binary, libtorrent through Debian's
//! python3-libtorrent, and the independent torrent makers.
//!
//! A tool that is missing fails the test loudly under `CI=true`; elsewhere the test says what
//! is missing and returns early, so `cargo test` on a bare machine still runs the rest.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Debian's interpreter, the one python3-libtorrent is installed for.
pub const PYTHON: &str = "/usr/bin/python3";

/// Whether the test runs in CI, where every tool must be there.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Checks a tool is installed. In CI a missing tool is a failure; elsewhere the caller skips.
pub fn require(what: &str, present: bool) -> bool {
    if !present {
        assert!(!in_ci(), "{what} is missing: run .ci/install-deps");
        eprintln!("skipping: {what} is not installed (run .ci/install-deps)");
    }
    present
}

/// Whether python3-libtorrent is importable.
pub fn have_libtorrent() -> bool {
    require(
        "python3-libtorrent",
        Command::new(PYTHON)
            .args(["-c", "import libtorrent"])
            .output()
            .is_ok_and(|o| o.status.success()),
    )
}

/// Whether an executable is on PATH.
pub fn have_tool(name: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
        .unwrap_or(false);
    require(name, found)
}

/// Runs a command and insists it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The `fxtor` program built with this test, its DHT off (`FXTOR_NO_DHT=1`): no test may
/// reach the public DHT routers the program joins through by default.
pub fn fxtor() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fxtor"));
    cmd.env("FXTOR_NO_DHT", "1");
    cmd
}

/// `fxtor SUBCOMMAND` with its DHT on, joining only through `bootstrap`, which must be
/// loopback addresses (it panics otherwise): `--dht-bootstrap` replaces the default list.
pub fn fxtor_with_dht(subcommand: &str, bootstrap: &[std::net::SocketAddr]) -> Command {
    assert!(
        !bootstrap.is_empty(),
        "a DHT test names its bootstrap nodes"
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fxtor"));
    cmd.env_remove("FXTOR_NO_DHT").arg(subcommand);
    for node in bootstrap {
        assert!(
            node.ip().is_loopback(),
            "{node} is not a loopback address: tests stay on loopback"
        );
        cmd.arg("--dht-bootstrap").arg(node.to_string());
    }
    cmd
}

/// The DHT bootstrap nodes a command was given, and whether its DHT is off.
pub fn dht_of(cmd: &Command) -> (Vec<String>, bool) {
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let nodes = args
        .windows(2)
        .filter(|w| w[0] == "--dht-bootstrap")
        .map(|w| w[1].clone())
        .collect();
    let off = cmd
        .get_envs()
        .any(|(k, v)| k == "FXTOR_NO_DHT" && v.is_some_and(|v| v == "1"))
        || args.iter().any(|a| a == "--no-dht");
    (nodes, off)
}

/// Runs `fxtor info --json` on a torrent or link.
pub fn fxtor_info(source: &str) -> Value {
    let out = run_ok(fxtor().args(["info", "--json", source]));
    serde_json::from_slice(&out.stdout).expect("fxtor info --json prints JSON")
}

/// The interop script driving libtorrent.
pub fn lt_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/lt.py")
}

/// Runs the libtorrent script and parses its JSON answer (when it prints one).
pub fn lt(args: &[&str]) -> Value {
    let out = run_ok(Command::new(PYTHON).arg(lt_script()).args(args));
    if out.stdout.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout).expect("lt.py prints JSON")
    }
}

/// Writes `len` bytes of deterministic pseudo-random data (a simple xorshift stream).
pub fn write_data(path: &Path, len: usize, seed: u64) {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(len);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create data directory");
    }
    std::fs::write(path, data).expect("write data file");
}

/// A child process that is killed when the test ends, however it ends.
pub struct Running {
    child: Child,
    what: String,
    lines: mpsc::Receiver<String>,
    /// Every line it printed on stdout so far.
    pub stdout: Arc<Mutex<Vec<String>>>,
    /// Everything it printed on stderr so far.
    pub stderr: Arc<Mutex<String>>,
}

impl Running {
    /// Starts it, with stdout and stderr captured.
    pub fn spawn(cmd: &mut Command) -> Self {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let out = BufReader::new(child.stdout.take().unwrap());
        let all = stdout.clone();
        thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                all.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let all = stderr.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                all.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self {
            child,
            what,
            lines,
            stdout,
            stderr,
        }
    }

    /// What it printed so far, for failure messages.
    pub fn output(&self) -> String {
        format!(
            "{}\nstdout:\n{}\nstderr:\n{}",
            self.what,
            self.stdout.lock().unwrap().join("\n"),
            self.stderr.lock().unwrap()
        )
    }

    /// The next line on stdout.
    pub fn next_line(&self, limit: Duration) -> String {
        self.lines
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("no line within {limit:?}: {}", self.output()))
    }

    /// Waits for it to exit; its exit status.
    pub fn wait(&mut self, limit: Duration) -> i32 {
        self.wait_beside(limit, None)
    }

    /// Waits for it to exit while `partner` (the peer it needs) keeps running.
    pub fn wait_beside(&mut self, limit: Duration, mut partner: Option<&mut Running>) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(partner) = partner.as_deref_mut() {
                assert!(
                    !partner.has_exited(),
                    "its peer exited: {}
waiting: {}",
                    partner.output(),
                    self.output()
                );
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads catch the last output.
                thread::sleep(Duration::from_millis(100));
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "still running after {limit:?}: {}",
                self.output()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether it has exited.
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
