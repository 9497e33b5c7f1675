//! Events through the real broker at `AMQP_URL` (default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`): delivery to every consumer group,
//! duplicates handled once, retries then dead letters without holding up other events,
//! consumers that restart or go away without losing an event, and publishers and
//! consumers that outlast a lost connection. Each test has exchanges and queues of its
//! own and deletes them at the end.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::options::{
    BasicGetOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use platform::health::Readiness;
use platform::messaging::{
    Broker, CloudEvent, Delivery, Events, HandlerError, RabbitBroker, Subscriber, Subscription,
    handler_fn, relay,
};
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use self::support::proxy::Proxy;

/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(15);

fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// A broker whose exchanges and queues are named after a prefix of this test's own.
struct TestBroker {
    broker: RabbitBroker,
    prefix: String,
    /// A connection of the test's own, to look into the queues.
    connection: Connection,
}

/// A message of a dead-letter queue: its headers, as text, and its event.
#[derive(Debug)]
struct DeadLetter {
    headers: HashMap<String, String>,
    event: CloudEvent,
}

impl TestBroker {
    async fn new() -> Self {
        let prefix = format!("test-{}", Uuid::new_v4());
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .expect("the broker at AMQP_URL is reachable");
        Self {
            broker: self::broker(&prefix),
            prefix,
            connection,
        }
    }

    async fn channel(&self) -> Channel {
        self.connection.create_channel().await.unwrap()
    }

    /// Messages of `queue` waiting for a consumer: neither delivered, nor delivered
    /// and unacknowledged.
    async fn ready(&self, queue: &str) -> u32 {
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        self.channel()
            .await
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .unwrap()
            .message_count()
    }

    /// Waits until `queue` has `count` messages ready.
    async fn wait_ready(&self, queue: &str, count: u32) {
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = self.ready(queue).await;
            if ready == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{queue} has {ready} messages ready, expected {count}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Takes the messages of the dead-letter queue of `group`, once there are `count`.
    async fn dead_letters(&self, group: &str, count: u32) -> Vec<DeadLetter> {
        let queue = self.broker.dead_letter_queue(group);
        self.wait_ready(&queue, count).await;
        let channel = self.channel().await;
        let mut letters = Vec::new();
        let take = BasicGetOptions { no_ack: true };
        while let Some(message) = channel
            .basic_get(queue.as_str().into(), take)
            .await
            .unwrap()
        {
            let delivery = message.delivery;
            let headers = delivery
                .properties
                .headers()
                .clone()
                .unwrap_or_default()
                .inner()
                .iter()
                .map(|(name, value)| (name.to_string(), text(value)))
                .collect();
            let event = serde_json::from_slice(&delivery.data).unwrap();
            letters.push(DeadLetter { headers, event });
        }
        letters
    }

    /// Deletes the exchanges and queues of this test, with those of `groups`.
    async fn clean(self, groups: &[&str]) {
        let channel = self.channel().await;
        let mut queues = vec![self.broker.unrouted_queue("catalog")];
        for group in groups {
            queues.push(self.broker.queue(group));
            queues.push(self.broker.dead_letter_queue(group));
        }
        for queue in queues {
            channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await
                .unwrap();
        }
        for exchange in [
            self.broker.events_exchange(),
            self.broker.unrouted_exchange(),
            self.broker.dead_letter_exchange(),
        ] {
            channel
                .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
                .await
                .unwrap();
        }
        self.connection.close(200, "done".into()).await.unwrap();
    }
}

/// A broker client of its own (with its own connection) under `prefix`.
fn broker(prefix: &str) -> RabbitBroker {
    RabbitBroker::new(&amqp_url(), prefix).unwrap()
}

/// A header value as text.
fn text(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(text) => text.to_string(),
        AMQPValue::ShortString(text) => text.to_string(),
        AMQPValue::LongLongInt(number) => number.to_string(),
        AMQPValue::LongInt(number) => number.to_string(),
        other => format!("{other:?}"),
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
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut subjects = self.subjects();
        subjects.sort();
        subjects
    }
}

/// Subscribes `group` as `consumer` with a handler that records what it handled.
async fn recording(broker: &RabbitBroker, subscription: Subscription) -> (Subscriber, Handled) {
    let handled = Handled::default();
    let record = handled.clone();
    let handler = handler_fn(move |event| {
        let record = record.clone();
        async move {
            record.push(&event);
            Ok::<(), HandlerError>(())
        }
    });
    let subscriber = broker.subscribe(subscription, handler).await.unwrap();
    (subscriber, handled)
}

/// Subscribes with a handler that never finishes, and a flag that turns true once it
/// was called.
async fn hanging(broker: &RabbitBroker, subscription: Subscription) -> (Subscriber, Entered) {
    let entered = Entered::default();
    let flag = entered.clone();
    let hang = handler_fn(move |_| {
        flag.0.store(true, Ordering::Release);
        async {
            std::future::pending::<()>().await;
            Ok::<(), HandlerError>(())
        }
    });
    let subscriber = broker.subscribe(subscription, hang).await.unwrap();
    (subscriber, entered)
}

/// Whether a handler was called.
#[derive(Clone, Default)]
struct Entered(Arc<AtomicBool>);

impl Entered {
    async fn wait(&self) {
        let deadline = Instant::now() + WAIT;
        while !self.0.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "never delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn publish(broker: &TestBroker, events: &[CloudEvent]) {
    for event in events {
        broker.broker.publish("catalog", event).await.unwrap();
    }
}

#[tokio::test]
async fn every_group_gets_every_event_once() {
    let broker = TestBroker::new().await;
    let (feed, feed_handled) = recording(&broker.broker, subscription("feed", "feed-1")).await;
    let (chat, chat_handled) = recording(&broker.broker, subscription("chat", "chat-1")).await;

    publish(&broker, &[event("a"), event("b"), event("c")]).await;

    assert_eq!(feed_handled.wait_for(3).await, ["a", "b", "c"]);
    assert_eq!(chat_handled.wait_for(3).await, ["a", "b", "c"]);
    feed.shutdown().await;
    chat.shutdown().await;
    // Nothing came back to the queues: every delivery was acknowledged.
    assert_eq!(broker.ready(&broker.broker.queue("feed")).await, 0);
    assert_eq!(broker.ready(&broker.broker.queue("chat")).await, 0);
    broker.clean(&["feed", "chat"]).await;
}

#[tokio::test]
async fn events_published_before_the_first_subscription_are_delivered() {
    let broker = TestBroker::new().await;
    publish(&broker, &[event("early")]).await;
    let (feed, handled) = recording(&broker.broker, subscription("feed", "feed-1")).await;

    assert_eq!(handled.wait_for(1).await, ["early"]);
    feed.shutdown().await;
    assert_eq!(
        broker.ready(&broker.broker.unrouted_queue("catalog")).await,
        0
    );
    broker.clean(&["feed"]).await;
}

#[tokio::test]
async fn a_duplicate_event_is_handled_once_and_acknowledged() {
    let broker = TestBroker::new().await;
    let (feed, handled) = recording(&broker.broker, subscription("feed", "feed-1")).await;
    let original = event("a");

    publish(&broker, &[original.clone(), original.clone(), event("b")]).await;

    assert_eq!(handled.wait_for(2).await, ["a", "b"]);
    feed.shutdown().await;
    // An unacknowledged duplicate would be back in the queue.
    assert_eq!(broker.ready(&broker.broker.queue("feed")).await, 0);
    assert_eq!(handled.subjects().len(), 2);
    broker.clean(&["feed"]).await;
}

#[tokio::test]
async fn a_failing_event_is_retried_then_dead_lettered_without_holding_up_others() {
    let broker = TestBroker::new().await;
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
    let dead = broker.dead_letters("feed", 1).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].headers["error"], "cannot handle poison");
    assert_eq!(dead[0].headers["attempts"], "3");
    assert_eq!(
        dead[0].headers["routing-key"],
        "catalog.test.catalog.item.created.v1"
    );
    assert_eq!(dead[0].event.subject.as_deref(), Some("poison"));
    assert_eq!(attempts.lock().unwrap()["poison"], 3);
    assert_eq!(attempts.lock().unwrap()["flaky"], 3);
    feed.shutdown().await;
    assert_eq!(broker.ready(&broker.broker.queue("feed")).await, 0);
    broker.clean(&["feed"]).await;
}

#[tokio::test]
async fn a_restarted_consumer_resumes_without_losing_an_event() {
    let broker = TestBroker::new().await;
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
    let queue = broker.broker.queue("feed");
    broker.wait_ready(&queue, 1).await;

    // Published while no instance runs.
    publish(&broker, &[event("c"), event("d")]).await;
    let (second, handled_after) = recording(&broker.broker, subscription("feed", "feed-1")).await;

    assert_eq!(handled_after.wait_for(3).await, ["c", "d", "stuck"]);
    second.shutdown().await;
    assert_eq!(broker.ready(&queue).await, 0);
    broker.clean(&["feed"]).await;
}

#[tokio::test]
async fn deliveries_of_an_instance_that_went_away_are_taken_over_by_another() {
    let broker = TestBroker::new().await;
    // Two instances, each with a connection of its own.
    let gone_instance = self::broker(&broker.prefix);
    let (gone, entered) = hanging(&gone_instance, subscription("feed", "feed-1")).await;
    publish(&broker, &[event("a")]).await;
    entered.wait().await;
    let (other, handled) = recording(&broker.broker, subscription("feed", "feed-2")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(handled.subjects().is_empty(), "delivered to two instances");

    gone.shutdown().await;

    assert_eq!(handled.wait_for(1).await, ["a"]);
    other.shutdown().await;
    broker.clean(&["feed"]).await;
}

#[tokio::test]
async fn an_event_delivered_too_often_goes_to_the_dead_letters_unhandled() {
    let broker = TestBroker::new().await;
    let mut once = subscription("feed", "feed-1");
    once.delivery.max_attempts = 1;
    let (first, entered) = hanging(&broker.broker, once.clone()).await;
    publish(&broker, &[event("crashes")]).await;
    entered.wait().await;
    // Returned unacknowledged: the queue counts it.
    first.shutdown().await;

    let (second, handled) = recording(&broker.broker, once).await;

    let dead = broker.dead_letters("feed", 1).await;
    assert_eq!(
        dead[0].headers["error"],
        "delivered too often without an acknowledgement"
    );
    assert_eq!(dead[0].event.subject.as_deref(), Some("crashes"));
    second.shutdown().await;
    assert!(handled.subjects().is_empty());
    assert_eq!(broker.ready(&broker.broker.queue("feed")).await, 0);
    broker.clean(&["feed"]).await;
}

#[tokio::test]
async fn readiness_follows_the_broker() {
    let readiness = Readiness::new();
    let broker = self::broker("test-readiness");
    let watch = broker.watch_health(readiness.dependency("rabbitmq"));
    let deadline = Instant::now() + WAIT;
    while !readiness.is_ready() {
        assert!(Instant::now() < deadline, "never ready with the broker up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch.abort();

    let unreachable = Readiness::new();
    let nowhere =
        RabbitBroker::new("amqp://guest:guest@127.0.0.1:1/%2f", "test-readiness").unwrap();
    let watch = nowhere.watch_health(unreachable.dependency("rabbitmq"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!unreachable.is_ready());
    watch.abort();
}

#[tokio::test]
async fn shutdown_does_not_wait_for_handlers_that_hang() {
    let broker = TestBroker::new().await;
    let mut one_at_a_time = subscription("feed", "feed-1");
    one_at_a_time.delivery.concurrency = 1;
    let (feed, entered) = hanging(&broker.broker, one_at_a_time).await;
    publish(&broker, &[event("a"), event("b")]).await;
    entered.wait().await;

    tokio::time::timeout(Duration::from_secs(5), feed.shutdown())
        .await
        .expect("shutdown waited for a handler that never ends");
    // Both are back in the queue, for another instance or a restart.
    broker.wait_ready(&broker.broker.queue("feed"), 2).await;
    broker.clean(&["feed"]).await;
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
    let broker = TestBroker::new().await;
    let proxy = Proxy::start(&amqp_url()).await;
    let proxied = RabbitBroker::new(proxy.url(), &broker.prefix).unwrap();
    let readiness = Readiness::new();
    let watch = proxied.watch_health(readiness.dependency("rabbitmq"));
    wait_until_ready(&readiness, true).await;
    let (feed, handled) = recording(&proxied, subscription("feed", "feed-1")).await;
    let (events, outbox) = Events::new("catalog");
    let relay = tokio::spawn(relay(
        Arc::new(proxied.clone()),
        "catalog".to_owned(),
        outbox,
    ));
    let before = [event("a"), event("b")];
    for sent in &before {
        proxied.publish("catalog", sent).await.unwrap();
    }
    assert_eq!(handled.wait_for(2).await, ["a", "b"]);

    proxy.cut();
    wait_until_ready(&readiness, false).await;
    // A failed publish may still reach the broker later (a client may send what it
    // buffered once reconnected), like an event the relay retries: consumers must
    // take it for the duplicate it is.
    let retried = &before[0];
    assert!(proxied.publish("catalog", retried).await.is_err());
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
    proxied.publish("catalog", &event("e")).await.unwrap();
    assert_eq!(handled.wait_for(5).await, ["a", "b", "c", "d", "e"]);
    drop(events);
    tokio::time::timeout(WAIT, relay)
        .await
        .expect("the relay ends once its outbox is empty")
        .unwrap();
    feed.shutdown().await;
    watch.abort();
    assert_eq!(broker.ready(&broker.broker.queue("feed")).await, 0);
    broker.clean(&["feed"]).await;
}
