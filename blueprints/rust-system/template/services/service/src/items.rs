//! The `/v1/items` resource: model, validation and handlers.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use platform::extract::{Json, Path};
use platform::problem::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::repository::{ItemRepository, RepositoryError};

const MAX_NAME_CHARS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 1000;

/// A stored item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Identifier assigned on creation.
    pub id: Uuid,
    /// Display name, 1 to 100 characters.
    pub name: String,
    /// Free-form description, up to 1000 characters.
    pub description: String,
}

impl Item {
    /// The item `id` with the fields of `input`.
    pub fn new(id: Uuid, input: ItemInput) -> Self {
        Self {
            id,
            name: input.name,
            description: input.description,
        }
    }
}

/// The fields a client sends to create or replace an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    /// Display name, 1 to 100 characters.
    pub name: String,
    /// Free-form description, up to 1000 characters.
    #[serde(default)]
    pub description: String,
}

impl ItemInput {
    /// Trims the name and checks every field, reporting all invalid fields at once.
    fn validate(mut self) -> Result<Self, Problem> {
        self.name = self.name.trim().to_owned();
        let mut errors = Vec::new();
        if self.name.is_empty() {
            errors.push(FieldError::new("name", "must not be empty"));
        } else if self.name.chars().count() > MAX_NAME_CHARS {
            errors.push(FieldError::new(
                "name",
                format!("must be at most {MAX_NAME_CHARS} characters"),
            ));
        }
        if self.description.chars().count() > MAX_DESCRIPTION_CHARS {
            errors.push(FieldError::new(
                "description",
                format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
            ));
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(Problem::validation(errors))
        }
    }
}

/// A page of items.
#[derive(Debug, Serialize)]
pub(crate) struct ItemList {
    items: Vec<Item>,
}

impl From<RepositoryError> for Problem {
    fn from(error: RepositoryError) -> Self {
        tracing::error!(%error, "item repository failed");
        Problem::internal()
    }
}

fn item_not_found(id: Uuid) -> Problem {
    Problem::not_found(format!("no item with id {id}"))
}

pub(crate) async fn list<R: ItemRepository>(
    State(state): State<AppState<R>>,
) -> Result<axum::Json<ItemList>, Problem> {
    let items = state.items.list().await?;
    Ok(axum::Json(ItemList { items }))
}

pub(crate) async fn create<R: ItemRepository>(
    State(state): State<AppState<R>>,
    Json(input): Json<ItemInput>,
) -> Result<impl IntoResponse, Problem> {
    let item = state.items.create(input.validate()?).await?;
    let location = format!("/v1/items/{}", item.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(item),
    ))
}

pub(crate) async fn get<R: ItemRepository>(
    State(state): State<AppState<R>>,
    Path(id): Path<Uuid>,
) -> Result<axum::Json<Item>, Problem> {
    let item = state
        .items
        .get(id)
        .await?
        .ok_or_else(|| item_not_found(id))?;
    Ok(axum::Json(item))
}

pub(crate) async fn update<R: ItemRepository>(
    State(state): State<AppState<R>>,
    Path(id): Path<Uuid>,
    Json(input): Json<ItemInput>,
) -> Result<axum::Json<Item>, Problem> {
    let item = state
        .items
        .update(id, input.validate()?)
        .await?
        .ok_or_else(|| item_not_found(id))?;
    Ok(axum::Json(item))
}

pub(crate) async fn delete<R: ItemRepository>(
    State(state): State<AppState<R>>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, Problem> {
    if state.items.delete(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(item_not_found(id))
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Method, Request};
    use http_body_util::BodyExt;
    use platform::health::Readiness;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;
    use crate::router;

    fn app() -> Router {
        router(AppState::in_memory(), Readiness::new())
    }

    async fn call(
        app: &Router,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> (StatusCode, header::HeaderMap, Value) {
        let request = Request::builder().method(method).uri(uri);
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (parts.status, parts.headers, json)
    }

    #[tokio::test]
    async fn crud_round_trip() {
        let app = app();

        let (status, headers, created) = call(
            &app,
            Method::POST,
            "/v1/items",
            Some(json!({ "name": " Widget ", "description": "A widget" })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(created["name"], "Widget");
        let location = headers[header::LOCATION].to_str().unwrap().to_owned();
        assert_eq!(
            location,
            format!("/v1/items/{}", created["id"].as_str().unwrap())
        );

        let (status, _, fetched) = call(&app, Method::GET, &location, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(fetched, created);

        let (status, _, listed) = call(&app, Method::GET, "/v1/items", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(listed["items"], json!([created]));

        let (status, _, updated) = call(
            &app,
            Method::PUT,
            &location,
            Some(json!({ "name": "Gadget" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(updated["name"], "Gadget");
        assert_eq!(updated["description"], "");

        let (status, _, body) = call(&app, Method::DELETE, &location, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(body, Value::Null);

        let (status, headers, problem) = call(&app, Method::GET, &location, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        assert_eq!(problem["status"], 404);
    }

    #[tokio::test]
    async fn invalid_fields_are_unprocessable() {
        let (status, _, problem) = call(
            &app(),
            Method::POST,
            "/v1/items",
            Some(json!({ "name": "  ", "description": "x".repeat(1001) })),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(problem["errors"][0]["field"], "name");
        assert_eq!(problem["errors"][1]["field"], "description");
    }

    #[tokio::test]
    async fn malformed_json_is_a_bad_request() {
        let request = Request::post("/v1/items")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{"))
            .unwrap();
        let response = app().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
    }

    #[tokio::test]
    async fn unknown_fields_are_unprocessable() {
        let (status, _, _) = call(
            &app(),
            Method::POST,
            "/v1/items",
            Some(json!({ "name": "Widget", "colour": "red" })),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }

    #[tokio::test]
    async fn invalid_id_is_a_bad_request() {
        let (status, _, problem) = call(&app(), Method::GET, "/v1/items/not-a-uuid", None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(problem["status"], 400);
    }

    #[tokio::test]
    async fn missing_items_are_not_found() {
        let uri = format!("/v1/items/{}", Uuid::new_v4());
        let (status, _, _) = call(&app(), Method::PUT, &uri, Some(json!({ "name": "x" }))).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _, _) = call(&app(), Method::DELETE, &uri, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn serves_health_probes() {
        for path in ["/healthz", "/readyz"] {
            let (status, _, _) = call(&app(), Method::GET, path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}");
        }
    }
}
