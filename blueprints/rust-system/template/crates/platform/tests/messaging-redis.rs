//! Events through the real broker at `REDIS_URL` (default `redis://127.0.0.1:6379`):
//! delivery to every consumer group, duplicates handled once, retries then dead
//! letters without holding up other events, and consumers that restart or go away
//! without losing an event, and publishers and consumers that outlast a lost
//! connection. Each test has keys of its own and deletes them at the end.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use platform::health::Readiness;
use platform::messaging::{
    Broker, CloudEvent, Delivery, Events, HandlerError, RedisBroker, Subscriber, Subscription,
    handler_fn, relay,
};
use redis::AsyncCommands;
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use self::support::proxy::Proxy;

/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(15);

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A broker whose keys are under a prefix of this test's own.
struct TestBroker {
    broker: RedisBroker,
    prefix: String,
}

impl TestBroker {
    fn new() -> Self {
        Self::at(&redis_url())
    }

    /// A broker reached at `url`, such as through a [`Proxy`].
    fn at(url: &str) -> Self {
        let prefix = format!("test-{}", Uuid::new_v4());
        Self {
            broker: RedisBroker::new(url, &prefix).unwrap(),
            prefix,
        }
    }

    async fn connection(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(redis_url()).unwrap();
        client
            .get_multiplexed_async_connection()
            .await
            .expect("the broker at REDIS_URL is reachable")
    }

    /// Deletes every key of this test.
    async fn clean(self) {
        let mut connection = self.connection().await;
        let keys: Vec<String> = connection.keys(format!("{}:*", self.prefix)).await.unwrap();
        if !keys.is_empty() {
            let _: () = connection.del(keys).await.unwrap();
        }
    }

    /// The number of entries in the dead-letter stream of `group`, and their fields.
    async fn dead_letters(&self, group: &str) -> Vec<HashMap<String, String>> {
        let mut connection = self.connection().await;
        let reply: redis::streams::StreamRangeReply = connection
            .xrange_all(self.broker.dead_letter_key(group))
            .await
            .unwrap();
        reply
            .ids
            .into_iter()
            .map(|entry| {
                entry
                    .map
                    .keys()
                    .map(|field| (field.clone(), entry.get::<String>(field).unwrap()))
                    .collect()
            })
            .collect()
    }

    /// Entries of `stream` delivered to `group` and not acknowledged.
    async fn pending(&self, stream: &str, group: &str) -> usize {
        let mut connection = self.connection().await;
        let (count, _, _, _): (usize, Option<String>, Option<String>, redis::Value) =
            redis::cmd("XPENDING")
                .arg(self.broker.stream_key(stream))
                .arg(group)
                .query_async(&mut connection)
                .await
                .unwrap();
        count
    }
}

/// Quick retries and claims, for tests.
fn delivery() -> Delivery {
    Delivery {
        max_attempts: 3,
        retry_base: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        claim_idle: Duration::from_millis(500),
        concurrency: 4,
        dedup_ttl: Duration::from_secs(60),
        drain_timeout: Duration::from_millis(500),
    }
}

fn subscription(group: &str, consumer: &str) -> Subscription {
    Subscription {
        group: group.to_owned(),
        consumer: consumer.to_owned(),
        streams: vec!["catalog".to_owned()],
        delivery: delivery(),
    }
}

fn event(subject: &str) -> CloudEvent {
    CloudEvent::new(
        "/test/catalog",
        "test.catalog.item.created.v1",
        Some(subject.to_owned()),
        json!({ "id": subject }),
    )
}

/// The subjects a handler completed, in order.
#[derive(Clone, Default)]
struct Handled(Arc<Mutex<Vec<String>>>);

impl Handled {
    fn push(&self, event: &CloudEvent) {
        let subject = event.subject.clone().unwrap_or_default();
        self.0.lock().unwrap().push(subject);
    }

    fn subjects(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until `count` events were handled, then a little longer for extra ones.
    async fn wait_for(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        while self.subjects().len() < count {
            assert!(
                Instant::now() < deadline,
                "handled {:?}, expected {count} events",
                self.subjects()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut subjects = self.subjects();
        subjects.sort();
        subjects
    }
}

/// Subscribes `group` as `consumer` with a handler that records what it handled.
async fn recording(broker: &TestBroker, group: &str, consumer: &str) -> (Subscriber, Handled) {
    let handled = Handled::default();
    let record = handled.clone();
    let handler = handler_fn(move |event| {
        let record = record.clone();
        async move {
            record.push(&event);
            Ok::<(), HandlerError>(())
        }
    });
    let subscriber = broker
        .broker
        .subscribe(subscription(group, consumer), handler)
        .await
        .unwrap();
    (subscriber, handled)
}

async fn publish(broker: &TestBroker, events: &[CloudEvent]) {
    for event in events {
        broker.broker.publish("catalog", event).await.unwrap();
    }
}

#[tokio::test]
async fn every_group_gets_every_event_once() {
    let broker = TestBroker::new();
    let (feed, feed_handled) = recording(&broker, "feed", "feed-1").await;
    let (chat, chat_handled) = recording(&broker, "chat", "chat-1").await;

    publish(&broker, &[event("a"), event("b"), event("c")]).await;

    assert_eq!(feed_handled.wait_for(3).await, ["a", "b", "c"]);
    assert_eq!(chat_handled.wait_for(3).await, ["a", "b", "c"]);
    feed.shutdown().await;
    chat.shutdown().await;
    assert_eq!(broker.pending("catalog", "feed").await, 0);
    broker.clean().await;
}

#[tokio::test]
async fn events_published_before_the_first_subscription_are_delivered() {
    let broker = TestBroker::new();
    publish(&broker, &[event("early")]).await;
    let (feed, handled) = recording(&broker, "feed", "feed-1").await;

    assert_eq!(handled.wait_for(1).await, ["early"]);
    feed.shutdown().await;
    broker.clean().await;
}

#[tokio::test]
async fn a_duplicate_event_is_handled_once_and_acknowledged() {
    let broker = TestBroker::new();
    let (feed, handled) = recording(&broker, "feed", "feed-1").await;
    let original = event("a");

    publish(&broker, &[original.clone(), original.clone(), event("b")]).await;

    assert_eq!(handled.wait_for(2).await, ["a", "b"]);
    // A duplicate seen while the original was being handled waits for a claim.
    let deadline = Instant::now() + WAIT;
    while broker.pending("catalog", "feed").await > 0 {
        assert!(
            Instant::now() < deadline,
            "the duplicate was never acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(handled.subjects().len(), 2);
    feed.shutdown().await;
    broker.clean().await;
}

#[tokio::test]
async fn a_failing_event_is_retried_then_dead_lettered_without_holding_up_others() {
    let broker = TestBroker::new();
    let attempts = Arc::new(Mutex::new(HashMap::<String, u32>::new()));
    let handled = Handled::default();
    let (count, record) = (Arc::clone(&attempts), handled.clone());
    let handler = handler_fn(move |event: CloudEvent| {
        let (count, record) = (Arc::clone(&count), record.clone());
        async move {
            let subject = event.subject.clone().unwrap_or_default();
            let attempt = {
                let mut count = count.lock().unwrap();
                let attempt = count.entry(subject.clone()).or_default();
                *attempt += 1;
                *attempt
            };
            match subject.as_str() {
                "poison" => Err::<(), HandlerError>("cannot handle poison".into()),
                "flaky" if attempt < 3 => Err("not yet".into()),
                _ => {
                    record.push(&event);
                    Ok(())
                }
            }
        }
    });
    let feed = broker
        .broker
        .subscribe(subscription("feed", "feed-1"), handler)
        .await
        .unwrap();

    publish(&broker, &[event("poison"), event("flaky"), event("good")]).await;

    assert_eq!(handled.wait_for(2).await, ["flaky", "good"]);
    let deadline = Instant::now() + WAIT;
    while broker.dead_letters("feed").await.is_empty() {
        assert!(Instant::now() < deadline, "poison never dead-lettered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dead = broker.dead_letters("feed").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["error"], "cannot handle poison");
    assert_eq!(dead[0]["attempts"], "3");
    let dead_event: CloudEvent = serde_json::from_str(&dead[0]["event"]).unwrap();
    assert_eq!(dead_event.subject.as_deref(), Some("poison"));
    assert_eq!(attempts.lock().unwrap()["poison"], 3);
    assert_eq!(attempts.lock().unwrap()["flaky"], 3);
    feed.shutdown().await;
    assert_eq!(broker.pending("catalog", "feed").await, 0);
    broker.clean().await;
}

#[tokio::test]
async fn a_restarted_consumer_resumes_without_losing_an_event() {
    let broker = TestBroker::new();
    // The first instance hangs on "stuck" and is stopped before it finishes.
    let handled = Handled::default();
    let record = handled.clone();
    let handler = handler_fn(move |event: CloudEvent| {
        let record = record.clone();
        async move {
            if event.subject.as_deref() == Some("stuck") {
                std::future::pending::<()>().await;
            }
            record.push(&event);
            Ok::<(), HandlerError>(())
        }
    });
    let first = broker
        .broker
        .subscribe(subscription("feed", "feed-1"), handler)
        .await
        .unwrap();
    publish(&broker, &[event("a"), event("stuck"), event("b")]).await;
    assert_eq!(handled.wait_for(2).await, ["a", "b"]);
    first.shutdown().await;
    assert_eq!(broker.pending("catalog", "feed").await, 1);

    // Published while no instance runs.
    publish(&broker, &[event("c"), event("d")]).await;
    let (second, handled_after) = recording(&broker, "feed", "feed-1").await;

    assert_eq!(handled_after.wait_for(3).await, ["c", "d", "stuck"]);
    second.shutdown().await;
    assert_eq!(broker.pending("catalog", "feed").await, 0);
    broker.clean().await;
}

#[tokio::test]
async fn deliveries_of_an_instance_that_went_away_are_claimed_by_another() {
    let broker = TestBroker::new();
    let hang = handler_fn(|_| async {
        std::future::pending::<()>().await;
        Ok::<(), HandlerError>(())
    });
    let gone = broker
        .broker
        .subscribe(subscription("feed", "feed-1"), hang)
        .await
        .unwrap();
    publish(&broker, &[event("a")]).await;
    let deadline = Instant::now() + WAIT;
    while broker.pending("catalog", "feed").await == 0 {
        assert!(Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gone.shutdown().await;

    let (other, handled) = recording(&broker, "feed", "feed-2").await;

    assert_eq!(handled.wait_for(1).await, ["a"]);
    other.shutdown().await;
    broker.clean().await;
}

#[tokio::test]
async fn readiness_follows_the_broker() {
    let readiness = Readiness::new();
    let broker = RedisBroker::new(&redis_url(), "test-readiness").unwrap();
    let watch = broker.watch_health(readiness.dependency("redis"));
    let deadline = Instant::now() + WAIT;
    while !readiness.is_ready() {
        assert!(Instant::now() < deadline, "never ready with the broker up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch.abort();

    let unreachable = Readiness::new();
    let nowhere = RedisBroker::new("redis://127.0.0.1:1", "test-readiness").unwrap();
    let watch = nowhere.watch_health(unreachable.dependency("redis"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!unreachable.is_ready());
    watch.abort();
}

#[tokio::test]
async fn shutdown_does_not_wait_for_handlers_that_hang() {
    let broker = TestBroker::new();
    let hang = handler_fn(|_| async {
        std::future::pending::<()>().await;
        Ok::<(), HandlerError>(())
    });
    let mut one_at_a_time = subscription("feed", "feed-1");
    one_at_a_time.delivery.concurrency = 1;
    let feed = broker.broker.subscribe(one_at_a_time, hang).await.unwrap();
    publish(&broker, &[event("a"), event("b")]).await;
    let deadline = Instant::now() + WAIT;
    while broker.pending("catalog", "feed").await < 2 {
        assert!(Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    tokio::time::timeout(Duration::from_secs(5), feed.shutdown())
        .await
        .expect("shutdown waited for a handler that never ends");
    // Both stay unacknowledged, for another instance or a restart.
    assert_eq!(broker.pending("catalog", "feed").await, 2);
    broker.clean().await;
}

/// Waits until `readiness` is `ready`.
async fn wait_until_ready(readiness: &Readiness, ready: bool) {
    let deadline = Instant::now() + WAIT;
    while readiness.is_ready() != ready {
        assert!(Instant::now() < deadline, "readiness never turned {ready}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_publisher_and_consumer_outlast_a_lost_broker_connection() {
    let proxy = Proxy::start(&redis_url()).await;
    let broker = TestBroker::at(proxy.url());
    let readiness = Readiness::new();
    let watch = broker.broker.watch_health(readiness.dependency("redis"));
    wait_until_ready(&readiness, true).await;
    let (feed, handled) = recording(&broker, "feed", "feed-1").await;
    let (events, outbox) = Events::new("catalog");
    let relay = tokio::spawn(relay(
        Arc::new(broker.broker.clone()),
        "catalog".to_owned(),
        outbox,
    ));
    let before = [event("a"), event("b")];
    publish(&broker, &before).await;
    assert_eq!(handled.wait_for(2).await, ["a", "b"]);

    proxy.cut();
    wait_until_ready(&readiness, false).await;
    // A failed publish may still reach the broker later (a client may send what it
    // buffered once reconnected), like an event the relay retries: consumers must
    // take it for the duplicate it is.
    let retried = &before[0];
    assert!(broker.broker.publish("catalog", retried).await.is_err());
    for subject in ["c", "d"] {
        let slot = events.try_reserve().unwrap();
        slot.send("item.created", subject, json!({ "id": subject }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(handled.subjects().len(), 2, "delivered while cut off");

    proxy.restore();
    wait_until_ready(&readiness, true).await;
    // The relay's events, once each; those handled before the cut, not again.
    assert_eq!(handled.wait_for(4).await, ["a", "b", "c", "d"]);
    publish(&broker, &[event("e")]).await;
    assert_eq!(handled.wait_for(5).await, ["a", "b", "c", "d", "e"]);
    drop(events);
    tokio::time::timeout(WAIT, relay)
        .await
        .expect("the relay ends once its outbox is empty")
        .unwrap();
    feed.shutdown().await;
    watch.abort();
    assert_eq!(broker.pending("catalog", "feed").await, 0);
    broker.clean().await;
}
