//! The `{{ service.name }}` service: a GraphQL API for items at `/graphql` (queries and
//! mutations over POST, GraphiQL in a browser) with subscriptions over WebSocket at
//! `/graphql/ws` (`graphql-transport-ws`), plus the health probes and request ids of
//! `platform`.

mod config;
mod repository;
mod schema;

use std::fmt;
use std::sync::Arc;

use async_graphql_axum::{GraphQL, GraphQLSubscription};
use axum::Router;
use axum::response::Html;
use axum::routing::get;
use platform::health::Readiness;
{% if messaging.broker != 'none' %}
use platform::messaging::Events;
{% endif %}

pub use config::Config;
pub use repository::{InMemoryItems, Item, ItemFields, ItemRepository, Page, RepositoryError};
pub use schema::{
    Category, CategoryLoader, ChangeKind, ItemChanged, ItemInput, ItemsSchema, Mutation, Query,
    Subscription, schema,
};

/// Name of this service, as used in routes, logs and configuration.
pub const NAME: &str = "{{ service.name }}";

/// Shared state of the handlers: the executable schema.
#[derive(Clone)]
pub struct AppState {
    schema: ItemsSchema,
{% if messaging.broker != 'none' %}
    items: Arc<dyn ItemRepository>,
    config: Config,
{% endif %}
}

impl AppState {
    /// State over a new, empty in-memory repository, with the given query limits.
    pub fn new(config: Config) -> Self {
        Self::with_repository(InMemoryItems::default(), config)
    }

{% if messaging.broker != 'none' %}
    /// State over the given item repository, with the given query limits, publishing
    /// no events (see [`AppState::with_events`]).
    pub fn with_repository(items: impl ItemRepository, config: Config) -> Self {
        let items: Arc<dyn ItemRepository> = Arc::new(items);
        Self {
            schema: schema(Arc::clone(&items), config),
            items,
            config,
        }
    }

    /// This state publishing an event for every change of an item
    /// (`<system>.{{ service.name }}.item.created|updated|deleted.v1`, see `docs/events.md`).
    #[must_use]
    pub fn with_events(self, events: Events) -> Self {
        Self {
            schema: schema::with_events(Arc::clone(&self.items), self.config, events),
            ..self
        }
    }
{% else %}
    /// State over the given item repository, with the given query limits.
    pub fn with_repository(items: impl ItemRepository, config: Config) -> Self {
        Self {
            schema: schema(Arc::new(items), config),
        }
    }
{% endif %}

    /// The executable schema.
    pub fn schema(&self) -> &ItemsSchema {
        &self.schema
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The service's HTTP API: `/graphql` and `/graphql/ws` plus the shared platform routes.
pub fn router(state: AppState, readiness: Readiness) -> Router {
    let api = Router::new()
        .route(
            "/graphql",
            get(graphiql).post_service(GraphQL::new(state.schema.clone())),
        )
        .route_service("/graphql/ws", GraphQLSubscription::new(state.schema));
    platform::http::app(NAME, api, readiness)
}

/// `GET /graphql`: the GraphiQL IDE, loaded from a CDN.
async fn graphiql() -> Html<&'static str> {
    Html(include_str!("graphiql.html"))
}
