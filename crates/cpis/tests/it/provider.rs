//! Sign-in against an independent OpenID Connect provider
//! (oauth2-mock-server, from the npm registry): tokens it signs with RS256
//! and ES256 keys, key rotation, the refusals, and the browser flow with PKCE.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Provider, TestServer};

fn cis2_claims() -> Value {
    json!({
        "aud": "cpis",
        "nhsid_useruid": "555000999001",
        "name": "Dr Outside Provider",
        "selected_roleid": "r1",
        "nhsid_nrbac_roles": [{
            "person_roleid": "r1",
            "org_code": "ZZED000",
            "role_name": "\"Clinical\":\"Clinical Provision\":\"Clinical Practitioner Access Role\"",
            "role_code": "S8000:G8000:R8000",
            "activity_codes": ["B0107"]
        }]
    })
}

async fn me(server: &TestServer, token: &str) -> (StatusCode, String, String) {
    let response = reqwest::Client::new()
        .get(server.url("/api/v1/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, response.text().await.unwrap())
}

fn with(changes: &[(&str, Value)]) -> Value {
    let mut claims = cis2_claims();
    for (name, value) in changes {
        claims[*name] = value.clone();
    }
    claims
}

#[tokio::test]
async fn tokens_from_an_independent_provider_pass_or_fail_as_they_should() {
    let Some(provider) = Provider::start() else {
        return;
    };
    let server = TestServer::with_provider(&provider.issuer).await;

    let rs256 = provider
        .mint(json!({"claims": cis2_claims(), "kid": provider.keys[0]}))
        .await;
    let (status, _, body) = me(&server, &rs256).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["principal"]["display_name"], "Dr Outside Provider");
    assert_eq!(body["principal"]["role_code"], "R8000");
    assert_eq!(body["permissions"], json!(["view_flag"]));

    let es256 = provider
        .mint(json!({"claims": cis2_claims(), "kid": provider.keys[1]}))
        .await;
    assert_eq!(me(&server, &es256).await.0, StatusCode::OK);

    // The provider rotates to a new key: the unknown kid triggers one refetch.
    let new_kid = provider.rotate("RS256").await;
    let rotated = provider
        .mint(json!({"claims": cis2_claims(), "kid": new_kid}))
        .await;
    assert_eq!(
        me(&server, &rotated).await.0,
        StatusCode::OK,
        "a rotated key is picked up"
    );

    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let good_parts: Vec<String> = rs256.split('.').map(str::to_owned).collect();
    let b64 = |bytes: &[u8]| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            provider
                .mint(json!({"claims": cis2_claims(), "expiresIn": -600}))
                .await,
            "expired",
        ),
        (
            "not yet valid",
            provider
                .mint(json!({"claims": with(&[("nbf", json!(now + 900))])}))
                .await,
            "not valid yet",
        ),
        (
            "wrong audience",
            provider
                .mint(json!({"claims": with(&[("aud", json!("another-api"))])}))
                .await,
            "audience",
        ),
        (
            "wrong issuer",
            provider
                .mint(json!({"claims": with(&[("iss", json!("https://impostor.example"))])}))
                .await,
            "not trusted",
        ),
        (
            "unknown key",
            provider
                .mint(json!({"claims": cis2_claims(), "header": {"kid": "not-a-published-key"}}))
                .await,
            "key",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                good_parts[1]
            ),
            "",
        ),
        (
            "tampered",
            {
                let mut claims: Value = serde_json::from_slice(&{
                    use base64::Engine;
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(&good_parts[1])
                        .unwrap()
                })
                .unwrap();
                claims["nhsid_nrbac_roles"][0]["activity_codes"] = json!(["B0107", "R0001"]);
                format!(
                    "{}.{}.{}",
                    good_parts[0],
                    b64(&serde_json::to_vec(&claims).unwrap()),
                    good_parts[2]
                )
            },
            "signature",
        ),
        (
            "HMAC",
            jsonwebtoken::encode(
                &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
                &with(&[("iss", json!(provider.issuer)), ("exp", json!(now + 600))]),
                &jsonwebtoken::EncodingKey::from_secret(b"guessable"),
            )
            .unwrap(),
            "not accepted",
        ),
    ];
    for (name, token, reason) in cases {
        let (status, challenge, body) = me(&server, &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
        assert!(challenge.contains(reason), "{name}: {challenge}");
    }
}

#[tokio::test]
async fn a_person_signs_in_through_the_independent_provider() {
    let Some(provider) = Provider::start() else {
        return;
    };
    let server = TestServer::with_provider(&provider.issuer).await;
    provider.next_claims(cis2_claims()).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let start = client
        .get(server.url("/auth/sign-in"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let authorize = start.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        authorize.starts_with(&format!("{}/authorize?", provider.issuer)),
        "{authorize}"
    );
    // The provider signs the person in and sends the browser back with a code.
    let back = client.get(&authorize).send().await.unwrap();
    assert!(back.status().is_redirection(), "{}", back.status());
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        callback.starts_with(&server.url("/auth/callback?")),
        "{callback}"
    );
    let done = client.get(&callback).send().await.unwrap();
    assert_eq!(
        done.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        done.text().await
    );
    let cookie = done.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let me: Value = client
        .get(server.url("/api/v1/me"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["principal"]["display_name"], "Dr Outside Provider");
    // Without development sign-in, the service's own issuer signs in no one.
    let own = client
        .get(server.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    let own: Value = own.json().await.unwrap();
    assert!(own.get("authorization_endpoint").is_none(), "{own}");
}
