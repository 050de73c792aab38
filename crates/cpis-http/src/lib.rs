//! The HTTP edge: routes, request ids, and errors turned into statuses.
//!
//! Handlers are thin: decode the request, call one `cpis-core` use case,
//! encode the answer. Nothing below this crate knows axum.

mod error;
mod request_id;

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cpis_core::Cpis;
use cpis_store::Store;
use serde_json::json;
use tokio::net::TcpListener;

pub use error::HttpError;

/// Builds every route of the service over one `Cpis`.
pub fn router<S: Store>(app: Arc<Cpis<S>>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<S>))
        .route("/api/v1/status", get(status::<S>))
        .route("/api/v1/local-authorities", get(local_authorities::<S>))
        .fallback(not_found)
        .with_state(app)
        .layer(request_id::layer())
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes the
/// requests in flight.
pub async fn serve<S: Store>(
    listener: TcpListener,
    app: Arc<Cpis<S>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn index() -> Html<&'static str> {
    Html(include_str!("index.html"))
}

/// Liveness: the process is up and answering.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the store can read and write now. Load balancers stop sending
/// traffic to a node that answers 503 here.
async fn readyz<S: Store>(State(app): State<Arc<Cpis<S>>>) -> Response {
    match app.check_ready().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(error) => {
            tracing::warn!(error = %error, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                Json(json!({"status": "unavailable", "reason": error.to_string()})),
            )
                .into_response()
        }
    }
}

/// Counts only: nothing here is about one child.
async fn status<S: Store>(State(app): State<Arc<Cpis<S>>>) -> Result<Response, HttpError> {
    Ok(Json(app.status().await?).into_response())
}

/// The directory of local authorities and their published numbers.
async fn local_authorities<S: Store>(
    State(app): State<Arc<Cpis<S>>>,
) -> Result<Response, HttpError> {
    Ok(Json(app.local_authorities().await?).into_response())
}

async fn not_found() -> HttpError {
    HttpError::NotFound
}
