//! The OpenAPI 3.1 document of this service, generated from the handlers, served at
//! `/openapi.json` with an interactive reference at `/docs`.

use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa::openapi::InfoBuilder;

use crate::pagination::Sort;
use crate::{NAME, items};

#[derive(OpenApi)]
#[openapi(
    paths(items::list, items::create, items::get, items::update, items::delete),
    components(schemas(Sort)),
    tags((name = "items", description = "Create, read, list, replace and delete items")),
    security(()),
    servers(
{% if gateway.enabled %}
        (url = "/api/{{ service.name }}", description = "Through the API gateway"),
{% endif %}
        (url = "/", description = "The service itself"),
    ),
)]
struct ApiDoc;

/// What the API offers, in the document's `info`.
const DESCRIPTION: &str = "Items with cursor pagination, filtering and sorting, idempotent creation and \
    conditional reads.";

/// The OpenAPI document of this service's API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.info = InfoBuilder::new()
        .title(format!("{NAME} API"))
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(DESCRIPTION))
        .build();
    document
}

/// An interactive API reference (Scalar, from a CDN) for the document next to it.
const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>{{ service.name }} API</title>
  </head>
  <body>
    <div id="app"></div>
    <script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference@1.76.0"></script>
    <script>
      Scalar.createApiReference('#app', { url: 'openapi.json' });
    </script>
  </body>
</html>
"#;

/// `GET /openapi.json` and `GET /docs`.
pub(crate) fn routes() -> Router {
    let document = Json(openapi());
    Router::new()
        .route("/openapi.json", get(move || async move { document }))
        .route("/docs", get(|| async { Html(DOCS_PAGE) }))
}
