//! The HTTP edge: routes, who may call them, request ids, and errors turned
//! into statuses.
//!
//! Every route is declared once in [`routes`] with its [`Access`]: the
//! guard in `auth.rs` authenticates the caller and asks the permission table
//! before the handler runs, and [`endpoints`] lists every route with its
//! access for the authorization matrix test. Handlers are thin: decode the
//! request, call one `cpis-core` use case, encode the answer. Nothing below
//! this crate knows axum.

mod audit;
mod auth;
mod error;
mod fhir;
mod identity;
mod la;
mod notifications;
mod request_id;
mod shed;
mod web;

use std::future::Future;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::{Json, Router};
use cpis_core::Cpis;
use cpis_domain::Permission;
use cpis_store::Store;
use serde_json::json;
use tokio::net::TcpListener;
use tower::Layer as _;

pub use auth::Caller;
pub use error::{HttpError, SPINE_ERROR_SYSTEM, operation_outcome};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, discovery, the sign-in flow, the public directory.
    Public,
    /// Any authenticated principal of a registered organisation.
    SignedIn,
    /// A principal holding this permission.
    Permission(Permission),
    /// A principal holding any of these permissions.
    AnyOf(&'static [Permission]),
}

/// Either way of seeing the flag: unscheduled (B0107) or silently (B0170).
const VIEW_FLAG: Access = Access::AnyOf(&[Permission::ViewFlag, Permission::ViewFlagSilently]);

/// One route and who may call it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    /// A web page: refusals are pages (or a redirect to sign in), not
    /// OperationOutcomes.
    pub page: bool,
}

type AppState<S> = Arc<Cpis<S>>;

/// Routes under construction: each is added with its access rule.
struct Routes<S: Store> {
    router: Router<AppState<S>>,
    endpoints: Vec<Endpoint>,
    app: AppState<S>,
}

impl<S: Store> Routes<S> {
    fn add(
        self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: MethodRouter<AppState<S>>,
    ) -> Self {
        self.route(method, path, access, handler, false)
    }

    /// Adds a web page: guarded like a route, refused like a page.
    fn page(
        self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: MethodRouter<AppState<S>>,
    ) -> Self {
        self.route(method, path, access, handler, true)
    }

    fn route(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: MethodRouter<AppState<S>>,
        page: bool,
    ) -> Self {
        let state = (self.app.clone(), access);
        let guarded = if page {
            handler.route_layer(axum::middleware::from_fn_with_state(
                state,
                auth::page_guard::<S>,
            ))
        } else {
            handler.route_layer(axum::middleware::from_fn_with_state(
                state,
                auth::guard::<S>,
            ))
        };
        self.router = self.router.route(path, guarded);
        self.endpoints.push(Endpoint {
            method,
            path,
            access,
            page,
        });
        self
    }
}

const OWN_LA: Access = Access::Permission(Permission::ManageOwnLa);
const REPORTS: Access = Access::Permission(Permission::ViewAccessReports);

fn routes<S: Store>(app: AppState<S>) -> Routes<S> {
    use Access::{Public, SignedIn};
    use axum::routing::{delete, get, post, put};
    let routes = Routes {
        router: Router::new(),
        endpoints: Vec::new(),
        app,
    };
    routes
        .page(Method::GET, "/", Public, get(web::start::<S>))
        .page(Method::GET, "/about", Public, get(web::about))
        .add(
            Method::GET,
            "/assets/{version}/{*file}",
            Public,
            get(web::asset),
        )
        .add(Method::GET, "/healthz", Public, get(healthz))
        .add(Method::GET, "/readyz", Public, get(readyz::<S>))
        .add(Method::GET, "/api/v1/status", Public, get(status::<S>))
        .add(
            Method::GET,
            "/api/v1/local-authorities",
            Public,
            get(local_authorities::<S>),
        )
        .add(Method::GET, "/api/v1/me", SignedIn, get(identity::me))
        .add(
            Method::GET,
            "/.well-known/openid-configuration",
            Public,
            get(identity::discovery::<S>),
        )
        .add(
            Method::GET,
            "/oauth2/jwks",
            Public,
            get(identity::jwks::<S>),
        )
        .add(
            Method::POST,
            "/oauth2/token",
            Public,
            post(identity::token::<S>),
        )
        .add(
            Method::GET,
            "/oauth2/authorize",
            Public,
            get(identity::authorize_page::<S>),
        )
        .add(
            Method::POST,
            "/oauth2/authorize",
            Public,
            post(identity::authorize_choose::<S>),
        )
        .add(
            Method::GET,
            "/auth/sign-in",
            Public,
            get(identity::sign_in::<S>),
        )
        .add(
            Method::GET,
            "/auth/callback",
            Public,
            get(identity::callback::<S>),
        )
        .add(
            Method::POST,
            "/auth/sign-out",
            SignedIn,
            post(identity::sign_out::<S>),
        )
        .add(
            Method::GET,
            "/admin/v1/la-clients",
            Access::Permission(Permission::Administer),
            get(identity::la_clients::<S>),
        )
        .add(
            Method::PUT,
            "/admin/v1/la-clients/{client_id}",
            Access::Permission(Permission::Administer),
            put(identity::register_la_client::<S>),
        )
        .add(
            Method::GET,
            "/fhir/R4/metadata",
            Public,
            get(fhir::metadata::<S>),
        )
        .add(
            Method::GET,
            "/fhir/R4/CareTeam",
            VIEW_FLAG,
            get(fhir::care_team::<S>),
        )
        .add(
            Method::GET,
            "/fhir/R4/AuditEvent",
            VIEW_FLAG,
            get(fhir::audit_event::<S>),
        )
        .add(Method::GET, "/la/v1/profile", OWN_LA, get(la::profile::<S>))
        .add(
            Method::PUT,
            "/la/v1/profile",
            OWN_LA,
            put(la::update_profile::<S>),
        )
        .add(
            Method::POST,
            "/la/v1/uploads",
            OWN_LA,
            post(la::upload::<S>).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .add(Method::GET, "/la/v1/uploads", OWN_LA, get(la::uploads::<S>))
        .add(
            Method::GET,
            "/la/v1/uploads/{id}",
            OWN_LA,
            get(la::upload_of::<S>),
        )
        .add(
            Method::GET,
            "/audit/v1/checkpoints/latest",
            Public,
            get(audit::latest::<S>),
        )
        .add(Method::GET, "/audit/v1/key", Public, get(audit::key::<S>))
        .add(
            Method::GET,
            "/audit/v1/proof/inclusion",
            Public,
            get(audit::inclusion::<S>),
        )
        .add(
            Method::GET,
            "/audit/v1/proof/consistency",
            Public,
            get(audit::consistency::<S>),
        )
        .add(
            Method::GET,
            "/audit/v1/reports/accesses",
            Access::Permission(Permission::ViewAccessReports),
            get(audit::accesses::<S>),
        )
        .add(
            Method::GET,
            "/la/v1/notifications",
            OWN_LA,
            get(notifications::feed::<S>),
        )
        .add(
            Method::GET,
            "/la/v1/webhook",
            OWN_LA,
            get(notifications::webhook::<S>),
        )
        .add(
            Method::DELETE,
            "/la/v1/webhook",
            OWN_LA,
            delete(notifications::delete_webhook::<S>),
        )
        .add(
            Method::PUT,
            "/la/v1/webhook",
            OWN_LA,
            put(notifications::put_webhook::<S>),
        )
        .add(
            Method::GET,
            "/la/v1/webhook/failures",
            OWN_LA,
            get(notifications::failures::<S>),
        )
        .add(
            Method::POST,
            "/la/v1/webhook/replay",
            OWN_LA,
            post(notifications::replay::<S>),
        )
        .page(Method::GET, "/app", SignedIn, get(web::home::<S>))
        .page(
            Method::GET,
            "/app/search",
            VIEW_FLAG,
            get(web::search_form::<S>),
        )
        .page(
            Method::POST,
            "/app/search",
            VIEW_FLAG,
            post(web::search_result::<S>),
        )
        .page(Method::GET, "/app/la", OWN_LA, get(web::dashboard::<S>))
        .page(Method::GET, "/app/la/plans", OWN_LA, get(web::plans::<S>))
        .page(
            Method::POST,
            "/app/la/plans",
            OWN_LA,
            post(web::search_plans::<S>),
        )
        .page(
            Method::GET,
            "/app/la/uploads",
            OWN_LA,
            get(web::uploads::<S>),
        )
        .page(
            Method::POST,
            "/app/la/uploads",
            OWN_LA,
            post(web::upload::<S>).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .page(
            Method::GET,
            "/app/la/uploads/{id}",
            OWN_LA,
            get(web::upload_page::<S>),
        )
        .page(
            Method::GET,
            "/app/la/uploads/{id}/csv",
            OWN_LA,
            get(web::upload_csv::<S>),
        )
        .page(
            Method::GET,
            "/app/la/webhook",
            OWN_LA,
            get(web::webhook::<S>),
        )
        .page(
            Method::POST,
            "/app/la/webhook",
            OWN_LA,
            post(web::save_webhook::<S>),
        )
        .page(
            Method::POST,
            "/app/la/webhook/replay",
            OWN_LA,
            post(web::replay::<S>),
        )
        .page(
            Method::GET,
            "/app/la/settings",
            OWN_LA,
            get(web::settings::<S>),
        )
        .page(
            Method::POST,
            "/app/la/settings",
            OWN_LA,
            post(web::save_settings::<S>),
        )
        .page(Method::GET, "/app/reports", REPORTS, get(web::reports::<S>))
        .page(
            Method::POST,
            "/app/reports",
            REPORTS,
            post(web::run_report::<S>),
        )
        .page(
            Method::POST,
            "/app/reports/csv",
            REPORTS,
            post(web::report_download::<S>),
        )
        .page(
            Method::GET,
            "/app/audit",
            REPORTS,
            get(web::audit_status::<S>),
        )
        .page(
            Method::POST,
            "/app/audit/verify",
            REPORTS,
            post(web::verify::<S>),
        )
}

/// Builds every route of the service over one `Cpis`.
pub fn router<S: Store>(app: Arc<Cpis<S>>) -> Router {
    let routes = routes(app.clone());
    let limit = app.limits().in_flight;
    let routed = routes.router.fallback(not_found).with_state(app);
    // Layers around the whole router, not `Router::layer` (see `shed::bounded`).
    let bounded = shed::bounded(request_id::traced().layer(routed), limit);
    Router::new().fallback_service(request_id::layer().service(bounded))
}

/// Every route with its access rule, in declaration order.
pub fn endpoints<S: Store>(app: Arc<Cpis<S>>) -> Vec<Endpoint> {
    routes(app).endpoints
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

/// Liveness: the process is up and answering.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the store can read and write now. Load balancers stop sending
/// traffic to a node that answers 503 here.
async fn readyz<S: Store>(State(app): State<AppState<S>>) -> Response {
    match app.check_ready().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(error) => {
            tracing::warn!(error = %error, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, error::RETRY_AFTER_SECONDS)],
                Json(json!({"status": "unavailable", "reason": error.to_string()})),
            )
                .into_response()
        }
    }
}

/// Counts only: nothing here is about one child.
async fn status<S: Store>(State(app): State<AppState<S>>) -> Result<Response, HttpError> {
    Ok(Json(app.status().await?).into_response())
}

/// The directory of local authorities and their published numbers.
async fn local_authorities<S: Store>(
    State(app): State<AppState<S>>,
) -> Result<Response, HttpError> {
    Ok(Json(app.local_authorities().await?).into_response())
}

async fn not_found() -> HttpError {
    HttpError::NotFound
}
