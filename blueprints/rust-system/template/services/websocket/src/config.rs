//! Connection settings, read from the environment.

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use platform::config::{self, ConfigError};

const HEARTBEAT_VAR: &str = "WS_HEARTBEAT_INTERVAL_MS";
const IDLE_TIMEOUT_VAR: &str = "WS_IDLE_TIMEOUT_MS";
const MAX_MESSAGE_VAR: &str = "WS_MAX_MESSAGE_BYTES";

/// How connections are kept alive and limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Time between the pings the server sends on every connection.
    pub heartbeat_interval: Duration,
    /// A connection that sends nothing, pongs included, for this long is closed.
    pub idle_timeout: Duration,
    /// Largest message a client may send; a larger one closes the connection with 1009.
    pub max_message_bytes: usize,
}

impl Default for Config {
    /// Pings every 15 s, closes after 45 s of silence, accepts messages up to 64 KiB.
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(45),
            max_message_bytes: 64 * 1024,
        }
    }
}

impl Config {
    /// Reads `WS_HEARTBEAT_INTERVAL_MS`, `WS_IDLE_TIMEOUT_MS` and `WS_MAX_MESSAGE_BYTES`,
    /// using the defaults for unset variables. The heartbeat interval must be shorter
    /// than the idle timeout, or clients that answer every ping would still time out.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Self::checked(
            config::var_or(HEARTBEAT_VAR, &millis(defaults.heartbeat_interval))?,
            config::var_or(IDLE_TIMEOUT_VAR, &millis(defaults.idle_timeout))?,
            config::var_or(MAX_MESSAGE_VAR, &defaults.max_message_bytes.to_string())?,
        )
    }

    fn checked(
        heartbeat_ms: NonZeroU64,
        idle_timeout_ms: NonZeroU64,
        max_message_bytes: NonZeroUsize,
    ) -> Result<Self, ConfigError> {
        if heartbeat_ms >= idle_timeout_ms {
            return Err(ConfigError::Invalid {
                name: IDLE_TIMEOUT_VAR,
                value: idle_timeout_ms.to_string(),
                reason: format!("must be longer than {HEARTBEAT_VAR} ({heartbeat_ms})"),
            });
        }
        Ok(Self {
            heartbeat_interval: Duration::from_millis(heartbeat_ms.get()),
            idle_timeout: Duration::from_millis(idle_timeout_ms.get()),
            max_message_bytes: max_message_bytes.get(),
        })
    }
}

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(heartbeat_ms: u64, idle_timeout_ms: u64) -> Result<Config, ConfigError> {
        Config::checked(
            NonZeroU64::new(heartbeat_ms).unwrap(),
            NonZeroU64::new(idle_timeout_ms).unwrap(),
            NonZeroUsize::new(1024).unwrap(),
        )
    }

    #[test]
    fn converts_milliseconds() {
        let config = checked(100, 300).unwrap();
        assert_eq!(config.heartbeat_interval, Duration::from_millis(100));
        assert_eq!(config.idle_timeout, Duration::from_millis(300));
        assert_eq!(config.max_message_bytes, 1024);
    }

    #[test]
    fn idle_timeout_must_exceed_the_heartbeat() {
        let error = checked(300, 300).unwrap_err().to_string();
        assert!(error.contains(IDLE_TIMEOUT_VAR), "{error}");
        assert!(error.contains(HEARTBEAT_VAR), "{error}");
    }

    #[test]
    fn defaults_pass_the_checks() {
        let defaults = Config::default();
        let parsed = Config::checked(
            config::parse(HEARTBEAT_VAR, &millis(defaults.heartbeat_interval)).unwrap(),
            config::parse(IDLE_TIMEOUT_VAR, &millis(defaults.idle_timeout)).unwrap(),
            config::parse(MAX_MESSAGE_VAR, &defaults.max_message_bytes.to_string()).unwrap(),
        );
        assert_eq!(parsed, Ok(defaults));
    }
}
