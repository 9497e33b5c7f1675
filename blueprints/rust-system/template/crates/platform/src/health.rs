//! Liveness (`/healthz`) and readiness (`/readyz`) probes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

/// Whether the process should receive traffic. It starts ready and turns
/// not ready when shutdown begins, so load balancers stop sending requests.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// A readiness flag that starts ready.
    pub fn new() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Marks the process ready or not ready.
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

/// Routes for `/healthz` and `/readyz`.
pub fn routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(liveness))
        .route("/readyz", get(readiness_probe))
        .with_state(readiness)
}

async fn liveness() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn readiness_probe(State(readiness): State<Readiness>) -> impl IntoResponse {
    if readiness.is_ready() {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting down" })),
        )
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn status(router: Router, path: &str) -> StatusCode {
        let request = Request::get(path).body(Body::empty()).unwrap();
        router.oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn liveness_is_always_ok() {
        let readiness = Readiness::new();
        readiness.set_ready(false);
        assert_eq!(status(routes(readiness), "/healthz").await, StatusCode::OK);
    }

    #[tokio::test]
    async fn readiness_follows_the_flag() {
        let readiness = Readiness::new();
        assert_eq!(
            status(routes(readiness.clone()), "/readyz").await,
            StatusCode::OK
        );
        readiness.set_ready(false);
        assert_eq!(
            status(routes(readiness), "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
