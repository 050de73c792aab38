//! The guard in front of every route: who is calling, and may they?
//!
//! A caller is authenticated by a bearer token (`Authorization: Bearer …`)
//! or by the browser session cookie. Requests that change something and
//! ride on the cookie must also carry the session's CSRF token, in the
//! `X-CSRF-Token` header or a `csrf_token` form field: a cookie alone is
//! sent by the browser for any site, a bearer token is not.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cpis_core::Cpis;
use cpis_domain::{Permission, Principal};
use cpis_store::Store;

use crate::Access;
use crate::error::{HttpError, NO_CREDENTIALS};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "cpis_session";

/// The largest form body read to find a CSRF token.
const FORM_LIMIT: usize = 1 << 20;

/// The authenticated caller, for handlers to take as `Extension<Caller>`.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Shared with the token's cache entry, since axum's `Extension`
    /// extractor clones the caller for each handler that takes it.
    pub principal: Arc<Principal>,
    /// The session's id and CSRF token, when the caller came by cookie.
    pub session: Option<(String, String)>,
}

pub(crate) async fn guard<S: Store>(
    State((app, access)): State<(Arc<Cpis<S>>, Access)>,
    request: Request,
    next: Next,
) -> Response {
    match check::<S>(&app, access, request).await {
        Ok(request) => next.run(request).await,
        Err(refused) => refused.error.into_response(),
    }
}

/// Why the guard refused, and who was refused when they were authenticated.
struct Refusal {
    error: HttpError,
    caller: Option<Caller>,
}

impl From<HttpError> for Refusal {
    fn from(error: HttpError) -> Self {
        Refusal {
            error,
            caller: None,
        }
    }
}

/// The guard in front of a web page: the same checks, but a refusal is
/// answered as a browser needs it (sign in and come back, or a page saying
/// why), not as an OperationOutcome.
pub(crate) async fn page_guard<S: Store>(
    State((app, access)): State<(Arc<Cpis<S>>, Access)>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let target = request
        .uri()
        .path_and_query()
        .map(|target| target.as_str().to_owned())
        .unwrap_or_else(|| "/app".to_owned());
    match check::<S>(&app, access, request).await {
        Ok(request) => next.run(request).await,
        Err(refused) => {
            crate::web::refusal(&app, refused.caller, refused.error, &method, &target).await
        }
    }
}

async fn check<S: Store>(
    app: &Cpis<S>,
    access: Access,
    request: Request,
) -> Result<Request, Refusal> {
    if access == Access::Public {
        return Ok(request);
    }
    let (caller, mut request) = authenticate(app, request).await?;
    let required: &[Permission] = match &access {
        Access::Permission(permission) => std::slice::from_ref(permission),
        Access::AnyOf(permissions) => permissions,
        Access::Public | Access::SignedIn => &[],
    };
    if let Some(first) = required.first()
        && !required
            .iter()
            .any(|permission| caller.principal.may(*permission))
    {
        tracing::info!(user = %caller.principal.user_id, ?required, "refused: no permission");
        return Err(Refusal {
            error: HttpError::Forbidden(format!(
                "your role does not allow you to {}",
                first.describe()
            )),
            caller: Some(caller),
        });
    }
    request.extensions_mut().insert(caller);
    Ok(request)
}

async fn authenticate<S: Store>(
    app: &Cpis<S>,
    request: Request,
) -> Result<(Caller, Request), HttpError> {
    if let Some(token) = bearer_token(request.headers())? {
        let principal = app.authenticate_bearer(token).await?;
        return Ok((
            Caller {
                principal,
                session: None,
            },
            request,
        ));
    }
    let Some(session_id) = cookie(request.headers(), SESSION_COOKIE) else {
        return Err(HttpError::Unauthenticated(NO_CREDENTIALS.to_owned()));
    };
    let session = app.session(&session_id).await?.ok_or_else(|| {
        HttpError::Unauthenticated("your session has ended; sign in again".into())
    })?;
    let request = check_csrf(request, &session.csrf_token).await?;
    Ok((
        Caller {
            principal: Arc::new(session.principal),
            session: Some((session_id, session.csrf_token)),
        },
        request,
    ))
}

fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, HttpError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| HttpError::Unauthenticated("the Authorization header is not text".into()))?;
    match text.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(HttpError::Unauthenticated(
            "the Authorization header must be \"Bearer <token>\"".into(),
        )),
    }
}

/// The value of a cookie in the request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

async fn check_csrf(request: Request, expected: &str) -> Result<Request, HttpError> {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return Ok(request);
    }
    let refused = || {
        HttpError::Forbidden(
            "the form is stale or forged (CSRF token missing or wrong); reload the page".into(),
        )
    };
    if let Some(sent) = request.headers().get("x-csrf-token") {
        return if constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
            Ok(request)
        } else {
            Err(refused())
        };
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("multipart/form-data") {
        // A file is streamed, not read first to find a field, so a file
        // form carries its token in its address.
        let sent = request
            .uri()
            .query()
            .and_then(|query| serde_urlencoded::from_str::<Vec<(String, String)>>(query).ok())
            .and_then(|fields| {
                fields
                    .into_iter()
                    .find(|(key, _)| key == "csrf_token")
                    .map(|(_, value)| value)
            })
            .unwrap_or_default();
        return if constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
            Ok(request)
        } else {
            Err(refused())
        };
    }
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(refused());
    }
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|_| HttpError::invalid("the form is too large"))?;
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
        .map_err(|_| HttpError::invalid("the form is malformed"))?;
    let sent = fields
        .iter()
        .find(|(key, _)| key == "csrf_token")
        .map(|(_, value)| value.as_str())
        .unwrap_or_default();
    if constant_time_eq(sent.as_bytes(), expected.as_bytes()) {
        Ok(Request::from_parts(parts, Body::from(bytes)))
    } else {
        Err(refused())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
