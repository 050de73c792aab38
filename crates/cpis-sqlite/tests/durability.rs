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

/// Looks whose tasks were cancelled after their writes were sent (a client
/// that went away, a loop stopped at shutdown) are still written by the
/// writer thread; dropping the store waits for that, so that nothing is
/// written once the store, and with it the data directory's lock, is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_store_waits_for_the_writes_already_sent() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(dir.path()).unwrap());
    let now = time::OffsetDateTime::now_utc();
    let looks: Vec<_> = (0..2_000)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let access = test_access(test_nhs_number(n % 100), now, true);
                store.record_access(access, vec![], None).await
            })
        })
        .collect();
    // Until some have been answered, so that the rest are queued or running.
    while !looks.iter().any(tokio::task::JoinHandle::is_finished) {
        tokio::task::yield_now().await;
    }
    for look in &looks {
        look.abort();
    }
    for look in looks {
        let _ = look.await;
    }
    let store = std::sync::Arc::into_inner(store).expect("no look holds the store");
    // On a thread of its own, so that a drop that never ends fails the test.
    let (dropped, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(store);
        let _ = dropped.send(());
    });
    done.recv_timeout(std::time::Duration::from_secs(30))
        .expect("dropping the store ends");

    let written = || {
        let conn = rusqlite::Connection::open(dir.path().join(DATABASE_FILE)).unwrap();
        conn.query_row("SELECT count(*) FROM access_log", [], |row| {
            row.get::<_, i64>(0)
        })
        .unwrap()
    };
    let at_drop = written();
    assert!(at_drop > 0);
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        written(),
        at_drop,
        "a write ran after the store was dropped"
    );
}

/// The store opened only to read (`cpis audit verify`) holds no lock on the
/// data directory, so it must write nothing there: not even the copy of the
/// WAL into the database file that SQLite makes when the last connection
/// closes. Its writes are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_opened_to_read_leaves_the_wal_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    drop(SqliteStore::open(dir.path()).unwrap());
    let database = dir.path().join(DATABASE_FILE);
    let wal = dir.path().join(format!("{DATABASE_FILE}-wal"));
    {
        // A server that stopped without copying its WAL back.
        let conn = rusqlite::Connection::open(&database).unwrap();
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .unwrap();
        conn.execute_batch(
            "PRAGMA wal_autocheckpoint = 0;
             INSERT INTO meta (key, value) VALUES ('left-in-the-wal', 'yes');",
        )
        .unwrap();
    }
    let (wal_before, database_before) = (
        std::fs::read(&wal).unwrap(),
        std::fs::read(&database).unwrap(),
    );
    assert!(!wal_before.is_empty());

    let store = SqliteStore::open_to_read(dir.path()).unwrap();
    assert_eq!(
        store.meta("left-in-the-wal").await.unwrap().as_deref(),
        Some("yes")
    );
    let refused = store
        .record_access(
            test_access(test_nhs_number(1), time::OffsetDateTime::now_utc(), true),
            vec![],
            None,
        )
        .await;
    assert!(refused.is_err(), "{refused:?}");
    drop(store);
    assert_eq!(std::fs::read(&wal).unwrap(), wal_before);
    assert_eq!(std::fs::read(&database).unwrap(), database_before);
}
