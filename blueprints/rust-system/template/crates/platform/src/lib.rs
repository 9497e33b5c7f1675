//! Shared platform code for every binary in this workspace: configuration from the
//! environment, JSON logging, OpenTelemetry tracing with W3C trace context,
//! Prometheus metrics, RFC 9457 problem details, health probes, request ids, an
//! HTTP client for calling services and serving with graceful shutdown.
{% if messaging.broker != 'none' %}
//! Events between the services go through [`messaging`].
{% endif %}

pub mod client;
pub mod config;
pub mod extract;
pub mod health;
pub mod http;
{% if messaging.broker != 'none' %}
pub mod messaging;
{% endif %}
pub mod metrics;
pub mod problem;
pub mod propagation;
pub mod server;
pub mod telemetry;
{% if auth.mtls %}
pub mod tls;
{% endif %}

use std::process::ExitCode;

use mimalloc::MiMalloc;

pub use problem::Problem;
pub use server::serve;

/// The allocator of every binary and test of the workspace: mimalloc keeps a heap per
/// thread, where glibc's allocator makes the runtime's worker threads contend on its
/// arena locks under load.
#[global_allocator]
static ALLOCATOR: MiMalloc = MiMalloc;

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
{% if messaging.broker != 'none' %}
    /// The message broker refused to set up a subscription.
    #[error(transparent)]
    Messaging(#[from] messaging::MessagingError),
{% endif %}
    /// The server could not bind or failed while serving.
    #[error(transparent)]
    Server(#[from] server::ServerError),
    /// `healthcheck` found the server not live.
    #[error("not healthy: {0}")]
    Unhealthy(#[from] health::CheckError),
}

/// Runs the binary `name` whose server listens on `default_port` unless `PORT` says
/// otherwise.
///
/// Without arguments it awaits `run` and exits 0, or 1 after printing the error on
/// stderr. `name healthcheck` instead asks the server already running on this host
/// whether it is live ([`health::check`]{% if auth.mtls %}, on its plain admin port{% endif %}) and exits 0 or 1: the container health
/// check of images that have no shell and no curl. Anything else is a usage error
/// (exit 2).
pub async fn main<F>(name: &str, default_port: u16, run: impl FnOnce() -> F) -> ExitCode
where
    F: Future<Output = Result<(), Error>>,
{
    let mut args = std::env::args_os().skip(1);
    let result = match (args.next(), args.next()) {
        (None, _) => run().await,
        (Some(command), None) if command == "healthcheck" => healthcheck(default_port).await,
        (Some(_), _) => {
            eprintln!("usage: {name} [healthcheck]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{name}: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn healthcheck(default_port: u16) -> Result<(), Error> {
    let listen = config::listen_addr(default_port)?;
{% if auth.mtls %}
    Ok(health::check(config::admin_addr(listen)?).await?)
{% else %}
    Ok(health::check(listen).await?)
{% endif %}
}
