//! Streaming reverse proxy from the gateway to the services.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::Version;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use platform::client::{self, HttpClient};
use platform::{Problem, propagation};

use crate::Upstreams;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

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

/// Shared state of the proxy: where the services are and a pooled HTTP client.
#[derive(Debug, Clone)]
pub struct Gateway {
    upstreams: Arc<Upstreams>,
    client: HttpClient,
}

impl Gateway {
    /// A gateway to `upstreams`.
    pub fn new(upstreams: Upstreams) -> Self {
        Self {
            upstreams: Arc::new(upstreams),
            client: client::http_client(),
        }
    }
}

/// Forwards the request to its service, streaming both bodies, as a child of the
/// current trace.
pub(crate) async fn forward(
    State(gateway): State<Gateway>,
    request: Request,
) -> Result<Response, Problem> {
    let (mut parts, body) = request.into_parts();
    let original = parts.uri.clone();
    let (service, path) = split_api_path(original.path())
        .ok_or_else(|| Problem::not_found("expected /api/<service>/<path>"))?;
    let upstream = gateway
        .upstreams
        .get(service)
        .ok_or_else(|| Problem::not_found(format!("no service named {service:?}")))?;
    let path_and_query = match original.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    parts.uri = upstream
        .join(&path_and_query)
        .map_err(|error| Problem::bad_request(format!("cannot forward this path: {error}")))?;
    parts.version = Version::HTTP_11;
    let client_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    prepare_upstream_headers(&mut parts.headers, client_ip);
    propagation::inject_current(&mut parts.headers);

    let response = gateway
        .client
        .request(Request::from_parts(parts, body))
        .await
        .map_err(|error| {
            tracing::warn!(service, %upstream, %error, "upstream request failed");
            Problem::bad_gateway(format!("service {service:?} is unreachable"))
        })?;

    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    prefix_location(&mut parts.headers, &format!("/api/{service}"));
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// Splits `/api/<service>/<path>` into the service and `/<path>`.
fn split_api_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/api/")?;
    let (service, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    Some((service, path))
}

/// Drops hop-by-hop headers and the `Host` (the client sets the upstream's), and
/// records the original client, host and scheme in `x-forwarded-*` headers.
fn prepare_upstream_headers(headers: &mut HeaderMap, client_ip: Option<IpAddr>) {
    remove_hop_by_hop(headers);
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

/// Removes the standard hop-by-hop headers and those listed in `Connection`.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in listed.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
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
        headers.insert(header::HOST, HeaderValue::from_static("api.example.com"));
        headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("203.0.113.7"));
        headers.insert("x-request-id", HeaderValue::from_static("abc"));

        prepare_upstream_headers(&mut headers, Some(IpAddr::from([10, 0, 0, 1])));

        for gone in [
            "connection",
            "keep-alive",
            "x-secret",
            "transfer-encoding",
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
