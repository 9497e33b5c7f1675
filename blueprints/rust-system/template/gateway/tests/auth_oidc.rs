//! OpenID Connect authentication at the gateway, over real HTTP: a fake issuer serves
//! its discovery document and JWKS (and counts the JWKS fetches), a fake service
//! records the requests it receives. Every refused request is answered by the gateway
//! alone, with the right status and challenge, and never reaches the service.
//!
//! The tests sign ES256 tokens with P-256 key pairs generated at run time (no private
//! key is committed); RS256, the default, goes through the same code.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Seen, assert_unauthorized, header, send, spawn};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use axum::routing::{any, get};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gateway::auth::Permissions;
use gateway::auth::oidc::{OidcSettings, OidcVerifier};
use gateway::{AuthConfig, Config, Upstreams};
use jsonwebtoken::{Algorithm, EncodingKey, Header, get_current_timestamp};
use platform::config::HttpUrl;
use platform::health::Readiness;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The scheme of the gateway's challenges.
const CHALLENGE: &str = "Bearer";

const AUDIENCE: &str = "test-api";

/// A P-256 key pair of the issuer: its private half signs, its JWK is published.
struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Value,
}

impl SigningKey {
    fn generate(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate().unwrap();
        let encoding = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
        // The uncompressed point: 0x04, then x and y.
        let point = pair.public_key_raw();
        let jwk = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            "kid": kid,
            "alg": "ES256",
            "use": "sig",
        });
        Self {
            kid: kid.to_owned(),
            encoding,
            jwk,
        }
    }

    /// `claims` signed with this key, naming `kid` in the header.
    fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }
}

/// The fake issuer: its published keys and how often its JWKS was fetched.
#[derive(Clone, Default)]
struct Issuer {
    jwks: Arc<std::sync::Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl Issuer {
    fn publish(&self, keys: &[&SigningKey]) {
        *self.jwks.lock().unwrap() = keys.iter().map(|key| key.jwk.clone()).collect();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// Serves `issuer`, whose discovery document names it `http://<host>`, and returns its
/// URL.
async fn spawn_issuer(issuer: &Issuer) -> String {
    async fn discovery(headers: HeaderMap) -> Json<Value> {
        let host = headers["host"].to_str().unwrap();
        Json(json!({
            "issuer": format!("http://{host}"),
            "jwks_uri": format!("http://{host}/jwks"),
            "id_token_signing_alg_values_supported": ["ES256"],
        }))
    }
    async fn jwks(State(issuer): State<Issuer>) -> Json<Value> {
        issuer.fetches.fetch_add(1, Ordering::SeqCst);
        let keys = issuer.jwks.lock().unwrap().clone();
        Json(json!({ "keys": keys }))
    }
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .with_state(issuer.clone());
    spawn(app)
        .await
        .to_string()
        .trim_end_matches('/')
        .to_owned()
}

/// ES256 settings for `issuer`, with 5 s of leeway.
fn settings(issuer: &str) -> OidcSettings {
    OidcSettings {
        algorithms: vec![Algorithm::ES256],
        leeway_seconds: 5,
        ..OidcSettings::new(issuer, AUDIENCE)
    }
}

/// The gateway verifying with `settings` in front of the fake service `fake`, whose
/// writes need `fake:write` and reads `fake:read` (the defaults).
async fn spawn_gateway(settings: OidcSettings) -> (HttpUrl, Seen) {
    async fn record(State(seen): State<Seen>, headers: HeaderMap) -> &'static str {
        seen.0.lock().unwrap().push(headers);
        "ok"
    }
    let seen = Seen::default();
    let service = spawn(Router::new().fallback(any(record)).with_state(seen.clone())).await;
    let mut upstreams = Upstreams::default();
    upstreams.insert("fake", service);
    let mut auth = AuthConfig::new(OidcVerifier::new(settings).unwrap());
    auth.permissions
        .insert("fake".to_owned(), Permissions::defaults_for("fake"));
    let config = Config {
        auth,
        ..Config::new(upstreams)
    };
    (spawn(gateway::router(config, Readiness::new())).await, seen)
}

/// A fake issuer publishing one key, and the gateway trusting it.
struct Setup {
    gateway: HttpUrl,
    seen: Seen,
    issuer: Issuer,
    issuer_url: String,
    key: SigningKey,
}

async fn setup() -> Setup {
    setup_with(|settings| settings).await
}

async fn setup_with(tune: impl FnOnce(OidcSettings) -> OidcSettings) -> Setup {
    let issuer = Issuer::default();
    let key = SigningKey::generate("key-1");
    issuer.publish(&[&key]);
    let issuer_url = spawn_issuer(&issuer).await;
    let (gateway, seen) = spawn_gateway(tune(settings(&issuer_url))).await;
    Setup {
        gateway,
        seen,
        issuer,
        issuer_url,
        key,
    }
}

impl Setup {
    /// Valid claims with `roles`, to be spoiled by each negative test.
    fn claims(&self, roles: &[&str]) -> Value {
        let now = get_current_timestamp();
        json!({
            "sub": "alice",
            "iss": self.issuer_url,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "roles": roles,
        })
    }

    fn token(&self, roles: &[&str]) -> String {
        self.key.sign(&self.claims(roles))
    }
}

async fn call(gateway: &HttpUrl, method: Method, token: Option<&str>) -> Response<Bytes> {
    let mut request = Request::builder().method(method).uri("/api/fake/items");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    send(gateway, request).await
}

/// A token with an arbitrary header and an HMAC-SHA256 "signature" over `key`: what an
/// attacker can build without the issuer's private key.
fn forge(header: &Value, claims: &Value, key: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(key).unwrap(),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{message}.{signature}")
}

#[tokio::test]
async fn no_token_is_401_with_a_bare_challenge() {
    let setup = setup().await;
    let response = call(&setup.gateway, Method::GET, None).await;
    assert_unauthorized(CHALLENGE, &response, false);
    assert_eq!(setup.seen.count(), 0);
}

#[tokio::test]
async fn malformed_tokens_are_401() {
    let setup = setup().await;
    for token in ["not-a-jwt", "a.b.c", ""] {
        assert_unauthorized(
            CHALLENGE,
            &call(&setup.gateway, Method::GET, Some(token)).await,
            true,
        );
    }
    let request = Request::get("/api/fake/items").header("authorization", "Basic YTpi");
    assert_unauthorized(CHALLENGE, &send(&setup.gateway, request).await, true);
    assert_eq!(setup.seen.count(), 0);
}

#[tokio::test]
async fn a_wrong_signature_is_401() {
    let setup = setup().await;
    // Signed by another key, but naming the issuer's.
    let impostor = SigningKey::generate("impostor");
    let token = impostor.sign_as(&setup.key.kid, &setup.claims(&["fake:read"]));
    assert_unauthorized(
        CHALLENGE,
        &call(&setup.gateway, Method::GET, Some(&token)).await,
        true,
    );
    assert_eq!(setup.seen.count(), 0);
}

#[tokio::test]
async fn alg_none_is_401() {
    let setup = setup().await;
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": "key-1"}).to_string()),
        URL_SAFE_NO_PAD.encode(setup.claims(&["fake:read"]).to_string())
    );
    let response = call(&setup.gateway, Method::GET, Some(&unsigned)).await;
    assert_unauthorized(CHALLENGE, &response, true);
    assert_eq!(setup.seen.count(), 0);
}

#[tokio::test]
async fn an_algorithm_not_configured_is_401() {
    let setup = setup().await;
    let claims = setup.claims(&["fake:read"]);
    // HS256 "signed" with the published public key, the classic confusion.
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": "key-1"});
    let confused = forge(&header, &claims, setup.key.jwk.to_string().as_bytes());
    // RS256, the default, is not configured here.
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "key-1"});
    let rs256 = forge(&header, &claims, b"whatever");
    for token in [confused, rs256] {
        assert_unauthorized(
            CHALLENGE,
            &call(&setup.gateway, Method::GET, Some(&token)).await,
            true,
        );
    }
    assert_eq!(setup.seen.count(), 0);
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_401() {
    let setup = setup().await;
    let now = get_current_timestamp();
    let mut expired = setup.claims(&["fake:read"]);
    expired["exp"] = json!(now - 120);
    let mut early = setup.claims(&["fake:read"]);
    early["nbf"] = json!(now + 120);
    for spoiled in [expired, early] {
        let response = call(&setup.gateway, Method::GET, Some(&setup.key.sign(&spoiled))).await;
        assert_unauthorized(CHALLENGE, &response, true);
    }
    assert_eq!(setup.seen.count(), 0);
}

#[tokio::test]
async fn a_wrong_issuer_or_audience_is_401() {
    let setup = setup().await;
    let mut issuer = setup.claims(&["fake:read"]);
    issuer["iss"] = json!("https://evil.test");
    let mut audience = setup.claims(&["fake:read"]);
    audience["aud"] = json!("another-api");
    let mut no_audience = setup.claims(&["fake:read"]);
    no_audience.as_object_mut().unwrap().remove("aud");
    for spoiled in [issuer, audience, no_audience] {
        let response = call(&setup.gateway, Method::GET, Some(&setup.key.sign(&spoiled))).await;
        assert_unauthorized(CHALLENGE, &response, true);
    }
    assert_eq!(setup.seen.count(), 0);
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_service() {
    let setup = setup().await;
    let forged = Request::get("/api/fake/items")
        .header("x-auth-subject", "admin")
        .header("x-auth-roles", "fake:read");
    assert_unauthorized(CHALLENGE, &send(&setup.gateway, forged).await, false);
    assert_eq!(setup.seen.count(), 0);
    let forged = Request::get("/api/fake/items")
        .header(
            "authorization",
            format!("Bearer {}", setup.token(&["fake:read"])),
        )
        .header("x-auth-subject", "admin")
        .header("x-auth-roles", "fake:write")
        .header("x-auth-tenant", "everyone");
    let response = send(&setup.gateway, forged).await;
    assert_eq!(response.status(), StatusCode::OK);
    let seen = setup.seen.last();
    assert_eq!(seen["x-auth-subject"], "alice");
    assert_eq!(seen["x-auth-roles"], "fake:read");
    assert!(!seen.contains_key("x-auth-tenant"));
}

#[tokio::test]
async fn a_missing_role_is_403() {
    let setup = setup().await;
    let reader = setup.token(&["fake:read"]);
    let response = call(&setup.gateway, Method::POST, Some(&reader)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(header(&response, "www-authenticate").contains("error=\"insufficient_scope\""));
    assert!(header(&response, "www-authenticate").contains("scope=\"fake:write\""));
    let stranger = setup.token(&["other:write"]);
    let response = call(&setup.gateway, Method::GET, Some(&stranger)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(setup.seen.count(), 0);
}

#[tokio::test]
async fn a_valid_token_reaches_the_service_with_its_identity() {
    let setup = setup().await;
    let mut both = setup.claims(&["fake:read"]);
    both["scope"] = json!("fake:write profile");
    let token = setup.key.sign(&both);
    for method in [Method::GET, Method::POST] {
        let response = call(&setup.gateway, method, Some(&token)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body().as_ref(), b"ok");
    }
    assert_eq!(setup.seen.count(), 2);
    let headers = setup.seen.last();
    assert_eq!(headers["x-auth-subject"], "alice");
    assert_eq!(headers["x-auth-roles"], "fake:read,fake:write,profile");
    // The keys were fetched once, on the first request, then cached.
    assert_eq!(setup.issuer.fetches(), 1);
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_keys_so_rotation_works() {
    let setup = setup_with(|settings| OidcSettings {
        min_refresh_interval: Duration::ZERO,
        ..settings
    })
    .await;
    let response = call(
        &setup.gateway,
        Method::GET,
        Some(&setup.token(&["fake:read"])),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(setup.issuer.fetches(), 1);
    // The issuer rotates to a new key: its first token triggers one refresh.
    let rotated = SigningKey::generate("key-2");
    setup.issuer.publish(&[&rotated]);
    let token = rotated.sign(&setup.claims(&["fake:read"]));
    for _ in 0..3 {
        let response = call(&setup.gateway, Method::GET, Some(&token)).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(setup.issuer.fetches(), 2);
    assert_eq!(setup.seen.count(), 4);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_is_bounded_by_the_refresh_interval() {
    let setup = setup().await;
    let claims = setup.claims(&["fake:read"]);
    let tokens: Vec<String> = (0..20)
        .map(|i| setup.key.sign_as(&format!("unknown-{i}"), &claims))
        .collect();
    let responses = futures_util::future::join_all(
        tokens
            .iter()
            .map(|token| call(&setup.gateway, Method::GET, Some(token.as_str()))),
    )
    .await;
    for response in &responses {
        assert_unauthorized(CHALLENGE, response, true);
    }
    // One fetch (the first), however many unknown key ids; the known key still works.
    assert_eq!(setup.issuer.fetches(), 1);
    let response = call(
        &setup.gateway,
        Method::GET,
        Some(&setup.token(&["fake:read"])),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(setup.issuer.fetches(), 1);
    assert_eq!(setup.seen.count(), 1);
}

/// A 503 problem without a challenge: the token may be fine, the keys are missing.
fn assert_unavailable(response: &Response<Bytes>) {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(response, "content-type"), "application/problem+json");
    assert!(!response.headers().contains_key("www-authenticate"));
}

#[tokio::test]
async fn an_unreachable_or_silent_issuer_is_503_without_hanging() {
    // Nothing listens on a closed port; a silent issuer accepts and never answers.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    for issuer in [closed_url, silent_url] {
        let key = SigningKey::generate("key-1");
        let (gateway, seen) = spawn_gateway(OidcSettings {
            timeout: Duration::from_secs(1),
            ..settings(&issuer)
        })
        .await;
        let now = get_current_timestamp();
        let token = key.sign(&json!({
            "sub": "alice", "iss": issuer, "aud": AUDIENCE, "exp": now + 600,
            "roles": ["fake:read"],
        }));
        let started = Instant::now();
        assert_unavailable(&call(&gateway, Method::GET, Some(&token)).await);
        // Within the refresh interval, the next request does not wait again.
        assert_unavailable(&call(&gateway, Method::GET, Some(&token)).await);
        assert!(started.elapsed() < Duration::from_secs(5), "{issuer}");
        assert_eq!(seen.count(), 0);
    }
}

#[tokio::test]
async fn a_discovery_document_of_another_issuer_is_refused() {
    let issuer = Issuer::default();
    let key = SigningKey::generate("key-1");
    issuer.publish(&[&key]);
    // The configured issuer differs from the document's by a trailing slash.
    let configured = format!("{}/", spawn_issuer(&issuer).await);
    let (gateway, seen) = spawn_gateway(settings(&configured)).await;
    let now = get_current_timestamp();
    let token = key.sign(&json!({
        "sub": "alice", "iss": configured, "aud": AUDIENCE, "exp": now + 600,
        "roles": ["fake:read"],
    }));
    assert_unavailable(&call(&gateway, Method::GET, Some(&token)).await);
    assert_eq!(issuer.fetches(), 0);
    assert_eq!(seen.count(), 0);
}
