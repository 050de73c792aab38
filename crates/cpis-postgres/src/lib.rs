//! The scale-out store: PostgreSQL, shared by any number of `cpis` nodes.
//!
//! Each method is one transaction on a pooled connection, except the
//! clinician's look: its reads (plans and attendances, two statements sent
//! together) and its write are each shared with the looks arriving with it
//! (`group`), since a statement costs the server far more CPU than its
//! rows. The SQL keeps to what PostgreSQL-compatible distributed engines
//! also run: `INSERT … ON CONFLICT`, `FOR UPDATE SKIP LOCKED`, no sequences,
//! triggers, advisory locks or LISTEN/NOTIFY.

mod group;
mod migrations;
mod rows;
pub mod testing;

use std::time::Duration;

use cpis_domain::{
    AccessRecord, Attendance, LaCode, LocalAuthority, NhsNumber, OdsCode, Organisation, Plan,
};
use cpis_store::encoding::{BucketWalk, corrupt, from_micros, report_bucket, report_cursor};
use cpis_store::log::{
    self, Checkpoint, LogEntry, LogKind, LogLeaf, LoggedRecord, ReportRecord, RetentionRecord,
};
use cpis_store::merkle::{self, Hash};
use cpis_store::{AccessFilter, AccessQuery, OutboxKind};
use cpis_store::{
    AppliedPlans, DeliveryCounts, FailedItem, LaClient, LookReads, OutboxClaim, OutboxItem,
    PlanBatch, PlanPage, Recorded, RepeatCheck, Store, StoreCounts, StoreError, StoreResult,
    UploadRecord, Webhook,
};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use time::OffsetDateTime;
use tokio_postgres::NoTls;
use uuid::Uuid;

pub use crate::group::Shared;
use crate::group::{Group, Look, ReadAttendances, ReadsForLook, WriteLooks};
use crate::rows::{DbResult, micros, nhs};

/// How the pool behaves; the defaults suit one node of a national service.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub max_connections: usize,
    /// How long a request waits for a free connection before it gets a 503.
    pub wait_timeout: Duration,
    /// How long opening a new connection may take.
    pub connect_timeout: Duration,
    /// The longest any one statement may run.
    pub statement_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            max_connections: 16,
            wait_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }
}

/// A store in one PostgreSQL database (and schema).
pub struct PgStore {
    pool: Pool,
    /// Host, port and database, for messages: never the password.
    target: String,
    /// The clinician's look, batched: its reads and its write each share
    /// statements (and the write its commit) with the looks arriving with it.
    look_reads: Group<ReadsForLook>,
    read_attendances: Group<ReadAttendances>,
    look_writes: Group<WriteLooks>,
}

/// Whether opening the store brings the schema up to date.
#[derive(Clone, Copy)]
enum Migrate {
    Apply,
    /// Fail unless the schema is already at this cpis's version.
    Refuse,
}

impl PgStore {
    /// Connects to `url`, checks the server answers, and applies migrations
    /// under a lock so that nodes starting together do not race.
    pub async fn connect(url: &str, settings: PoolSettings) -> StoreResult<Self> {
        Self::connect_with_schema(url, None, settings).await
    }

    /// As [`PgStore::connect`], with every table in `schema` (created if
    /// missing). Tests use this to give each test its own schema.
    pub async fn connect_with_schema(
        url: &str,
        schema: Option<&str>,
        settings: PoolSettings,
    ) -> StoreResult<Self> {
        Self::open(url, schema, settings, Migrate::Apply).await
    }

    /// As [`PgStore::connect`], but only to read, beside the nodes that
    /// serve (`cpis audit verify`): nothing is migrated, and a database not
    /// at this cpis's schema version is refused rather than brought to it.
    pub async fn connect_to_read(url: &str, settings: PoolSettings) -> StoreResult<Self> {
        Self::open(url, None, settings, Migrate::Refuse).await
    }

    async fn open(
        url: &str,
        schema: Option<&str>,
        settings: PoolSettings,
        migrate: Migrate,
    ) -> StoreResult<Self> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|error| {
            StoreError::Unavailable(format!("the database URL is not valid: {error}"))
        })?;
        let target = describe(&config);
        let mut options = config.get_options().unwrap_or_default().to_owned();
        options.push_str(&format!(
            " -c statement_timeout={}",
            settings.statement_timeout.as_millis()
        ));
        if let Some(schema) = schema {
            check_schema_name(schema)?;
            options.push_str(&format!(" -c search_path={schema}"));
        }
        config.connect_timeout(settings.connect_timeout);
        config.application_name("cpis");
        // The looks' batched statements take arrays whose length a custom
        // plan would know, so PostgreSQL would plan them afresh at every
        // execution, which costs more than running them. They are planned
        // once, on connections of their own (one per task), as every plan
        // they could get is an index lookup per element anyway.
        let mut batch_config = config.clone();
        batch_config.options(format!("{options} -c plan_cache_mode=force_generic_plan").trim());
        config.options(options.trim());
        let pool = build_pool(config, settings.max_connections, &settings)?;
        let batch_pool = build_pool(batch_config, group::CONNECTIONS, &settings)?;
        let store = PgStore {
            look_reads: Group::start(ReadsForLook, batch_pool.clone(), &target, &settings),
            read_attendances: Group::start(ReadAttendances, batch_pool.clone(), &target, &settings),
            look_writes: Group::start(WriteLooks, batch_pool, &target, &settings),
            pool,
            target,
        };
        let mut client = store.client().await?;
        if let Some(schema) = schema {
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await
                .or_else(rows::ignore_concurrent_create)
                .db()?;
        }
        match migrate {
            Migrate::Apply => migrations::apply(&mut client).await?,
            Migrate::Refuse => migrations::check(&client).await?,
        }
        Ok(store)
    }

    /// Where this store points, without credentials: `host:port/database`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// How many requests have shared each batch so far: of a look's reads
    /// (plans and attendances), of attendance reads on their own (for
    /// callers other than a look), and of writes.
    pub fn shared(&self) -> [Shared; 3] {
        [
            self.look_reads.shared(),
            self.read_attendances.shared(),
            self.look_writes.shared(),
        ]
    }

    async fn client(&self) -> StoreResult<Object> {
        self.pool.get().await.map_err(|error| {
            StoreError::Unavailable(format!(
                "cannot reach PostgreSQL at {}: {error}",
                self.target
            ))
        })
    }
}

fn build_pool(
    config: tokio_postgres::Config,
    size: usize,
    settings: &PoolSettings,
) -> StoreResult<Pool> {
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(settings.wait_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|error| StoreError::Backend(Box::new(error)))
}

fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let database = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{database}")
}

fn check_schema_name(schema: &str) -> StoreResult<()> {
    let valid = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit();
    if valid {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "{schema:?} is not a plain schema name (lower-case letters, digits, underscores)"
        )))
    }
}

impl Store for PgStore {
    async fn check_ready(&self) -> StoreResult<()> {
        // Looks go through the batching tasks: a node whose tasks have all
        // stopped cannot serve one, whatever the database says.
        if self.look_reads.stopped() || self.look_writes.stopped() {
            return Err(StoreError::Unavailable(
                "the store's batching tasks have stopped".into(),
            ));
        }
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.db()?;
        Ok(())
    }

    async fn counts(&self) -> StoreResult<StoreCounts> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM local_authority), (SELECT count(*) FROM organisation),
                        (SELECT count(*) FROM plan), (SELECT count(*) FROM access_log),
                        (SELECT count(*) FROM outbox
                         WHERE push AND delivered_at IS NULL AND failed_at IS NULL)",
                &[],
            )
            .await
            .db()?;
        let count = |index: usize| -> u64 { u64::try_from(row.get::<_, i64>(index)).unwrap_or(0) };
        Ok(StoreCounts {
            local_authorities: count(0),
            organisations: count(1),
            plans: count(2),
            access_records: count(3),
            outbox_pending: count(4),
        })
    }

    async fn meta(&self, key: &str) -> StoreResult<Option<String>> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
            .await
            .db()?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn set_meta(&self, key: &str, value: &str) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[&key, &value],
            )
            .await
            .db()?;
        Ok(())
    }

    async fn put_local_authorities(&self, authorities: Vec<LocalAuthority>) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO local_authority (code, name, emergency_duty_number,
                     office_hours_number, repeat_organisations, repeat_days)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (code) DO UPDATE SET name = excluded.name,
                     emergency_duty_number = excluded.emergency_duty_number,
                     office_hours_number = excluded.office_hours_number,
                     repeat_organisations = excluded.repeat_organisations,
                     repeat_days = excluded.repeat_days",
            )
            .await
            .db()?;
        for la in &authorities {
            let rule = la.repeat_attendance;
            let (organisations, days) = (
                i32::try_from(rule.organisations).unwrap_or(i32::MAX),
                i32::try_from(rule.days).unwrap_or(i32::MAX),
            );
            tx.execute(
                &insert,
                &[
                    &la.code.as_str(),
                    &la.name,
                    &la.emergency_duty_number.as_str(),
                    &la.office_hours_number.as_str(),
                    &organisations,
                    &days,
                ],
            )
            .await
            .db()?;
        }
        tx.commit().await.db()
    }

    async fn local_authorities(&self) -> StoreResult<Vec<LocalAuthority>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT code, name, emergency_duty_number, office_hours_number,
                        repeat_organisations, repeat_days
                 FROM local_authority ORDER BY code",
                &[],
            )
            .await
            .db()?;
        rows.iter()
            .map(|row| rows::local_authority(row, 0))
            .collect()
    }

    async fn local_authority(&self, code: LaCode) -> StoreResult<Option<LocalAuthority>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT code, name, emergency_duty_number, office_hours_number,
                        repeat_organisations, repeat_days
                 FROM local_authority WHERE code = $1",
                &[&code.as_str()],
            )
            .await
            .db()?;
        row.map(|row| rows::local_authority(&row, 0)).transpose()
    }

    async fn put_organisations(&self, organisations: Vec<Organisation>) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let insert = tx
            .prepare_cached(
                "INSERT INTO organisation (code, name, setting_type) VALUES ($1, $2, $3)
                 ON CONFLICT (code) DO UPDATE SET name = excluded.name,
                     setting_type = excluded.setting_type",
            )
            .await
            .db()?;
        for organisation in &organisations {
            tx.execute(
                &insert,
                &[
                    &organisation.code.as_str(),
                    &organisation.name,
                    &organisation.setting_type.code(),
                ],
            )
            .await
            .db()?;
        }
        tx.commit().await.db()
    }

    async fn organisation(&self, code: OdsCode) -> StoreResult<Option<Organisation>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT code, name, setting_type FROM organisation WHERE code = $1",
                &[&code.as_str()],
            )
            .await
            .db()?;
        row.map(|row| rows::organisation(&row)).transpose()
    }

    async fn organisations(&self) -> StoreResult<Vec<Organisation>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT code, name, setting_type FROM organisation ORDER BY code",
                &[],
            )
            .await
            .db()?;
        rows.iter().map(rows::organisation).collect()
    }

    async fn plans_for_nhs_number(
        &self,
        nhs_number: NhsNumber,
    ) -> StoreResult<Vec<(Plan, LocalAuthority)>> {
        let read = (nhs_number, OffsetDateTime::UNIX_EPOCH, false);
        Ok(self.look_reads.call(read).await?.plans)
    }

    async fn reads_for_look(
        &self,
        nhs_number: NhsNumber,
        at: OffsetDateTime,
        attendances: bool,
    ) -> StoreResult<LookReads> {
        self.look_reads.call((nhs_number, at, attendances)).await
    }

    async fn plans_for_la(&self, la: LaCode, page: PlanPage) -> StoreResult<Vec<Plan>> {
        let client = self.client().await?;
        let limit = i64::try_from(page.limit).unwrap_or(i64::MAX);
        let rows = match page.after {
            None => {
                client
                    .query(
                        &format!(
                            "{} WHERE la_code = $1 ORDER BY nhs_number, plan_type, start_date LIMIT $2",
                            rows::SELECT_PLAN
                        ),
                        &[&la.as_str(), &limit],
                    )
                    .await
            }
            Some(after) => {
                client
                    .query(
                        &format!(
                            "{} WHERE la_code = $1 AND (nhs_number, plan_type, start_date) > ($2, $3, $4)
                             ORDER BY nhs_number, plan_type, start_date LIMIT $5",
                            rows::SELECT_PLAN
                        ),
                        &[
                            &la.as_str(),
                            &nhs(after.nhs_number),
                            &after.plan_type.code(),
                            &after.start_date,
                            &limit,
                        ],
                    )
                    .await
            }
        }
        .db()?;
        rows.iter().map(|row| rows::plan(row, 0)).collect()
    }

    async fn apply_plans(&self, batch: PlanBatch) -> StoreResult<AppliedPlans> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let applied = rows::apply_plans(&tx, &batch).await?;
        tx.commit().await.db()?;
        Ok(applied)
    }

    async fn record_access(
        &self,
        record: AccessRecord,
        outbox: Vec<OutboxItem>,
        repeat: Option<RepeatCheck>,
    ) -> StoreResult<Recorded> {
        // Judged from the attendances read with the plans, off the serial
        // write path; the window is still taken inside the transaction.
        let alerts = match repeat {
            Some(check) => cpis_store::alerts_before_write(self, &record, check).await?,
            None => Vec::new(),
        };
        // Only the log-overhead benchmark leaves the leaf out.
        let leaf = (!cfg!(feature = "bench-without-log")).then(|| log::access_leaf_hash(&record));
        self.look_writes
            .call(Look {
                record,
                leaf,
                outbox,
                alerts,
            })
            .await
    }

    async fn attendances(
        &self,
        nhs_number: NhsNumber,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> StoreResult<Vec<Attendance>> {
        self.read_attendances.call((nhs_number, since, until)).await
    }

    async fn recent_unscheduled_accesses(
        &self,
        nhs_number: NhsNumber,
        limit: usize,
    ) -> StoreResult<Vec<AccessRecord>> {
        let client = self.client().await?;
        let select = client
            .prepare_cached(&format!(
                "{} WHERE nhs_number = $1 AND unscheduled ORDER BY at DESC, id DESC LIMIT $2",
                rows::SELECT_ACCESS
            ))
            .await
            .db()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(&select, &[&nhs(nhs_number), &limit])
            .await
            .db()?;
        rows.iter().map(rows::access).collect()
    }

    async fn claim_outbox(&self, claim: OutboxClaim) -> StoreResult<Vec<OutboxItem>> {
        let client = self.client().await?;
        let now = micros(claim.now);
        let lease_until = micros(claim.now + claim.lease);
        let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
        // SKIP LOCKED: two nodes claiming at once take different items.
        let rows = client
            .query(
                "UPDATE outbox SET claimed_by = $1, lease_until = $2
                 WHERE id IN (
                     SELECT id FROM outbox
                     WHERE push AND delivered_at IS NULL AND failed_at IS NULL
                       AND available_at <= $3
                       AND (lease_until IS NULL OR lease_until <= $3)
                     ORDER BY id LIMIT $4
                     FOR UPDATE SKIP LOCKED)
                   AND (lease_until IS NULL OR lease_until <= $3)
                 RETURNING id, la_code, kind, payload, coalesce(retry_since, created_at), attempts",
                &[&claim.node, &lease_until, &now, &limit],
            )
            .await
            .db()?;
        let mut items = rows
            .iter()
            .map(rows::outbox)
            .collect::<StoreResult<Vec<_>>>()?;
        items.sort_by_key(|item| item.id);
        Ok(items)
    }

    async fn complete_outbox(
        &self,
        node: &str,
        ids: Vec<Uuid>,
        at: OffsetDateTime,
    ) -> StoreResult<u64> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE outbox SET delivered_at = $1, claimed_by = NULL, lease_until = NULL
                 WHERE id = ANY($2) AND claimed_by = $3 AND delivered_at IS NULL",
                &[&micros(at), &ids, &node],
            )
            .await
            .db()
    }

    async fn put_ephemeral(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> StoreResult<bool> {
        let client = self.client().await?;
        let changed = client
            .execute(
                "INSERT INTO ephemeral (namespace, key, value, expires_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value,
                     expires_at = excluded.expires_at
                 WHERE ephemeral.expires_at <= $5",
                &[&namespace, &key, &value, &micros(expires_at), &micros(now)],
            )
            .await
            .db()?;
        Ok(changed == 1)
    }

    async fn ephemeral(
        &self,
        namespace: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<String>> {
        let client = self.client().await?;
        let select = client
            .prepare_cached(
                "SELECT value FROM ephemeral WHERE namespace = $1 AND key = $2 AND expires_at > $3",
            )
            .await
            .db()?;
        let row = client
            .query_opt(&select, &[&namespace, &key, &micros(now)])
            .await
            .db()?;
        Ok(row.map(|row| row.get(0)))
    }

    async fn take_ephemeral(
        &self,
        namespace: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<String>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "DELETE FROM ephemeral WHERE namespace = $1 AND key = $2 RETURNING value, expires_at",
                &[&namespace, &key],
            )
            .await
            .db()?;
        Ok(row
            .filter(|row| row.get::<_, i64>(1) > micros(now))
            .map(|row| row.get(0)))
    }

    async fn purge_ephemeral(&self, now: OffsetDateTime) -> StoreResult<u64> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM ephemeral WHERE expires_at <= $1",
                &[&micros(now)],
            )
            .await
            .db()
    }

    async fn put_la_client(&self, la_client: LaClient) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO la_client (client_id, la_code, public_key, created_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (client_id) DO UPDATE SET la_code = excluded.la_code,
                     public_key = excluded.public_key, created_at = excluded.created_at",
                &[
                    &la_client.client_id,
                    &la_client.la.as_str(),
                    &la_client.public_key,
                    &micros(la_client.created_at),
                ],
            )
            .await
            .db()?;
        Ok(())
    }

    async fn la_client(&self, client_id: &str) -> StoreResult<Option<LaClient>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT client_id, la_code, public_key, created_at FROM la_client WHERE client_id = $1",
                &[&client_id],
            )
            .await
            .db()?;
        row.map(|row| rows::la_client(&row)).transpose()
    }

    async fn la_clients(&self) -> StoreResult<Vec<LaClient>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT client_id, la_code, public_key, created_at FROM la_client ORDER BY client_id",
                &[],
            )
            .await
            .db()?;
        rows.iter().map(rows::la_client).collect()
    }

    async fn record_upload(
        &self,
        upload: UploadRecord,
        batch: Option<PlanBatch>,
    ) -> StoreResult<UploadRecord> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let mut upload = upload;
        if let Some(batch) = &batch {
            upload.withdrawn = rows::apply_plans(&tx, batch).await?.withdrawn;
        }
        rows::insert_upload(&tx, &upload).await?;
        rows::insert_leaf(
            &tx,
            LogKind::Upload,
            upload.id,
            &log::upload_leaf_hash(&upload),
        )
        .await?;
        tx.commit().await.db()?;
        Ok(upload)
    }

    async fn upload(&self, la: LaCode, id: Uuid) -> StoreResult<Option<UploadRecord>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("{} WHERE la_code = $1 AND id = $2", rows::SELECT_UPLOAD),
                &[&la.as_str(), &id],
            )
            .await
            .db()?;
        row.map(|row| rows::upload(&row)).transpose()
    }

    async fn upload_by_key(&self, la: LaCode, key: &str) -> StoreResult<Option<UploadRecord>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!(
                    "{} WHERE la_code = $1 AND idempotency_key = $2",
                    rows::SELECT_UPLOAD
                ),
                &[&la.as_str(), &key],
            )
            .await
            .db()?;
        row.map(|row| rows::upload(&row)).transpose()
    }

    async fn uploads(&self, la: LaCode, limit: usize) -> StoreResult<Vec<UploadRecord>> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT id, la_code, received_at, mode, file_code, accepted, rejected, withdrawn,
                        idempotency_key, 'null'::jsonb
                 FROM upload WHERE la_code = $1 ORDER BY received_at DESC, id DESC LIMIT $2",
                &[&la.as_str(), &limit],
            )
            .await
            .db()?;
        rows.iter().map(rows::upload).collect()
    }

    async fn notifications(
        &self,
        la: LaCode,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, OutboxItem)>> {
        let mut client = self.client().await?;
        let unsequenced: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM outbox WHERE feed_seq IS NULL)",
                &[],
            )
            .await
            .db()?
            .get(0);
        if unsequenced {
            // One sequencer at a time numbers what has committed, so every
            // run's numbers are above the last run's and a reader only ever
            // sees a prefix of the feed.
            let tx = client.transaction().await.db()?;
            let last: i64 = tx
                .query_one(
                    "SELECT last FROM outbox_sequencer WHERE id = 1 FOR UPDATE",
                    &[],
                )
                .await
                .db()?
                .get(0);
            let numbered = tx
                .query(
                    "WITH waiting AS (
                         SELECT id, row_number() OVER (ORDER BY id) AS n
                         FROM outbox WHERE feed_seq IS NULL)
                     UPDATE outbox SET feed_seq = $1 + waiting.n
                     FROM waiting WHERE outbox.id = waiting.id
                     RETURNING waiting.n",
                    &[&last],
                )
                .await
                .db()?;
            let highest = numbered
                .iter()
                .map(|row| row.get::<_, i64>(0))
                .max()
                .unwrap_or(0);
            tx.execute(
                "UPDATE outbox_sequencer SET last = $1 WHERE id = 1",
                &[&(last + highest)],
            )
            .await
            .db()?;
            tx.commit().await.db()?;
        }
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT id, la_code, kind, payload, created_at, attempts, feed_seq FROM outbox
                 WHERE la_code = $1 AND feed_seq > $2 ORDER BY feed_seq LIMIT $3",
                &[&la.as_str(), &after, &limit],
            )
            .await
            .db()?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get(6).map_err(corrupt)?;
                Ok((u64::try_from(seq).unwrap_or(0), rows::outbox(row)?))
            })
            .collect()
    }

    async fn put_webhook(&self, webhook: Webhook) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO la_webhook (la_code, url, secret, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (la_code) DO UPDATE SET url = excluded.url,
                     secret = excluded.secret, created_at = excluded.created_at",
                &[
                    &webhook.la.as_str(),
                    &webhook.url,
                    &webhook.secret,
                    &micros(webhook.created_at),
                ],
            )
            .await
            .db()?;
        Ok(())
    }

    async fn webhook(&self, la: LaCode) -> StoreResult<Option<Webhook>> {
        let client = self.client().await?;
        client
            .query_opt(
                "SELECT la_code, url, secret, created_at FROM la_webhook WHERE la_code = $1",
                &[&la.as_str()],
            )
            .await
            .db()?
            .as_ref()
            .map(rows::webhook)
            .transpose()
    }

    async fn delete_webhook(&self, la: LaCode) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        let removed = tx
            .execute("DELETE FROM la_webhook WHERE la_code = $1", &[&la.as_str()])
            .await
            .db()?;
        tx.execute(
            "UPDATE outbox SET push = false WHERE la_code = $1 AND push AND delivered_at IS NULL",
            &[&la.as_str()],
        )
        .await
        .db()?;
        tx.commit().await.db()?;
        Ok(removed > 0)
    }

    async fn park_outbox(
        &self,
        node: &str,
        id: Uuid,
        at: OffsetDateTime,
        error: &str,
    ) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE outbox SET attempts = attempts + 1, failed_at = $1, last_error = $2,
                     claimed_by = NULL, lease_until = NULL
                 WHERE id = $3 AND claimed_by = $4 AND delivered_at IS NULL",
                &[&micros(at), &error, &id, &node],
            )
            .await
            .db()?;
        Ok(())
    }

    async fn latest_notifications(
        &self,
        la: LaCode,
        kind: Option<OutboxKind>,
        limit: usize,
    ) -> StoreResult<Vec<OutboxItem>> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT id, la_code, kind, payload, created_at, attempts FROM outbox
                 WHERE la_code = $1 AND ($2::text IS NULL OR kind = $2)
                 ORDER BY feed_seq DESC NULLS FIRST, id DESC LIMIT $3",
                &[&la.as_str(), &kind.map(OutboxKind::code), &limit],
            )
            .await
            .db()?;
        rows.iter().map(rows::outbox).collect()
    }

    async fn failed_outbox(&self, la: LaCode, limit: usize) -> StoreResult<Vec<FailedItem>> {
        let client = self.client().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = client
            .query(
                "SELECT id, la_code, kind, payload, created_at, attempts, failed_at, last_error
                 FROM outbox WHERE la_code = $1 AND failed_at IS NOT NULL
                 ORDER BY failed_at DESC, id DESC LIMIT $2",
                &[&la.as_str(), &limit],
            )
            .await
            .db()?;
        rows.iter()
            .map(|row| {
                Ok(FailedItem {
                    item: rows::outbox(row)?,
                    failed_at: from_micros(row.try_get(6).map_err(corrupt)?)?,
                    last_error: row.try_get(7).map_err(corrupt)?,
                })
            })
            .collect()
    }

    async fn replay_outbox(
        &self,
        la: LaCode,
        ids: Option<Vec<Uuid>>,
        at: OffsetDateTime,
    ) -> StoreResult<u64> {
        let client = self.client().await?;
        const REPLAY: &str = "UPDATE outbox SET failed_at = NULL, attempts = 0, available_at = $2,
                 retry_since = $2,
                 push = EXISTS (SELECT 1 FROM la_webhook WHERE la_code = $1)
             WHERE la_code = $1 AND failed_at IS NOT NULL";
        match ids {
            None => client.execute(REPLAY, &[&la.as_str(), &micros(at)]).await,
            Some(ids) => {
                client
                    .execute(
                        &format!("{REPLAY} AND id = ANY($3)"),
                        &[&la.as_str(), &micros(at), &ids],
                    )
                    .await
            }
        }
        .db()
    }

    async fn delivery_counts(&self, la: LaCode) -> StoreResult<DeliveryCounts> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT
                     count(*) FILTER (WHERE push AND delivered_at IS NULL AND failed_at IS NULL),
                     count(*) FILTER (WHERE delivered_at IS NOT NULL),
                     count(*) FILTER (WHERE failed_at IS NOT NULL),
                     (SELECT last_error FROM outbox
                      WHERE la_code = $1 AND delivered_at IS NULL AND last_error IS NOT NULL
                      ORDER BY available_at DESC LIMIT 1)
                 FROM outbox WHERE la_code = $1",
                &[&la.as_str()],
            )
            .await
            .db()?;
        let count = |index: usize| -> StoreResult<u64> {
            Ok(u64::try_from(row.try_get::<_, i64>(index).map_err(corrupt)?).unwrap_or(0))
        };
        Ok(DeliveryCounts {
            pending: count(0)?,
            delivered: count(1)?,
            failed: count(2)?,
            last_error: row.try_get(3).map_err(corrupt)?,
        })
    }

    async fn purge_outbox(&self, before: OffsetDateTime) -> StoreResult<u64> {
        // Two deletes that need not be atomic. An alert's window (up to 365
        // days) may outlast the feed's retention.
        let client = self.client().await?;
        // Found by id, which carries the item's time (`OutboxItem::id`), so
        // that no index by time costs every item an entry (migration 15).
        let removed = client
            .execute(
                "DELETE FROM outbox WHERE id < $1",
                &[&log::first_id_at(before)],
            )
            .await
            .db()?;
        client
            .execute(
                "DELETE FROM repeat_alert WHERE alerted_at < $1",
                &[&micros(before - time::Duration::days(366))],
            )
            .await
            .db()?;
        Ok(removed)
    }

    async fn record_report(&self, report: ReportRecord) -> StoreResult<()> {
        let leaf = merkle::leaf_hash(&log::report_leaf(&report));
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        tx.execute(
            "INSERT INTO report_log (id, at, user_id, user_name, role_code, organisation_code,
                 report, subject, from_date, to_date, request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &report.id,
                &micros(report.at),
                &report.user_id,
                &report.user_name,
                &report.role_code,
                &report.organisation_code,
                &report.report,
                &report.subject,
                &report.from,
                &report.to,
                &report.request_id,
            ],
        )
        .await
        .db()?;
        rows::insert_leaf(&tx, LogKind::Report, report.id, &leaf).await?;
        tx.commit().await.db()
    }

    async fn accesses(&self, query: AccessQuery) -> StoreResult<Vec<AccessRecord>> {
        let client = self.client().await?;
        match &query.filter {
            AccessFilter::NhsNumber(number) => {
                let (after_at, after_id) = report_cursor(&query);
                let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
                let (from, to) = (micros(query.from), micros(query.to));
                let rows = client
                    .query(
                        &format!(
                            "{} WHERE nhs_number = $1 AND at >= $2 AND at < $3
                                 AND (at, id) > ($4, $5) ORDER BY at, id LIMIT $6",
                            rows::SELECT_ACCESS
                        ),
                        &[&nhs(*number), &from, &to, &after_at, &after_id, &limit],
                    )
                    .await
                    .db()?;
                rows.iter().map(rows::access).collect()
            }
            AccessFilter::User(user) => {
                accesses_by_bucket(&client, "access_user_bucket", "user_id", user, &query).await
            }
            AccessFilter::Organisation(code) => {
                let (table, column) = ("access_organisation_bucket", "organisation_code");
                accesses_by_bucket(&client, table, column, code.as_str(), &query).await
            }
        }
    }

    async fn apply_retention(&self, retention: RetentionRecord) -> StoreResult<RetentionRecord> {
        let mut retention = retention;
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        retention.removed_access = tx
            .execute(
                "DELETE FROM access_log WHERE id < $1",
                &[&log::first_id_at(retention.access_before)],
            )
            .await
            .db()?;
        if retention.removed_access > 0 {
            // The report buckets before every look left: each has an id of
            // `access_before`'s millisecond or later, and a record's time
            // is never before its id's. Looks committed meanwhile are new.
            let before = report_bucket(micros(
                retention.access_before - time::Duration::milliseconds(1),
            ));
            for table in ["access_user_bucket", "access_organisation_bucket"] {
                tx.execute(
                    &format!("DELETE FROM {table} WHERE bucket < $1"),
                    &[&before],
                )
                .await
                .db()?;
            }
        }
        retention.removed_plans = tx
            .execute(
                "DELETE FROM plan WHERE delete_date < $1 OR end_date < $2
                     OR (plan_type = 'UCPP' AND expected_delivery_date < $2)",
                &[
                    &retention.plans_withdrawn_before,
                    &retention.plans_ended_before,
                ],
            )
            .await
            .db()?;
        if retention.removed_access + retention.removed_plans > 0 {
            tx.execute(
                "INSERT INTO retention_log (id, at, access_before, plans_withdrawn_before,
                     plans_ended_before, removed_access, removed_plans)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &retention.id,
                    &micros(retention.at),
                    &micros(retention.access_before),
                    &retention.plans_withdrawn_before,
                    &retention.plans_ended_before,
                    &i64::try_from(retention.removed_access).unwrap_or(i64::MAX),
                    &i64::try_from(retention.removed_plans).unwrap_or(i64::MAX),
                ],
            )
            .await
            .db()?;
            let leaf = merkle::leaf_hash(&log::retention_leaf(&retention));
            rows::insert_leaf(&tx, LogKind::Retention, retention.id, &leaf).await?;
        }
        tx.commit().await.db()?;
        Ok(retention)
    }

    async fn retention_records(&self) -> StoreResult<Vec<RetentionRecord>> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("{} ORDER BY at", rows::SELECT_RETENTION), &[])
            .await
            .db()?;
        rows.iter().map(rows::retention).collect()
    }

    async fn sequence_log(&self) -> StoreResult<u64> {
        let mut client = self.client().await?;
        // Looks place their own leaves as they write them; only uploads' and
        // retention's wait here. With none waiting, the committed size is
        // the answer: every leaf below it committed with it. Taking the
        // lock then would hold up every batch of looks for a commit of its
        // own, once a second.
        let size = client
            .query_one(
                "SELECT next, EXISTS (SELECT 1 FROM log_leaf WHERE idx IS NULL)
                 FROM log_sequencer WHERE id = 1",
                &[],
            )
            .await
            .db()?;
        if !size.try_get::<_, bool>(1).map_err(corrupt)? {
            let next: i64 = size.try_get(0).map_err(corrupt)?;
            return Ok(u64::try_from(next).unwrap_or(0));
        }
        // One sequencer at a time places what has committed, so places
        // follow commit order and the tree only ever grows at its end.
        let tx = client.transaction().await.db()?;
        let next: i64 = tx
            .query_one(
                "SELECT next FROM log_sequencer WHERE id = 1 FOR UPDATE",
                &[],
            )
            .await
            .db()?
            .get(0);
        let placed = tx
            .query(
                "WITH waiting AS (
                     SELECT record_id, row_number() OVER (ORDER BY record_id) - 1 AS n
                     FROM log_leaf WHERE idx IS NULL)
                 UPDATE log_leaf SET idx = $1 + waiting.n
                 FROM waiting WHERE log_leaf.record_id = waiting.record_id
                 RETURNING waiting.n",
                &[&next],
            )
            .await
            .db()?;
        let next = next + placed.len() as i64;
        tx.execute("UPDATE log_sequencer SET next = $1 WHERE id = 1", &[&next])
            .await
            .db()?;
        tx.commit().await.db()?;
        Ok(u64::try_from(next).unwrap_or(0))
    }

    async fn log_leaf_hashes(&self, from: u64, to: u64) -> StoreResult<Vec<(u64, Hash)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT idx, hash FROM log_leaf WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                &[
                    &i64::try_from(from).unwrap_or(i64::MAX),
                    &i64::try_from(to).unwrap_or(i64::MAX),
                ],
            )
            .await
            .db()?;
        rows.iter()
            .map(|row| {
                let index: i64 = row.try_get(0).map_err(corrupt)?;
                let hash: &[u8] = row.try_get(1).map_err(corrupt)?;
                Ok((u64::try_from(index).unwrap_or(0), rows::hash_from(hash)?))
            })
            .collect()
    }

    async fn log_nodes(&self, wanted: Vec<(u32, u64)>) -> StoreResult<Vec<Option<Hash>>> {
        let client = self.client().await?;
        let levels: Vec<i32> = wanted
            .iter()
            .map(|(level, _)| i32::try_from(*level).unwrap_or(i32::MAX))
            .collect();
        let indexes: Vec<i64> = wanted
            .iter()
            .map(|(_, index)| i64::try_from(*index).unwrap_or(i64::MAX))
            .collect();
        let rows = client
            .query(
                "SELECT w.n, node.hash
                 FROM unnest($1::int[], $2::bigint[]) WITH ORDINALITY AS w (level, idx, n)
                 LEFT JOIN log_node node ON node.level = w.level AND node.idx = w.idx
                 ORDER BY w.n",
                &[&levels, &indexes],
            )
            .await
            .db()?;
        rows.iter()
            .map(|row| {
                let hash: Option<&[u8]> = row.try_get(1).map_err(corrupt)?;
                hash.map(rows::hash_from).transpose()
            })
            .collect()
    }

    async fn put_checkpoint(
        &self,
        nodes: Vec<(u32, u64, Hash)>,
        checkpoint: Checkpoint,
    ) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.db()?;
        for chunk in nodes.chunks(5_000) {
            let levels: Vec<i32> = chunk
                .iter()
                .map(|(level, _, _)| i32::try_from(*level).unwrap_or(i32::MAX))
                .collect();
            let indexes: Vec<i64> = chunk
                .iter()
                .map(|(_, index, _)| i64::try_from(*index).unwrap_or(i64::MAX))
                .collect();
            let hashes: Vec<&[u8]> = chunk.iter().map(|(_, _, hash)| &hash[..]).collect();
            tx.execute(
                "INSERT INTO log_node (level, idx, hash)
                 SELECT * FROM unnest($1::int[], $2::bigint[], $3::bytea[])
                 ON CONFLICT DO NOTHING",
                &[&levels, &indexes, &hashes],
            )
            .await
            .db()?;
        }
        tx.execute(
            "INSERT INTO log_checkpoint (size, root, note, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[
                &i64::try_from(checkpoint.size).unwrap_or(i64::MAX),
                &&checkpoint.root[..],
                &checkpoint.note,
                &micros(checkpoint.created_at),
            ],
        )
        .await
        .db()?;
        tx.commit().await.db()
    }

    async fn latest_checkpoint(&self) -> StoreResult<Option<Checkpoint>> {
        let client = self.client().await?;
        client
            .query_opt(
                "SELECT size, root, note, created_at FROM log_checkpoint ORDER BY size DESC LIMIT 1",
                &[],
            )
            .await
            .db()?
            .as_ref()
            .map(rows::checkpoint)
            .transpose()
    }

    async fn checkpoints(&self, after_size: u64, limit: usize) -> StoreResult<Vec<Checkpoint>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT size, root, note, created_at FROM log_checkpoint
                 WHERE size > $1 ORDER BY size LIMIT $2",
                &[
                    &i64::try_from(after_size).unwrap_or(i64::MAX),
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await
            .db()?;
        rows.iter().map(rows::checkpoint).collect()
    }

    async fn log_entries(&self, from: u64, limit: usize) -> StoreResult<Vec<LogEntry>> {
        let client = self.client().await?;
        // Access records, nearly every leaf, come in the same query.
        let leaves = client
            .query(
                "SELECT l.idx, l.kind, l.record_id, l.hash, a.id, a.at, a.nhs_number,
                     a.user_id, a.user_name, a.role_code, a.role_name, a.activity_code,
                     a.organisation_code, a.organisation_name, a.setting_type,
                     a.unscheduled, a.returned, a.request_id
                 FROM log_leaf l
                 LEFT JOIN access_log a ON l.kind = 'access' AND a.id = l.record_id
                 WHERE l.idx >= $1 ORDER BY l.idx LIMIT $2",
                &[
                    &i64::try_from(from).unwrap_or(i64::MAX),
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await
            .db()?;
        let select_upload = client
            .prepare_cached(&format!("{} WHERE id = $1", rows::SELECT_UPLOAD))
            .await
            .db()?;
        let select_report = client
            .prepare_cached(&format!("{} WHERE id = $1", rows::SELECT_REPORT))
            .await
            .db()?;
        let select_retention = client
            .prepare_cached(&format!("{} WHERE id = $1", rows::SELECT_RETENTION))
            .await
            .db()?;
        let mut entries = Vec::with_capacity(leaves.len());
        for leaf in &leaves {
            let index: i64 = leaf.try_get(0).map_err(corrupt)?;
            let kind: &str = leaf.try_get(1).map_err(corrupt)?;
            let record_id: Uuid = leaf.try_get(2).map_err(corrupt)?;
            let hash: &[u8] = leaf.try_get(3).map_err(corrupt)?;
            let kind = LogKind::parse(kind)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown log kind {kind}")))?;
            let record = match kind {
                LogKind::Access => match leaf.try_get::<_, Option<Uuid>>(4).map_err(corrupt)? {
                    Some(_) => Some(LoggedRecord::Access(rows::access_at(leaf, 4)?)),
                    None => None,
                },
                LogKind::Upload => client
                    .query_opt(&select_upload, &[&record_id])
                    .await
                    .db()?
                    .as_ref()
                    .map(rows::upload)
                    .transpose()?
                    .map(LoggedRecord::Upload),
                LogKind::Report => client
                    .query_opt(&select_report, &[&record_id])
                    .await
                    .db()?
                    .as_ref()
                    .map(rows::report)
                    .transpose()?
                    .map(LoggedRecord::Report),
                LogKind::Retention => client
                    .query_opt(&select_retention, &[&record_id])
                    .await
                    .db()?
                    .as_ref()
                    .map(rows::retention)
                    .transpose()?
                    .map(LoggedRecord::Retention),
            };
            entries.push(LogEntry {
                leaf: LogLeaf {
                    index: u64::try_from(index).unwrap_or(0),
                    kind,
                    record_id,
                    hash: rows::hash_from(hash)?,
                },
                record: record.unwrap_or(LoggedRecord::Missing),
            });
        }
        Ok(entries)
    }

    async fn retry_outbox(
        &self,
        node: &str,
        id: Uuid,
        retry_at: OffsetDateTime,
        error: &str,
    ) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute(
                "UPDATE outbox SET attempts = attempts + 1, available_at = $1, last_error = $2,
                     claimed_by = NULL, lease_until = NULL
                 WHERE id = $3 AND claimed_by = $4 AND delivered_at IS NULL",
                &[&micros(retry_at), &error, &id, &node],
            )
            .await
            .db()?;
        Ok(())
    }
}

/// How many of a subject's buckets a report reads at a time.
const BUCKETS_AT_A_TIME: usize = 64;

/// One page of a report by user or organisation (`column` of both
/// `access_log` and the bucket `table`): the subject's buckets in the
/// query's range, in order, and in each the subject's looks in `(at, id)`
/// order. A bucket's looks are found through `access_log_id` by the range
/// of ids their time spans (migration 18).
async fn accesses_by_bucket(
    client: &Object,
    table: &str,
    column: &str,
    subject: &str,
    query: &AccessQuery,
) -> StoreResult<Vec<AccessRecord>> {
    let mut page = Vec::new();
    let Some(walk) = BucketWalk::of(query) else {
        return Ok(page);
    };
    let (after_at, after_id) = report_cursor(query);
    // The subject's buckets a chunk at a time, as the page needs them: a
    // busy organisation has thousands a day, and a report's range has no
    // limit.
    let buckets = client
        .prepare_cached(&format!(
            "SELECT bucket FROM {table} WHERE {column} = $1 AND bucket >= $2 AND bucket <= $3
             ORDER BY bucket LIMIT {BUCKETS_AT_A_TIME}"
        ))
        .await
        .db()?;
    let looks = client
        .prepare_cached(&format!(
            "{} WHERE id >= $1 AND id < $2 AND at >= $3 AND at < $4 AND {column} = $5
                 AND (at, id) > ($6, $7)
             ORDER BY at, id LIMIT $8",
            rows::SELECT_ACCESS
        ))
        .await
        .db()?;
    let mut next = walk.first;
    loop {
        let chunk = client
            .query(&buckets, &[&subject, &next, &walk.last])
            .await
            .db()?;
        for row in &chunk {
            let bucket: i64 = row.try_get(0).map_err(corrupt)?;
            next = bucket.saturating_add(1);
            let (begins, ends) = walk.range(bucket);
            // A look's id is of its time's millisecond or, for the first
            // days' records, up to ID_TIME_SLACK before it.
            let lowest = log::first_id_at(from_micros(begins)? - log::ID_TIME_SLACK);
            let beyond = log::first_id_at(from_micros(ends)? + time::Duration::milliseconds(1));
            let wanted = i64::try_from(query.limit - page.len()).unwrap_or(i64::MAX);
            let found = client
                .query(
                    &looks,
                    &[
                        &lowest, &beyond, &begins, &ends, &subject, &after_at, &after_id, &wanted,
                    ],
                )
                .await
                .db()?;
            for look in &found {
                page.push(rows::access(look)?);
            }
            if page.len() >= query.limit {
                return Ok(page);
            }
        }
        if chunk.len() < BUCKETS_AT_A_TIME {
            break;
        }
    }
    Ok(page)
}
