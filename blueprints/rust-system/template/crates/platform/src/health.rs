//! Liveness (`/healthz`) and readiness (`/readyz`) probes, and the client side of
//! liveness for container health checks ([`check`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

/// Whether the process should receive traffic. It starts ready, turns not ready
/// when shutdown begins, so load balancers stop sending requests, and is not ready
/// while one of its [`Dependency`]s (a message broker, say) is down.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<ReadinessState>);

#[derive(Debug)]
struct ReadinessState {
    ready: AtomicBool,
    dependencies: Mutex<Vec<Dependency>>,
}

impl Readiness {
    /// A readiness flag that starts ready.
    pub fn new() -> Self {
        Self(Arc::new(ReadinessState {
            ready: AtomicBool::new(true),
            dependencies: Mutex::new(Vec::new()),
        }))
    }

    /// Whether the process is ready: not shutting down, and every dependency up.
    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::Acquire) && self.down().is_empty()
    }

    /// Marks the process ready or not ready.
    pub fn set_ready(&self, ready: bool) {
        self.0.ready.store(ready, Ordering::Release);
    }

    /// A dependency named `name` that readiness waits for: down until
    /// [`Dependency::set_up`] says otherwise.
    pub fn dependency(&self, name: &'static str) -> Dependency {
        let dependency = Dependency {
            name,
            up: Arc::new(AtomicBool::new(false)),
        };
        self.0
            .dependencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(dependency.clone());
        dependency
    }

    /// The names of the dependencies that are down.
    fn down(&self) -> Vec<&'static str> {
        self.0
            .dependencies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|dependency| !dependency.is_up())
            .map(|dependency| dependency.name)
            .collect()
    }
}

impl Default for Readiness {
    fn default() -> Self {
        Self::new()
    }
}

/// Something the process needs to serve, whose state its owner keeps up to date.
#[derive(Debug, Clone)]
pub struct Dependency {
    name: &'static str,
    up: Arc<AtomicBool>,
}

impl Dependency {
    /// Records whether the dependency is reachable.
    pub fn set_up(&self, up: bool) {
        let was_up = self.up.swap(up, Ordering::AcqRel);
        if was_up && !up {
            tracing::warn!(dependency = self.name, "dependency down: not ready");
        } else if !was_up && up {
            tracing::info!(dependency = self.name, "dependency up");
        }
    }

    /// Whether the dependency was reachable when last checked.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
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
    let down = readiness.down();
    if !readiness.0.ready.load(Ordering::Acquire) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "shutting down" })),
        )
    } else if !down.is_empty() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "waiting for dependencies", "down": down })),
        )
    } else {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    }
}

/// How long [`check`] waits for the answer of `/healthz`.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Why [`check`] found the server not live.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Nothing answered: the server is not running or not listening there.
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        /// The probed URL.
        url: Uri,
        /// Why the request failed.
        source: hyper_util::client::legacy::Error,
    },
    /// The server did not answer in time.
    #[error("no answer from {url} within {CHECK_TIMEOUT:?}")]
    Timeout {
        /// The probed URL.
        url: Uri,
    },
    /// The server answered, but not `200 OK`.
    #[error("{url} answered {status}")]
    Unhealthy {
        /// The probed URL.
        url: Uri,
        /// The status it answered.
        status: StatusCode,
    },
}

/// Asks the server listening on `listen` (its `HOST` and `PORT`; a wildcard host is
/// reached on loopback) whether it is live: `GET /healthz` answered `200 OK` within
/// [`CHECK_TIMEOUT`].
pub async fn check(listen: SocketAddr) -> Result<(), CheckError> {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let url: Uri = format!("http://{}/healthz", SocketAddr::new(ip, listen.port()))
        .parse()
        .expect("an address and a path make a valid URI");
    let request = Request::get(url.clone())
        .body(Body::empty())
        .expect("a GET without headers is a valid request");
    let client = crate::client::http_client();
    match tokio::time::timeout(CHECK_TIMEOUT, client.request(request)).await {
        Err(_) => Err(CheckError::Timeout { url }),
        Ok(Err(source)) => Err(CheckError::Unreachable { url, source }),
        Ok(Ok(response)) if response.status() == StatusCode::OK => Ok(()),
        Ok(Ok(response)) => Err(CheckError::Unhealthy {
            url,
            status: response.status(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;
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

    #[tokio::test]
    async fn readiness_waits_for_every_dependency() {
        let readiness = Readiness::new();
        let broker = readiness.dependency("broker");
        let request = Request::get("/readyz").body(Body::empty()).unwrap();
        let response = routes(readiness.clone()).oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(
            &body[..],
            br#"{"down":["broker"],"status":"waiting for dependencies"}"#
        );

        broker.set_up(true);
        assert_eq!(
            status(routes(readiness.clone()), "/readyz").await,
            StatusCode::OK
        );
        broker.set_up(false);
        assert!(!readiness.is_ready());
    }

    async fn serving(router: Router) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        addr
    }

    #[tokio::test]
    async fn check_passes_when_the_server_is_live() {
        let addr = serving(routes(Readiness::new())).await;
        check(addr).await.unwrap();
        // A server on every interface is checked on loopback.
        let wildcard = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port());
        check(wildcard).await.unwrap();
    }

    #[tokio::test]
    async fn check_fails_on_an_unhealthy_answer_or_no_server() {
        let sick = Router::new().route(
            "/healthz",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        );
        let addr = serving(sick).await;
        let error = check(addr).await.unwrap_err();
        assert!(
            matches!(error, CheckError::Unhealthy { status, .. } if status == StatusCode::INTERNAL_SERVER_ERROR),
            "{error}"
        );

        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let error = check(closed).await.unwrap_err();
        assert!(matches!(error, CheckError::Unreachable { .. }), "{error}");
    }
}
