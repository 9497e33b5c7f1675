//! The edge protections, through the gateway over real HTTP in front of a fake
//! service that records the requests it has fully received: rate limiting, CORS,
//! security headers, body and header size limits and request ids.

mod common;

use common::{Seen, header, send_body, spawn};

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, Response, StatusCode};
use axum::middleware;
use axum::response::Html;
use axum::routing::{any, get};
use gateway::rate_limit::RateLimitConfig;
use gateway::{ClientId, Config, EdgeConfig, Upstreams};
use platform::config::HttpUrl;
use platform::health::Readiness;

/// A service that echoes the bodies it reads completely (`/echo`) and serves an HTML
/// page (`/page`), recording both.
async fn spawn_service(seen: Seen) -> HttpUrl {
    async fn echo(State(seen): State<Seen>, headers: HeaderMap, body: Bytes) -> Bytes {
        seen.0.lock().unwrap().push(headers);
        body
    }
    async fn page(State(seen): State<Seen>, headers: HeaderMap) -> Html<&'static str> {
        seen.0.lock().unwrap().push(headers);
        Html("<!doctype html><title>docs</title>")
    }
    let app = Router::new()
        .route("/echo", any(echo))
        .route("/page", get(page))
        .with_state(seen);
    spawn(app).await
}

/// The gateway with `edge` in front of a fresh fake service `fake`, and what that
/// service sees.
async fn spawn_gateway(edge: EdgeConfig) -> (HttpUrl, Seen) {
    spawn_gateway_with(edge, |router| router).await
}

async fn spawn_gateway_with(
    edge: EdgeConfig,
    wrap: impl FnOnce(Router) -> Router,
) -> (HttpUrl, Seen) {
    let seen = Seen::default();
    let mut upstreams = Upstreams::default();
    upstreams.insert("fake", spawn_service(seen.clone()).await);
    let config = Config {
        edge,
        ..Config::new(upstreams)
    };
    let gateway = spawn(wrap(gateway::router(config, Readiness::new()))).await;
    (gateway, seen)
}

async fn get_from(gateway: &HttpUrl, path: &str, client: &str) -> Response<Bytes> {
    let request = Request::get(path).header("x-forwarded-for", client);
    send_body(gateway, request, Body::empty()).await
}

fn assert_problem(response: &Response<Bytes>, status: StatusCode) {
    assert_eq!(response.status(), status);
    assert_eq!(header(response, "content-type"), "application/problem+json");
}

/// Rate limiting keyed by the `X-Forwarded-For` of one trusted proxy, so the test can
/// play several clients; one token every 4 seconds leaves a loaded machine plenty of
/// time to send the burst before a token comes back.
fn rate_limited(burst: u32) -> EdgeConfig {
    EdgeConfig {
        rate_limit: RateLimitConfig {
            per_second: 0.25,
            burst,
            ..RateLimitConfig::default()
        },
        trusted_proxy_hops: 1,
        ..EdgeConfig::default()
    }
}

#[tokio::test]
async fn over_the_burst_gets_429_until_the_bucket_refills() {
    let (gateway, seen) = spawn_gateway(rate_limited(3)).await;
    let client = "198.51.100.1";
    for remaining in ["2", "1", "0"] {
        let response = get_from(&gateway, "/api/fake/echo", client).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header(&response, "ratelimit-limit"), "3");
        assert_eq!(header(&response, "ratelimit-remaining"), remaining);
    }

    let refused = get_from(&gateway, "/api/fake/echo", client).await;
    assert_problem(&refused, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header(&refused, "ratelimit-limit"), "3");
    assert_eq!(header(&refused, "ratelimit-remaining"), "0");
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=4).contains(&retry_after), "retry-after {retry_after}");
    let reset: u64 = header(&refused, "ratelimit-reset").parse().unwrap();
    assert!((retry_after..=12).contains(&reset), "reset {reset}");
    assert_eq!(seen.count(), 3, "the refused request reached the service");

    // Probes are never limited, and another client has its own bucket.
    let health = get_from(&gateway, "/healthz", client).await;
    assert_eq!(health.status(), StatusCode::OK);
    assert!(!health.headers().contains_key("ratelimit-limit"));
    let other = get_from(&gateway, "/api/fake/echo", "198.51.100.2").await;
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(seen.count(), 4);

    // After Retry-After, the client is served again.
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(200)).await;
    let again = get_from(&gateway, "/api/fake/echo", client).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(seen.count(), 5);
}

#[tokio::test]
async fn authenticated_clients_are_limited_by_identity_not_address() {
    // Stands in for authentication: the identity comes from a test header.
    let identify = |router: Router| {
        router.layer(middleware::map_request(|mut request: Request| async move {
            if let Some(id) = request.headers().get("x-test-client") {
                let id = ClientId(id.to_str().unwrap().to_owned());
                request.extensions_mut().insert(id);
            }
            Ok::<_, Infallible>(request)
        }))
    };
    let (gateway, seen) = spawn_gateway_with(rate_limited(1), identify).await;
    let as_client = |id: &str| Request::get("/api/fake/echo").header("x-test-client", id);

    assert_eq!(
        send_body(&gateway, as_client("alice"), Body::empty())
            .await
            .status(),
        StatusCode::OK
    );
    let refused = send_body(&gateway, as_client("alice"), Body::empty()).await;
    assert_problem(&refused, StatusCode::TOO_MANY_REQUESTS);
    // Same address, other identity: its own bucket.
    assert_eq!(
        send_body(&gateway, as_client("bob"), Body::empty())
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(seen.count(), 2);
}

#[tokio::test]
async fn grpc_calls_over_the_limit_get_resource_exhausted() {
    let (gateway, _) = spawn_gateway(rate_limited(1)).await;
    let call = || {
        Request::post("/fake.v1.Things/Get")
            .header("content-type", "application/grpc")
            .header("x-forwarded-for", "198.51.100.3")
    };
    // The first call spends the burst (the fake service has no gRPC: it answers 404).
    send_body(&gateway, call(), Body::empty()).await;

    let refused = send_body(&gateway, call(), Body::empty()).await;
    assert_eq!(refused.status(), StatusCode::OK);
    assert_eq!(header(&refused, "content-type"), "application/grpc");
    assert_eq!(header(&refused, "grpc-status"), "8");
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(header(&refused, "ratelimit-remaining"), "0");
}

fn with_cors() -> EdgeConfig {
    EdgeConfig {
        cors_allowed_origins: "https://app.example.com".parse().unwrap(),
        cors_allow_credentials: true,
        ..EdgeConfig::default()
    }
}

#[tokio::test]
async fn cors_headers_go_only_to_allowed_origins() {
    let from = |origin: &str| Request::get("/api/fake/echo").header("origin", origin);

    let (gateway, seen) = spawn_gateway(with_cors()).await;
    let denied = send_body(&gateway, from("https://evil.example"), Body::empty()).await;
    assert_eq!(denied.status(), StatusCode::OK);
    assert!(!denied.headers().contains_key("access-control-allow-origin"));

    let allowed = send_body(&gateway, from("https://app.example.com"), Body::empty()).await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        "https://app.example.com"
    );
    assert_eq!(header(&allowed, "access-control-allow-credentials"), "true");
    let exposed = header(&allowed, "access-control-expose-headers").to_ascii_lowercase();
    assert!(
        exposed.contains("x-request-id") && exposed.contains("retry-after"),
        "{exposed}"
    );
    assert_eq!(seen.count(), 2);

    // Without configured origins, no CORS headers at all.
    let (gateway, _) = spawn_gateway(EdgeConfig::default()).await;
    let plain = send_body(&gateway, from("https://app.example.com"), Body::empty()).await;
    assert!(!plain.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn cors_preflights_are_answered_by_the_gateway() {
    let preflight = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/api/fake/echo")
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .header(
                "access-control-request-headers",
                "content-type,authorization",
            )
    };
    let (gateway, seen) = spawn_gateway(with_cors()).await;

    let denied = send_body(&gateway, preflight("https://evil.example"), Body::empty()).await;
    assert!(!denied.headers().contains_key("access-control-allow-origin"));

    let allowed = send_body(
        &gateway,
        preflight("https://app.example.com"),
        Body::empty(),
    )
    .await;
    assert_eq!(allowed.status(), StatusCode::OK);
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        "https://app.example.com"
    );
    assert_eq!(header(&allowed, "access-control-allow-methods"), "PUT");
    assert_eq!(
        header(&allowed, "access-control-allow-headers"),
        "content-type,authorization"
    );
    assert_eq!(header(&allowed, "access-control-max-age"), "600");
    assert_eq!(seen.count(), 0, "a preflight reached the service");
}

#[tokio::test]
async fn every_response_gets_security_headers() {
    let (gateway, _) = spawn_gateway(EdgeConfig::default()).await;
    let https = |path: &str| Request::get(path).header("x-forwarded-proto", "https");

    for path in [
        "/api/fake/echo",
        "/api/fake/page",
        "/api/nope/x",
        "/healthz",
    ] {
        let response = send_body(&gateway, https(path), Body::empty()).await;
        assert_eq!(
            header(&response, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert_eq!(header(&response, "x-frame-options"), "DENY", "{path}");
        assert_eq!(
            header(&response, "referrer-policy"),
            "no-referrer",
            "{path}"
        );
        // Without a trusted proxy, `X-Forwarded-Proto` may be the client's own claim.
        assert!(
            !response.headers().contains_key("strict-transport-security"),
            "{path}"
        );
    }
    let api = send_body(&gateway, https("/api/fake/echo"), Body::empty()).await;
    assert_eq!(
        header(&api, "content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'"
    );
    // HTML pages (API docs) keep their CDN and inline scripts.
    let page = send_body(&gateway, https("/api/fake/page"), Body::empty()).await;
    assert_eq!(
        header(&page, "content-security-policy"),
        "frame-ancestors 'none'"
    );
}

#[tokio::test]
async fn hsts_only_when_a_trusted_proxy_saw_https() {
    let behind_proxy = EdgeConfig {
        trusted_proxy_hops: 1,
        ..EdgeConfig::default()
    };
    let (gateway, _) = spawn_gateway(behind_proxy).await;
    let via = |proto: &str| Request::get("/api/fake/echo").header("x-forwarded-proto", proto);

    let http = send_body(&gateway, via("http"), Body::empty()).await;
    assert!(!http.headers().contains_key("strict-transport-security"));
    let https = send_body(&gateway, via("https"), Body::empty()).await;
    assert_eq!(
        header(&https, "strict-transport-security"),
        "max-age=31536000"
    );
}

fn small_limits() -> EdgeConfig {
    EdgeConfig {
        max_body_bytes: 1024,
        max_header_bytes: 1024,
        max_header_count: 20,
        ..EdgeConfig::default()
    }
}

/// A body sent in chunks of 256 bytes, without `Content-Length`.
fn streamed(chunks: usize) -> Body {
    let chunks = (0..chunks).map(|_| Ok::<_, Infallible>(Bytes::from(vec![b'x'; 256])));
    Body::from_stream(futures_util::stream::iter(chunks))
}

#[tokio::test]
async fn too_large_bodies_get_413_without_reaching_the_service() {
    let (gateway, seen) = spawn_gateway(small_limits()).await;
    let post = || Request::post("/api/fake/echo");

    let declared = send_body(&gateway, post(), Body::from(vec![b'x'; 2048])).await;
    assert_problem(&declared, StatusCode::PAYLOAD_TOO_LARGE);
    let streamed_too_large = send_body(&gateway, post(), streamed(8)).await;
    assert_problem(&streamed_too_large, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(seen.count(), 0, "the service received a too large body");

    // Bodies within the limit, declared or streamed, go through whole.
    let small = send_body(&gateway, post(), Body::from(vec![b'x'; 1024])).await;
    assert_eq!(small.status(), StatusCode::OK);
    assert_eq!(small.body().len(), 1024);
    let small_stream = send_body(&gateway, post(), streamed(4)).await;
    assert_eq!(small_stream.status(), StatusCode::OK);
    assert_eq!(small_stream.body().len(), 1024);
    assert_eq!(seen.count(), 2);
}

#[tokio::test]
async fn too_large_headers_get_431_without_reaching_the_service() {
    let (gateway, seen) = spawn_gateway(small_limits()).await;

    let large = Request::get("/api/fake/echo").header("x-large", "x".repeat(1100));
    assert_problem(
        &send_body(&gateway, large, Body::empty()).await,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    );
    let mut many = Request::get("/api/fake/echo");
    for index in 0..25 {
        many = many.header(format!("x-header-{index}"), "x");
    }
    assert_problem(
        &send_body(&gateway, many, Body::empty()).await,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    );
    assert_eq!(seen.count(), 0);

    let fine = Request::get("/api/fake/echo").header("x-large", "x".repeat(500));
    assert_eq!(
        send_body(&gateway, fine, Body::empty()).await.status(),
        StatusCode::OK
    );
    assert_eq!(seen.count(), 1);
}

#[tokio::test]
async fn invalid_request_ids_are_replaced_and_valid_ones_forwarded() {
    let (gateway, seen) = spawn_gateway(EdgeConfig::default()).await;
    let with_id = |id: &str| Request::get("/api/fake/echo").header("x-request-id", id);

    let too_long = "a".repeat(129);
    for invalid in ["bad id", "<script>", too_long.as_str()] {
        let response = send_body(&gateway, with_id(invalid), Body::empty()).await;
        let echoed = header(&response, "x-request-id");
        assert_ne!(echoed, invalid);
        assert_eq!(echoed.len(), 36, "expected a new UUID, got {echoed}");
        assert_eq!(
            seen.last()["x-request-id"],
            echoed,
            "the service saw another id"
        );
    }

    let valid = send_body(&gateway, with_id("checkout-42.retry:1"), Body::empty()).await;
    assert_eq!(header(&valid, "x-request-id"), "checkout-42.retry:1");
    assert_eq!(seen.last()["x-request-id"], "checkout-42.retry:1");
}
