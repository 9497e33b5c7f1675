{% if auth.mtls %}
//! The pooled HTTP client used to call other services, over mutual TLS for `https://`
//! URLs ([`mtls_connector`]).
{% else %}
//! The pooled HTTP/1 client used to call other services.
{% endif %}

use std::time::Duration;

use axum::body::Body;
{% if auth.mtls %}
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
{% endif %}
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
{% if auth.mtls %}

use crate::tls::{self, Identity};
{% endif %}

/// How long to wait for a TCP connection before giving up on a service.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

{% if auth.mtls %}
/// [`connector`]'s TCP connections, in TLS for `https://` URLs.
pub type Connector = HttpsConnector<HttpConnector>;

/// An HTTP client with a connection pool; clones share the pool.
pub type HttpClient = Client<Connector, Body>;

/// A new HTTP/1 client for `http://` URLs (health checks, trace export): it trusts no
/// TLS server, so an `https://` URL fails.
pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build(plain_connector())
}

/// Plain connections over [`connector`]; TLS trusts no server.
pub fn plain_connector() -> Connector {
    HttpsConnectorBuilder::new()
        .with_tls_config(tls::trust_nothing())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp_for_tls())
}

/// Mutual TLS connections over [`connector`] to `https://` URLs only, presenting
/// `identity`'s certificate. ALPN asks for HTTP/2 when `http2` (gRPC), else for nothing
/// but HTTP/1.1 (which WebSocket upgrades need).
pub fn mtls_connector(identity: &Identity, http2: bool) -> Connector {
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(identity.client_config())
        .https_only();
    if http2 {
        builder.enable_http2().wrap_connector(tcp_for_tls())
    } else {
        builder.enable_http1().wrap_connector(tcp_for_tls())
    }
}

/// [`connector`], letting `https://` URLs through to the TLS layer.
fn tcp_for_tls() -> HttpConnector {
    let mut connector = connector();
    connector.enforce_http(false);
    connector
}
{% else %}
/// An HTTP/1 client with a connection pool; clones share the pool.
pub type HttpClient = Client<HttpConnector, Body>;

/// A new client that streams [`Body`] requests over [`connector`]'s connections.
pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build(connector())
}
{% endif %}

/// TCP connections that fail after [`CONNECT_TIMEOUT`] and send small writes at
/// once (`TCP_NODELAY`): with Nagle's algorithm, a request's second small write
/// waits for the peer's delayed ACK, about 40 ms on Linux.
pub fn connector() -> HttpConnector {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_nodelay(true);
    connector
}

#[cfg(test)]
mod tests {
    use axum::http::Request;
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn unreachable_servers_are_connect_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);

        let request = Request::get(format!("http://{addr}/"))
            .body(Body::empty())
            .unwrap();
        let error = http_client().request(request).await.unwrap_err();
        assert!(error.is_connect(), "{error}");
    }
}
