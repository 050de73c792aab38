//! The local authority team's pages: a dashboard, its plans, its uploads
//! with their acknowledgements, its notifications by webhook, and its
//! details. Every page acts for the person's own LA only.

use std::io;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cpis_core::Cpis;
use cpis_core::identity::own_la;
use cpis_core::overview::{PlanFilter, PlanState};
use cpis_core::upload::{
    UploadFormat, UploadMode, UploadRequest, acknowledgement_csv, records_rejected_first,
};
use cpis_domain::{LaCode, NhsNumber, PlanType, RepeatRule};
use cpis_store::{OutboxItem, OutboxKind, Store, UploadRecord};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use tokio_util::io::{StreamReader, SyncIoBridge};
use uuid::Uuid;

use super::{
    App, PageError, Section, Viewer, described_by, error_of, error_summary, field_error, long_date,
    long_time, page, respond, row, table,
};
use crate::auth::Caller;
use crate::error::HttpError;

/// Plans listed on one page.
const PLANS_PER_PAGE: usize = 50;

async fn viewer_and_la<S: Store>(
    app: &Cpis<S>,
    caller: &Caller,
) -> Result<(Viewer, LaCode), PageError> {
    let viewer = Viewer::of(app, caller).await;
    match own_la(&caller.principal) {
        Ok(la) => Ok((viewer, la)),
        Err(error) => Err(PageError::for_viewer(error, viewer)),
    }
}

/// A use case's refusal of what a form sent, with its status, to show on
/// the form; a failure of the service's own is an error page instead.
fn refused_on_form(
    error: impl Into<HttpError>,
    viewer: &Viewer,
) -> Result<(StatusCode, String), PageError> {
    let error = error.into();
    let status = error.status();
    if status.is_client_error() {
        Ok((status, error.public_message(status)))
    } else {
        Err(PageError::for_viewer(error, viewer.clone()))
    }
}

/// Runs a use case for a page, showing its failure as a page.
async fn attempt<T, E: Into<HttpError>>(
    viewer: &Viewer,
    work: impl Future<Output = Result<T, E>>,
) -> Result<T, PageError> {
    work.await
        .map_err(|error| PageError::for_viewer(error, viewer.clone()))
}

pub(crate) async fn dashboard<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, PageError> {
    let (viewer, la) = viewer_and_la(&app, &caller).await?;
    let plans = attempt(&viewer, app.la_plans(la, &PlanFilter::default(), 0, 0)).await?;
    let alerts = attempt(&viewer, app.open_repeat_alerts(la)).await?;
    let latest = attempt(&viewer, app.latest_notifications(la, 10)).await?;
    let content = html! {
        h1 { (viewer.organisation_name) }
        h2 { "Plans clinicians see now" }
        ul."nhsuk-grid-row nhsuk-card-group" {
            @for (plan_type, count) in &plans.shown_by_type {
                li."nhsuk-grid-column-one-third nhsuk-card-group__item" {
                    div.nhsuk-card {
                        div.nhsuk-card__content {
                            p."nhsuk-heading-xl nhsuk-u-margin-bottom-2" data-testid={ "count-" (plan_type.code()) } { (count) }
                            p.nhsuk-card__description {
                                a href={ "/app/la/plans?type=" (plan_type.code()) } { (plural(*plan_type)) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Repeat attendance alerts" }
        @if alerts.is_empty() {
            p data-testid="no-alerts" { "No child has been seen at several places within your alert window." }
        } @else {
            (notification_table("Open repeat attendance alerts", &alerts, "alerts"))
        }
        h2 { "Latest notifications" }
        @if latest.is_empty() {
            p { "Nobody has looked at your children's records in unscheduled care yet." }
        } @else {
            (notification_table("The newest notifications", &latest, "notifications"))
        }
        p { a href="/app/la/webhook" { "How notifications reach your case-management system" } }
    };
    Ok(respond(
        StatusCode::OK,
        page("Dashboard", Some(&viewer), Section::LaDashboard, content),
    ))
}

fn plural(plan_type: PlanType) -> &'static str {
    match plan_type {
        PlanType::ChildProtection => "Child protection plans",
        PlanType::LookedAfter => "Looked-after children",
        PlanType::UnbornChildProtection => "Unborn child protection plans",
    }
}

fn notification_table(caption: &str, items: &[OutboxItem], testid: &str) -> Markup {
    let text = |payload: &serde_json::Value, field: &str| {
        payload[field].as_str().unwrap_or_default().to_owned()
    };
    html! {
        (table(testid, caption, &["When", "NHS number", "What", "Where"], html! {
            @for item in items {
                @let payload = item.payload.to_value();
                tr.nhsuk-table__row {
                    td.nhsuk-table__cell { (long_time(item.created_at)) }
                    td."nhsuk-table__cell cpis-nowrap" {
                        (NhsNumber::parse(&text(&payload, "nhs_number")).map(|number| number.to_string()).unwrap_or_else(|_| text(&payload, "nhs_number")))
                    }
                    td.nhsuk-table__cell {
                        @if item.kind == OutboxKind::RepeatAttendance {
                            strong."nhsuk-tag nhsuk-tag--red" { "Repeat attendance" }
                            " seen at "
                            (payload["rule"]["organisations"].as_u64().unwrap_or(0))
                            " or more places within "
                            (payload["rule"]["days"].as_u64().unwrap_or(0))
                            " days; latest look by "
                        } @else {
                            "Looked at by "
                        }
                        (text(&payload, "user_name")) " (" (text(&payload, "role")) ")"
                    }
                    td.nhsuk-table__cell { (text(&payload, "organisation_name")) }
                }
            }
        }))
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct PlansQuery {
    #[serde(default)]
    nhs_number: String,
    #[serde(default, rename = "type")]
    plan_type: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    page: Option<String>,
}

/// The LA's plans, filtered by type and status, a page at a time.
pub(crate) async fn plans<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<PlansQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let mut query = query.map(|Query(query)| query).unwrap_or_default();
    // An NHS number is searched by POST, never kept in an address.
    query.nhs_number.clear();
    plans_page(&app, &caller, query).await
}

/// A search of the LA's plans by NHS number (and type and status).
pub(crate) async fn search_plans<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    form: Result<axum::Form<PlansQuery>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let query = form.map(|axum::Form(query)| query).unwrap_or_default();
    plans_page(&app, &caller, query).await
}

async fn plans_page<S: Store>(
    app: &Cpis<S>,
    caller: &Caller,
    query: PlansQuery,
) -> Result<Response, PageError> {
    let (viewer, la) = viewer_and_la(app, caller).await?;
    let mut problem = None;
    let nhs_number = if query.nhs_number.trim().is_empty() {
        None
    } else {
        match NhsNumber::parse(&query.nhs_number) {
            Ok(number) => Some(number),
            Err(_) => {
                problem = Some("Enter a valid 10-digit NHS number, or leave it empty".to_owned());
                None
            }
        }
    };
    let filter = PlanFilter {
        nhs_number,
        plan_type: PlanType::parse(&query.plan_type).ok(),
        state: PlanState::parse(&query.state),
    };
    let page_number = query
        .page
        .as_deref()
        .and_then(|page| page.trim().parse::<u64>().ok())
        .unwrap_or(1)
        .max(1);
    let found = if problem.is_some() {
        None
    } else {
        let offset = (page_number - 1).saturating_mul(PLANS_PER_PAGE as u64);
        Some(attempt(&viewer, app.la_plans(la, &filter, offset, PLANS_PER_PAGE)).await?)
    };
    let today = app.clock().today();
    let errors: Vec<(&str, String)> = problem
        .iter()
        .map(|message| ("nhs-number", message.clone()))
        .collect();
    let link = |page: u64| {
        let mut pairs = vec![("page", page.to_string())];
        for (key, value) in [("type", &query.plan_type), ("state", &query.state)] {
            if !value.is_empty() {
                pairs.push((key, value.clone()));
            }
        }
        format!(
            "/app/la/plans?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    };
    let content = html! {
        h1 { "Your plans" }
        (error_summary(&errors))
        form action="/app/la/plans" method="post" novalidate {
            (viewer.csrf_field())
            div.nhsuk-grid-row {
                div."nhsuk-grid-column-one-third" {
                    div.nhsuk-form-group."nhsuk-form-group--error"[problem.is_some()] {
                        label.nhsuk-label for="nhs-number" { "NHS number" }
                        (field_error("nhs-number", problem.as_deref()))
                        input."nhsuk-input nhsuk-input--code"."nhsuk-input--error"[problem.is_some()] id="nhs-number" name="nhs_number" type="text" inputmode="numeric" spellcheck="false" value=(query.nhs_number) aria-describedby=[described_by("nhs-number", false, problem.is_some())];
                    }
                }
                div."nhsuk-grid-column-one-third" {
                    div.nhsuk-form-group {
                        label.nhsuk-label for="plan-type" { "Plan type" }
                        select.nhsuk-select id="plan-type" name="type" {
                            option value="" selected[filter.plan_type.is_none()] { "All types" }
                            @for plan_type in PlanType::ALL {
                                option value=(plan_type.code()) selected[filter.plan_type == Some(plan_type)] { (plan_type.description()) }
                            }
                        }
                    }
                }
                div."nhsuk-grid-column-one-third" {
                    div.nhsuk-form-group {
                        label.nhsuk-label for="plan-state" { "Status" }
                        select.nhsuk-select id="plan-state" name="state" {
                            option value="" selected[filter.state.is_none()] { "Any status" }
                            @for state in PlanState::ALL {
                                option value=(state.code()) selected[filter.state == Some(state)] { (state.description()) }
                            }
                        }
                    }
                }
            }
            button."nhsuk-button nhsuk-button--secondary" type="submit" data-module="nhsuk-button" { "Show plans" }
        }
        @if let Some(found) = &found {
            p data-testid="plan-count" { (found.matching) " plans match." }
            @if !found.page.is_empty() {
                (table("plans", "Plans that match", &["NHS number", "Plan", "Started", "Ended", "Status", "Your reference"], html! {
                    @for plan in &found.page {
                        tr.nhsuk-table__row {
                            td."nhsuk-table__cell cpis-nowrap" { (plan.nhs_number()) }
                            td.nhsuk-table__cell { (plan.plan_type().description()) }
                            td.nhsuk-table__cell { (long_date(plan.start_date())) }
                            td.nhsuk-table__cell { (plan.end_date().map(long_date).unwrap_or_default()) }
                            td.nhsuk-table__cell { (PlanState::of(plan, today).description()) }
                            td.nhsuk-table__cell { (plan.local_reference().map(|r| r.as_str().to_owned()).unwrap_or_default()) }
                        }
                    }
                }))
                @let pages = found.matching.div_ceil(PLANS_PER_PAGE as u64);
                @if pages > 1 {
                    nav.nhsuk-pagination role="navigation" aria-label="Pagination" {
                        ul."nhsuk-list nhsuk-pagination__list" {
                            @if page_number > 1 {
                                li."nhsuk-pagination-item--previous" {
                                    a."nhsuk-pagination__link nhsuk-pagination__link--prev" href=(link(page_number - 1)) rel="prev" {
                                        span.nhsuk-pagination__title { "Previous" span.nhsuk-u-visually-hidden { " page" } }
                                        span.nhsuk-u-visually-hidden { ":" }
                                        span.nhsuk-pagination__page { "Page " (page_number - 1) " of " (pages) }
                                    }
                                }
                            }
                            @if page_number < pages {
                                li."nhsuk-pagination-item--next" {
                                    a."nhsuk-pagination__link nhsuk-pagination__link--next" href=(link(page_number + 1)) rel="next" {
                                        span.nhsuk-pagination__title { "Next" span.nhsuk-u-visually-hidden { " page" } }
                                        span.nhsuk-u-visually-hidden { ":" }
                                        span.nhsuk-pagination__page { "Page " (page_number + 1) " of " (pages) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let status = if problem.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(respond(
        status,
        page("Your plans", Some(&viewer), Section::LaPlans, content),
    ))
}

fn file_code_description(code: &str) -> &'static str {
    match code {
        "CPF01" => "File not read: it is malformed",
        "CPF02" => "All records accepted",
        "CPF03" => "Some records rejected",
        "CPF04" => "No records accepted",
        _ => "Unknown result",
    }
}

fn file_code_tag(code: &str) -> &'static str {
    match code {
        "CPF02" => "nhsuk-tag nhsuk-tag--green",
        "CPF03" => "nhsuk-tag nhsuk-tag--yellow",
        _ => "nhsuk-tag nhsuk-tag--red",
    }
}

pub(crate) async fn uploads<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, PageError> {
    let (viewer, la) = viewer_and_la(&app, &caller).await?;
    uploads_page(&app, viewer, la, None, StatusCode::OK).await
}

async fn uploads_page<S: Store>(
    app: &Cpis<S>,
    viewer: Viewer,
    la: LaCode,
    problem: Option<String>,
    status: StatusCode,
) -> Result<Response, PageError> {
    let recent = attempt(&viewer, app.uploads_of(la, 25)).await?;
    let errors: Vec<(&str, String)> = problem
        .iter()
        .map(|message| ("file", message.clone()))
        .collect();
    let content = html! {
        h1 { "Uploads" }
        (error_summary(&errors))
        div.nhsuk-grid-row {
            div."nhsuk-grid-column-two-thirds" {
                form action={ "/app/la/uploads?csrf_token=" (viewer.csrf_token) } method="post" enctype="multipart/form-data" novalidate {
                    div.nhsuk-form-group {
                        fieldset.nhsuk-fieldset {
                            legend."nhsuk-fieldset__legend nhsuk-fieldset__legend--m" {
                                h2.nhsuk-fieldset__heading { "Send a file of plans" }
                            }
                            div.nhsuk-radios data-module="nhsuk-radios" {
                                div.nhsuk-radios__item {
                                    input.nhsuk-radios__input id="mode-changes" name="mode" type="radio" value="changes" checked;
                                    label."nhsuk-label nhsuk-radios__label" for="mode-changes" { "Changes" }
                                    div."nhsuk-hint nhsuk-radios__hint" { "New and changed plans only." }
                                }
                                div.nhsuk-radios__item {
                                    input.nhsuk-radios__input id="mode-snapshot" name="mode" type="radio" value="snapshot";
                                    label."nhsuk-label nhsuk-radios__label" for="mode-snapshot" { "Snapshot" }
                                    div."nhsuk-hint nhsuk-radios__hint" { "All your current plans: plans not in the file are withdrawn." }
                                }
                            }
                        }
                    }
                    div.nhsuk-form-group."nhsuk-form-group--error"[problem.is_some()] {
                        label."nhsuk-label nhsuk-label--s" for="file" { "CSV or JSON file" }
                        div.nhsuk-hint id="file-hint" { "Columns: nhs_number, plan_type, start_date, and optionally end_date, delete_date, expected_delivery_date, local_reference." }
                        (field_error("file", problem.as_deref()))
                        input.nhsuk-file-upload__input id="file" name="file" type="file" accept=".csv,.json,text/csv,application/json" aria-describedby=[described_by("file", true, problem.is_some())];
                    }
                    button.nhsuk-button type="submit" data-module="nhsuk-button" { "Upload" }
                }
            }
        }
        h2 { "Recent uploads" }
        @if recent.is_empty() {
            p { "No uploads yet." }
        } @else {
            (table("uploads", "Recent uploads", &["Received", "Mode", "Result", "Accepted", "Rejected"], html! {
                @for upload in &recent {
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell {
                            a href={ "/app/la/uploads/" (upload.id) } { (long_time(upload.received_at)) }
                        }
                        td.nhsuk-table__cell { (upload.mode) }
                        td.nhsuk-table__cell { strong class=(file_code_tag(&upload.file_code)) { (upload.file_code) } " " (file_code_description(&upload.file_code)) }
                        td."nhsuk-table__cell nhsuk-table__cell--numeric" { (upload.accepted) }
                        td."nhsuk-table__cell nhsuk-table__cell--numeric" { (upload.rejected) }
                    }
                }
            }))
        }
    };
    Ok(respond(
        status,
        page("Uploads", Some(&viewer), Section::LaUploads, content),
    ))
}

/// A file from the upload form: streamed into the same checks as the API's
/// upload as it arrives, then the acknowledgement's page.
pub(crate) async fn upload<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, PageError> {
    let (viewer, la) = viewer_and_la(&app, &caller).await?;
    let Ok(mut multipart) = multipart else {
        return uploads_page(
            &app,
            viewer,
            la,
            Some("Send the file with the upload form".into()),
            StatusCode::BAD_REQUEST,
        )
        .await;
    };
    let mut mode = None;
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => {
                return uploads_page(
                    &app,
                    viewer,
                    la,
                    Some("Choose a file to upload".into()),
                    StatusCode::BAD_REQUEST,
                )
                .await;
            }
            Err(error) => {
                return uploads_page(
                    &app,
                    viewer,
                    la,
                    Some(format!("The form could not be read: {error}")),
                    StatusCode::BAD_REQUEST,
                )
                .await;
            }
        };
        match field.name() {
            Some("mode") => {
                // A mode is a word; anything longer is not read at all.
                let mut text = Vec::new();
                let mut field = field;
                while let Ok(Some(chunk)) = field.chunk().await {
                    text.extend_from_slice(&chunk);
                    if text.len() > 16 {
                        break;
                    }
                }
                mode = std::str::from_utf8(&text).ok().and_then(UploadMode::parse);
                if mode.is_none() {
                    return uploads_page(
                        &app,
                        viewer,
                        la,
                        Some("Choose changes or snapshot".into()),
                        StatusCode::BAD_REQUEST,
                    )
                    .await;
                }
            }
            Some("file") => {
                let name = field.file_name().unwrap_or_default().to_ascii_lowercase();
                if name.is_empty() {
                    return uploads_page(
                        &app,
                        viewer,
                        la,
                        Some("Choose a file to upload".into()),
                        StatusCode::BAD_REQUEST,
                    )
                    .await;
                }
                let format = if name.ends_with(".json")
                    || field.content_type() == Some("application/json")
                {
                    UploadFormat::Json
                } else {
                    UploadFormat::Csv
                };
                let outcome = stream_upload(&app, la, format, mode, field).await;
                return match outcome {
                    Ok(ack) => {
                        Ok(Redirect::to(&format!("/app/la/uploads/{}", ack.id)).into_response())
                    }
                    Err(error) => {
                        let error = HttpError::from(error);
                        let status = error.status();
                        let message = error.public_message(status);
                        uploads_page(&app, viewer, la, Some(message), status).await
                    }
                };
            }
            _ => {}
        }
    }
}

/// Feeds the form's file field to the upload use case through a channel:
/// the field borrows the form, the checks run on a thread of their own.
async fn stream_upload<S: Store>(
    app: &Cpis<S>,
    la: LaCode,
    format: UploadFormat,
    mode: Option<UploadMode>,
    mut field: axum::extract::multipart::Field<'_>,
) -> Result<UploadRecord, cpis_core::CoreError> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    let chunks = Box::pin(futures_util::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|chunk| (chunk, receiver)) },
    ));
    let body = SyncIoBridge::new(StreamReader::new(chunks));
    let pump = async move {
        loop {
            let chunk = match field.chunk().await {
                Ok(Some(chunk)) => Ok(chunk),
                Ok(None) => break,
                Err(error) => Err(io::Error::other(error)),
            };
            let failed = chunk.is_err();
            if sender.send(chunk).await.is_err() || failed {
                break;
            }
        }
    };
    let request = UploadRequest {
        la,
        format,
        body: Box::new(body),
        mode,
        force: false,
        idempotency_key: None,
        list_accepted: false,
    };
    let ((), outcome) = tokio::join!(pump, app.upload(request));
    Ok(outcome?.acknowledgement)
}

/// One of the person's own LA's uploads, by the id in its address.
async fn own_upload<S: Store>(
    app: &Cpis<S>,
    caller: &Caller,
    id: &str,
) -> Result<(Viewer, UploadRecord), PageError> {
    let (viewer, la) = viewer_and_la(app, caller).await?;
    let Ok(id) = Uuid::parse_str(id) else {
        return Err(PageError::for_viewer(HttpError::NotFound, viewer));
    };
    let upload = attempt(&viewer, app.upload_of(la, id)).await?;
    Ok((viewer, upload))
}

pub(crate) async fn upload_page<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (viewer, upload) = own_upload(&app, &caller, &id).await?;
    let records = records_rejected_first(&upload);
    let field = |record: &Value, name: &str| record[name].as_str().unwrap_or_default().to_owned();
    let content = html! {
        span.nhsuk-caption-l { "Upload received " (long_time(upload.received_at)) }
        h1 data-testid="file-code" { (upload.file_code) ": " (file_code_description(&upload.file_code)) }
        dl.nhsuk-summary-list {
            (row("Mode", html! { (upload.mode) }))
            (row("Records accepted", html! { span data-testid="accepted" { (upload.accepted) } }))
            (row("Records rejected", html! { span data-testid="rejected" { (upload.rejected) } }))
            @if upload.mode == "snapshot" {
                (row("Plans withdrawn", html! { (upload.withdrawn) }))
            }
        }
        @if records.is_empty() {
            p { "Every record was accepted." }
        } @else {
            h2 { "Records to look at" }
            p { a href={ "/app/la/uploads/" (upload.id) "/csv" } download { "Download these records as CSV" } }
            (table("records", "Records, rejected first", &["Line", "Result", "Reason", "NHS number", "Your reference"], html! {
                @for record in &records {
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell { (record["line"].as_u64().unwrap_or(0)) }
                        td.nhsuk-table__cell { (field(record, "code")) }
                        td.nhsuk-table__cell { (field(record, "reason")) }
                        td.nhsuk-table__cell { (field(record, "nhs_number")) }
                        td.nhsuk-table__cell { (field(record, "local_reference")) }
                    }
                }
            }))
        }
        p { a href="/app/la/uploads" { "Back to uploads" } }
    };
    Ok(respond(
        StatusCode::OK,
        page(
            "Upload acknowledgement",
            Some(&viewer),
            Section::LaUploads,
            content,
        ),
    ))
}

pub(crate) async fn upload_csv<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (viewer, upload) = own_upload(&app, &caller, &id).await?;
    let csv = attempt(&viewer, async { acknowledgement_csv(&upload) }).await?;
    let mut response = csv.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"acknowledgement-{}.csv\"",
        upload.id
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

pub(crate) async fn webhook<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, PageError> {
    let (viewer, la) = viewer_and_la(&app, &caller).await?;
    webhook_page(&app, viewer, la, Notice::None, StatusCode::OK).await
}

/// What the webhook page says on top of its status.
enum Notice {
    None,
    Secret(String),
    Replayed(u64),
    Problem(String),
}

async fn webhook_page<S: Store>(
    app: &Cpis<S>,
    viewer: Viewer,
    la: LaCode,
    notice: Notice,
    status: StatusCode,
) -> Result<Response, PageError> {
    let current = match app.webhook_status(la).await {
        Ok(current) => Some(current),
        Err(cpis_core::CoreError::NotFound(_)) => None,
        Err(error) => return Err(PageError::for_viewer(error, viewer)),
    };
    let failures = attempt(&viewer, app.failed_deliveries(la, 50)).await?;
    let errors: Vec<(&str, String)> = match &notice {
        Notice::Problem(message) => vec![("url", message.clone())],
        _ => Vec::new(),
    };
    let content = html! {
        h1 { "Notifications" }
        (error_summary(&errors))
        @match &notice {
            Notice::Secret(secret) => {
                div."nhsuk-notification-banner nhsuk-notification-banner--success" role="alert" aria-labelledby="secret-title" data-module="nhsuk-notification-banner" {
                    div.nhsuk-notification-banner__header {
                        h2.nhsuk-notification-banner__title id="secret-title" { "Webhook saved" }
                    }
                    div.nhsuk-notification-banner__content {
                        p.nhsuk-notification-banner__heading { "Copy the signing secret into your system now: it is not shown again." }
                        p { code data-testid="secret" { (secret) } }
                    }
                }
            }
            Notice::Replayed(count) => {
                div."nhsuk-notification-banner nhsuk-notification-banner--success" role="alert" aria-labelledby="replay-title" data-module="nhsuk-notification-banner" {
                    div.nhsuk-notification-banner__header {
                        h2.nhsuk-notification-banner__title id="replay-title" { "Sent again" }
                    }
                    div.nhsuk-notification-banner__content {
                        p.nhsuk-notification-banner__heading { (count) " notifications will be sent again." }
                    }
                }
            }
            _ => {}
        }
        p { "Every look at one of your children in unscheduled care, and every repeat attendance alert, is in your feed (" code { "GET /la/v1/notifications" } "). A webhook also pushes each one to your system as it happens, signed." }
        h2 { "Your webhook" }
        @if let Some(current) = &current {
            dl.nhsuk-summary-list data-testid="webhook" {
                (row("Address", html! { (current.url) }))
                (row("Since", html! { (long_time(current.created_at)) }))
                (row("Delivered", html! { (current.deliveries.delivered) }))
                (row("Waiting", html! { (current.deliveries.pending) }))
                (row("Failed", html! { (current.deliveries.failed) }))
                @if let Some(error) = &current.deliveries.last_error {
                    (row("Last error", html! { (error) }))
                }
            }
        } @else {
            p data-testid="no-webhook" { "No webhook: notifications are only in your feed." }
        }
        form action="/app/la/webhook" method="post" novalidate {
            (viewer.csrf_field())
            @let problem = match &notice {
                Notice::Problem(message) => Some(message.as_str()),
                _ => None,
            };
            div.nhsuk-form-group."nhsuk-form-group--error"[problem.is_some()] {
                label."nhsuk-label nhsuk-label--s" for="url" { @if current.is_some() { "Change the address" } @else { "Webhook address" } }
                div.nhsuk-hint id="url-hint" { "An https address of your case-management system. Saving makes a new signing secret." }
                (field_error("url", problem))
                input.nhsuk-input."nhsuk-input--error"[problem.is_some()] id="url" name="url" type="url" spellcheck="false"
                    aria-describedby=[described_by("url", true, problem.is_some())];
            }
            button."nhsuk-button nhsuk-button--secondary" type="submit" data-module="nhsuk-button" { "Save webhook" }
        }
        h2 { "Failed deliveries" }
        @if failures.is_empty() {
            p data-testid="no-failures" { "None." }
        } @else {
            p { "These could not be delivered in the retry period. Your feed still has them." }
            (table("failures", "Failed deliveries", &["Made", "Gave up", "Last error"], html! {
                @for failed in &failures {
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell { (long_time(failed.item.created_at)) }
                        td.nhsuk-table__cell { (long_time(failed.failed_at)) }
                        td.nhsuk-table__cell { (failed.last_error.clone().unwrap_or_default()) }
                    }
                }
            }))
            form action="/app/la/webhook/replay" method="post" {
                (viewer.csrf_field())
                button.nhsuk-button type="submit" data-module="nhsuk-button" { "Send them all again" }
            }
        }
    };
    Ok(respond(
        status,
        page("Notifications", Some(&viewer), Section::LaWebhook, content),
    ))
}

#[derive(Deserialize)]
pub(crate) struct WebhookForm {
    #[serde(default)]
    url: String,
}

pub(crate) async fn save_webhook<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    form: Result<axum::Form<WebhookForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let (viewer, la) = viewer_and_la(&app, &caller).await?;
    let url = form.map(|axum::Form(form)| form.url).unwrap_or_default();
    if url.trim().is_empty() {
        return webhook_page(
            &app,
            viewer,
            la,
            Notice::Problem("Enter the webhook's address".into()),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    match app.register_webhook(la, &url).await {
        Ok(registered) => {
            webhook_page(
                &app,
                viewer,
                la,
                Notice::Secret(registered.secret),
                StatusCode::OK,
            )
            .await
        }
        Err(error) => {
            let (status, message) = refused_on_form(error, &viewer)?;
            webhook_page(&app, viewer, la, Notice::Problem(message), status).await
        }
    }
}

pub(crate) async fn replay<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, PageError> {
    let (viewer, la) = viewer_and_la(&app, &caller).await?;
    let replayed = attempt(&viewer, app.replay_deliveries(la, None)).await?;
    webhook_page(&app, viewer, la, Notice::Replayed(replayed), StatusCode::OK).await
}

pub(crate) async fn settings<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, PageError> {
    let (viewer, la) = viewer_and_la(&app, &caller).await?;
    let current = attempt(&viewer, app.local_authority(la)).await?;
    let Some(current) = current else {
        return Err(PageError::for_viewer(HttpError::NotFound, viewer));
    };
    let form = SettingsForm {
        name: current.name.clone(),
        emergency_duty_number: current.emergency_duty_number.as_str().to_owned(),
        office_hours_number: current.office_hours_number.as_str().to_owned(),
        organisations: current.repeat_attendance.organisations.to_string(),
        days: current.repeat_attendance.days.to_string(),
    };
    Ok(respond(
        StatusCode::OK,
        settings_page(&viewer, &form, &[], false),
    ))
}

#[derive(Deserialize)]
pub(crate) struct SettingsForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    emergency_duty_number: String,
    #[serde(default)]
    office_hours_number: String,
    #[serde(default)]
    organisations: String,
    #[serde(default)]
    days: String,
}

pub(crate) async fn save_settings<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    form: Result<axum::Form<SettingsForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let (viewer, la) = viewer_and_la(&app, &caller).await?;
    let Ok(axum::Form(form)) = form else {
        return Err(PageError::for_viewer(
            HttpError::invalid("the form is incomplete; reload the page"),
            viewer,
        ));
    };
    let mut errors: Vec<(&str, String)> = Vec::new();
    if form.name.trim().is_empty() {
        errors.push(("name", "Enter the local authority's name".into()));
    }
    for (field, value, what) in [
        (
            "emergency-duty-number",
            &form.emergency_duty_number,
            "the emergency duty team's number",
        ),
        (
            "office-hours-number",
            &form.office_hours_number,
            "the office hours number",
        ),
    ] {
        if cpis_domain::PhoneNumber::parse(value).is_err() {
            errors.push((
                field,
                format!("Enter {what} as a UK phone number, like 01632 960000"),
            ));
        }
    }
    let mut whole = |field: &'static str, text: &str, least: u32, most: u32, what: &str| {
        let number = text
            .trim()
            .parse()
            .ok()
            .filter(|n| (least..=most).contains(n));
        if number.is_none() {
            errors.push((field, format!("Enter from {least} to {most} {what}")));
        }
        number
    };
    let organisations = whole(
        "organisations",
        &form.organisations,
        2,
        RepeatRule::MAX_ORGANISATIONS,
        "places",
    );
    let days = whole("days", &form.days, 1, RepeatRule::MAX_DAYS, "days");
    let rule = organisations
        .zip(days)
        .and_then(|(organisations, days)| RepeatRule::new(organisations, days).ok());
    if !errors.is_empty() {
        return Ok(respond(
            StatusCode::BAD_REQUEST,
            settings_page(&viewer, &form, &errors, false),
        ));
    }
    let saved = app
        .update_local_authority(
            la,
            form.name.trim(),
            &form.emergency_duty_number,
            &form.office_hours_number,
            rule,
        )
        .await;
    match saved {
        Ok(_) => Ok(respond(
            StatusCode::OK,
            settings_page(&viewer, &form, &[], true),
        )),
        Err(error) => {
            let (status, message) = refused_on_form(error, &viewer)?;
            let errors = vec![("name", message)];
            Ok(respond(
                status,
                settings_page(&viewer, &form, &errors, false),
            ))
        }
    }
}

fn settings_page(
    viewer: &Viewer,
    form: &SettingsForm,
    errors: &[(&str, String)],
    saved: bool,
) -> Markup {
    let input = |id: &'static str,
                 name: &'static str,
                 label: &'static str,
                 hint: &'static str,
                 value: &str,
                 width: &'static str| {
        let error = error_of(errors, id);
        html! {
            div.nhsuk-form-group."nhsuk-form-group--error"[error.is_some()] {
                label."nhsuk-label nhsuk-label--s" for=(id) { (label) }
                @if !hint.is_empty() {
                    div.nhsuk-hint id={ (id) "-hint" } { (hint) }
                }
                (field_error(id, error))
                input class={ "nhsuk-input " (width) @if error.is_some() { " nhsuk-input--error" } } id=(id) name=(name) type="text" value=(value)
                    aria-describedby=[described_by(id, !hint.is_empty(), error.is_some())];
            }
        }
    };
    let title = if errors.is_empty() {
        "Settings"
    } else {
        "Error: Settings"
    };
    let content = html! {
        div.nhsuk-grid-row {
            div."nhsuk-grid-column-two-thirds" {
                @if saved {
                    div."nhsuk-notification-banner nhsuk-notification-banner--success" role="alert" aria-labelledby="saved-title" data-module="nhsuk-notification-banner" {
                        div.nhsuk-notification-banner__header {
                            h2.nhsuk-notification-banner__title id="saved-title" { "Saved" }
                        }
                        div.nhsuk-notification-banner__content {
                            p.nhsuk-notification-banner__heading { "Clinicians now see these numbers." }
                        }
                    }
                }
                (error_summary(errors))
                h1 { "Settings" }
                form action="/app/la/settings" method="post" novalidate {
                    (viewer.csrf_field())
                    (input("name", "name", "Local authority name", "", &form.name, ""))
                    h2 { "Numbers clinicians phone" }
                    (input("emergency-duty-number", "emergency_duty_number", "Emergency duty team (out of hours)", "", &form.emergency_duty_number, "nhsuk-input--width-20"))
                    (input("office-hours-number", "office_hours_number", "Office hours", "", &form.office_hours_number, "nhsuk-input--width-20"))
                    h2 { "Repeat attendance alert" }
                    p { "Alert us when one of our children is seen at this many different places within this many days." }
                    (input("organisations", "organisations", "Places", "", &form.organisations, "nhsuk-input--width-2"))
                    (input("days", "days", "Days", "", &form.days, "nhsuk-input--width-3"))
                    button.nhsuk-button type="submit" data-module="nhsuk-button" { "Save" }
                }
            }
        }
    };
    page(title, Some(viewer), Section::LaSettings, content)
}
