//! Upstream resilience: timeouts, retries within a budget, circuit breakers and
//! bulkheads, against fake services on ephemeral ports that count their calls.

mod common;

use common::spawn;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gateway::{Config, ResilienceConfig, Upstreams};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use platform::client::http_client;
use platform::config::HttpUrl;
use platform::health::Readiness;
use tokio::sync::Semaphore;

/// How long a slow fake service takes to answer.
const SLOW: Duration = Duration::from_secs(5);
/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(10);

/// A fake service that answers every request with `answer(n)`, `n` counting its calls
/// from 0, and the counter of its calls.
async fn fake<F, Fut>(answer: F) -> (HttpUrl, Arc<AtomicUsize>)
where
    F: Fn(usize) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let app = Router::new().fallback(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        answer(n)
    });
    (spawn(app).await, calls)
}

/// A gateway in front of the one service `svc` at `url`, with `resilience`.
async fn gateway(url: HttpUrl, resilience: ResilienceConfig) -> HttpUrl {
    let mut upstreams = Upstreams::default();
    upstreams.insert("svc", url);
    let mut config = Config::new(upstreams);
    config.resilience = resilience;
    spawn(gateway::router(config, Readiness::new())).await
}

/// Settings for tests: quick backoff, no retries and a breaker that never opens unless
/// a test says otherwise.
fn settings() -> ResilienceConfig {
    ResilienceConfig {
        max_attempts: 1,
        backoff: Duration::from_millis(1),
        breaker_failures: 1000,
        ..ResilienceConfig::default()
    }
}

/// Sends `method /api/svc/` through the gateway and returns the status, headers and body.
async fn call(
    gateway: &HttpUrl,
    method: Method,
    body: &'static str,
) -> (StatusCode, HeaderMap, String) {
    let request = Request::builder()
        .method(method)
        .uri(gateway.join("/api/svc/").unwrap())
        .body(Body::from(body))
        .unwrap();
    let response = tokio::time::timeout(WAIT, http_client().request(request))
        .await
        .expect("the gateway answers")
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(body.to_vec()).unwrap(),
    )
}

/// The gateway's `/metrics` lines that start with `prefix`.
async fn metrics(gateway: &HttpUrl, prefix: &str) -> Vec<String> {
    let request = Request::get(gateway.join("/metrics").unwrap())
        .body(Body::empty())
        .unwrap();
    let response = http_client().request(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec())
        .unwrap()
        .lines()
        .filter(|line| line.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Whether the gateway's `/metrics` has exactly the sample `sample`.
async fn has_metric(gateway: &HttpUrl, sample: &str) -> bool {
    let lines = metrics(gateway, "gateway_upstream_").await;
    lines.iter().any(|line| line == sample) || {
        eprintln!("{sample} not in {lines:#?}");
        false
    }
}

fn status(status: StatusCode) -> Response {
    status.into_response()
}

fn is_problem(headers: &HeaderMap) -> bool {
    headers[header::CONTENT_TYPE] == "application/problem+json"
}

#[tokio::test]
async fn slow_service_is_a_504_well_before_it_answers() {
    let (url, calls) = fake(|_| async {
        tokio::time::sleep(SLOW).await;
        status(StatusCode::OK)
    })
    .await;
    // The per-service timeout wins over the default one.
    let mut resilience = settings();
    resilience
        .timeouts
        .insert("svc".to_owned(), Duration::from_millis(200));
    let gateway = gateway(url, resilience).await;

    let started = Instant::now();
    let (status, headers, body) = call(&gateway, Method::GET, "").await;

    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(is_problem(&headers));
    assert!(body.contains("did not answer within 200 ms"), "{body}");
    assert!(started.elapsed() < SLOW / 2, "{:?}", started.elapsed());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn slow_grpc_call_is_deadline_exceeded() {
    let (url, calls) = fake(|_| async {
        tokio::time::sleep(SLOW).await;
        status(StatusCode::OK)
    })
    .await;
    let resilience = ResilienceConfig {
        timeout: Duration::from_millis(200),
        ..settings()
    };
    let gateway = gateway(url, resilience).await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Body>();
    let request = Request::post(gateway.join("/api/svc/svc.v1.Svc/Get").unwrap())
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .body(Body::empty())
        .unwrap();

    let started = Instant::now();
    let response = tokio::time::timeout(WAIT, client.request(request))
        .await
        .expect("the gateway answers")
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["grpc-status"], "4");
    assert!(started.elapsed() < SLOW / 2, "{:?}", started.elapsed());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn post_is_never_retried() {
    let (url, calls) = fake(|_| async { status(StatusCode::SERVICE_UNAVAILABLE) }).await;
    let gateway = gateway(
        url,
        ResilienceConfig {
            max_attempts: 3,
            ..settings()
        },
    )
    .await;

    let (status, _, _) = call(&gateway, Method::POST, "{}").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, _) = call(&gateway, Method::POST, "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn request_with_a_body_is_never_retried() {
    let (url, calls) = fake(|_| async { status(StatusCode::SERVICE_UNAVAILABLE) }).await;
    let gateway = gateway(
        url,
        ResilienceConfig {
            max_attempts: 3,
            ..settings()
        },
    )
    .await;

    let (status, _, _) = call(&gateway, Method::PUT, "{\"name\":\"x\"}").await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn grpc_calls_are_never_retried() {
    let (url, calls) = fake(|_| async { status(StatusCode::SERVICE_UNAVAILABLE) }).await;
    let gateway = gateway(
        url,
        ResilienceConfig {
            max_attempts: 3,
            ..settings()
        },
    )
    .await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Body>();
    // Bodiless GET, as a retryable HTTP request would be: only the protocol differs.
    let request = Request::get(gateway.join("/api/svc/svc.v1.Svc/Get").unwrap())
        .header(header::CONTENT_TYPE, "application/grpc")
        .body(Body::empty())
        .unwrap();

    let response = tokio::time::timeout(WAIT, client.request(request))
        .await
        .expect("the gateway answers")
        .unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn server_errors_other_than_502_503_504_are_not_retried() {
    let (url, calls) = fake(|_| async { status(StatusCode::INTERNAL_SERVER_ERROR) }).await;
    let gateway = gateway(
        url,
        ResilienceConfig {
            max_attempts: 3,
            ..settings()
        },
    )
    .await;

    let (status, _, _) = call(&gateway, Method::GET, "").await;

    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn get_is_retried_after_a_503_and_succeeds() {
    let (url, calls) = fake(|n| async move {
        if n == 0 {
            status(StatusCode::SERVICE_UNAVAILABLE)
        } else {
            status(StatusCode::OK)
        }
    })
    .await;
    let gateway = gateway(
        url,
        ResilienceConfig {
            max_attempts: 3,
            ..settings()
        },
    )
    .await;

    let (status, _, _) = call(&gateway, Method::GET, "").await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(
        has_metric(
            &gateway,
            r#"gateway_upstream_retries_total{service="svc"} 1"#
        )
        .await
    );
    assert!(
        has_metric(
            &gateway,
            r#"gateway_upstream_failed_attempts_total{service="svc",reason="server_error"} 1"#
        )
        .await
    );
}

#[tokio::test]
async fn retries_stop_when_the_budget_is_spent() {
    let (url, calls) = fake(|_| async { status(StatusCode::SERVICE_UNAVAILABLE) }).await;
    // One retry per two requests, no floor: of four failing requests, two are retried
    // once (without a budget: all four, eight calls).
    let gateway = gateway(
        url,
        ResilienceConfig {
            max_attempts: 2,
            retry_budget_percent: 50.0,
            retry_budget_min_per_sec: 0,
            ..settings()
        },
    )
    .await;

    for _ in 0..4 {
        let (status, _, _) = call(&gateway, Method::GET, "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }

    assert_eq!(calls.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn open_breaker_fails_fast_without_calling_the_service_then_recovers() {
    let healthy = Arc::new(AtomicBool::new(false));
    let health = Arc::clone(&healthy);
    let (url, calls) = fake(move |_| {
        let healthy = health.load(Ordering::SeqCst);
        async move {
            if healthy {
                status(StatusCode::OK)
            } else {
                status(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    })
    .await;
    let cooldown = Duration::from_secs(2);
    let gateway = gateway(
        url,
        ResilienceConfig {
            breaker_failures: 3,
            breaker_cooldown: cooldown,
            ..settings()
        },
    )
    .await;

    for _ in 0..3 {
        let (status, _, _) = call(&gateway, Method::GET, "").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Open: answered by the gateway, even once the service is back, until the cool-down.
    healthy.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        let (status, headers, body) = call(&gateway, Method::GET, "").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(is_problem(&headers));
        assert!(body.contains("circuit breaker is open"), "{body}");
        let retry_after: u64 = headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&retry_after), "{retry_after}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let open = r#"gateway_upstream_circuit_breaker_state{service="svc"} 2"#;
    assert!(has_metric(&gateway, open).await);
    let rejected = r#"gateway_upstream_rejected_total{service="svc",reason="circuit_open"} 3"#;
    assert!(has_metric(&gateway, rejected).await);

    // Half-open after the cool-down: the probe succeeds and closes the breaker.
    tokio::time::sleep(cooldown + Duration::from_millis(200)).await;
    for _ in 0..2 {
        let (status, _, _) = call(&gateway, Method::GET, "").await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    let closed = r#"gateway_upstream_circuit_breaker_state{service="svc"} 0"#;
    assert!(has_metric(&gateway, closed).await);
}

#[tokio::test]
async fn failed_probe_reopens_the_breaker() {
    let (url, calls) = fake(|_| async { status(StatusCode::BAD_GATEWAY) }).await;
    let cooldown = Duration::from_secs(1);
    let gateway = gateway(
        url,
        ResilienceConfig {
            breaker_failures: 1,
            breaker_cooldown: cooldown,
            ..settings()
        },
    )
    .await;

    let (status, _, _) = call(&gateway, Method::GET, "").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    tokio::time::sleep(cooldown + Duration::from_millis(200)).await;
    let (status, _, _) = call(&gateway, Method::GET, "").await;
    assert_eq!(
        status,
        StatusCode::BAD_GATEWAY,
        "the probe reaches the service"
    );
    let (status, headers, _) = call(&gateway, Method::GET, "").await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn full_bulkhead_sheds_load_at_once() {
    let gate = Arc::new(Semaphore::new(0));
    let held = Arc::clone(&gate);
    let (url, calls) = fake(move |_| {
        let gate = Arc::clone(&held);
        async move {
            let _pass = gate.acquire().await.unwrap();
            status(StatusCode::OK)
        }
    })
    .await;
    let gateway = gateway(
        url,
        ResilienceConfig {
            max_in_flight: 2,
            ..settings()
        },
    )
    .await;

    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let gateway = gateway.clone();
            tokio::spawn(async move { call(&gateway, Method::GET, "").await.0 })
        })
        .collect();
    let deadline = Instant::now() + WAIT;
    while calls.load(Ordering::SeqCst) < 2 {
        assert!(
            Instant::now() < deadline,
            "the service never saw two requests"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let (status, headers, body) = call(&gateway, Method::GET, "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(is_problem(&headers));
    assert_eq!(headers[header::RETRY_AFTER], "1");
    assert!(body.contains("too many requests in flight"), "{body}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let shed = r#"gateway_upstream_rejected_total{service="svc",reason="bulkhead_full"} 1"#;
    assert!(has_metric(&gateway, shed).await);

    gate.add_permits(10);
    for request in waiting {
        assert_eq!(request.await.unwrap(), StatusCode::OK);
    }
    let (status, _, _) = call(&gateway, Method::GET, "").await;
    assert_eq!(status, StatusCode::OK, "permits come back");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn open_streams_do_not_hold_bulkhead_permits() {
    // The service answers its headers at once and then never ends the body.
    let (url, calls) = fake(|_| async {
        let never = futures_util::stream::pending::<Result<Bytes, Infallible>>();
        Response::new(Body::from_stream(never))
    })
    .await;
    let gateway = gateway(
        url,
        ResilienceConfig {
            max_in_flight: 1,
            ..settings()
        },
    )
    .await;
    let request = Request::get(gateway.join("/api/svc/stream").unwrap())
        .body(Body::empty())
        .unwrap();
    let stream = tokio::time::timeout(WAIT, http_client().request(request))
        .await
        .expect("the stream starts")
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);

    let second = Request::get(gateway.join("/api/svc/stream").unwrap())
        .body(Body::empty())
        .unwrap();
    let second = tokio::time::timeout(WAIT, http_client().request(second))
        .await
        .expect("the second stream starts")
        .unwrap();

    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    drop(stream);
}
