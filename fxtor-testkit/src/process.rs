//! Child processes: [`Running`] (killed when the test ends, however it ends), and the
//! adapters' download programs, which all take the flags of `fxtor download`.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A child process that is killed (SIGKILL) when dropped, with its output collected.
pub struct Running {
    child: Child,
    what: String,
    lines: mpsc::Receiver<String>,
    /// Every line it printed on stdout so far.
    pub stdout: Arc<Mutex<Vec<String>>>,
    /// What it printed on stderr so far.
    pub stderr: Arc<Mutex<String>>,
}

impl Running {
    /// Starts `cmd` with stdin closed and stdout and stderr collected.
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
        let out = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let all = stdout.clone();
        thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                all.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr is piped");
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
        match self.try_next_line(limit) {
            Some(line) => line,
            None => panic!("no line within {limit:?}: {}", self.output()),
        }
    }

    /// The next line on stdout, or `None` if none comes within `limit` or the process
    /// closes its output first (then what it wrote on stderr is collected before returning).
    pub fn try_next_line(&self, limit: Duration) -> Option<String> {
        match self.lines.recv_timeout(limit) {
            Ok(line) => Some(line),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Let the stderr reader catch up with the process's last words.
                thread::sleep(Duration::from_millis(300));
                None
            }
        }
    }

    /// How it exited, if it has.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
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
                    "its peer exited: {}\nwaiting: {}",
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

    /// Kills it at once (SIGKILL): it has no chance to save anything, and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `program` (an adapter's download program: `fxtor download`, or fxtor-async-std's
/// `download` example) given the flags of `fxtor download`: fetch `source` into `out` from
/// `peers`, listening on 127.0.0.1 only, with no DHT, keeping resume data in `resume`.
pub fn download_command(
    mut program: Command,
    source: &Path,
    out: &Path,
    peers: &[SocketAddr],
    resume: Option<&Path>,
) -> Command {
    program
        .arg(source)
        .arg("-o")
        .arg(out)
        .args(["--listen", "127.0.0.1:0", "--no-dht"]);
    for peer in peers {
        program.args(["--peer", &peer.to_string()]);
    }
    if let Some(resume) = resume {
        program.arg("--resume").arg(resume);
    }
    program
}

/// The executable of example `example` of package `package`, built (or found fresh) in the
/// profile this test runs in by the `cargo` that runs the test.
///
/// Integration tests are given the paths of their package's binaries but not of its
/// examples, and `cargo test --test NAME` does not build examples; so this asks cargo, which
/// answers at once when the example is up to date.
pub fn example_program(manifest_dir: &Path, package: &str, example: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(manifest_dir)
        .args(["build", "--quiet", "--message-format=json", "-p", package])
        .args(["--example", example]);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let out = crate::run_ok(&mut build);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == example)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo built no executable for example {example} of {package}"))
}
