//! The WAL is copied back into the database file by the store's own
//! checkpointing thread, since the writer never does it inside a commit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use cpis_sqlite::{SqliteSettings, SqliteStore};
use cpis_store::Store;
use cpis_store::conformance::{test_access, test_nhs_number};

fn file_size(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_the_database_file_without_the_writer_checkpointing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    let database = store.path().to_owned();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = file_size(&database);
    let now = time::OffsetDateTime::now_utc();
    for i in 0..2_000 {
        store
            .record_access(test_access(test_nhs_number(i), now, true), vec![], None)
            .await
            .unwrap();
    }
    // Within a few of the checkpointer's rounds, the records are in the file.
    let mut grown = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if file_size(&database) > before + 100_000 {
            grown = true;
            break;
        }
    }
    assert!(
        grown,
        "the database file stayed at {} bytes (was {before})",
        file_size(&database)
    );
}

/// The WAL header's checkpoint sequence number (bytes 12 to 16, big-endian,
/// in SQLite's file format), which goes up each time the WAL starts again.
fn wal_restarts(database: &std::path::Path) -> u32 {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    let header = std::fs::read(wal).unwrap_or_default();
    header
        .get(12..16)
        .map(|bytes| u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        .unwrap_or(0)
}

/// Readers that never stop keep a passive checkpoint from ever letting the
/// WAL start again, so without the writer's restart the file would only
/// grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_starts_again_under_unbroken_reads_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let settings = SqliteSettings {
        wal_restart_frames: 64,
    };
    let store = std::sync::Arc::new(SqliteStore::open_with(dir.path(), settings).unwrap());
    let database = store.path().to_owned();
    let now = time::OffsetDateTime::now_utc();
    store
        .record_access(test_access(test_nhs_number(0), now, true), vec![], None)
        .await
        .unwrap();
    let before = wal_restarts(&database);
    let reading = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, reading) = (store.clone(), reading.clone());
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                while reading.load(std::sync::atomic::Ordering::Relaxed) {
                    runtime
                        .block_on(store.recent_unscheduled_accesses(test_nhs_number(0), 5))
                        .unwrap();
                }
            })
        })
        .collect();
    let started = std::time::Instant::now();
    let mut i = 1;
    while started.elapsed() < Duration::from_secs(2) {
        store
            .record_access(test_access(test_nhs_number(i), now, true), vec![], None)
            .await
            .unwrap();
        i += 1;
    }
    reading.store(false, std::sync::atomic::Ordering::Relaxed);
    for reader in readers {
        reader.join().unwrap();
    }
    let restarts = wal_restarts(&database).wrapping_sub(before);
    assert!(restarts > 0, "the WAL never started again");
}
