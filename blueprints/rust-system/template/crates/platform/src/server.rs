{% if auth.mtls %}
//! Serving a router with graceful shutdown on SIGTERM or Ctrl-C: over mutual TLS
//! ([`serve`]) or plain HTTP ([`serve_public`]), each with a plain admin port for
//! probes and metrics.
{% else %}
//! Serving a router with graceful shutdown on SIGTERM or Ctrl-C.
{% endif %}

use std::io;
use std::net::SocketAddr;
{% if auth.mtls %}
use std::sync::Arc;
use std::time::Duration;
{% endif %}

use axum::Router;
{% if auth.mtls %}
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
{% endif %}
use axum::serve::ListenerExt;
{% if auth.mtls %}
use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
{% else %}
use tokio::net::TcpListener;
{% endif %}

{% if auth.mtls %}
use crate::config::{self, ConfigError};
{% endif %}
use crate::health::Readiness;
{% if auth.mtls %}
use crate::tls::Identity;

/// How long a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finished handshakes waiting for the server to take them.
const ACCEPTED_QUEUE: usize = 64;

/// The only paths the admin port serves.
const ADMIN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];
{% endif %}

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
{% if auth.mtls %}
    /// The certificates or the admin port are misconfigured.
    #[error(transparent)]
    Config(#[from] ConfigError),
{% endif %}
}

{% if auth.mtls %}
/// Binds `addr` and serves `app` over mutual TLS to clients with a certificate from the
/// CA of [`Identity::from_env`] (`name`'s files), and the probes and metrics on the plain
/// admin port ([`config::admin_addr`]), until SIGTERM or Ctrl-C; then stops accepting
/// connections, marks `readiness` not ready and drains in-flight requests.
pub async fn serve(
    name: &str,
    addr: SocketAddr,
    app: Router,
    readiness: Readiness,
) -> Result<(), ServerError> {
    let identity = Identity::from_env(name)?;
    let admin_addr = config::admin_addr(addr)?;
    let listener = TlsListener::bind(addr, identity.server_config())
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    let admin = bind_plain(admin_addr).await?;
    tracing::info!(%addr, admin = %admin_addr, "listening (mutual TLS; admin port plain HTTP)");
    let shutdown = Shutdown::start(readiness);
    let main = axum::serve(listener, app.clone()).with_graceful_shutdown(shutdown.wait());
    tokio::try_join!(
        async { main.await.map_err(ServerError::Serve) },
        serve_admin(admin, app, &shutdown),
    )?;
    Ok(())
}

/// Binds `addr` and serves `app` over plain HTTP (behind an ingress that terminates
/// TLS), and the probes and metrics on the admin port, like [`serve`].
///
/// Accepted connections send small writes at once (`TCP_NODELAY`), so a response's
/// headers and body, or HTTP/2 frames, never wait for the client's delayed ACK.
pub async fn serve_public(
    addr: SocketAddr,
    app: Router,
    readiness: Readiness,
) -> Result<(), ServerError> {
    let admin_addr = config::admin_addr(addr)?;
    let listener = bind_plain(addr).await?;
    let admin = bind_plain(admin_addr).await?;
    tracing::info!(%addr, admin = %admin_addr, "listening (admin port plain HTTP)");
    let shutdown = Shutdown::start(readiness);
    let main = axum::serve(
        listener,
        app.clone()
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.wait());
    tokio::try_join!(
        async { main.await.map_err(ServerError::Serve) },
        serve_admin(admin, app, &shutdown),
    )?;
    Ok(())
}

/// Serves the probes and metrics of `app` on `listener` over plain HTTP, for Kubernetes
/// probes and Prometheus, which present no client certificate.
async fn serve_admin(
    listener: PlainListener,
    app: Router,
    shutdown: &Shutdown,
) -> Result<(), ServerError> {
    let app = app.layer(axum::middleware::from_fn(admin_only));
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.wait())
    .await
    .map_err(ServerError::Serve)
}

/// 404 for everything but [`ADMIN_PATHS`].
async fn admin_only(request: Request, next: Next) -> Response {
    if ADMIN_PATHS.contains(&request.uri().path()) {
        next.run(request).await
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// A TCP listener whose connections are `TCP_NODELAY`.
type PlainListener = axum::serve::TapIo<TcpListener, fn(&mut TcpStream)>;

/// A [`PlainListener`] on `addr`.
async fn bind_plain(addr: SocketAddr) -> Result<PlainListener, ServerError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })?;
    Ok(listener.tap_io(set_nodelay as fn(&mut TcpStream)))
}

fn set_nodelay(stream: &mut TcpStream) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "cannot set TCP_NODELAY");
    }
}

/// The shutdown of every server of this process: set when SIGTERM or Ctrl-C arrives,
/// after marking the process not ready.
#[derive(Debug)]
struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    fn start(readiness: Readiness) -> Self {
        let (sender, receiver) = watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            readiness.set_ready(false);
            tracing::info!("shutdown signal received, draining in-flight requests");
            sender.send_replace(true);
        });
        Self(receiver)
    }

    /// Completes when shutdown begins.
    fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.0.clone();
        async move {
            // An error means the signal task is gone, which only happens at exit.
            let _ = receiver.wait_for(|&stopping| stopping).await;
        }
    }
}

/// A listener for [`axum::serve`] that yields only connections whose client presented a
/// certificate `config` accepts. Each handshake runs in its own task with
/// [`HANDSHAKE_TIMEOUT`], so a slow or silent client never holds up the others.
#[derive(Debug)]
pub struct TlsListener {
    local_addr: SocketAddr,
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    /// Binds `addr` and accepts TLS connections with `config`.
    pub async fn bind(addr: SocketAddr, config: Arc<ServerConfig>) -> io::Result<Self> {
        Self::new(TcpListener::bind(addr).await?, config)
    }

    /// Accepts TLS connections with `config` on `listener`.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (sender, accepted) = mpsc::channel(ACCEPTED_QUEUE);
        let acceptor = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), sender));
        Ok(Self {
            local_addr,
            accepted,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// Accepts TCP connections and hands each one, after its handshake, to `accepted`.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    accepted: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(connection) => connection,
            Err(error) => {
                // Out of file descriptors and the like: retry after a pause.
                tracing::warn!(%error, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        set_nodelay(&mut stream);
        let acceptor = acceptor.clone();
        let accepted = accepted.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    // A send error means the server stopped: the connection is dropped.
                    let _ = accepted.send((stream, peer)).await;
                }
                Ok(Err(error)) => tracing::info!(%peer, %error, "TLS handshake refused"),
                Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
            }
        });
    }
}
{% else %}
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
{% endif %}

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
