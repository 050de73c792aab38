//! Errors at the edge. Every API error is a FHIR OperationOutcome with a
//! sentence a person can act on; a 401 also carries `WWW-Authenticate`.
//! Internal causes are logged with their chain, never shown.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cpis_core::CoreError;
use cpis_core::identity::{AccessError, OAuthError};
use cpis_store::StoreError;
use serde_json::json;

/// The NHS England code system for Spine error codes.
pub const SPINE_ERROR_SYSTEM: &str =
    "https://fhir.nhs.uk/CodeSystem/England-SpineErrorOrWarningCode";

/// Every way a handler can fail.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("there is nothing at this address")]
    NotFound,
    /// 401: no credentials, or credentials that do not hold.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: a principal without the permission.
    #[error("{0}")]
    Forbidden(String),
    /// 400 with the Spine code that fits.
    #[error("{message}")]
    Invalid {
        spine_code: &'static str,
        message: String,
    },
    /// 413: a body over the configured limit (in bytes).
    #[error("the file is larger than the limit of {} MiB; split it into smaller files, or ask the operator to raise upload_limit_mb", .0 / (1024 * 1024))]
    TooLarge(u64),
    /// 415: a body in a format the route does not take.
    #[error("send the file as text/csv or application/json")]
    UnsupportedMediaType,
    /// 503 at once: the node is already answering as many requests as it
    /// may (`max_in_flight`).
    #[error("the service is answering as many requests as it can; try again in a moment")]
    Busy,
    /// A refusal of the token endpoint, answered in RFC 6749's form.
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<AccessError> for HttpError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::Unauthenticated(why) => HttpError::Unauthenticated(why),
            AccessError::Forbidden(why) => HttpError::Forbidden(why),
            AccessError::Core(core) => HttpError::Core(core),
        }
    }
}

impl HttpError {
    pub fn invalid(message: impl Into<String>) -> Self {
        HttpError::Invalid {
            spine_code: "INVALID_REQUEST",
            message: message.into(),
        }
    }

    pub(crate) fn status(&self) -> StatusCode {
        match self {
            HttpError::NotFound => StatusCode::NOT_FOUND,
            HttpError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            HttpError::Forbidden(_) => StatusCode::FORBIDDEN,
            HttpError::Invalid { .. } => StatusCode::BAD_REQUEST,
            HttpError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HttpError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::OAuth(error) if error.error == "invalid_client" => StatusCode::UNAUTHORIZED,
            HttpError::OAuth(error) if error.error == "temporarily_unavailable" => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            HttpError::OAuth(error) if error.error == "server_error" => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            HttpError::OAuth(_) => StatusCode::BAD_REQUEST,
            HttpError::Core(core) => match core {
                CoreError::Invalid(_) | CoreError::BadRequest(_) => StatusCode::BAD_REQUEST,
                CoreError::NotFound(_) => StatusCode::NOT_FOUND,
                CoreError::Refused(_) => StatusCode::CONFLICT,
                CoreError::Forbidden(_) => StatusCode::FORBIDDEN,
                CoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                CoreError::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
                CoreError::Store(StoreError::Conflict(_) | StoreError::SnapshotGuard { .. }) => {
                    StatusCode::CONFLICT
                }
                CoreError::Provider(_) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// What the caller is told: the error itself when it is theirs to fix;
    /// for the server's own failures a sentence without internals, the
    /// cause going to the log.
    pub(crate) fn public_message(&self, status: StatusCode) -> String {
        // Busy is no fault to log with a cause; `shed` counts refusals.
        if !status.is_server_error() || matches!(self, HttpError::Busy) {
            return self.to_string();
        }
        tracing::error!(error = %self, cause = ?self, "request failed");
        match status {
            StatusCode::SERVICE_UNAVAILABLE => match self {
                HttpError::Core(CoreError::Unavailable(why)) => why.clone(),
                _ => "the service cannot reach its database just now; try again shortly".to_owned(),
            },
            StatusCode::BAD_GATEWAY => {
                "the identity provider did not answer as expected; try again shortly".to_owned()
            }
            _ => {
                "something went wrong on our side; quote the X-Request-ID header when you report it"
                    .to_owned()
            }
        }
    }

    /// FHIR's issue type and, where one fits, the Spine code and its display.
    fn codes(&self, status: StatusCode) -> (&'static str, Option<(&'static str, &'static str)>) {
        match (self, status) {
            (HttpError::Invalid { spine_code, .. }, _) => (
                issue_type_of(spine_code),
                Some((spine_code, display_of(spine_code))),
            ),
            (_, StatusCode::UNAUTHORIZED) => ("login", None),
            (_, StatusCode::FORBIDDEN) => ("forbidden", Some(("ACCESS_DENIED", "Access denied"))),
            (_, StatusCode::NOT_FOUND) => ("not-found", None),
            (_, StatusCode::BAD_REQUEST) => (
                "invalid",
                Some(("INVALID_REQUEST", display_of("INVALID_REQUEST"))),
            ),
            (_, StatusCode::CONFLICT) => ("conflict", None),
            (_, StatusCode::PAYLOAD_TOO_LARGE) => ("too-costly", None),
            (_, StatusCode::UNSUPPORTED_MEDIA_TYPE) => ("not-supported", None),
            (_, StatusCode::SERVICE_UNAVAILABLE) => ("transient", None),
            _ => ("exception", None),
        }
    }
}

fn issue_type_of(spine_code: &str) -> &'static str {
    match spine_code {
        "INVALID_SEARCH_DATA" | "PRECONDITION_FAILED" | "INVALID_REQUEST" => "invalid",
        _ => "processing",
    }
}

fn display_of(spine_code: &str) -> &'static str {
    match spine_code {
        "INVALID_SEARCH_DATA" => "Invalid search data",
        "PRECONDITION_FAILED" => "Precondition failed",
        "INVALID_REQUEST" => "Invalid request",
        "ACCESS_DENIED" => "Access denied",
        _ => "Error",
    }
}

/// An OperationOutcome with one error issue.
pub fn operation_outcome(
    issue_type: &str,
    spine: Option<(&str, &str)>,
    diagnostics: &str,
) -> serde_json::Value {
    let mut issue = json!({
        "severity": "error",
        "code": issue_type,
        "diagnostics": diagnostics,
    });
    if let Some((code, display)) = spine {
        issue["details"] = json!({
            "coding": [{"system": SPINE_ERROR_SYSTEM, "code": code, "display": display}]
        });
    }
    json!({"resourceType": "OperationOutcome", "issue": [issue]})
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let HttpError::OAuth(error) = &self {
            if status.is_server_error() {
                tracing::error!(error = %error, "the token endpoint failed");
            }
            let mut response = (
                status,
                Json(json!({"error": error.error, "error_description": error.description})),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return response;
        }
        let diagnostics = self.public_message(status);
        let (issue_type, spine) = self.codes(status);
        let body = Json(operation_outcome(issue_type, spine, &diagnostics));
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/fhir+json"),
        );
        match status {
            StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, RETRY_AFTER_SECONDS);
            }
            StatusCode::UNAUTHORIZED => {
                let challenge = match &self {
                    HttpError::Unauthenticated(why) if why != NO_CREDENTIALS => format!(
                        "Bearer realm=\"cpis\", error=\"invalid_token\", error_description=\"{}\"",
                        why.replace(['"', '\\'], "'")
                    ),
                    _ => "Bearer realm=\"cpis\"".to_owned(),
                };
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            _ => {}
        }
        response
    }
}

/// Seconds a caller answered 503 is asked to wait (`Retry-After`), on every
/// 503 the service gives: the API's, its pages', `/readyz`'s and the
/// in-flight bound's. Long enough for a stalled database or a burst to pass,
/// short enough that a clinician's system tries again while the child is
/// still in the department.
pub(crate) const RETRY_AFTER_SECONDS: HeaderValue = HeaderValue::from_static("5");

/// The 401 message when no credentials came at all.
pub const NO_CREDENTIALS: &str = "sign in, or send a bearer token in the Authorization header";
