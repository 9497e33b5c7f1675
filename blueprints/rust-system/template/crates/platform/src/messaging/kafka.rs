//! The [`Broker`] on Kafka, through librdkafka.
//!
//! - Each event type has a topic of its own: the event `<system>.<service>.<kind>.v1`
//!   of the service `<service>` goes to `<prefix>.<service>.<kind>.v1`, created on first
//!   use with [`TOPIC_PARTITIONS`] partitions. Events are keyed by their subject, so the
//!   events of one item stay in order in one partition.
//! - A consuming service subscribes, as the consumer group `<prefix>.<group>`, to every
//!   topic of the services it reads (`^<prefix>\.<service>\..*`), including topics
//!   created later; the instances of the service share the partitions. A group without
//!   committed offsets starts from the oldest event, so none published before its first
//!   start is missed.
//! - Up to [`super::Delivery::concurrency`] events are handled at once, and the offset
//!   of a partition is committed only up to its first event still being handled: a
//!   restarted instance, or the one that takes a partition over after a rebalance, gets
//!   again every event that was not finished. An instance whose heartbeats stop for
//!   [`super::Delivery::claim_idle`] (at least six seconds) loses its partitions to the
//!   others.
//! - Handled event ids are remembered in the process ([`SeenIds`]), per group, so
//!   redeliveries to the same process are acknowledged without handling them again.
//! - Events that fail every attempt, and messages that are not CloudEvents, go to the
//!   topic `<prefix>.dead-letter.<group>` with the error, the attempts and where they
//!   came from as headers; then their offset is committed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{
    Broker, CloudEvent, DEDUP_CAPACITY, Handler, HandlerError, MessagingError, SeenIds, Subscriber,
    Subscription,
};
use crate::config::{self, ConfigError};
use crate::health::Dependency;
use crate::propagation;

/// The variable holding the brokers' addresses, `host:port` separated by commas.
pub const KAFKA_BROKERS_VAR: &str = "KAFKA_BROKERS";

/// Partitions of each event topic: how many instances of a consuming service can
/// share its work.
pub const TOPIC_PARTITIONS: i32 = 3;

/// Replicas of each topic created here: the broker's default replication factor.
const REPLICATION: i32 = -1;

/// How long a publish may wait for the broker before it fails (and is retried by the
/// relay).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a topic creation or a metadata request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a consumer looks for new topics of the services it reads.
const TOPIC_REFRESH: Duration = Duration::from_secs(3);

/// How often [`KafkaBroker::watch_health`] asks the brokers for metadata.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// Events on Kafka; clones share the connections.
#[derive(Clone)]
pub struct KafkaBroker {
    inner: Arc<Inner>,
}

struct Inner {
    /// The bootstrap brokers.
    brokers: String,
    /// Prefix of every topic and consumer group: the system's name.
    prefix: String,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// Topics known to exist, so that publishing creates each once.
    topics: Mutex<HashSet<String>>,
    /// The event ids each consumer group of this process handled.
    seen: Mutex<HashMap<String, Arc<SeenIds>>>,
}

impl fmt::Debug for KafkaBroker {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("KafkaBroker")
            .field("brokers", &self.inner.brokers)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

impl KafkaBroker {
    /// The brokers `brokers` (`host:port`, separated by commas), with topics and groups
    /// under `prefix`. Connections are made in the background and remade after
    /// failures, so the brokers may be down when this is called.
    pub fn new(brokers: &str, prefix: &str) -> Result<Self, MessagingError> {
        let brokers = parse_brokers(brokers)?;
        let producer: FutureProducer = client_config(&brokers)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            // The relay sends one event at a time: waiting for more only adds latency.
            .set("linger.ms", "0")
            .set("message.timeout.ms", millis(PUBLISH_TIMEOUT))
            .create()
            .map_err(broker_error)?;
        let admin = client_config(&brokers).create().map_err(broker_error)?;
        Ok(Self {
            inner: Arc::new(Inner {
                brokers,
                prefix: prefix.to_owned(),
                producer,
                admin,
                topics: Mutex::default(),
                seen: Mutex::default(),
            }),
        })
    }

    /// The brokers of `KAFKA_BROKERS` (default `127.0.0.1:9092`), with topics and groups
    /// under the system's name.
    pub fn from_env() -> Result<Self, ConfigError> {
        let brokers: String = config::var_or(KAFKA_BROKERS_VAR, "127.0.0.1:9092")?;
        Self::new(&brokers, crate::SYSTEM.name).map_err(|error| ConfigError::Invalid {
            name: KAFKA_BROKERS_VAR,
            value: brokers_without_passwords(&brokers),
            reason: error.to_string(),
        })
    }

    /// Keeps `dependency` up while the brokers answer a metadata request, checking
    /// every [`HEALTH_INTERVAL`], until the task is aborted.
    pub fn watch_health(&self, dependency: Dependency) -> JoinHandle<()> {
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            loop {
                let client = Arc::clone(&inner);
                let metadata = tokio::task::spawn_blocking(move || {
                    client
                        .producer
                        .client()
                        .fetch_metadata(None, REQUEST_TIMEOUT)
                        .map(|metadata| !metadata.brokers().is_empty())
                })
                .await;
                dependency.set_up(matches!(metadata, Ok(Ok(true))));
                tokio::time::sleep(HEALTH_INTERVAL).await;
            }
        })
    }

    /// The topic of the events of type `event_type` published by the service `stream`.
    pub fn topic(&self, stream: &str, event_type: &str) -> String {
        self.inner.topic(stream, event_type)
    }

    /// The dead-letter topic of the consumer group `group`.
    pub fn dead_letter_topic(&self, group: &str) -> String {
        self.inner.dead_letter_topic(group)
    }

    /// The Kafka consumer group of the consuming service `group`.
    pub fn group_id(&self, group: &str) -> String {
        self.inner.group_id(group)
    }
}

impl Inner {
    /// `<prefix>.<stream>.<kind>.v1` for the event type `<system>.<stream>.<kind>.v1`.
    fn topic(&self, stream: &str, event_type: &str) -> String {
        let kind = event_type.splitn(3, '.').nth(2).unwrap_or(event_type);
        topic_name(&format!("{}.{stream}.{kind}", self.prefix))
    }

    fn dead_letter_topic(&self, group: &str) -> String {
        topic_name(&format!("{}.dead-letter.{group}", self.prefix))
    }

    fn group_id(&self, group: &str) -> String {
        format!("{}.{group}", self.prefix)
    }

    /// The pattern of every topic of the service `stream`.
    fn stream_pattern(&self, stream: &str) -> String {
        let prefix = topic_name(&format!("{}.{stream}.", self.prefix));
        format!("^{}.*", prefix.replace('.', "\\."))
    }

    fn seen(&self, group: &str, subscription: &Subscription) -> Arc<SeenIds> {
        let mut seen = lock(&self.seen);
        let ids = seen.entry(group.to_owned()).or_insert_with(|| {
            Arc::new(SeenIds::new(
                subscription.delivery.dedup_ttl,
                DEDUP_CAPACITY,
            ))
        });
        Arc::clone(ids)
    }

    /// Creates `topic` unless it is known to exist.
    async fn ensure_topic(&self, topic: &str, partitions: i32) -> Result<(), MessagingError> {
        if lock(&self.topics).contains(topic) {
            return Ok(());
        }
        let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(REPLICATION));
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let results = self
            .admin
            .create_topics([&new_topic], &options)
            .await
            .map_err(broker_error)?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => {
                    return Err(MessagingError::Broker(format!(
                        "cannot create the topic {name}: {code}"
                    )));
                }
            }
        }
        lock(&self.topics).insert(topic.to_owned());
        Ok(())
    }

    /// Sends `payload` to `topic` and waits until the brokers have stored it.
    async fn send(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> Result<(), MessagingError> {
        let record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(headers);
        if let Err((error, _)) = self.producer.send(record, PUBLISH_TIMEOUT).await {
            // The topic may have been deleted: create it again next time.
            lock(&self.topics).remove(topic);
            return Err(broker_error(error));
        }
        Ok(())
    }
}

/// A topic name with the characters Kafka refuses replaced by `_`.
fn topic_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// `brokers` without spaces, or an error when an address is missing.
fn parse_brokers(brokers: &str) -> Result<String, MessagingError> {
    let addresses: Vec<&str> = brokers.split(',').map(str::trim).collect();
    if addresses.iter().any(|address| address.is_empty()) {
        return Err(MessagingError::Broker(
            "expected host:port addresses separated by commas".to_owned(),
        ));
    }
    Ok(addresses.join(","))
}

/// `brokers` with whatever precedes an `@` in each address (credentials) masked, for
/// messages.
fn brokers_without_passwords(brokers: &str) -> String {
    brokers
        .split(',')
        .map(super::without_password)
        .collect::<Vec<_>>()
        .join(",")
}

fn client_config(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("socket.connection.setup.timeout.ms", "5000");
    config
}

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

fn broker_error(error: KafkaError) -> MessagingError {
    MessagingError::Broker(error.to_string())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl Broker for KafkaBroker {
    async fn publish(&self, stream: &str, event: &CloudEvent) -> Result<(), MessagingError> {
        let topic = self.inner.topic(stream, &event.event_type);
        self.inner.ensure_topic(&topic, TOPIC_PARTITIONS).await?;
        let payload =
            serde_json::to_vec(event).map_err(|error| MessagingError::Broker(error.to_string()))?;
        // The structured mode of the CloudEvents Kafka binding.
        let headers = OwnedHeaders::new().insert(Header {
            key: "content-type",
            value: Some("application/cloudevents+json"),
        });
        let key = event.subject.as_deref().unwrap_or(&event.id);
        self.inner.send(&topic, key, &payload, headers).await
    }

    async fn subscribe(
        &self,
        subscription: Subscription,
        handler: Arc<dyn Handler>,
    ) -> Result<Subscriber, MessagingError> {
        let delivery = &subscription.delivery;
        let session = delivery.claim_idle.max(Duration::from_secs(6));
        let offsets = Arc::new(Mutex::new(Offsets::default()));
        let consumer: StreamConsumer<Rebalancing> = client_config(&self.inner.brokers)
            .set("group.id", self.inner.group_id(&subscription.group))
            .set("client.id", &subscription.consumer)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", millis(session))
            .set("heartbeat.interval.ms", millis(session / 3))
            .set("topic.metadata.refresh.interval.ms", millis(TOPIC_REFRESH))
            .create_with_context(Rebalancing {
                offsets: Arc::clone(&offsets),
            })
            .map_err(broker_error)?;
        let patterns: Vec<String> = subscription
            .streams
            .iter()
            .map(|stream| self.inner.stream_pattern(stream))
            .collect();
        let patterns: Vec<&str> = patterns.iter().map(String::as_str).collect();
        consumer.subscribe(&patterns).map_err(broker_error)?;
        let (stop, stopped) = watch::channel(false);
        let run = GroupConsumer {
            job: Job {
                inner: Arc::clone(&self.inner),
                seen: self.inner.seen(&subscription.group, &subscription),
                subscription: Arc::new(subscription),
                handler,
            },
            consumer,
            offsets,
        };
        let task = tokio::spawn(run.run(stopped));
        Ok(Subscriber::new(stop, task))
    }
}

/// Where each assigned partition stands: the offsets being handled, and how far it
/// was read and committed.
#[derive(Debug, Default)]
struct Offsets {
    partitions: HashMap<(String, i32), Partition>,
    /// Numbers the assignments of partitions, so that a delivery that finishes after
    /// its partition was revoked does not count for a later assignment.
    next_epoch: u64,
}

#[derive(Debug)]
struct Partition {
    epoch: u64,
    /// Offsets received and not finished yet.
    in_flight: BTreeSet<i64>,
    /// The offset after the last one received.
    end: i64,
    /// The last offset committed (the next one to read).
    committed: i64,
}

impl Partition {
    /// The offset to commit: the first one not finished.
    fn position(&self) -> i64 {
        self.in_flight.first().copied().unwrap_or(self.end)
    }
}

/// A delivery that is done: handled, a duplicate or dead-lettered.
#[derive(Debug)]
struct Finished {
    topic: String,
    partition: i32,
    offset: i64,
    epoch: u64,
}

impl Offsets {
    /// Records that `offset` of `topic`/`partition` is being handled; returns the
    /// partition's epoch.
    fn received(&mut self, topic: &str, partition: i32, offset: i64) -> u64 {
        let next_epoch = &mut self.next_epoch;
        let state = self
            .partitions
            .entry((topic.to_owned(), partition))
            .or_insert_with(|| {
                *next_epoch += 1;
                Partition {
                    epoch: *next_epoch,
                    in_flight: BTreeSet::new(),
                    end: offset,
                    committed: offset,
                }
            });
        state.in_flight.insert(offset);
        state.end = state.end.max(offset + 1);
        state.epoch
    }

    fn finished(&mut self, finished: &Finished) {
        let key = (finished.topic.clone(), finished.partition);
        if let Some(state) = self.partitions.get_mut(&key)
            && state.epoch == finished.epoch
        {
            state.in_flight.remove(&finished.offset);
        }
    }

    /// The partitions whose position moved since their last commit, marked committed.
    fn advanced(&mut self) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for ((topic, partition), state) in &mut self.partitions {
            let position = state.position();
            if position > state.committed
                && list
                    .add_partition_offset(topic, *partition, Offset::Offset(position))
                    .is_ok()
            {
                state.committed = position;
            }
        }
        list
    }

    /// Forgets the partitions of `revoked`; returns the positions to commit for them.
    fn revoke(&mut self, revoked: &TopicPartitionList) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for element in revoked.elements() {
            let key = (element.topic().to_owned(), element.partition());
            if let Some(state) = self.partitions.remove(&key) {
                let position = state.position();
                if position > state.committed {
                    let _ = list.add_partition_offset(&key.0, key.1, Offset::Offset(position));
                }
            }
        }
        list
    }
}

/// The consumer context: commits what is finished before partitions go to another
/// instance, and logs failed commits.
struct Rebalancing {
    offsets: Arc<Mutex<Offsets>>,
}

impl ClientContext for Rebalancing {}

impl ConsumerContext for Rebalancing {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            let commit = lock(&self.offsets).revoke(revoked);
            if commit.count() > 0
                && let Err(error) = consumer.commit(&commit, CommitMode::Sync)
            {
                tracing::warn!(%error, "cannot commit the offsets of revoked partitions");
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result {
            tracing::warn!(%error, "cannot commit offsets: their events may be delivered again");
        }
    }
}

/// The loop of one subscription.
struct GroupConsumer {
    job: Job,
    consumer: StreamConsumer<Rebalancing>,
    offsets: Arc<Mutex<Offsets>>,
}

impl GroupConsumer {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let delivery = self.job.subscription.delivery.clone();
        let mut in_flight: JoinSet<Finished> = JoinSet::new();
        loop {
            // Reads only while fewer than `concurrency` deliveries are in flight, and
            // commits as they finish.
            let failed = tokio::select! {
                biased;
                _ = stopped.wait_for(|stopped| *stopped) => break,
                Some(joined) = in_flight.join_next() => {
                    if let Ok(finished) = joined {
                        lock(&self.offsets).finished(&finished);
                    }
                    self.commit_advanced();
                    None
                }
                received = self.consumer.recv(), if in_flight.len() < delivery.concurrency => {
                    match received {
                        Ok(message) => {
                            let message = message.detach();
                            let epoch = lock(&self.offsets).received(
                                message.topic(),
                                message.partition(),
                                message.offset(),
                            );
                            in_flight.spawn(self.job.clone().run(message, epoch));
                            None
                        }
                        Err(error) => Some(error),
                    }
                }
            };
            if let Some(error) = failed {
                tracing::warn!(%error, "cannot read events: retrying");
                pause(
                    &mut stopped,
                    delivery.retry_base.max(Duration::from_millis(500)),
                )
                .await;
            }
        }
        let drained = tokio::time::timeout(delivery.drain_timeout, async {
            while let Some(joined) = in_flight.join_next().await {
                if let Ok(finished) = joined {
                    lock(&self.offsets).finished(&finished);
                }
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                unfinished = in_flight.len(),
                "deliveries still running at shutdown: they will be delivered again"
            );
            in_flight.abort_all();
        }
        // Committing and leaving the group wait for the brokers: off the runtime.
        let Self {
            consumer, offsets, ..
        } = self;
        let closed = tokio::task::spawn_blocking(move || {
            let commit = lock(&offsets).advanced();
            if commit.count() > 0
                && let Err(error) = consumer.commit(&commit, CommitMode::Sync)
            {
                tracing::warn!(%error, "cannot commit offsets at shutdown: their events will be delivered again");
            }
            drop(consumer);
        })
        .await;
        if let Err(error) = closed {
            tracing::warn!(%error, "the consumer did not close cleanly");
        }
    }

    /// Commits, without waiting, the partitions whose first unfinished offset moved.
    fn commit_advanced(&self) {
        let commit = lock(&self.offsets).advanced();
        if commit.count() > 0
            && let Err(error) = self.consumer.commit(&commit, CommitMode::Async)
        {
            tracing::warn!(%error, "cannot commit offsets: their events may be delivered again");
        }
    }
}

/// Waits for `duration`, or less when shutdown begins.
async fn pause(stopped: &mut watch::Receiver<bool>, duration: Duration) {
    let _ = tokio::time::timeout(duration, stopped.changed()).await;
}

/// The handling of deliveries, shared by those of one subscription.
#[derive(Clone)]
struct Job {
    inner: Arc<Inner>,
    seen: Arc<SeenIds>,
    subscription: Arc<Subscription>,
    handler: Arc<dyn Handler>,
}

/// A task aborted when its handle is dropped: a handler attempt stops with the
/// delivery that awaits it, such as at shutdown.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Job {
    /// Handles `message`, then says it is finished.
    async fn run(self, message: OwnedMessage, epoch: u64) -> Finished {
        self.handle(&message).await;
        Finished {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            offset: message.offset(),
            epoch,
        }
    }

    async fn handle(&self, message: &OwnedMessage) {
        let settings = &self.subscription.delivery;
        let payload = message.payload().unwrap_or_default();
        let Ok(event) = serde_json::from_slice::<CloudEvent>(payload) else {
            self.dead_letter(message, "not a CloudEvent", 0).await;
            return;
        };
        let Some(claim) = self.seen.claim_or_wait(&event.id).await else {
            tracing::debug!(event_id = event.id, "duplicate event acknowledged");
            return;
        };
        let span = tracing::info_span!(
            "consume",
            otel.name = format!("process {}", event.event_type),
            otel.kind = "consumer",
            messaging.system = "kafka",
            messaging.destination.name = message.topic(),
            messaging.destination.partition.id = message.partition(),
            messaging.kafka.offset = message.offset(),
            messaging.message.id = event.id.as_str(),
            messaging.consumer.group.name = self.subscription.group.as_str(),
        );
        let _ = span.set_parent(propagation::extract(&event.trace_headers()));
        let mut attempt = 1;
        let error = loop {
            match self.attempt(&event, &span).await {
                Ok(()) => {
                    claim.handled();
                    return;
                }
                Err(error) if attempt >= settings.max_attempts => break error,
                Err(error) => {
                    let backoff = settings.backoff(attempt);
                    span.in_scope(|| {
                        tracing::warn!(%error, attempt, ?backoff, event_id = event.id, "handler failed: retrying");
                    });
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                }
            }
        };
        span.in_scope(|| {
            tracing::error!(%error, attempt, event_id = event.id, "handler failed every attempt: dead-lettered");
        });
        self.dead_letter(message, &error.to_string(), attempt).await;
        claim.handled();
    }

    /// Calls the handler with `event` in a task of its own, so that a handler that
    /// panics counts as a failed attempt instead of leaving its offset unfinished.
    async fn attempt(&self, event: &CloudEvent, span: &tracing::Span) -> Result<(), HandlerError> {
        let (handler, event) = (Arc::clone(&self.handler), event.clone());
        let mut task = AbortOnDrop(tokio::spawn(
            async move { handler.handle(&event).await }.instrument(span.clone()),
        ));
        match (&mut task.0).await {
            Ok(result) => result,
            Err(error) => Err(format!("the handler failed: {error}").into()),
        }
    }

    /// Sends `message` to the dead-letter topic with `error` and `attempts`, retrying
    /// until the brokers have stored it: its offset is committed only afterwards.
    async fn dead_letter(&self, message: &OwnedMessage, error: &str, attempts: u32) {
        let settings = &self.subscription.delivery;
        let topic = self.inner.dead_letter_topic(&self.subscription.group);
        let attempts = attempts.to_string();
        let (partition, offset) = (
            message.partition().to_string(),
            message.offset().to_string(),
        );
        let key = message.key().unwrap_or_default();
        let mut retry = 1;
        loop {
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "error",
                    value: Some(error),
                })
                .insert(Header {
                    key: "attempts",
                    value: Some(&attempts),
                })
                .insert(Header {
                    key: "topic",
                    value: Some(message.topic()),
                })
                .insert(Header {
                    key: "partition",
                    value: Some(&partition),
                })
                .insert(Header {
                    key: "offset",
                    value: Some(&offset),
                });
            let sent = match self.inner.ensure_topic(&topic, 1).await {
                Ok(()) => {
                    let payload = message.payload().unwrap_or_default();
                    let key = String::from_utf8_lossy(key);
                    self.inner.send(&topic, &key, payload, headers).await
                }
                Err(error) => Err(error),
            };
            match sent {
                Ok(()) => return,
                Err(error) => {
                    let backoff = settings.backoff(retry).max(settings.retry_base);
                    tracing::warn!(%error, ?backoff, "cannot dead-letter an event: retrying");
                    tokio::time::sleep(backoff).await;
                    retry = retry.saturating_add(1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(prefix: &str) -> KafkaBroker {
        KafkaBroker::new("127.0.0.1:9092", prefix).unwrap()
    }

    #[test]
    fn each_event_type_has_a_topic_of_its_own() {
        let broker = broker("shop");
        assert_eq!(
            broker.topic("catalog", "shop.catalog.item.created.v1"),
            "shop.catalog.item.created.v1"
        );
        assert_eq!(
            broker.topic("catalog", "other.catalog.item.deleted.v1"),
            "shop.catalog.item.deleted.v1"
        );
        assert_eq!(broker.topic("catalog", "odd type"), "shop.catalog.odd_type");
        assert_eq!(broker.dead_letter_topic("feed"), "shop.dead-letter.feed");
        assert_eq!(broker.group_id("feed"), "shop.feed");
    }

    #[test]
    fn a_subscription_matches_the_topics_of_its_services_only() {
        let inner = &broker("test-1").inner;
        assert_eq!(inner.stream_pattern("catalog"), "^test-1\\.catalog\\..*");
    }

    #[test]
    fn broker_lists_are_checked_and_hide_credentials() {
        assert!(KafkaBroker::new("kafka:9092, other:9092", "shop").is_ok());
        assert!(KafkaBroker::new("kafka:9092,", "shop").is_err());
        assert_eq!(
            brokers_without_passwords("user:secret@kafka:9092,other:9092"),
            "***@kafka:9092,other:9092"
        );
    }

    #[test]
    fn offsets_are_committed_up_to_the_first_unfinished_one() {
        let mut offsets = Offsets::default();
        let epoch = offsets.received("t", 0, 5);
        offsets.received("t", 0, 6);
        offsets.received("t", 0, 7);
        assert_eq!(offsets.advanced().count(), 0, "nothing finished");

        let finished = |offset| Finished {
            topic: "t".to_owned(),
            partition: 0,
            offset,
            epoch,
        };
        offsets.finished(&finished(6));
        assert_eq!(offsets.advanced().count(), 0, "5 is still in flight");
        offsets.finished(&finished(5));
        let commit = offsets.advanced();
        assert_eq!(
            commit.find_partition("t", 0).unwrap().offset(),
            Offset::Offset(7)
        );
        offsets.finished(&finished(7));
        let commit = offsets.advanced();
        assert_eq!(
            commit.find_partition("t", 0).unwrap().offset(),
            Offset::Offset(8)
        );
        assert_eq!(offsets.advanced().count(), 0, "committed already");
    }

    #[test]
    fn deliveries_of_a_revoked_partition_no_longer_count() {
        let mut offsets = Offsets::default();
        let old = offsets.received("t", 0, 1);
        offsets.received("t", 0, 2);
        offsets.finished(&Finished {
            topic: "t".to_owned(),
            partition: 0,
            offset: 1,
            epoch: old,
        });
        let mut revoked = TopicPartitionList::new();
        revoked.add_partition("t", 0);
        let commit = offsets.revoke(&revoked);
        assert_eq!(
            commit.find_partition("t", 0).unwrap().offset(),
            Offset::Offset(2),
            "what finished is committed before the partition goes"
        );

        let new = offsets.received("t", 0, 2);
        assert_ne!(new, old);
        offsets.received("t", 0, 3);
        offsets.finished(&Finished {
            topic: "t".to_owned(),
            partition: 0,
            offset: 2,
            epoch: old,
        });
        assert_eq!(
            offsets.advanced().count(),
            0,
            "a late delivery of the old assignment"
        );
    }
}
