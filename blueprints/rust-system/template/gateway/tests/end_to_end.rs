//! End to end: every service and the gateway run on ephemeral ports in this
{% if auth.mtls %}
//! process, and each service is called through the gateway over real HTTP; the gateway
//! calls the services over mutual TLS.
{% else %}
//! process, and each service is called through the gateway over real HTTP.
{% endif %}

mod common;

{% if auth.mtls %}
use common::{Pki, pki, spawn, spawn_tls};
{% else %}
use common::spawn;
{% endif %}

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use gateway::{Config, SERVICES, Upstreams};
use http_body_util::BodyExt;
use platform::client::http_client;
use platform::config::HttpUrl;
use platform::health::Readiness;
{% assign rest_services = services | where: "protocol", "rest" %}
{% assign websocket_services = services | where: "protocol", "websocket" %}
{% assign sse_services = services | where: "protocol", "sse" %}
{% assign graphql_services = services | where: "protocol", "graphql" %}
{% assign grpc_services = services | where: "protocol", "grpc" %}
{% if rest_services.size > 0 or websocket_services.size > 0 or sse_services.size > 0 or graphql_services.size > 0 %}
use serde_json::{Value, json};
{% else %}
use serde_json::Value;
{% endif %}
use tokio::net::TcpListener;
{% if websocket_services.size > 0 or sse_services.size > 0 or graphql_services.size > 0 or grpc_services.size > 0 %}

/// Upper bound for anything a streaming check waits for.
const WAIT: std::time::Duration = std::time::Duration::from_secs(10);
{% endif %}

{% if auth.mtls %}
/// Starts the gateway in front of `upstreams`, with a client certificate from [`pki`],
/// and returns its base URL.
async fn spawn_gateway(upstreams: Upstreams) -> HttpUrl {
    spawn_gateway_as(upstreams, pki()).await
}

/// Starts the gateway with a client certificate from `issuer`.
async fn spawn_gateway_as(upstreams: Upstreams, issuer: &Pki) -> HttpUrl {
    let mut config = Config::new(upstreams);
    config.tls = Some(issuer.identity("gateway", pki()));
    spawn(gateway::router(config, Readiness::new())).await
}
{% else %}
/// Starts the gateway in front of `upstreams` and returns its base URL.
async fn spawn_gateway(upstreams: Upstreams) -> HttpUrl {
    spawn(gateway::router(Config::new(upstreams), Readiness::new())).await
}
{% endif %}

/// Starts every service and returns where each one listens.
async fn spawn_services() -> Upstreams {
    let mut upstreams = Upstreams::default();

{% for s in services %}
{% if s.protocol == 'rest' %}
    let state = {{ s.name | snake_case }}::AppState::in_memory();
{% elsif s.protocol == 'websocket' or s.protocol == 'sse' or s.protocol == 'graphql' %}
    let config = {{ s.name | snake_case }}::Config::default();
    let state = {{ s.name | snake_case }}::AppState::new(config);
{% elsif s.protocol == 'grpc' %}
    let state = {{ s.name | snake_case }}::AppState::in_memory().await;
{% endif %}
    let app = {{ s.name | snake_case }}::router(state, Readiness::new());
{% if auth.mtls %}
    let url = spawn_tls(app, "{{ s.name }}").await;
{% else %}
    let url = spawn(app).await;
{% endif %}
    upstreams.insert("{{ s.name }}", url);

{% endfor %}
    upstreams
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn call(base: &HttpUrl, method: Method, path: &str, body: Option<Value>) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(base.join(path).unwrap())
        .header("x-request-id", "end-to-end");
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = http_client().request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        },
    }
}

#[tokio::test]
async fn every_service_answers_through_the_gateway() {
    let gateway = spawn_gateway(spawn_services().await).await;

    for service in SERVICES.iter().map(|service| service.name) {
        for probe in ["healthz", "readyz"] {
            let reply = call(
                &gateway,
                Method::GET,
                &format!("/api/{service}/{probe}"),
                None,
            )
            .await;
            assert_eq!(reply.status, StatusCode::OK, "{service} {probe}");
            assert_eq!(reply.headers["x-request-id"], "end-to-end");
        }
    }
{% for s in services %}
{% if s.protocol == 'rest' %}
    items_round_trip(&gateway, "{{ s.name }}").await;
{% elsif s.protocol == 'websocket' %}
    websocket_round_trip(&gateway, "{{ s.name }}").await;
{% elsif s.protocol == 'sse' %}
    sse_resumption(&gateway, "{{ s.name }}").await;
{% elsif s.protocol == 'graphql' %}
    graphql_round_trip(&gateway, "{{ s.name }}").await;
{% elsif s.protocol == 'grpc' %}
    grpc_round_trip_{{ s.name | snake_case }}(&gateway).await;
{% endif %}
{% endfor %}
}
{% if rest_services.size > 0 %}

/// Creates items, reads one, pages through them by name with a cursor, updates and
/// deletes one, all through the gateway, on the REST service `service`.
async fn items_round_trip(gateway: &HttpUrl, service: &str) {
    let items = format!("/api/{service}/v1/items");

    let created = call(
        gateway,
        Method::POST,
        &items,
        Some(json!({ "name": "Widget" })),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{service}");
    assert_eq!(created.headers["x-request-id"], "end-to-end");
    let location = created.headers[header::LOCATION].to_str().unwrap();
    assert!(location.starts_with(&items), "{service}: {location}");

    let fetched = call(gateway, Method::GET, location, None).await;
    assert_eq!(fetched.status, StatusCode::OK, "{service}");
    assert_eq!(fetched.body, created.body);

    for name in ["Gizmo", "Sprocket"] {
        let more = call(gateway, Method::POST, &items, Some(json!({ "name": name }))).await;
        assert_eq!(more.status, StatusCode::CREATED, "{service}");
    }
    let by_name = format!("{items}?sort=name&limit=2");
    let first = call(gateway, Method::GET, &by_name, None).await;
    assert_eq!(first.status, StatusCode::OK, "{service}");
    assert_eq!(first.body["items"][0]["name"], "Gizmo");
    assert_eq!(first.body["items"][1]["name"], "Sprocket");
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = call(
        gateway,
        Method::GET,
        &format!("{by_name}&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(second.status, StatusCode::OK, "{service}");
    assert_eq!(second.body["items"], json!([created.body]));
    assert_eq!(second.body["next_cursor"], Value::Null);

    let updated = call(
        gateway,
        Method::PUT,
        location,
        Some(json!({ "name": "Gadget" })),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{service}");
    assert_eq!(updated.body["name"], "Gadget");

    let deleted = call(gateway, Method::DELETE, location, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{service}");

    let gone = call(gateway, Method::GET, location, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND, "{service}");
    assert_eq!(
        gone.headers[header::CONTENT_TYPE],
        "application/problem+json"
    );
}
{% endif %}
{% if websocket_services.size > 0 %}

/// Subscribes, publishes and receives the message back over one WebSocket connection
/// upgraded through the gateway.
async fn websocket_round_trip(gateway: &HttpUrl, service: &str) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let url = format!("ws://{}/api/{service}/v1/ws", gateway.authority());
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "welcome", "{service}");

    let subscribe = json!({ "type": "subscribe", "topic": "end-to-end" });
    socket
        .send(Message::text(subscribe.to_string()))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut socket).await["type"],
        "subscribed",
        "{service}"
    );
    let publish = json!({ "type": "publish", "topic": "end-to-end", "data": { "n": 1 } });
    socket
        .send(Message::text(publish.to_string()))
        .await
        .unwrap();
    let message = next_json(&mut socket).await;
    assert_eq!(message["type"], "message", "{service}");
    assert_eq!(message["data"], json!({ "n": 1 }), "{service}");
    socket.close(None).await.unwrap();
}
{% endif %}
{% if graphql_services.size > 0 %}

/// Subscribes to item changes over a WebSocket (`graphql-transport-ws`) upgraded through
/// the gateway, then creates an item and reads it back with GraphQL over HTTP through
/// the gateway, receiving the change on the subscription.
async fn graphql_round_trip(gateway: &HttpUrl, service: &str) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let url = format!("ws://{}/api/{service}/graphql/ws", gateway.authority());
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers()[header::SEC_WEBSOCKET_PROTOCOL],
        "graphql-transport-ws",
        "{service}"
    );
    let init = json!({ "type": "connection_init" });
    socket.send(Message::text(init.to_string())).await.unwrap();
    assert_eq!(
        next_json(&mut socket).await["type"],
        "connection_ack",
        "{service}"
    );
    let subscribe = json!({
        "id": "1",
        "type": "subscribe",
        "payload": { "query": "subscription { itemChanged { kind item { name } } }" },
    });
    socket
        .send(Message::text(subscribe.to_string()))
        .await
        .unwrap();

    let graphql = format!("/api/{service}/graphql");
    let create = json!({
        "query": "mutation { createItem(input: { name: \"Widget\", category: \"tools\" }) { id } }",
    });
    // The subscription starts asynchronously: create items until a change arrives.
    let changes = async {
        loop {
            let reply = call(gateway, Method::POST, &graphql, Some(create.clone())).await;
            assert_eq!(reply.status, StatusCode::OK, "{service}");
            assert_eq!(reply.headers["x-request-id"], "end-to-end");
            let next = tokio::time::timeout(
                std::time::Duration::from_millis(200),
                next_json(&mut socket),
            );
            if let Ok(event) = next.await {
                return (reply.body, event);
            }
        }
    };
    let (created, event) = tokio::time::timeout(WAIT, changes)
        .await
        .expect("a change in time");
    assert_eq!(event["type"], "next", "{service}: {event}");
    assert_eq!(
        event["payload"]["data"]["itemChanged"],
        json!({ "kind": "CREATED", "item": { "name": "Widget" } }),
        "{service}"
    );

    let read = json!({
        "query": "query($id: ID!) { item(id: $id) { name category { name } } }",
        "variables": { "id": created["data"]["createItem"]["id"] },
    });
    let reply = call(gateway, Method::POST, &graphql, Some(read)).await;
    assert_eq!(
        reply.body["data"]["item"],
        json!({ "name": "Widget", "category": { "name": "tools" } }),
        "{service}"
    );
    socket.close(None).await.unwrap();
}
{% endif %}
{% if websocket_services.size > 0 or graphql_services.size > 0 %}

/// The next text message of `socket`, parsed as JSON.
async fn next_json<S>(socket: &mut S) -> Value
where
    S: futures_util::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures_util::StreamExt;

    loop {
        let frame = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}
{% endif %}
{% if sse_services.size > 0 %}

/// Publishes two events, then resumes the stream through the gateway after the first
/// with `Last-Event-ID` and receives exactly the second, before the stream ends.
async fn sse_resumption(gateway: &HttpUrl, service: &str) {
    let events = format!("/api/{service}/v1/events");
    let first = call(
        gateway,
        Method::POST,
        &events,
        Some(json!({ "data": "first" })),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{service}");
    let second = call(
        gateway,
        Method::POST,
        &events,
        Some(json!({ "data": "second" })),
    )
    .await;
    assert_eq!(second.status, StatusCode::CREATED, "{service}");

    let request = Request::get(gateway.join(&events).unwrap())
        .header(header::ACCEPT, "text/event-stream")
        .header("last-event-id", first.body["id"].to_string())
        .body(Body::empty())
        .unwrap();
    let response = http_client().request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{service}");
    let mut body = response.into_body();
    let mut buffer = String::new();
    let received = loop {
        if let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            if block
                .lines()
                .all(|line| line.is_empty() || line.starts_with(':'))
            {
                continue;
            }
            break block;
        }
        let frame = tokio::time::timeout(WAIT, body.frame())
            .await
            .expect("an event in time, while the stream stays open")
            .expect("the stream is open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            buffer.push_str(std::str::from_utf8(&data).unwrap());
        }
    };
    assert!(
        received.contains(&format!("id: {}", second.body["id"])),
        "{service}: {received}"
    );
    assert!(
        received.contains("data: \"second\""),
        "{service}: {received}"
    );
    assert!(!received.contains("\"first\""), "{service}: {received}");
}
{% endif %}
{% if grpc_services.size > 0 %}

/// A gRPC client over HTTP/2 cleartext for the gateway, without the `/api/<service>`
/// prefix: the gateway routes each call by the first segment of its package.
fn grpc_channel() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    tonic::body::Body,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http()
}
{% endif %}
{% for s in grpc_services %}

/// Through the gateway: watches the items with a server stream, creates one with a
/// unary call and receives the change, on the gRPC service `{{ s.name }}`.
async fn grpc_round_trip_{{ s.name | snake_case }}(gateway: &HttpUrl) {
    use {{ s.name | snake_case }}::pb::WatchItemsRequest;
    use {{ s.name | snake_case }}::pb::item_service_client::ItemServiceClient;
    use {{ s.name | snake_case }}::pb::{ChangeType, CreateItemRequest};

    let origin = format!("http://{}", gateway.authority()).parse().unwrap();
    let mut client = ItemServiceClient::with_origin(grpc_channel(), origin);
    let watch = client.watch_items(WatchItemsRequest {});
    let mut changes = tokio::time::timeout(WAIT, watch)
        .await
        .expect("the stream in time")
        .unwrap()
        .into_inner();

    let request = CreateItemRequest {
        name: "Widget".to_owned(),
    };
    let created = client.create_item(request).await.unwrap().into_inner();
    let created = created.item.unwrap();
    assert_eq!(created.name, "Widget");

    let change = tokio::time::timeout(WAIT, changes.message())
        .await
        .expect("a change in time")
        .unwrap()
        .unwrap();
    assert_eq!(change.change_type(), ChangeType::Created);
    assert_eq!(change.item, Some(created));
}
{% endfor %}

{% if auth.mtls %}
#[tokio::test]
async fn a_gateway_certificate_from_another_ca_is_refused_by_the_services() {
    let gateway = spawn_gateway_as(spawn_services().await, &Pki::new()).await;

    let path = "/api/{{ services.first.name }}/healthz";
    let reply = call(&gateway, Method::GET, path, None).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
}

{% endif %}
#[tokio::test]
async fn unreachable_service_is_a_bad_gateway() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let mut upstreams = Upstreams::default();
    upstreams.insert("down", closed.parse().unwrap());
    let gateway = spawn_gateway(upstreams).await;

    let reply = call(&gateway, Method::GET, "/api/down/v1/items", None).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert_eq!(reply.body["status"], 502);
}

#[tokio::test]
async fn unknown_service_is_not_found() {
    let gateway = spawn_gateway(Upstreams::default()).await;

    let reply = call(&gateway, Method::GET, "/api/nowhere/v1/items", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "application/problem+json"
    );
}

#[tokio::test]
async fn gateway_serves_its_own_probes() {
    let gateway = spawn_gateway(Upstreams::default()).await;

    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            call(&gateway, Method::GET, path, None).await.status,
            StatusCode::OK
        );
    }
}
