//! Local authority uploads: a CSV or JSON file of plans, checked row by row,
//! applied all or nothing, and answered with an acknowledgement in CP-IS's
//! codes.
//!
//! File codes: `CPF01` malformed (nothing applied), `CPF02` all records
//! accepted, `CPF03` some rejected, `CPF04` none accepted. Record codes:
//! `CPR04` NHS number invalid, `CPR06` accepted, `CPR07` not accepted, with
//! a reason a person can act on. Rejected rows never stop accepted ones.

use std::cell::{Cell, RefCell};
use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::io::{self, BufReader, Read};

use cpis_domain::{
    LaCode, LocalReference, NhsNumber, Plan, PlanFields, PlanKey, PlanType, parse_iso_date,
};
use cpis_store::{
    PlanBatch, PlanSpool, PlanSpoolWriter, Plans, Snapshot, Store, StoreError, UploadRecord,
};
use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};
use time::Date;
use uuid::Uuid;

use crate::duplicates::DuplicateFinder;
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
pub struct UploadRequest {
    pub la: LaCode,
    pub format: UploadFormat,
    /// The file as it arrives; read on a blocking thread, at most
    /// [`crate::Limits::upload_bytes`] of it.
    pub body: Box<dyn Read + Send>,
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

/// A file checked row by row. The accepted plans wait in a spool on disk
/// and the duplicate check keeps its keys in sorted runs on disk, so a file
/// of any size costs memory only for its rejections.
#[derive(Debug, Default)]
pub struct ParsedUpload {
    pub accepted: u64,
    /// The accepted plans, in file order; `None` when the file is malformed.
    pub plans: Option<PlanSpool>,
    /// `CPR06` records, kept only when the acknowledgement lists them.
    pub accepted_records: Vec<RecordOutcome>,
    pub rejected: Vec<RecordOutcome>,
    /// Set when the file as a whole cannot be used: nothing is applied.
    pub malformed: Option<String>,
    /// The `mode` a JSON body names.
    pub mode: Option<String>,
}

/// Why a file could not be read to its end; nothing of it is applied.
#[derive(Debug, thiserror::Error)]
pub enum ReadFailure {
    #[error("the upload is larger than the {limit} bytes allowed")]
    TooLarge { limit: u64 },
    #[error("the upload could not be read to its end: {0}")]
    Body(io::Error),
    #[error("the accepted plans could not be spooled to disk: {0}")]
    Spool(io::Error),
}

impl From<ReadFailure> for CoreError {
    fn from(failure: ReadFailure) -> Self {
        match failure {
            ReadFailure::TooLarge { limit } => CoreError::TooLarge { limit },
            ReadFailure::Body(_) => CoreError::BadRequest(failure.to_string()),
            ReadFailure::Spool(_) => CoreError::Unavailable(failure.to_string()),
        }
    }
}

/// Reads at most `limit` bytes, then fails with [`io::ErrorKind::FileTooLarge`].
pub struct Limited<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Limited<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        Limited { inner, left: limit }
    }
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // One byte beyond the limit tells a file of exactly `limit` bytes
        // from a larger one.
        let want = buf
            .len()
            .min(usize::try_from(self.left.saturating_add(1)).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buf[..want])?;
        if read as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "the upload is larger than allowed",
            ));
        }
        self.left -= read as u64;
        Ok(read)
    }
}

fn read_failure(error: io::Error, limit: u64) -> ReadFailure {
    if error.kind() == io::ErrorKind::FileTooLarge {
        ReadFailure::TooLarge { limit }
    } else {
        ReadFailure::Body(error)
    }
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

/// A plan's identity within one LA's file packed into 64 bits: the NHS
/// number (below 2^34), the plan type (2 bits) and the start date as days
/// from 0000-01-01 (below 2^22 for the four-digit years dates are parsed in).
fn packed_key(key: &PlanKey) -> u64 {
    const DAY_ZERO: i32 = 1_721_060;
    let kind = PlanType::ALL
        .iter()
        .position(|kind| *kind == key.plan_type)
        .unwrap_or(0) as u64;
    let day = u64::try_from(key.start_date.to_julian_day() - DAY_ZERO).unwrap_or(0);
    debug_assert!(day < 1 << 22);
    key.nhs_number.as_u64() << 24 | kind << 22 | (day & 0x3F_FFFF)
}

/// Checks rows against the plan rules, keeping the first of any duplicates.
struct Checker {
    la: LaCode,
    today: Date,
    list_accepted: bool,
    /// The identities of accepted plans, to find repeats once the file ends.
    duplicates: DuplicateFinder,
    spool: PlanSpoolWriter,
    spool_error: Option<io::Error>,
    parsed: ParsedUpload,
}

impl Checker {
    fn new(la: LaCode, today: Date, list_accepted: bool) -> Result<Self, ReadFailure> {
        Ok(Checker {
            la,
            today,
            list_accepted,
            duplicates: DuplicateFinder::new(),
            spool: PlanSpoolWriter::new(la).map_err(ReadFailure::Spool)?,
            spool_error: None,
            parsed: ParsedUpload::default(),
        })
    }

    fn check(&mut self, line: u64, raw: &RawRecord) {
        match self.plan(raw) {
            Ok(plan) => {
                let index = self.spool.len();
                let noted = self
                    .spool
                    .push(&plan)
                    .and_then(|()| self.duplicates.push(packed_key(plan.key()), index, line));
                if let Err(error) = noted {
                    self.spool_error.get_or_insert(error);
                }
                self.parsed.accepted += 1;
                if self.list_accepted {
                    self.parsed.accepted_records.push(RecordOutcome {
                        line,
                        code: "CPR06",
                        reason: None,
                        nhs_number: Some(plan.nhs_number().digits()),
                        local_reference: plan.local_reference().map(|r| r.as_str().to_owned()),
                    });
                }
            }
            Err((code, reason)) => self.reject(line, code, reason, raw),
        }
    }

    fn reject(&mut self, line: u64, code: &'static str, reason: String, raw: &RawRecord) {
        self.parsed.rejected.push(RecordOutcome {
            line,
            code,
            reason: Some(reason),
            nhs_number: raw.get(0).map(|text| text.chars().take(20).collect()),
            local_reference: raw.get(6).map(|text| text.chars().take(64).collect()),
        });
    }

    fn plan(&self, raw: &RawRecord) -> Result<Plan, (&'static str, String)> {
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
        Plan::new(fields).map_err(|error| reject(error.to_string()))
    }

    fn malformed(self, reason: String) -> Result<ParsedUpload, ReadFailure> {
        Ok(ParsedUpload {
            malformed: Some(reason),
            mode: self.parsed.mode,
            ..ParsedUpload::default()
        })
    }

    /// Ends the file: a plan sent twice keeps its first row, and each
    /// repeat is taken out of the spool and rejected.
    fn finish(mut self) -> Result<ParsedUpload, ReadFailure> {
        if let Some(error) = self.spool_error {
            return Err(ReadFailure::Spool(error));
        }
        let spool = self.spool.finish().map_err(ReadFailure::Spool)?;
        let duplicates = self.duplicates.finish().map_err(ReadFailure::Spool)?;
        if duplicates.is_empty() {
            self.parsed.plans = Some(spool);
            return Ok(self.parsed);
        }
        let unreadable =
            |error: StoreError| ReadFailure::Spool(io::Error::other(error.to_string()));
        let mut kept = PlanSpoolWriter::new(self.la).map_err(ReadFailure::Spool)?;
        let spooled = Plans::Spooled(spool);
        let mut chunks = spooled.chunks(4096).map_err(unreadable)?;
        let mut repeats = duplicates.iter().peekable();
        let mut index = 0u64;
        while let Some(chunk) = chunks.next_chunk().map_err(unreadable)? {
            for plan in chunk.iter() {
                match repeats.next_if(|repeat| repeat.index == index) {
                    Some(repeat) => self.parsed.rejected.push(RecordOutcome {
                        line: repeat.line,
                        code: "CPR07",
                        reason: Some(format!(
                            "the same plan (NHS number, plan type and start date) is already on line {}",
                            repeat.first_line
                        )),
                        nhs_number: Some(plan.nhs_number().digits()),
                        local_reference: plan.local_reference().map(|r| r.as_str().to_owned()),
                    }),
                    None => kept.push(plan).map_err(ReadFailure::Spool)?,
                }
                index += 1;
            }
        }
        self.parsed.accepted -= duplicates.len() as u64;
        if self.list_accepted {
            let repeated: HashSet<u64> = duplicates.iter().map(|repeat| repeat.line).collect();
            self.parsed
                .accepted_records
                .retain(|record| !repeated.contains(&record.line));
        }
        self.parsed.rejected.sort_by_key(|record| record.line);
        self.parsed.plans = Some(kept.finish().map_err(ReadFailure::Spool)?);
        Ok(self.parsed)
    }
}

/// Checks a CSV file as it is read: a header row naming known columns in
/// any order (the first three required), UTF-8 with or without a BOM, CRLF
/// or LF. Reading stops at `limit` bytes.
pub fn parse_csv(
    input: impl Read,
    limit: u64,
    la: LaCode,
    today: Date,
    list_accepted: bool,
) -> Result<ParsedUpload, ReadFailure> {
    let mut checker = Checker::new(la, today, list_accepted)?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .buffer_capacity(64 * 1024)
        .from_reader(LineCounter::new(Limited::new(input, limit)));
    let header = match reader.headers() {
        Ok(header) => header.clone(),
        Err(error) => {
            return match body_failure(error, limit) {
                Ok(error) => checker.malformed(format!("the header row cannot be read: {error}")),
                Err(failure) => Err(failure),
            };
        }
    };
    if header.iter().all(|name| name.trim().is_empty()) {
        return checker.malformed("the file is empty; send a header row naming the columns".into());
    }
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
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = reader
                    .get_ref()
                    .line_at(record.position().map_or(0, csv::Position::byte));
                if record.len() == 1 && record.get(0).is_some_and(|field| field.trim().is_empty()) {
                    continue;
                }
                if record.len() != positions.len() {
                    let reason = format!(
                        "the row has {} fields but the header names {} columns",
                        record.len(),
                        positions.len()
                    );
                    checker.reject(line, "CPR07", reason, &RawRecord::default());
                    continue;
                }
                let mut raw = RawRecord::default();
                for (field, column) in record.iter().zip(&positions) {
                    raw.values[*column] = Some(field.to_owned());
                }
                checker.check(line, &raw);
            }
            Err(error) => {
                let line = reader
                    .get_ref()
                    .line_at(error.position().map_or(0, csv::Position::byte));
                return match body_failure(error, limit) {
                    Ok(error) if matches!(error.kind(), csv::ErrorKind::Utf8 { .. }) => {
                        checker.malformed(format!("line {line} is not UTF-8 text"))
                    }
                    Ok(error) => checker.malformed(format!(
                        "the file cannot be read as CSV at line {line}: {error}"
                    )),
                    Err(failure) => Err(failure),
                };
            }
        }
    }
    checker.finish()
}

/// Separates a failure to read the body from a fault in the file.
fn body_failure(error: csv::Error, limit: u64) -> Result<csv::Error, ReadFailure> {
    if !error.is_io_error() {
        return Ok(error);
    }
    match error.into_kind() {
        csv::ErrorKind::Io(error) => Err(read_failure(error, limit)),
        _ => Err(ReadFailure::Body(io::Error::other(
            "the body could not be read",
        ))),
    }
}

/// Passes bytes through while noting where lines end, so that a record's
/// byte offset gives its line. The csv crate's own line numbers drift on
/// CRLF files. Only the line ends the csv reader has read ahead of the
/// record in hand are kept, so memory stays bounded by its buffer.
struct LineCounter<R> {
    inner: R,
    read: u64,
    ahead: RefCell<VecDeque<u64>>,
    passed: Cell<u64>,
}

impl<R> LineCounter<R> {
    fn new(inner: R) -> Self {
        LineCounter {
            inner,
            read: 0,
            ahead: RefCell::new(VecDeque::new()),
            passed: Cell::new(0),
        }
    }

    /// The line of the record starting at `offset`, for offsets visited in
    /// increasing order. After a CRLF the csv crate reports the record as
    /// starting at the `\n`, so that byte is counted too.
    fn line_at(&self, offset: u64) -> u64 {
        let mut ahead = self.ahead.borrow_mut();
        while ahead.front().is_some_and(|&end| end <= offset) {
            ahead.pop_front();
            self.passed.set(self.passed.get() + 1);
        }
        self.passed.get() + 1
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        let ahead = self.ahead.get_mut();
        for (at, _) in buf[..read].iter().enumerate().filter(|(_, b)| **b == b'\n') {
            ahead.push_back(self.read + at as u64);
        }
        self.read += read as u64;
        Ok(read)
    }
}

/// Checks a JSON file as it is read: `{"mode": ..., "records": [{the same
/// fields}]}`, every value a string (or null for an absent optional field).
/// Reading stops at `limit` bytes.
pub fn parse_json(
    input: impl Read,
    limit: u64,
    la: LaCode,
    today: Date,
    list_accepted: bool,
) -> Result<ParsedUpload, ReadFailure> {
    let mut checker = Checker::new(la, today, list_accepted)?;
    let input = BufReader::with_capacity(64 * 1024, Limited::new(input, limit));
    let mut deserializer = serde_json::Deserializer::from_reader(input);
    let outcome = Document(&mut checker)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    match outcome {
        Ok(()) => checker.finish(),
        Err(error) => match error.io_error_kind() {
            Some(io::ErrorKind::FileTooLarge) => Err(ReadFailure::TooLarge { limit }),
            Some(kind) => Err(ReadFailure::Body(io::Error::new(kind, error.to_string()))),
            None => checker.malformed(format!(
                "the body is not a JSON object {{\"mode\": ..., \"records\": [...]}}: {error}"
            )),
        },
    }
}

/// The JSON document, visited key by key so that records are checked as
/// they arrive.
struct Document<'a>(&'a mut Checker);

impl<'de> DeserializeSeed<'de> for Document<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Document<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("an object with \"mode\" and \"records\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut has_records = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "mode" => match map.next_value::<Value>()? {
                    Value::Null => {}
                    Value::String(mode) => self.0.parsed.mode = Some(mode),
                    _ => {
                        return Err(de::Error::custom(
                            "\"mode\" must be \"changes\" or \"snapshot\"",
                        ));
                    }
                },
                "records" if has_records => {
                    return Err(de::Error::custom("the body names \"records\" twice"));
                }
                "records" => {
                    map.next_value_seed(Records(self.0))?;
                    has_records = true;
                }
                unknown => {
                    return Err(de::Error::custom(format!(
                        "the body has the field {unknown:?}; only \"mode\" and \"records\" may be sent"
                    )));
                }
            }
        }
        if has_records {
            Ok(())
        } else {
            Err(de::Error::custom("the body needs a \"records\" array"))
        }
    }
}

struct Records<'a>(&'a mut Checker);

impl<'de> DeserializeSeed<'de> for Records<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Records<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a \"records\" array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut records: A) -> Result<(), A::Error> {
        let mut line = 0u64;
        while let Some(record) = records.next_element::<Value>()? {
            line += 1;
            let Value::Object(fields) = record else {
                return Err(de::Error::custom(format!("record {line} is not an object")));
            };
            let mut raw = RawRecord::default();
            let mut type_error = None;
            for (name, value) in fields {
                let Some(column) = COLUMNS.iter().position(|known| *known == name) else {
                    return Err(de::Error::custom(format!(
                        "record {line} has the field {name:?}, which may not be sent; the fields are {}",
                        COLUMNS.join(", ")
                    )));
                };
                match value {
                    Value::String(text) => raw.values[column] = Some(text),
                    Value::Null => {}
                    _ => type_error = Some(format!("{name} must be a string")),
                }
            }
            match type_error {
                Some(reason) => self.0.reject(line, "CPR07", reason, &raw),
                None => self.0.check(line, &raw),
            }
        }
        Ok(())
    }
}

fn file_code(parsed: &ParsedUpload) -> &'static str {
    match (
        parsed.malformed.is_some(),
        parsed.accepted,
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
        let (limit, list_accepted) = (self.limits.upload_bytes as u64, request.list_accepted);
        // Reading and checking a large file is seconds of blocking work:
        // keep it off the async workers.
        let mut parsed = tokio::task::spawn_blocking(move || match format {
            UploadFormat::Csv => parse_csv(body, limit, la, today, list_accepted),
            UploadFormat::Json => parse_json(body, limit, la, today, list_accepted),
        })
        .await
        .map_err(|error| CoreError::Internal(format!("the upload check failed: {error}")))??;

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
            parsed = ParsedUpload {
                malformed: parsed.malformed,
                ..ParsedUpload::default()
            };
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
        if list_accepted {
            records.append(&mut parsed.accepted_records);
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
            accepted: parsed.accepted,
            rejected: parsed.rejected.len() as u64,
            withdrawn: 0,
            idempotency_key: request.idempotency_key.clone(),
            records: serde_json::to_value(&records)
                .map_err(|error| CoreError::Internal(error.to_string()))?,
        };
        let applies = parsed.malformed.is_none() && (parsed.accepted > 0 || snapshot.is_some());
        let batch = match parsed.plans {
            Some(spool) if applies => Some(PlanBatch {
                la,
                batch_id: upload.id,
                plans: Plans::Spooled(spool),
                snapshot,
                at: upload.received_at,
            }),
            _ => None,
        };
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

/// The acknowledgement's records, rejected first (each in line order), as
/// they are shown to people; accepted ones follow where they were kept.
pub fn records_rejected_first(upload: &UploadRecord) -> Vec<&Value> {
    let mut records: Vec<&Value> = upload
        .records
        .as_array()
        .map(|records| records.iter().collect())
        .unwrap_or_default();
    records.sort_by_key(|record| {
        (
            record["code"] == "CPR06",
            record["line"].as_u64().unwrap_or(0),
        )
    });
    records
}

/// The acknowledgement's records as CSV, rejected first, for an LA team to
/// work through in a spreadsheet; text cells cannot run as formulas.
pub fn acknowledgement_csv(upload: &UploadRecord) -> Result<String, CoreError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let failed =
        |error: csv::Error| CoreError::Internal(format!("the acknowledgement's CSV: {error}"));
    writer
        .write_record(["line", "code", "reason", "nhs_number", "local_reference"])
        .map_err(failed)?;
    for record in records_rejected_first(upload) {
        let text = |field: &str| crate::reports::inert(record[field].as_str().unwrap_or_default());
        writer
            .write_record([
                record["line"].as_u64().unwrap_or(0).to_string(),
                text("code"),
                text("reason"),
                text("nhs_number"),
                text("local_reference"),
            ])
            .map_err(failed)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|error| CoreError::Internal(format!("the acknowledgement's CSV: {error}")))?;
    String::from_utf8(bytes)
        .map_err(|error| CoreError::Internal(format!("the acknowledgement's CSV: {error}")))
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

    fn csv(text: &[u8]) -> ParsedUpload {
        parse_csv(text, 1 << 20, la(), TODAY, true).unwrap()
    }

    fn json(text: &[u8]) -> ParsedUpload {
        parse_json(text, 1 << 20, la(), TODAY, true).unwrap()
    }

    fn accepted_lines(parsed: &ParsedUpload) -> Vec<u64> {
        parsed.accepted_records.iter().map(|r| r.line).collect()
    }

    fn spooled(parsed: ParsedUpload) -> Vec<Plan> {
        let plans = Plans::Spooled(parsed.plans.unwrap());
        let mut chunks = plans.chunks(100).unwrap();
        let mut all = Vec::new();
        while let Some(chunk) = chunks.next_chunk().unwrap() {
            all.extend_from_slice(&chunk);
        }
        all
    }

    #[test]
    fn a_good_csv_in_any_column_order_with_bom_and_crlf() {
        let csv = "\u{FEFF}plan_type,start_date,nhs_number,local_reference\r\nCPP,2026-01-05,943 476 5919,CP-1\r\nLAC,2025-06-01,9990000018,\r\n";
        let parsed = self::csv(csv.as_bytes());
        assert_eq!(parsed.malformed, None);
        assert_eq!(parsed.accepted, 2);
        assert_eq!(accepted_lines(&parsed), vec![2, 3], "the header is line 1");
        assert_eq!(file_code(&parsed), "CPF02");
        let plans = spooled(parsed);
        assert_eq!(plans[0].local_reference().unwrap().as_str(), "CP-1");
        assert_eq!(plans[1].local_reference(), None);
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
        let parsed = self::csv(csv.as_bytes());
        assert_eq!(parsed.malformed, None);
        assert_eq!(accepted_lines(&parsed), vec![2, 13]);
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
            let parsed = self::csv(csv);
            let reason = parsed.malformed.clone().unwrap_or_default();
            assert!(reason.contains(expected), "{reason:?} lacks {expected:?}");
            assert!(parsed.accepted == 0 && parsed.rejected.is_empty() && parsed.plans.is_none());
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
        let parsed = csv(b"nhs_number,plan_type,start_date\n123,CPP,2026-01-05\n");
        assert_eq!(file_code(&parsed), "CPF04");
    }

    #[test]
    fn json_records_are_checked_alike() {
        let body = json!({"mode": "snapshot", "records": [
            {"nhs_number": "9434765919", "plan_type": "CPP", "start_date": "2026-01-05", "end_date": null},
            {"nhs_number": "9434765918", "plan_type": "CPP", "start_date": "2026-01-05"},
            {"nhs_number": 9990000018u64, "plan_type": "LAC", "start_date": "2026-01-05"}
        ]});
        let parsed = json(body.to_string().as_bytes());
        assert_eq!(parsed.mode.as_deref(), Some("snapshot"));
        assert_eq!(parsed.accepted, 1);
        assert_eq!(codes(&parsed), vec![(2, "CPR04"), (3, "CPR07")]);
        let extra = json!({"records": [{"nhs_number": "9434765919", "plan_type": "CPP", "start_date": "2026-01-05", "reason": "neglect"}]});
        let parsed = json(extra.to_string().as_bytes());
        assert!(
            parsed
                .malformed
                .unwrap()
                .contains("\"reason\", which may not be sent")
        );
        let parsed = json(b"[1,2]");
        assert!(parsed.malformed.is_some());
        let parsed = json(br#"{"records": [], "extra": 1}"#);
        assert!(parsed.malformed.unwrap().contains("\"extra\""));
        let parsed = json(br#"{"mode": "changes"}"#);
        assert!(
            parsed
                .malformed
                .unwrap()
                .contains("needs a \"records\" array")
        );
        let parsed = json(br#"{"records": [{"nhs_number": "9434765919"}, 7]}"#);
        assert!(
            parsed
                .malformed
                .unwrap()
                .contains("record 2 is not an object")
        );
        let parsed = json(br#"{"records": []} trailing"#);
        assert!(parsed.malformed.is_some());
        let parsed = json(br#"{"records": [], "records": []}"#);
        assert!(parsed.malformed.unwrap().contains("twice"));
    }

    #[test]
    fn a_file_over_the_limit_is_too_large_not_malformed() {
        let body = b"nhs_number,plan_type,start_date\n9434765919,CPP,2026-01-05\n";
        let exact = body.len() as u64;
        assert!(parse_csv(&body[..], exact, la(), TODAY, false).is_ok());
        assert!(matches!(
            parse_csv(&body[..], exact - 1, la(), TODAY, false),
            Err(ReadFailure::TooLarge { limit }) if limit == exact - 1
        ));
        let json_body = br#"{"records": [{"nhs_number": "9434765919", "plan_type": "CPP", "start_date": "2026-01-05"}]}"#;
        assert!(matches!(
            parse_json(&json_body[..], 20, la(), TODAY, false),
            Err(ReadFailure::TooLarge { limit: 20 })
        ));
    }

    #[test]
    fn lines_are_counted_across_reads_of_any_size() {
        // A reader that hands over three bytes at a time, as a slow network would.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(3).min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut text = String::from("nhs_number,plan_type,start_date\r\n");
        for n in 0..2000 {
            if n == 1500 {
                text.push_str("\"999 000 0018\",CPP,\"2026-01-05\"\r\n\r\n");
            }
            text.push_str(if n % 2 == 0 {
                "9434765919,CPP,2026-01-05\r\n"
            } else {
                "123,CPP,2026-01-05\n"
            });
        }
        let parsed = parse_csv(Trickle(text.as_bytes()), 1 << 20, la(), TODAY, true).unwrap();
        assert_eq!(accepted_lines(&parsed), vec![2, 1502]);
        assert_eq!(parsed.rejected[0].line, 3);
        let last = parsed.rejected.last().unwrap();
        assert_eq!((last.line, last.code), (2003, "CPR04"));
    }
}
