//! Serving a router with graceful shutdown on SIGTERM or Ctrl-C.

use std::io;
use std::net::SocketAddr;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::health::Readiness;

/// The server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// Why it failed.
        source: io::Error,
    },
    /// Serving failed.
    #[error("server error: {0}")]
    Serve(#[source] io::Error),
}

/// Binds `addr` and serves `app` until SIGTERM or Ctrl-C, then stops accepting
/// connections, marks `readiness` not ready and drains in-flight requests.
///
/// Accepted connections send small writes at once (`TCP_NODELAY`), so a response's
/// headers and body, or HTTP/2 frames, never wait for the client's delayed ACK.
pub async fn serve(addr: SocketAddr, app: Router, readiness: Readiness) -> Result<(), ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?
        .tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
    tracing::info!(%addr, "listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        readiness.set_ready(false);
        tracing::info!("shutdown signal received, draining in-flight requests");
    })
    .await
    .map_err(ServerError::Serve)
}

/// Completes on Ctrl-C, or on SIGTERM on Unix: when [`serve`] starts to shut down.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };

    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };

    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
