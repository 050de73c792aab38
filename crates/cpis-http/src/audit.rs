//! The log's public face: the latest signed checkpoint, the key that signs
//! checkpoints, and proofs, so that anyone holding an old checkpoint can
//! check that the log only grew. Hashes only: nothing here is about a child.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cpis_core::audit::{encode_hash, encode_proof};
use cpis_core::{CoreError, Cpis};
use cpis_store::Store;
use serde::Deserialize;
use serde_json::json;

use crate::error::HttpError;

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
        "hashes": encode_proof(&proof).hashes,
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
    Ok(
        Json(json!({"from": from, "to": to, "hashes": encode_proof(&proof).hashes}))
            .into_response(),
    )
}
