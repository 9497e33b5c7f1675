//! Storage of items behind a trait, so a database can replace the in-memory store.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use uuid::Uuid;

use crate::idempotency::{self, IdempotencyKeys};
use crate::items::{Item, ItemInput};
use crate::pagination::{Position, Sort};

/// The store failed; the request cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("item storage failed: {0}")]
pub struct RepositoryError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Which items to list, in which order, and from where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only items with exactly this name.
    pub name: Option<String>,
    /// Only items whose name contains this text, ignoring case.
    pub name_contains: Option<String>,
    /// The order of the listing.
    pub sort: Sort,
    /// Start after this position (the last item of the previous page).
    pub after: Option<Position>,
    /// At most this many items.
    pub limit: usize,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The items, in the order asked for.
    pub items: Vec<Item>,
    /// Whether more items follow the last one.
    pub has_more: bool,
}

/// What a create request with an idempotency key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Creation {
    /// A new item was stored.
    Created(Item),
    /// The key was used before with the same input: the item created then.
    Replayed(Item),
    /// The key was used before with different input; nothing was stored.
    KeyReused,
}

/// Storage of items.
pub trait ItemRepository: Send + Sync + 'static {
    /// One page of the items matching `query`.
    fn list(&self, query: &ListQuery)
    -> impl Future<Output = Result<Page, RepositoryError>> + Send;

    /// The item with this id, if any.
    fn get(&self, id: Uuid) -> impl Future<Output = Result<Option<Item>, RepositoryError>> + Send;

    /// Stores a new item. With an idempotency key, a key seen before with the same
    /// input returns the item created then, and with other input stores nothing.
    fn create(
        &self,
        input: ItemInput,
        idempotency_key: Option<String>,
    ) -> impl Future<Output = Result<Creation, RepositoryError>> + Send;

    /// Replaces the item with this id; `None` when there is none.
    fn update(
        &self,
        id: Uuid,
        input: ItemInput,
    ) -> impl Future<Output = Result<Option<Item>, RepositoryError>> + Send;

    /// Deletes the item with this id; `false` when there was none.
    fn delete(&self, id: Uuid) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
}

/// Items kept in memory; they are lost when the process stops. Idempotency keys are
/// remembered for a bounded time and number.
#[derive(Debug)]
pub struct InMemoryItems {
    state: RwLock<State>,
}

#[derive(Debug)]
struct State {
    items: BTreeMap<Uuid, Item>,
    /// The input and the created item of each remembered idempotency key.
    keys: IdempotencyKeys<(ItemInput, Item)>,
}

impl InMemoryItems {
    /// An empty store remembering at most `capacity` idempotency keys, each for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            state: RwLock::new(State {
                items: BTreeMap::new(),
                keys: IdempotencyKeys::new(capacity, ttl),
            }),
        }
    }
}

impl Default for InMemoryItems {
    /// An empty store remembering 10,000 idempotency keys for 24 hours.
    fn default() -> Self {
        Self::new(idempotency::DEFAULT_CAPACITY, idempotency::DEFAULT_TTL)
    }
}

impl ListQuery {
    fn matches(&self, item: &Item) -> bool {
        self.name.as_ref().is_none_or(|name| item.name == *name)
            && self
                .name_contains
                .as_ref()
                .is_none_or(|text| item.name.to_lowercase().contains(&text.to_lowercase()))
    }
}

impl ItemRepository for InMemoryItems {
    async fn list(&self, query: &ListQuery) -> Result<Page, RepositoryError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let sort = query.sort;
        let mut items: Vec<(Position, &Item)> = state
            .items
            .values()
            .filter(|item| query.matches(item))
            .map(|item| (sort.position(item), item))
            .filter(|(position, _)| {
                query
                    .after
                    .as_ref()
                    .is_none_or(|after| sort.compare(position, after).is_gt())
            })
            .collect();
        items.sort_by(|(a, _), (b, _)| sort.compare(a, b));
        let has_more = items.len() > query.limit;
        let items = items
            .into_iter()
            .take(query.limit)
            .map(|(_, item)| item.clone())
            .collect();
        Ok(Page { items, has_more })
    }

    async fn get(&self, id: Uuid) -> Result<Option<Item>, RepositoryError> {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        Ok(state.items.get(&id).cloned())
    }

    async fn create(
        &self,
        input: ItemInput,
        idempotency_key: Option<String>,
    ) -> Result<Creation, RepositoryError> {
        let now = Instant::now();
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = &idempotency_key
            && let Some((first_input, item)) = state.keys.get(key, now)
        {
            return Ok(if *first_input == input {
                Creation::Replayed(item.clone())
            } else {
                Creation::KeyReused
            });
        }
        let item = Item::new(Uuid::new_v4(), input.clone(), Timestamp::now());
        state.items.insert(item.id, item.clone());
        if let Some(key) = idempotency_key {
            state.keys.insert(key, (input, item.clone()), now);
        }
        Ok(Creation::Created(item))
    }

    async fn update(&self, id: Uuid, input: ItemInput) -> Result<Option<Item>, RepositoryError> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        Ok(state.items.get_mut(&id).map(|item| {
            item.replace(input, Timestamp::now());
            item.clone()
        }))
    }

    async fn delete(&self, id: Uuid) -> Result<bool, RepositoryError> {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        Ok(state.items.remove(&id).is_some())
    }
}
