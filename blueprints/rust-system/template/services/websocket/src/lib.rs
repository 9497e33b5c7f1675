//! The `{{ service.name }}` service: topic publish/subscribe over a WebSocket at `/v1/ws`,
//! with a connection registry, heartbeats, idle timeouts and message size limits, plus
//! the health probes and request ids of `platform`.
{% assign consumed = "" %}
{% for s in services %}{% if s.protocol == "rest" or s.protocol == "graphql" or s.protocol == "grpc" %}{% assign consumed = consumed | append: "," | append: s.name %}{% endif %}{% endfor %}
{% if messaging.broker != 'none' and consumed != "" %}
//! The events of the system's other services reach the clients that subscribe to the
//! topic [`EVENTS_TOPIC`] (see [`forward_event`]).
{% endif %}

mod config;
mod connection;
mod hub;
mod protocol;

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use platform::health::Readiness;
{% if messaging.broker != 'none' and consumed != "" %}
use platform::messaging::{CloudEvent, HandlerError};
{% endif %}
use serde::Serialize;
use uuid::Uuid;

pub use config::Config;
pub use hub::{Hub, MAX_TOPICS_PER_CONNECTION, QUEUE_CAPACITY, TooManyTopics};
pub use protocol::{ClientMessage, InvalidTopic, MAX_TOPIC_BYTES, ServerMessage, Topic};

/// Name of this service, as used in routes, logs and configuration.
pub const NAME: &str = "{{ service.name }}";
{% if messaging.broker != 'none' and consumed != "" %}

/// Topic on which the events of the system's other services are broadcast.
pub const EVENTS_TOPIC: &str = "events";
{% endif %}

/// Shared state of the handlers and connections.
#[derive(Debug, Clone)]
pub struct AppState {
    hub: Arc<Hub>,
    config: Config,
}

impl AppState {
    /// State with an empty hub and the given settings.
    pub fn new(config: Config) -> Self {
        Self {
            hub: Arc::new(Hub::new()),
            config,
        }
    }

    /// The registry of connections and subscriptions.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }
}

/// The service's HTTP API: `/v1/ws` and `/v1/connections` plus the shared platform routes.
pub fn router(state: AppState, readiness: Readiness) -> Router {
    let api = Router::new()
        .route("/v1/ws", get(connection::upgrade))
        .route("/v1/connections", get(connections))
        .with_state(state);
    platform::http::app(NAME, api, readiness)
}

/// The open connections.
#[derive(Debug, Serialize)]
struct Connections {
    count: usize,
    ids: Vec<Uuid>,
}

/// `GET /v1/connections`: how many connections are open, and their ids.
async fn connections(State(state): State<AppState>) -> Json<Connections> {
    let ids = state.hub.connections();
    Json(Connections {
        count: ids.len(),
        ids,
    })
}
{% if messaging.broker != 'none' and consumed != "" %}

/// Broadcasts `event`, an event of another service (see `docs/events.md`), to the
/// clients subscribed to [`EVENTS_TOPIC`], as a `message` whose `data` is the
/// CloudEvent JSON. Clients not connected at that moment miss it, as with any
/// message of the topic.
pub async fn forward_event(state: AppState, event: CloudEvent) -> Result<(), HandlerError> {
    let topic = Topic::try_from(EVENTS_TOPIC.to_owned())?;
    let recipients = state.hub.publish(&topic, serde_json::to_value(&event)?);
    tracing::debug!(
        event_type = event.event_type,
        event_id = event.id,
        recipients,
        "event forwarded"
    );
    Ok(())
}
{% endif %}
