//! The `/v1/items` resource: model, validation and handlers.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use platform::extract::{Json, Path, Query};
{% if messaging.broker != 'none' %}
use platform::messaging::{EventSlot, Events};
{% endif %}
use platform::problem::{FieldError, Problem};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::etag::Tagged;
use crate::pagination::{Sort, decode_cursor, encode_cursor};
use crate::repository::{Creation, ItemRepository, ListQuery, RepositoryError};

const MAX_NAME_CHARS: usize = 100;
const MAX_DESCRIPTION_CHARS: usize = 1000;

/// Items per page when the request does not say.
const DEFAULT_LIMIT: u32 = 20;
/// The largest page a request may ask for.
const MAX_LIMIT: u32 = 100;

/// Request header that makes a create safe to retry.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Response header set to `true` when a create is answered from an earlier request.
const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

/// A stored item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Item {
    /// Identifier assigned on creation.
    pub id: Uuid,
    /// Display name, 1 to 100 characters.
    pub name: String,
    /// Free-form description, up to 1000 characters.
    pub description: String,
    /// When the item was created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When the item was last replaced.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl Item {
    /// The item `id` with the fields of `input`, created at `now`.
    pub fn new(id: Uuid, input: ItemInput, now: Timestamp) -> Self {
        Self {
            id,
            name: input.name,
            description: input.description,
            created_at: now,
            updated_at: now,
        }
    }

    /// Replaces the fields of this item with `input` at `now`.
    pub fn replace(&mut self, input: ItemInput, now: Timestamp) {
        self.name = input.name;
        self.description = input.description;
        self.updated_at = now;
    }
}

/// The fields a client sends to create or replace an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemInput {
    /// Display name, 1 to 100 characters after trimming spaces.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// Free-form description, up to 1000 characters.
    #[serde(default)]
    #[schema(max_length = 1000)]
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

/// Query parameters of a listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Items per page, 1 to 100.
    #[param(minimum = 1, maximum = 100, default = json!(20))]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page, to get the page after it.
    cursor: Option<String>,
    /// Sort order; a leading `-` sorts descending. Ties are broken by id.
    sort: Option<Sort>,
    /// Only items with exactly this name.
    name: Option<String>,
    /// Only items whose name contains this text, ignoring case.
    q: Option<String>,
}

/// A page of items.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ItemPage {
    /// The items, in the order asked for.
    items: Vec<Item>,
    /// Cursor for the next page; `null` on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
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

/// The `Idempotency-Key` of a request, if it has one.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|key| {
            (1..=MAX_IDEMPOTENCY_KEY_CHARS).contains(&key.len())
                && key.bytes().all(|byte| byte.is_ascii_graphic())
        })
        .map(|key| Some(key.to_owned()))
        .ok_or_else(|| {
            Problem::bad_request(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} visible ASCII characters"
            ))
        })
}

/// List items
///
/// Returns one page of items, filtered and sorted as asked. Follow `next_cursor` with
/// the same `sort` to get the next page.
#[utoipa::path(
    get,
    path = "/v1/items",
    operation_id = "listItems",
    tag = "items",
    params(
        ListParams,
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of this page seen before"),
    ),
    responses(
        (status = 200, description = "A page of items", body = ItemPage,
            headers(("ETag" = String, description = "Entity tag of this page"))),
        (status = 304, description = "The page still has the `ETag` sent in `If-None-Match`",
            headers(("ETag" = String, description = "Entity tag of this page"))),
        (status = 400, description = "An invalid query parameter or cursor", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn list<R: ItemRepository>(
    State(state): State<AppState<R>>,
    Query(params): Query<ListParams>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::bad_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let sort = params.sort.unwrap_or_default();
    let after = params
        .cursor
        .map(|cursor| decode_cursor(&cursor, sort))
        .transpose()?;
    let query = ListQuery {
        name: params.name,
        name_contains: params.q,
        sort,
        after,
        limit: limit as usize,
    };
    let page = state.items.list(&query).await?;
    let next_cursor = page
        .items
        .last()
        .filter(|_| page.has_more)
        .map(|last| encode_cursor(sort, sort.position(last)));
    let page = ItemPage {
        items: page.items,
        next_cursor,
    };
    Ok(Tagged::json(&page)?.read_response(&headers))
}

/// Create an item
///
/// With an `Idempotency-Key`, retrying the same request returns the first response
/// instead of creating the item again.
#[utoipa::path(
    post,
    path = "/v1/items",
    operation_id = "createItem",
    tag = "items",
    params(
        ("Idempotency-Key" = Option<String>, Header,
            description = "A unique key for this request, 1 to 255 visible ASCII characters; \
                a retry with the same key and body gets the first response again"),
    ),
    request_body = ItemInput,
    responses(
        (status = 201, description = "The item was created, or an earlier identical request did", body = Item,
            headers(
                ("Location" = String, description = "Path of the item"),
                ("ETag" = String, description = "Entity tag of the item"),
                ("Idempotent-Replayed" = bool, description = "`true` when this is the response to an earlier request"),
            )),
        (status = 400, description = "Malformed JSON or `Idempotency-Key`", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "The body is not declared as `application/json`",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or an `Idempotency-Key` used before with another body",
            body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn create<R: ItemRepository>(
    State(state): State<AppState<R>>,
    headers: HeaderMap,
    Json(input): Json<ItemInput>,
) -> Result<Response, Problem> {
    let key = idempotency_key(&headers)?;
{% if messaging.broker != 'none' %}
    let event = reserve_event(&state)?;
{% endif %}
    let (item, replayed) = match state.items.create(input.validate()?, key).await? {
{% if messaging.broker != 'none' %}
        Creation::Created(item) => {
            publish(event, "item.created", &item)?;
            (item, false)
        }
{% else %}
        Creation::Created(item) => (item, false),
{% endif %}
        Creation::Replayed(item) => (item, true),
        Creation::KeyReused => {
            return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY)
                .with_detail("this Idempotency-Key was already used with a different request"));
        }
    };
    let location = [(header::LOCATION, format!("/v1/items/{}", item.id))];
    let mut response = (
        location,
        Tagged::json(&item)?.with_status(StatusCode::CREATED),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Read an item
#[utoipa::path(
    get,
    path = "/v1/items/{id}",
    operation_id = "getItem",
    tag = "items",
    params(
        ("id" = Uuid, Path, description = "Id of the item"),
        ("If-None-Match" = Option<String>, Header, description = "An `ETag` of this item seen before"),
    ),
    responses(
        (status = 200, description = "The item", body = Item,
            headers(("ETag" = String, description = "Entity tag of the item"))),
        (status = 304, description = "The item still has the `ETag` sent in `If-None-Match`",
            headers(("ETag" = String, description = "Entity tag of the item"))),
        (status = 400, description = "The id is not a UUID", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No item has this id", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn get<R: ItemRepository>(
    State(state): State<AppState<R>>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let item = state
        .items
        .get(id)
        .await?
        .ok_or_else(|| item_not_found(id))?;
    Ok(Tagged::json(&item)?.read_response(&headers))
}

/// Replace an item
#[utoipa::path(
    put,
    path = "/v1/items/{id}",
    operation_id = "replaceItem",
    tag = "items",
    params(("id" = Uuid, Path, description = "Id of the item")),
    request_body = ItemInput,
    responses(
        (status = 200, description = "The item as replaced", body = Item,
            headers(("ETag" = String, description = "Entity tag of the item"))),
        (status = 400, description = "Malformed JSON, or the id is not a UUID", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No item has this id", body = Problem,
            content_type = "application/problem+json"),
        (status = 415, description = "The body is not declared as `application/json`",
            body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn update<R: ItemRepository>(
    State(state): State<AppState<R>>,
    Path(id): Path<Uuid>,
    Json(input): Json<ItemInput>,
) -> Result<Response, Problem> {
{% if messaging.broker != 'none' %}
    let event = reserve_event(&state)?;
{% endif %}
    let item = state
        .items
        .update(id, input.validate()?)
        .await?
        .ok_or_else(|| item_not_found(id))?;
{% if messaging.broker != 'none' %}
    publish(event, "item.updated", &item)?;
{% endif %}
    Ok(Tagged::json(&item)?.with_status(StatusCode::OK))
}

/// Delete an item
#[utoipa::path(
    delete,
    path = "/v1/items/{id}",
    operation_id = "deleteItem",
    tag = "items",
    params(("id" = Uuid, Path, description = "Id of the item")),
    responses(
        (status = 204, description = "The item was deleted"),
        (status = 400, description = "The id is not a UUID", body = Problem,
            content_type = "application/problem+json"),
        (status = 404, description = "No item has this id", body = Problem,
            content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn delete<R: ItemRepository>(
    State(state): State<AppState<R>>,
    Path(id): Path<Uuid>,
) -> Result<StatusCode, Problem> {
{% if messaging.broker != 'none' %}
    let event = reserve_event(&state)?;
    if state.items.delete(id).await? {
        publish(event, "item.deleted", &serde_json::json!({ "id": id }))?;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(item_not_found(id))
    }
{% else %}
    if state.items.delete(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(item_not_found(id))
    }
{% endif %}
}
{% if messaging.broker != 'none' %}

/// A place in the outbox for the event of a change, taken before the change: when the
/// outbox is full (the broker has been down for a while) the change is refused with a
/// 503 rather than made without its event.
fn reserve_event<R>(state: &AppState<R>) -> Result<Option<EventSlot<'_>>, Problem> {
    Ok(state.events.as_ref().map(Events::try_reserve).transpose()?)
}

/// Puts the event `kind` about the item in `data` into the reserved place.
fn publish(event: Option<EventSlot<'_>>, kind: &str, data: &impl Serialize) -> Result<(), Problem> {
    if let Some(event) = event {
        let data = serde_json::to_value(data).map_err(|_| Problem::internal())?;
        let subject = data["id"].as_str().unwrap_or_default().to_owned();
        event.send(kind, &subject, data);
    }
    Ok(())
}
{% endif %}
