//! What the benchmarks share: the `sqlite3 .import` reference, a server on
//! 127.0.0.1 with a persona's token, and the process's peak memory.

#![allow(dead_code)]

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

/// The allocator the `cpis` binary uses, so that servers measured in the
/// benchmarks allocate as the real one does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use cpis_core::identity::development_identity;
use cpis_core::{Clock, Cpis, Limits, reference};
use cpis_domain::LaCode;
use cpis_store::Store;

/// The `q` quantile (0.5 for the median) of latencies sorted ascending.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// A benchmark's setting from the environment variable `name`, or
/// `default` when it is unset or not a number.
pub fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Seconds for the sqlite3 shell to import `csv` (no header row unless
/// `create_table` is `None`, when the first row names the columns) into a
/// bare table, in WAL mode with synchronous=FULL like the embedded store.
pub fn sqlite3_import(dir: &std::path::Path, csv: &[u8], create_table: Option<&str>) -> f64 {
    let file = dir.join("reference.csv");
    std::fs::write(&file, csv).unwrap();
    sqlite3_import_file(dir, &file, create_table)
}

/// `sqlite3 .import` of the CSV file at `file`; see [`sqlite3_import`].
#[allow(dead_code)]
pub fn sqlite3_import_file(
    dir: &std::path::Path,
    file: &std::path::Path,
    create_table: Option<&str>,
) -> f64 {
    let script = format!(
        "PRAGMA journal_mode=WAL;\nPRAGMA synchronous=FULL;\n{}\n.mode csv\n.import {} plan\n",
        create_table.unwrap_or(""),
        file.display()
    );
    let started = Instant::now();
    let mut child = std::process::Command::new("sqlite3")
        .arg(dir.join("reference.db"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the sqlite3 shell (Debian package sqlite3) is needed for the reference");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    started.elapsed().as_secs_f64()
}

/// A development server on `store`, with the reference data, answering on
/// 127.0.0.1; returns its URL, a token for `persona` of `la`, and the service.
pub async fn start_server<S: Store>(
    store: S,
    la: &str,
    persona: &str,
    limits: Limits,
) -> (String, String, Arc<Cpis<S>>, tokio::net::TcpListener) {
    start_server_with(store, la, persona, |cpis| cpis.with_limits(limits)).await
}

/// [`start_server`], with the service set up by `configure`.
pub async fn start_server_with<S: Store>(
    store: S,
    la: &str,
    persona: &str,
    configure: impl FnOnce(Cpis<S>) -> Cpis<S>,
) -> (String, String, Arc<Cpis<S>>, tokio::net::TcpListener) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let la = LaCode::parse(la).unwrap();
    let identity = development_identity(&url, la).await.unwrap();
    let found = cpis_auth::personas(la)
        .into_iter()
        .find(|p| p.name == persona)
        .unwrap();
    let token = identity
        .own
        .issue_persona(&found, "cpis", None, time::OffsetDateTime::now_utc())
        .unwrap();
    let store = Arc::new(store);
    store
        .put_local_authorities(reference::local_authorities().unwrap())
        .await
        .unwrap();
    let app = Arc::new(configure(Cpis::new(store, Clock::system(), identity)));
    (url, token, app, listener)
}

/// Starts a new peak for [`peak_memory`] (Linux's `clear_refs` value 5).
#[allow(dead_code)]
pub fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident memory (VmHWM).
pub fn peak_memory() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM"))
                .map(|line| line.trim_start_matches("VmHWM:").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned())
}
