//! JWT bearer tokens (`auth.scheme = "jwt"`).
//!
//! Every request to a service must carry `Authorization: Bearer <token>`, signed with
//! the configured key and algorithm (HS256, RS256 or ES256; never `none`), not expired,
//! already valid, and issued by and for the configured issuer and audience. A token's
//! subject is its `sub` claim; its roles are its `roles` claim (an array) and its
//! `scope` claim (space-separated), together.

use std::path::PathBuf;

use axum::http::header::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use platform::config::{self, ConfigError};
use serde::Serialize;

use super::bearer::{Claims, bearer_token};
use super::{Identity, Refusal};

/// The development secret of `deploy/compose.yaml` and the README: refused unless
/// `JWT_ALLOW_DEV_SECRET=true`, so it can never protect a production system by
/// accident.
pub const DEV_SECRET: &str = "dev-only-secret-do-not-use-in-production-0123456789";
/// The shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
const MIN_SECRET_BYTES: usize = 32;
/// Clock skew tolerated on `exp` and `nbf` unless `JWT_LEEWAY_SECONDS` says otherwise.
const DEFAULT_LEEWAY_SECONDS: u64 = 30;

/// The key tokens are verified with.
#[derive(Clone)]
pub enum JwtKey {
    /// A shared secret, for HS256.
    Hs256(Vec<u8>),
    /// An RSA public key (PEM), for RS256.
    Rs256(Vec<u8>),
    /// A P-256 public key (PEM), for ES256.
    Es256(Vec<u8>),
}

impl std::fmt::Debug for JwtKey {
    // Never print a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Hs256(_) => "Hs256(<secret>)",
            Self::Rs256(_) => "Rs256(<public key>)",
            Self::Es256(_) => "Es256(<public key>)",
        })
    }
}

/// JWT verification: one key, one algorithm, the required issuer and audience; see
/// `docs/runbooks/gateway.md`.
#[derive(Clone)]
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtVerifier {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("validation", &self.validation)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// The scheme of the `WWW-Authenticate` challenge.
    pub(crate) const CHALLENGE: &str = "Bearer";
    /// The credentials a request must carry, as refusals word it.
    pub(crate) const EXPECTED: &str = "`Authorization: Bearer <token>`";

    /// Accepts tokens signed with `key` (whose kind fixes the one accepted algorithm),
    /// issued by `issuer` for `audience`, with 30 s of leeway on `exp` and `nbf`.
    pub fn new(key: &JwtKey, issuer: &str, audience: &str) -> Result<Self, ConfigError> {
        let (key, algorithm, name) = match key {
            JwtKey::Hs256(secret) => (
                DecodingKey::from_secret(secret),
                Algorithm::HS256,
                "JWT_SECRET",
            ),
            JwtKey::Rs256(pem) => (
                DecodingKey::from_rsa_pem(pem),
                Algorithm::RS256,
                "JWT_PUBLIC_KEY",
            ),
            JwtKey::Es256(pem) => (
                DecodingKey::from_ec_pem(pem),
                Algorithm::ES256,
                "JWT_PUBLIC_KEY",
            ),
        };
        let key = key.map_err(|error| ConfigError::Invalid {
            name,
            value: "<redacted>".to_owned(),
            reason: format!("not a usable {algorithm:?} key: {error}"),
        })?;
        // Exactly one algorithm, fixed by the key: `none` and algorithm confusion
        // (an HS256 token "signed" with an RSA public key) are refused.
        let mut validation = Validation::new(algorithm);
        validation.leeway = DEFAULT_LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(Self { key, validation })
    }

    /// Tolerates `seconds` of clock skew on `exp` and `nbf`.
    #[must_use]
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.validation.leeway = seconds;
        self
    }

    /// Reads `JWT_SECRET`, or `JWT_PUBLIC_KEY` / `JWT_PUBLIC_KEY_FILE` with
    /// `JWT_ALGORITHM`, `JWT_ISSUER`, `JWT_AUDIENCE` and `JWT_LEEWAY_SECONDS`. Refuses
    /// to start without a key, and with [`DEV_SECRET`] unless
    /// `JWT_ALLOW_DEV_SECRET=true`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let key = key_from_env()?;
        let issuer: String = config::var_or("JWT_ISSUER", "{{ name }}")?;
        let audience: String = config::var_or("JWT_AUDIENCE", "{{ name }}")?;
        let leeway = config::var_or("JWT_LEEWAY_SECONDS", &DEFAULT_LEEWAY_SECONDS.to_string())?;
        Ok(Self::new(&key, &issuer, &audience)?.with_leeway(leeway))
    }

    /// The identity in the `Authorization` header of a request.
    pub(crate) async fn verify(&self, headers: &HeaderMap) -> Result<Identity, Refusal> {
        let token = bearer_token(headers)?;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|error| Refusal::Invalid(error.to_string()))?
            .claims;
        Ok(claims.into_identity())
    }
}

/// The verification key of the environment; see [`JwtVerifier::from_env`].
fn key_from_env() -> Result<JwtKey, ConfigError> {
    let secret: Option<String> = config::optional_var("JWT_SECRET")?;
    let pem: Option<String> = config::optional_var("JWT_PUBLIC_KEY")?;
    let pem_file: Option<PathBuf> = config::optional_var("JWT_PUBLIC_KEY_FILE")?;
    let algorithm: Option<String> = config::optional_var("JWT_ALGORITHM")?;
    let invalid = |name, value: &str, reason: &str| ConfigError::Invalid {
        name,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    match (secret, pem, pem_file) {
        (Some(secret), None, None) => {
            if let Some(algorithm) = algorithm.filter(|a| a != "HS256") {
                return Err(invalid(
                    "JWT_ALGORITHM",
                    &algorithm,
                    "JWT_SECRET is for HS256; set JWT_PUBLIC_KEY for RS256 or ES256",
                ));
            }
            if secret == DEV_SECRET && !config::var_or::<bool>("JWT_ALLOW_DEV_SECRET", "false")? {
                return Err(invalid(
                    "JWT_SECRET",
                    "<the development secret>",
                    "the published development secret is refused unless JWT_ALLOW_DEV_SECRET=true; generate a secret with `openssl rand -base64 48`",
                ));
            }
            if secret.len() < MIN_SECRET_BYTES {
                return Err(invalid(
                    "JWT_SECRET",
                    "<redacted>",
                    "expected at least 32 bytes; generate a secret with `openssl rand -base64 48`",
                ));
            }
            Ok(JwtKey::Hs256(secret.into_bytes()))
        }
        (None, Some(pem), None) => public_key(pem.into_bytes(), algorithm),
        (None, None, Some(file)) => {
            let pem = std::fs::read(&file).map_err(|error| {
                invalid(
                    "JWT_PUBLIC_KEY_FILE",
                    &file.display().to_string(),
                    &error.to_string(),
                )
            })?;
            public_key(pem, algorithm)
        }
        _ => Err(invalid(
            "JWT_SECRET",
            "",
            "set exactly one of JWT_SECRET (HS256), JWT_PUBLIC_KEY or JWT_PUBLIC_KEY_FILE (RS256, ES256)",
        )),
    }
}

/// A PEM public key for `algorithm` (`RS256` when unset).
fn public_key(pem: Vec<u8>, algorithm: Option<String>) -> Result<JwtKey, ConfigError> {
    match algorithm.as_deref().unwrap_or("RS256") {
        "RS256" => Ok(JwtKey::Rs256(pem)),
        "ES256" => Ok(JwtKey::Es256(pem)),
        other => Err(ConfigError::Invalid {
            name: "JWT_ALGORITHM",
            value: other.to_owned(),
            reason: "expected RS256 or ES256 with a public key".to_owned(),
        }),
    }
}

/// The claims of a token minted by [`mint_token`].
#[derive(Debug, Serialize)]
struct MintedClaims<'a> {
    sub: &'a str,
    iss: String,
    aud: String,
    iat: u64,
    exp: u64,
    roles: &'a [String],
}

/// An HS256 token for `subject` with `roles`, valid for `lifetime_seconds`, signed with
/// `JWT_SECRET` for `JWT_ISSUER` and `JWT_AUDIENCE`: what `gateway token` prints, for
/// trying the API locally.
pub fn mint_token(
    subject: &str,
    roles: &[String],
    lifetime_seconds: u64,
) -> Result<String, ConfigError> {
    let secret: String = config::optional_var("JWT_SECRET")?.ok_or(ConfigError::Invalid {
        name: "JWT_SECRET",
        value: String::new(),
        reason: "set the HS256 secret the gateway uses".to_owned(),
    })?;
    let invalid = |error: jsonwebtoken::errors::Error| ConfigError::Invalid {
        name: "JWT_SECRET",
        value: "<redacted>".to_owned(),
        reason: error.to_string(),
    };
    let now = jsonwebtoken::get_current_timestamp();
    let claims = MintedClaims {
        sub: subject,
        iss: config::var_or("JWT_ISSUER", "{{ name }}")?,
        aud: config::var_or("JWT_AUDIENCE", "{{ name }}")?,
        iat: now,
        exp: now + lifetime_seconds,
        roles,
    };
    let key = EncodingKey::from_secret(secret.as_bytes()).map_err(invalid)?;
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).map_err(invalid)
}
