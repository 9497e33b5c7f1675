//! OpenID Connect access tokens (`auth.scheme = "oidc"`).
//!
//! Every request to a service must carry `Authorization: Bearer <token>`: a JWT signed
//! by the issuer `OIDC_ISSUER` with one of `OIDC_ALGORITHMS` (RS256 by default; never
//! `none` or a shared secret), for the audience `OIDC_AUDIENCE`, not expired and
//! already valid. Subject and roles are read as for JWT: `sub`, and the `roles` and
//! `scope` claims together.
//!
//! The keys come from the issuer's JWKS, found through its discovery document
//! (`<issuer>/.well-known/openid-configuration`, whose `issuer` must be `OIDC_ISSUER`
//! exactly). They are fetched on the first request, not at startup, then cached:
//! refetched in the background once older than `OIDC_JWKS_MAX_AGE_SECONDS`, and at
//! once when a token names an unknown key id (the issuer rotated its keys). One fetch
//! runs at a time, at most one per `OIDC_JWKS_MIN_REFRESH_SECONDS`, so a flood of
//! unknown key ids cannot flood the issuer. A failed fetch keeps the keys already
//! known; while none are known, requests are refused with 503.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{self, HeaderMap};
use axum::http::uri::Scheme;
use axum::http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use platform::config::{self, ConfigError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Mutex, RwLock};
use tokio::time::Instant;

use super::bearer::{Claims, bearer_token};
use super::{Identity, Refusal};

/// The algorithms `OIDC_ALGORITHMS` may name: signatures with the issuer's public keys.
const SUPPORTED: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];
/// The largest discovery document or JWKS read from the issuer.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// The settings of an [`OidcVerifier`]; [`OidcSettings::new`] has the defaults.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    /// The issuer, exactly as in its tokens' `iss` and its discovery document.
    pub issuer: String,
    /// The audience tokens must be issued for (`aud`).
    pub audience: String,
    /// The accepted signature algorithms.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
    /// How old the cached keys may get before they are refetched.
    pub max_age: Duration,
    /// The shortest time between two fetches of the keys.
    pub min_refresh_interval: Duration,
    /// How long one fetch from the issuer may take.
    pub timeout: Duration,
    /// Accepts `http://` issuer URLs on other hosts than loopback (development only).
    pub allow_http: bool,
}

impl OidcSettings {
    /// RS256 tokens of `issuer` for `audience`, 30 s of leeway, keys cached for an
    /// hour, refetched at most every 30 s, fetches limited to 5 s.
    pub fn new(issuer: &str, audience: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            algorithms: vec![Algorithm::RS256],
            leeway_seconds: 30,
            max_age: Duration::from_secs(3600),
            min_refresh_interval: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
            allow_http: false,
        }
    }

    /// Reads `OIDC_ISSUER` and `OIDC_AUDIENCE` (both required), `OIDC_ALGORITHMS`,
    /// `OIDC_LEEWAY_SECONDS`, `OIDC_JWKS_MAX_AGE_SECONDS`,
    /// `OIDC_JWKS_MIN_REFRESH_SECONDS`, `OIDC_HTTP_TIMEOUT_SECONDS` and
    /// `OIDC_ALLOW_HTTP`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let required = |name: &'static str, example: &str| {
            config::optional_var::<String>(name)?.ok_or_else(|| ConfigError::Invalid {
                name,
                value: String::new(),
                reason: format!("required with auth.scheme oidc, e.g. {example}"),
            })
        };
        let issuer = required("OIDC_ISSUER", "https://idp.example.com/realms/demo")?;
        let audience = required("OIDC_AUDIENCE", "{{ name }}")?;
        let defaults = Self::new(&issuer, &audience);
        let seconds = |name, default: Duration| {
            config::var_or::<u64>(name, &default.as_secs().to_string()).map(Duration::from_secs)
        };
        let algorithms: String = config::var_or("OIDC_ALGORITHMS", "RS256")?;
        Ok(Self {
            algorithms: parse_algorithms(&algorithms)?,
            leeway_seconds: config::var_or(
                "OIDC_LEEWAY_SECONDS",
                &defaults.leeway_seconds.to_string(),
            )?,
            max_age: seconds("OIDC_JWKS_MAX_AGE_SECONDS", defaults.max_age)?,
            min_refresh_interval: seconds(
                "OIDC_JWKS_MIN_REFRESH_SECONDS",
                defaults.min_refresh_interval,
            )?,
            timeout: seconds("OIDC_HTTP_TIMEOUT_SECONDS", defaults.timeout)?,
            allow_http: config::var_or("OIDC_ALLOW_HTTP", "false")?,
            ..defaults
        })
    }
}

/// The algorithms of `OIDC_ALGORITHMS`: a comma-separated subset of [`SUPPORTED`].
fn parse_algorithms(value: &str) -> Result<Vec<Algorithm>, ConfigError> {
    let mut algorithms = Vec::new();
    for name in value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let algorithm = SUPPORTED
            .into_iter()
            .find(|algorithm| format!("{algorithm:?}") == name)
            .ok_or_else(|| algorithms_error(value, &not_accepted(name)))?;
        algorithms.push(algorithm);
    }
    if algorithms.is_empty() {
        return Err(algorithms_error(value, NO_ALGORITHM));
    }
    Ok(algorithms)
}

/// Why an empty `OIDC_ALGORITHMS` is refused.
const NO_ALGORITHM: &str = "expected at least one algorithm";

/// Why the algorithm `name` is refused.
fn not_accepted(name: &str) -> String {
    format!(
        "{name} is not accepted; expected RS256, RS384, RS512, PS256, PS384, PS512, ES256 or ES384 (never none or HS*)"
    )
}

/// A refused `OIDC_ALGORITHMS`.
fn algorithms_error(value: &str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        name: "OIDC_ALGORITHMS",
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

/// `value` as a URL to fetch from the issuer: `https://`, or `http://` on loopback or
/// when `allow_http`.
fn fetch_url(name: &'static str, value: &str, allow_http: bool) -> Result<Uri, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        name,
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = value.parse().map_err(|_| invalid("not a URL"))?;
    let Some(host) = uri.host() else {
        return Err(invalid("the URL has no host"));
    };
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match uri.scheme() {
        Some(scheme) if *scheme == Scheme::HTTPS => Ok(uri),
        Some(scheme) if *scheme == Scheme::HTTP && (loopback || allow_http) => Ok(uri),
        Some(scheme) if *scheme == Scheme::HTTP => Err(invalid(
            "expected https:// (http:// only on loopback, or with OIDC_ALLOW_HTTP=true in development)",
        )),
        _ => Err(invalid("expected an https:// URL")),
    }
}

/// Verification of OpenID Connect access tokens with the keys of the issuer; see
/// `docs/runbooks/gateway.md`. Clones share the key cache.
#[derive(Clone)]
pub struct OidcVerifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// The state shared by the clones of a verifier.
struct Inner {
    settings: OidcSettings,
    discovery_url: Uri,
    validation: Validation,
    client: Client<HttpsConnector<HttpConnector>, Body>,
    keys: RwLock<KeyCache>,
    /// Held while fetching: one fetch at a time.
    refresh: Mutex<RefreshState>,
}

/// The issuer's keys by key id, and when they were fetched.
#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, Key>,
    fetched: Option<Instant>,
}

/// What the single-flight refresh remembers between fetches.
#[derive(Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    jwks_uri: Option<Uri>,
}

/// One verification key of the issuer.
#[derive(Clone)]
struct Key {
    decoding: DecodingKey,
    /// The algorithm the JWKS binds the key to (`alg`), if any.
    algorithm: Option<String>,
    kind: KeyKind,
}

/// The kinds of keys kept from a JWKS; others are skipped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
}

impl Key {
    /// A JWKS entry as a signature key, or `None` when it is not one the gateway uses.
    fn from_jwk(jwk: &Jwk) -> Option<(String, Self)> {
        let kid = jwk.common.key_id.clone()?;
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return None;
        }
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyKind::Rsa,
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
                KeyKind::P256
            }
            AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P384 => {
                KeyKind::P384
            }
            _ => return None,
        };
        let decoding = DecodingKey::from_jwk(jwk).ok()?;
        let algorithm = jwk.common.key_algorithm.map(|a| format!("{a:?}"));
        Some((
            kid,
            Self {
                decoding,
                algorithm,
                kind,
            },
        ))
    }

    /// Whether a token signed with `algorithm` may be verified with this key.
    fn fits(&self, algorithm: Algorithm) -> bool {
        let kind = match algorithm {
            Algorithm::ES256 => KeyKind::P256,
            Algorithm::ES384 => KeyKind::P384,
            _ => KeyKind::Rsa,
        };
        let name = format!("{algorithm:?}");
        kind == self.kind && self.algorithm.as_ref().is_none_or(|bound| *bound == name)
    }
}

impl OidcVerifier {
    /// The scheme of the `WWW-Authenticate` challenge.
    pub(crate) const CHALLENGE: &str = "Bearer";
    /// The credentials a request must carry, as refusals word it.
    pub(crate) const EXPECTED: &str = "`Authorization: Bearer <token>`";

    /// Verifies tokens as `settings` say; fetches nothing until the first token.
    pub fn new(settings: OidcSettings) -> Result<Self, ConfigError> {
        let issuer = fetch_url("OIDC_ISSUER", &settings.issuer, settings.allow_http)?;
        let discovery_url = format!(
            "{}/.well-known/openid-configuration",
            issuer.to_string().trim_end_matches('/')
        );
        let discovery_url = fetch_url("OIDC_ISSUER", &discovery_url, settings.allow_http)?;
        if settings.audience.trim().is_empty() {
            return Err(ConfigError::Invalid {
                name: "OIDC_AUDIENCE",
                value: settings.audience,
                reason: "expected the audience of the tokens".to_owned(),
            });
        }
        let Some(&first) = settings.algorithms.first() else {
            return Err(algorithms_error("", NO_ALGORITHM));
        };
        if let Some(refused) = settings
            .algorithms
            .iter()
            .find(|algorithm| !SUPPORTED.contains(algorithm))
        {
            let refused = format!("{refused:?}");
            return Err(algorithms_error(&refused, &not_accepted(&refused)));
        }
        let mut validation = Validation::new(first);
        validation.algorithms.clone_from(&settings.algorithms);
        validation.leeway = settings.leeway_seconds;
        validation.validate_nbf = true;
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(Self {
            inner: Arc::new(Inner {
                settings,
                discovery_url,
                validation,
                client: https_client()?,
                keys: RwLock::default(),
                refresh: Mutex::default(),
            }),
        })
    }

    /// Reads the settings of the environment; see [`OidcSettings::from_env`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::new(OidcSettings::from_env()?)
    }

    /// The identity in the `Authorization` header of a request.
    pub(crate) async fn verify(&self, headers: &HeaderMap) -> Result<Identity, Refusal> {
        let token = bearer_token(headers)?;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|error| Refusal::Invalid(error.to_string()))?;
        if !self.inner.settings.algorithms.contains(&header.alg) {
            return Err(Refusal::Invalid(format!(
                "the algorithm {:?} is not accepted",
                header.alg
            )));
        }
        let kid = header
            .kid
            .ok_or_else(|| Refusal::Invalid("the token names no key (`kid`)".to_owned()))?;
        let key = Inner::key(&self.inner, &kid).await?;
        if !key.fits(header.alg) {
            return Err(Refusal::Invalid(format!(
                "the signing key is not for {:?}",
                header.alg
            )));
        }
        let mut validation = self.inner.validation.clone();
        validation.algorithms = vec![header.alg];
        let claims = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            .map_err(|error| Refusal::Invalid(error.to_string()))?
            .claims;
        Ok(claims.into_identity())
    }
}

impl Inner {
    /// The key `kid`: cached, or after a refresh when unknown. Stale keys are used
    /// while a refresh runs in the background.
    async fn key(this: &Arc<Self>, kid: &str) -> Result<Key, Refusal> {
        {
            let cache = this.keys.read().await;
            if let Some(key) = cache.keys.get(kid) {
                if cache
                    .fetched
                    .is_some_and(|fetched| fetched.elapsed() > this.settings.max_age)
                {
                    let inner = Arc::clone(this);
                    tokio::spawn(async move { inner.refresh().await });
                }
                return Ok(key.clone());
            }
        }
        this.refresh().await;
        let cache = this.keys.read().await;
        match cache.keys.get(kid) {
            Some(key) => Ok(key.clone()),
            None if cache.fetched.is_none() => Err(Refusal::Unavailable(
                "the signing keys of the issuer cannot be fetched".to_owned(),
            )),
            None => Err(Refusal::Invalid(
                "the token is signed with an unknown key".to_owned(),
            )),
        }
    }

    /// Refetches the keys, unless another fetch ran while waiting for the lock or less
    /// than the minimum interval ago; keeps the known keys when the fetch fails.
    async fn refresh(&self) {
        let called = Instant::now();
        let mut state = self.refresh.lock().await;
        if state.last_attempt.is_some_and(|last| {
            last >= called || last.elapsed() < self.settings.min_refresh_interval
        }) {
            return;
        }
        state.last_attempt = Some(Instant::now());
        match self.fetch(&mut state.jwks_uri).await {
            Ok(keys) => {
                tracing::info!(keys = keys.len(), "fetched the signing keys of the issuer");
                let mut cache = self.keys.write().await;
                cache.keys = keys;
                cache.fetched = Some(Instant::now());
            }
            Err(error) => {
                state.jwks_uri = None;
                tracing::warn!(%error, "cannot fetch the signing keys of the issuer; keeping the known ones");
            }
        }
    }

    /// The issuer's signature keys, through its discovery document unless the JWKS
    /// address is already known.
    async fn fetch(&self, jwks_uri: &mut Option<Uri>) -> Result<HashMap<String, Key>, String> {
        let uri = match jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let discovery: Discovery = self.get_json(&self.discovery_url).await?;
                if discovery.issuer != self.settings.issuer {
                    return Err(format!(
                        "the discovery document is for the issuer {:?}, not {:?}",
                        discovery.issuer, self.settings.issuer
                    ));
                }
                let uri = fetch_url("jwks_uri", &discovery.jwks_uri, self.settings.allow_http)
                    .map_err(|error| error.to_string())?;
                jwks_uri.insert(uri).clone()
            }
        };
        let set: JwkSet = self.get_json(&uri).await?;
        let keys: HashMap<String, Key> = set.keys.iter().filter_map(Key::from_jwk).collect();
        if keys.is_empty() {
            return Err(format!("{uri}: no usable signature key"));
        }
        Ok(keys)
    }

    /// GETs a JSON document of at most [`MAX_DOCUMENT_BYTES`], within the timeout.
    async fn get_json<T: DeserializeOwned>(&self, uri: &Uri) -> Result<T, String> {
        let request = Request::get(uri.clone())
            .header(header::ACCEPT, "application/json")
            .body(Body::empty())
            .map_err(|error| format!("{uri}: {error}"))?;
        let fetch = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|error| format!("{uri}: {error}"))?;
            if response.status() != StatusCode::OK {
                return Err(format!("{uri}: status {}", response.status()));
            }
            let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
                .collect()
                .await
                .map_err(|error| format!("{uri}: {error}"))?
                .to_bytes();
            serde_json::from_slice(&body).map_err(|error| format!("{uri}: {error}"))
        };
        tokio::time::timeout(self.settings.timeout, fetch)
            .await
            .map_err(|_| format!("{uri}: no answer within {:?}", self.settings.timeout))?
    }
}

/// The fields of the discovery document the gateway reads.
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// An HTTPS (and loopback HTTP) client with the Mozilla roots, over rustls and ring.
fn https_client() -> Result<Client<HttpsConnector<HttpConnector>, Body>, ConfigError> {
    let mut http = platform::client::connector();
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|error| ConfigError::Invalid {
            name: "OIDC_ISSUER",
            value: String::new(),
            reason: format!("no TLS client: {error}"),
        })?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_are_public_key_signatures_only() {
        assert_eq!(
            parse_algorithms("RS256, ES256").unwrap(),
            [Algorithm::RS256, Algorithm::ES256]
        );
        for refused in ["HS256", "none", "RS256,HS512", "", " , "] {
            let error = parse_algorithms(refused).unwrap_err();
            assert!(error.to_string().contains("OIDC_ALGORITHMS"), "{error}");
        }
    }

    #[test]
    fn issuers_are_https_but_on_loopback() {
        for accepted in [
            "https://idp.example.com/realms/demo",
            "http://127.0.0.1:8080",
            "http://localhost/issuer",
            "http://[::1]:9000",
        ] {
            assert!(
                fetch_url("OIDC_ISSUER", accepted, false).is_ok(),
                "{accepted}"
            );
        }
        for refused in ["http://idp.example.com", "ftp://idp", "idp.example.com", ""] {
            let error = fetch_url("OIDC_ISSUER", refused, false).unwrap_err();
            assert!(error.to_string().contains("OIDC_ISSUER"), "{error}");
        }
        assert!(fetch_url("OIDC_ISSUER", "http://keycloak:8080/realms/dev", true).is_ok());
    }

    #[test]
    fn the_debug_output_names_no_key() {
        let verifier = OidcVerifier::new(OidcSettings::new("https://idp.test", "api")).unwrap();
        let debug = format!("{verifier:?}");
        assert!(debug.contains("https://idp.test"), "{debug}");
    }
}
