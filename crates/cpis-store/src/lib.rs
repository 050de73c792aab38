//! The storage boundary: the [`Store`] trait that the use cases in `cpis-core`
//! are written against, the error every backend reports, and the
//! [`conformance`] suite that every backend runs to prove it behaves the same.
//!
//! Nothing here names SQL; dialects live in the backend crates.

pub mod conformance;
pub mod encoding;
pub mod log;
pub mod merkle;
mod plans;

pub use plans::{Chunks, PlanSpool, PlanSpoolWriter, Plans};

use std::future::Future;

use cpis_domain::{
    AccessRecord, Attendance, LaCode, LocalAuthority, NhsNumber, OdsCode, Organisation, Plan,
    PlanKey, RepeatRule, attend, repeat_attendance_of,
};
use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime};
use uuid::Uuid;

/// What can go wrong in a store, sorted by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or refused the work for now: the caller
    /// answers 503 and the client may retry. Nothing was written.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A row refers to something that does not exist (an unknown local
    /// authority, say). Nothing was written.
    #[error("{0}")]
    Conflict(String),
    /// A snapshot upload would withdraw more plans than its guard allows.
    /// Nothing was written.
    #[error(
        "the snapshot would withdraw {would_withdraw} of the {visible} plans on record, more than the {max_percent}% allowed"
    )]
    SnapshotGuard {
        would_withdraw: u64,
        visible: u64,
        max_percent: u32,
    },
    /// Stored data does not parse back into domain types: a bug or tampering.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Anything else the backend reports.
    #[error("database error: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Fails unless `database`, at schema version `current`, is at `newest`,
/// the version this cpis's migrations bring a database to: for a store
/// opened only to read, which migrates nothing and could misread another
/// version.
pub fn refuse_other_schema(database: &str, current: i64, newest: i64) -> StoreResult<()> {
    if current == newest {
        return Ok(());
    }
    let next_step = if current < newest {
        "start `cpis serve` of this version once to bring it up to date"
    } else {
        "use a newer cpis"
    };
    Err(StoreError::Conflict(format!(
        "{database} is at schema version {current}, and this cpis reads version {newest}: {next_step}"
    )))
}

/// One batch of plans from one local authority, applied all or nothing.
#[derive(Debug)]
pub struct PlanBatch {
    pub la: LaCode,
    /// Marks every plan the batch touches; a snapshot withdraws the LA's other plans.
    pub batch_id: Uuid,
    /// Inserted, or updated where a plan with the same [`PlanKey`] exists.
    /// Every plan must belong to `la`.
    pub plans: Plans,
    /// Present for a snapshot: the LA's plans absent from `plans` are withdrawn.
    pub snapshot: Option<Snapshot>,
    pub at: OffsetDateTime,
}

impl PlanBatch {
    /// Refuses a batch carrying another LA's plan: an LA sends its own only.
    pub fn check_one_la(&self) -> StoreResult<()> {
        match self.plans.first_foreign(self.la) {
            Some(foreign) => Err(StoreError::Conflict(format!(
                "a plan of {foreign} cannot be sent by {}",
                self.la
            ))),
            None => Ok(()),
        }
    }
}

/// How a snapshot withdraws the plans it does not mention.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    /// The delete date given to withdrawn plans (the UK date of the upload).
    pub withdraw_on: Date,
    /// Refuse the whole batch when it would withdraw more than this share of
    /// the LA's plans that are not already withdrawn. `None` forces it.
    pub max_withdraw_percent: Option<u32>,
}

/// What applying a [`PlanBatch`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AppliedPlans {
    pub inserted: u64,
    pub updated: u64,
    pub withdrawn: u64,
}

/// One page of an LA's plans, in [`PlanKey`] order after `after`.
#[derive(Debug, Clone, Copy)]
pub struct PlanPage {
    pub after: Option<PlanKey>,
    pub limit: usize,
}

/// The kinds of message the outbox carries to local authorities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxKind {
    Access,
    RepeatAttendance,
}

impl OutboxKind {
    pub fn code(self) -> &'static str {
        match self {
            OutboxKind::Access => "access",
            OutboxKind::RepeatAttendance => "repeat_attendance",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        [OutboxKind::Access, OutboxKind::RepeatAttendance]
            .into_iter()
            .find(|kind| kind.code() == code)
    }
}

/// A message to one local authority, written in the same transaction as the
/// fact that caused it and delivered later by a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// A UUIDv7 made from the item's creation time as it is written
    /// ([`log::id_at`]; items written before schema version 15 have ids
    /// from the clock a moment later): stable across retries, so receivers
    /// can drop duplicates, and both stores find items past the feed's
    /// retention by it. (A replayed item is read back with the time
    /// of its replay as `created_at`; its id keeps the first.)
    pub id: Uuid,
    pub la: LaCode,
    pub kind: OutboxKind,
    pub payload: Payload,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Delivery attempts so far.
    pub attempts: u32,
}

/// An outbox item's JSON, kept as text: it is written as the caller made
/// it and sent to the LA as read, so nothing on the way parses it again.
/// A look made its item as a tree of `serde_json` maps and wrote that out
/// as text, which was about 7% of the request-handling threads' time in a
/// profile of the query benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Payload(Box<serde_json::value::RawValue>);

impl Payload {
    /// `value` as JSON.
    pub fn of(value: &impl Serialize) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Payload)
    }

    /// Text read back from a store, checked to be JSON.
    pub fn from_json(text: String) -> Result<Self, serde_json::Error> {
        serde_json::value::RawValue::from_string(text).map(Payload)
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    pub fn raw(&self) -> &serde_json::value::RawValue {
        &self.0
    }

    /// The JSON as a tree, to look inside it.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

/// Equal when the JSON is, however it is spaced or its keys ordered:
/// PostgreSQL's `jsonb` gives back neither as written.
impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str() || self.to_value() == other.to_value()
    }
}

impl From<Box<serde_json::value::RawValue>> for Payload {
    fn from(raw: Box<serde_json::value::RawValue>) -> Self {
        Payload(raw)
    }
}

impl From<serde_json::Value> for Payload {
    fn from(value: serde_json::Value) -> Self {
        // Writing a `Value` out cannot fail: its keys are strings.
        Payload::of(&value)
            .unwrap_or_else(|_| Payload(serde_json::value::RawValue::NULL.to_owned()))
    }
}

/// What [`Store::reads_for_look`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookReads {
    /// Every plan held for the child, each with its LA.
    pub plans: Vec<(Plan, LocalAuthority)>,
    /// The child's attendances in each distinct window of those LAs; empty
    /// when they were not asked for.
    pub windows: Vec<(Duration, Vec<Attendance>)>,
}

/// The distinct repeat-attendance windows of the LAs of `plans`, in the
/// order their plans come: the windows a look's attendances are read in.
pub fn windows_of(plans: &[(Plan, LocalAuthority)]) -> Vec<Duration> {
    let mut windows: Vec<Duration> = Vec::new();
    for (_, la) in plans {
        let window = la.repeat_attendance.window();
        if !windows.contains(&window) {
            windows.push(window);
        }
    }
    windows
}

/// What recording a look wrote besides its record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// The repeat-attendance alerts taken.
    pub alerts: u64,
    /// Whether any item written is to be pushed to a webhook: only then has
    /// the delivery worker something new to claim.
    pub pushed: bool,
}

/// A repeat-attendance alert: its item is written only when the LA has had
/// no alert about this child since `not_since` (once per window), decided
/// inside the transaction so that two nodes cannot both send one.
#[derive(Debug, Clone, PartialEq)]
pub struct RepeatAlert {
    pub item: OutboxItem,
    pub nhs_number: NhsNumber,
    pub not_since: OffsetDateTime,
}

impl RepeatAlert {
    /// The alert `la` is owed when the organisations `seen` in its rule's
    /// window (the look `record` counted in) meet the rule; `None` otherwise.
    pub fn judged(
        la: LaCode,
        rule: RepeatRule,
        record: &AccessRecord,
        seen: Vec<Attendance>,
        wording: AlertWording,
    ) -> Option<RepeatAlert> {
        let attendances = repeat_attendance_of(seen, rule)?;
        Some(RepeatAlert {
            item: wording(la, record, rule, &attendances),
            nhs_number: record.nhs_number,
            not_since: record.at - rule.window(),
        })
    }
}

/// Words an LA's repeat-attendance alert: the LA, the look that tipped it,
/// its rule, and the organisations seen. The words are the caller's; the
/// store decides, in the look's transaction, whether one is owed.
pub type AlertWording = fn(LaCode, &AccessRecord, RepeatRule, &[Attendance]) -> OutboxItem;

/// The repeat-attendance check an unscheduled look asks its store to make
/// as it records the look ([`Store::record_access`]).
#[derive(Debug, Clone)]
pub struct RepeatCheck {
    /// The LAs owning the child's visible plans, each with its rule.
    pub owners: Vec<(LaCode, RepeatRule)>,
    /// The child's attendances in each window, read with the plans and not
    /// counting this look. Empty for a store that counts them in the write
    /// ([`Store::COUNTS_ATTENDANCES_IN_WRITE`]); a window missing here is
    /// read by [`alerts_before_write`].
    pub read: Vec<(Duration, Vec<Attendance>)>,
    pub wording: AlertWording,
}

/// The alerts `check` owes for `record`, judged from attendances read
/// before the write: those in `check.read`, with the look itself counted
/// in, and any other window read now. What a store that does not count
/// attendances in the write calls before writing; looks committing at the
/// same moment are not seen, so two simultaneous looks that together reach
/// the count alert at the next look rather than at once.
pub async fn alerts_before_write<S: Store + ?Sized>(
    store: &S,
    record: &AccessRecord,
    check: RepeatCheck,
) -> StoreResult<Vec<RepeatAlert>> {
    // Owners nearly always share a rule: one read for each window.
    let mut read: Vec<(Duration, Vec<Attendance>)> = check
        .read
        .into_iter()
        .map(|(window, mut seen)| {
            attend(&mut seen, record);
            (window, seen)
        })
        .collect();
    let mut alerts = Vec::new();
    for (la, rule) in check.owners {
        let window = rule.window();
        let seen = match read.iter().find(|(known, _)| *known == window) {
            Some((_, seen)) => seen.clone(),
            None => {
                let mut seen = store
                    .attendances(record.nhs_number, record.at - window, record.at)
                    .await?;
                attend(&mut seen, record);
                read.push((window, seen.clone()));
                seen
            }
        };
        alerts.extend(RepeatAlert::judged(la, rule, record, seen, check.wording));
    }
    Ok(alerts)
}

/// Where an LA's notifications are pushed, and the secret they are signed
/// with (Standard Webhooks' `whsec_` form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub la: LaCode,
    pub url: String,
    pub secret: String,
    pub created_at: OffsetDateTime,
}

/// An item whose deliveries ran out of retries: parked until the LA replays it.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedItem {
    pub item: OutboxItem,
    pub failed_at: OffsetDateTime,
    pub last_error: Option<String>,
}

/// Whose accesses a report lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessFilter {
    NhsNumber(NhsNumber),
    User(String),
    Organisation(OdsCode),
}

/// One page of a report: accesses in `[from, to)`, after `after` in
/// `(at, id)` order.
#[derive(Debug, Clone)]
pub struct AccessQuery {
    pub filter: AccessFilter,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    pub after: Option<(OffsetDateTime, Uuid)>,
    pub limit: usize,
}

/// How an LA's pushed notifications stand.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct DeliveryCounts {
    /// Waiting for delivery or a retry.
    pub pending: u64,
    pub delivered: u64,
    /// Parked after their retries ran out.
    pub failed: u64,
    /// The most recent failed attempt's error, if any item is pending or failed.
    pub last_error: Option<String>,
}

/// A worker's request for outbox items to deliver.
#[derive(Debug, Clone)]
pub struct OutboxClaim {
    /// Who claims: one name per running node.
    pub node: String,
    pub now: OffsetDateTime,
    /// How long the claim holds; after that another node may take the item over.
    pub lease: Duration,
    pub limit: usize,
}

/// Counts for status pages and readiness; never anything about one child.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoreCounts {
    pub local_authorities: u64,
    pub organisations: u64,
    pub plans: u64,
    pub access_records: u64,
    pub outbox_pending: u64,
}

/// An LA system's registered credentials: the public key its client
/// assertions are signed with. Only public keys are kept, so nothing here is
/// a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaClient {
    pub client_id: String,
    pub la: LaCode,
    /// The public key as a JSON Web Key.
    pub public_key: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// An upload from a local authority and its acknowledgement, as kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UploadRecord {
    pub id: Uuid,
    pub la: LaCode,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// `changes` or `snapshot`.
    pub mode: String,
    /// `CPF01` to `CPF04`.
    pub file_code: String,
    pub accepted: u64,
    pub rejected: u64,
    /// Plans a snapshot withdrew; filled in by the store when it applies the batch.
    pub withdrawn: u64,
    pub idempotency_key: Option<String>,
    /// The per-record outcomes, as the acknowledgement lists them.
    pub records: serde_json::Value,
}

/// Everything the use cases need from storage.
///
/// Every method is one transaction: it is applied whole or not at all. A
/// method that returns `Ok` after writing has made the write durable.
pub trait Store: Send + Sync + 'static {
    /// Whether [`Store::record_access`] counts the child's attendances
    /// itself, inside the write, where they include the looks committed
    /// with this one. If not, the caller reads them with the plans
    /// ([`Store::reads_for_look`]) and passes them in [`RepeatCheck::read`].
    const COUNTS_ATTENDANCES_IN_WRITE: bool = false;

    /// `Ok` when the store can serve reads and writes now.
    fn check_ready(&self) -> impl Future<Output = StoreResult<()>> + Send;

    fn counts(&self) -> impl Future<Output = StoreResult<StoreCounts>> + Send;

    /// A small key-value table for facts about the store itself.
    fn meta(&self, key: &str) -> impl Future<Output = StoreResult<Option<String>>> + Send;
    fn set_meta(&self, key: &str, value: &str) -> impl Future<Output = StoreResult<()>> + Send;

    /// Inserts or replaces local authorities by code.
    fn put_local_authorities(
        &self,
        authorities: Vec<LocalAuthority>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// All local authorities, by code.
    fn local_authorities(&self) -> impl Future<Output = StoreResult<Vec<LocalAuthority>>> + Send;
    fn local_authority(
        &self,
        code: LaCode,
    ) -> impl Future<Output = StoreResult<Option<LocalAuthority>>> + Send;

    /// Inserts or replaces care settings by code.
    fn put_organisations(
        &self,
        organisations: Vec<Organisation>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    fn organisation(
        &self,
        code: OdsCode,
    ) -> impl Future<Output = StoreResult<Option<Organisation>>> + Send;
    /// All care settings, by code.
    fn organisations(&self) -> impl Future<Output = StoreResult<Vec<Organisation>>> + Send;

    /// Every plan held for an NHS number, in all LAs, withdrawn or not, each
    /// with its LA. The caller applies the visibility rule.
    fn plans_for_nhs_number(
        &self,
        nhs_number: NhsNumber,
    ) -> impl Future<Output = StoreResult<Vec<(Plan, LocalAuthority)>>> + Send;

    /// What a clinician's look reads: the plans of `nhs_number` as
    /// [`Store::plans_for_nhs_number`] gives them and, if `attendances`, the
    /// child's [`Store::attendances`] within the repeat-attendance window of
    /// each of those plans' LAs, ending at `at`. By default those reads one
    /// after another; a store may answer it all at once.
    fn reads_for_look(
        &self,
        nhs_number: NhsNumber,
        at: OffsetDateTime,
        attendances: bool,
    ) -> impl Future<Output = StoreResult<LookReads>> + Send {
        async move {
            let plans = self.plans_for_nhs_number(nhs_number).await?;
            let mut windows = Vec::new();
            if attendances {
                for window in windows_of(&plans) {
                    let seen = self.attendances(nhs_number, at - window, at).await?;
                    windows.push((window, seen));
                }
            }
            Ok(LookReads { plans, windows })
        }
    }

    /// One page of an LA's plans in key order.
    fn plans_for_la(
        &self,
        la: LaCode,
        page: PlanPage,
    ) -> impl Future<Output = StoreResult<Vec<Plan>>> + Send;

    /// Applies a batch in one transaction. Refuses the whole batch with
    /// [`StoreError::Conflict`] if the LA is unknown or a plan belongs to
    /// another LA, and with [`StoreError::SnapshotGuard`] when a snapshot
    /// would withdraw too much.
    fn apply_plans(
        &self,
        batch: PlanBatch,
    ) -> impl Future<Output = StoreResult<AppliedPlans>> + Send;

    /// Appends an access record and its outbox items in one transaction,
    /// with each repeat-attendance alert that `repeat` finds owed and whose
    /// window allows it (one alert per LA and child per window). An item is
    /// pushed (claimable) only when its LA has a webhook at that moment; it
    /// is in the LA's feed either way. Returns how many alerts were written,
    /// and whether any item written is pushed.
    /// The log is append-only: no method changes or removes a record.
    fn record_access(
        &self,
        record: AccessRecord,
        outbox: Vec<OutboxItem>,
        repeat: Option<RepeatCheck>,
    ) -> impl Future<Output = StoreResult<Recorded>> + Send;

    /// The organisations that looked at an NHS number in unscheduled care
    /// after `since` and no later than `until`: each with its first and last
    /// look there and how many, in any order, named as the organisation is
    /// registered now (or by its code). What the repeat-attendance rule
    /// needs, read from an index without reading any record.
    fn attendances(
        &self,
        nhs_number: NhsNumber,
        since: OffsetDateTime,
        until: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Vec<Attendance>>> + Send;

    /// The most recent unscheduled access records of an NHS number, newest first.
    fn recent_unscheduled_accesses(
        &self,
        nhs_number: NhsNumber,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<AccessRecord>>> + Send;

    /// Claims up to `limit` undelivered items that are due and not claimed by
    /// a live lease, oldest first. Each item is claimed by one node at a time.
    fn claim_outbox(
        &self,
        claim: OutboxClaim,
    ) -> impl Future<Output = StoreResult<Vec<OutboxItem>>> + Send;

    /// Marks items delivered, where `node` still holds their claim. Returns
    /// how many it marked.
    fn complete_outbox(
        &self,
        node: &str,
        ids: Vec<Uuid>,
        at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Keeps a short-lived entry (a session, a sign-in state, a used
    /// assertion id) until `expires_at`. Returns `false`, changing nothing,
    /// when an unexpired entry with that key exists: callers use this to
    /// refuse replays.
    fn put_ephemeral(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<bool>> + Send;

    /// The value of an unexpired entry.
    fn ephemeral(
        &self,
        namespace: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send;

    /// Removes an entry and returns its value if it had not expired: each
    /// entry can be taken once (authorization codes, sign-in states).
    fn take_ephemeral(
        &self,
        namespace: &str,
        key: &str,
        now: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<Option<String>>> + Send;

    /// Removes expired entries; returns how many.
    fn purge_ephemeral(&self, now: OffsetDateTime)
    -> impl Future<Output = StoreResult<u64>> + Send;

    /// Registers (or replaces) an LA system's key. Refuses an unknown LA.
    fn put_la_client(&self, client: LaClient) -> impl Future<Output = StoreResult<()>> + Send;
    fn la_client(
        &self,
        client_id: &str,
    ) -> impl Future<Output = StoreResult<Option<LaClient>>> + Send;
    /// All registered LA systems, by client id.
    fn la_clients(&self) -> impl Future<Output = StoreResult<Vec<LaClient>>> + Send;

    /// Applies an upload's accepted plans (if any) and keeps its
    /// acknowledgement, in one transaction: after a crash, either both are
    /// there or neither. Returns the upload as kept, `withdrawn` filled in.
    /// Refuses with [`StoreError::Conflict`] when the LA already has an
    /// upload with the same idempotency key, and with
    /// [`StoreError::SnapshotGuard`] when a snapshot would withdraw too much.
    fn record_upload(
        &self,
        upload: UploadRecord,
        batch: Option<PlanBatch>,
    ) -> impl Future<Output = StoreResult<UploadRecord>> + Send;

    /// One of an LA's uploads; another LA's is `None`.
    fn upload(
        &self,
        la: LaCode,
        id: Uuid,
    ) -> impl Future<Output = StoreResult<Option<UploadRecord>>> + Send;

    /// The LA's upload with this idempotency key, if any.
    fn upload_by_key(
        &self,
        la: LaCode,
        key: &str,
    ) -> impl Future<Output = StoreResult<Option<UploadRecord>>> + Send;

    /// The LA's most recent uploads, newest first, without their per-record
    /// outcomes (`records` is null).
    fn uploads(
        &self,
        la: LaCode,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<UploadRecord>>> + Send;

    /// An LA's notifications after position `after` in its feed, each with
    /// its position, in feed order. Positions follow commit order: an item
    /// committed after a reader's page always comes after that page's last
    /// position, so a reader that keeps its cursor misses nothing.
    fn notifications(
        &self,
        la: LaCode,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<(u64, OutboxItem)>>> + Send;

    /// An LA's newest items, of one kind or all, in the feed's order, last
    /// first, and before them any the feed has not numbered yet: for people
    /// glancing at a dashboard, not for systems that must miss nothing.
    fn latest_notifications(
        &self,
        la: LaCode,
        kind: Option<OutboxKind>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<OutboxItem>>> + Send;

    /// Sets (or replaces) an LA's webhook.
    fn put_webhook(&self, webhook: Webhook) -> impl Future<Output = StoreResult<()>> + Send;

    fn webhook(&self, la: LaCode) -> impl Future<Output = StoreResult<Option<Webhook>>> + Send;

    /// Removes an LA's webhook; its waiting items stay in its feed and are
    /// no longer pushed. Returns whether there was one.
    fn delete_webhook(&self, la: LaCode) -> impl Future<Output = StoreResult<bool>> + Send;

    /// Parks an item `node` holds after its last allowed attempt.
    fn park_outbox(
        &self,
        node: &str,
        id: Uuid,
        at: OffsetDateTime,
        error: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// An LA's parked items, newest first.
    fn failed_outbox(
        &self,
        la: LaCode,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<FailedItem>>> + Send;

    /// Makes an LA's parked items (all, or those listed) due again at `at`
    /// with their attempts reset. Returns how many.
    fn replay_outbox(
        &self,
        la: LaCode,
        ids: Option<Vec<Uuid>>,
        at: OffsetDateTime,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    fn delivery_counts(
        &self,
        la: LaCode,
    ) -> impl Future<Output = StoreResult<DeliveryCounts>> + Send;

    /// Removes outbox items created before `before` (the feed's retention),
    /// and alert windows that ended by then. Returns how many items.
    fn purge_outbox(&self, before: OffsetDateTime)
    -> impl Future<Output = StoreResult<u64>> + Send;

    /// Keeps a privacy officer's report, with its leaf in the log.
    fn record_report(
        &self,
        report: log::ReportRecord,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Access records matching `query`, oldest first.
    fn accesses(
        &self,
        query: AccessQuery,
    ) -> impl Future<Output = StoreResult<Vec<AccessRecord>>> + Send;

    /// Removes what the retention rules no longer keep (see
    /// [`log::RetentionRecord`]) and, if anything went, keeps the record
    /// with its counts as a leaf, in the same transaction. Leaves stay.
    fn apply_retention(
        &self,
        retention: log::RetentionRecord,
    ) -> impl Future<Output = StoreResult<log::RetentionRecord>> + Send;

    /// Every retention record kept, oldest first.
    fn retention_records(
        &self,
    ) -> impl Future<Output = StoreResult<Vec<log::RetentionRecord>>> + Send;

    /// Places the log's committed leaves that have no place yet after every
    /// placed leaf, and returns how many leaves have a place (the size of the
    /// tree that can be built now). A leaf committed after a call is placed
    /// after every leaf that call placed.
    fn sequence_log(&self) -> impl Future<Output = StoreResult<u64>> + Send;

    /// The hashes of leaves `[from, to)`, in order; fewer if some are gone.
    fn log_leaf_hashes(
        &self,
        from: u64,
        to: u64,
    ) -> impl Future<Output = StoreResult<Vec<(u64, merkle::Hash)>>> + Send;

    /// Kept hashes of complete subtrees above the leaves, by `(level, index)`.
    fn log_nodes(
        &self,
        wanted: Vec<(u32, u64)>,
    ) -> impl Future<Output = StoreResult<Vec<Option<merkle::Hash>>>> + Send;

    /// Keeps subtree hashes and a signed checkpoint, in one transaction;
    /// what is already kept is left as it is.
    fn put_checkpoint(
        &self,
        nodes: Vec<(u32, u64, merkle::Hash)>,
        checkpoint: log::Checkpoint,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn latest_checkpoint(
        &self,
    ) -> impl Future<Output = StoreResult<Option<log::Checkpoint>>> + Send;

    /// Checkpoints with a size above `after_size`, smallest first.
    fn checkpoints(
        &self,
        after_size: u64,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<log::Checkpoint>>> + Send;

    /// Leaves from index `from` on, in index order, each with its record as
    /// the store holds it now.
    fn log_entries(
        &self,
        from: u64,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Vec<log::LogEntry>>> + Send;

    /// Gives up `node`'s claim on an item after a failed attempt, counting
    /// the attempt and making it due again at `retry_at`.
    fn retry_outbox(
        &self,
        node: &str,
        id: Uuid,
        retry_at: OffsetDateTime,
        error: &str,
    ) -> impl Future<Output = StoreResult<()>> + Send;
}
