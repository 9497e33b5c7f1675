//! Helpers shared by the gateway's integration tests.

// Each test crate that includes this module uses only some of the helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::HeaderMap;
use platform::config::HttpUrl;
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
