//! The gateway carries every protocol a service may speak: WebSocket upgrades,
//! server-sent events and gRPC. Each test serves a small upstream of that protocol on an
//! ephemeral port, starts the gateway in front of it and talks to it through the
//! gateway with an ordinary client of the protocol. Every wait is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use gateway::{Config, Upstreams};
use http_body_util::channel::{Channel, Sender};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use platform::client::http_client;
use platform::health::Readiness;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tonic::Code;
use tonic_health::ServingStatus;
use tonic_health::pb::health_check_response::ServingStatus as Reported;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::HealthReporter;

/// The longest any step of a test may take.
const WAIT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test when it takes longer than [`WAIT`].
async fn within<F: IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(WAIT, future)
        .await
        .expect("timed out waiting")
}

/// Serves `app` (HTTP/1.1 and HTTP/2 cleartext) on an ephemeral port.
async fn spawn(app: Router) -> SocketAddr {
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
    addr
}

/// Starts the gateway in front of the named upstreams.
async fn spawn_gateway(services: &[(&str, SocketAddr)]) -> SocketAddr {
    let mut upstreams = Upstreams::default();
    for (name, addr) in services {
        upstreams.insert(*name, format!("http://{addr}").parse().unwrap());
    }
    spawn(gateway::router(Config::new(upstreams), Readiness::new())).await
}

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

// --- WebSocket ---

/// `/ws` echoes text and binary messages and closes the connection itself on `bye`,
/// speaking `graphql-transport-ws` when the client asks for it; `/refuse` answers 403.
fn websocket_upstream() -> Router {
    Router::new()
        .route(
            "/ws",
            get(|upgrade: WebSocketUpgrade| async move {
                upgrade.protocols(["graphql-transport-ws"]).on_upgrade(echo)
            }),
        )
        .route(
            "/refuse",
            get(|| async { (StatusCode::FORBIDDEN, "no WebSocket here") }),
        )
}

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(message)) = socket.recv().await {
        let reply = match message {
            Message::Text(text) if text.as_str() == "bye" => Message::Close(Some(CloseFrame {
                code: close_code::NORMAL,
                reason: "bye".into(),
            })),
            Message::Text(_) | Message::Binary(_) => message,
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => continue,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn websocket_round_trip_with_subprotocol_and_client_close() {
    let upstream = spawn(websocket_upstream()).await;
    let gateway = spawn_gateway(&[("chat", upstream)]).await;

    let mut request = format!("ws://{gateway}/api/chat/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, response) = within(tokio_tungstenite::connect_async(request))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        response.headers()[header::SEC_WEBSOCKET_PROTOCOL],
        "graphql-transport-ws"
    );

    for text in ["hello", "again"] {
        within(socket.send(tungstenite::Message::text(text)))
            .await
            .unwrap();
        let echoed = within(socket.next()).await.unwrap().unwrap();
        assert_eq!(echoed, tungstenite::Message::text(text));
    }

    within(socket.close(None)).await.unwrap();
    let reply = within(socket.next()).await.unwrap().unwrap();
    assert!(matches!(reply, tungstenite::Message::Close(_)), "{reply:?}");
    assert!(
        within(socket.next()).await.is_none(),
        "the connection ends after the close handshake"
    );
}

#[tokio::test]
async fn websocket_closed_by_the_service_closes_the_client() {
    let upstream = spawn(websocket_upstream()).await;
    let gateway = spawn_gateway(&[("chat", upstream)]).await;

    let (mut socket, _) = within(tokio_tungstenite::connect_async(format!(
        "ws://{gateway}/api/chat/ws"
    )))
    .await
    .unwrap();
    within(socket.send(tungstenite::Message::text("bye")))
        .await
        .unwrap();

    let closing = within(socket.next()).await.unwrap().unwrap();
    let tungstenite::Message::Close(Some(frame)) = closing else {
        panic!("expected a close frame, got {closing:?}");
    };
    assert_eq!(
        frame.code,
        tungstenite::protocol::frame::coding::CloseCode::Normal
    );
    assert_eq!(frame.reason.as_str(), "bye");
    assert!(
        within(socket.next()).await.is_none(),
        "the connection ends after the close handshake"
    );
}

#[tokio::test]
async fn refused_websocket_upgrade_is_passed_back() {
    let upstream = spawn(websocket_upstream()).await;
    let gateway = spawn_gateway(&[("chat", upstream)]).await;

    let error = within(tokio_tungstenite::connect_async(format!(
        "ws://{gateway}/api/chat/refuse"
    )))
    .await
    .unwrap_err();
    let tungstenite::Error::Http(response) = error else {
        panic!("expected the service's answer, got {error:?}");
    };
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        response.body().as_deref(),
        Some(b"no WebSocket here".as_slice())
    );
}

// --- Server-sent events ---

/// `/events` opens an event stream and hands the sending end to the test.
fn sse_upstream(streams: mpsc::UnboundedSender<Sender<Bytes>>) -> Router {
    Router::new()
        .route("/events", get(events))
        .with_state(streams)
}

async fn events(State(streams): State<mpsc::UnboundedSender<Sender<Bytes>>>) -> Response {
    let (sender, body) = Channel::<Bytes>::new(1);
    streams.send(sender).unwrap();
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::new(body),
    )
        .into_response()
}

#[tokio::test]
async fn server_sent_events_arrive_while_the_stream_is_open() {
    let (streams, mut opened) = mpsc::unbounded_channel();
    let upstream = spawn(sse_upstream(streams)).await;
    let gateway = spawn_gateway(&[("feed", upstream)]).await;

    let request = Request::get(format!("http://{gateway}/api/feed/events"))
        .header(header::ACCEPT, "text/event-stream")
        .body(Body::empty())
        .unwrap();
    let response = within(http_client().request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let mut body = response.into_body();

    let mut stream = within(opened.recv()).await.unwrap();
    within(stream.send_data(Bytes::from_static(b"id: 1\ndata: first\n\n")))
        .await
        .unwrap();
    let mut received = Vec::new();
    while !received.ends_with(b"\n\n") {
        let frame = within(body.frame()).await.unwrap().unwrap();
        received.extend_from_slice(&frame.into_data().unwrap());
    }
    assert_eq!(received, b"id: 1\ndata: first\n\n");

    // Only now does the service end the stream.
    drop(stream);
    assert!(within(body.frame()).await.is_none());
}

// --- gRPC ---

type GrpcChannel = Client<HttpConnector, tonic::body::Body>;

/// A `grpc.health.v1` client for `origin`, which may carry a path prefix, over HTTP/2
/// cleartext like any gRPC client.
fn health_client(origin: String) -> HealthClient<GrpcChannel> {
    let channel = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    HealthClient::with_origin(channel, origin.parse().unwrap())
}

/// A gRPC service with `grpc.health.v1.Health` (the overall status `""` is serving).
async fn spawn_health_service() -> (SocketAddr, HealthReporter) {
    let (reporter, service) = tonic_health::server::health_reporter();
    let app = tonic::service::Routes::new(service).into_axum_router();
    (spawn(app).await, reporter)
}

/// Checks the status of `service` through `client`.
async fn check(
    client: &mut HealthClient<GrpcChannel>,
    service: &str,
) -> Result<HealthCheckResponse, tonic::Status> {
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    within(client.check(request))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn grpc_calls_route_by_package_without_a_prefix() {
    // `/grpc.health.v1.Health/Check` is for the service named `grpc`.
    let (health, _reporter) = spawn_health_service().await;
    let gateway = spawn_gateway(&[("grpc", health)]).await;
    let mut client = health_client(format!("http://{gateway}"));

    let reply = check(&mut client, "").await.unwrap();
    assert_eq!(reply.status(), Reported::Serving);
}

#[tokio::test]
async fn grpc_calls_route_by_api_prefix_and_keep_errors() {
    let (health, _reporter) = spawn_health_service().await;
    let gateway = spawn_gateway(&[("order-items", health)]).await;
    let mut client = health_client(format!("http://{gateway}/api/order-items"));

    let reply = check(&mut client, "").await.unwrap();
    assert_eq!(reply.status(), Reported::Serving);

    let error = check(&mut client, "no.such.Service").await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    assert_eq!(error.message(), "service not registered");
}

#[tokio::test]
async fn grpc_server_streams_are_not_buffered() {
    let (health, reporter) = spawn_health_service().await;
    let gateway = spawn_gateway(&[("grpc", health)]).await;
    let mut client = health_client(format!("http://{gateway}"));

    let request = HealthCheckRequest {
        service: String::new(),
    };
    let mut updates = within(client.watch(request)).await.unwrap().into_inner();
    let first = within(updates.message()).await.unwrap().unwrap();
    assert_eq!(first.status(), Reported::Serving);

    reporter
        .set_service_status("", ServingStatus::NotServing)
        .await;
    let second = within(updates.message()).await.unwrap().unwrap();
    assert_eq!(second.status(), Reported::NotServing);
}

/// Answers every call with headers, then `PERMISSION_DENIED` in real trailers.
async fn denied() -> Response {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("7"));
    trailers.insert(
        "grpc-message",
        HeaderValue::from_static("not allowed: 100%25 sure"),
    );
    let body = Empty::<Bytes>::new().with_trailers(async { Some(Ok(trailers)) });
    (
        [(header::CONTENT_TYPE, "application/grpc")],
        Body::new(body),
    )
        .into_response()
}

#[tokio::test]
async fn grpc_status_in_trailers_arrives_intact() {
    let upstream = spawn(Router::new().fallback(denied)).await;
    let gateway = spawn_gateway(&[("grpc", upstream)]).await;

    for origin in [
        format!("http://{gateway}"),
        format!("http://{gateway}/api/grpc"),
    ] {
        let error = check(&mut health_client(origin), "").await.unwrap_err();
        assert_eq!(error.code(), Code::PermissionDenied);
        assert_eq!(error.message(), "not allowed: 100% sure");
    }
}

#[tokio::test]
async fn grpc_calls_to_missing_services_get_grpc_statuses() {
    let gateway = spawn_gateway(&[("grpc", closed_port().await)]).await;

    let error = check(&mut health_client(format!("http://{gateway}")), "")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");

    let unknown = format!("http://{gateway}/api/nowhere");
    let error = check(&mut health_client(unknown), "").await.unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented, "{error:?}");
}

#[tokio::test]
async fn non_grpc_requests_on_grpc_paths_are_not_found() {
    let (health, _reporter) = spawn_health_service().await;
    let gateway = spawn_gateway(&[("grpc", health)]).await;

    let request = Request::post(format!("http://{gateway}/grpc.health.v1.Health/Check"))
        .body(Body::empty())
        .unwrap();
    let response = within(http_client().request(request)).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
}
