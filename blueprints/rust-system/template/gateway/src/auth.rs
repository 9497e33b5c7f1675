//! Authentication and authorization of the forwarded routes.
//!
//! Whatever the scheme, the gateway strips every inbound `X-Auth-*` header, so a
//! client can never pass an identity of its own making to a service.
{% if auth.scheme == 'jwt' %}
//!
//! With JWT bearer tokens (`auth.scheme = "jwt"`), every request to a service must
//! carry `Authorization: Bearer <token>`, signed with the configured key and algorithm
//! (HS256, RS256 or ES256; never `none`), not expired, already valid, and issued by and
//! for the configured issuer and audience. The token's subject and roles then reach the
//! service as [`X_AUTH_SUBJECT`] and [`X_AUTH_ROLES`], and the rate limiter counts the
//! request against the subject ([`ClientId`]).
//!
//! Permissions are per service: reads (`GET`, `HEAD`, `OPTIONS`) need the service's
//! read role, anything else (and every gRPC call, which the gateway cannot tell apart)
//! its write role. A token's roles are its `roles` claim (an array) and its `scope`
//! claim (space-separated), together.
//!
//! A missing or invalid token is a 401 with `WWW-Authenticate: Bearer ...`, a missing
//! role a 403 (gRPC: `UNAUTHENTICATED`, `PERMISSION_DENIED`); neither reaches the
//! service. Verification happens before the rate limiter so that limits follow
//! identities; the refusal happens after it, so that floods of bad tokens are limited
//! per IP address.
{% endif %}

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::HeaderName;
use axum::middleware::{self, Next};
use axum::response::Response;
{% if auth.scheme == 'jwt' %}
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use axum::http::HeaderValue;
use axum::http::header::{self, HeaderMap};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use platform::Problem;
use platform::config::{self, ConfigError};
use serde::{Deserialize, Serialize};

use crate::rate_limit::ClientId;
use crate::{SERVICES, edge, proxy};
{% else %}
use platform::config::ConfigError;
{% endif %}

/// The prefix of the headers that carry the verified identity to the services; inbound
/// headers with it are always dropped.
const IDENTITY_PREFIX: &str = "x-auth-";
/// The verified subject of the request (the token's `sub`).
pub const X_AUTH_SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
/// The verified roles and scopes of the request, comma-separated.
pub const X_AUTH_ROLES: HeaderName = HeaderName::from_static("x-auth-roles");
{% if auth.scheme == 'jwt' %}

/// The development secret of `deploy/compose.yaml` and the README: refused unless
/// `JWT_ALLOW_DEV_SECRET=true`, so it can never protect a production system by
/// accident.
pub const DEV_SECRET: &str = "dev-only-secret-do-not-use-in-production-0123456789";
/// The shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
const MIN_SECRET_BYTES: usize = 32;
/// The realm named in `WWW-Authenticate`.
const REALM: &str = "{{ name }}";
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

/// The roles a service asks for; an empty role is granted to every valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    /// Needed for `GET`, `HEAD` and `OPTIONS`.
    pub read: String,
    /// Needed for every other method and every gRPC call.
    pub write: String,
}

impl Permissions {
    /// The generated defaults: `<service>:read` and `<service>:write`.
    pub fn defaults_for(service: &str) -> Self {
        Self {
            read: format!("{service}:read"),
            write: format!("{service}:write"),
        }
    }
}

/// JWT verification: one key, one algorithm, the required issuer and audience, and the
/// roles per service; see `docs/runbooks/gateway.md`.
#[derive(Clone)]
pub struct JwtConfig {
    key: DecodingKey,
    validation: Validation,
    permissions: HashMap<String, Permissions>,
}

impl std::fmt::Debug for JwtConfig {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtConfig")
            .field("validation", &self.validation)
            .field("permissions", &self.permissions)
            .finish_non_exhaustive()
    }
}

impl JwtConfig {
    /// Accepts tokens signed with `key` (whose kind fixes the one accepted algorithm),
    /// issued by `issuer` for `audience`, with 30 s of leeway on `exp` and `nbf` and
    /// the default roles of [`Permissions::defaults_for`].
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
        Ok(Self {
            key,
            validation,
            permissions: HashMap::new(),
        })
    }

    /// Tolerates `seconds` of clock skew on `exp` and `nbf`.
    #[must_use]
    pub fn with_leeway(mut self, seconds: u64) -> Self {
        self.validation.leeway = seconds;
        self
    }

    /// Requires `permissions` for `service` instead of its default roles.
    #[must_use]
    pub fn with_permissions(mut self, service: &str, permissions: Permissions) -> Self {
        self.permissions.insert(service.to_owned(), permissions);
        self
    }

    /// Reads `JWT_SECRET`, or `JWT_PUBLIC_KEY` / `JWT_PUBLIC_KEY_FILE` with
    /// `JWT_ALGORITHM`, `JWT_ISSUER`, `JWT_AUDIENCE`, `JWT_LEEWAY_SECONDS`, and each
    /// service's `<SERVICE>_READ_ROLE` and `<SERVICE>_WRITE_ROLE`. Refuses to start
    /// without a key, and with [`DEV_SECRET`] unless `JWT_ALLOW_DEV_SECRET=true`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let key = key_from_env()?;
        let issuer: String = config::var_or("JWT_ISSUER", "{{ name }}")?;
        let audience: String = config::var_or("JWT_AUDIENCE", "{{ name }}")?;
        let leeway = config::var_or("JWT_LEEWAY_SECONDS", &DEFAULT_LEEWAY_SECONDS.to_string())?;
        let mut jwt = Self::new(&key, &issuer, &audience)?.with_leeway(leeway);
        for service in SERVICES {
            let defaults = Permissions::defaults_for(service.name);
            let permissions = Permissions {
                read: role_var(service.read_role_var, defaults.read)?,
                write: role_var(service.write_role_var, defaults.write)?,
            };
            jwt = jwt.with_permissions(service.name, permissions);
        }
        Ok(jwt)
    }
}

/// The verification key of the environment; see [`JwtConfig::from_env`].
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

/// A role variable: unset keeps `default`, set but blank grants every valid token.
fn role_var(name: &'static str, default: String) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) => Ok(value.trim().to_owned()),
        Err(std::env::VarError::NotPresent) => Ok(default),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode { name }),
    }
}
{% endif %}

/// How the gateway authenticates clients.
#[derive(Debug, Clone, Default)]
{% if auth.scheme == 'jwt' %}
pub struct AuthConfig {
    /// JWT verification; `None` lets every request through (identity headers are
    /// still stripped). [`AuthConfig::default`] is `None`: tests and tools that build
    /// a gateway in process opt in to authentication explicitly.
    pub jwt: Option<JwtConfig>,
}
{% else %}
pub struct AuthConfig {}
{% endif %}

impl AuthConfig {
    /// Reads the settings of the generated scheme (`{{ auth.scheme }}`) from the
    /// environment.
    pub fn from_env() -> Result<Self, ConfigError> {
{% if auth.scheme == 'jwt' %}
        Ok(Self {
            jwt: Some(JwtConfig::from_env()?),
        })
{% else %}
        Ok(Self::default())
{% endif %}
    }
}
{% if auth.scheme == 'jwt' %}

/// The claims the gateway reads; `exp`, `nbf`, `iss` and `aud` are checked by
/// [`jsonwebtoken::decode`].
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scope: String,
}

/// A verified token's identity.
#[derive(Debug, Clone)]
struct Identity {
    subject: String,
    roles: HashSet<String>,
}

/// Why a request is refused before it reaches a service.
#[derive(Debug, Clone)]
enum Refusal {
    /// No credentials: 401 with a bare challenge (RFC 6750 §3.1).
    Missing,
    /// Credentials that do not verify: 401 `invalid_token`.
    Invalid(String),
}

impl JwtConfig {
    /// The identity in the `Authorization` header of a request.
    fn verify(&self, headers: &HeaderMap) -> Result<Identity, Refusal> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(Refusal::Missing);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| {
                Refusal::Invalid("expected `Authorization: Bearer <token>`".to_owned())
            })?;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|error| Refusal::Invalid(error.to_string()))?
            .claims;
        let roles = claims
            .roles
            .into_iter()
            .chain(claims.scope.split_whitespace().map(str::to_owned))
            .collect();
        Ok(Identity {
            subject: claims.sub,
            roles,
        })
    }

    /// The role `request` needs, or `None` when any valid token will do.
    fn required_role(&self, request: &Request) -> Option<String> {
        let path = request.uri().path();
        let service = match proxy::split_api_path(path) {
            Some((service, _)) => service.to_owned(),
            None => proxy::grpc_service(path)?,
        };
        let permissions = self
            .permissions
            .get(&service)
            .cloned()
            .unwrap_or_else(|| Permissions::defaults_for(&service));
        let read = matches!(
            *request.method(),
            Method::GET | Method::HEAD | Method::OPTIONS
        ) && !edge::is_grpc(request.headers());
        let role = if read {
            permissions.read
        } else {
            permissions.write
        };
        (!role.is_empty()).then_some(role)
    }
}
{% endif %}

/// The authentication of the forwarded routes, shared by its two middlewares.
#[derive(Debug, Default)]
{% if auth.scheme == 'jwt' %}
pub(crate) struct Auth {
    jwt: Option<JwtConfig>,
}
{% else %}
pub(crate) struct Auth {}
{% endif %}

impl Auth {
{% if auth.scheme == 'jwt' %}
    pub(crate) fn new(config: AuthConfig) -> Self {
        Self { jwt: config.jwt }
    }
{% else %}
    pub(crate) fn new(_config: AuthConfig) -> Self {
        Self {}
    }
{% endif %}
}

/// Strips inbound identity headers and verifies credentials, recording the outcome for
/// [`authorize`]; runs in front of the rate limiter.
pub(crate) fn identify(api: Router, auth: &Arc<Auth>) -> Router {
    api.layer(middleware::from_fn_with_state(
        auth.clone(),
        identify_request,
    ))
}

/// Refuses requests without a verified identity or the role their route needs; runs
/// behind the rate limiter.
{% if auth.scheme == 'jwt' %}
pub(crate) fn authorize(api: Router, auth: &Arc<Auth>) -> Router {
    if auth.jwt.is_none() {
        return api;
    }
    api.layer(middleware::from_fn_with_state(
        auth.clone(),
        authorize_request,
    ))
}
{% else %}
pub(crate) fn authorize(api: Router, _auth: &Arc<Auth>) -> Router {
    api
}
{% endif %}

{% if auth.scheme == 'jwt' %}
async fn identify_request(
    State(auth): State<Arc<Auth>>,
    mut request: Request,
    next: Next,
) -> Response {
    strip_identity(request.headers_mut());
    if let Some(jwt) = &auth.jwt {
        match jwt.verify(request.headers()) {
            Ok(identity) => {
                if let Err(refusal) = set_identity(request.headers_mut(), &identity) {
                    request.extensions_mut().insert(refusal);
                } else {
                    request
                        .extensions_mut()
                        .insert(ClientId(identity.subject.clone()));
                    request.extensions_mut().insert(identity);
                }
            }
            Err(refusal) => {
                request.extensions_mut().insert(refusal);
            }
        }
    }
    next.run(request).await
}

async fn authorize_request(
    State(auth): State<Arc<Auth>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(jwt) = &auth.jwt else {
        return next.run(request).await;
    };
    let grpc = edge::is_grpc(request.headers());
    let Some(identity) = request.extensions().get::<Identity>() else {
        let refusal = request
            .extensions()
            .get::<Refusal>()
            .cloned()
            .unwrap_or(Refusal::Missing);
        return unauthorized(&refusal, grpc);
    };
    if let Some(role) = jwt.required_role(&request)
        && !identity.roles.contains(&role)
    {
        tracing::info!(subject = %identity.subject, %role, "forbidden: missing role");
        return forbidden(&role, grpc);
    }
    next.run(request).await
}

/// Puts the verified identity into the request headers for the service.
fn set_identity(headers: &mut HeaderMap, identity: &Identity) -> Result<(), Refusal> {
    let malformed =
        |claim: &str| Refusal::Invalid(format!("the {claim} claim cannot be sent in a header"));
    let subject = HeaderValue::from_str(&identity.subject).map_err(|_| malformed("sub"))?;
    let mut roles: Vec<&str> = identity.roles.iter().map(String::as_str).collect();
    roles.sort_unstable();
    if roles.iter().any(|role| role.contains(',')) {
        return Err(malformed("roles"));
    }
    let roles = HeaderValue::from_str(&roles.join(",")).map_err(|_| malformed("roles"))?;
    headers.insert(X_AUTH_SUBJECT, subject);
    headers.insert(X_AUTH_ROLES, roles);
    Ok(())
}

/// 401: the client has to (re)authenticate.
fn unauthorized(refusal: &Refusal, grpc: bool) -> Response {
    let (challenge, detail) = match refusal {
        Refusal::Missing => (
            format!("Bearer realm=\"{REALM}\""),
            "a bearer token is required".to_owned(),
        ),
        Refusal::Invalid(reason) => {
            tracing::info!(%reason, "unauthorized: invalid token");
            (
                format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""),
                format!("invalid bearer token: {reason}"),
            )
        }
    };
    refuse(StatusCode::UNAUTHORIZED, &challenge, detail, grpc)
}

/// 403: the token is valid but lacks `role`.
fn forbidden(role: &str, grpc: bool) -> Response {
    let challenge =
        format!("Bearer realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{role}\"");
    refuse(
        StatusCode::FORBIDDEN,
        &challenge,
        format!("the role {role:?} is required"),
        grpc,
    )
}

fn refuse(status: StatusCode, challenge: &str, detail: String, grpc: bool) -> Response {
    let problem = Problem::new(status).with_detail(detail);
    let mut response = if grpc {
        proxy::grpc_status(&problem)
    } else {
        problem.into_response()
    };
    if let Ok(challenge) = HeaderValue::from_str(challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, challenge);
    }
    response
}
{% else %}
async fn identify_request(
    State(_auth): State<Arc<Auth>>,
    mut request: Request,
    next: Next,
) -> Response {
    strip_identity(request.headers_mut());
    next.run(request).await
}
{% endif %}

/// Drops every `X-Auth-*` header a client sent.
fn strip_identity(headers: &mut axum::http::HeaderMap) {
    let forged: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(IDENTITY_PREFIX))
        .cloned()
        .collect();
    for name in forged {
        headers.remove(&name);
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn strips_every_identity_header() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(X_AUTH_SUBJECT, HeaderValue::from_static("admin"));
        headers.insert(
            HeaderName::from_static("x-auth-anything"),
            HeaderValue::from_static("x"),
        );
        headers.insert(
            HeaderName::from_static("x-request-id"),
            HeaderValue::from_static("kept"),
        );
        strip_identity(&mut headers);
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-request-id"));
    }
}
