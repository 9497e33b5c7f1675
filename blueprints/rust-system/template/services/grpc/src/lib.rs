//! The `{{ service.name }}` service: items over gRPC, with unary calls and a server
//! stream of changes, `grpc.health.v1` health checking and server reflection, on the
//! same port as the health probes and request ids of `platform`.

mod items;
mod repository;

use std::sync::Arc;

use axum::Router;
use platform::health::Readiness;
{% if messaging.broker != 'none' %}
use platform::messaging::Events;
{% endif %}
use tokio::sync::{broadcast, watch};
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

pub use items::{DEFAULT_PAGE_SIZE, MAX_NAME_CHARS, MAX_PAGE_SIZE};
pub use repository::{InMemoryItems, Item, ItemRepository, Page, RepositoryError};

/// The messages, client and server generated from the service's protos.
pub mod pb {
    #![allow(clippy::all)]

    tonic::include_proto!("{{ service.name | snake_case }}.v1");
}

/// Encoded file descriptor set of the service's protos, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/file_descriptor_set.bin"));

/// Name of this service, as used in routes, logs and configuration.
pub const NAME: &str = "{{ service.name }}";

/// How many changes a slow watcher may fall behind before its stream is aborted.
pub const WATCH_BACKLOG: usize = 256;

/// Shared state of the gRPC services.
#[derive(Debug)]
pub struct AppState<R> {
    shared: Arc<Shared<R>>,
{% if messaging.broker != 'none' %}
    events: Option<Events>,
{% endif %}
}

#[derive(Debug)]
struct Shared<R> {
    items: R,
    changes: broadcast::Sender<pb::WatchItemsResponse>,
    closing: watch::Sender<bool>,
    health: HealthReporter,
}

impl<R> AppState<R> {
    /// State backed by the given item repository, reporting the item service as serving{% if messaging.broker != 'none' %}
    /// and publishing no events (see [`AppState::with_events`]){% endif %}.
    pub async fn new(items: R) -> Self {
        let health = HealthReporter::new();
        health
            .set_service_status(
                pb::item_service_server::SERVICE_NAME,
                ServingStatus::Serving,
            )
            .await;
        Self {
            shared: Arc::new(Shared {
                items,
                changes: broadcast::channel(WATCH_BACKLOG).0,
                closing: watch::channel(false).0,
                health,
            }),
{% if messaging.broker != 'none' %}
            events: None,
{% endif %}
        }
    }
{% if messaging.broker != 'none' %}

    /// This state publishing an event for every change of an item
    /// (`<system>.{{ service.name }}.item.created|updated|deleted.v1`, see `docs/events.md`).
    #[must_use]
    pub fn with_events(mut self, events: Events) -> Self {
        self.events = Some(events);
        self
    }
{% endif %}

    /// Begins shutdown: health checks report `NOT_SERVING` and every open watch stream
    /// ends with `UNAVAILABLE`, so that in-flight calls can drain.
    pub async fn shut_down(&self) {
        for service in ["", pb::item_service_server::SERVICE_NAME] {
            self.shared
                .health
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
        self.shared.closing.send_replace(true);
    }
}

impl AppState<InMemoryItems> {
    /// State backed by a new, empty in-memory repository.
    pub async fn in_memory() -> Self {
        Self::new(InMemoryItems::default()).await
    }
}

impl<R> Clone for AppState<R> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
{% if messaging.broker != 'none' %}
            events: self.events.clone(),
{% endif %}
        }
    }
}

/// The service's API on one port: the gRPC item service, `grpc.health.v1.Health` and
/// server reflection (HTTP/2), plus the shared platform routes (`/healthz`, `/readyz`).
pub fn router<R: ItemRepository>(state: AppState<R>, readiness: Readiness) -> Router {
    let health = HealthService::from_health_reporter(state.shared.health.clone());
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the file descriptor sets compiled into the binary are valid");
    let grpc = Routes::new(items::server(state))
        .add_service(HealthServer::new(health))
        .add_service(reflection)
        .into_axum_router();
    platform::http::app(NAME, grpc, readiness)
}
