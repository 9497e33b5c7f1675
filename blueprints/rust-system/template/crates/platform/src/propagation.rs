//! W3C trace context (`traceparent`, `tracestate`) in HTTP headers: continuing the
//! caller's trace, and passing the current one on to the services called.

use axum::http::HeaderMap;
use axum::http::header::HeaderName;
use opentelemetry::Context;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Header carrying the trace id, the caller's span id and the sampling decision.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Header carrying vendor-specific trace state.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The trace context the caller sent; empty when it sent none or an invalid one.
pub fn extract(headers: &HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes the current span's trace context into `headers`, so the service called
/// continues this trace as a child of the current span. Without a current trace
/// the headers are left as they are.
pub fn inject_current(headers: &mut HeaderMap) {
    let context = Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    if headers
        .get(&TRACESTATE)
        .is_some_and(|value| value.is_empty())
    {
        headers.remove(&TRACESTATE);
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::telemetry::{Telemetry, TraceConfig, testing};

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&HeaderName, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| ((*name).clone(), value.parse().unwrap()))
            .collect()
    }

    #[test]
    fn extracts_the_callers_trace() {
        let context = extract(&headers(&[(&TRACEPARENT, PARENT)]));
        let span = context.span();
        let parent = span.span_context();
        assert!(parent.is_remote());
        assert_eq!(
            parent.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(parent.span_id().to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn ignores_malformed_trace_context() {
        let context = extract(&headers(&[(&TRACEPARENT, "00-not-a-trace-01")]));
        assert!(!context.span().span_context().is_valid());
    }

    #[test]
    fn injects_a_child_of_the_current_span() {
        let telemetry = Telemetry::new(&TraceConfig::without_export("test")).unwrap();
        let subscriber = tracing_subscriber::registry().with(telemetry.layer());
        let _default = testing::set_default(subscriber);

        let span = tracing::info_span!("request");
        span.set_parent(extract(&headers(&[(&TRACEPARENT, PARENT)])))
            .unwrap();
        let mut outgoing = headers(&[(&TRACESTATE, "stale=1")]);
        span.in_scope(|| inject_current(&mut outgoing));

        let traceparent = outgoing[&TRACEPARENT].to_str().unwrap();
        assert!(
            traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{traceparent}"
        );
        assert!(!traceparent.contains("00f067aa0ba902b7"), "{traceparent}");
        assert!(
            !outgoing.contains_key(&TRACESTATE),
            "stale trace state kept"
        );
    }

    #[test]
    fn leaves_headers_alone_without_a_trace() {
        let mut outgoing = headers(&[(&TRACEPARENT, PARENT)]);
        inject_current(&mut outgoing);
        assert_eq!(outgoing[&TRACEPARENT], PARENT);
    }
}
