//! Query limits, read from the environment.

use std::num::NonZeroUsize;

use platform::config::{self, ConfigError};

const MAX_DEPTH_VAR: &str = "GRAPHQL_MAX_DEPTH";
const MAX_COMPLEXITY_VAR: &str = "GRAPHQL_MAX_COMPLEXITY";

/// How large a query may be; larger ones are rejected before they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Deepest nesting of selections a query may have.
    pub max_depth: usize,
    /// Largest complexity a query may have: one per field, lists weighted by `first`.
    pub max_complexity: usize,
}

impl Default for Config {
    /// Depth 16 (enough for the introspection query of GraphiQL) and complexity 1000
    /// (a full page of 100 items with a few fields each).
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_complexity: 1000,
        }
    }
}

impl Config {
    /// Reads `GRAPHQL_MAX_DEPTH` and `GRAPHQL_MAX_COMPLEXITY`, using the defaults for
    /// unset variables.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let max_depth: NonZeroUsize =
            config::var_or(MAX_DEPTH_VAR, &defaults.max_depth.to_string())?;
        let max_complexity: NonZeroUsize =
            config::var_or(MAX_COMPLEXITY_VAR, &defaults.max_complexity.to_string())?;
        Ok(Self {
            max_depth: max_depth.get(),
            max_complexity: max_complexity.get(),
        })
    }
}
