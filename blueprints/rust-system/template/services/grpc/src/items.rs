//! The `ItemService` gRPC service: validation, error statuses with details, paging and
//! the stream of changes.

use std::pin::Pin;

use futures_util::Stream;
{% if messaging.broker != 'none' %}
use platform::messaging::{EventSlot, Events, MessagingError};
{% endif %}
use tokio::sync::broadcast::error::RecvError;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};
use uuid::Uuid;

use crate::pb::item_service_server::{ItemService, ItemServiceServer};
use crate::pb::{
    ChangeType, CreateItemRequest, CreateItemResponse, DeleteItemRequest, DeleteItemResponse,
    GetItemRequest, GetItemResponse, ListItemsRequest, ListItemsResponse, UpdateItemRequest,
    UpdateItemResponse, WatchItemsRequest, WatchItemsResponse,
};
use crate::repository::{Item, ItemRepository, RepositoryError};
use crate::{AppState, pb};

/// Longest item name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Page size when the request asks for none.
pub const DEFAULT_PAGE_SIZE: usize = 50;

/// Largest page size; larger requests get pages of this size.
pub const MAX_PAGE_SIZE: usize = 100;

/// The gRPC server of the item service over `state`.
pub(crate) fn server<R: ItemRepository>(state: AppState<R>) -> ItemServiceServer<Items<R>> {
    ItemServiceServer::new(Items { state })
}

/// Implements `ItemService` over the shared state.
#[derive(Debug)]
pub(crate) struct Items<R> {
    state: AppState<R>,
}

type ChangeStream = Pin<Box<dyn Stream<Item = Result<WatchItemsResponse, Status>> + Send>>;

#[tonic::async_trait]
impl<R: ItemRepository> ItemService for Items<R> {
    async fn create_item(
        &self,
        request: Request<CreateItemRequest>,
    ) -> Result<Response<CreateItemResponse>, Status> {
        let CreateItemRequest { name } = request.into_inner();
        let mut violations = Violations::default();
        violations.name(&name);
        violations.check()?;
{% if messaging.broker != 'none' %}
        let event = self.reserve_event()?;
{% endif %}
        let item = self.repository().create(name).await.map_err(status)?;
{% if messaging.broker != 'none' %}
        send_event(event, "item.created", &item);
{% endif %}
        self.publish(ChangeType::Created, &item);
        Ok(Response::new(CreateItemResponse {
            item: Some(item.into()),
        }))
    }

    async fn get_item(
        &self,
        request: Request<GetItemRequest>,
    ) -> Result<Response<GetItemResponse>, Status> {
        let mut violations = Violations::default();
        let id = violations.id(&request.get_ref().id);
        violations.check()?;
        let item = self.repository().get(id).await.map_err(status)?;
        Ok(Response::new(GetItemResponse {
            item: Some(item.into()),
        }))
    }

    async fn update_item(
        &self,
        request: Request<UpdateItemRequest>,
    ) -> Result<Response<UpdateItemResponse>, Status> {
        let UpdateItemRequest { id, name } = request.into_inner();
        let mut violations = Violations::default();
        let id = violations.id(&id);
        violations.name(&name);
        violations.check()?;
{% if messaging.broker != 'none' %}
        let event = self.reserve_event()?;
{% endif %}
        let item = self.repository().rename(id, name).await.map_err(status)?;
{% if messaging.broker != 'none' %}
        send_event(event, "item.updated", &item);
{% endif %}
        self.publish(ChangeType::Updated, &item);
        Ok(Response::new(UpdateItemResponse {
            item: Some(item.into()),
        }))
    }

    async fn delete_item(
        &self,
        request: Request<DeleteItemRequest>,
    ) -> Result<Response<DeleteItemResponse>, Status> {
        let mut violations = Violations::default();
        let id = violations.id(&request.get_ref().id);
        violations.check()?;
{% if messaging.broker != 'none' %}
        let event = self.reserve_event()?;
{% endif %}
        let item = self.repository().delete(id).await.map_err(status)?;
{% if messaging.broker != 'none' %}
        send_event(event, "item.deleted", &item);
{% endif %}
        self.publish(ChangeType::Deleted, &item);
        Ok(Response::new(DeleteItemResponse {}))
    }

    async fn list_items(
        &self,
        request: Request<ListItemsRequest>,
    ) -> Result<Response<ListItemsResponse>, Status> {
        let ListItemsRequest {
            page_size,
            page_token,
        } = request.into_inner();
        let mut violations = Violations::default();
        let limit = violations.page_size(page_size);
        let after = violations.page_token(&page_token);
        violations.check()?;
        let page = self.repository().list(after, limit).await.map_err(status)?;
        let next_page_token = match page.items.last() {
            Some(last) if page.has_more => last.id.to_string(),
            _ => String::new(),
        };
        Ok(Response::new(ListItemsResponse {
            items: page.items.into_iter().map(pb::Item::from).collect(),
            next_page_token,
        }))
    }

    type WatchItemsStream = ChangeStream;

    async fn watch_items(
        &self,
        _request: Request<WatchItemsRequest>,
    ) -> Result<Response<ChangeStream>, Status> {
        let changes = self.state.shared.changes.subscribe();
        let closing = self.state.shared.closing.subscribe();
        let stream =
            futures_util::stream::unfold(Some((changes, closing)), |watching| async move {
                let (mut changes, mut closing) = watching?;
                let next = tokio::select! {
                    _ = closing.wait_for(|closing| *closing) => Err(Status::unavailable(
                        "the service is shutting down; watch again",
                    )),
                    change = changes.recv() => match change {
                        Ok(change) => Ok(change),
                        Err(RecvError::Lagged(missed)) => Err(Status::aborted(format!(
                            "the watcher fell {missed} changes behind; list and watch again"
                        ))),
                        Err(RecvError::Closed) => return None,
                    },
                };
                // An error ends the stream.
                let watching = next.is_ok().then_some((changes, closing));
                Some((next, watching))
            });
        Ok(Response::new(Box::pin(stream)))
    }
}

impl<R: ItemRepository> Items<R> {
    fn repository(&self) -> &R {
        &self.state.shared.items
    }

    /// Sends a change to every open watch stream.
    fn publish(&self, change_type: ChangeType, item: &Item) {
        let change = WatchItemsResponse {
            change_type: change_type.into(),
            item: Some(item.clone().into()),
        };
        // An error only means that nobody is watching.
        let _ = self.state.shared.changes.send(change);
    }
{% if messaging.broker != 'none' %}

    /// A place in the outbox for the event of a change, taken before the change: when
    /// the outbox is full (the broker has been down for a while) the change is refused
    /// with `UNAVAILABLE` rather than made without its event.
    fn reserve_event(&self) -> Result<Option<EventSlot<'_>>, Status> {
        self.state
            .events
            .as_ref()
            .map(Events::try_reserve)
            .transpose()
            .map_err(unavailable)
    }
{% endif %}
}
{% if messaging.broker != 'none' %}

/// Puts the event `kind` about `item` into the reserved place: the item as the API
/// returns it, or only its id when it was deleted.
fn send_event(event: Option<EventSlot<'_>>, kind: &str, item: &Item) {
    let Some(event) = event else {
        return;
    };
    let data = if kind == "item.deleted" {
        serde_json::json!({ "id": item.id })
    } else {
        serde_json::json!({
            "id": item.id,
            "name": item.name,
            "revision": item.revision,
        })
    };
    event.send(kind, &item.id.to_string(), data);
}

/// A change refused because its event cannot be published: try later.
fn unavailable(error: MessagingError) -> Status {
    tracing::warn!(%error, "change refused: its event cannot be published");
    Status::unavailable("events cannot be published now: try again later")
}
{% endif %}

impl From<Item> for pb::Item {
    fn from(item: Item) -> Self {
        Self {
            id: item.id.to_string(),
            name: item.name,
            revision: item.revision,
        }
    }
}

/// The status of a repository error, with the item in `ResourceInfo` details.
fn status(error: RepositoryError) -> Status {
    let message = error.to_string();
    match error {
        RepositoryError::NotFound(id) => Status::with_error_details(
            Code::NotFound,
            message,
            ErrorDetails::with_resource_info("item", id.to_string(), "", "no item has this id"),
        ),
        RepositoryError::NameTaken(name) => Status::with_error_details(
            Code::AlreadyExists,
            message,
            ErrorDetails::with_resource_info("item", name, "", "another item has this name"),
        ),
        RepositoryError::Storage(source) => {
            tracing::error!(error = %source, "item storage failed");
            Status::internal("item storage failed")
        }
    }
}

/// The invalid fields of a request, reported together as `google.rpc.BadRequest`.
#[derive(Debug, Default)]
struct Violations(Vec<FieldViolation>);

impl Violations {
    fn add(&mut self, field: &str, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// `INVALID_ARGUMENT` with every violation in the details, if there is any.
    fn check(self) -> Result<(), Status> {
        if self.0.is_empty() {
            return Ok(());
        }
        let fields: Vec<&str> = self.0.iter().map(|v| v.field.as_str()).collect();
        let message = format!("invalid {}", fields.join(", "));
        Err(Status::with_error_details(
            Code::InvalidArgument,
            message,
            ErrorDetails::with_bad_request(self.0),
        ))
    }

    fn name(&mut self, name: &str) {
        if name.trim().is_empty() {
            self.add("name", "must not be blank");
        } else if name.chars().count() > MAX_NAME_CHARS {
            self.add(
                "name",
                format!("must be at most {MAX_NAME_CHARS} characters"),
            );
        }
    }

    fn id(&mut self, id: &str) -> Uuid {
        id.parse().unwrap_or_else(|_| {
            self.add("id", "must be a UUID");
            Uuid::nil()
        })
    }

    fn page_size(&mut self, page_size: i32) -> usize {
        match usize::try_from(page_size) {
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(size) => size.min(MAX_PAGE_SIZE),
            Err(_) => {
                self.add("page_size", "must not be negative");
                DEFAULT_PAGE_SIZE
            }
        }
    }

    fn page_token(&mut self, token: &str) -> Option<Uuid> {
        if token.is_empty() {
            return None;
        }
        let position = token.parse().ok();
        if position.is_none() {
            self.add("page_token", "must be a next_page_token of this service");
        }
        position
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_default_and_are_capped() {
        let mut violations = Violations::default();
        assert_eq!(violations.page_size(0), DEFAULT_PAGE_SIZE);
        assert_eq!(violations.page_size(7), 7);
        assert_eq!(violations.page_size(i32::MAX), MAX_PAGE_SIZE);
        assert!(violations.check().is_ok());
    }

    #[test]
    fn violations_are_reported_together() {
        let mut violations = Violations::default();
        violations.id("nope");
        violations.name(" ");
        let status = violations.check().unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "invalid id, name");
        let details = status.get_error_details();
        let fields: Vec<&str> = details
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|violation| violation.field.as_str())
            .collect();
        assert_eq!(fields, ["id", "name"]);
    }
}
