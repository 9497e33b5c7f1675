//! Helpers shared by the gateway's integration tests.

// Each test crate that includes this module uses only some of the helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
{% if auth.mtls %}
use std::sync::{Arc, LazyLock, Mutex};
{% else %}
use std::sync::{Arc, Mutex};
{% endif %}

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use platform::client::http_client;
use platform::config::HttpUrl;
{% if auth.mtls %}
use platform::server::TlsListener;
use platform::tls::Identity;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
{% endif %}
use tokio::net::TcpListener;

/// Serves `app` on an ephemeral port, with the client's address as the gateway needs
/// it, and returns its base URL.
pub(crate) async fn spawn(app: Router) -> HttpUrl {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    format!("http://{addr}").parse().unwrap()
}

{% if auth.mtls %}
/// Serves `app` over mutual TLS as the service `name`, with a certificate from
/// [`pki`], and returns its `https://` base URL.
pub(crate) async fn spawn_tls(app: Router, name: &str) -> HttpUrl {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let identity = pki().identity(name, pki());
    let listener = TlsListener::new(listener, identity.server_config()).unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("https://{addr}").parse().unwrap()
}

/// The CA of the gateway and the services in these tests.
pub(crate) fn pki() -> &'static Pki {
    static PKI: LazyLock<Pki> = LazyLock::new(Pki::new);
    &PKI
}

/// A CA and the certificates it issues, as `cargo run -p dev-certs` makes them.
pub(crate) struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// A new CA.
    pub(crate) fn new() -> Self {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let key = KeyPair::generate().unwrap();
        let ca_pem = params.self_signed(&key).unwrap().pem();
        Self {
            ca_pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// The identity of `name` on 127.0.0.1, with a certificate from this CA, trusting
    /// `trusted`'s CA.
    pub(crate) fn identity(&self, name: &str, trusted: &Pki) -> Identity {
        let mut params =
            CertificateParams::new(vec![name.to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert, key) = (cert.pem(), key.serialize_pem());
        Identity::from_pem(trusted.ca_pem.as_bytes(), cert.as_bytes(), key.as_bytes()).unwrap()
    }
}

{% endif %}
/// The headers of the requests a fake service has received.
#[derive(Clone, Default)]
pub(crate) struct Seen(pub(crate) Arc<Mutex<Vec<HeaderMap>>>);

impl Seen {
    /// How many requests the service has received.
    pub(crate) fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// The headers of the last request.
    pub(crate) fn last(&self) -> HeaderMap {
        self.0.lock().unwrap().last().cloned().expect("no request")
    }
}

/// Sends `request`, whose URI is a path on `gateway`, with `body`, and returns the
/// response with its whole body.
pub(crate) async fn send_body(
    gateway: &HttpUrl,
    request: axum::http::request::Builder,
    body: Body,
) -> Response<Bytes> {
    let path = request.uri_ref().unwrap().to_string();
    let request = request
        .uri(gateway.join(&path).unwrap())
        .body(body)
        .unwrap();
    let response = http_client().request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, body.collect().await.unwrap().to_bytes())
}

/// [`send_body`] without a body.
pub(crate) async fn send(
    gateway: &HttpUrl,
    request: axum::http::request::Builder,
) -> Response<Bytes> {
    send_body(gateway, request, Body::empty()).await
}

/// The value of the header `name`, which the response must have.
pub(crate) fn header<'a>(response: &'a Response<Bytes>, name: &str) -> &'a str {
    response.headers()[name].to_str().unwrap()
}

/// A 401 problem with a `scheme` challenge, `error="invalid_token"` when `invalid`.
pub(crate) fn assert_unauthorized(scheme: &str, response: &Response<Bytes>, invalid: bool) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(header(response, "content-type"), "application/problem+json");
    let challenge = header(response, "www-authenticate");
    assert!(
        challenge.starts_with(&format!("{scheme} realm=")),
        "{challenge}"
    );
    assert_eq!(
        challenge.contains("error=\"invalid_token\""),
        invalid,
        "{challenge}"
    );
}
