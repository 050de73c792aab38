//! The WAL is copied back into the database file by the store's own
//! checkpointing thread, since the writer never does it inside a commit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use cpis_sqlite::SqliteStore;
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
            .record_access(test_access(test_nhs_number(i), now, true), vec![], vec![])
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
