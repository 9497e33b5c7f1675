//! Structured JSON logs on stdout, filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

use crate::config::{self, ConfigError};

/// Logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` is not a valid filter.
    #[error(transparent)]
    Filter(#[from] ConfigError),
    /// Another global subscriber was installed first.
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Installs the global JSON log subscriber. Call once, first thing in `main`.
pub fn init() -> Result<(), TelemetryError> {
    let filter: EnvFilter = config::var_or("RUST_LOG", "info")?;
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_env_filter(filter)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_filter_names_rust_log() {
        let error = config::parse::<EnvFilter>("RUST_LOG", "info,[").unwrap_err();
        assert!(error.to_string().contains("RUST_LOG"), "{error}");
    }
}
