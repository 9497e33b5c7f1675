//! Mutual TLS: a server with the platform's TLS configuration refuses clients without a
//! certificate or with one from another CA, and serves clients with a valid one, over
//! HTTP/1.1 and HTTP/2, while a client that never finishes its handshake waits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, Version};
use axum::routing::get;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use platform::client::{self, HttpClient};
use platform::server::TlsListener;
use platform::tls::Identity;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::{TcpListener, TcpStream};

/// Upper bound for any request of these tests.
const WAIT: Duration = Duration::from_secs(10);

/// A CA and the certificates it issues.
struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
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

    /// A certificate and key for `name` on 127.0.0.1, as PEM.
    fn leaf(&self, name: &str) -> (String, String) {
        let mut params =
            CertificateParams::new(vec![name.to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// The identity of `name`, with a certificate from this CA, trusting `trusted`'s CA.
    fn identity(&self, name: &str, trusted: &Pki) -> Identity {
        let (cert, key) = self.leaf(name);
        Identity::from_pem(trusted.ca_pem.as_bytes(), cert.as_bytes(), key.as_bytes()).unwrap()
    }
}

/// Serves `/healthz` over mutual TLS with `identity` on an ephemeral port.
async fn serve(identity: &Identity) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = TlsListener::new(listener, identity.server_config()).unwrap();
    let app = Router::new().route("/healthz", get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// `GET /healthz` on `addr` with `client`: the status and HTTP version, or the error.
async fn get_healthz(
    client: &HttpClient,
    addr: SocketAddr,
) -> Result<(StatusCode, Version), hyper_util::client::legacy::Error> {
    let request = Request::get(format!("https://{addr}/healthz"))
        .body(Body::empty())
        .unwrap();
    let response = tokio::time::timeout(WAIT, client.request(request))
        .await
        .expect("an answer or an error in time")?;
    Ok((response.status(), response.version()))
}

fn mtls_client(identity: &Identity, http2: bool) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build(client::mtls_connector(identity, http2))
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let pki = Pki::new();
    let addr = serve(&pki.identity("service", &pki)).await;

    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    let anonymous = Client::builder(TokioExecutor::new()).build(connector);

    let result = get_healthz(&anonymous, addr).await;
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    let addr = serve(&pki.identity("service", &pki)).await;
    // The stranger trusts the server's CA, but its own certificate is from another one.
    let stranger = Pki::new().identity("gateway", &pki);

    let result = get_healthz(&mtls_client(&stranger, false), addr).await;
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    let impostor = Pki::new();
    let addr = serve(&impostor.identity("service", &pki)).await;

    let client = mtls_client(&pki.identity("gateway", &pki), false);
    let error = get_healthz(&client, addr).await.unwrap_err();
    assert!(error.is_connect(), "{error}");
}

#[tokio::test]
async fn a_plain_http_client_is_refused() {
    let pki = Pki::new();
    let addr = serve(&pki.identity("service", &pki)).await;

    let request = Request::get(format!("http://{addr}/healthz"))
        .body(Body::empty())
        .unwrap();
    let result = tokio::time::timeout(WAIT, client::http_client().request(request))
        .await
        .expect("an answer or an error in time");
    assert!(result.is_err(), "{result:?}");
}

#[tokio::test]
async fn a_valid_client_certificate_is_served_over_http1_and_http2() {
    let pki = Pki::new();
    let addr = serve(&pki.identity("service", &pki)).await;
    let gateway = pki.identity("gateway", &pki);

    let http1 = get_healthz(&mtls_client(&gateway, false), addr).await;
    assert_eq!(http1.unwrap(), (StatusCode::OK, Version::HTTP_11));
    let http2 = get_healthz(&mtls_client(&gateway, true), addr).await;
    assert_eq!(http2.unwrap(), (StatusCode::OK, Version::HTTP_2));
}

#[tokio::test]
async fn a_stalled_handshake_does_not_block_other_clients() {
    let pki = Pki::new();
    let addr = serve(&pki.identity("service", &pki)).await;
    // Connects and never says a word.
    let _silent = TcpStream::connect(addr).await.unwrap();

    let client = mtls_client(&pki.identity("gateway", &pki), false);
    let (status, _) = get_healthz(&client, addr).await.unwrap();
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn unusable_pem_names_the_variable() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf("service");
    let ca = pki.ca_pem.as_bytes();

    let error = Identity::from_pem(b"not PEM", cert.as_bytes(), key.as_bytes()).unwrap_err();
    assert!(error.to_string().contains("TLS_CA_FILE"), "{error}");
    let error = Identity::from_pem(ca, b"", key.as_bytes()).unwrap_err();
    assert!(error.to_string().contains("TLS_CERT_FILE"), "{error}");
    let error = Identity::from_pem(ca, cert.as_bytes(), b"").unwrap_err();
    assert!(error.to_string().contains("TLS_KEY_FILE"), "{error}");
    let (_, other_key) = pki.leaf("other");
    let error = Identity::from_pem(ca, cert.as_bytes(), other_key.as_bytes()).unwrap_err();
    assert!(error.to_string().contains("TLS_KEY_FILE"), "{error}");
}
