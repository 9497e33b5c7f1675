//! Protection of the services from the gateway's traffic, and of clients from slow or
//! failing services, per upstream service:
//!
//! - a **timeout** until the service's response headers (never on a body, so streams
//!   stay open as long as they last): 504, or `DEADLINE_EXCEEDED` for gRPC;
//! - **retries** with exponential backoff and full jitter, only for bodiless requests
//!   with an idempotent method over plain HTTP (never upgrades or gRPC), only after a
//!   connect error, a timeout or a 502/503/504, and only within a **retry budget**, so
//!   retries cannot multiply the load on a service that is already failing;
//! - a **circuit breaker** that opens after consecutive failures (connect errors,
//!   timeouts, 5xx), answers 503 with `Retry-After` without calling the service while
//!   open, and lets one probe through after a cool-down;
//! - a **bulkhead**: at most a fixed number of requests per service waiting for their
//!   response headers; over it, requests are shed at once with 503 instead of queueing.
//!
//! A request holds its bulkhead permit until the service's response headers arrive
//! (retries included), not while its body streams: a server-sent event stream, a
//! WebSocket tunnel or a gRPC server stream is a service doing its work at its own
//! pace, and counting it would let a few hundred idle subscribers shut out every short
//! request. What piles up when a service slows down, and what the bulkhead bounds, is
//! requests waiting for an answer.
//!
//! Each upstream's breaker state, rejections, failed attempts and retries are metrics
//! on the gateway's `/metrics` ([`ResilienceMetrics`]).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use platform::Problem;
use platform::client::HttpClient;
use platform::config::{self, ConfigError, HttpUrl};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::retry::budget::{Budget, TpsBudget};

use crate::{SERVICES, Upstreams};

/// How long a request counts towards the retry budget.
const BUDGET_WINDOW: Duration = Duration::from_secs(10);

/// The longest duration a variable accepts: one day, in milliseconds.
const MAX_MILLIS: u64 = 24 * 60 * 60 * 1000;

/// What the gateway does when a service is slow or failing; see
/// `docs/runbooks/gateway.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResilienceConfig {
    /// Time until a service's response headers, unless `timeouts` names the service.
    pub timeout: Duration,
    /// Per-service timeouts, by service name.
    pub timeouts: HashMap<String, Duration>,
    /// Attempts per request, the first included: 1 disables retries.
    pub max_attempts: u32,
    /// Backoff before the first retry; it doubles for each further retry.
    pub backoff: Duration,
    /// Upper bound of the backoff.
    pub max_backoff: Duration,
    /// Retries allowed, as a percentage of the requests of the last 10 seconds.
    pub retry_budget_percent: f32,
    /// Retries allowed per second on top of the percentage, for quiet periods.
    pub retry_budget_min_per_sec: u32,
    /// Consecutive failures that open a service's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open circuit breaker rejects requests before letting a probe through.
    pub breaker_cooldown: Duration,
    /// Requests per service waiting for their response headers at once.
    pub max_in_flight: usize,
}

impl Default for ResilienceConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            timeouts: HashMap::new(),
            max_attempts: 3,
            backoff: Duration::from_millis(25),
            max_backoff: Duration::from_secs(1),
            retry_budget_percent: 20.0,
            retry_budget_min_per_sec: 5,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(10),
            max_in_flight: 512,
        }
    }
}

impl ResilienceConfig {
    /// Reads the settings from the environment: the `UPSTREAM_*` variables and one
    /// `<SERVICE>_TIMEOUT_MS` per service.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let mut timeouts = HashMap::new();
        for service in SERVICES {
            if let Some(timeout) = optional_millis(service.timeout_var)? {
                timeouts.insert(service.name.to_owned(), timeout);
            }
        }
        Ok(Self {
            timeout: optional_millis("UPSTREAM_TIMEOUT_MS")?.unwrap_or(defaults.timeout),
            timeouts,
            max_attempts: at_least_one("UPSTREAM_RETRY_ATTEMPTS", defaults.max_attempts)?,
            backoff: optional_millis("UPSTREAM_RETRY_BACKOFF_MS")?.unwrap_or(defaults.backoff),
            max_backoff: optional_millis("UPSTREAM_RETRY_BACKOFF_MAX_MS")?
                .unwrap_or(defaults.max_backoff),
            retry_budget_percent: budget_percent(defaults.retry_budget_percent)?,
            retry_budget_min_per_sec: budget_min_per_sec(defaults.retry_budget_min_per_sec)?,
            breaker_failures: at_least_one("UPSTREAM_BREAKER_FAILURES", defaults.breaker_failures)?,
            breaker_cooldown: optional_millis("UPSTREAM_BREAKER_COOLDOWN_MS")?
                .unwrap_or(defaults.breaker_cooldown),
            max_in_flight: config::optional_var::<usize>("UPSTREAM_MAX_IN_FLIGHT")?
                .map(|value| bounded("UPSTREAM_MAX_IN_FLIGHT", value, Semaphore::MAX_PERMITS))
                .transpose()?
                .unwrap_or(defaults.max_in_flight),
        })
    }

    /// The timeout of the service `name`.
    fn timeout_of(&self, name: &str) -> Duration {
        self.timeouts.get(name).copied().unwrap_or(self.timeout)
    }
}

/// A duration in milliseconds from the variable `name`, from 1 ms to one day.
fn optional_millis(name: &'static str) -> Result<Option<Duration>, ConfigError> {
    config::optional_var::<u64>(name)?
        .map(|millis| bounded(name, millis, MAX_MILLIS).map(Duration::from_millis))
        .transpose()
}

/// A count of at least 1 from the variable `name`, `default` when it is unset.
fn at_least_one(name: &'static str, default: u32) -> Result<u32, ConfigError> {
    Ok(config::optional_var(name)?
        .map(|value| bounded(name, value, u32::MAX))
        .transpose()?
        .unwrap_or(default))
}

/// `value` if it is between 1 and `max`, else an error naming the variable `name`.
fn bounded<T>(name: &'static str, value: T, max: T) -> Result<T, ConfigError>
where
    T: PartialOrd + From<u8> + ToString,
{
    if value >= T::from(1) && value <= max {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            name,
            value: value.to_string(),
            reason: format!("expected a number from 1 to {}", max.to_string()),
        })
    }
}

/// `UPSTREAM_RETRY_BUDGET_MIN_PER_SEC`: from 0 (no floor) to a million.
fn budget_min_per_sec(default: u32) -> Result<u32, ConfigError> {
    const NAME: &str = "UPSTREAM_RETRY_BUDGET_MIN_PER_SEC";
    match config::optional_var::<u32>(NAME)? {
        None => Ok(default),
        Some(floor) if floor <= 1_000_000 => Ok(floor),
        Some(floor) => Err(ConfigError::Invalid {
            name: NAME,
            value: floor.to_string(),
            reason: "expected a number from 0 to 1000000".to_owned(),
        }),
    }
}

/// `UPSTREAM_RETRY_BUDGET_PERCENT`: from 0 to 1000 (the range the budget accepts).
fn budget_percent(default: f32) -> Result<f32, ConfigError> {
    const NAME: &str = "UPSTREAM_RETRY_BUDGET_PERCENT";
    match config::optional_var::<f32>(NAME)? {
        None => Ok(default),
        Some(percent) if (0.0..=1000.0).contains(&percent) => Ok(percent),
        Some(percent) => Err(ConfigError::Invalid {
            name: NAME,
            value: percent.to_string(),
            reason: "expected a percentage from 0 to 1000".to_owned(),
        }),
    }
}

/// Why a request was not sent to its service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// The circuit breaker is open; try again after this long.
    Open(Duration),
    /// The bulkhead is full.
    Full,
}

/// How one attempt at calling a service ended, as the breaker and retries see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Response headers other than 5xx: the service works.
    Success,
    /// A failure that a retry may fix: connect error, timeout, 502, 503 or 504.
    Transient,
    /// A failure no retry should repeat: another 5xx, or an error once the request may
    /// have reached the service.
    Failure,
}

impl Outcome {
    /// The outcome of response headers with `status`.
    fn of_status(status: StatusCode) -> Self {
        match status {
            StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT => Self::Transient,
            status if status.is_server_error() => Self::Failure,
            _ => Self::Success,
        }
    }
}

/// The resilience state of every service, shared by all requests.
#[derive(Debug)]
pub(crate) struct Resilience {
    config: Arc<ResilienceConfig>,
    upstreams: HashMap<String, Arc<Upstream>>,
    metrics: ResilienceMetrics,
}

impl Resilience {
    /// Fresh state (closed breakers, empty bulkheads and budgets) for `upstreams`.
    pub(crate) fn new(config: ResilienceConfig, upstreams: &Upstreams) -> Self {
        let metrics = ResilienceMetrics::default();
        let upstreams = upstreams
            .names()
            .map(|name| {
                let upstream = Upstream {
                    name: name.to_owned(),
                    timeout: config.timeout_of(name),
                    in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
                    breaker: Mutex::new(Breaker::Closed { failures: 0 }),
                    budget: TpsBudget::new(
                        BUDGET_WINDOW,
                        config.retry_budget_min_per_sec,
                        config.retry_budget_percent / 100.0,
                    ),
                    metrics: UpstreamMetrics::new(&metrics, name),
                };
                (name.to_owned(), Arc::new(upstream))
            })
            .collect();
        Self {
            config: Arc::new(config),
            upstreams,
            metrics,
        }
    }

    /// The metrics of every upstream, to serve on `/metrics`.
    pub(crate) fn metrics(&self) -> &ResilienceMetrics {
        &self.metrics
    }

    /// Lets a request to `service` through (a bulkhead permit, and the breaker's
    /// consent), or says why not. Every admitted request counts towards the retry budget.
    pub(crate) fn admit(&self, service: &str) -> Result<Option<Admission>, Rejection> {
        let Some(upstream) = self.upstreams.get(service) else {
            return Ok(None);
        };
        let permit = Arc::clone(&upstream.in_flight)
            .try_acquire_owned()
            .map_err(|_| {
                tracing::warn!(service, "bulkhead full: request shed");
                upstream.metrics.shed.inc();
                Rejection::Full
            })?;
        let probe = upstream
            .admit(self.config.breaker_cooldown)
            .inspect_err(|_| {
                upstream.metrics.rejected_open.inc();
            })?;
        upstream.budget.deposit();
        Ok(Some(Admission {
            upstream: Arc::clone(upstream),
            config: Arc::clone(&self.config),
            _permit: permit,
            probe,
        }))
    }
}

/// One service's timeout, bulkhead, breaker and retry budget.
#[derive(Debug)]
struct Upstream {
    name: String,
    timeout: Duration,
    in_flight: Arc<Semaphore>,
    breaker: Mutex<Breaker>,
    budget: TpsBudget,
    metrics: UpstreamMetrics,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    service: String,
    reason: &'static str,
}

/// The resilience metrics of the upstreams, per service:
///
/// - `gateway_upstream_circuit_breaker_state`: 0 closed, 1 half-open, 2 open;
/// - `gateway_upstream_rejected_total{reason}`: requests answered 503 without calling
///   the service, `circuit_open` or `bulkhead_full`;
/// - `gateway_upstream_failed_attempts_total{reason}`: attempts that failed,
///   `unreachable`, `timeout` or `server_error` (5xx);
/// - `gateway_upstream_retries_total`: attempts after the first.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResilienceMetrics {
    breaker_state: Family<ServiceLabels, Gauge>,
    rejected: Family<ReasonLabels, Counter>,
    failed_attempts: Family<ReasonLabels, Counter>,
    retries: Family<ServiceLabels, Counter>,
}

impl ResilienceMetrics {
    /// Adds these metrics to `registry`.
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "gateway_upstream_circuit_breaker_state",
            "State of the service's circuit breaker: 0 closed, 1 half-open, 2 open",
            self.breaker_state.clone(),
        );
        registry.register(
            "gateway_upstream_rejected",
            "Requests answered 503 without calling the service, by reason",
            self.rejected.clone(),
        );
        registry.register(
            "gateway_upstream_failed_attempts",
            "Attempts to call the service that failed, by reason",
            self.failed_attempts.clone(),
        );
        registry.register(
            "gateway_upstream_retries",
            "Attempts to call the service after the first",
            self.retries.clone(),
        );
    }
}

/// One upstream's series, created once so that requests only touch atomics.
#[derive(Debug)]
struct UpstreamMetrics {
    breaker_state: Gauge,
    rejected_open: Counter,
    shed: Counter,
    unreachable: Counter,
    timed_out: Counter,
    server_errors: Counter,
    retries: Counter,
}

impl UpstreamMetrics {
    fn new(metrics: &ResilienceMetrics, service: &str) -> Self {
        let labels = ServiceLabels {
            service: service.to_owned(),
        };
        let reason = |family: &Family<ReasonLabels, Counter>, reason| {
            let labels = ReasonLabels {
                service: service.to_owned(),
                reason,
            };
            family.get_or_create(&labels).clone()
        };
        Self {
            breaker_state: metrics.breaker_state.get_or_create(&labels).clone(),
            rejected_open: reason(&metrics.rejected, "circuit_open"),
            shed: reason(&metrics.rejected, "bulkhead_full"),
            unreachable: reason(&metrics.failed_attempts, "unreachable"),
            timed_out: reason(&metrics.failed_attempts, "timeout"),
            server_errors: reason(&metrics.failed_attempts, "server_error"),
            retries: metrics.retries.get_or_create(&labels).clone(),
        }
    }
}

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breaker {
    /// Requests go through; `failures` in a row so far.
    Closed { failures: u32 },
    /// Requests are rejected until `until`.
    Open { until: Instant },
    /// One probe request is (or may be) under way; the others are rejected.
    HalfOpen { probing: bool },
}

impl Breaker {
    /// The value of `gateway_upstream_circuit_breaker_state`.
    fn metric(self) -> i64 {
        match self {
            Self::Closed { .. } => 0,
            Self::HalfOpen { .. } => 1,
            Self::Open { .. } => 2,
        }
    }
}

impl Upstream {
    /// Moves the breaker to `state`.
    fn set_breaker(&self, breaker: &mut Breaker, state: Breaker) {
        *breaker = state;
        self.metrics.breaker_state.set(state.metric());
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        // The state stays consistent even if a holder panicked: every write is one store.
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the breaker lets a request through: `Ok(true)` when it is the probe of
    /// a half-open breaker.
    fn admit(&self, cooldown: Duration) -> Result<bool, Rejection> {
        let mut breaker = self.breaker();
        match *breaker {
            Breaker::Closed { .. } => Ok(false),
            Breaker::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(Rejection::Open(until - now));
                }
                tracing::info!(service = self.name, "circuit breaker half-open: probing");
                self.set_breaker(&mut breaker, Breaker::HalfOpen { probing: true });
                Ok(true)
            }
            Breaker::HalfOpen { probing: false } => {
                *breaker = Breaker::HalfOpen { probing: true };
                Ok(true)
            }
            Breaker::HalfOpen { probing: true } => Err(Rejection::Open(cooldown)),
        }
    }

    /// Records an attempt's outcome.
    fn record(&self, outcome: Outcome, threshold: u32, cooldown: Duration) {
        let mut breaker = self.breaker();
        match (*breaker, outcome) {
            (Breaker::Closed { .. }, Outcome::Success) => {
                *breaker = Breaker::Closed { failures: 0 };
            }
            (Breaker::HalfOpen { .. }, Outcome::Success) => {
                tracing::info!(service = self.name, "circuit breaker closed");
                self.set_breaker(&mut breaker, Breaker::Closed { failures: 0 });
            }
            (Breaker::Closed { failures }, _) if failures + 1 < threshold => {
                *breaker = Breaker::Closed {
                    failures: failures + 1,
                };
            }
            (Breaker::Closed { .. } | Breaker::HalfOpen { .. }, _) => {
                tracing::warn!(
                    service = self.name,
                    cooldown_ms = cooldown.as_millis(),
                    "circuit breaker opened"
                );
                let until = Instant::now() + cooldown;
                self.set_breaker(&mut breaker, Breaker::Open { until });
            }
            // A request admitted before the breaker opened: the state already says it all.
            (Breaker::Open { .. }, _) => {}
        }
    }
}

/// A request admitted to its service: holds a bulkhead permit until dropped.
#[derive(Debug)]
pub(crate) struct Admission {
    upstream: Arc<Upstream>,
    config: Arc<ResilienceConfig>,
    _permit: OwnedSemaphorePermit,
    /// Whether this request is the probe of a half-open breaker and not yet recorded.
    probe: bool,
}

impl Admission {
    /// Sends `request` to the service at `url` with `client` and waits for the response
    /// headers, within the service's timeout. When `replay` holds the head of a request
    /// without a body, a failure that a retry may fix is retried with it, while the
    /// attempts, the breaker and the retry budget allow. The problem is a 502 when the
    /// service cannot be reached, a 504 when it answers too late.
    pub(crate) async fn send(
        &mut self,
        client: &HttpClient,
        mut request: Request<Body>,
        replay: Option<Parts>,
        url: &HttpUrl,
    ) -> Result<Response<Incoming>, Problem> {
        let upstream = Arc::clone(&self.upstream);
        let (service, timeout) = (upstream.name.as_str(), upstream.timeout);
        let mut attempt = 1;
        loop {
            let (outcome, result) =
                match tokio::time::timeout(timeout, client.request(request)).await {
                    Ok(Ok(response)) => {
                        if response.status().is_server_error() {
                            upstream.metrics.server_errors.inc();
                        }
                        (Outcome::of_status(response.status()), Ok(response))
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(service, %url, %error, attempt, "upstream request failed");
                        upstream.metrics.unreachable.inc();
                        // Only a connection that was never made surely left the request unsent.
                        let outcome = if error.is_connect() {
                            Outcome::Transient
                        } else {
                            Outcome::Failure
                        };
                        let detail = format!("service {service:?} is unreachable");
                        (outcome, Err(Problem::bad_gateway(detail)))
                    }
                    Err(_) => {
                        let timeout_ms = timeout.as_millis();
                        tracing::warn!(service, %url, timeout_ms, attempt, "upstream timed out");
                        upstream.metrics.timed_out.inc();
                        let problem = Problem::new(StatusCode::GATEWAY_TIMEOUT).with_detail(
                            format!("service {service:?} did not answer within {timeout_ms} ms"),
                        );
                        (Outcome::Transient, Err(problem))
                    }
                };
            let backoff = self.record(outcome, attempt, replay.is_some());
            let (Some(backoff), Some(head)) = (backoff, &replay) else {
                return result;
            };
            // Frees the failed response's connection before waiting.
            drop(result);
            tracing::info!(
                service,
                attempt,
                ?outcome,
                ?backoff,
                "retrying upstream request"
            );
            tokio::time::sleep(backoff).await;
            upstream.metrics.retries.inc();
            request = Request::from_parts(head.clone(), Body::empty());
            attempt += 1;
        }
    }

    /// Records the outcome of attempt number `attempt` (from 1) and says how long to
    /// wait before retrying, if the request may be retried at all.
    fn record(&mut self, outcome: Outcome, attempt: u32, retryable: bool) -> Option<Duration> {
        self.upstream.record(
            outcome,
            self.config.breaker_failures,
            self.config.breaker_cooldown,
        );
        self.probe = false;
        let closed = matches!(*self.upstream.breaker(), Breaker::Closed { .. });
        (retryable
            && outcome == Outcome::Transient
            && attempt < self.config.max_attempts
            && closed
            && self.upstream.budget.withdraw())
        .then(|| full_jitter(self.config.backoff, self.config.max_backoff, attempt))
    }
}

impl Drop for Admission {
    /// A probe abandoned before its outcome (the client went away) frees the slot, so
    /// the next request probes instead of the breaker staying half-open for ever.
    fn drop(&mut self) {
        if self.probe {
            let mut breaker = self.upstream.breaker();
            if *breaker == (Breaker::HalfOpen { probing: true }) {
                *breaker = Breaker::HalfOpen { probing: false };
            }
        }
    }
}

/// Whether a request with `method` may be sent twice (RFC 9110, 9.2.2), as far as the
/// gateway retries: GET, HEAD, OPTIONS, PUT and DELETE.
pub(crate) fn is_idempotent(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

/// "Full jitter" backoff before retry number `attempt`: a random duration up to
/// `base * 2^(attempt - 1)`, capped at `max`, so clients that failed together do not
/// retry together.
fn full_jitter(base: Duration, max: Duration, attempt: u32) -> Duration {
    let ceiling = base
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(max);
    // Randomly keyed hashing is random enough to spread retries (not for secrets).
    let random = RandomState::new().hash_one(attempt);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(random % nanos.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_must_be_in_range() {
        assert_eq!(bounded("X", 5_u32, 10), Ok(5));
        assert_eq!(bounded("X", 10_u32, 10), Ok(10));
        for value in [0_u32, 11] {
            let error = bounded("X", value, 10).unwrap_err();
            assert!(error.to_string().contains("from 1 to 10"), "{error}");
        }
    }

    #[test]
    fn only_idempotent_methods_are_retried() {
        for method in [Method::GET, Method::HEAD, Method::PUT, Method::DELETE] {
            assert!(is_idempotent(&method), "{method}");
        }
        for method in [Method::POST, Method::PATCH, Method::CONNECT] {
            assert!(!is_idempotent(&method), "{method}");
        }
    }

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let base = Duration::from_millis(10);
        let max = Duration::from_millis(50);
        for _ in 0..100 {
            assert!(full_jitter(base, max, 1) <= base);
            assert!(full_jitter(base, max, 2) <= base * 2);
            assert!(full_jitter(base, max, 10) <= max);
        }
        assert_eq!(full_jitter(Duration::ZERO, max, 3), Duration::ZERO);
    }

    #[test]
    fn statuses_are_outcomes() {
        assert_eq!(Outcome::of_status(StatusCode::OK), Outcome::Success);
        assert_eq!(Outcome::of_status(StatusCode::NOT_FOUND), Outcome::Success);
        assert_eq!(
            Outcome::of_status(StatusCode::SERVICE_UNAVAILABLE),
            Outcome::Transient
        );
        assert_eq!(
            Outcome::of_status(StatusCode::INTERNAL_SERVER_ERROR),
            Outcome::Failure
        );
    }

    #[tokio::test]
    async fn breaker_opens_half_opens_and_closes() {
        let config = ResilienceConfig {
            breaker_failures: 2,
            breaker_cooldown: Duration::from_millis(20),
            ..ResilienceConfig::default()
        };
        let mut upstreams = Upstreams::default();
        upstreams.insert("a", "http://127.0.0.1:1".parse().unwrap());
        let resilience = Resilience::new(config, &upstreams);

        for _ in 0..2 {
            let mut admission = resilience.admit("a").unwrap().unwrap();
            admission.record(Outcome::Failure, 1, false);
        }
        assert!(matches!(resilience.admit("a"), Err(Rejection::Open(_))));

        tokio::time::sleep(Duration::from_millis(30)).await;
        let probe = resilience.admit("a").unwrap().unwrap();
        assert!(matches!(resilience.admit("a"), Err(Rejection::Open(_))));
        drop(probe);
        let mut probe = resilience.admit("a").unwrap().unwrap();
        probe.record(Outcome::Success, 1, false);
        assert!(resilience.admit("a").unwrap().is_some());
    }
}
