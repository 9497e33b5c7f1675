//! The HTTP API of the service, called in process through its router.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use jiff::Timestamp;
use platform::health::Readiness;
{% if messaging.broker != 'none' %}
use platform::messaging::{CloudEvent, Events};
{% endif %}
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

use {{ service.name | snake_case }}::{AppState, InMemoryItems, router};

fn app() -> Router {
    router(AppState::in_memory(), Readiness::new())
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers[name].to_str().unwrap()
    }
}

async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
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

async fn call(app: &Router, method: Method, uri: &str, body: Option<Value>) -> Reply {
    let request = Request::builder().method(method).uri(uri);
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    };
    send(app, request.unwrap()).await
}

async fn create(app: &Router, name: &str) -> Value {
    let reply = call(
        app,
        Method::POST,
        "/v1/items",
        Some(json!({ "name": name })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    reply.body
}

async fn post_with_key(app: &Router, key: &str, body: Value) -> Reply {
    let request = Request::post("/v1/items")
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap();
    send(app, request).await
}

async fn get_if_none_match(app: &Router, uri: &str, etag: &str) -> Reply {
    let request = Request::get(uri)
        .header(header::IF_NONE_MATCH, etag)
        .body(Body::empty())
        .unwrap();
    send(app, request).await
}

/// Follows `next_cursor` from `first` to the last page, checking page sizes.
async fn walk(app: &Router, first: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut uri = first.to_owned();
    loop {
        let page = call(app, Method::GET, &uri, None).await;
        assert_eq!(page.status, StatusCode::OK, "{uri}: {}", page.body);
        let batch = page.body["items"].as_array().unwrap();
        assert!(batch.len() <= limit, "{uri}");
        items.extend(batch.iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(cursor) => {
                assert_eq!(batch.len(), limit, "only the last page may be short");
                uri = format!("{first}&cursor={cursor}");
            }
            None => return items,
        }
    }
}

fn names(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|item| item["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn crud_round_trip() {
    let app = app();

    let created = call(
        &app,
        Method::POST,
        "/v1/items",
        Some(json!({ "name": " Widget ", "description": "A widget" })),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.body["name"], "Widget");
    assert_eq!(created.body["created_at"], created.body["updated_at"]);
    let location = created.header("location").to_owned();
    assert_eq!(
        location,
        format!("/v1/items/{}", created.body["id"].as_str().unwrap())
    );

    let fetched = call(&app, Method::GET, &location, None).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body, created.body);
    assert_eq!(fetched.header("etag"), created.header("etag"));

    let listed = call(&app, Method::GET, "/v1/items", None).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(
        listed.body,
        json!({ "items": [created.body], "next_cursor": null })
    );

    let updated = call(
        &app,
        Method::PUT,
        &location,
        Some(json!({ "name": "Gadget" })),
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.body["name"], "Gadget");
    assert_eq!(updated.body["description"], "");
    assert_eq!(updated.body["created_at"], created.body["created_at"]);

    let deleted = call(&app, Method::DELETE, &location, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(deleted.body, Value::Null);

    let gone = call(&app, Method::GET, &location, None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.header("content-type"), "application/problem+json");
    assert_eq!(gone.body["status"], 404);
}

#[tokio::test]
async fn pages_walk_every_item_once_in_sort_order() {
    let app = app();
    let mut created = Vec::new();
    for name in ["b", "a", "c", "a", "d", "b", "e"] {
        created.push(create(&app, name).await);
    }
    let id = |item: &Value| item["id"].as_str().unwrap().parse::<Uuid>().unwrap();

    let mut by_name_descending = created.clone();
    by_name_descending
        .sort_by(|x, y| (y["name"].as_str(), id(y)).cmp(&(x["name"].as_str(), id(x))));
    assert_eq!(
        walk(&app, "/v1/items?sort=-name&limit=3", 3).await,
        by_name_descending
    );
    assert_eq!(
        names(&walk(&app, "/v1/items?sort=name&limit=2", 2).await),
        ["a", "a", "b", "b", "c", "d", "e"]
    );

    let mut oldest_first = created.clone();
    let created_at = |item: &Value| {
        item["created_at"]
            .as_str()
            .unwrap()
            .parse::<Timestamp>()
            .unwrap()
    };
    oldest_first.sort_by_key(|item| (created_at(item), id(item)));
    assert_eq!(walk(&app, "/v1/items?limit=7", 7).await, oldest_first);
    oldest_first.reverse();
    assert_eq!(
        walk(&app, "/v1/items?sort=-created_at&limit=4", 4).await,
        oldest_first
    );
}

#[tokio::test]
async fn pages_hold_twenty_items_unless_asked_otherwise() {
    let app = app();
    for i in 0..21 {
        create(&app, &format!("item {i}")).await;
    }
    let first = call(&app, Method::GET, "/v1/items", None).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 20);
    assert!(first.body["next_cursor"].is_string());

    let all = call(&app, Method::GET, "/v1/items?limit=100", None).await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 21);
    assert_eq!(all.body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn limits_out_of_range_are_bad_requests() {
    let app = app();
    for limit in ["0", "101", "-1", "ten"] {
        let reply = call(&app, Method::GET, &format!("/v1/items?limit={limit}"), None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "limit={limit}");
        assert_eq!(reply.header("content-type"), "application/problem+json");
    }
}

#[tokio::test]
async fn filters_by_exact_name_and_by_substring() {
    let app = app();
    for name in ["Red widget", "Blue widget", "Red gadget", "Red"] {
        create(&app, name).await;
    }

    let exact = call(&app, Method::GET, "/v1/items?name=Red", None).await;
    assert_eq!(names(exact.body["items"].as_array().unwrap()), ["Red"]);

    let contains = walk(&app, "/v1/items?q=WIDGET&sort=name&limit=1", 1).await;
    assert_eq!(names(&contains), ["Blue widget", "Red widget"]);

    let both = call(&app, Method::GET, "/v1/items?q=red&name=Red%20gadget", None).await;
    assert_eq!(
        names(both.body["items"].as_array().unwrap()),
        ["Red gadget"]
    );
}

#[tokio::test]
async fn bad_cursors_sorts_and_parameters_are_bad_requests() {
    let app = app();
    for name in ["a", "b", "c"] {
        create(&app, name).await;
    }
    let page = call(&app, Method::GET, "/v1/items?sort=name&limit=1", None).await;
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let mut tampered = cursor.to_owned();
    tampered.insert(4, '!');

    for uri in [
        format!("/v1/items?sort=-name&cursor={cursor}"),
        format!("/v1/items?cursor={cursor}"),
        format!("/v1/items?sort=name&cursor={tampered}"),
        format!("/v1/items?sort=name&cursor={}", &cursor[1..]),
        "/v1/items?cursor=bm90IGEgY3Vyc29y".to_owned(),
        "/v1/items?sort=size".to_owned(),
        "/v1/items?colour=red".to_owned(),
    ] {
        let reply = call(&app, Method::GET, &uri, None).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(reply.header("content-type"), "application/problem+json");
        assert_eq!(reply.body["status"], 400, "{uri}");
    }
}

#[tokio::test]
async fn a_repeated_idempotency_key_replays_the_first_response() {
    let app = app();
    let body = json!({ "name": "Widget" });

    let first = post_with_key(&app, "order-42", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(!first.headers.contains_key("idempotent-replayed"));

    let again = post_with_key(&app, "order-42", body).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("etag"), first.header("etag"));
    assert_eq!(again.header("idempotent-replayed"), "true");

    let other = post_with_key(&app, "order-43", json!({ "name": "Widget" })).await;
    assert_ne!(other.body["id"], first.body["id"]);

    let listed = call(&app, Method::GET, "/v1/items", None).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_idempotency_key_reused_with_another_body_is_unprocessable() {
    let app = app();
    post_with_key(&app, "k", json!({ "name": "Widget" })).await;

    let reused = post_with_key(&app, "k", json!({ "name": "Gadget" })).await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reused.header("content-type"), "application/problem+json");

    let listed = call(&app, Method::GET, "/v1/items", None).await;
    assert_eq!(names(listed.body["items"].as_array().unwrap()), ["Widget"]);
}

#[tokio::test]
async fn idempotency_keys_are_forgotten_after_their_time_to_live() {
    let items = InMemoryItems::new(100, Duration::ZERO);
    let app = router(AppState::new(items), Readiness::new());
    let first = post_with_key(&app, "k", json!({ "name": "Widget" })).await;
    let again = post_with_key(&app, "k", json!({ "name": "Widget" })).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_ne!(again.body["id"], first.body["id"]);
}

#[tokio::test]
async fn invalid_idempotency_keys_are_bad_requests() {
    let app = app();
    let too_long = "k".repeat(256);
    for key in ["", "with space", too_long.as_str()] {
        let reply = post_with_key(&app, key, json!({ "name": "Widget" })).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{key:?}");
    }
}

#[tokio::test]
async fn reads_answer_not_modified_while_the_etag_matches() {
    let app = app();
    let created = create(&app, "Widget").await;
    let uri = format!("/v1/items/{}", created["id"].as_str().unwrap());

    let read = call(&app, Method::GET, &uri, None).await;
    let etag = read.header("etag").to_owned();
    let unchanged = get_if_none_match(&app, &uri, &etag).await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    assert_eq!(unchanged.header("etag"), etag);
    assert_eq!(unchanged.body, Value::Null);

    let list_etag = call(&app, Method::GET, "/v1/items", None)
        .await
        .header("etag")
        .to_owned();
    let list_unchanged = get_if_none_match(&app, "/v1/items", &list_etag).await;
    assert_eq!(list_unchanged.status, StatusCode::NOT_MODIFIED);

    let replaced = call(&app, Method::PUT, &uri, Some(json!({ "name": "Gadget" }))).await;
    assert_ne!(replaced.header("etag"), etag);
    let changed = get_if_none_match(&app, &uri, &etag).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.body["name"], "Gadget");
    assert_eq!(changed.header("etag"), replaced.header("etag"));

    let list_changed = get_if_none_match(&app, "/v1/items", &list_etag).await;
    assert_eq!(list_changed.status, StatusCode::OK);
}

#[tokio::test]
async fn invalid_fields_are_unprocessable() {
    let reply = call(
        &app(),
        Method::POST,
        "/v1/items",
        Some(json!({ "name": "  ", "description": "x".repeat(1001) })),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply.body["errors"][0]["field"], "name");
    assert_eq!(reply.body["errors"][1]["field"], "description");
}

#[tokio::test]
async fn bodies_of_the_wrong_shape_are_unprocessable() {
    let app = app();
    for body in [
        json!({ "name": "Widget", "colour": "red" }),
        json!({ "description": "no name" }),
        json!({ "name": 42 }),
    ] {
        let reply = call(&app, Method::POST, "/v1/items", Some(body.clone())).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(reply.header("content-type"), "application/problem+json");
    }
}

#[tokio::test]
async fn malformed_json_is_a_bad_request() {
    let request = Request::post("/v1/items")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{"))
        .unwrap();
    let reply = send(&app(), request).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.header("content-type"), "application/problem+json");
}

#[tokio::test]
async fn bodies_that_are_not_json_are_unsupported() {
    let request = Request::post("/v1/items")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"name": "Widget"}"#))
        .unwrap();
    let reply = send(&app(), request).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(reply.header("content-type"), "application/problem+json");
}

#[tokio::test]
async fn invalid_id_is_a_bad_request() {
    let reply = call(&app(), Method::GET, "/v1/items/not-a-uuid", None).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["status"], 400);
}

#[tokio::test]
async fn missing_items_are_not_found() {
    let app = app();
    let uri = format!("/v1/items/{}", Uuid::new_v4());
    let replaced = call(&app, Method::PUT, &uri, Some(json!({ "name": "x" }))).await;
    assert_eq!(replaced.status, StatusCode::NOT_FOUND);
    let deleted = call(&app, Method::DELETE, &uri, None).await;
    assert_eq!(deleted.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn serves_health_probes() {
    for path in ["/healthz", "/readyz"] {
        let reply = call(&app(), Method::GET, path, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
    }
}
{% if messaging.broker != 'none' %}

/// An app whose item events land in the returned outbox.
fn app_with_events() -> (Router, tokio::sync::mpsc::Receiver<CloudEvent>) {
    let (events, outbox) = Events::new("{{ service.name }}");
    let state = AppState::in_memory().with_events(events);
    (router(state, Readiness::new()), outbox)
}

#[tokio::test]
async fn every_change_publishes_its_event_and_nothing_else_does() {
    let (app, mut outbox) = app_with_events();
    let created = create(&app, "first").await;
    let id = created["id"].as_str().unwrap();
    let uri = format!("/v1/items/{id}");
    call(&app, Method::GET, &uri, None).await;
    let replaced = call(&app, Method::PUT, &uri, Some(json!({ "name": "second" }))).await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(
        call(&app, Method::DELETE, &uri, None).await.status,
        StatusCode::NO_CONTENT
    );
    // Failed changes publish nothing.
    assert_eq!(
        call(&app, Method::DELETE, &uri, None).await.status,
        StatusCode::NOT_FOUND
    );
    let invalid = call(&app, Method::POST, "/v1/items", Some(json!({ "name": "" }))).await;
    assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);

    let mut events = Vec::new();
    while let Ok(event) = outbox.try_recv() {
        events.push(event);
    }
    let types: Vec<&str> = events
        .iter()
        .map(|event| event.event_type.as_str())
        .collect();
    let system = platform::SYSTEM.name;
    assert_eq!(
        types,
        [
            format!("{system}.{{ service.name }}.item.created.v1"),
            format!("{system}.{{ service.name }}.item.updated.v1"),
            format!("{system}.{{ service.name }}.item.deleted.v1"),
        ]
    );
    assert!(
        events
            .iter()
            .all(|event| event.subject.as_deref() == Some(id))
    );
    assert_eq!(events[0].data, created);
    assert_eq!(events[1].data["name"], "second");
    assert_eq!(events[2].data, json!({ "id": id }));
    assert_eq!(events[0].source, format!("/{system}/{{ service.name }}"));
}

#[tokio::test]
async fn a_replayed_create_publishes_no_second_event() {
    let (app, mut outbox) = app_with_events();
    let body = json!({ "name": "once" });
    assert_eq!(
        post_with_key(&app, "key-1", body.clone()).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        post_with_key(&app, "key-1", body)
            .await
            .header("idempotent-replayed"),
        "true"
    );
    assert!(outbox.try_recv().is_ok());
    assert!(outbox.try_recv().is_err());
}
{% endif %}
