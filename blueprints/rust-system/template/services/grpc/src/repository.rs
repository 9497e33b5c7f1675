//! Storage of items behind a trait, so a database can replace the in-memory store.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::ops::Bound;
use std::sync::{PoisonError, RwLock};

use uuid::Uuid;

/// A stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Server-assigned id; ids sort in creation order.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// 1 when created, incremented by every update.
    pub revision: u64,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The items, oldest first.
    pub items: Vec<Item>,
    /// Whether more items follow the last one.
    pub has_more: bool,
}

/// Why the repository refused or failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// No item has this id.
    #[error("no item has id {0}")]
    NotFound(Uuid),
    /// Another item already has this name.
    #[error("an item named {0:?} already exists")]
    NameTaken(String),
    /// The store failed; the request cannot be served.
    #[error("item storage failed: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Storage of items with unique names.
pub trait ItemRepository: Send + Sync + 'static {
    /// Stores a new item named `name`.
    fn create(&self, name: String) -> impl Future<Output = Result<Item, RepositoryError>> + Send;

    /// The item with this id.
    fn get(&self, id: Uuid) -> impl Future<Output = Result<Item, RepositoryError>> + Send;

    /// Renames the item with this id and increments its revision.
    fn rename(
        &self,
        id: Uuid,
        name: String,
    ) -> impl Future<Output = Result<Item, RepositoryError>> + Send;

    /// Deletes the item with this id and returns it as it was.
    fn delete(&self, id: Uuid) -> impl Future<Output = Result<Item, RepositoryError>> + Send;

    /// At most `limit` items, oldest first, starting after the item `after`.
    fn list(
        &self,
        after: Option<Uuid>,
        limit: usize,
    ) -> impl Future<Output = Result<Page, RepositoryError>> + Send;
}

/// Items in memory, lost when the process stops.
#[derive(Debug, Default)]
pub struct InMemoryItems {
    store: RwLock<Store>,
}

#[derive(Debug, Default)]
struct Store {
    items: BTreeMap<Uuid, Item>,
    ids_by_name: HashMap<String, Uuid>,
}

impl Store {
    fn claim_name(&mut self, name: &str, id: Uuid) -> Result<(), RepositoryError> {
        match self.ids_by_name.get(name) {
            Some(owner) if *owner != id => Err(RepositoryError::NameTaken(name.to_owned())),
            _ => {
                self.ids_by_name.insert(name.to_owned(), id);
                Ok(())
            }
        }
    }
}

impl ItemRepository for InMemoryItems {
    async fn create(&self, name: String) -> Result<Item, RepositoryError> {
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        let item = Item {
            id: Uuid::now_v7(),
            name,
            revision: 1,
        };
        store.claim_name(&item.name, item.id)?;
        store.items.insert(item.id, item.clone());
        Ok(item)
    }

    async fn get(&self, id: Uuid) -> Result<Item, RepositoryError> {
        let store = self.store.read().unwrap_or_else(PoisonError::into_inner);
        store
            .items
            .get(&id)
            .cloned()
            .ok_or(RepositoryError::NotFound(id))
    }

    async fn rename(&self, id: Uuid, name: String) -> Result<Item, RepositoryError> {
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        let old_name = match store.items.get(&id) {
            Some(item) => item.name.clone(),
            None => return Err(RepositoryError::NotFound(id)),
        };
        store.claim_name(&name, id)?;
        if old_name != name {
            store.ids_by_name.remove(&old_name);
        }
        let item = store
            .items
            .get_mut(&id)
            .ok_or(RepositoryError::NotFound(id))?;
        item.name = name;
        item.revision += 1;
        Ok(item.clone())
    }

    async fn delete(&self, id: Uuid) -> Result<Item, RepositoryError> {
        let mut store = self.store.write().unwrap_or_else(PoisonError::into_inner);
        let item = store
            .items
            .remove(&id)
            .ok_or(RepositoryError::NotFound(id))?;
        store.ids_by_name.remove(&item.name);
        Ok(item)
    }

    async fn list(&self, after: Option<Uuid>, limit: usize) -> Result<Page, RepositoryError> {
        let store = self.store.read().unwrap_or_else(PoisonError::into_inner);
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut rest = store
            .items
            .range((start, Bound::Unbounded))
            .map(|(_, item)| item);
        let items: Vec<Item> = rest.by_ref().take(limit).cloned().collect();
        Ok(Page {
            items,
            has_more: rest.next().is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn names_are_unique_and_freed_by_rename_and_delete() {
        let items = InMemoryItems::default();
        let first = items.create("a".to_owned()).await.unwrap();
        assert!(matches!(
            items.create("a".to_owned()).await,
            Err(RepositoryError::NameTaken(name)) if name == "a"
        ));

        let renamed = items.rename(first.id, "b".to_owned()).await.unwrap();
        assert_eq!(renamed.revision, 2);
        let second = items.create("a".to_owned()).await.unwrap();
        assert!(matches!(
            items.rename(second.id, "b".to_owned()).await,
            Err(RepositoryError::NameTaken(_))
        ));
        // Keeping its own name is not a conflict.
        assert_eq!(
            items
                .rename(second.id, "a".to_owned())
                .await
                .unwrap()
                .revision,
            2
        );

        items.delete(first.id).await.unwrap();
        items.create("b".to_owned()).await.unwrap();
    }

    #[tokio::test]
    async fn lists_in_creation_order_after_a_position() {
        let items = InMemoryItems::default();
        let mut ids = Vec::new();
        for name in ["a", "b", "c"] {
            ids.push(items.create(name.to_owned()).await.unwrap().id);
        }
        let first = items.list(None, 2).await.unwrap();
        let first_ids: Vec<Uuid> = first.items.iter().map(|item| item.id).collect();
        assert_eq!(first_ids, ids[..2]);
        assert!(first.has_more);

        let second = items.list(Some(ids[1]), 2).await.unwrap();
        assert_eq!(second.items.len(), 1);
        assert_eq!(second.items[0].id, ids[2]);
        assert!(!second.has_more);
    }
}
