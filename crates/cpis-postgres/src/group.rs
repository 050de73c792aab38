//! Group commit for access records: concurrent looks share one statement
//! and one commit.
//!
//! On PostgreSQL every statement costs the server tens of microseconds of
//! CPU however little it does, and a look's record, leaf and notifications
//! took four statements and a commit of their own: the server, not the
//! disk, capped the looks a second. Here a few writer tasks each take every
//! look waiting, write them all with one statement of arrays (`unnest`),
//! and answer each caller once that has committed. A batch the database
//! refuses is written again one look at a time, so a bad look fails alone,
//! as on the embedded store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cpis_domain::AccessRecord;
use cpis_store::encoding::corrupt;
use cpis_store::log::LogKind;
use cpis_store::merkle::Hash;
use cpis_store::{OutboxItem, RepeatAlert, StoreError, StoreResult};
use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::rows::{self, DbResult, micros, nhs};

/// Writer tasks. More than one, so that while one batch waits for its
/// commit to reach the disk the next is already being written.
const WRITERS: usize = 4;

/// The most looks one statement writes.
const MAX_BATCH: usize = 256;

/// What one look writes.
pub(crate) struct Look {
    pub record: AccessRecord,
    /// Its log leaf; `None` only in the log-overhead benchmark's build.
    pub leaf: Option<Hash>,
    pub outbox: Vec<OutboxItem>,
    pub alerts: Vec<RepeatAlert>,
}

struct Job {
    look: Look,
    reply: oneshot::Sender<StoreResult<u64>>,
}

/// The way in to the writer tasks; they stop when it is dropped.
pub(crate) struct GroupWriter {
    jobs: mpsc::Sender<Job>,
    counts: Arc<Counts>,
}

/// How well looks are sharing statements, since the store was opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommits {
    /// Batches written (each one statement, or one transaction with alerts).
    pub batches: u64,
    /// Looks written in them.
    pub looks: u64,
}

#[derive(Default)]
struct Counts {
    batches: AtomicU64,
    looks: AtomicU64,
}

impl GroupWriter {
    /// Starts the writer tasks on the current runtime.
    pub(crate) fn start(pool: Pool, target: &str) -> Self {
        let (jobs, receiver) = mpsc::channel(MAX_BATCH * WRITERS);
        let receiver = Arc::new(Mutex::new(receiver));
        let target: Arc<str> = target.into();
        let counts = Arc::new(Counts::default());
        for _ in 0..WRITERS {
            tokio::spawn(run(
                pool.clone(),
                target.clone(),
                receiver.clone(),
                counts.clone(),
            ));
        }
        GroupWriter { jobs, counts }
    }

    pub(crate) fn counts(&self) -> GroupCommits {
        GroupCommits {
            batches: self.counts.batches.load(Ordering::Relaxed),
            looks: self.counts.looks.load(Ordering::Relaxed),
        }
    }

    /// Writes `look` durably, with whatever else is waiting; answers how many
    /// of its repeat alerts were taken.
    pub(crate) async fn write(&self, look: Look) -> StoreResult<u64> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { look, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the access writer has stopped".into()))?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the access writer stopped before the look was written".into())
        })?
    }
}

async fn run(
    pool: Pool,
    target: Arc<str>,
    receiver: Arc<Mutex<mpsc::Receiver<Job>>>,
    counts: Arc<Counts>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        // One task gathers at a time; the others are writing meanwhile.
        let received = receiver.lock().await.recv_many(&mut batch, MAX_BATCH).await;
        if received == 0 {
            return;
        }
        counts.batches.fetch_add(1, Ordering::Relaxed);
        counts.looks.fetch_add(received as u64, Ordering::Relaxed);
        write_batch(&pool, &target, &mut batch).await;
    }
}

/// Writes and answers every job in `batch`, leaving it empty.
async fn write_batch(pool: &Pool, target: &str, batch: &mut Vec<Job>) {
    let looks: Vec<&Look> = batch.iter().map(|job| &job.look).collect();
    let result = write(pool, target, &looks).await;
    match result {
        Ok(written) => {
            for (job, taken) in batch.drain(..).zip(written) {
                let _ = job.reply.send(Ok(taken));
            }
        }
        // The database is out of reach: alone, each would fail the same way.
        Err(StoreError::Unavailable(message)) => {
            for job in batch.drain(..) {
                let _ = job
                    .reply
                    .send(Err(StoreError::Unavailable(message.clone())));
            }
        }
        Err(error) if batch.len() == 1 => {
            if let Some(job) = batch.pop() {
                let _ = job.reply.send(Err(error));
            }
        }
        Err(error) => {
            tracing::warn!(%error, looks = batch.len(), "a batch of looks was refused; writing each alone");
            for job in batch.drain(..) {
                let result = write(pool, target, &[&job.look]).await;
                let _ = job.reply.send(result.map(|written| written.iter().sum()));
            }
        }
    }
}

/// Writes `looks` in one transaction; answers, look by look, how many
/// repeat alerts were taken.
async fn write(pool: &Pool, target: &str, looks: &[&Look]) -> StoreResult<Vec<u64>> {
    let mut client = pool.get().await.map_err(|error| {
        StoreError::Unavailable(format!("cannot reach PostgreSQL at {target}: {error}"))
    })?;
    let columns = Columns::of(looks)?;
    if looks.iter().all(|look| look.alerts.is_empty()) {
        // One statement is its own transaction: one round trip in all.
        columns.insert(&client).await?;
        return Ok(vec![0; looks.len()]);
    }
    let tx = client.transaction().await.db()?;
    columns.insert(&tx).await?;
    let mut written = Vec::with_capacity(looks.len());
    for look in looks {
        let mut taken = 0;
        for alert in &look.alerts {
            if take_alert(&tx, alert).await? {
                taken += 1;
            }
        }
        written.push(taken);
    }
    tx.commit().await.db()?;
    Ok(written)
}

/// Takes the LA's repeat-attendance window for the child and writes the
/// alert's item, unless an alert already took it.
async fn take_alert(
    tx: &deadpool_postgres::Transaction<'_>,
    alert: &RepeatAlert,
) -> StoreResult<bool> {
    // The conflicting row is locked and its condition checked again on its
    // newest version, so two nodes (or two looks in one batch) cannot both
    // take a window.
    let took = tx
        .execute(
            "INSERT INTO repeat_alert (la_code, nhs_number, alerted_at) VALUES ($1, $2, $3)
             ON CONFLICT (la_code, nhs_number) DO UPDATE SET alerted_at = excluded.alerted_at
             WHERE repeat_alert.alerted_at <= $4",
            &[
                &alert.item.la.as_str(),
                &nhs(alert.nhs_number),
                &micros(alert.item.created_at),
                &micros(alert.not_since),
            ],
        )
        .await
        .db()?;
    if took == 0 {
        return Ok(false);
    }
    rows::insert_outbox(tx, &alert.item).await?;
    Ok(true)
}

/// Every record, leaf and outbox item of a batch, column by column.
#[derive(Default)]
struct Columns<'a> {
    id: Vec<Uuid>,
    at: Vec<i64>,
    nhs_number: Vec<i64>,
    user_id: Vec<&'a str>,
    user_name: Vec<&'a str>,
    role_code: Vec<&'a str>,
    role_name: Vec<&'a str>,
    activity_code: Vec<&'a str>,
    organisation_code: Vec<&'a str>,
    organisation_name: Vec<&'a str>,
    setting_type: Vec<&'a str>,
    unscheduled: Vec<bool>,
    returned: Vec<serde_json::Value>,
    request_id: Vec<&'a str>,
    leaf_id: Vec<Uuid>,
    leaf_hash: Vec<&'a [u8]>,
    item_id: Vec<Uuid>,
    item_la: Vec<&'a str>,
    item_kind: Vec<&'a str>,
    item_payload: Vec<&'a serde_json::Value>,
    item_created: Vec<i64>,
    item_attempts: Vec<i32>,
}

const INSERT: &str = "WITH access AS (
        INSERT INTO access_log (id, at, nhs_number, user_id, user_name, role_code, role_name,
            activity_code, organisation_code, organisation_name, setting_type, unscheduled,
            returned, request_id)
        SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
            $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
            $12::boolean[], $13::jsonb[], $14::text[])
    ), leaf AS (
        INSERT INTO log_leaf (record_id, kind, hash)
        SELECT l.id, $15::text, l.hash FROM unnest($16::uuid[], $17::bytea[]) AS l (id, hash)
    )
    INSERT INTO outbox (id, la_code, kind, payload, created_at, available_at, attempts, push)
    SELECT o.id, o.la, o.kind, o.payload, o.created, o.created, o.attempts,
        EXISTS (SELECT 1 FROM la_webhook w WHERE w.la_code = o.la)
    FROM unnest($18::uuid[], $19::text[], $20::text[], $21::jsonb[], $22::bigint[],
        $23::integer[]) AS o (id, la, kind, payload, created, attempts)";

impl<'a> Columns<'a> {
    fn of(looks: &[&'a Look]) -> StoreResult<Self> {
        let mut columns = Columns::default();
        for look in looks {
            let record = &look.record;
            columns.id.push(record.id);
            columns.at.push(micros(record.at));
            columns.nhs_number.push(nhs(record.nhs_number));
            columns.user_id.push(&record.user_id);
            columns.user_name.push(&record.user_name);
            columns.role_code.push(&record.role_code);
            columns.role_name.push(&record.role_name);
            columns.activity_code.push(&record.activity_code);
            columns
                .organisation_code
                .push(record.organisation_code.as_str());
            columns.organisation_name.push(&record.organisation_name);
            columns.setting_type.push(record.setting_type.code());
            columns.unscheduled.push(record.unscheduled);
            columns
                .returned
                .push(serde_json::to_value(&record.returned).map_err(corrupt)?);
            columns.request_id.push(&record.request_id);
            if let Some(leaf) = &look.leaf {
                columns.leaf_id.push(record.id);
                columns.leaf_hash.push(&leaf[..]);
            }
            for item in &look.outbox {
                columns.item_id.push(item.id);
                columns.item_la.push(item.la.as_str());
                columns.item_kind.push(item.kind.code());
                columns.item_payload.push(&item.payload);
                columns.item_created.push(micros(item.created_at));
                columns
                    .item_attempts
                    .push(i32::try_from(item.attempts).unwrap_or(i32::MAX));
            }
        }
        Ok(columns)
    }

    async fn insert(&self, client: &impl GenericClient) -> StoreResult<()> {
        let insert = client.prepare_cached(INSERT).await.db()?;
        let kind = LogKind::Access.code();
        let params: [&(dyn ToSql + Sync); 23] = [
            &self.id,
            &self.at,
            &self.nhs_number,
            &self.user_id,
            &self.user_name,
            &self.role_code,
            &self.role_name,
            &self.activity_code,
            &self.organisation_code,
            &self.organisation_name,
            &self.setting_type,
            &self.unscheduled,
            &self.returned,
            &self.request_id,
            &kind,
            &self.leaf_id,
            &self.leaf_hash,
            &self.item_id,
            &self.item_la,
            &self.item_kind,
            &self.item_payload,
            &self.item_created,
            &self.item_attempts,
        ];
        client.execute(&insert, &params).await.db()?;
        Ok(())
    }
}
