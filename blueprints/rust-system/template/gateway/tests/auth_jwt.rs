//! JWT authentication at the gateway, over real HTTP in front of a fake service that
//! records the requests it receives: every refused request is answered by the gateway
//! alone, with the right status and challenge, and never reaches the service.

mod common;

use common::{Seen, assert_unauthorized, header, send, spawn};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use axum::routing::any;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gateway::auth::Permissions;
use gateway::auth::jwt::{JwtKey, JwtVerifier};
use gateway::{AuthConfig, Config, Upstreams};
use getrandom::SysRng;
use jsonwebtoken::{EncodingKey, Header, get_current_timestamp};
use platform::config::HttpUrl;
use platform::health::Readiness;
use rsa::PrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{Value, json};

/// The scheme of the gateway's challenges.
const CHALLENGE: &str = "Bearer";

const SECRET: &[u8] = b"a-test-secret-that-is-long-enough-for-hs256";
const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "test-api";

/// An RSA public key, for the algorithm confusion test; its private key was thrown
/// away: the test only needs a public key an attacker could know.
const RSA_PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1kcOvGSD9sGEFqFfjVSj
/YHPhAA8SyZLZargyqDWSLeLtPP9vkhhZnfsLKhXWEQpniRCcDhpasUXNBGVty5K
/QOQY2+XbGdfIbB/C4+rrKXaVQHhXBKeFeJJfGsn73ePlIrm3qFm8H/a1fW4gRTa
j2ZdARzRC57gRHaw7JLXoL2j1DtdPtKuC0RMon7qWRz+SaLsn+5OiR32rhvvqty0
V83nYcGW8f0fLN7T3gvTMDEofO5zj8/g9h5XpiNIC2mtxtVQiKeoRRPbrF+W46nY
b6UBt8AnouOgAyFfhNHIDxn7tuFsvV3SkL0R3NIp23WduNQAv6tGPFNrNHoM50Xk
IwIDAQAB
-----END PUBLIC KEY-----
";

/// The gateway verifying tokens with `key` in front of the fake service `fake`, whose
/// writes need `fake:write` and reads `fake:read` (the defaults).
async fn spawn_gateway(key: &JwtKey) -> (HttpUrl, Seen) {
    async fn record(State(seen): State<Seen>, headers: HeaderMap) -> &'static str {
        seen.0.lock().unwrap().push(headers);
        "ok"
    }
    let seen = Seen::default();
    let service = spawn(Router::new().fallback(any(record)).with_state(seen.clone())).await;
    let mut upstreams = Upstreams::default();
    upstreams.insert("fake", service);
    let jwt = JwtVerifier::new(key, ISSUER, AUDIENCE)
        .unwrap()
        .with_leeway(5);
    let mut auth = AuthConfig::new(jwt);
    auth.permissions
        .insert("fake".to_owned(), Permissions::defaults_for("fake"));
    let config = Config {
        auth,
        ..Config::new(upstreams)
    };
    (spawn(gateway::router(config, Readiness::new())).await, seen)
}

async fn spawn_hs256() -> (HttpUrl, Seen) {
    spawn_gateway(&JwtKey::Hs256(SECRET.to_vec())).await
}

/// Valid claims for `sub` with `roles`, to be spoiled by each negative test.
fn claims(roles: &[&str]) -> Value {
    let now = get_current_timestamp();
    json!({
        "sub": "alice",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "roles": roles,
    })
}

fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(SECRET).unwrap(),
    )
    .unwrap()
}

/// A token with an arbitrary header, "signed" with HMAC-SHA256 over `key`: what an
/// attacker can build without the gateway's secret or private key.
fn forge(header: &Value, claims: &Value, key: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(key).unwrap(),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

async fn call(gateway: &HttpUrl, method: Method, token: Option<&str>) -> Response<Bytes> {
    let mut request = Request::builder().method(method).uri("/api/fake/items");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    send(gateway, request).await
}

#[tokio::test]
async fn no_token_is_401_with_a_bare_challenge() {
    let (gateway, seen) = spawn_hs256().await;
    let response = call(&gateway, Method::GET, None).await;
    assert_unauthorized(CHALLENGE, &response, false);
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn malformed_tokens_are_401() {
    let (gateway, seen) = spawn_hs256().await;
    for token in ["not-a-jwt", "a.b.c", ""] {
        assert_unauthorized(
            CHALLENGE,
            &call(&gateway, Method::GET, Some(token)).await,
            true,
        );
    }
    // Another scheme than Bearer.
    let request = Request::get("/api/fake/items").header("authorization", "Basic YTpi");
    assert_unauthorized(CHALLENGE, &send(&gateway, request).await, true);
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn a_wrong_signature_is_401() {
    let (gateway, seen) = spawn_hs256().await;
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let token = forge(
        &header,
        &claims(&["fake:read"]),
        b"another-secret-of-sufficient-length!!",
    );
    assert_unauthorized(
        CHALLENGE,
        &call(&gateway, Method::GET, Some(&token)).await,
        true,
    );
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn alg_none_is_401() {
    let (gateway, seen) = spawn_hs256().await;
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims(&["fake:read"]).to_string())
    );
    assert_unauthorized(
        CHALLENGE,
        &call(&gateway, Method::GET, Some(&unsigned)).await,
        true,
    );
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn an_hs256_token_against_an_rs256_key_is_401() {
    let (gateway, seen) = spawn_gateway(&JwtKey::Rs256(RSA_PUBLIC_KEY.into())).await;
    // The classic confusion: HMAC "signed" with the public key the attacker knows.
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let token = forge(&header, &claims(&["fake:read"]), RSA_PUBLIC_KEY.as_bytes());
    assert_unauthorized(
        CHALLENGE,
        &call(&gateway, Method::GET, Some(&token)).await,
        true,
    );
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_401() {
    let (gateway, seen) = spawn_hs256().await;
    let now = get_current_timestamp();
    let mut expired = claims(&["fake:read"]);
    expired["exp"] = json!(now - 120);
    let mut early = claims(&["fake:read"]);
    early["nbf"] = json!(now + 120);
    for spoiled in [expired, early] {
        let response = call(&gateway, Method::GET, Some(&hs256(&spoiled))).await;
        assert_unauthorized(CHALLENGE, &response, true);
    }
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn a_wrong_issuer_or_audience_is_401() {
    let (gateway, seen) = spawn_hs256().await;
    let mut issuer = claims(&["fake:read"]);
    issuer["iss"] = json!("https://evil.test");
    let mut audience = claims(&["fake:read"]);
    audience["aud"] = json!("another-api");
    let mut no_audience = claims(&["fake:read"]);
    no_audience.as_object_mut().unwrap().remove("aud");
    for spoiled in [issuer, audience, no_audience] {
        let response = call(&gateway, Method::GET, Some(&hs256(&spoiled))).await;
        assert_unauthorized(CHALLENGE, &response, true);
    }
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn a_missing_role_is_403() {
    let (gateway, seen) = spawn_hs256().await;
    // A reader may not write, and another service's writer may not read.
    let reader = hs256(&claims(&["fake:read"]));
    let response = call(&gateway, Method::POST, Some(&reader)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        header(&response, "content-type"),
        "application/problem+json"
    );
    assert!(header(&response, "www-authenticate").contains("error=\"insufficient_scope\""));
    assert!(header(&response, "www-authenticate").contains("scope=\"fake:write\""));
    let stranger = hs256(&claims(&["other:write"]));
    let response = call(&gateway, Method::GET, Some(&stranger)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn grpc_calls_without_a_token_are_unauthenticated() {
    let (gateway, seen) = spawn_hs256().await;
    let request = Request::post("/fake.v1.Items/List").header("content-type", "application/grpc");
    let response = send(&gateway, request).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(&response, "grpc-status"), "16");
    assert!(header(&response, "www-authenticate").starts_with("Bearer"));
    // With a reader's token, a gRPC call (a write) is PERMISSION_DENIED.
    let reader = hs256(&claims(&["fake:read"]));
    let request = Request::post("/fake.v1.Items/List")
        .header("content-type", "application/grpc")
        .header("authorization", format!("Bearer {reader}"));
    assert_eq!(header(&send(&gateway, request).await, "grpc-status"), "7");
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn a_websocket_upgrade_without_a_token_is_401() {
    let (gateway, seen) = spawn_hs256().await;
    let request = Request::get("/api/fake/ws")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    assert_unauthorized(CHALLENGE, &send(&gateway, request).await, false);
    assert_eq!(seen.count(), 0);
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_service() {
    let (gateway, seen) = spawn_hs256().await;
    // Without a token, forged headers do not help.
    let forged = Request::get("/api/fake/items")
        .header("x-auth-subject", "admin")
        .header("x-auth-roles", "fake:read");
    assert_unauthorized(CHALLENGE, &send(&gateway, forged).await, false);
    assert_eq!(seen.count(), 0);
    // With a token, they are replaced by the verified identity.
    let token = hs256(&claims(&["fake:read"]));
    let forged = Request::get("/api/fake/items")
        .header("authorization", format!("Bearer {token}"))
        .header("x-auth-subject", "admin")
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
async fn a_valid_token_reaches_the_service_with_its_identity() {
    let (gateway, seen) = spawn_hs256().await;
    // Roles come from `roles` and `scope` together.
    let mut both = claims(&["fake:read"]);
    both["scope"] = json!("fake:write profile");
    let token = hs256(&both);
    for method in [Method::GET, Method::POST] {
        let response = call(&gateway, method, Some(&token)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body().as_ref(), b"ok");
    }
    assert_eq!(seen.count(), 2);
    let headers = seen.last();
    assert_eq!(headers["x-auth-subject"], "alice");
    assert_eq!(headers["x-auth-roles"], "fake:read,fake:write,profile");
}

#[tokio::test]
async fn an_es256_token_is_accepted_with_its_public_key() {
    // A P-256 key pair generated here: no private key is committed.
    let pair = rcgen::KeyPair::generate().unwrap();
    let public_key = JwtKey::Es256(pair.public_key_pem().into_bytes());
    let (gateway, seen) = spawn_gateway(&public_key).await;
    let es256 = |pair: &rcgen::KeyPair| {
        let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        let header = Header::new(jsonwebtoken::Algorithm::ES256);
        jsonwebtoken::encode(&header, &claims(&["fake:read"]), &key).unwrap()
    };
    let response = call(&gateway, Method::GET, Some(&es256(&pair))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.last()["x-auth-subject"], "alice");
    // Another key pair's token is refused.
    let other = rcgen::KeyPair::generate().unwrap();
    assert_unauthorized(
        CHALLENGE,
        &call(&gateway, Method::GET, Some(&es256(&other))).await,
        true,
    );
    assert_eq!(seen.count(), 1);
}

#[tokio::test]
async fn an_rs256_token_is_accepted_with_its_public_key() {
    // A 2048-bit RSA key pair generated here: no private key is committed.
    let rs256_key = || PrivateKey::new(&mut SysRng, 2048).unwrap();
    let private_key = rs256_key();
    let public_key = private_key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .unwrap();
    let (gateway, seen) = spawn_gateway(&JwtKey::Rs256(public_key.into_bytes())).await;
    let rs256 = |private_key: &PrivateKey| {
        let pem = private_key.to_pkcs8_pem(LineEnding::LF).unwrap();
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
        let header = Header::new(jsonwebtoken::Algorithm::RS256);
        jsonwebtoken::encode(&header, &claims(&["fake:read"]), &key).unwrap()
    };
    let response = call(&gateway, Method::GET, Some(&rs256(&private_key))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(seen.last()["x-auth-subject"], "alice");
    // Another key pair's token is refused.
    assert_unauthorized(
        CHALLENGE,
        &call(&gateway, Method::GET, Some(&rs256(&rs256_key()))).await,
        true,
    );
    assert_eq!(seen.count(), 1);
}

#[tokio::test]
async fn health_and_metrics_stay_open() {
    let (gateway, _) = spawn_hs256().await;
    for path in ["/healthz", "/readyz", "/metrics", "/"] {
        let response = send(&gateway, Request::get(path)).await;
        assert_ne!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(
            !response.headers().contains_key("www-authenticate"),
            "{path}"
        );
    }
}
