//! The connection registry: who is connected, who subscribes to which topic, and the
//! fan-out of published messages into each subscriber's outbound queue.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::protocol::{ServerMessage, Topic};

/// Messages that may wait in a connection's outbound queue. A subscriber that lets its
/// queue fill up is disconnected rather than slowing publishers down or growing memory.
pub const QUEUE_CAPACITY: usize = 64;

/// Topics one connection may subscribe to at the same time.
pub const MAX_TOPICS_PER_CONNECTION: usize = 100;

/// A subscription beyond [`MAX_TOPICS_PER_CONNECTION`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a connection may subscribe to at most {MAX_TOPICS_PER_CONNECTION} topics")]
pub struct TooManyTopics;

/// The live connections and their subscriptions.
#[derive(Debug)]
pub struct Hub {
    registry: Mutex<Registry>,
    shutdown: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Registry {
    connections: HashMap<Uuid, Subscriber>,
    topics: HashMap<Topic, HashSet<Uuid>>,
}

#[derive(Debug)]
struct Subscriber {
    queue: mpsc::Sender<Utf8Bytes>,
    topics: HashSet<Topic>,
}

/// What a new connection gets from the hub.
#[derive(Debug)]
pub(crate) struct Registration {
    /// The connection's id.
    pub(crate) id: Uuid,
    /// Messages published to the connection's topics. It ends when the hub drops the
    /// connection for being too slow.
    pub(crate) queue: mpsc::Receiver<Utf8Bytes>,
    /// Turns `true` when the server shuts down.
    pub(crate) shutdown: watch::Receiver<bool>,
}

impl Hub {
    /// A hub without connections.
    pub fn new() -> Self {
        Self {
            registry: Mutex::default(),
            shutdown: watch::Sender::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a connection with a new id.
    pub(crate) fn register(&self) -> Registration {
        let id = Uuid::new_v4();
        let (sender, queue) = mpsc::channel(QUEUE_CAPACITY);
        self.lock().connections.insert(
            id,
            Subscriber {
                queue: sender,
                topics: HashSet::new(),
            },
        );
        Registration {
            id,
            queue,
            shutdown: self.shutdown.subscribe(),
        }
    }

    /// Removes a connection and its subscriptions; nothing happens for unknown ids.
    pub(crate) fn remove(&self, id: Uuid) {
        self.lock().remove(id);
    }

    /// Subscribes the connection `id` to `topic`.
    pub(crate) fn subscribe(&self, id: Uuid, topic: &Topic) -> Result<(), TooManyTopics> {
        let mut registry = self.lock();
        let Some(subscriber) = registry.connections.get_mut(&id) else {
            return Ok(());
        };
        if !subscriber.topics.contains(topic) {
            if subscriber.topics.len() >= MAX_TOPICS_PER_CONNECTION {
                return Err(TooManyTopics);
            }
            subscriber.topics.insert(topic.clone());
        }
        registry.topics.entry(topic.clone()).or_default().insert(id);
        Ok(())
    }

    /// Unsubscribes the connection `id` from `topic`.
    pub(crate) fn unsubscribe(&self, id: Uuid, topic: &Topic) {
        let mut registry = self.lock();
        if let Some(subscriber) = registry.connections.get_mut(&id) {
            subscriber.topics.remove(topic);
        }
        registry.forget_subscription(id, topic);
    }

    /// Queues `data` for every subscriber of `topic` and returns how many there were.
    /// Subscribers whose queue is full are disconnected.
    pub fn publish(&self, topic: &Topic, data: Value) -> usize {
        let text = ServerMessage::Message {
            topic: topic.clone(),
            data,
        }
        .to_text();
        let mut registry = self.lock();
        let Some(subscribers) = registry.topics.get(topic) else {
            return 0;
        };
        let mut delivered = 0;
        let mut too_slow = Vec::new();
        for id in subscribers {
            match registry.connections[id].queue.try_send(text.clone()) {
                Ok(()) => delivered += 1,
                Err(_) => too_slow.push(*id),
            }
        }
        for id in too_slow {
            tracing::warn!(connection = %id, "outbound queue full, disconnecting");
            registry.remove(id);
        }
        delivered
    }

    /// The ids of the connected clients, sorted.
    pub fn connections(&self) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = self.lock().connections.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Asks every connection, present and future, to close with 1001 (going away) and
    /// waits until all have closed or `grace` has passed. Returns whether all closed.
    pub async fn close_all(&self, grace: Duration) -> bool {
        self.shutdown.send_replace(true);
        tokio::time::timeout(grace, self.shutdown.closed())
            .await
            .is_ok()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    fn remove(&mut self, id: Uuid) {
        if let Some(subscriber) = self.connections.remove(&id) {
            for topic in &subscriber.topics {
                self.forget_subscription(id, topic);
            }
        }
    }

    fn forget_subscription(&mut self, id: Uuid, topic: &Topic) {
        if let Some(subscribers) = self.topics.get_mut(topic) {
            subscribers.remove(&id);
            if subscribers.is_empty() {
                self.topics.remove(topic);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn topic(name: &str) -> Topic {
        Topic::try_from(name.to_owned()).unwrap()
    }

    #[test]
    fn publishes_to_subscribers_of_the_topic_only() {
        let hub = Hub::new();
        let mut news = hub.register();
        let mut sport = hub.register();
        hub.subscribe(news.id, &topic("news")).unwrap();
        hub.subscribe(sport.id, &topic("sport")).unwrap();

        assert_eq!(hub.publish(&topic("news"), json!(1)), 1);
        assert_eq!(
            news.queue.try_recv().unwrap().as_str(),
            r#"{"type":"message","topic":"news","data":1}"#
        );
        assert!(sport.queue.try_recv().is_err());
    }

    #[test]
    fn unsubscribing_and_removing_stop_delivery() {
        let hub = Hub::new();
        let first = hub.register();
        let second = hub.register();
        hub.subscribe(first.id, &topic("news")).unwrap();
        hub.subscribe(second.id, &topic("news")).unwrap();
        assert_eq!(hub.connections().len(), 2);

        hub.unsubscribe(first.id, &topic("news"));
        assert_eq!(hub.publish(&topic("news"), json!(1)), 1);
        hub.remove(second.id);
        assert_eq!(hub.publish(&topic("news"), json!(2)), 0);
        assert_eq!(hub.connections(), vec![first.id]);
        assert!(hub.lock().topics.is_empty());
    }

    #[test]
    fn subscriptions_per_connection_are_bounded() {
        let hub = Hub::new();
        let connection = hub.register();
        for n in 0..MAX_TOPICS_PER_CONNECTION {
            hub.subscribe(connection.id, &topic(&n.to_string()))
                .unwrap();
        }
        assert_eq!(
            hub.subscribe(connection.id, &topic("one-more")),
            Err(TooManyTopics)
        );
        assert_eq!(hub.subscribe(connection.id, &topic("0")), Ok(()));
    }

    #[test]
    fn slow_subscribers_are_disconnected() {
        let hub = Hub::new();
        let mut slow = hub.register();
        hub.subscribe(slow.id, &topic("news")).unwrap();
        for n in 0..QUEUE_CAPACITY {
            assert_eq!(hub.publish(&topic("news"), json!(n)), 1);
        }

        assert_eq!(hub.publish(&topic("news"), json!("overflow")), 0);
        assert!(hub.connections().is_empty());
        for _ in 0..QUEUE_CAPACITY {
            slow.queue.try_recv().unwrap();
        }
        assert_eq!(
            slow.queue.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected)
        );
    }

    #[tokio::test]
    async fn close_all_signals_every_connection_and_waits_for_them() {
        let hub = Hub::new();
        let mut connection = hub.register();
        let closing = tokio::spawn(async move {
            connection
                .shutdown
                .wait_for(|stopping| *stopping)
                .await
                .unwrap();
        });
        assert!(hub.close_all(Duration::from_secs(5)).await);
        closing.await.unwrap();
        assert!(*hub.register().shutdown.borrow());
    }
}
