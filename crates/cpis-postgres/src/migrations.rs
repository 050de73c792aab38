//! Versioned schema migrations, applied at start-up under a row lock.
//!
//! The lock is a plain row (`cpis_schema`, id 1) taken with `SELECT … FOR
//! UPDATE` in the migrating transaction: a node starting while another
//! migrates waits for it, then finds nothing left to do. A row lock rather
//! than an advisory lock, so that distributed engines run it too.

use cpis_store::{StoreError, StoreResult};
use deadpool_postgres::Object;

use crate::rows::{DbResult, ignore_concurrent_create};

/// Every migration, by version. Keep in step with cpis-sqlite's list.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_initial.sql")),
    (2, include_str!("../migrations/0002_identity.sql")),
    (3, include_str!("../migrations/0003_uploads.sql")),
    (4, include_str!("../migrations/0004_notifications.sql")),
    (5, include_str!("../migrations/0005_log.sql")),
    (6, include_str!("../migrations/0006_reports.sql")),
    (7, include_str!("../migrations/0007_retention.sql")),
    (8, include_str!("../migrations/0008_feed_counter.sql")),
    (9, include_str!("../migrations/0009_outbox_by_la.sql")),
    (10, include_str!("../migrations/0010_attendance_index.sql")),
    (11, include_str!("../migrations/0011_latest_by_feed.sql")),
    (
        12,
        include_str!("../migrations/0012_feed_index_in_bulk.sql"),
    ),
    (
        13,
        include_str!("../migrations/0013_attendance_by_organisation.sql"),
    ),
    (
        14,
        include_str!("../migrations/0014_reports_by_time_bucket.sql"),
    ),
    (
        15,
        include_str!("../migrations/0015_outbox_retention_by_id.sql"),
    ),
    (
        16,
        include_str!("../migrations/0016_access_log_key_by_child.sql"),
    ),
    (17, include_str!("../migrations/0017_outbox_by_number.sql")),
];

/// The schema version this cpis brings a database to.
fn newest() -> i64 {
    MIGRATIONS.last().map_or(0, |(version, _)| *version)
}

/// Fails unless the database's schema is the one this cpis brings it to.
pub(crate) async fn check(client: &Object) -> StoreResult<()> {
    let found = client
        .query_opt("SELECT version FROM cpis_schema WHERE id = 1", &[])
        .await;
    let current: i64 = match found {
        Ok(Some(row)) => row.try_get(0).db()?,
        Ok(None) => 0,
        Err(error) if error.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => 0,
        Err(error) => return Err(error).db(),
    };
    cpis_store::refuse_other_schema("the database", current, newest())
}

pub(crate) async fn apply(client: &mut Object) -> StoreResult<()> {
    // Two nodes may race to create the lock table; the loser's error is harmless.
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS cpis_schema (id INTEGER PRIMARY KEY, version BIGINT NOT NULL)",
        )
        .await
        .or_else(ignore_concurrent_create)
        .db()?;
    client
        .execute(
            "INSERT INTO cpis_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
            &[],
        )
        .await
        .db()?;
    let tx = client.transaction().await.db()?;
    let current: i64 = tx
        .query_one(
            "SELECT version FROM cpis_schema WHERE id = 1 FOR UPDATE",
            &[],
        )
        .await
        .db()?
        .get(0);
    let newest = newest();
    if current > newest {
        return Err(StoreError::Conflict(format!(
            "the database is at schema version {current}, newer than this cpis knows ({newest}); run a newer cpis"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > current) {
        tx.batch_execute(sql).await.db()?;
        tx.execute(
            "UPDATE cpis_schema SET version = $1 WHERE id = 1",
            &[version],
        )
        .await
        .db()?;
        tracing::info!(version, "applied database migration");
    }
    tx.commit().await.db()
}
