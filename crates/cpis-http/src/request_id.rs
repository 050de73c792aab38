//! Every request carries an `X-Request-ID`: the caller's, or a new UUID. It is
//! echoed on the response and names the request's log span, so that a support
//! call can be traced through the logs.

use axum::http::{HeaderName, Request};
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

type Outer = Stack<PropagateRequestIdLayer, Stack<SetRequestIdLayer<MakeRequestUuid>, Identity>>;

type Traced = TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    fn(&Request<axum::body::Body>) -> tracing::Span,
>;

/// Gives the request its id and echoes it on the response: outermost, so
/// that every answer carries it, a refusal by `shed` too.
pub(crate) fn layer() -> ServiceBuilder<Outer> {
    ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(X_REQUEST_ID, MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID))
}

/// The request's log span, named by its id. Inside `shed`: a full node
/// refusing thousands of requests a second would otherwise log each.
pub(crate) fn traced() -> Traced {
    TraceLayer::new_for_http().make_span_with(span as fn(&Request<_>) -> _)
}

fn span(request: &Request<axum::body::Body>) -> tracing::Span {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    // The path only: query strings can carry NHS numbers, which logs must not hold.
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id,
    )
}
