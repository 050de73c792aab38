//! The clinician's pages: an NHS number search, and what it finds.
//!
//! The search is a POST, so the NHS number never sits in an address, a
//! browser history or a server log; the answer is the page itself.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::{Extension, Form};
use cpis_core::query::ChildView;
use cpis_domain::{AccessRecord, LocalAuthority, NhsNumber, Plan, PlanType};
use cpis_store::Store;
use maud::{Markup, html};
use serde::Deserialize;
use tower_http::request_id::RequestId;

use super::{
    App, Care, PageError, Section, Viewer, care_card, described_by, error_summary, field_error,
    long_date, long_time, page, respond, table,
};
use crate::auth::Caller;
use crate::fhir::request_id;

pub(crate) async fn search_form<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let viewer = Viewer::of(&app, &caller).await;
    respond(StatusCode::OK, search_page(&viewer, "", None))
}

#[derive(Deserialize)]
pub(crate) struct SearchForm {
    #[serde(default)]
    nhs_number: String,
}

pub(crate) async fn search_result<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
    id: Option<Extension<RequestId>>,
    form: Result<Form<SearchForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let viewer = Viewer::of(&app, &caller).await;
    let entered = form.map(|Form(form)| form.nhs_number).unwrap_or_default();
    let problem = if entered.trim().is_empty() {
        Some("Enter the NHS number".to_owned())
    } else {
        match NhsNumber::parse(&entered) {
            Ok(number) => {
                let view = match app
                    .view_child(&caller.principal, number, &request_id(id))
                    .await
                {
                    Ok(view) => view,
                    Err(error) => return Err(PageError::for_viewer(error, viewer)),
                };
                return Ok(respond(StatusCode::OK, result_page(&viewer, number, &view)));
            }
            Err(_) if entered.chars().filter(char::is_ascii_digit).count() != 10 => {
                Some("NHS number must be 10 digits".to_owned())
            }
            Err(_) => Some("Enter a valid NHS number: this one's check digit is wrong".to_owned()),
        }
    };
    Ok(respond(
        StatusCode::BAD_REQUEST,
        search_page(&viewer, &entered, problem),
    ))
}

fn search_page(viewer: &Viewer, entered: &str, problem: Option<String>) -> Markup {
    let errors: Vec<(&str, String)> = problem
        .iter()
        .map(|message| ("nhs-number", message.clone()))
        .collect();
    let title = if problem.is_some() {
        "Error: Search by NHS number"
    } else {
        "Search by NHS number"
    };
    let content = html! {
        div.nhsuk-grid-row {
            div."nhsuk-grid-column-two-thirds" {
                (error_summary(&errors))
                form action="/app/search" method="post" novalidate {
                    (viewer.csrf_field())
                    div.nhsuk-form-group."nhsuk-form-group--error"[problem.is_some()] {
                        h1.nhsuk-label-wrapper {
                            label."nhsuk-label nhsuk-label--l" for="nhs-number" {
                                "Search by NHS number"
                            }
                        }
                        div.nhsuk-hint id="nhs-number-hint" {
                            "The child's 10-digit NHS number, or the mother's for an unborn child. For example, 943 476 5919."
                        }
                        (field_error("nhs-number", problem.as_deref()))
                        input."nhsuk-input nhsuk-input--width-10 nhsuk-input--code"."nhsuk-input--error"[problem.is_some()]
                            id="nhs-number" name="nhs_number" type="text" inputmode="numeric"
                            spellcheck="false" autocomplete="off" value=(entered)
                            aria-describedby=[described_by("nhs-number", true, problem.is_some())];
                    }
                    button.nhsuk-button type="submit" data-module="nhsuk-button" { "Search" }
                }
                @if viewer.principal.views_silently_only() {
                    div.nhsuk-inset-text {
                        span.nhsuk-u-visually-hidden { "Information: " }
                        p { "Your role views in scheduled care: your searches are recorded, but local authorities are not notified and they are not listed in a child's access history." }
                    }
                } @else {
                    p.nhsuk-body-s { "Your search is recorded. If the child has a plan, the local authority responsible is told who looked, when and from where." }
                }
            }
        }
    };
    page(title, Some(viewer), Section::Search, content)
}

fn result_page(viewer: &Viewer, number: NhsNumber, view: &ChildView) -> Markup {
    let plans = &view.answer.plans;
    let mut authorities: Vec<&LocalAuthority> = Vec::new();
    for (_, la) in plans {
        if !authorities.iter().any(|known| known.code == la.code) {
            authorities.push(la);
        }
    }
    let unborn_only = !plans.is_empty()
        && plans
            .iter()
            .all(|(plan, _)| plan.plan_type() == PlanType::UnbornChildProtection);
    let content = html! {
        span.nhsuk-caption-l { "NHS number " (number) }
        @if plans.is_empty() {
            h1 data-testid="no-flag" { "No child protection information" }
            p.nhsuk-lede-text {
                "No local authority in England has shared a child protection plan, looked-after status or unborn child protection plan for this NHS number."
            }
            div.nhsuk-inset-text {
                span.nhsuk-u-visually-hidden { "Information: " }
                p { "This does not mean there are no concerns. If you are worried about a child, follow your organisation's safeguarding procedures." }
            }
        } @else {
            h1.nhsuk-u-visually-hidden { "Child protection information" }
            @let heading = if unborn_only {
                "An unborn child protection plan is held for this pregnant woman's baby"
            } else {
                "Child protection information is held for this child"
            };
            (care_card(Care::Emergency, "flag-banner", "Important", heading, html! {
                ul.nhsuk-list {
                    @for (plan, la) in plans {
                        li data-testid="plan" { (plan_line(plan, la)) }
                    }
                }
                p { "Phone the local authority responsible before the child leaves, and share your concerns." }
            }))
            h2 { "Who to phone" }
            @for la in &authorities {
                div.nhsuk-card data-testid="authority" {
                    div.nhsuk-card__content {
                        h3.nhsuk-card__heading { (la.name) }
                        dl.nhsuk-summary-list {
                            div.nhsuk-summary-list__row {
                                dt.nhsuk-summary-list__key { "Emergency duty team (out of hours)" }
                                dd.nhsuk-summary-list__value {
                                    a.cpis-phone href=(la.emergency_duty_number.tel_uri()) { (la.emergency_duty_number.as_str()) }
                                }
                            }
                            div.nhsuk-summary-list__row {
                                dt.nhsuk-summary-list__key { "Office hours" }
                                dd.nhsuk-summary-list__value {
                                    a.cpis-phone href=(la.office_hours_number.tel_uri()) { (la.office_hours_number.as_str()) }
                                }
                            }
                        }
                    }
                }
            }
        }
        (history(&view.history))
        @if !view.answer.unscheduled {
            div.nhsuk-inset-text {
                span.nhsuk-u-visually-hidden { "Information: " }
                p { "This search was recorded as scheduled care: the local authority is not notified and it is not listed in the access history." }
            }
        }
        p { a href="/app/search" { "Search for another NHS number" } }
    };
    let title = if plans.is_empty() {
        "No child protection information"
    } else {
        "Child protection information"
    };
    page(title, Some(viewer), Section::Search, content)
}

fn plan_line(plan: &Plan, la: &LocalAuthority) -> Markup {
    html! {
        strong { (plan.plan_type().description()) }
        ", " (la.name) ", since " (long_date(plan.start_date()))
        @if let Some(end) = plan.end_date() {
            ", ended " (long_date(end))
        }
        @if let Some(due) = plan.expected_delivery_date() {
            ", baby expected " (long_date(due))
        }
    }
}

fn history(records: &[AccessRecord]) -> Markup {
    html! {
        h2 { "Who else has looked" }
        @if records.is_empty() {
            p data-testid="history-empty" { "Nobody else has looked at this record in unscheduled care." }
        } @else {
            p { "The most recent looks in unscheduled care (a person's repeat looks within 24 hours are listed once)." }
            (table("history", "Earlier looks at this record", &["When", "Who", "Where"], html! {
                @for record in records {
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell { (long_time(record.at)) }
                        td.nhsuk-table__cell { (record.user_name) br; span.nhsuk-body-s { (record.role_name) } }
                        td.nhsuk-table__cell { (record.organisation_name) br; span.nhsuk-body-s { (record.setting_type.description()) } }
                    }
                }
            }))
        }
    }
}
