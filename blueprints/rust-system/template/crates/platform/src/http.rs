//! The HTTP stack shared by every binary: info, health and metrics routes,
//! problem-details fallbacks, request ids, request tracing and RED metrics.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router, middleware};
use opentelemetry::trace::TraceContextExt;
use serde_json::{Value, json};
use tracing::field::{Empty, display};
use tracing::{Instrument, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

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
    app_with_metrics(name, routes, readiness, HttpMetrics::new())
}

/// [`app`] serving `metrics` (made with [`HttpMetrics::with`], which adds the binary's
/// own metrics) at `/metrics`.
pub fn app_with_metrics(
    name: &'static str,
    routes: Router,
    readiness: Readiness,
    metrics: HttpMetrics,
) -> Router {
    routes
        .route("/", get(move || info(name)))
        .merge(health::routes(readiness))
        .merge(metrics::routes(metrics.clone()))
        .fallback(problem::route_not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(middleware::from_fn_with_state(metrics, observe))
}

/// Gives the request its id and its span, counts and times it, and logs its answer.
/// One middleware rather than a stack of them: an axum middleware clones everything
/// beneath it for every request.
async fn observe(State(metrics): State<HttpMetrics>, mut request: Request, next: Next) -> Response {
    let request_id = keep_or_make_request_id(request.headers_mut());
    let span = request_span(&request);
    let started = Instant::now();
    let mut response = metrics::track(&metrics, request, next)
        .instrument(span.clone())
        .await;
    span.in_scope(|| record_response(&response, started.elapsed(), &span));
    response
        .headers_mut()
        .entry(REQUEST_ID)
        .or_insert(request_id);
    response
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

/// The request's id: the caller's when it sent one valid value, otherwise a new UUID,
/// which replaces whatever the caller sent.
fn keep_or_make_request_id(headers: &mut HeaderMap) -> HeaderValue {
    let mut ids = headers.get_all(&REQUEST_ID).iter();
    if let (Some(id), None) = (ids.next(), ids.next())
        && is_valid_request_id(id)
    {
        return id.clone();
    }
    if headers.contains_key(&REQUEST_ID) {
        tracing::debug!("replaced an invalid x-request-id");
    }
    let id =
        HeaderValue::try_from(Uuid::new_v4().to_string()).expect("a UUID is a valid header value");
    headers.insert(REQUEST_ID, id.clone());
    id
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
fn request_span(request: &Request) -> Span {
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
        http.request.method = method.as_str(),
        http.route = route,
        url.path = request.uri().path(),
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

/// Records the status on the request's span and logs the answer, as an error when it
/// is a server error.
fn record_response(response: &Response, latency: Duration, span: &Span) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    let latency_ms = latency.as_micros() as f64 / 1000.0;
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
        tracing::error!(latency_ms, "finished processing request");
    } else {
        tracing::info!(latency_ms, "finished processing request");
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use axum::body::{Body, Bytes};
    use axum::http::{StatusCode, Uri};
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
        logged_request(test_app(), request).await["span"].clone()
    }

    /// Serves `request` with `app`, JSON logs and tracing as `telemetry::init` sets
    /// them up, and returns the log line that ends the request.
    async fn logged_request(app: Router, request: Request<Body>) -> Value {
        let logs = Logs::default();
        let writer = logs.clone();
        let telemetry = Telemetry::new(&TraceConfig::without_export("test")).unwrap();
        let subscriber = tracing_subscriber::registry()
            .with(log_layer(move || writer.clone()))
            .with(telemetry.layer());
        let _default = telemetry::testing::set_default(subscriber);
        app.oneshot(request).await.unwrap();

        let output = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        output
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .find(|line| line["fields"]["message"] == "finished processing request")
            .unwrap_or_else(|| panic!("no log line for the response in:\n{output}"))
    }

    #[tokio::test]
    async fn server_errors_are_logged_as_errors() {
        let routes = Router::new().route(
            "/broken",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        );
        let app = app("test", routes, Readiness::new());
        let request = Request::get("/broken").body(Body::empty()).unwrap();
        let line = logged_request(app, request).await;
        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["span"]["http.response.status_code"], 500);

        let request = Request::get("/healthz").body(Body::empty()).unwrap();
        assert_eq!(logged_request(test_app(), request).await["level"], "INFO");
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
