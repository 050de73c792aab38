//! Local authority uploads: a CSV or JSON file of plans, checked row by row,
//! applied all or nothing, and answered with an acknowledgement in CP-IS's
//! codes.
//!
//! File codes: `CPF01` malformed (nothing applied), `CPF02` all records
//! accepted, `CPF03` some rejected, `CPF04` none accepted. Record codes:
//! `CPR04` NHS number invalid, `CPR06` accepted, `CPR07` not accepted, with
//! a reason a person can act on. Rejected rows never stop accepted ones.

use std::collections::HashMap;

use cpis_domain::{
    LaCode, LocalReference, NhsNumber, Plan, PlanFields, PlanKey, PlanType, parse_iso_date,
};
use cpis_store::{PlanBatch, Snapshot, Store, StoreError, UploadRecord};
use serde::Serialize;
use serde_json::{Map, Value, json};
use time::Date;
use uuid::Uuid;

use crate::{CoreError, Cpis};

/// The columns (and JSON fields) an upload may carry; the first three are required.
pub const COLUMNS: [&str; 7] = [
    "nhs_number",
    "plan_type",
    "start_date",
    "end_date",
    "delete_date",
    "expected_delivery_date",
    "local_reference",
];

/// The largest share of an LA's plans a snapshot may withdraw without `force`.
pub const SNAPSHOT_MAX_WITHDRAW_PERCENT: u32 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadFormat {
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadMode {
    /// The rows are inserts and updates, by plan identity.
    Changes,
    /// The file is all of the LA's current plans: plans absent from it are withdrawn.
    Snapshot,
}

impl UploadMode {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "changes" => Some(UploadMode::Changes),
            "snapshot" => Some(UploadMode::Snapshot),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            UploadMode::Changes => "changes",
            UploadMode::Snapshot => "snapshot",
        }
    }
}

/// An upload as the HTTP layer hands it over.
#[derive(Debug, Clone)]
pub struct UploadRequest {
    pub la: LaCode,
    pub format: UploadFormat,
    pub body: Vec<u8>,
    /// From `?mode=`; a JSON body may also say it.
    pub mode: Option<UploadMode>,
    /// Lets a snapshot withdraw more than the guard allows.
    pub force: bool,
    pub idempotency_key: Option<String>,
    /// List accepted records in the acknowledgement too, not only rejections.
    pub list_accepted: bool,
}

/// What an upload came to.
#[derive(Debug, Clone)]
pub struct UploadOutcome {
    pub acknowledgement: UploadRecord,
    /// True when an earlier upload with the same idempotency key is answered again.
    pub replayed: bool,
}

/// One record's outcome, as the acknowledgement lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordOutcome {
    /// The line in the file (the CSV header is line 1), or the JSON record's index from 1.
    pub line: u64,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nhs_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_reference: Option<String>,
}

/// A file checked row by row.
#[derive(Debug, Default)]
pub struct ParsedUpload {
    pub accepted: Vec<(u64, Plan)>,
    pub rejected: Vec<RecordOutcome>,
    /// Set when the file as a whole cannot be used: nothing is applied.
    pub malformed: Option<String>,
    /// The `mode` a JSON body names.
    pub mode: Option<String>,
}

/// The raw text of one record's fields, by column.
#[derive(Default)]
struct RawRecord {
    values: [Option<String>; 7],
}

impl RawRecord {
    fn get(&self, column: usize) -> Option<&str> {
        self.values[column]
            .as_deref()
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }
}

/// Checks rows against the plan rules, keeping the first of any duplicates.
struct Checker {
    la: LaCode,
    today: Date,
    seen: HashMap<PlanKey, u64>,
    parsed: ParsedUpload,
}

impl Checker {
    fn new(la: LaCode, today: Date) -> Self {
        Checker {
            la,
            today,
            seen: HashMap::new(),
            parsed: ParsedUpload::default(),
        }
    }

    fn check(&mut self, line: u64, raw: &RawRecord) {
        match self.plan(line, raw) {
            Ok(plan) => self.parsed.accepted.push((line, plan)),
            Err((code, reason)) => self.parsed.rejected.push(RecordOutcome {
                line,
                code,
                reason: Some(reason),
                nhs_number: raw.get(0).map(|text| text.chars().take(20).collect()),
                local_reference: raw.get(6).map(|text| text.chars().take(64).collect()),
            }),
        }
    }

    fn plan(&mut self, line: u64, raw: &RawRecord) -> Result<Plan, (&'static str, String)> {
        let reject = |reason: String| ("CPR07", reason);
        let nhs_number = match raw.get(0) {
            None => return Err(("CPR04", "the NHS number is missing".to_owned())),
            Some(text) => NhsNumber::parse(text).map_err(|error| ("CPR04", error.to_string()))?,
        };
        let plan_type = match raw.get(1) {
            None => {
                return Err(reject(
                    "the plan type is missing; use CPP, LAC or UCPP".into(),
                ));
            }
            Some(text) => PlanType::parse(text).map_err(|error| reject(error.to_string()))?,
        };
        let date = |column: usize| -> Result<Option<Date>, (&'static str, String)> {
            raw.get(column)
                .map(|text| {
                    parse_iso_date(text).map_err(|_| {
                        reject(format!(
                            "{} {text:?} is not a date in the form YYYY-MM-DD",
                            COLUMNS[column]
                        ))
                    })
                })
                .transpose()
        };
        let start_date = date(2)?.ok_or_else(|| reject("the start date is missing".into()))?;
        if start_date > self.today {
            return Err(reject(format!(
                "the start date {start_date} is in the future; send the plan once it has started"
            )));
        }
        let local_reference = raw
            .get(6)
            .map(LocalReference::parse)
            .transpose()
            .map_err(|error| reject(error.to_string()))?;
        let fields = PlanFields {
            key: PlanKey {
                la: self.la,
                nhs_number,
                plan_type,
                start_date,
            },
            end_date: date(3)?,
            delete_date: date(4)?,
            expected_delivery_date: date(5)?,
            local_reference,
        };
        let plan = Plan::new(fields).map_err(|error| reject(error.to_string()))?;
        if let Some(first) = self.seen.get(plan.key()) {
            return Err(reject(format!(
                "the same plan (NHS number, plan type and start date) is already on line {first}"
            )));
        }
        self.seen.insert(*plan.key(), line);
        Ok(plan)
    }

    fn malformed(mut self, reason: String) -> ParsedUpload {
        self.parsed.malformed = Some(reason);
        self.parsed.accepted.clear();
        self.parsed.rejected.clear();
        self.parsed
    }
}

/// Checks a CSV file: a header row naming known columns in any order (the
/// first three required), UTF-8 with or without a BOM, CRLF or LF.
pub fn parse_csv(bytes: &[u8], la: LaCode, today: Date) -> ParsedUpload {
    let mut checker = Checker::new(la, today);
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return checker.malformed("the file is empty; send a header row naming the columns".into());
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes);
    let header = match reader.headers() {
        Ok(header) => header.clone(),
        Err(error) => return checker.malformed(format!("the header row cannot be read: {error}")),
    };
    let mut positions: Vec<usize> = Vec::with_capacity(header.len());
    for name in &header {
        let name = name.trim().to_ascii_lowercase();
        let Some(column) = COLUMNS.iter().position(|known| *known == name) else {
            return checker.malformed(format!(
                "the header names the column {name:?}, which may not be sent; the columns are {}",
                COLUMNS.join(", ")
            ));
        };
        if positions.contains(&column) {
            return checker.malformed(format!("the header names the column {name:?} twice"));
        }
        positions.push(column);
    }
    for (column, name) in COLUMNS.iter().enumerate().take(3) {
        if !positions.contains(&column) {
            return checker.malformed(format!("the header lacks the required column {name:?}"));
        }
    }
    // Lines are counted here from byte offsets: the csv crate's own line
    // numbers drift on CRLF files.
    let mut lines = LineCounter::new(bytes);
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = lines.line_at(record.position().map_or(0, csv::Position::byte));
                if record.len() == 1 && record.get(0).is_some_and(|field| field.trim().is_empty()) {
                    continue;
                }
                if record.len() != positions.len() {
                    checker.parsed.rejected.push(RecordOutcome {
                        line,
                        code: "CPR07",
                        reason: Some(format!(
                            "the row has {} fields but the header names {} columns",
                            record.len(),
                            positions.len()
                        )),
                        nhs_number: None,
                        local_reference: None,
                    });
                    continue;
                }
                let mut raw = RawRecord::default();
                for (field, column) in record.iter().zip(&positions) {
                    raw.values[*column] = Some(field.to_owned());
                }
                checker.check(line, &raw);
            }
            Err(error) => {
                let line = lines.line_at(error.position().map_or(0, csv::Position::byte));
                return checker.malformed(match error.kind() {
                    csv::ErrorKind::Utf8 { .. } => format!("line {line} is not UTF-8 text"),
                    _ => format!("the file cannot be read as CSV at line {line}: {error}"),
                });
            }
        }
    }
    checker.parsed
}

/// Turns byte offsets, visited in increasing order, into 1-based line numbers.
struct LineCounter<'a> {
    bytes: &'a [u8],
    counted_to: usize,
    newlines: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        LineCounter {
            bytes,
            counted_to: 0,
            newlines: 0,
        }
    }

    /// The line of the record starting at `offset`. After a CRLF the csv
    /// crate reports the record as starting at the `\n`, so that byte is
    /// counted too.
    fn line_at(&mut self, offset: u64) -> u64 {
        let offset = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
            .min(self.bytes.len());
        if offset > self.counted_to {
            self.newlines += self.bytes[self.counted_to..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            self.counted_to = offset;
        }
        self.newlines + 1
    }
}

/// Checks a JSON file: `{"mode": ..., "records": [{the same fields}]}`,
/// every value a string (or null for an absent optional field).
pub fn parse_json(bytes: &[u8], la: LaCode, today: Date) -> ParsedUpload {
    let mut checker = Checker::new(la, today);
    let document: Map<String, Value> = match serde_json::from_slice(bytes) {
        Ok(document) => document,
        Err(error) => {
            return checker.malformed(format!(
                "the body is not a JSON object {{\"mode\": ..., \"records\": [...]}}: {error}"
            ));
        }
    };
    if let Some(unknown) = document
        .keys()
        .find(|key| *key != "mode" && *key != "records")
    {
        return checker.malformed(format!(
            "the body has the field {unknown:?}; only \"mode\" and \"records\" may be sent"
        ));
    }
    match document.get("mode") {
        None | Some(Value::Null) => {}
        Some(Value::String(mode)) => checker.parsed.mode = Some(mode.clone()),
        Some(_) => return checker.malformed("\"mode\" must be \"changes\" or \"snapshot\"".into()),
    }
    let Some(Value::Array(records)) = document.get("records") else {
        return checker.malformed("the body needs a \"records\" array".into());
    };
    let mut raws = Vec::with_capacity(records.len());
    for (index, record) in records.iter().enumerate() {
        let line = index as u64 + 1;
        let Value::Object(fields) = record else {
            return checker.malformed(format!("record {line} is not an object"));
        };
        let mut raw = RawRecord::default();
        let mut type_error = None;
        for (name, value) in fields {
            let Some(column) = COLUMNS.iter().position(|known| known == name) else {
                return checker.malformed(format!(
                    "record {line} has the field {name:?}, which may not be sent; the fields are {}",
                    COLUMNS.join(", ")
                ));
            };
            match value {
                Value::String(text) => raw.values[column] = Some(text.clone()),
                Value::Null => {}
                _ => type_error = Some(format!("{name} must be a string")),
            }
        }
        raws.push((line, raw, type_error));
    }
    for (line, raw, type_error) in raws {
        match type_error {
            Some(reason) => checker.parsed.rejected.push(RecordOutcome {
                line,
                code: "CPR07",
                reason: Some(reason),
                nhs_number: raw.get(0).map(str::to_owned),
                local_reference: raw.get(6).map(str::to_owned),
            }),
            None => checker.check(line, &raw),
        }
    }
    checker.parsed
}

fn file_code(parsed: &ParsedUpload) -> &'static str {
    match (
        parsed.malformed.is_some(),
        parsed.accepted.len(),
        parsed.rejected.len(),
    ) {
        (true, _, _) => "CPF01",
        (false, _, 0) => "CPF02",
        (false, 0, _) => "CPF04",
        _ => "CPF03",
    }
}

/// Checks an idempotency key: 1 to 200 printable ASCII characters.
fn check_key(key: &str) -> Result<(), CoreError> {
    if (1..=200).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(CoreError::BadRequest(
            "the Idempotency-Key must be 1 to 200 printable characters without spaces".into(),
        ))
    }
}

impl<S: Store> Cpis<S> {
    /// Checks and applies an LA's upload, keeping its acknowledgement.
    pub async fn upload(&self, request: UploadRequest) -> Result<UploadOutcome, CoreError> {
        if let Some(key) = &request.idempotency_key {
            check_key(key)?;
            if let Some(first) = self.store.upload_by_key(request.la, key).await? {
                return Ok(UploadOutcome {
                    acknowledgement: first,
                    replayed: true,
                });
            }
        }
        let today = self.clock.today();
        let (la, format, body) = (request.la, request.format, request.body);
        // Checking a large file is seconds of CPU: keep it off the async workers.
        let mut parsed = tokio::task::spawn_blocking(move || match format {
            UploadFormat::Csv => parse_csv(&body, la, today),
            UploadFormat::Json => parse_json(&body, la, today),
        })
        .await
        .map_err(|error| CoreError::Internal(format!("the upload check failed: {error}")))?;

        let body_mode = parsed.mode.as_deref().map(|text| {
            UploadMode::parse(text)
                .ok_or_else(|| format!("\"mode\" is {text:?}; use \"changes\" or \"snapshot\""))
        });
        let mode = match (request.mode, body_mode) {
            (_, Some(Err(reason))) => {
                parsed.malformed.get_or_insert(reason);
                request.mode.unwrap_or(UploadMode::Changes)
            }
            (Some(query), Some(Ok(body))) if query != body => {
                parsed.malformed.get_or_insert(format!(
                    "the body says mode {:?} but the address says {:?}",
                    body.code(),
                    query.code()
                ));
                query
            }
            (Some(query), _) => query,
            (None, Some(Ok(body))) => body,
            (None, None) => UploadMode::Changes,
        };
        if parsed.malformed.is_some() {
            parsed.accepted.clear();
            parsed.rejected.clear();
        }

        let code = file_code(&parsed);
        let mut records: Vec<RecordOutcome> = match &parsed.malformed {
            Some(reason) => vec![RecordOutcome {
                line: 1,
                code: "CPF01",
                reason: Some(format!("{reason}; nothing was applied")),
                nhs_number: None,
                local_reference: None,
            }],
            None => parsed.rejected.clone(),
        };
        if request.list_accepted {
            records.extend(parsed.accepted.iter().map(|(line, plan)| RecordOutcome {
                line: *line,
                code: "CPR06",
                reason: None,
                nhs_number: Some(plan.nhs_number().digits()),
                local_reference: plan.local_reference().map(|r| r.as_str().to_owned()),
            }));
            records.sort_by_key(|record| record.line);
        }
        // A snapshot with rejected rows withdraws nothing: the plan on a
        // rejected row would otherwise look absent and be withdrawn.
        let snapshot =
            (mode == UploadMode::Snapshot && parsed.rejected.is_empty()).then_some(Snapshot {
                withdraw_on: today,
                max_withdraw_percent: (!request.force).then_some(SNAPSHOT_MAX_WITHDRAW_PERCENT),
            });
        let upload = UploadRecord {
            id: Uuid::now_v7(),
            la,
            received_at: self.clock.now(),
            mode: mode.code().to_owned(),
            file_code: code.to_owned(),
            accepted: parsed.accepted.len() as u64,
            rejected: parsed.rejected.len() as u64,
            withdrawn: 0,
            idempotency_key: request.idempotency_key.clone(),
            records: serde_json::to_value(&records)
                .map_err(|error| CoreError::Internal(error.to_string()))?,
        };
        let applies =
            parsed.malformed.is_none() && (!parsed.accepted.is_empty() || snapshot.is_some());
        let batch = applies.then(|| PlanBatch {
            la,
            batch_id: upload.id,
            plans: parsed.accepted.into_iter().map(|(_, plan)| plan).collect(),
            snapshot,
            at: upload.received_at,
        });
        match self.store.record_upload(upload, batch).await {
            Ok(kept) => {
                tracing::info!(la = %la, id = %kept.id, file_code = code, accepted = kept.accepted, rejected = kept.rejected, withdrawn = kept.withdrawn, "upload recorded");
                Ok(UploadOutcome {
                    acknowledgement: kept,
                    replayed: false,
                })
            }
            Err(StoreError::Conflict(conflict)) => match &request.idempotency_key {
                // Two uploads with one key raced; the first one's answer stands.
                Some(key) => match self.store.upload_by_key(la, key).await? {
                    Some(first) => Ok(UploadOutcome {
                        acknowledgement: first,
                        replayed: true,
                    }),
                    None => Err(CoreError::Store(StoreError::Conflict(conflict))),
                },
                None => Err(CoreError::Store(StoreError::Conflict(conflict))),
            },
            Err(StoreError::SnapshotGuard {
                would_withdraw,
                visible,
                max_percent,
            }) => Err(CoreError::Refused(format!(
                "this snapshot would withdraw {would_withdraw} of your {visible} plans on record, more than {max_percent}%; nothing was applied. Check the file is complete, or send it again with force=true"
            ))),
            Err(error) => Err(error.into()),
        }
    }

    /// One of the LA's uploads with its acknowledgement.
    pub async fn upload_of(&self, la: LaCode, id: Uuid) -> Result<UploadRecord, CoreError> {
        self.store.upload(la, id).await?.ok_or_else(|| {
            CoreError::NotFound("your local authority has no upload with that id".into())
        })
    }

    /// The LA's most recent uploads, newest first.
    pub async fn uploads_of(
        &self,
        la: LaCode,
        limit: usize,
    ) -> Result<Vec<UploadRecord>, CoreError> {
        Ok(self.store.uploads(la, limit.clamp(1, 500)).await?)
    }
}

/// The acknowledgement as the API shows it.
pub fn acknowledgement_json(upload: &UploadRecord) -> Value {
    json!({
        "id": upload.id,
        "la": upload.la,
        "received_at": upload.received_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "mode": upload.mode,
        "file_code": upload.file_code,
        "accepted": upload.accepted,
        "rejected": upload.rejected,
        "withdrawn": upload.withdrawn,
        "records": upload.records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 11 - 25);

    fn la() -> LaCode {
        LaCode::parse("E09000007").unwrap()
    }

    fn codes(parsed: &ParsedUpload) -> Vec<(u64, &'static str)> {
        parsed.rejected.iter().map(|r| (r.line, r.code)).collect()
    }

    #[test]
    fn a_good_csv_in_any_column_order_with_bom_and_crlf() {
        let csv = "\u{FEFF}plan_type,start_date,nhs_number,local_reference\r\nCPP,2026-01-05,943 476 5919,CP-1\r\nLAC,2025-06-01,9990000018,\r\n";
        let parsed = parse_csv(csv.as_bytes(), la(), TODAY);
        assert_eq!(parsed.malformed, None);
        assert_eq!(parsed.accepted.len(), 2);
        assert_eq!(parsed.accepted[0].0, 2, "the header is line 1");
        assert_eq!(
            parsed.accepted[0].1.local_reference().unwrap().as_str(),
            "CP-1"
        );
        assert_eq!(parsed.accepted[1].1.local_reference(), None);
        assert_eq!(file_code(&parsed), "CPF02");
    }

    #[test]
    fn every_record_rule_has_its_code() {
        let csv = "nhs_number,plan_type,start_date,end_date,delete_date,expected_delivery_date,local_reference\n\
            9434765919,CPP,2026-01-05,,,,ok\n\
            9434765918,CPP,2026-01-05,,,,bad-check-digit\n\
            ,CPP,2026-01-05,,,,no-nhs\n\
            9990000018,XYZ,2026-01-05,,,,bad-type\n\
            9990000026,CPP,05/01/2026,,,,bad-date\n\
            9990000034,CPP,2026-01-05,2025-01-01,,,end-before-start\n\
            9990000042,CPP,2026-12-01,,,,future\n\
            9990000050,LAC,2026-01-05,,,2026-03-01,delivery-on-lac\n\
            9434765919,CPP,2026-01-05,,,,duplicate\n\
            9990000069,CPP,2026-01-05,,,,has spaces\n\
            9990000077,CPP\n\
            9990000085,UCPP,2026-10-01,,,2027-01-01,unborn-ok\n\
            9990000093,CPP,,,,,no-start\n";
        let parsed = parse_csv(csv.as_bytes(), la(), TODAY);
        assert_eq!(parsed.malformed, None);
        assert_eq!(
            parsed
                .accepted
                .iter()
                .map(|(line, _)| *line)
                .collect::<Vec<_>>(),
            vec![2, 13]
        );
        assert_eq!(
            codes(&parsed),
            vec![
                (3, "CPR04"),
                (4, "CPR04"),
                (5, "CPR07"),
                (6, "CPR07"),
                (7, "CPR07"),
                (8, "CPR07"),
                (9, "CPR07"),
                (10, "CPR07"),
                (11, "CPR07"),
                (12, "CPR07"),
                (14, "CPR07")
            ]
        );
        let reason = |line| {
            parsed
                .rejected
                .iter()
                .find(|r| r.line == line)
                .unwrap()
                .reason
                .clone()
                .unwrap()
        };
        assert!(reason(5).contains("CPP, LAC or UCPP"), "{}", reason(5));
        assert!(reason(6).contains("YYYY-MM-DD"), "{}", reason(6));
        assert!(reason(7).contains("before the start date"), "{}", reason(7));
        assert!(reason(8).contains("in the future"), "{}", reason(8));
        assert!(reason(9).contains("UCPP"), "{}", reason(9));
        assert!(reason(10).contains("line 2"), "{}", reason(10));
        assert!(reason(11).contains("printable ASCII"), "{}", reason(11));
        assert!(reason(12).contains("fields"), "{}", reason(12));
        assert!(
            reason(14).contains("start date is missing"),
            "{}",
            reason(14)
        );
        assert_eq!(parsed.rejected[0].nhs_number.as_deref(), Some("9434765918"));
        assert_eq!(
            parsed.rejected[0].local_reference.as_deref(),
            Some("bad-check-digit")
        );
        assert_eq!(file_code(&parsed), "CPF03");
    }

    #[test]
    fn a_malformed_csv_applies_nothing() {
        let check = |csv: &[u8], expected: &str| {
            let parsed = parse_csv(csv, la(), TODAY);
            let reason = parsed.malformed.clone().unwrap_or_default();
            assert!(reason.contains(expected), "{reason:?} lacks {expected:?}");
            assert!(parsed.accepted.is_empty() && parsed.rejected.is_empty());
            assert_eq!(file_code(&parsed), "CPF01");
        };
        check(
            b"nhs_number,plan_type,start_date,child_name\n9434765919,CPP,2026-01-05,Jo\n",
            "\"child_name\", which may not be sent",
        );
        check(
            b"nhs_number,plan_type\n9434765919,CPP\n",
            "lacks the required column \"start_date\"",
        );
        check(b"nhs_number,plan_type,start_date,plan_type\n", "twice");
        check(b"", "empty");
        check(b"nhs_number,plan_type,start_date\n9434765919,CPP,2026-01-05\n\xFF\xFE,CPP,2026-01-05\n", "not UTF-8");
    }

    #[test]
    fn all_rejected_is_cpf04() {
        let parsed = parse_csv(
            b"nhs_number,plan_type,start_date\n123,CPP,2026-01-05\n",
            la(),
            TODAY,
        );
        assert_eq!(file_code(&parsed), "CPF04");
    }

    #[test]
    fn json_records_are_checked_alike() {
        let body = json!({"mode": "snapshot", "records": [
            {"nhs_number": "9434765919", "plan_type": "CPP", "start_date": "2026-01-05", "end_date": null},
            {"nhs_number": "9434765918", "plan_type": "CPP", "start_date": "2026-01-05"},
            {"nhs_number": 9990000018u64, "plan_type": "LAC", "start_date": "2026-01-05"}
        ]});
        let parsed = parse_json(body.to_string().as_bytes(), la(), TODAY);
        assert_eq!(parsed.mode.as_deref(), Some("snapshot"));
        assert_eq!(parsed.accepted.len(), 1);
        assert_eq!(codes(&parsed), vec![(2, "CPR04"), (3, "CPR07")]);
        let extra = json!({"records": [{"nhs_number": "9434765919", "plan_type": "CPP", "start_date": "2026-01-05", "reason": "neglect"}]});
        let parsed = parse_json(extra.to_string().as_bytes(), la(), TODAY);
        assert!(
            parsed
                .malformed
                .unwrap()
                .contains("\"reason\", which may not be sent")
        );
        let parsed = parse_json(b"[1,2]", la(), TODAY);
        assert!(parsed.malformed.is_some());
        let parsed = parse_json(br#"{"records": [], "extra": 1}"#, la(), TODAY);
        assert!(parsed.malformed.unwrap().contains("\"extra\""));
    }
}
