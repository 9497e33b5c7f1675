//! Streaming reverse proxy from the gateway to the services, for every protocol:
//! plain HTTP (REST, GraphQL, server-sent events), upgraded connections (WebSocket)
//! and gRPC over HTTP/2.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{StatusCode, Version};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use platform::client::{self, HttpClient};
{% if auth.mtls %}
use platform::tls::Identity;
{% endif %}
use platform::{Problem, problem, propagation};
use prometheus_client::registry::Registry;
use tracing::Instrument;

use crate::resilience::{self, Rejection, Resilience};
use crate::{ResilienceConfig, Upstreams};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// Headers that describe one connection and must not be forwarded (RFC 9110, 7.6.1).
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Shared state of the proxy: where the services are, how they are protected, a
/// pooled HTTP/1 client and a pooled HTTP/2 client for gRPC. The router holds it
/// behind one `Arc`, so that requests do not clone the clients.
#[derive(Debug, Clone)]
pub struct Gateway {
    upstreams: Arc<Upstreams>,
    resilience: Arc<Resilience>,
    client: HttpClient,
    grpc: HttpClient,
}

impl Gateway {
    /// A gateway to `upstreams`, with the default [`ResilienceConfig`].
    pub fn new(upstreams: Upstreams) -> Self {
        let resilience = Resilience::new(ResilienceConfig::default(), &upstreams);
        Self {
            upstreams: Arc::new(upstreams),
            resilience: Arc::new(resilience),
            client: client::http_client(),
            grpc: grpc_client(),
        }
    }

    /// This gateway with timeouts, retries, breakers and bulkheads set by `config`.
    #[must_use]
    pub fn with_resilience(mut self, config: ResilienceConfig) -> Self {
        self.resilience = Arc::new(Resilience::new(config, &self.upstreams));
        self
    }

    /// Adds the resilience metrics of the upstreams to `registry`.
    pub(crate) fn register_metrics(&self, registry: &mut Registry) {
        self.resilience.metrics().register(registry);
    }
{% if auth.mtls %}

    /// This gateway calling its upstreams over mutual TLS with `identity`'s certificate
    /// (`https://` URLs only), or over plain HTTP when `None`.
    #[must_use]
    pub fn with_tls(mut self, identity: Option<&Identity>) -> Self {
        if let Some(identity) = identity {
            self.client = Client::builder(TokioExecutor::new())
                .build(client::mtls_connector(identity, false));
            self.grpc = Client::builder(TokioExecutor::new())
                .http2_only(true)
                .build(client::mtls_connector(identity, true));
        }
        self
    }
{% endif %}
}

/// An HTTP/2 cleartext client (prior knowledge) over the platform's connections.
fn grpc_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
{% if auth.mtls %}
        .build(client::plain_connector())
{% else %}
        .build(client::connector())
{% endif %}
}

/// How a request travels to its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// One HTTP/1.1 exchange with streamed bodies: REST, GraphQL, server-sent events.
    Http,
    /// An HTTP/1.1 upgrade (WebSocket): after the service's 101 both connections are joined.
    Upgrade,
    /// gRPC: HTTP/2 to the service, trailers kept, failures answered as gRPC statuses.
    Grpc,
}

impl Protocol {
    /// The protocol of a request with these headers.
    fn of(headers: &HeaderMap) -> Self {
        if is_grpc(headers) {
            Self::Grpc
        } else if headers.contains_key(header::UPGRADE)
            && connection_options(headers).any(|option| option.eq_ignore_ascii_case("upgrade"))
        {
            Self::Upgrade
        } else {
            Self::Http
        }
    }

    /// The answer to the client: the service's response, or the problem as problem
    /// details (as a gRPC status for gRPC calls, so gRPC clients can read it).
    fn respond(self, result: Result<Response, Problem>) -> Response {
        match result {
            Ok(response) => response,
            Err(problem) if self == Self::Grpc => grpc_status(&problem),
            Err(problem) => problem.into_response(),
        }
    }
}

/// Forwards `/api/<service>/<path>` to `<path>` on that service.
pub(crate) async fn forward_api(State(gateway): State<Arc<Gateway>>, request: Request) -> Response {
    let protocol = Protocol::of(request.headers());
    let route = split_api_path(request.uri().path())
        .map(|(service, path)| (service.to_owned(), path.to_owned()));
    let result = match route {
        Some((service, path)) => forward(&gateway, protocol, &service, &path, request).await,
        None => Err(Problem::not_found("expected /api/<service>/<path>")),
    };
    protocol.respond(result)
}

/// Forwards a gRPC call `/<package>.<Service>/<Method>`, path unchanged, to the service
/// named by the first segment of the package (see [`grpc_service`]). Other requests on
/// such paths are unknown routes.
pub(crate) async fn forward_grpc(
    State(gateway): State<Arc<Gateway>>,
    request: Request,
) -> Response {
    if Protocol::of(request.headers()) != Protocol::Grpc {
        return problem::route_not_found(request.uri().clone())
            .await
            .into_response();
    }
    let path = request.uri().path().to_owned();
    let result = match grpc_service(&path) {
        Some(service) => forward(&gateway, Protocol::Grpc, &service, &path, request).await,
        None => Err(Problem::not_found(format!(
            "no service for the gRPC call {path}"
        ))),
    };
    Protocol::Grpc.respond(result)
}

/// Forwards the request to `path` on `service`, as a child of the current trace,
/// streaming both bodies (and, after an upgrade, both connections), within the
/// service's bulkhead and circuit breaker, retrying what may be retried (see
/// [`resilience`]). The timeout ends with the service's response headers: streams
/// last as long as both ends keep them open.
async fn forward(
    gateway: &Gateway,
    protocol: Protocol,
    service: &str,
    path: &str,
    mut request: Request,
) -> Result<Response, Problem> {
    let downstream = (protocol == Protocol::Upgrade).then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    let mut admission = match gateway.resilience.admit(service) {
        Ok(Some(admission)) => admission,
        Ok(None) => return Err(Problem::not_found(format!("no service named {service:?}"))),
        Err(rejection) => return Ok(rejected(protocol, service, rejection)),
    };
    let upstream = gateway
        .upstreams
        .get(service)
        .ok_or_else(|| Problem::not_found(format!("no service named {service:?}")))?;
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    parts.uri = upstream
        .join(&path_and_query)
        .map_err(|error| Problem::bad_request(format!("cannot forward this path: {error}")))?;
    parts.version = match protocol {
        Protocol::Grpc => Version::HTTP_2,
        Protocol::Http | Protocol::Upgrade => Version::HTTP_11,
    };
    let client_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    // The gateway's own request state (peer address, route, identity) stays here,
    // which also keeps the head that a retry replays cheap to copy.
    parts.extensions.clear();
    prepare_upstream_headers(&mut parts.headers, client_ip, protocol);
    propagation::inject_current(&mut parts.headers);

    let client = match protocol {
        Protocol::Grpc => &gateway.grpc,
        Protocol::Http | Protocol::Upgrade => &gateway.client,
    };
    // Only bodiless requests are replayed: a streamed body cannot be sent twice.
    let replay = (protocol == Protocol::Http
        && resilience::is_idempotent(&parts.method)
        && body.is_end_stream())
    .then(|| parts.clone());
    let mut response = admission
        .send(client, Request::from_parts(parts, body), replay, upstream)
        .await?;
    // The service answered: the request leaves the bulkhead while its body streams.
    drop(admission);

    let mut kept = Protocol::Http;
    if let Some(downstream) = downstream
        && response.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        let upstream = hyper::upgrade::on(&mut response);
        tokio::spawn(tunnel(downstream, upstream).in_current_span());
        kept = Protocol::Upgrade;
    }
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers, kept);
    prefix_location(&mut parts.headers, &format!("/api/{service}"));
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// The 503 answer to a request that was not sent to `service`, with `Retry-After`.
fn rejected(protocol: Protocol, service: &str, rejection: Rejection) -> Response {
    let (detail, retry_after) = match rejection {
        Rejection::Open(wait) => (
            format!("service {service:?} is failing: its circuit breaker is open"),
            wait.as_secs()
                .saturating_add(u64::from(wait.subsec_nanos() > 0)),
        ),
        Rejection::Full => (
            format!("service {service:?} has too many requests in flight"),
            1,
        ),
    };
    let problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE).with_detail(detail);
    let mut response = protocol.respond(Err(problem));
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
    response
}

/// Joins the client's and the service's upgraded connections, copying both ways
/// until each side has closed its end.
async fn tunnel(downstream: OnUpgrade, upstream: OnUpgrade) {
    match tokio::try_join!(downstream, upstream) {
        Ok((downstream, upstream)) => {
            let mut downstream = TokioIo::new(downstream);
            let mut upstream = TokioIo::new(upstream);
            match tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
                Ok((from_client, from_service)) => {
                    tracing::debug!(from_client, from_service, "upgraded connection closed");
                }
                Err(error) => tracing::debug!(%error, "upgraded connection failed"),
            }
        }
        Err(error) => tracing::warn!(%error, "connection upgrade failed"),
    }
}

/// Splits `/api/<service>/<path>` into the service and `/<path>`.
pub(crate) fn split_api_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/")?;
    let (service, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    Some((service, path))
}

/// The service a gRPC call `/<package>.<Service>/<Method>` is for: the first segment
/// of the package with `_` read as `-`, so `/order_items.v1.OrderItems/Get` goes to
/// the service `order-items`.
pub(crate) fn grpc_service(path: &str) -> Option<String> {
    let (qualified, method) = path.strip_prefix('/')?.split_once('/')?;
    let (package, _) = qualified.split_once('.')?;
    if package.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    Some(package.replace('_', "-"))
}

/// Whether the request is a gRPC call (`application/grpc`, `application/grpc+proto`,
/// ...). gRPC-Web is plain HTTP/1 and travels as such.
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("application/grpc"))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['+', ';']))
}

/// The gRPC status codes the gateway answers with.
#[derive(Debug, Clone, Copy)]
enum GrpcCode {
    Unknown = 2,
    DeadlineExceeded = 4,
    PermissionDenied = 7,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

/// A trailers-only gRPC response carrying `problem` as a status, with the code gRPC
/// maps its HTTP status to ("HTTP to gRPC Status Code Mapping").
pub(crate) fn grpc_status(problem: &Problem) -> Response {
    let code = match problem.status_code() {
        StatusCode::BAD_REQUEST => GrpcCode::Internal,
        StatusCode::UNAUTHORIZED => GrpcCode::Unauthenticated,
        StatusCode::FORBIDDEN => GrpcCode::PermissionDenied,
        StatusCode::NOT_FOUND => GrpcCode::Unimplemented,
        StatusCode::TOO_MANY_REQUESTS
        | StatusCode::BAD_GATEWAY
        | StatusCode::SERVICE_UNAVAILABLE => GrpcCode::Unavailable,
        StatusCode::GATEWAY_TIMEOUT => GrpcCode::DeadlineExceeded,
        _ => GrpcCode::Unknown,
    };
    let message = problem.detail.as_deref().unwrap_or(&problem.title);
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(GRPC_STATUS, HeaderValue::from(code as u16));
    if let Ok(message) = HeaderValue::try_from(percent_encode(message)) {
        headers.insert(GRPC_MESSAGE, message);
    }
    response
}

/// Percent-encodes a `grpc-message`: every byte but printable ASCII, and `%`.
fn percent_encode(message: &str) -> String {
    let mut encoded = String::with_capacity(message.len());
    for byte in message.bytes() {
        if matches!(byte, b' '..=b'~') && byte != b'%' {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Drops hop-by-hop headers (keeping what `protocol` needs) and the `Host` (the client
/// sets the upstream's), and records the original client, host and scheme in
/// `x-forwarded-*` headers.
fn prepare_upstream_headers(
    headers: &mut HeaderMap,
    client_ip: Option<IpAddr>,
    protocol: Protocol,
) {
    remove_hop_by_hop(headers, protocol);
    if let Some(host) = headers.remove(header::HOST) {
        headers.insert(X_FORWARDED_HOST, host);
    }
    if let Some(ip) = client_ip {
        let chain = match headers
            .get(&X_FORWARDED_FOR)
            .and_then(|value| value.to_str().ok())
        {
            Some(chain) => format!("{chain}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(value) = HeaderValue::try_from(chain) {
            headers.insert(X_FORWARDED_FOR, value);
        }
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
}

/// The options listed in the `Connection` headers.
fn connection_options(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
}

/// Removes the standard hop-by-hop headers and those listed in `Connection`, except
/// what `protocol` needs end to end: an upgrade keeps `Connection: upgrade`, `Upgrade`
/// and its `Sec-WebSocket-*` handshake, gRPC keeps `TE: trailers`.
fn remove_hop_by_hop(headers: &mut HeaderMap, protocol: Protocol) {
    let upgrade = match protocol {
        Protocol::Upgrade => headers.get(header::UPGRADE).cloned(),
        Protocol::Http | Protocol::Grpc => None,
    };
    let te_trailers = protocol == Protocol::Grpc
        && headers
            .get(header::TE)
            .is_some_and(|value| value == "trailers");
    let listed: Vec<HeaderName> = connection_options(headers)
        .filter_map(|option| HeaderName::try_from(option).ok())
        .filter(|name| upgrade.is_none() || !name.as_str().starts_with("sec-websocket-"))
        .collect();
    for name in listed.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
    if let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Rewrites an absolute-path `Location` from the service so it points through the gateway.
fn prefix_location(headers: &mut HeaderMap, prefix: &str) {
    let Some(location) = headers
        .get(header::LOCATION)
        .and_then(|value| value.to_str().ok())
    else {
        return;
    };
    if location.starts_with('/')
        && !location.starts_with("//")
        && let Ok(value) = HeaderValue::try_from(format!("{prefix}{location}"))
    {
        headers.insert(header::LOCATION, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_service_and_path() {
        assert_eq!(
            split_api_path("/api/example/v1/items"),
            Some(("example", "/v1/items"))
        );
        assert_eq!(split_api_path("/api/example/"), Some(("example", "/")));
        assert_eq!(split_api_path("/api/example"), Some(("example", "/")));
        assert_eq!(split_api_path("/healthz"), None);
    }

    #[test]
    fn grpc_calls_name_their_service_by_package() {
        assert_eq!(
            grpc_service("/order_items.v1.OrderItems/Get").as_deref(),
            Some("order-items")
        );
        assert_eq!(
            grpc_service("/catalog.v1.Catalog/ListItems").as_deref(),
            Some("catalog")
        );
        assert_eq!(
            grpc_service("/grpc.health.v1.Health/Check").as_deref(),
            Some("grpc")
        );
        for path in [
            "/Health/Check",
            "/.v1.Health/Check",
            "/a.B/",
            "/a.B/c/d",
            "a.B/C",
        ] {
            assert_eq!(grpc_service(path), None, "{path}");
        }
    }

    #[test]
    fn tells_protocols_apart() {
        let headers = |pairs: &[(HeaderName, &'static str)]| {
            pairs
                .iter()
                .map(|(name, value)| (name.clone(), HeaderValue::from_static(value)))
                .collect::<HeaderMap>()
        };
        let grpc = headers(&[(header::CONTENT_TYPE, "application/grpc")]);
        let grpc_proto = headers(&[(header::CONTENT_TYPE, "application/grpc+proto")]);
        let grpc_web = headers(&[(header::CONTENT_TYPE, "application/grpc-web")]);
        let websocket = headers(&[
            (header::CONNECTION, "keep-alive, Upgrade"),
            (header::UPGRADE, "websocket"),
        ]);
        let unlisted_upgrade = headers(&[(header::UPGRADE, "websocket")]);
        assert_eq!(Protocol::of(&grpc), Protocol::Grpc);
        assert_eq!(Protocol::of(&grpc_proto), Protocol::Grpc);
        assert_eq!(Protocol::of(&grpc_web), Protocol::Http);
        assert_eq!(Protocol::of(&websocket), Protocol::Upgrade);
        assert_eq!(Protocol::of(&unlisted_upgrade), Protocol::Http);
        assert_eq!(Protocol::of(&HeaderMap::new()), Protocol::Http);
    }

    #[test]
    fn strips_hop_by_hop_headers_and_sets_forwarded_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(header::HOST, HeaderValue::from_static("api.example.com"));
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.7"));
        headers.insert("x-request-id", HeaderValue::from_static("abc"));

        prepare_upstream_headers(
            &mut headers,
            Some(IpAddr::from([10, 0, 0, 1])),
            Protocol::Http,
        );

        for gone in [
            "connection",
            "keep-alive",
            "x-secret",
            "transfer-encoding",
            "te",
            "host",
        ] {
            assert!(!headers.contains_key(gone), "{gone} was forwarded");
        }
        assert_eq!(headers[X_FORWARDED_FOR], "203.0.113.7, 10.0.0.1");
        assert_eq!(headers[X_FORWARDED_HOST], "api.example.com");
        assert_eq!(headers[X_FORWARDED_PROTO], "http");
        assert_eq!(headers["x-request-id"], "abc");
    }

    #[test]
    fn upgrades_keep_their_handshake() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade, Sec-WebSocket-Key"),
        );
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("graphql-transport-ws"),
        );
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));

        remove_hop_by_hop(&mut headers, Protocol::Upgrade);

        assert_eq!(headers[header::CONNECTION], "upgrade");
        assert_eq!(headers[header::UPGRADE], "websocket");
        assert_eq!(
            headers[header::SEC_WEBSOCKET_KEY],
            "dGhlIHNhbXBsZSBub25jZQ=="
        );
        assert_eq!(
            headers[header::SEC_WEBSOCKET_PROTOCOL],
            "graphql-transport-ws"
        );
        assert!(!headers.contains_key("keep-alive"));
    }

    #[test]
    fn grpc_keeps_te_trailers_only() {
        let mut headers = HeaderMap::new();
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        remove_hop_by_hop(&mut headers, Protocol::Grpc);
        assert_eq!(headers[header::TE], "trailers");

        headers.insert(header::TE, HeaderValue::from_static("gzip"));
        remove_hop_by_hop(&mut headers, Protocol::Grpc);
        assert!(!headers.contains_key(header::TE));
    }

    #[test]
    fn problems_become_trailers_only_grpc_statuses() {
        let response = grpc_status(&Problem::bad_gateway("service \"a\" is 100% down"));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/grpc");
        assert_eq!(response.headers()[GRPC_STATUS], "14");
        assert_eq!(
            response.headers()[GRPC_MESSAGE],
            "service \"a\" is 100%25 down"
        );

        let response = grpc_status(&Problem::not_found("no service named \"é\""));
        assert_eq!(response.headers()[GRPC_STATUS], "12");
        assert_eq!(
            response.headers()[GRPC_MESSAGE],
            "no service named \"%C3%A9\""
        );
    }

    #[test]
    fn prefixes_relative_locations_only() {
        let mut headers = HeaderMap::new();
        headers.insert(header::LOCATION, HeaderValue::from_static("/v1/items/1"));
        prefix_location(&mut headers, "/api/example");
        assert_eq!(headers[header::LOCATION], "/api/example/v1/items/1");

        headers.insert(
            header::LOCATION,
            HeaderValue::from_static("http://elsewhere/x"),
        );
        prefix_location(&mut headers, "/api/example");
        assert_eq!(headers[header::LOCATION], "http://elsewhere/x");
    }
}
