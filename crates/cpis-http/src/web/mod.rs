//! The web application for people: server-rendered pages in the NHS.UK
//! design system, usable without JavaScript.
//!
//! Pages are routes like any other, declared in `crate::routes` with their
//! [`crate::Access`], but behind a guard that answers as a browser needs:
//! a missing session sends the person to sign in and back, a refusal is a
//! page that says why. Handlers call the same `cpis-core` use cases as the
//! API, so a look from a page is recorded exactly as a FHIR query is.
//! Markup is [maud], compiled into the binary; the design system's CSS,
//! JavaScript and images are embedded by `build.rs` and served from
//! `/assets/nhsuk-<version>/`.

mod clinician;
mod local_authority;
mod privacy;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cpis_core::Cpis;
use cpis_domain::{OrganisationRef, Permission, Principal};
use cpis_store::Store;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use time::OffsetDateTime;

use crate::auth::{Caller, SESSION_COOKIE, cookie};
use crate::error::HttpError;

pub(crate) use clinician::{search_form, search_result};
pub(crate) use local_authority::{
    dashboard, plans, replay, save_settings, save_webhook, search_plans, settings, upload,
    upload_csv, upload_page, uploads, webhook,
};
pub(crate) use privacy::{audit_status, report_download, reports, run_report, verify};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/assets.rs"));
}

pub(crate) type App<S> = State<Arc<Cpis<S>>>;

const SERVICE_NAME: &str = "Child Protection – Information Sharing";
const NHS_LOGO_PATH: &str = "M200 0v80H0V0h200Zm-27.5 5.5c-14.5 0-29 5-29 22 0 10.2 7.7 13.5 14.7 16.3l.7.3c5.4 2 10.1 3.9 10.1 8.4 0 6.5-8.5 7.5-14 7.5s-12.5-1.5-16-3.5L135 70c5.5 2 13.5 3.5 20 3.5 15.5 0 32-4.5 32-22.5 0-19.5-25.5-16.5-25.5-25.5 0-5.5 5.5-6.5 12.5-6.5a35 35 0 0 1 14.5 3l4-13.5c-4.5-2-12-3-20-3Zm-131 2h-22l-14 65H22l9-45h.5l13.5 45h21.5l14-65H64l-9 45h-.5l-13-45Zm63 0h-18l-13 65h17l6-28H117l-5.5 28H129l13.5-65H125L119.5 32h-20l5-24.5Z";

/// Where a page sits in the menu, to mark it current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    None,
    Search,
    LaDashboard,
    LaPlans,
    LaUploads,
    LaWebhook,
    LaSettings,
    Reports,
    Audit,
}

/// Who is signed in, as the header shows them.
#[derive(Clone)]
pub(crate) struct Viewer {
    /// The caller's, shared: a page needs only to read it.
    pub principal: Arc<Principal>,
    pub organisation_name: String,
    pub csrf_token: String,
}

impl Viewer {
    pub(crate) async fn of<S: Store>(app: &Cpis<S>, caller: &Caller) -> Viewer {
        let organisation_name = match caller.principal.organisation {
            OrganisationRef::CareSetting(code) => app
                .organisation(code)
                .await
                .ok()
                .flatten()
                .map(|organisation| organisation.name),
            OrganisationRef::LocalAuthority(code) => app
                .local_authority(code)
                .await
                .ok()
                .flatten()
                .map(|la| la.name),
        }
        .unwrap_or_else(|| caller.principal.organisation.code());
        Viewer {
            principal: caller.principal.clone(),
            organisation_name,
            csrf_token: caller
                .session
                .as_ref()
                .map(|(_, csrf)| csrf.clone())
                .unwrap_or_default(),
        }
    }

    /// The hidden field every form that changes something carries.
    pub(crate) fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name="csrf_token" value=(self.csrf_token); }
    }
}

/// The menu a principal sees: only what their role may open.
fn menu(principal: &Principal) -> Vec<(Section, &'static str, &'static str)> {
    let mut items = Vec::new();
    if principal.may(Permission::ViewFlag) || principal.may(Permission::ViewFlagSilently) {
        items.push((Section::Search, "/app/search", "Search"));
    }
    if principal.may(Permission::ManageOwnLa) {
        items.extend([
            (Section::LaDashboard, "/app/la", "Dashboard"),
            (Section::LaPlans, "/app/la/plans", "Plans"),
            (Section::LaUploads, "/app/la/uploads", "Uploads"),
            (Section::LaWebhook, "/app/la/webhook", "Notifications"),
            (Section::LaSettings, "/app/la/settings", "Settings"),
        ]);
    }
    if principal.may(Permission::ViewAccessReports) {
        items.extend([
            (Section::Reports, "/app/reports", "Access reports"),
            (Section::Audit, "/app/audit", "Audit log"),
        ]);
    }
    items
}

/// A whole page: the design system's header with the principal's name,
/// role and organisation, the role's menu, the content, and the footer.
pub(crate) fn page(
    title: &str,
    viewer: Option<&Viewer>,
    section: Section,
    content: Markup,
) -> Markup {
    let assets = format!("/assets/nhsuk-{}", embedded::DESIGN_SYSTEM_VERSION);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – " (SERVICE_NAME) }
                link rel="stylesheet" href={ (assets) "/nhsuk-frontend.min.css" };
                link rel="icon" href={ (assets) "/images/favicon.svg" } type="image/svg+xml";
            }
            body {
                a.nhsuk-skip-link href="#maincontent" data-module="nhsuk-skip-link" { "Skip to main content" }
                header.nhsuk-header data-module="nhsuk-header" role="banner" {
                    div."nhsuk-header__container nhsuk-width-container" {
                        div.nhsuk-header__service {
                            a.nhsuk-header__service-logo href="/" aria-label={ "NHS " (SERVICE_NAME) " homepage" } {
                                svg.nhsuk-header__logo xmlns="http://www.w3.org/2000/svg" viewBox="0 0 200 80" height="40" width="100" focusable="false" role="img" aria-label="NHS" {
                                    title { "NHS" }
                                    path fill="currentcolor" d=(NHS_LOGO_PATH) {}
                                }
                                span.nhsuk-header__service-name { (SERVICE_NAME) }
                            }
                        }
                        @if let Some(viewer) = viewer {
                            nav.nhsuk-header__account aria-label="Account" {
                                ul.nhsuk-header__account-list {
                                    li.nhsuk-header__account-item {
                                        p.cpis-principal data-testid="principal" {
                                            strong { (viewer.principal.display_name) }
                                            span.cpis-principal__role {
                                                (viewer.principal.role_name) ", " (viewer.organisation_name)
                                            }
                                        }
                                    }
                                    li.nhsuk-header__account-item {
                                        form.nhsuk-header__account-form action="/auth/sign-out" method="post" {
                                            (viewer.csrf_field())
                                            button.nhsuk-header__account-button type="submit" { "Sign out" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(viewer) = viewer {
                        @let items = menu(&viewer.principal);
                        @if !items.is_empty() {
                            nav.nhsuk-header__navigation aria-label="Menu" {
                                div."nhsuk-header__navigation-container nhsuk-width-container" {
                                    ul.nhsuk-header__navigation-list {
                                        @for (item, href, label) in items {
                                            @if item == section {
                                                li."nhsuk-header__navigation-item nhsuk-header__navigation-item--current" {
                                                    a.nhsuk-header__navigation-link href=(href) aria-current="page" {
                                                        strong.nhsuk-header__navigation-item-current-fallback { (label) }
                                                    }
                                                }
                                            } @else {
                                                li.nhsuk-header__navigation-item {
                                                    a.nhsuk-header__navigation-link href=(href) { (label) }
                                                }
                                            }
                                        }
                                        li.nhsuk-header__menu hidden {
                                            button."nhsuk-header__menu-toggle nhsuk-header__navigation-link" id="toggle-menu" aria-expanded="false" {
                                                span.nhsuk-u-visually-hidden { "Browse " } "More"
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                div.nhsuk-width-container {
                    main.nhsuk-main-wrapper id="maincontent" role="main" {
                        (content)
                    }
                }
                footer.nhsuk-footer role="contentinfo" {
                    div.nhsuk-width-container {
                        div.nhsuk-footer__meta {
                            h2.nhsuk-u-visually-hidden { "Support links" }
                            ul.nhsuk-footer__list {
                                li.nhsuk-footer__list-item {
                                    a.nhsuk-footer__list-item-link href="/about" { "About this service and its API" }
                                }
                            }
                            p.nhsuk-body-s { "cpis: open-source software. Every look at a child's record is recorded." }
                        }
                    }
                }
                script src={ (assets) "/nhsuk-frontend.min.js" } type="module" {}
            }
        }
    }
}

/// A rendered page as a response, never cached: pages carry children's data.
pub(crate) fn respond(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// An error on a page, shown as a page.
pub(crate) struct PageError {
    pub error: HttpError,
    /// Boxed: an error travels back through every handler's `Result`.
    pub viewer: Option<Box<Viewer>>,
}

impl<E: Into<HttpError>> From<E> for PageError {
    fn from(error: E) -> Self {
        PageError {
            error: error.into(),
            viewer: None,
        }
    }
}

impl PageError {
    pub(crate) fn for_viewer(error: impl Into<HttpError>, viewer: Viewer) -> PageError {
        PageError {
            error: error.into(),
            viewer: Some(Box::new(viewer)),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.error.status();
        let message = self.error.public_message(status);
        let heading = match status {
            StatusCode::FORBIDDEN => "You cannot use this page",
            StatusCode::NOT_FOUND => "Page not found",
            StatusCode::UNAUTHORIZED => "You need to sign in",
            StatusCode::SERVICE_UNAVAILABLE => "Sorry, the service is unavailable",
            status if status.is_server_error() => "Sorry, there is a problem with the service",
            _ => "There is a problem",
        };
        let content = html! {
            h1 { (heading) }
            p data-testid="error-message" { (message) }
            @if status == StatusCode::UNAUTHORIZED {
                p { a.nhsuk-button href="/auth/sign-in?return_to=/app" { "Sign in" } }
            } @else {
                p { a href="/app" { "Go to your start page" } }
            }
        };
        let mut response = respond(
            status,
            page(heading, self.viewer.as_deref(), Section::None, content),
        );
        // As every 503 of the API does (`HttpError`).
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, crate::error::RETRY_AFTER_SECONDS);
        }
        response
    }
}

/// What the page guard does with a refusal: a person without a session is
/// sent to sign in and brought back; anything else is a page that says why.
pub(crate) async fn refusal<S: Store>(
    app: &Cpis<S>,
    caller: Option<Caller>,
    error: HttpError,
    method: &axum::http::Method,
    path_and_query: &str,
) -> Response {
    if matches!(error, HttpError::Unauthenticated(_)) && method == axum::http::Method::GET {
        let target = format!(
            "/auth/sign-in?return_to={}",
            form_urlencoded(path_and_query)
        );
        return Redirect::to(&target).into_response();
    }
    // Someone signed in but refused still sees who they are, and can sign out.
    let viewer = match &caller {
        Some(caller) => Some(Viewer::of(app, caller).await),
        None => None,
    };
    PageError {
        error,
        viewer: viewer.map(Box::new),
    }
    .into_response()
}

fn form_urlencoded(text: &str) -> String {
    serde_urlencoded::to_string([("v", text)])
        .map(|pair| pair.trim_start_matches("v=").to_owned())
        .unwrap_or_default()
}

/// `/`: the start page. A person already signed in goes to their own start.
pub(crate) async fn start<S: Store>(State(app): App<S>, headers: HeaderMap) -> Response {
    if let Some(session) = cookie(&headers, SESSION_COOKIE)
        && let Ok(Some(_)) = app.session(&session).await
    {
        return Redirect::to("/app").into_response();
    }
    let content = html! {
        h1.nhsuk-heading-xl { (SERVICE_NAME) }
        p.nhsuk-lede-text {
            "See at once whether a child has a child protection plan, is looked after, or is unborn with a pre-birth plan, in any local authority in England, and whom to phone."
        }
        p { "Clinicians search by NHS number. Local authority teams send their plans and see who has looked. Privacy officers see every look, and check that the record of them is complete." }
        a.nhsuk-button href="/auth/sign-in?return_to=/app" data-testid="sign-in" { "Sign in" }
        p.nhsuk-body-s { "Every search is recorded and shared with the local authority responsible for the child." }
    };
    respond(StatusCode::OK, page("Start", None, Section::None, content))
}

/// `/about`: what the server answers, for people setting up systems.
pub(crate) async fn about() -> Response {
    respond(
        StatusCode::OK,
        page(
            "About",
            None,
            Section::None,
            PreEscaped(include_str!("../about.html").to_owned()),
        ),
    )
}

/// `/app`: each principal's own start page.
pub(crate) async fn home<S: Store>(
    State(app): App<S>,
    axum::Extension(caller): axum::Extension<Caller>,
) -> Result<Response, PageError> {
    let principal = &caller.principal;
    let target = if principal.may(Permission::ViewFlag)
        || principal.may(Permission::ViewFlagSilently)
    {
        "/app/search"
    } else if principal.may(Permission::ManageOwnLa) {
        "/app/la"
    } else if principal.may(Permission::ViewAccessReports) {
        "/app/reports"
    } else {
        let refusal = HttpError::Forbidden(format!(
            "your role ({}) has no use of this service; if that is wrong, ask your registration authority to add the CP-IS activity codes to your role",
            principal.role_name
        ));
        return Err(PageError::for_viewer(
            refusal,
            Viewer::of(&app, &caller).await,
        ));
    };
    Ok(Redirect::to(target).into_response())
}

/// `/assets/nhsuk-<version>/…`: the embedded design system, cached for a
/// year, since a new version has a new address.
pub(crate) async fn asset(Path((version, file)): Path<(String, String)>) -> Response {
    let wanted = version.strip_prefix("nhsuk-");
    let found = embedded::ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .filter(|_| wanted == Some(embedded::DESIGN_SYSTEM_VERSION));
    match found {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

/// A date as the NHS writes it: 25 November 2026.
pub(crate) fn long_date(date: time::Date) -> String {
    format!("{} {} {}", date.day(), date.month(), date.year())
}

/// A moment in UK time: 25 November 2026 at 14:05.
pub(crate) fn long_time(at: OffsetDateTime) -> String {
    let uk = cpis_domain::uk_time(at);
    format!(
        "{} at {:02}:{:02}",
        long_date(uk.date()),
        uk.hour(),
        uk.minute()
    )
}

/// A summary list row.
pub(crate) fn row(key: &str, value: Markup) -> Markup {
    html! {
        div.nhsuk-summary-list__row {
            dt.nhsuk-summary-list__key { (key) }
            dd.nhsuk-summary-list__value { (value) }
        }
    }
}

/// How urgent a care card looks.
pub(crate) enum Care {
    /// Red and black: act now.
    Emergency,
    /// Blue: for information.
    NonUrgent,
}

/// An NHS.UK care card: a heading that cannot be missed, and what to do.
pub(crate) fn care_card(
    care: Care,
    testid: &str,
    label: &str,
    heading: &str,
    content: Markup,
) -> Markup {
    let class = match care {
        Care::Emergency => "nhsuk-card nhsuk-card--care nhsuk-card--care--emergency",
        Care::NonUrgent => "nhsuk-card nhsuk-card--care nhsuk-card--care--non-urgent",
    };
    html! {
        div class=(class) data-testid=(testid) {
            div.nhsuk-card__heading-container {
                h2.nhsuk-card__heading {
                    span role="text" {
                        span.nhsuk-u-visually-hidden { (label) ": " }
                        (heading)
                    }
                }
                span."nhsuk-card--care__arrow" aria-hidden="true" {}
            }
            div.nhsuk-card__content { (content) }
        }
    }
}

/// An NHS.UK table that scrolls sideways on its own on a narrow screen;
/// `rows` are its body's rows.
pub(crate) fn table(testid: &str, caption: &str, headers: &[&str], rows: Markup) -> Markup {
    html! {
        div.cpis-table-wrap {
            table.nhsuk-table data-testid=(testid) {
                caption."nhsuk-table__caption nhsuk-u-visually-hidden" { (caption) }
                thead.nhsuk-table__head {
                    tr.nhsuk-table__row {
                        @for header in headers {
                            th.nhsuk-table__header scope="col" { (header) }
                        }
                    }
                }
                tbody.nhsuk-table__body { (rows) }
            }
        }
    }
}

/// A field's error message, the NHS.UK way, under the id `{id}-error` that
/// [`described_by`] names.
pub(crate) fn field_error(id: &str, message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            span.nhsuk-error-message id={ (id) "-error" } {
                span.nhsuk-u-visually-hidden { "Error: " } (message)
            }
        }
    }
}

/// What a field's `aria-describedby` names: its hint (`{id}-hint`) and its
/// error (`{id}-error`), those it has; nothing when it has neither.
pub(crate) fn described_by(id: &str, hint: bool, error: bool) -> Option<String> {
    match (hint, error) {
        (true, true) => Some(format!("{id}-hint {id}-error")),
        (true, false) => Some(format!("{id}-hint")),
        (false, true) => Some(format!("{id}-error")),
        (false, false) => None,
    }
}

/// The message for `field` among a form's `errors`, if it has one.
pub(crate) fn error_of<'a>(errors: &'a [(&str, String)], field: &str) -> Option<&'a str> {
    errors
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, message)| message.as_str())
}

/// The NHS.UK error summary, linking to the field at fault.
pub(crate) fn error_summary(errors: &[(&str, String)]) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.nhsuk-error-summary data-module="nhsuk-error-summary" {
                div role="alert" {
                    h2.nhsuk-error-summary__heading { "There is a problem" }
                    div.nhsuk-error-summary__body {
                        ul."nhsuk-list nhsuk-error-summary__list" {
                            @for (field, message) in errors {
                                li { a href={ "#" (field) } { (message) } }
                            }
                        }
                    }
                }
            }
        }
    }
}
