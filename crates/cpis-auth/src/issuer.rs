//! The service's own issuer: access tokens for local authority systems
//! (OAuth 2.0 client credentials with a signed JWT assertion, RFC 7523), and,
//! in development only, tokens for the demo personas.

use std::sync::Arc;

use cpis_domain::LaCode;
use jsonwebtoken::Validation;
use jsonwebtoken::jwk::Jwk;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::validator::{ALLOWED_ALGORITHMS, LEEWAY_SECONDS};
use crate::{AuthError, SigningKey, decoding_key_from_jwk};

/// The `cpis_kind` claim of an LA system's access token.
pub const LA_SYSTEM_KIND: &str = "la_system";

/// How long an LA system's access token lives.
pub const LA_SYSTEM_TOKEN_SECONDS: i64 = 15 * 60;

/// The longest a client assertion may live: a longer one is a standing
/// credential, not a proof of possession.
pub const MAX_ASSERTION_SECONDS: i64 = 5 * 60;

/// How long a development persona's token lives: one shift.
pub const PERSONA_TOKEN_SECONDS: i64 = 8 * 60 * 60;

/// The answer of the token endpoint (RFC 6749 section 5.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id_token: Option<String>,
}

/// A verified client assertion: its id, to refuse replays until it expires.
#[derive(Debug, Clone)]
pub struct ClientAssertion {
    pub jti: String,
    pub expires_at: OffsetDateTime,
}

/// A made-up person (or system) the development issuer signs in as.
#[derive(Debug, Clone, Serialize)]
pub struct Persona {
    pub name: &'static str,
    pub description: String,
    pub user_id: &'static str,
    pub display_name: &'static str,
    pub role_code: &'static str,
    pub role_name: &'static str,
    pub activities: Vec<&'static str>,
    pub organisation: String,
    pub la_system: bool,
}

/// The demo personas; the LA ones work for `la`.
pub fn personas(la: LaCode) -> Vec<Persona> {
    let person = |name,
                  description: &str,
                  user_id,
                  display_name,
                  role_code,
                  role_name,
                  activities: &[&'static str],
                  organisation: &str| Persona {
        name,
        description: description.to_owned(),
        user_id,
        display_name,
        role_code,
        role_name,
        activities: activities.to_vec(),
        organisation: organisation.to_owned(),
        la_system: false,
    };
    vec![
        person(
            "ed-clinician",
            "an emergency department clinician (B0107: sees the flag; the LA is notified)",
            "555000000101",
            "Dr Amara Okafor",
            "S8000:G8000:R8000",
            "Clinical Practitioner Access Role",
            &["B0107", "B0360"],
            "ZZED000",
        ),
        person(
            "gp-clinician",
            "a GP (B0170: sees the flag silently; the LA is not notified)",
            "555000000102",
            "Dr Ben Hartley",
            "S8000:G8000:R8000",
            "Clinical Practitioner Access Role",
            &["B0170"],
            "ZZGP000",
        ),
        person(
            "privacy-officer",
            "a privacy officer (R0001: reads the access reports)",
            "555000000103",
            "Priya Shah",
            "S8001:G8005:R0001",
            "Privacy Officer",
            &[],
            "ZZED000",
        ),
        person(
            "ed-clerk",
            "an emergency department clerk without CP-IS activities (refused)",
            "555000000104",
            "Jo Bloggs",
            "S8001:G8001:R8003",
            "Health Professional Access Role",
            &["B0360"],
            "ZZED000",
        ),
        person(
            "social-worker",
            &format!("a social worker of local authority {la}"),
            "555000000105",
            "Sam Carter",
            "LA-STAFF",
            "Social Worker",
            &[],
            la.as_str(),
        ),
        Persona {
            la_system: true,
            ..person(
                "la-system",
                &format!("the case-management system of local authority {la}"),
                "la-system-demo",
                "Demo case-management system",
                "LA-SYSTEM",
                "Local authority system",
                &[],
                la.as_str(),
            )
        },
        person(
            "admin",
            "a service administrator (registers LA systems)",
            "555000000106",
            "Alex Morgan",
            cpis_domain::ADMINISTRATOR_ROLE,
            "Service administrator",
            &[],
            "ZZED000",
        ),
    ]
}

/// The service's own issuer.
pub struct OwnIssuer {
    /// The issuer URL, also the base of its endpoints.
    pub url: String,
    /// The audience of the tokens it issues.
    pub audience: String,
    pub key: Arc<SigningKey>,
    /// Whether it signs in development personas.
    pub development: bool,
}

impl OwnIssuer {
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.url)
    }

    pub fn authorization_endpoint(&self) -> String {
        format!("{}/oauth2/authorize", self.url)
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/oauth2/jwks", self.url)
    }

    /// The OpenID Provider Metadata this issuer serves.
    pub fn discovery_document(&self) -> Value {
        let mut document = json!({
            "issuer": self.url,
            "jwks_uri": self.jwks_uri(),
            "token_endpoint": self.token_endpoint(),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "subject_types_supported": ["public"],
            "response_types_supported": [],
        });
        if self.development {
            document["authorization_endpoint"] = json!(self.authorization_endpoint());
            document["grant_types_supported"] = json!(["client_credentials", "authorization_code"]);
            document["token_endpoint_auth_methods_supported"] = json!(["private_key_jwt", "none"]);
            document["response_types_supported"] = json!(["code"]);
            document["code_challenge_methods_supported"] = json!(["S256"]);
            document["scopes_supported"] = json!(["openid"]);
        }
        document
    }

    /// An access token for an LA system.
    pub fn issue_la_system(
        &self,
        client_id: &str,
        la: LaCode,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<TokenResponse, AuthError> {
        let claims = json!({
            "iss": self.url,
            "aud": self.audience,
            "sub": client_id,
            "name": name,
            "cpis_kind": LA_SYSTEM_KIND,
            "cpis_la": la.as_str(),
            "iat": now.unix_timestamp(),
            "exp": now.unix_timestamp() + LA_SYSTEM_TOKEN_SECONDS,
            "jti": uuid::Uuid::now_v7().to_string(),
        });
        Ok(TokenResponse {
            access_token: self.key.sign(&claims)?,
            token_type: "Bearer".into(),
            expires_in: LA_SYSTEM_TOKEN_SECONDS,
            id_token: None,
        })
    }

    /// A token for a development persona, shaped like CIS2's (or, for the
    /// LA system persona, like an LA system's). `audience` is the API's for
    /// access tokens and the client's for ID tokens.
    pub fn issue_persona(
        &self,
        persona: &Persona,
        audience: &str,
        nonce: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<String, AuthError> {
        if !self.development {
            return Err(AuthError::Claims(
                "development personas are off in this configuration".into(),
            ));
        }
        let mut claims = if persona.la_system {
            json!({
                "sub": persona.user_id,
                "name": persona.display_name,
                "cpis_kind": LA_SYSTEM_KIND,
                "cpis_la": persona.organisation,
            })
        } else {
            json!({
                "sub": persona.user_id,
                "nhsid_useruid": persona.user_id,
                "name": persona.display_name,
                "selected_roleid": format!("{}01", persona.user_id),
                "nhsid_nrbac_roles": [{
                    "person_roleid": format!("{}01", persona.user_id),
                    "org_code": persona.organisation,
                    "role_name": persona.role_name,
                    "role_code": persona.role_code,
                    "activity_codes": persona.activities,
                }],
                "cpis_persona": persona.name,
            })
        };
        claims["iss"] = json!(self.url);
        claims["aud"] = json!(audience);
        claims["iat"] = json!(now.unix_timestamp());
        claims["exp"] = json!(now.unix_timestamp() + PERSONA_TOKEN_SECONDS);
        claims["jti"] = json!(uuid::Uuid::now_v7().to_string());
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        self.key.sign(&claims)
    }

    /// Checks an LA system's client assertion (RFC 7523): signed by the key
    /// registered for `client_id`, `iss` and `sub` both the client id, `aud`
    /// this issuer or its token endpoint, short-lived, with a `jti`.
    pub fn verify_client_assertion(
        &self,
        assertion: &str,
        client_id: &str,
        registered: &Jwk,
        now: OffsetDateTime,
    ) -> Result<ClientAssertion, AuthError> {
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| AuthError::Malformed)?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(AuthError::Algorithm(format!("{:?}", header.alg)));
        }
        let (key, algorithms) = decoding_key_from_jwk(registered)?;
        if !algorithms.contains(&header.alg) {
            return Err(AuthError::Algorithm(format!(
                "{:?} with the registered key",
                header.alg
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[client_id]);
        validation.sub = Some(client_id.to_owned());
        validation.set_audience(&[self.token_endpoint(), self.url.clone()]);
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        let data =
            jsonwebtoken::decode::<Value>(assertion, &key, &validation).map_err(|error| {
                use jsonwebtoken::errors::ErrorKind;
                match error.kind() {
                    ErrorKind::ExpiredSignature => AuthError::Expired,
                    ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                    ErrorKind::InvalidAudience => AuthError::Audience,
                    ErrorKind::InvalidSignature => AuthError::Signature,
                    ErrorKind::MissingRequiredClaim(claim) => {
                        AuthError::MissingClaim(claim.clone())
                    }
                    _ => AuthError::Claims(
                        "the assertion's iss and sub must both be the client id".into(),
                    ),
                }
            })?;
        let exp = data
            .claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or_else(|| AuthError::MissingClaim("exp".into()))?;
        if exp - now.unix_timestamp() > MAX_ASSERTION_SECONDS + LEEWAY_SECONDS as i64 {
            return Err(AuthError::Claims(format!(
                "the assertion lives longer than {MAX_ASSERTION_SECONDS} seconds"
            )));
        }
        let jti = data
            .claims
            .get("jti")
            .and_then(Value::as_str)
            .filter(|jti| !jti.is_empty() && jti.len() <= 200)
            .ok_or_else(|| AuthError::MissingClaim("jti".into()))?;
        Ok(ClientAssertion {
            jti: jti.to_owned(),
            expires_at: OffsetDateTime::from_unix_timestamp(exp + LEEWAY_SECONDS as i64)
                .map_err(|_| AuthError::Claims("exp is out of range".into()))?,
        })
    }
}
