//! Concurrent requests share statements: the clinician's look, its reads
//! and its write, each batched across the looks arriving together.
//!
//! On PostgreSQL every statement costs the server tens of microseconds of
//! CPU however little it does. A look took six (two reads, then BEGIN, two
//! INSERTs and COMMIT), so the server's CPU, not the disk, capped the looks
//! a second. Here a few tasks per kind of request each take every request
//! waiting, answer them all with statements of arrays (`unnest`), and reply
//! to each caller; writes reply once their statement has committed. A look
//! is two batches: its reads (its plans, and its attendances in the
//! windows of those plans' LAs, sent together) and its write. A batch the
//! database refuses is run again request by request, so a bad one fails
//! alone, as on the embedded store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cpis_domain::{AccessRecord, Attendance, NhsNumber};
use cpis_store::encoding::corrupt;
use cpis_store::log::LogKind;
use cpis_store::merkle::Hash;
use cpis_store::{LookReads, OutboxItem, Recorded, RepeatAlert, StoreError, StoreResult};
use deadpool_postgres::{GenericClient, Object, Pool};
use time::{Duration, OffsetDateTime};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::Row;
use tokio_postgres::types::Json;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::PoolSettings;
use crate::rows::{self, DbResult, micros, nhs};

/// Tasks for each kind of read. More than one, so that while one batch
/// waits on the database the next is already going, and a slow batch does
/// not hold up every look. Not more: each task takes whatever is waiting, so
/// at 5,000 looks a second four tasks made batches of two or three looks,
/// and PostgreSQL's cost per statement, on the cores it shares with the
/// server, became the tail (p99 12 to 16 ms; two tasks 8 ms, one 7 ms, and
/// 14% more looks a second over HTTP; BENCHMARKS.md, 2026-12-07).
const READ_TASKS: usize = 2;

/// Tasks for the looks' writes: one. Every write batch takes the log's and
/// the feed's sequencer locks and holds them to commit (see [`INSERT`]), so
/// write batches commit one after another however many tasks send them; a
/// second task only took the looks waiting into a batch of its own that
/// then waited for the lock, where one task takes them all into the next
/// batch. Four interleaved rounds of each at 5,000 looks a second: p50 5.6
/// to 6.6 ms with one task against 6.2 to 11.7 ms with two, and with nine
/// looks in ten finding no plan p99 14 to 30 ms against 24 to 50 ms
/// (BENCHMARKS.md, 2026-12-07).
const WRITE_TASKS: usize = 1;

/// The connections the tasks of all three kinds hold at most.
pub(crate) const CONNECTIONS: usize = 2 * READ_TASKS + WRITE_TASKS;

/// The most requests one statement answers.
const MAX_BATCH: usize = 256;

/// A kind of request that can be answered many at a time.
pub(crate) trait Batch: Send + Sync + 'static {
    /// How many tasks run this kind's batches, each on its own connection.
    const TASKS: usize;
    type Request: Send + Sync + 'static;
    type Response: Send + 'static;

    /// Answers every request, in order, or fails: then nothing was written.
    fn run(
        &self,
        client: &mut Object,
        requests: &[&Self::Request],
    ) -> impl Future<Output = StoreResult<Vec<Self::Response>>> + Send;
}

struct Job<B: Batch> {
    request: B::Request,
    reply: oneshot::Sender<StoreResult<B::Response>>,
}

/// The way in to one kind of request's tasks; they stop when it is dropped.
pub(crate) struct Group<B: Batch> {
    jobs: mpsc::Sender<Job<B>>,
    counts: Arc<Counts>,
    /// The longest a caller waits, queued and answered: a database that
    /// stops answering without closing its connections gives 503, not a
    /// caller waiting for TCP to give up.
    timeout: std::time::Duration,
}

/// How well requests are sharing statements, since the store was opened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shared {
    /// Batches run.
    pub batches: u64,
    /// Requests answered in them.
    pub requests: u64,
}

#[derive(Default)]
struct Counts {
    batches: AtomicU64,
    requests: AtomicU64,
}

impl<B: Batch> Group<B> {
    /// Starts the tasks on the current runtime.
    pub(crate) fn start(batch: B, pool: Pool, target: &str, settings: &PoolSettings) -> Self {
        let (jobs, receiver) = mpsc::channel(MAX_BATCH * B::TASKS);
        let receiver = Arc::new(Mutex::new(receiver));
        let counts = Arc::new(Counts::default());
        let runner = Arc::new(Runner {
            batch,
            pool,
            target: target.to_owned(),
            retry_budget: settings.wait_timeout,
        });
        for _ in 0..B::TASKS {
            tokio::spawn(run(runner.clone(), receiver.clone(), counts.clone()));
        }
        Group {
            jobs,
            counts,
            timeout: settings.wait_timeout + settings.statement_timeout,
        }
    }

    /// Answers `request`, sharing a statement with whatever else is waiting.
    /// A write that times out here may still commit: the caller is told it
    /// failed, and the look is recorded though nothing was shown.
    pub(crate) async fn call(&self, request: B::Request) -> StoreResult<B::Response> {
        let answered = tokio::time::timeout(self.timeout, async {
            let (reply, answer) = oneshot::channel();
            self.jobs.send(Job { request, reply }).await.map_err(|_| {
                StoreError::Unavailable("the store's batching task has stopped".into())
            })?;
            answer.await.map_err(|_| {
                StoreError::Unavailable("the store's batching task stopped before answering".into())
            })?
        })
        .await;
        answered.unwrap_or_else(|_| {
            Err(StoreError::Unavailable(
                "the database did not answer in time".into(),
            ))
        })
    }

    /// Whether every task has stopped (none can, but by a panic).
    pub(crate) fn stopped(&self) -> bool {
        self.jobs.is_closed()
    }

    pub(crate) fn shared(&self) -> Shared {
        Shared {
            batches: self.counts.batches.load(Ordering::Relaxed),
            requests: self.counts.requests.load(Ordering::Relaxed),
        }
    }
}

struct Runner<B> {
    batch: B,
    pool: Pool,
    /// Host, port and database, for messages.
    target: String,
    /// How long a refused batch's requests may go on being run one by one;
    /// those left then fail, rather than each wait its turn at a database
    /// too slow to answer.
    retry_budget: std::time::Duration,
}

/// Why a batch failed.
enum Failure {
    /// No connection, or it broke: alone, each request would fail the same way.
    Connection(StoreError),
    /// The database refused the statement: one request may be to blame.
    Statement(StoreError),
}

impl Failure {
    fn into_error(self) -> StoreError {
        match self {
            Failure::Connection(error) | Failure::Statement(error) => error,
        }
    }
}

async fn run<B: Batch>(
    runner: Arc<Runner<B>>,
    receiver: Arc<Mutex<mpsc::Receiver<Job<B>>>>,
    counts: Arc<Counts>,
) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    loop {
        // One task gathers at a time; the others are running meanwhile.
        let received = receiver.lock().await.recv_many(&mut jobs, MAX_BATCH).await;
        if received == 0 {
            return;
        }
        counts.batches.fetch_add(1, Ordering::Relaxed);
        counts
            .requests
            .fetch_add(received as u64, Ordering::Relaxed);
        runner.answer(&mut jobs).await;
    }
}

impl<B: Batch> Runner<B> {
    /// Runs and answers every job in `jobs`, leaving it empty.
    async fn answer(&self, jobs: &mut Vec<Job<B>>) {
        let requests: Vec<&B::Request> = jobs.iter().map(|job| &job.request).collect();
        let result = self.run(&requests).await;
        match result {
            Ok(responses) if responses.len() == jobs.len() => {
                for (job, response) in jobs.drain(..).zip(responses) {
                    let _ = job.reply.send(Ok(response));
                }
            }
            Ok(_) => {
                for job in jobs.drain(..) {
                    let message = "a batch was answered with the wrong number of responses";
                    let _ = job.reply.send(Err(StoreError::Corrupt(message.into())));
                }
            }
            Err(Failure::Connection(error)) => {
                let message = match error {
                    StoreError::Unavailable(message) => message,
                    other => other.to_string(),
                };
                for job in jobs.drain(..) {
                    let _ = job
                        .reply
                        .send(Err(StoreError::Unavailable(message.clone())));
                }
            }
            Err(Failure::Statement(error)) if jobs.len() == 1 => {
                if let Some(job) = jobs.pop() {
                    let _ = job.reply.send(Err(error));
                }
            }
            Err(Failure::Statement(error)) => {
                tracing::warn!(%error, requests = jobs.len(), "a batch was refused; running each request alone");
                let deadline = tokio::time::Instant::now() + self.retry_budget;
                for job in jobs.drain(..) {
                    let result = if tokio::time::Instant::now() < deadline {
                        self.run(&[&job.request])
                            .await
                            .map_err(Failure::into_error)
                            .and_then(|responses| {
                                responses.into_iter().next().ok_or_else(|| {
                                    StoreError::Corrupt(
                                        "a request was answered with nothing".into(),
                                    )
                                })
                            })
                    } else {
                        Err(StoreError::Unavailable(
                            "the database is answering too slowly".into(),
                        ))
                    };
                    let _ = job.reply.send(result);
                }
            }
        }
    }

    async fn run(&self, requests: &[&B::Request]) -> Result<Vec<B::Response>, Failure> {
        let mut client = self.pool.get().await.map_err(|error| {
            Failure::Connection(StoreError::Unavailable(format!(
                "cannot reach PostgreSQL at {}: {error}",
                self.target
            )))
        })?;
        match self.batch.run(&mut client, requests).await {
            Ok(responses) => Ok(responses),
            Err(error) if client.is_closed() => Err(Failure::Connection(error)),
            Err(error) => Err(Failure::Statement(error)),
        }
    }
}

/// What a look reads ([`cpis_store::Store::reads_for_look`]): a child's
/// plans with their LAs and, if asked, its attendances in each of those LAs'
/// windows ending at a time. Both in one round trip: two statements sent
/// together.
pub(crate) struct ReadsForLook;

/// A child, the end of its windows, and whether its attendances are wanted.
pub(crate) type PlansFor = (NhsNumber, OffsetDateTime, bool);

impl Batch for ReadsForLook {
    const TASKS: usize = READ_TASKS;
    type Request = PlansFor;
    type Response = LookReads;

    async fn run(
        &self,
        client: &mut Object,
        requests: &[&PlansFor],
    ) -> StoreResult<Vec<Self::Response>> {
        // Each number is looked up by the index whatever the statistics say
        // (`OFFSET 0` keeps the subquery from being flattened into a join
        // that a plan made before the table was analysed could hash), and
        // the LAs are joined once for the batch (`MATERIALIZED`), not
        // scanned again for each number.
        let plans = client
            .prepare_cached(
                "WITH found AS MATERIALIZED (
                     SELECT q.n, p.*
                     FROM unnest($1::bigint[]) WITH ORDINALITY AS q (nhs, n)
                     CROSS JOIN LATERAL (
                         SELECT * FROM plan WHERE plan.nhs_number = q.nhs OFFSET 0) AS p)
                 SELECT p.n, p.nhs_number, p.la_code, p.plan_type, p.start_date, p.end_date,
                        p.delete_date, p.expected_delivery_date, p.local_reference,
                        la.code, la.name, la.emergency_duty_number, la.office_hours_number,
                        la.repeat_organisations, la.repeat_days
                 FROM found p JOIN local_authority la ON la.code = p.la_code",
            )
            .await
            .db()?;
        // A row for every window of the child's LAs, with or without
        // attendances. The two statements are two snapshots: a window only
        // one of them finds (a plan or an LA's rule changed in between) is
        // left out, and the caller reads it on its own.
        let attendances = client
            .prepare_cached(
                "WITH found AS MATERIALIZED (
                     SELECT q.n, q.nhs, q.until, p.la_code
                     FROM unnest($1::bigint[], $2::bigint[], $3::boolean[])
                         WITH ORDINALITY AS q (nhs, until, wanted, n)
                     CROSS JOIN LATERAL (
                         SELECT la_code FROM plan WHERE plan.nhs_number = q.nhs OFFSET 0) AS p
                     WHERE q.wanted),
                 windows AS MATERIALIZED (
                     SELECT DISTINCT f.n, f.nhs, f.until, la.repeat_days AS days
                     FROM found f JOIN local_authority la ON la.code = f.la_code)
                 SELECT w.n, w.days, seen.code, coalesce(o.name, seen.code), seen.first,
                        seen.last, seen.looks
                 FROM windows w
                 LEFT JOIN LATERAL (
                     SELECT organisation_code AS code, min(at) AS first, max(at) AS last,
                         count(*) AS looks
                     FROM access_log
                     WHERE nhs_number = w.nhs AND unscheduled
                         AND at > w.until - w.days::bigint * 86400000000 AND at <= w.until
                     GROUP BY organisation_code) AS seen ON true
                 LEFT JOIN organisation o ON o.code = seen.code",
            )
            .await
            .db()?;
        let numbers: Vec<i64> = requests.iter().map(|(number, _, _)| nhs(*number)).collect();
        let until: Vec<i64> = requests.iter().map(|(_, at, _)| micros(*at)).collect();
        let wanted: Vec<bool> = requests.iter().map(|(_, _, wanted)| *wanted).collect();
        let plan_params: [&(dyn ToSql + Sync); 1] = [&numbers];
        let attendance_params: [&(dyn ToSql + Sync); 3] = [&numbers, &until, &wanted];
        let (plan_rows, attendance_rows) = if wanted.contains(&true) {
            // Awaited together, the two are sent before either is answered.
            tokio::try_join!(
                client.query(&plans, &plan_params),
                client.query(&attendances, &attendance_params),
            )
            .db()?
        } else {
            (client.query(&plans, &plan_params).await.db()?, Vec::new())
        };
        let mut reads: Vec<LookReads> = requests
            .iter()
            .map(|_| LookReads {
                plans: Vec::new(),
                windows: Vec::new(),
            })
            .collect();
        for row in &plan_rows {
            let (plan, la) = (rows::plan(row, 1)?, rows::local_authority(row, 9)?);
            let read = answer_for(&mut reads, row)?;
            let window = la.repeat_attendance.window();
            if !read.windows.iter().any(|(known, _)| *known == window) {
                read.windows.push((window, Vec::new()));
            }
            read.plans.push((plan, la));
        }
        let mut agreed: Vec<Vec<Duration>> = requests.iter().map(|_| Vec::new()).collect();
        for row in &attendance_rows {
            let days: i32 = row.try_get(1).map_err(corrupt)?;
            let window = Duration::days(i64::from(days));
            let windows = answer_for(&mut agreed, row)?;
            if !windows.contains(&window) {
                windows.push(window);
            }
            let organisation: Option<&str> = row.try_get(2).map_err(corrupt)?;
            if organisation.is_none() {
                continue;
            }
            let attendance = rows::attendance(row, 2)?;
            let read = answer_for(&mut reads, row)?;
            if let Some((_, seen)) = read.windows.iter_mut().find(|(known, _)| *known == window) {
                seen.push(attendance);
            }
        }
        for (read, agreed) in reads.iter_mut().zip(agreed) {
            // Not asked for, or not found by both statements.
            read.windows.retain(|(window, _)| agreed.contains(window));
        }
        Ok(reads)
    }
}

/// Reads each child's unscheduled looks within a window, by organisation.
pub(crate) struct ReadAttendances;

/// A child and the window to read: after `since`, up to and including `until`.
pub(crate) type Window = (NhsNumber, OffsetDateTime, OffsetDateTime);

impl Batch for ReadAttendances {
    const TASKS: usize = READ_TASKS;
    type Request = Window;
    type Response = Vec<Attendance>;

    async fn run(
        &self,
        client: &mut Object,
        windows: &[&Window],
    ) -> StoreResult<Vec<Self::Response>> {
        let select = client
            .prepare_cached(
                "SELECT q.n, seen.code, coalesce(o.name, seen.code), seen.first, seen.last,
                        seen.looks
                 FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])
                     WITH ORDINALITY AS q (nhs, since, until, n)
                 CROSS JOIN LATERAL (
                     SELECT organisation_code AS code, min(at) AS first, max(at) AS last,
                         count(*) AS looks
                     FROM access_log
                     WHERE nhs_number = q.nhs AND unscheduled AND at > q.since AND at <= q.until
                     GROUP BY organisation_code) AS seen
                 LEFT JOIN organisation o ON o.code = seen.code",
            )
            .await
            .db()?;
        let numbers: Vec<i64> = windows.iter().map(|(number, _, _)| nhs(*number)).collect();
        let since: Vec<i64> = windows.iter().map(|(_, since, _)| micros(*since)).collect();
        let until: Vec<i64> = windows.iter().map(|(_, _, until)| micros(*until)).collect();
        let rows = client
            .query(&select, &[&numbers, &since, &until])
            .await
            .db()?;
        let mut seen: Vec<Self::Response> = windows.iter().map(|_| Vec::new()).collect();
        for row in &rows {
            let attendance = rows::attendance(row, 1)?;
            answer_for(&mut seen, row)?.push(attendance);
        }
        Ok(seen)
    }
}

/// The answer a row belongs to, from its first column: the request's place
/// in the batch, counting from 1 (`WITH ORDINALITY`).
fn answer_for<'a, T>(answers: &'a mut [T], row: &Row) -> StoreResult<&'a mut T> {
    let n: i64 = row.try_get(0).map_err(corrupt)?;
    usize::try_from(n - 1)
        .ok()
        .and_then(|index| answers.get_mut(index))
        .ok_or_else(|| corrupt(format!("a batch's row names request {n}")))
}

/// What one look writes.
pub(crate) struct Look {
    pub record: AccessRecord,
    /// Its log leaf; `None` only in the log-overhead benchmark's build.
    pub leaf: Option<Hash>,
    pub outbox: Vec<OutboxItem>,
    pub alerts: Vec<RepeatAlert>,
}

/// Writes looks: records, leaves and outbox items in one statement, and
/// repeat alerts after it in the same transaction. Answers how many of
/// each look's alerts were taken, and whether it wrote an item to push.
pub(crate) struct WriteLooks;

impl Batch for WriteLooks {
    const TASKS: usize = WRITE_TASKS;
    type Request = Look;
    type Response = Recorded;

    async fn run(&self, client: &mut Object, looks: &[&Look]) -> StoreResult<Vec<Recorded>> {
        write(client, looks).await
    }
}

/// Writes `looks` in one transaction; answers, look by look, how many
/// repeat alerts were taken and whether an item to push was written.
async fn write(client: &mut Object, looks: &[&Look]) -> StoreResult<Vec<Recorded>> {
    let columns = Columns::of(looks)?;
    if looks.iter().all(|look| look.alerts.is_empty()) {
        // One statement is its own transaction: one round trip in all.
        let pushed = columns.insert(&*client).await?;
        return Ok(columns.recorded(looks.len(), &pushed));
    }
    let tx = client.transaction().await.db()?;
    let pushed = columns.insert(&tx).await?;
    let mut recorded = columns.recorded(looks.len(), &pushed);
    // Taking a window locks its row, even when the window is not taken; in
    // one order for every batch (stable, so the first look of a batch takes
    // a window before a later one), or two batches could deadlock.
    let mut alerts: Vec<(usize, &RepeatAlert)> = looks
        .iter()
        .enumerate()
        .flat_map(|(index, look)| look.alerts.iter().map(move |alert| (index, alert)))
        .collect();
    alerts.sort_by_key(|(_, alert)| (alert.item.la.as_str(), nhs(alert.nhs_number)));
    for (index, alert) in alerts {
        if let Some(pushed) = take_alert(&tx, alert).await? {
            recorded[index].alerts += 1;
            recorded[index].pushed |= pushed;
        }
    }
    tx.commit().await.db()?;
    Ok(recorded)
}

/// Takes the LA's repeat-attendance window for the child and writes the
/// alert's item, unless an alert already took it (`None`); answers whether
/// the item is to be pushed.
async fn take_alert(
    tx: &deadpool_postgres::Transaction<'_>,
    alert: &RepeatAlert,
) -> StoreResult<Option<bool>> {
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
        return Ok(None);
    }
    rows::insert_outbox(tx, &alert.item).await.map(Some)
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
    /// Which look (its index in the batch) wrote each item.
    item_look: Vec<usize>,
    item_la: Vec<&'a str>,
    item_kind: Vec<&'a str>,
    item_payload: Vec<Json<&'a serde_json::value::RawValue>>,
    item_created: Vec<i64>,
    item_attempts: Vec<i32>,
}

/// The batch's leaves are placed in the log's tree, and its outbox items
/// numbered in the LAs' feeds, as they are written, under the two
/// sequencers' row locks (every batch takes both by this one statement, so
/// in one order, and nothing else takes both), held until the statement
/// commits: so places and numbers follow commit order, the tree
/// only grows at its end and a feed reader skips nothing, as with
/// `Store::sequence_log` and the feed's own sequencer, which are left only
/// what is written elsewhere (uploads, retention, repeat alerts). Placing
/// the looks' leaves afterwards was an `UPDATE` of every leaf a second,
/// which moves the row and indexes it again; under the query benchmark it
/// took PostgreSQL 90 ms a second and cut the looks a second by a quarter
/// (numbering the feed afterwards cost the same whenever an LA read it).
/// The cost is that write batches commit one after another, so one task
/// sends them ([`WRITE_TASKS`]).
const INSERT: &str = "WITH place AS (
        UPDATE log_sequencer SET next = next + cardinality($16::uuid[])
        WHERE id = 1 AND cardinality($16::uuid[]) > 0
        RETURNING next - cardinality($16::uuid[]) AS first
    ), number AS (
        UPDATE outbox_sequencer SET last = last + cardinality($18::uuid[])
        WHERE id = 1 AND cardinality($18::uuid[]) > 0
        RETURNING last - cardinality($18::uuid[]) AS first
    ), access AS (
        INSERT INTO access_log (id, at, nhs_number, user_id, user_name, role_code, role_name,
            activity_code, organisation_code, organisation_name, setting_type, unscheduled,
            returned, request_id)
        SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::text[], $5::text[],
            $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
            $12::boolean[], $13::jsonb[], $14::text[])
    ), leaf AS (
        INSERT INTO log_leaf (record_id, kind, hash, idx)
        SELECT l.id, $15::text, l.hash, place.first + l.n - 1
        FROM unnest($16::uuid[], $17::bytea[]) WITH ORDINALITY AS l (id, hash, n), place
    ), item AS (
        INSERT INTO outbox (id, la_code, kind, payload, created_at, available_at, attempts, push,
            feed_seq)
        SELECT o.id, o.la, o.kind, o.payload, o.created, o.created, o.attempts,
            EXISTS (SELECT 1 FROM la_webhook w WHERE w.la_code = o.la), number.first + o.n
        FROM unnest($18::uuid[], $19::text[], $20::text[], $21::jsonb[], $22::bigint[],
            $23::integer[]) WITH ORDINALITY AS o (id, la, kind, payload, created, attempts, n),
            number
        RETURNING id, push
    )
    SELECT id FROM item WHERE push";

impl<'a> Columns<'a> {
    fn of(looks: &[&'a Look]) -> StoreResult<Self> {
        let mut columns = Columns::default();
        for (index, look) in looks.iter().enumerate() {
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
                columns.item_look.push(index);
                columns.item_la.push(item.la.as_str());
                columns.item_kind.push(item.kind.code());
                columns.item_payload.push(Json(item.payload.raw()));
                columns.item_created.push(micros(item.created_at));
                columns
                    .item_attempts
                    .push(i32::try_from(item.attempts).unwrap_or(i32::MAX));
            }
        }
        Ok(columns)
    }

    /// Writes the batch; answers the ids of the items to be pushed.
    async fn insert(&self, client: &impl GenericClient) -> StoreResult<Vec<Uuid>> {
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
        let pushed = client.query(&insert, &params).await.db()?;
        pushed
            .iter()
            .map(|row| row.try_get(0).map_err(corrupt))
            .collect()
    }

    /// What each of the batch's `looks` wrote before its alerts: whether
    /// any of its items is among the `pushed`.
    fn recorded(&self, looks: usize, pushed: &[Uuid]) -> Vec<Recorded> {
        let mut recorded = vec![Recorded::default(); looks];
        if pushed.is_empty() {
            return recorded;
        }
        let look_of: std::collections::HashMap<Uuid, usize> = self
            .item_id
            .iter()
            .copied()
            .zip(self.item_look.iter().copied())
            .collect();
        for id in pushed {
            if let Some(look) = look_of.get(id).and_then(|&look| recorded.get_mut(look)) {
                look.pushed = true;
            }
        }
        recorded
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::testing::TestSchema;

    #[test]
    fn each_look_is_told_whether_its_own_items_are_pushed() {
        let item = |la: &str| OutboxItem {
            id: Uuid::now_v7(),
            la: cpis_domain::LaCode::parse(la).unwrap(),
            kind: cpis_store::OutboxKind::Access,
            payload: serde_json::json!({}).into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            attempts: 0,
        };
        let look = |n: u32, outbox: Vec<OutboxItem>| Look {
            record: cpis_store::conformance::test_access(
                cpis_store::conformance::test_nhs_number(n),
                OffsetDateTime::UNIX_EPOCH,
                true,
            ),
            leaf: None,
            outbox,
            alerts: Vec::new(),
        };
        let pushed_item = item("E09000007");
        let looks = [
            look(1, vec![item("E10000016")]),
            look(2, Vec::new()),
            look(3, vec![item("E10000016"), pushed_item.clone()]),
        ];
        let looks: Vec<&Look> = looks.iter().collect();
        let columns = Columns::of(&looks).unwrap();
        let pushed: Vec<bool> = columns
            .recorded(looks.len(), &[pushed_item.id])
            .iter()
            .map(|recorded| recorded.pushed)
            .collect();
        assert_eq!(pushed, [false, false, true]);
        assert!(
            columns
                .recorded(looks.len(), &[])
                .iter()
                .all(|recorded| *recorded == Recorded::default())
        );
    }

    /// A batch whose every run panics: a bug, in a task.
    struct Panics;

    impl Batch for Panics {
        const TASKS: usize = 2;
        type Request = ();
        type Response = ();

        async fn run(&self, _: &mut Object, _: &[&()]) -> StoreResult<Vec<()>> {
            panic!("a bug in a batch");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_that_panic_fail_their_callers_and_are_seen_stopped() {
        let Some(schema) = TestSchema::new("the batching task test") else {
            return;
        };
        let config: tokio_postgres::Config = schema.url.parse().unwrap();
        let settings = PoolSettings::default();
        let pool = crate::build_pool(config, 1, &settings).unwrap();
        let group = Group::start(Panics, pool, "test", &settings);
        for _ in 0..Panics::TASKS {
            assert!(!group.stopped());
            let failed = group.call(()).await;
            assert!(
                matches!(failed, Err(StoreError::Unavailable(_))),
                "{failed:?}"
            );
        }
        // The last task's receiver goes as it unwinds.
        for _ in 0..100 {
            if group.stopped() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(group.stopped(), "every task has panicked");
        let refused = group.call(()).await;
        assert!(
            matches!(refused, Err(StoreError::Unavailable(_))),
            "{refused:?}"
        );
    }
}
