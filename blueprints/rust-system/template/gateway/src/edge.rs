//! Protections at the edge of the system, in front of every route the gateway
//! forwards: header and body size limits, per-client rate limiting (see
//! [`crate::rate_limit`]), CORS and security headers.
//!
//! The limits and the rate limiter guard the forwarded routes only, so health,
//! readiness and metrics probes are never refused; CORS and the security headers apply
//! to every response.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, SizeHint};
use platform::Problem;
use platform::config::{self, ConfigError};
use platform::http::REQUEST_ID;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};

use crate::auth::Auth;
use crate::rate_limit::{self, RateLimitConfig, RateLimiter};

/// How long browsers may cache a CORS preflight answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(600);
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// Policy for API responses: they load nothing and may not be framed.
const CSP_API: HeaderValue = HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'");
/// Policy for HTML pages (the REST and GraphQL docs, which load scripts from CDNs and
/// run inline scripts): they may not be framed, everything else is left to the page.
const CSP_HTML: HeaderValue = HeaderValue::from_static("frame-ancestors 'none'");

/// The edge protections' settings; see `docs/runbooks/gateway.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeConfig {
    /// Per-client token buckets.
    pub rate_limit: RateLimitConfig,
    /// How many reverse proxies in front of the gateway append to `X-Forwarded-For`
    /// and set `X-Forwarded-Proto`; 0 trusts neither header.
    pub trusted_proxy_hops: usize,
    /// Origins allowed to call the API from a browser; empty sends no CORS headers.
    pub cors_allowed_origins: Origins,
    /// Whether browsers may send cookies and credentials cross-origin.
    pub cors_allow_credentials: bool,
    /// Largest request body accepted (gRPC calls excepted).
    pub max_body_bytes: u64,
    /// Largest total size of the request headers, names and values.
    pub max_header_bytes: usize,
    /// Largest number of request headers.
    pub max_header_count: usize,
    /// `max-age` of `Strict-Transport-Security`, sent when a trusted proxy says the
    /// client used HTTPS; 0 never sends it.
    pub hsts_max_age: u64,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            rate_limit: RateLimitConfig::default(),
            trusted_proxy_hops: 0,
            cors_allowed_origins: Origins::default(),
            cors_allow_credentials: false,
            max_body_bytes: 1024 * 1024,
            max_header_bytes: 32 * 1024,
            max_header_count: 100,
            hsts_max_age: 365 * 24 * 60 * 60,
        }
    }
}

impl EdgeConfig {
    /// Reads the settings from the environment, with [`EdgeConfig::default`] for
    /// unset variables.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            rate_limit: RateLimitConfig::from_env()?,
            trusted_proxy_hops: var_or("TRUSTED_PROXY_HOPS", defaults.trusted_proxy_hops)?,
            cors_allowed_origins: config::optional_var("CORS_ALLOWED_ORIGINS")?.unwrap_or_default(),
            cors_allow_credentials: var_or(
                "CORS_ALLOW_CREDENTIALS",
                defaults.cors_allow_credentials,
            )?,
            max_body_bytes: var_or("MAX_BODY_BYTES", defaults.max_body_bytes)?,
            max_header_bytes: var_or("MAX_HEADER_BYTES", defaults.max_header_bytes)?,
            max_header_count: var_or("MAX_HEADER_COUNT", defaults.max_header_count)?,
            hsts_max_age: var_or("HSTS_MAX_AGE", defaults.hsts_max_age)?,
        })
    }
}

/// [`config::var_or`] with a typed default.
fn var_or<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr + ToString,
    T::Err: std::fmt::Display,
{
    config::var_or(name, &default.to_string())
}

/// A comma-separated list of origins (`https://app.example.com`); `*` is refused, so
/// credentials can never be combined with every origin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(Vec<HeaderValue>);

impl FromStr for Origins {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let mut origins = Vec::new();
        for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            let uri: Uri = origin
                .parse()
                .map_err(|error| format!("{origin:?} is not an origin ({error})"))?;
            let is_origin = matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.authority().is_some()
                && uri.path_and_query().is_none_or(|path| path.as_str() == "/")
                && !origin.ends_with('/')
                && !origin.contains('*');
            if !is_origin {
                return Err(format!(
                    "{origin:?} is not an origin: expected scheme://host[:port], without `*` or a path"
                ));
            }
            origins.push(HeaderValue::from_str(origin).map_err(|error| error.to_string())?);
        }
        Ok(Self(origins))
    }
}

/// Puts the protections of [`guard`] in front of `api`, the forwarded routes.
pub(crate) fn protect_api(api: Router, config: &EdgeConfig, auth: Auth) -> Router {
    let protections = Protections {
        limits: Limits {
            max_body_bytes: config.max_body_bytes,
            max_header_bytes: config.max_header_bytes,
            max_header_count: config.max_header_count,
        },
        rate_limiter: RateLimiter::new(&config.rate_limit, config.trusted_proxy_hops),
        auth,
    };
    api.layer(middleware::from_fn_with_state(Arc::new(protections), guard))
}

/// What [`guard`] checks.
#[derive(Debug)]
struct Protections {
    limits: Limits,
    /// `None` when rate limiting is off.
    rate_limiter: Option<RateLimiter>,
    auth: Auth,
}

/// Checks a forwarded request, in this order: its headers' size (431); its
/// credentials, which are verified and stripped of forged identity headers; the rate
/// limit of its client, the verified identity or else the IP address (429); its body's
/// size (413); and its permission to call the service (401, 403). Every response
/// carries the client's rate limit headers.
///
/// One middleware rather than one per step: an axum middleware clones everything
/// beneath it for every request, so a stack of them costs more than the checks.
async fn guard(
    State(protections): State<Arc<Protections>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(response) = protections.limits.check_headers(request.headers()) {
        return response;
    }
    protections.auth.identify(&mut request).await;
    let Some(limiter) = &protections.rate_limiter else {
        return admit(&protections, request, next).await;
    };
    let decision = limiter.take_token(&request);
    let mut response = if decision.allowed() {
        admit(&protections, request, next).await
    } else {
        limiter.too_many_requests(&request, &decision)
    };
    limiter.set_headers(response.headers_mut(), &decision);
    response
}

/// The checks behind the rate limiter, then the service.
async fn admit(protections: &Protections, request: Request, next: Next) -> Response {
    let limits = &protections.limits;
    if limits.declares_too_large_a_body(request.headers()) {
        return limits.body_too_large();
    }
    let (request, exceeded) = limits.count_body(request);
    let response = match protections.auth.refusal(&request) {
        Some(refusal) => refusal,
        None => next.run(request).await,
    };
    if exceeded.is_some_and(|exceeded| exceeded.load(Ordering::Acquire)) {
        tracing::debug!("streamed request body too large");
        return limits.body_too_large();
    }
    response
}

/// Adds CORS (when origins are allowed) and the security headers to every response of
/// `app`.
pub(crate) fn protect_all(app: Router, config: &EdgeConfig) -> Router {
    let app = if config.cors_allowed_origins.0.is_empty() {
        app
    } else {
        app.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(config.cors_allowed_origins.0.clone()))
                .allow_credentials(config.cors_allow_credentials)
                .allow_methods(AllowMethods::mirror_request())
                .allow_headers(AllowHeaders::mirror_request())
                .expose_headers(ExposeHeaders::list([
                    REQUEST_ID,
                    header::RETRY_AFTER,
                    header::WWW_AUTHENTICATE,
                    rate_limit::RATELIMIT_LIMIT,
                    rate_limit::RATELIMIT_REMAINING,
                    rate_limit::RATELIMIT_RESET,
                ]))
                .max_age(CORS_MAX_AGE),
        )
    };
    let hsts = (config.trusted_proxy_hops > 0 && config.hsts_max_age > 0).then(|| {
        HeaderValue::try_from(format!("max-age={}", config.hsts_max_age))
            .expect("a number is a valid header value")
    });
    app.layer(middleware::from_fn_with_state(
        Arc::new(hsts),
        security_headers,
    ))
}

/// The client's IP address: the connection's peer, or, behind `trusted_proxy_hops`
/// proxies, the address the outermost trusted proxy appended to `X-Forwarded-For`
/// (entries further left were written by the client and are not trusted).
pub(crate) fn client_ip(request: &Request, trusted_proxy_hops: usize) -> Option<IpAddr> {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    if trusted_proxy_hops == 0 {
        return peer;
    }
    let forwarded: Vec<&str> = request
        .headers()
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    forwarded
        .len()
        .checked_sub(trusted_proxy_hops)
        .and_then(|index| parse_forwarded_ip(forwarded[index]))
        .or(peer)
}

/// An `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`).
fn parse_forwarded_ip(entry: &str) -> Option<IpAddr> {
    entry
        .parse()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

/// Adds `X-Content-Type-Options`, `X-Frame-Options`, `Referrer-Policy`, a
/// `Content-Security-Policy` and, for HTTPS clients, `Strict-Transport-Security`,
/// unless the service already chose a value.
async fn security_headers(
    State(hsts): State<Arc<Option<HeaderValue>>>,
    request: Request,
    next: Next,
) -> Response {
    let https = request
        .headers()
        .get(&X_FORWARDED_PROTO)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.rsplit(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
    let mut response = next.run(request).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/html"));
    let headers = response.headers_mut();
    let csp = if is_html { CSP_HTML } else { CSP_API };
    for (name, value) in [
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::CONTENT_SECURITY_POLICY, csp),
    ] {
        headers.entry(name).or_insert(value);
    }
    if let Some(hsts) = hsts.as_ref()
        && https
    {
        headers
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert_with(|| hsts.clone());
    }
    response
}

/// Size limits of requests.
#[derive(Debug)]
struct Limits {
    max_body_bytes: u64,
    max_header_bytes: usize,
    max_header_count: usize,
}

impl Limits {
    /// The 431 answer to requests with too many or too large headers.
    fn check_headers(&self, headers: &HeaderMap) -> Option<Response> {
        let bytes: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        if headers.len() <= self.max_header_count && bytes <= self.max_header_bytes {
            return None;
        }
        tracing::debug!(count = headers.len(), bytes, "request headers too large");
        let problem =
            Problem::new(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE).with_detail(format!(
                "at most {} headers of {} bytes in total are accepted",
                self.max_header_count, self.max_header_bytes
            ));
        Some(problem.into_response())
    }

    /// Whether the request's `Content-Length` is over the limit (gRPC calls excepted,
    /// see [`Limits::count_body`]).
    fn declares_too_large_a_body(&self, headers: &HeaderMap) -> bool {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        let too_large =
            !is_grpc(headers) && declared.is_some_and(|length| length > self.max_body_bytes);
        if too_large {
            tracing::debug!(content_length = declared, "request body too large");
        }
        too_large
    }

    /// The request with its body counted, and the flag its body raises when it goes
    /// past the limit (the service then sees an aborted request, never a complete
    /// one). gRPC calls are exempt: their streams may last for hours, and the
    /// services limit each message.
    fn count_body(&self, request: Request) -> (Request, Option<Arc<AtomicBool>>) {
        if is_grpc(request.headers()) {
            return (request, None);
        }
        let exceeded = Arc::new(AtomicBool::new(false));
        let request = request.map(|body| {
            Body::new(LimitedBody {
                inner: body,
                remaining: self.max_body_bytes,
                exceeded: exceeded.clone(),
            })
        });
        (request, Some(exceeded))
    }

    /// The 413 answer.
    fn body_too_large(&self) -> Response {
        Problem::new(StatusCode::PAYLOAD_TOO_LARGE)
            .with_detail(format!(
                "the request body is larger than {} bytes",
                self.max_body_bytes
            ))
            .into_response()
    }
}

/// Whether the request is a gRPC call.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// A request body that fails, and records that it did, once more than `remaining`
/// bytes have gone through.
struct LimitedBody {
    inner: Body,
    remaining: u64,
    exceeded: Arc<AtomicBool>,
}

impl HttpBody for LimitedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        let len = frame.data_ref().map_or(0, |data| data.len() as u64);
        match self.remaining.checked_sub(len) {
            Some(remaining) => {
                self.remaining = remaining;
                Poll::Ready(Some(Ok(frame)))
            }
            None => {
                self.exceeded.store(true, Ordering::Release);
                Poll::Ready(Some(Err(axum::Error::new(io::Error::other(
                    "request body too large",
                )))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_origins() {
        let origins: Origins = "https://app.example.com, http://localhost:3000"
            .parse()
            .unwrap();
        assert_eq!(
            origins.0,
            ["https://app.example.com", "http://localhost:3000"]
        );
    }

    #[test]
    fn refuses_wildcards_and_paths() {
        for invalid in [
            "*",
            "https://*.example.com",
            "https://a.example/path",
            "a.example",
        ] {
            assert!(invalid.parse::<Origins>().is_err(), "{invalid}");
        }
    }

    fn request_from(peer: &str, forwarded_for: Option<&str>) -> Request {
        let mut builder = Request::get("/");
        if let Some(chain) = forwarded_for {
            builder = builder.header(X_FORWARDED_FOR, chain);
        }
        let mut request = builder.body(Body::empty()).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(peer));
        request
    }

    #[test]
    fn trusts_forwarded_for_only_up_to_the_configured_hops() {
        let request = request_from("10.0.0.1:1234", Some("6.6.6.6, 203.0.113.7"));
        let ip = |hops| client_ip(&request, hops).unwrap().to_string();
        assert_eq!(ip(0), "10.0.0.1");
        assert_eq!(ip(1), "203.0.113.7");
        assert_eq!(ip(2), "6.6.6.6");
        // Fewer entries than trusted hops: the peer is all that is known.
        assert_eq!(ip(3), "10.0.0.1");
        let with_port = request_from("10.0.0.1:1234", Some("[2001:db8::1]:4711"));
        assert_eq!(client_ip(&with_port, 1).unwrap().to_string(), "2001:db8::1");
        let direct = request_from("10.0.0.1:1234", None);
        assert_eq!(client_ip(&direct, 1).unwrap().to_string(), "10.0.0.1");
    }
}
