//! SQL for the plan, access-log and outbox tables, and conversions between
//! rows and domain types. Anything read back is parsed again: a row that does
//! not parse is reported as corrupt, never passed on.

use std::collections::HashMap;

use cpis_domain::{
    AccessRecord, Attendance, LaCode, LocalAuthority, LocalReference, OdsCode, Organisation,
    PhoneNumber, Plan, PlanFields, PlanKey, PlanType, RepeatRule, SettingType,
};
use cpis_store::log::{Checkpoint, LogKind, ReportRecord, RetentionRecord};
use cpis_store::merkle::Hash;
use cpis_store::{
    AppliedPlans, LaClient, OutboxItem, OutboxKind, PlanBatch, StoreError, StoreResult,
    UploadRecord, Webhook,
};
use deadpool_postgres::Transaction;
use time::Date;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Json;
use uuid::Uuid;

pub(crate) trait DbResult<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> DbResult<T> for Result<T, tokio_postgres::Error> {
    fn db(self) -> StoreResult<T> {
        self.map_err(store_error)
    }
}

fn store_error(error: tokio_postgres::Error) -> StoreError {
    let Some(code) = error.code() else {
        // No SQLSTATE: the connection broke, timed out or was refused.
        return StoreError::Unavailable(error.to_string());
    };
    let class = &code.code()[..2];
    if code == &SqlState::UNIQUE_VIOLATION || code == &SqlState::FOREIGN_KEY_VIOLATION {
        StoreError::Conflict(error.to_string())
    } else if matches!(class, "08" | "53" | "57" | "40")
        || code == &SqlState::READ_ONLY_SQL_TRANSACTION
    {
        // Connection exceptions, insufficient resources, operator
        // intervention (shutdown, statement timeout), serialization failures
        // and a read-only standby: all pass, and a retry may succeed.
        StoreError::Unavailable(error.to_string())
    } else {
        StoreError::Backend(Box::new(error))
    }
}

/// `CREATE … IF NOT EXISTS` can still fail when two sessions create the same
/// object at once; the object then exists, which is all that was wanted.
pub(crate) fn ignore_concurrent_create(
    error: tokio_postgres::Error,
) -> Result<(), tokio_postgres::Error> {
    match error.code() {
        Some(code)
            if code == &SqlState::UNIQUE_VIOLATION
                || code == &SqlState::DUPLICATE_TABLE
                || code == &SqlState::DUPLICATE_SCHEMA
                || code == &SqlState::DUPLICATE_OBJECT =>
        {
            Ok(())
        }
        _ => Err(error),
    }
}

use cpis_store::encoding::{corrupt, from_micros, nhs_from};
pub(crate) use cpis_store::encoding::{micros, nhs};

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, index: usize) -> StoreResult<T> {
    row.try_get(index).map_err(corrupt)
}

/// Reads `code, name, emergency_duty_number, office_hours_number,
/// repeat_organisations, repeat_days` from column `at` on.
pub(crate) fn local_authority(row: &Row, at: usize) -> StoreResult<LocalAuthority> {
    let count =
        |index| -> StoreResult<u32> { u32::try_from(get::<i32>(row, index)?).map_err(corrupt) };
    let rule = RepeatRule::new(count(at + 4)?, count(at + 5)?).map_err(corrupt)?;
    Ok(LocalAuthority::new(
        LaCode::parse(get(row, at)?).map_err(corrupt)?,
        get(row, at + 1)?,
        PhoneNumber::parse(get(row, at + 2)?).map_err(corrupt)?,
        PhoneNumber::parse(get(row, at + 3)?).map_err(corrupt)?,
    )
    .map_err(corrupt)?
    .with_repeat_rule(rule))
}

pub(crate) fn organisation(row: &Row) -> StoreResult<Organisation> {
    Organisation::new(
        OdsCode::parse(get(row, 0)?).map_err(corrupt)?,
        get(row, 1)?,
        SettingType::parse(get(row, 2)?).map_err(corrupt)?,
    )
    .map_err(corrupt)
}

pub(crate) const SELECT_PLAN: &str = "SELECT nhs_number, la_code, plan_type, start_date, end_date,
        delete_date, expected_delivery_date, local_reference FROM plan";

/// Reads an attendance (organisation code and name, first and last look,
/// looks) from column `at` on.
pub(crate) fn attendance(row: &Row, at: usize) -> StoreResult<Attendance> {
    let looks: i64 = get(row, at + 4)?;
    Ok(Attendance {
        organisation_code: get(row, at)?,
        organisation_name: get(row, at + 1)?,
        first_seen: from_micros(get(row, at + 2)?)?,
        last_seen: from_micros(get(row, at + 3)?)?,
        looks: u32::try_from(looks).unwrap_or(u32::MAX),
    })
}

/// Reads the eight plan columns of [`SELECT_PLAN`] from column `at` on.
pub(crate) fn plan(row: &Row, at: usize) -> StoreResult<Plan> {
    let reference: Option<&str> = get(row, at + 7)?;
    Plan::new(PlanFields {
        key: PlanKey {
            la: LaCode::parse(get(row, at + 1)?).map_err(corrupt)?,
            nhs_number: nhs_from(get(row, at)?)?,
            plan_type: PlanType::parse(get(row, at + 2)?).map_err(corrupt)?,
            start_date: get(row, at + 3)?,
        },
        end_date: get(row, at + 4)?,
        delete_date: get(row, at + 5)?,
        expected_delivery_date: get(row, at + 6)?,
        local_reference: reference
            .map(LocalReference::parse)
            .transpose()
            .map_err(corrupt)?,
    })
    .map_err(corrupt)
}

/// Rows per upsert statement: large enough to amortise the round trip,
/// small enough to keep each statement's memory modest.
const UPSERT_CHUNK: usize = 5_000;

pub(crate) async fn apply_plans(
    tx: &Transaction<'_>,
    batch: &PlanBatch,
) -> StoreResult<AppliedPlans> {
    let la = batch.la.as_str();
    let known = tx
        .query_opt("SELECT 1 FROM local_authority WHERE code = $1", &[&la])
        .await
        .db()?
        .is_some();
    if !known {
        return Err(StoreError::Conflict(format!(
            "{la} is not a registered local authority"
        )));
    }
    batch.check_one_la()?;
    let count = |row: Row| u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
    const COUNT_ALL: &str = "SELECT count(*) FROM plan WHERE la_code = $1";
    // Plans not withdrawn: no delete date, or one still in the future.
    const COUNT_ACTIVE: &str = "SELECT count(*) FROM plan WHERE la_code = $1
        AND (delete_date IS NULL OR delete_date > $2) AND batch_id <> $3";
    let withdraw_on: Option<Date> = batch.snapshot.map(|snapshot| snapshot.withdraw_on);

    let before = count(tx.query_one(COUNT_ALL, &[&la]).await.db()?);
    let active_before = match withdraw_on {
        Some(date) => count(
            tx.query_one(COUNT_ACTIVE, &[&la, &date, &batch.batch_id])
                .await
                .db()?,
        ),
        None => 0,
    };

    let upsert = tx
        .prepare_cached(
            "INSERT INTO plan (nhs_number, la_code, plan_type, start_date, end_date, delete_date,
                 expected_delivery_date, local_reference, batch_id, updated_at)
             SELECT n, $2, t, s, e, d, x, r, $3, $4
             FROM unnest($1::bigint[], $5::text[], $6::date[], $7::date[], $8::date[], $9::date[], $10::text[])
                 AS rows (n, t, s, e, d, x, r)
             ON CONFLICT (nhs_number, la_code, plan_type, start_date) DO UPDATE SET
                 end_date = excluded.end_date, delete_date = excluded.delete_date,
                 expected_delivery_date = excluded.expected_delivery_date,
                 local_reference = excluded.local_reference,
                 batch_id = excluded.batch_id, updated_at = excluded.updated_at",
        )
        .await
        .db()?;
    let updated_at = micros(batch.at);
    let mut chunks = batch.plans.chunks(UPSERT_CHUNK)?;
    // Reading a chunk of a spool is a short read of a file just written,
    // in the page cache: not worth a trip to the blocking pool.
    while let Some(chunk) = chunks.next_chunk()? {
        // One statement cannot touch a row twice, so a plan sent twice in
        // one chunk keeps its last version, as applying the rows in order
        // would; a later chunk's statement updates it again.
        let mut last_of_key: HashMap<&PlanKey, usize> = HashMap::with_capacity(chunk.len());
        for (index, plan) in chunk.iter().enumerate() {
            last_of_key.insert(plan.key(), index);
        }
        let chunk: Vec<&Plan> = chunk
            .iter()
            .enumerate()
            .filter(|(index, plan)| last_of_key.get(plan.key()) == Some(index))
            .map(|(_, plan)| plan)
            .collect();
        let numbers: Vec<i64> = chunk.iter().map(|p| nhs(p.nhs_number())).collect();
        let types: Vec<&str> = chunk.iter().map(|p| p.plan_type().code()).collect();
        let starts: Vec<Date> = chunk.iter().map(|p| p.start_date()).collect();
        let ends: Vec<Option<Date>> = chunk.iter().map(|p| p.end_date()).collect();
        let deletes: Vec<Option<Date>> = chunk.iter().map(|p| p.delete_date()).collect();
        let deliveries: Vec<Option<Date>> =
            chunk.iter().map(|p| p.expected_delivery_date()).collect();
        let references: Vec<Option<&str>> = chunk
            .iter()
            .map(|p| p.local_reference().map(LocalReference::as_str))
            .collect();
        tx.execute(
            &upsert,
            &[
                &numbers,
                &la,
                &batch.batch_id,
                &updated_at,
                &types,
                &starts,
                &ends,
                &deletes,
                &deliveries,
                &references,
            ],
        )
        .await
        .db()?;
    }

    let after = count(tx.query_one(COUNT_ALL, &[&la]).await.db()?);
    let inserted = after.saturating_sub(before);
    let mut applied = AppliedPlans {
        inserted,
        updated: batch.plans.len().saturating_sub(inserted),
        withdrawn: 0,
    };

    if let (Some(snapshot), Some(date)) = (batch.snapshot, withdraw_on) {
        let would_withdraw = count(
            tx.query_one(COUNT_ACTIVE, &[&la, &date, &batch.batch_id])
                .await
                .db()?,
        );
        if let Some(max_percent) = snapshot.max_withdraw_percent
            && would_withdraw * 100 > u64::from(max_percent) * active_before
        {
            return Err(StoreError::SnapshotGuard {
                would_withdraw,
                visible: active_before,
                max_percent,
            });
        }
        applied.withdrawn = tx
            .execute(
                "UPDATE plan SET delete_date = $2, updated_at = $4
                 WHERE la_code = $1 AND (delete_date IS NULL OR delete_date > $2)
                   AND batch_id <> $3",
                &[&la, &date, &batch.batch_id, &updated_at],
            )
            .await
            .db()?;
    }
    Ok(applied)
}

pub(crate) const SELECT_ACCESS: &str = "SELECT id, at, nhs_number, user_id, user_name, role_code,
        role_name, activity_code, organisation_code, organisation_name, setting_type,
        unscheduled, returned, request_id FROM access_log";

pub(crate) fn access(row: &Row) -> StoreResult<AccessRecord> {
    access_at(row, 0)
}

/// Reads the columns of [`SELECT_ACCESS`] from column `o` on.
pub(crate) fn access_at(row: &Row, o: usize) -> StoreResult<AccessRecord> {
    let returned: serde_json::Value = get(row, o + 12)?;
    Ok(AccessRecord {
        id: get(row, o)?,
        at: from_micros(get(row, o + 1)?)?,
        nhs_number: nhs_from(get(row, o + 2)?)?,
        user_id: get(row, o + 3)?,
        user_name: get(row, o + 4)?,
        role_code: get(row, o + 5)?,
        role_name: get(row, o + 6)?,
        activity_code: get(row, o + 7)?,
        organisation_code: OdsCode::parse(get(row, o + 8)?).map_err(corrupt)?,
        organisation_name: get(row, o + 9)?,
        setting_type: SettingType::parse(get(row, o + 10)?).map_err(corrupt)?,
        unscheduled: get(row, o + 11)?,
        returned: serde_json::from_value(returned).map_err(corrupt)?,
        request_id: get(row, o + 13)?,
    })
}

/// Adds a leaf to the log; it gets its place once committed (see
/// `sequence_log`).
pub(crate) async fn insert_leaf(
    tx: &Transaction<'_>,
    kind: LogKind,
    record_id: Uuid,
    hash: &Hash,
) -> StoreResult<()> {
    let insert = tx
        .prepare_cached("INSERT INTO log_leaf (record_id, kind, hash) VALUES ($1, $2, $3)")
        .await
        .db()?;
    tx.execute(&insert, &[&record_id, &kind.code(), &&hash[..]])
        .await
        .db()?;
    Ok(())
}

pub(crate) fn hash_from(bytes: &[u8]) -> StoreResult<Hash> {
    <Hash>::try_from(bytes).map_err(|_| corrupt("a log hash is not 32 bytes"))
}

pub(crate) const SELECT_REPORT: &str = "SELECT id, at, user_id, user_name, role_code,
        organisation_code, report, subject, from_date, to_date, request_id FROM report_log";

/// Reads the columns of [`SELECT_REPORT`].
pub(crate) fn report(row: &Row) -> StoreResult<ReportRecord> {
    Ok(ReportRecord {
        id: get(row, 0)?,
        at: from_micros(get(row, 1)?)?,
        user_id: get(row, 2)?,
        user_name: get(row, 3)?,
        role_code: get(row, 4)?,
        organisation_code: get(row, 5)?,
        report: get(row, 6)?,
        subject: get(row, 7)?,
        from: get(row, 8)?,
        to: get(row, 9)?,
        request_id: get(row, 10)?,
    })
}

pub(crate) const SELECT_RETENTION: &str = "SELECT id, at, access_before, plans_withdrawn_before,
        plans_ended_before, removed_access, removed_plans FROM retention_log";

/// Reads the columns of [`SELECT_RETENTION`].
pub(crate) fn retention(row: &Row) -> StoreResult<RetentionRecord> {
    Ok(RetentionRecord {
        id: get(row, 0)?,
        at: from_micros(get(row, 1)?)?,
        access_before: from_micros(get(row, 2)?)?,
        plans_withdrawn_before: get(row, 3)?,
        plans_ended_before: get(row, 4)?,
        removed_access: u64::try_from(get::<i64>(row, 5)?).map_err(corrupt)?,
        removed_plans: u64::try_from(get::<i64>(row, 6)?).map_err(corrupt)?,
    })
}

/// Reads `size, root, note, created_at`.
pub(crate) fn checkpoint(row: &Row) -> StoreResult<Checkpoint> {
    Ok(Checkpoint {
        size: u64::try_from(get::<i64>(row, 0)?).map_err(corrupt)?,
        root: hash_from(get::<&[u8]>(row, 1)?)?,
        note: get(row, 2)?,
        created_at: from_micros(get(row, 3)?)?,
    })
}

/// Writes `item`; answers whether it is to be pushed (its LA has a webhook).
pub(crate) async fn insert_outbox(tx: &Transaction<'_>, item: &OutboxItem) -> StoreResult<bool> {
    let insert = tx
        .prepare_cached(
            "INSERT INTO outbox (id, la_code, kind, payload, created_at, available_at, attempts, push)
             VALUES ($1, $2, $3, $4, $5, $5, $6,
                 EXISTS (SELECT 1 FROM la_webhook WHERE la_code = $2))
             RETURNING push",
        )
        .await
        .db()?;
    let attempts = i32::try_from(item.attempts).unwrap_or(i32::MAX);
    tx.query_one(
        &insert,
        &[
            &item.id,
            &item.la.as_str(),
            &item.kind.code(),
            &Json(item.payload.raw()),
            &micros(item.created_at),
            &attempts,
        ],
    )
    .await
    .db()?
    .try_get(0)
    .map_err(corrupt)
}

/// Reads `id, la_code, kind, payload, created_at, attempts`.
pub(crate) fn outbox(row: &Row) -> StoreResult<OutboxItem> {
    let kind: &str = get(row, 2)?;
    let attempts: i32 = get(row, 5)?;
    Ok(OutboxItem {
        id: get(row, 0)?,
        la: LaCode::parse(get(row, 1)?).map_err(corrupt)?,
        kind: OutboxKind::parse(kind)
            .ok_or_else(|| corrupt(format!("unknown outbox kind {kind}")))?,
        payload: get::<Json<Box<serde_json::value::RawValue>>>(row, 3)?
            .0
            .into(),
        created_at: from_micros(get(row, 4)?)?,
        attempts: u32::try_from(attempts).unwrap_or(0),
    })
}

/// Reads `client_id, la_code, public_key, created_at`.
/// Reads `la_code, url, secret, created_at`.
pub(crate) fn webhook(row: &Row) -> StoreResult<Webhook> {
    Ok(Webhook {
        la: LaCode::parse(get(row, 0)?).map_err(corrupt)?,
        url: get(row, 1)?,
        secret: get(row, 2)?,
        created_at: from_micros(get(row, 3)?)?,
    })
}

pub(crate) fn la_client(row: &Row) -> StoreResult<LaClient> {
    Ok(LaClient {
        client_id: get(row, 0)?,
        la: LaCode::parse(get(row, 1)?).map_err(corrupt)?,
        public_key: get(row, 2)?,
        created_at: from_micros(get(row, 3)?)?,
    })
}

pub(crate) const SELECT_UPLOAD: &str = "SELECT id, la_code, received_at, mode, file_code, accepted,
        rejected, withdrawn, idempotency_key, records FROM upload";

/// Reads the columns of [`SELECT_UPLOAD`].
pub(crate) fn upload(row: &Row) -> StoreResult<UploadRecord> {
    let count =
        |index| -> StoreResult<u64> { Ok(u64::try_from(get::<i64>(row, index)?).unwrap_or(0)) };
    Ok(UploadRecord {
        id: get(row, 0)?,
        la: LaCode::parse(get(row, 1)?).map_err(corrupt)?,
        received_at: from_micros(get(row, 2)?)?,
        mode: get(row, 3)?,
        file_code: get(row, 4)?,
        accepted: count(5)?,
        rejected: count(6)?,
        withdrawn: count(7)?,
        idempotency_key: get(row, 8)?,
        records: get(row, 9)?,
    })
}

pub(crate) async fn insert_upload(tx: &Transaction<'_>, upload: &UploadRecord) -> StoreResult<()> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    tx.execute(
        "INSERT INTO upload (id, la_code, received_at, mode, file_code, accepted, rejected,
             withdrawn, idempotency_key, records)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &upload.id,
            &upload.la.as_str(),
            &micros(upload.received_at),
            &upload.mode,
            &upload.file_code,
            &count(upload.accepted),
            &count(upload.rejected),
            &count(upload.withdrawn),
            &upload.idempotency_key,
            &upload.records,
        ],
    )
    .await
    .db()?;
    Ok(())
}
