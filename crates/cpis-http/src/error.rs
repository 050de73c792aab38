//! Errors at the edge: each becomes a status and a JSON body with a message a
//! person can act on. Internal causes are logged with their chain, not shown.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cpis_core::CoreError;
use cpis_store::StoreError;
use serde_json::json;

/// Every way a handler can fail.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("there is nothing at this address")]
    NotFound,
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl HttpError {
    fn status(&self) -> StatusCode {
        match self {
            HttpError::NotFound => StatusCode::NOT_FOUND,
            HttpError::Core(CoreError::Invalid(_)) => StatusCode::BAD_REQUEST,
            HttpError::Core(CoreError::Store(StoreError::Unavailable(_))) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            HttpError::Core(CoreError::Store(
                StoreError::Conflict(_) | StoreError::SnapshotGuard { .. },
            )) => StatusCode::CONFLICT,
            HttpError::Core(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error() {
            tracing::error!(error = %self, cause = ?self, "request failed");
            match status {
                StatusCode::SERVICE_UNAVAILABLE => {
                    "the service cannot reach its database just now; try again shortly".to_owned()
                }
                _ => "something went wrong on our side; quote the X-Request-ID header when you report it".to_owned(),
            }
        } else {
            self.to_string()
        };
        let body = Json(json!({"error": message}));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            (status, [(header::RETRY_AFTER, "5")], body).into_response()
        } else {
            (status, body).into_response()
        }
    }
}
