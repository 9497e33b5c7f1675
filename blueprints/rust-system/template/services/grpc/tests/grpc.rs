//! The service on an ephemeral port, called by real gRPC clients over HTTP/2 cleartext
//! and by an HTTP/1.1 client for the probes.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use platform::health::Readiness;
{% if messaging.broker != 'none' %}
use platform::messaging::{Events, OUTBOX_CAPACITY};
use serde_json::json;
{% endif %}
use tokio::net::TcpListener;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_types::StatusExt;

{% if messaging.broker != 'none' %}
use {{ service.name | snake_case }}::NAME;
{% endif %}
use {{ service.name | snake_case }}::pb::item_service_client::ItemServiceClient;
use {{ service.name | snake_case }}::pb::item_service_server::SERVICE_NAME;
use {{ service.name | snake_case }}::pb::{
    ChangeType, CreateItemRequest, DeleteItemRequest, GetItemRequest, Item, ListItemsRequest,
    UpdateItemRequest, WatchItemsRequest,
};
use {{ service.name | snake_case }}::{AppState, InMemoryItems, MAX_PAGE_SIZE, router};

type Channel = Client<HttpConnector, tonic::body::Body>;

/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(10);

struct Running {
    state: AppState<InMemoryItems>,
    addr: SocketAddr,
    channel: Channel,
}

impl Running {
    fn origin(&self) -> axum::http::Uri {
        format!("http://{}", self.addr).parse().unwrap()
    }

    fn items(&self) -> ItemServiceClient<Channel> {
        ItemServiceClient::with_origin(self.channel.clone(), self.origin())
    }

    async fn create(&self, name: &str) -> Item {
        let request = CreateItemRequest {
            name: name.to_owned(),
        };
        let response = within(self.items().create_item(request)).await.unwrap();
        response.into_inner().item.unwrap()
    }
}

/// Serves the service on an ephemeral port, with an HTTP/2 client for it.
async fn start() -> Running {
{% if messaging.broker != 'none' %}
    serve(AppState::in_memory().await).await
}

/// Serves `state` on an ephemeral port, with an HTTP/2 client for it.
async fn serve(state: AppState<InMemoryItems>) -> Running {
{% else %}
    let state = AppState::in_memory().await;
{% endif %}
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(state.clone(), Readiness::new());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let channel = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(platform::client::connector());
    Running {
        state,
        addr,
        channel,
    }
}

async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(WAIT, future).await.expect("in time")
}

/// The fields named by the `google.rpc.BadRequest` details of `status`.
fn violated_fields(status: &tonic::Status) -> Vec<String> {
    let details = status.get_error_details();
    let bad_request = details.bad_request().expect("BadRequest details");
    bad_request
        .field_violations
        .iter()
        .map(|violation| violation.field.clone())
        .collect()
}

#[tokio::test]
async fn items_are_created_read_updated_and_deleted() {
    let service = start().await;
    let mut client = service.items();
    let created = service.create("Widget").await;
    assert_eq!(created.name, "Widget");
    assert_eq!(created.revision, 1);

    let get = GetItemRequest {
        id: created.id.clone(),
    };
    let fetched = client.get_item(get.clone()).await.unwrap().into_inner();
    assert_eq!(fetched.item.as_ref(), Some(&created));

    let update = UpdateItemRequest {
        id: created.id.clone(),
        name: "Gadget".to_owned(),
    };
    let updated = client.update_item(update).await.unwrap().into_inner();
    let updated = updated.item.unwrap();
    assert_eq!((updated.name.as_str(), updated.revision), ("Gadget", 2));

    let delete = DeleteItemRequest {
        id: created.id.clone(),
    };
    client.delete_item(delete.clone()).await.unwrap();

    let gone = client.get_item(get).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let details = gone.get_error_details();
    let resource = details.resource_info().expect("ResourceInfo details");
    assert_eq!(resource.resource_name, created.id);
    let again = client.delete_item(delete).await.unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
}

#[tokio::test]
async fn lists_page_by_page_with_tokens() {
    let service = start().await;
    let mut client = service.items();
    let mut created = Vec::new();
    for name in ["a", "b", "c"] {
        created.push(service.create(name).await);
    }

    let first = ListItemsRequest {
        page_size: 2,
        page_token: String::new(),
    };
    let first = client.list_items(first).await.unwrap().into_inner();
    assert_eq!(first.items, created[..2]);
    assert!(!first.next_page_token.is_empty());

    let second = ListItemsRequest {
        page_size: 2,
        page_token: first.next_page_token,
    };
    let second = client.list_items(second).await.unwrap().into_inner();
    assert_eq!(second.items, created[2..]);
    assert_eq!(second.next_page_token, "");
}

#[tokio::test]
async fn pages_are_at_most_the_largest_page_size() {
    let service = start().await;
    let mut client = service.items();
    for n in 0..=MAX_PAGE_SIZE {
        service.create(&format!("item {n}")).await;
    }
    let request = ListItemsRequest {
        page_size: i32::MAX,
        page_token: String::new(),
    };
    let page = client.list_items(request).await.unwrap().into_inner();
    assert_eq!(page.items.len(), MAX_PAGE_SIZE);
    assert!(!page.next_page_token.is_empty());
}

#[tokio::test]
async fn invalid_requests_name_every_invalid_field() {
    let service = start().await;
    let mut client = service.items();

    let blank = CreateItemRequest {
        name: " ".to_owned(),
    };
    let error = client.create_item(blank).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&error), ["name"]);

    let update = UpdateItemRequest {
        id: "not-a-uuid".to_owned(),
        name: "x".repeat(201),
    };
    let error = client.update_item(update).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&error), ["id", "name"]);

    let list = ListItemsRequest {
        page_size: -1,
        page_token: "garbage".to_owned(),
    };
    let error = client.list_items(list).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&error), ["page_size", "page_token"]);
}

#[tokio::test]
async fn names_are_unique() {
    let service = start().await;
    let mut client = service.items();
    let widget = service.create("Widget").await;
    service.create("Gadget").await;

    let duplicate = CreateItemRequest {
        name: "Widget".to_owned(),
    };
    let error = client.create_item(duplicate).await.unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists);
    let rename = UpdateItemRequest {
        id: widget.id,
        name: "Gadget".to_owned(),
    };
    let error = client.update_item(rename).await.unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists);
}

#[tokio::test]
async fn watchers_receive_every_change_until_shutdown() {
    let service = start().await;
    let mut client = service.items();
    let mut changes = within(client.watch_items(WatchItemsRequest {}))
        .await
        .unwrap()
        .into_inner();

    let item = service.create("Widget").await;
    let update = UpdateItemRequest {
        id: item.id.clone(),
        name: "Gadget".to_owned(),
    };
    client.update_item(update).await.unwrap();
    let delete = DeleteItemRequest {
        id: item.id.clone(),
    };
    client.delete_item(delete).await.unwrap();

    for (expected, name) in [
        (ChangeType::Created, "Widget"),
        (ChangeType::Updated, "Gadget"),
        (ChangeType::Deleted, "Gadget"),
    ] {
        let change = within(changes.message()).await.unwrap().unwrap();
        assert_eq!(change.change_type(), expected);
        let changed = change.item.unwrap();
        assert_eq!(
            (changed.id.as_str(), changed.name.as_str()),
            (item.id.as_str(), name)
        );
    }

    service.state.shut_down().await;
    let ended = within(changes.message()).await.unwrap_err();
    assert_eq!(ended.code(), Code::Unavailable);
}

#[tokio::test]
async fn health_reports_serving_until_shutdown() {
    let service = start().await;
    let mut health = HealthClient::with_origin(service.channel.clone(), service.origin());
    let check = |name: &str| HealthCheckRequest {
        service: name.to_owned(),
    };
    let item_service = "{{ service.name | snake_case }}.v1.ItemService";

    for name in ["", item_service] {
        let reply = within(health.check(check(name))).await.unwrap();
        assert_eq!(
            reply.into_inner().status(),
            ServingStatus::Serving,
            "{name:?}"
        );
    }

    service.state.shut_down().await;
    for name in ["", item_service] {
        let reply = within(health.check(check(name))).await.unwrap();
        assert_eq!(
            reply.into_inner().status(),
            ServingStatus::NotServing,
            "{name:?}"
        );
    }
}

#[tokio::test]
async fn reflection_lists_the_services() {
    let service = start().await;
    let mut reflection =
        ServerReflectionClient::with_origin(service.channel.clone(), service.origin());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies =
        within(reflection.server_reflection_info(futures_util::stream::iter([request])))
            .await
            .unwrap()
            .into_inner();
    let reply = within(replies.message()).await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("expected a service list, got {reply:?}");
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "{{ service.name | snake_case }}.v1.ItemService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
}

#[tokio::test]
async fn http_probes_share_the_grpc_port() {
    let service = start().await;
    let client = platform::client::http_client();
    for probe in ["/healthz", "/readyz"] {
        let request = Request::get(format!("http://{}{probe}", service.addr))
            .body(Body::empty())
            .unwrap();
        let response = within(client.request(request)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{probe}");
    }
}

#[tokio::test]
async fn metrics_count_each_rpc_by_its_status_code() {
    let service = start().await;
    let mut client = service.items();
    let created = service.create("Widget").await;
    let get = GetItemRequest { id: created.id };
    client.get_item(get.clone()).await.unwrap();
    let delete = DeleteItemRequest { id: get.id.clone() };
    client.delete_item(delete).await.unwrap();
    let gone = client.get_item(get).await.unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let invalid = GetItemRequest { id: "?".to_owned() };
    let invalid = client.get_item(invalid).await.unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);

    let request = Request::get(format!("http://{}/metrics", service.addr))
        .body(Body::empty())
        .unwrap();
    let response = within(platform::client::http_client().request(request))
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(body.to_vec()).unwrap();
    for (method, code) in [
        ("CreateItem", "OK"),
        ("GetItem", "OK"),
        ("DeleteItem", "OK"),
        ("GetItem", "NOT_FOUND"),
        ("GetItem", "INVALID_ARGUMENT"),
    ] {
        let labels =
            format!(r#"grpc_service="{SERVICE_NAME}",grpc_method="{method}",grpc_code="{code}""#);
        let expected = ["grpc_server_handled_total{", &labels, "} 1"].concat();
        assert!(text.contains(&expected), "{expected} missing in:\n{text}");
    }
    let labels = format!(r#"grpc_service="{SERVICE_NAME}",grpc_method="GetItem""#);
    let timed = ["grpc_server_handling_seconds_count{", &labels, "} 3"].concat();
    assert!(text.contains(&timed), "{timed} missing in:\n{text}");
}
{% if messaging.broker != 'none' %}

#[tokio::test]
async fn every_change_is_published_as_an_event() {
    let (events, mut outbox) = Events::new(NAME);
    let service = serve(AppState::in_memory().await.with_events(events)).await;
    let mut client = service.items();
    let event_type = |action: &str| format!("{}.{NAME}.item.{action}.v1", platform::SYSTEM.name);

    let created = service.create("Widget").await;
    let event = outbox.try_recv().expect("an event for the creation");
    assert_eq!(event.event_type, event_type("created"));
    assert_eq!(event.subject.as_deref(), Some(created.id.as_str()));
    assert_eq!(
        event.data,
        json!({ "id": created.id, "name": "Widget", "revision": 1 })
    );

    let update = UpdateItemRequest {
        id: created.id.clone(),
        name: "Gadget".to_owned(),
    };
    client.update_item(update).await.unwrap();
    let event = outbox.try_recv().expect("an event for the update");
    assert_eq!(event.event_type, event_type("updated"));
    assert_eq!(event.subject.as_deref(), Some(created.id.as_str()));
    assert_eq!(
        event.data,
        json!({ "id": created.id, "name": "Gadget", "revision": 2 })
    );

    let delete = DeleteItemRequest {
        id: created.id.clone(),
    };
    client.delete_item(delete).await.unwrap();
    let event = outbox.try_recv().expect("an event for the deletion");
    assert_eq!(event.event_type, event_type("deleted"));
    assert_eq!(event.subject.as_deref(), Some(created.id.as_str()));
    assert_eq!(event.data, json!({ "id": created.id }));
    assert!(outbox.try_recv().is_err(), "one event per change");
}

#[tokio::test]
async fn failed_changes_publish_no_event() {
    let (events, mut outbox) = Events::new(NAME);
    let service = serve(AppState::in_memory().await.with_events(events)).await;
    let mut client = service.items();
    service.create("Widget").await;
    outbox.try_recv().expect("an event for the creation");
    let missing = "00000000-0000-0000-0000-000000000000".to_owned();

    let taken = CreateItemRequest {
        name: "Widget".to_owned(),
    };
    let error = client.create_item(taken).await.unwrap_err();
    assert_eq!(error.code(), Code::AlreadyExists);
    let blank = CreateItemRequest {
        name: " ".to_owned(),
    };
    let error = client.create_item(blank).await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let update = UpdateItemRequest {
        id: missing.clone(),
        name: "Gadget".to_owned(),
    };
    let error = client.update_item(update).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let delete = DeleteItemRequest { id: missing };
    let error = client.delete_item(delete).await.unwrap_err();
    assert_eq!(error.code(), Code::NotFound);

    assert!(outbox.try_recv().is_err(), "no event for a failed change");
}

#[tokio::test]
async fn changes_are_refused_while_the_outbox_is_full() {
    let (events, _outbox) = Events::new(NAME);
    let service = serve(AppState::in_memory().await.with_events(events.clone())).await;
    let mut client = service.items();
    let full: Vec<_> = (0..OUTBOX_CAPACITY)
        .map(|_| events.try_reserve().unwrap())
        .collect();

    let create = CreateItemRequest {
        name: "Widget".to_owned(),
    };
    let error = client.create_item(create).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    let list = ListItemsRequest {
        page_size: 0,
        page_token: String::new(),
    };
    let page = client.list_items(list).await.unwrap().into_inner();
    assert!(page.items.is_empty(), "the refused change was not made");

    drop(full);
    service.create("Widget").await;
}
{% endif %}
