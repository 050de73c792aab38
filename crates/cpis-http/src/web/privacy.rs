//! The privacy officer's pages: who looked at which child, by patient, by
//! user or by organisation over a date range (each report itself logged),
//! and whether the audit log verifies.

use axum::Extension;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
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
    App, Care, PageError, Section, Viewer, care_card, described_by, error_of, error_summary,
    field_error, long_time, page, respond, row, table,
};
use crate::auth::Caller;
use crate::fhir::request_id;

/// Rows on one page of a report.
const ROWS_PER_PAGE: usize = 50;
/// The CSV reads the report in the API's largest pages, to at most this many rows.
const CSV_PAGE: usize = 1_000;
const CSV_MOST: usize = 100_000;

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

/// The empty report form. Reports run by POST: running one writes it to
/// the log, and an NHS number never sits in an address.
pub(crate) async fn reports<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let viewer = Viewer::of(&app, &caller).await;
    respond(
        StatusCode::OK,
        report_page(&viewer, &ReportForm::default(), &[], None),
    )
}

pub(crate) async fn run_report<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    id: Option<Extension<RequestId>>,
    form: Result<Form<ReportForm>, FormRejection>,
) -> Response {
    let viewer = Viewer::of(&app, &caller).await;
    let form = form.map(|Form(form)| form).unwrap_or_default();
    let after = form.after.clone();
    match run(
        &app,
        &caller,
        &viewer,
        &form,
        &after,
        &request_id(id),
        ROWS_PER_PAGE,
    )
    .await
    {
        Ok(found) => respond(
            StatusCode::OK,
            report_page(&viewer, &form, &[], Some(found)),
        ),
        Err(refused) => refused,
    }
}

/// Runs the report the form asks for, one page from `after`; when the form
/// is wrong, or the report cannot be run, the page to show instead.
async fn run<S: Store>(
    app: &cpis_core::Cpis<S>,
    caller: &Caller,
    viewer: &Viewer,
    form: &ReportForm,
    after: &str,
    request_id: &str,
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
        Some(after),
        limit,
        request_id,
    )
    .await
    .map(|found| (asked.from, asked.to, found))
    .map_err(|error| PageError::for_viewer(error, viewer.clone()).into_response())
}

/// The form's question as hidden fields, for the buttons that ask it again.
fn asked_again(viewer: &Viewer, form: &ReportForm) -> Markup {
    html! {
        (viewer.csrf_field())
        input type="hidden" name="by" value=(form.by);
        input type="hidden" name="subject" value=(form.subject);
        input type="hidden" name="from" value=(form.from);
        input type="hidden" name="to" value=(form.to);
    }
}

fn report_page(
    viewer: &Viewer,
    form: &ReportForm,
    errors: &[(&'static str, String)],
    found: Option<(Date, Date, cpis_core::reports::ReportPage)>,
) -> Markup {
    let by = if form.by.is_empty() {
        "nhs_number"
    } else {
        form.by.as_str()
    };
    let date_field = |id: &'static str, label: &'static str, value: &str| {
        let error = error_of(errors, id);
        html! {
            div."nhsuk-grid-column-one-half" {
                div.nhsuk-form-group."nhsuk-form-group--error"[error.is_some()] {
                    label."nhsuk-label nhsuk-label--s" for=(id) { (label) }
                    (field_error(id, error))
                    input class={ "nhsuk-input nhsuk-input--width-10" @if error.is_some() { " nhsuk-input--error" } } id=(id) name=(id) type="date" value=(value) aria-describedby=[described_by(id, false, error.is_some())];
                }
            }
        }
    };
    let subject_error = error_of(errors, "subject");
    let title = if errors.is_empty() {
        "Access reports"
    } else {
        "Error: Access reports"
    };
    let content = html! {
        (error_summary(errors))
        h1 { "Access reports" }
        p { "Who looked at which child, when and from where. Each report you run is itself recorded in the audit log." }
        form action="/app/reports" method="post" novalidate {
            (viewer.csrf_field())
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
                (field_error("subject", subject_error))
                input class={ "nhsuk-input nhsuk-input--width-20" @if subject_error.is_some() { " nhsuk-input--error" } } id="subject" name="subject" type="text" spellcheck="false" value=(form.subject) aria-describedby=[described_by("subject", false, subject_error.is_some())];
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
                form action="/app/reports/csv" method="post" {
                    (asked_again(viewer, form))
                    button."nhsuk-button nhsuk-button--secondary" type="submit" data-module="nhsuk-button" { "Download as CSV" }
                }
                (table("report", "Accesses", &["When", "NHS number", "Who", "Where", "Care"], html! {
                    @for record in &found.items {
                        tr.nhsuk-table__row {
                            td.nhsuk-table__cell { (long_time(record.at)) }
                            td."nhsuk-table__cell cpis-nowrap" { (record.nhs_number) }
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
                    form action="/app/reports" method="post" {
                        (asked_again(viewer, form))
                        input type="hidden" name="after" value=(next);
                        button."nhsuk-button nhsuk-button--secondary" type="submit" data-module="nhsuk-button" { "Later accesses" }
                    }
                }
            }
        }
    };
    page(title, Some(viewer), Section::Reports, content)
}

/// The whole report as CSV: every page, up to [`CSV_MOST`] rows; each page
/// read is a report in the log, as the API's are.
pub(crate) async fn report_download<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    id: Option<Extension<RequestId>>,
    form: Result<Form<ReportForm>, FormRejection>,
) -> Result<Response, PageError> {
    let viewer = Viewer::of(&app, &caller).await;
    let form = form.map(|Form(form)| form).unwrap_or_default();
    let request_id = request_id(id);
    let mut items = Vec::new();
    let mut after = String::new();
    let complete = loop {
        let (_, _, page) =
            match run(&app, &caller, &viewer, &form, &after, &request_id, CSV_PAGE).await {
                Ok(found) => found,
                Err(refused) => return Ok(refused),
            };
        items.extend(page.items);
        match page.next {
            Some(next) if items.len() < CSV_MOST => after = next,
            Some(_) => break false,
            None => break true,
        }
    };
    let found = cpis_core::reports::ReportPage { items, next: None };
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
    if !complete {
        // The first rows only: a narrower date range gets the rest.
        headers.insert("x-truncated", HeaderValue::from_static("true"));
    }
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
    if !app.start_verification() {
        return Err(PageError::for_viewer(
            cpis_core::CoreError::NotFound("this server keeps no signed log".into()),
            viewer,
        ));
    }
    // A small log is checked in a moment: show its result at once.
    for _ in 0..40 {
        if !app.verifying() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
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
            None if !app.verifying() => {
                p { "The log has not been checked since this server started." }
            }
            None => {}
        }
        @if app.verifying() {
            p data-testid="verifying" { "A check of the whole log is running. Reload this page to see its result." }
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
