//! Observability through the gateway: services continue the caller's trace, and the
//! gateway's metrics count proxied requests by route template, not by raw path.

mod common;

use common::spawn;

use std::sync::Once;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::get;
use gateway::{Config, Upstreams};
use http_body_util::BodyExt;
use platform::client::http_client;
use platform::config::HttpUrl;
use platform::health::Readiness;
use platform::propagation::TRACEPARENT;
use platform::telemetry::{Telemetry, TraceConfig};
use tracing_subscriber::layer::SubscriberExt;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";

/// Traces as `telemetry::init` does, without logs or export, for the whole process
/// (a per-test subscriber would race with the other tests' threads).
fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let telemetry = Telemetry::new(&TraceConfig::without_export("gateway")).unwrap();
        let subscriber = tracing_subscriber::registry().with(telemetry.layer());
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

/// The gateway in front of one upstream, `echo`, that answers `GET /` with the
/// `traceparent` it received.
async fn gateway_to_echo() -> HttpUrl {
    init_tracing();
    let echo = Router::new().route(
        "/",
        get(|headers: HeaderMap| async move {
            headers
                .get(TRACEPARENT)
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        }),
    );
    let mut upstreams = Upstreams::default();
    upstreams.insert("echo", spawn(echo).await);
    spawn(gateway::router(Config::new(upstreams), Readiness::new())).await
}

async fn get_text(base: &HttpUrl, path: &str, headers: HeaderMap) -> (StatusCode, String) {
    let mut request = Request::get(base.join(path).unwrap())
        .body(Body::empty())
        .unwrap();
    *request.headers_mut() = headers;
    let response = http_client().request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn services_continue_the_callers_trace() {
    let gateway = gateway_to_echo().await;

    let mut headers = HeaderMap::new();
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");
    headers.insert(TRACEPARENT, traceparent.parse().unwrap());
    let (status, seen) = get_text(&gateway, "/api/echo/", headers).await;

    assert_eq!(status, StatusCode::OK);
    let fields: Vec<&str> = seen.split('-').collect();
    assert_eq!(fields.len(), 4, "not a traceparent: {seen:?}");
    assert_eq!(fields[1], TRACE_ID, "the upstream left the trace: {seen}");
    assert_ne!(
        fields[2], CALLER_SPAN_ID,
        "the upstream's parent is not the gateway's span: {seen}"
    );
}

#[tokio::test]
async fn gateway_metrics_count_proxied_requests_by_route_template() {
    let gateway = gateway_to_echo().await;
    for path in ["/api/echo/", "/api/echo/items/42?page=2"] {
        get_text(&gateway, path, HeaderMap::new()).await;
    }

    let (status, metrics) = get_text(&gateway, "/metrics", HeaderMap::new()).await;
    assert_eq!(status, StatusCode::OK);
    for expected in [
        r#"http_server_requests_total{method="GET",route="/api/{service}/",status="200"} 1"#,
        r#"http_server_requests_total{method="GET",route="/api/{service}/{*path}",status="404"} 1"#,
    ] {
        assert!(
            metrics.contains(expected),
            "{expected} missing in:\n{metrics}"
        );
    }
    assert!(
        !metrics.contains("items/42"),
        "raw path as a label:\n{metrics}"
    );
}

#[tokio::test]
async fn every_metric_served_is_in_the_runbook() {
    let runbook = include_str!("../../docs/runbooks/gateway.md");
    let gateway = gateway_to_echo().await;
    get_text(&gateway, "/api/echo/", HeaderMap::new()).await;

    let (_, metrics) = get_text(&gateway, "/metrics", HeaderMap::new()).await;
    let names: Vec<&str> = metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert!(names.contains(&"gateway_upstream_retries"), "{metrics}");
    for name in names {
        assert!(
            runbook.contains(&format!("`{name}")),
            "{name} is served but not in docs/runbooks/gateway.md"
        );
    }
}
