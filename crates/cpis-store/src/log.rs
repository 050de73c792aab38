//! The verifiable access log: what a leaf is (the canonical encoding of an
//! access record or an upload acknowledgement) and the types a store keeps
//! for the tree and its signed checkpoints.
//!
//! A leaf's bytes are a version tag and then every field, each
//! length-prefixed, in a fixed order: the same record always gives the same
//! bytes, and no two records give the same bytes. Changing this encoding
//! changes every hash; a new encoding takes a new tag.

use cpis_domain::{AccessRecord, format_iso_date};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::UploadRecord;
use crate::encoding::{micros, nhs};
use crate::merkle::{Hash, leaf_hash};

/// What a leaf stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    Access,
    Upload,
    Report,
    Retention,
}

impl LogKind {
    pub fn code(self) -> &'static str {
        match self {
            LogKind::Access => "access",
            LogKind::Upload => "upload",
            LogKind::Report => "report",
            LogKind::Retention => "retention",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        [
            LogKind::Access,
            LogKind::Upload,
            LogKind::Report,
            LogKind::Retention,
        ]
        .into_iter()
        .find(|kind| kind.code() == code)
    }
}

/// One leaf as a store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLeaf {
    /// The leaf's place in the tree, from 0.
    pub index: u64,
    pub kind: LogKind,
    /// The access record's or upload's id.
    pub record_id: Uuid,
    /// The leaf hash written with the record.
    pub hash: Hash,
}

/// A leaf with the record it stands for, as the store holds it now.
#[derive(Debug, Clone, PartialEq)]
pub enum LoggedRecord {
    Access(AccessRecord),
    Upload(UploadRecord),
    Report(ReportRecord),
    Retention(RetentionRecord),
    /// The leaf's record is not in the store.
    Missing,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    pub leaf: LogLeaf,
    pub record: LoggedRecord,
}

impl LoggedRecord {
    /// The leaf hash of the record as it is now; `None` when it is missing.
    pub fn hash(&self) -> Option<Hash> {
        match self {
            LoggedRecord::Access(record) => Some(access_leaf_hash(record)),
            LoggedRecord::Upload(upload) => Some(upload_leaf_hash(upload)),
            LoggedRecord::Report(report) => Some(leaf_hash(&report_leaf(report))),
            LoggedRecord::Retention(retention) => Some(leaf_hash(&retention_leaf(retention))),
            LoggedRecord::Missing => None,
        }
    }
}

/// A privacy officer's access report, kept (and logged) when it is run:
/// who asked, about whom, over which days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRecord {
    pub id: Uuid,
    pub at: OffsetDateTime,
    pub user_id: String,
    pub user_name: String,
    pub role_code: String,
    pub organisation_code: String,
    /// `nhs_number`, `user` or `organisation`.
    pub report: String,
    /// The NHS number, user id or organisation code reported on.
    pub subject: String,
    pub from: time::Date,
    pub to: time::Date,
    pub request_id: String,
}

/// The canonical bytes of an access report's record.
pub fn report_leaf(report: &ReportRecord) -> Vec<u8> {
    let mut leaf = Canonical::new("cpis-report-v1");
    leaf.bytes(report.id.as_bytes());
    leaf.number(micros(report.at));
    for text in [
        &report.user_id,
        &report.user_name,
        &report.role_code,
        &report.organisation_code,
        &report.report,
        &report.subject,
    ] {
        leaf.text(text);
    }
    leaf.text(&format_iso_date(report.from));
    leaf.text(&format_iso_date(report.to));
    leaf.text(&report.request_id);
    leaf.0
}

/// A removal of old records under the retention rules, itself a leaf:
/// access records made before `access_before` are gone (their leaves stay,
/// so the tree and its proofs are unchanged), and so are plans withdrawn
/// before `plans_withdrawn_before` or ended before `plans_ended_before`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionRecord {
    pub id: Uuid,
    pub at: OffsetDateTime,
    pub access_before: OffsetDateTime,
    pub plans_withdrawn_before: time::Date,
    pub plans_ended_before: time::Date,
    pub removed_access: u64,
    pub removed_plans: u64,
}

/// A new UUIDv7 carrying `at`'s time (the rest random): an access record's
/// or an outbox item's id, by which old ones are found for removal
/// ([`first_id_at`]).
pub fn id_at(at: OffsetDateTime) -> Uuid {
    Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        u64::try_from(at.unix_timestamp()).unwrap_or(0),
        at.nanosecond(),
    ))
}

/// How far an access record's time may lie after the time its id carries
/// (never before it). Records are written with `id_at(at)`, exact to the
/// millisecond; those of cpis's first days took their id from the clock
/// just before their time. A reader that finds the records of a span of
/// time by their ids starts that many earlier.
pub const ID_TIME_SLACK: time::Duration = time::Duration::seconds(1);

/// The smallest UUIDv7 of the millisecond `at` falls in: every id made
/// before `at` sorts below it. Access records are found for removal by id,
/// and verification knows a removed record's time by its leaf's id.
pub fn first_id_at(at: OffsetDateTime) -> Uuid {
    let millis = u128::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    Uuid::from_u128((millis << 80) | (0x7 << 76) | (0x2 << 62))
}

/// The canonical bytes of a retention record.
pub fn retention_leaf(retention: &RetentionRecord) -> Vec<u8> {
    let mut leaf = Canonical::new("cpis-retention-v1");
    leaf.bytes(retention.id.as_bytes());
    leaf.number(micros(retention.at));
    leaf.number(micros(retention.access_before));
    leaf.text(&format_iso_date(retention.plans_withdrawn_before));
    leaf.text(&format_iso_date(retention.plans_ended_before));
    for count in [retention.removed_access, retention.removed_plans] {
        leaf.number(i64::try_from(count).unwrap_or(i64::MAX));
    }
    leaf.0
}

/// A tree head signed by the service: the tree of the first `size` leaves
/// has root `root`. `note` is the signed note (C2SP tlog-checkpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub size: u64,
    pub root: Hash,
    pub note: String,
    pub created_at: OffsetDateTime,
}

struct Canonical(Vec<u8>);

impl Canonical {
    fn new(tag: &str) -> Self {
        let mut canonical = Canonical(Vec::with_capacity(512));
        canonical.text(tag);
        canonical
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.0
            .extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        self.0.extend_from_slice(bytes);
    }

    fn text(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    fn number(&mut self, number: i64) {
        self.0.extend_from_slice(&number.to_be_bytes());
    }
}

/// The canonical bytes of an access record.
pub fn access_leaf(record: &AccessRecord) -> Vec<u8> {
    let mut leaf = Canonical::new("cpis-access-v1");
    leaf.bytes(record.id.as_bytes());
    leaf.number(micros(record.at));
    leaf.number(nhs(record.nhs_number));
    leaf.text(&record.user_id);
    leaf.text(&record.user_name);
    leaf.text(&record.role_code);
    leaf.text(&record.role_name);
    leaf.text(&record.activity_code);
    leaf.text(record.organisation_code.as_str());
    leaf.text(&record.organisation_name);
    leaf.text(record.setting_type.code());
    leaf.number(i64::from(record.unscheduled));
    leaf.number(record.returned.len() as i64);
    for key in &record.returned {
        leaf.text(key.la.as_str());
        leaf.number(nhs(key.nhs_number));
        leaf.text(key.plan_type.code());
        leaf.text(&format_iso_date(key.start_date));
    }
    leaf.text(&record.request_id);
    leaf.0
}

/// The canonical bytes of an upload's acknowledgement.
pub fn upload_leaf(upload: &UploadRecord) -> Vec<u8> {
    let mut leaf = Canonical::new("cpis-upload-v1");
    leaf.bytes(upload.id.as_bytes());
    leaf.text(upload.la.as_str());
    leaf.number(micros(upload.received_at));
    leaf.text(&upload.mode);
    leaf.text(&upload.file_code);
    for count in [upload.accepted, upload.rejected, upload.withdrawn] {
        leaf.number(i64::try_from(count).unwrap_or(i64::MAX));
    }
    leaf.text(upload.idempotency_key.as_deref().unwrap_or(""));
    leaf.number(i64::from(upload.idempotency_key.is_some()));
    // serde_json's maps keep their keys sorted, so equal values print alike
    // however the store kept them.
    leaf.text(&upload.records.to_string());
    leaf.0
}

pub fn access_leaf_hash(record: &AccessRecord) -> Hash {
    leaf_hash(&access_leaf(record))
}

pub fn upload_leaf_hash(upload: &UploadRecord) -> Hash {
    leaf_hash(&upload_leaf(upload))
}
