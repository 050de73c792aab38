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
    (17, include_str!("../migrations/0017_outbox_by_number.sql")),
    (
        18,
        include_str!("../migrations/0018_reports_by_time_bucket.sql"),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Every column of the outbox as text, row by row in id order.
    fn outbox_rows(conn: &Connection) -> Vec<Vec<String>> {
        let mut select = conn
            .prepare(
                "SELECT id, la_code, kind, payload, created_at, available_at, attempts,
                     claimed_by, lease_until, delivered_at, last_error, push, failed_at,
                     feed_seq, retry_since
                 FROM outbox ORDER BY id",
            )
            .unwrap();
        let rows = select
            .query_map([], |row| {
                (0..15)
                    .map(|i| {
                        let value: rusqlite::types::Value = row.get(i)?;
                        Ok(format!("{value:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    /// Migration 17 keeps the outbox's rows by feed number: every item
    /// comes through it whole, parked, delivered, replayed or waiting.
    #[test]
    fn migration_0017_keeps_every_outbox_item_whole() {
        let mut conn = Connection::open_in_memory().unwrap();
        apply_up_to(&conn, 16);
        conn.execute_batch(
            "INSERT INTO outbox (id, la_code, kind, payload, created_at, available_at, attempts,
                 claimed_by, lease_until, delivered_at, last_error, push, failed_at, feed_seq,
                 retry_since)
             VALUES
                 ('0190a000-0000-7000-8000-000000000002', 'E09000007', 'access', '{\"a\":1}',
                  20, 25, 3, 'node-1', 40, NULL, 'HTTP 500', 1, 50, 7, 45),
                 ('0190a000-0000-7000-8000-000000000001', 'E10000016', 'repeat', '{\"b\":[1,2]}',
                  10, 10, 0, NULL, NULL, 30, NULL, 0, NULL, 3, NULL),
                 ('0190a000-0000-7000-8000-000000000003', 'E09000007', 'access', '{}',
                  30, 30, 0, NULL, NULL, NULL, NULL, 1, NULL, 8, NULL);",
        )
        .unwrap();
        let before = outbox_rows(&conn);
        apply(&mut conn).unwrap();
        assert_eq!(outbox_rows(&conn), before);
        let keyed_by_number: i64 = conn
            .query_row(
                "SELECT count(*) FROM outbox WHERE rowid = feed_seq",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(keyed_by_number, 3);
        let duplicate_id = conn.execute(
            "INSERT INTO outbox (feed_seq, id, la_code, kind, payload, created_at, available_at)
             VALUES (9, '0190a000-0000-7000-8000-000000000003', 'E09000007', 'access', '{}', 1, 1)",
            [],
        );
        assert!(duplicate_id.is_err(), "ids stay unique");
    }
}
