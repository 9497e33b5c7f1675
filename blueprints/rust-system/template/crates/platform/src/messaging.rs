//! Events between the services: [CloudEvents 1.0](https://cloudevents.io) in JSON,
//! published to and consumed from {{ vars.broker.product }} behind one small trait, [`Broker`].
//!
//! - **Publishing**: a service that owns data reserves a place for the event of a change
//!   in its outbox ([`Events::try_reserve`]) before making the change, and sends it once
//!   the change is made; [`relay`] drains the outbox to the broker in order, retrying
//!   until the broker has stored each event. A broker outage delays events, it does
//!   not lose them; a full outbox refuses the change (503) instead of dropping its event.
//! - **Consuming**: [`Broker::subscribe`] delivers the events of other services to a
//!   [`Handler`] at least once. A delivery is handled once per event id (duplicates are
//!   acknowledged without calling the handler), retried with exponential backoff and
//!   full jitter when the handler fails, and moved to a dead-letter stream after
//!   [`Delivery::max_attempts`], so a poison event never holds up the ones behind it.
//!   [`Subscriber::shutdown`] stops fetching and lets the deliveries in flight finish;
//!   whatever is not acknowledged is delivered again later.
//!
//! See `docs/events.md` for the event types and `docs/runbooks/` for the settings.

pub mod {{ vars.broker.module }};

pub use self::{{ vars.broker.module }}::{{ vars.broker.adapter }};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::config::{self, ConfigError};
use crate::health::Readiness;
use crate::propagation;

/// How many events a service may have waiting for the broker before it refuses
/// changes.
pub const OUTBOX_CAPACITY: usize = 10_000;

/// An event in the CloudEvents 1.0 JSON format, with the distributed tracing extension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    /// Always `1.0`.
    pub specversion: String,
    /// Unique per event: consumers deduplicate by it.
    pub id: String,
    /// The service that published it: `/<system>/<service>`.
    pub source: String,
    /// What happened: `<system>.<service>.<resource>.<action>.v<version>`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened (RFC 3339).
    pub time: String,
    /// The media type of `data`: always `application/json`.
    pub datacontenttype: String,
    /// What it happened to, such as an item id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The event's payload, as documented in `docs/events.md` for its type.
    pub data: serde_json::Value,
    /// The W3C trace context of the change, so consumers continue its trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl CloudEvent {
    /// A new event from `source`, with a fresh id, the current time and the current
    /// trace context.
    pub fn new(
        source: impl Into<String>,
        event_type: impl Into<String>,
        subject: Option<String>,
        data: serde_json::Value,
    ) -> Self {
        let mut headers = HeaderMap::new();
        propagation::inject_current(&mut headers);
        Self {
            specversion: "1.0".to_owned(),
            id: Uuid::new_v4().to_string(),
            source: source.into(),
            event_type: event_type.into(),
            time: jiff::Timestamp::now().to_string(),
            datacontenttype: "application/json".to_owned(),
            subject,
            data,
            traceparent: headers
                .get(propagation::TRACEPARENT)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
        }
    }

    /// The trace context of the event, as headers for [`propagation::extract`].
    pub fn trace_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = self
            .traceparent
            .as_deref()
            .and_then(|value| value.parse().ok())
        {
            headers.insert(propagation::TRACEPARENT, value);
        }
        headers
    }
}

/// Why publishing or consuming failed.
#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    /// The broker could not be reached or refused a command.
    #[error("message broker: {0}")]
    Broker(String),
    /// The outbox is full: the broker has been unreachable for a while.
    #[error("{OUTBOX_CAPACITY} events are waiting for the message broker")]
    Backlog,
}

impl From<MessagingError> for crate::Problem {
    /// A change refused because its event cannot be published: 503, try later.
    fn from(error: MessagingError) -> Self {
        tracing::warn!(%error, "change refused: its event cannot be published");
        Self::new(axum::http::StatusCode::SERVICE_UNAVAILABLE)
            .with_detail("events cannot be published now: try again later")
    }
}

/// What a [`Handler`] returns when it could not handle an event; the event is
/// delivered again, up to [`Delivery::max_attempts`].
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Reacts to the events of a subscription. It may see an event again after a crash
/// or a failed attempt, and events of one stream in another order than published:
/// make it idempotent, and compare `time` or versions where order matters.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles `event`; an error means "try again later".
    async fn handle(&self, event: &CloudEvent) -> Result<(), HandlerError>;
}

type BoxedHandler = dyn Fn(CloudEvent) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>
    + Send
    + Sync;

/// A [`Handler`] made of an async closure.
pub struct HandlerFn(Box<BoxedHandler>);

impl fmt::Debug for HandlerFn {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("HandlerFn")
    }
}

/// The [`Handler`] that calls `handle` with each event.
pub fn handler_fn<F, Fut>(handle: F) -> Arc<dyn Handler>
where
    F: Fn(CloudEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    Arc::new(HandlerFn(Box::new(move |event| Box::pin(handle(event)))))
}

#[async_trait]
impl Handler for HandlerFn {
    async fn handle(&self, event: &CloudEvent) -> Result<(), HandlerError> {
        (self.0)(event.clone()).await
    }
}

/// How deliveries are retried, dead-lettered and deduplicated.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Attempts before an event goes to the dead-letter stream (`MESSAGING_MAX_ATTEMPTS`).
    pub max_attempts: u32,
    /// Backoff before the first retry, doubled for each further one
    /// (`MESSAGING_RETRY_BASE_MS`).
    pub retry_base: Duration,
    /// Upper bound of the backoff (`MESSAGING_RETRY_MAX_MS`).
    pub retry_max: Duration,
    /// How long a delivery may stay unacknowledged before another consumer of the
    /// group takes it over (`MESSAGING_CLAIM_IDLE_MS`).
    pub claim_idle: Duration,
    /// Events handled at once (`MESSAGING_CONCURRENCY`).
    pub concurrency: usize,
    /// How long an event id is remembered as handled (`MESSAGING_DEDUP_TTL_SECONDS`).
    pub dedup_ttl: Duration,
    /// How long [`Subscriber::shutdown`] waits for the deliveries in flight.
    pub drain_timeout: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            claim_idle: Duration::from_secs(30),
            concurrency: 16,
            dedup_ttl: Duration::from_secs(24 * 60 * 60),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl Delivery {
    /// Reads the `MESSAGING_*` settings, with [`Delivery::default`] for unset ones.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let millis = |name, default: Duration| -> Result<Duration, ConfigError> {
            let value: u64 = config::var_or(name, &default.as_millis().to_string())?;
            Ok(Duration::from_millis(value))
        };
        let positive = |name, default: u64| -> Result<u64, ConfigError> {
            let value: u64 = config::var_or(name, &default.to_string())?;
            if value == 0 {
                return Err(ConfigError::Invalid {
                    name,
                    value: value.to_string(),
                    reason: "expected a number above 0".to_owned(),
                });
            }
            Ok(value)
        };
        Ok(Self {
            max_attempts: u32::try_from(positive(
                "MESSAGING_MAX_ATTEMPTS",
                u64::from(defaults.max_attempts),
            )?)
            .unwrap_or(u32::MAX),
            retry_base: millis("MESSAGING_RETRY_BASE_MS", defaults.retry_base)?,
            retry_max: millis("MESSAGING_RETRY_MAX_MS", defaults.retry_max)?,
            claim_idle: millis("MESSAGING_CLAIM_IDLE_MS", defaults.claim_idle)?,
            concurrency: usize::try_from(positive(
                "MESSAGING_CONCURRENCY",
                defaults.concurrency as u64,
            )?)
            .unwrap_or(usize::MAX),
            dedup_ttl: Duration::from_secs(positive(
                "MESSAGING_DEDUP_TTL_SECONDS",
                defaults.dedup_ttl.as_secs(),
            )?),
            drain_timeout: defaults.drain_timeout,
        })
    }

    /// The wait before attempt `attempt + 1` (from 1): exponential, capped, with full
    /// jitter so that consumers retrying together do not hit the broker together.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self
            .retry_base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.retry_max);
        let fraction = (Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
        exponential.mul_f64(fraction)
    }
}

/// What a consuming service reads: the streams of `streams` (publishing services),
/// as the consumer group `group` (the consuming service) under the name `consumer`
/// (this instance).
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// The consumer group: every instance of the consuming service shares it, and
    /// each event is delivered to one of them.
    pub group: String,
    /// This instance, unique in the group and stable across restarts where possible
    /// (the pod name): a restarted instance takes its unacknowledged deliveries back.
    pub consumer: String,
    /// The publishing services whose events are read.
    pub streams: Vec<String>,
    /// Retries, dead letters and deduplication.
    pub delivery: Delivery,
}

/// A message broker: where events are stored and how they reach consumers.
#[async_trait]
pub trait Broker: fmt::Debug + Send + Sync + 'static {
    /// Appends `event` to the stream of the service `stream`, and returns once the
    /// broker has stored it.
    async fn publish(&self, stream: &str, event: &CloudEvent) -> Result<(), MessagingError>;

    /// Starts delivering the events of `subscription` to `handler`, until the returned
    /// [`Subscriber`] is shut down.
    async fn subscribe(
        &self,
        subscription: Subscription,
        handler: Arc<dyn Handler>,
    ) -> Result<Subscriber, MessagingError>;
}

/// A running subscription.
#[derive(Debug)]
pub struct Subscriber {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Subscriber {
    /// The subscription running as `task`, which stops fetching when `stop` turns true.
    pub(crate) fn new(stop: watch::Sender<bool>, task: JoinHandle<()>) -> Self {
        Self { stop, task }
    }

    /// Stops fetching events and waits for the deliveries in flight, up to
    /// [`Delivery::drain_timeout`]; deliveries cut short stay unacknowledged and are
    /// delivered again later.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        if let Err(error) = self.task.await {
            tracing::warn!(%error, "the subscriber failed");
        }
    }
}

/// The events a service publishes: each goes through a bounded outbox that [`relay`]
/// drains to the broker.
#[derive(Debug, Clone)]
pub struct Events {
    sender: mpsc::Sender<CloudEvent>,
    service: String,
}

impl Events {
    /// The events of the service `service`, and the outbox for [`relay`].
    pub fn new(service: &str) -> (Self, mpsc::Receiver<CloudEvent>) {
        let (sender, receiver) = mpsc::channel(OUTBOX_CAPACITY);
        let events = Self {
            sender,
            service: service.to_owned(),
        };
        (events, receiver)
    }

    /// A place in the outbox for the event of a change: take it before making the
    /// change, and [`EventSlot::send`] once it is made.
    pub fn try_reserve(&self) -> Result<EventSlot<'_>, MessagingError> {
        let permit = self
            .sender
            .try_reserve()
            .map_err(|_| MessagingError::Backlog)?;
        Ok(EventSlot {
            permit,
            events: self,
        })
    }
}

/// A place in the outbox for one event.
#[derive(Debug)]
pub struct EventSlot<'a> {
    permit: mpsc::Permit<'a, CloudEvent>,
    events: &'a Events,
}

impl EventSlot<'_> {
    /// Puts the event `<system>.<service>.<kind>.v1` about `subject` in the outbox.
    pub fn send(self, kind: &str, subject: &str, data: serde_json::Value) {
        let system = crate::SYSTEM.name;
        let service = &self.events.service;
        let event = CloudEvent::new(
            format!("/{system}/{service}"),
            format!("{system}.{service}.{kind}.v1"),
            Some(subject.to_owned()),
            data,
        );
        self.permit.send(event);
    }
}

/// How many event ids a [`SeenIds`] remembers at most.
pub const DEDUP_CAPACITY: usize = 100_000;

/// Whether a delivery may handle its event, by its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Yes: no other delivery has handled it or is handling it.
    Claimed,
    /// Already handled: acknowledge the duplicate without handling it.
    Handled,
    /// Another delivery is handling it now: leave this one for later.
    Busy,
}

/// The event ids a consumer is handling or has handled, for adapters whose broker has
/// no store of its own to deduplicate with. Bounded twice: an id is forgotten
/// [`Delivery::dedup_ttl`] after it was handled, and the oldest ids go first once
/// [`DEDUP_CAPACITY`] are remembered. It lives in the process, so it catches the
/// duplicates one instance sees (redeliveries, a publisher's retry), not those split
/// across instances.
#[derive(Debug)]
pub struct SeenIds {
    ttl: Duration,
    capacity: usize,
    state: std::sync::Mutex<SeenState>,
}

#[derive(Debug, Default)]
struct SeenState {
    /// Whether each id is handled (else being handled), and since when.
    ids: std::collections::HashMap<String, (bool, Instant)>,
    /// Ids in the order they were last changed; stale pairs are skipped.
    order: std::collections::VecDeque<(String, Instant)>,
}

impl SeenIds {
    /// A store that remembers handled ids for `ttl`, at most `capacity` of them.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            state: std::sync::Mutex::default(),
        }
    }

    /// Claims `id` for a delivery about to handle it.
    pub fn claim(&self, id: &str) -> Claim {
        let mut state = self.lock();
        let now = Instant::now();
        state.forget_old(now, self.ttl, self.capacity);
        match state.ids.get(id) {
            Some((true, _)) => Claim::Handled,
            Some((false, _)) => Claim::Busy,
            None => {
                state.set(id, false, now);
                Claim::Claimed
            }
        }
    }

    /// Records that `id` was handled (or dead-lettered): later deliveries are duplicates.
    pub fn handled(&self, id: &str) {
        self.lock().set(id, true, Instant::now());
    }

    /// Claims `id` for a delivery, waiting while another delivery of it is being
    /// handled; `None` when it was handled already. The claim is given up when the guard
    /// is dropped before [`ClaimGuard::handled`], so that a delivery that fails or is cut
    /// short (such as at shutdown) leaves the event to its next delivery.
    pub async fn claim_or_wait<'a>(&'a self, id: &'a str) -> Option<ClaimGuard<'a>> {
        loop {
            match self.claim(id) {
                Claim::Claimed => {
                    return Some(ClaimGuard {
                        seen: self,
                        id,
                        handled: false,
                    });
                }
                Claim::Handled => return None,
                Claim::Busy => tokio::time::sleep(BUSY_POLL).await,
            }
        }
    }

    /// Gives up a claim without handling `id`, so that its next delivery handles it.
    pub fn release(&self, id: &str) {
        let mut state = self.lock();
        if state.ids.get(id).is_some_and(|(handled, _)| !handled) {
            state.ids.remove(id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SeenState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How often [`SeenIds::claim_or_wait`] checks whether the other delivery of its event
/// is done.
const BUSY_POLL: Duration = Duration::from_millis(50);

/// An event id claimed in [`SeenIds`], released unless it was handled.
#[derive(Debug)]
pub struct ClaimGuard<'a> {
    seen: &'a SeenIds,
    id: &'a str,
    handled: bool,
}

impl ClaimGuard<'_> {
    /// Records the event as handled (or dead-lettered): later deliveries are duplicates.
    pub fn handled(mut self) {
        self.seen.handled(self.id);
        self.handled = true;
    }
}

impl Drop for ClaimGuard<'_> {
    fn drop(&mut self) {
        if !self.handled {
            self.seen.release(self.id);
        }
    }
}

impl SeenState {
    fn set(&mut self, id: &str, handled: bool, now: Instant) {
        self.ids.insert(id.to_owned(), (handled, now));
        self.order.push_back((id.to_owned(), now));
    }

    /// Drops handled ids older than `ttl`, then the oldest ids until there is room for
    /// one more within `capacity`.
    fn forget_old(&mut self, now: Instant, ttl: Duration, capacity: usize) {
        while let Some((id, since)) = self.order.front() {
            let current = self.ids.get(id).is_some_and(|(_, at)| at == since);
            let expired = self
                .ids
                .get(id)
                .is_some_and(|(handled, at)| *handled && now.duration_since(*at) >= ttl);
            if current && !expired && self.ids.len() < capacity {
                break;
            }
            if current {
                self.ids.remove(id);
            }
            self.order.pop_front();
        }
    }
}

/// `url` with whatever precedes an `@` (a user and password) masked, for messages:
/// `scheme://***@host…`, or `***@host…` for an address without a scheme.
pub(crate) fn without_password(url: &str) -> String {
    match url.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once("://") {
            Some((scheme, _)) => format!("{scheme}://***@{host}"),
            None => format!("***@{host}"),
        },
        None => url.to_owned(),
    }
}

/// How long [`Messaging::stop`] waits for the outbox to reach the broker.
const OUTBOX_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The messaging of a service as its `main` runs it: the broker connection, whose
/// health readiness follows, the relay of the service's outbox and its subscription.
#[derive(Debug)]
pub struct Messaging {
    broker: {{ vars.broker.adapter }},
    delivery: Delivery,
    health: JoinHandle<()>,
    relay: JoinHandle<()>,
    subscriber: Option<Subscriber>,
}

impl Messaging {
    /// Connects to the broker that the environment names, with readiness waiting for
    /// it, and relays the returned [`Events`] to the stream of the service `service`.
    /// Subscriptions use the settings of [`Delivery::from_env`].
    pub fn start(service: &str, readiness: &Readiness) -> Result<(Self, Events), ConfigError> {
        let delivery = Delivery::from_env()?;
        let broker = {{ vars.broker.adapter }}::from_env()?;
        let health = broker.watch_health(readiness.dependency("{{ vars.broker.dependency }}"));
        let (events, outbox) = Events::new(service);
        let relay = tokio::spawn(relay(Arc::new(broker.clone()), service.to_owned(), outbox));
        let messaging = Self {
            broker,
            delivery,
            health,
            relay,
            subscriber: None,
        };
        Ok((messaging, events))
    }

    /// Delivers the events of the services `streams` to `handler`, as the consumer
    /// group `group` (this service) and the instance `HOSTNAME` (the pod's name; `group`
    /// when unset).
    pub async fn subscribe(
        &mut self,
        group: &str,
        streams: &[&str],
        handler: Arc<dyn Handler>,
    ) -> Result<(), MessagingError> {
        let subscription = Subscription {
            group: group.to_owned(),
            consumer: std::env::var("HOSTNAME").unwrap_or_else(|_| group.to_owned()),
            streams: streams.iter().map(|&stream| stream.to_owned()).collect(),
            delivery: self.delivery.clone(),
        };
        self.subscriber = Some(self.broker.subscribe(subscription, handler).await?);
        Ok(())
    }

    /// Stops consuming (letting the deliveries in flight finish), then waits for the
    /// outbox to reach the broker: call it once the server has drained and the app,
    /// which holds the [`Events`], is gone.
    pub async fn stop(self) {
        if let Some(subscriber) = self.subscriber {
            subscriber.shutdown().await;
        }
        let relay = self.relay;
        tokio::pin!(relay);
        if tokio::time::timeout(OUTBOX_DRAIN_TIMEOUT, &mut relay)
            .await
            .is_err()
        {
            tracing::error!("events still unpublished at shutdown: the broker is unreachable");
            relay.abort();
        }
        self.health.abort();
    }
}

/// Publishes the events of `outbox` to the stream `stream` of `broker`, in order,
/// retrying each until the broker has stored it. Returns when every sender is gone
/// and the outbox is empty.
pub async fn relay(
    broker: Arc<dyn Broker>,
    stream: String,
    mut outbox: mpsc::Receiver<CloudEvent>,
) {
    let retry = Delivery::default();
    while let Some(event) = outbox.recv().await {
        let mut attempt = 1;
        while let Err(error) = broker.publish(&stream, &event).await {
            let backoff = retry.backoff(attempt).max(retry.retry_base);
            tracing::warn!(%error, event_id = event.id, attempt, "cannot publish: retrying");
            tokio::time::sleep(backoff).await;
            attempt = attempt.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_cloudevents_json() {
        let event = CloudEvent::new(
            "/shop/catalog",
            "shop.catalog.item.created.v1",
            Some("42".to_owned()),
            serde_json::json!({ "id": "42" }),
        );
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["specversion"], "1.0");
        assert_eq!(json["type"], "shop.catalog.item.created.v1");
        assert_eq!(json["datacontenttype"], "application/json");
        assert_eq!(json["subject"], "42");
        assert!(json["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(json["id"].as_str().unwrap().len(), 36);
        assert!(json.get("traceparent").is_none(), "no trace, no extension");
        let back: CloudEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let delivery = Delivery {
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_millis(1000),
            ..Delivery::default()
        };
        let samples: Vec<Duration> = (0..50).map(|_| delivery.backoff(10)).collect();
        assert!(
            samples
                .iter()
                .all(|wait| *wait <= Duration::from_millis(1000))
        );
        assert!(samples.iter().any(|wait| *wait != samples[0]), "no jitter");
        assert!((0..50).all(|_| delivery.backoff(1) <= Duration::from_millis(100)));
    }

    /// A broker that is down for its first `failures` publishes, then stores events.
    #[derive(Debug, Default)]
    struct FlakyBroker {
        failures: std::sync::Mutex<u32>,
        stored: std::sync::Mutex<Vec<String>>,
    }

    #[async_trait]
    impl Broker for FlakyBroker {
        async fn publish(&self, _stream: &str, event: &CloudEvent) -> Result<(), MessagingError> {
            let mut failures = self.failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return Err(MessagingError::Broker("connection refused".to_owned()));
            }
            self.stored
                .lock()
                .unwrap()
                .push(event.subject.clone().unwrap());
            Ok(())
        }

        async fn subscribe(
            &self,
            _subscription: Subscription,
            _handler: Arc<dyn Handler>,
        ) -> Result<Subscriber, MessagingError> {
            unimplemented!("publishing only")
        }
    }

    #[tokio::test]
    async fn the_relay_outlasts_a_broker_outage_and_keeps_the_order() {
        let broker = Arc::new(FlakyBroker {
            failures: std::sync::Mutex::new(3),
            ..FlakyBroker::default()
        });
        let (events, outbox) = Events::new("catalog");
        for n in 0..5 {
            let slot = events.try_reserve().unwrap();
            slot.send("item.created", &n.to_string(), serde_json::json!({}));
        }
        drop(events);

        let relayed = relay(broker.clone(), "catalog".to_owned(), outbox);
        tokio::time::timeout(Duration::from_secs(10), relayed)
            .await
            .expect("the relay ends once the outbox is empty and closed");
        assert_eq!(*broker.stored.lock().unwrap(), ["0", "1", "2", "3", "4"]);
    }

    #[test]
    fn seen_ids_claim_once_then_report_duplicates() {
        let seen = SeenIds::new(Duration::from_secs(60), 10);
        assert_eq!(seen.claim("a"), Claim::Claimed);
        assert_eq!(seen.claim("a"), Claim::Busy, "being handled");
        seen.release("a");
        assert_eq!(seen.claim("a"), Claim::Claimed, "released: handle it again");
        seen.handled("a");
        assert_eq!(seen.claim("a"), Claim::Handled);
        seen.release("a");
        assert_eq!(seen.claim("a"), Claim::Handled, "stays handled");
    }

    #[tokio::test]
    async fn a_claim_guard_releases_unless_handled_and_duplicates_wait_for_it() {
        let seen = Arc::new(SeenIds::new(Duration::from_secs(60), 10));
        drop(seen.claim_or_wait("a").await.expect("first delivery"));
        let claim = seen
            .claim_or_wait("a")
            .await
            .expect("released: handle it again");

        let duplicate = tokio::spawn({
            let seen = Arc::clone(&seen);
            async move { seen.claim_or_wait("a").await.is_none() }
        });
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(!duplicate.is_finished(), "waits while the first is handled");
        claim.handled();
        assert!(
            duplicate.await.unwrap(),
            "a duplicate once the first was handled"
        );
    }

    #[test]
    fn passwords_are_masked_with_or_without_a_scheme() {
        assert_eq!(
            without_password("amqp://user:secret@rabbitmq:5672/%2f"),
            "amqp://***@rabbitmq:5672/%2f"
        );
        assert_eq!(without_password("user:secret@kafka:9092"), "***@kafka:9092");
        assert_eq!(without_password("nats://nats:4222"), "nats://nats:4222");
    }

    #[test]
    fn seen_ids_are_bounded_by_capacity_oldest_first() {
        let seen = SeenIds::new(Duration::from_secs(60), 3);
        for id in ["a", "b", "c", "d"] {
            assert_eq!(seen.claim(id), Claim::Claimed);
            seen.handled(id);
        }
        assert_eq!(seen.claim("d"), Claim::Handled);
        assert_eq!(seen.claim("a"), Claim::Claimed, "the oldest was forgotten");
        assert!(seen.lock().ids.len() <= 3);
        assert!(seen.lock().order.len() <= 16, "stale pairs dropped");
    }

    #[test]
    fn seen_ids_forget_handled_ids_after_the_ttl() {
        let seen = SeenIds::new(Duration::from_millis(200), 10);
        assert_eq!(seen.claim("a"), Claim::Claimed);
        seen.handled("a");
        assert_eq!(seen.claim("a"), Claim::Handled);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(seen.claim("a"), Claim::Claimed, "forgotten after the ttl");
    }

    #[tokio::test]
    async fn a_full_outbox_refuses_changes() {
        let (events, mut outbox) = Events::new("catalog");
        for n in 0..OUTBOX_CAPACITY {
            let slot = events.try_reserve().unwrap();
            slot.send("item.created", &n.to_string(), serde_json::json!({}));
        }
        assert!(matches!(events.try_reserve(), Err(MessagingError::Backlog)));
        let first = outbox.recv().await.unwrap();
        assert_eq!(first.subject.as_deref(), Some("0"));
        assert!(events.try_reserve().is_ok(), "room again");
    }
}
