//! The pooled HTTP/1 client used to call other services.

use std::time::Duration;

use axum::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long to wait for a TCP connection before giving up on a service.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An HTTP/1 client with a connection pool; clones share the pool.
pub type HttpClient = Client<HttpConnector, Body>;

/// A new client that streams [`Body`] requests over [`connector`]'s connections.
pub fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build(connector())
}

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
