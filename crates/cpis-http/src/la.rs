//! The local authority API: uploads with their acknowledgements, and the
//! LA's own details. Every handler acts for the caller's own LA only.

use std::sync::Arc;

use std::io;

use axum::body::Body;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cpis_core::identity::own_la;
use cpis_core::upload::{UploadFormat, UploadMode, UploadRequest, acknowledgement_json};
use cpis_core::{CoreError, Cpis};
use cpis_domain::RepeatRule;
use cpis_store::Store;
use futures_util::TryStreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio_util::io::{StreamReader, SyncIoBridge};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::HttpError;

type App<S> = State<Arc<Cpis<S>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UploadQuery {
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    force: Option<bool>,
    /// `all` lists accepted records in the acknowledgement too.
    #[serde(default)]
    records: Option<String>,
}

pub(crate) async fn upload<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let la = own_la(&caller.principal)?;
    let Query(query) = query.map_err(|rejection| {
        HttpError::invalid(format!(
            "the upload address takes mode=changes|snapshot, force=true|false and records=all: {rejection}"
        ))
    })?;
    let mode = query
        .mode
        .as_deref()
        .map(|text| {
            UploadMode::parse(text).ok_or_else(|| {
                HttpError::invalid(format!("mode is {text:?}; use changes or snapshot"))
            })
        })
        .transpose()?;
    let list_accepted = match query.records.as_deref() {
        None | Some("rejected") => false,
        Some("all") => true,
        Some(other) => {
            return Err(HttpError::invalid(format!(
                "records is {other:?}; use all or rejected"
            )));
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let format = match content_type.as_str() {
        "text/csv" | "application/csv" => UploadFormat::Csv,
        "application/json" => UploadFormat::Json,
        _ => return Err(HttpError::UnsupportedMediaType),
    };
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|value| {
            value
                .to_str()
                .map(str::to_owned)
                .map_err(|_| HttpError::invalid("the Idempotency-Key header is not text"))
        })
        .transpose()?;
    // The body is read as it arrives, on the blocking thread that checks it.
    let stream = body.into_data_stream().map_err(io::Error::other);
    let body = SyncIoBridge::new(StreamReader::new(stream));
    let outcome = app
        .upload(UploadRequest {
            la,
            format,
            body: Box::new(body),
            mode,
            force: query.force.unwrap_or(false),
            idempotency_key,
            list_accepted,
        })
        .await
        .map_err(|error| match error {
            CoreError::TooLarge { limit } => HttpError::TooLarge(limit),
            error => error.into(),
        })?;
    let ack = &outcome.acknowledgement;
    let status = if ack.file_code == "CPF01" {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut response = (status, Json(acknowledgement_json(ack))).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&format!("/la/v1/uploads/{}", ack.id)) {
        headers.insert(header::LOCATION, location);
    }
    if outcome.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    #[serde(default)]
    limit: Option<usize>,
}

pub(crate) async fn uploads<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<ListQuery>,
) -> Result<Response, HttpError> {
    let la = own_la(&caller.principal)?;
    let uploads = app.uploads_of(la, query.limit.unwrap_or(50)).await?;
    let items: Vec<_> = uploads
        .iter()
        .map(|upload| {
            let mut summary = acknowledgement_json(upload);
            if let Some(object) = summary.as_object_mut() {
                object.remove("records");
            }
            summary
        })
        .collect();
    Ok(Json(json!({ "items": items })).into_response())
}

pub(crate) async fn upload_of<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let la = own_la(&caller.principal)?;
    // An id that is not a UUID is, like another LA's upload, simply not found.
    let id = Uuid::parse_str(&id).map_err(|_| HttpError::NotFound)?;
    let upload = app.upload_of(la, id).await?;
    Ok(Json(acknowledgement_json(&upload)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Profile {
    name: String,
    emergency_duty_number: String,
    office_hours_number: String,
    #[serde(default)]
    repeat_attendance: Option<RepeatRuleBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RepeatRuleBody {
    organisations: u32,
    days: u32,
}

pub(crate) async fn profile<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, HttpError> {
    let la = own_la(&caller.principal)?;
    let profile = app.local_authority(la).await?.ok_or_else(|| {
        HttpError::Core(cpis_core::CoreError::NotFound(format!(
            "{la} is not registered"
        )))
    })?;
    Ok(Json(profile).into_response())
}

pub(crate) async fn update_profile<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<Profile>, JsonRejection>,
) -> Result<Response, HttpError> {
    let la = own_la(&caller.principal)?;
    let Json(profile) = body.map_err(|rejection| {
        HttpError::invalid(format!(
            "send {{\"name\", \"emergency_duty_number\", \"office_hours_number\"}} and optionally \"repeat_attendance\": {{\"organisations\", \"days\"}}: {}",
            rejection.body_text()
        ))
    })?;
    let updated = app
        .update_local_authority(
            la,
            &profile.name,
            &profile.emergency_duty_number,
            &profile.office_hours_number,
            profile
                .repeat_attendance
                .map(|rule| RepeatRule::new(rule.organisations, rule.days))
                .transpose()
                .map_err(CoreError::from)?,
        )
        .await?;
    Ok(Json(updated).into_response())
}
