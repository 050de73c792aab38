//! Helpers shared by the integration tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use cpis_core::{Clock, Cpis};
use cpis_sqlite::SqliteStore;
use tokio::sync::oneshot;

/// A server started in this process on a fresh embedded store.
pub struct TestServer {
    pub url: String,
    #[allow(dead_code)]
    pub app: Arc<Cpis<SqliteStore>>,
    stop: Option<oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let app = Arc::new(Cpis::new(store, Clock::system()));
        app.seed_reference_data().await.unwrap();
        let listener = cpis::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = app.clone();
        tokio::spawn(async move {
            cpis::serve(listener, served, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        TestServer {
            url,
            app,
            stop: Some(stop),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The `cpis` binary built for these tests, with no `CPIS_` variables from
/// the test environment leaking in.
pub fn cpis() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cpis"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CPIS_") {
            command.env_remove(key);
        }
    }
    command.env("CPIS_LOG", "warn");
    command
}

/// Runs `cpis` to completion, expecting it to fail at start-up; returns its
/// exit code and standard error.
pub fn fails_to_start(command: &mut Command) -> (Option<i32>, String) {
    let output = command
        .stdin(Stdio::null())
        .output()
        .expect("cpis runs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A `cpis` process running in the background, stopped when dropped.
pub struct Running {
    pub child: Child,
    pub stdout_lines: Vec<String>,
}

impl Running {
    /// Starts `command` and reads its standard output until a line contains
    /// `ready_marker`.
    pub fn start(command: &mut Command, ready_marker: &str) -> Running {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cpis starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut reader = BufReader::new(stdout);
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = reader.read_line(&mut line).expect("readable stdout");
            assert!(read > 0, "cpis exited before it was ready: {lines:?}");
            let ready = line.contains(ready_marker);
            lines.push(line.trim_end().to_owned());
            if ready {
                break;
            }
        }
        // Keep draining so that the process never blocks on a full pipe.
        std::thread::spawn(move || for _ in reader.lines() {});
        Running {
            child,
            stdout_lines: lines,
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().expect("wait works") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("cpis did not stop within 5 seconds of SIGTERM");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in a line such as `cpis demo is ready at http://127.0.0.1:1234 (...)`.
pub fn address_in(line: &str) -> SocketAddr {
    let start = line.find("http://").expect("a URL") + "http://".len();
    let rest = &line[start..];
    let end = rest.find(' ').unwrap_or(rest.len());
    rest[..end].parse().expect("an address")
}

pub fn free_port_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

pub fn write_file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
