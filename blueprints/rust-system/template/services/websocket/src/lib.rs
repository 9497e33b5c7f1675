//! The `{{ service.name }}` service: topic publish/subscribe over a WebSocket at `/v1/ws`,
//! with a connection registry, heartbeats, idle timeouts and message size limits, plus
//! the health probes and request ids of `platform`.

mod config;
mod connection;
mod hub;
mod protocol;

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use platform::health::Readiness;
use serde::Serialize;
use uuid::Uuid;

pub use config::Config;
pub use hub::{Hub, MAX_TOPICS_PER_CONNECTION, QUEUE_CAPACITY, TooManyTopics};
pub use protocol::{ClientMessage, InvalidTopic, MAX_TOPIC_BYTES, ServerMessage, Topic};

/// Name of this service, as used in routes, logs and configuration.
pub const NAME: &str = "{{ service.name }}";

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
