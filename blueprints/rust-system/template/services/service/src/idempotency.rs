//! Remembered `Idempotency-Key`s, bounded in number and in age.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How many keys are remembered by default; the oldest is forgotten first.
pub(crate) const DEFAULT_CAPACITY: usize = 10_000;

/// How long a key is remembered by default.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Values stored under idempotency keys, each forgotten after a time to live or when
/// the capacity is reached, whichever comes first.
#[derive(Debug)]
pub(crate) struct IdempotencyKeys<V> {
    capacity: usize,
    ttl: Duration,
    entries: HashMap<String, V>,
    /// Keys in insertion order with their insertion time, oldest first.
    order: VecDeque<(Instant, String)>,
}

impl<V> IdempotencyKeys<V> {
    /// An empty store; a capacity of zero is taken as one.
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            ttl,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The value remembered for `key` at `now`, if it has not expired.
    pub(crate) fn get(&mut self, key: &str, now: Instant) -> Option<&V> {
        self.expire(now);
        self.entries.get(key)
    }

    /// Remembers `value` for `key` (which must not be remembered already) from `now`,
    /// forgetting the oldest key when the store is full.
    pub(crate) fn insert(&mut self, key: String, value: V, now: Instant) {
        self.expire(now);
        if self.entries.len() >= self.capacity
            && let Some((_, oldest)) = self.order.pop_front()
        {
            self.entries.remove(&oldest);
        }
        self.order.push_back((now, key.clone()));
        self.entries.insert(key, value);
    }

    fn expire(&mut self, now: Instant) {
        while let Some((stored_at, key)) = self.order.front() {
            if now.saturating_duration_since(*stored_at) < self.ttl {
                break;
            }
            self.entries.remove(key);
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_keys_until_they_expire() {
        let start = Instant::now();
        let mut keys = IdempotencyKeys::new(10, Duration::from_secs(60));
        keys.insert("a".to_owned(), 1, start);
        assert_eq!(keys.get("a", start + Duration::from_secs(59)), Some(&1));
        assert_eq!(keys.get("a", start + Duration::from_secs(60)), None);
        assert_eq!(keys.get("b", start), None);
    }

    #[test]
    fn forgets_the_oldest_key_when_full() {
        let now = Instant::now();
        let mut keys = IdempotencyKeys::new(2, DEFAULT_TTL);
        keys.insert("a".to_owned(), 1, now);
        keys.insert("b".to_owned(), 2, now);
        keys.insert("c".to_owned(), 3, now);
        assert_eq!(keys.get("a", now), None);
        assert_eq!(keys.get("b", now), Some(&2));
        assert_eq!(keys.get("c", now), Some(&3));
        assert_eq!(keys.order.len(), 2);
    }
}
