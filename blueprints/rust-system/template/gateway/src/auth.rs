//! Authentication and authorization of the forwarded routes.
//!
//! Whatever the scheme, the gateway strips every inbound `X-Auth-*` header, so a
//! client can never pass an identity of its own making to a service.
{% if auth.scheme != 'none' %}
//!
//! With authentication on (`auth.scheme = "{{ auth.scheme }}"`, see [`Verifier`]),
//! every request to a service must carry valid credentials. The verified subject and
//! roles then reach the service as [`X_AUTH_SUBJECT`] and [`X_AUTH_ROLES`], and the
//! rate limiter counts the request against the subject ([`ClientId`]).
//!
//! Permissions are per service: reads (`GET`, `HEAD`, `OPTIONS`) need the service's
//! read role, anything else (and every gRPC call, which the gateway cannot tell apart)
//! its write role ([`Permissions`]).
//!
//! Missing or invalid credentials are a 401 with a `WWW-Authenticate` challenge, a
//! missing role a 403 (gRPC: `UNAUTHENTICATED`, `PERMISSION_DENIED`); neither reaches
//! the service. Verification happens before the rate limiter so that limits follow
//! identities; the refusal happens after it, so that floods of bad credentials are
//! limited per IP address.
{% endif %}
{% if auth.scheme == 'jwt' or auth.scheme == 'oidc' %}

mod bearer;
{% endif %}
{% if auth.scheme == 'jwt' %}
pub mod jwt;
{% endif %}
{% if auth.scheme == 'api-key' %}

pub mod api_key;
{% endif %}
{% if auth.scheme == 'oidc' %}
pub mod oidc;
{% endif %}

use axum::extract::Request;
use axum::http::header::HeaderName;
use axum::response::Response;
{% if auth.scheme != 'none' %}
use std::collections::{HashMap, HashSet};

use axum::http::HeaderValue;
use axum::http::header::{self, HeaderMap};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use platform::Problem;
use platform::config::ConfigError;

use crate::rate_limit::ClientId;
use crate::{SERVICES, edge, proxy};
{% else %}
use platform::config::ConfigError;
{% endif %}
{% if auth.scheme == 'jwt' %}

/// How this gateway verifies credentials: JWT bearer tokens.
pub use jwt::JwtVerifier as Verifier;
{% endif %}
{% if auth.scheme == 'api-key' %}

/// How this gateway verifies credentials: API keys.
pub use api_key::ApiKeyVerifier as Verifier;
{% endif %}
{% if auth.scheme == 'oidc' %}

/// How this gateway verifies credentials: OpenID Connect access tokens.
pub use oidc::OidcVerifier as Verifier;
{% endif %}

/// The prefix of the headers that carry the verified identity to the services; inbound
/// headers with it are always dropped.
const IDENTITY_PREFIX: &str = "x-auth-";
/// The verified subject of the request.
pub const X_AUTH_SUBJECT: HeaderName = HeaderName::from_static("x-auth-subject");
/// The verified roles and scopes of the request, comma-separated.
pub const X_AUTH_ROLES: HeaderName = HeaderName::from_static("x-auth-roles");
{% if auth.scheme != 'none' %}
/// The realm named in `WWW-Authenticate`.
const REALM: &str = "{{ name }}";

/// The roles a service asks for; an empty role is granted to every verified caller.
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

    /// Each service's roles: its defaults unless `<SERVICE>_READ_ROLE` or
    /// `<SERVICE>_WRITE_ROLE` say otherwise (blank grants every verified caller).
    pub fn from_env() -> Result<HashMap<String, Self>, ConfigError> {
        let mut permissions = HashMap::new();
        for service in SERVICES {
            let defaults = Self::defaults_for(service.name);
            let roles = Self {
                read: role_var(service.read_role_var, defaults.read)?,
                write: role_var(service.write_role_var, defaults.write)?,
            };
            permissions.insert(service.name.to_owned(), roles);
        }
        Ok(permissions)
    }
}

/// A role variable: unset keeps `default`, set but blank grants every verified caller.
fn role_var(name: &'static str, default: String) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(value) => Ok(value.trim().to_owned()),
        Err(std::env::VarError::NotPresent) => Ok(default),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode { name }),
    }
}

/// How the gateway authenticates clients.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// How credentials are verified; `None` lets every request through (identity
    /// headers are still stripped). [`AuthConfig::default`] is `None`: tests and tools
    /// that build a gateway in process opt in to authentication explicitly.
    pub verifier: Option<Verifier>,
    /// The roles of each service; a service not listed needs
    /// [`Permissions::defaults_for`] it.
    pub permissions: HashMap<String, Permissions>,
}

impl AuthConfig {
    /// Verifies with `verifier`, with each service's default roles.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier: Some(verifier),
            permissions: HashMap::new(),
        }
    }

    /// Reads the settings of the generated scheme (`{{ auth.scheme }}`) and the roles
    /// of each service from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            verifier: Some(Verifier::from_env()?),
            permissions: Permissions::from_env()?,
        })
    }

    /// The role `request` needs, or `None` when any verified caller will do.
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

/// A verified caller.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// Who the caller is: the subject of the credentials.
    pub(crate) subject: String,
    /// What the caller may do: roles and scopes, matched against [`Permissions`].
    pub(crate) roles: HashSet<String>,
}

/// Why a request is refused before it reaches a service.
#[derive(Debug, Clone)]
pub(crate) enum Refusal {
    /// No credentials: 401 with a bare challenge (RFC 6750 §3.1).
    Missing,
    /// Credentials that do not verify: 401 with `error="invalid_token"`.
    Invalid(String),
{% if auth.scheme == 'oidc' %}
    /// The credentials cannot be checked now (the issuer's keys are unavailable): 503,
    /// so that clients retry rather than discard a token that may be valid.
    Unavailable(String),
{% endif %}
}
{% else %}

/// How the gateway authenticates clients: not at all (`auth.scheme = "none"`).
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {}

impl AuthConfig {
    /// There is nothing to read: the generated scheme is `none`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self::default())
    }
}
{% endif %}

/// The authentication of the forwarded routes: [`Auth::identify`] in front of the rate
/// limiter, [`Auth::refusal`] behind it.
#[derive(Debug, Default)]
{% if auth.scheme != 'none' %}
pub(crate) struct Auth {
    config: AuthConfig,
}

impl Auth {
    pub(crate) fn new(config: AuthConfig) -> Self {
        Self { config }
    }

    /// Strips inbound identity headers and verifies the credentials of `request`,
    /// recording the outcome in its extensions for [`Auth::refusal`]; runs in front
    /// of the rate limiter, so that limits follow identities.
    pub(crate) async fn identify(&self, request: &mut Request) {
        strip_identity(request.headers_mut());
        let Some(verifier) = &self.config.verifier else {
            return;
        };
        match verifier.verify(request.headers()).await {
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
{% if auth.scheme == 'api-key' %}
        // The key stays at the gateway: services see the verified identity only.
        api_key::strip_key(request.headers_mut());
{% endif %}
    }

    /// The answer to a request without a verified identity (401) or without the role
    /// its route needs (403), or `None` when it may pass; asked behind the rate
    /// limiter, so that floods of bad credentials are limited per IP address.
    pub(crate) fn refusal(&self, request: &Request) -> Option<Response> {
        self.config.verifier.as_ref()?;
        let grpc = edge::is_grpc(request.headers());
        let Some(identity) = request.extensions().get::<Identity>() else {
            let refusal = request
                .extensions()
                .get::<Refusal>()
                .cloned()
                .unwrap_or(Refusal::Missing);
            return Some(unauthorized(&refusal, grpc));
        };
        let role = self.config.required_role(request)?;
        if identity.roles.contains(&role) {
            return None;
        }
        tracing::info!(subject = %identity.subject, %role, "forbidden: missing role");
        Some(forbidden(&role, grpc))
    }
}

/// Puts the verified identity into the request headers for the service.
fn set_identity(headers: &mut HeaderMap, identity: &Identity) -> Result<(), Refusal> {
    let malformed = |what: &str| Refusal::Invalid(format!("the {what} cannot be sent in a header"));
    let subject = HeaderValue::from_str(&identity.subject).map_err(|_| malformed("subject"))?;
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
    let scheme = Verifier::CHALLENGE;
    let (challenge, detail) = match refusal {
        Refusal::Missing => (
            format!("{scheme} realm=\"{REALM}\""),
            format!("credentials are required ({})", Verifier::EXPECTED),
        ),
        Refusal::Invalid(reason) => {
            tracing::info!(%reason, "unauthorized: invalid credentials");
            (
                format!("{scheme} realm=\"{REALM}\", error=\"invalid_token\""),
                format!("invalid credentials: {reason}"),
            )
        }
{% if auth.scheme == 'oidc' %}
        Refusal::Unavailable(reason) => {
            tracing::warn!(%reason, "unavailable: credentials cannot be verified");
            let problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE)
                .with_detail(format!("credentials cannot be verified now: {reason}"));
            return if grpc {
                proxy::grpc_status(&problem)
            } else {
                problem.into_response()
            };
        }
{% endif %}
    };
    refuse(StatusCode::UNAUTHORIZED, &challenge, detail, grpc)
}

/// 403: the caller is known but lacks `role`.
fn forbidden(role: &str, grpc: bool) -> Response {
    let scheme = Verifier::CHALLENGE;
    let challenge =
        format!("{scheme} realm=\"{REALM}\", error=\"insufficient_scope\", scope=\"{role}\"");
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
pub(crate) struct Auth {}

impl Auth {
    pub(crate) fn new(_config: AuthConfig) -> Self {
        Self {}
    }

    /// Strips inbound identity headers: with no authentication, no request has one.
    pub(crate) async fn identify(&self, request: &mut Request) {
        strip_identity(request.headers_mut());
    }

    /// Lets every request through: the generated scheme is `none`.
    pub(crate) fn refusal(&self, _request: &Request) -> Option<Response> {
        None
    }
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
