//! The privacy officer's pages: who looked at which child, by patient, by
//! user or by organisation over a date range (each report itself logged),
//! and whether the audit log verifies.

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cpis_core::reports::{ReportSubject, report_csv};
use cpis_domain::{NhsNumber, OdsCode, format_iso_date, parse_iso_date};
use cpis_store::Store;
use maud::{Markup, html};
use serde::Deserialize;
use time::Date;
use tower_http::request_id::RequestId;

use super::{
    App, Care, PageError, Section, Viewer, care_card, error_summary, long_time, page, respond, row,
    spaced, table,
};
use crate::auth::Caller;
use crate::fhir::request_id;

/// Rows on one page of a report; the CSV takes up to the API's most.
const ROWS_PER_PAGE: usize = 50;
const CSV_ROWS: usize = 1_000;

#[derive(Deserialize, Default, Clone)]
pub(crate) struct ReportForm {
    #[serde(default)]
    by: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    after: String,
}

/// A report asked for, checked: what is wrong with it, field by field.
struct Asked {
    subject: ReportSubject,
    from: Date,
    to: Date,
}

fn check(form: &ReportForm, today: Date) -> Result<Asked, Vec<(&'static str, String)>> {
    let mut errors = Vec::new();
    let subject = form.subject.trim();
    let subject = match form.by.as_str() {
        _ if subject.is_empty() => {
            errors.push(("subject", "Enter who or what to report on".to_owned()));
            None
        }
        "user" => Some(ReportSubject::User(subject.to_owned())),
        "organisation" => match OdsCode::parse(subject) {
            Ok(code) => Some(ReportSubject::Organisation(code)),
            Err(_) => {
                errors.push((
                    "subject",
                    "Enter an ODS organisation code, like RJ1 or ZZED000".to_owned(),
                ));
                None
            }
        },
        _ => match NhsNumber::parse(subject) {
            Ok(number) => Some(ReportSubject::NhsNumber(number)),
            Err(_) => {
                errors.push(("subject", "Enter a valid 10-digit NHS number".to_owned()));
                None
            }
        },
    };
    let date = |text: &str,
                field: &'static str,
                default: Date,
                errors: &mut Vec<(&'static str, String)>| {
        if text.trim().is_empty() {
            return Some(default);
        }
        match parse_iso_date(text.trim()) {
            Ok(date) => Some(date),
            Err(_) => {
                errors.push((field, "Enter a real date".to_owned()));
                None
            }
        }
    };
    let to = date(&form.to, "to", today, &mut errors);
    let from = date(
        &form.from,
        "from",
        to.unwrap_or(today) - time::Duration::days(365),
        &mut errors,
    );
    if let (Some(from), Some(to)) = (from, to)
        && from > to
    {
        errors.push((
            "from",
            "The start date must be on or before the end date".to_owned(),
        ));
    }
    match (subject, from, to) {
        (Some(subject), Some(from), Some(to)) if errors.is_empty() => {
            Ok(Asked { subject, from, to })
        }
        _ => Err(errors),
    }
}

pub(crate) async fn reports<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    id: Option<Extension<RequestId>>,
    query: Result<Query<ReportForm>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let viewer = Viewer::of(&app, &caller).await;
    let form = query.map(|Query(form)| form).unwrap_or_default();
    if form.subject.is_empty() && form.by.is_empty() {
        return respond(StatusCode::OK, report_page(&viewer, &form, &[], None));
    }
    match run(&app, &caller, &viewer, &form, id, ROWS_PER_PAGE).await {
        Ok(found) => respond(
            StatusCode::OK,
            report_page(&viewer, &form, &[], Some(found)),
        ),
        Err(refused) => refused,
    }
}

/// Runs the report the form asks for; when the form is wrong, or the
/// report cannot be run, the page to show instead.
async fn run<S: Store>(
    app: &cpis_core::Cpis<S>,
    caller: &Caller,
    viewer: &Viewer,
    form: &ReportForm,
    id: Option<Extension<RequestId>>,
    limit: usize,
) -> Result<(Date, Date, cpis_core::reports::ReportPage), Response> {
    let asked = check(form, app.clock().today()).map_err(|errors| {
        respond(
            StatusCode::BAD_REQUEST,
            report_page(viewer, form, &errors, None),
        )
    })?;
    app.access_report(
        &caller.principal,
        asked.subject,
        asked.from,
        asked.to,
        Some(form.after.as_str()),
        limit,
        &request_id(id),
    )
    .await
    .map(|found| (asked.from, asked.to, found))
    .map_err(|error| PageError::for_viewer(error, viewer.clone()).into_response())
}

fn query_string(form: &ReportForm, after: Option<&str>) -> String {
    let mut pairs = vec![
        ("by", form.by.clone()),
        ("subject", form.subject.clone()),
        ("from", form.from.clone()),
        ("to", form.to.clone()),
    ];
    if let Some(after) = after {
        pairs.push(("after", after.to_owned()));
    }
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

fn report_page(
    viewer: &Viewer,
    form: &ReportForm,
    errors: &[(&'static str, String)],
    found: Option<(Date, Date, cpis_core::reports::ReportPage)>,
) -> Markup {
    let error_of = |field: &str| {
        errors
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, message)| message.clone())
    };
    let by = if form.by.is_empty() {
        "nhs_number"
    } else {
        form.by.as_str()
    };
    let date_field = |id: &'static str, label: &'static str, value: &str| {
        let error = error_of(id);
        html! {
            div."nhsuk-grid-column-one-half" {
                div.nhsuk-form-group."nhsuk-form-group--error"[error.is_some()] {
                    label."nhsuk-label nhsuk-label--s" for=(id) { (label) }
                    @if let Some(message) = &error {
                        span.nhsuk-error-message id={ (id) "-error" } {
                            span.nhsuk-u-visually-hidden { "Error: " } (message)
                        }
                    }
                    input class={ "nhsuk-input nhsuk-input--width-10" @if error.is_some() { " nhsuk-input--error" } } id=(id) name=(id) type="date" value=(value);
                }
            }
        }
    };
    let subject_error = error_of("subject");
    let title = if errors.is_empty() {
        "Access reports"
    } else {
        "Error: Access reports"
    };
    let content = html! {
        (error_summary(errors))
        h1 { "Access reports" }
        p { "Who looked at which child, when and from where. Each report you run is itself recorded in the audit log." }
        form action="/app/reports" method="get" novalidate {
            div.nhsuk-form-group {
                fieldset.nhsuk-fieldset {
                    legend."nhsuk-fieldset__legend nhsuk-fieldset__legend--s" { "Report on" }
                    div."nhsuk-radios nhsuk-radios--inline" data-module="nhsuk-radios" {
                        @for (value, label) in [("nhs_number", "A patient (NHS number)"), ("user", "A user (user ID)"), ("organisation", "An organisation (ODS code)")] {
                            div.nhsuk-radios__item {
                                input.nhsuk-radios__input id={ "by-" (value) } name="by" type="radio" value=(value) checked[by == value];
                                label."nhsuk-label nhsuk-radios__label" for={ "by-" (value) } { (label) }
                            }
                        }
                    }
                }
            }
            div.nhsuk-form-group."nhsuk-form-group--error"[subject_error.is_some()] {
                label."nhsuk-label nhsuk-label--s" for="subject" { "NHS number, user ID or ODS code" }
                @if let Some(message) = &subject_error {
                    span.nhsuk-error-message id="subject-error" {
                        span.nhsuk-u-visually-hidden { "Error: " } (message)
                    }
                }
                input class={ "nhsuk-input nhsuk-input--width-20" @if subject_error.is_some() { " nhsuk-input--error" } } id="subject" name="subject" type="text" spellcheck="false" value=(form.subject);
            }
            div.nhsuk-grid-row {
                (date_field("from", "From (default: a year before the end)", &form.from))
                (date_field("to", "To (default: today)", &form.to))
            }
            button.nhsuk-button type="submit" data-module="nhsuk-button" { "Show accesses" }
        }
        @if let Some((from, to, found)) = &found {
            h2 { "Accesses from " (format_iso_date(*from)) " to " (format_iso_date(*to)) }
            @if found.items.is_empty() {
                p data-testid="report-empty" { "No accesses in this period." }
            } @else {
                p { a href={ "/app/reports/csv?" (query_string(form, None)) } download { "Download as CSV" } }
                (table("report", "Accesses", &["When", "NHS number", "Who", "Where", "Care"], html! {
                    @for record in &found.items {
                        tr.nhsuk-table__row {
                            td.nhsuk-table__cell { (long_time(record.at)) }
                            td."nhsuk-table__cell cpis-nowrap" { (spaced(record.nhs_number)) }
                            td.nhsuk-table__cell { (record.user_name) br; span.nhsuk-body-s { (record.role_name) ", " (record.user_id) } }
                            td.nhsuk-table__cell { (record.organisation_name) br; span.nhsuk-body-s { (record.organisation_code.as_str()) } }
                            td.nhsuk-table__cell {
                                @if record.unscheduled { "Unscheduled" } @else { "Scheduled" }
                                br; span.nhsuk-body-s { (record.returned.len()) " plans shown" }
                            }
                        }
                    }
                }))
                @if let Some(next) = &found.next {
                    p { a href={ "/app/reports?" (query_string(form, Some(next))) } { "Later accesses" } }
                }
            }
        }
    };
    page(title, Some(viewer), Section::Reports, content)
}

pub(crate) async fn report_download<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    id: Option<Extension<RequestId>>,
    query: Result<Query<ReportForm>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let viewer = Viewer::of(&app, &caller).await;
    let form = query.map(|Query(form)| form).unwrap_or_default();
    let (_, _, found) = match run(&app, &caller, &viewer, &form, id, CSV_ROWS).await {
        Ok(found) => found,
        Err(refused) => return Ok(refused),
    };
    let csv = match report_csv(&found.items) {
        Ok(csv) => csv,
        Err(error) => return Err(PageError::for_viewer(error, viewer)),
    };
    let mut response = csv.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"accesses.csv\""),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

pub(crate) async fn audit_status<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, PageError> {
    let viewer = Viewer::of(&app, &caller).await;
    audit_page(&app, viewer).await
}

pub(crate) async fn verify<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, PageError> {
    let viewer = Viewer::of(&app, &caller).await;
    if let Err(error) = app.verify_log_now().await {
        return Err(PageError::for_viewer(error, viewer));
    }
    audit_page(&app, viewer).await
}

async fn audit_page<S: Store>(
    app: &cpis_core::Cpis<S>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    let checkpoint = match app.store().latest_checkpoint().await {
        Ok(checkpoint) => checkpoint,
        Err(error) => {
            return Err(PageError::for_viewer(
                cpis_core::CoreError::from(error),
                viewer,
            ));
        }
    };
    let last = app.last_verification();
    let content = html! {
        h1 { "Audit log" }
        p { "Every look at a child, every upload and every report is a leaf of a tamper-evident log (RFC 9162). Signed checkpoints let anyone holding an earlier one check that the log has only grown." }
        h2 { "Latest signed checkpoint" }
        @if let Some(checkpoint) = &checkpoint {
            dl.nhsuk-summary-list data-testid="checkpoint" {
                (row("Records in the log", html! { (checkpoint.size) }))
                (row("Signed", html! { (long_time(checkpoint.created_at)) }))
            }
            pre.nhsuk-body-s { code { (checkpoint.note) } }
        } @else {
            p { "No checkpoint has been signed yet: the first is made within seconds of the first record." }
        }
        h2 { "Verification" }
        @match &last {
            Some((at, report)) if report.failure.is_none() => {
                (care_card(Care::NonUrgent, "verified", "Result", "The log verifies", html! {
                    p { "Checked " (long_time(*at)) ": " (report.leaves) " records against " (report.checkpoints) " checkpoints; " (report.pruned) " removed under the retention rules, each covered by a retention record." }
                }))
            }
            Some((at, report)) => {
                (care_card(Care::Emergency, "not-verified", "Result", "The log does not verify", html! {
                    p { "Checked " (long_time(*at)) ": " (report.failure.clone().unwrap_or_default()) }
                    p { "Tell the service's operators and your information governance lead now." }
                }))
            }
            None => {
                p { "The log has not been checked since this server started." }
            }
        }
        form action="/app/audit/verify" method="post" {
            (viewer.csrf_field())
            button.nhsuk-button type="submit" data-module="nhsuk-button" { "Check the whole log now" }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page("Audit log", Some(&viewer), Section::Audit, content),
    ))
}
