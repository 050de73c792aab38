//! A bound on the requests a node answers at once. Past it, a request is
//! answered 503 with `Retry-After` at once instead of waiting: when the
//! database stalls, requests would otherwise pile up, each holding its
//! connection, until the process runs out of file descriptors and stops
//! accepting anyone, and the callers wait out TCP's retries (half a
//! minute) instead of hearing at once that they should try again.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tower::{Layer, Service};

use crate::error::HttpError;
use crate::web::PageError;

struct Bound {
    permits: Semaphore,
    /// Refusals since the last warning, and the second of that warning:
    /// a full node would otherwise log every refusal.
    refused: AtomicU64,
    warned_at: AtomicU64,
}

/// `inner` answering at most `limit` requests at once. It wraps the whole
/// router as one service, not each route: a layer added to an axum
/// `Router` is added to every route, each boxed again, and each such level
/// cost every request a clone of the boxed service below it and a boxed
/// future (seen in a profile of the query benchmark).
pub(crate) fn bounded<I>(
    inner: I,
    limit: usize,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send>
+ Clone
+ Send
+ Sync
+ 'static
where
    I: Service<Request, Error = Infallible> + Clone + Send + Sync + 'static,
    I::Response: IntoResponse,
    I::Future: Send,
{
    let bound = Arc::new(Bound {
        permits: Semaphore::new(limit.clamp(1, Semaphore::MAX_PERMITS)),
        refused: AtomicU64::new(0),
        warned_at: AtomicU64::new(0),
    });
    axum::middleware::from_fn_with_state(bound, admit).layer(inner)
}

async fn admit(State(bound): State<Arc<Bound>>, request: Request, next: Next) -> Response {
    // Liveness answers even on a full node: it is busy, not dead.
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let Ok(permit) = bound.permits.try_acquire() else {
        bound.refused.fetch_add(1, Ordering::Relaxed);
        warn_at_most_every_second(&bound);
        return refusal(request.uri().path());
    };
    let response = next.run(request).await;
    drop(permit);
    response
}

/// An OperationOutcome for systems; for a person, the error page every
/// page shows.
fn refusal(path: &str) -> Response {
    if path.starts_with("/oauth2/token") {
        // Token clients read RFC 6749's form.
        return HttpError::OAuth(cpis_core::identity::OAuthError {
            error: "temporarily_unavailable",
            description: HttpError::Busy.to_string(),
        })
        .into_response();
    }
    let page = path == "/"
        || ["/app", "/auth", "/about", "/oauth2/authorize"]
            .iter()
            .any(|p| path.starts_with(p));
    if page {
        PageError::from(HttpError::Busy).into_response()
    } else {
        HttpError::Busy.into_response()
    }
}

fn warn_at_most_every_second(bound: &Bound) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0);
    let last = bound.warned_at.load(Ordering::Relaxed);
    if now > last
        && bound
            .warned_at
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let refused = bound.refused.swap(0, Ordering::Relaxed);
        tracing::warn!(
            refused,
            "requests refused with 503: this node is answering as many as max_in_flight allows"
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_request_over_the_bound_is_refused_at_once_and_the_bound_frees() {
        let release = Arc::new(tokio::sync::Notify::new());
        let entered = Arc::new(tokio::sync::Notify::new());
        let router = Router::new()
            .route(
                "/slow",
                get({
                    let (release, entered) = (release.clone(), entered.clone());
                    move || async move {
                        entered.notify_one();
                        release.notified().await;
                        "done"
                    }
                }),
            )
            .route("/healthz", get(|| async { "ok" }));
        let router = bounded(router, 1);
        let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();

        let first = tokio::spawn(router.clone().oneshot(get("/slow")));
        entered.notified().await;
        let refused = router.clone().oneshot(get("/slow")).await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "5");
        assert_eq!(
            refused.headers()[header::CONTENT_TYPE],
            "application/fhir+json"
        );
        let body = axum::body::to_bytes(refused.into_body(), 1 << 16)
            .await
            .unwrap();
        let outcome: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert_eq!(outcome["issue"][0]["code"], "transient");
        let page = router.clone().oneshot(get("/app/search")).await.unwrap();
        assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(page.headers()[header::RETRY_AFTER], "5");
        assert!(
            page.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "a person gets a page, not JSON"
        );
        let token = router.clone().oneshot(get("/oauth2/token")).await.unwrap();
        assert_eq!(token.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(token.into_body(), 1 << 16)
            .await
            .unwrap();
        let oauth: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(oauth["error"], "temporarily_unavailable");
        let healthz = router.clone().oneshot(get("/healthz")).await.unwrap();
        assert_eq!(healthz.status(), StatusCode::OK, "liveness is not bounded");

        release.notify_one();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        release.notify_one();
        let again = router.oneshot(get("/slow")).await.unwrap();
        assert_eq!(again.status(), StatusCode::OK, "the permit came back");
    }
}
