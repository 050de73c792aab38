//! The privacy officer's access reports: who looked at one child, what one
//! user looked at, and every look from one organisation, over a date range,
//! a page at a time. Running a report is itself kept as a leaf of the log,
//! before any of it is shown.

use cpis_domain::{AccessRecord, NhsNumber, OdsCode, Permission, Principal, format_iso_date};
use cpis_store::log::ReportRecord;
use cpis_store::{AccessFilter, AccessQuery, Store};
use serde::Serialize;
use time::{Date, OffsetDateTime, Time};
use uuid::Uuid;

use crate::{CoreError, Cpis};

/// One page of a report, and the cursor for the next (none after the last).
#[derive(Debug, Clone)]
pub struct ReportPage {
    pub items: Vec<AccessRecord>,
    pub next: Option<String>,
}

/// One access as a report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ReportRow {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub nhs_number: String,
    pub user_id: String,
    pub user_name: String,
    pub role_code: String,
    pub role_name: String,
    pub activity_code: String,
    pub organisation_code: String,
    pub organisation_name: String,
    pub setting_type: String,
    pub unscheduled: bool,
    /// How many plans the look was shown.
    pub plans_shown: usize,
}

impl From<&AccessRecord> for ReportRow {
    fn from(record: &AccessRecord) -> Self {
        ReportRow {
            at: record.at,
            nhs_number: record.nhs_number.digits(),
            user_id: record.user_id.clone(),
            user_name: record.user_name.clone(),
            role_code: record.role_code.clone(),
            role_name: record.role_name.clone(),
            activity_code: record.activity_code.clone(),
            organisation_code: record.organisation_code.as_str().to_owned(),
            organisation_name: record.organisation_name.clone(),
            setting_type: record.setting_type.code().to_owned(),
            unscheduled: record.unscheduled,
            plans_shown: record.returned.len(),
        }
    }
}

/// A text cell a spreadsheet would not run as a formula: one starting with
/// `=`, `+`, `-`, `@`, tab or carriage return gets a leading apostrophe.
pub(crate) fn inert(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// The rows as CSV, with a header row; names are made inert for
/// spreadsheets, since a user or setting name is free text from outside.
pub fn report_csv(items: &[AccessRecord]) -> Result<String, CoreError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for item in items {
        let mut row = ReportRow::from(item);
        for text in [
            &mut row.user_id,
            &mut row.user_name,
            &mut row.role_code,
            &mut row.role_name,
            &mut row.organisation_name,
        ] {
            *text = inert(text);
        }
        writer
            .serialize(row)
            .map_err(|error| CoreError::Internal(format!("the report's CSV: {error}")))?;
    }
    if items.is_empty() {
        writer
            .write_record([
                "at",
                "nhs_number",
                "user_id",
                "user_name",
                "role_code",
                "role_name",
                "activity_code",
                "organisation_code",
                "organisation_name",
                "setting_type",
                "unscheduled",
                "plans_shown",
            ])
            .map_err(|error| CoreError::Internal(format!("the report's CSV: {error}")))?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|error| CoreError::Internal(format!("the report's CSV: {error}")))?;
    String::from_utf8(bytes).map_err(|error| CoreError::Internal(error.to_string()))
}

/// Whom a report is about, as asked.
#[derive(Debug, Clone)]
pub enum ReportSubject {
    NhsNumber(NhsNumber),
    User(String),
    Organisation(OdsCode),
}

fn parse_cursor(text: &str) -> Result<(OffsetDateTime, Uuid), CoreError> {
    let bad = || {
        CoreError::BadRequest(format!(
            "after={text:?} is not a cursor; pass the \"next\" of an earlier page"
        ))
    };
    let (micros, id) = text.split_once('.').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = cpis_store::encoding::from_micros(micros).map_err(|_| bad())?;
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

impl<S: Store> Cpis<S> {
    /// Accesses of `subject` from the start of `from` to the end of `to`
    /// (UTC days), oldest first, `limit` at a time after `after`. The
    /// report is kept in the log before anything is read; if it cannot be,
    /// nothing is shown.
    #[allow(clippy::too_many_arguments)]
    pub async fn access_report(
        &self,
        principal: &Principal,
        subject: ReportSubject,
        from: Date,
        to: Date,
        after: Option<&str>,
        limit: usize,
        request_id: &str,
    ) -> Result<ReportPage, CoreError> {
        if !principal.may(Permission::ViewAccessReports) {
            return Err(CoreError::Forbidden(
                "access reports are for privacy officers and Caldicott guardians (R0001, R5105)"
                    .into(),
            ));
        }
        if from > to {
            return Err(CoreError::BadRequest("from must not be after to".into()));
        }
        if !(1..=1000).contains(&limit) {
            return Err(CoreError::BadRequest("limit must be 1 to 1000".into()));
        }
        let after = after
            .filter(|text| !text.trim().is_empty())
            .map(parse_cursor)
            .transpose()?;
        let (report, subject_text, filter) = match subject {
            ReportSubject::NhsNumber(number) => (
                "nhs_number",
                number.digits(),
                AccessFilter::NhsNumber(number),
            ),
            ReportSubject::User(user) => ("user", user.clone(), AccessFilter::User(user)),
            ReportSubject::Organisation(code) => (
                "organisation",
                code.as_str().to_owned(),
                AccessFilter::Organisation(code),
            ),
        };
        self.store
            .record_report(ReportRecord {
                id: Uuid::now_v7(),
                at: self.clock.now(),
                user_id: principal.user_id.clone(),
                user_name: principal.display_name.clone(),
                role_code: principal.role_code.clone(),
                organisation_code: principal.organisation.code(),
                report: report.to_owned(),
                subject: subject_text,
                from,
                to,
                request_id: request_id.to_owned(),
            })
            .await
            .map_err(|error| {
                tracing::error!(%error, "a report could not be logged; nothing was shown");
                CoreError::Unavailable(
                    "the report could not be logged, so nothing is shown; try again shortly".into(),
                )
            })?;
        let end = to
            .next_day()
            .ok_or_else(|| CoreError::BadRequest("to is too far in the future".into()))?;
        let items = self
            .store
            .accesses(AccessQuery {
                filter,
                from: from.with_time(Time::MIDNIGHT).assume_utc(),
                to: end.with_time(Time::MIDNIGHT).assume_utc(),
                after,
                limit,
            })
            .await?;
        tracing::info!(report, from = %format_iso_date(from), to = %format_iso_date(to), rows = items.len(), "access report run");
        let next = (items.len() == limit)
            .then(|| items.last())
            .flatten()
            .map(|last| format!("{}.{}", cpis_store::encoding::micros(last.at), last.id));
        Ok(ReportPage { items, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreadsheet_formulas_are_made_inert() {
        assert_eq!(inert("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(inert("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(inert("Dr Ada Example"), "Dr Ada Example");
    }
}
