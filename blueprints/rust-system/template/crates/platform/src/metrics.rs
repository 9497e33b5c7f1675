//! RED metrics per route (rate, errors, duration), served at `/metrics` in the
//! OpenMetrics text format that Prometheus scrapes.
//!
//! gRPC calls are counted per RPC with their `grpc-status`, which arrives in the
//! trailers after the last message (HTTP says 200 for every call, failed or not), and
//! timed until the call ends, so a server stream counts for as long as it is open.
//!
//! Each app has its own registry, so several apps in one process (as in tests)
//! never see each other's requests.

use std::sync::{Arc, LazyLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::BodyExt;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Media type of the `/metrics` response.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `route` label of requests that matched no route, so unknown paths cannot
/// grow the number of series.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// The `grpc_service` and `grpc_method` labels of calls to methods the server does
/// not implement, so that made-up method names cannot grow the number of series.
pub const UNMATCHED_RPC: &str = "unmatched";

/// Upper bounds of the latency buckets in seconds, as OpenTelemetry recommends for
/// `http.server.request.duration`.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Seconds since the Unix epoch when the first app of this process was built.
static STARTED_AT: LazyLock<f64> = LazyLock::new(|| {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
});

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RpcLabels {
    grpc_service: String,
    grpc_method: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RpcCodeLabels {
    grpc_service: String,
    grpc_method: String,
    grpc_code: &'static str,
}

/// The metrics of one app and the registry that serves them.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    registry: Arc<Registry>,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    rpcs: Family<RpcCodeLabels, Counter>,
    rpc_durations: Family<RpcLabels, Histogram>,
}

impl HttpMetrics {
    /// A new registry with the request counter, the latency histogram and the
    /// process start time.
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    /// [`HttpMetrics::new`] with the binary's own metrics, which `register` adds to
    /// the registry.
    pub fn with(register: impl FnOnce(&mut Registry)) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(DURATION_BUCKETS)
        });
        let rpcs = Family::<RpcCodeLabels, Counter>::default();
        let rpc_durations = Family::<RpcLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(DURATION_BUCKETS)
        });
        let mut registry = Registry::default();
        registry.register(
            "http_server_requests",
            "HTTP requests answered, by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "http_server_request_duration_seconds",
            "Time until the response headers were ready, by method and route template",
            durations.clone(),
        );
        registry.register(
            "grpc_server_handled",
            "gRPC calls completed, by service, method and status code",
            rpcs.clone(),
        );
        registry.register(
            "grpc_server_handling_seconds",
            "Time from the start of a gRPC call to its status, by service and method",
            rpc_durations.clone(),
        );
        registry.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch, in seconds",
            ConstGauge::new(*STARTED_AT),
        );
        register(&mut registry);
        Self {
            registry: Arc::new(registry),
            requests,
            durations,
            rpcs,
            rpc_durations,
        }
    }

    /// Records one answered request.
    fn observe(&self, method: &Method, route: &str, status: StatusCode, seconds: f64) {
        let labels = RouteLabels {
            method: method.as_str().to_owned(),
            route: route.to_owned(),
        };
        self.durations.get_or_create(&labels).observe(seconds);
        self.requests
            .get_or_create(&RequestLabels {
                method: labels.method,
                route: labels.route,
                status: status.as_u16(),
            })
            .inc();
    }

    /// The registry in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing into a String cannot fail");
        text
    }
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The `/metrics` route.
pub fn routes(metrics: HttpMetrics) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(metrics)
}

async fn scrape(State(metrics): State<HttpMetrics>) -> impl IntoResponse {
    ([(CONTENT_TYPE, CONTENT_TYPE_OPENMETRICS)], metrics.render())
}

/// Counts and times every request by its route template (never the
/// raw path, so ids in paths do not multiply the series), and every gRPC call by its
/// RPC and status code.
pub(crate) async fn track(metrics: &HttpMetrics, request: Request, next: Next) -> Response {
    if is_grpc(request.headers()) {
        let call = RpcCall::start(metrics.clone(), &request);
        return call.watch(next.run(request).await);
    }
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    metrics.observe(
        &method,
        &route,
        response.status(),
        started.elapsed().as_secs_f64(),
    );
    response
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

/// One gRPC call in flight, recorded once when its status is known, or as
/// `CANCELLED` when the response is dropped before its trailers (the client went away).
#[derive(Debug)]
struct RpcCall {
    metrics: HttpMetrics,
    /// `package.Service` and `Method`, when the path matched a route and has that shape.
    rpc: Option<(String, String)>,
    started: Instant,
    recorded: bool,
}

impl RpcCall {
    fn start(metrics: HttpMetrics, request: &Request) -> Self {
        let rpc = request
            .extensions()
            .get::<MatchedPath>()
            .and_then(|_| request.uri().path().strip_prefix('/'))
            .and_then(|path| path.split_once('/'))
            .filter(|(service, method)| !service.is_empty() && !method.contains('/'))
            .map(|(service, method)| (service.to_owned(), method.to_owned()));
        Self {
            metrics,
            rpc,
            started: Instant::now(),
            recorded: false,
        }
    }

    /// Records the call now when the response already carries its status (a
    /// trailers-only response, or an HTTP error before gRPC began), and otherwise
    /// when the body yields its trailers.
    fn watch(mut self, response: Response) -> Response {
        if let Some(code) = grpc_status(response.headers()) {
            self.record(code);
            return response;
        }
        if response.status() != StatusCode::OK {
            self.record(code_of_http_status(response.status()));
            return response;
        }
        response.map(|body| {
            Body::new(body.map_frame(move |frame| {
                if let Some(trailers) = frame.trailers_ref() {
                    // A stream that ends without a status is an error, says the spec.
                    self.record(grpc_status(trailers).unwrap_or(UNKNOWN));
                }
                frame
            }))
        })
    }

    fn record(&mut self, code: u16) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        let (grpc_service, grpc_method) = match &self.rpc {
            Some((service, method)) if code != UNIMPLEMENTED => (service.clone(), method.clone()),
            _ => (UNMATCHED_RPC.to_owned(), UNMATCHED_RPC.to_owned()),
        };
        let labels = RpcLabels {
            grpc_service,
            grpc_method,
        };
        self.metrics
            .rpc_durations
            .get_or_create(&labels)
            .observe(self.started.elapsed().as_secs_f64());
        self.metrics
            .rpcs
            .get_or_create(&RpcCodeLabels {
                grpc_service: labels.grpc_service,
                grpc_method: labels.grpc_method,
                grpc_code: code_name(code),
            })
            .inc();
    }
}

impl Drop for RpcCall {
    fn drop(&mut self) {
        self.record(CANCELLED);
    }
}

const CANCELLED: u16 = 1;
const UNKNOWN: u16 = 2;
const UNIMPLEMENTED: u16 = 12;

/// The canonical names of the gRPC status codes, by code.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

fn code_name(code: u16) -> &'static str {
    CODE_NAMES
        .get(usize::from(code))
        .copied()
        .unwrap_or(CODE_NAMES[usize::from(UNKNOWN)])
}

fn grpc_status(headers: &HeaderMap) -> Option<u16> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// The status a gRPC client reports for an HTTP error, as the gRPC spec maps them.
fn code_of_http_status(status: StatusCode) -> u16 {
    match status.as_u16() {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => UNIMPLEMENTED,
        429 | 502..=504 => 14,
        _ => UNKNOWN,
    }
}
