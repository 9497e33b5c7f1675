//! Per-client rate limiting with token buckets.
//!
//! Each client has a bucket of `burst` tokens that refills at `per_second` tokens a
//! second; a request takes one token, and a request that finds the bucket empty is
//! answered 429 without reaching the service. Clients are told where they stand with
//! the `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` headers
//! (draft-ietf-httpapi-ratelimit-headers) and, once refused, `Retry-After`.
//!
//! A client is the [`ClientId`] of the request when authentication set one, and its
//! IP address otherwise. The table of buckets is bounded: buckets that have refilled
//! completely carry no state and are dropped when the table is full; clients that still
//! find no room share one overflow bucket, so flooding the table with addresses cannot
//! lift the limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use platform::Problem;
use platform::config::ConfigError;

use crate::edge;

/// Size of the bucket: the requests a client may send at once.
pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
/// Requests the client may still send at once.
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
/// Seconds until the bucket is full again.
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// How often, at most, the table is swept for idle buckets once it is full.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// The identity of an authenticated client, set as a request extension by
/// authentication (an API key's name, a token's subject). Requests that carry one are
/// rate limited per identity instead of per IP address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(pub String);

/// Settings of the rate limiter.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimitConfig {
    /// Tokens added to each bucket per second; 0 turns rate limiting off.
    pub per_second: f64,
    /// Size of each bucket.
    pub burst: u32,
    /// Most buckets kept at once.
    pub max_clients: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_second: 50.0,
            burst: 100,
            max_clients: 100_000,
        }
    }
}

impl RateLimitConfig {
    /// Reads `RATE_LIMIT_PER_SECOND`, `RATE_LIMIT_BURST` and `RATE_LIMIT_MAX_CLIENTS`.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let per_second: f64 =
            platform::config::var_or("RATE_LIMIT_PER_SECOND", &defaults.per_second.to_string())?;
        if !per_second.is_finite() || per_second < 0.0 {
            return Err(ConfigError::Invalid {
                name: "RATE_LIMIT_PER_SECOND",
                value: per_second.to_string(),
                reason: "expected a number of requests per second, 0 or more".to_owned(),
            });
        }
        let burst: u32 = platform::config::var_or("RATE_LIMIT_BURST", &defaults.burst.to_string())?;
        if burst == 0 && per_second > 0.0 {
            return Err(ConfigError::Invalid {
                name: "RATE_LIMIT_BURST",
                value: burst.to_string(),
                reason: "expected at least 1 request (set RATE_LIMIT_PER_SECOND=0 to turn rate limiting off)".to_owned(),
            });
        }
        Ok(Self {
            per_second,
            burst,
            max_clients: platform::config::var_or(
                "RATE_LIMIT_MAX_CLIENTS",
                &defaults.max_clients.to_string(),
            )?,
        })
    }
}

/// Who a bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ClientKey {
    Id(ClientId),
    Ip(IpAddr),
    /// Requests without a known peer address (not served over TCP).
    Unknown,
}

/// A token bucket, refilled lazily when it is used.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The outcome of one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Decision {
    allowed: bool,
    remaining: u32,
    /// Seconds until the bucket is full.
    reset: u64,
    /// Seconds until the next token, when refused.
    retry_after: u64,
}

impl Decision {
    /// Whether the request may pass.
    pub(crate) fn allowed(&self) -> bool {
        self.allowed
    }
}

/// The buckets of every client.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_second: f64,
    burst: f64,
    max_clients: usize,
    trusted_proxy_hops: usize,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    buckets: HashMap<ClientKey, Bucket>,
    overflow: Option<Bucket>,
    last_sweep: Option<Instant>,
}

impl RateLimiter {
    /// A limiter with `config`, or `None` when rate limiting is off.
    pub(crate) fn new(config: &RateLimitConfig, trusted_proxy_hops: usize) -> Option<Self> {
        (config.per_second > 0.0 && config.burst > 0).then(|| Self {
            per_second: config.per_second,
            burst: f64::from(config.burst),
            max_clients: config.max_clients,
            trusted_proxy_hops,
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                overflow: None,
                last_sweep: None,
            }),
        })
    }

    /// Takes a token from the bucket of `key`, if it has one.
    fn check(&self, key: ClientKey, now: Instant) -> Decision {
        let mut guard = self
            .table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let table = &mut *guard;
        let full = Bucket {
            tokens: self.burst,
            updated: now,
        };
        if !table.buckets.contains_key(&key) && table.buckets.len() >= self.max_clients {
            self.sweep(table, now);
        }
        let bucket = if table.buckets.len() < self.max_clients || table.buckets.contains_key(&key) {
            table.buckets.entry(key).or_insert(full)
        } else {
            table.overflow.get_or_insert(full)
        };
        self.take(bucket, now)
    }

    /// Drops the buckets that have refilled completely, at most once per
    /// [`SWEEP_INTERVAL`].
    fn sweep(&self, table: &mut Table, now: Instant) {
        if table
            .last_sweep
            .is_some_and(|last| now.duration_since(last) < SWEEP_INTERVAL)
        {
            return;
        }
        table.last_sweep = Some(now);
        let before = table.buckets.len();
        table
            .buckets
            .retain(|_, bucket| self.refilled(bucket, now) < self.burst);
        let after = table.buckets.len();
        if after >= self.max_clients {
            tracing::warn!(
                clients = after,
                "rate limiter table full: new clients share one bucket"
            );
        } else {
            tracing::debug!(dropped = before - after, "swept idle rate limit buckets");
        }
    }

    /// The tokens in `bucket` at `now`.
    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }

    fn take(&self, bucket: &mut Bucket, now: Instant) -> Decision {
        bucket.tokens = self.refilled(bucket, now);
        bucket.updated = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        let seconds = |tokens: f64| (tokens.max(0.0) / self.per_second).ceil() as u64;
        Decision {
            allowed,
            remaining: bucket.tokens.floor() as u32,
            reset: seconds(self.burst - bucket.tokens),
            retry_after: seconds(1.0 - bucket.tokens).max(1),
        }
    }

    fn key(&self, request: &Request) -> ClientKey {
        if let Some(id) = request.extensions().get::<ClientId>() {
            return ClientKey::Id(id.clone());
        }
        edge::client_ip(request, self.trusted_proxy_hops).map_or(ClientKey::Unknown, ClientKey::Ip)
    }

    /// Tells the client where it stands: its bucket's size, tokens left and reset time.
    pub(crate) fn set_headers(&self, headers: &mut HeaderMap, decision: &Decision) {
        headers.insert(RATELIMIT_LIMIT, HeaderValue::from(self.burst as u32));
        headers.insert(RATELIMIT_REMAINING, HeaderValue::from(decision.remaining));
        headers.insert(RATELIMIT_RESET, HeaderValue::from(decision.reset));
    }

    /// Takes a token for the client of `request`, if its bucket has one.
    pub(crate) fn take_token(&self, request: &Request) -> Decision {
        self.check(self.key(request), Instant::now())
    }

    /// The 429 answer, with `Retry-After`, to a request that `decision` refused.
    pub(crate) fn too_many_requests(&self, request: &Request, decision: &Decision) -> Response {
        tracing::debug!(retry_after = decision.retry_after, "rate limited");
        let detail = format!("too many requests: retry in {} s", decision.retry_after);
        let mut response = if edge::is_grpc(request.headers()) {
            grpc_resource_exhausted(&detail)
        } else {
            Problem::new(StatusCode::TOO_MANY_REQUESTS)
                .with_detail(detail)
                .into_response()
        };
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(decision.retry_after));
        response
    }
}

/// A trailers-only gRPC response with the status `RESOURCE_EXHAUSTED`, which gRPC
/// clients read as "slow down" (an HTTP 429 would reach them as `UNAVAILABLE`).
fn grpc_resource_exhausted(message: &str) -> Response {
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(GRPC_STATUS, HeaderValue::from_static("8"));
    if let Ok(message) = HeaderValue::from_str(message) {
        headers.insert(GRPC_MESSAGE, message);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: f64, burst: u32, max_clients: usize) -> RateLimiter {
        let config = RateLimitConfig {
            per_second,
            burst,
            max_clients,
        };
        RateLimiter::new(&config, 0).unwrap()
    }

    fn ip(last: u8) -> ClientKey {
        ClientKey::Ip(IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn refuses_once_the_burst_is_spent_and_refills_at_the_rate() {
        let limiter = limiter(2.0, 3, 10);
        let start = Instant::now();
        for remaining in [2, 1, 0] {
            let decision = limiter.check(ip(1), start);
            assert!(decision.allowed);
            assert_eq!(decision.remaining, remaining);
        }
        let refused = limiter.check(ip(1), start);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, 1);
        assert_eq!(refused.reset, 2);
        // Another client has its own bucket.
        assert!(limiter.check(ip(2), start).allowed);
        // Half a second later, one token is back.
        let later = start + Duration::from_millis(500);
        assert!(limiter.check(ip(1), later).allowed);
        assert!(!limiter.check(ip(1), later).allowed);
    }

    #[test]
    fn a_full_table_drops_idle_buckets_and_then_shares_one_bucket() {
        let limiter = limiter(1.0, 2, 2);
        let start = Instant::now();
        assert!(limiter.check(ip(1), start).allowed);
        assert!(limiter.check(ip(2), start).allowed);
        // The table is full of active buckets: clients 3 and 4 share the overflow.
        assert!(limiter.check(ip(3), start).allowed);
        assert!(limiter.check(ip(4), start).allowed);
        assert!(!limiter.check(ip(3), start).allowed);
        assert_eq!(limiter.table.lock().unwrap().buckets.len(), 2);
        // Once clients 1 and 2 are idle long enough to refill, their buckets go.
        let later = start + Duration::from_secs(5);
        assert!(limiter.check(ip(3), later).allowed);
        let table = limiter.table.lock().unwrap();
        assert_eq!(table.buckets.len(), 1);
        assert!(table.buckets.contains_key(&ip(3)));
    }

    #[test]
    fn zero_turns_rate_limiting_off() {
        let config = RateLimitConfig {
            per_second: 0.0,
            ..RateLimitConfig::default()
        };
        assert!(RateLimiter::new(&config, 0).is_none());
    }
}
