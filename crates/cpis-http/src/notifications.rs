//! The LA's notifications: the pull feed, its webhook, and the deliveries
//! that failed. Every handler acts for the caller's own LA only.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cpis_core::Cpis;
use cpis_core::identity::own_la;
use cpis_store::Store;
use serde::Deserialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::HttpError;

type App<S> = State<Arc<Cpis<S>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FeedQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<String>,
}

fn limit(text: Option<&str>, default: usize) -> Result<usize, HttpError> {
    match text {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| HttpError::invalid(format!("limit={text:?} is not a number"))),
    }
}

/// `GET /la/v1/notifications?after=CURSOR&limit=N`
pub(crate) async fn feed<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<FeedQuery>, QueryRejection>,
) -> Result<Response, HttpError> {
    let la = own_la(&caller.principal)?;
    let Query(query) = query.map_err(|rejection| {
        HttpError::invalid(format!(
            "the feed takes after=CURSOR and limit=1..1000: {rejection}"
        ))
    })?;
    let limit = limit(query.limit.as_deref(), 100)?;
    let page = app
        .notifications_of(la, query.after.as_deref(), limit)
        .await?;
    Ok(Json(page).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookBody {
    url: String,
}

/// `PUT /la/v1/webhook` with `{"url": ...}`: answers with the signing
/// secret, shown this once.
pub(crate) async fn put_webhook<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<WebhookBody>, JsonRejection>,
) -> Result<Response, HttpError> {
    let la = own_la(&caller.principal)?;
    let Json(body) = body.map_err(|rejection| {
        HttpError::invalid(format!(
            "send {{\"url\": \"https://...\"}}: {}",
            rejection.body_text()
        ))
    })?;
    let registered = app.register_webhook(la, &body.url).await?;
    Ok(Json(json!({
        "url": registered.url,
        "secret": registered.secret,
        "created_at": registered.created_at.format(&Rfc3339).unwrap_or_default(),
        "note": "keep the secret: it is shown only now. Every delivery is signed with it in the Standard Webhooks form (webhook-id, webhook-timestamp, webhook-signature)."
    }))
    .into_response())
}

pub(crate) async fn webhook<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, HttpError> {
    let la = own_la(&caller.principal)?;
    Ok(Json(app.webhook_status(la).await?).into_response())
}

pub(crate) async fn delete_webhook<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, HttpError> {
    let la = own_la(&caller.principal)?;
    app.remove_webhook(la).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FailuresQuery {
    #[serde(default)]
    limit: Option<String>,
}

/// `GET /la/v1/webhook/failures`: the deliveries parked after their retries.
pub(crate) async fn failures<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<FailuresQuery>, QueryRejection>,
) -> Result<Response, HttpError> {
    let la = own_la(&caller.principal)?;
    let Query(query) = query
        .map_err(|rejection| HttpError::invalid(format!("the list takes limit: {rejection}")))?;
    let failed = app
        .failed_deliveries(la, limit(query.limit.as_deref(), 100)?)
        .await?;
    let items: Vec<_> = failed
        .iter()
        .map(|failed| {
            json!({
                "id": failed.item.id,
                "kind": failed.item.kind,
                "failed_at": failed.failed_at.format(&Rfc3339).unwrap_or_default(),
                "attempts": failed.item.attempts,
                "last_error": failed.last_error,
                "item": failed.item.payload,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplayBody {
    #[serde(default)]
    ids: Option<Vec<Uuid>>,
}

/// `POST /la/v1/webhook/replay` with `{}` (every parked item) or
/// `{"ids": [...]}`: sends them again, from the first attempt.
pub(crate) async fn replay<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<ReplayBody>, JsonRejection>,
) -> Result<Response, HttpError> {
    let la = own_la(&caller.principal)?;
    let Json(body) = body.map_err(|rejection| {
        HttpError::invalid(format!(
            "send {{}} to replay every failed delivery, or {{\"ids\": [...]}}: {}",
            rejection.body_text()
        ))
    })?;
    let replayed = app.replay_deliveries(la, body.ids).await?;
    Ok(Json(json!({ "replayed": replayed })).into_response())
}
