//! The API gateway: forwards `/api/<service>/<path>` to `<path>` on that service, for
//! every protocol the services speak.
//!
//! - HTTP (REST, GraphQL, server-sent events) is forwarded over HTTP/1.1 with both
//!   bodies streamed: nothing is buffered or compressed, and no timeout cuts a
//!   long-lived stream.
//! - WebSocket (and any other HTTP/1.1 upgrade, such as GraphQL subscriptions over
//!   `graphql-transport-ws`): the handshake, subprotocol included, goes to the service;
//!   after its `101 Switching Protocols` the two connections are joined until either
//!   side closes. Any other answer is passed back as it is.
//! - gRPC (`content-type: application/grpc`, HTTP/2 cleartext from the client) is
//!   forwarded over HTTP/2 with trailers kept. A gRPC client that cannot add the
//!   `/api/<service>` prefix calls `/<package>.<Service>/<Method>` directly: the call
//!   goes, path unchanged, to the service whose name in snake_case is the first segment
//!   of the package (`/order_items.v1.OrderItems/Get` goes to `order-items`).
//!
//! Every forwarded request first passes the edge protections of [`edge`]: header and
//! body size limits, per-client rate limiting; every response gets CORS (when
//! configured) and security headers.
//!
//! An unknown service is a 404 and an unreachable one a 502, as problem details; a
//! gRPC call gets a gRPC status instead (`UNIMPLEMENTED`, `UNAVAILABLE`). Each service
//! has a timeout (504, `DEADLINE_EXCEEDED`), retries within a budget, a circuit breaker
//! and a bulkhead (503); see the `resilience` module.

pub mod auth;
pub mod edge;
mod proxy;
pub mod rate_limit;
mod resilience;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::routing::any;
use platform::config::{self, ConfigError, HttpUrl};
use platform::health::Readiness;
use platform::metrics::HttpMetrics;
{% if auth.mtls %}
use platform::tls::Identity;
{% endif %}

pub use auth::AuthConfig;
pub use edge::EdgeConfig;
pub use proxy::Gateway;
pub use rate_limit::ClientId;
pub use resilience::ResilienceConfig;

/// Name of this binary, as used in logs and the `/` response.
pub const NAME: &str = "gateway";

/// A service the gateway routes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Service {
    /// Path segment after `/api/` and name of the service.
    pub name: &'static str,
    /// Environment variable holding the service's base URL.
    pub url_var: &'static str,
    /// Base URL used when the variable is unset.
    pub default_url: &'static str,
    /// Environment variable overriding `UPSTREAM_TIMEOUT_MS` for this service.
    pub timeout_var: &'static str,
{% if auth.scheme != 'none' %}
    /// Environment variable overriding the role reads need (`<service>:read`).
    pub read_role_var: &'static str,
    /// Environment variable overriding the role writes need (`<service>:write`).
    pub write_role_var: &'static str,
{% endif %}
}

/// Every service behind the gateway.
pub const SERVICES: &[Service] = &[
{% for s in services %}
    // Requests to /api/{{ s.name }}/... go to the `{{ s.name }}` service.
    Service {
        name: "{{ s.name }}",
        url_var: "{{ s.name | screaming_snake_case }}_URL",
        default_url: "{% if auth.mtls %}https{% else %}http{% endif %}://127.0.0.1:{{ 8081 | plus: s.index }}",
        timeout_var: "{{ s.name | screaming_snake_case }}_TIMEOUT_MS",
{% if auth.scheme != 'none' %}
        read_role_var: "{{ s.name | screaming_snake_case }}_READ_ROLE",
        write_role_var: "{{ s.name | screaming_snake_case }}_WRITE_ROLE",
{% endif %}
    },
{% endfor %}
];

/// Base URL of each service, by name.
#[derive(Debug, Clone, Default)]
pub struct Upstreams(HashMap<String, HttpUrl>);

impl Upstreams {
    /// Reads the URL of every service in [`SERVICES`] from its environment variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut upstreams = Self::default();
        for service in SERVICES {
            let url = config::var_or(service.url_var, service.default_url)?;
            upstreams.insert(service.name, url);
        }
        Ok(upstreams)
    }

    /// Routes the service `name` to `url`.
    pub fn insert(&mut self, name: impl Into<String>, url: HttpUrl) {
        self.0.insert(name.into(), url);
    }

    /// The names of the services, in no particular order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The base URL of the service `name`.
    pub fn get(&self, name: &str) -> Option<&HttpUrl> {
        self.0.get(name)
    }
}

/// Everything the gateway reads from the environment; see `docs/runbooks/gateway.md`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where each service is.
    pub upstreams: Upstreams,
    /// Timeouts, retries, circuit breakers and bulkheads of the upstreams.
    pub resilience: ResilienceConfig,
    /// Limits, rate limiting, CORS and security headers.
    pub edge: EdgeConfig,
    /// Who may call which service.
    pub auth: AuthConfig,
{% if auth.mtls %}
    /// The certificate the gateway presents to the services over mutual TLS (their
    /// URLs are then `https://`); `None` calls them over plain HTTP.
    pub tls: Option<Identity>,
{% endif %}
}

impl Config {
    /// The configuration for `upstreams`, with what the environment would set left at
    /// its defaults, and no authentication (identity headers are still stripped): set
    /// [`Config::auth`] to test or embed an authenticating gateway.
    pub fn new(upstreams: Upstreams) -> Self {
        Self {
            upstreams,
            resilience: ResilienceConfig::default(),
            edge: EdgeConfig::default(),
            auth: AuthConfig::default(),
{% if auth.mtls %}
            tls: None,
{% endif %}
        }
    }

    /// Reads the whole configuration from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            upstreams: Upstreams::from_env()?,
            resilience: ResilienceConfig::from_env()?,
            edge: EdgeConfig::from_env()?,
            auth: AuthConfig::from_env()?,
{% if auth.mtls %}
            tls: Some(Identity::from_env(NAME)?),
{% endif %}
        })
    }
}

/// The gateway's API: `/api/<service>/...`, gRPC calls by service name and the shared
/// platform routes.
pub fn router(config: Config, readiness: Readiness) -> Router {
{% if auth.mtls %}
    let gateway = Gateway::new(config.upstreams)
        .with_resilience(config.resilience)
        .with_tls(config.tls.as_ref());
{% else %}
    let gateway = Gateway::new(config.upstreams).with_resilience(config.resilience);
{% endif %}
    let metrics = HttpMetrics::with(|registry| gateway.register_metrics(registry));
    let api = Router::new()
        .route("/api/{service}", any(proxy::forward_api))
        .route("/api/{service}/", any(proxy::forward_api))
        .route("/api/{service}/{*path}", any(proxy::forward_api))
        .route("/{grpc_service}/{method}", any(proxy::forward_grpc))
        .with_state(Arc::new(gateway));
    let api = edge::protect_api(api, &config.edge, auth::Auth::new(config.auth));
    let app = platform::http::app_with_metrics(NAME, api, readiness, metrics);
    edge::protect_all(app, &config.edge)
}
