//! The FHIR R4 API for NHS systems, shaped like NHS England's CP-IS FHIR
//! API: CareTeam and AuditEvent searches by NHS number, and the
//! CapabilityStatement. Every response is `application/fhir+json`.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cpis_core::Cpis;
use cpis_domain::NhsNumber;
use cpis_fhir::{FHIR_JSON, NHS_NUMBER_SYSTEM};
use cpis_store::Store;
use tower_http::request_id::RequestId;

use crate::auth::Caller;
use crate::error::HttpError;

type App<S> = State<Arc<Cpis<S>>>;

/// FHIR JSON with the right media type.
///
/// Written into a buffer the size of a CareTeam Bundle: axum's `Json`
/// starts at 128 bytes and grew five times for one.
fn fhir(body: impl serde::Serialize) -> Response {
    let mut bytes = Vec::with_capacity(4096);
    if serde_json::to_writer(&mut bytes, &body).is_err() {
        // Answers as `Json` does when the body cannot be written.
        return Json(body).into_response();
    }
    let mut response = bytes.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    response
}

fn search_error(message: impl Into<String>) -> HttpError {
    HttpError::Invalid {
        spine_code: "INVALID_SEARCH_DATA",
        message: message.into(),
    }
}

fn precondition(message: impl Into<String>) -> HttpError {
    HttpError::Invalid {
        spine_code: "PRECONDITION_FAILED",
        message: message.into(),
    }
}

/// Reads `patient:identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}`, and
/// `_format` if given; anything else is refused rather than ignored.
fn nhs_number_of(query: Option<&str>) -> Result<NhsNumber, HttpError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|_| precondition("the query string is malformed"))?;
    let mut identifier = None;
    for (name, value) in &pairs {
        match name.as_str() {
            "patient:identifier" if identifier.is_none() => identifier = Some(value.as_str()),
            "patient:identifier" => {
                return Err(search_error("give patient:identifier once"));
            }
            "_format"
                if matches!(
                    value.as_str(),
                    "json" | "application/fhir+json" | "application/json"
                ) => {}
            "_format" => return Err(precondition("_format must be json: only JSON is served")),
            other => {
                return Err(precondition(format!(
                    "the search parameter {other:?} is not supported; search by patient:identifier"
                )));
            }
        }
    }
    let identifier = identifier.ok_or_else(|| {
        search_error(format!(
            "search by patient:identifier={NHS_NUMBER_SYSTEM}|{{NHS number}}"
        ))
    })?;
    let (system, value) = identifier.split_once('|').ok_or_else(|| {
        search_error(format!(
            "patient:identifier must be {NHS_NUMBER_SYSTEM}|{{NHS number}}"
        ))
    })?;
    if system != NHS_NUMBER_SYSTEM {
        return Err(search_error(format!(
            "the identifier system must be {NHS_NUMBER_SYSTEM}, not {system:?}"
        )));
    }
    NhsNumber::parse(value).map_err(|error| search_error(error.to_string()))
}

/// `IsUnscheduledAccessEvent: false` marks a scheduled (silent) look.
fn marked_scheduled(headers: &HeaderMap) -> Result<bool, HttpError> {
    match headers.get("isunscheduledaccessevent") {
        None => Ok(false),
        Some(value) => match value.to_str().map(str::to_ascii_lowercase).as_deref() {
            Ok("true") => Ok(false),
            Ok("false") => Ok(true),
            _ => Err(precondition(
                "the IsUnscheduledAccessEvent header must be true or false",
            )),
        },
    }
}

pub(crate) fn request_id(id: Option<Extension<RequestId>>) -> String {
    id.and_then(|Extension(id)| id.header_value().to_str().ok().map(str::to_owned))
        .unwrap_or_default()
}

fn base_url<S: Store>(app: &Cpis<S>) -> String {
    format!("{}/fhir/R4", app.identity().own.url)
}

pub(crate) async fn care_team<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    id: Option<Extension<RequestId>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let nhs_number = nhs_number_of(query.as_deref())?;
    let scheduled = marked_scheduled(&headers)?;
    let answer = app
        .look_up_flag(&caller.principal, nhs_number, scheduled, &request_id(id))
        .await?;
    Ok(fhir(cpis_fhir::care_team_bundle(
        &base_url(&app),
        nhs_number,
        &answer.plans,
        answer.today,
    )))
}

pub(crate) async fn audit_event<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    id: Option<Extension<RequestId>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let nhs_number = nhs_number_of(query.as_deref())?;
    marked_scheduled(&headers)?;
    let history = app
        .access_history_of(&caller.principal, nhs_number, &request_id(id))
        .await?;
    let listed: Vec<&cpis_domain::AccessRecord> = history.iter().collect();
    Ok(fhir(cpis_fhir::audit_event_bundle(
        &base_url(&app),
        nhs_number,
        &listed,
    )))
}

pub(crate) async fn metadata<S: Store>(State(app): App<S>) -> Response {
    fhir(cpis_fhir::capability_statement(
        &base_url(&app),
        env!("CARGO_PKG_VERSION"),
        app.clock().now(),
    ))
}
