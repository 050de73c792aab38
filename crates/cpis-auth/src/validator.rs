//! Checking tokens: the issuer is trusted, the key is the issuer's, the
//! signature verifies with an asymmetric algorithm, and `iss`, `aud`, `exp`
//! and `nbf` hold (with a small allowance for clock skew).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use crate::keys::decoding_key_from_jwk;
use crate::{AuthError, Authenticated, ClaimMapping, SigningKey};

/// The only signature algorithms accepted. `none` and HMAC are not here:
/// a token anyone holding a shared secret could forge is no proof of identity.
pub const ALLOWED_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Seconds of clock skew allowed on `exp` and `nbf`.
pub const LEEWAY_SECONDS: u64 = 60;

/// What a provider's discovery document says, as far as this service uses it.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

/// Fetches `{issuer}/.well-known/openid-configuration` and checks that it
/// names the same issuer.
pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<ProviderMetadata, AuthError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let metadata: ProviderMetadata = http
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| AuthError::Provider(format!("{url}: {error}")))?
        .json()
        .await
        .map_err(|error| AuthError::Provider(format!("{url}: {error}")))?;
    if metadata.issuer.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(AuthError::Provider(format!(
            "{url} names the issuer {:?}, not {issuer:?}",
            metadata.issuer
        )));
    }
    Ok(metadata)
}

/// A verification key and the algorithms it may verify.
#[derive(Clone)]
struct VerifyingKey {
    key: Arc<DecodingKey>,
    algorithms: Vec<Algorithm>,
}

/// A provider's published keys, cached. An unknown key id triggers one
/// refetch, at most once per `min_refetch`, so that key rotation is picked up
/// at once and a flood of forged key ids cannot hammer the provider.
/// `last_fetch` is the time of the last refetch caused by an unknown key.
pub struct JwksCache {
    jwks_uri: String,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, VerifyingKey>>,
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    min_refetch: Duration,
}

impl JwksCache {
    /// Fetches the key set once, so that a misconfigured provider is found at start.
    pub async fn fetch(
        http: reqwest::Client,
        jwks_uri: &str,
        min_refetch: Duration,
    ) -> Result<Self, AuthError> {
        let cache = JwksCache {
            jwks_uri: jwks_uri.to_owned(),
            http,
            keys: RwLock::new(HashMap::new()),
            last_fetch: tokio::sync::Mutex::new(None),
            min_refetch,
        };
        // The start-up fetch does not count against the refetch limit, so a
        // rotation soon after start is still picked up.
        cache.refresh().await?;
        Ok(cache)
    }

    async fn refresh(&self) -> Result<(), AuthError> {
        let set: JwkSet = self
            .http
            .get(&self.jwks_uri)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| AuthError::Provider(format!("{}: {error}", self.jwks_uri)))?
            .json()
            .await
            .map_err(|error| AuthError::Provider(format!("{}: {error}", self.jwks_uri)))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            match decoding_key_from_jwk(jwk) {
                Ok((key, algorithms)) => {
                    keys.insert(
                        kid,
                        VerifyingKey {
                            key: Arc::new(key),
                            algorithms,
                        },
                    );
                }
                Err(error) => tracing::debug!(%kid, %error, "skipping an unusable published key"),
            }
        }
        tracing::info!(jwks_uri = %self.jwks_uri, keys = keys.len(), "fetched the provider's keys");
        if let Ok(mut cached) = self.keys.write() {
            *cached = keys;
        }
        Ok(())
    }

    fn cached(&self, kid: &str) -> Option<VerifyingKey> {
        self.keys.read().ok()?.get(kid).cloned()
    }

    async fn key(&self, kid: &str) -> Result<VerifyingKey, AuthError> {
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        // Concurrent misses wait here and share one refetch.
        let mut last = self.last_fetch.lock().await;
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        if last.is_none_or(|at| at.elapsed() >= self.min_refetch) {
            *last = Some(Instant::now());
            self.refresh().await?;
        }
        self.cached(kid).ok_or(AuthError::UnknownKey)
    }
}

/// Where an issuer's keys come from.
pub enum KeySource {
    /// The service's own key.
    Own(Arc<SigningKey>),
    /// A provider's JWKS.
    Remote(Arc<JwksCache>),
}

/// An issuer whose tokens are accepted.
pub struct TrustedIssuer {
    pub issuer: String,
    /// Accepted `aud` values: the API's audience, and the client id that ID
    /// tokens of the browser flow carry.
    pub audiences: Vec<String>,
    pub keys: KeySource,
    pub mapping: ClaimMapping,
}

impl TrustedIssuer {
    async fn key(&self, kid: Option<&str>) -> Result<VerifyingKey, AuthError> {
        match &self.keys {
            KeySource::Own(own) => match kid {
                Some(kid) if kid != own.kid() => Err(AuthError::UnknownKey),
                _ => Ok(VerifyingKey {
                    key: Arc::new(own.decoding_key().clone()),
                    algorithms: vec![Algorithm::ES256],
                }),
            },
            KeySource::Remote(cache) => cache.key(kid.ok_or(AuthError::UnknownKey)?).await,
        }
    }
}

/// How many verified tokens are remembered. A clinician's system sends the
/// same token with every request until it expires, so each is verified once.
const VERIFIED_CACHE_LIMIT: usize = 100_000;

/// Checks tokens against every trusted issuer.
pub struct TokenValidator {
    issuers: Vec<TrustedIssuer>,
    /// Tokens already verified, by their exact text, until they expire. A
    /// signature check costs tens of microseconds; a lookup here, well
    /// under one. Only tokens that passed every check are kept, and an
    /// altered token is a different key.
    verified: RwLock<HashMap<String, Authenticated>>,
}

#[derive(Deserialize)]
struct Unverified {
    iss: Option<String>,
}

impl TokenValidator {
    pub fn new(issuers: Vec<TrustedIssuer>) -> Self {
        TokenValidator {
            issuers,
            verified: RwLock::new(HashMap::new()),
        }
    }

    pub fn issuers(&self) -> &[TrustedIssuer] {
        &self.issuers
    }

    /// Validates a token and maps its claims to a principal.
    pub async fn validate(&self, token: &str) -> Result<Authenticated, AuthError> {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        if let Some(known) = self.remembered(token, now) {
            return Ok(known);
        }
        let authenticated = self.verify(token).await?;
        if let Ok(mut verified) = self.verified.write() {
            if verified.len() >= VERIFIED_CACHE_LIMIT {
                verified.retain(|_, known| known.expires_at + LEEWAY_SECONDS as i64 > now);
                if verified.len() >= VERIFIED_CACHE_LIMIT {
                    verified.clear();
                }
            }
            verified.insert(token.to_owned(), authenticated.clone());
        }
        Ok(authenticated)
    }

    fn remembered(&self, token: &str, now: i64) -> Option<Authenticated> {
        let verified = self.verified.read().ok()?;
        let known = verified.get(token)?;
        (known.expires_at + LEEWAY_SECONDS as i64 > now).then(|| known.clone())
    }

    async fn verify(&self, token: &str) -> Result<Authenticated, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|error| match error.kind() {
            ErrorKind::InvalidAlgorithmName => AuthError::Algorithm("an unknown algorithm".into()),
            _ => AuthError::Malformed,
        })?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(AuthError::Algorithm(format!("{:?}", header.alg)));
        }
        // The issuer picks the key; the signature check below proves it.
        let unverified: Unverified = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| AuthError::Malformed)?;
        let iss = unverified
            .iss
            .ok_or_else(|| AuthError::MissingClaim("iss".into()))?;
        let issuer = self
            .issuers
            .iter()
            .find(|trusted| trusted.issuer.trim_end_matches('/') == iss.trim_end_matches('/'))
            .ok_or_else(|| AuthError::UnknownIssuer(iss.clone()))?;
        let key = issuer.key(header.kid.as_deref()).await?;
        if !key.algorithms.contains(&header.alg) {
            return Err(AuthError::Algorithm(format!(
                "{:?} with this issuer's key",
                header.alg
            )));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&iss]);
        validation.set_audience(&issuer.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        let data = jsonwebtoken::decode::<Value>(token, &key.key, &validation).map_err(
            |error| match error.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidAudience => AuthError::Audience,
                ErrorKind::InvalidIssuer => AuthError::UnknownIssuer(iss.clone()),
                ErrorKind::InvalidSignature => AuthError::Signature,
                ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
                ErrorKind::InvalidAlgorithm => AuthError::Algorithm(format!("{:?}", header.alg)),
                _ => AuthError::Malformed,
            },
        )?;
        let principal = issuer.mapping.principal(&data.claims)?;
        Ok(Authenticated {
            principal: std::sync::Arc::new(principal),
            expires_at: data.claims.get("exp").and_then(Value::as_i64).unwrap_or(0),
            nonce: data
                .claims
                .get("nonce")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}
