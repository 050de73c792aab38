//! SQL for the plan, access-log and outbox tables, and conversions between
//! rows and domain types. Anything read back is parsed again: a row that does
//! not parse is reported as corrupt, never passed on.

use cpis_domain::{
    AccessRecord, Attendance, LaCode, LocalAuthority, LocalReference, NhsNumber, OdsCode,
    Organisation, PhoneNumber, Plan, PlanFields, PlanKey, PlanType, RepeatRule, SettingType,
    format_iso_date, parse_iso_date,
};
use cpis_store::log::{Checkpoint, LogKind, ReportRecord, RetentionRecord};
use cpis_store::merkle::Hash;
use cpis_store::{
    AccessQuery, AlertWording, AppliedPlans, LaClient, OutboxItem, OutboxKind, Payload, PlanBatch,
    RepeatAlert, StoreError, StoreResult, UploadRecord, Webhook,
};
use rusqlite::{Connection, ErrorCode, OptionalExtension, Row, params};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

pub(crate) trait DbResult<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> DbResult<T> for rusqlite::Result<T> {
    fn db(self) -> StoreResult<T> {
        self.map_err(store_error)
    }
}

fn store_error(error: rusqlite::Error) -> StoreError {
    let code = match &error {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.code),
        _ => None,
    };
    match code {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::CannotOpen
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::ReadOnly
            | ErrorCode::OutOfMemory,
        ) => StoreError::Unavailable(error.to_string()),
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict(error.to_string()),
        _ => StoreError::Backend(Box::new(error)),
    }
}

use cpis_store::encoding::{
    BucketWalk, corrupt, from_micros, nhs_from, report_bucket, report_cursor,
};
pub(crate) use cpis_store::encoding::{micros, nhs};

fn date_from(value: &str) -> StoreResult<Date> {
    parse_iso_date(value).map_err(corrupt)
}

fn optional_date(value: Option<String>) -> StoreResult<Option<Date>> {
    value.as_deref().map(date_from).transpose()
}

pub(crate) fn local_authority(row: &Row<'_>) -> rusqlite::Result<StoreResult<LocalAuthority>> {
    local_authority_at(row, 0)
}

/// Reads `code, name, emergency_duty_number, office_hours_number,
/// repeat_organisations, repeat_days` from column `at` on.
pub(crate) fn local_authority_at(
    row: &Row<'_>,
    at: usize,
) -> rusqlite::Result<StoreResult<LocalAuthority>> {
    let code: String = row.get(at)?;
    let name: String = row.get(at + 1)?;
    let emergency: String = row.get(at + 2)?;
    let office: String = row.get(at + 3)?;
    let organisations: u32 = row.get(at + 4)?;
    let days: u32 = row.get(at + 5)?;
    Ok((|| {
        Ok(LocalAuthority::new(
            LaCode::parse(&code).map_err(corrupt)?,
            &name,
            PhoneNumber::parse(&emergency).map_err(corrupt)?,
            PhoneNumber::parse(&office).map_err(corrupt)?,
        )
        .map_err(corrupt)?
        .with_repeat_rule(RepeatRule::new(organisations, days).map_err(corrupt)?))
    })())
}

pub(crate) fn organisation(row: &Row<'_>) -> rusqlite::Result<StoreResult<Organisation>> {
    let code: String = row.get(0)?;
    let name: String = row.get(1)?;
    let setting: String = row.get(2)?;
    Ok((|| {
        Organisation::new(
            OdsCode::parse(&code).map_err(corrupt)?,
            &name,
            SettingType::parse(&setting).map_err(corrupt)?,
        )
        .map_err(corrupt)
    })())
}

pub(crate) const SELECT_PLAN: &str = "SELECT nhs_number, la_code, plan_type, start_date, end_date,
        delete_date, expected_delivery_date, local_reference FROM plan";

/// Reads the eight plan columns of [`SELECT_PLAN`] from column `at` on.
pub(crate) fn plan(row: &Row<'_>, at: usize) -> rusqlite::Result<StoreResult<Plan>> {
    let nhs_number: i64 = row.get(at)?;
    let la: String = row.get(at + 1)?;
    let plan_type: String = row.get(at + 2)?;
    let start: String = row.get(at + 3)?;
    let end: Option<String> = row.get(at + 4)?;
    let delete: Option<String> = row.get(at + 5)?;
    let delivery: Option<String> = row.get(at + 6)?;
    let reference: Option<String> = row.get(at + 7)?;
    Ok((|| {
        Plan::new(PlanFields {
            key: PlanKey {
                la: LaCode::parse(&la).map_err(corrupt)?,
                nhs_number: nhs_from(nhs_number)?,
                plan_type: PlanType::parse(&plan_type).map_err(corrupt)?,
                start_date: date_from(&start)?,
            },
            end_date: optional_date(end)?,
            delete_date: optional_date(delete)?,
            expected_delivery_date: optional_date(delivery)?,
            local_reference: reference
                .as_deref()
                .map(LocalReference::parse)
                .transpose()
                .map_err(corrupt)?,
        })
        .map_err(corrupt)
    })())
}

pub(crate) fn apply_plans(conn: &Connection, batch: &PlanBatch) -> StoreResult<AppliedPlans> {
    let la = batch.la.as_str();
    let known = conn
        .prepare_cached("SELECT 1 FROM local_authority WHERE code = ?1")
        .db()?
        .query_row([la], |_| Ok(()))
        .optional()
        .db()?
        .is_some();
    if !known {
        return Err(StoreError::Conflict(format!(
            "{la} is not a registered local authority"
        )));
    }
    batch.check_one_la()?;
    let count_plans = |sql: &str, withdraw_on: Option<&str>| -> StoreResult<u64> {
        let mut select = conn.prepare_cached(sql).db()?;
        let count: i64 = match withdraw_on {
            None => select.query_row([la], |row| row.get(0)),
            Some(date) => select.query_row(params![la, date, batch.batch_id.to_string()], |row| {
                row.get(0)
            }),
        }
        .db()?;
        Ok(u64::try_from(count).unwrap_or(0))
    };
    const COUNT_ALL: &str = "SELECT count(*) FROM plan WHERE la_code = ?1";
    // Plans not withdrawn: no delete date, or one still in the future.
    const COUNT_ACTIVE: &str = "SELECT count(*) FROM plan WHERE la_code = ?1
        AND (delete_date IS NULL OR delete_date > ?2) AND batch_id <> ?3";

    let withdraw_on = batch
        .snapshot
        .map(|snapshot| format_iso_date(snapshot.withdraw_on));
    let before = count_plans(COUNT_ALL, None)?;
    let active_before = match &withdraw_on {
        Some(date) => count_plans(COUNT_ACTIVE, Some(date))?,
        None => 0,
    };

    let batch_id = batch.batch_id.to_string();
    let updated_at = micros(batch.at);
    let mut upsert = conn
        .prepare_cached(
            "INSERT INTO plan (nhs_number, la_code, plan_type, start_date, end_date, delete_date,
                 expected_delivery_date, local_reference, batch_id, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (nhs_number, la_code, plan_type, start_date) DO UPDATE SET
                 end_date = excluded.end_date, delete_date = excluded.delete_date,
                 expected_delivery_date = excluded.expected_delivery_date,
                 local_reference = excluded.local_reference,
                 batch_id = excluded.batch_id, updated_at = excluded.updated_at",
        )
        .db()?;
    let mut chunks = batch.plans.chunks(4096)?;
    while let Some(chunk) = chunks.next_chunk()? {
        for plan in chunk.iter() {
            upsert
                .execute(params![
                    nhs(plan.nhs_number()),
                    la,
                    plan.plan_type().code(),
                    format_iso_date(plan.start_date()),
                    plan.end_date().map(format_iso_date),
                    plan.delete_date().map(format_iso_date),
                    plan.expected_delivery_date().map(format_iso_date),
                    plan.local_reference().map(LocalReference::as_str),
                    batch_id,
                    updated_at,
                ])
                .db()?;
        }
    }
    let after = count_plans(COUNT_ALL, None)?;
    let inserted = after.saturating_sub(before);
    let mut applied = AppliedPlans {
        inserted,
        updated: batch.plans.len().saturating_sub(inserted),
        withdrawn: 0,
    };

    if let (Some(snapshot), Some(date)) = (batch.snapshot, withdraw_on) {
        let would_withdraw = count_plans(COUNT_ACTIVE, Some(&date))?;
        if let Some(max_percent) = snapshot.max_withdraw_percent
            && would_withdraw * 100 > u64::from(max_percent) * active_before
        {
            return Err(StoreError::SnapshotGuard {
                would_withdraw,
                visible: active_before,
                max_percent,
            });
        }
        applied.withdrawn = conn
            .prepare_cached(
                "UPDATE plan SET delete_date = ?2, updated_at = ?4
                 WHERE la_code = ?1 AND (delete_date IS NULL OR delete_date > ?2)
                   AND batch_id <> ?3",
            )
            .db()?
            .execute(params![la, date, batch_id, updated_at])
            .db()? as u64;
    }
    Ok(applied)
}

pub(crate) const SELECT_ACCESS: &str = "SELECT id, at, nhs_number, user_id, user_name, role_code,
        role_name, activity_code, organisation_code, organisation_name, setting_type,
        unscheduled, returned, request_id FROM access_log";

pub(crate) fn access(row: &Row<'_>) -> rusqlite::Result<StoreResult<AccessRecord>> {
    access_at(row, 0)
}

/// Reads the columns of [`SELECT_ACCESS`] from column `o` on.
pub(crate) fn access_at(row: &Row<'_>, o: usize) -> rusqlite::Result<StoreResult<AccessRecord>> {
    let id: String = row.get(o)?;
    let at: i64 = row.get(o + 1)?;
    let nhs_number: i64 = row.get(o + 2)?;
    let organisation_code: String = row.get(o + 8)?;
    let setting_type: String = row.get(o + 10)?;
    let returned: String = row.get(o + 12)?;
    let text = |index| row.get::<_, String>(o + index);
    let (user_id, user_name, role_code, role_name, activity_code, organisation_name) =
        (text(3)?, text(4)?, text(5)?, text(6)?, text(7)?, text(9)?);
    let unscheduled: bool = row.get(o + 11)?;
    let request_id: String = row.get(o + 13)?;
    Ok((|| {
        Ok(AccessRecord {
            id: Uuid::parse_str(&id).map_err(corrupt)?,
            at: from_micros(at)?,
            nhs_number: nhs_from(nhs_number)?,
            user_id,
            user_name,
            role_code,
            role_name,
            activity_code,
            organisation_code: OdsCode::parse(&organisation_code).map_err(corrupt)?,
            organisation_name,
            setting_type: SettingType::parse(&setting_type).map_err(corrupt)?,
            unscheduled,
            returned: serde_json::from_str(&returned).map_err(corrupt)?,
            request_id,
        })
    })())
}

/// Writes `record`, with what it returned already as JSON (`returned_json`),
/// serialised by the caller off the writer thread.
pub(crate) fn insert_access(
    conn: &Connection,
    record: &AccessRecord,
    returned_json: &str,
) -> StoreResult<()> {
    insert_access_row(conn, record, returned_json)?;
    // Nearly always the row is there already: only a subject's first look
    // in a bucket writes one, so most looks add no page to the commit.
    let bucket = report_bucket(micros(record.at));
    conn.prepare_cached(
        "INSERT OR IGNORE INTO access_user_bucket (user_id, bucket) VALUES (?1, ?2)",
    )
    .db()?
    .execute(params![record.user_id, bucket])
    .db()?;
    conn.prepare_cached(
        "INSERT OR IGNORE INTO access_organisation_bucket (organisation_code, bucket)
         VALUES (?1, ?2)",
    )
    .db()?
    .execute(params![record.organisation_code.as_str(), bucket])
    .db()?;
    Ok(())
}

/// The log's own row of [`insert_access`]: all that cpis wrote for a look
/// before migration 0014.
fn insert_access_row(
    conn: &Connection,
    record: &AccessRecord,
    returned_json: &str,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO access_log (id, at, nhs_number, user_id, user_name, role_code, role_name,
             activity_code, organisation_code, organisation_name, setting_type, unscheduled,
             returned, request_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    )
    .db()?
    .execute(params![
        record.id.to_string(),
        micros(record.at),
        nhs(record.nhs_number),
        record.user_id,
        record.user_name,
        record.role_code,
        record.role_name,
        record.activity_code,
        record.organisation_code.as_str(),
        record.organisation_name,
        record.setting_type.code(),
        record.unscheduled,
        returned_json,
        record.request_id,
    ])
    .db()?;
    Ok(())
}

/// Removes the report buckets older than every look the log still holds
/// (all of them if it holds none), after retention removed looks.
pub(crate) fn remove_report_buckets_before_the_log(conn: &Connection) -> StoreResult<()> {
    let oldest: Option<i64> = conn
        .prepare_cached("SELECT min(at) FROM access_log")
        .db()?
        .query_row([], |row| row.get(0))
        .db()?;
    let before = oldest.map_or(i64::MAX, report_bucket);
    for table in ["access_user_bucket", "access_organisation_bucket"] {
        conn.prepare_cached(&format!("DELETE FROM {table} WHERE bucket < ?1"))
            .db()?
            .execute([before])
            .db()?;
    }
    Ok(())
}

/// Whose looks a report by bucket keeps: the bucket table and the column
/// both it and `access_log` name the subject by.
pub(crate) struct BucketedSubject {
    table: &'static str,
    column: &'static str,
    value: String,
}

impl BucketedSubject {
    pub(crate) fn user(user_id: &str) -> Self {
        BucketedSubject {
            table: "access_user_bucket",
            column: "user_id",
            value: user_id.to_owned(),
        }
    }

    pub(crate) fn organisation(code: &OdsCode) -> Self {
        BucketedSubject {
            table: "access_organisation_bucket",
            column: "organisation_code",
            value: code.as_str().to_owned(),
        }
    }
}

/// One page of a report by NHS number, through the child's index.
pub(crate) fn accesses_of_child(
    conn: &Connection,
    number: NhsNumber,
    query: &AccessQuery,
) -> StoreResult<Vec<AccessRecord>> {
    let (after_at, after_id) = report_cursor(query);
    conn.prepare_cached(&format!(
        "{SELECT_ACCESS} WHERE nhs_number = ?1 AND at >= ?2 AND at < ?3 AND (at, id) > (?4, ?5)
         ORDER BY at, id LIMIT ?6"
    ))
    .db()?
    .query_map(
        params![
            nhs(number),
            micros(query.from),
            micros(query.to),
            after_at,
            after_id.to_string(),
            i64::try_from(query.limit).unwrap_or(i64::MAX)
        ],
        access,
    )
    .db()?
    .map(|row| row.db().and_then(|record| record))
    .collect()
}

/// A bucket's looks by `column`'s subject, in `[?1, ?2)` and after the
/// cursor `(?4, ?5)`. The cursor's time is already in `?1`, and its `+`
/// keeps SQLite from seeking by it instead: a first page's cursor is the
/// beginning of time, and the whole log before the bucket would be read.
fn looks_in_bucket(column: &str) -> String {
    format!(
        "{SELECT_ACCESS} WHERE at >= ?1 AND at < ?2 AND {column} = ?3 AND (+at, id) > (?4, ?5)
         ORDER BY at, id LIMIT ?6"
    )
}

/// One page of a report by user or organisation: the subject's buckets in
/// the query's range, in order, and in each the subject's looks in `(at,
/// id)` order. Buckets split time, so the page is in order across them, and
/// it ends as soon as it is full.
pub(crate) fn accesses_by_bucket(
    conn: &Connection,
    subject: &BucketedSubject,
    query: &AccessQuery,
) -> StoreResult<Vec<AccessRecord>> {
    let (after_at, after_id) = report_cursor(query);
    let mut page = Vec::new();
    let Some(walk) = BucketWalk::of(query) else {
        return Ok(page);
    };
    let mut buckets = conn
        .prepare_cached(&format!(
            "SELECT bucket FROM {} WHERE {} = ?1 AND bucket >= ?2 AND bucket <= ?3
             ORDER BY bucket",
            subject.table, subject.column
        ))
        .db()?;
    let mut looks = conn.prepare_cached(&looks_in_bucket(subject.column)).db()?;
    let mut bucket_rows = buckets
        .query(params![subject.value, walk.first, walk.last])
        .db()?;
    while let Some(row) = bucket_rows.next().db()? {
        let bucket: i64 = row.get(0).db()?;
        let (begins, ends) = walk.range(bucket);
        let wanted = query.limit - page.len();
        let found = looks
            .query_map(
                params![
                    begins,
                    ends,
                    subject.value,
                    after_at,
                    after_id.to_string(),
                    i64::try_from(wanted).unwrap_or(i64::MAX)
                ],
                access,
            )
            .db()?;
        for record in found {
            page.push(record.db()??);
        }
        if page.len() >= query.limit {
            break;
        }
    }
    Ok(page)
}

/// Appends a leaf to the log: the next place in the tree, as the one writer
/// inserts it, so places follow commit order.
pub(crate) fn insert_leaf(
    conn: &Connection,
    kind: LogKind,
    record_id: Uuid,
    hash: &Hash,
) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO log_leaf (idx, kind, record_id, hash)
         VALUES ((SELECT coalesce(max(idx), -1) + 1 FROM log_leaf), ?1, ?2, ?3)",
    )
    .db()?
    .execute(params![kind.code(), record_id.to_string(), &hash[..]])
    .db()?;
    Ok(())
}

pub(crate) fn hash_from(bytes: Vec<u8>) -> StoreResult<Hash> {
    <Hash>::try_from(bytes.as_slice()).map_err(|_| corrupt("a log hash is not 32 bytes"))
}

pub(crate) const SELECT_REPORT: &str = "SELECT id, at, user_id, user_name, role_code,
        organisation_code, report, subject, from_date, to_date, request_id FROM report_log";

/// Reads the columns of [`SELECT_REPORT`].
pub(crate) fn report(row: &Row<'_>) -> rusqlite::Result<StoreResult<ReportRecord>> {
    let id: String = row.get(0)?;
    let at: i64 = row.get(1)?;
    let from: String = row.get(8)?;
    let to: String = row.get(9)?;
    let fields = (
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(10)?,
    );
    Ok((|| {
        let (user_id, user_name, role_code, organisation_code, report, subject, request_id) =
            fields;
        Ok(ReportRecord {
            id: Uuid::parse_str(&id).map_err(corrupt)?,
            at: from_micros(at)?,
            user_id,
            user_name,
            role_code,
            organisation_code,
            report,
            subject,
            from: date_from(&from)?,
            to: date_from(&to)?,
            request_id,
        })
    })())
}

pub(crate) const SELECT_RETENTION: &str = "SELECT id, at, access_before, plans_withdrawn_before,
        plans_ended_before, removed_access, removed_plans FROM retention_log";

/// Reads the columns of [`SELECT_RETENTION`].
pub(crate) fn retention(row: &Row<'_>) -> rusqlite::Result<StoreResult<RetentionRecord>> {
    let id: String = row.get(0)?;
    let at: i64 = row.get(1)?;
    let access_before: i64 = row.get(2)?;
    let withdrawn: String = row.get(3)?;
    let ended: String = row.get(4)?;
    let removed_access: i64 = row.get(5)?;
    let removed_plans: i64 = row.get(6)?;
    Ok((|| {
        Ok(RetentionRecord {
            id: Uuid::parse_str(&id).map_err(corrupt)?,
            at: from_micros(at)?,
            access_before: from_micros(access_before)?,
            plans_withdrawn_before: date_from(&withdrawn)?,
            plans_ended_before: date_from(&ended)?,
            removed_access: u64::try_from(removed_access).map_err(corrupt)?,
            removed_plans: u64::try_from(removed_plans).map_err(corrupt)?,
        })
    })())
}

/// Reads `size, root, note, created_at`.
pub(crate) fn checkpoint(row: &Row<'_>) -> rusqlite::Result<StoreResult<Checkpoint>> {
    let size: i64 = row.get(0)?;
    let root: Vec<u8> = row.get(1)?;
    let note: String = row.get(2)?;
    let created_at: i64 = row.get(3)?;
    Ok((|| {
        Ok(Checkpoint {
            size: u64::try_from(size).map_err(corrupt)?,
            root: hash_from(root)?,
            note,
            created_at: from_micros(created_at)?,
        })
    })())
}

/// Writes `item`, its payload already JSON text, made by the caller off the
/// writer thread. Answers whether it is to be pushed (its LA has a webhook).
///
/// No statement here has a `RETURNING` clause: SQLite runs one as a
/// trigger, which gives the statement a journal of its own in the open
/// transaction and a temporary table for the rows returned, and with them
/// this function took a quarter of the writer's time in a profile of the
/// query benchmark, about as much as the look's own row and indexes.
pub(crate) fn insert_outbox(conn: &Connection, item: &OutboxItem) -> StoreResult<bool> {
    let created_at = micros(item.created_at);
    let (number, indexed): (i64, i64) = conn
        .prepare_cached("SELECT last + 1, indexed FROM outbox_counter WHERE id = 1")
        .db()?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .db()?;
    conn.prepare_cached("UPDATE outbox_counter SET last = ?1 WHERE id = 1")
        .db()?
        .execute([number])
        .db()?;
    let push: bool = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM la_webhook WHERE la_code = ?1)")
        .db()?
        .query_row([item.la.as_str()], |row| row.get(0))
        .db()?;
    conn.prepare_cached(
        "INSERT INTO outbox (id, la_code, kind, payload, created_at, available_at, attempts,
             push, feed_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8)",
    )
    .db()?
    .execute(params![
        item.id.to_string(),
        item.la.as_str(),
        item.kind.code(),
        item.payload.as_str(),
        created_at,
        item.attempts,
        push,
        number,
    ])
    .db()?;
    if number - indexed >= FEED_INDEX_EVERY {
        index_feed(conn, indexed, number)?;
    }
    Ok(push)
}

/// How many items gather past `outbox_counter.indexed` before they are put
/// into `outbox_feed_by_la` together (migration 0012): a feed read scans at
/// most this many items beyond the index, and each bulk copy touches each
/// LA's last page of the index once for about seven of its items.
pub(crate) const FEED_INDEX_EVERY: i64 = 1_024;

/// Puts the items numbered `(indexed, upto]` into `outbox_feed_by_la`,
/// sorted by LA so that each LA's entries go to its page together.
fn index_feed(conn: &Connection, indexed: i64, upto: i64) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO outbox_feed_by_la (la_code, feed_seq)
         SELECT la_code, feed_seq FROM outbox WHERE feed_seq > ?1 AND feed_seq <= ?2
         ORDER BY la_code, feed_seq",
    )
    .db()?
    .execute([indexed, upto])
    .db()?;
    conn.prepare_cached("UPDATE outbox_counter SET indexed = ?1 WHERE id = 1")
        .db()?
        .execute([upto])
        .db()?;
    Ok(())
}

/// The number up to which every item is in `outbox_feed_by_la`.
pub(crate) fn feed_indexed(conn: &Connection) -> StoreResult<i64> {
    conn.prepare_cached("SELECT indexed FROM outbox_counter WHERE id = 1")
        .db()?
        .query_row([], |row| row.get(0))
        .db()
}

/// An LA's items, as `SELECT {columns} FROM {LA_ITEMS}`: those already in
/// `outbox_feed_by_la`, and those numbered after it was last filled, found
/// among the newest items (at most [`FEED_INDEX_EVERY`]) by number. Each of
/// its uses reads it in one statement, so from one snapshot.
pub(crate) const LA_ITEMS: &str = "(
        SELECT o.* FROM outbox_feed_by_la f JOIN outbox o ON o.feed_seq = f.feed_seq
        WHERE f.la_code = ?1
        UNION ALL
        SELECT * FROM outbox
        WHERE feed_seq > (SELECT indexed FROM outbox_counter WHERE id = 1) AND la_code = ?1
    )";

/// Reads `id, la_code, kind, payload, created_at, attempts`.
pub(crate) fn outbox(row: &Row<'_>) -> rusqlite::Result<StoreResult<OutboxItem>> {
    let id: String = row.get(0)?;
    let la: String = row.get(1)?;
    let kind: String = row.get(2)?;
    let payload: String = row.get(3)?;
    let created_at: i64 = row.get(4)?;
    let attempts: u32 = row.get(5)?;
    Ok((|| {
        Ok(OutboxItem {
            id: Uuid::parse_str(&id).map_err(corrupt)?,
            la: LaCode::parse(&la).map_err(corrupt)?,
            kind: OutboxKind::parse(&kind)
                .ok_or_else(|| corrupt(format!("unknown outbox kind {kind}")))?,
            payload: Payload::from_json(payload).map_err(corrupt)?,
            created_at: from_micros(created_at)?,
            attempts,
        })
    })())
}

/// Reads `la_code, url, secret, created_at`.
pub(crate) fn webhook(row: &Row<'_>) -> rusqlite::Result<StoreResult<Webhook>> {
    let la: String = row.get(0)?;
    let url: String = row.get(1)?;
    let secret: String = row.get(2)?;
    let created_at: i64 = row.get(3)?;
    Ok((|| {
        Ok(Webhook {
            la: LaCode::parse(&la).map_err(corrupt)?,
            url,
            secret,
            created_at: from_micros(created_at)?,
        })
    })())
}

/// Reads `client_id, la_code, public_key, created_at`.
pub(crate) fn la_client(row: &Row<'_>) -> rusqlite::Result<StoreResult<LaClient>> {
    let client_id: String = row.get(0)?;
    let la: String = row.get(1)?;
    let public_key: String = row.get(2)?;
    let created_at: i64 = row.get(3)?;
    Ok((|| {
        Ok(LaClient {
            client_id,
            la: LaCode::parse(&la).map_err(corrupt)?,
            public_key: serde_json::from_str(&public_key).map_err(corrupt)?,
            created_at: from_micros(created_at)?,
        })
    })())
}

pub(crate) const SELECT_UPLOAD: &str = "SELECT id, la_code, received_at, mode, file_code, accepted,
        rejected, withdrawn, idempotency_key, records FROM upload";

/// Reads the columns of [`SELECT_UPLOAD`].
pub(crate) fn upload(row: &Row<'_>) -> rusqlite::Result<StoreResult<UploadRecord>> {
    let id: String = row.get(0)?;
    let la: String = row.get(1)?;
    let received_at: i64 = row.get(2)?;
    let counts = |index| {
        row.get::<_, i64>(index)
            .map(|n| u64::try_from(n).unwrap_or(0))
    };
    let (accepted, rejected, withdrawn) = (counts(5)?, counts(6)?, counts(7)?);
    let records: String = row.get(9)?;
    let (mode, file_code, idempotency_key) = (row.get(3)?, row.get(4)?, row.get(8)?);
    Ok((|| {
        Ok(UploadRecord {
            id: Uuid::parse_str(&id).map_err(corrupt)?,
            la: LaCode::parse(&la).map_err(corrupt)?,
            received_at: from_micros(received_at)?,
            mode,
            file_code,
            accepted,
            rejected,
            withdrawn,
            idempotency_key,
            records: serde_json::from_str(&records).map_err(corrupt)?,
        })
    })())
}

pub(crate) fn insert_upload(conn: &Connection, upload: &UploadRecord) -> StoreResult<()> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO upload (id, la_code, received_at, mode, file_code, accepted, rejected,
             withdrawn, idempotency_key, records)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .db()?
    .execute(params![
        upload.id.to_string(),
        upload.la.as_str(),
        micros(upload.received_at),
        upload.mode,
        upload.file_code,
        count(upload.accepted),
        count(upload.rejected),
        count(upload.withdrawn),
        upload.idempotency_key,
        upload.records.to_string(),
    ])
    .db()?;
    Ok(())
}

/// Every plan held for an NHS number, each with its LA
/// (`Store::plans_for_nhs_number`).
pub(crate) fn plans_of(
    conn: &Connection,
    nhs_number: NhsNumber,
) -> StoreResult<Vec<(Plan, LocalAuthority)>> {
    let mut select = conn
        .prepare_cached(
            "SELECT p.nhs_number, p.la_code, p.plan_type, p.start_date, p.end_date,
                    p.delete_date, p.expected_delivery_date, p.local_reference,
                    la.code, la.name, la.emergency_duty_number, la.office_hours_number,
                    la.repeat_organisations, la.repeat_days
             FROM plan p JOIN local_authority la ON la.code = p.la_code
             WHERE p.nhs_number = ?1",
        )
        .db()?;
    let rows = select
        .query_map([nhs(nhs_number)], |row| {
            Ok((plan(row, 0)?, local_authority_at(row, 8)?))
        })
        .db()?;
    rows.map(|row| {
        let (plan, la) = row.db()?;
        Ok((plan?, la?))
    })
    .collect()
}

/// Every LA, by code.
pub(crate) fn local_authorities(conn: &Connection) -> StoreResult<Vec<LocalAuthority>> {
    let mut select = conn
        .prepare_cached(
            "SELECT code, name, emergency_duty_number, office_hours_number,
                    repeat_organisations, repeat_days
             FROM local_authority ORDER BY code",
        )
        .db()?;
    let rows = select.query_map([], local_authority).db()?;
    rows.map(|row| row.db().and_then(|la| la)).collect()
}

/// One LA, if it is held.
pub(crate) fn local_authority_of(
    conn: &Connection,
    code: LaCode,
) -> StoreResult<Option<LocalAuthority>> {
    conn.prepare_cached(
        "SELECT code, name, emergency_duty_number, office_hours_number,
                repeat_organisations, repeat_days
         FROM local_authority WHERE code = ?1",
    )
    .db()?
    .query_row([code.as_str()], local_authority)
    .optional()
    .db()?
    .transpose()
}

/// Every plan of one LA, by child.
pub(crate) fn plans_of_la(conn: &Connection, la: LaCode) -> StoreResult<Vec<Plan>> {
    let mut select = conn
        .prepare_cached(&format!(
            "{SELECT_PLAN} WHERE la_code = ?1 ORDER BY nhs_number, plan_type, start_date"
        ))
        .db()?;
    let rows = select.query_map([la.as_str()], |row| plan(row, 0)).db()?;
    rows.map(|row| row.db().and_then(|plan| plan)).collect()
}

/// Every plan held.
pub(crate) fn all_plans(conn: &Connection) -> StoreResult<Vec<Plan>> {
    let mut select = conn.prepare_cached(SELECT_PLAN).db()?;
    let rows = select.query_map([], |row| plan(row, 0)).db()?;
    rows.map(|row| row.db().and_then(|plan| plan)).collect()
}

const ORGANISATIONS_SEEN: &str = "WITH RECURSIVE seen(code) AS (
         SELECT (SELECT organisation_code FROM access_log
                 WHERE nhs_number = ?1 AND unscheduled = 1
                 ORDER BY organisation_code LIMIT 1)
         UNION ALL
         SELECT (SELECT organisation_code FROM access_log
                 WHERE nhs_number = ?1 AND unscheduled = 1 AND organisation_code > seen.code
                 ORDER BY organisation_code LIMIT 1)
         FROM seen WHERE seen.code IS NOT NULL)
     SELECT count(*) FROM seen
     WHERE (SELECT max(at) FROM access_log
            WHERE nhs_number = ?1 AND unscheduled = 1
              AND organisation_code = seen.code AND at <= ?3) > ?2";

/// How many organisations looked at a child (unscheduled) in `(since,
/// until]`: a seek to each organisation that ever did, and one to its last
/// look, so a child looked at often costs no more than one looked at once.
pub(crate) fn organisations_seen(
    conn: &Connection,
    nhs_number: NhsNumber,
    since: OffsetDateTime,
    until: OffsetDateTime,
) -> StoreResult<u32> {
    let seen: i64 = conn
        .prepare_cached(ORGANISATIONS_SEEN)
        .db()?
        .query_row(
            params![nhs(nhs_number), micros(since), micros(until)],
            |row| row.get(0),
        )
        .db()?;
    Ok(u32::try_from(seen).unwrap_or(u32::MAX))
}

/// The repeat-attendance alerts `owners` are owed for `record`, a look
/// already inserted in this transaction, so that it and the looks committed
/// with it are counted. The full attendances, which cost a read of every
/// look in the window, are read only for an LA whose rule is met and whose
/// window is open: at most once per window.
pub(crate) fn repeat_alerts(
    conn: &Connection,
    record: &AccessRecord,
    owners: &[(LaCode, RepeatRule)],
    wording: AlertWording,
) -> StoreResult<Vec<RepeatAlert>> {
    // Owners nearly always share a rule: one count, one read, per window.
    let mut counted: Vec<(time::Duration, u32)> = Vec::new();
    let mut read: Vec<(time::Duration, Vec<Attendance>)> = Vec::new();
    let mut alerts = Vec::new();
    for &(la, rule) in owners {
        let window = rule.window();
        let since = record.at - window;
        let seen = once_per_window(&mut counted, window, || {
            organisations_seen(conn, record.nhs_number, since, record.at)
        })?;
        if seen < rule.organisations || alerted_since(conn, la, record.nhs_number, since)? {
            continue;
        }
        let attendances = once_per_window(&mut read, window, || {
            attendances_of(conn, record.nhs_number, since, record.at)
        })?;
        alerts.extend(RepeatAlert::judged(la, rule, record, attendances, wording));
    }
    Ok(alerts)
}

/// What `read` answers for `window`, read only the first time it is asked.
fn once_per_window<T: Clone>(
    known: &mut Vec<(time::Duration, T)>,
    window: time::Duration,
    read: impl FnOnce() -> StoreResult<T>,
) -> StoreResult<T> {
    if let Some((_, value)) = known.iter().find(|(seen, _)| *seen == window) {
        return Ok(value.clone());
    }
    let value = read()?;
    known.push((window, value.clone()));
    Ok(value)
}

/// Whether `la` was alerted about the child after `since`: its window taken.
fn alerted_since(
    conn: &Connection,
    la: LaCode,
    nhs_number: NhsNumber,
    since: OffsetDateTime,
) -> StoreResult<bool> {
    conn.prepare_cached(
        "SELECT 1 FROM repeat_alert WHERE la_code = ?1 AND nhs_number = ?2 AND alerted_at > ?3",
    )
    .db()?
    .query_row(params![la.as_str(), nhs(nhs_number), micros(since)], |_| {
        Ok(())
    })
    .optional()
    .db()
    .map(|taken| taken.is_some())
}

/// A child's unscheduled looks in `(since, until]`, one row per
/// organisation (`Store::attendances`).
pub(crate) fn attendances_of(
    conn: &Connection,
    nhs_number: NhsNumber,
    since: OffsetDateTime,
    until: OffsetDateTime,
) -> StoreResult<Vec<Attendance>> {
    let mut select = conn
        .prepare_cached(
            "SELECT seen.code, coalesce(o.name, seen.code), seen.first, seen.last, seen.looks
             FROM (SELECT organisation_code AS code, min(at) AS first, max(at) AS last,
                       count(*) AS looks
                   FROM access_log
                   WHERE nhs_number = ?1 AND unscheduled = 1 AND at > ?2 AND at <= ?3
                   GROUP BY organisation_code) AS seen
             LEFT JOIN organisation o ON o.code = seen.code",
        )
        .db()?;
    let rows = select
        .query_map(
            params![nhs(nhs_number), micros(since), micros(until)],
            |row| {
                let first: i64 = row.get(2)?;
                let last: i64 = row.get(3)?;
                let looks: i64 = row.get(4)?;
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    first,
                    last,
                    looks,
                ))
            },
        )
        .db()?;
    rows.map(|row| {
        let (organisation_code, organisation_name, first, last, looks) = row.db()?;
        Ok(Attendance {
            organisation_code,
            organisation_name,
            first_seen: from_micros(first)?,
            last_seen: from_micros(last)?,
            looks: u32::try_from(looks).unwrap_or(u32::MAX),
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpis_store::conformance::{test_access, test_nhs_number};
    use cpis_store::encoding::REPORT_BUCKET_SHIFT;
    use rusqlite::StatementStatus;
    use time::Duration;
    use time::macros::datetime;

    const AT: OffsetDateTime = datetime!(2026-11-25 12:00 UTC);

    fn look(conn: &Connection, organisation: &str, at: OffsetDateTime, unscheduled: bool) {
        let record = AccessRecord {
            id: Uuid::now_v7(),
            organisation_code: OdsCode::parse(organisation).unwrap(),
            ..test_access(test_nhs_number(1), at, unscheduled)
        };
        insert_access(conn, &record, "[]").unwrap();
    }

    /// The count runs in the writer for every look, so a child looked at
    /// thousands of times must cost it a few seeks per organisation, not a
    /// step per look.
    #[test]
    fn organisations_are_counted_without_reading_every_look() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::migrations::apply(&mut conn).unwrap();
        let since = AT - Duration::days(30);
        for i in 0..3_000 {
            look(&conn, "ZZA01", AT - Duration::seconds(i), true);
        }
        look(&conn, "ZZB02", AT - Duration::days(29), true);
        // Not counted: scheduled, only before the window, only after it.
        look(&conn, "ZZC03", AT - Duration::days(1), false);
        look(&conn, "ZZD04", since, true);
        look(&conn, "ZZE05", AT + Duration::seconds(1), true);
        let child = test_nhs_number(1);
        assert_eq!(organisations_seen(&conn, child, since, AT).unwrap(), 2);
        let steps = conn
            .prepare_cached(ORGANISATIONS_SEEN)
            .unwrap()
            .get_status(StatementStatus::VmStep);
        // About 70 steps an organisation; reading the looks would take thousands.
        assert!(steps < 1_000, "{steps} steps for 3,004 looks");
        assert_eq!(
            organisations_seen(&conn, test_nhs_number(2), since, AT).unwrap(),
            0
        );
    }

    /// A page of up to 100 of `user`'s looks in `[from, to)` after `after`.
    fn user_report(
        conn: &Connection,
        user: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
        after: Option<(OffsetDateTime, Uuid)>,
    ) -> Vec<AccessRecord> {
        let query = AccessQuery {
            filter: cpis_store::AccessFilter::User(user.to_owned()),
            from,
            to,
            after,
            limit: 100,
        };
        accesses_by_bucket(conn, &BucketedSubject::user(user), &query).unwrap()
    }

    /// Looks recorded before migration 0014 are found by the reports after
    /// it, before 1970 too (SQL's `>>` and Rust's round the same way).
    #[test]
    fn migration_0014_buckets_the_looks_already_recorded() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::migrations::apply_up_to(&conn, 13);
        let times = [
            datetime!(1969-12-31 23:59:59.999999 UTC),
            AT - Duration::days(400),
            AT - Duration::seconds(5),
            AT,
        ];
        for (i, at) in times.into_iter().enumerate() {
            let record = AccessRecord {
                id: Uuid::now_v7(),
                user_id: ["early", "late"][i % 2].to_owned(),
                ..test_access(test_nhs_number(1), at, true)
            };
            insert_access_row(&conn, &record, "[]").unwrap();
        }
        crate::migrations::apply(&mut conn).unwrap();
        for (user, expected) in [
            ("early", [times[0], times[2]]),
            ("late", [times[1], times[3]]),
        ] {
            let from = datetime!(1969-01-01 00:00 UTC);
            let found = user_report(&conn, user, from, AT + Duration::seconds(1), None);
            assert_eq!(found.iter().map(|r| r.at).collect::<Vec<_>>(), expected);
        }
    }

    /// Retention removes looks by id, and buckets by the oldest time kept: a
    /// look whose time is older than its id is kept, and so is its bucket.
    #[test]
    fn retention_keeps_the_buckets_of_every_look_it_keeps() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::migrations::apply(&mut conn).unwrap();
        let old = AT - Duration::days(400);
        let record = |user: &str, at, id| AccessRecord {
            id,
            user_id: user.to_owned(),
            ..test_access(test_nhs_number(1), at, true)
        };
        let late_id = Uuid::now_v7();
        let early_id = Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, 1, 0));
        // Recorded late for a time long past: kept.
        insert_access(&conn, &record("kept", old, late_id), "[]").unwrap();
        // Made long ago: removed.
        insert_access(&conn, &record("gone", AT, early_id), "[]").unwrap();
        conn.execute(
            "DELETE FROM access_log WHERE id < ?1",
            [late_id.to_string()],
        )
        .unwrap();
        remove_report_buckets_before_the_log(&conn).unwrap();
        let report = |user| {
            user_report(
                &conn,
                user,
                old - Duration::days(1),
                AT + Duration::days(1),
                None,
            )
        };
        assert_eq!(report("kept").len(), 1);
        assert!(report("gone").is_empty());
        let buckets: i64 = conn
            .query_row("SELECT count(*) FROM access_user_bucket", [], |row| {
                row.get(0)
            })
            .unwrap();
        // The removed look's bucket is newer than the kept one's, so it
        // stays, empty; only buckets older than every kept look go.
        assert_eq!(buckets, 2);
        conn.execute("DELETE FROM access_log", []).unwrap();
        remove_report_buckets_before_the_log(&conn).unwrap();
        let buckets: i64 = conn
            .query_row("SELECT count(*) FROM access_user_bucket", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(buckets, 0, "an empty log keeps no buckets");
    }

    /// A report reads the buckets its subject looked in, not the whole log:
    /// a user with three looks among thousands of others' reads a few rows.
    #[test]
    fn a_report_reads_only_its_subjects_buckets() {
        assert_eq!(
            include_str!("../migrations/0014_reports_by_time_bucket.sql")
                .matches(&format!("at >> {REPORT_BUCKET_SHIFT} FROM access_log"))
                .count(),
            2,
            "migration 0014 buckets as REPORT_BUCKET_SHIFT does"
        );
        let mut conn = Connection::open_in_memory().unwrap();
        crate::migrations::apply(&mut conn).unwrap();
        let user_at = |user: &str, at| {
            let record = AccessRecord {
                id: Uuid::now_v7(),
                user_id: user.to_owned(),
                ..test_access(test_nhs_number(1), at, true)
            };
            insert_access(&conn, &record, "[]").unwrap();
        };
        for i in 0..3_000 {
            user_at("busy", AT - Duration::seconds(i));
        }
        let rare = [AT - Duration::days(2), AT - Duration::seconds(10), AT];
        for at in rare {
            user_at("rare", at);
        }
        let (from, to) = (AT - Duration::days(3), AT + Duration::seconds(1));
        let found = user_report(&conn, "rare", from, to, None);
        assert_eq!(found.iter().map(|r| r.at).collect::<Vec<_>>(), rare);
        let sql = looks_in_bucket("user_id");
        let steps = conn
            .prepare_cached(&sql)
            .unwrap()
            .get_status(StatementStatus::VmStep);
        // Two of the three buckets hold four or five of the busy user's
        // looks each; reading the log's 3,003 would take thousands of steps.
        assert!(steps > 0 && steps < 1_000, "{steps} steps");
        // The same on a later page, whose cursor SQLite must not seek by.
        let rest = user_report(&conn, "rare", from, to, Some((found[0].at, found[0].id)));
        assert_eq!(rest, found[1..]);
        let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let plan = explain
            .query_map(params![0, 0, "", 0, "", 0], |row| row.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<Vec<_>>>()
            .unwrap()
            .join("; ");
        assert!(plan.contains("access_log_by_at (at>? AND at<?)"), "{plan}");
    }
}
