//! The store conformance suite, run against the embedded store.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use cpis_sqlite::SqliteStore;
use cpis_store::conformance::Fixture;

async fn fresh_store() -> Option<Fixture<SqliteStore>> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(dir.path()).expect("a fresh store opens");
    Some(Fixture {
        store: Arc::new(store),
        guard: Box::new(dir),
    })
}

cpis_store::conformance_tests!(fresh_store);
