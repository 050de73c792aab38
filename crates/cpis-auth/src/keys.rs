//! The service's own signing key: ECDSA P-256 (ES256), kept as a PKCS#8 PEM
//! file readable only by its owner.

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;

use crate::AuthError;

/// An ES256 key pair with its JWK and key id (the JWK's SHA-256 thumbprint).
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public: Jwk,
    pem: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.kid)
    }
}

impl SigningKey {
    pub fn generate() -> Result<Self, AuthError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| AuthError::Key("cannot generate a P-256 key".into()))?;
        Self::from_pkcs8_der(pkcs8.as_ref())
    }

    /// Reads a PKCS#8 `PRIVATE KEY` PEM holding a P-256 key.
    pub fn from_pem(pem: &str) -> Result<Self, AuthError> {
        let body: String = pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .map(str::trim)
            .collect();
        let der = STANDARD
            .decode(body)
            .map_err(|_| AuthError::Key("the key file is not PEM".into()))?;
        Self::from_pkcs8_der(&der)
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, AuthError> {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| AuthError::Key("not a PKCS#8 P-256 private key".into()))?;
        let encoding = EncodingKey::from_ec_der(der);
        let mut public = Jwk::from_encoding_key(&encoding, Algorithm::ES256)
            .map_err(|error| AuthError::Key(error.to_string()))?;
        let kid = public
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|error| AuthError::Key(error.to_string()))?;
        public.common.key_id = Some(kid.clone());
        public.common.public_key_use = Some(PublicKeyUse::Signature);
        let decoding =
            DecodingKey::from_jwk(&public).map_err(|error| AuthError::Key(error.to_string()))?;
        let encoded = STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
        for chunk in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END PRIVATE KEY-----\n");
        Ok(SigningKey {
            kid,
            encoding,
            decoding,
            public,
            pem,
        })
    }

    /// Reads the key at `path`, or makes one there (mode 0600) if there is
    /// none. Returns whether it was made.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), AuthError> {
        match std::fs::read_to_string(path) {
            Ok(pem) => Ok((Self::from_pem(&pem)?, false)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                write_private(path, key.pem.as_bytes()).map_err(|error| {
                    AuthError::Key(format!("cannot write {}: {error}", path.display()))
                })?;
                Ok((key, true))
            }
            Err(error) => Err(AuthError::Key(format!(
                "cannot read {}: {error}",
                path.display()
            ))),
        }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    pub fn public_jwk(&self) -> &Jwk {
        &self.public
    }

    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.public.clone()],
        }
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Signs `claims` as a JWT with this key's id in the header.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, AuthError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|error| AuthError::Key(error.to_string()))
    }
}

/// A decoding key and the algorithm it verifies, from a published JWK.
pub fn decoding_key_from_jwk(jwk: &Jwk) -> Result<(DecodingKey, Vec<Algorithm>), AuthError> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
    let key = DecodingKey::from_jwk(jwk).map_err(|error| AuthError::Key(error.to_string()))?;
    let algorithms = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return Err(AuthError::Key("unsupported elliptic curve".into())),
        },
        AlgorithmParameters::OctetKeyPair(_) => vec![Algorithm::EdDSA],
        AlgorithmParameters::OctetKey(_) => {
            return Err(AuthError::Key("symmetric keys are not accepted".into()));
        }
        _ => return Err(AuthError::Key("unsupported key type".into())),
    };
    Ok((key, algorithms))
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_survives_its_file_and_signs_verifiably() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing-key.pem");
        let (made, created) = SigningKey::load_or_create(&path).unwrap();
        assert!(created);
        let (read, created) = SigningKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(made.kid(), read.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let token = made
            .sign(&serde_json::json!({"sub": "x", "exp": 4_000_000_000u64}))
            .unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.validate_aud = false;
        let data =
            jsonwebtoken::decode::<serde_json::Value>(&token, read.decoding_key(), &validation)
                .unwrap();
        assert_eq!(data.claims["sub"], "x");
        assert_eq!(data.header.kid.as_deref(), Some(made.kid()));
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(
            SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
        assert!(SigningKey::from_pem("not pem at all").is_err());
    }
}
