//! Storage of items behind a trait, so a database can replace the in-memory store.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{PoisonError, RwLock};

use async_graphql::async_trait::async_trait;
use uuid::Uuid;

/// A stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Assigned by the store.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Name of the category the item belongs to.
    pub category: String,
}

/// What a client sets on an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemFields {
    /// Display name.
    pub name: String,
    /// Name of the category the item belongs to.
    pub category: String,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The items, ordered by id.
    pub items: Vec<Item>,
    /// Whether more items follow the last one.
    pub has_more: bool,
}

/// The store failed; the request cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("item storage failed: {0}")]
pub struct RepositoryError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Storage of items.
#[async_trait]
pub trait ItemRepository: Send + Sync + 'static {
    /// At most `limit` items ordered by id, starting after the id `after`.
    async fn list(&self, after: Option<Uuid>, limit: usize) -> Result<Page, RepositoryError>;

    /// The item with this id, if any.
    async fn get(&self, id: Uuid) -> Result<Option<Item>, RepositoryError>;

    /// Stores a new item.
    async fn create(&self, fields: ItemFields) -> Result<Item, RepositoryError>;

    /// Replaces the fields of the item with this id; `None` when there is none.
    async fn update(&self, id: Uuid, fields: ItemFields) -> Result<Option<Item>, RepositoryError>;

    /// Deletes the item with this id; `false` when there was none.
    async fn delete(&self, id: Uuid) -> Result<bool, RepositoryError>;

    /// How many items each of these categories holds; categories without items are
    /// left out.
    async fn count_by_category(
        &self,
        categories: &[String],
    ) -> Result<HashMap<String, usize>, RepositoryError>;
}

/// Items kept in memory; they are lost when the process stops.
#[derive(Debug, Default)]
pub struct InMemoryItems {
    items: RwLock<BTreeMap<Uuid, Item>>,
}

#[async_trait]
impl ItemRepository for InMemoryItems {
    async fn list(&self, after: Option<Uuid>, limit: usize) -> Result<Page, RepositoryError> {
        let items = self.items.read().unwrap_or_else(PoisonError::into_inner);
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut page: Vec<Item> = items
            .range((start, Bound::Unbounded))
            .map(|(_, item)| item.clone())
            .take(limit + 1)
            .collect();
        let has_more = page.len() > limit;
        page.truncate(limit);
        Ok(Page {
            items: page,
            has_more,
        })
    }

    async fn get(&self, id: Uuid) -> Result<Option<Item>, RepositoryError> {
        let items = self.items.read().unwrap_or_else(PoisonError::into_inner);
        Ok(items.get(&id).cloned())
    }

    async fn create(&self, fields: ItemFields) -> Result<Item, RepositoryError> {
        let item = Item {
            id: Uuid::new_v4(),
            name: fields.name,
            category: fields.category,
        };
        let mut items = self.items.write().unwrap_or_else(PoisonError::into_inner);
        items.insert(item.id, item.clone());
        Ok(item)
    }

    async fn update(&self, id: Uuid, fields: ItemFields) -> Result<Option<Item>, RepositoryError> {
        let mut items = self.items.write().unwrap_or_else(PoisonError::into_inner);
        Ok(items.get_mut(&id).map(|item| {
            item.name = fields.name;
            item.category = fields.category;
            item.clone()
        }))
    }

    async fn delete(&self, id: Uuid) -> Result<bool, RepositoryError> {
        let mut items = self.items.write().unwrap_or_else(PoisonError::into_inner);
        Ok(items.remove(&id).is_some())
    }

    async fn count_by_category(
        &self,
        categories: &[String],
    ) -> Result<HashMap<String, usize>, RepositoryError> {
        let items = self.items.read().unwrap_or_else(PoisonError::into_inner);
        let mut counts = HashMap::new();
        for item in items.values() {
            if categories.contains(&item.category) {
                *counts.entry(item.category.clone()).or_default() += 1;
            }
        }
        Ok(counts)
    }
}
