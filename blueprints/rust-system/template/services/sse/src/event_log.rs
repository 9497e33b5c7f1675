//! The event log: numbered events, the most recent of them kept for replay, and a live
//! feed of new ones for the open streams.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use tokio::sync::broadcast;

/// A published event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    /// Position in the log, from 1; sent as the SSE `id`.
    pub id: u64,
    /// The SSE event type; `None` for the default type, `message`.
    pub event: Option<String>,
    /// The payload, as JSON text.
    pub data: String,
}

/// Where a stream starts, as found by [`EventLog::subscribe`].
#[derive(Debug)]
pub struct Subscription {
    /// Set when the stream cannot resume exactly after the client's last event id.
    pub gap: Option<Gap>,
    /// Kept events the client has not seen, oldest first.
    pub backlog: Vec<Arc<StoredEvent>>,
    /// Events published from now on; `None` once the log is closed.
    pub live: Option<broadcast::Receiver<Arc<StoredEvent>>>,
}

/// A `Last-Event-ID` the log cannot resume from exactly: events after it were dropped
/// from the replay buffer, or it is newer than any event (the log was restarted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// The id the client asked to resume after.
    pub last_event_id: u64,
    /// The oldest event still kept, from which the replay starts; `None` if none is.
    pub oldest_available: Option<u64>,
}

/// The log shared by publishers and streams.
#[derive(Debug)]
pub struct EventLog {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    next_id: u64,
    kept: VecDeque<Arc<StoredEvent>>,
    capacity: usize,
    live: Option<broadcast::Sender<Arc<StoredEvent>>>,
}

impl EventLog {
    /// An empty log that keeps the last `capacity` events for replay.
    pub fn new(capacity: NonZeroUsize) -> Self {
        let capacity = capacity.get();
        Self {
            inner: Mutex::new(Inner {
                next_id: 1,
                kept: VecDeque::with_capacity(capacity),
                capacity,
                live: Some(broadcast::Sender::new(capacity)),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends an event, dropping the oldest kept one when the buffer is full, and
    /// sends it to the open streams.
    pub fn append(&self, event: Option<String>, data: String) -> Arc<StoredEvent> {
        let mut inner = self.lock();
        let stored = Arc::new(StoredEvent {
            id: inner.next_id,
            event,
            data,
        });
        inner.next_id += 1;
        if inner.kept.len() == inner.capacity {
            inner.kept.pop_front();
        }
        inner.kept.push_back(Arc::clone(&stored));
        if let Some(live) = &inner.live {
            // An error only means that no stream is open.
            let _ = live.send(Arc::clone(&stored));
        }
        stored
    }

    /// Where a new stream starts. Without `last_event_id` it receives new events only;
    /// with one, first the kept events after it. Taken under the lock that `append`
    /// holds, so no event is missed or sent twice between backlog and live feed.
    pub fn subscribe(&self, last_event_id: Option<u64>) -> Subscription {
        let inner = self.lock();
        let live = inner.live.as_ref().map(broadcast::Sender::subscribe);
        let Some(last_event_id) = last_event_id else {
            return Subscription {
                gap: None,
                backlog: Vec::new(),
                live,
            };
        };
        let oldest_available = inner.kept.front().map(|event| event.id);
        let newest = inner.next_id - 1;
        let exact = last_event_id <= newest
            && last_event_id.saturating_add(1) >= oldest_available.unwrap_or(inner.next_id);
        Subscription {
            gap: (!exact).then_some(Gap {
                last_event_id,
                oldest_available,
            }),
            backlog: inner
                .kept
                .iter()
                .filter(|event| !exact || event.id > last_event_id)
                .cloned()
                .collect(),
            live,
        }
    }

    /// Ends the live feed: open streams finish after the events already sent to them,
    /// and new streams get only their backlog. Used at shutdown, so that the server
    /// can drain.
    pub fn close(&self) {
        self.lock().live = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_with(capacity: usize, events: usize) -> EventLog {
        let log = EventLog::new(NonZeroUsize::new(capacity).unwrap());
        for n in 0..events {
            log.append(None, n.to_string());
        }
        log
    }

    fn ids(subscription: &Subscription) -> Vec<u64> {
        subscription.backlog.iter().map(|event| event.id).collect()
    }

    #[test]
    fn numbers_events_from_one() {
        let log = log_with(3, 0);
        let stored = log.append(Some("greeting".to_owned()), "\"hi\"".to_owned());
        assert_eq!(stored.id, 1);
        assert_eq!(log.append(None, "null".to_owned()).id, 2);
    }

    #[test]
    fn resumes_after_the_last_event_id() {
        let log = log_with(5, 4);
        let subscription = log.subscribe(Some(2));
        assert_eq!(subscription.gap, None);
        assert_eq!(ids(&subscription), [3, 4]);
        assert_eq!(ids(&log.subscribe(Some(4))), Vec::<u64>::new());
        assert_eq!(ids(&log.subscribe(Some(0))), [1, 2, 3, 4]);
        assert_eq!(ids(&log.subscribe(None)), Vec::<u64>::new());
    }

    #[test]
    fn keeps_only_the_last_events() {
        let log = log_with(3, 5);
        assert_eq!(ids(&log.subscribe(Some(2))), [3, 4, 5]);
        let subscription = log.subscribe(Some(1));
        assert_eq!(
            subscription.gap,
            Some(Gap {
                last_event_id: 1,
                oldest_available: Some(3)
            })
        );
        assert_eq!(ids(&subscription), [3, 4, 5]);
    }

    #[test]
    fn ids_from_the_future_are_a_gap() {
        let log = log_with(3, 0);
        let subscription = log.subscribe(Some(7));
        assert_eq!(
            subscription.gap,
            Some(Gap {
                last_event_id: 7,
                oldest_available: None
            })
        );
        assert!(subscription.backlog.is_empty());
    }

    #[test]
    fn live_feed_starts_after_the_backlog() {
        let log = log_with(3, 2);
        let mut subscription = log.subscribe(Some(0));
        log.append(None, "late".to_owned());
        let live = subscription.live.as_mut().unwrap();
        assert_eq!(live.try_recv().unwrap().id, 3);
        assert!(live.try_recv().is_err());
    }

    #[test]
    fn closing_ends_the_live_feed() {
        let log = log_with(3, 1);
        let mut open = log.subscribe(None).live.unwrap();
        log.close();
        assert_eq!(open.try_recv(), Err(broadcast::error::TryRecvError::Closed));
        assert!(log.subscribe(Some(0)).live.is_none());
        assert_eq!(log.append(None, "kept".to_owned()).id, 2);
    }
}
