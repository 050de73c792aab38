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
    let tx = client.transaction().await.db()?;
    // A migration that rebuilds an index or reads the access log whole
    // (16, 18) takes about a second a million records: on a large log that
    // outlasts the pool's statement timeout, and the node would never
    // start. A node starting meanwhile waits for it here, in the insert
    // (the row is the migrating transaction's) or in the lock, so its
    // statements have no timeout either.
    tx.batch_execute("SET LOCAL statement_timeout = 0")
        .await
        .db()?;
    tx.execute(
        "INSERT INTO cpis_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
        &[],
    )
    .await
    .db()?;
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
    use cpis_store::encoding::{REPORT_BUCKET_SHIFT, from_micros};
    use cpis_store::log::id_at;
    use cpis_store::{AccessFilter, AccessQuery, Store};
    use time::macros::datetime;
    use time::{Duration, OffsetDateTime};

    use super::MIGRATIONS;
    use crate::testing::TestSchema;

    /// Migration 18 buckets looks as the reports read them.
    #[test]
    fn migration_0018_buckets_as_the_reports_read() {
        let shifted = format!("at >> {REPORT_BUCKET_SHIFT}");
        let migration = include_str!("../migrations/0018_reports_by_time_bucket.sql");
        assert_eq!(migration.matches(&shifted).count(), 4);
    }

    /// Migration 18 buckets the looks already recorded and every look
    /// written after it, so that the reports that now read by bucket still
    /// find every one of them, and retention removes only the buckets of
    /// looks it removed.
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
        // Three users of two organisations, a look a second: many buckets,
        // most holding more than one look of a user and of an organisation.
        let start = datetime!(2026-12-08 09:00 UTC);
        let mut looks: Vec<_> = (0..60)
            .map(|n| {
                let at = start + Duration::seconds(i64::from(n));
                let mut look = test_access(test_nhs_number(n), at, n % 5 != 0);
                look.user_id = format!("55500000000{}", n % 3);
                look.organisation_code =
                    OdsCode::parse(["X99ED", "ZZB02"][n as usize % 2]).unwrap();
                look
            })
            .collect();
        // A record of cpis's first days: its id from the clock just before
        // its time, here across the start of a bucket.
        let bucket_start = |at: OffsetDateTime| {
            from_micros(crate::rows::micros(at) >> REPORT_BUCKET_SHIFT << REPORT_BUCKET_SHIFT)
                .unwrap()
        };
        let lagging = &mut looks[55];
        lagging.at = bucket_start(lagging.at) + Duration::milliseconds(100);
        lagging.id = id_at(lagging.at - Duration::milliseconds(900));
        // Bucket edges fall within a millisecond, not on one. A look in the
        // millisecond a bucket ends in, before the end: its id is of that
        // millisecond too.
        let edge_after = |at: OffsetDateTime| {
            let bucket = crate::rows::micros(at) >> REPORT_BUCKET_SHIFT;
            from_micros((bucket + 1) << REPORT_BUCKET_SHIFT).unwrap()
        };
        let floor_ms =
            |at: OffsetDateTime| at - Duration::microseconds(i64::from(at.microsecond() % 1000));
        let ending = edge_after(start + Duration::seconds(42));
        assert!(
            floor_ms(ending) < ending,
            "the edge is within a millisecond"
        );
        let mut look = test_access(test_nhs_number(60), floor_ms(ending), true);
        look.user_id = "555000000000".to_owned();
        looks.push(look);
        // Retention's cut just after a bucket's edge, in the same
        // millisecond, and a look it keeps before the edge: its id is of the
        // cut's millisecond, its bucket the one before the cut's.
        let edge = edge_after(start + Duration::seconds(30));
        let cut = edge + Duration::microseconds(200);
        assert!(
            floor_ms(cut) < edge,
            "the cut shares the edge's millisecond"
        );
        let mut look = test_access(test_nhs_number(61), floor_ms(cut), true);
        look.user_id = "555000000001".to_owned();
        looks.push(look);
        // Each batch in one statement, as the looks' own is.
        let insert =
            |looks: &[AccessRecord]| {
                let column =
                    |f: fn(&AccessRecord) -> String| looks.iter().map(f).collect::<Vec<_>>();
                let ids: Vec<_> = looks.iter().map(|look| look.id).collect();
                let times: Vec<_> = looks
                    .iter()
                    .map(|look| crate::rows::micros(look.at))
                    .collect();
                let numbers: Vec<_> = looks
                    .iter()
                    .map(|look| crate::rows::nhs(look.nhs_number))
                    .collect();
                let unscheduled: Vec<_> = looks.iter().map(|look| look.unscheduled).collect();
                let texts = [
                    column(|look| look.user_id.clone()),
                    column(|look| look.user_name.clone()),
                    column(|look| look.role_code.clone()),
                    column(|look| look.role_name.clone()),
                    column(|look| look.activity_code.clone()),
                    column(|look| look.organisation_code.as_str().to_owned()),
                    column(|look| look.organisation_name.clone()),
                    column(|look| look.setting_type.code().to_owned()),
                    column(|look| look.request_id.clone()),
                ];
                let client = &client;
                async move {
                    client
                    .execute(
                        "INSERT INTO access_log (id, at, nhs_number, user_id, user_name, role_code,
                             role_name, activity_code, organisation_code, organisation_name,
                             setting_type, unscheduled, returned, request_id)
                         SELECT i, a, n, u, un, rc, rn, ac, oc, o, st, s, '[]', r
                         FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::text[],
                             $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                             $10::text[], $11::text[], $12::boolean[], $13::text[])
                             AS l (i, a, n, u, un, rc, rn, ac, oc, o, st, s, r)",
                        &[
                            &ids, &times, &numbers, &texts[0], &texts[1], &texts[2], &texts[3],
                            &texts[4], &texts[5], &texts[6], &texts[7], &unscheduled, &texts[8],
                        ],
                    )
                    .await
                    .unwrap();
                }
            };
        let (before, after) = looks.split_at(45);
        insert(before).await;
        let store = schema.store().await;
        // Written after the migration by a statement of its own, as a node
        // of an older cpis still running would: bucketed all the same.
        insert(after).await;
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
        let filters: Vec<AccessFilter> = (0..3)
            .map(|n| AccessFilter::User(format!("55500000000{n}")))
            .chain(
                ["X99ED", "ZZB02"]
                    .map(|code| AccessFilter::Organisation(OdsCode::parse(code).unwrap())),
            )
            .collect();
        let check = |kept: Vec<AccessRecord>| {
            let store = &store;
            let filters = filters.clone();
            async move {
                for filter in filters {
                    let mut expected: Vec<_> = kept
                        .iter()
                        .filter(|look| match &filter {
                            AccessFilter::User(user) => look.user_id == *user,
                            AccessFilter::Organisation(code) => look.organisation_code == *code,
                            AccessFilter::NhsNumber(_) => unreachable!(),
                        })
                        .map(|look| (look.at, look.id))
                        .collect();
                    expected.sort();
                    let found: Vec<_> = store
                        .accesses(query(filter.clone()))
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|look| (look.at, look.id))
                        .collect();
                    assert_eq!(found, expected, "{filter:?}");
                }
            }
        };
        check(looks.clone()).await;

        let buckets_before = |at: OffsetDateTime| {
            let client = &client;
            let bucket = crate::rows::micros(at) >> REPORT_BUCKET_SHIFT;
            async move {
                client
                    .query_one(
                        "SELECT (SELECT count(*) FROM access_user_bucket WHERE bucket < $1)
                              + (SELECT count(*) FROM access_organisation_bucket WHERE bucket < $1)",
                        &[&bucket],
                    )
                    .await
                    .unwrap()
                    .get::<_, i64>(0)
            }
        };
        assert!(buckets_before(cut).await > 0);
        let retention = cpis_store::log::RetentionRecord {
            id: uuid::Uuid::now_v7(),
            at: start + Duration::days(1),
            access_before: cut,
            plans_withdrawn_before: start.date(),
            plans_ended_before: start.date(),
            removed_access: 0,
            removed_plans: 0,
        };
        let removed = store.apply_retention(retention).await.unwrap();
        let (gone, kept): (Vec<_>, Vec<_>) = looks
            .iter()
            .cloned()
            .partition(|look| look.id < cpis_store::log::first_id_at(cut));
        assert_eq!(removed.removed_access, gone.len() as u64);
        assert_eq!(
            buckets_before(bucket_start(cut) - Duration::microseconds(1)).await,
            0,
            "old buckets stay"
        );
        check(kept).await;
    }
}
