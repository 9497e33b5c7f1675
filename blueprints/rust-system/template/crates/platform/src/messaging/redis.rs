//! The [`Broker`] on Redis Streams.
//!
//! - A publishing service appends to the stream `<system>:events:<service>` (capped at
//!   about [`STREAM_MAX_LEN`] entries), one entry per event with the field `event`.
//! - A consuming service reads each stream with the consumer group named after itself,
//!   so its instances share the work; an entry is acknowledged (`XACK`) once handled.
//! - A restarted instance first takes back its own unacknowledged entries; entries left
//!   unacknowledged by an instance that went away are claimed (`XAUTOCLAIM`) after
//!   [`super::Delivery::claim_idle`], and go straight to the dead-letter stream once they have
//!   been delivered more than [`super::Delivery::max_attempts`] times.
//! - Handled event ids are remembered under `<system>:seen:<group>:<id>` for
//!   [`super::Delivery::dedup_ttl`], which bounds the store; while one delivery of an event is
//!   being handled, the key says so and other deliveries of it wait.
//! - Events that fail every attempt, and entries that are not CloudEvents, go to the
//!   stream `<system>:dead-letter:<group>` with the error, then are acknowledged.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamMaxlen, StreamPendingCountReply,
    StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisError};
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{
    Broker, CloudEvent, Handler, MessagingError, Subscriber, Subscription, without_password,
};
use crate::config::{self, ConfigError};
use crate::health::Dependency;
use crate::propagation;

/// The variable holding the broker's URL.
pub const REDIS_URL_VAR: &str = "REDIS_URL";

/// About how many events each stream keeps: older entries are trimmed.
pub const STREAM_MAX_LEN: usize = 100_000;

/// Entries read at once per stream.
const BATCH: usize = 64;

/// How long a read waits for new entries before checking for shutdown.
const BLOCK: Duration = Duration::from_secs(1);

/// How long a command may take before the connection counts as broken.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often [`RedisBroker::watch_health`] pings the broker.
const HEALTH_INTERVAL: Duration = Duration::from_secs(2);

/// Events on Redis Streams; clones share the connection.
#[derive(Debug, Clone)]
pub struct RedisBroker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: redis::Client,
    /// Shared by publishing, acknowledging and every other short command.
    connection: ConnectionManager,
    /// Prefix of every key: the system's name.
    prefix: String,
}

impl RedisBroker {
    /// The broker at `url`, with keys under `prefix`. Connections are made on first
    /// use and remade after failures, so the broker may be down when this is called.
    pub fn new(url: &str, prefix: &str) -> Result<Self, MessagingError> {
        let client = redis::Client::open(url).map_err(broker_error)?;
        let connection = ConnectionManager::new_lazy_with_config(
            client.clone(),
            manager_config(RESPONSE_TIMEOUT),
        )
        .map_err(broker_error)?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                connection,
                prefix: prefix.to_owned(),
            }),
        })
    }

    /// The broker at `REDIS_URL` (default `redis://127.0.0.1:6379`), with keys under
    /// the system's name.
    pub fn from_env() -> Result<Self, ConfigError> {
        let url: String = config::var_or(REDIS_URL_VAR, "redis://127.0.0.1:6379")?;
        Self::new(&url, crate::SYSTEM.name).map_err(|error| ConfigError::Invalid {
            name: REDIS_URL_VAR,
            value: without_password(&url),
            reason: error.to_string(),
        })
    }

    /// Keeps `dependency` up while the broker answers `PING`, checking every
    /// [`HEALTH_INTERVAL`], until the task is aborted.
    pub fn watch_health(&self, dependency: Dependency) -> JoinHandle<()> {
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            loop {
                let mut connection = inner.connection.clone();
                let pong: Result<String, RedisError> =
                    redis::cmd("PING").query_async(&mut connection).await;
                dependency.set_up(pong.is_ok());
                tokio::time::sleep(HEALTH_INTERVAL).await;
            }
        })
    }

    /// The stream of the service `stream`.
    pub fn stream_key(&self, stream: &str) -> String {
        self.inner.stream_key(stream)
    }

    /// The dead-letter stream of the consumer group `group`.
    pub fn dead_letter_key(&self, group: &str) -> String {
        format!("{}:dead-letter:{group}", self.inner.prefix)
    }
}

impl Inner {
    fn stream_key(&self, stream: &str) -> String {
        format!("{}:events:{stream}", self.prefix)
    }

    fn seen_key(&self, group: &str, id: &str) -> String {
        format!("{}:seen:{group}:{id}", self.prefix)
    }

    fn dead_letter_key(&self, group: &str) -> String {
        format!("{}:dead-letter:{group}", self.prefix)
    }
}

fn manager_config(response_timeout: Duration) -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(1))
}

fn broker_error(error: RedisError) -> MessagingError {
    MessagingError::Broker(error.to_string())
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, stream: &str, event: &CloudEvent) -> Result<(), MessagingError> {
        let payload = serde_json::to_string(event)
            .map_err(|error| MessagingError::Broker(error.to_string()))?;
        let mut connection = self.inner.connection.clone();
        let _: String = connection
            .xadd_maxlen(
                self.inner.stream_key(stream),
                StreamMaxlen::Approx(STREAM_MAX_LEN),
                "*",
                &[("event", payload)],
            )
            .await
            .map_err(broker_error)?;
        Ok(())
    }

    async fn subscribe(
        &self,
        subscription: Subscription,
        handler: Arc<dyn Handler>,
    ) -> Result<Subscriber, MessagingError> {
        // Blocking reads get a connection of their own: on the shared one they would
        // hold up every other command for as long as they wait.
        let reader = ConnectionManager::new_lazy_with_config(
            self.inner.client.clone(),
            manager_config(RESPONSE_TIMEOUT + BLOCK),
        )
        .map_err(broker_error)?;
        let (stop, stopped) = watch::channel(false);
        let consumer = Consumer {
            inner: Arc::clone(&self.inner),
            reader,
            keys: subscription
                .streams
                .iter()
                .map(|stream| self.inner.stream_key(stream))
                .collect(),
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
    reader: ConnectionManager,
    keys: Vec<String>,
    subscription: Arc<Subscription>,
    handler: Arc<dyn Handler>,
}

impl Consumer {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        let delivery = self.subscription.delivery.clone();
        let limit = Arc::new(Semaphore::new(delivery.concurrency));
        let mut in_flight = JoinSet::new();
        // Entries this instance received before a restart, then new ones.
        let mut positions: Vec<String> = vec!["0".to_owned(); self.keys.len()];
        let mut own_backlog = true;
        let mut groups_ready = false;
        let mut next_claim = Instant::now();
        while !*stopped.borrow() {
            while in_flight.try_join_next().is_some() {}
            if !groups_ready {
                groups_ready = self.create_groups().await;
                if !groups_ready {
                    pause(&mut stopped, delivery.retry_max).await;
                    continue;
                }
            }
            if Instant::now() >= next_claim {
                next_claim = Instant::now() + delivery.claim_idle / 2;
                for entry in self.claim_stale().await {
                    self.spawn(&mut in_flight, &limit, &mut stopped, entry)
                        .await;
                }
            }
            let ids: Vec<&str> = if own_backlog {
                positions.iter().map(String::as_str).collect()
            } else {
                vec![">"; self.keys.len()]
            };
            let mut options = StreamReadOptions::default()
                .group(&self.subscription.group, &self.subscription.consumer)
                .count(BATCH);
            if !own_backlog {
                options = options.block(BLOCK.as_millis() as usize);
            }
            let reply: Result<Option<StreamReadReply>, RedisError> =
                self.reader.xread_options(&self.keys, &ids, &options).await;
            let streams = match reply {
                Ok(reply) => reply.map(|reply| reply.keys).unwrap_or_default(),
                Err(error) => {
                    tracing::warn!(%error, "cannot read events: retrying");
                    pause(
                        &mut stopped,
                        delivery.retry_base.max(Duration::from_millis(500)),
                    )
                    .await;
                    continue;
                }
            };
            let mut got_any = false;
            for stream in streams {
                let index = self.keys.iter().position(|key| *key == stream.key);
                for entry in stream.ids {
                    got_any = true;
                    if let Some(index) = index {
                        positions[index].clone_from(&entry.id);
                    }
                    let entry = Entry {
                        key: stream.key.clone(),
                        entry,
                        redelivered: false,
                    };
                    self.spawn(&mut in_flight, &limit, &mut stopped, entry)
                        .await;
                }
            }
            if own_backlog && !got_any {
                own_backlog = false;
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
    }

    /// Creates the consumer group on every stream (and the streams), from their
    /// beginning, so that no event published before the first start is missed.
    async fn create_groups(&self) -> bool {
        let mut connection = self.inner.connection.clone();
        for key in &self.keys {
            let created: Result<(), RedisError> = connection
                .xgroup_create_mkstream(key, &self.subscription.group, "0")
                .await;
            match created {
                Ok(()) => {}
                Err(error) if error.code() == Some("BUSYGROUP") => {}
                Err(error) => {
                    tracing::warn!(%error, stream = key, "cannot create the consumer group: retrying");
                    return false;
                }
            }
        }
        true
    }

    /// Takes over the entries that other instances left unacknowledged for longer
    /// than [`super::Delivery::claim_idle`].
    async fn claim_stale(&self) -> Vec<Entry> {
        let mut connection = self.inner.connection.clone();
        let idle = self.subscription.delivery.claim_idle.as_millis() as u64;
        let mut claimed = Vec::new();
        for key in &self.keys {
            let reply: Result<StreamAutoClaimReply, RedisError> = connection
                .xautoclaim_options(
                    key,
                    &self.subscription.group,
                    &self.subscription.consumer,
                    idle,
                    "0-0",
                    StreamAutoClaimOptions::default().count(BATCH),
                )
                .await;
            match reply {
                Ok(reply) => claimed.extend(reply.claimed.into_iter().map(|entry| Entry {
                    key: key.clone(),
                    entry,
                    redelivered: true,
                })),
                Err(error) => tracing::warn!(%error, stream = key, "cannot claim stale deliveries"),
            }
        }
        claimed
    }

    /// Handles `entry` in a task of its own, once one of the
    /// [`super::Delivery::concurrency`] places is free; when shutdown begins first, the
    /// entry stays unacknowledged, to be delivered again.
    async fn spawn(
        &self,
        in_flight: &mut JoinSet<()>,
        limit: &Arc<Semaphore>,
        stopped: &mut watch::Receiver<bool>,
        entry: Entry,
    ) {
        let permit = tokio::select! {
            permit = Arc::clone(limit).acquire_owned() => permit,
            _ = stopped.wait_for(|stopped| *stopped) => return,
        };
        let Ok(permit) = permit else {
            return;
        };
        let job = Job {
            inner: Arc::clone(&self.inner),
            subscription: Arc::clone(&self.subscription),
            handler: Arc::clone(&self.handler),
        };
        in_flight.spawn(async move {
            if let Err(error) = job.handle(entry).await {
                tracing::warn!(%error, "delivery interrupted: it will be delivered again");
            }
            drop(permit);
        });
    }
}

/// Waits for `duration`, or less when shutdown begins.
async fn pause(stopped: &mut watch::Receiver<bool>, duration: Duration) {
    let _ = tokio::time::timeout(duration, stopped.changed()).await;
}

/// An entry read from `key`.
struct Entry {
    key: String,
    entry: StreamId,
    /// Claimed from another instance: its delivery count says how often it failed.
    redelivered: bool,
}

/// The handling of one delivery.
struct Job {
    inner: Arc<Inner>,
    subscription: Arc<Subscription>,
    handler: Arc<dyn Handler>,
}

/// Whether this delivery may handle its event.
enum Claim {
    /// Yes: no other delivery has handled it or is handling it.
    Claimed,
    /// Already handled: acknowledge the duplicate.
    Handled,
    /// Another delivery is handling it: leave this one for later.
    Busy,
}

impl Job {
    async fn handle(
        &self,
        Entry {
            key,
            entry,
            redelivered,
        }: Entry,
    ) -> Result<(), RedisError> {
        let settings = &self.subscription.delivery;
        let event = entry
            .get::<String>("event")
            .and_then(|payload| serde_json::from_str::<CloudEvent>(&payload).ok());
        let Some(event) = event else {
            let payload = format!("{:?}", entry.map);
            self.dead_letter(&key, &entry.id, &payload, "not a CloudEvent", 0)
                .await?;
            return self.ack(&key, &entry.id).await;
        };
        let payload = serde_json::to_string(&event).unwrap_or_default();
        if redelivered
            && self.times_delivered(&key, &entry.id).await? > settings.max_attempts as usize
        {
            self.dead_letter(
                &key,
                &entry.id,
                &payload,
                "delivered too often without an acknowledgement",
                0,
            )
            .await?;
            self.mark_handled(&event.id).await?;
            return self.ack(&key, &entry.id).await;
        }
        match self.claim(&event.id).await? {
            Claim::Claimed => {}
            Claim::Handled => {
                tracing::debug!(event_id = event.id, "duplicate event acknowledged");
                return self.ack(&key, &entry.id).await;
            }
            Claim::Busy => return Ok(()),
        }
        let span = tracing::info_span!(
            "consume",
            otel.name = format!("process {}", event.event_type),
            otel.kind = "consumer",
            messaging.system = "redis",
            messaging.destination.name = key.as_str(),
            messaging.message.id = event.id.as_str(),
            messaging.consumer.group.name = self.subscription.group.as_str(),
        );
        let _ = span.set_parent(propagation::extract(&event.trace_headers()));
        let mut attempt = 1;
        let error = loop {
            match self.handler.handle(&event).instrument(span.clone()).await {
                Ok(()) => {
                    self.mark_handled(&event.id).await?;
                    return self.ack(&key, &entry.id).await;
                }
                Err(error) if attempt >= settings.max_attempts => break error,
                Err(error) => {
                    let backoff = settings.backoff(attempt);
                    span.in_scope(|| {
                        tracing::warn!(%error, attempt, ?backoff, event_id = event.id, "handler failed: retrying");
                    });
                    self.keep_claim(&event.id).await?;
                    tokio::time::sleep(backoff).await;
                    attempt += 1;
                }
            }
        };
        span.in_scope(|| {
            tracing::error!(%error, attempt, event_id = event.id, "handler failed every attempt: dead-lettered");
        });
        self.dead_letter(&key, &entry.id, &payload, &error.to_string(), attempt)
            .await?;
        self.mark_handled(&event.id).await?;
        self.ack(&key, &entry.id).await
    }

    async fn times_delivered(&self, key: &str, id: &str) -> Result<usize, RedisError> {
        let mut connection = self.inner.connection.clone();
        let pending: StreamPendingCountReply = connection
            .xpending_count(key, &self.subscription.group, id, id, 1)
            .await?;
        Ok(pending
            .ids
            .first()
            .map_or(0, |pending| pending.times_delivered))
    }

    async fn claim(&self, event_id: &str) -> Result<Claim, RedisError> {
        let mut connection = self.inner.connection.clone();
        let key = self.inner.seen_key(&self.subscription.group, event_id);
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg("handling")
            .arg("NX")
            .arg("PX")
            .arg(self.subscription.delivery.claim_idle.as_millis() as u64)
            .query_async(&mut connection)
            .await?;
        if set.is_some() {
            return Ok(Claim::Claimed);
        }
        let state: Option<String> = connection.get(&key).await?;
        Ok(match state.as_deref() {
            Some("handled") => Claim::Handled,
            Some(_) => Claim::Busy,
            // Expired in between: try again next time.
            None => Claim::Busy,
        })
    }

    /// Extends this delivery's claim on the event while it retries.
    async fn keep_claim(&self, event_id: &str) -> Result<(), RedisError> {
        let mut connection = self.inner.connection.clone();
        let key = self.inner.seen_key(&self.subscription.group, event_id);
        let _: bool = connection
            .pexpire(
                &key,
                self.subscription.delivery.claim_idle.as_millis() as i64,
            )
            .await?;
        Ok(())
    }

    async fn mark_handled(&self, event_id: &str) -> Result<(), RedisError> {
        let mut connection = self.inner.connection.clone();
        let key = self.inner.seen_key(&self.subscription.group, event_id);
        let ttl = self.subscription.delivery.dedup_ttl.as_millis() as u64;
        let _: () = connection.pset_ex(&key, "handled", ttl).await?;
        Ok(())
    }

    async fn ack(&self, key: &str, id: &str) -> Result<(), RedisError> {
        let mut connection = self.inner.connection.clone();
        let _: usize = connection
            .xack(key, &self.subscription.group, &[id])
            .await?;
        Ok(())
    }

    async fn dead_letter(
        &self,
        key: &str,
        id: &str,
        payload: &str,
        error: &str,
        attempts: u32,
    ) -> Result<(), RedisError> {
        let mut connection = self.inner.connection.clone();
        let _: String = connection
            .xadd_maxlen(
                self.inner.dead_letter_key(&self.subscription.group),
                StreamMaxlen::Approx(STREAM_MAX_LEN),
                "*",
                &[
                    ("event", payload),
                    ("stream", key),
                    ("entry", id),
                    ("error", error),
                    ("attempts", &attempts.to_string()),
                ],
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_hide_their_password() {
        assert_eq!(
            without_password("redis://user:secret@cache:6379/0"),
            "redis://***@cache:6379/0"
        );
        assert_eq!(without_password("redis://cache:6379"), "redis://cache:6379");
    }
}
