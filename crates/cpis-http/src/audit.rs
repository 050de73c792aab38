//! The log's public face: the latest signed checkpoint, the key that signs
//! checkpoints, and proofs, so that anyone holding an old checkpoint can
//! check that the log only grew (hashes only: nothing about a child). And
//! the privacy officer's access reports, for them alone.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cpis_core::audit::{encode_hash, encode_hashes};
use cpis_core::reports::{ReportRow, ReportSubject, report_csv};
use cpis_core::{CoreError, Cpis};
use cpis_domain::{NhsNumber, OdsCode, parse_iso_date};
use cpis_store::Store;
use serde::Deserialize;
use serde_json::json;
use tower_http::request_id::RequestId;

use crate::auth::Caller;
use crate::error::HttpError;
use crate::fhir::request_id;

type App<S> = State<Arc<Cpis<S>>>;

/// `GET /audit/v1/checkpoints/latest`: the signed note, as text.
pub(crate) async fn latest<S: Store>(State(app): App<S>) -> Result<Response, HttpError> {
    let checkpoint = app.latest_checkpoint().await?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        checkpoint.note,
    )
        .into_response())
}

/// `GET /audit/v1/key`: the verifier key of the log.
pub(crate) async fn key<S: Store>(State(app): App<S>) -> Result<Response, HttpError> {
    let (signer, _) = app
        .log()
        .ok_or_else(|| CoreError::NotFound("this service keeps no signed log".into()))?;
    let key = signer.public();
    Ok(Json(json!({"name": key.name, "vkey": key.vkey, "algorithm": "Ed25519"})).into_response())
}

fn number(text: Option<&str>, name: &str) -> Result<u64, HttpError> {
    text.ok_or_else(|| HttpError::invalid(format!("{name} is required")))?
        .parse()
        .map_err(|_| HttpError::invalid(format!("{name} must be a whole number")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InclusionQuery {
    leaf: Option<String>,
    size: Option<String>,
}

/// `GET /audit/v1/proof/inclusion?leaf=N&size=M`
pub(crate) async fn inclusion<S: Store>(
    State(app): App<S>,
    query: Result<Query<InclusionQuery>, QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(query) = query.map_err(|rejection| {
        HttpError::invalid(format!("this takes leaf and size: {rejection}"))
    })?;
    let leaf = number(query.leaf.as_deref(), "leaf")?;
    let size = number(query.size.as_deref(), "size")?;
    let (leaf_hash, proof) = app.inclusion_proof(leaf, size).await?;
    Ok(Json(json!({
        "leaf": leaf,
        "size": size,
        "leaf_hash": encode_hash(&leaf_hash),
        "hashes": encode_hashes(&proof),
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConsistencyQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /audit/v1/proof/consistency?from=N&to=M`
pub(crate) async fn consistency<S: Store>(
    State(app): App<S>,
    query: Result<Query<ConsistencyQuery>, QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(query) = query
        .map_err(|rejection| HttpError::invalid(format!("this takes from and to: {rejection}")))?;
    let from = number(query.from.as_deref(), "from")?;
    let to = number(query.to.as_deref(), "to")?;
    let proof = app.consistency_proof(from, to).await?;
    Ok(Json(json!({"from": from, "to": to, "hashes": encode_hashes(&proof)})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    nhs_number: Option<String>,
    user: Option<String>,
    organisation: Option<String>,
    from: Option<String>,
    to: Option<String>,
    after: Option<String>,
    limit: Option<String>,
    format: Option<String>,
}

/// `GET /audit/v1/reports/accesses?nhs_number=|user=|organisation=&from=&to=`
/// (dates `YYYY-MM-DD`; `to` defaults to today and `from` to a year
/// before it), `after` and `limit` to page, `format=csv` for CSV.
pub(crate) async fn accesses<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    id: Option<Extension<RequestId>>,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(query) = query.map_err(|rejection| {
        HttpError::invalid(format!(
            "a report takes one of nhs_number, user or organisation, and from, to, after, limit, format: {rejection}"
        ))
    })?;
    let subject = match (&query.nhs_number, &query.user, &query.organisation) {
        (Some(number), None, None) => ReportSubject::NhsNumber(
            NhsNumber::parse(number).map_err(|error| HttpError::invalid(error.to_string()))?,
        ),
        (None, Some(user), None) if !user.trim().is_empty() => {
            ReportSubject::User(user.trim().to_owned())
        }
        (None, None, Some(code)) => ReportSubject::Organisation(
            OdsCode::parse(code).map_err(|error| HttpError::invalid(error.to_string()))?,
        ),
        _ => {
            return Err(HttpError::invalid(
                "name exactly one of nhs_number, user or organisation",
            ));
        }
    };
    let date = |text: &Option<String>, name: &str| {
        text.as_deref()
            .map(|text| {
                parse_iso_date(text)
                    .map_err(|_| HttpError::invalid(format!("{name} must be a date YYYY-MM-DD")))
            })
            .transpose()
    };
    let to = date(&query.to, "to")?.unwrap_or_else(|| app.clock().today());
    let from = date(&query.from, "from")?.unwrap_or_else(|| to - time::Duration::days(365));
    let limit = match &query.limit {
        None => 100,
        Some(text) => text
            .parse()
            .map_err(|_| HttpError::invalid("limit must be a whole number"))?,
    };
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(HttpError::invalid(format!(
                "format is {other:?}; use json or csv"
            )));
        }
    };
    let page = app
        .access_report(
            &caller.principal,
            subject,
            from,
            to,
            query.after.as_deref(),
            limit,
            &request_id(id),
        )
        .await?;
    if csv {
        let mut response = (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"accesses.csv\"",
                ),
            ],
            report_csv(&page.items)?,
        )
            .into_response();
        if let Some(next) = page
            .next
            .as_deref()
            .and_then(|next| HeaderValue::from_str(next).ok())
        {
            response.headers_mut().insert("x-next-cursor", next);
        }
        return Ok(response);
    }
    let items: Vec<ReportRow> = page.items.iter().map(ReportRow::from).collect();
    Ok(Json(json!({"items": items, "next": page.next})).into_response())
}
