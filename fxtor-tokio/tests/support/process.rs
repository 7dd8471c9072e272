//! Child processes a test runs beside it (seeders, downloads), killed when the test ends.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{lt_script, PYTHON};

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

/// libtorrent seeding `torrent` from `save_path`; its address once it has checked its data
/// (within `limit`).
pub fn lt_seed(
    torrent: &Path,
    save_path: &Path,
    upload_limit: Option<u64>,
    limit: Duration,
) -> (Running, SocketAddr) {
    let mut cmd = Command::new(PYTHON);
    cmd.arg(lt_script()).arg("seed").arg(torrent).arg(save_path);
    if let Some(bytes_per_second) = upload_limit {
        cmd.args(["--upload-limit", &bytes_per_second.to_string()]);
    }
    let seeder = Running::spawn(&mut cmd);
    let line = seeder.next_line(limit);
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{}", seeder.output()));
    assert_eq!(v["state"], "seeding", "{}", seeder.output());
    let port = v["port"].as_u64().unwrap() as u16;
    (seeder, SocketAddr::from(([127, 0, 0, 1], port)))
}
