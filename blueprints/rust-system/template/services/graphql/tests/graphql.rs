//! The GraphQL API: queries, mutations and validation through the router, the
//! `itemChanged` subscription over a real WebSocket (`graphql-transport-ws`), batched
//! category loading and the query limits.

use std::time::Duration;

use async_graphql::dataloader::DataLoader;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use futures_util::{SinkExt, StreamExt};
use platform::health::Readiness;
{% if messaging.broker != 'none' %}
use platform::messaging::{Events, OUTBOX_CAPACITY};
{% endif %}
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tower::ServiceExt;

{% if messaging.broker != 'none' %}
use {{ service.name | snake_case }}::{AppState, CategoryLoader, Config, NAME, router};
{% else %}
use {{ service.name | snake_case }}::{AppState, CategoryLoader, Config, router};
{% endif %}

/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(10);

/// Posts `query` with `variables` to `/graphql` and returns the response body.
async fn execute(app: &Router, query: &str, variables: Value) -> Value {
    let body = json!({ "query": query, "variables": variables });
    let request = Request::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// Creates an item and returns its id.
async fn create(app: &Router, name: &str, category: &str) -> String {
    let reply = execute(
        app,
        "mutation($input: ItemInput!) { createItem(input: $input) { id name } }",
        json!({ "input": { "name": name, "category": category } }),
    )
    .await;
    assert_eq!(reply["data"]["createItem"]["name"], name, "{reply}");
    reply["data"]["createItem"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn app() -> Router {
    router(AppState::new(Config::default()), Readiness::new())
}

#[tokio::test]
async fn pages_through_items_with_a_cursor() {
    let app = app();
    let mut created = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        created.push(create(&app, name, "letters").await);
    }
    let query = "query($after: String) {
        items(first: 2, after: $after) {
            edges { cursor node { id } }
            pageInfo { hasNextPage endCursor }
        }
    }";

    let mut seen = Vec::new();
    let mut after = Value::Null;
    loop {
        let reply = execute(&app, query, json!({ "after": after })).await;
        let items = &reply["data"]["items"];
        let edges = items["edges"].as_array().unwrap();
        assert!(edges.len() <= 2, "{reply}");
        seen.extend(edges.iter().map(|edge| edge["node"]["id"].clone()));
        if items["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = items["pageInfo"]["endCursor"].clone();
    }
    created.sort();
    assert_eq!(seen, json!(created).as_array().unwrap().clone());
}

#[tokio::test]
async fn page_size_is_bounded() {
    let reply = execute(&app(), "{ items(first: 101) { nodes { id } } }", json!({})).await;
    assert_eq!(reply["data"], Value::Null, "{reply}");
    let message = reply["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("less than or equal to 100"), "{message}");
}

#[tokio::test]
async fn updates_reads_and_deletes_an_item() {
    let app = app();
    let id = create(&app, "Widget", "tools").await;

    let updated = execute(
        &app,
        "mutation($id: ID!) { updateItem(id: $id, input: { name: \"Gadget\", category: \"toys\" }) { name category { name } } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(
        updated["data"]["updateItem"],
        json!({ "name": "Gadget", "category": { "name": "toys" } })
    );

    let item = "query($id: ID!) { item(id: $id) { name } }";
    let read = execute(&app, item, json!({ "id": id })).await;
    assert_eq!(read["data"]["item"]["name"], "Gadget");

    let delete = "mutation($id: ID!) { deleteItem(id: $id) }";
    let deleted = execute(&app, delete, json!({ "id": id })).await;
    assert_eq!(deleted["data"]["deleteItem"], true);
    let again = execute(&app, delete, json!({ "id": id })).await;
    assert_eq!(again["data"]["deleteItem"], false);
    let gone = execute(&app, item, json!({ "id": id })).await;
    assert_eq!(gone["data"]["item"], Value::Null, "{gone}");
}

#[tokio::test]
async fn invalid_input_is_a_validation_error() {
    let app = app();
    let empty_name = execute(
        &app,
        "mutation { createItem(input: { name: \"\", category: \"tools\" }) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(empty_name["data"], Value::Null, "{empty_name}");
    let message = empty_name["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("greater than or equal to 1"), "{message}");

    let bad_id = execute(&app, "{ item(id: \"nope\") { id } }", json!({})).await;
    let message = bad_id["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("not an item id"), "{message}");

    let unknown_field = execute(&app, "{ items { nodes { price } } }", json!({})).await;
    let message = unknown_field["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("price"), "{message}");
}

#[tokio::test]
async fn categories_of_a_page_load_in_one_batch() {
    let state = AppState::new(Config::default());
    let app = router(state.clone(), Readiness::new());
    for (name, category) in [("a", "x"), ("b", "y"), ("c", "x"), ("d", "z"), ("e", "y")] {
        create(&app, name, category).await;
    }
    let loader = state
        .schema()
        .data::<DataLoader<CategoryLoader>>()
        .unwrap()
        .loader();
    let before = loader.batches();

    let reply = execute(
        &app,
        "{ items(first: 10) { nodes { name category { name itemCount } } } }",
        json!({}),
    )
    .await;
    let nodes = reply["data"]["items"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 5, "{reply}");
    for node in nodes {
        let expected = if node["category"]["name"] == "z" {
            1
        } else {
            2
        };
        assert_eq!(node["category"]["itemCount"], expected, "{node}");
    }
    assert_eq!(loader.batches() - before, 1);
}

#[tokio::test]
async fn too_deep_queries_are_rejected() {
    let config = Config {
        max_depth: 4,
        ..Config::default()
    };
    let app = router(AppState::new(config), Readiness::new());

    let shallow = execute(&app, "{ items { nodes { id } } }", json!({})).await;
    assert!(shallow["errors"].is_null(), "{shallow}");
    let deep = execute(
        &app,
        "{ items { edges { node { category { name } } } } }",
        json!({}),
    )
    .await;
    assert_eq!(deep["data"], Value::Null, "{deep}");
    let message = deep["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("nested too deep"), "{message}");
}

#[tokio::test]
async fn too_complex_queries_are_rejected() {
    let config = Config {
        max_complexity: 50,
        ..Config::default()
    };
    let app = router(AppState::new(config), Readiness::new());

    let small = execute(&app, "{ items(first: 5) { nodes { id } } }", json!({})).await;
    assert!(small["errors"].is_null(), "{small}");
    let large = execute(&app, "{ items(first: 100) { nodes { id } } }", json!({})).await;
    let message = large["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("too complex"), "{message}");
}

#[tokio::test]
async fn serves_graphiql() {
    let request = Request::get("/graphql").body(Body::empty()).unwrap();
    let response = app().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&body).contains("GraphiQL.createFetcher"));
}

#[tokio::test]
async fn subscribers_receive_item_changes_over_websocket() {
    let app = app();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = app.clone();
    tokio::spawn(async move { axum::serve(listener, server).await.unwrap() });

    let mut request = format!("ws://{addr}/graphql/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers()[header::SEC_WEBSOCKET_PROTOCOL],
        "graphql-transport-ws"
    );
    let send = |message: Value| Message::text(message.to_string());
    socket
        .send(send(json!({ "type": "connection_init" })))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "connection_ack");
    socket
        .send(send(json!({
            "id": "1",
            "type": "subscribe",
            "payload": { "query": "subscription { itemChanged { kind id item { name } } }" },
        })))
        .await
        .unwrap();

    // The subscription starts asynchronously: create items until a change arrives.
    let mut created = Vec::new();
    let changes = async {
        loop {
            created.push(json!(create(&app, "Widget", "tools").await));
            let next = tokio::time::timeout(Duration::from_millis(200), next_json(&mut socket));
            if let Ok(message) = next.await {
                return message;
            }
        }
    };
    let message = tokio::time::timeout(WAIT, changes)
        .await
        .expect("a change in time");
    assert_eq!(message["type"], "next", "{message}");
    assert_eq!(message["id"], "1");
    let changed = &message["payload"]["data"]["itemChanged"];
    assert_eq!(changed["kind"], "CREATED");
    assert_eq!(changed["item"]["name"], "Widget");
    assert!(created.contains(&changed["id"]), "{changed}");
    socket.close(None).await.unwrap();
}

{% if messaging.broker != 'none' %}
#[tokio::test]
async fn every_change_is_published_as_an_event() {
    let (events, mut outbox) = Events::new(NAME);
    let app = router(
        AppState::new(Config::default()).with_events(events),
        Readiness::new(),
    );
    let event_type = |action: &str| format!("{}.{NAME}.item.{action}.v1", platform::SYSTEM.name);

    let id = create(&app, "Widget", "tools").await;
    let created = outbox.try_recv().expect("an event for the creation");
    assert_eq!(created.event_type, event_type("created"));
    assert_eq!(created.subject.as_deref(), Some(id.as_str()));
    assert_eq!(
        created.data,
        json!({ "id": id, "name": "Widget", "category": "tools" })
    );

    let update = "mutation($id: ID!) { updateItem(id: $id, input: { name: \"Gadget\", category: \"toys\" }) { id } }";
    let updated = execute(&app, update, json!({ "id": id })).await;
    assert_eq!(updated["data"]["updateItem"]["id"], id, "{updated}");
    let updated = outbox.try_recv().expect("an event for the update");
    assert_eq!(updated.event_type, event_type("updated"));
    assert_eq!(updated.subject.as_deref(), Some(id.as_str()));
    assert_eq!(
        updated.data,
        json!({ "id": id, "name": "Gadget", "category": "toys" })
    );

    let delete = "mutation($id: ID!) { deleteItem(id: $id) }";
    let deleted = execute(&app, delete, json!({ "id": id })).await;
    assert_eq!(deleted["data"]["deleteItem"], true, "{deleted}");
    let deleted = outbox.try_recv().expect("an event for the deletion");
    assert_eq!(deleted.event_type, event_type("deleted"));
    assert_eq!(deleted.subject.as_deref(), Some(id.as_str()));
    assert_eq!(deleted.data, json!({ "id": id }));
    assert!(outbox.try_recv().is_err(), "one event per change");
}

#[tokio::test]
async fn failed_changes_publish_no_event() {
    let (events, mut outbox) = Events::new(NAME);
    let app = router(
        AppState::new(Config::default()).with_events(events),
        Readiness::new(),
    );
    let missing = json!({ "id": "00000000-0000-0000-0000-000000000000" });

    let update = "mutation($id: ID!) { updateItem(id: $id, input: { name: \"Gadget\", category: \"toys\" }) { id } }";
    let not_found = execute(&app, update, missing.clone()).await;
    assert_eq!(not_found["data"]["updateItem"], Value::Null, "{not_found}");
    let delete = "mutation($id: ID!) { deleteItem(id: $id) }";
    let not_found = execute(&app, delete, missing).await;
    assert_eq!(not_found["data"]["deleteItem"], false, "{not_found}");
    let bad_id = execute(&app, delete, json!({ "id": "nope" })).await;
    assert_eq!(bad_id["data"], Value::Null, "{bad_id}");
    let invalid = execute(
        &app,
        "mutation { createItem(input: { name: \"\", category: \"tools\" }) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(invalid["data"], Value::Null, "{invalid}");

    assert!(outbox.try_recv().is_err(), "no event for a failed change");
}

#[tokio::test]
async fn changes_are_refused_while_the_outbox_is_full() {
    let (events, _outbox) = Events::new(NAME);
    let app = router(
        AppState::new(Config::default()).with_events(events.clone()),
        Readiness::new(),
    );
    let full: Vec<_> = (0..OUTBOX_CAPACITY)
        .map(|_| events.try_reserve().unwrap())
        .collect();

    let refused = execute(
        &app,
        "mutation { createItem(input: { name: \"Widget\", category: \"tools\" }) { id } }",
        json!({}),
    )
    .await;
    assert_eq!(refused["data"], Value::Null, "{refused}");
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "UNAVAILABLE",
        "{refused}"
    );
    let items = execute(&app, "{ items { nodes { id } } }", json!({})).await;
    assert_eq!(items["data"]["items"]["nodes"], json!([]), "{items}");

    drop(full);
    create(&app, "Widget", "tools").await;
}

{% endif %}
/// The next text message of `socket`, parsed as JSON.
async fn next_json<S>(socket: &mut S) -> Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let frame = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .unwrap();
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text).unwrap();
        }
    }
}
