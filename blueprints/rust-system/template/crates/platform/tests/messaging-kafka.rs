//! Events through the real brokers at `KAFKA_BROKERS` (default `127.0.0.1:9092`):
//! delivery to every consumer group, duplicates handled once, retries then dead
//! letters without holding up other events, and consumers that restart or go away
//! without losing an event. Each test has topics and groups of its own and deletes
//! them at the end.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use platform::health::Readiness;
use platform::messaging::{
    Broker, CloudEvent, Delivery, HandlerError, KafkaBroker, Subscriber, Subscription, handler_fn,
};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(30);

/// How long a request to the brokers made by the tests may take.
const REQUEST: Duration = Duration::from_secs(5);

fn kafka_brokers() -> String {
    std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

fn client_config() -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", kafka_brokers());
    config
}

/// A dead-lettered message: its event and headers.
#[derive(Debug)]
struct DeadLetter {
    event: CloudEvent,
    headers: HashMap<String, String>,
}

/// A broker whose topics and groups are under a prefix of this test's own.
struct TestBroker {
    broker: KafkaBroker,
    prefix: String,
}

impl TestBroker {
    fn new() -> Self {
        let prefix = format!("test-{}", Uuid::new_v4());
        Self {
            broker: KafkaBroker::new(&kafka_brokers(), &prefix).unwrap(),
            prefix,
        }
    }

    /// The topics of this test.
    async fn topics(&self) -> Vec<String> {
        let prefix = format!("{}.", self.prefix);
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = client_config().create().unwrap();
            let metadata = consumer
                .fetch_metadata(None, REQUEST)
                .expect("the brokers at KAFKA_BROKERS are reachable");
            metadata
                .topics()
                .iter()
                .map(|topic| topic.name().to_owned())
                .filter(|name| name.starts_with(&prefix))
                .collect()
        })
        .await
        .unwrap()
    }

    /// Deletes the topics of this test and the consumer groups `groups`.
    async fn clean(self, groups: &[&str]) {
        let admin: AdminClient<DefaultClientContext> = client_config().create().unwrap();
        let options = AdminOptions::new().operation_timeout(Some(REQUEST));
        let topics = self.topics().await;
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        for deleted in admin.delete_topics(&topics, &options).await.unwrap() {
            deleted.expect("topic deleted");
        }
        let groups: Vec<String> = groups
            .iter()
            .map(|group| self.broker.group_id(group))
            .collect();
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        if groups.is_empty() {
            return;
        }
        for deleted in admin.delete_groups(&groups, &options).await.unwrap() {
            deleted.expect("group deleted");
        }
    }

    /// The messages of the dead-letter topic of `group`.
    async fn dead_letters(&self, group: &str) -> Vec<DeadLetter> {
        let topic = self.broker.dead_letter_topic(group);
        if !self.topics().await.contains(&topic) {
            return Vec::new();
        }
        // Assigned partitions, no subscription: the group is never joined.
        let reader = format!("{}.reader", self.prefix);
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = client_config()
                .set("group.id", reader)
                .set("enable.auto.commit", "false")
                .create()
                .unwrap();
            let (_, high) = consumer.fetch_watermarks(&topic, 0, REQUEST).unwrap();
            let mut assignment = TopicPartitionList::new();
            assignment
                .add_partition_offset(&topic, 0, Offset::Beginning)
                .unwrap();
            consumer.assign(&assignment).unwrap();
            let deadline = std::time::Instant::now() + WAIT;
            let mut letters = Vec::new();
            while (letters.len() as i64) < high {
                assert!(std::time::Instant::now() < deadline, "dead letters unread");
                let Some(message) = consumer.poll(Duration::from_millis(100)) else {
                    continue;
                };
                let message = message.unwrap();
                let headers = message
                    .headers()
                    .map(|headers| {
                        headers
                            .iter()
                            .map(|header| {
                                let value = header.value.unwrap_or_default();
                                (
                                    header.key.to_owned(),
                                    String::from_utf8_lossy(value).into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let event = serde_json::from_slice(message.payload().unwrap()).unwrap();
                letters.push(DeadLetter { event, headers });
            }
            letters
        })
        .await
        .unwrap()
    }

    /// Events of the topics of `stream` whose offsets `group` has not committed.
    async fn pending(&self, stream: &str, group: &str) -> i64 {
        let prefix = format!("{}.{stream}.", self.prefix);
        let topics: Vec<String> = self
            .topics()
            .await
            .into_iter()
            .filter(|topic| topic.starts_with(&prefix))
            .collect();
        let group_id = self.broker.group_id(group);
        tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer =
                client_config().set("group.id", group_id).create().unwrap();
            let mut pending = 0;
            for topic in topics {
                let metadata = consumer.fetch_metadata(Some(&topic), REQUEST).unwrap();
                let partitions = metadata.topics()[0].partitions().len() as i32;
                let mut list = TopicPartitionList::new();
                for partition in 0..partitions {
                    list.add_partition(&topic, partition);
                }
                let committed = consumer.committed_offsets(list, REQUEST).unwrap();
                for partition in 0..partitions {
                    let (low, high) = consumer
                        .fetch_watermarks(&topic, partition, REQUEST)
                        .unwrap();
                    let position = match committed
                        .find_partition(&topic, partition)
                        .map(|element| element.offset())
                    {
                        Some(Offset::Offset(offset)) => offset,
                        _ => low,
                    };
                    pending += high - position;
                }
            }
            pending
        })
        .await
        .unwrap()
    }

    /// Waits until `group` has committed every event of `stream`.
    async fn wait_until_committed(&self, stream: &str, group: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let pending = self.pending(stream, group).await;
            if pending == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{pending} events never committed"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Quick retries, for tests.
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
        tokio::time::sleep(Duration::from_millis(500)).await;
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

/// Subscribes `group` with a handler that never ends; returns how many deliveries
/// it started.
async fn hanging(
    broker: &TestBroker,
    subscription: Subscription,
) -> (Subscriber, Arc<AtomicUsize>) {
    let started = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&started);
    let hang = handler_fn(move |_| {
        count.fetch_add(1, Ordering::SeqCst);
        async {
            std::future::pending::<()>().await;
            Ok::<(), HandlerError>(())
        }
    });
    let subscriber = broker.broker.subscribe(subscription, hang).await.unwrap();
    (subscriber, started)
}

/// Waits until `started` reaches `count`.
async fn wait_for_starts(started: &AtomicUsize, count: usize) {
    let deadline = Instant::now() + WAIT;
    while started.load(Ordering::SeqCst) < count {
        assert!(Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn publish(broker: &TestBroker, events: &[CloudEvent]) {
    for event in events {
        broker.broker.publish("catalog", event).await.unwrap();
    }
}

#[tokio::test]
async fn each_event_type_goes_to_a_topic_of_its_own() {
    let broker = TestBroker::new();
    let deleted = CloudEvent::new(
        "/test/catalog",
        "test.catalog.item.deleted.v1",
        Some("a".to_owned()),
        json!({ "id": "a" }),
    );
    publish(&broker, &[event("a"), deleted]).await;

    let mut topics = broker.topics().await;
    topics.sort();
    assert_eq!(
        topics,
        [
            format!("{}.catalog.item.created.v1", broker.prefix),
            format!("{}.catalog.item.deleted.v1", broker.prefix),
        ]
    );
    broker.clean(&[]).await;
}

#[tokio::test]
async fn every_group_gets_every_event_once() {
    let broker = TestBroker::new();
    let (feed, feed_handled) = recording(&broker, "feed", "feed-1").await;
    let (chat, chat_handled) = recording(&broker, "chat", "chat-1").await;

    publish(&broker, &[event("a"), event("b"), event("c")]).await;

    assert_eq!(feed_handled.wait_for(3).await, ["a", "b", "c"]);
    assert_eq!(chat_handled.wait_for(3).await, ["a", "b", "c"]);
    broker.wait_until_committed("catalog", "feed").await;
    broker.wait_until_committed("catalog", "chat").await;
    feed.shutdown().await;
    chat.shutdown().await;
    broker.clean(&["feed", "chat"]).await;
}

#[tokio::test]
async fn events_published_before_the_first_subscription_are_delivered() {
    let broker = TestBroker::new();
    publish(&broker, &[event("early")]).await;
    let (feed, handled) = recording(&broker, "feed", "feed-1").await;

    assert_eq!(handled.wait_for(1).await, ["early"]);
    feed.shutdown().await;
    broker.clean(&["feed"]).await;
}

#[tokio::test]
async fn a_duplicate_event_is_handled_once_and_acknowledged() {
    let broker = TestBroker::new();
    let (feed, handled) = recording(&broker, "feed", "feed-1").await;
    let original = event("a");

    publish(&broker, &[original.clone(), original.clone(), event("b")]).await;

    assert_eq!(handled.wait_for(2).await, ["a", "b"]);
    broker.wait_until_committed("catalog", "feed").await;
    assert_eq!(handled.subjects().len(), 2);
    feed.shutdown().await;
    broker.clean(&["feed"]).await;
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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = broker.dead_letters("feed").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].headers["error"], "cannot handle poison");
    assert_eq!(dead[0].headers["attempts"], "3");
    assert_eq!(
        dead[0].headers["topic"],
        broker
            .broker
            .topic("catalog", "test.catalog.item.created.v1")
    );
    assert_eq!(dead[0].event.subject.as_deref(), Some("poison"));
    assert_eq!(attempts.lock().unwrap()["poison"], 3);
    assert_eq!(attempts.lock().unwrap()["flaky"], 3);
    broker.wait_until_committed("catalog", "feed").await;
    feed.shutdown().await;
    broker.clean(&["feed"]).await;
}

#[tokio::test]
async fn a_handler_that_panics_is_retried_then_dead_lettered() {
    let broker = TestBroker::new();
    let attempts = Arc::new(AtomicUsize::new(0));
    let handled = Handled::default();
    let (count, record) = (Arc::clone(&attempts), handled.clone());
    let handler = handler_fn(move |event: CloudEvent| {
        let (count, record) = (Arc::clone(&count), record.clone());
        async move {
            if event.subject.as_deref() == Some("panic") {
                count.fetch_add(1, Ordering::SeqCst);
                panic!("the handler has a bug");
            }
            record.push(&event);
            Ok::<(), HandlerError>(())
        }
    });
    let feed = broker
        .broker
        .subscribe(subscription("feed", "feed-1"), handler)
        .await
        .unwrap();

    publish(&broker, &[event("panic"), event("good")]).await;

    assert_eq!(handled.wait_for(1).await, ["good"]);
    let deadline = Instant::now() + WAIT;
    while broker.dead_letters("feed").await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the panicking event never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = broker.dead_letters("feed").await;
    assert!(dead[0].headers["error"].contains("panicked"), "{dead:?}");
    assert_eq!(dead[0].headers["attempts"], "3");
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    broker.wait_until_committed("catalog", "feed").await;
    feed.shutdown().await;
    broker.clean(&["feed"]).await;
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
    assert!(
        broker.pending("catalog", "feed").await >= 1,
        "the event in flight stays uncommitted"
    );

    // Published while no instance runs.
    publish(&broker, &[event("c"), event("d")]).await;
    let (second, handled_after) = recording(&broker, "feed", "feed-1").await;

    // "b" may come again when it follows "stuck" in its partition: this process
    // remembers it was handled.
    assert_eq!(handled_after.wait_for(3).await, ["c", "d", "stuck"]);
    broker.wait_until_committed("catalog", "feed").await;
    second.shutdown().await;
    broker.clean(&["feed"]).await;
}

#[tokio::test]
async fn deliveries_of_an_instance_that_went_away_are_taken_over_by_another() {
    let broker = TestBroker::new();
    let (gone, started) = hanging(&broker, subscription("feed", "feed-1")).await;
    publish(&broker, &[event("a")]).await;
    wait_for_starts(&started, 1).await;
    gone.shutdown().await;

    let (other, handled) = recording(&broker, "feed", "feed-2").await;

    assert_eq!(handled.wait_for(1).await, ["a"]);
    broker.wait_until_committed("catalog", "feed").await;
    other.shutdown().await;
    broker.clean(&["feed"]).await;
}

#[tokio::test]
async fn readiness_follows_the_broker() {
    let readiness = Readiness::new();
    let broker = KafkaBroker::new(&kafka_brokers(), "test-readiness").unwrap();
    let watch = broker.watch_health(readiness.dependency("kafka"));
    let deadline = Instant::now() + WAIT;
    while !readiness.is_ready() {
        assert!(Instant::now() < deadline, "never ready with the broker up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch.abort();

    let unreachable = Readiness::new();
    let nowhere = KafkaBroker::new("127.0.0.1:1", "test-readiness").unwrap();
    let watch = nowhere.watch_health(unreachable.dependency("kafka"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!unreachable.is_ready());
    watch.abort();
}

#[tokio::test]
async fn shutdown_does_not_wait_for_handlers_that_hang() {
    let broker = TestBroker::new();
    let mut one_at_a_time = subscription("feed", "feed-1");
    one_at_a_time.delivery.concurrency = 1;
    let (feed, started) = hanging(&broker, one_at_a_time).await;
    publish(&broker, &[event("a"), event("b")]).await;
    wait_for_starts(&started, 1).await;

    tokio::time::timeout(Duration::from_secs(10), feed.shutdown())
        .await
        .expect("shutdown waited for a handler that never ends");
    // Both stay uncommitted, for another instance or a restart.
    assert_eq!(broker.pending("catalog", "feed").await, 2);
    broker.clean(&["feed"]).await;
}
