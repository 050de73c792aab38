//! Identity and access: the authorization matrix over every route and
//! persona, token checks, the browser's sign-in, and LA systems' client
//! credentials.

use std::collections::HashMap;

use axum::http::Method;
use cpis_auth::SigningKey;
use cpis_http::Access;
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::support::{OTHER_LA, TEST_LA, TestServer, on_both_stores};

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Who calls, in the matrix: nobody, or a persona (of an LA).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Who {
    Anonymous,
    Persona(&'static str, &'static str),
}

const EVERYONE: [Who; 9] = [
    Who::Anonymous,
    Who::Persona("ed-clinician", TEST_LA),
    Who::Persona("gp-clinician", TEST_LA),
    Who::Persona("privacy-officer", TEST_LA),
    Who::Persona("ed-clerk", TEST_LA),
    Who::Persona("social-worker", TEST_LA),
    Who::Persona("la-system", TEST_LA),
    Who::Persona("admin", TEST_LA),
    Who::Persona("social-worker", OTHER_LA),
];

/// What one caller should get from one route.
fn expected(method: &Method, path: &str, who: Who) -> Option<StatusCode> {
    use StatusCode as S;
    let persona = match who {
        Who::Anonymous => None,
        Who::Persona(name, _) => Some(name),
    };
    let signed_in = |ok: StatusCode| {
        if persona.is_some() {
            ok
        } else {
            S::UNAUTHORIZED
        }
    };
    let only = |allowed: &[&str], ok: StatusCode| match persona {
        None => S::UNAUTHORIZED,
        Some(name) if allowed.contains(&name) => ok,
        Some(_) => S::FORBIDDEN,
    };
    // A page sends a stranger to sign in; a form posted without a session is refused.
    let page = |allowed: &[&str], ok: StatusCode| match persona {
        None if method == Method::GET => S::SEE_OTHER,
        _ => only(allowed, ok),
    };
    const CLINICIANS: &[&str] = &["ed-clinician", "gp-clinician"];
    const LA: &[&str] = &["social-worker", "la-system"];
    const PRIVACY: &[&str] = &["privacy-officer"];
    Some(match (method.as_str(), path) {
        ("GET", "/" | "/healthz" | "/readyz" | "/api/v1/status" | "/api/v1/local-authorities") => {
            S::OK
        }
        ("GET", "/.well-known/openid-configuration" | "/oauth2/jwks") => S::OK,
        ("POST", "/oauth2/token") => S::BAD_REQUEST,
        ("GET" | "POST", "/oauth2/authorize") => S::BAD_REQUEST,
        ("GET", "/auth/sign-in") => S::SEE_OTHER,
        ("GET", "/auth/callback") => S::BAD_REQUEST,
        ("POST", "/auth/sign-out") => signed_in(S::SEE_OTHER),
        ("GET", "/api/v1/me") => signed_in(S::OK),
        ("GET", "/admin/v1/la-clients") => only(&["admin"], S::OK),
        ("PUT", "/admin/v1/la-clients/{client_id}") => only(&["admin"], S::OK),
        ("GET", "/fhir/R4/metadata") => S::OK,
        ("GET", "/fhir/R4/CareTeam" | "/fhir/R4/AuditEvent") => {
            only(&["ed-clinician", "gp-clinician"], S::OK)
        }
        ("GET" | "PUT", "/la/v1/profile") => only(&["social-worker", "la-system"], S::OK),
        ("POST", "/la/v1/uploads") => only(&["social-worker", "la-system"], S::OK),
        ("GET", "/la/v1/uploads") => only(&["social-worker", "la-system"], S::OK),
        ("GET", "/la/v1/uploads/{id}") => only(&["social-worker", "la-system"], S::NOT_FOUND),
        // The matrix's server has made no checkpoint, and its proofs need parameters.
        ("GET", "/audit/v1/checkpoints/latest") => S::NOT_FOUND,
        ("GET", "/audit/v1/key") => S::OK,
        ("GET", "/audit/v1/reports/accesses") => only(&["privacy-officer"], S::OK),
        ("GET", "/audit/v1/proof/inclusion" | "/audit/v1/proof/consistency") => S::BAD_REQUEST,
        ("GET", "/la/v1/notifications") => only(&["social-worker", "la-system"], S::OK),
        // The matrix runs routes in their order: no webhook exists until the PUT.
        ("GET" | "DELETE", "/la/v1/webhook") => only(&["social-worker", "la-system"], S::NOT_FOUND),
        ("PUT", "/la/v1/webhook") => only(&["social-worker", "la-system"], S::OK),
        ("GET", "/la/v1/webhook/failures") => only(&["social-worker", "la-system"], S::OK),
        ("POST", "/la/v1/webhook/replay") => only(&["social-worker", "la-system"], S::OK),
        ("GET", "/about") => S::OK,
        // The matrix asks for an asset of a version that is not embedded.
        ("GET", "/assets/{version}/{*file}") => S::NOT_FOUND,
        ("GET", "/app") => page(
            &[
                "ed-clinician",
                "gp-clinician",
                "social-worker",
                "la-system",
                "privacy-officer",
            ],
            S::SEE_OTHER,
        ),
        ("GET", "/app/search") => page(CLINICIANS, S::OK),
        // The matrix's form is empty: each form page says what is missing.
        ("POST", "/app/search") => page(CLINICIANS, S::BAD_REQUEST),
        (
            "GET",
            "/app/la" | "/app/la/plans" | "/app/la/uploads" | "/app/la/webhook"
            | "/app/la/settings",
        ) => page(LA, S::OK),
        ("POST", "/app/la/uploads" | "/app/la/webhook" | "/app/la/settings") => {
            page(LA, S::BAD_REQUEST)
        }
        // An empty search lists the plans.
        ("POST", "/app/la/plans") => page(LA, S::OK),
        ("GET", "/app/la/uploads/{id}" | "/app/la/uploads/{id}/csv") => page(LA, S::NOT_FOUND),
        ("POST", "/app/la/webhook/replay") => page(LA, S::OK),
        ("GET", "/app/reports" | "/app/audit") => page(PRIVACY, S::OK),
        ("POST", "/app/reports" | "/app/reports/csv") => page(PRIVACY, S::BAD_REQUEST),
        ("POST", "/app/audit/verify") => page(PRIVACY, S::OK),
        _ => return None,
    })
}

/// A request that exercises the route: parameters filled, a valid body where one is needed.
fn request(client: &Client, server: &TestServer, method: &Method, path: &str) -> RequestBuilder {
    let concrete = path
        .replace("{client_id}", "matrix-client")
        .replace("{id}", &uuid::Uuid::now_v7().to_string())
        .replace("{version}/{*file}", "nhsuk-0.0.0/nhsuk-frontend.min.css");
    let concrete = if concrete == "/audit/v1/reports/accesses" {
        format!("{concrete}?nhs_number=9434765919")
    } else {
        concrete
    };
    let concrete = if concrete.starts_with("/fhir/R4/CareTeam")
        || concrete.starts_with("/fhir/R4/AuditEvent")
    {
        format!("{concrete}?patient:identifier=https://fhir.nhs.uk/Id/nhs-number%7C9434765919")
    } else {
        concrete
    };
    let builder = client.request(method.clone(), server.url(&concrete));
    match (method.as_str(), path) {
        ("PUT", "/admin/v1/la-clients/{client_id}") => {
            let key = SigningKey::generate().unwrap();
            builder.json(&json!({"la": TEST_LA, "public_key": key.public_jwk()}))
        }
        ("PUT", "/la/v1/profile") => builder.json(&json!({
            "name": "Matrix Borough",
            "emergency_duty_number": "01632 960999",
            "office_hours_number": "01632 960998",
        })),
        ("PUT", "/la/v1/webhook") => {
            builder.json(&json!({"url": "https://hooks.matrix.example/cpis"}))
        }
        ("POST", "/la/v1/webhook/replay") => builder.json(&json!({})),
        ("POST", "/la/v1/uploads") => builder
            .header("content-type", "text/csv")
            .body("nhs_number,plan_type,start_date\n9434765919,CPP,2026-01-05\n"),
        ("POST", _) => builder
            .header("content-type", "application/x-www-form-urlencoded")
            .body(""),
        _ => builder,
    }
}

on_both_stores! {

async fn every_route_answers_every_persona_as_the_matrix_says(server: TestServer) {
    let client = client();
    let tokens: HashMap<Who, String> = EVERYONE
        .iter()
        .filter_map(|who| match who {
            Who::Anonymous => None,
            Who::Persona(name, la) => Some((*who, server.token_for(name, la))),
        })
        .collect();
    let mut missing = Vec::new();
    for endpoint in &server.endpoints {
        if expected(&endpoint.method, endpoint.path, Who::Anonymous).is_none() {
            missing.push(format!("{} {}", endpoint.method, endpoint.path));
            continue;
        }
        for who in EVERYONE {
            let mut builder = request(&client, &server, &endpoint.method, endpoint.path);
            if let Some(token) = tokens.get(&who) {
                builder = builder.bearer_auth(token);
            }
            let response = builder.send().await.unwrap();
            let want = expected(&endpoint.method, endpoint.path, who).unwrap();
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            assert_eq!(status, want, "{} {} as {who:?}: {body}", endpoint.method, endpoint.path);
            // The access rule declared with the route agrees with the matrix.
            if endpoint.access == Access::Public {
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{} {}", endpoint.method, endpoint.path);
            }
            if (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN) && !endpoint.page {
                let outcome: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(outcome["resourceType"], "OperationOutcome", "{body}");
            }
        }
    }
    assert!(missing.is_empty(), "routes without a row in the authorization matrix: {missing:?}");
}

async fn an_la_sees_only_its_own_profile(server: TestServer) {
    let client = client();
    for (persona, la) in [("social-worker", TEST_LA), ("la-system", TEST_LA), ("social-worker", OTHER_LA)] {
        let profile: Value = client
            .get(server.url("/la/v1/profile"))
            .bearer_auth(server.token_for(persona, la))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(profile["code"], la, "{persona} of {la}");
    }
}

async fn bad_tokens_get_401_with_a_challenge_and_never_an_echo(server: TestServer) {
    let client = client();
    let good = server.persona_claims("ed-clinician", TEST_LA);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let with = |changes: &[(&str, Value)]| {
        let mut claims = good.clone();
        for (key, value) in changes {
            claims[*key] = value.clone();
        }
        server.sign(&claims)
    };
    let other_key = SigningKey::generate().unwrap();
    let good_token = server.sign(&good);
    let tampered = {
        let parts: Vec<&str> = good_token.split('.').collect();
        let mut claims = good.clone();
        claims["name"] = json!("Someone Else");
        let payload = base64_url(&serde_json::to_vec(&claims).unwrap());
        format!("{}.{}.{}", parts[0], payload, parts[2])
    };
    let unsigned = format!(
        "{}.{}.",
        base64_url(br#"{"alg":"none","typ":"JWT"}"#),
        base64_url(&serde_json::to_vec(&good).unwrap())
    );
    let hmac = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &good,
        &jsonwebtoken::EncodingKey::from_secret(b"a shared secret"),
    )
    .unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("expired", with(&[("exp", json!(now - 120))]), "expired"),
        ("not yet valid", with(&[("nbf", json!(now + 600))]), "not valid yet"),
        ("wrong audience", with(&[("aud", json!("someone-else"))]), "audience"),
        ("wrong issuer", with(&[("iss", json!("https://evil.example"))]), "not trusted"),
        ("no expiry", {
            let mut claims = good.clone();
            claims.as_object_mut().unwrap().remove("exp");
            server.sign(&claims)
        }, "exp"),
        ("unknown key", other_key.sign(&good).unwrap(), "key"),
        ("tampered", tampered, "signature"),
        ("alg none", unsigned, ""),
        ("HMAC", hmac, "not accepted"),
        ("garbage", "not-a-jwt".to_owned(), "well-formed"),
    ];
    for (name, token, reason) in cases {
        let response = client
            .get(server.url("/api/v1/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Bearer realm=\"cpis\""), "{name}: {challenge}");
        assert!(challenge.contains(reason), "{name}: {challenge}");
        let body = response.text().await.unwrap();
        assert!(body.contains("OperationOutcome"), "{name}: {body}");
        assert!(!body.contains(&token) && !challenge.contains(&token), "{name}: the token is echoed");
    }
    // No credentials at all: a bare challenge.
    let response = client.get(server.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["www-authenticate"], "Bearer realm=\"cpis\"");
    // A malformed Authorization header.
    let response = client
        .get(server.url("/api/v1/me"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // And the good token works.
    let me: Value = client
        .get(server.url("/api/v1/me"))
        .bearer_auth(&good_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["principal"]["display_name"], "Dr Amara Okafor");
    assert_eq!(me["principal"]["role_code"], "R8000");
    assert_eq!(me["permissions"], json!(["view_flag"]));
}

async fn an_unregistered_organisation_is_refused(server: TestServer) {
    let mut claims = server.persona_claims("ed-clinician", TEST_LA);
    claims["nhsid_nrbac_roles"][0]["org_code"] = json!("ZZXX999");
    let response = client()
        .get(server.url("/api/v1/me"))
        .bearer_auth(server.sign(&claims))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let outcome: Value = response.json().await.unwrap();
    assert_eq!(outcome["issue"][0]["details"]["coding"][0]["code"], "ACCESS_DENIED");
    assert!(outcome["issue"][0]["diagnostics"].as_str().unwrap().contains("ZZXX999"));
}

async fn a_browser_signs_in_with_pkce_keeps_a_session_and_signs_out(server: TestServer) {
    let client = client();
    // 1. cpis sends the browser to the provider (here its own development issuer).
    let start = client
        .get(server.url("/auth/sign-in?return_to=/api/v1/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let authorize = start.headers()["location"].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(&server.url("/oauth2/authorize?")), "{authorize}");
    let params: HashMap<String, String> = query_of(&authorize);
    assert_eq!(params["code_challenge_method"], "S256");
    // 2. The provider's page lists the personas.
    let page = client.get(&authorize).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("ed-clinician") && page.contains("privacy-officer"), "{page}");
    // 3. The person picks one; the provider redirects back with a code.
    let mut form = params.clone();
    form.insert("persona".into(), "ed-clinician".into());
    let chosen = client
        .post(server.url("/oauth2/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(chosen.status(), StatusCode::SEE_OTHER);
    let callback = chosen.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&server.url("/auth/callback?code=")), "{callback}");
    // 4. cpis exchanges the code (with the PKCE verifier) and opens a session.
    let done = client.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER, "{:?}", done.text().await);
    assert_eq!(done.headers()["location"], "/api/v1/me");
    let set_cookie = done.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "plain http on localhost: {set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    // The same callback cannot be used twice.
    let replay = client.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);

    let me: Value = client
        .get(server.url("/api/v1/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["principal"]["display_name"], "Dr Amara Okafor");
    let csrf = me["csrf_token"].as_str().unwrap().to_owned();

    // 5. Changes need the CSRF token: a cookie alone is refused.
    let forged = client
        .post(server.url("/auth/sign-out"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let wrong = client
        .post(server.url("/auth/sign-out"))
        .header("cookie", &cookie)
        .form(&[("csrf_token", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let out = client
        .post(server.url("/auth/sign-out"))
        .header("cookie", &cookie)
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(out.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    let after = client
        .get(server.url("/api/v1/me"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
}

async fn a_wrong_pkce_verifier_or_redirect_gets_no_token(server: TestServer) {
    let client = client();
    let verifier = "a-verifier-of-enough-length-for-rfc-7636-000000000";
    let challenge = cpis_auth::pkce::code_challenge(verifier);
    let form = |redirect: &str| {
        vec![
            ("response_type", "code".to_owned()),
            ("client_id", "cpis".to_owned()),
            ("redirect_uri", redirect.to_owned()),
            ("state", "s".to_owned()),
            ("nonce", "n".to_owned()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", "S256".to_owned()),
            ("persona", "ed-clinician".to_owned()),
        ]
    };
    let redirect = server.url("/auth/callback");
    // A redirect URI that is not the registered one is refused outright.
    let evil = client
        .post(server.url("/oauth2/authorize"))
        .form(&form("https://evil.example/callback"))
        .send()
        .await
        .unwrap();
    assert_eq!(evil.status(), StatusCode::BAD_REQUEST);
    let chosen = client
        .post(server.url("/oauth2/authorize"))
        .form(&form(&redirect))
        .send()
        .await
        .unwrap();
    let location = chosen.headers()["location"].to_str().unwrap().to_owned();
    let code = query_of(&location)["code"].clone();
    let exchange = |verifier: &str| {
        client.post(server.url("/oauth2/token")).form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", "cpis"),
            ("redirect_uri", redirect.as_str()),
            ("code_verifier", verifier),
        ])
    };
    let refused = exchange("not-the-verifier").send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    // The code was spent by the failed attempt.
    let spent = exchange(verifier).send().await.unwrap();
    assert_eq!(spent.status(), StatusCode::BAD_REQUEST);
}

async fn an_la_system_gets_a_token_with_a_signed_assertion_once(server: TestServer) {
    let client = client();
    let la_key = SigningKey::generate().unwrap();
    let registered = client
        .put(server.url("/admin/v1/la-clients/camden-mosaic"))
        .bearer_auth(server.token("admin"))
        .json(&json!({"la": TEST_LA, "public_key": la_key.public_jwk()}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), StatusCode::OK, "{:?}", registered.text().await);
    let token_endpoint = server.url("/oauth2/token");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let assertion = |key: &SigningKey, changes: &[(&str, Value)]| {
        let mut claims = json!({
            "iss": "camden-mosaic", "sub": "camden-mosaic", "aud": token_endpoint,
            "iat": now, "exp": now + 120, "jti": uuid::Uuid::now_v7().to_string(),
        });
        for (name, value) in changes {
            claims[*name] = value.clone();
        }
        key.sign(&claims).unwrap()
    };
    let ask = |assertion: String| {
        client.post(server.url("/oauth2/token")).form(&[
            ("grant_type", "client_credentials".to_owned()),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned()),
            ("client_assertion", assertion),
        ])
    };
    let good = assertion(&la_key, &[]);
    let response = ask(good.clone()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let access = tokens["access_token"].as_str().unwrap();
    let profile: Value = client
        .get(server.url("/la/v1/profile"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile["code"], TEST_LA);
    let me: Value = client.get(server.url("/api/v1/me")).bearer_auth(access).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["principal"]["kind"], "la_system");
    assert_eq!(me["principal"]["user_id"], "camden-mosaic");
    // An LA system is not an administrator.
    let admin = client.get(server.url("/admin/v1/la-clients")).bearer_auth(access).send().await.unwrap();
    assert_eq!(admin.status(), StatusCode::FORBIDDEN);

    let other_key = SigningKey::generate().unwrap();
    let refusals = [
        ("replayed", good),
        ("signed by another key", assertion(&other_key, &[])),
        ("long-lived", assertion(&la_key, &[("exp", json!(now + 3600))])),
        ("expired", assertion(&la_key, &[("exp", json!(now - 120))])),
        ("for another audience", assertion(&la_key, &[("aud", json!("https://elsewhere.example/token"))])),
        ("sub differs", assertion(&la_key, &[("sub", json!("someone-else"))])),
        ("unknown client", assertion(&la_key, &[("iss", json!("nobody")), ("sub", json!("nobody"))])),
    ];
    for (name, assertion) in refusals {
        let response = ask(assertion).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{name}: {body}");
    }
    let no_assertion = client
        .post(server.url("/oauth2/token"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(no_assertion.status(), StatusCode::BAD_REQUEST);
    let password = client
        .post(server.url("/oauth2/token"))
        .form(&[("grant_type", "password"), ("username", "x"), ("password", "y")])
        .send()
        .await
        .unwrap();
    let body: Value = password.json().await.unwrap();
    assert_eq!(body["error"], "unsupported_grant_type");
}

async fn registering_an_la_system_checks_its_key_and_la(server: TestServer) {
    let client = client();
    let admin = server.token("admin");
    let key = SigningKey::generate().unwrap();
    let put = |id: &str, body: Value| {
        client
            .put(server.url(&format!("/admin/v1/la-clients/{id}")))
            .bearer_auth(&admin)
            .json(&body)
    };
    let cases = [
        ("x", json!({"la": TEST_LA, "public_key": key.public_jwk()}), "client id"),
        ("good-id", json!({"la": "E06000999", "public_key": key.public_jwk()}), "not a registered local authority"),
        ("good-id", json!({"la": TEST_LA, "public_key": {"kty": "oct", "k": "c2VjcmV0"}}), "unusable"),
        ("good-id", json!({"la": TEST_LA}), "public_key"),
        ("good-id", json!({"la": TEST_LA, "public_key": key.public_jwk(), "secret": 1}), "unknown field"),
    ];
    for (id, body, reason) in cases {
        let response = put(id, body).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{reason}");
        let text = response.text().await.unwrap();
        assert!(text.contains(reason), "{reason}: {text}");
    }
    let listed: Value = client.get(server.url("/admin/v1/la-clients")).bearer_auth(&admin).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed, json!([]), "nothing was registered");
}

}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn query_of(url: &str) -> HashMap<String, String> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    serde_urlencoded::from_str(query).unwrap()
}
