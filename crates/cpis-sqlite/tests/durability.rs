//! A write is answered only once the WAL file SQLite writes to is synced.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use cpis_sqlite::{DATABASE_FILE, SqliteStore};
use cpis_store::Store;
use cpis_store::conformance::{test_access, test_nhs_number};

/// With the database file reached through a symbolic link, SQLite's WAL
/// sits beside the link's target, not in the data directory; a stale WAL
/// left in the data directory must not be the one synced. (Linux: the
/// files held open are read from `/proc/self/fd`.)
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_synced_is_the_one_sqlite_writes_even_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let (data, elsewhere) = (dir.path().join("data"), dir.path().join("elsewhere"));
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(elsewhere.join(DATABASE_FILE), data.join(DATABASE_FILE)).unwrap();
    let stale = data.join(format!("{DATABASE_FILE}-wal"));
    std::fs::write(&stale, b"").unwrap();

    let store = SqliteStore::open(&data).unwrap();
    let child = test_nhs_number(1);
    store
        .record_access(
            test_access(child, time::OffsetDateTime::now_utc(), true),
            vec![],
            None,
        )
        .await
        .unwrap();

    let wal = elsewhere.join(format!("{DATABASE_FILE}-wal"));
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 0,
        "SQLite writes the WAL beside the target"
    );
    assert_eq!(std::fs::metadata(&stale).unwrap().len(), 0);
    let stale = stale.canonicalize().unwrap();
    let open_files = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.unwrap().path()).ok());
    for file in open_files {
        assert_ne!(file, stale, "nothing holds the stale WAL open to sync it");
    }
    assert_eq!(
        store
            .recent_unscheduled_accesses(child, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}
