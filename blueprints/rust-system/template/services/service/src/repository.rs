//! Storage of items behind a trait, so a database can replace the in-memory store.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{PoisonError, RwLock};

use uuid::Uuid;

use crate::items::{Item, ItemInput};

/// The store failed; the request cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("item storage failed: {0}")]
pub struct RepositoryError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Storage of items.
pub trait ItemRepository: Send + Sync + 'static {
    /// All items, ordered by id.
    fn list(&self) -> impl Future<Output = Result<Vec<Item>, RepositoryError>> + Send;

    /// The item with this id, if any.
    fn get(&self, id: Uuid) -> impl Future<Output = Result<Option<Item>, RepositoryError>> + Send;

    /// Stores a new item and returns it.
    fn create(
        &self,
        input: ItemInput,
    ) -> impl Future<Output = Result<Item, RepositoryError>> + Send;

    /// Replaces the item with this id; `None` when there is none.
    fn update(
        &self,
        id: Uuid,
        input: ItemInput,
    ) -> impl Future<Output = Result<Option<Item>, RepositoryError>> + Send;

    /// Deletes the item with this id; `false` when there was none.
    fn delete(&self, id: Uuid) -> impl Future<Output = Result<bool, RepositoryError>> + Send;
}

/// Items kept in memory; they are lost when the process stops.
#[derive(Debug, Default)]
pub struct InMemoryItems {
    items: RwLock<BTreeMap<Uuid, Item>>,
}

impl ItemRepository for InMemoryItems {
    async fn list(&self) -> Result<Vec<Item>, RepositoryError> {
        let items = self.items.read().unwrap_or_else(PoisonError::into_inner);
        Ok(items.values().cloned().collect())
    }

    async fn get(&self, id: Uuid) -> Result<Option<Item>, RepositoryError> {
        let items = self.items.read().unwrap_or_else(PoisonError::into_inner);
        Ok(items.get(&id).cloned())
    }

    async fn create(&self, input: ItemInput) -> Result<Item, RepositoryError> {
        let item = Item::new(Uuid::new_v4(), input);
        let mut items = self.items.write().unwrap_or_else(PoisonError::into_inner);
        items.insert(item.id, item.clone());
        Ok(item)
    }

    async fn update(&self, id: Uuid, input: ItemInput) -> Result<Option<Item>, RepositoryError> {
        let mut items = self.items.write().unwrap_or_else(PoisonError::into_inner);
        Ok(items.get_mut(&id).map(|item| {
            *item = Item::new(id, input);
            item.clone()
        }))
    }

    async fn delete(&self, id: Uuid) -> Result<bool, RepositoryError> {
        let mut items = self.items.write().unwrap_or_else(PoisonError::into_inner);
        Ok(items.remove(&id).is_some())
    }
}
