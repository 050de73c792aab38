//! Sign-in and access control as use cases: bearer tokens, the browser's
//! authorization-code flow and its sessions, LA systems' client
//! credentials, the development issuer's personas, and the permission check
//! every handler goes through.

use std::sync::Arc;

use cpis_auth::{
    AuthError, OwnIssuer, Persona, SigningKey, TokenResponse, TokenValidator, personas, pkce,
};
use cpis_domain::{LaCode, OrganisationRef, Principal};
use cpis_store::{LaClient, Store};
use serde::{Deserialize, Serialize};
use time::Duration;

use crate::{CoreError, Cpis};

/// How long a browser session lasts.
pub const SESSION_LIFETIME: Duration = Duration::hours(8);
/// How long a sign-in may take between leaving for the provider and returning.
pub const SIGN_IN_LIFETIME: Duration = Duration::minutes(10);
/// How long a development authorization code is good for.
const CODE_LIFETIME: Duration = Duration::seconds(60);

const SESSIONS: &str = "session";
const SIGN_INS: &str = "sign-in";
const CODES: &str = "code";
const ASSERTIONS: &str = "assertion";

/// The browser flow's client registration at the provider.
#[derive(Debug, Clone)]
pub struct BrowserClient {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub end_session_endpoint: Option<String>,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub redirect_uri: String,
}

/// Everything about identity the service was configured with.
pub struct Identity {
    pub validator: TokenValidator,
    pub own: OwnIssuer,
    /// `None` where no provider with an authorization endpoint is configured.
    pub browser: Option<BrowserClient>,
    /// The LA that development personas of local authorities work for.
    pub development_la: LaCode,
    pub http: reqwest::Client,
}

impl Identity {
    pub fn signing_key(&self) -> &Arc<SigningKey> {
        &self.own.key
    }
}

/// Why a caller was turned away, split by the status it gets.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// 401: no credentials, or credentials that do not hold.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: a valid principal without the permission.
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl From<cpis_store::StoreError> for AccessError {
    fn from(error: cpis_store::StoreError) -> Self {
        AccessError::Core(CoreError::Store(error))
    }
}

/// A browser session, as kept in the store under the hash of its id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub principal: Principal,
    /// The token forms and scripts send back on every change.
    pub csrf_token: String,
}

#[derive(Serialize, Deserialize)]
struct PendingSignIn {
    verifier: String,
    nonce: String,
    return_to: String,
}

#[derive(Serialize, Deserialize)]
struct PendingCode {
    persona: String,
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
}

/// The parameters of an authorization request to the development issuer.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AuthorizeRequest {
    pub response_type: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub state: String,
    #[serde(default)]
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub code_challenge_method: String,
}

/// A token request (RFC 6749), form-encoded.
#[derive(Debug, Clone, Deserialize)]
pub struct TokenRequest {
    pub grant_type: String,
    #[serde(default)]
    pub client_assertion_type: Option<String>,
    #[serde(default)]
    pub client_assertion: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub redirect_uri: Option<String>,
    #[serde(default)]
    pub code_verifier: Option<String>,
}

/// A refusal of the token endpoint, in RFC 6749's terms.
#[derive(Debug, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            error,
            description: description.into(),
        }
    }
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

impl<S: Store> Cpis<S> {
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Checks a bearer token and that the principal's organisation is one
    /// the service knows.
    pub async fn authenticate_bearer(&self, token: &str) -> Result<Arc<Principal>, AccessError> {
        let authenticated = self
            .identity
            .validator
            .validate(token)
            .await
            .map_err(|error| {
                tracing::info!(reason = %error, "refused a bearer token");
                AccessError::Unauthenticated(error.to_string())
            })?;
        self.check_registered(&authenticated.principal).await?;
        Ok(authenticated.principal)
    }

    /// Refuses a principal whose organisation is not a registered care
    /// setting or local authority.
    pub async fn check_registered(&self, principal: &Principal) -> Result<(), AccessError> {
        let known = match principal.organisation {
            OrganisationRef::CareSetting(code) => self
                .organisation(code)
                .await
                .map_err(AccessError::Core)?
                .is_some(),
            OrganisationRef::LocalAuthority(code) => {
                self.store.local_authority(code).await?.is_some()
            }
        };
        if known {
            Ok(())
        } else {
            Err(AccessError::Forbidden(format!(
                "your organisation {} is not registered with this service",
                principal.organisation
            )))
        }
    }

    /// The browser session behind a session cookie, if it is still valid.
    pub async fn session(&self, session_id: &str) -> Result<Option<Session>, CoreError> {
        let now = self.clock.now();
        let Some(text) = self
            .store
            .ephemeral(SESSIONS, &pkce::hash_secret(session_id), now)
            .await?
        else {
            return Ok(None);
        };
        match serde_json::from_str(&text) {
            Ok(session) => Ok(Some(session)),
            Err(error) => {
                tracing::warn!(%error, "a stored session does not parse; treating it as signed out");
                Ok(None)
            }
        }
    }

    /// Starts a browser sign-in: returns the provider URL to send the browser to.
    pub async fn begin_sign_in(&self, return_to: &str) -> Result<String, AccessError> {
        let client = self.browser_client()?;
        let state = pkce::random_token(24);
        let nonce = pkce::random_token(24);
        let verifier = pkce::random_token(48);
        let pending = PendingSignIn {
            verifier: verifier.clone(),
            nonce: nonce.clone(),
            return_to: safe_return_path(return_to),
        };
        let now = self.clock.now();
        self.store
            .put_ephemeral(
                SIGN_INS,
                &state,
                &serde_json::to_string(&pending).map_err(|e| CoreError::Internal(e.to_string()))?,
                now + SIGN_IN_LIFETIME,
                now,
            )
            .await?;
        Ok(pkce::authorization_url(
            &client.authorization_endpoint,
            &client.client_id,
            &client.redirect_uri,
            &state,
            &nonce,
            &pkce::code_challenge(&verifier),
        ))
    }

    /// Finishes a browser sign-in: exchanges the code, checks the ID token,
    /// and opens a session. Returns the session id (for the cookie) and the
    /// path to return to.
    pub async fn finish_sign_in(
        &self,
        code: &str,
        state: &str,
    ) -> Result<(String, String), AccessError> {
        let client = self.browser_client()?.clone();
        let now = self.clock.now();
        let pending: PendingSignIn = self
            .store
            .take_ephemeral(SIGN_INS, state, now)
            .await?
            .and_then(|text| serde_json::from_str(&text).ok())
            .ok_or_else(|| {
                AccessError::Unauthenticated(
                    "this sign-in has expired or was already used; sign in again".into(),
                )
            })?;
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", client.redirect_uri.clone()),
            ("client_id", client.client_id.clone()),
            ("code_verifier", pending.verifier.clone()),
        ];
        if let Some(secret) = &client.client_secret {
            form.push(("client_secret", secret.clone()));
        }
        let response = self
            .identity
            .http
            .post(&client.token_endpoint)
            .form(&form)
            .send()
            .await
            .map_err(|error| {
                AccessError::Core(CoreError::Provider(format!(
                    "the identity provider cannot be reached: {error}"
                )))
            })?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            tracing::warn!(%status, %body, "the identity provider refused the code");
            return Err(AccessError::Unauthenticated(
                "the identity provider did not accept the sign-in; sign in again".into(),
            ));
        }
        let tokens: TokenResponse = response.json().await.map_err(|error| {
            AccessError::Core(CoreError::Provider(format!(
                "the identity provider's answer is not a token response: {error}"
            )))
        })?;
        let id_token = tokens.id_token.ok_or_else(|| {
            AccessError::Unauthenticated("the identity provider returned no ID token".into())
        })?;
        let authenticated = self
            .identity
            .validator
            .validate(&id_token)
            .await
            .map_err(|error| AccessError::Unauthenticated(error.to_string()))?;
        if authenticated.nonce.as_deref() != Some(pending.nonce.as_str()) {
            return Err(AccessError::Unauthenticated(
                "the ID token is not for this sign-in (nonce mismatch)".into(),
            ));
        }
        self.check_registered(&authenticated.principal).await?;
        let session_id = pkce::random_token(32);
        let session = Session {
            principal: Arc::unwrap_or_clone(authenticated.principal),
            csrf_token: pkce::random_token(24),
        };
        self.store
            .put_ephemeral(
                SESSIONS,
                &pkce::hash_secret(&session_id),
                &serde_json::to_string(&session).map_err(|e| CoreError::Internal(e.to_string()))?,
                now + SESSION_LIFETIME,
                now,
            )
            .await?;
        tracing::info!(user = %session.principal.user_id, "signed in");
        Ok((session_id, pending.return_to))
    }

    /// Ends a browser session. Returns where to send the browser next.
    pub async fn sign_out(&self, session_id: &str) -> Result<String, CoreError> {
        self.store
            .take_ephemeral(SESSIONS, &pkce::hash_secret(session_id), self.clock.now())
            .await?;
        Ok(self
            .identity
            .browser
            .as_ref()
            .and_then(|client| client.end_session_endpoint.clone())
            .unwrap_or_else(|| "/".to_owned()))
    }

    fn browser_client(&self) -> Result<&BrowserClient, AccessError> {
        self.identity.browser.as_ref().ok_or_else(|| {
            AccessError::Unauthenticated(
                "sign-in in the browser is not configured on this server; use a bearer token"
                    .into(),
            )
        })
    }

    /// The development personas, when the development issuer is on.
    pub fn personas(&self) -> Vec<Persona> {
        if self.identity.own.development {
            personas(self.identity.development_la)
        } else {
            Vec::new()
        }
    }

    /// Checks an authorization request to the development issuer.
    pub fn check_authorize_request(&self, request: &AuthorizeRequest) -> Result<(), OAuthError> {
        if !self.identity.own.development {
            return Err(OAuthError::new(
                "access_denied",
                "this server signs in no one itself; use the identity provider",
            ));
        }
        let client = self.identity.browser.as_ref().ok_or_else(|| {
            OAuthError::new("unauthorized_client", "no browser client is configured")
        })?;
        if request.response_type != "code" {
            return Err(OAuthError::new(
                "unsupported_response_type",
                "only response_type=code",
            ));
        }
        if request.client_id != client.client_id || request.redirect_uri != client.redirect_uri {
            return Err(OAuthError::new(
                "unauthorized_client",
                "unknown client_id or redirect_uri",
            ));
        }
        if request.code_challenge_method != "S256" || request.code_challenge.len() < 43 {
            return Err(OAuthError::new(
                "invalid_request",
                "PKCE with code_challenge_method=S256 is required",
            ));
        }
        Ok(())
    }

    /// The development issuer's answer to a chosen persona: the redirect
    /// back to the client, carrying a one-time code.
    pub async fn authorize_persona(
        &self,
        request: &AuthorizeRequest,
        persona: &str,
    ) -> Result<String, OAuthError> {
        self.check_authorize_request(request)?;
        if !self.personas().iter().any(|known| known.name == persona) {
            return Err(OAuthError::new(
                "invalid_request",
                format!("no persona {persona:?}"),
            ));
        }
        let code = pkce::random_token(24);
        let pending = PendingCode {
            persona: persona.to_owned(),
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
        };
        let now = self.clock.now();
        let stored = serde_json::to_string(&pending)
            .map_err(|error| OAuthError::new("server_error", error.to_string()))?;
        self.store
            .put_ephemeral(CODES, &code, &stored, now + CODE_LIFETIME, now)
            .await
            .map_err(|error| OAuthError::new("temporarily_unavailable", error.to_string()))?;
        Ok(format!(
            "{}?code={}&state={}",
            request.redirect_uri,
            pkce::percent_encode(&code),
            pkce::percent_encode(&request.state)
        ))
    }

    /// The token endpoint: client credentials for LA systems, and
    /// authorization codes of the development issuer.
    pub async fn token(&self, request: TokenRequest) -> Result<TokenResponse, OAuthError> {
        match request.grant_type.as_str() {
            "client_credentials" => self.client_credentials(request).await,
            "authorization_code" if self.identity.own.development => {
                self.exchange_persona_code(request).await
            }
            other => Err(OAuthError::new(
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported here"),
            )),
        }
    }

    async fn client_credentials(&self, request: TokenRequest) -> Result<TokenResponse, OAuthError> {
        let invalid = |why: &str| OAuthError::new("invalid_client", why.to_owned());
        if request.client_assertion_type.as_deref() != Some(JWT_BEARER) {
            return Err(OAuthError::new(
                "invalid_request",
                format!("client_assertion_type must be {JWT_BEARER}"),
            ));
        }
        let assertion = request
            .client_assertion
            .as_deref()
            .ok_or_else(|| OAuthError::new("invalid_request", "client_assertion is missing"))?;
        #[derive(Deserialize)]
        struct Claimed {
            iss: Option<String>,
        }
        let claimed: Claimed = jsonwebtoken::dangerous::insecure_decode_claims(assertion)
            .map_err(|_| invalid("the client assertion is not a JWT"))?;
        let client_id = claimed
            .iss
            .or(request.client_id)
            .ok_or_else(|| invalid("the client assertion names no client"))?;
        let client = self
            .store
            .la_client(&client_id)
            .await
            .map_err(|error| OAuthError::new("temporarily_unavailable", error.to_string()))?
            .ok_or_else(|| invalid("unknown client"))?;
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(client.public_key.clone())
            .map_err(|_| invalid("the registered key is unusable"))?;
        let now = self.clock.now();
        let verified = self
            .identity
            .own
            .verify_client_assertion(assertion, &client_id, &jwk, now)
            .map_err(|error| {
                tracing::info!(client = %client_id, reason = %error, "refused a client assertion");
                invalid(&error.to_string())
            })?;
        let fresh = self
            .store
            .put_ephemeral(
                ASSERTIONS,
                &format!("{client_id} {}", verified.jti),
                "",
                verified.expires_at,
                now,
            )
            .await
            .map_err(|error| OAuthError::new("temporarily_unavailable", error.to_string()))?;
        if !fresh {
            return Err(invalid("this client assertion was used before"));
        }
        let la_name = self
            .store
            .local_authority(client.la)
            .await
            .map_err(|error| OAuthError::new("temporarily_unavailable", error.to_string()))?
            .map(|la| la.name)
            .unwrap_or_else(|| client.la.to_string());
        self.identity
            .own
            .issue_la_system(
                &client_id,
                client.la,
                &format!("{la_name} system {client_id}"),
                now,
            )
            .map_err(|error| OAuthError::new("server_error", error.to_string()))
    }

    async fn exchange_persona_code(
        &self,
        request: TokenRequest,
    ) -> Result<TokenResponse, OAuthError> {
        let grant = |why: &str| OAuthError::new("invalid_grant", why.to_owned());
        let code = request
            .code
            .as_deref()
            .ok_or_else(|| OAuthError::new("invalid_request", "code is missing"))?;
        let now = self.clock.now();
        let pending: PendingCode = self
            .store
            .take_ephemeral(CODES, code, now)
            .await
            .map_err(|error| OAuthError::new("temporarily_unavailable", error.to_string()))?
            .and_then(|text| serde_json::from_str(&text).ok())
            .ok_or_else(|| grant("the code is unknown, expired or used"))?;
        if request.client_id.as_deref() != Some(pending.client_id.as_str())
            || request.redirect_uri.as_deref() != Some(pending.redirect_uri.as_str())
        {
            return Err(grant(
                "client_id or redirect_uri differ from the authorization request",
            ));
        }
        let verifier = request
            .code_verifier
            .as_deref()
            .ok_or_else(|| grant("code_verifier is missing"))?;
        if pkce::code_challenge(verifier) != pending.challenge {
            return Err(grant("the code_verifier does not match the code_challenge"));
        }
        let persona = self
            .personas()
            .into_iter()
            .find(|persona| persona.name == pending.persona)
            .ok_or_else(|| grant("the persona is gone"))?;
        let own = &self.identity.own;
        let issue = |audience: &str, nonce: Option<&str>| {
            own.issue_persona(&persona, audience, nonce, now)
                .map_err(|error| OAuthError::new("server_error", error.to_string()))
        };
        Ok(TokenResponse {
            access_token: issue(&own.audience, None)?,
            token_type: "Bearer".into(),
            expires_in: cpis_auth::PERSONA_TOKEN_SECONDS,
            id_token: Some(issue(&pending.client_id, pending.nonce.as_deref())?),
        })
    }

    /// Registers (or replaces) an LA system's public key.
    pub async fn register_la_client(
        &self,
        client_id: &str,
        la: LaCode,
        public_key: serde_json::Value,
    ) -> Result<LaClient, CoreError> {
        let valid_id = (3..=64).contains(&client_id.len())
            && client_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid_id {
            return Err(CoreError::BadRequest(
                "a client id is 3 to 64 letters, digits, dots, dashes or underscores".into(),
            ));
        }
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(public_key.clone())
            .map_err(|error| CoreError::BadRequest(format!("public_key is not a JWK: {error}")))?;
        cpis_auth::decoding_key_from_jwk(&jwk)
            .map_err(|error| CoreError::BadRequest(format!("public_key is unusable: {error}")))?;
        if public_key.get("d").is_some() {
            return Err(CoreError::BadRequest(
                "public_key holds a private key; send only the public part".into(),
            ));
        }
        if self.store.local_authority(la).await?.is_none() {
            return Err(CoreError::BadRequest(format!(
                "{la} is not a registered local authority"
            )));
        }
        let client = LaClient {
            client_id: client_id.to_owned(),
            la,
            public_key,
            created_at: self.clock.now(),
        };
        self.store.put_la_client(client.clone()).await?;
        tracing::info!(client = client_id, la = %la, "registered an LA system");
        Ok(client)
    }

    pub async fn la_clients(&self) -> Result<Vec<LaClient>, CoreError> {
        Ok(self.store.la_clients().await?)
    }

    /// A bearer token for a development persona, for scripts (`cpis token`).
    pub fn persona_token(&self, persona: &str) -> Result<String, CoreError> {
        let found = self
            .personas()
            .into_iter()
            .find(|known| known.name == persona)
            .ok_or_else(|| {
                let names: Vec<&str> = personas(self.identity.development_la)
                    .iter()
                    .map(|p| p.name)
                    .collect();
                CoreError::BadRequest(format!(
                    "there is no persona {persona:?}; choose one of {}",
                    names.join(", ")
                ))
            })?;
        let own = &self.identity.own;
        own.issue_persona(&found, &own.audience, None, self.clock.now())
            .map_err(|error| CoreError::Internal(error.to_string()))
    }
}

/// The LA a principal may act for, or a refusal.
pub fn own_la(principal: &Principal) -> Result<LaCode, AccessError> {
    principal.la().ok_or_else(|| {
        AccessError::Forbidden("only a local authority's staff and systems may do this".into())
    })
}

/// Keeps a return path on this site: a path starting with one `/`.
fn safe_return_path(path: &str) -> String {
    let local = path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control);
    if local {
        path.to_owned()
    } else {
        "/".to_owned()
    }
}

/// Builds the identity part of the service.
pub struct IdentitySettings {
    /// The public base URL of this server (its own issuer URL).
    pub public_url: String,
    pub audience: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    /// The outside OpenID provider, if any, and how its claims map.
    pub provider: Option<(String, cpis_auth::ClaimMapping)>,
    pub development: bool,
    pub development_la: LaCode,
    pub key: Arc<SigningKey>,
}

/// A development identity with a fresh key: the service's own issuer at
/// `public_url`, personas allowed. For tests and benchmarks.
pub async fn development_identity(public_url: &str, la: LaCode) -> Result<Identity, AuthError> {
    Identity::build(IdentitySettings {
        public_url: public_url.to_owned(),
        audience: "cpis".to_owned(),
        client_id: "cpis".to_owned(),
        client_secret: None,
        provider: None,
        development: true,
        development_la: la,
        key: Arc::new(SigningKey::generate()?),
    })
    .await
}

impl Identity {
    /// Discovers the provider (if any) and fetches its keys: a provider that
    /// cannot be reached stops the start rather than refusing everyone later.
    pub async fn build(settings: IdentitySettings) -> Result<Identity, AuthError> {
        use cpis_auth::{ClaimMapping, JwksCache, KeySource, TrustedIssuer, discover};
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|error| AuthError::Provider(error.to_string()))?;
        let public_url = settings.public_url.trim_end_matches('/').to_owned();
        let own = OwnIssuer {
            url: public_url.clone(),
            audience: settings.audience.clone(),
            key: settings.key.clone(),
            development: settings.development,
        };
        let audiences = vec![settings.audience.clone(), settings.client_id.clone()];
        let mut issuers = vec![TrustedIssuer {
            issuer: public_url.clone(),
            audiences: audiences.clone(),
            keys: KeySource::Own(settings.key.clone()),
            mapping: ClaimMapping::Own {
                persons: settings.development,
            },
        }];
        let redirect_uri = format!("{public_url}/auth/callback");
        let mut browser = None;
        if let Some((issuer, mapping)) = settings.provider {
            let metadata = discover(&http, &issuer).await?;
            let keys = JwksCache::fetch(
                http.clone(),
                &metadata.jwks_uri,
                std::time::Duration::from_secs(30),
            )
            .await?;
            if let (Some(authorization_endpoint), Some(token_endpoint)) = (
                metadata.authorization_endpoint.clone(),
                metadata.token_endpoint.clone(),
            ) {
                browser = Some(BrowserClient {
                    authorization_endpoint,
                    token_endpoint,
                    end_session_endpoint: metadata.end_session_endpoint.clone(),
                    client_id: settings.client_id.clone(),
                    client_secret: settings.client_secret.clone(),
                    redirect_uri: redirect_uri.clone(),
                });
            }
            issuers.push(TrustedIssuer {
                issuer: metadata.issuer,
                audiences,
                keys: KeySource::Remote(Arc::new(keys)),
                mapping,
            });
        } else if settings.development {
            browser = Some(BrowserClient {
                authorization_endpoint: own.authorization_endpoint(),
                token_endpoint: own.token_endpoint(),
                end_session_endpoint: None,
                client_id: settings.client_id.clone(),
                client_secret: None,
                redirect_uri,
            });
        }
        Ok(Identity {
            validator: TokenValidator::new(issuers),
            own,
            browser,
            development_la: settings.development_la,
            http,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_paths_stay_on_this_site() {
        assert_eq!(safe_return_path("/la/plans?page=2"), "/la/plans?page=2");
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil",
            "",
            "javascript:x",
            "/a\nb",
        ] {
            assert_eq!(safe_return_path(bad), "/", "{bad:?}");
        }
    }
}
