//! The browser's authorization-code flow with PKCE (RFC 7636): the random
//! values a sign-in needs, and the authorization URL.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `n` random bytes as unpadded base64url, from the system's CSPRNG.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // The system generator fails only if the OS cannot supply randomness, in
    // which case no secure token can be made at all.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        tracing::error!("the operating system's random number generator failed");
        bytes.iter_mut().for_each(|byte| *byte = 0);
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The S256 code challenge of a verifier.
pub fn code_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()).as_ref())
}

/// SHA-256 of a secret, as base64url: what is stored instead of the secret.
pub fn hash_secret(secret: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, secret.as_bytes()).as_ref())
}

/// The URL that starts a sign-in at the provider.
pub fn authorization_url(
    authorization_endpoint: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    nonce: &str,
    challenge: &str,
) -> String {
    let query = [
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", "openid profile nationalrbacaccess"),
        ("state", state),
        ("nonce", nonce),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(key, value)| format!("{key}={}", percent_encode(value)))
    .collect::<Vec<_>>()
    .join("&");
    let separator = if authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    format!("{authorization_endpoint}{separator}{query}")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_example_challenge() {
        // RFC 7636, appendix B.
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn random_tokens_differ_and_are_url_safe() {
        let a = random_token(32);
        let b = random_token(32);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn authorization_urls_encode_their_parameters() {
        let url = authorization_url(
            "https://idp/authorize",
            "cpis",
            "http://127.0.0.1:8080/auth/callback",
            "s",
            "n",
            "c",
        );
        assert!(url.starts_with("https://idp/authorize?response_type=code&client_id=cpis&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fauth%2Fcallback"));
        assert!(url.contains("code_challenge_method=S256"));
    }
}
