//! The [`Broker`] on NATS JetStream.
//!
//! - A publishing service appends to the stream `<system>-events-<service>`, which holds
//!   the subjects `<system>.events.<service>.>`: each event goes to
//!   `<system>.events.<service>.<event type>` with its id as `Nats-Msg-Id`, so that the
//!   stream drops a publisher's retry within [`DUPLICATE_WINDOW`], and publishing returns
//!   once the stream has acknowledged it. Streams keep about [`STREAM_MAX_LEN`] events.
//! - A consuming service reads each stream through a durable pull consumer named after
//!   itself, so its instances share the work: whichever instance pulls gets the next
//!   events (instance names, [`super::Subscription::consumer`], play no part), and
//!   acknowledges each once it is handled, telling the broker every half
//!   [`super::Delivery::claim_idle`] that it is still at it. An event whose instance
//!   stopped or went away first is delivered again, to any instance, `claim_idle` (the
//!   consumer's `ack_wait`) later, and goes straight to the dead-letter stream once it
//!   has been delivered more than [`super::Delivery::max_attempts`] times. A handler
//!   that never returns keeps its event until its instance stops.
//! - Handled event ids are remembered in the key-value bucket `<system>-seen-<group>`,
//!   shared by the group's instances, for [`super::Delivery::dedup_ttl`] (the bucket's
//!   age limit, which bounds it); while one delivery of an event is being handled, its
//!   key says so and other deliveries of it wait.
//! - Events that fail every attempt, and messages that are not CloudEvents, go to the
//!   stream `<system>-dead-letter-<group>` (subject `<system>.dead-letter.<group>`), with
//!   the error and the attempts in headers, then are terminated.
//!
//! Streams and buckets are created with these settings when they are missing; existing
//! ones keep theirs, so operators may tune them (replicas, limits) with the `nats` CLI.
//! Consumers are created or updated from the [`super::Delivery`] settings at each start.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::consumer::{self, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::kv::{self, CreateErrorKind};
use async_nats::jetstream::message::{AckKind, PublishMessage};
use async_nats::jetstream::response::Response;
use async_nats::jetstream::stream::{self, DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, Message};
use async_nats::{Client, ConnectOptions, ServerAddr};
use async_trait::async_trait;
use futures_util::StreamExt;
use tokio::sync::{OnceCell, Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{
    Broker, Claim, CloudEvent, Handler, MessagingError, Subscriber, Subscription, without_password,
};
use crate::config::{self, ConfigError};
use crate::health::Dependency;
use crate::propagation;

/// The variable holding the broker's URL (several servers: separated by commas).
pub const NATS_URL_VAR: &str = "NATS_URL";

/// About how many events each stream keeps: older ones are discarded.
pub const STREAM_MAX_LEN: i64 = 100_000;

/// How long a stream remembers the ids of the events it stored, dropping a publish of
/// the same id again.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(2 * 60);

/// How many instances of a consuming service may each handle
/// [`super::Delivery::concurrency`] events at once: the consumer's `max_ack_pending` is
/// their product, a bound for the whole group.
const GROUP_INSTANCES: usize = 16;

/// Deliveries past [`super::Delivery::max_attempts`] in which an event is dead-lettered,
/// before the broker stops delivering it: room for dead-lettering to fail a few times.
const DEAD_LETTER_DELIVERIES: i64 = 3;

/// How long a pull request waits for events before the next one replaces it.
const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// How long a JetStream request, a publish acknowledgement included, may take.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the client pings the server, to notice a connection that silently broke.
const PING_INTERVAL: Duration = Duration::from_secs(10);

/// How often [`NatsBroker::watch_health`] checks the broker.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// The shortest interval between two renewals of a delivery in progress.
const MIN_KEEP_ALIVE: Duration = Duration::from_millis(100);

/// How long a stopping subscriber waits for its acknowledgements to reach the broker.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// The value of a deduplication key while a delivery handles its event.
const HANDLING: &str = "handling";

/// The value of a deduplication key once its event is handled or dead-lettered.
const HANDLED: &str = "handled";

/// Events on NATS JetStream; clones share the connection.
#[derive(Debug, Clone)]
pub struct NatsBroker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    servers: Vec<ServerAddr>,
    /// Prefix of every stream, subject and bucket: the system's name.
    prefix: String,
    /// Made on first use; the client reconnects by itself after that.
    connection: OnceCell<Connection>,
    /// The event streams this process has made sure exist.
    streams: Mutex<HashSet<String>>,
}

#[derive(Debug)]
struct Connection {
    client: Client,
    jetstream: jetstream::Context,
}

impl NatsBroker {
    /// The broker at `url` (servers separated by commas), with streams, subjects and
    /// buckets under `prefix`. The connection is made on first use and remade after
    /// failures, so the broker may be down when this is called.
    pub fn new(url: &str, prefix: &str) -> Result<Self, MessagingError> {
        let servers = url
            .split(',')
            .map(|server| server.trim().parse::<ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(broker_error)?;
        Ok(Self {
            inner: Arc::new(Inner {
                servers,
                prefix: prefix.to_owned(),
                connection: OnceCell::new(),
                streams: Mutex::default(),
            }),
        })
    }

    /// The broker at `NATS_URL` (default `nats://127.0.0.1:4222`), with streams,
    /// subjects and buckets under the system's name.
    pub fn from_env() -> Result<Self, ConfigError> {
        let url: String = config::var_or(NATS_URL_VAR, "nats://127.0.0.1:4222")?;
        Self::new(&url, crate::SYSTEM.name).map_err(|error| ConfigError::Invalid {
            name: NATS_URL_VAR,
            value: without_password(&url),
            reason: error.to_string(),
        })
    }

    /// Keeps `dependency` up while the client is connected and JetStream answers,
    /// checking every [`HEALTH_INTERVAL`], until the task is aborted.
    pub fn watch_health(&self, dependency: Dependency) -> JoinHandle<()> {
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            loop {
                dependency.set_up(inner.is_up().await);
                tokio::time::sleep(HEALTH_INTERVAL).await;
            }
        })
    }

    /// The stream of the service `stream`.
    pub fn stream_name(&self, stream: &str) -> String {
        self.inner.stream_name(stream)
    }

    /// The dead-letter stream of the consumer group `group`.
    pub fn dead_letter_stream(&self, group: &str) -> String {
        self.inner.dead_letter_stream(group)
    }

    /// The key-value bucket of the event ids that the consumer group `group` handled.
    pub fn seen_bucket(&self, group: &str) -> String {
        self.inner.seen_bucket(group)
    }
}

impl Inner {
    async fn connection(&self) -> Result<&Connection, MessagingError> {
        self.connection
            .get_or_try_init(|| async {
                let client = ConnectOptions::new()
                    .name(&self.prefix)
                    .retry_on_initial_connect()
                    .ping_interval(PING_INTERVAL)
                    .connect(self.servers.clone())
                    .await
                    .map_err(broker_error)?;
                let jetstream = jetstream::ContextBuilder::new()
                    .timeout(RESPONSE_TIMEOUT)
                    .build(client.clone());
                Ok(Connection { client, jetstream })
            })
            .await
    }

    async fn is_up(&self) -> bool {
        let Ok(connection) = self.connection().await else {
            return false;
        };
        if connection.client.connection_state() != State::Connected {
            return false;
        }
        // Any answer but an error means JetStream is enabled and reachable.
        let info: Result<Response<serde_json::Value>, _> =
            connection.jetstream.request("INFO", &()).await;
        matches!(info, Ok(Response::Ok(_)))
    }

    fn stream_name(&self, stream: &str) -> String {
        format!("{}-events-{stream}", self.prefix)
    }

    fn event_subject(&self, stream: &str, event_type: &str) -> String {
        format!(
            "{}.events.{stream}.{}",
            self.prefix,
            subject_tokens(event_type)
        )
    }

    fn dead_letter_stream(&self, group: &str) -> String {
        format!("{}-dead-letter-{group}", self.prefix)
    }

    fn dead_letter_subject(&self, group: &str) -> String {
        format!("{}.dead-letter.{group}", self.prefix)
    }

    fn seen_bucket(&self, group: &str) -> String {
        format!("{}-seen-{group}", self.prefix)
    }

    /// Creates the stream of the service `stream` unless it exists.
    async fn events_stream(
        &self,
        connection: &Connection,
        stream: &str,
    ) -> Result<stream::Stream, MessagingError> {
        connection
            .jetstream
            .get_or_create_stream(stream::Config {
                name: self.stream_name(stream),
                subjects: vec![format!("{}.events.{stream}.>", self.prefix)],
                retention: RetentionPolicy::Limits,
                max_messages: STREAM_MAX_LEN,
                discard: DiscardPolicy::Old,
                storage: StorageType::File,
                duplicate_window: DUPLICATE_WINDOW,
                ..stream::Config::default()
            })
            .await
            .map_err(broker_error)
    }

    /// Makes sure the stream of the service `stream` exists, once per process while
    /// publishing succeeds.
    async fn ensure_events_stream(
        &self,
        connection: &Connection,
        stream: &str,
    ) -> Result<(), MessagingError> {
        let name = self.stream_name(stream);
        if self.known_streams().contains(&name) {
            return Ok(());
        }
        self.events_stream(connection, stream).await?;
        self.known_streams().insert(name);
        Ok(())
    }

    fn known_streams(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The dead-letter stream and the deduplication bucket of the subscription's group,
    /// created unless they exist.
    async fn prepare_group(
        &self,
        subscription: &Subscription,
    ) -> Result<kv::Store, MessagingError> {
        let connection = self.connection().await?;
        let group = &subscription.group;
        connection
            .jetstream
            .get_or_create_stream(stream::Config {
                name: self.dead_letter_stream(group),
                subjects: vec![self.dead_letter_subject(group)],
                max_messages: STREAM_MAX_LEN,
                discard: DiscardPolicy::Old,
                storage: StorageType::File,
                ..stream::Config::default()
            })
            .await
            .map_err(broker_error)?;
        // The bucket's stream as the key-value store lays it out (`KV_<bucket>` over
        // `$KV.<bucket>.>`, one value per key), made directly: the client's own way of
        // making a bucket asks for account details that servers before 2.10 leave out.
        let bucket = self.seen_bucket(group);
        connection
            .jetstream
            .get_or_create_stream(stream::Config {
                name: format!("KV_{bucket}"),
                subjects: vec![format!("$KV.{bucket}.>")],
                max_messages_per_subject: 1,
                max_age: subscription.delivery.dedup_ttl,
                discard: DiscardPolicy::New,
                storage: StorageType::File,
                allow_rollup: true,
                deny_delete: true,
                allow_direct: true,
                ..stream::Config::default()
            })
            .await
            .map_err(broker_error)?;
        connection
            .jetstream
            .get_key_value(bucket)
            .await
            .map_err(broker_error)
    }

    /// The durable pull consumer of the subscription's group on the stream of the
    /// service `stream`, created or updated with the subscription's settings.
    async fn pull_consumer(
        &self,
        stream: &str,
        subscription: &Subscription,
    ) -> Result<PullConsumer, MessagingError> {
        let connection = self.connection().await?;
        let delivery = &subscription.delivery;
        self.events_stream(connection, stream)
            .await?
            .create_consumer(consumer::pull::Config {
                durable_name: Some(subscription.group.clone()),
                description: Some(format!("the events of {stream} for {}", subscription.group)),
                deliver_policy: DeliverPolicy::All,
                ack_policy: AckPolicy::Explicit,
                ack_wait: delivery.claim_idle,
                max_deliver: i64::from(delivery.max_attempts) + DEAD_LETTER_DELIVERIES,
                max_ack_pending: i64::try_from(
                    delivery.concurrency.saturating_mul(GROUP_INSTANCES),
                )
                .unwrap_or(i64::MAX),
                ..consumer::pull::Config::default()
            })
            .await
            .map_err(broker_error)
    }
}

/// `event_type` as subject tokens: characters that subjects reserve (wildcards,
/// spaces) replaced by `_`, empty tokens dropped.
fn subject_tokens(event_type: &str) -> String {
    let tokens: Vec<String> = event_type
        .split('.')
        .filter(|token| !token.is_empty())
        .map(|token| {
            token
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .collect();
    if tokens.is_empty() {
        "unknown".to_owned()
    } else {
        tokens.join(".")
    }
}

/// The deduplication key of `event_id`: the id itself when a key may hold it (as a
/// UUID may), else `hex.` and its bytes in hexadecimal (`hex.empty` for no id).
fn seen_key(event_id: &str) -> String {
    if event_id.is_empty() {
        return "hex.empty".to_owned();
    }
    let plain = event_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '='));
    if plain {
        return event_id.to_owned();
    }
    let hex: String = event_id.bytes().map(|byte| format!("{byte:02x}")).collect();
    format!("hex.{hex}")
}

fn broker_error(error: impl std::fmt::Display) -> MessagingError {
    MessagingError::Broker(error.to_string())
}

#[async_trait]
impl Broker for NatsBroker {
    async fn publish(&self, stream: &str, event: &CloudEvent) -> Result<(), MessagingError> {
        let payload = serde_json::to_vec(event).map_err(broker_error)?;
        let connection = self.inner.connection().await?;
        self.inner.ensure_events_stream(connection, stream).await?;
        let message = PublishMessage::build()
            .payload(payload.into())
            .message_id(&event.id);
        let subject = self.inner.event_subject(stream, &event.event_type);
        let acknowledged = match connection.jetstream.send_publish(subject, message).await {
            Ok(acknowledgement) => acknowledgement.await.map(drop),
            Err(error) => Err(error),
        };
        if let Err(error) = acknowledged {
            // The stream may have been deleted: make sure it exists on the next try.
            self.inner
                .known_streams()
                .remove(&self.inner.stream_name(stream));
            return Err(broker_error(error));
        }
        Ok(())
    }

    async fn subscribe(
        &self,
        subscription: Subscription,
        handler: Arc<dyn Handler>,
    ) -> Result<Subscriber, MessagingError> {
        let (stop, stopped) = watch::channel(false);
        let consumer = Consumer {
            inner: Arc::clone(&self.inner),
            subscription: Arc::new(subscription),
            handler,
        };
        let task = tokio::spawn(consumer.run(stopped));
        Ok(Subscriber::new(stop, task))
    }
}

/// The loop of one subscription.
struct Consumer {
    inner: Arc<Inner>,
    subscription: Arc<Subscription>,
    handler: Arc<dyn Handler>,
}

impl Consumer {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let delivery = self.subscription.delivery.clone();
        let Some(seen) = self.prepare(&mut stopped).await else {
            return;
        };
        // One fetcher per stream hands messages over one at a time, so that an instance
        // holds few more than it handles.
        let (sender, mut messages) = mpsc::channel(1);
        let mut fetchers = JoinSet::new();
        for stream in &self.subscription.streams {
            fetchers.spawn(fetch(
                Arc::clone(&self.inner),
                stream.clone(),
                Arc::clone(&self.subscription),
                sender.clone(),
            ));
        }
        drop(sender);
        let limit = Arc::new(Semaphore::new(delivery.concurrency));
        let mut in_flight = JoinSet::new();
        loop {
            while in_flight.try_join_next().is_some() {}
            let permit = tokio::select! {
                permit = Arc::clone(&limit).acquire_owned() => permit,
                _ = stopped.wait_for(|stopped| *stopped) => break,
            };
            let Ok(permit) = permit else {
                break;
            };
            let message = tokio::select! {
                message = messages.recv() => message,
                _ = stopped.wait_for(|stopped| *stopped) => break,
            };
            let Some(message) = message else {
                break;
            };
            let job = Job {
                inner: Arc::clone(&self.inner),
                subscription: Arc::clone(&self.subscription),
                handler: Arc::clone(&self.handler),
                seen: seen.clone(),
            };
            in_flight.spawn(async move {
                if let Err(error) = job.handle(message).await {
                    tracing::warn!(%error, "delivery interrupted: it will be delivered again");
                }
                drop(permit);
            });
        }
        fetchers.abort_all();
        // Fetched but not started: back to the group at once, for another instance.
        messages.close();
        while let Ok(message) = messages.try_recv() {
            if let Err(error) = message.ack_with(AckKind::Nak(None)).await {
                tracing::debug!(%error, "cannot hand an unstarted delivery back");
            }
        }
        let drained = tokio::time::timeout(delivery.drain_timeout, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                unfinished = in_flight.len(),
                "deliveries still running at shutdown: they will be delivered again"
            );
            in_flight.abort_all();
        }
        if let Ok(connection) = self.inner.connection().await
            && tokio::time::timeout(FLUSH_TIMEOUT, connection.client.flush())
                .await
                .is_err()
        {
            tracing::warn!(
                "acknowledgements may not have reached the broker: they will be delivered again"
            );
        }
    }

    /// The group's dead-letter stream and deduplication bucket, retrying until the
    /// broker answers; `None` when shutdown begins first.
    async fn prepare(&self, stopped: &mut watch::Receiver<bool>) -> Option<kv::Store> {
        loop {
            match self.inner.prepare_group(&self.subscription).await {
                Ok(seen) => return Some(seen),
                Err(error) => tracing::warn!(
                    %error,
                    group = self.subscription.group,
                    "cannot prepare the consumer group: retrying"
                ),
            }
            pause(stopped, self.subscription.delivery.retry_max).await;
            if *stopped.borrow() {
                return None;
            }
        }
    }
}

/// Pulls the events of the service `stream` for the subscription's group into
/// `sender`, creating the consumer again whenever its messages end (it was deleted,
/// say), until the receiver is gone or the task is aborted.
async fn fetch(
    inner: Arc<Inner>,
    stream: String,
    subscription: Arc<Subscription>,
    sender: mpsc::Sender<Message>,
) {
    let delivery = &subscription.delivery;
    loop {
        let pulled = match inner.pull_consumer(&stream, &subscription).await {
            Ok(consumer) => consumer
                .stream()
                .max_messages_per_batch(delivery.concurrency)
                .expires(PULL_EXPIRES)
                .messages()
                .await
                .map_err(broker_error),
            Err(error) => Err(error),
        };
        match pulled {
            Ok(mut messages) => {
                while let Some(message) = messages.next().await {
                    match message {
                        Ok(message) => {
                            if sender.send(message).await.is_err() {
                                return;
                            }
                        }
                        Err(error) => {
                            tracing::warn!(%error, stream, "cannot fetch events: retrying");
                            tokio::time::sleep(delivery.retry_base.max(Duration::from_millis(500)))
                                .await;
                        }
                    }
                }
                tracing::warn!(stream, "the consumer stopped delivering: creating it again");
            }
            Err(error) => {
                tracing::warn!(%error, stream, "cannot create the consumer: retrying");
            }
        }
        tokio::time::sleep(delivery.retry_max).await;
    }
}

/// Waits for `duration`, or less when shutdown begins.
async fn pause(stopped: &mut watch::Receiver<bool>, duration: Duration) {
    let _ = tokio::time::timeout(duration, stopped.changed()).await;
}

/// The handling of one delivery.
struct Job {
    inner: Arc<Inner>,
    subscription: Arc<Subscription>,
    handler: Arc<dyn Handler>,
    /// The group's deduplication bucket.
    seen: kv::Store,
}

/// Where a delivery came from, for its dead letter.
struct Origin {
    stream: String,
    sequence: u64,
    delivered: i64,
}

impl Job {
    async fn handle(&self, message: Message) -> Result<(), MessagingError> {
        let settings = &self.subscription.delivery;
        let origin = {
            let info = message.info().map_err(broker_error)?;
            Origin {
                stream: info.stream.to_owned(),
                sequence: info.stream_sequence,
                delivered: info.delivered,
            }
        };
        let Ok(event) = serde_json::from_slice::<CloudEvent>(&message.payload) else {
            self.dead_letter(&message, &origin, "not a CloudEvent", 0)
                .await?;
            return message.ack_with(AckKind::Term).await.map_err(broker_error);
        };
        if origin.delivered > i64::from(settings.max_attempts) {
            self.dead_letter(
                &message,
                &origin,
                "delivered too often without an acknowledgement",
                0,
            )
            .await?;
            self.mark_handled(&event.id).await?;
            return message.ack_with(AckKind::Term).await.map_err(broker_error);
        }
        match self.claim(&event.id).await? {
            Claim::Claimed => {}
            Claim::Handled => {
                tracing::debug!(event_id = event.id, "duplicate event acknowledged");
                return message.ack().await.map_err(broker_error);
            }
            Claim::Busy => {
                // Another delivery is handling it: try this one again once its claim
                // would have expired.
                return message
                    .ack_with(AckKind::Nak(Some(settings.claim_idle)))
                    .await
                    .map_err(broker_error);
            }
        }
        let span = tracing::info_span!(
            "consume",
            otel.name = format!("process {}", event.event_type),
            otel.kind = "consumer",
            messaging.system = "nats",
            messaging.destination.name = message.subject.as_str(),
            messaging.message.id = event.id.as_str(),
            messaging.consumer.group.name = self.subscription.group.as_str(),
        );
        let _ = span.set_parent(propagation::extract(&event.trace_headers()));
        let mut attempt = 1;
        let attempts = async {
            loop {
                match self.handler.handle(&event).instrument(span.clone()).await {
                    Ok(()) => return Ok(()),
                    Err(error) if attempt >= settings.max_attempts => return Err(error),
                    Err(error) => {
                        let backoff = settings.backoff(attempt);
                        span.in_scope(|| {
                            tracing::warn!(%error, attempt, ?backoff, event_id = event.id, "handler failed: retrying");
                        });
                        tokio::time::sleep(backoff).await;
                        attempt += 1;
                    }
                }
            }
        };
        let Err(error) = self.keep_alive(&message, &event.id, attempts).await else {
            self.mark_handled(&event.id).await?;
            return message.ack().await.map_err(broker_error);
        };
        span.in_scope(|| {
            tracing::error!(%error, attempt, event_id = event.id, "handler failed every attempt: dead-lettered");
        });
        self.dead_letter(&message, &origin, &error.to_string(), attempt)
            .await?;
        self.mark_handled(&event.id).await?;
        message.ack_with(AckKind::Term).await.map_err(broker_error)
    }

    async fn claim(&self, event_id: &str) -> Result<Claim, MessagingError> {
        let key = seen_key(event_id);
        match self.seen.create(&key, HANDLING.into()).await {
            Ok(_) => return Ok(Claim::Claimed),
            Err(error) if error.kind() == CreateErrorKind::AlreadyExists => {}
            Err(error) => return Err(broker_error(error)),
        }
        let Some(entry) = self.seen.entry(&key).await.map_err(broker_error)? else {
            // Expired in between: try again next time.
            return Ok(Claim::Busy);
        };
        if entry.value.as_ref() == HANDLED.as_bytes() {
            return Ok(Claim::Handled);
        }
        // A claim is renewed while its delivery runs: one older than `claim_idle`
        // belongs to an instance that went away.
        let abandoned = async_nats::datetime::add_std_duration(
            entry.created,
            self.subscription.delivery.claim_idle,
        )
        .is_ok_and(|expiry| expiry <= async_nats::datetime::now());
        if !abandoned {
            return Ok(Claim::Busy);
        }
        // Take it over, unless another delivery just did.
        Ok(
            match self
                .seen
                .update(&key, HANDLING.into(), entry.revision)
                .await
            {
                Ok(_) => Claim::Claimed,
                Err(_) => Claim::Busy,
            },
        )
    }

    /// Runs `work` while telling the broker, every half [`super::Delivery::claim_idle`],
    /// that the delivery is in progress, and renewing its claim on the event: neither
    /// goes to another delivery while this instance works on it, however long that
    /// takes. Once the instance stops or goes away, both lapse after `claim_idle`.
    async fn keep_alive<T>(
        &self,
        message: &Message,
        event_id: &str,
        work: impl Future<Output = T>,
    ) -> T {
        let period = (self.subscription.delivery.claim_idle / 2).max(MIN_KEEP_ALIVE);
        let mut beats = tokio::time::interval_at(Instant::now() + period, period);
        tokio::pin!(work);
        loop {
            tokio::select! {
                output = &mut work => return output,
                _ = beats.tick() => {
                    if let Err(error) = self.renew(message, event_id).await {
                        tracing::warn!(%error, event_id, "cannot renew a delivery in progress");
                    }
                }
            }
        }
    }

    async fn renew(&self, message: &Message, event_id: &str) -> Result<(), MessagingError> {
        message
            .ack_with(AckKind::Progress)
            .await
            .map_err(broker_error)?;
        self.seen
            .put(seen_key(event_id), HANDLING.into())
            .await
            .map(drop)
            .map_err(broker_error)
    }

    async fn mark_handled(&self, event_id: &str) -> Result<(), MessagingError> {
        self.seen
            .put(seen_key(event_id), HANDLED.into())
            .await
            .map(drop)
            .map_err(broker_error)
    }

    /// Stores the payload of `message` in the group's dead-letter stream, with the
    /// error, the attempts of this delivery, the deliveries so far and where it came
    /// from, and returns once the stream has it.
    async fn dead_letter(
        &self,
        message: &Message,
        origin: &Origin,
        error: &str,
        attempts: u32,
    ) -> Result<(), MessagingError> {
        let connection = self.inner.connection().await?;
        // Header values are single lines.
        let error: String = error
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let dead_letter = PublishMessage::build()
            .payload(message.payload.clone())
            .header("Dead-Letter-Error", error.as_str())
            .header("Dead-Letter-Attempts", attempts.to_string().as_str())
            .header(
                "Dead-Letter-Deliveries",
                origin.delivered.to_string().as_str(),
            )
            .header("Dead-Letter-Stream", origin.stream.as_str())
            .header("Dead-Letter-Sequence", origin.sequence.to_string().as_str())
            // Dead-lettering the same delivery again stores it once.
            .message_id(format!("{}:{}", origin.stream, origin.sequence));
        connection
            .jetstream
            .send_publish(
                self.inner.dead_letter_subject(&self.subscription.group),
                dead_letter,
            )
            .await
            .map_err(broker_error)?
            .await
            .map(drop)
            .map_err(broker_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_hide_their_password() {
        assert_eq!(
            without_password("nats://user:secret@nats:4222"),
            "nats://***@nats:4222"
        );
        assert_eq!(without_password("nats://nats:4222"), "nats://nats:4222");
    }

    #[test]
    fn event_types_become_valid_subject_tokens() {
        assert_eq!(
            subject_tokens("shop.catalog.item.created.v1"),
            "shop.catalog.item.created.v1"
        );
        assert_eq!(subject_tokens("a..b*.> c"), "a.b_.__c");
        assert_eq!(subject_tokens(""), "unknown");
    }

    #[test]
    fn event_ids_become_valid_keys() {
        let id = "0b7c1f4e-8a41-4d6e-9f0a-3c2d1e5b6a79";
        assert_eq!(seen_key(id), id);
        assert_eq!(seen_key("a.b c"), "hex.612e622063");
        assert_eq!(seen_key(""), "hex.empty");
    }

    #[test]
    fn every_url_of_a_server_list_is_checked() {
        assert!(NatsBroker::new("nats://a:4222, nats://b:4222", "shop").is_ok());
        assert!(NatsBroker::new("nats://a:4222,nats://b:notaport", "shop").is_err());
    }
}
