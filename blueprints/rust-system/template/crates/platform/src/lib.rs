//! Shared platform code for every binary in this workspace: configuration from the
//! environment, JSON logging, OpenTelemetry tracing with W3C trace context,
//! Prometheus metrics, RFC 9457 problem details, health probes, request ids, an
//! HTTP client for calling services and serving with graceful shutdown.

pub mod client;
pub mod config;
pub mod extract;
pub mod health;
pub mod http;
pub mod metrics;
pub mod problem;
pub mod propagation;
pub mod server;
pub mod telemetry;

pub use problem::Problem;
pub use server::serve;

/// A system of services built from this workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct System {
    /// Name of the system.
    pub name: &'static str,
    /// What the system is for, as written by its authors.
    pub description: &'static str,
}

/// The system this workspace implements.
pub const SYSTEM: System = System {
    name: {{ name | rust_str }},
    description: {{ description | rust_str }},
};

/// Errors that stop a binary from starting or serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration in the environment is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// Logging or tracing could not be set up.
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    /// The server could not bind or failed while serving.
    #[error(transparent)]
    Server(#[from] server::ServerError),
}

/// The exit code of a binary whose `run` returned `result`: success, or failure after
/// printing the error, prefixed with the binary's `name`, on stderr.
pub fn exit_code(name: &str, result: Result<(), Error>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
