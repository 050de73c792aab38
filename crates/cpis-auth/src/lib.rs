//! Tokens, and who they say the caller is.
//!
//! - [`TokenValidator`] checks bearer tokens and ID tokens from trusted
//!   issuers: the configured OpenID Connect provider (NHS CIS2 in England),
//!   found by discovery with its keys fetched and cached, and the service's
//!   own issuer. Signatures must be asymmetric (RS*, PS*, ES*, EdDSA); `none`
//!   and HMAC are refused.
//! - [`SigningKey`] is the service's own ES256 key; [`OwnIssuer`] signs the
//!   tokens it issues: LA systems' access tokens (client credentials with a
//!   signed JWT assertion) and, in development only, the demo personas'.
//! - [`ClaimMapping`] turns a token's claims into a [`Principal`].
//! - [`pkce`] holds the pieces of the browser's authorization-code flow.

mod claims;
mod issuer;
mod keys;
pub mod pkce;
mod validator;

pub use claims::{ClaimMapping, ClaimNames};
pub use issuer::{
    LA_SYSTEM_KIND, OwnIssuer, PERSONA_TOKEN_SECONDS, Persona, TokenResponse, personas,
};
pub use keys::{SigningKey, decoding_key_from_jwk};
pub use validator::{
    ALLOWED_ALGORITHMS, JwksCache, KeySource, ProviderMetadata, TokenValidator, TrustedIssuer,
    discover,
};

use cpis_domain::Principal;

/// Why a token, key or provider was refused. The message is for logs and
/// for the `WWW-Authenticate` description; it never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("the token is not a well-formed JWT")]
    Malformed,
    #[error("the token is signed with {0}, which is not accepted (only RS*, PS*, ES* and EdDSA)")]
    Algorithm(String),
    #[error("the token's issuer {0:?} is not trusted")]
    UnknownIssuer(String),
    #[error("the token is signed with a key the issuer does not publish")]
    UnknownKey,
    #[error("the token's signature does not verify")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token is for another audience")]
    Audience,
    #[error("the token lacks a required claim: {0}")]
    MissingClaim(String),
    #[error("the token's claims do not describe a usable principal: {0}")]
    Claims(String),
    #[error("the identity provider cannot be reached: {0}")]
    Provider(String),
    #[error("the key is unusable: {0}")]
    Key(String),
}

/// A principal, with the token's expiry (Unix seconds).
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Shared: every request with a remembered token gets the same one,
    /// where a copy cost about eight allocations (the names and activities).
    pub principal: std::sync::Arc<Principal>,
    pub expires_at: i64,
    /// The `nonce` claim, for ID tokens from the browser flow.
    pub nonce: Option<String>,
}
