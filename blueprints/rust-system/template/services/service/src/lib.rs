//! The `{{ service.name }}` service: a REST API for items under `/v1/items`, with
//! health probes, request ids and problem-details errors from `platform`.

mod items;
mod repository;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use platform::health::Readiness;

pub use items::{Item, ItemInput};
pub use repository::{InMemoryItems, ItemRepository, RepositoryError};

/// Name of this service, as used in routes, logs and configuration.
pub const NAME: &str = "{{ service.name }}";

/// Shared state of the handlers.
#[derive(Debug)]
pub struct AppState<R> {
    items: Arc<R>,
}

impl<R> AppState<R> {
    /// State backed by the given item repository.
    pub fn new(items: R) -> Self {
        Self {
            items: Arc::new(items),
        }
    }
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
        }
    }
}

/// The service's HTTP API: `/v1/items` plus the shared platform routes.
pub fn router<R: ItemRepository>(state: AppState<R>, readiness: Readiness) -> Router {
    let api = Router::new()
        .route("/v1/items", get(items::list::<R>).post(items::create::<R>))
        .route(
            "/v1/items/{id}",
            get(items::get::<R>)
                .put(items::update::<R>)
                .delete(items::delete::<R>),
        )
        .with_state(state);
    platform::http::app(NAME, api, readiness)
}
