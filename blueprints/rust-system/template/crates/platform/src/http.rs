//! The HTTP stack shared by every binary: info, health and metrics routes,
//! problem-details fallbacks, request ids, request tracing and RED metrics.

use std::time::Duration;

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Request, Response};
use axum::routing::get;
use axum::{Json, Router, middleware};
use opentelemetry::trace::TraceContextExt;
use serde_json::{Value, json};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;
use tracing::field::{Empty, display};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::health::{self, Readiness};
use crate::metrics::{self, HttpMetrics};
use crate::{problem, propagation};

/// Header carrying the id that correlates a request across services and logs.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps the routes of the binary `name` with the shared stack:
///
/// - `GET /` describes the binary, `/healthz` and `/readyz` probe it and
///   `/metrics` serves its request counts and latencies per route;
/// - unknown routes and methods get problem details;
/// - each request gets an `x-request-id`, which is echoed on the response and
///   recorded on the request's span: the caller's is kept when it is valid (see
///   [`is_valid_request_id`]) and replaced by a new UUID otherwise, so logs and
///   upstream services never see an attacker-chosen, unbounded or malformed id;
/// - the request's span continues the caller's W3C trace (`traceparent`) or starts
///   a new one, and records its `trace_id`.
pub fn app(name: &'static str, routes: Router, readiness: Readiness) -> Router {
    let metrics = HttpMetrics::new();
    routes
        .route("/", get(move || info(name)))
        .merge(health::routes(readiness))
        .merge(metrics::routes(metrics.clone()))
        .fallback(problem::route_not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(middleware::from_fn_with_state(metrics, metrics::track))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(record_response),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(middleware::map_request(drop_invalid_request_id))
}

/// Longest request id accepted from a caller.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether `value` is acceptable as a caller's request id: 1 to
/// [`MAX_REQUEST_ID_LEN`] characters among ASCII letters, digits and `-_.:+/=@`
/// (UUIDs, ULIDs, base64 and the ids of common proxies and load balancers).
pub fn is_valid_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    (1..=MAX_REQUEST_ID_LEN).contains(&bytes.len())
        && bytes
            .iter()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:+/=@".contains(byte))
}

/// Removes the caller's `x-request-id` unless it is one valid value, so that
/// [`SetRequestIdLayer`] replaces it with a new one.
async fn drop_invalid_request_id(mut request: Request<Body>) -> Request<Body> {
    let mut ids = request.headers().get_all(&REQUEST_ID).iter();
    let valid = matches!((ids.next(), ids.next()), (Some(id), None) if is_valid_request_id(id));
    if !valid && request.headers_mut().remove(&REQUEST_ID).is_some() {
        tracing::debug!("replaced an invalid x-request-id");
    }
    request
}

async fn info(name: &'static str) -> Json<Value> {
    Json(json!({
        "name": name,
        "system": crate::SYSTEM.name,
        "description": crate::SYSTEM.description,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// The span of one request, named and labelled after its route template as the
/// OpenTelemetry HTTP conventions ask, a child of the caller's span when it sent one.
fn request_span(request: &Request<Body>) -> Span {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let method = request.method();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let name = match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_string(),
    };
    let span = tracing::info_span!(
        "request",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = route,
        url.path = %request.uri().path(),
        http.response.status_code = Empty,
        request_id,
        trace_id = Empty,
    );
    if span
        .set_parent(propagation::extract(request.headers()))
        .is_ok()
    {
        let trace_id = span.context().span().span_context().trace_id();
        span.record("trace_id", display(trace_id));
    }
    span
}

fn record_response<B>(response: &Response<B>, latency: Duration, span: &Span) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    tracing::info!(
        latency_ms = latency.as_micros() as f64 / 1000.0,
        "finished processing request"
    );
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode, Uri};
    use axum::routing::post;
    use http_body_util::{BodyExt, Full};
    use tower::ServiceExt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::propagation::TRACEPARENT;
    use crate::telemetry::{self, Telemetry, TraceConfig, log_layer};

    fn test_app() -> Router {
        app("test", Router::new(), Readiness::new())
    }

    async fn body_text(response: Response<Body>) -> String {
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(body.to_vec()).unwrap()
    }

    async fn scrape(app: Router) -> String {
        let request = Request::get("/metrics").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            metrics::CONTENT_TYPE_OPENMETRICS
        );
        body_text(response).await
    }

    /// Log output kept in memory.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Serves `request` with JSON logs and tracing as `telemetry::init` sets them up,
    /// and returns the span fields of the log line that ends the request.
    async fn logged_request_span(request: Request<Body>) -> Value {
        let logs = Logs::default();
        let writer = logs.clone();
        let telemetry = Telemetry::new(&TraceConfig::without_export("test")).unwrap();
        let subscriber = tracing_subscriber::registry()
            .with(log_layer(move || writer.clone()))
            .with(telemetry.layer());
        let _default = telemetry::testing::set_default(subscriber);
        test_app().oneshot(request).await.unwrap();

        let output = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        output
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .find(|line| line["fields"]["message"] == "finished processing request")
            .unwrap_or_else(|| panic!("no log line for the response in:\n{output}"))["span"]
            .clone()
    }

    #[tokio::test]
    async fn generates_a_request_id_when_missing() {
        let request = Request::get("/healthz").body(Body::empty()).unwrap();
        let response = test_app().oneshot(request).await.unwrap();
        let id = response.headers()[&REQUEST_ID].to_str().unwrap();
        assert_eq!(id.len(), 36, "expected a UUID, got {id}");
    }

    #[tokio::test]
    async fn echoes_the_callers_request_id() {
        let request = Request::get("/healthz")
            .header(&REQUEST_ID, "abc-123")
            .body(Body::empty())
            .unwrap();
        let response = test_app().oneshot(request).await.unwrap();
        assert_eq!(response.headers()[&REQUEST_ID], "abc-123");
    }

    #[tokio::test]
    async fn replaces_invalid_request_ids() {
        let too_long = "a".repeat(MAX_REQUEST_ID_LEN + 1);
        for invalid in [
            "",
            " ",
            "abc def",
            "<script>",
            "a\tb",
            "ü",
            too_long.as_str(),
        ] {
            let value = HeaderValue::from_bytes(invalid.as_bytes()).unwrap();
            let request = Request::get("/healthz")
                .header(&REQUEST_ID, value)
                .body(Body::empty())
                .unwrap();
            let response = test_app().oneshot(request).await.unwrap();
            let id = response.headers()[&REQUEST_ID].to_str().unwrap();
            assert_ne!(id, invalid);
            assert_eq!(id.len(), 36, "expected a UUID for {invalid:?}, got {id}");
        }
    }

    #[tokio::test]
    async fn replaces_repeated_request_ids() {
        let request = Request::get("/healthz")
            .header(&REQUEST_ID, "first")
            .header(&REQUEST_ID, "second")
            .body(Body::empty())
            .unwrap();
        let response = test_app().oneshot(request).await.unwrap();
        let ids: Vec<_> = response.headers().get_all(&REQUEST_ID).iter().collect();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].len(), 36, "expected a UUID, got {:?}", ids[0]);
    }

    #[test]
    fn accepts_request_ids_of_common_formats() {
        let longest = "a".repeat(MAX_REQUEST_ID_LEN);
        for valid in [
            "abc-123",
            "0f8fad5b-d9cb-469f-a165-70867728950e",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "Root=1-67891233-abcdef012345678912345678",
            "dGVzdA==/+_.:@",
            longest.as_str(),
        ] {
            assert!(
                is_valid_request_id(&HeaderValue::from_str(valid).unwrap()),
                "{valid}"
            );
        }
    }

    #[tokio::test]
    async fn unknown_routes_are_problem_details() {
        let request = Request::get("/nope").body(Body::empty()).unwrap();
        let response = test_app().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["content-type"], problem::CONTENT_TYPE);
    }

    #[tokio::test]
    async fn root_describes_the_binary() {
        let request = Request::get("/").body(Body::empty()).unwrap();
        let response = test_app().oneshot(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["name"], "test");
        assert_eq!(json["description"], crate::SYSTEM.description);
    }

    #[tokio::test]
    async fn metrics_count_and_time_requests_by_route_template() {
        let routes = Router::new().route("/things/{id}", get(|| async { "thing" }));
        let app = app("test", routes, Readiness::new());
        for path in ["/things/1", "/things/2", "/nope"] {
            let request = Request::get(path).body(Body::empty()).unwrap();
            app.clone().oneshot(request).await.unwrap();
        }

        let text = scrape(app).await;
        for expected in [
            r#"http_server_requests_total{method="GET",route="/things/{id}",status="200"} 2"#,
            r#"http_server_requests_total{method="GET",route="unmatched",status="404"} 1"#,
            r#"http_server_request_duration_seconds_count{method="GET",route="/things/{id}"} 2"#,
            r#"http_server_request_duration_seconds_bucket{le="10.0",method="GET",route="/things/{id}"} 2"#,
            "# TYPE process_start_time_seconds gauge",
        ] {
            assert!(text.contains(expected), "{expected} missing in:\n{text}");
        }
        assert!(!text.contains("/things/1"), "raw path as a label:\n{text}");
    }

    /// A gRPC service `shop.v1.Items` routed as tonic routes it: `GetItem` answers with
    /// one message and `OK` in the trailers, `Missing` answers `NOT_FOUND` in a
    /// trailers-only response and any other method is `UNIMPLEMENTED`.
    fn grpc_app() -> Router {
        async fn items(uri: Uri) -> Response<Body> {
            let grpc = Response::builder().header("content-type", "application/grpc");
            match uri.path().rsplit('/').next() {
                Some("GetItem") => {
                    let mut trailers = HeaderMap::new();
                    trailers.insert("grpc-status", 0.into());
                    let message = Full::new(Bytes::from_static(&[0; 5]));
                    let body = message.with_trailers(async { Some(Ok(trailers)) });
                    grpc.body(Body::new(body)).unwrap()
                }
                Some("Missing") => grpc.header("grpc-status", "5").body(Body::empty()).unwrap(),
                _ => grpc
                    .header("grpc-status", "12")
                    .body(Body::empty())
                    .unwrap(),
            }
        }
        let routes = Router::new().route("/shop.v1.Items/{*method}", post(items));
        app("test", routes, Readiness::new())
    }

    async fn call_grpc(app: &Router, path: &str) -> Response<Body> {
        let request = Request::post(path)
            .header("content-type", "application/grpc")
            .body(Body::empty())
            .unwrap();
        app.clone().oneshot(request).await.unwrap()
    }

    #[tokio::test]
    async fn grpc_calls_are_counted_by_rpc_and_the_status_in_their_trailers() {
        let app = grpc_app();
        for _ in 0..2 {
            let response = call_grpc(&app, "/shop.v1.Items/GetItem").await;
            let trailers = response
                .into_body()
                .collect()
                .await
                .unwrap()
                .trailers()
                .cloned();
            assert_eq!(trailers.unwrap()["grpc-status"], "0");
        }
        // The client goes away before the status: the call counts as cancelled.
        drop(call_grpc(&app, "/shop.v1.Items/GetItem").await);
        call_grpc(&app, "/shop.v1.Items/Missing").await;
        // Made-up methods and services share one series.
        call_grpc(&app, "/shop.v1.Items/Made_Up_1").await;
        call_grpc(&app, "/other.v1.Things/Made_Up_2").await;

        let text = scrape(app).await;
        for expected in [
            r#"grpc_server_handled_total{grpc_service="shop.v1.Items",grpc_method="GetItem",grpc_code="OK"} 2"#,
            r#"grpc_server_handled_total{grpc_service="shop.v1.Items",grpc_method="GetItem",grpc_code="CANCELLED"} 1"#,
            r#"grpc_server_handled_total{grpc_service="shop.v1.Items",grpc_method="Missing",grpc_code="NOT_FOUND"} 1"#,
            r#"grpc_server_handled_total{grpc_service="unmatched",grpc_method="unmatched",grpc_code="UNIMPLEMENTED"} 2"#,
            r#"grpc_server_handling_seconds_count{grpc_service="shop.v1.Items",grpc_method="GetItem"} 3"#,
        ] {
            assert!(text.contains(expected), "{expected} missing in:\n{text}");
        }
        assert!(
            !text.contains("Made_Up"),
            "made-up method as a label:\n{text}"
        );
        assert!(
            !text.contains(r#"route="/shop.v1.Items"#),
            "gRPC calls also counted as HTTP requests:\n{text}"
        );
    }

    #[tokio::test]
    async fn apps_keep_their_own_metrics() {
        let first = test_app();
        let second = test_app();
        let request = Request::get("/healthz").body(Body::empty()).unwrap();
        first.clone().oneshot(request).await.unwrap();

        assert!(scrape(first).await.contains(r#"route="/healthz""#));
        assert!(!scrape(second).await.contains(r#"route="/healthz""#));
    }

    #[tokio::test]
    async fn logs_carry_the_request_id_and_the_callers_trace_id() {
        let request = Request::get("/healthz")
            .header(&REQUEST_ID, "abc-123")
            .header(
                TRACEPARENT,
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .body(Body::empty())
            .unwrap();
        let span = logged_request_span(request).await;
        assert_eq!(span["request_id"], "abc-123");
        assert_eq!(span["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span["http.route"], "/healthz");
        assert_eq!(span["http.response.status_code"], 200);
    }

    #[tokio::test]
    async fn requests_without_trace_context_start_new_traces() {
        let mut trace_ids = Vec::new();
        for _ in 0..2 {
            let request = Request::get("/healthz").body(Body::empty()).unwrap();
            let span = logged_request_span(request).await;
            let trace_id = span["trace_id"].as_str().unwrap().to_owned();
            assert_eq!(trace_id.len(), 32, "{trace_id}");
            assert_ne!(trace_id, "0".repeat(32));
            trace_ids.push(trace_id);
        }
        assert_ne!(trace_ids[0], trace_ids[1]);
    }
}
