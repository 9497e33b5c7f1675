//! API key authentication at the gateway, over real HTTP in front of a fake service that
//! records the requests it receives: every refused request is answered by the gateway
//! alone, with the right status and challenge, and never reaches the service.

mod common;

use common::{Seen, assert_unauthorized, header, send, spawn};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use axum::routing::any;
use gateway::auth::Permissions;
use gateway::auth::api_key::{ApiKeyVerifier, NewKey, create_key};
use gateway::{AuthConfig, Config, Upstreams};
use platform::config::HttpUrl;
use platform::health::Readiness;

/// The scheme of the gateway's challenges.
const CHALLENGE: &str = "ApiKey";

/// The keys of the tests: `alice` reads, `writer` reads and writes, `bob` is revoked.
struct Keys {
    alice: NewKey,
    writer: NewKey,
    bob: NewKey,
}

fn roles(roles: &[&str]) -> Vec<String> {
    roles.iter().map(|role| (*role).to_owned()).collect()
}

/// The gateway accepting `alice` and `writer` (`bob` is revoked) in front of the fake
/// service `fake`, whose writes need `fake:write` and reads `fake:read` (the defaults).
async fn spawn_gateway() -> (HttpUrl, Seen, Keys) {
    async fn record(State(seen): State<Seen>, headers: HeaderMap) -> &'static str {
        seen.0.lock().unwrap().push(headers);
        "ok"
    }
    let keys = Keys {
        alice: create_key("alice", &roles(&["fake:read"])).unwrap(),
        writer: create_key("writer", &roles(&["fake:read", "fake:write"])).unwrap(),
        bob: create_key("bob", &roles(&["fake:read", "fake:write"])).unwrap(),
    };
    let seen = Seen::default();
    let service = spawn(Router::new().fallback(any(record)).with_state(seen.clone())).await;
    let mut upstreams = Upstreams::default();
    upstreams.insert("fake", service);
    // Commas and newlines both separate entries.
    let entries = format!(
        "{},\n{}\n{}",
        keys.alice.entry, keys.writer.entry, keys.bob.entry
    );
    let verifier = ApiKeyVerifier::new(&entries, &["bob"]).unwrap();
    let mut auth = AuthConfig::new(verifier);
    auth.permissions
        .insert("fake".to_owned(), Permissions::defaults_for("fake"));
    let config = Config {
        auth,
        ..Config::new(upstreams)
    };
    (
        spawn(gateway::router(config, Readiness::new())).await,
        seen,
        keys,
    )
}

async fn call(gateway: &HttpUrl, method: Method, key: Option<&str>) -> Response<Bytes> {
    let mut request = Request::builder().method(method).uri("/api/fake/items");
    if let Some(key) = key {
        request = request.header("authorization", format!("ApiKey {key}"));
    }
    send(gateway, request).await
}

#[tokio::test]
async fn no_key_is_401_with_a_bare_challenge() {
    let (gateway, seen, _) = spawn_gateway().await;
    let response = call(&gateway, Method::GET, None).await;
    assert_unauthorized(CHALLENGE, &response, false);
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn malformed_keys_are_401() {
    let (gateway, seen, _) = spawn_gateway().await;
    for key in [
        "",
        "not-a-key",
        "ak_alice",
        "ak_alice_",
        "ak__secret",
        "xx_alice_secret",
    ] {
        assert_unauthorized(
            CHALLENGE,
            &call(&gateway, Method::GET, Some(key)).await,
            true,
        );
    }
    // Another scheme than ApiKey.
    let request = Request::get("/api/fake/items").header("authorization", "Bearer a.b.c");
    assert_unauthorized(CHALLENGE, &send(&gateway, request).await, true);
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn a_wrong_key_is_401() {
    let (gateway, seen, keys) = spawn_gateway().await;
    // A known id with another secret, an unknown id, and a key of another gateway.
    let kept = keys.alice.key.len() - 8;
    let wrong_secret = format!("{}AAAAAAAA", &keys.alice.key[..kept]);
    let other = create_key("alice", &roles(&["fake:read"])).unwrap();
    let unknown = keys.alice.key.replacen("alice", "carol", 1);
    for key in [&wrong_secret, &other.key, &unknown] {
        let response = call(&gateway, Method::GET, Some(key)).await;
        assert_unauthorized(CHALLENGE, &response, true);
        let body = String::from_utf8_lossy(response.body());
        assert!(!body.contains(key.as_str()), "the key is echoed: {body}");
    }
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn a_revoked_key_is_401() {
    let (gateway, seen, keys) = spawn_gateway().await;
    let response = call(&gateway, Method::GET, Some(&keys.bob.key)).await;
    assert_unauthorized(CHALLENGE, &response, true);
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn disagreeing_or_repeated_key_headers_are_401() {
    let (gateway, seen, keys) = spawn_gateway().await;
    let both = Request::get("/api/fake/items")
        .header("authorization", format!("ApiKey {}", keys.alice.key))
        .header("x-api-key", &keys.writer.key);
    assert_unauthorized(CHALLENGE, &send(&gateway, both).await, true);
    let twice = Request::get("/api/fake/items")
        .header("x-api-key", &keys.alice.key)
        .header("x-api-key", &keys.writer.key);
    assert_unauthorized(CHALLENGE, &send(&gateway, twice).await, true);
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn a_missing_role_is_403() {
    let (gateway, seen, keys) = spawn_gateway().await;
    let response = call(&gateway, Method::POST, Some(&keys.alice.key)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        header(&response, "content-type"),
        "application/problem+json"
    );
    let challenge = header(&response, "www-authenticate");
    assert!(challenge.starts_with("ApiKey realm="), "{challenge}");
    assert!(challenge.contains("error=\"insufficient_scope\""));
    assert!(challenge.contains("scope=\"fake:write\""));
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn grpc_calls_without_a_key_are_unauthenticated() {
    let (gateway, seen, keys) = spawn_gateway().await;
    let request = Request::post("/fake.v1.Items/List").header("content-type", "application/grpc");
    let response = send(&gateway, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "grpc-status"), "16");
    assert!(header(&response, "www-authenticate").starts_with("ApiKey"));
    // With a reader's key, a gRPC call (a write) is PERMISSION_DENIED.
    let request = Request::post("/fake.v1.Items/List")
        .header("content-type", "application/grpc")
        .header("x-api-key", &keys.alice.key);
    assert_eq!(header(&send(&gateway, request).await, "grpc-status"), "7");
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn a_websocket_upgrade_without_a_key_is_401() {
    let (gateway, seen, _) = spawn_gateway().await;
    // A key in the query string is not a key: it would end up in access logs.
    let request = Request::get("/api/fake/ws?api_key=ak_alice_secret")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    assert_unauthorized(CHALLENGE, &send(&gateway, request).await, false);
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_service() {
    let (gateway, seen, keys) = spawn_gateway().await;
    // Without a key, forged headers do not help.
    let forged = Request::get("/api/fake/items")
        .header("x-auth-subject", "writer")
        .header("x-auth-roles", "fake:read");
    assert_unauthorized(CHALLENGE, &send(&gateway, forged).await, false);
    assert_eq!(seen.count(), 0);
    // With a key, they are replaced by the verified identity.
    let forged = Request::get("/api/fake/items")
        .header("x-api-key", &keys.alice.key)
        .header("x-auth-subject", "writer")
        .header("x-auth-roles", "fake:write")
        .header("x-auth-tenant", "everyone");
    let response = send(&gateway, forged).await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = seen.last();
    assert_eq!(seen["x-auth-subject"], "alice");
    assert_eq!(seen["x-auth-roles"], "fake:read");
    assert!(!seen.contains_key("x-auth-tenant"));
}

#[tokio::test]
async fn valid_keys_reach_the_service_with_their_identity() {
    let (gateway, seen, keys) = spawn_gateway().await;
    for method in [Method::GET, Method::POST] {
        let response = call(&gateway, method, Some(&keys.writer.key)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body().as_ref(), b"ok");
    }
    assert_eq!(seen.count(), 2);
    let headers = seen.last();
    assert_eq!(headers["x-auth-subject"], "writer");
    assert_eq!(headers["x-auth-roles"], "fake:read,fake:write");
    // Several keys are active at once (rotation), in either header, or in both when they
    // agree.
    let request = Request::get("/api/fake/items")
        .header("authorization", format!("apikey {}", keys.alice.key))
        .header("x-api-key", &keys.alice.key);
    assert_eq!(send(&gateway, request).await.status(), StatusCode::OK);
    let headers = seen.last();
    assert_eq!(headers["x-auth-subject"], "alice");
    // The key itself stays at the gateway.
    assert!(!headers.contains_key("authorization"));
    assert!(!headers.contains_key("x-api-key"));
}

#[tokio::test]
async fn health_and_metrics_stay_open() {
    let (gateway, _, _) = spawn_gateway().await;
    for path in ["/healthz", "/readyz", "/metrics", "/"] {
        let response = send(&gateway, Request::get(path)).await;
        assert_ne!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            !response.headers().contains_key("www-authenticate"),
            "{path}"
        );
    }
}
