//! The `{{ service.name }}` service: a REST API for items under `/v1/items` with cursor
//! pagination, filtering, sorting, idempotent creation and conditional reads, described
//! by an OpenAPI 3.1 document at `/openapi.json` and browsable at `/docs`. Health
//! probes, request ids and problem-details errors come from `platform`.

mod etag;
mod idempotency;
mod items;
mod openapi;
mod pagination;
mod repository;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use platform::health::Readiness;
{% if messaging.broker != 'none' %}
use platform::messaging::Events;
{% endif %}

pub use items::{Item, ItemInput};
pub use openapi::openapi;
pub use pagination::{Position, Sort, SortKey};
pub use repository::{Creation, InMemoryItems, ItemRepository, ListQuery, Page, RepositoryError};

/// Name of this service, as used in routes, logs and configuration.
pub const NAME: &str = "{{ service.name }}";

/// Shared state of the handlers.
#[derive(Debug)]
pub struct AppState<R> {
    items: Arc<R>,
{% if messaging.broker != 'none' %}
    events: Option<Events>,
{% endif %}
}

impl<R> AppState<R> {
    /// State backed by the given item repository{% if messaging.broker != 'none' %}, publishing no events (see
    /// [`AppState::with_events`]){% endif %}.
    pub fn new(items: R) -> Self {
        Self {
            items: Arc::new(items),
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
}

impl AppState<InMemoryItems> {
    /// State backed by a new, empty in-memory repository.
    pub fn in_memory() -> Self {
        Self::new(InMemoryItems::default())
    }
}

impl<R> Clone for AppState<R> {
    fn clone(&self) -> Self {
        Self {
            items: Arc::clone(&self.items),
{% if messaging.broker != 'none' %}
            events: self.events.clone(),
{% endif %}
        }
    }
}

/// The service's HTTP API: `/v1/items`, its OpenAPI document and docs page, plus the
/// shared platform routes.
pub fn router<R: ItemRepository>(state: AppState<R>, readiness: Readiness) -> Router {
    let api = Router::new()
        .route("/v1/items", get(items::list::<R>).post(items::create::<R>))
        .route(
            "/v1/items/{id}",
            get(items::get::<R>)
                .put(items::update::<R>)
                .delete(items::delete::<R>),
        )
        .with_state(state)
        .merge(openapi::routes());
    platform::http::app(NAME, api, readiness)
}
