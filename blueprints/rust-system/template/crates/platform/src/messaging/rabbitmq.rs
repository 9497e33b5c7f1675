//! The [`Broker`] on RabbitMQ (AMQP 0-9-1).
//!
//! - Every event is published to the topic exchange `<system>.events` with the routing
//!   key `<service>.<type>` (the publishing service, then the event type), as a
//!   persistent message on a channel in confirm mode: [`Broker::publish`] returns once
//!   RabbitMQ has confirmed that the queues it was routed to stored it.
//! - A consuming service has one durable quorum queue, `<system>.<group>`, bound with
//!   `<service>.#` for each service it reads. Its instances consume from it together,
//!   each with a prefetch of [`super::Delivery::concurrency`], and acknowledge a delivery
//!   once it is handled.
//! - Events published while no consumer group reads their service (before the first
//!   one ever subscribed) go through the exchange's alternate exchange,
//!   `<system>.unrouted`, to the queue `<system>.unrouted.<service>` (at most
//!   [`QUEUE_MAX_LEN`] of them); the first group to subscribe to the service moves them
//!   back into `<system>.events`, so they are delivered rather than dropped.
//! - Deliveries an instance has not acknowledged go back to the queue when its channel
//!   closes (at shutdown, or when the instance or its connection goes away), for
//!   another instance or for itself once restarted. The quorum queue counts them
//!   (`x-delivery-count`): one returned [`super::Delivery::max_attempts`] times goes
//!   straight to the dead-letter queue. [`super::Delivery::claim_idle`] has no use
//!   here: an instance that hangs without going away keeps its deliveries until
//!   RabbitMQ's `consumer_timeout` (30 minutes by default) closes its channel.
//! - Event ids are deduplicated with [`SeenIds`], in the memory of each instance: it
//!   catches the duplicates one instance sees (a publisher's retry, a redelivery to the
//!   same instance) within [`super::Delivery::dedup_ttl`] and [`super::DEDUP_CAPACITY`]
//!   ids, not a duplicate delivered to two instances nor one that outlives a restart.
//!   Handlers must stay idempotent.
//! - Events that fail every attempt, and messages that are not CloudEvents, go to the
//!   exchange `<system>.dead-letter` and its queue `<system>.dead-letter.<group>`, with
//!   the headers `error` and `attempts`, then are acknowledged.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use lapin::message::Delivery as AmqpDelivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::{Mutex, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{
    Broker, CloudEvent, DEDUP_CAPACITY, Handler, MessagingError, SeenIds, Subscriber, Subscription,
    without_password,
};
use crate::config::{self, ConfigError};
use crate::health::Dependency;
use crate::propagation;

/// The variable holding the broker's URL.
pub const AMQP_URL_VAR: &str = "AMQP_URL";

/// At most how many messages an unrouted or dead-letter queue keeps: the oldest go
/// first.
pub const QUEUE_MAX_LEN: i64 = 100_000;

/// How long connecting, or a command such as a publish waiting for its confirm, may
/// take before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The heartbeat asked for when the URL names none: a broker that went silent is
/// noticed within two of them.
const HEARTBEAT_SECONDS: u16 = 10;

/// How often [`RabbitBroker::watch_health`] checks the connection, reconnecting when
/// it is down.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// Events on RabbitMQ; clones share the connection.
#[derive(Debug, Clone)]
pub struct RabbitBroker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    uri: AMQPUri,
    /// Prefix of every exchange and queue: the system's name.
    prefix: String,
    /// The connection, made on first use and remade once it is lost.
    connection: Mutex<Option<Arc<Connection>>>,
    /// The channel in confirm mode that publishes events and dead letters.
    publisher: Mutex<Option<Publisher>>,
}

#[derive(Debug)]
struct Publisher {
    channel: Channel,
    /// The services whose exchanges and unrouted queue this channel declared.
    declared: HashSet<String>,
}

impl RabbitBroker {
    /// The broker at `url` (`amqp://`; TLS is not compiled in), with exchanges and
    /// queues named after `prefix`. The connection is made on first use and remade
    /// after failures, so the broker may be down when this is called.
    pub fn new(url: &str, prefix: &str) -> Result<Self, MessagingError> {
        let mut uri: AMQPUri = url.parse().map_err(|error: String| {
            MessagingError::Broker(format!(
                "invalid AMQP URL: {}",
                error.replace(url, &without_password(url))
            ))
        })?;
        if uri.scheme == AMQPScheme::AMQPS {
            return Err(MessagingError::Broker(
                "amqps:// needs TLS, which this build does not include".to_owned(),
            ));
        }
        uri.query.heartbeat.get_or_insert(HEARTBEAT_SECONDS);
        Ok(Self {
            inner: Arc::new(Inner {
                uri,
                prefix: prefix.to_owned(),
                connection: Mutex::new(None),
                publisher: Mutex::new(None),
            }),
        })
    }

    /// The broker at `AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`), with
    /// exchanges and queues named after the system.
    pub fn from_env() -> Result<Self, ConfigError> {
        let url: String = config::var_or(AMQP_URL_VAR, "amqp://guest:guest@127.0.0.1:5672/%2f")?;
        Self::new(&url, crate::SYSTEM.name).map_err(|error| ConfigError::Invalid {
            name: AMQP_URL_VAR,
            value: without_password(&url),
            reason: error.to_string(),
        })
    }

    /// Keeps `dependency` up while the connection is open, checking every
    /// [`HEALTH_INTERVAL`] and reconnecting when it is lost, until the task is aborted.
    pub fn watch_health(&self, dependency: Dependency) -> JoinHandle<()> {
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            loop {
                let up = inner
                    .connection()
                    .await
                    .is_ok_and(|connection| connection.status().connected());
                dependency.set_up(up);
                tokio::time::sleep(HEALTH_INTERVAL).await;
            }
        })
    }

    /// The topic exchange every event is published to.
    pub fn events_exchange(&self) -> String {
        self.inner.events_exchange()
    }

    /// The alternate exchange of [`RabbitBroker::events_exchange`], which takes the
    /// events no consumer group reads yet.
    pub fn unrouted_exchange(&self) -> String {
        self.inner.unrouted_exchange()
    }

    /// The queue of the events of the service `stream` published before any consumer
    /// group read them.
    pub fn unrouted_queue(&self, stream: &str) -> String {
        self.inner.unrouted_queue(stream)
    }

    /// The queue of the consumer group `group`.
    pub fn queue(&self, group: &str) -> String {
        self.inner.queue(group)
    }

    /// The exchange dead letters are published to.
    pub fn dead_letter_exchange(&self) -> String {
        self.inner.dead_letter_exchange()
    }

    /// The dead-letter queue of the consumer group `group`.
    pub fn dead_letter_queue(&self, group: &str) -> String {
        self.inner.dead_letter_queue(group)
    }
}

impl Inner {
    fn events_exchange(&self) -> String {
        format!("{}.events", self.prefix)
    }

    fn unrouted_exchange(&self) -> String {
        format!("{}.unrouted", self.prefix)
    }

    fn unrouted_queue(&self, stream: &str) -> String {
        format!("{}.unrouted.{stream}", self.prefix)
    }

    fn queue(&self, group: &str) -> String {
        format!("{}.{group}", self.prefix)
    }

    fn dead_letter_exchange(&self) -> String {
        format!("{}.dead-letter", self.prefix)
    }

    fn dead_letter_queue(&self, group: &str) -> String {
        format!("{}.dead-letter.{group}", self.prefix)
    }

    /// The open connection, connecting first when there is none or it was lost.
    async fn connection(&self) -> Result<Arc<Connection>, MessagingError> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref().filter(|c| c.status().connected()) {
            return Ok(Arc::clone(connection));
        }
        let properties =
            ConnectionProperties::default().with_connection_name(self.prefix.clone().into());
        let connection = tokio::time::timeout(
            RESPONSE_TIMEOUT,
            Connection::connect_uri(self.uri.clone(), properties),
        )
        .await
        .map_err(|_| MessagingError::Broker("connecting timed out".to_owned()))?
        .map_err(broker_error)?;
        let connection = Arc::new(connection);
        *slot = Some(Arc::clone(&connection));
        Ok(connection)
    }

    /// The publishing channel, with the exchanges and the unrouted queue of the service
    /// `stream` declared.
    async fn publisher(&self, stream: Option<&str>) -> Result<Channel, MessagingError> {
        let mut slot = self.publisher.lock().await;
        let mut publisher = match slot.take() {
            Some(publisher) if publisher.channel.status().connected() => publisher,
            _ => {
                let channel = self
                    .connection()
                    .await?
                    .create_channel()
                    .await
                    .map_err(broker_error)?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await
                    .map_err(broker_error)?;
                self.declare_exchanges(&channel).await?;
                Publisher {
                    channel,
                    declared: HashSet::new(),
                }
            }
        };
        if let Some(stream) = stream.filter(|stream| !publisher.declared.contains(*stream)) {
            self.declare_unrouted_queue(&publisher.channel, stream)
                .await?;
            publisher.declared.insert(stream.to_owned());
        }
        let channel = publisher.channel.clone();
        *slot = Some(publisher);
        Ok(channel)
    }

    /// Forgets the publishing channel after a failure, so that the next publish opens
    /// a new one (on a new connection if need be).
    async fn reset_publisher(&self) {
        *self.publisher.lock().await = None;
    }

    /// Declares the events, unrouted and dead-letter exchanges.
    async fn declare_exchanges(&self, channel: &Channel) -> Result<(), MessagingError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.unrouted_exchange().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(broker_error)?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "alternate-exchange".into(),
            long_string(&self.unrouted_exchange()),
        );
        channel
            .exchange_declare(
                self.events_exchange().into(),
                ExchangeKind::Topic,
                durable,
                arguments,
            )
            .await
            .map_err(broker_error)?;
        channel
            .exchange_declare(
                self.dead_letter_exchange().into(),
                ExchangeKind::Direct,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(broker_error)
    }

    /// Declares the queue that keeps the events of the service `stream` that no
    /// consumer group reads yet, and returns how many it holds.
    async fn declare_unrouted_queue(
        &self,
        channel: &Channel,
        stream: &str,
    ) -> Result<u32, MessagingError> {
        let queue = self.unrouted_queue(stream);
        let waiting = declare_queue(channel, &queue, capped(quorum())).await?;
        bind(
            channel,
            &queue,
            &self.unrouted_exchange(),
            &format!("{stream}.#"),
        )
        .await?;
        Ok(waiting)
    }

    /// Publishes `payload` to `exchange` with `routing_key`, and waits for the broker
    /// to confirm it stored the message.
    async fn publish(
        &self,
        stream: Option<&str>,
        exchange: &str,
        routing_key: &str,
        payload: &[u8],
        properties: BasicProperties,
    ) -> Result<(), MessagingError> {
        let published = async {
            let channel = self.publisher(stream).await?;
            let confirm = channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions::default(),
                    payload,
                    properties.with_delivery_mode(PERSISTENT),
                )
                .await
                .map_err(broker_error)?;
            match confirm.await.map_err(broker_error)? {
                Confirmation::Ack(_) => Ok(()),
                Confirmation::Nack(_) => Err(MessagingError::Broker(
                    "the broker refused to store the message".to_owned(),
                )),
                Confirmation::NotRequested => Err(MessagingError::Broker(
                    "the publishing channel is not in confirm mode".to_owned(),
                )),
            }
        };
        let result = tokio::time::timeout(RESPONSE_TIMEOUT, published)
            .await
            .unwrap_or_else(|_| {
                Err(MessagingError::Broker(
                    "no confirm from the broker in time".to_owned(),
                ))
            });
        if result.is_err() {
            self.reset_publisher().await;
        }
        result
    }
}

/// AMQP `delivery-mode` of messages stored on disk.
const PERSISTENT: u8 = 2;

fn broker_error(error: lapin::Error) -> MessagingError {
    MessagingError::Broker(error.to_string())
}

fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(value.into())
}

/// The arguments of a quorum queue: replicated, and counting the deliveries returned
/// unacknowledged (`x-delivery-count`).
fn quorum() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), long_string("quorum"));
    arguments
}

/// `arguments` with the queue capped at [`QUEUE_MAX_LEN`] messages, oldest dropped.
fn capped(mut arguments: FieldTable) -> FieldTable {
    arguments.insert("x-max-length".into(), AMQPValue::LongLongInt(QUEUE_MAX_LEN));
    arguments
}

/// Declares the durable queue `queue`, and returns how many messages it holds.
async fn declare_queue(
    channel: &Channel,
    queue: &str,
    arguments: FieldTable,
) -> Result<u32, MessagingError> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), durable, arguments)
        .await
        .map_err(broker_error)?;
    Ok(declared.message_count())
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    routing_key: &str,
) -> Result<(), MessagingError> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            routing_key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(broker_error)
}

/// The integer header `name` of `properties`, whatever its AMQP integer type.
fn int_header(properties: &BasicProperties, name: &str) -> Option<i64> {
    let value = properties.headers().as_ref()?.inner().get(name)?;
    match value {
        AMQPValue::ShortShortInt(value) => Some(i64::from(*value)),
        AMQPValue::ShortShortUInt(value) => Some(i64::from(*value)),
        AMQPValue::ShortInt(value) => Some(i64::from(*value)),
        AMQPValue::ShortUInt(value) => Some(i64::from(*value)),
        AMQPValue::LongInt(value) => Some(i64::from(*value)),
        AMQPValue::LongUInt(value) => Some(i64::from(*value)),
        AMQPValue::LongLongInt(value) => Some(*value),
        _ => None,
    }
}

#[async_trait]
impl Broker for RabbitBroker {
    async fn publish(&self, stream: &str, event: &CloudEvent) -> Result<(), MessagingError> {
        let payload =
            serde_json::to_vec(event).map_err(|error| MessagingError::Broker(error.to_string()))?;
        let properties = BasicProperties::default()
            .with_content_type("application/cloudevents+json".into())
            .with_message_id(event.id.as_str().into())
            .with_type(event.event_type.as_str().into());
        self.inner
            .publish(
                Some(stream),
                &self.inner.events_exchange(),
                &format!("{stream}.{}", event.event_type),
                &payload,
                properties,
            )
            .await
    }

    async fn subscribe(
        &self,
        subscription: Subscription,
        handler: Arc<dyn Handler>,
    ) -> Result<Subscriber, MessagingError> {
        let (stop, stopped) = watch::channel(false);
        let seen = SeenIds::new(subscription.delivery.dedup_ttl, DEDUP_CAPACITY);
        let consumer = Consumer {
            job: Arc::new(Job {
                inner: Arc::clone(&self.inner),
                queue: self.inner.queue(&subscription.group),
                subscription,
                handler,
                seen,
            }),
        };
        // Declared now when the broker is reachable, the group's queue receives the
        // events published from here on; otherwise the subscription declares it once
        // it connects.
        if let Err(error) = consumer.prepare().await {
            tracing::warn!(%error, "the broker is unreachable: subscribing once it is back");
        }
        let task = tokio::spawn(consumer.run(stopped));
        Ok(Subscriber::new(stop, task))
    }
}

/// The loop of one subscription.
struct Consumer {
    job: Arc<Job>,
}

impl Consumer {
    /// Consumes until shutdown, starting over on a new channel (and connection) when
    /// the broker cannot be reached or the channel is lost.
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let delivery = &self.job.subscription.delivery;
        while !*stopped.borrow() {
            if let Err(error) = self.consume(&mut stopped).await {
                tracing::warn!(%error, queue = self.job.queue, "cannot consume events: retrying");
                let _ = tokio::time::timeout(delivery.retry_max, stopped.changed()).await;
            }
        }
    }

    /// Declares the group's queues on a channel of its own.
    async fn prepare(&self) -> Result<(), MessagingError> {
        let channel = self
            .job
            .inner
            .connection()
            .await?
            .create_channel()
            .await
            .map_err(broker_error)?;
        self.declare(&channel).await?;
        channel
            .close(200, "declared".into())
            .await
            .map_err(broker_error)
    }

    /// Declares the group's queues, moves the events that waited for a first consumer
    /// group into them, then handles deliveries until shutdown (`Ok`) or until the
    /// channel fails. Either way, the deliveries in flight get
    /// [`super::Delivery::drain_timeout`] to finish before the channel closes and
    /// returns what is unacknowledged to the queue.
    async fn consume(&self, stopped: &mut watch::Receiver<bool>) -> Result<(), MessagingError> {
        let job = &self.job;
        let settings = &job.subscription.delivery;
        let channel = job
            .inner
            .connection()
            .await?
            .create_channel()
            .await
            .map_err(broker_error)?;
        let prefetch = u16::try_from(settings.concurrency).unwrap_or(u16::MAX);
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await
            .map_err(broker_error)?;
        self.declare(&channel).await?;
        self.take_unrouted(&channel).await?;
        let tag = job.subscription.consumer.as_str();
        let mut deliveries = channel
            .basic_consume(
                job.queue.as_str().into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(broker_error)?;
        let mut in_flight = JoinSet::new();
        let outcome = loop {
            while in_flight.try_join_next().is_some() {}
            tokio::select! {
                _ = stopped.wait_for(|stopped| *stopped) => break Ok(()),
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => {
                        let job = Arc::clone(job);
                        in_flight.spawn(async move { job.handle(delivery).await });
                    }
                    Some(Err(error)) => break Err(broker_error(error)),
                    None => break Err(MessagingError::Broker("the broker cancelled the consumer".to_owned())),
                },
            }
        };
        if outcome.is_ok() {
            // No new deliveries: those already received but not started go back to
            // the queue with the channel.
            if let Err(error) = channel
                .basic_cancel(tag.into(), BasicCancelOptions::default())
                .await
            {
                tracing::warn!(%error, "cannot cancel the consumer");
            }
        }
        let drained = tokio::time::timeout(settings.drain_timeout, async {
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
        if channel.status().connected()
            && let Err(error) = channel.close(200, "shutting down".into()).await
        {
            tracing::warn!(%error, "cannot close the consuming channel");
        }
        outcome
    }

    /// Declares the group's queue, bound to the services it reads, and its dead-letter
    /// queue.
    async fn declare(&self, channel: &Channel) -> Result<(), MessagingError> {
        let job = &self.job;
        let inner = &job.inner;
        let group = job.subscription.group.as_str();
        inner.declare_exchanges(channel).await?;
        let dead_letters = inner.dead_letter_queue(group);
        declare_queue(channel, &dead_letters, capped(quorum())).await?;
        bind(channel, &dead_letters, &inner.dead_letter_exchange(), group).await?;
        // Messages the broker itself dead-letters (under a delivery-limit policy, say)
        // reach the same dead-letter queue.
        let mut arguments = quorum();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            long_string(&inner.dead_letter_exchange()),
        );
        arguments.insert("x-dead-letter-routing-key".into(), long_string(group));
        declare_queue(channel, &job.queue, arguments).await?;
        for stream in &job.subscription.streams {
            bind(
                channel,
                &job.queue,
                &inner.events_exchange(),
                &format!("{stream}.#"),
            )
            .await?;
        }
        Ok(())
    }

    /// Publishes again, now that the group's queue is bound, the events of its
    /// services that no consumer group read when they were published.
    async fn take_unrouted(&self, channel: &Channel) -> Result<(), MessagingError> {
        let inner = &self.job.inner;
        for stream in &self.job.subscription.streams {
            // Only a queue that holds messages is read: reading one just declared
            // can fail while its replicas start, which closes the connection.
            if inner.declare_unrouted_queue(channel, stream).await? == 0 {
                continue;
            }
            let queue = inner.unrouted_queue(stream);
            let mut moved = 0_u64;
            while let Some(message) = channel
                .basic_get(queue.as_str().into(), BasicGetOptions::default())
                .await
                .map_err(broker_error)?
            {
                let delivery = message.delivery;
                inner
                    .publish(
                        None,
                        &inner.events_exchange(),
                        delivery.routing_key.as_str(),
                        &delivery.data,
                        delivery.properties.clone(),
                    )
                    .await?;
                delivery
                    .acker
                    .ack(BasicAckOptions::default())
                    .await
                    .map_err(broker_error)?;
                moved += 1;
            }
            if moved > 0 {
                tracing::info!(
                    stream,
                    moved,
                    "events published before any subscription delivered"
                );
            }
        }
        Ok(())
    }
}

/// The handling of the deliveries of one subscription.
struct Job {
    inner: Arc<Inner>,
    queue: String,
    subscription: Subscription,
    handler: Arc<dyn Handler>,
    seen: SeenIds,
}

impl Job {
    /// Handles `delivery`, logging why it was left unacknowledged if it was.
    async fn handle(&self, delivery: AmqpDelivery) {
        if let Err(error) = self.try_handle(delivery).await {
            tracing::warn!(%error, "delivery interrupted: it will be delivered again");
        }
    }

    async fn try_handle(&self, delivery: AmqpDelivery) -> Result<(), MessagingError> {
        let settings = &self.subscription.delivery;
        let Ok(event) = serde_json::from_slice::<CloudEvent>(&delivery.data) else {
            self.dead_letter(&delivery, "not a CloudEvent", 0).await?;
            return ack(&delivery).await;
        };
        // How often the queue delivered this message before, unacknowledged.
        let returned = int_header(&delivery.properties, "x-delivery-count").unwrap_or(0);
        if returned >= i64::from(settings.max_attempts) {
            self.dead_letter(
                &delivery,
                "delivered too often without an acknowledgement",
                0,
            )
            .await?;
            self.seen.handled(&event.id);
            return ack(&delivery).await;
        }
        let Some(claim) = self.seen.claim_or_wait(&event.id).await else {
            tracing::debug!(event_id = event.id, "duplicate event acknowledged");
            return ack(&delivery).await;
        };
        let exchange = self.inner.events_exchange();
        let span = tracing::info_span!(
            "consume",
            otel.name = format!("process {}", event.event_type),
            otel.kind = "consumer",
            messaging.system = "rabbitmq",
            messaging.destination.name = exchange.as_str(),
            messaging.rabbitmq.destination.routing_key = delivery.routing_key.as_str(),
            messaging.message.id = event.id.as_str(),
            messaging.consumer.group.name = self.subscription.group.as_str(),
        );
        let _ = span.set_parent(propagation::extract(&event.trace_headers()));
        let mut attempt = 1;
        let error = loop {
            match self.handler.handle(&event).instrument(span.clone()).await {
                Ok(()) => {
                    claim.handled();
                    return ack(&delivery).await;
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
        self.dead_letter(&delivery, &error.to_string(), attempt)
            .await?;
        claim.handled();
        ack(&delivery).await
    }

    /// Publishes `delivery` to the group's dead-letter queue, with why (`error`) and
    /// after how many attempts of the handler (`attempts`), and where it came from.
    async fn dead_letter(
        &self,
        delivery: &AmqpDelivery,
        error: &str,
        attempts: u32,
    ) -> Result<(), MessagingError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert("error".into(), long_string(error));
        headers.insert("attempts".into(), AMQPValue::LongLongInt(attempts.into()));
        headers.insert("queue".into(), long_string(&self.queue));
        headers.insert(
            "routing-key".into(),
            long_string(delivery.routing_key.as_str()),
        );
        let properties = delivery.properties.clone().with_headers(headers);
        self.inner
            .publish(
                None,
                &self.inner.dead_letter_exchange(),
                &self.subscription.group,
                &delivery.data,
                properties,
            )
            .await
    }
}

async fn ack(delivery: &AmqpDelivery) -> Result<(), MessagingError> {
    delivery
        .acker
        .ack(BasicAckOptions::default())
        .await
        .map_err(broker_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_hide_their_password() {
        assert_eq!(
            without_password("amqp://user:secret@rabbitmq:5672/%2f"),
            "amqp://***@rabbitmq:5672/%2f"
        );
        assert_eq!(
            without_password("amqp://rabbitmq:5672"),
            "amqp://rabbitmq:5672"
        );
    }

    #[test]
    fn urls_are_checked_when_the_broker_is_made() {
        assert!(RabbitBroker::new("amqp://guest:guest@127.0.0.1:5672/%2f", "shop").is_ok());
        let error = RabbitBroker::new("amqp://user:secret@[", "shop").unwrap_err();
        assert!(!error.to_string().contains("secret"), "{error}");
        assert!(RabbitBroker::new("amqps://rabbitmq:5671/%2f", "shop").is_err());
    }
}
