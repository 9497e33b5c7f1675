//! The HTTP stack shared by every binary: info and health routes, problem-details
//! fallbacks, request ids and request tracing.

use axum::body::Body;
use axum::http::{HeaderName, Request};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::{Level, Span};

use crate::health::{self, Readiness};
use crate::problem;

/// Header carrying the id that correlates a request across services and logs.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Wraps the routes of the binary `name` with the shared stack:
///
/// - `GET /` describes the binary, `/healthz` and `/readyz` probe it;
/// - unknown routes and methods get problem details;
/// - each request gets an `x-request-id` (kept when the caller sent one), which is
///   echoed on the response and recorded on the request's log span.
pub fn app(name: &'static str, routes: Router, readiness: Readiness) -> Router {
    routes
        .route("/", get(move || info(name)))
        .merge(health::routes(readiness))
        .fallback(problem::route_not_found)
        .method_not_allowed_fallback(problem::method_not_allowed)
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

async fn info(name: &'static str) -> Json<Value> {
    Json(json!({
        "name": name,
        "system": crate::SYSTEM.name,
        "description": crate::SYSTEM.description,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

fn request_span(request: &Request<Body>) -> Span {
    let request_id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id,
    )
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    fn test_app() -> Router {
        app("test", Router::new(), Readiness::new())
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
}
