//! Stream settings, read from the environment.

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use platform::config::{self, ConfigError};

const DEFAULT_REPLAY_CAPACITY: NonZeroUsize = NonZeroUsize::new(1000).unwrap();

/// How streams are kept alive and how much is kept for replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// A stream that has sent nothing for this long gets a keep-alive comment, so that
    /// proxies do not close it.
    pub keep_alive: Duration,
    /// How many recent events are kept for `Last-Event-ID` resumption.
    pub replay_capacity: NonZeroUsize,
    /// Largest `POST /v1/events` body accepted, in bytes.
    pub max_event_bytes: usize,
}

impl Default for Config {
    /// Keep-alive after 15 s, 1000 events kept, events up to 64 KiB.
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(15),
            replay_capacity: DEFAULT_REPLAY_CAPACITY,
            max_event_bytes: 64 * 1024,
        }
    }
}

impl Config {
    /// Reads `SSE_KEEP_ALIVE_MS`, `SSE_REPLAY_CAPACITY` and `SSE_MAX_EVENT_BYTES`, using
    /// the defaults for unset variables; zero is invalid for each.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let keep_alive_ms: NonZeroU64 = config::var_or(
            "SSE_KEEP_ALIVE_MS",
            &defaults.keep_alive.as_millis().to_string(),
        )?;
        let max_event_bytes: NonZeroUsize =
            config::var_or("SSE_MAX_EVENT_BYTES", &defaults.max_event_bytes.to_string())?;
        Ok(Self {
            keep_alive: Duration::from_millis(keep_alive_ms.get()),
            replay_capacity: config::var_or(
                "SSE_REPLAY_CAPACITY",
                &defaults.replay_capacity.to_string(),
            )?,
            max_event_bytes: max_event_bytes.get(),
        })
    }
}
