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
    (
        18,
        include_str!("../migrations/0018_reports_by_time_bucket.sql"),
    ),
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use cpis_domain::{AccessRecord, OdsCode};
    use cpis_store::conformance::{test_access, test_nhs_number};
    use cpis_store::{AccessFilter, AccessQuery, Store};
    use time::macros::datetime;
    use time::{Duration, OffsetDateTime};

    use super::MIGRATIONS;
    use crate::testing::TestSchema;

    /// Migration 18 buckets looks as the reports read them.
    #[test]
    fn migration_0018_buckets_as_the_reports_read() {
        let shifted = format!("at >> {}", cpis_store::encoding::REPORT_BUCKET_SHIFT);
        let migration = include_str!("../migrations/0018_reports_by_time_bucket.sql");
        assert_eq!(migration.matches(&shifted).count(), 4);
    }

    /// Migration 18 buckets the looks already recorded and every look
    /// written after it, so that the reports that now read by bucket still
    /// find every one of them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn migration_0018_buckets_every_look_before_and_after_it() {
        let Some(schema) = TestSchema::new("the migration 18 test") else {
            return;
        };
        schema.create_empty().await;
        let (client, connection) =
            tokio_postgres::connect(&schema.url_with_search_path(), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(
                "CREATE TABLE cpis_schema (id INTEGER PRIMARY KEY, version BIGINT NOT NULL);
                            INSERT INTO cpis_schema (id, version) VALUES (1, 17);",
            )
            .await
            .unwrap();
        for (_, sql) in MIGRATIONS.iter().filter(|(version, _)| *version <= 17) {
            client.batch_execute(sql).await.unwrap();
        }
        // Three users of two organisations, over a few minutes: many
        // buckets, some shared.
        let start = datetime!(2026-12-08 09:00 UTC);
        let looks: Vec<_> = (0..60)
            .map(|n| {
                let at = start + Duration::seconds(i64::from(n) * 7);
                let mut look = test_access(test_nhs_number(n), at, n % 5 != 0);
                look.id = cpis_store::log::id_at(at);
                look.user_id = format!("55500000000{}", n % 3);
                look.organisation_code =
                    OdsCode::parse(["X99ED", "ZZB02"][n as usize % 2]).unwrap();
                look
            })
            .collect();
        let insert = |look: &AccessRecord| {
            let client = &client;
            let look = look.clone();
            async move {
                client
                    .execute(
                        "INSERT INTO access_log (id, at, nhs_number, user_id, user_name, role_code,
                         role_name, activity_code, organisation_code, organisation_name,
                         setting_type, unscheduled, returned, request_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, '[]', $13)",
                        &[
                            &look.id,
                            &crate::rows::micros(look.at),
                            &crate::rows::nhs(look.nhs_number),
                            &look.user_id,
                            &look.user_name,
                            &look.role_code,
                            &look.role_name,
                            &look.activity_code,
                            &look.organisation_code.as_str(),
                            &look.organisation_name,
                            &look.setting_type.code(),
                            &look.unscheduled,
                            &look.request_id,
                        ],
                    )
                    .await
                    .unwrap();
            }
        };
        let (before, after) = looks.split_at(50);
        for look in before {
            insert(look).await;
        }
        let store = schema.store().await;
        // Written after the migration by a statement of its own, as a node
        // of an older cpis still running would: bucketed all the same.
        for look in after {
            insert(look).await;
        }
        let version: i64 = client
            .query_one("SELECT version FROM cpis_schema WHERE id = 1", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(version, super::newest());
        let query = |filter| AccessQuery {
            filter,
            from: OffsetDateTime::UNIX_EPOCH,
            to: start + Duration::days(1),
            after: None,
            limit: 1000,
        };
        let filters = (0..3)
            .map(|n| AccessFilter::User(format!("55500000000{n}")))
            .chain(
                ["X99ED", "ZZB02"]
                    .map(|code| AccessFilter::Organisation(OdsCode::parse(code).unwrap())),
            );
        for filter in filters {
            let expected: Vec<_> = looks
                .iter()
                .filter(|look| match &filter {
                    AccessFilter::User(user) => look.user_id == *user,
                    AccessFilter::Organisation(code) => look.organisation_code == *code,
                    AccessFilter::NhsNumber(_) => unreachable!(),
                })
                .map(|look| look.id)
                .collect();
            let found: Vec<_> = store
                .accesses(query(filter.clone()))
                .await
                .unwrap()
                .into_iter()
                .map(|look| look.id)
                .collect();
            assert_eq!(found, expected, "{filter:?}");
        }
    }
}
