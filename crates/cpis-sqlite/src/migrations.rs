//! Versioned schema migrations, applied in order at start-up.
//!
//! The version applied last is kept in SQLite's `user_version`. Each
//! migration runs in its own exclusive transaction, so a crash mid-way leaves
//! the previous version intact and the next start applies it again.

use cpis_store::{StoreError, StoreResult};
use rusqlite::{Connection, TransactionBehavior};

use crate::rows::DbResult;

/// Every migration, by version. Keep in step with cpis-postgres's list.
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
];

/// Brings a new database only up to `version`, as an older cpis left it,
/// for tests of a migration's own work on existing rows.
#[cfg(test)]
pub(crate) fn apply_up_to(conn: &Connection, version: i64) {
    for (_, sql) in MIGRATIONS.iter().filter(|(v, _)| *v <= version) {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", version).unwrap();
}

/// The schema version this cpis brings a database to.
pub(crate) fn newest() -> i64 {
    MIGRATIONS.last().map_or(0, |(version, _)| *version)
}

/// The schema version of the database `conn` is open on.
pub(crate) fn current(conn: &Connection) -> StoreResult<i64> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
        .db()
}

pub(crate) fn apply(conn: &mut Connection) -> StoreResult<()> {
    let (current, newest) = (current(conn)?, newest());
    if current > newest {
        return Err(StoreError::Conflict(format!(
            "the database is at schema version {current}, newer than this cpis knows ({newest}); run a newer cpis"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(version, _)| *version > current) {
        // Said before, not only after: one that rebuilds an index over the
        // access log takes about 7 s a million looks (migration 0014), and
        // the service does not answer meanwhile.
        tracing::info!(version, "applying database migration");
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Exclusive)
            .db()?;
        tx.execute_batch(sql).db()?;
        tx.pragma_update(None, "user_version", version).db()?;
        tx.commit().db()?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}
