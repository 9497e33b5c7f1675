//! The `{{ service.name }}` service: a server-sent event stream at `/v1/events` with keep-alive
//! comments and `Last-Event-ID` resumption from a bounded replay buffer, plus the
//! health probes, request ids and problem-details errors of `platform`.
{% assign consumed = "" %}
{% for s in services %}{% if s.protocol == "rest" or s.protocol == "graphql" or s.protocol == "grpc" %}{% assign consumed = consumed | append: "," | append: s.name %}{% endif %}{% endfor %}
{% assign consumed = consumed | remove_first: "," %}
{% if messaging.broker != 'none' and consumed != "" %}
//! The events of the system's other services join the stream (see [`forward_event`]).
{% endif %}

mod config;
mod event_log;
mod events;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use platform::health::Readiness;
{% if messaging.broker != 'none' and consumed != "" %}
use platform::messaging::{CloudEvent, HandlerError};
{% endif %}

pub use config::Config;
pub use event_log::{EventLog, Gap, StoredEvent, Subscription};
pub use events::{GAP_EVENT, LAST_EVENT_ID, MAX_EVENT_TYPE_CHARS, NewEvent, Published};

/// Name of this service, as used in routes, logs and configuration.
pub const NAME: &str = "{{ service.name }}";

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    events: Arc<EventLog>,
    config: Config,
}

impl AppState {
    /// State with an empty event log and the given settings.
    pub fn new(config: Config) -> Self {
        Self {
            events: Arc::new(EventLog::new(config.replay_capacity)),
            config,
        }
    }

    /// The log that `POST /v1/events` appends to and streams read from.
    pub fn events(&self) -> &EventLog {
        &self.events
    }
}

/// The service's HTTP API: `/v1/events` plus the shared platform routes.
pub fn router(state: AppState, readiness: Readiness) -> Router {
    let body_limit = DefaultBodyLimit::max(state.config.max_event_bytes);
    let api = Router::new()
        .route(
            "/v1/events",
            get(events::stream).post(events::publish).layer(body_limit),
        )
        .with_state(state);
    platform::http::app(NAME, api, readiness)
}
{% if messaging.broker != 'none' and consumed != "" %}

/// Appends `event`, an event of another service (see `docs/events.md`), to the event
/// log, so that it reaches the open streams and `Last-Event-ID` resumption replays it:
/// the SSE event type is the CloudEvent `type`, the data the CloudEvent JSON.
pub async fn forward_event(state: AppState, event: CloudEvent) -> Result<(), HandlerError> {
    let data = serde_json::to_string(&event)?;
    let stored = state.events.append(Some(event.event_type), data);
    tracing::debug!(id = stored.id, event_id = event.id, "event forwarded");
    Ok(())
}
{% endif %}
