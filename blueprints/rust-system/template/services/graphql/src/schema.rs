//! The GraphQL schema: items paged with cursors, their mutations, the `itemChanged`
//! subscription, and item categories loaded in batches.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

{% if messaging.broker != 'none' %}
use async_graphql::ErrorExtensions;
{% endif %}
use async_graphql::connection::{Connection, Edge};
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{
    Context, Enum, ID, InputObject, Object, Result, Schema, SimpleObject, Subscription,
};
use futures_util::Stream;
{% if messaging.broker != 'none' %}
use platform::messaging::{EventSlot, Events, MessagingError};
{% endif %}
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

use crate::config::Config;
use crate::repository::{Item, ItemFields, ItemRepository, RepositoryError};

/// The schema this service serves.
pub type ItemsSchema = Schema<Query, Mutation, Subscription>;

/// How many changes a subscriber may lag behind before it misses some.
const EVENT_CAPACITY: usize = 256;

/// Builds the schema over `items`, with the query limits of `config`.
pub fn schema(items: Arc<dyn ItemRepository>, config: Config) -> ItemsSchema {
    builder(items, config).finish()
}
{% if messaging.broker != 'none' %}

/// Builds the schema over `items`, with the query limits of `config`, publishing an
/// event to `events` for every change of an item.
pub(crate) fn with_events(
    items: Arc<dyn ItemRepository>,
    config: Config,
    events: Events,
) -> ItemsSchema {
    builder(items, config).data(events).finish()
}
{% endif %}

/// The schema over `items`, with the query limits of `config`, before it is finished.
fn builder(
    items: Arc<dyn ItemRepository>,
    config: Config,
) -> async_graphql::SchemaBuilder<Query, Mutation, Subscription> {
    let categories = DataLoader::new(CategoryLoader::new(Arc::clone(&items)), tokio::spawn);
    Schema::build(Query, Mutation, Subscription)
        .data(items)
        .data(categories)
        .data(broadcast::channel::<ItemChanged>(EVENT_CAPACITY).0)
        .limit_depth(config.max_depth)
        .limit_complexity(config.max_complexity)
}

/// The root of queries.
#[derive(Debug)]
pub struct Query;

#[Object]
impl Query {
    /// Items ordered by id: at most `first` (1 to 100), after the cursor `after`.
    #[graphql(complexity = "usize::try_from(first).unwrap_or(0) * child_complexity")]
    async fn items(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20, validator(minimum = 1, maximum = 100))] first: i32,
        after: Option<String>,
    ) -> Result<Connection<String, Item>> {
        let after = after.as_deref().map(parse_id).transpose()?;
        let page = repository(ctx)?
            .list(after, usize::try_from(first)?)
            .await?;
        let mut connection = Connection::new(after.is_some(), page.has_more);
        connection.edges.extend(
            page.items
                .into_iter()
                .map(|item| Edge::new(item.id.to_string(), item)),
        );
        Ok(connection)
    }

    /// The item with this id, if there is one.
    async fn item(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Item>> {
        Ok(repository(ctx)?.get(parse_id(&id)?).await?)
    }
}

/// The root of mutations. Every change is published to `itemChanged` subscribers{% if messaging.broker != 'none' %}
/// and as an event (`docs/events.md`){% endif %}.
#[derive(Debug)]
pub struct Mutation;

#[Object]
impl Mutation {
    /// Stores a new item.
    async fn create_item(&self, ctx: &Context<'_>, input: ItemInput) -> Result<Item> {
{% if messaging.broker != 'none' %}
        let event = reserve_event(ctx)?;
{% endif %}
        let item = repository(ctx)?.create(input.into()).await?;
{% if messaging.broker != 'none' %}
        send_event(event, ChangeKind::Created, item.id, Some(&item));
{% endif %}
        publish(ctx, ChangeKind::Created, item.id, Some(item.clone()))?;
        Ok(item)
    }

    /// Replaces the fields of an item; null when there is no item with this id.
    async fn update_item(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: ItemInput,
    ) -> Result<Option<Item>> {
        let id = parse_id(&id)?;
{% if messaging.broker != 'none' %}
        let event = reserve_event(ctx)?;
{% endif %}
        let item = repository(ctx)?.update(id, input.into()).await?;
        if let Some(item) = &item {
{% if messaging.broker != 'none' %}
            send_event(event, ChangeKind::Updated, id, Some(item));
{% endif %}
            publish(ctx, ChangeKind::Updated, id, Some(item.clone()))?;
        }
        Ok(item)
    }

    /// Deletes an item; false when there was no item with this id.
    async fn delete_item(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        let id = parse_id(&id)?;
{% if messaging.broker != 'none' %}
        let event = reserve_event(ctx)?;
{% endif %}
        let deleted = repository(ctx)?.delete(id).await?;
        if deleted {
{% if messaging.broker != 'none' %}
            send_event(event, ChangeKind::Deleted, id, None);
{% endif %}
            publish(ctx, ChangeKind::Deleted, id, None)?;
        }
        Ok(deleted)
    }
}

/// The root of subscriptions.
#[derive(Debug)]
pub struct Subscription;

#[Subscription]
impl Subscription {
    /// Every change to an item from now on.
    async fn item_changed(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = ItemChanged>> {
        let receiver = ctx.data::<broadcast::Sender<ItemChanged>>()?.subscribe();
        Ok(futures_util::stream::unfold(
            receiver,
            |mut receiver| async move {
                loop {
                    match receiver.recv().await {
                        Ok(event) => return Some((event, receiver)),
                        Err(RecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "a subscriber fell behind and missed changes");
                        }
                        Err(RecvError::Closed) => return None,
                    }
                }
            },
        ))
    }
}

/// An item of the service.
#[Object]
impl Item {
    /// Assigned by the service when the item is created.
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.name
    }

    /// The category of the item, loaded in one batch with the categories of the other
    /// items of the response.
    async fn category(&self, ctx: &Context<'_>) -> Result<Category> {
        let item_count = ctx
            .data::<DataLoader<CategoryLoader>>()?
            .load_one(self.category.clone())
            .await?
            .unwrap_or_default();
        Ok(Category {
            name: self.category.clone(),
            item_count,
        })
    }
}

/// A group of items.
#[derive(Debug, Clone, SimpleObject)]
pub struct Category {
    /// Name of the category.
    pub name: String,
    /// How many items the category holds.
    pub item_count: usize,
}

/// What a client sets on an item.
#[derive(Debug, Clone, InputObject)]
pub struct ItemInput {
    /// Display name, 1 to 100 characters.
    #[graphql(validator(min_length = 1, max_length = 100))]
    pub name: String,
    /// Name of the category, 1 to 100 characters.
    #[graphql(validator(min_length = 1, max_length = 100))]
    pub category: String,
}

impl From<ItemInput> for ItemFields {
    fn from(input: ItemInput) -> Self {
        Self {
            name: input.name,
            category: input.category,
        }
    }
}

/// How an item changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum ChangeKind {
    /// The item was created.
    Created,
    /// The fields of the item were replaced.
    Updated,
    /// The item was deleted.
    Deleted,
}

/// A change to an item, as published to subscribers.
#[derive(Debug, Clone, SimpleObject)]
pub struct ItemChanged {
    /// How the item changed.
    pub kind: ChangeKind,
    /// Id of the item.
    pub id: ID,
    /// The item after the change; null when it was deleted.
    pub item: Option<Item>,
}

/// Loads the item counts of many categories with one repository call.
pub struct CategoryLoader {
    items: Arc<dyn ItemRepository>,
    batches: AtomicUsize,
}

impl CategoryLoader {
    fn new(items: Arc<dyn ItemRepository>) -> Self {
        Self {
            items,
            batches: AtomicUsize::new(0),
        }
    }

    /// How many batches the loader has loaded so far.
    pub fn batches(&self) -> usize {
        self.batches.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for CategoryLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CategoryLoader")
            .field("batches", &self.batches)
            .finish_non_exhaustive()
    }
}

impl Loader<String> for CategoryLoader {
    type Value = usize;
    type Error = Arc<RepositoryError>;

    async fn load(&self, keys: &[String]) -> Result<HashMap<String, usize>, Self::Error> {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.items.count_by_category(keys).await.map_err(Arc::new)
    }
}

fn repository<'a>(ctx: &Context<'a>) -> Result<&'a Arc<dyn ItemRepository>> {
    ctx.data::<Arc<dyn ItemRepository>>()
}

fn parse_id(id: &str) -> Result<Uuid> {
    Uuid::parse_str(id).map_err(|_| format!("{id:?} is not an item id").into())
}

fn publish(ctx: &Context<'_>, kind: ChangeKind, id: Uuid, item: Option<Item>) -> Result<()> {
    let event = ItemChanged {
        kind,
        id: ID(id.to_string()),
        item,
    };
    // Sending fails only when nobody is subscribed, and then there is nobody to tell.
    let _ = ctx.data::<broadcast::Sender<ItemChanged>>()?.send(event);
    Ok(())
}
{% if messaging.broker != 'none' %}

/// A place in the outbox for the event of a change, taken before the change: when the
/// outbox is full (the broker has been down for a while) the change is refused with an
/// `UNAVAILABLE` error rather than made without its event.
fn reserve_event<'a>(ctx: &Context<'a>) -> Result<Option<EventSlot<'a>>> {
    ctx.data_opt::<Events>()
        .map(Events::try_reserve)
        .transpose()
        .map_err(unavailable)
}

/// Puts the event of the change `kind` of the item `id` into the reserved place: the
/// item as the API returns it, or only its id when it was deleted.
fn send_event(event: Option<EventSlot<'_>>, kind: ChangeKind, id: Uuid, item: Option<&Item>) {
    let Some(event) = event else {
        return;
    };
    let kind = match kind {
        ChangeKind::Created => "item.created",
        ChangeKind::Updated => "item.updated",
        ChangeKind::Deleted => "item.deleted",
    };
    let data = match item {
        Some(item) => serde_json::json!({
            "id": item.id,
            "name": item.name,
            "category": item.category,
        }),
        None => serde_json::json!({ "id": id }),
    };
    event.send(kind, &id.to_string(), data);
}

/// A change refused because its event cannot be published: try later (the REST
/// services answer 503).
fn unavailable(error: MessagingError) -> async_graphql::Error {
    tracing::warn!(%error, "change refused: its event cannot be published");
    async_graphql::Error::new("events cannot be published now: try again later")
        .extend_with(|_, extensions| extensions.set("code", "UNAVAILABLE"))
}
{% endif %}
