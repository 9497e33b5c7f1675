//! Structured JSON logs on stdout, filtered by `RUST_LOG` (default `info`), and
//! OpenTelemetry traces, exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT`
//! is set.
//!
//! Spans always get trace ids, so logs carry them and calls to other services
//! continue the trace even when nothing is exported. Traces are recorded at `info`
//! level whatever `RUST_LOG` says, so quieter logs never break a trace; warnings and
//! errors are also events of the span they happen in.

use std::io;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use http_body_util::{BodyExt, Limited};
use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider;
use opentelemetry_http::{Bytes, HttpError, Request, Response};
use opentelemetry_otlp::{ExporterBuildError, Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::runtime::Handle;
use tracing::{Level, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::client::{self, HttpClient};
use crate::config::{self, ConfigError, HttpUrl};

/// Variable naming the service in exported traces.
pub const SERVICE_NAME_VAR: &str = "OTEL_SERVICE_NAME";

/// Variable holding the base URL of the OTLP/HTTP collector.
pub const OTLP_ENDPOINT_VAR: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// How long one export may take, as the OTLP specification's default.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest collector response read, to bound memory.
const MAX_EXPORT_RESPONSE_BYTES: usize = 64 * 1024;

/// Logging or tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG`, `OTEL_SERVICE_NAME` or `OTEL_EXPORTER_OTLP_ENDPOINT` is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The OTLP exporter could not be built.
    #[error("cannot export traces to {OTLP_ENDPOINT_VAR}: {0}")]
    Exporter(#[from] ExporterBuildError),
    /// Exporting needs a Tokio runtime to send from.
    #[error("exporting traces needs a Tokio runtime: set up telemetry inside one")]
    NoRuntime,
    /// Another global subscriber was installed first.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// What traces are recorded as, and where they go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceConfig {
    /// `service.name` of every span (`OTEL_SERVICE_NAME`).
    pub service_name: String,
    /// Base URL of the collector (`OTEL_EXPORTER_OTLP_ENDPOINT`); spans are posted
    /// to `<url>/v1/traces`. Nothing is exported when it is `None`.
    pub otlp_endpoint: Option<HttpUrl>,
}

impl TraceConfig {
    /// Reads `OTEL_SERVICE_NAME` (default `service_name`) and `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn from_env(service_name: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            service_name: config::var_or(SERVICE_NAME_VAR, service_name)?,
{% if auth.mtls %}
            otlp_endpoint: config::optional_var(OTLP_ENDPOINT_VAR)?
                .map(plain_endpoint)
                .transpose()?,
{% else %}
            otlp_endpoint: config::optional_var(OTLP_ENDPOINT_VAR)?,
{% endif %}
        })
    }

    /// Traces of `service_name` that are recorded but not exported.
    pub fn without_export(service_name: &str) -> Self {
        Self {
            service_name: service_name.to_owned(),
            otlp_endpoint: None,
        }
    }
}

{% if auth.mtls %}
/// `url` as a collector endpoint: `http://` only, since the export client has no TLS
/// trust (an `https://` collector is reached through a local collector that forwards).
fn plain_endpoint(url: HttpUrl) -> Result<HttpUrl, ConfigError> {
    if url.is_https() {
        return Err(ConfigError::Invalid {
            name: OTLP_ENDPOINT_VAR,
            value: url.to_string(),
            reason: "expected an http:// URL".to_owned(),
        });
    }
    Ok(url)
}

{% endif %}
/// The tracer provider of the process; [`Telemetry::shutdown`] flushes it.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// A tracer provider for `config`, with an OTLP exporter when it names an endpoint.
    /// An exporter must be built inside the Tokio runtime it will send from.
    pub fn new(config: &TraceConfig) -> Result<Self, TelemetryError> {
        let resource = Resource::builder()
            .with_service_name(config.service_name.clone())
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .build();
        let mut provider = SdkTracerProvider::builder().with_resource(resource);
        if let Some(endpoint) = &config.otlp_endpoint {
            provider = provider.with_batch_exporter(otlp_exporter(endpoint)?);
        }
        Ok(Self {
            provider: provider.build(),
        })
    }

    /// The layer that turns `tracing` spans of `info` level and above into
    /// OpenTelemetry spans, with the warnings and errors logged inside them as span
    /// events. Info lines stay in the logs only (they carry the trace id): as span
    /// events they would cost every request an allocation even when nothing is
    /// exported. Spans do not record how long they were busy or idle, which would read
    /// the clock at every poll.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("platform"))
            .with_tracked_inactivity(false)
            .with_filter(filter_fn(|metadata| {
                let threshold = if metadata.is_span() {
                    Level::INFO
                } else {
                    Level::WARN
                };
                *metadata.level() <= threshold
            }))
    }

    /// Exports the spans still buffered and stops exporting. Call once the server
    /// has drained, before the process exits.
    pub async fn shutdown(self) {
        let provider = self.provider;
        // Exports run on this runtime while the flush blocks, so block elsewhere.
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot flush traces"),
            Err(error) => tracing::warn!(%error, "cannot flush traces"),
        }
    }
}

/// Installs the global subscriber of the binary `service_name`: JSON logs on stdout
/// and its traces. Call once, first thing in `main`, and [`Telemetry::shutdown`]
/// before returning.
pub fn init(service_name: &str) -> Result<Telemetry, TelemetryError> {
    let filter: EnvFilter = config::var_or("RUST_LOG", "info")?;
    let telemetry = Telemetry::new(&TraceConfig::from_env(service_name)?)?;
    tracing_subscriber::registry()
        .with(log_layer(io::stdout).with_filter(filter))
        .with(telemetry.layer())
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(telemetry)
}

/// One JSON object per line and event, with the fields of the current span (for
/// requests: method, route, `request_id` and `trace_id`).
pub(crate) fn log_layer<S, W>(writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(writer)
}

fn otlp_exporter(endpoint: &HttpUrl) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    let runtime = Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
    let url = endpoint
        .join("/v1/traces")
        .map_err(|error| ConfigError::Invalid {
            name: OTLP_ENDPOINT_VAR,
            value: endpoint.to_string(),
            reason: error.to_string(),
        })?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(ExportClient {
            client: client::http_client(),
            runtime,
        })
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url.to_string())
        .build()?;
    Ok(exporter)
}

/// Sends OTLP requests with the platform's HTTP client. The SDK exports from a
/// thread of its own, outside the runtime, so each request runs as a task on it.
#[derive(Debug)]
struct ExportClient {
    client: HttpClient,
    runtime: Handle,
}

#[async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let exchange = async move {
            let response = client.request(request.map(Body::from)).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_EXPORT_RESPONSE_BYTES)
                .collect()
                .await?
                .to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        self.runtime
            .spawn(async move { tokio::time::timeout(EXPORT_TIMEOUT, exchange).await })
            .await??
    }
}

/// Helpers for tests that trace.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Once;

    use tracing::Subscriber;
    use tracing::subscriber::DefaultGuard;

    /// Makes `subscriber` this thread's default until the guard drops.
    ///
    /// A global subscriber that wants every event is installed first. With a single
    /// registered subscriber, `tracing` caches whether a callsite is enabled from
    /// the default of whichever thread reaches it first, so a test running on
    /// another thread could silently disable this thread's events and spans.
    pub(crate) fn set_default(subscriber: impl Subscriber + Send + Sync + 'static) -> DefaultGuard {
        static GLOBAL: Once = Once::new();
        GLOBAL.call_once(|| {
            tracing::subscriber::set_global_default(tracing_subscriber::registry()).unwrap();
        });
        tracing::subscriber::set_default(subscriber)
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::header::CONTENT_TYPE;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post};
    use opentelemetry::trace::{SpanId, TraceId};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use prost::Message;
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;
    use tower::ServiceExt;

    use super::*;
    use crate::health::Readiness;
    use crate::propagation::TRACEPARENT;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// An OTLP/HTTP collector on an ephemeral port that passes on what it receives.
    async fn collector() -> (HttpUrl, mpsc::Receiver<(HeaderMap, Bytes)>) {
        let (sender, receiver) = mpsc::channel(8);
        let app = Router::new().route(
            "/v1/traces",
            post(move |headers: HeaderMap, body: Bytes| async move {
                sender.send((headers, body)).await.unwrap();
                StatusCode::OK
            }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url.parse().unwrap(), receiver)
    }

    #[test]
    fn invalid_filter_names_rust_log() {
        let error = config::parse::<EnvFilter>("RUST_LOG", "info,[").unwrap_err();
        assert!(error.to_string().contains("RUST_LOG"), "{error}");
    }

    #[test]
    fn invalid_endpoint_names_the_variable() {
{% if auth.mtls %}
        let error = config::parse::<HttpUrl>(OTLP_ENDPOINT_VAR, "localhost:4318").unwrap_err();
        assert!(error.to_string().contains(OTLP_ENDPOINT_VAR), "{error}");
        let https = config::parse(OTLP_ENDPOINT_VAR, "https://collector:4318").unwrap();
        let error = plain_endpoint(https).unwrap_err();
        assert!(error.to_string().contains(OTLP_ENDPOINT_VAR), "{error}");
{% else %}
        for value in ["localhost:4318", "https://collector:4318"] {
            let error = config::parse::<HttpUrl>(OTLP_ENDPOINT_VAR, value).unwrap_err();
            assert!(error.to_string().contains(OTLP_ENDPOINT_VAR), "{error}");
        }
{% endif %}
    }

    #[test]
    fn exporting_needs_a_runtime() {
        let config = TraceConfig {
            otlp_endpoint: Some("http://127.0.0.1:4318".parse().unwrap()),
            ..TraceConfig::without_export("test")
        };
        assert!(matches!(
            Telemetry::new(&config),
            Err(TelemetryError::NoRuntime)
        ));
    }

    #[tokio::test]
    async fn request_spans_reach_the_collector_on_shutdown() {
        let (endpoint, mut exports) = collector().await;
        let telemetry = Telemetry::new(&TraceConfig {
            service_name: "export-test".to_owned(),
            otlp_endpoint: Some(endpoint),
        })
        .unwrap();
        {
            let subscriber = tracing_subscriber::registry().with(telemetry.layer());
            let _default = testing::set_default(subscriber);
            let request = axum::http::Request::get("/healthz")
                .header(TRACEPARENT, PARENT)
                .body(Body::empty())
                .unwrap();
            let app = crate::http::app("test", Router::new(), Readiness::new());
            let response = app.oneshot(request).await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
        }
        telemetry.shutdown().await;

        // The collector queues an export before answering it, and the flush waits
        // for the answer: it must be there without waiting.
        let (headers, body) = exports
            .try_recv()
            .expect("spans not exported when shutdown returned");
        assert_eq!(headers[CONTENT_TYPE], "application/x-protobuf");
        let export = ExportTraceServiceRequest::decode(body).unwrap();
        let resource_spans = &export.resource_spans[0];
        let service_name = resource_spans
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .find(|attribute| attribute.key == "service.name")
            .and_then(|attribute| attribute.value.clone()?.value);
        assert_eq!(
            service_name,
            Some(Value::StringValue("export-test".to_owned()))
        );
        let span = &resource_spans.scope_spans[0].spans[0];
        assert_eq!(span.name, "GET /healthz");
        let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(span.trace_id, trace_id.to_bytes());
        let parent_id = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        assert_eq!(span.parent_span_id, parent_id.to_bytes());
    }

    #[tokio::test]
    async fn warnings_become_span_events_and_info_lines_do_not() {
        let (endpoint, mut exports) = collector().await;
        let telemetry = Telemetry::new(&TraceConfig {
            service_name: "events-test".to_owned(),
            otlp_endpoint: Some(endpoint),
        })
        .unwrap();
        {
            let subscriber = tracing_subscriber::registry().with(telemetry.layer());
            let _default = testing::set_default(subscriber);
            let routes = Router::new().route(
                "/work",
                get(|| async {
                    tracing::info!("step done");
                    tracing::warn!("upstream slow");
                    "done"
                }),
            );
            let app = crate::http::app("test", routes, Readiness::new());
            let request = axum::http::Request::get("/work")
                .body(Body::empty())
                .unwrap();
            assert_eq!(app.oneshot(request).await.unwrap().status(), StatusCode::OK);
        }
        telemetry.shutdown().await;

        let (_, body) = exports.try_recv().expect("spans not exported");
        let export = ExportTraceServiceRequest::decode(body).unwrap();
        let span = &export.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.name, "GET /work");
        let events: Vec<&str> = span
            .events
            .iter()
            .map(|event| event.name.as_str())
            .collect();
        assert_eq!(events, ["upstream slow"]);
        let attributes: Vec<&str> = span.attributes.iter().map(|a| a.key.as_str()).collect();
        assert!(attributes.contains(&"http.route"), "{attributes:?}");
        assert!(!attributes.contains(&"busy_ns"), "{attributes:?}");
    }
}
