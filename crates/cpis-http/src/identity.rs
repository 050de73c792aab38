//! Identity routes: the service's own issuer (discovery, keys, token
//! endpoint, and the development sign-in page), the browser's sign-in and
//! sign-out, the caller's own identity, and LA system registration.

use std::sync::Arc;

use axum::extract::rejection::{FormRejection, JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Extension, Form, Json};
use cpis_core::Cpis;
use cpis_core::identity::{AuthorizeRequest, OAuthError, SESSION_LIFETIME, TokenRequest};
use cpis_domain::{LaCode, Permission};
use cpis_store::Store;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{Caller, SESSION_COOKIE};
use crate::error::HttpError;

type App<S> = State<Arc<Cpis<S>>>;

/// Who the caller is, what they may do, and (for a browser session) the
/// CSRF token to send back with changes.
pub(crate) async fn me(Extension(caller): Extension<Caller>) -> Response {
    let permissions: Vec<Permission> = caller.principal.permissions().collect();
    Json(json!({
        "principal": *caller.principal,
        "permissions": permissions,
        "csrf_token": caller.session.as_ref().map(|(_, csrf)| csrf),
    }))
    .into_response()
}

pub(crate) async fn discovery<S: Store>(State(app): App<S>) -> Response {
    Json(app.identity().own.discovery_document()).into_response()
}

pub(crate) async fn jwks<S: Store>(State(app): App<S>) -> Response {
    Json(app.identity().signing_key().jwks()).into_response()
}

pub(crate) async fn token<S: Store>(
    State(app): App<S>,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Result<Response, HttpError> {
    let Form(request) = form.map_err(|rejection| OAuthError {
        error: "invalid_request",
        description: format!("the token request is not a valid form: {rejection}"),
    })?;
    let tokens = app.token(request).await?;
    let mut response = Json(tokens).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The development issuer's sign-in page: pick a persona.
pub(crate) async fn authorize_page<S: Store>(
    State(app): App<S>,
    query: Result<Query<AuthorizeRequest>, QueryRejection>,
) -> Result<Response, HttpError> {
    let Query(request) = query.map_err(|rejection| {
        HttpError::invalid(format!(
            "the authorization request is incomplete: {rejection}"
        ))
    })?;
    app.check_authorize_request(&request)?;
    let hidden = |name: &str, value: &str| {
        format!(
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(value)
        )
    };
    let fields = [
        hidden("response_type", &request.response_type),
        hidden("client_id", &request.client_id),
        hidden("redirect_uri", &request.redirect_uri),
        hidden("state", &request.state),
        hidden("nonce", request.nonce.as_deref().unwrap_or_default()),
        hidden("code_challenge", &request.code_challenge),
        hidden("code_challenge_method", &request.code_challenge_method),
    ]
    .concat();
    let choices: String = app
        .personas()
        .iter()
        .filter(|persona| !persona.la_system)
        .map(|persona| {
            format!(
                "<li><form method=\"post\" action=\"/oauth2/authorize\">{fields}<input type=\"hidden\" name=\"persona\" value=\"{name}\"><button type=\"submit\">{display}</button> <span>{description} &middot; <code>{name}</code></span></form></li>",
                name = escape(persona.name),
                display = escape(persona.display_name),
                description = escape(&persona.description),
            )
        })
        .collect();
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Sign in (development)</title>\
         <style>body{{font-family:Arial,sans-serif;max-width:46em;margin:2em auto;padding:0 1em;color:#212b32}}li{{margin:.75em 0;list-style:none}}button{{font-size:1em;padding:.4em .8em;background:#007f3b;color:#fff;border:0;border-radius:4px}}button:focus{{outline:3px solid #ffeb3b}}.warning{{border-left:8px solid #d5281b;padding:.5em 1em;background:#fff9c4}}</style></head>\
         <body><main><h1>Sign in as a demo persona</h1><p class=\"warning\">This is the development identity provider of cpis. It signs anyone in without a password and must never run in production.</p><ul>{choices}</ul></main></body></html>"
    );
    Ok(Html(page).into_response())
}

#[derive(Deserialize)]
pub(crate) struct ChooseForm {
    response_type: String,
    client_id: String,
    redirect_uri: String,
    state: String,
    #[serde(default)]
    nonce: Option<String>,
    code_challenge: String,
    code_challenge_method: String,
    persona: String,
}

pub(crate) async fn authorize_choose<S: Store>(
    State(app): App<S>,
    form: Result<Form<ChooseForm>, FormRejection>,
) -> Result<Response, HttpError> {
    let Form(form) = form.map_err(|rejection| {
        HttpError::invalid(format!("the sign-in form is incomplete: {rejection}"))
    })?;
    let request = AuthorizeRequest {
        response_type: form.response_type,
        client_id: form.client_id,
        redirect_uri: form.redirect_uri,
        state: form.state,
        nonce: form.nonce.filter(|nonce| !nonce.is_empty()),
        code_challenge: form.code_challenge,
        code_challenge_method: form.code_challenge_method,
    };
    let location = app.authorize_persona(&request, &form.persona).await?;
    Ok(Redirect::to(&location).into_response())
}

#[derive(Deserialize)]
pub(crate) struct SignInQuery {
    #[serde(default)]
    return_to: Option<String>,
}

pub(crate) async fn sign_in<S: Store>(
    State(app): App<S>,
    Query(query): Query<SignInQuery>,
) -> Result<Response, HttpError> {
    let location = app
        .begin_sign_in(query.return_to.as_deref().unwrap_or("/"))
        .await?;
    Ok(Redirect::to(&location).into_response())
}

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

pub(crate) async fn callback<S: Store>(
    State(app): App<S>,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, HttpError> {
    if let Some(error) = query.error {
        return Err(HttpError::Unauthenticated(format!(
            "the identity provider did not sign you in ({error}{}); try again",
            query
                .error_description
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        )));
    }
    let (Some(code), Some(state)) = (query.code, query.state) else {
        return Err(HttpError::invalid(
            "the sign-in callback needs code and state parameters",
        ));
    };
    let (session_id, return_to) = app.finish_sign_in(&code, &state).await?;
    let secure = app.identity().own.url.starts_with("https://");
    let cookie = format!(
        "{SESSION_COOKIE}={session_id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        SESSION_LIFETIME.whole_seconds(),
        if secure { "; Secure" } else { "" }
    );
    let mut response = Redirect::to(&return_to).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

pub(crate) async fn sign_out<S: Store>(
    State(app): App<S>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, HttpError> {
    let location = match &caller.session {
        Some((session_id, _)) => app.sign_out(session_id).await?,
        None => "/".to_owned(),
    };
    let mut response = Redirect::to(&location).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("cpis_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
    );
    Ok(response)
}

pub(crate) async fn la_clients<S: Store>(State(app): App<S>) -> Result<Response, HttpError> {
    Ok(Json(app.la_clients().await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterClient {
    la: LaCode,
    public_key: serde_json::Value,
}

pub(crate) async fn register_la_client<S: Store>(
    State(app): App<S>,
    Path(client_id): Path<String>,
    body: Result<Json<RegisterClient>, JsonRejection>,
) -> Result<Response, HttpError> {
    let Json(body) = body.map_err(|rejection| {
        HttpError::invalid(format!(
            "send {{\"la\": \"E09000007\", \"public_key\": {{a JWK}}}}: {}",
            rejection.body_text()
        ))
    })?;
    let client = app
        .register_la_client(&client_id, body.la, body.public_key)
        .await?;
    Ok((StatusCode::OK, Json(client)).into_response())
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}
