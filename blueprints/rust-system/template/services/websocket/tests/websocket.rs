{% assign consumed = "" %}
{% for s in services %}{% if s.protocol == "rest" or s.protocol == "graphql" or s.protocol == "grpc" %}{% assign consumed = consumed | append: "," | append: s.name %}{% endif %}{% endfor %}
{% assign consumed = consumed | remove_first: "," %}
//! The WebSocket API over real connections: the service runs on an ephemeral port in
//! this process and clients connect with tokio-tungstenite.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures_util::{SinkExt, StreamExt};
use platform::health::Readiness;
{% if messaging.broker != 'none' and consumed != "" %}
use platform::messaging::CloudEvent;
{% endif %}
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tower::ServiceExt;

use {{ service.name | snake_case }}::{AppState, Config, router};
{% if messaging.broker != 'none' and consumed != "" %}
use {{ service.name | snake_case }}::{EVENTS_TOPIC, forward_event};
{% endif %}

/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(10);

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A running service: its state and router (shared with the server) and its address.
struct Service {
    state: AppState,
    app: Router,
    addr: SocketAddr,
}

impl Service {
    async fn start(config: Config) -> Self {
        let state = AppState::new(config);
        let app = router(state.clone(), Readiness::new());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = app.clone();
        tokio::spawn(async move { axum::serve(listener, server).await.unwrap() });
        Self { state, app, addr }
    }

    /// Connects a client and reads its welcome message.
    async fn connect(&self) -> (Client, String) {
        let url = format!("ws://{}/v1/ws", self.addr);
        let (mut client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let welcome = next_json(&mut client).await;
        assert_eq!(welcome["type"], "welcome");
        let id = welcome["connection_id"].as_str().unwrap().to_owned();
        (client, id)
    }

    /// The body of `GET /v1/connections`.
    async fn connections(&self) -> Value {
        let request = Request::get("/v1/connections").body(Body::empty()).unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }
}

/// The next message that is not a ping or pong.
async fn next(client: &mut Client) -> Message {
    loop {
        let message = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("timed out waiting for a message")
            .expect("the connection ended")
            .expect("reading failed");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

async fn next_json(client: &mut Client) -> Value {
    match next(client).await {
        Message::Text(text) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Reads the close frame that must come next and returns its code.
async fn close_code(client: &mut Client) -> u16 {
    match next(client).await {
        Message::Close(Some(frame)) => frame.code.into(),
        other => panic!("expected a close frame with a code, got {other:?}"),
    }
}

async fn send(client: &mut Client, message: Value) {
    client
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
}

async fn subscribe(client: &mut Client, topic: &str) {
    send(client, json!({ "type": "subscribe", "topic": topic })).await;
    assert_eq!(
        next_json(client).await,
        json!({ "type": "subscribed", "topic": topic })
    );
}

#[tokio::test]
async fn publishes_and_receives_on_one_connection() {
    let service = Service::start(Config::default()).await;
    let (mut client, id) = service.connect().await;
    assert_eq!(
        service.connections().await,
        json!({ "count": 1, "ids": [id] })
    );

    subscribe(&mut client, "news").await;
    let data = json!({ "headline": "hello", "n": [1, 2] });
    send(
        &mut client,
        json!({ "type": "publish", "topic": "news", "data": data }),
    )
    .await;
    assert_eq!(
        next_json(&mut client).await,
        json!({ "type": "message", "topic": "news", "data": data })
    );

    send(
        &mut client,
        json!({ "type": "unsubscribe", "topic": "news" }),
    )
    .await;
    assert_eq!(
        next_json(&mut client).await,
        json!({ "type": "unsubscribed", "topic": "news" })
    );

    client.close(None).await.unwrap();
    assert!(matches!(next(&mut client).await, Message::Close(_)));
}

#[tokio::test]
async fn broadcasts_to_the_subscribers_of_a_topic_only() {
    let service = Service::start(Config::default()).await;
    let (mut publisher, _) = service.connect().await;
    let (mut first, _) = service.connect().await;
    let (mut second, _) = service.connect().await;
    let (mut bystander, _) = service.connect().await;
    subscribe(&mut first, "news").await;
    subscribe(&mut second, "news").await;
    subscribe(&mut bystander, "sport").await;

    send(
        &mut publisher,
        json!({ "type": "publish", "topic": "news", "data": 1 }),
    )
    .await;
    let expected = json!({ "type": "message", "topic": "news", "data": 1 });
    assert_eq!(next_json(&mut first).await, expected);
    assert_eq!(next_json(&mut second).await, expected);

    // The news message, if it had been queued for the bystander, would have been queued
    // before the bystander's own sport message: the next message proves it was not.
    send(
        &mut bystander,
        json!({ "type": "publish", "topic": "sport", "data": 2 }),
    )
    .await;
    assert_eq!(
        next_json(&mut bystander).await,
        json!({ "type": "message", "topic": "sport", "data": 2 })
    );
}

#[tokio::test]
async fn oversized_messages_close_with_1009() {
    let service = Service::start(Config {
        max_message_bytes: 1024,
        ..Config::default()
    })
    .await;
    let (mut client, _) = service.connect().await;

    send(
        &mut client,
        json!({ "type": "publish", "topic": "news", "data": "x".repeat(2048) }),
    )
    .await;
    assert_eq!(close_code(&mut client).await, 1009);
}

#[tokio::test]
async fn malformed_messages_get_an_error_then_close_with_1008() {
    let service = Service::start(Config::default()).await;
    let (mut client, _) = service.connect().await;

    client.send(Message::text("{not json")).await.unwrap();
    let error = next_json(&mut client).await;
    assert_eq!(error["type"], "error");
    assert!(
        error["message"].as_str().unwrap().contains("malformed"),
        "{error}"
    );
    assert_eq!(close_code(&mut client).await, 1008);

    let (mut client, _) = service.connect().await;
    send(&mut client, json!({ "type": "subscribe", "topic": "" })).await;
    assert_eq!(next_json(&mut client).await["type"], "error");
    assert_eq!(close_code(&mut client).await, 1008);
}

#[tokio::test]
async fn binary_messages_close_with_1003() {
    let service = Service::start(Config::default()).await;
    let (mut client, _) = service.connect().await;

    client.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(close_code(&mut client).await, 1003);
}

#[tokio::test]
async fn silent_clients_are_closed_after_the_idle_timeout() {
    // No heartbeat before the timeout: a ping would make the client answer.
    let service = Service::start(Config {
        idle_timeout: Duration::from_millis(200),
        heartbeat_interval: Duration::from_secs(60),
        ..Config::default()
    })
    .await;
    let (mut client, _) = service.connect().await;

    let Message::Close(Some(frame)) = next(&mut client).await else {
        panic!("expected a close frame");
    };
    assert_eq!(u16::from(frame.code), 1000);
    assert_eq!(frame.reason.as_str(), "idle timeout");
    assert_eq!(
        service.connections().await,
        json!({ "count": 0, "ids": [] })
    );
}

#[tokio::test]
async fn clients_that_answer_pings_stay_connected() {
    let service = Service::start(Config {
        heartbeat_interval: Duration::from_millis(50),
        idle_timeout: Duration::from_millis(600),
        ..Config::default()
    })
    .await;
    let (mut client, _) = service.connect().await;

    // Reading answers the pings; keep reading for over three idle timeouts.
    let mut pings = 0;
    while pings < 40 {
        match tokio::time::timeout(WAIT, client.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            other => panic!("expected pings, got {other:?}"),
        }
    }
    subscribe(&mut client, "still-here").await;
}

#[tokio::test]
async fn shutdown_closes_connections_with_1001() {
    let service = Service::start(Config::default()).await;
    let (mut client, _) = service.connect().await;

    let closing = tokio::spawn(async move { close_code(&mut client).await });
    assert!(service.state.hub().close_all(WAIT).await);
    assert_eq!(closing.await.unwrap(), 1001);
}

#[tokio::test]
async fn plain_http_requests_get_problem_details() {
    let app = router(AppState::new(Config::default()), Readiness::new());
    let request = Request::get("/v1/ws").body(Body::empty()).unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
}

#[tokio::test]
async fn serves_health_probes() {
    let app = router(AppState::new(Config::default()), Readiness::new());
    for path in ["/healthz", "/readyz"] {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}
{% if messaging.broker != 'none' and consumed != "" %}

#[tokio::test]
async fn forwards_the_events_of_other_services_to_the_events_topic() {
    let service = Service::start(Config::default()).await;
    let (mut subscriber, _) = service.connect().await;
    let (mut bystander, _) = service.connect().await;
    subscribe(&mut subscriber, EVENTS_TOPIC).await;
    subscribe(&mut bystander, "news").await;

    let event = CloudEvent::new(
        "/{{ name }}/{{ consumed | split: "," | first }}",
        "{{ name }}.{{ consumed | split: "," | first }}.item.created.v1",
        Some("42".to_owned()),
        json!({ "id": "42", "name": "tea" }),
    );
    forward_event(service.state.clone(), event.clone())
        .await
        .unwrap();
    let message = next_json(&mut subscriber).await;
    assert_eq!(message["type"], "message");
    assert_eq!(message["topic"], "events");
    assert_eq!(message["data"], serde_json::to_value(&event).unwrap());
    assert_eq!(message["data"]["type"], "{{ name }}.{{ consumed | split: "," | first }}.item.created.v1");
    assert_eq!(message["data"]["data"]["name"], "tea");

    send(
        &mut bystander,
        json!({ "type": "publish", "topic": "news", "data": 1 }),
    )
    .await;
    assert_eq!(
        next_json(&mut bystander).await["topic"],
        "news",
        "no event first"
    );
}
{% endif %}
