//! Events through the real broker at `NATS_URL` (default `nats://127.0.0.1:4222`, with
//! JetStream enabled): delivery to every consumer group, duplicates handled once,
//! retries then dead letters without holding up other events, and consumers that
//! restart or go away without losing an event, and publishers and consumers that
//! outlast a lost connection. Each test has streams and buckets of its own and deletes
//! them at the end.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::DeleteStreamErrorKind;
use async_nats::jetstream::{self, ErrorCode, consumer::PullConsumer};
use platform::health::Readiness;
use platform::messaging::{
    Broker, CloudEvent, Delivery, Events, HandlerError, NatsBroker, Subscriber, Subscription,
    handler_fn, relay,
};
use serde_json::json;
use tokio::time::Instant;
use uuid::Uuid;

use self::support::proxy::Proxy;

/// Upper bound for anything a test waits for.
const WAIT: Duration = Duration::from_secs(15);

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A broker whose streams and buckets are under a prefix of this test's own, and a
/// JetStream client of the test's own to look at them.
struct TestBroker {
    broker: NatsBroker,
    prefix: String,
    jetstream: jetstream::Context,
}

/// A message of a dead-letter stream.
#[derive(Debug)]
struct DeadLetter {
    error: String,
    attempts: String,
    payload: Vec<u8>,
}

impl TestBroker {
    async fn new() -> Self {
        Self::at(&nats_url()).await
    }

    /// A broker reached at `url`, such as through a [`Proxy`]; the test's own client
    /// connects to `NATS_URL`.
    async fn at(url: &str) -> Self {
        let prefix = format!("test-{}", Uuid::new_v4());
        let client = async_nats::connect(nats_url())
            .await
            .expect("the broker at NATS_URL is reachable");
        Self {
            broker: NatsBroker::new(url, &prefix).unwrap(),
            prefix,
            jetstream: jetstream::new(client),
        }
    }

    /// Deletes the streams (with their consumers) and the buckets that the tests make:
    /// those of the service `catalog` and the groups `feed` and `chat`.
    async fn clean(self) {
        let mut names = vec![self.broker.stream_name("catalog")];
        for group in ["feed", "chat"] {
            names.push(self.broker.dead_letter_stream(group));
            names.push(format!("KV_{}", self.broker.seen_bucket(group)));
        }
        for name in names {
            match self
                .jetstream
                .delete_stream(&name)
                .await
                .map_err(|error| error.kind())
            {
                Ok(_) => {}
                Err(DeleteStreamErrorKind::JetStream(error))
                    if error.error_code() == ErrorCode::STREAM_NOT_FOUND => {}
                Err(error) => panic!("cannot delete {name}: {error}"),
            }
        }
    }

    /// The messages of the dead-letter stream of `group`.
    async fn dead_letters(&self, group: &str) -> Vec<DeadLetter> {
        let Ok(mut stream) = self
            .jetstream
            .get_stream(self.broker.dead_letter_stream(group))
            .await
        else {
            return Vec::new();
        };
        let state = stream.info().await.unwrap().state.clone();
        if state.messages == 0 {
            return Vec::new();
        }
        let mut letters = Vec::new();
        for sequence in state.first_sequence..=state.last_sequence {
            let message = stream.get_raw_message(sequence).await.unwrap();
            let header = |name: &str| {
                message
                    .headers
                    .get(name)
                    .map(|value| value.as_str().to_owned())
                    .unwrap_or_default()
            };
            letters.push(DeadLetter {
                error: header("Dead-Letter-Error"),
                attempts: header("Dead-Letter-Attempts"),
                payload: message.payload.to_vec(),
            });
        }
        letters
    }

    /// Events of `stream` that `group` has not acknowledged: those delivered and
    /// waiting for an acknowledgement, and those not delivered yet; `None` before the
    /// group's consumer exists.
    async fn unacknowledged(&self, stream: &str, group: &str) -> Option<(usize, u64)> {
        let mut consumer: PullConsumer = self
            .jetstream
            .get_consumer_from_stream(group, self.broker.stream_name(stream))
            .await
            .ok()?;
        let info = consumer.info().await.unwrap();
        Some((info.num_ack_pending, info.num_pending))
    }

    /// Waits until `group` has acknowledged every event of `stream`.
    async fn wait_until_all_acknowledged(&self, stream: &str, group: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let unacknowledged = self.unacknowledged(stream, group).await;
            if unacknowledged == Some((0, 0)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "unacknowledged (delivered, undelivered): {unacknowledged:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `group` has at least `count` deliveries of `stream` unacknowledged.
    async fn wait_until_delivered(&self, stream: &str, group: &str, count: usize) {
        let deadline = Instant::now() + WAIT;
        while self
            .unacknowledged(stream, group)
            .await
            .is_none_or(|(delivered, _)| delivered < count)
        {
            assert!(Instant::now() < deadline, "never delivered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The number of events the stream of the service `stream` holds.
    async fn stored(&self, stream: &str) -> u64 {
        let mut stream = self
            .jetstream
            .get_stream(self.broker.stream_name(stream))
            .await
            .unwrap();
        stream.info().await.unwrap().state.messages
    }
}

/// Quick retries and redeliveries, for tests.
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

/// Subscribes as `subscription` says, with a handler that never returns.
async fn hanging(broker: &TestBroker, subscription: Subscription) -> Subscriber {
    let hang = handler_fn(|_| async {
        std::future::pending::<()>().await;
        Ok::<(), HandlerError>(())
    });
    broker.broker.subscribe(subscription, hang).await.unwrap()
}

async fn publish(broker: &TestBroker, events: &[CloudEvent]) {
    for event in events {
        broker.broker.publish("catalog", event).await.unwrap();
    }
}

#[tokio::test]
async fn every_group_gets_every_event_once() {
    let broker = TestBroker::new().await;
    let (feed, feed_handled) = recording(&broker, "feed", "feed-1").await;
    let (chat, chat_handled) = recording(&broker, "chat", "chat-1").await;

    publish(&broker, &[event("a"), event("b"), event("c")]).await;

    assert_eq!(feed_handled.wait_for(3).await, ["a", "b", "c"]);
    assert_eq!(chat_handled.wait_for(3).await, ["a", "b", "c"]);
    broker.wait_until_all_acknowledged("catalog", "feed").await;
    broker.wait_until_all_acknowledged("catalog", "chat").await;
    feed.shutdown().await;
    chat.shutdown().await;
    broker.clean().await;
}

#[tokio::test]
async fn events_published_before_the_first_subscription_are_delivered() {
    let broker = TestBroker::new().await;
    publish(&broker, &[event("early")]).await;
    let (feed, handled) = recording(&broker, "feed", "feed-1").await;

    assert_eq!(handled.wait_for(1).await, ["early"]);
    feed.shutdown().await;
    broker.clean().await;
}

#[tokio::test]
async fn a_duplicate_event_is_handled_once_and_acknowledged() {
    let broker = TestBroker::new().await;
    let (feed, handled) = recording(&broker, "feed", "feed-1").await;
    let original = event("a");

    // A publisher's retry: the stream drops it by its `Nats-Msg-Id`.
    publish(&broker, &[original.clone(), original.clone(), event("b")]).await;
    assert_eq!(broker.stored("catalog").await, 2);
    // The same event again without a message id, as after the stream's duplicate
    // window: the consumer drops it by its event id.
    let subject = format!("{}.events.catalog.again", broker.prefix);
    let payload = serde_json::to_vec(&original).unwrap();
    broker
        .jetstream
        .publish(subject, payload.into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(broker.stored("catalog").await, 3);

    assert_eq!(handled.wait_for(2).await, ["a", "b"]);
    // A duplicate seen while the original was being handled waits for its claim.
    broker.wait_until_all_acknowledged("catalog", "feed").await;
    assert_eq!(handled.subjects().len(), 2);
    assert!(broker.dead_letters("feed").await.is_empty());
    feed.shutdown().await;
    broker.clean().await;
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
    let deadline = Instant::now() + WAIT;
    while broker.dead_letters("feed").await.is_empty() {
        assert!(Instant::now() < deadline, "poison never dead-lettered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dead = broker.dead_letters("feed").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].error, "cannot handle poison");
    assert_eq!(dead[0].attempts, "3");
    let dead_event: CloudEvent = serde_json::from_slice(&dead[0].payload).unwrap();
    assert_eq!(dead_event.subject.as_deref(), Some("poison"));
    assert_eq!(attempts.lock().unwrap()["poison"], 3);
    assert_eq!(attempts.lock().unwrap()["flaky"], 3);
    broker.wait_until_all_acknowledged("catalog", "feed").await;
    feed.shutdown().await;
    broker.clean().await;
}

#[tokio::test]
async fn a_message_that_is_not_a_cloudevent_is_dead_lettered() {
    let broker = TestBroker::new().await;
    let (feed, handled) = recording(&broker, "feed", "feed-1").await;
    publish(&broker, &[event("a")]).await;
    let subject = format!("{}.events.catalog.garbage", broker.prefix);
    broker
        .jetstream
        .publish(subject, "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    publish(&broker, &[event("b")]).await;

    assert_eq!(handled.wait_for(2).await, ["a", "b"]);
    broker.wait_until_all_acknowledged("catalog", "feed").await;
    let dead = broker.dead_letters("feed").await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].error, "not a CloudEvent");
    assert_eq!(dead[0].payload, b"not json");
    feed.shutdown().await;
    broker.clean().await;
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
    assert_eq!(
        broker.unacknowledged("catalog", "feed").await,
        Some((1, 0)),
        "only the event in flight at shutdown is left"
    );

    // Published while no instance runs.
    publish(&broker, &[event("c"), event("d")]).await;
    let (second, handled_after) = recording(&broker, "feed", "feed-1").await;

    assert_eq!(handled_after.wait_for(3).await, ["c", "d", "stuck"]);
    broker.wait_until_all_acknowledged("catalog", "feed").await;
    second.shutdown().await;
    assert!(broker.dead_letters("feed").await.is_empty());
    broker.clean().await;
}

#[tokio::test]
async fn deliveries_of_an_instance_that_went_away_are_taken_over_by_another() {
    let broker = TestBroker::new().await;
    let gone = hanging(&broker, subscription("feed", "feed-1")).await;
    publish(&broker, &[event("a")]).await;
    broker.wait_until_delivered("catalog", "feed", 1).await;
    gone.shutdown().await;

    let (other, handled) = recording(&broker, "feed", "feed-2").await;

    assert_eq!(handled.wait_for(1).await, ["a"]);
    broker.wait_until_all_acknowledged("catalog", "feed").await;
    other.shutdown().await;
    broker.clean().await;
}

#[tokio::test]
async fn readiness_follows_the_broker() {
    let readiness = Readiness::new();
    let broker = NatsBroker::new(&nats_url(), "test-readiness").unwrap();
    let watch = broker.watch_health(readiness.dependency("nats"));
    let deadline = Instant::now() + WAIT;
    while !readiness.is_ready() {
        assert!(Instant::now() < deadline, "never ready with the broker up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch.abort();

    let unreachable = Readiness::new();
    let nowhere = NatsBroker::new("nats://127.0.0.1:1", "test-readiness").unwrap();
    let watch = nowhere.watch_health(unreachable.dependency("nats"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!unreachable.is_ready());
    watch.abort();
}

#[tokio::test]
async fn shutdown_does_not_wait_for_handlers_that_hang() {
    let broker = TestBroker::new().await;
    let mut one_at_a_time = subscription("feed", "feed-1");
    one_at_a_time.delivery.concurrency = 1;
    let feed = hanging(&broker, one_at_a_time).await;
    publish(&broker, &[event("a"), event("b")]).await;
    broker.wait_until_delivered("catalog", "feed", 1).await;

    tokio::time::timeout(Duration::from_secs(5), feed.shutdown())
        .await
        .expect("shutdown waited for a handler that never ends");
    // Neither was acknowledged: another instance handles both.
    let (other, handled) = recording(&broker, "feed", "feed-2").await;
    assert_eq!(handled.wait_for(2).await, ["a", "b"]);
    broker.wait_until_all_acknowledged("catalog", "feed").await;
    other.shutdown().await;
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
    let proxy = Proxy::start(&nats_url()).await;
    let broker = TestBroker::at(proxy.url()).await;
    let readiness = Readiness::new();
    let watch = broker.broker.watch_health(readiness.dependency("nats"));
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
    broker.wait_until_all_acknowledged("catalog", "feed").await;
    broker.clean().await;
}
